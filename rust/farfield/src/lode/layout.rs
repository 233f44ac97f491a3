//! Layouts of the dense LODE position gradients: the compact form the engines produce
//! (`pair` (N, N, 3, F): ∂c_i[type(j)]/∂r_j for j ≠ i; `own` (N, 3, A, F): ∂c_i/∂r_i), the
//! dense (N, N, 3, A, F) array, and featomic's per-block rows (one row per centre and atom
//! whose position moves the block).
//!
//! `F = (lmax+1)² · nr` features per species channel, ordered `(l² + l + m) · nr + n`.

use crate::error::{Error, Result};

/// Sizes of a compact LODE position gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GradientShape {
    /// atoms N
    pub n_atoms: usize,
    /// species channels A
    pub n_species: usize,
    /// features per channel F
    pub n_features: usize,
}

impl GradientShape {
    fn check(&self, types: &[usize], pair: &[f64], own: &[f64]) -> Result<()> {
        let (n, na, f) = (self.n_atoms, self.n_species, self.n_features);
        if types.len() != n || types.iter().any(|&t| t >= na) {
            return Err(Error::parameter(
                "types",
                format!("expected {n} channel indices below {na}"),
            ));
        }
        if pair.len() != n * n * 3 * f || own.len() != n * 3 * na * f {
            return Err(Error::parameter(
                "pair/self gradients",
                format!(
                    "expected {} and {} values, got {} and {}",
                    n * n * 3 * f,
                    n * 3 * na * f,
                    pair.len(),
                    own.len()
                ),
            ));
        }
        Ok(())
    }
}

/// The dense ∂c_i/∂r_j, (N, N, 3, A, F), from the compact form (`types[j]`: the channel of
/// atom j).
pub fn dense_position_gradients(
    shape: GradientShape,
    types: &[usize],
    pair: &[f64],
    own: &[f64],
) -> Result<Vec<f64>> {
    shape.check(types, pair, own)?;
    let (n, na, f) = (shape.n_atoms, shape.n_species, shape.n_features);
    crate::limits::check_memory(
        "the dense LODE position gradients",
        8.0 * (n * n * 3 * na * f) as f64,
        "use backward() for the vector-Jacobian product, or a smaller system",
    )?;
    let mut dense = vec![0.0; n * n * 3 * na * f];
    for i in 0..n {
        for j in 0..n {
            for x in 0..3 {
                let dst =
                    &mut dense[((i * n + j) * 3 + x) * na * f..((i * n + j) * 3 + x + 1) * na * f];
                if j == i {
                    dst.copy_from_slice(&own[(i * 3 + x) * na * f..(i * 3 + x + 1) * na * f]);
                } else {
                    let a = types[j];
                    dst[a * f..(a + 1) * f].copy_from_slice(
                        &pair[((i * n + j) * 3 + x) * f..((i * n + j) * 3 + x + 1) * f],
                    );
                }
            }
        }
    }
    Ok(dense)
}

/// Position-gradient rows of one (centre type, neighbour channel `channel`, λ) block in
/// featomic's layout: for each centre of `centres` (in order), the row of the centre itself,
/// then one per atom `j ≠ i` of channel `channel` (ascending). Returns the `(k, j)` labels
/// (`k` the centre's position in `centres`) and the values, `rows × 3 × (2λ+1) × nr`.
#[allow(clippy::too_many_arguments)]
pub fn block_position_gradients(
    shape: GradientShape,
    types: &[usize],
    pair: &[f64],
    own: &[f64],
    centres: &[usize],
    channel: usize,
    lambda: usize,
    n_radial: usize,
) -> Result<(Vec<[usize; 2]>, Vec<f64>)> {
    shape.check(types, pair, own)?;
    let (n, na, f) = (shape.n_atoms, shape.n_species, shape.n_features);
    if channel >= na || centres.iter().any(|&i| i >= n) {
        return Err(Error::parameter(
            "centres/channel",
            "a centre index or the channel is out of range",
        ));
    }
    if n_radial == 0 || (lambda + 1) * (lambda + 1) * n_radial > f {
        return Err(Error::parameter(
            "lambda",
            "λ and n_radial do not fit the features",
        ));
    }
    let (start, width) = (lambda * lambda * n_radial, (2 * lambda + 1) * n_radial);
    let js: Vec<usize> = (0..n).filter(|&j| types[j] == channel).collect();
    let mut labels = Vec::new();
    let mut values = Vec::new();
    for (k, &i) in centres.iter().enumerate() {
        labels.push([k, i]);
        for x in 0..3 {
            let at = (i * 3 + x) * na * f + channel * f + start;
            values.extend_from_slice(&own[at..at + width]);
        }
        for &j in js.iter().filter(|&&j| j != i) {
            labels.push([k, j]);
            for x in 0..3 {
                let at = ((i * n + j) * 3 + x) * f + start;
                values.extend_from_slice(&pair[at..at + width]);
            }
        }
    }
    Ok((labels, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_rows_are_the_dense_entries() {
        // 3 atoms, channels [0, 1, 0], lmax 1, nr 2: every block row equals the matching
        // slice of the dense array, and the dense array holds zeros off the atom's channel
        let shape = GradientShape {
            n_atoms: 3,
            n_species: 2,
            n_features: 4 * 2,
        };
        let types = [0, 1, 0];
        let (n, na, f) = (3, 2, 8);
        let pair: Vec<f64> = (0..n * n * 3 * f).map(|k| k as f64 + 0.5).collect();
        let own: Vec<f64> = (0..n * 3 * na * f).map(|k| -(k as f64) - 0.25).collect();
        let dense = dense_position_gradients(shape, &types, &pair, &own).unwrap();
        let at = |i: usize, j: usize, x: usize, a: usize, c: usize| {
            dense[(((i * n + j) * 3 + x) * na + a) * f + c]
        };
        let (i, j) = (0, 1);
        assert_eq!(at(i, j, 2, 0, 3), 0.0);
        assert_eq!(at(i, j, 2, 1, 3), pair[((i * n + j) * 3 + 2) * f + 3]);
        for (lambda, channel) in [(0, 0), (1, 0), (1, 1)] {
            let centres = [2, 0];
            let (labels, values) =
                block_position_gradients(shape, &types, &pair, &own, &centres, channel, lambda, 2)
                    .unwrap();
            let width = (2 * lambda + 1) * 2;
            assert_eq!(values.len(), labels.len() * 3 * width);
            for (r, &[k, j]) in labels.iter().enumerate() {
                let i = centres[k];
                assert!(j == i || types[j] == channel);
                for x in 0..3 {
                    for c in 0..width {
                        let want = at(i, j, x, channel, lambda * lambda * 2 + c);
                        assert_eq!(values[(r * 3 + x) * width + c], want);
                    }
                }
            }
            // the centre's own row first, then the other atoms of the channel
            assert_eq!(labels.len(), 4);
            assert_eq!(labels[0], [0, 2]);
        }
    }
}
