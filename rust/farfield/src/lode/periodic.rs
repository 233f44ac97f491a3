//! Periodic LODE: the exact k-space formula of science.md §2.3.
//!
//! c_{i,a,nlm} = Σ_{half k} W_k[lm n] · T_{a,l}(i, k) + δ_{l0} K0_n N_a − δ_{l0} δ_{a,t(i)} (1−w) C_n
//! with W_k = (8π/V) ĝ(k) s_l Y_lm(k̂) I_nl(k), T = Σ_{j∈a} cos(k·(r_i−r_j)) (even l) or
//! sin(k·(r_i−r_j)) (odd l).

use super::{parity_sign, GradientRequest, LodeBackward, LodeExpansion, LodeOutput};
use crate::error::{Error, Result};
use crate::kspace::KVectors;
use crate::system::System;
use rayon::prelude::*;
use std::f64::consts::PI;

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
    let tables = calc.kspace_tables()?;
    let (basis, spline) = (&tables.0, &tables.1);
    let kvecs = KVectors::half_space(cell, k_cut)?.vectors;
    // exact quadrature for few k-vectors, the (1e-13-accurate) quintic spline otherwise
    let use_spline = kvecs.len() > 200;
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
            } else {
                super::sph::real_sph(*k, lmax, &mut y, None);
            }
            if use_spline {
                spline.eval(kn, &mut ints, &mut dints);
            } else if strain {
                basis.kspace_integrals(kn, &mut ints, Some(&mut dints));
            } else {
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

/// C (m × n, row stride ldc) = beta C + A (m × k) B (k × n), with explicit strides;
/// the rows of C are split across the rayon pool.
#[allow(clippy::too_many_arguments)]
fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f64],
    (rsa, csa): (usize, usize),
    b: &[f64],
    (rsb, csb): (usize, usize),
    c: &mut [f64],
    beta: f64,
) {
    if m == 0 || n == 0 {
        return;
    }
    let rows = (m / (4 * rayon::current_num_threads())).clamp(16, 256);
    c[..m * n]
        .par_chunks_mut(rows * n)
        .enumerate()
        .for_each(|(block, cb)| {
            let r0 = block * rows;
            let mr = cb.len() / n;
            if k == 0 {
                cb.iter_mut().for_each(|x| *x *= beta);
                return;
            }
            // SAFETY: the slices cover every index the strides address: rows r0..r0+mr of A
            // (m × k), all of B (k × n) and the mr × n block of C.
            unsafe {
                matrixmultiply::dgemm(
                    mr,
                    k,
                    n,
                    1.0,
                    a.as_ptr().add(r0 * rsa),
                    rsa as isize,
                    csa as isize,
                    b.as_ptr(),
                    rsb as isize,
                    csb as isize,
                    beta,
                    cb.as_mut_ptr(),
                    n as isize,
                    1,
                );
            }
        });
}

#[derive(Clone, Copy)]
struct SharedSlice(*mut f64);
// SAFETY: used only for the disjoint writes documented at the use site.
unsafe impl Send for SharedSlice {}
unsafe impl Sync for SharedSlice {}

impl SharedSlice {
    fn ptr(&self) -> *mut f64 {
        self.0
    }
}

/// Block of k-vectors processed at once (bounds the N × 2 kb trig table).
const K_BLOCK: usize = 1024;

/// trig table (N × 2 kb): cos(k·r_i) then sin(k·r_i) for k in `ks`.
fn trig_table(kvecs: &[[f64; 3]], positions: &[[f64; 3]]) -> Vec<f64> {
    let kb = kvecs.len();
    let mut t = vec![0.0; positions.len() * 2 * kb];
    t.par_chunks_mut(2 * kb)
        .zip(positions.par_iter())
        .for_each(|(row, r)| {
            for (q, k) in kvecs.iter().enumerate() {
                let (s, c) = dot(k, r).sin_cos();
                row[q] = c;
                row[kb + q] = s;
            }
        });
    t
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
    let nr = t.nr;
    let w_cent = 1.0 - calc.parameters().center_atom_weight;
    let even: Vec<bool> = (0..f)
        .map(|x| {
            let lm = x / nr;
            let l = (lm as f64).sqrt().floor() as usize;
            l % 2 == 0
        })
        .collect();

    let af = na * f;
    let mut values = vec![0.0; n * af];
    let mut strain = if req.strain {
        Some(vec![0.0; n * 9 * af])
    } else {
        None
    };
    let mut k0 = 0;
    while k0 < nk {
        let kb = (nk - k0).min(K_BLOCK);
        let ks = &t.kvecs[k0..k0 + kb];
        let trig = trig_table(ks, positions);
        // U (2kb × A F)
        let mut u = vec![0.0; 2 * kb * af];
        let (top, bottom) = u.split_at_mut(kb * af);
        top.par_chunks_mut(af)
            .zip(bottom.par_chunks_mut(af))
            .enumerate()
            .for_each(|(q, (ut, ub))| {
                let k = k0 + q;
                let wk = &t.w[k * f..(k + 1) * f];
                for a in 0..na {
                    let (ca, sa) = (cs[a * nk + k], ss[a * nk + k]);
                    for x in 0..f {
                        let (p, r) = if even[x] { (ca, sa) } else { (-sa, ca) };
                        ut[a * f + x] = p * wk[x];
                        ub[a * f + x] = r * wk[x];
                    }
                }
            });
        gemm(
            n,
            2 * kb,
            af,
            &trig,
            (2 * kb, 1),
            &u,
            (af, 1),
            &mut values,
            1.0,
        );
        if let (Some(st), Some(d)) = (strain.as_mut(), t.d.as_ref()) {
            let w9 = 9 * af;
            let mut us = vec![0.0; 2 * kb * w9];
            let (top, bottom) = us.split_at_mut(kb * w9);
            top.par_chunks_mut(w9)
                .zip(bottom.par_chunks_mut(w9))
                .enumerate()
                .for_each(|(q, (ut, ub))| {
                    let k = k0 + q;
                    let dk = &d[k * 9 * f..(k + 1) * 9 * f];
                    for ab in 0..9 {
                        for a in 0..na {
                            let (ca, sa) = (cs[a * nk + k], ss[a * nk + k]);
                            for x in 0..f {
                                let (p, r) = if even[x] { (ca, sa) } else { (-sa, ca) };
                                let dv = dk[ab * f + x];
                                ut[ab * af + a * f + x] = -p * dv;
                                ub[ab * af + a * f + x] = -r * dv;
                            }
                        }
                    }
                });
            gemm(n, 2 * kb, w9, &trig, (2 * kb, 1), &us, (w9, 1), st, 1.0);
        }
        k0 += kb;
    }
    // K0 term, strain trace term, centre subtraction
    for i in 0..n {
        for a in 0..na {
            for x in 0..nr {
                values[i * af + a * f + x] += t.k0[x] * counts[a];
            }
        }
        if let Some(st) = strain.as_mut() {
            for al in 0..3 {
                let ab = al * 3 + al;
                for x in 0..af {
                    st[(i * 9 + ab) * af + x] -= values[i * af + x];
                }
            }
        }
        for x in 0..nr {
            values[i * af + types[i] * f + x] -= w_cent * t.center[x];
        }
    }

    let (pair, selfg) = if req.positions {
        let trig = trig_table(&t.kvecs, positions);
        // kw[k][α][f] = k_α W_k[f]
        let f3 = 3 * f;
        let mut kw = vec![0.0; nk * f3];
        kw.par_chunks_mut(f3).enumerate().for_each(|(k, row)| {
            for al in 0..3 {
                for x in 0..f {
                    row[al * f + x] = t.kvecs[k][al] * t.w[k * f + x];
                }
            }
        });
        let mut pair = vec![0.0; n * n * f3];
        let mut selfg = vec![0.0; n * 3 * af];
        // upper triangle (j > i) by one GEMM per centre; G_ji = ∓ G_ij (even / odd l)
        pair.par_chunks_mut(n * f3)
            .enumerate()
            .for_each(|(i, row)| {
                let m = n - i - 1;
                if m == 0 {
                    return;
                }
                // Z_i (2 nk × 3F): even f: (s_i, -c_i) KW ; odd f: (-c_i, -s_i) KW
                let mut z = vec![0.0; 2 * nk * f3];
                let ti = &trig[i * 2 * nk..(i + 1) * 2 * nk];
                for k in 0..nk {
                    let (c, s) = (ti[k], ti[nk + k]);
                    let kwk = &kw[k * f3..(k + 1) * f3];
                    for al in 0..3 {
                        for x in 0..f {
                            let (p, r) = if even[x] { (s, -c) } else { (-c, -s) };
                            let v = kwk[al * f + x];
                            z[k * f3 + al * f + x] = p * v;
                            z[(nk + k) * f3 + al * f + x] = r * v;
                        }
                    }
                }
                // SAFETY: rows i+1..n of the (n × 2nk) trig table, the (2nk × 3F) z and the
                // (m × 3F) tail of this row are all in bounds.
                unsafe {
                    matrixmultiply::dgemm(
                        m,
                        2 * nk,
                        f3,
                        1.0,
                        trig.as_ptr().add((i + 1) * 2 * nk),
                        (2 * nk) as isize,
                        1,
                        z.as_ptr(),
                        f3 as isize,
                        1,
                        0.0,
                        row.as_mut_ptr().add((i + 1) * f3),
                        f3 as isize,
                        1,
                    );
                }
            });
        // lower triangle from the upper one
        let sign: Vec<f64> = (0..f3)
            .map(|x| if even[x % f] { -1.0 } else { 1.0 })
            .collect();
        let upper = SharedSlice(pair.as_mut_ptr());
        (0..n).into_par_iter().for_each(|j| {
            for i in 0..j {
                // SAFETY: reads row i, columns j (> i, upper triangle); writes row j,
                // columns i (< j, lower triangle): disjoint across all tasks.
                unsafe {
                    let src = upper.ptr().add((i * n + j) * f3);
                    let dst = upper.ptr().add((j * n + i) * f3);
                    for x in 0..f3 {
                        *dst.add(x) = sign[x] * *src.add(x);
                    }
                }
            }
        });
        pair.par_chunks(n * f3)
            .zip(selfg.par_chunks_mut(3 * af))
            .for_each(|(row, selfrow)| {
                for j in 0..n {
                    let a = types[j];
                    for al in 0..3 {
                        for x in 0..f {
                            selfrow[(al * na + a) * f + x] -= row[j * f3 + al * f + x];
                        }
                    }
                }
            });
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
