//! The real-space (short-range) part shared by Ewald-type sums: Σ' q_j V_SR(|r_j − r_i + L|)
//! over a cell list, parallel over atoms (each atom visits its neighbours from its own side,
//! so no two threads write the same value).

use crate::error::Result;
use crate::kernel::RangeSplit;
use crate::longrange::Request;
use crate::math::linalg::{Mat3, Vec3};
use crate::neighbors::CellList;
use crate::system::System;
use rayon::prelude::*;

/// Short-range sums: energy, per-atom potentials, forces and ∂E/∂ε.
#[derive(Debug, Clone, Default)]
pub struct RealSpace {
    /// E_SR = ½ Σ_i q_i φ_i^SR.
    pub energy: f64,
    /// φ_i^SR (always computed: it is free).
    pub potentials: Vec<f64>,
    /// Forces, when requested (else empty).
    pub forces: Vec<Vec3>,
    /// ∂E_SR/∂ε, when requested (else zero).
    pub virial: Mat3,
}

/// Computes the real-space part of a range-split sum with pair cutoff `cutoff`.
pub fn real_space(
    system: &System,
    charges: &[f64],
    split: &RangeSplit,
    cutoff: f64,
    request: Request,
) -> Result<RealSpace> {
    let list = CellList::new(system, cutoff)?;
    let n = system.len();
    // visit atoms in spatial order (bins of about the cutoff) so that neighbouring atoms,
    // which share most neighbours, run on the same thread close in time
    let order: Vec<usize> = match system.cell() {
        Some(cell) => {
            let spacing = cell.plane_spacings();
            let nb: Vec<usize> = (0..3)
                .map(|a| ((spacing[a] / cutoff).floor() as usize).clamp(1, 1024))
                .collect();
            let mut keyed: Vec<(usize, usize)> = system
                .positions()
                .par_iter()
                .enumerate()
                .map(|(i, r)| {
                    let f = cell.to_fractional(r);
                    let b: Vec<usize> = (0..3)
                        .map(|a| (((f[a] - f[a].floor()) * nb[a] as f64) as usize).min(nb[a] - 1))
                        .collect();
                    (((b[0] * nb[1]) + b[1]) * nb[2] + b[2], i)
                })
                .collect();
            keyed.par_sort_unstable();
            keyed.into_iter().map(|(_, i)| i).collect()
        }
        None => (0..n).collect(),
    };
    let per_sorted: Vec<(f64, Vec3, Mat3)> = order
        .par_iter()
        .map(|&i| {
            let mut phi = 0.0;
            let mut f = [0.0; 3];
            let mut w = [[0.0; 3]; 3];
            let qi = charges[i];
            list.for_each_neighbor(i, |nb| {
                let qj = charges[nb.j];
                let (v, dv) = split.short_range(nb.distance);
                phi += qj * v;
                if request.forces || request.virial {
                    let c = qi * qj * dv / nb.distance;
                    if request.forces {
                        for a in 0..3 {
                            f[a] += c * nb.vector[a];
                        }
                    }
                    if request.virial {
                        for a in 0..3 {
                            for b in 0..3 {
                                w[a][b] += 0.5 * c * nb.vector[a] * nb.vector[b];
                            }
                        }
                    }
                }
            });
            (phi, f, w)
        })
        .collect();
    let mut out = RealSpace {
        potentials: vec![0.0; n],
        forces: if request.forces {
            vec![[0.0; 3]; n]
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    let mut per_atom = vec![(0.0, [0.0; 3], [[0.0; 3]; 3]); n];
    for (&i, v) in order.iter().zip(per_sorted) {
        per_atom[i] = v;
    }
    // sums in atom order, so that the result does not depend on the visiting order
    for (i, (phi, f, w)) in per_atom.into_iter().enumerate() {
        out.energy += 0.5 * charges[i] * phi;
        out.potentials[i] = phi;
        if request.forces {
            out.forces[i] = f;
        }
        for a in 0..3 {
            for b in 0..3 {
                out.virial[a][b] += w[a][b];
            }
        }
    }
    Ok(out)
}
