// A logical unit: a backstore plus everything SAM-5 keeps per LU — identity, mode
// parameters, unit attentions per I_T nexus, the task set, reservations and the range
// locks that make COMPARE AND WRITE atomic. Two LUN mappings of one backstore share one
// LogicalUnit (as LIO's se_device), so they share all of this.

import { createHash } from 'node:crypto';
import { BufferPool } from './bufpool.js';
import { coversNexus, PersistentReservations, prFile, type Registration } from './pr.js';
import { Asc, buildSense, ScsiError, SenseKey, Status } from './sense.js';
import { lookup, Lookup } from './table.js';
import type { Task } from './task.js';
import { nexusKey } from './task.js';
import { TaskAttribute, TmfFunction, TmfResponse, type Backstore, type FabricIO, type Nexus, type ScsiCommand, type ScsiCompletion } from './types.js';

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
}

export interface ModeState {
  wce: boolean;
  dsense: boolean;
  swp: boolean;
}

interface Running {
  readonly tag: number;
  readonly key: string;
  readonly attribute: TaskAttribute;
  readonly task: Task;
  /** Settles when the task has ended, however it ended. */
  readonly done: Promise<void>;
  /** Marks the task aborted and releases it from a wait for earlier tasks. */
  abort(): void;
  readonly abortedSignal: Promise<void>;
}

/** TASK ABORTED (SAM-5 5.3.1): a fresh object each time, fabrics may annotate completions. */
const aborted = (): ScsiCompletion => ({ status: Status.TaskAborted, transferred: 0 });

interface RangeLock {
  lba: number;
  end: number;
  done: Promise<void>;
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
  readonly targetPortGroup = 1;
  readonly maxCompareAndWrite = 64;
  readonly maxTransferBlocks: number;
  readonly maxWriteSame: number;
  readonly maxUnmapBlocks: number;
  readonly maxUnmapDescriptors = 256;
  readonly defaultWce: boolean;
  /** How long a task management function waits for the tasks it aborted to end. */
  readonly tmfWaitMs: number;
  readonly queueDepth: number;
  readonly pool = new BufferPool();
  readonly pr: PersistentReservations;
  /** EXTENDED COPY results held for RECEIVE COPY RESULTS, by nexus and list identifier. */
  readonly copyResults = new Map<string, { segments: number; bytes: number }>();
  mode: ModeState;

  /** Pending unit attentions per I_T nexus, oldest first (SAM-5 5.14). */
  private readonly ua = new Map<string, number[]>();
  /** Every I_T nexus that has sent a command, by nexus key: the "other" nexuses for UAs, the ports PR can name. */
  private readonly seen = new Map<string, Nexus>();
  private readonly running = new Map<string, Running>();
  private locks: RangeLock[] = [];
  private reservedBy: string | undefined;

  constructor(opts: LogicalUnitOptions) {
    const b = opts.backstore;
    this.backstore = b;
    this.blockSize = b.blockSize;
    this.blockCount = b.blockCount;
    this.serial = opts.serial ?? createHash('sha256').update(opts.name).digest('hex').slice(0, 32);
    this.naa = opts.wwn ? Uint8Array.from(opts.wwn.replace(/^0x/, '').match(/../g)!.map((h) => parseInt(h, 16))) : naaFromSerial(this.serial);
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
    this.tmfWaitMs = opts.tmfWaitMs ?? 5000;
    this.queueDepth = opts.queueDepth ?? 1024;
  }

  /** Loads APTPL persistent reservations from the state directory. */
  async open(): Promise<this> {
    await this.pr.load();
    return this;
  }

  get writeProtected(): boolean {
    return this.backstore.readOnly || this.mode.swp;
  }

  /** Executes one command from a LUN view. */
  async execute(cmd: ScsiCommand, nexus: Nexus, io: FabricIO, mappedReadOnly: boolean, luns: readonly number[]): Promise<ScsiCompletion> {
    const key = nexusKey(nexus);
    if (!this.seen.has(key)) {
      this.seen.set(key, nexus);
      // The LU was "powered on" for this nexus: its first command learns so (SAM-5 6.3.1).
      this.ua.set(key, [Asc.PowerOnReset]);
    }
    const entry = lookup(cmd.cdb);
    if (entry !== Lookup.UnknownOpcode && entry !== Lookup.UnknownServiceAction && entry.noUa) {
      return this.badShape(cmd.cdb, entry.cdbLength) ?? this.run(cmd, nexus, io, mappedReadOnly, luns, key, entry.handler);
    }
    const ua = this.takeUnitAttention(key);
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
    if (this.reservedBy !== undefined && this.reservedBy !== key && !entry.reserveAllowed)
      return { status: Status.ReservationConflict, transferred: 0 };
    if (this.pr.conflicts(nexus, entry.pr)) return { status: Status.ReservationConflict, transferred: 0 };
    if (entry.writes && (mappedReadOnly || this.writeProtected)) return this.check(SenseKey.DataProtect, Asc.WriteProtected);
    // After DATA PROTECT: a write-protected LU refuses every writing command alike (libiscsi ReadOnly.ReadOnlySBC).
    if (entry.supported && !entry.supported(this)) return this.check(SenseKey.IllegalRequest, Asc.InvalidOpcode);
    return this.run(cmd, nexus, io, mappedReadOnly, luns, key, entry.handler);
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

  private async run(
    cmd: ScsiCommand,
    nexus: Nexus,
    io: FabricIO,
    mappedReadOnly: boolean,
    luns: readonly number[],
    key: string,
    handler: (t: Task) => Promise<number>,
  ): Promise<ScsiCompletion> {
    // SAM-5 5.3.1: no room in the task set is TASK SET FULL; the initiator retries later.
    if (this.running.size >= this.queueDepth) return { status: Status.TaskSetFull, transferred: 0 };
    const t: Task = { cmd, cdb: cmd.cdb, nexus, io, lu: this, mappedReadOnly, luns, key, aborted: false };
    const id = `${key}\u0000${cmd.tag}`;
    let finish!: () => void;
    let signal!: () => void;
    const r: Running = {
      tag: cmd.tag,
      key,
      attribute: cmd.attribute,
      task: t,
      done: new Promise<void>((res) => (finish = res)),
      abortedSignal: new Promise<void>((res) => (signal = res)),
      abort() {
        t.aborted = true;
        signal();
      },
    };
    // Task attributes (SAM-5 8.6): an ORDERED task waits for the tasks before it; tasks after an ORDERED one wait for it.
    const before = cmd.attribute === TaskAttribute.HeadOfQueue ? [] : this.blockers(cmd.attribute);
    this.running.set(id, r);
    try {
      if (before.length) await Promise.race([Promise.all(before), r.abortedSignal]);
      // An aborted task ends with TASK ABORTED (SAM-5 5.6): the fabric sends it to other
      // I_T nexuses (TAS=1 in the control mode page) and nothing to the one that aborted it.
      if (t.aborted) return aborted();
      const transferred = await handler(t);
      if (t.aborted) return aborted();
      return { status: Status.Good, transferred };
    } catch (e) {
      // The fabric may fail data movement of a task it aborted itself.
      if (t.aborted) return aborted();
      if (e instanceof ScsiError) {
        if (e.status !== Status.CheckCondition) return { status: e.status, transferred: 0 };
        return this.check(e.key, e.asc, e.field, e.information);
      }
      throw e;
    } finally {
      if (this.running.get(id) === r) this.running.delete(id);
      finish();
    }
  }

  private blockers(attr: TaskAttribute): Promise<void>[] {
    const out: Promise<void>[] = [];
    for (const r of this.running.values()) {
      if (attr === TaskAttribute.Ordered || r.attribute === TaskAttribute.Ordered) out.push(r.done);
    }
    return out;
  }

  check(key: SenseKey, asc: Asc, field?: { cdb: boolean; byte: number; bit?: number }, info?: number): ScsiCompletion {
    return { status: Status.CheckCondition, sense: buildSense(this.mode.dsense, key, asc, field, info), transferred: 0 };
  }

  takeUnitAttention(key: string): Asc | undefined {
    const q = this.ua.get(key);
    if (!q || q.length === 0) return undefined;
    const a = q.shift()!;
    if (q.length === 0) this.ua.delete(key);
    return a as Asc;
  }

  /** Drops one pending UA condition for a nexus (REPORT LUNS clears REPORTED LUNS DATA HAS CHANGED, SPC-4 6.33). */
  clearUnitAttention(key: string, asc: Asc): void {
    const q = this.ua.get(key);
    if (!q) return;
    const i = q.indexOf(asc);
    if (i >= 0) q.splice(i, 1);
    if (q.length === 0) this.ua.delete(key);
  }

  /** Queues a UA for every known nexus except `except` (SAM-5 5.14). */
  unitAttentionOthers(asc: Asc, except?: string): void {
    for (const k of this.seen.keys()) if (k !== except) this.addUnitAttention(k, asc);
  }

  /** Queues a UA for every known I_T nexus a PR registration covers (SPC-4 5.12.11). */
  unitAttentionMatching(r: Registration, asc: Asc): void {
    for (const [k, n] of this.seen) if (coversNexus(r, n)) this.addUnitAttention(k, asc);
  }

  /** Whether an I_T nexus of this SCSI transport protocol (SPC-4 7.6.1) has reached the LU: TransportIDs must name one. */
  protocolSeen(proto: number): boolean {
    for (const n of this.seen.values()) if (((n.transportId[0] ?? 0x05) & 0x0f) === proto) return true;
    return false;
  }

  /** The target port with this relative port identifier, as learned from the nexuses seen. */
  targetPortOf(relativePortId: number): string | undefined {
    for (const n of this.seen.values()) if (n.relativePortId === relativePortId) return n.targetPort;
    return undefined;
  }

  addUnitAttention(key: string, asc: Asc): void {
    const q = this.ua.get(key);
    if (!q) this.ua.set(key, [asc]);
    else if (!q.includes(asc)) q.push(asc);
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
  async lockRange(lba: number, blocks: number): Promise<() => void> {
    const end = lba + blocks;
    for (;;) {
      const c = this.locks.find((l) => l.lba < end && lba < l.end);
      if (!c) break;
      await c.done;
    }
    let release!: () => void;
    const l: RangeLock = { lba, end, done: new Promise<void>((r) => (release = r)) };
    this.locks.push(l);
    return () => {
      const i = this.locks.indexOf(l);
      if (i >= 0) this.locks.splice(i, 1);
      release();
    };
  }

  reserve(key: string): void {
    if (this.reservedBy !== undefined && this.reservedBy !== key) throw new ScsiError(SenseKey.NoSense, Asc.NoAdditional, undefined, undefined, Status.ReservationConflict);
    this.reservedBy = key;
  }

  release(key: string): void {
    if (this.reservedBy === key) this.reservedBy = undefined;
  }

  // ---- task management (SAM-5 7) --------------------------------------------

  /**
   * Task management (SAM-5 7). Resolves once the affected tasks have ended (or after
   * `tmfWaitMs`, for a task stuck waiting on its initiator's data), so that no aborted
   * write reaches the medium after the function is reported complete.
   */
  async taskManagement(fn: TmfFunction, nexus: Nexus, tag?: number): Promise<TmfResponse> {
    const key = nexusKey(nexus);
    switch (fn) {
      case TmfFunction.AbortTask: {
        const r = this.running.get(`${key}\u0000${tag}`);
        if (!r) return TmfResponse.TaskDoesNotExist;
        await this.abortAndWait([r]);
        return TmfResponse.Complete;
      }
      case TmfFunction.QueryTask:
        return this.running.has(`${key}\u0000${tag}`) ? TmfResponse.Complete : TmfResponse.TaskDoesNotExist;
      case TmfFunction.AbortTaskSet:
        await this.abortAndWait([...this.running.values()].filter((r) => r.key === key));
        return TmfResponse.Complete;
      case TmfFunction.ClearTaskSet:
        // With TAS=1 the other nexuses' tasks end with TASK ABORTED instead of a COMMANDS CLEARED BY ANOTHER INITIATOR UA (SAM-5 7.4).
        await this.abortAndWait([...this.running.values()]);
        return TmfResponse.Complete;
      case TmfFunction.LogicalUnitReset:
      case TmfFunction.TargetWarmReset:
        await this.reset(Asc.BusDeviceReset);
        return TmfResponse.Complete;
      case TmfFunction.TargetColdReset:
        await this.reset(Asc.PowerOnReset);
        return TmfResponse.Complete;
      case TmfFunction.ClearAca:
        // NACA is never accepted, so there is no ACA condition to clear (SAM-5 7.3).
        return TmfResponse.Complete;
      default:
        return TmfResponse.NotSupported;
    }
  }

  private async abortAndWait(rs: Running[]): Promise<void> {
    if (rs.length === 0) return;
    for (const r of rs) r.abort();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((res) => {
      timer = setTimeout(res, this.tmfWaitMs);
      timer.unref?.();
    });
    await Promise.race([Promise.all(rs.map((r) => r.done)), timeout]);
    clearTimeout(timer);
  }

  /**
   * LU reset (SAM-5 6.3.3): abort everything, drop SPC-2 reservations, and a UA on every
   * I_T nexus, the resetting one included (libiscsi MultipathIO.Reset expects it on all paths).
   * Persistent reservations survive (SPC-4 5.12.1).
   */
  async reset(asc: Asc = Asc.BusDeviceReset): Promise<void> {
    this.reservedBy = undefined;
    this.unitAttentionOthers(asc);
    await this.abortAndWait([...this.running.values()]);
  }

  /** PREEMPT AND ABORT (SPC-4 5.12.11.4.5): the preempted nexuses' tasks end. */
  abortTasksOf(covered: (n: Nexus) => boolean): void {
    for (const r of this.running.values()) if (covered(r.task.nexus)) r.abort();
  }

  /**
   * The I_T nexus is gone (session closed, connection lost): its tasks end, its SPC-2
   * reservation is released (SPC-2 5.5.1), and if it comes back it first learns of the
   * loss (SAM-5 6.3.4: I_T NEXUS LOSS OCCURRED). PR registrations stay (SPC-4 5.12.1).
   */
  nexusLost(nexus: Nexus): void {
    const key = nexusKey(nexus);
    for (const r of this.running.values()) if (r.key === key) r.abort();
    if (this.reservedBy === key) this.reservedBy = undefined;
    if (this.seen.has(key)) {
      const q = this.ua.get(key);
      // A pending power-on UA already says more than a nexus loss (SAM-5 5.14 precedence).
      if (!q || !q.includes(Asc.PowerOnReset)) this.ua.set(key, [Asc.ItNexusLoss]);
    }
  }

  async close(): Promise<void> {
    await this.backstore.close();
  }
}
