//! Rough timing of the SOAP power spectrum (development aid).
use farfield::descriptors::{
    ExpansionParameters, GradientRequest, PowerSpectrum, SphericalExpansion,
};
use farfield::System;

fn main() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let l = (n as f64 / 0.05).powf(1.0 / 3.0);
    let mut seed = 12345u64;
    let mut rnd = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let positions: Vec<[f64; 3]> = (0..n).map(|_| [rnd() * l, rnd() * l, rnd() * l]).collect();
    let numbers: Vec<i32> = (0..n).map(|i| [1, 6, 8][i % 3]).collect();
    let system = System::new(
        positions,
        numbers,
        Some([[l, 0.0, 0.0], [0.0, l, 0.0], [0.0, 0.0, l]]),
    )
    .unwrap();
    let params = ExpansionParameters::new(5.0, 5, 4, 0.3);
    let se = SphericalExpansion::new(params.clone()).unwrap();
    let ps = PowerSpectrum::new(params).unwrap();
    for grads in [
        GradientRequest::default(),
        GradientRequest {
            positions: true,
            strain: false,
            cell: false,
        },
    ] {
        let t = std::time::Instant::now();
        let r = se.compute(std::slice::from_ref(&system), grads).unwrap();
        println!("expansion {:?} {:?} {}", grads, t.elapsed(), r.values.len());
        let t = std::time::Instant::now();
        let r = ps.compute(std::slice::from_ref(&system), grads).unwrap();
        println!(
            "power spectrum {:?} {:?} {}",
            grads,
            t.elapsed(),
            r.values.len()
        );
    }
}
