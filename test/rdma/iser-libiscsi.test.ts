// libiscsi's iscsi-test-cu over iser:// against rdma-target, inside the VM, through
// scripts/conformance.sh --transport iser (docs/conformance.md, "Over iSER"). The client is
// unreliable over iSER: it aborts or segfaults at varying points against every target
// (docs/rxe-vm.md), so a crash is recorded, not failed; what fails the test is a
// test that ran to a verdict and FAILED, or too few verdicts to mean anything.
import { spawn } from 'node:child_process';
import { describe, expect, test } from 'vitest';

const inVm = process.env.RDMA_TARGET_VM === '1';
// Families that reached a verdict for every test in the recorded full run, SCSI and iSCSI
// groups both; their results over TCP are 100 % passed or skipped.
const FAMILIES = [
  'Read12',
  'Read16',
  'ReadCapacity10',
  'ReadCapacity16',
  'Write12',
  'Write16',
  'Verify10',
  'Verify12',
  'Verify16',
  'WriteVerify10',
  'WriteVerify12',
  'Prefetch10',
  'Prefetch16',
  'PrinReadKeys',
  'ProutRegister',
  'ProutClear',
  'ProutPreempt',
  'ReceiveCopyResults',
  'ReportSupportedOpcodes',
  'ReadOnly',
  'WriteSame10',
  'TestUnitReady',
];

function run(cmd: string, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout!.on('data', (d) => (out += d));
    c.stderr!.on('data', (d) => (out += d));
    c.on('exit', (code) => resolve({ code, out }));
  });
}

describe('libiscsi iscsi-test-cu over iser://', () => {
  test(`${FAMILIES.length} families: no test that reaches a verdict fails`, async () => {
    if (!inVm) throw new Error('libiscsi over iSER needs the soft-RoCE VM (RDMA_TARGET_VM=1): run npm run test:rdma');
    const r = await run('bash', [
      'scripts/conformance.sh',
      '--transport',
      'iser',
      '--out',
      '/run/conformance-iser',
      '--timeout',
      '90',
      '--families',
      FAMILIES.join(' '),
    ]);
    const rows = [...r.out.matchAll(/^(\w+)\s+P (\d+)\s+F (\d+)\s+S (\d+)\s+X (\d+)/gm)].map((m) => ({
      family: m[1]!,
      p: Number(m[2]),
      f: Number(m[3]),
      s: Number(m[4]),
      x: Number(m[5]),
    }));
    const report = rows.map((x) => `${x.family} ${x.p}/${x.f}/${x.s}/${x.x}`).join(', ');
    console.log(`iser:// P/F/S/X: ${report}`);
    expect(r.code, r.out.slice(-3000)).toBe(0); // the daemon survived every family and stopped cleanly
    expect(rows.map((x) => x.family)).toEqual(FAMILIES);
    expect(
      rows.filter((x) => x.f > 0),
      r.out.slice(-3000),
    ).toEqual([]);
    // These families hold 92 tests (89 passed, 3 skipped in the recorded full run). The client
    // corrupts its own heap at start-up in a good part of its runs ("munmap_chunk(): invalid
    // pointer" before its first test), so whole families go without a verdict: 49, 69 and 75
    // passed in three runs of this test. Fewer than 15 would mean our side stopped answering.
    const passed = rows.reduce((n, x) => n + x.p, 0);
    expect(passed, report).toBeGreaterThanOrEqual(15);
  }, 900_000);
});
