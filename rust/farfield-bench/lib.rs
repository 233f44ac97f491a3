//! Criterion benchmarks of the `farfield` crate: `cargo bench -p farfield-bench`
//! (see `benches/`). This library is empty.
