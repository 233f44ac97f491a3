//! Radial bases (GTO, monomial), orthonormalisation and radial integrals.
