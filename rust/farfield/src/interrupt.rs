//! Cooperative interruption of long computations.
//!
//! Every loop of farfield that can run for more than a fraction of a second polls
//! [`is_requested`] (one relaxed atomic load) at least every few milliseconds of work and returns
//! [`Error::Interrupted`] through [`check`] once an interruption is requested. The Python
//! bindings call [`request`] when Ctrl-C arrives while a computation runs with the GIL released
//! and [`clear`] when that computation has returned; a Rust user may call them from any thread
//! (a signal handler, a watchdog).
//!
//! The flag is process-wide: a request stops every farfield computation running at that moment.
//! No partial result is returned by an interrupted call.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks every running computation to stop as soon as it next polls.
pub fn request() {
    REQUESTED.store(true, Ordering::Relaxed);
}

/// Withdraws a request (call it once the interrupted computations have returned).
pub fn clear() {
    REQUESTED.store(false, Ordering::Relaxed);
}

/// `true` while an interruption is requested. Cheap enough for inner loops.
#[inline]
pub fn is_requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// `Err(Error::Interrupted)` while an interruption is requested, `Ok(())` otherwise.
#[inline]
pub fn check() -> Result<()> {
    if is_requested() {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}
