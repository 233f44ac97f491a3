//! Dense position gradients of the periodic LODE expansion, ∂c_i[type(j)]/∂r_j for every
//! pair, by the exact k-space sum of science.md §2.3.
//!
//! For j ≠ i, G_ij[α, lmn] = Σ_{half k} φ_ij(k) k_α W_k[lmn] with W_k[lmn] = R_k[ln] Y_lm(k̂)
//! (R the radial and prefactor part) and φ_ij = sin(k·(r_i − r_j)) for even l, −cos for odd l.
//! Instead of the 3F columns k_α W_k, the sum runs over the fewer columns
//! H_k[l n L M] = R_k[ln] |k| Y_LM(k̂), L = l ± 1, since k̂_α Y_lm(k̂) = Σ_{L=l±1,M} A^α_{lm,LM}
//! Y_LM(k̂) (the product of a degree-1 and a degree-l harmonic): 33 instead of 48 columns
//! per radial function at l_max = 3. The coefficients A are projections on the sphere,
//! computed by a quadrature exact for these polynomial degrees; G = A·H per pair afterwards.
//!
//! The cost is N²/2 · N_k · n_H multiply-adds (pairs i < j; G_ji = ∓G_ij for even / odd l),
//! done as matrix products over blocks of pairs and k-vectors, so that the per-pair phases
//! of a block stay in cache.

use crate::buffers::zeroed;
use crate::kspace::{KVectors, PhaseTables};
use crate::math::microkernel::MicroKernel;
use crate::math::quadrature::gauss_legendre;
use rayon::prelude::*;

/// Pairs per block of the products.
const PAIR_BLOCK: usize = 64;
/// k-vectors per block of the products (a block of a panel of H stays in L1).
const K_BLOCK: usize = 128;

/// The reduced columns and the map back to the (α, lm, n) gradient components.
struct Columns {
    /// number of columns with even l (they come first), and in all
    even: usize,
    total: usize,
    /// per column: (l, n, L, M index inside L's 2L+1)
    cols: Vec<(usize, usize, usize, usize)>,
    /// CSR map: output component d = α·F + lm·nr + n is Σ coef · H[src] over
    /// `terms[offsets[d]..offsets[d + 1]]`
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
    for parity in 0..2 {
        for l in (parity..=lmax).step_by(2) {
            for n in 0..nr {
                for big_l in [l.wrapping_sub(1), l + 1] {
                    if big_l > lmax + 1 {
                        continue;
                    }
                    for m in 0..2 * big_l + 1 {
                        cols.push((l, n, big_l, m));
                    }
                }
            }
        }
    }
    let even = cols.iter().filter(|c| c.0 % 2 == 0).count();
    let index: std::collections::HashMap<_, _> =
        cols.iter().enumerate().map(|(c, &k)| (k, c)).collect();
    let a = dipole_couplings(lmax);
    let nlm = (lmax + 1) * (lmax + 1);
    let f = nlm * nr;
    let mut offsets = vec![0];
    let mut terms = Vec::new();
    for (al, a_al) in a.iter().enumerate() {
        for lm in 0..nlm {
            let l = (lm as f64).sqrt().floor() as usize;
            for n in 0..nr {
                debug_assert_eq!(offsets.len() - 1, al * f + lm * nr + n);
                for big_l in [l.wrapping_sub(1), l + 1] {
                    if big_l > lmax + 1 {
                        continue;
                    }
                    for m in 0..2 * big_l + 1 {
                        let coef = a_al[lm][big_l * big_l + m];
                        if coef.abs() > 1e-14 {
                            terms.push((index[&(l, n, big_l, m)], coef));
                        }
                    }
                }
                offsets.push(terms.len());
            }
        }
    }
    Columns {
        even,
        total: cols.len(),
        cols,
        offsets,
        terms,
    }
}

/// Atom-major trig table (N × 2 nk): cos(k·r_i) for all k, then sin(k·r_i).
fn trig_table(kv: &KVectors, pt: &PhaseTables) -> Vec<f64> {
    let nk = kv.len();
    let n = pt.atoms();
    let mut t = zeroed(n * 2 * nk);
    t.par_chunks_mut(2 * nk).enumerate().for_each(|(i, row)| {
        for (q, m) in kv.indices.iter().enumerate() {
            let (c, s) = super::periodic::phase(pt, *m, i);
            row[q] = c;
            row[nk + q] = s;
        }
    });
    t
}

/// φ_ij for both parities: sin(k·(r_i − r_j)) and −cos(k·(r_i − r_j)) from the per-atom
/// cos/sin tables, vectorised with the widest instructions the CPU has.
fn pair_phases(i: (&[f64], &[f64]), j: (&[f64], &[f64]), pe: &mut [f64], po: &mut [f64]) {
    #[inline(always)]
    fn body((ci, si): (&[f64], &[f64]), (cj, sj): (&[f64], &[f64]), pe: &mut [f64], po: &mut [f64]) {
        let n = pe.len();
        let (ci, si, cj, sj, po) = (&ci[..n], &si[..n], &cj[..n], &sj[..n], &mut po[..n]);
        for q in 0..n {
            pe[q] = si[q] * cj[q] - ci[q] * sj[q];
            po[q] = -(ci[q] * cj[q] + si[q] * sj[q]);
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        unsafe fn wide(i: (&[f64], &[f64]), j: (&[f64], &[f64]), pe: &mut [f64], po: &mut [f64]) {
            body(i, j, pe, po)
        }
        #[target_feature(enable = "avx2")]
        unsafe fn avx2(i: (&[f64], &[f64]), j: (&[f64], &[f64]), pe: &mut [f64], po: &mut [f64]) {
            body(i, j, pe, po)
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { wide(i, j, pe, po) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            return unsafe { avx2(i, j, pe, po) };
        }
    }
    body(i, j, pe, po)
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

/// Dense pair gradients (N × N × 3 × F: ∂c_i[type(j)]/∂r_j, zero for j = i) and self
/// gradients (N × 3 × A × F: ∂c_i[a]/∂r_i = −Σ_{j∈a, j≠i} G_ij), natural feature order.
/// `radial[k·(lmax+1)·nr + l·nr + n]` is R_k[ln], the k-dependent factor of W_k[lmn]
/// other than Y_lm(k̂).
pub(super) fn pair_gradients(
    kv: &KVectors,
    pt: &PhaseTables,
    radial: &[f64],
    (lmax, nr): (usize, usize),
    types: &[usize],
    na: usize,
) -> (Vec<f64>, Vec<f64>) {
    let n = pt.atoms();
    let nk = kv.len();
    let nlm = (lmax + 1) * (lmax + 1);
    let f = nlm * nr;
    let f3 = 3 * f;
    let af = na * f;
    let c = columns(lmax, nr);
    let (ne, nh) = (c.even, c.total);
    let no = nh - ne;
    let nrad = (lmax + 1) * nr;

    // H[k][c] = R_k[l n] |k| Y_LM(k̂)
    let mut h = vec![0.0; nk * nh];
    h.par_chunks_mut(nh).enumerate().for_each_init(
        || vec![0.0; (lmax + 2) * (lmax + 2)],
        |y, (k, row)| {
            let kvec = kv.vectors[k];
            let kn = (kvec[0] * kvec[0] + kvec[1] * kvec[1] + kvec[2] * kvec[2]).sqrt();
            super::sph::real_sph(kvec, lmax + 1, y, None);
            let rk = &radial[k * nrad..(k + 1) * nrad];
            for (x, &(l, nn, big_l, m)) in row.iter_mut().zip(&c.cols) {
                *x = rk[l * nr + nn] * kn * y[big_l * big_l + m];
            }
        },
    );
    // sign of G_ji relative to G_ij per output component: −1 for even l, +1 for odd l
    let sign: Vec<f64> = (0..f3)
        .map(|d| {
            let l = ((d % f / nr) as f64).sqrt().floor() as usize;
            if l % 2 == 0 {
                -1.0
            } else {
                1.0
            }
        })
        .collect();

    // H packed in panels of NR columns (even-l columns, then odd-l ones, each padded
    // with zero columns to whole panels), k-major inside a panel
    let kern = MicroKernel::detect();
    let (mr, nr_k) = (kern.mr, kern.nr);
    let pe_panels = ne.div_ceil(nr_k);
    let po_panels = no.div_ceil(nr_k);
    let panels = pe_panels + po_panels;
    let ldt = panels * nr_k;
    let mut hpack = vec![0.0; panels * nk * nr_k];
    hpack
        .par_chunks_mut(nk * nr_k)
        .enumerate()
        .for_each(|(panel, dst)| {
            let (first, last) = if panel < pe_panels {
                (panel * nr_k, ne)
            } else {
                (ne + (panel - pe_panels) * nr_k, nh)
            };
            for k in 0..nk {
                for col in 0..nr_k {
                    if first + col < last {
                        dst[k * nr_k + col] = h[k * nh + first + col];
                    }
                }
            }
        });
    drop(h);
    // column of H → column of the padded product
    let padded: Vec<usize> = (0..nh)
        .map(|c| if c < ne { c } else { pe_panels * nr_k + c - ne })
        .collect();
    let terms: Vec<(usize, f64)> = c.terms.iter().map(|&(s, x)| (padded[s], x)).collect();

    let trig = trig_table(kv, pt);
    let mut pair = zeroed(n * n * f3);
    let pairs: Vec<(u32, u32)> = (0..n)
        .flat_map(|i| ((i + 1)..n).map(move |j| (i as u32, j as u32)))
        .collect();
    let out = SharedSlice(pair.as_mut_ptr());
    let block = PAIR_BLOCK.div_ceil(mr) * mr;
    pairs.par_chunks(block).for_each_init(
        || {
            (
                vec![0.0; block * K_BLOCK],
                vec![0.0; block * K_BLOCK],
                vec![0.0; block * ldt],
            )
        },
        |(ape, apo, tmp), chunk| {
            let m = chunk.len();
            let groups = m.div_ceil(mr);
            tmp.iter_mut().for_each(|x| *x = 0.0);
            let mut k0 = 0;
            while k0 < nk {
                let k1 = (k0 + K_BLOCK).min(nk);
                let kb = k1 - k0;
                // per-pair phases, rows of kb (zero rows pad the last group)
                for p in 0..groups * mr {
                    let pe = &mut ape[p * kb..(p + 1) * kb];
                    let po = &mut apo[p * kb..(p + 1) * kb];
                    if p >= m {
                        pe.iter_mut().for_each(|x| *x = 0.0);
                        po.iter_mut().for_each(|x| *x = 0.0);
                        continue;
                    }
                    let (i, j) = (chunk[p].0 as usize, chunk[p].1 as usize);
                    let ti = &trig[i * 2 * nk..(i + 1) * 2 * nk];
                    let tj = &trig[j * 2 * nk..(j + 1) * 2 * nk];
                    let (ci, si) = (&ti[k0..k1], &ti[nk + k0..nk + k1]);
                    let (cj, sj) = (&tj[k0..k1], &tj[nk + k0..nk + k1]);
                    pair_phases((ci, si), (cj, sj), pe, po);
                }
                for panel in 0..panels {
                    let a = if panel < pe_panels { &ape } else { &apo };
                    let hb = &hpack[(panel * nk + k0) * nr_k..(panel * nk + k1) * nr_k];
                    for g in 0..groups {
                        let ag = &a[g * mr * kb..(g + 1) * mr * kb];
                        let cg = &mut tmp[g * mr * ldt + panel * nr_k..];
                        assert!(cg.len() >= (mr - 1) * ldt + nr_k);
                        // SAFETY: ag holds mr rows of kb values, hb kb·nr values, and cg
                        // rows 0..mr of nr values at stride ldt (asserted above).
                        unsafe {
                            kern.run(kb, (ag.as_ptr(), kb), hb.as_ptr(), (cg.as_mut_ptr(), ldt))
                        };
                    }
                }
                k0 = k1;
            }
            for (p, &(i, j)) in chunk.iter().enumerate() {
                let (i, j) = (i as usize, j as usize);
                let hp = &tmp[p * ldt..(p + 1) * ldt];
                // SAFETY: every pair (i < j) belongs to exactly one chunk, so the (3, F)
                // blocks (i, j) and (j, i) written here are disjoint across tasks.
                unsafe {
                    let gij = out.ptr().add((i * n + j) * f3);
                    let gji = out.ptr().add((j * n + i) * f3);
                    for d in 0..f3 {
                        let mut s = 0.0;
                        for &(src, coef) in &terms[c.offsets[d]..c.offsets[d + 1]] {
                            s += coef * hp[src];
                        }
                        *gij.add(d) = s;
                        *gji.add(d) = sign[d] * s;
                    }
                }
            }
        },
    );
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
            let r = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]) as f64;
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

    /// Only L = l ± 1 couple, and the column count is the reduced one.
    #[test]
    fn columns_are_fewer_than_three_per_feature() {
        let c = columns(3, 4);
        assert_eq!(c.total, 33 * 4);
        assert_eq!(c.offsets.len(), 3 * 16 * 4 + 1);
        assert!(c.cols[..c.even].iter().all(|x| x.0 % 2 == 0));
        assert!(c.cols[c.even..].iter().all(|x| x.0 % 2 == 1));
    }
}
