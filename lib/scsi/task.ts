// One command in flight inside the core, and the helpers every handler uses to move
// data: at most the fabric's expected length moves, while the returned length is what
// the CDB asked for, from which the fabric computes over/underflow residuals (RFC 7143
// 11.4.5.1; libiscsi's residual tests expect exactly that).

import { DataDirection, type FabricIO, type IoDone, type Nexus, type ScsiCommand, type ScsiDone } from './types.js';
import type { LogicalUnit } from './lu.js';
import { ioContinue } from './sbc.js';
import type { Held } from './rangelock.js';
import type { TaskEntry } from './taskset.js';
import { stamp } from './stats.js';

/** What the hot path's callback handlers (sbc.ts READ/WRITE) do once their data moved. */
export const enum IoNext {
  None = 0,
  /** Data-In from the LU's memory is out: the command is done. */
  ReadView = 1,
  /** Data-Out landed in the LU's memory: mark it written, flush for FUA, release the range. */
  WriteView = 2,
}

/**
 * One command in flight inside the core. A class with its continuations made once in the
 * constructor, so READ and WRITE run from the fabric's submit to its done callback without
 * a promise or a closure of their own.
 */
export class Task {
  readonly cdb: Uint8Array;
  /** I_T nexus key: the unit of UAs and reservations. */
  readonly key: string;
  /** Data-In the fabric will carry: the expected length if its direction reads, else 0. */
  readonly inLength: number;
  /** Data-Out the fabric can supply: the expected length if its direction writes, else 0 (FabricIO: dataOut only for writes). */
  readonly outLength: number;
  aborted = false;
  /** Set by the task set when the task enters it (lu.ts run). */
  entry: TaskEntry | undefined;
  /** end() ran. */
  ended = false;
  /** The FabricIO callback of the hot path's data movement; what follows is in `next`. */
  readonly ioDone: IoDone;
  next = IoNext.None;
  // State of a READ/WRITE between posting its data movement and ioDone (sbc.ts).
  lba = 0;
  blocks = 0;
  total = 0;
  fua = false;
  held: Held | undefined;
  /** stamp() at submission when the LU keeps stats and samples this command's latency (stats.ts); else -1. */
  readonly t0: number;

  constructor(
    readonly cmd: ScsiCommand,
    readonly nexus: Nexus,
    readonly io: FabricIO,
    readonly lu: LogicalUnit,
    /** Write protection by the LUN mapping (ACL or demo-mode), on top of the backstore's own. */
    readonly mappedReadOnly: boolean,
    /** LUN numbers of the view the command came through (REPORT LUNS). */
    readonly luns: readonly number[],
    key: string,
    /** The fabric's completion callback. */
    readonly done: ScsiDone,
  ) {
    this.cdb = cmd.cdb;
    this.key = key;
    const len = Math.max(0, cmd.expectedLength);
    this.inLength = cmd.direction & DataDirection.Read ? len : 0;
    this.outLength = cmd.direction & DataDirection.Write ? len : 0;
    this.ioDone = (e) => ioContinue(this, e);
    const s = lu.stats;
    this.t0 = s?.sample() ? stamp() : -1;
  }

  /**
   * The handler ended, with the bytes the CDB asked for or an error (a ScsiError becomes
   * CHECK CONDITION, anything else a failure the fabric reports): lu.ts takes it from here.
   */
  end(error: unknown, transferred: number): void {
    if (this.ended) return; // as a settled promise ignores a second settle
    this.ended = true;
    this.lu.taskEnded(this, error, transferred);
  }
}

/** How much data each way a command's fabric direction allows (SAM-5 5.4; RFC 7143 11.3.1 R and W bits). */
export function directionLengths(cmd: ScsiCommand): { inLength: number; outLength: number } {
  const len = Math.max(0, cmd.expectedLength);
  return { inLength: cmd.direction & DataDirection.Read ? len : 0, outLength: cmd.direction & DataDirection.Write ? len : 0 };
}

/**
 * Keys by nexus object: a fabric keeps one Nexus per I_T nexus (the iSCSI session's, the
 * SRP channel's) and every command looks its key up, so building the string (and hashing
 * a fresh one in the UA and task-set maps) per command is avoided. Nexus fields are never
 * changed after the fabric made it.
 */
const nexusKeys = new WeakMap<Nexus, string>();

export function nexusKey(n: Nexus): string {
  let k = nexusKeys.get(n);
  if (k === undefined) {
    k = `${n.initiatorPort}\u0000${n.targetPort}`;
    nexusKeys.set(n, k);
  }
  return k;
}

/** Data-In as a promise, for the handlers off the hot path (they await it). */
export function dataIn(io: FabricIO, from: Uint8Array, offset: number): Promise<void> {
  return new Promise<void>((resolve, reject) => io.dataIn(from, offset, (e) => (e ? reject(e) : resolve())));
}

/** Data-Out as a promise, for the handlers off the hot path (they await it). */
export function dataOut(io: FabricIO, into: Uint8Array, offset: number): Promise<void> {
  return new Promise<void>((resolve, reject) => io.dataOut(into, offset, (e) => (e ? reject(e) : resolve())));
}

/** Sends `len` bytes of a response built in `buf`, as far as the fabric expects them; returns `len`. */
export async function sendIn(t: Task, buf: Uint8Array, len: number): Promise<number> {
  const n = Math.min(len, t.inLength, buf.length);
  if (n > 0) await dataIn(t.io, buf.subarray(0, n), 0);
  return len;
}

/** Receives up to `len` bytes of parameter data into `buf`; zeroes what the initiator did not send. Returns bytes received. */
export async function receiveOut(t: Task, buf: Uint8Array, len: number): Promise<number> {
  const n = Math.min(len, t.outLength);
  if (n > 0) await dataOut(t.io, buf.subarray(0, n), 0);
  if (n < len) buf.fill(0, n, len);
  return n;
}
