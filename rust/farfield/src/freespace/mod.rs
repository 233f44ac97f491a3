//! Free-space particle mesh: the O(N log N) sum of a 1/r^p kernel over an open (non-periodic)
//! system, with the range split of PME (docs/science.md §1.8).
//!
//! * **Split.** v = V_SR + V_LR with the Gaussian split of [`RangeSplit`] (smearing σ). The
//!   short-range part goes through the shared pair sum [`crate::realspace`] (open systems:
//!   bins over the atoms' bounding box, no images); the self term −½ Σ q_i² V_LR(0) is
//!   analytic. There is no k = 0 or background term: the sum is the plain free-space sum
//!   E = ½ Σ_{i≠j} q_i q_j v(r_ij), the same as [`crate::direct::Direct`].
//! * **Mesh.** The charges are spread with cardinal B-splines of order n (the shared
//!   `mesh::bspline` weights, const-generic stencils) on a Cartesian grid of spacing h
//!   covering the atoms' bounding box plus the spline support (L_α points per axis, origin at
//!   the bounding box's lower corner less n − ½ spacings, so that translating the system
//!   translates the grid with it). The grid is zero-padded to M_α ≥ 2L_α + margin points
//!   (Hockney–Eastwood), so that the circular convolution of the FFT equals the aperiodic one.
//!   The transforms are pruned (`pruned.rs`): the forward passes skip the all-zero lines of the
//!   padding and the inverse passes compute only the points covering the atoms (about 60 % of
//!   the work of full transforms, and no padded real grid).
//! * **Kernel.** The lattice kernel is the long-range part sampled in real space,
//!   g(m) = V_LR(h |m|) for the minimum-image displacement m on the padded grid, transformed
//!   once (g is even in every axis, so its transform is real and even: only the octant
//!   0 ≤ m_α ≤ M_α/2 is sampled, transformed axis by axis and stored), and multiplied by the
//!   B-spline deconvolution
//!   |b_1(m_1) b_2(m_2) b_3(m_3)|² (the Euler exponential spline moduli of PME's influence
//!   function). With the deconvolution on both sides, the pair kernel the mesh applies is the
//!   tensor-product cardinal-spline interpolant of V_LR(x − y) in x and in y: its error is the
//!   B-spline interpolation (aliasing) error of PME at the same σ, h and n, plus the aliasing
//!   of V̂_LR beyond the grid's Nyquist frequency, of the same order. The deconvolution kernel
//!   decays geometrically (ratio 0.27, 0.43, 0.54, 0.61 per point for n = 4, 6, 8, 10) and the
//!   periodised sample has a kink at the wrap point M/2, so the padding keeps
//!   2n points between the largest displacement used (L − 1) and the wrap (without
//!   it the error of n = 8 had a floor near 4e-5). Only even orders are accepted
//!   ([`ORDER_RANGE`]: measured 13× the requested error with n = 7). The kernel transform is
//!   cached for repeated calls on the same grid (molecular dynamics).
//! * **Why not the truncated kernel.** Vico, Greengard & Ferrando (J. Comput. Phys. 2016)
//!   truncate the kernel at the domain diameter R and use its smooth analytic transform; their
//!   convolution is exact only on a grid padded to L + R ≥ (1 + √3) L points per axis (4× in
//!   their precomputation), i.e. 2.5-8× more grid points than the 2L here. For the smooth
//!   V_LR, the sampled kernel needs no truncation (V_LR has no singularity), and the measured
//!   mesh errors lie at 0.25-0.45 of PME's error model at the same σ, h and n (p = 1 and 6,
//!   n = 4, 6, 8, h = σ/3 to 2σ/3; the test `sampled_kernel_error_matches_the_pme_model`),
//!   the same ratio as periodic PME's, so the 2× grid is the cheaper and as accurate choice.
//! * **Forces** are the analytic gradient of the spline-approximated energy; potentials and
//!   energies are interpolated with the same splines. The virial (the pair virial of
//!   [`crate::direct`], ∂E/∂ε for a homogeneous scaling of all positions) is the exact
//!   real-space pair virial plus −Σ_i (r_i − r̄) ⊗ F_i^mesh for the mesh part, which is ∂E/∂ε
//!   of the mesh energy at fixed grid spacing.
//!
//! Parameters for a requested accuracy come from [`crate::tuning::freespace`].

use crate::buffers::zeroed;
use crate::error::{Error, Result};
use crate::kernel::{Kernel, RangeSplit};
use crate::longrange::{LongRangeSum, Output, Request};
use crate::math::linalg::{Mat3, Vec3};
use crate::mesh::bspline;
use crate::mesh::fft_friendly;
use crate::system::{check_per_atom, System};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

mod pruned;
#[cfg(test)]
mod tests;

/// Smallest and largest supported B-spline orders; only even orders are accepted. Odd orders
/// (spline degree even) cannot interpolate at the grid points: their deconvolution |b(m)|²
/// diverges at the Nyquist frequency, where the sampled kernel (unlike PME's band-limited
/// influence function) is not negligible.
pub const ORDER_RANGE: (usize, usize) = (4, 10);

/// Grid points kept between the largest displacement the convolution uses and the wrap point
/// of the padded grid, per unit of spline order (see the module documentation): 2n points,
/// over which the deconvolution kernel decays by 1e-5 (n = 4) to 1e-9 (n = 10).
pub(crate) const MARGIN: usize = 2;

/// Largest number of grid points along one axis (unpadded): a `spacing` that needs more is
/// refused, naming `mesh_spacing`.
pub const MAX_POINTS: usize = 1 << 13;

/// Parameters of a free-space mesh sum (all required, no defaults: [`crate::tuning::freespace::tune`]
/// chooses them for an accuracy).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FreeSpaceParameters {
    /// Gaussian smearing σ (length) of the range split.
    pub smearing: f64,
    /// Real-space cutoff (length).
    pub cutoff: f64,
    /// Grid spacing h (length, the same along x, y and z).
    pub spacing: f64,
    /// B-spline order n: even, within [`ORDER_RANGE`] (4 to 10).
    pub order: usize,
}

impl FreeSpaceParameters {
    /// Checks the parameters, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("smearing", self.smearing),
            ("cutoff", self.cutoff),
            ("mesh_spacing", self.spacing),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::parameter(
                    name,
                    format!("must be positive and finite, got {v}"),
                ));
            }
        }
        check_order(self.order)
    }
}

/// Checks a B-spline order for the free-space mesh: even, from 4 to 10. Odd orders (spline
/// degree even) cannot interpolate at the grid points: their deconvolution |b(m)|² diverges
/// at the Nyquist frequency, where the sampled kernel (unlike PME's band-limited influence
/// function) is not negligible.
pub(crate) fn check_order(order: usize) -> Result<()> {
    if !(ORDER_RANGE.0..=ORDER_RANGE.1).contains(&order) || order % 2 == 1 {
        return Err(Error::parameter(
            "order",
            format!(
                "the free-space mesh (open systems) takes an even B-spline order from {} to {}, \
                 got {order}",
                ORDER_RANGE.0, ORDER_RANGE.1
            ),
        ));
    }
    Ok(())
}

/// The grid of one call: origin, spacing, points covering the atoms (`points`) and padded
/// points (`padded`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Grid {
    /// Position of grid point (0, 0, 0).
    pub origin: Vec3,
    /// Spacing h.
    pub spacing: f64,
    /// Points covering the atoms and their spline support, L_α.
    pub points: [usize; 3],
    /// Padded points M_α (FFT-friendly, ≥ 2 L_α + 2 [`MARGIN`] n).
    pub padded: [usize; 3],
}

/// Extent of the atoms along x, y, z and their lower corner.
pub(crate) fn bounding_box(positions: &[Vec3]) -> (Vec3, Vec3) {
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for r in positions {
        for a in 0..3 {
            lo[a] = lo[a].min(r[a]);
            hi[a] = hi[a].max(r[a]);
        }
    }
    if positions.is_empty() {
        return ([0.0; 3], [0.0; 3]);
    }
    (lo, hi)
}

/// Points covering an extent `extent` at spacing `h` with spline order `order` (L_α), and the
/// padded size (M_α), or an error naming `mesh_spacing` when an axis needs more than
/// [`MAX_POINTS`].
pub(crate) fn grid_points(extent: f64, h: f64, order: usize) -> Result<(usize, usize)> {
    let raw = (extent / h + order as f64 - 0.5).floor() + 1.0;
    if !raw.is_finite() || raw > MAX_POINTS as f64 {
        return Err(Error::parameter(
            "mesh_spacing",
            format!(
                "spacing {h} gives more than {MAX_POINTS} mesh points across an extent of \
                 {extent} (use a larger spacing)"
            ),
        ));
    }
    let l = raw as usize;
    Ok((l, fft_friendly(2 * l + 2 * MARGIN * order)))
}

impl Grid {
    /// The grid of `positions` for spacing `h` and spline order `order`.
    pub fn new(positions: &[Vec3], h: f64, order: usize) -> Result<Grid> {
        let (lo, hi) = bounding_box(positions);
        let mut origin = [0.0; 3];
        let mut points = [0; 3];
        let mut padded = [0; 3];
        for a in 0..3 {
            origin[a] = lo[a] - (order as f64 - 0.5) * h;
            (points[a], padded[a]) = grid_points(hi[a] - lo[a], h, order)?;
        }
        Ok(Grid {
            origin,
            spacing: h,
            points,
            padded,
        })
    }
}

/// A free-space mesh sum of a kernel 1/r^p.
#[derive(Debug, Clone)]
pub struct FreeSpace {
    kernel: Kernel,
    parameters: FreeSpaceParameters,
    split: RangeSplit,
}

/// The cached kernel transforms (most recently used last).
type KernelKey = ([usize; 3], u64, u64, u64, usize);
static KERNELS: Mutex<Vec<(KernelKey, Arc<Vec<f64>>)>> = Mutex::new(Vec::new());
/// Kernel transforms kept.
const KEPT_KERNELS: usize = 2;
/// Largest kernel transform kept (values of the octant; 128 MiB).
const KEPT_MAX: usize = 1 << 24;

impl FreeSpace {
    /// Creates the sum, validating the parameters.
    pub fn new(kernel: Kernel, parameters: FreeSpaceParameters) -> Result<FreeSpace> {
        parameters.validate()?;
        let split = kernel.split(parameters.smearing)?;
        Ok(FreeSpace {
            kernel,
            parameters,
            split,
        })
    }

    /// The parameters.
    pub fn parameters(&self) -> &FreeSpaceParameters {
        &self.parameters
    }

    /// The kernel.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// The transform of the deconvolved lattice kernel on the padded grid, divided by the
    /// number of padded points: real and even, stored as its octant 0 ≤ m_α ≤ M_α/2
    /// (row-major), cached.
    fn kernel_transform(&self, grid: &Grid) -> Result<Arc<Vec<f64>>> {
        let h = grid.spacing;
        let key: KernelKey = (
            grid.padded,
            h.to_bits(),
            self.split.smearing().to_bits(),
            self.kernel.exponent().to_bits(),
            self.parameters.order,
        );
        if let Ok(kept) = KERNELS.lock() {
            if let Some((_, k)) = kept.iter().find(|(k, _)| *k == key) {
                return Ok(Arc::clone(k));
            }
        }
        let [m0, m1, m2] = grid.padded;
        // V_LR(h |m|) is even in every axis: evaluate the octant 0 ≤ m_α ≤ M_α/2 once; beyond
        // r_far the short-range part is below 1e-17 of the kernel and V_LR = 1/r^p
        let split = &self.split;
        let kernel = self.kernel;
        let far = {
            let mut r = split.smearing();
            while split.short_range(r).0 > 1e-17 * kernel.value(r).0 && r < 1e3 * split.smearing() {
                r += 0.25 * split.smearing();
            }
            r
        };
        let value = |r: f64| -> f64 {
            if r >= far {
                kernel.value(r).0
            } else {
                split.long_range(r).0
            }
        };
        let half = [m0 / 2 + 1, m1 / 2 + 1, m2 / 2 + 1];
        let mut octant = zeroed(half[0] * half[1] * half[2])?;
        octant
            .par_chunks_mut(half[1] * half[2])
            .enumerate()
            .for_each(|(i0, plane)| {
                if crate::interrupt::is_requested() {
                    return;
                }
                let x = i0 as f64 * h;
                for i1 in 0..half[1] {
                    let y = i1 as f64 * h;
                    for i2 in 0..half[2] {
                        let z = i2 as f64 * h;
                        plane[i1 * half[2] + i2] = value((x * x + y * y + z * z).sqrt());
                    }
                }
            });
        crate::interrupt::check()?;
        // the transform of a real sequence even in every axis is real and even: transform the
        // octant axis by axis (each line as the r2c transform of its even extension)
        for axis in (0..3).rev() {
            octant = even_transform(&octant, half, grid.padded[axis], axis);
            crate::interrupt::check()?;
        }
        let moduli = bspline::moduli3(self.parameters.order, grid.padded);
        let norm = 1.0 / (m0 as f64 * m1 as f64 * m2 as f64);
        octant
            .par_chunks_mut(half[1] * half[2])
            .enumerate()
            .for_each(|(i0, plane)| {
                for i1 in 0..half[1] {
                    let b01 = norm * moduli[0][i0] * moduli[1][i1];
                    for i2 in 0..half[2] {
                        plane[i1 * half[2] + i2] *= b01 * moduli[2][i2];
                    }
                }
            });
        let out = Arc::new(octant);
        if out.len() <= KEPT_MAX {
            if let Ok(mut kept) = KERNELS.lock() {
                if kept.len() >= KEPT_KERNELS {
                    kept.remove(0);
                }
                kept.push((key, Arc::clone(&out)));
            }
        }
        Ok(out)
    }

    /// The mesh part only: per-atom potentials and forces of the long-range kernel (the
    /// self-interaction through the mesh, ≈ q_i V_LR(0), included).
    pub(crate) fn mesh(
        &self,
        system: &System,
        charges: &[f64],
        want_forces: bool,
    ) -> Result<(Vec<f64>, Vec<Vec3>)> {
        let order = self.parameters.order;
        let positions = system.positions();
        let grid = Grid::new(positions, self.parameters.spacing, order)?;
        let kernel = self.kernel_transform(&grid)?;
        let [m0, m1, m2] = grid.padded;
        let l = grid.points;
        let inv_h = 1.0 / grid.spacing;
        let origin = grid.origin;
        let scaled = move |r: &Vec3| -> [f64; 3] {
            [0, 1, 2].map(|a| ((r[a] - origin[a]) * inv_h).max(0.0))
        };
        // atoms sorted by grid cell (first axis major) for locality
        let mut sorted: Vec<(usize, usize)> = positions
            .par_iter()
            .enumerate()
            .map(|(i, r)| {
                let u = scaled(r);
                let c = [0, 1, 2].map(|a| (u[a] as usize).min(l[a] - 1));
                ((c[0] * l[1] + c[1]) * l[2] + c[2], i)
            })
            .collect();
        sorted.par_sort_unstable();
        let charge_grid = bspline::with_order!(order, P => {
            spread::<P>(&sorted, positions, charges, &grid, &scaled)?
        });
        crate::interrupt::check()?;
        // spectrum plane k2 is [m1][m0]; the kernel's octant [fold(m0)][fold(m1)][k2]
        let half = [m0 / 2 + 1, m1 / 2 + 1, m2 / 2 + 1];
        let fold = |m: usize, size: usize| if m <= size / 2 { m } else { size - m };
        let potential = pruned::convolve(&charge_grid, l, grid.padded, |i2, plane| {
            for i1 in 0..m1 {
                let f1 = fold(i1, m1);
                for (i0, s) in plane[i1 * m0..(i1 + 1) * m0].iter_mut().enumerate() {
                    *s *= kernel[(fold(i0, m0) * half[1] + f1) * half[2] + i2];
                }
            }
        })?;
        drop(charge_grid);
        crate::interrupt::check()?;
        let per_sorted: Vec<(f64, Vec3)> = bspline::with_order!(order, P => {
            sorted
                .par_iter()
                .map(|&(_, i)| {
                    if crate::interrupt::is_requested() {
                        return (0.0, [0.0; 3]);
                    }
                    let st = Stencil::<P>::new(scaled(&positions[i]), l);
                    let (phi, du) = st.interpolate(&potential, l[1], l[2]);
                    let q = charges[i];
                    let f = if want_forces {
                        du.map(|d| -q * d * inv_h)
                    } else {
                        [0.0; 3]
                    };
                    (phi, f)
                })
                .collect()
        });
        crate::interrupt::check()?;
        let n = positions.len();
        let mut phi = vec![0.0; n];
        let mut forces = if want_forces {
            vec![[0.0; 3]; n]
        } else {
            Vec::new()
        };
        for (&(_, i), (p, f)) in sorted.iter().zip(per_sorted) {
            phi[i] = p;
            if want_forces {
                forces[i] = f;
            }
        }
        Ok((phi, forces))
    }
}

/// The transform along `axis` of every line of an octant array (`half` points per axis, of a
/// sequence even along that axis with period `size`): the real parts of the r2c transform of
/// the even extension, points 0..=size/2.
fn even_transform(data: &[f64], half: [usize; 3], size: usize, axis: usize) -> Vec<f64> {
    let stride = match axis {
        0 => half[1] * half[2],
        1 => half[2],
        _ => 1,
    };
    let (others, inner) = match axis {
        0 => ([half[1], half[2]], [half[2], 1]),
        1 => ([half[0], half[2]], [half[1] * half[2], 1]),
        _ => ([half[0], half[1]], [half[1] * half[2], half[2]]),
    };
    let plan = realfft::RealFftPlanner::<f64>::new().plan_fft_forward(size);
    let n = half[axis];
    let lines: Vec<Vec<f64>> = (0..others[0] * others[1])
        .into_par_iter()
        .map_init(
            || {
                (
                    plan.make_input_vec(),
                    plan.make_output_vec(),
                    plan.make_scratch_vec(),
                )
            },
            |(input, output, scratch), line| {
                if crate::interrupt::is_requested() {
                    return vec![0.0; n];
                }
                let base = (line / others[1]) * inner[0] + (line % others[1]) * inner[1];
                for (j, x) in input.iter_mut().enumerate() {
                    let k = if j <= size / 2 { j } else { size - j };
                    *x = data[base + k * stride];
                }
                // a failure is impossible with the plan's own buffers
                let _ = plan.process_with_scratch(input, output, scratch);
                output[..n].iter().map(|c| c.re).collect()
            },
        )
        .collect();
    let mut out = vec![0.0; data.len()];
    for (line, values) in lines.iter().enumerate() {
        let base = (line / others[1]) * inner[0] + (line % others[1]) * inner[1];
        for (k, v) in values.iter().enumerate() {
            out[base + k * stride] = *v;
        }
    }
    out
}

/// B-spline weights of one atom for order `P` (no wrapping: the grid covers the support).
struct Stencil<const P: usize> {
    th: [[f64; P]; 3],
    dth: [[f64; P]; 3],
    /// first grid point along each axis
    start: [usize; 3],
}

impl<const P: usize> Stencil<P> {
    #[inline(always)]
    fn new(u: [f64; 3], l: [usize; 3]) -> Stencil<P> {
        let mut th = [[0.0; P]; 3];
        let mut dth = [[0.0; P]; 3];
        let mut start = [0usize; 3];
        for a in 0..3 {
            let base = u[a].floor();
            (th[a], dth[a]) = bspline::weights::<P>(u[a] - base);
            // floor(u) ≥ P − 1 by construction of the origin; clamp against round-off
            start[a] = (base as usize).clamp(P - 1, l[a] - 1) + 1 - P;
        }
        Stencil { th, dth, start }
    }

    /// Adds q × the weights to a grid of rows of `n2` points, `n1` rows per plane.
    #[inline(always)]
    fn deposit(&self, grid: &mut [f64], q: f64, n1: usize, n2: usize) {
        for j0 in 0..P {
            let v0 = q * self.th[0][j0];
            let o0 = (self.start[0] + j0) * n1;
            for j1 in 0..P {
                let v01 = v0 * self.th[1][j1];
                let row = (o0 + self.start[1] + j1) * n2 + self.start[2];
                let g: &mut [f64; P] = (&mut grid[row..row + P]).try_into().expect("P points");
                for k in 0..P {
                    g[k] += v01 * self.th[2][k];
                }
            }
        }
    }

    /// (φ, ∂φ/∂u) from a grid of rows of `n2` points, `n1` rows per plane.
    #[inline(always)]
    fn interpolate(&self, grid: &[f64], n1: usize, n2: usize) -> (f64, [f64; 3]) {
        let (th, dth) = (&self.th, &self.dth);
        let mut phi = 0.0;
        let mut du = [0.0; 3];
        for j0 in 0..P {
            let o0 = (self.start[0] + j0) * n1;
            let (mut p1, mut d1a, mut d1b) = (0.0, 0.0, 0.0);
            for j1 in 0..P {
                let row = (o0 + self.start[1] + j1) * n2 + self.start[2];
                let g: &[f64; P] = (&grid[row..row + P]).try_into().expect("P points");
                let (mut p2, mut d2) = (0.0, 0.0);
                for k in 0..P {
                    p2 += th[2][k] * g[k];
                    d2 += dth[2][k] * g[k];
                }
                p1 += th[1][j1] * p2;
                d1a += dth[1][j1] * p2;
                d1b += th[1][j1] * d2;
            }
            phi += th[0][j0] * p1;
            du[0] += dth[0][j0] * p1;
            du[1] += th[0][j0] * d1a;
            du[2] += th[0][j0] * d1b;
        }
        (phi, du)
    }
}

/// Spreads the charges (atoms in `sorted` order) on per-thread grids of the unpadded region,
/// summed.
fn spread<const P: usize>(
    sorted: &[(usize, usize)],
    positions: &[Vec3],
    charges: &[f64],
    grid: &Grid,
    scaled: &(impl Fn(&Vec3) -> [f64; 3] + Sync),
) -> Result<Vec<f64>> {
    let l = grid.points;
    let threads = rayon::current_num_threads().max(1);
    let chunk = sorted.len().div_ceil(threads).max(1);
    let partial: Vec<Vec<f64>> = sorted
        .par_chunks(chunk)
        .map(|atoms| -> Result<Vec<f64>> {
            let mut local = zeroed(l[0] * l[1] * l[2])?;
            for (k, &(_, i)) in atoms.iter().enumerate() {
                let q = charges[i];
                if q == 0.0 {
                    continue;
                }
                if k % 1024 == 0 && crate::interrupt::is_requested() {
                    break;
                }
                Stencil::<P>::new(scaled(&positions[i]), l).deposit(&mut local, q, l[1], l[2]);
            }
            Ok(local)
        })
        .collect::<Result<_>>()?;
    let mut total = zeroed(l[0] * l[1] * l[2])?;
    total
        .par_chunks_mut(l[2])
        .enumerate()
        .for_each(|(row, out)| {
            for part in &partial {
                for (o, v) in out.iter_mut().zip(&part[row * l[2]..(row + 1) * l[2]]) {
                    *o += v;
                }
            }
        });
    Ok(total)
}

impl LongRangeSum for FreeSpace {
    fn compute(&self, system: &System, charges: &[f64], request: Request) -> Result<Output> {
        if system.is_periodic() {
            return Err(Error::Unsupported(
                "the free-space mesh is for open systems; use PME or Ewald for periodic ones"
                    .into(),
            ));
        }
        check_per_atom("charges", charges.len(), system)?;
        crate::longrange::check_charges(charges)?;
        crate::tuning::freespace::check_work(system, &self.parameters)?;
        let n = system.len();
        if n == 0 {
            return Ok(Output {
                energy: 0.0,
                potentials: request.potentials.then(Vec::new),
                forces: request.forces.then(Vec::new),
                virial: request.virial.then_some([[0.0; 3]; 3]),
            });
        }
        let split = &self.split;
        let real = crate::realspace::real_space(
            system,
            charges,
            split,
            self.parameters.cutoff,
            Request {
                potentials: true,
                forces: request.forces || request.virial,
                virial: request.virial,
            },
        )?;
        crate::interrupt::check()?;
        let want_forces = request.forces || request.virial;
        let (phi_mesh, f_mesh) = self.mesh(system, charges, want_forces)?;
        let v0 = split.self_potential();
        let potentials: Vec<f64> = (0..n)
            .map(|i| real.potentials[i] + phi_mesh[i] - charges[i] * v0)
            .collect();
        let energy = 0.5
            * potentials
                .iter()
                .zip(charges)
                .map(|(p, q)| p * q)
                .sum::<f64>();
        let forces: Vec<Vec3> = if want_forces {
            (0..n)
                .map(|i| {
                    let (a, b) = (real.forces[i], f_mesh[i]);
                    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
                })
                .collect()
        } else {
            Vec::new()
        };
        let virial = request.virial.then(|| {
            let positions = system.positions();
            let mut centre = [0.0; 3];
            for r in positions {
                for a in 0..3 {
                    centre[a] += r[a] / n as f64;
                }
            }
            let mut w: Mat3 = real.virial;
            for (r, f) in positions.iter().zip(&f_mesh) {
                for a in 0..3 {
                    for b in 0..3 {
                        w[a][b] -= f[a] * (r[b] - centre[b]);
                    }
                }
            }
            // symmetric in exact arithmetic (a rotation leaves the energy unchanged)
            for a in 0..3 {
                for b in 0..a {
                    let s = 0.5 * (w[a][b] + w[b][a]);
                    w[a][b] = s;
                    w[b][a] = s;
                }
            }
            w
        });
        Ok(Output {
            energy,
            potentials: request.potentials.then_some(potentials),
            forces: request.forces.then_some(forces),
            virial,
        })
    }
}
