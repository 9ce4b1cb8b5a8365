#!/usr/bin/env bash
# Run one fuzz target with libFuzzer on the stable toolchain:
#   scripts/fuzz.sh <target> [seconds]
# cargo-fuzz needs nightly for its sanitizer flags; coverage-guided fuzzing
# itself only needs LLVM's sancov pass, which stable rustc exposes. New
# inputs go to fuzz/artifacts/<target>/ (crashes) and a scratch corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh <target> [seconds]}
secs=${2:-60}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/fuzz}
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
# With an explicit --target, RUSTFLAGS reach only the fuzzed code, not
# build scripts and proc macros (which have no libFuzzer runtime to link).
host=$(rustc -vV | sed -n "s/^host: //p")
cargo build --release -q --target "$host" -p tgtkit-fuzz --features libfuzzer --bin "$target"
scratch=$(mktemp -d)
mkdir -p "fuzz/artifacts/$target"
"$CARGO_TARGET_DIR/$host/release/$target" -max_total_time="$secs" -max_len=4096 \
    -artifact_prefix="fuzz/artifacts/$target/" "$scratch" "fuzz/corpus/$target"
echo "new inputs: $(ls "$scratch" | wc -l) in $scratch"
