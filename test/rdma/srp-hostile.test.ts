// A hostile SRP initiator written with the project's own binding, against lib/srp on
// soft-RoCE: logins naming the wrong target port or asking too much, SRP_CMDs with broken
// descriptors (counts beyond the IU, lengths that do not add up, formats not negotiated),
// credit overrun, an unknown IU type, a wrong rkey, and ABORT TASK with its credit returned by
// SRP_CRED_REQ. Each is answered as SRP r16a says (SRP_LOGIN_REJ reason, CHECK CONDITION with
// INVALID FIELD IN COMMAND INFORMATION UNIT, BUSY without a credit, SRP_T_LOGOUT) and never
// reaches the core or becomes RDMA; only the offender's channel ends, while a well-behaved
// initiator beside it keeps writing and reading verified data. Every channel's QP/CQ/MRs are
// freed.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { SrpFabric } from '../../lib/srp/listener.js';
import { SrpTarget } from '../../lib/srp/target.js';
import {
  DescFormat,
  SrpOpcode,
  decodeCredReq,
  decodeLoginRej,
  decodeLoginRsp,
  decodeRsp,
  decodeTLogout,
  encodeCmd,
  encodeCredRsp,
  encodeDirect,
  encodeImmediateDesc,
  encodeIndirect,
  encodeLoginReqRdma,
  encodeTskMgmt,
  type DirectDesc,
  type LoginRsp,
  type SrpRsp,
} from '../../lib/srp/iu.js';
import { MemoryRegistry } from '../../lib/verbs/index.js';
import { FakeCore, pattern, read10, write10 } from '../host/iscsi/helpers.js';
import { ADDR_A, DeviceTable, RawClient, RdmaCm, devicesOrFail, freshPort, native } from './rc.js';

const TPID = Uint8Array.from(Buffer.from('52505441524745540011223344556677', 'hex'));
const CREDITS = 8;
const SEND_SLOT = 8260;
let cm: RdmaCm;
let devices: DeviceTable;
let fabric: SrpFabric;
let target: SrpTarget;
let core: FakeCore;
let port: number;
let baselineQps = 0;
let nextIpid = 1;

type Iu = { type: number; bytes: Buffer };

/** A minimal SRP initiator: SENDs of IUs, a receive ring, a registered data buffer. */
class Client extends RawClient {
  login!: LoginRsp;
  readonly got: Iu[] = [];
  disconnected = false;
  private waiters: Array<() => void> = [];

  constructor() {
    super(SEND_SLOT);
  }

  /** Connects; resolves with the SRP_LOGIN_RSP, or rejects with the REJECTED event's error. */
  async connect(opts: { tpid?: Uint8Array; itIuLen?: number; flags?: number } = {}): Promise<LoginRsp> {
    const id = await this.open(cm, devices, port);
    const ipid = new Uint8Array(16);
    ipid[15] = nextIpid++;
    const pd = Buffer.from(
      encodeLoginReqRdma({
        tagLo: 1,
        tagHi: 0,
        reqBufFmt: 6,
        reqFlags: opts.flags ?? 0x80,
        reqItIuLen: opts.itIuLen ?? 8260,
        initiatorPortId: ipid,
        targetPortId: opts.tpid ?? TPID,
        immDataOffset: 68,
      }),
    );
    try {
      const ev = await cm.connect(id, { privateData: pd, initiatorDepth: 1, responderResources: 16, rnrRetryCount: 7 });
      this.login = decodeLoginRsp(ev.privateData!);
    } catch (e) {
      this.close();
      throw e;
    }
    cm.setHandler(id, (ev) => {
      if (ev.type === 'RDMA_CM_EVENT_DISCONNECTED') {
        this.disconnected = true;
        for (const w of this.waiters.splice(0)) w();
      }
    });
    return this.login;
  }

  protected override received(bytes: Buffer): void {
    this.got.push({ type: bytes[0]!, bytes });
    // ib_srp answers SRP_CRED_REQ with SRP_CRED_RSP (§6.11); so do we.
    if (bytes[0] === SrpOpcode.CredReq) this.sendRaw(encodeCredRsp({ tagLo: bytes.readUInt32LE(8), tagHi: bytes.readUInt32LE(12) }));
    for (const w of this.waiters.splice(0)) w();
  }

  /** A descriptor of `len` bytes at `offset` of the data buffer. */
  desc(offset: number, len: number, key = this.data.rkey): DirectDesc {
    const va = this.data.address + offset;
    return { vaHi: Math.floor(va / 2 ** 32), vaLo: va >>> 0, key, len };
  }

  /** Waits until `pred` finds an IU (or the channel is gone). */
  async until<T>(pred: () => T | undefined, what: string, ms = 20_000): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      const v = pred();
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; got ${this.got.map((g) => g.type.toString(16)).join(',')}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
  }

  rsp(tagLo: number): Promise<SrpRsp> {
    return this.until(() => {
      const g = this.got.find((x) => x.type === SrpOpcode.Rsp && x.bytes.readUInt32LE(8) === tagLo);
      return g && decodeRsp(g.bytes);
    }, `SRP_RSP tag ${tagLo}`);
  }
}

const writeCmd = (tag: number, lba: number, blocks: number, d: DirectDesc) =>
  encodeCmd({ tagLo: tag, tagHi: 0, lun: 0n, cdb: write10(lba, blocks), dataOutFormat: DescFormat.Direct, descriptors: encodeDirect(d) });
const readCmd = (tag: number, lba: number, blocks: number, d: DirectDesc) =>
  encodeCmd({ tagLo: tag, tagHi: 0, lun: 0n, cdb: read10(lba, blocks), dataInFormat: DescFormat.Direct, descriptors: encodeDirect(d) });

/**
 * After ABORT TASK of `tag`: both credits (the command's and the TMF's) come back, with the
 * TMF response when the aborted command ended before it, else the aborted one's by an
 * SRP_CRED_REQ (nothing else is in flight to carry it); the aborted command gets no response.
 */
async function expectAbortedQuietly(h: Client, tmf: SrpRsp, tag: number): Promise<void> {
  let pushed = 0;
  if (tmf.reqLimDelta < 2) {
    const cred = await h.until(() => {
      const g = h.got.find((x) => x.type === SrpOpcode.CredReq);
      return g && decodeCredReq(g.bytes);
    }, 'SRP_CRED_REQ');
    pushed = cred.reqLimDelta;
  }
  expect(tmf.reqLimDelta + pushed).toBe(2);
  await new Promise((r) => setTimeout(r, 300));
  expect(h.got.some((x) => x.type === SrpOpcode.Rsp && x.bytes.readUInt32LE(8) === tag)).toBe(false);
}

function isInvalidIu(r: SrpRsp): boolean {
  return r.status === 2 && r.sense !== undefined && r.sense[2] === 5 && r.sense[12] === 0x0e && r.sense[13] === 0x03;
}

describe('a hostile SRP initiator on the project binding', () => {
  let good: Client;

  beforeAll(async () => {
    devicesOrFail();
    baselineQps = native().liveObjects().qps;
    cm = new RdmaCm();
    devices = new DeviceTable();
    core = new FakeCore({ blocks: 4096 });
    target = new SrpTarget({ targetPortId: TPID, generateNodeAcls: true, core, credits: CREDITS, maxItIuLen: 16384 });
    fabric = new SrpFabric(new MemoryRegistry(native().constants.ACCESS_LOCAL_WRITE));
    port = freshPort();
    await fabric.listen(target, { address: ADDR_A, port });
    good = new Client();
    const rsp = await good.connect();
    expect(rsp).toMatchObject({ reqLimDelta: CREDITS, maxItIuLen: 8260, maxTiIuLen: 256, bufFmt: 6 });
    expect(rsp.rspFlags & 0x80).toBe(0x80);
  }, 60_000);

  afterAll(() => {
    good?.close();
    fabric?.close();
    devices?.close();
    cm?.close();
  });

  /** The well-behaved initiator writes and reads back 64 KiB, through direct, indirect and immediate descriptors. */
  async function goodRoundTrip(seed: number): Promise<void> {
    const data = pattern(65536, seed);
    Buffer.from(good.data.buffer.buffer, good.data.buffer.byteOffset, 65536).set(data);
    good.sendRaw(writeCmd(100 + seed, 64, 128, good.desc(0, 65536)));
    expect((await good.rsp(100 + seed)).status).toBe(0);
    expect(core.disk.subarray(64 * 512, 64 * 512 + 65536).equals(data)).toBe(true);
    good.data.buffer.fill(0, 65536, 131072);
    // Read back in two indirect pieces.
    const list = [good.desc(65536 + 32768, 32768), good.desc(65536, 32768)];
    good.sendRaw(
      encodeCmd({
        tagLo: 200 + seed,
        tagHi: 0,
        lun: 0n,
        cdb: read10(64, 128),
        dataInFormat: DescFormat.Indirect,
        dataInCount: 2,
        descriptors: encodeIndirect({ vaHi: 0, vaLo: 0, key: 0, len: 32 }, 65536, list),
      }),
    );
    expect((await good.rsp(200 + seed)).status).toBe(0);
    const back = Buffer.from(good.data.buffer.subarray(65536, 131072));
    expect(Buffer.concat([back.subarray(32768), back.subarray(0, 32768)]).equals(data)).toBe(true);
    // 4 KiB of immediate data.
    const imm = pattern(4096, seed + 7);
    good.sendRaw(
      encodeCmd({
        tagLo: 300 + seed,
        tagHi: 0,
        lun: 0n,
        cdb: write10(8, 8),
        dataOutFormat: DescFormat.Immediate,
        descriptors: encodeImmediateDesc(4096),
        immediate: { offset: 68, data: imm },
      }),
    );
    expect((await good.rsp(300 + seed)).status).toBe(0);
    expect(core.disk.subarray(8 * 512, 8 * 512 + 4096).equals(imm)).toBe(true);
  }

  test('logins naming another target port or asking too large an IU get SRP_LOGIN_REJ with the reason', async () => {
    for (const [opts, reason] of [
      [{ tpid: new Uint8Array(16) }, 0x00010003],
      [{ itIuLen: 20000 }, 0x00010002],
      [{ flags: 0x03 }, 0x00010000],
    ] as const) {
      const c = new Client();
      const err = await c.connect(opts).then(
        () => undefined,
        (e: Error & { event?: { privateData?: Buffer } }) => e,
      );
      expect(err, JSON.stringify(opts)).toBeInstanceOf(Error);
      expect(decodeLoginRej(err!.event!.privateData!).reason).toBe(reason);
    }
    await goodRoundTrip(1);
  }, 60_000);

  test('malformed SRP_CMDs get CHECK CONDITION / INVALID FIELD IN COMMAND INFORMATION UNIT, never reach the core, return their credit', async () => {
    const h = new Client();
    await h.connect();
    const before = core.submitted.length;
    const d = h.desc(0, 4096);
    const bad: Uint8Array[] = [
      // Three descriptors declared, the IU holds one.
      encodeCmd({
        tagLo: 1,
        tagHi: 0,
        lun: 0n,
        cdb: read10(0, 8),
        dataInFormat: DescFormat.Indirect,
        dataInCount: 3,
        descriptors: encodeIndirect({ vaHi: 0, vaLo: 0, key: 0, len: 48 }, 4096, [d]),
      }),
      // TOTAL LENGTH that is not the sum of the descriptors.
      encodeCmd({
        tagLo: 2,
        tagHi: 0,
        lun: 0n,
        cdb: read10(0, 8),
        dataInFormat: DescFormat.Indirect,
        dataInCount: 2,
        descriptors: encodeIndirect({ vaHi: 0, vaLo: 0, key: 0, len: 32 }, 9999, [d, d]),
      }),
      // Bidirectional.
      encodeCmd({
        tagLo: 3,
        tagHi: 0,
        lun: 0n,
        cdb: read10(0, 8),
        dataInFormat: DescFormat.Direct,
        dataOutFormat: DescFormat.Direct,
        descriptors: encodeDirect(d),
      }),
      // A direct descriptor cut off by the end of the IU.
      readCmd(4, 0, 8, d).subarray(0, 56),
      // Immediate data longer than the IU.
      encodeCmd({
        tagLo: 5,
        tagHi: 0,
        lun: 0n,
        cdb: write10(0, 8),
        dataOutFormat: DescFormat.Immediate,
        descriptors: encodeImmediateDesc(4096),
        immediate: { offset: 68, data: new Uint8Array(100) },
      }),
      // Additional CDB length beyond the IU.
      (() => {
        const b = readCmd(6, 0, 8, d);
        b[31] = 0xfc;
        return b;
      })(),
    ];
    for (const b of bad) h.sendRaw(b);
    let credits = 0;
    for (let tag = 1; tag <= bad.length; tag++) {
      const r = await h.rsp(tag);
      expect(isInvalidIu(r), `tag ${tag}: ${JSON.stringify(r)}`).toBe(true);
      credits += r.reqLimDelta;
    }
    expect(credits).toBe(bad.length);
    expect(core.submitted.length).toBe(before);
    expect(h.disconnected).toBe(false);
    h.close();
    await goodRoundTrip(2);
  }, 60_000);

  test('credit overrun: the command beyond the request limit gets BUSY and no credit back', async () => {
    const h = new Client();
    await h.connect();
    core.hold = true;
    for (let tag = 1; tag <= CREDITS + 1; tag++) h.sendRaw(readCmd(tag, 0, 1, h.desc(0, 512)));
    const over = await h.rsp(CREDITS + 1);
    expect(over.status).toBe(0x08);
    expect(over.reqLimDelta).toBe(0);
    core.release();
    core.hold = false;
    let credits = 0;
    for (let tag = 1; tag <= CREDITS; tag++) {
      const r = await h.rsp(tag);
      expect(r.status).toBe(0);
      credits += r.reqLimDelta;
    }
    expect(credits).toBe(CREDITS);
    h.close();
  }, 60_000);

  test('ABORT TASK: no response for the aborted command, TMF complete, its credit comes back by SRP_CRED_REQ', async () => {
    const h = new Client();
    await h.connect();
    core.hold = true;
    h.sendRaw(readCmd(5, 0, 8, h.desc(0, 4096)));
    await h.until(() => (core.submitted.length > 0 && core.submitted.at(-1)!.tag === 5 ? true : undefined), 'the command in the core');
    h.sendRaw(encodeTskMgmt({ tagLo: 0x80000001, tagHi: 0, solNot: 0, lun: 0n, function: 0x01, taskTagLo: 5, taskTagHi: 0 }));
    const tmf = await h.rsp(0x80000001);
    core.hold = false;
    expect(tmf.rspCode).toBe(0);
    expect(core.tmfs.at(-1)).toMatchObject({ fn: 1, tag: 5 });
    await expectAbortedQuietly(h, tmf, 5);
    h.close();
  }, 60_000);

  test('ABORT TASK while the external descriptor table is read: no response, its credit back, no task left behind', async () => {
    const before = new Set(target.channels);
    const h = new Client();
    await h.connect();
    const ch = [...target.channels].find((c) => !before.has(c))!;
    // Hold the table READ's completion until the abort is answered: the abort then lands
    // while the READ is in flight, whatever the timing of the two IUs' arrival.
    let release: (() => void) | undefined;
    const transfer = ch.transfer.bind(ch);
    ch.transfer = (task, write, view, offset, done, buffers) => transfer(task, write, view, offset, (e) => (release = () => done(e)), buffers);
    // A READ whose table (two entries, in the initiator's memory at 8 KiB) is only partly in the IU.
    const list = [h.desc(0, 2048), h.desc(2048, 2048)];
    const table = new Uint8Array(32);
    list.forEach((d, i) => encodeDirect(d, table, 16 * i));
    h.data.buffer.set(table, 8192);
    h.sendRaw(
      encodeCmd({
        tagLo: 0x519,
        tagHi: 0,
        lun: 0n,
        cdb: read10(0, 8),
        dataInFormat: DescFormat.Indirect,
        dataInCount: 1,
        descriptors: encodeIndirect(h.desc(8192, 32), 4096, [list[0]!]),
      }),
    );
    await h.until(() => (release ? true : undefined), 'the descriptor table read');
    h.sendRaw(encodeTskMgmt({ tagLo: 0x80000002, tagHi: 0, solNot: 0, lun: 0n, function: 0x01, taskTagLo: 0x519, taskTagHi: 0 }));
    const tmf = await h.rsp(0x80000002);
    expect(tmf.rspCode).toBe(0);
    release!();
    await expectAbortedQuietly(h, tmf, 0x519);
    expect(core.submitted.some((c) => c.tag === 0x519)).toBe(false);
    expect([...ch.tasks.keys()]).toEqual([]);
    h.close();
  }, 60_000);

  test('an unknown IU type ends the channel with SRP_T_LOGOUT (invalid IU type); a wrong rkey ends only its channel', async () => {
    const h = new Client();
    await h.connect();
    h.sendRaw(new Uint8Array(16).fill(0x55, 0, 1));
    const lo = await h.until(() => {
      const g = h.got.find((x) => x.type === SrpOpcode.TLogout);
      return g && decodeTLogout(g.bytes);
    }, 'SRP_T_LOGOUT');
    expect(lo.reason).toBe(2);
    await h.until(() => (h.disconnected ? true : undefined), 'DISCONNECTED');
    h.close();

    const k = new Client();
    await k.connect();
    k.sendRaw(writeCmd(9, 0, 8, k.desc(0, 4096, (k.data.rkey ^ 0x5a5a00) >>> 0)));
    await k.until(() => (k.disconnected ? true : undefined), 'DISCONNECTED after a remote access error');
    k.close();
    await goodRoundTrip(3);
  }, 60_000);

  test('every hostile channel is gone and its QP/CQ/MRs freed; the good one remains', async () => {
    for (let i = 0; i < 100 && fabric.channelCount > 1; i++) await new Promise((r) => setTimeout(r, 100));
    expect(fabric.channelCount).toBe(1);
    expect(target.sessions.size).toBe(1);
    // Ours: the good client's QP and the target's channel for it.
    expect(native().liveObjects().qps - baselineQps).toBe(2);
    expect(target.liveCounters()).toMatchObject({ srpChannels: 1, srpSessions: 1 });
    expect(target.liveCounters().srpMalformed).toBeGreaterThanOrEqual(7);
  }, 30_000);

  test('shutdown: SRP_T_LOGOUT on every channel, then the disconnect; new logins refused', async () => {
    const done = target.shutdown(200);
    const lo = await good.until(() => {
      const g = good.got.find((x) => x.type === SrpOpcode.TLogout);
      return g && decodeTLogout(g.bytes);
    }, 'SRP_T_LOGOUT at shutdown');
    expect(lo.reason).toBe(0);
    await good.until(() => (good.disconnected ? true : undefined), 'DISCONNECTED after SRP_T_LOGOUT');
    await done;
    expect(fabric.channelCount).toBe(0);
    expect(core.lost.length).toBeGreaterThan(0);
    const late = new Client();
    const err = await late.connect().then(
      () => undefined,
      (e: Error & { event?: { privateData?: Buffer } }) => e,
    );
    expect(decodeLoginRej(err!.event!.privateData!).reason).toBe(0x00010001);
  }, 30_000);
});
