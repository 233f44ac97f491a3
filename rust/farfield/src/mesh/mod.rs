//! The mesh machinery every mesh engine stands on (PME, the LODE mesh path, the QEq
//! preconditioner): grid sizing ([`fft_friendly`]), cardinal B-splines and their Euler moduli
//! ([`bspline`]), and real-to-complex 3D FFTs with cached plans ([`fft`]).

pub mod bspline;
pub mod fft;

/// Smallest integer ≥ n whose prime factors are 2, 3, 5 and 7 only.
pub fn fft_friendly(n: usize) -> usize {
    let table = smooth_numbers();
    let m = n.max(1);
    if let Some(&found) = table.get(table.partition_point(|&s| s < m)) {
        return found;
    }
    // beyond the table (never a real grid): the first 7-smooth number by trial division
    let mut m = m;
    loop {
        let mut r = m;
        for p in [2, 3, 5, 7] {
            while r.is_multiple_of(p) {
                r /= p;
            }
        }
        if r == 1 {
            return m;
        }
        m += 1;
    }
}

/// Every 2^a 3^b 5^c 7^d up to 2^20, sorted (about 1,500 numbers, built once): the tuner asks
/// for many grid sizes per call and a table lookup is far cheaper than trial division.
fn smooth_numbers() -> &'static [usize] {
    static TABLE: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        const LIMIT: usize = 1 << 20;
        let mut out = vec![1usize];
        for p in [2usize, 3, 5, 7] {
            let mut next = Vec::new();
            for &base in &out {
                let mut v = base;
                while v <= LIMIT {
                    next.push(v);
                    v *= p;
                }
            }
            out = next;
        }
        out.sort_unstable();
        out
    })
}
