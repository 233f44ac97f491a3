//! A [`RadialBasis`] tabulated on a composite Gauss–Legendre grid, for the radial integrals
//! that have no closed form in every basis: LODE's k-space integrals
//! `I_nl(k) = ∫ r² R_nl(r) j_l(kr) dr` with their first and second k-derivatives, and
//! projections `√(4π) ∫ r² R_n0(r) f(r) dr` of radial functions. [`KSpline`] is the quintic
//! Hermite spline of `I_nl(k)` on `[0, k_max]` ([`crate::math::spline::QuinticHermiteSpline`]).
//!
//! Layout of every per-(l, n) output: `l * n_radial + n`.

use super::RadialBasis;
use crate::error::{Error, Result};
use crate::math::bessel::spherical_jn_all;
use crate::math::quadrature::composite_gauss_legendre;
use crate::math::spline::QuinticHermiteSpline;
use std::f64::consts::PI;

/// Points of the Gauss–Legendre rule on every panel of the grid.
const ORDER: usize = 24;

/// An orthonormal radial basis `R_nl` (the same number of functions for every `l`) tabulated
/// on a quadrature grid over its support.
#[derive(Debug, Clone)]
pub struct TabulatedBasis {
    /// number of radial functions per l
    pub n_radial: usize,
    /// maximal l
    pub lmax: usize,
    /// quadrature nodes in r
    pub nodes: Vec<f64>,
    /// quadrature weights times r²
    pub weights_r2: Vec<f64>,
    /// values\[l\]\[n\]\[q\] = R_nl(r_q)
    pub values: Vec<Vec<Vec<f64>>>,
    /// the largest r where the basis is non-negligible (its support)
    pub extent: f64,
}

impl TabulatedBasis {
    /// Tabulates `basis` for `l ≤ lmax` on panels of width `2 max(min(ℓ, resolution),
    /// support / 4000)` (`ℓ` its [`length_scale`](RadialBasis::length_scale)): `resolution`
    /// is the shortest length of what the basis is integrated against (a density's width,
    /// π / the largest wave number).
    pub fn new(basis: &dyn RadialBasis, lmax: usize, resolution: f64) -> Result<TabulatedBasis> {
        let nr = basis.size(0);
        if (1..=lmax).any(|l| basis.size(l) != nr) {
            return Err(Error::parameter(
                "max_radial",
                "a tabulated radial basis needs the same number of functions for every l",
            ));
        }
        let extent = basis.support();
        let h = 2.0 * basis.length_scale().min(resolution).max(extent / 4000.0);
        let (nodes, w) = composite_gauss_legendre(0.0, extent, h, ORDER);
        let weights_r2: Vec<f64> = nodes.iter().zip(&w).map(|(r, w)| r * r * w).collect();
        let mut buf = vec![0.0; nr];
        let values = (0..=lmax)
            .map(|l| {
                let mut v = vec![vec![0.0; nodes.len()]; nr];
                for (q, &r) in nodes.iter().enumerate() {
                    basis.evaluate(l, r, &mut buf);
                    for n in 0..nr {
                        v[n][q] = buf[n];
                    }
                }
                v
            })
            .collect();
        Ok(TabulatedBasis {
            n_radial: nr,
            lmax,
            nodes,
            weights_r2,
            values,
            extent,
        })
    }

    /// I_nl(k) = ∫ r² R_nl(r) j_l(kr) dr and its k-derivative, written to `out[l*nr + n]`
    /// and `dout[l*nr + n]`.
    pub fn kspace_integrals(&self, k: f64, out: &mut [f64], dout: Option<&mut [f64]>) {
        let nr = self.n_radial;
        let lmax = self.lmax;
        let mut j = vec![0.0; lmax + 2];
        out.iter_mut().for_each(|x| *x = 0.0);
        let mut dout = dout;
        if let Some(d) = dout.as_deref_mut() {
            d.iter_mut().for_each(|x| *x = 0.0);
        }
        let want_d = dout.is_some();
        let mut dj = vec![0.0; lmax + 1];
        for (q, &r) in self.nodes.iter().enumerate() {
            let x = k * r;
            spherical_jn_all(lmax + 1, x, &mut j);
            if want_d {
                // j_l'(x) = (l/x) j_l - j_{l+1}, times r; at x=0 only l=1 survives (1/3)
                for l in 0..=lmax {
                    dj[l] = if x > 1e-8 {
                        (l as f64 / x * j[l] - j[l + 1]) * r
                    } else if l == 1 {
                        r / 3.0
                    } else {
                        0.0
                    };
                }
            }
            let w = self.weights_r2[q];
            for l in 0..=lmax {
                let wj = w * j[l];
                let vals = &self.values[l];
                for n in 0..nr {
                    out[l * nr + n] += wj * vals[n][q];
                }
                if let Some(d) = dout.as_deref_mut() {
                    let wd = w * dj[l];
                    for n in 0..nr {
                        d[l * nr + n] += wd * vals[n][q];
                    }
                }
            }
        }
    }

    /// [I, dI/dk, d²I/dk²] at k for every (l, n) into `out[l*nr + n]` (zeros on entry).
    pub fn integrals_d2(&self, k: f64, out: &mut [[f64; 3]]) {
        let nr = self.n_radial;
        let lmax = self.lmax;
        let mut j = vec![0.0; lmax + 2];
        for (q, &r) in self.nodes.iter().enumerate() {
            let x = k * r;
            spherical_jn_all(lmax + 1, x, &mut j);
            let w = self.weights_r2[q];
            for l in 0..=lmax {
                let lf = l as f64;
                let (d1, d2) = if x > 1e-3 {
                    let d1 = lf / x * j[l] - j[l + 1];
                    let d2 = -2.0 / x * d1 - (1.0 - lf * (lf + 1.0) / (x * x)) * j[l];
                    (d1, d2)
                } else {
                    // Taylor: j_0 = 1 - x²/6, j_1 = x/3 - x³/30, j_2 = x²/15
                    match l {
                        0 => (-x / 3.0, -1.0 / 3.0 + x * x / 10.0),
                        1 => (1.0 / 3.0 - x * x / 10.0, -x / 5.0),
                        2 => (2.0 * x / 15.0, 2.0 / 15.0),
                        _ => {
                            let df: f64 = (1..=l).map(|k| (2 * k + 1) as f64).product();
                            (
                                lf * x.powi(l as i32 - 1) / df,
                                lf * (lf - 1.0) * x.powi(l as i32 - 2) / df,
                            )
                        }
                    }
                };
                let vals = &self.values[l];
                for n in 0..nr {
                    let v = w * vals[n][q];
                    let o = &mut out[l * nr + n];
                    o[0] += v * j[l];
                    o[1] += v * r * d1;
                    o[2] += v * r * r * d2;
                }
            }
        }
    }

    /// √(4π) ∫ r² R_n0(r) f(r) dr for n = 0..nr.
    pub fn project_l0(&self, f: impl Fn(f64) -> f64) -> Vec<f64> {
        let fq: Vec<f64> = self.nodes.iter().map(|&r| f(r)).collect();
        (0..self.n_radial)
            .map(|n| {
                (4.0 * PI).sqrt()
                    * (0..self.nodes.len())
                        .map(|q| self.weights_r2[q] * self.values[0][n][q] * fq[q])
                        .sum::<f64>()
            })
            .collect()
    }
}

/// Quintic Hermite spline of `I_nl(k)` on `[0, k_max]` (values, first and second derivatives
/// from quadrature at the knots), evaluated with its analytic derivative.
#[derive(Debug, Clone)]
pub struct KSpline(QuinticHermiteSpline);

impl KSpline {
    /// Tabulates the integrals of `basis` with knot spacing ≤ `h`.
    /// Stops early with [`Error::Interrupted`] when an interruption is requested.
    pub fn new(basis: &TabulatedBasis, k_max: f64, h: f64) -> Result<KSpline> {
        let width = (basis.lmax + 1) * basis.n_radial;
        let spline = QuinticHermiteSpline::new(0.0, k_max, h, width, &|k, row| {
            if !crate::interrupt::is_requested() {
                basis.integrals_d2(k, row);
            }
        })?;
        crate::interrupt::check()?;
        Ok(KSpline(spline))
    }

    /// Number of intervals of the spline on [0, k_max] with spacing ≤ h.
    pub fn intervals(k_max: f64, h: f64) -> usize {
        QuinticHermiteSpline::intervals(k_max, h)
    }

    /// Elementary terms of building the spline for `basis` (knots × quadrature nodes ×
    /// (Bessel functions + radial functions)).
    pub fn cost(basis: &TabulatedBasis, k_max: f64, h: f64) -> f64 {
        let knots = (k_max / h).ceil().max(8.0) + 1.0;
        let width = ((basis.lmax + 1) * basis.n_radial) as f64;
        knots * basis.nodes.len() as f64 * (3.0 * width + basis.lmax as f64 + 2.0)
    }

    /// I(k) and dI/dk into `out`, `dout` (layout l*nr + n); k must be in [0, k_max].
    #[inline]
    pub fn eval(&self, k: f64, out: &mut [f64], dout: &mut [f64]) {
        self.0.evaluate(k, out, dout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::basis::gto::GtoBasis;
    use crate::basis::monomial::MonomialBasis;

    #[test]
    fn gto_closed_form_integral() {
        // a single GTO (max_radial = 0) is exp(-r²/(2 r0²)) normalised; its k-space
        // integral has the closed form of docs/science.md §2.4 with n = 0, l = 0:
        // √(π/2) s³ · 1F1(3/2; 3/2; -k²s²/2) = √(π/2) s³ e^{-k²s²/2}
        let r0 = 1.3;
        let gto = GtoBasis::new(0, r0).unwrap();
        let b = TabulatedBasis::new(&gto, 0, 0.5f64.min(PI / 10.0)).unwrap();
        let norm = (2.0 / (r0.powi(3) * PI.sqrt() / 2.0)).sqrt();
        let mut out = vec![0.0; 1];
        let mut d = vec![0.0; 1];
        for &k in &[0.0, 0.7, 2.5, 6.0] {
            b.kspace_integrals(k, &mut out, Some(&mut d));
            let exact = norm * (PI / 2.0).sqrt() * r0.powi(3) * (-k * k * r0 * r0 / 2.0).exp();
            assert!((out[0] - exact).abs() < 1e-13, "{k} {} {exact}", out[0]);
            assert!((d[0] + k * r0 * r0 * exact).abs() < 1e-12);
        }
    }

    #[test]
    fn gto_integrals_match_the_closed_form() {
        // every (l, n): the quadrature against GtoBasis's ₁F₁ closed form, values and
        // k-derivatives, and the second derivative against finite differences of the first
        let gto = GtoBasis::new(4, 3.0).unwrap();
        let b = TabulatedBasis::new(&gto, 5, PI / 8.0).unwrap();
        let (mut v, mut d) = (vec![0.0; 30], vec![0.0; 30]);
        let (mut e, mut de) = (vec![0.0; 5], vec![0.0; 5]);
        for &k in &[0.0, 0.4, 1.9, 5.5] {
            b.kspace_integrals(k, &mut v, Some(&mut d));
            let mut d2 = vec![[0.0; 3]; 30];
            b.integrals_d2(k, &mut d2);
            let hk = 1e-5;
            let (mut dp, mut dm) = (vec![[0.0; 3]; 30], vec![[0.0; 3]; 30]);
            b.integrals_d2(k + hk, &mut dp);
            b.integrals_d2((k - hk).abs(), &mut dm);
            for l in 0..=5 {
                gto.kspace_integrals_with_derivatives(l, k, &mut e, &mut de);
                for n in 0..5 {
                    let x = l * 5 + n;
                    assert!((v[x] - e[n]).abs() < 1e-12, "l={l} n={n} k={k}");
                    assert!((d[x] - de[n]).abs() < 1e-11, "l={l} n={n} k={k}");
                    assert!((d2[x][0] - e[n]).abs() < 1e-12 && (d2[x][1] - de[n]).abs() < 1e-11);
                    if k > 0.0 {
                        let fd = (dp[x][1] - dm[x][1]) / (2.0 * hk);
                        assert!((d2[x][2] - fd).abs() < 1e-7, "l={l} n={n} k={k}");
                    }
                }
            }
        }
    }

    #[test]
    fn monomial_projection_is_closed_form() {
        // √(4π) ∫_0^rc r² R_00 dr with R_00 = √(3/rc³): √(4π) √(3/rc³) rc³/3
        let rc = 2.2;
        let mono = MonomialBasis::new(0, 2, rc).unwrap();
        let b = TabulatedBasis::new(&mono, 2, 0.3).unwrap();
        let p = b.project_l0(|_| 1.0);
        let exact = (4.0 * PI).sqrt() * (3.0 / rc.powi(3)).sqrt() * rc.powi(3) / 3.0;
        assert!((p[0] - exact).abs() < 1e-13 * exact);
    }

    #[test]
    fn spline_matches_quadrature() {
        let gto = GtoBasis::new(3, 2.5).unwrap();
        let mono = MonomialBasis::new(3, 3, 2.5).unwrap();
        let bases: [&dyn RadialBasis; 2] = [&gto, &mono];
        for basis in bases {
            let k_max = 1.2 * PI / 0.3;
            let b = TabulatedBasis::new(basis, 3, 0.3f64.min(PI / k_max)).unwrap();
            let s = KSpline::new(&b, k_max, (k_max / 64.0).min(0.05 / 2.5)).unwrap();
            let w = 16;
            let (mut a, mut da, mut e, mut de) =
                (vec![0.0; w], vec![0.0; w], vec![0.0; w], vec![0.0; w]);
            for q in 0..157 {
                let k = k_max * (q as f64 + 0.37) / 157.0;
                s.eval(k, &mut a, &mut da);
                b.kspace_integrals(k, &mut e, Some(&mut de));
                for x in 0..w {
                    assert!((a[x] - e[x]).abs() < 1e-12, "k={k} {} {}", a[x], e[x]);
                    assert!((da[x] - de[x]).abs() < 1e-10, "dk={k} {} {}", da[x], de[x]);
                }
            }
        }
    }
}
