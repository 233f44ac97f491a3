//! Smooth particle-mesh Ewald (Essmann et al., J. Chem. Phys. 103, 8577 (1995)) for any
//! 1/r^p kernel with a Gaussian range split (docs/science.md §1.2-1.4).
//!
//! * charges are spread on a K1×K2×K3 grid over the fractional coordinates with cardinal
//!   B-splines of order n (any triclinic cell);
//! * the grid is transformed with a real-to-complex 3D FFT (`mesh::fft::Fft3`, realfft/rustfft);
//! * the influence function is V̂_LR(k)·|b1 b2 b3|²/V with the Euler exponential spline moduli
//!   |b(m)|², for whatever kernel [`RangeSplit::fourier`] describes; the Nyquist planes are
//!   dropped so that the influence function is exactly even;
//! * potentials are interpolated back with the same splines, forces are the analytic gradient
//!   of the spline-approximated energy, and the k-space virial is exact for that energy:
//!   −(1/2V) Σ B|F(Q)|² [V̂ δ + 2 dV̂/dk² k k];
//! * the short-range part is summed in real space ([`crate::realspace::real_space`]), with the self
//!   term and the k = 0 term (background for p < 3, V̂(0) for p > 3) added analytically.
//!
//! Spreading runs over per-thread private grids reduced in parallel; interpolation is parallel
//! over atoms. Memory is O(N + threads × grid).

pub use crate::mesh::fft_friendly;
// hidden like `crate::realspace` itself: the profiling driver `examples/pme_timing.rs` times
// the real-space pass on its own; not part of the API
#[doc(hidden)]
pub use crate::realspace;

use crate::buffers::{filled, zeroed};
use crate::error::{check_finite, Error, Result};
use crate::kernel::{Kernel, RangeSplit};
use crate::longrange::{LongRangeSum, Output, Request};
use crate::math::linalg::{Mat3, Vec3};
use crate::mesh::bspline::{self, signed_frequency};
use crate::mesh::fft::{Fft3, C64};
use crate::system::{check_per_atom, Cell, System};
use rayon::prelude::*;

/// Smallest and largest supported B-spline orders.
pub const ORDER_RANGE: (usize, usize) = (3, 10);

/// How the mesh is chosen. The mesh always lies along the cell vectors as given (no reduced
/// basis is substituted), so that reported points given back describe the same mesh. In a
/// strongly skewed basis (long vectors whose lattice planes are close, e.g. (a + c, b, a + 2c))
/// the same accuracy needs more points than in a reduced one: the mesh-error model of
/// [`crate::tuning::pme`] accounts for the skew of the basis, for tuned and fixed meshes alike.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mesh {
    /// Exactly these numbers of points along the three cell vectors.
    Points([usize; 3]),
    /// At most this spacing (length units) along every cell vector; sizes are rounded up to
    /// FFT-friendly numbers (factors 2, 3, 5, 7).
    Spacing(f64),
}

/// Parameters of a PME sum (all required, no defaults: [`crate::tuning::pme::tune_pme`]
/// chooses them for an accuracy).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PmeParameters {
    /// Gaussian smearing σ (length) of the range split.
    pub smearing: f64,
    /// Real-space cutoff (length).
    pub cutoff: f64,
    /// The mesh.
    pub mesh: Mesh,
    /// B-spline order n (points per axis per atom), within [`ORDER_RANGE`] (3 to 10).
    pub order: usize,
}

impl PmeParameters {
    /// Checks the parameters, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        if !(self.smearing.is_finite() && self.smearing > 0.0) {
            return Err(Error::parameter(
                "smearing",
                format!("must be positive and finite, got {}", self.smearing),
            ));
        }
        if !(self.cutoff.is_finite() && self.cutoff > 0.0) {
            return Err(Error::parameter(
                "cutoff",
                format!("must be positive and finite, got {}", self.cutoff),
            ));
        }
        if self.order < ORDER_RANGE.0 || self.order > ORDER_RANGE.1 {
            return Err(Error::parameter(
                "order",
                format!(
                    "the B-spline order must be between {} and {}, got {}",
                    ORDER_RANGE.0, ORDER_RANGE.1, self.order
                ),
            ));
        }
        match self.mesh {
            Mesh::Points(n) => {
                if n.iter().any(|&k| k < self.order || k > 1 << 14) {
                    return Err(Error::parameter(
                        "mesh",
                        format!(
                            "every mesh size must be between the order ({}) and 16384, got {n:?}",
                            self.order
                        ),
                    ));
                }
            }
            Mesh::Spacing(h) => {
                if !(h.is_finite() && h > 0.0) {
                    return Err(Error::parameter(
                        "mesh_spacing",
                        format!("must be positive and finite, got {h}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The mesh sizes used for `cell`.
    pub fn grid(&self, cell: &Cell) -> Result<[usize; 3]> {
        match self.mesh {
            Mesh::Points(n) => Ok(n),
            Mesh::Spacing(h) => {
                let lengths = cell.lengths();
                let mut n = [0; 3];
                for a in 0..3 {
                    let raw = (lengths[a] / h).ceil();
                    if raw > (1 << 14) as f64 {
                        return Err(Error::parameter(
                            "mesh_spacing",
                            format!(
                                "spacing {h} gives more than 16384 mesh points along a cell vector \
                                 of length {}",
                                lengths[a]
                            ),
                        ));
                    }
                    n[a] = fft_friendly((raw as usize).max(self.order).max(2));
                }
                Ok(n)
            }
        }
    }
}

/// How charges are spread on the mesh in parallel (both are free of data races and give the
/// same grid to round-off; see `benches/python/bench_pme_results.md` for timings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Spreading {
    /// Every thread spreads a contiguous chunk of the sorted atoms on a private grid; the
    /// grids are then summed in parallel. Memory: threads × grid.
    #[default]
    ThreadGrids,
    /// Atoms sorted by the mesh plane (first axis) of their first spline point; the planes are
    /// cut into slabs at least `order − 1` planes wide, and the even then the odd slabs are
    /// spread concurrently on one shared grid (an atom writes only to its slab and the next
    /// `order − 1` planes, so slabs of the same parity never overlap). Memory: one grid.
    /// The spread grid is independent of the thread count bit for bit.
    Slabs,
}

/// A smooth PME sum of a kernel 1/r^p.
#[derive(Debug, Clone)]
pub struct Pme {
    kernel: Kernel,
    parameters: PmeParameters,
    split: RangeSplit,
    spreading: Spreading,
}

impl Pme {
    /// Creates the sum, validating the parameters.
    pub fn new(kernel: Kernel, parameters: PmeParameters) -> Result<Pme> {
        parameters.validate()?;
        let split = kernel.split(parameters.smearing)?;
        Ok(Pme {
            kernel,
            parameters,
            split,
            spreading: Spreading::default(),
        })
    }

    /// The same sum with another charge-spreading strategy.
    pub fn with_spreading(mut self, spreading: Spreading) -> Pme {
        self.spreading = spreading;
        self
    }

    /// The charge-spreading strategy.
    pub fn spreading(&self) -> Spreading {
        self.spreading
    }

    /// The parameters.
    pub fn parameters(&self) -> &PmeParameters {
        &self.parameters
    }

    /// The kernel.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// The charge grid Q on the mesh of `system`'s cell (mesh sizes, values in row-major
    /// order over the three cell vectors): Σ_i q_i M_n(u_i1 − k1) M_n(u_i2 − k2) M_n(u_i3 − k3)
    /// summed over periodic images, u = K ∘ fractional coordinates.
    // Hidden, not crate-private: the profiling driver `examples/pme_timing.rs` times the
    // spreading on its own. Not part of the API.
    #[doc(hidden)]
    pub fn charge_grid(&self, system: &System, charges: &[f64]) -> Result<([usize; 3], Vec<f64>)> {
        check_per_atom("charges", charges.len(), system)?;
        check_finite("charges", charges)?;
        let cell = system
            .cell()
            .ok_or_else(|| Error::Unsupported("PME needs a periodic cell".into()))?;
        let n = self.parameters.grid(cell)?;
        crate::tuning::pme::check_pme_work(system, &self.parameters)?;
        let grid = self.spread(system, charges, n)?.2;
        crate::interrupt::check()?;
        Ok((n, grid))
    }

    /// Sorts the atoms by mesh cell (first axis major) and spreads the charges: (sort key and
    /// original index per sorted atom, sorted (position, charge), charge grid).
    #[allow(clippy::type_complexity)]
    fn spread(
        &self,
        system: &System,
        charges: &[f64],
        n: [usize; 3],
    ) -> Result<(Vec<(usize, usize)>, Vec<(Vec3, f64)>, Vec<f64>)> {
        let order = self.parameters.order;
        let positions = system.positions();
        let inv = match system.cell() {
            Some(cell) => *cell.inverse(),
            None => return Ok((Vec::new(), Vec::new(), zeroed(n[0] * n[1] * n[2])?)),
        };
        let scaled = |r: &Vec3| scaled_coordinates(r, &inv, n);
        // visit atoms sorted by their mesh cell (first-axis-major) for cache locality; the
        // slab strategy relies on this order
        let mut order_atoms: Vec<(usize, usize)> = positions
            .par_iter()
            .enumerate()
            .map(|(i, r)| {
                let u = scaled(r);
                (
                    (u[0] as usize * n[1] + u[1] as usize) * n[2] + u[2] as usize,
                    i,
                )
            })
            .collect();
        order_atoms.par_sort_unstable();
        let sorted: Vec<(Vec3, f64)> = order_atoms
            .iter()
            .map(|&(_, i)| (positions[i], charges[i]))
            .collect();
        let grid = match self.spreading {
            Spreading::ThreadGrids => {
                bspline::with_order!(order, P => spread_thread_grids::<P>(&sorted, n, &scaled)?)
            }
            Spreading::Slabs => {
                let planes: Vec<usize> = order_atoms
                    .iter()
                    .map(|&(key, _)| key / (n[1] * n[2]))
                    .collect();
                bspline::with_order!(order, P => spread_slabs::<P>(&sorted, &planes, n, &scaled)?)
            }
        };
        Ok((order_atoms, sorted, grid))
    }

    /// The reciprocal-space part only: (energy, per-atom potentials, forces, virial) of the
    /// mesh sum over k ≠ 0. The charges are not checked (the caller checks them).
    // Hidden, not crate-private: the profiling driver `examples/pme_timing.rs` times the
    // reciprocal part on its own. Not part of the API.
    #[doc(hidden)]
    pub fn reciprocal(
        &self,
        system: &System,
        charges: &[f64],
        request: Request,
    ) -> Result<(f64, Vec<f64>, Vec<Vec3>, Mat3)> {
        let cell = system
            .cell()
            .ok_or_else(|| Error::Unsupported("PME needs a periodic cell".into()))?;
        let n = self.parameters.grid(cell)?;
        let order = self.parameters.order;
        let inv = *cell.inverse();
        let volume = cell.volume();
        let recip = cell.reciprocal();

        let scaled = |r: &Vec3| scaled_coordinates(r, &inv, n);
        let (order_atoms, sorted, mut grid) = self.spread(system, charges, n)?;
        crate::interrupt::check()?;
        let n2p = n[2] + order - 1;

        // --- forward FFT, influence function, energy and virial
        let fft = Fft3::shared(n);
        let mut spec = filled(fft.spectrum_len(), C64::new(0.0, 0.0))?;
        fft.forward(&mut grid, &mut spec);
        crate::interrupt::check()?;
        let moduli = bspline::moduli3(order, n);
        let split = &self.split;
        let sigma2 = split.smearing() * split.smearing();
        let orthorhombic = (0..3).all(|a| (0..3).all(|b| a == b || recip[a][b] == 0.0));
        let separable: Option<[Vec<f64>; 3]> =
            if orthorhombic && self.kernel.integer_exponent() == Some(1) {
                let axis = |a: usize| -> Vec<f64> {
                    (0..n[a])
                        .map(|m| {
                            let f = signed_frequency(m, n[a]).unwrap_or(0.0) * recip[a][a];
                            (-0.5 * sigma2 * f * f).exp()
                        })
                        .collect()
                };
                Some([axis(0), axis(1), axis(2)])
            } else {
                None
            };
        let want_virial = request.virial;
        let plane = n[0] * n[1];
        let (energy2, virial2) = spec
            .par_chunks_mut(plane)
            .enumerate()
            .map(|(m3, rows)| {
                let mut e = 0.0;
                let mut w = [[0.0; 3]; 3];
                if crate::interrupt::is_requested() {
                    return (e, w);
                }
                let f3 = signed_frequency(m3, n[2]);
                let weight = if m3 == 0 { 1.0 } else { 2.0 };
                for m2 in 0..n[1] {
                    let f2 = signed_frequency(m2, n[1]);
                    for m1 in 0..n[0] {
                        let s = &mut rows[m2 * n[0] + m1];
                        let (f1, f2, f3) = match (signed_frequency(m1, n[0]), f2, f3) {
                            (Some(a), Some(b), Some(c)) => (a, b, c),
                            _ => {
                                *s = C64::new(0.0, 0.0);
                                continue;
                            }
                        };
                        if m1 == 0 && m2 == 0 && m3 == 0 {
                            *s = C64::new(0.0, 0.0);
                            continue;
                        }
                        let mut k = [0.0; 3];
                        for c in 0..3 {
                            k[c] = f1 * recip[0][c] + f2 * recip[1][c] + f3 * recip[2][c];
                        }
                        let k2 = k[0] * k[0] + k[1] * k[1] + k[2] * k[2];
                        let bmod = moduli[0][m1] * moduli[1][m2] * moduli[2][m3] / volume;
                        let (vh, dvh) = match &separable {
                            // Coulomb in an orthorhombic cell: e^{−σ²k²/2} = Π_a e^{−σ²k_a²/2}
                            Some(e) => {
                                let v = 4.0 * std::f64::consts::PI * e[0][m1] * e[1][m2] * e[2][m3]
                                    / k2;
                                (v, -v * (0.5 * sigma2 + 1.0 / k2))
                            }
                            None => split.fourier(k2),
                        };
                        let g = vh * bmod;
                        let s2 = s.norm_sqr() * weight;
                        e += g * s2;
                        if want_virial {
                            let d = 2.0 * dvh * bmod * s2;
                            for a in 0..3 {
                                w[a][a] += g * s2;
                                for b in 0..3 {
                                    w[a][b] += d * k[a] * k[b];
                                }
                            }
                        }
                        *s *= g;
                    }
                }
                (e, w)
            })
            .reduce(
                || (0.0, [[0.0; 3]; 3]),
                |(e1, w1), (e2, w2)| {
                    let mut w = w1;
                    for a in 0..3 {
                        for b in 0..3 {
                            w[a][b] += w2[a][b];
                        }
                    }
                    (e1 + e2, w)
                },
            );
        crate::interrupt::check()?;
        let energy = 0.5 * energy2;
        let mut virial = [[0.0; 3]; 3];
        if want_virial {
            for a in 0..3 {
                for b in 0..3 {
                    virial[a][b] = -0.5 * virial2[a][b];
                }
            }
        }
        if !(request.potentials || request.forces) {
            return Ok((energy, Vec::new(), Vec::new(), virial));
        }

        // --- back to the grid: φ(k) = Σ_m G(m) F[Q](m) e^{2πi m·k/K}
        fft.inverse(&mut spec, &mut grid);
        drop(spec);
        crate::interrupt::check()?;
        // the potential grid padded along the last axis like the spreading grids
        let mut padded = zeroed(n[0] * n[1] * n2p)?;
        padded
            .par_chunks_mut(n2p)
            .zip(grid.par_chunks(n[2]))
            .for_each(|(out, row)| {
                let wrap = order - 1;
                out[..wrap].copy_from_slice(&row[n[2] - wrap..]);
                out[wrap..].copy_from_slice(row);
            });
        drop(grid);
        // ∂u_a/∂r_b = K_a inv[b][a]
        let want_forces = request.forces;
        let per_sorted: Vec<(f64, Vec3)> = bspline::with_order!(order, P => {
            sorted
                .par_iter()
                .map(|&(ref r, qi)| {
                    if crate::interrupt::is_requested() {
                        return (0.0, [0.0; 3]);
                    }
                    let st = Stencil::<P>::new(scaled(r), n);
                    let mut idx0 = [0usize; P];
                    let b0 = st.start0 + n[0] - P + 1;
                    for (j, idx) in idx0.iter_mut().enumerate() {
                        *idx = (b0 + j) % n[0];
                    }
                    let (phi, du) = st.interpolate(&padded, &idx0, n[1], n2p);
                    let mut f = [0.0; 3];
                    if want_forces {
                        for b in 0..3 {
                            let mut g = 0.0;
                            for a in 0..3 {
                                g += n[a] as f64 * inv[b][a] * du[a];
                            }
                            f[b] = -qi * g;
                        }
                    }
                    (phi, f)
                })
                .collect()
        });
        crate::interrupt::check()?;
        let mut potentials = vec![0.0; system.len()];
        let mut forces = vec![[0.0; 3]; system.len()];
        for (&(_, i), (phi, f)) in order_atoms.iter().zip(per_sorted) {
            potentials[i] = phi;
            forces[i] = f;
        }
        Ok((
            energy,
            potentials,
            if want_forces { forces } else { Vec::new() },
            virial,
        ))
    }
}

/// Scaled fractional coordinates u ∈ [0, K) of a position (`inv`: inverse of the cell matrix).
#[inline]
fn scaled_coordinates(r: &Vec3, inv: &Mat3, n: [usize; 3]) -> [f64; 3] {
    let mut u = [0.0; 3];
    for a in 0..3 {
        let s = r[0] * inv[0][a] + r[1] * inv[1][a] + r[2] * inv[2][a];
        let mut x = (s - s.floor()) * n[a] as f64;
        if x >= n[a] as f64 {
            x -= n[a] as f64;
        }
        u[a] = x.max(0.0);
    }
    u
}

/// B-spline weights of one atom for order `P`: the weights along the three axes (and their
/// derivatives), the (wrapped) mesh indices along the second axis, the first spline point
/// along the first axis (unwrapped, i.e. floor(u0), the index in a grid padded by `P − 1`
/// planes in front) and along the padded last axis.
struct Stencil<const P: usize> {
    th: [[f64; P]; 3],
    dth: [[f64; P]; 3],
    idx1: [usize; P],
    start0: usize,
    start3: usize,
}

impl<const P: usize> Stencil<P> {
    #[inline(always)]
    fn new(u: [f64; 3], n: [usize; 3]) -> Stencil<P> {
        let mut th = [[0.0; P]; 3];
        let mut dth = [[0.0; P]; 3];
        let mut base = [0.0; 3];
        for a in 0..3 {
            base[a] = u[a].floor();
            (th[a], dth[a]) = bspline::weights::<P>(u[a] - base[a]);
        }
        let b = base[1] as isize - P as isize + 1;
        let mut idx1 = [0usize; P];
        for (j, idx) in idx1.iter_mut().enumerate() {
            *idx = (b + j as isize).rem_euclid(n[1] as isize) as usize;
        }
        Stencil {
            th,
            dth,
            idx1,
            start0: (base[0] as usize).min(n[0] - 1),
            start3: (base[2] as usize).min(n[2] - 1),
        }
    }

    /// Adds q × the spline weights to `grid` (rows of `n2p` points, `n1` rows per plane),
    /// `plane(j1)` giving the grid plane of the j1-th spline point along the first axis.
    #[inline(always)]
    fn deposit(
        &self,
        grid: &mut [f64],
        q: f64,
        n1: usize,
        n2p: usize,
        plane: impl Fn(usize) -> usize,
    ) {
        let th3 = &self.th[2];
        for j1 in 0..P {
            let v1 = q * self.th[0][j1];
            let o1 = plane(j1) * n1;
            for j2 in 0..P {
                let v12 = v1 * self.th[1][j2];
                let row = (o1 + self.idx1[j2]) * n2p + self.start3;
                let g: &mut [f64; P] = (&mut grid[row..row + P]).try_into().expect("P points");
                for k in 0..P {
                    g[k] += v12 * th3[k];
                }
            }
        }
    }

    /// (φ, ∂φ/∂u) interpolated from a potential grid padded along the last axis (`idx0`:
    /// the wrapped planes of the first axis).
    #[inline(always)]
    fn interpolate(
        &self,
        grid: &[f64],
        idx0: &[usize; P],
        n1: usize,
        n2p: usize,
    ) -> (f64, [f64; 3]) {
        let (th, dth) = (&self.th, &self.dth);
        let mut phi = 0.0;
        let mut du = [0.0; 3];
        for j1 in 0..P {
            let o1 = idx0[j1] * n1;
            let mut p2 = 0.0;
            let mut d2a = 0.0;
            let mut d2b = 0.0;
            for j2 in 0..P {
                let row = (o1 + self.idx1[j2]) * n2p + self.start3;
                let g: &[f64; P] = (&grid[row..row + P]).try_into().expect("P points");
                let mut p3 = 0.0;
                let mut d3 = 0.0;
                for k in 0..P {
                    p3 += th[2][k] * g[k];
                    d3 += dth[2][k] * g[k];
                }
                p2 += th[1][j2] * p3;
                d2a += dth[1][j2] * p3;
                d2b += th[1][j2] * d3;
            }
            phi += th[0][j1] * p2;
            du[0] += dth[0][j1] * p2;
            du[1] += th[0][j1] * d2a;
            du[2] += th[0][j1] * d2b;
        }
        (phi, du)
    }
}

/// Adds a row padded along the last axis (point p is grid point (p − order + 1) mod K3) to a
/// grid row.
#[inline]
fn fold_row(out: &mut [f64], src: &[f64], order: usize) {
    let k3 = out.len();
    let wrap = order - 1;
    for (o, &v) in out[k3 - wrap..].iter_mut().zip(&src[..wrap]) {
        *o += v;
    }
    for (o, &v) in out.iter_mut().zip(&src[wrap..]) {
        *o += v;
    }
}

/// Spreading on per-thread private grids (padded along the last axis) summed in parallel.
fn spread_thread_grids<const P: usize>(
    sorted: &[(Vec3, f64)],
    n: [usize; 3],
    scaled: &(impl Fn(&Vec3) -> [f64; 3] + Sync),
) -> Result<Vec<f64>> {
    let order = P;
    let threads = rayon::current_num_threads().max(1);
    let chunk = sorted.len().div_ceil(threads).max(1);
    let n2p = n[2] + order - 1;
    let partial: Vec<Vec<f64>> = sorted
        .par_chunks(chunk)
        .map(|atoms| -> Result<Vec<f64>> {
            let mut grid = zeroed(n[0] * n[1] * n2p)?;
            for (k, &(ref r, qi)) in atoms.iter().enumerate() {
                if qi == 0.0 {
                    continue;
                }
                if k % 1024 == 0 && crate::interrupt::is_requested() {
                    break;
                }
                let st = Stencil::<P>::new(scaled(r), n);
                let b0 = st.start0 + n[0] - order + 1;
                st.deposit(&mut grid, qi, n[1], n2p, |j1| (b0 + j1) % n[0]);
            }
            Ok(grid)
        })
        .collect::<Result<_>>()?;
    let mut grid = zeroed(n[0] * n[1] * n[2])?;
    grid.par_chunks_mut(n[2])
        .enumerate()
        .for_each(|(row, out)| {
            for part in &partial {
                fold_row(out, &part[row * n2p..(row + 1) * n2p], order);
            }
        });
    Ok(grid)
}

/// Spreading on one grid padded by `order − 1` planes in front (padded plane P is grid plane
/// (P − order + 1) mod K1) and along the last axis, by slabs of planes: even slabs first,
/// then odd slabs, each pass in parallel over disjoint chunks of the grid. `planes[i]` is
/// floor(u0) of sorted atom i (non-decreasing).
fn spread_slabs<const P: usize>(
    sorted: &[(Vec3, f64)],
    planes: &[usize],
    n: [usize; 3],
    scaled: &(impl Fn(&Vec3) -> [f64; 3] + Sync),
) -> Result<Vec<f64>> {
    let order = P;
    let n2p = n[2] + order - 1;
    let plane_len = n[1] * n2p;
    let padded_planes = n[0] + order - 1;
    // slab width: at least order − 1 planes (so that an atom's writes stay within its slab
    // and the next one), and independent of the thread count (so is the result)
    let width = (order - 1).max(n[0].div_ceil(32)).max(1);
    let slabs = n[0].div_ceil(width);
    // atoms of slab s: home planes [s w, (s+1) w)
    let bounds: Vec<usize> = (0..=slabs)
        .map(|s| planes.partition_point(|&p| p < s * width))
        .collect();
    let mut padded = zeroed(padded_planes * plane_len)?;
    for parity in 0..2 {
        // chunk c of this pass holds padded planes [(2c + parity) w, (2c + parity + 2) w)
        padded[parity * width * plane_len..]
            .par_chunks_mut(2 * width * plane_len)
            .enumerate()
            .for_each(|(c, chunk)| {
                let s = 2 * c + parity;
                if s >= slabs {
                    return;
                }
                let first = s * width;
                for (k, &(ref r, qi)) in sorted[bounds[s]..bounds[s + 1]].iter().enumerate() {
                    if qi == 0.0 {
                        continue;
                    }
                    if k % 1024 == 0 && crate::interrupt::is_requested() {
                        break;
                    }
                    let st = Stencil::<P>::new(scaled(r), n);
                    let local = st.start0 - first;
                    st.deposit(chunk, qi, n[1], n2p, |j1| local + j1);
                }
            });
    }
    let mut grid = zeroed(n[0] * n[1] * n[2])?;
    grid.par_chunks_mut(n[1] * n[2])
        .enumerate()
        .for_each(|(p, out)| {
            let mut add = |pp: usize| {
                let src = &padded[pp * plane_len..(pp + 1) * plane_len];
                for (o, s) in out.chunks_mut(n[2]).zip(src.chunks(n2p)) {
                    fold_row(o, s, order);
                }
            };
            add(p + order - 1);
            if p + order > n[0] {
                add(p + order - 1 - n[0]);
            }
        });
    Ok(grid)
}

impl LongRangeSum for Pme {
    fn compute(&self, system: &System, charges: &[f64], request: Request) -> Result<Output> {
        check_per_atom("charges", charges.len(), system)?;
        crate::longrange::check_charges(charges)?;
        let cell = system
            .cell()
            .ok_or_else(|| Error::Unsupported("PME needs a periodic cell".into()))?;
        crate::tuning::pme::check_pme_work(system, &self.parameters)?;
        let total: f64 = charges.iter().sum();
        let norm = charges.iter().map(|q| q * q).sum::<f64>().sqrt();
        self.kernel.check_net_charge(total, norm)?;
        let volume = cell.volume();
        let split = &self.split;

        let real = realspace::real_space(system, charges, split, self.parameters.cutoff, request)?;
        crate::interrupt::check()?;
        let (e_rec, phi_rec, f_rec, w_rec) = self.reciprocal(system, charges, request)?;

        let v0 = split.self_potential();
        let q2: f64 = charges.iter().map(|q| q * q).sum();
        let e0 = split.k0_energy(total, volume);
        let energy = real.energy + e_rec - 0.5 * v0 * q2 + e0;

        let potentials = if request.potentials {
            let phi0 = split.k0_potential(total, volume);
            Some(
                (0..system.len())
                    .map(|i| real.potentials[i] + phi_rec[i] - charges[i] * v0 + phi0)
                    .collect(),
            )
        } else {
            None
        };
        let forces = if request.forces {
            Some(
                real.forces
                    .iter()
                    .zip(&f_rec)
                    .map(|(a, b)| [a[0] + b[0], a[1] + b[1], a[2] + b[2]])
                    .collect(),
            )
        } else {
            None
        };
        let virial = if request.virial {
            let mut w = [[0.0; 3]; 3];
            for a in 0..3 {
                for b in 0..3 {
                    w[a][b] = real.virial[a][b] + w_rec[a][b];
                }
                w[a][a] -= e0;
            }
            Some(w)
        } else {
            None
        };
        Ok(Output {
            energy,
            potentials,
            forces,
            virial,
        })
    }
}

#[cfg(test)]
mod tests;
