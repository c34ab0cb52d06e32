// Property tests: whatever bytes arrive as a CDB, the core answers with a well-formed
// completion and never throws; LBA decoding agrees with a model for every CDB size; and
// data written through any WRITE reads back through any READ.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { commandTable } from '../../../lib/scsi/table.js';
import { DataDirection, TaskAttribute, type ScsiCompletion } from '../../../lib/scsi/types.js';
import { Harness, nexusA, nexusB } from './helpers.js';
import { submitAsync, type AsyncIo } from './async-io.js';

const STATUSES = new Set([0x00, 0x02, 0x04, 0x08, 0x18, 0x28, 0x40]);
const OPCODES = [...new Set(commandTable().map((e) => e.op))];

/** A CDB: mostly a known opcode (with a plausible service action), sometimes any byte, any length up to 32. */
const cdbArb = fc
  .tuple(
    fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...OPCODES) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) }),
    fc.oneof(fc.constantFrom(6, 10, 12, 16), fc.integer({ min: 0, max: 32 })),
    fc.uint8Array({ minLength: 32, maxLength: 32 }),
    fc.boolean(),
  )
  .map(([op, len, rest, smallLengths]) => {
    const c = rest.slice(0, len);
    if (len > 0) c[0] = op;
    // Keep transfer and allocation lengths small often enough that commands get past range checks.
    if (smallLengths) for (let i = 2; i < len; i++) c[i]! &= 0x03;
    return c;
  });

/** A CDB of a command the core knows, its bits limited to the CDB usage mask it reports (RSOC), lengths often small. */
const knownCdbArb = fc.tuple(fc.constantFrom(...commandTable()), fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.boolean()).map(([e, bytes, small]) => {
  const c = new Uint8Array(e.cdbLength);
  for (let i = 0; i < e.cdbLength; i++) c[i] = bytes[i]! & e.usage[i]!;
  c[0] = e.op;
  if (e.sa !== undefined) c[1] = (c[1]! & 0xe0) | e.sa;
  c[e.cdbLength - 1] = 0;
  if (small) for (let i = 2; i < e.cdbLength - 1; i++) c[i]! &= i === e.cdbLength - 2 || i === e.cdbLength - 3 ? 0x0f : 0;
  return c;
});

const commandArb = fc.record({
  cdb: fc.oneof(cdbArb, knownCdbArb),
  expectedLength: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 4096 }), fc.integer({ min: 0, max: 1 << 17 })),
  direction: fc.constantFrom(DataDirection.None, DataDirection.Write, DataDirection.Read),
  attribute: fc.constantFrom(TaskAttribute.Simple, TaskAttribute.Ordered, TaskAttribute.HeadOfQueue, TaskAttribute.Aca),
  second: fc.boolean(),
  lun: fc.oneof(
    { weight: 6, arbitrary: fc.constant(0n) },
    { weight: 1, arbitrary: fc.constant(7n << 48n) },
    { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) },
  ),
  dataByte: fc.integer({ min: 0, max: 255 }),
});

/** A fabric that records every data movement and checks it against the expected length. */
function recordingIo(expected: number, fill: number, direction: DataDirection): { io: AsyncIo; problems: string[] } {
  const problems: string[] = [];
  let lastIn = -1;
  return {
    problems,
    io: {
      async dataOut(into, offset) {
        if (!(direction & DataDirection.Write)) problems.push('dataOut for a command the fabric did not mark as writing');
        if (offset < 0 || offset + into.length > expected) problems.push(`dataOut ${offset}+${into.length} beyond ${expected}`);
        into.fill(fill);
      },
      async dataIn(from, offset) {
        if (!(direction & DataDirection.Read)) problems.push('dataIn for a command the fabric did not mark as reading');
        if (offset < 0 || offset + from.length > expected) problems.push(`dataIn ${offset}+${from.length} beyond ${expected}`);
        if (offset <= lastIn) problems.push(`dataIn offsets not ascending: ${offset} after ${lastIn}`);
        lastIn = offset;
      },
    },
  };
}

function wellFormed(c: ScsiCompletion): string | undefined {
  if (!STATUSES.has(c.status)) return `status ${c.status}`;
  if (!Number.isSafeInteger(c.transferred) || c.transferred < 0) return `transferred ${c.transferred}`;
  if (c.status === 0x02) {
    const s = c.sense;
    if (!s || s.length < 8) return 'CHECK CONDITION without sense';
    if (s[0] !== 0x70 && s[0] !== 0xf0 && s[0] !== 0x72) return `sense response code ${s[0]}`;
    const fixed = s[0] !== 0x72;
    if (fixed && s.length !== 8 + s[7]!) return 'fixed sense length';
    if (!fixed && s.length !== 8 + s[7]!) return 'descriptor sense length';
    const key = fixed ? s[2]! & 0x0f : s[1]! & 0x0f;
    if (key === 0) return 'CHECK CONDITION with NO SENSE';
  } else if (c.sense) {
    return 'sense without CHECK CONDITION';
  }
  return undefined;
}

describe('property: arbitrary CDBs', () => {
  it('always resolve to a well-formed completion and move data only within the expected length', async () => {
    for (const thin of [false, true]) {
      const h = Harness.ram({ blockSize: 512, blockCount: 256, thin });
      await fc.assert(
        fc.asyncProperty(commandArb, async (c) => {
          const { io, problems } = recordingIo(c.expectedLength, c.dataByte, c.direction);
          const done = await submitAsync(
            h.view,
            { lun: c.lun, cdb: c.cdb, tag: 1, attribute: c.attribute, expectedLength: c.expectedLength, direction: c.direction },
            c.second ? nexusB : nexusA,
            io,
          );
          expect(wellFormed(done)).toBeUndefined();
          expect(problems).toEqual([]);
          // Sense-key specific field pointers name a byte inside the CDB (SPC-4 4.5.2.4.2).
          const s = done.sense;
          if (s && s[0] !== 0x72 && s[2] === 0x05 && (s[15]! & 0xc0) === 0xc0) expect((s[16]! << 8) | s[17]!).toBeLessThan(Math.max(c.cdb.length, 1));
        }),
        { numRuns: Number(process.env.PROPERTY_RUNS ?? 1500) },
      );
      // The LU still works afterwards, whatever state the commands left (after its UAs).
      for (let i = 0; i < 8; i++) await h.cmd([0, 0, 0, 0, 0, 0]);
      expect((await h.cmd([0x12, 0, 0, 0, 36, 0])).status).toBe(0);
    }
  });
});

describe('property: LBA and length decoding per CDB size', () => {
  const blockCount = 1000;
  const forms = [
    {
      name: 'READ(6)',
      build: (lba: number, n: number) => [0x08, (lba >> 16) & 0x1f, (lba >> 8) & 0xff, lba & 0xff, n & 0xff, 0],
      maxLba: 0x1fffff,
      maxLen: 255,
      zeroMeans: 256,
    },
    {
      name: 'READ(10)',
      build: (lba: number, n: number) => [0x28, 0, lba >>> 24, (lba >> 16) & 0xff, (lba >> 8) & 0xff, lba & 0xff, 0, n >> 8, n & 0xff, 0],
      maxLba: 0xffffffff,
      maxLen: 0xffff,
      zeroMeans: 0,
    },
    {
      name: 'READ(12)',
      build: (lba: number, n: number) => [
        0xa8,
        0,
        lba >>> 24,
        (lba >> 16) & 0xff,
        (lba >> 8) & 0xff,
        lba & 0xff,
        n >>> 24,
        (n >> 16) & 0xff,
        (n >> 8) & 0xff,
        n & 0xff,
        0,
        0,
      ],
      maxLba: 0xffffffff,
      maxLen: 0xffffffff,
      zeroMeans: 0,
    },
    {
      name: 'READ(16)',
      build: (lba: number, n: number) => [
        0x88,
        0,
        0,
        0,
        0,
        0,
        lba >>> 24,
        (lba >> 16) & 0xff,
        (lba >> 8) & 0xff,
        lba & 0xff,
        n >>> 24,
        (n >> 16) & 0xff,
        (n >> 8) & 0xff,
        n & 0xff,
        0,
        0,
      ],
      maxLba: 0xffffffff,
      maxLen: 0xffffffff,
      zeroMeans: 0,
    },
  ];
  for (const f of forms) {
    it(`${f.name}: in range reads exactly the blocks asked for, out of range is LBA OUT OF RANGE`, async () => {
      const h = Harness.ram({ blockSize: 512, blockCount });
      await h.ready();
      const near = fc.integer({ min: 0, max: blockCount + 8 });
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(near, fc.integer({ min: 0, max: f.maxLba })),
          fc.oneof(fc.integer({ min: 0, max: 16 }), fc.integer({ min: 0, max: f.maxLen })),
          async (lba, n) => {
            const blocks = n === 0 ? f.zeroMeans : n;
            const r = await h.cmd(f.build(lba, n), { expected: 4096 });
            if (lba + blocks <= blockCount) {
              expect(r.status).toBe(0);
              expect(r.transferred).toBe(blocks * 512);
              expect(r.data.length).toBe(Math.min(blocks * 512, 4096));
            } else {
              expect(r.status).toBe(2);
              expect(r.sense![12]).toBe(0x21);
            }
          },
        ),
        { numRuns: 300 },
      );
    });
  }
});

describe('property: writes read back', () => {
  it('any sequence of WRITE(6/10/12/16) matches a model of the medium, at 512 and 4096 bytes', async () => {
    for (const bs of [512, 4096]) {
      const blockCount = 64;
      const h = Harness.ram({ blockSize: bs, blockCount });
      await h.ready();
      const model = new Uint8Array(bs * blockCount);
      const op = fc.record({
        size: fc.constantFrom(6, 10, 12, 16),
        lba: fc.integer({ min: 0, max: blockCount - 1 }),
        n: fc.integer({ min: 1, max: 8 }),
        byte: fc.integer({ min: 0, max: 255 }),
        fua: fc.boolean(),
      });
      await fc.assert(
        fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 12 }), async (ops) => {
          for (const o of ops) {
            const n = Math.min(o.n, blockCount - o.lba);
            const data = new Uint8Array(n * bs).map((_, i) => (o.byte + i) & 0xff);
            const flags = o.fua && o.size !== 6 ? 0x08 : 0;
            const cdb =
              o.size === 6
                ? [0x0a, 0, 0, o.lba, n, 0]
                : o.size === 10
                  ? [0x2a, flags, 0, 0, 0, o.lba, 0, 0, n, 0]
                  : o.size === 12
                    ? [0xaa, flags, 0, 0, 0, o.lba, 0, 0, 0, n, 0, 0]
                    : [0x8a, flags, 0, 0, 0, 0, 0, 0, 0, o.lba, 0, 0, 0, n, 0, 0];
            expect((await h.cmd(cdb, { out: data })).status).toBe(0);
            model.set(data, o.lba * bs);
          }
          const r = await h.cmd([0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, blockCount, 0, 0], { expected: model.length });
          expect(Buffer.compare(Buffer.from(r.data), Buffer.from(model))).toBe(0);
        }),
        { numRuns: 60 },
      );
    }
  });
});
