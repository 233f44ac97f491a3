//! The thread pool every computation runs in; its size can be set from Python.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::sync::{Arc, RwLock};

static POOL: RwLock<Option<Arc<rayon::ThreadPool>>> = RwLock::new(None);

/// Runs `f` inside the configured pool (or rayon's global pool when none is set).
pub fn install<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    let pool = POOL.read().ok().and_then(|guard| guard.clone());
    match pool {
        Some(pool) => pool.install(f),
        None => f(),
    }
}

/// Runs a core computation the way every binding must: with the GIL released, inside the
/// configured pool, with core errors mapped to Python exceptions and panics caught.
pub fn run<T: Send>(py: Python<'_>, f: impl FnOnce() -> farfield::Result<T> + Send) -> PyResult<T> {
    py.detach(|| install(|| crate::errors::guarded(f)))
}

/// Sets the number of threads used by farfield (0 restores the default: all cores, or
/// RAYON_NUM_THREADS).
#[pyfunction]
pub fn set_num_threads(n: usize) -> PyResult<()> {
    let pool = if n == 0 {
        None
    } else {
        Some(Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map_err(|e| PyValueError::new_err(format!("cannot create {n} threads: {e}")))?,
        ))
    };
    *POOL
        .write()
        .map_err(|_| PyValueError::new_err("thread pool lock poisoned"))? = pool;
    Ok(())
}

/// Number of threads farfield uses now.
#[pyfunction]
pub fn get_num_threads() -> usize {
    install(rayon::current_num_threads)
}
