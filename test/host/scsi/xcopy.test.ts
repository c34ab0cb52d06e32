import { describe, expect, it } from 'vitest';
import { Harness, hex } from './helpers.js';

function xcopyParams(
  naa: Uint8Array,
  blockSize: number,
  seg: { blocks: number; src: number; dst: number },
  opts: { targetType?: number; nul?: boolean } = {},
): Uint8Array {
  const p = new Uint8Array(16 + 32 + 28);
  p[3] = 32; // target descriptor list length
  p[11] = 28; // segment descriptor list length
  const t = 16;
  p[t] = opts.targetType ?? 0xe4;
  p[t + 1] = opts.nul ? 0x20 : 0;
  p[t + 4] = 0x01;
  p[t + 5] = 0x03;
  p[t + 7] = 16;
  p.set(naa, t + 8);
  p[t + 29] = (blockSize >> 16) & 0xff;
  p[t + 30] = (blockSize >> 8) & 0xff;
  p[t + 31] = blockSize & 0xff;
  const s = 48;
  p[s] = 0x02;
  p[s + 3] = 0x18;
  p[s + 10] = seg.blocks >> 8;
  p[s + 11] = seg.blocks & 0xff;
  const dv = new DataView(p.buffer);
  dv.setBigUint64(s + 12, BigInt(seg.src));
  dv.setBigUint64(s + 20, BigInt(seg.dst));
  return p;
}
const xcopyCdb = (len: number) => [0x83, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, len, 0, 0];

describe('EXTENDED COPY', () => {
  it('copies blocks within the LU', async () => {
    const h = Harness.ram();
    await h.ready();
    h.lu.backstore.view!(0, 8)!.fill(0x41);
    const p = xcopyParams(h.lu.naa, 512, { blocks: 8, src: 0, dst: 2000 });
    expect((await h.cmd(xcopyCdb(p.length), { out: p })).status).toBe(0);
    expect(h.lu.backstore.view!(2000, 8)!.every((x) => x === 0x41)).toBe(true);
    // COPY STATUS for list id 0 from this nexus: completed, one segment, 4096 bytes.
    const st = await h.cmd([0x84, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 0, 0]);
    expect(hex(st.data)).toBe('000000080100010000001000');
    expect((await h.cmd([0x84, 0x00, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 0, 0])).status).toBe(2);
  });
  it('rejects bad lists with the sense libiscsi expects', async () => {
    const h = Harness.ram();
    await h.ready();
    const ok = xcopyParams(h.lu.naa, 512, { blocks: 8, src: 0, dst: 2000 });
    const cases: Array<[Uint8Array, number, string]> = [
      [ok, 47, '700005000000000a000000001a0000000000'],
      [xcopyParams(h.lu.naa, 512, { blocks: 8, src: 0, dst: 2047 }), 76, '70000a000000000a000000000000000000'.padEnd(36, '0')],
      [xcopyParams(h.lu.naa, 512, { blocks: 8, src: 0, dst: 0 }, { nul: true }), 76, '70000a000000000a000000000d0200000000'],
      [xcopyParams(h.lu.naa, 512, { blocks: 8, src: 0, dst: 0 }, { targetType: 0xe0 }), 76, '700005000000000a000000002607' + '00000000'],
    ];
    for (const [p, len, sense] of cases) {
      const r = await h.cmd(xcopyCdb(len), { out: p.subarray(0, len) });
      expect(hex(r.sense)).toBe(sense);
    }
    expect((await h.cmd(xcopyCdb(0))).status).toBe(0);
  });
  it('RECEIVE COPY RESULTS reports operating parameters', async () => {
    const h = Harness.ram();
    await h.ready();
    const r = await h.cmd([0x84, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    expect(r.data.length).toBe(46);
    expect(hex(r.data.subarray(8, 12))).toBe('00020001');
  });
});
