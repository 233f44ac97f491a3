//! Large zeroed output buffers backed by transparent huge pages where the OS allows it.
//!
//! Gradient outputs are hundreds of MB written once; with 4 KiB pages the page faults (and
//! the kernel zeroing each page) cost more than computing the numbers. `madvise(MADV_HUGEPAGE)`
//! on the fresh (not yet touched) allocation lets Linux back it with 2 MiB pages.

/// A zero-filled `Vec<f64>` of `len` elements, advised to use huge pages when large.
pub(crate) fn zeroed(len: usize) -> Vec<f64> {
    let v = vec![0.0f64; len];
    advise_huge(&v);
    v
}

#[cfg(target_os = "linux")]
fn advise_huge(v: &[f64]) {
    const HUGE: usize = 2 << 20;
    let bytes = std::mem::size_of_val(v);
    if bytes < 4 * HUGE {
        return;
    }
    let start = v.as_ptr() as usize;
    let aligned = start.div_ceil(HUGE) * HUGE;
    let end = (start + bytes) / HUGE * HUGE;
    if end > aligned {
        // SAFETY: the range lies inside the live allocation of `v`; MADV_HUGEPAGE only
        // changes how the kernel backs it (contents, zero here, are preserved).
        unsafe {
            libc::madvise(
                aligned as *mut libc::c_void,
                end - aligned,
                libc::MADV_HUGEPAGE,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_v: &[f64]) {}
