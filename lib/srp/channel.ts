// One SRP RDMA channel (SRP r16a §5.3): an RC queue pair between one initiator port and this
// target port, on which the initiator sends request IUs (SRP_CMD, SRP_TSK_MGMT, SRP_I_LOGOUT,
// SRP_CRED_RSP, SRP_AER_RSP) and we send SRP_RSP, SRP_CRED_REQ and SRP_T_LOGOUT.
//
//   receive ring  credits + spare slots of the negotiated IU length, all posted before the
//                 accept (the initiator may send as soon as it sees ESTABLISHED);
//   credits       the login grants `credits` (= the request part of the ring); every SRP_RSP
//                 returns one plus the credits of commands that ended without a response
//                 (aborted by this nexus' own task management); with nothing outstanding to
//                 carry those, an SRP_CRED_REQ pushes them (§5.6);
//   Data-In       RDMA WRITE to each descriptor's address, unsignalled while the send queue
//                 has room: the SRP_RSP SEND after them on the RC QP completes after them;
//   Data-Out      RDMA READ from the descriptors (or the immediate data inside the IU).
// Data moves straight to/from registered LUN memory (MemoryRegistry) when the core hands a
// view of it, else through registered bounce slots. Every IU is checked before use
// (lib/srp/iu.ts); a malformed SRP_CMD is answered with CHECK CONDITION and never reaches the
// core or the wire as RDMA. Faults of the peer (bad keys: remote access errors) end only
// this channel.

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
import { internalTargetFailureSense, invalidIuSense } from '../scsi/sense.js';
import { DataDirection, ScsiStatus, TaskAttribute, type FabricIO, type IoDone, type ScsiCommand, type ScsiDone } from '../scsi/types.js';
import {
  CRED_LENGTH,
  DataDir,
  LOGOUT_LENGTH,
  RspFlags,
  SrpOpcode,
  SrpRspCode,
  TLogoutReason,
  decodeCmd,
  decodeCredRsp,
  decodeDataDescriptors,
  decodeDescriptorTable,
  decodeILogout,
  decodeTskMgmt,
  encodeCredReq,
  encodeRsp,
  encodeTLogout,
  rspLength,
  tagNumber,
  type DataLayout,
  type DirectDesc,
  type SrpCmd,
  type TskMgmt,
} from './iu.js';
import type { LoginAccepted } from './login.js';

/** Receive slots beyond the credits: IUs that take none (SRP_CRED_RSP, SRP_AER_RSP, a logout). */
const SPARE_RECEIVES = 8;

/** The RC channel's options; bounce slots default to 32 × 128 KiB. */
export type SrpChannelOptions = RcChannelOptions;

/** What a channel needs from its I_T nexus (lib/srp/target.ts). */
export interface SrpSessionLink {
  readonly nexus: import('../scsi/types.js').Nexus;
  readonly core: import('../scsi/types.js').ScsiCore;
  /** Runs a task management function for the nexus; resolves with the SRP_RSP RSP_CODE. */
  taskManagement(from: SrpChannel, iu: TskMgmt): Promise<number>;
  /** The initiator sent SRP_I_LOGOUT on this channel (counted per initiator). */
  loggedOut?(): void;
}

export interface SrpChannelHooks {
  established(c: SrpChannel): void;
  closed(c: SrpChannel, err?: Error): void;
  /** Something worth a log line (malformed IU, credit overrun). */
  warn(message: string): void;
}

export class SrpTaskAbortedError extends Error {
  readonly code = 'SRP_TASK_ABORTED';
}
export class SrpDataError extends Error {
  readonly code = 'SRP_DATA';
}

/** Completion kinds beyond the base's (the cookie's low 2 bits, the rest an index). */
const enum Kind {
  /** A signalled WR from registered memory: the index is an id in `ops`. */
  Op = 3,
}

function mapAttr(a: number): TaskAttribute {
  switch (a) {
    case 1:
      return TaskAttribute.HeadOfQueue; // SRP r16a table 21: 0 simple, 1 head of queue, 2 ordered, 4 ACA
    case 2:
      return TaskAttribute.Ordered;
    case 4:
      return TaskAttribute.Aca;
    default:
      return TaskAttribute.Simple;
  }
}

/** One SRP_CMD in flight: the core's FabricIO over the command's descriptors. */
export class SrpTask implements FabricIO {
  readonly tag: number;
  readonly command: ScsiCommand;
  /** Aborted by this nexus' task management: data movement stops, no response is sent. */
  aborted = false;
  /** The core's completion callback for this command. */
  readonly done: ScsiDone;

  constructor(
    readonly channel: SrpChannel,
    readonly iu: SrpCmd,
    readonly layout: DataLayout,
    /** The IU's immediate data: a view of its receive slot while onCmd runs (keepImmediate). */
    private immediate: Uint8Array | undefined,
  ) {
    this.done = (status, transferred, sense, failure) => channel.completed(this, status, transferred, sense, failure);
    this.tag = tagNumber(iu.tagLo, iu.tagHi);
    const direction = layout.direction === DataDir.Out ? DataDirection.Write : layout.direction === DataDir.In ? DataDirection.Read : DataDirection.None;
    this.command = { lun: iu.lun, cdb: Uint8Array.from(iu.cdb), tag: this.tag, attribute: mapAttr(iu.taskAttribute), expectedLength: layout.length, direction };
  }

  get lun(): bigint {
    return this.iu.lun;
  }

  /** The receive slot goes back to the ring once onCmd returns: a command still running copies its immediate data. */
  keepImmediate(): void {
    if (this.immediate) this.immediate = Uint8Array.from(this.immediate);
  }

  dataOut(into: Uint8Array, offset: number, done: IoDone): void {
    if (this.aborted) return done(new SrpTaskAbortedError('task aborted'));
    if (this.layout.direction !== DataDir.Out) return done(new SrpDataError('Data-Out for a command without a data-out descriptor'));
    if (offset + into.length > this.layout.length)
      return done(new RangeError(`Data-Out ${offset}+${into.length} beyond the ${this.layout.length} bytes the descriptors describe`));
    if (this.immediate) {
      into.set(this.immediate.subarray(offset, offset + into.length));
      return done(undefined);
    }
    this.channel.transfer(this, false, into, offset, done);
  }

  dataIn(from: Uint8Array, offset: number, done: IoDone): void {
    if (this.aborted) return done(new SrpTaskAbortedError('task aborted'));
    // Never beyond what the initiator described (the residual reports the rest).
    const len = Math.min(from.length, Math.max(0, (this.layout.direction === DataDir.In ? this.layout.length : 0) - offset));
    if (len <= 0) return done(undefined);
    this.channel.transfer(this, true, from.subarray(0, len), offset, done);
  }
}

export class SrpChannel extends RcChannel {
  readonly login: LoginAccepted;
  session: SrpSessionLink | undefined;
  /** Commands in flight on this channel by tag. */
  readonly tasks = new Map<number, SrpTask>();
  /** Counters for status output. */
  commands = 0;
  malformed = 0;
  externalTables = 0;

  /** Signalled WRs from registered memory by id (Kind.Op). */
  private readonly ops = new Map<number, RdmaOp>();
  private nextOp = 0;
  private sqWaiters: Array<{ n: number; go: () => void }> = [];
  private txWaiters: Array<() => void> = [];
  /** Credits the initiator holds (it spends one per SRP_CMD / SRP_TSK_MGMT). */
  private creditsHeld: number;
  /** Credits to return with the next IU that carries req_lim_delta. */
  private pendingDelta = 0;
  private credCheck = false;

  constructor(
    cm: RdmaCm,
    id: NativeCmId,
    dev: DeviceResources,
    registry: MemoryRegistry,
    request: CmEvent,
    limits: DeviceLimits,
    login: LoginAccepted,
    private readonly hooks: SrpChannelHooks,
    opts: SrpChannelOptions = {},
  ) {
    super(cm, id, dev, registry, request, limits, {
      ring: login.credits + SPARE_RECEIVES,
      rxSlotSize: login.itIuLen,
      sendSlots: login.credits + 16,
      txSlotSize: Math.max(login.tiIuLen, 64),
      dataSlots: opts.dataSlots ?? 32,
      dataSlotSize: opts.dataSlotSize ?? 128 * 1024,
      readDepth: opts.readDepth,
      maxRdmaBytes: opts.maxRdmaBytes,
      closeTimeoutMs: opts.closeTimeoutMs,
    });
    this.login = login;
    this.creditsHeld = login.credits;
  }

  override get describe(): string {
    return `srp ${this.login.initiatorPort} ${this.remoteAddress}:${this.remotePort} (${this.deviceName})`;
  }

  get established(): boolean {
    return this.state === State.Established;
  }

  /** Posts the whole receive ring, then accepts with the SRP_LOGIN_RSP as private data. */
  accept(loginRsp: Buffer): void {
    for (let s = this.rx.alloc(); s >= 0; s = this.rx.alloc()) this.postRecvSlot(s);
    this.flushRecvs();
    this.acceptWith(loginRsp);
  }

  /** Sends SRP_T_LOGOUT (target shutdown, §6.6), then closes gracefully. */
  logout(reason: number = TLogoutReason.NoReason): void {
    if (this.state === State.Established) {
      const b = new Uint8Array(LOGOUT_LENGTH);
      encodeTLogout({ solNot: 0, reason, tagLo: 0, tagHi: 0 }, b);
      this.sendIu(b);
    }
    this.close();
  }

  // ---- receive path ------------------------------------------------------------------------

  override onCompletion(wc: WorkCompletion, cookie: number): void {
    const kind = cookie & 3;
    const index = cookie >>> 2;
    if (kind === CookieKind.Recv) return this.onRecv(wc, index);
    if (kind === CookieKind.Send) {
      if (this.sendCompleted(wc, index)) this.txWaiters.shift()?.();
      return;
    }
    if (kind === CookieKind.Data) return this.dataSlotCompleted(wc, index, SrpDataError);
    const op = this.ops.get(index);
    this.ops.delete(index);
    if (!op) return;
    if (op.seq !== undefined) this.advance(op.seq);
    if (!wc.ok) {
      settle(op, new SrpDataError(`RDMA ${wc.statusName}`));
      return this.fail(`RDMA completion ${wc.statusName}`, wc.status);
    }
    settle(op, undefined);
  }

  private onRecv(wc: WorkCompletion, slot: number): void {
    if (!wc.ok) {
      this.rx.free(slot);
      return this.fail(`receive completion ${wc.statusName}`, wc.status);
    }
    if (this.state === State.Accepting) {
      // The initiator saw the connection established before our ESTABLISHED event came.
      this.state = State.Established;
      this.hooks.established(this);
    }
    if (this.state !== State.Established) {
      this.rx.free(slot);
      return;
    }
    try {
      this.handleIu(this.rx.view(slot), wc.byteLen);
    } catch (e) {
      this.hooks.warn(`${this.describe}: ${(e as Error).message}`);
    } finally {
      // Everything the IU's handling keeps was copied out.
      if ((this.state as State) === State.Closed) this.rx.free(slot);
      else this.postRecvSlot(slot);
    }
  }

  private handleIu(b: Buffer, len: number): void {
    if (len < 1) return this.protocolError(TLogoutReason.InvalidIuLength, 'empty IU');
    switch (b[0]) {
      case SrpOpcode.Cmd:
        return this.onCmd(b, len);
      case SrpOpcode.TskMgmt:
        return this.onTskMgmt(b, len);
      case SrpOpcode.ILogout:
        try {
          decodeILogout(b, len);
        } catch (e) {
          return this.protocolError(TLogoutReason.InvalidIuLength, (e as Error).message);
        }
        this.session?.loggedOut?.();
        this.close();
        return;
      case SrpOpcode.CredRsp:
      case SrpOpcode.AerRsp:
        try {
          decodeCredRsp(b, len, b[0] as SrpOpcode.CredRsp);
        } catch (e) {
          return this.protocolError(TLogoutReason.InvalidIuLength, (e as Error).message);
        }
        return;
      default:
        return this.protocolError(TLogoutReason.InvalidIuType, `IU type 0x${b[0]!.toString(16)} is not one an initiator sends (SRP r16a table 7)`);
    }
  }

  /** An IU we cannot answer within its own protocol: SRP_T_LOGOUT with the reason, then the channel ends. */
  private protocolError(reason: number, why: string): void {
    this.malformed++;
    this.hooks.warn(`${this.describe}: ${why}; SRP_T_LOGOUT`);
    this.logout(reason);
  }

  /** The initiator spent a credit; false (and a warning) when it had none left. */
  private spendCredit(what: string): boolean {
    if (this.creditsHeld <= 0) {
      this.hooks.warn(`${this.describe}: ${what} beyond the request limit (credits exhausted, SRP r16a §5.6)`);
      return false;
    }
    this.creditsHeld--;
    return true;
  }

  private onCmd(b: Buffer, len: number): void {
    if (len < 16) return this.protocolError(TLogoutReason.InvalidIuLength, `SRP_CMD of ${len} bytes has no tag`);
    const tagLo = b.readUInt32LE(8);
    const tagHi = b.readUInt32LE(12);
    if (!this.spendCredit('SRP_CMD')) {
      // Answered without a credit returned: the initiator's count stays where ours is.
      return this.respondRaw(tagLo, tagHi, ScsiStatus.Busy, 0, 0, 0, undefined, undefined, false);
    }
    this.commands++;
    let iu: SrpCmd;
    let layout: DataLayout;
    try {
      iu = decodeCmd(b, len);
      layout = decodeDataDescriptors(b, len, iu, this.login.bufFmt, this.login.immOffset, true);
    } catch (e) {
      this.malformed++;
      this.hooks.warn(`${this.describe}: ${(e as Error).message}`);
      return this.respondRaw(tagLo, tagHi, ScsiStatus.CheckCondition, 0, 0, 0, invalidIuSense(), undefined, true);
    }
    // Immediate data is lent (a RAM LUN's write copies it once, into the LUN) and kept below if need be.
    const task = new SrpTask(this, iu, layout, layout.immediate);
    const s = this.session;
    if (!s) return this.respondRaw(tagLo, tagHi, ScsiStatus.Busy, 0, 0, 0, undefined, undefined, true);
    this.tasks.set(task.tag, task);
    if (layout.external) {
      // The descriptor table is in the initiator's memory: read it, then run the command.
      this.externalTables++;
      this.fetchTable(task, layout.external.table, layout.external.entries).then(
        (ok) => {
          if (ok) this.submit(task);
        },
        (e: unknown) => this.completeError(task, e as Error),
      );
      return;
    }
    this.submit(task);
    if (layout.immediate && this.tasks.get(task.tag) === task) task.keepImmediate();
  }

  /** RDMA READs an external descriptor table into a bounce slot; false when it was answered already. */
  private async fetchTable(task: SrpTask, table: DirectDesc, entries: number): Promise<boolean> {
    const bytes = entries * 16;
    if (bytes > this.data.slotSize) {
      this.dropTask(task);
      this.respondRaw(task.iu.tagLo, task.iu.tagHi, ScsiStatus.CheckCondition, 0, 0, 0, invalidIuSense(), undefined, true);
      return false;
    }
    const into = new Uint8Array(bytes);
    await new Promise<void>((landed, failed) => this.transfer(task, false, into, 0, (e) => (e ? failed(e) : landed()), [{ ...table, len: bytes }]));
    try {
      task.layout.buffers = decodeDescriptorTable(into, entries, task.layout.length);
    } catch (e) {
      this.malformed++;
      this.hooks.warn(`${this.describe}: ${(e as Error).message}`);
      this.dropTask(task);
      this.respondRaw(task.iu.tagLo, task.iu.tagHi, ScsiStatus.CheckCondition, 0, 0, 0, invalidIuSense(), undefined, true);
      return false;
    }
    return true;
  }

  private dropTask(task: SrpTask): void {
    if (this.tasks.get(task.tag) === task) this.tasks.delete(task.tag);
  }

  private submit(task: SrpTask): void {
    const s = this.session!;
    if (task.aborted) {
      // Aborted while its descriptor table was read: it never reached the core, which would have ended it.
      this.dropTask(task);
      return this.creditWithoutResponse();
    }
    try {
      s.core.submit(task.command, s.nexus, task, task.done);
    } catch (e) {
      this.completeError(task, e as Error);
    }
  }

  private onTskMgmt(b: Buffer, len: number): void {
    let iu: TskMgmt;
    try {
      iu = decodeTskMgmt(b, len);
    } catch (e) {
      if (len < 16) return this.protocolError(TLogoutReason.InvalidIuLength, (e as Error).message);
      if (!this.spendCredit('SRP_TSK_MGMT')) return;
      this.malformed++;
      return this.respondRaw(b.readUInt32LE(8), b.readUInt32LE(12), 0, 0, 0, 0, undefined, SrpRspCode.FieldsInvalid, true);
    }
    if (!this.spendCredit('SRP_TSK_MGMT')) return;
    const s = this.session;
    const done = (code: number) => this.respondRaw(iu.tagLo, iu.tagHi, 0, 0, 0, 0, undefined, code, true);
    if (!s) return done(SrpRspCode.Failed);
    s.taskManagement(this, iu).then(done, (e: unknown) => {
      this.hooks.warn(`${this.describe}: task management 0x${iu.function.toString(16)} failed: ${(e as Error).message}`);
      done(SrpRspCode.Failed);
    });
  }

  // ---- completion of commands --------------------------------------------------------------

  /** The core's end of a command (SrpTask.done); never throws back into the core, which may call it from deep in a data callback. */
  completed(task: SrpTask, status: number, transferred: number, sense: Uint8Array | undefined, failure: Error | undefined): void {
    try {
      this.respondTo(task, status, transferred, sense, failure);
    } catch (e) {
      this.hooks.warn(`${this.describe}: tag 0x${task.tag.toString(16)}: response failed: ${(e as Error).message}`);
    }
  }

  private respondTo(task: SrpTask, status: number, transferred: number, sense: Uint8Array | undefined, failure: Error | undefined): void {
    if (failure) return this.completeError(task, failure);
    if (this.tasks.get(task.tag) === task) this.tasks.delete(task.tag);
    if (task.aborted && status === ScsiStatus.TaskAborted) return this.creditWithoutResponse();
    const expected = task.layout.length;
    const moved = transferred;
    let flags = 0;
    let outRes = 0;
    let inRes = 0;
    if (moved !== expected) {
      const over = moved > expected;
      const res = over ? moved - expected : expected - moved;
      // A no-data command whose CDB wanted data reports it as data-in overflow.
      if (task.layout.direction === DataDir.Out) {
        flags |= over ? RspFlags.DoOver : RspFlags.DoUnder;
        outRes = res;
      } else if (task.layout.direction === DataDir.In || over) {
        flags |= over ? RspFlags.DiOver : RspFlags.DiUnder;
        inRes = res;
      }
    }
    this.respondRaw(task.iu.tagLo, task.iu.tagHi, status, flags, outRes, inRes, sense, undefined, true);
  }

  private completeError(task: SrpTask, e: Error): void {
    if (this.tasks.get(task.tag) === task) this.tasks.delete(task.tag);
    if (task.aborted) return this.creditWithoutResponse();
    if (this.state !== State.Established) return;
    this.hooks.warn(`${this.describe}: tag 0x${task.tag.toString(16)}: ${e.message}`);
    this.respondRaw(task.iu.tagLo, task.iu.tagHi, ScsiStatus.CheckCondition, 0, 0, 0, internalTargetFailureSense(), undefined, true);
  }

  /** A command ended with no response (aborted by this nexus): its credit goes back later. */
  private creditWithoutResponse(): void {
    this.pendingDelta++;
    if (this.credCheck) return;
    this.credCheck = true;
    setImmediate(() => {
      this.credCheck = false;
      // Nothing in flight would carry the credits back: push them (SRP_CRED_REQ, §6.10).
      let carried = false;
      for (const t of this.tasks.values())
        if (!t.aborted) {
          carried = true;
          break;
        }
      if (this.pendingDelta > 0 && !carried && this.state === State.Established) {
        const b = new Uint8Array(CRED_LENGTH);
        const delta = this.takeDelta(0);
        encodeCredReq({ solNot: 0, reqLimDelta: delta, tagLo: 0, tagHi: 0 }, b);
        this.sendIu(b);
      }
    });
  }

  private takeDelta(base: number): number {
    const d = base + this.pendingDelta;
    this.pendingDelta = 0;
    this.creditsHeld += d;
    return d;
  }

  /** Builds and sends one SRP_RSP; `returnCredit` false only for an IU that took no credit. */
  private respondRaw(
    tagLo: number,
    tagHi: number,
    status: number,
    flags: number,
    outRes: number,
    inRes: number,
    sense: Uint8Array | undefined,
    rspCode: number | undefined,
    returnCredit: boolean,
  ): void {
    if (this.state !== State.Established) return;
    let s = sense;
    const room = this.tx.slotSize - rspLength(0, rspCode !== undefined);
    if (s && s.length > room) s = s.subarray(0, room);
    const slot = this.tx.alloc();
    const build = (into: Uint8Array): number =>
      encodeRsp(
        {
          tagLo,
          tagHi,
          solNot: 0,
          reqLimDelta: returnCredit ? this.takeDelta(1) : 0,
          flags,
          status,
          dataOutResidual: outRes,
          dataInResidual: inRes,
          ...(s ? { sense: s } : {}),
          ...(rspCode !== undefined ? { rspCode } : {}),
        },
        into,
      ).length;
    if (slot >= 0) {
      this.postSendSlot(slot, build(this.tx.view(slot)));
      return;
    }
    // More responses than send slots in flight (rare): wait for one.
    this.txWaiters.push(() => {
      if (this.state !== State.Established) return;
      const sl = this.tx.alloc();
      if (sl >= 0) this.postSendSlot(sl, build(this.tx.view(sl)));
    });
  }

  private sendIu(bytes: Uint8Array): void {
    const slot = this.tx.alloc();
    if (slot < 0) {
      this.txWaiters.push(() => {
        const s = this.tx.alloc();
        if (s >= 0) {
          this.tx.view(s).set(bytes);
          this.postSendSlot(s, bytes.length);
        }
      });
      return;
    }
    this.tx.view(slot).set(bytes);
    this.postSendSlot(slot, bytes.length);
  }

  /** Marks every task of this channel aborted (the channel is going away). */
  private abortAll(): void {
    for (const t of this.tasks.values()) t.aborted = true;
  }

  // ---- data movement -------------------------------------------------------------------

  /**
   * Moves `view` (command data at byte `offset`) to (`write`) or from the initiator's buffers,
   * piece by piece over the descriptors. `done` once READs have landed; WRITEs from LUN memory
   * once posted (the SRP_RSP SEND after them on the RC QP completes after them), from a
   * transient bounce buffer, which the core reuses at once (lib/verbs/registry.ts), once
   * completed. From registered memory with room in the send queue every piece is posted in
   * this call; bounce slots and a full send queue take the queued path.
   */
  transfer(task: SrpTask, write: boolean, view: Uint8Array, offset: number, done: IoDone, buffers: readonly DirectDesc[] = task.layout.buffers): void {
    if (this.state !== State.Established) return done(new SrpDataError('channel closing'));
    const mr = this.registry.lookup(this.dev.pd, view);
    const wait = !write || (mr !== undefined && this.registry.isTransient(view));
    // Counted from 1, so it cannot settle before every piece is posted.
    const op: RdmaOp | undefined = wait ? { remaining: 1, done } : undefined;
    const pieces = mr ? this.pieceCount(view.length, offset, buffers) : 0;
    if (mr && this.sqWaiters.length === 0 && this.sqPosted - this.sqDone + pieces <= this.sqDepth - 4) {
      this.postDirect(write, mr, view, offset, buffers, pieces, op);
      return op ? settle(op, undefined) : done(undefined);
    }
    this.transferQueued(task, write, view, offset, buffers, mr, pieces, op).then(
      () => (op ? settle(op, undefined) : done(undefined)),
      (e: Error) => (op ? settle(op, e) : done(e)),
    );
  }

  /** RDMA WRs that `length` bytes at `offset` take over the descriptors, at most maxRdma each. */
  private pieceCount(length: number, offset: number, buffers: readonly DirectDesc[]): number {
    const end = offset + length;
    let count = 0;
    let base = 0;
    for (const d of buffers) {
      const dEnd = base + d.len;
      if (dEnd > offset && base < end) count += Math.ceil((Math.min(dEnd, end) - Math.max(base, offset)) / this.maxRdma);
      base = dEnd;
      if (base >= end) break;
    }
    return count;
  }

  /** Every piece from registered memory, now (the caller checked the send queue's room); `op` on the last. */
  private postDirect(
    write: boolean,
    mr: NativeMr,
    view: Uint8Array,
    offset: number,
    buffers: readonly DirectDesc[],
    pieces: number,
    op: RdmaOp | undefined,
  ): void {
    const opcode = write ? native().constants.WR_RDMA_WRITE : native().constants.WR_RDMA_READ;
    const local = MemoryRegistry.address(mr, view) - offset;
    const end = offset + view.length;
    let left = pieces;
    let base = 0;
    for (const d of buffers) {
      const dEnd = base + d.len;
      for (let pos = Math.max(base, offset), to = Math.min(dEnd, end); pos < to; pos += this.maxRdma) {
        const n = Math.min(this.maxRdma, to - pos);
        this.postWr(opcode, local + pos, n, mr.lkey, d, pos - base, --left === 0 ? op : undefined);
      }
      base = dEnd;
      if (base >= end) break;
    }
  }

  /** The pieces as room comes: bounce slots to allocate, or a send queue to wait for. */
  private async transferQueued(
    task: SrpTask,
    write: boolean,
    view: Uint8Array,
    offset: number,
    buffers: readonly DirectDesc[],
    mr: NativeMr | undefined,
    pieces: number,
    op: RdmaOp | undefined,
  ): Promise<void> {
    const opcode = write ? native().constants.WR_RDMA_WRITE : native().constants.WR_RDMA_READ;
    const end = offset + view.length;
    let left = pieces;
    let base = 0;
    for (const d of buffers) {
      const dEnd = base + d.len;
      for (let pos = Math.max(base, offset), to = Math.min(dEnd, end); pos < to; ) {
        if (mr) {
          const n = Math.min(this.maxRdma, to - pos);
          const w = this.sqRoom(1);
          if (w) await w;
          if (this.state !== State.Established || task.aborted) throw new SrpDataError('channel closing or task aborted');
          this.postWr(opcode, MemoryRegistry.address(mr, view) + pos - offset, n, mr.lkey, d, pos - base, --left === 0 ? op : undefined);
          pos += n;
          continue;
        }
        const n = Math.min(this.data.slotSize, to - pos);
        const slot = await this.allocData();
        if (slot < 0 || this.state !== State.Established || task.aborted) {
          if (slot >= 0) this.freeData(slot);
          throw new SrpDataError('channel closing or task aborted');
        }
        const w = this.sqRoom(1);
        if (w) await w;
        if (this.state !== State.Established) {
          this.freeData(slot);
          throw new SrpDataError('channel closing');
        }
        const chunk = view.subarray(pos - offset, pos - offset + n);
        if (write) this.data.view(slot).set(chunk);
        this.postDataSlot(opcode, slot, n, d.key, d.vaHi, d.vaLo + pos - base, op, write ? undefined : chunk);
        pos += n;
      }
      base = dEnd;
      if (base >= end) break;
    }
  }

  /**
   * One RDMA WR from registered memory. Signalled for `op` (the last piece of a transfer that
   * waits: completions come in order, so the last means all) or, for the accounting, when the
   * send queue is half full.
   */
  private postWr(opcode: number, local: number, n: number, lkey: number, d: DirectDesc, remoteOffset: number, op: RdmaOp | undefined): void {
    const c = native().constants;
    const b = this.room(1);
    this.sqPosted++;
    const signalled = op ?? (this.sqPosted - this.sqDone > this.sqDepth / 2 ? { remaining: 0, done: undefined } : undefined);
    if (signalled) {
      const id = this.nextOp++ & 0x3fffff;
      if (op) op.remaining++;
      signalled.seq = this.sqPosted;
      this.ops.set(id, signalled);
      b.add(this.disp.register(this, (id << 2) | Kind.Op), opcode, c.SEND_SIGNALED, local, n, lkey, 0, d.key);
    } else {
      b.add(UNSIGNALED_WR_ID, opcode, 0, local, n, lkey, 0, d.key);
    }
    b.setRemote(b.count - 1, d.vaHi, d.vaLo + remoteOffset);
  }

  private sqRoom(n: number): Promise<void> | undefined {
    if (this.sqPosted - this.sqDone + n <= this.sqDepth - 4 && this.sqWaiters.length === 0) return undefined;
    channelTotals.sendQueueFull++;
    return new Promise<void>((go) => this.sqWaiters.push({ n, go }));
  }

  protected override advance(seq: number): void {
    super.advance(seq);
    while (this.sqWaiters.length && this.sqPosted - this.sqDone + this.sqWaiters[0]!.n <= this.sqDepth - 4) this.sqWaiters.shift()!.go();
  }

  // ---- posting -------------------------------------------------------------------------------

  // ---- connection management ----------------------------------------------------------------

  protected override onEstablished(): void {
    this.hooks.established(this);
  }

  protected override onClosing(): void {
    this.abortAll();
  }

  protected override releasePending(): Array<() => void> {
    this.abortAll();
    const e = new SrpDataError('channel closed');
    for (const op of this.ops.values()) settle(op, e);
    this.ops.clear();
    this.failDataSlots(e);
    const waiters = [...this.sqWaiters.map((w) => w.go), ...this.txWaiters];
    this.sqWaiters = [];
    this.txWaiters = [];
    return waiters;
  }

  protected override onClosed(err: Error | undefined): void {
    this.hooks.closed(this, err);
  }
}
