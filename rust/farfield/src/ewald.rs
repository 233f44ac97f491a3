//! Ewald summation of a 1/r^p kernel for periodic systems (docs/science.md §1.3-1.4).
//!
//! E = E_SR + E_LR + E_self + E_0 with
//!
//! * E_SR = ½ Σ_{i,j} Σ'_L q_i q_j V_SR(|r_j - r_i + L|) over pairs closer than `cutoff`
//!   (cell list, parallel over atoms with full neighbour loops: each atom's sums are sequential,
//!   so results do not depend on the thread count);
//! * E_LR = (1/V) Σ_{half k, |k| < k_cutoff} V̂_LR(k) |S(k)|² (parallel over k-vectors);
//! * E_self = -½ V_LR(0) Σ q_i²;
//! * E_0: neutralising background -c_bg Q²/V for p < 3, +V̂_LR(0) Q²/(2V) for p > 3, and an
//!   error ([`Error::Divergent`]) for p = 3 with a net charge.
//!
//! Potentials satisfy E = ½ Σ q_i φ_i; the virial is ∂E/∂ε (ASE stress = virial / V).

use crate::error::{Error, Result};
use crate::interrupt;
use crate::kernel::{Kernel, RangeSplit};
use crate::kspace::{cmul, structure_factors, KVectors, PhaseTables};
use crate::longrange::{LongRangeSum, Output, Request};
use crate::system::System;
use rayon::prelude::*;

/// The three numbers that fix an Ewald sum (all required, no defaults:
/// [`crate::tuning::tune_ewald`] chooses them for an accuracy).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EwaldParameters {
    /// Gaussian smearing σ (length, the standard deviation) of the range split.
    pub smearing: f64,
    /// Real-space cutoff r_c (length).
    pub cutoff: f64,
    /// Reciprocal-space cutoff k_c (inverse length; k-vectors with |k| < k_c are summed).
    pub k_cutoff: f64,
}

impl EwaldParameters {
    /// Checks that all three numbers are positive and finite.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("smearing", self.smearing),
            ("cutoff", self.cutoff),
            ("k_cutoff", self.k_cutoff),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(Error::parameter(
                    name,
                    format!("must be positive and finite, got {value}"),
                ));
            }
        }
        Ok(())
    }
}

/// Ewald summation of one kernel with fixed parameters.
#[derive(Debug, Clone)]
pub struct Ewald {
    split: RangeSplit,
    parameters: EwaldParameters,
}

impl Ewald {
    /// Creates the sum; the parameters must be positive and finite.
    pub fn new(kernel: Kernel, parameters: EwaldParameters) -> Result<Ewald> {
        parameters.validate()?;
        Ok(Ewald {
            split: kernel.split(parameters.smearing)?,
            parameters,
        })
    }

    /// The parameters in use.
    pub fn parameters(&self) -> EwaldParameters {
        self.parameters
    }

    /// The range split in use.
    pub fn split(&self) -> &RangeSplit {
        &self.split
    }
}

impl LongRangeSum for Ewald {
    fn compute(&self, system: &System, charges: &[f64], request: Request) -> Result<Output> {
        let cell = system.cell().ok_or_else(|| {
            Error::Unsupported(
                "Ewald summation needs a periodic system (a cell); use the direct sum for open systems"
                    .into(),
            )
        })?;
        crate::system::check_per_atom("charges", charges.len(), system)?;
        crate::longrange::check_charges(charges)?;
        let n = system.len();
        let total: f64 = charges.iter().sum();
        let q2: f64 = charges.iter().map(|q| q * q).sum();
        self.split.kernel().check_net_charge(
            total,
            q2.sqrt()
                .max(charges.iter().fold(0.0, |m, q| m.max(q.abs()))),
        )?;
        crate::tuning::check_ewald_work(system, self.parameters)?;
        let volume = cell.volume();
        let split = &self.split;
        let need_atoms = request.forces || request.potentials;

        // real space
        // (the tabulated half-pair sum that PME uses too: docs in crate::realspace)
        let real =
            crate::realspace::real_space(system, charges, split, self.parameters.cutoff, request)?;

        // reciprocal space
        let kvectors = KVectors::half_space(cell, self.parameters.k_cutoff)?;
        let tables = PhaseTables::new(cell, system.positions(), kvectors.max_index);
        interrupt::check()?;
        let sk = structure_factors(&kvectors, &tables, charges);
        interrupt::check()?;
        let fourier: Vec<(f64, f64)> = kvectors
            .norms2
            .par_iter()
            .map(|&k2| split.fourier(k2))
            .collect();
        let mut e_lr = 0.0;
        for (s, f) in sk.iter().zip(&fourier) {
            e_lr += f.0 * (s.0 * s.0 + s.1 * s.1);
        }
        e_lr /= volume;

        // per-atom reciprocal-space potentials and forces: parallel over chunks of atoms, each
        // atom's sum over k sequential
        let mut phi_lr = vec![0.0; n];
        let mut force_lr = vec![[0.0; 3]; n];
        if need_atoms && !kvectors.is_empty() {
            const CHUNK: usize = 64;
            phi_lr
                .par_chunks_mut(CHUNK)
                .zip(force_lr.par_chunks_mut(CHUNK))
                .enumerate()
                .for_each(|(c, (phi, force))| {
                    let start = c * CHUNK;
                    let len = phi.len();
                    let mut tc = vec![0.0; len];
                    let mut ts = vec![0.0; len];
                    for group in &kvectors.groups {
                        if interrupt::is_requested() {
                            return;
                        }
                        tables.partial_phases(
                            (group.m0, group.m1),
                            start..start + len,
                            (&mut tc, &mut ts),
                        );
                        for idx in group.range.clone() {
                            let (c2, s2) = tables.axis(2, kvectors.indices[idx][2]);
                            let (sre, sim) = sk[idx];
                            let vhat = fourier[idx].0;
                            let k = kvectors.vectors[idx];
                            for j in 0..len {
                                let g = start + j;
                                let (c, s) = cmul((tc[j], ts[j]), (c2[g], s2[g]));
                                // Re[e^{-ik·r} S] and Im[e^{ik·r} S*]
                                phi[j] += vhat * (c * sre + s * sim);
                                let im = vhat * (s * sre - c * sim);
                                force[j][0] += im * k[0];
                                force[j][1] += im * k[1];
                                force[j][2] += im * k[2];
                            }
                        }
                    }
                    for j in 0..len {
                        phi[j] *= 2.0 / volume;
                        let f = 2.0 * charges[start + j] / volume;
                        for a in 0..3 {
                            force[j][a] *= f;
                        }
                    }
                });
            interrupt::check()?;
        }

        let self_pot = split.self_potential();
        let k0_pot = split.k0_potential(total, volume);
        let mut potentials = vec![0.0; n];
        for i in 0..n {
            potentials[i] = real.potentials[i] + phi_lr[i] - charges[i] * self_pot + k0_pot;
        }
        let e_sr = real.energy;
        let e_self = -0.5 * self_pot * q2;
        let e_0 = split.k0_energy(total, volume);
        let energy = e_sr + e_lr + e_self + e_0;

        let forces = if request.forces {
            Some(
                (0..n)
                    .map(|i| {
                        [
                            real.forces[i][0] + force_lr[i][0],
                            real.forces[i][1] + force_lr[i][1],
                            real.forces[i][2] + force_lr[i][2],
                        ]
                    })
                    .collect(),
            )
        } else {
            None
        };

        let virial = if request.virial {
            let mut w = real.virial;
            // reciprocal: -(1/V) Σ_half |S|² [V̂ δ + 2 dV̂/dk² k k]
            let mut wk = [[0.0; 3]; 3];
            for idx in 0..kvectors.len() {
                if idx % 65536 == 0 {
                    interrupt::check()?;
                }
                let (sre, sim) = sk[idx];
                let s2 = sre * sre + sim * sim;
                let (v, dv) = fourier[idx];
                let k = kvectors.vectors[idx];
                for a in 0..3 {
                    wk[a][a] -= s2 * v;
                    for b in 0..3 {
                        wk[a][b] -= 2.0 * s2 * dv * k[a] * k[b];
                    }
                }
            }
            for a in 0..3 {
                for b in 0..3 {
                    w[a][b] += wk[a][b] / volume;
                }
                w[a][a] -= e_0;
            }
            Some(w)
        } else {
            None
        };

        Ok(Output {
            energy,
            potentials: if request.potentials {
                Some(potentials)
            } else {
                None
            },
            forces,
            virial,
        })
    }
}

#[cfg(test)]
mod tests;
