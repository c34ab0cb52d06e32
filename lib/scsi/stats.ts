// Command counters of one logical unit or one I_T nexus, for the daemon's `stats` control
// command, `rdma-target top` and the Prometheus endpoint (lib/target/metrics.ts), which read
// them when asked. Updated once per command at its completion (lu.ts taskEnded) with plain
// arithmetic on preallocated typed arrays: nothing is allocated per command, and nothing
// here knows Prometheus.

import { TRANSPORTS } from '../common/transports.js';
import { ScsiError } from './sense.js';
import { ScsiStatus } from './types.js';

/** What a command did, by its operation code: the three rows of every array below. */
export const enum IoKind {
  Read = 0,
  Write = 1,
  Other = 2,
}

export const IO_KINDS = ['read', 'write', 'other'] as const;

/**
 * Upper bounds of the latency buckets, in seconds (submission to the core → status to the
 * fabric): 1 µs to 10 s, so both RDMA on a RAM LUN (µs) and file I/O (ms) resolve. The last
 * bucket (+Inf) is implicit.
 */
export const LATENCY_BOUNDS = Float64Array.of(
  1e-6,
  2.5e-6,
  5e-6,
  10e-6,
  25e-6,
  50e-6,
  100e-6,
  250e-6,
  500e-6,
  1e-3,
  2.5e-3,
  5e-3,
  10e-3,
  25e-3,
  50e-3,
  100e-3,
  250e-3,
  500e-3,
  1,
  2.5,
  10,
);
/** Buckets per kind: one per bound plus +Inf. */
export const LATENCY_BUCKETS = LATENCY_BOUNDS.length + 1;
const BOUNDS_MS = LATENCY_BOUNDS.map((s) => s * 1000);

/** Ticks of the submission clock per millisecond: a quarter microsecond. */
const TICKS_PER_MS = 4000;
const TICK_MASK = 0x3fffffff;

/**
 * The submission time of a command as a small integer (quarter microseconds, modulo 2^30):
 * a Task keeps it in a field that holds a small integer unboxed, where a double would be a
 * heap number allocated per command. Differences are exact while a command takes less
 * than 2^30 ticks (268 s); a longer one is counted modulo that.
 */
export function stamp(): number {
  return (performance.now() * TICKS_PER_MS) & TICK_MASK;
}

/** READ and WRITE operation codes (SBC-3); everything else counts as other. */
const KIND_OF = new Uint8Array(256).fill(IoKind.Other);
for (const op of [0x08, 0x28, 0xa8, 0x88]) KIND_OF[op] = IoKind.Read;
// WRITE, WRITE AND VERIFY, COMPARE AND WRITE move Data-Out to the medium.
for (const op of [0x0a, 0x2a, 0xaa, 0x8a, 0x2e, 0xae, 0x8e, 0x89]) KIND_OF[op] = IoKind.Write;

export function ioKindOf(opcode: number): IoKind {
  return KIND_OF[opcode & 0xff] as IoKind;
}

/** Counters as plain JSON (the `stats` control command): arrays by IoKind, buckets row-major. */
export interface IoStatsJson {
  commands: number[];
  /** Commands whose latency was measured (a sample, see IoStats.sampling): the histogram's count. */
  timed: number[];
  bytes: number[];
  /** Sum of the measured latencies in seconds. */
  latencySum: number[];
  /** Non-cumulative bucket counts, IO_KINDS.length rows of LATENCY_BUCKETS. */
  buckets: number[];
  /** CHECK CONDITION by sense key (index = key). */
  senseKeys: number[];
  /** Other statuses that are not GOOD: BUSY, RESERVATION CONFLICT, TASK SET FULL, TASK ABORTED. */
  otherStatus: number;
  /** Commands that failed in the fabric or backstore without a SCSI status. */
  failures: number;
}

export class IoStats {
  readonly commands = new Float64Array(3);
  readonly timed = new Float64Array(3);
  readonly bytes = new Float64Array(3);
  readonly latencySum = new Float64Array(3);
  readonly buckets = new Float64Array(3 * LATENCY_BUCKETS);
  readonly senseKeys = new Float64Array(16);
  otherStatus = 0;
  failures = 0;

  /** xorshift32 state; in a typed array, where a 32-bit integer is stored unboxed. */
  private readonly rng = Int32Array.of(0x2545f491);
  private readonly sampleMask: number;

  constructor(
    /**
     * Measure the latency of a random 1 in `sampleEvery` commands (a power of two; 1: all).
     * Reading the clock costs a native call and a heap number at each end, about 10 % of a
     * RAM LUN's command CPU when done for every command; a random sample keeps the
     * histogram's shape and mean for a fraction of that. Counts and bytes are always exact.
     * (Math.random() would allocate a heap number per call.)
     */
    readonly sampleEvery = 16,
  ) {
    if (!(sampleEvery >= 1 && (sampleEvery & (sampleEvery - 1)) === 0 && sampleEvery <= 1 << 16))
      throw new RangeError(`sampleEvery must be a power of two 1–65536, got ${sampleEvery}`);
    this.sampleMask = sampleEvery - 1;
  }

  /** Whether to measure the next command's latency: a random 1 in sampleEvery. */
  sample(): boolean {
    let x = this.rng[0]!;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    this.rng[0] = x;
    return ((x >>> 16) & this.sampleMask) === 0;
  }

  /** One command ended, having moved `bytes`; `ms` after its submission, or negative when not measured. */
  record(opcode: number, bytes: number, ms: number): void {
    const k = KIND_OF[opcode & 0xff]!;
    this.commands[k]!++;
    this.bytes[k]! += bytes;
    if (ms < 0) return;
    this.timed[k]!++;
    this.latencySum[k]! += ms / 1000;
    let b = 0;
    while (b < BOUNDS_MS.length && ms > BOUNDS_MS[b]!) b++;
    this.buckets[k * LATENCY_BUCKETS + b]!++;
  }

  /** A status other than GOOD; `senseKey` for CHECK CONDITION. */
  recordStatus(status: number, senseKey: number): void {
    if (status === ScsiStatus.CheckCondition) this.senseKeys[senseKey & 0x0f]!++;
    else this.otherStatus++;
  }

  /** Adds these counters into `into` (a total over several IoStats; read time only). */
  addTo(into: IoStats): void {
    for (const k of ['commands', 'timed', 'bytes', 'latencySum', 'buckets', 'senseKeys'] as const) {
      const a = into[k];
      const b = this[k];
      for (let i = 0; i < b.length; i++) a[i]! += b[i]!;
    }
    into.otherStatus += this.otherStatus;
    into.failures += this.failures;
  }

  toJSON(): IoStatsJson {
    return {
      commands: [...this.commands],
      timed: [...this.timed],
      bytes: [...this.bytes],
      latencySum: [...this.latencySum],
      buckets: [...this.buckets],
      senseKeys: [...this.senseKeys],
      otherStatus: this.otherStatus,
      failures: this.failures,
    };
  }
}

/**
 * A logical unit's counters, one IoStats per transport (index = the nexus's `transport`, an
 * index into lib/common/transports.ts's TRANSPORTS), all made when the LU is: a command picks
 * its row by that small integer, so splitting by transport allocates nothing and adds no
 * arithmetic per command. The LU's total is summed when read.
 */
export class LuStats {
  readonly byTransport: IoStats[];

  constructor(readonly sampleEvery = 16) {
    this.byTransport = TRANSPORTS.map(() => new IoStats(sampleEvery));
  }

  /** Whether to measure the next command's latency (IoStats.sample). */
  sample(): boolean {
    return this.byTransport[0]!.sample();
  }

  /** The row of a nexus's transport. */
  of(transport: number): IoStats {
    return this.byTransport[transport]!;
  }

  /** All transports together. */
  total(): IoStats {
    const t = new IoStats(this.sampleEvery);
    for (const s of this.byTransport) s.addTo(t);
    return t;
  }
}

/** The sense key of a sense buffer in fixed (0x70/0x71) or descriptor (0x72/0x73) format. */
export function senseKeyOf(sense: Uint8Array | undefined): number {
  if (!sense || sense.length < 3) return 0;
  return (sense[0]! & 0x7e) === 0x72 ? sense[1]! & 0x0f : sense[2]! & 0x0f;
}

/**
 * A task ended (lu.ts taskEnded): counts it on the LU's and the nexus's stats. `bytes` is
 * what moved; `t0` its stamp() at submission (negative: not sampled); `error` as Task.end got it.
 */
export function recordEnd(lu: IoStats, nexus: IoStats | undefined, opcode: number, bytes: number, t0: number, aborted: boolean, error: unknown): void {
  const ms = t0 < 0 ? -1 : ((stamp() - t0) & TICK_MASK) / TICKS_PER_MS;
  const ok = error === undefined && !aborted;
  lu.record(opcode, ok ? bytes : 0, ms);
  nexus?.record(opcode, ok ? bytes : 0, ms);
  if (ok) return;
  if (aborted) {
    lu.recordStatus(ScsiStatus.TaskAborted, 0);
    nexus?.recordStatus(ScsiStatus.TaskAborted, 0);
  } else if (error instanceof ScsiError) {
    lu.recordStatus(error.status, error.key);
    nexus?.recordStatus(error.status, error.key);
  } else {
    lu.failures++;
    if (nexus) nexus.failures++;
  }
}

/** A command the LU's checks answered without a task (unit attention, bad CDB, conflicts, TASK SET FULL): counted, not timed. */
export function recordAnswered(lu: IoStats, nexus: IoStats | undefined, opcode: number, status: number, sense: Uint8Array | undefined): void {
  lu.record(opcode, 0, -1);
  nexus?.record(opcode, 0, -1);
  if (status === ScsiStatus.Good) return;
  const key = senseKeyOf(sense);
  lu.recordStatus(status, key);
  nexus?.recordStatus(status, key);
}
