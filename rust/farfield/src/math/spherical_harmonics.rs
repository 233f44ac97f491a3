//! Real spherical harmonics in featomic's convention, for all `l ≤ lmax` at once.
//!
//! `Y_{l,m>0} = √2 N_lm P_l^m(cos θ) cos(mφ)`, `Y_{l,0} = N_l0 P_l(cos θ)`,
//! `Y_{l,m<0} = √2 N_l|m| P_l^|m|(cos θ) sin(|m|φ)`, with `P_l^m` the associated Legendre
//! functions *without* the Condon–Shortley phase, so that `Y_{1,-1} ∝ y`, `Y_{1,0} ∝ z`,
//! `Y_{1,1} ∝ x` with positive prefactor √(3/4π). Components are stored `l` by `l`, `m = −l..l`:
//! the index of `(l, m)` is `l² + l + m` ([`lm_index`]), `(lmax+1)²` values in all.
//!
//! The recursion uses fully normalised associated Legendre functions multiplied by
//! `Re/Im (x + i y)^m` (no division by sin θ), stable to high `l`.

use crate::math::linalg::Vec3;

/// Index of `(l, m)` in the flat `l² + l + m` layout.
#[inline]
pub fn lm_index(l: usize, m: isize) -> usize {
    ((l * l + l) as isize + m) as usize
}

/// Number of stored components for all `l ≤ lmax`: `(lmax+1)²`.
#[inline]
pub fn lm_count(lmax: usize) -> usize {
    (lmax + 1) * (lmax + 1)
}

/// Precomputed recursion coefficients for real spherical harmonics up to `lmax`.
#[derive(Debug, Clone)]
pub struct SphericalHarmonics {
    lmax: usize,
    /// a_lm = sqrt((4l²-1)/(l²-m²)), at `l*(lmax+1)+m`
    a: Vec<f64>,
    /// diagonal factors sqrt((2m+1)/(2m))
    diag: Vec<f64>,
}

impl SphericalHarmonics {
    /// Prepares the recursion for `l = 0..=lmax`.
    pub fn new(lmax: usize) -> SphericalHarmonics {
        let w = lmax + 2;
        let mut a = vec![0.0; (lmax + 2) * w];
        for l in 0..=lmax + 1 {
            for m in 0..l {
                let (lf, mf) = (l as f64, m as f64);
                a[l * w + m] = ((4.0 * lf * lf - 1.0) / (lf * lf - mf * mf)).sqrt();
            }
        }
        let mut diag = vec![0.0; lmax + 2];
        for m in 1..=lmax + 1 {
            diag[m] = ((2 * m + 1) as f64 / (2 * m) as f64).sqrt();
        }
        SphericalHarmonics { lmax, a, diag }
    }

    /// The largest `l` computed.
    pub fn lmax(&self) -> usize {
        self.lmax
    }

    /// Fully normalised `P̄_l^m(z)` (without the sin^m θ factor) for l ≤ lmax+1, m ≤ l, at
    /// `l*(lmax+2)+m`.
    fn legendre(&self, z: f64, lmax: usize, out: &mut [f64]) {
        let w = self.lmax + 2;
        let inv_sqrt_4pi = 0.5 / std::f64::consts::PI.sqrt();
        out[0] = inv_sqrt_4pi;
        for m in 0..=lmax {
            if m > 0 {
                out[m * w + m] = out[(m - 1) * w + (m - 1)] * self.diag[m];
            }
            if m < lmax {
                out[(m + 1) * w + m] = ((2 * m + 3) as f64).sqrt() * z * out[m * w + m];
            }
            for l in m + 2..=lmax {
                let alm = self.a[l * w + m];
                let al1 = self.a[(l - 1) * w + m];
                out[l * w + m] = alm * (z * out[(l - 1) * w + m] - out[(l - 2) * w + m] / al1);
            }
        }
    }

    /// Real spherical harmonics `Y_lm(r̂)` of the direction of `r` (any non-zero length) for
    /// all `l ≤ lmax`, written to `values[lm_index(l, m)]` (length at least `(lmax+1)²`).
    /// For `r = 0` only `Y_00` is meaningful; the direction is taken as +z.
    pub fn compute(&self, r: &Vec3, values: &mut [f64]) {
        self.compute_impl(r, values, None);
    }

    /// Same as [`compute`](Self::compute), also writing the gradients with respect to the
    /// vector `r`: `gradients[3 * lm_index(l, m) + α] = ∂Y_lm(r̂)/∂r_α` (length at least
    /// `3 (lmax+1)²`). The gradient is zero at `r = 0` by convention.
    pub fn compute_with_gradients(&self, r: &Vec3, values: &mut [f64], gradients: &mut [f64]) {
        self.compute_impl(r, values, Some(gradients));
    }

    fn compute_impl(&self, r: &Vec3, values: &mut [f64], gradients: Option<&mut [f64]>) {
        let lmax = self.lmax;
        let norm = (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]).sqrt();
        let (x, y, z) = if norm > 0.0 {
            (r[0] / norm, r[1] / norm, r[2] / norm)
        } else {
            (0.0, 0.0, 1.0)
        };
        let w = lmax + 2;
        let need_grad = gradients.is_some();
        let lp = if need_grad { lmax + 1 } else { lmax };
        // stack buffers for small lmax, heap otherwise
        let mut p = vec![0.0; (lmax + 2) * w];
        self.legendre(z, lp, &mut p);
        // S_m = Re (x+iy)^m, T_m = Im (x+iy)^m
        let mut s = vec![0.0; lmax + 1];
        let mut t = vec![0.0; lmax + 1];
        s[0] = 1.0;
        t[0] = 0.0;
        for m in 1..=lmax {
            s[m] = s[m - 1] * x - t[m - 1] * y;
            t[m] = s[m - 1] * y + t[m - 1] * x;
        }
        let sqrt2 = std::f64::consts::SQRT_2;
        for l in 0..=lmax {
            values[lm_index(l, 0)] = p[l * w];
            for m in 1..=l {
                let pl = sqrt2 * p[l * w + m];
                values[lm_index(l, m as isize)] = pl * s[m];
                values[lm_index(l, -(m as isize))] = pl * t[m];
            }
        }
        if let Some(grad) = gradients {
            if norm == 0.0 {
                grad[..3 * lm_count(lmax)].fill(0.0);
                return;
            }
            let n = [x, y, z];
            let inv = 1.0 / norm;
            for l in 0..=lmax {
                for m in 0..=l {
                    let mf = m as f64;
                    // dP̄_l^m/dz = sqrt((l-m)(l+m+1)) P̄_l^{m+1}
                    let dp = if m < l {
                        (((l - m) * (l + m + 1)) as f64).sqrt() * p[l * w + m + 1]
                    } else {
                        0.0
                    };
                    let pv = p[l * w + m];
                    let (sm1, tm1) = if m > 0 {
                        (s[m - 1], t[m - 1])
                    } else {
                        (0.0, 0.0)
                    };
                    // gradients of the polynomial extension F(n) in n-space
                    let fac = if m == 0 { 1.0 } else { sqrt2 };
                    let fc = [fac * pv * mf * sm1, -fac * pv * mf * tm1, fac * dp * s[m]];
                    write_projected(grad, lm_index(l, m as isize), &fc, &n, inv);
                    if m > 0 {
                        let fs = [fac * pv * mf * tm1, fac * pv * mf * sm1, fac * dp * t[m]];
                        write_projected(grad, lm_index(l, -(m as isize)), &fs, &n, inv);
                    }
                }
            }
        }
    }
}

#[inline]
fn write_projected(grad: &mut [f64], idx: usize, f: &[f64; 3], n: &[f64; 3], inv: f64) {
    let d = f[0] * n[0] + f[1] * n[1] + f[2] * n[2];
    for a in 0..3 {
        grad[3 * idx + a] = (f[a] - n[a] * d) * inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn fibonacci_sphere(n: usize) -> Vec<Vec3> {
        let golden = PI * (3.0 - 5f64.sqrt());
        (0..n)
            .map(|i| {
                let z = 1.0 - 2.0 * (i as f64 + 0.5) / n as f64;
                let r = (1.0 - z * z).sqrt();
                let phi = golden * i as f64;
                [r * phi.cos(), r * phi.sin(), z]
            })
            .collect()
    }

    #[test]
    fn closed_forms() {
        let sh = SphericalHarmonics::new(2);
        let r = [0.3, -0.7, 1.1];
        let n = (0.09f64 + 0.49 + 1.21).sqrt();
        let (x, y, z) = (r[0] / n, r[1] / n, r[2] / n);
        let mut v = vec![0.0; 9];
        sh.compute(&r, &mut v);
        let c1 = (3.0 / (4.0 * PI)).sqrt();
        let expected = [
            0.5 / PI.sqrt(),
            c1 * y,
            c1 * z,
            c1 * x,
            0.5 * (15.0 / PI).sqrt() * x * y,
            0.5 * (15.0 / PI).sqrt() * y * z,
            0.25 * (5.0 / PI).sqrt() * (3.0 * z * z - 1.0),
            0.5 * (15.0 / PI).sqrt() * x * z,
            0.25 * (15.0 / PI).sqrt() * (x * x - y * y),
        ];
        for k in 0..9 {
            assert!(
                (v[k] - expected[k]).abs() < 1e-14,
                "{k}: {} {}",
                v[k],
                expected[k]
            );
        }
    }

    #[test]
    fn orthonormal_by_quadrature() {
        // Fibonacci lattice is not an exact quadrature; use Gauss-Legendre in z x uniform phi.
        let lmax = 8;
        let sh = SphericalHarmonics::new(lmax);
        let nq = 24;
        let (zs, ws) = crate::math::quadrature::gauss_legendre(nq);
        let nphi = 2 * nq;
        let nlm = lm_count(lmax);
        let mut gram = vec![0.0; nlm * nlm];
        let mut v = vec![0.0; nlm];
        for (zi, wi) in zs.iter().zip(&ws) {
            for k in 0..nphi {
                let phi = 2.0 * PI * k as f64 / nphi as f64;
                let s = (1.0 - zi * zi).sqrt();
                sh.compute(&[s * phi.cos(), s * phi.sin(), *zi], &mut v);
                let w = wi * 2.0 * PI / nphi as f64;
                for a in 0..nlm {
                    for b in 0..nlm {
                        gram[a * nlm + b] += w * v[a] * v[b];
                    }
                }
            }
        }
        for a in 0..nlm {
            for b in 0..nlm {
                let e = if a == b { 1.0 } else { 0.0 };
                assert!((gram[a * nlm + b] - e).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn gradients_finite_differences() {
        let lmax = 7;
        let sh = SphericalHarmonics::new(lmax);
        let nlm = lm_count(lmax);
        for r in fibonacci_sphere(7) {
            let r = [1.3 * r[0], 1.3 * r[1], 1.3 * r[2]];
            let mut v = vec![0.0; nlm];
            let mut g = vec![0.0; 3 * nlm];
            sh.compute_with_gradients(&r, &mut v, &mut g);
            let h = 1e-6;
            for a in 0..3 {
                let mut rp = r;
                let mut rm = r;
                rp[a] += h;
                rm[a] -= h;
                let mut vp = vec![0.0; nlm];
                let mut vm = vec![0.0; nlm];
                sh.compute(&rp, &mut vp);
                sh.compute(&rm, &mut vm);
                for k in 0..nlm {
                    let fd = (vp[k] - vm[k]) / (2.0 * h);
                    assert!((fd - g[3 * k + a]).abs() < 1e-8, "k={k} a={a}");
                }
            }
        }
    }

    #[test]
    fn high_l_is_finite_and_normalised_along_z() {
        let sh = SphericalHarmonics::new(60);
        let mut v = vec![0.0; lm_count(60)];
        sh.compute(&[0.0, 0.0, 2.0], &mut v);
        // Y_l0(ẑ) = sqrt((2l+1)/4π)
        for l in 0..=60 {
            let e = ((2 * l + 1) as f64 / (4.0 * PI)).sqrt();
            assert!((v[lm_index(l, 0)] - e).abs() < 1e-12 * e);
        }
    }
}
