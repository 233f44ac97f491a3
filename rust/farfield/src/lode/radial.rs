//! LODE's atom densities g_p and ĝ_p. The radial basis (GTO or monomial) comes from
//! [`crate::basis`], tabulated for the k-space integrals by
//! [`crate::basis::tabulated::TabulatedBasis`] and splined by
//! [`crate::basis::tabulated::KSpline`].

use crate::error::{Error, Result};
use crate::kernel::{Kernel, RangeSplit};
use std::f64::consts::PI;

/// The LODE atom density g_p (docs/science.md §2.2): p = 0 is the L2-normalised Gaussian, p > 0
/// the smeared 1/r^p (long-range part of the range split).
#[derive(Debug, Clone)]
pub struct Density {
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
        Ok(Density { smearing, split })
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

/// Radial basis of a LODE expansion (default: [`BasisKind::Gto`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BasisKind {
    /// featomic's GTO (same radial functions for every l, Löwdin-orthonormalised on
    /// [0, ∞)), `radius` = r0
    #[default]
    Gto,
    /// r^(l+2n) on [0, radius], Löwdin-orthonormalised per l (featomic `Monomials`)
    Monomial,
}

impl BasisKind {
    /// The basis with `max_radial + 1` functions for every `l ≤ max_angular`.
    pub(crate) fn build(
        self,
        max_radial: usize,
        max_angular: usize,
        radius: f64,
    ) -> Result<Box<dyn crate::basis::RadialBasis>> {
        Ok(match self {
            BasisKind::Gto => Box::new(crate::basis::gto::GtoBasis::new(max_radial, radius)?),
            BasisKind::Monomial => Box::new(crate::basis::monomial::MonomialBasis::new(
                max_radial,
                max_angular,
                radius,
            )?),
        })
    }
}
