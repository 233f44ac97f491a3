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
        let a = op.dense().unwrap();
        let n = system.len();
        // symmetric storage: row i holds j >= i
        let at = |i: usize, j: usize| a[i.min(j) * n + i.max(j)];
        let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.7).sin()).collect();
        let y = op.apply(&x);
        let d = op.diagonal();
        for i in 0..n {
            let yi: f64 = (0..n).map(|j| at(i, j) * x[j]).sum();
            assert!((yi - y[i]).abs() < 1e-10, "{cell:?} row {i}: {yi} {}", y[i]);
            assert!((d[i] - at(i, i)).abs() < 1e-10, "diag {i}");
        }
        // the stored mode's products (faer) are the pair-sum products
        let mut stored = make_operator(&system, &problem, &opts).unwrap();
        stored.store_dense().unwrap();
        assert!(stored.is_stored());
        let ys = stored.apply(&x);
        let ds = stored.diagonal();
        for i in 0..n {
            assert!((ys[i] - y[i]).abs() < 1e-10, "{cell:?} stored row {i}");
            assert!((ds[i] - d[i]).abs() < 1e-10);
        }
    }
}

fn periodic_box(side: usize) -> (System, QEqProblem) {
    let mut seed = 987u64;
    let mut rnd = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let a = 2.2;
    let mut pos = Vec::new();
    for i in 0..side * side * side {
        let g = [i % side, (i / side) % side, i / (side * side)];
        pos.push([
            g[0] as f64 * a + 0.4 * rnd(),
            g[1] as f64 * a + 0.4 * rnd(),
            g[2] as f64 * a + 0.4 * rnd(),
        ]);
    }
    let n = pos.len();
    let l = side as f64 * a;
    let cell = [[l, 0.0, 0.0], [0.4, l, 0.0], [0.0, -0.3, l]];
    let chi: Vec<f64> = (0..n)
        .map(|i| if i % 2 == 0 { 0.3 } else { -0.2 } + 0.1 * rnd())
        .collect();
    let hardness: Vec<f64> = (0..n).map(|_| 1.0 + rnd()).collect();
    let sigma: Vec<f64> = (0..n).map(|_| 0.6 + 0.4 * rnd()).collect();
    (
        System::new(pos, vec![1; n], Some(cell)).unwrap(),
        QEqProblem {
            electronegativity: chi,
            hardness,
            sigma,
            total_charge: 0.5,
            ..Default::default()
        },
    )
}

#[test]
fn qeq_pme_products_and_gradients_match_ewald() {
    let (system, problem) = periodic_box(6);
    let opts = QEqOptions::default();
    let max_sigma = problem.sigma.iter().copied().fold(0.0, f64::max);
    let settings = EwaldSettings::for_accuracy(&system, max_sigma, None, opts.ewald_truncation);
    let ewald = Operator::new(
        &system,
        &problem.sigma,
        &problem.hardness,
        1.0,
        Some(settings),
    )
    .unwrap();
    let mut pme = Operator::new(
        &system,
        &problem.sigma,
        &problem.hardness,
        1.0,
        Some(settings),
    )
    .unwrap();
    pme.use_pme(pme_parameters_for(&system, settings.eta, settings.cutoff, 1e-12).unwrap())
        .unwrap();
    assert!(pme.uses_pme() && !ewald.uses_pme());
    let n = system.len();
    let u: Vec<f64> = (0..n).map(|i| ((i * 7) % 11) as f64 / 11.0 - 0.4).collect();
    let v: Vec<f64> = (0..n).map(|i| ((i * 5) % 13) as f64 / 13.0 - 0.6).collect();
    let (ya, yb) = (ewald.apply(&u), pme.apply(&u));
    for i in 0..n {
        assert!((ya[i] - yb[i]).abs() < 1e-9, "{i}: {} {}", ya[i], yb[i]);
    }
    for (a, b) in [(&u, &u), (&u, &v)] {
        let ga = ewald.bilinear_gradient(a, b);
        let gb = pme.bilinear_gradient(a, b);
        for i in 0..n {
            for c in 0..3 {
                let (x, y) = (ga.positions[i][c], gb.positions[i][c]);
                assert!((x - y).abs() < 1e-8, "{i} {c}: {x} {y}");
            }
            assert!((ga.sigma[i] - gb.sigma[i]).abs() < 1e-8);
        }
        for c in 0..3 {
            for d in 0..3 {
                let (x, y) = (ga.strain[c][d], gb.strain[c][d]);
                assert!((x - y).abs() < 1e-7 * (1.0 + x.abs()), "{c}{d}: {x} {y}");
            }
        }
    }
}

#[test]
fn qeq_pme_cg_agrees_with_dense() {
    let (system, problem) = periodic_box(6);
    let dense = qeq(
        &system,
        &problem,
        &QEqOptions {
            solver: Solver::Dense,
            kspace: KSpace::Ewald,
            ..Default::default()
        },
    )
    .unwrap();
    let cg = qeq(
        &system,
        &problem,
        &QEqOptions {
            solver: Solver::ConjugateGradient,
            kspace: KSpace::Pme,
            tolerance: 1e-10,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(cg.stats.solver, "cg");
    assert!(cg.stats.iterations > 0);
    let total: f64 = cg.charges.iter().sum();
    assert!((total - 0.5).abs() < 1e-12);
    for (a, b) in dense.charges.iter().zip(&cg.charges) {
        assert!((a - b).abs() < 1e-7, "{a} {b}");
    }
    assert!((dense.energy - cg.energy).abs() < 1e-7 * (1.0 + dense.energy.abs()));
    for (a, b) in dense.forces.iter().zip(&cg.forces) {
        for c in 0..3 {
            assert!((a[c] - b[c]).abs() < 1e-6, "{} {}", a[c], b[c]);
        }
    }
    let (sa, sb) = (dense.stress().unwrap(), cg.stress().unwrap());
    for c in 0..3 {
        for d in 0..3 {
            assert!(
                (sa[c][d] - sb[c][d]).abs() < 1e-7,
                "{} {}",
                sa[c][d],
                sb[c][d]
            );
        }
    }
}

#[test]
fn qeq_fourier_preconditioner_agrees_with_dense_and_beats_jacobi() {
    let (system, mut problem) = periodic_box(7);
    let n = system.len();
    // three fragments with their own charges (the projector with a dense S)
    problem.fragments = Some((0..n).map(|i| i % 3).collect());
    problem.fragment_charges = Some(vec![0.5, -1.0, 0.25]);
    let dense = qeq(
        &system,
        &problem,
        &QEqOptions {
            solver: Solver::Dense,
            ..Default::default()
        },
    )
    .unwrap();
    let mut iterations = Vec::new();
    for pre in [PreconditionerKind::Fourier, PreconditionerKind::Jacobi] {
        let cg = qeq(
            &system,
            &problem,
            &QEqOptions {
                solver: Solver::ConjugateGradient,
                kspace: KSpace::Ewald,
                preconditioner: pre,
                tolerance: 1e-11,
                ..Default::default()
            },
        )
        .unwrap();
        let sums = Constraints {
            fragment: problem.fragments.clone().unwrap(),
            counts: vec![0; 3],
            charges: vec![0.0; 3],
        }
        .sums(&cg.charges);
        for (s, t) in sums.iter().zip([0.5, -1.0, 0.25]) {
            assert!((s - t).abs() < 1e-12, "{s} {t}");
        }
        for (a, b) in dense.charges.iter().zip(&cg.charges) {
            assert!((a - b).abs() < 1e-8, "{pre:?} {a} {b}");
        }
        for (a, b) in dense.chemical_potential.iter().zip(&cg.chemical_potential) {
            assert!((a - b).abs() < 1e-8, "{pre:?} {a} {b}");
        }
        iterations.push((cg.stats.preconditioner, cg.stats.iterations));
    }
    assert_eq!(iterations[0].0, "fourier");
    assert_eq!(iterations[1].0, "jacobi");
    assert!(iterations[0].1 < iterations[1].1, "{iterations:?}");
}

#[test]
fn fourier_preconditioner_is_symmetric_positive_definite() {
    let (system, problem) = periodic_box(5);
    let opts = QEqOptions::default();
    let settings = EwaldSettings::for_accuracy(&system, 1.0, None, 1e-10);
    let op = Operator::new(
        &system,
        &problem.sigma,
        &problem.hardness,
        opts.prefactor,
        Some(settings),
    )
    .unwrap();
    let diag = op.diagonal();
    let pre = precond::FourierPreconditioner::new(&system, &diag, 1.0, 2.2).unwrap();
    let n = system.len();
    let u: Vec<f64> = (0..n).map(|i| ((i * 7919) % 13) as f64 - 6.0).collect();
    let v: Vec<f64> = (0..n).map(|i| ((i * 104729) % 11) as f64 - 5.0).collect();
    let (mu, mv) = (pre.apply(&u), pre.apply(&v));
    let uv: f64 = u.iter().zip(&mv).map(|(a, b)| a * b).sum();
    let vu: f64 = v.iter().zip(&mu).map(|(a, b)| a * b).sum();
    assert!((uv - vu).abs() < 1e-12 * uv.abs().max(1.0), "{uv} {vu}");
    let uu: f64 = u.iter().zip(&mu).map(|(a, b)| a * b).sum();
    assert!(uu > 0.0);
}

#[test]
fn qeq_refuses_expensive_widths_before_work() {
    let (system, problem) = cluster(16, Some(6.7));
    let start = std::time::Instant::now();
    // Gaussian widths of 1e3: a real-space cutoff of ~1e4
    let mut wide = problem.clone();
    wide.sigma = vec![1e3; 16];
    let err = qeq(&system, &wide, &QEqOptions::default()).unwrap_err();
    assert!(matches!(err, Error::TooExpensive { .. }), "{err}");
    assert!(err.to_string().contains("sigma"), "{err}");
    for (eta, name) in [(1e3, "smaller smearing"), (1e-4, "larger smearing")] {
        for solver in [Solver::Dense, Solver::ConjugateGradient] {
            let opts = QEqOptions {
                smearing: Some(eta),
                solver,
                ..Default::default()
            };
            let err = qeq(&system, &problem, &opts).unwrap_err();
            assert!(matches!(err, Error::TooExpensive { .. }), "{err}");
            assert!(err.to_string().contains(name), "{err}");
        }
    }
    assert!(start.elapsed().as_secs_f64() < 2.0);
}

#[test]
fn qeq_refuses_a_dense_solve_beyond_the_memory_and_term_limits() {
    // the estimate alone decides: the system is never factorised
    let n = 40_000;
    let pos: Vec<Vec3> = (0..n)
        .map(|i| {
            [
                (i % 40) as f64 * 2.0,
                ((i / 40) % 40) as f64 * 2.0,
                (i / 1600) as f64 * 2.0,
            ]
        })
        .collect();
    let system = System::new(pos, vec![1; n], None).unwrap();
    let problem = QEqProblem {
        electronegativity: vec![0.0; n],
        hardness: vec![1.0; n],
        sigma: vec![0.7; n],
        ..Default::default()
    };
    let opts = QEqOptions {
        solver: Solver::Dense,
        ..Default::default()
    };
    let err = qeq(&system, &problem, &opts).unwrap_err();
    assert!(matches!(err, Error::TooExpensive { .. }), "{err}");
    assert!(err.to_string().contains("solver='cg'"), "{err}");
}

#[test]
fn qeq_refuses_options_it_cannot_honour() {
    let (periodic, problem) = cluster(8, Some(6.7));
    let (open, _) = cluster(8, None);
    let pme_dense = QEqOptions {
        kspace: KSpace::Pme,
        solver: Solver::Dense,
        ..Default::default()
    };
    let err = qeq(&periodic, &problem, &pme_dense).unwrap_err();
    assert!(err.to_string().contains("kspace"), "{err}");
    // solver 'auto' honours an explicit kspace='pme' with the CG
    let auto = QEqOptions {
        kspace: KSpace::Pme,
        ..Default::default()
    };
    let r = qeq(&periodic, &problem, &auto).unwrap();
    assert_eq!((r.stats.solver, r.stats.kspace), ("cg", "pme"));
    for opts in [
        QEqOptions {
            preconditioner: PreconditionerKind::Fourier,
            solver: Solver::ConjugateGradient,
            ..Default::default()
        },
        QEqOptions {
            kspace: KSpace::Pme,
            ..Default::default()
        },
    ] {
        assert!(qeq(&open, &problem, &opts).is_err());
    }
    let jacobi_dense = QEqOptions {
        preconditioner: PreconditionerKind::Jacobi,
        solver: Solver::Dense,
        ..Default::default()
    };
    let err = qeq(&periodic, &problem, &jacobi_dense).unwrap_err();
    assert!(err.to_string().contains("preconditioner"), "{err}");
}

#[test]
fn qeq_on_no_atoms_is_a_clear_error() {
    let system = System::new(vec![], vec![], None).unwrap();
    let err = qeq(&system, &QEqProblem::default(), &QEqOptions::default()).unwrap_err();
    assert!(err.to_string().contains("no atoms"), "{err}");
}

#[test]
fn qeq_refinement_with_a_coarse_pme_matches_the_dense_solve() {
    // the iterative refinement (inner CG on a 1e-3 PME, accurate residuals) against the dense
    // solve with the explicit Ewald sum, an independent k-space evaluation
    let (system, problem) = periodic_box(6);
    let dense = qeq(
        &system,
        &problem,
        &QEqOptions {
            solver: Solver::Dense,
            kspace: KSpace::Ewald,
            ..Default::default()
        },
    )
    .unwrap();
    let options = QEqOptions {
        solver: Solver::ConjugateGradient,
        kspace: KSpace::Pme,
        tolerance: 1e-10,
        ..Default::default()
    };
    let cons = validate(&system, &problem, &options).unwrap();
    let mut op = make_operator(&system, &problem, &options).unwrap();
    let s = op.settings().unwrap();
    let coarse = operator::pme_parameters_for(&system, s.eta, s.cutoff, 1e-3).unwrap();
    op.set_coarse_pme(coarse).unwrap();
    assert!(op.has_coarse());
    let prepared = prepare(
        &system,
        &problem,
        &op,
        &options,
        &cons,
        Method::MatrixFreeCg,
    )
    .unwrap();
    let pre = match &prepared {
        Prepared::Iterative(p, _) => p,
        Prepared::Dense(_) => unreachable!(),
    };
    let (q, iterations, _) = refine(
        &op,
        pre,
        &problem.electronegativity,
        &cons,
        &cons.charges,
        None,
        &options,
    )
    .unwrap()
    .expect("the refinement converges");
    assert!(iterations > 0);
    let aq = op.apply(&q);
    let r: Vec<f64> = (0..q.len())
        .map(|i| aq[i] + problem.electronegativity[i])
        .collect();
    assert!(cons.projected_rms(&r).0 <= 1e-10);
    assert!((q.iter().sum::<f64>() - 0.5).abs() < 1e-12);
    for (a, b) in dense.charges.iter().zip(&q) {
        assert!((a - b).abs() < 1e-7, "{a} {b}");
    }
}
