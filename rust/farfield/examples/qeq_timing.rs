//! Timing of a QEq solve on a water-like box written by `benches/python/bench_qeq.py --dump`:
//! `cargo run --release --example qeq_timing -- FILE [open|periodic] [dense|cg|auto] [repeats]
//! [threads]`. The file holds the cubic box side on its first line, then one line per atom:
//! x y z χ J σ (eV, Å; prefactor 14.399645…, tolerance and Ewald truncation 1e-8 as the
//! Python benchmark).
use farfield::qeq::{qeq, QEqOptions, QEqProblem, Solver};
use farfield::System;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let text = std::fs::read_to_string(&args[1]).expect("a dump file");
    let periodic = args.get(2).is_none_or(|s| s != "open");
    let solver = match args.get(3).map(String::as_str) {
        Some("dense") => Solver::Dense,
        Some("cg") => Solver::ConjugateGradient,
        _ => Solver::Auto,
    };
    let repeats: usize = args.get(4).map_or(1, |s| s.parse().unwrap());
    let threads: usize = args.get(5).map_or(2, |s| s.parse().unwrap());
    let mut lines = text.lines();
    let side: f64 = lines.next().unwrap().trim().parse().unwrap();
    let mut positions = Vec::new();
    let mut problem = QEqProblem::default();
    for line in lines {
        let v: Vec<f64> = line
            .split_whitespace()
            .map(|s| s.parse().unwrap())
            .collect();
        positions.push([v[0], v[1], v[2]]);
        problem.electronegativity.push(v[3]);
        problem.hardness.push(v[4]);
        problem.sigma.push(v[5]);
    }
    let n = positions.len();
    let cell = periodic.then_some([[side, 0.0, 0.0], [0.0, side, 0.0], [0.0, 0.0, side]]);
    let system = System::new(positions, vec![1; n], cell).unwrap();
    let mut options = QEqOptions::default();
    options.solver = solver;
    options.tolerance = 1e-8;
    options.ewald_truncation = 1e-8;
    options.prefactor = 14.399645478425667;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    for _ in 0..repeats {
        let t = Instant::now();
        let r = pool.install(|| qeq(&system, &problem, &options)).unwrap();
        println!(
            "N={n} {} ({}) {}: {:.3} s, {} iterations, residual {:.2e}, η {:?}, mesh {:?}, q0 {:.12}",
            r.stats.solver,
            r.stats.matrix,
            r.stats.kspace,
            t.elapsed().as_secs_f64(),
            r.stats.iterations,
            r.stats.residual,
            r.stats.smearing,
            r.stats.mesh,
            r.charges[0]
        );
    }
}
