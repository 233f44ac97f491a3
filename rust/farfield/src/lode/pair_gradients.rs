//! Dense position gradients of the periodic LODE expansion, ∂c_i[type(j)]/∂r_j for every
//! pair, by the exact k-space sum of docs/science.md §2.3.
//!
//! For j ≠ i, G_ij[α, lmn] = Σ_{half k} φ_ij(k) k_α W_k[lmn] with W_k[lmn] = R_k[ln] Y_lm(k̂)
//! (R the radial and prefactor part) and φ_ij = sin(k·(r_i − r_j)) for even l, −cos for odd l.
//!
//! 1. Fewer columns. Since k̂_α Y_lm(k̂) = Σ_{L=l±1,M} A^α_{lm,LM} Y_LM(k̂) (a degree-1 times
//!    a degree-l harmonic), G = A·H with H_ij[L M l n] = Σ_k φ_ij(k) R_k[ln] |k| Y_LM(k̂):
//!    33 instead of 48 sums per radial function at l_max = 3. The coefficients A are
//!    projections on the sphere, by a quadrature exact for these degrees.
//! 2. Shells. When many k-vectors share their length (cubic, tetragonal, hexagonal cells),
//!    R_k depends on the shell s only, and H = Σ_s R_s[ln] Q_ij[s, LM] with
//!    Q_ij[s, LM] = Σ_{k∈s} φ_ij(k) |k| Y_LM(k̂): N_k·(l_max+2)² + N_shells·n_H
//!    multiply-adds per pair instead of N_k·n_H.
//! 3. Mirrors. On cells with axes along x, y and z the shell sums run over a quarter of
//!    the k-vectors, each LM with one product of per-axis cos/sin factors ([`Mirror`]);
//!    without many equal lengths, the direct sum does, class by class (mirror-direct).
//!
//! The cheapest summation by a cost model is used; all are the same exact sum.
//!
//! Pairs i < j only (G_ji = ∓G_ij for even / odd l), in tiles of a few i and j so that
//! their phase tables stay in cache, with register-blocked kernels on tables packed once.

use super::mirror::{Mirror, LANES};
use crate::buffers::{zeroed_checked, SharedSlice};
use crate::kspace::{KVectors, PhaseTables};
use crate::math::microkernel::{KernelPair, MicroKernel};
use crate::math::quadrature::gauss_legendre;
use crate::system::Cell;
use rayon::prelude::*;

/// Rows (centres i) and columns (neighbours j) of a tile of pairs.
const TILE_I: usize = 3;
const TILE_J: usize = 24;
/// k-vectors per block of the direct products (a block of a panel of H stays in L1).
const K_BLOCK: usize = 256;

/// Columns of H in the order (parity group, L, M, l, n): even l (odd L) first.
struct Columns {
    /// number of columns with even l (they come first), and in all
    even: usize,
    total: usize,
    /// per column: (l, n, L, M index inside L's 2L+1)
    cols: Vec<(usize, usize, usize, usize)>,
    /// per (L, M) with at least one column: (parity group of l, L, M, first column, count)
    blocks: Vec<(usize, usize, usize, usize, usize)>,
    /// CSR map: output components α·F + lm·nr + n (n = 0..nr, row d = α·nlm + lm) are
    /// Σ coef · H[src + n] over `terms[offsets[d]..offsets[d + 1]]` (the coupling does not
    /// depend on n, and n is the innermost index of both layouts)
    offsets: Vec<usize>,
    terms: Vec<(usize, f64)>,
}

/// A^α_{lm,LM} = ∫ k̂_α Y_lm Y_LM dΩ for L ≤ lmax + 1, indexed [α][lm][LM].
fn dipole_couplings(lmax: usize) -> Vec<Vec<Vec<f64>>> {
    let big = lmax + 1;
    let nlm = (lmax + 1) * (lmax + 1);
    let nbig = (big + 1) * (big + 1);
    // integrands are polynomials of degree ≤ 2 lmax + 2 on the sphere
    let (u, wu) = gauss_legendre(lmax + 3);
    let nphi = 2 * lmax + 6;
    let mut a = vec![vec![vec![0.0; nbig]; nlm]; 3];
    let mut y = vec![0.0; nbig];
    for (&uq, &wq) in u.iter().zip(&wu) {
        let s = (1.0 - uq * uq).max(0.0).sqrt();
        for p in 0..nphi {
            let phi = 2.0 * std::f64::consts::PI * p as f64 / nphi as f64;
            let v = [s * phi.cos(), s * phi.sin(), uq];
            super::sph::real_sph(v, big, &mut y, None);
            let w = wq * 2.0 * std::f64::consts::PI / nphi as f64;
            for (al, a_al) in a.iter_mut().enumerate() {
                for (lm, row) in a_al.iter_mut().enumerate() {
                    let f = w * v[al] * y[lm];
                    for (x, &yb) in row.iter_mut().zip(&y) {
                        *x += f * yb;
                    }
                }
            }
        }
    }
    a
}

fn columns(lmax: usize, nr: usize) -> Columns {
    let mut cols = Vec::new();
    let mut blocks = Vec::new();
    for group in 0..2 {
        // l of parity `group` couples to L of the other parity
        for big_l in ((1 - group)..=lmax + 1).step_by(2) {
            for m in 0..2 * big_l + 1 {
                let first = cols.len();
                for l in [big_l.wrapping_sub(1), big_l + 1] {
                    if l <= lmax {
                        for n in 0..nr {
                            cols.push((l, n, big_l, m));
                        }
                    }
                }
                if cols.len() > first {
                    blocks.push((group, big_l, m, first, cols.len() - first));
                }
            }
        }
    }
    let even = cols.iter().filter(|c| c.0 % 2 == 0).count();
    let index: std::collections::HashMap<_, _> =
        cols.iter().enumerate().map(|(c, &k)| (k, c)).collect();
    let a = dipole_couplings(lmax);
    let nlm = (lmax + 1) * (lmax + 1);
    let mut offsets = vec![0];
    let mut terms = Vec::new();
    for a_al in &a {
        for (lm, a_lm) in a_al.iter().enumerate().take(nlm) {
            let l = (lm as f64).sqrt().floor() as usize;
            for big_l in [l.wrapping_sub(1), l + 1] {
                if big_l > lmax + 1 {
                    continue;
                }
                for m in 0..2 * big_l + 1 {
                    let coef = a_lm[big_l * big_l + m];
                    if coef.abs() > 1e-14 {
                        terms.push((index[&(l, 0, big_l, m)], coef));
                    }
                }
            }
            offsets.push(terms.len());
        }
    }
    debug_assert_eq!(offsets.len(), 3 * nlm + 1);
    debug_assert!((0..nr).all(|n| cols.iter().filter(|c| c.1 == n).count() * nr == cols.len()));
    Columns {
        even,
        total: cols.len(),
        cols,
        blocks,
        offsets,
        terms,
    }
}

/// Atom-major trig table (N × 2 nk) over the k-vectors in the order `order`:
/// cos(k·r_i) for all k, then sin(k·r_i).
fn trig_table(kv: &KVectors, pt: &PhaseTables, order: &[usize]) -> Vec<f64> {
    let nk = order.len();
    let n = pt.atoms();
    let mut t = zeroed_checked(n * 2 * nk);
    t.par_chunks_mut(2 * nk).enumerate().for_each(|(i, row)| {
        for (q, &k) in order.iter().enumerate() {
            let (c, s) = pt.phase(kv.indices[k], i);
            row[q] = c;
            row[nk + q] = s;
        }
    });
    t
}

/// `cols` columns of a row-major table (`rows × stride`, starting at column `first`) packed
/// in panels of `nr` columns (zero-padded), k-major inside a panel: [panel][row][nr].
fn pack_panels(
    table: &[f64],
    (rows, stride): (usize, usize),
    (first, cols): (usize, usize),
    nr: usize,
) -> Vec<f64> {
    let panels = cols.div_ceil(nr);
    let mut out = vec![0.0; panels * rows * nr];
    for p in 0..panels {
        for r in 0..rows {
            for c in 0..nr.min(cols - p * nr) {
                out[(p * rows + r) * nr + c] = table[r * stride + first + p * nr + c];
            }
        }
    }
    out
}

/// The k-vectors sorted by length and split into shells of equal length.
fn shells(kv: &KVectors) -> (Vec<usize>, Vec<(usize, usize)>) {
    let norm2 = |k: usize| {
        let v = kv.vectors[k];
        v[0] * v[0] + v[1] * v[1] + v[2] * v[2]
    };
    let mut order: Vec<usize> = (0..kv.len()).collect();
    order.sort_by(|&a, &b| norm2(a).total_cmp(&norm2(b)).then(a.cmp(&b)));
    let mut out = Vec::new();
    let mut start = 0;
    for q in 1..=order.len() {
        if q == order.len() || norm2(order[q]) > norm2(order[start]) * (1.0 + 1e-12) {
            out.push((start, q));
            start = q;
        }
    }
    (order, out)
}

/// The summations `plan` can choose (forced in tests).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Summation {
    Direct,
    Shells,
    /// shells over the mirror-reduced k-set ([`Mirror`]), for cells with axes along x, y, z
    Mirror,
    /// the direct sum over the mirror-reduced k-set, for cells with axes along x, y, z
    MirrorDirect,
}

/// The H columns of one mirror class in the mirror-direct sum: first column, width with
/// the panels' padding, and the table R_k |k| Y_LM (with the orbit's weight) of its columns
/// per representative, panel by panel ([rep][panel width] from nrep·col).
struct ClassColumns {
    offset: usize,
    panels: Vec<(usize, MicroKernel)>,
    packed: Vec<f64>,
}

/// How H is summed: directly over k, or shell by shell (one value per call, so the size
/// difference of the variants does not matter).
#[allow(clippy::large_enum_variant)]
enum Plan {
    /// H packed in panels of the wide kernel: even-l columns, then odd-l ones
    Direct { hpack: Vec<f64>, even_panels: usize },
    /// H over the mirror representatives, class by class: a product of A (the class's
    /// trigonometric products) and the class's columns; H's columns ordered by class
    MirrorDirect {
        mirror: Mirror,
        classes: Vec<ClassColumns>,
        width: usize,
        /// the coupling's sources in this layout
        terms: Vec<(usize, f64)>,
    },
    /// per parity group: |k| Y_LM(k̂) packed [panel][k][nr] (k in shell order) and its LM
    /// width; R_s[l n] for the group's l packed [panel][s][nr] of the narrow kernel; the
    /// per-pair H layout [group][LM (rows padded to the kernel's)][l n (hcols)]
    Shells {
        shells: Vec<(usize, usize)>,
        angular: [Vec<f64>; 2],
        panels: [Vec<(usize, MicroKernel)>; 2],
        lm_width: [usize; 2],
        radial: [Vec<f64>; 2],
        lm_count: [usize; 2],
        hcols: [usize; 2],
        offset: [usize; 2],
        width: usize,
        /// when set, Q comes from the mirror sums, laid out [group][LM][s][pair] (pair
        /// rows for the radial stage) instead of [pair][s][LM], and `angular` is empty
        mirror: Option<Mirror>,
    },
}

#[allow(clippy::too_many_arguments)]
fn plan(
    cell: &Cell,
    kv: &KVectors,
    radial: &[f64],
    (lmax, nr): (usize, usize),
    c: &Columns,
    kern: KernelPair,
    (order, sh): (&[usize], Vec<(usize, usize)>),
    choice: Option<Summation>,
) -> Plan {
    let nk = kv.len();
    let nrad = (lmax + 1) * nr;
    let (wide, narrow) = (kern.wide.nr, kern.narrow.nr);
    let nh = c.total;
    let ne = c.even;
    let direct_cost = nk * (ne.div_ceil(wide) + (nh - ne).div_ceil(wide)) * wide;
    // the LM of each group, in the order of `c.blocks` (the index x of H's layout)
    let lms = [0, 1].map(|g| -> Vec<usize> {
        c.blocks
            .iter()
            .filter(|b| b.0 == g)
            .map(|b| b.1 * b.1 + b.2)
            .collect()
    });
    let lm_count = [lms[0].len(), lms[1].len()];
    // LM columns of each group in panels of the widest kernels that fit
    let panels = [kern.panels(lm_count[0]), kern.panels(lm_count[1])];
    let lm_width = [0, 1].map(|g| panels[g].iter().map(|p| p.1.nr).sum::<usize>());
    let mr = kern.narrow.mr;
    // l of group g: g, g + 2, ..., ≤ lmax
    let hcols = [0, 1].map(|g| ((g..=lmax).step_by(2).count() * nr).div_ceil(narrow) * narrow);
    let lm_rows = [0, 1].map(|g| lm_count[g].div_ceil(mr) * mr);
    let radial_width = lm_rows[0] * hcols[0] + lm_rows[1] * hcols[1];
    let shell_cost = nk * (lm_width[0] + lm_width[1]) + sh.len() * radial_width;
    let mirror = match choice {
        Some(Summation::Direct | Summation::Shells) => None,
        _ => Mirror::new(cell, kv, (order, &sh), lmax + 1, [&lms[0], &lms[1]]),
    };
    // the mirror sums: per representative 12 products and one multiply-add per LM; the
    // radial stage has no padded LM rows but reads Q from beyond L2 (2.5, measured on
    // cubic and orthorhombic cells of 216 atoms)
    let mirror_cost = mirror.as_ref().map(|m| {
        m.len() * (lm_count[0] + lm_count[1] + 12)
            + 5 * sh.len() * (lm_count[0] * hcols[0] + lm_count[1] * hcols[1]) / 2
    });
    // mirror-direct: per representative 12 products and every H column of its class
    let class_widths: Vec<usize> = match &mirror {
        Some(m) => (0..8)
            .map(|cl| {
                let w: usize = m
                    .class(cl)
                    .0
                    .iter()
                    .map(|&(g, x)| c.blocks.iter().filter(|b| b.0 == g).nth(x).expect("LM").4)
                    .sum();
                kern.panels(w).iter().map(|p| p.1.nr).sum()
            })
            .collect(),
        None => Vec::new(),
    };
    let mirror_direct_cost = mirror
        .as_ref()
        .map(|m| m.len() * (class_widths.iter().sum::<usize>() + 12));
    // the cheapest; the others than the plain direct sum must win by a quarter (their
    // tables and less regular kernels)
    let summation = choice.unwrap_or_else(|| {
        let candidates = [
            Some((4 * direct_cost, Summation::Direct)),
            Some((5 * shell_cost, Summation::Shells)),
            mirror_cost.map(|c| (5 * c, Summation::Mirror)),
            mirror_direct_cost.map(|c| (5 * c, Summation::MirrorDirect)),
        ];
        candidates
            .into_iter()
            .flatten()
            .min_by_key(|c| c.0)
            .map_or(Summation::Direct, |c| c.1)
    });
    assert!(
        !matches!(summation, Summation::Mirror | Summation::MirrorDirect) || mirror.is_some(),
        "the mirror summations need a diagonal cell"
    );
    if summation == Summation::MirrorDirect {
        let m = mirror.expect("checked");
        let nrep = m.len();
        let mut classes = Vec::new();
        let mut newcol = vec![usize::MAX; nh];
        let mut offset = 0;
        for cl in 0..8 {
            let (targets, weights) = m.class(cl);
            let nt = targets.len();
            // this class's columns: the blocks of its LM, in target order
            let mut cols = Vec::new();
            for (t, &(g, x)) in targets.iter().enumerate() {
                let b = c.blocks.iter().filter(|b| b.0 == g).nth(x).expect("LM");
                for old in b.3..b.3 + b.4 {
                    newcol[old] = offset + cols.len();
                    cols.push((t, old));
                }
            }
            let panels = kern.panels(cols.len());
            let width: usize = panels.iter().map(|p| p.1.nr).sum();
            let mut packed = vec![0.0; nrep * width];
            for &(col, k) in &panels {
                let w = k.nr;
                for r in 0..nrep {
                    let rk = &radial[m.member(r) * nrad..(m.member(r) + 1) * nrad];
                    for (d, &(t, old)) in cols.iter().skip(col).take(w).enumerate() {
                        let (l, nn, _, _) = c.cols[old];
                        packed[nrep * col + r * w + d] = weights[r * nt + t] * rk[l * nr + nn];
                    }
                }
            }
            classes.push(ClassColumns {
                offset,
                panels,
                packed,
            });
            offset += width;
        }
        let terms = c
            .terms
            .iter()
            .map(|&(src, coef)| (newcol[src], coef))
            .collect();
        return Plan::MirrorDirect {
            mirror: m,
            classes,
            width: offset,
            terms,
        };
    }
    let kvec = |q: usize| kv.vectors[order[q]];
    let ns = sh.len();
    let radial_groups = || {
        [0, 1].map(|g| {
            let count = (g..=lmax).step_by(2).count() * nr;
            let mut table = vec![0.0; ns * count];
            for (s, &(start, _)) in sh.iter().enumerate() {
                let rk = &radial[order[start] * nrad..(order[start] + 1) * nrad];
                for (x, l) in (g..=lmax).step_by(2).enumerate() {
                    for n in 0..nr {
                        table[s * count + x * nr + n] = rk[l * nr + n];
                    }
                }
            }
            pack_panels(&table, (ns, count), (0, count), narrow)
        })
    };
    let shell_plan = |angular: [Vec<f64>; 2], mirror: Option<Mirror>| Plan::Shells {
        radial: radial_groups(),
        shells: sh.clone(),
        angular,
        panels: panels.clone(),
        lm_width,
        lm_count,
        hcols,
        offset: [0, lm_rows[0] * hcols[0]],
        width: radial_width,
        mirror,
    };
    if summation == Summation::Mirror {
        return shell_plan([Vec::new(), Vec::new()], mirror);
    }
    if summation == Summation::Shells {
        // angular tables per group, k in shell order
        let nlm_big = (lmax + 2) * (lmax + 2);
        let mut ylm = vec![0.0; nk * nlm_big];
        ylm.par_chunks_mut(nlm_big).enumerate().for_each(|(q, y)| {
            let v = kvec(q);
            super::sph::real_sph(v, lmax + 1, y, None);
            let kn = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
            y.iter_mut().for_each(|x| *x *= kn);
        });
        let angular = [0, 1].map(|g| {
            let lms = &lms[g];
            // panel by panel, each [k][its width]: panel (col, w) starts at nk·col
            let mut packed = vec![0.0; nk * lm_width[g]];
            for &(col, k) in &panels[g] {
                let w = k.nr;
                let dst = &mut packed[nk * col..nk * (col + w)];
                for q in 0..nk {
                    for (d, &lm) in dst[q * w..(q + 1) * w].iter_mut().zip(lms.iter().skip(col)) {
                        *d = ylm[q * nlm_big + lm];
                    }
                }
            }
            packed
        });
        shell_plan(angular, None)
    } else {
        let mut h = vec![0.0; nk * nh];
        h.par_chunks_mut(nh).enumerate().for_each_init(
            || vec![0.0; (lmax + 2) * (lmax + 2)],
            |y, (q, row)| {
                let v = kvec(q);
                let kn = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
                super::sph::real_sph(v, lmax + 1, y, None);
                let rk = &radial[order[q] * nrad..(order[q] + 1) * nrad];
                for (x, &(l, nn, big_l, m)) in row.iter_mut().zip(&c.cols) {
                    *x = rk[l * nr + nn] * kn * y[big_l * big_l + m];
                }
            },
        );
        let mut hpack = pack_panels(&h, (nk, nh), (0, ne), wide);
        hpack.extend(pack_panels(&h, (nk, nh), (ne, nh - ne), wide));
        Plan::Direct {
            hpack,
            even_panels: ne.div_ceil(wide),
        }
    }
}

/// Blocks of consecutive k (in shell order) of about K_BLOCK vectors, made of whole shells:
/// (first k, end k, first shell, end shell).
fn shell_blocks(sh: &[(usize, usize)]) -> Vec<(usize, usize, usize, usize)> {
    let mut out = Vec::new();
    let mut s0 = 0;
    while s0 < sh.len() {
        let mut s1 = s0 + 1;
        while s1 < sh.len() && sh[s1].1 - sh[s0].0 <= K_BLOCK {
            s1 += 1;
        }
        out.push((sh[s0].0, sh[s1 - 1].1, s0, s1));
        s0 = s1;
    }
    out
}

/// Phases of the pairs of `chunk` over k in `k0..k1` (shell order), one row of `k1 − k0`
/// per pair (rows up to `rows` zero), for both parities; vectorised with the widest
/// instructions the CPU has.
fn chunk_phases(
    trig: &[f64],
    nk: usize,
    chunk: &[(u32, u32)],
    ks: (usize, usize),
    rows: usize,
    out: (&mut [f64], &mut [f64]),
) {
    #[inline(always)]
    fn body(
        trig: &[f64],
        nk: usize,
        chunk: &[(u32, u32)],
        (k0, k1): (usize, usize),
        rows: usize,
        (pe, po): (&mut [f64], &mut [f64]),
    ) {
        let kb = k1 - k0;
        for p in 0..rows {
            let pe = &mut pe[p * kb..(p + 1) * kb];
            let po = &mut po[p * kb..(p + 1) * kb];
            if p >= chunk.len() {
                pe.iter_mut().for_each(|x| *x = 0.0);
                po.iter_mut().for_each(|x| *x = 0.0);
                continue;
            }
            let (i, j) = (chunk[p].0 as usize, chunk[p].1 as usize);
            let ti = &trig[i * 2 * nk..(i + 1) * 2 * nk];
            let tj = &trig[j * 2 * nk..(j + 1) * 2 * nk];
            pair_phases(
                (&ti[k0..k1], &ti[nk + k0..nk + k1]),
                (&tj[k0..k1], &tj[nk + k0..nk + k1]),
                pe,
                po,
            );
        }
    }
    crate::math::dispatch::multiversion!(body; (
        trig: &[f64] = trig,
        nk: usize = nk,
        chunk: &[(u32, u32)] = chunk,
        ks: (usize, usize) = ks,
        rows: usize = rows,
        out: (&mut [f64], &mut [f64]) = out,
    ) -> ())
}

/// Runs `kern` over the row groups of a chunk: C[g·mr + r] += A[g·mr + r] B.
///
/// # Safety
/// As [`MicroKernel::run`] for every group: A rows at `a + (g·mr + r)·lda + q·inc`,
/// C rows at `c + (g·mr + r)·ldc`.
#[allow(clippy::too_many_arguments)]
unsafe fn run_groups(
    kern: &MicroKernel,
    groups: usize,
    kb: usize,
    (a, lda, inc): (*const f64, usize, usize),
    b: *const f64,
    (c, ldc): (*mut f64, usize),
    overwrite: bool,
) {
    let mr = kern.mr;
    for g in 0..groups {
        kern.run(
            kb,
            (a.add(g * mr * lda), lda, inc),
            b,
            (c.add(g * mr * ldc), ldc),
            overwrite,
        );
    }
}

/// φ_ij for both parities: sin(k·(r_i − r_j)) and −cos(k·(r_i − r_j)) from the per-atom
/// cos/sin tables.
#[inline(always)]
fn pair_phases(
    (ci, si): (&[f64], &[f64]),
    (cj, sj): (&[f64], &[f64]),
    pe: &mut [f64],
    po: &mut [f64],
) {
    let n = pe.len();
    let (ci, si, cj, sj, po) = (&ci[..n], &si[..n], &cj[..n], &sj[..n], &mut po[..n]);
    for q in 0..n {
        pe[q] = si[q] * cj[q] - ci[q] * sj[q];
        po[q] = -(ci[q] * cj[q] + si[q] * sj[q]);
    }
}

/// G_ij = A·H_ij (the dipole coupling) and G_ji = ∓G_ij, with the radial index innermost;
/// specialised for the common radial sizes so that the loops over it vectorise.
fn couple(
    (terms, offsets): (&[(usize, f64)], &[usize]),
    nr: usize,
    hp: &[f64],
    sign: &[f64],
    out: (&mut [f64], &mut [f64]),
) {
    #[inline(always)]
    fn fixed<const NR: usize>(
        (terms, offsets): (&[(usize, f64)], &[usize]),
        hp: &[f64],
        sign: &[f64],
        (gij, gji): (&mut [f64], &mut [f64]),
    ) {
        for (d, (oij, oji)) in gij
            .chunks_exact_mut(NR)
            .zip(gji.chunks_exact_mut(NR))
            .enumerate()
        {
            let mut row = [0.0; NR];
            for &(src, coef) in &terms[offsets[d]..offsets[d + 1]] {
                let h: &[f64; NR] = hp[src..src + NR].try_into().expect("NR values");
                for n in 0..NR {
                    row[n] += coef * h[n];
                }
            }
            let sg = sign[d * NR];
            for n in 0..NR {
                oij[n] = row[n];
                oji[n] = sg * row[n];
            }
        }
    }
    match nr {
        1 => fixed::<1>((terms, offsets), hp, sign, out),
        2 => fixed::<2>((terms, offsets), hp, sign, out),
        3 => fixed::<3>((terms, offsets), hp, sign, out),
        4 => fixed::<4>((terms, offsets), hp, sign, out),
        5 => fixed::<5>((terms, offsets), hp, sign, out),
        6 => fixed::<6>((terms, offsets), hp, sign, out),
        8 => fixed::<8>((terms, offsets), hp, sign, out),
        _ => {
            let (gij, gji) = out;
            let mut row = vec![0.0; nr];
            for (d, (oij, oji)) in gij
                .chunks_exact_mut(nr)
                .zip(gji.chunks_exact_mut(nr))
                .enumerate()
            {
                row.iter_mut().for_each(|x| *x = 0.0);
                for &(src, coef) in &terms[offsets[d]..offsets[d + 1]] {
                    for (x, &h) in row.iter_mut().zip(&hp[src..src + nr]) {
                        *x += coef * h;
                    }
                }
                let sg = sign[d * nr];
                for ((a, b), &x) in oij.iter_mut().zip(oji.iter_mut()).zip(&row) {
                    *a = x;
                    *b = sg * x;
                }
            }
        }
    }
}

/// Dense pair gradients (N × N × 3 × F: ∂c_i[type(j)]/∂r_j, zero for j = i) and self
/// gradients (N × 3 × A × F: ∂c_i[a]/∂r_i = −Σ_{j∈a, j≠i} G_ij), natural feature order.
/// `radial[k·(lmax+1)·nr + l·nr + n]` is R_k[ln], the k-dependent factor of W_k[lmn]
/// other than Y_lm(k̂).
pub(super) fn pair_gradients(
    cell: &Cell,
    kv: &KVectors,
    pt: &PhaseTables,
    radial: &[f64],
    (lmax, nr): (usize, usize),
    types: &[usize],
    na: usize,
) -> crate::error::Result<(Vec<f64>, Vec<f64>)> {
    let out = pair_gradients_with(cell, kv, pt, radial, (lmax, nr), types, na, None);
    // an interrupted call leaves unfinished tiles: never return them
    crate::interrupt::check()?;
    Ok(out)
}

/// As [`pair_gradients`]; `choice` forces a summation.
#[allow(clippy::too_many_arguments)]
fn pair_gradients_with(
    cell: &Cell,
    kv: &KVectors,
    pt: &PhaseTables,
    radial: &[f64],
    (lmax, nr): (usize, usize),
    types: &[usize],
    na: usize,
    choice: Option<Summation>,
) -> (Vec<f64>, Vec<f64>) {
    let n = pt.atoms();
    let nk = kv.len();
    let nlm = (lmax + 1) * (lmax + 1);
    let f = nlm * nr;
    let f3 = 3 * f;
    let af = na * f;
    if nk == 0 || n == 0 {
        // no k-vector inside the cutoff (e.g. a very wide smearing) or no atom: the k-space
        // sum is empty, so are its gradients
        return (zeroed_checked(n * n * f3), zeroed_checked(n * 3 * af));
    }
    let c = columns(lmax, nr);
    let nh = c.total;
    let kern = KernelPair::detect();
    let mr = kern.wide.mr;
    let (order, sh) = shells(kv);
    let plan = plan(cell, kv, radial, (lmax, nr), &c, kern, (&order, sh), choice);
    // sign of G_ji relative to G_ij per output component: −1 for even l, +1 for odd l
    let sign: Vec<f64> = (0..f3)
        .map(|d| {
            let l = ((d % f / nr) as f64).sqrt().floor() as usize;
            if l.is_multiple_of(2) {
                -1.0
            } else {
                1.0
            }
        })
        .collect();
    // a row of the per-chunk H: nh columns and room for the zero columns of a padded panel
    // (direct), or the shell layout; the coupling's sources in that layout
    let (ldt, terms) = match &plan {
        Plan::Direct { .. } => (nh + kern.wide.nr.max(kern.narrow.nr), c.terms.clone()),
        Plan::MirrorDirect { width, terms, .. } => (*width, terms.clone()),
        Plan::Shells {
            hcols,
            offset,
            width,
            ..
        } => {
            let mut lm_index = std::collections::HashMap::new();
            let mut next = [0usize; 2];
            for &(g, big_l, m, _, _) in &c.blocks {
                lm_index.insert((big_l, m), next[g]);
                next[g] += 1;
            }
            let terms = c
                .terms
                .iter()
                .map(|&(src, coef)| {
                    let (l, n, big_l, m) = c.cols[src];
                    let g = l % 2;
                    let x = lm_index[&(big_l, m)];
                    (offset[g] + x * hcols[g] + (l - g) / 2 * nr + n, coef)
                })
                .collect();
            (*width, terms)
        }
    };
    let trig = trig_table(kv, pt, &order);

    // tiles of pairs (i < j): TILE_I centres × TILE_J neighbours, neighbour-block major so
    // that consecutive tiles (mostly on one thread) share their neighbours' phase rows
    let mut tiles: Vec<Vec<(u32, u32)>> = Vec::new();
    for jb in (0..n).step_by(TILE_J) {
        for ib in (0..(jb + TILE_J).min(n)).step_by(TILE_I) {
            // j-major inside the tile: the phases of consecutive pairs share the
            // neighbour's row (in L1) and cycle over the few centres' rows
            let tile: Vec<(u32, u32)> = (jb..(jb + TILE_J).min(n))
                .flat_map(|j| (ib..(ib + TILE_I).min(n).min(j)).map(move |i| (i, j)))
                .map(|(i, j)| (i as u32, j as u32))
                .collect();
            if !tile.is_empty() {
                tiles.push(tile);
            }
        }
    }
    let rows = (TILE_I * TILE_J).div_ceil(mr) * mr;
    let kmax = match &plan {
        Plan::Direct { .. } => K_BLOCK.min(nk),
        // the eight class products of a block of representatives
        Plan::MirrorDirect { .. } => 8 * K_BLOCK,
        Plan::Shells { shells, .. } => shell_blocks(shells)
            .iter()
            .map(|b| b.1 - b.0)
            .max()
            .unwrap_or(0),
    };
    let qwidth = match &plan {
        Plan::Direct { .. } | Plan::MirrorDirect { .. } => [0, 0],
        Plan::Shells {
            shells, lm_width, ..
        } => [shells.len() * lm_width[0], shells.len() * lm_width[1]],
    };
    let blocks = match &plan {
        Plan::Shells { shells, .. } => shell_blocks(shells),
        Plan::Direct { .. } | Plan::MirrorDirect { .. } => Vec::new(),
    };

    let mut pair = zeroed_checked(n * n * f3);
    let out = SharedSlice::new(&mut pair);
    // scratch allocated once per block of tiles (not per rayon split: large fresh
    // allocations cost page faults)
    type Scratch = (
        Vec<f64>,
        Vec<f64>,
        Vec<f64>,
        [Vec<f64>; 2],
        Vec<[f64; LANES]>,
    );
    let mirror = match &plan {
        Plan::Shells {
            mirror: Some(m), ..
        } => Some(m),
        _ => None,
    };
    // the mirror layout: [LM][s][pair], pairs rounded up to LANES
    let mirror_q = match &plan {
        Plan::Shells {
            lm_count, shells, ..
        } => [0, 1].map(|g| lm_count[g] * shells.len() * rows.div_ceil(LANES) * LANES),
        Plan::Direct { .. } | Plan::MirrorDirect { .. } => [0, 0],
    };
    let init = || -> Scratch {
        let phases = if mirror.is_some() { 0 } else { rows * kmax };
        let direct = matches!(plan, Plan::MirrorDirect { .. });
        (
            vec![0.0; phases],
            vec![0.0; if direct { 0 } else { phases }],
            vec![0.0; rows * ldt],
            // slack: the radial stage reads up to a kernel's rows past the last LM; the
            // mirror layout [LM][s][pair] needs no more (pairs rounded up to LANES ≤ rows)
            [0, 1].map(|g| vec![0.0; (rows * qwidth[g]).max(mirror_q[g]) + 2 * mr]),
            vec![[0.0; LANES]; mirror.map_or(0, |m| m.scratch())],
        )
    };
    let per_block = tiles
        .len()
        .div_ceil(8 * rayon::current_num_threads().max(1))
        .max(1);
    let work = |(ape, apo, tmp, q, prods): &mut Scratch, chunk: &Vec<(u32, u32)>| {
        let groups = chunk.len().div_ceil(mr);
        let used = groups * mr;
        if let Plan::Direct { .. } = plan {
            tmp[..used * ldt].iter_mut().for_each(|x| *x = 0.0);
        }
        match &plan {
            Plan::MirrorDirect {
                mirror: m, classes, ..
            } => {
                // H[pair][class columns] = Σ_rep P_c[pair][rep] B_c[rep][columns], by
                // blocks of representatives; the first block overwrites
                let nrep = m.len();
                let mut r0 = 0;
                while r0 < nrep {
                    let r1 = (r0 + K_BLOCK).min(nrep);
                    let kb = r1 - r0;
                    m.class_products(pt, chunk, (r0, r1), used, &mut ape[..8 * kb * used]);
                    for (cl, cols) in classes.iter().enumerate() {
                        let a = &ape[cl * kb * used..(cl + 1) * kb * used];
                        for &(col, pk) in &cols.panels {
                            let b = &cols.packed[nrep * col + r0 * pk.nr..];
                            assert!(b.len() >= kb * pk.nr);
                            assert!(cols.offset + col + pk.nr <= ldt && tmp.len() >= used * ldt);
                            // SAFETY: A rows (pairs) r < used at stride 1, element q at
                            // q·used inside `a` (kb·used values); B holds kb·nr values; C
                            // rows at ldt inside tmp (asserted).
                            unsafe {
                                run_groups(
                                    &pk,
                                    groups,
                                    kb,
                                    (a.as_ptr(), 1, used),
                                    b.as_ptr(),
                                    (tmp.as_mut_ptr().add(cols.offset + col), ldt),
                                    r0 == 0,
                                )
                            };
                        }
                    }
                    r0 = r1;
                }
            }
            Plan::Direct { hpack, even_panels } => {
                let wide = &kern.wide;
                let panels = hpack.len() / (nk * wide.nr);
                let mut k0 = 0;
                while k0 < nk {
                    let k1 = (k0 + K_BLOCK).min(nk);
                    let kb = k1 - k0;
                    chunk_phases(&trig, nk, chunk, (k0, k1), used, (ape, apo));
                    for panel in 0..panels {
                        // H columns: even panels from 0, odd ones from c.even (the zero
                        // columns padding the last even panel add nothing)
                        let (a, col) = if panel < *even_panels {
                            (&ape, panel * wide.nr)
                        } else {
                            (&apo, c.even + (panel - even_panels) * wide.nr)
                        };
                        let hb = &hpack[(panel * nk + k0) * wide.nr..];
                        assert!(hb.len() >= kb * wide.nr && a.len() >= used * kb);
                        assert!(tmp.len() >= used * ldt && col + wide.nr <= ldt);
                        // SAFETY: A rows of kb at stride kb (asserted), B holds kb·nr
                        // values, C rows of nr inside ldt (asserted).
                        unsafe {
                            run_groups(
                                wide,
                                groups,
                                kb,
                                (a.as_ptr(), kb, 1),
                                hb.as_ptr(),
                                (tmp.as_mut_ptr().add(col), ldt),
                                false,
                            )
                        };
                    }
                    k0 = k1;
                }
            }
            Plan::Shells {
                shells,
                radial,
                lm_count,
                hcols,
                offset,
                mirror: Some(m),
                ..
            } => {
                let narrow = &kern.narrow;
                let ns = shells.len();
                // Q[g][LM][s][pair], then H[pair][LM][l n] = Σ_s Q[..][s][pair] R_s[l n]
                // with the chunk's pairs as kernel rows (no padded LM rows)
                let stride = chunk.len().div_ceil(LANES) * LANES;
                let [q0, q1] = q;
                m.shell_sums(pt, chunk, stride, [q0, q1], prods);
                for g in 0..2 {
                    let panels = hcols[g] / narrow.nr;
                    for x in 0..lm_count[g] {
                        let a = &q[g][x * ns * stride..];
                        assert!(a.len() >= (ns - 1) * stride + used);
                        for panel in 0..panels {
                            let bp = &radial[g][panel * ns * narrow.nr..];
                            let col = offset[g] + x * hcols[g] + panel * narrow.nr;
                            assert!(bp.len() >= ns * narrow.nr);
                            assert!(col + narrow.nr <= ldt);
                            // SAFETY: A rows (pairs) r < used at stride 1, element s at
                            // s·stride, inside q (asserted); B holds ns·nr values; C rows
                            // at ldt inside tmp (used·ldt values).
                            unsafe {
                                run_groups(
                                    narrow,
                                    groups,
                                    ns,
                                    (a.as_ptr(), 1, stride),
                                    bp.as_ptr(),
                                    (tmp.as_mut_ptr().add(col), ldt),
                                    true,
                                )
                            };
                        }
                    }
                }
            }
            Plan::Shells {
                shells,
                angular,
                panels,
                lm_width,
                radial,
                lm_count,
                hcols,
                offset,
                mirror: None,
                ..
            } => {
                let narrow = &kern.narrow;
                let ns = shells.len();
                // Q[pair][s][LM] = Σ_{k∈s} φ(k) |k| Y_LM(k̂), written once per entry
                // (every shell lies in one block)
                for &(k0, k1, s0, s1) in &blocks {
                    let kb = k1 - k0;
                    chunk_phases(&trig, nk, chunk, (k0, k1), used, (ape, apo));
                    for (g, a) in [&ape, &apo].into_iter().enumerate() {
                        let qg = &mut q[g];
                        assert!(a.len() >= used * kb && qg.len() >= used * qwidth[g]);
                        for s in s0..s1 {
                            let (ks, ke) = shells[s];
                            for &(col, pk) in &panels[g] {
                                let b = &angular[g][nk * col + ks * pk.nr..];
                                assert!(b.len() >= (ke - ks) * pk.nr);
                                assert!(col + pk.nr <= lm_width[g]);
                                // SAFETY: A rows of kb at stride kb, from column
                                // ks − k0 < kb; B holds (ke − ks)·nr values; C rows
                                // at stride qwidth inside q (asserted).
                                unsafe {
                                    run_groups(
                                        &pk,
                                        groups,
                                        ke - ks,
                                        (a.as_ptr().add(ks - k0), kb, 1),
                                        b.as_ptr(),
                                        (qg.as_mut_ptr().add(s * lm_width[g] + col), qwidth[g]),
                                        true,
                                    )
                                };
                            }
                        }
                    }
                }
                // H[pair][LM][l n] = Σ_s Q[pair][s][LM] R_s[l n], pair by pair: kernel
                // rows are a pair's consecutive LM (stride lm_width along s, in cache);
                // rows past the group's LM count read neighbouring values and fill
                // padding rows of H that are never read
                for g in 0..2 {
                    let panels = hcols[g] / narrow.nr;
                    for p in 0..chunk.len() {
                        for x0 in (0..lm_count[g]).step_by(narrow.mr) {
                            let a = &q[g][p * qwidth[g] + x0..];
                            assert!(a.len() > (ns - 1) * lm_width[g] + narrow.mr - 1);
                            for panel in 0..panels {
                                let bp = &radial[g][panel * ns * narrow.nr..];
                                let col = offset[g] + x0 * hcols[g] + panel * narrow.nr;
                                assert!(bp.len() >= ns * narrow.nr);
                                assert!(col + (narrow.mr - 1) * hcols[g] + narrow.nr <= ldt);
                                // SAFETY: A rows r at x0 + r + s·lm_width inside q, B
                                // holds ns·nr values, C rows inside the pair's ldt
                                // (asserted).
                                unsafe {
                                    narrow.run(
                                        ns,
                                        (a.as_ptr(), 1, lm_width[g]),
                                        bp.as_ptr(),
                                        (tmp.as_mut_ptr().add(p * ldt + col), hcols[g]),
                                        true,
                                    )
                                };
                            }
                        }
                    }
                }
            }
        }
        for (p, &(i, j)) in chunk.iter().enumerate() {
            let (i, j) = (i as usize, j as usize);
            let hp = &tmp[p * ldt..(p + 1) * ldt];
            // SAFETY: every pair (i < j) belongs to exactly one tile, so the (3, F)
            // blocks (i, j) and (j, i) written here are disjoint across tasks.
            let (gij, gji) = unsafe {
                (
                    out.slice((i * n + j) * f3, f3),
                    out.slice((j * n + i) * f3, f3),
                )
            };
            couple((&terms, &c.offsets), nr, hp, &sign, (gij, gji));
        }
    };
    tiles.par_chunks(per_block).for_each(|block| {
        let mut scratch = init();
        for chunk in block {
            if crate::interrupt::is_requested() {
                return;
            }
            work(&mut scratch, chunk);
        }
    });
    let mut selfg = vec![0.0; n * 3 * af];
    pair.par_chunks(n * f3)
        .zip(selfg.par_chunks_mut(3 * af))
        .for_each(|(row, selfrow)| {
            for (j, g) in row.chunks(f3).enumerate() {
                let a = types[j];
                for al in 0..3 {
                    let dst = &mut selfrow[(al * na + a) * f..(al * na + a + 1) * f];
                    for (o, &x) in dst.iter_mut().zip(&g[al * f..(al + 1) * f]) {
                        *o -= x;
                    }
                }
            }
        });
    (pair, selfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// k̂_α Y_lm(k̂) = Σ A^α_{lm,LM} Y_LM(k̂) holds at arbitrary directions.
    #[test]
    fn dipole_couplings_reproduce_the_product() {
        let lmax = 4;
        let a = dipole_couplings(lmax);
        let nbig = (lmax + 2) * (lmax + 2);
        let mut y = vec![0.0; nbig];
        for v in [[0.3, -0.7, 0.5], [-0.9, 0.1, -0.2], [0.0, 0.0, 1.0]] {
            let r: f64 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
            let u = [v[0] / r.sqrt(), v[1] / r.sqrt(), v[2] / r.sqrt()];
            super::super::sph::real_sph(u, lmax + 1, &mut y, None);
            for al in 0..3 {
                for lm in 0..(lmax + 1) * (lmax + 1) {
                    let lhs = u[al] * y[lm];
                    let rhs: f64 = a[al][lm].iter().zip(&y).map(|(c, yb)| c * yb).sum();
                    assert!((lhs - rhs).abs() < 1e-13, "α={al} lm={lm}: {lhs} vs {rhs}");
                }
            }
        }
    }

    /// Every summation against the plain definition G_ij = Σ_k φ_ij(k) k_α R_k Y_lm(k̂),
    /// on a cubic cell (many shells of equal |k|), an orthorhombic one (mirror symmetric,
    /// few equal lengths) and a triclinic one (neither).
    #[test]
    fn every_summation_matches_the_definition() {
        // l_max 0 (one parity group empty), 3, and 6 (mirror classes of more than eight LM)
        for (lmax, nr) in [(3, 2), (0, 1), (6, 3)] {
            summations_match_the_definition(lmax, nr);
        }
    }

    fn summations_match_the_definition(lmax: usize, nr: usize) {
        use crate::system::Cell;
        let nrad = (lmax + 1) * nr;
        let nlm = (lmax + 1) * (lmax + 1);
        let f = nlm * nr;
        for matrix in [
            [[6.0, 0.0, 0.0], [0.0, 6.0, 0.0], [0.0, 0.0, 6.0]],
            [[5.1, 0.0, 0.0], [0.0, 6.7, 0.0], [0.0, 0.0, 4.3]],
            [[6.0, 0.0, 0.0], [1.3, 5.5, 0.0], [-0.7, 0.9, 6.4]],
        ] {
            let cell = Cell::new(matrix).unwrap();
            // 29 atoms: 406 pairs, several tiles and partial vector lanes
            let positions: Vec<[f64; 3]> = (0..29)
                .map(|i| {
                    let x = i as f64;
                    [
                        (1.7 * x).sin() * 3.0 + 3.0,
                        (2.3 * x + 1.0).cos() * 3.0,
                        0.8 * x,
                    ]
                })
                .collect();
            let types: Vec<usize> = (0..29).map(|i| usize::from(i % 3 == 1)).collect();
            let kv = KVectors::half_space(&cell, 2.6).unwrap();
            let pt = PhaseTables::new(&cell, &positions, kv.max_index);
            // a radial factor depending on |k| only (as the real one does)
            let radial: Vec<f64> = kv
                .vectors
                .iter()
                .flat_map(|k| {
                    let kn = (k[0] * k[0] + k[1] * k[1] + k[2] * k[2]).sqrt();
                    (0..nrad).map(move |x| {
                        (-(kn * kn) * (x + 1) as f64 / 9.0).exp() * (kn * x as f64).cos()
                    })
                })
                .collect();
            let n = positions.len();
            let mut expect = vec![0.0; n * n * 3 * f];
            let mut y = vec![0.0; nlm];
            for (k, kvec) in kv.vectors.iter().enumerate() {
                super::super::sph::real_sph(*kvec, lmax, &mut y, None);
                for i in 0..n {
                    for j in 0..n {
                        if i == j {
                            continue;
                        }
                        let d: f64 = (0..3)
                            .map(|a| kvec[a] * (positions[i][a] - positions[j][a]))
                            .sum();
                        for lm in 0..nlm {
                            let l = (lm as f64).sqrt().floor() as usize;
                            let phi = if l.is_multiple_of(2) {
                                d.sin()
                            } else {
                                -d.cos()
                            };
                            for nn in 0..nr {
                                let w = radial[k * nrad + l * nr + nn] * y[lm];
                                for a in 0..3 {
                                    expect[(i * n + j) * 3 * f + a * f + lm * nr + nn] +=
                                        phi * kvec[a] * w;
                                }
                            }
                        }
                    }
                }
            }
            let scale = expect.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            let diagonal = matrix[1][0] == 0.0;
            let mut choices = vec![Summation::Direct, Summation::Shells];
            if diagonal {
                choices.push(Summation::Mirror);
                choices.push(Summation::MirrorDirect);
            }
            let order_and_shells = shells(&kv);
            assert_eq!(
                Mirror::new(
                    &cell,
                    &kv,
                    (&order_and_shells.0, &order_and_shells.1),
                    4,
                    [&[1], &[0]]
                )
                .is_some(),
                diagonal
            );
            for choice in choices {
                let (got, selfg) = pair_gradients_with(
                    &cell,
                    &kv,
                    &pt,
                    &radial,
                    (lmax, nr),
                    &types,
                    2,
                    Some(choice),
                );
                for (x, (g, e)) in got.iter().zip(&expect).enumerate() {
                    assert!(
                        (g - e).abs() < 1e-12 * scale,
                        "{choice:?} entry {x}: {g} vs {e}"
                    );
                }
                // self gradients: minus the sum over the neighbours of each species
                for i in 0..n {
                    for a in 0..3 {
                        for x in 0..f {
                            let s: f64 = (0..n)
                                .filter(|&j| types[j] == 1)
                                .map(|j| expect[(i * n + j) * 3 * f + a * f + x])
                                .sum();
                            let g = selfg[i * 3 * 2 * f + (a * 2 + 1) * f + x];
                            assert!((g + s).abs() < 1e-12 * scale);
                        }
                    }
                }
            }
        }
    }

    /// Only L = l ± 1 couple, and the column count is the reduced one.
    #[test]
    fn columns_are_fewer_than_three_per_feature() {
        let c = columns(3, 4);
        assert_eq!(c.total, 33 * 4);
        assert_eq!(c.offsets.len(), 3 * 16 + 1);
        assert!(c.cols[..c.even].iter().all(|x| x.0 % 2 == 0));
        assert!(c.cols[c.even..].iter().all(|x| x.0 % 2 == 1));
        let per_block: usize = c.blocks.iter().map(|b| b.4).sum();
        assert_eq!(per_block, c.total);
    }
}
