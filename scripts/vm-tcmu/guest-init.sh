#!/bin/sh
# /init of the TCMU VM test (runs as PID 1 in the guest).
#
# Loads LIO, creates a user backstore (core/user_0/dev0, dev_config
# file//tmp/backing.img), starts tcmu-handler, exposes the device through
# tcm_loop and checks it as the kernel's SCSI initiator sees it. Every
# check prints "@@CHECK PASS|FAIL <name>"; the host script counts them.
# Figures print as "@@PERF ..." and iscsi-test-cu's summary as "@@ISCSI ...".
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs -o size=1200m tmp /tmp
echo 1 > /proc/sys/kernel/printk 2>/dev/null

pass() { echo "@@CHECK PASS $1"; }
fail() { echo "@@CHECK FAIL $1${2:+ ($2)}"; }
check() { name=$1; shift; if "$@" > /tmp/check.out 2>&1; then pass "$name"; else fail "$name"; sed 's/^/    | /' /tmp/check.out | tail -20; fi; }
finish() {
  echo "@@DONE"
  sync
  echo o > /proc/sysrq-trigger
  sleep 5
  poweroff -f
}

for m in $(cat /lib/modules/load-order); do
  insmod "/lib/modules/$m" 2>/tmp/insmod.err || { fail "insmod-$m" "$(cat /tmp/insmod.err)"; }
done
mount -t configfs configfs /sys/kernel/config || { fail configfs; finish; }
C=/sys/kernel/config/target
SIZE=$((192 * 1024 * 1024))
BLOCKS=$((SIZE / 512))
BACKING=/tmp/backing.img

# --- the user backstore ------------------------------------------------------
D=$C/core/user_0/dev0
mkdir -p $D
echo -n "dev_size=$SIZE" > $D/control
echo -n "dev_config=file/$BACKING" > $D/control
echo -n "hw_block_size=512" > $D/control
echo 1 > $D/attrib/emulate_write_cache
echo 1 > $D/attrib/tmr_notification
echo 1 > $D/enable || { fail enable-user-device; finish; }
check uio-device-present test -c /dev/uio0
check uio-name-is-tcm-user grep -q "^tcm-user/0/dev0/file/$BACKING" /sys/class/uio/uio0/name

RUST_LOG=${RUST_LOG:-info} tcmu-handler > /tmp/handler.log 2>&1 &
HANDLER=$!
for i in $(seq 1 50); do grep -q "serving TCMU device" /tmp/handler.log && break; sleep 0.2; done
check handler-serves-dev0 grep -q "serving TCMU device" /tmp/handler.log
check backing-file-created-at-dev-size sh -c "[ \$(stat -c %s $BACKING) -eq $SIZE ]"

# --- tcm_loop: nexus before the LUN link -------------------------------------
T=$C/loopback/naa.5001405000000001/tpgt_1
mkdir -p $T/lun/lun_0
echo naa.5001405000000002 > $T/nexus
ln -s $D $T/lun/lun_0/tcmu
SD=
for i in $(seq 1 300); do
  for h in /sys/class/scsi_disk/*; do
    [ -e "$h/device/block" ] || continue
    SD=/dev/$(ls "$h/device/block" | head -1)
    SG=/dev/$(ls "$h/device/scsi_generic" | head -1)
  done
  [ -n "$SD" ] && [ -b "$SD" ] && break
  sleep 0.2
done
if [ -z "$SD" ]; then fail scsi-disk-appears; tail -30 /tmp/handler.log; dmesg | tail -30; finish; fi
pass scsi-disk-appears
echo "disk $SD, generic $SG"

# --- identity and capacity as the engine reports them ------------------------
sg_turs $SD > /dev/null 2>&1; sg_turs $SD > /dev/null 2>&1
sg_inq $SD > /tmp/inq.txt 2>&1
cat /tmp/inq.txt | grep -E "identification|revision|PQual"
check inquiry-vendor grep -q "Vendor identification: TGTKIT" /tmp/inq.txt
check inquiry-product grep -q "Product identification: VIRTUAL-DISK" /tmp/inq.txt
check inquiry-peripheral-type-disk grep -q "PDT=0 " /tmp/inq.txt
sg_readcap $SD > /tmp/cap.txt 2>&1
grep -E "Last LBA|block length" /tmp/cap.txt
check readcap-last-lba grep -q "Last LBA=$((BLOCKS - 1)) " /tmp/cap.txt
check readcap-block-length grep -q "Logical block length=512 bytes" /tmp/cap.txt
sg_readcap --16 $SD > /tmp/cap16.txt 2>&1
check readcap16-last-lba grep -q "Last LBA=$((BLOCKS - 1)) " /tmp/cap16.txt
check vpd-device-identification sh -c "sg_vpd -p di $SD | grep -qi 'designator type'"
check block-device-size sh -c "[ \$(cat /sys/block/${SD#/dev/}/size) -eq $BLOCKS ]"

if [ "${SKIP_FUNCTIONAL:-0}" != 1 ]; then
# --- a filesystem on it --------------------------------------------------------
check mkfs-ext4 mkfs.ext4 -q -F $SD
mkdir -p /mnt/t
check mount-ext4 mount -t ext4 $SD /mnt/t
for n in 1 2 3; do dd if=/dev/urandom of=/tmp/f$n bs=1M count=6 2>/dev/null; cp /tmp/f$n /mnt/t/f$n; done
mkdir -p /mnt/t/dir; for n in $(seq 1 200); do echo "file $n" > /mnt/t/dir/s$n; done
sync
check umount-ext4 umount /mnt/t
check fsck-clean e2fsck -f -n $SD
echo 3 > /proc/sys/vm/drop_caches
check remount-ext4 mount -t ext4 -o ro $SD /mnt/t
check files-intact sh -c "cmp /tmp/f1 /mnt/t/f1 && cmp /tmp/f2 /mnt/t/f2 && cmp /tmp/f3 /mnt/t/f3 && [ \"\$(cat /mnt/t/dir/s200)\" = 'file 200' ]"
umount /mnt/t

# --- fio verify on the raw device ------------------------------------------------
check fio-crc32c-verify fio --name=verify --filename=$SD --direct=1 --ioengine=libaio --iodepth=16 \
  --rw=randwrite --bs=4k --size=48m --offset=64m --verify=crc32c --do_verify=1 --verify_fatal=1 \
  --output=/tmp/fio-verify.txt
grep -E "IOPS|err=" /tmp/fio-verify.txt | head -3

# --- what goes through /dev/sdX lands in the backing file, and back -----------
dd if=/dev/urandom of=/tmp/pattern bs=1M count=4 2>/dev/null
dd if=/tmp/pattern of=$SD bs=1M seek=150 oflag=direct conv=fsync 2>/dev/null
dd if=$BACKING of=/tmp/from-file bs=1M skip=150 count=4 2>/dev/null
check write-through-target-lands-in-backing-file cmp /tmp/pattern /tmp/from-file
dd if=/dev/urandom of=/tmp/pattern2 bs=1M count=4 2>/dev/null
dd if=/tmp/pattern2 of=$BACKING bs=1M seek=170 conv=notrunc,fsync 2>/dev/null
dd if=$SD of=/tmp/from-disk bs=1M skip=170 count=4 iflag=direct 2>/dev/null
check backing-file-data-reads-through-target cmp /tmp/pattern2 /tmp/from-disk

# --- netlink: a device added while the handler runs, then resized -------------
D1=$C/core/user_0/dev1
mkdir -p $D1
echo -n "dev_size=$((32 * 1024 * 1024))" > $D1/control
echo -n "dev_config=ram/" > $D1/control
echo 1 > $D1/enable
for i in $(seq 1 50); do grep -q "dev=dev1" /tmp/handler.log && break; sleep 0.2; done
check netlink-added-device-served grep -q "serving TCMU device.*dev=dev1" /tmp/handler.log
mkdir -p $T/lun/lun_1
ln -s $D1 $T/lun/lun_1/ram
SD1=
for i in $(seq 1 150); do
  for h in /sys/class/scsi_disk/*:1; do
    [ -e "$h/device/block" ] && SD1=/dev/$(ls "$h/device/block" | head -1)
  done
  [ -n "$SD1" ] && [ -b "$SD1" ] && break
  sleep 0.2
done
check ram-device-readcap sh -c "sg_readcap $SD1 | grep -q 'Last LBA=65535 '"
echo $((64 * 1024 * 1024)) > $D1/attrib/dev_size
check netlink-reconfig-size-applied grep -q "device size changed" /tmp/handler.log
sg_turs $SD1 > /tmp/ua.txt 2>&1
check capacity-changed-unit-attention grep -qi "capacity data has changed" /tmp/ua.txt
check ram-device-new-capacity sh -c "sg_readcap $SD1 | grep -q 'Last LBA=131071 '"
echo 0 > $D1/attrib/emulate_write_cache
check netlink-reconfig-write-cache grep -q "write cache changed.*write_cache=false" /tmp/handler.log
rm $T/lun/lun_1/ram; rmdir $T/lun/lun_1
rmdir $D1
for i in $(seq 1 25); do grep -q "device released dev=0/dev1" /tmp/handler.log && break; sleep 0.2; done
check netlink-removed-device-released grep -q "device released dev=0/dev1" /tmp/handler.log
# A dev_config with no handler is refused, and the kernel fails the enable.
D2=$C/core/user_0/dev2
mkdir -p $D2
echo -n "dev_size=$((8 * 1024 * 1024))" > $D2/control
echo -n "dev_config=rbd/pool/image" > $D2/control
if echo 1 > $D2/enable 2>/dev/null; then fail unknown-subtype-refused "enable succeeded"; else pass unknown-subtype-refused; fi
check unknown-subtype-logged grep -q 'no handler for subtype "rbd"' /tmp/handler.log
rmdir $D2 2>/dev/null

fi # SKIP_FUNCTIONAL

# --- libiscsi's test suite through SG_IO (reported, not counted) ---------------
# One run per suite (the whole list does not fit the time budget under TCG);
# each prints its CUnit "tests" summary line: total ran passed failed.
if [ "${SKIP_ISCSI_TEST:-0}" != 1 ]; then
  SUITES=${ISCSI_SUITES:-"TestUnitReady Inquiry Mandatory ReadCapacity10 ReadCapacity16 Read10 Read16 Write10 Write16 Verify10 WriteVerify10 WriteSame10 WriteSame16 Unmap GetLBAStatus CompareAndWrite ModeSense6 ReportSupportedOpcodes StartStopUnit PreventAllow Prefetch10"}
  for suite in $SUITES; do
    timeout ${ISCSI_SUITE_TIMEOUT:-90} iscsi-test-cu -d -n -t "SCSI.$suite" "$SG" > /tmp/iscsi-$suite.txt 2>&1
    rc=$?
    line=$(grep -E "^ +tests +[0-9]" /tmp/iscsi-$suite.txt | tail -1 | awk '{print "total=" $2, "ran=" $3, "passed=" $4, "failed=" $5}')
    echo "@@ISCSI SCSI.$suite rc=$rc ${line:-no-summary}"
    grep -E "FAILED|had failures|^ +[0-9]+\. " /tmp/iscsi-$suite.txt | sed "s/^ */@@ISCSI-FAIL SCSI.$suite /" | head -12
  done
fi

# --- performance: tcmu-handler file vs LIO fileio on the same file ------------
if [ "${SKIP_PERF:-0}" != 1 ]; then
  F=$C/core/fileio_1/fio0
  mkdir -p $F
  echo -n "fd_dev_name=$BACKING,fd_dev_size=$SIZE,fd_buffered_io=1" > $F/control
  echo 1 > $F/enable
  mkdir -p $T/lun/lun_2
  ln -s $F $T/lun/lun_2/fileio
  SDF=
  for i in $(seq 1 150); do
    for h in /sys/class/scsi_disk/*:2; do
      [ -e "$h/device/block" ] && SDF=/dev/$(ls "$h/device/block" | head -1)
    done
    [ -n "$SDF" ] && [ -b "$SDF" ] && break
    sleep 0.2
  done
  sg_turs $SDF > /dev/null 2>&1
  RT=${PERF_SECONDS:-15}
  iops() { # dev rw -> IOPS
    fio --name=p --filename=$1 --direct=1 --ioengine=libaio --iodepth=16 --rw=$2 --bs=4k \
      --size=128m --time_based --runtime=$RT --ramp_time=2 --norandommap --randrepeat=0 \
      --output-format=terse --terse-version=3 2>/dev/null |
      awk -F';' -v rw=$2 '{ if (rw == "randread") print int($8); else print int($49) }'
  }
  for rw in randread randwrite; do
    t=$(iops $SD $rw); k=$(iops $SDF $rw)
    echo "@@PERF $rw tcmu-handler-file=$t lio-fileio=$k ratio=$(awk -v a=$t -v b=$k 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "n/a" }')"
  done
fi

# --- clean shutdown on SIGTERM -------------------------------------------------
kill -TERM $HANDLER
for i in $(seq 1 50); do kill -0 $HANDLER 2>/dev/null || break; sleep 0.2; done
wait $HANDLER; rc=$?
check handler-clean-shutdown sh -c "[ $rc -eq 0 ] && grep -q 'shutting down' /tmp/handler.log"
check handler-logged-no-unexpected-errors sh -c "! grep -E ' ERROR ' /tmp/handler.log | grep -v 'refusing device'"
echo "--- handler log (tail) ---"; tail -15 /tmp/handler.log
finish
