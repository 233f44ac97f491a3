//! The second derivatives against central finite differences of the engines' own first
//! derivatives (Ewald and direct potentials and forces), and of a closed-form Gaussian-charge
//! sum for QEq's widths.

use super::*;
use crate::direct::Direct;
use crate::ewald::{Ewald, EwaldParameters};
use crate::longrange::{LongRangeSum, Request};
use crate::math::special::erf;

/// A small deterministic pseudo-random generator (no dependency on a seed crate).
fn lcg(state: &mut u64) -> f64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*state >> 11) as f64) / ((1u64 << 53) as f64)
}

fn random_system(n: usize, box_length: f64, periodic: bool, seed: u64) -> System {
    let mut s = seed;
    let positions = (0..n)
        .map(|_| [0; 3].map(|_| box_length * lcg(&mut s)))
        .collect();
    let cell = periodic.then(|| {
        [
            [box_length, 0.0, 0.0],
            [0.3, box_length * 0.9, 0.0],
            [-0.2, 0.4, box_length * 1.1],
        ]
    });
    System::new(positions, vec![1; n], cell).unwrap()
}

fn random(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    (0..n).map(|_| lcg(&mut s) - 0.5).collect()
}

fn random_vectors(n: usize, seed: u64) -> Vec<Vec3> {
    let mut s = seed;
    (0..n).map(|_| [0; 3].map(|_| lcg(&mut s) - 0.5)).collect()
}

fn moved(system: &System, u: &[Vec3], h: f64) -> System {
    let positions = system
        .positions()
        .iter()
        .zip(u)
        .map(|(r, d)| [r[0] + h * d[0], r[1] + h * d[1], r[2] + h * d[2]])
        .collect();
    System::new(
        positions,
        system.numbers().to_vec(),
        system.cell().map(|c| *c.matrix()),
    )
    .unwrap()
}

/// φ = A q and the bilinear gradient G(a, b) = −(F(a + b) − F(a − b))/2 from an engine.
struct Engine<'a>(&'a dyn LongRangeSum);

impl Engine<'_> {
    fn potentials(&self, system: &System, q: &[f64]) -> Vec<f64> {
        let request = Request {
            potentials: true,
            ..Request::default()
        };
        self.0
            .compute(system, q, request)
            .unwrap()
            .potentials
            .unwrap()
    }

    fn gradient(&self, system: &System, a: &[f64], b: &[f64]) -> Vec<Vec3> {
        let request = Request {
            forces: true,
            ..Request::default()
        };
        let plus: Vec<f64> = a.iter().zip(b).map(|(x, y)| x + y).collect();
        let minus: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
        let fp = self
            .0
            .compute(system, &plus, request)
            .unwrap()
            .forces
            .unwrap();
        let fm = self
            .0
            .compute(system, &minus, request)
            .unwrap()
            .forces
            .unwrap();
        fp.iter()
            .zip(&fm)
            .map(|(p, m)| [0, 1, 2].map(|x| -(p[x] - m[x]) / 2.0))
            .collect()
    }
}

fn assert_close(what: &str, got: &[f64], want: &[f64], tolerance: f64) {
    let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tolerance * scale,
            "{what}[{i}]: {g} vs {w} (scale {scale})"
        );
    }
}

fn flat(v: &[Vec3]) -> Vec<f64> {
    v.iter().flatten().copied().collect()
}

/// Central difference (f(plus) − f(minus)) / 2h of a per-system quantity.
fn central(moved: (&System, &System), h: f64, f: &dyn Fn(&System) -> Vec<f64>) -> Vec<f64> {
    f(moved.0)
        .iter()
        .zip(f(moved.1))
        .map(|(p, m)| (p - m) / (2.0 * h))
        .collect()
}

/// Checks dipole_a, dipole_b and hvp against central differences of the engine's φ and G
/// between the systems moved by ±h.
fn check_moved(
    engine: &Engine,
    got: &SecondOrder,
    (a, b): (&[f64], &[f64]),
    moved: (&System, &System),
    h: f64,
    tolerance: f64,
) {
    let dipole_a = central(moved, h, &|s| engine.potentials(s, a));
    assert_close("dipole_a", &got.dipole_a, &dipole_a, tolerance);
    let dipole_b = central(moved, h, &|s| engine.potentials(s, b));
    assert_close("dipole_b", &got.dipole_b, &dipole_b, tolerance);
    let hvp = central(moved, h, &|s| flat(&engine.gradient(s, a, b)));
    assert_close("hvp", &flat(&got.hvp), &hvp, tolerance);
}

fn flat3(m: Mat3) -> Vec<f64> {
    m.iter().flatten().copied().collect()
}

/// Checks all four outputs against central differences of the engine's φ and G along u.
fn check(system: &System, pairs: &Pairs, engine: &dyn LongRangeSum, tolerance: f64) {
    let n = system.len();
    let (a, b, u) = (random(n, 3), random(n, 4), random_vectors(n, 5));
    let engine = Engine(engine);
    let got = second_order(system, pairs, &a, &b, &u).unwrap();
    assert_close(
        "gradient",
        &flat(&got.gradient),
        &flat(&engine.gradient(system, &a, &b)),
        1e-9,
    );
    let h = 1e-4;
    let (plus, minus) = (moved(system, &u, h), moved(system, &u, -h));
    check_moved(&engine, &got, (&a, &b), (&plus, &minus), h, tolerance);
}

/// The Ewald engine for 1/r^p at smearing σ (cutoffs 8.5σ and 8.5/σ) and the matching pairs.
fn ewald_case(p: f64, sigma: f64) -> (Pairs, Ewald) {
    let kernel = Kernel::new(p).unwrap();
    let parameters = EwaldParameters {
        smearing: sigma,
        cutoff: 8.5 * sigma,
        k_cutoff: 8.5 / sigma,
    };
    let pairs = Pairs::ewald(kernel, sigma, parameters.cutoff, parameters.k_cutoff).unwrap();
    (pairs, Ewald::new(kernel, parameters).unwrap())
}

/// The PME engine for 1/r^p at smearing σ (cutoff 8.5σ, a 16 × 15 × 18 mesh, B-spline
/// `order`) and the matching pairs.
fn pme_case(p: f64, sigma: f64, order: usize) -> (Pairs, crate::pme::Pme) {
    use crate::pme::{Mesh, Pme, PmeParameters};
    let kernel = Kernel::new(p).unwrap();
    let points = [16, 15, 18];
    let parameters = PmeParameters {
        smearing: sigma,
        cutoff: 8.5 * sigma,
        mesh: Mesh::Points(points),
        order,
    };
    let pairs = Pairs::pme(kernel, sigma, parameters.cutoff, points, order).unwrap();
    (pairs, Pme::new(kernel, parameters).unwrap())
}

#[test]
fn open_systems_match_finite_differences_of_the_direct_sum() {
    let system = random_system(12, 4.0, false, 1);
    for p in [1.0, 1.5, 6.0] {
        let kernel = Kernel::new(p).unwrap();
        check(&system, &Pairs::direct(kernel), &Direct::new(kernel), 1e-6);
    }
}

#[test]
fn periodic_systems_match_finite_differences_of_ewald() {
    let system = random_system(10, 5.0, true, 2);
    for (p, sigma) in [(1.0, 1.0), (2.5, 0.9), (6.0, 0.8)] {
        let (pairs, ewald) = ewald_case(p, sigma);
        check(&system, &pairs, &ewald, 1e-6);
    }
}

/// The open Gaussian-charge pair sum Σ_{i≠j} x_j erf(r/(√2γ_ij))/r in closed form.
struct Gaussian(Vec<f64>);

impl LongRangeSum for Gaussian {
    fn compute(
        &self,
        system: &System,
        q: &[f64],
        request: Request,
    ) -> Result<crate::longrange::Output> {
        let pos = system.positions();
        let n = pos.len();
        let mut phi = vec![0.0; n];
        let mut forces = vec![[0.0; 3]; n];
        for i in 0..n {
            for j in 0..n {
                if i == j {
                    continue;
                }
                let d = [0, 1, 2].map(|x| pos[j][x] - pos[i][x]);
                let r = dot(&d, &d).sqrt();
                let g = (self.0[i].powi(2) + self.0[j].powi(2)).sqrt();
                let x = r / (std::f64::consts::SQRT_2 * g);
                let f = erf(x) / r;
                let df = -f / r
                    + (2.0 / std::f64::consts::PI.sqrt()) * (-x * x).exp()
                        / (std::f64::consts::SQRT_2 * g)
                        / r;
                phi[i] += q[j] * f;
                for c in 0..3 {
                    forces[i][c] += q[i] * q[j] * df * d[c] / r;
                }
            }
        }
        let energy = 0.5 * q.iter().zip(&phi).map(|(a, b)| a * b).sum::<f64>();
        let out = crate::longrange::Output {
            energy,
            potentials: request.potentials.then_some(phi),
            forces: request.forces.then_some(forces),
            ..Default::default()
        };
        Ok(out)
    }
}

#[test]
fn gaussian_widths_match_finite_differences_of_a_closed_form_sum() {
    let system = random_system(9, 3.0, false, 6);
    let widths: Vec<f64> = random(9, 7).iter().map(|x| 0.6 + x).collect();
    let pairs = Pairs::direct(Kernel::coulomb())
        .with_widths(widths.clone())
        .unwrap();
    check(&system, &pairs, &Gaussian(widths), 1e-6);
}

#[test]
fn periodic_gaussian_widths_are_smearing_independent() {
    // the real-space width term plus the point-charge reciprocal sum: the same derivatives
    // for two Ewald smearings (the splitting is exact up to truncation)
    let system = random_system(8, 4.0, true, 8);
    let widths: Vec<f64> = random(8, 9).iter().map(|x| 0.45 + 0.3 * x).collect();
    let (a, b, u) = (random(8, 10), random(8, 11), random_vectors(8, 12));
    let run = |sigma: f64| {
        let pairs = Pairs::ewald(Kernel::coulomb(), sigma, 9.0 * sigma, 9.0 / sigma)
            .unwrap()
            .with_widths(widths.clone())
            .unwrap();
        second_order(&system, &pairs, &a, &b, &u).unwrap()
    };
    let (one, two) = (run(0.9), run(1.3));
    assert_close("gradient", &flat(&one.gradient), &flat(&two.gradient), 1e-9);
    assert_close("dipole_a", &one.dipole_a, &two.dipole_a, 1e-9);
    assert_close("dipole_b", &one.dipole_b, &two.dipole_b, 1e-9);
    assert_close("hvp", &flat(&one.hvp), &flat(&two.hvp), 1e-9);
}

#[test]
fn bad_inputs_are_refused() {
    let system = random_system(4, 3.0, false, 13);
    let pairs = Pairs::direct(Kernel::coulomb());
    let u = random_vectors(4, 1);
    assert!(second_order(&system, &pairs, &[1.0; 3], &[1.0; 4], &u).is_err());
    assert!(second_order(&system, &pairs, &[f64::NAN; 4], &[1.0; 4], &u).is_err());
    assert!(Pairs::direct(Kernel::new(6.0).unwrap())
        .with_widths(vec![1.0; 4])
        .is_err());
    let periodic = random_system(4, 3.0, true, 14);
    assert!(second_order(&periodic, &pairs, &[1.0; 4], &[1.0; 4], &u).is_err());
}

#[test]
fn periodic_mesh_matches_finite_differences_of_pme() {
    let system = random_system(10, 5.0, true, 15);
    for (p, sigma, order) in [(1.0, 1.0, 6), (6.0, 0.8, 5), (2.5, 0.9, 4), (1.0, 1.1, 3)] {
        let (pairs, pme) = pme_case(p, sigma, order);
        check(&system, &pairs, &pme, 1e-6);
    }
}

#[test]
fn mesh_and_explicit_reciprocal_sums_agree() {
    let system = random_system(12, 5.0, true, 16);
    let (a, b, u) = (random(12, 17), random(12, 18), random_vectors(12, 19));
    let kernel = Kernel::coulomb();
    let sigma = 1.0;
    let ewald = Pairs::ewald(kernel, sigma, 9.0, 9.0).unwrap();
    let mesh = Pairs::pme(kernel, sigma, 9.0, [40, 40, 48], 10).unwrap();
    // a ≠ b, and a = b (the energy's case, where the mesh path transforms half the grids)
    for b in [&b, &a] {
        let one = second_order(&system, &ewald, &a, b, &u).unwrap();
        let two = second_order(&system, &mesh, &a, b, &u).unwrap();
        assert_close("gradient", &flat(&two.gradient), &flat(&one.gradient), 1e-8);
        assert_close("dipole_a", &two.dipole_a, &one.dipole_a, 1e-8);
        assert_close("dipole_b", &two.dipole_b, &one.dipole_b, 1e-8);
        assert_close("hvp", &flat(&two.hvp), &flat(&one.hvp), 1e-8);
    }
}

fn strained_system(system: &System, u: &[Vec3], e: &Mat3, h: f64) -> System {
    let positions = system
        .positions()
        .iter()
        .zip(u)
        .map(|(r, d)| {
            let er = apply(e, r);
            [0, 1, 2].map(|x| r[x] + h * (d[x] + er[x]))
        })
        .collect();
    // H → H (1 + h e)ᵀ: every cell vector (a row) moves by h e h_row
    let cell = system.cell().map(|c| {
        let m = c.matrix();
        [0, 1, 2].map(|row| {
            let moved = apply(e, &m[row]);
            [0, 1, 2].map(|x| m[row][x] + h * moved[x])
        })
    });
    System::new(positions, system.numbers().to_vec(), cell).unwrap()
}

impl Engine<'_> {
    /// W(a, b) = ∂B/∂ε = (W_E(a + b) − W_E(a − b)) / 2 from the engine's virial ∂E/∂ε.
    fn strain(&self, system: &System, a: &[f64], b: &[f64]) -> Vec<f64> {
        let request = Request {
            virial: true,
            ..Request::default()
        };
        let virial = |x: Vec<f64>| self.0.compute(system, &x, request).unwrap().virial.unwrap();
        let plus = virial(a.iter().zip(b).map(|(x, y)| x + y).collect());
        let minus = virial(a.iter().zip(b).map(|(x, y)| x - y).collect());
        (0..9)
            .map(|i| (plus[i / 3][i % 3] - minus[i / 3][i % 3]) / 2.0)
            .collect()
    }
}

fn random_strain(seed: u64) -> Mat3 {
    let mut s = seed;
    [0; 3].map(|_| [0; 3].map(|_| lcg(&mut s) - 0.5))
}

/// Checks the strained outputs (and W against the engine's virial) against central
/// differences of the engine's φ, G and virial along the affine move (u, e).
fn check_strained(system: &System, pairs: &Pairs, engine: &dyn LongRangeSum, tolerance: f64) {
    let n = system.len();
    let (a, b, u, e) = (
        random(n, 3),
        random(n, 4),
        random_vectors(n, 5),
        random_strain(6),
    );
    let engine = Engine(engine);
    let got = second_order_strained(system, pairs, &a, &b, &u, &e).unwrap();
    // e = 0: the outputs of second_order, unchanged
    let plain = second_order(system, pairs, &a, &b, &u).unwrap();
    let zero = second_order_strained(system, pairs, &a, &b, &u, &[[0.0; 3]; 3]).unwrap();
    assert_eq!(plain.gradient, zero.gradient);
    assert_eq!(plain.dipole_a, zero.dipole_a);
    assert_eq!(plain.hvp, zero.hvp);
    assert!(plain.strain_gradient.is_none() && zero.strain_hvp.is_some());
    assert_eq!(plain.gradient, got.gradient);
    if system.is_periodic() {
        let w = engine.strain(system, &a, &b);
        assert_close(
            "strain_gradient",
            &flat3(got.strain_gradient.unwrap()),
            &w,
            1e-9,
        );
    }
    let h = 1e-4;
    let (plus, minus) = (
        strained_system(system, &u, &e, h),
        strained_system(system, &u, &e, -h),
    );
    check_moved(&engine, &got, (&a, &b), (&plus, &minus), h, tolerance);
    if system.is_periodic() {
        let dw = central((&plus, &minus), h, &|s| engine.strain(s, &a, &b));
        assert_close(
            "strain_hvp",
            &flat3(got.strain_hvp.unwrap()),
            &dw,
            tolerance,
        );
    }
}

#[test]
fn strained_open_systems_match_finite_differences_of_the_direct_sum() {
    let system = random_system(12, 4.0, false, 1);
    for p in [1.0, 6.0] {
        let kernel = Kernel::new(p).unwrap();
        let pairs = Pairs::direct(kernel);
        check_strained(&system, &pairs, &Direct::new(kernel), 1e-6);
        // W of an open system: Σ_i ∇_i B ⊗ r_i (translation invariance)
        let (a, b, u) = (random(12, 3), random(12, 4), random_vectors(12, 5));
        let got = second_order_strained(&system, &pairs, &a, &b, &u, &random_strain(7)).unwrap();
        let want = crate::strain::position_moment(system.positions(), &got.gradient);
        assert_close(
            "W",
            &flat3(got.strain_gradient.unwrap()),
            &flat3(want),
            1e-12,
        );
    }
}

#[test]
fn strained_periodic_systems_match_finite_differences_of_ewald() {
    let system = random_system(10, 5.0, true, 2);
    for (p, sigma) in [(1.0, 1.0), (2.5, 0.9), (6.0, 0.8)] {
        let (pairs, ewald) = ewald_case(p, sigma);
        check_strained(&system, &pairs, &ewald, 1e-6);
    }
}

#[test]
fn strained_periodic_mesh_matches_finite_differences_of_pme() {
    let system = random_system(10, 5.0, true, 15);
    for (p, sigma, order) in [(1.0, 1.0, 6), (6.0, 0.8, 5), (2.5, 0.9, 4)] {
        let (pairs, pme) = pme_case(p, sigma, order);
        check_strained(&system, &pairs, &pme, 1e-6);
    }
}

#[test]
fn strained_mesh_and_explicit_reciprocal_sums_agree() {
    let system = random_system(12, 5.0, true, 16);
    let (a, b, u, e) = (
        random(12, 17),
        random(12, 18),
        random_vectors(12, 19),
        random_strain(20),
    );
    let kernel = Kernel::coulomb();
    let ewald = Pairs::ewald(kernel, 1.0, 9.0, 9.0).unwrap();
    let mesh = Pairs::pme(kernel, 1.0, 9.0, [40, 40, 48], 10).unwrap();
    // a ≠ b, and a = b (the mesh path transforms half the grids)
    for b in [&b, &a] {
        let one = second_order_strained(&system, &ewald, &a, b, &u, &e).unwrap();
        let two = second_order_strained(&system, &mesh, &a, b, &u, &e).unwrap();
        assert_close("dipole_a", &two.dipole_a, &one.dipole_a, 1e-8);
        assert_close("dipole_b", &two.dipole_b, &one.dipole_b, 1e-8);
        assert_close("hvp", &flat(&two.hvp), &flat(&one.hvp), 1e-8);
        let (w1, w2) = (one.strain_gradient.unwrap(), two.strain_gradient.unwrap());
        assert_close("W", &flat3(w2), &flat3(w1), 1e-8);
        let (d1, d2) = (one.strain_hvp.unwrap(), two.strain_hvp.unwrap());
        assert_close("D W", &flat3(d2), &flat3(d1), 1e-8);
    }
}

#[test]
fn strained_gaussian_widths_match_finite_differences_of_the_qeq_operator() {
    use crate::qeq::operator::{EwaldSettings, Operator};
    let system = random_system(8, 4.0, true, 21);
    let widths: Vec<f64> = random(8, 22).iter().map(|x| 0.45 + 0.3 * x).collect();
    let hardness = vec![1.0; 8];
    let settings = EwaldSettings {
        eta: 1.0,
        cutoff: 9.0,
        k_cutoff: 9.0,
    };
    let pairs = Pairs::ewald(Kernel::coulomb(), 1.0, 9.0, 9.0)
        .unwrap()
        .with_widths(widths.clone())
        .unwrap();
    // charged a and b: the width part of the k → 0 term moves with the volume
    let (a, b, u, e) = (
        random(8, 23),
        random(8, 24),
        random_vectors(8, 25),
        random_strain(26),
    );
    let got = second_order_strained(&system, &pairs, &a, &b, &u, &e).unwrap();
    let op = |s: &System| {
        Operator::new(s, &widths, &hardness, 1.0, Some(settings))
            .unwrap()
            .bilinear_gradient(&a, &b)
    };
    let here = op(&system);
    assert_close(
        "gradient",
        &flat(&got.gradient),
        &flat(&here.positions),
        1e-9,
    );
    let w = got.strain_gradient.unwrap();
    assert_close("W", &flat3(w), &flat3(here.strain), 1e-9);
    let h = 1e-4;
    let (plus, minus) = (
        strained_system(&system, &u, &e, h),
        strained_system(&system, &u, &e, -h),
    );
    let central = |f: &dyn Fn(&System) -> Vec<f64>| central((&plus, &minus), h, f);
    let apply_to = |s: &System, x: &[f64]| {
        Operator::new(s, &widths, &hardness, 1.0, Some(settings))
            .unwrap()
            .apply(x)
    };
    let dipole_a = central(&|s| apply_to(s, &a));
    assert_close("dipole_a", &got.dipole_a, &dipole_a, 1e-6);
    let dipole_b = central(&|s| apply_to(s, &b));
    assert_close("dipole_b", &got.dipole_b, &dipole_b, 1e-6);
    let hvp = central(&|s| flat(&op(s).positions));
    assert_close("hvp", &flat(&got.hvp), &hvp, 1e-6);
    let dw = central(&|s| flat3(op(s).strain));
    assert_close("strain_hvp", &flat3(got.strain_hvp.unwrap()), &dw, 1e-6);
}
