//! Bindings of the smooth PME engine: convert, release the GIL, call, map errors.
use crate::convert::SystemArrays;
use crate::{errors, threads};
use farfield::kernel::Kernel;
use farfield::longrange::{LongRangeSum, Request};
use farfield::pme::{Mesh, Pme};
use farfield::tuning::pme::{pme_parameters, prefer_pme, PmeOverrides};
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Smooth PME sum of 1/r^p: returns a dict with energy, potentials, forces, virial (Gaussian
/// units, virial = ∂E/∂ε) and the parameters used (smearing, cutoff, mesh, order).
#[pyfunction]
#[pyo3(signature = (system, charges, exponent=1.0, accuracy=1e-5, smearing=None, cutoff=None,
                    mesh=None, mesh_spacing=None, order=None, potentials=false, forces=true,
                    virial=true))]
#[allow(clippy::too_many_arguments)]
fn pme_compute<'py>(
    py: Python<'py>,
    system: SystemArrays<'py>,
    charges: PyReadonlyArray1<'py, f64>,
    exponent: f64,
    accuracy: f64,
    smearing: Option<f64>,
    cutoff: Option<f64>,
    mesh: Option<[usize; 3]>,
    mesh_spacing: Option<f64>,
    order: Option<usize>,
    potentials: bool,
    forces: bool,
    virial: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let system = errors::guarded(|| system.to_system())?;
    let charges: Vec<f64> = charges.as_array().iter().copied().collect();
    let mesh = mesh_override(mesh, mesh_spacing)?;
    let overrides = PmeOverrides {
        smearing,
        cutoff,
        mesh,
        order,
    };
    let request = Request {
        potentials,
        forces,
        virial,
    };
    let (params, out) = threads::run(py, || {
        let kernel = Kernel::new(exponent)?;
        let params = pme_parameters(kernel, &system, accuracy, overrides)?;
        let out = Pme::new(kernel, params)?.compute(&system, &charges, request)?;
        Ok((params, out))
    })?;
    let d = PyDict::new(py);
    d.set_item("energy", out.energy)?;
    d.set_item("potentials", out.potentials.map(|p| p.into_pyarray(py)))?;
    let n = system.len();
    d.set_item(
        "forces",
        out.forces.map(|f| {
            Array2::from_shape_vec((n, 3), f.into_iter().flatten().collect())
                .expect("n x 3")
                .into_pyarray(py)
        }),
    )?;
    d.set_item(
        "virial",
        out.virial.map(|w| {
            Array2::from_shape_vec((3, 3), w.into_iter().flatten().collect())
                .expect("3 x 3")
                .into_pyarray(py)
        }),
    )?;
    d.set_item("smearing", params.smearing)?;
    d.set_item("cutoff", params.cutoff)?;
    let grid = match params.mesh {
        Mesh::Points(n) => n,
        Mesh::Spacing(_) => [0; 3],
    };
    d.set_item("mesh", (grid[0], grid[1], grid[2]))?;
    d.set_item("order", params.order)?;
    Ok(d)
}

/// The PME parameters `pme_compute` would use, without computing anything:
/// `(smearing, cutoff, mesh, order)`.
#[pyfunction]
#[pyo3(signature = (system, exponent=1.0, accuracy=1e-5, smearing=None, cutoff=None,
                    mesh=None, mesh_spacing=None, order=None))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn pme_tune(
    py: Python<'_>,
    system: SystemArrays<'_>,
    exponent: f64,
    accuracy: f64,
    smearing: Option<f64>,
    cutoff: Option<f64>,
    mesh: Option<[usize; 3]>,
    mesh_spacing: Option<f64>,
    order: Option<usize>,
) -> PyResult<(f64, f64, (usize, usize, usize), usize)> {
    let system = errors::guarded(|| system.to_system())?;
    let mesh = mesh_override(mesh, mesh_spacing)?;
    let overrides = PmeOverrides {
        smearing,
        cutoff,
        mesh,
        order,
    };
    let params = threads::run(py, || {
        pme_parameters(Kernel::new(exponent)?, &system, accuracy, overrides)
    })?;
    let grid = match params.mesh {
        Mesh::Points(n) => n,
        Mesh::Spacing(_) => [0; 3],
    };
    Ok((
        params.smearing,
        params.cutoff,
        (grid[0], grid[1], grid[2]),
        params.order,
    ))
}

fn mesh_override(mesh: Option<[usize; 3]>, mesh_spacing: Option<f64>) -> PyResult<Option<Mesh>> {
    match (mesh, mesh_spacing) {
        (Some(_), Some(_)) => Err(errors::to_py(farfield::Error::parameter(
            "mesh",
            "give either mesh or mesh_spacing, not both",
        ))),
        (Some(n), None) => Ok(Some(Mesh::Points(n))),
        (None, Some(h)) => Ok(Some(Mesh::Spacing(h))),
        (None, None) => Ok(None),
    }
}

/// `method="auto"`: True when PME is predicted to be cheaper than Ewald.
#[pyfunction]
#[pyo3(signature = (system, exponent=1.0, accuracy=1e-5))]
fn pme_preferred(
    py: Python<'_>,
    system: SystemArrays<'_>,
    exponent: f64,
    accuracy: f64,
) -> PyResult<bool> {
    let system = errors::guarded(|| system.to_system())?;
    threads::run(py, || prefer_pme(Kernel::new(exponent)?, &system, accuracy))
}

/// Adds this engine's functions and classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(pme_compute, m)?)?;
    m.add_function(wrap_pyfunction!(pme_preferred, m)?)?;
    m.add_function(wrap_pyfunction!(pme_tune, m)?)?;
    Ok(())
}
