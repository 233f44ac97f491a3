//! # farfield
//!
//! The long-range part of atomistic simulation and machine learning, in pure Rust:
//!
//! * Ewald, PME and direct sums of any 1/r^p pair kernel (energies, potentials, forces,
//!   stress), periodic or not, with parameters tuned for a requested accuracy;
//! * LODE features, local density expansions and power spectra;
//! * charge equilibration with Gaussian charges;
//! * triplet descriptors.
//!
//! Conventions: Gaussian units (the energy of two charges is q_i q_j / r; multiply by a
//! `prefactor` for other units), σ is the standard deviation of the Gaussian smearing, cell
//! vectors are rows, everything is f64.
//!
//! ## Quick start
//!
//! The Madelung constant of rock salt by an Ewald sum tuned for a requested accuracy:
//!
//! ```
//! use farfield::ewald::Ewald;
//! use farfield::longrange::{LongRangeSum, Request};
//! use farfield::tuning::tune_ewald;
//! use farfield::{Kernel, System};
//!
//! // fcc primitive cell (rows = cell vectors), Na at the origin, Cl at distance 1
//! let cell = [[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]];
//! let system = System::new(vec![[0.0; 3], [1.0, 0.0, 0.0]], vec![11, 17], Some(cell))?;
//! let parameters = tune_ewald(Kernel::coulomb(), &system, 1e-10, Default::default())?;
//! let out = Ewald::new(Kernel::coulomb(), parameters)?.compute(
//!     &system,
//!     &[1.0, -1.0],
//!     Request::all(),
//! )?;
//! assert!((-out.energy - 1.747_564_594_633).abs() < 1e-9);
//! assert!(out.forces.unwrap().iter().flatten().all(|f| f.abs() < 1e-9)); // by symmetry
//! # Ok::<(), farfield::Error>(())
//! ```
//!
//! ## Modules
//!
//! * sums of a pair kernel: [`ewald`], [`pme`], [`direct`], [`freespace`] (open systems), all
//!   implementing [`longrange::LongRangeSum`]; [`tuning`] chooses the method and its parameters
//!   for a requested accuracy ([`tuning::choose::choose`], [`tuning::tune_ewald`],
//!   [`tuning::pme::tune_pme`]); [`kernel`] holds the 1/r^p kernels and their range split;
//! * features: [`lode`] (LODE), [`descriptors`] (spherical expansion, power spectrum,
//!   bispectrum, triplets);
//! * [`qeq`]: charge equilibration; [`hessian`]: second derivatives of the pair sums;
//! * inputs and conventions: [`system`] ([`System`], [`Cell`]), [`strain`]; [`math`]: the
//!   vector types [`Vec3`] and [`Mat3`], real spherical harmonics and Clebsch–Gordan
//!   coefficients in featomic's convention;
//! * [`error`], [`limits`] (cost before work), [`interrupt`] (cooperative interruption).
//!
//! Option structs that will grow (`QEqOptions`, `QEqProblem`, `LodeParameters`,
//! `ExpansionParameters`, `longrange::Request`) are `#[non_exhaustive]`: build them with their
//! constructor or `Default` and set fields on the value; each field documents its default.
//!
//! Every engine returns [`Result`]; a [`Error`] names the offending parameter, and every
//! engine checks its estimated memory and work against [`limits`] before it starts.
//! Parallel loops run in the current rayon pool. The examples (`cargo run --release
//! --example madelung`, `pme_forces`, `lode_features`, `qeq_cluster`, `triplets_bpm`) show
//! one engine each, and `cargo test` runs their checks.
#![warn(missing_docs)]
// index loops read closer to the formulas in numerical code
#![allow(clippy::needless_range_loop)]

// The public API: the engines, their inputs and outputs, and what a user needs for their
// types. Everything else is an implementation detail (`pub(crate)`).
pub mod descriptors;
pub mod direct;
pub mod error;
pub mod ewald;
pub mod freespace;
pub mod hessian;
pub mod interrupt;
pub mod kernel;
pub mod limits;
pub mod lode;
pub mod longrange;
pub mod math;
pub mod pme;
pub mod qeq;
pub mod strain;
pub mod system;
pub mod tuning;

// internals
pub(crate) mod basis;
pub(crate) mod buffers;
pub(crate) mod gradients;
pub(crate) mod kspace;
pub(crate) mod mesh;
// Reachable but hidden: the profiling driver `examples/pme_timing.rs` times the cell-list
// neighbour search and PME's real-space pass on their own (`pme` re-exports `realspace` for
// it). Not part of the API.
#[doc(hidden)]
pub mod neighbors;
#[doc(hidden)]
pub mod realspace;

pub use error::{Error, Result};
pub use gradients::GradientRequest;
pub use kernel::{Kernel, RangeSplit};
pub use math::linalg::{Mat3, Vec3};
pub use math::simd_level;
pub use system::{Cell, System};
