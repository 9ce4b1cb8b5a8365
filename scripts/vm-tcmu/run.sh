#!/bin/bash
# End-to-end test of the TCMU transport against the Linux kernel, in a VM.
#
#   scripts/vm-tcmu/run.sh
#
# Installs what it needs (scripts/deps-tcmu.sh), builds tcmu-handler
# (release), builds a Debian 6.1 kernel + initramfs (build.sh), boots it
# under QEMU TCG, and counts the guest's checks (guest-init.sh). Prints
# "N passed, N failed" and exits non-zero if any check failed or the guest
# did not finish. iscsi-test-cu runs its whole list against the guest's
# /dev/sgN; a failed test not listed in
# transports/tcmu/tests/expected-failures/iscsi-test-cu-sg.txt counts as a
# failed check. fio figures are printed, not counted.
# Environment: SKIP_PERF=1, SKIP_ISCSI_TEST=1, SKIP_FUNCTIONAL=1,
# PERF_SECONDS=N, ISCSI_TEST_FILTER=Family.Suite (narrows the list),
# ISCSI_TIMEOUT=s, ISCSI_DUMP=Suite.Test (prints that test's log),
# VM_TIMEOUT=seconds (default 2400), TGTKIT_VM_CACHE=dir, KEEP=1.
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
for v in SKIP_PERF SKIP_ISCSI_TEST SKIP_FUNCTIONAL PERF_SECONDS ISCSI_TEST_FILTER ISCSI_TIMEOUT ISCSI_DUMP RUST_LOG; do
  [ -n "${!v:-}" ] && append="$append $v=${!v}"
done
set +e
timeout "${VM_TIMEOUT:-2400}" qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 3072 \
  -nographic -no-reboot -kernel "$work/vmlinux" -initrd "$work/initrd.gz" \
  -append "$append" < /dev/null 2>&1 | stdbuf -oL tr -d '\r' | tee "$work/console.log"
set -e

log="$work/console.log"
passed=$(grep -c '^@@CHECK PASS' "$log" || true)
failed=$(grep -c '^@@CHECK FAIL' "$log" || true)
echo
echo "=== TCMU VM test ($(( $(date +%s) - start )) s, console log $log) ==="
grep '^@@PERF' "$log" | sed 's/^@@PERF /perf: /' || true
grep '^@@ISCSI' "$log" | grep -v '^@@ISCSI-FAIL' | sed 's/^@@ISCSI[-A-Z]* /iscsi-test-cu: /' || true
if [ "${SKIP_ISCSI_TEST:-0}" != 1 ]; then
  echo "slowest iscsi-test-cu suites (s):"
  grep '^@@SUITE ' "$log" | awk 'NR > 1 { print $2 - t, s } { t = $2; s = $3 }' | sort -rn | head -8 | sed 's/^/  /'
  expected="$repo/transports/tcmu/tests/expected-failures/iscsi-test-cu-sg.txt"
  grep '^@@ISCSI-FAIL ' "$log" | awk '{print $2}' | sort -u > "$work/failed.txt" || true
  { grep -v '^\s*\(#\|$\)' "$expected" || true; } | awk '{print $1}' | sort -u > "$work/expected.txt"
  echo "iscsi-test-cu failed tests: $(wc -l < "$work/failed.txt") (expected: $(wc -l < "$work/expected.txt"))"
  unexpected=$(comm -23 "$work/failed.txt" "$work/expected.txt")
  if [ -n "$unexpected" ]; then
    echo "UNEXPECTED iscsi-test-cu failures:"; echo "$unexpected" | sed 's/^/  /'
    failed=$((failed + 1))
  fi
  if [ -z "${ISCSI_TEST_FILTER:-}" ]; then
    fixed=$(comm -13 "$work/failed.txt" "$work/expected.txt")
    [ -z "$fixed" ] || { echo "expected failures that now pass (remove them from $expected):"; echo "$fixed" | sed 's/^/  /'; }
  fi
  if ! grep -q '^@@ISCSI Run Summary' "$log"; then echo "iscsi-test-cu printed no Run Summary"; failed=$((failed + 1)); fi
fi
grep '^@@CHECK FAIL' "$log" | sed 's/^@@CHECK /check /' || true
if ! grep -q '^@@DONE' "$log"; then
  echo "guest did not finish"
  failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[ "${KEEP:-0}" = 1 ] || rm -rf "$work/root"
[ "$failed" -eq 0 ]
