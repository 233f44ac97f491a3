//! featomic's `SoapPowerSpectrum`:
//! `p^{a1 a2}_{i, l n1 n2} = s_{a1a2} (−1)^l / √(2l+1) Σ_m c^{a1}_{i,n1 lm} c^{a2}_{i,n2 lm}`
//! for neighbour species pairs `a1 ≤ a2`, with `s = √2` when `a1 ≠ a2` and 1 otherwise (the
//! λ = 0 Clebsch–Gordan contraction of the expansion with itself).

use super::result::{Descriptor, GradientRequest};
use super::spherical_expansion::{
    check_species, run_atoms, AtomContext, AtomOut, ExpansionParameters, SphericalExpansion,
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
                let mut v = std::mem::take(&mut scratch.atom_values);
                let mut g = std::mem::take(&mut scratch.atom_grads);
                let mut st = std::mem::take(&mut scratch.atom_strain);
                reset(&mut v, nf_in);
                reset(
                    &mut g,
                    if gradients.positions {
                        ctx.grad_atoms.len() * 3 * nf_in
                    } else {
                        0
                    },
                );
                reset(&mut st, if gradients.strain { 9 * nf_in } else { 0 });
                exp.expand_atom(
                    ctx,
                    gradients,
                    scratch,
                    AtomOut {
                        values: &mut v,
                        grads: &mut g,
                        strain: &mut st,
                    },
                );
                self.contract(ctx, &v, &g, &st, gradients, out);
                scratch.atom_values = v;
                scratch.atom_grads = g;
                scratch.atom_strain = st;
            },
        )
    }

    fn contract(
        &self,
        ctx: &AtomContext<'_>,
        c_values: &[f64],
        c_grads: &[f64],
        c_strain: &[f64],
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
        let norms: Vec<f64> = (0..=lmax)
            .map(|l| if l % 2 == 0 { 1.0 } else { -1.0 } / ((2 * l + 1) as f64).sqrt())
            .collect();
        let pairs: Vec<(usize, usize)> = (0..nsp)
            .flat_map(|a| (a..nsp).map(move |b| (a, b)))
            .collect();
        // contract(x, y) over m for one pair of species channels into out
        let contract = |x: &[f64], y: &[f64], out: &mut [f64], scale: f64| {
            for l in 0..=lmax {
                let o = &mut out[l * nr * nr..(l + 1) * nr * nr];
                let f = norms[l] * scale;
                for lm in l * l..(l + 1) * (l + 1) {
                    let xr = &x[lm * nr..(lm + 1) * nr];
                    let yr = &y[lm * nr..(lm + 1) * nr];
                    for n1 in 0..nr {
                        let xv = f * xr[n1];
                        let row = &mut o[n1 * nr..(n1 + 1) * nr];
                        for n2 in 0..nr {
                            row[n2] += xv * yr[n2];
                        }
                    }
                }
            }
        };
        let values = out.values;
        for (p, &(a, b)) in pairs.iter().enumerate() {
            let s = if a == b {
                1.0
            } else {
                std::f64::consts::SQRT_2
            };
            contract(
                &c_values[a * ps_in..(a + 1) * ps_in],
                &c_values[b * ps_in..(b + 1) * ps_in],
                &mut values[p * block..(p + 1) * block],
                s,
            );
        }
        // derivative rows: d(x·y) = dx·y + x·dy
        let derive = |dc: &[f64], out: &mut [f64], only: Option<usize>| {
            for (p, &(a, b)) in pairs.iter().enumerate() {
                if let Some(sj) = only {
                    if a != sj && b != sj {
                        continue;
                    }
                }
                let s = if a == b {
                    1.0
                } else {
                    std::f64::consts::SQRT_2
                };
                let o = &mut out[p * block..(p + 1) * block];
                let (ca, cb) = (
                    &c_values[a * ps_in..(a + 1) * ps_in],
                    &c_values[b * ps_in..(b + 1) * ps_in],
                );
                let (da, db) = (
                    &dc[a * ps_in..(a + 1) * ps_in],
                    &dc[b * ps_in..(b + 1) * ps_in],
                );
                if a == b {
                    // d(x·x) = dx·x + (dx·x)ᵀ in (n1, n2): one contraction, then symmetrise
                    contract(da, cb, o, s);
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
                    continue;
                }
                if only.is_none() || only == Some(a) {
                    contract(da, cb, o, s);
                }
                if only.is_none() || only == Some(b) {
                    contract(ca, db, o, s);
                }
            }
        };
        let grads = out.grads;
        let center_slot = ctx.grad_atoms.binary_search(&ctx.i).ok();
        if gradients.positions {
            for (slot, &j) in ctx.grad_atoms.iter().enumerate() {
                // for a neighbour j, only its species channel of dc is non-zero; the centre's
                // own row (all channels) is the negative sum of the others
                let only = if center_slot == Some(slot) {
                    None
                } else {
                    Some(species_index[j])
                };
                for a in 0..3 {
                    let dc = &c_grads[(slot * 3 + a) * nf_in..(slot * 3 + a + 1) * nf_in];
                    derive(
                        dc,
                        &mut grads[(slot * 3 + a) * nf..(slot * 3 + a + 1) * nf],
                        only,
                    );
                }
            }
        }
        let strain = out.strain;
        if gradients.strain {
            for ab in 0..9 {
                let dc = &c_strain[ab * nf_in..(ab + 1) * nf_in];
                derive(dc, &mut strain[ab * nf..(ab + 1) * nf], None);
            }
        }
    }
}

fn reset(v: &mut Vec<f64>, len: usize) {
    v.clear();
    v.resize(len, 0.0);
}
