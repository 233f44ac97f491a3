//! Ewald against closed-form lattice sums, finite differences and invariances.

use super::*;
use crate::math::linalg::{Mat3, Vec3};

fn ewald(p: f64, sigma: f64, rc: f64, kc: f64) -> Ewald {
    Ewald::new(
        Kernel::new(p).unwrap(),
        EwaldParameters {
            smearing: sigma,
            cutoff: rc,
            k_cutoff: kc,
        },
    )
    .unwrap()
}

/// Tight parameters for σ: real space to 7σ·√2·..., k-space likewise.
fn tight(p: f64, sigma: f64) -> Ewald {
    ewald(p, sigma, 9.0 * sigma, 9.0 / sigma)
}

fn crystal(cell: Mat3, fractional: &[[f64; 3]], scale: f64) -> System {
    let cell: Mat3 = cell.map(|r| r.map(|x| x * scale));
    let positions = fractional
        .iter()
        .map(|f| {
            let mut r = [0.0; 3];
            for c in 0..3 {
                r[c] = f[0] * cell[0][c] + f[1] * cell[1][c] + f[2] * cell[2][c];
            }
            r
        })
        .collect();
    System::new(positions, vec![1; fractional.len()], Some(cell)).unwrap()
}

const FCC: Mat3 = [[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]];
const CUBIC: Mat3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

/// (system, charges, -E per formula unit at scale 1, formula units)
type Crystal = (&'static str, Mat3, Vec<[f64; 3]>, Vec<f64>, f64, f64);

fn madelung_table() -> Vec<Crystal> {
    let sqrt83 = (8.0f64 / 3.0).sqrt();
    let u = 3.0 / 8.0;
    vec![
        (
            "NaCl",
            FCC,
            vec![[0.0; 3], [0.5, 0.5, 0.5]],
            vec![1.0, -1.0],
            1.747564594633,
            1.0,
        ),
        (
            "NaCl cubic",
            CUBIC.map(|r| r.map(|x| 2.0 * x)),
            vec![
                [0.0, 0.0, 0.0],
                [0.0, 0.5, 0.5],
                [0.5, 0.0, 0.5],
                [0.5, 0.5, 0.0],
                [0.5, 0.0, 0.0],
                [0.0, 0.5, 0.0],
                [0.0, 0.0, 0.5],
                [0.5, 0.5, 0.5],
            ],
            vec![1.0, 1.0, 1.0, 1.0, -1.0, -1.0, -1.0, -1.0],
            1.747564594633,
            4.0,
        ),
        (
            "CsCl",
            CUBIC,
            vec![[0.5; 3], [0.0; 3]],
            vec![1.0, -1.0],
            2.035361509,
            1.0,
        ),
        (
            "zincblende",
            FCC,
            vec![[0.0; 3], [0.25, 0.25, 0.25]],
            vec![1.0, -1.0],
            2.0 * 1.6380550533 / 3f64.sqrt(),
            1.0,
        ),
        (
            "wurtzite",
            [
                [0.5, -0.5 * 3f64.sqrt(), 0.0],
                [0.5, 0.5 * 3f64.sqrt(), 0.0],
                [0.0, 0.0, sqrt83],
            ],
            vec![
                [1.0 / 3.0, 2.0 / 3.0, 0.0],
                [2.0 / 3.0, 1.0 / 3.0, 0.5],
                [1.0 / 3.0, 2.0 / 3.0, u],
                [2.0 / 3.0, 1.0 / 3.0, 0.5 + u],
            ],
            vec![1.0, 1.0, -1.0, -1.0],
            1.64132 / (u * sqrt83),
            2.0,
        ),
        (
            "fluorite",
            [[0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]],
            vec![[0.0; 3], [0.25, 0.25, 0.25], [0.75, 0.75, 0.75]],
            vec![2.0, -1.0, -1.0],
            11.6365752270768,
            1.0,
        ),
        (
            "Cu2O",
            CUBIC,
            vec![
                [0.0, 0.0, 0.0],
                [0.5, 0.5, 0.5],
                [0.25, 0.25, 0.25],
                [0.25, 0.75, 0.75],
                [0.75, 0.25, 0.75],
                [0.75, 0.75, 0.25],
            ],
            vec![-2.0, -2.0, 1.0, 1.0, 1.0, 1.0],
            10.2594570330750,
            2.0,
        ),
    ]
}

#[test]
fn madelung_constants() {
    for (name, cell, frac, charges, reference, fu) in madelung_table() {
        // wurtzite's reference has 6 digits only
        let tol = if name == "wurtzite" { 1e-5 } else { 1e-9 };
        for scale in [1.0, 2.7] {
            for sigma_rel in [0.15, 0.3] {
                let system = crystal(cell, &frac, scale);
                let out = tight(1.0, sigma_rel * scale)
                    .compute(&system, &charges, Request::all())
                    .unwrap();
                let m = -out.energy * scale / fu;
                assert!(
                    (m / reference - 1.0).abs() < tol,
                    "{name} scale {scale} σ {sigma_rel}: {m} vs {reference}"
                );
                // E = ½ Σ q φ
                let phi = out.potentials.unwrap();
                let e2: f64 = 0.5 * phi.iter().zip(&charges).map(|(p, q)| p * q).sum::<f64>();
                assert!((e2 - out.energy).abs() < 1e-12 * out.energy.abs());
                // forces vanish by symmetry (not in wurtzite, whose ideal u is not relaxed)
                for f in out.forces.unwrap().iter().filter(|_| name != "wurtzite") {
                    assert!(
                        f.iter().all(|x| x.abs() < 1e-9 / scale.powi(2)),
                        "{name} {f:?}"
                    );
                }
                // virial of a 1/r energy under isotropic strain: tr W = -E
                let w = out.virial.unwrap();
                let tr = w[0][0] + w[1][1] + w[2][2];
                assert!(
                    (tr + out.energy).abs() < 1e-9 * out.energy.abs(),
                    "{name} {tr}"
                );
            }
        }
    }
}

#[test]
fn wigner_crystals() {
    let bcc = vec![[0.0; 3], [0.5; 3]];
    let fcc = vec![[0.0; 3], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]];
    for (name, frac, reference) in [
        ("sc", vec![[0.0; 3]], -1.4186487397),
        ("bcc", bcc, -1.8196167248),
        ("fcc", fcc, -2.2924310371),
    ] {
        for sigma in [0.2, 0.35] {
            let system = crystal(CUBIC, &frac, 1.0);
            let charges = vec![1.0; frac.len()];
            let out = tight(1.0, sigma)
                .compute(&system, &charges, Request::all())
                .unwrap();
            let e = out.energy / frac.len() as f64;
            assert!((e / reference - 1.0).abs() < 1e-9, "{name}: {e}");
        }
    }
}

#[test]
fn lattice_sums_beyond_p3() {
    let system = crystal(CUBIC, &[[0.0; 3]], 1.0);
    for (p, s) in [
        (4.0, 16.5323159598),
        (5.0, 10.3775248308),
        (6.0, 8.4019239748),
    ] {
        for sigma in [0.2, 0.35] {
            let out = tight(p, sigma)
                .compute(&system, &[1.0], Request::all())
                .unwrap();
            assert!(
                (out.energy / (0.5 * s) - 1.0).abs() < 1e-9,
                "p={p} {}",
                out.energy
            );
        }
    }
    let nacl = crystal(FCC, &[[0.0; 3], [0.5, 0.5, 0.5]], 1.0);
    for (charges, reference) in [([1.0, -1.0], -4.7884437139), ([1.0, 2.0], 17.7072180149)] {
        for sigma in [0.2, 0.3, 0.45] {
            let out = tight(6.0, sigma)
                .compute(&nacl, &charges, Request::all())
                .unwrap();
            assert!(
                (out.energy / reference - 1.0).abs() < 1e-9,
                "{charges:?} σ={sigma}: {}",
                out.energy
            );
        }
    }
}

#[test]
fn p3_with_net_charge_is_an_error() {
    let system = crystal(CUBIC, &[[0.0; 3]], 1.0);
    let err = tight(3.0, 0.2)
        .compute(&system, &[1.0], Request::all())
        .unwrap_err();
    assert!(matches!(err, Error::Divergent(_)));
}

fn skewed_system(n: usize, seed: u64, charged: bool) -> (System, Vec<f64>) {
    let mut state = seed;
    let mut rand = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64) / ((1u64 << 53) as f64)
    };
    let cell = [[4.0, 0.0, 0.0], [2.9, 3.1, 0.0], [-1.3, 1.7, 3.6]];
    let mut positions = Vec::new();
    while positions.len() < n {
        let f = [rand(), rand(), rand()];
        let mut r = [0.0; 3];
        for c in 0..3 {
            r[c] = f[0] * cell[0][c] + f[1] * cell[1][c] + f[2] * cell[2][c];
        }
        positions.push(r);
    }
    let mut charges: Vec<f64> = (0..n).map(|_| rand() - 0.5).collect();
    if !charged {
        let mean = charges.iter().sum::<f64>() / n as f64;
        charges.iter_mut().for_each(|q| *q -= mean);
    } else {
        charges[0] += 0.7;
    }
    (
        System::new(positions, vec![1; n], Some(cell)).unwrap(),
        charges,
    )
}

#[test]
fn finite_differences() {
    for p in [1.0, 2.0, 2.5, 6.0] {
        for charged in [false, true] {
            let (system, charges) = skewed_system(6, 7 + p as u64, charged);
            let e = tight(p, 0.7);
            let out = e.compute(&system, &charges, Request::all()).unwrap();
            let forces = out.forces.unwrap();
            let h = 1e-5;
            let energy = |s: &System| e.compute(s, &charges, Request::default()).unwrap().energy;
            for i in [0, 3] {
                for a in 0..3 {
                    let mut plus = system.positions().to_vec();
                    let mut minus = plus.clone();
                    plus[i][a] += h;
                    minus[i][a] -= h;
                    let cell = system.cell().map(|c| *c.matrix());
                    let ep = energy(&System::new(plus, vec![1; 6], cell).unwrap());
                    let em = energy(&System::new(minus, vec![1; 6], cell).unwrap());
                    let fd = -(ep - em) / (2.0 * h);
                    assert!(
                        (fd - forces[i][a]).abs() < 1e-7 * (1.0 + fd.abs()),
                        "p={p} charged={charged} F[{i}][{a}]: {fd} vs {}",
                        forces[i][a]
                    );
                }
            }
            let w = out.virial.unwrap();
            let strained = |a: usize, b: usize, eps: f64| -> System {
                let mut m = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
                m[a][b] += eps;
                // rows transform as r -> r (1 + ε)ᵀ
                let tr = |r: Vec3| -> Vec3 {
                    let mut o = [0.0; 3];
                    for x in 0..3 {
                        for y in 0..3 {
                            o[x] += m[x][y] * r[y];
                        }
                    }
                    o
                };
                let cell = system.cell().unwrap().matrix();
                let cell = [tr(cell[0]), tr(cell[1]), tr(cell[2])];
                let positions = system.positions().iter().map(|r| tr(*r)).collect();
                System::new(positions, vec![1; 6], Some(cell)).unwrap()
            };
            for a in 0..3 {
                for b in 0..3 {
                    let fd = (energy(&strained(a, b, h)) - energy(&strained(a, b, -h))) / (2.0 * h);
                    assert!(
                        (fd - w[a][b]).abs() < 1e-7 * (1.0 + fd.abs()),
                        "p={p} charged={charged} W[{a}][{b}]: {fd} vs {}",
                        w[a][b]
                    );
                }
            }
        }
    }
}

#[test]
fn thread_count_does_not_change_results() {
    let (system, charges) = skewed_system(40, 3, true);
    let e = tight(1.0, 0.8);
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| e.compute(&system, &charges, Request::all()).unwrap())
    };
    let (a, b) = (run(1), run(2));
    assert_eq!(a, b);
}
