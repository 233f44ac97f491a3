//! Triplet ("N = 2 centres, ν = 1") descriptors of Nigam, Pozdnyakov, Huguenin-Dumittan and
//! Ceriotti, "Completeness of atomic structure representations" (arXiv 2302.14770).
//!
//! For a centre `i` with neighbours `j` (all atoms and periodic images strictly inside the
//! cutoff, the centre itself excluded):
//!
//! 1. `g_ij[n, l, m] = f_c(r_ij) R_n(r_ij) Y_lm(r̂_ij)`: the expansion of the density of the
//!    single neighbour `j` (the pair expansion); `ρ_i^a = Σ_{j ∈ a} g_ij` is the ν = 1 density
//!    of species `a`.
//! 2. `|g_ij1 ⊗ g_ij2; λ μ⟩ = Σ C^{λμ}_{l1 m1 l2 m2} g_ij1[n1 l1 m1] g_ij2[n2 l2 m2]`, real
//!    Clebsch–Gordan coefficients, every λ ≤ l_max and both parities ([`Coupling::pair_product`]).
//! 3. Triplet features `|ρ_i ⊗ g_ij1 ⊗ g_ij2; λ = 0⟩`: the λ block of step 2 contracted with
//!    `ρ_i^{a3}[n3, λ]` and divided by √(2λ+1). One feature per
//!    `(a1, a2, a3, l1, l2, l3 = λ, n1, n2, n3)`; `σ = (−1)^{l1+l2+l3}` is the parity (σ = −1
//!    entries change sign under reflections, σ = +1 entries are invariant).
//!
//! Every ordered pair `(j1, j2)` of neighbours is a sample, **including `j1 = j2`** (as in the
//! paper's archive); the centre itself is not one of the `j` (its zero-weight pair contributes
//! nothing). A centre with `M` neighbours has `M²` triplets: none when it has no neighbour, one
//! (`j1 = j2`) with a single neighbour; this is not an error. The features of a triplet are laid
//! out in blocks `(a1, a2, a3)` with `a1`, `a2` the species of `j1`, `j2`: only the `a3` blocks of
//! that `(a1, a2)` are non-zero, so that a sum over all pairs equals the bispectrum
//! ([`crate::descriptors::bispectrum`]) exactly: a linear ψ collapses to a ν = 3 model.
//!
//! The local expansion used here ([`PairExpansion`]) is a minimal stand-in for the library's
//! spherical expansion (point neighbours, Gaussian radial functions centred on a grid, shifted
//! cosine cutoff): the completeness argument holds for any radial basis, and the type is the only
//! place to change when the shared expansion is swapped in.

use crate::basis::density::{GaussianDensityIntegral, RadialIntegral};
use crate::basis::gto::GtoBasis;
use crate::error::{Error, Result};
use crate::math::clebsch_gordan::real_cg_dense;
use crate::math::spherical_harmonics::SphericalHarmonics;
use crate::neighbors::CellList;
use crate::system::System;
use rayon::prelude::*;
use std::f64::consts::PI;

/// Hyper-parameters of the pair expansion, shared by triplets and the bispectrum.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpansionSettings {
    /// Neighbours strictly closer than this (Å) are included.
    pub cutoff: f64,
    /// Width of the shifted-cosine switch at the cutoff, in [0, cutoff].
    pub cutoff_width: f64,
    /// Number of GTO radial functions n, 1..=30 (featomic's `max_radial` + 1).
    pub max_radial: usize,
    /// Largest angular momentum l (and λ of the Clebsch–Gordan products).
    pub max_angular: usize,
    /// Standard deviation σ of the Gaussian atomic density, in (0, cutoff].
    pub smearing: f64,
    /// Atomic numbers of the species channels (unique); every atom must be one of them.
    pub species: Vec<i32>,
}

impl ExpansionSettings {
    /// Checks every parameter, naming the offending one.
    pub fn validate(&self) -> Result<()> {
        if !(self.cutoff.is_finite() && self.cutoff > 0.0) {
            return Err(Error::parameter(
                "cutoff",
                format!("must be positive and finite, got {}", self.cutoff),
            ));
        }
        if !(self.cutoff_width.is_finite()
            && self.cutoff_width >= 0.0
            && self.cutoff_width <= self.cutoff)
        {
            return Err(Error::parameter(
                "cutoff_width",
                format!(
                    "must lie in [0, cutoff = {}], got {}",
                    self.cutoff, self.cutoff_width
                ),
            ));
        }
        if !(self.smearing.is_finite() && self.smearing > 0.0 && self.smearing <= self.cutoff) {
            return Err(Error::parameter(
                "smearing",
                format!(
                    "must lie in (0, cutoff = {}], got {}",
                    self.cutoff, self.smearing
                ),
            ));
        }
        if self.max_radial == 0 || self.max_radial > 30 {
            return Err(Error::parameter(
                "max_radial",
                format!("must lie in 1..=30, got {}", self.max_radial),
            ));
        }
        if self.max_angular > 8 {
            return Err(Error::parameter(
                "max_angular",
                format!("must lie in 0..=8, got {}", self.max_angular),
            ));
        }
        if self.species.is_empty() {
            return Err(Error::parameter(
                "species",
                "at least one species is needed",
            ));
        }
        let mut sorted = self.species.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != self.species.len() {
            return Err(Error::parameter(
                "species",
                format!("species must be unique, got {:?}", self.species),
            ));
        }
        Ok(())
    }

    /// Number of (l, m) components: (l_max + 1)².
    pub fn lm_size(&self) -> usize {
        (self.max_angular + 1) * (self.max_angular + 1)
    }

    /// Length of one expansion `[n, (l, m)]`.
    pub fn block_size(&self) -> usize {
        self.max_radial * self.lm_size()
    }

    fn species_index(&self, number: i32, atom: usize) -> Result<usize> {
        self.species
            .iter()
            .position(|&s| s == number)
            .ok_or_else(|| {
                Error::parameter(
                    "species",
                    format!(
                        "atom {atom} has atomic number {number}, which is not one of the \
                         species {:?}",
                        self.species
                    ),
                )
            })
    }
}

/// One `(l1, l2, l3)` coupling path and the non-zero entries of its λ = 0 contraction tensor
/// `K[m1, m2, m3] = C^{l3 m3}_{l1 m1 l2 m2} / √(2 l3 + 1)`.
#[derive(Debug, Clone)]
pub struct Path {
    /// Angular momentum of the first factor.
    pub l1: usize,
    /// Angular momentum of the second factor.
    pub l2: usize,
    /// Angular momentum of the third factor (= λ of the product of the first two).
    pub l3: usize,
    /// `(m1 + l1, m2 + l2, m3 + l3, K)` for every non-zero entry.
    pub entries: Vec<(usize, usize, usize, f64)>,
}

/// All coupling paths up to l_max (triangle rule, both parities) and their coefficients.
#[derive(Debug, Clone)]
pub struct Coupling {
    /// Largest l.
    pub l_max: usize,
    /// The paths, ordered by (l1, l2, l3).
    pub paths: Vec<Path>,
}

impl Coupling {
    /// Builds the paths for every (l1, l2, l3 ≤ l_max) that satisfies the triangle rule.
    pub fn new(l_max: usize) -> Coupling {
        let mut paths = Vec::new();
        for l1 in 0..=l_max {
            for l2 in 0..=l_max {
                for l3 in l1.abs_diff(l2)..=(l1 + l2).min(l_max) {
                    let cg = real_cg_dense(l1, l2, l3);
                    let (s1, s2, s3) = (2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1);
                    let scale = 1.0 / (s3 as f64).sqrt();
                    let mut entries = Vec::new();
                    for m3 in 0..s3 {
                        for m1 in 0..s1 {
                            for m2 in 0..s2 {
                                let v = cg[(m1 * s2 + m2) * s3 + m3];
                                if v != 0.0 {
                                    entries.push((m1, m2, m3, v * scale));
                                }
                            }
                        }
                    }
                    paths.push(Path {
                        l1,
                        l2,
                        l3,
                        entries,
                    });
                }
            }
        }
        Coupling { l_max, paths }
    }

    /// The equivariant block `|a ⊗ b; λ⟩[n1, n2, μ]` of two expansions laid out `[n, (l, m)]`
    /// (`n_radial` radial functions each), for the given l1, l2, λ: the CG product of step 2.
    pub fn pair_product(
        &self,
        a: &[f64],
        b: &[f64],
        n_radial: usize,
        l1: usize,
        l2: usize,
        lambda: usize,
    ) -> Vec<f64> {
        let lm = (self.l_max + 1) * (self.l_max + 1);
        let cg = real_cg_dense(l1, l2, lambda);
        let (s1, s2, s3) = (2 * l1 + 1, 2 * l2 + 1, 2 * lambda + 1);
        let mut out = vec![0.0; n_radial * n_radial * s3];
        for n1 in 0..n_radial {
            for n2 in 0..n_radial {
                for mu in 0..s3 {
                    let mut sum = 0.0;
                    for m1 in 0..s1 {
                        for m2 in 0..s2 {
                            sum += cg[(m1 * s2 + m2) * s3 + mu]
                                * a[n1 * lm + l1 * l1 + m1]
                                * b[n2 * lm + l2 * l2 + m2];
                        }
                    }
                    out[(n1 * n_radial + n2) * s3 + mu] = sum;
                }
            }
        }
        out
    }

    /// Number of invariants per (a1, a2, a3) species block: n_paths × n³.
    pub fn block_len(&self, n_radial: usize) -> usize {
        self.paths.len() * n_radial * n_radial * n_radial
    }
}

/// Reusable work space for [`Contraction`].
pub(crate) struct Workspace {
    a: Vec<f64>,
    offsets: Vec<usize>,
}

/// Computes `|c ⊗ a ⊗ b; 0⟩` for one `a` against many `b`, sharing the partial contraction of
/// `a` with the third factor `c` (the density ρ of every species).
pub(crate) struct Contraction<'c> {
    pub(crate) coupling: &'c Coupling,
    pub(crate) n: usize,
    pub(crate) lm: usize,
    pub(crate) n_species: usize,
}

impl<'c> Contraction<'c> {
    pub(crate) fn workspace(&self) -> Workspace {
        let mut offsets = Vec::with_capacity(self.coupling.paths.len() * self.n_species + 1);
        let mut total = 0;
        for _ in 0..self.n_species {
            for p in &self.coupling.paths {
                offsets.push(total);
                total += self.n * self.n * (2 * p.l2 + 1);
            }
        }
        offsets.push(total);
        Workspace {
            a: vec![0.0; total],
            offsets,
        }
    }

    /// A[a3][path][n1][n3][m2] = Σ_{m1, m3} K g1[n1 l1 m1] ρ_a3[n3 l3 m3]
    pub(crate) fn prepare(&self, ws: &mut Workspace, g1: &[f64], rho: &[f64]) {
        ws.a.iter_mut().for_each(|v| *v = 0.0);
        let n = self.n;
        let bs = n * self.lm;
        let n_paths = self.coupling.paths.len();
        for a3 in 0..self.n_species {
            let r = &rho[a3 * bs..(a3 + 1) * bs];
            for (t, p) in self.coupling.paths.iter().enumerate() {
                let base = ws.offsets[a3 * n_paths + t];
                let s2 = 2 * p.l2 + 1;
                let (o1, o3) = (p.l1 * p.l1, p.l3 * p.l3);
                for &(m1, m2, m3, v) in &p.entries {
                    for n1 in 0..n {
                        let x = v * g1[n1 * self.lm + o1 + m1];
                        if x == 0.0 {
                            continue;
                        }
                        let row = base + n1 * n * s2 + m2;
                        for n3 in 0..n {
                            ws.a[row + n3 * s2] += x * r[n3 * self.lm + o3 + m3];
                        }
                    }
                }
            }
        }
    }

    /// out[a3 block][path][n1][n2][n3] = Σ_m2 A[..][n1][n3][m2] g2[n2 l2 m2]; `out` holds the
    /// n_species a3 blocks, each of length `block_len`.
    pub(crate) fn finish(&self, ws: &Workspace, g2: &[f64], out: &mut [f64]) {
        let n = self.n;
        let n_paths = self.coupling.paths.len();
        let n3 = n * n * n;
        let block = n_paths * n3;
        for a3 in 0..self.n_species {
            for (t, p) in self.coupling.paths.iter().enumerate() {
                let base = ws.offsets[a3 * n_paths + t];
                let s2 = 2 * p.l2 + 1;
                let o2 = p.l2 * p.l2;
                let dst = &mut out[a3 * block + t * n3..a3 * block + (t + 1) * n3];
                for n1 in 0..n {
                    for k in 0..n {
                        let arow = &ws.a[base + (n1 * n + k) * s2..base + (n1 * n + k + 1) * s2];
                        for n2 in 0..n {
                            let g = &g2[n2 * self.lm + o2..n2 * self.lm + o2 + s2];
                            let mut sum = 0.0;
                            for m in 0..s2 {
                                sum += arow[m] * g[m];
                            }
                            dst[(n1 * n + n2) * n + k] = sum;
                        }
                    }
                }
            }
        }
    }
}

/// The expansion of one neighbour's density around a centre.
#[derive(Debug, Clone)]
pub struct PairExpansion {
    /// Index of the neighbour atom.
    pub j: usize,
    /// Its species channel (index into `ExpansionSettings::species`).
    pub species: usize,
    /// Lattice translation of this image of `j`.
    pub shift: [i32; 3],
    /// `g_ij[n, (l, m)]`, length `max_radial × (l_max + 1)²`.
    pub coefficients: Vec<f64>,
}

/// Shifted-cosine cutoff: 1 below `cutoff − width`, ½(1 + cos(π (r − cutoff + width)/width))
/// above, 0 at and beyond the cutoff.
pub fn cutoff_function(r: f64, cutoff: f64, width: f64) -> f64 {
    if r >= cutoff {
        0.0
    } else if r <= cutoff - width || width == 0.0 {
        1.0
    } else {
        0.5 * (1.0 + (PI * (r - cutoff + width) / width).cos())
    }
}

/// The local (pair) expansion: SOAP's Gaussian atomic density (std `smearing`) projected on
/// featomic-style GTO radial functions (radius = cutoff) and real spherical harmonics,
/// `g_ij[n, l, m] = f_c(r_ij) I_nl(r_ij) Y_lm(r̂_ij)` with the exact Gaussian-density radial
/// integral `I_nl` of [`crate::basis::density`], evaluated exactly (no set-up cost).
#[derive(Debug, Clone)]
pub struct LocalExpansion {
    settings: ExpansionSettings,
    harmonics: SphericalHarmonics,
    radial: RadialIntegral,
}

impl LocalExpansion {
    /// Validates the settings and prepares the radial integral.
    pub fn new(settings: ExpansionSettings) -> Result<LocalExpansion> {
        settings.validate()?;
        let gto = GtoBasis::new(settings.max_radial - 1, settings.cutoff)?;
        let exact = GaussianDensityIntegral::new(gto, settings.max_angular, settings.smearing)?;
        let radial = RadialIntegral::new(exact, settings.cutoff, None)?;
        Ok(LocalExpansion {
            harmonics: SphericalHarmonics::new(settings.max_angular),
            radial,
            settings,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &ExpansionSettings {
        &self.settings
    }

    /// Pair expansions `g_ij` of every neighbour of centre `i`, sorted by (j, shift) so that the
    /// result does not depend on the cell-list layout.
    pub fn pairs(&self, system: &System, cells: &CellList, i: usize) -> Result<Vec<PairExpansion>> {
        let settings = &self.settings;
        let lm = settings.lm_size();
        let n_radial = settings.max_radial;
        let mut neighbours = cells.neighbors(i);
        neighbours.sort_by_key(|a| (a.j, a.shift));
        let mut ylm = vec![0.0; lm];
        let mut radial = vec![0.0; (settings.max_angular + 1) * n_radial];
        let mut out = Vec::with_capacity(neighbours.len());
        for nb in neighbours {
            let r = nb.distance;
            self.harmonics.compute(&nb.vector, &mut ylm);
            self.radial.compute(r, &mut radial, None);
            let fc = cutoff_function(r, settings.cutoff, settings.cutoff_width);
            let mut coefficients = vec![0.0; settings.block_size()];
            for n in 0..n_radial {
                for l in 0..=settings.max_angular {
                    let f = fc * radial[l * n_radial + n];
                    for k in l * l..(l + 1) * (l + 1) {
                        coefficients[n * lm + k] = f * ylm[k];
                    }
                }
            }
            out.push(PairExpansion {
                j: nb.j,
                species: settings.species_index(system.numbers()[nb.j], nb.j)?,
                shift: nb.shift,
                coefficients,
            });
        }
        Ok(out)
    }
}

/// ρ_i of every species: `[a][n][(l, m)]`.
pub fn density(settings: &ExpansionSettings, pairs: &[PairExpansion]) -> Vec<f64> {
    let bs = settings.block_size();
    let mut rho = vec![0.0; settings.species.len() * bs];
    for p in pairs {
        for (k, v) in p.coefficients.iter().enumerate() {
            rho[p.species * bs + k] += v;
        }
    }
    rho
}

/// A linear map applied to every triplet feature vector before it is stored:
/// `y = (f − mean) · components` (PCA compression).
#[derive(Debug, Clone)]
pub struct Projection {
    /// Mean feature vector (length n_features).
    pub mean: Vec<f64>,
    /// Row-major `(n_features, n_components)` matrix.
    pub components: Vec<f64>,
    /// Number of output components.
    pub n_components: usize,
}

/// Which atoms are centres.
#[derive(Debug, Clone)]
pub enum Centres {
    /// Every atom of every structure.
    All,
    /// The same atom indices in every structure.
    Indices(Vec<usize>),
}

/// Triplet features of many structures.
#[derive(Debug, Clone)]
pub struct TripletOutput {
    /// `(structure, centre, j1, j2)` per row.
    pub samples: Vec<[usize; 4]>,
    /// Row-major `(n_samples, n_features)` values (or projected components).
    pub values: Vec<f64>,
    /// Columns per row.
    pub n_features: usize,
}

/// One row per centre: per-centre sums Σ_{j1, j2} of the triplet features, or the bispectrum.
#[derive(Debug, Clone)]
pub struct CentreOutput {
    /// `(structure, centre)` per row.
    pub samples: Vec<[usize; 2]>,
    /// Number of neighbours M of each centre (a centre has M² triplets).
    pub n_neighbours: Vec<usize>,
    /// Row-major `(n_samples, n_features)` sums.
    pub values: Vec<f64>,
    /// Columns per row.
    pub n_features: usize,
}

/// The triplet-feature calculator.
#[derive(Debug, Clone)]
pub struct TripletFeatures {
    settings: ExpansionSettings,
    expansion: LocalExpansion,
    coupling: Coupling,
}

/// Labels of the feature columns: `(a1, a2, a3, l1, l2, l3, n1, n2, n3)` with species as atomic
/// numbers (the parity is `(−1)^{l1+l2+l3}`). Shared by triplets and the bispectrum.
pub fn feature_labels(settings: &ExpansionSettings, coupling: &Coupling) -> Vec<[i32; 9]> {
    let s = &settings.species;
    let n = settings.max_radial as i32;
    let mut labels = Vec::new();
    for &a1 in s {
        for &a2 in s {
            for &a3 in s {
                for p in &coupling.paths {
                    for n1 in 0..n {
                        for n2 in 0..n {
                            for n3 in 0..n {
                                labels.push([
                                    a1,
                                    a2,
                                    a3,
                                    p.l1 as i32,
                                    p.l2 as i32,
                                    p.l3 as i32,
                                    n1,
                                    n2,
                                    n3,
                                ]);
                            }
                        }
                    }
                }
            }
        }
    }
    labels
}

pub(crate) fn centre_tasks(systems: &[System], centres: &Centres) -> Result<Vec<(usize, usize)>> {
    let mut tasks = Vec::new();
    for (s, system) in systems.iter().enumerate() {
        match centres {
            Centres::All => tasks.extend((0..system.len()).map(|i| (s, i))),
            Centres::Indices(list) => {
                for &i in list {
                    if i >= system.len() {
                        return Err(Error::parameter(
                            "centres",
                            format!(
                                "centre {i} does not exist in structure {s} ({} atoms)",
                                system.len()
                            ),
                        ));
                    }
                    tasks.push((s, i));
                }
            }
        }
    }
    Ok(tasks)
}

pub(crate) fn cell_lists(
    settings: &ExpansionSettings,
    systems: &[System],
) -> Result<Vec<CellList>> {
    settings.validate()?;
    systems
        .par_iter()
        .map(|system| {
            for (atom, &z) in system.numbers().iter().enumerate() {
                settings.species_index(z, atom)?;
            }
            CellList::new(system, settings.cutoff)
        })
        .collect()
}

impl TripletFeatures {
    /// Validates the settings and precomputes the Clebsch–Gordan tables.
    pub fn new(settings: ExpansionSettings) -> Result<TripletFeatures> {
        let expansion = LocalExpansion::new(settings.clone())?;
        let coupling = Coupling::new(settings.max_angular);
        Ok(TripletFeatures {
            settings,
            expansion,
            coupling,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &ExpansionSettings {
        &self.settings
    }

    /// The coupling paths.
    pub fn coupling(&self) -> &Coupling {
        &self.coupling
    }

    /// Number of features per triplet: S³ × n_paths × n³.
    pub fn n_features(&self) -> usize {
        let s = self.settings.species.len();
        s * s * s * self.coupling.block_len(self.settings.max_radial)
    }

    /// Column labels, see [`feature_labels`].
    pub fn feature_labels(&self) -> Vec<[i32; 9]> {
        feature_labels(&self.settings, &self.coupling)
    }

    fn contraction(&self) -> Contraction<'_> {
        Contraction {
            coupling: &self.coupling,
            n: self.settings.max_radial,
            lm: self.settings.lm_size(),
            n_species: self.settings.species.len(),
        }
    }

    /// Calls `f(j1 index, j2 index, features)` for every ordered neighbour pair of centre `i`
    /// (indices into `pairs`), streaming: one feature vector is alive at a time.
    fn for_each_triplet(&self, pairs: &[PairExpansion], mut f: impl FnMut(usize, usize, &[f64])) {
        let c = self.contraction();
        let mut ws = c.workspace();
        let rho = density(&self.settings, pairs);
        let s = self.settings.species.len();
        let block = self.coupling.block_len(self.settings.max_radial);
        let mut row = vec![0.0; self.n_features()];
        let mut a3_blocks = vec![0.0; s * block];
        for (p1, g1) in pairs.iter().enumerate() {
            c.prepare(&mut ws, &g1.coefficients, &rho);
            for (p2, g2) in pairs.iter().enumerate() {
                c.finish(&ws, &g2.coefficients, &mut a3_blocks);
                row.iter_mut().for_each(|v| *v = 0.0);
                let start = (g1.species * s + g2.species) * s * block;
                row[start..start + s * block].copy_from_slice(&a3_blocks);
                f(p1, p2, &row);
            }
        }
    }

    /// Triplet features of every ordered neighbour pair of every centre, rows labelled
    /// `(structure, centre, j1, j2)`, optionally projected. Parallel over centres and
    /// structures; the row order is deterministic (structures, centres, then neighbour pairs
    /// sorted by (j, shift)).
    pub fn compute(
        &self,
        systems: &[System],
        centres: &Centres,
        projection: Option<&Projection>,
    ) -> Result<TripletOutput> {
        let n_features = self.n_features();
        if let Some(p) = projection {
            check_projection(p, n_features)?;
        }
        let cells = cell_lists(&self.settings, systems)?;
        let tasks = centre_tasks(systems, centres)?;
        let width = projection.map_or(n_features, |p| p.n_components);
        let parts: Vec<(Vec<[usize; 4]>, Vec<f64>)> = tasks
            .par_iter()
            .map(|&(s, i)| -> Result<(Vec<[usize; 4]>, Vec<f64>)> {
                let pairs = self.expansion.pairs(&systems[s], &cells[s], i)?;
                let m = pairs.len();
                let mut samples = Vec::with_capacity(m * m);
                let mut values = Vec::with_capacity(m * m * width);
                self.for_each_triplet(&pairs, |p1, p2, row| {
                    samples.push([s, i, pairs[p1].j, pairs[p2].j]);
                    match projection {
                        None => values.extend_from_slice(row),
                        Some(p) => project(p, row, &mut values),
                    }
                });
                Ok((samples, values))
            })
            .collect::<Result<_>>()?;
        let total: usize = parts.iter().map(|p| p.0.len()).sum();
        let mut samples = Vec::with_capacity(total);
        let mut values = Vec::with_capacity(total * width);
        for (s, v) in parts {
            samples.extend(s);
            values.extend(v);
        }
        Ok(TripletOutput {
            samples,
            values,
            n_features: width,
        })
    }

    /// Σ_{j1, j2} of the (optionally projected) triplet features of every centre: the summed
    /// descriptor for a linear ψ, streamed (no triplet is stored).
    pub fn summed(
        &self,
        systems: &[System],
        centres: &Centres,
        projection: Option<&Projection>,
    ) -> Result<CentreOutput> {
        let n_features = self.n_features();
        if let Some(p) = projection {
            check_projection(p, n_features)?;
        }
        let cells = cell_lists(&self.settings, systems)?;
        let tasks = centre_tasks(systems, centres)?;
        let width = projection.map_or(n_features, |p| p.n_components);
        let rows: Vec<(usize, Vec<f64>)> = tasks
            .par_iter()
            .map(|&(s, i)| -> Result<(usize, Vec<f64>)> {
                let pairs = self.expansion.pairs(&systems[s], &cells[s], i)?;
                let mut sum = vec![0.0; width];
                let mut tmp = Vec::with_capacity(width);
                self.for_each_triplet(&pairs, |_, _, row| match projection {
                    None => sum.iter_mut().zip(row).for_each(|(a, b)| *a += b),
                    Some(p) => {
                        tmp.clear();
                        project(p, row, &mut tmp);
                        sum.iter_mut().zip(&tmp).for_each(|(a, b)| *a += b);
                    }
                });
                Ok((pairs.len(), sum))
            })
            .collect::<Result<_>>()?;
        let mut values = Vec::with_capacity(rows.len() * width);
        let mut n_neighbours = Vec::with_capacity(rows.len());
        for (count, row) in rows {
            n_neighbours.push(count);
            values.extend(row);
        }
        Ok(CentreOutput {
            samples: tasks.iter().map(|&(s, i)| [s, i]).collect(),
            n_neighbours,
            values,
            n_features: width,
        })
    }
}

fn check_projection(p: &Projection, n_features: usize) -> Result<()> {
    if p.mean.len() != n_features || p.components.len() != n_features * p.n_components {
        return Err(Error::shape(
            "projection",
            format!(
                "mean ({n_features},) and components ({n_features}, {})",
                p.n_components
            ),
            format!(
                "mean of {} values and {} component values",
                p.mean.len(),
                p.components.len()
            ),
        ));
    }
    crate::error::check_finite("projection mean", &p.mean)?;
    crate::error::check_finite("projection components", &p.components)
}

fn project(p: &Projection, row: &[f64], out: &mut Vec<f64>) {
    let k = p.n_components;
    let start = out.len();
    out.resize(start + k, 0.0);
    let dst = &mut out[start..];
    for (f, (&x, &mu)) in row.iter().zip(&p.mean).enumerate() {
        let d = x - mu;
        if d == 0.0 {
            continue;
        }
        let comp = &p.components[f * k..(f + 1) * k];
        for c in 0..k {
            dst[c] += d * comp[c];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ExpansionSettings {
        ExpansionSettings {
            cutoff: 3.0,
            cutoff_width: 0.5,
            max_radial: 3,
            max_angular: 3,
            smearing: 0.3,
            species: vec![1, 6],
        }
    }

    /// Every coupling path gives a rotation invariant of three directions, multiplied by the
    /// parity (−1)^{l1+l2+l3} under inversion.
    #[test]
    fn real_cg_are_equivariant() {
        let dirs = [[0.36, -0.48, 0.8], [0.6, 0.0, -0.8], [0.0, 0.28, 0.96]];
        let rot = {
            let (a, b) = (0.7f64, -1.3f64);
            let rz = [
                [a.cos(), -a.sin(), 0.0],
                [a.sin(), a.cos(), 0.0],
                [0.0, 0.0, 1.0],
            ];
            let rx = [
                [1.0, 0.0, 0.0],
                [0.0, b.cos(), -b.sin()],
                [0.0, b.sin(), b.cos()],
            ];
            crate::math::linalg::matmul(&rz, &rx)
        };
        let apply = |u: [f64; 3]| -> [f64; 3] {
            let mut v = [0.0; 3];
            for i in 0..3 {
                for k in 0..3 {
                    v[i] += rot[i][k] * u[k];
                }
            }
            v
        };
        let coupling = Coupling::new(3);
        let invariant = |d: &[[f64; 3]; 3], p: &Path| -> f64 {
            let mut y = [vec![0.0; 16], vec![0.0; 16], vec![0.0; 16]];
            let harmonics = SphericalHarmonics::new(3);
            for k in 0..3 {
                harmonics.compute(&d[k], &mut y[k]);
            }
            p.entries
                .iter()
                .map(|&(m1, m2, m3, v)| {
                    v * y[0][p.l1 * p.l1 + m1] * y[1][p.l2 * p.l2 + m2] * y[2][p.l3 * p.l3 + m3]
                })
                .sum()
        };
        let rotated = [apply(dirs[0]), apply(dirs[1]), apply(dirs[2])];
        let mut nonzero = 0;
        for p in &coupling.paths {
            let a = invariant(&dirs, p);
            let b = invariant(&rotated, p);
            assert!(
                (a - b).abs() < 1e-13,
                "{:?}: {a} vs {b}",
                (p.l1, p.l2, p.l3)
            );
            // reflection multiplies by the parity
            let reflected = dirs.map(|u| [-u[0], -u[1], -u[2]]);
            let c = invariant(&reflected, p);
            let parity = if (p.l1 + p.l2 + p.l3) % 2 == 0 {
                1.0
            } else {
                -1.0
            };
            assert!((c - parity * a).abs() < 1e-13);
            if a.abs() > 1e-6 {
                nonzero += 1;
            }
        }
        assert!(nonzero > coupling.paths.len() / 2);
    }

    #[test]
    fn linear_sum_equals_bispectrum_and_threads_agree() {
        let system = System::new(
            vec![
                [0.0, 0.0, 0.0],
                [1.1, 0.2, 0.1],
                [-0.3, 1.2, 0.4],
                [0.2, -0.5, -1.3],
                [-1.0, -0.7, 0.6],
            ],
            vec![6, 1, 1, 6, 1],
            None,
        )
        .unwrap();
        let t = TripletFeatures::new(settings()).unwrap();
        let systems = vec![system];
        let summed = t.summed(&systems, &Centres::All, None).unwrap();
        let b = crate::descriptors::bispectrum::Bispectrum::new(settings()).unwrap();
        let direct = b.compute(&systems, &Centres::All).unwrap();
        assert_eq!(summed.values.len(), direct.values.len());
        let scale = direct.values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (a, b) in summed.values.iter().zip(&direct.values) {
            assert!((a - b).abs() < 1e-12 * scale);
        }
        let full = t
            .compute(&systems, &Centres::Indices(vec![0]), None)
            .unwrap();
        assert_eq!(full.samples.len(), 16);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let serial = one.install(|| t.compute(&systems, &Centres::All, None).unwrap());
        let all = t.compute(&systems, &Centres::All, None).unwrap();
        assert_eq!(serial.values, all.values);
    }

    #[test]
    fn bad_input_is_rejected() {
        let mut s = settings();
        s.cutoff = -1.0;
        assert!(TripletFeatures::new(s).is_err());
        let mut s = settings();
        s.cutoff_width = 4.0;
        assert!(TripletFeatures::new(s).is_err());
        let mut s = settings();
        s.smearing = 0.0;
        assert!(TripletFeatures::new(s).is_err());
        let t = TripletFeatures::new(settings()).unwrap();
        let system = System::new(vec![[0.0; 3], [1.0, 0.0, 0.0]], vec![6, 8], None).unwrap();
        let err = t.compute(&[system], &Centres::All, None).unwrap_err();
        assert!(err.to_string().contains("atomic number 8"));
    }
}
