//! The 3D FFT convolution of a grid of L_0 × L_1 × L_2 points zero-padded to M_0 × M_1 × M_2,
//! pruned: the forward transforms skip the lines that are all zero (only L_0 L_1 rows along the
//! last axis, L_0 H columns along the middle one, H = M_2/2 + 1), and the inverse transforms
//! compute only the lines whose points are kept (the first L_α along every axis). About 60 %
//! of the work of the full transforms, and no M_0 M_1 M_2 real grid.
//!
//! The spectrum has the layout of [`crate::mesh::fft::Fft3`]: \[H\]\[M_1\]\[M_0\].

use crate::buffers::filled;
use crate::error::Result;
use crate::mesh::fft::C64;
use rayon::prelude::*;
use realfft::RealFftPlanner;
use rustfft::FftPlanner;

/// Convolves `grid` (\[L_0\]\[L_1\]\[L_2\], row-major) with a kernel given by its transform:
/// `multiply(k2 plane, plane of the spectrum [M_1][M_0])` multiplies one plane of the
/// spectrum in place. Returns the convolved grid on the same L_0 × L_1 × L_2 points.
pub(crate) fn convolve(
    grid: &[f64],
    l: [usize; 3],
    m: [usize; 3],
    multiply: impl Fn(usize, &mut [C64]) + Sync,
) -> Result<Vec<f64>> {
    let [l0, l1, l2] = l;
    let [m0, m1, m2] = m;
    let h = m2 / 2 + 1;
    let mut real_planner = RealFftPlanner::<f64>::new();
    let r2c = real_planner.plan_fft_forward(m2);
    let c2r = real_planner.plan_fft_inverse(m2);
    let mut planner = FftPlanner::<f64>::new();
    let (f1, i1) = (planner.plan_fft_forward(m1), planner.plan_fft_inverse(m1));
    let (f0, i0) = (planner.plan_fft_forward(m0), planner.plan_fft_inverse(m0));
    let zero = C64::new(0.0, 0.0);

    // A: rows along the last axis, [l0][l1][h]
    let mut a = filled(l0 * l1 * h, zero)?;
    a.par_chunks_mut(h).zip(grid.par_chunks(l2)).for_each_init(
        || (r2c.make_input_vec(), r2c.make_scratch_vec()),
        |(input, scratch), (out, row)| {
            input[..l2].copy_from_slice(row);
            input[l2..].iter_mut().for_each(|x| *x = 0.0);
            let _ = r2c.process_with_scratch(input, out, scratch);
        },
    );
    if crate::interrupt::is_requested() {
        return Ok(Vec::new());
    }
    // B: columns along the middle axis, into the spectrum [h][m1][m0] (first l0 of each row)
    let mut spec = filled(h * m1 * m0, zero)?;
    spec.par_chunks_mut(m1 * m0).enumerate().for_each_init(
        || (vec![zero; m1], vec![zero; f1.get_inplace_scratch_len()]),
        |(column, scratch), (k2, plane)| {
            for j0 in 0..l0 {
                for (j1, c) in column.iter_mut().enumerate() {
                    *c = if j1 < l1 {
                        a[(j0 * l1 + j1) * h + k2]
                    } else {
                        zero
                    };
                }
                f1.process_with_scratch(column, scratch);
                for (k1, c) in column.iter().enumerate() {
                    plane[k1 * m0 + j0] = *c;
                }
            }
        },
    );
    drop(a);
    if crate::interrupt::is_requested() {
        return Ok(Vec::new());
    }
    // C: rows along the first axis (zero beyond l0), the kernel, and back (keep the first l0)
    spec.par_chunks_mut(m1 * m0).enumerate().for_each_init(
        || {
            vec![
                zero;
                f0.get_inplace_scratch_len()
                    .max(i0.get_inplace_scratch_len())
            ]
        },
        |scratch, (k2, plane)| {
            if crate::interrupt::is_requested() {
                return;
            }
            for row in plane.chunks_mut(m0) {
                f0.process_with_scratch(row, scratch);
            }
            multiply(k2, plane);
            for row in plane.chunks_mut(m0) {
                i0.process_with_scratch(row, scratch);
            }
        },
    );
    if crate::interrupt::is_requested() {
        return Ok(Vec::new());
    }
    // B': columns along the middle axis, keep the first l1: [l0][l1][h]
    let mut b = filled(h * l0 * l1, zero)?;
    // computed per k2 plane as [k2][l0][l1], then read transposed below
    b.par_chunks_mut(l0 * l1).enumerate().for_each_init(
        || (vec![zero; m1], vec![zero; i1.get_inplace_scratch_len()]),
        |(column, scratch), (k2, out)| {
            let plane = &spec[k2 * m1 * m0..(k2 + 1) * m1 * m0];
            for j0 in 0..l0 {
                for (k1, c) in column.iter_mut().enumerate() {
                    *c = plane[k1 * m0 + j0];
                }
                i1.process_with_scratch(column, scratch);
                out[j0 * l1..(j0 + 1) * l1].copy_from_slice(&column[..l1]);
            }
        },
    );
    drop(spec);
    if crate::interrupt::is_requested() {
        return Ok(Vec::new());
    }
    // A': rows along the last axis (c2r), keep the first l2
    let mut out = crate::buffers::zeroed(l0 * l1 * l2)?;
    out.par_chunks_mut(l2).enumerate().for_each_init(
        || {
            (
                c2r.make_input_vec(),
                c2r.make_output_vec(),
                c2r.make_scratch_vec(),
            )
        },
        |(input, output, scratch), (row, values)| {
            for (k2, c) in input.iter_mut().enumerate() {
                *c = b[k2 * l0 * l1 + row];
            }
            // the field is real: the zero and Nyquist terms are real up to round-off
            input[0].im = 0.0;
            if m2 % 2 == 0 {
                input[h - 1].im = 0.0;
            }
            let _ = c2r.process_with_scratch(input, output, scratch);
            values.copy_from_slice(&output[..l2]);
        },
    );
    Ok(out)
}
