//! Mapping of core errors to Python exceptions, and the guard that keeps panics out of Python.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::PyErr;

/// Converts a core error: bad input becomes `ValueError`, a failed computation `RuntimeError`.
pub fn to_py(error: farfield::Error) -> PyErr {
    if error.is_bad_input() {
        PyValueError::new_err(error.to_string())
    } else {
        PyRuntimeError::new_err(error.to_string())
    }
}

/// Runs `f`, turning a panic into a `RuntimeError` instead of letting it reach Python.
pub fn guarded<T>(f: impl FnOnce() -> farfield::Result<T>) -> Result<T, PyErr> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result.map_err(to_py),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(PyRuntimeError::new_err(format!(
                "internal error in farfield (please report it): {message}"
            )))
        }
    }
}
