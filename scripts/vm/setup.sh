#!/usr/bin/env bash
# Prepares everything the soft-RoCE VM needs (docs/rxe-vm.md), idempotently:
#  - Debian packages on the host (scripts/deps.sh: the guest runs the host's own / over 9p,
#    so the initiators, rdma-core and fio the tests use come from here);
#  - a Debian 6.1 kernel unpacked into .cache/vm (never installed on the host: its
#    config has rdma_rxe, ib_iser/isert, ib_srp/srpt, veth, which the host kernel lacks);
#  - a busybox initramfs that mounts the host root and hands over to guest-init.sh.
# Prints the path of the environment file that run.sh sources.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache="$root/.cache/vm"
mkdir -p "$cache"
log() { echo "vm-setup: $*" >&2; }

"$root/scripts/deps.sh"

# The guest kernel: whatever linux-image-amd64 points at in this Debian release.
kpkg=$(cat "$cache/kernel-package" 2>/dev/null || true)
if [[ -z "$kpkg" || ! -d "$cache/kernel/lib/modules" ]]; then
  kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  if [[ -z "$kpkg" ]]; then
    apt-get update -q >"$cache/apt.log" 2>&1 || true
    kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  fi
  [[ -n "$kpkg" ]] || { log "cannot find the Debian kernel package (apt-cache depends linux-image-amd64)"; exit 1; }
  log "fetching guest kernel $kpkg"
  rm -rf "$cache/kernel" "$cache"/linux-image-*.deb
  (cd "$cache" && apt-get download "$kpkg" >"$cache/download.log" 2>&1) ||
    { apt-get update -q >>"$cache/download.log" 2>&1; (cd "$cache" && apt-get download "$kpkg" >>"$cache/download.log" 2>&1); } ||
    { tail -5 "$cache/download.log" >&2; log "apt-get download $kpkg failed"; exit 1; }
  dpkg-deb -x "$cache"/linux-image-*.deb "$cache/kernel"
  rm -f "$cache"/linux-image-*.deb
  echo "$kpkg" >"$cache/kernel-package"
fi
kver=$(ls "$cache/kernel/lib/modules" | head -1)
[[ -f "$cache/kernel/lib/modules/$kver/modules.dep" ]] || depmod -b "$cache/kernel" "$kver"
vmlinuz="$cache/kernel/boot/vmlinuz-$kver"
[[ -f "$vmlinuz" ]] || { log "no $vmlinuz in $kpkg"; exit 1; }

# The initramfs: rebuilt when its inputs change.
initrd="$cache/initrd-$kver.cpio.gz"
if [[ ! -f "$initrd" || "$here/initramfs-init.sh" -nt "$initrd" ]]; then
  log "building initramfs for $kver"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work"/{bin,dev,proc,sys,mnt/lower,mnt/upper,newroot,modules}
  cp /bin/busybox "$work/bin/busybox"
  for app in sh mount umount mkdir insmod switch_root echo cat sleep mknod; do ln -s busybox "$work/bin/$app"; done
  # Only what mounting the root needs, in dependency order (modprobe resolves it).
  : >"$work/modules/order"
  for m in virtio_pci 9p 9pnet_virtio overlay; do
    modprobe -d "$cache/kernel" -S "$kver" --show-depends "$m" | awk '$1=="insmod" {print $2}' |
      while read -r ko; do
        base=$(basename "$ko")
        grep -qx "$base" "$work/modules/order" && continue
        case "$ko" in
          *.ko.xz) xz -dc "$ko" >"$work/modules/${base%.xz}"; base=${base%.xz} ;;
          *.ko.zst) zstd -qdc "$ko" >"$work/modules/${base%.zst}"; base=${base%.zst} ;;
          *) cp "$ko" "$work/modules/$base" ;;
        esac
        grep -qx "$base" "$work/modules/order" || echo "$base" >>"$work/modules/order"
      done
  done
  cp "$here/initramfs-init.sh" "$work/init"
  chmod +x "$work/init"
  (cd "$work" && find . | cpio -o -H newc --quiet | gzip -1) >"$initrd.tmp"
  mv "$initrd.tmp" "$initrd"
fi

cat >"$cache/env" <<ENV
VM_KERNEL=$vmlinuz
VM_INITRD=$initrd
VM_MODULES=$cache/kernel/lib/modules
VM_KVER=$kver
ENV
echo "$cache/env"
