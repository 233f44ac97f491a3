use super::*;
use crate::longrange::{LongRangeSum, Request};
use crate::pme::Pme;

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Random neutral charges in a triclinic box at density 0.1.
fn random_system(n: usize, seed: u64) -> (System, Vec<f64>) {
    let mut rng = Lcg(seed);
    let l = (n as f64 / 0.1).cbrt();
    let cell = [
        [l, 0.0, 0.0],
        [0.2 * l, 0.95 * l, 0.0],
        [-0.1 * l, 0.15 * l, 1.05 * l],
    ];
    let mut pos = Vec::new();
    let mut q = Vec::new();
    for i in 0..n {
        let s = [rng.next(), rng.next(), rng.next()];
        let mut r = [0.0; 3];
        for c in 0..3 {
            r[c] = s[0] * cell[0][c] + s[1] * cell[1][c] + s[2] * cell[2][c];
        }
        pos.push(r);
        q.push(if i % 2 == 0 { 1.0 } else { -1.0 } * (0.5 + rng.next()));
    }
    let mean = q.iter().sum::<f64>() / n as f64;
    q.iter_mut().for_each(|x| *x -= mean);
    (System::new(pos, vec![1; n], Some(cell)).unwrap(), q)
}

fn measured(
    kernel: Kernel,
    system: &System,
    q: &[f64],
    params: PmeParameters,
    reference: &[[f64; 3]],
) -> f64 {
    let f = Pme::new(kernel, params)
        .unwrap()
        .compute(
            system,
            q,
            Request {
                forces: true,
                ..Default::default()
            },
        )
        .unwrap()
        .forces
        .unwrap();
    let n = system.len() as f64;
    let q2: f64 = q.iter().map(|x| x * x).sum();
    let d = (system.cell().unwrap().volume() / n).cbrt();
    let f0 = q2 / n / d.powf(kernel.exponent() + 1.0);
    let mut s = 0.0;
    for i in 0..system.len() {
        for c in 0..3 {
            s += (f[i][c] - reference[i][c]).powi(2);
        }
    }
    (s / n).sqrt() / f0
}

fn reference(kernel: Kernel, system: &System, q: &[f64]) -> Vec<[f64; 3]> {
    let params = tune_pme(kernel, system, 1e-12, None, None, Some(8))
        .unwrap()
        .parameters;
    Pme::new(kernel, params)
        .unwrap()
        .compute(
            system,
            q,
            Request {
                forces: true,
                ..Default::default()
            },
        )
        .unwrap()
        .forces
        .unwrap()
}

#[test]
fn accuracy_sweep() {
    for &p in &[1.0, 6.0] {
        let kernel = Kernel::new(p).unwrap();
        let (system, q) = random_system(200, 5);
        let refr = reference(kernel, &system, &q);
        for &acc in &[1e-3, 1e-5, 1e-7] {
            let choice = tune_pme(kernel, &system, acc, None, None, None).unwrap();
            let err = measured(kernel, &system, &q, choice.parameters, &refr);
            eprintln!(
                "p={p} acc={acc:.0e} measured {err:.2e} order {} grid {:?} σ {:.3} rc {:.3}",
                choice.parameters.order,
                choice.parameters.mesh,
                choice.parameters.smearing,
                choice.parameters.cutoff
            );
            assert!(err < acc, "p={p} acc={acc}: measured {err:.2e} {choice:?}");
            assert!(
                err > acc * 1e-4,
                "p={p} acc={acc}: measured {err:.2e} far below"
            );
        }
    }
}

#[test]
#[ignore]
fn calibration() {
    for &p in &[1.0, 6.0] {
        let kernel = Kernel::new(p).unwrap();
        let (system, q) = random_system(300, 9);
        let refr = reference(kernel, &system, &q);
        let stats = PmeStats::of(&system).unwrap();
        for &sigma in &[1.0, 1.5] {
            for order in [4usize, 6, 8] {
                for k in [12usize, 16, 20, 24, 32] {
                    let params = PmeParameters {
                        smearing: sigma,
                        cutoff: 9.0 * sigma,
                        mesh: Mesh::Points([k; 3]),
                        order,
                    };
                    let err = measured(kernel, &system, &q, params, &refr);
                    let pred = mesh_error(kernel, stats, sigma, [k; 3], order).unwrap();
                    println!("p={p} σ={sigma} n={order} K={k}: measured {err:.3e} predicted {pred:.3e} ratio {:.2}", err / pred);
                }
            }
        }
    }
}

#[test]
fn auto_prefers_ewald_for_small_and_pme_for_large() {
    let (small, _) = random_system(50, 1);
    assert!(!prefer_pme(Kernel::coulomb(), &small, 1e-5).unwrap());
    let (large, _) = random_system(20000, 2);
    assert!(prefer_pme(Kernel::coulomb(), &large, 1e-5).unwrap());
}

#[test]
fn bad_accuracy() {
    let (system, _) = random_system(10, 1);
    for acc in [0.0, 1.0, -1e-3, f64::NAN] {
        assert!(tune_pme(Kernel::coulomb(), &system, acc, None, None, None).is_err());
    }
    let molecule = System::new(vec![[0.0; 3]], vec![1], None).unwrap();
    assert!(tune_pme(Kernel::coulomb(), &molecule, 1e-5, None, None, None).is_err());
}

/// The same atoms in the basis M H of the lattice H (M unimodular, given as rows), positions
/// unchanged (the periodic system is the same).
fn rebased(system: &System, m: [[f64; 3]; 3]) -> System {
    let h = *system.cell().unwrap().matrix();
    let mut cell = [[0.0; 3]; 3];
    for i in 0..3 {
        for c in 0..3 {
            cell[i][c] = (0..3).map(|k| m[i][k] * h[k][c]).sum();
        }
    }
    System::new(
        system.positions().to_vec(),
        vec![1; system.len()],
        Some(cell),
    )
    .unwrap()
}

#[test]
fn skew_factors_have_their_closed_forms() {
    let cubic = System::new(
        vec![[0.0; 3]],
        vec![1],
        Some([[3.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 5.0]]),
    )
    .unwrap();
    assert_eq!(PmeStats::of(&cubic).unwrap().skew, [1.0; 3]);
    // fcc primitive cell: |a| = √2, face spacing V/|b × c| = 2/√3, s = √(3/2)
    let fcc = System::new(
        vec![[0.0; 3]],
        vec![1],
        Some([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]),
    )
    .unwrap();
    for s in PmeStats::of(&fcc).unwrap().skew {
        assert!((s - 1.5f64.sqrt()).abs() < 1e-14, "{s}");
    }
    // (a, b + 2a, c) of a cube: b' = (2, 1, 0) has length √5 and its planes (spanned by a and
    // c) are 1 apart; a's planes (spanned by b' and c) are 1/√5 apart
    let sheared = rebased(
        &cubic_unit(),
        [[1.0, 0.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    );
    let s = PmeStats::of(&sheared).unwrap().skew;
    assert!(
        (s[0] - 5f64.sqrt()).abs() < 1e-14 && (s[1] - 5f64.sqrt()).abs() < 1e-14,
        "{s:?}"
    );
    assert!((s[2] - 1.0).abs() < 1e-14, "{s:?}");
}

fn cubic_unit() -> System {
    System::new(
        vec![[0.0; 3]],
        vec![1],
        Some([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
    )
    .unwrap()
}

/// Issue #17: in a strongly skewed basis of the same lattice (a + c, b, a + 2c: skew factors
/// 3.0, 1.0, 3.0 here) the measured mesh error (large cutoff, forces against a converged
/// Ewald sum) stays within the predicted one as in the original basis, and the prediction is
/// not far above it either; without the skew factors it is 1.5× low or worse.
#[test]
fn mesh_error_holds_in_a_skewed_basis() {
    let (plain, q) = random_system(80, 11);
    let skewed = rebased(&plain, [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 2.0]]);
    let stats = PmeStats::of(&skewed).unwrap();
    assert!(
        stats.skew[0] > 2.9 && stats.skew[2] > 2.9,
        "{:?}",
        stats.skew
    );
    for p in [1.0, 6.0] {
        let kernel = Kernel::new(p).unwrap();
        let ewald = crate::tuning::tune_ewald(kernel, &plain, 1e-12, Default::default()).unwrap();
        let exact = crate::ewald::Ewald::new(kernel, ewald)
            .unwrap()
            .compute(
                &plain,
                &q,
                Request {
                    forces: true,
                    ..Default::default()
                },
            )
            .unwrap()
            .forces
            .unwrap();
        for (system, name) in [(&plain, "plain"), (&skewed, "skewed")] {
            let stats = PmeStats::of(system).unwrap();
            for (sigma, order, h) in [(1.0, 4, 0.6), (1.0, 6, 0.8), (1.5, 8, 1.2), (1.5, 6, 0.6)] {
                let n = stats.lengths.map(|l| ((l / h).ceil() as usize).max(order));
                let params = PmeParameters {
                    smearing: sigma,
                    cutoff: 12.0 * sigma,
                    mesh: Mesh::Points(n),
                    order,
                };
                let err = measured(kernel, system, &q, params, &exact);
                let pred = mesh_error(kernel, stats, sigma, n, order).unwrap();
                let ratio = err / pred;
                // the model of an orthogonal cell of the same lengths: too low in the skewed
                // basis (the regression this test guards against)
                let orthogonal = PmeStats {
                    skew: [1.0; 3],
                    ..stats
                };
                let naive = err / mesh_error(kernel, orthogonal, sigma, n, order).unwrap();
                let case = format!("p={p} {name} σ={sigma} n={order} K={n:?}");
                eprintln!(
                    "{case}: measured/predicted {ratio:.2} (without the skew factors {naive:.2})"
                );
                assert!(
                    (0.3..1.3).contains(&ratio),
                    "{case}: measured {err:.2e} predicted {pred:.2e}"
                );
                if name == "skewed" {
                    assert!(naive > 1.5, "{case}: {naive}");
                }
            }
        }
    }
}
