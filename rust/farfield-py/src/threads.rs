//! The thread pool every computation runs in; its size can be set from Python. Computations
//! run with the GIL released while the calling thread watches for Ctrl-C.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::time::Duration;

static POOL: RwLock<Option<Arc<rayon::ThreadPool>>> = RwLock::new(None);

/// How often the calling thread looks for a pending Ctrl-C while a computation runs.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

fn pool() -> Option<Arc<rayon::ThreadPool>> {
    POOL.read().ok().and_then(|guard| guard.clone())
}

/// Runs `f` inside the configured pool (or rayon's global pool when none is set).
pub fn install<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    match pool() {
        Some(pool) => pool.install(f),
        None => f(),
    }
}

/// Runs a core computation the way every binding must: with the GIL released, inside the
/// configured pool, with core errors mapped to Python exceptions and panics caught.
///
/// The computation runs as a task of the pool while the calling thread waits for it and,
/// every 50 ms, takes the GIL to run Python's signal handlers: a `KeyboardInterrupt` (or any
/// exception a handler raises) asks the core to stop ([`farfield::interrupt`]), waits for it to
/// return, and is raised; no partial result is returned.
pub fn run<T: Send>(py: Python<'_>, f: impl FnOnce() -> farfield::Result<T> + Send) -> PyResult<T> {
    let (sender, receiver) = mpsc::channel();
    let job = move || {
        let _ = sender.send(crate::errors::guarded(f));
    };
    let pool = pool();
    let (outcome, signal) = py.detach(move || {
        let mut signal: Option<PyErr> = None;
        let wait = |signal: &mut Option<PyErr>| loop {
            match receiver.recv_timeout(SIGNAL_POLL) {
                Ok(result) => return result,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if signal.is_none() {
                        if let Err(error) = Python::attach(|py| py.check_signals()) {
                            *signal = Some(error);
                            farfield::interrupt::request();
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(pyo3::exceptions::PyRuntimeError::new_err(
                        "internal error in farfield: the computation ended without a result",
                    ))
                }
            }
        };
        let outcome = match &pool {
            Some(pool) => pool.in_place_scope(|scope| {
                scope.spawn(move |_| job());
                wait(&mut signal)
            }),
            None => rayon::in_place_scope(|scope| {
                scope.spawn(move |_| job());
                wait(&mut signal)
            }),
        };
        (outcome, signal)
    });
    if let Some(error) = signal {
        farfield::interrupt::clear();
        return Err(error);
    }
    outcome
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
