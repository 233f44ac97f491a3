//! Charge equilibration of a charged (+1) Na14Cl13 cluster with Gaussian charges, checked
//! against the conditions that define it, evaluated here from the Coulomb matrix of Gaussian
//! charges written out in full: Σq = +1, every ∂E/∂q_i equal to the chemical potential, and
//! the energy E = χᵀq + ½ qᵀAq.
//!
//! `cargo run --release --example qeq_cluster`
use farfield::qeq::{qeq, QEqOptions, QEqProblem};
use farfield::System;
use std::f64::consts::{PI, SQRT_2};

fn main() -> farfield::Result<()> {
    // a 3×3×3 piece of rock salt (d = 2.82 Å), slightly distorted; Na where i+j+k is even
    let (mut r, mut na) = (Vec::new(), Vec::new());
    for i in 0..27usize {
        let ijk = [i % 3, (i / 3) % 3, i / 9];
        let (amplitude, frequency) = ([0.11, 0.09, 0.07], [7.0, 5.0, 3.0]);
        let wobble = |a: usize| amplitude[a] * (frequency[a] * i as f64).sin();
        r.push([0, 1, 2].map(|a| 2.82 * ijk[a] as f64 + wobble(a)));
        na.push(ijk.iter().sum::<usize>() % 2 == 0);
    }
    let pick = |a: f64, b: f64| {
        na.iter()
            .map(|&n| if n { a } else { b })
            .collect::<Vec<_>>()
    };
    // χ (eV), J (eV/e²), σ (Å); k_e in eV Å / e²
    let (chi, hardness, sigma) = (pick(-1.0, 1.5), pick(6.0, 5.0), pick(0.8, 1.0));
    let k_e = 14.399645478425667;
    let mut problem = QEqProblem::new(chi.clone(), hardness.clone(), sigma.clone());
    problem.total_charge = 1.0;
    let mut options = QEqOptions::default();
    options.prefactor = k_e;
    let numbers = pick(11.0, 17.0).iter().map(|&z| z as i32).collect();
    let result = qeq(&System::new(r.clone(), numbers, None)?, &problem, &options)?;
    let (q, mu) = (&result.charges, result.chemical_potential[0]);

    // A = diag(J) + k_e C: C_ii = 1/(σ_i √π), C_ij = erf(r_ij/(√2 γ_ij))/r_ij, γ² = σ_i² + σ_j²
    let coulomb = |i: usize, j: usize| {
        let d = (0..3)
            .map(|a| (r[i][a] - r[j][a]).powi(2))
            .sum::<f64>()
            .sqrt();
        let gamma = (sigma[i].powi(2) + sigma[j].powi(2)).sqrt();
        match i == j {
            true => 1.0 / (sigma[i] * PI.sqrt()),
            false => libm::erf(d / (SQRT_2 * gamma)) / d,
        }
    };
    let aq: Vec<f64> = (0..27)
        .map(|i| hardness[i] * q[i] + k_e * (0..27).map(|j| coulomb(i, j) * q[j]).sum::<f64>())
        .collect();
    let energy: f64 = (0..27).map(|i| q[i] * (chi[i] + 0.5 * aq[i])).sum();
    let spread = (0..27).fold(0.0f64, |m, i| m.max((chi[i] + aq[i] - mu).abs()));
    let total: f64 = q.iter().sum();
    println!(
        "charges: Na {:+.4}, Cl {:+.4}, ... sum {total:.12}",
        q[0], q[1]
    );
    println!("max |dE/dq_i - mu| = {spread:.1e} eV (mu = {mu:.6} eV)");
    println!(
        "energy {:.10} eV, from the charges {energy:.10} eV",
        result.energy
    );
    assert!((total - 1.0).abs() < 1e-10 && spread < 1e-8);
    assert!((energy - result.energy).abs() < 1e-8 * energy.abs());
    Ok(())
}

#[test]
fn qeq_cluster_satisfies_its_conditions() {
    main().unwrap();
}
