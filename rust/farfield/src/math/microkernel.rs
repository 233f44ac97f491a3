//! Register-blocked matrix-product micro-kernels: C (MR × NR) += A B over an inner
//! dimension `kb`, with A read in place as MR rows (`a[r·lda + q·inc]`) and B packed
//! k-major as `kb × NR`.
//!
//! For products whose left operand is generated on the fly and whose right operand is a
//! constant table packed once, a general matrix-multiplication routine spends much of its
//! time repacking both; these kernels skip that. The instruction set is chosen at run time
//! (AVX-512, AVX2 + FMA, or portable code). Every entry of C is accumulated in increasing
//! q, so results do not depend on how callers split the work between threads.

type KernelFn = unsafe fn(usize, *const f64, usize, usize, *const f64, *mut f64, usize, bool);

/// A micro-kernel and its register block.
#[derive(Clone, Copy)]
pub struct MicroKernel {
    /// rows of the block (entries of A per q)
    pub mr: usize,
    /// columns of the block (entries of B per q)
    pub nr: usize,
    run: KernelFn,
}

/// A wide and a narrow kernel with the same number of rows, the best this CPU runs.
#[derive(Clone, Copy)]
pub struct KernelPair {
    /// NR = 16 (AVX-512), 12 (AVX2) or 8 (portable)
    pub wide: MicroKernel,
    /// NR = 8 (AVX-512, AVX2) or 4 (portable)
    pub narrow: MicroKernel,
    /// NR = 4
    pub quarter: MicroKernel,
}

impl KernelPair {
    /// The fastest pair this CPU supports.
    pub fn detect() -> KernelPair {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return x86::avx512_pair();
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return x86::avx2_pair();
            }
        }
        KernelPair::portable()
    }

    /// Portable kernels (any CPU).
    pub fn portable() -> KernelPair {
        KernelPair {
            wide: MicroKernel {
                mr: 4,
                nr: 8,
                run: portable::<4, 8>,
            },
            narrow: MicroKernel {
                mr: 4,
                nr: 4,
                run: portable::<4, 4>,
            },
            quarter: MicroKernel {
                mr: 4,
                nr: 4,
                run: portable::<4, 4>,
            },
        }
    }

    /// Kernels covering `count` columns (rounded up to a multiple of the quarter width)
    /// with as few and as wide panels as possible: (first column, kernel) per panel.
    pub fn panels(&self, count: usize) -> Vec<(usize, MicroKernel)> {
        let mut left = count.div_ceil(self.quarter.nr) * self.quarter.nr;
        let mut out = Vec::new();
        let mut col = 0;
        for k in [self.wide, self.narrow, self.quarter] {
            while left >= k.nr {
                out.push((col, k));
                col += k.nr;
                left -= k.nr;
            }
        }
        if left > 0 {
            out.push((col, self.quarter));
        }
        out
    }
}

impl MicroKernel {
    /// C[r·ldc + c] += Σ_{q < kb} a[r·lda + q·inc] b[q·NR + c] for r < MR, c < NR
    /// (C is overwritten instead when `overwrite`, so it need not be zeroed first).
    ///
    /// # Safety
    /// `a` must be readable at every `r·lda + q·inc` (r < MR, q < kb), `b` must hold
    /// `kb·NR` values, and `c` rows `0..MR` of `NR` values with row stride `ldc`.
    #[inline]
    pub unsafe fn run(
        &self,
        kb: usize,
        (a, lda, inc): (*const f64, usize, usize),
        b: *const f64,
        (c, ldc): (*mut f64, usize),
        overwrite: bool,
    ) {
        (self.run)(kb, a, lda, inc, b, c, ldc, overwrite)
    }
}

#[allow(clippy::too_many_arguments)]
unsafe fn portable<const MR: usize, const NR: usize>(
    kb: usize,
    a: *const f64,
    lda: usize,
    inc: usize,
    b: *const f64,
    c: *mut f64,
    ldc: usize,
    overwrite: bool,
) {
    let mut acc = [[0.0f64; NR]; MR];
    for q in 0..kb {
        let bq = std::slice::from_raw_parts(b.add(q * NR), NR);
        for (r, row) in acc.iter_mut().enumerate() {
            let ar = *a.add(r * lda + q * inc);
            for (x, &bv) in row.iter_mut().zip(bq) {
                *x += ar * bv;
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (col, &x) in row.iter().enumerate() {
            let p = c.add(r * ldc + col);
            *p = if overwrite { x } else { *p + x };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{KernelPair, MicroKernel};
    use std::arch::x86_64::*;

    /// An MR × (LANES·NV) kernel on one vector width: MR·NV accumulators, NV loads of B
    /// and MR broadcasts of A per q. `$feature` and the intrinsics name the width.
    macro_rules! kernel {
        ($name:ident, $mr:expr, $nv:expr, $feature:literal, $lanes:expr,
         $zero:ident, $load:ident, $store:ident, $set1:ident, $fma:ident, $add:ident) => {
            #[allow(clippy::too_many_arguments)]
            #[target_feature(enable = $feature)]
            unsafe fn $name(
                kb: usize,
                a: *const f64,
                lda: usize,
                inc: usize,
                b: *const f64,
                c: *mut f64,
                ldc: usize,
                overwrite: bool,
            ) {
                let mut acc = [[$zero(); $nv]; $mr];
                for q in 0..kb {
                    let bq = b.add(q * $lanes * $nv);
                    let mut bv = [$zero(); $nv];
                    for (s, v) in bv.iter_mut().enumerate() {
                        *v = $load(bq.add($lanes * s));
                    }
                    let aq = a.add(q * inc);
                    for (r, row) in acc.iter_mut().enumerate() {
                        let ar = $set1(*aq.add(r * lda));
                        for (x, &v) in row.iter_mut().zip(&bv) {
                            *x = $fma(ar, v, *x);
                        }
                    }
                }
                for (r, row) in acc.iter().enumerate() {
                    for (s, &v) in row.iter().enumerate() {
                        let p = c.add(r * ldc + $lanes * s);
                        let v = if overwrite { v } else { $add($load(p), v) };
                        $store(p, v);
                    }
                }
            }
        };
    }

    /// An AVX-512 kernel (zmm, 8 lanes).
    macro_rules! avx512_kernel {
        ($name:ident, $mr:expr, $nv:expr) => {
            kernel!(
                $name,
                $mr,
                $nv,
                "avx512f",
                8,
                _mm512_setzero_pd,
                _mm512_loadu_pd,
                _mm512_storeu_pd,
                _mm512_set1_pd,
                _mm512_fmadd_pd,
                _mm512_add_pd
            );
        };
    }

    /// An AVX2 + FMA kernel (ymm, 4 lanes).
    macro_rules! avx2_kernel {
        ($name:ident, $mr:expr, $nv:expr) => {
            kernel!(
                $name,
                $mr,
                $nv,
                "avx2,fma",
                4,
                _mm256_setzero_pd,
                _mm256_loadu_pd,
                _mm256_storeu_pd,
                _mm256_set1_pd,
                _mm256_fmadd_pd,
                _mm256_add_pd
            );
        };
    }

    avx512_kernel!(avx512_12x16, 12, 2);
    avx512_kernel!(avx512_12x8, 12, 1);
    avx2_kernel!(avx2_4x12, 4, 3);
    avx2_kernel!(avx2_4x8, 4, 2);
    avx2_kernel!(avx2_4x4, 4, 1);
    avx2_kernel!(avx2_12x4, 12, 1);

    pub(super) fn avx512_pair() -> KernelPair {
        KernelPair {
            wide: MicroKernel {
                mr: 12,
                nr: 16,
                run: avx512_12x16,
            },
            narrow: MicroKernel {
                mr: 12,
                nr: 8,
                run: avx512_12x8,
            },
            // 12 ymm accumulators (AVX2 encoding, available with AVX-512)
            quarter: MicroKernel {
                mr: 12,
                nr: 4,
                run: avx2_12x4,
            },
        }
    }

    pub(super) fn avx2_pair() -> KernelPair {
        KernelPair {
            wide: MicroKernel {
                mr: 4,
                nr: 12,
                run: avx2_4x12,
            },
            narrow: MicroKernel {
                mr: 4,
                nr: 8,
                run: avx2_4x8,
            },
            quarter: MicroKernel {
                mr: 4,
                nr: 4,
                run: avx2_4x4,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Panels cover the columns, widest first, padding to the quarter width only.
    #[test]
    fn panels_cover_the_columns() {
        for pair in [KernelPair::portable(), KernelPair::detect()] {
            for count in 1..40 {
                let panels = pair.panels(count);
                let width: usize = panels.iter().map(|p| p.1.nr).sum();
                assert_eq!(width, count.div_ceil(pair.quarter.nr) * pair.quarter.nr);
                let mut col = 0;
                for (c, k) in &panels {
                    assert_eq!(*c, col);
                    col += k.nr;
                }
            }
        }
    }

    /// Every kernel this CPU runs computes C + A B (against a plain triple loop).
    #[test]
    fn kernels_compute_the_product() {
        let mut pairs = vec![KernelPair::portable(), KernelPair::detect()];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                pairs.push(x86::avx512_pair());
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                pairs.push(x86::avx2_pair());
            }
        }
        for kern in pairs.iter().flat_map(|p| [p.wide, p.narrow, p.quarter]) {
            let (mr, nr, kb) = (kern.mr, kern.nr, 37);
            let (ldc, lda, inc) = (nr + 5, 3 * kb + 2, 3);
            let a: Vec<f64> = (0..lda * mr)
                .map(|x| ((x * 7 % 13) as f64 - 6.0) / 7.0)
                .collect();
            let b: Vec<f64> = (0..kb * nr)
                .map(|x| ((x * 5 % 11) as f64 - 5.0) / 3.0)
                .collect();
            for overwrite in [false, true] {
                let mut c: Vec<f64> = (0..mr * ldc).map(|x| x as f64).collect();
                let c0 = c.clone();
                // SAFETY: the sizes match the documented layout.
                unsafe {
                    kern.run(
                        kb,
                        (a.as_ptr(), lda, inc),
                        b.as_ptr(),
                        (c.as_mut_ptr(), ldc),
                        overwrite,
                    )
                };
                for r in 0..mr {
                    for col in 0..ldc {
                        let start = if overwrite && col < nr {
                            0.0
                        } else {
                            c0[r * ldc + col]
                        };
                        let sum: f64 = if col < nr {
                            (0..kb)
                                .map(|q| a[r * lda + q * inc] * b[q * nr + col])
                                .sum()
                        } else {
                            0.0
                        };
                        let (got, expect) = (c[r * ldc + col], start + sum);
                        assert!(
                            (got - expect).abs() < 1e-12 * (1.0 + expect.abs()),
                            "{got} {expect}"
                        );
                    }
                }
            }
        }
    }
}
