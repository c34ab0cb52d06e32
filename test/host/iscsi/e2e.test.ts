import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pdu } from '../../../lib/iscsi/pdu.js';
import { IscsiTarget } from '../../../lib/iscsi/target.js';
import { listenTcp, type TcpListener } from '../../../lib/transport/tcp.js';
import { FakeCore, inquiry, pattern, read10, TestInitiator, tur, write10 } from './helpers.js';

const IQN = 'iqn.2024-01.test:target';

function resid(p: Pdu): { under: boolean; over: boolean; residual: number } {
  if (p.opcode === 0x25 || p.opcode === 0x21) return { under: p.underflow, over: p.overflow, residual: p.residual };
  throw new Error(`not a status PDU: ${p.opcode}`);
}

describe('iSCSI/TCP end to end with a fake core', () => {
  let core: FakeCore;
  let target: IscsiTarget;
  let portal: TcpListener;

  beforeAll(async () => {
    core = new FakeCore({ blocks: 4096 });
    target = new IscsiTarget({ core, tpgs: [{ iqn: IQN, tpgt: 1, generateNodeAcls: true, portals: [{ address: '127.0.0.1', port: 0 }] }], nopInterval: 0 });
    portal = await listenTcp(target, { address: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await target.shutdown(200);
    await portal.close(true);
  });

  async function session(opts: Parameters<TestInitiator['login']>[0] = {}): Promise<TestInitiator> {
    const i = await TestInitiator.connect(portal.port);
    const r = await i.login(opts);
    expect(r.status).toBe(0);
    return i;
  }

  it('logs in, runs TUR and INQUIRY, logs out', async () => {
    const i = await session();
    expect(i.tsih).toBeGreaterThan(0);
    expect(i.params.get('TargetPortalGroupTag')).toBe('1');
    const t = await i.scsi(tur());
    expect(t.status).toBe(0);
    const q = await i.scsi(inquiry(36), { read: 36 });
    expect(q.status).toBe(0);
    expect(q.data.subarray(8, 12).toString()).toBe('FAKE');
    expect(await i.logout()).toBe(0);
    await i.closedPromise;
  });

  for (const [name, keys] of [
    ['ImmediateData=Yes InitialR2T=No', { ImmediateData: 'Yes', InitialR2T: 'No', FirstBurstLength: '65536' }],
    ['ImmediateData=No InitialR2T=Yes', { ImmediateData: 'No', InitialR2T: 'Yes' }],
    [
      'ImmediateData=Yes InitialR2T=Yes small bursts',
      { ImmediateData: 'Yes', InitialR2T: 'Yes', MaxBurstLength: '16384', FirstBurstLength: '8192', MaxOutstandingR2T: '2' },
    ],
  ] as const) {
    it(`writes and reads back 300 KiB (${name})`, async () => {
      const i = await session({ keys: { ...keys } });
      const data = pattern(300 * 1024, 7);
      const w = await i.scsi(write10(100, 600), { write: data });
      expect(w.status).toBe(0);
      expect(core.disk.subarray(100 * 512, 100 * 512 + data.length).equals(data)).toBe(true);
      const r = await i.scsi(read10(100, 600), { read: data.length });
      expect(r.status).toBe(0);
      expect(r.data.equals(data)).toBe(true);
      expect(r.response.opcode).toBe(0x25); // status collapsed into the last Data-In
      await i.logout();
    });
  }

  it('immediate data of changing sizes, pipelined: every write lands whole where it belongs, every read returns it', async () => {
    // The connection hands a pooled buffer (and the view of it the last command of the same
    // size received into) to each command's immediate data: sizes that change from command
    // to command must never get a view of the wrong length or one a task still uses.
    const i = await session({ keys: { ImmediateData: 'Yes', InitialR2T: 'No', FirstBurstLength: '65536' } });
    const sizes = [4096, 2048, 4096, 512, 8192, 4096, 4096, 1024, 16384, 20480, 4096];
    const base = 2000;
    const at: number[] = [];
    let lba = base;
    for (const n of sizes) {
      at.push(lba);
      lba += n / 512;
    }
    const data = sizes.map((n, k) => pattern(n, 40 + k));
    for (let round = 0; round < 3; round++) {
      const ws = await Promise.all(sizes.map((n, k) => i.scsi(write10(at[k]!, n / 512), { write: data[k]! })));
      expect(ws.map((w) => w.status)).toEqual(sizes.map(() => 0));
      for (let k = 0; k < sizes.length; k++) expect(core.disk.subarray(at[k]! * 512, at[k]! * 512 + sizes[k]!).equals(data[k]!), `write ${k}`).toBe(true);
      const rs = await Promise.all(sizes.map((n, k) => i.scsi(read10(at[k]!, n / 512), { read: n })));
      for (let k = 0; k < sizes.length; k++) expect(rs[k]!.data.equals(data[k]!), `read ${k} (${sizes[k]} bytes)`).toBe(true);
      data.reverse(); // the next round writes other contents to each place
      for (let k = 0; k < sizes.length; k++) if (data[k]!.length !== sizes[k]) data[k] = pattern(sizes[k]!, 90 + round * 20 + k);
    }
    await i.logout();
  });

  it('immediate data a command cannot use at once (a CmdSN gap) is kept before the next read reuses the transport buffer', async () => {
    // The framer lends immediate data as a view of the connection's read buffer; a command
    // that waits for its CmdSN must copy it before receive() returns, or the next read
    // (here a second write of the same size) lands other bytes under it.
    const i = await session({ keys: { ImmediateData: 'Yes', InitialR2T: 'Yes' } });
    const x = i.cmdSN;
    const a = pattern(4096, 61);
    const b = pattern(4096, 62);
    const wa = i.scsi(write10(3000, 8), { write: a, cmdSN: x + 1 });
    await new Promise((r) => setTimeout(r, 50));
    const wb = i.scsi(write10(3008, 8), { write: b, cmdSN: x + 2 });
    await new Promise((r) => setTimeout(r, 50));
    expect(core.disk.subarray(3000 * 512, 3016 * 512).every((v) => v === 0)).toBe(true); // both still wait
    const t = await i.scsi(tur(), { cmdSN: x });
    i.cmdSN = x + 3;
    expect([t.status, (await wa).status, (await wb).status]).toEqual([0, 0, 0]);
    expect(core.disk.subarray(3000 * 512, 3008 * 512).equals(a)).toBe(true);
    expect(core.disk.subarray(3008 * 512, 3016 * 512).equals(b)).toBe(true);
    await i.logout();
  });

  it('digests: CRC32C header and data digests end to end', async () => {
    const i = await session({ headerDigest: true, dataDigest: true });
    expect(i.headerDigest).toBe(true);
    expect(i.dataDigest).toBe(true);
    const data = pattern(70000, 3);
    const padded = Buffer.concat([data, Buffer.alloc(512 - (data.length % 512))]);
    expect((await i.scsi(write10(10, padded.length / 512), { write: padded })).status).toBe(0);
    const r = await i.scsi(read10(10, padded.length / 512), { read: padded.length });
    expect(r.data.equals(padded)).toBe(true);
    await i.logout();
  });

  it('residuals: underflow and overflow (RFC 7143 §11.4.5)', async () => {
    const i = await session();
    // EDTL larger than the CDB asks for: underflow.
    const u = await i.scsi(read10(0, 1), { read: 1024 });
    expect(u.status).toBe(0);
    expect(resid(u.response)).toEqual({ under: true, over: false, residual: 512 });
    // EDTL smaller: overflow, only EDTL bytes sent.
    const o = await i.scsi(read10(0, 4), { read: 512 });
    expect(o.data.length).toBe(512);
    expect(resid(o.response)).toEqual({ under: false, over: true, residual: 1536 });
    // Write underflow: status in a SCSI Response with U bit.
    const w = await i.scsi(write10(0, 1), { write: pattern(1024) });
    expect(w.response.opcode).toBe(0x21);
    expect(resid(w.response)).toEqual({ under: true, over: false, residual: 512 });
    await i.logout();
  });

  it('check condition carries sense data in the SCSI Response', async () => {
    const i = await session();
    const r = await i.scsi(read10(1_000_000, 1), { read: 512 });
    expect(r.status).toBe(2);
    expect(r.sense?.[12]).toBe(0x21);
    await i.logout();
  });

  it('SendTargets in a discovery session and in full feature phase', async () => {
    const d = await TestInitiator.connect(portal.port);
    expect((await d.login({ discovery: true })).status).toBe(0);
    const m = await d.text([['SendTargets', 'All']]);
    expect(m.get('TargetName')).toBe(IQN);
    expect(m.get('TargetAddress')).toBe('127.0.0.1:0,1');
    await d.logout();
    const i = await session();
    const m2 = await i.text([['SendTargets', '']]);
    expect(m2.get('TargetName')).toBe(IQN);
    await i.logout();
  });

  it('NOP-Out ping is echoed', async () => {
    const i = await session();
    const itt = i.nextItt();
    i.send({ opcode: 0x00, immediate: true, itt, lun: 0n, ttt: 0xffffffff, cmdSN: i.cmdSN, expStatSN: i.expStatSN }, Buffer.from('ping-data'));
    const r = await i.next((x) => x.pdu.itt === itt);
    expect(r.pdu.opcode).toBe(0x20);
    expect(r.data.toString()).toBe('ping-data');
    await i.logout();
  });

  it('many commands in flight, pipelined', async () => {
    const i = await session();
    const all = [];
    for (let k = 0; k < 32; k++) all.push(i.scsi(read10(k, 8), { read: 4096 }));
    const rs = await Promise.all(all);
    expect(rs.every((r) => r.status === 0)).toBe(true);
    await i.logout();
  });
});
