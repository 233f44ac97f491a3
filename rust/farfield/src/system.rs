//! [`System`]: the atoms every engine works on, and [`Cell`], the periodic box.

use crate::error::{check_finite, Error, Result};
use crate::math::linalg::{det3, inverse3, Mat3, Vec3};
use std::sync::Arc;

/// Smallest allowed distance between two atoms (including periodic images).
pub const MIN_DISTANCE: f64 = 1e-8;

/// Largest ratio of the longest cell vector to the smallest distance between opposite faces.
pub const MAX_CELL_ASPECT: f64 = 1e8;

/// A periodic cell. Rows of the matrix are the cell vectors a, b, c.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    matrix: Mat3,
    inverse: Mat3,
    volume: f64,
}

impl Cell {
    /// Creates a cell from its rows, rejecting non-finite, singular and nearly degenerate cells.
    ///
    /// A cell is called nearly degenerate when its volume is below 1e-10 times the product of
    /// the lengths of its vectors (the angle between a vector and the plane of the other two is
    /// then below about 1e-10 rad), or when the smallest distance between opposite faces is below
    /// [`MIN_DISTANCE`] or below 1/[`MAX_CELL_ASPECT`] times the longest cell vector (then the
    /// lattice has vectors so short that atoms overlap their own images).
    pub fn new(matrix: Mat3) -> Result<Cell> {
        check_finite("cell", matrix.as_flattened())?;
        let det = det3(&matrix);
        let lengths: Vec<f64> = matrix.iter().map(crate::math::linalg::norm).collect();
        let scale = lengths[0] * lengths[1] * lengths[2];
        if scale == 0.0 || det.abs() <= 1e-10 * scale {
            return Err(Error::SingularCell(format!(
                "volume {det:.3e} for cell vector lengths {:.3e}, {:.3e}, {:.3e}; the cell \
                 vectors must be linearly independent",
                lengths[0], lengths[1], lengths[2]
            )));
        }
        let inverse = inverse3(&matrix);
        let cell = Cell {
            matrix,
            inverse,
            volume: det.abs(),
        };
        // the lattice holds a vector at least as short as the smallest plane spacing only when
        // the spacing is tiny; a spacing far below the cell lengths (or below MIN_DISTANCE)
        // makes every atom overlap its own images or every lattice sum ill-conditioned
        let spacing = cell
            .plane_spacings()
            .into_iter()
            .fold(f64::INFINITY, f64::min);
        let longest = lengths.iter().copied().fold(0.0, f64::max);
        if spacing.is_nan() || spacing < MIN_DISTANCE || spacing < longest / MAX_CELL_ASPECT {
            return Err(Error::SingularCell(format!(
                "the cell is nearly degenerate: the smallest distance between opposite faces \
                 is {spacing:.3e} for a longest cell vector of {longest:.3e} (the ratio must be \
                 at least {:.0e} and the distance at least {MIN_DISTANCE:.0e}); check the \
                 cell vectors",
                MAX_CELL_ASPECT.recip()
            )));
        }
        Ok(cell)
    }

    /// Cell vectors as rows.
    pub fn matrix(&self) -> &Mat3 {
        &self.matrix
    }

    /// Inverse of the cell matrix: fractional = cartesian · inverse.
    pub fn inverse(&self) -> &Mat3 {
        &self.inverse
    }

    /// Volume (always positive).
    pub fn volume(&self) -> f64 {
        self.volume
    }

    /// Reciprocal vectors b_i (rows) with a_i · b_j = 2π δ_ij, i.e. 2π (A⁻¹)ᵀ.
    pub fn reciprocal(&self) -> Mat3 {
        let mut b = [[0.0; 3]; 3];
        for i in 0..3 {
            for j in 0..3 {
                b[i][j] = 2.0 * std::f64::consts::PI * self.inverse[j][i];
            }
        }
        b
    }

    /// Distances between opposite faces of the cell (lattice-plane spacings), 2π/|b_i|.
    pub fn plane_spacings(&self) -> Vec3 {
        let b = self.reciprocal();
        let mut d = [0.0; 3];
        for i in 0..3 {
            d[i] = 2.0 * std::f64::consts::PI / crate::math::linalg::norm(&b[i]);
        }
        d
    }

    /// Lengths of the three cell vectors.
    pub fn lengths(&self) -> Vec3 {
        [
            crate::math::linalg::norm(&self.matrix[0]),
            crate::math::linalg::norm(&self.matrix[1]),
            crate::math::linalg::norm(&self.matrix[2]),
        ]
    }

    /// Fractional coordinates of a cartesian position.
    pub fn to_fractional(&self, r: &Vec3) -> Vec3 {
        let mut f = [0.0; 3];
        for (k, fk) in f.iter_mut().enumerate() {
            *fk = r[0] * self.inverse[0][k] + r[1] * self.inverse[1][k] + r[2] * self.inverse[2][k];
        }
        f
    }

    /// Cartesian position of fractional coordinates.
    pub fn to_cartesian(&self, f: &Vec3) -> Vec3 {
        let mut r = [0.0; 3];
        for (k, rk) in r.iter_mut().enumerate() {
            *rk = f[0] * self.matrix[0][k] + f[1] * self.matrix[1][k] + f[2] * self.matrix[2][k];
        }
        r
    }
}

/// Which directions are periodic (all three or none today; slabs and wires may come).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Periodicity {
    /// No periodicity: a molecule or cluster.
    None,
    /// Periodic in all three directions.
    Full,
}

/// Largest atomic number (species label) a [`System`] can hold (numbers are stored as `i32`).
pub const MAX_NUMBER: i32 = i32::MAX;

/// The atoms that every engine works on: positions, atomic numbers (species), and an optional
/// periodic cell.
///
/// A `System` is immutable and validated once, by [`System::new`] / [`System::with_pbc`]; every
/// engine trusts it. Its arrays are shared, so `clone` is cheap (no copy, no re-validation):
/// the Python bindings keep one validated `System` per Python `System` and clone it per call.
#[derive(Debug, Clone, PartialEq)]
pub struct System {
    positions: Arc<[Vec3]>,
    numbers: Arc<[i32]>,
    cell: Option<Cell>,
}

impl System {
    /// Creates a system and validates it.
    ///
    /// * `positions`: cartesian positions, one row per atom.
    /// * `numbers`: atomic numbers (or any integer species label), one per atom.
    /// * `cell`: cell vectors as rows for a periodic system, `None` for an open one.
    ///
    /// Errors on non-finite values, length mismatches, singular cells and on two atoms closer
    /// than [`MIN_DISTANCE`] (periodic images included).
    pub fn new(positions: Vec<Vec3>, numbers: Vec<i32>, cell: Option<Mat3>) -> Result<System> {
        check_finite("positions", positions.as_flattened())?;
        if numbers.len() != positions.len() {
            return Err(Error::shape(
                "numbers",
                format!("{} atomic numbers (one per position)", positions.len()),
                format!("{}", numbers.len()),
            ));
        }
        if let Some(i) = numbers.iter().position(|&z| z < 0) {
            return Err(number_out_of_range(i, numbers[i].into()));
        }
        let cell = cell.map(Cell::new).transpose()?;
        let system = System {
            positions: positions.into(),
            numbers: numbers.into(),
            cell,
        };
        system.check_overlaps()?;
        Ok(system)
    }

    /// Creates a system from a periodicity flag per direction. Mixed periodicity (slabs, wires)
    /// is not supported yet.
    pub fn with_pbc(
        positions: Vec<Vec3>,
        numbers: Vec<i32>,
        cell: Option<Mat3>,
        pbc: [bool; 3],
    ) -> Result<System> {
        match (pbc, cell) {
            ([false, false, false], _) => System::new(positions, numbers, None),
            ([true, true, true], Some(cell)) => System::new(positions, numbers, Some(cell)),
            ([true, true, true], None) => {
                Err(Error::parameter("cell", "a periodic system needs a cell"))
            }
            _ => Err(Error::Unsupported(format!(
                "periodicity {pbc:?}: only fully periodic or fully open systems are supported"
            ))),
        }
    }

    /// Number of atoms.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// `true` when there are no atoms.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Cartesian positions.
    pub fn positions(&self) -> &[Vec3] {
        &self.positions
    }

    /// Atomic numbers (species labels).
    pub fn numbers(&self) -> &[i32] {
        &self.numbers
    }

    /// The periodic cell, if any.
    pub fn cell(&self) -> Option<&Cell> {
        self.cell.as_ref()
    }

    /// Periodicity of the system.
    pub fn periodicity(&self) -> Periodicity {
        if self.cell.is_some() {
            Periodicity::Full
        } else {
            Periodicity::None
        }
    }

    /// `true` for a periodic system.
    pub fn is_periodic(&self) -> bool {
        self.cell.is_some()
    }

    /// Sorted list of the distinct species present.
    pub fn species(&self) -> Vec<i32> {
        let mut s = self.numbers.to_vec();
        s.sort_unstable();
        s.dedup();
        s
    }

    fn check_overlaps(&self) -> Result<()> {
        use rayon::prelude::*;
        let list = crate::neighbors::CellList::new(self, MIN_DISTANCE)?;
        // bin order keeps the 27 searched bins in cache (random atom order made this check
        // cost as much as a PME sum at 10^6 atoms); the first hit in that order is reported
        let found = list
            .atoms_in_bin_order()
            .par_iter()
            .with_min_len(4096)
            .find_map_first(|&i| {
                list.first_neighbor(i)
                    .map(|n| (i.min(n.j), i.max(n.j), n.distance))
            });
        match found {
            Some((i, j, distance)) => Err(Error::OverlappingAtoms { i, j, distance }),
            None => Ok(()),
        }
    }
}

/// The error for an atomic number outside [0, [`MAX_NUMBER`]] (atom `index` has `value`); also
/// used by converters that read wider integers before building a [`System`].
// Hidden, not crate-private: the Python binding's converter reads int64/uint64 numbers, which
// cannot reach `System::new` (i32) when out of range, and reports them with this same error.
#[doc(hidden)]
pub fn number_out_of_range(index: usize, value: i128) -> Error {
    Error::parameter(
        "numbers",
        format!(
            "numbers must be in [0, {MAX_NUMBER}] (atomic numbers or non-negative species \
             labels), got {value} (atom {index})"
        ),
    )
}

/// Checks a per-atom array length.
pub(crate) fn check_per_atom(what: &str, len: usize, system: &System) -> Result<()> {
    if len != system.len() {
        return Err(Error::shape(
            what,
            format!("{} values (one per atom)", system.len()),
            format!("{len}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_singular_cell() {
        let cell = [[1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 1.0]];
        let err = System::new(vec![[0.0; 3]], vec![1], Some(cell)).unwrap_err();
        assert!(matches!(err, Error::SingularCell(_)));
    }

    #[test]
    fn rejects_nearly_degenerate_cell_before_overlaps() {
        for cell in [
            [[5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [5.0, 5.0, 1e-9]],
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1e-12]],
            [[1e4, 0.0, 0.0], [0.0, 1e4, 0.0], [0.5e4, 0.5e4, 1e-5]],
        ] {
            let err = System::new(vec![[0.0; 3]], vec![1], Some(cell)).unwrap_err();
            assert!(matches!(err, Error::SingularCell(_)), "{err}");
            assert!(err.to_string().contains("cell"), "{err}");
        }
        // thin but well-conditioned cells stay valid
        let cell = [[1e3, 0.0, 0.0], [0.0, 1e3, 0.0], [0.0, 0.0, 0.5]];
        assert!(System::new(vec![[0.0; 3]], vec![1], Some(cell)).is_ok());
    }

    #[test]
    fn rejects_negative_numbers() {
        let err = System::new(vec![[0.0; 3], [1.0, 0.0, 0.0]], vec![1, -1], None).unwrap_err();
        assert!(
            err.to_string()
                .contains("numbers must be in [0, 2147483647]"),
            "{err}"
        );
        assert!(err.to_string().contains("got -1 (atom 1)"), "{err}");
    }

    #[test]
    fn clones_share_the_validated_arrays() {
        let cell = [[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]];
        let system = System::new(vec![[0.0; 3], [1.0, 0.0, 0.0]], vec![1, 8], Some(cell)).unwrap();
        let copy = system.clone();
        assert!(std::ptr::eq(system.positions(), copy.positions()));
        assert!(std::ptr::eq(system.numbers(), copy.numbers()));
        assert_eq!(system, copy);
    }

    #[test]
    fn rejects_nan() {
        let err = System::new(vec![[f64::NAN, 0.0, 0.0]], vec![1], None).unwrap_err();
        assert!(matches!(err, Error::NonFinite { .. }));
    }

    #[test]
    fn rejects_overlap_through_image() {
        let cell = [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]];
        let err = System::new(
            vec![[0.0, 0.0, 0.0], [2.0, 2.0, 0.0]],
            vec![1, 1],
            Some(cell),
        )
        .unwrap_err();
        assert!(matches!(err, Error::OverlappingAtoms { .. }));
        let ok = System::new(
            vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]],
            vec![1, 1],
            Some(cell),
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn reciprocal_vectors() {
        let cell = Cell::new([[1.0, 0.2, 0.0], [0.3, 2.0, 0.1], [0.0, 0.5, 3.0]]).unwrap();
        let b = cell.reciprocal();
        for i in 0..3 {
            for j in 0..3 {
                let dot: f64 = (0..3).map(|k| cell.matrix()[i][k] * b[j][k]).sum();
                let expected = if i == j {
                    2.0 * std::f64::consts::PI
                } else {
                    0.0
                };
                assert!((dot - expected).abs() < 1e-12);
            }
        }
    }
}
