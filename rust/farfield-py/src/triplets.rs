//! Bindings of the triplets engine: triplet features, their streamed sums, the bispectrum, and
//! the pair expansions / Clebsch–Gordan products they are made of.
use crate::convert::SystemArrays;
use crate::{errors, threads};
use farfield::descriptors::bispectrum::Bispectrum;
use farfield::descriptors::triplets::{
    CentreOutput, Centres, Coupling, ExpansionSettings, LocalExpansion, Projection, TripletFeatures,
};
use farfield::neighbors::CellList;
use farfield::{Error, System};
use numpy::ndarray::{Array1, Array2, Array3};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArray3, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

type Arrays2<'py> = (Bound<'py, PyArray2<i64>>, Bound<'py, PyArray2<f64>>);
type PairArrays<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray3<f64>>);
type CentreArrays<'py> = (
    Bound<'py, PyArray2<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray2<f64>>,
);

fn settings(
    cutoff: f64,
    cutoff_width: f64,
    max_radial: usize,
    max_angular: usize,
    smearing: f64,
    species: Vec<i32>,
) -> ExpansionSettings {
    ExpansionSettings {
        cutoff,
        cutoff_width,
        max_radial,
        max_angular,
        smearing,
        species,
    }
}

fn systems(frames: &[SystemArrays<'_>]) -> farfield::Result<Vec<System>> {
    frames.iter().map(|f| f.to_system()).collect()
}

fn centres(list: Option<Vec<usize>>) -> Centres {
    match list {
        None => Centres::All,
        Some(l) => Centres::Indices(l),
    }
}

fn matrix<T>(rows: usize, cols: usize, values: Vec<T>) -> farfield::Result<Array2<T>> {
    Array2::from_shape_vec((rows, cols), values)
        .map_err(|e| Error::shape("output", format!("({rows}, {cols})"), e.to_string()))
}

fn samples<const K: usize>(rows: &[[usize; K]]) -> farfield::Result<Array2<i64>> {
    let flat: Vec<i64> = rows.iter().flatten().map(|&v| v as i64).collect();
    matrix(rows.len(), K, flat)
}

fn centre_arrays<'py>(py: Python<'py>, out: CentreOutput) -> PyResult<CentreArrays<'py>> {
    let n = out.samples.len();
    let s = errors::guarded(|| samples(&out.samples))?;
    let v = errors::guarded(|| matrix(n, out.n_features, out.values))?;
    let m: Vec<i64> = out.n_neighbours.iter().map(|&m| m as i64).collect();
    Ok((
        s.into_pyarray(py),
        Array1::from(m).into_pyarray(py),
        v.into_pyarray(py),
    ))
}

fn projection(
    proj: Option<(PyReadonlyArray1<'_, f64>, PyReadonlyArray2<'_, f64>)>,
) -> Option<Projection> {
    proj.map(|(mean, comps)| {
        let c = comps.as_array();
        Projection {
            mean: mean.as_array().iter().copied().collect(),
            components: c.iter().copied().collect(),
            n_components: c.ncols(),
        }
    })
}

/// Triplet features of every ordered neighbour pair of every centre:
/// returns (samples (n, 4) = (structure, centre, j1, j2), values (n, F)).
#[pyfunction]
#[pyo3(signature = (frames, cutoff, cutoff_width, max_radial, max_angular, smearing, species, centres_list=None, proj=None))]
#[allow(clippy::too_many_arguments)]
fn triplet_features<'py>(
    py: Python<'py>,
    frames: Vec<SystemArrays<'py>>,
    cutoff: f64,
    cutoff_width: f64,
    max_radial: usize,
    max_angular: usize,
    smearing: f64,
    species: Vec<i32>,
    centres_list: Option<Vec<usize>>,
    proj: Option<(PyReadonlyArray1<'py, f64>, PyReadonlyArray2<'py, f64>)>,
) -> PyResult<Arrays2<'py>> {
    let systems = errors::guarded(|| systems(&frames))?;
    let s = settings(
        cutoff,
        cutoff_width,
        max_radial,
        max_angular,
        smearing,
        species,
    );
    let proj = projection(proj);
    let c = centres(centres_list);
    let out = py.detach(|| {
        threads::install(|| {
            errors::guarded(|| TripletFeatures::new(s)?.compute(&systems, &c, proj.as_ref()))
        })
    })?;
    let n = out.samples.len();
    let smp = errors::guarded(|| samples(&out.samples))?;
    let v = errors::guarded(|| matrix(n, out.n_features, out.values))?;
    Ok((smp.into_pyarray(py), v.into_pyarray(py)))
}

/// Σ_{j1, j2} of the (optionally projected) triplet features of every centre, streamed:
/// returns (samples (n, 2), n_neighbours (n,), values (n, F)).
#[pyfunction]
#[pyo3(signature = (frames, cutoff, cutoff_width, max_radial, max_angular, smearing, species, centres_list=None, proj=None))]
#[allow(clippy::too_many_arguments)]
fn triplet_summed<'py>(
    py: Python<'py>,
    frames: Vec<SystemArrays<'py>>,
    cutoff: f64,
    cutoff_width: f64,
    max_radial: usize,
    max_angular: usize,
    smearing: f64,
    species: Vec<i32>,
    centres_list: Option<Vec<usize>>,
    proj: Option<(PyReadonlyArray1<'py, f64>, PyReadonlyArray2<'py, f64>)>,
) -> PyResult<CentreArrays<'py>> {
    let systems = errors::guarded(|| systems(&frames))?;
    let s = settings(
        cutoff,
        cutoff_width,
        max_radial,
        max_angular,
        smearing,
        species,
    );
    let proj = projection(proj);
    let c = centres(centres_list);
    let out = py.detach(|| {
        threads::install(|| {
            errors::guarded(|| TripletFeatures::new(s)?.summed(&systems, &c, proj.as_ref()))
        })
    })?;
    centre_arrays(py, out)
}

/// Bispectrum of every centre: returns (samples (n, 2), n_neighbours (n,), values (n, F)).
#[pyfunction]
#[pyo3(signature = (frames, cutoff, cutoff_width, max_radial, max_angular, smearing, species, centres_list=None))]
#[allow(clippy::too_many_arguments)]
fn bispectrum<'py>(
    py: Python<'py>,
    frames: Vec<SystemArrays<'py>>,
    cutoff: f64,
    cutoff_width: f64,
    max_radial: usize,
    max_angular: usize,
    smearing: f64,
    species: Vec<i32>,
    centres_list: Option<Vec<usize>>,
) -> PyResult<CentreArrays<'py>> {
    let systems = errors::guarded(|| systems(&frames))?;
    let s = settings(
        cutoff,
        cutoff_width,
        max_radial,
        max_angular,
        smearing,
        species,
    );
    let c = centres(centres_list);
    let out = py.detach(|| {
        threads::install(|| errors::guarded(|| Bispectrum::new(s)?.compute(&systems, &c)))
    })?;
    centre_arrays(py, out)
}

/// Column labels (F, 9): (a1, a2, a3, l1, l2, l3, n1, n2, n3).
#[pyfunction]
fn triplet_feature_labels<'py>(
    py: Python<'py>,
    max_radial: usize,
    max_angular: usize,
    species: Vec<i32>,
) -> PyResult<Bound<'py, PyArray2<i32>>> {
    let s = settings(1.0, 0.0, max_radial, max_angular, 0.5, species);
    let labels = errors::guarded(|| Ok(TripletFeatures::new(s)?.feature_labels()))?;
    let flat: Vec<i32> = labels.iter().flatten().copied().collect();
    let m = errors::guarded(|| matrix(labels.len(), 9, flat))?;
    Ok(m.into_pyarray(py))
}

/// Pair expansions g_ij of one centre: (neighbour indices (M,), coefficients (M, n, (l+1)²)).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn pair_expansion<'py>(
    py: Python<'py>,
    frame: SystemArrays<'py>,
    centre: usize,
    cutoff: f64,
    cutoff_width: f64,
    max_radial: usize,
    max_angular: usize,
    smearing: f64,
    species: Vec<i32>,
) -> PyResult<PairArrays<'py>> {
    let s = settings(
        cutoff,
        cutoff_width,
        max_radial,
        max_angular,
        smearing,
        species,
    );
    let lm = s.lm_size();
    let pairs = errors::guarded(|| {
        let system = frame.to_system()?;
        let expansion = LocalExpansion::new(s.clone())?;
        if centre >= system.len() {
            return Err(Error::parameter(
                "centre",
                format!("{centre} is not an atom of a {}-atom system", system.len()),
            ));
        }
        let cells = CellList::new(&system, s.cutoff)?;
        expansion.pairs(&system, &cells, centre)
    })?;
    let js: Vec<i64> = pairs.iter().map(|p| p.j as i64).collect();
    let flat: Vec<f64> = pairs.iter().flat_map(|p| p.coefficients.clone()).collect();
    let arr = Array3::from_shape_vec((pairs.len(), max_radial, lm), flat)
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
    Ok((Array1::from(js).into_pyarray(py), arr.into_pyarray(py)))
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
    lambda: usize,
) -> PyResult<Bound<'py, PyArray3<f64>>> {
    let (av, bv) = (a.as_array(), b.as_array());
    let n = av.nrows();
    let lm = av.ncols();
    let l_max = (lm as f64).sqrt().round() as usize - 1;
    let out = errors::guarded(|| {
        if bv.shape() != av.shape() || (l_max + 1) * (l_max + 1) != lm {
            return Err(Error::shape(
                "a, b",
                "two arrays of the same shape (n, (l_max + 1)²)",
                format!("{:?} and {:?}", av.shape(), bv.shape()),
            ));
        }
        if l1 > l_max
            || l2 > l_max
            || lambda > l_max
            || lambda < l1.abs_diff(l2)
            || lambda > l1 + l2
        {
            return Err(Error::parameter(
                "lambda",
                format!("(l1, l2, λ) = ({l1}, {l2}, {lambda}) breaks the triangle rule or l_max = {l_max}"),
            ));
        }
        let a: Vec<f64> = av.iter().copied().collect();
        let b: Vec<f64> = bv.iter().copied().collect();
        Ok(Coupling::new(l_max).pair_product(&a, &b, n, l1, l2, lambda))
    })?;
    let arr = Array3::from_shape_vec((n, n, 2 * lambda + 1), out)
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
    Ok(arr.into_pyarray(py))
}

/// Adds this engine's functions and classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(triplet_features, m)?)?;
    m.add_function(wrap_pyfunction!(triplet_summed, m)?)?;
    m.add_function(wrap_pyfunction!(bispectrum, m)?)?;
    m.add_function(wrap_pyfunction!(triplet_feature_labels, m)?)?;
    m.add_function(wrap_pyfunction!(pair_expansion, m)?)?;
    m.add_function(wrap_pyfunction!(clebsch_gordan_product, m)?)?;
    Ok(())
}
