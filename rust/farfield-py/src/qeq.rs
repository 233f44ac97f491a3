//! Bindings of the qeq engine: convert, release the GIL, call the core, map errors.
use numpy::{PyArray1, PyArray2, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::time::Instant;

use farfield::qeq::{
    KSpace, PreconditionerKind, QEqGradients, QEqOptions, QEqProblem, QEqResult, Solver,
};

use crate::convert::{choice, SystemArrays};
use crate::errors::guarded;
use crate::threads;

fn vec1(a: &PyReadonlyArray1<'_, f64>) -> Vec<f64> {
    a.as_array().iter().copied().collect()
}

#[allow(clippy::too_many_arguments)]
fn options(
    solver: &str,
    tolerance: f64,
    max_iterations: usize,
    prefactor: f64,
    smearing: Option<f64>,
    ewald_truncation: f64,
    dense_limit: usize,
    kspace: &str,
    preconditioner: &str,
) -> farfield::Result<QEqOptions> {
    let kspace = choice(
        "kspace",
        kspace,
        &[
            ("auto", KSpace::Auto),
            ("ewald", KSpace::Ewald),
            ("pme", KSpace::Pme),
        ],
    )?;
    let preconditioner = choice(
        "preconditioner",
        preconditioner,
        &[
            ("auto", PreconditionerKind::Auto),
            ("jacobi", PreconditionerKind::Jacobi),
            ("fourier", PreconditionerKind::Fourier),
        ],
    )?;
    let solver = choice(
        "solver",
        solver,
        &[
            ("auto", Solver::Auto),
            ("dense", Solver::Dense),
            ("cg", Solver::ConjugateGradient),
        ],
    )?;
    let mut options = QEqOptions::default();
    options.solver = solver;
    options.tolerance = tolerance;
    options.max_iterations = max_iterations;
    options.prefactor = prefactor;
    options.smearing = smearing;
    options.ewald_truncation = ewald_truncation;
    options.dense_limit = dense_limit;
    options.kspace = kspace;
    options.preconditioner = preconditioner;
    Ok(options)
}

fn fragments(f: Option<Vec<i64>>) -> farfield::Result<Option<Vec<usize>>> {
    f.map(|v| {
        v.into_iter()
            .map(|x| {
                usize::try_from(x)
                    .map_err(|_| farfield::Error::parameter("fragments", "indices must be >= 0"))
            })
            .collect()
    })
    .transpose()
}

fn mat<'py>(py: Python<'py>, m: &[[f64; 3]]) -> Bound<'py, PyArray2<f64>> {
    let rows: Vec<Vec<f64>> = m.iter().map(|r| r.to_vec()).collect();
    PyArray2::from_vec2(py, &rows).expect("rectangular")
}

/// The result as a dict: `stress` is the core's (1/V) ∂E/∂ε, `virial` the mechanical virial
/// −∂E/∂ε = −V σ (the sign convention of the Python results), `parameters` the Ewald/PME
/// parameters used and `seconds` the wall time of the call.
fn result_dict<'py>(py: Python<'py>, r: &QEqResult, seconds: f64) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("charges", PyArray1::from_slice(py, &r.charges))?;
    d.set_item(
        "chemical_potential",
        PyArray1::from_slice(py, &r.chemical_potential),
    )?;
    d.set_item("energy", r.energy)?;
    d.set_item("forces", mat(py, &r.forces))?;
    d.set_item("stress", r.stress().map(|s| mat(py, &s)))?;
    d.set_item(
        "virial",
        r.virial.map(|w| mat(py, &w.map(|row| row.map(|x| -x)))),
    )?;
    d.set_item("volume", r.volume)?;
    d.set_item("solver", r.stats.solver)?;
    d.set_item("preconditioner", r.stats.preconditioner)?;
    d.set_item("matrix", r.stats.matrix)?;
    d.set_item("kspace", r.stats.kspace)?;
    d.set_item("tolerance", r.stats.tolerance)?;
    d.set_item("iterations", r.stats.iterations)?;
    d.set_item("residual", r.stats.residual)?;
    d.set_item("n_kvectors", r.stats.n_kvectors)?;
    let p = PyDict::new(py);
    p.set_item(
        "method",
        match r.stats.kspace {
            "none" => "direct",
            other => other,
        },
    )?;
    p.set_item("smearing", r.stats.smearing)?;
    p.set_item("cutoff", r.stats.cutoff)?;
    p.set_item("k_cutoff", r.stats.k_cutoff)?;
    p.set_item("mesh", r.stats.mesh.map(|m| (m[0], m[1], m[2])))?;
    p.set_item("order", r.stats.order)?;
    d.set_item("parameters", p)?;
    d.set_item("seconds", seconds)?;
    Ok(d)
}

fn gradients_dict<'py>(py: Python<'py>, g: &QEqGradients) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(
        "electronegativity",
        PyArray1::from_slice(py, &g.electronegativity),
    )?;
    d.set_item("hardness", PyArray1::from_slice(py, &g.hardness))?;
    d.set_item("sigma", PyArray1::from_slice(py, &g.sigma))?;
    d.set_item("positions", mat(py, &g.positions))?;
    d.set_item("strain", g.strain.map(|v| mat(py, &v)))?;
    d.set_item("cell", g.cell.map(|v| mat(py, &v)))?;
    Ok(d)
}

/// Solves one QEq problem (see `farfield.qeq`); with `grad_charges` also returns the
/// vector–Jacobian products as a second dictionary.
#[pyfunction]
#[pyo3(signature = (system, electronegativity, hardness, sigma, total_charge, fragments, fragment_charges, initial_charges, solver, tolerance, max_iterations, prefactor, smearing, ewald_truncation, dense_limit, kspace, preconditioner, grad_charges=None, grad_energy=0.0))]
#[allow(clippy::too_many_arguments)]
fn qeq<'py>(
    py: Python<'py>,
    system: SystemArrays<'py>,
    electronegativity: PyReadonlyArray1<'py, f64>,
    hardness: PyReadonlyArray1<'py, f64>,
    sigma: PyReadonlyArray1<'py, f64>,
    total_charge: f64,
    fragments: Option<Vec<i64>>,
    fragment_charges: Option<Vec<f64>>,
    initial_charges: Option<PyReadonlyArray1<'py, f64>>,
    solver: &str,
    tolerance: f64,
    max_iterations: usize,
    prefactor: f64,
    smearing: Option<f64>,
    ewald_truncation: f64,
    dense_limit: usize,
    kspace: &str,
    preconditioner: &str,
    grad_charges: Option<PyReadonlyArray1<'py, f64>>,
    grad_energy: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let (sys, problem, opts) = guarded(|| {
        let sys = system.to_system()?;
        let mut problem = QEqProblem::new(vec1(&electronegativity), vec1(&hardness), vec1(&sigma));
        problem.total_charge = total_charge;
        problem.fragments = self::fragments(fragments)?;
        problem.fragment_charges = fragment_charges;
        problem.initial_charges = initial_charges.as_ref().map(vec1);
        let opts = options(
            solver,
            tolerance,
            max_iterations,
            prefactor,
            smearing,
            ewald_truncation,
            dense_limit,
            kspace,
            preconditioner,
        )?;
        Ok((sys, problem, opts))
    })?;
    match grad_charges {
        None => {
            let start = Instant::now();
            let r = threads::run(py, || farfield::qeq::qeq(&sys, &problem, &opts))?;
            let seconds = start.elapsed().as_secs_f64();
            Ok(result_dict(py, &r, seconds)?.into_any())
        }
        Some(g) => {
            let g = vec1(&g);
            let start = Instant::now();
            let (r, grads) = threads::run(py, || {
                farfield::qeq::qeq_vjp(&sys, &problem, &opts, &g, grad_energy)
            })?;
            let seconds = start.elapsed().as_secs_f64();
            let t = (result_dict(py, &r, seconds)?, gradients_dict(py, &grads)?);
            Ok(t.into_pyobject(py)?.into_any())
        }
    }
}

/// Solves many QEq problems in parallel over structures (same options for all); each
/// structure has its own total charge and optionally fragments, warm start and, when
/// `grad_charges` is given, its vector–Jacobian products (then a list of pairs is returned).
#[pyfunction]
#[pyo3(signature = (systems, electronegativity, hardness, sigma, total_charge, fragments, fragment_charges, initial_charges, solver, tolerance, max_iterations, prefactor, smearing, ewald_truncation, dense_limit, kspace, preconditioner, grad_charges=None, grad_energy=None))]
#[allow(clippy::too_many_arguments)]
fn qeq_batch<'py>(
    py: Python<'py>,
    systems: Vec<SystemArrays<'py>>,
    electronegativity: Vec<PyReadonlyArray1<'py, f64>>,
    hardness: Vec<PyReadonlyArray1<'py, f64>>,
    sigma: Vec<PyReadonlyArray1<'py, f64>>,
    total_charge: Vec<f64>,
    fragments: Vec<Option<Vec<i64>>>,
    fragment_charges: Vec<Option<Vec<f64>>>,
    initial_charges: Vec<Option<PyReadonlyArray1<'py, f64>>>,
    solver: &str,
    tolerance: f64,
    max_iterations: usize,
    prefactor: f64,
    smearing: Option<f64>,
    ewald_truncation: f64,
    dense_limit: usize,
    kspace: &str,
    preconditioner: &str,
    grad_charges: Option<Vec<PyReadonlyArray1<'py, f64>>>,
    grad_energy: Option<Vec<f64>>,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let (systems, problems, opts, grads) = guarded(|| {
        let n = systems.len();
        let mut lens = vec![
            ("electronegativity", electronegativity.len()),
            ("hardness", hardness.len()),
            ("sigma", sigma.len()),
            ("total_charge", total_charge.len()),
            ("fragments", fragments.len()),
            ("fragment_charges", fragment_charges.len()),
            ("initial_charges", initial_charges.len()),
        ];
        if let Some(g) = &grad_charges {
            lens.push(("grad_charges", g.len()));
        }
        if let Some(g) = &grad_energy {
            lens.push(("grad_energy", g.len()));
        }
        for (what, len) in lens {
            if len != n {
                return Err(farfield::Error::shape(
                    what,
                    format!("{n} entries (one per structure)"),
                    format!("{len}"),
                ));
            }
        }
        let systems = systems
            .iter()
            .map(|s| s.to_system())
            .collect::<farfield::Result<Vec<_>>>()?;
        let mut problems = Vec::with_capacity(n);
        for k in 0..n {
            let mut problem = QEqProblem::new(
                vec1(&electronegativity[k]),
                vec1(&hardness[k]),
                vec1(&sigma[k]),
            );
            problem.total_charge = total_charge[k];
            problem.fragments = self::fragments(fragments[k].clone())?;
            problem.fragment_charges = fragment_charges[k].clone();
            problem.initial_charges = initial_charges[k].as_ref().map(vec1);
            problems.push(problem);
        }
        let opts = options(
            solver,
            tolerance,
            max_iterations,
            prefactor,
            smearing,
            ewald_truncation,
            dense_limit,
            kspace,
            preconditioner,
        )?;
        let grads = grad_charges.as_ref().map(|g| {
            (
                g.iter().map(vec1).collect::<Vec<_>>(),
                grad_energy.clone().unwrap_or_else(|| vec![0.0; n]),
            )
        });
        Ok((systems, problems, opts, grads))
    })?;
    match grads {
        None => {
            let start = Instant::now();
            let results =
                threads::run(py, || farfield::qeq::qeq_batch(&systems, &problems, &opts))?;
            let seconds = start.elapsed().as_secs_f64();
            results
                .iter()
                .map(|r| Ok(result_dict(py, r, seconds)?.into_any()))
                .collect()
        }
        Some((gq, ge)) => {
            let start = Instant::now();
            let results = threads::run(py, || {
                farfield::qeq::qeq_vjp_batch(&systems, &problems, &opts, &gq, &ge)
            })?;
            let seconds = start.elapsed().as_secs_f64();
            results
                .iter()
                .map(|(r, g)| {
                    let t = (result_dict(py, r, seconds)?, gradients_dict(py, g)?);
                    Ok(t.into_pyobject(py)?.into_any())
                })
                .collect()
        }
    }
}

/// Adds this engine's functions and classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(qeq, m)?)?;
    m.add_function(wrap_pyfunction!(qeq_batch, m)?)?;
    Ok(())
}
