//! Criterion benchmarks for tgtkit, in `benches/`: every codec and the
//! engine's hot path. Run them with `cargo bench -p tgtkit-benches`.

use std::time::Instant;

/// The median, over `rounds` rounds, of the time one call of `f` takes in
/// nanoseconds (each round times `per_round` calls): the figure the
/// side-by-side ratios are printed from.
#[must_use]
pub fn median_ns(mut f: impl FnMut(), rounds: usize, per_round: u32) -> f64 {
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_round {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(per_round)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}
