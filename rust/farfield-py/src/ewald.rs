//! Bindings of the ewald engine: `ewald_compute` and `ewald_tune`.
use crate::convert::SystemArrays;
use crate::errors;
use crate::threads;
use farfield::direct::Direct;
use farfield::ewald::{Ewald, EwaldParameters};
use farfield::longrange::{LongRangeSum, Request};
use farfield::tuning::{check_accuracy, tune_ewald, EwaldOverrides};
use farfield::{Error, Kernel, System};
use numpy::{PyArray1, PyArray2, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The summation method chosen for a system.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Method {
    Ewald(EwaldParameters),
    Direct,
}

fn parse_method(
    method: &str,
    kernel: Kernel,
    system: &System,
    accuracy: f64,
    overrides: EwaldOverrides,
) -> farfield::Result<Method> {
    check_accuracy(accuracy)?;
    if !system.is_periodic() && method != "ewald" {
        for (name, value) in [
            ("smearing", overrides.smearing),
            ("cutoff", overrides.cutoff),
            ("k_cutoff", overrides.k_cutoff),
        ] {
            if value.is_some() {
                return Err(Error::parameter(
                    name,
                    "is an Ewald parameter, but this system is open (no cell): the direct sum \
                     over all pairs takes no smearing, cutoff or k_cutoff; leave it out or give \
                     the system a cell",
                ));
            }
        }
    }
    match method {
        "auto" => {
            if system.is_periodic() {
                // hook: "auto" may pick PME for large systems once the pme engine lands
                Ok(Method::Ewald(tune_ewald(
                    kernel, system, accuracy, overrides,
                )?))
            } else {
                Ok(Method::Direct)
            }
        }
        "ewald" => {
            if !system.is_periodic() {
                return Err(Error::parameter(
                    "method",
                    "'ewald' needs a periodic system (a cell); use 'direct' or 'auto' for open systems",
                ));
            }
            Ok(Method::Ewald(tune_ewald(
                kernel, system, accuracy, overrides,
            )?))
        }
        "direct" => {
            if system.is_periodic() {
                return Err(Error::parameter(
                    "method",
                    "'direct' is for open systems; use 'ewald' or 'auto' for periodic ones",
                ));
            }
            Ok(Method::Direct)
        }
        other => Err(Error::parameter(
            "method",
            format!("expected 'auto', 'ewald' or 'direct', got '{other}'"),
        )),
    }
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
        Method::Direct => {
            dict.set_item("method", "direct")?;
        }
    }
    Ok(dict)
}

/// Adds this engine's functions and classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(ewald_compute, m)?)?;
    m.add_function(wrap_pyfunction!(ewald_tune, m)?)?;
    Ok(())
}
