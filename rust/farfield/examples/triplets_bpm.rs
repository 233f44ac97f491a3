//! Triplet features of the B8± pair of Nigam et al. (arXiv 2302.14770): two eight-atom boron
//! clusters that are not congruent but have the same power spectrum and bispectrum around the
//! central atom. Neither can tell them apart; the triplet features (one row per ordered
//! neighbour pair) can: their column-wise sorted rows differ.
//!
//! `cargo run --release --example triplets_bpm`
use farfield::descriptors::bispectrum::Bispectrum;
use farfield::descriptors::triplets::{Centers, TripletFeatures};
use farfield::descriptors::{ExpansionParameters, GradientRequest, PowerSpectrum, Smoothing};
use farfield::System;

/// B8±: the centre, two rings of three atoms at ±z1 (the second turned by ψ) and one axial
/// atom at +z2 (B+) or −z2 (B−); parameters of the first pair of the paper's data set.
fn b8(sign: f64) -> farfield::Result<System> {
    let (r, z1, z2, psi) = (
        1.3945490156290707,
        0.5779363176538004,
        1.7685268584161764,
        2.2879156819735713,
    );
    let phi: [f64; 3] = [0.0, 2.6660340954713644, 4.499_212_975_622_301];
    let mut positions = vec![[0.0; 3]];
    positions.extend(phi.map(|p| [r * p.cos(), r * p.sin(), z1]));
    positions.extend(phi.map(|p| [r * (p + psi).cos(), r * (p + psi).sin(), -z1]));
    positions.push([0.0, 0.0, sign * z2]);
    System::new(positions, vec![5; 8], None)
}

/// Largest difference relative to the largest entry.
fn relative(a: &[f64], b: &[f64]) -> f64 {
    let scale = a.iter().chain(b).fold(0.0f64, |m, x| m.max(x.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// The rows of one structure, each column sorted: a label-free summary of the row multiset.
fn sorted_columns(values: &[f64], rows: usize, n_features: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows * n_features);
    for f in 0..n_features {
        let mut column: Vec<f64> = (0..rows).map(|r| values[r * n_features + f]).collect();
        column.sort_by(f64::total_cmp);
        out.extend(column);
    }
    out
}

fn main() -> farfield::Result<()> {
    // the B8 study's settings: cutoff 2 Å (switch width 0.1), 6 GTOs, l_max 3, σ 0.2
    let mut params = ExpansionParameters::new(2.0, 5, 3, 0.2);
    params.smoothing = Smoothing::ShiftedCosine { width: 0.1 };
    params.radial_accuracy = None;
    params.center_atom_weight = 0.0; // the neighbour densities only
    params.species = Some(vec![5]);
    let systems = [b8(1.0)?, b8(-1.0)?];
    let center = Centers::Indices(vec![0]);

    // the power spectrum of every atom; the rows of the central atoms (atom 0 of each cluster)
    let power =
        PowerSpectrum::new(params.clone())?.compute(&systems, GradientRequest::default())?;
    let n = power.n_features();
    let row = |s: i32| {
        let k = power.samples.iter().position(|x| x[0] == s && x[1] == 0);
        &power.values[k.expect("a sample per centre") * n..][..n]
    };
    let p = relative(row(0), row(1));
    println!("power spectrum ({n} features): B+ and B- differ by {p:.1e} (relative)");
    assert!(p < 1e-12);

    let bispectrum = Bispectrum::new(params.clone())?.compute(&systems, &center)?;
    let n = bispectrum.n_features();
    let (plus, minus) = bispectrum.values.split_at(n);
    let b = relative(plus, minus);
    println!("bispectrum ({n} features): B+ and B- differ by {b:.1e} (relative)");
    assert!(b < 1e-12);

    let triplets = TripletFeatures::new(params)?.compute(&systems, &center, None)?;
    let n = triplets.descriptor.n_features();
    let rows = triplets.descriptor.values.len() / n / 2; // the same number of rows for ±
    let (plus, minus) = triplets.descriptor.values.split_at(rows * n);
    let t = relative(
        &sorted_columns(plus, rows, n),
        &sorted_columns(minus, rows, n),
    );
    println!("triplets ({rows} rows of {n} features each): sorted rows differ by {t:.1e}");
    assert!(t > 1e-4);
    Ok(())
}

#[test]
fn triplets_tell_the_b8_pair_apart() {
    main().unwrap();
}
