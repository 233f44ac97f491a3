//! Large zeroed buffers backed by transparent huge pages where the OS allows it.
//!
//! Descriptor gradient outputs and PME/LODE meshes are tens to hundreds of MB written once per
//! call; with 4 KiB pages the page faults (and the kernel zeroing each page) can cost as much as
//! the arithmetic. `madvise(MADV_HUGEPAGE)` on the fresh (not yet touched) allocation lets Linux
//! back it with 2 MiB pages (THP in "madvise" mode, the common default).
//!
//! Both constructors are fallible: an allocation the system refuses is
//! [`Error::TooExpensive`], never an abort of the process (the engines check their estimates
//! against [`crate::limits`] before they get here).

use crate::error::{Error, Result};

fn refused(len: usize, size: usize) -> Error {
    let bytes = len as f64 * size as f64;
    Error::TooExpensive {
        what: "a work buffer".into(),
        estimate: crate::limits::format_bytes(bytes),
        limit: "the memory the system could allocate".into(),
        hint: "use a smaller system or smaller parameters".into(),
    }
}

/// A zero-filled `Vec<f64>` of `len` elements, advised to use huge pages when large
/// (allocated zeroed, like `calloc`, so the pages are first touched by the caller).
pub(crate) fn zeroed(len: usize) -> Result<Vec<f64>> {
    zeroed_pages(len, true)
}

/// [`zeroed`], advised to use huge pages only when `huge` (plain `calloc` pages otherwise:
/// better for a buffer written once front to back, see `descriptors::cost::try_calloc_plain`).
pub(crate) fn zeroed_pages(len: usize, huge: bool) -> Result<Vec<f64>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let layout = std::alloc::Layout::array::<f64>(len).map_err(|_| refused(len, 8))?;
    // SAFETY: `layout` has a non-zero size (len > 0); a non-null result is a zeroed block of
    // `len` f64 values (0.0 is all-zero bits) from the global allocator with exactly the layout
    // `Vec<f64>` uses for capacity `len`, so `from_raw_parts` may take ownership of it.
    let v = unsafe {
        let ptr = std::alloc::alloc_zeroed(layout) as *mut f64;
        if ptr.is_null() {
            return Err(refused(len, 8));
        }
        Vec::from_raw_parts(ptr, len, len)
    };
    if huge {
        advise_huge(v.as_ptr() as usize, std::mem::size_of_val(v.as_slice()));
    }
    Ok(v)
}

/// A `Vec<T>` of `len` copies of `zero` (e.g. complex zeros), advised to use huge pages when
/// large before the first write.
pub(crate) fn filled<T: Copy>(len: usize, zero: T) -> Result<Vec<T>> {
    let mut v: Vec<T> = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| refused(len, std::mem::size_of::<T>()))?;
    advise_huge(v.as_ptr() as usize, len * std::mem::size_of::<T>());
    v.resize(len, zero);
    Ok(v)
}

/// Infallible [`zeroed`] for buffers whose size was checked against [`crate::limits`] by the
/// caller's estimate and that are built where no error can be returned (an allocation failure
/// here aborts, as any Rust allocation).
pub(crate) fn zeroed_checked(len: usize) -> Vec<f64> {
    let v = vec![0.0f64; len];
    advise_huge(v.as_ptr() as usize, std::mem::size_of_val(v.as_slice()));
    v
}

/// Infallible [`filled`], see [`zeroed_checked`].
pub(crate) fn filled_checked<T: Copy>(len: usize, zero: T) -> Vec<T> {
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

/// A mutable `f64` buffer shared by threads that write disjoint parts of it (mesh spreading
/// by colour, one row per task): the one unsafe writer of the crate's engines. Every access
/// is bounds-checked; the caller promises, at each `unsafe` call, that no other thread
/// touches the same elements at the same time.
#[derive(Clone, Copy)]
pub(crate) struct SharedSlice {
    ptr: *mut f64,
    len: usize,
}

// SAFETY: the pointer is only dereferenced through the methods below, whose callers
// guarantee disjoint access across threads.
unsafe impl Send for SharedSlice {}
unsafe impl Sync for SharedSlice {}

impl SharedSlice {
    /// Shares `buffer` (which must outlive every use of the result).
    pub(crate) fn new(buffer: &mut [f64]) -> SharedSlice {
        SharedSlice {
            ptr: buffer.as_mut_ptr(),
            len: buffer.len(),
        }
    }

    /// The elements `start..start + len`.
    ///
    /// # Safety
    /// No other thread reads or writes these elements while the slice lives, and the shared
    /// buffer outlives it.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice<'a>(&self, start: usize, len: usize) -> &'a mut [f64] {
        assert!(start <= self.len && len <= self.len - start);
        std::slice::from_raw_parts_mut(self.ptr.add(start), len)
    }

    /// Adds `value` to element `at`.
    ///
    /// # Safety
    /// No other thread reads or writes element `at` at the same time.
    #[inline(always)]
    pub(crate) unsafe fn add(&self, at: usize, value: f64) {
        assert!(at < self.len);
        *self.ptr.add(at) += value;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn buffers_are_zero_and_sized() {
        assert!(super::zeroed(usize::MAX / 4).is_err());
        assert!(super::filled(usize::MAX / 4, 0.0f64).is_err());
        let a = super::zeroed(3_000_000).unwrap();
        assert_eq!(a.len(), 3_000_000);
        assert!(a.iter().all(|&x| x == 0.0));
        let b = super::filled(2_000_000, (0.0f64, 0.0f64)).unwrap();
        assert_eq!(b.len(), 2_000_000);
        assert!(b.iter().all(|&x| x == (0.0, 0.0)));
    }
}
