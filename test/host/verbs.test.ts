// The binding's TypeScript face and error paths on a host without RDMA devices (the
// project's machines and CI): everything here runs where rdma-core is installed but no
// device exists. Byte layouts are written out by hand from native/qp.h, not produced by
// the encoder under test.
import { describe, expect, test } from 'vitest';
import { RecvBatch, SendBatch, UNSIGNALED_WR_ID } from '../../lib/verbs/wr.js';
import { native, nativeAvailable, requireDevices, unavailable } from '../../lib/verbs/binding.js';
import { sys } from '../../lib/verbs/sys.js';
import { mkdtempSync, openSync, closeSync, writeSync, fstatSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe('work-request records', () => {
  test('a send WR with one SGE: header then SGE, addresses split low/high', () => {
    const b = new SendBatch(2).add(0x1_0000_0007, 4, 2, 0x7f12_3456_7000, 4096, 0xabcd, 0x5555_0000_1000, 0x1234, 99);
    expect(b.count).toBe(1);
    expect(Array.from(b.words.subarray(0, 14))).toEqual([
      7,
      1, // wr_id
      4,
      2,
      1,
      99,
      0x1234,
      0, // opcode, flags, num_sge, imm/inv, rkey, reserved
      0x0000_1000,
      0x5555, // remote_addr
      0x3456_7000,
      0x7f12,
      4096,
      0xabcd, // sge: addr lo/hi, length, lkey
    ]);
  });

  test('a zero-length send has no SGE; batches pack back to back', () => {
    const b = new SendBatch(2).add(1, 0, 0, 0, 0, 0).add(2, 4, 0, 8, 16, 3);
    expect(Array.from(b.words.subarray(0, 24))).toEqual([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 4, 0, 1, 0, 0, 0, 0, 0, 8, 0, 16, 3]);
    expect(() => b.add(3, 0, 0, 0, 0, 0)).toThrow(RangeError);
    expect(b.reset().count).toBe(0);
  });

  test('a prebuilt table: offsetOf() finds each WR, setWrId()/setFlags() patch it in place', () => {
    const b = new SendBatch(3, 2);
    b.begin(1, 4, 0, 2).sge(0x1000, 8, 5).sge(0x2000, 8, 5); // 10 + 2*4 words
    b.add(UNSIGNALED_WR_ID, 0, 2, 0x3000, 16, 6, 0x7f00_0000_0000, 9);
    expect([b.offsetOf(0), b.offsetOf(1)]).toEqual([0, 18]);
    b.setWrId(1, 2 ** 36 + 3).setFlags(1, 0);
    expect(Array.from(b.words.subarray(18, 22))).toEqual([3, 16, 0, 0]);
    expect(Array.from(b.words.subarray(26, 28))).toEqual([0, 0x7f00]); // remote address untouched
    b.setWrId(1, 7);
    expect(Array.from(b.words.subarray(18, 20))).toEqual([7, 0]);
    expect(UNSIGNALED_WR_ID).toBe(0x3fffffff);
    const r = new RecvBatch(4).add(1, 0x1000, 64, 3).add(2, 0x2000, 64, 3);
    expect(r.offsetOf(1)).toBe(8);
    r.setWrId(1, 2 ** 40);
    expect(Array.from(r.words.subarray(8, 10))).toEqual([0, 256]);
  });

  test('recv WRs', () => {
    const r = new RecvBatch(1).add(2 ** 40 + 5, 2 ** 33, 8268, 77);
    expect(Array.from(r.words)).toEqual([5, 256, 1, 0, 0, 2, 8268, 77]);
    expect(() => r.add(1, 0, 0, 0)).toThrow(RangeError);
  });
});

describe('the native addon without RDMA devices', () => {
  test('loads (rdma-core is installed by scripts/deps.sh)', () => {
    expect(nativeAvailable()).toBe(true);
  });

  test('lists no devices and requireDevices() says what to do', () => {
    if (native().listDevices().length > 0) return expect(requireDevices().length).toBeGreaterThan(0);
    expect(native().listDevices()).toEqual([]);
    expect(() => requireDevices()).toThrow(
      expect.objectContaining({ code: 'ERR_RDMA_UNAVAILABLE', message: expect.stringMatching(/rdma_rxe|scripts\/vm\/run\.sh/) }),
    );
  });

  test('opening an unknown device fails with code ENODEV', () => {
    expect(() => new (native().Context)('no-such-device', () => {})).toThrow(expect.objectContaining({ code: 'ENODEV' }));
    expect(native().liveObjects().contexts).toBe(0);
  });

  test('RDMA/CM without devices fails with errno code and the failing call', () => {
    if (native().listDevices().length > 0) return;
    expect(() => new (native().CmEventChannel)(() => {})).toThrow(expect.objectContaining({ code: 'ENODEV', syscall: 'rdma_create_event_channel' }));
  });

  test('argument errors are TypeErrors, not crashes', () => {
    const n = native();
    expect(() => new n.ProtectionDomain({} as never)).toThrow();
    expect(() => new n.CompletionQueue(undefined as never, 1, Buffer.alloc(32), () => {})).toThrow(TypeError);
    expect(() => n.allocAligned(-1)).toThrow(RangeError);
  });

  test('allocAligned gives zeroed, page-aligned memory', () => {
    const b = native().allocAligned(3 * 4096);
    expect(b.length).toBe(3 * 4096);
    expect(b.every((x) => x === 0)).toBe(true);
    // Node exposes no address; the byteOffset of an external buffer is 0 and the pointer
    // itself is checked by the RDMA tier through MemoryRegion.address.
    expect(b.byteOffset).toBe(0);
  });

  test('the CQ poll budget: bad values are RangeErrors; the counters start at zero', () => {
    const cq = native().CompletionQueue;
    for (const bad of [-1, 1e6 + 1, Number.NaN, '5' as never, undefined as never]) expect(() => cq.setPollBudget(bad)).toThrow(RangeError);
    cq.setPollBudget(250);
    const st = cq.pollStats();
    expect(st.budgetUs).toBeCloseTo(250, 0);
    expect(st.expectedGapUs).toBeCloseTo(125, 0);
    expect([st.spins, st.hits, st.spunUs]).toEqual([0, 0, 0]);
    cq.setPollBudget(0);
    expect(cq.pollStats().budgetUs).toBe(0);
  });

  test('completion status names come from libibverbs', () => {
    expect(native().wcStatusName(0)).toBe('success');
    expect(native().wcStatusName(5)).toBe('Work Request Flushed Error');
  });
});

describe('ERR_RDMA_UNAVAILABLE says what is missing and what to do', () => {
  // dlopen's messages as node reports them when the addon's libraries are absent.
  const cases: [string, string, RegExp][] = [
    ['libibverbs', 'libibverbs.so.1: cannot open shared object file: No such file or directory', /libibverbs\.so\.1 is missing \(rdma-core's verbs library\)/],
    ['librdmacm', 'librdmacm.so.1: cannot open shared object file: No such file or directory', /librdmacm\.so\.1 is missing \(rdma-core's RDMA\/CM library\)/],
    ['no build', 'No native build was found for platform=linux arch=x64 runtime=node abi=115', /native addon is not built/],
    ['other', 'undefined symbol: ibv_foo', /failed to load \(undefined symbol: ibv_foo\)/],
  ];
  for (const [name, dlerror, says] of cases)
    test(name, () => {
      const cause = new Error(dlerror);
      const e = unavailable(cause) as NodeJS.ErrnoException;
      expect(e.code).toBe('ERR_RDMA_UNAVAILABLE');
      expect(e.message).toMatch(says);
      expect(e.message).toMatch(/apt-get install rdma-core libibverbs-dev librdmacm-dev/);
      expect(e.message).toMatch(/npm run build:native/);
      expect(e.cause).toBe(cause);
    });
});

describe('system helpers for file backstores', () => {
  test('punchHole deallocates, seekData/seekHole find the extents', () => {
    const s = sys();
    expect(s).toBeDefined();
    const dir = mkdtempSync(join(tmpdir(), 'rt-sys-'));
    const path = join(dir, 'lun');
    const fd = openSync(path, 'w+');
    try {
      const mb = Buffer.alloc(1 << 20, 0xab);
      for (let i = 0; i < 4; i++) writeSync(fd, mb, 0, mb.length, i << 20);
      const before = fstatSync(fd).blocks;
      try {
        s!.punchHole(fd, 1 << 20, 2 << 20);
      } catch (e) {
        // tmpfs and ext4 support it; say loudly which filesystem does not.
        throw new Error(`fallocate(PUNCH_HOLE) unsupported on ${tmpdir()}: ${(e as Error).message}`);
      }
      expect(fstatSync(fd).blocks).toBeLessThan(before);
      expect(fstatSync(fd).size).toBe(4 << 20);
      expect(s!.seekHole(fd, 0)).toBe(1 << 20);
      expect(s!.seekData(fd, 1 << 20)).toBe(3 << 20);
      expect(s!.seekData(fd, 4 << 20)).toBe(-1);
      expect(() => s!.blockDeviceInfo(fd)).toThrow(expect.objectContaining({ code: 'ENOTTY' }));
      expect(() => s!.punchHole(-1, 0, 1)).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'fallocate' }));
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true });
    }
  });
});

describe('deterministic close', () => {
  test('native objects are Disposable: `using` closes them', () => {
    const n = native();
    const proto = (n.CmId as unknown as { prototype: Record<symbol, unknown> }).prototype;
    expect(typeof proto[Symbol.dispose]).toBe('function');
  });
});
