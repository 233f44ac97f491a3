//! Error estimates and automatic parameters for a requested accuracy.
pub mod pme;
