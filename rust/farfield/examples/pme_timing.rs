//! Timing breakdown of a tuned PME sum (random ±1 charges at 0.1 atoms/Å³):
//! `cargo run --release --example pme_timing -- [N] [accuracy] [repeats]`.
//! Environment: EVAL_ONLY=1 times the tabulated vs exact short-range kernel, ONLY_REAL=k times
//! k real-space sums, EWALD_TOO=1 adds the Ewald engine's costs (per pair, per (atom, k)),
//! SPREADING=1 times the reciprocal part (spreading + FFT + interpolation) with per-thread
//! grids and with slabs, on 1 and 2 threads.
use farfield::longrange::{LongRangeSum, Request};
use farfield::pme::{realspace, Pme, Spreading};
use farfield::tuning::pme::tune_pme;
use farfield::{Kernel, System};
use std::time::Instant;

/// CPU time (user + system, all threads) of this process in seconds, from /proc/self/stat.
fn cpu_time() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |k: usize| {
        fields
            .get(k)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map_or(100_000, |s| s.parse().unwrap());
    let accuracy: f64 = args.get(2).map_or(1e-3, |s| s.parse().unwrap());
    let repeats: usize = args.get(3).map_or(3, |s| s.parse().unwrap());
    let l = (n as f64 / 0.1).cbrt();
    let mut seed = 12345u64;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let positions: Vec<[f64; 3]> = (0..n)
        .map(|_| [next() * l, next() * l, next() * l])
        .collect();
    let charges: Vec<f64> = (0..n)
        .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    let cell = [[l, 0.0, 0.0], [0.0, l, 0.0], [0.0, 0.0, l]];
    let system = System::new(positions, vec![1; n], Some(cell)).unwrap();
    let kernel = Kernel::coulomb();
    let t = Instant::now();
    let choice = tune_pme(kernel, &system, accuracy, None, None, None).unwrap();
    println!("tune {:?}: {:?}", t.elapsed(), choice);
    let p = choice.parameters;
    let pme = Pme::new(kernel, p).unwrap();
    let split = kernel.split(p.smearing).unwrap();
    if std::env::var("EVAL_ONLY").is_ok() {
        let table = realspace::ShortRangeTable::new(&split, p.cutoff).unwrap();
        let m = 20_000_000;
        let rs: Vec<f64> = (0..4096)
            .map(|k| 0.5 + (p.cutoff - 0.5) * (k as f64 + 0.5) / 4096.0)
            .collect();
        let c = cpu_time();
        let mut acc = 0.0;
        for k in 0..m {
            let (v, g) = table.eval(rs[(k * 7) & 4095]);
            acc += v + g;
        }
        println!(
            "table eval: {:.2} ns ({acc})",
            1e9 * (cpu_time() - c) / m as f64
        );
        let c = cpu_time();
        let mut acc = 0.0;
        for k in 0..m / 10 {
            let (v, g) = split.short_range(rs[(k * 7) & 4095]);
            acc += v + g;
        }
        println!(
            "exact eval: {:.2} ns ({acc})",
            1e9 * (cpu_time() - c) / (m / 10) as f64
        );
        return;
    }
    if std::env::var("CALIBRATE").is_ok() {
        // ns per unit of the tuner's cost model (tuning/pme.rs), one thread, best of `repeats`
        let best = |f: &dyn Fn()| {
            // CPU time ticks are 10 ms: time 10 calls at once
            let mut b = f64::INFINITY;
            for _ in 0..repeats {
                let c = cpu_time();
                for _ in 0..10 {
                    f();
                }
                b = b.min((cpu_time() - c) / 10.0);
            }
            b
        };
        let density = n as f64 / (l * l * l);
        let split = kernel.split(1.0).unwrap();
        let mut real = Vec::new();
        for rc in [4.0, 7.0] {
            let table = realspace::ShortRangeTable::new(&split, rc).unwrap();
            let t = best(&|| {
                std::hint::black_box(
                    realspace::real_space_with_table(&system, &charges, &table, Request::all())
                        .unwrap(),
                );
            });
            let neighbours = 4.0 / 3.0 * std::f64::consts::PI * rc.powi(3) * density;
            real.push((neighbours, t));
        }
        let per_pair = (real[1].1 - real[0].1) / (real[1].0 - real[0].0) / n as f64;
        println!(
            "real space: {:.2} ns per (atom, neighbour); {:?}",
            1e9 * per_pair,
            real
        );
        let mut recip = Vec::new();
        for (mesh, order) in [(16usize, 4usize), (16, 8), (96, 4), (128, 4)] {
            let pme = Pme::new(
                kernel,
                farfield::pme::PmeParameters {
                    smearing: 1.0,
                    cutoff: 4.0,
                    mesh: farfield::pme::Mesh::Points([mesh; 3]),
                    order,
                },
            )
            .unwrap();
            let t = best(&|| {
                std::hint::black_box(pme.reciprocal(&system, &charges, Request::all()).unwrap());
            });
            recip.push((mesh, order, t));
        }
        let spline = (recip[1].2 - recip[0].2) / (n as f64 * (512.0 - 64.0));
        let g = |m: usize| (m * m * m) as f64;
        let grid_cost = |k: usize| recip[k].2 - recip[0].2 - n as f64 * 0.0;
        // per grid point: a + b log2(grid), from the two large meshes
        let (g1, g2) = (g(96), g(128));
        let (t1, t2) = (grid_cost(2), grid_cost(3));
        let b = (t2 / g2 - t1 / g1) / (g2.log2() - g1.log2());
        let a = t1 / g1 - b * g1.log2();
        println!(
            "reciprocal: {:.2} ns per (atom, spline point); per grid point {:.2} ns + {:.3} ns × log2(grid); {:?}",
            1e9 * spline,
            1e9 * a,
            1e9 * b,
            recip
        );
        return;
    }
    if std::env::var("SPREADING").is_ok() {
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for spreading in [Spreading::ThreadGrids, Spreading::Slabs] {
                let pme = pme.clone().with_spreading(spreading);
                let mut spread = f64::INFINITY;
                for _ in 0..repeats {
                    let t = Instant::now();
                    let g = pool.install(|| pme.charge_grid(&system, &charges)).unwrap();
                    spread = spread.min(t.elapsed().as_secs_f64());
                    std::hint::black_box(g);
                }
                let (mut best, mut cpu, mut e) = (f64::INFINITY, f64::INFINITY, 0.0);
                for _ in 0..repeats {
                    let c = cpu_time();
                    let t = Instant::now();
                    e = pool
                        .install(|| pme.reciprocal(&system, &charges, Request::all()))
                        .unwrap()
                        .0;
                    best = best.min(t.elapsed().as_secs_f64());
                    cpu = cpu.min(cpu_time() - c);
                }
                println!(
                    "N {n} mesh {:?} order {} threads {threads} {spreading:?}: sort+spread wall \
                     {spread:.4} s, reciprocal wall {best:.4} s CPU {cpu:.3} s (E_rec = {e:.12e})",
                    p.grid(system.cell().unwrap()).unwrap(),
                    p.order
                );
            }
        }
        return;
    }
    if let Ok(k) = std::env::var("ONLY_REAL") {
        let k: usize = k.parse().unwrap_or(10);
        let table = realspace::ShortRangeTable::new(&split, p.cutoff).unwrap();
        let c = cpu_time();
        let mut e = 0.0;
        for _ in 0..k {
            e += realspace::real_space_with_table(&system, &charges, &table, Request::all())
                .unwrap()
                .energy;
        }
        println!(
            "real only: CPU {:.4} s per call ({e})",
            (cpu_time() - c) / k as f64
        );
        return;
    }
    let (mut c_real, mut c_rec, mut c_all) = (0.0, 0.0, 0.0);
    for _ in 0..repeats {
        let c = cpu_time();
        let t = Instant::now();
        let r = realspace::real_space(&system, &charges, &split, p.cutoff, Request::all()).unwrap();
        let t_real = t.elapsed();
        c_real += cpu_time() - c;
        let c = cpu_time();
        let t = Instant::now();
        let k = pme.reciprocal(&system, &charges, Request::all()).unwrap();
        let t_rec = t.elapsed();
        c_rec += cpu_time() - c;
        let c = cpu_time();
        let t = Instant::now();
        let out = pme.compute(&system, &charges, Request::all()).unwrap();
        let t_all = t.elapsed();
        c_all += cpu_time() - c;
        println!(
            "real {t_real:?} reciprocal {t_rec:?} total {t_all:?} (E = {:.10e}, {:.3e} {:.3e})",
            out.energy, r.energy, k.0
        );
    }
    let r = repeats as f64;
    if std::env::var("EWALD_TOO").is_ok() {
        use farfield::ewald::Ewald;
        use farfield::tuning::{tune_ewald, EwaldOverrides};
        let ep = tune_ewald(kernel, &system, accuracy, EwaldOverrides::default()).unwrap();
        let ew = Ewald::new(kernel, ep).unwrap();
        let c = cpu_time();
        let out = ew.compute(&system, &charges, Request::all()).unwrap();
        let c_ew = cpu_time() - c;
        // the Ewald engine's real-space loop: full neighbour list, exact kernel
        let list = farfield::neighbors::CellList::new(&system, ep.cutoff).unwrap();
        let split = kernel.split(ep.smearing).unwrap();
        let c = cpu_time();
        let mut pairs = 0usize;
        let mut acc = 0.0;
        for i in 0..n {
            list.for_each_neighbor(i, |nb| {
                pairs += 1;
                acc += split.short_range(nb.distance).1 / nb.distance;
            });
        }
        let c_pairs = cpu_time() - c;
        let kv = 4.0 / 3.0 * std::f64::consts::PI * ep.k_cutoff.powi(3) * l.powi(3)
            / (8.0 * std::f64::consts::PI.powi(3))
            / 2.0;
        println!(
            "Ewald {ep:?}: CPU {c_ew:.3} s (E = {:.10e}); its pair loop {c_pairs:.3} s for {pairs} \
             pairs ({:.1} ns/pair), k-space {:.1} ns per (atom, k) for {kv:.0} k ({acc:.2})",
            out.energy,
            1e9 * c_pairs / pairs as f64,
            1e9 * (c_ew - c_pairs) / (n as f64 * kv)
        );
    }
    println!(
        "CPU time per call (s): real {:.3} reciprocal {:.3} total {:.3}",
        c_real / r,
        c_rec / r,
        c_all / r
    );
}
