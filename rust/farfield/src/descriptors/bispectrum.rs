//! The bispectrum (ν = 3 density correlation) `|ρ_i ⊗ ρ_i ⊗ ρ_i; λ = 0⟩` of every centre, with
//! the same expansion, coupling paths, normalisation and column labels as the triplet features
//! ([`crate::descriptors::triplets`]): Σ_{j1, j2} of a centre's triplet features equals its
//! bispectrum exactly (ρ_i = Σ_j g_ij and the contraction is linear in each factor). Both parities
//! are kept (σ = (−1)^{l1+l2+l3}).

use crate::descriptors::triplets::{
    cell_lists, centre_tasks, density, feature_labels, CentreOutput, Centres, Contraction,
    Coupling, ExpansionSettings, LocalExpansion,
};
use crate::error::Result;
use crate::system::System;
use rayon::prelude::*;

/// The bispectrum calculator.
#[derive(Debug, Clone)]
pub struct Bispectrum {
    settings: ExpansionSettings,
    expansion: LocalExpansion,
    coupling: Coupling,
}

impl Bispectrum {
    /// Validates the settings and precomputes the Clebsch–Gordan tables.
    pub fn new(settings: ExpansionSettings) -> Result<Bispectrum> {
        let expansion = LocalExpansion::new(settings.clone())?;
        let coupling = Coupling::new(settings.max_angular);
        Ok(Bispectrum {
            settings,
            expansion,
            coupling,
        })
    }

    /// Number of features: S³ × n_paths × n³.
    pub fn n_features(&self) -> usize {
        let s = self.settings.species.len();
        s * s * s * self.coupling.block_len(self.settings.max_radial)
    }

    /// Column labels `(a1, a2, a3, l1, l2, l3, n1, n2, n3)`.
    pub fn feature_labels(&self) -> Vec<[i32; 9]> {
        feature_labels(&self.settings, &self.coupling)
    }

    /// The bispectrum of every centre, one row per `(structure, centre)`; parallel over centres
    /// and structures. Cost O(M) per centre.
    pub fn compute(&self, systems: &[System], centres: &Centres) -> Result<CentreOutput> {
        let cells = cell_lists(&self.settings, systems)?;
        let tasks = centre_tasks(systems, centres)?;
        let s = self.settings.species.len();
        let block = self.coupling.block_len(self.settings.max_radial);
        let bs = self.settings.block_size();
        let contraction = Contraction {
            coupling: &self.coupling,
            n: self.settings.max_radial,
            lm: self.settings.lm_size(),
            n_species: s,
        };
        let width = self.n_features();
        let rows: Vec<(usize, Vec<f64>)> = tasks
            .par_iter()
            .map(|&(si, i)| -> Result<(usize, Vec<f64>)> {
                let pairs = self.expansion.pairs(&systems[si], &cells[si], i)?;
                let rho = density(&self.settings, &pairs);
                let mut ws = contraction.workspace();
                let mut row = vec![0.0; width];
                for a1 in 0..s {
                    contraction.prepare(&mut ws, &rho[a1 * bs..(a1 + 1) * bs], &rho);
                    for a2 in 0..s {
                        let start = (a1 * s + a2) * s * block;
                        contraction.finish(
                            &ws,
                            &rho[a2 * bs..(a2 + 1) * bs],
                            &mut row[start..start + s * block],
                        );
                    }
                }
                Ok((pairs.len(), row))
            })
            .collect::<Result<_>>()?;
        let mut values = Vec::with_capacity(rows.len() * width);
        let mut n_neighbours = Vec::with_capacity(rows.len());
        for (m, row) in rows {
            n_neighbours.push(m);
            values.extend(row);
        }
        Ok(CentreOutput {
            samples: tasks.iter().map(|&(si, i)| [si, i]).collect(),
            n_neighbours,
            values,
            n_features: width,
        })
    }
}
