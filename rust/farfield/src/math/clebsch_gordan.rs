//! Real Clebsch–Gordan coefficients matching the real spherical harmonics of
//! [`spherical_harmonics`](crate::math::spherical_harmonics).
//!
//! For equivariants `a^{l1}_{m1}`, `b^{l2}_{m2}` transforming with the real Wigner matrices of
//! this crate's harmonics, `t^λ_μ = Σ C^{λμ}_{l1 m1 l2 m2} a_{m1} b_{m2}` transforms with the
//! real Wigner matrix of order λ. The coefficients are obtained from the complex ones (Racah
//! formula) through the complex→real change of basis; they are real when `l1 + l2 + λ` is even
//! (a proper tensor, parity σ = +1 for two proper inputs) and the imaginary part is kept when it
//! is odd (a pseudo-tensor, σ = −1), as in featomic/metatensor's `clebsch_gordan` module.
//! `C^{00}_{l m l m'} = δ_{mm'} (−1)^l / √(2l+1)`.

/// One non-zero real CG coefficient: component indices `m1 + l1`, `m2 + l2`, `μ + λ` and the
/// value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CgEntry {
    /// `m1 + l1`
    pub m1: u16,
    /// `m2 + l2`
    pub m2: u16,
    /// `μ + λ`
    pub mu: u16,
    /// coefficient
    pub value: f64,
}

fn ln_factorial(n: i64) -> f64 {
    crate::math::special::ln_gamma(n as f64 + 1.0)
}

/// Complex Clebsch–Gordan coefficient ⟨j1 m1 j2 m2 | J M⟩ (Condon–Shortley convention).
pub fn complex_cg(j1: i64, m1: i64, j2: i64, m2: i64, j: i64, m: i64) -> f64 {
    if m1 + m2 != m || m1.abs() > j1 || m2.abs() > j2 || m.abs() > j {
        return 0.0;
    }
    if j < (j1 - j2).abs() || j > j1 + j2 {
        return 0.0;
    }
    let pre = 0.5 * ((2 * j + 1) as f64).ln()
        + 0.5
            * (ln_factorial(j + j1 - j2) + ln_factorial(j - j1 + j2) + ln_factorial(j1 + j2 - j)
                - ln_factorial(j1 + j2 + j + 1))
        + 0.5
            * (ln_factorial(j + m)
                + ln_factorial(j - m)
                + ln_factorial(j1 - m1)
                + ln_factorial(j1 + m1)
                + ln_factorial(j2 - m2)
                + ln_factorial(j2 + m2));
    let kmin = 0.max(j2 - j - m1).max(j1 - j + m2);
    let kmax = (j1 + j2 - j).min(j1 - m1).min(j2 + m2);
    let mut sum = 0.0;
    for k in kmin..=kmax {
        let d = ln_factorial(k)
            + ln_factorial(j1 + j2 - j - k)
            + ln_factorial(j1 - m1 - k)
            + ln_factorial(j2 + m2 - k)
            + ln_factorial(j - j2 + m1 + k)
            + ln_factorial(j - j1 - m2 + k);
        let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
        sum += sign * (pre - d).exp();
    }
    sum
}

/// Real-from-complex change of basis: `Y^real_{l m} = Σ_μ U[m][μ] Y^complex_{l μ}`, returned
/// as (re, im) pairs, `(2l+1)²` row-major with indices shifted by `l`.
fn real_from_complex(l: i64) -> Vec<(f64, f64)> {
    let n = (2 * l + 1) as usize;
    let mut u = vec![(0.0, 0.0); n * n];
    let s = std::f64::consts::FRAC_1_SQRT_2;
    let idx = |m: i64, mu: i64| ((m + l) as usize) * n + (mu + l) as usize;
    u[idx(0, 0)] = (1.0, 0.0);
    for m in 1..=l {
        let sign = if m % 2 == 0 { 1.0 } else { -1.0 };
        // Y_{l,m} = ((-1)^m Y^m + Y^{-m}) / √2
        u[idx(m, m)] = (sign * s, 0.0);
        u[idx(m, -m)] = (s, 0.0);
        // Y_{l,-m} = ((-1)^m Y^m - Y^{-m}) / (√2 i) = -i/√2 ((-1)^m Y^m - Y^{-m})
        u[idx(-m, m)] = (0.0, -sign * s);
        u[idx(-m, -m)] = (0.0, s);
    }
    u
}

/// Complex components `μ` that real component `m` mixes: `±|m|`.
fn partners(m: i64) -> &'static [i64] {
    // a small static table avoids allocating in the inner loop
    static P: [[i64; 2]; 64] = {
        let mut t = [[0i64; 2]; 64];
        let mut k = 0;
        while k < 64 {
            t[k] = [-(k as i64), k as i64];
            k += 1;
        }
        t
    };
    let a = m.unsigned_abs() as usize;
    if a == 0 {
        &P[0][..1]
    } else {
        &P[a]
    }
}

/// Dense real CG coefficients for `(l1, l2, λ)` as `[(m1+l1) * (2l2+1) + (m2+l2)] * (2λ+1) + μ+λ`.
pub fn real_cg_dense(l1: usize, l2: usize, lambda: usize) -> Vec<f64> {
    let (l1, l2, lam) = (l1 as i64, l2 as i64, lambda as i64);
    let (n1, n2, nl) = (2 * l1 + 1, 2 * l2 + 1, 2 * lam + 1);
    let mut out = vec![0.0; (n1 * n2 * nl) as usize];
    if lam < (l1 - l2).abs() || lam > l1 + l2 {
        return out;
    }
    let u1 = real_from_complex(l1);
    let u2 = real_from_complex(l2);
    let ul = real_from_complex(lam);
    let odd = (l1 + l2 + lam) % 2 == 1;
    for m1 in -l1..=l1 {
        for m2 in -l2..=l2 {
            for mu in -lam..=lam {
                // R = Σ U^λ[mu][M] C[μ1 μ2 M] conj(U1[m1][μ1]) conj(U2[m2][μ2])
                let (mut re, mut im) = (0.0, 0.0);
                for &p1 in partners(m1) {
                    let a = u1[((m1 + l1) * n1 + p1 + l1) as usize];
                    for &p2 in partners(m2) {
                        let b = u2[((m2 + l2) * n2 + p2 + l2) as usize];
                        let pm = p1 + p2;
                        if pm.abs() > lam {
                            continue;
                        }
                        let c = complex_cg(l1, p1, l2, p2, lam, pm);
                        if c == 0.0 {
                            continue;
                        }
                        let w = ul[((mu + lam) * nl + pm + lam) as usize];
                        // conj(a) * conj(b) * w * c
                        let (ar, ai) = (a.0, -a.1);
                        let (br, bi) = (b.0, -b.1);
                        let (abr, abi) = (ar * br - ai * bi, ar * bi + ai * br);
                        re += c * (abr * w.0 - abi * w.1);
                        im += c * (abr * w.1 + abi * w.0);
                    }
                }
                let v = if odd { im } else { re };
                out[(((m1 + l1) * n2 + (m2 + l2)) * nl + mu + lam) as usize] = v;
            }
        }
    }
    out
}

/// The coefficients of [`real_cg_dense`] above `1e-14` in magnitude (the others are zeros
/// up to round-off), ordered by `(m1, m2, μ)`; empty when λ is outside `|l1−l2|..=l1+l2`.
pub fn sparse_block(l1: usize, l2: usize, lambda: usize) -> Vec<CgEntry> {
    let mut entries = Vec::new();
    if lambda < l1.abs_diff(l2) || lambda > l1 + l2 {
        return entries;
    }
    let dense = real_cg_dense(l1, l2, lambda);
    let (n2, nlam) = (2 * l2 + 1, 2 * lambda + 1);
    for (k, &v) in dense.iter().enumerate() {
        if v.abs() > 1e-14 {
            entries.push(CgEntry {
                m1: (k / (n2 * nlam)) as u16,
                m2: ((k / nlam) % n2) as u16,
                mu: (k % nlam) as u16,
                value: v,
            });
        }
    }
    entries
}

/// The CG product of two equivariant blocks with the coefficients `entries` of one
/// `(l1, l2, λ)` ([`sparse_block`]): `a` is `(2l1+1) × n1` and `b` is `(2l2+1) × n2`
/// (row-major, component-major), `out` is `(2λ+1) × n1 × n2` with
/// `out[μ][p][q] += Σ C^{λμ}_{m1 m2} a[m1][p] b[m2][q]`, accumulated in the entries' order.
/// The parity of the result is `σ_a σ_b (−1)^{l1+l2+λ}`.
pub fn couple_block(
    entries: &[CgEntry],
    (a, n1): (&[f64], usize),
    (b, n2): (&[f64], usize),
    out: &mut [f64],
) {
    for e in entries {
        let ar = &a[e.m1 as usize * n1..(e.m1 as usize + 1) * n1];
        let br = &b[e.m2 as usize * n2..(e.m2 as usize + 1) * n2];
        let o = &mut out[e.mu as usize * n1 * n2..(e.mu as usize + 1) * n1 * n2];
        for p in 0..n1 {
            let f = e.value * ar[p];
            let row = &mut o[p * n2..(p + 1) * n2];
            for q in 0..n2 {
                row[q] += f * br[q];
            }
        }
    }
}

/// Cache of sparse real CG coefficients for all `l1, l2 ≤ lmax` and `|l1−l2| ≤ λ ≤ l1+l2`.
#[derive(Debug, Clone)]
pub struct ClebschGordan {
    lmax: usize,
    blocks: Vec<Vec<CgEntry>>,
}

impl ClebschGordan {
    /// Computes and stores the sparse coefficients for `l1, l2 ≤ lmax`.
    pub fn new(lmax: usize) -> ClebschGordan {
        let nl = 2 * lmax + 1;
        let mut blocks = Vec::with_capacity((lmax + 1) * (lmax + 1) * nl);
        for l1 in 0..=lmax {
            for l2 in 0..=lmax {
                for lam in 0..nl {
                    blocks.push(sparse_block(l1, l2, lam));
                }
            }
        }
        ClebschGordan { lmax, blocks }
    }

    /// Largest `l1`, `l2` stored.
    pub fn lmax(&self) -> usize {
        self.lmax
    }

    /// The non-zero coefficients of `(l1, l2, λ)` (empty when λ is outside
    /// `|l1−l2|..=l1+l2`). Panics if `l1` or `l2 > lmax`.
    pub fn get(&self, l1: usize, l2: usize, lambda: usize) -> &[CgEntry] {
        let nl = 2 * self.lmax + 1;
        assert!(l1 <= self.lmax && l2 <= self.lmax, "l1, l2 must be <= lmax");
        if lambda >= nl {
            return &[];
        }
        &self.blocks[(l1 * (self.lmax + 1) + l2) * nl + lambda]
    }

    /// [`couple_block`] with the stored coefficients of `(l1, l2, λ)`: `a` is
    /// `(2l1+1) × n1`, `b` is `(2l2+1) × n2`, `out` (`(2λ+1) × n1 × n2`) is accumulated into.
    #[allow(clippy::too_many_arguments)]
    pub fn couple(
        &self,
        l1: usize,
        a: &[f64],
        n1: usize,
        l2: usize,
        b: &[f64],
        n2: usize,
        lambda: usize,
        out: &mut [f64],
    ) {
        assert_eq!(a.len(), (2 * l1 + 1) * n1);
        assert_eq!(b.len(), (2 * l2 + 1) * n2);
        assert_eq!(out.len(), (2 * lambda + 1) * n1 * n2);
        couple_block(self.get(l1, l2, lambda), (a, n1), (b, n2), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::spherical_harmonics::{lm_count, lm_index, SphericalHarmonics};

    #[test]
    fn complex_known_values() {
        // <1 1 1 -1 | 0 0> = 1/√3
        assert!((complex_cg(1, 1, 1, -1, 0, 0) - 1.0 / 3f64.sqrt()).abs() < 1e-14);
        // <1 0 1 0 | 2 0> = √(2/3)
        assert!((complex_cg(1, 0, 1, 0, 2, 0) - (2.0f64 / 3.0).sqrt()).abs() < 1e-14);
        // <1/2...> not needed; <2 1 1 -1 | 1 0> = √(3/10)
        assert!((complex_cg(2, 1, 1, -1, 1, 0) - (0.3f64).sqrt()).abs() < 1e-14);
    }

    #[test]
    fn power_spectrum_normalisation() {
        for l in 0..5usize {
            let d = real_cg_dense(l, l, 0);
            let n = 2 * l + 1;
            let e = if l % 2 == 0 { 1.0 } else { -1.0 } / (n as f64).sqrt();
            for a in 0..n {
                for b in 0..n {
                    let v = d[a * n + b];
                    let expected = if a == b { e } else { 0.0 };
                    assert!((v - expected).abs() < 1e-14, "l={l}");
                }
            }
        }
    }

    #[test]
    fn orthogonality() {
        // Σ_{m1 m2} C^{λμ} C^{λ'μ'} = δ δ over all λ in range
        let (l1, l2) = (3usize, 2usize);
        let all: Vec<Vec<f64>> = (0..=5).map(|lam| real_cg_dense(l1, l2, lam)).collect();
        for lam in 1..=5 {
            for lam2 in 1..=5 {
                for mu in 0..2 * lam + 1 {
                    for mu2 in 0..2 * lam2 + 1 {
                        let mut s = 0.0;
                        for k in 0..(2 * l1 + 1) * (2 * l2 + 1) {
                            s += all[lam][k * (2 * lam + 1) + mu]
                                * all[lam2][k * (2 * lam2 + 1) + mu2];
                        }
                        let e = if lam == lam2 && mu == mu2 { 1.0 } else { 0.0 };
                        assert!((s - e).abs() < 1e-13);
                    }
                }
            }
        }
    }

    #[test]
    fn couples_harmonics_into_harmonics() {
        // For even l1+l2+λ, Σ C Y_{l1}(r̂) Y_{l2}(r̂) ∝ Y_λ(r̂) (same direction): equivariance
        // check independent of the Wigner matrices.
        let lmax = 4;
        let sh = SphericalHarmonics::new(2 * lmax);
        let cg = ClebschGordan::new(lmax);
        let dirs = [[0.3, -0.5, 0.8], [-0.9, 0.2, 0.1], [0.1, 0.7, -0.4]];
        for l1 in 0..=lmax {
            for l2 in 0..=lmax {
                for lam in l1.abs_diff(l2)..=l1 + l2 {
                    if (l1 + l2 + lam) % 2 == 1 {
                        continue;
                    }
                    let mut ratio = None;
                    for d in &dirs {
                        let mut y = vec![0.0; lm_count(2 * lmax)];
                        sh.compute(d, &mut y);
                        let a: Vec<f64> = (0..2 * l1 + 1)
                            .map(|m| y[lm_index(l1, m as isize - l1 as isize)])
                            .collect();
                        let b: Vec<f64> = (0..2 * l2 + 1)
                            .map(|m| y[lm_index(l2, m as isize - l2 as isize)])
                            .collect();
                        let mut out = vec![0.0; 2 * lam + 1];
                        cg.couple(l1, &a, 1, l2, &b, 1, lam, &mut out);
                        for mu in 0..2 * lam + 1 {
                            let yl = y[lm_index(lam, mu as isize - lam as isize)];
                            if yl.abs() > 1e-3 {
                                let r = out[mu] / yl;
                                match ratio {
                                    None => ratio = Some(r),
                                    Some(r0) => assert!((r - r0).abs() < 1e-12, "{l1} {l2} {lam}"),
                                }
                            }
                        }
                    }
                    // Gaunt: ratio = sqrt((2l1+1)(2l2+1)/(4π(2λ+1))) <l1 0 l2 0|λ 0> > 0 up to CG sign
                    let g = ((2 * l1 + 1) as f64 * (2 * l2 + 1) as f64
                        / (4.0 * std::f64::consts::PI * (2 * lam + 1) as f64))
                        .sqrt()
                        * complex_cg(l1 as i64, 0, l2 as i64, 0, lam as i64, 0);
                    assert!((ratio.unwrap() - g).abs() < 1e-12, "{l1} {l2} {lam}");
                }
            }
        }
    }
}
