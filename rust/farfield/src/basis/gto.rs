//! featomic's GTO radial basis.
//!
//! Primitives `φ_n(r) = r^n exp(−r²/(2σ_n²))`, `n = 0..=max_radial` (`max_radial` is the index
//! of the last function: `max_radial + 1` functions), `σ_n = r0 · max(√n, 1) / (max_radial+1)`.
//! L2 normalisation `N_n = √(2 / (σ_n^{2n+3} Γ(n + 3/2)))`; overlap of normalised primitives
//! `S_nn' = N_n N_n' Γ((n+n'+3)/2) / (2 α^{(n+n'+3)/2})`, `α = 1/(2σ_n²) + 1/(2σ_n'²)`;
//! orthonormal functions `R_n = Σ_k (S^{−1/2})_{nk} N_k φ_k` (Löwdin, on [0, ∞)).

use super::RadialBasis;
use crate::error::{Error, Result};
use crate::math::eigen::inverse_sqrt;
#[cfg(test)]
use crate::math::hypergeometric::hyp1f1;
use crate::math::special::{gamma, ln_gamma};

/// The orthonormalised GTO basis (the same radial functions for every `l`).
#[derive(Debug, Clone)]
pub struct GtoBasis {
    max_radial: usize,
    radius: f64,
    widths: Vec<f64>,
    /// `(S^{−1/2})_{nk} N_k`, row-major
    orthonormalization: Vec<f64>,
}

impl GtoBasis {
    /// Builds the basis with `max_radial + 1` functions and extent `radius` (r0).
    pub fn new(max_radial: usize, radius: f64) -> Result<GtoBasis> {
        if !(radius.is_finite() && radius > 0.0) {
            return Err(Error::parameter(
                "radius",
                format!("the GTO radius must be positive and finite, got {radius}"),
            ));
        }
        if max_radial > 30 {
            return Err(Error::parameter(
                "max_radial",
                format!("max_radial must be at most 30 for the GTO basis, got {max_radial}"),
            ));
        }
        let size = max_radial + 1;
        let widths: Vec<f64> = (0..size)
            .map(|n| radius * (n as f64).sqrt().max(1.0) / size as f64)
            .collect();
        let norms: Vec<f64> = (0..size)
            .map(|n| {
                let s = widths[n];
                (2.0 / (s.powi(2 * n as i32 + 3) * gamma(n as f64 + 1.5))).sqrt()
            })
            .collect();
        let mut overlap = vec![0.0; size * size];
        for a in 0..size {
            for b in 0..size {
                let alpha = 0.5 / (widths[a] * widths[a]) + 0.5 / (widths[b] * widths[b]);
                let e = 0.5 * (a + b + 3) as f64;
                // in logs to avoid overflow for large n
                let ln =
                    norms[a].ln() + norms[b].ln() + ln_gamma(e) - (2.0f64).ln() - e * alpha.ln();
                overlap[a * size + b] = ln.exp();
            }
        }
        let inv = inverse_sqrt(&overlap, size).map_err(|_| {
            Error::parameter(
                "max_radial",
                format!("the GTO overlap matrix is singular, use a smaller max_radial (got {max_radial})"),
            )
        })?;
        let mut orthonormalization = inv;
        for a in 0..size {
            for k in 0..size {
                orthonormalization[a * size + k] *= norms[k];
            }
        }
        Ok(GtoBasis {
            max_radial,
            radius,
            widths,
            orthonormalization,
        })
    }

    /// Number of functions, `max_radial + 1`.
    pub fn len(&self) -> usize {
        self.max_radial + 1
    }

    /// Gaussian widths σ_n of the primitives.
    pub fn gaussian_widths(&self) -> &[f64] {
        &self.widths
    }

    /// Applies the matrix `O = S^{−1/2} diag(N)` mapping *unnormalised* primitive quantities
    /// to the orthonormal basis (`R_n = Σ_k O[n][k] φ_k`) in place to a vector of primitive
    /// quantities (any linear functional of the primitives, e.g. radial integrals).
    pub fn orthonormalize(&self, primitive: &mut [f64]) {
        let size = self.len();
        let mut out = [0.0; 32];
        for n in 0..size {
            let row = &self.orthonormalization[n * size..(n + 1) * size];
            out[n] = row.iter().zip(primitive.iter()).map(|(a, b)| a * b).sum();
        }
        primitive[..size].copy_from_slice(&out[..size]);
    }

    /// k-space integrals of the orthonormal functions, `I_nl(k) = ∫_0^∞ r² R_n(r) j_l(kr) dr`,
    /// and their derivatives with respect to k (closed form:
    /// `∫ r^{n+2} e^{−r²/(2s²)} j_l(kr) dr = √(π/2) 2^{n/2} s^{n+3} (ks/√2)^l
    /// Γ((n+l+3)/2)/Γ(l+3/2) ₁F₁((n+l+3)/2; l+3/2; −k²s²/2)`). The tests check the tabulated
    /// integrals against it.
    #[cfg(test)]
    pub fn kspace_integrals_with_derivatives(
        &self,
        l: usize,
        k: f64,
        values: &mut [f64],
        derivatives: &mut [f64],
    ) {
        let size = self.len();
        let lf = l as f64;
        let b = lf + 1.5;
        for n in 0..size {
            let s = self.widths[n];
            let a = 0.5 * (n as f64 + lf + 3.0);
            let x = 0.5 * k * k * s * s;
            let pre = (std::f64::consts::PI / 2.0).sqrt()
                * (ln_gamma(a) - ln_gamma(b)
                    + 0.5 * n as f64 * (2.0f64).ln()
                    + (n as f64 + 3.0) * s.ln())
                .exp();
            let q = s / std::f64::consts::SQRT_2;
            let m = hyp1f1(a, b, -x);
            let dm = a / b * hyp1f1(a + 1.0, b + 1.0, -x);
            let kl = (k * q).powi(l as i32);
            values[n] = pre * kl * m;
            // d/dk [ (kq)^l M(−k²s²/2) ]
            let dkl = if l == 0 {
                0.0
            } else {
                lf * q * (k * q).powi(l as i32 - 1)
            };
            derivatives[n] = pre * (dkl * m - kl * dm * k * s * s);
        }
        self.orthonormalize(values);
        self.orthonormalize(derivatives);
    }
}

impl RadialBasis for GtoBasis {
    fn size(&self, _l: usize) -> usize {
        self.len()
    }

    fn support(&self) -> f64 {
        // the widest primitive is σ_max; r^n e^{−r²/2σ²} is negligible beyond ~ 10 σ_max
        let smax = self.widths.iter().cloned().fold(0.0, f64::max);
        smax * (10.0 + (self.max_radial as f64).sqrt() * 2.0)
    }

    fn length_scale(&self) -> f64 {
        self.radius / self.len() as f64
    }

    fn evaluate(&self, _l: usize, r: f64, out: &mut [f64]) {
        let size = self.len();
        for n in 0..size {
            let s = self.widths[n];
            out[n] = r.powi(n as i32) * (-r * r / (2.0 * s * s)).exp();
        }
        self.orthonormalize(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::basis::gram_by_quadrature;

    #[test]
    fn orthonormal_by_quadrature() {
        for (nmax, r0) in [(0, 3.0), (5, 4.5), (9, 5.0)] {
            let b = GtoBasis::new(nmax, r0).unwrap();
            let g = gram_by_quadrature(&b, 0, 400);
            let n = b.len();
            for i in 0..n {
                for j in 0..n {
                    let e = if i == j { 1.0 } else { 0.0 };
                    assert!(
                        (g[i * n + j] - e).abs() < 1e-10,
                        "{nmax} {i} {j} {}",
                        g[i * n + j]
                    );
                }
            }
        }
    }

    #[test]
    fn kspace_closed_form_matches_quadrature() {
        let b = GtoBasis::new(4, 3.0).unwrap();
        let n = b.len();
        let mut exact = vec![0.0; n];
        let mut deriv = vec![0.0; n];
        let mut quad = vec![0.0; n];
        for l in 0..5 {
            for &k in &[0.0, 0.3, 1.7, 5.0] {
                b.kspace_integrals_with_derivatives(l, k, &mut exact, &mut deriv);
                // default (quadrature) implementation of the trait
                let generic: &dyn Fn(&mut [f64]) = &|out: &mut [f64]| {
                    let (xs, ws) =
                        crate::math::quadrature::gauss_legendre_interval(300, 0.0, b.support());
                    out.fill(0.0);
                    let mut buf = vec![0.0; n];
                    for (x, w) in xs.iter().zip(&ws) {
                        b.evaluate(l, *x, &mut buf);
                        let f = w * x * x * crate::math::bessel::spherical_jn(l, k * x);
                        for i in 0..n {
                            out[i] += f * buf[i];
                        }
                    }
                };
                generic(&mut quad);
                for i in 0..n {
                    assert!((exact[i] - quad[i]).abs() < 1e-10, "l={l} k={k} n={i}");
                }
                let h = 1e-6;
                let mut p = vec![0.0; n];
                let mut m = vec![0.0; n];
                let mut tmp = vec![0.0; n];
                b.kspace_integrals_with_derivatives(l, k + h, &mut p, &mut tmp);
                b.kspace_integrals_with_derivatives(l, (k - h).abs(), &mut m, &mut tmp);
                if k > 0.0 {
                    for i in 0..n {
                        assert!(((p[i] - m[i]) / (2.0 * h) - deriv[i]).abs() < 1e-7);
                    }
                }
            }
        }
    }

    #[test]
    fn bad_parameters() {
        assert!(GtoBasis::new(3, 0.0).is_err());
        assert!(GtoBasis::new(3, f64::NAN).is_err());
        assert!(GtoBasis::new(31, 4.0).is_err());
    }
}
