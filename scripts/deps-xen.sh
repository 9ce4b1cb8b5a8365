#!/bin/sh
# Debian packages the Xen ring tests need (xen-ring, blkif, vscsiif):
#  - libxen-dev: the real xen/io/{ring,blkif,vscsiif}.h the interop tests compile against;
#  - gcc-multilib: compiles the same headers with -m32 for the x86_32 ABI layout check.
# Idempotent and quiet; run as root.
set -eu
need=""
[ -f /usr/include/xen/io/blkif.h ] || need="$need libxen-dev"
if [ "$(uname -m)" = x86_64 ] && ! dpkg-query -W -f='${Status}' gcc-multilib 2>/dev/null | grep -q "ok installed"; then
    need="$need gcc-multilib"
fi
command -v cc >/dev/null 2>&1 || need="$need gcc"
if [ -n "$need" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
