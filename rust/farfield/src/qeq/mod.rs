//! Charge equilibration with Gaussian charges.
