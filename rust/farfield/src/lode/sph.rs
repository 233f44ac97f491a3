//! Real spherical harmonics Y_lm(v̂) (featomic / science.md §0 convention) and their
//! gradients with respect to the (non-normalised) vector v.
//!
//! TODO(merge soap): replace with `math::spherical_harmonics` once branch `soap` lands.

use std::f64::consts::PI;

/// Evaluates Y_lm(v̂) for l = 0..=lmax into `y` ((lmax+1)² entries) and, when `grad` is
/// given, ∂Y_lm(v̂)/∂v_α into `grad[α][lm]`.
pub fn real_sph(v: [f64; 3], lmax: usize, y: &mut [f64], grad: Option<&mut [Vec<f64>; 3]>) {
    let [x, yy, z] = v;
    let s = x * x + yy * yy + z * z;
    let r = s.sqrt();
    let n = (lmax + 1) * (lmax + 1);
    // A_m = Re (x+iy)^m, B_m = Im (x+iy)^m
    let mut am = vec![0.0; lmax + 1];
    let mut bm = vec![0.0; lmax + 1];
    am[0] = 1.0;
    for m in 1..=lmax {
        am[m] = x * am[m - 1] - yy * bm[m - 1];
        bm[m] = x * bm[m - 1] + yy * am[m - 1];
    }
    // solid Legendre Q(l, m)(z, s) with derivatives wrt z and s (independent variables)
    let idx = |l: usize, m: usize| l * (lmax + 1) + m;
    let sz = (lmax + 1) * (lmax + 1);
    let mut q = vec![0.0; sz];
    let mut qz = vec![0.0; sz];
    let mut qs = vec![0.0; sz];
    for m in 0..=lmax {
        let mut dfact = 1.0;
        for k in 1..=m {
            dfact *= (2 * k - 1) as f64;
        }
        q[idx(m, m)] = dfact;
        if m < lmax {
            q[idx(m + 1, m)] = (2 * m + 1) as f64 * z * dfact;
            qz[idx(m + 1, m)] = (2 * m + 1) as f64 * dfact;
        }
        for l in (m + 2)..=lmax {
            let a = (2 * l - 1) as f64;
            let b = (l + m - 1) as f64;
            let c = (l - m) as f64;
            q[idx(l, m)] = (a * z * q[idx(l - 1, m)] - b * s * q[idx(l - 2, m)]) / c;
            qz[idx(l, m)] =
                (a * (q[idx(l - 1, m)] + z * qz[idx(l - 1, m)]) - b * s * qz[idx(l - 2, m)]) / c;
            qs[idx(l, m)] =
                (a * z * qs[idx(l - 1, m)] - b * (q[idx(l - 2, m)] + s * qs[idx(l - 2, m)])) / c;
        }
    }
    let mut want_grad = grad;
    for l in 0..=lmax {
        let rl = r.powi(l as i32);
        let base = l * l + l;
        for m in 0..=l {
            // N_lm = sqrt((2l+1)/(4π) (l-m)!/(l+m)!)
            let mut ratio = 1.0;
            for k in (l - m + 1)..=(l + m) {
                ratio /= k as f64;
            }
            let mut norm = ((2 * l + 1) as f64 / (4.0 * PI) * ratio).sqrt();
            if m > 0 {
                norm *= std::f64::consts::SQRT_2;
            }
            let qq = q[idx(l, m)];
            let zc = norm * qq * am[m];
            let zs = norm * qq * bm[m];
            y[base + m] = zc / rl;
            if m > 0 {
                y[base - m] = zs / rl;
            }
            if let Some(g) = want_grad.as_deref_mut() {
                // gradient of the solid harmonic Z = norm Q(z,s) A_m(x,y)
                let dq = [
                    2.0 * x * qs[idx(l, m)],
                    2.0 * yy * qs[idx(l, m)],
                    qz[idx(l, m)] + 2.0 * z * qs[idx(l, m)],
                ];
                let (dax, day, dbx, dby) = if m > 0 {
                    let mf = m as f64;
                    (mf * am[m - 1], -mf * bm[m - 1], mf * bm[m - 1], mf * am[m - 1])
                } else {
                    (0.0, 0.0, 0.0, 0.0)
                };
                let gzc = [
                    norm * (dq[0] * am[m] + qq * dax),
                    norm * (dq[1] * am[m] + qq * day),
                    norm * dq[2] * am[m],
                ];
                let gzs = [
                    norm * (dq[0] * bm[m] + qq * dbx),
                    norm * (dq[1] * bm[m] + qq * dby),
                    norm * dq[2] * bm[m],
                ];
                let lf = l as f64;
                for a in 0..3 {
                    g[a][base + m] = gzc[a] / rl - lf * zc * v[a] / (rl * s);
                    if m > 0 {
                        g[a][base - m] = gzs[a] / rl - lf * zs * v[a] / (rl * s);
                    }
                }
            }
        }
    }
    debug_assert!(y.len() >= n);
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
