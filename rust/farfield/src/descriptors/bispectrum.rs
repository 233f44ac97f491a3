//! The bispectrum (ν = 3 density correlation) `|ρ_i ⊗ ρ_i ⊗ ρ_i; λ = 0⟩` of every centre, with
//! the same expansion, coupling paths, normalisation and column labels as the triplet features
//! ([`crate::descriptors::triplets`]): Σ_{j1, j2} of a centre's triplet features equals its
//! bispectrum exactly (ρ_i = Σ_j g_ij and the contraction is linear in each factor). Both parities
//! are kept (σ = (−1)^{l1+l2+l3}).

use crate::descriptors::result::Descriptor;
use crate::descriptors::spherical_expansion::ExpansionParameters;
use crate::descriptors::triplets::{
    center_samples, center_tasks, Centers, Coupling, TripletExpansion, FEATURE_NAMES,
};
use crate::error::Result;
use crate::interrupt;
use crate::limits;
use crate::system::System;
use rayon::prelude::*;

/// The bispectrum calculator.
#[derive(Debug, Clone)]
pub struct Bispectrum {
    expansion: TripletExpansion,
    coupling: Coupling,
}

impl Bispectrum {
    /// Validates the parameters (see [`TripletExpansion::new`]) and precomputes the
    /// Clebsch–Gordan tables.
    pub fn new(params: ExpansionParameters) -> Result<Bispectrum> {
        // validated first: the coupling tables grow as max_angular⁷
        let expansion = TripletExpansion::new(params)?;
        let coupling = Coupling::new(expansion.parameters().max_angular);
        Ok(Bispectrum {
            expansion,
            coupling,
        })
    }

    /// Number of features: S³ × n_paths × n³.
    pub fn n_features(&self) -> usize {
        self.expansion.n_features(&self.coupling)
    }

    /// Column labels `(a1, a2, a3, l1, l2, l3, n1, n2, n3)`, named by [`FEATURE_NAMES`].
    pub fn feature_labels(&self) -> Vec<Vec<i32>> {
        self.expansion.feature_labels(&self.coupling)
    }

    /// The bispectrum of every centre, one row per `(structure, centre, centre Z)`; parallel
    /// over centres and structures. Cost O(M) per centre.
    pub fn compute(&self, systems: &[System], centers: &Centers) -> Result<Descriptor> {
        let cells = self.expansion.cell_lists(systems)?;
        let tasks = center_tasks(systems, centers)?;
        let s = self.expansion.species().len();
        let block = self.coupling.block_len(self.expansion.n_radial());
        let bs = self.expansion.block_size();
        let contraction = self.expansion.contraction(&self.coupling);
        let width = self.n_features();
        // per centre: S² contractions of S blocks, each n³ × Σ (2 l2 + 1) multiply-adds
        let n_centers = tasks.len() as f64;
        limits::check_terms(
            "the bispectrum (centers × features)",
            n_centers * width as f64 * 4.0,
            "use smaller max_radial or max_angular, fewer species or fewer centers",
        )?;
        limits::check_memory(
            "the bispectrum (centers × features)",
            n_centers * width as f64 * 8.0 * 2.0,
            "use smaller max_radial or max_angular, fewer species or fewer centers",
        )?;
        let rows: Vec<Vec<f64>> = tasks
            .par_iter()
            .map(|&(si, i)| -> Result<Vec<f64>> {
                interrupt::check()?;
                let pairs = self.expansion.pairs(&systems[si], &cells[si], i)?;
                let rho = self.expansion.density(&pairs);
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
                Ok(row)
            })
            .collect::<Result<_>>()?;
        Ok(Descriptor {
            feature_names: FEATURE_NAMES.to_vec(),
            features: self.feature_labels(),
            samples: center_samples(systems, &tasks),
            values: rows.concat(),
            ..Descriptor::default()
        })
    }
}
