//! Periodic LODE: the exact k-space formula of science.md §2.3.
//!
//! c_{i,a,nlm} = Σ_{half k} W_k[lm n] · T_{a,l}(i, k) + δ_{l0} K0_n N_a − δ_{l0} δ_{a,t(i)} (1−w) C_n
//! with W_k = (8π/V) ĝ(k) s_l Y_lm(k̂) I_nl(k), T = Σ_{j∈a} cos(k·(r_i−r_j)) (even l) or
//! sin(k·(r_i−r_j)) (odd l).

use super::{parity_sign, GradientRequest, LodeBackward, LodeExpansion, LodeOutput};
use crate::error::{Error, Result};
use crate::math::linalg::Mat3;
use crate::system::System;
use rayon::prelude::*;
use std::f64::consts::PI;

/// Half-space k-vectors with 0 < |k| < k_cut (first non-zero Miller index positive).
/// TODO(merge ewald): use `kspace` once branch `ewald` lands.
pub fn half_kvectors(reciprocal: &Mat3, matrix: &Mat3, k_cut: f64) -> Vec<[f64; 3]> {
    let len = |v: &[f64; 3]| (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    let nmax: Vec<i64> = (0..3)
        .map(|i| (k_cut * len(&matrix[i]) / (2.0 * PI)).floor() as i64 + 1)
        .collect();
    let mut out = Vec::new();
    for m0 in 0..=nmax[0] {
        for m1 in -nmax[1]..=nmax[1] {
            for m2 in -nmax[2]..=nmax[2] {
                let first_positive = m0 > 0 || (m0 == 0 && (m1 > 0 || (m1 == 0 && m2 > 0)));
                if !first_positive {
                    continue;
                }
                let mut k = [0.0; 3];
                for a in 0..3 {
                    k[a] = m0 as f64 * reciprocal[0][a]
                        + m1 as f64 * reciprocal[1][a]
                        + m2 as f64 * reciprocal[2][a];
                }
                let kn = len(&k);
                if kn < k_cut && kn > 0.0 {
                    out.push(k);
                }
            }
        }
    }
    out
}

/// Everything that depends on the cell but not on the positions.
struct KTables {
    kvecs: Vec<[f64; 3]>,
    /// W[k][f]
    w: Vec<f64>,
    /// strain: D[k][α][β][f] = k_α ∂W_k[f]/∂k_β (only when requested)
    d: Option<Vec<f64>>,
    /// K0_n (already divided by V)
    k0: Vec<f64>,
    /// centre contribution C_n
    center: Vec<f64>,
    f: usize,
    nr: usize,
    lmax: usize,
}

fn tables(calc: &LodeExpansion, system: &System, strain: bool) -> Result<KTables> {
    let cell = system.cell().expect("periodic");
    let params = calc.parameters();
    let p = params.exponent;
    if (p - 3.0).abs() < 1e-12 && !params.drop_divergent_k0 {
        return Err(Error::Divergent(
            "exponent 3: the k = 0 term of every (charged) species channel diverges \
             logarithmically; pass drop_divergent_k0=True to drop it as featomic does"
                .into(),
        ));
    }
    let volume = cell.volume();
    let k_cut = calc.k_cutoff();
    let basis = calc.basis(k_cut)?;
    let kvecs = half_kvectors(&cell.reciprocal(), cell.matrix(), k_cut);
    let lmax = params.max_angular;
    let nr = params.max_radial + 1;
    let nlm = (lmax + 1) * (lmax + 1);
    let f = nlm * nr;
    let density = calc.density();
    let pref = 8.0 * PI / volume;
    let signs: Vec<f64> = (0..=lmax).map(parity_sign).collect();
    let per_k: Vec<(Vec<f64>, Option<Vec<f64>>)> = kvecs
        .par_iter()
        .map(|k| {
            let kn = (k[0] * k[0] + k[1] * k[1] + k[2] * k[2]).sqrt();
            let (g, dg) = density.fourier(kn);
            let mut y = vec![0.0; nlm];
            let mut gy = [vec![0.0; nlm], vec![0.0; nlm], vec![0.0; nlm]];
            let mut ints = vec![0.0; (lmax + 1) * nr];
            let mut dints = vec![0.0; (lmax + 1) * nr];
            if strain {
                super::sph::real_sph(*k, lmax, &mut y, Some(&mut gy));
                basis.kspace_integrals(kn, &mut ints, Some(&mut dints));
            } else {
                super::sph::real_sph(*k, lmax, &mut y, None);
                basis.kspace_integrals(kn, &mut ints, None);
            }
            let mut w = vec![0.0; f];
            let mut d = if strain { Some(vec![0.0; 9 * f]) } else { None };
            for l in 0..=lmax {
                for lm in l * l..(l + 1) * (l + 1) {
                    for n in 0..nr {
                        let i = ints[l * nr + n];
                        w[lm * nr + n] = pref * signs[l] * g * y[lm] * i;
                        if let Some(d) = d.as_mut() {
                            let radial = dg * i + g * dints[l * nr + n];
                            for b in 0..3 {
                                let dwb = pref
                                    * signs[l]
                                    * (radial * y[lm] * k[b] / kn + g * gy[b][lm] * i);
                                for a in 0..3 {
                                    d[(a * 3 + b) * f + lm * nr + n] = k[a] * dwb;
                                }
                            }
                        }
                    }
                }
            }
            (w, d)
        })
        .collect();
    let mut w = Vec::with_capacity(kvecs.len() * f);
    let mut d = if strain {
        Some(Vec::with_capacity(kvecs.len() * 9 * f))
    } else {
        None
    };
    for (wk, dk) in per_k {
        w.extend_from_slice(&wk);
        if let (Some(d), Some(dk)) = (d.as_mut(), dk) {
            d.extend_from_slice(&dk);
        }
    }
    let k0 = match density.fourier_at_zero() {
        Some(g0) if p == 0.0 || p > 3.0 => basis
            .project_l0(|_| 1.0)
            .into_iter()
            .map(|x| x * g0 / volume)
            .collect(),
        _ => vec![0.0; nr],
    };
    let center = basis.project_l0(|r| density.real(r));
    Ok(KTables {
        kvecs,
        w,
        d,
        k0,
        center,
        f,
        nr,
        lmax,
    })
}

#[inline]
fn dot(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Per-species Σ_j cos(k·r_j), Σ_j sin(k·r_j): (A, n_k) each.
fn structure_factors(
    kvecs: &[[f64; 3]],
    positions: &[[f64; 3]],
    types: &[usize],
    n_species: usize,
) -> (Vec<f64>, Vec<f64>) {
    let nk = kvecs.len();
    let per_k: Vec<(Vec<f64>, Vec<f64>)> = kvecs
        .par_iter()
        .map(|k| {
            let mut c = vec![0.0; n_species];
            let mut s = vec![0.0; n_species];
            for (r, &t) in positions.iter().zip(types) {
                let (si, co) = dot(k, r).sin_cos();
                c[t] += co;
                s[t] += si;
            }
            (c, s)
        })
        .collect();
    let mut cs = vec![0.0; n_species * nk];
    let mut ss = vec![0.0; n_species * nk];
    for (k, (c, s)) in per_k.into_iter().enumerate() {
        for a in 0..n_species {
            cs[a * nk + k] = c[a];
            ss[a * nk + k] = s[a];
        }
    }
    (cs, ss)
}

/// Values, dense position gradients and strain gradients.
pub fn compute(
    calc: &LodeExpansion,
    system: &System,
    species: &[i32],
    types: &[usize],
    req: GradientRequest,
) -> Result<LodeOutput> {
    let t = tables(calc, system, req.strain)?;
    let n = system.len();
    let na = species.len();
    let f = t.f;
    let nk = t.kvecs.len();
    let positions = system.positions();
    let (cs, ss) = structure_factors(&t.kvecs, positions, types, na);
    let mut counts = vec![0.0; na];
    for &ty in types {
        counts[ty] += 1.0;
    }
    let lmax = t.lmax;
    let nr = t.nr;
    let w_cent = 1.0 - calc.parameters().center_atom_weight;
    let l_range = |l: usize| (l * l * nr, (l + 1) * (l + 1) * nr);

    // values (without the centre subtraction) and strain gradients, per atom
    let per_atom: Vec<(Vec<f64>, Option<Vec<f64>>)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut acc = vec![0.0; na * f];
            let mut sacc = if req.strain {
                Some(vec![0.0; na * 9 * f])
            } else {
                None
            };
            let r = positions[i];
            for k in 0..nk {
                let (s, c) = dot(&t.kvecs[k], &r).sin_cos();
                let wk = &t.w[k * f..(k + 1) * f];
                for a in 0..na {
                    let ca = cs[a * nk + k];
                    let sa = ss[a * nk + k];
                    let ev = c * ca + s * sa;
                    let od = s * ca - c * sa;
                    let out = &mut acc[a * f..(a + 1) * f];
                    for l in 0..=lmax {
                        let coef = if l % 2 == 0 { ev } else { od };
                        let (lo, hi) = l_range(l);
                        for (o, x) in out[lo..hi].iter_mut().zip(&wk[lo..hi]) {
                            *o += coef * x;
                        }
                    }
                    if let (Some(sacc), Some(d)) = (sacc.as_mut(), t.d.as_ref()) {
                        let dk = &d[k * 9 * f..(k + 1) * 9 * f];
                        for ab in 0..9 {
                            let out = &mut sacc[(ab * na + a) * f..(ab * na + a + 1) * f];
                            let dd = &dk[ab * f..(ab + 1) * f];
                            for l in 0..=lmax {
                                let coef = if l % 2 == 0 { ev } else { od };
                                let (lo, hi) = l_range(l);
                                for (o, x) in out[lo..hi].iter_mut().zip(&dd[lo..hi]) {
                                    *o -= coef * x;
                                }
                            }
                        }
                    }
                }
            }
            for a in 0..na {
                for nn in 0..nr {
                    acc[a * f + nn] += t.k0[nn] * counts[a];
                }
            }
            if let Some(sacc) = sacc.as_mut() {
                for al in 0..3 {
                    let ab = al * 3 + al;
                    for x in 0..na * f {
                        sacc[ab * na * f + x] -= acc[x];
                    }
                }
            }
            for nn in 0..nr {
                acc[types[i] * f + nn] -= w_cent * t.center[nn];
            }
            (acc, sacc)
        })
        .collect();
    let mut values = Vec::with_capacity(n * na * f);
    let mut strain = if req.strain {
        Some(Vec::with_capacity(n * 9 * na * f))
    } else {
        None
    };
    for (v, s) in per_atom {
        values.extend_from_slice(&v);
        if let (Some(st), Some(s)) = (strain.as_mut(), s) {
            st.extend_from_slice(&s);
        }
    }

    let (pair, selfg) = if req.positions {
        // trig table (N, nk)
        let trig: Vec<(f64, f64)> = (0..n)
            .into_par_iter()
            .flat_map_iter(|j| {
                let r = positions[j];
                t.kvecs.iter().map(move |k| dot(k, &r).sin_cos())
            })
            .collect();
        // kw[k][α][f] = k_α W_k[f]
        let mut kw = vec![0.0; nk * 3 * f];
        for k in 0..nk {
            for al in 0..3 {
                for x in 0..f {
                    kw[(k * 3 + al) * f + x] = t.kvecs[k][al] * t.w[k * f + x];
                }
            }
        }
        let rows: Vec<(Vec<f64>, Vec<f64>)> = (0..n)
            .into_par_iter()
            .map(|i| {
                let mut row = vec![0.0; n * 3 * f];
                let mut selfrow = vec![0.0; 3 * na * f];
                let ti = &trig[i * nk..(i + 1) * nk];
                for j in 0..n {
                    if j == i {
                        continue;
                    }
                    let tj = &trig[j * nk..(j + 1) * nk];
                    let out = &mut row[j * 3 * f..(j + 1) * 3 * f];
                    for k in 0..nk {
                        let (si, ci) = ti[k];
                        let (sj, cj) = tj[k];
                        let sin_ij = si * cj - ci * sj;
                        let cos_ij = ci * cj + si * sj;
                        let kwk = &kw[k * 3 * f..(k + 1) * 3 * f];
                        for al in 0..3 {
                            let o = &mut out[al * f..(al + 1) * f];
                            let x = &kwk[al * f..(al + 1) * f];
                            for l in 0..=lmax {
                                let coef = if l % 2 == 0 { sin_ij } else { -cos_ij };
                                let (lo, hi) = l_range(l);
                                for (oo, xx) in o[lo..hi].iter_mut().zip(&x[lo..hi]) {
                                    *oo += coef * xx;
                                }
                            }
                        }
                    }
                    let a = types[j];
                    for al in 0..3 {
                        for x in 0..f {
                            selfrow[(al * na + a) * f + x] -= out[al * f + x];
                        }
                    }
                }
                (row, selfrow)
            })
            .collect();
        let mut pair = Vec::with_capacity(n * n * 3 * f);
        let mut selfg = Vec::with_capacity(n * 3 * na * f);
        for (r, s) in rows {
            pair.extend_from_slice(&r);
            selfg.extend_from_slice(&s);
        }
        (Some(pair), Some(selfg))
    } else {
        (None, None)
    };

    Ok(LodeOutput {
        n_atoms: n,
        species: species.to_vec(),
        values,
        pair_gradients: pair,
        self_gradients: selfg,
        strain_gradients: strain,
    })
}

/// Vector-Jacobian product: dL/dr and dL/dε from dL/dc, at about twice the cost of values.
pub fn backward(
    calc: &LodeExpansion,
    system: &System,
    species: &[i32],
    types: &[usize],
    g: &[f64],
) -> Result<LodeBackward> {
    let t = tables(calc, system, true)?;
    let n = system.len();
    let na = species.len();
    let f = t.f;
    let nk = t.kvecs.len();
    let lmax = t.lmax;
    let nr = t.nr;
    let positions = system.positions();
    let (cs, ss) = structure_factors(&t.kvecs, positions, types, na);
    let l_range = |l: usize| (l * l * nr, (l + 1) * (l + 1) * nr);
    let d = t.d.as_ref().expect("strain tables");

    let chunk = (nk / (4 * rayon::current_num_threads()).max(1)).max(1);
    let (forces, strain, strain_trace) = (0..nk)
        .into_par_iter()
        .with_min_len(chunk)
        .fold(
            || {
                (
                    vec![[0.0; 3]; n],
                    [[0.0; 3]; 3],
                    vec![0.0; na * f],
                    vec![0.0; n * 2],
                    0.0,
                )
            },
            |(mut fr, mut st, mut m, mut trig, mut st_trace), k| {
                let kv = t.kvecs[k];
                let wk = &t.w[k * f..(k + 1) * f];
                let mut pe = vec![0.0; na];
                let mut qe = vec![0.0; na];
                let mut po = vec![0.0; na];
                let mut qo = vec![0.0; na];
                m.iter_mut().for_each(|x| *x = 0.0);
                for i in 0..n {
                    let (s, c) = dot(&kv, &positions[i]).sin_cos();
                    trig[2 * i] = s;
                    trig[2 * i + 1] = c;
                    let mut centre = 0.0;
                    for a in 0..na {
                        let gi = &g[(i * na + a) * f..(i * na + a + 1) * f];
                        let ca = cs[a * nk + k];
                        let sa = ss[a * nk + k];
                        let ev = c * ca + s * sa;
                        let od = s * ca - c * sa;
                        let mut he = 0.0;
                        let mut ho = 0.0;
                        let ma = &mut m[a * f..(a + 1) * f];
                        for l in 0..=lmax {
                            let (lo, hi) = l_range(l);
                            let coef = if l % 2 == 0 { ev } else { od };
                            let mut h = 0.0;
                            for x in lo..hi {
                                h += gi[x] * wk[x];
                                ma[x] += coef * gi[x];
                            }
                            if l % 2 == 0 {
                                he += h;
                            } else {
                                ho += h;
                            }
                        }
                        centre += -he * od + ho * ev;
                        pe[a] += he * s;
                        qe[a] += he * c;
                        po[a] += ho * s;
                        qo[a] += ho * c;
                    }
                    for al in 0..3 {
                        fr[i][al] += centre * kv[al];
                    }
                }
                for j in 0..n {
                    let a = types[j];
                    let (s, c) = (trig[2 * j], trig[2 * j + 1]);
                    let v = (pe[a] * c - qe[a] * s) - (qo[a] * c + po[a] * s);
                    for al in 0..3 {
                        fr[j][al] += v * kv[al];
                    }
                }
                let dk = &d[k * 9 * f..(k + 1) * 9 * f];
                for ab in 0..9 {
                    let dd = &dk[ab * f..(ab + 1) * f];
                    let mut s = 0.0;
                    for a in 0..na {
                        let ma = &m[a * f..(a + 1) * f];
                        for x in 0..f {
                            s += ma[x] * dd[x];
                        }
                    }
                    st[ab / 3][ab % 3] -= s;
                }
                let mut tr = 0.0;
                for a in 0..na {
                    let ma = &m[a * f..(a + 1) * f];
                    for x in 0..f {
                        tr += ma[x] * wk[x];
                    }
                }
                st_trace += tr;
                (fr, st, m, trig, st_trace)
            },
        )
        .map(|(fr, st, _, _, tr)| (fr, st, tr))
        .reduce(
            || (vec![[0.0; 3]; n], [[0.0; 3]; 3], 0.0),
            |(mut fa, mut sa, ta), (fb, sb, tb)| {
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
                (fa, sa, ta + tb)
            },
        );
    // -δ_αβ Σ_i g_i·c_i (without the centre term): the k-space part was accumulated in
    // strain_trace, the K0 part is added here
    let mut counts = vec![0.0; na];
    for &ty in types {
        counts[ty] += 1.0;
    }
    let mut trace = strain_trace;
    for i in 0..n {
        for a in 0..na {
            for x in 0..nr {
                trace += g[(i * na + a) * f + x] * t.k0[x] * counts[a];
            }
        }
    }
    let mut strain = strain;
    for a in 0..3 {
        strain[a][a] -= trace;
    }
    Ok(LodeBackward {
        positions: forces,
        strain,
    })
}
