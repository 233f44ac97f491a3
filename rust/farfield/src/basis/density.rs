//! SOAP radial integral of a Gaussian atomic density with the GTO basis.
//!
//! For a neighbour at distance `r`, with the L2-normalised density
//! `g(x) = (πσ²)^{−3/4} exp(−|x − r_j|²/(2σ²))`, the expansion coefficient is
//! `c_nlm = I_nl(r) Y_lm(r̂)` with
//! `I_nl(r) = Σ_k O[n][k] (π/σ²)^{3/4} (c r)^l Γ(a)/Γ(b) (c + b_k)^{−a} e^{−c r²} ₁F₁(a; b; c²r²/(c+b_k))`,
//! `c = 1/(2σ²)`, `b_k = 1/(2σ_k²)`, `a = (k+l+3)/2`, `b = l + 3/2` (featomic's formula).
//! [`RadialIntegral`] evaluates it exactly or through a Hermite spline on `[0, cutoff]`.

use super::gto::GtoBasis;
use crate::error::{Error, Result};
use crate::interrupt;
use crate::limits;
use crate::math::hypergeometric::hyp1f1_scaled;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Terms counted per value of the exact radial integral when the spline construction is
/// checked against [`crate::limits`]: one ₁F₁ series takes about a microsecond, on one core
/// (the construction is serial).
pub const TERMS_PER_VALUE: f64 = 1000.0;
use crate::math::special::ln_gamma;
use crate::math::spline::HermiteSpline;

/// Exact (₁F₁) Gaussian-density × GTO radial integral for all `l ≤ max_angular`.
#[derive(Debug, Clone)]
pub struct GaussianDensityIntegral {
    gto: GtoBasis,
    max_angular: usize,
    c: f64,
    global: f64,
    /// per (l, k): Γ(a)/Γ(b) (c + b_k)^{−a}
    prefactors: Vec<f64>,
    gto_constants: Vec<f64>,
}

impl GaussianDensityIntegral {
    /// Prepares the integral for a density of width `sigma` (> 0).
    pub fn new(gto: GtoBasis, max_angular: usize, sigma: f64) -> Result<GaussianDensityIntegral> {
        if !(sigma.is_finite() && sigma > 1e-16) {
            return Err(Error::parameter(
                "smearing",
                format!("the Gaussian density width must be positive and finite, got {sigma}"),
            ));
        }
        let c = 1.0 / (2.0 * sigma * sigma);
        let global = (std::f64::consts::PI / (sigma * sigma)).powf(0.75);
        let size = gto.len();
        let gto_constants: Vec<f64> = gto
            .gaussian_widths()
            .iter()
            .map(|s| 0.5 / (s * s))
            .collect();
        let mut prefactors = vec![0.0; (max_angular + 1) * size];
        for l in 0..=max_angular {
            for k in 0..size {
                let a = 0.5 * (k + l + 3) as f64;
                let b = l as f64 + 1.5;
                prefactors[l * size + k] =
                    (ln_gamma(a) - ln_gamma(b) - a * (c + gto_constants[k]).ln()).exp();
            }
        }
        Ok(GaussianDensityIntegral {
            gto,
            max_angular,
            c,
            global,
            prefactors,
            gto_constants,
        })
    }

    /// Number of radial functions.
    pub fn size(&self) -> usize {
        self.gto.len()
    }

    /// Writes `I_nl(r)` at `values[l * size + n]` and, if asked, `dI_nl/dr` likewise.
    pub fn compute(&self, r: f64, values: &mut [f64], mut gradients: Option<&mut [f64]>) {
        let size = self.size();
        let c = self.c;
        let cr = c * r;
        for l in 0..=self.max_angular {
            let lf = l as f64;
            let b = lf + 1.5;
            let crl = cr.powi(l as i32);
            let crl1 = if l == 0 {
                0.0
            } else {
                lf * c * cr.powi(l as i32 - 1)
            };
            for k in 0..size {
                let bk = self.gto_constants[k];
                let a = 0.5 * (k + l + 3) as f64;
                let z = cr * cr / (c + bk);
                let e = (-c * r * r + z).exp();
                let pre = self.global * self.prefactors[l * size + k] * e;
                let m = hyp1f1_scaled(a, b, z);
                values[l * size + k] = pre * crl * m;
                if let Some(g) = gradients.as_deref_mut() {
                    let dm = a / b * hyp1f1_scaled(a + 1.0, b + 1.0, z);
                    g[l * size + k] = pre
                        * (crl * (dm * 2.0 * c * c * r / (c + bk) - 2.0 * c * r * m) + crl1 * m);
                }
            }
            self.gto
                .orthonormalize(&mut values[l * size..(l + 1) * size]);
            if let Some(g) = gradients.as_deref_mut() {
                self.gto.orthonormalize(&mut g[l * size..(l + 1) * size]);
            }
        }
    }
}

/// How to evaluate the radial integral.
#[derive(Debug, Clone)]
pub enum RadialIntegral {
    /// ₁F₁ at every call.
    Exact(GaussianDensityIntegral),
    /// Hermite spline on `[0, cutoff]` (values and derivatives), built to an accuracy.
    Splined {
        /// the spline, `(max_angular+1) × size` outputs
        spline: HermiteSpline,
    },
}

impl RadialIntegral {
    /// Exact evaluation when `accuracy` is `None`, otherwise a spline on `[0, cutoff]` whose
    /// absolute error (values, and derivatives times the grid step) is below `accuracy`.
    pub fn new(
        exact: GaussianDensityIntegral,
        cutoff: f64,
        accuracy: Option<f64>,
    ) -> Result<RadialIntegral> {
        match accuracy {
            None => Ok(RadialIntegral::Exact(exact)),
            Some(acc) => {
                let n_out = (exact.max_angular + 1) * exact.size();
                // The number of grid points the accuracy needs is not known in advance (and
                // can be unbounded when the accuracy is below the precision of ₁F₁): the
                // evaluations are counted against the term limit and the memory of the
                // tables (values and derivatives at every grid point, the next doubling
                // included) against the memory limit; past either, or on an interruption,
                // the source returns zeros (which ends the refinement at once) and the
                // construction fails.
                let budget = (limits::get().max_terms / TERMS_PER_VALUE)
                    .min(limits::memory_limit() / 32.0)
                    / n_out.max(1) as f64;
                let calls = AtomicU64::new(0);
                let stopped = AtomicBool::new(false);
                let f = |r: f64, v: &mut [f64], d: &mut [f64]| {
                    if !stopped.load(Ordering::Relaxed) {
                        let done = calls.fetch_add(1, Ordering::Relaxed) + 1;
                        if done as f64 <= budget && !interrupt::is_requested() {
                            exact.compute(r, v, Some(d));
                            return;
                        }
                        stopped.store(true, Ordering::Relaxed);
                    }
                    v.fill(0.0);
                    d.fill(0.0);
                };
                let spline = HermiteSpline::with_accuracy(0.0, cutoff, n_out, acc, &f);
                interrupt::check()?;
                if stopped.load(Ordering::Relaxed) {
                    let values = budget * n_out as f64;
                    return Err(Error::TooExpensive {
                        what: format!(
                            "the radial spline of accuracy {acc:e} ({n_out} radial functions, \
                             cutoff / smearing = {:.1})",
                            cutoff * (2.0 * exact.c).sqrt()
                        ),
                        estimate: format!(
                            "more than {:.2e} terms or {}",
                            values * TERMS_PER_VALUE,
                            limits::format_bytes(values * 32.0)
                        ),
                        limit: format!(
                            "{:.1e} terms and {} (farfield.set_limits(...) changes them)",
                            limits::get().max_terms,
                            limits::format_bytes(limits::memory_limit())
                        ),
                        hint: "use a larger radial_accuracy (or None for the exact integral), \
                               a smaller max_radial / max_angular, or a larger smearing"
                            .into(),
                    });
                }
                Ok(RadialIntegral::Splined { spline: spline? })
            }
        }
    }

    /// Writes `I_nl(r)` (and `dI_nl/dr` if asked) at `[l * size + n]`.
    #[inline]
    pub fn compute(&self, r: f64, values: &mut [f64], gradients: Option<&mut [f64]>) {
        match self {
            RadialIntegral::Exact(e) => e.compute(r, values, gradients),
            RadialIntegral::Splined { spline, .. } => spline.evaluate(r, values, gradients),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::quadrature::gauss_legendre_interval;
    use crate::math::special::ln_gamma;

    /// Modified spherical Bessel i_l(x) e^{−x} by series (x small) — for the quadrature check.
    fn scaled_il(l: usize, x: f64) -> f64 {
        // i_l(x) = x^l/(2l+1)!! Σ (x²/2)^k / (k! (2l+3)...(2l+2k+1)); fine for x < 60
        let mut pre = 0.0f64;
        for i in 0..l {
            pre += (x / (2 * i + 3) as f64).ln();
        }
        let mut term = 1.0;
        let mut sum = 1.0;
        let h = 0.5 * x * x;
        for k in 1..400 {
            term *= h / (k as f64 * (2 * l + 2 * k + 1) as f64);
            sum += term;
        }
        (pre - x).exp() * sum
    }

    #[test]
    fn matches_quadrature_and_finite_differences() {
        let sigma = 0.4;
        let gto = GtoBasis::new(4, 4.0).unwrap();
        let ri = GaussianDensityIntegral::new(gto.clone(), 4, sigma).unwrap();
        let n = 5;
        let c = 1.0 / (2.0 * sigma * sigma);
        let (xs, ws) = gauss_legendre_interval(400, 0.0, 12.0);
        for &r in &[0.0, 0.3, 1.7, 3.9] {
            let mut v = vec![0.0; 25];
            let mut g = vec![0.0; 25];
            ri.compute(r, &mut v, Some(&mut g));
            // ∫ x² R_n(x) 4π (πσ²)^{-3/4} e^{-c(x²+r²)} i_l(2cxr) dx
            for l in 0..=4 {
                let mut q = vec![0.0; n];
                let mut buf = vec![0.0; n];
                for (x, w) in xs.iter().zip(&ws) {
                    crate::basis::RadialBasis::evaluate(&gto, l, *x, &mut buf);
                    let arg = 2.0 * c * x * r;
                    let il = if r == 0.0 {
                        if l == 0 {
                            (-(c * (x * x + r * r))).exp()
                        } else {
                            0.0
                        }
                    } else {
                        scaled_il(l, arg) * (arg - c * (x * x + r * r)).exp()
                    };
                    let f = w
                        * x
                        * x
                        * 4.0
                        * std::f64::consts::PI
                        * (std::f64::consts::PI * sigma * sigma).powf(-0.75)
                        * il;
                    for k in 0..n {
                        q[k] += f * buf[k];
                    }
                }
                for k in 0..n {
                    assert!(
                        (q[k] - v[l * n + k]).abs() < 1e-10,
                        "r={r} l={l} n={k}: {} {}",
                        q[k],
                        v[l * n + k]
                    );
                }
            }
            let h = 1e-6;
            let mut vp = vec![0.0; 25];
            let mut vm = vec![0.0; 25];
            ri.compute(r + h, &mut vp, None);
            ri.compute((r - h).abs(), &mut vm, None);
            if r > 0.0 {
                for k in 0..25 {
                    assert!(((vp[k] - vm[k]) / (2.0 * h) - g[k]).abs() < 1e-7);
                }
            }
        }
        let _ = ln_gamma(1.0);
    }

    #[test]
    fn spline_reaches_accuracy() {
        let gto = GtoBasis::new(5, 4.5).unwrap();
        let exact = GaussianDensityIntegral::new(gto, 6, 0.3).unwrap();
        let splined = RadialIntegral::new(exact.clone(), 4.5, Some(1e-9)).unwrap();
        let mut a = vec![0.0; 42];
        let mut b = vec![0.0; 42];
        for k in 0..450 {
            let r = 0.01 * k as f64 + 0.0037;
            exact.compute(r, &mut a, None);
            splined.compute(r, &mut b, None);
            for i in 0..42 {
                assert!((a[i] - b[i]).abs() < 1e-9);
            }
        }
        assert!(GaussianDensityIntegral::new(GtoBasis::new(2, 3.0).unwrap(), 2, 0.0).is_err());
    }
}
