//! Prints the Madelung constant of NaCl computed with an Ewald sum.
//!
//! `cargo run --release --example madelung`

use farfield::ewald::Ewald;
use farfield::longrange::{LongRangeSum, Request};
use farfield::{Kernel, System};

fn main() -> farfield::Result<()> {
    // fcc primitive cell with nearest-neighbour distance 1: Na at the origin, Cl at (1, 0, 0)
    let cell = [[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]];
    let system = System::new(vec![[0.0; 3], [1.0, 0.0, 0.0]], vec![11, 17], Some(cell))?;
    let parameters =
        farfield::tuning::tune_ewald(Kernel::coulomb(), &system, 1e-12, Default::default())?;
    let ewald = Ewald::new(Kernel::coulomb(), parameters)?;
    let out = ewald.compute(&system, &[1.0, -1.0], Request::default())?;
    println!("NaCl Madelung constant: {:.12}", -out.energy);
    println!("reference:              1.747564594633");
    println!(
        "parameters: smearing {:.4}, cutoff {:.4}, k_cutoff {:.4}",
        parameters.smearing, parameters.cutoff, parameters.k_cutoff
    );
    Ok(())
}
