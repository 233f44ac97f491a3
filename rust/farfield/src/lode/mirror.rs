//! Shell sums of the dense LODE gradients on cells whose axes lie along x, y and z.
//!
//! The k-vectors of such a cell are closed under the three axis mirrors, and every real
//! harmonic Y_LM has a definite parity under each of them (its class). Summed over the
//! mirror orbit of a representative k = (n_0, n_1, n_2 ≥ 0) in closed form,
//!
//! Σ_g e^{i gk·d} Y_LM(gk) = Y_LM(k) Π_a [2 cos(k_a d_a) (even along a) or 2i sin(k_a d_a) (odd)],
//!
//! the shell sums Q_ij[s, LM] = Σ_{k∈s} φ_ij(k) |k| Y_LM(k̂) of `pair_gradients` become sums
//! over a quarter of the half-space k-vectors, each LM with the one product of its class.
//! The products come from per-axis trigonometric tables of the pair, so the phases of the
//! individual (pair, k) are never formed either. The result is the same exact sum.

use crate::kspace::{KVectors, PhaseTables};
use crate::system::Cell;
use std::collections::HashMap;

/// Pairs handled together: one vector lane per pair.
pub(super) const LANES: usize = 16;
/// Representatives whose products are formed together (they stay in L1).
const REP_BLOCK: usize = 32;
type Lanes = [f64; LANES];

/// A representative's shell, its number of members in the half space, its |k_a| and one
/// member.
type Found = (usize, usize, [f64; 3], usize);

/// The mirror-reduced k-set and the weights of every (representative, LM).
pub(super) struct Mirror {
    /// representatives (n_0, n_1, n_2 ≥ 0), shell by shell
    reps: Vec<[usize; 3]>,
    /// a member of each representative's orbit in the half space (an index of `kv`)
    member: Vec<usize>,
    /// per shell: its range of representatives
    shell_reps: Vec<(usize, usize)>,
    /// consecutive shells of about [`REP_BLOCK`] representatives in all (or one wider shell)
    blocks: Vec<(usize, usize)>,
    /// largest index per axis
    max_index: [usize; 3],
    /// per class c (bit 2 − a set: odd along axis a): the LM it holds as (parity group,
    /// index of the LM in the group's list), and their weights [representative][target]
    targets: [Vec<(usize, usize)>; 8],
    weights: [Vec<f64>; 8],
}

impl Mirror {
    /// The reduction for `cell` when its matrix is diagonal and the half-space k-set `kv`
    /// (in shell order `order`, shells `sh`) is closed under the mirrors; `None` otherwise.
    /// `lms[g]` lists the flat indices L² + M of parity group g (odd L for g = 0, even L
    /// for g = 1), whose sums are φ = sin (g = 0) and φ = −cos (g = 1).
    pub(super) fn new(
        cell: &Cell,
        kv: &KVectors,
        (order, sh): (&[usize], &[(usize, usize)]),
        big_lmax: usize,
        lms: [&[usize]; 2],
    ) -> Option<Mirror> {
        let m = cell.matrix();
        if (0..3).any(|a| (0..3).any(|b| a != b && m[a][b] != 0.0)) {
            return None;
        }
        // representative → (shell, members in the half space, |k| components)
        let mut found: HashMap<[usize; 3], Found> = HashMap::new();
        for (s, &(start, end)) in sh.iter().enumerate() {
            for &k in &order[start..end] {
                let idx = kv.indices[k].map(|x| x.unsigned_abs() as usize);
                let v = kv.vectors[k].map(f64::abs);
                let e = found.entry(idx).or_insert((s, 0, v, k));
                if e.0 != s {
                    return None;
                }
                e.1 += 1;
            }
        }
        // a closed set holds half of every orbit of 2^(nonzero indices) vectors
        if found
            .iter()
            .any(|(idx, e)| 2 * e.1 != 1 << idx.iter().filter(|&&x| x > 0).count())
        {
            return None;
        }
        let mut reps: Vec<([usize; 3], Found)> = found.into_iter().collect();
        reps.sort_by_key(|(idx, e)| (e.0, *idx));
        let mut shell_reps = vec![(0, 0); sh.len()];
        for (r, (_, e)) in reps.iter().enumerate() {
            let range = &mut shell_reps[e.0];
            if range.1 == 0 {
                range.0 = r;
            }
            range.1 = r + 1;
        }
        let max_index = [0, 1, 2].map(|a| reps.iter().map(|x| x.0[a]).max().unwrap_or(0));

        // parity class of each harmonic, from its values at a generic direction and its mirror images
        let nbig = (big_lmax + 1) * (big_lmax + 1);
        let probe = [0.37, 0.52, 0.77];
        let mut y0 = vec![0.0; nbig];
        super::sph::real_sph(probe, big_lmax, &mut y0, None);
        let mut class = vec![0usize; nbig];
        for a in 0..3 {
            let mut v = probe;
            v[a] = -v[a];
            let mut y = vec![0.0; nbig];
            super::sph::real_sph(v, big_lmax, &mut y, None);
            for (lm, c) in class.iter_mut().enumerate() {
                debug_assert!((y[lm].abs() - y0[lm].abs()).abs() < 1e-12);
                if y[lm] * y0[lm] < 0.0 {
                    *c |= 4 >> a;
                }
            }
        }
        let mut targets: [Vec<(usize, usize)>; 8] = Default::default();
        for (g, list) in lms.iter().enumerate() {
            for (x, &lm) in list.iter().enumerate() {
                targets[class[lm]].push((g, x));
            }
        }
        let mut y = vec![0.0; nbig];
        let mut weights: [Vec<f64>; 8] = Default::default();
        for (idx, (_, count, v, _)) in &reps {
            debug_assert!(idx.iter().zip(v).all(|(&n, &x)| (n == 0) == (x == 0.0)));
            super::sph::real_sph(*v, big_lmax, &mut y, None);
            let kn = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
            for (c, list) in targets.iter().enumerate() {
                let odd = c.count_ones();
                for &(g, x) in list {
                    let lm = lms[g][x];
                    // g = 0: Im Π (2 cos | 2i sin) = ±8 (1 or 3 sines); g = 1: −Re Π = ∓8
                    // (0 or 2 sines); with the orbit factor |O|/8 and the half space's ½
                    let sign = match (g, odd) {
                        (0, 1) | (1, 2) => 1.0,
                        (0, 3) | (1, 0) => -1.0,
                        _ => unreachable!("class parity differs from the group's"),
                    };
                    weights[c].push(sign * *count as f64 * kn * y[lm]);
                }
            }
        }
        let mut blocks = Vec::new();
        let mut s0 = 0;
        while s0 < shell_reps.len() {
            let mut s1 = s0 + 1;
            while s1 < shell_reps.len() && shell_reps[s1].1 - shell_reps[s0].0 <= REP_BLOCK {
                s1 += 1;
            }
            blocks.push((s0, s1));
            s0 = s1;
        }
        Some(Mirror {
            member: reps.iter().map(|x| x.1 .3).collect(),
            reps: reps.into_iter().map(|x| x.0).collect(),
            shell_reps,
            blocks,
            max_index,
            targets,
            weights,
        })
    }

    /// Number of representatives (a quarter of the half-space k-vectors, about).
    pub(super) fn len(&self) -> usize {
        self.reps.len()
    }

    /// First row of each axis in the tables of [`Mirror::pair_axis_tables`], and the rows.
    fn axis_rows(&self) -> ([usize; 3], usize) {
        let m = self.max_index;
        let first = [0, m[0] + 1, m[0] + m[1] + 2];
        (first, first[2] + m[2] + 1)
    }

    /// (cos, sin)(n (θ_a(r_i) − θ_a(r_j))) of the pairs for every axis a and index n up to
    /// the largest, at `out[((first[a] + n)·2 + cs)·width + p]`; entries past the pairs 0.
    #[inline(always)]
    fn pair_axis_tables(
        &self,
        pt: &PhaseTables,
        pairs: &[(u32, u32)],
        width: usize,
        out: &mut [f64],
    ) {
        let (first, _) = self.axis_rows();
        for a in 0..3 {
            for n in 0..=self.max_index[a] {
                let (c, s) = pt.axis(a, n as i32);
                let row = first[a] + n;
                let (tc, ts) = out[2 * row * width..(2 * row + 2) * width].split_at_mut(width);
                for (p, &(i, j)) in pairs.iter().enumerate() {
                    let (i, j) = (i as usize, j as usize);
                    tc[p] = c[i] * c[j] + s[i] * s[j];
                    ts[p] = s[i] * c[j] - c[i] * s[j];
                }
                tc[pairs.len()..].iter_mut().for_each(|x| *x = 0.0);
                ts[pairs.len()..].iter_mut().for_each(|x| *x = 0.0);
            }
        }
    }

    /// A member (index of the k-vectors) of representative `r`'s orbit.
    pub(super) fn member(&self, r: usize) -> usize {
        self.member[r]
    }

    /// The LM of class `c` as (parity group, index in the group's list), and their weights
    /// [representative][target] (the shell sums' weights: the orbit's sign and count times
    /// |k| Y_LM of the representative).
    pub(super) fn class(&self, c: usize) -> (&[(usize, usize)], &[f64]) {
        (&self.targets[c], &self.weights[c])
    }

    /// The class products Π_a (cos | sin)(n_a (θ_a(r_i) − θ_a(r_j))) of the pairs of
    /// `chunk` for the representatives `r0..r1`, written to
    /// `out[(c·(r1 − r0) + r − r0)·stride + p]` (p the pair's row; rows past the chunk 0).
    pub(super) fn class_products(
        &self,
        pt: &PhaseTables,
        chunk: &[(u32, u32)],
        (r0, r1): (usize, usize),
        stride: usize,
        out: &mut [f64],
    ) {
        #[inline(always)]
        fn body(
            m: &Mirror,
            pt: &PhaseTables,
            chunk: &[(u32, u32)],
            (r0, r1): (usize, usize),
            stride: usize,
            out: &mut [f64],
            axis: &mut [f64],
        ) {
            let (first, _) = m.axis_rows();
            m.pair_axis_tables(pt, chunk, stride, axis);
            let nb = r1 - r0;
            let line = |row: usize, cs: usize| (2 * row + cs) * stride..(2 * row + cs + 1) * stride;
            for (q, idx) in m.reps[r0..r1].iter().enumerate() {
                let x = [line(first[0] + idx[0], 0), line(first[0] + idx[0], 1)];
                let y = [line(first[1] + idx[1], 0), line(first[1] + idx[1], 1)];
                let z = [line(first[2] + idx[2], 0), line(first[2] + idx[2], 1)];
                for b in 0..4 {
                    let (ty, tz) = (&axis[y[b >> 1].clone()], &axis[z[b & 1].clone()]);
                    for (bx, xr) in x.iter().enumerate() {
                        let tx = &axis[xr.clone()];
                        let c = bx * 4 + b;
                        let o = &mut out[(c * nb + q) * stride..(c * nb + q + 1) * stride];
                        for p in 0..stride {
                            o[p] = tx[p] * ty[p] * tz[p];
                        }
                    }
                }
            }
        }
        let mut axis = vec![0.0; 2 * self.axis_rows().1 * stride];
        crate::math::dispatch::multiversion!(body; (
            m: &Mirror = self,
            pt: &PhaseTables = pt,
            chunk: &[(u32, u32)] = chunk,
            r: (usize, usize) = (r0, r1),
            stride: usize = stride,
            out: &mut [f64] = out,
            axis: &mut [f64] = &mut axis,
        ) -> ())
    }

    /// Size of the product scratch of [`Mirror::shell_sums`].
    pub(super) fn scratch(&self) -> usize {
        8 * self
            .blocks
            .iter()
            .map(|&(s0, s1)| self.shell_reps[s1 - 1].1 - self.shell_reps[s0].0)
            .max()
            .unwrap_or(0)
    }

    /// Q_ij[s, LM] for the pairs of `chunk`, written to `q[g][(x·ns + s)·stride + p]` (x the
    /// LM's index in its group, p the pair's row, `stride` ≥ the chunk rounded up to
    /// [`LANES`]); `prods` is scratch of [`Mirror::scratch`] entries.
    pub(super) fn shell_sums(
        &self,
        pt: &PhaseTables,
        chunk: &[(u32, u32)],
        stride: usize,
        q: [&mut [f64]; 2],
        prods: &mut [Lanes],
    ) {
        crate::math::dispatch::multiversion!(Mirror::body::<true>, baseline Mirror::body::<false>; (
            m: &Mirror = self,
            pt: &PhaseTables = pt,
            chunk: &[(u32, u32)] = chunk,
            stride: usize = stride,
            q: [&mut [f64]; 2] = q,
            prods: &mut [Lanes] = prods,
        ) -> ())
    }

    #[inline(always)]
    fn body<const FUSED: bool>(
        &self,
        pt: &PhaseTables,
        chunk: &[(u32, u32)],
        stride: usize,
        mut q: [&mut [f64]; 2],
        prods: &mut [Lanes],
    ) {
        let ns = self.shell_reps.len();
        let (first, rows) = self.axis_rows();
        // per axis, index and (cos, sin): the lanes' pair factors, [row][cs][LANES]
        let mut axis = vec![0.0; 2 * rows * LANES];
        for v0 in (0..chunk.len()).step_by(LANES) {
            let lanes = &chunk[v0..(v0 + LANES).min(chunk.len())];
            self.pair_axis_tables(pt, lanes, LANES, &mut axis);
            let (table, _) = axis.as_chunks::<LANES>();
            let pair = |row: usize| &table[2 * row..2 * row + 2];
            for &(s0, s1) in &self.blocks {
                let (r0, r1) = (self.shell_reps[s0].0, self.shell_reps[s1 - 1].1);
                let nb = r1 - r0;
                // the eight class products of every representative of the block, [c][r]
                for (r, idx) in self.reps[r0..r1].iter().enumerate() {
                    let x = pair(first[0] + idx[0]);
                    let y = pair(first[1] + idx[1]);
                    let z = pair(first[2] + idx[2]);
                    for b in 0..4 {
                        let yz = mul(&y[b >> 1], &z[b & 1]);
                        prods[b * nb + r] = mul(&x[0], &yz);
                        prods[(4 + b) * nb + r] = mul(&x[1], &yz);
                    }
                }
                for c in 0..8 {
                    let targets = &self.targets[c];
                    let nt = targets.len();
                    let pc = &prods[c * nb..(c + 1) * nb];
                    let mut t0 = 0;
                    while t0 < nt {
                        let width = (nt - t0).min(8);
                        let pass = Pass {
                            pc,
                            shells: (s0, &self.shell_reps[s0..s1]),
                            w: (&self.weights[c], nt, t0),
                            targets: &targets[t0..t0 + width],
                            out: (ns, stride, v0),
                        };
                        match width {
                            1 => pass.run::<1, FUSED>(&mut q),
                            2 => pass.run::<2, FUSED>(&mut q),
                            3 => pass.run::<3, FUSED>(&mut q),
                            4 => pass.run::<4, FUSED>(&mut q),
                            5 => pass.run::<5, FUSED>(&mut q),
                            6 => pass.run::<6, FUSED>(&mut q),
                            7 => pass.run::<7, FUSED>(&mut q),
                            _ => pass.run::<8, FUSED>(&mut q),
                        }
                        t0 += width;
                    }
                }
            }
        }
    }
}

#[inline(always)]
fn mul(a: &Lanes, b: &Lanes) -> Lanes {
    let mut out = [0.0; LANES];
    for l in 0..LANES {
        out[l] = a[l] * b[l];
    }
    out
}

/// Up to eight LM of one class over the shells of a block.
struct Pass<'a> {
    /// the class products of the block's representatives
    pc: &'a [Lanes],
    /// first shell of the block and the block's shell ranges
    shells: (usize, &'a [(usize, usize)]),
    /// the class's weights [rep][nt] and the first target of this pass
    w: (&'a [f64], usize, usize),
    /// (group, LM index) of this pass's targets
    targets: &'a [(usize, usize)],
    /// shells in all, pair stride, first pair of the lanes
    out: (usize, usize, usize),
}

impl Pass<'_> {
    /// Q[g][x][s][lanes] = Σ_{r∈s} prods[r] w[r][t] for the T targets (g, x).
    #[inline(always)]
    fn run<const T: usize, const FUSED: bool>(&self, q: &mut [&mut [f64]; 2]) {
        let (s0, shells) = self.shells;
        let (w, nt, t0) = self.w;
        let (ns, stride, v0) = self.out;
        let r0 = shells[0].0;
        for (s, &(ra, rb)) in (s0..).zip(shells) {
            let mut acc = [[0.0; LANES]; T];
            for r in ra..rb {
                let p = &self.pc[r - r0];
                let wr: &[f64; T] = w[r * nt + t0..r * nt + t0 + T]
                    .try_into()
                    .expect("T weights");
                for t in 0..T {
                    for l in 0..LANES {
                        acc[t][l] = if FUSED {
                            p[l].mul_add(wr[t], acc[t][l])
                        } else {
                            p[l] * wr[t] + acc[t][l]
                        };
                    }
                }
            }
            for (a, &(g, x)) in acc.iter().zip(self.targets) {
                let at = (x * ns + s) * stride + v0;
                q[g][at..at + LANES].copy_from_slice(a);
            }
        }
    }
}
