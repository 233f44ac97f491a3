//! Large zeroed buffers backed by transparent huge pages where the OS allows it.
//!
//! Descriptor gradient outputs and PME/LODE meshes are tens to hundreds of MB written once per
//! call; with 4 KiB pages the page faults (and the kernel zeroing each page) can cost as much as
//! the arithmetic. `madvise(MADV_HUGEPAGE)` on the fresh (not yet touched) allocation lets Linux
//! back it with 2 MiB pages (THP in "madvise" mode, the common default).

/// A zero-filled `Vec<f64>` of `len` elements, advised to use huge pages when large
/// (allocated with `calloc`, so the pages are first touched by the caller).
pub(crate) fn zeroed(len: usize) -> Vec<f64> {
    let v = vec![0.0f64; len];
    advise_huge(v.as_ptr() as usize, std::mem::size_of_val(v.as_slice()));
    v
}

/// A `Vec<T>` of `len` copies of `zero` (e.g. complex zeros), advised to use huge pages when
/// large before the first write.
pub(crate) fn filled<T: Copy>(len: usize, zero: T) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(len);
    advise_huge(v.as_ptr() as usize, len * std::mem::size_of::<T>());
    v.resize(len, zero);
    v
}

#[cfg(target_os = "linux")]
fn advise_huge(start: usize, bytes: usize) {
    const HUGE: usize = 2 << 20;
    if bytes < 4 * HUGE {
        return;
    }
    let aligned = start.div_ceil(HUGE) * HUGE;
    let end = (start + bytes) / HUGE * HUGE;
    if end > aligned {
        // SAFETY: the range lies inside the live allocation starting at `start` of `bytes`
        // bytes; MADV_HUGEPAGE only changes how the kernel backs it (contents are preserved).
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
fn advise_huge(_start: usize, _bytes: usize) {}

#[cfg(test)]
mod tests {
    #[test]
    fn buffers_are_zero_and_sized() {
        let a = super::zeroed(3_000_000);
        assert_eq!(a.len(), 3_000_000);
        assert!(a.iter().all(|&x| x == 0.0));
        let b = super::filled(2_000_000, (0.0f64, 0.0f64));
        assert_eq!(b.len(), 2_000_000);
        assert!(b.iter().all(|&x| x == (0.0, 0.0)));
    }
}
