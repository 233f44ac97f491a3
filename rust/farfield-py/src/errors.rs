//! Mapping of core errors to Python exceptions, and the guard that keeps panics out of Python.

use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::PyErr;
use std::sync::atomic::{AtomicUsize, Ordering};

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Installs a panic hook that counts panics (and still prints them), so that the test suite
/// can fail on any panic even when it was caught and turned into an exception.
pub fn count_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::Relaxed);
        previous(info);
    }));
}

/// Number of panics in farfield's native code since the module was loaded (every one is a
/// bug: the test suite checks that it stays 0).
#[pyfunction]
pub fn panic_count() -> usize {
    PANICS.load(Ordering::Relaxed)
}

pyo3::create_exception!(
    _native,
    ConvergenceError,
    pyo3::exceptions::PyRuntimeError,
    "An iterative solver (QEq's conjugate gradient) did not reach its tolerance within its \
     iteration limit: a RuntimeError that names the residual reached."
);

/// Converts a core error: bad input becomes `ValueError`, a failed computation `RuntimeError`,
/// an interrupted one `KeyboardInterrupt`.
pub fn to_py(error: farfield::Error) -> PyErr {
    if error == farfield::Error::Interrupted {
        return PyKeyboardInterrupt::new_err("interrupted");
    }
    if let farfield::Error::NotConverged(_) = &error {
        return ConvergenceError::new_err(error.to_string());
    }
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
