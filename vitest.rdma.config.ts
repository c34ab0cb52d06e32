import { defineConfig } from 'vitest/config';

// RDMA tier: real verbs on soft-RoCE (inside the VM from scripts/vm/run.sh, or on a host
// with RDMA devices). Files run one at a time: they share rxe0/rxe1 and the ports.
export default defineConfig({
  test: {
    include: ['test/rdma/**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
