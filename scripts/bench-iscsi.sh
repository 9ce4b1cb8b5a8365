#!/usr/bin/env bash
# iSCSI throughput: tgtd (Debian tgt) against tgtkit's iscsi-target on the
# same backing file, same client, one after the other:
#   * 4 KiB random reads at queue depth 32: iscsi-perf -m 32 -b 8 -r
#   * 4 KiB writes at queue depth 32 scattered over the LUN:
#     qemu-img bench -w -d 32 -s 4096 -S <large odd stride> (iscsi-perf only reads)
#   * 128 KiB sequential reads at queue depth 8: iscsi-perf -m 8 -b 256
#   * 128 KiB sequential writes at queue depth 8: qemu-img bench -w -d 8 -s 131072
#   * 4 KiB random reads from 4 sessions (4 initiator names) at QD8 each,
#     IOPS summed: whether sessions scale across the cores (give
#     BENCH_TARGET_ARGS="--worker-threads 0" for one runtime thread per CPU)
# Prints IOPS and one `ratio=` line (tgtkit/tgt) per workload. Figures only: it never fails
# on a slow result. Environment: BENCH_SECONDS (default 10), BENCH_WRITES
# (default 100000), BENCH_ROUNDS (default 3), BENCH_WORKLOADS (a subset of
# read_iops write_iops seq_read_iops seq_write_iops sessions_read_iops),
# BENCH_TARGET_ARGS (extra
# iscsi-target flags, e.g. "--io-engine io-uring"), CARGO_TARGET_DIR.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/deps-iscsi.sh

secs=${BENCH_SECONDS:-10}
writes=${BENCH_WRITES:-100000}
tgt_port=3263
our_port=3264
tgt_iqn=iqn.2026-11.dev.tgtkit:bench-tgt
our_iqn=iqn.2026-11.dev.tgtkit:bench
target_dir=${CARGO_TARGET_DIR:-$root/target}

cargo build --release --quiet -p tgtkit-examples --bin iscsi-target
bin=$target_dir/release/iscsi-target

# shellcheck source=scripts/lib-bench-iscsi.sh
source "$root/scripts/lib-bench-iscsi.sh"
work=$(mktemp -d)
tgt_pid=""
our_pid=""
cleanup() {
    stop_tgt
    if [ -n "$our_pid" ]; then kill "$our_pid" 2>/dev/null || true; wait "$our_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
fallocate -l 1G "$work/disk.img"

read_iops() { # url
    iscsi-perf -m 32 -b 8 -r -t "$secs" "$1" 2>&1 | tr '\r' '\n' | grep -o 'iops average [0-9]*' | tail -1 | awk '{print $3}'
}

write_iops() { # url
    local out s
    out=$(qemu-img bench -w -c "$writes" -d 32 -s 4096 -S $((4096 * 7919)) -f raw "$1" 2>&1)
    s=$(echo "$out" | sed -n 's/^Run completed in \([0-9.]*\) seconds./\1/p')
    awk -v n="$writes" -v s="$s" 'BEGIN { printf "%d\n", n / s }'
}

echo "== starting tgtd $(dpkg-query -W -f='${Version}' tgt 2>/dev/null) and tgtkit iscsi-target on one file"
start_tgt "$tgt_port" "$tgt_iqn" "$work/disk.img"
# shellcheck disable=SC2086 # BENCH_TARGET_ARGS is a list of flags
"$bin" --portal "127.0.0.1:$our_port" --iqn "$our_iqn" --lun "file:$work/disk.img" ${BENCH_TARGET_ARGS:-} >/dev/null 2>"$work/ours.log" &
our_pid=$!
wait_port "$our_port"
tgt_url="iscsi://127.0.0.1:$tgt_port/$tgt_iqn/1"
our_url="iscsi://127.0.0.1:$our_port/$our_iqn/0"

seq_read_iops() { # url
    iscsi-perf -m 8 -b 256 -t "$secs" "$1" 2>&1 | tr '\r' '\n' | grep -o 'iops average [0-9]*' | tail -1 | awk '{print $3}'
}

seq_write_iops() { # url: 8,000 requests of 128 KiB, about 1 GiB, in order
    local out s
    out=$(qemu-img bench -w -c 8000 -d 8 -s 131072 -f raw "$1" 2>&1)
    s=$(echo "$out" | sed -n 's/^Run completed in \([0-9.]*\) seconds./\1/p')
    awk -v s="$s" 'BEGIN { printf "%d\n", 8000 / s }'
}

sessions_read_iops() { # url: 4 sessions at QD8, IOPS summed
    local i
    for i in 1 2 3 4; do
        iscsi-perf -i "iqn.2026-12.dev.tgtkit:bench-ini$i" -m 8 -b 8 -r -t "$secs" "$1" 2>&1 \
            | tr '\r' '\n' | grep -o 'iops average [0-9]*' | tail -1 | awk '{print $3}' &
    done | awk '{ s += $1 } END { print s + 0 }'
    wait
}

# The machine is shared and noisy: alternate the two targets for
# BENCH_ROUNDS rounds and report each one's median (the lower middle
# figure for an even count). BENCH_WORKLOADS picks some workloads by
# function name, e.g. BENCH_WORKLOADS="write_iops".
rounds=${BENCH_ROUNDS:-3}
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : 0) }'; }
read -r -a workloads <<<"${BENCH_WORKLOADS:-read_iops write_iops seq_read_iops seq_write_iops sessions_read_iops}"
declare -A label=(
    [read_iops]="4 KiB random read, QD32"
    [write_iops]="4 KiB scattered write, QD32"
    [seq_read_iops]="128 KiB sequential read, QD8"
    [seq_write_iops]="128 KiB sequential write, QD8"
    [sessions_read_iops]="4 KiB random read, 4 sessions x QD8"
)
declare -A tgt_all our_all tgt_med our_med
for w in "${workloads[@]}"; do tgt_all[$w]=""; our_all[$w]=""; done
for r in $(seq 1 "$rounds"); do
    for w in "${workloads[@]}"; do
        # Alternate which target goes first, so neither always meets the
        # other's leftovers (dirty pages, a warm cache).
        if [ $((r % 2)) -eq 1 ]; then
            t=$("$w" "$tgt_url"); o=$("$w" "$our_url")
        else
            o=$("$w" "$our_url"); t=$("$w" "$tgt_url")
        fi
        echo "round $r ${label[$w]}: tgt $t  tgtkit $o"
        tgt_all[$w]+=" $t"; our_all[$w]+=" $o"
    done
done
for w in "${workloads[@]}"; do
    tgt_med[$w]=$(echo "${tgt_all[$w]}" | median)
    our_med[$w]=$(echo "${our_all[$w]}" | median)
done

printf '%-38s %12s %12s\n' "workload (median of $rounds)" "tgt IOPS" "tgtkit IOPS"
for w in "${workloads[@]}"; do
    printf '%-38s %12s %12s\n' "${label[$w]}" "${tgt_med[$w]}" "${our_med[$w]}"
done
for w in "${workloads[@]}"; do
    awk -v n="${label[$w]}" -v a="${our_med[$w]}" -v b="${tgt_med[$w]}" \
        'BEGIN { if (b > 0) printf "iscsi: %s ratio=%.2f\n", n, a / b; else printf "iscsi: %s ratio=n/a\n", n }'
done
