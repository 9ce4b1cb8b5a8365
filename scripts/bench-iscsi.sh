#!/usr/bin/env bash
# iSCSI throughput: tgtd (Debian tgt) against tgtkit's iscsi-target on the
# same backing file, same client, one after the other:
#   * 4 KiB random reads at queue depth 32: iscsi-perf -m 32 -b 8 -r
#   * 4 KiB writes at queue depth 32 scattered over the LUN:
#     qemu-img bench -w -d 32 -s 4096 -S <large odd stride> (iscsi-perf only reads)
# Prints IOPS and the tgtkit/tgt ratio for each. Figures only: it never fails
# on a slow result. Environment: BENCH_SECONDS (default 15), BENCH_WRITES
# (default 100000), BENCH_ROUNDS (default 2), BENCH_TARGET_ARGS (extra
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

work=$(mktemp -d)
tgt_pid=""
our_pid=""
stop_tgt() {
    if [ -n "$tgt_pid" ]; then
        tgtadm --lld iscsi --mode target --op delete --force --tid 1 >/dev/null 2>&1 || true
        tgtadm --lld iscsi --mode system --op delete >/dev/null 2>&1 || true
        wait "$tgt_pid" 2>/dev/null || true
        tgt_pid=""
    fi
}
cleanup() {
    stop_tgt
    if [ -n "$our_pid" ]; then kill "$our_pid" 2>/dev/null || true; wait "$our_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
fallocate -l 1G "$work/disk.img"

wait_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "port $1 did not open" >&2
    return 1
}

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
tgtd -f --iscsi "portal=127.0.0.1:$tgt_port" >"$work/tgtd.log" 2>&1 &
tgt_pid=$!
wait_port "$tgt_port"
sleep 0.5
tgtadm --lld iscsi --mode target --op new --tid 1 --targetname "$tgt_iqn"
tgtadm --lld iscsi --mode logicalunit --op new --tid 1 --lun 1 --backing-store "$work/disk.img"
tgtadm --lld iscsi --mode target --op bind --tid 1 --initiator-address ALL
# shellcheck disable=SC2086 # BENCH_TARGET_ARGS is a list of flags
"$bin" --portal "127.0.0.1:$our_port" --iqn "$our_iqn" --lun "file:$work/disk.img" ${BENCH_TARGET_ARGS:-} >/dev/null 2>"$work/ours.log" &
our_pid=$!
wait_port "$our_port"
tgt_url="iscsi://127.0.0.1:$tgt_port/$tgt_iqn/1"
our_url="iscsi://127.0.0.1:$our_port/$our_iqn/0"

# The machine is shared and noisy: alternate the two targets for
# BENCH_ROUNDS rounds and keep each one's best figure.
rounds=${BENCH_ROUNDS:-2}
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b ? a : b) }'; }
tgt_read=0; our_read=0; tgt_write=0; our_write=0
for r in $(seq 1 "$rounds"); do
    t=$(read_iops "$tgt_url"); o=$(read_iops "$our_url")
    echo "round $r read:  tgt $t  tgtkit $o"
    tgt_read=$(best "$tgt_read" "$t"); our_read=$(best "$our_read" "$o")
    t=$(write_iops "$tgt_url"); o=$(write_iops "$our_url")
    echo "round $r write: tgt $t  tgtkit $o"
    tgt_write=$(best "$tgt_write" "$t"); our_write=$(best "$our_write" "$o")
done

printf '%-34s %12s %12s %8s\n' "workload (best of $rounds)" "tgt IOPS" "tgtkit IOPS" "ratio"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
printf '%-34s %12s %12s %8s\n' "4 KiB random read, QD32" "$tgt_read" "$our_read" "$(ratio "$our_read" "$tgt_read")"
printf '%-34s %12s %12s %8s\n' "4 KiB scattered write, QD32" "$tgt_write" "$our_write" "$(ratio "$our_write" "$tgt_write")"
