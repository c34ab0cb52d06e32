import { mkdtemp, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { FileBackstore } from '../../../lib/backstore/file.js';
import { RamBackstore } from '../../../lib/backstore/ram.js';
import { BlockBackstore, blockDeviceGeometry, sysfsGeometry } from '../../../lib/backstore/block.js';
import { setBackstoreSys, type BackstoreSys } from '../../../lib/backstore/native.js';
import { sys as nativeSys } from '../../../lib/verbs/sys.js';
import { cdb10, cdb16, Harness, hex } from '../scsi/helpers.js';
import { submitAsync } from '../scsi/async-io.js';

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

afterEach(() => setBackstoreSys(null));

/** A stand-in for the binding's helpers: records hole punches, answers seeks from a map of holes. */
function fakeSys(opts: { holes?: Array<[number, number]>; punchError?: string; device?: { sizeBytes: number; logicalBlockSize: number } } = {}) {
  const punched: Array<[number, number]> = [];
  const holes = opts.holes ?? [];
  const inHole = (off: number) => holes.find(([a, b]) => off >= a && off < b);
  const s: BackstoreSys = {
    punchHole(_fd, offset, length) {
      if (opts.punchError) throw Object.assign(new Error('fallocate'), { code: opts.punchError });
      punched.push([offset, length]);
    },
    seekData(_fd, offset) {
      const h = inHole(offset);
      return h ? h[1] : offset;
    },
    seekHole(_fd, offset) {
      const next = holes.filter(([a]) => a >= offset).sort((x, y) => x[0] - y[0])[0];
      return next ? next[0] : Number.MAX_SAFE_INTEGER;
    },
    blockDeviceInfo() {
      if (!opts.device) throw Object.assign(new Error('ioctl'), { code: 'ENOTTY' });
      return opts.device;
    },
  };
  return { s, punched };
}

describe('RAM backstore options', () => {
  it('refuses a block size that is not a power of two >= 512 and memory that is too small', () => {
    expect(() => new RamBackstore({ blockSize: 520, blockCount: 1 })).toThrow(RangeError);
    expect(() => new RamBackstore({ blockSize: 256, blockCount: 1 })).toThrow(RangeError);
    expect(() => new RamBackstore({ blockSize: 512, blockCount: 4, memory: new Uint8Array(2047) })).toThrow(/need 2048/);
  });
  it('Data-In and Data-Out of plain READ/WRITE are the injected memory itself (zero copy)', async () => {
    const mem = new Uint8Array(16 * 512);
    const h = Harness.of(new RamBackstore({ blockSize: 512, blockCount: 16, memory: mem }));
    await h.ready();
    const seen: Uint8Array[] = [];
    const io = {
      async dataOut(into: Uint8Array) {
        seen.push(into);
        into.fill(0x5c);
      },
      async dataIn(from: Uint8Array) {
        seen.push(from);
      },
    };
    const cmd = (cdb: number[], direction: number) =>
      submitAsync(
        h.view,
        { lun: 0n, cdb: Uint8Array.from(cdb), tag: 1, attribute: 0, expectedLength: 1024, direction },
        { initiatorPort: 'i', targetPort: 't', relativePortId: 1, transport: 0, transportId: new Uint8Array([5]) },
        io,
      );
    await cmd([0, 0, 0, 0, 0, 0], 0);
    expect((await cmd(cdb10(0x2a, 2, 2), 1)).status).toBe(0);
    expect((await cmd(cdb10(0x28, 2, 2), 2)).status).toBe(0);
    expect(seen.map((b) => [b.buffer === mem.buffer, b.byteOffset, b.length])).toEqual([
      [true, 1024, 1024],
      [true, 1024, 1024],
    ]);
    expect(mem[1024]).toBe(0x5c);
  });
});

describe('file backstore: stable storage', () => {
  it('FUA writes and SYNCHRONIZE CACHE reach fdatasync; plain writes do not', async () => {
    const b = await FileBackstore.open({ path: join(dir, 'fua.img'), blockSize: 512, size: 1 << 20 });
    const fh = (b as unknown as { fh: { datasync(): Promise<void> } }).fh;
    const spy = vi.spyOn(fh, 'datasync');
    const h = Harness.of(b);
    await h.ready();
    await h.cmd(cdb10(0x2a, 0, 1), { out: new Uint8Array(512) });
    expect(spy).toHaveBeenCalledTimes(0);
    await h.cmd(cdb10(0x2a, 0, 1, 0x08), { out: new Uint8Array(512) }); // FUA
    expect(spy).toHaveBeenCalledTimes(1);
    await h.cmd(cdb16(0x8a, 0, 1, 0x08), { out: new Uint8Array(512) });
    expect(spy).toHaveBeenCalledTimes(2);
    await h.cmd(cdb10(0x2e, 0, 1), { out: new Uint8Array(512) }); // WRITE AND VERIFY: stable before verified
    expect(spy).toHaveBeenCalledTimes(3);
    await h.cmd([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    await h.cmd(cdb16(0x91, 0, 0));
    expect(spy).toHaveBeenCalledTimes(5);
    // The caching mode page tells the initiator there is a write cache to flush (WCE).
    expect((await h.cmd([0x1a, 0x08, 0x08, 0, 0xff, 0])).data[4 + 2]! & 0x04).toBe(0x04);
    await b.close();
    await b.close(); // idempotent
  });
});

describe('file backstore provisioning: both paths of the native adapter', () => {
  const bs = 4096;
  async function thinFile(name: string): Promise<{ b: FileBackstore; h: Harness; path: string }> {
    const path = join(dir, name);
    const b = await FileBackstore.open({ path, blockSize: bs, size: 1024 * bs });
    await b.write(0, 1024, new Uint8Array(1024 * bs).fill(0x5a));
    return { b, h: Harness.of(b, true), path };
  }
  const unmapList = (lba: number, blocks: number) => {
    const p = new Uint8Array(24);
    p[1] = 22;
    p[3] = 16;
    new DataView(p.buffer).setUint32(12, lba);
    new DataView(p.buffer).setUint32(16, blocks);
    return p;
  };

  it.skipIf(!nativeSys())('native: UNMAP through the core punches a hole that GET LBA STATUS reports', async () => {
    const { b, h, path } = await thinFile('thin-native.img');
    await h.ready();
    const full = (await stat(path)).blocks;
    expect((await h.cmd([0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], { out: unmapList(256, 512) })).status).toBe(0);
    expect((await stat(path)).blocks).toBeLessThan(full);
    const s = await h.cmd(cdb16(0x9e, 300, 24, 0x12));
    expect(hex(s.data)).toBe('00000014' + '00000000' + '000000000000012c' + '000001d4' + '01000000');
    expect(hex((await h.cmd(cdb16(0x9e, 0, 24, 0x12))).data.subarray(8))).toBe('0000000000000000' + '00000100' + '00000000');
    const r = await h.cmd(cdb10(0x28, 300, 1), { expected: bs });
    expect(r.data.every((x) => x === 0)).toBe(true);
    await b.close();
  });

  it('with helpers: UNMAP calls punchHole with byte ranges; lbaStatus follows SEEK_DATA/SEEK_HOLE', async () => {
    const { s, punched } = fakeSys({ holes: [[256 * bs, 768 * bs]] });
    setBackstoreSys(s);
    const { b, h } = await thinFile('thin-fake.img');
    await h.ready();
    expect((await h.cmd([0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], { out: unmapList(256, 512) })).status).toBe(0);
    expect(punched).toEqual([[256 * bs, 512 * bs]]);
    expect(await b.lbaStatus(0)).toEqual({ mapped: true, blocks: 256 });
    expect(await b.lbaStatus(300)).toEqual({ mapped: false, blocks: 468 });
    expect(await b.lbaStatus(768)).toEqual({ mapped: true, blocks: 256 });
    await b.close();
  });

  it('where the file system cannot punch holes (EOPNOTSUPP), UNMAP writes zeroes', async () => {
    setBackstoreSys(fakeSys({ punchError: 'EOPNOTSUPP' }).s);
    const { b } = await thinFile('thin-eopnotsupp.img');
    await b.unmap([{ lba: 5, blocks: 2 }]);
    const back = new Uint8Array(3 * bs);
    await b.read(4, 3, back);
    expect([back[0], back[bs], back[3 * bs - 1]]).toEqual([0x5a, 0, 0]);
    await b.close();
  });

  it('without the addon: UNMAP writes zeroes and every block reads as mapped', async () => {
    setBackstoreSys(undefined);
    const { b, h, path } = await thinFile('thin-none.img');
    await h.ready();
    const full = (await stat(path)).blocks;
    expect((await h.cmd([0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], { out: unmapList(16, 16) })).status).toBe(0);
    expect((await stat(path)).blocks).toBe(full);
    expect(await b.lbaStatus(20)).toEqual({ mapped: true, blocks: 1004 });
    const r = await h.cmd(cdb10(0x28, 16, 16), { expected: 16 * bs });
    expect(r.data.every((x) => x === 0)).toBe(true);
    expect((await h.cmd(cdb10(0x28, 15, 1), { expected: bs })).data[0]).toBe(0x5a);
    await b.close();
  });
});

describe('block backstore geometry', () => {
  async function fakeSysfs(): Promise<{ sys: string; dev: string }> {
    const sys = join(dir, 'sys');
    await mkdir(join(sys, 'fake0', 'queue'), { recursive: true });
    await writeFile(join(sys, 'fake0', 'size'), '2048\n');
    await writeFile(join(sys, 'fake0', 'queue', 'logical_block_size'), '4096\n');
    const dev = join(dir, 'fake0');
    await writeFile(dev, new Uint8Array(1 << 20));
    return { sys, dev };
  }

  it("sysfs: size in 512-byte sectors and the queue's logical block size (partitions use the parent's)", async () => {
    const { sys, dev } = await fakeSysfs();
    expect(await sysfsGeometry(dev, sys)).toEqual({ bytes: 1 << 20, logicalBlockSize: 4096 });
    await mkdir(join(sys, 'fake0', 'fake0p1'), { recursive: true });
    await writeFile(join(sys, 'fake0', 'fake0p1', 'size'), '8\n');
    await writeFile(join(dir, 'fake0p1'), '');
    // A partition's sysfs directory sits inside its disk's.
    const { symlink } = await import('node:fs/promises');
    await symlink(join(sys, 'fake0', 'fake0p1'), join(sys, 'fake0p1')).catch(() => {});
    expect(await sysfsGeometry(join(dir, 'fake0p1'), sys)).toEqual({ bytes: 4096, logicalBlockSize: 4096 });
  });

  it('the device ioctls win where the addon has them; sysfs otherwise', async () => {
    const { sys, dev } = await fakeSysfs();
    setBackstoreSys(fakeSys({ device: { sizeBytes: 512 * 1024, logicalBlockSize: 512 } }).s);
    expect(await blockDeviceGeometry(dev, sys)).toEqual({ bytes: 512 * 1024, logicalBlockSize: 512 });
    setBackstoreSys(fakeSys().s); // ENOTTY from the ioctl
    expect(await blockDeviceGeometry(dev, sys)).toEqual({ bytes: 1 << 20, logicalBlockSize: 4096 });
    setBackstoreSys(undefined);
    expect(await blockDeviceGeometry(dev, sys)).toEqual({ bytes: 1 << 20, logicalBlockSize: 4096 });
  });

  it("BlockBackstore exports the device's block size by default and refuses one that is not a multiple of it", async () => {
    const { sys, dev } = await fakeSysfs();
    setBackstoreSys(undefined);
    const b = await BlockBackstore.open({ path: dev, sysRoot: sys });
    expect([b.blockSize, b.blockCount]).toEqual([4096, 256]);
    await b.close();
    await expect(BlockBackstore.open({ path: dev, sysRoot: sys, blockSize: 512 })).rejects.toThrow(/not a multiple/);
  });
});
