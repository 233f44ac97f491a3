//! [`NativeSystem`]: the validated core [`System`] that a Python `farfield.System` holds, built
//! once at construction and shared (not copied, not re-validated) by every later call.

use farfield::math::linalg::{Mat3, Vec3};
use farfield::system::{number_out_of_range, MAX_NUMBER};
use farfield::System;
use numpy::ndarray::Array2;
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods,
    PyReadonlyArrayDyn, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::IntoPyDict;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::errors;

static VALIDATIONS: AtomicUsize = AtomicUsize::new(0);

/// Builds and validates a core system (the only place the bindings do so), counting the
/// validations for the tests.
pub fn validated(
    positions: Vec<Vec3>,
    numbers: Vec<i32>,
    cell: Option<Mat3>,
    pbc: Option<[bool; 3]>,
) -> farfield::Result<System> {
    VALIDATIONS.fetch_add(1, Ordering::Relaxed);
    match pbc {
        None => System::new(positions, numbers, cell),
        Some(pbc) => System::with_pbc(positions, numbers, cell, pbc),
    }
}

/// Number of systems built and validated by the extension since it was loaded (for tests:
/// calls on an existing `farfield.System` must not add to it).
#[pyfunction]
pub fn validation_count() -> usize {
    VALIDATIONS.load(Ordering::Relaxed)
}

/// A shape as Python writes it: `(2, 2)`, `(3,)`, `()`.
fn py_shape(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => {
            let items: Vec<String> = shape.iter().map(|n| n.to_string()).collect();
            format!("({})", items.join(", "))
        }
    }
}

fn shape_error(what: &str, expected: &str, shape: &[usize]) -> PyErr {
    PyValueError::new_err(format!(
        "{what} must have shape {expected}, got {}",
        py_shape(shape)
    ))
}

/// Reads an (n, 3) float64 array.
fn read_positions(array: &PyReadonlyArrayDyn<'_, f64>) -> PyResult<Vec<Vec3>> {
    let view = array.as_array();
    if view.ndim() != 2 || view.shape()[1] != 3 {
        return Err(shape_error("positions", "(n, 3)", view.shape()));
    }
    Ok(view
        .rows()
        .into_iter()
        .map(|r| [r[0], r[1], r[2]])
        .collect())
}

/// Reads a (3, 3) float64 array.
fn read_cell(array: &PyReadonlyArrayDyn<'_, f64>) -> PyResult<Mat3> {
    let view = array.as_array();
    if view.shape() != [3, 3] {
        return Err(shape_error("cell", "(3, 3)", view.shape()));
    }
    let mut m = [[0.0; 3]; 3];
    for (i, row) in m.iter_mut().enumerate() {
        for (j, value) in row.iter_mut().enumerate() {
            *value = view[[i, j]];
        }
    }
    Ok(m)
}

/// Reads atomic numbers from an integer array of any integer dtype: floats (even 1.0), bools
/// and objects are a `TypeError`; values outside [0, 2^31 - 1] a `ValueError`; an empty float
/// array is accepted (`np.asarray([])` is float64).
fn read_numbers(numbers: &Bound<'_, PyAny>, n_atoms: usize) -> PyResult<Vec<i32>> {
    let array = numbers.cast::<PyUntypedArray>().map_err(|_| {
        PyTypeError::new_err(format!(
            "numbers must be an array of integers, got {}",
            numbers
                .get_type()
                .name()
                .map_or("?".into(), |n| n.to_string())
        ))
    })?;
    let kind = array.dtype().kind();
    let empty = array.len() == 0;
    let values: Vec<i128> = match kind {
        b'i' => to_vec(array, "int64", |v: i64| v.into())?,
        b'u' => to_vec(array, "uint64", |v: u64| v.into())?,
        b'f' if empty => Vec::new(),
        _ => {
            let example = if empty {
                String::new()
            } else {
                format!(" (e.g. {})", array.getattr("flat")?.get_item(0)?.repr()?)
            };
            return Err(PyTypeError::new_err(format!(
                "numbers must be integers (atomic numbers), got values of type {}{example}",
                array.dtype()
            )));
        }
    };
    if let Some(i) = values
        .iter()
        .position(|&z| z < 0 || z > i128::from(MAX_NUMBER))
    {
        return Err(errors::to_py(number_out_of_range(i, values[i])));
    }
    if array.ndim() != 1 {
        return Err(shape_error(
            "numbers",
            &format!("({n_atoms},) (one per atom)"),
            array.shape(),
        ));
    }
    // in range, hence exact
    Ok(values.into_iter().map(|z| z as i32).collect())
}

fn to_vec<T: numpy::Element + Copy>(
    array: &Bound<'_, PyUntypedArray>,
    dtype: &str,
    widen: impl Fn(T) -> i128,
) -> PyResult<Vec<i128>> {
    let kwargs = [("copy", false)].into_py_dict(array.py())?;
    let cast = array.call_method("astype", (dtype,), Some(&kwargs))?;
    let typed = cast.cast::<PyArrayDyn<T>>()?.readonly();
    Ok(typed.as_array().iter().map(|&v| widen(v)).collect())
}

/// A validated system: positions, atomic numbers and optional cell, checked once by the core
/// (finite values, shapes, atomic numbers, singular or nearly degenerate cells, overlapping
/// atoms, periodicity all or nothing). Immutable; every `_native` function that takes a system
/// accepts it and uses it as is.
#[pyclass(frozen, module = "farfield._native")]
pub struct NativeSystem {
    system: System,
}

impl NativeSystem {
    /// The core system (a cheap clone: the arrays are shared).
    pub fn system(&self) -> System {
        self.system.clone()
    }
}

#[pymethods]
impl NativeSystem {
    /// Converts and validates. `positions` (n, 3) and `cell` (3, 3) are float64 arrays,
    /// `numbers` an integer array; with `pbc` (three booleans) the cell is used when all are
    /// true and ignored when all are false, mixed periodicity is refused.
    #[new]
    #[pyo3(signature = (positions, numbers, cell=None, pbc=None))]
    fn new(
        positions: PyReadonlyArrayDyn<'_, f64>,
        numbers: &Bound<'_, PyAny>,
        cell: Option<PyReadonlyArrayDyn<'_, f64>>,
        pbc: Option<[bool; 3]>,
    ) -> PyResult<NativeSystem> {
        let positions = read_positions(&positions)?;
        let numbers = read_numbers(numbers, positions.len())?;
        let cell = cell.as_ref().map(read_cell).transpose()?;
        let system = errors::guarded(|| validated(positions, numbers, cell, pbc))?;
        Ok(NativeSystem { system })
    }

    /// Positions (n, 3), a new array.
    #[getter]
    fn positions<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<f64>> {
        let n = self.system.len();
        let flat: Vec<f64> = self.system.positions().as_flattened().to_vec();
        Array2::from_shape_vec((n, 3), flat)
            .expect("n x 3")
            .into_pyarray(py)
    }

    /// Atomic numbers (n,) int32, a new array.
    #[getter]
    fn numbers<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i32>> {
        PyArray1::from_slice(py, self.system.numbers())
    }

    /// Cell vectors as rows (3, 3), a new array; None for an open system.
    #[getter]
    fn cell<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyArray2<f64>>> {
        self.system.cell().map(|c| {
            Array2::from_shape_vec((3, 3), c.matrix().as_flattened().to_vec())
                .expect("3 x 3")
                .into_pyarray(py)
        })
    }

    /// True for a periodic system.
    #[getter]
    fn periodic(&self) -> bool {
        self.system.is_periodic()
    }

    /// Immutable: a copy is the object itself.
    fn __copy__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// Immutable: a deep copy is the object itself.
    fn __deepcopy__<'py>(slf: Bound<'py, Self>, _memo: &Bound<'py, PyAny>) -> Bound<'py, Self> {
        slf
    }

    /// Pickled as its arrays; loading validates them again.
    #[allow(clippy::type_complexity)]
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(
        Bound<'py, PyAny>,
        (
            Bound<'py, PyArray2<f64>>,
            Bound<'py, PyArray1<i32>>,
            Option<Bound<'py, PyArray2<f64>>>,
        ),
    )> {
        let py = slf.py();
        let this = slf.get();
        Ok((
            slf.get_type().into_any(),
            (this.positions(py), this.numbers(py), this.cell(py)),
        ))
    }

    fn __len__(&self) -> usize {
        self.system.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "NativeSystem({} atoms, {})",
            self.system.len(),
            if self.system.is_periodic() {
                "periodic"
            } else {
                "open"
            }
        )
    }
}
