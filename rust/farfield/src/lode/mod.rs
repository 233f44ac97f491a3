//! LODE features (docs/science.md §2): the projection of the smeared 1/r^p potential of every
//! species on a local radial × spherical-harmonics basis around each atom.
//!
//! * periodic systems: the exact k-space sum of §2.3;
//! * non-periodic systems: the exact real-space projection of §2.5;
//! * values, dense position and strain gradients, and a backward pass (vector-Jacobian
//!   product) that never forms the dense gradient;
//! * large periodic cells: values and the backward pass on a B-spline mesh in O(N log N)
//!   ([`Method::Mesh`]).
//!
//! [`LodeExpansion`] is the calculator, built from [`LodeParameters`]; [`layout`] converts its
//! dense output to featomic's block layout.
//!
//! Layout: coefficients of centre `i`, neighbour species `a`, (l, m, n) are stored at
//! `values[(i * A + a) * F + (l² + l + m) * nr + n]` with F = (lmax+1)² · nr.

pub mod layout;
pub(crate) mod mesh;
mod mirror;
pub(crate) mod open;
mod pair_gradients;
pub(crate) mod periodic;
pub(crate) mod radial;
pub(crate) mod sph;

use crate::basis::tabulated::{KSpline, TabulatedBasis};
use crate::error::{Error, Result};
use crate::system::System;
pub use radial::BasisKind;
pub(crate) use radial::Density;
use std::f64::consts::PI;

/// Largest `max_angular` accepted.
pub const MAX_ANGULAR: usize = 20;
/// Largest `max_radial` accepted.
pub const MAX_RADIAL: usize = 30;

/// Hint of the k-space refusals: the parameters that set the number of k-vectors.
pub(crate) const KSPACE_HINT: &str = "raise smearing or lower k_cutoff (the default k_cutoff is \
    1.2π/smearing), or use a smaller cell";

/// Hint of the radial-table refusals: its knots grow as k_cutoff × radius.
const SPLINE_HINT: &str = "the table has about 20 × k_cutoff × radius knots: lower radius or \
    k_cutoff, or raise smearing (the default k_cutoff is 1.2π/smearing)";

/// Number of k-vectors of the half space inside the cutoff sphere (estimate from the volume).
pub(crate) fn kvector_estimate(k_cutoff: f64, volume: f64) -> f64 {
    k_cutoff.powi(3) * volume / (12.0 * PI * PI)
}

/// Hyper-parameters of a LODE spherical expansion (featomic names). Build them with
/// [`LodeParameters::new`] and set the optional fields (the struct is `#[non_exhaustive]`:
/// options may be added):
///
/// ```
/// use farfield::lode::{BasisKind, LodeParameters};
/// let mut parameters = LodeParameters::new(1.0, 1.0, 4, 5, 3.5);
/// parameters.basis = BasisKind::Monomial;
/// assert_eq!(parameters.center_atom_weight, 1.0);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LodeParameters {
    /// exponent p of the density g_p (0 = Gaussian, 1 = Coulomb, any real p > 0). Required.
    pub exponent: f64,
    /// Gaussian smearing σ (length, the standard deviation). Required.
    pub smearing: f64,
    /// largest l (inclusive), at most [`MAX_ANGULAR`]. Required.
    pub max_angular: usize,
    /// index of the last radial function (max_radial + 1 functions), at most
    /// [`MAX_RADIAL`]. Required.
    pub max_radial: usize,
    /// radius (length) of the radial basis (GTO r0 or monomial r_c). Required.
    pub radius: f64,
    /// radial basis. Default [`BasisKind::Gto`].
    pub basis: BasisKind,
    /// k-space cutoff (inverse length, strict <). Default `None`: 1.2π/σ.
    pub k_cutoff: Option<f64>,
    /// weight of the centre atom's own density. Default 1.
    pub center_atom_weight: f64,
    /// for p = 3, drop the divergent k = 0 term (featomic's behaviour) instead of failing.
    /// Default `false`.
    pub drop_divergent_k0: bool,
}

impl LodeParameters {
    /// The parameters with the required values and the defaults of the others (GTO basis,
    /// k_cutoff 1.2π/σ, centre weight 1, a divergent k = 0 term refused), as featomic's
    /// `LodeSphericalExpansion`. Validated by [`LodeExpansion::new`].
    pub fn new(
        exponent: f64,
        smearing: f64,
        max_angular: usize,
        max_radial: usize,
        radius: f64,
    ) -> LodeParameters {
        LodeParameters {
            exponent,
            smearing,
            max_angular,
            max_radial,
            radius,
            basis: BasisKind::Gto,
            k_cutoff: None,
            center_atom_weight: 1.0,
            drop_divergent_k0: false,
        }
    }
}

/// Which gradients to compute: the request of every feature calculator (∂c_i/∂H is derived
/// in the core from the position and strain gradients).
pub use crate::gradients::GradientRequest;

/// Dense LODE output for one system.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LodeOutput {
    /// number of atoms
    pub n_atoms: usize,
    /// neighbour species channels, in order
    pub species: Vec<i32>,
    /// values, (N, A, F)
    pub values: Vec<f64>,
    /// ∂c_i[type(j)]/∂r_j for j ≠ i: (N, N, 3, F) (zero for j = i)
    pub pair_gradients: Option<Vec<f64>>,
    /// ∂c_i/∂r_i: (N, 3, A, F)
    pub self_gradients: Option<Vec<f64>>,
    /// ∂c_i/∂ε_αβ: (N, 3, 3, A, F), ε on column vectors (r → (1 + ε) r, [`crate::strain`])
    pub strain_gradients: Option<Vec<f64>>,
    /// ∂c_i/∂H\[a\]\[b\] at fixed Cartesian positions, H rows = cell vectors: (N, 3, 3, A, F)
    /// (featomic's `"cell"`; zero for open systems)
    pub cell_gradients: Option<Vec<f64>>,
}

/// How periodic values are evaluated.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Method {
    /// the exact k-space sum (N × N_k)
    Exact,
    /// B-spline mesh and FFTs, O(N log N), to the given relative accuracy
    Mesh(f64),
    /// the cheaper of the two by predicted cost, the mesh reaching the given accuracy;
    /// dense gradients and non-periodic systems always use the exact path (the backward
    /// pass follows the values' choice)
    Auto(f64),
}

/// Result of the backward pass.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LodeBackward {
    /// dL/dr_j, (N, 3)
    pub positions: Vec<[f64; 3]>,
    /// dL/dε, (3, 3), ε on column vectors ([`crate::strain`])
    pub strain: [[f64; 3]; 3],
    /// dL/dH at fixed Cartesian positions (H rows = cell vectors), `None` for open systems;
    /// from the two above by [`crate::strain::backward_cell`]
    pub cell: Option<[[f64; 3]; 3]>,
}

/// A LODE spherical expansion calculator.
#[derive(Debug, Clone)]
pub struct LodeExpansion {
    params: LodeParameters,
    density: Density,
    k_cutoff: f64,
    kspace: std::sync::OnceLock<std::sync::Arc<(TabulatedBasis, KSpline)>>,
}

impl LodeExpansion {
    /// Validates the parameters.
    pub fn new(params: LodeParameters) -> Result<LodeExpansion> {
        let density = Density::new(params.exponent, params.smearing)?;
        let k_cutoff = params.k_cutoff.unwrap_or(1.2 * PI / params.smearing);
        if !(k_cutoff.is_finite() && k_cutoff > 0.0) {
            return Err(Error::parameter(
                "k_cutoff",
                format!("k_cutoff must be positive and finite, got {k_cutoff}"),
            ));
        }
        if !params.center_atom_weight.is_finite() {
            return Err(Error::parameter(
                "center_atom_weight",
                "center_atom_weight must be finite",
            ));
        }
        if !(params.radius.is_finite() && params.radius > 0.0) {
            return Err(Error::parameter(
                "radius",
                format!(
                    "the basis radius must be positive and finite, got {}",
                    params.radius
                ),
            ));
        }
        if params.max_angular > MAX_ANGULAR {
            return Err(Error::parameter(
                "max_angular",
                format!(
                    "max_angular must be at most {MAX_ANGULAR}, got {}",
                    params.max_angular
                ),
            ));
        }
        if params.max_radial > MAX_RADIAL {
            return Err(Error::parameter(
                "max_radial",
                format!(
                    "max_radial must be at most {MAX_RADIAL} (the radial basis cannot be \
                     orthonormalised accurately beyond), got {}",
                    params.max_radial
                ),
            ));
        }
        // the radial basis now, so that an unusable max_radial is refused at construction
        params
            .basis
            .build(params.max_radial, params.max_angular, params.radius)?;
        Ok(LodeExpansion {
            params,
            density,
            k_cutoff,
            kspace: std::sync::OnceLock::new(),
        })
    }

    /// The parameters.
    pub fn parameters(&self) -> &LodeParameters {
        &self.params
    }

    /// The k-space cutoff in use.
    pub fn k_cutoff(&self) -> f64 {
        self.k_cutoff
    }

    /// Number of (l, m, n) features per species channel.
    pub fn n_features(&self) -> usize {
        (self.params.max_angular + 1).pow(2) * (self.params.max_radial + 1)
    }

    fn species_index(&self, system: &System, species: &[i32]) -> Result<Vec<usize>> {
        system
            .numbers()
            .iter()
            .map(|z| {
                species.iter().position(|s| s == z).ok_or_else(|| {
                    Error::parameter(
                        "species",
                        format!("atomic number {z} of the system is not in the species list {species:?}"),
                    )
                })
            })
            .collect()
    }

    /// Computes the expansion of `system` for neighbour species channels `species`.
    pub fn compute(
        &self,
        system: &System,
        species: &[i32],
        gradients: GradientRequest,
    ) -> Result<LodeOutput> {
        let types = self.species_index(system, species)?;
        if system.is_empty() {
            return Ok(self.empty_output(species, gradients));
        }
        self.check_output_memory(system.len(), species.len(), gradients)?;
        // the cell gradient of a periodic system needs the position and strain gradients
        let cell_from_dense = gradients.cell && system.cell().is_some();
        let inner = GradientRequest {
            positions: gradients.positions || cell_from_dense,
            strain: gradients.strain || cell_from_dense,
            cell: false,
        };
        let mut out = if system.cell().is_some() {
            periodic::compute(self, system, species, &types, inner)?
        } else {
            open::compute(self, system, species, &types, inner)?
        };
        if gradients.cell {
            let n = system.len() * 9 * species.len() * self.n_features();
            out.cell_gradients = Some(match system.cell() {
                Some(cell) => self.dense_cell_gradients(system, cell, &types, &out),
                None => vec![0.0; n],
            });
        }
        if !gradients.positions {
            out.pair_gradients = None;
            out.self_gradients = None;
        }
        if !gradients.strain {
            out.strain_gradients = None;
        }
        Ok(out)
    }

    /// ∂c_i/∂H at fixed Cartesian positions from the dense position and strain gradients,
    /// `H⁻ᵀ (∂c_i/∂ε − Σ_j ∂c_i/∂r_j ⊗ r_j)ᵀ` per feature ([`crate::strain::cell_gradients`]).
    fn dense_cell_gradients(
        &self,
        system: &System,
        cell: &crate::system::Cell,
        types: &[usize],
        out: &LodeOutput,
    ) -> Vec<f64> {
        use rayon::prelude::*;
        let n = system.len();
        let f = self.n_features();
        let na = out.species.len();
        let block = 9 * na * f;
        let pair = out
            .pair_gradients
            .as_deref()
            .expect("pair gradients computed");
        let own = out
            .self_gradients
            .as_deref()
            .expect("self gradients computed");
        let strain = out
            .strain_gradients
            .as_deref()
            .expect("strain gradients computed");
        let positions = system.positions();
        let mut cell_out = vec![0.0; n * block];
        cell_out
            .par_chunks_mut(block)
            .enumerate()
            .for_each(|(i, dst)| {
                // moment [αβ][a][x] = Σ_j ∂c_i[a][x]/∂r_jα r_jβ
                let mut moment = vec![0.0; block];
                for al in 0..3 {
                    for be in 0..3 {
                        let m = &mut moment[(al * 3 + be) * na * f..(al * 3 + be + 1) * na * f];
                        let ri = positions[i][be];
                        let src = &own[(i * 3 + al) * na * f..(i * 3 + al + 1) * na * f];
                        for (d, v) in m.iter_mut().zip(src) {
                            *d += v * ri;
                        }
                        for j in (0..n).filter(|&j| j != i) {
                            let rj = positions[j][be];
                            let a = types[j];
                            let src =
                                &pair[((i * n + j) * 3 + al) * f..((i * n + j) * 3 + al + 1) * f];
                            for (d, v) in m[a * f..(a + 1) * f].iter_mut().zip(src) {
                                *d += v * rj;
                            }
                        }
                    }
                }
                let st = &strain[i * block..(i + 1) * block];
                dst.copy_from_slice(&crate::strain::cell_gradients(cell, st, &moment, na * f));
            });
        cell_out
    }

    /// The (empty) output of a system without atoms.
    fn empty_output(&self, species: &[i32], gradients: GradientRequest) -> LodeOutput {
        LodeOutput {
            n_atoms: 0,
            species: species.to_vec(),
            values: Vec::new(),
            pair_gradients: gradients.positions.then(Vec::new),
            self_gradients: gradients.positions.then(Vec::new),
            strain_gradients: gradients.strain.then(Vec::new),
            cell_gradients: gradients.cell.then(Vec::new),
        }
    }

    /// Refuses dense outputs (values and requested gradients) larger than the memory limit.
    fn check_output_memory(&self, n: usize, na: usize, gradients: GradientRequest) -> Result<()> {
        let (n, na, f) = (n as f64, na as f64, self.n_features() as f64);
        let mut entries = n * na * f;
        if gradients.positions || gradients.cell {
            entries += n * n * 3.0 * f + n * 3.0 * na * f;
        }
        if gradients.strain || gradients.cell {
            entries += 2.0 * n * 9.0 * na * f;
        }
        if gradients.cell {
            entries += n * 9.0 * na * f;
        }
        crate::limits::check_memory(
            "the LODE features and their dense gradients",
            8.0 * entries,
            "the dense 'positions' gradients take N² × 3 × (max_angular+1)² × (max_radial+1) \
             values: request fewer gradients (backward() gives the vector-Jacobian product \
             without them), lower max_angular or max_radial, or use a smaller system",
        )
    }

    /// The mesh parameters when `method` evaluates the periodic values of `system` on the
    /// mesh (always for `Mesh`, by predicted cost for `Auto`), `None` for the exact path.
    fn mesh_choice(
        &self,
        system: &System,
        species: &[i32],
        gradients: GradientRequest,
        method: Method,
    ) -> Result<Option<mesh::MeshParameters>> {
        Ok(match method {
            Method::Exact => None,
            Method::Mesh(acc) => {
                if gradients.positions || gradients.strain || gradients.cell {
                    return Err(Error::parameter(
                        "method",
                        "dense gradients (positions, strain, cell) are N² by nature and not available \
                         with the mesh method, which computes values only; use method='exact' \
                         (or 'auto') for them, or backward() for the vector-Jacobian product \
                         on the mesh in O(N log N)",
                    ));
                }
                if system.cell().is_none() {
                    return Err(Error::parameter(
                        "method",
                        "the mesh method needs a periodic system",
                    ));
                }
                Some(mesh::MeshParameters::for_accuracy(acc)?)
            }
            Method::Auto(acc) => {
                let mp = mesh::MeshParameters::for_accuracy(acc)?;
                match system.cell() {
                    Some(cell) if !(gradients.positions || gradients.strain || gradients.cell) => {
                        let grid = mesh::grid(cell, self.k_cutoff, &mp);
                        let kc = self.k_cutoff;
                        let n_k = 4.0 / 3.0 * PI * kc.powi(3) * cell.volume() / (16.0 * PI.powi(3));
                        let channels = species.len() * self.n_features();
                        let exact = mesh::exact_cost(system.len(), channels, n_k as usize);
                        let meshc = mesh::mesh_cost(system.len(), channels, grid, mp.order);
                        // the mesh only when clearly cheaper: the exact path is exact
                        (2.0 * meshc < exact).then_some(mp)
                    }
                    _ => None,
                }
            }
        })
    }

    /// Like [`LodeExpansion::compute`], choosing the evaluation method; returns the output
    /// and whether the mesh was used.
    pub fn compute_with(
        &self,
        system: &System,
        species: &[i32],
        gradients: GradientRequest,
        method: Method,
    ) -> Result<(LodeOutput, bool)> {
        match self.mesh_choice(system, species, gradients, method)? {
            Some(mp) => {
                let types = self.species_index(system, species)?;
                if system.is_empty() {
                    return Ok((self.empty_output(species, gradients), true));
                }
                self.check_output_memory(system.len(), species.len(), gradients)?;
                Ok((mesh::compute(self, system, species, &types, mp)?, true))
            }
            None => Ok((self.compute(system, species, gradients)?, false)),
        }
    }

    /// Backward pass: given dL/dc (same layout as `values`), returns dL/dr and dL/dε
    /// without forming the dense gradients (exact formulas).
    pub fn backward(
        &self,
        system: &System,
        species: &[i32],
        grad_values: &[f64],
    ) -> Result<LodeBackward> {
        Ok(self
            .backward_with(system, species, grad_values, Method::Exact)?
            .0)
    }

    /// Like [`LodeExpansion::backward`], choosing the method as [`LodeExpansion::compute_with`]
    /// does for the values (the mesh backward is the exact derivative of the mesh values,
    /// O(N log N)); returns the result and whether the mesh was used.
    pub fn backward_with(
        &self,
        system: &System,
        species: &[i32],
        grad_values: &[f64],
        method: Method,
    ) -> Result<(LodeBackward, bool)> {
        let types = self.species_index(system, species)?;
        let expected = system.len() * species.len() * self.n_features();
        if grad_values.len() != expected {
            return Err(Error::shape(
                "dL/dfeatures",
                format!("{expected} entries"),
                format!("{}", grad_values.len()),
            ));
        }
        crate::error::check_finite("dL/dfeatures", grad_values)?;
        let choice = self.mesh_choice(system, species, GradientRequest::default(), method)?;
        if system.is_empty() {
            let back = LodeBackward {
                positions: Vec::new(),
                strain: [[0.0; 3]; 3],
                cell: system.cell().map(|_| [[0.0; 3]; 3]),
            };
            return Ok((back, choice.is_some()));
        }
        let (mut back, used_mesh) = match (choice, system.cell().is_some()) {
            (Some(mp), _) => (
                mesh::backward(self, system, species, &types, grad_values, mp)?,
                true,
            ),
            (None, true) => (
                periodic::backward(self, system, species, &types, grad_values)?,
                false,
            ),
            (None, false) => (
                open::backward(self, system, species, &types, grad_values)?,
                false,
            ),
        };
        back.cell = crate::strain::backward_cell(
            system.cell(),
            system.positions(),
            &back.positions,
            &back.strain,
        );
        Ok((back, used_mesh))
    }

    /// The radial basis tabulated finely enough for the density's width and wave numbers up
    /// to `k_max`.
    pub(crate) fn basis(&self, k_max: f64) -> Result<TabulatedBasis> {
        let p = &self.params;
        let basis = p.basis.build(p.max_radial, p.max_angular, p.radius)?;
        TabulatedBasis::new(
            basis.as_ref(),
            p.max_angular,
            p.smearing.min(PI / k_max.max(1e-300)),
        )
    }

    /// Error for exponent 3, where the k = 0 term of every charged species channel of a
    /// periodic sum diverges, unless `drop_divergent_k0` asks to drop it (as featomic does).
    pub(crate) fn check_k0(&self) -> Result<()> {
        if (self.params.exponent - 3.0).abs() < 1e-12 && !self.params.drop_divergent_k0 {
            return Err(Error::Divergent(
                "exponent 3: the k = 0 term of every (charged) species channel diverges \
                 logarithmically; pass drop_divergent_k0=True to drop it as featomic does"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The radial basis and the spline of its k-space integrals on [0, k_cutoff] (built
    /// once per calculator).
    pub(crate) fn kspace_tables(&self) -> Result<std::sync::Arc<(TabulatedBasis, KSpline)>> {
        if let Some(t) = self.kspace.get() {
            return Ok(t.clone());
        }
        let basis = self.basis(self.k_cutoff)?;
        let h = (self.k_cutoff / 64.0).min(0.05 / self.params.radius);
        let knots = KSpline::intervals(self.k_cutoff, h) as f64 + 1.0;
        crate::limits::check_memory(
            "the LODE radial integral table (spline in k)",
            knots * ((self.params.max_angular + 1) * (self.params.max_radial + 1)) as f64 * 24.0,
            SPLINE_HINT,
        )?;
        crate::limits::check_terms(
            "the LODE radial integral table (spline in k: knots × radial quadrature nodes)",
            KSpline::cost(&basis, self.k_cutoff, h),
            SPLINE_HINT,
        )?;
        let spline = KSpline::new(&basis, self.k_cutoff, h)?;
        let t = std::sync::Arc::new((basis, spline));
        let _ = self.kspace.set(t.clone());
        Ok(t)
    }

    pub(crate) fn density(&self) -> &Density {
        &self.density
    }
}

/// (−1)^… sign of Re[i^l e^{iθ}] = s_l · (cos θ for even l, sin θ for odd l).
#[inline]
pub(crate) fn parity_sign(l: usize) -> f64 {
    if l.is_multiple_of(2) {
        if (l / 2).is_multiple_of(2) {
            1.0
        } else {
            -1.0
        }
    } else if l.div_ceil(2).is_multiple_of(2) {
        1.0
    } else {
        -1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calculator() -> LodeExpansion {
        LodeExpansion::new(LodeParameters {
            exponent: 1.0,
            smearing: 0.7,
            max_angular: 1,
            max_radial: 1,
            radius: 2.0,
            basis: BasisKind::Gto,
            k_cutoff: None,
            center_atom_weight: 0.5,
            drop_divergent_k0: false,
        })
        .unwrap()
    }

    const CELL: [[f64; 3]; 3] = [[3.4, 0.2, -0.1], [0.5, 3.1, 0.3], [-0.4, 0.6, 3.6]];

    fn system(cell: [[f64; 3]; 3]) -> System {
        let positions = vec![[0.1, 0.2, 0.3], [1.4, 0.9, 0.2], [0.6, 2.1, 1.7]];
        System::new(positions, vec![1, 8, 1], Some(cell)).unwrap()
    }

    /// The dense cell gradient (core, from the position and strain gradients) against finite
    /// differences of the values in the cell at fixed Cartesian positions, and the backward
    /// pass's dL/dH against the dense cell gradient contracted with dL/dc.
    #[test]
    fn cell_gradients_match_finite_differences_and_backward() {
        let calc = calculator();
        let species = [1, 8];
        let req = GradientRequest {
            cell: true,
            ..Default::default()
        };
        let out = calc.compute(&system(CELL), &species, req).unwrap();
        assert!(out.pair_gradients.is_none() && out.strain_gradients.is_none());
        let cell = out.cell_gradients.as_ref().unwrap();
        let per = species.len() * calc.n_features();
        let h = 1e-5;
        let scale = out.values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for a in 0..3 {
            for b in 0..3 {
                let (mut hp, mut hm) = (CELL, CELL);
                hp[a][b] += h;
                hm[a][b] -= h;
                let vp = calc
                    .compute(&system(hp), &species, Default::default())
                    .unwrap();
                let vm = calc
                    .compute(&system(hm), &species, Default::default())
                    .unwrap();
                for i in 0..3 {
                    for x in 0..per {
                        let fd = (vp.values[i * per + x] - vm.values[i * per + x]) / (2.0 * h);
                        let got = cell[(i * 9 + a * 3 + b) * per + x];
                        assert!(
                            (fd - got).abs() < 1e-6 * scale,
                            "{i} {a} {b} {x}: {fd} {got}"
                        );
                    }
                }
            }
        }
        let g: Vec<f64> = (0..out.values.len())
            .map(|k| (k as f64 * 0.37).sin())
            .collect();
        let back = calc.backward(&system(CELL), &species, &g).unwrap();
        let dcell = back.cell.unwrap();
        for a in 0..3 {
            for b in 0..3 {
                let want: f64 = (0..3)
                    .flat_map(|i| (0..per).map(move |x| (i, x)))
                    .map(|(i, x)| g[i * per + x] * cell[(i * 9 + a * 3 + b) * per + x])
                    .sum();
                assert!(
                    (want - dcell[a][b]).abs() < 1e-9 * (1.0 + want.abs()),
                    "{a} {b}"
                );
            }
        }
        // open systems: zero cell gradients, no dL/dH
        let open = System::new(vec![[0.0; 3], [1.1, 0.2, 0.0]], vec![1, 8], None).unwrap();
        let out = calc.compute(&open, &species, req).unwrap();
        assert!(out.cell_gradients.unwrap().iter().all(|&v| v == 0.0));
        let g = vec![1.0; 2 * per];
        assert!(calc.backward(&open, &species, &g).unwrap().cell.is_none());
    }
}
