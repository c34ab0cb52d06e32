// One iSCSI connection (RFC 7143 §4.2): receives PDUs from its transport, runs the login
// state machine until Full Feature Phase, then dispatches by opcode. Every handler runs
// inside `receive`'s try/catch: bad input affects only this connection and never throws
// out of the transport's event handler.

import { u32 } from '../common/bytes.js';
import { Asc } from '../scsi/sense.js';
import type { ScsiCore } from '../scsi/types.js';
import type { ConnectionContext, ConnectionCounters, ConnectionPhase, TargetContext } from './context.js';
import type { Logger } from '../common/log.js';
import { snAdd } from './core.js';
import { LoginHandler } from './login.js';
import { handleLogout } from './logout.js';
import { handleNopOut, NopKeeper } from './nop.js';
import { BHS_LENGTH, Opcode, RESERVED_TAG, RejectReason, opcodeName } from './opcodes.js';
import { loginParams, type OperationalParams } from './params.js';
import { bhsOpcode, decodeBhs, decodeScsiCommandInto, type DataOutPdu, type Pdu, type RxPdu, type ScsiCommandPdu } from './pdu.js';
import { sendReject } from './reject.js';
import { IscsiTask, type R2TRecord, type TaskConnection } from './scsi-cmd.js';
import type { IscsiSession } from './session.js';
import { handleTextRequest, TextExchange } from './text-req.js';
import { handleTmf } from './tmf.js';
import { hostPort, type IscsiTransport, type TransportSink } from './transport.js';

/** Immediate-data buffers kept for reuse per connection, and the FirstBurstLength up to which they are. */
const IMMEDIATE_POOL_SLOTS = 64;
const IMMEDIATE_POOL_MAX_BYTES = 256 * 1024;
const EMPTY_COMMAND = Uint8Array.of(Opcode.ScsiCommand, ...new Array<number>(BHS_LENGTH - 1).fill(0));

/** Finished tasks a connection keeps for reuse (its usual queue depth or more). */
const MAX_FREE_TASKS = 256;

export class IscsiConnection implements ConnectionContext, TaskConnection, TransportSink {
  phase: ConnectionPhase = 'login';
  session: IscsiSession | undefined;
  cid = 0;
  /** Next StatSN to send (§4.2.2.2). */
  statSN = 0;
  params: OperationalParams = loginParams();
  readonly r2ts = new Map<number, R2TRecord>();
  /**
   * Tasks outstanding on this connection, each knowing its index (IscsiTask.connSlot): add and
   * remove without hashing the task, which a Set did per command (a tenth of the engine's CPU
   * at queue depth 1, docs/benchmarks/engine.md).
   */
  readonly tasks: IscsiTask[] = [];
  /** Where a response BHS is built when the transport copies it at once (copiesBhs); else undefined. */
  readonly scratchBhs: Uint8Array | undefined;
  /** Finished tasks kept for the next commands: no task object per command in steady state. */
  private readonly freeTasks: IscsiTask[] = [];
  readonly counters: ConnectionCounters = { pdusIn: 0, pdusOut: 0, commands: 0, rejects: 0, digestErrors: 0 };
  readonly login: LoginHandler;
  readonly nop: NopKeeper;
  readonly text = new TextExchange();
  /**
   * Bound once per connection with transport, local and remote address; the login adds the
   * initiator, ISID and (once known) the TSIH, so every line of this connection carries them.
   */
  log: Logger;
  readonly createdAt = Date.now();
  private nextTtt = 1;
  private sendBlocked = false;
  private receivePaused = false;
  private closeWaiters: Array<() => void> = [];
  private idleWaiters: Array<() => void> = [];
  /** Buffer handed out for a SCSI Command's immediate data, adopted as the task's unsolicited buffer. */
  private cmdBuffer: Uint8Array | undefined;
  /** The task whose immediate data is a view of the transport's memory during this receive(). */
  private lentTo: IscsiTask | undefined;
  /** The SCSI Command being received, decoded in place (read synchronously, never kept). */
  private readonly commandPdu: ScsiCommandPdu = { ...(decodeBhs(EMPTY_COMMAND) as ScsiCommandPdu), cdb: new Uint8Array(16) };
  /** Immediate-data buffers of FirstBurstLength bytes free for reuse. */
  private readonly immediateFree: Uint8Array[] = [];
  /**
   * Beside each free buffer, the view of its head that its last task received into (or
   * undefined): the next command with as much immediate data gets that view again, so a
   * steady stream of same-sized writes makes no view per command.
   */
  private readonly immediateHeads: Array<Uint8Array | undefined> = [];
  /** The head view kept with the buffer takeImmediateBuffer just returned. */
  private takenHead: Uint8Array | undefined;
  private loginTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly target: TargetContext,
    readonly transport: IscsiTransport,
  ) {
    this.log = target.log.child({
      transport: transport.kind,
      local: hostPort(transport.localAddress, transport.localPort),
      remote: hostPort(transport.remoteAddress, transport.remotePort),
    });
    this.scratchBhs = transport.copiesBhs ? new Uint8Array(BHS_LENGTH) : undefined;
    this.login = new LoginHandler(this);
    this.nop = new NopKeeper(this, target.options.nopInterval, target.options.nopTimeout);
    if (target.options.loginTimeout > 0) {
      this.loginTimer = setTimeout(() => {
        if (this.phase === 'login') this.drop('login timeout');
      }, target.options.loginTimeout);
      this.loginTimer.unref();
    }
  }

  get describe(): string {
    return `${this.transport.kind} ${this.transport.remoteAddress}:${this.transport.remotePort}`;
  }

  nextStatSN(): number {
    const sn = this.statSN;
    this.statSN = snAdd(sn, 1);
    return sn;
  }

  allocTtt(): number {
    const t = this.nextTtt;
    this.nextTtt = this.nextTtt >= 0x7fffffff ? 1 : this.nextTtt + 1;
    return t;
  }

  /** Queue a PDU; the promise, if any, settles once the transport is done with `data`'s views. */
  sendPdu(bhs: Uint8Array, data?: Uint8Array | readonly Uint8Array[], ahs?: Uint8Array): Promise<void> | undefined {
    if (this.phase === 'closed') return undefined;
    this.counters.pdusOut++;
    try {
      return this.transport.sendPdu(bhs, data, ahs);
    } catch (e) {
      this.drop(`send failed: ${(e as Error).message}`);
      return undefined;
    }
  }

  /**
   * Receive flow control: stop reading while our sends are backed up, or while this
   * connection holds a full command window of tasks none of which waits for Data-Out
   * (reading must go on while one does, or it could never finish).
   */
  updateReceive(): void {
    if (this.phase === 'closed') return;
    const s = this.session;
    let windowFull = false;
    if (s && this.tasks.length >= s.cmdWindow) {
      windowFull = true;
      for (const t of this.tasks)
        if (t.r2ts.size || !t.unsolDone) {
          windowFull = false;
          break;
        }
    }
    const want = this.sendBlocked || windowFull;
    if (want === this.receivePaused) return;
    this.receivePaused = want;
    if (want) this.transport.pauseReceive();
    else this.transport.resumeReceive();
  }

  // ---- TransportSink --------------------------------------------------------------------

  sendQueueFull(full: boolean): void {
    if (full === this.sendBlocked) return;
    this.sendBlocked = full;
    this.updateReceive();
  }

  dataDestination(bhs: Uint8Array, dataLength: number, arrived: boolean): Uint8Array | undefined {
    try {
      if (this.phase !== 'full-feature' || dataLength === 0 || !this.session) return undefined;
      const op = bhsOpcode(bhs);
      if (op === Opcode.DataOut) {
        const pdu = decodeBhs(bhs) as DataOutPdu;
        if (pdu.ttt === RESERVED_TAG) return this.session.tasks.get(pdu.itt)?.unsolicitedDestination(pdu);
        const rec = this.r2ts.get(pdu.ttt);
        if (!rec || rec.task.itt !== pdu.itt || rec.task.aborted) return undefined;
        if (pdu.dataSN !== rec.nextDataSN || pdu.bufferOffset !== rec.offset + rec.received || rec.received + dataLength > rec.length) return undefined;
        const at = pdu.bufferOffset - rec.intoOffset;
        return rec.into.subarray(at, at + dataLength);
      }
      // Immediate data that has arrived, with no unsolicited Data-Out to follow (F), is lent
      // (receive, keepLent): a command the core runs at once (a RAM LUN's write) copies it
      // once, into the LUN, and never into a buffer.
      const lent = arrived && (bhs[1] & 0x80) !== 0;
      if (op === Opcode.ScsiCommand && !lent && (bhs[1] & 0x20) !== 0 && dataLength <= this.params.targetMaxRecvDataSegmentLength) {
        const buf = this.takeImmediateBuffer(this.immediateBufferSize(dataLength, u32(bhs, 20)));
        this.cmdBuffer = buf;
        const head = this.takenHead;
        return head !== undefined && head.length === dataLength ? head : buf.subarray(0, dataLength);
      }
    } catch (e) {
      this.log.warn(`${this.describe}: dataDestination: ${(e as Error).message}`);
    }
    return undefined;
  }

  /** The buffer a command's unsolicited data needs: its immediate data, or the first burst it may grow to. */
  private immediateBufferSize(dataLength: number, edtl: number): number {
    return Math.max(dataLength, Math.min(this.params.firstBurstLength, edtl));
  }

  /**
   * A buffer of at least `size` bytes for a command's unsolicited data, whole (its own
   * ArrayBuffer, offset 0: the task adopts it). FirstBurstLength-sized ones are reused
   * (releaseImmediateBuffer) rather than allocated per command.
   */
  private takeImmediateBuffer(size: number): Uint8Array {
    const fb = this.params.firstBurstLength;
    this.takenHead = undefined;
    if (size > fb || fb > IMMEDIATE_POOL_MAX_BYTES) return new Uint8Array(size);
    const free = this.immediateFree;
    while (free.length) {
      const b = free.pop()!;
      const head = this.immediateHeads.pop();
      if (b.length === fb) {
        // Only ever a view of this very buffer: anything else would land data in another's.
        if (head !== undefined && head.buffer === b.buffer && head.byteOffset === 0) this.takenHead = head;
        return b;
      }
    }
    return new Uint8Array(fb);
  }

  /** A task is done with the buffer takeImmediateBuffer gave it, and `head`, the view of it it received into. */
  releaseImmediateBuffer(buf: Uint8Array, head?: Uint8Array): void {
    if (buf.length === this.params.firstBurstLength && this.immediateFree.length < IMMEDIATE_POOL_SLOTS) {
      this.immediateFree.push(buf);
      this.immediateHeads.push(head);
    }
  }

  receive(rx: RxPdu, context?: unknown): void {
    try {
      if (this.phase === 'closed') return;
      this.counters.pdusIn++;
      this.nop.received++;
      const bhs = rx.bhs;
      const pdu =
        this.phase === 'full-feature' && bhs.length >= BHS_LENGTH && bhsOpcode(bhs) === Opcode.ScsiCommand
          ? decodeScsiCommandInto(bhs, this.commandPdu)
          : decodeBhs(bhs);
      if (this.phase === 'login') {
        if (pdu.opcode !== Opcode.LoginRequest) {
          // §6.1: only Login Requests until the login completes; anything else ends it.
          this.login.fail(0x0200, `${opcodeName(bhsOpcode(rx.bhs))} during login (RFC 7143 §6)`);
          return;
        }
        this.login.handle(pdu, rx.data);
        return;
      }
      if (this.phase === 'full-feature') this.dispatch(pdu, rx, context);
    } catch (e) {
      this.log.warn(`${this.describe}: dropping connection: ${(e as Error).stack ?? e}`);
      this.drop(`internal error: ${(e as Error).message}`);
    } finally {
      // Handed out but not adopted by a task (the command was refused): reuse it.
      if (this.cmdBuffer) {
        this.releaseImmediateBuffer(this.cmdBuffer);
        this.cmdBuffer = undefined;
      }
      if (this.lentTo) this.keepLent(this.lentTo);
    }
  }

  /**
   * receive() returns and the transport reuses its memory: a command still running (the
   * core waits on a lock, the CmdSN order, a backstore) moves its lent immediate data into
   * a buffer of the pool.
   */
  private keepLent(task: IscsiTask): void {
    this.lentTo = undefined;
    if (!task.unsolLent || task.finished) return;
    if (task.connSlot < 0) {
      // Dropped by the connection's cleanup, which aborted it: nothing may read the view.
      task.unsolBuf = undefined;
      task.unsolLent = false;
      return;
    }
    const buf = this.takeImmediateBuffer(this.immediateBufferSize(task.unsolReceived, task.expectedLength));
    task.keepUnsolicited(buf, this.takenHead);
  }

  headerDigestError(): void {
    this.counters.digestErrors++;
    // §7.8: the header cannot be trusted, so neither can the framing; ERL 0 drops.
    this.drop('header digest error (RFC 7143 §7.8)');
  }

  dataDigestError(bhs: Uint8Array): void {
    this.counters.digestErrors++;
    if (this.phase !== 'full-feature') {
      this.drop('data digest error during login');
      return;
    }
    // §7.8: Reject with Data (payload) Digest Error; at ERL 0 the lost data cannot be
    // re-requested (no SNACK / R2T recovery), so the connection is dropped after it.
    try {
      sendReject(this, RejectReason.DataDigestError, bhs);
    } catch {
      /* closing anyway */
    }
    this.close('data digest error (RFC 7143 §7.8, ERL 0)');
  }

  framingError(reason: string): void {
    this.drop(`framing error: ${reason}`);
  }

  closed(error?: Error): void {
    if (error) this.log.debug(`${this.describe}: transport error: ${error.message}`);
    this.cleanup(error ? error.message : 'connection closed');
  }

  // ---- Full Feature Phase dispatch -----------------------------------------------------

  private dispatch(pdu: Pdu, rx: RxPdu, context: unknown): void {
    const s = this.session!;
    if (rx.data.length > this.params.targetMaxRecvDataSegmentLength && pdu.opcode !== -1) {
      // §13.12: a data segment larger than we declared is a protocol error.
      sendReject(this, RejectReason.ProtocolError, rx.bhs);
      if ('cmdSN' in pdu && !pdu.immediate) s.order(pdu.cmdSN, false, () => undefined);
      return;
    }
    const discovery = s.type === 'Discovery';
    switch (pdu.opcode) {
      case Opcode.NopOut:
        return handleNopOut(this, pdu, rx.data);
      case Opcode.TextRequest:
        return handleTextRequest(this, pdu, rx.data, rx.bhs);
      case Opcode.LogoutRequest:
        return handleLogout(this, pdu);
      case Opcode.ScsiCommand:
        if (discovery) return this.rejectCommand(pdu, rx.bhs, RejectReason.ProtocolError); // §4.3: discovery sessions carry no SCSI
        return this.scsiCommand(pdu, rx, context);
      case Opcode.DataOut:
        if (discovery) return sendReject(this, RejectReason.ProtocolError, rx.bhs);
        return this.dataOut(pdu, rx);
      case Opcode.TaskMgmtRequest:
        if (discovery) return this.rejectCommand(pdu, rx.bhs, RejectReason.ProtocolError);
        return handleTmf(this, pdu);
      case Opcode.SnackRequest:
        // §11.16: SNACK needs ErrorRecoveryLevel > 0.
        return sendReject(this, RejectReason.ProtocolError, rx.bhs);
      case Opcode.LoginRequest:
        // §6: a Login Request on a connection in Full Feature Phase is a protocol error.
        return sendReject(this, RejectReason.ProtocolError, rx.bhs);
      default:
        // Target opcodes sent to us, vendor opcodes, undefined opcodes (§11.17.1).
        return sendReject(this, RejectReason.CommandNotSupported, rx.bhs);
    }
  }

  /** Reject a request that carries a CmdSN and consume the CmdSN so the window moves on. */
  rejectCommand(pdu: Pdu, bhs: Uint8Array, reason: RejectReason): void {
    sendReject(this, reason, bhs);
    if ('cmdSN' in pdu && !pdu.immediate) this.session!.order(pdu.cmdSN, false, () => undefined);
  }

  private scsiCommand(pdu: ScsiCommandPdu, rx: RxPdu, context: unknown): void {
    const s = this.session!;
    const p = this.params;
    const n = rx.data.length;
    // §4.2.5.2 / §13.10 / §13.11 / §13.14: immediate data only when negotiated, never more
    // than FirstBurstLength or EDTL; unsolicited Data-Out (F=0) only with InitialR2T=No.
    let bad = false;
    if (n > 0 && (!pdu.write || !p.immediateData || n > Math.min(p.firstBurstLength, pdu.edtl))) bad = true;
    if (pdu.write && !pdu.final && (p.initialR2T || pdu.edtl <= n)) bad = true;
    if (bad) return this.rejectCommand(pdu, rx.bhs, RejectReason.ProtocolError);
    if (!pdu.immediate && !s.inWindow(pdu.cmdSN)) {
      // §4.2.2.1: outside [ExpCmdSN, MaxCmdSN] is silently ignored.
      if (this.log.isLevelEnabled('debug')) this.log.debug(`CmdSN ${pdu.cmdSN} outside window [${s.expCmdSN}, ${s.maxCmdSN}], ignored`);
      return;
    }
    if (!pdu.immediate && s.discard.has(pdu.cmdSN)) {
      // Aborted before it arrived (ABORT TASK naming its RefCmdSN, §11.5.1): the CmdSN is
      // used up in order, and no task is made, so nothing waits for a core that never sees it.
      s.order(pdu.cmdSN, false, () => undefined);
      return;
    }
    if (s.tasks.has(pdu.itt)) return this.rejectCommand(pdu, rx.bhs, RejectReason.TaskInProgress);
    const task = (this.freeTasks.pop() ?? new IscsiTask(this)).init(pdu, rx.ahs);
    task.transportContext = context;
    const adopt = this.cmdBuffer !== undefined && n > 0 && rx.data.buffer === this.cmdBuffer.buffer;
    task.initUnsolicited(pdu, rx.data, p.firstBurstLength, adopt);
    if (adopt && task.unsolBuf?.buffer === this.cmdBuffer!.buffer) {
      task.immediateBuffer = this.cmdBuffer;
      this.cmdBuffer = undefined;
    }
    if (task.unsolLent) this.lentTo = task;
    s.tasks.set(pdu.itt, task);
    task.connSlot = this.tasks.push(task) - 1;
    this.counters.commands++;
    this.target.counters.commands++;
    const ok = s.order(pdu.cmdSN, pdu.immediate, task.execute);
    if (!ok) {
      s.tasks.delete(task.itt);
      this.removeTask(task);
    } else if (this.tasks.length >= s.cmdWindow) this.updateReceive();
  }

  private dataOut(pdu: DataOutPdu, rx: RxPdu): void {
    const s = this.session!;
    const data = rx.data;
    if (pdu.ttt !== RESERVED_TAG) {
      const rec = this.r2ts.get(pdu.ttt);
      if (!rec || rec.task.itt !== pdu.itt) {
        const t = s.tasks.get(pdu.itt);
        if (t?.aborted || t?.dataError) return; // data racing an abort or a failed sequence: discard
        return sendReject(this, RejectReason.InvalidPduField, rx.bhs); // §11.7.4: TTT names no R2T
      }
      // §11.7.5 DataSN, §13.18 DataPDUInOrder=Yes, §11.8.4 the burst the R2T asked for.
      let fault: Asc | undefined;
      if (pdu.dataSN !== rec.nextDataSN) fault = Asc.DataPhaseError;
      else if (pdu.bufferOffset !== rec.offset + rec.received) fault = Asc.DataOffsetError;
      else if (rec.received + data.length > rec.length) fault = Asc.TooMuchWriteData;
      else if (pdu.final && rec.received + data.length !== rec.length) fault = Asc.DataOffsetError;
      if (fault) {
        return this.sequenceError(
          rec.task,
          rx.bhs,
          fault,
          `Data-Out ITT 0x${pdu.itt.toString(16)} DataSN ${pdu.dataSN} offset ${pdu.bufferOffset} len ${data.length} does not fit R2T offset ${rec.offset}+${rec.received}/${rec.length} DataSN ${rec.nextDataSN}`,
        );
      }
      const at = pdu.bufferOffset - rec.intoOffset;
      const dst = rec.into.subarray(at, at + data.length);
      if (dst.buffer !== data.buffer || dst.byteOffset !== data.byteOffset) dst.set(data);
      rec.received += data.length;
      rec.nextDataSN++;
      if (rec.received === rec.length) rec.done();
      return;
    }
    const task = s.tasks.get(pdu.itt);
    if (!task || task.aborted || task.dataError) return; // command ignored (CmdSN window), aborted or failed: discard
    const fault = task.unsolicitedData(pdu, data);
    if (fault) {
      return this.sequenceError(
        task,
        rx.bhs,
        fault,
        `unsolicited Data-Out ITT 0x${pdu.itt.toString(16)} DataSN ${pdu.dataSN} offset ${pdu.bufferOffset} len ${data.length} breaks FirstBurstLength/EDTL/order`,
      );
    }
  }

  /**
   * A data sequence error (RFC 7143 §7.1.4 protocol error): Reject (Protocol Error) the PDU
   * and fail only its task with CHECK CONDITION; the data never reached the task's buffer
   * (dataDestination refused it), and at ERL 0 nothing can re-request it.
   */
  private sequenceError(task: IscsiTask, bhs: Uint8Array, asc: Asc, why: string): void {
    if (this.log.isLevelEnabled('debug')) this.log.debug(`${this.describe}: ${why}`);
    sendReject(this, RejectReason.ProtocolError, bhs);
    task.failData(asc);
  }

  // ---- lifecycle ------------------------------------------------------------------------

  /** Login done: switch to Full Feature Phase. Called by the login handler. */
  enterFullFeature(session: IscsiSession, params: OperationalParams): void {
    this.session = session;
    // A transport with fixed-size send buffers (iSER) sends smaller segments than the
    // initiator declared it can take; smaller is always allowed (RFC 7143 §13.12).
    const sendLimit = this.transport.sendDataSegmentLimit;
    if (sendLimit && params.initiatorMaxRecvDataSegmentLength > sendLimit) params = { ...params, initiatorMaxRecvDataSegmentLength: sendLimit };
    this.params = params;
    this.phase = 'full-feature';
    if (this.loginTimer) clearTimeout(this.loginTimer);
    session.connections.add(this);
    this.transport.enterFullFeature(params);
    if (session.tpg) this.nop.configure(session.tpg.nopInterval, session.tpg.nopTimeout);
    this.nop.start();
  }

  taskFinished(task: IscsiTask): void {
    // Reused only when it left a live connection's list: its command is over (the core
    // called back, or it never reached the core) and nothing else keeps it.
    const listed = task.connSlot >= 0 && this.tasks[task.connSlot] === task;
    this.removeTask(task);
    if (listed && this.phase === 'full-feature' && this.freeTasks.length < MAX_FREE_TASKS) this.freeTasks.push(task);
    if (this.receivePaused) this.updateReceive();
    if (this.tasks.length === 0 && this.idleWaiters.length > 0) {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
    }
  }

  /** Swap-removes `task` from `tasks` (order does not matter there). */
  private removeTask(task: IscsiTask): void {
    const i = task.connSlot;
    if (i < 0 || this.tasks[i] !== task) return;
    const last = this.tasks.pop()!;
    if (last !== task) {
      this.tasks[i] = last;
      last.connSlot = i;
    }
    task.connSlot = -1;
  }

  /** Resolves when no task on this connection is outstanding, or after `ms`. */
  whenIdle(ms: number): Promise<void> {
    if (this.tasks.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      t.unref();
      this.idleWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** Graceful: flush what is queued, then close. */
  close(reason: string): void {
    if (this.phase === 'closed') return;
    this.log.debug(`${this.describe}: closing: ${reason}`);
    this.phase = 'logout';
    this.transport.close(false);
  }

  /** Abortive: close at once (ERL 0 connection failure). */
  drop(reason: string): void {
    if (this.phase === 'closed') return;
    this.log.debug(`${this.describe}: dropping connection: ${reason}`);
    this.transport.close(true);
    this.cleanup(reason);
  }

  private cleanup(reason: string): void {
    if (this.phase === 'closed') return;
    // A connection that never finished its login was reported by the login (or was a probe).
    if (this.session) this.log.info({ event: 'connection-end', reason }, `connection ended: ${reason}`);
    else this.log.debug({ event: 'connection-end', reason }, `connection closed before login completed: ${reason}`);
    this.phase = 'closed';
    this.nop.stop();
    if (this.loginTimer) clearTimeout(this.loginTimer);
    for (const t of this.tasks.splice(0)) {
      t.connSlot = -1;
      t.abort(reason);
    }
    for (const r of [...this.r2ts.values()]) r.fail(new Error(reason));
    this.r2ts.clear();
    const s = this.session;
    if (s) {
      s.connections.delete(this);
      // ERL 0: a session whose last connection fails is over (§7.1.5 / §6.3.6).
      if (s.connections.size === 0) this.target.sessionEnded(s, reason);
    }
    this.target.connectionEnded(this);
    const w = this.closeWaiters;
    this.closeWaiters = [];
    for (const f of w) f();
  }

  whenClosed(): Promise<void> {
    if (this.phase === 'closed') return Promise.resolve();
    return new Promise((r) => this.closeWaiters.push(r));
  }

  get core(): ScsiCore | undefined {
    return this.session?.core;
  }
}
