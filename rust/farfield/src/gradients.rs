//! Which derivatives a feature calculator returns: the request shared by the descriptors
//! (SOAP, power spectrum, triplets) and LODE, one layer below both.

/// Which gradients to compute (dense ∂x/∂r_j, ∂x/∂ε with ε on column vectors as everywhere
/// ([`crate::strain`]), and ∂x/∂H at fixed Cartesian positions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GradientRequest {
    /// derivatives with respect to atomic positions (default `false`, as every field)
    pub positions: bool,
    /// derivatives with respect to a homogeneous strain ε of the cell and positions
    /// (`r → (1 + ε) r`, ε on column vectors, `[α][β] = ∂/∂ε_αβ`, see [`crate::strain`]);
    /// open systems: positions only
    pub strain: bool,
    /// derivatives with respect to the cell matrix `H` (rows = cell vectors) with the
    /// Cartesian positions held fixed (featomic's `"cell"` gradient), for periodic systems
    pub cell: bool,
}
