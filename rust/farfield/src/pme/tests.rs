//! PME against closed-form Madelung constants, an independent plain Ewald sum written here
//! (explicit image and k-vector loops), finite differences, and thread-count invariance.

use super::*;
use crate::math::linalg::inverse3;
use std::f64::consts::PI;

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

fn tight(smearing: f64, spacing: f64) -> PmeParameters {
    PmeParameters {
        smearing,
        cutoff: 9.0 * smearing,
        mesh: Mesh::Spacing(spacing),
        order: 8,
    }
}

fn close(a: f64, b: f64, rtol: f64) -> bool {
    (a - b).abs() <= rtol * b.abs().max(1e-300)
}

fn energy(system: &System, q: &[f64], params: PmeParameters, p: f64) -> f64 {
    Pme::new(Kernel::new(p).unwrap(), params)
        .unwrap()
        .compute(system, q, Request::default())
        .unwrap()
        .energy
}

#[test]
fn madelung_constants() {
    // NaCl primitive (d = 1), CsCl (a = 1), fluorite (a = 1); energies per formula unit
    let cases: Vec<(Mat3, Vec<Vec3>, Vec<f64>, f64)> = vec![
        (
            [[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]],
            vec![[0.0; 3], [1.0, 0.0, 0.0]],
            vec![1.0, -1.0],
            -1.747564594633,
        ),
        (
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            vec![[0.5, 0.5, 0.5], [0.0; 3]],
            vec![1.0, -1.0],
            -1.762674773070988 * 2.0 / 3f64.sqrt(),
        ),
        (
            [[0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]],
            vec![[0.25, 0.25, 0.25], [0.75, 0.75, 0.75], [0.0; 3]],
            vec![-1.0, -1.0, 2.0],
            -11.6365752270768,
        ),
    ];
    for (cell, pos, q, expected) in cases {
        let n = pos.len();
        let system = System::new(pos, vec![1; n], Some(cell)).unwrap();
        for &sigma in &[0.15, 0.25] {
            // CsCl reference from M_d = 1.762674773070988
            let e = energy(&system, &q, tight(sigma, 0.02), 1.0);
            assert!(close(e, expected, 1e-9), "{e} vs {expected} (σ={sigma})");
        }
    }
}

/// A plain Ewald sum with explicit loops, converged to round-off.
struct Reference {
    energy: f64,
    potentials: Vec<f64>,
    forces: Vec<Vec3>,
    virial: Mat3,
}

fn reference(system: &System, q: &[f64], p: f64, sigma: f64) -> Reference {
    let split = Kernel::new(p).unwrap().split(sigma).unwrap();
    let cell = system.cell().unwrap();
    let a = *cell.matrix();
    let b = cell.reciprocal();
    let v = cell.volume();
    let n = system.len();
    let r = system.positions();
    let mut phi = vec![0.0; n];
    let mut f = vec![[0.0; 3]; n];
    let mut w = [[0.0; 3]; 3];
    let mut e = 0.0;
    // real space: every image within 9σ (by the plane spacings)
    let rc = 9.0 * sigma;
    let sp = cell.plane_spacings();
    let lim: Vec<i32> = (0..3).map(|i| (rc / sp[i]).ceil() as i32 + 1).collect();
    for i in 0..n {
        for j in 0..n {
            for n0 in -lim[0]..=lim[0] {
                for n1 in -lim[1]..=lim[1] {
                    for n2 in -lim[2]..=lim[2] {
                        if i == j && n0 == 0 && n1 == 0 && n2 == 0 {
                            continue;
                        }
                        let mut d = [0.0; 3];
                        for c in 0..3 {
                            d[c] = r[j][c] - r[i][c]
                                + n0 as f64 * a[0][c]
                                + n1 as f64 * a[1][c]
                                + n2 as f64 * a[2][c];
                        }
                        let dist = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
                        if dist > rc {
                            continue;
                        }
                        let (vs, dvs) = split.short_range(dist);
                        phi[i] += q[j] * vs;
                        for c in 0..3 {
                            f[i][c] += q[i] * q[j] * dvs * d[c] / dist;
                            for c2 in 0..3 {
                                w[c][c2] += 0.5 * q[i] * q[j] * dvs * d[c] * d[c2] / dist;
                            }
                        }
                    }
                }
            }
        }
    }
    // reciprocal space up to V̂ ~ 1e-17 of its scale
    let kc = (2.0 * 40.0f64).sqrt() / sigma;
    let m: Vec<i32> = (0..3)
        .map(|i| (kc * crate::math::linalg::norm(&a[i]) / (2.0 * PI)).ceil() as i32 + 1)
        .collect();
    for m0 in -m[0]..=m[0] {
        for m1 in -m[1]..=m[1] {
            for m2 in -m[2]..=m[2] {
                if m0 == 0 && m1 == 0 && m2 == 0 {
                    continue;
                }
                let mut k = [0.0; 3];
                for c in 0..3 {
                    k[c] = m0 as f64 * b[0][c] + m1 as f64 * b[1][c] + m2 as f64 * b[2][c];
                }
                let k2 = k[0] * k[0] + k[1] * k[1] + k[2] * k[2];
                if k2 > kc * kc {
                    continue;
                }
                let (vh, dvh) = split.fourier(k2);
                let (mut sr, mut si) = (0.0, 0.0);
                for j in 0..n {
                    let ph = k[0] * r[j][0] + k[1] * r[j][1] + k[2] * r[j][2];
                    sr += q[j] * ph.cos();
                    si += q[j] * ph.sin();
                }
                let s2 = sr * sr + si * si;
                e += vh * s2 / (2.0 * v);
                for c in 0..3 {
                    w[c][c] -= vh * s2 / (2.0 * v);
                    for c2 in 0..3 {
                        w[c][c2] -= dvh * s2 * k[c] * k[c2] / v;
                    }
                }
                for i in 0..n {
                    let ph = k[0] * r[i][0] + k[1] * r[i][1] + k[2] * r[i][2];
                    let (c, s) = (ph.cos(), ph.sin());
                    // Re[e^{-ik·r} S], Im[e^{ik·r} S*]
                    phi[i] += vh / v * (c * sr + s * si);
                    let im = s * sr - c * si;
                    for d in 0..3 {
                        f[i][d] += q[i] / v * vh * k[d] * im;
                    }
                }
            }
        }
    }
    let total: f64 = q.iter().sum();
    let q2: f64 = q.iter().map(|x| x * x).sum();
    let e0 = split.k0_energy(total, v);
    for i in 0..n {
        phi[i] += -q[i] * split.self_potential() + split.k0_potential(total, v);
    }
    for c in 0..3 {
        w[c][c] -= e0;
    }
    let e_real: f64 = 0.0;
    let _ = e_real;
    // energy from the potentials
    let energy = 0.5 * q.iter().zip(&phi).map(|(a, b)| a * b).sum::<f64>();
    let _ = (e, q2);
    Reference {
        energy,
        potentials: phi,
        forces: f,
        virial: w,
    }
}

fn triclinic(seed: u64, n: usize, charged: bool) -> (System, Vec<f64>) {
    let mut rng = Lcg(seed);
    let cell = [[4.0, 0.3, -0.2], [1.1, 3.7, 0.4], [-0.9, 0.6, 4.3]];
    let mut pos = Vec::new();
    let mut q = Vec::new();
    while pos.len() < n {
        let s = [rng.next(), rng.next(), rng.next()];
        let mut r = [0.0; 3];
        for c in 0..3 {
            r[c] = s[0] * cell[0][c] + s[1] * cell[1][c] + s[2] * cell[2][c];
        }
        pos.push(r);
        q.push(rng.next() - 0.5);
    }
    let mean = q.iter().sum::<f64>() / n as f64;
    for x in q.iter_mut() {
        *x -= mean;
        if charged {
            *x += 0.15;
        }
    }
    (System::new(pos, vec![1; n], Some(cell)).unwrap(), q)
}

fn max_abs(v: &[Vec3]) -> f64 {
    v.iter().flatten().fold(0.0f64, |m, x| m.max(x.abs()))
}

#[test]
fn agrees_with_plain_ewald() {
    for &p in &[1.0, 6.0] {
        for &charged in &[false, true] {
            let (system, q) = triclinic(7 + charged as u64, 8, charged);
            let sigma = 0.5;
            let params = tight(sigma, 0.1);
            let pme = Pme::new(Kernel::new(p).unwrap(), params).unwrap();
            let out = pme.compute(&system, &q, Request::all()).unwrap();
            let refr = reference(&system, &q, p, sigma);
            let tag = format!("p={p} charged={charged}");
            assert!(
                close(out.energy, refr.energy, 1e-8),
                "{tag}: {} vs {}",
                out.energy,
                refr.energy
            );
            let phi = out.potentials.unwrap();
            let scale = refr.potentials.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            for i in 0..system.len() {
                assert!(
                    (phi[i] - refr.potentials[i]).abs() < 1e-8 * scale,
                    "{tag} φ {i}"
                );
            }
            let f = out.forces.unwrap();
            let scale = max_abs(&refr.forces);
            for i in 0..system.len() {
                for c in 0..3 {
                    assert!(
                        (f[i][c] - refr.forces[i][c]).abs() < 1e-8 * scale,
                        "{tag} F {i} {c}: {} {}",
                        f[i][c],
                        refr.forces[i][c]
                    );
                }
            }
            let w = out.virial.unwrap();
            let scale = refr
                .virial
                .iter()
                .flatten()
                .fold(0.0f64, |m, x| m.max(x.abs()));
            for a in 0..3 {
                for b in 0..3 {
                    assert!(
                        (w[a][b] - refr.virial[a][b]).abs() < 1e-8 * scale,
                        "{tag} W {a} {b}: {} {}",
                        w[a][b],
                        refr.virial[a][b]
                    );
                }
            }
        }
    }
}

#[test]
fn finite_differences() {
    // moderate settings: forces and virial are exact derivatives of the PME energy itself
    for &p in &[1.0, 6.0] {
        let (system, q) = triclinic(3, 10, true);
        let params = PmeParameters {
            smearing: 0.6,
            cutoff: 4.0,
            mesh: Mesh::Points([12, 15, 14]),
            order: 5,
        };
        let pme = Pme::new(Kernel::new(p).unwrap(), params).unwrap();
        let out = pme.compute(&system, &q, Request::all()).unwrap();
        let f = out.forces.unwrap();
        let h = 1e-5;
        let fscale = max_abs(&f);
        for i in [0, 3, 7] {
            for c in 0..3 {
                let mut e = [0.0; 2];
                for (s, sign) in [1.0, -1.0].iter().enumerate() {
                    let mut pos = system.positions().to_vec();
                    pos[i][c] += sign * h;
                    let sys =
                        System::new(pos, vec![1; 10], system.cell().map(|c| *c.matrix())).unwrap();
                    e[s] = pme.compute(&sys, &q, Request::default()).unwrap().energy;
                }
                let fd = -(e[0] - e[1]) / (2.0 * h);
                assert!(
                    (fd - f[i][c]).abs() < 1e-6 * fscale,
                    "p={p} F {i} {c}: {fd} vs {}",
                    f[i][c]
                );
            }
        }
        let w = out.virial.unwrap();
        let wscale = w.iter().flatten().fold(0.0f64, |m, x| m.max(x.abs()));
        let cell = *system.cell().unwrap().matrix();
        for a in 0..3 {
            for b in 0..3 {
                let mut e = [0.0; 2];
                for (s, sign) in [1.0, -1.0].iter().enumerate() {
                    let mut eps = [[0.0; 3]; 3];
                    eps[a][b] = sign * h;
                    let strain = |r: &Vec3| -> Vec3 {
                        let mut o = *r;
                        for c in 0..3 {
                            for d in 0..3 {
                                o[c] += eps[c][d] * r[d];
                            }
                        }
                        o
                    };
                    let pos: Vec<Vec3> = system.positions().iter().map(strain).collect();
                    let new_cell = [strain(&cell[0]), strain(&cell[1]), strain(&cell[2])];
                    let sys = System::new(pos, vec![1; 10], Some(new_cell)).unwrap();
                    e[s] = pme.compute(&sys, &q, Request::default()).unwrap().energy;
                }
                let fd = (e[0] - e[1]) / (2.0 * h);
                assert!(
                    (fd - w[a][b]).abs() < 1e-6 * wscale,
                    "p={p} W {a} {b}: {fd} vs {}",
                    w[a][b]
                );
            }
        }
        let _ = inverse3(&cell);
    }
}

#[test]
fn one_and_two_threads_agree() {
    let (system, q) = triclinic(11, 40, false);
    let params = PmeParameters {
        smearing: 0.5,
        cutoff: 3.5,
        mesh: Mesh::Spacing(0.3),
        order: 6,
    };
    for spreading in [Spreading::ThreadGrids, Spreading::Slabs] {
        let pme = Pme::new(Kernel::coulomb(), params)
            .unwrap()
            .with_spreading(spreading);
        let run = |t: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
                .install(|| pme.compute(&system, &q, Request::all()).unwrap())
        };
        let (a, b) = (run(1), run(2));
        assert!(close(a.energy, b.energy, 1e-12));
        let (fa, fb) = (a.forces.unwrap(), b.forces.unwrap());
        let s = max_abs(&fa);
        for i in 0..system.len() {
            for c in 0..3 {
                assert!((fa[i][c] - fb[i][c]).abs() < 1e-12 * s);
            }
        }
    }
}

/// Slab spreading and per-thread grids spread the same charges: equal results to round-off,
/// for several orders (slab width = order − 1 or wider, mesh sizes not multiples of it),
/// triclinic charged cells and 1, 2 or 3 threads.
#[test]
fn spreading_strategies_agree() {
    for (seed, order, spacing, charged) in [
        (5, 4, 0.35, false),
        (6, 7, 0.3, true),
        (7, 10, 0.25, false),
        (8, 3, 0.2, true),
    ] {
        let (system, q) = triclinic(seed, 60, charged);
        let params = PmeParameters {
            smearing: 0.6,
            cutoff: 3.0,
            mesh: Mesh::Spacing(spacing),
            order,
        };
        let run = |spreading: Spreading, t: usize| {
            let pme = Pme::new(Kernel::coulomb(), params)
                .unwrap()
                .with_spreading(spreading);
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
                .install(|| pme.compute(&system, &q, Request::all()).unwrap())
        };
        let a = run(Spreading::ThreadGrids, 2);
        let fa = a.forces.clone().unwrap();
        let s = max_abs(&fa);
        for t in [1, 2, 3] {
            let b = run(Spreading::Slabs, t);
            assert!(
                close(b.energy, a.energy, 1e-12),
                "order {order}: {} vs {}",
                b.energy,
                a.energy
            );
            let fb = b.forces.clone().unwrap();
            for i in 0..system.len() {
                for c in 0..3 {
                    assert!((fa[i][c] - fb[i][c]).abs() < 1e-11 * s);
                }
            }
            let (pa, pb) = (
                a.potentials.as_ref().unwrap(),
                b.potentials.as_ref().unwrap(),
            );
            for i in 0..system.len() {
                assert!(
                    (pa[i] - pb[i]).abs() < 1e-11 * pa.iter().map(|x| x.abs()).fold(0.0, f64::max)
                );
            }
            let (wa, wb) = (a.virial.unwrap(), b.virial.unwrap());
            for x in 0..3 {
                for y in 0..3 {
                    assert!((wa[x][y] - wb[x][y]).abs() < 1e-11 * a.energy.abs().max(1.0));
                }
            }
        }
    }
}

#[test]
fn bad_parameters() {
    let ok = tight(0.5, 0.1);
    assert!(Pme::new(Kernel::coulomb(), PmeParameters { order: 2, ..ok }).is_err());
    assert!(Pme::new(Kernel::coulomb(), PmeParameters { order: 11, ..ok }).is_err());
    assert!(Pme::new(
        Kernel::coulomb(),
        PmeParameters {
            smearing: -1.0,
            ..ok
        }
    )
    .is_err());
    assert!(Pme::new(
        Kernel::coulomb(),
        PmeParameters {
            cutoff: f64::NAN,
            ..ok
        }
    )
    .is_err());
    assert!(Pme::new(
        Kernel::coulomb(),
        PmeParameters {
            mesh: Mesh::Spacing(0.0),
            ..ok
        }
    )
    .is_err());
    assert!(Pme::new(
        Kernel::coulomb(),
        PmeParameters {
            mesh: Mesh::Points([4, 8, 8]),
            ..ok
        }
    )
    .is_err());
    let molecule = System::new(vec![[0.0; 3], [1.0, 0.0, 0.0]], vec![1, 1], None).unwrap();
    let pme = Pme::new(Kernel::coulomb(), ok).unwrap();
    assert!(pme
        .compute(&molecule, &[1.0, -1.0], Request::default())
        .is_err());
    let (system, mut q) = triclinic(1, 4, false);
    assert!(pme.compute(&system, &q[..3], Request::default()).is_err());
    q[0] = f64::NAN;
    assert!(pme.compute(&system, &q, Request::default()).is_err());
    let p3 = Pme::new(Kernel::new(3.0).unwrap(), ok).unwrap();
    assert!(p3
        .compute(&system, &[1.0, 0.0, 0.0, 0.0], Request::default())
        .is_err());
}

#[test]
fn agrees_with_the_ewald_engine() {
    use crate::ewald::{Ewald, EwaldParameters};
    for &p in &[1.0, 6.0] {
        let (system, q) = triclinic(21, 9, true);
        let sigma = 0.5;
        let pme = Pme::new(Kernel::new(p).unwrap(), tight(sigma, 0.1))
            .unwrap()
            .compute(&system, &q, Request::all())
            .unwrap();
        let ewald = Ewald::new(
            Kernel::new(p).unwrap(),
            EwaldParameters {
                smearing: sigma,
                cutoff: 9.0 * sigma,
                k_cutoff: 9.5 / sigma,
            },
        )
        .unwrap()
        .compute(&system, &q, Request::all())
        .unwrap();
        assert!(close(pme.energy, ewald.energy, 1e-8), "p={p}");
        let (fp, fe) = (pme.forces.unwrap(), ewald.forces.unwrap());
        let s = max_abs(&fe);
        for i in 0..system.len() {
            for c in 0..3 {
                assert!((fp[i][c] - fe[i][c]).abs() < 1e-8 * s, "p={p} F");
            }
        }
        let (wp, we) = (pme.virial.unwrap(), ewald.virial.unwrap());
        let s = we.iter().flatten().fold(0.0f64, |m, x| m.max(x.abs()));
        for a in 0..3 {
            for b in 0..3 {
                assert!((wp[a][b] - we[a][b]).abs() < 1e-8 * s, "p={p} W");
            }
        }
    }
}

#[test]
#[ignore]
fn timing_breakdown() {
    let n = 20000;
    let mut rng = Lcg(3);
    let l = (n as f64 / 0.1).cbrt();
    let pos: Vec<Vec3> = (0..n)
        .map(|_| [rng.next() * l, rng.next() * l, rng.next() * l])
        .collect();
    let q: Vec<f64> = (0..n)
        .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    let system = System::new(
        pos,
        vec![1; n],
        Some([[l, 0.0, 0.0], [0.0, l, 0.0], [0.0, 0.0, l]]),
    )
    .unwrap();
    let split = Kernel::coulomb().split(1.4).unwrap();
    let t = std::time::Instant::now();
    let list = crate::neighbors::CellList::new(&system, 6.0).unwrap();
    println!("cell list build {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let mut count = 0usize;
    let mut acc = 0.0;
    for i in 0..n {
        list.for_each_neighbor(i, |nb| {
            count += 1;
            acc += nb.distance;
        });
    }
    println!("traverse {:?} pairs {count} {acc}", t.elapsed());
    let t = std::time::Instant::now();
    let mut s = 0.0;
    for k in 0..count {
        s += split.short_range(1.0 + (k % 1000) as f64 * 0.005).1;
    }
    println!("short_range x{count} {:?} {s}", t.elapsed());
    let t = std::time::Instant::now();
    let r = realspace::real_space(&system, &q, &split, 6.0, Request::all()).unwrap();
    println!("real_space {:?} {}", t.elapsed(), r.energy);
}

/// Cardinal B-spline from its explicit formula M_n(x) = 1/(n−1)! Σ_k (−1)^k C(n,k) (x−k)_+^{n−1}.
fn cardinal_bspline(n: usize, x: f64) -> f64 {
    if x <= 0.0 || x >= n as f64 {
        return 0.0;
    }
    let mut fact = 1.0;
    for k in 1..n {
        fact *= k as f64;
    }
    let mut binom = 1.0;
    let mut s = 0.0;
    for k in 0..=n {
        let t = x - k as f64;
        if t > 0.0 {
            let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
            s += sign * binom * t.powi(n as i32 - 1);
        }
        binom = binom * (n - k) as f64 / (k + 1) as f64;
    }
    s / fact
}

/// Both spreading strategies against the charge grid written out from the definition
/// Q(k) = Σ_i Σ_m q_i Π_a M_n(u_ia − k_a − m_a K_a), with 1 and 2 threads.
#[test]
fn charge_grid_matches_the_definition() {
    let (system, q) = triclinic(21, 25, true);
    let cell = system.cell().unwrap();
    let inv = *cell.inverse();
    for (order, mesh) in [(4, [9, 10, 12]), (7, [14, 15, 16]), (5, [5, 6, 20])] {
        let params = PmeParameters {
            smearing: 0.6,
            cutoff: 3.0,
            mesh: Mesh::Points(mesh),
            order,
        };
        let mut expected = vec![0.0; mesh[0] * mesh[1] * mesh[2]];
        for (r, &qi) in system.positions().iter().zip(&q) {
            let mut w: [Vec<f64>; 3] = Default::default();
            for a in 0..3 {
                let s = r[0] * inv[0][a] + r[1] * inv[1][a] + r[2] * inv[2][a];
                let u = (s - s.floor()) * mesh[a] as f64;
                w[a] = (0..mesh[a])
                    .map(|k| {
                        (-2..=2)
                            .map(|m| {
                                cardinal_bspline(order, u - k as f64 - (m * mesh[a] as i64) as f64)
                            })
                            .sum()
                    })
                    .collect();
            }
            for k1 in 0..mesh[0] {
                for k2 in 0..mesh[1] {
                    for k3 in 0..mesh[2] {
                        expected[(k1 * mesh[1] + k2) * mesh[2] + k3] +=
                            qi * w[0][k1] * w[1][k2] * w[2][k3];
                    }
                }
            }
        }
        let scale = expected.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        for spreading in [Spreading::ThreadGrids, Spreading::Slabs] {
            let pme = Pme::new(Kernel::coulomb(), params)
                .unwrap()
                .with_spreading(spreading);
            for t in [1, 2] {
                let (n, grid) = rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .unwrap()
                    .install(|| pme.charge_grid(&system, &q).unwrap());
                assert_eq!(n, mesh);
                for (g, e) in grid.iter().zip(&expected) {
                    assert!(
                        (g - e).abs() < 1e-12 * scale,
                        "{spreading:?} order {order} threads {t}: {g} vs {e}"
                    );
                }
            }
        }
    }
}

/// The table lookup gives the smallest 7-smooth number ≥ n, as trial division does, also
/// across the end of the table.
#[test]
fn fft_friendly_is_the_next_smooth_number() {
    let smooth = |m: usize| {
        let mut r = m;
        for p in [2, 3, 5, 7] {
            while r.is_multiple_of(p) {
                r /= p;
            }
        }
        r == 1
    };
    let by_trial = |n: usize| (n.max(1)..).find(|&m| smooth(m)).unwrap();
    let edge = 1usize << 20;
    for n in (0..5000).chain(edge - 50..edge + 50) {
        assert_eq!(super::fft_friendly(n), by_trial(n), "n = {n}");
    }
}
