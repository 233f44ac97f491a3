#![allow(
    clippy::len_without_is_empty,
    clippy::neg_cmp_op_on_partial_ord,
    clippy::too_many_arguments
)]
//! The QEq matrix `A = diag(J) + k_e C` as an operator: diagonal, dense build, matrix-free
//! product and the derivatives of the bilinear form `uᵀ C v` with respect to positions, widths
//! and strain.
//!
//! `C` is the Coulomb matrix of unit Gaussian charges of widths σ_i (γ_ij = √(σ_i² + σ_j²)):
//!
//! * open systems: `C_ij = erf(r_ij/(√2γ_ij))/r_ij` (i ≠ j), `C_ii = 1/(σ_i√π)`;
//! * periodic systems (Ewald width η):
//!   `C_ij = Σ'_L [erfc(d/(√2η)) − erfc(d/(√2γ_ij))]/d + (4π/V) Σ_{k≠0} e^{−η²k²/2}/k² cos(k·(r_i − r_j))
//!   − (2π/V)(η² − γ_ij²) + δ_ij [1/(σ_i√π) − √(2/π)/η]`.
//!
//! The background term `−(2π/V)(η² − γ_ij²)` is the k → 0 limit of the difference of the two
//! Gaussian kernels; it makes charged cells independent of η.

use rayon::prelude::*;
use rustfft::num_complex::Complex64;

use crate::error::Result;
use crate::kernel::{screened_coulomb, Kernel};
use crate::kspace::KVectors;
use crate::longrange::Request;
use crate::math::linalg::{Mat3, Vec3};
use crate::math::special::erf;
use crate::neighbors::CellList;
use crate::pme::{Mesh, Pme, PmeParameters};
use crate::system::System;
use crate::tuning::pme::{mesh_error, pme_cost, PmeStats};
use crate::{interrupt, limits};

const SQRT_PI: f64 = 1.772_453_850_905_516;
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
/// Real-space pair values are stored (CSR) when at most this many pairs are expected.
pub const PAIR_BUDGET: usize = 25_000_000;
/// ... or at most this many per atom on average (12 bytes each: O(N) memory).
pub const PAIRS_PER_ATOM: usize = 300;

/// Chunks of 64 atoms whose k-space partial sums are held at once (memory: this many times
/// N_k complex values).
pub const STRUCTURE_WINDOW: usize = 32;

/// Ewald settings of a periodic QEq operator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EwaldSettings {
    /// Ewald width η (standard deviation of the screening Gaussian).
    pub eta: f64,
    /// Real-space cutoff.
    pub cutoff: f64,
    /// Reciprocal-space cutoff: k-vectors with |k| < k_cut (strict).
    pub k_cutoff: f64,
}

impl EwaldSettings {
    /// Settings for a relative accuracy `accuracy` (≈ e^{−x²} truncation of both sums):
    /// η = max(given or (V²/N)^{1/6}/√(2π), √2 max σ), r_c = η √(−2 ln ε), k_c = √(−2 ln ε)/η.
    pub fn for_accuracy(
        system: &System,
        max_sigma: f64,
        eta: Option<f64>,
        accuracy: f64,
    ) -> EwaldSettings {
        let volume = system.cell().map(|c| c.volume()).unwrap_or(1.0);
        let n = system.len().max(1) as f64;
        let given = eta.is_some();
        let eta = eta.unwrap_or_else(|| {
            let balanced =
                (volume * volume / n).powf(1.0 / 6.0) / (2.0 * std::f64::consts::PI).sqrt();
            balanced.max(std::f64::consts::SQRT_2 * max_sigma)
        });
        let x = (-2.0 * accuracy.ln()).sqrt();
        // keep the stored real-space pairs within PAIR_BUDGET when η is chosen here
        let max_eta =
            (PAIR_BUDGET as f64 * volume / (n * n * 4.0 / 3.0 * std::f64::consts::PI)).cbrt() / x;
        let eta = if given {
            eta
        } else {
            eta.min(max_eta).max(std::f64::consts::SQRT_2 * max_sigma)
        };
        let widest = eta.max(std::f64::consts::SQRT_2 * max_sigma);
        EwaldSettings {
            eta,
            cutoff: widest * x,
            k_cutoff: x / eta,
        }
    }
}

struct Periodic {
    settings: EwaldSettings,
    volume: f64,
    cells: CellList,
    /// integer indices (m0, m1, m2) of the half-space k-vectors
    ms: Vec<[i32; 3]>,
    ks: Vec<Vec3>,
    /// 2 · (4π/V) e^{−η²k²/2}/k² (factor 2: k and −k)
    weights: Vec<f64>,
    /// per atom, per direction d, e^{i m b_d·r} for m in −m_max..=m_max
    tables: Vec<Complex64>,
    table_len: usize,
    /// real-space values [erfc(d/√2η) − erfc(d/√2γ_ij)]/d per row (CSR), when within budget
    pairs: Option<(Vec<usize>, Vec<u32>, Vec<f64>)>,
    /// PME replacing the explicit k-space sum in products and gradients, when selected
    pme: Option<Pme>,
    /// a cheaper PME (same η, coarser mesh) for the inner solves of the iterative refinement
    coarse: Option<Pme>,
    /// Σ over the half-space k-vectors of `weights` (the k-space part of C_ii)
    weight_sum: f64,
    /// number of half-space k-vectors within the cutoff
    n_kvectors: usize,
}

/// Σ_{k half space, 0 < |k| < k_c} 2 (4π/V) e^{−η²k²/2}/k² and the number of terms, without
/// storing the k-vectors.
fn kspace_weight_sum(cell: &crate::system::Cell, eta: f64, k_cutoff: f64) -> Result<(f64, usize)> {
    let recip = cell.reciprocal();
    let lengths = cell.lengths();
    let volume = cell.volume();
    let mut mm = [0i64; 3];
    for a in 0..3 {
        mm[a] = (k_cutoff * lengths[a] / (2.0 * std::f64::consts::PI)).floor() as i64;
    }
    let kc2 = k_cutoff * k_cutoff;
    let (sum, count) = (0..=mm[0])
        .into_par_iter()
        .map(|m0| {
            let mut s = 0.0;
            let mut c = 0usize;
            for m1 in -mm[1]..=mm[1] {
                if interrupt::is_requested() {
                    break;
                }
                if m0 == 0 && m1 < 0 {
                    continue;
                }
                for m2 in -mm[2]..=mm[2] {
                    if m0 == 0 && m1 == 0 && m2 <= 0 {
                        continue;
                    }
                    let mut k = [0.0; 3];
                    for a in 0..3 {
                        k[a] = m0 as f64 * recip[0][a]
                            + m1 as f64 * recip[1][a]
                            + m2 as f64 * recip[2][a];
                    }
                    let k2 = k[0] * k[0] + k[1] * k[1] + k[2] * k[2];
                    if k2 < kc2 && k2 > 0.0 {
                        s += 2.0 * 4.0 * std::f64::consts::PI / volume
                            * (-0.5 * eta * eta * k2).exp()
                            / k2;
                        c += 1;
                    }
                }
            }
            (s, c)
        })
        .collect::<Vec<_>>()
        .into_iter()
        .fold((0.0, 0), |(a, b), (c, d)| (a + c, b + d));
    interrupt::check()?;
    Ok((sum, count))
}

/// PME parameters (smearing η) whose predicted mesh error is below `target` (relative, as
/// [`mesh_error`]), of least predicted cost over orders 4 to 10.
pub fn pme_parameters_for(
    system: &System,
    eta: f64,
    cutoff: f64,
    target: f64,
) -> Result<PmeParameters> {
    let stats = PmeStats::of(system)?;
    let kernel = Kernel::coulomb();
    let mut best: Option<(f64, PmeParameters)> = None;
    for order in 4..=10usize {
        let mut h = eta;
        for _ in 0..60 {
            let mut n = [0usize; 3];
            for a in 0..3 {
                n[a] = crate::mesh::fft_friendly(
                    ((stats.lengths[a] / h).ceil() as usize).max(order).max(2),
                );
            }
            if n.iter().any(|&m| m > 1024) {
                break;
            }
            if mesh_error(kernel, stats, eta, n, order)? < target {
                let cost = pme_cost(stats, 0.0, n, order);
                if best.as_ref().is_none_or(|(c, _)| cost < *c) {
                    best = Some((
                        cost,
                        PmeParameters {
                            smearing: eta,
                            cutoff,
                            mesh: Mesh::Points(n),
                            order,
                        },
                    ));
                }
                break;
            }
            h *= 0.9;
        }
    }
    best.map(|(_, p)| p).ok_or_else(|| {
        crate::error::Error::parameter(
            "accuracy",
            format!("no PME mesh of at most 1024 points per axis reaches {target:e}"),
        )
    })
}

/// The QEq matrix of one system.
pub struct Operator<'a> {
    system: &'a System,
    sigma: &'a [f64],
    hardness: &'a [f64],
    prefactor: f64,
    periodic: Option<Periodic>,
    /// the dense matrix A (n², symmetric), when stored: products are then matrix–vector
    /// products ([`Operator::store_dense`])
    stored: Option<Vec<f64>>,
}

/// ∂/∂γ of −erfc(d/(√2γ))/d (also of erf(d/(√2γ))/d): −√(2/π) e^{−d²/(2γ²)}/γ².
#[inline]
fn dgamma(d: f64, g: f64) -> f64 {
    let x = d * FRAC_1_SQRT_2 / g;
    -SQRT_2_OVER_PI * (-x * x).exp() / (g * g)
}

impl<'a> Operator<'a> {
    /// Builds the operator with an explicit Ewald k-space sum; for periodic systems
    /// `settings` must be given.
    pub fn new(
        system: &'a System,
        sigma: &'a [f64],
        hardness: &'a [f64],
        prefactor: f64,
        settings: Option<EwaldSettings>,
    ) -> Result<Operator<'a>> {
        Self::build(system, sigma, hardness, prefactor, settings, None)
    }

    /// Builds the operator with the k-space part by PME (smearing = the Ewald width η): the
    /// k-vectors and phase tables of the explicit sum are never stored (O(N) memory), so the
    /// dense matrix is not available from this operator.
    pub fn with_pme(
        system: &'a System,
        sigma: &'a [f64],
        hardness: &'a [f64],
        prefactor: f64,
        settings: EwaldSettings,
        parameters: PmeParameters,
    ) -> Result<Operator<'a>> {
        if (parameters.smearing - settings.eta).abs() > 1e-12 * settings.eta {
            return Err(crate::error::Error::parameter(
                "smearing",
                "the PME smearing must equal the Ewald width",
            ));
        }
        Self::build(
            system,
            sigma,
            hardness,
            prefactor,
            Some(settings),
            Some(parameters),
        )
    }

    fn build(
        system: &'a System,
        sigma: &'a [f64],
        hardness: &'a [f64],
        prefactor: f64,
        settings: Option<EwaldSettings>,
        pme: Option<PmeParameters>,
    ) -> Result<Operator<'a>> {
        let periodic = match (system.cell(), settings) {
            (Some(cell), Some(settings)) => {
                let volume = cell.volume();
                let cells = CellList::new(system, settings.cutoff)?;
                let (weight_sum, n_kvectors) =
                    kspace_weight_sum(cell, settings.eta, settings.k_cutoff)?;
                let pme = pme.map(|p| Pme::new(Kernel::coulomb(), p)).transpose()?;
                let recip = cell.reciprocal();
                let kvectors = if pme.is_some() {
                    KVectors {
                        indices: Vec::new(),
                        vectors: Vec::new(),
                        norms2: Vec::new(),
                        groups: Vec::new(),
                        max_index: [0; 3],
                    }
                } else {
                    KVectors::half_space(cell, settings.k_cutoff)?
                };
                let m_max = kvectors.max_index;
                let eta2 = settings.eta * settings.eta;
                let weights: Vec<f64> = kvectors
                    .norms2
                    .iter()
                    .map(|&k2| {
                        2.0 * 4.0 * std::f64::consts::PI / volume * (-0.5 * eta2 * k2).exp() / k2
                    })
                    .collect();
                let (ms, ks) = (kvectors.indices, kvectors.vectors);
                let table_len = 3 * (2 * m_max.iter().copied().max().unwrap_or(0) as usize + 1);
                let width = table_len / 3;
                let mm = (width / 2) as i32;
                let mut tables = limits::try_filled(
                    "the QEq k-space phase tables",
                    system.len() * table_len,
                    Complex64::new(0.0, 0.0),
                )?;
                tables
                    .par_chunks_mut(table_len)
                    .zip(system.positions().par_iter())
                    .for_each(|(t, r)| {
                        for d in 0..3 {
                            let phase =
                                recip[d][0] * r[0] + recip[d][1] * r[1] + recip[d][2] * r[2];
                            for m in -mm..=mm {
                                t[d * width + (m + mm) as usize] =
                                    Complex64::from_polar(1.0, m as f64 * phase);
                            }
                        }
                    });
                let estimate = (system.len() as f64).powi(2) * 4.0 / 3.0
                    * std::f64::consts::PI
                    * settings.cutoff.powi(3)
                    / volume;
                let budget = PAIR_BUDGET.max(PAIRS_PER_ATOM * system.len());
                let pairs = if estimate <= 1.5 * budget as f64 {
                    // two passes (count, then fill in place): no second copy of the pairs
                    let counts: Vec<usize> = (0..system.len())
                        .into_par_iter()
                        .map(|i| {
                            let mut c = 0usize;
                            if !interrupt::is_requested() {
                                cells.for_each_neighbor(i, |_| c += 1);
                            }
                            c
                        })
                        .collect();
                    interrupt::check()?;
                    let mut start = Vec::with_capacity(system.len() + 1);
                    start.push(0usize);
                    for c in &counts {
                        start.push(start[start.len() - 1] + c);
                    }
                    let total = start[system.len()];
                    let mut cols = limits::try_filled("the QEq real-space pair list", total, 0u32)?;
                    let mut vals = limits::try_zeroed("the QEq real-space pair values", total)?;
                    let mut rows: Vec<(&mut [u32], &mut [f64])> = Vec::with_capacity(counts.len());
                    let (mut rest_c, mut rest_v) = (&mut cols[..], &mut vals[..]);
                    for &c in &counts {
                        let (hc, tc) = rest_c.split_at_mut(c);
                        let (hv, tv) = rest_v.split_at_mut(c);
                        rows.push((hc, hv));
                        rest_c = tc;
                        rest_v = tv;
                    }
                    rows.into_par_iter().enumerate().for_each(|(i, (rc, rv))| {
                        if interrupt::is_requested() {
                            return;
                        }
                        let mut t = 0;
                        cells.for_each_neighbor(i, |nb| {
                            if t < rc.len() {
                                let g = (sigma[i] * sigma[i] + sigma[nb.j] * sigma[nb.j]).sqrt();
                                rc[t] = nb.j as u32;
                                rv[t] = screened_coulomb(nb.distance, settings.eta).0
                                    - screened_coulomb(nb.distance, g).0;
                            }
                            t += 1;
                        });
                    });
                    interrupt::check()?;
                    Some((start, cols, vals))
                } else {
                    None
                };
                Some(Periodic {
                    pme,
                    coarse: None,
                    weight_sum,
                    n_kvectors,
                    pairs,
                    settings,
                    volume,
                    cells,
                    ms,
                    ks,
                    weights,
                    tables,
                    table_len,
                })
            }
            _ => None,
        };
        Ok(Operator {
            system,
            sigma,
            hardness,
            prefactor,
            periodic,
            stored: None,
        })
    }

    /// Builds and keeps the dense matrix (N² memory, refused above the memory limit) so that
    /// every later [`Operator::apply`] is a matrix–vector product (faer) instead of a pair sum.
    pub fn store_dense(&mut self) -> Result<()> {
        if self.stored.is_none() {
            self.stored = Some(self.dense()?);
        }
        Ok(())
    }

    /// Whether the dense matrix is stored.
    pub fn is_stored(&self) -> bool {
        self.stored.is_some()
    }

    /// Uses PME with these parameters (smearing must be the Ewald width η) for the k-space part
    /// of products and gradients; no effect for open systems.
    #[cfg(test)]
    pub fn use_pme(&mut self, parameters: PmeParameters) -> Result<()> {
        if let Some(p) = &mut self.periodic {
            if (parameters.smearing - p.settings.eta).abs() > 1e-12 * p.settings.eta {
                return Err(crate::error::Error::parameter(
                    "smearing",
                    "the PME smearing must equal the Ewald width",
                ));
            }
            p.pme = Some(Pme::new(Kernel::coulomb(), parameters)?);
        }
        Ok(())
    }

    /// Sets a cheaper PME (same smearing η, a coarser mesh) for [`Operator::apply_coarse`];
    /// no effect for open systems or without PME.
    pub fn set_coarse_pme(&mut self, parameters: PmeParameters) -> Result<()> {
        if let Some(p) = &mut self.periodic {
            if p.pme.is_some() {
                if (parameters.smearing - p.settings.eta).abs() > 1e-12 * p.settings.eta {
                    return Err(crate::error::Error::parameter(
                        "smearing",
                        "the PME smearing must equal the Ewald width",
                    ));
                }
                p.coarse = Some(Pme::new(Kernel::coulomb(), parameters)?);
            }
        }
        Ok(())
    }

    /// Whether a coarse PME is set ([`Operator::set_coarse_pme`]).
    pub fn has_coarse(&self) -> bool {
        self.periodic.as_ref().is_some_and(|p| p.coarse.is_some())
    }

    /// Ã x: [`Operator::apply`] with the k-space part from the coarse PME (the same as
    /// `apply` without one).
    pub fn apply_coarse(&self, x: &[f64]) -> Vec<f64> {
        match &self.periodic {
            Some(p) if p.coarse.is_some() => self.apply_periodic(p, x, p.coarse.as_ref()),
            _ => self.apply(x),
        }
    }

    /// Whether the k-space part uses PME.
    pub fn uses_pme(&self) -> bool {
        self.periodic.as_ref().is_some_and(|p| p.pme.is_some())
    }

    /// Per-atom k-space potentials Σ_j x_j (4π/V) Σ_{k≠0} e^{−η²k²/2}/k² cos(k·r_ij).
    fn kspace_potentials(&self, p: &Periodic, x: &[f64], pme: Option<&Pme>) -> Vec<f64> {
        match pme {
            Some(pme) => {
                let request = Request {
                    potentials: true,
                    forces: false,
                    virial: false,
                };
                match pme.reciprocal(self.system, x, request) {
                    Ok((_, phi, _, _)) => phi,
                    // cannot happen for a periodic system; NaN makes the solver fail loudly
                    Err(_) => vec![f64::NAN; x.len()],
                }
            }
            None => self.explicit_kspace_potentials(p, x),
        }
    }

    fn explicit_kspace_potentials(&self, p: &Periodic, x: &[f64]) -> Vec<f64> {
        let s = self.structure_factors(p, x);
        (0..self.len())
            .into_par_iter()
            .map(|i| {
                if interrupt::is_requested() {
                    return f64::NAN;
                }
                let mut c = 0.0;
                for (kk, m) in p.ms.iter().enumerate() {
                    c += p.weights[kk] * (Self::phase(p, i, m).conj() * s[kk]).re;
                }
                c
            })
            .collect()
    }

    /// Number of atoms.
    pub fn len(&self) -> usize {
        self.system.len()
    }

    /// Number of k-vectors (half space) of the periodic operator, 0 for open systems.
    pub fn n_kvectors(&self) -> usize {
        self.periodic.as_ref().map_or(0, |p| p.n_kvectors)
    }

    /// The Ewald settings in use, if periodic.
    pub fn settings(&self) -> Option<EwaldSettings> {
        self.periodic.as_ref().map(|p| p.settings)
    }

    /// The PME parameters of the k-space part, if it uses PME.
    pub fn pme_parameters(&self) -> Option<PmeParameters> {
        self.periodic
            .as_ref()
            .and_then(|p| p.pme.as_ref())
            .map(|pme| *pme.parameters())
    }

    #[inline]
    fn gamma(&self, i: usize, j: usize) -> f64 {
        (self.sigma[i] * self.sigma[i] + self.sigma[j] * self.sigma[j]).sqrt()
    }

    #[inline]
    fn phase(p: &Periodic, atom: usize, m: &[i32; 3]) -> Complex64 {
        let width = p.table_len / 3;
        let mm = (width / 2) as i32;
        let t = &p.tables[atom * p.table_len..(atom + 1) * p.table_len];
        t[(m[0] + mm) as usize]
            * t[width + (m[1] + mm) as usize]
            * t[2 * width + (m[2] + mm) as usize]
    }

    fn structure_factors(&self, p: &Periodic, x: &[f64]) -> Vec<Complex64> {
        // atoms in fixed chunks (each chunk's table stays in cache), partial sums added in
        // chunk order: identical results for any number of threads. The chunks are taken
        // STRUCTURE_WINDOW at a time, so that at most that many partial sums of N_k values are
        // held at once (the order of the additions, hence the result, does not depend on it).
        const CHUNK: usize = 64;
        let nk = p.ms.len();
        let mut s = vec![Complex64::new(0.0, 0.0); nk];
        for (w, window) in x.chunks(CHUNK * STRUCTURE_WINDOW).enumerate() {
            if interrupt::is_requested() {
                break;
            }
            let partial: Vec<Vec<Complex64>> = window
                .par_chunks(CHUNK)
                .enumerate()
                .map(|(c, xs)| {
                    let mut s = vec![Complex64::new(0.0, 0.0); nk];
                    if interrupt::is_requested() {
                        return s;
                    }
                    for (o, &xj) in xs.iter().enumerate() {
                        if xj == 0.0 {
                            continue;
                        }
                        let j = (w * STRUCTURE_WINDOW + c) * CHUNK + o;
                        for (kk, m) in p.ms.iter().enumerate() {
                            s[kk] += Self::phase(p, j, m) * xj;
                        }
                    }
                    s
                })
                .collect();
            for part in partial {
                for kk in 0..nk {
                    s[kk] += part[kk];
                }
            }
        }
        s
    }

    /// Self part of C_ii (Gaussian self energy, minus the Ewald self term if periodic), without
    /// the image sums.
    fn self_term(&self, i: usize) -> f64 {
        let mut v = 1.0 / (self.sigma[i] * SQRT_PI);
        if let Some(p) = &self.periodic {
            v -= SQRT_2_OVER_PI / p.settings.eta;
        }
        v
    }

    /// The diagonal of A.
    pub fn diagonal(&self) -> Vec<f64> {
        if let Some(a) = &self.stored {
            let n = self.len();
            return (0..n).map(|i| a[i * n + i]).collect();
        }
        let weight_sum: f64 = self.periodic.as_ref().map_or(0.0, |p| p.weight_sum);
        (0..self.len())
            .into_par_iter()
            .map(|i| {
                let mut c = self.self_term(i);
                if interrupt::is_requested() {
                    return f64::NAN;
                }
                if let Some(p) = &self.periodic {
                    let gi = std::f64::consts::SQRT_2 * self.sigma[i];
                    match &p.pairs {
                        Some((start, cols, vals)) => {
                            for t in start[i]..start[i + 1] {
                                if cols[t] as usize == i {
                                    c += vals[t];
                                }
                            }
                        }
                        None => p.cells.for_each_neighbor(i, |n| {
                            if n.j == i {
                                c += screened_coulomb(n.distance, p.settings.eta).0
                                    - screened_coulomb(n.distance, gi).0;
                            }
                        }),
                    }
                    c += weight_sum;
                    c -= 2.0 * std::f64::consts::PI / p.volume
                        * (p.settings.eta * p.settings.eta - gi * gi);
                }
                self.hardness[i] + self.prefactor * c
            })
            .collect()
    }

    /// y = A x without storing A (O(N²) for open systems; real space + k-space for periodic).
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        let n = self.len();
        if let Some(a) = &self.stored {
            return crate::math::dense::symmetric_matvec(a, n, x);
        }
        let pos = self.system.positions();
        match &self.periodic {
            None => (0..n)
                .into_par_iter()
                .map(|i| {
                    if interrupt::is_requested() {
                        return f64::NAN;
                    }
                    let ri = pos[i];
                    let si2 = self.sigma[i] * self.sigma[i];
                    let mut c = 0.0;
                    for j in 0..n {
                        if j == i {
                            continue;
                        }
                        let d = [pos[j][0] - ri[0], pos[j][1] - ri[1], pos[j][2] - ri[2]];
                        let r = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
                        let g = (si2 + self.sigma[j] * self.sigma[j]).sqrt();
                        c += x[j] * erf(r * FRAC_1_SQRT_2 / g) / r;
                    }
                    c += self.self_term(i) * x[i];
                    self.hardness[i] * x[i] + self.prefactor * c
                })
                .collect(),
            Some(p) => self.apply_periodic(p, x, p.pme.as_ref()),
        }
    }

    /// The periodic product with the k-space part from `pme` (explicit Ewald when None).
    fn apply_periodic(&self, p: &Periodic, x: &[f64], pme: Option<&Pme>) -> Vec<f64> {
        let kphi = self.kspace_potentials(p, x, pme);
        self.apply_periodic_with(p, x, kphi)
    }

    /// The periodic product given the k-space potentials of x.
    fn apply_periodic_with(&self, p: &Periodic, x: &[f64], kphi: Vec<f64>) -> Vec<f64> {
        let n = self.len();
        let total: f64 = x.iter().sum();
        let sig2x: f64 = x.iter().zip(self.sigma).map(|(a, s)| a * s * s).sum();
        let eta = p.settings.eta;
        let bg = 2.0 * std::f64::consts::PI / p.volume;
        (0..n)
            .into_par_iter()
            .map(|i| {
                if interrupt::is_requested() {
                    return f64::NAN;
                }
                let mut c = 0.0;
                match &p.pairs {
                    Some((start, cols, vals)) => {
                        for t in start[i]..start[i + 1] {
                            c += x[cols[t] as usize] * vals[t];
                        }
                    }
                    None => p.cells.for_each_neighbor(i, |nb| {
                        let g = self.gamma(i, nb.j);
                        c += x[nb.j]
                            * (screened_coulomb(nb.distance, eta).0
                                - screened_coulomb(nb.distance, g).0);
                    }),
                }
                c += kphi[i];
                let si2 = self.sigma[i] * self.sigma[i];
                c -= bg * ((eta * eta - si2) * total - sig2x);
                c += self.self_term(i) * x[i];
                self.hardness[i] * x[i] + self.prefactor * c
            })
            .collect()
    }

    /// The dense matrix A (N² memory: small and medium systems only) in the symmetric storage
    /// of [`crate::math::dense`]: row i holds A_ij for j ≥ i (the entries j < i are zero and
    /// never read). Pair terms are evaluated once per pair; the periodic k-space part is the
    /// Gram matrix of the phases e^{ik·r_j}√w_k, one faer product. Polls for Ctrl-C.
    pub fn dense(&self) -> Result<Vec<f64>> {
        let n = self.len();
        let pos = self.system.positions();
        let mut a = limits::try_zeroed("the dense QEq matrix", n * n)?;
        a.par_chunks_mut(n.max(1)).enumerate().for_each(|(i, row)| {
            if n == 0 || interrupt::is_requested() {
                return;
            }
            match &self.periodic {
                None => {
                    let ri = pos[i];
                    let si2 = self.sigma[i] * self.sigma[i];
                    for j in i + 1..n {
                        let d = [pos[j][0] - ri[0], pos[j][1] - ri[1], pos[j][2] - ri[2]];
                        let r = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
                        let g = (si2 + self.sigma[j] * self.sigma[j]).sqrt();
                        row[j] = erf(r * FRAC_1_SQRT_2 / g) / r;
                    }
                }
                Some(p) => {
                    let eta = p.settings.eta;
                    p.cells.for_each_neighbor(i, |nb| {
                        if nb.j >= i {
                            let g = self.gamma(i, nb.j);
                            row[nb.j] += screened_coulomb(nb.distance, eta).0
                                - screened_coulomb(nb.distance, g).0;
                        }
                    });
                }
            }
        });
        interrupt::check()?;
        if let Some(p) = &self.periodic {
            // k-space: Σ_k w_k cos(k·(r_i − r_j)) = Re Σ_k (√w_k e^{ik·r_i})(√w_k e^{ik·r_j})^*,
            // the Gram matrix of the real and imaginary phase parts (N_k × N each)
            let nk = p.ms.len();
            let mut re = limits::try_zeroed("the dense QEq k-space phases", n * nk)?;
            let mut im = limits::try_zeroed("the dense QEq k-space phases", n * nk)?;
            re.par_chunks_mut(nk.max(1))
                .zip(im.par_chunks_mut(nk.max(1)))
                .enumerate()
                .for_each(|(j, (rj, ij))| {
                    if nk == 0 || interrupt::is_requested() {
                        return;
                    }
                    for (kk, (m, w)) in p.ms.iter().zip(&p.weights).enumerate() {
                        let e = Self::phase(p, j, m) * w.sqrt();
                        rj[kk] = e.re;
                        ij[kk] = e.im;
                    }
                });
            interrupt::check()?;
            crate::math::dense::add_gram_lower(&mut a, n, &re, nk);
            interrupt::check()?;
            crate::math::dense::add_gram_lower(&mut a, n, &im, nk);
            interrupt::check()?;
        }
        a.par_chunks_mut(n.max(1)).enumerate().for_each(|(i, row)| {
            if n == 0 {
                return;
            }
            if let Some(p) = &self.periodic {
                let eta = p.settings.eta;
                let si2 = self.sigma[i] * self.sigma[i];
                for j in i..n {
                    let g2 = si2 + self.sigma[j] * self.sigma[j];
                    row[j] -= 2.0 * std::f64::consts::PI / p.volume * (eta * eta - g2);
                }
            }
            row[i] += self.self_term(i);
            for v in row[i..].iter_mut() {
                *v *= self.prefactor;
            }
            row[i] += self.hardness[i];
        });
        interrupt::check()?;
        Ok(a)
    }

    /// One pass over the pairs i < j of an open system (rows in a fixed number of chunks
    /// balanced by pair count, each with its own accumulators summed in chunk order: the same
    /// result for any thread count): the Coulomb pair sum Σ_{j≠i} C_ij x_j when `x` is given
    /// (without the self term, prefactor and hardness), and the derivatives of
    /// Σ_{i≠j} u_i v_j C_ij with respect to positions and widths (pairs only). With the matrix
    /// stored, C_ij is read from it and only e^{−x²} is evaluated.
    fn open_pairs(&self, u: &[f64], v: &[f64], x: Option<&[f64]>, values: Values<'_>) -> OpenPass {
        const CHUNKS: usize = 32;
        let n = self.len();
        let pos = self.system.positions();
        let total = n * n.saturating_sub(1) / 2;
        // chunk boundaries: row starts with about total / CHUNKS pairs per chunk
        let mut bounds = vec![0usize];
        let mut acc = 0usize;
        for i in 0..n {
            acc += n - 1 - i;
            if acc * CHUNKS >= total * bounds.len() && bounds.len() < CHUNKS {
                bounds.push(i + 1);
            }
        }
        if *bounds.last().unwrap_or(&0) != n {
            bounds.push(n);
        }
        let inv_pf = 1.0 / self.prefactor;
        let parts: Vec<OpenPass> = bounds
            .par_windows(2)
            .map(|w| {
                let mut out = OpenPass {
                    cx: if x.is_some() {
                        vec![0.0; n]
                    } else {
                        Vec::new()
                    },
                    dr: vec![[0.0; 3]; n],
                    ds: vec![0.0; n],
                };
                for i in w[0]..w[1] {
                    if interrupt::is_requested() {
                        break;
                    }
                    let ri = pos[i];
                    let si = self.sigma[i];
                    let (mut dri, mut dsi, mut cxi) = ([0.0; 3], 0.0, 0.0);
                    for j in i + 1..n {
                        let d = [pos[j][0] - ri[0], pos[j][1] - ri[1], pos[j][2] - ri[2]];
                        let r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
                        let r = r2.sqrt();
                        let sj = self.sigma[j];
                        let g = (si * si + sj * sj).sqrt();
                        let xg = r * FRAC_1_SQRT_2 / g;
                        let val = match values {
                            Values::Upper(a) => a[i * n + j] * inv_pf,
                            Values::Lower(a) => a[j * n + i] * inv_pf,
                            Values::Evaluate => erf(xg) / r,
                        };
                        let e = SQRT_2_OVER_PI * (-xg * xg).exp() / g;
                        if let Some(x) = x {
                            cxi += val * x[j];
                            out.cx[j] += val * x[i];
                        }
                        let dval = (e - val) / r;
                        let w = u[i] * v[j] + u[j] * v[i];
                        let f = w * dval / r;
                        for a in 0..3 {
                            dri[a] -= f * d[a];
                            out.dr[j][a] += f * d[a];
                        }
                        // ∂C_ij/∂γ = −e/γ, ∂γ/∂σ_i = σ_i/γ
                        let dg = -w * e / (g * g);
                        dsi += dg * si;
                        out.ds[j] += dg * sj;
                    }
                    if x.is_some() {
                        out.cx[i] += cxi;
                    }
                    for a in 0..3 {
                        out.dr[i][a] += dri[a];
                    }
                    out.ds[i] += dsi;
                }
                out
            })
            .collect();
        let mut total = OpenPass {
            cx: if x.is_some() {
                vec![0.0; n]
            } else {
                Vec::new()
            },
            dr: vec![[0.0; 3]; n],
            ds: vec![0.0; n],
        };
        for part in parts {
            for (t, p) in total.cx.iter_mut().zip(&part.cx) {
                *t += p;
            }
            for (t, p) in total.dr.iter_mut().zip(&part.dr) {
                for a in 0..3 {
                    t[a] += p[a];
                }
            }
            for (t, p) in total.ds.iter_mut().zip(&part.ds) {
                *t += p;
            }
        }
        total
    }

    /// A q and the derivatives of B(q, q) ([`Operator::bilinear_gradient`]) together: for open
    /// systems in one pass over the pairs. `original`: this operator's matrix kept beside a
    /// dense factor ([`super::solve::DenseFactor::original`]), whose values are then read
    /// instead of evaluated.
    pub fn apply_and_gradient(
        &self,
        q: &[f64],
        original: Option<(&[f64], &[f64])>,
    ) -> (Vec<f64>, BilinearGradient) {
        if let Some(p) = &self.periodic {
            // one PME pass gives the k-space potentials with the forces and virial
            let (g, kphi) = self.bilinear_gradient_and_kspace(q, q, true);
            let aq = match kphi {
                Some(kphi) if kphi.len() == q.len() => self.apply_periodic_with(p, q, kphi),
                _ => self.apply(q),
            };
            return (aq, g);
        }
        let n = self.len();
        let pf = self.prefactor;
        let values = match (&self.stored, original) {
            (Some(a), _) => Values::Upper(a),
            (None, Some((a, _))) => Values::Lower(a),
            (None, None) => Values::Evaluate,
        };
        let pass = self.open_pairs(
            q,
            q,
            matches!(values, Values::Evaluate).then_some(q),
            values,
        );
        let aq = match (&self.stored, original) {
            (Some(_), _) => self.apply(q),
            (None, Some((a, d))) => crate::math::dense::symmetric_matvec_strict_upper(a, d, n, q),
            (None, None) => (0..n)
                .map(|i| self.hardness[i] * q[i] + pf * (pass.cx[i] + self.self_term(i) * q[i]))
                .collect(),
        };
        let g = BilinearGradient {
            positions: pass
                .dr
                .iter()
                .map(|d| [pf * d[0], pf * d[1], pf * d[2]])
                .collect(),
            sigma: (0..n)
                .map(|i| {
                    pf * (pass.ds[i] - q[i] * q[i] / (self.sigma[i] * self.sigma[i] * SQRT_PI))
                })
                .collect(),
            strain: [[0.0; 3]; 3],
        };
        (aq, g)
    }

    /// Derivatives of the bilinear form B(u, v) = k_e Σ_ij u_i v_j C_ij (the Coulomb part of
    /// A, hardness excluded) with respect to positions, widths σ and strain ε (positions and
    /// cell scaled together; zero for open systems).
    pub fn bilinear_gradient(&self, u: &[f64], v: &[f64]) -> BilinearGradient {
        self.bilinear_gradient_and_kspace(u, v, false).0
    }

    /// [`Operator::bilinear_gradient`], and with `potentials` (u = v, k-space by PME) the
    /// PME k-space potentials of u from the same reciprocal-space pass.
    fn bilinear_gradient_and_kspace(
        &self,
        u: &[f64],
        v: &[f64],
        potentials: bool,
    ) -> (BilinearGradient, Option<Vec<f64>>) {
        let n = self.len();
        let pf = self.prefactor;
        // per atom: (d/dr_i, d/dσ_i, strain contribution)
        type PerAtom = (Vec3, f64, Mat3);
        let mut kphi = None;
        // k-space part by PME: B_k(u, v) = E(u + v) − E(u) − E(v) with E(q) = ½ qᵀKq
        let pme_k: Option<(Vec<Vec3>, Mat3)> = self
            .periodic
            .as_ref()
            .and_then(|p| p.pme.as_ref())
            .and_then(|pme| {
                let request = Request {
                    potentials: potentials && u == v,
                    forces: true,
                    virial: true,
                };
                let run = |q: &[f64]| pme.reciprocal(self.system, q, request).ok();
                if u == v {
                    let (_, phi, f, w) = run(u)?;
                    if potentials {
                        kphi = Some(phi);
                    }
                    let d = f
                        .iter()
                        .map(|f| [-2.0 * f[0], -2.0 * f[1], -2.0 * f[2]])
                        .collect();
                    let mut st = w;
                    for row in st.iter_mut() {
                        for x in row.iter_mut() {
                            *x *= 2.0;
                        }
                    }
                    Some((d, st))
                } else {
                    let uv: Vec<f64> = u.iter().zip(v).map(|(a, b)| a + b).collect();
                    let (_, _, f0, w0) = run(&uv)?;
                    let (_, _, f1, w1) = run(u)?;
                    let (_, _, f2, w2) = run(v)?;
                    let d = (0..n)
                        .map(|i| {
                            let mut x = [0.0; 3];
                            for a in 0..3 {
                                x[a] = -(f0[i][a] - f1[i][a] - f2[i][a]);
                            }
                            x
                        })
                        .collect();
                    let mut st = [[0.0; 3]; 3];
                    for a in 0..3 {
                        for b in 0..3 {
                            st[a][b] = w0[a][b] - w1[a][b] - w2[a][b];
                        }
                    }
                    Some((d, st))
                }
            });
        let per_atom: Vec<PerAtom> = match &self.periodic {
            None => {
                let values = match &self.stored {
                    Some(a) => Values::Upper(a),
                    None => Values::Evaluate,
                };
                let pass = self.open_pairs(u, v, None, values);
                (0..n)
                    .map(|i| {
                        let ds =
                            pass.ds[i] - u[i] * v[i] / (self.sigma[i] * self.sigma[i] * SQRT_PI);
                        (pass.dr[i], ds, [[0.0; 3]; 3])
                    })
                    .collect()
            }
            Some(p) => {
                let (su, sv) = if pme_k.is_some() {
                    (Vec::new(), Vec::new())
                } else {
                    (self.structure_factors(p, u), self.structure_factors(p, v))
                };
                let eta = p.settings.eta;
                (0..n)
                    .into_par_iter()
                    .map(|i| {
                        let mut dr = [0.0; 3];
                        let mut ds = 0.0;
                        let mut st = [[0.0; 3]; 3];
                        if interrupt::is_requested() {
                            return (dr, ds, st);
                        }
                        // the stored pair values (same neighbour order as when they were
                        // filled) leave two exponentials per pair instead of two erfc and
                        // three exponentials
                        let row = p
                            .pairs
                            .as_ref()
                            .map(|(start, _, vals)| &vals[start[i]..start[i + 1]]);
                        let mut t = 0;
                        p.cells.for_each_neighbor(i, |nb| {
                            let j = nb.j;
                            let g = self.gamma(i, j);
                            let r = nb.distance;
                            let (dval, dg) = match row.and_then(|row| row.get(t)) {
                                Some(&val) => {
                                    let xe = r * FRAC_1_SQRT_2 / eta;
                                    let xg = r * FRAC_1_SQRT_2 / g;
                                    let ee = (-xe * xe).exp();
                                    let eg = (-xg * xg).exp();
                                    (
                                        -(val + SQRT_2_OVER_PI * (ee / eta - eg / g)) / r,
                                        -SQRT_2_OVER_PI * eg / (g * g),
                                    )
                                }
                                None => (
                                    screened_coulomb(r, eta).1 - screened_coulomb(r, g).1,
                                    dgamma(r, g),
                                ),
                            };
                            t += 1;
                            let w = u[i] * v[j] + u[j] * v[i];
                            for a in 0..3 {
                                dr[a] -= w * dval * nb.vector[a] / r;
                            }
                            // −erfc(d/√2γ)/d has the same γ-derivative as erf(d/√2γ)/d
                            ds += w * dg * self.sigma[i] / g;
                            let wst = u[i] * v[j] * dval / r;
                            for a in 0..3 {
                                for b in 0..3 {
                                    st[a][b] += wst * nb.vector[a] * nb.vector[b];
                                }
                            }
                        });
                        if let Some((kd, _)) = &pme_k {
                            for a in 0..3 {
                                dr[a] += kd[i][a];
                            }
                        } else {
                            for (kk, m) in p.ms.iter().enumerate() {
                                let e = Self::phase(p, i, m);
                                let f = p.weights[kk]
                                    * (u[i] * (e * sv[kk].conj()).im
                                        + v[i] * (e * su[kk].conj()).im);
                                for a in 0..3 {
                                    dr[a] -= f * p.ks[kk][a];
                                }
                            }
                        }
                        ds -= u[i] * v[i] / (self.sigma[i] * self.sigma[i] * SQRT_PI);
                        (dr, ds, st)
                    })
                    .collect()
            }
        };
        let mut positions = Vec::with_capacity(n);
        let mut sigma = Vec::with_capacity(n);
        let mut strain = [[0.0; 3]; 3];
        for (dr, ds, st) in &per_atom {
            positions.push([pf * dr[0], pf * dr[1], pf * dr[2]]);
            sigma.push(pf * ds);
            for a in 0..3 {
                for b in 0..3 {
                    strain[a][b] += pf * st[a][b];
                }
            }
        }
        if let Some(p) = &self.periodic {
            let eta2 = p.settings.eta * p.settings.eta;
            let mut kst = [[0.0; 3]; 3];
            let (su, sv) = match &pme_k {
                Some((_, st)) => {
                    kst = *st;
                    (Vec::new(), Vec::new())
                }
                None => (self.structure_factors(p, u), self.structure_factors(p, v)),
            };
            for (kk, k) in p.ks.iter().enumerate() {
                if pme_k.is_some() {
                    break;
                }
                let k2 = k[0] * k[0] + k[1] * k[1] + k[2] * k[2];
                let b = p.weights[kk] * (su[kk].conj() * sv[kk]).re;
                // d/dε of w(k²)/V: −w δ − 2 w' k k, w' = −w (η²/2 + 1/k²)
                let dw = -b * (0.5 * eta2 + 1.0 / k2);
                for a in 0..3 {
                    kst[a][a] -= b;
                    for c in 0..3 {
                        kst[a][c] -= 2.0 * dw * k[a] * k[c];
                    }
                }
            }
            // background −(2π/V)[η² U V − Σ(uσ²) V − U Σ(vσ²)]
            let us: f64 = u.iter().sum();
            let vs: f64 = v.iter().sum();
            let usig: f64 = u.iter().zip(self.sigma).map(|(a, s)| a * s * s).sum();
            let vsig: f64 = v.iter().zip(self.sigma).map(|(a, s)| a * s * s).sum();
            let bg =
                -2.0 * std::f64::consts::PI / p.volume * (eta2 * us * vs - usig * vs - us * vsig);
            for a in 0..3 {
                kst[a][a] -= bg;
            }
            for i in 0..n {
                sigma[i] += pf * 4.0 * std::f64::consts::PI / p.volume
                    * self.sigma[i]
                    * (u[i] * vs + v[i] * us);
            }
            for a in 0..3 {
                for b in 0..3 {
                    strain[a][b] += pf * kst[a][b];
                }
            }
        }
        (
            BilinearGradient {
                positions,
                sigma,
                strain,
            },
            kphi,
        )
    }
}

/// Where [`Operator::open_pairs`] finds k_e C_ij (i < j).
#[derive(Clone, Copy)]
enum Values<'v> {
    /// Evaluated (erf).
    Evaluate,
    /// Row-major upper triangle: `a[i n + j]`.
    Upper(&'v [f64]),
    /// Row-major strict lower triangle: `a[j n + i]`.
    Lower(&'v [f64]),
}

/// Accumulators of [`Operator::open_pairs`].
struct OpenPass {
    cx: Vec<f64>,
    dr: Vec<Vec3>,
    ds: Vec<f64>,
}

/// Derivatives of B(u, v) = k_e uᵀ C v.
#[derive(Debug, Clone)]
pub struct BilinearGradient {
    /// ∂B/∂r_i.
    pub positions: Vec<Vec3>,
    /// ∂B/∂σ_i.
    pub sigma: Vec<f64>,
    /// ∂B/∂ε (symmetric strain, positions and cell scaled together).
    pub strain: Mat3,
}
