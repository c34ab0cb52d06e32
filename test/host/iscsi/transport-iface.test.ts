// The transport interface as iSER will use it: an in-memory transport with rdma=true that
// moves data itself (deliverDataIn / obtainDataOut), no digests, RDMAExtensions=Yes.
import { describe, expect, it } from 'vitest';
import { Opcode } from '../../../lib/iscsi/opcodes.js';
import type { OperationalParams } from '../../../lib/iscsi/params.js';
import { decodeBhs, encodeBhs, type Pdu, type PduInit } from '../../../lib/iscsi/pdu.js';
import { IscsiTarget } from '../../../lib/iscsi/target.js';
import { decodeText, encodeText } from '../../../lib/iscsi/text.js';
import type { IscsiTransport, TaskRef, TransportSink } from '../../../lib/iscsi/transport.js';
import type { IoDone } from '../../../lib/scsi/types.js';
import { FakeCore, pattern, read10, write10 } from './helpers.js';

class FakeIser implements IscsiTransport {
  readonly kind = 'iser';
  readonly rdma = true;
  readonly digests = false;
  readonly recvDataSegmentLimit = 8192;
  localAddress = '10.0.0.1';
  localPort = 3260;
  remoteAddress = '10.0.0.2';
  remotePort = 40000;
  sink!: TransportSink;
  sent: Array<{ pdu: Pdu; data: Buffer }> = [];
  rdmaWrites: Array<{ itt: number; offset: number; data: Buffer; ctx: unknown }> = [];
  /** The "initiator memory" RDMA READ fetches from, by ITT. */
  initiatorBuffers = new Map<number, Buffer>();
  params?: OperationalParams;
  closed = false;
  attach(sink: TransportSink): void {
    this.sink = sink;
  }
  sendPdu(bhs: Uint8Array, data?: Uint8Array | readonly Uint8Array[]): undefined {
    const d = data === undefined ? Buffer.alloc(0) : Buffer.concat(data instanceof Uint8Array ? [data] : [...data]);
    this.sent.push({ pdu: decodeBhs(Buffer.from(bhs)), data: d });
    return undefined;
  }
  deliverDataIn(task: TaskRef, from: Uint8Array, offset: number, done: IoDone): void {
    this.rdmaWrites.push({ itt: task.itt, offset, data: Buffer.from(from), ctx: task.transportContext });
    done(undefined);
  }
  obtainDataOut(task: TaskRef, into: Uint8Array, offset: number, done: IoDone): void {
    const src = this.initiatorBuffers.get(task.itt)!;
    into.set(src.subarray(offset, offset + into.length));
    setImmediate(done, undefined); // as an RDMA READ completes: later, not inside the call
  }
  loginComplete(): void {}
  enterFullFeature(p: OperationalParams): void {
    this.params = p;
  }
  /** pauseReceive / resumeReceive calls, in order. */
  flow: string[] = [];
  pauseReceive(): void {
    this.flow.push('pause');
  }
  resumeReceive(): void {
    this.flow.push('resume');
  }
  close(): void {
    if (!this.closed) {
      this.closed = true;
      this.sink.closed();
    }
  }
  /** Initiator side: deliver a PDU as the iSER receive path would. */
  deliver<T extends Pdu>(p: PduInit<T>, data: Uint8Array = new Uint8Array(0), ctx?: unknown): void {
    this.sink.receive({ bhs: encodeBhs({ ...p, dataLength: data.length } as PduInit<T>), ahs: new Uint8Array(0), data }, ctx);
  }
}

describe('transport interface (iSER-style)', () => {
  it('stops reading while the transport says its send queue is full, once per change', () => {
    const target = new IscsiTarget({ core: new FakeCore(), nopInterval: 0, tpgs: [{ iqn: 'iqn.2024-01.test:iser', generateNodeAcls: true }] });
    const t = new FakeIser();
    target.accept(t);
    t.sink.sendQueueFull(true);
    t.sink.sendQueueFull(true);
    expect(t.flow).toEqual(['pause']);
    t.sink.sendQueueFull(false);
    t.sink.sendQueueFull(false);
    expect(t.flow).toEqual(['pause', 'resume']);
  });

  it('negotiates RDMAExtensions=Yes and moves data by deliverDataIn / obtainDataOut', async () => {
    const core = new FakeCore();
    const target = new IscsiTarget({ core, nopInterval: 0, tpgs: [{ iqn: 'iqn.2024-01.test:iser', generateNodeAcls: true }] });
    const t = new FakeIser();
    target.accept(t);
    const login = (csg: number, nsg: number, keys: Array<[string, string]>): Map<string, string> => {
      t.deliver(
        {
          opcode: Opcode.LoginRequest,
          immediate: true,
          itt: 1,
          transit: true,
          cont: false,
          csg,
          nsg,
          versionMax: 0,
          versionMin: 0,
          isid: 0x400000000001,
          tsih: 0,
          cid: 0,
          cmdSN: 1,
          expStatSN: 0,
        },
        encodeText(keys),
      );
      const r = t.sent[t.sent.length - 1];
      expect(r.pdu.opcode).toBe(Opcode.LoginResponse);
      expect((r.pdu as { statusClass: number }).statusClass).toBe(0);
      return new Map(decodeText(r.data));
    };
    login(0, 1, [
      ['InitiatorName', 'iqn.2024-01.test:ib'],
      ['TargetName', 'iqn.2024-01.test:iser'],
      ['AuthMethod', 'None'],
    ]);
    const k = login(1, 3, [
      ['HeaderDigest', 'CRC32C,None'],
      ['DataDigest', 'CRC32C,None'],
      ['RDMAExtensions', 'Yes'],
      ['InitiatorRecvDataSegmentLength', '262144'],
      ['TargetRecvDataSegmentLength', '262144'],
      ['MaxRecvDataSegmentLength', '8192'],
      ['ImmediateData', 'Yes'],
      ['InitialR2T', 'No'],
    ]);
    expect(k.get('RDMAExtensions')).toBe('Yes');
    expect(k.get('HeaderDigest')).toBe('None');
    expect(k.get('TargetRecvDataSegmentLength')).toBe('8192');
    expect(k.get('MaxRecvDataSegmentLength')).toBe('Irrelevant');
    expect(t.params).toMatchObject({
      rdmaExtensions: true,
      headerDigest: false,
      initiatorMaxRecvDataSegmentLength: 262144,
      targetMaxRecvDataSegmentLength: 8192,
    });

    // WRITE 64 KiB: 4 KiB immediate, the rest by "RDMA READ"
    const data = pattern(65536, 5);
    t.initiatorBuffers.set(10, data);
    const cdb = Buffer.concat([write10(8, 128), Buffer.alloc(6)]);
    t.deliver(
      {
        opcode: Opcode.ScsiCommand,
        immediate: false,
        itt: 10,
        final: true,
        read: false,
        write: true,
        attr: 1,
        lun: 0n,
        edtl: 65536,
        cmdSN: 1,
        expStatSN: 0,
        cdb,
      },
      data.subarray(0, 4096),
      { writeStag: 0x1234 },
    );
    await new Promise((r) => setTimeout(r, 20));
    expect(core.disk.subarray(8 * 512, 8 * 512 + 65536).equals(data)).toBe(true);
    const wr = t.sent[t.sent.length - 1].pdu;
    expect(wr.opcode === Opcode.ScsiResponse && wr.status).toBe(0);
    expect(t.sent.some((s) => s.pdu.opcode === Opcode.R2T)).toBe(false);

    // READ 64 KiB: "RDMA WRITE"s then a SCSI Response (no Data-In PDUs, no S bit)
    const rcdb = Buffer.concat([read10(8, 128), Buffer.alloc(6)]);
    t.deliver(
      {
        opcode: Opcode.ScsiCommand,
        immediate: false,
        itt: 11,
        final: true,
        read: true,
        write: false,
        attr: 1,
        lun: 0n,
        edtl: 65536,
        cmdSN: 2,
        expStatSN: 0,
        cdb: rcdb,
      },
      undefined,
      { readStag: 0x5678 },
    );
    await new Promise((r) => setTimeout(r, 20));
    expect(Buffer.concat(t.rdmaWrites.filter((w) => w.itt === 11).map((w) => w.data)).equals(data)).toBe(true);
    expect(t.rdmaWrites[0].ctx).toEqual({ readStag: 0x5678 });
    expect(t.sent.some((s) => s.pdu.opcode === Opcode.DataIn)).toBe(false);
    const rr = t.sent[t.sent.length - 1].pdu;
    expect(rr.opcode === Opcode.ScsiResponse && rr.itt).toBe(11);
    await target.shutdown(20);
  });

  it('TCP-like transports get RDMAExtensions=No (RFC 7145 §6.2 refused over TCP)', () => {
    const core = new FakeCore();
    const target = new IscsiTarget({ core, nopInterval: 0, tpgs: [{ iqn: 'iqn.2024-01.test:tcp', generateNodeAcls: true }] });
    const t = new FakeIser();
    Object.assign(t, { rdma: false, kind: 'tcp', recvDataSegmentLimit: undefined });
    target.accept(t);
    t.deliver(
      {
        opcode: Opcode.LoginRequest,
        immediate: true,
        itt: 1,
        transit: true,
        cont: false,
        csg: 1,
        nsg: 3,
        versionMax: 0,
        versionMin: 0,
        isid: 1,
        tsih: 0,
        cid: 0,
        cmdSN: 1,
        expStatSN: 0,
      },
      encodeText([
        ['InitiatorName', 'iqn.2024-01.test:x'],
        ['TargetName', 'iqn.2024-01.test:tcp'],
        ['RDMAExtensions', 'Yes'],
      ]),
    );
    const k = new Map(decodeText(t.sent[0].data));
    expect(k.get('RDMAExtensions')).toBe('No');
  });
});
