#!/usr/bin/env bash
# The whole test suite, from a fresh clone: `npm test`.
#   1. Debian packages and npm dependencies, the addon and the compiled TypeScript;
#   2. host tier (vitest, test/host): no RDMA needed;
#   3. RDMA tier (vitest, test/rdma) against real verbs on soft-RoCE: directly on a host
#      that has RDMA devices (or can load rdma_rxe), otherwise inside the qemu VM that
#      scripts/vm/run.sh boots (the project's own machines and CI: no rdma_rxe there).
# Exits non-zero if any tier fails or cannot run; a tier that cannot run says why.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
step() { printf '\n=== %s ===\n' "$*"; }

step "dependencies"
bash scripts/deps.sh || exit 1
node scripts/bootstrap.mjs || exit 1

step "host tier"
npx vitest run --config vitest.config.ts
host_rc=$?

step "RDMA tier"
if [[ -n "$(ls /sys/class/infiniband 2>/dev/null)" ]] || bash scripts/rdma-host-setup.sh; then
  echo "RDMA devices on this host: $(ls /sys/class/infiniband | tr '\n' ' ') — running without the VM"
  npx vitest run --config vitest.rdma.config.ts
  rdma_rc=$?
else
  echo "this kernel cannot load rdma_rxe: running the RDMA tier inside the soft-RoCE VM"
  bash scripts/vm/run.sh --timeout "${RDMA_TIER_TIMEOUT:-1800}" -- npx vitest run --config vitest.rdma.config.ts
  rdma_rc=$?
fi

step "summary"
echo "host tier: $([[ $host_rc == 0 ]] && echo passed || echo "FAILED (exit $host_rc)")"
echo "RDMA tier: $([[ $rdma_rc == 0 ]] && echo passed || echo "FAILED (exit $rdma_rc)")"
[[ $host_rc == 0 && $rdma_rc == 0 ]]
