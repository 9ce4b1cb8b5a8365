#!/bin/sh
# /init of the TCMU VM test (runs as PID 1 in the guest).
#
# Loads LIO, creates a user backstore (core/user_0/dev0, dev_config
# file//q/backing.img on an ext4 ram disk, reservations passed through to the handler),
# starts tcmu-handler, exposes the device through tcm_loop and checks it as
# the kernel's SCSI initiator sees it: identity, a filesystem, fio verify,
# the backing file, netlink add/resize/remove, APTPL across a handler
# restart, then libiscsi's whole test list through /dev/sgN, then the
# performance comparisons (LIO fileio; tcmu-runner's qcow handler). Every
# check prints "@@CHECK PASS|FAIL <name>"; the host script counts them.
# Figures print as "@@PERF ...", iscsi-test-cu's summary as "@@ISCSI ...",
# its failed tests as "@@ISCSI-FAIL Suite.Test", suite starts as "@@SUITE".
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs -o size=1200m tmp /tmp
echo 1 > /proc/sys/kernel/printk 2>/dev/null

pass() { echo "@@CHECK PASS $1"; }
fail() { echo "@@CHECK FAIL $1${2:+ ($2)}"; }
check() { name=$1; shift; if "$@" > /tmp/check.out 2>&1; then pass "$name"; else fail "$name"; sed 's/^/    | /' /tmp/check.out | tail -20; fi; }
# lun_disk N: the /dev/sdX of tcm_loop LUN N, once the kernel has scanned it.
lun_disk() {
  for i in $(seq 1 150); do
    for h in /sys/class/scsi_disk/*:$1; do
      [ -e "$h/device/block" ] && { echo /dev/$(ls "$h/device/block" | head -1); return 0; }
    done
    sleep 0.2
  done
  return 1
}
finish() {
  echo "@@DONE"
  sync
  echo o > /proc/sysrq-trigger
  sleep 5
  poweroff -f
}

for m in $(cat /lib/modules/load-order); do
  # brd: one 1 GiB ram disk, formatted ext4 for the backing files: tmpfs
  # refuses RWF_NOWAIT (so the handlers' inline fast path would never run)
  # and the fallocate mode tcmu-runner's qcow handler allocates with.
  case $m in brd.ko) args="rd_nr=1 rd_size=1048576" ;; *) args= ;; esac
  insmod "/lib/modules/$m" $args 2>/tmp/insmod.err || { fail "insmod-$m" "$(cat /tmp/insmod.err)"; }
done
mount -t configfs configfs /sys/kernel/config || { fail configfs; finish; }
C=/sys/kernel/config/target
SIZE=$((192 * 1024 * 1024))
BLOCKS=$((SIZE / 512))
mkfs.ext4 -q -F /dev/ram0 && mkdir -p /q && mount -t ext4 /dev/ram0 /q || fail ext4-on-ram-disk
BACKING=/q/backing.img

# --- the user backstore ------------------------------------------------------
D=$C/core/user_0/dev0
mkdir -p $D
echo -n "dev_size=$SIZE" > $D/control
echo -n "dev_config=file/$BACKING" > $D/control
echo -n "hw_block_size=512" > $D/control
echo 1 > $D/attrib/emulate_write_cache
echo 1 > $D/attrib/tmr_notification
echo 1 > $D/enable || { fail enable-user-device; finish; }
# Persistent reservations go to the handler (PGR passthrough), not LIO's
# own emulation, so that the engine's PR code meets the kernel initiator.
check pgr-passthrough sh -c "echo 0 > $D/attrib/pgr_support"
check uio-device-present test -c /dev/uio0
check uio-name-is-tcm-user grep -q "^tcm-user/0/dev0/file/$BACKING" /sys/class/uio/uio0/name

start_handler() {
  RUST_LOG=${RUST_LOG:-info} tcmu-handler --pr-dir /tmp/pr >> /tmp/handler.log 2>&1 &
  HANDLER=$!
}
start_handler
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
SD1=$(lun_disk 1)
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

# --- APTPL: a reservation kept by the handler survives its restart -----------
# LUN 1 came and went: LIO queued REPORTED LUNS DATA HAS CHANGED on LUN 0.
sg_turs $SD > /dev/null 2>&1; sg_turs $SD > /dev/null 2>&1
sg_persist --out --register --param-sark=0xabc123 --param-aptpl $SD > /tmp/pr.txt 2>&1
sg_persist --out --reserve --param-rk=0xabc123 --prout-type=1 $SD >> /tmp/pr.txt 2>&1
sg_persist --in --read-reservation $SD >> /tmp/pr.txt 2>&1
check pr-register-reserve-aptpl grep -q 'Key=0xabc123' /tmp/pr.txt
check pr-state-file-written test -s /tmp/pr/user_0-dev0.pr
kill -TERM $HANDLER; wait $HANDLER
n=$(grep -c "serving TCMU device.*dev=dev0 " /tmp/handler.log)
start_handler
for i in $(seq 1 50); do [ $(grep -c "serving TCMU device.*dev=dev0 " /tmp/handler.log) -gt $n ] && break; sleep 0.2; done
# The new engine reports POWER ON OCCURRED first (SPC-4 §6.x: a restarted
# logical unit is a power on); TEST UNIT READY takes it.
sg_turs $SD > /dev/null 2>&1
sg_persist --in --read-keys $SD > /tmp/prk.txt 2>&1
sg_persist --in --read-reservation $SD > /tmp/prr.txt 2>&1
cat /tmp/prk.txt /tmp/prr.txt | sed 's/^/    | /'
check pr-aptpl-key-survives-handler-restart grep -q "0xabc123" /tmp/prk.txt
check pr-aptpl-reservation-survives-handler-restart sh -c "grep -q 'Key=0xabc123' /tmp/prr.txt && grep -qi 'Write Exclusive' /tmp/prr.txt"
check pr-clear sh -c "sg_persist --out --clear --param-rk=0xabc123 $SD && sg_persist --in --read-keys $SD | grep -q 'there are NO registered'"

# --- ROD token copy (ODX) through the kernel's sg path ----------------------
# POPULATE TOKEN, RECEIVE ROD TOKEN INFORMATION and WRITE USING TOKEN go
# through sg and LIO to the handler from sg_raw, with parameter lists built
# here. ddpt 0.97, the ODX initiator Debian ships, cannot be the peer: it
# puts the first block device range descriptor at byte 15 of POPULATE
# TOKEN's list and at byte 535 of WRITE USING TOKEN's (SBC-4, Windows'
# POPULATE_TOKEN_HEADER, FreeBSD's CTL and ddpt's own earlier releases: 16
# and 536), and with a plain seek= it sends zero blocks. 4 MiB from 120 MiB
# to 130 MiB of dev0, checked in the backing file.
dd if=/dev/urandom of=/tmp/odx bs=1M count=4 2>/dev/null
dd if=/tmp/odx of=$SD bs=1M seek=120 oflag=direct conv=fsync 2>/dev/null
# POPULATE TOKEN, list 101h, 32 bytes: DATA LENGTH 30, default timeout and
# ROD type, one range: LBA 245760 (3C000h), 8192 blocks (2000h).
printf '\000\036\000\000\000\000\000\000\000\000\000\000\000\000\000\020' > /tmp/pt.bin
printf '\000\000\000\000\000\003\300\000\000\000\040\000\000\000\000\000' >> /tmp/pt.bin
check odx-populate-token sg_raw -s 32 -i /tmp/pt.bin $SG 83 10 00 00 00 00 00 00 01 01 00 00 00 20 00 00
check odx-receive-rod-token-information sg_raw -r 1024 -o /tmp/rrti.bin $SG 84 07 00 00 01 01 00 00 00 00 00 00 04 00 00 00
# Completed (01h) POPULATE TOKEN (10h), 8192 blocks, one 514-byte token descriptor.
check odx-rrti-reports-the-token sh -c "[ \"\$(od -An -tx1 -j4 -N2 /tmp/rrti.bin)\" = ' 10 01' ] && [ \"\$(od -An -tx1 -j20 -N4 /tmp/rrti.bin)\" = ' 00 00 20 00' ] && [ \"\$(od -An -tx1 -j32 -N4 /tmp/rrti.bin)\" = ' 00 00 02 02' ]"
dd if=/tmp/rrti.bin of=/tmp/a.rt bs=1 skip=38 count=512 2>/dev/null
# WRITE USING TOKEN, list 102h, 552 bytes: DATA LENGTH 550, the token, one
# range: LBA 266240 (41000h), 8192 blocks.
printf '\002\046\000\000\000\000\000\000\000\000\000\000\000\000\000\000' > /tmp/wut.bin
cat /tmp/a.rt >> /tmp/wut.bin
printf '\000\000\000\000\000\000\000\020' >> /tmp/wut.bin
printf '\000\000\000\000\000\004\020\000\000\000\040\000\000\000\000\000' >> /tmp/wut.bin
check odx-write-using-token sg_raw -s 552 -i /tmp/wut.bin $SG 83 11 00 00 00 00 00 00 01 02 00 00 02 28 00 00
sg_raw -r 1024 -o /tmp/rrti2.bin $SG 84 07 00 00 01 02 00 00 00 00 00 00 04 00 00 00 > /dev/null 2>&1
check odx-rrti-reports-the-write sh -c "[ \"\$(od -An -tx1 -j4 -N2 /tmp/rrti2.bin)\" = ' 11 01' ] && [ \"\$(od -An -tx1 -j20 -N4 /tmp/rrti2.bin)\" = ' 00 00 20 00' ]"
dd if=$BACKING of=/tmp/odx-out bs=1M skip=130 count=4 2>/dev/null
check odx-copy-lands-in-backing-file cmp /tmp/odx /tmp/odx-out
# The block device zero token over the second MiB of the copy.
printf '\002\046\000\000\000\000\000\000\000\000\000\000\000\000\000\000' > /tmp/wutz.bin
printf '\377\377\000\001\000\000\001\370' >> /tmp/wutz.bin
dd if=/dev/zero bs=504 count=1 2>/dev/null >> /tmp/wutz.bin
printf '\000\000\000\000\000\000\000\020' >> /tmp/wutz.bin
printf '\000\000\000\000\000\004\030\000\000\000\010\000\000\000\000\000' >> /tmp/wutz.bin
check odx-zero-token sg_raw -s 552 -i /tmp/wutz.bin $SG 83 11 00 00 00 00 00 00 01 03 00 00 02 28 00 00
dd if=$BACKING of=/tmp/odx-zero bs=1M skip=131 count=1 2>/dev/null
dd if=/dev/zero of=/tmp/zero-1m bs=1M count=1 2>/dev/null
check odx-zero-token-zeroes cmp /tmp/odx-zero /tmp/zero-1m
dd if=$BACKING of=/tmp/odx-first bs=1M skip=130 count=1 2>/dev/null
head -c 1048576 /tmp/odx > /tmp/odx-first-want
check odx-zero-token-spares-the-rest cmp /tmp/odx-first /tmp/odx-first-want

# --- cdrom: an ISO image through the sr driver ------------------------------
# dev_config cdrom//srv/test.iso: the MMC device model (read-only, 2048-byte
# blocks) on tcm_loop LUN 5. Linux's sr reads INQUIRY (PDT 5), READ
# CAPACITY, MODE SENSE page 2Ah, READ TOC and GET EVENT STATUS NOTIFICATION
# before isofs mounts it.
CD=$C/core/user_0/cd0
ISO=/srv/test.iso
mkdir -p $CD
echo -n "dev_size=$(stat -c %s $ISO)" > $CD/control
echo -n "dev_config=cdrom/$ISO" > $CD/control
echo -n "hw_block_size=2048" > $CD/control
echo 1 > $CD/enable || fail enable-cdrom-device
for i in $(seq 1 50); do grep -q "serving TCMU device.*dev=cd0" /tmp/handler.log && break; sleep 0.2; done
check cdrom-handler-serves grep -q "serving TCMU device.*dev=cd0" /tmp/handler.log
mkdir -p $T/lun/lun_5
ln -s $CD $T/lun/lun_5/cd
SR=
for i in $(seq 1 150); do
  for d in /sys/bus/scsi/devices/*:5; do
    [ -d "$d/block" ] && SR=/dev/$(ls "$d/block" | head -1)
  done
  [ -n "$SR" ] && [ -b "$SR" ] && break
  sleep 0.2
done
check sr-driver-binds sh -c "[ -n '$SR' ] && [ -b '$SR' ] && case '$SR' in /dev/sr*) true ;; *) false ;; esac"
echo "cdrom $SR"
sg_turs $SR > /dev/null 2>&1; sg_turs $SR > /dev/null 2>&1
check cdrom-inquiry-pdt-5 sh -c "sg_inq $SR | grep -q 'PDT=5 '"
check cdrom-readcap-2048 sh -c "sg_readcap $SR | grep -q 'Logical block length=2048 bytes'"
check cdrom-sr-read-capabilities-page sh -c "dmesg | grep -q 'scsi3-mmc drive'"
sg_get_config $SR > /tmp/gc.txt 2>&1
check cdrom-get-config-cd-rom-profile grep -qi "Current profile: CD-ROM" /tmp/gc.txt
mkdir -p /mnt/cd
check cdrom-mount-iso9660 mount -t iso9660 -o ro $SR /mnt/cd
check cdrom-files-intact sh -c "cmp /srv/iso-src/random.bin /mnt/cd/random.bin && cmp /srv/iso-src/dir/hello.txt /mnt/cd/dir/hello.txt"
umount /mnt/cd
check cdrom-eject sg_start --eject $SR
check cdrom-medium-not-present-after-eject sh -c "sg_turs -v $SR 2>&1 | tee /dev/stderr | grep -qi 'medium not present'"
check cdrom-load sg_start --load $SR
sg_turs $SR > /dev/null 2>&1; sg_turs $SR > /dev/null 2>&1
check cdrom-remount-after-load sh -c "mount -t iso9660 -o ro $SR /mnt/cd && cmp /srv/iso-src/random.bin /mnt/cd/random.bin && umount /mnt/cd"
# WRITE(10) is not a CD-ROM drive's command: INVALID COMMAND OPERATION CODE.
sg_raw -s 2048 -i /srv/test.iso $SR 2a 00 00 00 00 00 00 00 01 00 > /tmp/cd-w.txt 2>&1
check cdrom-refuses-writes grep -qi "invalid command operation code" /tmp/cd-w.txt
rm $T/lun/lun_5/cd; rmdir $T/lun/lun_5
rmdir $CD
# LUN 5 came and went: LIO queued REPORTED LUNS DATA HAS CHANGED on LUN 0.
sg_turs $SD > /dev/null 2>&1; sg_turs $SD > /dev/null 2>&1

# --- tape: a tape image through the st driver ------------------------------
# dev_config tape//srv/tape.img: the SSC device model on tcm_loop LUN 6, over
# a blank 32 MiB image the handler creates. Linux's st reads READ BLOCK
# LIMITS and MODE SENSE's block descriptor at open; GNU tar writes two
# archives (st ends each with a filemark), mt moves between them, and dd
# reads a 10240-byte block with a 32 KiB request: the short block comes
# back with CHECK CONDITION (ILI) and its data, through TCMU's read_len.
# (st refuses requests beyond READ BLOCK LIMITS' 65535 bytes itself, and
# opens no device without a medium: the load goes through sg_raw.)
TP=$C/core/user_0/tape0
mkdir -p $TP
echo -n "dev_size=$((32 << 20))" > $TP/control
echo -n "dev_config=tape//srv/tape.img" > $TP/control
echo 1 > $TP/enable || fail enable-tape-device
for i in $(seq 1 50); do grep -q "serving TCMU device.*dev=tape0" /tmp/handler.log && break; sleep 0.2; done
check tape-handler-serves grep -q "serving TCMU device.*dev=tape0" /tmp/handler.log
mkdir -p $T/lun/lun_6
ln -s $TP $T/lun/lun_6/tape
NST= TSG=
for i in $(seq 1 150); do
  for d in /sys/bus/scsi/devices/*:6; do
    [ -d "$d/scsi_tape" ] || continue
    n=$(ls "$d/scsi_tape" | grep -E '^st[0-9]+$' | head -1)
    [ -n "$n" ] && NST=/dev/n$n
    [ -d "$d/scsi_generic" ] && TSG=/dev/$(ls "$d/scsi_generic" | head -1)
  done
  [ -n "$NST" ] && [ -c "$NST" ] && break
  sleep 0.2
done
check st-driver-binds sh -c "[ -n '$NST' ] && [ -c '$NST' ]"
echo "tape $NST $TSG"
sg_turs $TSG > /dev/null 2>&1; sg_turs $TSG > /dev/null 2>&1
check tape-inquiry-pdt-1 sh -c "sg_inq $TSG | grep -q 'PDT=1 '"
mkdir -p /tmp/t2 /tmp/x1 /tmp/x2
echo "the second file on tgtkit's tape" > /tmp/t2/second.txt
check tape-tar-writes-first-archive gnutar -cf $NST -C /srv/iso-src .
check tape-tar-writes-second-archive gnutar -cf $NST -C /tmp/t2 .
check tape-rewind mt -f $NST rewind
check tape-tell-at-bot sh -c "mt -f $NST tell | grep -q 'At block 0'"
check tape-tar-extracts-first-archive sh -c "gnutar -xf $NST -C /tmp/x1 && cmp /srv/iso-src/random.bin /tmp/x1/random.bin && cmp /srv/iso-src/dir/hello.txt /tmp/x1/dir/hello.txt"
mt -f $NST rewind
check tape-fsf-to-second-archive sh -c "mt -f $NST fsf 1 && gnutar -xf $NST -C /tmp/x2 && cmp /tmp/t2/second.txt /tmp/x2/second.txt"
mt -f $NST rewind; mt -f $NST fsf 1
# The first archive's records and its filemark come before the second.
first=$(( $(stat -c %s /srv/iso-src/random.bin) / 10240 ))
check tape-tell-after-fsf sh -c "mt -f $NST tell | tee /dev/stderr | awk '{ b = \$3 + 0 } END { exit !(b > $first) }'"
mt -f $NST rewind
dd if=$NST of=/tmp/blk bs=32768 count=1 2>/tmp/dd.txt
check tape-short-block-read-returns-its-data sh -c "cat /tmp/dd.txt; [ \$(stat -c %s /tmp/blk) = 10240 ] && dd if=/tmp/blk bs=1 skip=257 count=5 2>/dev/null | grep -q ustar"
check tape-eom mt -f $NST eom
check tape-offline mt -f $NST offline
check tape-medium-not-present-after-unload sh -c "sg_turs -v $TSG 2>&1 | tee /dev/stderr | grep -qi 'medium not present'"
check tape-load sg_raw $TSG 1b 00 00 00 01 00
sg_turs $TSG > /dev/null 2>&1; sg_turs $TSG > /dev/null 2>&1
# The load went behind st's back (it still thinks it is at end of data):
# a rewind puts its idea of the position back at BOP.
mt -f $NST rewind
check tape-reads-after-load sh -c "gnutar -tf $NST | grep -q random.bin"
# Fixed-block mode: MODE SELECT's block length, then 512-byte blocks.
mt -f $NST rewind
check tape-setblk-512 mt -f $NST setblk 512
check tape-fixed-block-write dd if=/srv/iso-src/random.bin of=$NST bs=4096 count=4
mt -f $NST rewind
check tape-fixed-block-read sh -c "dd if=$NST of=/tmp/fixed bs=4096 count=4 && head -c 16384 /srv/iso-src/random.bin | cmp - /tmp/fixed"
mt -f $NST setblk 0
sg_raw -s 512 -i /tmp/fixed $TSG 2a 00 00 00 00 00 00 00 01 00 > /tmp/tp-w.txt 2>&1
check tape-refuses-disk-writes grep -qi "invalid command operation code" /tmp/tp-w.txt
rm $T/lun/lun_6/tape; rmdir $T/lun/lun_6
rmdir $TP
sg_turs $SD > /dev/null 2>&1; sg_turs $SD > /dev/null 2>&1

fi # SKIP_FUNCTIONAL

# --- libiscsi's test suite through SG_IO ------------------------------------
# The whole list, once: family ALL holds every suite (the default run also
# repeats them as families SCSI and LINUX, which under TCG costs 20 more
# minutes and tests nothing new). ISCSI_TEST_FILTER narrows it. The host script compares
# the failed tests with transports/tcmu/tests/expected-failures/.
if [ "${SKIP_ISCSI_TEST:-0}" != 1 ]; then
  t0=$(date +%s)
  : > /tmp/cu.log
  timeout ${ISCSI_TIMEOUT:-1500} iscsi-test-cu -d -t "${ISCSI_TEST_FILTER:-ALL}" "$SG" 2>&1 |
    while IFS= read -r l; do
      echo "$l" >> /tmp/cu.log
      case "$l" in "Suite: "*) echo "@@SUITE $(date +%s) ${l#Suite: }" ;; esac
    done
  rc=$(grep -q "^Run Summary" /tmp/cu.log && echo 0 || echo 1)
  echo "@@ISCSI-RUN rc=$rc seconds=$(( $(date +%s) - t0 )) skipped_lines=$(grep -c SKIPPED /tmp/cu.log)"
  sed -n '/^Run Summary:/,/^Elapsed/p' /tmp/cu.log | sed 's/^/@@ISCSI /'
  awk '/^Suite: /{s=$2} /Test: /{t=$0; sub(/.*Test: /,"",t); sub(/ \.\.\..*/,"",t)}
       /\.\.\.FAILED|^FAILED$/{print s"."t}' /tmp/cu.log | sort -u | sed 's/^/@@ISCSI-FAIL /'
  if [ -n "${ISCSI_DUMP:-}" ]; then grep -n -A8 "Test: ${ISCSI_DUMP#*.} \.\.\." /tmp/cu.log | head -60; fi
fi

# --- performance: tcmu-handler file vs LIO fileio on the same file ------------
if [ "${SKIP_PERF:-0}" != 1 ]; then
  F=$C/core/fileio_1/fio0
  mkdir -p $F
  echo -n "fd_dev_name=$BACKING,fd_dev_size=$SIZE,fd_buffered_io=1" > $F/control
  echo 1 > $F/enable
  mkdir -p $T/lun/lun_2
  ln -s $F $T/lun/lun_2/fileio
  SDF=$(lun_disk 2)
  sg_turs $SDF > /dev/null 2>&1
  RT=${PERF_SECONDS:-15}
  QSIZE=$((128 * 1024 * 1024))
  ratio() { awk -v a=$1 -v b=$2 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
  fill() { fio --name=fill --filename=$1 --direct=1 --ioengine=libaio --iodepth=4 --rw=write --bs=1M --size=$QSIZE > /dev/null 2>&1; }
  qcow_dev() { # name lun path: a user device with a qcow dev_config, on tcm_loop LUN
    mkdir -p $C/core/user_0/$1
    echo -n "dev_size=$QSIZE" > $C/core/user_0/$1/control
    echo -n "dev_config=qcow/$3" > $C/core/user_0/$1/control
    echo -n "hw_block_size=512" > $C/core/user_0/$1/control
    # Write-back, as dev0 and LIO fileio with fd_buffered_io: without it
    # (WCE=0) tcmu-handler makes every write durable (fdatasync) while
    # tcmu-runner's qcow handler does not, and the figures compare nothing.
    echo 1 > $C/core/user_0/$1/attrib/emulate_write_cache
    echo 1 > $C/core/user_0/$1/enable || return 1
    mkdir -p $T/lun/lun_$2
    ln -s $C/core/user_0/$1 $T/lun/lun_$2/qcow
  }
  iops() { # dev rw -> IOPS
    fio --name=p --filename=$1 --direct=1 --ioengine=libaio --iodepth=16 --rw=$2 --bs=4k \
      --size=128m --time_based --runtime=$RT --ramp_time=2 --norandommap --randrepeat=0 \
      --output-format=terse --terse-version=3 2>/tmp/fio-err.txt | tee /tmp/fio-last.txt |
      awk -F';' -v rw=$2 '$1 == 3 { v = (rw == "randread") ? $8 : $49 } END { print int(v) }'
  }
  # Data everywhere fio reads, as on the qcow images below: reads of a
  # sparse file's holes would measure page-cache fills, and favour whoever
  # runs second.
  check tcmu-handler-file-fill fill $SD
  for rw in randread randwrite; do
    t=$(iops $SD $rw); k=$(iops $SDF $rw)
    echo "@@PERF $rw tcmu-handler-file=$t lio-fileio=$k ratio=$(ratio $t $k)"
  done

  # qcow: tcmu-handler's qcow handler now, tcmu-runner's after the handler
  # has shut down; each on its own copy of one image, filled sequentially
  # through its device first so that both measure allocated clusters.
  cp /srv/empty.qcow2 /q/qt.qcow2; cp /srv/empty.qcow2 /q/qr.qcow2
  qcow_dev qt 3 /q/qt.qcow2 && SDQ=$(lun_disk 3)
  check tcmu-handler-qcow-serves sh -c "[ -b '$SDQ' ] && sg_readcap $SDQ | grep -q 'Last LBA=$((QSIZE / 512 - 1)) '"
  check tcmu-handler-qcow-fill fill $SDQ
  QT_R=$(iops $SDQ randread); QT_W=$(iops $SDQ randwrite)
  rm $T/lun/lun_3/qcow; rmdir $T/lun/lun_3; rmdir $C/core/user_0/qt
fi

# --- clean shutdown on SIGTERM -------------------------------------------------
kill -TERM $HANDLER
for i in $(seq 1 50); do kill -0 $HANDLER 2>/dev/null || break; sleep 0.2; done
wait $HANDLER; rc=$?
check handler-clean-shutdown sh -c "[ $rc -eq 0 ] && grep -q 'shutting down' /tmp/handler.log"
check handler-logged-no-unexpected-errors sh -c "! grep -E ' ERROR ' /tmp/handler.log | grep -v 'refusing device'"
echo "--- handler log (tail) ---"; tail -15 /tmp/handler.log

# --- the peer: Debian's tcmu-runner with its qcow handler ---------------------
if [ "${SKIP_PERF:-0}" != 1 ]; then
  tcmu-runner -l /tmp > /tmp/runner.out 2>&1 &
  RUNNER=$!
  sleep 3
  if qcow_dev qr 4 /q/qr.qcow2 && SDR=$(lun_disk 4); then
    check tcmu-runner-qcow-serves sh -c "sg_readcap $SDR | grep -q 'Last LBA=$((QSIZE / 512 - 1)) '"
    check tcmu-runner-qcow-fill fill $SDR
    QR_R=$(iops $SDR randread); QR_W=$(iops $SDR randwrite)
    head -c 600 /tmp/fio-err.txt; grep -m 5 ERROR /tmp/tcmu-runner.log
    echo "@@PERF qcow-randread tcmu-handler-qcow=$QT_R tcmu-runner-qcow=$QR_R ratio=$(ratio $QT_R $QR_R)"
    echo "@@PERF qcow-randwrite tcmu-handler-qcow=$QT_W tcmu-runner-qcow=$QR_W ratio=$(ratio $QT_W $QR_W)"
  else
    fail tcmu-runner-qcow-serves "no disk"
    tail -20 /tmp/runner.out /tmp/tcmu-runner.log 2>/dev/null
  fi
  kill -TERM $RUNNER 2>/dev/null
fi
finish
