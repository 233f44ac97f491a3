//! Mathematical building blocks: small and dense (faer) linear algebra and special functions.

pub(crate) mod bessel;
pub mod clebsch_gordan;
pub(crate) mod dense;
pub(crate) mod dispatch;
pub(crate) mod eigen;
pub(crate) mod hypergeometric;
pub mod linalg;
pub(crate) mod microkernel;
pub(crate) mod quadrature;
pub(crate) mod special;
pub mod spherical_harmonics;
pub(crate) mod spline;

pub use dispatch::simd_level;
