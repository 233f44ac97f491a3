//! Error estimates and automatic parameters for a requested accuracy.
//!
//! # What to call
//!
//! * [`choose::choose`]: the method (Ewald, PME, direct, free-space mesh) and all its
//!   parameters for an accuracy, with the predicted cost and error ([`choose::Choice`]);
//!   [`choose::Method::build`] gives the sum. With every parameter fixed in
//!   [`choose::Overrides`] (Ewald: smearing, cutoff, k-cutoff; PME: smearing, cutoff, mesh,
//!   order; free-space mesh: smearing, cutoff, mesh spacing, order) it keeps them and reports
//!   the predicted cost and error of that choice: the way to estimate your own parameters.
//! * one method: [`tune_ewald`], [`pme::tune_pme`] / [`pme::tune_pme_with`] (with the
//!   predicted errors and cost, [`pme::PmeChoice`]), [`pme::pme_parameters`] (fixed values
//!   kept), [`freespace::tune`] (open systems); [`pme::prefer_pme`] says whether
//!   `method="auto"` picks PME.
//!
//! The error and cost models themselves and the work estimates every engine checks against
//! [`crate::limits`] before it computes are crate-private.
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
//!
//! # Fixed parameters
//!
//! Any of smearing / cutoff / k-cutoff (PME: smearing / cutoff / mesh / order) may be fixed.
//! The free ones are then chosen under the same error targets: a σ is admissible only when the
//! fixed values meet their targets with it (a fixed cutoff bounds σ from above, a fixed
//! k-cutoff or mesh from below), and only when the estimated work stays within the limits of
//! [`crate::limits`] and a cutoff chosen by farfield visits at most [`MAX_FREE_VISITS`] images
//! per atom. When no σ is admissible, the error names for each fixed value the nearest one
//! that would be (found by bisection, rounded to three digits on the working side). All of
//! smearing, cutoff and k-cutoff (PME: smearing, cutoff and mesh) fixed are the caller's
//! explicit choice: they are used unchecked (their work is still checked before computing).

pub mod choose;
pub mod freespace;
pub mod pme;

use crate::error::{Error, Result};
use crate::ewald::EwaldParameters;
use crate::kernel::Kernel;
use crate::system::System;
use std::f64::consts::PI;

/// Smallest accepted accuracy.
pub const MIN_ACCURACY: f64 = 1e-15;

/// Relative cost of one real-space pair evaluation (per atom, full neighbour loop; the
/// tabulated half-pair sum of [`crate::realspace`], ~11 ns per (atom, neighbour) on the 2-core
/// machine).
const REAL_COST: f64 = 1.0;
/// Relative cost of one (atom, half-space k-vector) term (structure factor + forces, ~7 ns).
const KSPACE_COST: f64 = 0.65;
/// Safety factor applied to the requested accuracy (the estimates are averages).
const SAFETY: f64 = 0.5;

/// Checks that `accuracy` is in [1e-15, 1).
pub(crate) fn check_accuracy(accuracy: f64) -> Result<()> {
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
pub(crate) struct SystemStats {
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
pub(crate) fn ewald_error(
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
    let recip = kspace_tail_error(kernel, &split, density, sigma, kc) * scale;
    Ok((real, recip))
}

/// Nodes of the 16-point Gauss–Laguerre rule (∫₀^∞ e^{-u} g(u) du ≈ Σ w_i g(u_i)).
const LAGUERRE_NODES: [f64; 16] = [
    0.087_649_410_478_927_84,
    0.462_696_328_915_080_8,
    1.141_057_774_831_227,
    2.129_283_645_098_381,
    3.437_086_633_893_207,
    5.078_018_614_549_768,
    7.070_338_535_048_234,
    9.438_314_336_391_939,
    12.214_223_368_866_16,
    15.441_527_368_781_62,
    19.180_156_856_753_13,
    23.515_905_693_991_91,
    28.578_729_742_882_14,
    34.583_398_702_286_63,
    41.940_452_647_688_33,
    51.701_160_339_543_32,
];
/// Weights of the 16-point Gauss–Laguerre rule.
const LAGUERRE_WEIGHTS: [f64; 16] = [
    2.061_517_149_578_010_6e-1,
    3.310_578_549_508_842e-1,
    2.657_957_776_442_141_6e-1,
    1.362_969_342_963_775_7e-1,
    4.732_892_869_412_53e-2,
    1.129_990_008_033_945e-2,
    1.849_070_943_526_117e-3,
    2.042_719_153_082_785e-4,
    1.484_458_687_398_129_5e-5,
    6.828_319_330_871_199e-7,
    1.881_024_841_079_673e-8,
    2.862_350_242_973_882e-10,
    2.127_079_033_224_103e-12,
    6.297_967_002_517_868e-15,
    5.050_473_700_035_513e-18,
    4.161_462_370_372_855e-22,
];

/// Random-phase relative RMS force error (before the F_0 scale d^{p+1}) of the k-vectors
/// beyond k_c: ΔF_k² = ρ/(2π²) ∫_{k_c}^∞ k⁴ V̂_LR(k)² dk, whose Gaussian tail makes it, for
/// p = 1, Kolafa–Perram's ρ k_c³ V̂_LR(k_c)² / (4π² σ²) at leading order. The integral is
/// evaluated (16-point Gauss–Laguerre in u = (k² − k_c²) σ²) because for other exponents the
/// algebraic factor of V̂_LR is not constant over the tail. The larger of the two is returned
/// (for p = 1 the leading order, an upper bound of the Gaussian tail, without the quadrature).
/// Like every random-phase estimate it assumes no long-range order: in a crystal, a Bragg
/// peak of the charge structure factor just beyond k_c can carry several times the estimate.
pub(crate) fn kspace_tail_error(
    kernel: Kernel,
    split: &crate::kernel::RangeSplit,
    density: f64,
    sigma: f64,
    kc: f64,
) -> f64 {
    let (vhat, _) = split.fourier(kc * kc);
    let leading = density * kc.powi(3) / (4.0 * PI * PI * sigma * sigma) * vhat * vhat;
    if kernel.exponent() == 1.0 {
        return leading.sqrt();
    }
    let s2 = sigma * sigma;
    let mut integral = 0.0;
    for (u, w) in LAGUERRE_NODES.iter().zip(LAGUERRE_WEIGHTS) {
        let k2 = kc * kc + u / s2;
        let k = k2.sqrt();
        let (v, _) = split.fourier(k2);
        integral += w * (u.exp() * k2 * k * v * v / (2.0 * s2));
    }
    let tail = density * integral / (2.0 * PI * PI);
    let e2 = if tail.is_finite() {
        leading.max(tail)
    } else {
        leading
    };
    e2.sqrt()
}

/// Predicted cost (arbitrary units) of an Ewald sum.
pub(crate) fn ewald_cost(stats: SystemStats, parameters: EwaldParameters) -> f64 {
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

/// For `ok` true at one end of [lo, hi] (log scale) and false at the other, the point of the
/// `ok` side closest to the switch (to a relative `tolerance`): with `ok_above`, the smallest
/// x with ok(x), otherwise the largest. `None` when `ok` does not switch as assumed.
pub(crate) fn log_boundary(
    mut ok: impl FnMut(f64) -> Result<bool>,
    lo: f64,
    hi: f64,
    ok_above: bool,
    tolerance: f64,
) -> Result<Option<f64>> {
    let (mut bad, mut good) = if ok_above { (lo, hi) } else { (hi, lo) };
    if !ok(good)? {
        return Ok(None);
    }
    if ok(bad)? {
        return Ok(Some(bad));
    }
    for _ in 0..200 {
        if (good / bad).ln().abs() < tolerance {
            break;
        }
        crate::interrupt::check()?;
        let mid = (bad * good).sqrt();
        if ok(mid)? {
            good = mid;
        } else {
            bad = mid;
        }
    }
    Ok(Some(good))
}

/// The index in 0..n with the smallest cost (the first one on ties), of those `eval` admits
/// (`Some((value, cost))`): a coarse pass over every `stride`-th index and the last, then the
/// indices within a stride of the coarse minimum. This is the minimum of the full scan when
/// the cost is unimodal on the scale of a stride, as the predicted costs over a logarithmic
/// σ grid are; when the coarse pass admits nothing, every index is tried.
pub(crate) fn scan_min<T>(
    n: usize,
    stride: usize,
    mut eval: impl FnMut(usize) -> Result<Option<(T, f64)>>,
) -> Result<Option<T>> {
    let stride = stride.max(1);
    let mut done = vec![false; n];
    let mut best: Option<(usize, T, f64)> = None;
    let mut visit = |i: usize, best: &mut Option<(usize, T, f64)>| -> Result<()> {
        if done[i] {
            return Ok(());
        }
        done[i] = true;
        crate::interrupt::check()?;
        if let Some((value, cost)) = eval(i)? {
            let better = match best {
                None => true,
                Some((j, _, c)) => cost < *c || (cost == *c && i < *j),
            };
            if better {
                *best = Some((i, value, cost));
            }
        }
        Ok(())
    };
    if n == 0 {
        return Ok(None);
    }
    let mut coarse: Vec<usize> = (0..n).step_by(stride).collect();
    if coarse.last() != Some(&(n - 1)) {
        coarse.push(n - 1);
    }
    for &i in &coarse {
        visit(i, &mut best)?;
    }
    match best.as_ref().map(|b| b.0) {
        Some(centre) => {
            let lo = centre.saturating_sub(stride - 1);
            let hi = (centre + stride).min(n);
            for i in lo..hi {
                visit(i, &mut best)?;
            }
        }
        None => {
            for i in 0..n {
                visit(i, &mut best)?;
            }
        }
    }
    Ok(best.map(|b| b.1))
}

/// `x` rounded to 3 significant digits, up (`up`) or down.
pub(crate) fn round_3(x: f64, up: bool) -> f64 {
    if !(x.is_finite() && x > 0.0) {
        return x;
    }
    let scale = 10f64.powf(x.log10().floor() - 2.0);
    let y = if up {
        (x / scale * (1.0 - 1e-12)).ceil() * scale
    } else {
        (x / scale * (1.0 + 1e-12)).floor() * scale
    };
    // strip the binary noise of the multiplication
    format!("{y:.3e}").parse().unwrap_or(y)
}

/// The value of one fixed parameter closest to `given` that makes `works` true, rounded to
/// three significant digits on the working side: searched between `given` (which fails) and
/// `known` (which works).
pub(crate) fn nearest_working(
    mut works: impl FnMut(f64) -> Result<bool>,
    given: f64,
    known: f64,
) -> Result<Option<f64>> {
    let up = known > given;
    let (lo, hi) = if up { (given, known) } else { (known, given) };
    let Some(b) = log_boundary(&mut works, lo, hi, up, 2e-4)? else {
        return Ok(None);
    };
    let rounded = round_3(b, up);
    if works(rounded)? {
        Ok(Some(rounded))
    } else {
        Ok(Some(b))
    }
}

/// The text of a refusal of fixed parameters: `fixed` lists "name=value" of what the user
/// fixed, `free` the names chosen automatically, `nearest` (name, value, smallest?) the nearest
/// working value of each fixed parameter when the others are kept.
pub(crate) fn refusal(
    fixed: &[(&str, String)],
    free: &[&str],
    accuracy: f64,
    nearest: &[(&str, String, bool)],
) -> Error {
    let given: Vec<String> = fixed.iter().map(|(n, v)| format!("{n}={v}")).collect();
    let name = fixed.first().map(|f| f.0).unwrap_or("accuracy");
    let free_text = if free.is_empty() {
        String::new()
    } else {
        format!(" with any {}", free.join("/"))
    };
    let mut reason = format!(
        "{} cannot reach accuracy {accuracy:e}{free_text} (predicted relative RMS force error, \
         within the cost limits of farfield.set_limits, and at most {MAX_FREE_VISITS:.0e} \
         neighbor images per atom for a cutoff farfield chooses)",
        given.join(", ")
    );
    if nearest.is_empty() {
        reason.push_str(
            "; change several of the fixed values, lower the accuracy, or leave them to farfield",
        );
    } else {
        let parts: Vec<String> = nearest
            .iter()
            .map(|(n, v, smallest)| {
                let which = if *smallest { "smallest" } else { "largest" };
                if fixed.len() > 1 {
                    format!("the {which} {n} that does (the other values kept) is {v}")
                } else {
                    format!("the {which} {n} that does is {v}")
                }
            })
            .collect();
        reason.push_str("; ");
        reason.push_str(&parts.join("; "));
    }
    Error::parameter(name, reason)
}

/// User overrides of the automatic choice (any may be fixed). Every field defaults to
/// `None`: chosen by [`tune_ewald`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EwaldOverrides {
    /// Fixed smearing σ (length). Default `None`.
    pub smearing: Option<f64>,
    /// Fixed real-space cutoff (length). Default `None`.
    pub cutoff: Option<f64>,
    /// Fixed reciprocal-space cutoff (inverse length). Default `None`.
    pub k_cutoff: Option<f64>,
}

/// Largest number of atoms (periodic images included) within a cutoff that farfield chooses
/// itself, per centre: far above any cost-optimal choice (hundreds to a few thousand), it keeps
/// a fixed smearing or k-cutoff from silently forcing a huge real-space sum.
pub const MAX_FREE_VISITS: f64 = 1e5;

/// Bytes per half-space k-vector of an Ewald sum (indices, vector, |k|², V̂ and dV̂,
/// structure factor).
const BYTES_PER_KVECTOR: f64 = 12.0 + 24.0 + 8.0 + 16.0 + 16.0;

/// The work of an Ewald sum with `parameters` on `system`, estimated from the parameters
/// alone: (real-space pair terms, (atom, k-vector) terms, bytes, half-space k-vectors).
pub(crate) fn ewald_work(
    system: &System,
    parameters: EwaldParameters,
) -> Result<(f64, f64, f64, f64)> {
    let cell = system.cell().ok_or_else(|| {
        Error::Unsupported("Ewald parameters are only defined for periodic systems".into())
    })?;
    let n = system.len().max(1) as f64;
    let volume = cell.volume();
    let real = n * real_space_visits(system, parameters.cutoff);
    let kc = parameters.k_cutoff;
    let lengths = cell.lengths();
    let mut index_box = 1.0;
    let mut table_rows = 0.0;
    for l in lengths {
        let m = (kc * l / (2.0 * PI)).floor();
        index_box *= 2.0 * m + 1.0;
        table_rows += 2.0 * m + 1.0;
    }
    let kvectors = 4.0 / 3.0 * PI * kc.powi(3) * volume / (8.0 * PI.powi(3)) / 2.0;
    let kvectors = kvectors.min(0.5 * index_box);
    let kterms = 3.0 * n * kvectors + 0.5 * index_box;
    let bytes = BYTES_PER_KVECTOR * kvectors + 16.0 * n * table_rows + 200.0 * n;
    Ok((real, kterms, bytes, kvectors))
}

/// Number of atoms (images) a cell-list neighbour loop visits per centre for `cutoff`: the
/// density times the searched box, which grows like the number of periodic images when the
/// cutoff is much longer than the cell.
pub(crate) fn real_space_visits(system: &System, cutoff: f64) -> f64 {
    let n = system.len().max(1) as f64;
    match system.cell() {
        Some(cell) => {
            let spacings = cell.plane_spacings();
            let min_bin = (cell.volume() / (2.0 * n).max(8.0)).cbrt();
            let mut volume = 1.0;
            for h in spacings {
                let bin = (0.5 * cutoff).max(min_bin).min(h);
                volume *= 2.0 * cutoff + bin;
            }
            n / cell.volume() * volume
        }
        None => n,
    }
}

/// Refuses an Ewald sum whose estimated work exceeds the limits of [`crate::limits`], naming
/// the parameter to change.
pub(crate) fn check_ewald_work(system: &System, parameters: EwaldParameters) -> Result<()> {
    let (real, kterms, bytes, kvectors) = ewald_work(system, parameters)?;
    crate::limits::check_terms(
        &format!(
            "the Ewald real-space sum with cutoff {} (pair terms, periodic images included)",
            parameters.cutoff
        ),
        real,
        "lower the cutoff (with a smaller smearing), or leave cutoff and smearing to farfield",
    )?;
    let hint =
        "lower k_cutoff (with a larger smearing), or leave k_cutoff and smearing to farfield";
    if kvectors > crate::kspace::MAX_KVECTORS as f64 {
        return Err(Error::TooExpensive {
            what: format!(
                "the Ewald k-space sum with k_cutoff {}",
                parameters.k_cutoff
            ),
            estimate: format!("{kvectors:.2e} k-vectors"),
            limit: format!("{} k-vectors", crate::kspace::MAX_KVECTORS),
            hint: hint.into(),
        });
    }
    crate::limits::check_terms(
        &format!(
            "the Ewald k-space sum with k_cutoff {} ((atom, k-vector) terms)",
            parameters.k_cutoff
        ),
        kterms,
        hint,
    )?;
    crate::limits::check_memory(
        &format!(
            "the Ewald k-space tables with k_cutoff {}",
            parameters.k_cutoff
        ),
        bytes,
        hint,
    )
}

/// Whether [`check_ewald_work`] would accept `parameters`, for a memory limit read once by
/// the caller (the tuner checks many candidates).
fn ewald_work_fits(system: &System, parameters: EwaldParameters, memory: f64) -> Result<bool> {
    let (real, kterms, bytes, kvectors) = ewald_work(system, parameters)?;
    let max_terms = crate::limits::get().max_terms;
    let within = |x: f64, limit: f64| !(x.is_nan() || x > limit);
    Ok(within(real, max_terms)
        && within(kvectors, crate::kspace::MAX_KVECTORS as f64)
        && within(kterms, max_terms)
        && within(bytes, memory))
}

/// Refuses an override that is given but not positive and finite, naming it.
pub(crate) fn check_positive(name: &str, value: Option<f64>) -> Result<()> {
    if let Some(v) = value {
        if !(v.is_finite() && v > 0.0) {
            return Err(Error::parameter(
                name,
                format!("must be positive and finite, got {v}"),
            ));
        }
    }
    Ok(())
}

/// The cheapest admissible Ewald parameters with `overrides` kept: every σ considered meets
/// the error target with the fixed values, and the work stays within the limits (unless
/// `ignore_limits`). `None` when no σ qualifies.
fn search_ewald(
    kernel: Kernel,
    system: &System,
    accuracy: f64,
    overrides: EwaldOverrides,
    ignore_limits: bool,
) -> Result<Option<EwaldParameters>> {
    let stats = SystemStats::of(system)?;
    let target = SAFETY * accuracy / std::f64::consts::SQRT_2;
    let d = stats.spacing();
    // the two parts of `ewald_error`, each evaluated alone (the same arithmetic)
    let density = 1.0 / (d * d * d);
    let scale = d.powf(kernel.exponent() + 1.0);
    let real_part = |split: &crate::kernel::RangeSplit, sigma: f64, rc: f64| -> f64 {
        let (_, dv) = split.short_range(rc);
        (density * 2.0 * PI * rc * sigma * sigma).sqrt() * dv.abs() * scale
    };
    let recip_part = |split: &crate::kernel::RangeSplit, sigma: f64, kc: f64| -> f64 {
        kspace_tail_error(kernel, split, density, sigma, kc) * scale
    };
    let real_err = |sigma: f64, rc: f64| -> f64 {
        match kernel.split(sigma) {
            Ok(split) => real_part(&split, sigma, rc),
            Err(_) => f64::INFINITY,
        }
    };
    let recip_err = |sigma: f64, kc: f64| -> f64 {
        match kernel.split(sigma) {
            Ok(split) => recip_part(&split, sigma, kc),
            Err(_) => f64::INFINITY,
        }
    };
    // read once per search (it reads the system's free memory)
    let memory = crate::limits::memory_limit();
    let choose = |sigma: f64| -> Result<Option<(EwaldParameters, f64)>> {
        let Ok(split) = kernel.split(sigma) else {
            return Ok(None);
        };
        let real_err = |sigma: f64, rc: f64| real_part(&split, sigma, rc);
        let recip_err = |sigma: f64, kc: f64| recip_part(&split, sigma, kc);
        let rc = match overrides.cutoff {
            Some(rc) => rc,
            None => solve_decreasing(|rc| real_err(sigma, rc), target, sigma, 60.0 * sigma),
        };
        let kc = match overrides.k_cutoff {
            Some(kc) => kc,
            None => solve_decreasing(|kc| recip_err(sigma, kc), target, 0.5 / sigma, 60.0 / sigma),
        };
        let params = EwaldParameters {
            smearing: sigma,
            cutoff: rc,
            k_cutoff: kc,
        };
        if overrides.cutoff.is_none()
            && !ignore_limits
            && real_space_visits(system, rc) > MAX_FREE_VISITS
        {
            return Ok(None);
        }
        let tolerance = target * (1.0 + 1e-9);
        if real_err(sigma, rc) > tolerance || recip_err(sigma, kc) > tolerance {
            return Ok(None);
        }
        if !ignore_limits && !ewald_work_fits(system, params, memory)? {
            return Ok(None);
        }
        Ok(Some((params, ewald_cost(stats, params))))
    };
    let candidates: Vec<f64> = if let Some(sigma) = overrides.smearing {
        vec![sigma]
    } else {
        // scan σ on a logarithmic grid around the interparticle spacing (and the cell size)
        let lengths = system.cell().map(|c| c.lengths()).unwrap_or([d; 3]);
        let lmax = lengths.iter().fold(d, |m, &l| m.max(l));
        let (lo, hi) = (0.02 * d.min(lmax), 2.0 * lmax.max(d));
        let (wide_lo, wide_hi) = (1e-6 * d, 1e6 * lmax.max(d));
        // a fixed cutoff admits σ up to a bound (the real-space error grows with σ), a fixed
        // k-cutoff σ down to a bound
        let upper = match overrides.cutoff {
            Some(rc) => match log_boundary(
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
        let lower = match overrides.k_cutoff {
            Some(kc) => match log_boundary(
                |s| Ok(recip_err(s, kc) <= target),
                wide_lo,
                wide_hi,
                true,
                1e-9,
            )? {
                Some(s) => Some(s),
                None => return Ok(None),
            },
            None => None,
        };
        match sigma_grid((lo, hi), (lower, upper), 120) {
            Some(grid) => grid,
            None => return Ok(None),
        }
    };
    scan_min(candidates.len(), 8, |i| choose(candidates[i]))
}

/// The smearings a tuner scans: `steps + 1` points, logarithmically spaced, on the default
/// window `[lo, hi]` narrowed to the bounds that fixed parameters impose (`lower` from a fixed
/// k-space resolution, `upper` from a fixed cutoff; a window 20-fold wide on the open side);
/// `None` when the bounds exclude each other.
pub(crate) fn sigma_grid(
    (mut lo, mut hi): (f64, f64),
    (lower, upper): (Option<f64>, Option<f64>),
    steps: usize,
) -> Option<Vec<f64>> {
    match (lower, upper) {
        (Some(l), Some(u)) => {
            if l > u {
                return None;
            }
            (lo, hi) = (l, u);
        }
        (Some(l), None) => (lo, hi) = (l, hi.max(20.0 * l)),
        (None, Some(u)) => (lo, hi) = (lo.min(u / 20.0), u),
        (None, None) => {}
    }
    let mut grid: Vec<f64> = (0..=steps)
        .map(|s| lo * (hi / lo).powf(s as f64 / steps as f64))
        .collect();
    grid[steps] = hi;
    Some(grid)
}

/// Chooses Ewald parameters for `system` so that the predicted relative RMS force error stays
/// below `accuracy`, minimising the predicted cost.
///
/// Fixed values in `overrides` are kept and the free ones chosen so that the accuracy still
/// holds: a smearing is only considered when the fixed cutoff and k-cutoff meet their error
/// targets with it. When no choice does (within the limits of [`crate::limits`]), the error
/// names, for each fixed value, the nearest value (smallest cutoff or k-cutoff, smallest or
/// largest smearing) that would work with the others kept. When all three are fixed they are
/// the caller's explicit choice and are returned unchecked.
pub fn tune_ewald(
    kernel: Kernel,
    system: &System,
    accuracy: f64,
    overrides: EwaldOverrides,
) -> Result<EwaldParameters> {
    check_accuracy(accuracy)?;
    check_positive("smearing", overrides.smearing)?;
    check_positive("cutoff", overrides.cutoff)?;
    check_positive("k_cutoff", overrides.k_cutoff)?;
    SystemStats::of(system)?;
    if let (Some(smearing), Some(cutoff), Some(k_cutoff)) =
        (overrides.smearing, overrides.cutoff, overrides.k_cutoff)
    {
        return Ok(EwaldParameters {
            smearing,
            cutoff,
            k_cutoff,
        });
    }
    if let Some(p) = search_ewald(kernel, system, accuracy, overrides, false)? {
        return Ok(p);
    }
    let fixed: Vec<(&str, f64)> = [
        ("smearing", overrides.smearing),
        ("cutoff", overrides.cutoff),
        ("k_cutoff", overrides.k_cutoff),
    ]
    .into_iter()
    .filter_map(|(n, v)| v.map(|v| (n, v)))
    .collect();
    if fixed.is_empty() {
        // nothing fixed: the cheapest choice is over the limits; say so with its estimate
        if let Some(p) = search_ewald(kernel, system, accuracy, overrides, true)? {
            check_ewald_work(system, p)?;
        }
        return Err(Error::parameter(
            "accuracy",
            format!("no Ewald parameters reach accuracy {accuracy:e}"),
        ));
    }
    let with = |name: &str, value: Option<f64>| -> EwaldOverrides {
        let mut o = overrides;
        match name {
            "smearing" => o.smearing = value,
            "cutoff" => o.cutoff = value,
            _ => o.k_cutoff = value,
        }
        o
    };
    let mut nearest = Vec::new();
    for &(name, given) in &fixed {
        let Some(free) = search_ewald(kernel, system, accuracy, with(name, None), false)? else {
            continue;
        };
        let known = match name {
            "smearing" => free.smearing,
            "cutoff" => free.cutoff,
            _ => free.k_cutoff,
        };
        let works = |v: f64| -> Result<bool> {
            let o = with(name, Some(v));
            if o.smearing.is_some() && o.cutoff.is_some() && o.k_cutoff.is_some() {
                // all fixed: check the errors and the work directly
                let p = EwaldParameters {
                    smearing: o.smearing.unwrap_or(v),
                    cutoff: o.cutoff.unwrap_or(v),
                    k_cutoff: o.k_cutoff.unwrap_or(v),
                };
                let (er, ek) = ewald_error(kernel, SystemStats::of(system)?, p)?;
                let target = SAFETY * accuracy / std::f64::consts::SQRT_2;
                return Ok(er <= target && ek <= target && check_ewald_work(system, p).is_ok());
            }
            Ok(search_ewald(kernel, system, accuracy, o, false)?.is_some())
        };
        if let Some(v) = nearest_working(works, given, known)? {
            nearest.push((name, format!("{v}"), v > given));
        }
    }
    let fixed_text: Vec<(&str, String)> = fixed.iter().map(|(n, v)| (*n, format!("{v}"))).collect();
    let free: Vec<&str> = ["smearing", "cutoff", "k_cutoff"]
        .into_iter()
        .filter(|n| !fixed.iter().any(|f| f.0 == *n))
        .collect();
    Err(refusal(&fixed_text, &free, accuracy, &nearest))
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

    fn rocksalt() -> System {
        let a = 5.64;
        let cell = [
            [0.0, a / 2.0, a / 2.0],
            [a / 2.0, 0.0, a / 2.0],
            [a / 2.0, a / 2.0, 0.0],
        ];
        System::new(
            vec![[0.0; 3], [a / 2.0, 0.0, 0.0]],
            vec![11, 17],
            Some(cell),
        )
        .unwrap()
    }

    #[test]
    fn fixed_values_keep_the_error_target() {
        let system = rocksalt();
        let stats = SystemStats::of(&system).unwrap();
        let accuracy = 1e-6;
        let target = SAFETY * accuracy / std::f64::consts::SQRT_2 * (1.0 + 1e-6);
        for overrides in [
            EwaldOverrides {
                cutoff: Some(6.0),
                ..Default::default()
            },
            EwaldOverrides {
                k_cutoff: Some(4.0),
                ..Default::default()
            },
            EwaldOverrides {
                smearing: Some(1.0),
                ..Default::default()
            },
        ] {
            let p = tune_ewald(Kernel::coulomb(), &system, accuracy, overrides).unwrap();
            let (er, ek) = ewald_error(Kernel::coulomb(), stats, p).unwrap();
            assert!(
                er <= target && ek <= target,
                "{overrides:?} {p:?} {er} {ek}"
            );
        }
    }

    #[test]
    fn conflicting_values_name_a_working_one() {
        let system = rocksalt();
        let overrides = EwaldOverrides {
            cutoff: Some(2.0),
            k_cutoff: Some(2.0),
            ..Default::default()
        };
        let text = tune_ewald(Kernel::coulomb(), &system, 1e-6, overrides)
            .unwrap_err()
            .to_string();
        assert!(text.contains("the smallest cutoff that does"), "{text}");
        // far beyond the limits: refused before any work, naming the cutoff
        let huge = EwaldParameters {
            smearing: 1.0,
            cutoff: 1e6,
            k_cutoff: 4.0,
        };
        let text = check_ewald_work(&system, huge).unwrap_err().to_string();
        assert!(text.contains("cutoff"), "{text}");
    }

    #[test]
    fn accuracy_range() {
        assert!(check_accuracy(0.0).is_err());
        assert!(check_accuracy(1.0).is_err());
        assert!(check_accuracy(f64::NAN).is_err());
        assert!(check_accuracy(1e-6).is_ok());
    }
}
