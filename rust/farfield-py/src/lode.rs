//! Bindings of the lode engine: convert, release the GIL, call `farfield::lode`, map errors.
use crate::convert::{choice, SystemArrays};
use crate::{errors, threads};
use farfield::descriptors::Lambda0Product;
use farfield::lode::layout::{block_position_gradients, dense_position_gradients, GradientShape};
use farfield::lode::{BasisKind, GradientRequest, LodeExpansion, LodeParameters, Method};
use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Two flat float arrays returned to Python.
type ArrayPair<'py> = (Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>);
/// Flat integer labels and flat float values returned to Python.
type LabelledRows<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<f64>>);
/// dL/dr (N·3), dL/dε (9), dL/dH (9, `None` when open) and the path that ran ("exact" or
/// "mesh").
type BackwardOut<'py> = (
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Option<Bound<'py, PyArray1<f64>>>,
    &'static str,
);

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
    let basis = choice(
        "basis",
        basis,
        &[("gto", BasisKind::Gto), ("monomial", BasisKind::Monomial)],
    )?;
    let mut parameters = LodeParameters::new(exponent, smearing, max_angular, max_radial, radius);
    parameters.basis = basis;
    parameters.k_cutoff = k_cutoff;
    parameters.center_atom_weight = center_atom_weight;
    parameters.drop_divergent_k0 = drop_divergent_k0;
    LodeExpansion::new(parameters)
}

/// A LODE calculator (parameters validated once; k-space tables cached across frames).
#[pyclass(module = "farfield._native", frozen)]
pub struct LodeCalculator {
    inner: LodeExpansion,
}

#[pymethods]
impl LodeCalculator {
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (exponent, smearing, max_angular, max_radial, radius, basis, k_cutoff, center_atom_weight, drop_divergent_k0))]
    fn new(
        exponent: f64,
        smearing: f64,
        max_angular: usize,
        max_radial: usize,
        radius: f64,
        basis: &str,
        k_cutoff: Option<f64>,
        center_atom_weight: f64,
        drop_divergent_k0: bool,
    ) -> PyResult<Self> {
        let inner = errors::guarded(|| {
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
        Ok(LodeCalculator { inner })
    }

    /// The k-space cutoff in use.
    #[getter]
    fn k_cutoff(&self) -> f64 {
        self.inner.k_cutoff()
    }

    /// Dense expansion of one system. Returns a dict of flat float arrays: values (N, A, F),
    /// and optionally pair_gradients (N, N, 3, F), self_gradients (N, 3, A, F),
    /// strain_gradients (N, 3, 3, A, F) (ε on column vectors), cell_gradients
    /// (N, 3, 3, A, F) (∂/∂H at fixed Cartesian positions); F = (lmax+1)² (max_radial+1).
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (system, species, positions_gradient, strain_gradient, method, accuracy, cell_gradient=false))]
    fn compute<'py>(
        &self,
        py: Python<'py>,
        system: SystemArrays<'py>,
        species: Vec<i32>,
        positions_gradient: bool,
        strain_gradient: bool,
        method: &str,
        accuracy: f64,
        cell_gradient: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let system = errors::guarded(|| system.to_system())?;
        let req = GradientRequest {
            positions: positions_gradient,
            strain: strain_gradient,
            cell: cell_gradient,
        };
        let method = errors::guarded(|| lode_method(method, accuracy))?;
        let calc = &self.inner;
        let (out, used_mesh) =
            threads::run(py, || calc.compute_with(&system, &species, req, method))?;
        let dict = PyDict::new(py);
        dict.set_item("method", if used_mesh { "mesh" } else { "exact" })?;
        dict.set_item("values", PyArray1::from_vec(py, out.values))?;
        if let Some(v) = out.pair_gradients {
            dict.set_item("pair_gradients", PyArray1::from_vec(py, v))?;
        }
        if let Some(v) = out.self_gradients {
            dict.set_item("self_gradients", PyArray1::from_vec(py, v))?;
        }
        if let Some(v) = out.strain_gradients {
            dict.set_item("strain_gradients", PyArray1::from_vec(py, v))?;
        }
        if let Some(v) = out.cell_gradients {
            dict.set_item("cell_gradients", PyArray1::from_vec(py, v))?;
        }
        Ok(dict)
    }

    /// Backward pass: dL/dfeatures (flat, values layout) → (dL/dpositions flat (N*3),
    /// dL/dstrain flat (9), dL/dcell flat (9) or `None` when open, method); `method` ("exact", "mesh" or "auto") and `accuracy` choose the
    /// path as for the values.
    #[pyo3(signature = (system, species, grad_values, method="exact", accuracy=1e-6))]
    fn backward<'py>(
        &self,
        py: Python<'py>,
        system: SystemArrays<'py>,
        species: Vec<i32>,
        grad_values: PyReadonlyArray1<'py, f64>,
        method: &str,
        accuracy: f64,
    ) -> PyResult<BackwardOut<'py>> {
        let system = errors::guarded(|| system.to_system())?;
        // the numpy buffer itself when contiguous (no copy of N·A·F values)
        let owned: Vec<f64>;
        let g: &[f64] = match grad_values.as_slice() {
            Ok(slice) => slice,
            Err(_) => {
                owned = grad_values.as_array().iter().copied().collect();
                &owned
            }
        };
        let method = errors::guarded(|| lode_method(method, accuracy))?;
        let calc = &self.inner;
        let (out, used_mesh) =
            threads::run(py, || calc.backward_with(&system, &species, g, method))?;
        let pos: Vec<f64> = out
            .positions
            .iter()
            .flat_map(|r| r.iter().copied())
            .collect();
        let strain: Vec<f64> = out.strain.iter().flat_map(|r| r.iter().copied()).collect();
        let cell = out
            .cell
            .map(|c| PyArray1::from_vec(py, c.iter().flat_map(|r| r.iter().copied()).collect()));
        Ok((
            PyArray1::from_vec(py, pos),
            PyArray1::from_vec(py, strain),
            cell,
            if used_mesh { "mesh" } else { "exact" },
        ))
    }
}

/// The LODE evaluation method from its Python name.
fn lode_method(method: &str, accuracy: f64) -> farfield::Result<Method> {
    choice(
        "method",
        method,
        &[
            ("auto", Method::Auto(accuracy)),
            ("exact", Method::Exact),
            ("mesh", Method::Mesh(accuracy)),
        ],
    )
}

#[allow(clippy::too_many_arguments)]
fn product(
    n_species_1: usize,
    n_species_2: usize,
    max_angular: usize,
    n_radial_1: usize,
    n_radial_2: usize,
    symmetric: bool,
) -> Lambda0Product {
    Lambda0Product {
        n_species_1,
        n_species_2,
        max_angular,
        n_radial_1,
        n_radial_2,
        symmetric,
    }
}

/// λ = 0 invariants of two dense per-atom expansions (flat arrays) →
/// flat (n_atoms × n_features); see `farfield::descriptors::Lambda0Product`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn lambda0_invariants<'py>(
    py: Python<'py>,
    first: PyReadonlyArray1<'py, f64>,
    second: PyReadonlyArray1<'py, f64>,
    n_species_1: usize,
    n_species_2: usize,
    max_angular: usize,
    n_radial_1: usize,
    n_radial_2: usize,
    symmetric: bool,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let p = product(
        n_species_1,
        n_species_2,
        max_angular,
        n_radial_1,
        n_radial_2,
        symmetric,
    );
    let (a, b) = (first.as_slice()?, second.as_slice()?);
    let out = threads::run(py, || p.compute(a, b))?;
    Ok(PyArray1::from_vec(py, out))
}

/// Vector-Jacobian product of [`lambda0_invariants`]: dL/dinvariants (flat) →
/// (dL/dfirst, dL/dsecond) flat.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn lambda0_invariants_vjp<'py>(
    py: Python<'py>,
    first: PyReadonlyArray1<'py, f64>,
    second: PyReadonlyArray1<'py, f64>,
    grad: PyReadonlyArray1<'py, f64>,
    n_species_1: usize,
    n_species_2: usize,
    max_angular: usize,
    n_radial_1: usize,
    n_radial_2: usize,
    symmetric: bool,
) -> PyResult<ArrayPair<'py>> {
    let p = product(
        n_species_1,
        n_species_2,
        max_angular,
        n_radial_1,
        n_radial_2,
        symmetric,
    );
    let (a, b, g) = (first.as_slice()?, second.as_slice()?, grad.as_slice()?);
    let (d1, d2) = threads::run(py, || p.vjp(a, b, g))?;
    Ok((PyArray1::from_vec(py, d1), PyArray1::from_vec(py, d2)))
}

/// Forward derivative of [`lambda0_invariants`]: `k` derivatives per atom of either input
/// (flat, `n_atoms × k × per-atom size`, or `None` for zero) → flat
/// `n_atoms × k × n_features` (`farfield::descriptors::Lambda0Product::jvp`).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (first, dfirst, second, dsecond, n_species_1, n_species_2, max_angular, n_radial_1, n_radial_2, symmetric, n_directions))]
fn lambda0_invariants_jvp<'py>(
    py: Python<'py>,
    first: PyReadonlyArray1<'py, f64>,
    dfirst: Option<PyReadonlyArray1<'py, f64>>,
    second: PyReadonlyArray1<'py, f64>,
    dsecond: Option<PyReadonlyArray1<'py, f64>>,
    n_species_1: usize,
    n_species_2: usize,
    max_angular: usize,
    n_radial_1: usize,
    n_radial_2: usize,
    symmetric: bool,
    n_directions: usize,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let p = product(
        n_species_1,
        n_species_2,
        max_angular,
        n_radial_1,
        n_radial_2,
        symmetric,
    );
    let (a, b) = (first.as_slice()?, second.as_slice()?);
    let da = dfirst.as_ref().map(|d| d.as_slice()).transpose()?;
    let db = dsecond.as_ref().map(|d| d.as_slice()).transpose()?;
    let out = threads::run(py, || p.jvp(a, da, b, db, n_directions))?;
    Ok(PyArray1::from_vec(py, out))
}

fn gradient_shape(n_atoms: usize, n_species: usize, n_features: usize) -> GradientShape {
    GradientShape {
        n_atoms,
        n_species,
        n_features,
    }
}

/// Dense ∂c_i/∂r_j (N, N, 3, A, F), flat, from the compact pair (N, N, 3, F) and self
/// (N, 3, A, F) gradients of one frame (`types[j]`: the channel of atom j).
#[pyfunction]
fn lode_dense_position_gradients<'py>(
    py: Python<'py>,
    pair: PyReadonlyArray1<'py, f64>,
    own: PyReadonlyArray1<'py, f64>,
    types: Vec<usize>,
    n_species: usize,
    n_features: usize,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let shape = gradient_shape(types.len(), n_species, n_features);
    let (p, o) = (pair.as_slice()?, own.as_slice()?);
    let out = threads::run(py, || dense_position_gradients(shape, &types, p, o))?;
    Ok(PyArray1::from_vec(py, out))
}

/// Position-gradient rows of one (centre type, channel, λ) block in featomic's layout:
/// (labels flat (rows × 2: position in `centres`, atom), values flat rows × 3 × (2λ+1) × nr).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn lode_block_position_gradients<'py>(
    py: Python<'py>,
    pair: PyReadonlyArray1<'py, f64>,
    own: PyReadonlyArray1<'py, f64>,
    types: Vec<usize>,
    n_species: usize,
    n_features: usize,
    centres: Vec<usize>,
    channel: usize,
    o3_lambda: usize,
    n_radial: usize,
) -> PyResult<LabelledRows<'py>> {
    let shape = gradient_shape(types.len(), n_species, n_features);
    let (p, o) = (pair.as_slice()?, own.as_slice()?);
    let (labels, values) = threads::run(py, || {
        block_position_gradients(shape, &types, p, o, &centres, channel, o3_lambda, n_radial)
    })?;
    let flat: Vec<i64> = labels
        .iter()
        .flat_map(|&[k, j]| [k as i64, j as i64])
        .collect();
    Ok((PyArray1::from_vec(py, flat), PyArray1::from_vec(py, values)))
}

/// Adds this engine's functions and classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<LodeCalculator>()?;
    m.add_function(wrap_pyfunction!(lambda0_invariants, m)?)?;
    m.add_function(wrap_pyfunction!(lambda0_invariants_vjp, m)?)?;
    m.add_function(wrap_pyfunction!(lambda0_invariants_jvp, m)?)?;
    m.add_function(wrap_pyfunction!(lode_dense_position_gradients, m)?)?;
    m.add_function(wrap_pyfunction!(lode_block_position_gradients, m)?)?;
    Ok(())
}
