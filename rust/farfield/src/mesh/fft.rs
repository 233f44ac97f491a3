//! Parallel 3D real-to-complex FFT on a row-major grid \[K1\]\[K2\]\[K3\], built from `realfft`
//! (last axis) and `rustfft` (the other two, after transposes so every transform is
//! contiguous). The spectrum is stored transposed, as \[H\]\[K2\]\[K1\] with H = K3/2 + 1.

use crate::buffers::filled_checked;
use rayon::prelude::*;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::{num_complex::Complex, Fft, FftPlanner};
use std::sync::{Arc, Mutex};

/// Complex number type of the spectrum.
pub type C64 = Complex<f64>;

/// Plans for one grid shape.
pub struct Fft3 {
    n: [usize; 3],
    h: usize,
    r2c: Arc<dyn RealToComplex<f64>>,
    c2r: Arc<dyn ComplexToReal<f64>>,
    f2: Arc<dyn Fft<f64>>,
    i2: Arc<dyn Fft<f64>>,
    f1: Arc<dyn Fft<f64>>,
    i1: Arc<dyn Fft<f64>>,
    /// intermediate grids kept between calls: a fresh grid per transform costs page faults
    /// and zeroing of the whole grid, a large part of one transform on big grids
    spare: Mutex<Vec<Vec<C64>>>,
}

/// Number of grid shapes whose plans [`Fft3::shared`] keeps (most recently used).
const SHARED_PLANS: usize = 4;

/// Grids above this many spectrum values (64 MiB each) are planned afresh and not kept, so
/// that a finished large calculation does not hold its intermediate grids.
const SHARED_MAX_SPECTRUM: usize = 1 << 22;

/// The plans kept by [`Fft3::shared`], least recently used first.
static SHARED: Mutex<Vec<Arc<Fft3>>> = Mutex::new(Vec::new());

/// K1 slabs per task of the inverse transform's first transpose: the strided reads of
/// consecutive slabs share cache lines.
const SLABS: usize = 8;

impl std::fmt::Debug for Fft3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fft3({:?})", self.n)
    }
}

impl Fft3 {
    /// Plans the transforms of a grid with `n` points per axis.
    pub fn new(n: [usize; 3]) -> Fft3 {
        let mut rp = RealFftPlanner::<f64>::new();
        let mut cp = FftPlanner::<f64>::new();
        Fft3 {
            n,
            h: n[2] / 2 + 1,
            r2c: rp.plan_fft_forward(n[2]),
            c2r: rp.plan_fft_inverse(n[2]),
            f2: cp.plan_fft_forward(n[1]),
            i2: cp.plan_fft_inverse(n[1]),
            f1: cp.plan_fft_forward(n[0]),
            i1: cp.plan_fft_inverse(n[0]),
            spare: Mutex::new(Vec::new()),
        }
    }

    /// The plans of a grid with `n` points per axis, shared with earlier calls on the same
    /// shape: repeated sums on one mesh (an MD run, many frames of one cell) plan once and
    /// reuse the intermediate grids instead of faulting in fresh pages. The
    /// 4 most recently used shapes are kept, none above 2^22
    /// spectrum values (64 MiB). Safe to use from several threads at once.
    pub fn shared(n: [usize; 3]) -> Arc<Fft3> {
        let plan = || Arc::new(Fft3::new(n));
        let Ok(mut kept) = SHARED.lock() else {
            return plan();
        };
        if let Some(i) = kept.iter().position(|p| p.n == n) {
            let found = kept.remove(i);
            kept.push(Arc::clone(&found));
            return found;
        }
        let fresh = plan();
        if fresh.spectrum_len() <= SHARED_MAX_SPECTRUM {
            if kept.len() >= SHARED_PLANS {
                kept.remove(0);
            }
            kept.push(Arc::clone(&fresh));
        }
        fresh
    }

    /// An intermediate grid of H·K2·K1 values (contents unspecified: every use overwrites
    /// all of it), from the spares when one is left.
    fn take(&self) -> Vec<C64> {
        let len = self.spectrum_len();
        let spare = self.spare.lock().map(|mut s| s.pop()).unwrap_or(None);
        spare.unwrap_or_else(|| filled_checked(len, C64::new(0.0, 0.0)))
    }

    /// Returns an intermediate grid to the spares (at most two are kept).
    fn give(&self, grid: Vec<C64>) {
        if let Ok(mut s) = self.spare.lock() {
            if s.len() < 2 {
                s.push(grid);
            }
        }
    }

    /// Number of complex values of the spectrum, H·K2·K1.
    pub fn spectrum_len(&self) -> usize {
        self.h * self.n[1] * self.n[0]
    }

    /// Half length H = K3/2 + 1 of the last axis.
    pub fn half(&self) -> usize {
        self.h
    }

    /// Forward transform (unnormalised, e^{-2πi m·k/K}) of `real` (\[K1\]\[K2\]\[K3\]) into
    /// `spec` (\[H\]\[K2\]\[K1\]). `real` is used as scratch.
    pub fn forward(&self, real: &mut [f64], spec: &mut [C64]) {
        self.forward_interleaved(real, (0, 1), spec);
    }

    /// As [`Fft3::forward`], of lane `lane` of a grid of `lanes` interleaved ones
    /// (`real[((k1·K2 + k2)·K3 + k3)·lanes + lane]`; with several lanes `real` is left as
    /// it is).
    pub fn forward_interleaved(
        &self,
        real: &mut [f64],
        (lane, lanes): (usize, usize),
        spec: &mut [C64],
    ) {
        assert!(lane < lanes && real.len() == self.n.iter().product::<usize>() * lanes);
        let [n1, n2, n3] = self.n;
        let h = self.h;
        // 1. r2c along axis 3 into a [K1][K2][H] buffer
        let mut a = self.take();
        a.par_chunks_mut(n2 * h)
            .zip(real.par_chunks_mut(n2 * n3 * lanes))
            .for_each(|(out, inp)| {
                if crate::interrupt::is_requested() {
                    return;
                }
                let mut scratch = self.r2c.make_scratch_vec();
                let mut line = vec![0.0; if lanes > 1 { n3 } else { 0 }];
                for (o, i) in out.chunks_mut(h).zip(inp.chunks_mut(n3 * lanes)) {
                    let i = if lanes == 1 {
                        i
                    } else {
                        for (d, s) in line.iter_mut().zip(i.chunks_exact(lanes)) {
                            *d = s[lane];
                        }
                        &mut line[..]
                    };
                    self.r2c
                        .process_with_scratch(i, o, &mut scratch)
                        .expect("r2c sizes");
                }
            });
        // 2. per K1 slab: transpose [K2][H] -> [H][K2], FFT along K2
        let mut b = self.take();
        b.par_chunks_mut(n2 * h)
            .zip(a.par_chunks(n2 * h))
            .for_each(|(out, inp)| {
                if crate::interrupt::is_requested() {
                    return;
                }
                for i2 in 0..n2 {
                    for i3 in 0..h {
                        out[i3 * n2 + i2] = inp[i2 * h + i3];
                    }
                }
                let mut scratch = vec![C64::new(0.0, 0.0); self.f2.get_inplace_scratch_len()];
                self.f2.process_with_scratch(out, &mut scratch);
            });
        self.give(a);
        // 3. transpose [K1][H][K2] -> [H][K2][K1], FFT along K1
        spec.par_chunks_mut(n2 * n1)
            .enumerate()
            .for_each(|(i3, out)| {
                if crate::interrupt::is_requested() {
                    return;
                }
                for i1 in 0..n1 {
                    let src = &b[(i1 * h + i3) * n2..(i1 * h + i3 + 1) * n2];
                    for i2 in 0..n2 {
                        out[i2 * n1 + i1] = src[i2];
                    }
                }
                let mut scratch = vec![C64::new(0.0, 0.0); self.f1.get_inplace_scratch_len()];
                self.f1.process_with_scratch(out, &mut scratch);
            });
        self.give(b);
    }

    /// Inverse transform (unnormalised, e^{+2πi m·k/K}) of a Hermitian spectrum `spec`
    /// (\[H\]\[K2\]\[K1\], destroyed) into `real` (\[K1\]\[K2\]\[K3\]).
    pub fn inverse(&self, spec: &mut [C64], real: &mut [f64]) {
        self.inverse_interleaved(spec, real, (0, 1));
    }

    /// As [`Fft3::inverse`], into lane `lane` of a grid of `lanes` interleaved ones:
    /// `real[((k1·K2 + k2)·K3 + k3)·lanes + lane]` (the other lanes are left as they are).
    pub fn inverse_interleaved(
        &self,
        spec: &mut [C64],
        real: &mut [f64],
        (lane, lanes): (usize, usize),
    ) {
        assert!(lane < lanes && real.len() == self.n.iter().product::<usize>() * lanes);
        let [n1, n2, n3] = self.n;
        let h = self.h;
        spec.par_chunks_mut(n2 * n1).for_each(|row| {
            if crate::interrupt::is_requested() {
                return;
            }
            let mut scratch = vec![C64::new(0.0, 0.0); self.i1.get_inplace_scratch_len()];
            self.i1.process_with_scratch(row, &mut scratch);
        });
        // [H][K2][K1] -> [K1][H][K2], inverse FFT along K2; SLABS slabs per task, so that
        // the reads along K1 use whole cache lines
        let mut b = self.take();
        let spec = &*spec;
        b.par_chunks_mut(SLABS * h * n2)
            .enumerate()
            .for_each(|(block, out)| {
                if crate::interrupt::is_requested() {
                    return;
                }
                let i1 = block * SLABS;
                let slabs = out.len() / (h * n2);
                for x in 0..h * n2 {
                    let src = &spec[x * n1 + i1..x * n1 + i1 + slabs];
                    for (s, &v) in src.iter().enumerate() {
                        out[s * h * n2 + x] = v;
                    }
                }
                let mut scratch = vec![C64::new(0.0, 0.0); self.i2.get_inplace_scratch_len()];
                for slab in out.chunks_mut(h * n2) {
                    self.i2.process_with_scratch(slab, &mut scratch);
                }
            });
        // [K1][H][K2] -> [K1][K2][H], c2r along axis 3
        real.par_chunks_mut(n2 * n3 * lanes)
            .zip(b.par_chunks(h * n2))
            .for_each(|(out, inp)| {
                if crate::interrupt::is_requested() {
                    return;
                }
                let mut row = vec![C64::new(0.0, 0.0); h];
                let mut scratch = self.c2r.make_scratch_vec();
                let mut line = vec![0.0; if lanes > 1 { n3 } else { 0 }];
                for i2 in 0..n2 {
                    for i3 in 0..h {
                        row[i3] = inp[i3 * n2 + i2];
                    }
                    // the DC (and Nyquist) entries of a Hermitian row are real
                    row[0].im = 0.0;
                    if n3 % 2 == 0 {
                        row[h - 1].im = 0.0;
                    }
                    if lanes == 1 {
                        self.c2r
                            .process_with_scratch(
                                &mut row,
                                &mut out[i2 * n3..(i2 + 1) * n3],
                                &mut scratch,
                            )
                            .expect("c2r sizes");
                    } else {
                        self.c2r
                            .process_with_scratch(&mut row, &mut line, &mut scratch)
                            .expect("c2r sizes");
                        let dst = &mut out[i2 * n3 * lanes..(i2 + 1) * n3 * lanes];
                        for (d, &v) in dst.chunks_exact_mut(lanes).zip(&line) {
                            d[lane] = v;
                        }
                    }
                }
            });
        self.give(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffers::zeroed_checked;

    /// Shared plans are reused for a shape and give the same transform as fresh ones.
    #[test]
    fn shared_plans_are_reused_and_exact() {
        let n = [7, 5, 6];
        let a = Fft3::shared(n);
        let b = Fft3::shared(n);
        assert!(Arc::ptr_eq(&a, &b));
        let len = n[0] * n[1] * n[2];
        let data: Vec<f64> = (0..len).map(|i| ((i * 13) % 17) as f64 - 8.0).collect();
        let fresh = Fft3::new(n);
        let mut x = data.clone();
        let mut y = data.clone();
        let mut sx = filled_checked(a.spectrum_len(), C64::new(0.0, 0.0));
        let mut sy = sx.clone();
        a.forward(&mut x, &mut sx);
        fresh.forward(&mut y, &mut sy);
        assert_eq!(sx, sy);
        // more shapes than are kept: the oldest is dropped and planned again
        for k in 0..SHARED_PLANS {
            let _ = Fft3::shared([40 + k, 4, 4]);
        }
        assert!(!Arc::ptr_eq(&a, &Fft3::shared(n)));
    }

    #[test]
    fn matches_direct_dft() {
        // the second shape has more K1 slabs than one task's block, not a multiple of it
        for n in [[5, 6, 4], [19, 3, 5]] {
            check_direct_dft(n);
        }
    }

    /// Each lane of the interleaved inverse is the plain inverse of its spectrum.
    #[test]
    fn interleaved_inverse_matches_plain() {
        let n = [9, 4, 6];
        let len = n[0] * n[1] * n[2];
        let fft = Fft3::new(n);
        let lanes = 3;
        let mut grid = vec![f64::NAN; len * lanes];
        let mut plain = Vec::new();
        for lane in 0..lanes {
            let mut real: Vec<f64> = (0..len)
                .map(|i| ((i * 31 + lane * 7) % 11) as f64)
                .collect();
            let mut spec = filled_checked(fft.spectrum_len(), C64::new(0.0, 0.0));
            fft.forward(&mut real, &mut spec);
            let mut copy = spec.clone();
            let mut back = vec![0.0; len];
            fft.inverse(&mut copy, &mut back);
            plain.push(back);
            fft.inverse_interleaved(&mut spec, &mut grid, (lane, lanes));
        }
        // and the forward transform of each lane is the plain one
        for lane in 0..lanes {
            let mut plain_real: Vec<f64> = (0..len).map(|i| grid[i * lanes + lane]).collect();
            let mut a = filled_checked(fft.spectrum_len(), C64::new(0.0, 0.0));
            let mut b = filled_checked(fft.spectrum_len(), C64::new(0.0, 0.0));
            fft.forward(&mut plain_real, &mut a);
            fft.forward_interleaved(&mut grid.clone(), (lane, lanes), &mut b);
            assert_eq!(a, b);
        }
        for i in 0..len {
            for lane in 0..lanes {
                assert_eq!(grid[i * lanes + lane], plain[lane][i]);
            }
        }
    }

    fn check_direct_dft(n: [usize; 3]) {
        let len = n[0] * n[1] * n[2];
        let data: Vec<f64> = (0..len).map(|i| ((i * 7919) % 13) as f64 - 6.0).collect();
        let fft = Fft3::new(n);
        let mut real = data.clone();
        let mut spec = filled_checked(fft.spectrum_len(), C64::new(0.0, 0.0));
        fft.forward(&mut real, &mut spec);
        for m3 in 0..fft.half() {
            for m2 in 0..n[1] {
                for m1 in 0..n[0] {
                    let mut s = C64::new(0.0, 0.0);
                    for k1 in 0..n[0] {
                        for k2 in 0..n[1] {
                            for k3 in 0..n[2] {
                                let ph = -2.0
                                    * std::f64::consts::PI
                                    * ((m1 * k1) as f64 / n[0] as f64
                                        + (m2 * k2) as f64 / n[1] as f64
                                        + (m3 * k3) as f64 / n[2] as f64);
                                s += data[(k1 * n[1] + k2) * n[2] + k3]
                                    * C64::new(ph.cos(), ph.sin());
                            }
                        }
                    }
                    let got = spec[(m3 * n[1] + m2) * n[0] + m1];
                    assert!((got - s).norm() < 1e-10, "{m1} {m2} {m3}");
                }
            }
        }
        let mut back = zeroed_checked(len);
        fft.inverse(&mut spec, &mut back);
        for i in 0..len {
            assert!((back[i] / len as f64 - data[i]).abs() < 1e-12);
        }
    }
}
