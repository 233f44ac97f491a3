//! Adapter from `math::spherical_harmonics` (featomic convention) to the layout LODE uses:
//! values\[lm\] and gradients\[α\]\[lm\].

use crate::math::spherical_harmonics::SphericalHarmonics;
#[cfg(test)]
use std::f64::consts::PI;

/// Evaluates Y_lm(v̂) for l = 0..=lmax into `y` ((lmax+1)² entries) and, when `grad` is
/// given, ∂Y_lm(v̂)/∂v_α into `grad[α][lm]`.
pub fn real_sph(v: [f64; 3], lmax: usize, y: &mut [f64], grad: Option<&mut [Vec<f64>; 3]>) {
    let sh = SphericalHarmonics::new(lmax);
    match grad {
        None => sh.compute(&v, y),
        Some(g) => {
            let n = (lmax + 1) * (lmax + 1);
            let mut flat = vec![0.0; 3 * n];
            sh.compute_with_gradients(&v, y, &mut flat);
            for lm in 0..n {
                for a in 0..3 {
                    g[a][lm] = flat[3 * lm + a];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_orders_and_gradient() {
        let v = [0.3, -0.7, 0.5];
        let r = (0.09f64 + 0.49 + 0.25).sqrt();
        let lmax = 4;
        let n = 25;
        let mut y = vec![0.0; n];
        let mut g = [vec![0.0; n], vec![0.0; n], vec![0.0; n]];
        real_sph(v, lmax, &mut y, Some(&mut g));
        let c1 = (3.0 / (4.0 * PI)).sqrt();
        assert!((y[0] - 0.5 / PI.sqrt()).abs() < 1e-14);
        assert!((y[1] - c1 * v[1] / r).abs() < 1e-14);
        assert!((y[2] - c1 * v[2] / r).abs() < 1e-14);
        assert!((y[3] - c1 * v[0] / r).abs() < 1e-14);
        // Y_2,-2 = sqrt(15/4π) x y / r²
        assert!((y[4] - (15.0 / (4.0 * PI)).sqrt() * v[0] * v[1] / (r * r)).abs() < 1e-14);
        // Y_20 = sqrt(5/16π)(3z²-r²)/r²
        let y20 = (5.0 / (16.0 * PI)).sqrt() * (3.0 * v[2] * v[2] - r * r) / (r * r);
        assert!((y[6] - y20).abs() < 1e-14);
        let h = 1e-6;
        for a in 0..3 {
            let mut vp = v;
            let mut vm = v;
            vp[a] += h;
            vm[a] -= h;
            let mut yp = vec![0.0; n];
            let mut ym = vec![0.0; n];
            real_sph(vp, lmax, &mut yp, None);
            real_sph(vm, lmax, &mut ym, None);
            for k in 0..n {
                let fd = (yp[k] - ym[k]) / (2.0 * h);
                assert!((fd - g[a][k]).abs() < 1e-8, "a={a} k={k} {fd} {}", g[a][k]);
            }
        }
        // orthonormality check through a sum rule: Σ_m Y_lm² = (2l+1)/4π
        for l in 0..=lmax {
            let s: f64 = (l * l..(l + 1) * (l + 1)).map(|k| y[k] * y[k]).sum();
            assert!((s - (2 * l + 1) as f64 / (4.0 * PI)).abs() < 1e-13);
        }
    }
}
