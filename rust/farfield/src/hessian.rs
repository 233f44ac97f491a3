//! Second derivatives of the pair-kernel sums: what the double backward passes of an autograd
//! bridge (`farfield.torch`) need, computed exactly, without finite differences and without
//! N × N matrices (docs/torch.md).
//!
//! Every long-range sum applies a symmetric kernel matrix A(R): potentials φ = A q, energy
//! E = ½ qᵀ A q. For two charge vectors a, b, the bilinear form B(a, b) = aᵀ A(R) b and a
//! displacement field u (one vector per atom), with D_u the derivative of the positions along
//! u, [`second_order`] returns
//!
//! * `gradient` G = ∇_R B(a, b) (G(q, q) = −2 F(q), twice the negative forces);
//! * `dipole_a` = D_u (A a) and `dipole_b` = D_u (A b): the change of the potentials of the
//!   charges a (b) when every atom moves along u. Since ∂G_i/∂b_m = ∂(A a)_m/∂r_i, these are
//!   also the vector-Jacobian products of G with respect to b (a) for the upstream gradient u;
//! * `hvp` = D_u G: the Hessian-vector product of B with respect to the positions.
//!
//! [`second_order_strained`] adds a homogeneous strain direction e (3 × 3, the convention of
//! [`crate::strain`]): the perturbation moves every atom by u_i + e r_i and the cell to
//! H (1 + e)ᵀ (fractional coordinates move through u only). D then differentiates along
//! (u, e), and two outputs are added: `strain_gradient` W = ∂B/∂ε (the core's virial of B,
//! so W(q, q) = 2 ∂E/∂ε) and `strain_hvp` = D W. The cell derivatives of `farfield.torch`
//! follow from these (a cell direction Γ at fixed Cartesian positions is the strain
//! e = (H⁻¹Γ)ᵀ with u = −e r). In real space each pair moves by δd = u_j − u_i + e d; in
//! reciprocal space k·r is invariant and only the influence factor V̂(k²)/V changes
//! (δk² = −2 kᵀ e k, δV = V tr e) together with k itself (δk = −eᵀ k) in the gradients; the
//! k = 0 term κ Q_a Q_b / V (the neutralising background for p < 3, V̂(0) for p > 3; with
//! Gaussian widths also (2π/V) [Σ a_i σ_i² Q_b + Q_a Σ b_i σ_i²]) enters through the volume.
//!
//! The position-independent parts of A (self terms, the neutralising background, QEq's
//! hardness) do not appear in `gradient` and `hvp`; the volume-dependent k = 0 term does
//! appear in the strain outputs and in the strain part of the dipoles. Real space (with the Ewald split for periodic systems) sums the
//! radial derivatives f′, f″ of the pair kernel over a cell list; reciprocal space sums
//! structure factors S_a(k) = Σ a_j e^{ik·r_j} and their derivatives along u,
//! T_a(k) = Σ a_j (k·u_j) e^{ik·r_j}. Open systems sum all pairs (O(N²), refused beyond the
//! term limit of [`crate::limits`]). Each atom's sums run in a fixed order, so the results do
//! not depend on the thread count.
//!
//! For QEq's Gaussian charges (widths σ_i, γ_ij = √(σ_i² + σ_j²)) the pair kernel gains the
//! term −erfc(r/(√2γ_ij))/r (docs/science.md §3.1); [`Pairs::with_widths`] adds it.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::interrupt;
use crate::kernel::{screened_coulomb, Kernel, RangeSplit};
use crate::kspace::{cmul, KVectors, PhaseTables};
use crate::math::linalg::{dot, Mat3, Vec3};
use crate::neighbors::CellList;
use crate::realspace::ShortRangeTable;
use crate::system::System;

/// How the pairs of a system are summed: the bare kernel over all pairs (open systems) or the
/// Ewald split (periodic systems), optionally with QEq's Gaussian widths.
#[derive(Debug, Clone)]
pub struct Pairs {
    kernel: Kernel,
    /// The range split of periodic systems (`None`: the bare kernel over all pairs).
    split: Option<Split>,
    widths: Option<Vec<f64>>,
}

/// The Gaussian range split of a periodic sum: real space up to `cutoff` through the
/// tabulated short-range kernel (f and f′; f″ follows from them), and reciprocal space.
#[derive(Debug, Clone)]
struct Split {
    range: RangeSplit,
    cutoff: f64,
    table: ShortRangeTable,
    reciprocal: Reciprocal,
}

/// How reciprocal space is summed.
#[derive(Debug, Clone, Copy)]
enum Reciprocal {
    /// The explicit sum over the k-vectors with |k| < k_cutoff (Ewald).
    Ewald { k_cutoff: f64 },
    /// The smooth-PME mesh of `points` and B-spline `order`: the exact derivatives of the PME
    /// energy.
    Mesh { points: [usize; 3], order: usize },
}

impl Split {
    fn new(kernel: Kernel, smearing: f64, cutoff: f64, reciprocal: Reciprocal) -> Result<Split> {
        crate::tuning::check_positive("smearing", Some(smearing))?;
        crate::tuning::check_positive("cutoff", Some(cutoff))?;
        let range = kernel.split(smearing)?;
        Ok(Split {
            table: ShortRangeTable::new(&range, cutoff)?,
            range,
            cutoff,
            reciprocal,
        })
    }

    /// Refuses the work beyond the limits of [`crate::limits`] (the engines' own estimates).
    fn check_work(&self, system: &System) -> Result<()> {
        let smearing = self.range.smearing();
        match self.reciprocal {
            Reciprocal::Ewald { k_cutoff } => crate::tuning::check_ewald_work(
                system,
                crate::ewald::EwaldParameters {
                    smearing,
                    cutoff: self.cutoff,
                    k_cutoff,
                },
            ),
            Reciprocal::Mesh { points, order } => crate::tuning::pme::check_pme_work(
                system,
                &crate::pme::PmeParameters {
                    smearing,
                    cutoff: self.cutoff,
                    mesh: crate::pme::Mesh::Points(points),
                    order,
                },
            ),
        }
    }
}

impl Pairs {
    /// The bare kernel over all pairs of an open system.
    pub fn direct(kernel: Kernel) -> Pairs {
        Pairs {
            kernel,
            split: None,
            widths: None,
        }
    }

    /// The Ewald split of `kernel` with smearing σ, real-space `cutoff` and reciprocal-space
    /// `k_cutoff` (periodic systems).
    pub fn ewald(kernel: Kernel, smearing: f64, cutoff: f64, k_cutoff: f64) -> Result<Pairs> {
        crate::tuning::check_positive("k_cutoff", Some(k_cutoff))?;
        let reciprocal = Reciprocal::Ewald { k_cutoff };
        Ok(Pairs {
            kernel,
            split: Some(Split::new(kernel, smearing, cutoff, reciprocal)?),
            widths: None,
        })
    }

    /// The smooth-PME split (Essmann et al. 1995) with `points` mesh points along the cell
    /// vectors and B-splines of `order` (3 to 10): the exact second derivatives of the energy
    /// that [`crate::pme::Pme`] computes with the same parameters, in O(N log N).
    pub fn pme(
        kernel: Kernel,
        smearing: f64,
        cutoff: f64,
        points: [usize; 3],
        order: usize,
    ) -> Result<Pairs> {
        let (lo, hi) = crate::pme::ORDER_RANGE;
        if !(lo..=hi).contains(&order) {
            return Err(Error::parameter(
                "order",
                format!("must be in {lo}..={hi}, got {order}"),
            ));
        }
        if points.iter().any(|&k| k < order) {
            return Err(Error::parameter(
                "mesh",
                format!("every mesh size must be at least the order {order}, got {points:?}"),
            ));
        }
        let reciprocal = Reciprocal::Mesh { points, order };
        Ok(Pairs {
            kernel,
            split: Some(Split::new(kernel, smearing, cutoff, reciprocal)?),
            widths: None,
        })
    }

    /// Adds QEq's Gaussian charges of per-atom widths σ_i (Coulomb kernel only): the pair
    /// kernel becomes erf(r/(√2γ_ij))/r (open) or [erfc(r/(√2η)) − erfc(r/(√2γ_ij))]/r in
    /// real space (periodic, with η the Ewald smearing, which must be at least the largest
    /// γ_ij / √2 so that the cutoff also covers the width term).
    pub fn with_widths(mut self, widths: Vec<f64>) -> Result<Pairs> {
        if self.kernel.integer_exponent() != Some(1) {
            return Err(Error::parameter(
                "widths",
                "Gaussian charge widths are for the Coulomb kernel (exponent 1) only",
            ));
        }
        crate::error::check_finite("widths", &widths)?;
        if let Some(bad) = widths.iter().find(|s| **s <= 0.0) {
            return Err(Error::parameter(
                "widths",
                format!("must be positive, got {bad}"),
            ));
        }
        self.widths = Some(widths);
        Ok(self)
    }
}

/// Atom chunks of the periodic real-space pass (a constant, so that the order of the sums
/// does not depend on the thread count; memory: this many accumulators per atom).
const PAIR_CHUNKS: usize = 8;

/// The four outputs of [`second_order`] (see the module documentation).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct SecondOrder {
    /// ∇_R B(a, b), one vector per atom.
    pub gradient: Vec<Vec3>,
    /// D_u (A a), one value per atom.
    pub dipole_a: Vec<f64>,
    /// D_u (A b), one value per atom.
    pub dipole_b: Vec<f64>,
    /// D_u ∇_R B(a, b), one vector per atom.
    pub hvp: Vec<Vec3>,
    /// W = ∂B/∂ε (strain convention of [`crate::strain`]): only from
    /// [`second_order_strained`].
    pub strain_gradient: Option<Mat3>,
    /// D W along (u, e): only from [`second_order_strained`].
    pub strain_hvp: Option<Mat3>,
}

/// The strain accumulators of a pass: W and D W.
#[derive(Default, Clone, Copy)]
pub(crate) struct Strain {
    pub(crate) gradient: Mat3,
    pub(crate) hvp: Mat3,
}

impl Strain {
    fn add(&mut self, other: &Strain) {
        for x in 0..3 {
            for y in 0..3 {
                self.gradient[x][y] += other.gradient[x][y];
                self.hvp[x][y] += other.hvp[x][y];
            }
        }
    }

    /// Adds one pair term c f(|d|) (each unordered pair once) moving by δd = `w`:
    /// W += c f′/r d dᵀ, D W += c [(f″/r − f′/r²) δr d dᵀ + f′/r (w dᵀ + d wᵀ)].
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn add_pair(&mut self, c: f64, d: &Vec3, r: f64, w: &Vec3, d1: f64, d2: f64) {
        let along = dot(d, w) / r;
        let f1 = c * d1 / r;
        let f2 = c * (d2 / r - d1 / (r * r)) * along;
        for x in 0..3 {
            for y in 0..3 {
                self.gradient[x][y] += f1 * d[x] * d[y];
                self.hvp[x][y] += f2 * d[x] * d[y] + f1 * (w[x] * d[y] + d[x] * w[y]);
            }
        }
    }
}

/// `e v` (e acting on a column vector).
#[inline]
fn apply(e: &Mat3, v: &Vec3) -> Vec3 {
    [0, 1, 2].map(|x| e[x][0] * v[0] + e[x][1] * v[1] + e[x][2] * v[2])
}

/// `eᵀ v`.
#[inline]
fn apply_t(e: &Mat3, v: &Vec3) -> Vec3 {
    [0, 1, 2].map(|x| e[0][x] * v[0] + e[1][x] * v[1] + e[2][x] * v[2])
}

/// V̂(k²), dV̂/dk² and d²V̂/d(k²)² of the long-range kernel of exponent p and smearing σ: with
/// λ = σ²/2, y = λk² and b = (3 − p)/2, V̂ ∝ y^{−b} Γ(b, y) satisfies
/// k² V̂″ = −(b + 1 + y) V̂′ − b λ V̂.
#[inline]
fn fourier3(split: &RangeSplit, p: f64, k2: f64) -> (f64, f64, f64) {
    let (v, dv) = split.fourier(k2);
    let s = split.smearing();
    let lambda = 0.5 * s * s;
    let b = 0.5 * (3.0 - p);
    let d2v = -((b + 1.0 + lambda * k2) * dv + b * lambda * v) / k2;
    (v, dv, d2v)
}

/// The strain terms of one reciprocal-space influence factor g(k) = s V̂(k²) (s: a
/// k-independent scale, 1/V included) and its k-vector along the strain `e` with trace `tr`:
/// (δg, ∂g/∂ε, δ(∂g/∂ε)).
#[inline]
fn influence_strain(
    scale: f64,
    (v, dv, d2v): (f64, f64, f64),
    k: &Vec3,
    e: &Mat3,
    tr: f64,
) -> (f64, Mat3, Mat3) {
    let dk = [0, 1, 2].map(|x| -(e[0][x] * k[0] + e[1][x] * k[1] + e[2][x] * k[2]));
    let dk2 = 2.0 * dot(k, &dk);
    let dg = scale * (dv * dk2 - v * tr);
    let mut grad = [[0.0; 3]; 3];
    let mut hvp = [[0.0; 3]; 3];
    for x in 0..3 {
        for y in 0..3 {
            let delta = if x == y { 1.0 } else { 0.0 };
            grad[x][y] = scale * (-2.0 * dv * k[x] * k[y] - v * delta);
            hvp[x][y] = scale
                * (-2.0 * d2v * dk2 * k[x] * k[y]
                    - 2.0 * dv * (dk[x] * k[y] + k[x] * dk[y])
                    - dv * dk2 * delta)
                - tr * grad[x][y];
        }
    }
    (dg, grad, hvp)
}

/// f″ of a kernel f(r) = Q(p/2, r²/(2σ²)) / r^p from f, f′ and 1/σ² (0 for the bare kernel):
/// with h = f′ + p f / r, f″ = −h ((p + 1)/r + r/σ²) + p (p + 1) f / r².
#[inline]
fn second_derivative(f: f64, df: f64, r: f64, p: f64, inv_sigma2: f64) -> f64 {
    let h = df + p * f / r;
    -h * ((p + 1.0) / r + r * inv_sigma2) + p * (p + 1.0) * f / (r * r)
}

impl Pairs {
    /// (f′, f″) of the real-space pair kernel between atoms i and j at distance r.
    #[inline]
    fn radial(&self, i: usize, j: usize, r: f64) -> (f64, f64) {
        let p = self.kernel.exponent();
        let (mut d1, mut d2) = match &self.split {
            Some(split) => {
                let (f, df_over_r) = split.table.eval(r);
                let df = df_over_r * r;
                let s = split.range.smearing();
                (df, second_derivative(f, df, r, p, 1.0 / (s * s)))
            }
            None => {
                let (f, df) = self.kernel.value(r);
                (df, second_derivative(f, df, r, p, 0.0))
            }
        };
        if let Some(widths) = &self.widths {
            let gamma = (widths[i] * widths[i] + widths[j] * widths[j]).sqrt();
            let (f, df) = screened_coulomb(r, gamma);
            d1 -= df;
            d2 -= second_derivative(f, df, r, 1.0, 1.0 / (gamma * gamma));
        }
        (d1, d2)
    }
}

/// Per-atom accumulators of one atom's sums.
#[derive(Default, Clone, Copy)]
pub(crate) struct Atom {
    pub(crate) gradient: Vec3,
    pub(crate) dipole_a: f64,
    pub(crate) dipole_b: f64,
    pub(crate) hvp: Vec3,
}

impl Atom {
    /// Adds the pair (m, n) at separation `d` (from m to n, length r) with u_n − u_m = `du`.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn add_pair(
        &mut self,
        c: f64,
        an: f64,
        bn: f64,
        d: &Vec3,
        r: f64,
        du: &Vec3,
        d1: f64,
        d2: f64,
    ) {
        let unit = [d[0] / r, d[1] / r, d[2] / r];
        let along = dot(&unit, du);
        self.dipole_a += an * d1 * along;
        self.dipole_b += bn * d1 * along;
        for x in 0..3 {
            self.gradient[x] -= c * d1 * unit[x];
            self.hvp[x] -= c * (d2 * along * unit[x] + d1 / r * (du[x] - along * unit[x]));
        }
    }
}

/// Gradient, dipole potentials and Hessian-vector product of B(a, b) = aᵀ A b along `u`
/// (module documentation). `a`, `b` have one value per atom, `u` one vector per atom.
pub fn second_order(
    system: &System,
    pairs: &Pairs,
    a: &[f64],
    b: &[f64],
    u: &[Vec3],
) -> Result<SecondOrder> {
    run(system, pairs, a, b, u, None)
}

/// [`second_order`] along the displacements `u` and the homogeneous strain `strain` (e acting
/// on column vectors: r_i → r_i + t (u_i + e r_i), H → H (1 + t e)ᵀ), with the strain
/// gradient W = ∂B/∂ε and its derivative D W (module documentation). With e = 0 the four
/// outputs of [`second_order`] are unchanged.
pub fn second_order_strained(
    system: &System,
    pairs: &Pairs,
    a: &[f64],
    b: &[f64],
    u: &[Vec3],
    strain: &Mat3,
) -> Result<SecondOrder> {
    let flat: Vec<f64> = strain.iter().flatten().copied().collect();
    crate::error::check_finite("strain", &flat)?;
    run(system, pairs, a, b, u, Some(strain))
}

fn run(
    system: &System,
    pairs: &Pairs,
    a: &[f64],
    b: &[f64],
    u: &[Vec3],
    strain: Option<&Mat3>,
) -> Result<SecondOrder> {
    let n = system.len();
    crate::system::check_per_atom("a", a.len(), system)?;
    crate::system::check_per_atom("b", b.len(), system)?;
    crate::system::check_per_atom("u", u.len(), system)?;
    crate::longrange::check_charges(a)?;
    crate::longrange::check_charges(b)?;
    let flat: Vec<f64> = u.iter().flatten().copied().collect();
    crate::error::check_finite("u", &flat)?;
    if let Some(w) = &pairs.widths {
        crate::system::check_per_atom("widths", w.len(), system)?;
    }
    let pos = system.positions();
    let mut atoms = vec![Atom::default(); n];
    // the pair displacement δd = u_k − u_m + e d
    let moved = |m: usize, k: usize, d: &Vec3| -> Vec3 {
        let mut w = [u[k][0] - u[m][0], u[k][1] - u[m][1], u[k][2] - u[m][2]];
        if let Some(e) = strain {
            let ed = apply(e, d);
            for x in 0..3 {
                w[x] += ed[x];
            }
        }
        w
    };
    let mut total = Strain::default();
    match (&pairs.split, system.cell()) {
        (None, None) => {
            crate::limits::check_terms(
                "the second derivatives over all pairs of an open system (pair terms)",
                n as f64 * n as f64,
                "use fewer atoms",
            )?;
            let mut strains = vec![Strain::default(); if strain.is_some() { n } else { 0 }];
            let mut per_atom: Vec<(&mut Atom, Option<&mut Strain>)> = atoms
                .iter_mut()
                .zip(
                    strains
                        .iter_mut()
                        .map(Some)
                        .chain(std::iter::repeat_with(|| None)),
                )
                .collect();
            per_atom
                .par_iter_mut()
                .enumerate()
                .for_each(|(m, (atom, own))| {
                    if interrupt::is_requested() {
                        return;
                    }
                    for k in 0..n {
                        if k == m {
                            continue;
                        }
                        let d = [
                            pos[k][0] - pos[m][0],
                            pos[k][1] - pos[m][1],
                            pos[k][2] - pos[m][2],
                        ];
                        let r = dot(&d, &d).sqrt();
                        let du = moved(m, k, &d);
                        let (d1, d2) = pairs.radial(m, k, r);
                        let c = a[m] * b[k] + a[k] * b[m];
                        atom.add_pair(c, a[k], b[k], &d, r, &du, d1, d2);
                        if let Some(own) = own {
                            // each unordered pair is visited twice
                            own.add_pair(0.5 * c, &d, r, &du, d1, d2);
                        }
                    }
                });
            drop(per_atom);
            interrupt::check()?;
            for s in &strains {
                total.add(s);
            }
        }
        (Some(split), Some(cell)) => {
            split.check_work(system)?;
            if let Some(w) = &pairs.widths {
                let largest = w.iter().fold(0.0f64, |m, s| m.max(*s));
                let smearing = split.range.smearing();
                if smearing < largest * std::f64::consts::SQRT_2 * (1.0 - 1e-12) {
                    return Err(Error::parameter(
                        "smearing",
                        format!(
                            "must be at least √2 times the largest Gaussian width ({largest}), got \
                             {smearing}"
                        ),
                    ));
                }
            }
            let list = CellList::new(system, split.cutoff)?;
            // each pair once (the kernel evaluated once), added to both atoms: a fixed number
            // of atom chunks, each with its own accumulators, summed in chunk order (the
            // result does not depend on the thread count)
            let chunk = n.div_ceil(PAIR_CHUNKS).max(1);
            let partials: Vec<(Vec<Atom>, Strain)> = (0..n)
                .collect::<Vec<usize>>()
                .par_chunks(chunk)
                .map(|centres| {
                    let mut acc = vec![Atom::default(); n];
                    let mut own = Strain::default();
                    for &m in centres {
                        if interrupt::is_requested() {
                            break;
                        }
                        list.for_each_neighbor(m, |nb| {
                            if !nb.is_half(m) {
                                return;
                            }
                            let k = nb.j;
                            let du = moved(m, k, &nb.vector);
                            let (d1, d2) = pairs.radial(m, k, nb.distance);
                            let c = a[m] * b[k] + a[k] * b[m];
                            let r = nb.distance;
                            acc[m].add_pair(c, a[k], b[k], &nb.vector, r, &du, d1, d2);
                            let back = nb.vector.map(|x| -x);
                            let du_back = du.map(|x| -x);
                            acc[k].add_pair(c, a[m], b[m], &back, r, &du_back, d1, d2);
                            if strain.is_some() {
                                own.add_pair(c, &nb.vector, r, &du, d1, d2);
                            }
                        });
                    }
                    (acc, own)
                })
                .collect();
            for (_, own) in &partials {
                total.add(own);
            }
            atoms.par_iter_mut().enumerate().for_each(|(i, atom)| {
                for (part, _) in &partials {
                    let p = &part[i];
                    atom.dipole_a += p.dipole_a;
                    atom.dipole_b += p.dipole_b;
                    for x in 0..3 {
                        atom.gradient[x] += p.gradient[x];
                        atom.hvp[x] += p.hvp[x];
                    }
                }
            });
            drop(partials);
            interrupt::check()?;
            let range = &split.range;
            let p = pairs.kernel.exponent();
            let rec = match split.reciprocal {
                Reciprocal::Mesh { points, order } => mesh::reciprocal(
                    system, cell, range, p, points, order, a, b, u, strain, &mut atoms,
                )?,
                Reciprocal::Ewald { k_cutoff } => reciprocal(
                    system, cell, range, p, k_cutoff, a, b, u, strain, &mut atoms,
                )?,
            };
            total.add(&rec);
            if let Some(e) = strain {
                // the k = 0 term κ Q_a Q_b / V: W = −κ Q_a Q_b / V 1, D W = −tr e W, and the
                // potentials κ Q / V move by −tr e κ Q / V
                let tr = e[0][0] + e[1][1] + e[2][2];
                let kappa = range.k0_potential(1.0, cell.volume());
                let (qa, qb) = (a.iter().sum::<f64>(), b.iter().sum::<f64>());
                for x in 0..3 {
                    total.gradient[x][x] -= kappa * qa * qb;
                    total.hvp[x][x] += tr * kappa * qa * qb;
                }
                for atom in atoms.iter_mut() {
                    atom.dipole_a -= tr * kappa * qa;
                    atom.dipole_b -= tr * kappa * qb;
                }
                if let Some(widths) = &pairs.widths {
                    // Gaussian charges: the k → 0 limit of the width term adds
                    // (2π/V) [S_a Q_b + Q_a S_b], S_a = Σ a_i σ_i² (crate::qeq::operator)
                    let c = 2.0 * std::f64::consts::PI / cell.volume();
                    let moment =
                        |x: &[f64]| -> f64 { x.iter().zip(widths).map(|(x, s)| x * s * s).sum() };
                    let (sa, sb) = (moment(a), moment(b));
                    let term = c * (sa * qb + qa * sb);
                    for x in 0..3 {
                        total.gradient[x][x] -= term;
                        total.hvp[x][x] += tr * term;
                    }
                    for (atom, s) in atoms.iter_mut().zip(widths) {
                        atom.dipole_a -= tr * c * (sa + qa * s * s);
                        atom.dipole_b -= tr * c * (sb + qb * s * s);
                    }
                }
            }
        }
        (None, Some(_)) => {
            return Err(Error::Unsupported(
                "a periodic system needs the Ewald split (Pairs::ewald)".into(),
            ))
        }
        (Some(_), None) => {
            return Err(Error::Unsupported(
                "the Ewald split is for periodic systems; use Pairs::direct for open ones".into(),
            ))
        }
    }
    Ok(SecondOrder {
        gradient: atoms.iter().map(|t| t.gradient).collect(),
        dipole_a: atoms.iter().map(|t| t.dipole_a).collect(),
        dipole_b: atoms.iter().map(|t| t.dipole_b).collect(),
        hvp: atoms.iter().map(|t| t.hvp).collect(),
        strain_gradient: strain.map(|_| total.gradient),
        strain_hvp: strain.map(|_| total.hvp),
    })
}

/// Complex numbers as (re, im).
type C = (f64, f64);

/// Adds the reciprocal-space terms (half space, factor 2/V) to every atom; returns the strain
/// terms (zero without `strain`).
#[allow(clippy::too_many_arguments)]
fn reciprocal(
    system: &System,
    cell: &crate::system::Cell,
    split: &RangeSplit,
    p: f64,
    k_cutoff: f64,
    a: &[f64],
    b: &[f64],
    u: &[Vec3],
    strain: Option<&Mat3>,
    atoms: &mut [Atom],
) -> Result<Strain> {
    let kvectors = KVectors::half_space(cell, k_cutoff)?;
    let mut total = Strain::default();
    if kvectors.is_empty() {
        return Ok(total);
    }
    let tables = PhaseTables::new(cell, system.positions(), kvectors.max_index);
    let n = system.len();
    // S_a, S_b, T_a, T_b per k-vector: parallel over (m_0, m_1) groups, each sum over the
    // atoms in order; the phase shared by a group is formed once per atom
    let per_group: Vec<Vec<[C; 4]>> = kvectors
        .groups
        .par_iter()
        .map_init(
            || (vec![0.0; n], vec![0.0; n]),
            |(pc, ps), group| {
                if interrupt::is_requested() {
                    return Vec::new();
                }
                tables.partial_phases((group.m0, group.m1), 0..n, (pc, ps));
                group
                    .range
                    .clone()
                    .map(|idx| {
                        let (c2, s2) = tables.axis(2, kvectors.indices[idx][2]);
                        let k = kvectors.vectors[idx];
                        let mut s = [(0.0, 0.0); 4];
                        for j in 0..n {
                            let (c, sn) = cmul((pc[j], ps[j]), (c2[j], s2[j]));
                            let ku = dot(&k, &u[j]);
                            let (wa, wb) = (a[j], b[j]);
                            s[0].0 += wa * c;
                            s[0].1 += wa * sn;
                            s[1].0 += wb * c;
                            s[1].1 += wb * sn;
                            s[2].0 += wa * ku * c;
                            s[2].1 += wa * ku * sn;
                            s[3].0 += wb * ku * c;
                            s[3].1 += wb * ku * sn;
                        }
                        s
                    })
                    .collect()
            },
        )
        .collect();
    interrupt::check()?;
    let sums: Vec<[C; 4]> = per_group.into_iter().flatten().collect();
    let scale = 2.0 / cell.volume();
    let fourier: Vec<f64> = kvectors
        .norms2
        .iter()
        .map(|&k2| scale * split.fourier(k2).0)
        .collect();
    // with a strain: δv per k-vector, and W, D W summed over k in order
    let mut dfourier: Vec<f64> = Vec::new();
    if let Some(e) = strain {
        let tr = e[0][0] + e[1][1] + e[2][2];
        dfourier.reserve(kvectors.len());
        let im = |x: C, y: C| x.1 * y.0 - x.0 * y.1; // Im[x y*]
        for (idx, k) in kvectors.vectors.iter().enumerate() {
            let three = fourier3(split, p, kvectors.norms2[idx]);
            let (dv, grad, hvp) = influence_strain(scale, three, k, e, tr);
            dfourier.push(dv);
            let [sa, sb, ta, tb] = sums[idx];
            // C = Re[S_a S_b*], δC = −Im[T_a S_b*] + Im[S_a T_b*]
            let c = sa.0 * sb.0 + sa.1 * sb.1;
            let dc = -im(ta, sb) + im(sa, tb);
            for x in 0..3 {
                for y in 0..3 {
                    total.gradient[x][y] += c * grad[x][y];
                    total.hvp[x][y] += dc * grad[x][y] + c * hvp[x][y];
                }
            }
        }
    }
    // per atom: chunks of atoms in parallel, each atom's sum over k in order
    const CHUNK: usize = 64;
    atoms
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(chunk, block)| {
            let start = chunk * CHUNK;
            let len = block.len();
            let (mut pc, mut ps) = (vec![0.0; len], vec![0.0; len]);
            for group in &kvectors.groups {
                if interrupt::is_requested() {
                    return;
                }
                tables.partial_phases((group.m0, group.m1), start..start + len, (&mut pc, &mut ps));
                for idx in group.range.clone() {
                    let (c2, s2) = tables.axis(2, kvectors.indices[idx][2]);
                    let k = kvectors.vectors[idx];
                    let v = fourier[idx];
                    let [sa, sb, ta, tb] = sums[idx];
                    for (j, atom) in block.iter_mut().enumerate() {
                        let m = start + j;
                        let z = cmul((pc[j], ps[j]), (c2[m], s2[m]));
                        let ku = dot(&k, &u[m]);
                        // z S* = (cx + sy) + i (sx − cy) for z = (c, s), S = (x, y)
                        let re = |w: C| z.0 * w.0 + z.1 * w.1;
                        let im = |w: C| z.1 * w.0 - z.0 * w.1;
                        // D_u Re[z* S] = (k·u) Im[z* S] − Im[z* T], Im[z* S] = −Im[z S*]
                        atom.dipole_a += v * (-ku * im(sa) + im(ta));
                        atom.dipole_b += v * (-ku * im(sb) + im(tb));
                        let g = a[m] * im(sb) + b[m] * im(sa);
                        let h = a[m] * (ku * re(sb) - re(tb)) + b[m] * (ku * re(sa) - re(ta));
                        for x in 0..3 {
                            atom.gradient[x] -= v * k[x] * g;
                            atom.hvp[x] -= v * k[x] * h;
                        }
                        if let Some(e) = strain {
                            // v → v + δv, k → k − eᵀk (the phases k·r do not move)
                            let dv = dfourier[idx];
                            atom.dipole_a += dv * re(sa);
                            atom.dipole_b += dv * re(sb);
                            let ek = apply_t(e, &k);
                            for x in 0..3 {
                                atom.hvp[x] -= (dv * k[x] - v * ek[x]) * g;
                            }
                        }
                    }
                }
            }
        });
    interrupt::check()?;
    Ok(total)
}

mod mesh;

#[cfg(test)]
mod tests;
