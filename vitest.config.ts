import { defineConfig } from 'vitest/config';

// Host tier: any Linux, no RDMA devices needed. Forks, not threads: the native addon
// must not be loaded into worker threads.
export default defineConfig({
  test: {
    include: ['test/host/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
