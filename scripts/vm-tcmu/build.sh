#!/bin/bash
# Build the TCMU VM test's kernel and initramfs.
#
#   scripts/vm-tcmu/build.sh OUTDIR
#
# Fetches Debian's 6.1 kernel package with apt (cached under
# ${TGTKIT_VM_CACHE:-~/.cache/tgtkit-vm}), extracts the ELF vmlinux from
# vmlinuz (booted through its PVH entry, no decompressor) and the modules
# the test needs with their dependencies (depmod -b), and packs an
# initramfs with busybox, the guest tools (sg3-utils, e2fsprogs, fio,
# iscsi-test-cu) with their shared libraries, the tcmu-handler binary,
# Debian's tcmu-runner with its qcow handler (the peer for the qcow
# comparison; fetched with apt-get download, not installed, so that its
# rbd handler's Ceph libraries stay off the machine) and the guest script.
# Writes OUTDIR/vmlinux and OUTDIR/initrd.gz.
set -euo pipefail

out=${1:?usage: build.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${TGTKIT_VM_CACHE:-$HOME/.cache/tgtkit-vm}
handler=${TCMU_HANDLER:?set TCMU_HANDLER to the tcmu-handler binary}
mkdir -p "$out" "$cache"

# --- kernel -----------------------------------------------------------------
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

# --- initramfs --------------------------------------------------------------
root="$out/root"
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,mnt,lib/modules,usr/bin,usr/sbin,etc/target/pr,etc/target/alua}
cp /bin/busybox "$root/bin/busybox"
for app in $("$root/bin/busybox" --list); do
  [ -e "$root/bin/$app" ] || ln -s busybox "$root/bin/$app"
done

# Modules in dependency order.
want="configfs uio crc32c_generic libcrc32c target_core_mod target_core_user target_core_file tcm_loop scsi_mod sd_mod sg ext4 brd cdrom sr_mod isofs st"
dep="$kroot/lib/modules/$kver/modules.dep"
order=()
add() {
  local path
  path=$(grep -E "(^|/)$1\.ko:" "$dep" | head -1 | cut -d: -f1)
  [ -n "$path" ] || { echo "module $1 not found" >&2; exit 1; }
  add_path "$path"
}
add_path() {
  local p=$1 x
  for x in "${order[@]:-}"; do [ "$x" = "$p" ] && return 0; done
  local deps; deps=$(grep -E "^$p:" "$dep" | cut -d: -f2)
  for d in $deps; do add_path "$d"; done
  order+=("$p")
}
for m in $want; do add "$m"; done
: > "$root/lib/modules/load-order"
for p in "${order[@]}"; do
  cp "$kroot/lib/modules/$kver/$p" "$root/lib/modules/"
  basename "$p" >> "$root/lib/modules/load-order"
done

# Binaries and their shared libraries.
copy_bin() {
  local src=$1 dst=$2
  cp -L "$src" "$root$dst"
  ldd "$src" 2>/dev/null | awk '/=>/ {print $3} /^\s*\/lib/ {print $1}' | while read -r lib; do
    [ -n "$lib" ] && [ -f "$lib" ] || continue
    case $lib in "$cache"/*) continue ;; esac # extracted packages: copied by hand
    mkdir -p "$root$(dirname "$lib")"
    [ -e "$root$lib" ] || cp -L "$lib" "$root$lib"
  done
}
for b in sg_inq sg_readcap sg_vpd sg_turs sg_persist sg_get_config sg_start sg_raw fio iscsi-test-cu; do copy_bin "$(command -v $b)" "/usr/bin/$b"; done
for b in mkfs.ext4 e2fsck mke2fs; do copy_bin "$(command -v $b)" "/usr/sbin/$b"; done
# GNU tar for the tape test: it writes and reads whole 10240-byte records, as
# a tape wants (busybox tar does not); busybox's mt drives the st ioctls.
copy_bin "$(command -v tar)" /usr/bin/gnutar
# The dynamic loader, wherever ldd listed it.
for l in /lib64/ld-linux-x86-64.so.2; do mkdir -p "$root$(dirname $l)"; cp -L "$l" "$root$l"; done
[ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$root/etc/"
copy_bin "$handler" /usr/bin/tcmu-handler
strip --strip-debug "$root/usr/bin/tcmu-handler" 2>/dev/null || true

# tcmu-runner 1.5.4 and libtcmu, extracted from their packages. It looks up
# target_core_user with libkmod, so the guest gets the kernel's module
# indexes (the .ko files are loaded by /init; kmod then sees it live).
for p in tcmu-runner libtcmu2; do
  ls "$cache/${p}"_*.deb >/dev/null 2>&1 || (cd "$cache" && apt-get download "$p" >/dev/null 2>&1)
done
troot="$cache/tcmu-runner.root"
if [ ! -x "$troot/usr/bin/tcmu-runner" ]; then
  rm -rf "$troot"; mkdir -p "$troot"
  for d in "$cache"/tcmu-runner_*.deb "$cache"/libtcmu2_*.deb; do dpkg -x "$d" "$troot"; done
fi
tlib=/usr/lib/x86_64-linux-gnu
mkdir -p "$root$tlib/tcmu-runner" "$root/etc/tcmu" "$root/var/log" "$root/lib/modules/$kver"
cp -a "$troot$tlib"/libtcmu.so* "$root$tlib/"
LD_LIBRARY_PATH="$troot$tlib" copy_bin "$troot/usr/bin/tcmu-runner" /usr/bin/tcmu-runner
LD_LIBRARY_PATH="$troot$tlib" copy_bin "$troot$tlib/tcmu-runner/handler_qcow.so" "$tlib/tcmu-runner/handler_qcow.so"
cp "$troot/etc/tcmu/tcmu.conf" "$root/etc/tcmu/tcmu.conf"
cp "$kroot/lib/modules/$kver"/modules.* "$root/lib/modules/$kver/"
# The image both qcow handlers are measured on (copied twice in the guest).
mkdir -p "$root/srv"
qemu-img create -q -f qcow2 -o cluster_size=65536 "$root/srv/empty.qcow2" 128M

# An ISO 9660 image for the cdrom handler (the sr driver mounts it in the
# guest) and the files it holds, to compare with what the mount reads.
iso_src="$root/srv/iso-src"
mkdir -p "$iso_src/dir"
head -c $((3 * 1024 * 1024 + 777)) /dev/urandom > "$iso_src/random.bin"
echo "read through tgtkit's MMC device model" > "$iso_src/dir/hello.txt"
xorriso -as mkisofs -quiet -V TGTKIT_CD -R -o "$root/srv/test.iso" "$iso_src" 2>/dev/null

cp "$here/guest-init.sh" "$root/init"
chmod +x "$root/init"

(cd "$root" && find . | "$root/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -1 > "$out/initrd.gz")
echo "built $out/vmlinux ($kver) and $out/initrd.gz ($(du -h "$out/initrd.gz" | cut -f1))"
