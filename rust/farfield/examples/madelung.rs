//! Madelung constants of rock salt, caesium chloride and zinc blende by Ewald sums, against
//! the converged literature values (per nearest-neighbour distance).
//!
//! `cargo run --release --example madelung`
use farfield::ewald::Ewald;
use farfield::longrange::{LongRangeSum, Request};
use farfield::tuning::tune_ewald;
use farfield::{Kernel, System};

/// Madelung constant M of a binary ±1 crystal: E per ion pair = −M / d.
fn madelung(cell: [[f64; 3]; 3], anion: [f64; 3], d: f64) -> farfield::Result<f64> {
    let system = System::new(vec![[0.0; 3], anion], vec![11, 17], Some(cell))?;
    let parameters = tune_ewald(Kernel::coulomb(), &system, 1e-12, Default::default())?;
    let out = Ewald::new(Kernel::coulomb(), parameters)?.compute(
        &system,
        &[1.0, -1.0],
        Request::default(),
    )?;
    Ok(-out.energy * d)
}

fn main() -> farfield::Result<()> {
    // (name, cell rows, anion position, nearest-neighbour distance, literature value)
    let crystals = [
        // fcc primitive cell, anion at (a/2, 0, 0): d = a/2 with a = 2
        (
            "NaCl",
            [[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]],
            [1.0, 0.0, 0.0],
            1.0,
            1.747_564_594_633,
        ),
        // simple cubic a = 1, anion at the body centre: d = √3/2
        (
            "CsCl",
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            [0.5, 0.5, 0.5],
            3f64.sqrt() / 2.0,
            1.762_674_773_070,
        ),
        // fcc primitive cell of a = 2, anion at (a/4)(1, 1, 1): d = √3/2
        (
            "ZnS",
            [[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]],
            [0.5, 0.5, 0.5],
            3f64.sqrt() / 2.0,
            1.638_055_053_388,
        ),
    ];
    println!("crystal   Ewald            literature       difference");
    for (name, cell, anion, d, reference) in crystals {
        let m = madelung(cell, anion, d)?;
        println!(
            "{name:8}  {m:.12}   {reference:.12}   {:.1e}",
            m - reference
        );
        assert!((m - reference).abs() < 1e-10, "{name}: {m} vs {reference}");
    }
    Ok(())
}

#[test]
fn madelung_constants_match_the_literature() {
    main().unwrap();
}
