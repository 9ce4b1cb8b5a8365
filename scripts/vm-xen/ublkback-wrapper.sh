#!/bin/sh
# Harness self-test only, NOT a backend under test: gives the C ublkback the
# xen-blkback command line contract closely enough to walk the qdisk flow of
# dom0-init.sh before the real xen-blkback exists:
#   VMXEN_BLKBACK=scripts/vm-xen/ublkback-wrapper.sh scripts/vm-xen/run.sh
# One ublkback per backend/qdisk/<domid>/<devid> that appears (params aio:|raw:PATH).
# ublkback has no flush, discard, qcow2, close or validation: those checks fail.
echo "xen-blkback: watching backend/qdisk (ublkback wrapper, harness self-test)" >&2
trap 'kill $(jobs -p) 2>/dev/null; exit 0' TERM
seen=" "
while :; do
  for d in $(cd / && for f in $(xenstore-list /local/domain/0/backend/qdisk 2>/dev/null); do
               for v in $(xenstore-list /local/domain/0/backend/qdisk/$f 2>/dev/null); do echo $f/$v; done; done); do
    case "$seen" in *" $d "*) continue ;; esac
    b=/local/domain/0/backend/qdisk/$d
    [ "$(xenstore-read $b/state 2>/dev/null)" = 1 ] || continue
    p=$(xenstore-read $b/params); p=${p#*:}
    ublkback "$b" "$p" >&2 &
    seen="$seen$d "
  done
  sleep 0.2
done
