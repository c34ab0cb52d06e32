// Completion dispatch: a CQ whose batches of fixed-size records are routed to handlers
// through an integer wr_id table. Each posted WR takes a table slot that holds its handler
// and whatever must stay alive until the completion (the posted Buffer); the slot is freed
// when the completion arrives. One reusable WorkCompletion view is handed to handlers.
import { type CqPollStats, native, type NativeContext, type NativeCq } from './binding.js';

const WORDS = 8;

/** A view of one completion record; valid only during the handler call. */
export class WorkCompletion {
  records: Uint32Array = new Uint32Array(0);
  index = 0;
  get wrId(): number {
    const hi = this.records[this.index * WORDS + 1];
    const lo = this.records[this.index * WORDS];
    return hi === 0 ? lo : lo + hi * 4294967296;
  }
  get status(): number {
    return this.records[this.index * WORDS + 2];
  }
  get opcode(): number {
    return this.records[this.index * WORDS + 3];
  }
  get byteLen(): number {
    return this.records[this.index * WORDS + 4];
  }
  get qpNum(): number {
    return this.records[this.index * WORDS + 5];
  }
  get flags(): number {
    return this.records[this.index * WORDS + 6];
  }
  /** Immediate data, or the invalidated rkey when flags has WC_WITH_INV. */
  get immOrInvRkey(): number {
    return this.records[this.index * WORDS + 7];
  }
  get ok(): boolean {
    return this.status === 0;
  }
  get statusName(): string {
    return native().wcStatusName(this.status);
  }
}

export interface CompletionHandler {
  /** `cookie` is what was registered with the wr_id (e.g. a slot index). */
  onCompletion(wc: WorkCompletion, cookie: number): void;
}

/** The CQ spin budget (µs) of this thread; off until the owner of the policy sets it. */
let pollBudgetUs = 0;
let budgetApplied = false;

/**
 * How long a wake-up may spin over this thread's CQs before re-arming, in µs (native/cq.h:
 * adaptive, only while completions have recently come within it); 0 never spins.
 */
export function setCqPollBudget(us: number): void {
  pollBudgetUs = us;
  if (budgetApplied) native().CompletionQueue.setPollBudget(us);
}

/** This thread's CQ counters (wake-ups, completions, the spin's): zero before its first CQ. */
export function cqPollStats(): CqPollStats {
  return native().CompletionQueue.pollStats();
}

export class CompletionDispatcher implements Disposable {
  readonly cq: NativeCq;
  private readonly records: Uint32Array;
  private readonly wc = new WorkCompletion();
  private readonly handlers: (CompletionHandler | undefined)[];
  private readonly cookies: Float64Array;
  private readonly keep: unknown[];
  private readonly freeIds: Int32Array;
  private freeTop: number;
  /**
   * Called once after each batch of completions has been dispatched: the place to post
   * the work the batch's handlers queued (receives to repost, the next sends) in one call.
   */
  onBatchEnd: (() => void) | undefined = undefined;
  /** True from the first handler of a batch to the end of `onBatchEnd`: work queued now is posted by it. */
  dispatching = false;
  /**
   * A completion no handler owns: an unsignalled WR that failed (the verbs still report
   * those, e.g. RETRY_EXC_ERR on an RDMA WRITE to a vanished peer), or a stray wr_id.
   * Its status is the first news of a dead QP, so the owner must hear it.
   */
  onUnowned: ((wc: WorkCompletion) => void) | undefined = undefined;

  /** `maxOutstanding` bounds the WRs in flight (table size); `cqe` the CQ depth. */
  constructor(
    ctx: NativeContext,
    cqe: number,
    readonly maxOutstanding = cqe,
    batch = 64,
  ) {
    if (!budgetApplied) {
      native().CompletionQueue.setPollBudget(pollBudgetUs);
      budgetApplied = true;
    }
    const buf = Buffer.alloc(batch * WORDS * 4);
    this.records = new Uint32Array(buf.buffer, buf.byteOffset, batch * WORDS);
    this.wc.records = this.records;
    this.cq = new (native().CompletionQueue)(ctx, cqe, buf, (n) => this.dispatch(n));
    this.handlers = new Array(maxOutstanding).fill(undefined);
    this.cookies = new Float64Array(maxOutstanding);
    this.keep = new Array(maxOutstanding).fill(undefined);
    this.freeIds = new Int32Array(maxOutstanding);
    for (let i = 0; i < maxOutstanding; i++) this.freeIds[i] = maxOutstanding - 1 - i;
    this.freeTop = maxOutstanding;
  }

  get outstanding(): number {
    return this.maxOutstanding - this.freeTop;
  }

  /**
   * A wr_id whose completion goes to `handler` with `cookie`; `keep` (e.g. the Buffer the
   * WR points into) stays referenced until then. Throws when the table is full.
   */
  register(handler: CompletionHandler, cookie = 0, keep?: unknown): number {
    if (this.freeTop === 0) throw new RangeError('CompletionDispatcher: more WRs outstanding than maxOutstanding');
    const id = this.freeIds[--this.freeTop];
    this.handlers[id] = handler;
    this.cookies[id] = cookie;
    this.keep[id] = keep;
    return id;
  }

  /** Returns a wr_id whose WR was never posted (ibv_post_send failed). */
  unregister(wrId: number): void {
    this.release(wrId);
  }

  /** Busy-poll once (tests, latency loops): dispatches what is there, returns the count. */
  poll(): number {
    const n = this.cq.poll();
    if (n > 0) this.dispatch(n);
    return n;
  }

  private release(id: number): CompletionHandler | undefined {
    const h = this.handlers[id];
    if (h === undefined) return undefined;
    this.handlers[id] = undefined;
    this.keep[id] = undefined;
    this.freeIds[this.freeTop++] = id;
    return h;
  }

  private dispatch(n: number): void {
    const wc = this.wc;
    this.dispatching = true;
    try {
      this.dispatchBatch(wc, n);
    } finally {
      // Even after a handler threw: what the others queued must still be posted.
      try {
        this.onBatchEnd?.();
      } finally {
        this.dispatching = false;
      }
    }
  }

  private dispatchBatch(wc: WorkCompletion, n: number): void {
    for (let i = 0; i < n; i++) {
      wc.index = i;
      const id = wc.wrId;
      const cookie = this.cookies[id];
      const h = id < this.maxOutstanding ? this.release(id) : undefined;
      if (h) h.onCompletion(wc, cookie);
      else this.onUnowned?.(wc);
    }
  }

  close(): void {
    this.cq.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
