#!/usr/bin/env bash
# The whole test suite, from a fresh clone: `npm test`.
#   1. Debian packages and npm dependencies, the addon and the compiled TypeScript;
#   2. lint (scripts/lint.sh): formatter and linter check, clang-format on native/, the
#      typecheck of test/; counted as one failure in the summary when it fails;
#   3. host tier (vitest, test/host): no RDMA needed;
#   4. RDMA tier (vitest, test/rdma) against real verbs on soft-RoCE: directly on a host
#      that has RDMA devices (or can load rdma_rxe), otherwise inside the qemu VM that
#      scripts/vm/run.sh boots (the project's own machines and CI: no rdma_rxe there).
# Exits non-zero if lint or any tier fails or cannot run; a tier that cannot run says why.
# Lint failing does not stop the tiers: their results are worth having all the same.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
step() { printf '\n=== %s ===\n' "$*"; }
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
# vitest's "Tests  1 failed | 12 passed (13)" line from a tier's log, as "PASSED FAILED".
counts() {
  local line
  line=$(sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -E '^ +Tests +' | tail -1)
  echo "$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || echo 0)" \
    "$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+' || echo 0)"
}

step "dependencies"
bash scripts/deps.sh || exit 1
node scripts/bootstrap.mjs || exit 1

step "lint"
bash scripts/lint.sh
lint_rc=$?

step "host tier"
npx vitest run --config vitest.config.ts 2>&1 | tee "$logs/host"
host_rc=${PIPESTATUS[0]}

step "RDMA tier"
if [[ -n "$(ls /sys/class/infiniband 2>/dev/null)" ]] || bash scripts/rdma-host-setup.sh; then
  echo "RDMA devices on this host: $(ls /sys/class/infiniband | tr '\n' ' ') — running without the VM"
  npx vitest run --config vitest.rdma.config.ts 2>&1 | tee "$logs/rdma"
  rdma_rc=${PIPESTATUS[0]}
else
  echo "this kernel cannot load rdma_rxe: running the RDMA tier inside the soft-RoCE VM"
  bash scripts/vm/run.sh --timeout "${RDMA_TIER_TIMEOUT:-1800}" -- npx vitest run --config vitest.rdma.config.ts 2>&1 | tee "$logs/rdma"
  rdma_rc=${PIPESTATUS[0]}
fi

step "summary"
echo "lint:      $([[ $lint_rc == 0 ]] && echo passed || echo "FAILED (exit $lint_rc)")"
echo "host tier: $([[ $host_rc == 0 ]] && echo passed || echo "FAILED (exit $host_rc)")"
echo "RDMA tier: $([[ $rdma_rc == 0 ]] && echo passed || echo "FAILED (exit $rdma_rc)")"
read -r hp hf < <(counts "$logs/host")
read -r rp rf < <(counts "$logs/rdma")
# A tier that exited non-zero without a failed test (crash, timeout, no tests) counts as one failure.
[[ $host_rc != 0 && $hf == 0 ]] && hf=1
[[ $rdma_rc != 0 && $rf == 0 ]] && rf=1
lf=$([[ $lint_rc == 0 ]] && echo 0 || echo 1)
lp=$((1 - lf))
echo "total: $((hp + rp + lp)) passed, $((hf + rf + lf)) failed"
[[ $lint_rc == 0 && $host_rc == 0 && $rdma_rc == 0 ]]
