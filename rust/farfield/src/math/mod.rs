//! Mathematical building blocks: small linear algebra and special functions.

pub mod linalg;
pub mod special;
