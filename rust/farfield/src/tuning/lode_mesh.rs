//! Error model and parameter choice of the LODE mesh path (B-spline order and grid
//! oversampling for a requested accuracy), replacing a preset table.
//!
//! # Model
//!
//! The mesh path represents every plane wave e^{ik·r} of the cutoff sphere by cardinal
//! B-splines of order P on a grid of K_a points per axis, with the Euler factor |b(m)|²
//! correcting the amplitude of the wave itself. What remains is aliasing: along axis a the
//! interpolant of a wave of frequency fraction f_a = (k·a_a)/(2π K_a) (|f_a| ≤ ½) carries the
//! images f_a + j (j ≠ 0) with relative amplitudes (f_a/(f_a + j))^P. Spreading and
//! interpolation each add one such set, so a wave's relative RMS error is
//!
//! ```text
//! ε(k)² = 2 Σ_a Σ_{j≠0} (f_a / (f_a + j))^{2P}
//! ```
//!
//! A feature x = (l, n) sums waves with weights W_x(k) = ĝ(k) I_nl(k) Y_lm(k̂) over the
//! sphere, with structure factors of random phase; its relative RMS error is then
//!
//! ```text
//! Δ_x² / c_x² = ∫ k² W_x(k)² ⟨ε²⟩(k) dk / ∫ k² W_x(k)² dk
//! ```
//!
//! (⟨·⟩ a direction average, Σ_m Y_lm² = (2l+1)/4π absorbed in the ratio; the backward
//! pass weighs W_x(k)² by k² and interpolates B-spline derivatives, images (f/(f+j))^{P-1};
//! the parameters must meet both, as the backward pass differentiates the same mesh values). The prediction is
//! max_x of the numerator over max_x of the denominator, i.e. relative to the largest feature,
//! as the accuracy of the LODE mesh is defined; the k = 0 and self terms, which the mesh does
//! not approximate, only make the true relative error smaller. The measured/predicted ratio
//! on triclinic cells, three species, p = 0, 1, 2.5, 6, GTO and monomial bases is reported by
//! `tests/test_lode.py::test_mesh_matches_exact_at_reported_accuracy`.
//!
//! # Choice
//!
//! For every order 4..=12 the smallest oversampling (grid points per axis over the smallest
//! grid holding the sphere) meeting the accuracy is found by bisection, and the cheapest
//! (order, oversampling) by the caller's cost of the resulting grid is kept.

use crate::error::{Error, Result};
use crate::math::linalg::Mat3;
use std::f64::consts::PI;

/// Smallest and largest B-spline orders of the LODE mesh.
pub const ORDERS: std::ops::RangeInclusive<usize> = 4..=12;
/// Largest oversampling considered.
pub const MAX_OVERSAMPLING: f64 = 8.0;
/// Safety factor between the requested accuracy and the predicted error (the prediction is
/// an RMS over random phases; the accuracy bounds the largest error).
const SAFETY: f64 = 0.12;

/// The spectral weights of a LODE calculation on a radial grid: for each node k (uniform
/// spacing), the squared weight of every feature channel, for the values and for their
/// position gradients.
#[derive(Debug, Clone)]
pub struct SpectralWeights {
    /// Radial nodes.
    pub k: Vec<f64>,
    /// `values[node][x]` = k² W_x(k)² for every channel x.
    pub values: Vec<Vec<f64>>,
    /// `gradients[node][x]` = k⁴ W_x(k)² (the gradients carry one more factor k).
    pub gradients: Vec<Vec<f64>>,
}

/// The chosen mesh resolution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LodeMeshChoice {
    /// B-spline order.
    pub order: usize,
    /// Grid oversampling.
    pub oversampling: f64,
    /// Predicted error relative to the largest feature (the model above).
    pub predicted_error: f64,
}

/// Directions of the average ⟨ε²⟩: a Fibonacci sphere (half of it: ε² is even in k).
fn directions() -> Vec<[f64; 3]> {
    const N: usize = 48;
    let golden = PI * (3.0 - 5f64.sqrt());
    (0..N)
        .map(|i| {
            let z = 1.0 - (i as f64 + 0.5) / N as f64; // (0, 1]: the upper half
            let r = (1.0 - z * z).max(0.0).sqrt();
            let phi = golden * i as f64;
            [r * phi.cos(), r * phi.sin(), z]
        })
        .collect()
}

/// Σ_{j≠0} (f/(f+j))^{2P} for |f| ≤ ½ (three images on each side).
fn aliasing(f: f64, order: usize) -> f64 {
    let f = f.abs().min(0.5);
    if f == 0.0 {
        return 0.0;
    }
    let mut s = 0.0;
    for j in 1..=3 {
        let j = j as f64;
        s += (f / (j - f)).powi(2 * order as i32) + (f / (j + f)).powi(2 * order as i32);
    }
    s
}

/// Predicted error (relative to the largest feature) of the mesh with `grid` points per axis
/// and B-splines of `order` for the cell `matrix` (rows: cell vectors). With `derivatives`
/// (the backward pass), one of the two passes interpolates B-spline derivatives, whose
/// images are weaker by one power: (f/(f+j))^{P-1}.
pub fn predicted_error(
    weights: &SpectralWeights,
    matrix: &Mat3,
    grid: [usize; 3],
    order: usize,
    derivatives: bool,
) -> f64 {
    let dirs = directions();
    let table = if derivatives {
        &weights.gradients
    } else {
        &weights.values
    };
    let n_channels = table.first().map_or(0, |w| w.len());
    let mut num = vec![0.0; n_channels];
    let mut den = vec![0.0; n_channels];
    for (node, &k) in weights.k.iter().enumerate() {
        let mut eps2 = 0.0;
        for d in &dirs {
            for a in 0..3 {
                let row = matrix[a];
                let proj = k * (d[0] * row[0] + d[1] * row[1] + d[2] * row[2]);
                let f = proj / (2.0 * PI * grid[a] as f64);
                eps2 += aliasing(f, order)
                    + if derivatives {
                        aliasing(f, order - 1)
                    } else {
                        aliasing(f, order)
                    };
            }
        }
        eps2 /= dirs.len() as f64;
        for (x, w) in table[node].iter().enumerate() {
            num[x] += w * eps2;
            den[x] += w;
        }
    }
    let max = |v: &[f64]| v.iter().fold(0.0f64, |m, &x| m.max(x));
    let d = max(&den);
    if d <= 0.0 {
        return 0.0;
    }
    (max(&num) / d).sqrt()
}

/// The cheapest (order, oversampling) whose predicted errors of the values and of their
/// gradients (the backward pass differentiates the same mesh values) are at most `accuracy`
/// (times a safety factor). `grid(order, oversampling)` gives the grid the mesh path would
/// use and `cost(grid, order)` its predicted cost.
pub fn choose(
    weights: &SpectralWeights,
    matrix: &Mat3,
    accuracy: f64,
    grid: impl Fn(usize, f64) -> [usize; 3],
    cost: impl Fn([usize; 3], usize) -> f64,
) -> Result<LodeMeshChoice> {
    if !(accuracy.is_finite() && accuracy > 0.0 && accuracy < 1.0) {
        return Err(Error::parameter(
            "accuracy",
            format!("the mesh accuracy must be in (0, 1), got {accuracy}"),
        ));
    }
    let target = SAFETY * accuracy;
    let mut best: Option<(f64, LodeMeshChoice)> = None;
    let mut closest = f64::INFINITY;
    for order in ORDERS {
        let err = |alpha: f64| {
            let g = grid(order, alpha);
            predicted_error(weights, matrix, g, order, false)
                .max(predicted_error(weights, matrix, g, order, true))
        };
        let top = err(MAX_OVERSAMPLING);
        closest = closest.min(top);
        if top > target {
            continue;
        }
        let alpha = if err(1.0) <= target {
            1.0
        } else {
            let (mut lo, mut hi) = (1.0, MAX_OVERSAMPLING);
            for _ in 0..30 {
                let mid = 0.5 * (lo + hi);
                if err(mid) <= target {
                    hi = mid;
                } else {
                    lo = mid;
                }
                if hi - lo < 0.01 {
                    break;
                }
            }
            hi
        };
        let g = grid(order, alpha);
        let c = cost(g, order);
        let choice = LodeMeshChoice {
            order,
            oversampling: alpha,
            predicted_error: err(alpha),
        };
        if best.as_ref().is_none_or(|(bc, _)| c < *bc) {
            best = Some((c, choice));
        }
    }
    best.map(|(_, c)| c).ok_or_else(|| {
        Error::parameter(
            "mesh_accuracy",
            format!(
                "the LODE mesh cannot reach {accuracy:e} (the finest mesh considered, order \
                 12 with oversampling {MAX_OVERSAMPLING}, is predicted at {:.1e} relative to \
                 the largest feature); loosen mesh_accuracy or use method='exact'",
                closest / SAFETY
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliasing_is_the_sinc_ratio() {
        // the first image of f = 0.25 at order 4: (0.25/0.75)^8 + (0.25/1.25)^8 + ...
        let f: f64 = 0.25;
        let expected: f64 = (1..=3)
            .map(|j| {
                let j = j as f64;
                (f / (j - f)).powi(8) + (f / (j + f)).powi(8)
            })
            .sum();
        assert!((aliasing(f, 4) - expected).abs() < 1e-18);
        assert_eq!(aliasing(0.0, 6), 0.0);
        // monotone: finer grids and higher orders alias less
        assert!(aliasing(0.2, 6) < aliasing(0.3, 6));
        assert!(aliasing(0.3, 8) < aliasing(0.3, 6));
    }

    #[test]
    fn finer_grids_predict_smaller_errors_and_the_choice_meets_the_target() {
        // a flat spectrum up to k_c = 2 in a cubic cell of side 10: the largest index is
        // M = floor(k_c L / 2π) = 3
        let k: Vec<f64> = (0..100).map(|i| (i as f64 + 0.5) * 0.02).collect();
        let values: Vec<Vec<f64>> = k
            .iter()
            .map(|k| vec![k * k * (-k * k).exp(), k * k * (-0.5 * k * k).exp()])
            .collect();
        let gradients = values
            .iter()
            .zip(&k)
            .map(|(w, k)| w.iter().map(|w| w * k * k).collect())
            .collect();
        let weights = SpectralWeights {
            k,
            values,
            gradients,
        };
        let matrix = [[10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]];
        let grid = |_: usize, alpha: f64| {
            let n = (alpha * 8.0).ceil() as usize;
            [n, n, n]
        };
        let coarse = predicted_error(&weights, &matrix, grid(6, 1.0), 6, false);
        let fine = predicted_error(&weights, &matrix, grid(6, 2.0), 6, false);
        assert!(predicted_error(&weights, &matrix, grid(6, 1.0), 6, true) > coarse);
        assert!(fine < coarse && coarse < 1.0, "{fine} {coarse}");
        for acc in [1e-3, 1e-6, 1e-10] {
            let c = choose(&weights, &matrix, acc, grid, |g, p| {
                (g[0] * g[1] * g[2]) as f64 + (p * p * p) as f64
            })
            .unwrap();
            assert!(c.predicted_error <= SAFETY * acc, "{acc}: {c:?}");
        }
        assert!(choose(&weights, &matrix, 1e-300, grid, |_, _| 1.0).is_err());
        assert!(choose(&weights, &matrix, 0.0, grid, |_, _| 1.0).is_err());
    }
}
