//! Register-blocked matrix-product micro-kernels: C (MR × NR) += A B over an inner
//! dimension `kb`, with A given as MR rows of stride `lda` and B packed k-major as `kb × NR`.
//!
//! For products whose left operand is generated on the fly (and can be written straight
//! in the packed layout) and whose right operand is a constant table packed once, a
//! general matrix-multiplication routine spends much of its time repacking both; these
//! kernels skip that. The instruction set is chosen at run time (AVX-512, AVX2 + FMA, or
//! portable code); every entry of C is accumulated in increasing k, so results do not
//! depend on how callers split the work between threads.

/// A micro-kernel and its register block.
#[derive(Clone, Copy)]
pub struct MicroKernel {
    /// rows of the block (entries of A per k)
    pub mr: usize,
    /// columns of the block (entries of B per k)
    pub nr: usize,
    run: unsafe fn(usize, *const f64, usize, *const f64, *mut f64, usize),
}

impl MicroKernel {
    /// The fastest kernel this CPU supports.
    pub fn detect() -> MicroKernel {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return MicroKernel {
                    mr: 12,
                    nr: 16,
                    run: x86::avx512,
                };
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return MicroKernel {
                    mr: 4,
                    nr: 12,
                    run: x86::avx2,
                };
            }
        }
        MicroKernel::portable()
    }

    /// The portable kernel (any CPU).
    pub fn portable() -> MicroKernel {
        MicroKernel {
            mr: 4,
            nr: 8,
            run: portable_4x8,
        }
    }

    /// C[r·ldc + c] += Σ_{q < kb} a[r·lda + q] b[q·NR + c] for r < MR, c < NR.
    ///
    /// # Safety
    /// `a` must hold rows `0..MR` of `kb` values with row stride `lda`, `b` `kb·NR`
    /// values, and `c` rows `0..MR` of `NR` values with row stride `ldc`.
    #[inline]
    pub unsafe fn run(
        &self,
        kb: usize,
        (a, lda): (*const f64, usize),
        b: *const f64,
        (c, ldc): (*mut f64, usize),
    ) {
        (self.run)(kb, a, lda, b, c, ldc)
    }
}

unsafe fn portable_4x8(
    kb: usize,
    a: *const f64,
    lda: usize,
    b: *const f64,
    c: *mut f64,
    ldc: usize,
) {
    let mut acc = [[0.0f64; 8]; 4];
    for q in 0..kb {
        let bq = std::slice::from_raw_parts(b.add(q * 8), 8);
        for (r, row) in acc.iter_mut().enumerate() {
            let ar = *a.add(r * lda + q);
            for (x, &bv) in row.iter_mut().zip(bq) {
                *x += ar * bv;
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (col, &x) in row.iter().enumerate() {
            *c.add(r * ldc + col) += x;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// 12 × 16: 24 zmm accumulators, 2 loads of B and 12 broadcasts of A per k.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512(
        kb: usize,
        a: *const f64,
        lda: usize,
        b: *const f64,
        c: *mut f64,
        ldc: usize,
    ) {
        let mut acc = [[_mm512_setzero_pd(); 2]; 12];
        for q in 0..kb {
            let bq = b.add(q * 16);
            let b0 = _mm512_loadu_pd(bq);
            let b1 = _mm512_loadu_pd(bq.add(8));
            let aq = a.add(q);
            for (r, row) in acc.iter_mut().enumerate() {
                let ar = _mm512_set1_pd(*aq.add(r * lda));
                row[0] = _mm512_fmadd_pd(ar, b0, row[0]);
                row[1] = _mm512_fmadd_pd(ar, b1, row[1]);
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (s, &v) in row.iter().enumerate() {
                let p = c.add(r * ldc + 8 * s);
                _mm512_storeu_pd(p, _mm512_add_pd(_mm512_loadu_pd(p), v));
            }
        }
    }

    /// 4 × 12: 12 ymm accumulators, 3 loads of B and 4 broadcasts of A per k.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2(
        kb: usize,
        a: *const f64,
        lda: usize,
        b: *const f64,
        c: *mut f64,
        ldc: usize,
    ) {
        let mut acc = [[_mm256_setzero_pd(); 3]; 4];
        for q in 0..kb {
            let bq = b.add(q * 12);
            let b0 = _mm256_loadu_pd(bq);
            let b1 = _mm256_loadu_pd(bq.add(4));
            let b2 = _mm256_loadu_pd(bq.add(8));
            let aq = a.add(q);
            for (r, row) in acc.iter_mut().enumerate() {
                let ar = _mm256_set1_pd(*aq.add(r * lda));
                row[0] = _mm256_fmadd_pd(ar, b0, row[0]);
                row[1] = _mm256_fmadd_pd(ar, b1, row[1]);
                row[2] = _mm256_fmadd_pd(ar, b2, row[2]);
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (s, &v) in row.iter().enumerate() {
                let p = c.add(r * ldc + 4 * s);
                _mm256_storeu_pd(p, _mm256_add_pd(_mm256_loadu_pd(p), v));
            }
        }
    }

    #[cfg(test)]
    pub(super) fn available() -> Vec<super::MicroKernel> {
        let mut out = Vec::new();
        if std::arch::is_x86_feature_detected!("avx512f") {
            out.push(super::MicroKernel {
                mr: 12,
                nr: 16,
                run: avx512,
            });
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            out.push(super::MicroKernel {
                mr: 4,
                nr: 12,
                run: avx2,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel this CPU runs computes C + AᵀB (against a plain triple loop).
    #[test]
    fn kernels_compute_the_product() {
        let mut kernels = vec![MicroKernel::portable(), MicroKernel::detect()];
        #[cfg(target_arch = "x86_64")]
        kernels.extend(x86::available());
        for kern in kernels {
            let (mr, nr, kb, ldc, lda) = (kern.mr, kern.nr, 37, kern.nr + 5, 41);
            let a: Vec<f64> = (0..lda * mr).map(|x| ((x * 7 % 13) as f64 - 6.0) / 7.0).collect();
            let b: Vec<f64> = (0..kb * nr).map(|x| ((x * 5 % 11) as f64 - 5.0) / 3.0).collect();
            let mut c: Vec<f64> = (0..mr * ldc).map(|x| x as f64).collect();
            let c0 = c.clone();
            // SAFETY: the sizes match the documented layout.
            unsafe { kern.run(kb, (a.as_ptr(), lda), b.as_ptr(), (c.as_mut_ptr(), ldc)) };
            for r in 0..mr {
                for col in 0..ldc {
                    let expect = if col < nr {
                        c0[r * ldc + col]
                            + (0..kb).map(|q| a[r * lda + q] * b[q * nr + col]).sum::<f64>()
                    } else {
                        c0[r * ldc + col]
                    };
                    let got = c[r * ldc + col];
                    assert!((got - expect).abs() < 1e-12 * (1.0 + expect.abs()), "{got} {expect}");
                }
            }
        }
    }
}
