//! Charge equilibration (QEq) with Gaussian charges, for molecules and periodic cells.
//!
//! # Energy and matrix
//!
//! Atom i carries a Gaussian charge of width σ_i, hardness J_i > 0 and electronegativity χ_i.
//! With γ_ij = √(σ_i² + σ_j²) and k_e the `prefactor` (1 = Gaussian units, 14.399645… for eV·Å):
//!
//! E(q) = χᵀq + ½ qᵀAq,   A = diag(J) + k_e C,
//!
//! where C is the Coulomb matrix of unit Gaussian charges (`qeq/operator.rs`): C_ij =
//! erf(r_ij/(√2γ_ij))/r_ij, C_ii = 1/(σ_i√π) for open systems, and its Ewald form with the
//! background term −(2π/V)(η² − γ_ij²) for periodic ones (independent of the Ewald width η for
//! neutral and charged cells). The prefactor multiplies every electrostatic term, including the
//! Gaussian self energy 1/(σ_i√π); it does not multiply J or χ.
//!
//! # Constraints and chemical potential
//!
//! q minimises E subject to Σ_{i∈f} q_i = Q_f for every fragment f (one fragment holding all
//! atoms by default, Q = total charge): A q + Cᵀλ = −χ. The reported `chemical_potential[f]`
//! is μ_f = ∂E/∂q_i = (Aq + χ)_i for any i in f, i.e. **μ = −λ**.
//!
//! # Derivatives
//!
//! * Forces at fixed χ (Hellmann–Feynman): F_i = −½ ∂(qᵀAq)/∂r_i at fixed q (exact total
//!   derivative of E(q*) because ∂E/∂q_i = μ_f is constant on each fragment and Σ_f dq = 0).
//!   Virial ∂E/∂ε = ½ qᵀ(∂A/∂ε)q, stress = virial / V.
//! * Vector–Jacobian products ([`qeq_vjp`]): given ḡ_q = ∂L/∂q and ḡ_E = ∂L/∂E, one adjoint
//!   solve with the same matrix, A ν + Cᵀκ = ḡ_q, C ν = 0, gives, with p = ½ ḡ_E q − ν:
//!   - ∂L/∂χ = ḡ_E q − ν,
//!   - ∂L/∂J_i = p_i q_i,
//!   - ∂L/∂θ = Σ_ij p_i q_j ∂A_ij/∂θ for θ ∈ {σ_i, r_i, ε} (computed by
//!     `Operator::bilinear_gradient` in `qeq/operator.rs`),
//!   - ∂L/∂cell = h^{-T}((∂L/∂ε)ᵀ − Rᵀ ∂L/∂R) at fixed Cartesian positions (rows of h are
//!     the cell vectors; ∂L/∂ε in the column-vector convention r → (1+ε) r, h → h(1+ε)ᵀ).
//!
//!   Proof sketch: dq = −P(dχ + dA q) with P the (symmetric) top-left block of the bordered
//!   inverse, and dE = qᵀdχ + ½ qᵀ dA q by the envelope theorem.

#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub(crate) mod operator;
pub(crate) mod precond;
pub(crate) mod solve;

use rayon::prelude::*;

use crate::error::{check_finite, Error, Result};
use crate::math::linalg::{inverse3, Mat3, Vec3};
use crate::system::System;
use crate::{interrupt, limits};

#[cfg(test)]
use operator::pme_parameters_for;
pub(crate) use operator::{EwaldSettings, Operator};
pub(crate) use solve::{Constraints, Preconditioner};

/// Which linear solver to use (default: [`Solver::Auto`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Solver {
    /// Periodic systems dense up to [`QEqOptions::dense_limit`] atoms and the conjugate
    /// gradient above (always with [`KSpace::Pme`]); open systems the cheapest by a cost rule
    /// (estimated one-core seconds of pair terms, factorisation and matrix reads) of dense (up
    /// to `dense_limit` atoms), CG on the stored matrix (when N² fits the memory limit) and
    /// matrix-free CG. [`SolverStats`] reports the choice.
    #[default]
    Auto,
    /// Dense Cholesky factorisation (faer) with a Schur complement (O(N²) memory, O(N³) time).
    Dense,
    /// Projected preconditioned conjugate gradient: on the stored N² matrix for open systems
    /// when it fits the memory limit (products are matrix–vector products), matrix-free
    /// otherwise (O(N) memory).
    ConjugateGradient,
}

/// Options of a QEq solve. Start from [`QEqOptions::default`] and set the fields to change
/// (the struct is `#[non_exhaustive]`: options may be added):
///
/// ```
/// let mut options = farfield::qeq::QEqOptions::default();
/// options.prefactor = 14.399645478425667; // eV·Å/e²
/// assert_eq!(options.tolerance, 1e-10);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct QEqOptions {
    /// Solver choice. Default [`Solver::Auto`].
    pub solver: Solver,
    /// Convergence threshold on the RMS over atoms of (Aq + χ)_i − μ_f (same units as χ);
    /// the CG stops below it, the dense solve reports it. Default 1e-10.
    pub tolerance: f64,
    /// Maximum number of CG iterations. Default 2000.
    pub max_iterations: usize,
    /// Coulomb prefactor k_e (1: Gaussian units; 14.399645… for eV, Å and e). Default 1.
    pub prefactor: f64,
    /// Gaussian smearing η (length) of the Ewald range split for periodic systems (the
    /// standard deviation, as `smearing` everywhere). Default `None`: chosen from the volume
    /// and atom count.
    pub smearing: Option<f64>,
    /// Relative truncation of the Ewald sums (≈ e^{−x²}: r_c = x·max(η, √2 max σ),
    /// k_c = x/η with x = √(−2 ln ewald_truncation)); not an error target like the
    /// `accuracy` of the Coulomb sums. Default 1e-10.
    pub ewald_truncation: f64,
    /// `Solver::Auto` considers the dense solver up to this many atoms (periodic: uses it;
    /// open: when the cost rule of [`Solver::Auto`] prefers it). Default 1500.
    pub dense_limit: usize,
    /// How the k-space part of periodic products and gradients is evaluated. Default
    /// [`KSpace::Auto`].
    pub kspace: KSpace,
    /// Preconditioner of the conjugate gradient. Default [`PreconditionerKind::Auto`].
    pub preconditioner: PreconditionerKind,
}

/// Preconditioner of the conjugate-gradient solver (default: [`PreconditionerKind::Auto`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PreconditionerKind {
    /// Fourier for periodic systems, Jacobi for open ones.
    #[default]
    Auto,
    /// Diagonal (Jacobi): iterations grow with the box side.
    Jacobi,
    /// Coarse-mesh Fourier preconditioner (`qeq/precond.rs`) for periodic systems (refused for open
    /// ones): iterations independent of N. An explicit preconditioner is refused with
    /// [`Solver::Dense`].
    Fourier,
}

/// k-space method of the periodic QEq operator (products, energy, forces, stress; default:
/// [`KSpace::Auto`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KSpace {
    /// PME above [`PME_MIN_ATOMS`] atoms when the CG solver is used, explicit Ewald otherwise
    /// (the dense solver always builds its matrix with the explicit Ewald sum).
    #[default]
    Auto,
    /// Explicit Ewald sum over k-vectors (O(N·N_k) per product).
    Ewald,
    /// Smooth PME with the Ewald width η as smearing, mesh chosen for the accuracy (CG only:
    /// refused with [`Solver::Dense`] and on open systems; O(N) memory: no k-vector or phase
    /// tables are stored).
    Pme,
}

/// `KSpace::Auto` switches to PME above this many atoms.
pub const PME_MIN_ATOMS: usize = 2000;

impl Default for QEqOptions {
    fn default() -> Self {
        QEqOptions {
            solver: Solver::Auto,
            tolerance: 1e-10,
            max_iterations: 2000,
            prefactor: 1.0,
            smearing: None,
            ewald_truncation: 1e-10,
            dense_limit: 1500,
            kspace: KSpace::Auto,
            preconditioner: PreconditionerKind::Auto,
        }
    }
}

/// Per-atom parameters and constraints of one QEq problem. Build it with
/// [`QEqProblem::new`] and set the optional fields (the struct is `#[non_exhaustive]`):
///
/// ```
/// let mut problem = farfield::qeq::QEqProblem::new(vec![-1.0, 1.5], vec![6.0, 5.0], vec![0.8, 1.0]);
/// problem.total_charge = 1.0;
/// assert!(problem.fragments.is_none());
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct QEqProblem {
    /// χ_i (energy per charge, the units of the result's energy). Required.
    pub electronegativity: Vec<f64>,
    /// J_i > 0 (energy per charge²). Required.
    pub hardness: Vec<f64>,
    /// σ_i > 0 (length), the Gaussian width of each charge. Required.
    pub sigma: Vec<f64>,
    /// Total charge (the single constraint when no fragments are given; ignored otherwise).
    /// Default 0.
    pub total_charge: f64,
    /// Optional fragment index per atom (0..m); then `fragment_charges` gives each charge.
    /// Default `None` (one fragment holding every atom).
    pub fragments: Option<Vec<usize>>,
    /// Charge of every fragment. Default `None`.
    pub fragment_charges: Option<Vec<f64>>,
    /// Warm start for the iterative solver. Default `None` (zero charges, shifted onto the
    /// constraints).
    pub initial_charges: Option<Vec<f64>>,
}

impl QEqProblem {
    /// A neutral problem (total charge 0, no fragments, no warm start) with these per-atom
    /// electronegativities χ, hardnesses J and Gaussian widths σ.
    pub fn new(electronegativity: Vec<f64>, hardness: Vec<f64>, sigma: Vec<f64>) -> QEqProblem {
        QEqProblem {
            electronegativity,
            hardness,
            sigma,
            ..QEqProblem::default()
        }
    }
}

/// Solver statistics.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SolverStats {
    /// "dense" or "cg".
    pub solver: &'static str,
    /// "factorised" (dense), "stored" (CG on the stored N² matrix) or "matrix-free" (CG).
    pub matrix: &'static str,
    /// "cholesky" (dense), "jacobi" or "fourier" (CG); "fourier+jacobi" when the Fourier
    /// preconditioner lost definiteness and the CG continued with Jacobi.
    pub preconditioner: &'static str,
    /// CG iterations (0 for dense).
    pub iterations: usize,
    /// RMS of (Aq + χ)_i − μ_f at the solution.
    pub residual: f64,
    /// Ewald smearing η used (periodic only).
    pub smearing: Option<f64>,
    /// Real-space cutoff (periodic only).
    pub cutoff: Option<f64>,
    /// Reciprocal-space cutoff (periodic only; with PME the explicit sum it replaces).
    pub k_cutoff: Option<f64>,
    /// PME mesh points along the three cell vectors (k-space by PME only).
    pub mesh: Option<[usize; 3]>,
    /// PME B-spline order (k-space by PME only).
    pub order: Option<usize>,
    /// Number of k-vectors (half space; 0 for open systems).
    pub n_kvectors: usize,
    /// The convergence threshold asked for (the CG stops when `residual` is below it).
    pub tolerance: f64,
    /// k-space method of the periodic operator: "ewald", "pme" or "none" (open system).
    pub kspace: &'static str,
}

/// Result of a QEq solve.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct QEqResult {
    /// Equilibrated charges.
    pub charges: Vec<f64>,
    /// μ_f = ∂E/∂q_i (= −λ_f) per fragment.
    pub chemical_potential: Vec<f64>,
    /// E = χᵀq + ½qᵀAq.
    pub energy: f64,
    /// −dE/dr_i at fixed χ.
    pub forces: Vec<Vec3>,
    /// W = ∂E/∂ε, the derivative with respect to a homogeneous strain of positions and cell
    /// (periodic only; the sign of the core's `Output::virial`, the opposite of the
    /// mechanical virial Σ r⊗F = −W the Python results report). The stress is W / V (see
    /// [`QEqResult::stress`]).
    pub virial: Option<Mat3>,
    /// Cell volume V (periodic only).
    pub volume: Option<f64>,
    /// Solver statistics.
    pub stats: SolverStats,
}

impl QEqResult {
    /// Stress σ = (1/V) ∂E/∂ε = virial / V (ASE convention, periodic only).
    pub fn stress(&self) -> Option<Mat3> {
        match (self.virial, self.volume) {
            (Some(w), Some(v)) => Some(w.map(|row| row.map(|x| x / v))),
            _ => None,
        }
    }
}

/// Vector–Jacobian products of a QEq solve.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct QEqGradients {
    /// ∂L/∂χ.
    pub electronegativity: Vec<f64>,
    /// ∂L/∂J.
    pub hardness: Vec<f64>,
    /// ∂L/∂σ.
    pub sigma: Vec<f64>,
    /// ∂L/∂r.
    pub positions: Vec<Vec3>,
    /// ∂L/∂ε (periodic only) in the column-vector convention: positions r → (1+ε) r and
    /// cell rows h → h(1+ε)ᵀ together, entry \[a\]\[b\] = ∂L/∂ε_ab. (Symmetric here: A depends
    /// on distances and the volume only.)
    pub strain: Option<Mat3>,
    /// ∂L/∂h, h the cell matrix with rows as vectors, positions held fixed (periodic only).
    pub cell: Option<Mat3>,
}

/// Refuses option combinations that cannot be honoured (instead of quietly running something
/// else).
fn check_choices(system: &System, options: &QEqOptions) -> Result<()> {
    let periodic = system.cell().is_some();
    if options.kspace == KSpace::Pme {
        if !periodic {
            return Err(Error::parameter(
                "kspace",
                "kspace='pme' needs a periodic system (an open system has no k-space sum); \
                 use kspace='auto'",
            ));
        }
        if options.solver == Solver::Dense {
            return Err(Error::parameter(
                "kspace",
                "kspace='pme' needs the conjugate-gradient solver (solver='cg' or 'auto'): \
                 solver='dense' builds its matrix with the explicit Ewald sum (use \
                 kspace='ewald' or 'auto' with it)",
            ));
        }
    }
    if options.preconditioner == PreconditionerKind::Fourier && !periodic {
        return Err(Error::parameter(
            "preconditioner",
            "preconditioner='fourier' needs a periodic system; open systems use 'jacobi' \
             (or 'auto')",
        ));
    }
    if options.preconditioner != PreconditionerKind::Auto && options.solver == Solver::Dense {
        return Err(Error::parameter(
            "preconditioner",
            "a preconditioner applies to the conjugate-gradient solver only; solver='dense' \
             factorises the matrix (use preconditioner='auto' with it)",
        ));
    }
    Ok(())
}

fn validate(system: &System, problem: &QEqProblem, options: &QEqOptions) -> Result<Constraints> {
    let n = system.len();
    check_choices(system, options)?;
    for (name, v) in [
        ("electronegativity", &problem.electronegativity),
        ("hardness", &problem.hardness),
        ("sigma", &problem.sigma),
    ] {
        crate::system::check_per_atom(name, v.len(), system)?;
        check_finite(name, v)?;
    }
    if let Some(i) = problem.hardness.iter().position(|&j| j <= 0.0) {
        return Err(Error::parameter(
            "hardness",
            format!("must be > 0 (atom {i} has {})", problem.hardness[i]),
        ));
    }
    if let Some(i) = problem.sigma.iter().position(|&s| s <= 0.0) {
        return Err(Error::parameter(
            "sigma",
            format!("must be > 0 (atom {i} has {})", problem.sigma[i]),
        ));
    }
    check_finite("total_charge", &[problem.total_charge])?;
    if !(options.prefactor.is_finite() && options.prefactor > 0.0) {
        return Err(Error::parameter("prefactor", "must be finite and > 0"));
    }
    if !(options.tolerance.is_finite() && options.tolerance > 0.0) {
        return Err(Error::parameter("tolerance", "must be finite and > 0"));
    }
    if !(options.ewald_truncation > 0.0 && options.ewald_truncation < 1.0) {
        return Err(Error::parameter("ewald_truncation", "must be in (0, 1)"));
    }
    if let Some(eta) = options.smearing {
        if !(eta.is_finite() && eta > 0.0) {
            return Err(Error::parameter("smearing", "must be finite and > 0"));
        }
    }
    if let Some(q0) = &problem.initial_charges {
        crate::system::check_per_atom("initial_charges", q0.len(), system)?;
        check_finite("initial_charges", q0)?;
    }
    let cons = match (&problem.fragments, &problem.fragment_charges) {
        (None, None) => {
            if n == 0 && problem.total_charge != 0.0 {
                return Err(Error::parameter(
                    "total_charge",
                    "a system with no atoms cannot carry a charge",
                ));
            }
            Constraints {
                fragment: vec![0; n],
                counts: vec![n],
                charges: vec![problem.total_charge],
            }
        }
        (Some(frag), Some(charges)) => {
            crate::system::check_per_atom("fragments", frag.len(), system)?;
            check_finite("fragment_charges", charges)?;
            let m = charges.len();
            let mut counts = vec![0usize; m];
            for (i, &f) in frag.iter().enumerate() {
                if f >= m {
                    return Err(Error::parameter(
                        "fragments",
                        format!(
                            "atom {i} is in fragment {f} but only {m} fragment charges are given"
                        ),
                    ));
                }
                counts[f] += 1;
            }
            if let Some(f) = counts.iter().position(|&c| c == 0) {
                return Err(Error::parameter(
                    "fragments",
                    format!("fragment {f} has no atoms, its charge constraint cannot hold"),
                ));
            }
            Constraints {
                fragment: frag.clone(),
                counts,
                charges: charges.clone(),
            }
        }
        _ => {
            return Err(Error::parameter(
                "fragments",
                "fragments and fragment_charges must be given together",
            ))
        }
    };
    if n == 0 {
        // (a charged empty system is refused above, naming total_charge)
        return Err(Error::parameter(
            "atoms",
            "the system has no atoms: QEq needs at least one atom",
        ));
    }
    Ok(cons)
}

/// How the linear system is solved ([`method`] chooses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    /// Dense Cholesky factorisation (faer) of the stored matrix.
    Dense,
    /// Conjugate gradient on the stored dense matrix (products are faer matrix–vector
    /// products; open systems).
    StoredCg,
    /// Matrix-free conjugate gradient (pair sums, Ewald or PME products).
    MatrixFreeCg,
}

/// Estimated seconds of one core per pair term of the open-system matrix (a square root, a
/// division and an erf).
const COST_PAIR: f64 = 12e-9;
/// Estimated seconds of one core per multiply-add of the dense Cholesky factorisation (faer).
const COST_FLOP: f64 = 0.12e-9;
/// Estimated seconds of one core per stored matrix entry read by a matrix–vector product
/// (memory bound: 8 bytes).
const COST_STREAM: f64 = 0.6e-9;
/// CG iterations assumed by the open-system cost rule (Jacobi-preconditioned; 40 to 80 are
/// typical for molecules and clusters of 10³ to 10⁴ atoms).
const EXPECTED_OPEN_ITERATIONS: f64 = 60.0;

/// Whether the stored dense matrix of an open system (8N² bytes) fits the memory limit.
fn stored_fits(n: usize) -> bool {
    8.0 * (n as f64).powi(2) <= limits::memory_limit()
}

/// Estimated one-core seconds of each method for an open system of `n` atoms and `solves`
/// right-hand sides (1 for [`qeq`], 2 for [`qeq_vjp`]: the forward and the adjoint solve):
///
/// * dense: N²/2 pair terms + N³/3 multiply-adds + 2N² per solve;
/// * stored CG: N²/2 pair terms + (K + 2) N² entries read per solve;
/// * matrix-free CG: (K + 2) N² pair terms per solve;
///
/// with K = `EXPECTED_OPEN_ITERATIONS` and the per-term costs `COST_PAIR`,
/// `COST_FLOP`, `COST_STREAM` measured on a 2-core x86-64 machine.
pub(crate) fn open_costs(n: usize, solves: usize) -> [(Method, f64); 3] {
    let n = n as f64;
    let s = solves as f64;
    let k = EXPECTED_OPEN_ITERATIONS + 2.0;
    let build = 0.5 * n * n * COST_PAIR;
    [
        (
            Method::Dense,
            build + n * n * n / 3.0 * COST_FLOP + s * 2.0 * n * n * COST_STREAM,
        ),
        (Method::StoredCg, build + s * k * n * n * COST_STREAM),
        (Method::MatrixFreeCg, s * k * n * n * COST_PAIR),
    ]
}

/// The solution method.
///
/// * `Solver::Dense`: dense.
/// * `Solver::ConjugateGradient`: on an open system, the CG on the stored matrix when its 8N²
///   bytes fit the memory limit ([`crate::limits`]), else matrix-free; periodic systems are
///   always matrix-free (Ewald or PME products).
/// * `Solver::Auto`, periodic: dense up to `dense_limit` atoms (unless `kspace='pme'`),
///   matrix-free CG above. Open: the cheapest of [`open_costs`] among the methods allowed
///   (dense up to `dense_limit` atoms, stored CG when it fits the memory limit, matrix-free
///   CG always).
pub(crate) fn method(system: &System, options: &QEqOptions, solves: usize) -> Method {
    let n = system.len();
    let periodic = system.cell().is_some();
    match options.solver {
        Solver::Dense => Method::Dense,
        Solver::ConjugateGradient if !periodic && stored_fits(n) => Method::StoredCg,
        Solver::ConjugateGradient => Method::MatrixFreeCg,
        // an explicit kspace='pme' is honoured: only the CG uses it
        Solver::Auto if periodic && options.kspace == KSpace::Pme => Method::MatrixFreeCg,
        Solver::Auto if periodic => {
            if n <= options.dense_limit {
                Method::Dense
            } else {
                Method::MatrixFreeCg
            }
        }
        Solver::Auto => open_costs(n, solves)
            .into_iter()
            .filter(|(m, _)| match m {
                Method::Dense => n <= options.dense_limit,
                Method::StoredCg => stored_fits(n),
                Method::MatrixFreeCg => true,
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(Method::MatrixFreeCg, |(m, _)| m),
    }
}

/// Matrix products of one CG solve assumed by the cost estimate (the iterations needed are not
/// known in advance: typically 15 to 60 with the Fourier preconditioner; every iteration
/// polls for Ctrl-C whatever their number).
const EXPECTED_ITERATIONS: usize = 100;

/// One part of the estimated work: terms, what they are, which parameter to change.
struct Cost {
    terms: f64,
    what: String,
    hint: String,
}

/// Cost before work: estimates the terms and memory of the solve from the parameters alone and
/// refuses (naming the parameter that makes it expensive) above the limits of [`limits`].
fn check_cost(
    system: &System,
    problem: &QEqProblem,
    options: &QEqOptions,
    settings: Option<&EwaldSettings>,
    pme: bool,
    method: Method,
) -> Result<()> {
    let dense = method == Method::Dense;
    let n = system.len() as f64;
    let m = problem.fragment_charges.as_ref().map_or(1, |c| c.len()) as f64;
    let products = (options.max_iterations.min(EXPECTED_ITERATIONS) + 3) as f64;
    let max_sigma = problem.sigma.iter().copied().fold(0.0, f64::max);
    let dense_hint = "use solver='cg' (O(N) memory), or a smaller dense_limit with solver='auto'";
    let mut parts: Vec<Cost> = Vec::new();
    let mut memory = 0.0;
    let mut memory_parts: Vec<(f64, String, String)> = Vec::new();
    match (system.cell(), settings) {
        (Some(cell), Some(s)) => {
            let volume = cell.volume();
            let pairs =
                n * (1.0 + n / volume * 4.0 / 3.0 * std::f64::consts::PI * s.cutoff.powi(3));
            let cutoff_hint = if std::f64::consts::SQRT_2 * max_sigma >= s.eta {
                format!(
                    "the real-space cutoff {:.3e} = sqrt(2)·max(sigma)·sqrt(-2 ln ewald_truncation) \
                     follows from the Gaussian widths sigma (largest {max_sigma:.3e}): use \
                     smaller sigma (or a larger ewald_truncation)",
                    s.cutoff
                )
            } else if options.smearing.is_some() {
                format!(
                    "the real-space cutoff {:.3e} = smearing·sqrt(-2 ln ewald_truncation): use a \
                     smaller smearing (or leave it None)",
                    s.cutoff
                )
            } else {
                "use a larger ewald_truncation or a smaller system".to_string()
            };
            let k_hint = if options.smearing.is_some() {
                format!(
                    "the k-space cutoff {:.3e} = sqrt(-2 ln ewald_truncation)/smearing: use a \
                     larger smearing (or leave it None)",
                    s.k_cutoff
                )
            } else {
                "use a larger ewald_truncation".to_string()
            };
            let lengths = cell.lengths();
            let mut kbox = 1.0;
            let mut m_max = 0.0f64;
            for (a, l) in lengths.iter().enumerate() {
                let mm = (s.k_cutoff * l / (2.0 * std::f64::consts::PI)).floor();
                kbox *= if a == 0 { mm + 1.0 } else { 2.0 * mm + 1.0 };
                m_max = m_max.max(mm);
            }
            let sphere = 4.0 / 3.0 * std::f64::consts::PI * s.k_cutoff.powi(3) * volume
                / (8.0 * std::f64::consts::PI.powi(3))
                / 2.0;
            let nk = sphere.min(kbox);
            parts.push(Cost {
                terms: kbox,
                what: "the k-space weight sum (k-vectors)".into(),
                hint: k_hint.clone(),
            });
            // the operator stores the pairs (12 bytes each) only within its budget
            let budget =
                1.5 * operator::PAIR_BUDGET.max(operator::PAIRS_PER_ATOM * system.len()) as f64;
            let stored_pairs = if pairs <= budget { pairs } else { 0.0 };
            memory_parts.push((
                stored_pairs * 12.0,
                "the real-space pair list".into(),
                cutoff_hint.clone(),
            ));
            if !pme {
                if sphere > crate::kspace::MAX_KVECTORS as f64 {
                    return Err(Error::TooExpensive {
                        what: "the QEq Ewald k-space sum".into(),
                        estimate: format!("{sphere:.2e} k-vectors"),
                        limit: format!("{} k-vectors", crate::kspace::MAX_KVECTORS),
                        hint: k_hint,
                    });
                }
                memory_parts.push((
                    n * 3.0 * (2.0 * m_max + 1.0) * 16.0
                        + nk * (64.0 + 16.0 * operator::STRUCTURE_WINDOW as f64),
                    "the k-vector and phase tables".into(),
                    k_hint.clone(),
                ));
            }
            if dense {
                parts.push(Cost {
                    terms: 3.0 * pairs,
                    what: "the dense matrix, real space (pair terms)".into(),
                    hint: cutoff_hint,
                });
                parts.push(Cost {
                    terms: n * n * nk + n * nk,
                    what: "the dense matrix, k-space ((atom pair, k-vector) terms)".into(),
                    hint: k_hint.clone(),
                });
                memory_parts.push((n * nk * 16.0, "the dense k-space phases".into(), k_hint));
            } else {
                parts.push(Cost {
                    terms: (products + 1.0) * pairs,
                    what: format!("the real-space products (pair terms, {products} products)"),
                    hint: cutoff_hint,
                });
                if !pme {
                    parts.push(Cost {
                        terms: products * 2.0 * n * nk,
                        what: format!(
                            "the Ewald k-space products ((atom, k-vector) terms, {products} \
                             products)"
                        ),
                        hint: k_hint,
                    });
                }
            }
        }
        _ => match method {
            Method::Dense => parts.push(Cost {
                terms: 0.5 * n * n,
                what: "the dense matrix (pair terms)".into(),
                hint: dense_hint.into(),
            }),
            Method::StoredCg => {
                parts.push(Cost {
                    terms: 0.5 * n * n,
                    what: "the stored matrix (pair terms)".into(),
                    hint: "use fewer atoms".into(),
                });
                // a stored entry read costs about COST_STREAM / COST_PAIR of a pair term
                parts.push(Cost {
                    terms: (products + 1.0) * n * n * COST_STREAM / COST_PAIR,
                    what: format!("the stored-matrix products ({products} products)"),
                    hint: "use fewer atoms or a smaller max_iterations".into(),
                });
                memory_parts.push((
                    8.0 * n * n,
                    "the stored matrix (N² doubles)".into(),
                    "use fewer atoms".into(),
                ));
            }
            Method::MatrixFreeCg => parts.push(Cost {
                terms: (products + 1.0) * n * n,
                what: format!("the open-system products (pair terms, {products} products)"),
                hint: "use fewer atoms or a smaller max_iterations".into(),
            }),
        },
    }
    if dense {
        parts.push(Cost {
            terms: n * n * n / 3.0 + m * n * n + m * m * n,
            what: "the dense Cholesky factorisation (N³/3 multiply-adds)".into(),
            hint: dense_hint.into(),
        });
        memory_parts.push((
            (n * n + m * n) * 8.0,
            "the dense matrix, factorised in place (N² doubles)".into(),
            dense_hint.into(),
        ));
    }
    for (bytes, _, _) in &memory_parts {
        memory += bytes;
    }
    if let Some((_, what, hint)) = memory_parts.iter().max_by(|a, b| a.0.total_cmp(&b.0)) {
        limits::check_memory(&format!("this QEq solve (mostly {what})"), memory, hint)?;
    }
    let total: f64 = parts.iter().map(|c| c.terms).sum();
    if let Some(c) = parts.iter().max_by(|a, b| a.terms.total_cmp(&b.terms)) {
        limits::check_terms(
            &format!("this QEq solve (mostly {})", c.what),
            total,
            &c.hint,
        )?;
    }
    Ok(())
}

/// Cost of the PME k-space products with the chosen mesh, refused above the limits (terms in
/// the units of [`crate::tuning::pme::pme_cost`]: one real-space pair ≈ one term).
fn check_pme_cost(
    system: &System,
    options: &QEqOptions,
    pp: &crate::pme::PmeParameters,
) -> Result<()> {
    let mesh = match pp.mesh {
        crate::pme::Mesh::Points(p) => p,
        _ => return Ok(()),
    };
    let points = mesh.iter().map(|&v| v as f64).product::<f64>();
    let products = (options.max_iterations.min(EXPECTED_ITERATIONS) + 3) as f64;
    let hint = "the PME mesh follows from the smearing and ewald_truncation: use a larger \
                smearing (or leave it None), a larger ewald_truncation, or kspace='ewald'";
    limits::check_memory("the QEq PME mesh", points * 8.0 * 4.0, hint)?;
    let stats = crate::tuning::pme::PmeStats::of(system)?;
    let per_product = crate::tuning::pme::pme_cost(stats, 0.0, mesh, pp.order);
    limits::check_terms(
        &format!("the QEq PME products (mesh and stencil terms, {products} products)"),
        per_product * products,
        hint,
    )
}

#[cfg(test)]
fn make_operator<'a>(
    system: &'a System,
    problem: &'a QEqProblem,
    options: &QEqOptions,
) -> Result<Operator<'a>> {
    make_operator_for(system, problem, options, method(system, options, 1))
}

fn make_operator_for<'a>(
    system: &'a System,
    problem: &'a QEqProblem,
    options: &QEqOptions,
    method: Method,
) -> Result<Operator<'a>> {
    let n = system.len();
    let dense = method == Method::Dense;
    // the dense solver always builds the matrix with the explicit Ewald sum
    let pme = system.cell().is_some()
        && !dense
        && match options.kspace {
            KSpace::Ewald => false,
            KSpace::Pme => true,
            KSpace::Auto => n > PME_MIN_ATOMS,
        };
    let max_sigma = problem.sigma.iter().copied().fold(0.0, f64::max);
    let settings = system.cell().map(|cell| {
        // with PME the mesh is cheap: a narrower η than the Ewald balance (η ≈ 0.8 (V/N)^{1/3})
        // keeps the stored real-space pairs few
        // and within operator::PAIRS_PER_ATOM real-space pairs per atom
        let eta = options.smearing.or_else(|| {
            pme.then(|| {
                let d = (cell.volume() / n.max(1) as f64).cbrt();
                let x = (-2.0 * options.ewald_truncation.ln()).sqrt();
                let budget = (operator::PAIRS_PER_ATOM as f64 * cell.volume()
                    / (n.max(1) as f64 * 4.0 / 3.0 * std::f64::consts::PI))
                    .cbrt()
                    / x;
                (0.8 * d)
                    .min(budget)
                    .max(std::f64::consts::SQRT_2 * max_sigma)
            })
        });
        EwaldSettings::for_accuracy(system, max_sigma, eta, options.ewald_truncation)
    });
    check_cost(system, problem, options, settings.as_ref(), pme, method)?;
    match (pme, settings) {
        (true, Some(s)) => {
            // predicted relative mesh error at the Ewald truncation accuracy (and the tolerance)
            let target = options.tolerance.min(options.ewald_truncation).max(1e-14);
            let pp = operator::pme_parameters_for(system, s.eta, s.cutoff, target)?;
            check_pme_cost(system, options, &pp)?;
            let mut op = Operator::with_pme(
                system,
                &problem.sigma,
                &problem.hardness,
                options.prefactor,
                s,
                pp,
            )?;
            // a coarse PME for the inner solves of the iterative refinement, when its
            // products cost at most half of the accurate ones
            if target < COARSE_ACCURACY {
                if let Ok(coarse) =
                    operator::pme_parameters_for(system, s.eta, s.cutoff, COARSE_ACCURACY)
                {
                    let stats = crate::tuning::pme::PmeStats::of(system)?;
                    let cost = |p: &crate::pme::PmeParameters| match p.mesh {
                        crate::pme::Mesh::Points(m) => {
                            crate::tuning::pme::pme_cost(stats, 0.0, m, p.order)
                        }
                        crate::pme::Mesh::Spacing(_) => f64::INFINITY,
                    };
                    if 2.0 * cost(&coarse) <= cost(&pp) {
                        op.set_coarse_pme(coarse)?;
                    }
                }
            }
            Ok(op)
        }
        _ => {
            let mut op = Operator::new(
                system,
                &problem.sigma,
                &problem.hardness,
                options.prefactor,
                settings,
            )?;
            if method == Method::StoredCg {
                op.store_dense()?;
            }
            Ok(op)
        }
    }
}

enum Prepared {
    Dense(solve::DenseFactor),
    Iterative(Preconditioner, Preconditioner),
}

fn prepare(
    system: &System,
    problem: &QEqProblem,
    op: &Operator<'_>,
    options: &QEqOptions,
    cons: &Constraints,
    method: Method,
) -> Result<Prepared> {
    let n = op.len();
    if method == Method::Dense {
        // open systems keep A beside its factor for the forces and A q at the solution
        Ok(Prepared::Dense(solve::DenseFactor::new(
            || op.dense(),
            n,
            cons,
            system.cell().is_none(),
        )?))
    } else {
        let diag = op.diagonal();
        interrupt::check()?;
        if let Some(i) = diag.iter().position(|&d| !(d > 0.0)) {
            return Err(Error::parameter(
                "hardness",
                format!("the QEq matrix has a non-positive diagonal at atom {i}"),
            ));
        }
        let inv: Vec<f64> = diag.iter().map(|d| 1.0 / d).collect();
        let fourier = match (options.preconditioner, system.cell()) {
            (PreconditionerKind::Jacobi, _) | (_, None) => None,
            (_, Some(cell)) if cons.len() <= 64 => {
                let d = (cell.volume() / n.max(1) as f64).cbrt();
                let max_sigma = problem.sigma.iter().copied().fold(0.0, f64::max);
                let eta_p = d.max(1.5 * std::f64::consts::SQRT_2 * max_sigma);
                precond::FourierPreconditioner::new(system, &diag, options.prefactor, eta_p)
            }
            _ => None,
        };
        let jacobi = Preconditioner::Jacobi(inv.clone());
        let primary = match fourier {
            Some(f) => Preconditioner::Fourier(Box::new(f)),
            None => Preconditioner::Jacobi(inv),
        };
        Ok(Prepared::Iterative(primary, jacobi))
    }
}

fn solve_with(
    prepared: &Prepared,
    op: &Operator<'_>,
    chi: &[f64],
    cons: &Constraints,
    target: &[f64],
    x0: Option<&[f64]>,
    options: &QEqOptions,
) -> Result<(Vec<f64>, usize, bool)> {
    match prepared {
        Prepared::Dense(f) => Ok((f.solve(chi, cons, target).0, 0, false)),
        Prepared::Iterative(primary, jacobi) => {
            if op.has_coarse() {
                if let Some(out) = refine(op, primary, chi, cons, target, x0, options)? {
                    return Ok(out);
                }
            }
            let apply = |x: &[f64]| op.apply(x);
            let mut s = solve::pcg(
                &apply,
                primary,
                chi,
                cons,
                target,
                x0,
                options.tolerance,
                options.max_iterations,
            )?;
            let fell_back = s.breakdown;
            if s.breakdown {
                // the Fourier preconditioner lost definiteness: continue with Jacobi
                let used = s.iterations;
                s = solve::pcg(
                    &apply,
                    jacobi,
                    chi,
                    cons,
                    target,
                    Some(&s.q),
                    options.tolerance,
                    options.max_iterations.saturating_sub(used),
                )?;
                s.iterations += used;
            }
            if !s.converged {
                return Err(Error::NotConverged(format!(
                    "QEq conjugate gradient: residual {:.3e} after {} iterations (tolerance {:.3e})",
                    s.residual, s.iterations, options.tolerance
                )));
            }
            Ok((s.q, s.iterations, fell_back))
        }
    }
}

/// Relative PME accuracy of the coarse operator Ã of [`refine`] (at 10⁵ water-like atoms and
/// a 10⁻⁸ tolerance: 1e-3 takes 3-4 accurate products, 1e-2 about 6, both with ~20 coarse
/// ones; 1e-5 barely coarsens the mesh).
const COARSE_ACCURACY: f64 = 1e-3;
/// Each inner solve of [`refine`] reduces the residual by this factor (or reaches the
/// tolerance); a step cannot gain much more than [`COARSE_ACCURACY`].
const INNER_REDUCTION: f64 = 3e-4;
/// Refinement steps before [`refine`] gives up (and the plain CG continues).
const MAX_REFINEMENTS: usize = 8;

/// Iterative refinement with a coarse PME: q ← q + δ with Ã δ = −(A q + χ) (projected, C δ = 0)
/// solved by the preconditioned CG on Ã, whose products cost a fraction of A's; only the
/// residuals r = A q + χ use the accurate A (one product per step). Each step reduces the
/// residual by about the relative accuracy of Ã ([`COARSE_ACCURACY`]), so two or three
/// accurate products replace the 12-20 of a CG on A. The residual tested against the
/// tolerance is the accurate one. Returns None (and the caller runs the plain CG from the
/// start) when a step does not halve the residual or the preconditioner breaks down.
fn refine(
    op: &Operator<'_>,
    pre: &Preconditioner,
    chi: &[f64],
    cons: &Constraints,
    target: &[f64],
    x0: Option<&[f64]>,
    options: &QEqOptions,
) -> Result<Option<(Vec<f64>, usize, bool)>> {
    let n = chi.len();
    // a feasible start: q0 shifted per fragment onto C q = Q
    let mut q = x0.map_or_else(|| vec![0.0; n], <[f64]>::to_vec);
    let sums = cons.sums(&q);
    for (i, qi) in q.iter_mut().enumerate() {
        let f = cons.fragment[i];
        *qi += (target[f] - sums[f]) / cons.counts[f] as f64;
    }
    let coarse = |x: &[f64]| op.apply_coarse(x);
    let zeros = vec![0.0; cons.len()];
    let mut iterations = 0;
    let mut last = f64::INFINITY;
    for _ in 0..=MAX_REFINEMENTS {
        let aq = op.apply(&q);
        interrupt::check()?;
        let r: Vec<f64> = (0..n).map(|i| aq[i] + chi[i]).collect();
        let residual = cons.projected_rms(&r).0;
        if residual <= options.tolerance {
            return Ok(Some((q, iterations, false)));
        }
        if !(residual < 0.5 * last) || iterations >= options.max_iterations {
            return Ok(None);
        }
        last = residual;
        let inner_tolerance = (INNER_REDUCTION * residual).max(0.3 * options.tolerance);
        let s = solve::pcg(
            &coarse,
            pre,
            &r,
            cons,
            &zeros,
            None,
            inner_tolerance,
            options.max_iterations.saturating_sub(iterations),
        )?;
        iterations += s.iterations;
        if s.breakdown {
            return Ok(None);
        }
        for (qi, d) in q.iter_mut().zip(&s.q) {
            *qi += d;
        }
    }
    Ok(None)
}

/// The solved forward problem: the operator, its factorisation or preconditioners, the
/// constraints and the charges, shared by [`qeq`] and the adjoint solve of [`qeq_vjp`].
struct Forward<'a> {
    op: Operator<'a>,
    prepared: Prepared,
    cons: Constraints,
    q: Vec<f64>,
    stats: (usize, bool),
}

impl<'a> Forward<'a> {
    /// `solves`: right-hand sides expected (1 for [`qeq`], 2 for [`qeq_vjp`]), for the choice
    /// of [`method`].
    fn solve(
        system: &'a System,
        problem: &'a QEqProblem,
        options: &QEqOptions,
        cons: Constraints,
        solves: usize,
    ) -> Result<Forward<'a>> {
        let method = method(system, options, solves);
        let op = make_operator_for(system, problem, options, method)?;
        let prepared = prepare(system, problem, &op, options, &cons, method)?;
        let (q, iterations, fell_back) = solve_with(
            &prepared,
            &op,
            &problem.electronegativity,
            &cons,
            &cons.charges,
            problem.initial_charges.as_deref(),
            options,
        )?;
        Ok(Forward {
            op,
            prepared,
            cons,
            q,
            stats: (iterations, fell_back),
        })
    }

    fn finish(
        self,
        system: &System,
        problem: &QEqProblem,
        options: &QEqOptions,
    ) -> Result<QEqResult> {
        finish(
            system,
            options.tolerance,
            &self.op,
            &problem.electronegativity,
            &self.cons,
            self.q,
            self.stats,
            &self.prepared,
        )
    }
}

/// Solves one QEq problem: charges, chemical potential, energy, forces and (periodic) stress.
///
/// Before any work the cost is estimated from the parameters (real-space pairs from the cutoff
/// √(−2 ln ewald_truncation)·max(η, √2 max σ), k-vectors from √(−2 ln ewald_truncation)/η, the dense N² matrix
/// and its N³/3 factorisation, about 100 products of a CG solve) and refused above the limits
/// of [`crate::limits`] with [`Error::TooExpensive`], naming the parameter to change. Every loop
/// polls [`crate::interrupt`]: an interrupted solve returns [`Error::Interrupted`]. A system
/// without atoms is refused.
pub fn qeq(system: &System, problem: &QEqProblem, options: &QEqOptions) -> Result<QEqResult> {
    let cons = validate(system, problem, options)?;
    Forward::solve(system, problem, options, cons, 1)?.finish(system, problem, options)
}

#[allow(clippy::too_many_arguments)]
fn finish(
    system: &System,
    tolerance: f64,
    op: &Operator<'_>,
    chi: &[f64],
    cons: &Constraints,
    q: Vec<f64>,
    (iterations, fell_back): (usize, bool),
    prepared: &Prepared,
) -> Result<QEqResult> {
    let n = q.len();
    let original = match prepared {
        Prepared::Dense(f) => f.original(),
        Prepared::Iterative(..) => None,
    };
    let (aq, g) = op.apply_and_gradient(&q, original);
    interrupt::check()?;
    let grad: Vec<f64> = (0..n).map(|i| aq[i] + chi[i]).collect();
    let (residual, chemical_potential) = cons.projected_rms(&grad);
    let energy: f64 = (0..n).map(|i| chi[i] * q[i] + 0.5 * q[i] * aq[i]).sum();
    let forces = g
        .positions
        .iter()
        .map(|d| [-0.5 * d[0], -0.5 * d[1], -0.5 * d[2]])
        .collect();
    let virial = system
        .cell()
        .map(|_| g.strain.map(|row| row.map(|x| 0.5 * x)));
    let settings = op.settings();
    Ok(QEqResult {
        charges: q,
        chemical_potential,
        energy,
        forces,
        virial,
        volume: system.cell().map(|c| c.volume()),
        stats: SolverStats {
            solver: match prepared {
                Prepared::Dense(_) => "dense",
                Prepared::Iterative(..) => "cg",
            },
            matrix: match prepared {
                Prepared::Dense(_) => "factorised",
                Prepared::Iterative(..) if op.is_stored() => "stored",
                Prepared::Iterative(..) => "matrix-free",
            },
            preconditioner: match prepared {
                Prepared::Dense(_) => "cholesky",
                Prepared::Iterative(Preconditioner::Fourier(_), _) if fell_back => "fourier+jacobi",
                Prepared::Iterative(Preconditioner::Fourier(_), _) => "fourier",
                Prepared::Iterative(..) => "jacobi",
            },
            iterations,
            residual,
            smearing: settings.map(|s| s.eta),
            cutoff: settings.map(|s| s.cutoff),
            k_cutoff: settings.map(|s| s.k_cutoff),
            mesh: op.pme_parameters().and_then(|p| match p.mesh {
                crate::pme::Mesh::Points(n) => Some(n),
                crate::pme::Mesh::Spacing(_) => None,
            }),
            order: op.pme_parameters().map(|p| p.order),
            n_kvectors: op.n_kvectors(),
            tolerance,
            kspace: match (system.cell(), op.uses_pme()) {
                (None, _) => "none",
                (Some(_), true) => "pme",
                (Some(_), false) => "ewald",
            },
        },
    })
}

/// Vector–Jacobian products of the QEq solve: given ∂L/∂q (`grad_charges`) and ∂L/∂E
/// (`grad_energy`), returns ∂L/∂χ, ∂L/∂J, ∂L/∂σ, ∂L/∂r and (periodic) ∂L/∂ε, ∂L/∂cell, from
/// the forward solve plus one adjoint solve with the same matrix (formulas in the module docs).
/// Also returns the forward result.
pub fn qeq_vjp(
    system: &System,
    problem: &QEqProblem,
    options: &QEqOptions,
    grad_charges: &[f64],
    grad_energy: f64,
) -> Result<(QEqResult, QEqGradients)> {
    let cons = validate(system, problem, options)?;
    crate::system::check_per_atom("grad_charges", grad_charges.len(), system)?;
    check_finite("grad_charges", grad_charges)?;
    check_finite("grad_energy", &[grad_energy])?;
    let fwd = Forward::solve(system, problem, options, cons, 2)?;
    let Forward {
        op,
        prepared,
        cons,
        q,
        ..
    } = &fwd;
    // adjoint: A ν + Cᵀκ = ḡ_q, C ν = 0  ⇔  the QEq problem with χ = −ḡ_q and zero charges
    let minus_g: Vec<f64> = grad_charges.iter().map(|v| -v).collect();
    let zeros = vec![0.0; cons.len()];
    let (nu, _, _) = solve_with(prepared, op, &minus_g, cons, &zeros, None, options)?;
    let n = q.len();
    let p: Vec<f64> = (0..n).map(|i| 0.5 * grad_energy * q[i] - nu[i]).collect();
    let g = op.bilinear_gradient(&p, q);
    interrupt::check()?;
    let gradients = QEqGradients {
        electronegativity: (0..n).map(|i| grad_energy * q[i] - nu[i]).collect(),
        hardness: (0..n).map(|i| p[i] * q[i]).collect(),
        sigma: g.sigma,
        strain: system.cell().map(|_| g.strain),
        cell: system.cell().map(|cell| {
            // ∂L/∂h = h^{-T} ((∂L/∂ε)ᵀ − Rᵀ ∂L/∂R), ε in the column-vector convention
            // (dL = Σ_i ∂L/∂r_i · ε r_i + ∂L/∂h : h εᵀ)
            let mut m = [[0.0; 3]; 3];
            for (a, row) in m.iter_mut().enumerate() {
                for (b, x) in row.iter_mut().enumerate() {
                    *x = g.strain[b][a];
                }
            }
            for (r, d) in system.positions().iter().zip(&g.positions) {
                for a in 0..3 {
                    for b in 0..3 {
                        m[a][b] -= r[a] * d[b];
                    }
                }
            }
            let inv = inverse3(cell.matrix());
            let mut out = [[0.0; 3]; 3];
            for a in 0..3 {
                for b in 0..3 {
                    for c in 0..3 {
                        out[a][b] += inv[c][a] * m[c][b];
                    }
                }
            }
            out
        }),
        positions: g.positions,
    };
    let result = fwd.finish(system, problem, options)?;
    Ok((result, gradients))
}

/// Solves many QEq problems (a training batch) in parallel over structures.
pub fn qeq_batch(
    systems: &[System],
    problems: &[QEqProblem],
    options: &QEqOptions,
) -> Result<Vec<QEqResult>> {
    if systems.len() != problems.len() {
        return Err(Error::shape(
            "problems",
            format!("{} problems (one per system)", systems.len()),
            format!("{}", problems.len()),
        ));
    }
    systems
        .par_iter()
        .zip(problems.par_iter())
        .map(|(s, p)| qeq(s, p, options))
        .collect()
}

/// Vector–Jacobian products of many QEq problems (a training batch) in parallel over
/// structures: `grad_charges[k]` and `grad_energy[k]` belong to structure k.
pub fn qeq_vjp_batch(
    systems: &[System],
    problems: &[QEqProblem],
    options: &QEqOptions,
    grad_charges: &[Vec<f64>],
    grad_energy: &[f64],
) -> Result<Vec<(QEqResult, QEqGradients)>> {
    for (what, len) in [
        ("problems", problems.len()),
        ("grad_charges", grad_charges.len()),
        ("grad_energy", grad_energy.len()),
    ] {
        if len != systems.len() {
            return Err(Error::shape(
                what,
                format!("{} entries (one per structure)", systems.len()),
                format!("{len}"),
            ));
        }
    }
    (0..systems.len())
        .into_par_iter()
        .map(|k| {
            qeq_vjp(
                &systems[k],
                &problems[k],
                options,
                &grad_charges[k],
                grad_energy[k],
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
