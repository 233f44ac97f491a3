use super::*;
use crate::direct::Direct;
use crate::tuning::freespace::{tune, FreeSpaceOverrides, OpenStats};

/// Deterministic uniform numbers in [0, 1).
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

/// `n` atoms at least 0.8 × the mean spacing apart (rattled simple cubic lattice points)
/// inside `shape` (a predicate on the lattice point), charges ±1 (`neutral`) or random.
fn cluster(
    n: usize,
    shape: impl Fn(Vec3) -> bool,
    neutral: bool,
    seed: u64,
) -> (System, Vec<f64>) {
    let mut rng = Lcg(seed);
    let a = 2.82;
    let mut positions = Vec::new();
    let side = 200i64;
    'outer: for r in 0..side {
        for i in -r..=r {
            for j in -r..=r {
                for k in -r..=r {
                    if i.abs().max(j.abs()).max(k.abs()) != r {
                        continue;
                    }
                    let p = [i as f64 * a, j as f64 * a, k as f64 * a];
                    if !shape(p) {
                        continue;
                    }
                    positions.push([
                        p[0] + 0.3 * (rng.next() - 0.5),
                        p[1] + 0.3 * (rng.next() - 0.5),
                        p[2] + 0.3 * (rng.next() - 0.5),
                    ]);
                    if positions.len() == n {
                        break 'outer;
                    }
                }
            }
        }
    }
    let charges: Vec<f64> = (0..positions.len())
        .map(|i| {
            if neutral {
                if i % 2 == 0 {
                    1.0
                } else {
                    -1.0
                }
            } else {
                rng.next() * 1.5 - 0.3
            }
        })
        .collect();
    let n = positions.len();
    (System::new(positions, vec![1; n], None).unwrap(), charges)
}

/// Relative RMS force error against the direct sum, with F_0 of the accuracy definition.
fn force_error(system: &System, charges: &[f64], a: &[Vec3], b: &[Vec3], p: f64) -> f64 {
    let n = system.len() as f64;
    let d = OpenStats::of(system).unwrap().spacing();
    let f0 = charges.iter().map(|q| q * q).sum::<f64>() / n / d.powf(p + 1.0);
    let mut s = 0.0;
    for (x, y) in a.iter().zip(b) {
        for k in 0..3 {
            s += (x[k] - y[k]).powi(2);
        }
    }
    (s / n).sqrt() / f0
}

#[test]
fn explore_errors() {
    let (system, charges) = cluster(1000, |_| true, true, 3);
    for p in [1.0, 2.5, 6.0] {
        let kernel = Kernel::new(p).unwrap();
        let exact = Direct::new(kernel)
            .compute(&system, &charges, Request::all())
            .unwrap();
        for accuracy in [1e-3, 1e-5] {
            let c = tune(kernel, &system, accuracy, FreeSpaceOverrides::default()).unwrap();
            let got = FreeSpace::new(kernel, c.parameters)
                .unwrap()
                .compute(&system, &charges, Request::all())
                .unwrap();
            let e = force_error(
                &system,
                &charges,
                got.forces.as_ref().unwrap(),
                exact.forces.as_ref().unwrap(),
                p,
            );
            println!(
                "p={p} acc={accuracy:e} {:?} pred {:?} measured {e:.3e} energy {} vs {}",
                c.parameters, c.predicted_error, got.energy, exact.energy
            );
        }
    }
}

/// Exact long-range pair forces Σ_j q_i q_j V_LR'(r) (self excluded).
fn exact_long_range(system: &System, charges: &[f64], split: &RangeSplit) -> (Vec<f64>, Vec<Vec3>) {
    let pos = system.positions();
    let n = pos.len();
    let mut phi = vec![0.0; n];
    let mut f = vec![[0.0; 3]; n];
    for i in 0..n {
        for j in 0..n {
            if i == j {
                continue;
            }
            let d = [0, 1, 2].map(|a| pos[j][a] - pos[i][a]);
            let r = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
            let (v, dv) = split.long_range(r);
            phi[i] += charges[j] * v;
            for a in 0..3 {
                f[i][a] += charges[i] * charges[j] * dv * d[a] / r;
            }
        }
    }
    (phi, f)
}

#[test]
fn explore_mesh() {
    let (system, charges) = cluster(1000, |_| true, true, 3);
    for p in [1.0, 6.0] {
        let kernel = Kernel::new(p).unwrap();
        let sigma = 3.0;
        let split = kernel.split(sigma).unwrap();
        let (_, f_exact) = exact_long_range(&system, &charges, &split);
        for order in [4, 6, 8] {
            for h in [1.0, 1.5, 2.0] {
                let fs = FreeSpace::new(
                    kernel,
                    FreeSpaceParameters {
                        smearing: sigma,
                        cutoff: 10.0,
                        spacing: h,
                        order,
                    },
                )
                .unwrap();
                let (_, f) = fs.mesh(&system, &charges, true).unwrap();
                let e = force_error(&system, &charges, &f, &f_exact, p);
                let stats = OpenStats::of(&system).unwrap();
                let pred = crate::tuning::freespace::predicted_error(kernel, stats, fs.parameters())
                    .unwrap();
                println!("p={p} order={order} h={h}: mesh error {e:.3e} predicted {:.3e}", pred.1);
            }
        }
    }
}
