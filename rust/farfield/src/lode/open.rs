//! Non-periodic LODE: the exact real-space projection of science.md §2.5 (no box, no images).
//!
//! c_{i,a,nlm} = Σ_{j∈a, j≠i} Y_lm(d̂_ij) I_nl(d_ij) + w δ_{a,t(i)} δ_{l0} C_n, d_ij = r_j − r_i,
//! with I_nl(r) = (2/π) ∫_0^∞ k² ĝ_p(k) I_nl(k) j_l(kr) dk (the Fourier form of the double
//! real-space integral of §2.5), evaluated by quadrature for every pair.

use super::radial::{composite_rule, spherical_bessel};
use super::{GradientRequest, LodeBackward, LodeExpansion, LodeOutput};
use crate::error::Result;
use crate::system::System;
use rayon::prelude::*;
use std::f64::consts::PI;

/// Tabulated k-integrand: nodes k_q, weights (2/π) k² ĝ(k) w_q, I_nl(k_q).
struct KGrid {
    k: Vec<f64>,
    wg: Vec<f64>,
    /// ints[q][l*nr + n]
    ints: Vec<Vec<f64>>,
    center: Vec<f64>,
    nr: usize,
    lmax: usize,
}

fn kgrid(calc: &LodeExpansion, r_max: f64) -> Result<KGrid> {
    let params = calc.parameters();
    let sigma = params.smearing;
    let p = params.exponent;
    let density = calc.density();
    // ĝ decays as e^{-k²σ²/2} × polynomial
    let k_max = (2.0 * 42.0f64).sqrt() / sigma + 2.0 * (p.max(1.0)).sqrt() / sigma;
    let basis = calc.basis(k_max)?;
    let reach = (r_max + basis.extent).max(sigma);
    let h = (PI / reach).min(1.0 / sigma);
    // substitution k = k_max u^m to make k^{p-1} smooth for non-integer p
    let is_int = (p - p.round()).abs() < 1e-12;
    let m = if is_int || p == 0.0 {
        1.0
    } else {
        (4.0 / p).ceil().max(2.0)
    };
    let panels_h = h / k_max / if m > 1.0 { m } else { 1.0 };
    let (u, wu) = composite_rule(0.0, 1.0, panels_h, 24);
    let lmax = params.max_angular;
    let nr = params.max_radial + 1;
    let data: Vec<(f64, f64, Vec<f64>)> = u
        .par_iter()
        .zip(wu.par_iter())
        .map(|(&u, &wu)| {
            let k = k_max * u.powf(m);
            let dk = k_max * m * u.powf(m - 1.0) * wu;
            let (g, _) = density.fourier(k);
            let mut ints = vec![0.0; (lmax + 1) * nr];
            basis.kspace_integrals(k, &mut ints, None);
            (k, 2.0 / PI * k * k * g * dk, ints)
        })
        .collect();
    let center = basis.project_l0(|r| density.real(r));
    let mut out = KGrid {
        k: Vec::new(),
        wg: Vec::new(),
        ints: Vec::new(),
        center,
        nr,
        lmax,
    };
    for (k, w, i) in data {
        out.k.push(k);
        out.wg.push(w);
        out.ints.push(i);
    }
    Ok(out)
}

impl KGrid {
    /// I_nl(r) and dI_nl/dr, indexed [l*nr + n].
    fn pair(&self, r: f64, val: &mut [f64], der: &mut [f64]) {
        let lmax = self.lmax;
        let nr = self.nr;
        val.iter_mut().for_each(|x| *x = 0.0);
        der.iter_mut().for_each(|x| *x = 0.0);
        let mut j = vec![0.0; lmax + 2];
        for q in 0..self.k.len() {
            let k = self.k[q];
            let x = k * r;
            spherical_bessel(lmax + 1, x, &mut j);
            let w = self.wg[q];
            let ints = &self.ints[q];
            for l in 0..=lmax {
                let dj = if x > 1e-8 {
                    (l as f64 / x * j[l] - j[l + 1]) * k
                } else if l == 1 {
                    k / 3.0
                } else {
                    0.0
                };
                for n in 0..nr {
                    val[l * nr + n] += w * j[l] * ints[l * nr + n];
                    der[l * nr + n] += w * dj * ints[l * nr + n];
                }
            }
        }
    }
}

/// Y_lm(d̂) I_nl(d) (F) and its gradient with respect to d (3, F).
fn pair_features(grid: &KGrid, d: [f64; 3], with_grad: bool) -> (Vec<f64>, Vec<f64>) {
    let lmax = grid.lmax;
    let nr = grid.nr;
    let nlm = (lmax + 1) * (lmax + 1);
    let f = nlm * nr;
    let r = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
    let mut val = vec![0.0; (lmax + 1) * nr];
    let mut der = vec![0.0; (lmax + 1) * nr];
    grid.pair(r, &mut val, &mut der);
    let mut y = vec![0.0; nlm];
    let mut gy = [vec![0.0; nlm], vec![0.0; nlm], vec![0.0; nlm]];
    super::sph::real_sph(
        d,
        lmax,
        &mut y,
        if with_grad { Some(&mut gy) } else { None },
    );
    let mut out = vec![0.0; f];
    let mut grad = if with_grad {
        vec![0.0; 3 * f]
    } else {
        Vec::new()
    };
    for l in 0..=lmax {
        for lm in l * l..(l + 1) * (l + 1) {
            for n in 0..nr {
                let i = val[l * nr + n];
                out[lm * nr + n] = y[lm] * i;
                if with_grad {
                    for a in 0..3 {
                        grad[a * f + lm * nr + n] =
                            gy[a][lm] * i + y[lm] * der[l * nr + n] * d[a] / r;
                    }
                }
            }
        }
    }
    (out, grad)
}

fn max_distance(system: &System) -> f64 {
    let pos = system.positions();
    let mut m: f64 = 0.0;
    for i in 0..pos.len() {
        for j in (i + 1)..pos.len() {
            let d = [
                pos[j][0] - pos[i][0],
                pos[j][1] - pos[i][1],
                pos[j][2] - pos[i][2],
            ];
            m = m.max((d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt());
        }
    }
    m
}

/// Values and dense gradients of a finite system.
pub fn compute(
    calc: &LodeExpansion,
    system: &System,
    species: &[i32],
    types: &[usize],
    req: GradientRequest,
) -> Result<LodeOutput> {
    let grid = kgrid(calc, max_distance(system))?;
    let n = system.len();
    let na = species.len();
    let nr = grid.nr;
    let f = (grid.lmax + 1) * (grid.lmax + 1) * nr;
    let pos = system.positions();
    let wgt = calc.parameters().center_atom_weight;
    let want_grad = req.positions || req.strain;
    type Row = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);
    let rows: Vec<Row> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut acc = vec![0.0; na * f];
            let mut pair = if req.positions {
                vec![0.0; n * 3 * f]
            } else {
                Vec::new()
            };
            let mut selfg = if req.positions {
                vec![0.0; 3 * na * f]
            } else {
                Vec::new()
            };
            let mut strain = if req.strain {
                vec![0.0; 9 * na * f]
            } else {
                Vec::new()
            };
            for j in 0..n {
                if j == i {
                    continue;
                }
                let d = [
                    pos[j][0] - pos[i][0],
                    pos[j][1] - pos[i][1],
                    pos[j][2] - pos[i][2],
                ];
                let (v, g) = pair_features(&grid, d, want_grad);
                let a = types[j];
                for x in 0..f {
                    acc[a * f + x] += v[x];
                }
                if req.positions {
                    for al in 0..3 {
                        for x in 0..f {
                            pair[(j * 3 + al) * f + x] = g[al * f + x];
                            selfg[(al * na + a) * f + x] -= g[al * f + x];
                        }
                    }
                }
                if req.strain {
                    for al in 0..3 {
                        for be in 0..3 {
                            for x in 0..f {
                                strain[((al * 3 + be) * na + a) * f + x] += g[al * f + x] * d[be];
                            }
                        }
                    }
                }
            }
            for x in 0..nr {
                acc[types[i] * f + x] += wgt * grid.center[x];
            }
            (acc, pair, selfg, strain)
        })
        .collect();
    let mut values = Vec::with_capacity(n * na * f);
    let mut pair = Vec::new();
    let mut selfg = Vec::new();
    let mut strain = Vec::new();
    for (a, b, c, d) in rows {
        values.extend_from_slice(&a);
        pair.extend_from_slice(&b);
        selfg.extend_from_slice(&c);
        strain.extend_from_slice(&d);
    }
    Ok(LodeOutput {
        n_atoms: n,
        species: species.to_vec(),
        values,
        pair_gradients: req.positions.then_some(pair),
        self_gradients: req.positions.then_some(selfg),
        strain_gradients: req.strain.then_some(strain),
    })
}

/// Vector-Jacobian product for a finite system.
pub fn backward(
    calc: &LodeExpansion,
    system: &System,
    species: &[i32],
    types: &[usize],
    g: &[f64],
) -> Result<LodeBackward> {
    let grid = kgrid(calc, max_distance(system))?;
    let n = system.len();
    let na = species.len();
    let f = (grid.lmax + 1) * (grid.lmax + 1) * grid.nr;
    let pos = system.positions();
    // each unordered pair once: contributes to centre i (species t(j)) and centre j (t(i))
    let (forces, strain) = (0..n)
        .into_par_iter()
        .fold(
            || (vec![[0.0; 3]; n], [[0.0; 3]; 3]),
            |(mut fr, mut st), i| {
                for j in 0..n {
                    if j == i {
                        continue;
                    }
                    let d = [
                        pos[j][0] - pos[i][0],
                        pos[j][1] - pos[i][1],
                        pos[j][2] - pos[i][2],
                    ];
                    let (_, gr) = pair_features(&grid, d, true);
                    let gi = &g[(i * na + types[j]) * f..(i * na + types[j] + 1) * f];
                    for al in 0..3 {
                        let mut s = 0.0;
                        for x in 0..f {
                            s += gi[x] * gr[al * f + x];
                        }
                        fr[j][al] += s;
                        fr[i][al] -= s;
                        for be in 0..3 {
                            st[al][be] += s * d[be];
                        }
                    }
                }
                (fr, st)
            },
        )
        .reduce(
            || (vec![[0.0; 3]; n], [[0.0; 3]; 3]),
            |(mut fa, mut sa), (fb, sb)| {
                for i in 0..n {
                    for al in 0..3 {
                        fa[i][al] += fb[i][al];
                    }
                }
                for a in 0..3 {
                    for b in 0..3 {
                        sa[a][b] += sb[a][b];
                    }
                }
                (fa, sa)
            },
        );
    Ok(LodeBackward {
        positions: forces,
        strain,
    })
}
