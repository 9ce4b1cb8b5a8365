#!/bin/sh
# Debian package the SRP layout test needs: include/scsi/srp.h, a kernel
# header (not uapi), shipped in linux-headers-<version>-common under
# /usr/src/linux-headers-<version>-common/include/scsi/srp.h. Picks the
# -common package of the version linux-headers-<arch> points at (no kbuild,
# no compiler). Idempotent and quiet: does nothing when a copy is installed.
set -eu
if ls /usr/src/linux-headers-*-common/include/scsi/srp.h >/dev/null 2>&1; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq >/dev/null
arch=$(dpkg --print-architecture)
# linux-headers-<arch> -> linux-headers-<version>-<arch> -> ...-common
flavour=$(apt-cache depends "linux-headers-$arch" 2>/dev/null \
    | sed -n 's/^ *Depends: \(linux-headers-[^ ]*\)$/\1/p' | head -n1)
common=""
if [ -n "$flavour" ]; then
    common=$(apt-cache depends "$flavour" 2>/dev/null \
        | sed -n 's/^ *Depends: \(linux-headers-[^ ]*-common\)$/\1/p' | head -n1)
fi
if [ -z "$common" ]; then
    echo "deps-srp.sh: no linux-headers-*-common package found for $arch" >&2
    exit 1
fi
$SUDO apt-get install -y -qq --no-install-recommends "$common" >/dev/null
