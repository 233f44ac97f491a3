//! The real-space (short-range) part shared by Ewald-type sums: Σ' q_j V_SR(|r_j − r_i + L|).
//!
//! * The short-range kernel is tabulated ([`ShortRangeTable`]): T(r) = r^p V_SR(r) and
//!   D(r) = r^{p+1} V_SR'(r) are smooth functions of r (entire for integer p), interpolated by
//!   degree-5 polynomials at Chebyshev nodes on uniform intervals of width σ/32; the
//!   interpolation error is below 1e-13 of the bare kernel 1/r^p (1e-12 for non-integer p), far below any accuracy the tuner
//!   can be asked for. For non-integer p, pairs closer than 4 intervals are evaluated exactly.
//! * Atoms are sorted by bin (bins about one cutoff wide in fractional coordinates, any
//!   triclinic cell) into contiguous arrays. For each home bin, the atoms of its half stencil
//!   (14 bins in 5 contiguous rows of the sorted arrays) that lie within the cutoff of the
//!   home atoms' bounding box are gathered once, translated to the image the stencil reaches,
//!   into a small contiguous buffer; each home atom then takes its squared distances to the
//!   whole buffer in one vectorised pass, keeps those within the cutoff (branch-free
//!   compaction), evaluates the kernel on them in a second vectorisable pass, and accumulates.
//!   Each pair is visited once (home-bin pairs j > i only).
//! * Home bins are processed in parallel; potentials and forces accumulate into one buffer per
//!   rayon thread, which are summed at the end (results equal for any thread count to
//!   round-off).

use crate::error::{Error, Result};
use crate::kernel::RangeSplit;
use crate::longrange::Request;
use crate::math::linalg::{Mat3, Vec3};
use crate::system::System;
use rayon::prelude::*;
use std::sync::Mutex;

/// Short-range sums: energy, per-atom potentials, forces and ∂E/∂ε.
#[derive(Debug, Clone, Default)]
pub struct RealSpace {
    /// E_SR = ½ Σ_i q_i φ_i^SR.
    pub energy: f64,
    /// φ_i^SR (always computed: it is free).
    pub potentials: Vec<f64>,
    /// Forces, when requested (else empty).
    pub forces: Vec<Vec3>,
    /// ∂E_SR/∂ε, when requested (else zero).
    pub virial: Mat3,
}

/// Polynomial degree of the table (6 Chebyshev nodes per interval).
const DEGREE: usize = 5;
const NODES: usize = DEGREE + 1;
/// Intervals per smearing σ.
const PER_SIGMA: f64 = 32.0;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Power {
    One,
    Integer(i32),
    Real(f64),
}

/// A tabulated short-range kernel V_SR(r) on [0, r_c] (see the module documentation).
#[derive(Debug, Clone)]
pub struct ShortRangeTable {
    split: RangeSplit,
    inv_h: f64,
    /// per interval: 6 monomial coefficients of T then 6 of D, in u ∈ [-1, 1]
    coefficients: Vec<[f64; 2 * NODES]>,
    power: Power,
    /// below this distance, evaluate exactly (non-integer p only)
    exact_below: f64,
    cutoff: f64,
}

/// Solves the Vandermonde system Σ_m c_m u_k^m = f_k (Gaussian elimination, partial pivoting).
fn monomial_coefficients(u: &[f64; NODES], f: &[f64; NODES]) -> [f64; NODES] {
    let mut a = [[0.0; NODES + 1]; NODES];
    for k in 0..NODES {
        let mut x = 1.0;
        for m in 0..NODES {
            a[k][m] = x;
            x *= u[k];
        }
        a[k][NODES] = f[k];
    }
    for col in 0..NODES {
        let mut piv = col;
        for row in col + 1..NODES {
            if a[row][col].abs() > a[piv][col].abs() {
                piv = row;
            }
        }
        a.swap(col, piv);
        for row in 0..NODES {
            if row != col {
                let factor = a[row][col] / a[col][col];
                for m in col..=NODES {
                    a[row][m] -= factor * a[col][m];
                }
            }
        }
    }
    let mut c = [0.0; NODES];
    for m in 0..NODES {
        c[m] = a[m][NODES] / a[m][m];
    }
    c
}

impl ShortRangeTable {
    /// Tabulates `split`'s short-range kernel up to `cutoff`.
    pub fn new(split: &RangeSplit, cutoff: f64) -> Result<ShortRangeTable> {
        if !(cutoff.is_finite() && cutoff > 0.0) {
            return Err(Error::parameter(
                "cutoff",
                format!("the cutoff must be positive and finite, got {cutoff}"),
            ));
        }
        let sigma = split.smearing();
        let kernel = split.kernel();
        let p = kernel.exponent();
        let power = match kernel.integer_exponent() {
            Some(1) => Power::One,
            Some(k) => Power::Integer(k as i32),
            None => Power::Real(p),
        };
        let h = sigma / PER_SIGMA;
        let intervals = (cutoff / h).ceil() as usize + 1;
        if intervals > 1 << 22 {
            return Err(Error::parameter(
                "cutoff",
                format!("cutoff {cutoff} is too long for smearing {sigma}"),
            ));
        }
        let mut u = [0.0; NODES];
        for (k, uk) in u.iter_mut().enumerate() {
            *uk = ((2 * k + 1) as f64 * std::f64::consts::PI / (2 * NODES) as f64).cos();
        }
        let coefficients = (0..intervals)
            .into_par_iter()
            .map(|j| {
                let mid = (j as f64 + 0.5) * h;
                let mut t = [0.0; NODES];
                let mut d = [0.0; NODES];
                for k in 0..NODES {
                    let r = mid + 0.5 * h * u[k];
                    let (v, dv) = split.short_range(r);
                    let rp = match power {
                        Power::One => r,
                        Power::Integer(n) => r.powi(n),
                        Power::Real(p) => r.powf(p),
                    };
                    t[k] = v * rp;
                    d[k] = dv * rp * r;
                }
                let ct = monomial_coefficients(&u, &t);
                let cd = monomial_coefficients(&u, &d);
                let mut out = [0.0; 2 * NODES];
                out[..NODES].copy_from_slice(&ct);
                out[NODES..].copy_from_slice(&cd);
                out
            })
            .collect();
        Ok(ShortRangeTable {
            split: split.clone(),
            inv_h: 1.0 / h,
            coefficients,
            power,
            exact_below: if matches!(power, Power::Real(_)) {
                4.0 * h
            } else {
                0.0
            },
            cutoff,
        })
    }

    /// The cutoff the table covers.
    pub fn cutoff(&self) -> f64 {
        self.cutoff
    }

    /// The interpolated T(r) = r^p V_SR(r) and D(r) = r^{p+1} V_SR'(r) (0 ≤ r ≤ cutoff).
    #[inline(always)]
    fn polynomials(&self, r: f64) -> (f64, f64) {
        let x = r * self.inv_h;
        let j = (x as usize).min(self.coefficients.len() - 1);
        let u = 2.0 * (x - j as f64) - 1.0;
        let c = &self.coefficients[j];
        let t = ((((c[5] * u + c[4]) * u + c[3]) * u + c[2]) * u + c[1]) * u + c[0];
        let d = ((((c[11] * u + c[10]) * u + c[9]) * u + c[8]) * u + c[7]) * u + c[6];
        (t, d)
    }

    /// (V_SR(r), V_SR'(r)/r) for 0 < r ≤ cutoff.
    #[inline(always)]
    pub fn eval(&self, r: f64) -> (f64, f64) {
        if r < self.exact_below {
            let (v, dv) = self.split.short_range(r);
            return (v, dv / r);
        }
        let (t, d) = self.polynomials(r);
        let inv_r = 1.0 / r;
        let rp = match self.power {
            Power::One => inv_r,
            Power::Integer(n) => inv_r.powi(n),
            Power::Real(p) => r.powf(-p),
        };
        (t * rp, d * rp * inv_r * inv_r)
    }
}

/// Atoms sorted by bin into contiguous arrays, and the stencil geometry.
struct Bins {
    periodic: bool,
    matrix: Mat3,
    n_bins: [usize; 3],
    search: [i64; 3],
    /// first sorted index of every bin (+ one past the end)
    start: Vec<usize>,
    /// sorted position k -> original atom
    atom: Vec<usize>,
    x: Vec<f64>,
    y: Vec<f64>,
    z: Vec<f64>,
    charges: Vec<f64>,
    /// per axis 0, 1: (image, bin) of raw index a + o + s
    wrap: [Vec<(i64, usize)>; 2],
    /// per home bin along axis 2: segments of the full row a2−s..a2+s and the half row a2..a2+s
    full_segments: Vec<Vec<(usize, usize, i64)>>,
    half_segments: Vec<Vec<(usize, usize, i64)>>,
}

impl Bins {
    fn new(system: &System, charges: &[f64], cutoff: f64) -> Bins {
        let n = system.len();
        let positions = system.positions();
        let mut coords: Vec<Vec3> = Vec::with_capacity(n);
        let mut wrapped: Vec<Vec3> = Vec::with_capacity(n);
        let (periodic, matrix, extents) = match system.cell() {
            Some(cell) => {
                let m = *cell.matrix();
                for r in positions {
                    let f = cell.to_fractional(r);
                    let mut fw = [0.0; 3];
                    for k in 0..3 {
                        fw[k] = f[k] - f[k].floor();
                        if fw[k] >= 1.0 || fw[k].is_nan() {
                            fw[k] = 0.0;
                        }
                    }
                    wrapped.push(cell.to_cartesian(&fw));
                    coords.push(fw);
                }
                (true, m, cell.plane_spacings())
            }
            None => {
                let mut lo = [f64::INFINITY; 3];
                let mut hi = [f64::NEG_INFINITY; 3];
                for r in positions {
                    for k in 0..3 {
                        lo[k] = lo[k].min(r[k]);
                        hi[k] = hi[k].max(r[k]);
                    }
                }
                let mut ext = [0.0; 3];
                for k in 0..3 {
                    ext[k] = if n > 0 { hi[k] - lo[k] } else { 0.0 };
                }
                for r in positions {
                    let mut c = [0.0; 3];
                    for k in 0..3 {
                        if ext[k] > 0.0 {
                            c[k] = ((r[k] - lo[k]) / ext[k]).min(1.0 - 1e-15);
                        }
                    }
                    coords.push(c);
                    wrapped.push(*r);
                }
                (false, [[0.0; 3]; 3], ext)
            }
        };
        // bins one cutoff wide: a 3×3×3 stencil (half: 14 bins in 5 contiguous rows) and ~ρr_c³
        // atoms per home bin to share the candidate gathering (measured ~2× faster than bins
        // of r_c/2, whose 63-bin half stencil holds about one atom per bin)
        let width = cutoff;
        let (n_bins, search) =
            crate::neighbors::bin_grid_with_width(extents, width, cutoff, n, periodic);
        let total = n_bins[0] * n_bins[1] * n_bins[2];
        let flat: Vec<usize> = coords
            .iter()
            .map(|c| {
                let mut b = [0usize; 3];
                for k in 0..3 {
                    b[k] = ((c[k] * n_bins[k] as f64) as usize).min(n_bins[k] - 1);
                }
                (b[0] * n_bins[1] + b[1]) * n_bins[2] + b[2]
            })
            .collect();
        let mut start = vec![0usize; total + 1];
        for &f in &flat {
            start[f + 1] += 1;
        }
        for b in 0..total {
            start[b + 1] += start[b];
        }
        let mut fill = start.clone();
        let mut atom = vec![0usize; n];
        for (i, &f) in flat.iter().enumerate() {
            atom[fill[f]] = i;
            fill[f] += 1;
        }
        let coordinate = |k: usize| atom.iter().map(|&i| wrapped[i][k]).collect();
        let (x, y, z) = (coordinate(0), coordinate(1), coordinate(2));
        let sorted_charges = atom.iter().map(|&i| charges[i]).collect();
        Bins {
            periodic,
            matrix,
            n_bins,
            search,
            start,
            atom,
            x,
            y,
            z,
            charges: sorted_charges,
            wrap: [
                wrap_table(n_bins[0], search[0]),
                wrap_table(n_bins[1], search[1]),
            ],
            full_segments: (0..n_bins[2] as i64)
                .map(|a| segments(a - search[2], a + search[2], n_bins[2], periodic))
                .collect(),
            half_segments: (0..n_bins[2] as i64)
                .map(|a| segments(a, a + search[2], n_bins[2], periodic))
                .collect(),
        }
    }

    #[inline]
    fn flat(&self, b0: usize, b1: usize, b2: usize) -> usize {
        (b0 * self.n_bins[1] + b1) * self.n_bins[2] + b2
    }

    /// Calls `f(home range, neighbour range, translation, same_bin)` for every stencil segment
    /// of the home bin `flat_home` in the half stencil. `same_bin` marks the segment starting
    /// at the home bin itself without translation (only j > i is to be used there).
    fn for_each_segment(
        &self,
        flat_home: usize,
        mut f: impl FnMut(std::ops::Range<usize>, std::ops::Range<usize>, Vec3, bool),
    ) {
        let home = self.start[flat_home]..self.start[flat_home + 1];
        if home.is_empty() {
            return;
        }
        let a2 = flat_home % self.n_bins[2];
        let a1 = (flat_home / self.n_bins[2]) % self.n_bins[1];
        let a0 = flat_home / (self.n_bins[1] * self.n_bins[2]);
        let s = self.search;
        let m = &self.matrix;
        for o0 in 0..=s[0] {
            let (i0, b0) = self.wrap[0][(a0 as i64 + o0 + s[0]) as usize];
            let o1_lo = if o0 == 0 { 0 } else { -s[1] };
            for o1 in o1_lo..=s[1] {
                let (i1, b1) = self.wrap[1][(a1 as i64 + o1 + s[1]) as usize];
                if !self.periodic && (i0 != 0 || i1 != 0) {
                    continue;
                }
                let row0 = o0 == 0 && o1 == 0;
                let segments = if row0 {
                    &self.half_segments[a2]
                } else {
                    &self.full_segments[a2]
                };
                let base = self.flat(b0, b1, 0);
                for &(seg_lo, seg_hi, i2) in segments {
                    let range = self.start[base + seg_lo]..self.start[base + seg_hi + 1];
                    if range.is_empty() {
                        continue;
                    }
                    let (t0, t1, t2) = (i0 as f64, i1 as f64, i2 as f64);
                    let mut t = [0.0; 3];
                    for k in 0..3 {
                        t[k] = t0 * m[0][k] + t1 * m[1][k] + t2 * m[2][k];
                    }
                    f(home.clone(), range, t, row0 && i2 == 0);
                }
            }
        }
    }
}

/// (image, bin) for every raw bin index −s..n+s of one axis.
fn wrap_table(n: usize, s: i64) -> Vec<(i64, usize)> {
    let nb = n as i64;
    (-s..nb + s)
        .map(|raw| (raw.div_euclid(nb), raw.rem_euclid(nb) as usize))
        .collect()
}

/// The segments (first bin, last bin, image) covering raw bins lo..=hi of an axis with `n`
/// bins; images other than 0 are dropped for open systems.
fn segments(lo: i64, hi: i64, n: usize, periodic: bool) -> Vec<(usize, usize, i64)> {
    let nb = n as i64;
    (lo.div_euclid(nb)..=hi.div_euclid(nb))
        .filter(|&i| periodic || i == 0)
        .map(|i| {
            (
                (lo.max(i * nb) - i * nb) as usize,
                (hi.min((i + 1) * nb - 1) - i * nb) as usize,
                i,
            )
        })
        .collect()
}

/// One thread's accumulators (sorted atom order).
struct Accumulator {
    potentials: Vec<f64>,
    forces: Vec<Vec3>,
    virial: Mat3,
}

/// One thread's scratch for a home bin: its candidates (the home bin's atoms first, then the
/// other atoms of the half stencil, translated to the image that the stencil segment
/// reaches), and the neighbours of one centre among them.
#[derive(Default)]
struct Scratch {
    x: Vec<f64>,
    y: Vec<f64>,
    z: Vec<f64>,
    q: Vec<f64>,
    /// sorted index of every candidate
    k: Vec<u32>,
    /// squared distances of the current centre to every candidate
    all: Vec<f64>,
    /// candidates within the cutoff of the current centre, and their squared distances
    hit: Vec<u32>,
    d2: Vec<f64>,
    /// V_SR and V_SR'/r of every hit
    v: Vec<f64>,
    g: Vec<f64>,
}

impl Scratch {
    fn clear(&mut self) {
        self.x.clear();
        self.y.clear();
        self.z.clear();
        self.q.clear();
        self.k.clear();
    }

    fn push(&mut self, bins: &Bins, range: std::ops::Range<usize>, t: Vec3) {
        let r = range.clone();
        self.x.extend(bins.x[r.clone()].iter().map(|v| v + t[0]));
        self.y.extend(bins.y[r.clone()].iter().map(|v| v + t[1]));
        self.z.extend(bins.z[r.clone()].iter().map(|v| v + t[2]));
        self.q.extend_from_slice(&bins.charges[r]);
        self.k.extend(range.map(|j| j as u32));
    }

    /// Like [`Scratch::push`], keeping only the atoms within `rc2` (squared cutoff) of the
    /// box `lo..hi` (branch-free compaction).
    fn push_near(
        &mut self,
        bins: &Bins,
        range: std::ops::Range<usize>,
        t: Vec3,
        (lo, hi): (Vec3, Vec3),
        rc2: f64,
    ) {
        let start = self.x.len();
        let len = range.len();
        for v in [&mut self.x, &mut self.y, &mut self.z, &mut self.q] {
            v.resize(start + len, 0.0);
        }
        self.k.resize(start + len, 0);
        let mut count = start;
        for j in range {
            let (x, y, z) = (bins.x[j] + t[0], bins.y[j] + t[1], bins.z[j] + t[2]);
            let dx = (lo[0] - x).max(x - hi[0]).max(0.0);
            let dy = (lo[1] - y).max(y - hi[1]).max(0.0);
            let dz = (lo[2] - z).max(z - hi[2]).max(0.0);
            self.x[count] = x;
            self.y[count] = y;
            self.z[count] = z;
            self.q[count] = bins.charges[j];
            self.k[count] = j as u32;
            count += usize::from(dx * dx + dy * dy + dz * dz < rc2);
        }
        for v in [&mut self.x, &mut self.y, &mut self.z, &mut self.q] {
            v.truncate(count);
        }
        self.k.truncate(count);
    }

    /// The bounding box of the first `n` candidates.
    fn bounding_box(&self, n: usize) -> (Vec3, Vec3) {
        let mut lo = [f64::INFINITY; 3];
        let mut hi = [f64::NEG_INFINITY; 3];
        for a in 0..n {
            for (k, v) in [self.x[a], self.y[a], self.z[a]].into_iter().enumerate() {
                lo[k] = lo[k].min(v);
                hi[k] = hi[k].max(v);
            }
        }
        (lo, hi)
    }

    /// Collects the candidates b in `from..` within the cutoff of candidate `a` into
    /// `hit`/`d2` (squared distances first, vectorised; then a branch-free compaction);
    /// returns their number.
    fn neighbors_of(&mut self, a: usize, from: usize, rc2: f64) -> usize {
        let total = self.x.len();
        if self.hit.len() < total {
            self.hit.resize(total, 0);
            self.d2.resize(total, 0.0);
            self.all.resize(total, 0.0);
            self.v.resize(total, 0.0);
            self.g.resize(total, 0.0);
        }
        let centre = [self.x[a], self.y[a], self.z[a]];
        let all = &mut self.all[from..total];
        squared_distances(
            centre,
            (
                &self.x[from..total],
                &self.y[from..total],
                &self.z[from..total],
            ),
            all,
        );
        let (hit, d2s) = (&mut self.hit[..], &mut self.d2[..]);
        let mut count = 0;
        for (b, &d2) in all.iter().enumerate() {
            hit[count] = (from + b) as u32;
            d2s[count] = d2;
            count += usize::from(d2 < rc2);
        }
        count
    }
}

/// Where one thread's pair terms go (sorted atom order).
struct Sink<'a> {
    potentials: &'a mut [f64],
    forces: &'a mut [Vec3],
    /// symmetric virial: xx, yy, zz, xy, xz, yz
    w: [f64; 6],
    want_forces: bool,
    want_virial: bool,
}

/// Candidates gathered before their pairs are summed (bounds the scratch memory when a
/// cutoff spans many periodic images).
const BATCH: usize = 4096;

impl Scratch {
    /// Keeps the first `len` candidates.
    fn truncate(&mut self, len: usize) {
        self.x.truncate(len);
        self.y.truncate(len);
        self.z.truncate(len);
        self.q.truncate(len);
        self.k.truncate(len);
    }

    /// Sums the pairs of the home atoms (the first `home.len()` candidates, sorted indices
    /// `home`) with the candidates after them (`first`: including the home-home pairs j > i;
    /// otherwise only the candidates beyond the home atoms).
    fn pairs(
        &mut self,
        home: std::ops::Range<usize>,
        first: bool,
        table: &ShortRangeTable,
        rc2: f64,
        sink: &mut Sink<'_>,
    ) {
        let home_len = home.len();
        for a in 0..home_len {
            let from = if first { a + 1 } else { home_len };
            let count = self.neighbors_of(a, from, rc2);
            if count == 0 {
                continue;
            }
            kernel_values(
                table,
                &self.d2[..count],
                &mut self.v[..count],
                &mut self.g[..count],
            );
            let (xi, yi, zi, qi) = (self.x[a], self.y[a], self.z[a], self.q[a]);
            let i = home.start + a;
            let mut phi_i = 0.0;
            let mut f_i = [0.0; 3];
            let w = &mut sink.w;
            for h in 0..count {
                let b = self.hit[h] as usize;
                let j = self.k[b] as usize;
                let (v, g, qj) = (self.v[h], self.g[h], self.q[b]);
                phi_i += qj * v;
                sink.potentials[j] += qi * v;
                if sink.want_forces || sink.want_virial {
                    let (dx, dy, dz) = (self.x[b] - xi, self.y[b] - yi, self.z[b] - zi);
                    let c = qi * qj * g;
                    if sink.want_forces {
                        let (fx, fy, fz) = (c * dx, c * dy, c * dz);
                        f_i[0] += fx;
                        f_i[1] += fy;
                        f_i[2] += fz;
                        let fj = &mut sink.forces[j];
                        fj[0] -= fx;
                        fj[1] -= fy;
                        fj[2] -= fz;
                    }
                    if sink.want_virial {
                        w[0] += c * dx * dx;
                        w[1] += c * dy * dy;
                        w[2] += c * dz * dz;
                        w[3] += c * dx * dy;
                        w[4] += c * dx * dz;
                        w[5] += c * dy * dz;
                    }
                }
            }
            sink.potentials[i] += phi_i;
            if sink.want_forces {
                for k in 0..3 {
                    sink.forces[i][k] += f_i[k];
                }
            }
        }
    }
}

/// |r_b − centre|² of every candidate b.
fn squared_distances(centre: Vec3, (x, y, z): (&[f64], &[f64], &[f64]), out: &mut [f64]) {
    #[inline(always)]
    fn body(c: Vec3, (x, y, z): (&[f64], &[f64], &[f64]), out: &mut [f64]) {
        for (((o, &x), &y), &z) in out.iter_mut().zip(x).zip(y).zip(z) {
            let (dx, dy, dz) = (x - c[0], y - c[1], z - c[2]);
            *o = dx * dx + dy * dy + dz * dz;
        }
    }
    crate::math::dispatch::multiversion!(body; (
        centre: Vec3 = centre,
        xyz: (&[f64], &[f64], &[f64]) = (x, y, z),
        out: &mut [f64] = out,
    ) -> ())
}

/// V_SR(r) and V_SR'(r)/r of every squared distance in `d2` (vectorised where the kernel's
/// exponent is an integer).
fn kernel_values(table: &ShortRangeTable, d2: &[f64], v: &mut [f64], g: &mut [f64]) {
    #[inline(always)]
    fn body(table: &ShortRangeTable, d2: &[f64], v: &mut [f64], g: &mut [f64]) {
        match table.power {
            Power::One => {
                for ((&d2, v), g) in d2.iter().zip(v.iter_mut()).zip(g.iter_mut()) {
                    let r = d2.sqrt();
                    let inv_r = 1.0 / r;
                    let (t, d) = table.polynomials(r);
                    *v = t * inv_r;
                    *g = d * inv_r * inv_r * inv_r;
                }
            }
            Power::Integer(n) => {
                for ((&d2, v), g) in d2.iter().zip(v.iter_mut()).zip(g.iter_mut()) {
                    let r = d2.sqrt();
                    let inv_r = 1.0 / r;
                    let (t, d) = table.polynomials(r);
                    let rp = inv_r.powi(n);
                    *v = t * rp;
                    *g = d * rp * inv_r * inv_r;
                }
            }
            Power::Real(_) => {
                for ((&d2, v), g) in d2.iter().zip(v.iter_mut()).zip(g.iter_mut()) {
                    (*v, *g) = table.eval(d2.sqrt());
                }
            }
        }
    }
    crate::math::dispatch::multiversion!(body; (
        table: &ShortRangeTable = table,
        d2: &[f64] = d2,
        v: &mut [f64] = v,
        g: &mut [f64] = g,
    ) -> ())
}

/// Computes the real-space part of a range-split sum with pair cutoff `cutoff`.
pub fn real_space(
    system: &System,
    charges: &[f64],
    split: &RangeSplit,
    cutoff: f64,
    request: Request,
) -> Result<RealSpace> {
    let table = ShortRangeTable::new(split, cutoff)?;
    real_space_with_table(system, charges, &table, request)
}

/// [`real_space`] with a prebuilt table (reuse it across calls with the same split and cutoff).
pub fn real_space_with_table(
    system: &System,
    charges: &[f64],
    table: &ShortRangeTable,
    request: Request,
) -> Result<RealSpace> {
    let n = system.len();
    let cutoff = table.cutoff();
    let bins = Bins::new(system, charges, cutoff);
    let rc2 = cutoff * cutoff;
    let want_forces = request.forces;
    let want_virial = request.virial;
    let threads = rayon::current_num_threads().max(1);
    let accumulators: Vec<Mutex<Option<(Accumulator, Scratch)>>> =
        (0..threads).map(|_| Mutex::new(None)).collect();
    let total_bins = bins.start.len() - 1;
    // chunks of home bins, scheduled dynamically
    let chunk = (total_bins / (16 * threads)).max(1);
    (0..total_bins.div_ceil(chunk))
        .into_par_iter()
        .for_each(|c| {
            if crate::interrupt::is_requested() {
                return;
            }
            let slot = rayon::current_thread_index().unwrap_or(0) % threads;
            let mut guard = accumulators[slot].lock().unwrap_or_else(|e| e.into_inner());
            let (acc, scratch) = guard.get_or_insert_with(|| {
                (
                    Accumulator {
                        potentials: vec![0.0; n],
                        forces: if want_forces {
                            vec![[0.0; 3]; n]
                        } else {
                            Vec::new()
                        },
                        virial: [[0.0; 3]; 3],
                    },
                    Scratch::default(),
                )
            });
            let mut sink = Sink {
                potentials: &mut acc.potentials,
                forces: &mut acc.forces,
                w: [0.0; 6],
                want_forces,
                want_virial,
            };
            for home_bin in c * chunk..((c + 1) * chunk).min(total_bins) {
                let home = bins.start[home_bin]..bins.start[home_bin + 1];
                if home.is_empty() {
                    continue;
                }
                scratch.clear();
                scratch.push(&bins, home.clone(), [0.0; 3]);
                let bounds = scratch.bounding_box(home.len());
                let mut first = true;
                let mut stop = false;
                bins.for_each_segment(home_bin, |home, range, t, same| {
                    if stop {
                        return;
                    }
                    // the home bin's own atoms are already in (they come first)
                    let range = if same { home.end..range.end } else { range };
                    scratch.push_near(&bins, range, t, bounds, rc2);
                    // long stencils (cutoffs far beyond the cell): sum by batches of
                    // candidates, so that memory stays bounded and Ctrl-C is heard
                    if scratch.x.len() >= home.len() + BATCH {
                        scratch.pairs(home.clone(), first, table, rc2, &mut sink);
                        scratch.truncate(home.len());
                        first = false;
                        stop = crate::interrupt::is_requested();
                    }
                });
                scratch.pairs(home, first, table, rc2, &mut sink);
            }
            let w = sink.w;
            let full = [[w[0], w[3], w[4]], [w[3], w[1], w[5]], [w[4], w[5], w[2]]];
            for a in 0..3 {
                for b in 0..3 {
                    acc.virial[a][b] += full[a][b];
                }
            }
        });
    crate::interrupt::check()?;
    let parts: Vec<Accumulator> = accumulators
        .into_iter()
        .filter_map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .map(|(acc, _)| acc)
        .collect();
    let mut out = RealSpace {
        potentials: vec![0.0; n],
        forces: if want_forces {
            vec![[0.0; 3]; n]
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    for part in &parts {
        for a in 0..3 {
            for b in 0..3 {
                out.virial[a][b] += part.virial[a][b];
            }
        }
    }
    // back to the input order, summing the threads' buffers
    let atom = &bins.atom;
    let mut phi_sorted = vec![0.0; n];
    phi_sorted.par_iter_mut().enumerate().for_each(|(k, p)| {
        *p = parts.iter().map(|a| a.potentials[k]).sum();
    });
    for (k, &i) in atom.iter().enumerate() {
        out.potentials[i] = phi_sorted[k];
    }
    if want_forces {
        let mut f_sorted = vec![[0.0; 3]; n];
        f_sorted.par_iter_mut().enumerate().for_each(|(k, f)| {
            for a in &parts {
                for c in 0..3 {
                    f[c] += a.forces[k][c];
                }
            }
        });
        for (k, &i) in atom.iter().enumerate() {
            out.forces[i] = f_sorted[k];
        }
    }
    out.energy = 0.5
        * out
            .potentials
            .iter()
            .zip(charges)
            .map(|(p, q)| p * q)
            .sum::<f64>();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::Kernel;
    use crate::neighbors::CellList;

    #[test]
    fn table_matches_the_exact_kernel() {
        for (p, sigma, rc) in [
            (1.0, 1.0, 6.0),
            (1.0, 0.3, 4.0),
            (6.0, 0.8, 5.0),
            (3.0, 1.2, 7.0),
            (2.5, 1.0, 5.0),
        ] {
            let split = Kernel::new(p).unwrap().split(sigma).unwrap();
            let table = ShortRangeTable::new(&split, rc).unwrap();
            let mut worst: f64 = 0.0;
            for s in 1..20000 {
                let r = 0.02 * sigma + (rc - 0.02 * sigma) * s as f64 / 20000.0;
                let (v, g) = table.eval(r);
                let (ve, dve) = split.short_range(r);
                // relative to the bare kernel 1/r^p (the scale of the pair terms)
                let scale = r.powf(-p);
                worst = worst
                    .max((v - ve).abs() / scale)
                    .max((g * r - dve).abs() / (p * scale / r));
            }
            println!("p = {p} sigma {sigma}: {worst:e}");
            assert!(worst < 1e-12, "p = {p}: {worst:e}");
        }
    }

    /// The binned half-pair loop against a plain sum over the cell list's neighbours.
    #[test]
    fn matches_a_plain_neighbour_sum() {
        let mut seed = 5u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let cells: [Option<Mat3>; 3] = [
            Some([[6.0, 0.0, 0.0], [2.5, 5.5, 0.0], [-1.5, 1.2, 5.0]]),
            Some([[2.0, 0.0, 0.0], [0.3, 1.8, 0.0], [0.1, 0.2, 1.9]]),
            None,
        ];
        for cell in cells {
            let n = 23;
            let positions: Vec<Vec3> = (0..n)
                .map(|_| [next() * 7.0 - 1.0, next() * 6.0, next() * 5.0 + 0.5])
                .collect();
            let charges: Vec<f64> = (0..n).map(|_| next() - 0.5).collect();
            let system = match System::new(positions, vec![1; n], cell) {
                Ok(s) => s,
                Err(_) => continue,
            };
            for rc in [1.3, 3.1, 4.7] {
                let split = Kernel::coulomb().split(0.25 * rc).unwrap();
                let got = real_space(&system, &charges, &split, rc, Request::all()).unwrap();
                let list = CellList::new(&system, rc).unwrap();
                let mut energy = 0.0;
                let mut virial = [[0.0; 3]; 3];
                for i in 0..n {
                    let mut phi = 0.0;
                    let mut f = [0.0; 3];
                    list.for_each_neighbor(i, |nb| {
                        let (v, dv) = split.short_range(nb.distance);
                        phi += charges[nb.j] * v;
                        let c = charges[i] * charges[nb.j] * dv / nb.distance;
                        for a in 0..3 {
                            f[a] += c * nb.vector[a];
                            for b in 0..3 {
                                virial[a][b] += 0.5 * c * nb.vector[a] * nb.vector[b];
                            }
                        }
                    });
                    energy += 0.5 * charges[i] * phi;
                    assert!((phi - got.potentials[i]).abs() < 1e-10 * (1.0 + phi.abs()));
                    for a in 0..3 {
                        assert!((f[a] - got.forces[i][a]).abs() < 1e-10 * (1.0 + f[a].abs()));
                    }
                }
                assert!((energy - got.energy).abs() < 1e-10 * (1.0 + energy.abs()));
                for a in 0..3 {
                    for b in 0..3 {
                        assert!((virial[a][b] - got.virial[a][b]).abs() < 1e-10);
                    }
                }
            }
        }
    }
}
