#!/usr/bin/env bash
# Debian packages the iSCSI transport's peer tests and benchmarks need:
#   libiscsi-bin      iscsi-test-cu, iscsi-inq, iscsi-ls, iscsi-readcapacity16, iscsi-perf
#   tgt               tgtd, the reference target for scripts/bench-iscsi.sh
#   qemu-block-extra  qemu-img's iscsi:// driver; it must come from bookworm-backports
#                     to match qemu-utils 10.0.2 (bookworm's own 7.2 would replace it).
# Idempotent and quiet: does nothing when everything is installed.
set -euo pipefail

need=()
command -v iscsi-test-cu >/dev/null 2>&1 || need+=(libiscsi-bin)
command -v tgtd >/dev/null 2>&1 || need+=(tgt)
qemu_extra=0
if ! dpkg -s qemu-block-extra >/dev/null 2>&1; then qemu_extra=1; fi
if [ ${#need[@]} -eq 0 ] && [ $qemu_extra -eq 0 ]; then exit 0; fi

export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if [ $qemu_extra -eq 1 ] && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # Use the mirror the machine's own sources already name.
    mirror=$( { grep -rshoE 'https?://[^ ]*/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ || true; } \
        | { grep -v security || true; } | head -n1 | tr -d ' ')
    mirror=${mirror:-http://deb.debian.org/debian}
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$mirror" | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
fi

$SUDO apt-get update -qq >/dev/null
if [ ${#need[@]} -gt 0 ]; then
    $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ $qemu_extra -eq 1 ]; then
    $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-block-extra >/dev/null
fi
