//! Non-periodic LODE: the exact real-space projection of docs/science.md §2.5 (no box, no images).
//!
//! c_{i,a,nlm} = Σ_{j∈a, j≠i} Y_lm(d̂_ij) I_nl(d_ij) + w δ_{a,t(i)} δ_{l0} C_n, d_ij = r_j − r_i,
//! with I_nl(r) = (2/π) ∫_0^∞ k² ĝ_p(k) I_nl(k) j_l(kr) dk (the Fourier form of the double
//! real-space integral of §2.5), evaluated by quadrature for every pair.

use super::{GradientRequest, LodeBackward, LodeExpansion, LodeOutput};
use crate::basis::tabulated::KSpline;
use crate::error::{Error, Result};
use crate::interrupt;
use crate::math::bessel::spherical_jn_all;
use crate::math::quadrature::composite_gauss_legendre;
use crate::system::System;
use rayon::prelude::*;
use std::f64::consts::PI;

/// Below this k·σ the k-integrand uses ĝ's small-k power law (see [`kgrid_with`]).
const K_SMALL: f64 = 1e-30;

/// Largest number of quadrature panels in k (`composite_gauss_legendre` clamps there).
const MAX_PANELS: usize = 100_000;

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

/// Hint of the open-path refusals.
const OPEN_HINT: &str = "the open-system LODE integrates over wave numbers up to ~9/smearing \
    with a spacing of π/(largest interatomic distance + basis radius), so its cost grows with \
    the extent of the system and the basis radius: use a more compact system, a smaller \
    radius, a larger smearing, a periodic cell, or fewer atoms";

/// Values of the k-grid built for a system of `n` atoms and largest distance `r_max`, after
/// checking the cost of the grid and of the pair sums (`pair_passes` passes over the pairs).
fn kgrid(calc: &LodeExpansion, r_max: f64, n: usize, pair_passes: f64) -> Result<KGrid> {
    kgrid_with(calc, r_max, n, pair_passes, None)
}

/// As [`kgrid`]; `spline` forces (or forbids) the spline of the basis integrals.
fn kgrid_with(
    calc: &LodeExpansion,
    r_max: f64,
    n: usize,
    pair_passes: f64,
    spline: Option<bool>,
) -> Result<KGrid> {
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
    let lmax = params.max_angular;
    let nr = params.max_radial + 1;
    // cost before work: the quadrature in k (its nodes grow with the extent of the system),
    // the basis integrals at every node, and the pair sums over the nodes
    let panels = (1.0 / panels_h).ceil();
    let nodes = 24.0 * panels;
    let nrad = ((lmax + 1) * nr) as f64;
    let n = n as f64;
    // the basis integrals I_nl(k) at every node: by quadrature over the basis nodes, or,
    // when the nodes are many (extended systems), from the quintic spline of
    // [`KSpline`] (1e-13 accurate) whose knots do not depend on the extent
    let spline_h = (k_max / 64.0).min(0.05 / params.radius);
    let knots = KSpline::intervals(k_max, spline_h) as f64 + 1.0;
    let use_spline = spline.unwrap_or(nodes > 8.0 * knots);
    let per_node = if use_spline {
        6.0 * nrad
    } else {
        basis.nodes.len() as f64 * (nrad + lmax as f64 + 2.0)
    };
    let mut terms =
        nodes * per_node + pair_passes * n * (n - 1.0) * nodes * (2.0 * nrad + lmax as f64 + 2.0);
    if use_spline {
        terms += KSpline::cost(&basis, k_max, spline_h);
    }
    crate::limits::check_terms(
        &format!(
            "the open-system LODE ({nodes:.3e} wave-number quadrature nodes for a largest \
             interatomic distance of {r_max:.4} Å, times the basis integrals and the atom pairs)"
        ),
        terms,
        OPEN_HINT,
    )?;
    if panels > MAX_PANELS as f64 {
        return Err(Error::parameter(
            "positions",
            format!(
                "the open-system LODE of a system of extent {r_max:.4} Å needs {panels:.3e} \
                 quadrature panels in k (at most {MAX_PANELS}); {OPEN_HINT}"
            ),
        ));
    }
    crate::limits::check_memory(
        "the open-system LODE wave-number tables",
        nodes * (nrad + 3.0) * 8.0,
        OPEN_HINT,
    )?;
    let spline = if use_spline {
        Some(KSpline::new(&basis, k_max, spline_h)?)
    } else {
        None
    };
    let (u, wu) = composite_gauss_legendre(0.0, 1.0, panels_h, 24);
    // Below K_SMALL/σ the weight k² ĝ(k) dk is formed from ĝ's leading term C k^{p-3}
    // (p < 3 there; reached only for p ≲ 1, where the substitution exponent m ≥ 4 makes
    // nodes as small as k_max u^m ~ 1e-300): k^{p-1} dk = k_max^p m u^{mp-1} du has no
    // overflow, while k² ĝ(k) would be 0 × ∞ (NaN features, found by the hypothesis harness).
    // The next term is relatively (kσ)^{3-p} ≤ 1e-60 smaller.
    let k_small = K_SMALL / sigma;
    let leading = if m > 1.0 && p < 3.0 {
        let (g0, _) = density.fourier(k_small);
        Some(g0 * k_small.powf(3.0 - p))
    } else {
        None
    };
    let data: Vec<(f64, f64, Vec<f64>)> = u
        .par_iter()
        .zip(wu.par_iter())
        .map(|(&u, &wu)| {
            if interrupt::is_requested() {
                return (0.0, 0.0, Vec::new());
            }
            let k = k_max * u.powf(m);
            let weight = match leading {
                Some(c) if k < k_small => c * k_max.powf(p) * m * u.powf(m * p - 1.0) * wu,
                _ => {
                    let dk = k_max * m * u.powf(m - 1.0) * wu;
                    let (g, _) = density.fourier(k);
                    k * k * g * dk
                }
            };
            let mut ints = vec![0.0; (lmax + 1) * nr];
            match &spline {
                Some(spline) => {
                    let mut dints = vec![0.0; (lmax + 1) * nr];
                    spline.eval(k.min(k_max), &mut ints, &mut dints);
                }
                None => basis.kspace_integrals(k, &mut ints, None),
            }
            (k, 2.0 / PI * weight, ints)
        })
        .collect();
    interrupt::check()?;
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
            spherical_jn_all(lmax + 1, x, &mut j);
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
    let n = system.len();
    let passes = if req.positions || req.strain {
        2.0
    } else {
        1.0
    };
    let grid = kgrid(calc, max_distance(system), n, passes)?;
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
            if interrupt::is_requested() {
                return Default::default();
            }
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
                if j == i || interrupt::is_requested() {
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
    interrupt::check()?;
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
        cell_gradients: None,
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
    let n = system.len();
    let grid = kgrid(calc, max_distance(system), n, 2.0)?;
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
                    if j == i || interrupt::is_requested() {
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
    interrupt::check()?;
    Ok(LodeBackward {
        positions: forces,
        strain,
        cell: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lode::{BasisKind, LodeParameters};

    /// The spline of the basis integrals (extended systems) agrees with the quadrature.
    #[test]
    fn spline_grid_matches_quadrature() {
        for (p, basis) in [(1.0, BasisKind::Gto), (2.5, BasisKind::Monomial)] {
            let calc = LodeExpansion::new(LodeParameters {
                exponent: p,
                smearing: 0.8,
                max_angular: 3,
                max_radial: 2,
                radius: 2.0,
                basis,
                k_cutoff: None,
                center_atom_weight: 1.0,
                drop_divergent_k0: false,
            })
            .unwrap();
            let exact = kgrid_with(&calc, 60.0, 2, 1.0, Some(false)).unwrap();
            let fast = kgrid_with(&calc, 60.0, 2, 1.0, Some(true)).unwrap();
            for d in [[0.7, 0.2, -0.3], [3.0, -1.0, 2.0], [40.0, 12.0, -25.0]] {
                let (a, ga) = pair_features(&exact, d, true);
                let (b, gb) = pair_features(&fast, d, true);
                let scale = a.iter().fold(0.0f64, |m, x| m.max(x.abs()));
                for (x, y) in a.iter().zip(&b).chain(ga.iter().zip(&gb)) {
                    assert!((x - y).abs() < 1e-10 * scale, "{p} {d:?}: {x} {y}");
                }
            }
        }
    }
}
