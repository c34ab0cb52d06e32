// COMPARE AND WRITE is atomic (SBC-3 5.2): no write to its range lands between its read
// and its write. The backstore here has no view() (like a file) and delays every I/O
// randomly, so concurrent commands interleave as much as they can.

import { describe, expect, it } from 'vitest';
import { RamBackstore } from '../../../lib/backstore/ram.js';
import type { Backstore } from '../../../lib/backstore/types.js';
import { DataDirection, TaskAttribute, type ScsiCompletion } from '../../../lib/scsi/types.js';
import { cdb10, cdb16, Harness, nexusA, nexusB } from './helpers.js';
import { submitAsync } from './async-io.js';

const pause = () => new Promise<void>((r) => setTimeout(r, Math.floor(Math.random() * 3)));

/** A RAM backstore behind asynchronous, randomly slow I/O and no zero-copy view. */
function slowBackstore(blockCount: number): Backstore {
  const inner = new RamBackstore({ blockSize: 512, blockCount });
  return {
    blockSize: 512,
    blockCount,
    readOnly: false,
    async read(lba, blocks, into) {
      await pause();
      await inner.read(lba, blocks, into);
    },
    async write(lba, blocks, from) {
      await pause();
      await inner.write(lba, blocks, from);
    },
    flush: async () => {},
    unmap: (r) => inner.unmap(r),
    close: async () => {},
  };
}

let tag = 1;
function submit(h: Harness, cdb: number[], data: Uint8Array, nexus = nexusA): Promise<ScsiCompletion> {
  return submitAsync(
    h.view,
    { lun: 0n, cdb: Uint8Array.from(cdb), tag: tag++, attribute: TaskAttribute.Simple, expectedLength: data.length, direction: DataDirection.Write },
    nexus,
    {
      async dataOut(into, offset) {
        await pause();
        into.set(data.subarray(offset, offset + into.length));
      },
      dataIn: async () => {},
    },
  );
}

function compareAndWrite(lba: number, blocks: number, expect: number, write: number): [number[], Uint8Array] {
  const c = cdb16(0x89, lba, 0);
  c[13] = blocks;
  const d = new Uint8Array(2 * blocks * 512);
  d.fill(expect, 0, blocks * 512);
  d.fill(write, blocks * 512);
  return [c, d];
}

async function readBlock(h: Harness, lba: number): Promise<Uint8Array> {
  return (await h.cmd(cdb10(0x28, lba, 1), { expected: 512 })).data;
}

describe('COMPARE AND WRITE atomicity', () => {
  it('of eight concurrent test-and-set COMPARE AND WRITEs on one block exactly one wins', async () => {
    for (let round = 0; round < 10; round++) {
      const h = Harness.of(slowBackstore(16));
      await h.ready();
      await h.ready(nexusB);
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) => {
          const [c, d] = compareAndWrite(4, 1, 0, i + 1);
          return submit(h, c, d, i % 2 ? nexusB : nexusA);
        }),
      );
      const winners = results.map((r, i) => (r.status === 0 ? i + 1 : 0)).filter((x) => x);
      expect(winners.length).toBe(1);
      for (const r of results) if (r.status !== 0) expect(r.sense![2]! & 0x0f).toBe(0x0e); // MISCOMPARE
      expect((await readBlock(h, 4)).every((x) => x === winners[0])).toBe(true);
    }
  });

  it('a WRITE overlapping a COMPARE AND WRITE never lands between its compare and its write', async () => {
    for (let round = 0; round < 30; round++) {
      const h = Harness.of(slowBackstore(16));
      await h.ready();
      await h.ready(nexusB);
      // C&W on blocks 2-3 expecting zeroes; a WRITE of 0xbb to blocks 3-5 races it.
      const [c, d] = compareAndWrite(2, 2, 0, 0xaa);
      const [cw, w] = await Promise.all([submit(h, c, d), submit(h, cdb10(0x2a, 3, 3), new Uint8Array(3 * 512).fill(0xbb), nexusB)]);
      expect(w.status).toBe(0);
      const b2 = (await readBlock(h, 2))[0];
      const b3 = (await readBlock(h, 3))[0];
      if (cw.status === 0) {
        // The C&W went first (it saw zeroes), so the WRITE came after it.
        expect([b2, b3]).toEqual([0xaa, 0xbb]);
      } else {
        // The WRITE went first; the C&W saw 0xbb in block 3 and wrote nothing.
        expect(cw.sense![2]! & 0x0f).toBe(0x0e);
        expect([b2, b3]).toEqual([0, 0xbb]);
      }
    }
  });
});
