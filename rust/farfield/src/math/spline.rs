//! Hermite splines on a uniform grid, for many functions of one variable at once.
//!
//! * [`HermiteSpline`] (cubic): each grid point stores the values and first derivatives of
//!   `n_out` functions; evaluation returns the cubic Hermite interpolant and its derivative.
//!   [`HermiteSpline::with_accuracy`] doubles the number of intervals until the interpolation
//!   error at every interval midpoint (values and, scaled by the interval, derivatives) is
//!   below the requested absolute accuracy (SOAP's radial integral).
//! * [`QuinticHermiteSpline`]: values, first and second derivatives at the knots, built in
//!   parallel, interpolant and its derivative (LODE's k-space radial integrals).

use crate::error::{Error, Result};

/// A function tabulated by a spline: `f(x, values, derivatives)` fills `n_out` values and
/// first derivatives at `x`.
pub type SplineSource<'a> = dyn Fn(f64, &mut [f64], &mut [f64]) + Sync + 'a;

/// A vector-valued cubic Hermite spline on `[x_min, x_max]` with uniform spacing.
#[derive(Debug, Clone)]
pub struct HermiteSpline {
    x_min: f64,
    dx: f64,
    n_out: usize,
    /// `(n_points, n_out)` values
    values: Vec<f64>,
    /// `(n_points, n_out)` first derivatives
    derivatives: Vec<f64>,
}

impl HermiteSpline {
    /// Tabulates `f(x, values, derivatives)` (which fills `n_out` values and derivatives) on
    /// `n_intervals + 1` uniform points of `[x_min, x_max]`.
    pub fn new(
        x_min: f64,
        x_max: f64,
        n_intervals: usize,
        n_out: usize,
        f: &SplineSource<'_>,
    ) -> Result<HermiteSpline> {
        if !(x_min.is_finite() && x_max.is_finite() && x_max > x_min) || n_intervals == 0 {
            return Err(Error::parameter(
                "spline range",
                format!(
                    "need finite x_max > x_min and at least one interval, got [{x_min}, {x_max}]"
                ),
            ));
        }
        let n = n_intervals + 1;
        let dx = (x_max - x_min) / n_intervals as f64;
        let mut values = vec![0.0; n * n_out];
        let mut derivatives = vec![0.0; n * n_out];
        for i in 0..n {
            let x = if i == n - 1 {
                x_max
            } else {
                x_min + i as f64 * dx
            };
            f(
                x,
                &mut values[i * n_out..(i + 1) * n_out],
                &mut derivatives[i * n_out..(i + 1) * n_out],
            );
        }
        Ok(HermiteSpline {
            x_min,
            dx,
            n_out,
            values,
            derivatives,
        })
    }

    /// Builds a spline whose absolute error on values (checked at every interval midpoint) is
    /// below `accuracy`, starting from 16 intervals and doubling (up to 2^20 intervals).
    pub fn with_accuracy(
        x_min: f64,
        x_max: f64,
        n_out: usize,
        accuracy: f64,
        f: &SplineSource<'_>,
    ) -> Result<HermiteSpline> {
        if !(accuracy.is_finite() && accuracy > 0.0) {
            return Err(Error::parameter(
                "accuracy",
                format!("spline accuracy must be positive and finite, got {accuracy}"),
            ));
        }
        let mut n_intervals = 16;
        let mut v = vec![0.0; n_out];
        let mut d = vec![0.0; n_out];
        let mut sv = vec![0.0; n_out];
        let mut sd = vec![0.0; n_out];
        loop {
            let spline = HermiteSpline::new(x_min, x_max, n_intervals, n_out, f)?;
            let mut max_err: f64 = 0.0;
            for i in 0..n_intervals {
                let x = x_min + (i as f64 + 0.5) * spline.dx;
                f(x, &mut v, &mut d);
                spline.evaluate(x, &mut sv, Some(&mut sd));
                for k in 0..n_out {
                    max_err = max_err.max((v[k] - sv[k]).abs());
                    max_err = max_err.max((d[k] - sd[k]).abs() * spline.dx);
                }
            }
            if max_err < accuracy {
                return Ok(spline);
            }
            if n_intervals >= 1 << 20 {
                return Err(Error::NotConverged(format!(
                    "could not reach spline accuracy {accuracy} (error {max_err:e} with {n_intervals} intervals)"
                )));
            }
            n_intervals *= 2;
        }
    }

    /// Number of grid points.
    pub fn n_points(&self) -> usize {
        self.values.len() / self.n_out.max(1)
    }

    /// Writes the interpolated values (and derivatives if asked) at `x`. Outside the range
    /// the end intervals are extrapolated.
    #[inline]
    pub fn evaluate(&self, x: f64, values: &mut [f64], derivatives: Option<&mut [f64]>) {
        let n_out = self.n_out;
        let n_int = self.n_points() - 1;
        let t_full = (x - self.x_min) / self.dx;
        let i = (t_full.floor().max(0.0) as usize).min(n_int - 1);
        let t = t_full - i as f64;
        let (t2, t3) = (t * t, t * t * t);
        let h00 = 2.0 * t3 - 3.0 * t2 + 1.0;
        let h10 = t3 - 2.0 * t2 + t;
        let h01 = -2.0 * t3 + 3.0 * t2;
        let h11 = t3 - t2;
        let dx = self.dx;
        let v0 = &self.values[i * n_out..(i + 1) * n_out];
        let v1 = &self.values[(i + 1) * n_out..(i + 2) * n_out];
        let d0 = &self.derivatives[i * n_out..(i + 1) * n_out];
        let d1 = &self.derivatives[(i + 1) * n_out..(i + 2) * n_out];
        for k in 0..n_out {
            values[k] = h00 * v0[k] + h10 * dx * d0[k] + h01 * v1[k] + h11 * dx * d1[k];
        }
        if let Some(der) = derivatives {
            let g00 = (6.0 * t2 - 6.0 * t) / dx;
            let g10 = 3.0 * t2 - 4.0 * t + 1.0;
            let g01 = (-6.0 * t2 + 6.0 * t) / dx;
            let g11 = 3.0 * t2 - 2.0 * t;
            for k in 0..n_out {
                der[k] = g00 * v0[k] + g10 * d0[k] + g01 * v1[k] + g11 * d1[k];
            }
        }
    }
}

/// A vector-valued quintic Hermite spline on `[x_min, x_max]` with uniform knots: every knot
/// holds the value and the first and second derivatives of `width` functions; the interpolant
/// is exact for quintic polynomials and its error falls as the sixth power of the spacing.
#[derive(Debug, Clone)]
pub struct QuinticHermiteSpline {
    x_min: f64,
    span: f64,
    h: f64,
    width: usize,
    /// knots × width × [f, f', f'']
    data: Vec<[f64; 3]>,
}

/// A function tabulated by a [`QuinticHermiteSpline`]: `f(x, out)` writes `[f, f', f'']` of
/// every function at `x` into `out` (`width` entries, zeros on entry).
pub type QuinticSource<'a> = dyn Fn(f64, &mut [[f64; 3]]) + Sync + 'a;

impl QuinticHermiteSpline {
    /// Number of intervals on a range of length `span` with spacing at most `h` (at least 8).
    pub fn intervals(span: f64, h: f64) -> usize {
        ((span / h).ceil() as usize).max(8)
    }

    /// Tabulates `f` (`width ≥ 1` functions) at the
    /// [`intervals`](Self::intervals)`(x_max − x_min, h) + 1` uniform knots of
    /// `[x_min, x_max]`, the knots in parallel.
    pub fn new(
        x_min: f64,
        x_max: f64,
        h: f64,
        width: usize,
        f: &QuinticSource<'_>,
    ) -> Result<QuinticHermiteSpline> {
        use rayon::prelude::*;
        if !(x_min.is_finite() && x_max.is_finite() && x_max > x_min && h > 0.0) || width == 0 {
            return Err(Error::parameter(
                "spline range",
                format!(
                    "need finite x_max > x_min, a positive spacing and at least one function, \
                     got [{x_min}, {x_max}], spacing {h}, {width} functions"
                ),
            ));
        }
        let span = x_max - x_min;
        let intervals = Self::intervals(span, h);
        let h = span / intervals as f64;
        let mut data = vec![[0.0; 3]; (intervals + 1) * width];
        data.par_chunks_mut(width)
            .enumerate()
            .for_each(|(q, row)| f(x_min + q as f64 * h, row));
        Ok(QuinticHermiteSpline {
            x_min,
            span,
            h,
            width,
            data,
        })
    }

    /// The interpolated values into `out` and first derivatives into `dout` (`width` entries
    /// each) at `x`, clamped to the range.
    #[inline]
    pub fn evaluate(&self, x: f64, out: &mut [f64], dout: &mut [f64]) {
        let t = ((x - self.x_min) / self.h).clamp(0.0, self.span / self.h);
        let mut i = t.floor() as usize;
        if (i + 1) * self.width >= self.data.len() {
            i = self.data.len() / self.width - 2;
        }
        let s = t - i as f64;
        let (s2, s3) = (s * s, s * s * s);
        let (s4, s5) = (s3 * s, s3 * s2);
        let h = self.h;
        let hh = [
            1.0 - 10.0 * s3 + 15.0 * s4 - 6.0 * s5,
            h * (s - 6.0 * s3 + 8.0 * s4 - 3.0 * s5),
            h * h * (0.5 * s2 - 1.5 * s3 + 1.5 * s4 - 0.5 * s5),
            h * h * (0.5 * s3 - s4 + 0.5 * s5),
            h * (-4.0 * s3 + 7.0 * s4 - 3.0 * s5),
            10.0 * s3 - 15.0 * s4 + 6.0 * s5,
        ];
        let dh = [
            (-30.0 * s2 + 60.0 * s3 - 30.0 * s4) / h,
            1.0 - 18.0 * s2 + 32.0 * s3 - 15.0 * s4,
            h * (s - 4.5 * s2 + 6.0 * s3 - 2.5 * s4),
            h * (1.5 * s2 - 4.0 * s3 + 2.5 * s4),
            -12.0 * s2 + 28.0 * s3 - 15.0 * s4,
            (30.0 * s2 - 60.0 * s3 + 30.0 * s4) / h,
        ];
        let a = &self.data[i * self.width..(i + 1) * self.width];
        let b = &self.data[(i + 1) * self.width..(i + 2) * self.width];
        for x in 0..self.width {
            let (p0, m0, c0) = (a[x][0], a[x][1], a[x][2]);
            let (p1, m1, c1) = (b[x][0], b[x][1], b[x][2]);
            out[x] = hh[0] * p0 + hh[1] * m0 + hh[2] * c0 + hh[3] * c1 + hh[4] * m1 + hh[5] * p1;
            dout[x] = dh[0] * p0 + dh[1] * m0 + dh[2] * c0 + dh[3] * c1 + dh[4] * m1 + dh[5] * p1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_cubics_exactly_and_reaches_accuracy() {
        let f = |x: f64, v: &mut [f64], d: &mut [f64]| {
            v[0] = x * x * x - 2.0 * x;
            d[0] = 3.0 * x * x - 2.0;
            v[1] = (2.0 * x).sin();
            d[1] = 2.0 * (2.0 * x).cos();
        };
        let s = HermiteSpline::with_accuracy(0.0, 3.0, 2, 1e-10, &f).unwrap();
        let mut v = [0.0; 2];
        let mut d = [0.0; 2];
        for k in 0..301 {
            let x = 0.01 * k as f64;
            s.evaluate(x, &mut v, Some(&mut d));
            assert!((v[0] - (x * x * x - 2.0 * x)).abs() < 1e-12);
            assert!((d[0] - (3.0 * x * x - 2.0)).abs() < 1e-10);
            assert!((v[1] - (2.0 * x).sin()).abs() < 2e-10);
            assert!((d[1] - 2.0 * (2.0 * x).cos()).abs() < 1e-6);
        }
        assert!(HermiteSpline::with_accuracy(0.0, 1.0, 1, 0.0, &f).is_err());
        assert!(HermiteSpline::new(1.0, 1.0, 4, 1, &f).is_err());
    }

    #[test]
    fn quintic_is_exact_for_quintics_and_converges_as_h6() {
        // p(x) = x⁵ − 3x³ + x and sin(3x) on [−1, 2]
        let f = |x: f64, out: &mut [[f64; 3]]| {
            out[0] = [
                x.powi(5) - 3.0 * x.powi(3) + x,
                5.0 * x.powi(4) - 9.0 * x * x + 1.0,
                20.0 * x.powi(3) - 18.0 * x,
            ];
            let (s, c) = (3.0 * x).sin_cos();
            out[1] = [s, 3.0 * c, -9.0 * s];
        };
        let error = |h: f64| {
            let s = QuinticHermiteSpline::new(-1.0, 2.0, h, 2, &f).unwrap();
            let (mut v, mut d) = ([0.0; 2], [0.0; 2]);
            let mut exact = [[0.0; 3]; 2];
            let mut worst: f64 = 0.0;
            for k in 0..=997 {
                let x = -1.0 + 3.0 * k as f64 / 997.0;
                s.evaluate(x, &mut v, &mut d);
                f(x, &mut exact);
                assert!((v[0] - exact[0][0]).abs() < 1e-12, "{x}");
                assert!((d[0] - exact[0][1]).abs() < 1e-11, "{x}");
                worst = worst.max((v[1] - exact[1][0]).abs());
            }
            worst
        };
        let (coarse, fine) = (error(0.3), error(0.15));
        assert!(coarse < 1e-4 && fine < coarse / 40.0, "{coarse:e} {fine:e}");
        assert_eq!(QuinticHermiteSpline::intervals(1.0, 0.5), 8);
        assert!(QuinticHermiteSpline::new(1.0, 1.0, 0.1, 1, &f).is_err());
    }
}
