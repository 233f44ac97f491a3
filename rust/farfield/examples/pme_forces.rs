//! PME forces of a random neutral box of ±1 charges: against central finite differences of the
//! PME energy (same parameters) and against a 1e-10 Ewald reference, whose relative RMS
//! difference must stay below the requested accuracy.
//!
//! `cargo run --release --example pme_forces`
use farfield::ewald::Ewald;
use farfield::longrange::{LongRangeSum, Request};
use farfield::pme::Pme;
use farfield::tuning::{pme::tune_pme, tune_ewald};
use farfield::{Kernel, System};

fn main() -> farfield::Result<()> {
    // 64 atoms on a jittered 4×4×4 grid (2.5 Å spacing), alternating ±1 charges
    let mut seed = 12345u64;
    let mut uniform = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut positions = Vec::new();
    for i in 0..64 {
        let grid = [i % 4, (i / 4) % 4, i / 16].map(|k| 2.5 * k as f64 + 0.6);
        positions.push(grid.map(|x| x + 0.8 * (uniform() - 0.5)));
    }
    let charges: Vec<f64> = (0..64)
        .map(|i| {
            if (i + i / 4 + i / 16) % 2 == 0 {
                1.0
            } else {
                -1.0
            }
        })
        .collect();
    let cell = [[10.0, 0.0, 0.0], [0.3, 10.0, 0.0], [0.0, -0.2, 10.0]];
    let system = System::new(positions.clone(), vec![1; 64], Some(cell))?;

    let accuracy = 1e-5;
    let choice = tune_pme(Kernel::coulomb(), &system, accuracy, None, None, None)?;
    let pme = Pme::new(Kernel::coulomb(), choice.parameters)?;
    let with_forces = Request::default().with_forces(true);
    let out = pme.compute(&system, &charges, with_forces)?;
    let forces = out.forces.expect("forces were requested");
    println!(
        "PME: {:?}, energy {:.10}",
        choice.parameters.mesh, out.energy
    );

    // finite differences of the PME energy itself (fixed mesh, order, smearing and cutoff)
    let h = 1e-5;
    let mut worst: f64 = 0.0;
    for atom in [0, 17, 42] {
        for axis in 0..3 {
            let energy_at = |shift: f64| -> farfield::Result<f64> {
                let mut moved = positions.clone();
                moved[atom][axis] += shift;
                let moved = System::new(moved, vec![1; 64], Some(cell))?;
                Ok(pme.compute(&moved, &charges, Request::default())?.energy)
            };
            let fd = -(energy_at(h)? - energy_at(-h)?) / (2.0 * h);
            worst = worst.max((fd - forces[atom][axis]).abs());
        }
    }
    println!("max |F - finite difference| over 9 components: {worst:.2e}");
    assert!(worst < 1e-6);

    // the accuracy contract: relative RMS force error against a 1e-10 Ewald sum
    let reference = tune_ewald(Kernel::coulomb(), &system, 1e-10, Default::default())?;
    let exact = Ewald::new(Kernel::coulomb(), reference)?
        .compute(&system, &charges, with_forces)?
        .forces
        .expect("forces were requested");
    let rms = |f: &dyn Fn(usize) -> f64| ((0..64).map(f).sum::<f64>() / 64.0).sqrt();
    let error = rms(&|i| (0..3).map(|a| (forces[i][a] - exact[i][a]).powi(2)).sum());
    let d = (system.cell().expect("periodic").volume() / 64.0).cbrt();
    let relative = error / (1.0 / (d * d)); // F_0 = (Σq²/N) / d²
    println!("relative RMS force error vs Ewald: {relative:.2e} (requested {accuracy:.0e})");
    assert!(relative < accuracy);
    Ok(())
}

#[test]
fn pme_forces_match_finite_differences_and_ewald() {
    main().unwrap();
}
