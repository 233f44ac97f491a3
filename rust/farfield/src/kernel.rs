//! The pair kernel v(r) = 1/r^p and its Gaussian range split (docs/science.md §1.1-1.3).
//!
//! With x = r²/(2σ²), a = p/2 and the regularized incomplete gamma functions P and Q:
//!
//! * short range  V_SR(r) = Q(a, x) / r^p       (summed in real space)
//! * long range   V_LR(r) = P(a, x) / r^p       (smooth, summed in reciprocal space)
//! * Fourier transform of the long range part, with y = k²σ²/2 and b = (3 - p)/2:
//!   V̂_LR(k) = π^{3/2} (2σ²)^b / Γ(a) · y^{-b} Γ(b, y)
//! * self term V_LR(0) = 1 / (Γ(a + 1) (2σ²)^a)
//! * k = 0: for p < 3 a neutralizing background (coefficient c_bg), for p > 3 the finite
//!   V̂_LR(0), for p = 3 nothing (and a net charge is an error).
//!
//! One [`RangeSplit`] serves Ewald, PME, LODE and QEq.

use crate::error::{Error, Result};
use crate::math::special::{
    erfc, gamma, gamma_p, gamma_q, scaled_upper_gamma, upper_gamma, PI_3_2, SQRT_PI,
};
use std::f64::consts::PI;

/// The pair kernel 1/r^p for a real exponent p > 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Kernel {
    exponent: f64,
}

impl Kernel {
    /// Creates the kernel 1/r^p; p must be finite and positive.
    pub fn new(exponent: f64) -> Result<Kernel> {
        if !(exponent.is_finite() && exponent > 0.0) {
            return Err(Error::parameter(
                "exponent",
                format!("the exponent p of 1/r^p must be positive and finite, got {exponent}"),
            ));
        }
        if exponent > 40.0 {
            return Err(Error::parameter(
                "exponent",
                format!("exponents above 40 are not supported, got {exponent}"),
            ));
        }
        Ok(Kernel { exponent })
    }

    /// The Coulomb kernel 1/r.
    pub fn coulomb() -> Kernel {
        Kernel { exponent: 1.0 }
    }

    /// The exponent p.
    pub fn exponent(&self) -> f64 {
        self.exponent
    }

    /// `Some(p)` when p is an integer.
    pub fn integer_exponent(&self) -> Option<u32> {
        let r = self.exponent.round();
        if (self.exponent - r).abs() < 1e-12 {
            Some(r as u32)
        } else {
            None
        }
    }

    /// 1/r^p and its derivative with respect to r.
    #[inline]
    pub fn value(&self, r: f64) -> (f64, f64) {
        let v = match self.integer_exponent() {
            Some(1) => 1.0 / r,
            _ => r.powf(-self.exponent),
        };
        (v, -self.exponent * v / r)
    }

    /// Checks that a net charge `total` (relative to the scale `norm` = sqrt(Σq²)) is allowed:
    /// for p = 3 the k = 0 term diverges logarithmically unless the cell is neutral.
    pub fn check_net_charge(&self, total: f64, norm: f64) -> Result<()> {
        if self.integer_exponent() == Some(3) && total.abs() > 1e-10 * norm.max(1e-300) {
            return Err(Error::Divergent(format!(
                "the periodic sum of 1/r^3 diverges for a net charge (sum of charges = {total:.6e}); \
                 make the cell neutral"
            )));
        }
        Ok(())
    }

    /// The range split of this kernel with Gaussian smearing σ (standard deviation).
    pub fn split(&self, smearing: f64) -> Result<RangeSplit> {
        RangeSplit::new(*self, smearing)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Form {
    Coulomb,
    /// integer p > 1: 2a is an integer, closed forms by recursion
    Integer(u32),
    General,
}

/// The Coulomb short-range part erfc(r/(√2σ))/r and its r-derivative: the interaction
/// screened by Gaussian charges of width σ. [`RangeSplit::short_range`] uses it for p = 1 and
/// QEq for its per-pair Gaussian widths γ_ij (docs/science.md §3.1).
#[inline]
pub(crate) fn screened_coulomb(r: f64, sigma: f64) -> (f64, f64) {
    let inv_r = 1.0 / r;
    let sx = r * std::f64::consts::FRAC_1_SQRT_2 / sigma;
    let e = (-sx * sx).exp();
    let v = erfc(sx) * inv_r;
    // d/dr erfc(r/(√2σ))/r = -v/r - 2 √x e^{-x} / (√π r²), x = r²/(2σ²)
    let dv = -(v + 2.0 * sx * e / SQRT_PI * inv_r) * inv_r;
    (v, dv)
}

/// The Gaussian range split of a [`Kernel`]: everything Ewald-like sums need.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSplit {
    kernel: Kernel,
    smearing: f64,
    form: Form,
    a: f64,
    b: f64,
    gamma_a: f64,
    two_sigma2: f64,
    fourier_prefactor: f64,
    self_potential: f64,
}

impl RangeSplit {
    /// Creates the split; σ must be positive and finite.
    pub fn new(kernel: Kernel, smearing: f64) -> Result<RangeSplit> {
        if !(smearing.is_finite() && smearing > 0.0) {
            return Err(Error::parameter(
                "smearing",
                format!("the smearing must be positive and finite, got {smearing}"),
            ));
        }
        let p = kernel.exponent;
        let form = match kernel.integer_exponent() {
            Some(1) => Form::Coulomb,
            Some(n) => Form::Integer(n),
            None => Form::General,
        };
        let a = p / 2.0;
        let b = (3.0 - p) / 2.0;
        let two_sigma2 = 2.0 * smearing * smearing;
        let gamma_a = gamma(a);
        Ok(RangeSplit {
            kernel,
            smearing,
            form,
            a,
            b,
            gamma_a,
            two_sigma2,
            fourier_prefactor: PI_3_2 * two_sigma2.powf(b) / gamma_a,
            self_potential: 1.0 / (gamma(a + 1.0) * two_sigma2.powf(a)),
        })
    }

    /// The kernel being split.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// The smearing σ.
    pub fn smearing(&self) -> f64 {
        self.smearing
    }

    /// Q(a, x) for the split's a.
    #[inline]
    fn upper_q(&self, x: f64) -> f64 {
        match self.form {
            Form::Coulomb => erfc(x.sqrt()),
            Form::Integer(n) => {
                if n % 2 == 0 {
                    // Q(n/2, x) = e^{-x} Σ_{k < n/2} x^k / k!
                    let m = n / 2;
                    let mut term = 1.0;
                    let mut sum = 1.0;
                    for k in 1..m {
                        term *= x / k as f64;
                        sum += term;
                    }
                    (-x).exp() * sum
                } else {
                    // Q(m + 1/2, x) = erfc(√x) + e^{-x} Σ_{k=0}^{m-1} x^{k+1/2} / Γ(k + 3/2)
                    let m = (n - 1) / 2;
                    let sx = x.sqrt();
                    let mut term = sx / (0.5 * SQRT_PI); // x^{1/2}/Γ(3/2)
                    let mut sum = term;
                    for k in 1..m {
                        term *= x / (k as f64 + 0.5);
                        sum += term;
                    }
                    erfc(sx) + (-x).exp() * sum
                }
            }
            Form::General => gamma_q(self.a, x),
        }
    }

    /// Short-range part V_SR(r) and its derivative dV_SR/dr.
    #[inline]
    pub fn short_range(&self, r: f64) -> (f64, f64) {
        let x = r * r / self.two_sigma2;
        let inv_r = 1.0 / r;
        match self.form {
            Form::Coulomb => screened_coulomb(r, self.smearing),
            _ => {
                let p = self.kernel.exponent;
                let rp = self.kernel.value(r).0;
                let q = self.upper_q(x);
                let xa_e = (self.a * x.ln() - x).exp() / self.gamma_a;
                (q * rp, -(p * q + 2.0 * xa_e) * rp * inv_r)
            }
        }
    }

    /// Long-range part V_LR(r) and its derivative dV_LR/dr, stable down to r = 0.
    pub fn long_range(&self, r: f64) -> (f64, f64) {
        let x = r * r / self.two_sigma2;
        if x < self.a + 1.0 {
            // V_LR = (2σ²)^{-a} e^{-x} S(a, x) / Γ(a), S(a,x) = Σ x^n / (a (a+1) ... (a+n));
            // d/dx [e^{-x} S(a, x)] = -e^{-x} S(a+1, x)
            let scale = self.two_sigma2.powf(-self.a) / self.gamma_a * (-x).exp();
            let (s0, s1) = series_pair(self.a, x);
            (scale * s0, -scale * s1 * 2.0 * r / self.two_sigma2)
        } else {
            let (v, dv) = self.kernel.value(r);
            let (sv, sdv) = self.short_range(r);
            (v - sv, dv - sdv)
        }
    }

    /// V_LR(0) = 1 / (Γ(p/2 + 1) (2σ²)^{p/2}): the potential of a smeared charge at its centre.
    pub fn self_potential(&self) -> f64 {
        self.self_potential
    }

    /// Fourier transform of the long-range part V̂_LR at k² > 0, and its derivative with
    /// respect to k².
    #[inline]
    pub fn fourier(&self, k2: f64) -> (f64, f64) {
        let y = k2 * self.two_sigma2 / 4.0;
        match self.form {
            Form::Coulomb => {
                let v = 4.0 * PI * (-y).exp() / k2;
                (v, -v * (self.two_sigma2 / 4.0 + 1.0 / k2))
            }
            _ => {
                let g = self.scaled_gamma(y);
                let v = self.fourier_prefactor * g;
                // d/dy [y^{-b} Γ(b, y)] = -(b G + e^{-y}) / y ; dy/dk² = σ²/2
                let dv = -self.fourier_prefactor * (self.b * g + (-y).exp()) / y
                    * (self.two_sigma2 / 4.0);
                (v, dv)
            }
        }
    }

    /// y^{-b} Γ(b, y), with closed-form recursions for integer p at small y.
    fn scaled_gamma(&self, y: f64) -> f64 {
        if let Form::Integer(n) = self.form {
            if y < 2.0 {
                let e = (-y).exp();
                // start at b0 = 1/2 (even p) or b0 = 0 / 1 (odd p) and recurse down:
                // G_b = (y G_{b+1} - e^{-y}) / b
                let (mut g, mut b) = if n % 2 == 0 {
                    (SQRT_PI * erfc(y.sqrt()) / y.sqrt(), 0.5)
                } else {
                    (upper_gamma(0.0, y), 0.0)
                };
                while b > self.b + 0.25 {
                    b -= 1.0;
                    g = (y * g - e) / b;
                }
                return g;
            }
        }
        scaled_upper_gamma(self.b, y)
    }

    /// V̂_LR(0) = 2π^{3/2} (2σ²)^{(3-p)/2} / ((p-3) Γ(p/2)) for p > 3; `None` otherwise
    /// (the k = 0 term diverges for p ≤ 3).
    pub fn fourier_at_zero(&self) -> Option<f64> {
        if self.kernel.exponent > 3.0 {
            Some(-self.fourier_prefactor / self.b)
        } else {
            None
        }
    }

    /// Background coefficient c_bg = ½ ∫ V_SR d³r = π^{3/2} (2σ²)^{(3-p)/2} / ((3-p) Γ(p/2))
    /// for p < 3; `None` otherwise.
    pub fn background(&self) -> Option<f64> {
        if self.kernel.exponent < 3.0 {
            Some(self.fourier_prefactor / (2.0 * self.b))
        } else {
            None
        }
    }

    /// The k = 0 contribution to the energy of a cell of volume `volume` with net charge
    /// `total`: -c_bg Q²/V for p < 3, V̂(0) Q²/(2V) for p > 3, 0 for p = 3.
    pub fn k0_energy(&self, total: f64, volume: f64) -> f64 {
        if let Some(c) = self.background() {
            -c * total * total / volume
        } else if let Some(v0) = self.fourier_at_zero() {
            v0 * total * total / (2.0 * volume)
        } else {
            0.0
        }
    }

    /// The k = 0 contribution to every atom's potential (φ_i, with E = ½ Σ q_i φ_i):
    /// -2 c_bg Q/V for p < 3, V̂(0) Q/V for p > 3, 0 for p = 3.
    pub fn k0_potential(&self, total: f64, volume: f64) -> f64 {
        if let Some(c) = self.background() {
            -2.0 * c * total / volume
        } else if let Some(v0) = self.fourier_at_zero() {
            v0 * total / volume
        } else {
            0.0
        }
    }

    /// Regularized lower incomplete gamma P(p/2, x) (exposed for densities built on it).
    pub fn lower_p(&self, x: f64) -> f64 {
        gamma_p(self.a, x)
    }
}

/// Returns (S(a, x), S(a+1, x)) with S(a,x) = Σ_n x^n / (a (a+1) ... (a+n)).
fn series_pair(a: f64, x: f64) -> (f64, f64) {
    let mut t0 = 1.0 / a;
    let mut t1 = 1.0 / (a + 1.0);
    let (mut s0, mut s1) = (t0, t1);
    let mut k = 0.0;
    loop {
        k += 1.0;
        t0 *= x / (a + k);
        t1 *= x / (a + 1.0 + k);
        s0 += t0;
        s1 += t1;
        if t0.abs() < 1e-17 * s0.abs() && t1.abs() < 1e-17 * s1.abs() || k > 500.0 {
            break;
        }
    }
    (s0, s1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::special::exp_int_e1;

    fn close(a: f64, b: f64, rtol: f64) -> bool {
        (a - b).abs() <= rtol * b.abs().max(1e-300)
    }

    /// The closed forms of docs/science.md §1.2 (table of G_p).
    fn g_table(p: u32, x: f64) -> f64 {
        let e = (-x).exp();
        let erfcx = erfc(x.sqrt());
        match p {
            1 => e / x,
            2 => (PI / x).sqrt() * erfcx,
            3 => exp_int_e1(x),
            4 => 2.0 * (e - (PI * x).sqrt() * erfcx),
            5 => e - x * exp_int_e1(x),
            6 => ((2.0 - 4.0 * x) * e + 4.0 * SQRT_PI * x.powf(1.5) * erfcx) / 3.0,
            7 => ((1.0 - x) * e + x * x * exp_int_e1(x)) / 2.0,
            8 => {
                -(2.0 / 15.0)
                    * ((-3.0 + 2.0 * x - 4.0 * x * x) * e + 4.0 * SQRT_PI * x.powf(2.5) * erfcx)
            }
            9 => ((x * x - x + 2.0) * e - x.powi(3) * exp_int_e1(x)) / 6.0,
            _ => unreachable!(),
        }
    }

    #[test]
    fn fourier_matches_closed_forms() {
        let sigma = 0.7;
        for p in 1..=9u32 {
            let split = Kernel::new(p as f64).unwrap().split(sigma).unwrap();
            // the general (non-integer) path, evaluated at the same p
            let general = RangeSplit {
                form: Form::General,
                ..split.clone()
            };
            for &k in &[0.05, 0.3, 1.0, 2.5, 4.0, 7.0] {
                let k2: f64 = k * k;
                let x = k2 * sigma * sigma / 2.0;
                let b = (3.0 - p as f64) / 2.0;
                let expected =
                    PI_3_2 * (2.0 * sigma * sigma).powf(b) / gamma(p as f64 / 2.0) * g_table(p, x);
                let tol = if x > 12.0 { 1e-9 } else { 1e-12 };
                assert!(close(split.fourier(k2).0, expected, tol), "p={p} k={k}");
                assert!(
                    close(general.fourier(k2).0, expected, tol),
                    "general p={p} k={k}"
                );
            }
        }
    }

    #[test]
    fn fourier_derivative_by_finite_differences() {
        for &p in &[1.0, 2.0, 2.5, 3.0, 4.0, 6.0, 7.3] {
            let split = Kernel::new(p).unwrap().split(0.6).unwrap();
            for &k2 in &[0.2, 1.0, 5.0, 20.0] {
                let h = 1e-5 * k2;
                let fd = (split.fourier(k2 + h).0 - split.fourier(k2 - h).0) / (2.0 * h);
                assert!(close(split.fourier(k2).1, fd, 1e-7), "p={p} k2={k2}");
            }
        }
    }

    #[test]
    fn split_adds_up_and_derivatives() {
        for &p in &[1.0, 2.0, 2.5, 3.0, 5.0, 6.0, 0.5] {
            let kernel = Kernel::new(p).unwrap();
            let split = kernel.split(0.8).unwrap();
            for &r in &[0.01, 0.3, 1.0, 1.7, 3.0, 6.0] {
                let (sr, dsr) = split.short_range(r);
                let (lr, dlr) = split.long_range(r);
                let (v, dv) = kernel.value(r);
                assert!(close(sr + lr, v, 1e-13), "p={p} r={r}");
                assert!(close(dsr + dlr, dv, 1e-11), "p={p} r={r}");
                let h = 1e-5 * r.max(0.1);
                let fd = (split.short_range(r + h).0 - split.short_range(r - h).0) / (2.0 * h);
                assert!((dsr - fd).abs() < 1e-7 * dsr.abs() + 1e-9, "p={p} r={r}");
                let fd = (split.long_range(r + h).0 - split.long_range(r - h).0) / (2.0 * h);
                assert!((dlr - fd).abs() < 1e-7 * dlr.abs() + 1e-9, "p={p} r={r}");
            }
            // V_LR(0)
            assert!(close(
                split.long_range(1e-9).0,
                split.self_potential(),
                1e-12
            ));
        }
        // p = 1 self term √(2/π)/σ; p = 6: 1/(48 σ⁶)
        let s = 0.8;
        assert!(close(
            Kernel::new(1.0).unwrap().split(s).unwrap().self_potential(),
            (2.0 / PI).sqrt() / s,
            1e-14
        ));
        assert!(close(
            Kernel::new(6.0).unwrap().split(s).unwrap().self_potential(),
            1.0 / (48.0 * s.powi(6)),
            1e-14
        ));
    }

    #[test]
    fn k0_terms() {
        let s = 0.5;
        // p = 1: c_bg = π σ²
        let split = Kernel::new(1.0).unwrap().split(s).unwrap();
        assert!(close(split.background().unwrap(), PI * s * s, 1e-14));
        // p > 3: V̂(0) equals the limit of the Fourier transform
        let split = Kernel::new(6.0).unwrap().split(s).unwrap();
        assert!(close(
            split.fourier_at_zero().unwrap(),
            split.fourier(1e-12).0,
            1e-9
        ));
        let split = Kernel::new(4.5).unwrap().split(s).unwrap();
        assert!(close(
            split.fourier_at_zero().unwrap(),
            split.fourier(1e-14).0,
            1e-6
        ));
    }

    #[test]
    fn bad_parameters() {
        assert!(Kernel::new(0.0).is_err());
        assert!(Kernel::new(-1.0).is_err());
        assert!(Kernel::new(f64::NAN).is_err());
        assert!(Kernel::coulomb().split(0.0).is_err());
        assert!(Kernel::new(3.0)
            .unwrap()
            .check_net_charge(1.0, 1.0)
            .is_err());
        assert!(Kernel::new(3.0).unwrap().check_net_charge(0.0, 1.0).is_ok());
    }
}
