//! Triplet ("N = 2 centres, ν = 1") descriptors of Nigam, Pozdnyakov, Huguenin-Dumittan and
//! Ceriotti, "Completeness of atomic structure representations" (arXiv 2302.14770).
//!
//! For a centre `i` with neighbours `j` (all atoms and periodic images strictly inside the
//! cutoff, the centre itself excluded):
//!
//! 1. `g_ij[n, l, m] = f_c(r_ij) I_nl(r_ij) Y_lm(r̂_ij)`: the expansion of the density of the
//!    single neighbour `j`, [`SphericalExpansion::pair_expansion`] of the SOAP engine (same
//!    Gaussian density, GTO basis, cutoff function and spherical harmonics); `ρ_i^a = Σ_{j ∈ a}
//!    g_ij` is the ν = 1 density of species `a` (its `center_atom_weight` must be 0).
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
//! Results use the library's [`Descriptor`] (samples `(structure, centre, centre atomic
//! number)`); a triplet row also needs its neighbour pair, hence [`TripletOutput`] = a
//! [`Descriptor`] plus the `(j1, j2)` of each row.

use super::cost;
use super::result::Descriptor;
use super::spherical_expansion::{ExpansionParameters, PairScratch, SphericalExpansion};
use crate::error::{Error, Result};
use crate::interrupt;
use crate::limits;
use crate::math::clebsch_gordan::{couple_block, sparse_block};
use crate::neighbors::CellList;
use crate::system::System;
use rayon::prelude::*;

/// The SOAP engine's [`SphericalExpansion`] as the triplets use it: an explicit, unique list of
/// species (the species channels are columns of the features, so they must not depend on the
/// batch), no centre contribution (`center_atom_weight = 0`: ρ_i must equal Σ_j g_ij for the
/// sum over pairs to be the bispectrum, and the paper uses 0), `max_angular ≤ 8` and at most
/// 30 radial functions (the triplet count grows as n³ × l_max³). Per-neighbour coefficients
/// are stored `[n][(l, m)]` (the contraction loops run over `m` innermost).
#[derive(Debug, Clone)]
pub struct TripletExpansion {
    expansion: SphericalExpansion,
    species: Vec<i32>,
}

impl TripletExpansion {
    /// Checks the parameters (naming the offending one) and prepares the expansion.
    pub fn new(params: ExpansionParameters) -> Result<TripletExpansion> {
        let species = match &params.species {
            Some(s) if !s.is_empty() => s.clone(),
            _ => {
                return Err(Error::parameter(
                    "species",
                    "triplet features need an explicit, non-empty list of species",
                ))
            }
        };
        let mut sorted = species.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != species.len() {
            return Err(Error::parameter(
                "species",
                format!("species must be unique, got {species:?}"),
            ));
        }
        if params.center_atom_weight != 0.0 {
            return Err(Error::parameter(
                "center_atom_weight",
                format!(
                    "triplet features exclude the center's own density: must be 0, got {}",
                    params.center_atom_weight
                ),
            ));
        }
        if params.max_radial >= 30 {
            return Err(Error::parameter(
                "max_radial",
                format!("must lie in 0..=29, got {}", params.max_radial),
            ));
        }
        if params.max_angular > MAX_ANGULAR {
            return Err(Error::parameter(
                "max_angular",
                format!("must lie in 0..={MAX_ANGULAR}, got {}", params.max_angular),
            ));
        }
        Ok(TripletExpansion {
            expansion: SphericalExpansion::new(params)?,
            species,
        })
    }

    /// The parameters of the expansion.
    pub fn parameters(&self) -> &ExpansionParameters {
        self.expansion.parameters()
    }

    /// The species channels (atomic numbers), in the order of the feature blocks.
    pub fn species(&self) -> &[i32] {
        &self.species
    }

    /// Number of radial functions n (`max_radial + 1`).
    pub fn n_radial(&self) -> usize {
        self.expansion.n_radial()
    }

    /// Number of (l, m) components: (l_max + 1)².
    pub fn n_lm(&self) -> usize {
        self.expansion.n_lm()
    }

    /// Length of one expansion `[n, (l, m)]`.
    pub fn block_size(&self) -> usize {
        self.expansion.pair_size()
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

    /// Cell lists of every structure (cutoff of the expansion), after checking that every
    /// atom has a known species and that the neighbour search (and one pair expansion per
    /// neighbour pair) stays within the term limit.
    pub(crate) fn cell_lists(&self, systems: &[System]) -> Result<Vec<CellList>> {
        cost::check_neighbors(
            "the triplet pair expansions",
            systems,
            self.parameters().cutoff,
            self.block_size() as f64,
            0.0,
        )?;
        systems
            .par_iter()
            .map(|system| {
                for (atom, &z) in system.numbers().iter().enumerate() {
                    self.species_index(z, atom)?;
                }
                CellList::new(system, self.parameters().cutoff)
            })
            .collect()
    }

    /// Pair expansions `g_ij` of every neighbour of centre `i` (from
    /// [`SphericalExpansion::pair_expansion_with`]), sorted by (j, shift) so that the result
    /// does not depend on the cell-list layout.
    pub(crate) fn pairs(
        &self,
        system: &System,
        cells: &CellList,
        i: usize,
    ) -> Result<Vec<PairExpansion>> {
        let (nr, nlm) = (self.n_radial(), self.n_lm());
        let mut neighbours = cells.neighbors(i);
        neighbours.sort_by_key(|a| (a.j, a.shift));
        let mut scratch = PairScratch::new(&self.expansion);
        let mut by_lm = vec![0.0; nr * nlm];
        let mut out = Vec::with_capacity(neighbours.len());
        for nb in neighbours {
            self.expansion
                .pair_expansion_with(&nb.vector, &mut by_lm, None, &mut scratch);
            // [lm][n] → [n][lm]
            let mut coefficients = vec![0.0; nr * nlm];
            for lm in 0..nlm {
                for n in 0..nr {
                    coefficients[n * nlm + lm] = by_lm[lm * nr + n];
                }
            }
            out.push(PairExpansion {
                j: nb.j,
                species: self.species_index(system.numbers()[nb.j], nb.j)?,
                shift: nb.shift,
                coefficients,
            });
        }
        Ok(out)
    }

    /// Pair expansions `g_ij` of every neighbour of atom `center` of `system` (from
    /// [`SphericalExpansion::pair_expansion_with`]), sorted by (j, shift). Errors name
    /// `center` when it is not an atom of `system`, `species` for an atom of an unknown
    /// species, and the term limit of [`crate::limits`] when the neighbour search is too
    /// large.
    pub fn center_pairs(&self, system: &System, center: usize) -> Result<Vec<PairExpansion>> {
        if center >= system.len() {
            return Err(Error::parameter(
                "center",
                format!("{center} is not an atom of a {}-atom system", system.len()),
            ));
        }
        let cells = self.cell_lists(std::slice::from_ref(system))?;
        self.pairs(system, &cells[0], center)
    }

    /// ρ_i of every species, `[a][n][(l, m)]`, from the pair expansions of a centre.
    pub fn density(&self, pairs: &[PairExpansion]) -> Vec<f64> {
        let bs = self.block_size();
        let mut rho = vec![0.0; self.species.len() * bs];
        for p in pairs {
            for (k, v) in p.coefficients.iter().enumerate() {
                rho[p.species * bs + k] += v;
            }
        }
        rho
    }

    /// Feature labels `(a1, a2, a3, l1, l2, l3, n1, n2, n3)` (species as atomic numbers; the
    /// parity is `(−1)^{l1+l2+l3}`), shared by triplets and the bispectrum.
    pub fn feature_labels(&self, coupling: &Coupling) -> Vec<Vec<i32>> {
        let s = &self.species;
        let n = self.n_radial() as i32;
        let mut labels = Vec::new();
        for &a1 in s {
            for &a2 in s {
                for &a3 in s {
                    for p in &coupling.paths {
                        for n1 in 0..n {
                            for n2 in 0..n {
                                for n3 in 0..n {
                                    labels.push(vec![
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

    /// Number of features per centre / triplet: S³ × n_paths × n³.
    pub fn n_features(&self, coupling: &Coupling) -> usize {
        let s = self.species.len();
        s * s * s * coupling.block_len(self.n_radial())
    }

    pub(crate) fn contraction<'c>(&self, coupling: &'c Coupling) -> Contraction<'c> {
        Contraction {
            coupling,
            n: self.n_radial(),
            lm: self.n_lm(),
            n_species: self.species.len(),
        }
    }
}

/// Largest `max_angular` of triplets and the bispectrum (the features grow as l_max³ and the
/// coupling tables as l_max⁷).
pub const MAX_ANGULAR: usize = 8;

/// Largest l of the Clebsch–Gordan products [`pair_product`] computes.
pub const MAX_PRODUCT_L: usize = 30;

/// The centres of a triplet computation and their neighbour counts (see `TripletFeatures::plan`).
struct Plan {
    cells: Vec<CellList>,
    tasks: Vec<(usize, usize)>,
    counts: Vec<usize>,
}

/// Names of the feature label columns of triplets and the bispectrum.
pub const FEATURE_NAMES: [&str; 9] = [
    "neighbor_1_type",
    "neighbor_2_type",
    "neighbor_3_type",
    "l_1",
    "l_2",
    "l_3",
    "n_1",
    "n_2",
    "n_3",
];

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
    /// The cost grows as l_max⁷ (and the Clebsch–Gordan coefficients are tabulated up to
    /// l = 63): callers validate `l_max ≤` [`MAX_ANGULAR`] first, as [`TripletExpansion::new`]
    /// does.
    pub fn new(l_max: usize) -> Coupling {
        let mut paths = Vec::new();
        for l1 in 0..=l_max {
            for l2 in 0..=l_max {
                for l3 in l1.abs_diff(l2)..=(l1 + l2).min(l_max) {
                    let scale = 1.0 / ((2 * l3 + 1) as f64).sqrt();
                    let mut entries: Vec<(usize, usize, usize, f64)> = sparse_block(l1, l2, l3)
                        .iter()
                        .map(|e| (e.m1 as usize, e.m2 as usize, e.mu as usize, e.value * scale))
                        .collect();
                    // m3-major: the order of the sums of `Contraction::prepare`
                    entries.sort_by_key(|&(m1, m2, m3, _)| (m3, m1, m2));
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
        pair_product_unchecked(a, b, n_radial, self.l_max, l1, l2, lambda)
    }

    /// Number of invariants per (a1, a2, a3) species block: n_paths × n³.
    pub fn block_len(&self, n_radial: usize) -> usize {
        self.paths.len() * n_radial * n_radial * n_radial
    }
}

/// [`Coupling::pair_product`] without building the coupling tables of every path, after
/// checking the shapes (`a`, `b` of `n_radial × (l_max + 1)²` values), the angular momenta
/// (`l1, l2, λ ≤ l_max ≤` [`MAX_PRODUCT_L`], triangle rule) and the cost against the limits.
pub fn pair_product(
    a: &[f64],
    b: &[f64],
    n_radial: usize,
    l_max: usize,
    l1: usize,
    l2: usize,
    lambda: usize,
) -> Result<Vec<f64>> {
    if l_max > MAX_PRODUCT_L {
        return Err(Error::parameter(
            "l_max",
            format!("expansions up to l = {MAX_PRODUCT_L} are supported, got l_max = {l_max}"),
        ));
    }
    let lm = (l_max + 1) * (l_max + 1);
    if a.len() != n_radial * lm || b.len() != n_radial * lm {
        return Err(Error::shape(
            "a, b",
            format!("{n_radial} × {lm} values each"),
            format!("{} and {}", a.len(), b.len()),
        ));
    }
    if l1 > l_max || l2 > l_max || lambda > l_max || lambda < l1.abs_diff(l2) || lambda > l1 + l2 {
        return Err(Error::parameter(
            "lambda",
            format!(
                "(l1, l2, λ) = ({l1}, {l2}, {lambda}) breaks the triangle rule or l_max = {l_max}"
            ),
        ));
    }
    let (s1, s2, s3) = (2 * l1 + 1, 2 * l2 + 1, 2 * lambda + 1);
    let nr = n_radial as f64;
    limits::check_terms(
        "the Clebsch–Gordan product",
        nr * nr * (s1 * s2 * s3) as f64 + (s1 * s2 * s3 * (l1 + l2 + 1)) as f64,
        "use fewer rows or smaller l",
    )?;
    limits::check_memory(
        "the Clebsch–Gordan product",
        nr * nr * s3 as f64 * 16.0,
        "use fewer rows",
    )?;
    Ok(pair_product_unchecked(
        a, b, n_radial, l_max, l1, l2, lambda,
    ))
}

fn pair_product_unchecked(
    a: &[f64],
    b: &[f64],
    n_radial: usize,
    l_max: usize,
    l1: usize,
    l2: usize,
    lambda: usize,
) -> Vec<f64> {
    let lm = (l_max + 1) * (l_max + 1);
    let (s1, s2, s3) = (2 * l1 + 1, 2 * l2 + 1, 2 * lambda + 1);
    // the l blocks, component-major: x[m][n]
    let block = |x: &[f64], l: usize, s: usize| -> Vec<f64> {
        (0..s)
            .flat_map(|m| (0..n_radial).map(move |n| x[n * lm + l * l + m]))
            .collect()
    };
    let (ta, tb) = (block(a, l1, s1), block(b, l2, s2));
    let mut t = vec![0.0; s3 * n_radial * n_radial];
    couple_block(
        &sparse_block(l1, l2, lambda),
        (&ta, n_radial),
        (&tb, n_radial),
        &mut t,
    );
    // [μ][n1][n2] → [n1][n2][μ]
    let mut out = vec![0.0; n_radial * n_radial * s3];
    for mu in 0..s3 {
        for p in 0..n_radial * n_radial {
            out[p * s3 + mu] = t[mu * n_radial * n_radial + p];
        }
    }
    out
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
    /// Its species channel (index into the species list).
    pub species: usize,
    /// Lattice translation of this image of `j`.
    pub shift: [i32; 3],
    /// `g_ij[n, (l, m)]`, length `n_radial × (l_max + 1)²`.
    pub coefficients: Vec<f64>,
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

/// Which atoms are centers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Centers {
    /// Every atom of every structure.
    All,
    /// The same atom indices in every structure.
    Indices(Vec<usize>),
}

/// The former spelling of [`Centers`], kept so that code written against it still compiles.
pub type Centres = Centers;

/// Triplet features of many structures: the library's [`Descriptor`] (one row per triplet,
/// samples `(structure, centre, centre atomic number)`) and the neighbour pair of each row
/// (the only label a [`Descriptor`] cannot hold).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TripletOutput {
    /// Values, feature labels and `(structure, centre, centre Z)` of each row.
    pub descriptor: Descriptor,
    /// `(j1, j2)` of each row.
    pub neighbours: Vec<[i32; 2]>,
}

/// The triplet-feature calculator.
#[derive(Debug, Clone)]
pub struct TripletFeatures {
    expansion: TripletExpansion,
    coupling: Coupling,
}

pub(crate) fn center_tasks(systems: &[System], centers: &Centers) -> Result<Vec<(usize, usize)>> {
    let mut tasks = Vec::new();
    for (s, system) in systems.iter().enumerate() {
        match centers {
            Centers::All => tasks.extend((0..system.len()).map(|i| (s, i))),
            Centers::Indices(list) => {
                for &i in list {
                    if i >= system.len() {
                        return Err(Error::parameter(
                            "centers",
                            format!(
                                "center {i} does not exist in structure {s} ({} atoms)",
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

/// `(structure, centre, centre atomic number)` sample labels of `tasks`.
pub(crate) fn center_samples(systems: &[System], tasks: &[(usize, usize)]) -> Vec<[i32; 3]> {
    tasks
        .iter()
        .map(|&(s, i)| [s as i32, i as i32, systems[s].numbers()[i]])
        .collect()
}

/// Feature names and labels of `n` projected components.
fn component_labels(n: usize) -> (Vec<&'static str>, Vec<Vec<i32>>) {
    (vec!["component"], (0..n as i32).map(|k| vec![k]).collect())
}

impl TripletFeatures {
    /// Validates the parameters (see [`TripletExpansion::new`]) and precomputes the
    /// Clebsch–Gordan tables.
    pub fn new(params: ExpansionParameters) -> Result<TripletFeatures> {
        // validated first: the coupling tables grow as max_angular⁷
        let expansion = TripletExpansion::new(params)?;
        let coupling = Coupling::new(expansion.parameters().max_angular);
        Ok(TripletFeatures {
            expansion,
            coupling,
        })
    }

    /// The expansion.
    pub fn expansion(&self) -> &TripletExpansion {
        &self.expansion
    }

    /// The coupling paths.
    pub fn coupling(&self) -> &Coupling {
        &self.coupling
    }

    /// Number of features per triplet: S³ × n_paths × n³.
    pub fn n_features(&self) -> usize {
        self.expansion.n_features(&self.coupling)
    }

    /// Column labels, named by [`FEATURE_NAMES`].
    pub fn feature_labels(&self) -> Vec<Vec<i32>> {
        self.expansion.feature_labels(&self.coupling)
    }

    fn labels(&self, projection: Option<&Projection>) -> (Vec<&'static str>, Vec<Vec<i32>>) {
        match projection {
            None => (FEATURE_NAMES.to_vec(), self.feature_labels()),
            Some(p) => component_labels(p.n_components),
        }
    }

    /// Calls `f(j1 index, j2 index, features)` for every ordered neighbour pair of centre `i`
    /// (indices into `pairs`), streaming: one feature vector is alive at a time. Stops with
    /// [`Error::Interrupted`] when an interruption is requested.
    fn for_each_triplet(
        &self,
        pairs: &[PairExpansion],
        mut f: impl FnMut(usize, usize, &[f64]),
    ) -> Result<()> {
        let c = self.expansion.contraction(&self.coupling);
        let mut ws = c.workspace();
        let rho = self.expansion.density(pairs);
        let s = self.expansion.species().len();
        let block = self.coupling.block_len(self.expansion.n_radial());
        let mut row = vec![0.0; self.n_features()];
        let mut a3_blocks = vec![0.0; s * block];
        for (p1, g1) in pairs.iter().enumerate() {
            interrupt::check()?;
            c.prepare(&mut ws, &g1.coefficients, &rho);
            for (p2, g2) in pairs.iter().enumerate() {
                c.finish(&ws, &g2.coefficients, &mut a3_blocks);
                row.iter_mut().for_each(|v| *v = 0.0);
                let start = (g1.species * s + g2.species) * s * block;
                row[start..start + s * block].copy_from_slice(&a3_blocks);
                f(p1, p2, &row);
            }
        }
        Ok(())
    }

    /// Cell lists, centres and their neighbour counts, after checking the neighbour search;
    /// then checks the triplet terms (Σ over centers of neighbors² × features) and, when
    /// `stored`, the memory of the rows, against the limits.
    fn plan(
        &self,
        systems: &[System],
        centers: &Centers,
        projection: Option<&Projection>,
        stored: bool,
    ) -> Result<Plan> {
        let n_features = self.n_features();
        let cells = self.expansion.cell_lists(systems)?;
        let tasks = center_tasks(systems, centers)?;
        let counts: Vec<usize> = tasks
            .par_iter()
            .map(|&(s, i)| {
                let mut m = 0;
                if !interrupt::is_requested() {
                    cells[s].for_each_neighbor(i, |_| m += 1);
                }
                m
            })
            .collect();
        interrupt::check()?;
        let rows: f64 = counts.iter().map(|&m| (m as f64) * (m as f64)).sum();
        let max_m = counts.iter().copied().max().unwrap_or(0) as f64;
        let width = projection.map_or(n_features, |p| p.n_components) as f64;
        let per_row = n_features as f64 * (1.0 + projection.map_or(0.0, |p| p.n_components as f64));
        let hint = "use a smaller cutoff (fewer neighbors), max_radial or max_angular, fewer \
                    centers, or fewer species";
        limits::check_terms(
            &format!(
                "the triplet features ({rows:.2e} triplets = Σ over centers of neighbors², \
                 {n_features} features each)"
            ),
            rows * per_row,
            hint,
        )?;
        // per thread: the pair expansions of a centre, the contraction work space and rows
        let bs = self.expansion.block_size() as f64;
        let s = self.expansion.species().len() as f64;
        let block = self.coupling.block_len(self.expansion.n_radial()) as f64;
        let scratch = rayon::current_num_threads() as f64
            * (max_m * (bs + 8.0) + s * block + 2.0 * n_features as f64 + s * block)
            * 8.0;
        let output = if stored {
            rows * (width * 8.0 + 20.0)
        } else {
            tasks.len() as f64 * width * 8.0
        };
        limits::check_memory(
            &format!(
                "the triplet features ({rows:.2e} triplets × {width} columns{})",
                if stored { "" } else { ", summed per center" }
            ),
            output + scratch,
            if stored {
                "use a smaller cutoff (fewer neighbors), max_radial or max_angular, fewer \
                 centers, a PCA projection, or summed() which does not store the triplets"
            } else {
                hint
            },
        )?;
        Ok(Plan {
            cells,
            tasks,
            counts,
        })
    }

    /// Triplet features of every ordered neighbour pair of every centre, optionally
    /// projected. Parallel over centres and structures; the row order is deterministic
    /// (structures, centres, then neighbour pairs sorted by (j, shift)).
    pub fn compute(
        &self,
        systems: &[System],
        centers: &Centers,
        projection: Option<&Projection>,
    ) -> Result<TripletOutput> {
        let n_features = self.n_features();
        if let Some(p) = projection {
            check_projection(p, n_features)?;
        }
        let Plan {
            cells,
            tasks,
            counts,
        } = self.plan(systems, centers, projection, true)?;
        let labels = center_samples(systems, &tasks);
        let width = projection.map_or(n_features, |p| p.n_components);
        let total: usize = counts.iter().map(|&m| m * m).sum();
        let hint = "use a smaller cutoff, fewer centers or a PCA projection";
        let mut values = cost::try_calloc_plain("the triplet features", total * width, hint)?;
        let mut samples = limits::try_filled("the triplet sample labels", total, [0i32; 3])?;
        let mut neighbours = limits::try_filled("the triplet neighbor labels", total, [0i32; 2])?;
        {
            // one disjoint slice of each output per centre, filled in parallel
            let mut work = Vec::with_capacity(tasks.len());
            let (mut v_rest, mut s_rest, mut n_rest) = (
                values.as_mut_slice(),
                samples.as_mut_slice(),
                neighbours.as_mut_slice(),
            );
            for ((&task, &label), &m) in tasks.iter().zip(&labels).zip(&counts) {
                let (v, vr) = std::mem::take(&mut v_rest).split_at_mut(m * m * width);
                let (sa, sr) = std::mem::take(&mut s_rest).split_at_mut(m * m);
                let (nb, nr) = std::mem::take(&mut n_rest).split_at_mut(m * m);
                (v_rest, s_rest, n_rest) = (vr, sr, nr);
                work.push((task, label, m, v, sa, nb));
            }
            work.into_par_iter()
                .try_for_each(|((s, i), label, m, v, sa, nb)| -> Result<()> {
                    interrupt::check()?;
                    let pairs = self.expansion.pairs(&systems[s], &cells[s], i)?;
                    if pairs.len() != m {
                        return Err(Error::Unsupported(format!(
                            "internal: center {i} of structure {s} has {} neighbors, counted {m}",
                            pairs.len()
                        )));
                    }
                    sa.fill(label);
                    let mut k = 0;
                    self.for_each_triplet(&pairs, |p1, p2, row| {
                        nb[k] = [pairs[p1].j as i32, pairs[p2].j as i32];
                        let dst = &mut v[k * width..(k + 1) * width];
                        match projection {
                            None => dst.copy_from_slice(row),
                            Some(p) => project(p, row, dst),
                        }
                        k += 1;
                    })
                })?;
        }
        let (feature_names, features) = self.labels(projection);
        Ok(TripletOutput {
            descriptor: Descriptor {
                feature_names,
                features,
                samples,
                values,
                ..Descriptor::default()
            },
            neighbours,
        })
    }

    /// Σ_{j1, j2} of the (optionally projected) triplet features of every centre: the summed
    /// descriptor for a linear ψ, streamed (no triplet is stored). One row per centre.
    pub fn summed(
        &self,
        systems: &[System],
        centers: &Centers,
        projection: Option<&Projection>,
    ) -> Result<Descriptor> {
        let n_features = self.n_features();
        if let Some(p) = projection {
            check_projection(p, n_features)?;
        }
        let Plan { cells, tasks, .. } = self.plan(systems, centers, projection, false)?;
        let width = projection.map_or(n_features, |p| p.n_components);
        let rows: Vec<Vec<f64>> = tasks
            .par_iter()
            .map(|&(s, i)| -> Result<Vec<f64>> {
                interrupt::check()?;
                let pairs = self.expansion.pairs(&systems[s], &cells[s], i)?;
                let mut sum = vec![0.0; width];
                let mut tmp = vec![0.0; width];
                self.for_each_triplet(&pairs, |_, _, row| match projection {
                    None => sum.iter_mut().zip(row).for_each(|(a, b)| *a += b),
                    Some(p) => {
                        tmp.fill(0.0);
                        project(p, row, &mut tmp);
                        sum.iter_mut().zip(&tmp).for_each(|(a, b)| *a += b);
                    }
                })?;
                Ok(sum)
            })
            .collect::<Result<_>>()?;
        let (feature_names, features) = self.labels(projection);
        Ok(Descriptor {
            feature_names,
            features,
            samples: center_samples(systems, &tasks),
            values: rows.concat(),
            ..Descriptor::default()
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

/// Adds `(row − mean) · components` into `dst` (`n_components` values, zero on entry).
fn project(p: &Projection, row: &[f64], dst: &mut [f64]) {
    let k = p.n_components;
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

    use crate::math::spherical_harmonics::SphericalHarmonics;

    fn settings() -> ExpansionParameters {
        let mut p = ExpansionParameters::new(3.0, 2, 3, 0.3);
        p.center_atom_weight = 0.0;
        p.radial_accuracy = None;
        p.species = Some(vec![1, 6]);
        p
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
        let summed = t.summed(&systems, &Centers::All, None).unwrap();
        let b = crate::descriptors::bispectrum::Bispectrum::new(settings()).unwrap();
        let direct = b.compute(&systems, &Centers::All).unwrap();
        assert_eq!(summed.values.len(), direct.values.len());
        let scale = direct.values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (a, b) in summed.values.iter().zip(&direct.values) {
            assert!((a - b).abs() < 1e-12 * scale);
        }
        let full = t
            .compute(&systems, &Centers::Indices(vec![0]), None)
            .unwrap();
        assert_eq!(full.descriptor.n_samples(), 16);
        assert_eq!(full.neighbours.len(), 16);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let serial = one.install(|| t.compute(&systems, &Centers::All, None).unwrap());
        let all = t.compute(&systems, &Centers::All, None).unwrap();
        assert_eq!(serial.descriptor.values, all.descriptor.values);
    }

    #[test]
    fn bad_input_is_rejected() {
        let mut s = settings();
        s.cutoff = -1.0;
        assert!(TripletFeatures::new(s).is_err());
        let mut s = settings();
        s.smoothing = crate::descriptors::Smoothing::ShiftedCosine { width: 4.0 };
        assert!(TripletFeatures::new(s).is_err());
        let mut s = settings();
        s.smearing = 0.0;
        assert!(TripletFeatures::new(s).is_err());
        let mut s = settings();
        s.center_atom_weight = 1.0;
        let err = TripletFeatures::new(s).unwrap_err();
        assert!(err.to_string().contains("center_atom_weight"));
        let mut s = settings();
        s.species = None;
        assert!(TripletFeatures::new(s)
            .unwrap_err()
            .to_string()
            .contains("species"));
        let mut s = settings();
        s.species = Some(vec![6, 6]);
        assert!(TripletFeatures::new(s).is_err());
        let t = TripletFeatures::new(settings()).unwrap();
        let system = System::new(vec![[0.0; 3], [1.0, 0.0, 0.0]], vec![6, 8], None).unwrap();
        let err = t.compute(&[system], &Centers::All, None).unwrap_err();
        assert!(err.to_string().contains("atomic number 8"));
    }

    /// max_angular is checked before the coupling tables are built (100 used to panic in the
    /// Clebsch–Gordan table, 30 to take minutes).
    #[test]
    fn large_max_angular_is_refused_at_once() {
        for l in [9, 30, 100] {
            let mut s = settings();
            s.max_angular = l;
            let start = std::time::Instant::now();
            let err = TripletFeatures::new(s.clone()).unwrap_err();
            assert!(err.to_string().contains("max_angular"), "{err}");
            let err = crate::descriptors::bispectrum::Bispectrum::new(s).unwrap_err();
            assert!(err.to_string().contains("max_angular"), "{err}");
            assert!(start.elapsed().as_secs_f64() < 1.0);
        }
        let a = vec![1.0; 4];
        assert!(pair_product(&a, &a, 1, 1, 1, 1, 0).is_ok());
        assert!(pair_product(&a, &a, 1, 1, 1, 1, 3).is_err());
        assert!(pair_product(&a, &a[..3], 1, 1, 1, 1, 0).is_err());
        let big = vec![1.0; 100 * 100];
        assert!(pair_product(&big, &big, 1, 99, 0, 0, 0).is_err());
    }

    /// Rows are counted before they are stored: a memory or term limit refuses the call,
    /// naming the cutoff, and nothing is allocated.
    #[test]
    fn triplet_rows_are_checked_before_allocating() {
        let a = 5.64;
        let cell = [
            [0.0, a / 2.0, a / 2.0],
            [a / 2.0, 0.0, a / 2.0],
            [a / 2.0, a / 2.0, 0.0],
        ];
        let nacl = System::new(
            vec![[0.0; 3], [a / 2.0, 0.0, 0.0]],
            vec![11, 17],
            Some(cell),
        )
        .unwrap();
        let mut p = settings();
        p.species = Some(vec![11, 17]);
        p.cutoff = 30.0;
        let t = TripletFeatures::new(p).unwrap();
        let err = t.compute(&[nacl], &Centers::All, None).unwrap_err();
        assert!(matches!(err, Error::TooExpensive { .. }), "{err}");
        assert!(err.to_string().contains("cutoff"), "{err}");
    }
}
