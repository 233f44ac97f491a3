//! Radial bases (GTO, monomial), orthonormalisation and radial integrals.
//!
//! * [`gto::GtoBasis`]: featomic's Gaussian-type orbitals, Löwdin-orthonormalised on [0, ∞),
//!   with closed-form k-space integrals `∫ r² R_n(r) j_l(kr) dr`;
//! * [`monomial::MonomialBasis`]: `R_nl ∝ r^{l+2n}` on [0, r_c], orthonormalised per `l`
//!   (featomic's `Monomials`, the multipole basis of LODE);
//! * [`density::GaussianDensityIntegral`]: the SOAP real-space radial integral of a Gaussian
//!   atomic density with the GTO basis (exact through ₁F₁, or splined);
//! * [`tabulated::TabulatedBasis`]: any of them tabulated on a composite Gauss–Legendre grid,
//!   for the radial integrals without closed form (LODE's `I_nl(k)`, its k-derivatives and
//!   their spline [`tabulated::KSpline`]).
//!
//! [`RadialBasis`] is what SOAP, triplets and LODE need from any of them.

pub mod density;
pub mod gto;
pub mod monomial;
pub mod tabulated;

#[cfg(test)]
use crate::math::quadrature::gauss_legendre_interval;

/// A radial basis `R_nl(r)`, orthonormal for each `l` with weight `r²`.
pub trait RadialBasis: Send + Sync {
    /// Number of radial functions for angular channel `l`.
    fn size(&self, l: usize) -> usize;
    /// Upper end of the support (`r_c` for monomials; a radius beyond which the GTOs are
    /// negligible, ~1e-20 relative, for GTOs).
    fn support(&self) -> f64;
    /// The shortest length over which the functions vary (a quadrature panel of about this
    /// width resolves them): `r0 / (max_radial + 1)` for GTOs, `r_c / (max_radial + 5)` for
    /// monomials.
    fn length_scale(&self) -> f64;
    /// Writes `R_nl(r)` for `n = 0..size(l)` into `out`.
    fn evaluate(&self, l: usize, r: f64, out: &mut [f64]);
}

/// Gram matrix `∫ r² R_nl R_n'l dr` of a basis by Gauss–Legendre quadrature (for tests),
/// row-major `size × size`.
#[cfg(test)]
pub fn gram_by_quadrature(basis: &dyn RadialBasis, l: usize, n_points: usize) -> Vec<f64> {
    let size = basis.size(l);
    let (xs, ws) = gauss_legendre_interval(n_points, 0.0, basis.support());
    let mut g = vec![0.0; size * size];
    let mut buf = vec![0.0; size];
    for (x, w) in xs.iter().zip(&ws) {
        basis.evaluate(l, *x, &mut buf);
        for a in 0..size {
            for b in 0..size {
                g[a * size + b] += w * x * x * buf[a] * buf[b];
            }
        }
    }
    g
}
