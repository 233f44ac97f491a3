//! featomic's `SoapPowerSpectrum`:
//! `p^{a1 a2}_{i, l n1 n2} = s_{a1a2} (−1)^l / √(2l+1) Σ_m c^{a1}_{i,n1 lm} c^{a2}_{i,n2 lm}`
//! for neighbour species pairs `a1 ≤ a2`, with `s = √2` when `a1 ≠ a2` and 1 otherwise (the
//! λ = 0 Clebsch–Gordan contraction of the expansion with itself).

use super::result::{Descriptor, GradientRequest};
use super::spherical_expansion::{
    add_strain_and_cell, check_species, run_atoms, AtomContext, AtomOut, Cost, ExpansionBackward,
    ExpansionParameters, SphericalExpansion,
};
use crate::error::{Error, Result};
use crate::system::System;
use rayon::prelude::*;

/// SOAP power spectrum calculator.
#[derive(Debug, Clone)]
pub struct PowerSpectrum {
    expansion: SphericalExpansion,
}

impl PowerSpectrum {
    /// Builds the calculator (same parameters as the spherical expansion).
    pub fn new(params: ExpansionParameters) -> Result<PowerSpectrum> {
        Ok(PowerSpectrum {
            expansion: SphericalExpansion::new(params)?,
        })
    }

    /// The underlying spherical expansion.
    pub fn expansion(&self) -> &SphericalExpansion {
        &self.expansion
    }

    /// Feature labels `(neighbor_1_type, neighbor_2_type, l, n_1, n_2)`.
    pub fn feature_labels(&self, species: &[i32]) -> Vec<Vec<i32>> {
        let nr = self.expansion.n_radial() as i32;
        let lmax = self.expansion.parameters().max_angular as i32;
        let mut out = Vec::new();
        for (a, &z1) in species.iter().enumerate() {
            for &z2 in &species[a..] {
                for l in 0..=lmax {
                    for n1 in 0..nr {
                        for n2 in 0..nr {
                            out.push(vec![z1, z2, l, n1, n2]);
                        }
                    }
                }
            }
        }
        out
    }

    /// Computes the power spectrum of every atom (parallel over structures and atoms).
    pub fn compute(&self, systems: &[System], gradients: GradientRequest) -> Result<Descriptor> {
        let species = self.expansion.species_for(systems)?;
        self.compute_with_species(systems, &species, gradients)
    }

    /// Backward pass (vector-Jacobian product) from `grad_values = dL/dvalues` (the values
    /// layout of [`compute_with_species`](Self::compute_with_species)): the expansion values,
    /// dL/dexpansion by the transpose of the λ = 0 contraction ([`Lambda0Product::vjp`]),
    /// then [`SphericalExpansion::backward`]; no gradient array is formed. Same conventions
    /// as the expansion's backward (strain with ε on column vectors, featomic's cell).
    pub fn backward(
        &self,
        systems: &[System],
        species: &[i32],
        grad_values: &[f64],
    ) -> Result<Vec<ExpansionBackward>> {
        let exp = &self.expansion;
        let species = check_species(systems, species)?;
        let nr = exp.n_radial();
        let product = Lambda0Product {
            n_species_1: species.len(),
            n_species_2: species.len(),
            max_angular: exp.parameters().max_angular,
            n_radial_1: nr,
            n_radial_2: nr,
            symmetric: true,
        };
        let n_total: usize = systems.iter().map(System::len).sum();
        let nf = product.n_features();
        if grad_values.len() != n_total * nf {
            return Err(Error::shape(
                "grad_values",
                format!("{n_total} atoms × {nf} features = {} entries", n_total * nf),
                format!("{} entries", grad_values.len()),
            ));
        }
        crate::error::check_finite("grad_values", grad_values)?;
        if n_total == 0 {
            // no atom: zero gradients (and no product to form)
            return exp.backward(systems, &species, &[]);
        }
        let values = exp
            .compute_with_species(systems, &species, GradientRequest::default())?
            .values;
        let (mut d1, d2) = product.vjp(&values, &values, grad_values)?;
        d1.par_iter_mut().zip(&d2).for_each(|(a, b)| *a += b);
        exp.backward(systems, &species, &d1)
    }

    /// Same as [`compute`](Self::compute) with an explicit list of neighbour species.
    pub fn compute_with_species(
        &self,
        systems: &[System],
        species: &[i32],
        gradients: GradientRequest,
    ) -> Result<Descriptor> {
        let exp = &self.expansion;
        let species = check_species(systems, species)?;
        let nsp = species.len();
        let nf_in = nsp * exp.pair_size();
        let nf = nsp * (nsp + 1) / 2
            * (exp.parameters().max_angular + 1)
            * exp.n_radial()
            * exp.n_radial();
        // per pair: the expansion (and its derivatives) and, for position gradients, the
        // contraction of the neighbour's derivative with every channel; per atom: the
        // contractions of the values, strain and cell
        let want = gradients.positions || gradients.strain || gradients.cell;
        let ps_in = exp.pair_size() as f64;
        let contraction = ps_in * exp.n_radial() as f64;
        let pair_terms = ps_in * if want { 4.0 } else { 1.0 }
            + if gradients.positions {
                3.0 * nsp as f64 * contraction
            } else {
                0.0
            };
        let atom_terms = (nsp * (nsp + 1) / 2) as f64
            * contraction
            * (1.0
                + if gradients.positions { 6.0 } else { 0.0 }
                + if gradients.strain { 18.0 } else { 0.0 }
                + if gradients.cell { 18.0 } else { 0.0 });
        run_atoms(
            exp,
            systems,
            &species,
            gradients,
            nf,
            vec!["neighbor_1_type", "neighbor_2_type", "l", "n_1", "n_2"],
            self.feature_labels(&species),
            Cost {
                what: "the power spectrum",
                pair_terms,
                atom_terms,
            },
            |ctx, scratch, out| {
                let ps_in = exp.pair_size();
                let mut v = std::mem::take(&mut scratch.atom_values);
                let mut g = std::mem::take(&mut scratch.atom_grads);
                let mut st = std::mem::take(&mut scratch.atom_strain);
                reset(&mut v, nf_in);
                // compact position derivatives: one [xyz][lm][n] block per neighbour atom,
                // for its own species channel only, then the centre's [xyz][species][lm][n]
                let n_slots = if gradients.positions {
                    ctx.grad_atoms.len() * 3 * ps_in
                } else {
                    0
                };
                reset(
                    &mut g,
                    n_slots + if gradients.positions { 3 * nf_in } else { 0 },
                );
                let n_strain = if gradients.strain { 9 * nf_in } else { 0 };
                let n_cell = if gradients.cell { 9 * nf_in } else { 0 };
                reset(&mut st, n_strain + n_cell);
                {
                    let (c_strain, c_cell) = st.split_at_mut(n_strain);
                    let want = gradients.positions || gradients.strain || gradients.cell;
                    let i = ctx.i;
                    let grad_atoms = ctx.grad_atoms;
                    let (g_slots, g_center) = g.split_at_mut(n_slots);
                    exp.accumulate(ctx, want, scratch, &mut v, |nb, sj, pg| {
                        if gradients.positions && nb.j != i {
                            let slot = grad_atoms.binary_search(&nb.j).expect("neighbor slot");
                            let dst = &mut g_slots[slot * 3 * ps_in..(slot + 1) * 3 * ps_in];
                            for (d, x) in dst.iter_mut().zip(pg) {
                                *d += x;
                            }
                            for a in 0..3 {
                                let at = a * nf_in + sj * ps_in;
                                let src = &pg[a * ps_in..(a + 1) * ps_in];
                                for (d, x) in g_center[at..at + ps_in].iter_mut().zip(src) {
                                    *d -= x;
                                }
                            }
                        }
                        add_strain_and_cell(
                            gradients,
                            nb,
                            pg,
                            sj * ps_in,
                            ps_in,
                            nf_in,
                            c_strain,
                            c_cell,
                        );
                    });
                }
                let (c_strain, c_cell) = st.split_at(n_strain);
                self.contract(ctx, &v, &g, c_strain, c_cell, gradients, out);
                scratch.atom_values = v;
                scratch.atom_grads = g;
                scratch.atom_strain = st;
            },
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn contract(
        &self,
        ctx: &AtomContext<'_>,
        c_values: &[f64],
        c_grads: &[f64],
        c_strain: &[f64],
        c_cell: &[f64],
        gradients: GradientRequest,
        out: AtomOut<'_>,
    ) {
        let nsp = ctx.n_species;
        let species_index = ctx.species_index;
        let exp = &self.expansion;
        let nr = exp.n_radial();
        let lmax = exp.parameters().max_angular;
        let ps_in = exp.pair_size();
        let nf_in = nsp * ps_in;
        let block = (lmax + 1) * nr * nr;
        let npairs = nsp * (nsp + 1) / 2;
        let nf = npairs * block;
        let sqrt2 = std::f64::consts::SQRT_2;
        let norms: Vec<f64> = (0..=lmax).map(lambda0_norm).collect();
        let pairs: Vec<(usize, usize)> = (0..nsp)
            .flat_map(|a| (a..nsp).map(move |b| (a, b)))
            .collect();
        // out[l][n1][n2] += scale norm_l Σ_m x[lm][n1] y[lm][n2]
        let contract = |x: &[f64], y: &[f64], out: &mut [f64], scale: f64| {
            contract_blocks(x, y, out, scale, &norms, nr);
        };
        // o ← o + oᵀ in each (n1, n2) block: d(x·x) = dx·x + (dx·x)ᵀ
        let symmetrise = |o: &mut [f64]| {
            for l in 0..=lmax {
                let ob = &mut o[l * nr * nr..(l + 1) * nr * nr];
                for n1 in 0..nr {
                    for n2 in n1..nr {
                        let sum = ob[n1 * nr + n2] + ob[n2 * nr + n1];
                        ob[n1 * nr + n2] = sum;
                        ob[n2 * nr + n1] = sum;
                    }
                }
            }
        };
        let channel = |a: usize| a * ps_in..(a + 1) * ps_in;
        let values = out.values;
        for (p, &(a, b)) in pairs.iter().enumerate() {
            let s = if a == b { 1.0 } else { sqrt2 };
            contract(
                &c_values[channel(a)],
                &c_values[channel(b)],
                &mut values[p * block..(p + 1) * block],
                s,
            );
        }
        // derivative of every pair from a full derivative dc of the expansion
        let derive_all = |dc: &[f64], out: &mut [f64]| {
            for (p, &(a, b)) in pairs.iter().enumerate() {
                let o = &mut out[p * block..(p + 1) * block];
                let (ca, cb) = (&c_values[channel(a)], &c_values[channel(b)]);
                let (da, db) = (&dc[channel(a)], &dc[channel(b)]);
                if a == b {
                    contract(da, cb, o, 1.0);
                    symmetrise(o);
                } else {
                    contract(da, cb, o, sqrt2);
                    contract(ca, db, o, sqrt2);
                }
            }
        };
        if gradients.positions {
            let grads = out.grads;
            let center_slot = ctx
                .grad_atoms
                .binary_search(&ctx.i)
                .expect("the center has a gradient row");
            for (slot, &j) in ctx.grad_atoms.iter().enumerate() {
                if slot == center_slot {
                    continue;
                }
                // only the species channel of j moves with r_j: pairs (s, b) and (a, s)
                let sj = species_index[j];
                for a in 0..3 {
                    let dc = &c_grads[(slot * 3 + a) * ps_in..(slot * 3 + a + 1) * ps_in];
                    let row = &mut grads[(slot * 3 + a) * nf..(slot * 3 + a + 1) * nf];
                    for (p, &(x, y)) in pairs.iter().enumerate() {
                        let o = &mut row[p * block..(p + 1) * block];
                        if x == sj && y == sj {
                            contract(dc, &c_values[channel(sj)], o, 1.0);
                            symmetrise(o);
                        } else if x == sj {
                            contract(dc, &c_values[channel(y)], o, sqrt2);
                        } else if y == sj {
                            contract(&c_values[channel(x)], dc, o, sqrt2);
                        }
                    }
                }
            }
            // the centre moves every channel: ∂c/∂r_i = −Σ_j ∂c/∂r_j, stored after the slots
            let c_center = &c_grads[ctx.grad_atoms.len() * 3 * ps_in..];
            for a in 0..3 {
                derive_all(
                    &c_center[a * nf_in..(a + 1) * nf_in],
                    &mut grads[(center_slot * 3 + a) * nf..(center_slot * 3 + a + 1) * nf],
                );
            }
        }
        if gradients.strain {
            for ab in 0..9 {
                derive_all(
                    &c_strain[ab * nf_in..(ab + 1) * nf_in],
                    &mut out.strain[ab * nf..(ab + 1) * nf],
                );
            }
        }
        if gradients.cell {
            for ab in 0..9 {
                derive_all(
                    &c_cell[ab * nf_in..(ab + 1) * nf_in],
                    &mut out.cell[ab * nf..(ab + 1) * nf],
                );
            }
        }
    }
}

/// `out[l][n1][n2] += scale norms[l] Σ_m x[lm][n1] y[lm][n2]` for every l, with the radial
/// size as a compile-time constant for the common sizes (the `nr × nr` block stays in registers
/// over m).
fn contract_blocks(x: &[f64], y: &[f64], out: &mut [f64], scale: f64, norms: &[f64], nr: usize) {
    macro_rules! dispatch {
        ($($n:literal),*) => {
            match nr {
                $($n => contract_fixed::<$n>(x, y, out, scale, norms),)*
                _ => contract_any(x, y, out, scale, norms, nr),
            }
        };
    }
    dispatch!(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
}

#[inline(always)]
fn contract_fixed<const N: usize>(
    x: &[f64],
    y: &[f64],
    out: &mut [f64],
    scale: f64,
    norms: &[f64],
) {
    for (l, &norm) in norms.iter().enumerate() {
        let mut acc = [[0.0f64; N]; N];
        for lm in l * l..(l + 1) * (l + 1) {
            let xr: &[f64; N] = x[lm * N..(lm + 1) * N].try_into().expect("N values");
            let yr: &[f64; N] = y[lm * N..(lm + 1) * N].try_into().expect("N values");
            for n1 in 0..N {
                for n2 in 0..N {
                    acc[n1][n2] += xr[n1] * yr[n2];
                }
            }
        }
        let f = norm * scale;
        let o = &mut out[l * N * N..(l + 1) * N * N];
        for n1 in 0..N {
            for n2 in 0..N {
                o[n1 * N + n2] += f * acc[n1][n2];
            }
        }
    }
}

fn contract_any(x: &[f64], y: &[f64], out: &mut [f64], scale: f64, norms: &[f64], nr: usize) {
    for (l, &norm) in norms.iter().enumerate() {
        let o = &mut out[l * nr * nr..(l + 1) * nr * nr];
        let f = norm * scale;
        for lm in l * l..(l + 1) * (l + 1) {
            let xr = &x[lm * nr..(lm + 1) * nr];
            let yr = &y[lm * nr..(lm + 1) * nr];
            for (n1, row) in o.chunks_exact_mut(nr).enumerate() {
                let xv = f * xr[n1];
                for (r, yv) in row.iter_mut().zip(yr) {
                    *r += xv * yv;
                }
            }
        }
    }
}

/// `(−1)^l / √(2l+1)`, the λ = 0 Clebsch–Gordan factor (featomic's convention).
fn lambda0_norm(l: usize) -> f64 {
    (if l.is_multiple_of(2) { 1.0 } else { -1.0 }) / ((2 * l + 1) as f64).sqrt()
}

/// Adds `scale norms[l] Σ_m x_{lm,n1} y_{lm,n2}` into `out[l][n1][n2]` for one pair of
/// species channels, `norms[l] = (−1)^l/√(2l+1)` for l = 0..=lmax ([`lambda0_norm`], computed
/// once by the caller); `x` is `(lmax+1)² × nr1`, `y` is `(lmax+1)² × nr2`, `out` is
/// `(lmax+1) × nr1 × nr2` (all row-major).
pub(crate) fn contract_lambda0(
    x: &[f64],
    y: &[f64],
    norms: &[f64],
    nr1: usize,
    nr2: usize,
    scale: f64,
    out: &mut [f64],
) {
    if nr1 == nr2 {
        // the SOAP power spectrum's contraction (compile-time radial size)
        contract_blocks(x, y, out, scale, norms, nr1);
        return;
    }
    for (l, &norm) in norms.iter().enumerate() {
        let o = &mut out[l * nr1 * nr2..(l + 1) * nr1 * nr2];
        let f = norm * scale;
        for lm in l * l..(l + 1) * (l + 1) {
            let xr = &x[lm * nr1..(lm + 1) * nr1];
            let yr = &y[lm * nr2..(lm + 1) * nr2];
            for (n1, row) in o.chunks_exact_mut(nr2).enumerate() {
                let xv = f * xr[n1];
                for (r, yv) in row.iter_mut().zip(yr) {
                    *r += xv * yv;
                }
            }
        }
    }
}

/// Transpose of [`contract_lambda0`]: given `g = dL/dout` for one species pair, adds
/// `dL/dx` into `dx` and `dL/dy` into `dy`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn contract_lambda0_vjp(
    x: &[f64],
    y: &[f64],
    g: &[f64],
    lmax: usize,
    nr1: usize,
    nr2: usize,
    scale: f64,
    dx: &mut [f64],
    dy: &mut [f64],
) {
    for l in 0..=lmax {
        let gb = &g[l * nr1 * nr2..(l + 1) * nr1 * nr2];
        let f = lambda0_norm(l) * scale;
        for lm in l * l..(l + 1) * (l + 1) {
            let xr = &x[lm * nr1..(lm + 1) * nr1];
            let yr = &y[lm * nr2..(lm + 1) * nr2];
            for n1 in 0..nr1 {
                let row = &gb[n1 * nr2..(n1 + 1) * nr2];
                let mut acc = 0.0;
                for n2 in 0..nr2 {
                    acc += row[n2] * yr[n2];
                    dy[lm * nr2 + n2] += f * row[n2] * xr[n1];
                }
                dx[lm * nr1 + n1] += f * acc;
            }
        }
    }
}

/// λ = 0 invariants of two (possibly different) per-atom expansions, e.g. the LODE power
/// spectrum |V ⊗ V⟩ or the multi-scale |ρ ⊗ V⟩ (docs/science.md §2.1 item 4), in the same
/// convention as [`PowerSpectrum`].
///
/// Inputs are dense per atom: `first` is `n_atoms × n_species_1 × (lmax+1)² × n_radial_1`,
/// `second` is `n_atoms × n_species_2 × (lmax+1)² × n_radial_2`. Output features are ordered
/// `(s1, s2, l, n1, n2)`. With `symmetric` (both inputs hold the same expansion) only the
/// species pairs `s1 ≤ s2` are kept, with `√2` for `s1 ≠ s2` (exactly [`PowerSpectrum`]);
/// otherwise every `(s1, s2)` with factor 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lambda0Product {
    /// species channels of the first expansion
    pub n_species_1: usize,
    /// species channels of the second expansion
    pub n_species_2: usize,
    /// shared largest l
    pub max_angular: usize,
    /// radial functions of the first expansion
    pub n_radial_1: usize,
    /// radial functions of the second expansion
    pub n_radial_2: usize,
    /// both inputs are one expansion: species pairs s1 ≤ s2, √2 across species
    pub symmetric: bool,
}

impl Lambda0Product {
    /// Species pairs in output order with their factor.
    pub fn pairs(&self) -> Vec<(usize, usize, f64)> {
        let mut out = Vec::new();
        for a in 0..self.n_species_1 {
            let start = if self.symmetric { a } else { 0 };
            for b in start..self.n_species_2 {
                let s = if self.symmetric && a != b {
                    std::f64::consts::SQRT_2
                } else {
                    1.0
                };
                out.push((a, b, s));
            }
        }
        out
    }

    fn block(&self) -> usize {
        (self.max_angular + 1) * self.n_radial_1 * self.n_radial_2
    }

    fn sizes(&self) -> (usize, usize) {
        let nlm = (self.max_angular + 1) * (self.max_angular + 1);
        (
            self.n_species_1 * nlm * self.n_radial_1,
            self.n_species_2 * nlm * self.n_radial_2,
        )
    }

    /// Number of invariants per atom.
    pub fn n_features(&self) -> usize {
        self.pairs().len() * self.block()
    }

    fn check(&self, first: &[f64], second: &[f64]) -> Result<usize> {
        if self.n_radial_1 == 0 || self.n_radial_2 == 0 {
            return Err(Error::parameter("n_radial", "must be at least 1"));
        }
        if self.symmetric
            && (self.n_species_1 != self.n_species_2 || self.n_radial_1 != self.n_radial_2)
        {
            return Err(Error::parameter(
                "symmetric",
                "a symmetric product needs two expansions of the same shape",
            ));
        }
        let (s1, s2) = self.sizes();
        if s1 == 0 || s2 == 0 || !first.len().is_multiple_of(s1) || !second.len().is_multiple_of(s2)
        {
            return Err(Error::parameter(
                "first/second",
                format!(
                    "lengths {} and {} are not multiples of the per-atom sizes {s1} and {s2}",
                    first.len(),
                    second.len()
                ),
            ));
        }
        let n = first.len() / s1;
        if second.len() / s2 != n {
            return Err(Error::parameter(
                "first/second",
                format!(
                    "{n} atoms in the first expansion, {} in the second",
                    second.len() / s2
                ),
            ));
        }
        if first.iter().chain(second).any(|v| !v.is_finite()) {
            return Err(Error::parameter(
                "first/second",
                "contains NaN or infinite values",
            ));
        }
        Ok(n)
    }

    /// The invariants, `n_atoms × n_features` row-major (parallel over atoms).
    pub fn compute(&self, first: &[f64], second: &[f64]) -> Result<Vec<f64>> {
        let n = self.check(first, second)?;
        let (s1, s2) = self.sizes();
        let nlm = (self.max_angular + 1) * (self.max_angular + 1);
        let (c1, c2) = (nlm * self.n_radial_1, nlm * self.n_radial_2);
        let nf = self.n_features();
        let block = self.block();
        let pairs = self.pairs();
        let norms: Vec<f64> = (0..=self.max_angular).map(lambda0_norm).collect();
        let mut out = super::cost::try_calloc(
            "the λ = 0 invariants",
            n * nf,
            "use fewer atoms or smaller max_radial / max_angular",
        )?;
        if nf == 0 {
            return Ok(out);
        }
        out.par_chunks_mut(nf).enumerate().for_each(|(i, row)| {
            if crate::interrupt::is_requested() {
                return;
            }
            let x = &first[i * s1..(i + 1) * s1];
            let y = &second[i * s2..(i + 1) * s2];
            for (p, &(a, b, s)) in pairs.iter().enumerate() {
                contract_lambda0(
                    &x[a * c1..(a + 1) * c1],
                    &y[b * c2..(b + 1) * c2],
                    &norms,
                    self.n_radial_1,
                    self.n_radial_2,
                    s,
                    &mut row[p * block..(p + 1) * block],
                );
            }
        });
        crate::interrupt::check()?;
        Ok(out)
    }

    /// Vector-Jacobian product: `grad` = dL/dinvariants (`n_atoms × n_features`) →
    /// (dL/dfirst, dL/dsecond) in the input layouts. For a symmetric product (one expansion
    /// fed twice) the gradient with respect to that expansion is the sum of the two.
    pub fn vjp(&self, first: &[f64], second: &[f64], grad: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        let n = self.check(first, second)?;
        let nf = self.n_features();
        if grad.len() != n * nf {
            return Err(Error::parameter(
                "grad",
                format!(
                    "expected {} values ({n} atoms × {nf} features), got {}",
                    n * nf,
                    grad.len()
                ),
            ));
        }
        if grad.iter().any(|v| !v.is_finite()) {
            return Err(Error::parameter("grad", "contains NaN or infinite values"));
        }
        let (s1, s2) = self.sizes();
        let nlm = (self.max_angular + 1) * (self.max_angular + 1);
        let (c1, c2) = (nlm * self.n_radial_1, nlm * self.n_radial_2);
        let block = self.block();
        let pairs = self.pairs();
        let mut d1 = vec![0.0; first.len()];
        let mut d2 = vec![0.0; second.len()];
        if n == 0 {
            return Ok((d1, d2));
        }
        d1.par_chunks_mut(s1)
            .zip(d2.par_chunks_mut(s2))
            .enumerate()
            .for_each(|(i, (dx, dy))| {
                if crate::interrupt::is_requested() {
                    return;
                }
                let x = &first[i * s1..(i + 1) * s1];
                let y = &second[i * s2..(i + 1) * s2];
                let g = &grad[i * nf..(i + 1) * nf];
                for (p, &(a, b, s)) in pairs.iter().enumerate() {
                    contract_lambda0_vjp(
                        &x[a * c1..(a + 1) * c1],
                        &y[b * c2..(b + 1) * c2],
                        &g[p * block..(p + 1) * block],
                        self.max_angular,
                        self.n_radial_1,
                        self.n_radial_2,
                        s,
                        &mut dx[a * c1..(a + 1) * c1],
                        &mut dy[b * c2..(b + 1) * c2],
                    );
                }
            });
        crate::interrupt::check()?;
        Ok((d1, d2))
    }
}

impl Lambda0Product {
    /// Forward derivative (Jacobian-vector product, the product rule) of the invariants:
    /// given `k` derivatives of each atom's expansions, `dfirst` (`n_atoms × k × n_species_1 ×
    /// (lmax+1)² × n_radial_1`) and `dsecond` (likewise), returns `n_atoms × k × n_features`
    /// `P(dfirst, second) + P(first, dsecond)`. Either derivative may be `None` (zero). The
    /// dense position gradients of a λ = 0 product (LODE power spectrum, |ρ ⊗ V⟩) are this
    /// with `k = 3 N` directions per atom.
    pub fn jvp(
        &self,
        first: &[f64],
        dfirst: Option<&[f64]>,
        second: &[f64],
        dsecond: Option<&[f64]>,
        k: usize,
    ) -> Result<Vec<f64>> {
        let n = self.check(first, second)?;
        let (s1, s2) = self.sizes();
        for (name, d, size) in [("dfirst", dfirst, s1), ("dsecond", dsecond, s2)] {
            if let Some(d) = d {
                if d.len() != n * k * size {
                    return Err(Error::parameter(
                        name,
                        format!(
                            "expected {} values ({n} atoms × {k} directions × {size}), got {}",
                            n * k * size,
                            d.len()
                        ),
                    ));
                }
                crate::error::check_finite(name, d)?;
            }
        }
        let nlm = (self.max_angular + 1) * (self.max_angular + 1);
        let (c1, c2) = (nlm * self.n_radial_1, nlm * self.n_radial_2);
        let nf = self.n_features();
        let block = self.block();
        let pairs = self.pairs();
        let norms: Vec<f64> = (0..=self.max_angular).map(lambda0_norm).collect();
        let mut out = super::cost::try_calloc(
            "the derivatives of the λ = 0 invariants",
            n * k * nf,
            "use fewer atoms, smaller max_radial / max_angular, or a backward pass",
        )?;
        if nf == 0 || n * k == 0 {
            return Ok(out);
        }
        out.par_chunks_mut(nf).enumerate().for_each(|(row, o)| {
            if crate::interrupt::is_requested() {
                return;
            }
            let i = row / k;
            let x = &first[i * s1..(i + 1) * s1];
            let y = &second[i * s2..(i + 1) * s2];
            for (p, &(a, b, s)) in pairs.iter().enumerate() {
                let dst = &mut o[p * block..(p + 1) * block];
                if let Some(d) = dfirst {
                    let dx = &d[row * s1..(row + 1) * s1];
                    contract_lambda0(
                        &dx[a * c1..(a + 1) * c1],
                        &y[b * c2..(b + 1) * c2],
                        &norms,
                        self.n_radial_1,
                        self.n_radial_2,
                        s,
                        dst,
                    );
                }
                if let Some(d) = dsecond {
                    let dy = &d[row * s2..(row + 1) * s2];
                    contract_lambda0(
                        &x[a * c1..(a + 1) * c1],
                        &dy[b * c2..(b + 1) * c2],
                        &norms,
                        self.n_radial_1,
                        self.n_radial_2,
                        s,
                        dst,
                    );
                }
            }
        });
        crate::interrupt::check()?;
        Ok(out)
    }
}

fn reset(v: &mut Vec<f64>, len: usize) {
    v.clear();
    v.resize(len, 0.0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::clebsch_gordan::ClebschGordan;

    fn data(len: usize, w: f64) -> Vec<f64> {
        (0..len).map(|k| (k as f64 * w + 0.3).sin()).collect()
    }

    #[test]
    fn lambda0_jvp_matches_finite_differences() {
        // d/dt P(x + t dx, y + t dy) at t = 0, for both the symmetric and the general product
        let (lmax, nr, ns, n, k) = (2, 2, 2, 2, 3);
        let nlm = (lmax + 1) * (lmax + 1);
        let size = ns * nlm * nr;
        for symmetric in [true, false] {
            let prod = Lambda0Product {
                n_species_1: ns,
                n_species_2: ns,
                max_angular: lmax,
                n_radial_1: nr,
                n_radial_2: nr,
                symmetric,
            };
            let x = data(n * size, 0.37);
            let y = if symmetric {
                x.clone()
            } else {
                data(n * size, 0.71)
            };
            let dx = data(n * k * size, 0.53);
            let dy = if symmetric {
                dx.clone()
            } else {
                data(n * k * size, 0.29)
            };
            let got = prod.jvp(&x, Some(&dx), &y, Some(&dy), k).unwrap();
            let nf = prod.n_features();
            let h = 1e-6;
            for dir in 0..k {
                let shifted = |sign: f64, v: &[f64], d: &[f64]| -> Vec<f64> {
                    let mut out = v.to_vec();
                    for i in 0..n {
                        for c in 0..size {
                            out[i * size + c] += sign * h * d[(i * k + dir) * size + c];
                        }
                    }
                    out
                };
                let plus = prod
                    .compute(&shifted(1.0, &x, &dx), &shifted(1.0, &y, &dy))
                    .unwrap();
                let minus = prod
                    .compute(&shifted(-1.0, &x, &dx), &shifted(-1.0, &y, &dy))
                    .unwrap();
                for i in 0..n {
                    for f in 0..nf {
                        let fd = (plus[i * nf + f] - minus[i * nf + f]) / (2.0 * h);
                        let v = got[(i * k + dir) * nf + f];
                        assert!((fd - v).abs() < 1e-8, "{symmetric} {i} {dir} {f}: {fd} {v}");
                    }
                }
            }
            // None is a zero derivative
            let half = prod.jvp(&x, Some(&dx), &y, None, k).unwrap();
            let other = prod.jvp(&x, None, &y, Some(&dy), k).unwrap();
            for ((a, b), c) in half.iter().zip(&other).zip(&got) {
                assert!((a + b - c).abs() < 1e-13);
            }
        }
    }

    #[test]
    fn lambda0_product_matches_clebsch_gordan_coupling() {
        // independent check: the λ = 0 block of the general CG product
        let (lmax, nr1, nr2, ns1, ns2, n) = (2, 2, 3, 2, 3, 3);
        let nlm = (lmax + 1) * (lmax + 1);
        let first = data(n * ns1 * nlm * nr1, 0.37);
        let second = data(n * ns2 * nlm * nr2, 0.71);
        let prod = Lambda0Product {
            n_species_1: ns1,
            n_species_2: ns2,
            max_angular: lmax,
            n_radial_1: nr1,
            n_radial_2: nr2,
            symmetric: false,
        };
        let out = prod.compute(&first, &second).unwrap();
        let nf = prod.n_features();
        assert_eq!(nf, ns1 * ns2 * (lmax + 1) * nr1 * nr2);
        let cg = ClebschGordan::new(lmax);
        for i in 0..n {
            for a in 0..ns1 {
                for b in 0..ns2 {
                    let x = &first[(i * ns1 + a) * nlm * nr1..(i * ns1 + a + 1) * nlm * nr1];
                    let y = &second[(i * ns2 + b) * nlm * nr2..(i * ns2 + b + 1) * nlm * nr2];
                    for l in 0..=lmax {
                        // the λ = 0 block of (l, l); only l1 = l2 couple to λ = 0
                        let xl = &x[l * l * nr1..(l + 1) * (l + 1) * nr1];
                        let yl = &y[l * l * nr2..(l + 1) * (l + 1) * nr2];
                        let mut block = vec![0.0; nr1 * nr2];
                        cg.couple(l, xl, nr1, l, yl, nr2, 0, &mut block);
                        for k in 0..nr1 * nr2 {
                            let col = ((a * ns2 + b) * (lmax + 1) + l) * nr1 * nr2 + k;
                            assert!((out[i * nf + col] - block[k]).abs() < 1e-13);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn lambda0_vjp_matches_finite_differences() {
        for symmetric in [false, true] {
            let (lmax, ns, n) = (2, 2, 2);
            let (nr1, nr2) = if symmetric { (2, 2) } else { (2, 3) };
            let nlm = (lmax + 1) * (lmax + 1);
            let first = data(n * ns * nlm * nr1, 0.37);
            let second = data(n * ns * nlm * nr2, 0.71);
            let prod = Lambda0Product {
                n_species_1: ns,
                n_species_2: ns,
                max_angular: lmax,
                n_radial_1: nr1,
                n_radial_2: nr2,
                symmetric,
            };
            let out = prod.compute(&first, &second).unwrap();
            let w = data(out.len(), 1.13);
            let loss = |f: &[f64], s: &[f64]| -> f64 {
                let o = prod.compute(f, s).unwrap();
                o.iter().zip(&w).map(|(a, b)| a * b).sum()
            };
            let (d1, d2) = prod.vjp(&first, &second, &w).unwrap();
            let h = 1e-6;
            for k in 0..first.len() {
                let (mut p, mut m) = (first.clone(), first.clone());
                p[k] += h;
                m[k] -= h;
                let fd = (loss(&p, &second) - loss(&m, &second)) / (2.0 * h);
                assert!((fd - d1[k]).abs() < 1e-7, "first {k}: {fd} vs {}", d1[k]);
            }
            for k in 0..second.len() {
                let (mut p, mut m) = (second.clone(), second.clone());
                p[k] += h;
                m[k] -= h;
                let fd = (loss(&first, &p) - loss(&first, &m)) / (2.0 * h);
                assert!((fd - d2[k]).abs() < 1e-7, "second {k}: {fd} vs {}", d2[k]);
            }
        }
    }

    #[test]
    fn lambda0_product_rejects_bad_shapes() {
        let prod = Lambda0Product {
            n_species_1: 1,
            n_species_2: 1,
            max_angular: 1,
            n_radial_1: 2,
            n_radial_2: 3,
            symmetric: true,
        };
        assert!(prod.compute(&[0.0; 8], &[0.0; 12]).is_err());
        let prod = Lambda0Product {
            symmetric: false,
            ..prod
        };
        assert!(prod.compute(&[0.0; 8], &[0.0; 12]).is_ok());
        assert!(prod.compute(&[0.0; 8], &[0.0; 24]).is_err());
        assert!(prod.compute(&[f64::NAN; 8], &[0.0; 12]).is_err());
        assert!(prod.vjp(&[0.0; 8], &[0.0; 12], &[0.0; 5]).is_err());
    }
}
