#!/usr/bin/env bash
# Installs the Debian packages the project's build and tests use, idempotently: a machine
# that has them all never touches apt. Needs root (as on the project's machines and CI).
#   build:     libibverbs-dev librdmacm-dev (the addon), rdma-core (providers such as librxe)
#   RDMA tier: qemu + busybox + cpio + kmod boot the soft-RoCE VM; the guest uses the host's
#              own rdma-core tools, initiators and fio (its root is this machine's /)
#              targetcli-fb (+ dbus-daemon, a bus it needs): the LIO configurations import-lio
#              is tested on (test/rdma/lio-import.test.ts)
#   host tier: libiscsi-bin (iscsi-test-cu and friends as real initiators on 127.0.0.1)
#   systemd:   systemd (systemd-notify sends the daemon's sd_notify messages; systemd-analyze
#              verifies the unit) and python3 (the test's AF_UNIX datagram notify socket)
#   metrics:   prometheus (a real server scraping the metrics endpoint, test/host/target/metrics.test.ts),
#              tmux (drives `rdma-target top` on a terminal, test/host/cli/top.test.ts)
#   lint:      clang-format (native/ against .clang-format; Biome, for the TypeScript, is an npm devDependency)
# Extra package names as arguments are installed the same way, e.g. `bash scripts/deps.sh tgt`
# (npm run bench:profile: tgt's tgtd and tgtadm in the VM, which the tests do not use).
set -euo pipefail
pkgs=(libibverbs-dev librdmacm-dev rdma-core ibverbs-utils rdmacm-utils perftest
  qemu-system-x86 busybox-static cpio kmod iproute2
  open-iscsi libiscsi-bin fio sg3-utils srptools targetcli-fb dbus-daemon clang-format systemd python3 prometheus tmux
  "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
((${#missing[@]})) || exit 0
if [[ $(id -u) != 0 ]]; then
  echo "deps: missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
# open-iscsi's postinst may try to start iscsid; there is no init system to do it here.
if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
  apt-get update -q >>"$log" 2>&1
  apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$log" 2>&1 ||
    { tail -20 "$log" >&2; echo "deps: apt-get install failed" >&2; exit 1; }
fi
rm -f "$log"
