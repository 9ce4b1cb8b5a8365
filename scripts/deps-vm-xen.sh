#!/bin/bash
# Debian packages the Xen VM test (scripts/vm-xen/run.sh) needs on the host:
# QEMU from bookworm-backports (as scripts/deps-tcmu.sh), busybox-static,
# kmod (depmod), xz-utils, gcc with libxen-dev and linux-libc-dev (the
# static hostile frontend), and the tools copied into dom0 with the
# libraries ldd lists: fio, e2fsprogs, sg3-utils, util-linux (blkdiscard,
# flock), qemu-utils. Xen itself and the guest kernel are only downloaded
# (apt-get download into the VM cache, by scripts/vm-xen/build.sh), never
# installed. Idempotent and quiet; run as root.
set -euo pipefail

need=()
want() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed" || need+=("$1"); }
for p in gcc libc6-dev libxen-dev linux-libc-dev busybox-static kmod xz-utils fio e2fsprogs sg3-utils util-linux; do want "$p"; done
bp=()
for p in qemu-system-x86 qemu-system-common qemu-system-data qemu-utils; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || bp+=("$p")
done
[ ${#need[@]} -eq 0 ] && [ ${#bp[@]} -eq 0 ] && exit 0

export DEBIAN_FRONTEND=noninteractive
if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  # The first Debian mirror of a deb line or a deb822 URIs: line (not a comment).
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    sed -n -E 's@^(deb|URIs:)[^h]*(https?://[^ ]+/debian)/?( .*)?$@\2@p' | sed -n 1p || true)
  echo "deb ${mirror:-http://deb.debian.org/debian} bookworm-backports main" > /etc/apt/sources.list.d/tgtkit-backports.list
fi
apt-get update -qq >/dev/null
[ ${#need[@]} -gt 0 ] && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
[ ${#bp[@]} -gt 0 ] && apt-get install -y -qq --no-install-recommends -t bookworm-backports "${bp[@]}" >/dev/null
exit 0
