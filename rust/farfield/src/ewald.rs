//! Ewald summation of a 1/r^p kernel for periodic systems.
