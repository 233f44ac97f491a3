//! Small fixed-size linear algebra (3-vectors and 3×3 matrices).

/// A 3-vector.
pub type Vec3 = [f64; 3];
/// A 3×3 matrix, row-major.
pub type Mat3 = [[f64; 3]; 3];

/// Dot product.
#[inline]
pub fn dot(a: &Vec3, b: &Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Euclidean norm.
#[inline]
pub fn norm(a: &Vec3) -> f64 {
    dot(a, a).sqrt()
}

/// Cross product.
#[inline]
pub fn cross(a: &Vec3, b: &Vec3) -> Vec3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// Determinant.
pub fn det3(m: &Mat3) -> f64 {
    dot(&m[0], &cross(&m[1], &m[2]))
}

/// Inverse (caller checks that the determinant is not zero).
pub fn inverse3(m: &Mat3) -> Mat3 {
    let det = det3(m);
    let c0 = cross(&m[1], &m[2]);
    let c1 = cross(&m[2], &m[0]);
    let c2 = cross(&m[0], &m[1]);
    // columns of the inverse are the cross products / det
    let mut inv = [[0.0; 3]; 3];
    for i in 0..3 {
        inv[i][0] = c0[i] / det;
        inv[i][1] = c1[i] / det;
        inv[i][2] = c2[i] / det;
    }
    inv
}

/// Matrix product a · b.
pub fn matmul(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut c = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            c[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    c
}

/// Transpose.
pub fn transpose(a: &Mat3) -> Mat3 {
    let mut t = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            t[i][j] = a[j][i];
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_is_inverse() {
        let m = [[1.0, 0.2, 0.3], [0.1, 2.0, 0.4], [0.5, 0.6, 3.0]];
        let p = matmul(&m, &inverse3(&m));
        for i in 0..3 {
            for j in 0..3 {
                let e = if i == j { 1.0 } else { 0.0 };
                assert!((p[i][j] - e).abs() < 1e-14);
            }
        }
    }
}
