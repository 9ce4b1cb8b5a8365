#!/bin/bash
# /init of the Xen VM test: PID 1 of the PV dom0 (Linux 6.1 on Xen 4.17).
#
# Starts the Xen userspace (xenstored, xen-init-dom0, xenconsoled), formats the
# scratch disk the host passed as /dev/vda and keeps every image there, then:
#  - baseline: the kernel's xen-blkback needs nothing of ours (dom0 self-attach
#    over a file), and ublkback (C, scripts/vm-xen/ublkback.c) serves a qdisk
#    device: the userspace path libxl offers is open;
#  - our xen-blkback (/usr/bin/xen-blkback, backend type qdisk) against the
#    kernel's xen-blkfront in dom0: the disk and its size, ext4 + fsck, fio
#    verify, discard and flush reaching the file, qcow2 written through blkfront
#    then qemu-img check + compare, detach and re-attach, two disks at once,
#    kill -9 with fio in flight and a restart, and the hostile frontend
#    (hostile-front.c) with a real disk serving reads afterwards;
#  - our xen-scsiback (/usr/bin/xen-scsiback) against the kernel's xen-scsifront
#    in dom0, vhosts written by hand (xl has no vscsi commands): sg_inq,
#    sg_readcap, ext4 + fsck, fio verify, persistent reservations between two
#    vhosts on one p-dev, LUN hot-add and hot-remove, detach;
#  - figures: fio 4 KiB randread/randwrite QD16 through blkfront, ours vs the
#    kernel's xen-blkback on the same file, and through scsifront, our
#    xen-scsiback vs the kernel's xen-scsiback + LIO fileio on the same file.
# Every check prints "@@CHECK PASS|FAIL name", a skipped one "@@SKIP name (why)";
# figures print "@@PERF ...". Every step is bounded by timeout.
# Switches (dom0 command line): VMXEN_SUITE=ours|kernel (kernel: run the checks
# meant for ours against the kernel's xen-blkback, to prove the checks
# themselves), VMXEN_PERF=0, PERF_SECONDS=N, VMXEN_SHELL=1, RUST_LOG.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin:/usr/lib/xen-4.17/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run; mount -t tmpfs tmpfs /tmp
mkdir -p /run/xen /run/xenstored /run/xl /run/lock /var/lib/xen /var/log/xen/console /dev/pts /mnt
mount -t devpts devpts /dev/pts
# The block hotplug script's locking.sh stats /dev/stdin: devtmpfs has none.
ln -sf /proc/self/fd /dev/fd; ln -sf fd/0 /dev/stdin; ln -sf fd/1 /dev/stdout; ln -sf fd/2 /dev/stderr
echo 1 > /proc/sys/kernel/printk
SUITE=${VMXEN_SUITE:-ours}
PERF_SECONDS=${PERF_SECONDS:-10}

t() { echo "@@T $(cut -d' ' -f1 /proc/uptime) $*"; }
pass() { echo "@@CHECK PASS $1"; }
fail() { echo "@@CHECK FAIL $1${2:+ ($2)}"; }
skip() { echo "@@SKIP $1 ($2)"; }
# check SECONDS NAME CMD...: CMD (a command or an exported function) under timeout.
check() {
  local secs=$1 name=$2; shift 2
  timeout "$secs" bash -c '"$@"' check "$@" > /tmp/check.out 2>&1
  local rc=$?
  if [ $rc = 0 ]; then pass "$name"; CHECK_OK=1
  else CHECK_OK=0; fail "$name" "rc=$rc"; sed 's/^/    | /' /tmp/check.out | tail -25; fi
}
# checkv: the same, and prints the output when it passes too.
checkv() { check "$@"; [ $CHECK_OK = 1 ] && sed 's/^/    | /' /tmp/check.out | tail -40; true; }
finish() {
  t "done"; echo "@@DONE"; sync
  [ "${VMXEN_SHELL:-0}" = 1 ] && setsid cttyhack sh
  poweroff -f
}

# --- Xen userspace --------------------------------------------------------------
for m in xenfs xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xen-blkfront loop; do
  modprobe $m || fail "modprobe-$m"
done
mount -t xenfs xenfs /proc/xen
xenstored --pid-file=/run/xenstored.pid && xen-init-dom0 >/dev/null &&
  xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console || { fail xen-userspace; finish; }
check 20 xl-info bash -c "xl info | grep -q '^xen_version *: 4\.17' && xl list | grep -q '^Domain-0'"
check 5 gntalloc-gntdev-evtchn test -c /dev/xen/gntalloc -a -c /dev/xen/gntdev -a -c /dev/xen/evtchn
t "xen userspace ready"

# --- scratch disk (the host's -drive; images stay there for the host) ------------
for m in virtio_pci virtio_blk crc32c_generic ext4; do modprobe $m || fail modprobe-$m; done
for i in $(seq 50); do [ -b /dev/vda ] && break; sleep 0.1; done
S=/s
if [ -b /dev/vda ] && mkfs.ext4 -q -F -E nodiscard /dev/vda && mount -t ext4 -o commit=60 /dev/vda $S; then pass scratch-disk
else fail scratch-disk; S=/tmp; fi
t "scratch on $S"

# --- helpers ----------------------------------------------------------------------
devid() { echo $(( 51712 + 16 * ($(printf %d "'${1#xvd}") - 97) )); }   # xvdb -> 51728
waitblk() { for i in $(seq $((${2:-20} * 10))); do [ -b /dev/$1 ] && return 0; sleep 0.1; done; return 1; }
waitgone() { for i in $(seq $((${2:-20} * 10))); do [ -e /dev/$1 ] || return 0; sleep 0.1; done; return 1; }
sectors_ok() { [ "$(cat /sys/block/$1/size)" -eq $(( $(stat -c %s "$2") / 512 )) ]; }
# attach VDEV TARGET [FORMAT]: through our backend (qdisk) or, for VMXEN_SUITE=kernel, the kernel's (phy).
attach() {
  local bt=qdisk; [ "$SUITE" = kernel ] && bt=phy
  timeout 30 xl block-attach 0 "format=${3:-raw},vdev=$1,access=rw,backendtype=$bt,target=$2" && waitblk $1 20
}
detach() { timeout 40 xl block-detach 0 $1 && waitgone $1 10; }
alive() { [ -n "$BB" ] && kill -0 $BB 2>/dev/null; }
bb_start() {
  RUST_LOG=${RUST_LOG:-info} xen-blkback >> /tmp/xb.log 2>&1 & BB=$!
  for i in $(seq 100); do grep -q 'xen-blkback: watching backend/qdisk' /tmp/xb.log && return 0; sleep 0.1; done
  return 1
}
mkpat() { dd if=/dev/urandom of=$1 bs=1M count=${2:-4} 2>/dev/null; }
md5r() { # FILE SKIP COUNT (64 KiB blocks) [none]: md5 of a range, read O_DIRECT unless "none"
  local fl=iflag=direct; [ "${4:-}" = none ] && fl=
  dd if=$1 bs=64k skip=$2 count=$3 $fl 2>/dev/null | md5sum | cut -d' ' -f1
}
fio_iops() { # DEV RW SECONDS -> IOPS (fio --minimal: field 8 read IOPS, 49 write IOPS)
  timeout $(( $3 + 60 )) fio --name=p --filename=$1 --rw=$2 --bs=4k --iodepth=16 --ioengine=libaio --direct=1 \
    --time_based --runtime=$3 --size=128m --minimal 2>/dev/null | awk -F';' -v rw=$2 '{ print (rw == "randread" ? $8 : $49) }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "n/a" }'; }
xsclean() { # drop a device's leftover xenstore keys (backend type, devid)
  xenstore-rm /local/domain/0/backend/$1/0/$2 /local/domain/0/device/vbd/$2 /libxl/0/device/vbd/$2 2>/dev/null
}
# vscsi: xl 4.17 has no vscsi commands; these write the keys a toolstack writes (README).
sdlist() { ls /sys/block | grep '^sd' | tr '\n' ' '; }
newsd() { # "BEFORE" [SECONDS]: the first sd disk not in BEFORE, once its node exists
  local i s
  for i in $(seq $(( ${2:-20} * 10 ))); do
    for s in $(sdlist); do case " $1 " in *" $s "*) ;; *) [ -b /dev/$s ] && { echo $s; return 0; } ;; esac; done
    sleep 0.1
  done; return 1
}
vhost_add() { # DEVID PDEV VDEV [PDEV VDEV ...]: a vhost of dom0 with its dev-N entries
  local id=$1 be=/local/domain/0/backend/vscsi/0/$1 fe=/local/domain/0/device/vscsi/$1 n=0; shift
  local args="$be/frontend $fe $be/frontend-id 0 $be/online 1 $be/feature-host 0"
  while [ $# -ge 2 ]; do
    args="$args $be/vscsi-devs/dev-$n/p-dev $1 $be/vscsi-devs/dev-$n/v-dev $2 $be/vscsi-devs/dev-$n/state 1"
    n=$((n + 1)); shift 2
  done
  xenstore-write $fe/backend $be $fe/backend-id 0 && xenstore-write $args &&
    xenstore-write $fe/state 1 && xenstore-write $be/state 1
}
vhost_del() { # DEVID: the toolstack's detach (online 0, backend Closing), then the keys go
  local be=/local/domain/0/backend/vscsi/0/$1 fe=/local/domain/0/device/vscsi/$1 i
  xenstore-write $be/online 0 $be/state 5
  for i in $(seq 100); do [ "$(xenstore-read $be/state 2>/dev/null)" = 6 ] && break; sleep 0.1; done
  local st=$(xenstore-read $be/state 2>/dev/null)
  xenstore-rm $fe; xenstore-rm $be
  [ "$st" = 6 ]
}
export -f devid waitblk waitgone sectors_ok attach detach alive mkpat md5r sdlist newsd vhost_add vhost_del
export SUITE S
xenstore-write /local/domain/0/image/device-model-pid 1   # libxl refuses qdisk for dom0 without a "device model"

# --- baseline 1: ublkback (C) serves a qdisk device; nothing of ours involved -------
t "baseline: ublkback"
mkpat $S/ub.img 16
U=/local/domain/0/backend/qdisk/0/$(devid xvde)
timeout 30 xl block-attach 0 "format=raw,vdev=xvde,access=rw,backendtype=qdisk,target=$S/ub.img"
ublkback $U $S/ub.img > /tmp/ub.log 2>&1 & UB=$!
check 30 baseline-ublkback-serves bash -c "waitblk xvde 20 && [ \$(md5r /dev/xvde 0 256 none) = \$(md5r $S/ub.img 0 256 none) ]"
kill $UB; wait $UB 2>/dev/null
# ublkback does not close: play Closed for it so libxl finishes the detach, then drop the keys.
( for i in $(seq 100); do [ "$(xenstore-read $U/state 2>/dev/null)" = 5 ] && break; sleep 0.1; done
  for i in $(seq 50); do [ "$(xenstore-read /local/domain/0/device/vbd/$(devid xvde)/state 2>/dev/null)" -ge 5 ] 2>/dev/null && break; sleep 0.1; done
  xenstore-write $U/state 6 ) &
timeout 20 xl block-detach 0 xvde >/dev/null 2>&1; xsclean qdisk $(devid xvde)
check 5 baseline-ublkback-gone bash -c "! test -e /dev/xvde"

# --- our xen-blkback (or, for VMXEN_SUITE=kernel, the kernel's) ---------------------
if [ "$SUITE" = kernel ]; then
  t "SUITE=kernel: the checks below run against the kernel's xen-blkback, not ours"
  modprobe xen-blkback
  BB=
elif ! [ -x /usr/bin/xen-blkback ]; then
  fail xen-blkback-in-initramfs "no /usr/bin/xen-blkback: its checks did not run"
  SUITE=none
else
  check 5 kernel-blkback-not-loaded bash -c "! grep -q '^xen_blkback ' /proc/modules"
  if bb_start; then pass xen-blkback-ready; else fail xen-blkback-ready; sed 's/^/    | /' /tmp/xb.log | tail; SUITE=none; fi
fi
export BB

c_fs() { # [DEV] (default /dev/xvdb)
  local d=${1:-/dev/xvdb}
  mkfs.ext4 -q -F $d && e2fsck -fn $d && mount -t ext4 $d /mnt && mkpat /mnt/f1 8 &&
    cp /mnt/f1 /mnt/f2 && mkdir /mnt/d && for i in $(seq 50); do echo $i > /mnt/d/$i; done &&
    umount /mnt && e2fsck -fn $d && echo 3 > /proc/sys/vm/drop_caches && mount -t ext4 $d /mnt &&
    cmp /mnt/f1 /mnt/f2 && [ "$(cat /mnt/d/42)" = 42 ] && umount /mnt
}
c_discard() { # write 16 MiB, discard it: the file's allocated blocks drop
  dd if=/dev/urandom of=/dev/xvdb bs=1M seek=32 count=16 oflag=direct conv=fsync 2>/dev/null && sync
  local b1=$(stat -c %b $S/a.img)
  blkdiscard -o $((32 << 20)) -l $((16 << 20)) /dev/xvdb && sync; sleep 1
  local b2=$(stat -c %b $S/a.img); echo "allocated 512 B blocks: $b1 before, $b2 after discard"
  [ $b2 -le $(( b1 - 16 * 2048 * 3 / 4 )) ]
}
c_flush() { # a FLUSH through blkfront makes the backend sync the file: ext4 then flushes /dev/vda
  local be=/local/domain/0/backend/$([ "$SUITE" = kernel ] && echo vbd || echo qdisk)/0/$(devid xvdb)
  echo "feature-flush-cache=$(xenstore-read $be/feature-flush-cache) write_cache=$(cat /sys/block/xvdb/queue/write_cache)"
  [ "$(xenstore-read $be/feature-flush-cache)" = 1 ] && [ "$(cat /sys/block/xvdb/queue/write_cache)" = "write back" ] || return 1
  local f0 f1 f2
  dd if=/dev/urandom of=/dev/xvdb bs=4k count=16 oflag=direct 2>/dev/null; sleep 1
  f0=$(awk '$3 == "vda" { print $19 }' /proc/diskstats)
  dd if=/dev/urandom of=/dev/xvdb bs=4k count=16 oflag=direct 2>/dev/null
  f1=$(awk '$3 == "vda" { print $19 }' /proc/diskstats)
  dd if=/dev/urandom of=/dev/xvdb bs=4k count=16 oflag=direct conv=fsync 2>/dev/null
  fio --name=f --filename=/dev/xvdb --rw=write --bs=4k --size=256k --direct=1 --fsync=1 >/dev/null || return 1
  f2=$(awk '$3 == "vda" { print $19 }' /proc/diskstats)
  echo "vda flushes: $f0 before, $f1 after plain writes, $f2 after fsync"
  [ "$f2" -gt "$f1" ]
}
c_qcow2() { # written through blkfront; qemu-img check and compare against the same writes on a raw file
  qemu-img create -q -f qcow2 $S/q.qcow2 64M && truncate -s 64M $S/q-ref.raw && mkpat $S/pat 4 || return 1
  attach xvdc $S/q.qcow2 qcow2 || return 1
  sectors_ok xvdc $S/q-ref.raw || { echo "size $(cat /sys/block/xvdc/size)"; return 1; }
  for off in 1 40 60; do
    dd if=$S/pat of=/dev/xvdc bs=1M seek=$off oflag=direct conv=fsync 2>/dev/null || return 1
    dd if=$S/pat of=$S/q-ref.raw bs=1M seek=$off conv=notrunc 2>/dev/null
  done
  [ "$(md5r /dev/xvdc 16 64)" = "$(md5sum < $S/pat | cut -d' ' -f1)" ] || { echo "read back differs"; return 1; }
  detach xvdc || return 1
  qemu-img check -f qcow2 $S/q.qcow2 && qemu-img compare -f qcow2 -F raw $S/q.qcow2 $S/q-ref.raw
}
c_reattach() {
  mkpat $S/pat2 2; dd if=$S/pat2 of=/dev/xvdb bs=1M seek=10 oflag=direct conv=fsync 2>/dev/null
  local want=$(md5sum < $S/pat2 | cut -d' ' -f1)
  detach xvdb || { echo "detach failed"; return 1; }
  [ "$(md5r $S/a.img 160 32 none)" = "$want" ] || { echo "file differs after detach"; return 1; }
  attach xvdb $S/a.img || { echo "re-attach failed"; return 1; }
  [ "$(md5r /dev/xvdb 160 32)" = "$want" ]
}
c_two() {
  truncate -s 64M $S/b.img; attach xvdd $S/b.img || return 1
  local p1 p2 r=0
  fio --name=a --filename=/dev/xvdb --rw=randwrite --bs=4k --iodepth=8 --ioengine=libaio --direct=1 --size=4m \
    --verify=crc32c --verify_fatal=1 > /tmp/fa.out 2>&1 & p1=$!
  fio --name=b --filename=/dev/xvdd --rw=randwrite --bs=4k --iodepth=8 --ioengine=libaio --direct=1 --size=4m \
    --verify=crc32c --verify_fatal=1 > /tmp/fb.out 2>&1 & p2=$!
  wait $p1 || { r=1; tail /tmp/fa.out; }; wait $p2 || { r=1; tail /tmp/fb.out; }
  [ $r = 0 ] && detach xvdd
}
c_hostile() { # garbage from a fake frontend; then the backend lives and xvdb still reads
  truncate -s 16M $S/h.img
  local want=$(md5r $S/a.img 0 64 none) extra=
  if [ "$SUITE" = kernel ]; then
    extra="$(losetup -f)"; losetup $extra $S/h.img
    extra=$(printf '%x:%x' $(stat -c '0x%t 0x%T' $extra))
    hostile-front vbd $(devid xvdy) $S/h.img $extra
  else
    hostile-front qdisk $(devid xvdy) raw:$S/h.img
  fi
  local r=$?
  [ "$SUITE" = kernel ] || alive || { echo "xen-blkback died"; r=1; }
  [ "$(md5r /dev/xvdb 0 64)" = "$want" ] || { echo "xvdb no longer reads right"; r=1; }
  return $r
}
c_domu() { # a PV domU's xen-blkfront (another domain: foreign grants) reads and writes through the backend
  mkpat $S/du.img 16; rm -f /var/log/xen/console/guest-du.log
  local want=$(md5sum < $S/du.img | cut -d' ' -f1) bt=qdisk d i
  [ "$SUITE" = kernel ] && bt=phy
  printf '%s\n' 'name = "du"' 'type = "pv"' 'kernel = "/root/vmlinuz"' 'ramdisk = "/root/initrd-domu.gz"' \
    'extra = "console=hvc0 quiet"' 'memory = 128' 'vcpus = 1' 'on_poweroff = "destroy"' > /tmp/du.cfg
  # Under TCG a PV domU now and then dies while libxenguest builds it (xl create returns 0, the
  # domain is gone): the toolstack's step, before any disk exists, so it gets a second try.
  for i in 1 2; do
    xl create /tmp/du.cfg || return 1
    d=$(xl list | awk '$1 == "du" { print $2 }'); echo "domU id $d (try $i)"; [ -n "$d" ] && break
    xl destroy du 2>/dev/null; sleep 1
  done
  [ -n "$d" ] || return 1
  # libxl wants a device model for qdisk; it kills that pid when the domain goes: a sleep, never pid 1.
  sleep 600 & xenstore-write /local/domain/$d/image/device-model-pid $!
  xl block-attach $d "format=raw,vdev=xvda,access=rw,backendtype=$bt,target=$S/du.img" || return 1
  for i in $(seq 900); do grep -q 'DOMU done' /var/log/xen/console/guest-du.log 2>/dev/null && break; sleep 0.1; done
  grep DOMU /var/log/xen/console/guest-du.log
  timeout 20 xl destroy du 2>/dev/null
  grep -q "DOMU size=32768 md5=$want" /var/log/xen/console/guest-du.log &&
    grep -q 'DOMU wrote rc=0' /var/log/xen/console/guest-du.log &&
    [ "$(md5r $S/du.img 16 1 none)" = "$(yes tgtkit-domu | head -c 65536 | md5sum | cut -d' ' -f1)" ]
}
export -f c_fs c_discard c_domu c_flush c_qcow2 c_reattach c_two c_hostile

if [ "$SUITE" != none ]; then
  t "checks against $([ "$SUITE" = kernel ] && echo "the kernel's xen-blkback" || echo "our xen-blkback")"
  truncate -s 64M $S/a.img
  check 40 blkfront-sees-disk bash -c "attach xvdb $S/a.img && test -b /dev/xvdb && sectors_ok xvdb $S/a.img"
  if [ -b /dev/xvdb ]; then
    check 120 ext4-mkfs-fsck-mount c_fs
    check 180 fio-verify-randwrite-qd16 fio --name=v --filename=/dev/xvdb --rw=randwrite --bs=4k --iodepth=16 \
      --ioengine=libaio --direct=1 --size=8m --verify=crc32c --do_verify=1 --verify_fatal=1
    checkv 60 discard-reaches-file c_discard
    checkv 60 flush-reaches-file c_flush
    if [ "$SUITE" = kernel ]; then skip qcow2-through-blkfront "the kernel's blkback has no qcow2"
    else check 120 qcow2-through-blkfront c_qcow2; fi
    check 90 detach-reattach-data-intact c_reattach
    check 180 two-disks-at-once c_two
    checkv 120 hostile-frontend c_hostile
  fi
  [ "$SUITE" = kernel ] || check 5 xen-blkback-alive-after-checks alive
fi

# --- our xen-scsiback against the kernel's xen-scsifront (dom0 self-attach) -----------
salive() { [ -n "$SB" ] && kill -0 $SB 2>/dev/null; }
sb_start() {
  RUST_LOG=${RUST_LOG:-info} xen-scsiback >> /tmp/xs.log 2>&1 & SB=$!
  for i in $(seq 100); do grep -q 'xen-scsiback: watching backend/vscsi' /tmp/xs.log && return 0; sleep 0.1; done
  return 1
}
c_scsi_inq() { # INQUIRY and READ CAPACITY through scsifront; the size is the file's
  sg_inq /dev/$SA | tee /dev/stderr | grep -q 'Vendor identification: TGTKIT' &&
    sg_readcap /dev/$SA | tee /dev/stderr | grep -q "Last LBA=$(( $(stat -c %s $S/v.img) / 512 - 1 ))" &&
    sectors_ok $SA $S/v.img
}
c_scsi_pr() { # two vhosts (two I_T nexuses) on one p-dev: register both, WRITE EXCLUSIVE from A
  local before=$(sdlist) r=0
  vhost_add 2 file:$S/v.img 0:0:0:0 || return 1
  SB2=$(newsd "$before" 20) || { echo "second vhost: no disk"; return 1; }
  echo "vhost 1: $SA, vhost 2: $SB2"
  sg_persist -n --out --register --param-sark=0xa1 /dev/$SA && sg_persist -n --out --register --param-sark=0xb2 /dev/$SB2 &&
    sg_persist -n --out --reserve --param-rk=0xa1 --prout-type=1 /dev/$SA || r=1
  sg_persist -n --in -k /dev/$SB2 | tee /dev/stderr | grep -q 0xb2 || r=1
  sg_persist -n --in -r /dev/$SB2 | tee /dev/stderr | grep -q 'Key=0xa1' || r=1
  dd if=/dev/urandom of=/dev/$SA bs=4k count=1 oflag=direct 2>/dev/null || { echo "holder cannot write"; r=1; }
  if dd if=/dev/urandom of=/dev/$SB2 bs=4k count=1 oflag=direct 2>/dev/null; then echo "non-holder wrote"; r=1; fi
  dd if=/dev/$SB2 of=/dev/null bs=4k count=1 iflag=direct 2>/dev/null || { echo "non-holder cannot read"; r=1; }
  sg_persist -n --out --clear --param-rk=0xa1 /dev/$SA || r=1
  dd if=/dev/urandom of=/dev/$SB2 bs=4k count=1 oflag=direct 2>/dev/null || { echo "write after CLEAR refused"; r=1; }
  vhost_del 2 || { echo "vhost 2 detach"; r=1; }
  waitgone $SB2 10 || { echo "$SB2 still there"; r=1; }
  return $r
}
c_scsi_hotplug() { # dev-1 added to a running vhost, then removed (the xenbus Reconfiguring round)
  local be=/local/domain/0/backend/vscsi/0/1 before=$(sdlist) n
  xenstore-write $be/vscsi-devs/dev-1/p-dev ram:32M $be/vscsi-devs/dev-1/v-dev 0:0:1:0 $be/vscsi-devs/dev-1/state 1 &&
    xenstore-write $be/state 7 || return 1
  n=$(newsd "$before" 20) || { echo "no hot-added disk; dev-1 state $(xenstore-read $be/vscsi-devs/dev-1/state)"; return 1; }
  echo "hot-added $n ($(cat /sys/block/$n/size) sectors), dev-1 state $(xenstore-read $be/vscsi-devs/dev-1/state)"
  [ "$(cat /sys/block/$n/size)" = 65536 ] || return 1
  dd if=/dev/urandom of=/dev/$n bs=64k count=4 oflag=direct 2>/dev/null || return 1
  for i in $(seq 50); do [ "$(xenstore-read $be/state)" = 4 ] && break; sleep 0.1; done
  xenstore-write $be/vscsi-devs/dev-1/state 5 && xenstore-write $be/state 7 || return 1
  waitgone $n 20 || { echo "$n still there"; return 1; }
  for i in $(seq 50); do [ "$(xenstore-read $be/state)" = 4 ] && break; sleep 0.1; done
  echo "after removal: dev-1 state $(xenstore-read $be/vscsi-devs/dev-1/state), vhost state $(xenstore-read $be/state)"
  [ "$(xenstore-read $be/vscsi-devs/dev-1/state)" = 6 ] && [ "$(md5r /dev/$SA 0 16)" = "$(md5r $S/v.img 0 16 none)" ]
}
export -f salive c_scsi_inq c_scsi_pr c_scsi_hotplug
SB=
if [ "$SUITE" = ours ] && [ -x /usr/bin/xen-scsiback ]; then
  t "checks against our xen-scsiback"
  for m in scsi_mod sd_mod sg xen-scsifront; do modprobe $m || fail modprobe-$m; done
  check 5 kernel-scsiback-not-loaded bash -c "! grep -q '^xen_scsiback ' /proc/modules"
  if sb_start; then pass xen-scsiback-ready; else fail xen-scsiback-ready; sed 's/^/    | /' /tmp/xs.log | tail; fi
  export SB
  truncate -s 64M $S/v.img
  before=$(sdlist)
  if salive && vhost_add 1 file:$S/v.img 0:0:0:0 && SA=$(newsd "$before" 30); then
    pass scsifront-sees-disk; export SA
    checkv 30 scsi-inquiry-readcap c_scsi_inq
    check 120 scsi-ext4-mkfs-fsck-mount c_fs /dev/$SA
    check 180 scsi-fio-verify-randwrite-qd16 fio --name=v --filename=/dev/$SA --rw=randwrite --bs=4k --iodepth=16 \
      --ioengine=libaio --direct=1 --size=8m --verify=crc32c --do_verify=1 --verify_fatal=1
    # sg_reset -d: scsifront's device reset handler sends VSCSIIF_ACT_SCSI_RESET (LOGICAL UNIT RESET).
    check 60 scsi-lun-reset bash -c "sg_reset -d /dev/$SA && dd if=/dev/$SA of=/dev/null bs=4k count=4 iflag=direct"
    checkv 90 scsi-persistent-reservations-two-vhosts c_scsi_pr
    checkv 90 scsi-lun-hotplug c_scsi_hotplug
    check 30 scsi-vhost-detach bash -c "vhost_del 1 && waitgone $SA 10"
  else
    fail scsifront-sees-disk; sed 's/^/    | /' /tmp/xs.log | tail
  fi
  check 5 xen-scsiback-alive-after-checks salive
elif [ "$SUITE" = ours ]; then
  fail xen-scsiback-in-initramfs "no /usr/bin/xen-scsiback: its checks did not run"
fi

# --- kill -9 of xen-blkback with fio in flight (last of ours: the frontend may stay stuck) --
if [ "$SUITE" = ours ]; then
  t "kill -9 with fio in flight"
  qemu-img create -q -f qcow2 $S/k.qcow2 64M
  if attach xvdk $S/k.qcow2 qcow2; then
    timeout 90 fio --name=k --filename=/dev/xvdk --rw=randwrite --bs=4k --iodepth=16 --ioengine=libaio --direct=1 \
      --time_based --runtime=20 --size=48m > /tmp/fk.out 2>&1 & FK=$!
    sleep 4; kill -9 $BB; wait $BB 2>/dev/null
    # rc 0: clean; 3: leaked clusters only (allowed after a crash); 2: corruption.
    check 30 kill9-qcow2-not-corrupt bash -c "qemu-img check -f qcow2 $S/k.qcow2; r=\$?; [ \$r = 0 ] || [ \$r = 3 ]"
    if bb_start; then pass kill9-restart-ready; else fail kill9-restart-ready; fi
    export BB
    # The frontend must recover or fail cleanly: fio ends (an I/O stuck in D state would not, and
    # timeout could not end it: so poll, never wait), then a read ends, with data or with an error.
    for i in $(seq 60); do kill -0 $FK 2>/dev/null || break; sleep 1; done
    if kill -0 $FK 2>/dev/null; then fail kill9-fio-ends "fio stuck 60 s after the restart"
      dmesg | grep -iE 'blkfront|xvdk|vbd' | tail -8 | sed 's/^/    dmesg: /'
      grep 51872 /tmp/xb.log | tail -6 | sed 's/^/    xb: /'
    else pass kill9-fio-ends; tail -3 /tmp/fk.out | sed 's/^/    fio: /'; fi
    dd if=/dev/xvdk of=/dev/null bs=4k count=16 iflag=direct > /tmp/dk.out 2>&1 & DK=$!
    for i in $(seq 300); do kill -0 $DK 2>/dev/null || break; sleep 0.1; done
    if kill -0 $DK 2>/dev/null; then fail kill9-frontend-read-ends "a read of xvdk still blocked after 30 s"
    else wait $DK; echo "    read after restart: rc=$? $(tail -1 /tmp/dk.out)"; pass kill9-frontend-read-ends; fi
    check 5 xen-blkback-alive-after-restart alive
  else fail kill9-attach-qcow2; fi
fi

# --- baseline 2: the kernel's xen-blkback, dom0 self-attach over a file -------------
t "baseline: kernel blkback"
modprobe xen-blkback
mkpat $S/k.img 16
c_kernel_self() {
  timeout 30 xl block-attach 0 "format=raw,vdev=xvdm,access=rw,target=$S/k.img" && waitblk xvdm 20 &&
    [ "$(md5r /dev/xvdm 0 256)" = "$(md5r $S/k.img 0 256 none)" ] && mkpat /tmp/kp 1 &&
    dd if=/tmp/kp of=/dev/xvdm bs=64k seek=5 oflag=direct conv=fsync 2>/dev/null && detach xvdm &&
    [ "$(md5r $S/k.img 5 16 none)" = "$(md5sum < /tmp/kp | cut -d' ' -f1)" ]
}
export -f c_kernel_self
check 90 baseline-kernel-blkback-self-attach c_kernel_self

# --- figures ---------------------------------------------------------------------------
if [ "${VMXEN_PERF:-1}" = 1 ]; then
  t "figures (${PERF_SECONDS} s per run)"
  dd if=/dev/zero of=$S/perf.img bs=1M count=128 conv=fsync 2>/dev/null   # allocated, not sparse
  if [ "$SUITE" = ours ] && alive; then
    if attach xvdp $S/perf.img; then
      O_R=$(fio_iops /dev/xvdp randread $PERF_SECONDS); O_W=$(fio_iops /dev/xvdp randwrite $PERF_SECONDS)
      detach xvdp
    fi
  fi
  if timeout 30 xl block-attach 0 "format=raw,vdev=xvdq,access=rw,target=$S/perf.img" && waitblk xvdq 20; then
    K_R=$(fio_iops /dev/xvdq randread $PERF_SECONDS); K_W=$(fio_iops /dev/xvdq randwrite $PERF_SECONDS)
    detach xvdq
  fi
  echo "@@PERF blk-randread-4k-qd16 xen-blkback=${O_R:-n/a} kernel-blkback=${K_R:-n/a} ratio=$(ratio ${O_R:-0} ${K_R:-0})"
  echo "@@PERF blk-randwrite-4k-qd16 xen-blkback=${O_W:-n/a} kernel-blkback=${K_W:-n/a} ratio=$(ratio ${O_W:-0} ${K_W:-0})"
  # Ours first (the kernel's xen-scsiback module would take every backend/vscsi device).
  if salive; then
    before=$(sdlist)
    if vhost_add 3 file:$S/perf.img 0:0:0:0 && P=$(newsd "$before" 30); then
      O_SR=$(fio_iops /dev/$P randread $PERF_SECONDS); O_SW=$(fio_iops /dev/$P randwrite $PERF_SECONDS)
      vhost_del 3; waitgone $P 10
    fi
    kill -TERM $SB
    for i in $(seq 100); do salive || break; sleep 0.1; done
    wait $SB; rc=$?
    [ $rc = 0 ] && pass xen-scsiback-sigterm-exit-0 || fail xen-scsiback-sigterm-exit-0 "rc=$rc"
  fi
  # xen-scsiback + LIO fileio through xen-scsifront; xl has no vscsi commands: keys by hand.
  mkdir -p /etc/target/pr /etc/target/alua
  for m in configfs target_core_mod target_core_file xen-scsiback scsi_mod sd_mod sg xen-scsifront; do modprobe $m; done
  mount -t configfs configfs /sys/kernel/config; C=/sys/kernel/config/target
  F=$C/core/fileio_0/f0; mkdir -p $F
  echo -n fd_dev_name=$S/perf.img,fd_dev_size=$((128 << 20)) > $F/control; echo -n 1 > $F/enable
  P=$C/xen-pvscsi/naa.5001405000000001/tpgt_1; mkdir -p $P/lun/lun_0
  echo -n naa.5001405000000002 > $P/nexus; ln -s $F $P/lun/lun_0/xen-pvscsi_port
  BE=/local/domain/0/backend/vscsi/0/0; FE=/local/domain/0/device/vscsi/0
  xenstore-write $FE/backend $BE $FE/backend-id 0
  xenstore-write $BE/frontend $FE $BE/frontend-id 0 $BE/online 1 $BE/feature-host 0 \
    $BE/vscsi-devs/dev-0/p-dev naa.5001405000000001:0 $BE/vscsi-devs/dev-0/v-dev 0:0:0:0 $BE/vscsi-devs/dev-0/state 1
  xenstore-write $FE/state 1; xenstore-write $BE/state 1
  if P=$(newsd "" 20); then
    V_R=$(fio_iops /dev/$P randread $PERF_SECONDS); V_W=$(fio_iops /dev/$P randwrite $PERF_SECONDS)
  fi
  echo "@@PERF scsi-randread-4k-qd16 xen-scsiback=${O_SR:-n/a} kernel-scsiback-lio-fileio=${V_R:-n/a} ratio=$(ratio ${O_SR:-0} ${V_R:-0})"
  echo "@@PERF scsi-randwrite-4k-qd16 xen-scsiback=${O_SW:-n/a} kernel-scsiback-lio-fileio=${V_W:-n/a} ratio=$(ratio ${O_SW:-0} ${V_W:-0})"
fi

# --- a PV domU's blkfront through the backend: last, because under TCG building a PV domU now
# and then corrupts dom0 processes (xl's malloc, segfaults of xenstore-write, grep, sleep, and
# once our own xen-blkback) for the rest of the run; whatever it breaks, nothing else runs after.
if [ "$SUITE" != none ]; then
  if [ "${VMXEN_DOMU:-1}" != 1 ]; then skip domu-blkfront-read-write VMXEN_DOMU=0
  elif [ "$SUITE" = kernel ] || alive; then checkv 150 domu-blkfront-read-write c_domu
  else fail domu-blkfront-read-write "xen-blkback is not running"; fi
fi

# Stop ours: SIGTERM closes its devices (state 6) and it exits 0.
if [ -n "$BB" ] && alive; then
  kill -TERM $BB
  for i in $(seq 100); do alive || break; sleep 0.1; done
  wait $BB; rc=$?
  [ $rc = 0 ] && pass xen-blkback-sigterm-exit-0 || fail xen-blkback-sigterm-exit-0 "rc=$rc"
fi
echo "--- xen-blkback log (tail)"; tail -20 /tmp/xb.log 2>/dev/null
echo "--- xen-scsiback log (tail)"; tail -20 /tmp/xs.log 2>/dev/null
umount $S 2>/dev/null
finish
