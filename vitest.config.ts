import { defineConfig } from 'vitest/config';

// Host tier: any Linux, no RDMA devices needed. Forks, not threads: each test file gets a
// process of its own (the native addon's state is per environment, so worker threads would
// also do; test/host/binding-envs.test.ts checks that).
export default defineConfig({
  test: {
    include: ['test/host/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
