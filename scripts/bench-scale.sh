#!/usr/bin/env bash
# Scale (issue 13, goal 4), figures only: it never fails on a slow result.
#   * the engine with 64 logical units x 16 nexuses, every nexus registered
#     and a WERO reservation on every unit, against 1 unit x 1 nexus:
#     per-command cost ratio, allocations per command, heap per idle unit
#     (benches/benches/scale.rs, in-process, alternating rounds);
#   * the resident memory an idle iSCSI session costs the target process:
#     tgtkit's iscsi-target and tgtd side by side, SESSIONS sessions opened
#     by benches/examples/iscsi_idle (login, one READ each, then idle).
# Environment: SESSIONS (default 64), CARGO_TARGET_DIR.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/deps-iscsi.sh

sessions=${SESSIONS:-64}
tgt_port=3265
our_port=3266
tgt_iqn=iqn.2026-12.dev.tgtkit:scale-tgt
our_iqn=iqn.2026-12.dev.tgtkit:scale
target_dir=${CARGO_TARGET_DIR:-$root/target}

echo "== engine: 64 units x 16 nexuses vs 1 x 1"
cargo bench -q -p tgtkit-benches --bench scale -- --figures

cargo build --release --quiet -p tgtkit-examples --bin iscsi-target
cargo build --release --quiet -p tgtkit-benches --example iscsi_idle
bin=$target_dir/release/iscsi-target
idle=$target_dir/release/examples/iscsi_idle

# shellcheck source=scripts/lib-bench-iscsi.sh
source "$root/scripts/lib-bench-iscsi.sh"
work=$(mktemp -d)
tgt_pid=""
our_pid=""
hold_pid=""
cleanup() {
    if [ -n "$hold_pid" ]; then kill "$hold_pid" 2>/dev/null || true; fi
    stop_tgt
    if [ -n "$our_pid" ]; then kill "$our_pid" 2>/dev/null || true; wait "$our_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
fallocate -l 256M "$work/disk.img"

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# KiB of resident memory per idle session in process $1, reached at $2
# (host:port) as target $3: a warm-up session first (so one-time start-up
# costs are paid), then $sessions held open.
per_session() {
    local pid=$1 addr=$2 iqn=$3 before after fifo line
    "$idle" "$addr" "$iqn" 1 </dev/null >/dev/null
    sleep 0.5
    before=$(rss_kib "$pid")
    fifo=$work/hold.$pid
    mkfifo "$fifo"
    # The holder keeps the sessions until its standard input (the fifo)
    # closes.
    "$idle" "$addr" "$iqn" "$sessions" <"$fifo" >"$work/hold.out" 2>"$work/hold.err" &
    hold_pid=$!
    exec 7>"$fifo"
    line=""
    for _ in $(seq 1 300); do
        line=$(cat "$work/hold.out")
        [ -n "$line" ] && break
        if ! kill -0 "$hold_pid" 2>/dev/null; then break; fi
        sleep 0.1
    done
    if [ "$line" != "ready $sessions" ]; then
        echo "sessions to $iqn failed: $(cat "$work/hold.err")" >&2
        exec 7>&-
        return 1
    fi
    sleep 0.5
    after=$(rss_kib "$pid")
    exec 7>&-
    wait "$hold_pid" || true
    hold_pid=""
    rm -f "$fifo"
    awk -v a="$after" -v b="$before" -v n="$sessions" 'BEGIN { printf "%.1f\n", (a - b) / n }'
}

echo "== idle iSCSI sessions: tgtd $(dpkg-query -W -f='${Version}' tgt 2>/dev/null) and tgtkit iscsi-target on one file"
start_tgt "$tgt_port" "$tgt_iqn" "$work/disk.img"
"$bin" --portal "127.0.0.1:$our_port" --iqn "$our_iqn" --lun "file:$work/disk.img" >/dev/null 2>"$work/ours.log" &
our_pid=$!
wait_port "$our_port"

# tgtd's LUN 0 is its controller: the idle client reads LUN 0 of each, which
# on tgtd is answered without touching the file; the session state is what
# is measured.
ours=$(per_session "$our_pid" "127.0.0.1:$our_port" "$our_iqn")
theirs=$(per_session "$tgt_pid" "127.0.0.1:$tgt_port" "$tgt_iqn")
printf '%-40s %10s %10s\n' "resident KiB per idle session ($sessions)" "tgt" "tgtkit"
printf '%-40s %10s %10s\n' "" "$theirs" "$ours"
awk -v o="$ours" -v t="$theirs" 'BEGIN {
    printf "memory: iSCSI idle session %.1f KiB (goal <= 256 KiB), tgt %.1f KiB", o, t
    if (o > 0) printf ", ratio=%.2f (tgt per tgtkit: above 1 is leaner)\n", t / o
    else printf ", ratio=n/a (no measurable growth)\n"
}'
