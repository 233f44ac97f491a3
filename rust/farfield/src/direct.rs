//! Direct O(N²) summation of a 1/r^p kernel for open systems.
