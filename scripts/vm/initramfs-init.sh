#!/bin/sh
# PID 1 of the soft-RoCE VM's initramfs (busybox). Mounts the host's / (read-only 9p) under
# a tmpfs-backed overlay so the guest can write /etc, /var, /run without touching the host,
# puts the unpacked guest kernel's modules at /lib/modules, mounts this run's writable
# export, and hands over to the repository's guest-init.sh. Its inputs come from the
# kernel command line (unknown NAME=value words become our environment).
fail() { echo "vm-initramfs: $*"; echo o >/proc/sysrq-trigger; sleep 10; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules/order); do insmod "/modules/$m" || fail "insmod $m"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 hostroot /mnt/lower || fail "mount hostroot"
mount -t tmpfs -o size=1g tmpfs /mnt/upper
mkdir -p /mnt/upper/upper /mnt/upper/work
mount -t overlay overlay -o lowerdir=/mnt/lower,upperdir=/mnt/upper/upper,workdir=/mnt/upper/work /newroot ||
  fail "mount overlay"
mkdir -p /newroot/lib/modules
mount -o bind "/newroot$VM_MODULES" /newroot/lib/modules || fail "bind $VM_MODULES"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 vmout "/newroot$VM_OUT" || fail "mount vmout"
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount --move /dev /newroot/dev
exec switch_root /newroot /bin/bash "$VM_GUEST_INIT"
