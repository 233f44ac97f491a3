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
fn cluster(n: usize, shape: impl Fn(Vec3) -> bool, neutral: bool, seed: u64) -> (System, Vec<f64>) {
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

fn sphere(r: f64) -> impl Fn(Vec3) -> bool {
    move |p: Vec3| p[0] * p[0] + p[1] * p[1] + p[2] * p[2] <= r * r
}

/// The shapes of the tests: a ball, a rod along a body diagonal, a thin disc (two layers).
fn shapes(n: usize, neutral: bool) -> Vec<(&'static str, System, Vec<f64>)> {
    let rod = |p: Vec3| {
        let t = (p[0] + p[1] + p[2]) / 3f64.sqrt();
        let r2 = p.iter().map(|x| x * x).sum::<f64>() - t * t;
        r2 <= 4.0 * 4.0
    };
    let disc = |p: Vec3| p[2].abs() < 2.0 && p[0] * p[0] + p[1] * p[1] < 60.0 * 60.0;
    let (a, qa) = cluster(n, sphere(1e3), neutral, 11);
    let (b, qb) = cluster(n, rod, neutral, 12);
    let (c, qc) = cluster(n, disc, neutral, 13);
    vec![("ball", a, qa), ("rod", b, qb), ("disc", c, qc)]
}

fn compute(kernel: Kernel, p: FreeSpaceParameters, system: &System, q: &[f64]) -> Output {
    FreeSpace::new(kernel, p)
        .unwrap()
        .compute(system, q, Request::all())
        .unwrap()
}

/// Measured relative RMS force error against the direct sum below the requested accuracy,
/// for tuned parameters and for a fixed small smearing (where the mesh carries most of the
/// interaction); energies and potentials close too; the ratio measured/requested printed.
#[test]
fn matches_the_direct_sum() {
    let mut worst: f64 = 0.0;
    for neutral in [true, false] {
        for (name, system, q) in shapes(400, neutral) {
            for p in [1.0, 2.5, 6.0] {
                let kernel = Kernel::new(p).unwrap();
                let exact = Direct::new(kernel)
                    .compute(&system, &q, Request::all())
                    .unwrap();
                let f_exact = exact.forces.as_ref().unwrap();
                for (accuracy, smearing) in [(1e-3, Some(2.5)), (1e-5, Some(3.0)), (1e-6, None)] {
                    let fixed = FreeSpaceOverrides {
                        smearing,
                        ..Default::default()
                    };
                    let c = tune(kernel, &system, accuracy, fixed).unwrap();
                    let got = compute(kernel, c.parameters, &system, &q);
                    let e = force_error(&system, &q, got.forces.as_ref().unwrap(), f_exact, p);
                    println!(
                        "{name} neutral={neutral} p={p} accuracy={accuracy:e} σ={smearing:?}: \
                         measured/requested {:.3} ({:?})",
                        e / accuracy,
                        c.parameters
                    );
                    assert!(e < accuracy, "{name} p={p} {accuracy}: {e:e}");
                    worst = worst.max(e / accuracy);
                    // energy and potentials: relative to Σ|q_i φ_i|
                    let scale: f64 = exact
                        .potentials
                        .as_ref()
                        .unwrap()
                        .iter()
                        .zip(&q)
                        .map(|(a, b)| (a * b).abs())
                        .sum();
                    assert!(
                        (got.energy - exact.energy).abs() < 10.0 * accuracy * scale,
                        "{name} p={p}: {} vs {}",
                        got.energy,
                        exact.energy
                    );
                }
            }
        }
    }
    println!("worst measured/requested: {worst:.3}");
}

/// The mesh part alone against the exact long-range pair sum: below the error model of
/// periodic PME at the same σ, h and order (the model is reused by the tuner), and not far
/// below (within 10×), for p = 1 and 6 and orders 4, 6, 8.
#[test]
fn sampled_kernel_error_matches_the_pme_model() {
    let (system, charges) = cluster(500, sphere(1e3), true, 3);
    let stats = OpenStats::of(&system).unwrap();
    for p in [1.0, 6.0] {
        let kernel = Kernel::new(p).unwrap();
        let sigma = 3.0;
        let split = kernel.split(sigma).unwrap();
        let (_, f_exact) = exact_long_range(&system, &charges, &split);
        for order in [4, 6, 8] {
            for h in [1.0, 2.0] {
                let parameters = FreeSpaceParameters {
                    smearing: sigma,
                    cutoff: 10.0,
                    spacing: h,
                    order,
                };
                let fs = FreeSpace::new(kernel, parameters).unwrap();
                let (_, f) = fs.mesh(&system, &charges, true).unwrap();
                let e = force_error(&system, &charges, &f, &f_exact, p);
                let predicted =
                    crate::tuning::freespace::predicted_error(kernel, stats, &parameters)
                        .unwrap()
                        .1;
                println!(
                    "p={p} order={order} h={h}: measured/predicted {:.3}",
                    e / predicted
                );
                assert!(
                    e < predicted && e > 0.1 * predicted,
                    "{e:e} vs {predicted:e}"
                );
            }
        }
    }
}

/// Rotating a 3×3 matrix applied to column vectors.
fn rotate(m: &[[f64; 3]; 3], v: Vec3) -> Vec3 {
    [0, 1, 2].map(|a| m[a][0] * v[0] + m[a][1] * v[1] + m[a][2] * v[2])
}

#[test]
fn translation_and_rotation_invariance() {
    let (system, q) = cluster(300, sphere(1e3), false, 5);
    let kernel = Kernel::coulomb();
    let accuracy = 1e-5;
    let fixed = FreeSpaceOverrides {
        smearing: Some(2.5),
        ..Default::default()
    };
    let c = tune(kernel, &system, accuracy, fixed).unwrap();
    let reference = compute(kernel, c.parameters, &system, &q);
    let f_ref = reference.forces.as_ref().unwrap();
    // translation: the grid moves with the atoms, the results are the same to round-off
    let shift = [13.7, -5.2, 1000.3];
    let moved: Vec<Vec3> = system
        .positions()
        .iter()
        .map(|r| [r[0] + shift[0], r[1] + shift[1], r[2] + shift[2]])
        .collect();
    let moved = System::new(moved, vec![1; q.len()], None).unwrap();
    let got = compute(kernel, c.parameters, &moved, &q);
    assert!((got.energy - reference.energy).abs() < 1e-9 * reference.energy.abs());
    let e = force_error(&system, &q, got.forces.as_ref().unwrap(), f_ref, 1.0);
    assert!(e < 1e-9, "translation: {e:e}");
    // rotation: the grid axes stay put, so the results agree to the accuracy
    let (a, b) = (0.7f64, 1.1f64);
    let rz = [
        [a.cos(), -a.sin(), 0.0],
        [a.sin(), a.cos(), 0.0],
        [0.0, 0.0, 1.0],
    ];
    let rx = [
        [1.0, 0.0, 0.0],
        [0.0, b.cos(), -b.sin()],
        [0.0, b.sin(), b.cos()],
    ];
    let turn = |v: Vec3| rotate(&rx, rotate(&rz, v));
    let turned: Vec<Vec3> = system.positions().iter().map(|&r| turn(r)).collect();
    let turned = System::new(turned, vec![1; q.len()], None).unwrap();
    let got = compute(kernel, c.parameters, &turned, &q);
    let back: Vec<Vec3> = f_ref.iter().map(|&f| turn(f)).collect();
    let e = force_error(&system, &q, got.forces.as_ref().unwrap(), &back, 1.0);
    println!("rotation: {e:e}");
    assert!(e < accuracy, "rotation: {e:e}");
    assert!((got.energy - reference.energy).abs() < 1e-6 * reference.energy.abs());
}

/// Forces are minus the gradient of the energy (central differences on atoms inside the
/// cluster, which do not move the bounding box and so the grid), for p = 1 and 2.5, with a
/// small smearing so that the mesh carries most of the force; the virial against the pair
/// virial of the direct sum.
#[test]
fn forces_are_the_energy_gradient() {
    let (system, q) = cluster(120, sphere(1e3), false, 8);
    for p in [1.0, 2.5] {
        let kernel = Kernel::new(p).unwrap();
        let parameters = FreeSpaceParameters {
            smearing: 1.5,
            cutoff: 5.0,
            spacing: 0.9,
            order: 6,
        };
        let base = compute(kernel, parameters, &system, &q);
        let forces = base.forces.as_ref().unwrap();
        for &i in &[0usize, 3, 10] {
            for a in 0..3 {
                let h = 1e-4;
                let energy = |delta: f64| {
                    let mut pos = system.positions().to_vec();
                    pos[i][a] += delta;
                    let s = System::new(pos, vec![1; q.len()], None).unwrap();
                    compute(kernel, parameters, &s, &q).energy
                };
                let fd = -(energy(h) - energy(-h)) / (2.0 * h);
                let f = forces[i][a];
                assert!(
                    (fd - f).abs() < 1e-6 * (1.0 + f.abs()),
                    "p={p} atom {i} axis {a}: {fd} vs {f}"
                );
            }
        }
        let exact = Direct::new(kernel)
            .compute(&system, &q, Request::all())
            .unwrap();
        let (w, we) = (base.virial.unwrap(), exact.virial.unwrap());
        let scale = we.iter().flatten().fold(0.0f64, |m, x| m.max(x.abs()));
        for a in 0..3 {
            for b in 0..3 {
                assert!((w[a][b] - we[a][b]).abs() < 1e-3 * scale, "{w:?} vs {we:?}");
            }
        }
    }
}

#[test]
fn refusals() {
    let (system, q) = cluster(50, sphere(1e3), true, 2);
    let kernel = Kernel::coulomb();
    let base = FreeSpaceParameters {
        smearing: 2.0,
        cutoff: 6.0,
        spacing: 1.0,
        order: 6,
    };
    let name = |e: Error| match e {
        Error::InvalidParameter { name, .. } => name,
        other => panic!("{other}"),
    };
    assert_eq!(
        name(FreeSpace::new(kernel, FreeSpaceParameters { order: 5, ..base }).unwrap_err()),
        "order"
    );
    assert_eq!(
        name(
            FreeSpace::new(
                kernel,
                FreeSpaceParameters {
                    spacing: -1.0,
                    ..base
                }
            )
            .unwrap_err()
        ),
        "mesh_spacing"
    );
    // too many points along an axis
    let fine = FreeSpace::new(
        kernel,
        FreeSpaceParameters {
            spacing: 1e-4,
            ..base
        },
    )
    .unwrap();
    assert_eq!(
        name(fine.compute(&system, &q, Request::all()).unwrap_err()),
        "mesh_spacing"
    );
    // a grid beyond the memory limit: refused before any work, stating the estimate
    let big = FreeSpace::new(
        kernel,
        FreeSpaceParameters {
            spacing: 0.01,
            ..base
        },
    )
    .unwrap();
    match big.compute(&system, &q, Request::all()).unwrap_err() {
        Error::TooExpensive { estimate, hint, .. } => {
            assert!(
                !estimate.is_empty() && hint.contains("mesh_spacing"),
                "{hint}"
            );
        }
        other => panic!("{other}"),
    }
    // periodic systems go to PME
    let cell = [[20.0, 0.0, 0.0], [0.0, 20.0, 0.0], [0.0, 0.0, 20.0]];
    let periodic = System::new(vec![[1.0; 3], [5.0; 3]], vec![1, 1], Some(cell)).unwrap();
    assert!(FreeSpace::new(kernel, base)
        .unwrap()
        .compute(&periodic, &[1.0, -1.0], Request::all())
        .is_err());
}

/// `method="auto"` on open systems: the direct sum for small ones, the mesh for large ones
/// (predicted cheaper); "pme" is the mesh; fixed mesh points are refused (spacing only).
#[test]
fn auto_chooses_by_cost() {
    use crate::pme::Mesh;
    use crate::tuning::choose::{choose, Method, Overrides, Request as Asked};
    let kernel = Kernel::coulomb();
    let (small, _) = cluster(300, sphere(1e3), true, 1);
    let c = choose(kernel, &small, 1e-5, Asked::Auto, Overrides::default()).unwrap();
    assert_eq!(c.method, Method::Direct);
    let c = choose(kernel, &small, 1e-5, Asked::Pme, Overrides::default()).unwrap();
    assert!(matches!(c.method, Method::FreeSpace(_)) && c.method.name() == "pme");
    assert!(c.predicted_error <= 0.3e-5 * 1.001);
    let (large, _) = cluster(20000, sphere(1e3), true, 1);
    let c = choose(kernel, &large, 1e-5, Asked::Auto, Overrides::default()).unwrap();
    assert!(matches!(c.method, Method::FreeSpace(_)), "{c:?}");
    let points = Overrides {
        mesh: Some(Mesh::Points([8, 8, 8])),
        ..Default::default()
    };
    assert!(choose(kernel, &small, 1e-5, Asked::Auto, points).is_err());
    let spacing = Overrides {
        mesh: Some(Mesh::Spacing(1.2)),
        ..Default::default()
    };
    let c = choose(kernel, &small, 1e-5, Asked::Auto, spacing).unwrap();
    assert!(
        matches!(c.method, Method::FreeSpace(p) if p.spacing == 1.2),
        "{c:?}"
    );
}
