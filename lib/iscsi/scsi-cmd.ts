// SCSI Command / Data-Out / Data-In / R2T / SCSI Response (RFC 7143 §11.3–§11.8).
// An IscsiTask turns one SCSI Command PDU into the core's ScsiCommand and is the FabricIO
// the core moves data through:
//   - immediate data (§4.2.5.2) and unsolicited Data-Out (InitialR2T=No) land in the
//     task's unsolicited buffer, up to FirstBurstLength;
//   - the rest is solicited with R2Ts of at most MaxBurstLength, MaxOutstandingR2T at a
//     time, and lands straight in the `into` view the core passed (maybe LUN memory);
//   - Data-In is split into PDUs of the initiator's MaxRecvDataSegmentLength, in
//     sequences of at most MaxBurstLength, with the status collapsed into the last one
//     (S bit, §11.7.3) when the command ends GOOD.
// A transport with its own data movement (iSER) replaces the PDU paths (transport.ts).

import { u32 } from '../common/bytes.js';
import { DataDirection, TaskAttribute, type FabricIO, type Nexus, type ScsiCommand, type ScsiCompletion } from '../scsi/types.js';
import type { IscsiCore, Logger } from './core.js';
import { AhsType, Opcode, RESERVED_TAG, ScsiResponseCode } from './opcodes.js';
import { encodeBhs, parseAhs, type DataInPdu, type DataOutPdu, type R2TPdu, type ScsiCommandPdu, type ScsiResponsePdu } from './pdu.js';
import type { OperationalParams } from './params.js';
import type { IscsiTransport, TaskRef } from './transport.js';

/** Bytes of read data held back so the status can ride on the last Data-In (copied, small). */
const COLLAPSE_WHOLE = 16384;
const COLLAPSE_TAIL = 4096;

export class TaskAbortedError extends Error {
  readonly code = 'ISCSI_TASK_ABORTED';
}

/** One outstanding R2T (§11.8) and where its Data-Out goes. */
export interface R2TRecord {
  task: IscsiTask;
  ttt: number;
  /** Buffer offset (in the command's data) the R2T asked for, and its length. */
  offset: number;
  length: number;
  received: number;
  nextDataSN: number;
  /** The core's buffer and the command-data offset of its first byte. */
  into: Uint8Array;
  intoOffset: number;
  done: () => void;
  fail: (e: Error) => void;
}

/**
 * The connection as a task sees it: its transport's data movement, the negotiated values,
 * the numbering and the R2T table that Data-Out is matched against.
 */
export interface TaskConnection {
  readonly transport: IscsiTransport;
  readonly params: OperationalParams;
  readonly log: Logger;
  readonly session: TaskSession | undefined;
  /** Outstanding R2Ts by TTT (the receive path finds a Data-Out's destination there). */
  readonly r2ts: Map<number, R2TRecord>;
  /** StatSN not advanced (R2T, §11.8). */
  readonly statSN: number;
  nextStatSN(): number;
  allocTtt(): number;
  sendPdu(bhs: Uint8Array, data?: Uint8Array | readonly Uint8Array[], ahs?: Uint8Array): Promise<void> | undefined;
  /** A task started or stopped waiting for Data-Out: receive flow control may change. */
  updateReceive(): void;
  /** The task sent its status (or was aborted) and leaves the connection. */
  taskFinished(task: IscsiTask): void;
}

/** The session as a task sees it: the command window it reports and the core it runs in. */
export interface TaskSession {
  readonly expCmdSN: number;
  readonly maxCmdSN: number;
  readonly core: IscsiCore | undefined;
  readonly nexus: Nexus | undefined;
  readonly tasks: { get(itt: number): IscsiTask | undefined; delete(itt: number): boolean };
}

/** What `r2ts` is for the (most) tasks that never send an R2T: no Set per command. */
const NO_R2TS: ReadonlySet<R2TRecord> = new Set();

type Waiter = { ok: () => void; fail: (e: Error) => void };

const RESOLVED: Promise<void> = Promise.resolve();

function mapAttr(a: number): TaskAttribute {
  switch (a) {
    case 2: return TaskAttribute.Ordered;
    case 3: return TaskAttribute.HeadOfQueue;
    case 4: return TaskAttribute.Aca;
    default: return TaskAttribute.Simple; // 0 untagged, 1 simple (§11.3.1.1)
  }
}

export class IscsiTask implements TaskRef, FabricIO {
  readonly itt: number;
  readonly lun: bigint;
  readonly cmdSN: number;
  readonly immediate: boolean;
  readonly expectedLength: number;
  readonly direction: DataDirection;
  readonly command: ScsiCommand;
  readonly bidiReadLength: number;
  transportContext: unknown;

  // Unsolicited data (immediate + Data-Out with TTT 0xffffffff, §4.2.5.2).
  unsolBuf: Uint8Array | undefined;
  unsolLimit = 0;
  unsolReceived = 0;
  unsolDone = true;
  unsolDataSN = 0;
  /** Created by the first wait: most commands never wait for unsolicited data. */
  private unsolWaiters: Waiter[] | undefined;

  /** DataSN/R2TSN share one numbering per task (§11.7.5, §11.8.3). */
  dataSN = 0;
  dataInBytes = 0;
  private held: { offset: number; data: Uint8Array } | undefined;
  private r2tSet: Set<R2TRecord> | undefined;
  aborted = false;
  /** Sense to report when a Data-Out sequence error failed the task (kept the connection). */
  dataError: Uint8Array | undefined;
  /** Aborted by a TMF: no response is sent (RFC 7143 §4.2.3.3 / SAM task aborted). */
  silent = false;
  finished = false;
  /** Index in the connection's task list, -1 when not in it. */
  connSlot = -1;

  constructor(readonly conn: TaskConnection, pdu: ScsiCommandPdu, ahs: Uint8Array) {
    this.itt = pdu.itt;
    this.lun = pdu.lun;
    this.cmdSN = pdu.cmdSN;
    this.immediate = pdu.immediate;
    this.expectedLength = pdu.edtl;
    // A copy: the BHS the CDB is a view of belongs to the transport's receive buffer.
    let cdb: Uint8Array = pdu.cdb.slice();
    let bidi = 0;
    if (ahs.length) for (const a of parseAhs(ahs) ?? []) {
      if (a.type === AhsType.ExtendedCdb) {
        const full = new Uint8Array(16 + a.body.length);
        full.set(cdb, 0); full.set(a.body, 16);
        cdb = full;
      } else if (a.type === AhsType.BidiReadLength && a.body.length >= 4) {
        bidi = u32(a.body, 0);
      }
    }
    this.bidiReadLength = bidi;
    this.direction = pdu.read && pdu.write ? DataDirection.Bidi : pdu.write ? DataDirection.Write : pdu.read ? DataDirection.Read : DataDirection.None;
    this.command = { lun: pdu.lun, cdb, tag: pdu.itt, attribute: mapAttr(pdu.attr), expectedLength: pdu.edtl, direction: this.direction };
  }

  /** Outstanding R2Ts (the connection reads on while a task waits for Data-Out). */
  get r2ts(): ReadonlySet<R2TRecord> {
    return this.r2tSet ?? NO_R2TS;
  }

  get unsolicitedLength(): number {
    return this.unsolReceived;
  }

  private get readLength(): number {
    return this.direction === DataDirection.Bidi ? this.bidiReadLength : this.direction === DataDirection.Read ? this.expectedLength : 0;
  }

  // ---- unsolicited data ---------------------------------------------------------------

  /** Set up the unsolicited buffer from the command PDU's immediate data. */
  initUnsolicited(pdu: ScsiCommandPdu, immediate: Uint8Array, firstBurst: number, adopt: boolean): void {
    if (!pdu.write) return;
    const expectMore = !pdu.final;
    if (immediate.length === 0 && !expectMore) return;
    this.unsolLimit = Math.min(firstBurst, this.expectedLength);
    if (adopt && immediate.byteOffset === 0 && immediate.buffer.byteLength >= Math.max(this.unsolLimit, immediate.length)) {
      this.unsolBuf = new Uint8Array(immediate.buffer, 0, Math.max(this.unsolLimit, immediate.length));
    } else {
      this.unsolBuf = new Uint8Array(expectMore ? this.unsolLimit : immediate.length);
      this.unsolBuf.set(immediate);
    }
    this.unsolReceived = immediate.length;
    this.unsolDone = !expectMore;
  }

  /** Where an unsolicited Data-Out's data may land, or undefined when the PDU is invalid. */
  unsolicitedDestination(pdu: DataOutPdu): Uint8Array | undefined {
    if (this.unsolDone || !this.unsolBuf) return undefined;
    if (pdu.bufferOffset !== this.unsolReceived || pdu.dataSN !== this.unsolDataSN) return undefined;
    if (pdu.bufferOffset + pdu.dataLength > this.unsolLimit) return undefined;
    return this.unsolBuf.subarray(pdu.bufferOffset, pdu.bufferOffset + pdu.dataLength);
  }

  /**
   * An unsolicited Data-Out arrived. Returns the [ASC, ASCQ] to fail the task with when it
   * breaks the §4.2.5.2 rules, undefined when accepted.
   */
  unsolicitedData(pdu: DataOutPdu, data: Uint8Array): [number, number] | undefined {
    // §11.4.7.2: unsolicited data the target did not expect.
    if (this.unsolDone || !this.unsolBuf) return [0x0c, 0x0c];
    // §11.7.5 DataSN and (DataPDUInOrder=Yes) offsets in order; §13.14 FirstBurstLength; EDTL.
    if (pdu.dataSN !== this.unsolDataSN) return [0x4b, 0x00];
    if (pdu.bufferOffset !== this.unsolReceived) return [0x4b, 0x05];
    if (pdu.bufferOffset + data.length > this.unsolLimit) return [0x0c, 0x0c];
    const dst = this.unsolBuf.subarray(pdu.bufferOffset, pdu.bufferOffset + data.length);
    if (dst.buffer !== data.buffer || dst.byteOffset !== data.byteOffset) dst.set(data);
    this.unsolReceived += data.length;
    this.unsolDataSN++;
    if (pdu.final) this.finishUnsolicited();
    return undefined;
  }

  private finishUnsolicited(): void {
    this.unsolDone = true;
    const w = this.unsolWaiters;
    this.unsolWaiters = undefined;
    if (w) for (const x of w) x.ok();
  }

  private waitUnsolicited(): Promise<void> {
    if (this.aborted) return Promise.reject(new TaskAbortedError('task aborted'));
    if (this.unsolDone) return Promise.resolve();
    return new Promise((ok, fail) => (this.unsolWaiters ??= []).push({ ok, fail }));
  }

  // ---- FabricIO -------------------------------------------------------------------------

  dataOut(into: Uint8Array, offset: number): Promise<void> {
    // Not async: with the unsolicited data in (or none) this is a copy and the transport's
    // promise, and an async frame per command costs.
    if (this.aborted) return Promise.reject(new TaskAbortedError('task aborted'));
    const end = offset + into.length;
    if (end > this.expectedLength) return Promise.reject(new RangeError(`Data-Out beyond EDTL ${this.expectedLength}`));
    let pos = offset;
    if (this.unsolBuf) {
      if (!this.unsolDone && pos < this.unsolLimit) return this.dataOutAfterUnsolicited(into, offset);
      if (pos < this.unsolReceived) {
        const n = Math.min(end, this.unsolReceived) - pos;
        into.set(this.unsolBuf.subarray(pos, pos + n), 0);
        pos += n;
      }
    }
    if (pos >= end) return RESOLVED;
    const rest = pos === offset ? into : into.subarray(pos - offset);
    const t = this.conn.transport;
    if (t.obtainDataOut) return t.obtainDataOut(this, rest, pos);
    return this.solicit(rest, pos);
  }

  /** The unsolicited data is still arriving: wait for all of it, then go on as above. */
  private async dataOutAfterUnsolicited(into: Uint8Array, offset: number): Promise<void> {
    await this.waitUnsolicited();
    await this.dataOut(into, offset);
  }

  /** R2T loop (§11.8): bursts of MaxBurstLength, at most MaxOutstandingR2T at once. */
  private async solicit(into: Uint8Array, offset: number): Promise<void> {
    const p = this.conn.params;
    const end = offset + into.length;
    let next = offset;
    const active = new Set<Promise<void>>();
    let failure: Error | undefined;
    while ((next < end || active.size) && !failure) {
      while (next < end && active.size < p.maxOutstandingR2T) {
        const len = Math.min(p.maxBurstLength, end - next);
        const pr = this.sendR2T(into, offset, next, len);
        const tracked: Promise<void> = pr.then(
          () => { active.delete(tracked) },
          (e: Error) => { active.delete(tracked); failure ??= e },
        );
        active.add(tracked);
        next += len;
      }
      if (active.size) await Promise.race(active);
    }
    if (failure) throw failure;
  }

  private sendR2T(into: Uint8Array, intoOffset: number, offset: number, length: number): Promise<void> {
    if (this.aborted) return Promise.reject(new TaskAbortedError('task aborted'));
    const conn = this.conn;
    return new Promise<void>((done, fail) => {
      const rec: R2TRecord = {
        task: this, ttt: conn.allocTtt(), offset, length, received: 0, nextDataSN: 0, into, intoOffset,
        done: () => { this.r2tSet!.delete(rec); conn.r2ts.delete(rec.ttt); done() },
        fail: (e) => { this.r2tSet!.delete(rec); conn.r2ts.delete(rec.ttt); fail(e) },
      };
      (this.r2tSet ??= new Set()).add(rec);
      conn.r2ts.set(rec.ttt, rec);
      conn.updateReceive(); // a task now waits for Data-Out: keep reading
      const s = conn.session!;
      conn.sendPdu(encodeBhs<R2TPdu>({
        opcode: Opcode.R2T, itt: this.itt, lun: this.lun, ttt: rec.ttt,
        statSN: conn.statSN, expCmdSN: s.expCmdSN, maxCmdSN: s.maxCmdSN, // R2T does not advance StatSN (§11.8)
        r2tSN: this.dataSN++, bufferOffset: offset, desiredLength: length,
      }));
    });
  }

  dataIn(from: Uint8Array, offset: number): Promise<void> {
    if (this.aborted) return Promise.reject(new TaskAbortedError('task aborted'));
    const limit = this.readLength;
    const len = Math.min(from.length, Math.max(0, limit - offset));
    if (len <= 0) return RESOLVED; // overflow: never send beyond the expected length (§11.4.5.1)
    const t = this.conn.transport;
    // The transport's own data movement (iSER's RDMA WRITE): its promise with one .then(),
    // no async frame per command.
    if (t.deliverDataIn) return t.deliverDataIn(this, from.subarray(0, len), offset).then(() => this.delivered(offset + len));
    return this.dataInPdus(from, offset, limit, len);
  }

  private delivered(end: number): void {
    this.dataInBytes = Math.max(this.dataInBytes, end);
  }

  /** Data-In PDUs (TCP), the end held back to carry the status (§11.7.3). */
  private async dataInPdus(from: Uint8Array, offset: number, limit: number, len: number): Promise<void> {
    if (this.held) this.flushHeld(false);
    const end = offset + len;
    let tail = 0;
    if (end === limit) tail = len <= COLLAPSE_WHOLE ? len : COLLAPSE_TAIL;
    let wait = this.sendDataIn(from.subarray(0, len - tail), offset, tail === 0);
    if (tail) this.held = { offset: end - tail, data: Uint8Array.from(from.subarray(len - tail, len)) };
    this.dataInBytes = Math.max(this.dataInBytes, end);
    if (wait) await wait;
    if (this.aborted) throw new TaskAbortedError('task aborted');
    wait = undefined;
  }

  /** Data-In PDUs for `data` at `offset`, the last one with F when `endSequence`. */
  private sendDataIn(data: Uint8Array, offset: number, endSequence: boolean, status?: { status: number; over: number; under: number }): Promise<void> | undefined {
    const conn = this.conn;
    const p = conn.params;
    const s = conn.session!;
    const mrdsl = p.initiatorMaxRecvDataSegmentLength;
    let pos = 0;
    let wait: Promise<void> | undefined;
    if (data.length === 0 && !status) return undefined;
    do {
      const seqLeft = p.maxBurstLength - (((offset + pos) % p.maxBurstLength));
      const n = Math.min(mrdsl, data.length - pos, seqLeft);
      const last = pos + n >= data.length;
      const final = (last && (endSequence || !!status)) || n === seqLeft;
      const withStatus = last && !!status;
      const bhs = encodeBhs<DataInPdu>({
        opcode: Opcode.DataIn, itt: this.itt, dataLength: n, final, ack: false,
        overflow: withStatus && status!.over > 0, underflow: withStatus && status!.under > 0, hasStatus: withStatus,
        status: withStatus ? status!.status : 0, lun: 0n, ttt: RESERVED_TAG,
        statSN: withStatus ? conn.nextStatSN() : 0, expCmdSN: s.expCmdSN, maxCmdSN: s.maxCmdSN,
        dataSN: this.dataSN++, bufferOffset: offset + pos, residual: withStatus ? status!.over || status!.under : 0,
      });
      wait = conn.sendPdu(bhs, n ? data.subarray(pos, pos + n) : undefined) ?? wait;
      pos += n;
    } while (pos < data.length);
    return wait;
  }

  private flushHeld(endSequence: boolean): void {
    const h = this.held!;
    this.held = undefined;
    this.sendDataIn(h.data, h.offset, endSequence);
  }

  /**
   * A Data-Out for this task broke the sequence rules (DataSN, offset, burst, EDTL). The
   * connection already sent a Reject (Protocol Error); the task ends with CHECK CONDITION,
   * ABORTED COMMAND and the SPC-4 DATA PHASE ERROR family / iSCSI §11.4.7.2 sense, and
   * later Data-Out for it is discarded. Only this command fails; the session lives on.
   */
  failData(asc: number, ascq: number): void {
    if (this.dataError || this.aborted) return;
    this.dataError = abortedCommandSense(asc, ascq);
    const e = new Error(`Data-Out sequence error (ASC 0x${asc.toString(16)}/0x${ascq.toString(16)})`);
    for (const r of [...this.r2ts]) r.fail(e);
    this.unsolDone = true;
    const w = this.unsolWaiters;
    this.unsolWaiters = undefined;
    if (w) for (const x of w) x.fail(e);
  }

  // ---- completion ---------------------------------------------------------------------

  /** Run the command in the core (called in CmdSN order). */
  async execute(): Promise<void> {
    const s = this.conn.session!;
    let c: ScsiCompletion;
    try {
      if (this.aborted) return this.finish();
      c = await s.core!.submit(this.command, s.nexus!, this);
    } catch (e) {
      if (this.aborted) return this.finish();
      if (this.dataError) return this.respond({ status: 0x02, transferred: 0, sense: this.dataError }, ScsiResponseCode.CommandCompleted);
      this.conn.log.warn(`ITT 0x${this.itt.toString(16)}: core failed: ${(e as Error).message}`);
      c = { status: 0x02, transferred: 0, sense: hardwareErrorSense() };
      if (this.held) this.held = undefined;
      return this.respond(c, ScsiResponseCode.TargetFailure);
    }
    // Awaited (only when the transport pushes back) rather than returned: an async function
    // returning a promise adopts it through an extra job (and promise) per command.
    const w = this.respond(c, ScsiResponseCode.CommandCompleted);
    if (w) await w;
  }

  /**
   * Send the status; returns the transport's backpressure promise, if any. Not async: the
   * usual command has nothing to wait for here, and an async frame per command costs.
   */
  private respond(c: ScsiCompletion, response: ScsiResponseCode): Promise<void> | undefined {
    if (this.aborted) { this.finish(); return undefined }
    if (this.dataError) { c = { status: 0x02, transferred: 0, sense: this.dataError }; this.held = undefined }
    // Data the initiator sends unsolicited must all have arrived before the status
    // (its ITT must not be reused while Data-Out for it is still in flight).
    if (!this.unsolDone) return this.respondAfterUnsolicited(c, response);
    return this.sendStatus(c, response);
  }

  private async respondAfterUnsolicited(c: ScsiCompletion, response: ScsiResponseCode): Promise<void> {
    try { await this.waitUnsolicited() } catch { return this.finish() }
    const w = this.sendStatus(c, response);
    if (w) await w;
  }

  private sendStatus(c: ScsiCompletion, response: ScsiResponseCode): Promise<void> | undefined {
    if (this.aborted) { this.finish(); return undefined }
    const conn = this.conn;
    const s = conn.session!;
    // Residuals (§11.4.5): against EDTL for the write (or only) direction; the read side of
    // a bidirectional command against the bidi AHS length.
    const isBidi = this.direction === DataDirection.Bidi;
    const expected = this.expectedLength;
    const moved = isBidi ? Math.min(c.transferred, expected) : c.transferred;
    const over = moved > expected ? moved - expected : 0;
    const under = moved < expected ? expected - moved : 0;
    const bidiUnder = isBidi && this.dataInBytes < this.bidiReadLength ? this.bidiReadLength - this.dataInBytes : 0;
    const good = c.status === 0x00 && !c.sense?.length && response === ScsiResponseCode.CommandCompleted;
    if (this.held && good && !isBidi) {
      const h = this.held;
      this.held = undefined;
      const w = this.sendDataIn(h.data, h.offset, true, { status: c.status, over, under });
      this.finish();
      return w;
    }
    if (this.held) this.flushHeld(true);
    let data: Uint8Array | undefined;
    if (c.sense?.length) {
      data = new Uint8Array(2 + c.sense.length);
      data[0] = (c.sense.length >> 8) & 0xff; data[1] = c.sense.length & 0xff;
      data.set(c.sense, 2);
    }
    const bhs = encodeBhs<ScsiResponsePdu>({
      opcode: Opcode.ScsiResponse, itt: this.itt, dataLength: data?.length ?? 0,
      bidiOverflow: false, bidiUnderflow: bidiUnder > 0, overflow: over > 0, underflow: under > 0,
      response, status: c.status, snackTag: 0, statSN: conn.nextStatSN(), expCmdSN: s.expCmdSN, maxCmdSN: s.maxCmdSN,
      expDataSN: this.dataSN, bidiResidual: bidiUnder, residual: over || under,
    });
    this.finish();
    return conn.sendPdu(bhs, data);
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    const s = this.conn.session;
    if (s && s.tasks.get(this.itt) === this) s.tasks.delete(this.itt);
    this.conn.taskFinished(this);
  }

  /** Stop moving data: pending R2Ts and waits fail so the core unblocks. */
  abort(reason: string, silent = true): void {
    if (this.aborted) return;
    this.aborted = true;
    this.silent = silent;
    this.held = undefined;
    const e = new TaskAbortedError(reason);
    for (const r of [...this.r2ts]) r.fail(e);
    const w = this.unsolWaiters;
    this.unsolWaiters = undefined;
    if (w) for (const x of w) x.fail(e);
    // The task stays in the table until the core gives it back, so a late Data-Out finds
    // an aborted task rather than a reused ITT.
  }
}

/** ABORTED COMMAND with the given ASC/ASCQ, fixed format (SPC-4 4.5.3). */
function abortedCommandSense(asc: number, ascq: number): Uint8Array {
  const s = new Uint8Array(18);
  s[0] = 0x70; s[2] = 0x0b; s[7] = 10; s[12] = asc; s[13] = ascq;
  return s;
}

/** HARDWARE ERROR / INTERNAL TARGET FAILURE (SPC-4 4.5.6, ASC 44h). */
function hardwareErrorSense(): Uint8Array {
  const s = new Uint8Array(18);
  s[0] = 0x70; s[2] = 0x04; s[7] = 10; s[12] = 0x44; s[13] = 0x00;
  return s;
}
