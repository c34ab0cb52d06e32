import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RamBackstore } from '../../../lib/backstore/ram.js';
import { LogicalUnit } from '../../../lib/scsi/lu.js';
import { cdb10, Harness, hex, nexusA, nexusB } from './helpers.js';

function params(key: bigint, saKey: bigint, flags = 0): Uint8Array {
  const p = new Uint8Array(24);
  const dv = new DataView(p.buffer);
  dv.setBigUint64(0, key);
  dv.setBigUint64(8, saKey);
  p[20] = flags;
  return p;
}
const prOut = (sa: number, type = 0) => [0x5f, sa, type, 0, 0, 0, 0, 0, 24, 0];
const prIn = (sa: number) => [0x5e, sa, 0, 0, 0, 0, 0, 0x10, 0, 0];

async function two(): Promise<Harness> {
  const h = Harness.ram();
  await h.ready();
  await h.ready(nexusB);
  return h;
}

describe('PERSISTENT RESERVE', () => {
  it('REGISTER, READ KEYS, generation', async () => {
    const h = await two();
    expect((await h.cmd(prOut(0), { out: params(0n, 0xaan) })).status).toBe(0);
    expect((await h.cmd(prOut(0), { out: params(0n, 0xbbn), nexus: nexusB })).status).toBe(0);
    const k = await h.cmd(prIn(0));
    expect(hex(k.data)).toBe('00000002' + '00000010' + '00000000000000aa' + '00000000000000bb');
    // Wrong key: RESERVATION CONFLICT.
    expect((await h.cmd(prOut(0), { out: params(0x1n, 0xccn) })).status).toBe(0x18);
    // REGISTER AND IGNORE EXISTING KEY.
    expect((await h.cmd(prOut(6), { out: params(0n, 0xccn) })).status).toBe(0);
    expect(hex((await h.cmd(prIn(0))).data).slice(16, 32)).toBe('00000000000000cc');
  });

  it('WRITE EXCLUSIVE: others read but cannot write; RELEASE; READ RESERVATION', async () => {
    const h = await two();
    await h.cmd(prOut(0), { out: params(0n, 0xaan) });
    expect((await h.cmd(prOut(1, 1), { out: params(0xaan, 0n) })).status).toBe(0);
    const rr = await h.cmd(prIn(1));
    expect(hex(rr.data)).toBe('00000001' + '00000010' + '00000000000000aa' + '00000000' + '0001' + '0000');
    expect((await h.cmd(cdb10(0x28, 0, 1), { nexus: nexusB })).status).toBe(0);
    expect((await h.cmd(cdb10(0x2a, 0, 1), { out: new Uint8Array(512), nexus: nexusB })).status).toBe(0x18);
    expect((await h.cmd(cdb10(0x2a, 0, 1), { out: new Uint8Array(512) })).status).toBe(0);
    // Releasing with the wrong type is INVALID RELEASE OF PERSISTENT RESERVATION.
    expect(hex((await h.cmd(prOut(2, 3), { out: params(0xaan, 0n) })).sense)).toBe('700005000000000a00000000260400000000');
    expect((await h.cmd(prOut(2, 1), { out: params(0xaan, 0n) })).status).toBe(0);
    expect((await h.cmd(cdb10(0x2a, 0, 1), { out: new Uint8Array(512), nexus: nexusB })).status).toBe(0);
  });

  it('EXCLUSIVE ACCESS blocks reads; PREEMPT moves it and tells the preempted nexus', async () => {
    const h = await two();
    await h.cmd(prOut(0), { out: params(0n, 0xaan) });
    await h.cmd(prOut(0), { out: params(0n, 0xbbn), nexus: nexusB });
    await h.cmd(prOut(1, 3), { out: params(0xaan, 0n) });
    expect((await h.cmd(cdb10(0x28, 0, 1), { nexus: nexusB })).status).toBe(0x18);
    expect((await h.cmd(prOut(4, 3), { out: params(0xbbn, 0xaan), nexus: nexusB })).status).toBe(0);
    expect(hex((await h.cmd([0, 0, 0, 0, 0, 0])).sense)).toBe('700006000000000a000000002a0500000000');
    expect((await h.cmd(cdb10(0x28, 0, 1))).status).toBe(0x18);
    expect((await h.cmd(cdb10(0x28, 0, 1), { nexus: nexusB })).status).toBe(0);
  });

  it('CLEAR drops everything; REPORT CAPABILITIES; bad parameter list length', async () => {
    const h = await two();
    await h.cmd(prOut(0), { out: params(0n, 0xaan) });
    await h.cmd(prOut(1, 8), { out: params(0xaan, 0n) });
    expect((await h.cmd(prOut(3), { out: params(0xaan, 0n) })).status).toBe(0);
    expect(hex((await h.cmd(prIn(0))).data).slice(8, 16)).toBe('00000000');
    const caps = (await h.cmd(prIn(2))).data;
    expect([caps[1], caps[4], caps[5]]).toEqual([8, 0xea, 0x01]);
    const bad = [0x5f, 0, 0, 0, 0, 0, 0, 0, 20, 0];
    expect(hex((await h.cmd(bad, { out: new Uint8Array(20) })).sense)).toBe('700005000000000a000000001a0000000000');
    expect(hex((await h.cmd([0x5e, 4, 0, 0, 0, 0, 0, 0, 0x10, 0])).sense)).toBe('700005000000000a00000000240000cc0001');
  });

  it('APTPL registrations survive a new LogicalUnit over the same state directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rdma-target-pr-'));
    try {
      const bs = new RamBackstore({ blockSize: 512, blockCount: 64 });
      const lu = await new LogicalUnit({ backstore: bs, name: 'x', stateDir: dir }).open();
      const h = new Harness(lu);
      await h.ready();
      expect((await h.cmd(prOut(0), { out: params(0n, 0x1234n, 0x01) })).status).toBe(0);
      await h.cmd(prOut(1, 1), { out: params(0x1234n, 0n) });
      expect(await readFile(join(dir, `pr-${lu.serial}.json`), 'utf8')).toContain('0x1234');
      const h2 = new Harness(await new LogicalUnit({ backstore: bs, name: 'x', stateDir: dir }).open());
      await h2.ready(nexusB);
      expect(hex((await h2.cmd(prIn(1), { nexus: nexusB })).data).slice(16, 32)).toBe('0000000000001234');
      expect((await h2.cmd(cdb10(0x2a, 0, 1), { out: new Uint8Array(512), nexus: nexusB })).status).toBe(0x18);
      void nexusA;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
