//! Symmetric eigen-decomposition (cyclic Jacobi) and matrix functions of small dense
//! symmetric matrices, used by the Löwdin orthonormalisation of radial bases.

use crate::error::{Error, Result};

/// Eigenvalues (ascending) and eigenvectors (columns of the row-major `n × n` matrix) of a
/// symmetric matrix.
pub fn symmetric_eigen(matrix: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(matrix.len(), n * n);
    let mut a = matrix.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let mut off = 0.0;
        let mut diag = 0.0;
        for i in 0..n {
            diag += a[i * n + i] * a[i * n + i];
            for j in 0..n {
                if i != j {
                    off += a[i * n + j] * a[i * n + j];
                }
            }
        }
        if off <= 1e-30 * diag || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let akp = a[k * n + p];
                    let akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let apk = a[p * n + k];
                    let aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let vkp = v[k * n + p];
                    let vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| a[i * n + i].total_cmp(&a[j * n + j]));
    let values = order.iter().map(|&i| a[i * n + i]).collect();
    let mut vectors = vec![0.0; n * n];
    for (new, &old) in order.iter().enumerate() {
        for k in 0..n {
            vectors[k * n + new] = v[k * n + old];
        }
    }
    (values, vectors)
}

/// `S^{−1/2}` of a symmetric positive-definite matrix (Löwdin), row-major. Fails when the
/// smallest eigenvalue is below `1e-12` times the largest (the basis is near-degenerate).
pub fn inverse_sqrt(matrix: &[f64], n: usize) -> Result<Vec<f64>> {
    let (values, vectors) = symmetric_eigen(matrix, n);
    let max = values.iter().cloned().fold(0.0, f64::max);
    if values.is_empty() || values[0] <= 1e-12 * max {
        return Err(Error::parameter(
            "max_radial",
            "the radial overlap matrix is singular or ill-conditioned, use a smaller max_radial",
        ));
    }
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            let mut s = 0.0;
            for k in 0..n {
                s += vectors[i * n + k] * vectors[j * n + k] / values[k].sqrt();
            }
            out[i * n + j] = s;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decomposes_and_inverts() {
        let n = 4;
        let m = [
            4.0, 1.0, 0.5, 0.2, 1.0, 3.0, 0.3, 0.1, 0.5, 0.3, 2.0, 0.4, 0.2, 0.1, 0.4, 1.0,
        ];
        let (vals, vecs) = symmetric_eigen(&m, n);
        for k in 0..n {
            for i in 0..n {
                let mv: f64 = (0..n).map(|j| m[i * n + j] * vecs[j * n + k]).sum();
                assert!((mv - vals[k] * vecs[i * n + k]).abs() < 1e-12);
            }
        }
        let r = inverse_sqrt(&m, n).unwrap();
        // r m r = 1
        for i in 0..n {
            for j in 0..n {
                let mut s = 0.0;
                for a in 0..n {
                    for b in 0..n {
                        s += r[i * n + a] * m[a * n + b] * r[b * n + j];
                    }
                }
                assert!((s - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
        assert!(inverse_sqrt(&[1.0, 1.0, 1.0, 1.0], 2).is_err());
    }
}
