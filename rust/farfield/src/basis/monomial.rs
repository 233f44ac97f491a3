//! Monomial ("multipole") radial basis: `R_nl ∝ r^{l+2n}` on `[0, r_c]`, Löwdin-orthonormalised
//! per `l` with weight r², zero beyond `r_c`. With one function per `l`,
//! `R_l = √((2l+3)/r_c^{2l+3}) r^l` (pyLODE's normalisation).

use super::RadialBasis;
use crate::error::{Error, Result};
use crate::math::eigen::inverse_sqrt;

/// Monomial basis with `max_radial + 1` functions for each `l ≤ max_angular`.
#[derive(Debug, Clone)]
pub struct MonomialBasis {
    max_radial: usize,
    max_angular: usize,
    radius: f64,
    /// per l: `O_l` such that `R_nl(r) = r_c^{-3/2} Σ_k O_l[n][k] (r/r_c)^{l+2k}`
    orthonormalization: Vec<Vec<f64>>,
}

impl MonomialBasis {
    /// Builds the basis (`max_radial ≤ 8`, the overlap is Hilbert-like beyond that).
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
            let mut s = vec![0.0; size * size];
            for a in 0..size {
                for b in 0..size {
                    s[a * size + b] = 1.0 / (2 * l + 2 * a + 2 * b + 3) as f64;
                }
            }
            orthonormalization.push(inverse_sqrt(&s, size)?);
        }
        Ok(MonomialBasis {
            max_radial,
            max_angular,
            radius,
            orthonormalization,
        })
    }

    /// Index of the last radial function.
    pub fn max_radial(&self) -> usize {
        self.max_radial
    }

    /// Largest `l` of the basis.
    pub fn max_angular(&self) -> usize {
        self.max_angular
    }

    /// Dimensionless orthonormalisation matrix of channel `l`:
    /// `R_nl(r) = r_c^{−3/2} Σ_k O_l[n][k] (r/r_c)^{l+2k}` for `r < r_c`.
    pub fn orthonormalization(&self, l: usize) -> &[f64] {
        &self.orthonormalization[l]
    }

    /// `R_nl(r)` and `dR_nl/dr` for all n.
    pub fn evaluate_with_derivative(
        &self,
        l: usize,
        r: f64,
        values: &mut [f64],
        derivatives: &mut [f64],
    ) {
        let size = self.max_radial + 1;
        values[..size].fill(0.0);
        derivatives[..size].fill(0.0);
        if r >= self.radius {
            return;
        }
        let rc = self.radius;
        let x = r / rc;
        let pre = rc.powf(-1.5);
        let o = &self.orthonormalization[l];
        for k in 0..size {
            let p = (l + 2 * k) as i32;
            let v = x.powi(p);
            let d = if p == 0 {
                0.0
            } else {
                p as f64 * x.powi(p - 1) / rc
            };
            for n in 0..size {
                values[n] += pre * o[n * size + k] * v;
                derivatives[n] += pre * o[n * size + k] * d;
            }
        }
    }
}

impl RadialBasis for MonomialBasis {
    fn size(&self, _l: usize) -> usize {
        self.max_radial + 1
    }

    fn support(&self) -> f64 {
        self.radius
    }

    fn evaluate(&self, l: usize, r: f64, out: &mut [f64]) {
        let mut d = vec![0.0; self.max_radial + 1];
        self.evaluate_with_derivative(l, r, out, &mut d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::basis::gram_by_quadrature;

    #[test]
    fn orthonormal_and_pylode_normalisation() {
        let b = MonomialBasis::new(4, 5, 2.5).unwrap();
        for l in 0..=5 {
            let g = gram_by_quadrature(&b, l, 60);
            for i in 0..5 {
                for j in 0..5 {
                    let e = if i == j { 1.0 } else { 0.0 };
                    assert!((g[i * 5 + j] - e).abs() < 1e-9, "{l} {i} {j}");
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
}
