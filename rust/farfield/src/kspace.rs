//! Reciprocal lattice, k-vector enumeration and structure factors.
//!
//! k-vectors are k = m_0 b_0 + m_1 b_1 + m_2 b_2 (rows b_i of [`Cell::reciprocal`]) inside the
//! sphere |k| < k_cutoff. Only half of k-space is kept (the first nonzero index positive): the
//! other half follows from S(-k) = S(k)*, so sums over all k ≠ 0 are twice sums over this half.
//! The index bounds are |m_i| ≤ k_cutoff |a_i| / (2π) (a_i the cell vectors), which contain the
//! whole sphere for any triclinic cell.
//!
//! Phases e^{i k·r_j} are products of per-axis tables e^{i m_a θ_a(j)}, θ_a = b_a·r_j, built
//! by recursion, so no trigonometric function is evaluated per (k, atom) pair.

use crate::error::{Error, Result};
use crate::math::linalg::{dot, Vec3};
use crate::system::Cell;
use rayon::prelude::*;

/// Largest number of half-space k-vectors accepted (protects against absurd cutoffs).
pub const MAX_KVECTORS: usize = 50_000_000;

/// A run of k-vectors sharing (m_0, m_1), with m_2 running over `m2`.
#[derive(Debug, Clone, PartialEq)]
pub struct KGroup {
    /// First index m_0.
    pub m0: i32,
    /// Second index m_1.
    pub m1: i32,
    /// Range of positions of this group's k-vectors in [`KVectors::vectors`].
    pub range: std::ops::Range<usize>,
}

/// The k-vectors of half of reciprocal space within a spherical cutoff.
#[derive(Debug, Clone, PartialEq)]
pub struct KVectors {
    /// Integer indices (m_0, m_1, m_2) of each k-vector.
    pub indices: Vec<[i32; 3]>,
    /// Cartesian k-vectors.
    pub vectors: Vec<Vec3>,
    /// Squared norms |k|².
    pub norms2: Vec<f64>,
    /// Consecutive runs of k-vectors sharing (m_0, m_1).
    pub groups: Vec<KGroup>,
    /// Largest |m_i| per axis.
    pub max_index: [i32; 3],
}

impl KVectors {
    /// Half-space k-vectors of `cell` with 0 < |k| < `k_cutoff`.
    pub fn half_space(cell: &Cell, k_cutoff: f64) -> Result<KVectors> {
        if !(k_cutoff.is_finite() && k_cutoff > 0.0) {
            return Err(Error::parameter(
                "k_cutoff",
                format!("must be positive and finite, got {k_cutoff}"),
            ));
        }
        let b = cell.reciprocal();
        let lengths = cell.lengths();
        let mut max_index = [0i32; 3];
        let mut estimate = 1.0f64;
        for a in 0..3 {
            let m = (k_cutoff * lengths[a] / (2.0 * std::f64::consts::PI)).floor();
            estimate *= 2.0 * m + 1.0;
            if m > 1e6 {
                return Err(Error::parameter(
                    "k_cutoff",
                    format!("k_cutoff = {k_cutoff} needs too many k-vectors for this cell"),
                ));
            }
            max_index[a] = m as i32;
        }
        let sphere = 4.0 / 3.0 * std::f64::consts::PI * k_cutoff.powi(3) * cell.volume()
            / (8.0 * std::f64::consts::PI.powi(3))
            / 2.0;
        if sphere > MAX_KVECTORS as f64 || estimate > 20.0 * MAX_KVECTORS as f64 {
            return Err(Error::parameter(
                "k_cutoff",
                format!(
                    "k_cutoff = {k_cutoff} needs about {sphere:.3e} k-vectors (more than {MAX_KVECTORS})"
                ),
            ));
        }
        let kc2 = k_cutoff * k_cutoff;
        let mut out = KVectors {
            indices: Vec::new(),
            vectors: Vec::new(),
            norms2: Vec::new(),
            groups: Vec::new(),
            max_index,
        };
        let [n0, n1, n2] = max_index;
        for m0 in 0..=n0 {
            crate::interrupt::check()?;
            for m1 in -n1..=n1 {
                if m0 == 0 && m1 < 0 {
                    continue;
                }
                let start = out.vectors.len();
                for m2 in -n2..=n2 {
                    if m0 == 0 && m1 == 0 && m2 <= 0 {
                        continue;
                    }
                    let mut k = [0.0; 3];
                    for c in 0..3 {
                        k[c] = m0 as f64 * b[0][c] + m1 as f64 * b[1][c] + m2 as f64 * b[2][c];
                    }
                    let k2 = dot(&k, &k);
                    if k2 < kc2 {
                        out.indices.push([m0, m1, m2]);
                        out.vectors.push(k);
                        out.norms2.push(k2);
                    }
                }
                if out.vectors.len() > start {
                    out.groups.push(KGroup {
                        m0,
                        m1,
                        range: start..out.vectors.len(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Number of k-vectors (half space).
    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    /// `true` when no k-vector lies inside the cutoff.
    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }
}

/// Per-axis phase tables e^{i m θ_a(j)} for m = -M_a..=M_a, laid out `[(m + M_a) * n + j]`.
#[derive(Debug, Clone)]
pub struct PhaseTables {
    n: usize,
    max_index: [i32; 3],
    cos: [Vec<f64>; 3],
    sin: [Vec<f64>; 3],
}

impl PhaseTables {
    /// Builds the tables for `positions` in `cell`, up to the indices of `kvectors`.
    pub fn new(cell: &Cell, positions: &[Vec3], max_index: [i32; 3]) -> PhaseTables {
        let n = positions.len();
        let b = cell.reciprocal();
        let build = |a: usize| -> (Vec<f64>, Vec<f64>) {
            let m = max_index[a] as usize;
            let width = 2 * m + 1;
            let mut c = vec![0.0; width * n];
            let mut s = vec![0.0; width * n];
            for j in 0..n {
                let theta = dot(&b[a], &positions[j]);
                // reduce the angle to keep the recursion accurate
                let theta = theta.rem_euclid(2.0 * std::f64::consts::PI);
                let (s1, c1) = theta.sin_cos();
                c[m * n + j] = 1.0;
                s[m * n + j] = 0.0;
                let (mut cm, mut sm) = (1.0f64, 0.0f64);
                for k in 1..=m {
                    // exact values every 16 steps bound the recursion round-off
                    if k % 16 == 0 {
                        let (sk, ck) = (k as f64 * theta).sin_cos();
                        cm = ck;
                        sm = sk;
                    } else {
                        let cn = cm * c1 - sm * s1;
                        sm = sm * c1 + cm * s1;
                        cm = cn;
                    }
                    c[(m + k) * n + j] = cm;
                    s[(m + k) * n + j] = sm;
                    c[(m - k) * n + j] = cm;
                    s[(m - k) * n + j] = -sm;
                }
            }
            (c, s)
        };
        let (c0, s0) = build(0);
        let (c1, s1) = build(1);
        let (c2, s2) = build(2);
        PhaseTables {
            n,
            max_index,
            cos: [c0, c1, c2],
            sin: [s0, s1, s2],
        }
    }

    /// The same tables for the atoms in the order `order` (atom p of the result is atom
    /// `order[p]` of these tables).
    pub fn permuted(&self, order: &[usize]) -> PhaseTables {
        let n = order.len();
        let take = |t: &Vec<f64>| -> Vec<f64> {
            t.chunks(self.n)
                .flat_map(|row| order.iter().map(move |&j| row[j]))
                .collect()
        };
        PhaseTables {
            n,
            max_index: self.max_index,
            cos: [0, 1, 2].map(|a| take(&self.cos[a])),
            sin: [0, 1, 2].map(|a| take(&self.sin[a])),
        }
    }

    /// Slices (cos, sin) of e^{i m θ_a(j)} over all atoms j.
    #[inline]
    pub fn axis(&self, a: usize, m: i32) -> (&[f64], &[f64]) {
        let row = (m + self.max_index[a]) as usize;
        let r = row * self.n..(row + 1) * self.n;
        (&self.cos[a][r.clone()], &self.sin[a][r])
    }

    /// Number of atoms.
    pub fn atoms(&self) -> usize {
        self.n
    }

    /// e^{i(m_0 θ_0 + m_1 θ_1)} of the atoms `atoms`, written as (cos, sin) into `c`, `s`
    /// (`atoms.len()` entries each): the factor of e^{ik·r} shared by the k-vectors of one
    /// [`KGroup`]; [`cmul`] with [`axis`](Self::axis)`(2, m_2)` completes it.
    #[inline(always)]
    pub fn partial_phases(
        &self,
        (m0, m1): (i32, i32),
        atoms: std::ops::Range<usize>,
        (c, s): (&mut [f64], &mut [f64]),
    ) {
        let (c0, s0) = self.axis(0, m0);
        let (c1, s1) = self.axis(1, m1);
        let (c0, s0) = (&c0[atoms.clone()], &s0[atoms.clone()]);
        let (c1, s1) = (&c1[atoms.clone()], &s1[atoms]);
        let n = c0.len();
        let (c, s) = (&mut c[..n], &mut s[..n]);
        for j in 0..n {
            (c[j], s[j]) = cmul((c0[j], s0[j]), (c1[j], s1[j]));
        }
    }

    /// e^{ik·r_i} = Π_a e^{i m_a θ_a(i)} of atom `i` for k-vector indices `m`, as (cos, sin).
    #[inline]
    pub fn phase(&self, m: [i32; 3], i: usize) -> (f64, f64) {
        let (c0, s0) = self.axis(0, m[0]);
        let (c1, s1) = self.axis(1, m[1]);
        let (c2, s2) = self.axis(2, m[2]);
        cmul(cmul((c0[i], s0[i]), (c1[i], s1[i])), (c2[i], s2[i]))
    }
}

/// The complex product (a + ib)(c + id) as (real, imaginary) parts: how the per-axis phases
/// combine.
#[inline(always)]
pub fn cmul((a, b): (f64, f64), (c, d): (f64, f64)) -> (f64, f64) {
    (a * c - b * d, b * c + a * d)
}

/// Structure factors S(k) = Σ_j q_j e^{i k·r_j} for every k-vector, as (Re, Im) pairs.
/// Parallel over (m_0, m_1) groups; each S(k) is a sum in a fixed order, so the result
/// does not depend on the number of threads.
pub fn structure_factors(
    kvectors: &KVectors,
    tables: &PhaseTables,
    charges: &[f64],
) -> Vec<(f64, f64)> {
    let types = vec![0; charges.len()];
    let (re, im) = typed_structure_factors(kvectors, tables, charges, (&types, 1));
    re.into_iter().zip(im).collect()
}

/// Structure factors per atom type, S_a(k) = Σ_{j: type j = a} q_j e^{i k·r_j}, as two
/// tables (Re, Im) laid out [k · A + a] for `types` in 0..A. One pass over the atoms for all
/// types, vectorised with the widest instructions the CPU has; each sum has a fixed order,
/// so the result does not depend on the number of threads.
pub fn typed_structure_factors(
    kvectors: &KVectors,
    tables: &PhaseTables,
    charges: &[f64],
    (types, na): (&[usize], usize),
) -> (Vec<f64>, Vec<f64>) {
    let n = tables.atoms();
    assert!(charges.len() == n && types.len() == n && types.iter().all(|&t| t < na));
    // the atoms of each type contiguous: a range of the permuted order per type
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&j| types[j]);
    let mut counts = vec![0; na];
    types.iter().for_each(|&t| counts[t] += 1);
    let ranges: Vec<std::ops::Range<usize>> = counts
        .iter()
        .scan(0, |start, &c| {
            *start += c;
            Some(*start - c..*start)
        })
        .collect();
    let q: Vec<f64> = order.iter().map(|&j| charges[j]).collect();
    let sorted;
    let tables = if order.iter().enumerate().all(|(p, &j)| p == j) {
        tables
    } else {
        sorted = tables.permuted(&order);
        &sorted
    };
    let per_group: Vec<(Vec<f64>, Vec<f64>)> = kvectors
        .groups
        .par_iter()
        .map_init(
            || (vec![0.0; n], vec![0.0; n]),
            |(tc, ts), group| {
                if crate::interrupt::is_requested() {
                    // the caller checks the interrupt flag and discards the result
                    let len = group.range.len() * na;
                    return (vec![0.0; len], vec![0.0; len]);
                }
                tables.partial_phases((group.m0, group.m1), 0..n, (tc, ts));
                for p in 0..n {
                    tc[p] *= q[p];
                    ts[p] *= q[p];
                }
                let mut re = Vec::with_capacity(group.range.len() * na);
                let mut im = Vec::with_capacity(group.range.len() * na);
                for idx in group.range.clone() {
                    let (c2, s2) = tables.axis(2, kvectors.indices[idx][2]);
                    for r in &ranges {
                        let (x, y) = complex_dot(
                            (&tc[r.clone()], &ts[r.clone()]),
                            (&c2[r.clone()], &s2[r.clone()]),
                        );
                        re.push(x);
                        im.push(y);
                    }
                }
                (re, im)
            },
        )
        .collect();
    let mut re = Vec::with_capacity(kvectors.len() * na);
    let mut im = Vec::with_capacity(kvectors.len() * na);
    for (r, i) in per_group {
        re.extend(r);
        im.extend(i);
    }
    (re, im)
}

/// Σ_j (a_j + i b_j)(c_j + i d_j) with eight partial sums in a fixed order.
fn complex_dot((a, b): (&[f64], &[f64]), (c, d): (&[f64], &[f64])) -> (f64, f64) {
    #[inline(always)]
    fn body((a, b): (&[f64], &[f64]), (c, d): (&[f64], &[f64])) -> (f64, f64) {
        const L: usize = 8;
        let n = a.len();
        let (b, c, d) = (&b[..n], &c[..n], &d[..n]);
        let mut re = [0.0; L];
        let mut im = [0.0; L];
        let body = n / L * L;
        for j0 in (0..body).step_by(L) {
            for l in 0..L {
                let j = j0 + l;
                re[l] += a[j] * c[j] - b[j] * d[j];
                im[l] += b[j] * c[j] + a[j] * d[j];
            }
        }
        let fold = |x: [f64; L]| ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7]));
        let (mut re, mut im) = (fold(re), fold(im));
        for j in body..n {
            re += a[j] * c[j] - b[j] * d[j];
            im += b[j] * c[j] + a[j] * d[j];
        }
        (re, im)
    }
    crate::math::dispatch::multiversion!(body; (
        x: (&[f64], &[f64]) = (a, b),
        y: (&[f64], &[f64]) = (c, d),
    ) -> (f64, f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skewed_cell_sphere_is_complete() {
        let cell = Cell::new([[1.0, 0.0, 0.0], [0.9, 0.3, 0.0], [0.4, 0.5, 0.7]]).unwrap();
        let kc = 25.0;
        let kv = KVectors::half_space(&cell, kc).unwrap();
        // brute force over a generous box
        let b = cell.reciprocal();
        let mut count = 0;
        for m0 in -60i32..=60 {
            for m1 in -60i32..=60 {
                for m2 in -60i32..=60 {
                    if [m0, m1, m2] == [0, 0, 0] {
                        continue;
                    }
                    let mut k = [0.0; 3];
                    for c in 0..3 {
                        k[c] = m0 as f64 * b[0][c] + m1 as f64 * b[1][c] + m2 as f64 * b[2][c];
                    }
                    if dot(&k, &k) < kc * kc {
                        count += 1;
                    }
                }
            }
        }
        assert_eq!(2 * kv.len(), count);
    }

    /// Per type, with more atoms than the vector width (the partial sums and the tail).
    #[test]
    fn typed_structure_factors_match_direct_sums() {
        let cell = Cell::new([[7.0, 0.0, 0.0], [1.0, 6.5, 0.0], [0.3, 0.2, 6.0]]).unwrap();
        let n = 37;
        let positions: Vec<Vec3> = (0..n)
            .map(|j| {
                let x = j as f64;
                [(1.3 * x).sin() * 4.0, (0.7 * x).cos() * 5.0, 0.37 * x]
            })
            .collect();
        let charges: Vec<f64> = (0..n).map(|j| (j as f64 * 0.9).cos()).collect();
        let types: Vec<usize> = (0..n).map(|j| (j * 7) % 3).collect();
        let kv = KVectors::half_space(&cell, 3.0).unwrap();
        let tables = PhaseTables::new(&cell, &positions, kv.max_index);
        let (re, im) = typed_structure_factors(&kv, &tables, &charges, (&types, 3));
        for (k, kvec) in kv.vectors.iter().enumerate() {
            for a in 0..3 {
                let (mut x, mut y) = (0.0, 0.0);
                for j in (0..n).filter(|&j| types[j] == a) {
                    let t = dot(kvec, &positions[j]);
                    x += charges[j] * t.cos();
                    y += charges[j] * t.sin();
                }
                assert!((x - re[k * 3 + a]).abs() < 1e-12 && (y - im[k * 3 + a]).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn structure_factor_matches_direct_sum() {
        let cell = Cell::new([[3.0, 0.0, 0.0], [1.0, 2.5, 0.0], [0.3, 0.2, 2.0]]).unwrap();
        let positions = vec![[0.1, 0.2, 0.3], [1.7, -0.4, 2.9], [5.0, 3.0, -1.0]];
        let charges = [1.0, -0.4, 0.7];
        let kv = KVectors::half_space(&cell, 12.0).unwrap();
        let tables = PhaseTables::new(&cell, &positions, kv.max_index);
        let s = structure_factors(&kv, &tables, &charges);
        for (k, sk) in kv.vectors.iter().zip(&s) {
            let mut re = 0.0;
            let mut im = 0.0;
            for (r, q) in positions.iter().zip(&charges) {
                let t = dot(k, r);
                re += q * t.cos();
                im += q * t.sin();
            }
            assert!((re - sk.0).abs() < 1e-12 && (im - sk.1).abs() < 1e-12);
        }
    }
}
