//! Mathematical building blocks: small and dense (faer) linear algebra and special functions.

pub mod bessel;
pub mod clebsch_gordan;
pub mod dense;
pub(crate) mod dispatch;
pub mod eigen;
pub mod hypergeometric;
pub mod linalg;
pub mod microkernel;
pub mod quadrature;
pub mod special;
pub mod spherical_harmonics;
pub mod spline;

pub use dispatch::simd_level;
