//! LODE radial pieces: the densities g_p and ĝ_p, orthonormal radial bases (GTO, monomial)
//! tabulated on a Gauss-Legendre grid, and the radial integrals built on them.
//! The radial functions themselves come from `crate::basis` (GTO, monomial); this file
//! tabulates them on a quadrature grid for the LODE-specific integrals.

use crate::error::{Error, Result};
use crate::kernel::{Kernel, RangeSplit};
use std::f64::consts::PI;

/// The LODE atom density g_p (docs/science.md §2.2): p = 0 is the L2-normalised Gaussian, p > 0
/// the smeared 1/r^p (long-range part of the range split).
#[derive(Debug, Clone)]
pub struct Density {
    exponent: f64,
    smearing: f64,
    split: Option<RangeSplit>,
}

/// Largest accepted smearing σ (Å) of the LODE density (non-finite features at 1e300).
pub const MAX_SMEARING: f64 = 1e6;

impl Density {
    /// Creates the density; p ≥ 0 finite, 0 < σ ≤ [`MAX_SMEARING`].
    pub fn new(exponent: f64, smearing: f64) -> Result<Density> {
        if !(smearing.is_finite() && smearing > 0.0) {
            return Err(Error::parameter(
                "smearing",
                format!("the smearing must be positive and finite, got {smearing}"),
            ));
        }
        if smearing > MAX_SMEARING {
            // powers of σ in the density's normalisation overflow far beyond any physical width
            return Err(Error::parameter(
                "smearing",
                format!("the smearing must be at most {MAX_SMEARING:e} Å, got {smearing}"),
            ));
        }
        if !(exponent.is_finite() && exponent >= 0.0) {
            return Err(Error::parameter(
                "exponent",
                format!("the exponent must be >= 0 and finite, got {exponent}"),
            ));
        }
        let split = if exponent == 0.0 {
            None
        } else {
            Some(Kernel::new(exponent)?.split(smearing)?)
        };
        Ok(Density {
            exponent,
            smearing,
            split,
        })
    }

    /// The exponent p.
    pub fn exponent(&self) -> f64 {
        self.exponent
    }

    /// The smearing σ.
    pub fn smearing(&self) -> f64 {
        self.smearing
    }

    /// g_p(r).
    pub fn real(&self, r: f64) -> f64 {
        match &self.split {
            None => {
                let s2 = self.smearing * self.smearing;
                (PI * s2).powf(-0.75) * (-r * r / (2.0 * s2)).exp()
            }
            Some(split) => split.long_range(r).0,
        }
    }

    /// ĝ_p(k) and dĝ_p/dk at k > 0.
    pub fn fourier(&self, k: f64) -> (f64, f64) {
        match &self.split {
            None => {
                let s2 = self.smearing * self.smearing;
                let v = (4.0 * PI * s2).powf(0.75) * (-k * k * s2 / 2.0).exp();
                (v, -k * s2 * v)
            }
            Some(split) => {
                let (v, dv) = split.fourier(k * k);
                (v, 2.0 * k * dv)
            }
        }
    }

    /// ĝ_p(0) when finite (p = 0 and p > 3); `None` otherwise.
    pub fn fourier_at_zero(&self) -> Option<f64> {
        match &self.split {
            None => Some((4.0 * PI * self.smearing * self.smearing).powf(0.75)),
            Some(split) => split.fourier_at_zero(),
        }
    }
}

/// Composite Gauss-Legendre rule on [a, b] with panels of at most `h`.
pub fn composite_rule(a: f64, b: f64, h: f64, order: usize) -> (Vec<f64>, Vec<f64>) {
    let (x, w) = crate::math::quadrature::gauss_legendre(order);
    let panels = (((b - a) / h).ceil() as usize).clamp(1, 100_000);
    let width = (b - a) / panels as f64;
    let mut nodes = Vec::with_capacity(panels * order);
    let mut weights = Vec::with_capacity(panels * order);
    for p in 0..panels {
        let lo = a + p as f64 * width;
        for k in 0..order {
            nodes.push(lo + 0.5 * width * (x[k] + 1.0));
            weights.push(0.5 * width * w[k]);
        }
    }
    (nodes, weights)
}

/// Spherical Bessel functions j_0..j_lmax at x ≥ 0 into `out`.
pub fn spherical_bessel(lmax: usize, x: f64, out: &mut [f64]) {
    if x < (lmax as f64 + 1.0).max(1.0) {
        // power series for each l
        let x2 = -0.5 * x * x;
        let mut pref = 1.0; // x^l / (2l+1)!!
        for l in 0..=lmax {
            if l > 0 {
                pref *= x / (2 * l + 1) as f64;
            }
            let mut term = 1.0;
            let mut sum = 1.0;
            for k in 1..200 {
                term *= x2 / (k as f64 * (2 * l + 2 * k + 1) as f64);
                sum += term;
                if term.abs() < 1e-17 * sum.abs() {
                    break;
                }
            }
            out[l] = pref * sum;
        }
    } else {
        let (s, c) = x.sin_cos();
        out[0] = s / x;
        if lmax >= 1 {
            out[1] = s / (x * x) - c / x;
        }
        for l in 2..=lmax {
            out[l] = (2 * l - 1) as f64 / x * out[l - 1] - out[l - 2];
        }
    }
}

/// Radial basis kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BasisKind {
    /// featomic's GTO (same radial functions for every l), `radius` = r0
    Gto,
    /// r^(l+2n) on [0, radius], Löwdin-orthonormalised per l (featomic `Monomials`)
    Monomial,
}

/// An orthonormal radial basis R_nl tabulated on a quadrature grid.
#[derive(Debug, Clone)]
pub struct RadialBasis {
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
    /// the largest r where the basis is non-negligible
    pub extent: f64,
}

/// Symmetric eigen-decomposition (cyclic Jacobi) of a small matrix.
fn sym_eigh(a: &[Vec<f64>]) -> (Vec<f64>, Vec<Vec<f64>>) {
    // cyclic Jacobi
    let n = a.len();
    let mut m: Vec<Vec<f64>> = a.to_vec();
    let mut v = vec![vec![0.0; n]; n];
    for i in 0..n {
        v[i][i] = 1.0;
    }
    for _sweep in 0..100 {
        let mut off = 0.0;
        for i in 0..n {
            for j in (i + 1)..n {
                off += m[i][j] * m[i][j];
            }
        }
        if off < 1e-30 {
            break;
        }
        for p in 0..n {
            for q in (p + 1)..n {
                if m[p][q].abs() < 1e-300 {
                    continue;
                }
                let theta = (m[q][q] - m[p][p]) / (2.0 * m[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let mkp = m[k][p];
                    let mkq = m[k][q];
                    m[k][p] = c * mkp - s * mkq;
                    m[k][q] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let mpk = m[p][k];
                    let mqk = m[q][k];
                    m[p][k] = c * mpk - s * mqk;
                    m[q][k] = s * mpk + c * mqk;
                }
                for k in 0..n {
                    let vkp = v[k][p];
                    let vkq = v[k][q];
                    v[k][p] = c * vkp - s * vkq;
                    v[k][q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| m[i][i]).collect(), v)
}

/// Löwdin-orthonormalises primitive functions tabulated at nodes (rows = functions).
fn lowdin(prims: &[Vec<f64>], weights_r2: &[f64]) -> Result<Vec<Vec<f64>>> {
    let n = prims.len();
    let mut norm = vec![0.0; n];
    for i in 0..n {
        let s: f64 = prims[i]
            .iter()
            .zip(weights_r2)
            .map(|(a, w)| a * a * w)
            .sum();
        norm[i] = 1.0 / s.sqrt();
    }
    let mut gram = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..n {
            let s: f64 = (0..weights_r2.len())
                .map(|q| prims[i][q] * prims[j][q] * weights_r2[q])
                .sum();
            gram[i][j] = s * norm[i] * norm[j];
        }
    }
    let (eval, evec) = sym_eigh(&gram);
    if eval.iter().any(|&e| e < 1e-12) {
        return Err(Error::parameter(
            "max_radial",
            "unable to orthonormalise the radial basis: the Gram matrix is singular; use fewer \
             radial functions",
        ));
    }
    let mut out = vec![vec![0.0; weights_r2.len()]; n];
    for i in 0..n {
        for j in 0..n {
            let mut c = 0.0;
            for k in 0..n {
                c += evec[i][k] * evec[j][k] / eval[k].sqrt();
            }
            c *= norm[j];
            for q in 0..weights_r2.len() {
                out[i][q] += c * prims[j][q];
            }
        }
    }
    Ok(out)
}

impl RadialBasis {
    /// Builds the basis on a grid fine enough for densities of width `smearing` and wave
    /// numbers up to `k_max`.
    pub fn new(
        kind: BasisKind,
        max_radial: usize,
        lmax: usize,
        radius: f64,
        smearing: f64,
        k_max: f64,
    ) -> Result<RadialBasis> {
        if !(radius.is_finite() && radius > 0.0) {
            return Err(Error::parameter(
                "radius",
                format!("the basis radius must be positive and finite, got {radius}"),
            ));
        }
        let nr = max_radial + 1;
        let gto = match kind {
            BasisKind::Gto => Some(crate::basis::gto::GtoBasis::new(max_radial, radius)?),
            BasisKind::Monomial => None,
        };
        let extent = match &gto {
            Some(g) => crate::basis::RadialBasis::support(g),
            None => radius,
        };
        let scale = match kind {
            BasisKind::Gto => radius / nr as f64,
            BasisKind::Monomial => radius / (4.0 + nr as f64),
        };
        let h = 2.0
            * scale
                .min(smearing)
                .min(PI / k_max.max(1e-300))
                .max(extent / 4000.0);
        let (nodes, w) = composite_rule(0.0, extent, h, 24);
        let weights_r2: Vec<f64> = nodes.iter().zip(&w).map(|(r, w)| r * r * w).collect();
        let mut values = Vec::with_capacity(lmax + 1);
        let mut buf = vec![0.0; nr];
        for l in 0..=lmax {
            let v = match &gto {
                Some(g) => {
                    let mut v = vec![vec![0.0; nodes.len()]; nr];
                    for (q, &r) in nodes.iter().enumerate() {
                        crate::basis::RadialBasis::evaluate(g, l, r, &mut buf);
                        for n in 0..nr {
                            v[n][q] = buf[n];
                        }
                    }
                    v
                }
                None => {
                    // featomic's `Monomials`: normalise each r^(l+2n) first, then Löwdin.
                    // (`basis::monomial` applies Löwdin to the raw monomials, which is a
                    // different orthonormal basis, so featomic parity needs this one.)
                    let prims: Vec<Vec<f64>> = (0..nr)
                        .map(|n| nodes.iter().map(|&r| r.powi((l + 2 * n) as i32)).collect())
                        .collect();
                    lowdin(&prims, &weights_r2)?
                }
            };
            values.push(v);
        }
        Ok(RadialBasis {
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
            spherical_bessel(lmax + 1, x, &mut j);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bessel_values() {
        let mut j = vec![0.0; 4];
        for &x in &[0.3f64, 2.0, 3.9, 4.1, 12.0] {
            spherical_bessel(3, x, &mut j);
            let (s, c) = x.sin_cos();
            let j2 = (3.0 / (x * x) - 1.0) * s / x - 3.0 * c / (x * x);
            assert!((j[0] - s / x).abs() < 1e-14);
            assert!((j[2] - j2).abs() < 1e-12, "{x}");
        }
    }

    #[test]
    fn gto_closed_form_integral() {
        // a single GTO (max_radial = 0) is exp(-r²/(2 r0²)) normalised; its k-space
        // integral has the closed form of docs/science.md §2.4 with n = 0, l = 0:
        // √(π/2) s³ · 1F1(3/2; 3/2; -k²s²/2) = √(π/2) s³ e^{-k²s²/2}
        let r0 = 1.3;
        let b = RadialBasis::new(BasisKind::Gto, 0, 0, r0, 0.5, 10.0).unwrap();
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
}

/// Quintic Hermite spline of I_nl(k) on [0, k_max] (values, first and second derivatives
/// from quadrature at the knots), evaluated with its analytic derivative.
#[derive(Debug, Clone)]
pub struct KSpline {
    h: f64,
    k_max: f64,
    width: usize,
    /// knots × width × [I, I', I'']
    data: Vec<[f64; 3]>,
}

impl KSpline {
    /// Tabulates the integrals of `basis` with knot spacing ≤ `h`.
    /// Stops early with [`Error::Interrupted`] when an interruption is requested.
    pub fn new(basis: &RadialBasis, k_max: f64, h: f64) -> Result<KSpline> {
        use rayon::prelude::*;
        let intervals = Self::intervals(k_max, h);
        let h = k_max / intervals as f64;
        let width = (basis.lmax + 1) * basis.n_radial;
        let rows: Vec<Vec<[f64; 3]>> = (0..=intervals)
            .into_par_iter()
            .map(|q| {
                if crate::interrupt::is_requested() {
                    return Vec::new();
                }
                basis.integrals_d2(q as f64 * h)
            })
            .collect();
        crate::interrupt::check()?;
        Ok(KSpline {
            h,
            k_max,
            width,
            data: rows.into_iter().flatten().collect(),
        })
    }

    /// Number of intervals of the spline on [0, k_max] with spacing ≤ h.
    pub fn intervals(k_max: f64, h: f64) -> usize {
        ((k_max / h).ceil() as usize).max(8)
    }

    /// Elementary terms of building the spline for `basis` (knots × quadrature nodes ×
    /// (Bessel functions + radial functions)).
    pub fn cost(basis: &RadialBasis, k_max: f64, h: f64) -> f64 {
        let knots = (k_max / h).ceil().max(8.0) + 1.0;
        let width = ((basis.lmax + 1) * basis.n_radial) as f64;
        knots * basis.nodes.len() as f64 * (3.0 * width + basis.lmax as f64 + 2.0)
    }

    /// I(k) and dI/dk into `out`, `dout` (layout l*nr + n); k must be in [0, k_max].
    pub fn eval(&self, k: f64, out: &mut [f64], dout: &mut [f64]) {
        let t = (k / self.h).clamp(0.0, self.k_max / self.h);
        let mut i = t.floor() as usize;
        if (i + 1) * self.width >= self.data.len() {
            i = self.data.len() / self.width - 2;
        }
        let s = t - i as f64;
        let (s2, s3) = (s * s, s * s * s);
        let (s4, s5) = (s3 * s, s3 * s2);
        let h = self.h;
        let hh = [
            1.0 - 10.0 * s3 + 15.0 * s4 - 6.0 * s5,
            h * (s - 6.0 * s3 + 8.0 * s4 - 3.0 * s5),
            h * h * (0.5 * s2 - 1.5 * s3 + 1.5 * s4 - 0.5 * s5),
            h * h * (0.5 * s3 - s4 + 0.5 * s5),
            h * (-4.0 * s3 + 7.0 * s4 - 3.0 * s5),
            10.0 * s3 - 15.0 * s4 + 6.0 * s5,
        ];
        let dh = [
            (-30.0 * s2 + 60.0 * s3 - 30.0 * s4) / h,
            1.0 - 18.0 * s2 + 32.0 * s3 - 15.0 * s4,
            h * (s - 4.5 * s2 + 6.0 * s3 - 2.5 * s4),
            h * (1.5 * s2 - 4.0 * s3 + 2.5 * s4),
            -12.0 * s2 + 28.0 * s3 - 15.0 * s4,
            (30.0 * s2 - 60.0 * s3 + 30.0 * s4) / h,
        ];
        let a = &self.data[i * self.width..(i + 1) * self.width];
        let b = &self.data[(i + 1) * self.width..(i + 2) * self.width];
        for x in 0..self.width {
            let (p0, m0, c0) = (a[x][0], a[x][1], a[x][2]);
            let (p1, m1, c1) = (b[x][0], b[x][1], b[x][2]);
            out[x] = hh[0] * p0 + hh[1] * m0 + hh[2] * c0 + hh[3] * c1 + hh[4] * m1 + hh[5] * p1;
            dout[x] = dh[0] * p0 + dh[1] * m0 + dh[2] * c0 + dh[3] * c1 + dh[4] * m1 + dh[5] * p1;
        }
    }
}

impl RadialBasis {
    /// [I, dI/dk, d²I/dk²] at k for every (l, n), layout l*nr + n.
    pub fn integrals_d2(&self, k: f64) -> Vec<[f64; 3]> {
        let nr = self.n_radial;
        let lmax = self.lmax;
        let mut out = vec![[0.0; 3]; (lmax + 1) * nr];
        let mut j = vec![0.0; lmax + 2];
        for (q, &r) in self.nodes.iter().enumerate() {
            let x = k * r;
            spherical_bessel(lmax + 1, x, &mut j);
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
        out
    }
}

#[cfg(test)]
mod spline_tests {
    use super::*;

    #[test]
    fn spline_matches_quadrature() {
        for kind in [BasisKind::Gto, BasisKind::Monomial] {
            let k_max = 1.2 * PI / 0.3;
            let b = RadialBasis::new(kind, 3, 3, 2.5, 0.3, k_max).unwrap();
            let s = KSpline::new(&b, k_max, (k_max / 64.0).min(0.05 / 2.5)).unwrap();
            let w = 16;
            let (mut a, mut da, mut e, mut de) =
                (vec![0.0; w], vec![0.0; w], vec![0.0; w], vec![0.0; w]);
            for q in 0..157 {
                let k = k_max * (q as f64 + 0.37) / 157.0;
                s.eval(k, &mut a, &mut da);
                b.kspace_integrals(k, &mut e, Some(&mut de));
                for x in 0..w {
                    assert!(
                        (a[x] - e[x]).abs() < 1e-12,
                        "{kind:?} k={k} {} {}",
                        a[x],
                        e[x]
                    );
                    assert!(
                        (da[x] - de[x]).abs() < 1e-10,
                        "{kind:?} dk={k} {} {}",
                        da[x],
                        de[x]
                    );
                }
            }
        }
    }
}
