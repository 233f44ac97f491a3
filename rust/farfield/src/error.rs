//! The one error type of farfield.
//!
//! Every variant describes a kind of bad input or a failed computation; the Python bindings map
//! them to `ValueError` (bad input) or `RuntimeError` (a computation that could not finish).

/// Everything that can go wrong in farfield.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An input array holds NaN or infinity.
    #[error("{what} contains a non-finite value (NaN or infinity) at index {index}")]
    NonFinite {
        /// Which input (e.g. "positions").
        what: String,
        /// Flat index of the first offending value.
        index: usize,
    },
    /// Array sizes do not agree with each other.
    #[error("shape mismatch for {what}: expected {expected}, got {got}")]
    Shape {
        /// Which input.
        what: String,
        /// What was expected, in words.
        expected: String,
        /// What was given, in words.
        got: String,
    },
    /// The cell matrix is singular or too close to degenerate to be used.
    #[error("singular cell: {0}")]
    SingularCell(String),
    /// Two atoms (or an atom and a periodic image of another) sit on top of each other.
    #[error("atoms {i} and {j} overlap: their distance {distance:.3e} is below 1e-8")]
    OverlappingAtoms {
        /// First atom.
        i: usize,
        /// Second atom.
        j: usize,
        /// Their distance (including periodic images).
        distance: f64,
    },
    /// A parameter is out of its allowed range.
    #[error("invalid {name}: {reason}")]
    InvalidParameter {
        /// Name of the parameter, as the user spells it.
        name: String,
        /// Why it is rejected.
        reason: String,
    },
    /// A sum that diverges for the given input (e.g. p = 3 with a net charge).
    #[error("divergent sum: {0}")]
    Divergent(String),
    /// A valid request that this version does not support.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An iterative method did not reach its tolerance.
    #[error("did not converge: {0}")]
    NotConverged(String),
    /// The work a request implies (memory or number of terms) exceeds a limit of
    /// [`crate::limits`]; nothing was computed.
    #[error("{what} would need {estimate}, above the limit of {limit}; {hint}")]
    TooExpensive {
        /// What was estimated (e.g. "the Ewald real-space sum").
        what: String,
        /// The estimate, in words with its unit (e.g. "3.2e13 pair terms", "12.0 GB").
        estimate: String,
        /// The limit in force, with its unit.
        limit: String,
        /// Which parameter to change (or how to raise the limit).
        hint: String,
    },
    /// The computation was stopped by [`crate::interrupt::request`] (Ctrl-C from Python).
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// Shorthand for [`Error::InvalidParameter`].
    pub fn parameter(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidParameter {
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Shape`].
    pub fn shape(
        what: impl Into<String>,
        expected: impl Into<String>,
        got: impl Into<String>,
    ) -> Self {
        Error::Shape {
            what: what.into(),
            expected: expected.into(),
            got: got.into(),
        }
    }

    /// `true` when the error describes bad input (as opposed to a failed computation).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Error::NotConverged(_) | Error::Interrupted)
    }
}

/// Result type of farfield.
pub type Result<T> = std::result::Result<T, Error>;

/// Checks that every value is finite, naming the input in the error.
pub(crate) fn check_finite(what: &str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(Error::NonFinite {
            what: what.to_string(),
            index,
        }),
        None => Ok(()),
    }
}
