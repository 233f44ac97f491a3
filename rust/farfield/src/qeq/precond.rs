#![allow(clippy::needless_range_loop)]
//! Preconditioners of the periodic QEq matrix.
//!
//! The Jacobi-preconditioned CG needs O(L) iterations in a box of side L: the long-wavelength
//! charge modes have eigenvalues ≈ 4π k_e ρ/k² that grow as L². The *Fourier preconditioner*
//! treats them explicitly: write A ≈ D + L with L = k_e Σ_k G(k) e^{ik·(r_i − r_j)} the smooth
//! Coulomb interaction of Gaussian charges of width η_p (G(k) = 4π e^{−η_p²k²/2}/(V k²)) and D
//! the rest of the diagonal, D_i = A_ii − k_e Σ_k G(k). By Woodbury,
//! (D + EGE*)⁻¹ = D⁻¹ − D⁻¹E(G⁻¹ + E*D⁻¹E)⁻¹E*D⁻¹, and with the random-phase approximation
//! E*D⁻¹E ≈ S·I (S = Σ_i 1/D_i) the inner inverse is the Fourier multiplier
//! f(k) = k_e G/(1 + S k_e G):
//!
//! M₀⁻¹ r = x − D⁻¹ Φ\[f\](x),  x = D⁻¹ r,
//!
//! where Φ\[h\](x)_i = Σ_k h(k) Re(e^{−ik·r_i} Σ_j x_j e^{ik·r_j}) is evaluated on a coarse
//! B-spline mesh (order 4, spacing ≈ 0.8 η_p). The random-phase error δ ~ N^{−1/2} of
//! E*D⁻¹E ≈ S is amplified by S G (which grows as L²) for the longest waves, so one Neumann
//! step on the inner matrix K = I + G^{1/2}E*D⁻¹EG^{1/2} with P = (1 + SG)⁻¹,
//! K⁻¹ ≈ 2P − PKP, is applied, which squares δ:
//!
//! M⁻¹ r = x − D⁻¹ (Φ\[2f − fP\](x) − Φ\[f\](D⁻¹ Φ\[f\](x))).
//!
//! O(N) per application (two spreads, five coarse FFTs, three gathers), no accuracy needed
//! since it only preconditions. Symmetric by construction (gather is the transpose of
//! spreading); positive definite while the inner error stays below 1/(SG) (the CG falls back to
//! Jacobi if rᵀM⁻¹r ≤ 0 ever happens). The iteration count becomes nearly independent of N
//! (≈ 12-15 against ≈ 50 for Jacobi at N = 10⁴ water-like).

use rayon::prelude::*;

use crate::math::linalg::Vec3;
use crate::mesh::bspline::{self, signed_frequency};
use crate::mesh::fft::{Fft3, C64};
use crate::system::System;

const ORDER: usize = 4;

/// The coarse-mesh Fourier preconditioner of a periodic QEq matrix.
pub struct FourierPreconditioner {
    n: [usize; 3],
    fft: Fft3,
    /// f·|b|² per spectrum entry ([H][K2][K1] layout)
    multiplier: Vec<f64>,
    /// (2f − fP)·|b|² per spectrum entry
    multiplier2: Vec<f64>,
    /// 1 / D_i
    inv_d: Vec<f64>,
    /// per atom: base index per axis and B-spline weights
    stencil: Vec<([usize; 3], [[f64; ORDER]; 3])>,
}

impl FourierPreconditioner {
    /// Builds the preconditioner for the periodic system with A's diagonal `diag`, Coulomb
    /// prefactor `prefactor` and smooth width `eta_p`. Returns None when the reduced diagonal
    /// D would not be positive (then Jacobi is used).
    pub fn new(
        system: &System,
        diag: &[f64],
        prefactor: f64,
        eta_p: f64,
    ) -> Option<FourierPreconditioner> {
        let cell = system.cell()?;
        let volume = cell.volume();
        let recip = cell.reciprocal();
        let inv = *cell.inverse();
        let h = 0.8 * eta_p;
        let mut n = [0usize; 3];
        for a in 0..3 {
            // lattice-plane spacing along axis a is 2π/|b_a|
            let b = recip[a];
            let spacing =
                2.0 * std::f64::consts::PI / (b[0] * b[0] + b[1] * b[1] + b[2] * b[2]).sqrt();
            n[a] = crate::mesh::fft_friendly(((spacing / h).ceil() as usize).max(2 * ORDER));
        }
        if n.iter().any(|&m| m > 512) {
            return None;
        }
        let fft = Fft3::new(n);
        let half = fft.half();
        let moduli = bspline::moduli3(ORDER, n);
        // G(k) per spectrum entry and Σ_k G(k) over the full mesh (the diagonal of L)
        let mut g = vec![0.0; fft.spectrum_len()];
        let mut l_diag = 0.0;
        for m3 in 0..half {
            for m2 in 0..n[1] {
                for m1 in 0..n[0] {
                    let (f1, f2, f3) = match (
                        signed_frequency(m1, n[0]),
                        signed_frequency(m2, n[1]),
                        signed_frequency(m3, n[2]),
                    ) {
                        (Some(a), Some(b), Some(c)) => (a, b, c),
                        _ => continue,
                    };
                    if m1 == 0 && m2 == 0 && m3 == 0 {
                        continue;
                    }
                    let mut k = [0.0; 3];
                    for c in 0..3 {
                        k[c] = f1 * recip[0][c] + f2 * recip[1][c] + f3 * recip[2][c];
                    }
                    let k2 = k[0] * k[0] + k[1] * k[1] + k[2] * k[2];
                    let gk =
                        prefactor * 4.0 * std::f64::consts::PI * (-0.5 * eta_p * eta_p * k2).exp()
                            / (k2 * volume);
                    g[(m3 * n[1] + m2) * n[0] + m1] = gk;
                    // the half spectrum holds m3 and −m3 (except 0 and the Nyquist plane)
                    let twice = m3 != 0 && !(n[2] % 2 == 0 && m3 == n[2] / 2);
                    l_diag += if twice { 2.0 * gk } else { gk };
                }
            }
        }
        let d: Vec<f64> = diag.iter().map(|&a| a - l_diag).collect();
        if d.iter().any(|&v| !(v > 0.0 && v.is_finite())) {
            return None;
        }
        let inv_d: Vec<f64> = d.iter().map(|v| 1.0 / v).collect();
        let s: f64 = inv_d.iter().sum();
        let mut multiplier = vec![0.0; g.len()];
        let mut multiplier2 = vec![0.0; g.len()];
        for m3 in 0..half {
            for m2 in 0..n[1] {
                for m1 in 0..n[0] {
                    let t = (m3 * n[1] + m2) * n[0] + m1;
                    let gk = g[t];
                    if gk > 0.0 {
                        let b2 = moduli[0][m1] * moduli[1][m2] * moduli[2][m3];
                        let pk = 1.0 / (1.0 + s * gk);
                        let f = gk * pk;
                        multiplier[t] = f * b2;
                        multiplier2[t] = (2.0 * f - f * pk) * b2;
                    }
                }
            }
        }
        let stencil = system
            .positions()
            .par_iter()
            .map(|r: &Vec3| {
                let mut base = [0usize; 3];
                let mut th = [[0.0; ORDER]; 3];
                let mut dth = [0.0; ORDER];
                for a in 0..3 {
                    let s = r[0] * inv[0][a] + r[1] * inv[1][a] + r[2] * inv[2][a];
                    let mut u = (s - s.floor()) * n[a] as f64;
                    if u >= n[a] as f64 {
                        u -= n[a] as f64;
                    }
                    let u = u.max(0.0);
                    let fl = u.floor();
                    bspline::fill(u - fl, &mut th[a], &mut dth);
                    base[a] = (fl as isize - ORDER as isize + 1).rem_euclid(n[a] as isize) as usize;
                }
                (base, th)
            })
            .collect();
        Some(FourierPreconditioner {
            n,
            fft,
            multiplier,
            multiplier2,
            inv_d,
            stencil,
        })
    }

    /// Spreads x onto the mesh and transforms it.
    fn spread(&self, x: &[f64]) -> Vec<C64> {
        let n = self.n;
        let len = n[0] * n[1] * n[2];
        // sequential: deterministic and cheap, 64 points per atom
        let mut grid = vec![0.0; len];
        for (i, (base, th)) in self.stencil.iter().enumerate() {
            let xi = x[i];
            if xi == 0.0 {
                continue;
            }
            for j1 in 0..ORDER {
                let i1 = (base[0] + j1) % n[0];
                let v1 = xi * th[0][j1];
                for j2 in 0..ORDER {
                    let i2 = (base[1] + j2) % n[1];
                    let v12 = v1 * th[1][j2];
                    let row = (i1 * n[1] + i2) * n[2];
                    for j3 in 0..ORDER {
                        grid[row + (base[2] + j3) % n[2]] += v12 * th[2][j3];
                    }
                }
            }
        }
        let mut spec = vec![C64::new(0.0, 0.0); self.fft.spectrum_len()];
        self.fft.forward(&mut grid, &mut spec);
        spec
    }

    /// Multiplies the spectrum, transforms back and gathers at the atoms.
    fn gather(&self, spec: &[C64], multiplier: &[f64]) -> Vec<f64> {
        let n = self.n;
        let mut s: Vec<C64> = spec
            .par_iter()
            .zip(multiplier.par_iter())
            .map(|(s, m)| *s * *m)
            .collect();
        let mut grid = vec![0.0; n[0] * n[1] * n[2]];
        self.fft.inverse(&mut s, &mut grid);
        self.stencil
            .par_iter()
            .map(|(base, th)| {
                let mut phi = 0.0;
                for j1 in 0..ORDER {
                    let i1 = (base[0] + j1) % n[0];
                    for j2 in 0..ORDER {
                        let i2 = (base[1] + j2) % n[1];
                        let row = (i1 * n[1] + i2) * n[2];
                        let mut p3 = 0.0;
                        for j3 in 0..ORDER {
                            p3 += th[2][j3] * grid[row + (base[2] + j3) % n[2]];
                        }
                        phi += th[0][j1] * th[1][j2] * p3;
                    }
                }
                phi
            })
            .collect()
    }

    /// z = M⁻¹ r.
    pub fn apply(&self, r: &[f64]) -> Vec<f64> {
        let x: Vec<f64> = r.iter().zip(&self.inv_d).map(|(a, b)| a * b).collect();
        let spec = self.spread(&x);
        let phi1 = self.gather(&spec, &self.multiplier);
        let phi2 = self.gather(&spec, &self.multiplier2);
        let y: Vec<f64> = phi1.iter().zip(&self.inv_d).map(|(a, b)| a * b).collect();
        let phi3 = self.gather(&self.spread(&y), &self.multiplier);
        (0..x.len())
            .map(|i| x[i] - self.inv_d[i] * (phi2[i] - phi3[i]))
            .collect()
    }
}
