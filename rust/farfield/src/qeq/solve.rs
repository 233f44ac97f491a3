#![allow(
    clippy::len_without_is_empty,
    clippy::neg_cmp_op_on_partial_ord,
    clippy::too_many_arguments
)]
//! Solvers of the constrained problem min ½qᵀAq + χᵀq subject to C q = Q (C: fragment
//! indicator rows): a dense Cholesky factorisation (faer) with a Schur complement for the
//! constraints, and a projected preconditioned conjugate gradient (whose products are
//! [`Operator::apply`](super::Operator::apply): a stored matrix or matrix-free).

use crate::error::{Error, Result};
use crate::math::dense::Cholesky;
use crate::{interrupt, limits};

/// Fragment constraints: `fragment[i]` is the fragment of atom i, `charges[f]` its charge.
#[derive(Debug, Clone)]
pub struct Constraints {
    /// Fragment index of every atom.
    pub fragment: Vec<usize>,
    /// Number of atoms per fragment (all > 0).
    pub counts: Vec<usize>,
    /// Charge of every fragment.
    pub charges: Vec<f64>,
}

impl Constraints {
    /// Number of constraints.
    pub fn len(&self) -> usize {
        self.charges.len()
    }

    /// Per fragment sums of x.
    pub fn sums(&self, x: &[f64]) -> Vec<f64> {
        let mut s = vec![0.0; self.len()];
        for (i, &f) in self.fragment.iter().enumerate() {
            s[f] += x[i];
        }
        s
    }

    /// RMS over atoms of x minus its fragment mean (the spread of the chemical potential when x
    /// is the gradient Aq + χ), and the fragment means.
    pub fn projected_rms(&self, x: &[f64]) -> (f64, Vec<f64>) {
        let mut mean = self.sums(x);
        for f in 0..self.len() {
            mean[f] /= self.counts[f] as f64;
        }
        let n = x.len().max(1) as f64;
        let ss: f64 = x
            .iter()
            .zip(&self.fragment)
            .map(|(v, &f)| (v - mean[f]) * (v - mean[f]))
            .sum();
        ((ss / n).sqrt(), mean)
    }
}

/// A Cholesky factor of A + ρ CᵀC (faer, [`crate::math::dense`]) with the Schur complement of
/// the constraints.
pub struct DenseFactor {
    n: usize,
    chol: Cholesky,
    /// Y = A'^{-1} Cᵀ, n × m column-major
    y: Vec<f64>,
    /// Cholesky factor of S = C Y (m × m)
    s: Cholesky,
    rho: f64,
    /// the diagonal of A when the factor buffer keeps a copy of A's strict triangle
    original_diagonal: Option<Vec<f64>>,
}

impl DenseFactor {
    /// Factorises the dense A (symmetric, n × n, from `build`: rows hold the upper triangle,
    /// see [`crate::math::dense`]) with the constraints; A need only be positive definite on
    /// the constraint null space (periodic charged cells), ρ CᵀC is added when needed, which
    /// changes neither q nor λ. The factor overwrites A (one n² buffer); A is built again for
    /// each retry with a larger ρ.
    ///
    /// With `keep_original`, A's upper triangle is first copied into the triangle the
    /// factorisation does not touch, so that [`DenseFactor::original`] can give A back
    /// (products at the solution without a second n² buffer).
    pub fn new(
        build: impl Fn() -> Result<Vec<f64>>,
        n: usize,
        cons: &Constraints,
        keep_original: bool,
    ) -> Result<DenseFactor> {
        let mut rho = 0.0;
        let mut scale = 0.0;
        for attempt in 0..8 {
            let mut a = build()?;
            if attempt == 0 {
                scale = (0..n)
                    .map(|i| a[i * n + i].abs())
                    .fold(0.0, f64::max)
                    .max(1e-300);
            }
            if rho > 0.0 {
                // A + ρ CᵀC: ρ on every pair of atoms of the same fragment (upper triangle)
                for i in 0..n {
                    interrupt::check()?;
                    let fi = cons.fragment[i];
                    let row = &mut a[i * n + i..(i + 1) * n];
                    for (v, &fj) in row.iter_mut().zip(&cons.fragment[i..]) {
                        if fj == fi {
                            *v += rho;
                        }
                    }
                }
            }
            let original_diagonal = (keep_original && rho == 0.0).then(|| {
                crate::math::dense::mirror_upper_to_lower(&mut a, n);
                (0..n).map(|i| a[i * n + i]).collect::<Vec<f64>>()
            });
            if let Some(chol) = Cholesky::factor(a, n)? {
                let mut f = Self::with_factor(chol, n, cons, rho)?;
                f.original_diagonal = original_diagonal;
                return Ok(f);
            }
            rho = scale * 10f64.powi(attempt);
        }
        Err(Error::parameter(
            "hardness",
            "the QEq matrix is not positive definite on the constrained subspace",
        ))
    }

    fn with_factor(chol: Cholesky, n: usize, cons: &Constraints, rho: f64) -> Result<DenseFactor> {
        let m = cons.len();
        interrupt::check()?;
        let mut y = limits::try_zeroed("the dense QEq constraint columns", n * m)?;
        for (i, &f) in cons.fragment.iter().enumerate() {
            y[f * n + i] = 1.0;
        }
        chol.solve_in_place(&mut y);
        let mut s = vec![0.0; m * m];
        for g in 0..m {
            let sums = cons.sums(&y[g * n..(g + 1) * n]);
            for f in 0..m {
                s[g * m + f] = sums[f];
            }
        }
        // S = C A'^{-1} Cᵀ is symmetric
        for f in 0..m {
            for g in 0..f {
                let v = 0.5 * (s[g * m + f] + s[f * m + g]);
                s[g * m + f] = v;
                s[f * m + g] = v;
            }
        }
        let s = Cholesky::factor(s, m)?
            .ok_or_else(|| Error::parameter("fragments", "the constraint matrix is singular"))?;
        Ok(DenseFactor {
            n,
            chol,
            y,
            s,
            rho,
            original_diagonal: None,
        })
    }

    /// A itself, when kept: (buffer whose strict lower triangle of row-major rows holds A_ij
    /// for j < i, the diagonal of A).
    pub fn original(&self) -> Option<(&[f64], &[f64])> {
        self.original_diagonal
            .as_deref()
            .map(|d| (self.chol.buffer(), d))
    }

    /// Solves A q + Cᵀλ = −χ, C q = Q; returns (q, λ).
    pub fn solve(&self, chi: &[f64], cons: &Constraints, target: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let n = self.n;
        let m = cons.len();
        // rhs with the ρ CᵀC shift: −χ + ρ Cᵀ Q
        let mut x: Vec<f64> = (0..n)
            .map(|i| -chi[i] + self.rho * target[cons.fragment[i]])
            .collect();
        self.chol.solve_in_place(&mut x);
        let cx = cons.sums(&x);
        let mut lambda: Vec<f64> = (0..m).map(|f| cx[f] - target[f]).collect();
        self.s.solve_in_place(&mut lambda);
        for f in 0..m {
            let yf = &self.y[f * n..(f + 1) * n];
            for i in 0..n {
                x[i] -= yf[i] * lambda[f];
            }
        }
        (x, lambda)
    }
}

/// Result of an iterative solve.
pub struct IterativeSolution {
    /// Charges.
    pub q: Vec<f64>,
    /// Iterations used.
    pub iterations: usize,
    /// Final projected residual (RMS).
    pub residual: f64,
    /// Whether the tolerance was reached.
    pub converged: bool,
    /// Whether the preconditioner stopped being positive definite (rᵀM⁻¹r ≤ 0).
    pub breakdown: bool,
}

/// A symmetric positive definite preconditioner M⁻¹ of the CG.
pub enum Preconditioner {
    /// Diagonal: M⁻¹ = diag(1/A_ii) (the inverse diagonal is stored).
    Jacobi(Vec<f64>),
    /// Coarse-mesh Fourier preconditioner of periodic systems ([`super::precond`]).
    Fourier(Box<super::precond::FourierPreconditioner>),
}

impl Preconditioner {
    fn apply(&self, r: &[f64]) -> Vec<f64> {
        match self {
            Preconditioner::Jacobi(inv) => r.iter().zip(inv).map(|(a, b)| a * b).collect(),
            Preconditioner::Fourier(f) => f.apply(r),
        }
    }
}

/// Y = M⁻¹Cᵀ and S⁻¹ = (C M⁻¹ Cᵀ)⁻¹ of the constraint projection.
struct Projector<'c> {
    cons: &'c Constraints,
    /// columns of Y (None for Jacobi: Y_f = inv restricted to fragment f)
    ys: Option<Vec<Vec<f64>>>,
    inv: Option<&'c [f64]>,
    /// S⁻¹, m × m row-major
    s_inv: Vec<f64>,
}

fn invert_spd(a: &[f64], m: usize) -> Option<Vec<f64>> {
    // Gauss-Jordan with partial pivoting (m is the number of fragments, small)
    let mut w = a.to_vec();
    let mut out = vec![0.0; m * m];
    for i in 0..m {
        out[i * m + i] = 1.0;
    }
    for c in 0..m {
        let piv = (c..m).max_by(|&x, &y| w[x * m + c].abs().total_cmp(&w[y * m + c].abs()))?;
        if !(w[piv * m + c].abs() > 0.0) {
            return None;
        }
        for k in 0..m {
            w.swap(c * m + k, piv * m + k);
            out.swap(c * m + k, piv * m + k);
        }
        let d = 1.0 / w[c * m + c];
        for k in 0..m {
            w[c * m + k] *= d;
            out[c * m + k] *= d;
        }
        for r in 0..m {
            if r != c {
                let f = w[r * m + c];
                if f != 0.0 {
                    for k in 0..m {
                        w[r * m + k] -= f * w[c * m + k];
                        out[r * m + k] -= f * out[c * m + k];
                    }
                }
            }
        }
    }
    Some(out)
}

impl<'c> Projector<'c> {
    fn new(pre: &'c Preconditioner, cons: &'c Constraints) -> Option<Projector<'c>> {
        let m = cons.len();
        match pre {
            Preconditioner::Jacobi(inv) => {
                let mut wsum = vec![0.0; m];
                for (i, &f) in cons.fragment.iter().enumerate() {
                    wsum[f] += inv[i];
                }
                let mut s_inv = vec![0.0; m * m];
                for f in 0..m {
                    s_inv[f * m + f] = 1.0 / wsum[f];
                }
                Some(Projector {
                    cons,
                    ys: None,
                    inv: Some(inv),
                    s_inv,
                })
            }
            Preconditioner::Fourier(_) => {
                let ys: Vec<Vec<f64>> = (0..m)
                    .map(|f| {
                        let c: Vec<f64> = cons
                            .fragment
                            .iter()
                            .map(|&g| if g == f { 1.0 } else { 0.0 })
                            .collect();
                        pre.apply(&c)
                    })
                    .collect();
                let mut s = vec![0.0; m * m];
                for (g, y) in ys.iter().enumerate() {
                    let sums = cons.sums(y);
                    for f in 0..m {
                        s[f * m + g] = sums[f];
                    }
                }
                let s_inv = invert_spd(&s, m)?;
                Some(Projector {
                    cons,
                    ys: Some(ys),
                    inv: None,
                    s_inv,
                })
            }
        }
    }

    /// S⁻¹ b.
    fn s_solve(&self, b: &[f64]) -> Vec<f64> {
        let m = b.len();
        (0..m)
            .map(|f| (0..m).map(|g| self.s_inv[f * m + g] * b[g]).sum())
            .collect()
    }

    /// x −= Y λ.
    fn sub_y(&self, x: &mut [f64], lambda: &[f64]) {
        match (&self.ys, self.inv) {
            (Some(ys), _) => {
                for (y, &l) in ys.iter().zip(lambda) {
                    for (xi, yi) in x.iter_mut().zip(y) {
                        *xi -= l * yi;
                    }
                }
            }
            (None, Some(inv)) => {
                for (i, xi) in x.iter_mut().enumerate() {
                    *xi -= inv[i] * lambda[self.cons.fragment[i]];
                }
            }
            (None, None) => {}
        }
    }
}

/// Projected preconditioned CG for A q + χ ⊥ null(C), C q = Q (`op`: the product x ↦ A x),
/// starting from `x0` (shifted onto the constraints). With the projector P = I − Y S⁻¹C (Y = M⁻¹Cᵀ, S = C M⁻¹ Cᵀ) every
/// direction stays in the constraint null space.
pub fn pcg(
    op: &(dyn Fn(&[f64]) -> Vec<f64> + Sync),
    pre: &Preconditioner,
    chi: &[f64],
    cons: &Constraints,
    target: &[f64],
    x0: Option<&[f64]>,
    tolerance: f64,
    max_iterations: usize,
) -> Result<IterativeSolution> {
    let n = chi.len();
    let mut q: Vec<f64> = match x0 {
        Some(x) => x.to_vec(),
        None => vec![0.0; n],
    };
    let proj = match Projector::new(pre, cons) {
        Some(p) => p,
        None => {
            return Ok(IterativeSolution {
                q,
                iterations: 0,
                residual: f64::INFINITY,
                converged: false,
                breakdown: true,
            })
        }
    };
    // start: feasible point q += Y S⁻¹ (Q − C q)
    let sums = cons.sums(&q);
    let miss: Vec<f64> = (0..cons.len()).map(|f| sums[f] - target[f]).collect();
    proj.sub_y(&mut q, &proj.s_solve(&miss));
    // z = P M⁻¹ r, and r shifted by Cᵀλ so that rᵀz is not swamped by the multiplier
    let project = |r: &mut [f64]| -> Vec<f64> {
        let mut z = pre.apply(r);
        let lambda = proj.s_solve(&cons.sums(&z));
        proj.sub_y(&mut z, &lambda);
        for (i, ri) in r.iter_mut().enumerate() {
            *ri -= lambda[cons.fragment[i]];
        }
        z
    };
    let aq = op(&q);
    interrupt::check()?;
    let mut r: Vec<f64> = (0..n).map(|i| aq[i] + chi[i]).collect();
    let mut residual = cons.projected_rms(&r).0;
    let mut iterations = 0;
    let done = |q, iterations, residual, breakdown| IterativeSolution {
        q,
        iterations,
        converged: residual <= tolerance,
        residual,
        breakdown,
    };
    if residual <= tolerance {
        return Ok(done(q, iterations, residual, false));
    }
    let mut z = project(&mut r);
    let mut p: Vec<f64> = z.iter().map(|v| -v).collect();
    let mut rz: f64 = r.iter().zip(&z).map(|(a, b)| a * b).sum();
    if !(rz > 0.0) {
        return Ok(done(q, iterations, residual, true));
    }
    while iterations < max_iterations {
        iterations += 1;
        let ap = op(&p);
        // every product polls for Ctrl-C; its values are meaningless once interrupted
        interrupt::check()?;
        let pap: f64 = p.iter().zip(&ap).map(|(a, b)| a * b).sum();
        if !(pap > 0.0) {
            break;
        }
        let alpha = rz / pap;
        for i in 0..n {
            q[i] += alpha * p[i];
            r[i] += alpha * ap[i];
        }
        if iterations % 50 == 0 {
            // refresh the residual against drift
            let aq = op(&q);
            interrupt::check()?;
            for i in 0..n {
                r[i] = aq[i] + chi[i];
            }
        }
        residual = cons.projected_rms(&r).0;
        if residual <= tolerance {
            break;
        }
        z = project(&mut r);
        let rz_new: f64 = r.iter().zip(&z).map(|(a, b)| a * b).sum();
        if !(rz_new > 0.0) {
            return Ok(done(q, iterations, residual, true));
        }
        let beta = rz_new / rz;
        rz = rz_new;
        for i in 0..n {
            p[i] = -z[i] + beta * p[i];
        }
        // keep the search direction in the constraint null space (round-off grows otherwise)
        let drift = cons.sums(&p);
        proj.sub_y(&mut p, &proj.s_solve(&drift));
    }
    Ok(done(q, iterations, residual, false))
}
