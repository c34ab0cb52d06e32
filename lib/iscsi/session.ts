// An iSCSI session (RFC 7143 §4.2, §10.1): the I_T nexus, session-wide parameters, the
// command window (CmdSN/ExpCmdSN/MaxCmdSN, §4.2.2.1) with in-order delivery of
// non-immediate commands, and the task table by ITT. ERL 0: MaxConnections may be 1.

import type { Nexus, ScsiCore } from '../scsi/types.js';
import type { Logger } from '../common/log.js';
import { snAdd, snLess, snLessEq } from './core.js';
import type { OperationalParams } from './params.js';
import type { IscsiTask } from './scsi-cmd.js';
import type { TpgEntry } from './tpg.js';
import type { IscsiTransport } from './transport.js';

export type SessionType = 'Discovery' | 'Normal';

export interface SessionKey {
  initiatorName: string;
  isid: number;
  targetName: string;
  tpgt: number;
}

/**
 * The session's tasks by ITT: an open-addressing table (linear probing, deletion by
 * backward shift) in place of a Map. Every command adds and removes one entry, and a V8
 * Map whose deletes leave it under a quarter full (at queue depth 1: every delete)
 * reallocates its table in a runtime call: about a tenth of the engine's CPU per command.
 */
export class TaskTable {
  private bits = 4;
  private keys = new Uint32Array(1 << this.bits);
  private vals: Array<IscsiTask | undefined> = new Array<IscsiTask | undefined>(1 << this.bits).fill(undefined);
  private n = 0;

  get size(): number {
    return this.n;
  }

  private home(itt: number): number {
    return Math.imul(itt, 0x9e3779b1) >>> (32 - this.bits);
  }

  private find(itt: number): number {
    const mask = this.vals.length - 1;
    for (let i = this.home(itt); ; i = (i + 1) & mask) {
      if (this.vals[i] === undefined) return -1;
      if (this.keys[i] === itt) return i;
    }
  }

  get(itt: number): IscsiTask | undefined {
    const i = this.find(itt >>> 0);
    return i < 0 ? undefined : this.vals[i];
  }

  has(itt: number): boolean {
    return this.find(itt >>> 0) >= 0;
  }

  set(itt: number, task: IscsiTask): this {
    itt >>>= 0;
    if ((this.n + 1) * 2 > this.vals.length) this.grow();
    const mask = this.vals.length - 1;
    let i = this.home(itt);
    while (this.vals[i] !== undefined && this.keys[i] !== itt) i = (i + 1) & mask;
    if (this.vals[i] === undefined) this.n++;
    this.keys[i] = itt;
    this.vals[i] = task;
    return this;
  }

  delete(itt: number): boolean {
    let i = this.find(itt >>> 0);
    if (i < 0) return false;
    const mask = this.vals.length - 1;
    this.vals[i] = undefined;
    this.n--;
    // Move back the entries after the hole that could not sit at their home slot or between it and the hole.
    for (let j = (i + 1) & mask; this.vals[j] !== undefined; j = (j + 1) & mask) {
      const h = this.home(this.keys[j]);
      if ((j > i && (h <= i || h > j)) || (j < i && h <= i && h > j)) {
        this.keys[i] = this.keys[j];
        this.vals[i] = this.vals[j];
        this.vals[j] = undefined;
        i = j;
      }
    }
    return true;
  }

  clear(): void {
    this.vals.fill(undefined);
    this.n = 0;
  }

  /** A snapshot: callers abort tasks while they walk it. */
  values(): IscsiTask[] {
    const out: IscsiTask[] = [];
    for (const v of this.vals) if (v !== undefined) out.push(v);
    return out;
  }

  private grow(): void {
    const old = this.vals;
    const oldKeys = this.keys;
    this.bits++;
    this.keys = new Uint32Array(1 << this.bits);
    this.vals = new Array<IscsiTask | undefined>(1 << this.bits).fill(undefined);
    this.n = 0;
    for (let i = 0; i < old.length; i++) if (old[i] !== undefined) this.set(oldKeys[i], old[i]!);
  }
}

/** A connection as its session (and its peers' logout) sees it. */
export interface SessionConnection {
  readonly cid: number;
  readonly transport: IscsiTransport;
  readonly params: OperationalParams;
  /** Abortive close (ERL 0 connection failure). */
  drop(reason: string): void;
  /** Resolves when no task on the connection is outstanding, or after `ms`. */
  whenIdle(ms: number): Promise<void>;
}

/** One queued non-immediate request waiting for its CmdSN turn. */
type Deliver = () => void;

export class IscsiSession {
  readonly connections = new Set<SessionConnection>();
  readonly tasks = new TaskTable();
  expCmdSN: number;
  private maxCmdSNValue: number;
  private readonly pending = new Map<number, Deliver>();
  /** CmdSNs an ABORT TASK named before they arrived (§11.5.1): consumed, never executed. */
  readonly discard = new Set<number>();
  closed = false;
  readonly createdAt = Date.now();
  private closeWaiters: Array<() => void> = [];

  constructor(
    readonly tsih: number,
    readonly key: SessionKey,
    readonly type: SessionType,
    readonly params: OperationalParams,
    readonly tpg: TpgEntry | undefined,
    readonly nexus: Nexus | undefined,
    readonly core: ScsiCore | undefined,
    readonly cmdWindow: number,
    initialCmdSN: number,
    readonly log: Logger,
    readonly initiatorAlias?: string,
  ) {
    this.expCmdSN = initialCmdSN >>> 0;
    this.maxCmdSNValue = snAdd(this.expCmdSN, cmdWindow - 1);
  }

  get maxCmdSN(): number {
    // The window only ever grows or slides (§4.2.2.1: MaxCmdSN never moves backwards).
    const want = snAdd(this.expCmdSN, this.cmdWindow - 1);
    if (snLess(this.maxCmdSNValue, want)) this.maxCmdSNValue = want;
    return this.maxCmdSNValue;
  }

  /** ISID as the 12 hex digits used in port names. */
  get isidHex(): string {
    return this.key.isid.toString(16).padStart(12, '0');
  }

  /** Whether a non-immediate CmdSN lies in [ExpCmdSN, MaxCmdSN]. */
  inWindow(cmdSN: number): boolean {
    return snLessEq(this.expCmdSN, cmdSN) && snLessEq(cmdSN, this.maxCmdSN);
  }

  /**
   * Deliver a request in CmdSN order (§3.2.2.1 of RFC 3720, §4.2.2.1 of RFC 7143).
   * Immediate requests run now. Non-immediate ones outside the window are silently
   * ignored (returns false); inside it they run when every earlier CmdSN has.
   */
  order(cmdSN: number, immediate: boolean, run: Deliver): boolean {
    if (this.closed) return false;
    if (immediate) {
      run();
      return true;
    }
    if (!this.inWindow(cmdSN) || this.pending.has(cmdSN)) return false;
    if (cmdSN !== this.expCmdSN) {
      this.pending.set(cmdSN, run);
      return true;
    }
    this.advance(run);
    return true;
  }

  private advance(first: Deliver): void {
    let run: Deliver | undefined = first;
    while (run) {
      const sn = this.expCmdSN;
      this.expCmdSN = snAdd(sn, 1);
      if (this.discard.delete(sn)) {
        run = this.pending.get(this.expCmdSN);
        this.pending.delete(this.expCmdSN);
        continue;
      }
      try {
        run();
      } catch (e) {
        this.log.warn(`session ${this.tsih}: request failed: ${(e as Error).message}`);
      }
      run = this.pending.get(this.expCmdSN);
      this.pending.delete(this.expCmdSN);
    }
  }

  /** Whether a CmdSN was received but waits for an earlier one. */
  isQueued(cmdSN: number): boolean {
    return this.pending.has(cmdSN);
  }

  /**
   * Close the session: abort tasks, tell the core the nexus is gone, close connections.
   * Idempotent.
   */
  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.log.info({ event: 'session-end', reason }, `session ended: ${reason}`);
    this.pending.clear();
    for (const t of this.tasks.values()) t.abort('session closed');
    this.tasks.clear();
    for (const c of [...this.connections]) c.drop(reason);
    if (this.nexus && this.core) {
      try {
        this.core.nexusLost(this.nexus);
      } catch (e) {
        this.log.warn(`nexusLost threw: ${(e as Error).message}`);
      }
    }
    const w = this.closeWaiters;
    this.closeWaiters = [];
    for (const f of w) f();
  }

  whenClosed(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((r) => this.closeWaiters.push(r));
  }
}

/** SPC-4 7.6.4.6: iSCSI TransportID, format 01h (name + ",i,0x" + ISID), NUL-padded to 4n. */
export function iscsiTransportId(initiatorName: string, isidHex: string): Uint8Array {
  const name = `${initiatorName},i,0x${isidHex}`;
  const bytes = Buffer.from(name, 'utf8');
  let len = bytes.length + 1; // NUL terminator
  len += (4 - (len % 4)) % 4;
  if (len < 20) len = 20; // §7.6.4.6: ADDITIONAL LENGTH at least 20
  const id = new Uint8Array(4 + len);
  id[0] = 0x40 | 0x05; // FORMAT CODE 01b, PROTOCOL IDENTIFIER 5h (iSCSI)
  id[2] = (len >> 8) & 0xff;
  id[3] = len & 0xff;
  id.set(bytes, 4);
  return id;
}
