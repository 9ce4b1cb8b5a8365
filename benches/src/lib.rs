//! Criterion benchmarks for tgtkit, in `benches/`: every codec and the
//! engine's hot path. Run them with `cargo bench -p tgtkit-benches`.
