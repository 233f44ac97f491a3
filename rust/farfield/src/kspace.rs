//! Reciprocal lattice, k-vector enumeration and structure factors (filled by the Ewald engine).
