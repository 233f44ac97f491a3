//! Binding of the PME/Ewald preference of the core (`method="auto"`); the PME sum itself is
//! reached through `coulomb_choose` / `coulomb_compute` (see `ewald.rs`).
use crate::convert::SystemArrays;
use crate::{errors, threads};
use farfield::kernel::Kernel;
use farfield::tuning::pme::prefer_pme;
use pyo3::prelude::*;

/// `method="auto"`: True when PME is predicted to be cheaper than Ewald.
#[pyfunction]
#[pyo3(signature = (system, exponent=1.0, accuracy=1e-5))]
fn pme_preferred(
    py: Python<'_>,
    system: SystemArrays<'_>,
    exponent: f64,
    accuracy: f64,
) -> PyResult<bool> {
    let system = errors::guarded(|| system.to_system())?;
    threads::run(py, || prefer_pme(Kernel::new(exponent)?, &system, accuracy))
}

/// Adds this engine's functions and classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(pme_preferred, m)?)?;
    Ok(())
}
