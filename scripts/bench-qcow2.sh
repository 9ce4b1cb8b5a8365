#!/usr/bin/env bash
# Compare tgtkit's qcow2 backstore with QEMU's own qcow2 driver
# (`qemu-img bench`) on the same image: 4 KiB requests at a scattered
# stride (qemu-img bench's -S; a prime number of blocks, so every block of
# the image is visited once per pass), read and write, queue depth 1 and
# 32, cache modes none (O_DIRECT) and writeback. Each figure is the median
# of REPS alternating runs (the machine is shared and noisy).
#
# Usage: scripts/bench-qcow2.sh [COUNT] [REPS]      (needs qemu-utils)
# Env:   BENCH_DIR (default: a temp dir), IMAGE_MB (default 256),
#        THREADS (our pool, default 16)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
count=${1:-20000}
reps=${2:-3}
image_mb=${IMAGE_MB:-256}
threads=${THREADS:-16}
dir=${BENCH_DIR:-$(mktemp -d)}
[ -n "${BENCH_DIR:-}" ] || trap 'rm -rf "$dir"' EXIT
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}

command -v qemu-img >/dev/null || { echo "qemu-img missing (apt-get install qemu-utils)" >&2; exit 1; }
cargo build -q --release -p tgtkit-backstores --features qcow2 --example qcow2-bench
ours="$CARGO_TARGET_DIR/release/examples/qcow2-bench"

img="$dir/bench.qcow2"
qemu-img create -q -f qcow2 -o cluster_size=65536 "$img" "${image_mb}M"
# Allocate and fill every cluster, so reads hit data and writes overwrite.
qemu-io -f qcow2 -c "write -P 0x5a 0 ${image_mb}M" "$img" >/dev/null
step=$((4096 * 7919))

secs() { sed -n 's/^Run completed in \([0-9.]*\) seconds\./\1/p'; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '%-10s %-5s %-4s %12s %12s %7s\n' cache op qd "qemu-img" tgtkit ratio
for cache in none writeback; do
  for op in read write; do
    w=""; [ "$op" = write ] && w="-w"
    for qd in 1 32; do
      q=(); o=()
      for _ in $(seq "$reps"); do
        t=$(qemu-img bench -f qcow2 $w -c "$count" -d "$qd" -s 4096 -S "$step" -t "$cache" "$img" | secs)
        q+=("$(awk -v c="$count" -v t="$t" 'BEGIN {printf "%.0f", c / t}')")
        t=$("$ours" "$img" $w -c "$count" -d "$qd" -s 4096 -S "$step" -t "$cache" --threads "$threads" | secs)
        o+=("$(awk -v c="$count" -v t="$t" 'BEGIN {printf "%.0f", c / t}')")
      done
      qm=$(printf '%s\n' "${q[@]}" | median)
      om=$(printf '%s\n' "${o[@]}" | median)
      printf '%-10s %-5s %-4s %12s %12s %6.2fx\n' "$cache" "$op" "$qd" "$qm" "$om" \
        "$(awk -v a="$om" -v b="$qm" 'BEGIN {print a / b}')"
    done
  done
done
echo "(IOPS, median of $reps runs of $count requests; image ${image_mb} MiB, 64 KiB clusters; our pool: $threads threads)"
