#!/usr/bin/env bash
# Regenerate the seed corpus of the qcow2_open fuzz target:
# small images made by qemu-img/qemu-io, plus mutated headers.
# Needs qemu-utils and python3. Usage: scripts/gen-qcow2-corpus.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/fuzz/corpus/qcow2_open"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -rf "$out"
mkdir -p "$out"

q() { qemu-img "$@" >/dev/null; }
io() { qemu-io -f qcow2 -c "$2" "$1" >/dev/null; }

mk() { # name, create options, size
  q create -f qcow2 -o "$2" "$tmp/$1.qcow2" "$3"
}
fill() { # name
  io "$tmp/$1.qcow2" "write -P 0x5a 0 4096"
  io "$tmp/$1.qcow2" "write -P 0xa5 300000 70000"
  io "$tmp/$1.qcow2" "write -z 600000 8192"
  io "$tmp/$1.qcow2" "discard 320000 16384"
}

mk v3-512 cluster_size=512 1M; fill v3-512
mk v2-1k compat=0.10,cluster_size=1024 1M
io "$tmp/v2-1k.qcow2" "write -P 0x11 0 65536"
mk v3-4k-lazy cluster_size=4096,lazy_refcounts=on 2M; fill v3-4k-lazy
mk v3-64k-empty cluster_size=65536 16M
mk rc1 cluster_size=512,refcount_bits=1 1M; fill rc1
mk rc64 cluster_size=512,refcount_bits=64 1M; fill rc64
mk empty0 cluster_size=512 0
mk snap cluster_size=512 1M
io "$tmp/snap.qcow2" "write -P 0x33 0 8192"
q snapshot -c s1 "$tmp/snap.qcow2"
io "$tmp/snap.qcow2" "write -P 0x44 4096 512"
q create -f raw "$tmp/base.raw" 1M
q create -f qcow2 -o cluster_size=512 -b base.raw -F raw "$tmp/overlay.qcow2"
io "$tmp/overlay.qcow2" "write -P 0x66 1000 3000"
python3 - "$tmp/zsrc.raw" <<'PY'
import sys
with open(sys.argv[1], "wb") as f:
    for i in range(256):
        f.write((b"tgtkit qcow2 corpus %03d " % i) * 16)
PY
q convert -c -f raw -O qcow2 -o cluster_size=4096 "$tmp/zsrc.raw" "$tmp/compressed.qcow2"
q convert -f raw -O qcow2 -o cluster_size=2048,compat=0.10 "$tmp/zsrc.raw" "$tmp/v2-2k-data.qcow2"

for f in "$tmp"/*.qcow2; do cp "$f" "$out/$(basename "$f" .qcow2).img"; done

# Mutated headers (qcow2.txt "Header" offsets), all from v3-512.
python3 - "$tmp/v3-512.qcow2" "$tmp/compressed.qcow2" "$out" <<'PY'
import struct, sys
src = open(sys.argv[1], "rb").read()
comp = open(sys.argv[2], "rb").read()
out = sys.argv[3]
def put(name, data):
    open(f"{out}/mut-{name}.img", "wb").write(data)
def patch(base, off, fmt, val):
    b = bytearray(base); struct.pack_into(">" + fmt, b, off, val); return bytes(b)
put("crypt-aes", patch(src, 32, "I", 1))
put("crypt-luks", patch(src, 32, "I", 2))
put("crypt-unknown", patch(src, 32, "I", 7))
put("snapshots", patch(src, 60, "I", 3))
for bit in (0, 1, 2, 3, 4, 5, 63):
    put(f"incompat-bit{bit}", patch(src, 72, "Q", 1 << bit))
put("cluster-bits-8", patch(src, 20, "I", 8))
put("cluster-bits-22", patch(src, 20, "I", 22))
put("cluster-bits-huge", patch(src, 20, "I", 200))
put("version-1", patch(src, 4, "I", 1))
put("version-4", patch(src, 4, "I", 4))
put("l1-size-huge", patch(src, 36, "I", 0xffffffff))
put("l1-size-4m", patch(src, 36, "I", 4 << 20))
put("l1-offset-unaligned", patch(src, 40, "Q", 513))
put("l1-offset-past-eof", patch(src, 40, "Q", 1 << 40))
put("l1-offset-zero", patch(src, 40, "Q", 0))
put("rt-offset-zero", patch(src, 48, "Q", 0))
put("rt-clusters-huge", patch(src, 56, "I", 0xffffffff))
put("rt-clusters-zero", patch(src, 56, "I", 0))
put("size-huge", patch(src, 24, "Q", 1 << 62))
put("size-odd", patch(src, 24, "Q", 1000001))
put("header-length-odd", patch(src, 100, "I", 105))
put("header-length-huge", patch(src, 100, "I", 1 << 20))
put("refcount-order-7", patch(src, 96, "I", 7))
put("backing-offset-past-cluster", patch(patch(src, 8, "Q", 4000), 16, "I", 100))
put("backing-name-long", patch(patch(src, 8, "Q", 200), 16, "I", 1023))
put("truncated-72", src[:72])
put("truncated-104", src[:104])
put("truncated-half", src[: len(src) // 2])
put("magic-only", src[:4])
# L1 entry 0 pointing at the header cluster, and at an unaligned offset.
l1 = struct.unpack_from(">Q", src, 40)[0]
put("l1-entry-header", patch(src, l1, "Q", (1 << 63) | 0))
put("l1-entry-unaligned", patch(src, l1, "Q", (1 << 63) | 777))
put("l1-entry-past-eof", patch(src, l1, "Q", (1 << 63) | (1 << 45)))
# Refcount table entry 0 pointing at the L1 table.
rt = struct.unpack_from(">Q", src, 48)[0]
put("rt-entry-l1", patch(src, rt, "Q", l1))
# Compressed image: flip bytes inside the compressed data area.
c = bytearray(comp)
for i in range(len(c) - 4096, len(c), 97):
    c[i] ^= 0xff
put("compressed-garbled", bytes(c))
# Compressed image: corrupt the first L2 entry's size bits.
l1c = struct.unpack_from(">Q", comp, 40)[0]
l2c = struct.unpack_from(">Q", comp, l1c)[0] & 0x00fffffffffffe00
e = struct.unpack_from(">Q", comp, l2c)[0]
put("compressed-bad-l2", patch(comp, l2c, "Q", e | 0x3ffffffffffffff))
PY
echo "$(ls "$out" | wc -l) seeds in $out ($(du -sh "$out" | cut -f1))"
