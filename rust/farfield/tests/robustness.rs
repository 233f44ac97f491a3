//! Property-based robustness harness (proptest): arbitrary systems and parameters, valid or
//! not, given to `System` construction and to every engine. Each call must return a result
//! whose numbers are finite, or a clean error; never a panic, an abort or a hang (every case
//! runs under a time bound, with the work limits of `farfield::limits` lowered so that
//! anything accepted is quick).
//!
//! `PROPTEST_CASES` sets the number of cases per property (`make fuzz` raises it).

use farfield::descriptors::{
    power_spectrum::PowerSpectrum, spherical_expansion::ExpansionParameters,
    spherical_expansion::SphericalExpansion, triplets::Centers, triplets::TripletFeatures,
    GradientRequest,
};
use farfield::direct::Direct;
use farfield::ewald::Ewald;
use farfield::limits::{self, Limits};
use farfield::lode::{self, BasisKind, LodeExpansion, LodeParameters};
use farfield::longrange::{LongRangeSum, Output, Request};
use farfield::pme::{Mesh, Pme};
use farfield::qeq::{self, QEqOptions, QEqProblem, Solver};
use farfield::tuning::pme::{pme_parameters, PmeOverrides};
use farfield::tuning::{tune_ewald, EwaldOverrides};
use farfield::{Error, Kernel, System};
use proptest::prelude::*;

/// Work limits for the harness: 2e8 terms and 1 GB per call (a few seconds at most).
fn small_limits() {
    limits::set(Limits::new(Some(1e9), 2e8).unwrap());
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // seconds per case: a hang fails the property instead of blocking the suite
        timeout: 20_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A number drawn log-uniformly in [lo, hi], or a special value now and then.
fn magnitude(lo: f64, hi: f64) -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => (lo.ln()..hi.ln()).prop_map(f64::exp),
        1 => prop_oneof![Just(0.0), Just(-1.0), Just(f64::NAN), Just(f64::INFINITY), Just(1e300)],
    ]
}

fn optional(s: impl Strategy<Value = f64>) -> impl Strategy<Value = Option<f64>> {
    prop_oneof![2 => Just(None), 1 => s.prop_map(Some)]
}

/// Raw inputs of a system: positions, atomic numbers, an optional cell.
#[derive(Debug, Clone)]
struct RawSystem {
    positions: Vec<[f64; 3]>,
    numbers: Vec<i32>,
    cell: Option<[[f64; 3]; 3]>,
}

fn raw_system() -> impl Strategy<Value = RawSystem> {
    let n = 0usize..7;
    (n, 1.0f64..12.0, any::<bool>(), any::<u64>())
        .prop_flat_map(|(n, box_len, periodic, _)| {
            let positions = prop::collection::vec(
                prop::array::uniform3(prop_oneof![
                    30 => -box_len..box_len,
                    1 => Just(f64::NAN),
                    1 => Just(1e8),
                ]),
                n,
            );
            let numbers = prop::collection::vec(
                prop_oneof![10 => prop::sample::select(vec![1, 8, 11, 17]), 1 => Just(-3), 1 => Just(0)],
                n,
            );
            let cell = if periodic {
                prop::array::uniform3(prop::array::uniform3(prop_oneof![
                    6 => -0.5f64..0.5,
                    1 => Just(0.0),
                ]))
                .prop_map(move |noise| {
                    let mut c = noise;
                    for (a, row) in c.iter_mut().enumerate() {
                        row[a] += 2.0 * box_len;
                    }
                    Some(c)
                })
                .boxed()
            } else {
                Just(None).boxed()
            };
            (positions, numbers, cell)
        })
        .prop_map(|(positions, numbers, cell)| RawSystem {
            positions,
            numbers,
            cell,
        })
}

impl RawSystem {
    fn build(&self) -> farfield::Result<System> {
        System::new(self.positions.clone(), self.numbers.clone(), self.cell)
    }
}

fn charges_for(n: usize, total: f64) -> Vec<f64> {
    (0..n)
        .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 } + total / n.max(1) as f64)
        .collect()
}

/// Ok with finite numbers, or an error that describes bad input or an unaffordable request.
fn check_output(out: farfield::Result<Output>) -> Result<(), TestCaseError> {
    match out {
        Ok(o) => {
            prop_assert!(o.energy.is_finite(), "energy {}", o.energy);
            for f in o.forces.iter().flatten() {
                prop_assert!(f.iter().all(|x| x.is_finite()), "force {f:?}");
            }
            for p in o.potentials.iter().flatten() {
                prop_assert!(p.is_finite(), "potential {p}");
            }
            Ok(())
        }
        Err(e) => check_error(e),
    }
}

fn check_error(e: Error) -> Result<(), TestCaseError> {
    prop_assert!(e != Error::Interrupted, "spurious interruption");
    prop_assert!(!e.to_string().is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn system_construction_never_panics(raw in raw_system()) {
        match raw.build() {
            Ok(system) => prop_assert_eq!(system.len(), raw.positions.len()),
            Err(e) => check_error(e)?,
        }
    }

    #[test]
    fn ewald_and_direct(
        raw in raw_system(),
        exponent in prop_oneof![Just(1.0), Just(6.0), Just(3.0), 0.3f64..8.0],
        accuracy in magnitude(1e-9, 0.9),
        smearing in optional(magnitude(1e-3, 1e3)),
        cutoff in optional(magnitude(1e-2, 1e4)),
        k_cutoff in optional(magnitude(1e-2, 1e3)),
        total in prop_oneof![Just(0.0), Just(1.0)],
    ) {
        small_limits();
        let Ok(system) = raw.build() else { return Ok(()) };
        let q = charges_for(system.len(), total);
        let Ok(kernel) = Kernel::new(exponent) else { return Ok(()) };
        if system.is_periodic() {
            let overrides = EwaldOverrides { smearing, cutoff, k_cutoff };
            match tune_ewald(kernel, &system, accuracy, overrides) {
                Ok(p) => match Ewald::new(kernel, p) {
                    Ok(e) => check_output(e.compute(&system, &q, Request::all()))?,
                    Err(e) => check_error(e)?,
                },
                Err(e) => check_error(e)?,
            }
        } else {
            check_output(Direct::new(kernel).compute(&system, &q, Request::all().with_virial(false)))?;
        }
    }

    #[test]
    fn pme(
        raw in raw_system(),
        exponent in prop_oneof![Just(1.0), Just(6.0), 0.3f64..8.0],
        accuracy in magnitude(1e-8, 0.9),
        smearing in optional(magnitude(1e-3, 1e3)),
        cutoff in optional(magnitude(1e-2, 1e4)),
        mesh in prop_oneof![3 => Just(None), 1 => (0usize..80).prop_map(|n| Some(Mesh::Points([n, n.max(1), 8])))],
        order in prop_oneof![3 => Just(None), 1 => (0usize..14).prop_map(Some)],
    ) {
        small_limits();
        let Ok(system) = raw.build() else { return Ok(()) };
        if !system.is_periodic() { return Ok(()) }
        let q = charges_for(system.len(), 0.0);
        let Ok(kernel) = Kernel::new(exponent) else { return Ok(()) };
        let overrides = PmeOverrides { smearing, cutoff, mesh, order };
        match pme_parameters(kernel, &system, accuracy, overrides) {
            Ok(p) => match Pme::new(kernel, p) {
                Ok(e) => check_output(e.compute(&system, &q, Request::all()))?,
                Err(e) => check_error(e)?,
            },
            Err(e) => check_error(e)?,
        }
    }

    #[test]
    fn charge_equilibration(
        raw in raw_system(),
        chi in -5.0f64..5.0,
        hardness in magnitude(1e-2, 1e2),
        sigma in magnitude(1e-2, 1e3),
        smearing in optional(magnitude(1e-4, 1e3)),
        solver in prop::sample::select(vec![Solver::Auto, Solver::Dense, Solver::ConjugateGradient]),
        total in prop_oneof![Just(0.0), Just(-1.0)],
    ) {
        small_limits();
        let Ok(system) = raw.build() else { return Ok(()) };
        let n = system.len();
        let mut problem = QEqProblem::new(
            (0..n).map(|i| chi * (i as f64 - 1.0)).collect(),
            vec![hardness; n],
            vec![sigma; n],
        );
        problem.total_charge = total;
        let mut options = QEqOptions::default();
        (options.solver, options.smearing, options.max_iterations) = (solver, smearing, 200);
        match qeq::qeq(&system, &problem, &options) {
            Ok(r) => {
                prop_assert!(r.energy.is_finite());
                prop_assert!(r.charges.iter().all(|q| q.is_finite()));
            }
            Err(e) => check_error(e)?,
        }
    }

    #[test]
    fn local_descriptors(
        raws in prop::collection::vec(raw_system(), 0..3),
        cutoff in magnitude(0.1, 40.0),
        smearing in magnitude(0.01, 5.0),
        max_radial in 0usize..12,
        max_angular in 0usize..14,
        gradients in any::<(bool, bool, bool)>(),
        which in 0usize..3,
    ) {
        small_limits();
        let systems: Vec<System> = raws.iter().filter_map(|r| r.build().ok()).collect();
        let params = ExpansionParameters::new(cutoff, max_radial, max_angular, smearing);
        let request = GradientRequest { positions: gradients.0, strain: gradients.1, cell: gradients.2 };
        let result = match which {
            0 => SphericalExpansion::new(params).and_then(|c| c.compute(&systems, request)),
            1 => PowerSpectrum::new(params).and_then(|c| c.compute(&systems, request)),
            _ => TripletFeatures::new(params)
                .and_then(|c| c.compute(&systems, &Centers::All, None))
                .map(|o| o.descriptor),
        };
        match result {
            Ok(d) => prop_assert!(d.values.iter().all(|v| v.is_finite())),
            Err(e) => check_error(e)?,
        }
    }

    #[test]
    fn lode(
        raw in raw_system(),
        exponent in prop_oneof![Just(1.0), Just(0.0), Just(3.0), Just(6.0), 0.2f64..7.0],
        smearing in magnitude(1e-3, 20.0),
        radius in magnitude(0.1, 20.0),
        max_radial in 0usize..10,
        max_angular in 0usize..10,
        k_cutoff in optional(magnitude(1e-2, 1e4)),
        monomial in any::<bool>(),
        gradients in any::<(bool, bool)>(),
        mesh in optional(magnitude(1e-8, 0.5)),
    ) {
        small_limits();
        let Ok(system) = raw.build() else { return Ok(()) };
        let mut params = LodeParameters::new(exponent, smearing, max_angular, max_radial, radius);
        params.basis = if monomial { BasisKind::Monomial } else { BasisKind::Gto };
        params.k_cutoff = k_cutoff;
        let request = lode::GradientRequest { positions: gradients.0, strain: gradients.1, cell: false };
        let method = match mesh { Some(a) => lode::Method::Mesh(a), None => lode::Method::Exact };
        let mut species: Vec<i32> = system.numbers().to_vec();
        species.sort_unstable();
        species.dedup();
        match LodeExpansion::new(params).and_then(|c| c.compute_with(&system, &species, request, method)) {
            Ok((out, _)) => prop_assert!(out.values.iter().all(|v| v.is_finite())),
            Err(e) => check_error(e)?,
        }
    }
}
