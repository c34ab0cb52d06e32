// Test helpers: a small hand-rolled iSCSI initiator over TCP and a fake SCSI core with a
// RAM disk. The initiator frames PDUs with its own (concatenating, simple) reader so that
// the target's framer is tested against an independent implementation.

import net from 'node:net';
import { chapResponse, decodeBinary, encodeHex, type ChapAlgorithm } from '../../../lib/iscsi/chap.js';
import { crc32c, readDigest, writeDigest } from '../../../lib/iscsi/digest.js';
import { Opcode, RESERVED_TAG } from '../../../lib/iscsi/opcodes.js';
import { decodeBhs, encodeBhs, padLength, type Pdu, type PduInit } from '../../../lib/iscsi/pdu.js';
import { decodeText, encodeText } from '../../../lib/iscsi/text.js';
import {
  TmfResponse,
  type FabricIO,
  type Nexus,
  type ScsiCommand,
  type ScsiCompletion,
  type ScsiCore,
  type ScsiDone,
  type TmfFunction,
} from '../../../lib/scsi/types.js';
import { dataIn, dataOut } from '../../../lib/scsi/task.js';
import type { AsyncIo } from '../scsi/async-io.js';

export interface RxItem {
  pdu: Pdu;
  bhs: Buffer;
  data: Buffer;
}

export class TestInitiator {
  private buf = Buffer.alloc(0);
  private queue: RxItem[] = [];
  private waiters: Array<{ pred: (r: RxItem) => boolean; resolve: (r: RxItem) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }> = [];
  headerDigest = false;
  dataDigest = false;
  cmdSN = 1;
  expStatSN = 0;
  itt = 1;
  isid = 0x023d00000001;
  tsih = 0;
  closed = false;
  closedPromise: Promise<void>;
  /** Negotiated values the target answered with. */
  params = new Map<string, string>();
  targetMrdsl = 8192;
  mrdsl = 262144;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      this.parse();
    });
    this.closedPromise = new Promise((r) =>
      socket.on('close', () => {
        this.closed = true;
        for (const w of this.waiters.splice(0)) {
          clearTimeout(w.timer);
          w.reject(new Error('connection closed'));
        }
        r();
      }),
    );
    socket.on('error', () => undefined);
  }

  static connect(port: number, host = '127.0.0.1'): Promise<TestInitiator> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, host, () => resolve(new TestInitiator(s)));
      s.once('error', reject);
    });
  }

  private parse(): void {
    for (;;) {
      if (this.buf.length < 48) return;
      const ahs = this.buf[4] * 4;
      const dlen = this.buf.readUIntBE(5, 3);
      const hd = this.headerDigest ? 4 : 0;
      const dd = this.dataDigest && dlen ? 4 : 0;
      const total = 48 + ahs + hd + dlen + padLength(dlen) + dd;
      if (this.buf.length < total) return;
      const bhs = Buffer.from(this.buf.subarray(0, 48));
      if (hd && readDigest(this.buf, 48 + ahs) !== crc32c(this.buf.subarray(0, 48 + ahs))) throw new Error('bad header digest from target');
      const dstart = 48 + ahs + hd;
      const data = Buffer.from(this.buf.subarray(dstart, dstart + dlen));
      if (dd && readDigest(this.buf, dstart + dlen + padLength(dlen)) !== crc32c(this.buf.subarray(dstart, dstart + dlen + padLength(dlen))))
        throw new Error('bad data digest from target');
      this.buf = this.buf.subarray(total);
      const pdu = decodeBhs(bhs);
      if (
        'statSN' in pdu &&
        pdu.opcode !== Opcode.R2T &&
        !(pdu.opcode === Opcode.DataIn && !pdu.hasStatus) &&
        !(pdu.opcode === Opcode.NopIn && pdu.itt === RESERVED_TAG)
      )
        this.expStatSN = (pdu.statSN + 1) >>> 0;
      const item = { pdu, bhs, data };
      const i = this.waiters.findIndex((w) => w.pred(item));
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1);
        clearTimeout(w.timer);
        w.resolve(item);
      } else this.queue.push(item);
    }
  }

  next(pred: (r: RxItem) => boolean = () => true, timeoutMs = 3000): Promise<RxItem> {
    const i = this.queue.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]);
    if (this.closed) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.timer !== timer);
        reject(new Error('timeout waiting for PDU'));
      }, timeoutMs);
      this.waiters.push({ pred, resolve, reject, timer });
    });
  }

  /** Everything received and not yet consumed. */
  drainQueue(): RxItem[] {
    return this.queue.splice(0);
  }

  sendRaw(b: Uint8Array): void {
    this.socket.write(b);
  }

  /** Frame and send a PDU with our digests. */
  send<T extends Pdu>(p: PduInit<T>, data?: Uint8Array, ahs?: Uint8Array): void {
    const len = data?.length ?? 0;
    const bhs = encodeBhs({ ...p, dataLength: len, ahsWords: (ahs?.length ?? 0) / 4 } as PduInit<T>);
    const parts: Uint8Array[] = [bhs];
    if (ahs) parts.push(ahs);
    if (this.headerDigest) {
      const d = Buffer.alloc(4);
      writeDigest(d, 0, crc32c(Buffer.concat([bhs, ahs ?? Buffer.alloc(0)])));
      parts.push(d);
    }
    if (len) {
      const padded = Buffer.concat([data!, Buffer.alloc(padLength(len))]);
      parts.push(padded);
      if (this.dataDigest) {
        const d = Buffer.alloc(4);
        writeDigest(d, 0, crc32c(padded));
        parts.push(d);
      }
    }
    this.socket.write(Buffer.concat(parts));
  }

  nextItt(): number {
    return this.itt++;
  }

  loginPdu(o: {
    csg: number;
    nsg: number;
    transit: boolean;
    cont?: boolean;
    keys?: Record<string, string> | Array<[string, string]>;
    itt?: number;
    cid?: number;
    versionMin?: number;
    raw?: Uint8Array;
  }): void {
    const pairs = Array.isArray(o.keys) ? o.keys : Object.entries(o.keys ?? {});
    const data = o.raw ?? (pairs.length ? encodeText(pairs) : undefined);
    this.send(
      {
        opcode: Opcode.LoginRequest,
        immediate: true,
        itt: o.itt ?? 0x1000,
        transit: o.transit,
        cont: o.cont ?? false,
        csg: o.csg,
        nsg: o.nsg,
        versionMax: 0,
        versionMin: o.versionMin ?? 0,
        isid: this.isid,
        tsih: this.tsih,
        cid: o.cid ?? 0,
        cmdSN: this.cmdSN,
        expStatSN: this.expStatSN,
      },
      data,
    );
  }

  async loginStep(
    o: Parameters<TestInitiator['loginPdu']>[0],
  ): Promise<{ status: number; keys: Map<string, string>; pdu: Extract<Pdu, { opcode: Opcode.LoginResponse }> }> {
    this.loginPdu(o);
    const r = await this.next((x) => x.pdu.opcode === Opcode.LoginResponse);
    const pdu = r.pdu as Extract<Pdu, { opcode: Opcode.LoginResponse }>;
    return { status: (pdu.statusClass << 8) | pdu.statusDetail, keys: new Map(decodeText(r.data)), pdu };
  }

  /**
   * Full login. Returns the final status (0 on success) and the last response's keys.
   */
  async login(
    o: {
      initiatorName?: string;
      targetName?: string;
      discovery?: boolean;
      keys?: Record<string, string>;
      chap?: { user: string; secret: string; algorithms?: string; mutual?: { user?: string; secret: string; challenge?: Buffer; id?: number } };
      headerDigest?: boolean;
      dataDigest?: boolean;
      skipSecurity?: boolean;
    } = {},
  ): Promise<{ status: number; keys: Map<string, string> }> {
    const first: Record<string, string> = { InitiatorName: o.initiatorName ?? 'iqn.2024-01.test:init1' };
    if (o.discovery) first.SessionType = 'Discovery';
    else {
      first.SessionType = 'Normal';
      first.TargetName = o.targetName ?? 'iqn.2024-01.test:target';
    }
    const op: Record<string, string> = {
      HeaderDigest: o.headerDigest ? 'CRC32C,None' : 'None',
      DataDigest: o.dataDigest ? 'CRC32C,None' : 'None',
      MaxRecvDataSegmentLength: String(this.mrdsl),
      ...(o.keys ?? {}),
    };
    const all = new Map<string, string>();
    if (!o.skipSecurity) {
      let r = await this.loginStep({ csg: 0, nsg: 1, transit: !o.chap, keys: { ...first, AuthMethod: o.chap ? 'CHAP' : 'None' } });
      if (r.status) return r;
      r.keys.forEach((v, k) => all.set(k, v));
      if (o.chap) {
        r = await this.loginStep({ csg: 0, nsg: 1, transit: false, keys: { CHAP_A: o.chap.algorithms ?? '5' } });
        if (r.status) return r;
        const alg = Number(r.keys.get('CHAP_A')) as ChapAlgorithm;
        const id = Number(r.keys.get('CHAP_I'));
        const c = decodeBinary(r.keys.get('CHAP_C')!)!;
        const resp: Record<string, string> = { CHAP_N: o.chap.user, CHAP_R: encodeHex(chapResponse(alg, id, o.chap.secret, c)) };
        const mutualC = o.chap.mutual ? (o.chap.mutual.challenge ?? Buffer.from('0123456789abcdef0123456789abcdef', 'hex')) : undefined;
        const mutualId = o.chap.mutual?.id ?? 77;
        if (o.chap.mutual) {
          resp.CHAP_I = String(mutualId);
          resp.CHAP_C = encodeHex(mutualC!);
        }
        r = await this.loginStep({ csg: 0, nsg: 1, transit: true, keys: resp });
        if (r.status) return r;
        if (o.chap.mutual) {
          const want = encodeHex(chapResponse(alg, mutualId, o.chap.mutual.secret, mutualC!));
          if (r.keys.get('CHAP_R') !== want) throw new Error(`target's mutual CHAP_R wrong: ${r.keys.get('CHAP_R')}`);
          if (o.chap.mutual.user && r.keys.get('CHAP_N') !== o.chap.mutual.user) throw new Error('target CHAP_N wrong');
        }
        r.keys.forEach((v, k) => all.set(k, v));
      }
      if (!r.pdu.transit) throw new Error('target did not transit from security');
    }
    let sent: Record<string, string> = o.skipSecurity ? { ...first, ...op } : op;
    let r = await this.loginStep({ csg: 1, nsg: 3, transit: true, keys: sent });
    if (r.status) return r;
    r.keys.forEach((v, k) => all.set(k, v));
    for (let round = 0; round < 4 && !r.pdu.transit; round++) {
      // The target offered keys of its own (§6.2): answer them by accepting its values.
      const answers: Record<string, string> = {};
      r.keys.forEach((v, k) => {
        if (!(k in sent) && k !== 'TargetPortalGroupTag' && k !== 'MaxRecvDataSegmentLength' && k !== 'TargetAlias') answers[k] = v;
      });
      sent = { ...sent, ...answers };
      r = await this.loginStep({ csg: 1, nsg: 3, transit: true, keys: answers });
      if (r.status) return r;
      r.keys.forEach((v, k) => all.set(k, v));
    }
    if (!r.pdu.transit || r.pdu.nsg !== 3) throw new Error('target did not go to full feature phase');
    this.tsih = r.pdu.tsih;
    this.cmdSN = r.pdu.expCmdSN;
    this.params = all;
    this.headerDigest = all.get('HeaderDigest') === 'CRC32C';
    this.dataDigest = all.get('DataDigest') === 'CRC32C';
    if (all.has('MaxRecvDataSegmentLength')) this.targetMrdsl = Number(all.get('MaxRecvDataSegmentLength'));
    return { status: 0, keys: all };
  }

  /** Run one SCSI command; handles immediate data, unsolicited data, R2T, Data-In. */
  async scsi(
    cdb: Uint8Array,
    o: { lun?: bigint; read?: number; write?: Buffer; edtl?: number; immediate?: boolean; cmdSN?: number; noImmediateData?: boolean; timeoutMs?: number } = {},
  ): Promise<{ status: number; sense?: Buffer; data: Buffer; response: Pdu; dataIns: number; r2ts: number }> {
    const itt = this.nextItt();
    const lun = o.lun ?? 0n;
    const write = o.write;
    const edtl = o.edtl ?? (write ? write.length : (o.read ?? 0));
    const immediateData = this.params.get('ImmediateData') !== 'No' && !o.noImmediateData;
    const initialR2T = (this.params.get('InitialR2T') ?? 'Yes') === 'Yes';
    const firstBurst = Number(this.params.get('FirstBurstLength') ?? 65536);
    let immLen = 0;
    if (write && immediateData) immLen = Math.min(write.length, firstBurst, this.targetMrdsl);
    const unsolicitedEnd = write && !initialR2T ? Math.min(write.length, firstBurst) : immLen;
    const cdb16 = Buffer.alloc(16);
    Buffer.from(cdb).copy(cdb16, 0, 0, Math.min(16, cdb.length));
    const cmdSN = o.cmdSN ?? this.cmdSN;
    if (!o.immediate && o.cmdSN === undefined) this.cmdSN = (this.cmdSN + 1) >>> 0;
    this.send(
      {
        opcode: Opcode.ScsiCommand,
        immediate: o.immediate ?? false,
        itt,
        final: unsolicitedEnd <= immLen,
        read: !!o.read,
        write: !!write,
        attr: 1,
        lun,
        edtl,
        cmdSN,
        expStatSN: this.expStatSN,
        cdb: cdb16,
      },
      immLen ? write!.subarray(0, immLen) : undefined,
    );
    // Unsolicited Data-Out up to FirstBurstLength (§4.2.5.2).
    if (write && unsolicitedEnd > immLen) {
      let off = immLen;
      let sn = 0;
      while (off < unsolicitedEnd) {
        const n = Math.min(this.targetMrdsl, unsolicitedEnd - off);
        this.send(
          { opcode: Opcode.DataOut, itt, final: off + n >= unsolicitedEnd, lun, ttt: RESERVED_TAG, expStatSN: this.expStatSN, dataSN: sn++, bufferOffset: off },
          write.subarray(off, off + n),
        );
        off += n;
      }
    }
    const readBuf = Buffer.alloc(o.read ?? 0);
    let got = 0;
    let dataIns = 0;
    let r2ts = 0;
    for (;;) {
      const r = await this.next((x) => x.pdu.itt === itt, o.timeoutMs ?? 3000);
      const p = r.pdu;
      if (p.opcode === Opcode.R2T) {
        r2ts++;
        let off = p.bufferOffset;
        const end = p.bufferOffset + p.desiredLength;
        let sn = 0;
        while (off < end) {
          const n = Math.min(this.targetMrdsl, end - off);
          this.send(
            { opcode: Opcode.DataOut, itt, final: off + n >= end, lun, ttt: p.ttt, expStatSN: this.expStatSN, dataSN: sn++, bufferOffset: off },
            write!.subarray(off, off + n),
          );
          off += n;
        }
      } else if (p.opcode === Opcode.DataIn) {
        dataIns++;
        r.data.copy(readBuf, p.bufferOffset);
        got += r.data.length;
        if (p.hasStatus) return { status: p.status, data: readBuf.subarray(0, got), response: p, dataIns, r2ts };
      } else if (p.opcode === Opcode.ScsiResponse) {
        const sl = r.data.length >= 2 ? r.data.readUInt16BE(0) : 0;
        return { status: p.status, sense: sl ? r.data.subarray(2, 2 + sl) : undefined, data: readBuf.subarray(0, got), response: p, dataIns, r2ts };
      } else if (p.opcode === Opcode.Reject) {
        throw new Error('rejected');
      }
    }
  }

  async text(keys: Array<[string, string]>): Promise<Map<string, string>> {
    const itt = this.nextItt();
    const out: Buffer[] = [];
    let ttt = RESERVED_TAG;
    let data: Uint8Array | undefined = encodeText(keys);
    for (;;) {
      this.send(
        { opcode: Opcode.TextRequest, immediate: false, itt, final: true, cont: false, lun: 0n, ttt, cmdSN: this.cmdSN, expStatSN: this.expStatSN },
        data,
      );
      this.cmdSN = (this.cmdSN + 1) >>> 0;
      const r = await this.next((x) => x.pdu.itt === itt);
      if (r.pdu.opcode !== Opcode.TextResponse) throw new Error(`unexpected ${r.pdu.opcode}`);
      out.push(r.data);
      if (r.pdu.final) break;
      ttt = r.pdu.ttt;
      data = undefined;
    }
    const pairs = decodeText(Buffer.concat(out));
    return groupMap(pairs);
  }

  async logout(reason = 0): Promise<number> {
    const itt = this.nextItt();
    this.send({ opcode: Opcode.LogoutRequest, immediate: true, itt, reason, cid: 0, cmdSN: this.cmdSN, expStatSN: this.expStatSN });
    const r = await this.next((x) => x.pdu.itt === itt);
    if (r.pdu.opcode !== Opcode.LogoutResponse) throw new Error('expected logout response');
    return r.pdu.response;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Text pairs as a map of key → all values joined with "|" (TargetAddress repeats). */
function groupMap(pairs: Array<readonly [string, string]>): Map<string, string> {
  const m = new Map<string, string>();
  for (const [k, v] of pairs) m.set(k, m.has(k) ? `${m.get(k)}|${v}` : v);
  return m;
}

// ---- fake SCSI core ---------------------------------------------------------------------

export interface FakeCoreOptions {
  blocks?: number;
  blockSize?: number;
  delayMs?: number;
}

/** Enough SBC/SPC for the transport tests: TUR, INQUIRY, READ CAPACITY(10), READ/WRITE(10). */
export class FakeCore implements ScsiCore {
  readonly disk: Buffer;
  readonly blockSize: number;
  readonly blocks: number;
  submitted: ScsiCommand[] = [];
  tmfs: Array<{ fn: TmfFunction; lun: bigint; tag?: number }> = [];
  lost: Nexus[] = [];
  nexuses: Nexus[] = [];
  /** Commands parked until `release()` (for TMF tests). */
  hold = false;
  private held: Array<() => void> = [];

  constructor(private readonly o: FakeCoreOptions = {}) {
    this.blockSize = o.blockSize ?? 512;
    this.blocks = o.blocks ?? 2048;
    this.disk = Buffer.alloc(this.blockSize * this.blocks);
  }

  release(): void {
    for (const f of this.held.splice(0)) f();
  }

  submit(cmd: ScsiCommand, nexus: Nexus, io: FabricIO, done: ScsiDone): void {
    const asyncIo = {
      dataIn: (from: Uint8Array, offset: number) => dataIn(io, from, offset),
      dataOut: (into: Uint8Array, offset: number) => dataOut(io, into, offset),
    };
    this.run(cmd, nexus, asyncIo).then(
      (c) => done(c.status, c.transferred, c.sense, undefined),
      (e: Error) => done(0, 0, undefined, e),
    );
  }

  private async run(cmd: ScsiCommand, nexus: Nexus, io: AsyncIo): Promise<ScsiCompletion> {
    this.submitted.push(cmd);
    this.nexuses.push(nexus);
    if (this.hold) await new Promise<void>((r) => this.held.push(r));
    if (this.o.delayMs) await new Promise((r) => setTimeout(r, this.o.delayMs));
    const c = cmd.cdb;
    const bs = this.blockSize;
    switch (c[0]) {
      case 0x00:
        return { status: 0, transferred: 0 };
      case 0x12: {
        const inq = Buffer.alloc(36);
        inq[2] = 6;
        inq[3] = 2;
        inq[4] = 31;
        inq.write('FAKE    ', 8);
        inq.write('FAKECORE        ', 16);
        inq.write('0001', 32);
        const alloc = (c[3] << 8) | c[4];
        const n = Math.min(alloc, 36, cmd.expectedLength);
        await io.dataIn(inq.subarray(0, n), 0);
        return { status: 0, transferred: Math.min(alloc, 36) };
      }
      case 0xa0: {
        // REPORT LUNS: LUN 0 only
        const b = Buffer.alloc(16);
        b.writeUInt32BE(8, 0);
        const alloc = ((c[6] << 24) | (c[7] << 16) | (c[8] << 8) | c[9]) >>> 0;
        const n = Math.min(16, alloc, cmd.expectedLength);
        if (n) await io.dataIn(b.subarray(0, n), 0);
        return { status: 0, transferred: Math.min(16, alloc) };
      }
      case 0x9e: {
        // READ CAPACITY(16)
        if ((c[1] & 0x1f) !== 0x10) break;
        const b = Buffer.alloc(32);
        b.writeBigUInt64BE(BigInt(this.blocks - 1), 0);
        b.writeUInt32BE(bs, 8);
        const alloc = ((c[10] << 24) | (c[11] << 16) | (c[12] << 8) | c[13]) >>> 0;
        const n = Math.min(32, alloc, cmd.expectedLength);
        if (n) await io.dataIn(b.subarray(0, n), 0);
        return { status: 0, transferred: Math.min(32, alloc) };
      }
      case 0x25: {
        const b = Buffer.alloc(8);
        b.writeUInt32BE(this.blocks - 1, 0);
        b.writeUInt32BE(bs, 4);
        await io.dataIn(b.subarray(0, Math.min(8, cmd.expectedLength)), 0);
        return { status: 0, transferred: 8 };
      }
      case 0x28:
      case 0x2a: {
        const lba = ((c[2] << 24) | (c[3] << 16) | (c[4] << 8) | c[5]) >>> 0;
        const n = (c[7] << 8) | c[8];
        if (lba + n > this.blocks) return { status: 2, transferred: 0, sense: Buffer.from([0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x21, 0, 0, 0, 0, 0]) };
        const len = n * bs;
        const moved = Math.min(len, cmd.expectedLength);
        if (c[0] === 0x28) {
          // Two pieces when large, to exercise several dataIn calls.
          const half = moved > 8192 ? Math.floor(moved / 2 / bs) * bs : moved;
          if (half) await io.dataIn(this.disk.subarray(lba * bs, lba * bs + half), 0);
          if (moved > half) await io.dataIn(this.disk.subarray(lba * bs + half, lba * bs + moved), half);
        } else if (moved) {
          await io.dataOut(this.disk.subarray(lba * bs, lba * bs + moved), 0); // zero copy into "LUN memory"
        }
        return { status: 0, transferred: len };
      }
      default:
        break;
    }
    return { status: 2, transferred: 0, sense: Buffer.from([0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0]) };
  }

  async taskManagement(fn: TmfFunction, _nexus: Nexus, lun: bigint, tag?: number): Promise<TmfResponse> {
    this.tmfs.push({ fn, lun, tag });
    this.release();
    return TmfResponse.Complete;
  }

  nexusLost(nexus: Nexus): void {
    this.lost.push(nexus);
  }
}

export const read10 = (lba: number, blocks: number): Buffer => {
  const b = Buffer.alloc(10);
  b[0] = 0x28;
  b.writeUInt32BE(lba, 2);
  b.writeUInt16BE(blocks, 7);
  return b;
};
export const write10 = (lba: number, blocks: number): Buffer => {
  const b = Buffer.alloc(10);
  b[0] = 0x2a;
  b.writeUInt32BE(lba, 2);
  b.writeUInt16BE(blocks, 7);
  return b;
};
export const inquiry = (alloc = 36): Buffer => {
  const b = Buffer.alloc(6);
  b[0] = 0x12;
  b.writeUInt16BE(alloc, 3);
  return b;
};
export const tur = (): Buffer => Buffer.alloc(6);

export function pattern(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}
