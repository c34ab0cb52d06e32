// One command in flight inside the core, and the helpers every handler uses to move
// data: at most the fabric's expected length moves, while the returned length is what
// the CDB asked for, from which the fabric computes over/underflow residuals (RFC 7143
// 11.4.5.1; libiscsi's residual tests expect exactly that).

import { DataDirection, type FabricIO, type IoDone, type Nexus, type ScsiCommand, type ScsiDone } from './types.js';
import type { LogicalUnit } from './lu.js';
import { ioContinue } from './sbc.js';
import { Held } from './rangelock.js';
import { newEntry, type TaskEntry } from './taskset.js';
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
 * a promise or a closure of their own. Each LU keeps the tasks that ended for reuse
 * (lu.ts): in steady state a command allocates no Task, no task-set entry and no closure.
 */
export class Task {
  cdb: Uint8Array = EMPTY;
  cmd: ScsiCommand = NO_COMMAND;
  nexus: Nexus = NO_NEXUS;
  io: FabricIO = NO_IO;
  /** Write protection by the LUN mapping (ACL or demo-mode), on top of the backstore's own. */
  mappedReadOnly = false;
  /** LUN numbers of the view the command came through (REPORT LUNS). */
  luns: readonly number[] = [];
  /** I_T nexus key: the unit of UAs and reservations. */
  key = '';
  /** The fabric's completion callback. */
  done: ScsiDone = noDone;
  /** Data-In the fabric will carry: the expected length if its direction reads, else 0. */
  inLength = 0;
  /** Data-Out the fabric can supply: the expected length if its direction writes, else 0 (FabricIO: dataOut only for writes). */
  outLength = 0;
  aborted = false;
  /** The task's place in the LU's task set (taskset.ts); reused with the task. */
  readonly entry: TaskEntry;
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
  /** The range lock a WRITE holds between posting its Data-Out and ioDone (sbc.ts), reused from command to command. */
  readonly rangeLock = new Held();
  /** stamp() at submission when the LU keeps stats and samples this command's latency (stats.ts); else -1. */
  t0 = -1;

  constructor(readonly lu: LogicalUnit) {
    this.ioDone = (e) => ioContinue(this, e);
    this.entry = newEntry(lu.tasks, this);
  }

  /** Makes a fresh (or reused) task the one for this command. */
  init(cmd: ScsiCommand, nexus: Nexus, io: FabricIO, mappedReadOnly: boolean, luns: readonly number[], key: string, done: ScsiDone): this {
    this.cmd = cmd;
    this.cdb = cmd.cdb;
    this.nexus = nexus;
    this.io = io;
    this.mappedReadOnly = mappedReadOnly;
    this.luns = luns;
    this.key = key;
    this.done = done;
    const len = Math.max(0, cmd.expectedLength);
    this.inLength = cmd.direction & DataDirection.Read ? len : 0;
    this.outLength = cmd.direction & DataDirection.Write ? len : 0;
    this.aborted = false;
    this.ended = false;
    this.next = IoNext.None;
    const s = this.lu.stats;
    this.t0 = s?.sample() ? stamp() : -1;
    return this;
  }

  /** Drops what the ended command referenced, so a task kept for reuse holds no fabric objects. */
  clear(): void {
    this.cmd = NO_COMMAND;
    this.cdb = EMPTY;
    this.nexus = NO_NEXUS;
    this.io = NO_IO;
    this.luns = [];
    this.done = noDone;
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

const EMPTY = new Uint8Array(0);
function noDone(): void {}
function noData(_b: Uint8Array, _o: number, cb: IoDone): void {
  cb(new Error('task not in use'));
}
const NO_IO: FabricIO = { dataIn: noData, dataOut: noData };
const NO_NEXUS = { transport: 0 } as Nexus;
const NO_COMMAND = { cdb: EMPTY, expectedLength: 0, direction: DataDirection.None } as unknown as ScsiCommand;

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
