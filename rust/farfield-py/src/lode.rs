//! Bindings of the lode engine: convert, release the GIL, call `farfield::lode`, map errors.
use crate::convert::SystemArrays;
use crate::{errors, threads};
use farfield::lode::{BasisKind, GradientRequest, LodeExpansion, LodeParameters};
use farfield::Error;
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

#[allow(clippy::too_many_arguments)]
fn calculator(
    exponent: f64,
    smearing: f64,
    max_angular: usize,
    max_radial: usize,
    radius: f64,
    basis: &str,
    k_cutoff: Option<f64>,
    center_atom_weight: f64,
    drop_divergent_k0: bool,
) -> farfield::Result<LodeExpansion> {
    let basis = match basis {
        "gto" => BasisKind::Gto,
        "monomial" => BasisKind::Monomial,
        other => {
            return Err(Error::parameter(
                "basis",
                format!("unknown radial basis '{other}', expected 'gto' or 'monomial'"),
            ))
        }
    };
    LodeExpansion::new(LodeParameters {
        exponent,
        smearing,
        max_angular,
        max_radial,
        radius,
        basis,
        k_cutoff,
        center_atom_weight,
        drop_divergent_k0,
    })
}

/// Dense LODE spherical expansion of one system. Returns a dict of flat float arrays:
/// values (N, A, F), and optionally pair_gradients (N, N, 3, F), self_gradients
/// (N, 3, A, F), strain_gradients (N, 3, 3, A, F); F = (lmax+1)² (max_radial+1).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (system, species, exponent, smearing, max_angular, max_radial, radius, basis, k_cutoff, center_atom_weight, drop_divergent_k0, positions_gradient, strain_gradient))]
fn lode_compute<'py>(
    py: Python<'py>,
    system: SystemArrays<'py>,
    species: Vec<i32>,
    exponent: f64,
    smearing: f64,
    max_angular: usize,
    max_radial: usize,
    radius: f64,
    basis: &str,
    k_cutoff: Option<f64>,
    center_atom_weight: f64,
    drop_divergent_k0: bool,
    positions_gradient: bool,
    strain_gradient: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let system = errors::guarded(|| system.to_system())?;
    let calc = errors::guarded(|| {
        calculator(
            exponent,
            smearing,
            max_angular,
            max_radial,
            radius,
            basis,
            k_cutoff,
            center_atom_weight,
            drop_divergent_k0,
        )
    })?;
    let req = GradientRequest {
        positions: positions_gradient,
        strain: strain_gradient,
    };
    let out = py.detach(|| {
        threads::install(|| errors::guarded(|| calc.compute(&system, &species, req)))
    })?;
    let dict = PyDict::new(py);
    dict.set_item("values", PyArray1::from_vec(py, out.values))?;
    dict.set_item("k_cutoff", calc.k_cutoff())?;
    if let Some(v) = out.pair_gradients {
        dict.set_item("pair_gradients", PyArray1::from_vec(py, v))?;
    }
    if let Some(v) = out.self_gradients {
        dict.set_item("self_gradients", PyArray1::from_vec(py, v))?;
    }
    if let Some(v) = out.strain_gradients {
        dict.set_item("strain_gradients", PyArray1::from_vec(py, v))?;
    }
    Ok(dict)
}

/// Backward pass: dL/dfeatures (flat, values layout) → (dL/dpositions flat (N*3),
/// dL/dstrain flat (9)).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (system, species, exponent, smearing, max_angular, max_radial, radius, basis, k_cutoff, center_atom_weight, drop_divergent_k0, grad_values))]
fn lode_backward<'py>(
    py: Python<'py>,
    system: SystemArrays<'py>,
    species: Vec<i32>,
    exponent: f64,
    smearing: f64,
    max_angular: usize,
    max_radial: usize,
    radius: f64,
    basis: &str,
    k_cutoff: Option<f64>,
    center_atom_weight: f64,
    drop_divergent_k0: bool,
    grad_values: PyReadonlyArray1<'py, f64>,
) -> PyResult<(Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>)> {
    let system = errors::guarded(|| system.to_system())?;
    let calc = errors::guarded(|| {
        calculator(
            exponent,
            smearing,
            max_angular,
            max_radial,
            radius,
            basis,
            k_cutoff,
            center_atom_weight,
            drop_divergent_k0,
        )
    })?;
    let g: Vec<f64> = grad_values.as_array().iter().copied().collect();
    let out = py.detach(|| {
        threads::install(|| errors::guarded(|| calc.backward(&system, &species, &g)))
    })?;
    let pos: Vec<f64> = out.positions.iter().flat_map(|r| r.iter().copied()).collect();
    let strain: Vec<f64> = out.strain.iter().flat_map(|r| r.iter().copied()).collect();
    Ok((PyArray1::from_vec(py, pos), PyArray1::from_vec(py, strain)))
}

/// Adds this engine's functions and classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(lode_compute, m)?)?;
    m.add_function(wrap_pyfunction!(lode_backward, m)?)?;
    Ok(())
}
