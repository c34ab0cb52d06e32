// A hostile iSER initiator written with the project's own binding, against the iSER
// transport and the iSCSI engine on soft-RoCE: PDUs before the login completes, messages
// too short for their headers, wrong STags, read data asked beyond the expected transfer
// length, a flood of logins. Only the offending connection suffers: a well-behaved session
// beside it keeps reading and writing verified data, nothing is written outside the
// addressed blocks, and every connection's QP/CQ/MRs are freed.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { lineLogger } from '../../lib/common/log.js';
import { IscsiTarget } from '../../lib/iscsi/target.js';
import { Opcode } from '../../lib/iscsi/opcodes.js';
import { decodeBhs, encodeBhs, type Pdu, type PduInit, type ScsiCommandPdu } from '../../lib/iscsi/pdu.js';
import { decodeText, encodeText } from '../../lib/iscsi/text.js';
import { IserFabric, encodeIserHeader, type IserHeader } from '../../lib/iser/index.js';
import { MemoryRegistry } from '../../lib/verbs/index.js';
import { FakeCore, pattern, read10, write10 } from '../host/iscsi/helpers.js';
import { ADDR_A, DeviceTable, RawClient, RdmaCm, devicesOrFail, freshPort, native } from './rc.js';

const TARGET = 'iqn.2025-01.org.rdma-target:hostile';
const SLOT = 28 + 48 + 8192 + 512;
let cm: RdmaCm;
let devices: DeviceTable;
let fabric: IserFabric;
let iscsi: IscsiTarget;
let core: FakeCore;
let port: number;
let baselineQps = 0;
let nextIsid = 1;

interface Rx {
  pdu: Pdu;
  bhs: Buffer;
  data: Buffer;
}

/** A minimal iSER initiator: SENDs of [iSER header | BHS | data], receives into a ring. */
class Client extends RawClient {
  readonly got: Rx[] = [];
  disconnected = false;
  cmdSN = 1;
  itt = 1;

  constructor() {
    super(SLOT);
  }

  async connect(privateData = Buffer.from([0xc0, 0, 0, 0])): Promise<void> {
    const id = await this.open(cm, devices, port);
    cm.setHandler(id, (ev) => {
      if (ev.type === 'RDMA_CM_EVENT_DISCONNECTED') this.disconnected = true;
    });
    await cm.connect(id, { privateData, initiatorDepth: 1, responderResources: 16 });
    cm.setHandler(id, (ev) => {
      if (ev.type === 'RDMA_CM_EVENT_DISCONNECTED') this.disconnected = true;
    });
  }

  protected override received(b: Buffer): void {
    const bhs = b.subarray(28, 76);
    this.got.push({ pdu: decodeBhs(bhs), bhs, data: b.subarray(76 + bhs[4] * 4, 76 + bhs[4] * 4 + bhs.readUIntBE(5, 3)) });
  }

  send<T extends Pdu>(p: PduInit<T>, data?: Uint8Array, iser: Partial<IserHeader> = {}): void {
    const bhs = encodeBhs<T>({ ...p, dataLength: data?.length ?? 0 });
    const msg = new Uint8Array(76 + (data?.length ?? 0));
    encodeIserHeader({ opcode: 1, ...iser }, msg, 0);
    msg.set(bhs, 28);
    if (data) msg.set(data, 76);
    this.sendRaw(msg);
  }

  async next(pred: (r: Rx) => boolean = () => true, ms = 15_000): Promise<Rx> {
    const end = Date.now() + ms;
    for (;;) {
      const i = this.got.findIndex((r, k) => k >= 0 && pred(r));
      if (i >= 0) return this.got.splice(i, 1)[0];
      if (this.disconnected) throw new Error('disconnected');
      if (Date.now() > end) throw new Error('no PDU in time');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async login(initiator = 'iqn.2025-01.org.rdma-target:hostile-client'): Promise<Map<string, string>> {
    const isid = 0x023d00000000 + nextIsid++;
    const keys: Array<[string, string]> = [
      ['InitiatorName', initiator],
      ['TargetName', TARGET],
      ['SessionType', 'Normal'],
      ['AuthMethod', 'None'],
    ];
    this.send(
      {
        opcode: Opcode.LoginRequest,
        immediate: true,
        itt: 0x1000,
        transit: true,
        cont: false,
        csg: 0,
        nsg: 1,
        versionMax: 0,
        versionMin: 0,
        isid,
        tsih: 0,
        cid: 0,
        cmdSN: this.cmdSN,
        expStatSN: 0,
      },
      encodeText(keys),
    );
    let r = await this.next((x) => x.pdu.opcode === Opcode.LoginResponse);
    const op: Array<[string, string]> = [
      ['RDMAExtensions', 'Yes'],
      ['InitiatorRecvDataSegmentLength', '8192'],
      ['TargetRecvDataSegmentLength', '8192'],
      ['ImmediateData', 'Yes'],
      ['HeaderDigest', 'None'],
      ['DataDigest', 'None'],
    ];
    this.send(
      {
        opcode: Opcode.LoginRequest,
        immediate: true,
        itt: 0x1001,
        transit: true,
        cont: false,
        csg: 1,
        nsg: 3,
        versionMax: 0,
        versionMin: 0,
        isid,
        tsih: 0,
        cid: 0,
        cmdSN: this.cmdSN,
        expStatSN: 1,
      },
      encodeText(op),
    );
    r = await this.next((x) => x.pdu.opcode === Opcode.LoginResponse);
    const p = r.pdu as Extract<Pdu, { opcode: Opcode.LoginResponse }>;
    if (p.statusClass !== 0 || !p.transit || p.nsg !== 3) throw new Error(`login not complete: class ${p.statusClass} T=${p.transit} NSG=${p.nsg}`);
    return new Map(decodeText(r.data));
  }

  /** A SCSI command whose data goes to/from our data MR at `at`. */
  command(cdb: Uint8Array, o: { read?: number; write?: number; at?: number; stag?: number; immediate?: Uint8Array }): number {
    const itt = this.itt++;
    const full = new Uint8Array(16);
    full.set(cdb);
    const imm = o.immediate?.length ?? 0;
    // ib_iser's write base offset points past the unsolicited bytes (RFC 7145 §9.2).
    const va = this.data.address + (o.at ?? 0) + (o.write !== undefined ? imm : 0);
    const hi = Math.floor(va / 2 ** 32);
    const lo = va >>> 0;
    const stag = o.stag ?? this.data.rkey;
    const edtl = o.read ?? o.write ?? 0;
    this.send<ScsiCommandPdu>(
      {
        opcode: Opcode.ScsiCommand,
        immediate: false,
        itt,
        final: true,
        read: o.read !== undefined,
        write: o.write !== undefined,
        attr: 1,
        lun: 0n,
        edtl,
        cmdSN: this.cmdSN++,
        expStatSN: 0,
        cdb: full,
        dataLength: imm,
      },
      o.immediate,
      o.read !== undefined
        ? { rsv: true, readStag: stag, readVaHi: hi, readVaLo: lo }
        : o.write !== undefined && edtl > imm
          ? { wsv: true, writeStag: stag, writeVaHi: hi, writeVaLo: lo >>> 0 }
          : {},
    );
    return itt;
  }

  async response(itt: number): Promise<Extract<Pdu, { opcode: Opcode.ScsiResponse }>> {
    const r = await this.next((x) => x.pdu.opcode === Opcode.ScsiResponse && x.pdu.itt === itt);
    return r.pdu as Extract<Pdu, { opcode: Opcode.ScsiResponse }>;
  }

  async waitDisconnected(ms = 15_000): Promise<void> {
    const end = Date.now() + ms;
    while (!this.disconnected && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    if (!this.disconnected) throw new Error('the target did not drop the connection');
  }
}

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
}

/** A READ/WRITE round trip on a good session: the session beside every attack. */
async function roundTrip(c: Client, lba: number, seed: number): Promise<void> {
  const want = pattern(8192, seed);
  c.data.buffer.set(want, 0);
  const w = await c.response(c.command(write10(lba, 16), { write: 8192, at: 0, immediate: want.subarray(0, 4096) }));
  expect(w.status).toBe(0);
  c.data.buffer.fill(0, 65536, 65536 + 8192);
  const r = await c.response(c.command(read10(lba, 16), { read: 8192, at: 65536 }));
  expect(r.status).toBe(0);
  expect(Buffer.from(c.data.buffer.subarray(65536, 65536 + 8192)).equals(want)).toBe(true);
}

describe('hostile iSER initiator', () => {
  let good: Client;

  beforeAll(async () => {
    devicesOrFail();
    cm = new RdmaCm();
    devices = new DeviceTable();
    core = new FakeCore({ blocks: 4096 });
    core.disk.set(pattern(core.disk.length, 99));
    const say = (m: string) => {
      if (process.env.ISER_TEST_DEBUG) console.log(m);
    };
    iscsi = new IscsiTarget({ tpgs: [{ iqn: TARGET, core, generateNodeAcls: true }], loginTimeout: 5000, log: lineLogger((_level, m) => say(m)) });
    fabric = new IserFabric(new MemoryRegistry(native().constants.ACCESS_LOCAL_WRITE));
    port = freshPort();
    await fabric.listen(iscsi, { address: ADDR_A, port, connection: { closeTimeoutMs: 1000 } });
    baselineQps = native().liveObjects().qps;
    good = new Client();
    await good.connect();
    await good.login('iqn.2025-01.org.rdma-target:good');
    await roundTrip(good, 100, 1);
  }, 120_000);

  afterAll(() => {
    good?.close();
    fabric?.close();
    devices?.close();
    cm?.close();
  });

  test('a SCSI Command before the login completes ends that login; the good session goes on', async () => {
    const c = new Client();
    await c.connect();
    c.command(read10(0, 1), { read: 512 });
    const r = await c.next((x) => x.pdu.opcode === Opcode.LoginResponse).catch(() => undefined);
    if (r) expect((r.pdu as Extract<Pdu, { opcode: Opcode.LoginResponse }>).statusClass).toBe(2);
    await c.waitDisconnected();
    c.close();
    await roundTrip(good, 200, 2);
  }, 60_000);

  test('a message shorter than iSER header + BHS, and a Hello, drop only their connection', async () => {
    for (const bytes of [
      Uint8Array.of(0x10, 0, 0, 0, 1, 2, 3),
      (() => {
        const b = new Uint8Array(76);
        encodeIserHeader({ opcode: 2 }, b);
        return b;
      })(),
    ]) {
      const c = new Client();
      await c.connect();
      await c.login();
      c.sendRaw(bytes);
      await c.waitDisconnected();
      c.close();
    }
    await roundTrip(good, 300, 3);
  }, 60_000);

  test('a wrong STag: the RDMA fails, that connection ends, nothing else does', async () => {
    const c = new Client();
    await c.connect();
    await c.login();
    c.command(read10(0, 8), { read: 4096, stag: (c.data.rkey ^ 0x5a5a00) >>> 0 });
    await c.waitDisconnected();
    c.close();
    // A write whose Data-Out cannot be fetched (wrong STag) writes nothing.
    const before = Buffer.from(core.disk.subarray(1000 * 512, 1016 * 512));
    const d = new Client();
    await d.connect();
    await d.login();
    d.command(write10(1000, 16), { write: 8192, stag: (d.data.rkey + 0x100) >>> 0 });
    await d.waitDisconnected();
    d.close();
    expect(Buffer.from(core.disk.subarray(1000 * 512, 1016 * 512)).equals(before)).toBe(true);
    await roundTrip(good, 400, 4);
  }, 60_000);

  test('read data never goes beyond the expected transfer length; writes stay in their blocks', async () => {
    const guard = 0xa5;
    good.data.buffer.fill(guard, 4096, 16384);
    // The CDB asks for 16 blocks (8 KiB) but EDTL says 4 KiB: only 4 KiB may land (§11.4.5.1).
    const r = await good.response(good.command(read10(500, 16), { read: 4096, at: 0 }));
    expect(r.overflow).toBe(true);
    expect(r.residual).toBe(4096);
    expect(good.data.buffer.subarray(4096, 16384).every((x) => x === guard)).toBe(true);
    expect(Buffer.from(good.data.buffer.subarray(0, 4096)).equals(core.disk.subarray(500 * 512, 500 * 512 + 4096))).toBe(true);
    // A write of 8 blocks with EDTL 4 KiB: the blocks after the first 4 KiB keep their bytes.
    const around = Buffer.from(core.disk.subarray(600 * 512, 620 * 512));
    good.data.buffer.fill(0x3c, 0, 8192);
    const w = await good.response(good.command(write10(604, 16), { write: 4096, at: 0 }));
    expect([0, 2]).toContain(w.status);
    const after = core.disk.subarray(600 * 512, 620 * 512);
    expect(Buffer.from(after.subarray(0, 4 * 512)).equals(around.subarray(0, 4 * 512))).toBe(true);
    expect(Buffer.from(after.subarray(12 * 512)).equals(around.subarray(12 * 512))).toBe(true);
  }, 60_000);

  test('a flood of connections and half-done logins: the target serves on and frees them all', async () => {
    const flood: Client[] = [];
    for (let i = 0; i < 24; i++) {
      const c = new Client();
      await c.connect();
      if (i % 2) await c.login(`iqn.2025-01.org.rdma-target:flood-${i}`);
      else
        c.send(
          {
            opcode: Opcode.LoginRequest,
            immediate: true,
            itt: 1,
            transit: false,
            cont: false,
            csg: 0,
            nsg: 0,
            versionMax: 0,
            versionMin: 0,
            isid: 0x023d00000099,
            tsih: 0,
            cid: 0,
            cmdSN: 1,
            expStatSN: 0,
          },
          encodeText([['InitiatorName', `iqn.x:f${i}`]]),
        );
      flood.push(c);
    }
    await roundTrip(good, 700, 7);
    for (const c of flood) c.close();
    await until(() => fabric.connectionCount === 1, 20_000);
    expect(fabric.connectionCount).toBe(1);
    await until(() => native().liveObjects().qps === baselineQps + 2, 10_000);
    // Ours: the good client's QP; the target's: the good session's.
    expect(native().liveObjects().qps).toBe(baselineQps + 2);
    await roundTrip(good, 800, 8);
  }, 120_000);
});
