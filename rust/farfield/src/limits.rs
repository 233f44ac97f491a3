//! Cost before work: the limits every engine checks before it allocates or loops.
//!
//! Each engine estimates, from the system and its parameters alone, the memory its large
//! buffers need and the number of elementary terms its loops will evaluate (pair interactions,
//! (atom, k-vector) products, mesh points times stencil points, Clebsch–Gordan entries, …).
//! When an estimate exceeds a limit, the call returns [`Error::TooExpensive`], which states
//! the estimate, the limit and the parameter to change, and nothing is computed.
//!
//! * **Memory**: by default [`DEFAULT_MEMORY_FRACTION`] of the memory available when the call
//!   starts (`MemAvailable` of `/proc/meminfo` on Linux, 8 GiB assumed elsewhere).
//! * **Terms**: by default [`DEFAULT_MAX_TERMS`]; one term is one of the elementary operations
//!   above (a few to a few tens of nanoseconds of one core), so the default bounds a call to
//!   minutes on a few cores.
//!
//! Both can be changed for the whole process with [`set`] (`farfield.set_limits` in Python) and
//! read with [`get`]; [`memory_limit`] gives the memory limit in force now, in bytes. Buffers
//! whose size follows from the input are allocated fallibly (crate-internal helpers), so that an
//! allocation failure becomes the same error instead of aborting the process.

use crate::error::{Error, Result};
use std::sync::RwLock;

/// Fraction of the available memory one call may use by default.
pub const DEFAULT_MEMORY_FRACTION: f64 = 0.5;
/// Default largest number of elementary terms of one call.
pub const DEFAULT_MAX_TERMS: f64 = 2e11;

/// The limits in force.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest memory of one call, in bytes. Default `None`: [`DEFAULT_MEMORY_FRACTION`] of
    /// the memory available at the start of the call.
    pub max_memory: Option<f64>,
    /// Largest number of elementary terms of one call. Default [`DEFAULT_MAX_TERMS`].
    pub max_terms: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_memory: None,
            max_terms: DEFAULT_MAX_TERMS,
        }
    }
}

impl Limits {
    /// Limits with the given memory (bytes, `None` for the default) and term count.
    pub fn new(max_memory: Option<f64>, max_terms: f64) -> Result<Limits> {
        if let Some(m) = max_memory {
            if !(m.is_finite() && m > 0.0) {
                return Err(Error::parameter(
                    "max_memory",
                    format!("must be a positive number of bytes, got {m}"),
                ));
            }
        }
        if max_terms.is_nan() || max_terms <= 0.0 {
            return Err(Error::parameter(
                "max_terms",
                format!("must be positive, got {max_terms}"),
            ));
        }
        Ok(Limits {
            max_memory,
            max_terms,
        })
    }
}

static LIMITS: RwLock<Limits> = RwLock::new(Limits {
    max_memory: None,
    max_terms: DEFAULT_MAX_TERMS,
});

/// Sets the process-wide limits.
pub fn set(limits: Limits) {
    if let Ok(mut guard) = LIMITS.write() {
        *guard = limits;
    }
}

/// The process-wide limits.
pub fn get() -> Limits {
    LIMITS.read().map(|g| *g).unwrap_or_default()
}

/// Memory available to this process now, in bytes (`MemAvailable` on Linux).
pub(crate) fn available_memory() -> f64 {
    #[cfg(target_os = "linux")]
    {
        if let Ok(text) = std::fs::read_to_string("/proc/meminfo") {
            for line in text.lines() {
                if let Some(rest) = line.strip_prefix("MemAvailable:") {
                    let kb: Option<f64> =
                        rest.split_whitespace().next().and_then(|v| v.parse().ok());
                    if let Some(kb) = kb {
                        return kb * 1024.0;
                    }
                }
            }
        }
    }
    8.0 * (1u64 << 30) as f64
}

/// The memory limit in force, in bytes: [`Limits::max_memory`] when set, otherwise
/// [`DEFAULT_MEMORY_FRACTION`] of the memory available now (`MemAvailable` of `/proc/meminfo`
/// on Linux, 8 GiB assumed elsewhere).
pub fn memory_limit() -> f64 {
    get()
        .max_memory
        .unwrap_or_else(|| DEFAULT_MEMORY_FRACTION * available_memory())
}

/// Formats a byte count (`"1.2 GB"`).
pub(crate) fn format_bytes(bytes: f64) -> String {
    if bytes >= 1e9 {
        format!("{:.1} GB", bytes / 1e9)
    } else if bytes >= 1e6 {
        format!("{:.1} MB", bytes / 1e6)
    } else {
        format!("{:.0} kB", bytes / 1e3)
    }
}

/// Refuses `bytes` of memory above the limit: `what` names the buffer or computation, `hint`
/// the parameter to change.
pub(crate) fn check_memory(what: &str, bytes: f64, hint: &str) -> Result<()> {
    let limit = memory_limit();
    if bytes.is_nan() || bytes > limit {
        return Err(Error::TooExpensive {
            what: what.to_string(),
            estimate: format_bytes(bytes),
            limit: format!(
                "{} (farfield.set_limits(max_memory=...) changes it)",
                format_bytes(limit)
            ),
            hint: hint.to_string(),
        });
    }
    Ok(())
}

/// Refuses more than the limit of elementary terms: `what` names the computation and the kind
/// of term (e.g. "the real-space sum (pair terms)"), `hint` the parameter to change.
pub(crate) fn check_terms(what: &str, terms: f64, hint: &str) -> Result<()> {
    let limit = get().max_terms;
    if terms.is_nan() || terms > limit {
        return Err(Error::TooExpensive {
            what: what.to_string(),
            estimate: format!("{terms:.2e} terms"),
            limit: format!("{limit:.1e} terms (farfield.set_limits(max_terms=...) changes it)"),
            hint: hint.to_string(),
        });
    }
    Ok(())
}

/// A `Vec<T>` of `len` copies of `value`, or [`Error::TooExpensive`] when the allocation fails
/// or exceeds the memory limit (instead of aborting the process).
pub(crate) fn try_filled<T: Clone>(what: &str, len: usize, value: T) -> Result<Vec<T>> {
    let bytes = len as f64 * std::mem::size_of::<T>() as f64;
    check_memory(what, bytes, "use a smaller system or smaller parameters")?;
    let mut v: Vec<T> = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Error::TooExpensive {
        what: what.to_string(),
        estimate: format_bytes(bytes),
        limit: "the memory the system could allocate".into(),
        hint: "use a smaller system or smaller parameters".into(),
    })?;
    v.resize(len, value);
    Ok(v)
}

/// A zero-filled `Vec<f64>` of `len` elements (allocated zeroed, so the pages are first
/// touched by the caller), or [`Error::TooExpensive`] as for [`try_filled`].
pub(crate) fn try_zeroed(what: &str, len: usize) -> Result<Vec<f64>> {
    check_memory(
        what,
        len as f64 * 8.0,
        "use a smaller system or smaller parameters",
    )?;
    crate::buffers::zeroed(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_state_the_estimate() {
        let e = check_terms("the test sum (pair terms)", 1e300, "lower cutoff").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("1.00e300 terms"), "{text}");
        assert!(text.contains("lower cutoff"), "{text}");
        assert!(check_terms("x", 10.0, "").is_ok());
        assert!(check_memory("x", 1e30, "").is_err());
        assert!(check_memory("x", f64::NAN, "").is_err());
        assert!(try_zeroed("x", usize::MAX / 16).is_err());
        assert_eq!(try_zeroed("x", 5).unwrap(), vec![0.0; 5]);
        assert!(available_memory() > 0.0);
    }

    #[test]
    fn limits_are_validated() {
        assert!(Limits::new(Some(-1.0), 1.0).is_err());
        assert!(Limits::new(None, f64::NAN).is_err());
        assert!(Limits::new(Some(1e9), 1e6).is_ok());
    }
}
