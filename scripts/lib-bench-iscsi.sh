# Sourced by scripts/bench-iscsi.sh and scripts/bench-scale.sh: tgtd, the
# peer they measure tgtkit's iscsi-target against, and port waiting.
# The caller sets $work (a scratch directory) and tgt_pid="".

# Wait until 127.0.0.1:$1 accepts connections.
wait_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "port $1 did not open" >&2
    return 1
}

# Start tgtd on 127.0.0.1:$1 with target $2 serving file $3 as LUN 1,
# open to every initiator; sets tgt_pid.
start_tgt() {
    tgtd -f --iscsi "portal=127.0.0.1:$1" >"$work/tgtd.log" 2>&1 &
    tgt_pid=$!
    wait_port "$1"
    sleep 0.5
    tgtadm --lld iscsi --mode target --op new --tid 1 --targetname "$2"
    tgtadm --lld iscsi --mode logicalunit --op new --tid 1 --lun 1 --backing-store "$3"
    tgtadm --lld iscsi --mode target --op bind --tid 1 --initiator-address ALL
}

# Stop the tgtd start_tgt started, if any.
stop_tgt() {
    if [ -n "$tgt_pid" ]; then
        tgtadm --lld iscsi --mode target --op delete --force --tid 1 >/dev/null 2>&1 || true
        tgtadm --lld iscsi --mode system --op delete >/dev/null 2>&1 || true
        wait "$tgt_pid" 2>/dev/null || true
        tgt_pid=""
    fi
}
