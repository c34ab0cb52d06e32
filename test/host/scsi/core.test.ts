import { describe, expect, it } from 'vitest';
import { buildSense } from '../../../lib/scsi/sense.js';
import { naaFromSerial } from '../../../lib/scsi/lu.js';
import { decodeLun, encodeLun } from '../../../lib/scsi/view.js';
import { commandTable } from '../../../lib/scsi/table.js';
import { cdb10, cdb16, Harness, hex, nexusA, nexusB } from './helpers.js';
import { submitAsync } from './async-io.js';

/** Fixed-format ILLEGAL REQUEST sense, hex, with an optional SKS (3 bytes). */
function illegal(ascAscq: string, sks = '000000'): string {
  return '70000500000000' + '0a' + '00000000' + ascAscq + '00' + sks;
}

describe('sense builder', () => {
  it('fixed format with a CDB field pointer and bit pointer', () => {
    expect(hex(buildSense(false, 5, 0x2400, { cdb: true, byte: 1, bit: 7 }))).toBe('700005000000000a00000000240000cf0001');
  });
  it('fixed format with INFORMATION sets VALID', () => {
    expect(hex(buildSense(false, 0xe, 0x1d00, undefined, 0x1234))).toBe('f0000e000012340a000000001d0000000000');
  });
  it('descriptor format with information and sense-key specific descriptors', () => {
    expect(hex(buildSense(true, 0xe, 0x1d00, { cdb: false, byte: 0x102 }, 5))).toBe('720e1d0000000014' + '000a800000000000' + '00000005' + '0206000080010200');
  });
});

describe('bad CDBs: byte-exact sense', () => {
  const table: Array<[string, number[], string]> = [
    ['unknown opcode', [0xc5, 0, 0, 0, 0, 0], illegal('2000')],
    ['unknown SERVICE ACTION IN(16) action', [0x9e, 0x1f, ...new Array(14).fill(0)], illegal('2400', 'cc0001')],
    ['INQUIRY CmdDt', [0x12, 0x02, 0, 0, 0xff, 0], illegal('2400', 'c90001')],
    ['INQUIRY page code without EVPD', [0x12, 0, 0x80, 0, 0xff, 0], illegal('2400', 'c00002')],
    ['INQUIRY unknown VPD page', [0x12, 1, 0x42, 0, 0xff, 0], illegal('2400', 'c00002')],
    ['READ(10) RDPROTECT', cdb10(0x28, 0, 1, 0x20), illegal('2400', 'cf0001')],
    ['WRITE(16) WRPROTECT', cdb16(0x8a, 0, 1, 0x40), illegal('2400', 'cf0001')],
    ['READ(10) past the end', cdb10(0x28, 2047, 2), illegal('2100')],
    ['READ(16) LBA 2^63', cdb16(0x88, 2 ** 63, 1), illegal('2100')],
    ['READ(6) past the end', [0x08, 0, 0x08, 0x00, 1, 0], illegal('2100')],
    ['REPORT LUNS allocation 15', [0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 0, 0], illegal('2400', 'c00006')],
    ['REPORT LUNS SELECT REPORT 3', [0xa0, 0, 3, 0, 0, 0, 0, 0, 1, 0, 0, 0], illegal('2400', 'c00002')],
    ['MODE SENSE(6) unknown page', [0x1a, 0, 0x05, 0, 0xff, 0], illegal('2400', 'cd0002')],
    ['MODE SENSE(6) saved values', [0x1a, 0, 0xc8, 0, 0xff, 0], illegal('3900')],
    ['READ CAPACITY(10) LBA without PMI', [0x25, 0, 0, 0, 0, 1, 0, 0, 0, 0], illegal('2400', 'c00002')],
    ['VERIFY(10) BYTCHK 10b', cdb10(0x2f, 0, 1, 0x04), illegal('2400', 'ca0001')],
    ['WRITE SAME(10) zero blocks (WSNZ)', cdb10(0x41, 0, 0), illegal('2400', 'c00007')],
    ['WRITE SAME(10) UNMAP on a thick LU', cdb10(0x41, 0, 1, 0x08), illegal('2400', 'cb0001')],
    ['SYNCHRONIZE CACHE(16) past the end', cdb16(0x91, 2048, 1), illegal('2100')],
    ['RSOC reporting option 1 for an opcode with service actions', [0xa3, 0x0c, 1, 0x9e, 0, 0, 0, 0, 1, 0, 0, 0], illegal('2400', 'ca0002')],
  ];
  for (const [name, cdb, sense] of table) {
    it(name, async () => {
      const h = Harness.ram();
      await h.ready();
      const r = await h.cmd(cdb, cdb[0] === 0x41 ? { out: new Uint8Array(512) } : {});
      expect(r.status).toBe(2);
      expect(hex(r.sense)).toBe(sense);
    });
  }

  it('descriptor format once D_SENSE is set through MODE SELECT', async () => {
    const h = Harness.ram();
    await h.ready();
    const ms = await h.cmd([0x1a, 0, 0x0a, 0, 0xff, 0]);
    const params = new Uint8Array(ms.data);
    params[0] = 0;
    params[2] = 0; // device-specific is reserved in MODE SELECT
    params[12 + 2] |= 0x04;
    expect((await h.cmd([0x15, 0x10, 0, 0, params.length, 0], { out: params })).status).toBe(0);
    const r = await h.cmd(cdb10(0x28, 2047, 2));
    expect(hex(r.sense)).toBe('7205210000000000');
  });
});

describe('unit attentions', () => {
  it('first command per I_T nexus gets POWER ON, RESET; INQUIRY does not consume it', async () => {
    const h = Harness.ram();
    expect((await h.cmd([0x12, 0, 0, 0, 36, 0])).status).toBe(0);
    const r = await h.cmd([0, 0, 0, 0, 0, 0]);
    expect(hex(r.sense)).toBe('700006000000000a00000000290000000000');
    expect((await h.cmd([0, 0, 0, 0, 0, 0])).status).toBe(0);
    expect((await h.cmd([0, 0, 0, 0, 0, 0], { nexus: nexusB })).status).toBe(2);
  });
  it('REQUEST SENSE reports and clears the UA', async () => {
    const h = Harness.ram();
    const r = await h.cmd([0x03, 0, 0, 0, 18, 0]);
    expect(r.status).toBe(0);
    expect(hex(r.data)).toBe('700006000000000a00000000290000000000');
    expect((await h.cmd([0, 0, 0, 0, 0, 0])).status).toBe(0);
  });
});

describe('identification', () => {
  it('LIO-style NAA 6 from the serial', () => {
    expect(hex(naaFromSerial('0123456789abcdef0123456789abcdef'))).toBe('60014050123456789abcdef012345678');
  });
  it('standard INQUIRY and VPD pages', async () => {
    const h = Harness.ram();
    const std = await h.cmd([0x12, 0, 0, 0, 96, 0]);
    expect(std.data[0]).toBe(0);
    expect(std.data[2]).toBe(6);
    expect(std.data.length).toBe(66);
    const p0 = await h.cmd([0x12, 1, 0, 0, 255, 0]);
    expect(hex(p0.data)).toBe('00000006008083b0b1b2');
    const p80 = await h.cmd([0x12, 1, 0x80, 0, 255, 0]);
    expect(Buffer.from(p80.data.subarray(4)).toString()).toBe('0123456789abcdef0123456789abcdef');
    const p83 = await h.cmd([0x12, 1, 0x83, 0, 255, 0]);
    expect(hex(p83.data.subarray(4, 24))).toBe('0103001060014050123456789abcdef012345678');
    const kinds: number[] = [];
    for (let o = 4; o < p83.data.length; o += 4 + p83.data[o + 3]!) kinds.push(p83.data[o + 1]! & 0x3f);
    expect(kinds).toEqual([3, 1, 0x14, 0x15, 0x18]);
    const b0 = await h.cmd([0x12, 1, 0xb0, 0, 255, 0]);
    expect(b0.data.length).toBe(64);
    expect(b0.data[4]).toBe(1);
  });
  it('allocation length truncates and the CDB length is what transferred reports', async () => {
    const h = Harness.ram();
    const r = await h.cmd([0x12, 0, 0, 0, 200, 0], { expected: 10 });
    expect(r.data.length).toBe(10);
    expect(r.transferred).toBe(66);
  });
  it('LUN encoding round-trips and unknown LUNs answer per SPC-4', async () => {
    for (const l of [0, 1, 255, 256, 16383]) expect(decodeLun(encodeLun(l))).toBe(l);
    const h = Harness.ram();
    const inq = await h.cmd([0x12, 0, 0, 0, 36, 0], { lun: encodeLun(7) });
    expect(inq.data[0]).toBe(0x7f);
    const tur = await h.cmd([0, 0, 0, 0, 0, 0], { lun: encodeLun(7) });
    expect(hex(tur.sense)).toBe(illegal('2500'));
    const rl = await h.cmd([0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], { lun: encodeLun(7) });
    expect(hex(rl.data)).toBe('00000008000000000000000000000000');
  });
});

describe('capacity, mode pages, opcodes', () => {
  it('READ CAPACITY 10/16 with LBPME/LBPRZ on thin LUs', async () => {
    const h = Harness.ram({ blockSize: 4096, blockCount: 256, thin: true });
    await h.ready();
    expect(hex((await h.cmd([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0])).data)).toBe('000000ff00001000');
    const r16 = await h.cmd([0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]);
    expect(hex(r16.data)).toBe('00000000000000ff0000100000' + '00c0' + '00'.repeat(17));
  });
  it('MODE SENSE(10) all pages, and the changeable mask', async () => {
    const h = Harness.ram();
    await h.ready();
    const all = await h.cmd([0x5a, 0, 0x3f, 0, 0, 0, 0, 1, 0, 0]);
    expect(all.status).toBe(0);
    expect(all.data.length).toBe(8 + 8 + 20 + 12 + 12);
    const ch = await h.cmd([0x1a, 0x08, 0x4a, 0, 0xff, 0]);
    expect(hex(ch.data)).toBe('0f001000' + '0a0a0400080000000000' + '0000');
  });
  it('REPORT SUPPORTED OPERATION CODES lists the table and one command', async () => {
    const h = Harness.ram();
    await h.ready();
    const all = await h.cmd([0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0]);
    // Every command of the table but UNMAP, which a fully provisioned LU does not implement.
    expect(all.data.length).toBe(4 + 8 * (commandTable().length - 1));
    const thin = Harness.ram({ thin: true });
    await thin.ready();
    expect((await thin.cmd([0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0])).data.length).toBe(4 + 8 * commandTable().length);
    expect(hex((await h.cmd([0xa3, 0x0c, 1, 0x42, 0, 0, 0, 0, 1, 0, 0, 0])).data)).toBe('00010000');
    expect(hex((await thin.cmd([0xa3, 0x0c, 1, 0x42, 0, 0, 0, 0, 1, 0, 0, 0])).data)).toBe('0003000a' + '4200000000003fffff07');
    expect(hex((await h.cmd([0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], { out: new Uint8Array(24) })).sense)).toBe(illegal('2000'));
    const one = await h.cmd([0xa3, 0x0c, 1, 0x28, 0, 0, 0, 0, 1, 0, 0, 0]);
    expect(hex(one.data)).toBe('0003000a28fcffffffff3fffff07');
  });
});

describe('read/write', () => {
  for (const bs of [512, 4096]) {
    it(`RAM round trip, ${bs}-byte blocks, every CDB size, zero copy`, async () => {
      const h = Harness.ram({ blockSize: bs, blockCount: 64 });
      await h.ready();
      const data = new Uint8Array(4 * bs).map((_, i) => (i * 7 + 3) & 0xff);
      const writes: number[][] = [[0x0a, 0, 0, 8, 4, 0], cdb10(0x2a, 8, 4, 0x08), [0xaa, 0x18, 0, 0, 0, 8, 0, 0, 0, 4, 0, 0], cdb16(0x8a, 8, 4)];
      const reads: number[][] = [[0x08, 0, 0, 8, 4, 0], cdb10(0x28, 8, 4, 0x18), [0xa8, 0, 0, 0, 0, 8, 0, 0, 0, 4, 0, 0], cdb16(0x88, 8, 4)];
      for (const w of writes) {
        data[0] = w[0]!;
        expect((await h.cmd(w, { out: data })).status).toBe(0);
        for (const r of reads) expect(hex((await h.cmd(r, { expected: 4 * bs })).data)).toBe(hex(data));
      }
      expect(hex(h.lu.backstore.view!(8, 4))).toBe(hex(data));
    });
  }
  it('short EDTL writes only what arrived; overflow is reported by transferred', async () => {
    const h = Harness.ram();
    await h.ready();
    const r = await h.cmd(cdb10(0x2a, 0, 2), { out: new Uint8Array(512).fill(9) });
    expect(r.status).toBe(0);
    expect(r.transferred).toBe(1024);
    expect(h.lu.backstore.view!(1, 1)!.every((x) => x === 0)).toBe(true);
  });
  it('read-only LU: DATA PROTECT / WRITE PROTECTED', async () => {
    const h = Harness.ram({ readOnly: true });
    await h.ready();
    const r = await h.cmd(cdb10(0x2a, 0, 1), { out: new Uint8Array(512) });
    expect(hex(r.sense)).toBe('700007000000000a00000000270000000000');
  });
});

describe('SBC extras', () => {
  it('VERIFY with BYTCHK miscompares with the offset in INFORMATION', async () => {
    const h = Harness.ram();
    await h.ready();
    await h.cmd(cdb10(0x2a, 4, 2), { out: new Uint8Array(1024).fill(1) });
    expect((await h.cmd(cdb10(0x2f, 4, 2, 0x02), { out: new Uint8Array(1024).fill(1) })).status).toBe(0);
    const bad = new Uint8Array(1024).fill(1);
    bad[700] = 2;
    const r = await h.cmd(cdb10(0x2f, 4, 2, 0x02), { out: bad });
    expect(hex(r.sense)).toBe('f0000e000002bc0a000000001d0000000000');
  });
  it('COMPARE AND WRITE: match writes, miscompare reports the offset and writes nothing', async () => {
    const h = Harness.ram();
    await h.ready();
    const c = cdb16(0x89, 3, 0);
    c[13] = 1;
    const buf = new Uint8Array(1024);
    buf.fill(5, 512);
    expect((await h.cmd(c, { out: buf })).status).toBe(0);
    expect(h.lu.backstore.view!(3, 1)![0]).toBe(5);
    const r = await h.cmd(c, { out: buf });
    expect(hex(r.sense)).toBe('f0000e000000000a000000001d0000000000');
  });
  it('COMPARE AND WRITE is atomic against a concurrent WRITE to the range', async () => {
    const h = Harness.ram();
    await h.ready();
    const c = cdb16(0x89, 0, 0);
    c[13] = 1;
    const cw = new Uint8Array(1024);
    cw.fill(7, 512);
    const results = await Promise.all([h.cmd(c, { out: cw }), h.cmd(cdb10(0x2a, 0, 1), { out: new Uint8Array(512).fill(3) })]);
    expect(results.map((r) => r.status)).toEqual([0, 0]);
    expect(h.lu.backstore.view!(0, 1)![0]).toBe(3);
  });
  it('WRITE SAME, UNMAP, GET LBA STATUS on a thin LU', async () => {
    const h = Harness.ram({ thin: true });
    await h.ready();
    expect((await h.cmd(cdb16(0x93, 10, 20), { out: new Uint8Array(512).fill(0xab) })).status).toBe(0);
    expect(h.lu.backstore.view!(29, 1)![511]).toBe(0xab);
    let s = await h.cmd(cdb16(0x9e, 10, 0x20, 0x12));
    expect(hex(s.data)).toBe('00000014' + '00000000' + '000000000000000a' + '00000014' + '00000000');
    expect(s.data[20]).toBe(0);
    expect(s.data[16] * 2 ** 24 + s.data[17]! * 65536 + s.data[18]! * 256 + s.data[19]!).toBe(20);
    const p = new Uint8Array(24);
    p[1] = 22;
    p[3] = 16;
    p[15] = 15; // lba 15
    p[19] = 5; // 5 blocks
    expect((await h.cmd([0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], { out: p })).status).toBe(0);
    s = await h.cmd(cdb16(0x9e, 15, 0x20, 0x12));
    expect(s.data[20]).toBe(1);
    expect(h.lu.backstore.view!(15, 5)!.every((x) => x === 0)).toBe(true);
    expect((await h.cmd(cdb16(0x93, 0, 30, 0x08), { out: new Uint8Array(512) })).status).toBe(0);
    s = await h.cmd(cdb16(0x9e, 0, 0x20, 0x12));
    expect(s.data[20]).toBe(1);
  });
  it('ORWRITE ors the data in', async () => {
    const h = Harness.ram();
    await h.ready();
    await h.cmd(cdb10(0x2a, 1, 1), { out: new Uint8Array(512).fill(0x0f) });
    expect((await h.cmd(cdb16(0x8b, 1, 1), { out: new Uint8Array(512).fill(0xf0) })).status).toBe(0);
    expect(h.lu.backstore.view!(1, 1)![100]).toBe(0xff);
  });
  it('SPC-2 RESERVE makes other nexuses conflict until RELEASE', async () => {
    const h = Harness.ram();
    await h.ready();
    await h.ready(nexusB);
    expect((await h.cmd([0x16, 0, 0, 0, 0, 0])).status).toBe(0);
    expect((await h.cmd(cdb10(0x28, 0, 1), { nexus: nexusB })).status).toBe(0x18);
    expect((await h.cmd([0x12, 0, 0, 0, 36, 0], { nexus: nexusB })).status).toBe(0);
    expect((await h.cmd([0x17, 0, 0, 0, 0, 0])).status).toBe(0);
    expect((await h.cmd(cdb10(0x28, 0, 1), { nexus: nexusB })).status).toBe(0);
  });
  it('LUN reset gives every nexus a UA', async () => {
    const h = Harness.ram();
    await h.ready();
    await h.ready(nexusB);
    expect(await h.view.taskManagement(5, nexusA, 0n)).toBe(0);
    expect(hex((await h.cmd([0, 0, 0, 0, 0, 0], { nexus: nexusB })).sense)).toBe('700006000000000a00000000290300000000');
    expect((await h.cmd([0, 0, 0, 0, 0, 0])).status).toBe(2);
    expect((await h.cmd([0, 0, 0, 0, 0, 0])).status).toBe(0);
  });
});

describe('layer', () => {
  it('lunsChanged raises REPORTED LUNS DATA HAS CHANGED on every nexus of the LU', async () => {
    const { createScsiLayer } = await import('../../../lib/target/scsi-layer.js');
    const h = Harness.ram();
    await h.ready();
    createScsiLayer().lunsChanged([h.lu]);
    expect(hex((await h.cmd([0, 0, 0, 0, 0, 0])).sense)).toBe('700006000000000a000000003f0e00000000');
    createScsiLayer().lunsChanged([h.lu]);
    expect((await h.cmd([0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0])).status).toBe(0);
    expect((await h.cmd([0, 0, 0, 0, 0, 0])).status).toBe(0);
  });
});

describe('more commands and CDB checks', () => {
  it('READ DEFECT DATA(10)/(12): empty lists in the format asked for', async () => {
    const h = Harness.ram();
    await h.ready();
    expect(hex((await h.cmd([0x37, 0, 0x18 | 0x03, 0, 0, 0, 0, 0, 32, 0])).data)).toBe('001b0000');
    expect(hex((await h.cmd([0x37, 0, 0, 0, 0, 0, 0, 0, 32, 0])).data)).toBe('00000000');
    expect(hex((await h.cmd([0xb7, 0x10 | 0x05, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0])).data)).toBe('0015000000000000');
    expect(hex((await h.cmd([0x37, 0, 0x01, 0, 0, 0, 0, 0, 32, 0])).sense)).toBe(illegal('2400', 'ca0002'));
    expect((await h.cmd([0x37, 0, 0, 0, 0, 0, 0, 0, 2, 0])).data.length).toBe(2);
  });

  it('REPORT LUNS SELECT REPORT: 00h, 02h, 11h all LUs; 01h, 10h none; 12h and reserved values invalid', async () => {
    const h = new Harness(Harness.ram().lu, false, [0, 3, 300]);
    await h.ready();
    const all = '00000018' + '00000000' + '0000000000000000' + '0003000000000000' + '412c000000000000';
    const none = '00000000' + '00000000';
    for (const [sel, want] of [
      [0x00, all],
      [0x02, all],
      [0x11, all],
      [0x01, none],
      [0x10, none],
    ] as const) {
      const r = await h.cmd([0xa0, 0, sel, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
      expect(hex(r.data)).toBe(want);
    }
    for (const sel of [0x03, 0x12, 0xff]) expect(hex((await h.cmd([0xa0, 0, sel, 0, 0, 0, 0, 0, 1, 0, 0, 0])).sense)).toBe(illegal('2400', 'c00002'));
    // The same answers through a LUN that does not exist.
    expect(hex((await h.cmd([0xa0, 0, 0x10, 0, 0, 0, 0, 0, 1, 0, 0, 0], { lun: encodeLun(9) })).data)).toBe(none);
    expect(hex((await h.cmd([0xa0, 0, 0x12, 0, 0, 0, 0, 0, 1, 0, 0, 0], { lun: encodeLun(9) })).sense)).toBe(illegal('2400', 'c00002'));
  });

  it('NACA=1 and CDBs shorter than their operation code are INVALID FIELD IN CDB', async () => {
    const h = Harness.ram();
    await h.ready();
    expect(hex((await h.cmd([0, 0, 0, 0, 0, 0x04])).sense)).toBe(illegal('2400', 'ca0005'));
    expect(hex((await h.cmd(cdb16(0x88, 0, 1).map((v, i) => (i === 15 ? 0x04 : v)))).sense)).toBe(illegal('2400', 'ca000f'));
    expect(hex((await h.cmd([0x12, 0, 0, 0, 36, 0x04])).sense)).toBe(illegal('2400', 'ca0005'));
    expect(hex((await h.cmd([0x88, 0, 0, 0, 0, 0])).sense)).toBe(illegal('2400', 'cf0000'));
    expect(hex((await h.cmd([])).sense)).toBe(illegal('2000'));
  });

  it('a grown backstore raises CAPACITY DATA HAS CHANGED and READ CAPACITY follows', async () => {
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { FileBackstore } = await import('../../../lib/backstore/file.js');
    const dir = await mkdtemp(join(tmpdir(), 'rdma-target-cap-'));
    try {
      const b = await FileBackstore.open({ path: join(dir, 'grow.img'), blockSize: 512, size: 512 * 100 });
      const h = Harness.of(b);
      await h.ready();
      await h.ready(nexusB);
      h.lu.capacityChanged(); // no change: no UA
      expect((await h.cmd([0, 0, 0, 0, 0, 0])).status).toBe(0);
      await b.resize(512 * 200);
      h.lu.capacityChanged();
      for (const n of [nexusA, nexusB]) expect(hex((await h.cmd([0, 0, 0, 0, 0, 0], { nexus: n })).sense)).toBe('700006000000000a000000002a0900000000');
      expect(hex((await h.cmd([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0])).data)).toBe('000000c700000200');
      expect((await h.cmd(cdb10(0x28, 150, 1))).status).toBe(0);
      await b.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('all CDB sizes of READ past the end and at the end', async () => {
    const h = Harness.ram({ blockCount: 2048 });
    await h.ready();
    const table: Array<[number[], number]> = [
      [[0x08, 0, 0x07, 0xff, 1, 0], 0],
      [[0x08, 0, 0x07, 0xff, 2, 0], 2],
      [[0x08, 0x1f, 0xff, 0xff, 1, 0], 2], // READ(6) 21-bit LBA
      [cdb10(0x28, 2047, 1), 0],
      [cdb10(0x28, 2048, 0), 0], // zero blocks at the capacity is not out of range
      [cdb10(0x28, 2049, 0), 2],
      [cdb10(0x28, 0xffffffff, 1), 2],
      [[0xa8, 0, 0, 0, 7, 0xff, 0, 0, 0, 2, 0, 0], 2],
      [cdb16(0x88, 2 ** 53, 1), 2],
    ];
    for (const [cdb, status] of table)
      expect([cdb.map((v) => v.toString(16)).join(' '), (await h.cmd(cdb)).status]).toEqual([cdb.map((v) => v.toString(16)).join(' '), status]);
  });
});

describe('MODE SELECT: parameter list checks (SPC-4 6.11, 7.5)', () => {
  /** MODE SELECT(6) list: 4-byte header, optional 8-byte block descriptor, then the caching page as RAM reports it. */
  function list(opts: { bd?: number[]; page?: number[] } = {}): number[] {
    const bd = opts.bd ?? [];
    const page = opts.page ?? [0x08, 0x12, ...new Array(18).fill(0)];
    return [0, 0, 0, bd.length, ...bd, ...page];
  }
  const table: Array<[string, number[], number[] | undefined, string]> = [
    ['PF=0 (vendor-specific pages)', [0x15, 0x00, 0, 0, 24, 0], list(), illegal('2400', 'cc0001')],
    ['SP=1 (nothing is saveable)', [0x15, 0x11, 0, 0, 24, 0], list(), illegal('2400', 'c80001')],
    ['list shorter than its header', [0x15, 0x10, 0, 0, 2, 0], [0, 0], illegal('1a00')],
    ['block descriptor length past the list', [0x15, 0x10, 0, 0, 8, 0], [0, 0, 0, 8, 0, 0, 0, 0], illegal('1a00')],
    ['block descriptor changing the block length', [0x15, 0x10, 0, 0, 32, 0], list({ bd: [0, 0, 0, 0, 0, 0, 0x10, 0] }), illegal('2600', '800009')],
    ['a page this LU does not have', [0x15, 0x10, 0, 0, 24, 0], list({ page: [0x05, 0x12, ...new Array(18).fill(0)] }), illegal('2600', '8d0004')],
    ['SPF (subpage format)', [0x15, 0x10, 0, 0, 24, 0], list({ page: [0x48, 0x12, ...new Array(18).fill(0)] }), illegal('2600', '8e0004')],
    ['wrong page length', [0x15, 0x10, 0, 0, 24, 0], list({ page: [0x08, 0x11, ...new Array(18).fill(0)] }), illegal('2600', '800005')],
    ['a bit that is not changeable (RCD)', [0x15, 0x10, 0, 0, 24, 0], list({ page: [0x08, 0x12, 0x01, ...new Array(17).fill(0)] }), illegal('2600', '800006')],
    ['a page cut short', [0x15, 0x10, 0, 0, 10, 0], list().slice(0, 10), illegal('1a00')],
  ];
  for (const [name, cdb, params, sense] of table) {
    it(name, async () => {
      const h = Harness.ram();
      await h.ready();
      const r = await h.cmd(cdb, params ? { out: Uint8Array.from(params) } : {});
      expect(hex(r.sense)).toBe(sense);
    });
  }

  it('a change is kept, a restated block length accepted, and other nexuses learn MODE PARAMETERS CHANGED', async () => {
    const h = Harness.ram();
    await h.ready();
    await h.ready(nexusB);
    const l = list({ bd: [0, 0, 0, 0, 0, 0, 0x02, 0], page: [0x08, 0x12, 0x04, ...new Array(17).fill(0)] });
    expect((await h.cmd([0x15, 0x10, 0, 0, l.length, 0], { out: Uint8Array.from(l) })).status).toBe(0);
    expect((await h.cmd([0x1a, 0x08, 0x08, 0, 0xff, 0])).data[6]).toBe(0x04);
    expect((await h.cmd([0, 0, 0, 0, 0, 0])).status).toBe(0);
    expect(hex((await h.cmd([0, 0, 0, 0, 0, 0], { nexus: nexusB })).sense)).toBe('700006000000000a000000002a0100000000');
    // Default values stay what they were; current ones changed.
    expect((await h.cmd([0x1a, 0x08, 0x88, 0, 0xff, 0])).data[6]).toBe(0);
  });

  it('MODE SENSE(6) with and without block descriptors; WP follows a read-only mapping', async () => {
    const h = new Harness(Harness.ram({ blockCount: 2048 }).lu, true);
    await h.ready();
    const withBd = await h.cmd([0x1a, 0, 0x0a, 0, 0xff, 0]);
    // Header (length, medium type, WP|DPOFUA, descriptor length), block descriptor, control page (QAM 1, TAS, busy timeout FFFFh).
    expect(hex(withBd.data)).toBe('17' + '00' + '90' + '08' + '00000800' + '00000200' + '0a0a' + '00' + '10' + '00' + '40' + '0000' + 'ffff' + '0000');
    const noBd = await h.cmd([0x1a, 0x08, 0x0a, 0, 0xff, 0]);
    expect(hex(noBd.data)).toBe('0f' + '00' + '90' + '00' + '0a0a' + '00' + '10' + '00' + '40' + '0000' + 'ffff' + '0000');
    expect(hex((await h.cmd([0x1a, 0, 0x0a, 0, 4, 0])).data)).toBe('17009008'); // allocation length truncates
  });
});

describe('UNMAP: parameter list checks (SBC-3 5.28)', () => {
  function unmapList(descs: Array<[number, number]>, extra: { dataLen?: number; bdLen?: number } = {}): Uint8Array {
    const p = new Uint8Array(8 + 16 * descs.length);
    const dv = new DataView(p.buffer);
    dv.setUint16(0, extra.dataLen ?? 6 + 16 * descs.length);
    dv.setUint16(2, extra.bdLen ?? 16 * descs.length);
    descs.forEach(([lba, n], i) => {
      dv.setBigUint64(8 + 16 * i, BigInt(lba));
      dv.setUint32(16 + 16 * i, n);
    });
    return p;
  }
  const cdb = (len: number, anchor = 0) => [0x42, anchor, 0, 0, 0, 0, 0, len >> 8, len & 0xff, 0];
  const table: Array<[string, number[], Uint8Array | undefined, string]> = [
    ['ANCHOR', cdb(24, 1), unmapList([[0, 1]]), illegal('2400', 'c80001')],
    ['parameter list shorter than its header', cdb(6), new Uint8Array(6), illegal('1a00')],
    ['block descriptor data past the list', cdb(24), unmapList([[0, 1]], { bdLen: 32 }), illegal('1a00')],
    ['an LBA range past the end', cdb(24), unmapList([[2040, 9]]), illegal('2100')],
    ['more blocks than MAXIMUM UNMAP LBA COUNT', cdb(24), unmapList([[0, (1 << 20) + 1]]), illegal('2600', '800010')],
  ];
  for (const [name, c, params, sense] of table) {
    it(name, async () => {
      const h = Harness.ram({ thin: true });
      await h.ready();
      await h.cmd(cdb10(0x2a, 0, 8), { out: new Uint8Array(4096).fill(1) });
      const r = await h.cmd(c, params ? { out: params } : {});
      expect(hex(r.sense)).toBe(sense);
      expect(h.lu.backstore.view!(0, 1)![0]).toBe(1); // nothing was unmapped
    });
  }
  it('zero-length parameter list and zero-block descriptors are no-ops', async () => {
    const h = Harness.ram({ thin: true });
    await h.ready();
    expect((await h.cmd(cdb(0))).status).toBe(0);
    expect((await h.cmd(cdb(24), { out: unmapList([[5, 0]]) })).status).toBe(0);
  });
});

describe('read-only LUNs', () => {
  const writes: Array<[string, number[], number]> = [
    ['WRITE(6)', [0x0a, 0, 0, 0, 1, 0], 512],
    ['WRITE(16)', cdb16(0x8a, 0, 1), 512],
    ['WRITE AND VERIFY(10)', cdb10(0x2e, 0, 1), 512],
    ['WRITE SAME(16)', cdb16(0x93, 0, 1), 512],
    ['UNMAP', [0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], 24],
    ['COMPARE AND WRITE', cdb16(0x89, 0, 0).map((v, i) => (i === 13 ? 1 : v)), 1024],
    ['ORWRITE', cdb16(0x8b, 0, 1), 512],
  ];
  for (const via of ['backstore', 'mapping'] as const) {
    for (const [name, cdb, len] of writes) {
      it(`${name} through a read-only ${via}: DATA PROTECT / WRITE PROTECTED`, async () => {
        const h = via === 'backstore' ? Harness.ram({ readOnly: true, thin: true }) : new Harness(Harness.ram({ thin: true }).lu, true);
        await h.ready();
        const r = await h.cmd(cdb, { out: new Uint8Array(len) });
        expect(hex(r.sense)).toBe('700007000000000a00000000270000000000');
      });
    }
  }
  it('UNMAP to a fully provisioned read-only LU is DATA PROTECT too, not an unknown command', async () => {
    const h = Harness.ram({ readOnly: true });
    await h.ready();
    expect(hex((await h.cmd([0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], { out: new Uint8Array(24) })).sense)).toBe('700007000000000a00000000270000000000');
  });
  it('reads, VERIFY and SYNCHRONIZE CACHE still work', async () => {
    const h = Harness.ram({ readOnly: true });
    await h.ready();
    expect((await h.cmd(cdb10(0x28, 0, 1))).status).toBe(0);
    expect((await h.cmd(cdb10(0x2f, 0, 1))).status).toBe(0);
    expect((await h.cmd([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0])).status).toBe(0);
    expect((await h.cmd([0x1a, 0, 0x3f, 0, 0xff, 0])).data[2]! & 0x80).toBe(0x80);
  });
});

describe('identification and capacity data, byte for byte (SPC-4 6.6, 7.8; SBC-3 6.5)', () => {
  const ascii = (s: string) => Buffer.from(s, 'ascii').toString('hex');
  const z = (n: number) => '00'.repeat(n);

  it('standard INQUIRY', async () => {
    const h = Harness.ram();
    const r = await h.cmd([0x12, 0, 0, 0, 255, 0]);
    // PQ/PDT 0, RMB 0, VERSION SPC-4, HISUP|format 2, additional length 61, TPGS=01b|3PC, CMDQUE,
    // vendor, product, revision, 22 reserved/vendor bytes, version descriptors SAM-5, SPC-4, SBC-3, iSCSI.
    expect(hex(r.data)).toBe('000006123d180002' + ascii('RDMATGT ') + ascii('rdma-target     ') + ascii('0010') + z(22) + '00a0' + '0460' + '04c0' + '0960');
  });

  it('VPD 0x83: NAA 6, T10 vendor ID, relative target port, target port group, target port name', async () => {
    const h = Harness.ram();
    const r = await h.cmd([0x12, 1, 0x83, 0, 255, 0]);
    const name = 'iqn.2025-01.test:t,t,0x1'; // 24 characters: NUL-terminated and padded to 28
    expect(hex(r.data)).toBe(
      '00830070' +
        '01030010' +
        '60014050123456789abcdef012345678' +
        '02010028' +
        ascii('RDMATGT 0123456789abcdef0123456789abcdef') +
        '51940004' +
        '00000001' +
        '51950004' +
        '00000001' +
        '5398001c' +
        ascii(name) +
        '00000000',
    );
  });

  it('VPD 0xB0/0xB1/0xB2 on thick and thin LUs', async () => {
    const thick = Harness.ram();
    const thin = Harness.ram({ thin: true });
    // Block Limits: WSNZ, MAXIMUM COMPARE AND WRITE LENGTH 64, granularity 1, max/optimal transfer and
    // prefetch 16384 blocks (8 MiB), unmap limits only when thin, MAXIMUM WRITE SAME LENGTH 131072.
    const b0 = (unmap: string) => '00b0003c' + '01' + '40' + '0001' + '00004000' + '00004000' + '00004000' + unmap + z(4) + '00000000' + '00020000' + z(20);
    expect(hex((await thick.cmd([0x12, 1, 0xb0, 0, 255, 0])).data)).toBe(b0(z(12)));
    expect(hex((await thin.cmd([0x12, 1, 0xb0, 0, 255, 0])).data)).toBe(b0('00100000' + '00000100' + '00000001'));
    // Block Device Characteristics: MEDIUM ROTATION RATE 1 (non-rotating).
    expect(hex((await thick.cmd([0x12, 1, 0xb1, 0, 255, 0])).data)).toBe('00b1003c' + '0001' + z(58));
    // Logical Block Provisioning: LBPU, LBPWS, LBPWS10, LBPRZ; provisioning type 010b (thin).
    expect(hex((await thick.cmd([0x12, 1, 0xb2, 0, 255, 0])).data)).toBe('00b20004' + '00000000');
    expect(hex((await thin.cmd([0x12, 1, 0xb2, 0, 255, 0])).data)).toBe('00b20004' + '00e40200');
  });

  it('READ CAPACITY(16) on a thick 512-byte LU and REPORT TARGET PORT GROUPS', async () => {
    const h = Harness.ram();
    await h.ready();
    expect(hex((await h.cmd([0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0])).data)).toBe(
      '00000000000007ff' + '00000200' + '00' + '00' + '0000' + z(16),
    );
    // One group, PREF, active/optimized, AO_SUP, id 1, one port: the relative port of this nexus.
    expect(hex((await h.cmd([0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0])).data)).toBe('0000000c' + '80010001' + '00000001' + '00000001');
    // Extended header (format 001b): length, format|implicit transition time.
    expect(hex((await h.cmd([0xa3, 0x2a, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0])).data)).toBe('00000010' + '10000000' + '80010001' + '00000001' + '00000001');
  });
});

describe('data direction', () => {
  it('the core asks for Data-Out only when the fabric marked the command writing, and sends Data-In only when reading', async () => {
    const h = Harness.ram();
    await h.ready();
    const calls: string[] = [];
    const io = {
      async dataOut(into: Uint8Array) {
        calls.push('out');
        into.fill(7);
      },
      async dataIn() {
        calls.push('in');
      },
    };
    const submit = (cdb: number[], direction: number) =>
      submitAsync(h.view, { lun: 0n, cdb: Uint8Array.from(cdb), tag: 1, attribute: 0, expectedLength: 512, direction }, nexusA, io);
    // A WRITE the fabric calls a read: nothing to write with, nothing written; the residual is the fabric's.
    expect(await submit(cdb10(0x2a, 0, 1), 2)).toEqual({ status: 0, transferred: 512 });
    expect(h.lu.backstore.view!(0, 1)![0]).toBe(0);
    // A READ with no data direction moves nothing.
    expect(await submit(cdb10(0x28, 0, 1), 0)).toEqual({ status: 0, transferred: 512 });
    expect(calls).toEqual([]);
    expect((await submit(cdb10(0x2a, 0, 1), 1)).status).toBe(0);
    expect((await submit(cdb10(0x28, 0, 1), 2)).status).toBe(0);
    expect(calls).toEqual(['out', 'in']);
  });
});

describe('CDB decoding table (SBC-3 5.x field positions)', () => {
  const table: Array<[string, number[], number, number]> = [
    ['READ(6): 21-bit LBA, the top 3 bits of byte 1 are not LBA', [0x08, 0xff, 0x12, 0x34, 0x10, 0], 0x1f1234, 16],
    ['READ(6): length 0 is 256 blocks', [0x08, 0, 0, 0x01, 0, 0], 1, 256],
    ['WRITE(6)', [0x0a, 0x00, 0x00, 0xff, 0x01, 0], 0xff, 1],
    ['READ(10): 32-bit LBA, 16-bit length', [0x28, 0, 0xde, 0xad, 0xbe, 0xef, 0x3f, 0x12, 0x34, 0], 0xdeadbeef, 0x1234],
    ['WRITE SAME(10)', [0x41, 0, 0, 0, 0x01, 0x00, 0, 0x00, 0x08, 0], 256, 8],
    ['SYNCHRONIZE CACHE(10)', [0x35, 0, 0, 0, 0, 9, 0, 0, 0, 0], 9, 0],
    ['READ(12): 32-bit LBA, 32-bit length', [0xa8, 0, 0, 0, 0x10, 0, 0x00, 0x01, 0x00, 0x00, 0, 0], 0x1000, 0x10000],
    ['VERIFY(12)', [0xaf, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0], 0xffffffff, 0xffffffff],
    ['READ(16): 64-bit LBA, 32-bit length', [0x88, 0, 0, 0, 0, 0x01, 0, 0, 0, 0x02, 0, 0, 0x01, 0x00, 0, 0], 0x100000002, 256],
    ['WRITE SAME(16)', [0x93, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 7, 0, 0], 5, 7],
    ['PRE-FETCH(16) with an LBA past 2^53 stays past it', [0x90, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0], 2 ** 64, 1],
  ];
  for (const [name, cdb, lba, blocks] of table) {
    it(name, async () => {
      const { lbaRange } = await import('../../../lib/scsi/cdb.js');
      const r = lbaRange(Uint8Array.from(cdb));
      expect(r.blocks).toBe(blocks);
      if (lba < 2 ** 53) expect(r.lba).toBe(lba);
      else expect(r.lba).toBeGreaterThan(2 ** 53);
    });
  }
  it('group codes give the CDB length (SPC-4 4.2.5.1)', async () => {
    const { groupCdbLength } = await import('../../../lib/scsi/cdb.js');
    expect([0x00, 0x1f, 0x28, 0x5f, 0x7e, 0x88, 0x9e, 0xa0, 0xbf, 0xc0].map(groupCdbLength)).toEqual([6, 6, 10, 10, 0, 16, 16, 12, 12, 0]);
  });
});
