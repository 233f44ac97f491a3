//! The one strain convention of the library, and the cell gradient derived from it.
//!
//! A homogeneous strain ε acts on **column vectors**: every position moves as
//! `r → (1 + ε) r` and every cell vector with it, so the cell matrix `H` (rows = cell vectors)
//! becomes `H (1 + ε)ᵀ`. A strain derivative is stored as `[α][β] = ∂/∂ε_αβ`, which for a
//! function of the positions alone is `Σ_j ∂/∂r_jα r_jβ`. For an energy, the virial is
//! `∂E/∂ε` and the stress `(1/V) ∂E/∂ε`. Forward strain gradients and the `strain` of every
//! backward pass (SOAP, LODE, QEq) use this convention.
//!
//! The **cell gradient** `∂/∂H[a][b]` (Cartesian positions held fixed; featomic's `"cell"`)
//! follows from the strain and position derivatives: with `G = ∂L/∂H`,
//! `∂L/∂ε = Σ_j ∂L/∂r_j ⊗ r_j + Gᵀ H`, hence
//!
//! `∂L/∂H = H⁻ᵀ (∂L/∂ε − Σ_j ∂L/∂r_j ⊗ r_j)ᵀ`.
//!
//! [`cell_gradient`] applies it to one (3, 3) derivative (a backward pass) and
//! [`cell_gradients`] to many at once (dense gradients of many features).

use crate::math::linalg::{Mat3, Vec3};
use crate::system::Cell;

/// `Σ_j g_j ⊗ r_j`: `[α][β] = Σ_j g_jα r_jβ` (the strain derivative of a function of the
/// positions alone, given its position derivatives `g_j`).
pub fn position_moment(positions: &[Vec3], gradient: &[Vec3]) -> Mat3 {
    let mut m = [[0.0; 3]; 3];
    for (r, g) in positions.iter().zip(gradient) {
        for a in 0..3 {
            for b in 0..3 {
                m[a][b] += g[a] * r[b];
            }
        }
    }
    m
}

/// `∂L/∂H = H⁻ᵀ (∂L/∂ε − M)ᵀ` at fixed Cartesian positions, from `strain = ∂L/∂ε` (ε on
/// column vectors) and `moment = M = Σ_j ∂L/∂r_j ⊗ r_j` ([`position_moment`]).
pub fn cell_gradient(cell: &Cell, strain: &Mat3, moment: &Mat3) -> Mat3 {
    let inverse = cell.inverse();
    let mut out = [[0.0; 3]; 3];
    for a in 0..3 {
        for b in 0..3 {
            // Σ_β H⁻¹[β][a] (S − M)[b][β]
            out[a][b] = (0..3)
                .map(|k| inverse[k][a] * (strain[b][k] - moment[b][k]))
                .sum();
        }
    }
    out
}

/// [`cell_gradient`] for `n` quantities at once: `strain` and `moment` are `[αβ][n]`
/// (row-major, 9 × n), and so is the result.
pub fn cell_gradients(cell: &Cell, strain: &[f64], moment: &[f64], n: usize) -> Vec<f64> {
    debug_assert_eq!(strain.len(), 9 * n);
    debug_assert_eq!(moment.len(), 9 * n);
    let inverse = cell.inverse();
    let mut out = vec![0.0; 9 * n];
    for a in 0..3 {
        for b in 0..3 {
            let dst = &mut out[(3 * a + b) * n..(3 * a + b + 1) * n];
            for k in 0..3 {
                let h = inverse[k][a];
                let s = &strain[(3 * b + k) * n..(3 * b + k + 1) * n];
                let m = &moment[(3 * b + k) * n..(3 * b + k + 1) * n];
                for ((d, s), m) in dst.iter_mut().zip(s).zip(m) {
                    *d += h * (s - m);
                }
            }
        }
    }
    out
}

/// The cell gradient of a backward pass: `None` for open systems.
pub fn backward_cell(
    cell: Option<&Cell>,
    positions: &[Vec3],
    dpositions: &[Vec3],
    dstrain: &Mat3,
) -> Option<Mat3> {
    cell.map(|c| cell_gradient(c, dstrain, &position_moment(positions, dpositions)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth function of positions and cell: L = Σ_j w_j · (r_j · a_j) + Σ_j |H r_j|² +
    /// tr(B H), whose derivatives are known in closed form.
    fn loss(positions: &[Vec3], h: &Mat3) -> f64 {
        let w = [0.3, -1.2, 0.7];
        let mut l = 0.0;
        for (j, r) in positions.iter().enumerate() {
            l += w[j] * (r[0] + 2.0 * r[1] - r[2]);
            for a in 0..3 {
                let hr: f64 = (0..3).map(|k| h[a][k] * r[k]).sum();
                l += 0.1 * hr * hr;
            }
        }
        let b = [[0.2, -0.1, 0.4], [0.9, 0.3, -0.5], [0.1, 0.6, 0.2]];
        for a in 0..3 {
            for k in 0..3 {
                l += b[k][a] * h[a][k];
            }
        }
        l
    }

    #[test]
    fn cell_gradient_matches_finite_differences() {
        let h = [[3.1, 0.2, -0.3], [0.5, 2.7, 0.1], [-0.4, 0.6, 3.3]];
        let cell = Cell::new(h).unwrap();
        let positions = vec![[0.1, 0.5, -0.2], [1.3, -0.7, 0.4], [0.8, 0.9, 1.7]];
        let eps = 1e-6;
        // position derivatives and strain derivative (r → (1+ε) r, H → H (1+ε)ᵀ) by finite
        // differences; the cell derivative at fixed positions by finite differences too
        let mut dpos = vec![[0.0; 3]; 3];
        for j in 0..3 {
            for a in 0..3 {
                let mut p = positions.clone();
                let mut m = positions.clone();
                p[j][a] += eps;
                m[j][a] -= eps;
                dpos[j][a] = (loss(&p, &h) - loss(&m, &h)) / (2.0 * eps);
            }
        }
        let strained = |a: usize, b: usize, s: f64| {
            let mut e = [[0.0; 3]; 3];
            e[a][b] = s;
            let pos: Vec<Vec3> = positions
                .iter()
                .map(|r| {
                    let mut o = *r;
                    for x in 0..3 {
                        for y in 0..3 {
                            o[x] += e[x][y] * r[y];
                        }
                    }
                    o
                })
                .collect();
            let mut hh = h;
            for k in 0..3 {
                for x in 0..3 {
                    hh[k][x] += (0..3).map(|y| h[k][y] * e[x][y]).sum::<f64>();
                }
            }
            loss(&pos, &hh)
        };
        let mut dstrain = [[0.0; 3]; 3];
        let mut dcell = [[0.0; 3]; 3];
        for a in 0..3 {
            for b in 0..3 {
                dstrain[a][b] = (strained(a, b, eps) - strained(a, b, -eps)) / (2.0 * eps);
                let (mut hp, mut hm) = (h, h);
                hp[a][b] += eps;
                hm[a][b] -= eps;
                dcell[a][b] = (loss(&positions, &hp) - loss(&positions, &hm)) / (2.0 * eps);
            }
        }
        let got = backward_cell(Some(&cell), &positions, &dpos, &dstrain).unwrap();
        let flat_s: Vec<f64> = dstrain.iter().flatten().copied().collect();
        let moment = position_moment(&positions, &dpos);
        let flat_m: Vec<f64> = moment.iter().flatten().copied().collect();
        let many = cell_gradients(&cell, &flat_s, &flat_m, 1);
        for a in 0..3 {
            for b in 0..3 {
                assert!((got[a][b] - dcell[a][b]).abs() < 1e-7, "{a} {b}");
                assert!((many[3 * a + b] - got[a][b]).abs() < 1e-14);
            }
        }
        assert!(backward_cell(None, &positions, &dpos, &dstrain).is_none());
    }
}
