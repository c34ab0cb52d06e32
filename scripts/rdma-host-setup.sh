#!/usr/bin/env bash
# On a host whose kernel can load rdma_rxe (and we are root), builds the same two-port
# soft-RoCE network the VM has (scripts/vm/guest-init.sh), so the RDMA tier runs without
# the VM: veth0 10.77.0.1/24 ─ rxe0, veth1 10.77.0.2/24 ─ rxe1. Exits non-zero, quietly,
# where that is impossible (no module, not root); test.sh then boots the VM.
# On real RDMA hardware, point the tests at your ports instead:
#   RDMA_TEST_ADDR_A=<ip of port A> RDMA_TEST_ADDR_B=<ip of port B> npm run test:rdma:host
set -u
[[ $(id -u) == 0 ]] || exit 1
modprobe rdma_rxe 2>/dev/null && modprobe veth 2>/dev/null || exit 1
modprobe rdma_ucm 2>/dev/null; modprobe ib_uverbs 2>/dev/null
ip link show veth0 >/dev/null 2>&1 || ip link add veth0 type veth peer name veth1 || exit 1
ip addr replace 10.77.0.1/24 dev veth0 && ip addr replace 10.77.0.2/24 dev veth1 || exit 1
ip link set veth0 up && ip link set veth1 up || exit 1
[[ -e /sys/class/infiniband/rxe0 ]] || rdma link add rxe0 type rxe netdev veth0 || exit 1
[[ -e /sys/class/infiniband/rxe1 ]] || rdma link add rxe1 type rxe netdev veth1 || exit 1
