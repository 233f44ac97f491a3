//! PME parameters for a requested accuracy, and the predicted costs `method="auto"` compares.
//!
//! The accuracy is the relative RMS force error of the Ewald tuner (see [`super`] once merged):
//! sqrt((1/N) Σ|ΔF_i|²) / F_0 with F_0 = (Σq²/N) / d^{p+1}, d = (V/N)^{1/3}.
//!
//! Error model (random phases, Kolafa–Perram style, generalised to any p and spline order):
//!
//! * real space: ΔF_r² = q_rms² (Q₂/V) · 2π r_c σ² V_SR'(r_c)²;
//! * mesh: the B-spline interpolation of order n on a grid of K_α points along the cell vector
//!   a_α (spacing h_α = |a_α|/K_α) aliases a Fourier mode k into the modes k + G, G = j K_α b_α
//!   (b_α the reciprocal vectors of the cell, a_α·b_β = 2πδ_αβ), with the interpolation weight
//!   (θ_α/(θ_α + 2πj))^n, θ_α = k·a_α/K_α. Their forces (analytic spline derivative) carry
//!   k + G, so that relative to the force of mode k one alias has the amplitude
//!   (θ_α/(θ_α + 2πj))^n |k + G|/k ≈ (θ_α/(θ_α + 2πj))^{n-1} s_α cos φ_α at small θ_α, where
//!   φ_α is the angle between k and a_α and s_α = |a_α| |b_α|/(2π) = |a_α|/d_α ≥ 1 (d_α the
//!   spacing of the lattice planes spanned by the two other vectors) measures the skew of the
//!   basis: 1 for an axis orthogonal to the two others, 1.22 in the fcc primitive cell, 3.7
//!   along two axes of the basis (a + c, b, a + 2c) of a near-cubic cell. The model sums the
//!   single-axis aliases,
//!   E_n(k)² = C Σ_α s_α² Σ_{j=±1,±2} (θ_α/(θ_α + 2πj))^{2(n-1)} / (2n - 1), θ_α = k h_α
//!   (the 1/(2n-1) averages cos^{2(n-1)} over directions), the form of Darden/Essmann's and
//!   Deserno–Holm's aliasing sums (aliases along two axes at once are of order θ^{4n-4} and
//!   left out), and ΔF_k² = q_rms² (Q₂/V) (1/2π²) ∫ k⁴ V̂_LR(k)² E_n(k)² dk for whatever V̂_LR
//!   the kernel has. C was calibrated against measured errors (see the tests). Without the
//!   skew factors s_α² the mesh error of strongly skewed bases was under-estimated 2-6× (issue
//!   #17); with them the measured/predicted ratios (random charges, 25-80 atoms at 0.1/Å³,
//!   σ = 1-1.5 Å, orders 4-8, p = 1 and 6, large cutoffs) lie within 0.47-1.21 in bases with
//!   s_α up to 3.7, as within 0.6-1.2 in near-orthogonal ones. The tuner's grids balance the
//!   axes: K_α ∝ |a_α| s_α^{1/(n-1)}.
//!
//! Both parts are held below accuracy/√2 (times a safety factor), and among σ (log scan), order
//! 4..8 and the coarsest grid meeting the target, the one with the smallest predicted cost
//! (pairs + spline points + FFT) is returned.

use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::pme::{fft_friendly, Mesh, PmeParameters, ORDER_RANGE};
use crate::system::System;
use std::f64::consts::PI;

/// Calibration constant C of the aliasing amplitude.
const ALIAS: f64 = 3.0;
/// Safety factor on the requested accuracy (the estimates are averages).
pub(crate) const SAFETY: f64 = 0.5;
/// Relative cost of one real-space pair, counted per atom over its full neighbour list (the
/// tabulated half-pair loop of [`crate::realspace`], which the Ewald engine shares). Measured
/// CPU time on the 2-core machine (one thread, random charges at 0.1 atoms/Å³, N = 1e5,
/// `CALIBRATE=1 cargo run --release --example pme_timing`): ~11 ns per (atom, neighbour),
/// ~1.2 ns per (atom, spline point) for spreading + interpolation, ~1.2 ns per grid point and
/// log2(grid) for the two FFTs, ~7.7 ns per grid point for the influence function; the
/// Ewald engine's ~7.3 ns per (atom, k-vector).
pub(crate) const PAIR_COST: f64 = 1.0;
/// Relative cost of one spline point per atom (spreading + interpolation together).
pub(crate) const SPLINE_COST: f64 = 0.104;
/// Relative cost per grid point and log2(grid) of the two FFTs.
pub(crate) const FFT_COST: f64 = 0.106;
/// Relative cost per grid point of the influence function (energy, virial, convolution).
pub(crate) const INFLUENCE_COST: f64 = 0.68;
/// Relative cost of one real-space pair of the Ewald engine (per atom, full neighbour loop).
///
/// The Ewald engine shares PME's real-space loop, so its pair cost is [`PAIR_COST`]. The
/// k-vector constant and [`PME_CALL_COST`] were checked so that `method="auto"` follows
/// measured wall times (2 threads of the 2-core machine, with other builds running; random
/// ±1 charges at 0.1 atoms/Å³, forces + stress, each method at its own tuned parameters,
/// best of 3), in ms, Ewald / PME:
///
/// ```text
///     N    accuracy 1e-4    accuracy 1e-6
///    32     0.53 / 0.56      0.37 / 0.52
///    64     0.66 / 0.66      0.54 / 0.73
///   100     0.83 / 0.83      0.79 / 1.01
///   200     1.72 / 1.12      1.82 / 1.53
///   500     5.61 / 1.94      6.14 / 3.31
///  1000     26.6 / 5.0       32.3 / 6.6
///  5000      269 / 34         364 / 68
/// ```
///
/// The measured crossover lies at 100-200 atoms at both accuracies; "auto" picks Ewald up to
/// 100 atoms and PME from 200.
const EWALD_PAIR_COST: f64 = 1.0;
/// Relative cost of one (atom, half-space k-vector) term of an Ewald sum.
const EWALD_K_COST: f64 = 0.45;
/// Fixed cost of one PME call beyond the Ewald engine's (mesh allocation, FFT plans, the
/// influence function of small grids): measured 0.15-0.25 ms at N = 32-64, in cost units.
/// Added to [`pme_cost`] where PME is priced against Ewald (`tuning::choose`), not in it (a
/// constant does not move the tuner's choice, and QEq prices mesh products with it).
pub(crate) const PME_CALL_COST: f64 = 17700.0;

fn check_accuracy(accuracy: f64) -> Result<()> {
    if !(accuracy.is_finite() && (1e-15..1.0).contains(&accuracy)) {
        return Err(Error::parameter(
            "accuracy",
            format!("must be in [1e-15, 1) (relative RMS force error), got {accuracy}"),
        ));
    }
    Ok(())
}

/// Atoms, volume, cell lengths and skew of a periodic system.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PmeStats {
    /// Number of atoms.
    pub atoms: usize,
    /// Volume.
    pub volume: f64,
    /// Lengths of the cell vectors.
    pub lengths: [f64; 3],
    /// Skew of each cell vector, s_α = |a_α|/d_α ≥ 1 with d_α the spacing of the lattice
    /// planes spanned by the two other vectors (1 when a_α is orthogonal to them): the factor
    /// by which the mesh aliases of axis α carry more force than in an orthogonal cell (see
    /// the module documentation).
    pub skew: [f64; 3],
}

impl PmeStats {
    /// Statistics of a periodic system.
    pub fn of(system: &System) -> Result<PmeStats> {
        let cell = system
            .cell()
            .ok_or_else(|| Error::Unsupported("PME needs a periodic cell".into()))?;
        let lengths = cell.lengths();
        let spacings = cell.plane_spacings();
        Ok(PmeStats {
            atoms: system.len().max(1),
            volume: cell.volume(),
            lengths,
            // ≥ 1 in exact arithmetic (d_α is the projection of a_α on the plane normal)
            skew: [0, 1, 2].map(|a| (lengths[a] / spacings[a]).max(1.0)),
        })
    }

    /// Points along each cell vector for the mesh spacing `h` of an orthogonal cell and
    /// spline order `order`: K_α = |a_α| s_α^{1/(n-1)}/h, which gives every axis the aliasing
    /// error of an orthogonal axis of spacing h (the error of axis α grows as
    /// s_α² h_α^{2(n-1)}). Before rounding up.
    fn raw_points(&self, h: f64, order: usize) -> [f64; 3] {
        let power = 1.0 / (order.max(2) - 1) as f64;
        [0, 1, 2].map(|a| self.lengths[a] * self.skew[a].powf(power) / h)
    }

    fn density(&self) -> f64 {
        self.atoms as f64 / self.volume
    }

    /// d^{p+1}, with d = (V/N)^{1/3}.
    fn scale(&self, kernel: Kernel) -> f64 {
        (1.0 / self.density()).cbrt().powf(kernel.exponent() + 1.0)
    }
}

/// Predicted real-space relative RMS force error for smearing σ and cutoff r_c.
pub(crate) fn real_error(
    kernel: Kernel,
    stats: PmeStats,
    smearing: f64,
    cutoff: f64,
) -> Result<f64> {
    let split = kernel.split(smearing)?;
    Ok(real_error_with(&split, stats, kernel, smearing, cutoff))
}

/// [`real_error`] with the range split of σ made once by the caller.
fn real_error_with(
    split: &crate::kernel::RangeSplit,
    stats: PmeStats,
    kernel: Kernel,
    smearing: f64,
    cutoff: f64,
) -> f64 {
    let (_, dv) = split.short_range(cutoff);
    (stats.density() * 2.0 * PI * cutoff * smearing * smearing).sqrt()
        * dv.abs()
        * stats.scale(kernel)
}

/// Whether [`check_pme_work`] would accept `parameters`, for a memory limit read once by the
/// caller (the tuner checks many candidates).
fn pme_work_fits(system: &System, parameters: &PmeParameters, memory: f64) -> Result<bool> {
    let (real, mesh, bytes) = pme_work(system, parameters)?;
    let max_terms = crate::limits::get().max_terms;
    let within = |x: f64, limit: f64| !(x.is_nan() || x > limit);
    Ok(within(real, max_terms) && within(mesh, max_terms) && within(bytes, memory))
}

/// Predicted mesh relative RMS force error for smearing σ, grid `n` and spline `order`.
pub(crate) fn mesh_error(
    kernel: Kernel,
    stats: PmeStats,
    smearing: f64,
    n: [usize; 3],
    order: usize,
) -> Result<f64> {
    Ok(MeshIntegrand::new(kernel, stats, smearing)?.error(n, order))
}

/// Number of k-steps of the mesh-error integral over [0, 14/σ].
const MESH_STEPS: usize = 160;

/// The σ-dependent part of the mesh-error integral, tabulated once per smearing: the k-steps
/// and their weights k⁴ V̂_LR(k)², cut where the Gaussian tail no longer changes the sum
/// (below 1e-18 of it past the peak: round-off), so that the grid and order searches only
/// evaluate the aliasing sums.
struct MeshIntegrand {
    stats: PmeStats,
    smearing: f64,
    scale: f64,
    dk: f64,
    k: Vec<f64>,
    weight: Vec<f64>,
}

impl MeshIntegrand {
    fn new(kernel: Kernel, stats: PmeStats, smearing: f64) -> Result<MeshIntegrand> {
        let split = kernel.split(smearing)?;
        let kmax = 14.0 / smearing;
        let dk = kmax / MESH_STEPS as f64;
        let mut k = Vec::with_capacity(MESH_STEPS);
        let mut weight = Vec::with_capacity(MESH_STEPS);
        let (mut total, mut peak) = (0.0f64, 0.0f64);
        for s in 0..MESH_STEPS {
            let ks = (s as f64 + 0.5) * dk;
            let (vh, _) = split.fourier(ks * ks);
            let w = ks.powi(4) * vh * vh;
            // the aliasing factor is at most 1: terms this small past the peak of the
            // (Gaussian-tailed) weight cannot change the sum
            if ks * smearing > 4.0 && w < peak && w * dk < 1e-18 * total {
                break;
            }
            peak = peak.max(w);
            total += w * dk;
            k.push(ks);
            weight.push(w);
        }
        Ok(MeshIntegrand {
            stats,
            smearing,
            scale: stats.scale(kernel),
            dk,
            k,
            weight,
        })
    }

    fn error(&self, n: [usize; 3], order: usize) -> f64 {
        let h: Vec<f64> = (0..3)
            .map(|a| self.stats.lengths[a] / n[a] as f64)
            .collect();
        let skew2 = self.stats.skew.map(|s| s * s);
        let same = h[0] == h[1] && h[1] == h[2];
        // r^(2n-2) = (r²)^(n-1) by plain products: the four aliases are independent chains
        // (this is the tuner's inner loop; a `powi` call per term cost half the tuning time)
        let half_power = order - 1;
        let norm = (2 * order - 1) as f64;
        let axis = |theta: f64| -> f64 {
            let mut terms = [0.0f64; 4];
            for (t, j) in terms.iter_mut().zip([-2.0, -1.0, 1.0, 2.0]) {
                let r: f64 = (theta / (theta + 2.0 * PI * j)).abs().min(1.0);
                *t = r * r;
            }
            let squares = terms;
            for _ in 1..half_power {
                for (t, s) in terms.iter_mut().zip(squares) {
                    *t *= s;
                }
            }
            (terms[0] + terms[1] + terms[2] + terms[3]) / norm
        };
        let mut integral = 0.0;
        for (&k, &w) in self.k.iter().zip(&self.weight) {
            let alias = if same {
                // the same sum as below, with one aliasing sum
                let a = axis(k * h[0]);
                0.0 + a * skew2[0] + a * skew2[1] + a * skew2[2]
            } else {
                let mut alias = 0.0;
                for (&ha, &s2) in h.iter().zip(&skew2) {
                    alias += axis(k * ha) * s2;
                }
                alias
            };
            integral += w * (ALIAS * alias).min(1.0) * self.dk;
        }
        (self.stats.density() * integral / (2.0 * PI * PI)).sqrt()
            * self.scale
            * small_smearing_factor(self.stats, self.smearing)
    }
}

/// Empirical correction of the aliasing estimate for smearings below half the mean
/// interparticle distance d: there the random-phase estimate (calibrated at σ ≳ d/2, where
/// the tuner's own choices lie) was measured low by 2.4× at d/σ = 4.4 and 5.6× at d/σ = 9.4
/// (rattled rock salt, p = 1 and 6, orders 6-8, fixed cutoffs of 2-4 Å or fixed small
/// smearings), so the predicted mesh error is multiplied by (d/(2σ))^1.25 for σ < d/2.
fn small_smearing_factor(stats: PmeStats, smearing: f64) -> f64 {
    let d = (1.0 / stats.density()).cbrt();
    (d / (2.0 * smearing)).max(1.0).powf(1.25)
}

/// Predicted cost (units: one real-space pair of the PME loop per atom = 1).
pub(crate) fn pme_cost(stats: PmeStats, cutoff: f64, n: [usize; 3], order: usize) -> f64 {
    let atoms = stats.atoms as f64;
    let pairs = 4.0 / 3.0 * PI * cutoff.powi(3) * stats.density();
    let grid = (n[0] * n[1] * n[2]) as f64;
    atoms * (PAIR_COST * (pairs + 1.0) + SPLINE_COST * (order as f64).powi(3))
        + grid * (FFT_COST * grid.log2().max(1.0) + INFLUENCE_COST)
}

/// Predicted cost of an Ewald sum with cutoffs r_c and k_c, in the same units.
pub(crate) fn ewald_cost(stats: PmeStats, cutoff: f64, k_cutoff: f64) -> f64 {
    let atoms = stats.atoms as f64;
    let pairs = 4.0 / 3.0 * PI * cutoff.powi(3) * stats.density();
    let kvectors = 4.0 / 3.0 * PI * k_cutoff.powi(3) * stats.volume / (8.0 * PI.powi(3)) / 2.0;
    atoms * (EWALD_PAIR_COST * (pairs + 1.0) + EWALD_K_COST * (kvectors + 1.0))
}

pub(crate) fn solve_decreasing(f: impl Fn(f64) -> f64, target: f64, lo: f64, hi: f64) -> f64 {
    if f(hi) > target {
        return hi;
    }
    if f(lo) <= target {
        return lo;
    }
    let (mut lo, mut hi) = (lo, hi);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if f(mid) > target {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-6 * hi {
            break;
        }
    }
    hi
}

/// A tuned PME choice with its predicted error and cost.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct PmeChoice {
    /// The parameters (mesh given as points).
    pub parameters: PmeParameters,
    /// Predicted relative RMS force error (real, mesh).
    pub predicted_error: (f64, f64),
    /// Predicted cost.
    pub cost: f64,
}

/// Chooses σ, cutoff, grid and order so that the predicted relative RMS force error is below
/// `accuracy`, minimising the predicted cost. `smearing`/`cutoff`/`order` fix those values
/// (see [`tune_pme_with`]).
pub fn tune_pme(
    kernel: Kernel,
    system: &System,
    accuracy: f64,
    smearing: Option<f64>,
    cutoff: Option<f64>,
    order: Option<usize>,
) -> Result<PmeChoice> {
    tune_pme_with(
        kernel,
        system,
        accuracy,
        PmeOverrides {
            smearing,
            cutoff,
            mesh: None,
            order,
        },
    )
}

/// Bytes of one PME evaluation beyond the inputs: per-thread spreading grids, the grid, the
/// spectrum, the padded potential grid, per-thread real-space accumulators.
fn pme_bytes(atoms: f64, n: [usize; 3], order: usize) -> f64 {
    let threads = rayon::current_num_threads().max(1) as f64;
    let padded = n[0] as f64 * n[1] as f64 * (n[2] + order - 1) as f64;
    let grid = n[0] as f64 * n[1] as f64 * n[2] as f64;
    8.0 * (threads + 1.0) * padded
        + 8.0 * grid
        + 16.0 * (grid / 2.0 + n[0] as f64 * n[1] as f64)
        + threads * 32.0 * atoms
        + 200.0 * atoms
}

/// The work of a PME sum estimated from its parameters alone: (real-space pair terms, mesh
/// terms, bytes).
pub(crate) fn pme_work(system: &System, parameters: &PmeParameters) -> Result<(f64, f64, f64)> {
    let cell = system
        .cell()
        .ok_or_else(|| Error::Unsupported("PME needs a periodic cell".into()))?;
    let n = parameters.grid(cell)?;
    let atoms = system.len().max(1) as f64;
    let real = atoms * super::real_space_visits(system, parameters.cutoff);
    let grid = n[0] as f64 * n[1] as f64 * n[2] as f64;
    let mesh =
        2.0 * atoms * (parameters.order as f64).powi(3) + grid * (3.0 * grid.log2().max(1.0) + 5.0);
    Ok((real, mesh, pme_bytes(atoms, n, parameters.order)))
}

/// Refuses a PME sum whose estimated work exceeds the limits of [`crate::limits`], naming the
/// parameter to change.
pub(crate) fn check_pme_work(system: &System, parameters: &PmeParameters) -> Result<()> {
    let (real, mesh, bytes) = pme_work(system, parameters)?;
    crate::limits::check_terms(
        &format!(
            "the PME real-space sum with cutoff {} (pair terms, periodic images included)",
            parameters.cutoff
        ),
        real,
        "lower the cutoff (with a smaller smearing), or leave cutoff and smearing to farfield",
    )?;
    let hint = "use a coarser mesh (with a larger smearing) or a lower order, or leave the mesh to farfield";
    crate::limits::check_terms("the PME mesh sums (spline and FFT terms)", mesh, hint)?;
    crate::limits::check_memory("the PME mesh", bytes, hint)
}

/// The mesh of a fixed [`Mesh`] for `order`, or `None` when it is smaller than the order.
fn fixed_grid(stats: PmeStats, mesh: Mesh, order: usize) -> Option<[usize; 3]> {
    match mesh {
        Mesh::Points(n) => n.iter().all(|&k| k >= order).then_some(n),
        Mesh::Spacing(h) => {
            let mut n = [0; 3];
            for a in 0..3 {
                let raw = (stats.lengths[a] / h).ceil();
                if raw.is_nan() || raw > (1 << 14) as f64 {
                    return None;
                }
                n[a] = fft_friendly((raw as usize).max(order).max(2));
            }
            Some(n)
        }
    }
}

/// The cheapest admissible PME parameters with `overrides` kept (see [`tune_pme_with`]);
/// `first` returns the first admissible one found instead of the cheapest.
fn search_pme(
    kernel: Kernel,
    system: &System,
    accuracy: f64,
    overrides: PmeOverrides,
    ignore_limits: bool,
    first: bool,
) -> Result<Option<PmeChoice>> {
    let stats = PmeStats::of(system)?;
    let target = SAFETY * accuracy / std::f64::consts::SQRT_2;
    let tolerance = target * 1.0001;
    let d = (1.0 / stats.density()).cbrt();
    let orders: Vec<usize> = match overrides.order {
        Some(o) => vec![o],
        None => (4..=8).collect(),
    };
    let real_err =
        |sigma: f64, rc: f64| real_error(kernel, stats, sigma, rc).unwrap_or(f64::INFINITY);
    // read once per search (it reads the system's free memory)
    let memory = crate::limits::memory_limit();
    // the smallest cost of an admissible choice so far (over all σ)
    let best_cost = std::cell::Cell::new(f64::INFINITY);
    let choose = |sigma: f64| -> Result<Option<PmeChoice>> {
        let Ok(split) = kernel.split(sigma) else {
            return Ok(None);
        };
        let real_err = |sigma: f64, rc: f64| real_error_with(&split, stats, kernel, sigma, rc);
        let rc = match overrides.cutoff {
            Some(rc) => rc,
            None => solve_decreasing(|rc| real_err(sigma, rc), target, 0.5 * sigma, 60.0 * sigma),
        };
        if overrides.cutoff.is_none()
            && !ignore_limits
            && super::real_space_visits(system, rc) > super::MAX_FREE_VISITS
        {
            return Ok(None);
        }
        let e_real = real_err(sigma, rc);
        if e_real > tolerance || (rc / sigma) * 32.0 + 2.0 > (1u64 << 22) as f64 {
            return Ok(None);
        }
        let Ok(integrand) = MeshIntegrand::new(kernel, stats, sigma) else {
            return Ok(None);
        };
        let mut best: Option<PmeChoice> = None;
        // a higher order meets the mesh target on a grid no finer than a lower one (the
        // aliasing terms r^{2n-2}/(2n-1), r ≤ 1, decrease with n): its search ends there
        let mut finest = 64.0 / sigma;
        for &n_order in &orders {
            // cost without the mesh terms: a lower bound; skip what cannot beat the best
            let bound = pme_cost(stats, rc, [1, 1, 1], n_order);
            let beaten = best.map_or(f64::INFINITY, |b| b.cost).min(best_cost.get());
            if bound > beaten {
                continue;
            }
            let n = match overrides.mesh {
                Some(mesh) => match fixed_grid(stats, mesh, n_order) {
                    Some(n) => n,
                    None => continue,
                },
                None => {
                    let grid_for = |h: f64| -> [usize; 3] {
                        let raw = stats.raw_points(h, n_order);
                        let mut n = [0; 3];
                        for a in 0..3 {
                            n[a] = fft_friendly((raw[a].ceil() as usize).max(n_order).max(4));
                        }
                        n
                    };
                    // the bisection below visits few distinct grids: remember their errors
                    let seen = std::cell::RefCell::new(Vec::<([usize; 3], f64)>::new());
                    let err = |h: f64| {
                        let n = grid_for(h);
                        if let Some(&(_, e)) = seen.borrow().iter().find(|(m, _)| *m == n) {
                            return e;
                        }
                        let e = integrand.error(n, n_order);
                        seen.borrow_mut().push((n, e));
                        e
                    };
                    // largest spacing meeting the target: err grows with h
                    let h = solve_decreasing(
                        |inv_h| err(1.0 / inv_h),
                        target,
                        1.0 / (4.0 * sigma),
                        finest,
                    );
                    finest = h;
                    let n = grid_for(1.0 / h);
                    if n.iter().any(|&k| k > 4096) {
                        continue;
                    }
                    n
                }
            };
            let e_mesh = integrand.error(n, n_order);
            if e_mesh > tolerance {
                continue;
            }
            let parameters = PmeParameters {
                smearing: sigma,
                cutoff: rc,
                mesh: Mesh::Points(n),
                order: n_order,
            };
            if !ignore_limits && !pme_work_fits(system, &parameters, memory)? {
                continue;
            }
            let cost = pme_cost(stats, rc, n, n_order);
            best_cost.set(best_cost.get().min(cost));
            if best.is_none_or(|b| cost < b.cost) {
                best = Some(PmeChoice {
                    parameters,
                    predicted_error: (e_real, e_mesh),
                    cost,
                });
            }
        }
        Ok(best)
    };
    let candidates: Vec<f64> = if let Some(sigma) = overrides.smearing {
        vec![sigma]
    } else {
        let lmax = stats.lengths.iter().fold(d, |m, &l| m.max(l));
        let (lo, hi) = (0.1 * d, 0.5 * lmax.max(d));
        let (wide_lo, wide_hi) = (1e-6 * d, 1e6 * lmax.max(d));
        let upper = match overrides.cutoff {
            Some(rc) => match super::log_boundary(
                |s| Ok(real_err(s, rc) <= target),
                wide_lo,
                wide_hi,
                false,
                1e-9,
            )? {
                Some(s) => Some(s),
                None => return Ok(None),
            },
            None => None,
        };
        let lower = match overrides.mesh {
            Some(mesh) => {
                let mut lowest: Option<f64> = None;
                for &o in &orders {
                    let Some(n) = fixed_grid(stats, mesh, o) else {
                        continue;
                    };
                    let bound = super::log_boundary(
                        |s| {
                            Ok(mesh_error(kernel, stats, s, n, o).unwrap_or(f64::INFINITY)
                                <= target)
                        },
                        wide_lo,
                        wide_hi,
                        true,
                        1e-9,
                    )?;
                    if let Some(b) = bound {
                        lowest = Some(lowest.map_or(b, |l: f64| l.min(b)));
                    }
                }
                match lowest {
                    Some(l) => Some(l),
                    None => return Ok(None),
                }
            }
            None => None,
        };
        match super::sigma_grid((lo, hi), (lower, upper), 40) {
            Some(grid) => grid,
            None => return Ok(None),
        }
    };
    if first {
        for sigma in candidates {
            crate::interrupt::check()?;
            if let Some(c) = choose(sigma)? {
                return Ok(Some(c));
            }
        }
        return Ok(None);
    }
    super::scan_min(candidates.len(), 4, |i| {
        Ok(choose(candidates[i])?.map(|c| (c, c.cost)))
    })
}

/// Chooses the PME parameters that `overrides` leaves free so that the predicted relative RMS
/// force error stays below `accuracy`, minimising the predicted cost.
///
/// A smearing is only considered when the fixed values (cutoff, mesh, order) meet their error
/// targets with it, and when the work stays within the limits of [`crate::limits`]. When no
/// choice does, the error names, for each fixed value, the nearest value that would work with
/// the others kept (smallest cutoff, finest mesh, nearest order, smallest or largest
/// smearing). Smearing, cutoff and mesh all fixed are the caller's explicit choice: see
/// [`pme_parameters`], which keeps them unchecked.
pub fn tune_pme_with(
    kernel: Kernel,
    system: &System,
    accuracy: f64,
    overrides: PmeOverrides,
) -> Result<PmeChoice> {
    check_accuracy(accuracy)?;
    let stats = PmeStats::of(system)?;
    if let Some(c) = search_pme(kernel, system, accuracy, overrides, false, false)? {
        return Ok(c);
    }
    let mut fixed: Vec<(&str, String)> = Vec::new();
    if let Some(s) = overrides.smearing {
        fixed.push(("smearing", format!("{s}")));
    }
    if let Some(c) = overrides.cutoff {
        fixed.push(("cutoff", format!("{c}")));
    }
    match overrides.mesh {
        Some(Mesh::Points(n)) => fixed.push(("mesh", format!("({}, {}, {})", n[0], n[1], n[2]))),
        Some(Mesh::Spacing(h)) => fixed.push(("mesh_spacing", format!("{h}"))),
        None => {}
    }
    if let Some(o) = overrides.order {
        fixed.push(("order", format!("{o}")));
    }
    if fixed.is_empty() {
        if let Some(c) = search_pme(kernel, system, accuracy, overrides, true, false)? {
            check_pme_work(system, &c.parameters)?;
        }
        return Err(Error::parameter(
            "accuracy",
            format!("no PME parameters reach {accuracy}"),
        ));
    }
    let works = |o: PmeOverrides| -> Result<bool> {
        Ok(search_pme(kernel, system, accuracy, o, false, true)?.is_some())
    };
    let mut nearest: Vec<(&str, String, bool)> = Vec::new();
    if let Some(given) = overrides.smearing {
        let o = PmeOverrides {
            smearing: None,
            ..overrides
        };
        if let Some(c) = search_pme(kernel, system, accuracy, o, false, true)? {
            let f = |v: f64| {
                works(PmeOverrides {
                    smearing: Some(v),
                    ..overrides
                })
            };
            if let Some(v) = super::nearest_working(f, given, c.parameters.smearing)? {
                nearest.push(("smearing", format!("{v}"), v > given));
            }
        }
    }
    if let Some(given) = overrides.cutoff {
        let o = PmeOverrides {
            cutoff: None,
            ..overrides
        };
        if let Some(c) = search_pme(kernel, system, accuracy, o, false, false)? {
            let f = |v: f64| {
                works(PmeOverrides {
                    cutoff: Some(v),
                    ..overrides
                })
            };
            if let Some(v) = super::nearest_working(f, given, c.parameters.cutoff)? {
                nearest.push(("cutoff", format!("{v}"), v > given));
            }
        }
    }
    if let Some(mesh) = overrides.mesh {
        let o = PmeOverrides {
            mesh: None,
            ..overrides
        };
        if let Some(c) = search_pme(kernel, system, accuracy, o, false, false)? {
            let Mesh::Points(best) = c.parameters.mesh else {
                unreachable!("the tuner returns mesh points")
            };
            match mesh {
                Mesh::Points(n) => {
                    let scaled = |f: f64| -> [usize; 3] {
                        [0, 1, 2].map(|a| ((n[a] as f64 * f).ceil() as usize).max(1))
                    };
                    let known = (0..3)
                        .map(|a| best[a] as f64 / n[a] as f64)
                        .fold(0.0, f64::max);
                    let f = |v: f64| {
                        works(PmeOverrides {
                            mesh: Some(Mesh::Points(scaled(v))),
                            ..overrides
                        })
                    };
                    if let Some(v) = super::nearest_working(f, 1.0, known)? {
                        let m = scaled(v);
                        nearest.push(("mesh", format!("({}, {}, {})", m[0], m[1], m[2]), v > 1.0));
                    }
                }
                Mesh::Spacing(h) => {
                    let known = (0..3)
                        .map(|a| stats.lengths[a] / best[a] as f64)
                        .fold(f64::INFINITY, f64::min);
                    let f = |v: f64| {
                        works(PmeOverrides {
                            mesh: Some(Mesh::Spacing(v)),
                            ..overrides
                        })
                    };
                    if let Some(v) = super::nearest_working(f, h, known)? {
                        nearest.push(("mesh_spacing", format!("{v}"), v > h));
                    }
                }
            }
        }
    }
    if let Some(given) = overrides.order {
        let mut candidates: Vec<usize> = (ORDER_RANGE.0..=ORDER_RANGE.1).collect();
        candidates.sort_by_key(|&o| (o as i64 - given as i64).abs());
        for o in candidates {
            if o != given
                && works(PmeOverrides {
                    order: Some(o),
                    ..overrides
                })?
            {
                nearest.push(("order", format!("{o}"), o > given));
                break;
            }
        }
    }
    let free: Vec<&str> = ["smearing", "cutoff", "mesh", "order"]
        .into_iter()
        .filter(|n| !fixed.iter().any(|f| f.0.starts_with(n)))
        .collect();
    Err(super::refusal(&fixed, &free, accuracy, &nearest))
}

/// What a user fixed; everything left `None` (the default of every field) is chosen by
/// [`tune_pme`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PmeOverrides {
    /// Fixed smearing σ (length). Default `None`.
    pub smearing: Option<f64>,
    /// Fixed real-space cutoff (length). Default `None`.
    pub cutoff: Option<f64>,
    /// Fixed mesh (points or spacing). Default `None`.
    pub mesh: Option<Mesh>,
    /// Fixed spline order. Default `None`.
    pub order: Option<usize>,
}

/// The parameters to use: the fixed ones when smearing, cutoff and mesh are all given (order 6
/// unless fixed; the caller's explicit choice, not checked against `accuracy`), otherwise
/// [`tune_pme_with`] for `accuracy` with the given values kept and the free ones chosen so that
/// the accuracy still holds (or an error naming the nearest fixed values that would work).
pub fn pme_parameters(
    kernel: Kernel,
    system: &System,
    accuracy: f64,
    overrides: PmeOverrides,
) -> Result<PmeParameters> {
    super::check_positive("smearing", overrides.smearing)?;
    super::check_positive("cutoff", overrides.cutoff)?;
    if let Some(o) = overrides.order {
        if !(crate::pme::ORDER_RANGE.0..=crate::pme::ORDER_RANGE.1).contains(&o) {
            return Err(Error::parameter(
                "order",
                format!(
                    "the B-spline order must be between {} and {}, got {o}",
                    crate::pme::ORDER_RANGE.0,
                    crate::pme::ORDER_RANGE.1
                ),
            ));
        }
    }
    if let Some(Mesh::Points(n)) = overrides.mesh {
        if n.iter().any(|&k| !(1..=1 << 14).contains(&k)) {
            return Err(Error::parameter(
                "mesh",
                format!("every mesh size must be between 1 and 16384, got {n:?}"),
            ));
        }
    }
    if let Some(Mesh::Spacing(h)) = overrides.mesh {
        if !(h.is_finite() && h > 0.0) {
            return Err(Error::parameter(
                "mesh_spacing",
                format!("must be positive and finite, got {h}"),
            ));
        }
    }
    if let (Some(smearing), Some(cutoff), Some(mesh)) =
        (overrides.smearing, overrides.cutoff, overrides.mesh)
    {
        let params = PmeParameters {
            smearing,
            cutoff,
            mesh,
            order: overrides.order.unwrap_or(6),
        };
        params.validate()?;
        if let Some(cell) = system.cell() {
            return Ok(PmeParameters {
                mesh: Mesh::Points(params.grid(cell)?),
                ..params
            });
        }
        return Ok(params);
    }
    Ok(tune_pme_with(kernel, system, accuracy, overrides)?.parameters)
}

/// Systems with fewer atoms than this always use Ewald under `method="auto"`.
pub const AUTO_MIN_ATOMS: usize = 200;

/// `method="auto"`: `true` when PME is predicted to be cheaper than Ewald for this system and
/// accuracy. Small systems (fewer than [`AUTO_MIN_ATOMS`] atoms) stay on Ewald.
pub fn prefer_pme(kernel: Kernel, system: &System, accuracy: f64) -> Result<bool> {
    if system.len() < AUTO_MIN_ATOMS || !system.is_periodic() {
        return Ok(false);
    }
    let choice = super::choose::choose(
        kernel,
        system,
        accuracy,
        super::choose::Request::Auto,
        Default::default(),
    )?;
    Ok(matches!(choice.method, super::choose::Method::Pme(_)))
}

#[cfg(test)]
mod tests;
