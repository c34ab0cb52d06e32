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
import { abortedCommandSense, Asc, internalTargetFailureSense } from '../scsi/sense.js';
import {
  DataDirection,
  ScsiStatus,
  TaskAttribute,
  type FabricIO,
  type IoDone,
  type Nexus,
  type ScsiCommand,
  type ScsiCore,
  type ScsiDone,
} from '../scsi/types.js';
import type { Logger } from '../common/log.js';
import { AhsType, Opcode, ScsiResponseCode } from './opcodes.js';
import { encodeBhs, encodeDataIn, encodeScsiResponse, parseAhs, type DataOutPdu, type R2TPdu, type ScsiCommandPdu } from './pdu.js';
import type { OperationalParams } from './params.js';
import { type IscsiTransport, type TaskRef, TransportClosedError } from './transport.js';

/** Bytes of read data held back so the status can ride on the last Data-In (small; copied only when the command does not end at once). */
const COLLAPSE_WHOLE = 16384;
const COLLAPSE_TAIL = 4096;
/** sendDataIn without a status: ScsiStatus values are 0..0xff. */
const NO_STATUS = -1;

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
  /** Memory for a response BHS that sendPdu copies at once, if the transport does (copiesBhs). */
  readonly scratchBhs: Uint8Array | undefined;
  nextStatSN(): number;
  allocTtt(): number;
  sendPdu(bhs: Uint8Array, data?: Uint8Array | readonly Uint8Array[], ahs?: Uint8Array): Promise<void> | undefined;
  /** A task started or stopped waiting for Data-Out: receive flow control may change. */
  updateReceive(): void;
  /** The task sent its status (or was aborted) and leaves the connection. */
  taskFinished(task: IscsiTask): void;
  /** The task adopted this immediate-data buffer (dataDestination) and is done with it; `head`: the view it received into. */
  releaseImmediateBuffer(buf: Uint8Array, head?: Uint8Array): void;
  /** Abortive close: a response could not be built or sent. */
  drop(reason: string): void;
}

/** The session as a task sees it: the command window it reports and the core it runs in. */
export interface TaskSession {
  readonly expCmdSN: number;
  readonly maxCmdSN: number;
  readonly core: ScsiCore | undefined;
  readonly nexus: Nexus | undefined;
  readonly tasks: { get(itt: number): IscsiTask | undefined; delete(itt: number): boolean };
}

/** What `r2ts` is for the (most) tasks that never send an R2T: no Set per command. */
const NO_R2TS: ReadonlySet<R2TRecord> = new Set();

type Waiter = { ok: () => void; fail: (e: Error) => void };

function mapAttr(a: number): TaskAttribute {
  switch (a) {
    case 2:
      return TaskAttribute.Ordered;
    case 3:
      return TaskAttribute.HeadOfQueue;
    case 4:
      return TaskAttribute.Aca;
    default:
      return TaskAttribute.Simple; // 0 untagged, 1 simple (§11.3.1.1)
  }
}

export class IscsiTask implements TaskRef, FabricIO, ScsiCommand {
  // The connection keeps finished tasks for reuse (connection.ts): every field of a
  // command is set again by init(), and the continuations are made once per object.
  itt = 0;
  lun = 0n;
  cmdSN = 0;
  immediate = false;
  expectedLength = 0;
  direction = DataDirection.None;
  // The task is the core's ScsiCommand too (no object of its own per command).
  cdb: Uint8Array;
  tag = 0;
  attribute = TaskAttribute.Simple;
  bidiReadLength = 0;
  transportContext: unknown;

  // Unsolicited data (immediate + Data-Out with TTT 0xffffffff, §4.2.5.2).
  unsolBuf: Uint8Array | undefined;
  unsolLimit = 0;
  unsolReceived = 0;
  unsolDone = true;
  unsolDataSN = 0;
  /** unsolBuf is a view of the transport's memory, valid only during receive() (keepUnsolicited). */
  unsolLent = false;
  /** Created by the first wait: most commands never wait for unsolicited data. */
  private unsolWaiters: Waiter[] | undefined;

  /** DataSN/R2TSN share one numbering per task (§11.7.5, §11.8.3). */
  dataSN = 0;
  dataInBytes = 0;
  /** The end of the read data, held back to carry the status (TCP, §11.7.3). */
  private heldData: Uint8Array | undefined;
  private heldOffset = 0;
  /** heldData is our copy, not a view of the core's buffer. */
  private heldOwned = false;
  /** The core's completion callback (ScsiDone) for this task. */
  private readonly coreDone: ScsiDone;
  private r2tSet: Set<R2TRecord> | undefined;
  aborted = false;
  /** Sense to report when a Data-Out sequence error failed the task (kept the connection). */
  dataError: Uint8Array | undefined;
  /** Aborted by a TMF: no response is sent (RFC 7143 §4.2.3.3 / SAM task aborted). */
  silent = false;
  finished = false;
  /** Index in the connection's task list, -1 when not in it. */
  connSlot = -1;
  /** The connection's immediate-data buffer this task adopted; given back when it finishes. */
  immediateBuffer: Uint8Array | undefined;
  /** The CDB copy of a 16-byte (or shorter) CDB, kept with the task. */
  private readonly cdb16 = new Uint8Array(16);

  constructor(readonly conn: TaskConnection) {
    this.cdb = this.cdb16;
    this.coreDone = (status, transferred, sense, failure) => this.completed(status, transferred, sense, failure);
  }

  /** Makes this (new or reused) task the one for a SCSI Command PDU. */
  init(pdu: ScsiCommandPdu, ahs: Uint8Array): this {
    this.itt = pdu.itt;
    this.lun = pdu.lun;
    this.cmdSN = pdu.cmdSN;
    this.immediate = pdu.immediate;
    this.expectedLength = pdu.edtl;
    // A copy: the BHS the CDB is a view of belongs to the transport's receive buffer.
    let cdb = this.cdb16;
    cdb.set(pdu.cdb);
    let bidi = 0;
    if (ahs.length)
      for (const a of parseAhs(ahs) ?? []) {
        if (a.type === AhsType.ExtendedCdb) {
          const full = new Uint8Array(16 + a.body.length);
          full.set(cdb, 0);
          full.set(a.body, 16);
          cdb = full;
        } else if (a.type === AhsType.BidiReadLength && a.body.length >= 4) {
          bidi = u32(a.body, 0);
        }
      }
    this.bidiReadLength = bidi;
    this.direction = pdu.read && pdu.write ? DataDirection.Bidi : pdu.write ? DataDirection.Write : pdu.read ? DataDirection.Read : DataDirection.None;
    this.cdb = cdb;
    this.tag = pdu.itt;
    this.attribute = mapAttr(pdu.attr);
    this.transportContext = undefined;
    this.unsolBuf = undefined;
    this.unsolLimit = 0;
    this.unsolReceived = 0;
    this.unsolDone = true;
    this.unsolDataSN = 0;
    this.unsolLent = false;
    this.unsolWaiters = undefined;
    this.dataSN = 0;
    this.dataInBytes = 0;
    this.heldData = undefined;
    this.heldOffset = 0;
    this.heldOwned = false;
    this.r2tSet?.clear();
    this.aborted = false;
    this.dataError = undefined;
    this.silent = false;
    this.finished = false;
    this.connSlot = -1;
    this.immediateBuffer = undefined;
    return this;
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

  /**
   * Set up the unsolicited buffer from the command PDU's immediate data: `adopt`, a buffer
   * the connection handed out (dataDestination); else a view of the transport's memory,
   * lent while the PDU is received when no unsolicited Data-Out follows (keepUnsolicited).
   */
  initUnsolicited(pdu: ScsiCommandPdu, immediate: Uint8Array, firstBurst: number, adopt: boolean): void {
    if (!pdu.write) return;
    const expectMore = !pdu.final;
    if (immediate.length === 0 && !expectMore) return;
    this.unsolLimit = Math.min(firstBurst, this.expectedLength);
    if (adopt && immediate.byteOffset === 0 && immediate.buffer.byteLength >= Math.max(this.unsolLimit, immediate.length)) {
      // All the unsolicited data came with the command (the usual case): its view serves.
      this.unsolBuf = immediate.length >= this.unsolLimit ? immediate : new Uint8Array(immediate.buffer, 0, this.unsolLimit);
    } else if (!adopt && !expectMore) {
      this.unsolBuf = immediate;
      this.unsolLent = true;
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
   * An unsolicited Data-Out arrived. Returns the ASC/ASCQ to fail the task with when it
   * breaks the §4.2.5.2 rules, undefined when accepted.
   */
  unsolicitedData(pdu: DataOutPdu, data: Uint8Array): Asc | undefined {
    // §11.4.7.2: unsolicited data the target did not expect.
    if (this.unsolDone || !this.unsolBuf) return Asc.UnexpectedUnsolicitedData;
    // §11.7.5 DataSN and (DataPDUInOrder=Yes) offsets in order; §13.14 FirstBurstLength; EDTL.
    if (pdu.dataSN !== this.unsolDataSN) return Asc.DataPhaseError;
    if (pdu.bufferOffset !== this.unsolReceived) return Asc.DataOffsetError;
    if (pdu.bufferOffset + data.length > this.unsolLimit) return Asc.UnexpectedUnsolicitedData;
    const dst = this.unsolBuf.subarray(pdu.bufferOffset, pdu.bufferOffset + data.length);
    if (dst.buffer !== data.buffer || dst.byteOffset !== data.byteOffset) dst.set(data);
    this.unsolReceived += data.length;
    this.unsolDataSN++;
    if (pdu.final) this.finishUnsolicited();
    return undefined;
  }

  /** The immediate data outlives the receive() that lent it: copy it into `buf` (adopted, as by dataDestination; `head`, a view of it to reuse). */
  keepUnsolicited(buf: Uint8Array, head: Uint8Array | undefined): void {
    const lent = this.unsolBuf!;
    const kept = head !== undefined && head.length === lent.length ? head : buf.subarray(0, lent.length);
    kept.set(lent);
    this.unsolBuf = kept;
    this.unsolLent = false;
    this.immediateBuffer = buf;
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

  dataOut(into: Uint8Array, offset: number, done: IoDone): void {
    // No promise on the usual path: with the unsolicited data in (or none) this is a copy
    // and the transport's own data movement.
    if (this.aborted) return done(new TaskAbortedError('task aborted'));
    const end = offset + into.length;
    if (end > this.expectedLength) return done(new RangeError(`Data-Out beyond EDTL ${this.expectedLength}`));
    let pos = offset;
    if (this.unsolBuf) {
      // The unsolicited data is still arriving: wait for all of it, then go on as below.
      if (!this.unsolDone && pos < this.unsolLimit) {
        this.waitUnsolicited().then(() => this.dataOut(into, offset, done), done);
        return;
      }
      if (pos < this.unsolReceived) {
        const n = Math.min(end, this.unsolReceived) - pos;
        into.set(n === this.unsolBuf.length ? this.unsolBuf : this.unsolBuf.subarray(pos, pos + n), 0);
        pos += n;
      }
    }
    if (pos >= end) return done(undefined);
    const rest = pos === offset ? into : into.subarray(pos - offset);
    const t = this.conn.transport;
    if (t.obtainDataOut) return t.obtainDataOut(this, rest, pos, done);
    this.solicit(rest, pos).then(() => done(undefined), done);
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
          () => {
            active.delete(tracked);
          },
          (e: Error) => {
            active.delete(tracked);
            failure ??= e;
          },
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
        task: this,
        ttt: conn.allocTtt(),
        offset,
        length,
        received: 0,
        nextDataSN: 0,
        into,
        intoOffset,
        done: () => {
          this.r2tSet!.delete(rec);
          conn.r2ts.delete(rec.ttt);
          done();
        },
        fail: (e) => {
          this.r2tSet!.delete(rec);
          conn.r2ts.delete(rec.ttt);
          fail(e);
        },
      };
      (this.r2tSet ??= new Set()).add(rec);
      conn.r2ts.set(rec.ttt, rec);
      conn.updateReceive(); // a task now waits for Data-Out: keep reading
      const s = conn.session!;
      conn.sendPdu(
        encodeBhs<R2TPdu>({
          opcode: Opcode.R2T,
          itt: this.itt,
          lun: this.lun,
          ttt: rec.ttt,
          statSN: conn.statSN,
          expCmdSN: s.expCmdSN,
          maxCmdSN: s.maxCmdSN, // R2T does not advance StatSN (§11.8)
          r2tSN: this.dataSN++,
          bufferOffset: offset,
          desiredLength: length,
        }),
      );
    });
  }

  dataIn(from: Uint8Array, offset: number, done: IoDone): void {
    if (this.aborted) return done(new TaskAbortedError('task aborted'));
    const limit = this.readLength;
    const len = Math.min(from.length, Math.max(0, limit - offset));
    if (len <= 0) return done(undefined); // overflow: never send beyond the expected length (§11.4.5.1)
    const t = this.conn.transport;
    if (t.deliverDataIn) {
      // The transport's own data movement (iSER's RDMA WRITE). Counted as delivered once
      // handed over: a failed RDMA WRITE fails the connection, and this command with it.
      this.dataInBytes = Math.max(this.dataInBytes, offset + len);
      return t.deliverDataIn(this, len === from.length ? from : from.subarray(0, len), offset, done);
    }
    this.dataInPdus(from, offset, limit, len, done);
  }

  /**
   * Data-In PDUs (TCP), the end held back to carry the status (§11.7.3). The held end is a
   * view of `from` while `done` runs: a command that ends inside it (the core's usual
   * path) sends it with the status at once, uncopied; otherwise it is copied before
   * `from` goes back to the core.
   */
  private dataInPdus(from: Uint8Array, offset: number, limit: number, len: number, done: IoDone): void {
    if (this.heldData) this.flushHeld(false);
    const end = offset + len;
    let tail = 0;
    if (end === limit) tail = len <= COLLAPSE_WHOLE ? len : COLLAPSE_TAIL;
    // Views only where a PDU covers part of `from`: a 4 KiB READ is one PDU with its status.
    const head = len - tail;
    const wait = head > 0 ? this.sendDataIn(head === from.length ? from : from.subarray(0, head), offset, tail === 0) : undefined;
    if (tail) {
      this.heldData = head === 0 && len === from.length ? from : from.subarray(head, len);
      this.heldOffset = end - tail;
      this.heldOwned = false;
    }
    this.dataInBytes = Math.max(this.dataInBytes, end);
    if (wait) wait.then(() => this.dataInSent(done), done);
    else this.dataInSent(done);
  }

  private dataInSent(done: IoDone): void {
    const held = this.heldData;
    done(this.aborted ? new TaskAbortedError('task aborted') : undefined);
    // Still held (the command goes on, or ends later): `from` is the core's again, keep a copy.
    if (this.heldData === held && held && !this.heldOwned) {
      this.heldData = Uint8Array.from(held);
      this.heldOwned = true;
    }
  }

  /**
   * Data-In PDUs for `data` at `offset`, the last one with F when `endSequence`; with the
   * SCSI status `status` (and its residual `over` or `under`) when it is not NO_STATUS.
   */
  private sendDataIn(data: Uint8Array, offset: number, endSequence: boolean, status = NO_STATUS, over = 0, under = 0): Promise<void> | undefined {
    const conn = this.conn;
    const p = conn.params;
    const s = conn.session!;
    const mrdsl = p.initiatorMaxRecvDataSegmentLength;
    let pos = 0;
    let wait: Promise<void> | undefined;
    const hasStatus = status !== NO_STATUS;
    if (data.length === 0 && !hasStatus) return undefined;
    do {
      const seqLeft = p.maxBurstLength - ((offset + pos) % p.maxBurstLength);
      const n = Math.min(mrdsl, data.length - pos, seqLeft);
      const last = pos + n >= data.length;
      const final = (last && (endSequence || hasStatus)) || n === seqLeft;
      const withStatus = last && hasStatus;
      const flags = (final ? 0x80 : 0) | (withStatus ? 0x01 | (over > 0 ? 0x04 : 0) | (under > 0 ? 0x02 : 0) : 0);
      const bhs = encodeDataIn(
        this.itt,
        flags,
        withStatus ? status : 0,
        n,
        withStatus ? conn.nextStatSN() : 0,
        s.expCmdSN,
        s.maxCmdSN,
        this.dataSN++,
        offset + pos,
        withStatus ? over || under : 0,
        conn.scratchBhs,
      );
      wait = conn.sendPdu(bhs, n === 0 ? undefined : n === data.length ? data : data.subarray(pos, pos + n)) ?? wait;
      pos += n;
    } while (pos < data.length);
    return wait;
  }

  private flushHeld(endSequence: boolean): void {
    const data = this.heldData!;
    this.heldData = undefined;
    this.sendDataIn(data, this.heldOffset, endSequence);
  }

  /**
   * A Data-Out for this task broke the sequence rules (DataSN, offset, burst, EDTL). The
   * connection already sent a Reject (Protocol Error); the task ends with CHECK CONDITION,
   * ABORTED COMMAND and the SPC-4 DATA PHASE ERROR family / iSCSI §11.4.7.2 sense, and
   * later Data-Out for it is discarded. Only this command fails; the session lives on.
   */
  failData(asc: Asc): void {
    if (this.dataError || this.aborted) return;
    this.dataError = abortedCommandSense(asc);
    const e = new Error(`Data-Out sequence error (ASC 0x${(asc >> 8).toString(16)}/0x${(asc & 0xff).toString(16)})`);
    for (const r of [...this.r2ts]) r.fail(e);
    this.unsolDone = true;
    const w = this.unsolWaiters;
    this.unsolWaiters = undefined;
    if (w) for (const x of w) x.fail(e);
  }

  // ---- completion ---------------------------------------------------------------------

  /** Run the command in the core (called in CmdSN order; bound: the session's order queue calls it). */
  readonly execute = (): void => {
    const s = this.conn.session!;
    if (this.aborted) return this.finish();
    try {
      s.core!.submit(this, s.nexus!, this, this.coreDone);
    } catch (e) {
      this.completed(0, 0, undefined, e as Error);
    }
  };

  /** The core's end of the command: send the status (or nothing, when aborted). */
  private completed(status: number, transferred: number, sense: Uint8Array | undefined, failure: Error | undefined): void {
    try {
      if (!failure) {
        this.respond(status, transferred, sense, ScsiResponseCode.CommandCompleted);
        return;
      }
      // Aborted, or the connection is ending under the command: nothing can be answered.
      if (this.aborted || failure instanceof TransportClosedError) return this.finish();
      if (this.dataError) {
        this.respond(ScsiStatus.CheckCondition, 0, this.dataError, ScsiResponseCode.CommandCompleted);
        return;
      }
      this.conn.log.warn(`ITT 0x${this.itt.toString(16)}: core failed: ${failure.message}`);
      this.heldData = undefined;
      this.respond(ScsiStatus.CheckCondition, 0, internalTargetFailureSense(), ScsiResponseCode.TargetFailure);
    } catch (e) {
      this.conn.drop(`task ITT 0x${this.itt.toString(16)} failed: ${(e as Error).message}`);
    }
  }

  /**
   * Send the status; returns the transport's backpressure promise, if any. Not async: the
   * usual command has nothing to wait for here, and an async frame per command costs.
   */
  private respond(status: number, transferred: number, sense: Uint8Array | undefined, response: ScsiResponseCode): Promise<void> | undefined {
    if (this.aborted) {
      this.finish();
      return undefined;
    }
    if (this.dataError) {
      status = ScsiStatus.CheckCondition;
      transferred = 0;
      sense = this.dataError;
      this.heldData = undefined;
    }
    // Data the initiator sends unsolicited must all have arrived before the status
    // (its ITT must not be reused while Data-Out for it is still in flight).
    if (!this.unsolDone) return this.respondAfterUnsolicited(status, transferred, sense, response);
    return this.sendStatus(status, transferred, sense, response);
  }

  private async respondAfterUnsolicited(status: number, transferred: number, sense: Uint8Array | undefined, response: ScsiResponseCode): Promise<void> {
    try {
      await this.waitUnsolicited();
    } catch {
      return this.finish();
    }
    const w = this.sendStatus(status, transferred, sense, response);
    if (w) await w;
  }

  private sendStatus(status: number, transferred: number, sense: Uint8Array | undefined, response: ScsiResponseCode): Promise<void> | undefined {
    if (this.aborted) {
      this.finish();
      return undefined;
    }
    const conn = this.conn;
    const s = conn.session!;
    // Residuals (§11.4.5): against EDTL for the write (or only) direction; the read side of
    // a bidirectional command against the bidi AHS length.
    const isBidi = this.direction === DataDirection.Bidi;
    const expected = this.expectedLength;
    const moved = isBidi ? Math.min(transferred, expected) : transferred;
    const over = moved > expected ? moved - expected : 0;
    const under = moved < expected ? expected - moved : 0;
    const bidiUnder = isBidi && this.dataInBytes < this.bidiReadLength ? this.bidiReadLength - this.dataInBytes : 0;
    const good = status === ScsiStatus.Good && !sense?.length && response === ScsiResponseCode.CommandCompleted;
    if (this.heldData && good && !isBidi) {
      const data = this.heldData;
      this.heldData = undefined;
      const w = this.sendDataIn(data, this.heldOffset, true, status, over, under);
      this.finish();
      return w;
    }
    if (this.heldData) this.flushHeld(true);
    let data: Uint8Array | undefined;
    if (sense?.length) {
      data = new Uint8Array(2 + sense.length);
      data[0] = (sense.length >> 8) & 0xff;
      data[1] = sense.length & 0xff;
      data.set(sense, 2);
    }
    const flags = (bidiUnder > 0 ? 0x08 : 0) | (over > 0 ? 0x04 : 0) | (under > 0 ? 0x02 : 0);
    const bhs = encodeScsiResponse(
      this.itt,
      flags,
      response,
      status,
      conn.nextStatSN(),
      s.expCmdSN,
      s.maxCmdSN,
      this.dataSN,
      bidiUnder,
      over || under,
      data?.length ?? 0,
      conn.scratchBhs,
    );
    this.finish();
    return conn.sendPdu(bhs, data);
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.immediateBuffer) {
      this.conn.releaseImmediateBuffer(this.immediateBuffer, this.unsolBuf);
      this.immediateBuffer = undefined;
    }
    // Nothing keeps the transport's memory, nor a pooled buffer another task now owns.
    this.unsolBuf = undefined;
    this.unsolLent = false;
    const s = this.conn.session;
    if (s && s.tasks.get(this.itt) === this) s.tasks.delete(this.itt);
    this.conn.taskFinished(this);
  }

  /** Stop moving data: pending R2Ts and waits fail so the core unblocks. */
  abort(reason: string, silent = true): void {
    if (this.aborted) return;
    this.aborted = true;
    this.silent = silent;
    this.heldData = undefined;
    const e = new TaskAbortedError(reason);
    for (const r of [...this.r2ts]) r.fail(e);
    const w = this.unsolWaiters;
    this.unsolWaiters = undefined;
    if (w) for (const x of w) x.fail(e);
    // The task stays in the table until the core gives it back, so a late Data-Out finds
    // an aborted task rather than a reused ITT.
  }
}
