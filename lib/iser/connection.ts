// One iSER connection (RFC 7145): the iSCSI transport over an RC queue pair.
//
//   receive ring  fixed slots [iSER header 28 | BHS 48 | AHS | data ≤ TargetRecvDataSegmentLength],
//                 one posted before the accept, the rest just before the final Login Response
//                 (LIO's isert does the same: a login is one request at a time);
//   send slots    the same layout for every PDU we send (SEND; the SCSI Response as
//                 SEND_WITH_INV of the task's STag when the initiator allows it);
//   Data-In       RDMA WRITE to the read STag at read VA + offset, unsignalled: the response
//                 SEND that follows on the same QP completes after it (RC ordering);
//   Data-Out      RDMA READ from the write STag at write VA + (offset − unsolicited bytes),
//                 at most `initiatorDepth` in flight (the QP's max_rd_atomic enforces it).
// Data moves straight to/from registered memory (the RAM LUNs, MemoryRegistry) when the core
// hands us a view of it, else through a pool of registered data slots (one copy).
//
// Lifecycle (the RC channel's, lib/verbs/channel.ts): CONNECT_REQUEST → accept → ESTABLISHED
// → the engine attaches → … → close() → every pending operation fails, the resources are
// freed, sink.closed(). A bad STag (a remote access error) ends only this connection.

import {
  ChannelState as State,
  CookieKind,
  MemoryRegistry,
  RcChannel,
  UNSIGNALED_WR_ID,
  channelTotals,
  native,
  settle,
  type CmEvent,
  type DeviceLimits,
  type DeviceResources,
  type NativeCmId,
  type NativeMr,
  type RcChannelOptions,
  type RdmaCm,
  type RdmaOp,
  type WorkCompletion,
} from '../verbs/index.js';
import { BHS_LENGTH, Opcode } from '../iscsi/opcodes.js';
import type { OperationalParams } from '../iscsi/params.js';
import { bhsAhsLength, bhsDataLength, bhsItt, bhsOpcode } from '../iscsi/pdu.js';
import { type IscsiTransport, type TaskRef, TransportClosedError, type TransportSink } from '../iscsi/transport.js';
import type { RxPdu } from '../iscsi/pdu.js';
import type { IoDone } from '../scsi/types.js';
import {
  ISER_HEADER_LENGTH,
  IserOpcode,
  decodeIserHeader,
  emptyIserHeader,
  encodeIserHeader,
  parseCmHeader,
  acceptCmHeader,
  type IserHeader,
} from './header.js';

const HEADERS = ISER_HEADER_LENGTH + BHS_LENGTH;
/** Room for AHS (an extended CDB of up to 260 bytes, a bidi read length). */
const AHS_ROOM = 272;
const EMPTY = new Uint8Array(0);

/** Beyond the RC channel's options; bounce slots default to 64 × 128 KiB. */
export interface IserConnectionOptions extends RcChannelOptions {
  /** Data bytes per received PDU (TargetRecvDataSegmentLength we accept). Default 8192. */
  recvDataSegmentLength?: number;
  /** Data bytes per PDU we send (caps InitiatorRecvDataSegmentLength). Default 8192. */
  sendDataSegmentLength?: number;
  /** Receive ring depth. Default 256. */
  receiveDepth?: number;
  /** Send slots (PDUs in flight to the initiator). Default 256. */
  sendSlots?: number;
}

/** The iSER header fields of one SCSI Command, as the task's transportContext. */
export interface IserCommand {
  wsv: boolean;
  writeStag: number;
  writeVaHi: number;
  writeVaLo: number;
  rsv: boolean;
  readStag: number;
  readVaHi: number;
  readVaLo: number;
}

function newIserCommand(): IserCommand {
  return { wsv: false, writeStag: 0, writeVaHi: 0, writeVaLo: 0, rsv: false, readStag: 0, readVaHi: 0, readVaLo: 0 };
}

/** The context of every command that names no buffer (no data, or immediate data only). */
const NO_STAGS: IserCommand = Object.freeze(newIserCommand());

/** Answered command contexts a connection keeps for reuse. */
const MAX_FREE_COMMANDS = 256;

/** What the listener learns of a connection's life. */
export interface IserConnectionHooks {
  /** ESTABLISHED: hand the connection to the iSCSI engine. */
  established(c: IserConnection): void;
  /** Resources freed (once, whether or not it was established). */
  closed(c: IserConnection): void;
}

export class IserDataError extends Error {
  readonly code = 'ISER_DATA';
}

/** Completion kinds beyond the base's (the cookie's low 2 bits, the rest an index). */
const enum Kind {
  Op = 3,
}

export class IserConnection extends RcChannel implements IscsiTransport {
  readonly kind = 'iser';
  readonly rdma = true;
  readonly copiesBhs = true;
  readonly digests = false;
  readonly recvDataSegmentLimit: number;
  readonly sendDataSegmentLimit: number;
  readonly sendWithInv: boolean;

  private sink: TransportSink | undefined;
  /** Signalled direct WRs (READs into registered memory, WRITEs from a transient buffer) by id (Kind.Op). */
  private readonly ops = new Map<number, RdmaOp>();
  private nextOp = 0;
  /** Sends waiting for a free slot (rare: more PDUs in flight than slots). */
  private txQueue: Array<{ bytes: Uint8Array; inv: number; done: () => void }> = [];
  /** Receive completions waiting for the engine (before attach, or in the batch being polled): slot, length. */
  private readonly rxQueueSlot: Int32Array;
  private readonly rxQueueLen: Int32Array;
  private rxHead = 0;
  private rxCount = 0;
  private delivering = false;
  private fullFeature = false;
  private ringPosted = false;
  private readonly hdr: IserHeader = emptyIserHeader();
  /** STags of the commands awaiting their response, by ITT (for SEND_WITH_INV). */
  private readonly commands = new Map<number, IserCommand>();
  /** Contexts whose command was answered, for the next commands (no object per command). */
  private readonly freeCommands: IserCommand[] = [];
  /** The BHS view of each receive slot, made once. */
  private readonly rxBhs: (Uint8Array | undefined)[] = [];
  /** What a full-feature receive hands the engine; the engine uses it only during receive(). */
  private readonly rxPdu: RxPdu = { bhs: EMPTY, ahs: EMPTY, data: EMPTY };

  constructor(
    cm: RdmaCm,
    id: NativeCmId,
    dev: DeviceResources,
    registry: MemoryRegistry,
    request: CmEvent,
    limits: DeviceLimits,
    private readonly hooks: IserConnectionHooks,
    opts: IserConnectionOptions = {},
  ) {
    const recvLimit = opts.recvDataSegmentLength ?? 8192;
    const sendLimit = opts.sendDataSegmentLength ?? 8192;
    const ring = opts.receiveDepth ?? 256;
    super(cm, id, dev, registry, request, limits, {
      ring,
      rxSlotSize: HEADERS + AHS_ROOM + recvLimit,
      sendSlots: opts.sendSlots ?? 256,
      txSlotSize: HEADERS + AHS_ROOM + sendLimit,
      dataSlots: opts.dataSlots ?? 64,
      dataSlotSize: opts.dataSlotSize ?? 128 * 1024,
      readDepth: opts.readDepth,
      maxRdmaBytes: opts.maxRdmaBytes,
      closeTimeoutMs: opts.closeTimeoutMs,
    });
    this.sendWithInv = !parseCmHeader(request.privateData).sendWithInvNotSupported;
    this.recvDataSegmentLimit = recvLimit;
    this.sendDataSegmentLimit = sendLimit;
    this.rxQueueSlot = new Int32Array(ring);
    this.rxQueueLen = new Int32Array(ring);
  }

  /** Posts the login receive and accepts the connection request. */
  accept(): void {
    this.postRecvSlot(this.rx.alloc());
    this.flushRecvs();
    this.acceptWith(acceptCmHeader());
  }

  override get describe(): string {
    return `iser ${this.remoteAddress}:${this.remotePort} (${this.deviceName})`;
  }

  // ---- IscsiTransport -------------------------------------------------------------------

  attach(sink: TransportSink): void {
    this.sink = sink;
    this.drainReceives();
  }

  /**
   * LIO's order: the whole receive ring is posted after the last Login Request and before
   * the final Login Response, so the first command cannot find the ring empty.
   */
  loginComplete(): void {
    if (this.state === State.Established) this.postRing();
  }

  enterFullFeature(_params: OperationalParams): void {
    this.fullFeature = true;
  }

  /**
   * Not honoured: over RDMA the initiator is held back by MaxCmdSN and by the receive ring
   * (no posted receive: RNR retry), so nothing piles up here; holding back what did arrive
   * would only delay immediate PDUs — NOP-Out pings, TMFs — past the initiator's timeouts
   * (ib_iser drops the connection after 5 s without a NOP-In).
   */
  pauseReceive(): void {}

  resumeReceive(): void {}

  sendPdu(bhs: Uint8Array, data?: Uint8Array | readonly Uint8Array[], ahs?: Uint8Array): Promise<void> | undefined {
    if (this.state !== State.Established) return undefined;
    const parts = data === undefined ? undefined : data instanceof Uint8Array ? [data] : data;
    let len = 0;
    if (parts) for (const p of parts) len += p.length;
    const ahsLen = ahs?.length ?? 0;
    if (len > this.sendDataSegmentLimit || ahsLen > AHS_ROOM) {
      throw new RangeError(`iSER: PDU data segment ${len} (AHS ${ahsLen}) exceeds the send buffer (${this.sendDataSegmentLimit})`);
    }
    const inv = bhsOpcode(bhs) === Opcode.ScsiResponse ? this.invalidateKey(bhs) : 0;
    const slot = this.tx.alloc();
    const buf = slot >= 0 ? this.tx.view(slot) : new Uint8Array(HEADERS + ahsLen + len);
    encodeIserHeader({ opcode: IserOpcode.Control }, buf, 0);
    buf.set(bhs.subarray(0, BHS_LENGTH), ISER_HEADER_LENGTH);
    let at = HEADERS;
    if (ahsLen) {
      buf.set(ahs!, at);
      at += ahsLen;
    }
    if (parts)
      for (const p of parts) {
        buf.set(p, at);
        at += p.length;
      }
    if (slot >= 0) {
      this.postSend(slot, at, inv);
      return undefined;
    }
    // The ring is full: the copy waits for a slot, and the engine stops reading until then.
    if (this.txQueue.length === 0) this.sink?.sendQueueFull(true);
    return new Promise<void>((done) => this.txQueue.push({ bytes: buf.subarray(0, at), inv, done }));
  }

  deliverDataIn(task: TaskRef, from: Uint8Array, offset: number, done: IoDone): void {
    const c = task.transportContext as IserCommand | undefined;
    if (!c?.rsv) return done(new IserDataError(`ITT 0x${task.itt.toString(16)}: read data but the command carried no read STag (RSV=0, RFC 7145 §9.2)`));
    if (this.state !== State.Established) return done(new TransportClosedError('connection closing'));
    const w = native().constants.WR_RDMA_WRITE;
    const mr = this.registry.lookup(this.dev.pd, from);
    if (mr) {
      // Zero copy from registered memory: ordered before the response SEND. A LUN's memory
      // needs only posting (unsignalled): done at once; a transient bounce buffer is reused
      // once we call done, so then we wait for the WRITE's completion.
      try {
        if (!this.registry.isTransient(from)) {
          this.postDirect(w, mr, from, c.readStag, c.readVaHi, c.readVaLo + offset, undefined);
        } else {
          this.postDirect(w, mr, from, c.readStag, c.readVaHi, c.readVaLo + offset, { remaining: 1, done });
          return;
        }
      } catch (e) {
        return done(e as Error);
      }
      return done(undefined);
    }
    this.deliverThroughSlots(c, from, offset).then(() => done(undefined), done);
  }

  /** Data-In from unregistered memory: copied into data slots, one RDMA WRITE each. */
  private async deliverThroughSlots(c: IserCommand, from: Uint8Array, offset: number): Promise<void> {
    const w = native().constants.WR_RDMA_WRITE;
    const size = this.data.slotSize;
    for (let pos = 0; pos < from.length; pos += size) {
      const n = Math.min(size, from.length - pos);
      const slot = await this.allocData();
      if (slot < 0 || this.state !== State.Established) {
        if (slot >= 0) this.freeData(slot);
        throw new TransportClosedError('connection closing');
      }
      this.data.view(slot).set(from.subarray(pos, pos + n));
      this.postData(w, slot, n, c.readStag, c.readVaHi, c.readVaLo + offset + pos, undefined, undefined);
    }
  }

  obtainDataOut(task: TaskRef, into: Uint8Array, offset: number, done: IoDone): void {
    const c = task.transportContext as IserCommand | undefined;
    if (!c?.wsv)
      return done(new IserDataError(`ITT 0x${task.itt.toString(16)}: solicited write data but the command carried no write STag (WSV=0, RFC 7145 §9.2)`));
    const base = task.unsolicitedLength;
    if (offset < base) return done(new IserDataError(`ITT 0x${task.itt.toString(16)}: Data-Out at ${offset} inside the ${base} unsolicited bytes`));
    if (this.state !== State.Established) return done(new TransportClosedError('connection closing'));
    const r = native().constants.WR_RDMA_READ;
    const remoteLo = c.writeVaLo + (offset - base);
    const mr = this.registry.lookup(this.dev.pd, into);
    if (mr) {
      // The op record is the one allocation left per RDMA READ (the completion finds it by id).
      try {
        this.postDirect(r, mr, into, c.writeStag, c.writeVaHi, remoteLo, { remaining: 1, done });
      } catch (e) {
        done(e as Error);
      }
      return;
    }
    const size = this.data.slotSize;
    const chunks = Math.ceil(into.length / size);
    // Counted from 1 (each posted piece adds one), so it cannot settle before all are posted.
    const op: RdmaOp = { remaining: 1, done };
    (async () => {
      for (let i = 0; i < chunks; i++) {
        const slot = await this.allocData();
        if (slot < 0 || this.state !== State.Established) {
          if (slot >= 0) this.freeData(slot);
          return settle(op, new TransportClosedError('connection closing'));
        }
        const pos = i * size;
        const n = Math.min(size, into.length - pos);
        this.postData(r, slot, n, c.writeStag, c.writeVaHi, remoteLo + pos, op, into.subarray(pos, pos + n));
      }
      settle(op, undefined);
    })().catch((e: Error) => settle(op, e)); // a full send queue fails this command, never the process
  }

  // ---- completions ------------------------------------------------------------------------

  override onCompletion(wc: WorkCompletion, cookie: number): void {
    const kind = cookie & 3;
    const index = cookie >>> 2;
    if (kind === CookieKind.Recv) return this.onRecv(wc, index);
    if (kind === CookieKind.Send) {
      if (this.sendCompleted(wc, index)) this.kickTxQueue();
      return;
    }
    if (kind === CookieKind.Data) return this.dataSlotCompleted(wc, index, IserDataError);
    // Kind.Op: a direct RDMA READ into registered memory, or WRITE from a transient buffer.
    const op = this.ops.get(index);
    this.ops.delete(index);
    if (op?.seq !== undefined) this.advance(op.seq);
    if (!wc.ok) {
      if (op) settle(op, new IserDataError(`RDMA ${wc.statusName}`));
      return this.fail(`direct RDMA completion ${wc.statusName}`, wc.status);
    }
    if (op) settle(op, undefined);
  }

  private onRecv(wc: WorkCompletion, slot: number): void {
    if (!wc.ok) {
      this.rx.free(slot);
      return this.fail(`receive completion ${wc.statusName}`, wc.status);
    }
    if (this.state === State.Closed) {
      this.rx.free(slot);
      return;
    }
    const at = (this.rxHead + this.rxCount) % this.rxQueueSlot.length;
    this.rxQueueSlot[at] = slot;
    this.rxQueueLen[at] = wc.byteLen;
    this.rxCount++;
  }

  protected override afterBatch(): void {
    this.drainReceives();
  }

  /** Hands queued receives to the engine in arrival order, then reposts their slots in one call. */
  private drainReceives(): void {
    if (this.delivering) return;
    this.delivering = true;
    try {
      while (this.rxCount > 0 && this.sink && this.state === State.Established) {
        const slot = this.rxQueueSlot[this.rxHead];
        const len = this.rxQueueLen[this.rxHead];
        this.rxHead = (this.rxHead + 1) % this.rxQueueSlot.length;
        this.rxCount--;
        this.deliver(slot, len);
      }
    } finally {
      this.delivering = false;
      this.flushRecvs();
    }
  }

  private deliver(slot: number, len: number): void {
    const buf = this.rx.view(slot);
    const sink = this.sink!;
    if (len < HEADERS) return this.protocolError(slot, `iSER message of ${len} bytes, shorter than iSER header + BHS (RFC 7145 §9.2)`);
    const h = decodeIserHeader(buf, 0, this.hdr);
    if (h.opcode !== IserOpcode.Control) {
      return this.protocolError(
        slot,
        `iSER opcode 0x${h.opcode.toString(16)} where an iSCSI control-type PDU was expected (RFC 7145 §9.2: Hello is iWARP-only)`,
      );
    }
    let bhs: Uint8Array = (this.rxBhs[slot] ??= buf.subarray(ISER_HEADER_LENGTH, HEADERS));
    const ahsLen = bhsAhsLength(bhs);
    const dataLen = bhsDataLength(bhs);
    if (HEADERS + ahsLen + dataLen > len) {
      return this.protocolError(slot, `PDU declares AHS ${ahsLen} + data ${dataLen} bytes but the SEND carried ${len - HEADERS} (RFC 7145 §7.2)`);
    }
    let ahs: Uint8Array = ahsLen ? buf.subarray(HEADERS, HEADERS + ahsLen) : EMPTY;
    let data: Uint8Array = dataLen ? buf.subarray(HEADERS + ahsLen, HEADERS + ahsLen + dataLen) : EMPTY;
    let ctx: IserCommand | undefined;
    if (bhsOpcode(bhs) === Opcode.ScsiCommand) {
      if (h.wsv || h.rsv) {
        // Reused once its response went out (invalidateKey): the task is over by then.
        const c = this.freeCommands.pop() ?? newIserCommand();
        c.wsv = h.wsv;
        c.writeStag = h.writeStag;
        c.writeVaHi = h.writeVaHi;
        c.writeVaLo = h.writeVaLo;
        c.rsv = h.rsv;
        c.readStag = h.readStag;
        c.readVaHi = h.readVaHi;
        c.readVaLo = h.readVaLo;
        this.commands.set(bhsItt(bhs), c);
        ctx = c;
      } else ctx = NO_STAGS;
    }
    if (!this.fullFeature) {
      // Login phase: copy out and repost at once (the login is one request at a time and
      // the ring is not posted yet).
      bhs = Uint8Array.from(bhs);
      ahs = ahsLen ? Uint8Array.from(ahs) : EMPTY;
      data = dataLen ? Uint8Array.from(data) : EMPTY;
      this.postRecvSlot(slot);
      sink.receive({ bhs, ahs, data }, ctx);
      return;
    }
    if (dataLen) {
      const dst = sink.dataDestination(bhs, dataLen, true);
      if (dst && dst.length === dataLen) {
        dst.set(data);
        data = dst;
      }
    }
    const rx = this.rxPdu;
    rx.bhs = bhs;
    rx.ahs = ahs;
    rx.data = data;
    try {
      sink.receive(rx, ctx);
    } finally {
      rx.data = EMPTY;
      // The engine copies what it keeps (its handlers run synchronously on the views).
      if (this.state !== State.Closed) this.postRecvSlot(slot);
      else this.rx.free(slot);
    }
  }

  private protocolError(slot: number, why: string): void {
    this.rx.free(slot);
    this.sink?.framingError(why);
  }

  // ---- posting ------------------------------------------------------------------------

  private postRing(): void {
    if (this.ringPosted) return;
    this.ringPosted = true;
    for (let s = this.rx.alloc(); s >= 0; s = this.rx.alloc()) this.postRecvSlot(s);
    this.flushRecvs();
  }

  private reserveSq(n: number): void {
    if (this.sqPosted - this.sqDone + n > this.sqDepth) {
      channelTotals.sendQueueFull++;
      throw new IserDataError(`send queue full (${this.sqDepth} work requests outstanding)`);
    }
  }

  private postSend(slot: number, length: number, inv: number): void {
    this.reserveSq(1);
    this.postSendSlot(slot, length, inv);
  }

  /** RDMA WRITE/READ between registered memory and the initiator, in pieces of maxRdma. */
  /** `remoteLo` may exceed 32 bits (low half + offset): the carry goes into the high half. */
  private postDirect(opcode: number, mr: NativeMr, view: Uint8Array, rkey: number, remoteHi: number, remoteLo: number, op: RdmaOp | undefined): void {
    const c = native().constants;
    const pieces = Math.max(1, Math.ceil(view.length / this.maxRdma));
    this.reserveSq(pieces);
    const local = MemoryRegistry.address(mr, view);
    let id = 0;
    for (let i = 0, pos = 0; i < pieces; i++, pos += this.maxRdma) {
      const n = Math.min(this.maxRdma, view.length - pos);
      const last = i === pieces - 1;
      const b = this.room(1);
      if (last && op) {
        id = this.nextOp++ & 0x3fffff;
        this.ops.set(id, op);
        b.add(this.disp.register(this, (id << 2) | Kind.Op), opcode, c.SEND_SIGNALED, local + pos, n, mr.lkey, 0, rkey);
      } else {
        b.add(UNSIGNALED_WR_ID, opcode, 0, local + pos, n, mr.lkey, 0, rkey);
      }
      b.setRemote(b.count - 1, remoteHi, remoteLo + pos);
      this.sqPosted++;
    }
    if (op) op.seq = this.sqPosted;
  }

  /** One RDMA op on a data slot (postDataSlot), once the send queue has room for it. */
  private postData(
    opcode: number,
    slot: number,
    n: number,
    rkey: number,
    remoteHi: number,
    remoteLo: number,
    op: RdmaOp | undefined,
    copyTo: Uint8Array | undefined,
  ): void {
    try {
      this.reserveSq(1);
    } catch (e) {
      this.freeData(slot);
      throw e;
    }
    this.postDataSlot(opcode, slot, n, rkey, remoteHi, remoteLo, op, copyTo);
  }

  /** The STag a SCSI Response may invalidate (one of read/write, never both: ib_iser checks it). */
  private invalidateKey(bhs: Uint8Array): number {
    const itt = bhsItt(bhs);
    const c = this.commands.get(itt);
    if (!c) return 0;
    this.commands.delete(itt);
    const key = !this.sendWithInv || c.rsv === c.wsv ? 0 : c.rsv ? c.readStag : c.writeStag;
    if (this.freeCommands.length < MAX_FREE_COMMANDS) this.freeCommands.push(c);
    return key;
  }

  private kickTxQueue(): void {
    while (this.txQueue.length && this.state === State.Established) {
      const slot = this.tx.alloc();
      if (slot < 0) return;
      const q = this.txQueue.shift()!;
      this.tx.view(slot).set(q.bytes);
      this.postSend(slot, q.bytes.length, q.inv);
      q.done();
      if (this.txQueue.length === 0) this.sink?.sendQueueFull(false);
    }
  }

  // ---- connection management -------------------------------------------------------------

  protected override onEstablished(): void {
    this.hooks.established(this);
    this.drainReceives();
  }

  protected override releasePending(): Array<() => void> {
    const e = new TransportClosedError('connection closed');
    for (const op of this.ops.values()) settle(op, e);
    this.ops.clear();
    this.failDataSlots(e);
    for (const q of this.txQueue) q.done();
    this.txQueue = [];
    return [];
  }

  protected override onClosed(err: Error | undefined): void {
    this.hooks.closed(this);
    this.sink?.closed(err);
  }
}
