//! Dense linear algebra on [faer]: the Cholesky factorisation of a symmetric positive definite
//! matrix, solves with its factor, and matrix–vector products.
//!
//! A symmetric matrix is stored as a `Vec<f64>` of n² entries of which only one triangle is
//! read: the lower triangle in column-major order, which is the upper triangle (j ≥ i) of
//! row-major rows, so that a builder can fill the rows i..n of row i. The factorisation is
//! right-looking by blocks of [`BLOCK`] columns (faer's own factorisation of each diagonal
//! block, a triangular solve of the panel below it, a symmetric rank-[`BLOCK`] update of the
//! trailing lower triangle), so that Ctrl-C ([`crate::interrupt`]) is polled between blocks;
//! the work is faer's blocked kernels, parallel over the current rayon pool. The strict upper
//! triangle (column-major) of the buffer is left as it was given (a caller can keep a copy of
//! the matrix there: [`mirror_upper_to_lower`], [`symmetric_matvec_strict_upper`]).

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::reborrow::{Reborrow, ReborrowMut};
use faer::{Accum, MatMut, MatRef, Par};

use crate::error::{Error, Result};
use crate::interrupt;

/// Columns factorised between two polls for Ctrl-C.
pub const BLOCK: usize = 512;

/// faer's parallelism for the current rayon pool.
pub fn parallelism() -> Par {
    let threads = rayon::current_num_threads();
    if threads > 1 {
        Par::rayon(threads)
    } else {
        Par::Seq
    }
}

fn scratch_error(n: usize) -> Error {
    Error::TooExpensive {
        what: "the dense factorisation workspace".into(),
        estimate: crate::limits::format_bytes(n as f64 * 8.0),
        limit: "the memory the system could allocate".into(),
        hint: "use a smaller system".into(),
    }
}

/// The Cholesky factor L (A = L Lᵀ) of a symmetric positive definite matrix.
pub struct Cholesky {
    n: usize,
    /// column-major; L in the lower triangle, the input's strict upper triangle above it
    l: Vec<f64>,
}

impl Cholesky {
    /// Factorises the symmetric n × n matrix `a` in place (its lower triangle, column-major, is
    /// read: the upper triangle row-major); `None` when it is not numerically positive
    /// definite (the matrix is then lost). Polls for Ctrl-C between blocks of columns.
    pub fn factor(mut a: Vec<f64>, n: usize) -> Result<Option<Cholesky>> {
        assert_eq!(a.len(), n * n, "Cholesky::factor: matrix of the wrong size");
        let par = parallelism();
        let req =
            llt::factor::cholesky_in_place_scratch::<f64>(BLOCK.min(n), par, Default::default());
        let mut mem = MemBuffer::try_new(req).map_err(|_| scratch_error(n))?;
        let mut ok = true;
        let mut k = 0;
        let mut saved = Vec::new();
        while k < n {
            interrupt::check()?;
            let kb = BLOCK.min(n - k);
            // faer's factorisation of the diagonal block uses part of its strict upper triangle
            // as workspace: keep it, so that the strict upper triangle of the whole buffer
            // still holds the input afterwards
            saved.clear();
            for c in k..k + kb {
                saved.extend_from_slice(&a[c * n + k..c * n + c]);
            }
            {
                let mut mat = MatMut::from_column_major_slice_mut(&mut a, n, n);
                let (_, _, _, rest) = mat.rb_mut().split_at_mut(k, k);
                let (mut a11, _, mut a21, mut a22) = rest.split_at_mut(kb, kb);
                if llt::factor::cholesky_in_place(
                    a11.rb_mut(),
                    Default::default(),
                    par,
                    MemStack::new(&mut mem),
                    Default::default(),
                )
                .is_err()
                {
                    ok = false;
                }
                if ok && n > k + kb {
                    // A21 ← A21 L11⁻ᵀ, i.e. A21ᵀ ← L11⁻¹ A21ᵀ
                    faer::linalg::triangular_solve::solve_lower_triangular_in_place(
                        a11.rb(),
                        a21.rb_mut().transpose_mut(),
                        par,
                    );
                    // A22 ← A22 − A21 A21ᵀ (lower triangle)
                    triangular::matmul(
                        a22.rb_mut(),
                        BlockStructure::TriangularLower,
                        Accum::Add,
                        a21.rb(),
                        BlockStructure::Rectangular,
                        a21.rb().transpose(),
                        BlockStructure::Rectangular,
                        -1.0,
                        par,
                    );
                }
            }
            let mut t = 0;
            for c in k..k + kb {
                let len = c - k;
                a[c * n + k..c * n + c].copy_from_slice(&saved[t..t + len]);
                t += len;
            }
            if !ok {
                break;
            }
            k += kb;
        }
        ok = ok && (0..n).all(|i| a[i * n + i].is_finite() && a[i * n + i] > 0.0);
        Ok(ok.then_some(Cholesky { n, l: a }))
    }

    /// The n² buffer: L in the lower triangle (column-major); the strict upper triangle is
    /// never written by the factorisation and keeps whatever the input held there.
    pub fn buffer(&self) -> &[f64] {
        &self.l
    }

    /// Solves A X = B in place for the n × k matrix `b` (column-major, k = b.len() / n).
    pub fn solve_in_place(&self, b: &mut [f64]) {
        let n = self.n;
        if n == 0 {
            return;
        }
        let k = b.len() / n;
        let l = MatRef::from_column_major_slice(&self.l, n, n);
        let rhs = MatMut::from_column_major_slice_mut(b, n, k);
        let mut mem = MemBuffer::new(llt::solve::solve_in_place_scratch::<f64>(
            n,
            k,
            parallelism(),
        ));
        llt::solve::solve_in_place(l, rhs, parallelism(), MemStack::new(&mut mem));
    }
}

/// y = A x for the symmetric n × n matrix `a` given by its lower triangle (column-major; the
/// other triangle is not read): y = L x + (L − diag)ᵀ x, two triangular products.
pub fn symmetric_matvec(a: &[f64], n: usize, x: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; n];
    if n == 0 {
        return y;
    }
    let par = parallelism();
    let a = MatRef::from_column_major_slice(a, n, n);
    let xv = MatRef::from_column_major_slice(x, n, 1);
    let mut yv = MatMut::from_column_major_slice_mut(&mut y, n, 1);
    triangular::matmul(
        yv.rb_mut(),
        BlockStructure::Rectangular,
        Accum::Replace,
        a,
        BlockStructure::TriangularLower,
        xv,
        BlockStructure::Rectangular,
        1.0,
        par,
    );
    triangular::matmul(
        yv.rb_mut(),
        BlockStructure::Rectangular,
        Accum::Add,
        a.transpose(),
        BlockStructure::StrictTriangularUpper,
        xv,
        BlockStructure::Rectangular,
        1.0,
        par,
    );
    y
}

/// y = A x for the symmetric n × n matrix given by its diagonal and its strict upper triangle
/// (column-major, i.e. the strict lower triangle of row-major rows; the rest is not read).
pub fn symmetric_matvec_strict_upper(a: &[f64], diagonal: &[f64], n: usize, x: &[f64]) -> Vec<f64> {
    let mut y: Vec<f64> = diagonal.iter().zip(x).map(|(d, v)| d * v).collect();
    if n == 0 {
        return y;
    }
    let par = parallelism();
    let a = MatRef::from_column_major_slice(a, n, n);
    let xv = MatRef::from_column_major_slice(x, n, 1);
    let mut yv = MatMut::from_column_major_slice_mut(&mut y, n, 1);
    for (m, structure) in [
        (a, BlockStructure::StrictTriangularUpper),
        (a.transpose(), BlockStructure::StrictTriangularLower),
    ] {
        triangular::matmul(
            yv.rb_mut(),
            BlockStructure::Rectangular,
            Accum::Add,
            m,
            structure,
            xv,
            BlockStructure::Rectangular,
            1.0,
            par,
        );
    }
    y
}

/// Copies the upper triangle of row-major rows (j > i) into the strict lower one, so that
/// a factorisation (which overwrites the other triangle) leaves a copy of the matrix.
pub fn mirror_upper_to_lower(a: &mut [f64], n: usize) {
    const TILE: usize = 64;
    for i0 in (0..n).step_by(TILE) {
        for j0 in (0..=i0).step_by(TILE) {
            for i in i0..(i0 + TILE).min(n) {
                for j in j0..(j0 + TILE).min(i) {
                    a[i * n + j] = a[j * n + i];
                }
            }
        }
    }
}

/// A += Pᵀ P on the lower triangle (column-major) of the n × n `a`, for the k × n
/// column-major `p` (a Gram matrix: Σ_k p_ki p_kj).
pub fn add_gram_lower(a: &mut [f64], n: usize, p: &[f64], k: usize) {
    if n == 0 || k == 0 {
        return;
    }
    let am = MatMut::from_column_major_slice_mut(a, n, n);
    let pm = MatRef::from_column_major_slice(p, k, n);
    triangular::matmul(
        am,
        BlockStructure::TriangularLower,
        Accum::Add,
        pm.transpose(),
        BlockStructure::Rectangular,
        pm,
        BlockStructure::Rectangular,
        1.0,
        parallelism(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A random SPD matrix M Mᵀ + n I and a right-hand side; the solve is checked by the
    /// residual ‖A x − b‖ computed with plain loops (independent of faer).
    #[test]
    fn factor_and_solve_satisfy_the_system() {
        for n in [1usize, 7, 300, 600] {
            let mut seed = 7u64;
            let mut next = || {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            };
            let m: Vec<f64> = (0..n * n).map(|_| next()).collect();
            let mut a = vec![0.0; n * n];
            for i in 0..n {
                for j in 0..n {
                    let mut s = 0.0;
                    for k in 0..n {
                        s += m[i * n + k] * m[j * n + k];
                    }
                    a[i * n + j] = s + if i == j { n as f64 } else { 0.0 };
                }
            }
            let b: Vec<f64> = (0..2 * n).map(|_| next()).collect();
            // only the lower triangle (column-major) may be read
            let mut lower = a.clone();
            for j in 0..n {
                for i in 0..j {
                    lower[j * n + i] = f64::NAN;
                }
            }
            let y = symmetric_matvec(&lower, n, &b[..n]);
            for i in 0..n {
                let direct: f64 = (0..n).map(|j| a[i * n + j] * b[j]).sum();
                assert!((y[i] - direct).abs() < 1e-12 * (1.0 + direct.abs()) * n as f64);
            }
            let chol = Cholesky::factor(lower, n)
                .unwrap()
                .expect("SPD matrix refused");
            let mut x = b.clone();
            chol.solve_in_place(&mut x);
            for c in 0..2 {
                for i in 0..n {
                    let ax: f64 = (0..n).map(|j| a[i * n + j] * x[c * n + j]).sum();
                    assert!(
                        (ax - b[c * n + i]).abs() < 1e-10,
                        "n={n} residual {}",
                        ax - b[c * n + i]
                    );
                }
            }
        }
    }

    #[test]
    fn mirrored_values_survive_the_factorisation() {
        let n = 700;
        let mut a: Vec<f64> = (0..n * n)
            .map(|t| {
                let (i, j) = (t / n, t % n);
                if j < i {
                    f64::NAN
                } else if i == j {
                    3.0
                } else {
                    1.0 / (1.0 + (i + j) as f64)
                }
            })
            .collect();
        mirror_upper_to_lower(&mut a, n);
        let full = a.clone();
        let diag: Vec<f64> = (0..n).map(|i| a[i * n + i]).collect();
        let chol = Cholesky::factor(a, n).unwrap().unwrap();
        let x: Vec<f64> = (0..n).map(|i| (i as f64).cos()).collect();
        let y = symmetric_matvec_strict_upper(chol.buffer(), &diag, n, &x);
        for i in 0..n {
            let direct: f64 = (0..n).map(|j| full[i * n + j] * x[j]).sum();
            assert!((y[i] - direct).abs() < 1e-12 * n as f64);
        }
    }

    #[test]
    fn gram_products_add_to_the_lower_triangle() {
        let (n, k) = (70, 33);
        let p: Vec<f64> = (0..n * k).map(|t| ((t * 37 % 101) as f64).sin()).collect();
        let mut a = vec![1.0; n * n];
        add_gram_lower(&mut a, n, &p, k);
        for j in 0..n {
            for i in j..n {
                let s: f64 = (0..k).map(|c| p[i * k + c] * p[j * k + c]).sum();
                assert!((a[j * n + i] - 1.0 - s).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn indefinite_matrices_are_refused() {
        let n = 600;
        let a: Vec<f64> = (0..n * n)
            .map(|t| {
                let (i, j) = (t / n, t % n);
                if i == j {
                    if i == 500 {
                        -1.0
                    } else {
                        2.0
                    }
                } else {
                    1.0 / (1.0 + (i as f64 - j as f64).abs())
                }
            })
            .collect();
        assert!(Cholesky::factor(a, n).unwrap().is_none());
    }
}
