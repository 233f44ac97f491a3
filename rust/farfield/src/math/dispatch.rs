//! Runtime dispatch to code compiled for the widest vector instructions the CPU has.

/// Evaluates `$body(args…)` from a copy compiled for AVX-512F (with AVX2 and FMA), a copy
/// for AVX2 and FMA, or the baseline `$base` (by default `$body` too), whichever this CPU
/// runs. `$body` must be `#[inline(always)]` so that it is compiled into each copy. The
/// arguments are written `name: Type = value`; their types may not name generic
/// parameters of the caller.
///
/// The copies compute the same values: Rust does not fuse a·b + c into an FMA unless asked
/// (`mul_add`), and vectorising independent lanes does not reorder any sum.
macro_rules! multiversion {
    ($body:expr; ($($arg:ident: $ty:ty = $val:expr),* $(,)?) -> $ret:ty) => {
        $crate::math::dispatch::multiversion!(
            $body, baseline $body; ($($arg: $ty = $val),*) -> $ret
        )
    };
    ($body:expr, baseline $base:expr; ($($arg:ident: $ty:ty = $val:expr),* $(,)?) -> $ret:ty) => {{
        #[allow(unused_parens)]
        let ($($arg),*) = ($($val),*);
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f,avx2,fma")]
            unsafe fn wide($($arg: $ty),*) -> $ret {
                $body($($arg),*)
            }
            #[target_feature(enable = "avx2,fma")]
            unsafe fn narrow($($arg: $ty),*) -> $ret {
                $body($($arg),*)
            }
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU has the features `wide` is compiled for.
                unsafe { wide($($arg),*) }
            } else if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU has the features `narrow` is compiled for.
                unsafe { narrow($($arg),*) }
            } else {
                $base($($arg),*)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $base($($arg),*)
        }
    }};
}
pub(crate) use multiversion;

/// The vector instruction set `multiversion!` dispatches to on this CPU: `"avx512"`
/// (AVX-512F with AVX2 and FMA), `"avx2"` (AVX2 and FMA) or `"baseline"` (the target's
/// default, SSE2 on x86-64; always on other architectures).
pub fn simd_level() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma");
        if avx2 && std::arch::is_x86_feature_detected!("avx512f") {
            return "avx512";
        }
        if avx2 {
            return "avx2";
        }
    }
    "baseline"
}
