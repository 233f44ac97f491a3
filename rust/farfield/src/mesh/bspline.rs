//! Cardinal B-splines M_n (support [0, n]) and the Euler exponential spline moduli |b(m)|².

/// Fills `theta[j] = M_n(w + n - 1 - j)` and `dtheta[j]` its derivative, for 0 ≤ w < 1 and
/// j = 0..n. Entry j belongs to grid point floor(u) - n + 1 + j (Essmann et al. 1995).
#[inline]
pub fn fill(w: f64, theta: &mut [f64], dtheta: &mut [f64]) {
    let n = theta.len();
    debug_assert!(n >= 2 && dtheta.len() == n);
    for t in theta.iter_mut() {
        *t = 0.0;
    }
    // the weights of order n - 1 (order 1 for n = 2: M_1(w) = 1)
    if n == 2 {
        theta[0] = 1.0;
    } else {
        theta[1] = w;
        theta[0] = 1.0 - w;
        for k in 3..n {
            recurse(theta, k, w);
        }
    }
    // derivative from order n - 1: M_n'(x) = M_{n-1}(x) - M_{n-1}(x - 1)
    dtheta[0] = -theta[0];
    for j in 1..n {
        dtheta[j] = theta[j - 1] - theta[j];
    }
    recurse(theta, n, w);
}

/// [`fill`] for an order `P` known at compile time (the recursion unrolled): the weights
/// M_P(w + P − 1 − j) and their derivatives, j = 0..P, in registers.
#[inline(always)]
pub fn weights<const P: usize>(w: f64) -> ([f64; P], [f64; P]) {
    let mut theta = [0.0; P];
    let mut dtheta = [0.0; P];
    theta[1] = w;
    theta[0] = 1.0 - w;
    let mut k = 3;
    while k < P {
        recurse(&mut theta, k, w);
        k += 1;
    }
    dtheta[0] = -theta[0];
    for j in 1..P {
        dtheta[j] = theta[j - 1] - theta[j];
    }
    if P > 2 {
        recurse(&mut theta, P, w);
    }
    (theta, dtheta)
}

/// Calls `$body` with the const generic `$p` set to `$order` (3 to 10, the supported B-spline
/// orders; anything else is a caller error checked by the parameters' validation, and falls
/// to order 10's copy only after a debug assertion).
macro_rules! with_order {
    ($order:expr, $p:ident => $body:expr) => {
        match $order {
            3 => {
                const $p: usize = 3;
                $body
            }
            4 => {
                const $p: usize = 4;
                $body
            }
            5 => {
                const $p: usize = 5;
                $body
            }
            6 => {
                const $p: usize = 6;
                $body
            }
            7 => {
                const $p: usize = 7;
                $body
            }
            8 => {
                const $p: usize = 8;
                $body
            }
            9 => {
                const $p: usize = 9;
                $body
            }
            other => {
                debug_assert_eq!(other, 10, "B-spline order out of range");
                const $p: usize = 10;
                $body
            }
        }
    };
}
pub(crate) use with_order;

/// One step of the recursion from order k - 1 to order k (entries 0..k).
#[inline]
fn recurse(theta: &mut [f64], k: usize, w: f64) {
    let div = 1.0 / (k - 1) as f64;
    theta[k - 1] = div * w * theta[k - 2];
    for j in 1..k - 1 {
        theta[k - j - 1] =
            div * ((w + j as f64) * theta[k - j - 2] + ((k - j) as f64 - w) * theta[k - j - 1]);
    }
    theta[0] *= div * (1.0 - w);
}

/// M_n(x) by the plain recursion (for the moduli; only a few evaluations).
pub fn cardinal(n: usize, x: f64) -> f64 {
    if n == 1 {
        return if (0.0..1.0).contains(&x) { 1.0 } else { 0.0 };
    }
    if x <= 0.0 || x >= n as f64 {
        return 0.0;
    }
    let m = (n - 1) as f64;
    (x * cardinal(n - 1, x) + (n as f64 - x) * cardinal(n - 1, x - 1.0)) / m
}

/// [`moduli`] of the three axes of a `mesh`.
pub fn moduli3(order: usize, mesh: [usize; 3]) -> [Vec<f64>; 3] {
    mesh.map(|size| moduli(order, size))
}

/// Signed frequency of FFT index `m` on an axis of `size` points (m or m − size), or `None`
/// for the Nyquist index of an even axis, whose sine and cosine parts cannot be separated.
pub fn signed_frequency(m: usize, size: usize) -> Option<f64> {
    if size.is_multiple_of(2) && m == size / 2 {
        None
    } else if m <= size / 2 {
        Some(m as f64)
    } else {
        Some(m as f64 - size as f64)
    }
}

/// |b(m)|² for m = 0..size (indices, not signed frequencies) of one grid axis with `size`
/// points and spline order `order`: 1/|Σ_{k=0}^{n-2} M_n(k+1) e^{2πi m k / K}|². A vanishing
/// denominator (odd orders at the Nyquist frequency) gives 0.
pub fn moduli(order: usize, size: usize) -> Vec<f64> {
    let values: Vec<f64> = (0..order.saturating_sub(1))
        .map(|k| cardinal(order, (k + 1) as f64))
        .collect();
    (0..size)
        .map(|m| {
            let (mut re, mut im) = (0.0, 0.0);
            for (k, v) in values.iter().enumerate() {
                let arg = 2.0 * std::f64::consts::PI * (m * k) as f64 / size as f64;
                re += v * arg.cos();
                im += v * arg.sin();
            }
            let d = re * re + im * im;
            if d < 1e-14 {
                0.0
            } else {
                1.0 / d
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_order_weights_match_the_recursion() {
        fn check<const P: usize>() {
            for &w in &[0.0, 0.13, 0.5, 0.77, 0.999] {
                let (th, dth) = weights::<P>(w);
                for j in 0..P {
                    let x = w + (P - 1 - j) as f64;
                    assert!((th[j] - cardinal(P, x)).abs() < 1e-14, "P={P} j={j}");
                    let h = 1e-6;
                    let fd = (cardinal(P, x + h) - cardinal(P, x - h)) / (2.0 * h);
                    assert!((dth[j] - fd).abs() < 2e-6, "deriv P={P} j={j}");
                }
            }
        }
        for order in 3..=10usize {
            with_order!(order, P => check::<P>());
        }
    }

    #[test]
    fn fill_matches_recursion_and_derivative() {
        for n in 2..=10 {
            let mut th = vec![0.0; n];
            let mut dth = vec![0.0; n];
            for &w in &[0.0, 0.13, 0.5, 0.77, 0.999] {
                if n == 2 && w == 0.0 {
                    continue; // M_2 has kinks at the integers, where the difference quotient is no derivative
                }
                fill(w, &mut th, &mut dth);
                let sum: f64 = th.iter().sum();
                assert!((sum - 1.0).abs() < 1e-14, "partition of unity n={n}");
                for j in 0..n {
                    let x = w + (n - 1 - j) as f64;
                    assert!((th[j] - cardinal(n, x)).abs() < 1e-14, "n={n} j={j}");
                    let h = 1e-6;
                    let fd = (cardinal(n, x + h) - cardinal(n, x - h)) / (2.0 * h);
                    assert!((dth[j] - fd).abs() < 2e-6, "deriv n={n} j={j}");
                }
            }
        }
    }
}
