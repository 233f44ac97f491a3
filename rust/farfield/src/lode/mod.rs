//! LODE features: k-space, real-space (open systems), mesh path, gradients.
