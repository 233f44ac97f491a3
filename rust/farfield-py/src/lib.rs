//! Python bindings of farfield: convert numpy arrays, release the GIL, call the core, map
//! errors. No physics lives here.

use pyo3::prelude::*;

mod convert;
mod descriptors;
mod errors;
mod ewald;
mod hessian;
mod limits;
mod lode;
mod pme;
mod qeq;
mod system;
mod threads;
mod triplets;

use convert::SystemArrays;

/// Validates a system (a `NativeSystem`, already valid, or a tuple positions, numbers, cell)
/// and returns the number of atoms.
#[pyfunction]
fn validate_system(system: SystemArrays<'_>) -> PyResult<usize> {
    let system = errors::guarded(|| system.to_system())?;
    Ok(system.len())
}

/// The vector instruction set the core's kernels run with on this CPU: "avx512", "avx2" or
/// "baseline".
#[pyfunction]
fn simd_level() -> &'static str {
    farfield::math::simd_level()
}

/// The compiled core of farfield.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::count_panics();
    m.add(
        "ConvergenceError",
        m.py().get_type::<errors::ConvergenceError>(),
    )?;
    m.add_function(wrap_pyfunction!(errors::panic_count, m)?)?;
    m.add_function(wrap_pyfunction!(limits::set_limits, m)?)?;
    m.add_function(wrap_pyfunction!(limits::get_limits, m)?)?;
    m.add_function(wrap_pyfunction!(validate_system, m)?)?;
    m.add_function(wrap_pyfunction!(simd_level, m)?)?;
    m.add_function(wrap_pyfunction!(system::validation_count, m)?)?;
    m.add_class::<system::NativeSystem>()?;
    m.add_function(wrap_pyfunction!(threads::set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(threads::get_num_threads, m)?)?;
    ewald::register(m)?;
    pme::register(m)?;
    descriptors::register(m)?;
    lode::register(m)?;
    qeq::register(m)?;
    hessian::register(m)?;
    triplets::register(m)?;
    Ok(())
}
