//! The reciprocal-space second derivatives on a smooth-PME mesh: exact derivatives of the
//! mesh-approximated bilinear form that [`crate::pme::Pme`] sums,
//!
//! B(a, b) = Σ_g Q_a(g) φ_b(g),  Q_a(g) = Σ_j a_j W_j(g),  φ_b = F⁻¹[G · F[Q_b]],
//!
//! with W_j(g) the product of the cardinal B-splines of atom j at grid point g and G the PME
//! influence function V̂(k)|b(m)|²/V (zero at m = 0 and on the Nyquist planes). With
//! R_a(g) = D_u Q_a(g) = Σ_j a_j u_j·∇W_j(g) and ρ_a = F⁻¹[G · F[R_a]]:
//!
//! * ∇_m B = a_m ∇φ_b(r_m) + b_m ∇φ_a(r_m), where ∇φ(r_m) = Σ_g ∇W_m(g) φ(g);
//! * D_u (A a)_m = u_m·∇φ_a(r_m) + Σ_g W_m(g) ρ_a(g);
//! * D_u ∇_m B = a_m [∇∇φ_b(r_m) u_m + ∇ρ_b(r_m)] + b_m [∇∇φ_a(r_m) u_m + ∇ρ_a(r_m)].
//!
//! Four grids are spread (serially, in atom order), transformed, multiplied by G and
//! transformed back; the gathers run in parallel over atoms. O(N n³ + K log K).
//!
//! With a strain e (fractional coordinates, hence Q_a, fixed) only G moves: δG from
//! δk² = −2 kᵀ e k and δV = V tr e, so ρ_a gains F⁻¹[δG · F[Q_a]], and the Cartesian gradient
//! operator Σ_p c_p ∂_p (c_p = K_p H⁻¹[:, p]) moves by −eᵀ. With B = Σ_m w_m G(m)
//! Re[F[Q_a] F[Q_b]*] (w_m the half-spectrum weights), W = Σ_m w_m Re[…] ∂G/∂ε and
//! D W = Σ_m w_m (Re[F[R_a] F[Q_b]* + F[Q_a] F[R_b]*] ∂G/∂ε + Re[…] δ(∂G/∂ε)).

use rayon::prelude::*;

use super::{apply_t, fourier3, influence_strain, Atom, Strain};
use crate::error::Result;
use crate::interrupt;
use crate::kernel::RangeSplit;
use crate::math::linalg::{dot, Mat3, Vec3};
use crate::mesh::bspline::{fill, moduli3, signed_frequency};
use crate::mesh::fft::{Fft3, C64};
use crate::system::{Cell, System};

/// B-spline weights of one atom: values, first and second derivatives along each axis (with
/// respect to the scaled coordinate u_a = K_a f_a) and the first grid index of each axis.
struct Stencil {
    th: [Vec<f64>; 3],
    d1: [Vec<f64>; 3],
    d2: [Vec<f64>; 3],
    start: [i64; 3],
}

fn stencil(r: &Vec3, inv: &[[f64; 3]; 3], points: [usize; 3], order: usize) -> Stencil {
    let mut out = Stencil {
        th: Default::default(),
        d1: Default::default(),
        d2: Default::default(),
        start: [0; 3],
    };
    for a in 0..3 {
        let f = r[0] * inv[0][a] + r[1] * inv[1][a] + r[2] * inv[2][a];
        let u = (f - f.floor()) * points[a] as f64;
        let base = u.floor();
        let w = u - base;
        out.start[a] = base as i64 - order as i64 + 1;
        // entry j belongs to grid point floor(u) − n + 1 + j: M_n(w + n − 1 − j)
        let mut th = vec![0.0; order];
        let mut d1 = vec![0.0; order];
        fill(w, &mut th, &mut d1);
        // M_n″(y) = M_{n−1}′(y) − M_{n−1}′(y − 1), from the order n − 1 weights
        // M_{n−1}(w + n − 2 − j′): y = w + n − 1 − j is j′ = j − 1, y − 1 is j′ = j
        let mut th1 = vec![0.0; order - 1];
        let mut d11 = vec![0.0; order - 1];
        fill(w, &mut th1, &mut d11);
        let d2: Vec<f64> = (0..order)
            .map(|j| {
                let before = if j >= 1 { d11[j - 1] } else { 0.0 };
                let here = if j < order - 1 { d11[j] } else { 0.0 };
                before - here
            })
            .collect();
        out.th[a] = th;
        out.d1[a] = d1;
        out.d2[a] = d2;
    }
    out
}

/// Adds the mesh terms of the reciprocal space to every atom (see the module documentation).
#[allow(clippy::too_many_arguments)]
pub(super) fn reciprocal(
    system: &System,
    cell: &Cell,
    split: &RangeSplit,
    p: f64,
    points: [usize; 3],
    order: usize,
    a: &[f64],
    b: &[f64],
    u: &[Vec3],
    strain: Option<&Mat3>,
    atoms: &mut [Atom],
) -> Result<Strain> {
    let total: usize = points.iter().product();
    // the strain path keeps four half spectra (2 × 16 bytes per point each)
    let spectra = if strain.is_some() { 4.0 * 8.0 } else { 0.0 };
    crate::limits::check_memory(
        "the second-derivative mesh grids",
        (8.0 * 8.0 + spectra) * total as f64,
        "use a coarser mesh (larger mesh spacing or lower accuracy)",
    )?;
    let inv = *cell.inverse();
    // ∂u_a/∂r = K_a (H⁻¹)[:, a]
    let c: [Vec3; 3] = [0, 1, 2].map(|axis| [0, 1, 2].map(|x| points[axis] as f64 * inv[x][axis]));
    let stencils: Vec<Stencil> = system
        .positions()
        .par_iter()
        .map(|r| stencil(r, &inv, points, order))
        .collect();
    let index = |s: &Stencil, axis: usize| -> Vec<usize> {
        (0..order)
            .map(|j| (s.start[axis] + j as i64).rem_euclid(points[axis] as i64) as usize)
            .collect()
    };
    // spread Q_a, Q_b, R_a, R_b (serial: a fixed order of sums). Per row (j0, j1) of the
    // stencil, each grid takes α θ₂ + β θ₂′ along the last axis.
    // the four grids interleaved: grids[4 g + k] (one cache line per grid point)
    let mut grids = crate::limits::try_zeroed("mesh grids", 4 * total)?;
    // B(q, q), the energy's case: the b lanes equal the a lanes (transformed once)
    let same = a == b;
    for (m, s) in stencils.iter().enumerate() {
        if m % 4096 == 0 {
            interrupt::check()?;
        }
        let wa = [0, 1, 2].map(|axis| a[m] * dot(&c[axis], &u[m]));
        let wb = [0, 1, 2].map(|axis| b[m] * dot(&c[axis], &u[m]));
        let (i0, i1, i2) = (index(s, 0), index(s, 1), index(s, 2));
        for j0 in 0..order {
            for j1 in 0..order {
                let row = (i0[j0] * points[1] + i1[j1]) * points[2];
                let t01 = s.th[0][j0] * s.th[1][j1];
                let d0 = s.d1[0][j0] * s.th[1][j1];
                let d1 = s.th[0][j0] * s.d1[1][j1];
                let alpha = [
                    a[m] * t01,
                    b[m] * t01,
                    wa[0] * d0 + wa[1] * d1,
                    wb[0] * d0 + wb[1] * d1,
                ];
                let beta = [wa[2] * t01, wb[2] * t01];
                for j2 in 0..order {
                    let g = 4 * (row + i2[j2]);
                    let (t, d) = (s.th[2][j2], s.d1[2][j2]);
                    let cell = &mut grids[g..g + 4];
                    cell[0] += alpha[0] * t;
                    cell[1] += alpha[1] * t;
                    cell[2] += alpha[2] * t + beta[0] * d;
                    cell[3] += alpha[3] * t + beta[1] * d;
                }
            }
        }
    }
    // the influence function of crate::pme, on the half spectrum [H][K2][K1]
    let fft = Fft3::shared(points);
    let moduli = moduli3(order, points);
    let recip = cell.reciprocal();
    let volume = cell.volume();
    let plane = points[0] * points[1];
    let influence: Vec<f64> = (0..fft.spectrum_len())
        .into_par_iter()
        .map(|idx| {
            let (m3, rest) = (idx / plane, idx % plane);
            let (m2, m1) = (rest / points[0], rest % points[0]);
            if m1 == 0 && m2 == 0 && m3 == 0 {
                return 0.0;
            }
            match (
                signed_frequency(m1, points[0]),
                signed_frequency(m2, points[1]),
                signed_frequency(m3, points[2]),
            ) {
                (Some(f1), Some(f2), Some(f3)) => {
                    let k: Vec3 =
                        [0, 1, 2].map(|x| f1 * recip[0][x] + f2 * recip[1][x] + f3 * recip[2][x]);
                    split.fourier(dot(&k, &k)).0 * moduli[0][m1] * moduli[1][m2] * moduli[2][m3]
                        / volume
                }
                _ => 0.0,
            }
        })
        .collect();
    let mut strained = Strain::default();
    if let Some(e) = strain {
        strained = strain_lanes(
            &mut grids,
            &fft,
            &influence,
            (split, p),
            (cell, points, order),
            same,
            e,
        )?;
    } else {
        let mut spec = vec![C64::new(0.0, 0.0); fft.spectrum_len()];
        for lane in 0..4 {
            if same && (lane == 1 || lane == 3) {
                continue;
            }
            interrupt::check()?;
            fft.forward_interleaved(&mut grids, (lane, 4), &mut spec);
            spec.par_iter_mut()
                .zip(&influence)
                .for_each(|(s, g)| *s *= *g);
            fft.inverse_interleaved(&mut spec, &mut grids, (lane, 4));
        }
    }
    if same {
        grids.par_chunks_mut(4).for_each(|cell| {
            cell[1] = cell[0];
            cell[3] = cell[2];
        });
    }
    // lanes: φ_a, φ_b, ρ_a, ρ_b
    // gathers: for φ_a, φ_b the gradient and Hessian (in u), for ρ_a, ρ_b the value and gradient
    atoms
        .par_iter_mut()
        .zip(stencils.par_iter())
        .enumerate()
        .for_each(|(m, (atom, s))| {
            let mut grad = [[0.0; 3]; 4];
            let mut hess = [[[0.0; 3]; 3]; 2];
            let mut value = [0.0; 2];
            let (i0, i1, i2) = (index(s, 0), index(s, 1), index(s, 2));
            for j0 in 0..order {
                for j1 in 0..order {
                    let row = (i0[j0] * points[1] + i1[j1]) * points[2];
                    // contract the last axis first: r[k] = Σ_j2 (θ₂, θ₂′, θ₂″) x_k
                    let mut r = [[0.0; 3]; 4];
                    for j2 in 0..order {
                        let g = 4 * (row + i2[j2]);
                        let (t, d, dd) = (s.th[2][j2], s.d1[2][j2], s.d2[2][j2]);
                        for (k, x) in grids[g..g + 4].iter().enumerate() {
                            r[k][0] += t * x;
                            r[k][1] += d * x;
                            r[k][2] += dd * x;
                        }
                    }
                    let (t0, d0, dd0) = (s.th[0][j0], s.d1[0][j0], s.d2[0][j0]);
                    let (t1, d1, dd1) = (s.th[1][j1], s.d1[1][j1], s.d2[1][j1]);
                    for (k, rk) in r.iter().enumerate() {
                        grad[k][0] += d0 * t1 * rk[0];
                        grad[k][1] += t0 * d1 * rk[0];
                        grad[k][2] += t0 * t1 * rk[1];
                    }
                    for k in 0..2 {
                        let rk = r[k];
                        let h = &mut hess[k];
                        h[0][0] += dd0 * t1 * rk[0];
                        h[1][1] += t0 * dd1 * rk[0];
                        h[2][2] += t0 * t1 * rk[2];
                        h[0][1] += d0 * d1 * rk[0];
                        h[0][2] += d0 * t1 * rk[1];
                        h[1][2] += t0 * d1 * rk[1];
                    }
                    value[0] += t0 * t1 * r[2][0];
                    value[1] += t0 * t1 * r[3][0];
                }
            }
            for h in hess.iter_mut() {
                h[1][0] = h[0][1];
                h[2][0] = h[0][2];
                h[2][1] = h[1][2];
            }
            // to Cartesian: ∇ = Σ_p c_p ∂_p, (∇∇ u) = Σ_pq c_p (c_q·u) ∂_p∂_q
            let cart = |v: &[f64; 3]| -> Vec3 {
                [0, 1, 2].map(|x| c[0][x] * v[0] + c[1][x] * v[1] + c[2][x] * v[2])
            };
            let cu = [0, 1, 2].map(|q| dot(&c[q], &u[m]));
            let hess_u = |h: &[[f64; 3]; 3]| -> Vec3 {
                let v = [0, 1, 2].map(|p| h[p][0] * cu[0] + h[p][1] * cu[1] + h[p][2] * cu[2]);
                cart(&v)
            };
            let [ga, gb, gra, grb] = [
                cart(&grad[0]),
                cart(&grad[1]),
                cart(&grad[2]),
                cart(&grad[3]),
            ];
            let (ha, hb) = (hess_u(&hess[0]), hess_u(&hess[1]));
            atom.dipole_a += dot(&u[m], &ga) + value[0];
            atom.dipole_b += dot(&u[m], &gb) + value[1];
            let gradient: Vec3 = [0, 1, 2].map(|x| a[m] * gb[x] + b[m] * ga[x]);
            // the gradient operator moves by −eᵀ under the strain
            let moved = strain.map_or([0.0; 3], |e| apply_t(e, &gradient));
            for x in 0..3 {
                atom.gradient[x] += gradient[x];
                atom.hvp[x] += a[m] * (hb[x] + grb[x]) + b[m] * (ha[x] + gra[x]) - moved[x];
            }
        });
    interrupt::check()?;
    Ok(strained)
}

/// The strain path of the transforms: the four lanes (Q_a, Q_b, R_a, R_b) to their spectra,
/// W and D W from them, then φ_a = F⁻¹[G Q̂_a], φ_b, ρ_a = F⁻¹[G R̂_a + δG Q̂_a], ρ_b back in
/// the lanes. `influence` is G on the half spectrum.
fn strain_lanes(
    grids: &mut [f64],
    fft: &Fft3,
    influence: &[f64],
    (split, p): (&RangeSplit, f64),
    (cell, points, order): (&Cell, [usize; 3], usize),
    same: bool,
    e: &Mat3,
) -> Result<Strain> {
    let len = fft.spectrum_len();
    let mut specs: Vec<Vec<C64>> = Vec::with_capacity(4);
    for lane in 0..4 {
        interrupt::check()?;
        if same && (lane == 1 || lane == 3) {
            specs.push(Vec::new());
            continue;
        }
        let mut spec = vec![C64::new(0.0, 0.0); len];
        fft.forward_interleaved(grids, (lane, 4), &mut spec);
        specs.push(spec);
    }
    if same {
        specs[1] = specs[0].clone();
        specs[3] = specs[2].clone();
    }
    let moduli = moduli3(order, points);
    let recip = cell.reciprocal();
    let volume = cell.volume();
    let tr = e[0][0] + e[1][1] + e[2][2];
    let plane = points[0] * points[1];
    // one half-spectrum plane (fixed m3) per task, the partial sums added in plane order
    let [qa, qb, ra, rb] = &mut specs[..] else {
        unreachable!("four lanes")
    };
    let partials: Vec<Strain> = qa
        .par_chunks_mut(plane)
        .zip(qb.par_chunks_mut(plane))
        .zip(ra.par_chunks_mut(plane))
        .zip(rb.par_chunks_mut(plane))
        .zip(influence.par_chunks(plane))
        .enumerate()
        .map(|(m3, ((((qa, qb), ra), rb), g))| {
            let mut acc = Strain::default();
            if interrupt::is_requested() {
                return acc;
            }
            let weight = if m3 == 0 { 1.0 } else { 2.0 };
            for i in 0..plane {
                let (m2, m1) = (i / points[0], i % points[0]);
                let frequencies = (
                    signed_frequency(m1, points[0]),
                    signed_frequency(m2, points[1]),
                    signed_frequency(m3, points[2]),
                );
                let dg = match frequencies {
                    (Some(f1), Some(f2), Some(f3)) if g[i] != 0.0 => {
                        let k: Vec3 = [0, 1, 2]
                            .map(|x| f1 * recip[0][x] + f2 * recip[1][x] + f3 * recip[2][x]);
                        let scale = moduli[0][m1] * moduli[1][m2] * moduli[2][m3] / volume;
                        let three = fourier3(split, p, dot(&k, &k));
                        let (dg, grad, hvp) = influence_strain(scale, three, &k, e, tr);
                        let c = weight * (qa[i].re * qb[i].re + qa[i].im * qb[i].im);
                        let dc = weight
                            * (ra[i].re * qb[i].re
                                + ra[i].im * qb[i].im
                                + qa[i].re * rb[i].re
                                + qa[i].im * rb[i].im);
                        for x in 0..3 {
                            for y in 0..3 {
                                acc.gradient[x][y] += c * grad[x][y];
                                acc.hvp[x][y] += dc * grad[x][y] + c * hvp[x][y];
                            }
                        }
                        dg
                    }
                    _ => 0.0,
                };
                ra[i] = ra[i] * g[i] + qa[i] * dg;
                rb[i] = rb[i] * g[i] + qb[i] * dg;
                qa[i] *= g[i];
                qb[i] *= g[i];
            }
            acc
        })
        .collect();
    interrupt::check()?;
    let mut total = Strain::default();
    for part in &partials {
        total.add(part);
    }
    for (lane, spec) in specs.iter_mut().enumerate() {
        // with a = b the caller copies lanes 0 and 2 into 1 and 3
        if same && (lane == 1 || lane == 3) {
            continue;
        }
        interrupt::check()?;
        fft.inverse_interleaved(spec, grids, (lane, 4));
    }
    Ok(total)
}
