//! Spherical Bessel functions of the first kind, `j_l(x)`.

/// Power series of `j_l(x)` given `pre = x^l / (2l+1)!!`:
/// `pre Σ_k (−x²/2)^k / (k! (2l+3)(2l+5)…(2l+2k+1))`.
#[inline]
fn series(l: usize, x: f64, pre: f64) -> f64 {
    let mut term = 1.0;
    let mut sum = 1.0;
    let h = -0.5 * x * x;
    let mut k = 0usize;
    loop {
        k += 1;
        term *= h / (k as f64 * (2 * l + 2 * k + 1) as f64);
        sum += term;
        if term.abs() < 1e-17 * sum.abs() || k > 500 {
            break;
        }
    }
    pre * sum
}

/// `j_l(x)` for `x ≥ 0`: power series below `x < l + 1` (no cancellation there), upward
/// recurrence from `j_0`, `j_1` above (stable for `x > l`).
#[cfg(test)]
pub fn spherical_jn(l: usize, x: f64) -> f64 {
    let x = x.abs();
    if x < (l + 1) as f64 {
        let mut pre = 1.0;
        for i in 0..l {
            pre *= x / (2 * i + 3) as f64;
        }
        series(l, x, pre)
    } else {
        let (s, c) = x.sin_cos();
        let j0 = s / x;
        if l == 0 {
            return j0;
        }
        let mut jm = j0;
        let mut j = s / (x * x) - c / x;
        for i in 1..l {
            let next = (2 * i + 1) as f64 / x * j - jm;
            jm = j;
            j = next;
        }
        j
    }
}

/// `j_0(x) … j_lmax(x)` into `out[..=lmax]`, each as [`spherical_jn`] computes it (upward
/// recurrence for the orders `l ≤ x − 1`, power series above), with one `sin_cos`.
pub fn spherical_jn_all(lmax: usize, x: f64, out: &mut [f64]) {
    let x = x.abs();
    let out = &mut out[..=lmax];
    // the orders below `first_series` are those with x ≥ l + 1 (`as` truncates: ⌊x⌋ here,
    // 0 for NaN, without a call to floor)
    let first_series = if x >= (lmax + 1) as f64 {
        lmax + 1
    } else {
        x as usize
    };
    if first_series > 0 {
        // j_1 formed unconditionally, so that sin and cos stay one sincos call
        let (s, c) = x.sin_cos();
        let j1 = s / (x * x) - c / x;
        out[0] = s / x;
        if first_series > 1 {
            out[1] = j1;
        }
        for l in 2..first_series {
            out[l] = (2 * l - 1) as f64 / x * out[l - 1] - out[l - 2];
        }
    }
    if first_series <= lmax {
        // x^l / (2l+1)!!, the product in spherical_jn's order
        let mut pre = 1.0;
        for l in 0..=lmax {
            if l > 0 {
                pre *= x / (2 * l + 1) as f64;
            }
            if l >= first_series {
                out[l] = series(l, x, pre);
            }
        }
    }
}

/// `j_l(x)` and `dj_l/dx` (from `j_l' = j_{l−1} − (l+1)/x j_l`, `j_0' = −j_1`).
#[cfg(test)]
pub fn spherical_jn_with_derivative(l: usize, x: f64) -> (f64, f64) {
    let j = spherical_jn(l, x);
    if l == 0 {
        return (j, -spherical_jn(1, x));
    }
    if x == 0.0 {
        return (j, if l == 1 { 1.0 / 3.0 } else { 0.0 });
    }
    (j, spherical_jn(l - 1, x) - (l + 1) as f64 / x * j)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_forms() {
        for &x in &[0.5f64, 1.9, 2.1, 7.3, 40.0] {
            let (s, c) = x.sin_cos();
            let j2 = (3.0 / (x * x) - 1.0) * s / x - 3.0 * c / (x * x);
            assert!((spherical_jn(0, x) - s / x).abs() < 1e-15);
            assert!(
                (spherical_jn(2, x) - j2).abs() < 1e-12 * (1.0 + j2.abs()),
                "{x}"
            );
            let h = 1e-6;
            let fd = (spherical_jn(3, x + h) - spherical_jn(3, x - h)) / (2.0 * h);
            assert!((spherical_jn_with_derivative(3, x).1 - fd).abs() < 1e-8);
        }
        // small x: j_2(x) ≈ x²/15 (1 − x²/14)
        let x = 1e-3f64;
        assert!((spherical_jn(2, x) - x * x / 15.0 * (1.0 - x * x / 14.0)).abs() < 1e-20);
        // the array form agrees with the single orders, on both sides of every switch
        let mut all = [0.0; 9];
        for &x in &[0.0f64, 0.3, 0.999, 1.0, 1.5, 2.0, 4.7, 8.0, 9.0, 9.5, 31.0] {
            spherical_jn_all(8, x, &mut all);
            for (l, v) in all.iter().enumerate() {
                assert_eq!(*v, spherical_jn(l, x), "l={l} x={x}");
            }
        }
        // continuity at the switch
        let a = spherical_jn(5, 6.0 - 1e-12);
        let b = spherical_jn(5, 6.0 + 1e-12);
        assert!((a - b).abs() < 1e-12);
    }
}
