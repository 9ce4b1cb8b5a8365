#!/bin/bash
# Build the Xen VM test's hypervisor, dom0 kernel and dom0 initramfs.
#
#   scripts/vm-xen/build.sh OUTDIR
#
# Downloads (apt-get download, never installs) Debian's Xen 4.17 hypervisor,
# xen-utils with its libraries and Debian's Linux 6.1 kernel into
# ${TGTKIT_VM_CACHE:-~/.cache/tgtkit-vm} and extracts them there once.
# Writes OUTDIR/xen.elf (the multiboot ELF QEMU loads), OUTDIR/vmlinux (the
# PV dom0 kernel, ELF) and OUTDIR/initrd.gz: busybox, the Xen and block
# modules with their dependencies, xenstored/xl/xen-init-dom0/xenconsoled,
# the hotplug scripts, bash, flock, the guest tools (fio, e2fsprogs,
# sg3-utils, blkdiscard, qemu-img) with the libraries ldd lists, the static
# hostile frontend and ublkback (built here with gcc), the xen-blkback and
# xen-scsiback under test ($XEN_BLKBACK, $XEN_SCSIBACK, if set and present)
# and dom0-init.sh as /init.
set -euo pipefail

out=${1:?usage: build.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
cache=${TGTKIT_VM_CACHE:-$HOME/.cache/tgtkit-vm}
mkdir -p "$out" "$cache"
out=$(cd "$out" && pwd)

# --- kernel (the same package and cache as scripts/vm-tcmu/build.sh) --------
pkg=$(apt-cache show linux-image-amd64 | awk '/^Version: 6\.1\./{v=1} v && /^Depends:/{print $2; exit}')
[ -n "$pkg" ] || { echo "no linux-image-6.1 package known to apt" >&2; exit 1; }
deb=$(ls "$cache/${pkg}"_*.deb 2>/dev/null | head -1 || true)
if [ -z "$deb" ]; then
  (cd "$cache" && apt-get download "$pkg" >/dev/null 2>&1)
  deb=$(ls "$cache/${pkg}"_*.deb | head -1)
fi
kroot="$cache/${pkg}.root"
if [ ! -d "$kroot/lib/modules" ]; then
  rm -rf "$kroot"; mkdir -p "$kroot"
  dpkg -x "$deb" "$kroot"
fi
kver=$(ls "$kroot/lib/modules" | head -1)
[ -f "$kroot/lib/modules/$kver/modules.dep" ] || depmod -b "$kroot" "$kver"
if [ ! -s "$cache/${pkg}.vmlinux" ]; then
  vmlinuz="$kroot/boot/vmlinuz-$kver"
  # The xz stream inside the bzImage starts with FD 37 7A 58 5A 00.
  off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -1 | cut -d: -f1)
  tail -c +$((off + 1)) "$vmlinuz" | xz -dc 2>/dev/null > "$cache/${pkg}.vmlinux.tmp" || true
  head -c 4 "$cache/${pkg}.vmlinux.tmp" | grep -q ELF || { echo "vmlinux extraction failed" >&2; exit 1; }
  mv "$cache/${pkg}.vmlinux.tmp" "$cache/${pkg}.vmlinux"
fi
cp "$cache/${pkg}.vmlinux" "$out/vmlinux"

# --- Xen: hypervisor, toolstack and its libraries, downloaded and extracted --
xdebs="xen-hypervisor-4.17-amd64 xen-utils-4.17 xen-utils-common xenstore-utils libyajl2 libxenmisc4.17 libxenstore4
  libxencall1 libxenevtchn1 libxenforeignmemory1 libxengnttab1 libxenhypfs1 libxentoolcore1 libxentoollog1 libxendevicemodel1"
xcache="$cache/xen-debs"; xroot="$cache/xen.root"
mkdir -p "$xcache"
missing=""
for p in $xdebs; do ls "$xcache/${p}"_*.deb >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  # shellcheck disable=SC2086
  (cd "$xcache" && apt-get download -qq $missing >/dev/null 2>&1 || true)
  for p in $missing; do ls "$xcache/${p}"_*.deb >/dev/null 2>&1 || { echo "apt-get download $p failed" >&2; exit 1; }; done
  rm -rf "$xroot"
fi
if [ ! -x "$xroot/usr/lib/xen-4.17/bin/xl" ]; then
  rm -rf "$xroot"; mkdir -p "$xroot"
  for d in "$xcache"/*.deb; do dpkg -x "$d" "$xroot"; done
fi
[ -s "$cache/xen-4.17.elf" ] || zcat "$xroot"/boot/xen-4.17-amd64.gz > "$cache/xen-4.17.elf"
cp "$cache/xen-4.17.elf" "$out/xen.elf"

# --- C helpers, static ------------------------------------------------------
gcc -O2 -Wall -Werror -static -o "$out/hostile-front" "$here/hostile-front.c"
gcc -O2 -Wall -static -o "$out/ublkback" "$here/ublkback.c" 2>&1 | grep -v 'in statically linked' || true

# --- initramfs ----------------------------------------------------------------
root="$out/root"
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,run,etc,root,s,lib64,lib/x86_64-linux-gnu,usr/bin,usr/sbin} \
  "$root"/{var/lib/xen,var/log/xen,var/lib/xenstored,etc/target/pr,etc/target/alua}
ln -s ../run "$root/var/run"
cp /bin/busybox "$root/bin/busybox"
for app in $("$root/bin/busybox" --list); do
  [ -e "$root/bin/$app" ] || ln -s busybox "$root/bin/$app"
done

# Modules with their dependencies; modprobe (busybox) reads modules.dep.
mods="xenfs xen-privcmd xen-evtchn xen-gntdev xen-gntalloc xen-blkback xen-blkfront xen-scsiback xen-scsifront loop
  configfs target_core_mod target_core_file target_core_iblock scsi_mod sd_mod sg ext4 crc32c_generic virtio_pci virtio_blk"
M="$kroot/lib/modules/$kver"
for m in $mods; do
  line=$(grep -E "(^|/)$m\.ko:" "$M/modules.dep" | head -1) || { echo "module $m not in $kver" >&2; exit 1; }
  for f in $(echo "$line" | tr -d ':'); do
    mkdir -p "$root/lib/modules/$kver/$(dirname "$f")"; cp "$M/$f" "$root/lib/modules/$kver/$f"
  done
done
cp "$M"/modules.builtin "$M"/modules.order "$root/lib/modules/$kver/" 2>/dev/null || true
depmod -b "$root" "$kver" 2>&1 | grep -v modules.builtin.modinfo || true

# Binaries with the libraries ldd lists (the extracted Xen libraries first).
copy_bin() { # SRC DST
  mkdir -p "$root$(dirname "$2")"; cp -L "$1" "$root$2"
  { LD_LIBRARY_PATH="$xroot/usr/lib/x86_64-linux-gnu:$xroot/lib/x86_64-linux-gnu" ldd "$1" 2>/dev/null || true; } |
    awk '/=>/ {print $3} /^[ \t]*\/lib/ {print $1}' | while read -r lib; do
      [ -n "$lib" ] && [ -f "$lib" ] || continue
      d=/lib/x86_64-linux-gnu; case $lib in */ld-linux*) d=/lib64 ;; esac
      [ -e "$root$d/$(basename "$lib")" ] || cp -L "$lib" "$root$d/"
    done
}
XB=/usr/lib/xen-4.17/bin
for b in xl xenstored xen-init-dom0 xenconsoled xenstore libxl-save-helper; do
  [ -e "$xroot$XB/$b" ] && copy_bin "$xroot$XB/$b" "$XB/$b"
done
# xenstore-* are one binary dispatching on argv[0].
copy_bin "$xroot/usr/bin/xenstore" /usr/bin/xenstore
for c in ls list read write rm exists watch chmod; do ln -sf xenstore "$root/usr/bin/xenstore-$c"; done
for b in xl xenstored xenconsoled xen-init-dom0; do ln -sf "$XB/$b" "$root/usr/sbin/$b"; done
mkdir -p "$root/etc/xen"; cp -a "$xroot/etc/xen/scripts" "$xroot/etc/xen/xl.conf" "$root/etc/xen/"
copy_bin /bin/bash /bin/bash
copy_bin /usr/bin/flock /usr/bin/flock     # the block hotplug script's locking.sh; busybox has none
cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$root/lib/x86_64-linux-gnu/"   # xl's pthread_cancel
for b in fio sg_inq sg_readcap sg_persist sg_reset qemu-img blkdiscard; do copy_bin "$(command -v $b)" "/usr/bin/$b"; done
for b in mkfs.ext4 mke2fs e2fsck fsck.ext4; do copy_bin "$(PATH=/usr/sbin:/sbin:$PATH command -v $b)" "/usr/sbin/$b"; done
[ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$root/etc/"
cp "$out/hostile-front" "$out/ublkback" "$root/usr/bin/"
for b in xen-blkback xen-scsiback; do
  v=XEN_${b#xen-}; v=${v^^}   # XEN_BLKBACK, XEN_SCSIBACK
  if [ -n "${!v:-}" ] && [ -x "${!v}" ]; then
    copy_bin "${!v}" /usr/bin/$b
    strip --strip-debug "$root/usr/bin/$b" 2>/dev/null || true
  fi
done
mkdir -p "$root/lib64"; cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"   # the loader, whatever ldd printed
# The PV domU: the same kernel (bzImage) and a small busybox initramfs with xen-blkfront.
droot="$out/domu-root"; rm -rf "$droot"; mkdir -p "$droot"/{bin,sbin,proc,sys,dev,tmp}
cp /bin/busybox "$droot/bin/busybox"
for app in $("$droot/bin/busybox" --list); do [ -e "$droot/bin/$app" ] || ln -s busybox "$droot/bin/$app"; done
cp "$M/kernel/drivers/block/xen-blkfront.ko" "$droot/"
cp "$here/domu-init.sh" "$droot/init"; chmod +x "$droot/init"
(cd "$droot" && find . | "$droot/bin/busybox" cpio -o -H newc -R 0:0 2>/dev/null | gzip -1 > "$root/root/initrd-domu.gz")
cp "$kroot/boot/vmlinuz-$kver" "$root/root/vmlinuz"
rm -rf "$droot"
echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
cp "$here/dom0-init.sh" "$root/init"; chmod +x "$root/init"
(cd "$root" && find . | "$root/bin/busybox" cpio -o -H newc -R 0:0 2>/dev/null | gzip -1 > "$out/initrd.gz")
echo "built $out/xen.elf, $out/vmlinux ($kver) and $out/initrd.gz ($(du -h "$out/initrd.gz" | cut -f1))"
