//! Conversion of numpy arrays to core types.

use farfield::math::linalg::{Mat3, Vec3};
use farfield::{Error, System};
use numpy::{PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

use crate::system::{validated, NativeSystem};

/// Reads an (n, 3) float array.
pub fn vec3s(what: &str, array: &PyReadonlyArray2<'_, f64>) -> farfield::Result<Vec<Vec3>> {
    let view = array.as_array();
    if view.ncols() != 3 {
        return Err(Error::shape(
            what,
            "an array of shape (n, 3)",
            format!("shape {:?}", view.shape()),
        ));
    }
    Ok(view
        .rows()
        .into_iter()
        .map(|r| [r[0], r[1], r[2]])
        .collect())
}

/// Reads a (3, 3) float array.
pub fn mat3(what: &str, array: &PyReadonlyArray2<'_, f64>) -> farfield::Result<Mat3> {
    let view = array.as_array();
    if view.shape() != [3, 3] {
        return Err(Error::shape(
            what,
            "an array of shape (3, 3)",
            format!("shape {:?}", view.shape()),
        ));
    }
    let mut m = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            m[i][j] = view[[i, j]];
        }
    }
    Ok(m)
}

/// A system as the Python side passes it: the validated [`NativeSystem`] that `System._arrays()`
/// returns (used as is: no copy, no re-validation), or, for backwards compatibility, the tuple
/// `(positions (n, 3), numbers (n,) int32, cell (3, 3) or None)` (converted and validated on
/// every call).
#[derive(FromPyObject)]
pub enum SystemArrays<'py> {
    /// A `farfield._native.NativeSystem`.
    Native(Bound<'py, NativeSystem>),
    /// The tuple of arrays.
    Arrays(
        PyReadonlyArray2<'py, f64>,
        PyReadonlyArray1<'py, i32>,
        Option<PyReadonlyArray2<'py, f64>>,
    ),
}

impl SystemArrays<'_> {
    /// The core system: for a `NativeSystem` a cheap clone of the system validated when it was
    /// built; for a tuple, built and validated now. Call it before releasing the GIL.
    pub fn to_system(&self) -> farfield::Result<System> {
        match self {
            SystemArrays::Native(native) => Ok(native.get().system()),
            SystemArrays::Arrays(positions, numbers, cell) => {
                let positions = vec3s("positions", positions)?;
                let numbers: Vec<i32> = numbers.as_array().iter().copied().collect();
                let cell = cell.as_ref().map(|c| mat3("cell", c)).transpose()?;
                validated(positions, numbers, cell, None)
            }
        }
    }
}

/// Maps a string option to its value: `options` lists the accepted `(name, value)` pairs; any
/// other string is a ValueError naming the parameter and the accepted choices.
pub fn choice<T: Clone>(
    parameter: &str,
    value: &str,
    options: &[(&str, T)],
) -> farfield::Result<T> {
    if let Some((_, v)) = options.iter().find(|(name, _)| *name == value) {
        return Ok(v.clone());
    }
    let names: Vec<String> = options
        .iter()
        .map(|(name, _)| format!("'{name}'"))
        .collect();
    let expected = match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    Err(Error::parameter(
        parameter,
        format!("unknown {parameter} '{value}', expected {expected}"),
    ))
}
