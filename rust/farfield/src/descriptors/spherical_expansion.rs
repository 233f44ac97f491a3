//! featomic's `SphericalExpansion`: the Gaussian-smeared neighbour density of every atom,
//! projected on GTO radial functions × real spherical harmonics, per neighbour species.
//!
//! `c^{a}_{i,nlm} = w δ_{a,a_i} δ_{l0} I_n0(0) Y_00 + Σ_{j∈a, r_ij<r_c} f_c(r_ij) I_nl(r_ij) Y_lm(r̂_ij)`
//! with `r_ij = r_j + T − r_i` over periodic images (including the centre's own images), `I_nl`
//! the radial integral of a Gaussian density with the GTO basis, `f_c` the cutoff function and `w` the
//! `center_atom_weight`. Per-atom layout: `[species][l² + l + m][n]`.

use rayon::prelude::*;

use super::cost;
use super::result::{Descriptor, GradientRequest, PositionGradients};
use crate::basis::density::{GaussianDensityIntegral, RadialIntegral};
use crate::basis::gto::GtoBasis;
use crate::error::{Error, Result};
use crate::interrupt;
use crate::limits;
use crate::math::linalg::{Mat3, Vec3};
use crate::math::spherical_harmonics::{lm_count, SphericalHarmonics};
use crate::neighbors::{CellList, Neighbor};
use crate::system::System;

/// Smoothing of the density at the cutoff.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Smoothing {
    /// No smoothing: 1 inside the cutoff, 0 outside.
    Step,
    /// `½ (1 + cos(π (r − r_c + width)/width))` on `[r_c − width, r_c]`.
    ShiftedCosine {
        /// width of the switching region
        width: f64,
    },
}

/// Hyper-parameters of the spherical expansion (featomic names in brackets). Build them with
/// [`ExpansionParameters::new`] and set the optional fields (the struct is
/// `#[non_exhaustive]`: options may be added):
///
/// ```
/// use farfield::descriptors::{ExpansionParameters, Smoothing};
/// let mut parameters = ExpansionParameters::new(4.5, 6, 4, 0.3);
/// parameters.smoothing = Smoothing::Step;
/// assert_eq!(parameters.radial_accuracy, Some(1e-8));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ExpansionParameters {
    /// neighbour cutoff radius (length; `cutoff.radius`), also the GTO radius. Required.
    pub cutoff: f64,
    /// cutoff smoothing (`cutoff.smoothing`). Default `ShiftedCosine { width: 0.5 }`.
    pub smoothing: Smoothing,
    /// Gaussian density width σ (length; `density.width`). Required.
    pub smearing: f64,
    /// index of the last radial function (`basis.radial.max_radial`). Required.
    pub max_radial: usize,
    /// largest l (`basis.max_angular`). Required.
    pub max_angular: usize,
    /// weight of the centre's own density (`density.center_atom_weight`). Default 1.
    pub center_atom_weight: f64,
    /// `None`: exact radial integral (₁F₁); `Some(acc)`: spline to absolute accuracy `acc`.
    /// Default `Some(1e-8)`.
    pub radial_accuracy: Option<f64>,
    /// neighbour species (atomic numbers). Default `None`: all species present in the batch.
    pub species: Option<Vec<i32>>,
}

impl ExpansionParameters {
    /// Parameters with the required values and featomic-like defaults of the others: shifted
    /// cosine of width 0.5, weight 1, spline accuracy 1e-8, every species of the batch.
    pub fn new(
        cutoff: f64,
        max_radial: usize,
        max_angular: usize,
        smearing: f64,
    ) -> ExpansionParameters {
        ExpansionParameters {
            cutoff,
            smoothing: Smoothing::ShiftedCosine { width: 0.5 },
            smearing,
            max_radial,
            max_angular,
            center_atom_weight: 1.0,
            radial_accuracy: Some(1e-8),
            species: None,
        }
    }
}

/// Spherical expansion calculator.
#[derive(Debug, Clone)]
pub struct SphericalExpansion {
    params: ExpansionParameters,
    radial: RadialIntegral,
    harmonics: SphericalHarmonics,
    n_radial: usize,
    /// `I_n0(0) Y_00` for the centre contribution
    center: Vec<f64>,
}

/// Largest accepted cutoff (Å): the radius of the GTO radial basis.
pub const MAX_CUTOFF: f64 = 1e6;

impl SphericalExpansion {
    /// Validates the parameters and prepares the radial integral.
    pub fn new(params: ExpansionParameters) -> Result<SphericalExpansion> {
        let p = &params;
        if !(p.cutoff.is_finite() && p.cutoff > 0.0) {
            return Err(Error::parameter(
                "cutoff",
                format!("the cutoff must be positive and finite, got {}", p.cutoff),
            ));
        }
        if p.cutoff > MAX_CUTOFF {
            // the GTO radial basis is built on [0, cutoff]: beyond this its normalisation
            // and spline lose all precision (NaN from 1e160 on)
            return Err(Error::parameter(
                "cutoff",
                format!(
                    "the cutoff must be at most {MAX_CUTOFF:e} Å (the radius of the radial \
                     basis), got {}",
                    p.cutoff
                ),
            ));
        }
        if !(p.smearing.is_finite() && p.smearing > 0.0) {
            return Err(Error::parameter(
                "smearing",
                format!(
                    "the density width must be positive and finite, got {}",
                    p.smearing
                ),
            ));
        }
        if let Smoothing::ShiftedCosine { width } = p.smoothing {
            if !(width.is_finite() && width > 0.0 && width <= p.cutoff) {
                return Err(Error::parameter(
                    "cutoff_width",
                    format!(
                        "cutoff_width (the width of the shifted-cosine cutoff function) must be \
                         in (0, cutoff], got {width}"
                    ),
                ));
            }
        }
        if p.max_angular > 30 {
            return Err(Error::parameter(
                "max_angular",
                format!("max_angular must be at most 30, got {}", p.max_angular),
            ));
        }
        if !p.center_atom_weight.is_finite() {
            return Err(Error::parameter("center_atom_weight", "must be finite"));
        }
        if let Some(species) = &p.species {
            if species.is_empty() {
                return Err(Error::parameter("species", "the list of species is empty"));
            }
        }
        let gto = GtoBasis::new(p.max_radial, p.cutoff)?;
        let exact = GaussianDensityIntegral::new(gto, p.max_angular, p.smearing)?;
        let n_radial = exact.size();
        let mut center = vec![0.0; (p.max_angular + 1) * n_radial];
        exact.compute(0.0, &mut center, None);
        center.truncate(n_radial);
        let y00 = 0.5 / std::f64::consts::PI.sqrt();
        for v in center.iter_mut() {
            *v *= y00;
        }
        let radial = RadialIntegral::new(exact, p.cutoff, p.radial_accuracy)?;
        let harmonics = SphericalHarmonics::new(p.max_angular);
        Ok(SphericalExpansion {
            params,
            radial,
            harmonics,
            n_radial,
            center,
        })
    }

    /// The parameters.
    pub fn parameters(&self) -> &ExpansionParameters {
        &self.params
    }

    /// Number of radial functions, `max_radial + 1`.
    pub fn n_radial(&self) -> usize {
        self.n_radial
    }

    /// Number of `(l, m)` components, `(max_angular + 1)²`.
    pub fn n_lm(&self) -> usize {
        lm_count(self.params.max_angular)
    }

    /// Size of one pair (or one species channel) expansion: `n_lm × n_radial`.
    pub fn pair_size(&self) -> usize {
        self.n_lm() * self.n_radial
    }

    /// Cutoff function and its derivative.
    #[inline]
    pub fn cutoff_function(&self, r: f64) -> (f64, f64) {
        let rc = self.params.cutoff;
        match self.params.smoothing {
            Smoothing::Step => (if r >= rc { 0.0 } else { 1.0 }, 0.0),
            Smoothing::ShiftedCosine { width } => {
                if r <= rc - width {
                    (1.0, 0.0)
                } else if r >= rc {
                    (0.0, 0.0)
                } else {
                    let s = std::f64::consts::PI * (r - rc + width) / width;
                    (
                        0.5 * (1.0 + s.cos()),
                        -0.5 * std::f64::consts::PI * s.sin() / width,
                    )
                }
            }
        }
    }

    /// The expansion `g_ij[lm][n] = f_c(r) I_nl(r) Y_lm(r̂)` of a single neighbour at `vector`
    /// (= r_j − r_i), featomic's `SphericalExpansionByPair` (without the centre term). With
    /// `gradients`, also `∂g/∂vector_α` at `gradients[(α n_lm + lm) n_radial + n]`.
    pub fn pair_expansion(&self, vector: &Vec3, values: &mut [f64], gradients: Option<&mut [f64]>) {
        let mut scratch = PairScratch::new(self);
        self.pair_expansion_with(vector, values, gradients, &mut scratch);
    }

    /// The centre's own contribution `w I_n0(0) Y_00` to the `(l=0, own species)` channel
    /// (`n_radial` values).
    pub fn center_contribution(&self) -> Vec<f64> {
        self.center
            .iter()
            .map(|v| v * self.params.center_atom_weight)
            .collect()
    }

    /// [`pair_expansion`](Self::pair_expansion) reusing the buffers of `scratch` (no
    /// allocation; use one [`PairScratch`] per thread).
    pub fn pair_expansion_with(
        &self,
        vector: &Vec3,
        values: &mut [f64],
        gradients: Option<&mut [f64]>,
        s: &mut PairScratch,
    ) {
        let r = (vector[0] * vector[0] + vector[1] * vector[1] + vector[2] * vector[2]).sqrt();
        let (fc, dfc) = self.cutoff_function(r);
        let nr = self.n_radial;
        let nlm = self.n_lm();
        let lmax = self.params.max_angular;
        match gradients {
            None => {
                self.radial.compute(r, &mut s.radial, None);
                self.harmonics.compute(vector, &mut s.ylm);
                for l in 0..=lmax {
                    let rad = &s.radial[l * nr..(l + 1) * nr];
                    for lm in l * l..(l + 1) * (l + 1) {
                        let y = fc * s.ylm[lm];
                        let out = &mut values[lm * nr..(lm + 1) * nr];
                        for n in 0..nr {
                            out[n] = y * rad[n];
                        }
                    }
                }
            }
            Some(grad) => {
                self.radial.compute(r, &mut s.radial, Some(&mut s.dradial));
                self.harmonics
                    .compute_with_gradients(vector, &mut s.ylm, &mut s.dylm);
                let inv = if r > 0.0 { 1.0 / r } else { 0.0 };
                let rhat = [vector[0] * inv, vector[1] * inv, vector[2] * inv];
                for l in 0..=lmax {
                    let rad = &s.radial[l * nr..(l + 1) * nr];
                    let drad = &s.dradial[l * nr..(l + 1) * nr];
                    for n in 0..nr {
                        s.tmp[n] = dfc * rad[n] + fc * drad[n];
                    }
                    for lm in l * l..(l + 1) * (l + 1) {
                        let y = s.ylm[lm];
                        let dy = [s.dylm[3 * lm], s.dylm[3 * lm + 1], s.dylm[3 * lm + 2]];
                        let out = &mut values[lm * nr..(lm + 1) * nr];
                        for n in 0..nr {
                            out[n] = fc * y * rad[n];
                        }
                        for a in 0..3 {
                            let g = &mut grad[(a * nlm + lm) * nr..(a * nlm + lm + 1) * nr];
                            let ya = rhat[a] * y;
                            let fdy = fc * dy[a];
                            for n in 0..nr {
                                g[n] = ya * s.tmp[n] + fdy * rad[n];
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adds `g_ij[lm][n]` of a neighbour at `vector` to `out` (values only, no temporary).
    #[inline]
    fn pair_add_values(&self, vector: &Vec3, out: &mut [f64], s: &mut PairScratch) {
        let r = (vector[0] * vector[0] + vector[1] * vector[1] + vector[2] * vector[2]).sqrt();
        let (fc, _) = self.cutoff_function(r);
        if fc == 0.0 {
            return;
        }
        let nr = self.n_radial;
        self.radial.compute(r, &mut s.radial, None);
        self.harmonics.compute(vector, &mut s.ylm);
        for l in 0..=self.params.max_angular {
            let rad = &s.radial[l * nr..(l + 1) * nr];
            for lm in l * l..(l + 1) * (l + 1) {
                let y = fc * s.ylm[lm];
                for (o, x) in out[lm * nr..(lm + 1) * nr].iter_mut().zip(rad) {
                    *o += y * x;
                }
            }
        }
    }

    /// The neighbour species of a batch: the parameter, or every species present.
    pub(crate) fn species_for(&self, systems: &[System]) -> Result<Vec<i32>> {
        let mut all: Vec<i32> = systems
            .iter()
            .flat_map(|s| s.numbers().iter().copied())
            .collect();
        all.sort_unstable();
        all.dedup();
        match &self.params.species {
            None => Ok(all),
            Some(given) => {
                let mut given = given.clone();
                given.sort_unstable();
                given.dedup();
                if let Some(bad) = all.iter().find(|z| given.binary_search(z).is_err()) {
                    return Err(Error::parameter(
                        "species",
                        format!("atomic number {bad} is present in the structures but not in the species list {given:?}"),
                    ));
                }
                Ok(given)
            }
        }
    }

    /// Adds the expansion of every neighbour of `ctx.i` (and the centre's own density) to
    /// `values` (`[species][lm][n]`, zeroed by the caller). With `want_grad`, calls
    /// `on_pair(neighbour, species index, g)` with `g = ∂g_ij/∂r_ij` as `[xyz][lm][n]`,
    /// computed together with the values from one radial and one harmonics evaluation.
    pub(crate) fn accumulate<F>(
        &self,
        ctx: &AtomContext<'_>,
        want_grad: bool,
        scratch: &mut PairScratch,
        values: &mut [f64],
        mut on_pair: F,
    ) where
        F: FnMut(&Neighbor, usize, &[f64]),
    {
        let ps = self.pair_size();
        let si = ctx.species_index[ctx.i];
        let w = self.params.center_atom_weight;
        for n in 0..self.n_radial {
            values[si * ps + n] += w * self.center[n];
        }
        if !want_grad {
            for nb in ctx.neighbors {
                let sj = ctx.species_index[nb.j];
                self.pair_add_values(&nb.vector, &mut values[sj * ps..(sj + 1) * ps], scratch);
            }
            return;
        }
        let mut pv = std::mem::take(&mut scratch.values);
        let mut pg = std::mem::take(&mut scratch.grads);
        for nb in ctx.neighbors {
            let sj = ctx.species_index[nb.j];
            self.pair_expansion_with(&nb.vector, &mut pv, Some(&mut pg), scratch);
            let dst = &mut values[sj * ps..(sj + 1) * ps];
            for (d, v) in dst.iter_mut().zip(&pv) {
                *d += v;
            }
            on_pair(nb, sj, &pg);
        }
        scratch.values = pv;
        scratch.grads = pg;
    }

    /// Expansion of one atom into `out` (values `[species][lm][n]`, gradient rows
    /// `[slot][xyz][features]` for the atoms of `ctx.grad_atoms`, strain and cell
    /// `[αβ][features]`). The output slices must be zeroed.
    pub(crate) fn expand_atom(
        &self,
        ctx: &AtomContext<'_>,
        gradients: GradientRequest,
        scratch: &mut PairScratch,
        out: AtomOut<'_>,
    ) {
        let ps = self.pair_size();
        let nf = ctx.n_species * ps;
        let i = ctx.i;
        let AtomOut {
            values,
            grads,
            strain,
            cell,
        } = out;
        let want_grad = gradients.positions || gradients.strain || gradients.cell;
        let grad_atoms = ctx.grad_atoms;
        let center_slot = grad_atoms.binary_search(&i).unwrap_or(0);
        self.accumulate(ctx, want_grad, scratch, values, |nb, sj, pg| {
            if gradients.positions && nb.j != i {
                let slot = grad_atoms.binary_search(&nb.j).expect("neighbor slot");
                for a in 0..3 {
                    let src = &pg[a * ps..(a + 1) * ps];
                    let gj = &mut grads
                        [(slot * 3 + a) * nf + sj * ps..(slot * 3 + a) * nf + (sj + 1) * ps];
                    for (d, v) in gj.iter_mut().zip(src) {
                        *d += v;
                    }
                    let gi = &mut grads[(center_slot * 3 + a) * nf + sj * ps
                        ..(center_slot * 3 + a) * nf + (sj + 1) * ps];
                    for (d, v) in gi.iter_mut().zip(src) {
                        *d -= v;
                    }
                }
            }
            add_strain_and_cell(gradients, nb, pg, sj * ps, ps, nf, strain, cell);
        });
    }

    /// Feature labels `(neighbor_type, l, m, n)` for the given species.
    pub fn feature_labels(&self, species: &[i32]) -> Vec<Vec<i32>> {
        let mut out = Vec::with_capacity(species.len() * self.pair_size());
        for &z in species {
            for l in 0..=self.params.max_angular as i32 {
                for m in -l..=l {
                    for n in 0..self.n_radial as i32 {
                        out.push(vec![z, l, m, n]);
                    }
                }
            }
        }
        out
    }

    /// Computes the expansion of every atom of every structure (parallel over structures and
    /// atoms). Features are `(neighbor_type, l, m, n)`.
    pub fn compute(&self, systems: &[System], gradients: GradientRequest) -> Result<Descriptor> {
        let species = self.species_for(systems)?;
        self.compute_with_species(systems, &species, gradients)
    }

    /// Same as [`compute`](Self::compute) with an explicit, sorted list of neighbour species
    /// (every atomic number of the structures must be in it).
    pub fn compute_with_species(
        &self,
        systems: &[System],
        species: &[i32],
        gradients: GradientRequest,
    ) -> Result<Descriptor> {
        let species = check_species(systems, species)?;
        let nf = species.len() * self.pair_size();
        let labels = self.feature_labels(&species);
        let ps = self.pair_size() as f64;
        let want_grad = gradients.positions || gradients.strain || gradients.cell;
        let pair_terms = ps
            * (if want_grad { 4.0 } else { 1.0 }
                + if gradients.positions { 6.0 } else { 0.0 }
                + if gradients.strain { 9.0 } else { 0.0 }
                + if gradients.cell { 9.0 } else { 0.0 });
        run_atoms(
            self,
            systems,
            &species,
            gradients,
            nf,
            vec!["neighbor_type", "l", "m", "n"],
            labels,
            Cost {
                what: "the spherical expansion",
                pair_terms,
                atom_terms: nf as f64,
            },
            |ctx, scratch, out| self.expand_atom(ctx, gradients, scratch, out),
        )
    }
}

/// Result of [`SphericalExpansion::backward`] for one structure: the vector-Jacobian product
/// of the expansion with `dL/dvalues`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ExpansionBackward {
    /// `dL/dr_i`, one row per atom
    pub positions: Vec<Vec3>,
    /// `dL/dε` for a homogeneous strain of positions and cell with ε acting on column vectors
    /// (`r → (1 + ε) r`): `[a][b] = Σ_pairs (∂L/∂r_ij)_a (r_ij)_b`, the convention of the
    /// stored `strain` gradients and of every engine ([`crate::strain`]). Also defined for
    /// open systems (positions only).
    pub strain: Mat3,
    /// `dL/dH[a][b]` with `H` the cell matrix (rows = cell vectors) and the Cartesian
    /// positions fixed (featomic's `cell` gradient convention), from the strain and position
    /// parts by [`crate::strain::backward_cell`]; `None` for open systems
    pub cell: Option<Mat3>,
}

impl SphericalExpansion {
    /// Vector-Jacobian product of one pair at `vector` (= r_ij): `d = t − u` with
    /// `u = Σ wi · ∂g(r_ij)/∂r_ij` (the centre `i` sees `j`) and
    /// `t = Σ wj · (∂g/∂r)(r_ji = −r_ij)` (the centre `j` sees `i`), i.e. `∂L/∂r_i` from this
    /// pair. One radial and harmonics evaluation serves both sides through
    /// `g(−r) = (−1)^l g(r)`, hence `(∇g)(−r) = (−1)^{l+1} ∇g(r)`: `d` contracts `∇g(r)` with
    /// `W = (−1)^{l+1} wj − wi`, through the factorised form
    /// `∂g/∂r_a = r̂_a Y_lm (f_c I)' + f_c I ∂Y_lm/∂r_a` (the gradient is never formed).
    fn pair_vjp(&self, vector: &Vec3, wi: &[f64], wj: &[f64], s: &mut PairScratch) -> Vec3 {
        let r = (vector[0] * vector[0] + vector[1] * vector[1] + vector[2] * vector[2]).sqrt();
        let (fc, dfc) = self.cutoff_function(r);
        if (fc == 0.0 && dfc == 0.0) || r == 0.0 {
            return [0.0; 3];
        }
        let nr = self.n_radial;
        self.radial.compute(r, &mut s.radial, Some(&mut s.dradial));
        self.harmonics
            .compute_with_gradients(vector, &mut s.ylm, &mut s.dylm);
        let mut radial_part = 0.0;
        let mut angular = [0.0; 3];
        for l in 0..=self.params.max_angular {
            let rad = &s.radial[l * nr..(l + 1) * nr];
            let drad = &s.dradial[l * nr..(l + 1) * nr];
            for n in 0..nr {
                s.tmp[n] = dfc * rad[n] + fc * drad[n];
            }
            let sign = if l % 2 == 0 { -1.0 } else { 1.0 };
            for lm in l * l..(l + 1) * (l + 1) {
                let w_i = &wi[lm * nr..(lm + 1) * nr];
                let w_j = &wj[lm * nr..(lm + 1) * nr];
                let (mut a, mut b) = (0.0, 0.0);
                for n in 0..nr {
                    let w = sign * w_j[n] - w_i[n];
                    a += w * s.tmp[n];
                    b += w * rad[n];
                }
                radial_part += s.ylm[lm] * a;
                for (x, dy) in angular.iter_mut().zip(&s.dylm[3 * lm..3 * lm + 3]) {
                    *x += dy * b;
                }
            }
        }
        let inv = 1.0 / r;
        [
            vector[0] * inv * radial_part + fc * angular[0],
            vector[1] * inv * radial_part + fc * angular[1],
            vector[2] * inv * radial_part + fc * angular[2],
        ]
    }

    /// Backward pass (vector-Jacobian product): from `grad_values = dL/dvalues` in the layout
    /// of [`compute_with_species`](Self::compute_with_species)'s values (every atom of every
    /// structure in order, `[species][lm][n]` per atom), `dL/dpositions`, `dL/dstrain` and
    /// `dL/dcell` of every structure, without forming the gradient arrays.
    ///
    /// One parallel pass over the neighbour pairs, each pair evaluated once for both centres'
    /// dependence on it; the partner's share is added afterwards in a fixed sequential order
    /// and the per-atom strain and cell terms are reduced in atom order, so results do not
    /// depend on the thread count. Memory O(N) (one 3-vector per pair).
    pub fn backward(
        &self,
        systems: &[System],
        species: &[i32],
        grad_values: &[f64],
    ) -> Result<Vec<ExpansionBackward>> {
        let species = check_species(systems, species)?;
        let ps = self.pair_size();
        let nf = species.len() * ps;
        let n_total: usize = systems.iter().map(System::len).sum();
        if grad_values.len() != n_total * nf {
            return Err(Error::shape(
                "grad_values",
                format!("{n_total} atoms × {nf} features = {} entries", n_total * nf),
                format!("{} entries", grad_values.len()),
            ));
        }
        crate::error::check_finite("grad_values", grad_values)?;
        let cutoff = self.params.cutoff;
        let estimate = cost::check_neighbors(
            "the spherical expansion backward pass",
            systems,
            cutoff,
            4.0 * ps as f64,
            0.0,
        )?;
        // one (j, d) per half pair and 21 values per atom
        limits::check_memory(
            "the spherical expansion backward pass",
            estimate.pairs * 16.0 + n_total as f64 * 21.0 * 8.0 * 2.0,
            "use a smaller cutoff or fewer structures",
        )?;
        let lists: Vec<(CellList, Vec<usize>, usize)> = {
            let mut offset = 0;
            let offsets: Vec<usize> = systems
                .iter()
                .map(|s| {
                    let o = offset;
                    offset += s.len();
                    o
                })
                .collect();
            systems
                .par_iter()
                .zip(offsets)
                .map(|(s, o)| {
                    let list = CellList::new(s, cutoff)?;
                    let idx = s
                        .numbers()
                        .iter()
                        .map(|z| species.binary_search(z).expect("species checked"))
                        .collect();
                    Ok((list, idx, o))
                })
                .collect::<Result<_>>()?
        };
        // atoms in cell-list bin order: consecutive tasks read the dL/dvalues rows of nearby
        // atoms (the rows of a random order would miss the cache for large structures)
        let tasks: Vec<(usize, usize)> = lists
            .iter()
            .enumerate()
            .flat_map(|(s, (list, _, _))| list.atoms_in_bin_order().iter().map(move |&i| (s, i)))
            .collect();
        // per atom: dL/dr_i (3), strain (9); the cell part follows from both
        // (crate::strain::backward_cell)
        // pass 1, parallel: every pair once (from its `is_half` side), `d = ∂L/∂r_i` from both
        // centres' dependence on it, gathered into the centre's row (dL/dr_i += d; strain
        // −d ⊗ r_ij) and kept as `(j, d)` for the partner
        type Visit = ([f64; 12], Vec<(usize, Vec3)>);
        let in_task_order: Vec<Visit> = tasks
            .par_iter()
            .map_init(
                || PairScratch::new(self),
                |scratch, &(s, i)| {
                    let (list, idx, offset) = &lists[s];
                    let si = idx[i];
                    let row_i = &grad_values[(offset + i) * nf..(offset + i + 1) * nf];
                    let mut out = [0.0; 12];
                    let mut partners = Vec::new();
                    if interrupt::is_requested() {
                        return (out, partners);
                    }
                    list.for_each_neighbor(i, |nb| {
                        if !nb.is_half(i) {
                            return;
                        }
                        let sj = idx[nb.j];
                        let row_j = &grad_values[(offset + nb.j) * nf..(offset + nb.j + 1) * nf];
                        let d = self.pair_vjp(
                            &nb.vector,
                            &row_i[sj * ps..(sj + 1) * ps],
                            &row_j[si * ps..(si + 1) * ps],
                            scratch,
                        );
                        for a in 0..3 {
                            out[a] += d[a];
                            for b in 0..3 {
                                out[3 + 3 * a + b] -= d[a] * nb.vector[b];
                            }
                        }
                        partners.push((nb.j, d));
                    });
                    (out, partners)
                },
            )
            .collect();
        interrupt::check()?;
        // pass 2, sequential in a fixed order (independent of the thread count): dL/dr_j −= d
        let mut per_atom = vec![[0.0; 12]; n_total];
        for (&(s, i), (row, _)) in tasks.iter().zip(&in_task_order) {
            per_atom[lists[s].2 + i] = *row;
        }
        for (&(s, _), (_, partners)) in tasks.iter().zip(&in_task_order) {
            let offset = lists[s].2;
            for &(j, d) in partners {
                for a in 0..3 {
                    per_atom[offset + j][a] -= d[a];
                }
            }
        }
        let mut results = Vec::with_capacity(systems.len());
        let mut start = 0;
        for system in systems {
            let rows = &per_atom[start..start + system.len()];
            start += system.len();
            let mut strain = [[0.0; 3]; 3];
            for row in rows {
                for a in 0..3 {
                    for b in 0..3 {
                        strain[a][b] += row[3 + 3 * a + b];
                    }
                }
            }
            let positions: Vec<Vec3> = rows.iter().map(|r| [r[0], r[1], r[2]]).collect();
            let cell = crate::strain::backward_cell(
                system.cell(),
                system.positions(),
                &positions,
                &strain,
            );
            results.push(ExpansionBackward {
                positions,
                strain,
                cell,
            });
        }
        Ok(results)
    }
}

/// Sorts/dedups `species` and checks that every atom's number is in it.
pub(crate) fn check_species(systems: &[System], species: &[i32]) -> Result<Vec<i32>> {
    let mut given = species.to_vec();
    given.sort_unstable();
    given.dedup();
    for s in systems {
        if let Some(bad) = s.numbers().iter().find(|z| given.binary_search(z).is_err()) {
            return Err(Error::parameter(
                "species",
                format!("atomic number {bad} is present in the structures but not in the species list {given:?}"),
            ));
        }
    }
    Ok(given)
}

/// Adds one pair's contribution to the strain (`[αβ] = Σ ∂g/∂r_α r_β`, ε on column vectors:
/// `r → (1 + ε) r`, see [`crate::strain`]) and cell (`Σ n_a ∂g/∂r_b`, `n` the lattice shift of
/// the image: with Cartesian positions fixed, only the image vectors move with the cell)
/// derivatives, `[αβ][features]`, at feature `offset`.
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) fn add_strain_and_cell(
    gradients: GradientRequest,
    nb: &Neighbor,
    pg: &[f64],
    offset: usize,
    ps: usize,
    nf: usize,
    strain: &mut [f64],
    cell: &mut [f64],
) {
    for a in 0..3 {
        for b in 0..3 {
            let src = &pg[b * ps..(b + 1) * ps];
            let at = (a * 3 + b) * nf + offset;
            if gradients.strain {
                // [a][b] = ∂g/∂r_a r_b
                let rb = nb.vector[b];
                let src_a = &pg[a * ps..(a + 1) * ps];
                for (d, v) in strain[at..at + ps].iter_mut().zip(src_a) {
                    *d += rb * v;
                }
            }
            if gradients.cell && nb.shift[a] != 0 {
                let na = f64::from(nb.shift[a]);
                for (d, v) in cell[at..at + ps].iter_mut().zip(src) {
                    *d += na * v;
                }
            }
        }
    }
}

/// Reusable buffers for pair expansions.
#[derive(Debug, Clone)]
pub struct PairScratch {
    radial: Vec<f64>,
    dradial: Vec<f64>,
    ylm: Vec<f64>,
    dylm: Vec<f64>,
    tmp: Vec<f64>,
    values: Vec<f64>,
    grads: Vec<f64>,
    /// per-atom expansion buffers (used by the power spectrum)
    pub(crate) atom_values: Vec<f64>,
    pub(crate) atom_grads: Vec<f64>,
    pub(crate) atom_strain: Vec<f64>,
    /// neighbour list of the current atom (when not precomputed)
    neighbors: Vec<Neighbor>,
}

impl PairScratch {
    /// Buffers sized for `expansion`.
    pub fn new(expansion: &SphericalExpansion) -> PairScratch {
        let nr = expansion.n_radial;
        let l1 = expansion.params.max_angular + 1;
        let nlm = expansion.n_lm();
        PairScratch {
            radial: vec![0.0; l1 * nr],
            dradial: vec![0.0; l1 * nr],
            ylm: vec![0.0; nlm],
            dylm: vec![0.0; 3 * nlm],
            tmp: vec![0.0; nr],
            values: vec![0.0; nlm * nr],
            grads: vec![0.0; 3 * nlm * nr],
            atom_values: Vec::new(),
            atom_grads: Vec::new(),
            atom_strain: Vec::new(),
            neighbors: Vec::new(),
        }
    }
}

/// What a per-atom kernel knows about its atom.
pub(crate) struct AtomContext<'a> {
    /// centre atom index in its structure
    pub i: usize,
    /// species index of every atom of the structure
    pub species_index: &'a [usize],
    /// number of neighbour species
    pub n_species: usize,
    /// neighbours (all images within the cutoff)
    pub neighbors: &'a [Neighbor],
    /// atoms with a gradient row (sorted, centre included); empty without position gradients
    pub grad_atoms: &'a [usize],
}

/// Output slices of one atom (zero-initialised).
pub(crate) struct AtomOut<'a> {
    /// `n_features`
    pub values: &'a mut [f64],
    /// `grad_atoms.len() × 3 × n_features`
    pub grads: &'a mut [f64],
    /// `9 × n_features` (empty without strain)
    pub strain: &'a mut [f64],
    /// `9 × n_features` (empty without cell gradients)
    pub cell: &'a mut [f64],
}

fn split_chunks<'a>(mut rest: &'a mut [f64], lens: &[usize]) -> Vec<&'a mut [f64]> {
    let mut out = Vec::with_capacity(lens.len());
    for &len in lens {
        let (head, tail) = rest.split_at_mut(len);
        out.push(head);
        rest = tail;
    }
    out
}

/// The cost of a per-atom kernel of [`run_atoms`], for the checks before any work.
pub(crate) struct Cost {
    /// the computation, in words
    pub what: &'static str,
    /// terms per neighbour pair
    pub pair_terms: f64,
    /// terms per atom (contractions)
    pub atom_terms: f64,
}

/// Runs the per-atom kernel `f` on every atom of every structure in parallel, writing
/// straight into the dense outputs (one allocation per output array), after checking the
/// neighbour search, the terms and the memory against [`crate::limits`]. Interruptible.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_atoms<F>(
    expansion: &SphericalExpansion,
    systems: &[System],
    species: &[i32],
    gradients: GradientRequest,
    nf: usize,
    feature_names: Vec<&'static str>,
    features: Vec<Vec<i32>>,
    cost: Cost,
    f: F,
) -> Result<Descriptor>
where
    F: Fn(&AtomContext<'_>, &mut PairScratch, AtomOut<'_>) + Sync,
{
    let cutoff = expansion.params.cutoff;
    let n_atoms: usize = systems.iter().map(System::len).sum();
    let estimate = cost::check_neighbors(
        cost.what,
        systems,
        cutoff,
        cost.pair_terms,
        n_atoms as f64 * cost.atom_terms,
    )?;
    {
        // the outputs: values, one gradient row per (centre, neighbour atom) and the centre,
        // strain and cell; the neighbour lists kept for the position gradients; per thread,
        // the kernel's scratch
        let nf = nf as f64;
        let mut grad_rows = 0.0;
        if gradients.positions {
            for s in systems {
                let e = cost::neighbor_estimate(s, cutoff);
                grad_rows += s.len() as f64 * (e.per_center + 1.0).min(s.len() as f64);
            }
        }
        let per_sample = nf
            * (1.0
                + if gradients.strain { 9.0 } else { 0.0 }
                + if gradients.cell { 9.0 } else { 0.0 });
        let neighbours = if gradients.positions {
            estimate.pairs * std::mem::size_of::<Neighbor>() as f64
        } else {
            0.0
        };
        let scratch = rayon::current_num_threads() as f64
            * (estimate.per_center + 2.0)
            * (std::mem::size_of::<Neighbor>() as f64 + 3.0 * expansion.pair_size() as f64 * 8.0);
        limits::check_memory(
            cost.what,
            (n_atoms as f64 * per_sample + grad_rows * 3.0 * nf) * 8.0 + neighbours + scratch,
            "use a smaller cutoff, max_radial or max_angular, fewer structures or fewer \
             gradients",
        )?;
    }
    let lists: Vec<(CellList, Vec<usize>)> = systems
        .par_iter()
        .map(|s| {
            let list = CellList::new(s, cutoff)?;
            let idx = s
                .numbers()
                .iter()
                .map(|z| species.binary_search(z).expect("species checked"))
                .collect();
            Ok((list, idx))
        })
        .collect::<Result<_>>()?;
    let tasks: Vec<(usize, usize)> = systems
        .iter()
        .enumerate()
        .flat_map(|(s, sys)| (0..sys.len()).map(move |i| (s, i)))
        .collect();
    // pass 1 (position gradients only): neighbours and gradient rows of every atom, to size
    // the output; without it, each task finds its neighbours in a reused buffer
    let neighbors: Vec<(Vec<Neighbor>, Vec<usize>)> = if gradients.positions {
        tasks
            .par_iter()
            .map_init(Vec::new, |buf, &(s, i)| {
                if interrupt::is_requested() {
                    return (Vec::new(), Vec::new());
                }
                buf.clear();
                lists[s].0.for_each_neighbor(i, |nb| buf.push(nb));
                let nbs = buf.clone();
                let mut atoms: Vec<usize> =
                    nbs.iter().map(|n| n.j).chain(std::iter::once(i)).collect();
                atoms.sort_unstable();
                atoms.dedup();
                (nbs, atoms)
            })
            .collect()
    } else {
        vec![(Vec::new(), Vec::new()); tasks.len()]
    };
    interrupt::check()?;
    let n_samples = tasks.len();
    let hint = "use a smaller cutoff, max_radial or max_angular, fewer structures or fewer \
                gradients";
    let mut values = cost::try_calloc(cost.what, n_samples * nf, hint)?;
    let grad_lens: Vec<usize> = neighbors.iter().map(|(_, a)| a.len() * 3 * nf).collect();
    let mut grads = cost::try_calloc(
        "the position gradients",
        if gradients.positions {
            grad_lens.iter().sum()
        } else {
            0
        },
        hint,
    )?;
    let mut strain = cost::try_calloc(
        "the strain gradients",
        if gradients.strain {
            n_samples * 9 * nf
        } else {
            0
        },
        hint,
    )?;
    let mut cell = cost::try_calloc(
        "the cell gradients",
        if gradients.cell {
            n_samples * 9 * nf
        } else {
            0
        },
        hint,
    )?;
    {
        let v_chunks = split_chunks(&mut values, &vec![nf; n_samples]);
        let g_chunks = split_chunks(
            &mut grads,
            &if gradients.positions {
                grad_lens
            } else {
                vec![0; n_samples]
            },
        );
        let s_chunks = split_chunks(
            &mut strain,
            &vec![if gradients.strain { 9 * nf } else { 0 }; n_samples],
        );
        let c_chunks = split_chunks(
            &mut cell,
            &vec![if gradients.cell { 9 * nf } else { 0 }; n_samples],
        );
        let work: Vec<_> = tasks
            .iter()
            .zip(&neighbors)
            .zip(
                v_chunks
                    .into_iter()
                    .zip(g_chunks)
                    .zip(s_chunks.into_iter().zip(c_chunks)),
            )
            .collect();
        work.into_par_iter().for_each_init(
            || PairScratch::new(expansion),
            |scratch, ((&(s, i), (nbs, atoms)), ((v, g), (st, ce)))| {
                if interrupt::is_requested() {
                    return;
                }
                let mut local = std::mem::take(&mut scratch.neighbors);
                let nbs: &[Neighbor] = if gradients.positions {
                    nbs
                } else {
                    local.clear();
                    lists[s].0.for_each_neighbor(i, |nb| local.push(nb));
                    &local
                };
                let ctx = AtomContext {
                    i,
                    species_index: &lists[s].1,
                    n_species: species.len(),
                    neighbors: nbs,
                    grad_atoms: atoms,
                };
                // write (not read) first: the buffers are fresh zero pages from calloc, and a
                // read-modify-write would fault twice per page (zero page, then copy-on-write)
                v.fill(0.0);
                g.fill(0.0);
                st.fill(0.0);
                ce.fill(0.0);
                f(
                    &ctx,
                    scratch,
                    AtomOut {
                        values: v,
                        grads: g,
                        strain: st,
                        cell: ce,
                    },
                );
                scratch.neighbors = local;
            },
        );
    }
    interrupt::check()?;
    let mut samples = Vec::with_capacity(n_samples);
    let mut gsamples = Vec::new();
    for (k, (&(s, i), (_, atoms))) in tasks.iter().zip(&neighbors).enumerate() {
        samples.push([s as i32, i as i32, systems[s].numbers()[i]]);
        for &j in atoms {
            gsamples.push([k, s, j]);
        }
    }
    Ok(Descriptor {
        feature_names,
        features,
        samples,
        values,
        position_gradients: gradients.positions.then_some(PositionGradients {
            samples: gsamples,
            values: grads,
        }),
        strain_gradients: gradients.strain.then_some(strain),
        cell_gradients: gradients.cell.then_some(cell),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(smoothing: Smoothing) -> ExpansionParameters {
        ExpansionParameters {
            smoothing,
            radial_accuracy: None,
            ..ExpansionParameters::new(3.0, 3, 4, 0.4)
        }
    }

    #[test]
    fn pair_expansion_gradients_match_finite_differences() {
        let se = SphericalExpansion::new(params(Smoothing::ShiftedCosine { width: 0.8 })).unwrap();
        let n = se.pair_size();
        let mut v = vec![0.0; n];
        let mut g = vec![0.0; 3 * n];
        for r in [[0.3, -1.1, 1.7], [1.2, 0.4, -0.2], [0.0, 0.0, 0.9]] {
            se.pair_expansion(&r, &mut v, Some(&mut g));
            let h = 1e-6;
            for a in 0..3 {
                let (mut rp, mut rm) = (r, r);
                rp[a] += h;
                rm[a] -= h;
                let (mut vp, mut vm) = (vec![0.0; n], vec![0.0; n]);
                se.pair_expansion(&rp, &mut vp, None);
                se.pair_expansion(&rm, &mut vm, None);
                for k in 0..n {
                    let fd = (vp[k] - vm[k]) / (2.0 * h);
                    assert!((fd - g[a * n + k]).abs() < 1e-7, "{k} {a}");
                }
            }
        }
    }

    #[test]
    fn backward_matches_contracted_dense_gradients() {
        // small triclinic cell (the cutoff sees several images, including the atoms' own)
        let cell = [[3.1, 0.0, 0.0], [0.7, 2.9, 0.0], [-0.4, 0.5, 3.3]];
        let positions = vec![
            [0.1, 0.2, 0.3],
            [1.4, 0.9, 0.2],
            [0.6, 2.1, 1.7],
            [2.2, 1.3, 2.6],
        ];
        let periodic = System::new(positions.clone(), vec![1, 8, 8, 1], Some(cell)).unwrap();
        let open = System::new(positions, vec![1, 8, 8, 1], None).unwrap();
        let se = SphericalExpansion::new(params(Smoothing::ShiftedCosine { width: 0.8 })).unwrap();
        let systems = [periodic, open];
        let request = GradientRequest {
            positions: true,
            strain: true,
            cell: true,
        };
        let d = se.compute_with_species(&systems, &[1, 8], request).unwrap();
        let nf = d.features.len();
        // deterministic pseudo-random dL/dvalues
        let w: Vec<f64> = (0..d.values.len())
            .map(|k| ((k as f64 * 0.7548776662466927).fract() - 0.5) * 2.0)
            .collect();
        let back = se.backward(&systems, &[1, 8], &w).unwrap();
        let dot = |row: usize, g: &[f64]| -> f64 {
            w[row * nf..(row + 1) * nf]
                .iter()
                .zip(g)
                .map(|(a, b)| a * b)
                .sum()
        };
        let pg = d.position_gradients.as_ref().unwrap();
        let mut dense_pos = [vec![[0.0; 3]; 4], vec![[0.0; 3]; 4]];
        for (r, &[k, s, j]) in pg.samples.iter().enumerate() {
            for a in 0..3 {
                dense_pos[s][j][a] += dot(k, &pg.values[(r * 3 + a) * nf..(r * 3 + a + 1) * nf]);
            }
        }
        let strain = d.strain_gradients.as_ref().unwrap();
        let cellg = d.cell_gradients.as_ref().unwrap();
        for s in 0..2 {
            for i in 0..4 {
                for a in 0..3 {
                    let diff = (dense_pos[s][i][a] - back[s].positions[i][a]).abs();
                    assert!(diff < 1e-12, "positions {s} {i} {a}: {diff}");
                }
            }
            for a in 0..3 {
                for b in 0..3 {
                    let (mut st, mut ce) = (0.0, 0.0);
                    for k in 4 * s..4 * s + 4 {
                        // stored strain and backward: one convention (ε on column vectors)
                        st += dot(
                            k,
                            &strain[(k * 9 + a * 3 + b) * nf..(k * 9 + a * 3 + b + 1) * nf],
                        );
                        ce += dot(
                            k,
                            &cellg[(k * 9 + a * 3 + b) * nf..(k * 9 + a * 3 + b + 1) * nf],
                        );
                    }
                    assert!(
                        (st - back[s].strain[a][b]).abs() < 1e-12,
                        "strain {s} {a} {b}"
                    );
                    if s == 0 {
                        let c = back[0].cell.unwrap()[a][b];
                        assert!((ce - c).abs() < 1e-12, "cell {a} {b}");
                    }
                }
            }
        }
        assert!(back[1].cell.is_none());
        assert!(se.backward(&systems, &[1, 8], &w[1..]).is_err());
        let mut nan = w.clone();
        nan[3] = f64::NAN;
        assert!(se.backward(&systems, &[1, 8], &nan).is_err());
    }

    #[test]
    fn cutoff_functions() {
        let se = SphericalExpansion::new(params(Smoothing::ShiftedCosine { width: 0.5 })).unwrap();
        assert_eq!(se.cutoff_function(2.0), (1.0, 0.0));
        assert_eq!(se.cutoff_function(3.0), (0.0, 0.0));
        let (f, _) = se.cutoff_function(2.75);
        assert!((f - 0.5).abs() < 1e-15);
        let step = SphericalExpansion::new(params(Smoothing::Step)).unwrap();
        assert_eq!(step.cutoff_function(2.999), (1.0, 0.0));
        assert_eq!(step.cutoff_function(3.0), (0.0, 0.0));
        // featomic's reference value: radius 4, width 0.5, r = 3.8
        let p = ExpansionParameters {
            cutoff: 4.0,
            ..params(Smoothing::ShiftedCosine { width: 0.5 })
        };
        let (f, df) = SphericalExpansion::new(p).unwrap().cutoff_function(3.8);
        assert!((f - 0.34549150281252683).abs() < 1e-15);
        assert!((df + 2.987832164741557).abs() < 1e-12);
    }

    #[test]
    fn isolated_dimer_has_density_of_one_neighbour() {
        // two atoms, centre weight 0: the expansion of atom 0 is exactly the pair expansion
        let p = ExpansionParameters {
            center_atom_weight: 0.0,
            ..params(Smoothing::Step)
        };
        let se = SphericalExpansion::new(p).unwrap();
        let sys = System::new(vec![[0.0, 0.0, 0.0], [0.4, 0.9, -1.2]], vec![1, 8], None).unwrap();
        let d = se.compute(&[sys], GradientRequest::default()).unwrap();
        let n = se.pair_size();
        let mut g = vec![0.0; n];
        se.pair_expansion(&[0.4, 0.9, -1.2], &mut g, None);
        // atom 0, neighbour species 8 (second channel)
        let row = &d.values[..2 * n];
        assert!(row[..n].iter().all(|&x| x == 0.0));
        for k in 0..n {
            assert_eq!(row[n + k], g[k]);
        }
        let bad = ExpansionParameters {
            cutoff: 0.0,
            ..params(Smoothing::Step)
        };
        assert!(SphericalExpansion::new(bad).is_err());
        let bad = ExpansionParameters {
            smearing: -1.0,
            ..params(Smoothing::Step)
        };
        assert!(SphericalExpansion::new(bad).is_err());
    }
}
