//! Bindings of the triplets engine.
use pyo3::prelude::*;

/// Adds this engine's functions and classes to the module.
pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
