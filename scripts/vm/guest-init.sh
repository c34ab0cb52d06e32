#!/bin/bash
# Runs as PID 1 inside the soft-RoCE VM, on the host's root filesystem (overlaid).
# Builds the two-host RDMA network the tests expect (docs/rxe-vm.md):
#   veth0 10.77.0.1/24 ─ rxe0      veth1 10.77.0.2/24 ─ rxe1
# then runs the command run.sh left in $VM_OUT/cmd from the repository root and leaves
# its exit status in $VM_OUT/status. Powers off in every case.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# The console is a tty, but what reads it is a log: no colours or cursor tricks.
export HOME=/root LANG=C.UTF-8 RDMA_TARGET_VM=1 NO_COLOR=1 TERM=dumb
poweroff() { sync; echo o >/proc/sysrq-trigger; while :; do read -rt 30 _ </dev/zero; done; }
trap poweroff EXIT
say() { echo "vm: $*"; }

# printk into the middle of test output makes it unreadable; keep warnings out of the console.
dmesg -n 1 2>/dev/null
# / is already a writable overlay; /tmp stays as it is so a checkout under the host's /tmp
# (and this run's export inside it) remains visible. /run must start empty.
mount -t tmpfs tmpfs /run
mkdir -p /run/lock/iscsi /var/lib/iscsi /etc/target/pr /var/target/pr
mount -t devpts devpts /dev/pts 2>/dev/null
ln -sf /proc/self/fd /dev/fd 2>/dev/null
modprobe configfs && mount -t configfs configfs /sys/kernel/config
ip link set lo up
hostname rdma-target-vm

setup_rdma() {
  modprobe veth && modprobe rdma_rxe && modprobe rdma_ucm && modprobe ib_uverbs || return 1
  ip link add veth0 type veth peer name veth1 || return 1
  ip addr add 10.77.0.1/24 dev veth0 && ip addr add 10.77.0.2/24 dev veth1 || return 1
  ip link set veth0 up && ip link set veth1 up || return 1
  rdma link add rxe0 type rxe netdev veth0 && rdma link add rxe1 type rxe netdev veth1 || return 1
  modprobe sd_mod
}
if ! setup_rdma; then
  say "soft-RoCE setup failed"
  echo 97 >"$VM_OUT/status"
  exit
fi
say "kernel $(uname -r), $(nproc) vCPUs; RDMA devices: $(ls /sys/class/infiniband | tr '\n' ' ')"

cd "$VM_REPO" || { echo 96 >"$VM_OUT/status"; exit; }
# Through a pipe, so programs see a log rather than a terminal (no progress redraws).
bash "$VM_OUT/cmd" </dev/null 2>&1 | cat
echo "${PIPESTATUS[0]}" >"$VM_OUT/status"
