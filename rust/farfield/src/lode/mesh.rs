//! Mesh evaluation of the periodic LODE values for large cells, O(N log N).
//!
//! The exact k-space sum of [`super::periodic`] costs N × N_k with N_k ∝ V ∝ N. Here every
//! species density is spread on a grid with cardinal B-splines (as in PME, reusing
//! `mesh::bspline` and `mesh::fft`), Fourier transformed once, and every (species, l, m, n)
//! feature becomes a band-limited field
//!   Φ_{a,x}(r) = ½ Σ_{0<|k|<k_c} W_k\[x\] (1 or −i) e^{ik·r} S_a(k)*,
//! obtained by one inverse FFT and interpolated at the atoms with the same B-splines.
//! With e^{ik·r} ≈ b(m) Σ_g M_n(u − g) e^{2πi m·g/K} for both the spreading and the
//! interpolation, the spectrum to transform is ½ W_k |b(m)|² FFT\[Q_a\](m). The only
//! approximation is this B-spline interpolation (aliasing), controlled by the spline order
//! and the grid oversampling; the k-set and W_k are those of the exact path.

use super::{parity_sign, LodeBackward, LodeExpansion, LodeOutput};
use crate::buffers::{filled, zeroed, SharedSlice};
use crate::error::{Error, Result};
use crate::mesh::bspline::{self, signed_frequency};
use crate::mesh::fft::{Fft3, C64};
use crate::mesh::fft_friendly;
use crate::system::System;
use rayon::prelude::*;
use std::f64::consts::PI;

/// Mesh resolution: B-spline order and grid oversampling over the smallest grid holding
/// every k-vector of the cutoff sphere.
#[derive(Debug, Clone, Copy)]
pub struct MeshParameters {
    /// B-spline order (4..=12)
    pub order: usize,
    /// grid points per axis / (2 M_a + 2), M_a the largest k index along the axis
    pub oversampling: f64,
}

impl MeshParameters {
    /// Parameters reaching about `accuracy` (relative to the largest coefficient) on
    /// typical systems: calibrated against the exact path (see the tests).
    pub fn for_accuracy(accuracy: f64) -> Result<MeshParameters> {
        if !(accuracy.is_finite() && accuracy > 0.0 && accuracy < 1.0) {
            return Err(Error::parameter(
                "accuracy",
                format!("the mesh accuracy must be in (0, 1), got {accuracy}"),
            ));
        }
        // calibrated on random and triclinic cells, p = 0, 1, 2.5, 6, GTO and monomial
        // bases, against the exact path: worst relative errors 1e-3, 1.1e-4, 1.3e-5,
        // 2.4e-6, 3.2e-7, 4.6e-10, 6e-11 for these rows
        let (order, oversampling) = if accuracy >= 1e-2 {
            (6, 1.0)
        } else if accuracy >= 1e-3 {
            (6, 1.2)
        } else if accuracy >= 1e-4 {
            (8, 1.2)
        } else if accuracy >= 1e-5 {
            (8, 1.5)
        } else if accuracy >= 1e-6 {
            (10, 1.5)
        } else if accuracy >= 1e-8 {
            (12, 2.0)
        } else {
            (12, 2.5)
        };
        Ok(MeshParameters {
            order,
            oversampling,
        })
    }

    fn validate(&self) -> Result<()> {
        if !(4..=12).contains(&self.order) {
            return Err(Error::parameter(
                "mesh_order",
                format!("the B-spline order must be in 4..=12, got {}", self.order),
            ));
        }
        if !(self.oversampling.is_finite() && self.oversampling >= 1.0 && self.oversampling <= 8.0)
        {
            return Err(Error::parameter(
                "mesh_oversampling",
                format!(
                    "the oversampling must be in [1, 8], got {}",
                    self.oversampling
                ),
            ));
        }
        Ok(())
    }
}

/// Hint of the mesh refusals.
const MESH_HINT: &str = "raise smearing or lower k_cutoff (the default k_cutoff is \
    1.2π/smearing), loosen accuracy, use method='exact' for small cells, or a smaller cell";

/// Grid points per axis before rounding to FFT-friendly sizes, as floats (no overflow).
fn grid_points(cell: &crate::system::Cell, k_cutoff: f64, mesh: &MeshParameters) -> [f64; 3] {
    let lengths = cell.lengths();
    let mut n = [0.0; 3];
    for a in 0..3 {
        let m = (k_cutoff * lengths[a] / (2.0 * PI)).floor();
        n[a] = (mesh.oversampling * (2.0 * m + 2.0))
            .ceil()
            .max(mesh.order as f64 + 1.0);
    }
    n
}

/// Cost before work of the mesh values (`passes` = 1) or backward pass (3): FFTs and
/// stencils of every (species, feature) channel.
pub(super) fn check_terms(
    calc: &LodeExpansion,
    system: &System,
    na: usize,
    mesh: &MeshParameters,
    passes: f64,
) -> Result<()> {
    let Some(cell) = system.cell() else {
        return Ok(());
    };
    let nf = grid_points(cell, calc.k_cutoff(), mesh);
    let len = nf[0] * nf[1] * nf[2];
    let channels = (na * calc.n_features()) as f64;
    let terms = passes
        * channels
        * (0.5 * len * len.log2().max(1.0) + 0.2 * (system.len() * mesh.order.pow(3)) as f64);
    crate::limits::check_terms(
        &format!("the LODE mesh (FFTs of {len:.3e} points per feature and species)"),
        terms,
        MESH_HINT,
    )
}

/// Grid points per axis for this cell, cutoff and resolution.
pub fn grid(cell: &crate::system::Cell, k_cutoff: f64, mesh: &MeshParameters) -> [usize; 3] {
    let lengths = cell.lengths();
    let mut n = [0; 3];
    for a in 0..3 {
        // clamped: larger grids are refused by the cost checks before any allocation
        let m = (k_cutoff * lengths[a] / (2.0 * PI)).floor().min(1e6) as usize;
        let want = (mesh.oversampling * (2 * m + 2) as f64).ceil() as usize;
        n[a] = fft_friendly(want.max(mesh.order + 1));
    }
    n
}

/// Predicted cost (arbitrary units, same as [`exact_cost`]) of the mesh values.
pub fn mesh_cost(n_atoms: usize, n_channels: usize, grid: [usize; 3], order: usize) -> f64 {
    let len = grid[0] as f64 * grid[1] as f64 * grid[2] as f64;
    n_channels as f64 * (5.0 * len * len.log2() + 2.0 * n_atoms as f64 * order.pow(3) as f64)
}

/// Predicted cost of the exact values: the (N·A × N_k)·(N_k × F) products.
pub fn exact_cost(n_atoms: usize, n_channels: usize, n_kvectors: usize) -> f64 {
    2.0 * n_atoms as f64 * n_kvectors as f64 * n_channels as f64
}

/// The spectral points of the cutoff sphere in one plane m3 of the half spectrum.
#[derive(Default)]
struct Plane {
    /// spectrum index of every point
    idx: Vec<usize>,
    /// ½ (8π/V) ĝ(k) |b(m)|² I_nl(k), per point × (l, n)
    rad: Vec<f64>,
    /// Y_lm(k̂), per point × lm
    y: Vec<f64>,
    /// derivatives only: ½ (8π/V) |b(m)|² (ĝ' I + ĝ I')/|k| per point × (l, n)
    drad: Vec<f64>,
    /// derivatives only: the k-vector of every point
    k: Vec<[f64; 3]>,
}

/// Features interpolated together from interleaved grids.
const LANES: usize = 4;

/// Edge of the blocks of grid points in which atoms are visited (see `Mesh::sorted`).
const MESH_BLOCK: usize = 12;

/// Everything of the mesh evaluation that does not depend on dL/dc: B-spline weights of the
/// atoms, grid, FFT plans and the spectral points of the cutoff sphere with their weights.
struct Mesh {
    n: [usize; 3],
    len: usize,
    order: usize,
    /// B-spline weights θ (and dθ/du when derivatives are needed), N × 3 × order
    theta: Vec<f64>,
    dtheta: Vec<f64>,
    /// grid index of every weight, N × 3 × order
    index: Vec<usize>,
    /// atoms sorted by their first grid point (slab-major), for cache locality
    sorted: Vec<usize>,
    /// the atoms (ranges of `sorted`) of each block of MESH_BLOCK x-slabs, and the blocks in
    /// colours: the stencils of two blocks of one colour touch disjoint grid points
    slab_blocks: Vec<std::ops::Range<usize>>,
    colours: Vec<Vec<usize>>,
    /// ∂u_α/∂r_c = K_α (h⁻¹)_{cα}, stored [c][α]
    du_dr: [[f64; 3]; 3],
    fft: Fft3,
    /// the spectral points of the cutoff sphere, per plane m3 of the half spectrum
    planes: Vec<Plane>,
    lmax: usize,
    nr: usize,
    nlm: usize,
    signs: Vec<f64>,
}

impl Mesh {
    fn new(
        calc: &LodeExpansion,
        system: &System,
        mesh: MeshParameters,
        derivatives: bool,
    ) -> Result<Mesh> {
        mesh.validate()?;
        let cell = system
            .cell()
            .ok_or_else(|| Error::Unsupported("the mesh method needs a periodic cell".into()))?;
        let params = calc.parameters();
        calc.check_k0()?;
        let n_atoms = system.len();
        let lmax = params.max_angular;
        let nr = params.max_radial + 1;
        let nlm = (lmax + 1) * (lmax + 1);
        let order = mesh.order;
        let k_cut = calc.k_cutoff();
        let kc2 = k_cut * k_cut;
        let pref = 8.0 * PI / cell.volume();
        // cost before work: the grids (a few copies, real and complex), the spectral points
        // of the cutoff sphere with their tables, the FFTs and the stencils
        let nf = grid_points(cell, k_cut, &mesh);
        let sphere = super::kvector_estimate(k_cut, cell.volume());
        let nrad = ((lmax + 1) * nr) as f64;
        let per_point = nrad + nlm as f64 + 1.0 + if derivatives { nrad + 3.0 } else { 0.0 };
        let copies = if derivatives { 10.0 } else { 8.0 };
        crate::limits::check_memory(
            &format!(
                "the LODE mesh ({:.0} × {:.0} × {:.0} points)",
                nf[0], nf[1], nf[2]
            ),
            8.0 * (copies * nf[0] * nf[1] * nf[2]
                + sphere * per_point
                + 3.0 * (n_atoms * 3 * order) as f64),
            MESH_HINT,
        )?;
        let n = grid(cell, k_cut, &mesh);
        let len = n[0] * n[1] * n[2];
        let inv = *cell.inverse();
        let recip = cell.reciprocal();
        let positions = system.positions();
        let tables = calc.kspace_tables()?;
        let spline = &tables.1;
        let density = calc.density();

        // B-spline weights and grid indices of every atom (N × 3 × order)
        let mut theta = vec![0.0; n_atoms * 3 * order];
        let mut dtheta = if derivatives {
            vec![0.0; n_atoms * 3 * order]
        } else {
            Vec::new()
        };
        let mut index = vec![0usize; n_atoms * 3 * order];
        let mut dummy = vec![0.0; n_atoms];
        let (dchunk, dslice) = if derivatives {
            (3 * order, &mut dtheta[..])
        } else {
            (1, &mut dummy[..])
        };
        theta
            .par_chunks_mut(3 * order)
            .zip(dslice.par_chunks_mut(dchunk))
            .zip(index.par_chunks_mut(3 * order))
            .zip(positions.par_iter())
            .for_each(|(((th, dth_out), idx), r)| {
                let mut dth = vec![0.0; order];
                for a in 0..3 {
                    let s = r[0] * inv[0][a] + r[1] * inv[1][a] + r[2] * inv[2][a];
                    let mut u = (s - s.floor()) * n[a] as f64;
                    if u >= n[a] as f64 {
                        u -= n[a] as f64;
                    }
                    let u = u.max(0.0);
                    let base = u.floor();
                    bspline::fill(u - base, &mut th[a * order..(a + 1) * order], &mut dth);
                    if derivatives {
                        dth_out[a * order..(a + 1) * order].copy_from_slice(&dth);
                    }
                    let b = base as isize - order as isize + 1;
                    for j in 0..order {
                        idx[a * order + j] = (b + j as isize).rem_euclid(n[a] as isize) as usize;
                    }
                }
            });
        // blocks of MESH_BLOCK³ grid points, then slab-major inside a block: the stencils of
        // a block's atoms span (MESH_BLOCK + order)³ points, which stay in L2, where plain
        // slab-major order would sweep `order` whole slabs between reuses on large grids
        let mut sorted: Vec<usize> = (0..n_atoms).collect();
        sorted.sort_by_key(|&i| {
            let ix = &index[i * 3 * order..(i + 1) * 3 * order];
            let (x, y, z) = (ix[0], ix[order], ix[2 * order]);
            let b = MESH_BLOCK;
            ((x / b, y / b, z / b), (x, y, z), i)
        });
        let (slab_blocks, colours) = slab_colouring(&sorted, &index, order, n[0]);
        let mut du_dr = [[0.0; 3]; 3];
        for c in 0..3 {
            for a in 0..3 {
                du_dr[c][a] = n[a] as f64 * inv[c][a];
            }
        }

        // spectral points inside the cutoff sphere (half spectrum, m3 ≥ 0), with ĝ·I_nl·pref,
        // Y_lm(k̂) and |b(m)|² (and their k-derivatives)
        let fft = Fft3::new(n);
        let h = fft.half();
        let moduli = bspline::moduli3(order, n);
        let nrad = (lmax + 1) * nr;
        let planes: Vec<Plane> = (0..h)
            .into_par_iter()
            .map(|m3| {
                let mut out: Plane = Default::default();
                if crate::interrupt::is_requested() {
                    return out;
                }
                let Some(f3) = signed_frequency(m3, n[2]) else {
                    return out;
                };
                let mut y = vec![0.0; nlm];
                let mut ints = vec![0.0; nrad];
                let mut dints = vec![0.0; nrad];
                for m2 in 0..n[1] {
                    let Some(f2) = signed_frequency(m2, n[1]) else {
                        continue;
                    };
                    for m1 in 0..n[0] {
                        let Some(f1) = signed_frequency(m1, n[0]) else {
                            continue;
                        };
                        let mut k = [0.0; 3];
                        for c in 0..3 {
                            k[c] = f1 * recip[0][c] + f2 * recip[1][c] + f3 * recip[2][c];
                        }
                        let k2 = k[0] * k[0] + k[1] * k[1] + k[2] * k[2];
                        if k2 == 0.0 || k2 >= kc2 {
                            continue;
                        }
                        let kn = k2.sqrt();
                        let (g, dg) = density.fourier(kn);
                        spline.eval(kn, &mut ints, &mut dints);
                        let b2 = moduli[0][m1] * moduli[1][m2] * moduli[2][m3];
                        out.idx.push((m3 * n[1] + m2) * n[0] + m1);
                        out.rad.extend(ints.iter().map(|v| 0.5 * pref * g * b2 * v));
                        if derivatives {
                            out.drad.extend(
                                ints.iter()
                                    .zip(&dints)
                                    .map(|(v, dv)| 0.5 * pref * b2 * (dg * v + g * dv) / kn),
                            );
                            out.k.push(k);
                        }
                        super::sph::real_sph(k, lmax, &mut y, None);
                        out.y.extend_from_slice(&y);
                    }
                }
                out
            })
            .collect();
        crate::interrupt::check()?;
        Ok(Mesh {
            n,
            len,
            order,
            theta,
            dtheta,
            index,
            sorted,
            slab_blocks,
            colours,
            du_dr,
            fft,
            planes,
            lmax,
            nr,
            nlm,
            signs: (0..=lmax).map(parity_sign).collect(),
        })
    }

    /// (l, lm, n) of every feature, in the natural order x = lm·nr + n.
    fn features(&self) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::with_capacity(self.nlm * self.nr);
        for l in 0..=self.lmax {
            for lm in l * l..(l + 1) * (l + 1) {
                for nn in 0..self.nr {
                    out.push((l, lm, nn));
                }
            }
        }
        out
    }

    /// Weight W(m) of feature (l, lm, n) at point `p` of `plane` (with the parity sign).
    #[inline]
    fn weight(&self, plane: &Plane, p: usize, feature: (usize, usize, usize)) -> f64 {
        let (l, lm, nn) = feature;
        let nrad = (self.lmax + 1) * self.nr;
        self.signs[l] * plane.y[p * self.nlm + lm] * plane.rad[p * nrad + l * self.nr + nn]
    }

    /// The strain terms of one feature (l, lm, n), accumulated per plane in `acc`: Σ_m
    /// c(m3) Re[ph FQ_a G*] ∂W/∂ε (weight 2 off the m3 = 0 plane, which holds both m and −m),
    /// with ∂W/∂k_β = s_l (D_ln Y_lm k_β + R_ln ∂Y_lm/∂k_β): per point, the radial-derivative
    /// part is summed in `dsum`, the angular one per lm in `zsum` (contracted with ∂Y/∂k
    /// once at the end), the volume part in `tsum`.
    fn strain_terms(
        &self,
        (l, lm, nn): (usize, usize, usize),
        (fq, gx): (&[C64], &[C64]),
        acc: &mut [(Vec<f64>, Vec<f64>, f64)],
    ) {
        let (nr, nlm) = (self.nr, self.nlm);
        let nrad = (self.lmax + 1) * nr;
        let odd = l % 2 == 1;
        let sl = self.signs[l];
        self.planes
            .par_iter()
            .zip(acc.par_iter_mut())
            .enumerate()
            .for_each(|(m3, (pl, (dsum, zsum, tsum)))| {
                let c = if m3 == 0 { 1.0 } else { 2.0 };
                for (p, &id) in pl.idx.iter().enumerate() {
                    let (q, gg) = (fq[id], gx[id]);
                    let t = c
                        * sl
                        * if odd {
                            q.im * gg.re - q.re * gg.im
                        } else {
                            q.re * gg.re + q.im * gg.im
                        };
                    let y = pl.y[p * nlm + lm];
                    let rad = pl.rad[p * nrad + l * nr + nn];
                    dsum[p] += t * y * pl.drad[p * nrad + l * nr + nn];
                    zsum[p * nlm + lm] += t * rad;
                    *tsum += t * y * rad;
                }
            });
    }

    /// [`Mesh::spread`] of [`LANES`] weights per atom at once, into the interleaved grids
    /// of `grid`.
    fn spread_lanes(&self, weight: &(dyn Fn(usize) -> [f64; LANES] + Sync), grid: &mut [f64]) {
        assert_eq!(grid.len(), self.len * LANES);
        grid.par_chunks_mut(1 << 16)
            .for_each(|c| c.iter_mut().for_each(|x| *x = 0.0));
        let out = SharedSlice::new(grid);
        for colour in &self.colours {
            colour.par_iter().for_each(|&b| {
                self.spread_block(&self.sorted[self.slab_blocks[b].clone()], weight, out)
            });
        }
    }

    /// One block of [`Mesh::spread_lanes`]: the caller runs only blocks of one colour at a
    /// time, so the points written here are written by no other thread.
    fn spread_block(
        &self,
        atoms: &[usize],
        weight: &(dyn Fn(usize) -> [f64; LANES] + Sync),
        out: SharedSlice,
    ) {
        type Weight<'a> = &'a (dyn Fn(usize) -> [f64; LANES] + Sync);
        #[inline(always)]
        fn body(m: &Mesh, atoms: &[usize], weight: Weight, out: SharedSlice) {
            let (order, n) = (m.order, m.n);
            for &i in atoms {
                let wi = weight(i);
                if wi.iter().all(|&x| x == 0.0) {
                    continue;
                }
                let th = &m.theta[i * 3 * order..(i + 1) * 3 * order];
                let ix = &m.index[i * 3 * order..(i + 1) * 3 * order];
                for j1 in 0..order {
                    let o1 = ix[j1] * n[1];
                    for j2 in 0..order {
                        let w12 = th[j1] * th[order + j2];
                        let mut v12 = [0.0; LANES];
                        for l in 0..LANES {
                            v12[l] = wi[l] * w12;
                        }
                        let row = (o1 + ix[order + j2]) * n[2];
                        for j3 in 0..order {
                            let at = (row + ix[2 * order + j3]) * LANES;
                            let w = th[2 * order + j3];
                            // SAFETY: written by this block's thread only (see
                            // `spread_lanes`).
                            let dst = unsafe { out.slice(at, LANES) };
                            for l in 0..LANES {
                                dst[l] += v12[l] * w;
                            }
                        }
                    }
                }
            }
        }
        crate::math::dispatch::multiversion!(body; (
            m: &Mesh = self,
            atoms: &[usize] = atoms,
            weight: Weight<'_> = weight,
            out: SharedSlice = out,
        ) -> ())
    }

    /// Q = Σ_i weight(i) θ_i on the grid, written straight into `real`: the blocks of one
    /// colour in parallel (their stencils touch disjoint points), colour after colour, each
    /// block's atoms in order, so the sums have a fixed order whatever the thread count.
    fn spread(&self, weight: &(dyn Fn(usize) -> f64 + Sync), real: &mut [f64]) {
        let (order, n) = (self.order, self.n);
        assert_eq!(real.len(), self.len);
        real.par_chunks_mut(1 << 16)
            .for_each(|c| c.iter_mut().for_each(|x| *x = 0.0));
        let out = SharedSlice::new(real);
        for colour in &self.colours {
            colour.par_iter().for_each(|&b| {
                for &i in &self.sorted[self.slab_blocks[b].clone()] {
                    let wi = weight(i);
                    if wi == 0.0 {
                        continue;
                    }
                    let th = &self.theta[i * 3 * order..(i + 1) * 3 * order];
                    let ix = &self.index[i * 3 * order..(i + 1) * 3 * order];
                    for j1 in 0..order {
                        let v1 = wi * th[j1];
                        let o1 = ix[j1] * n[1];
                        for j2 in 0..order {
                            let v12 = v1 * th[order + j2];
                            let row = (o1 + ix[order + j2]) * n[2];
                            for j3 in 0..order {
                                let at = row + ix[2 * order + j3];
                                // SAFETY: the blocks running at the same time touch
                                // disjoint points (their colour).
                                unsafe { out.add(at, v12 * th[2 * order + j3]) };
                            }
                        }
                    }
                }
            });
        }
    }

    /// spec = W(m)·(1 or −i)·src(m) on the sphere, 0 elsewhere (the field of one feature);
    /// with `adjoint`, spec += W(m)·(1 or +i)·src(m) instead (the transposed operator).
    fn feature_spectrum(
        &self,
        src: &[C64],
        feature: (usize, usize, usize),
        adjoint: bool,
        spec: &mut [C64],
    ) {
        let l = feature.0;
        let plane = self.n[0] * self.n[1];
        spec.par_chunks_mut(plane).enumerate().for_each(|(m3, sp)| {
            if !adjoint {
                sp.iter_mut().for_each(|s| *s = C64::new(0.0, 0.0));
            }
            let pl = &self.planes[m3];
            for (p, &id) in pl.idx.iter().enumerate() {
                let v = src[id] * self.weight(pl, p, feature);
                let o = &mut sp[id - m3 * plane];
                match (l.is_multiple_of(2), adjoint) {
                    (true, false) => *o = v,
                    (false, false) => *o = C64::new(v.im, -v.re),
                    (true, true) => *o += v,
                    (false, true) => *o += C64::new(-v.im, v.re),
                }
            }
        });
    }

    /// [`Mesh::interpolate`] of the [`LANES`] interleaved grids of `grid` at once (one pass
    /// over the stencils, the lanes of a grid point contiguous): lane l of atom `sorted[p]`
    /// into `out[p·stride + col + l]`.
    fn interpolate_lanes(&self, grid: &[f64], out: &mut [f64], (stride, col): (usize, usize)) {
        assert!(grid.len() == self.len * LANES && col + LANES <= stride);
        assert!(out.len() == self.sorted.len() * stride);
        const CHUNK: usize = 64;
        out.par_chunks_mut(CHUNK * stride)
            .zip(self.sorted.par_chunks(CHUNK))
            .for_each(|(out, atoms)| self.interpolate_chunk(grid, atoms, out, (stride, col)));
    }

    fn interpolate_chunk(
        &self,
        grid: &[f64],
        atoms: &[usize],
        out: &mut [f64],
        sc: (usize, usize),
    ) {
        #[inline(always)]
        fn body(
            m: &Mesh,
            grid: &[f64],
            atoms: &[usize],
            out: &mut [f64],
            (stride, col): (usize, usize),
        ) {
            let (order, n) = (m.order, m.n);
            for (o, &i) in out.chunks_mut(stride).zip(atoms) {
                let th = &m.theta[i * 3 * order..(i + 1) * 3 * order];
                let ix = &m.index[i * 3 * order..(i + 1) * 3 * order];
                let mut acc = [0.0; LANES];
                for j1 in 0..order {
                    let o1 = ix[j1] * n[1];
                    let mut a2 = [0.0; LANES];
                    for j2 in 0..order {
                        let row = (o1 + ix[order + j2]) * n[2];
                        let mut a3 = [0.0; LANES];
                        for j3 in 0..order {
                            let w = th[2 * order + j3];
                            let at = (row + ix[2 * order + j3]) * LANES;
                            let g: &[f64; LANES] = grid[at..at + LANES].try_into().expect("lanes");
                            for l in 0..LANES {
                                a3[l] += w * g[l];
                            }
                        }
                        let w = th[order + j2];
                        for l in 0..LANES {
                            a2[l] += w * a3[l];
                        }
                    }
                    for l in 0..LANES {
                        acc[l] += th[j1] * a2[l];
                    }
                }
                o[col..col + LANES].copy_from_slice(&acc);
            }
        }
        crate::math::dispatch::multiversion!(body; (
            m: &Mesh = self,
            grid: &[f64] = grid,
            atoms: &[usize] = atoms,
            out: &mut [f64] = out,
            sc: (usize, usize) = sc,
        ) -> ())
    }

    /// [`Mesh::add_gradient`] of the [`LANES`] interleaved grids of `grid` at once:
    /// out[p] += Σ_l scale(i)[l] ∇_{r_i} Σ_grid θ_i · grid_l for every atom i = sorted[p].
    fn add_gradient_lanes(
        &self,
        grid: &[f64],
        scale: &(dyn Fn(usize) -> [f64; LANES] + Sync),
        out: &mut [[f64; 3]],
    ) {
        assert!(grid.len() == self.len * LANES && out.len() == self.sorted.len());
        const CHUNK: usize = 64;
        out.par_chunks_mut(CHUNK)
            .zip(self.sorted.par_chunks(CHUNK))
            .for_each(|(out, atoms)| self.gradient_chunk(grid, scale, atoms, out));
    }

    fn gradient_chunk(
        &self,
        grid: &[f64],
        scale: &(dyn Fn(usize) -> [f64; LANES] + Sync),
        atoms: &[usize],
        out: &mut [[f64; 3]],
    ) {
        type Scale<'a> = &'a (dyn Fn(usize) -> [f64; LANES] + Sync);
        #[inline(always)]
        fn body(m: &Mesh, grid: &[f64], scale: Scale, atoms: &[usize], out: &mut [[f64; 3]]) {
            let (order, n) = (m.order, m.n);
            for (o, &i) in out.iter_mut().zip(atoms) {
                let s = scale(i);
                if s.iter().all(|&x| x == 0.0) {
                    continue;
                }
                let th = &m.theta[i * 3 * order..(i + 1) * 3 * order];
                let dth = &m.dtheta[i * 3 * order..(i + 1) * 3 * order];
                let ix = &m.index[i * 3 * order..(i + 1) * 3 * order];
                let mut du = [[0.0; LANES]; 3];
                for j1 in 0..order {
                    let o1 = ix[j1] * n[1];
                    let (mut b2, mut db2, mut b23) = ([0.0; LANES], [0.0; LANES], [0.0; LANES]);
                    for j2 in 0..order {
                        let row = (o1 + ix[order + j2]) * n[2];
                        let (mut a3, mut da3) = ([0.0; LANES], [0.0; LANES]);
                        for j3 in 0..order {
                            let at = (row + ix[2 * order + j3]) * LANES;
                            let v: &[f64; LANES] = grid[at..at + LANES].try_into().expect("lanes");
                            let (w, dw) = (th[2 * order + j3], dth[2 * order + j3]);
                            for l in 0..LANES {
                                a3[l] += w * v[l];
                                da3[l] += dw * v[l];
                            }
                        }
                        let (w, dw) = (th[order + j2], dth[order + j2]);
                        for l in 0..LANES {
                            b2[l] += w * a3[l];
                            db2[l] += dw * a3[l];
                            b23[l] += w * da3[l];
                        }
                    }
                    for l in 0..LANES {
                        du[0][l] += dth[j1] * b2[l];
                        du[1][l] += th[j1] * db2[l];
                        du[2][l] += th[j1] * b23[l];
                    }
                }
                // Σ_l s_l du_l, then the Cartesian components
                let mut u = [0.0; 3];
                for (ua, da) in u.iter_mut().zip(&du) {
                    for l in 0..LANES {
                        *ua += s[l] * da[l];
                    }
                }
                for (c, oc) in o.iter_mut().enumerate() {
                    let d = m.du_dr[c];
                    *oc += d[0] * u[0] + d[1] * u[1] + d[2] * u[2];
                }
            }
        }
        crate::math::dispatch::multiversion!(body; (
            m: &Mesh = self,
            grid: &[f64] = grid,
            scale: Scale<'_> = scale,
            atoms: &[usize] = atoms,
            out: &mut [[f64; 3]] = out,
        ) -> ())
    }

    /// out[p] += scale(i) ∇_{r_i} Σ_grid θ_i · real for every atom i = sorted[p] with a
    /// non-zero scale (Cartesian gradient through the B-spline derivatives).
    fn add_gradient(
        &self,
        real: &[f64],
        scale: &(dyn Fn(usize) -> f64 + Sync),
        out: &mut [[f64; 3]],
    ) {
        let (order, n) = (self.order, self.n);
        out.par_iter_mut()
            .zip(self.sorted.par_iter())
            .for_each(|(out, &i)| {
                let s = scale(i);
                if s == 0.0 {
                    return;
                }
                let th = &self.theta[i * 3 * order..(i + 1) * 3 * order];
                let dth = &self.dtheta[i * 3 * order..(i + 1) * 3 * order];
                let ix = &self.index[i * 3 * order..(i + 1) * 3 * order];
                let mut du = [0.0; 3];
                for j1 in 0..order {
                    let o1 = ix[j1] * n[1];
                    let (mut b2, mut db2, mut b23) = (0.0, 0.0, 0.0);
                    for j2 in 0..order {
                        let row = (o1 + ix[order + j2]) * n[2];
                        let (mut a3, mut da3) = (0.0, 0.0);
                        for j3 in 0..order {
                            let v = real[row + ix[2 * order + j3]];
                            a3 += th[2 * order + j3] * v;
                            da3 += dth[2 * order + j3] * v;
                        }
                        b2 += th[order + j2] * a3;
                        db2 += dth[order + j2] * a3;
                        b23 += th[order + j2] * da3;
                    }
                    du[0] += dth[j1] * b2;
                    du[1] += th[j1] * db2;
                    du[2] += th[j1] * b23;
                }
                for c in 0..3 {
                    let d = self.du_dr[c];
                    out[c] += s * (d[0] * du[0] + d[1] * du[1] + d[2] * du[2]);
                }
            });
    }

    /// Spectrum FFT[Q_a] of the density of species `a` into `fq` (`real` is scratch).
    fn species_spectrum(&self, types: &[usize], a: usize, real: &mut [f64], fq: &mut [C64]) {
        self.spread(&|i| if types[i] == a { 1.0 } else { 0.0 }, real);
        self.fft.forward(real, fq);
    }
}

/// Blocks of MESH_BLOCK x-slabs (by the first x index of each atom's stencil; `sorted`
/// holds each block's atoms contiguously) and a greedy colouring of them such that the
/// stencils (`order` slabs from the first, periodic over `n0`) of two blocks of one colour
/// never touch the same slab.
fn slab_colouring(
    sorted: &[usize],
    index: &[usize],
    order: usize,
    n0: usize,
) -> (Vec<std::ops::Range<usize>>, Vec<Vec<usize>>) {
    let first = |i: usize| index[i * 3 * order];
    let mut blocks = Vec::new();
    let mut start = 0;
    for p in 1..=sorted.len() {
        if p == sorted.len() || first(sorted[p]) / MESH_BLOCK != first(sorted[start]) / MESH_BLOCK {
            blocks.push(start..p);
            start = p;
        }
    }
    // slabs touched by each block: from its lowest first index to its highest plus order − 1
    let touched: Vec<Vec<bool>> = blocks
        .iter()
        .map(|r| {
            let lo = r.clone().map(|p| first(sorted[p])).min().unwrap_or(0);
            let hi = r.clone().map(|p| first(sorted[p])).max().unwrap_or(0);
            let mut t = vec![false; n0];
            for x in lo..=hi + order - 1 {
                t[x % n0] = true;
            }
            t
        })
        .collect();
    let mut colours: Vec<Vec<usize>> = Vec::new();
    for b in 0..blocks.len() {
        let free = colours.iter().position(|members| {
            members
                .iter()
                .all(|&o| !touched[b].iter().zip(&touched[o]).any(|(x, y)| *x && *y))
        });
        match free {
            Some(c) => colours[c].push(b),
            None => colours.push(vec![b]),
        }
    }
    (blocks, colours)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The K0 term (per unit species count, divided by V) and the centre contribution C_n, as
/// in the exact path.
fn constant_terms(calc: &LodeExpansion, volume: f64) -> Result<(Vec<f64>, Vec<f64>)> {
    let params = calc.parameters();
    let p = params.exponent;
    let nr = params.max_radial + 1;
    let tables = calc.kspace_tables()?;
    let basis = &tables.0;
    let density = calc.density();
    let k0: Vec<f64> = match density.fourier_at_zero() {
        Some(g0) if p == 0.0 || p > 3.0 => basis
            .project_l0(|_| 1.0)
            .into_iter()
            .map(|x| x * g0 / volume)
            .collect(),
        _ => vec![0.0; nr],
    };
    let center = basis.project_l0(|r| density.real(r));
    Ok((k0, center))
}

/// Values of the LODE expansion on the mesh (no gradients).
pub fn compute(
    calc: &LodeExpansion,
    system: &System,
    species: &[i32],
    types: &[usize],
    mesh: MeshParameters,
) -> Result<LodeOutput> {
    check_terms(calc, system, species.len(), &mesh, 1.0)?;
    let m = Mesh::new(calc, system, mesh, false)?;
    let n_atoms = system.len();
    let na = species.len();
    let f = m.nlm * m.nr;
    let nr = m.nr;
    let features = m.features();
    let mut values = vec![0.0; n_atoms * na * f];
    let mut real = zeroed(m.len)?;
    let mut spec = filled(m.fft.spectrum_len(), C64::new(0.0, 0.0))?;
    // the fields of LANES features at a time, from interleaved grids (one pass over the
    // stencils for all of them), gathered FIELD_GROUP features at a time per atom and then
    // written to `values` atom by atom (one scattered write per value would stream the
    // whole values array through the cache once per feature on large systems)
    const FIELD_GROUP: usize = 4 * LANES;
    let mut grid = zeroed(m.len * LANES)?;
    let mut fields = vec![0.0; FIELD_GROUP * n_atoms];
    let mut fq = filled(m.fft.spectrum_len(), C64::new(0.0, 0.0))?;
    let sorted = &m.sorted;
    for a in 0..na {
        m.species_spectrum(types, a, &mut real, &mut fq);
        for g0 in (0..f).step_by(FIELD_GROUP) {
            let g1 = (g0 + FIELD_GROUP).min(f);
            for x0 in (g0..g1).step_by(LANES) {
                crate::interrupt::check()?;
                for x in x0..(x0 + LANES).min(g1) {
                    m.feature_spectrum(&fq, features[x], false, &mut spec);
                    m.fft
                        .inverse_interleaved(&mut spec, &mut grid, (x - x0, LANES));
                }
                // atoms in grid order: neighbouring atoms read the same grid lines
                m.interpolate_lanes(&grid, &mut fields, (FIELD_GROUP, x0 - g0));
            }
            let fields = &fields;
            let out = SharedSlice::new(&mut values);
            (0..n_atoms)
                .into_par_iter()
                .with_min_len(256)
                .for_each(|p| {
                    let i = sorted[p];
                    // SAFETY: `sorted` is a permutation, so every task writes the values of
                    // its own atom i only.
                    let row = unsafe { out.slice((i * na + a) * f + g0, g1 - g0) };
                    row.copy_from_slice(&fields[p * FIELD_GROUP..p * FIELD_GROUP + g1 - g0]);
                });
        }
    }
    // K0 term and centre subtraction, as in the exact path
    let volume = system.cell().expect("periodic").volume();
    let (k0, center) = constant_terms(calc, volume)?;
    let mut counts = vec![0.0; na];
    for &ty in types {
        counts[ty] += 1.0;
    }
    let w_cent = 1.0 - calc.parameters().center_atom_weight;
    for i in 0..n_atoms {
        for a in 0..na {
            for x in 0..nr {
                values[(i * na + a) * f + x] += k0[x] * counts[a];
            }
        }
        for x in 0..nr {
            values[(i * na + types[i]) * f + x] -= w_cent * center[x];
        }
    }
    Ok(LodeOutput {
        n_atoms,
        species: species.to_vec(),
        values,
        pair_gradients: None,
        self_gradients: None,
        strain_gradients: None,
        cell_gradients: None,
    })
}

/// Vector-Jacobian product of the mesh values: dL/dr and dL/dε (same convention as
/// [`super::periodic::backward`]) from g = dL/dc, in O(N log N).
///
/// With Θ_i(m) = FFT\[θ_i\], FQ_a = Σ_{j∈a} Θ_j and G_{a,x} = Σ_i g_{i,a,x} Θ_i (the
/// g-weighted centres spread and transformed), the mesh gives
///   L = Σ_{a,x} Σ_m W_x(m) ph_x FQ_a(m) G_{a,x}(m)* + constant terms,
/// ph_x = 1 (even l) or −i (odd l). Hence
/// * centre term: dL/dr_i += Σ_{a,x} g_{i,a,x} ∇(θ_i · Φ_{a,x}), Φ_{a,x} the forward fields;
/// * neighbour term: dL/dr_j += ∇(θ_j · Ψ_a), j ∈ a, Ψ_a = IFFT[Σ_x W_x ph_x* G_{a,x}] (one
///   inverse FFT per species);
/// * strain: positions and cell strained together leave the fractional coordinates, hence
///   every Θ_i, unchanged: only W (through k and the 1/V prefactor) and K0 depend on ε,
///   dW/dε_αβ = −k_α ∂W/∂k_β − δ_αβ W, accumulated in k-space.
pub fn backward(
    calc: &LodeExpansion,
    system: &System,
    species: &[i32],
    types: &[usize],
    g: &[f64],
    mesh: MeshParameters,
) -> Result<LodeBackward> {
    check_terms(calc, system, species.len(), &mesh, 3.0)?;
    let m = Mesh::new(calc, system, mesh, true)?;
    let n_atoms = system.len();
    let na = species.len();
    let f = m.nlm * m.nr;
    let nr = m.nr;
    let features = m.features();
    let mut real = zeroed(m.len)?;
    let mut spec = filled(m.fft.spectrum_len(), C64::new(0.0, 0.0))?;
    let mut gx = filled(m.fft.spectrum_len(), C64::new(0.0, 0.0))?;
    let mut vspec = filled(m.fft.spectrum_len(), C64::new(0.0, 0.0))?;
    // dL/dr in grid order (fr[p] for atom sorted[p])
    let mut fr = vec![[0.0; 3]; n_atoms];
    // strain accumulators per plane m3 (see below), reduced in plane order at the end
    let mut acc: Vec<(Vec<f64>, Vec<f64>, f64)> = m
        .planes
        .iter()
        .map(|pl| {
            (
                vec![0.0; pl.idx.len()],
                vec![0.0; pl.idx.len() * m.nlm],
                0.0,
            )
        })
        .collect();
    let mut fq = filled(m.fft.spectrum_len(), C64::new(0.0, 0.0))?;
    let mut lanes = zeroed(m.len * LANES)?;
    // (species, feature) channels with a non-zero dL/dc column: the others contribute
    // nothing and are skipped
    let active: Vec<bool> = (0..na * f)
        .into_par_iter()
        .map(|ax| (0..n_atoms).any(|i| g[i * na * f + ax] != 0.0))
        .collect();
    for a in 0..na {
        if !active[a * f..(a + 1) * f].iter().any(|&on| on) {
            continue;
        }
        m.species_spectrum(types, a, &mut real, &mut fq);
        vspec.iter_mut().for_each(|s| *s = C64::new(0.0, 0.0));
        let on: Vec<usize> = (0..f).filter(|&x| active[a * f + x]).collect();
        // centre term through the forward fields Φ_{a,x}, LANES features per pass over the
        // stencils (lanes past the group's features keep old fields, with weight 0)
        for group in on.chunks(LANES) {
            crate::interrupt::check()?;
            for (lane, &x) in group.iter().enumerate() {
                m.feature_spectrum(&fq, features[x], false, &mut spec);
                m.fft
                    .inverse_interleaved(&mut spec, &mut lanes, (lane, LANES));
            }
            let cols = |i: usize| {
                let mut s = [0.0; LANES];
                for (sl, &x) in s.iter_mut().zip(group) {
                    *sl = g[(i * na + a) * f + x];
                }
                s
            };
            m.add_gradient_lanes(&lanes, &cols, &mut fr);
            // G_{a,x}: the g-weighted centres on the mesh, the group's features together
            m.spread_lanes(&cols, &mut lanes);
            for (lane, &x) in group.iter().enumerate() {
                let feature = features[x];
                m.fft
                    .forward_interleaved(&mut lanes, (lane, LANES), &mut gx);
                m.feature_spectrum(&gx, feature, true, &mut vspec);
                m.strain_terms(feature, (&fq, &gx), &mut acc);
            }
        }
        // neighbour term through Ψ_a
        m.fft.inverse(&mut vspec, &mut real);
        m.add_gradient(&real, &|i| if types[i] == a { 1.0 } else { 0.0 }, &mut fr);
    }
    let mut positions = vec![[0.0; 3]; n_atoms];
    for (&i, v) in m.sorted.iter().zip(&fr) {
        positions[i] = *v;
    }
    // strain: −k_α Σ (∂W/∂k_β)·(…) per point (∂Y/∂k evaluated once per point), reduced in
    // plane order
    let lmax = m.lmax;
    let parts: Vec<[f64; 10]> = m
        .planes
        .par_iter()
        .zip(acc.par_iter())
        .map(|(pl, (dsum, zsum, tsum))| {
            let mut out = [0.0; 10];
            let mut y = vec![0.0; m.nlm];
            let mut gy = [vec![0.0; m.nlm], vec![0.0; m.nlm], vec![0.0; m.nlm]];
            for (p, k) in pl.k.iter().enumerate() {
                super::sph::real_sph(*k, lmax, &mut y, Some(&mut gy));
                let z = &zsum[p * m.nlm..(p + 1) * m.nlm];
                for be in 0..3 {
                    let u = dsum[p] * k[be] + dot(z, &gy[be]);
                    for al in 0..3 {
                        out[al * 3 + be] -= k[al] * u;
                    }
                }
            }
            out[9] = *tsum;
            out
        })
        .collect();
    let mut s10 = [0.0; 10];
    for part in parts {
        for (s, v) in s10.iter_mut().zip(part) {
            *s += v;
        }
    }
    // −δ_αβ Σ_i g_i·c_i without the centre term: k-space part in s10[9], K0 part here
    let volume = system.cell().expect("periodic").volume();
    let (k0, _) = constant_terms(calc, volume)?;
    let mut counts = vec![0.0; na];
    for &ty in types {
        counts[ty] += 1.0;
    }
    let mut trace = s10[9];
    for i in 0..n_atoms {
        for a in 0..na {
            for x in 0..nr {
                trace += g[(i * na + a) * f + x] * k0[x] * counts[a];
            }
        }
    }
    let mut strain = [[0.0; 3]; 3];
    for ab in 0..9 {
        strain[ab / 3][ab % 3] = s10[ab];
    }
    for al in 0..3 {
        strain[al][al] -= trace;
    }
    Ok(LodeBackward {
        positions,
        strain,
        cell: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lode::{BasisKind, LodeParameters, Method};

    const CELL: [[f64; 3]; 3] = [[5.0, 0.0, 0.0], [0.6, 4.6, 0.0], [-0.4, 0.7, 5.3]];

    fn lcg(state: &mut u64) -> f64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*state >> 11) as f64 / (1u64 << 53) as f64
    }

    fn system(n: usize, seed: u64, cell: [[f64; 3]; 3]) -> System {
        let mut s = seed;
        let numbers = (0..n).map(|i| [1, 8, 6][i % 3]).collect();
        let positions = (0..n)
            .map(|_| {
                let f = [lcg(&mut s), lcg(&mut s), lcg(&mut s)];
                let mut r = [0.0; 3];
                for c in 0..3 {
                    r[c] = f[0] * cell[0][c] + f[1] * cell[1][c] + f[2] * cell[2][c];
                }
                r
            })
            .collect();
        System::new(positions, numbers, Some(cell)).unwrap()
    }

    fn calc(exponent: f64, basis: BasisKind, weight: f64) -> LodeExpansion {
        LodeExpansion::new(LodeParameters {
            exponent,
            smearing: 0.7,
            max_angular: 2,
            max_radial: 1,
            radius: 2.0,
            basis,
            k_cutoff: None,
            center_atom_weight: weight,
            drop_divergent_k0: false,
        })
        .unwrap()
    }

    /// A periodic cell without atoms gives the empty result on every path (no panic), and
    /// parameters needing too many k-vectors are refused before any work.
    #[test]
    fn empty_cells_and_refusals() {
        let c = calc(1.0, BasisKind::Gto, 1.0);
        let empty = System::new(Vec::new(), Vec::new(), Some(CELL)).unwrap();
        let all = crate::lode::GradientRequest {
            positions: true,
            strain: true,
            cell: true,
        };
        for method in [Method::Exact, Method::Mesh(1e-4), Method::Auto(1e-4)] {
            let req = if matches!(method, Method::Mesh(_)) {
                Default::default()
            } else {
                all
            };
            let (out, _) = c.compute_with(&empty, &[1, 8], req, method).unwrap();
            assert!(out.values.is_empty() && out.n_atoms == 0);
            let (back, _) = c.backward_with(&empty, &[], &[], method).unwrap();
            assert!(back.positions.is_empty());
        }
        let tiny = LodeExpansion::new(LodeParameters {
            smearing: 1e-3,
            ..c.parameters().clone()
        })
        .unwrap();
        let sys = system(4, 1, CELL);
        for method in [Method::Exact, Method::Mesh(1e-4), Method::Auto(1e-4)] {
            let err = tiny
                .compute_with(&sys, &[1, 6, 8], Default::default(), method)
                .unwrap_err();
            assert!(
                matches!(err, crate::Error::TooExpensive { .. }),
                "{method:?}: {err}"
            );
        }
    }

    fn gradient(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..n).map(|_| lcg(&mut s) - 0.5).collect()
    }

    fn loss(c: &LodeExpansion, sys: &System, g: &[f64], acc: f64) -> f64 {
        let (out, used) = c
            .compute_with(sys, &[1, 6, 8], Default::default(), Method::Mesh(acc))
            .unwrap();
        assert!(used);
        out.values.iter().zip(g).map(|(v, w)| v * w).sum()
    }

    fn strained(sys: &System, al: usize, be: usize, h: f64) -> System {
        let mut m = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        m[al][be] += h;
        let apply = |r: &[f64; 3]| {
            let mut o = [0.0; 3];
            for a in 0..3 {
                o[a] = m[a][0] * r[0] + m[a][1] * r[1] + m[a][2] * r[2];
            }
            o
        };
        let cell = sys.cell().unwrap().matrix();
        let cell = [apply(&cell[0]), apply(&cell[1]), apply(&cell[2])];
        let pos = sys.positions().iter().map(apply).collect();
        System::new(pos, sys.numbers().to_vec(), Some(cell)).unwrap()
    }

    #[test]
    fn mesh_backward_is_the_derivative_of_the_mesh_values() {
        // L = Σ g·values of the mesh itself: central differences in positions and strain
        // (p = 1, GTO, triclinic, three species, some centre-atom weight)
        let c = calc(1.0, BasisKind::Gto, 0.5);
        let sys = system(7, 3, CELL);
        let acc = 1e-3;
        let g = gradient(sys.len() * 3 * c.n_features(), 11);
        let (back, used) = c
            .backward_with(&sys, &[1, 6, 8], &g, Method::Mesh(acc))
            .unwrap();
        assert!(used);
        let h = 1e-5;
        let mut scale: f64 = 0.0;
        back.positions
            .iter()
            .for_each(|r| r.iter().for_each(|v| scale = scale.max(v.abs())));
        for j in 0..sys.len() {
            for al in 0..3 {
                let mut val = [0.0; 2];
                for (s, sign) in [1.0, -1.0].into_iter().enumerate() {
                    let mut pos = sys.positions().to_vec();
                    pos[j][al] += sign * h;
                    let s2 = System::new(pos, sys.numbers().to_vec(), Some(CELL)).unwrap();
                    val[s] = loss(&c, &s2, &g, acc);
                }
                let fd = (val[0] - val[1]) / (2.0 * h);
                let err = (fd - back.positions[j][al]).abs();
                assert!(
                    err < 1e-7 * scale.max(1.0),
                    "dL/dr[{j}][{al}]: {fd} vs {}",
                    back.positions[j][al]
                );
            }
        }
        for al in 0..3 {
            for be in 0..3 {
                let fd = (loss(&c, &strained(&sys, al, be, h), &g, acc)
                    - loss(&c, &strained(&sys, al, be, -h), &g, acc))
                    / (2.0 * h);
                let err = (fd - back.strain[al][be]).abs();
                assert!(
                    err < 1e-7 * scale.max(1.0),
                    "dL/dε[{al}][{be}]: {fd} vs {}",
                    back.strain[al][be]
                );
            }
        }
    }

    #[test]
    fn mesh_backward_matches_exact_backward() {
        // the mesh backward approximates the exact one to the requested accuracy
        // (relative to the largest entry), and is not a copy of it
        let cell = [[7.0, 0.0, 0.0], [1.0, 6.5, 0.0], [-0.6, 0.8, 7.2]];
        let sys = system(20, 5, cell);
        for (p, basis, acc) in [
            (1.0, BasisKind::Gto, 1e-4),
            (2.5, BasisKind::Monomial, 1e-6),
            (6.0, BasisKind::Gto, 1e-6),
        ] {
            let c = calc(p, basis, 1.0);
            let g = gradient(sys.len() * 3 * c.n_features(), 2);
            let exact = c.backward(&sys, &[1, 6, 8], &g).unwrap();
            let (mesh, _) = c
                .backward_with(&sys, &[1, 6, 8], &g, Method::Mesh(acc))
                .unwrap();
            let mut scale: f64 = 0.0;
            let mut err: f64 = 0.0;
            for (a, b) in exact.positions.iter().zip(&mesh.positions) {
                for k in 0..3 {
                    scale = scale.max(a[k].abs());
                    err = err.max((a[k] - b[k]).abs());
                }
            }
            let mut s_scale: f64 = 0.0;
            let mut s_err: f64 = 0.0;
            for al in 0..3 {
                for be in 0..3 {
                    s_scale = s_scale.max(exact.strain[al][be].abs());
                    s_err = s_err.max((exact.strain[al][be] - mesh.strain[al][be]).abs());
                }
            }
            eprintln!(
                "p={p} acc={acc}: positions {:.2e} strain {:.2e}",
                err / scale,
                s_err / s_scale
            );
            assert!(
                err < 10.0 * acc * scale && err > 1e-15 * scale,
                "p={p}: {err} / {scale}"
            );
            assert!(s_err < acc * s_scale, "p={p}: {s_err} / {s_scale}");
        }
    }

    #[test]
    fn mesh_backward_threads_agree() {
        let c = calc(2.5, BasisKind::Monomial, 1.0);
        let sys = system(30, 9, CELL);
        let g = gradient(sys.len() * 3 * c.n_features(), 4);
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    c.backward_with(&sys, &[1, 6, 8], &g, Method::Mesh(1e-5))
                        .unwrap()
                        .0
                })
        };
        let (one, two) = (run(1), run(2));
        for (a, b) in one.positions.iter().zip(&two.positions) {
            for k in 0..3 {
                assert!((a[k] - b[k]).abs() < 1e-12 * (1.0 + a[k].abs()));
            }
        }
        for al in 0..3 {
            for be in 0..3 {
                let (a, b) = (one.strain[al][be], two.strain[al][be]);
                assert!((a - b).abs() < 1e-12 * (1.0 + a.abs()));
            }
        }
    }
}
