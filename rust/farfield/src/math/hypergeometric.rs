//! Confluent hypergeometric function ₁F₁(a; b; z) for the Gaussian-type radial integrals.
//!
//! [`hyp1f1_scaled`] returns `e^{−z} ₁F₁(a; b; z)` for `z ≥ 0` (finite even where ₁F₁
//! overflows); Kummer's transformation `₁F₁(a; b; −x) = e^{−x} ₁F₁(b−a; b; x)` makes it cover
//! negative arguments too ([`hyp1f1`] does this). Power series up to z = 600 (all terms of the
//! same sign once k > −a, no cancellation for the a, b > 0 used by SOAP/LODE) and the
//! asymptotic expansion above. Relative accuracy ~1e-14 for b > 0 and moderate |a|.

use crate::math::special::ln_gamma;

fn is_nonpositive_integer(a: f64) -> bool {
    a <= 0.0 && a == a.round()
}

fn series(a: f64, b: f64, z: f64) -> f64 {
    let mut term: f64 = 1.0;
    let mut sum: f64 = 1.0;
    let mut k = 0.0;
    loop {
        term *= (a + k) * z / ((b + k) * (k + 1.0));
        sum += term;
        k += 1.0;
        if term == 0.0 || (term.abs() < 1e-17 * sum.abs() && k > a.abs()) || k > 100_000.0 {
            break;
        }
    }
    sum
}

/// `e^{−z} ₁F₁(a; b; z)` for `z ≥ 0`, `b > 0`.
pub fn hyp1f1_scaled(a: f64, b: f64, z: f64) -> f64 {
    debug_assert!(z >= 0.0);
    if z == 0.0 {
        return 1.0;
    }
    if is_nonpositive_integer(a) || z <= 600.0 {
        return series(a, b, z) * (-z).exp();
    }
    // asymptotic: Γ(b)/Γ(a) z^{a−b} Σ_k (b−a)_k (1−a)_k / (k! z^k)
    let mut term: f64 = 1.0;
    let mut sum: f64 = 1.0;
    let mut k = 0.0;
    loop {
        let next = term * (b - a + k) * (1.0 - a + k) / ((k + 1.0) * z);
        if next.abs() >= term.abs() || next.abs() < 1e-17 * sum.abs() {
            break;
        }
        term = next;
        sum += term;
        k += 1.0;
    }
    let sign_gamma_a = if a > 0.0 || (a.floor() as i64) % 2 == 0 {
        1.0
    } else {
        -1.0
    };
    let ln = ln_gamma(b) - ln_gamma(a) + (a - b) * z.ln();
    sign_gamma_a * ln.exp() * sum
}

/// ₁F₁(a; b; z) for any real z (b > 0). May overflow for z ≳ 700: prefer
/// [`hyp1f1_scaled`] there.
#[cfg(test)]
pub fn hyp1f1(a: f64, b: f64, z: f64) -> f64 {
    if z >= 0.0 {
        hyp1f1_scaled(a, b, z) * z.exp()
    } else {
        hyp1f1_scaled(b - a, b, -z)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_forms() {
        // 1F1(a; a; z) = e^z
        for &z in &[0.1f64, 3.0, 50.0, 700.0, 1500.0] {
            assert!((hyp1f1_scaled(2.5, 2.5, z) - 1.0).abs() < 1e-13, "{z}");
        }
        // 1F1(1; 2; z) = (e^z − 1)/z
        for &z in &[0.3f64, 5.0, 40.0] {
            let e = (z.exp() - 1.0) / z;
            assert!((hyp1f1(1.0, 2.0, z) / e - 1.0).abs() < 1e-14);
            let e = (1.0 - (-z).exp()) / z;
            assert!((hyp1f1(1.0, 2.0, -z) / e - 1.0).abs() < 1e-13);
        }
        // 1F1(1/2; 3/2; −x²) = √π erf(x) / (2x)
        for &x in &[0.2f64, 1.0, 4.0, 30.0] {
            let e = std::f64::consts::PI.sqrt() * crate::math::special::erf(x) / (2.0 * x);
            assert!((hyp1f1(0.5, 1.5, -x * x) / e - 1.0).abs() < 1e-13, "{x}");
        }
        // continuity across the series/asymptotic switch
        for &(a, b) in &[(3.5, 2.5), (1.5, 5.5), (6.0, 4.5)] {
            let lo = hyp1f1_scaled(a, b, 600.0 - 1e-9);
            let hi = hyp1f1_scaled(a, b, 600.0 + 1e-9);
            assert!((lo / hi - 1.0).abs() < 1e-10);
        }
    }
}
