//! Bindings of the Coulomb/1/r^p sums: `coulomb_choose` (the core's method and parameter
//! choice) and `coulomb_compute` (the sum, with explicit or chosen parameters). The binding
//! converts and calls: the core chooses the method and turns a mesh spacing into a mesh; the
//! prefactor, stress = W/V and the mechanical virial −W (W = ∂E/∂ε from the core) are applied
//! here, so that the Python layer does no arithmetic on the results.
use crate::convert::SystemArrays;
use crate::errors;
use crate::threads;
use farfield::ewald::EwaldParameters;
use farfield::freespace::FreeSpaceParameters;
use farfield::longrange::Request;
use farfield::pme::{Mesh, PmeParameters};
use farfield::tuning::choose::{choose, Method, Overrides, Request as MethodRequest};
use farfield::{Error, Kernel};
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::time::Instant;

/// `mesh` (points) or `mesh_spacing` (a maximum spacing, turned into points by the core).
fn mesh_override(
    mesh: Option<[usize; 3]>,
    mesh_spacing: Option<f64>,
) -> farfield::Result<Option<Mesh>> {
    match (mesh, mesh_spacing) {
        (Some(_), Some(_)) => Err(Error::parameter(
            "mesh",
            "give either mesh or mesh_spacing, not both",
        )),
        (Some(n), None) => Ok(Some(Mesh::Points(n))),
        (None, Some(h)) => Ok(Some(Mesh::Spacing(h))),
        (None, None) => Ok(None),
    }
}

fn overrides(
    smearing: Option<f64>,
    cutoff: Option<f64>,
    k_cutoff: Option<f64>,
    mesh: Option<Mesh>,
    order: Option<usize>,
) -> Overrides {
    Overrides {
        smearing,
        cutoff,
        k_cutoff,
        mesh,
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
        Method::FreeSpace(p) => {
            d.set_item("smearing", p.smearing)?;
            d.set_item("cutoff", p.cutoff)?;
            d.set_item("mesh_spacing", p.spacing)?;
            d.set_item("order", p.order)?;
        }
        // Direct, and methods added later: no parameters to report
        _ => {}
    }
    // NaN (explicit parameters: nothing was predicted) becomes None
    d.set_item("predicted_cost", cost.is_finite().then_some(cost))?;
    d.set_item("predicted_error", error.is_finite().then_some(error))?;
    Ok(d)
}

/// The method ("auto", "ewald", "pme" or "direct"; "pme" on an open system is the free-space
/// mesh, whose parameters hold `mesh_spacing` instead of `mesh`) and every parameter a Coulomb calculator
/// uses for `system` at `accuracy` with the given values fixed, chosen by the core's
/// `tuning::choose` (nothing is evaluated): a dict with `method`, its parameters,
/// `predicted_cost` and `predicted_error`. `mesh_spacing` (a maximum spacing) fixes the PME
/// mesh like `mesh`; the core turns it into points.
#[pyfunction]
#[pyo3(signature = (system, exponent, accuracy, method, smearing=None, cutoff=None, k_cutoff=None, mesh=None, order=None, mesh_spacing=None))]
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
    mesh_spacing: Option<f64>,
) -> PyResult<Bound<'py, PyDict>> {
    let system = errors::guarded(|| system.to_system())?;
    let mesh = errors::guarded(|| mesh_override(mesh, mesh_spacing))?;
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
/// call. Returns a dict with `energy`, `forces`, `stress` (prefactor · W / V with W = ∂E/∂ε
/// from the core), `virial` (the mechanical virial −prefactor · W = −V · stress; stress and
/// virial None for open systems), `potentials`, each multiplied by `prefactor` and None unless
/// requested, `parameters` (as from `coulomb_choose`; predicted cost and error None when
/// explicit) and `timing`: (seconds choosing the parameters, 0 when explicit; seconds
/// computing).
#[pyfunction]
#[pyo3(signature = (system, charges, exponent, method, smearing=None, cutoff=None, k_cutoff=None, mesh=None, order=None, prefactor=1.0, potentials=false, forces=true, stress=true, accuracy=None, mesh_spacing=None))]
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
    mesh_spacing: Option<f64>,
) -> PyResult<Bound<'py, PyDict>> {
    let system = errors::guarded(|| system.to_system())?;
    let mesh = errors::guarded(|| mesh_override(mesh, mesh_spacing))?;
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
            "pme" if !system.is_periodic() => {
                // the free-space mesh: its grid follows the atoms, given by a spacing
                let spacing = match mesh {
                    Some(Mesh::Spacing(h)) => h,
                    Some(Mesh::Points(_)) => {
                        return Err(Error::parameter(
                            "mesh",
                            "mesh points are for periodic cells; the mesh of an open system \
                             follows its atoms: give mesh_spacing instead",
                        ))
                    }
                    None => return Err(missing("mesh_spacing")),
                };
                let p = FreeSpaceParameters {
                    smearing: smearing.ok_or_else(|| missing("smearing"))?,
                    cutoff: cutoff.ok_or_else(|| missing("cutoff"))?,
                    spacing,
                    order: order.ok_or_else(|| missing("order"))?,
                };
                p.validate()?;
                Method::FreeSpace(p)
            }
            "pme" => {
                let p = PmeParameters {
                    smearing: smearing.ok_or_else(|| missing("smearing"))?,
                    cutoff: cutoff.ok_or_else(|| missing("cutoff"))?,
                    mesh: mesh.ok_or_else(|| missing("mesh"))?,
                    order: order.ok_or_else(|| missing("order"))?,
                };
                p.validate()?;
                // a spacing becomes points for this cell (the core's rounding)
                let cell = system.cell().ok_or_else(|| {
                    Error::parameter("method", "'pme' needs a periodic system (a cell)")
                })?;
                Method::Pme(PmeParameters {
                    mesh: Mesh::Points(p.grid(cell)?),
                    ..p
                })
            }
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
    let request = Request::default()
        .with_potentials(potentials)
        .with_forces(forces)
        .with_virial(stress && periodic);
    let (choice, out, timing) = threads::run(py, || {
        let start = Instant::now();
        // (method, predicted cost, predicted error): nothing is predicted for given parameters
        let choice = match (chosen, accuracy) {
            (Some(method), _) => (method, f64::NAN, f64::NAN),
            (None, accuracy) => {
                let request = MethodRequest::parse(method)?;
                let fixed = overrides(smearing, cutoff, k_cutoff, mesh, order);
                let choice = choose(
                    kernel,
                    &system,
                    accuracy.unwrap_or(f64::NAN),
                    request,
                    fixed,
                )?;
                (choice.method, choice.predicted_cost, choice.predicted_error)
            }
        };
        let chose = if chosen.is_some() {
            0.0
        } else {
            start.elapsed().as_secs_f64()
        };
        let start = Instant::now();
        let out = choice
            .0
            .build(kernel)?
            .compute(&system, &charges, request)?;
        Ok((choice, out, (chose, start.elapsed().as_secs_f64())))
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
    let matrix = |scale: f64| {
        out.virial.map(|w| {
            let flat: Vec<f64> = w.iter().flatten().map(|x| scale * x).collect();
            numpy::ndarray::Array2::from_shape_vec((3, 3), flat)
                .expect("3 x 3")
                .into_pyarray(py)
        })
    };
    match volume {
        Some(v) => {
            d.set_item("stress", matrix(prefactor / v))?;
            d.set_item("virial", matrix(-prefactor))?;
        }
        None => {
            d.set_item("stress", py.None())?;
            d.set_item("virial", py.None())?;
        }
    }
    d.set_item("timing", timing)?;
    d.set_item(
        "parameters",
        parameters_dict(py, choice.0, choice.1, choice.2)?,
    )?;
    Ok(d)
}

/// Adds this engine's functions and classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(coulomb_choose, m)?)?;
    m.add_function(wrap_pyfunction!(coulomb_compute, m)?)?;
    Ok(())
}
