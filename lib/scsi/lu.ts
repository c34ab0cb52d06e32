// A logical unit: a backstore plus everything SAM-5 keeps per LU — identity, mode
// parameters, unit attentions per I_T nexus (ua.ts), the task set (taskset.ts, tmr.ts),
// reservations (pr.ts) and the range locks that make COMPARE AND WRITE atomic
// (rangelock.ts) — and the dispatcher that takes a command through them to its handler
// in the command table (table.ts). Two LUN mappings of one backstore share one
// LogicalUnit (as LIO's se_device), so they share all of this.

import { createHash } from 'node:crypto';
import { BufferPool } from './bufpool.js';
import { coversNexus, PersistentReservations, prFile, type Registration } from './pr.js';
import { RangeLocks } from './rangelock.js';
import { Asc, buildSense, reservationConflict, ScsiError, SenseKey } from './sense.js';
import { lookup, Lookup, type Handler } from './table.js';
import { nexusKey, Task } from './task.js';
import { TaskSet } from './taskset.js';
import { LuStats, recordAnswered, recordEnd } from './stats.js';
import { taskManagement } from './tmr.js';
import { UnitAttentions } from './ua.js';
import type { Backstore } from '../backstore/types.js';
import { ScsiStatus, type FabricIO, type Nexus, type ScsiCommand, type ScsiCompletion, type ScsiDone, type TmfFunction, type TmfResponse } from './types.js';

export interface LogicalUnitOptions {
  backstore: Backstore;
  /** Name the default serial derives from. */
  name: string;
  /** VPD 0x80; default: 32 hex digits from a hash of `name`. */
  serial?: string;
  /** 32 hex digits, NAA 6; default: LIO's 6001405 + serial form. */
  wwn?: string;
  thin?: boolean;
  /** Where persistent state (APTPL reservations) goes. */
  stateDir?: string;
  /** Upper bound on a task management function's wait for aborted tasks (default 5 s). */
  tmfWaitMs?: number;
  /** Tasks the task set holds before new ones get TASK SET FULL (default 1024). */
  queueDepth?: number;
  /** Bounce and parameter buffers; default a heap pool of this LU's own. */
  pool?: BufferPool;
  /** Keep command counters and latencies (stats.ts); default true. */
  stats?: boolean;
  /** Measure the latency of 1 in this many commands (a power of two; stats.ts IoStats.sampleEvery); default 16. */
  latencySampleEvery?: number;
}

export interface ModeState {
  wce: boolean;
  dsense: boolean;
  swp: boolean;
}

/** LIO's NAA 6 form: 6, IEEE company id 0x001405, then the serial's hex digits (spc_gen_naa_6h_vendor_specific). */
export function naaFromSerial(serial: string): Uint8Array {
  const hex = ('6001405' + serial.replace(/[^0-9a-fA-F]/g, '')).padEnd(32, '0').slice(0, 32);
  return Uint8Array.from(hex.match(/../g)!.map((h) => parseInt(h, 16)));
}

export class LogicalUnit {
  readonly backstore: Backstore;
  readonly blockSize: number;
  /** Refreshed from the backstore by capacityChanged(). */
  blockCount: number;
  readonly serial: string;
  readonly naa: Uint8Array;
  readonly thin: boolean;
  readonly stateDir: string | undefined;
  readonly maxCompareAndWrite = 64;
  readonly maxTransferBlocks: number;
  readonly maxWriteSame: number;
  readonly maxUnmapBlocks: number;
  readonly maxUnmapDescriptors = 256;
  readonly defaultWce: boolean;
  /** The task set (SAM-5 8): tasks by nexus and tag, attribute order, TASK SET FULL, aborts. */
  readonly tasks: TaskSet;
  /** Unit attention conditions per I_T nexus, and the nexuses the LU has seen (SAM-5 5.14). */
  readonly ua = new UnitAttentions();
  /** LBA range locks for writers (COMPARE AND WRITE atomicity, SBC-3 5.2). */
  readonly locks = new RangeLocks();
  readonly pool: BufferPool;
  readonly pr: PersistentReservations;
  /** EXTENDED COPY results held for RECEIVE COPY RESULTS, by nexus and list identifier. */
  readonly copyResults = new Map<string, { segments: number; bytes: number }>();
  mode: ModeState;
  /** Command counters and latencies, unless turned off (stats.ts). */
  readonly stats: LuStats | undefined;

  /** The I_T nexus holding an SPC-2 RESERVE, if any. */
  private reservedBy: string | undefined;
  /** Ended tasks kept for reuse (with their task-set entries and continuations). */
  private readonly freeTasks: Task[] = [];

  constructor(opts: LogicalUnitOptions) {
    const b = opts.backstore;
    this.backstore = b;
    this.pool = opts.pool ?? new BufferPool();
    this.blockSize = b.blockSize;
    this.blockCount = b.blockCount;
    this.serial = opts.serial ?? createHash('sha256').update(opts.name).digest('hex').slice(0, 32);
    this.naa = opts.wwn
      ? Uint8Array.from(
          opts.wwn
            .replace(/^0x/, '')
            .match(/../g)!
            .map((h) => parseInt(h, 16)),
        )
      : naaFromSerial(this.serial);
    this.thin = opts.thin ?? false;
    this.stateDir = opts.stateDir;
    this.maxTransferBlocks = Math.max(1, Math.floor((8 << 20) / this.blockSize));
    this.maxWriteSame = Math.max(1, Math.floor((64 << 20) / this.blockSize));
    // libiscsi Inquiry.BlockLimits calls an explicit limit above 1M blocks insane.
    this.maxUnmapBlocks = Math.min(1 << 20, Math.max(1, Math.floor((1 << 30) / this.blockSize)));
    // RAM has no volatile cache to report; files and devices do, and flush with fdatasync.
    this.defaultWce = b.view === undefined;
    this.mode = { wce: this.defaultWce, dsense: false, swp: false };
    this.pr = new PersistentReservations(prFile(opts.stateDir, this.serial));
    this.tasks = new TaskSet(opts.queueDepth ?? 1024, opts.tmfWaitMs ?? 5000);
    this.stats = opts.stats === false ? undefined : new LuStats(opts.latencySampleEvery);
  }

  /** Loads APTPL persistent reservations from the state directory. */
  async open(): Promise<this> {
    await this.pr.load();
    return this;
  }

  get writeProtected(): boolean {
    return this.backstore.readOnly || this.mode.swp;
  }

  /** Executes one command from a LUN view; `done` gets its end (maybe before this returns). */
  execute(cmd: ScsiCommand, nexus: Nexus, io: FabricIO, mappedReadOnly: boolean, luns: readonly number[], done: ScsiDone): void {
    let c: ScsiCompletion | undefined;
    try {
      c = this.dispatch(cmd, nexus, io, mappedReadOnly, luns, done);
    } catch (e) {
      return done(0, 0, undefined, e as Error);
    }
    // Answered by the checks without running a handler.
    if (c) {
      if (this.stats) recordAnswered(this.stats.of(nexus.transport), nexus.stats, cmd.cdb[0]!, c.status, c.sense);
      done(c.status, c.transferred, c.sense, undefined);
    }
  }

  /** A completion when the checks answer the command; undefined when it runs (run() calls `done`). */
  private dispatch(cmd: ScsiCommand, nexus: Nexus, io: FabricIO, mappedReadOnly: boolean, luns: readonly number[], done: ScsiDone): ScsiCompletion | undefined {
    const key = nexusKey(nexus);
    this.ua.arrive(key, nexus);
    const entry = lookup(cmd.cdb);
    if (entry !== Lookup.UnknownOpcode && entry !== Lookup.UnknownServiceAction && entry.noUa) {
      return this.badShape(cmd.cdb, entry.cdbLength) ?? this.run(this.task(cmd, nexus, io, mappedReadOnly, luns, key, done), entry.handler);
    }
    const ua = this.ua.take(key);
    if (ua !== undefined) return this.check(SenseKey.UnitAttention, ua);
    if (entry === Lookup.UnknownOpcode) return this.check(SenseKey.IllegalRequest, Asc.InvalidOpcode);
    if (entry === Lookup.UnknownServiceAction) {
      // A CDB too short to hold its service action is malformed at its operation code.
      const field = cmd.cdb.length >= 2 ? { cdb: true, byte: 1, bit: 4 } : { cdb: true, byte: 0, bit: 7 };
      return this.check(SenseKey.IllegalRequest, Asc.InvalidFieldInCdb, field);
    }
    const shape = this.badShape(cmd.cdb, entry.cdbLength);
    if (shape) return shape;
    // SPC-2 reservation held by another nexus (SPC-2 5.5.1).
    if (this.reservedBy !== undefined && this.reservedBy !== key && !entry.reserveAllowed) return { status: ScsiStatus.ReservationConflict, transferred: 0 };
    if (this.pr.conflicts(nexus, entry.pr)) return { status: ScsiStatus.ReservationConflict, transferred: 0 };
    if (entry.writes && (mappedReadOnly || this.writeProtected)) return this.check(SenseKey.DataProtect, Asc.WriteProtected);
    // After DATA PROTECT: a write-protected LU refuses every writing command alike (libiscsi ReadOnly.ReadOnlySBC).
    if (entry.supported && !entry.supported(this)) return this.check(SenseKey.IllegalRequest, Asc.InvalidOpcode);
    return this.run(this.task(cmd, nexus, io, mappedReadOnly, luns, key, done), entry.handler);
  }

  /**
   * A CDB shorter than its operation code's length cannot be decoded; NACA=1 asks for ACA,
   * which this device server does not support (SAM-5 5.2: INVALID FIELD IN CDB).
   */
  private badShape(cdb: Uint8Array, length: number): ScsiCompletion | undefined {
    if (cdb.length < length) return this.check(SenseKey.IllegalRequest, Asc.InvalidFieldInCdb, { cdb: true, byte: 0, bit: 7 });
    if (cdb[length - 1]! & 0x04) return this.check(SenseKey.IllegalRequest, Asc.InvalidFieldInCdb, { cdb: true, byte: length - 1, bit: 2 });
    return undefined;
  }

  private task(cmd: ScsiCommand, nexus: Nexus, io: FabricIO, mappedReadOnly: boolean, luns: readonly number[], key: string, done: ScsiDone): Task {
    return (this.freeTasks.pop() ?? new Task(this)).init(cmd, nexus, io, mappedReadOnly, luns, key, done);
  }

  /**
   * Takes the task through the task set to its handler; returns a completion only when the
   * set is full. No async frame: a task that waits for nothing goes straight to its handler.
   */
  private run(t: Task, handler: Handler): ScsiCompletion | undefined {
    // SAM-5 5.3.1: no room in the task set is TASK SET FULL; the initiator retries later.
    if (this.tasks.full()) {
      this.recycle(t);
      return { status: ScsiStatus.TaskSetFull, transferred: 0 };
    }
    const cmd = t.cmd;
    const entry = this.tasks.enter(t, cmd.tag, cmd.attribute);
    if (entry.before) {
      Promise.race([Promise.all(entry.before), entry.abortedSignal]).then(
        () => this.start(t, handler),
        (e: unknown) => t.end(e, 0),
      );
      return undefined;
    }
    this.start(t, handler);
    return undefined;
  }

  private start(t: Task, handler: Handler): void {
    // An aborted task ends with TASK ABORTED (SAM-5 5.6): the fabric sends it to other
    // I_T nexuses (TAS=1 in the control mode page) and nothing to the one that aborted it.
    if (t.aborted) return t.end(undefined, 0);
    let p: Promise<number> | void;
    try {
      p = handler(t);
    } catch (e) {
      return t.end(e, 0);
    }
    // A callback handler (READ/WRITE) ends the task itself (Task.end).
    if (p)
      p.then(
        (n) => t.end(undefined, n),
        (e: unknown) => t.end(e, 0),
      );
  }

  /** The handler ended (Task.end): the task leaves the task set, then the fabric learns the status. */
  taskEnded(t: Task, e: unknown, transferred: number): void {
    t.entry.end();
    const done = t.done;
    // The task is reused only once the fabric's callback has returned: nothing of this
    // command runs on it after that (the handler ended, its data movement completed).
    try {
      // The fabric may fail data movement of a task it aborted itself.
      if (t.aborted) done(ScsiStatus.TaskAborted, 0, undefined, undefined);
      else if (e === undefined) done(ScsiStatus.Good, transferred, undefined, undefined);
      else if (e instanceof ScsiError) {
        if (e.status !== ScsiStatus.CheckCondition) done(e.status, 0, undefined, undefined);
        else done(ScsiStatus.CheckCondition, 0, buildSense(this.mode.dsense, e.key, e.asc, e.field, e.information), undefined);
      } else done(0, 0, undefined, e instanceof Error ? e : new Error(String(e)));
    } finally {
      // Counted once the fabric has the status (stats.ts: latency up to the response handed over).
      if (this.stats)
        recordEnd(this.stats.of(t.nexus.transport), t.nexus.stats, t.cdb[0]!, Math.min(transferred, t.inLength + t.outLength), t.t0, t.aborted, e);
      this.recycle(t);
    }
  }

  /** Keeps an ended task for the next command (bounded by the task set's depth). */
  private recycle(t: Task): void {
    t.clear();
    if (this.freeTasks.length < this.tasks.depth) this.freeTasks.push(t);
  }

  check(key: SenseKey, asc: Asc, field?: { cdb: boolean; byte: number; bit?: number }, info?: number): ScsiCompletion {
    return { status: ScsiStatus.CheckCondition, sense: buildSense(this.mode.dsense, key, asc, field, info), transferred: 0 };
  }

  takeUnitAttention(key: string): Asc | undefined {
    return this.ua.take(key);
  }

  clearUnitAttention(key: string, asc: Asc): void {
    this.ua.clear(key, asc);
  }

  /** Queues a UA for every known nexus except `except` (SAM-5 5.14). */
  unitAttentionOthers(asc: Asc, except?: string): void {
    this.ua.establishAll(asc, except);
  }

  /** Queues a UA for every known I_T nexus a PR registration covers (SPC-4 5.12.11). */
  unitAttentionMatching(r: Registration, asc: Asc): void {
    this.ua.establishWhere((n) => coversNexus(r, n), asc);
  }

  addUnitAttention(key: string, asc: Asc): void {
    this.ua.establish(key, asc);
  }

  /** Whether an I_T nexus of this SCSI transport protocol (SPC-4 7.6.1) has reached the LU: TransportIDs must name one. */
  protocolSeen(proto: number): boolean {
    for (const n of this.ua.nexuses.values()) if (((n.transportId[0] ?? 0x05) & 0x0f) === proto) return true;
    return false;
  }

  /** The target port with this relative port identifier, as learned from the nexuses seen. */
  targetPortOf(relativePortId: number): string | undefined {
    for (const n of this.ua.nexuses.values()) if (n.relativePortId === relativePortId) return n.targetPort;
    return undefined;
  }

  /**
   * The backstore's size changed (a file or device grown under us): READ CAPACITY answers
   * the new size, and every I_T nexus learns CAPACITY DATA HAS CHANGED (SBC-3 4.10).
   */
  capacityChanged(): void {
    if (this.backstore.blockCount === this.blockCount) return;
    this.blockCount = this.backstore.blockCount;
    this.unitAttentionOthers(Asc.CapacityDataChanged);
  }

  setMode(next: ModeState, by: string): void {
    const changed = next.dsense !== this.mode.dsense || next.swp !== this.mode.swp || next.wce !== this.mode.wce;
    this.mode = next;
    // Other initiators learn that mode parameters changed (SPC-4 6.11).
    if (changed) this.unitAttentionOthers(Asc.ModeParametersChanged, by);
  }

  /** Excludes other writers from [lba, lba+blocks) until the returned function is called. */
  lockRange(lba: number, blocks: number): Promise<() => void> {
    return this.locks.lock(lba, blocks);
  }

  reserve(key: string): void {
    if (this.reservedBy !== undefined && this.reservedBy !== key) throw reservationConflict();
    this.reservedBy = key;
  }

  release(key: string): void {
    if (this.reservedBy === key) this.reservedBy = undefined;
  }

  // ---- task management (SAM-5 7): tmr.ts ------------------------------------

  taskManagement(fn: TmfFunction, nexus: Nexus, tag?: number): Promise<TmfResponse> {
    return taskManagement(this, fn, nexus, tag);
  }

  /**
   * LU reset (SAM-5 6.3.3): abort everything, drop SPC-2 reservations, and a UA on every
   * I_T nexus, the resetting one included (libiscsi MultipathIO.Reset expects it on all paths).
   * Persistent reservations survive (SPC-4 5.12.1).
   */
  async reset(asc: Asc = Asc.BusDeviceReset): Promise<void> {
    this.reservedBy = undefined;
    this.ua.establishAll(asc);
    await this.tasks.abortAndWait(this.tasks.of());
  }

  /** PREEMPT AND ABORT (SPC-4 5.12.11.4.5): the preempted nexuses' tasks end. */
  abortTasksOf(covered: (n: Nexus) => boolean): void {
    this.tasks.abortWhere((n) => covered(n));
  }

  /**
   * The I_T nexus is gone (session closed, connection lost): its tasks end, its SPC-2
   * reservation is released (SPC-2 5.5.1), and if it comes back it first learns of the
   * loss (SAM-5 6.3.4: I_T NEXUS LOSS OCCURRED). PR registrations stay (SPC-4 5.12.1).
   */
  nexusLost(nexus: Nexus): void {
    const key = nexusKey(nexus);
    this.tasks.abortWhere((_, k) => k === key);
    if (this.reservedBy === key) this.reservedBy = undefined;
    this.ua.nexusLoss(key);
  }

  async close(): Promise<void> {
    await this.backstore.close();
  }
}
