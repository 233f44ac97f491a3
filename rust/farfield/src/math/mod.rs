//! Mathematical building blocks: small linear algebra and special functions.

pub mod bessel;
pub mod clebsch_gordan;
pub(crate) mod dispatch;
pub mod eigen;
pub mod hypergeometric;
pub mod linalg;
pub mod microkernel;
pub mod quadrature;
pub mod special;
pub mod spherical_harmonics;
pub mod spline;
