//! Clebsch–Gordan products of two equivariant expansions.
//!
//! Given per-atom coefficient sets `a[l1][m1][p]` (l1 ≤ lmax_a) and `b[l2][m2][q]`
//! (l2 ≤ lmax_b), in the `[l² + l + m][n]` layout of the spherical expansion (one species
//! channel), [`cg_product`] returns every `(l1, l2) → λ` block
//! `t^{λ}_{μ, pq} = Σ C^{λμ}_{l1m1 l2m2} a_{l1m1,p} b_{l2m2,q}` for λ ≤ `lambda_max`, with its
//! parity `σ = σ_a σ_b (−1)^{l1+l2+λ}`. With `a = b` the expansion and λ = 0 this is the
//! power spectrum; `λ > 0` gives λ-SOAP; odd `l1+l2+λ` gives pseudo-tensors (σ = −1).

use crate::math::clebsch_gordan::ClebschGordan;

/// One `(l1, l2, λ)` block of a CG product.
#[derive(Debug, Clone)]
pub struct CgBlock {
    /// angular order of the first factor
    pub l1: usize,
    /// angular order of the second factor
    pub l2: usize,
    /// coupled order
    pub lambda: usize,
    /// parity σ = ±1 (for proper-tensor inputs)
    pub sigma: i32,
    /// `(2λ+1) × n_a × n_b`, row-major
    pub values: Vec<f64>,
}

/// CG product of `a` (`(lmax_a+1)² × n_a`) and `b` (`(lmax_b+1)² × n_b`) to all
/// `λ ≤ lambda_max`, both parities. `cg` must cover `max(lmax_a, lmax_b)`.
#[allow(clippy::too_many_arguments)]
pub fn cg_product(
    cg: &ClebschGordan,
    a: &[f64],
    lmax_a: usize,
    n_a: usize,
    b: &[f64],
    lmax_b: usize,
    n_b: usize,
    lambda_max: usize,
) -> Vec<CgBlock> {
    let mut out = Vec::new();
    for l1 in 0..=lmax_a {
        let xa = &a[l1 * l1 * n_a..(l1 + 1) * (l1 + 1) * n_a];
        for l2 in 0..=lmax_b {
            let xb = &b[l2 * l2 * n_b..(l2 + 1) * (l2 + 1) * n_b];
            for lambda in l1.abs_diff(l2)..=(l1 + l2).min(lambda_max) {
                let mut values = vec![0.0; (2 * lambda + 1) * n_a * n_b];
                cg.couple(l1, xa, n_a, l2, xb, n_b, lambda, &mut values);
                let sigma = if (l1 + l2 + lambda) % 2 == 0 { 1 } else { -1 };
                out.push(CgBlock {
                    l1,
                    l2,
                    lambda,
                    sigma,
                    values,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_zero_is_the_power_spectrum_contraction() {
        // Σ_m (−1)^l/√(2l+1) a_{lm,p} b_{lm,q} is the λ = 0 block of (l, l)
        let lmax = 3;
        let (na, nb) = (2, 3);
        let a: Vec<f64> = (0..(lmax + 1) * (lmax + 1) * na)
            .map(|k| (k as f64 * 0.37).sin())
            .collect();
        let b: Vec<f64> = (0..(lmax + 1) * (lmax + 1) * nb)
            .map(|k| (k as f64 * 0.71).cos())
            .collect();
        let cg = ClebschGordan::new(lmax);
        let blocks = cg_product(&cg, &a, lmax, na, &b, lmax, nb, 4);
        for blk in blocks.iter().filter(|b| b.lambda == 0) {
            assert_eq!(blk.l1, blk.l2);
            let l = blk.l1;
            let sign = if l % 2 == 0 { 1.0 } else { -1.0 };
            for p in 0..na {
                for q in 0..nb {
                    let mut s = 0.0;
                    for lm in l * l..(l + 1) * (l + 1) {
                        s += a[lm * na + p] * b[lm * nb + q];
                    }
                    let expected = sign * s / ((2 * l + 1) as f64).sqrt();
                    assert!((blk.values[p * nb + q] - expected).abs() < 1e-13);
                }
            }
        }
        // every (l1, l2, λ) with λ ≤ 4 appears once; parity follows l1 + l2 + λ
        let count = blocks.len();
        let mut expected = 0;
        for l1 in 0..=lmax {
            for l2 in 0..=lmax {
                expected += (l1.abs_diff(l2)..=(l1 + l2).min(4)).count();
            }
        }
        assert_eq!(count, expected);
        assert!(blocks.iter().all(|b| b.sigma
            == if (b.l1 + b.l2 + b.lambda) % 2 == 0 {
                1
            } else {
                -1
            }));
    }
}
