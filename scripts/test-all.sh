#!/usr/bin/env bash
# The whole tgtkit test suite: what README.md tells a newcomer to run, and
# what .ci/run calls. It installs what the tests need (Debian packages,
# through the scripts/deps-*.sh scripts), then runs every crate's tests, the
# fuzz-corpus replay, and the peer tests against real initiators and
# kernels. Exit status is non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing test dependencies"
for deps in scripts/deps-*.sh; do
    [ -e "$deps" ] || continue
    bash "$deps"
done

echo "== cargo test (workspace, every feature except the fuzzing engine)"
cargo test --workspace --features "$(scripts/features.sh)" --no-fail-fast

echo "== iSCSI conformance against real initiators (libiscsi, qemu-img)"
bash scripts/conformance-iscsi.sh

echo "== TCMU end to end against the Linux kernel in a QEMU VM"
bash scripts/vm-tcmu/run.sh

echo "== Xen blkif backend against Linux blkfront in a real Xen 4.17 (QEMU TCG)"
bash scripts/vm-xen/run.sh
echo "== all tests passed"
