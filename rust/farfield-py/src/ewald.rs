//! Bindings of the Coulomb/1/r^p sums: `coulomb_choose` (the core's method and parameter
//! choice) and `coulomb_compute` (explicit parameters), and the older `ewald_compute` and
//! `ewald_tune`.
use crate::convert::SystemArrays;
use crate::errors;
use crate::threads;
use farfield::direct::Direct;
use farfield::ewald::{Ewald, EwaldParameters};
use farfield::longrange::{LongRangeSum, Request};
use farfield::pme::{Mesh, Pme, PmeParameters};
use farfield::tuning::choose::{choose, Choice, Method, Overrides, Request as MethodRequest};
use farfield::tuning::EwaldOverrides;
use farfield::{Error, Kernel, System};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

fn parse_method(
    method: &str,
    kernel: Kernel,
    system: &System,
    accuracy: f64,
    overrides: EwaldOverrides,
) -> farfield::Result<Method> {
    let request = MethodRequest::parse(method)?;
    let overrides = Overrides {
        smearing: overrides.smearing,
        cutoff: overrides.cutoff,
        k_cutoff: overrides.k_cutoff,
        ..Default::default()
    };
    Ok(choose(kernel, system, accuracy, request, overrides)?.method)
}

/// Chooses the parameters without computing anything: returns
/// `(method, smearing, cutoff, k_cutoff)` (the three numbers are NaN for the direct sum).
#[pyfunction]
#[pyo3(signature = (system, exponent, accuracy, method, smearing=None, cutoff=None, k_cutoff=None))]
#[allow(clippy::too_many_arguments)]
fn ewald_tune(
    py: Python<'_>,
    system: SystemArrays<'_>,
    exponent: f64,
    accuracy: f64,
    method: &str,
    smearing: Option<f64>,
    cutoff: Option<f64>,
    k_cutoff: Option<f64>,
) -> PyResult<(String, f64, f64, f64)> {
    let system = errors::guarded(|| system.to_system())?;
    let kernel = errors::guarded(|| Kernel::new(exponent))?;
    let overrides = EwaldOverrides {
        smearing,
        cutoff,
        k_cutoff,
    };
    let chosen = threads::run(py, || {
        parse_method(method, kernel, &system, accuracy, overrides)
    })?;
    Ok(match chosen {
        Method::Ewald(p) => ("ewald".into(), p.smearing, p.cutoff, p.k_cutoff),
        Method::Pme(p) => ("pme".into(), p.smearing, p.cutoff, f64::NAN),
        Method::Direct => ("direct".into(), f64::NAN, f64::NAN, f64::NAN),
    })
}

/// Computes the energy (and potentials, forces, virial on request) of point charges with a
/// 1/r^p kernel. Returns a dict with `energy`, `potentials`, `forces`, `virial` (each None
/// unless requested; the virial is ∂E/∂ε), `method`, `smearing`, `cutoff`, `k_cutoff`.
#[pyfunction]
#[pyo3(signature = (system, charges, exponent, accuracy, method, smearing=None, cutoff=None, k_cutoff=None, prefactor=1.0, potentials=true, forces=true, virial=true))]
#[allow(clippy::too_many_arguments)]
fn ewald_compute<'py>(
    py: Python<'py>,
    system: SystemArrays<'py>,
    charges: PyReadonlyArray1<'py, f64>,
    exponent: f64,
    accuracy: f64,
    method: &str,
    smearing: Option<f64>,
    cutoff: Option<f64>,
    k_cutoff: Option<f64>,
    prefactor: f64,
    potentials: bool,
    forces: bool,
    virial: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let system = errors::guarded(|| system.to_system())?;
    let charges: Vec<f64> = charges.as_array().iter().copied().collect();
    let kernel = errors::guarded(|| Kernel::new(exponent))?;
    errors::guarded(|| {
        if !prefactor.is_finite() {
            return Err(Error::parameter(
                "prefactor",
                format!("must be finite, got {prefactor}"),
            ));
        }
        if charges.len() != system.len() {
            return Err(Error::shape(
                "charges",
                format!("one charge per atom ({})", system.len()),
                format!("{} charges", charges.len()),
            ));
        }
        farfield::error::check_finite("charges", &charges)
    })?;
    let overrides = EwaldOverrides {
        smearing,
        cutoff,
        k_cutoff,
    };
    let request = Request {
        potentials,
        forces,
        virial,
    };
    let (chosen, out) = threads::run(py, || {
        let chosen = parse_method(method, kernel, &system, accuracy, overrides)?;
        let out = match chosen {
            Method::Ewald(p) => Ewald::new(kernel, p)?.compute(&system, &charges, request)?,
            Method::Pme(p) => Pme::new(kernel, p)?.compute(&system, &charges, request)?,
            Method::Direct => Direct::new(kernel).compute(&system, &charges, request)?,
        };
        Ok((chosen, out))
    })?;
    let dict = PyDict::new(py);
    dict.set_item("energy", prefactor * out.energy)?;
    match out.potentials {
        Some(p) => {
            let v: Vec<f64> = p.iter().map(|x| prefactor * x).collect();
            dict.set_item("potentials", PyArray1::from_vec(py, v))?
        }
        None => dict.set_item("potentials", py.None())?,
    }
    match out.forces {
        Some(f) => {
            let rows: Vec<Vec<f64>> = f
                .iter()
                .map(|r| r.iter().map(|x| prefactor * x).collect())
                .collect();
            dict.set_item("forces", PyArray2::from_vec2(py, &rows)?)?
        }
        None => dict.set_item("forces", py.None())?,
    }
    match out.virial {
        Some(w) => {
            let rows: Vec<Vec<f64>> = w
                .iter()
                .map(|r| r.iter().map(|x| prefactor * x).collect())
                .collect();
            dict.set_item("virial", PyArray2::from_vec2(py, &rows)?)?
        }
        None => dict.set_item("virial", py.None())?,
    }
    match chosen {
        Method::Ewald(p) => {
            dict.set_item("method", "ewald")?;
            dict.set_item("smearing", p.smearing)?;
            dict.set_item("cutoff", p.cutoff)?;
            dict.set_item("k_cutoff", p.k_cutoff)?;
        }
        Method::Pme(p) => {
            dict.set_item("method", "pme")?;
            dict.set_item("smearing", p.smearing)?;
            dict.set_item("cutoff", p.cutoff)?;
        }
        Method::Direct => {
            dict.set_item("method", "direct")?;
        }
    }
    Ok(dict)
}

fn overrides(
    smearing: Option<f64>,
    cutoff: Option<f64>,
    k_cutoff: Option<f64>,
    mesh: Option<[usize; 3]>,
    order: Option<usize>,
) -> Overrides {
    Overrides {
        smearing,
        cutoff,
        k_cutoff,
        mesh: mesh.map(Mesh::Points),
        order,
    }
}

fn parameters_dict<'py>(
    py: Python<'py>,
    method: Method,
    cost: f64,
    error: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("method", method.name())?;
    match method {
        Method::Ewald(p) => {
            d.set_item("smearing", p.smearing)?;
            d.set_item("cutoff", p.cutoff)?;
            d.set_item("k_cutoff", p.k_cutoff)?;
        }
        Method::Pme(p) => {
            let n = match p.mesh {
                Mesh::Points(n) => n,
                Mesh::Spacing(_) => [0; 3],
            };
            d.set_item("smearing", p.smearing)?;
            d.set_item("cutoff", p.cutoff)?;
            d.set_item("mesh", (n[0], n[1], n[2]))?;
            d.set_item("order", p.order)?;
        }
        Method::Direct => {}
    }
    d.set_item("predicted_cost", cost)?;
    d.set_item("predicted_error", error)?;
    Ok(d)
}

/// The method ("auto", "ewald", "pme" or "direct") and every parameter a Coulomb calculator
/// uses for `system` at `accuracy` with the given values fixed, chosen by the core's
/// `tuning::choose` (nothing is evaluated): a dict with `method`, its parameters,
/// `predicted_cost` and `predicted_error`.
#[pyfunction]
#[pyo3(signature = (system, exponent, accuracy, method, smearing=None, cutoff=None, k_cutoff=None, mesh=None, order=None))]
#[allow(clippy::too_many_arguments)]
fn coulomb_choose<'py>(
    py: Python<'py>,
    system: SystemArrays<'py>,
    exponent: f64,
    accuracy: f64,
    method: &str,
    smearing: Option<f64>,
    cutoff: Option<f64>,
    k_cutoff: Option<f64>,
    mesh: Option<[usize; 3]>,
    order: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let system = errors::guarded(|| system.to_system())?;
    let fixed = overrides(smearing, cutoff, k_cutoff, mesh, order);
    let choice = threads::run(py, || {
        let kernel = Kernel::new(exponent)?;
        let request = MethodRequest::parse(method)?;
        choose(kernel, &system, accuracy, request, fixed)
    })?;
    parameters_dict(
        py,
        choice.method,
        choice.predicted_cost,
        choice.predicted_error,
    )
}

/// Evaluates the sum with explicit parameters (as returned by `coulomb_choose`; no tuning,
/// the work is still checked against the limits), or, when `accuracy` is given, with the
/// method and parameters `coulomb_choose` would return (the given ones kept) in the same
/// call. Returns a dict with `energy`, `forces`, `stress` (prefactor · virial / V; None for
/// open systems), `potentials`, each multiplied by `prefactor` and None unless requested,
/// and `parameters` (as from `coulomb_choose`; predicted cost and error NaN when explicit).
#[pyfunction]
#[pyo3(signature = (system, charges, exponent, method, smearing=None, cutoff=None, k_cutoff=None, mesh=None, order=None, prefactor=1.0, potentials=false, forces=true, stress=true, accuracy=None))]
#[allow(clippy::too_many_arguments)]
fn coulomb_compute<'py>(
    py: Python<'py>,
    system: SystemArrays<'py>,
    charges: PyReadonlyArray1<'py, f64>,
    exponent: f64,
    method: &str,
    smearing: Option<f64>,
    cutoff: Option<f64>,
    k_cutoff: Option<f64>,
    mesh: Option<[usize; 3]>,
    order: Option<usize>,
    prefactor: f64,
    potentials: bool,
    forces: bool,
    stress: bool,
    accuracy: Option<f64>,
) -> PyResult<Bound<'py, PyDict>> {
    let system = errors::guarded(|| system.to_system())?;
    let charges: Vec<f64> = charges.as_array().iter().copied().collect();
    let kernel = errors::guarded(|| Kernel::new(exponent))?;
    let chosen = errors::guarded(|| {
        if !prefactor.is_finite() {
            return Err(Error::parameter(
                "prefactor",
                format!("must be finite, got {prefactor}"),
            ));
        }
        if charges.len() != system.len() {
            return Err(Error::shape(
                "charges",
                format!("one charge per atom ({})", system.len()),
                format!("{} charges", charges.len()),
            ));
        }
        farfield::error::check_finite("charges", &charges)?;
        if accuracy.is_some() {
            // tuned below, with the GIL released
            MethodRequest::parse(method)?;
            return Ok(None);
        }
        let missing =
            |name: &str| Error::parameter(name, format!("is required for method '{method}'"));
        let method = match method {
            "ewald" => Method::Ewald(EwaldParameters {
                smearing: smearing.ok_or_else(|| missing("smearing"))?,
                cutoff: cutoff.ok_or_else(|| missing("cutoff"))?,
                k_cutoff: k_cutoff.ok_or_else(|| missing("k_cutoff"))?,
            }),
            "pme" => Method::Pme(PmeParameters {
                smearing: smearing.ok_or_else(|| missing("smearing"))?,
                cutoff: cutoff.ok_or_else(|| missing("cutoff"))?,
                mesh: Mesh::Points(mesh.ok_or_else(|| missing("mesh"))?),
                order: order.ok_or_else(|| missing("order"))?,
            }),
            "direct" => Method::Direct,
            other => {
                return Err(Error::parameter(
                    "method",
                    format!(
                        "expected 'ewald', 'pme' or 'direct' with explicit parameters, got \
                         '{other}'"
                    ),
                ))
            }
        };
        Ok(Some(method))
    })?;
    let periodic = system.is_periodic();
    let request = Request {
        potentials,
        forces,
        virial: stress && periodic,
    };
    let (choice, out) = threads::run(py, || {
        let choice = match (chosen, accuracy) {
            (Some(method), _) => Choice {
                method,
                predicted_cost: f64::NAN,
                predicted_error: f64::NAN,
            },
            (None, accuracy) => {
                let request = MethodRequest::parse(method)?;
                let fixed = overrides(smearing, cutoff, k_cutoff, mesh, order);
                choose(
                    kernel,
                    &system,
                    accuracy.unwrap_or(f64::NAN),
                    request,
                    fixed,
                )?
            }
        };
        let out = match choice.method {
            Method::Ewald(p) => Ewald::new(kernel, p)?.compute(&system, &charges, request)?,
            Method::Pme(p) => Pme::new(kernel, p)?.compute(&system, &charges, request)?,
            Method::Direct => Direct::new(kernel).compute(&system, &charges, request)?,
        };
        Ok((choice, out))
    })?;
    let volume = system.cell().map(|c| c.volume().abs());
    let n = system.len();
    let d = PyDict::new(py);
    d.set_item("energy", prefactor * out.energy)?;
    d.set_item(
        "potentials",
        out.potentials
            .map(|p| PyArray1::from_vec(py, p.iter().map(|x| prefactor * x).collect())),
    )?;
    d.set_item(
        "forces",
        out.forces.map(|f| {
            let flat: Vec<f64> = f.iter().flatten().map(|x| prefactor * x).collect();
            numpy::ndarray::Array2::from_shape_vec((n, 3), flat)
                .expect("n x 3")
                .into_pyarray(py)
        }),
    )?;
    let stress = match (out.virial, volume) {
        (Some(w), Some(v)) => {
            let flat: Vec<f64> = w.iter().flatten().map(|x| prefactor * x / v).collect();
            Some(
                numpy::ndarray::Array2::from_shape_vec((3, 3), flat)
                    .expect("3 x 3")
                    .into_pyarray(py),
            )
        }
        _ => None,
    };
    d.set_item("stress", stress)?;
    d.set_item(
        "parameters",
        parameters_dict(
            py,
            choice.method,
            choice.predicted_cost,
            choice.predicted_error,
        )?,
    )?;
    Ok(d)
}

/// Adds this engine's functions and classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(ewald_compute, m)?)?;
    m.add_function(wrap_pyfunction!(ewald_tune, m)?)?;
    m.add_function(wrap_pyfunction!(coulomb_choose, m)?)?;
    m.add_function(wrap_pyfunction!(coulomb_compute, m)?)?;
    Ok(())
}
