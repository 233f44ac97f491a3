//! Local density expansion, power spectrum, Clebsch-Gordan products, triplets.

pub mod bispectrum;
pub mod triplets;
