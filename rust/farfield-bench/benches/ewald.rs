//! Criterion benchmarks of the Ewald engine (real space, k-space, full sum with tuning).
use criterion::{criterion_group, criterion_main, Criterion};
use farfield::ewald::Ewald;
use farfield::longrange::{LongRangeSum, Request};
use farfield::tuning::tune_ewald;
use farfield::{Kernel, System};

fn random_box(n: usize) -> (System, Vec<f64>) {
    let mut state = 12345u64;
    let mut rand = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64) / ((1u64 << 53) as f64)
    };
    let length = (n as f64 / 0.1).cbrt();
    let positions = (0..n)
        .map(|_| [rand() * length, rand() * length, rand() * length])
        .collect();
    let mut charges: Vec<f64> = (0..n).map(|_| rand() - 0.5).collect();
    let mean = charges.iter().sum::<f64>() / n as f64;
    charges.iter_mut().for_each(|q| *q -= mean);
    let cell = [[length, 0.0, 0.0], [0.0, length, 0.0], [0.0, 0.0, length]];
    (
        System::new(positions, vec![1; n], Some(cell)).unwrap(),
        charges,
    )
}

fn ewald(c: &mut Criterion) {
    let (system, charges) = random_box(1000);
    let kernel = Kernel::coulomb();
    let params = tune_ewald(kernel, &system, 1e-5, Default::default()).unwrap();
    let mut group = c.benchmark_group("ewald N=1000 accuracy 1e-5");
    group.sample_size(10);
    group.bench_function("tune", |b| {
        b.iter(|| tune_ewald(kernel, &system, 1e-5, Default::default()).unwrap())
    });
    let mut real_only = params;
    real_only.k_cutoff = 1e-3;
    let mut kspace_only = params;
    kspace_only.cutoff = 0.5;
    for (name, p) in [
        ("full", params),
        ("real space", real_only),
        ("k-space", kspace_only),
    ] {
        let e = Ewald::new(kernel, p).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| e.compute(&system, &charges, Request::all()).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, ewald);
criterion_main!(benches);
