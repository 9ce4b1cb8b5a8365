#!/usr/bin/env bash
# Instructions per command on the engine's hot path, from callgrind: runs
# benches/examples/engine_loop with two loop counts and divides the
# difference, so set-up costs cancel. Deterministic, unlike timings.
#
#   benches/profile.sh            # read, write and the memcpy baseline
#   KEEP=1 benches/profile.sh     # also keep /tmp/cg.<mode>.out for callgrind_annotate
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CARGO_TARGET_DIR:=target}"
cargo build -q --release -p tgtkit-benches --example engine_loop
bin="$CARGO_TARGET_DIR/release/examples/engine_loop"
count() {
    valgrind --tool=callgrind --callgrind-out-file="$3" "$bin" "$1" "$2" 2>&1 \
        | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
for mode in memcpy read write; do
    a=$(count 10000 "$mode" /tmp/cg.$mode.a.out)
    b=$(count 20000 "$mode" /tmp/cg.$mode.out)
    echo "$mode: $(( (b - a) / 10000 )) instructions per command"
    rm -f /tmp/cg.$mode.a.out
    [ -n "${KEEP:-}" ] || rm -f /tmp/cg.$mode.out
done
