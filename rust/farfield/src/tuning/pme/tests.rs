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
