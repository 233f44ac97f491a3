//! Bindings of the descriptors engine: spherical expansion, power spectrum, CG coefficients.
use farfield::descriptors::{
    Descriptor, ExpansionParameters, GradientRequest, PowerSpectrum, Smoothing, SphericalExpansion,
};
use farfield::{Error, System};
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{choice, SystemArrays};
use crate::errors::guarded;
use crate::threads;

#[allow(clippy::too_many_arguments)]
pub(crate) fn parameters(
    cutoff: f64,
    max_radial: usize,
    max_angular: usize,
    smearing: f64,
    cutoff_function: &str,
    width: f64,
    center_atom_weight: f64,
    radial_accuracy: Option<f64>,
    species: Option<Vec<i32>>,
) -> farfield::Result<ExpansionParameters> {
    let smoothing = choice(
        "cutoff_function",
        cutoff_function,
        &[
            ("shifted_cosine", Smoothing::ShiftedCosine { width }),
            ("step", Smoothing::Step),
        ],
    )?;
    if let Some(acc) = radial_accuracy {
        if !(acc.is_finite() && acc > 0.0) {
            return Err(Error::parameter(
                "radial_accuracy",
                format!("must be positive (or None for exact), got {acc}"),
            ));
        }
    }
    let mut parameters = ExpansionParameters::new(cutoff, max_radial, max_angular, smearing);
    parameters.smoothing = smoothing;
    parameters.center_atom_weight = center_atom_weight;
    parameters.radial_accuracy = radial_accuracy;
    parameters.species = species;
    Ok(parameters)
}

pub(crate) fn to_dict<'py>(py: Python<'py>, d: Descriptor) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    let ns = d.samples.len();
    let nf = d.features.len();
    let ncol = d.feature_names.len();
    let samples: Vec<i32> = d.samples.iter().flatten().copied().collect();
    out.set_item("samples", PyArray1::from_vec(py, samples).reshape([ns, 3])?)?;
    let feats: Vec<i32> = d.features.iter().flatten().copied().collect();
    out.set_item(
        "properties",
        PyArray1::from_vec(py, feats).reshape([nf, ncol])?,
    )?;
    out.set_item("property_names", d.feature_names.clone())?;
    out.set_item(
        "values",
        PyArray1::from_vec(py, d.values).reshape([ns, nf])?,
    )?;
    if let Some(g) = d.position_gradients {
        let ng = g.samples.len();
        let gs: Vec<i64> = g.samples.iter().flatten().map(|&v| v as i64).collect();
        out.set_item(
            "positions_samples",
            PyArray1::from_vec(py, gs).reshape([ng, 3])?,
        )?;
        out.set_item(
            "positions",
            PyArray1::from_vec(py, g.values).reshape([ng, 3, nf])?,
        )?;
    }
    if let Some(s) = d.strain_gradients {
        out.set_item("strain", PyArray1::from_vec(py, s).reshape([ns, 3, 3, nf])?)?;
    }
    if let Some(c) = d.cell_gradients {
        out.set_item("cell", PyArray1::from_vec(py, c).reshape([ns, 3, 3, nf])?)?;
    }
    Ok(out)
}

fn systems_of(frames: &[SystemArrays<'_>]) -> farfield::Result<Vec<System>> {
    frames.iter().map(|f| f.to_system()).collect()
}

enum Inner {
    Expansion(SphericalExpansion),
    Power(PowerSpectrum),
}

/// A spherical-expansion (kind="expansion") or power-spectrum (kind="power_spectrum")
/// calculator; the radial spline is built once, at construction.
#[pyclass(frozen)]
pub struct SoapCalculator {
    inner: Inner,
}

#[pymethods]
impl SoapCalculator {
    #[new]
    #[pyo3(signature = (kind, cutoff, max_radial, max_angular, smearing, cutoff_function, width, center_atom_weight, radial_accuracy, species))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        kind: &str,
        cutoff: f64,
        max_radial: usize,
        max_angular: usize,
        smearing: f64,
        cutoff_function: &str,
        width: f64,
        center_atom_weight: f64,
        radial_accuracy: Option<f64>,
        species: Option<Vec<i32>>,
    ) -> PyResult<SoapCalculator> {
        let params = guarded(|| {
            parameters(
                cutoff,
                max_radial,
                max_angular,
                smearing,
                cutoff_function,
                width,
                center_atom_weight,
                radial_accuracy,
                species,
            )
        })?;
        let kind = kind.to_string();
        let inner = threads::run(py, || match kind.as_str() {
            "expansion" => Ok(Inner::Expansion(SphericalExpansion::new(params)?)),
            "power_spectrum" => Ok(Inner::Power(PowerSpectrum::new(params)?)),
            other => Err(Error::parameter(
                "kind",
                format!("unknown descriptor kind '{other}'"),
            )),
        })?;
        Ok(SoapCalculator { inner })
    }

    /// Computes the descriptor of `frames` for the sorted neighbour `species`; returns a dict
    /// of numpy arrays.
    fn compute<'py>(
        &self,
        py: Python<'py>,
        frames: Vec<SystemArrays<'py>>,
        species: Vec<i32>,
        positions: bool,
        strain: bool,
        cell: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let systems = guarded(|| systems_of(&frames))?;
        let request = GradientRequest {
            positions,
            strain,
            cell,
        };
        let result = threads::run(py, || match &self.inner {
            Inner::Expansion(e) => e.compute_with_species(&systems, &species, request),
            Inner::Power(p) => p.compute_with_species(&systems, &species, request),
        })?;
        to_dict(py, result)
    }

    /// Backward pass of the descriptor: `grad_values` = dL/dvalues (flat, the values
    /// layout of `compute` over all frames) → per frame `(dL/dpositions (N*3), dL/dstrain (9),
    /// dL/dcell (9) or None)`, strain with ε acting on column vectors.
    fn backward<'py>(
        &self,
        py: Python<'py>,
        frames: Vec<SystemArrays<'py>>,
        species: Vec<i32>,
        grad_values: PyReadonlyArray1<'py, f64>,
    ) -> PyResult<Vec<BackwardArrays<'py>>> {
        let systems = guarded(|| systems_of(&frames))?;
        let copied;
        let g: &[f64] = match grad_values.as_slice() {
            Ok(slice) => slice,
            Err(_) => {
                copied = grad_values.as_array().iter().copied().collect::<Vec<f64>>();
                &copied
            }
        };
        let results = threads::run(py, || match &self.inner {
            Inner::Expansion(e) => e.backward(&systems, &species, g),
            Inner::Power(p) => p.backward(&systems, &species, g),
        })?;
        Ok(results
            .into_iter()
            .map(|r| {
                let flat = |m: [[f64; 3]; 3]| PyArray1::from_vec(py, m.as_flattened().to_vec());
                (
                    PyArray1::from_vec(py, r.positions.as_flattened().to_vec()),
                    flat(r.strain),
                    r.cell.map(flat),
                )
            })
            .collect())
    }
}

type BackwardArrays<'py> = (
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Option<Bound<'py, PyArray1<f64>>>,
);

/// Dense real Clebsch–Gordan coefficients `(2l1+1, 2l2+1, 2λ+1)` in featomic's convention.
#[pyfunction]
fn clebsch_gordan<'py>(
    py: Python<'py>,
    l1: usize,
    l2: usize,
    lam: usize,
) -> PyResult<Bound<'py, numpy::PyArray3<f64>>> {
    if l1 > 30 || l2 > 30 || lam > 60 {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "l1, l2 must be <= 30 and lam <= 60, got l1 = {l1}, l2 = {l2}, lam = {lam}"
        )));
    }
    let d = farfield::math::clebsch_gordan::real_cg_dense(l1, l2, lam);
    PyArray1::from_vec(py, d).reshape([2 * l1 + 1, 2 * l2 + 1, 2 * lam + 1])
}

/// Real spherical harmonics `Y_lm` for each row of `vectors (n, 3)`: `(n, (lmax+1)²)`.
#[pyfunction]
fn spherical_harmonics<'py>(
    py: Python<'py>,
    vectors: numpy::PyReadonlyArray2<'py, f64>,
    lmax: usize,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let v = guarded(|| crate::convert::vec3s("vectors", &vectors))?;
    if lmax > 60 {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "lmax must be <= 60",
        ));
    }
    let sh = farfield::math::spherical_harmonics::SphericalHarmonics::new(lmax);
    let nlm = (lmax + 1) * (lmax + 1);
    let mut out = vec![0.0; v.len() * nlm];
    for (k, r) in v.iter().enumerate() {
        sh.compute(r, &mut out[k * nlm..(k + 1) * nlm]);
    }
    PyArray1::from_vec(py, out).reshape([v.len(), nlm])
}

/// Adds this engine's functions and classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SoapCalculator>()?;
    m.add_function(wrap_pyfunction!(clebsch_gordan, m)?)?;
    m.add_function(wrap_pyfunction!(spherical_harmonics, m)?)?;
    Ok(())
}
