//! featomic's `SoapPowerSpectrum`:
//! `p^{a1 a2}_{i, l n1 n2} = s_{a1a2} (−1)^l / √(2l+1) Σ_m c^{a1}_{i,n1 lm} c^{a2}_{i,n2 lm}`
//! for neighbour species pairs `a1 ≤ a2`, with `s = √2` when `a1 ≠ a2` and 1 otherwise (the
//! λ = 0 Clebsch–Gordan contraction of the expansion with itself).

use super::result::{Descriptor, GradientRequest};
use super::spherical_expansion::{
    add_strain_and_cell, check_species, run_atoms, AtomContext, AtomOut, ExpansionParameters,
    SphericalExpansion,
};
use crate::error::Result;
use crate::system::System;

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
        run_atoms(
            exp,
            systems,
            &species,
            gradients,
            nf,
            vec!["neighbor_1_type", "neighbor_2_type", "l", "n_1", "n_2"],
            self.feature_labels(&species),
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
                            let slot = grad_atoms.binary_search(&nb.j).expect("neighbour slot");
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
        let norms: Vec<f64> = (0..=lmax)
            .map(|l| if l % 2 == 0 { 1.0 } else { -1.0 } / ((2 * l + 1) as f64).sqrt())
            .collect();
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
                .expect("the centre has a gradient row");
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

fn reset(v: &mut Vec<f64>, len: usize) {
    v.clear();
    v.resize(len, 0.0);
}
