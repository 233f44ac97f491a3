//! Binding of the core's second derivatives (`farfield::hessian`): the double backward passes
//! of `farfield.torch` call `second_order`.
use crate::convert::{vec3s, SystemArrays};
use crate::errors;
use crate::threads;
use farfield::ewald::EwaldParameters;
use farfield::hessian::{second_order as core_second_order, second_order_strained, Pairs};
use farfield::tuning::choose::{choose, Method, Overrides, Request as MethodRequest};
use farfield::{Error, Kernel};
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Gradient, dipole potentials and Hessian-vector product of the bilinear form aᵀ A b along
/// the displacements `u` (Gaussian units, no prefactor). Periodic systems use the Ewald split
/// with `smearing`, `cutoff`, `k_cutoff` (those not given are chosen for `accuracy`), or,
/// with `mesh` and `order` (and `smearing`, `cutoff`), the smooth-PME mesh: the exact
/// derivatives of the PME energy of those parameters; open systems sum all pairs. `widths`
/// adds QEq's Gaussian charges. With `strain` (3 × 3, acting on column vectors) the
/// derivatives are along the displacements `u` plus the homogeneous strain (r_i → r_i + u_i +
/// e r_i, H → H (1 + e)ᵀ), and `strain_gradient` (∂(aᵀAb)/∂ε) and `strain_hvp` (its
/// derivative) are returned too (None without `strain`).
#[pyfunction]
#[pyo3(signature = (system, a, b, u, exponent=1.0, accuracy=1e-6, smearing=None, cutoff=None, k_cutoff=None, widths=None, mesh=None, order=None, strain=None))]
#[allow(clippy::too_many_arguments)]
fn second_order<'py>(
    py: Python<'py>,
    system: SystemArrays<'py>,
    a: PyReadonlyArray1<'py, f64>,
    b: PyReadonlyArray1<'py, f64>,
    u: PyReadonlyArray2<'py, f64>,
    exponent: f64,
    accuracy: f64,
    smearing: Option<f64>,
    cutoff: Option<f64>,
    k_cutoff: Option<f64>,
    widths: Option<PyReadonlyArray1<'py, f64>>,
    mesh: Option<[usize; 3]>,
    order: Option<usize>,
    strain: Option<PyReadonlyArray2<'py, f64>>,
) -> PyResult<Bound<'py, PyDict>> {
    let strain = match strain {
        Some(e) => {
            let e = e.as_array();
            if e.shape() != [3, 3] {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "strain must have shape (3, 3), got {:?}",
                    e.shape()
                )));
            }
            Some([0, 1, 2].map(|x| [0, 1, 2].map(|y| e[[x, y]])))
        }
        None => None,
    };
    let system = errors::guarded(|| system.to_system())?;
    let u = errors::guarded(|| vec3s("u", &u))?;
    let a: Vec<f64> = a.as_array().iter().copied().collect();
    let b: Vec<f64> = b.as_array().iter().copied().collect();
    let widths: Option<Vec<f64>> = widths.map(|w| w.as_array().iter().copied().collect());
    let kernel = errors::guarded(|| Kernel::new(exponent))?;
    let (out, parameters) = threads::run(py, || {
        let (pairs, parameters) = if let (true, Some(points)) = (system.is_periodic(), mesh) {
            let missing = |name: &str| Error::parameter(name, "is required with mesh");
            let smearing = smearing.ok_or_else(|| missing("smearing"))?;
            let cutoff = cutoff.ok_or_else(|| missing("cutoff"))?;
            let order = order.ok_or_else(|| missing("order"))?;
            (
                Pairs::pme(kernel, smearing, cutoff, points, order)?,
                Some((smearing, cutoff, f64::NAN)),
            )
        } else if system.is_periodic() {
            let p = match (smearing, cutoff, k_cutoff) {
                (Some(smearing), Some(cutoff), Some(k_cutoff)) => EwaldParameters {
                    smearing,
                    cutoff,
                    k_cutoff,
                },
                _ => {
                    let fixed = Overrides {
                        smearing,
                        cutoff,
                        k_cutoff,
                        ..Overrides::default()
                    };
                    let request = MethodRequest::parse("ewald")?;
                    match choose(kernel, &system, accuracy, request, fixed)?.method {
                        Method::Ewald(p) => p,
                        _ => return Err(Error::Unsupported("expected Ewald parameters".into())),
                    }
                }
            };
            (
                Pairs::ewald(kernel, p.smearing, p.cutoff, p.k_cutoff)?,
                Some((p.smearing, p.cutoff, p.k_cutoff)),
            )
        } else {
            (Pairs::direct(kernel), None)
        };
        let pairs = match widths {
            Some(w) => pairs.with_widths(w)?,
            None => pairs,
        };
        let out = match &strain {
            Some(e) => second_order_strained(&system, &pairs, &a, &b, &u, e)?,
            None => core_second_order(&system, &pairs, &a, &b, &u)?,
        };
        Ok((out, parameters))
    })?;
    let n = system.len();
    let vectors = |v: Vec<[f64; 3]>| {
        numpy::ndarray::Array2::from_shape_vec((n, 3), v.into_iter().flatten().collect())
            .expect("n x 3")
            .into_pyarray(py)
    };
    let d = PyDict::new(py);
    d.set_item("gradient", vectors(out.gradient))?;
    d.set_item("dipole_a", PyArray1::from_vec(py, out.dipole_a))?;
    d.set_item("dipole_b", PyArray1::from_vec(py, out.dipole_b))?;
    d.set_item("hvp", vectors(out.hvp))?;
    let matrix = |m: Option<[[f64; 3]; 3]>| {
        m.map(|m| {
            numpy::ndarray::Array2::from_shape_vec((3, 3), m.into_iter().flatten().collect())
                .expect("3 x 3")
                .into_pyarray(py)
        })
    };
    d.set_item("strain_gradient", matrix(out.strain_gradient))?;
    d.set_item("strain_hvp", matrix(out.strain_hvp))?;
    d.set_item("parameters", parameters)?;
    Ok(d)
}

/// Adds the functions of this module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(second_order, m)?)?;
    Ok(())
}
