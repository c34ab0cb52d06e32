// One RC connection accepted over RDMA/CM, as both fabrics (lib/iser, lib/srp) use it: a
// CQ with its dispatcher, a QP, registered receive, send and bounce-data slots (with the
// RDMA WRITE/READ on a slot and its completion), batched posting, send-queue accounting,
// and one lifecycle:
//
//   Accepting ──ESTABLISHED──▶ Established ──close()/fault/DISCONNECTED──▶ Closing ──▶ Closed
//
// close() waits (bounded) for posted sends to complete, so a last response reaches the
// peer; then rdma_disconnect, and DISCONNECTED or a timeout finishes. finish() frees
// everything exactly once, children first: pending work fails, the CM id with its QP, the
// CQ, the MRs. A fault of the peer (a bad key: a remote access error) moves the QP to
// error and ends only this connection. Protocol work (what a receive means, what an RDMA
// operation waits for) is the subclass's.
import { native, type CmEvent, type NativeCmId, type NativeQp } from './binding.js';
import { CmEventType, type RdmaCm } from './cm.js';
import type { DeviceResources } from './device.js';
import { CompletionDispatcher, type CompletionHandler, type WorkCompletion } from './dispatch.js';
import { BufferPool } from './pool.js';
import type { MemoryRegistry } from './registry.js';
import { RecvBatch, SendBatch } from './wr.js';

export const enum ChannelState {
  Accepting,
  Established,
  Closing,
  Closed,
}

/**
 * Completion kinds in the low 2 bits of a dispatcher cookie, the rest an index. Recv, Send and
 * Data are the base's slots; the subclass numbers its own kinds from 3.
 */
export const enum CookieKind {
  Recv = 0,
  Send = 1,
  /** An RDMA WRITE/READ on a bounce-data slot (postDataSlot). */
  Data = 2,
}

/**
 * Send WRs queued per ibv_post_send. Work produced in one turn of the loop (the responses,
 * RDMA WRITEs and READs of a batch of commands) goes in one call: on soft-RoCE each call is a
 * system call in which the kernel also moves the data (the profile's largest item).
 */
const SEND_BATCH = 128;

/**
 * What every RC channel of the process adds up to, for the daemon's status counters and the
 * Prometheus endpoint (process-wide, as the binding's liveObjects() counts): bytes the live
 * channels hold registered in their slot pools, and how often a channel found its send queue
 * full (iSER refuses the data transfer, SRP waits for room).
 */
export const channelTotals = { registeredBytes: 0, sendQueueFull: 0 };

/**
 * One data movement of one or more RDMA work requests, found again by its completion: `done`
 * is called once, with the first error, or when the last counted piece completed.
 */
export interface RdmaOp {
  remaining: number;
  done: ((error: Error | undefined) => void) | undefined;
  /** Send-queue position of its signalled WR, for the accounting. */
  seq?: number;
}

/** Ends an operation once: an error settles it at once, success when no piece remains. */
export function settle(op: RdmaOp, e: Error | undefined): void {
  const done = op.done;
  if (!done) return;
  if (e) {
    op.done = undefined;
    return done(e);
  }
  if (--op.remaining === 0) {
    op.done = undefined;
    done(undefined);
  }
}

/** What an owner may tune on every RC channel (the fabrics' connection options extend it). */
export interface RcChannelOptions {
  /** Registered bounce slots for data that is not in registered memory (count and bytes each). */
  dataSlots?: number;
  dataSlotSize?: number;
  /** RDMA READs in flight we ask for (capped by what the initiator and device allow). Default 16. */
  readDepth?: number;
  /** Largest RDMA READ/WRITE posted as one work request. Default 1 MiB. */
  maxRdmaBytes?: number;
  /** How long a graceful close waits for sends, then for DISCONNECTED (ms). Default 3000. */
  closeTimeoutMs?: number;
}

export interface ChannelSizes extends RcChannelOptions {
  /** Receive slots and their size (bytes). */
  ring: number;
  rxSlotSize: number;
  /** Send slots and their size. */
  sendSlots: number;
  txSlotSize: number;
  dataSlots: number;
  dataSlotSize: number;
}

export interface DeviceLimits {
  maxQpWr: number;
  maxQpInitRdAtom: number;
  maxCqe: number;
}

export abstract class RcChannel implements CompletionHandler {
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly deviceName: string;
  /** RDMA READs we may have in flight (the accepted initiator_depth). */
  readonly readDepth: number;

  protected state = ChannelState.Accepting;
  protected readonly disp: CompletionDispatcher;
  protected readonly qp: NativeQp;
  protected readonly rx: BufferPool;
  protected readonly tx: BufferPool;
  protected readonly data: BufferPool;
  protected readonly recvBatch: RecvBatch;
  protected readonly sendBatch: SendBatch;
  protected readonly maxRdma: number;
  protected readonly sqDepth: number;
  /** Bytes of the rx, tx and data slot pools (counted in channelTotals while the channel lives). */
  private readonly poolBytes: number = 0;
  /** Send queue accounting: WRs posted, and the position of the last completed signalled one. */
  protected sqPosted = 0;
  protected sqDone = 0;
  /** Send-queue position of each send slot's SEND. */
  private readonly txSeq: Float64Array;
  /** Per bounce-data slot: its WR's send-queue position, its operation, where a READ's bytes go. */
  private readonly dataSeq: Float64Array;
  private readonly dataOp: (RdmaOp | undefined)[];
  private readonly dataCopy: (Uint8Array | undefined)[];
  private dataWaiters: Array<() => void> = [];
  protected closeError: Error | undefined;
  private closeTimer: NodeJS.Timeout | undefined;
  private closeWaitSends = false;
  private flushScheduled = false;
  private readonly flushSendsBound = (): void => {
    this.flushScheduled = false;
    this.flushSends();
  };
  private readonly closeTimeoutMs: number;

  constructor(
    protected readonly cm: RdmaCm,
    readonly id: NativeCmId,
    protected readonly dev: DeviceResources,
    protected readonly registry: MemoryRegistry,
    request: CmEvent,
    limits: DeviceLimits,
    sizes: ChannelSizes,
  ) {
    this.localAddress = request.localAddress ?? '';
    this.localPort = request.localPort ?? 0;
    this.remoteAddress = request.remoteAddress ?? '';
    this.remotePort = request.remotePort ?? 0;
    this.deviceName = request.deviceName ?? id.deviceName ?? '';
    // The initiator's responder resources, as the CM event reports them from our side.
    this.readDepth = Math.max(1, Math.min(sizes.readDepth ?? 16, request.initiatorDepth ?? 1, limits.maxQpInitRdAtom || 1));
    this.maxRdma = sizes.maxRdmaBytes ?? 1 << 20;
    this.closeTimeoutMs = sizes.closeTimeoutMs ?? 3000;
    this.sqDepth = Math.min(limits.maxQpWr, 4096);
    const c = native().constants;
    const cqe = Math.min(this.sqDepth + sizes.ring + 16, limits.maxCqe || 65536);
    this.disp = new CompletionDispatcher(dev.context, cqe, this.sqDepth + sizes.ring + 16);
    this.disp.onBatchEnd = () => {
      this.afterBatch();
      this.flushSends();
    };
    // An unsignalled WR completes only when it fails: that failure ends the connection.
    this.disp.onUnowned = (wc) => {
      if (!wc.ok) this.fail(`unsignalled work request completion ${wc.statusName}`, wc.status);
    };
    const pools: BufferPool[] = [];
    try {
      this.rx = new BufferPool(dev.pd, sizes.rxSlotSize, sizes.ring, c.ACCESS_LOCAL_WRITE);
      pools.push(this.rx);
      this.tx = new BufferPool(dev.pd, sizes.txSlotSize, sizes.sendSlots, c.ACCESS_LOCAL_WRITE);
      pools.push(this.tx);
      this.data = new BufferPool(dev.pd, sizes.dataSlotSize, sizes.dataSlots, c.ACCESS_LOCAL_WRITE);
      pools.push(this.data);
      this.poolBytes = this.rx.mr.length + this.tx.mr.length + this.data.mr.length;
      this.qp = new (native().QueuePair)(id, dev.pd, this.disp.cq, this.disp.cq, null, {
        maxSendWr: this.sqDepth,
        maxRecvWr: sizes.ring,
        maxSendSge: 1,
        maxRecvSge: 1,
      });
    } catch (e) {
      for (const p of pools) p.close();
      this.disp.close();
      throw e;
    }
    channelTotals.registeredBytes += this.poolBytes;
    this.recvBatch = new RecvBatch(sizes.ring);
    this.sendBatch = new SendBatch(SEND_BATCH);
    this.txSeq = new Float64Array(sizes.sendSlots);
    this.dataSeq = new Float64Array(sizes.dataSlots);
    this.dataOp = new Array(sizes.dataSlots).fill(undefined);
    this.dataCopy = new Array(sizes.dataSlots).fill(undefined);
    cm.setHandler(id, (ev) => this.onCmEvent(ev));
  }

  abstract get describe(): string;
  abstract onCompletion(wc: WorkCompletion, cookie: number): void;
  /** ESTABLISHED arrived while accepting. */
  protected abstract onEstablished(): void;
  /** The connection stops serving (close, fault or the peer's disconnect): stop its work. */
  protected onClosing(): void {}
  /** finish(): fail every pending operation; returns waiters to wake once the pools are closed. */
  protected abstract releasePending(): Array<() => void>;
  /** Everything is freed; tell the owner (once). */
  protected abstract onClosed(err: Error | undefined): void;

  /** After each batch of completions: post what the handlers queued. */
  protected afterBatch(): void {
    this.flushRecvs();
  }

  /** Accepts the connection request with `privateData` (receives must be posted first). */
  protected acceptWith(privateData: Buffer): void {
    this.id.accept({ privateData, initiatorDepth: this.readDepth, responderResources: 0, rnrRetryCount: 7, retryCount: 7 });
  }

  close(abort = false): void {
    if (this.state === ChannelState.Closing || this.state === ChannelState.Closed) return;
    const wasAccepting = this.state === ChannelState.Accepting;
    this.state = ChannelState.Closing;
    this.onClosing();
    if (wasAccepting) {
      this.finish();
      return;
    }
    // Graceful: let posted sends (a Logout Response, an SRP_T_LOGOUT) reach the peer first.
    if (!abort && this.sqPosted > this.sqDone) {
      this.closeWaitSends = true;
      this.armCloseTimer(() => this.disconnect());
      return;
    }
    this.disconnect();
  }

  // ---- posting ------------------------------------------------------------------------------

  protected postRecvSlot(slot: number): void {
    const b = this.recvBatch;
    if (b.count >= b.maxWrs) this.flushRecvs();
    b.add(this.disp.register(this, slot * 4 + CookieKind.Recv), this.rx.address(slot), this.rx.slotSize, this.rx.lkey);
  }

  protected flushRecvs(): void {
    const b = this.recvBatch;
    if (b.count === 0) return;
    try {
      if (this.state !== ChannelState.Closed) this.qp.postRecv(b.words, b.count);
    } catch (e) {
      this.fail(`ibv_post_recv: ${(e as Error).message}`);
    } finally {
      b.reset();
    }
  }

  /** A signalled SEND (with invalidate of `inv` when non-zero) of send slot `slot`. */
  protected postSendSlot(slot: number, length: number, inv = 0): void {
    const c = native().constants;
    const b = this.room(1);
    b.add(
      this.disp.register(this, slot * 4 + CookieKind.Send),
      inv ? c.WR_SEND_WITH_INV : c.WR_SEND,
      c.SEND_SIGNALED,
      this.tx.address(slot),
      length,
      this.tx.lkey,
      0,
      0,
      inv,
    );
    this.txSeq[slot] = ++this.sqPosted;
  }

  /** A send completion: frees its slot; false when it failed (the connection is ending). */
  protected sendCompleted(wc: WorkCompletion, slot: number): boolean {
    this.advance(this.txSeq[slot]);
    this.tx.free(slot);
    if (!wc.ok) {
      this.fail(`SEND completion ${wc.statusName}`, wc.status);
      return false;
    }
    if (this.closeWaitSends && this.sqPosted === this.sqDone) {
      this.closeWaitSends = false;
      this.disconnect();
    }
    return true;
  }

  /**
   * One RDMA WRITE/READ of `n` bytes on bounce-data slot `slot`, signalled and counted in `op`:
   * its completion copies a READ's bytes to `copyTo`, frees the slot and settles `op`.
   */
  protected postDataSlot(
    opcode: number,
    slot: number,
    n: number,
    rkey: number,
    remoteHi: number,
    remoteLo: number,
    op: RdmaOp | undefined,
    copyTo: Uint8Array | undefined,
  ): void {
    const c = native().constants;
    if (op) op.remaining++;
    this.dataOp[slot] = op;
    this.dataCopy[slot] = copyTo;
    const b = this.room(1);
    b.add(this.disp.register(this, slot * 4 + CookieKind.Data), opcode, c.SEND_SIGNALED, this.data.address(slot), n, this.data.lkey, 0, rkey);
    b.setRemote(b.count - 1, remoteHi, remoteLo);
    this.dataSeq[slot] = ++this.sqPosted;
  }

  /** A bounce-slot WR completed; a failure settles its operation with an `error` and ends the connection. */
  protected dataSlotCompleted(wc: WorkCompletion, slot: number, error: new (what: string) => Error): void {
    this.advance(this.dataSeq[slot]!);
    const op = this.dataOp[slot];
    const copy = this.dataCopy[slot];
    this.dataOp[slot] = undefined;
    this.dataCopy[slot] = undefined;
    if (wc.ok && copy) copy.set(this.data.view(slot).subarray(0, copy.length));
    this.freeData(slot);
    if (wc.ok) {
      if (op) settle(op, undefined);
      return;
    }
    if (op) settle(op, new error(`RDMA ${copy ? 'READ' : 'WRITE'} ${wc.statusName}`));
    this.fail(`RDMA completion ${wc.statusName}`, wc.status);
  }

  /** For releasePending: every operation waiting on a bounce slot fails with `e`. */
  protected failDataSlots(e: Error): void {
    for (let i = 0; i < this.dataOp.length; i++) {
      const op = this.dataOp[i];
      if (op) settle(op, e);
      this.dataOp[i] = undefined;
      this.dataCopy[i] = undefined;
    }
  }

  /** A signalled WR at send-queue position `seq` completed (every WR before it too). */
  protected advance(seq: number): void {
    if (seq > this.sqDone) this.sqDone = seq;
  }

  /**
   * The send batch with room for `n` more WRs. Its flush: at the end of the completion batch
   * being dispatched (a RAM LUN's READ answers inside it), else at the end of this loop turn.
   */
  protected room(n: number): SendBatch {
    const b = this.sendBatch;
    if (b.count + n > b.maxWrs) this.flushSends();
    if (!this.flushScheduled && !this.disp.dispatching) {
      this.flushScheduled = true;
      setImmediate(this.flushSendsBound);
    }
    return b;
  }

  /** Posts the queued send WRs, in queue order, with one ibv_post_send. */
  protected flushSends(): void {
    const b = this.sendBatch;
    if (b.count === 0) return;
    try {
      if (this.state !== ChannelState.Closed) this.qp.postSend(b.words, b.count);
    } catch (e) {
      this.fail(`ibv_post_send: ${(e as Error).message}`);
    } finally {
      b.reset();
    }
  }

  /** A free bounce-data slot, waiting for one when all are in use; -1 once the connection is closed. */
  protected allocData(): Promise<number> {
    const s = this.data.alloc();
    if (s >= 0) return Promise.resolve(s);
    return new Promise<number>((resolve) => this.dataWaiters.push(() => resolve(this.state === ChannelState.Closed ? -1 : this.data.alloc())));
  }

  protected freeData(slot: number): void {
    if (this.state === ChannelState.Closed) return;
    this.data.free(slot);
    const w = this.dataWaiters.shift();
    if (w) w();
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  private onCmEvent(ev: CmEvent): void {
    switch (ev.type) {
      case CmEventType.Established:
        if (this.state !== ChannelState.Accepting) return;
        this.state = ChannelState.Established;
        this.onEstablished();
        return;
      case CmEventType.Disconnected:
      case CmEventType.TimewaitExit:
        if (this.state === ChannelState.Established) {
          this.state = ChannelState.Closing;
          this.onClosing();
        }
        this.finish();
        return;
      case CmEventType.DeviceRemoval:
        this.lost(new Error(`${this.describe}: RDMA device ${this.deviceName} removed`));
        return;
      case CmEventType.Rejected:
      case CmEventType.ConnectError:
      case CmEventType.Unreachable:
        this.finish(new Error(`RDMA/CM ${ev.type} (status ${ev.status})`));
        return;
    }
  }

  /**
   * The device under it went away: end now, as a transport failure ends a connection
   * (nothing more can reach the peer, so there is no disconnect to wait for).
   */
  lost(err: Error): void {
    if (this.state === ChannelState.Closed) return;
    if (this.state !== ChannelState.Closing) {
      this.state = ChannelState.Closing;
      this.onClosing();
    }
    this.finish(err);
  }

  /** A fatal fault on this connection: it ends (the peer's doing affects only it). */
  protected fail(why: string, wcStatus?: number): void {
    if (this.state === ChannelState.Closed) return;
    // Flushes after we close are the expected end of every outstanding WR, not news.
    // A flush while still established means the QP entered the error state unasked: report it.
    const expectedFlush = wcStatus === native().constants.WC_WR_FLUSH_ERR && this.state !== ChannelState.Established;
    if (!expectedFlush && !this.closeError) this.closeError = new Error(`${this.describe}: ${why}`);
    if (this.state === ChannelState.Closing) return;
    this.state = ChannelState.Closing;
    this.onClosing();
    this.disconnect();
  }

  private disconnect(): void {
    // Queued work first: the last responses should reach the peer.
    this.flushSends();
    try {
      this.id.disconnect();
    } catch {
      /* not connected */
    }
    this.armCloseTimer(() => this.finish());
  }

  private armCloseTimer(then: () => void): void {
    clearTimeout(this.closeTimer);
    this.closeTimer = setTimeout(then, this.closeTimeoutMs);
    this.closeTimer.unref();
  }

  /** Frees everything and tells the owner once. Children first: QP (with the id), CQ, MRs. */
  protected finish(err?: Error): void {
    if (this.state === ChannelState.Closed) return;
    this.state = ChannelState.Closed;
    clearTimeout(this.closeTimer);
    const wake = [...this.releasePending(), ...this.dataWaiters];
    this.dataWaiters = [];
    this.sendBatch.reset(); // never posted: the QP is going away with its CQ
    try {
      this.cm.destroy(this.id);
    } catch {
      /* already gone */
    }
    this.disp.close();
    this.rx.close();
    this.tx.close();
    this.data.close();
    channelTotals.registeredBytes -= this.poolBytes;
    // Waiters see Closed and give up.
    for (const w of wake)
      try {
        w();
      } catch {
        /* closed */
      }
    this.onClosed(err ?? this.closeError);
  }
}
