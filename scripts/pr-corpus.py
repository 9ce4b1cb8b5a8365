#!/usr/bin/env python3
"""Write the seed corpora of the transport_id and pr_out fuzz targets."""
import os, struct, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus")

def iscsi(name, isid=None):
    text = (name + (",i,0x" + isid if isid else "")).encode()
    add = max(20, (len(text) + 1 + 3) // 4 * 4)
    return bytes([0x45 if isid else 0x05, 0]) + struct.pack(">H", add) + text + bytes(add - len(text))

def fixed(proto, at, ident):
    t = bytearray(24); t[0] = proto; t[at:at + len(ident)] = ident; return bytes(t)

tids = [
    iscsi("iqn.1993-08.org.debian:01:abc"),
    iscsi("iqn.1993-08.org.debian:01:abc", "23d000000001"),
    iscsi("IQN.2026-11.TEST:UPPER", "ABCDEF012345"),
    iscsi("eui.0123456789abcdef"),
    iscsi("naa.6001405abcdef012", "1"),
    fixed(0, 8, bytes.fromhex("21000024ff123456")),
    fixed(6, 4, bytes.fromhex("5000c50012345678")),
    fixed(4, 8, bytes.fromhex("fe800000000000000002c90300a1b2c3")),
    fixed(9, 4, b"\x01\x02"),
    bytes([0x05, 0, 0, 5, ord("x"), 0, 0, 0, 0]),
    bytes([0x45, 0, 0, 8]) + b"abc,i,0x",
    bytes([0x05, 0, 0, 4]) + b"abcd",
    b"",
    bytes([0x05]),
]

def basic(key, sakey, flags=0, extra=b""):
    return struct.pack(">QQ", key, sakey) + bytes(4) + bytes([flags, 0, 0, 0]) + extra

def rec(who, sa, ty, params):
    return bytes([who, sa, ty]) + struct.pack(">H", len(params)) + params

def spec(key, sakey, ids):
    blob = b"".join(ids)
    return basic(key, sakey, 0x08, struct.pack(">I", len(blob)) + blob)

def move(key, sakey, port, tid, unreg=True):
    return struct.pack(">QQ", key, sakey) + bytes([0, 2 if unreg else 0]) + struct.pack(">HI", port, len(tid)) + tid

seqs = [
    [rec(0, 0, 0, basic(0, 1))],
    [rec(0, 0, 0, basic(0, 1)), rec(0, 1, 1, basic(1, 0))],
    [rec(0, 6, 0, basic(0, 1)), rec(1, 6, 0, basic(0, 2)), rec(0, 1, 3, basic(1, 0)), rec(1, 4, 3, basic(2, 1))],
    [rec(0, 0, 0, basic(0, 1)), rec(1, 0, 0, basic(0, 2)), rec(0, 1, 5, basic(1, 0)), rec(1, 5, 6, basic(2, 1))],
    [rec(0, 0, 0, basic(0, 1)), rec(0, 1, 7, basic(1, 0)), rec(0, 0, 0, basic(1, 0))],
    [rec(0, 0, 0, basic(0, 1)), rec(1, 0, 0, basic(0, 2)), rec(1, 3, 0, basic(2, 0))],
    [rec(0, 0, 0, spec(0, 5, [iscsi("iqn.2026-11.fuzz:n1"), tids[5]]))],
    [rec(0, 0, 0, spec(0, 5, [tids[9]]))],
    [rec(0, 0, 0, basic(0, 1)), rec(0, 1, 1, basic(1, 0)), rec(0, 7, 1, move(1, 9, 1, iscsi("iqn.2026-11.fuzz:n1", "000000000001")))],
    [rec(0, 0, 0, basic(0, 1, 0x04)), rec(0, 8, 3, basic(1, 0))],
    [rec(0, 0, 0, basic(0, 1, 0x01))],
    [rec(2, 2, 1, basic(0, 0)), rec(2, 0x1f, 0xff, bytes(3))],
    [rec(0, 0, 0, basic(0, 1)), rec(0, 2, 8, basic(1, 0)), rec(0, 1, 8, basic(1, 0)), rec(1, 6, 0, basic(0, 3)), rec(1, 2, 8, basic(3, 0))],
    [rec(0, 0, 0, bytes(20))],
    [rec(0, 0, 0, basic(0, 1) + bytes(4))],
]

os.makedirs(os.path.join(root, "transport_id"), exist_ok=True)
os.makedirs(os.path.join(root, "pr_out"), exist_ok=True)
for i, t in enumerate(tids):
    open(os.path.join(root, "transport_id", "seed-%02d" % i), "wb").write(t)
for i, s in enumerate(seqs):
    open(os.path.join(root, "pr_out", "seed-%02d" % i), "wb").write(b"".join(s))
print("wrote", len(tids), "transport_id and", len(seqs), "pr_out seeds", file=sys.stderr)
