#!/bin/bash
# Debian packages for the TCMU transport's tests: the kernel header for the
# layout test (linux-libc-dev), and for the VM test (scripts/vm-tcmu/run.sh)
# QEMU from bookworm-backports (bookworm's own 7.2 would replace the
# backports qemu-utils), busybox-static, kmod (depmod), and the guest tools
# sg3-utils, fio, e2fsprogs, libiscsi-bin, xorriso (the ISO image the sr
# driver mounts), and the shared libraries the
# guest's tcmu-runner links (glib, kmod, libnl-genl). Idempotent and quiet.
set -euo pipefail

need=()
want() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed" || need+=("$1"); }
for p in linux-libc-dev gcc busybox-static kmod sg3-utils fio e2fsprogs libiscsi-bin xorriso xz-utils libglib2.0-0 libkmod2 libnl-genl-3-200 zlib1g; do want "$p"; done
bp=()
for p in qemu-system-x86 qemu-system-common qemu-system-data; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || bp+=("$p")
done
[ ${#need[@]} -eq 0 ] && [ ${#bp[@]} -eq 0 ] && exit 0

export DEBIAN_FRONTEND=noninteractive
if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  mirror=$(grep -rhoE "https?://[^ ]+/debian/?" /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | grep -v security | head -1)
  echo "deb ${mirror:-http://deb.debian.org/debian} bookworm-backports main" > /etc/apt/sources.list.d/tgtkit-backports.list
fi
apt-get update -qq >/dev/null
[ ${#need[@]} -gt 0 ] && apt-get install -y -qq "${need[@]}" >/dev/null
[ ${#bp[@]} -gt 0 ] && apt-get install -y -qq -t bookworm-backports "${bp[@]}" >/dev/null
exit 0
