//! Parameters of the free-space mesh ([`crate::freespace`]) for a requested accuracy
//! ([`tune`]), with their predicted errors and cost.
//!
//! **Accuracy of an open system.** The contract is PME's: relative RMS force error
//! sqrt((1/N) Σ|ΔF_i|²) / F_0 with F_0 = (Σq²/N) / d^{p+1}, where for an open system
//! d = ρ^{-1/3} and ρ is the atoms' **local number density**: the
//! atoms are binned in cubes about two interparticle distances wide and
//! ρ = Σ_b n_b² / (N w³) is the density of its bin averaged over the atoms (iterated three
//! times from the bounding box, so that w follows ρ). It is the density of the bulk of a
//! cluster, droplet or crystallite, independent of its shape and nearly of its orientation
//! (unlike the volume of a bounding box, which a rod along a body diagonal inflates).
//!
//! **Error model.** The real-space and mesh parts are those of periodic PME at the same σ,
//! cutoff, spacing h and order (the real-space and mesh error models of [`super::pme`], with an
//! orthogonal grid of spacing h and the local density): the random-phase estimates of a bulk
//! of density ρ, which the atoms near the surface of a cluster (fewer neighbours, smaller
//! aliasing sums) can only lower. The freespace tests measure the ratio of measured to
//! requested error on clusters, rods and discs.
//!
//! **Cost.** In the units of [`super::pme`]: pairs and spline points per atom as PME, and the
//! pruned FFTs of the zero-padded grid (M_1 M_2 M_3 ≈ 8 × the points covering the atoms) with
//! the kernel; the direct sum costs 0.9 per ordered pair (measured on the 2-core machine; the
//! crate-private constant `DIRECT_PAIR_COST`).

use super::pme::{
    mesh_error, real_error, solve_decreasing, PmeStats, FFT_COST, INFLUENCE_COST, PAIR_COST,
    SAFETY, SPLINE_COST,
};
use crate::error::{Error, Result};
use crate::freespace::{check_order, grid_points, FreeSpaceParameters};
use crate::kernel::Kernel;
use crate::math::linalg::Vec3;
use crate::system::System;
use rayon::prelude::*;
use std::f64::consts::PI;

/// Relative cost of one ordered pair of the direct sum ([`crate::direct`]), in units of one
/// real-space pair of the PME loop: measured 1.25 s for N = 10^4 (10^8 ordered pairs) in the
/// same run (2 threads, loaded machine) as 1.63 s for the free-space real-space sum of
/// 10^5 atoms with 1156 neighbours each (1.16·10^8 units).
pub(crate) const DIRECT_PAIR_COST: f64 = 0.9;
/// Relative cost per padded grid point of the kernel (its octant sampled and transformed,
/// when not cached), the product with the spectrum and the spreading grids.
const KERNEL_COST: f64 = 1.0;
/// Safety factor on top of PME's: with PME's alone, the measured/requested error ratio reached
/// 0.9 on charged clusters (random charges of mean 0.45, p = 6), whose net charge makes the
/// errors of the atoms partly coherent; with it, at most 0.52 (`freespace` tests: balls, rods,
/// discs, neutral and charged, p = 1, 2.5, 6, accuracies 1e-3 to 1e-6).
pub(crate) const OPEN_SAFETY: f64 = 0.6;
/// The pruned transforms of the zero-padded grid relative to PME's two full ones.
const PRUNED: f64 = 1.2;
/// Fixed cost of one call (FFT plans, allocation), in the same units.
pub(crate) const CALL_COST: f64 = 20000.0;

/// What the free-space tuner needs of an open system.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OpenStats {
    /// Number of atoms.
    pub atoms: usize,
    /// Local number density ρ (see the module documentation).
    pub density: f64,
    /// Extent of the atoms along x, y and z.
    pub extent: Vec3,
}

/// Binned local density of `positions` (see the module documentation).
fn local_density(positions: &[Vec3], extent: Vec3) -> f64 {
    let n = positions.len();
    if n < 2 {
        return 1.0;
    }
    let largest = extent.iter().fold(0.0f64, |m, &e| m.max(e));
    if largest <= 0.0 {
        return 1.0;
    }
    let mut width = 2.0 * largest / (n as f64).cbrt();
    let mut density = 1.0;
    for _ in 0..3 {
        let mut keys: Vec<u64> = positions
            .par_iter()
            .map(|r| {
                let b = [0, 1, 2].map(|a| ((r[a] / width).floor() as i64 & 0x1f_ffff) as u64);
                (b[0] << 42) | (b[1] << 21) | b[2]
            })
            .collect();
        keys.par_sort_unstable();
        let mut sum2 = 0.0;
        let mut run = 1.0;
        for k in 1..=n {
            if k < n && keys[k] == keys[k - 1] {
                run += 1.0;
            } else {
                sum2 += run * run;
                run = 1.0;
            }
        }
        density = sum2 / (n as f64 * width.powi(3));
        width = 2.0 * density.powf(-1.0 / 3.0);
    }
    density
}

impl OpenStats {
    /// Statistics of an open system.
    pub fn of(system: &System) -> Result<OpenStats> {
        if system.is_periodic() {
            return Err(Error::Unsupported(
                "the free-space mesh is for open systems".into(),
            ));
        }
        let positions = system.positions();
        let (lo, hi) = crate::freespace::bounding_box(positions);
        let extent = [0, 1, 2].map(|a| hi[a] - lo[a]);
        Ok(OpenStats {
            atoms: system.len().max(1),
            density: local_density(positions, extent),
            extent,
        })
    }

    /// Mean interparticle distance d = ρ^{-1/3} of the accuracy definition.
    pub fn spacing(&self) -> f64 {
        self.density.powf(-1.0 / 3.0)
    }

    /// PME statistics of a bulk of this density with an orthogonal mesh of spacing `h`
    /// (one point per "cell length" h).
    fn pme(&self, h: f64) -> PmeStats {
        PmeStats {
            atoms: self.atoms,
            volume: self.atoms as f64 / self.density,
            lengths: [h; 3],
            skew: [1.0; 3],
        }
    }

    /// Real-space pairs per atom within `cutoff` (at most N − 1).
    fn pairs(&self, cutoff: f64) -> f64 {
        (4.0 / 3.0 * PI * cutoff.powi(3) * self.density).min(self.atoms as f64 - 1.0)
    }

    /// Unpadded and padded grid points for spacing `h` and `order`.
    fn grid(&self, h: f64, order: usize) -> Result<([usize; 3], [usize; 3])> {
        let mut l = [0; 3];
        let mut m = [0; 3];
        for a in 0..3 {
            (l[a], m[a]) = grid_points(self.extent[a], h, order)?;
        }
        Ok((l, m))
    }
}

/// Predicted relative RMS force errors (real space, mesh) of `parameters`.
pub(crate) fn predicted_error(
    kernel: Kernel,
    stats: OpenStats,
    parameters: &FreeSpaceParameters,
) -> Result<(f64, f64)> {
    let h = parameters.spacing;
    let pme = stats.pme(h);
    Ok((
        real_error(kernel, pme, parameters.smearing, parameters.cutoff)?,
        mesh_error(
            kernel,
            pme,
            parameters.smearing,
            [1, 1, 1],
            parameters.order,
        )?,
    ))
}

/// Predicted cost (units of one PME real-space pair per atom), the call cost excluded.
pub(crate) fn cost(stats: OpenStats, parameters: &FreeSpaceParameters) -> Result<f64> {
    let (_, m) = stats.grid(parameters.spacing, parameters.order)?;
    let atoms = stats.atoms as f64;
    let grid = m.iter().map(|&k| k as f64).product::<f64>();
    Ok(atoms
        * (PAIR_COST * (stats.pairs(parameters.cutoff) + 1.0)
            + SPLINE_COST * (parameters.order as f64).powi(3))
        + grid * (PRUNED * FFT_COST * grid.log2().max(1.0) + INFLUENCE_COST + KERNEL_COST))
}

/// Predicted cost of the direct sum of `atoms` atoms, in the same units.
pub(crate) fn direct_cost(atoms: usize) -> f64 {
    let n = atoms as f64;
    DIRECT_PAIR_COST * n * n
}

/// The work of a free-space sum: (pair terms, mesh terms, bytes).
pub(crate) fn work(system: &System, parameters: &FreeSpaceParameters) -> Result<(f64, f64, f64)> {
    work_with(OpenStats::of(system)?, parameters)
}

/// [`work`] with the statistics computed once by the caller.
fn work_with(stats: OpenStats, parameters: &FreeSpaceParameters) -> Result<(f64, f64, f64)> {
    let (l, m) = stats.grid(parameters.spacing, parameters.order)?;
    let atoms = stats.atoms as f64;
    // bins one cutoff wide: 27 bins of ρ r_c³ atoms visited per atom, at most N
    let visits = (27.0 * stats.density * parameters.cutoff.powi(3)).min(atoms);
    let grid = m.iter().map(|&k| k as f64).product::<f64>();
    let local = l.iter().map(|&k| k as f64).product::<f64>();
    let threads = rayon::current_num_threads().max(1) as f64;
    let mesh = 2.0 * atoms * (parameters.order as f64).powi(3) + grid * (3.0 * grid.log2() + 6.0);
    let bytes = 40.0 * grid + 8.0 * threads * local + (32.0 * threads + 250.0) * atoms;
    Ok((atoms * visits, mesh, bytes))
}

/// Refuses a free-space sum whose estimated work exceeds the limits of [`crate::limits`],
/// stating the estimate and naming the parameter to change.
pub(crate) fn check_work(system: &System, parameters: &FreeSpaceParameters) -> Result<()> {
    let (real, mesh, bytes) = work(system, parameters)?;
    crate::limits::check_terms(
        &format!(
            "the free-space real-space sum with cutoff {} (pair terms)",
            parameters.cutoff
        ),
        real,
        "lower the cutoff (with a smaller smearing), or leave cutoff and smearing to farfield",
    )?;
    let hint = "use a larger mesh_spacing (with a larger smearing), or leave the mesh to farfield";
    crate::limits::check_terms(
        "the free-space mesh sums (spline and FFT terms of the zero-padded grid)",
        mesh,
        hint,
    )?;
    crate::limits::check_memory(
        "the zero-padded free-space mesh (grid, spectrum, kernel)",
        bytes,
        hint,
    )
}

/// What a user fixed; everything left `None` (the default of every field) is chosen by
/// [`tune`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FreeSpaceOverrides {
    /// Fixed smearing σ (length). Default `None`.
    pub smearing: Option<f64>,
    /// Fixed real-space cutoff (length). Default `None`.
    pub cutoff: Option<f64>,
    /// Fixed grid spacing (length). Default `None`.
    pub spacing: Option<f64>,
    /// Fixed spline order. Default `None`.
    pub order: Option<usize>,
}

/// A tuned choice with its predicted errors (real space, mesh) and cost.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct FreeSpaceChoice {
    /// The parameters.
    pub parameters: FreeSpaceParameters,
    /// Predicted relative RMS force error (real space, mesh).
    pub predicted_error: (f64, f64),
    /// Predicted cost (units of one PME real-space pair per atom), the fixed cost of a call
    /// included.
    pub cost: f64,
}

/// Chooses σ, cutoff, spacing and order (those `overrides` leaves free) so that the predicted
/// relative RMS force error stays below `accuracy` (each part below accuracy/√2 times the
/// safety factor of PME and a further factor 0.6 for open systems), minimising the predicted cost within the
/// limits. All of smearing, cutoff and spacing fixed are the caller's explicit choice,
/// returned unchecked (order 6 unless fixed).
pub fn tune(
    kernel: Kernel,
    system: &System,
    accuracy: f64,
    overrides: FreeSpaceOverrides,
) -> Result<FreeSpaceChoice> {
    super::check_accuracy(accuracy)?;
    let stats = OpenStats::of(system)?;
    super::check_positive("smearing", overrides.smearing)?;
    super::check_positive("cutoff", overrides.cutoff)?;
    super::check_positive("mesh_spacing", overrides.spacing)?;
    if let Some(o) = overrides.order {
        check_order(o)?;
    }
    if let (Some(smearing), Some(cutoff), Some(spacing)) =
        (overrides.smearing, overrides.cutoff, overrides.spacing)
    {
        let parameters = FreeSpaceParameters {
            smearing,
            cutoff,
            spacing,
            order: overrides.order.unwrap_or(6),
        };
        parameters.validate()?;
        return Ok(FreeSpaceChoice {
            parameters,
            predicted_error: predicted_error(kernel, stats, &parameters)?,
            cost: cost(stats, &parameters)? + CALL_COST,
        });
    }
    let target = OPEN_SAFETY * SAFETY * accuracy / std::f64::consts::SQRT_2;
    let tolerance = target * 1.0001;
    let d = stats.spacing();
    let orders: Vec<usize> = match overrides.order {
        Some(o) => vec![o],
        None => vec![4, 6, 8],
    };
    let memory = crate::limits::memory_limit();
    let max_terms = crate::limits::get().max_terms;
    let choose = |sigma: f64| -> Result<Option<(FreeSpaceChoice, f64)>> {
        let unit = stats.pme(1.0);
        let real_err = |rc: f64| real_error(kernel, unit, sigma, rc).unwrap_or(f64::INFINITY);
        let rc = match overrides.cutoff {
            Some(rc) => rc,
            None => solve_decreasing(real_err, target, 0.5 * sigma, 60.0 * sigma),
        };
        let e_real = real_err(rc);
        if e_real > tolerance {
            return Ok(None);
        }
        let mut best: Option<FreeSpaceChoice> = None;
        for &order in &orders {
            let mesh_err = |h: f64| {
                mesh_error(kernel, stats.pme(h), sigma, [1, 1, 1], order).unwrap_or(f64::INFINITY)
            };
            let h = match overrides.spacing {
                Some(h) => h,
                None => {
                    1.0 / solve_decreasing(
                        |inv_h| mesh_err(1.0 / inv_h),
                        target,
                        1.0 / (4.0 * sigma),
                        64.0 / sigma,
                    )
                }
            };
            let e_mesh = mesh_err(h);
            if e_mesh > tolerance {
                continue;
            }
            let parameters = FreeSpaceParameters {
                smearing: sigma,
                cutoff: rc,
                spacing: h,
                order,
            };
            let Ok(c) = cost(stats, &parameters) else {
                continue;
            };
            let Ok((real, mesh, bytes)) = work_with(stats, &parameters) else {
                continue;
            };
            if real > max_terms || mesh > max_terms || bytes > memory {
                continue;
            }
            if best.is_none_or(|b| c + CALL_COST < b.cost) {
                best = Some(FreeSpaceChoice {
                    parameters,
                    predicted_error: (e_real, e_mesh),
                    cost: c + CALL_COST,
                });
            }
        }
        Ok(best.map(|b| (b, b.cost)))
    };
    let candidates: Vec<f64> = match overrides.smearing {
        Some(s) => vec![s],
        None => {
            let largest = stats.extent.iter().fold(d, |m, &e| m.max(e));
            let (lo, hi) = (0.1 * d, 0.5 * largest.max(d));
            let steps = 40;
            (0..=steps)
                .map(|s| lo * (hi / lo).powf(s as f64 / steps as f64))
                .collect()
        }
    };
    if let Some(c) = super::scan_min(candidates.len(), 4, |i| choose(candidates[i]))? {
        return Ok(c);
    }
    // name the first fixed value (the one to change), or the accuracy
    let fixed = [
        ("smearing", overrides.smearing.is_some()),
        ("cutoff", overrides.cutoff.is_some()),
        ("mesh_spacing", overrides.spacing.is_some()),
        ("order", overrides.order.is_some()),
    ];
    match fixed.iter().find(|f| f.1) {
        Some((name, _)) => Err(Error::parameter(
            *name,
            format!(
                "with the fixed smearing, cutoff, mesh_spacing or order given, no free-space \
                 mesh parameters reach the accuracy {accuracy} within the limits; change or \
                 leave out the fixed values, or use method='direct'"
            ),
        )),
        None => Err(Error::parameter(
            "accuracy",
            format!("no free-space mesh parameters reach {accuracy} within the limits"),
        )),
    }
}
