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
//! ```
//! use farfield::{kernel::Kernel, system::System};
//! let system = System::new(vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], vec![11, 17], None).unwrap();
//! let split = Kernel::coulomb().split(0.5).unwrap();
//! assert_eq!(system.len(), 2);
//! assert!(split.self_potential() > 0.0);
//! ```
#![warn(missing_docs)]
// index loops read closer to the formulas in numerical code
#![allow(clippy::needless_range_loop)]

pub mod basis;
pub(crate) mod buffers;
pub mod descriptors;
pub mod direct;
pub mod error;
pub mod ewald;
pub mod freespace;
pub mod gradients;
pub mod interrupt;
pub mod kernel;
pub mod kspace;
pub mod limits;
pub mod lode;
pub mod longrange;
pub mod math;
pub mod mesh;
pub mod neighbors;
pub mod pme;
pub mod qeq;
pub mod realspace;
pub mod strain;
pub mod system;
pub mod tuning;

pub use error::{Error, Result};
pub use kernel::{Kernel, RangeSplit};
pub use system::{Cell, System};
