//! LODE (p = 1) features of a water molecule (open: the exact real-space projection) and of
//! rock salt (periodic: the k-space sum), checked by invariances: Σ_m c_lmn² of the molecule
//! does not change under a rotation, and the four Na sites of the conventional cell (images of
//! one another under lattice translations) have identical coefficients, also after the whole
//! crystal is translated.
//!
//! `cargo run --release --example lode_features`
use farfield::lode::{GradientRequest, LodeExpansion, LodeParameters};
use farfield::System;

const LMAX: usize = 3;
const NR: usize = 4; // max_radial + 1

/// Σ_m c_lmn² for every (atom, species, l, n): the rotation invariants of the expansion.
fn invariants(values: &[f64]) -> Vec<f64> {
    let mut out = Vec::new();
    for block in values.chunks((LMAX + 1) * (LMAX + 1) * NR) {
        for l in 0..=LMAX {
            for n in 0..NR {
                out.push(
                    (0..2 * l + 1)
                        .map(|m| block[(l * l + m) * NR + n].powi(2))
                        .sum(),
                );
            }
        }
    }
    out
}

/// Largest difference of two coefficient sets relative to the largest of the first.
fn relative(a: &[f64], b: &[f64]) -> f64 {
    let scale = a.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

fn main() -> farfield::Result<()> {
    // Coulomb (p = 1) LODE, σ = 1, GTO basis of radius 3 (the defaults of the other options)
    let lode = LodeExpansion::new(LodeParameters::new(1.0, 1.0, LMAX, NR - 1, 3.0))?;
    let values = |r: Vec<[f64; 3]>, z: &[i32], cell: Option<[[f64; 3]; 3]>, species: &[i32]| {
        let system = System::new(r, z.to_vec(), cell)?;
        Ok::<_, farfield::Error>(
            lode.compute(&system, species, GradientRequest::default())?
                .values,
        )
    };
    // water, and the same molecule turned by a rotation matrix with rational entries
    let water = vec![[0.0, 0.0, 0.0], [0.757, 0.586, 0.0], [-0.757, 0.586, 0.0]];
    let rotation =
        [[2.0, -1.0, 2.0], [2.0, 2.0, -1.0], [-1.0, 2.0, 2.0]].map(|row| row.map(|x| x / 3.0));
    let turn = |p: &[f64; 3]| rotation.map(|row| (0..3).map(|k| row[k] * p[k]).sum());
    let first = values(water.clone(), &[8, 1, 1], None, &[1, 8])?;
    let second = values(water.iter().map(turn).collect(), &[8, 1, 1], None, &[1, 8])?;
    let turned = relative(&invariants(&first), &invariants(&second));
    println!(
        "water: {} coefficients; a rotation changes Σ_m c² by {turned:.1e}",
        first.len()
    );

    // rock salt, conventional cell: Na on the fcc sites, Cl shifted by a/2 along x
    let a = 5.64;
    let fcc = [
        [0.0, 0.0, 0.0],
        [0.0, 0.5, 0.5],
        [0.5, 0.0, 0.5],
        [0.5, 0.5, 0.0],
    ];
    let crystal = |t: [f64; 3]| -> Vec<[f64; 3]> {
        let site =
            |f: &[f64; 3], dx: f64| [a * (f[0] + dx) + t[0], a * f[1] + t[1], a * f[2] + t[2]];
        fcc.iter()
            .map(|f| site(f, 0.0))
            .chain(fcc.iter().map(|f| site(f, 0.5)))
            .collect()
    };
    let (cell, z) = (
        Some([[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, a]]),
        [11, 11, 11, 11, 17, 17, 17, 17],
    );
    let c = values(crystal([0.0; 3]), &z, cell, &[11, 17])?;
    let moved = values(crystal([0.31, -0.7, 1.3]), &z, cell, &[11, 17])?;
    let per_atom = 2 * (LMAX + 1) * (LMAX + 1) * NR;
    let sites = (1..4).map(|i| relative(&c[..per_atom], &c[i * per_atom..(i + 1) * per_atom]));
    let sites = sites.fold(0.0f64, f64::max);
    let translation = relative(&c, &moved);
    println!(
        "NaCl: the Na sites differ by {sites:.1e}, a translation changes c by {translation:.1e}"
    );
    assert!(turned < 1e-10 && sites < 1e-10 && translation < 1e-10);
    Ok(())
}

#[test]
fn lode_features_are_invariant() {
    main().unwrap();
}
