//! Bindings of [`farfield::limits`]: the memory and term limits every call checks.

use pyo3::prelude::*;

/// Sets the process-wide limits: `max_memory` in bytes (None: half the available memory at
/// each call), `max_terms` the largest number of elementary terms of one call.
#[pyfunction]
// a literal default (= farfield::limits::DEFAULT_MAX_TERMS, checked by
// tests/test_native_stub.py) so that the Python signature shows it
#[pyo3(signature = (max_memory=None, max_terms=2e11))]
pub fn set_limits(max_memory: Option<f64>, max_terms: f64) -> PyResult<()> {
    let limits =
        farfield::limits::Limits::new(max_memory, max_terms).map_err(crate::errors::to_py)?;
    farfield::limits::set(limits);
    Ok(())
}

/// The limits in force: `(max_memory or None, max_terms, memory limit now in bytes)`.
#[pyfunction]
pub fn get_limits() -> (Option<f64>, f64, f64) {
    let l = farfield::limits::get();
    (l.max_memory, l.max_terms, farfield::limits::memory_limit())
}
