//! Conversion of numpy arrays to core types.

use farfield::math::linalg::{Mat3, Vec3};
use farfield::{Error, System};
use numpy::{PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

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

/// The arrays that describe a system on the Python side: the tuple
/// `(positions (n, 3), numbers (n,) int32, cell (3, 3) or None)` made by `System._arrays()`.
#[derive(FromPyObject)]
pub struct SystemArrays<'py>(
    PyReadonlyArray2<'py, f64>,
    PyReadonlyArray1<'py, i32>,
    Option<PyReadonlyArray2<'py, f64>>,
);

impl SystemArrays<'_> {
    /// Builds (and validates) the core system. Call it before releasing the GIL.
    pub fn to_system(&self) -> farfield::Result<System> {
        let positions = vec3s("positions", &self.0)?;
        let numbers: Vec<i32> = self.1.as_array().iter().copied().collect();
        let cell = self.2.as_ref().map(|c| mat3("cell", c)).transpose()?;
        System::new(positions, numbers, cell)
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
