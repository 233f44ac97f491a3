//! Criterion benchmarks of the kernel range split.
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use farfield::Kernel;

fn short_range(c: &mut Criterion) {
    for p in [1.0, 6.0, 2.5] {
        let split = Kernel::new(p).unwrap().split(0.8).unwrap();
        c.bench_function(&format!("short_range p={p}"), |b| {
            b.iter(|| {
                let mut s = 0.0;
                for i in 1..1000 {
                    s += split.short_range(black_box(i as f64 * 0.005)).0;
                }
                s
            })
        });
    }
}

criterion_group!(benches, short_range);
criterion_main!(benches);
