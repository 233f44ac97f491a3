//! The labelled result of a descriptor calculation.

pub use crate::gradients::GradientRequest;

/// Position gradients: one row of `3 × n_features` per (sample, neighbour atom) pair.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PositionGradients {
    /// `(sample index, structure index, atom index in its structure)` of each gradient row:
    /// the derivative of the sample's features with respect to that atom's position.
    pub samples: Vec<[usize; 3]>,
    /// `n_gradient_samples × 3 × n_features`, row-major
    pub values: Vec<f64>,
}

/// Dense descriptor values with labels.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Descriptor {
    /// Names of the feature label columns.
    pub feature_names: Vec<&'static str>,
    /// `n_features` rows of labels, one value per name.
    pub features: Vec<Vec<i32>>,
    /// `(structure, atom, centre atomic number)` of each sample (row).
    pub samples: Vec<[i32; 3]>,
    /// `n_samples × n_features`, row-major.
    pub values: Vec<f64>,
    /// Position gradients, if requested.
    pub position_gradients: Option<PositionGradients>,
    /// Strain gradients `∂x/∂ε_{αβ}` (ε on column vectors, [`crate::strain`]) as `n_samples × 3 × 3 × n_features`, if requested (for
    /// non-periodic structures: positions scaled alone).
    pub strain_gradients: Option<Vec<f64>>,
    /// Cell gradients `∂x/∂H_{ab}` (`H` rows = cell vectors, Cartesian positions fixed) as
    /// `n_samples × 3 × 3 × n_features`, if requested (zero for non-periodic structures).
    pub cell_gradients: Option<Vec<f64>>,
}

impl Descriptor {
    /// Number of features (columns).
    pub fn n_features(&self) -> usize {
        self.features.len()
    }

    /// Number of samples (rows).
    pub fn n_samples(&self) -> usize {
        self.samples.len()
    }
}
