#!/usr/bin/env bash
# Install what the qcow2 backstore's tests need: qemu-img and qemu-io
# (Debian qemu-utils; the machines carry 10.0.2 from bookworm-backports).
# Idempotent and quiet.
set -euo pipefail
if command -v qemu-img >/dev/null && command -v qemu-io >/dev/null; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq qemu-utils >/dev/null
command -v qemu-img >/dev/null && command -v qemu-io >/dev/null
