import { mkdtemp, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileBackstore } from '../../../lib/backstore/file.js';
import { RamBackstore } from '../../../lib/backstore/ram.js';
import { blockDeviceGeometry } from '../../../lib/backstore/block.js';
import { cdb10, cdb16, Harness, hex } from '../scsi/helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rdma-target-bs-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('RAM backstore', () => {
  it('view() is the memory itself; thin bookkeeping follows written()/unmap()', async () => {
    const mem = new Uint8Array(8 * 4096);
    const b = new RamBackstore({ blockSize: 4096, blockCount: 8, memory: mem, thin: true });
    expect(b.view(2, 1).buffer).toBe(mem.buffer);
    expect(await b.lbaStatus(0)).toEqual({ mapped: false, blocks: 8 });
    b.written(2, 3);
    expect(await b.lbaStatus(0)).toEqual({ mapped: false, blocks: 2 });
    expect(await b.lbaStatus(2)).toEqual({ mapped: true, blocks: 3 });
    await b.unmap([{ lba: 3, blocks: 1 }]);
    expect(await b.lbaStatus(3)).toEqual({ mapped: false, blocks: 1 });
    expect(await b.lbaStatus(4)).toEqual({ mapped: true, blocks: 1 });
  });
});

describe('file backstore', () => {
  for (const bs of [512, 4096]) {
    it(`creates the file and round-trips through the core (${bs}-byte blocks, chunked beyond 1 MiB)`, async () => {
      const path = join(dir, `lun-${bs}.img`);
      const b = await FileBackstore.open({ path, blockSize: bs, size: 4 << 20 });
      expect(b.blockCount).toBe((4 << 20) / bs);
      expect((await stat(path)).size).toBe(4 << 20);
      const h = Harness.of(b);
      await h.ready();
      const blocks = Math.ceil((1.5 * (1 << 20)) / bs);
      const data = new Uint8Array(blocks * bs).map((_, i) => (i * 31) & 0xff);
      expect((await h.cmd(cdb10(0x2a, 3, blocks, 0x08), { out: data })).status).toBe(0);
      const r = await h.cmd(cdb16(0x88, 3, blocks), { expected: data.length });
      expect(r.status).toBe(0);
      expect(hex(r.data) === hex(data)).toBe(true);
      // UNMAP without a hole punch writes zeroes.
      await b.unmap([{ lba: 3, blocks: 2 }]);
      const z = new Uint8Array(2 * bs);
      await b.read(3, 2, z);
      expect(z.every((x) => x === 0)).toBe(true);
      expect((await h.cmd([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0])).status).toBe(0);
      await b.close();
    });
  }
  it('a partial-block short write keeps the rest of the block', async () => {
    const b = await FileBackstore.open({ path: join(dir, 'partial.img'), blockSize: 512, size: 65536 });
    await b.write(0, 1, new Uint8Array(512).fill(4));
    const h = Harness.of(b);
    await h.ready();
    expect((await h.cmd(cdb10(0x2a, 0, 1), { out: new Uint8Array(200).fill(8), expected: 200 })).transferred).toBe(512);
    const r = new Uint8Array(512);
    await b.read(0, 1, r);
    expect([r[0], r[199], r[200], r[511]]).toEqual([8, 8, 4, 4]);
    await b.close();
  });
  it('read-only files refuse to grow', async () => {
    const path = join(dir, 'small.img');
    await writeFile(path, new Uint8Array(4096));
    await expect(FileBackstore.open({ path, blockSize: 512, size: 8192, readOnly: true })).rejects.toThrow(/read-only/);
    const b = await FileBackstore.open({ path, blockSize: 512, readOnly: true });
    expect(b.blockCount).toBe(8);
    expect(b.readOnly).toBe(true);
    await b.close();
  });
});

describe('block backstore geometry', () => {
  it('reads size (512-byte sectors) and logical block size from sysfs', async () => {
    const sys = join(dir, 'sys');
    await mkdir(join(sys, 'fake0', 'queue'), { recursive: true });
    await writeFile(join(sys, 'fake0', 'size'), '2048\n');
    await writeFile(join(sys, 'fake0', 'queue', 'logical_block_size'), '4096\n');
    await writeFile(join(dir, 'fake0'), '');
    expect(await blockDeviceGeometry(join(dir, 'fake0'), sys)).toEqual({ bytes: 1 << 20, logicalBlockSize: 4096 });
  });
});

describe('file backstore provisioning through the binding', () => {
  it('UNMAP punches holes and lbaStatus reports them; without the hole punch it writes zeroes', async () => {
    const { setPunchHole } = await import('../../../lib/backstore/file.js');
    const path = join(dir, 'thin.img');
    const bs = 4096;
    const b = await FileBackstore.open({ path, blockSize: bs, size: 1024 * bs });
    await b.write(0, 1024, new Uint8Array(1024 * bs).fill(0x5a));
    const full = (await stat(path)).blocks;
    expect(await b.lbaStatus!(0)).toEqual({ mapped: true, blocks: 1024 });
    await b.unmap([{ lba: 256, blocks: 512 }]);
    expect((await stat(path)).blocks).toBeLessThan(full);
    expect(await b.lbaStatus!(0)).toEqual({ mapped: true, blocks: 256 });
    expect(await b.lbaStatus!(300)).toEqual({ mapped: false, blocks: 468 });
    expect(await b.lbaStatus!(768)).toEqual({ mapped: true, blocks: 256 });
    const back = new Uint8Array(bs);
    await b.read(300, 1, back);
    expect(back.every((x) => x === 0)).toBe(true);
    // The fallback where the addon is absent: zeroes written, the range stays allocated.
    setPunchHole(undefined);
    try {
      await b.unmap([{ lba: 0, blocks: 16 }]);
      expect((await b.lbaStatus!(0)).mapped).toBe(true);
      await b.read(5, 1, back);
      expect(back.every((x) => x === 0)).toBe(true);
    } finally {
      setPunchHole(null);
    }
    await b.close();
  });
});
