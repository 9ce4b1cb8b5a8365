#!/bin/sh
# Packages the backstores tests use: losetup (package `mount`) for the
# block-device test. Idempotent and quiet; the tests skip (saying why) when
# a tool or privilege is missing, but CI should have them.
set -eu
if ! command -v losetup >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq mount >/dev/null
fi
