//! Direct O(N²) summation of a 1/r^p kernel for open systems (docs/science.md §1.5).
//!
//! E = ½ Σ_{i≠j} q_i q_j / r_ij^p, φ_i = Σ_{j≠i} q_j / r_ij^p, analytic forces. Parallel over
//! blocks of centres; the partners are visited in tiles that stay in cache; each atom's sum is
//! sequential, so results do not depend on the thread count.
//!
//! The "virial" returned for an open system is the pair virial ∂E/∂ε for a homogeneous
//! scaling of all positions, Σ_{i<j} q_i q_j v'(r_ij) r_ij ⊗ r_ij / r_ij. There is no volume,
//! hence no stress; the Python layer reports `stress = None` for open systems.

use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::longrange::{LongRangeSum, Output, Request};
use crate::math::linalg::{Mat3, Vec3};
use crate::system::System;
use rayon::prelude::*;

/// Direct pair summation over all pairs of an open system.
#[derive(Debug, Clone, Copy)]
pub struct Direct {
    kernel: Kernel,
}

impl Direct {
    /// Creates the direct sum of `kernel`.
    pub fn new(kernel: Kernel) -> Direct {
        Direct { kernel }
    }
}

const TILE: usize = 512;

impl LongRangeSum for Direct {
    fn compute(&self, system: &System, charges: &[f64], request: Request) -> Result<Output> {
        if system.is_periodic() {
            return Err(Error::Unsupported(
                "the direct sum is for open systems; use Ewald for periodic ones".into(),
            ));
        }
        crate::system::check_per_atom("charges", charges.len(), system)?;
        crate::longrange::check_charges(charges)?;
        let n = system.len();
        crate::limits::check_terms(
            "the direct sum over all pairs of an open system (pair terms)",
            n as f64 * n as f64,
            "use fewer atoms, or a periodic cell with Ewald or PME",
        )?;
        let pos = system.positions();
        // structure of arrays for the inner loop
        let xs: Vec<f64> = pos.iter().map(|r| r[0]).collect();
        let ys: Vec<f64> = pos.iter().map(|r| r[1]).collect();
        let zs: Vec<f64> = pos.iter().map(|r| r[2]).collect();
        let p = self.kernel.exponent();
        let coulomb = self.kernel.integer_exponent() == Some(1);
        let want_f = request.forces || request.virial;
        let per_atom: Vec<(f64, Vec3, Mat3)> = (0..n)
            .into_par_iter()
            .with_min_len(16)
            .map(|i| {
                let (xi, yi, zi) = (xs[i], ys[i], zs[i]);
                let mut phi = 0.0;
                let mut g = [0.0; 3];
                let mut w = [[0.0; 3]; 3];
                let mut start = 0;
                while start < n {
                    if crate::interrupt::is_requested() {
                        break;
                    }
                    let end = (start + TILE).min(n);
                    for j in start..end {
                        if j == i {
                            continue;
                        }
                        let d = [xs[j] - xi, ys[j] - yi, zs[j] - zi];
                        let r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
                        let (v, dv_over_r) = if coulomb {
                            let inv = 1.0 / r2.sqrt();
                            (inv, -inv * inv * inv)
                        } else {
                            let v = r2.powf(-0.5 * p);
                            (v, -p * v / r2)
                        };
                        phi += charges[j] * v;
                        if want_f {
                            let f = charges[j] * dv_over_r;
                            for a in 0..3 {
                                g[a] += f * d[a];
                            }
                            if request.virial {
                                for a in 0..3 {
                                    for b in 0..3 {
                                        w[a][b] += 0.5 * f * d[a] * d[b];
                                    }
                                }
                            }
                        }
                    }
                    start = end;
                }
                let qi = charges[i];
                for a in 0..3 {
                    g[a] *= qi;
                    for b in 0..3 {
                        w[a][b] *= qi;
                    }
                }
                (phi, g, w)
            })
            .collect();
        crate::interrupt::check()?;
        let mut energy = 0.0;
        let mut virial = [[0.0; 3]; 3];
        for (i, atom) in per_atom.iter().enumerate() {
            energy += 0.5 * charges[i] * atom.0;
            for a in 0..3 {
                for b in 0..3 {
                    virial[a][b] += atom.2[a][b];
                }
            }
        }
        Ok(Output {
            energy,
            potentials: request
                .potentials
                .then(|| per_atom.iter().map(|a| a.0).collect()),
            forces: request
                .forces
                .then(|| per_atom.iter().map(|a| a.1).collect()),
            virial: request.virial.then_some(virial),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_charges() {
        let system = System::new(vec![[0.0; 3], [0.0, 0.0, 2.0]], vec![1, 1], None).unwrap();
        for p in [1.0, 2.5, 6.0] {
            let out = Direct::new(Kernel::new(p).unwrap())
                .compute(&system, &[1.5, -0.5], Request::all())
                .unwrap();
            let e = -0.75 / 2f64.powf(p);
            assert!((out.energy - e).abs() < 1e-14);
            let f = out.forces.unwrap();
            // F_0,z = -dE/dz_0 = dE/dr = -p E / r (attractive pulls atom 0 towards +z)
            assert!((f[0][2] - (-p * e / 2.0)).abs() < 1e-14);
            assert!((f[1][2] + f[0][2]).abs() < 1e-14);
            let phi = out.potentials.unwrap();
            assert!((phi[0] - (-0.5 / 2f64.powf(p))).abs() < 1e-14);
            // pair virial: v'(r) r = -p E
            assert!((out.virial.unwrap()[2][2] - (-p * e)).abs() < 1e-14);
        }
    }
}
