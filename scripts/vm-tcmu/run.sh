#!/bin/bash
# End-to-end test of the TCMU transport against the Linux kernel, in a VM.
#
#   scripts/vm-tcmu/run.sh
#
# Installs what it needs (scripts/deps-tcmu.sh), builds tcmu-handler
# (release), builds a Debian 6.1 kernel + initramfs (build.sh), boots it
# under QEMU TCG, and counts the guest's checks (guest-init.sh). Prints
# "N passed, N failed" and exits non-zero if any check failed or the guest
# did not finish. iscsi-test-cu results and fio figures are printed, not
# counted. Environment: SKIP_PERF=1, SKIP_ISCSI_TEST=1, SKIP_FUNCTIONAL=1,
# PERF_SECONDS=N, ISCSI_SUITES="Inquiry ...", ISCSI_SUITE_TIMEOUT=s,
# VM_TIMEOUT=seconds (default 1500), TGTKIT_VM_CACHE=dir, KEEP=1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
start=$(date +%s)

bash "$repo/scripts/deps-tcmu.sh"
target=${CARGO_TARGET_DIR:-$repo/target}
(cd "$repo" && cargo build --release -q -p tgtkit-examples --bin tcmu-handler)
work=$(mktemp -d /tmp/vm-tcmu.XXXXXX)
TCMU_HANDLER="$target/release/tcmu-handler" bash "$here/build.sh" "$work"

append="console=ttyS0 panic=-1 quiet rdinit=/init"
for v in SKIP_PERF SKIP_ISCSI_TEST SKIP_FUNCTIONAL PERF_SECONDS ISCSI_SUITE_TIMEOUT RUST_LOG; do
  [ -n "${!v:-}" ] && append="$append $v=${!v}"
done
set +e
timeout "${VM_TIMEOUT:-1500}" qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 2048 \
  -nographic -no-reboot -kernel "$work/vmlinux" -initrd "$work/initrd.gz" \
  -append "$append" < /dev/null 2>&1 | stdbuf -oL tr -d '\r' | tee "$work/console.log"
set -e

log="$work/console.log"
passed=$(grep -c '^@@CHECK PASS' "$log" || true)
failed=$(grep -c '^@@CHECK FAIL' "$log" || true)
echo
echo "=== TCMU VM test ($(( $(date +%s) - start )) s, console log $log) ==="
grep '^@@PERF' "$log" | sed 's/^@@PERF /perf: /' || true
grep '^@@ISCSI ' "$log" | sed 's/^@@ISCSI /iscsi-test-cu: /' || true
grep '^@@ISCSI-FAIL' "$log" | sed 's/^@@ISCSI-FAIL /iscsi-test-cu FAILED: /' | head -40 || true
grep '^@@CHECK FAIL' "$log" | sed 's/^@@CHECK /check /' || true
if ! grep -q '^@@DONE' "$log"; then
  echo "guest did not finish"
  failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[ "${KEEP:-0}" = 1 ] || rm -rf "$work/root"
[ "$failed" -eq 0 ]
