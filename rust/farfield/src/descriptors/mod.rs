//! Local density expansion, power spectrum, Clebsch-Gordan products, and the labelled result.
//!
//! * [`spherical_expansion::SphericalExpansion`]: featomic's `SphericalExpansion` (Gaussian
//!   density, GTO basis, step or shifted-cosine cutoff, `center_atom_weight`), with the
//!   per-pair expansion `g_ij` ([`SphericalExpansion::pair_expansion`](spherical_expansion::SphericalExpansion::pair_expansion))
//!   that triplet descriptors build on;
//! * [`power_spectrum::PowerSpectrum`]: featomic's `SoapPowerSpectrum`;
//! * [`triplets`] and [`bispectrum`]: triplet descriptors (Nigam et al.) and the ν = 3
//!   bispectrum;
//! * estimates of the neighbour search and buffers, checked before any work (crate-private);
//! * [`result::Descriptor`]: dense values with labelled samples and features, position and
//!   strain and cell gradients;
//! * [`triplets`] and [`bispectrum`]: three-centre (triplet) features and the ν = 3 bispectrum.

pub mod bispectrum;
pub(crate) mod cost;
pub mod power_spectrum;
pub mod result;
pub mod spherical_expansion;
pub mod triplets;

pub use power_spectrum::{Lambda0Product, PowerSpectrum};
pub use result::{Descriptor, GradientRequest, PositionGradients};
pub use spherical_expansion::{
    ExpansionBackward, ExpansionParameters, Smoothing, SphericalExpansion,
};
