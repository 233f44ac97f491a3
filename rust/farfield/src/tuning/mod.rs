//! Error estimates and automatic parameters for a requested accuracy.
//!
//! # Accuracy
//!
//! `accuracy` is the target **relative RMS force error**:
//!
//! ```text
//! accuracy = sqrt( (1/N) Σ_i |F_i - F_i^exact|² ) / F_0,
//! F_0 = (Σ_i q_i² / N) / d^{p+1},   d = (V/N)^{1/3}
//! ```
//!
//! F_0 is the force between two typical charges at the mean interparticle distance d. Allowed
//! values are 1e-15 ≤ accuracy < 1.
//!
//! # Error model
//!
//! Random-phase (Kolafa–Perram) estimates, generalised to any p: the force error from the
//! real-space pairs beyond r_c and the k-vectors beyond k_c,
//!
//! ```text
//! ΔF_r² = q_rms² (Q₂/V) · 2π r_c σ² V_SR'(r_c)²
//! ΔF_k² = q_rms² (Q₂/V) · k_c³ V̂_LR(k_c)² / (4π² σ²)
//! ```
//!
//! (Q₂ = Σ q², q_rms² = Q₂/N). For p = 1 these reduce to Kolafa–Perram's
//! 2 q √(Q₂/(r_c V)) e^{-r_c²/(2σ²)} and 2 q √(Q₂/(k_c V)) e^{-k_c²σ²/2}/σ. The parameters
//! are chosen so that each part is at most accuracy/√2 (so that the total stays below the
//! target), minimising the predicted cost N (c_r n_pairs + c_k n_k) over σ. No timing runs.

pub mod pme;

use crate::error::{Error, Result};
use crate::ewald::EwaldParameters;
use crate::kernel::Kernel;
use crate::system::System;
use std::f64::consts::PI;

/// Smallest accepted accuracy.
pub const MIN_ACCURACY: f64 = 1e-15;

/// Relative cost of one real-space pair evaluation (per atom, full neighbour loop).
const REAL_COST: f64 = 1.0;
/// Relative cost of one (atom, half-space k-vector) term (structure factor + forces).
const KSPACE_COST: f64 = 0.1;
/// Safety factor applied to the requested accuracy (the estimates are averages).
const SAFETY: f64 = 0.5;

/// Checks that `accuracy` is in [1e-15, 1).
pub fn check_accuracy(accuracy: f64) -> Result<()> {
    if !(accuracy.is_finite() && (MIN_ACCURACY..1.0).contains(&accuracy)) {
        return Err(Error::parameter(
            "accuracy",
            format!("must be in [1e-15, 1) (relative RMS force error), got {accuracy}"),
        ));
    }
    Ok(())
}

/// The numbers of a system the error model needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SystemStats {
    /// Number of atoms.
    pub atoms: usize,
    /// Cell volume.
    pub volume: f64,
}

impl SystemStats {
    /// Statistics of a periodic system.
    pub fn of(system: &System) -> Result<SystemStats> {
        let cell = system.cell().ok_or_else(|| {
            Error::Unsupported("Ewald parameters are only defined for periodic systems".into())
        })?;
        Ok(SystemStats {
            atoms: system.len().max(1),
            volume: cell.volume(),
        })
    }

    /// Mean interparticle distance d = (V/N)^{1/3}.
    pub fn spacing(&self) -> f64 {
        (self.volume / self.atoms as f64).cbrt()
    }
}

/// Predicted relative RMS force errors (real space, reciprocal space) of an Ewald sum, in the
/// units of the accuracy (see the module documentation).
pub fn ewald_error(
    kernel: Kernel,
    stats: SystemStats,
    parameters: EwaldParameters,
) -> Result<(f64, f64)> {
    let split = kernel.split(parameters.smearing)?;
    let d = stats.spacing();
    let density = 1.0 / (d * d * d);
    let scale = d.powf(kernel.exponent() + 1.0);
    let sigma = parameters.smearing;
    let rc = parameters.cutoff;
    let kc = parameters.k_cutoff;
    let (_, dv) = split.short_range(rc);
    let real = (density * 2.0 * PI * rc * sigma * sigma).sqrt() * dv.abs() * scale;
    let (vhat, _) = split.fourier(kc * kc);
    let recip =
        (density * kc.powi(3) / (4.0 * PI * PI * sigma * sigma)).sqrt() * vhat.abs() * scale;
    Ok((real, recip))
}

/// Predicted cost (arbitrary units) of an Ewald sum.
pub fn ewald_cost(stats: SystemStats, parameters: EwaldParameters) -> f64 {
    let n = stats.atoms as f64;
    let density = n / stats.volume;
    let pairs = 4.0 / 3.0 * PI * parameters.cutoff.powi(3) * density;
    let kvectors =
        4.0 / 3.0 * PI * parameters.k_cutoff.powi(3) * stats.volume / (8.0 * PI.powi(3)) / 2.0;
    n * (REAL_COST * (pairs + 1.0) + KSPACE_COST * (kvectors + 1.0))
}

/// Smallest x in [lo, hi] with f(x) ≤ target, for f decreasing beyond its maximum.
fn solve_decreasing(f: impl Fn(f64) -> f64, target: f64, lo: f64, hi: f64) -> f64 {
    if f(hi) > target {
        return hi;
    }
    let (mut lo, mut hi) = (lo, hi);
    if f(lo) <= target {
        return lo;
    }
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if f(mid) > target {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-10 * hi {
            break;
        }
    }
    hi
}

/// User overrides of the automatic choice (any may be fixed).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EwaldOverrides {
    /// Fixed smearing σ.
    pub smearing: Option<f64>,
    /// Fixed real-space cutoff.
    pub cutoff: Option<f64>,
    /// Fixed reciprocal-space cutoff.
    pub k_cutoff: Option<f64>,
}

/// Chooses Ewald parameters for `system` so that the predicted relative RMS force error stays
/// below `accuracy`, minimising the predicted cost; fixed values in `overrides` are kept.
pub fn tune_ewald(
    kernel: Kernel,
    system: &System,
    accuracy: f64,
    overrides: EwaldOverrides,
) -> Result<EwaldParameters> {
    check_accuracy(accuracy)?;
    for (name, value) in [
        ("smearing", overrides.smearing),
        ("cutoff", overrides.cutoff),
        ("k_cutoff", overrides.k_cutoff),
    ] {
        if let Some(v) = value {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::parameter(
                    name,
                    format!("must be positive and finite, got {v}"),
                ));
            }
        }
    }
    let stats = SystemStats::of(system)?;
    let target = SAFETY * accuracy / std::f64::consts::SQRT_2;
    let d = stats.spacing();
    let choose = |sigma: f64| -> Result<(EwaldParameters, f64)> {
        let split = kernel.split(sigma)?;
        let probe = |rc: f64, kc: f64| EwaldParameters {
            smearing: sigma,
            cutoff: rc,
            k_cutoff: kc,
        };
        let rc = match overrides.cutoff {
            Some(rc) => rc,
            None => solve_decreasing(
                |rc| {
                    ewald_error(kernel, stats, probe(rc, 1.0))
                        .map(|e| e.0)
                        .unwrap_or(f64::INFINITY)
                },
                target,
                sigma,
                60.0 * sigma,
            ),
        };
        let kc = match overrides.k_cutoff {
            Some(kc) => kc,
            None => solve_decreasing(
                |kc| {
                    ewald_error(kernel, stats, probe(1.0, kc))
                        .map(|e| e.1)
                        .unwrap_or(f64::INFINITY)
                },
                target,
                0.5 / sigma,
                60.0 / sigma,
            ),
        };
        let _ = split;
        let params = probe(rc, kc);
        Ok((params, ewald_cost(stats, params)))
    };
    if let Some(sigma) = overrides.smearing {
        return Ok(choose(sigma)?.0);
    }
    // scan σ on a logarithmic grid around the interparticle spacing (and the cell size)
    let lengths = system.cell().map(|c| c.lengths()).unwrap_or([d; 3]);
    let lmax = lengths.iter().fold(d, |m, &l| m.max(l));
    let (lo, hi) = (0.02 * d.min(lmax), 2.0 * lmax.max(d));
    let steps = 120;
    let mut best: Option<(EwaldParameters, f64)> = None;
    for s in 0..=steps {
        let sigma = lo * (hi / lo).powf(s as f64 / steps as f64);
        let (params, cost) = choose(sigma)?;
        if best.is_none_or(|b| cost < b.1) {
            best = Some((params, cost));
        }
    }
    Ok(best.expect("at least one σ was tried").0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coulomb_estimates_reduce_to_kolafa_perram() {
        let stats = SystemStats {
            atoms: 100,
            volume: 1000.0,
        };
        let (sigma, rc, kc) = (1.0, 4.0, 3.0);
        let (er, ek) = ewald_error(
            Kernel::coulomb(),
            stats,
            EwaldParameters {
                smearing: sigma,
                cutoff: rc,
                k_cutoff: kc,
            },
        )
        .unwrap();
        // relative to F_0 = q²/d², with q = 1, Q₂ = N: ΔF_r = 2 √(N/(r_c V)) e^{-r_c²/(2σ²)}
        let d2 = 10f64.powf(2.0 / 3.0);
        let kp_r = 2.0 * (100.0 / (rc * 1000.0)).sqrt() * (-rc * rc / 2.0).exp() * d2;
        let kp_k = 2.0 * (100.0 / (kc * 1000.0)).sqrt() * (-kc * kc / 2.0).exp() / sigma * d2;
        // leading asymptotic term only: agree within the next-order correction
        assert!((er / kp_r - 1.0).abs() < 0.15, "{er} {kp_r}");
        assert!((ek / kp_k - 1.0).abs() < 1e-12, "{ek} {kp_k}");
    }

    #[test]
    fn accuracy_range() {
        assert!(check_accuracy(0.0).is_err());
        assert!(check_accuracy(1.0).is_err());
        assert!(check_accuracy(f64::NAN).is_err());
        assert!(check_accuracy(1e-6).is_ok());
    }
}
