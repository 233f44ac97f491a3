//! Helpers shared by the reference and invariance tests, written independently of the crate:
//! rotations, real spherical harmonics (l ≤ 3, docs/science.md §0 convention, written out as
//! polynomials) and the matrices that rotate them.

#![allow(dead_code)]
// index loops read closer to the formulas
#![allow(clippy::needless_range_loop)]

use std::f64::consts::PI;

pub type Vec3 = [f64; 3];
pub type Mat3 = [[f64; 3]; 3];

/// Rotation matrix of the unit quaternion (w, x, y, z) (normalised here).
pub fn rotation(q: [f64; 4]) -> Mat3 {
    let n = q.iter().map(|x| x * x).sum::<f64>().sqrt();
    let [w, x, y, z] = q.map(|v| v / n);
    [
        [
            1.0 - 2.0 * (y * y + z * z),
            2.0 * (x * y - w * z),
            2.0 * (x * z + w * y),
        ],
        [
            2.0 * (x * y + w * z),
            1.0 - 2.0 * (x * x + z * z),
            2.0 * (y * z - w * x),
        ],
        [
            2.0 * (x * z - w * y),
            2.0 * (y * z + w * x),
            1.0 - 2.0 * (x * x + y * y),
        ],
    ]
}

pub fn apply(m: &Mat3, v: &Vec3) -> Vec3 {
    [0, 1, 2].map(|a| m[a][0] * v[0] + m[a][1] * v[1] + m[a][2] * v[2])
}

pub fn matmul(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut c = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            c[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    c
}

pub fn transpose(a: &Mat3) -> Mat3 {
    [0, 1, 2].map(|i| [0, 1, 2].map(|j| a[j][i]))
}

/// Cell rows rotated: H' = H Rᵀ (every cell vector rotated).
pub fn rotate_cell(cell: &Mat3, r: &Mat3) -> Mat3 {
    [0, 1, 2].map(|a| apply(r, &cell[a]))
}

pub fn det(m: &Mat3) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

pub fn inverse(m: &Mat3) -> Mat3 {
    let d = det(m);
    let mut inv = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            let (a, b) = ((j + 1) % 3, (j + 2) % 3);
            let (c, e) = ((i + 1) % 3, (i + 2) % 3);
            inv[i][j] = (m[a][c] * m[b][e] - m[a][e] * m[b][c]) / d;
        }
    }
    inv
}

/// Real spherical harmonics Y_lm(v̂), m = −l..l, for l ≤ 3 (featomic's convention: the l = 1
/// functions are √(3/4π) (y, z, x)/r).
pub fn real_ylm(l: usize, v: &Vec3) -> Vec<f64> {
    let r = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    let (x, y, z) = (v[0] / r, v[1] / r, v[2] / r);
    match l {
        0 => vec![0.5 / PI.sqrt()],
        1 => {
            let c = (3.0 / (4.0 * PI)).sqrt();
            vec![c * y, c * z, c * x]
        }
        2 => {
            let c = 0.5 * (15.0 / PI).sqrt();
            vec![
                c * x * y,
                c * y * z,
                0.25 * (5.0 / PI).sqrt() * (3.0 * z * z - 1.0),
                c * x * z,
                0.5 * c * (x * x - y * y),
            ]
        }
        3 => {
            let a = 0.25 * (35.0 / (2.0 * PI)).sqrt();
            let b = 0.5 * (105.0 / PI).sqrt();
            let c = 0.25 * (21.0 / (2.0 * PI)).sqrt();
            let d = 0.25 * (7.0 / PI).sqrt();
            vec![
                a * y * (3.0 * x * x - y * y),
                b * x * y * z,
                c * y * (5.0 * z * z - 1.0),
                d * z * (5.0 * z * z - 3.0),
                c * x * (5.0 * z * z - 1.0),
                0.5 * b * z * (x * x - y * y),
                a * x * (x * x - 3.0 * y * y),
            ]
        }
        _ => panic!("real_ylm: l ≤ 3 only"),
    }
}

/// Solves the small dense system a x = b (Gaussian elimination with partial pivoting),
/// b with several columns.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
    let n = a.len();
    for c in 0..n {
        let p = (c..n)
            .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
            .unwrap();
        a.swap(c, p);
        b.swap(c, p);
        for r in c + 1..n {
            let f = a[r][c] / a[c][c];
            for k in c..n {
                a[r][k] -= f * a[c][k];
            }
            for k in 0..b[r].len() {
                b[r][k] -= f * b[c][k];
            }
        }
    }
    for c in (0..n).rev() {
        for k in 0..b[c].len() {
            let s: f64 = (c + 1..n).map(|j| a[c][j] * b[j][k]).sum();
            b[c][k] = (b[c][k] - s) / a[c][c];
        }
    }
    b
}

/// The (2l+1)² matrix D with Y_l(R v) = D Y_l(v) for every v, by least squares on 40 fixed
/// directions (the fit residual is checked: the harmonics must span a representation).
pub fn wigner(l: usize, r: &Mat3) -> Vec<Vec<f64>> {
    let nm = 2 * l + 1;
    let dirs: Vec<Vec3> = (0..40)
        .map(|q| {
            let t = (q as f64 + 0.5) / 40.0;
            let z = 1.0 - 2.0 * t;
            let phi = q as f64 * 2.399963229728653;
            let s = (1.0 - z * z).sqrt();
            [s * phi.cos(), s * phi.sin(), z]
        })
        .collect();
    let a: Vec<Vec<f64>> = dirs.iter().map(|v| real_ylm(l, v)).collect();
    let b: Vec<Vec<f64>> = dirs.iter().map(|v| real_ylm(l, &apply(r, v))).collect();
    // normal equations: (AᵀA) Dᵀ = AᵀB
    let ata: Vec<Vec<f64>> = (0..nm)
        .map(|i| {
            (0..nm)
                .map(|j| a.iter().map(|row| row[i] * row[j]).sum())
                .collect()
        })
        .collect();
    let atb: Vec<Vec<f64>> = (0..nm)
        .map(|i| {
            (0..nm)
                .map(|j| a.iter().zip(&b).map(|(ra, rb)| ra[i] * rb[j]).sum())
                .collect()
        })
        .collect();
    let dt = solve(ata, atb);
    let d: Vec<Vec<f64>> = (0..nm)
        .map(|i| (0..nm).map(|j| dt[j][i]).collect())
        .collect();
    for (ra, rb) in a.iter().zip(&b) {
        for m in 0..nm {
            let fit: f64 = (0..nm).map(|k| d[m][k] * ra[k]).sum();
            assert!(
                (fit - rb[m]).abs() < 1e-12,
                "the harmonics of l = {l} do not rotate"
            );
        }
    }
    d
}

/// Rotates features [i][a][(l, m, n)] by the harmonics' rotation matrices.
pub fn rotate_features(v: &[f64], lmax: usize, nr: usize, r: &Mat3) -> Vec<f64> {
    let f = (lmax + 1) * (lmax + 1) * nr;
    let d: Vec<_> = (0..=lmax).map(|l| wigner(l, r)).collect();
    let mut out = vec![0.0; v.len()];
    for (src, dst) in v.chunks(f).zip(out.chunks_mut(f)) {
        for l in 0..=lmax {
            for m in 0..2 * l + 1 {
                for n in 0..nr {
                    dst[(l * l + m) * nr + n] = (0..2 * l + 1)
                        .map(|k| d[l][m][k] * src[(l * l + k) * nr + n])
                        .sum();
                }
            }
        }
    }
    out
}

/// Largest absolute entry.
pub fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0f64, |m, x| m.max(x.abs()))
}

/// Largest absolute difference.
pub fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
}
