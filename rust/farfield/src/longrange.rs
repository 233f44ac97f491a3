//! The common interface of the three ways to sum a pair kernel (Ewald, PME, direct).
//!
//! QEq's matrix-free solve and LODE's mesh path call "apply the kernel to these charges"
//! through [`LongRangeSum`] without caring which method does it.

use crate::error::{Error, Result};
use crate::math::linalg::{Mat3, Vec3};
use crate::system::System;

/// Which quantities to compute (the energy is always computed). The default asks for the
/// energy alone; the struct is `#[non_exhaustive]` (quantities may be added), so build it with
/// [`Request::all`], or [`Request::default`] and the `with_*` methods:
///
/// ```
/// use farfield::longrange::Request;
/// let request = Request::default().with_forces(true);
/// assert!(request.forces && !request.potentials && !request.virial);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Request {
    /// Per-atom potentials φ_i (E = ½ Σ q_i φ_i). Default `false`.
    pub potentials: bool,
    /// Forces -∂E/∂r_i. Default `false`.
    pub forces: bool,
    /// Virial ∂E/∂ε (strain derivative); stress = virial / V for periodic systems (the direct
    /// sum of an open system gives the pair virial). Default `false`.
    pub virial: bool,
}

impl Request {
    /// Everything.
    pub fn all() -> Request {
        Request {
            potentials: true,
            forces: true,
            virial: true,
        }
    }

    /// The same request, with or without the per-atom potentials.
    pub fn with_potentials(mut self, potentials: bool) -> Request {
        self.potentials = potentials;
        self
    }

    /// The same request, with or without the forces.
    pub fn with_forces(mut self, forces: bool) -> Request {
        self.forces = forces;
        self
    }

    /// The same request, with or without the virial.
    pub fn with_virial(mut self, virial: bool) -> Request {
        self.virial = virial;
        self
    }
}

/// What a long-range sum returns, in Gaussian units (multiply by a prefactor outside).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Output {
    /// Total energy E = ½ Σ_{i,j} Σ'_L q_i q_j v(|r_j - r_i + L|).
    pub energy: f64,
    /// φ_i with E = ½ Σ q_i φ_i, when requested.
    pub potentials: Option<Vec<f64>>,
    /// F_i = -∂E/∂r_i, when requested.
    pub forces: Option<Vec<Vec3>>,
    /// ∂E/∂ε_αβ for a homogeneous strain of positions and cell, when requested (periodic only).
    /// The ASE stress is this divided by the volume.
    pub virial: Option<Mat3>,
}

/// A method that sums a pair kernel over all pairs (and periodic images) of a system.
pub trait LongRangeSum: Send + Sync {
    /// Computes the energy (and what `request` asks for) of `charges` placed on `system`.
    fn compute(&self, system: &System, charges: &[f64], request: Request) -> Result<Output>;
}

/// Largest accepted charge magnitude: products q_i q_j and Σ q² stay far from overflow.
pub const MAX_CHARGE: f64 = 1e100;

/// Checks that charges are finite and at most [`MAX_CHARGE`] in magnitude (larger ones would
/// overflow q², giving infinities and NaN).
pub(crate) fn check_charges(charges: &[f64]) -> Result<()> {
    crate::error::check_finite("charges", charges)?;
    let largest = charges.iter().fold(0.0f64, |m, q| m.max(q.abs()));
    if largest > MAX_CHARGE {
        return Err(Error::parameter(
            "charges",
            format!(
                "magnitudes above {MAX_CHARGE:e} are refused (their products would overflow), \
                 got {largest:e}; rescale them and multiply the results by the square of the scale"
            ),
        ));
    }
    Ok(())
}
