//! Bindings of the triplets engine: one settings class, [`TripletCalculator`], computing triplet
//! features, their streamed sums, the bispectrum and the pair expansions they are made of; and
//! the Clebsch–Gordan product of two expansions.
use crate::convert::SystemArrays;
use crate::descriptors::{parameters, to_dict};
use crate::{errors, threads};
use farfield::descriptors::bispectrum::Bispectrum;
use farfield::descriptors::triplets::{pair_product, Centres, Projection, TripletFeatures};
use farfield::{Error, System};
use numpy::ndarray::{Array1, Array2, Array3};
use numpy::{IntoPyArray, PyArray1, PyArray3, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyDict;

type PairArrays<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray3<f64>>);
type ProjectionArrays<'py> = (PyReadonlyArray1<'py, f64>, PyReadonlyArray2<'py, f64>);

fn systems(frames: &[SystemArrays<'_>]) -> farfield::Result<Vec<System>> {
    frames.iter().map(|f| f.to_system()).collect()
}

fn centres(list: Option<Vec<usize>>) -> Centres {
    match list {
        None => Centres::All,
        Some(l) => Centres::Indices(l),
    }
}

fn projection(proj: Option<ProjectionArrays<'_>>) -> Option<Projection> {
    proj.map(|(mean, comps)| {
        let c = comps.as_array();
        Projection {
            mean: mean.as_array().iter().copied().collect(),
            components: c.iter().copied().collect(),
            n_components: c.ncols(),
        }
    })
}

/// Triplet features and the bispectrum for one set of hyper-parameters (validated once, at
/// construction; `center_atom_weight` is 0).
#[pyclass(frozen)]
pub struct TripletCalculator {
    triplets: TripletFeatures,
    bispectrum: Bispectrum,
}

#[pymethods]
impl TripletCalculator {
    #[new]
    #[pyo3(signature = (cutoff, max_radial, max_angular, smearing, cutoff_function, width, radial_accuracy, species))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        cutoff: f64,
        max_radial: usize,
        max_angular: usize,
        smearing: f64,
        cutoff_function: &str,
        width: f64,
        radial_accuracy: Option<f64>,
        species: Vec<i32>,
    ) -> PyResult<TripletCalculator> {
        // with the GIL released and interruptible (the construction is checked and cheap)
        threads::run(py, || {
            let params = parameters(
                cutoff,
                max_radial,
                max_angular,
                smearing,
                cutoff_function,
                width,
                0.0,
                radial_accuracy,
                Some(species),
            )?;
            Ok(TripletCalculator {
                triplets: TripletFeatures::new(params.clone())?,
                bispectrum: Bispectrum::new(params)?,
            })
        })
    }

    /// Number of features per triplet (and of the bispectrum).
    #[getter]
    fn n_features(&self) -> usize {
        self.triplets.n_features()
    }

    /// Triplet rows of every ordered neighbour pair of every centre (all atoms, or the same
    /// indices `centres` in each frame), projected when `proj = (mean, components)` is given:
    /// the descriptor dict plus `neighbours` (n, 2) = (j1, j2).
    #[pyo3(signature = (frames, centres_list=None, proj=None))]
    fn compute<'py>(
        &self,
        py: Python<'py>,
        frames: Vec<SystemArrays<'py>>,
        centres_list: Option<Vec<usize>>,
        proj: Option<ProjectionArrays<'py>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let systems = errors::guarded(|| systems(&frames))?;
        let proj = projection(proj);
        let c = centres(centres_list);
        let out = threads::run(py, || self.triplets.compute(&systems, &c, proj.as_ref()))?;
        let n = out.neighbours.len();
        let flat: Vec<i32> = out.neighbours.iter().flatten().copied().collect();
        let pairs = errors::guarded(|| {
            Array2::from_shape_vec((n, 2), flat)
                .map_err(|e| Error::shape("neighbours", format!("({n}, 2)"), e.to_string()))
        })?;
        let dict = to_dict(py, out.descriptor)?;
        dict.set_item("neighbours", pairs.into_pyarray(py))?;
        Ok(dict)
    }

    /// Σ_{j1, j2} of the (optionally projected) triplet rows of every centre, streamed.
    #[pyo3(signature = (frames, centres_list=None, proj=None))]
    fn summed<'py>(
        &self,
        py: Python<'py>,
        frames: Vec<SystemArrays<'py>>,
        centres_list: Option<Vec<usize>>,
        proj: Option<ProjectionArrays<'py>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let systems = errors::guarded(|| systems(&frames))?;
        let proj = projection(proj);
        let c = centres(centres_list);
        let out = threads::run(py, || self.triplets.summed(&systems, &c, proj.as_ref()))?;
        to_dict(py, out)
    }

    /// The bispectrum of every centre.
    #[pyo3(signature = (frames, centres_list=None))]
    fn bispectrum<'py>(
        &self,
        py: Python<'py>,
        frames: Vec<SystemArrays<'py>>,
        centres_list: Option<Vec<usize>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let systems = errors::guarded(|| systems(&frames))?;
        let c = centres(centres_list);
        let out = threads::run(py, || self.bispectrum.compute(&systems, &c))?;
        to_dict(py, out)
    }

    /// Pair expansions g_ij of one centre: (neighbour indices (M,), coefficients
    /// (M, n_radial, (l_max+1)²)).
    fn pair_expansion<'py>(
        &self,
        py: Python<'py>,
        frame: SystemArrays<'py>,
        centre: usize,
    ) -> PyResult<PairArrays<'py>> {
        let expansion = self.triplets.expansion();
        let (nr, lm) = (expansion.n_radial(), expansion.n_lm());
        let pairs = errors::guarded(|| expansion.center_pairs(&frame.to_system()?, centre))?;
        let js: Vec<i64> = pairs.iter().map(|p| p.j as i64).collect();
        let flat: Vec<f64> = pairs.iter().flat_map(|p| p.coefficients.clone()).collect();
        let arr = Array3::from_shape_vec((pairs.len(), nr, lm), flat)
            .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
        Ok((Array1::from(js).into_pyarray(py), arr.into_pyarray(py)))
    }
}

/// Real Clebsch–Gordan product |a ⊗ b; λ⟩ of two expansions (n, (l_max+1)²):
/// returns (n, n, 2λ+1) indexed [n1, n2, μ].
#[pyfunction]
fn clebsch_gordan_product<'py>(
    py: Python<'py>,
    a: PyReadonlyArray2<'py, f64>,
    b: PyReadonlyArray2<'py, f64>,
    l1: usize,
    l2: usize,
    lam: usize,
) -> PyResult<Bound<'py, PyArray3<f64>>> {
    let (av, bv) = (a.as_array(), b.as_array());
    let n = av.nrows();
    let lm = av.ncols();
    let root = (lm as f64).sqrt().round() as usize;
    if bv.shape() != av.shape() || root == 0 || root * root != lm {
        return Err(errors::to_py(Error::shape(
            "a, b",
            "two arrays of the same shape (n, (l_max + 1)²)",
            format!("{:?} and {:?}", av.shape(), bv.shape()),
        )));
    }
    let a: Vec<f64> = av.iter().copied().collect();
    let b: Vec<f64> = bv.iter().copied().collect();
    let out = threads::run(py, || pair_product(&a, &b, n, root - 1, l1, l2, lam))?;
    let arr = Array3::from_shape_vec((n, n, 2 * lam + 1), out)
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
    Ok(arr.into_pyarray(py))
}

/// Adds this engine's functions and classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<TripletCalculator>()?;
    m.add_function(wrap_pyfunction!(clebsch_gordan_product, m)?)?;
    Ok(())
}
