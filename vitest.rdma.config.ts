import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

// The fault tests take the veth link down and black-hole the wire path; they undo what they
// set, but run them last all the same, so no other file ever meets a path they disturbed
// (a veth.test.ts run after them once saw no RDMA/CM event across the veth).
class FaultsLast extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const last = (f: TestSpecification) => (/iser-faults\.test\.ts$/.test(f.moduleId) ? 1 : 0);
    return sorted.sort((a, b) => last(a) - last(b));
  }
}

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
    sequence: { sequencer: FaultsLast },
  },
});
