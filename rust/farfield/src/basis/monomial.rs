//! Monomial ("multipole") radial basis of LODE: `R_nl ∝ r^{l+2n}` on `[0, r_c]`, zero beyond,
//! orthonormal per `l` with weight r². As featomic's `Monomials`: each primitive `r^{l+2n}` is
//! L2-normalised first, then the set is Löwdin-orthonormalised (`R = S^{−1/2} φ̂`, the
//! orthonormal set closest to the normalised primitives; Löwdin applied to the raw monomials
//! would give a different orthonormal basis). With one function per `l`,
//! `R_l = √((2l+3)/r_c^{2l+3}) r^l` (pyLODE's normalisation).

use super::RadialBasis;
use crate::error::{Error, Result};
use crate::math::eigen::inverse_sqrt;

/// Monomial basis with `max_radial + 1` functions for each `l ≤ max_angular`.
#[derive(Debug, Clone)]
pub struct MonomialBasis {
    max_radial: usize,
    radius: f64,
    /// per l: `O_l` such that `R_nl(r) = r_c^{-3/2} Σ_k O_l[n][k] (r/r_c)^{l+2k}`
    orthonormalization: Vec<Vec<f64>>,
}

impl MonomialBasis {
    /// Builds the basis (`max_radial ≤ 8`: the overlap is Hilbert-like, singular to double
    /// precision beyond; fewer functions where `max_angular` is large).
    pub fn new(max_radial: usize, max_angular: usize, radius: f64) -> Result<MonomialBasis> {
        if !(radius.is_finite() && radius > 0.0) {
            return Err(Error::parameter(
                "radius",
                format!("the monomial basis radius must be positive and finite, got {radius}"),
            ));
        }
        if max_radial > 8 {
            return Err(Error::parameter(
                "max_radial",
                format!("max_radial must be at most 8 for the monomial basis, got {max_radial}"),
            ));
        }
        let size = max_radial + 1;
        let mut orthonormalization = Vec::with_capacity(max_angular + 1);
        for l in 0..=max_angular {
            // x^{l+2k} on [0, 1]: ∫ x² x^{l+2a} x^{l+2b} dx = 1/(2l+2a+2b+3); norms √(2l+4k+3)
            let norms: Vec<f64> = (0..size)
                .map(|k| ((2 * l + 4 * k + 3) as f64).sqrt())
                .collect();
            let mut s = vec![0.0; size * size];
            for a in 0..size {
                for b in 0..size {
                    s[a * size + b] = norms[a] * norms[b] / (2 * l + 2 * a + 2 * b + 3) as f64;
                }
            }
            let mut o = inverse_sqrt(&s, size)?;
            for a in 0..size {
                for k in 0..size {
                    o[a * size + k] *= norms[k];
                }
            }
            orthonormalization.push(o);
        }
        Ok(MonomialBasis {
            max_radial,
            radius,
            orthonormalization,
        })
    }
}

impl RadialBasis for MonomialBasis {
    fn size(&self, _l: usize) -> usize {
        self.max_radial + 1
    }

    fn support(&self) -> f64 {
        self.radius
    }

    fn length_scale(&self) -> f64 {
        self.radius / (self.max_radial + 5) as f64
    }

    fn evaluate(&self, l: usize, r: f64, out: &mut [f64]) {
        let size = self.max_radial + 1;
        out[..size].fill(0.0);
        if r >= self.radius {
            return;
        }
        let x = r / self.radius;
        let pre = self.radius.powf(-1.5);
        let o = &self.orthonormalization[l];
        for k in 0..size {
            let v = pre * x.powi((l + 2 * k) as i32);
            for n in 0..size {
                out[n] += o[n * size + k] * v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::basis::gram_by_quadrature;

    #[test]
    fn orthonormal_and_pylode_normalisation() {
        // (l = 5: the smallest overlap eigenvalue is 6e-8, so the Jacobi eigen-solver's
        // ~1e-16 absolute accuracy leaves ~2e-9 in the Gram matrix)
        let b = MonomialBasis::new(4, 5, 2.5).unwrap();
        for l in 0..=5 {
            let g = gram_by_quadrature(&b, l, 60);
            for i in 0..5 {
                for j in 0..5 {
                    let e = if i == j { 1.0 } else { 0.0 };
                    assert!(
                        (g[i * 5 + j] - e).abs() < 1e-8,
                        "{l} {i} {j} {}",
                        g[i * 5 + j] - e
                    );
                }
            }
        }
        let one = MonomialBasis::new(0, 3, 0.7).unwrap();
        let mut v = [0.0];
        for l in 0..=3 {
            one.evaluate(l, 0.3, &mut v);
            let e =
                ((2 * l + 3) as f64 / 0.7f64.powi(2 * l as i32 + 3)).sqrt() * 0.3f64.powi(l as i32);
            assert!((v[0] - e).abs() < 1e-12 * e);
        }
        assert!(MonomialBasis::new(2, 2, -1.0).is_err());
    }

    #[test]
    fn lowdin_of_the_normalised_monomials() {
        // Löwdin's set is the one whose overlaps with the primitives it came from,
        // M_nk = ∫ r² R_nl φ̂_k, form a symmetric positive-definite matrix (M = S^{1/2}); the
        // normalised primitives φ̂_k = √((2l+4k+3)/r_c^{2l+4k+3}) r^{l+2k} are featomic's.
        let (rc, size) = (1.7, 4);
        let b = MonomialBasis::new(size - 1, 3, rc).unwrap();
        let (xs, ws) = crate::math::quadrature::gauss_legendre_interval(40, 0.0, rc);
        for l in 0..=3 {
            let mut m = vec![0.0; size * size];
            let mut buf = vec![0.0; size];
            for (x, w) in xs.iter().zip(&ws) {
                b.evaluate(l, *x, &mut buf);
                for k in 0..size {
                    let p = (l + 2 * k) as i32;
                    let phi = ((2 * p + 3) as f64 / rc.powi(2 * p + 3)).sqrt() * x.powi(p);
                    for n in 0..size {
                        m[n * size + k] += w * x * x * buf[n] * phi;
                    }
                }
            }
            for n in 0..size {
                for k in 0..size {
                    assert!(
                        (m[n * size + k] - m[k * size + n]).abs() < 1e-9,
                        "l={l} {n} {k}"
                    );
                }
            }
            let (values, _) = crate::math::eigen::symmetric_eigen(&m, size);
            assert!(values[0] > 1e-6, "l={l} {values:?}");
        }
        // beyond max_radial = 8 the overlap is singular to double precision
        assert!(MonomialBasis::new(9, 0, 1.0).is_err());
    }
}
