//! Smooth particle-mesh Ewald.
