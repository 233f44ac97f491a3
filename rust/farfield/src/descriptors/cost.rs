//! Cost before work for the local descriptors: estimates of the neighbour search, of the
//! neighbour pairs and of the buffers, from the structures and the parameters alone, checked
//! against [`crate::limits`] before any neighbour list is built or any buffer allocated.

use crate::error::{Error, Result};
use crate::limits;
use crate::system::System;

/// What the cell-list neighbour search of one structure will do, estimated from its cell (or
/// bounding box), its number of atoms and the cutoff, with the bin layout of
/// [`crate::neighbors::CellList`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NeighborEstimate {
    /// Bins and atom images visited by the search, all centres together.
    pub visited: f64,
    /// Neighbour pairs (each counted from both sides), all centres together.
    pub pairs: f64,
    /// Largest number of neighbours of one centre (the average for periodic structures,
    /// bounded by the number of images visited).
    pub per_center: f64,
}

impl NeighborEstimate {
    fn add(self, other: NeighborEstimate) -> NeighborEstimate {
        NeighborEstimate {
            visited: self.visited + other.visited,
            pairs: self.pairs + other.pairs,
            per_center: self.per_center.max(other.per_center),
        }
    }
}

/// Estimates the neighbour search of `system` within `cutoff` (see [`NeighborEstimate`]).
pub fn neighbor_estimate(system: &System, cutoff: f64) -> NeighborEstimate {
    let n = system.len() as f64;
    if system.is_empty() || cutoff.is_nan() || cutoff <= 0.0 {
        return NeighborEstimate::default();
    }
    let (extents, volume) = match system.cell() {
        Some(cell) => (cell.plane_spacings(), Some(cell.volume().abs())),
        None => {
            let mut lo = [f64::INFINITY; 3];
            let mut hi = [f64::NEG_INFINITY; 3];
            for r in system.positions() {
                for k in 0..3 {
                    lo[k] = lo[k].min(r[k]);
                    hi[k] = hi[k].max(r[k]);
                }
            }
            ([hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]], None)
        }
    };
    let (n_bins, search) =
        crate::neighbors::bin_grid(extents, cutoff, system.len(), volume.is_some());
    let mut bins_searched = 1.0;
    let mut bins_total = 1.0;
    for k in 0..3 {
        if extents[k] > 0.0 {
            let nb = n_bins[k] as f64;
            let s = search[k] as f64;
            let searched = (2.0 * s + 1.0).min(if volume.is_none() { nb } else { f64::MAX });
            bins_searched *= searched;
            bins_total *= nb;
        }
    }
    // per centre: the bins searched and the atoms they hold (every image of every atom)
    let images = bins_searched * n / bins_total;
    let visited_per_centre = bins_searched + images;
    let per_center = match volume {
        Some(v) if v > 0.0 => {
            (n / v * 4.0 / 3.0 * std::f64::consts::PI * cutoff.powi(3)).min(images) + 1.0
        }
        _ => (images * std::f64::consts::PI / 6.0).clamp(0.0, n - 1.0) + 1.0,
    };
    NeighborEstimate {
        visited: n * visited_per_centre,
        pairs: n * per_center,
        per_center,
    }
}

/// [`neighbor_estimate`] of every structure, summed (and the largest per centre).
pub fn neighbor_estimates(systems: &[System], cutoff: f64) -> NeighborEstimate {
    systems
        .iter()
        .map(|s| neighbor_estimate(s, cutoff))
        .fold(NeighborEstimate::default(), NeighborEstimate::add)
}

/// Refuses a neighbour search, `per_pair` terms per neighbour pair and `other` further terms
/// above the term limit, naming the cutoff; returns the estimate.
pub fn check_neighbors(
    what: &str,
    systems: &[System],
    cutoff: f64,
    per_pair: f64,
    other: f64,
) -> Result<NeighborEstimate> {
    let estimate = neighbor_estimates(systems, cutoff);
    limits::check_terms(
        &format!(
            "{what} (neighbor search and pair terms, about {:.1e} neighbor pairs within the \
             cutoff of {cutoff} Å)",
            estimate.pairs
        ),
        estimate.visited + estimate.pairs * per_pair + other,
        "use a smaller cutoff (or smaller max_radial / max_angular, or fewer structures)",
    )?;
    Ok(estimate)
}

/// A zero-filled buffer of `len` values advised to use huge pages ([`crate::buffers`]), after
/// checking it against the memory limit: an allocation failure is an error, never an abort.
/// For outputs filled in a scattered order (the spherical-expansion gradients), where page
/// faults on 4 KiB pages cost as much as the arithmetic (measured 2-5× on values + gradients).
pub(crate) fn try_calloc(what: &str, len: usize, hint: &str) -> Result<Vec<f64>> {
    allocate(what, len, hint, true)
}

/// As [`try_calloc`] with plain `calloc` pages, for outputs written once front to back (the
/// triplet rows): there huge pages cost more than they save (measured 0.9 s → 4.3 s for the
/// full triplet rows of 200 clusters, the time going to the kernel zeroing pages).
pub(crate) fn try_calloc_plain(what: &str, len: usize, hint: &str) -> Result<Vec<f64>> {
    allocate(what, len, hint, false)
}

fn allocate(what: &str, len: usize, hint: &str, huge: bool) -> Result<Vec<f64>> {
    let bytes = len as f64 * 8.0;
    limits::check_memory(what, bytes, hint)?;
    crate::buffers::zeroed_pages(len, huge).map_err(|_| Error::TooExpensive {
        what: what.to_string(),
        estimate: limits::format_bytes(bytes),
        limit: "the memory the system could allocate".into(),
        hint: hint.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_follow_the_cutoff() {
        let a = 5.64;
        let cell = [
            [0.0, a / 2.0, a / 2.0],
            [a / 2.0, 0.0, a / 2.0],
            [a / 2.0, a / 2.0, 0.0],
        ];
        let nacl = System::new(
            vec![[0.0; 3], [a / 2.0, 0.0, 0.0]],
            vec![11, 17],
            Some(cell),
        )
        .unwrap();
        let small = neighbor_estimate(&nacl, 3.0);
        // 6 nearest neighbours at 2.82 Å: the estimate is of that order
        assert!(
            small.per_center > 3.0 && small.per_center < 30.0,
            "{small:?}"
        );
        let huge = neighbor_estimate(&nacl, 1e4);
        assert!(huge.visited > 1e12, "{huge:?}");
        assert!(check_neighbors("x", std::slice::from_ref(&nacl), 1e4, 1.0, 0.0).is_err());
        assert!(check_neighbors("x", &[nacl], 5.0, 100.0, 0.0).is_ok());
        let open = System::new(vec![[0.0; 3], [1.0, 0.0, 0.0]], vec![1, 1], None).unwrap();
        let e = neighbor_estimate(&open, 1e6);
        assert!(e.pairs <= 4.0 && e.visited < 100.0, "{e:?}");
        assert_eq!(try_calloc("x", 3, "").unwrap(), vec![0.0; 3]);
        assert!(try_calloc("x", usize::MAX / 16, "").is_err());
        assert_eq!(try_calloc_plain("x", 3, "").unwrap(), vec![0.0; 3]);
        assert!(try_calloc_plain("x", usize::MAX / 16, "").is_err());
    }
}
