use super::*;

fn cluster(n: usize, cell: Option<f64>) -> (System, QEqProblem) {
    let mut pos = Vec::new();
    let mut seed = 12345u64;
    let mut rnd = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let side = (n as f64).cbrt() * 2.2;
    for i in 0..n {
        let g = [i % 3, (i / 3) % 3, i / 9];
        pos.push([
            g[0] as f64 * 2.2 + 0.3 * rnd(),
            g[1] as f64 * 2.2 + 0.3 * rnd(),
            g[2] as f64 * 2.2 + 0.3 * rnd(),
        ]);
    }
    let _ = side;
    let chi: Vec<f64> = (0..n)
        .map(|i| if i % 2 == 0 { 0.3 } else { -0.2 } + 0.1 * rnd())
        .collect();
    let hardness: Vec<f64> = (0..n).map(|_| 1.0 + rnd()).collect();
    let sigma: Vec<f64> = (0..n).map(|_| 0.6 + 0.4 * rnd()).collect();
    let c = cell.map(|l| [[l, 0.0, 0.0], [0.3, l, 0.0], [0.0, -0.2, l]]);
    let system = System::new(pos, vec![1; n], c).unwrap();
    (
        system,
        QEqProblem {
            electronegativity: chi,
            hardness,
            sigma,
            ..Default::default()
        },
    )
}

fn moved(system: &System, i: usize, a: usize, h: f64) -> System {
    let mut pos = system.positions().to_vec();
    pos[i][a] += h;
    System::new(
        pos,
        system.numbers().to_vec(),
        system.cell().map(|c| *c.matrix()),
    )
    .unwrap()
}

#[test]
fn qeq_forces_match_finite_differences() {
    for cell in [None, Some(6.7)] {
        let (system, mut problem) = cluster(12, cell);
        problem.total_charge = -0.5;
        let opts = QEqOptions::default();
        let r = qeq(&system, &problem, &opts).unwrap();
        let total: f64 = r.charges.iter().sum();
        assert!((total + 0.5).abs() < 1e-12);
        let h = 1e-5;
        for i in [0, 5] {
            for a in 0..3 {
                let ep = qeq(&moved(&system, i, a, h), &problem, &opts)
                    .unwrap()
                    .energy;
                let em = qeq(&moved(&system, i, a, -h), &problem, &opts)
                    .unwrap()
                    .energy;
                let fd = -(ep - em) / (2.0 * h);
                assert!(
                    (fd - r.forces[i][a]).abs() < 1e-7,
                    "{cell:?} {fd} {}",
                    r.forces[i][a]
                );
            }
        }
    }
}

#[test]
fn qeq_dense_and_cg_agree() {
    for cell in [None, Some(6.7)] {
        let (system, mut problem) = cluster(18, cell);
        problem.total_charge = 1.0;
        let dense = qeq(
            &system,
            &problem,
            &QEqOptions {
                solver: Solver::Dense,
                ..Default::default()
            },
        )
        .unwrap();
        let cg = qeq(
            &system,
            &problem,
            &QEqOptions {
                solver: Solver::ConjugateGradient,
                tolerance: 1e-11,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(cg.stats.iterations > 0);
        for (a, b) in dense.charges.iter().zip(&cg.charges) {
            assert!((a - b).abs() < 1e-9, "{a} {b}");
        }
        assert!((dense.energy - cg.energy).abs() < 1e-9);
    }
}

#[test]
fn qeq_dense_matrix_matches_apply() {
    for cell in [None, Some(6.7)] {
        let (system, problem) = cluster(18, cell);
        let opts = QEqOptions::default();
        let op = make_operator(&system, &problem, &opts).unwrap();
        let a = op.dense();
        let n = system.len();
        let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.7).sin()).collect();
        let y = op.apply(&x);
        let d = op.diagonal();
        for i in 0..n {
            let yi: f64 = (0..n).map(|j| a[i * n + j] * x[j]).sum();
            assert!((yi - y[i]).abs() < 1e-10, "{cell:?} row {i}: {yi} {}", y[i]);
            assert!((d[i] - a[i * n + i]).abs() < 1e-10, "diag {i}");
            for j in 0..n {
                assert!((a[i * n + j] - a[j * n + i]).abs() < 1e-12);
            }
        }
    }
}
