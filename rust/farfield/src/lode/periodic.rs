//! Periodic LODE: the exact k-space formula of docs/science.md §2.3.
//!
//! c_{i,a,nlm} = Σ_{half k} W_k[lm n] · T_{a,l}(i, k) + δ_{l0} K0_n N_a − δ_{l0} δ_{a,t(i)} (1−w) C_n
//! with W_k = (8π/V) ĝ(k) s_l Y_lm(k̂) I_nl(k), T = Σ_{j∈a} cos(k·(r_i−r_j)) (even l) or
//! sin(k·(r_i−r_j)) (odd l).
//!
//! Everything that depends on k only (ĝ, Y_lm(k̂), I_nl(|k|)) is tabulated once per k in W;
//! the phases e^{ik·r_i} come from per-axis tables (no trigonometric function per (k, atom));
//! then the values are two matrix products per block of k-vectors,
//! (N·A × kb)·(kb × F_even) with T_even and (N·A × kb)·(kb × F_odd) with T_odd, whose inner
//! dimension is the number of k-vectors only. The backward pass is two products of the same
//! size plus O(N·A) work per k.

use super::{parity_sign, GradientRequest, LodeBackward, LodeExpansion, LodeOutput};
use crate::error::Result;
use crate::interrupt;
use crate::kspace::{cmul, KVectors, PhaseTables};
use crate::math::linalg::Vec3;
use crate::system::System;
use rayon::prelude::*;
use std::f64::consts::PI;

/// Everything that depends on the cell but not on the positions.
struct KTables {
    kv: KVectors,
    /// W[k][x'] with the features permuted: even-l features first, then odd-l ones
    w: Vec<f64>,
    /// strain: dW[k][β][x'] = ∂W_k[x']/∂k_β (only when requested), permuted features
    dw: Option<Vec<f64>>,
    /// R[k][l·nr + n] = (8π/V) s_l ĝ(k) I_nl(|k|): W_k[lmn] = R[k][ln] Y_lm(k̂)
    radial: Vec<f64>,
    /// K0_n (already divided by V)
    k0: Vec<f64>,
    /// centre contribution C_n
    center: Vec<f64>,
    f: usize,
    /// number of even-l features (the first `f_even` permuted columns)
    f_even: usize,
    /// perm[x'] = x: natural feature index of permuted column x'
    perm: Vec<usize>,
    nr: usize,
}

/// Feature permutation: even-l features, then odd-l ones (natural order inside each).
fn parity_permutation(lmax: usize, nr: usize) -> (Vec<usize>, usize) {
    let mut even = Vec::new();
    let mut odd = Vec::new();
    for l in 0..=lmax {
        for x in l * l * nr..(l + 1) * (l + 1) * nr {
            if l % 2 == 0 {
                even.push(x);
            } else {
                odd.push(x);
            }
        }
    }
    let fe = even.len();
    even.extend(odd);
    (even, fe)
}

/// Cost before work of the exact k-space path: the k-vector tables (memory) and the
/// (atom, k-vector) products of the values (`passes` = 1), the backward pass (3) or the
/// strain gradients (10); with `pair_gradients`, the (pair, k-vector) products of the dense
/// position gradients too.
pub(super) fn check_cost(
    calc: &LodeExpansion,
    system: &System,
    na: usize,
    passes: f64,
    strain: bool,
    pair_gradients: bool,
) -> Result<()> {
    let Some(cell) = system.cell() else {
        return Ok(());
    };
    let params = calc.parameters();
    let nk = super::kvector_estimate(calc.k_cutoff(), cell.volume());
    let nr = (params.max_radial + 1) as f64;
    let nlm = ((params.max_angular + 1) * (params.max_angular + 1)) as f64;
    let f = nlm * nr;
    let nrad = (params.max_angular + 1) as f64 * nr;
    let mut per_k = f * if strain { 4.0 } else { 1.0 } + nrad + 8.0;
    if pair_gradients {
        // the atom-major phase table and the k-space factors of the pair gradients
        per_k += 2.0 * system.len() as f64 + 6.0 * nrad;
    }
    crate::limits::check_memory(
        &format!("the LODE k-space tables (about {nk:.3e} k-vectors)"),
        8.0 * nk * per_k,
        super::KSPACE_HINT,
    )?;
    let n = system.len() as f64;
    let na = na as f64;
    let mut terms = passes * nk * n * (4.0 + 2.0 * na + na * f / 8.0);
    if pair_gradients {
        terms += nk * n * n * nrad / 8.0;
    }
    crate::limits::check_terms(
        &format!(
            "the LODE k-space sum (about {nk:.3e} k-vectors × {} atoms × features)",
            system.len()
        ),
        terms,
        super::KSPACE_HINT,
    )
}

fn tables(calc: &LodeExpansion, system: &System, strain: bool) -> Result<KTables> {
    let cell = system.cell().expect("periodic");
    let params = calc.parameters();
    let p = params.exponent;
    calc.check_k0()?;
    let volume = cell.volume();
    let k_cut = calc.k_cutoff();
    let tables = calc.kspace_tables()?;
    let (basis, spline) = (&tables.0, &tables.1);
    let kv = KVectors::half_space(cell, k_cut)?;
    // exact quadrature for few k-vectors, the (1e-13-accurate) quintic spline otherwise
    let use_spline = kv.len() > 200;
    let lmax = params.max_angular;
    let nr = params.max_radial + 1;
    let nlm = (lmax + 1) * (lmax + 1);
    let f = nlm * nr;
    let (perm, f_even) = parity_permutation(lmax, nr);
    let density = calc.density();
    let pref = 8.0 * PI / volume;
    let signs: Vec<f64> = (0..=lmax).map(parity_sign).collect();
    let nk = kv.len();
    let mut w = vec![0.0; nk * f];
    let nrad = (lmax + 1) * nr;
    let mut radial = vec![0.0; nk * nrad];
    let mut d = if strain {
        vec![0.0; nk * 3 * f]
    } else {
        Vec::new()
    };
    let d_chunk = if strain { 3 * f } else { 1 };
    let mut d_dummy = vec![0.0; nk];
    let d_slice: &mut [f64] = if strain { &mut d } else { &mut d_dummy };
    w.par_chunks_mut(f)
        .zip(d_slice.par_chunks_mut(d_chunk))
        .zip(radial.par_chunks_mut(nrad))
        .zip(kv.vectors.par_iter())
        .for_each_init(
            || {
                (
                    vec![0.0; nlm],
                    [vec![0.0; nlm], vec![0.0; nlm], vec![0.0; nlm]],
                    vec![0.0; (lmax + 1) * nr],
                    vec![0.0; (lmax + 1) * nr],
                )
            },
            |(y, gy, ints, dints), (((wk, dk), rk), k)| {
                if interrupt::is_requested() {
                    return;
                }
                let kn = (k[0] * k[0] + k[1] * k[1] + k[2] * k[2]).sqrt();
                let (g, dg) = density.fourier(kn);
                if strain {
                    super::sph::real_sph(*k, lmax, y, Some(gy));
                } else {
                    super::sph::real_sph(*k, lmax, y, None);
                }
                if use_spline {
                    spline.eval(kn, ints, dints);
                } else if strain {
                    basis.kspace_integrals(kn, ints, Some(dints));
                } else {
                    basis.kspace_integrals(kn, ints, None);
                }
                for l in 0..=lmax {
                    for n in 0..nr {
                        rk[l * nr + n] = pref * signs[l] * g * ints[l * nr + n];
                    }
                }
                for (xp, &x) in perm.iter().enumerate() {
                    let lm = x / nr;
                    let n = x % nr;
                    let l = (lm as f64).sqrt().floor() as usize;
                    let i = ints[l * nr + n];
                    wk[xp] = pref * signs[l] * g * y[lm] * i;
                    if strain {
                        let radial = dg * i + g * dints[l * nr + n];
                        for b in 0..3 {
                            let dwb =
                                pref * signs[l] * (radial * y[lm] * k[b] / kn + g * gy[b][lm] * i);
                            dk[b * f + xp] = dwb;
                        }
                    }
                }
            },
        );
    interrupt::check()?;
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
        kv,
        w,
        radial,
        dw: if strain { Some(d) } else { None },
        k0,
        center,
        f,
        f_even,
        perm,
        nr,
    })
}

/// C (m × n, row stride ldc) = beta C + A (m × k) B (k × n), explicit strides, on the
/// calling thread (the callers parallelise over blocks of atoms, so every entry is computed
/// by one task in a fixed order: results do not depend on the number of threads).
#[allow(clippy::too_many_arguments)]
fn dgemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f64],
    (rsa, csa): (usize, usize),
    b: &[f64],
    (rsb, csb): (usize, usize),
    beta: f64,
    c: &mut [f64],
    ldc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(n <= ldc && c.len() >= (m - 1) * ldc + n);
    if k == 0 {
        for r in 0..m {
            c[r * ldc..r * ldc + n].iter_mut().for_each(|x| *x *= beta);
        }
        return;
    }
    assert!(a.len() > (m - 1) * rsa + (k - 1) * csa);
    assert!(b.len() > (k - 1) * rsb + (n - 1) * csb);
    // SAFETY: the asserts above keep every address the strides reach inside the slices.
    unsafe {
        matrixmultiply::dgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            ldc as isize,
            1,
        );
    }
}

/// A tile of the values: first atom, its rows of the accumulators (values, strain).
type TileWork<'a> = (usize, &'a mut [f64], Option<&'a mut [f64]>);

/// A tile's backward results: dL/dr of its centres, neighbour partial sums, strain terms.
type TileBackward = (Vec<f64>, Vec<f64>, [f64; 10]);

/// One k-vector of a backward tile (rows a·r + i' of species a, r atoms): the centre term
/// dL/dr_i += k Σ_a (−H_e T_o + H_o T_e) into `fr` ([α][i']), and the neighbour partial
/// sums pk = Σ_i (H_e s_i, H_e c_i, H_o s_i, H_o c_i) per species ([4][a]); vectorised
/// over the atoms, with the widest instructions the CPU has.
fn centre_and_neighbour_sums(
    h: (&[f64], &[f64]),
    t: (&[f64], &[f64]),
    p: (&[f64], &[f64]),
    kvec: Vec3,
    fr: &mut [f64],
    pk: &mut [f64],
) {
    #[inline(always)]
    fn body(
        (he, ho): (&[f64], &[f64]),
        (te, to): (&[f64], &[f64]),
        (pc, ps): (&[f64], &[f64]),
        kvec: Vec3,
        fr: &mut [f64],
        pk: &mut [f64],
    ) {
        let r = pc.len();
        let na = pk.len() / 4;
        let ps = &ps[..r];
        let (fx, rest) = fr.split_at_mut(r);
        let (fy, fz) = rest.split_at_mut(r);
        let fz = &mut fz[..r];
        for a in 0..na {
            let rg = a * r..(a + 1) * r;
            let (e, o) = (&he[rg.clone()], &ho[rg.clone()]);
            let (te, to) = (&te[rg.clone()], &to[rg]);
            let sums = dots4((e, o), (ps, pc));
            for (c, x) in sums.into_iter().enumerate() {
                pk[c * na + a] += x;
            }
            for ii in 0..r {
                let centre = -e[ii] * to[ii] + o[ii] * te[ii];
                fx[ii] += centre * kvec[0];
                fy[ii] += centre * kvec[1];
                fz[ii] += centre * kvec[2];
            }
        }
    }
    crate::math::dispatch::multiversion!(body; (
        h: (&[f64], &[f64]) = h,
        t: (&[f64], &[f64]) = t,
        p: (&[f64], &[f64]) = p,
        kvec: Vec3 = kvec,
        fr: &mut [f64] = fr,
        pk: &mut [f64] = pk,
    ) -> ())
}

/// dL/dr of the atoms p0.. (type-sorted order, `types` theirs) from the neighbour partial
/// sums pp ([k][4][a]), written [α][p − p0] into `out`; vectorised over the atoms of a type.
fn neighbour_terms(
    kv: &KVectors,
    pt: &PhaseTables,
    (types, na): (&[usize], usize),
    pp: &[f64],
    p0: usize,
    out: &mut [f64],
) {
    #[inline(always)]
    fn body(
        kv: &KVectors,
        pt: &PhaseTables,
        (types, na): (&[usize], usize),
        pp: &[f64],
        p0: usize,
        out: &mut [f64],
    ) {
        let len = types.len();
        let (fx, rest) = out.split_at_mut(len);
        let (fy, fz) = rest.split_at_mut(len);
        // runs of one type inside the block
        let mut runs = Vec::new();
        let mut start = 0;
        for x in 1..=len {
            if x == len || types[x] != types[start] {
                runs.push((types[start], start..x));
                start = x;
            }
        }
        let (mut c01, mut s01) = (vec![0.0; len], vec![0.0; len]);
        let range = p0..p0 + len;
        for group in &kv.groups {
            pt.partial_phases((group.m0, group.m1), range.clone(), (&mut c01, &mut s01));
            for k in group.range.clone() {
                let kvec = kv.vectors[k];
                let pk = &pp[k * 4 * na..(k + 1) * 4 * na];
                let (c2, s2) = pt.axis(2, kv.indices[k][2]);
                let (c2, s2) = (&c2[range.clone()], &s2[range.clone()]);
                for (a, run) in &runs {
                    let va = pk[*a] - pk[3 * na + a];
                    let vb = pk[na + a] + pk[2 * na + a];
                    for x in run.clone() {
                        let (c, s) = cmul((c01[x], s01[x]), (c2[x], s2[x]));
                        let v = c * va - s * vb;
                        fx[x] += v * kvec[0];
                        fy[x] += v * kvec[1];
                        fz[x] += v * kvec[2];
                    }
                }
            }
        }
    }
    crate::math::dispatch::multiversion!(body; (
        kv: &KVectors = kv,
        pt: &PhaseTables = pt,
        types: (&[usize], usize) = (types, na),
        pp: &[f64] = pp,
        p0: usize = p0,
        out: &mut [f64] = out,
    ) -> ())
}

/// (Σ e·s, Σ e·c, Σ o·s, Σ o·c) with eight partial sums each, in a fixed order.
#[inline(always)]
fn dots4((e, o): (&[f64], &[f64]), (s, c): (&[f64], &[f64])) -> [f64; 4] {
    const L: usize = 8;
    let n = e.len();
    let (o, s, c) = (&o[..n], &s[..n], &c[..n]);
    let mut acc = [[0.0; L]; 4];
    let body = n / L * L;
    for j0 in (0..body).step_by(L) {
        for l in 0..L {
            let j = j0 + l;
            acc[0][l] += e[j] * s[j];
            acc[1][l] += e[j] * c[j];
            acc[2][l] += o[j] * s[j];
            acc[3][l] += o[j] * c[j];
        }
    }
    let mut out = acc.map(|x| ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7])));
    for j in body..n {
        out[0] += e[j] * s[j];
        out[1] += e[j] * c[j];
        out[2] += o[j] * s[j];
        out[3] += o[j] * c[j];
    }
    out
}

/// Tiling: atoms per tile and k-vectors per chunk, so that a tile's phase tables stay in cache.
fn tiling(n: usize, na: usize) -> (usize, usize) {
    let threads = rayon::current_num_threads().max(1);
    let r = (n / (4 * threads)).clamp(8, 256).min(n.max(1));
    let kc = (32_768 / (r * na).max(1)).clamp(32, 256);
    (r, kc)
}

/// Σ_i a_i b_i with four partial sums.
#[inline]
fn dot_slices(a: &[f64], b: &[f64]) -> f64 {
    let mut s = [0.0; 4];
    let body = a.len().min(b.len()) / 4 * 4;
    for j0 in (0..body).step_by(4) {
        for l in 0..4 {
            s[l] += a[j0 + l] * b[j0 + l];
        }
    }
    let mut t = (s[0] + s[1]) + (s[2] + s[3]);
    for j in body..a.len().min(b.len()) {
        t += a[j] * b[j];
    }
    t
}

/// Per-species structure factors Σ_{j∈a} (cos, sin)(k·r_j), laid out [k · A + a].
fn species_structure_factors(
    kv: &KVectors,
    pt: &PhaseTables,
    types: &[usize],
    na: usize,
) -> (Vec<f64>, Vec<f64>) {
    crate::kspace::typed_structure_factors(kv, pt, &vec![1.0; types.len()], (types, na))
}

/// Phase data of a tile (atoms `atoms`, k-vectors `ks`), k-major:
/// pc/ps[q·R + i'] = cos/sin(k·r_i), te/to[q·R·A + a·R + i'] = Σ_{j∈a} cos/sin(k·(r_i−r_j))
/// (species-major inside a k-vector, so that the loops over atoms vectorise), for up to
/// `kc` k-vectors of a tile of R atoms; allocated once per tile.
struct Tile {
    pc: Vec<f64>,
    ps: Vec<f64>,
    te: Vec<f64>,
    to: Vec<f64>,
    /// e^{i(m0 θ0 + m1 θ1)} of the current (m0, m1) run
    c01: Vec<f64>,
    s01: Vec<f64>,
}

impl Tile {
    fn new(kc: usize, r: usize, na: usize) -> Tile {
        Tile {
            pc: vec![0.0; kc * r],
            ps: vec![0.0; kc * r],
            te: vec![0.0; kc * r * na],
            to: vec![0.0; kc * r * na],
            c01: vec![0.0; r],
            s01: vec![0.0; r],
        }
    }

    /// Fills the tables for the atoms `atoms` (R of them) and the k-vectors `ks`.
    fn fill(
        &mut self,
        (kv, pt): (&KVectors, &PhaseTables),
        (cs, ss, na): (&[f64], &[f64], usize),
        atoms: std::ops::Range<usize>,
        ks: std::ops::Range<usize>,
    ) {
        let r = atoms.len();
        let rows = r * na;
        let i0 = atoms.start;
        let i1 = atoms.end;
        let Tile {
            pc,
            ps,
            te,
            to,
            c01,
            s01,
        } = self;
        let mut last = None;
        for (q, k) in ks.enumerate() {
            let m = kv.indices[k];
            if last != Some((m[0], m[1])) {
                pt.partial_phases((m[0], m[1]), i0..i1, (c01, s01));
                last = Some((m[0], m[1]));
            }
            let (c2, s2) = pt.axis(2, m[2]);
            let (c2, s2) = (&c2[i0..i1], &s2[i0..i1]);
            let pcq = &mut pc[q * r..(q + 1) * r];
            let psq = &mut ps[q * r..(q + 1) * r];
            for ii in 0..r {
                (pcq[ii], psq[ii]) = cmul((c01[ii], s01[ii]), (c2[ii], s2[ii]));
            }
            let ca = &cs[k * na..(k + 1) * na];
            let sa = &ss[k * na..(k + 1) * na];
            let teq = &mut te[q * rows..(q + 1) * rows];
            let toq = &mut to[q * rows..(q + 1) * rows];
            for a in 0..na {
                let (cb, sb) = (ca[a], sa[a]);
                let te_a = &mut teq[a * r..(a + 1) * r];
                let to_a = &mut toq[a * r..(a + 1) * r];
                for ii in 0..r {
                    te_a[ii] = pcq[ii] * cb + psq[ii] * sb;
                    to_a[ii] = psq[ii] * cb - pcq[ii] * sb;
                }
            }
        }
    }
}

/// Values, dense position gradients and strain gradients.
pub fn compute(
    calc: &LodeExpansion,
    system: &System,
    species: &[i32],
    types: &[usize],
    req: GradientRequest,
) -> Result<LodeOutput> {
    calc.check_k0()?;
    let passes = if req.strain { 10.0 } else { 1.0 };
    check_cost(
        calc,
        system,
        species.len(),
        passes,
        req.strain,
        req.positions,
    )?;
    let t = tables(calc, system, req.strain)?;
    let cell = system.cell().expect("periodic");
    let n = system.len();
    let na = species.len();
    let f = t.f;
    let fe = t.f_even;
    let fo = f - fe;
    let nk = t.kv.len();
    let nn = n * na;
    let positions = system.positions();
    let pt = PhaseTables::new(cell, positions, t.kv.max_index);
    let mut counts = vec![0.0; na];
    for &ty in types {
        counts[ty] += 1.0;
    }
    let nr = t.nr;
    let w_cent = 1.0 - calc.parameters().center_atom_weight;

    let af = na * f;
    let (cs, ss) = species_structure_factors(&t.kv, &pt, types, na);
    // accumulators in the permuted feature layout: rows (i, a)
    let mut acc = vec![0.0; nn * f];
    let mut acc_strain = if req.strain {
        Some(vec![0.0; nn * 9 * f])
    } else {
        None
    };
    let (r_tile, kc) = tiling(n, na);
    let mut work: Vec<TileWork> = Vec::new();
    {
        let mut st_chunks: Vec<Option<&mut [f64]>> = match acc_strain.as_mut() {
            Some(st) => st.chunks_mut(r_tile * na * 9 * f).map(Some).collect(),
            None => Vec::new(),
        };
        st_chunks.reverse();
        for (tb, ac) in acc.chunks_mut(r_tile * na * f).enumerate() {
            work.push((tb * r_tile, ac, st_chunks.pop().flatten()));
        }
    }
    work.into_par_iter().for_each(|(i0, ac, st)| {
        let r = ac.len() / (na * f);
        let rows = r * na;
        let mut tl = Tile::new(kc, r, na);
        let mut st = st;
        let mut db = if st.is_some() {
            vec![0.0; kc * 9 * f]
        } else {
            Vec::new()
        };
        let mut k0 = 0;
        while k0 < nk {
            if interrupt::is_requested() {
                return;
            }
            let k1 = (k0 + kc).min(nk);
            let kbl = k1 - k0;
            tl.fill((&t.kv, &pt), (&cs, &ss, na), i0..i0 + r, k0..k1);
            let (te, to) = (&tl.te, &tl.to);
            let wb = &t.w[k0 * f..k1 * f];
            // T_even (rows × kb) · W_even (kb × fe), T_odd · W_odd
            // rows of species a: te[a·r + i'] ↔ accumulator row i'·A + a
            for a in 0..na {
                let (ta, oa) = (&te[a * r..], &to[a * r..]);
                dgemm(
                    r,
                    kbl,
                    fe,
                    ta,
                    (1, rows),
                    wb,
                    (f, 1),
                    1.0,
                    &mut ac[a * f..],
                    na * f,
                );
                dgemm(
                    r,
                    kbl,
                    fo,
                    oa,
                    (1, rows),
                    &wb[fe..],
                    (f, 1),
                    1.0,
                    &mut ac[a * f + fe..],
                    na * f,
                );
            }
            if let (Some(st), Some(dw)) = (st.as_mut(), t.dw.as_ref()) {
                // D[q][α][β][x'] = k_α ∂W/∂k_β for this chunk
                for (q, k) in (k0..k1).enumerate() {
                    let kvec = t.kv.vectors[k];
                    let dwk = &dw[k * 3 * f..(k + 1) * 3 * f];
                    for al in 0..3 {
                        for be in 0..3 {
                            let out =
                                &mut db[(q * 9 + al * 3 + be) * f..(q * 9 + al * 3 + be + 1) * f];
                            for (o, x) in out.iter_mut().zip(&dwk[be * f..(be + 1) * f]) {
                                *o = kvec[al] * x;
                            }
                        }
                    }
                }
                let db = &db[..kbl * 9 * f];
                for a in 0..na {
                    let (ta, oa) = (&te[a * r..], &to[a * r..]);
                    for ab in 0..9 {
                        let off = ab * f;
                        let c0 = a * 9 * f + off;
                        dgemm(
                            r,
                            kbl,
                            fe,
                            ta,
                            (1, rows),
                            &db[off..],
                            (9 * f, 1),
                            1.0,
                            &mut st[c0..],
                            na * 9 * f,
                        );
                        dgemm(
                            r,
                            kbl,
                            fo,
                            oa,
                            (1, rows),
                            &db[off + fe..],
                            (9 * f, 1),
                            1.0,
                            &mut st[c0 + fe..],
                            na * 9 * f,
                        );
                    }
                }
            }
            k0 = k1;
        }
    });
    interrupt::check()?;
    // back to the natural layout; K0 term, strain trace term, centre subtraction
    let mut values = vec![0.0; n * af];
    values
        .par_chunks_mut(f)
        .zip(acc.par_chunks(f))
        .for_each(|(v, a)| {
            for (xp, &x) in t.perm.iter().enumerate() {
                v[x] = a[xp];
            }
        });
    drop(acc);
    for i in 0..n {
        for a in 0..na {
            for x in 0..nr {
                values[i * af + a * f + x] += t.k0[x] * counts[a];
            }
        }
    }
    let strain = acc_strain.map(|acc| {
        let mut st = vec![0.0; n * 9 * af];
        st.par_chunks_mut(9 * af).enumerate().for_each(|(i, sti)| {
            for a in 0..na {
                let row = &acc[(i * na + a) * 9 * f..(i * na + a + 1) * 9 * f];
                for ab in 0..9 {
                    let out = &mut sti[ab * af + a * f..ab * af + (a + 1) * f];
                    for (xp, &x) in t.perm.iter().enumerate() {
                        out[x] = -row[ab * f + xp];
                    }
                    if ab % 4 == 0 {
                        // −δ_αβ c_i (the volume factor of W and K0)
                        for x in 0..f {
                            out[x] -= values[i * af + a * f + x];
                        }
                    }
                }
            }
        });
        st
    });
    for i in 0..n {
        for x in 0..nr {
            values[i * af + types[i] * f + x] -= w_cent * t.center[x];
        }
    }

    let (pair, selfg) = if req.positions {
        let (pair, selfg) = super::pair_gradients::pair_gradients(
            cell,
            &t.kv,
            &pt,
            &t.radial,
            (calc.parameters().max_angular, nr),
            types,
            na,
        )?;
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
        cell_gradients: None,
    })
}
/// Vector-Jacobian product: dL/dr and dL/dε from dL/dc, at about twice the cost of values
/// (two matrix products per block of k-vectors, of the size of the values' ones).
pub fn backward(
    calc: &LodeExpansion,
    system: &System,
    species: &[i32],
    types: &[usize],
    g: &[f64],
) -> Result<LodeBackward> {
    calc.check_k0()?;
    check_cost(calc, system, species.len(), 3.0, true, false)?;
    let t = tables(calc, system, true)?;
    let cell = system.cell().expect("periodic");
    let n = system.len();
    let na = species.len();
    let f = t.f;
    let fe = t.f_even;
    let fo = f - fe;
    let af = na * f;
    let nn = n * na;
    let nk = t.kv.len();
    let nr = t.nr;
    let positions = system.positions();
    let pt = PhaseTables::new(cell, positions, t.kv.max_index);
    let d = t.dw.as_ref().expect("strain tables");
    // dL/dc in the permuted feature layout
    let mut gp = vec![0.0; nn * f];
    gp.par_chunks_mut(f)
        .zip(g.par_chunks(f))
        .for_each(|(out, row)| {
            for (xp, &x) in t.perm.iter().enumerate() {
                out[xp] = row[x];
            }
        });
    let (cs, ss) = species_structure_factors(&t.kv, &pt, types, na);
    let (r_tile, kc) = tiling(n, na);
    let n_tiles = n.div_ceil(r_tile);
    // per tile: dL/dr_i of its centres (the k-space factor of r_i in T), the partial sums
    // P[k][4][a] = Σ_{i in tile} (H_e s_i, H_e c_i, H_o s_i, H_o c_i) for the neighbour
    // terms, and the strain contractions
    let per_tile: Vec<TileBackward> = (0..n_tiles)
        .into_par_iter()
        .map(|tb| {
            let i0 = tb * r_tile;
            let r = r_tile.min(n - i0);
            let rows = r * na;
            let gt = &gp[i0 * na * f..(i0 + r) * na * f];
            let mut tl = Tile::new(kc, r, na);
            let mut he = vec![0.0; kc * rows];
            let mut ho = vec![0.0; kc * rows];
            let mut mm = vec![0.0; kc * af];
            // dL/dr of the tile's centres, [α][i']
            let mut fr = vec![0.0; 3 * r];
            let mut pp = vec![0.0; nk * 4 * na];
            let mut s10 = [0.0; 10];
            let mut k0 = 0;
            while k0 < nk {
                if interrupt::is_requested() {
                    break;
                }
                let k1 = (k0 + kc).min(nk);
                let kbl = k1 - k0;
                tl.fill((&t.kv, &pt), (&cs, &ss, na), i0..i0 + r, k0..k1);
                let (pc, ps, te, to) = (&tl.pc, &tl.ps, &tl.te, &tl.to);
                let wb = &t.w[k0 * f..k1 * f];
                // H[q][a·r + i'] = Σ_x' W_k[x'] dL/dc[(i, a)][x'] (even / odd features)
                for a in 0..na {
                    dgemm(
                        kbl,
                        fe,
                        r,
                        wb,
                        (f, 1),
                        &gt[a * f..],
                        (1, af),
                        0.0,
                        &mut he[a * r..],
                        rows,
                    );
                    dgemm(
                        kbl,
                        fo,
                        r,
                        &wb[fe..],
                        (f, 1),
                        &gt[a * f + fe..],
                        (1, af),
                        0.0,
                        &mut ho[a * r..],
                        rows,
                    );
                }
                // M[q][a, x'] = Σ_{i in tile} T[q][a·r + i'] dL/dc[(i, a)][x']
                for a in 0..na {
                    dgemm(
                        kbl,
                        r,
                        fe,
                        &te[a * r..],
                        (rows, 1),
                        &gt[a * f..],
                        (af, 1),
                        0.0,
                        &mut mm[a * f..],
                        af,
                    );
                    dgemm(
                        kbl,
                        r,
                        fo,
                        &to[a * r..],
                        (rows, 1),
                        &gt[a * f + fe..],
                        (af, 1),
                        0.0,
                        &mut mm[a * f + fe..],
                        af,
                    );
                }
                for q in 0..kbl {
                    let k = k0 + q;
                    let kvec = t.kv.vectors[k];
                    let (qr, qa) = (q * r..(q + 1) * r, q * rows..(q + 1) * rows);
                    centre_and_neighbour_sums(
                        (&he[qa.clone()], &ho[qa.clone()]),
                        (&te[qa.clone()], &to[qa]),
                        (&pc[qr.clone()], &ps[qr]),
                        kvec,
                        &mut fr,
                        &mut pp[k * 4 * na..(k + 1) * 4 * na],
                    );
                    let mq = &mm[q * af..(q + 1) * af];
                    let dk = &d[k * 3 * f..(k + 1) * 3 * f];
                    let wk = &t.w[k * f..(k + 1) * f];
                    for a in 0..na {
                        let ma = &mq[a * f..(a + 1) * f];
                        // Σ M D[α][β] = k_α Σ M ∂W/∂k_β
                        for be in 0..3 {
                            let dd = &dk[be * f..(be + 1) * f];
                            let u = dot_slices(ma, dd);
                            for al in 0..3 {
                                s10[al * 3 + be] -= kvec[al] * u;
                            }
                        }
                        s10[9] += dot_slices(ma, wk);
                    }
                }
                k0 = k1;
            }
            (fr, pp, s10)
        })
        .collect();
    interrupt::check()?;
    // reduce over tiles in a fixed order
    let mut forces = vec![[0.0; 3]; n];
    let mut strain = [[0.0; 3]; 3];
    let mut trace = 0.0;
    let mut pp = vec![0.0; nk * 4 * na];
    for (tb, (fr, p, s10)) in per_tile.into_iter().enumerate() {
        let r = fr.len() / 3;
        for (ii, f) in forces[tb * r_tile..tb * r_tile + r].iter_mut().enumerate() {
            *f = [fr[ii], fr[r + ii], fr[2 * r + ii]];
        }
        pp.iter_mut().zip(&p).for_each(|(x, y)| *x += y);
        for ab in 0..9 {
            strain[ab / 3][ab % 3] += s10[ab];
        }
        trace += s10[9];
    }
    // neighbour terms: dL/dr_j += Σ_k k [c_j (P_e − Q_o) − s_j (Q_e + P_o)]_{type(j)}, over
    // the atoms sorted by type (so that the factors are constant along a run of atoms)
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&j| types[j]);
    let sorted_tables = pt.permuted(&order);
    let sorted_types: Vec<usize> = order.iter().map(|&j| types[j]).collect();
    let mut fperm = vec![0.0; 3 * n];
    let block = r_tile.max(8);
    let mut parts: Vec<(usize, &mut [f64])> = fperm
        .chunks_mut(3 * block)
        .enumerate()
        .map(|(b, c)| (b * block, c))
        .collect();
    parts.par_iter_mut().for_each(|(p0, out)| {
        if interrupt::is_requested() {
            return;
        }
        let len = out.len() / 3;
        neighbour_terms(
            &t.kv,
            &sorted_tables,
            (&sorted_types[*p0..*p0 + len], na),
            &pp,
            *p0,
            out,
        );
    });
    interrupt::check()?;
    for (p, &j) in order.iter().enumerate() {
        let b = p / block * block;
        let len = block.min(n - b);
        let x = p - b;
        for al in 0..3 {
            forces[j][al] += fperm[3 * b + al * len + x];
        }
    }
    // −δ_αβ Σ_i g_i·c_i (without the centre term): the k-space part was accumulated in
    // `trace`, the K0 part is added here
    let mut counts = vec![0.0; na];
    for &ty in types {
        counts[ty] += 1.0;
    }
    for i in 0..n {
        for a in 0..na {
            for x in 0..nr {
                trace += g[(i * na + a) * f + x] * t.k0[x] * counts[a];
            }
        }
    }
    for a in 0..3 {
        strain[a][a] -= trace;
    }
    Ok(LodeBackward {
        positions: forces,
        strain,
        cell: None,
    })
}
