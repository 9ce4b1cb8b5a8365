#!/bin/sh
# /init of the Xen VM test's PV domU: reads its xen-blkfront disk (xvda, served
# from dom0 by xen-blkback), prints its size and md5, writes 64 KiB of a known
# pattern at 1 MiB through O_DIRECT with fsync, and powers off. dom0-init.sh
# reads these lines from the domU's console log and checks the file.
export PATH=/bin:/sbin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
insmod /xen-blkfront.ko
i=0; while [ ! -b /dev/xvda ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
if [ -b /dev/xvda ]; then
  echo "DOMU size=$(cat /sys/block/xvda/size) md5=$(dd if=/dev/xvda bs=64k iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)"
  yes tgtkit-domu | head -c 65536 > /tmp/pat
  dd if=/tmp/pat of=/dev/xvda bs=64k seek=16 oflag=direct conv=fsync 2>/dev/null && echo "DOMU wrote rc=0"
else
  echo "DOMU no /dev/xvda"
fi
echo "DOMU done"
poweroff -f
