//! The labelled result of a descriptor calculation.

/// Which gradients to compute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GradientRequest {
    /// derivatives with respect to atomic positions
    pub positions: bool,
    /// derivatives with respect to a homogeneous strain ε of the cell and positions
    /// (`r → r (1 + ε)`, row vectors), for periodic systems
    pub strain: bool,
}

/// Position gradients: one row of `3 × n_features` per (sample, neighbour atom) pair.
#[derive(Debug, Clone, Default)]
pub struct PositionGradients {
    /// `(sample index, structure index, atom index in its structure)` of each gradient row:
    /// the derivative of the sample's features with respect to that atom's position.
    pub samples: Vec<[usize; 3]>,
    /// `n_gradient_samples × 3 × n_features`, row-major
    pub values: Vec<f64>,
}

/// Dense descriptor values with labels.
#[derive(Debug, Clone, Default)]
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
    /// Strain gradients `∂x/∂ε_{αβ}` as `n_samples × 3 × 3 × n_features`, if requested (zero
    /// for non-periodic structures).
    pub strain_gradients: Option<Vec<f64>>,
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

/// Features of one centre atom, before assembly into a [`Descriptor`].
#[derive(Debug, Clone, Default)]
pub(crate) struct AtomFeatures {
    /// `n_features`
    pub values: Vec<f64>,
    /// atoms (in the structure) with a gradient row, sorted
    pub grad_atoms: Vec<usize>,
    /// position of the centre atom in `grad_atoms`
    pub center_slot: Option<usize>,
    /// `grad_atoms.len() × 3 × n_features`
    pub grads: Vec<f64>,
    /// `9 × n_features`, empty when not requested
    pub strain: Vec<f64>,
}

/// Assembles per-structure, per-atom features into a dense [`Descriptor`].
pub(crate) fn assemble(
    feature_names: Vec<&'static str>,
    features: Vec<Vec<i32>>,
    numbers: &[&[i32]],
    per_atom: Vec<Vec<AtomFeatures>>,
    gradients: GradientRequest,
) -> Descriptor {
    let nf = features.len();
    let n_samples: usize = per_atom.iter().map(|s| s.len()).sum();
    let mut samples = Vec::with_capacity(n_samples);
    let mut values = Vec::with_capacity(n_samples * nf);
    let n_grad: usize = per_atom.iter().flatten().map(|a| a.grad_atoms.len()).sum();
    let mut gsamples = Vec::with_capacity(if gradients.positions { n_grad } else { 0 });
    let mut gvalues = Vec::with_capacity(if gradients.positions {
        n_grad * 3 * nf
    } else {
        0
    });
    let mut strain = Vec::with_capacity(if gradients.strain {
        n_samples * 9 * nf
    } else {
        0
    });
    let mut sample = 0usize;
    for (s, atoms) in per_atom.into_iter().enumerate() {
        for (i, a) in atoms.into_iter().enumerate() {
            samples.push([s as i32, i as i32, numbers[s][i]]);
            values.extend_from_slice(&a.values);
            if gradients.positions {
                for &j in &a.grad_atoms {
                    gsamples.push([sample, s, j]);
                }
                gvalues.extend_from_slice(&a.grads);
            }
            if gradients.strain {
                if a.strain.is_empty() {
                    strain.extend(std::iter::repeat_n(0.0, 9 * nf));
                } else {
                    strain.extend_from_slice(&a.strain);
                }
            }
            sample += 1;
        }
    }
    Descriptor {
        feature_names,
        features,
        samples,
        values,
        position_gradients: gradients.positions.then_some(PositionGradients {
            samples: gsamples,
            values: gvalues,
        }),
        strain_gradients: gradients.strain.then_some(strain),
    }
}
