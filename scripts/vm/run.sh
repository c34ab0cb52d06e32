#!/usr/bin/env bash
# Runs a command inside the soft-RoCE VM (docs/rxe-vm.md) and returns its exit status.
#
#   scripts/vm/run.sh [--timeout SECONDS] [--mem MIB] [--cpus N] -- COMMAND [ARGS...]
#
# The guest's root is this machine's own / (read-only 9p under a tmpfs overlay), so the
# command sees the repository at the same path, with the same node, node_modules and built
# addon; nothing is copied. Inside: rxe0 on veth0 (10.77.0.1), rxe1 on veth1 (10.77.0.2),
# RDMA_TARGET_VM=1. Output streams to stdout. The qemu process is killed at the timeout and
# the script says so and exits 124, so a hung guest never stalls CI.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
timeout_s=1200 mem=3072 cpus=2
while (($#)); do
  case "$1" in
    --timeout) timeout_s=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
(($#)) || { echo "usage: $0 [--timeout S] [--mem MIB] [--cpus N] -- COMMAND [ARGS...]" >&2; exit 2; }

envfile=$("$here/setup.sh")
# shellcheck disable=SC1090
source "$envfile"

# One folder per run, exported writable: concurrent runs never share it.
out=$(mktemp -d "$root/.cache/vm/run.XXXXXX")
cleanup() { rm -rf "$out"; }
trap cleanup EXIT
printf '%q ' "$@" >"$out/cmd"
echo >>"$out/cmd"

echo "vm: booting $VM_KVER under TCG ($cpus vCPUs, ${mem} MiB), timeout ${timeout_s}s: $*"
start=$(date +%s)
# timeout(1) kills qemu itself: nothing of the guest can outlive the limit or hold our stdout.
set +e
timeout -s KILL "$timeout_s" qemu-system-x86_64 -machine q35 -accel tcg -cpu max -m "$mem" -smp "$cpus" \
  -display none -monitor none -chardev stdio,id=con,signal=off -serial chardev:con \
  -no-reboot -nic none \
  -fsdev local,id=fs0,path=/,security_model=none,readonly=on,multidevs=remap \
  -device virtio-9p-pci,fsdev=fs0,mount_tag=hostroot \
  -fsdev local,id=fs1,path="$out",security_model=none,multidevs=remap \
  -device virtio-9p-pci,fsdev=fs1,mount_tag=vmout \
  -kernel "$VM_KERNEL" -initrd "$VM_INITRD" \
  -append "console=ttyS0 quiet loglevel=1 panic=-1 VM_MODULES=$VM_MODULES VM_OUT=$out VM_REPO=$root VM_GUEST_INIT=$here/guest-init.sh" \
  </dev/null 2>&1 | sed -u 's/\r$//'
qrc=${PIPESTATUS[0]}
set -e
elapsed=$(($(date +%s) - start))
if [[ -f "$out/status" ]]; then
  rc=$(cat "$out/status")
  echo "vm: command exited $rc after ${elapsed}s"
  exit "$rc"
fi
if ((qrc == 137 || elapsed >= timeout_s)); then
  echo "vm: TIMEOUT: the guest ran past ${timeout_s}s and was killed; no exit status ($*)" >&2
  exit 124
fi
echo "vm: FAILED: the guest stopped after ${elapsed}s (qemu exit $qrc) without reporting an exit status" >&2
exit 125
