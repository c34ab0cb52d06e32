// IscsiTarget: the configured target nodes / portal groups, their ACLs and CHAP, the
// session table (ISID/TSIH, reinstatement), and shutdown. Transports hand it accepted
// connections with `accept`; `lib/transport/tcp.ts` does so for TCP portals.

import { InitiatorCounters, type InitiatorRow } from '../common/initiators.js';
import type { Nexus, ScsiCore } from '../scsi/types.js';
import type { ChapCredentials } from './chap.js';
import { IscsiConnection } from './connection.js';
import { silentLogger, type Logger } from '../common/log.js';
import { requestLogout } from './async.js';
import { preferencesFrom, preferencesFromKeys, type TargetPreferences } from './params.js';
import type { TargetContext, TargetCounters } from './context.js';
import type { IscsiSession, SessionKey, SessionType } from './session.js';
import type { TpgEntry } from './tpg.js';
import type { IscsiTransport } from './transport.js';

export interface AclOptions {
  /** Initiator IQN/EUI/NAA name (§4.2.7). */
  initiator: string;
  /** Per-initiator CHAP; overrides the TPG's. */
  chap?: ChapCredentials;
  /** A core (LUN view) specific to this initiator, e.g. its mapped LUNs; default the TPG's. */
  core?: ScsiCore;
}

export interface TpgOptions {
  iqn: string;
  /** Target portal group tag (§13.9). Default 1. */
  tpgt?: number;
  alias?: string;
  enabled?: boolean;
  /** Addresses advertised by SendTargets (wildcards are replaced by the connection's local address). */
  portals?: Array<{ address: string; port: number }>;
  /** The SCSI core serving this TPG's LUNs; default the target's `core`. */
  core?: ScsiCore;
  acls?: AclOptions[];
  /** Demo mode: any initiator may log in (LIO generate_node_acls). */
  generateNodeAcls?: boolean;
  /** Require CHAP for normal sessions. */
  authentication?: boolean;
  /** CHAP for initiators without their own ACL CHAP (demo mode). */
  chap?: ChapCredentials;
  /** Login key overrides by RFC 7143 §13 name (string values as on the wire) or as preferences. */
  parameters?: Record<string, string>;
  preferences?: Partial<TargetPreferences>;
  /** CmdSN window per session (LIO default_cmdsn_depth). Default 64. */
  cmdsnDepth?: number;
  /** Relative target port identifier (VPD 0x83); default the TPG tag. */
  relativePortId?: number;
  /** Keep-alive for this TPG's sessions (ms; LIO nopin_timeout): default the target's nopInterval. */
  nopInterval?: number;
  /** NOP-In answer deadline for this TPG's sessions (ms; LIO nopin_response_timeout): default the target's nopTimeout. */
  nopTimeout?: number;
}

export interface IscsiTargetOptions {
  /** Default SCSI core for TPGs that name none. */
  core?: ScsiCore;
  tpgs: TpgOptions[];
  discoveryAuth?: { chap?: ChapCredentials; required?: boolean };
  /** Keep-alive: NOP-In after this many idle ms (0 = off; default 15000). */
  nopInterval?: number;
  /** Drop the connection when a NOP-In gets no answer in this many ms (default 30000). */
  nopTimeout?: number;
  /** Drop connections whose login takes longer (ms, default 15000; 0 = no limit). */
  loginTimeout?: number;
  log?: Logger;
}

export class IscsiTarget implements TargetContext {
  readonly tpgs: TpgEntry[] = [];
  readonly log: Logger;
  readonly options: {
    nopInterval: number;
    nopTimeout: number;
    loginTimeout: number;
    discoveryAuth?: { chap?: ChapCredentials; required?: boolean };
  };
  readonly discoveryPrefs: TargetPreferences;
  readonly counters: TargetCounters = { connections: 0, logins: 0, loginFailures: 0, logouts: 0, commands: 0, chapFailures: 0 };
  readonly initiators = new InitiatorCounters();
  private readonly sessions = new Map<number, IscsiSession>();
  private readonly connections = new Set<IscsiConnection>();
  private nextTsih = 1;
  private stopping = false;

  constructor(opts: IscsiTargetOptions) {
    this.log = opts.log ?? silentLogger;
    this.options = {
      nopInterval: opts.nopInterval ?? 15000,
      nopTimeout: opts.nopTimeout ?? 30000,
      loginTimeout: opts.loginTimeout ?? 15000,
      discoveryAuth: opts.discoveryAuth,
    };
    this.discoveryPrefs = preferencesFrom({});
    for (const t of opts.tpgs) this.addTpg(t, opts.core);
  }

  addTpg(t: TpgOptions, defaultCore?: ScsiCore): TpgEntry {
    const tpgt = t.tpgt ?? 1;
    if (this.tpgs.some((x) => x.iqn === t.iqn && x.tpgt === tpgt)) throw new Error(`${t.iqn} tpgt ${tpgt} defined twice`);
    const e = this.tpgEntry(t, defaultCore);
    this.tpgs.push(e);
    return e;
  }

  /**
   * Replaces a portal group's settings in place (run-time reconfiguration): ACLs, CHAP,
   * attributes and login parameters apply to logins from now on; sessions keep what they
   * negotiated. Ending sessions that must not continue is the caller's (endSessions).
   */
  updateTpg(e: TpgEntry, t: TpgOptions): void {
    Object.assign(e, this.tpgEntry({ ...t, tpgt: e.tpgt }, e.core));
  }

  /** Removes a portal group and ends its sessions. */
  removeTpg(e: TpgEntry, reason: string): void {
    const i = this.tpgs.indexOf(e);
    if (i >= 0) this.tpgs.splice(i, 1);
    this.resetSessionsOf(e, reason);
  }

  /** Ends the sessions `which` selects (and their connections); returns how many. */
  endSessions(which: (s: { initiator: string; tpg: TpgEntry | undefined; type: SessionType }) => boolean, reason: string): number {
    let n = 0;
    for (const s of [...this.sessions.values()]) {
      if (!which({ initiator: s.key.initiatorName, tpg: s.tpg, type: s.type })) continue;
      this.sessions.delete(s.tsih);
      s.close(reason);
      n++;
    }
    return n;
  }

  /** The I_T nexuses of the sessions `which` selects (logged-in normal sessions only). */
  nexusesOf(which: (s: { initiator: string; tpg: TpgEntry | undefined }) => boolean): Nexus[] {
    const out: Nexus[] = [];
    for (const s of this.sessions.values()) if (s.nexus && which({ initiator: s.key.initiatorName, tpg: s.tpg })) out.push(s.nexus);
    return out;
  }

  private tpgEntry(t: TpgOptions, defaultCore?: ScsiCore): TpgEntry {
    const tpgt = t.tpgt ?? 1;
    const explicit = { ...preferencesFromKeys(t.parameters ?? {}), ...(t.preferences ?? {}) };
    const prefs = preferencesFrom(explicit);
    // Over iSER unsolicited Data-Out arrives as one SEND per receive buffer (8 KiB), each a
    // receive slot and a copy, where one RDMA READ fetches the same data; a 1 MiB write
    // at FirstBurstLength 256 KiB would take 32 of them. So iSER defaults to InitialR2T=Yes
    // (as LIO's isert negotiates); immediate data still saves the READ for small writes.
    const rdmaPrefs = preferencesFrom({ initialR2T: true, ...explicit });
    const e: TpgEntry = {
      iqn: t.iqn,
      tpgt,
      alias: t.alias,
      enabled: t.enabled ?? true,
      portals: t.portals ?? [],
      acls: new Map((t.acls ?? []).map((a) => [a.initiator, { ...a }])),
      generateNodeAcls: t.generateNodeAcls ?? false,
      authentication: t.authentication ?? false,
      chap: t.chap,
      prefs,
      rdmaPrefs,
      cmdWindow: Math.max(1, Math.min(t.cmdsnDepth ?? 64, 0x7fffffff)),
      core: t.core ?? defaultCore,
      relativePortId: t.relativePortId ?? tpgt,
      nopInterval: t.nopInterval ?? this.options.nopInterval,
      nopTimeout: t.nopTimeout ?? this.options.nopTimeout,
    };
    return e;
  }

  /** A transport accepted a connection: the engine takes it from here. */
  accept(transport: IscsiTransport): IscsiConnection {
    const conn = new IscsiConnection(this, transport);
    this.connections.add(conn);
    this.counters.connections++;
    transport.attach(conn);
    if (this.stopping) conn.drop('target shutting down');
    return conn;
  }

  findTpg(iqn: string, local: { readonly localAddress: string; readonly localPort: number }): TpgEntry | undefined {
    const all = this.tpgs.filter((t) => t.iqn === iqn && t.enabled);
    if (all.length <= 1) return all[0];
    const { localAddress, localPort } = local;
    return (
      all.find((t) => t.portals.some((p) => p.port === localPort && (p.address === localAddress || p.address === '0.0.0.0' || p.address === '::'))) ?? all[0]
    );
  }

  sessionByTsih(tsih: number): IscsiSession | undefined {
    return this.sessions.get(tsih);
  }

  findSession(key: SessionKey, type: SessionType): IscsiSession | undefined {
    for (const s of this.sessions.values()) {
      if (s.closed || s.type !== type) continue;
      if (s.key.initiatorName === key.initiatorName && s.key.isid === key.isid && s.key.targetName === key.targetName && s.key.tpgt === key.tpgt) return s;
    }
    return undefined;
  }

  allocTsih(): number {
    for (let i = 0; i < 0xffff; i++) {
      const t = this.nextTsih;
      this.nextTsih = this.nextTsih >= 0xffff ? 1 : this.nextTsih + 1;
      if (!this.sessions.has(t)) return t;
    }
    return 0;
  }

  addSession(s: IscsiSession): void {
    this.sessions.set(s.tsih, s);
  }

  /** Called by a connection when it was the session's last one (ERL 0). */
  sessionEnded(s: IscsiSession, reason: string): void {
    if (this.sessions.get(s.tsih) === s) this.sessions.delete(s.tsih);
    s.close(reason);
  }

  connectionEnded(c: IscsiConnection): void {
    this.connections.delete(c);
  }

  /** Drop every session of a portal group (TARGET COLD RESET, or all with undefined). */
  resetSessionsOf(tpg: TpgEntry | undefined, reason: string): void {
    for (const s of [...this.sessions.values()])
      if (!tpg || s.tpg === tpg) {
        this.sessions.delete(s.tsih);
        s.close(reason);
      }
  }

  /**
   * Graceful stop: refuse new connections, ask every session to log out (Async Message
   * event 1, RFC 7143 §11.9.1), let in-flight commands finish, then after `graceMs`
   * abort what is left and drop every connection.
   */
  async shutdown(graceMs = 5000): Promise<void> {
    this.stopping = true;
    for (const c of [...this.connections]) {
      if (c.phase === 'login') c.drop('target shutting down');
      else if (c.phase === 'full-feature') requestLogout(c, graceMs / 1000);
    }
    const all = Promise.all([...this.connections].map((c) => c.whenClosed()));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      all,
      new Promise<void>((r) => {
        timer = setTimeout(r, graceMs);
      }),
    ]);
    if (timer) clearTimeout(timer);
    for (const c of [...this.connections]) c.drop('shutdown grace period over');
    for (const s of [...this.sessions.values()]) s.close('target shut down');
    this.sessions.clear();
  }

  get shuttingDown(): boolean {
    return this.stopping;
  }

  status(): {
    sessions: Array<Record<string, unknown> & { initiator: string; target: string }>;
    counters: Record<string, number>;
    initiators: Record<string, InitiatorRow>;
  } {
    const sessions = [...this.sessions.values()].map((s) => ({
      initiator: s.key.initiatorName,
      target: s.type === 'Discovery' ? '(discovery)' : s.key.targetName,
      tpgTag: s.tpg?.tpgt,
      isid: `0x${s.isidHex}`,
      tsih: s.tsih,
      type: s.type,
      alias: s.initiatorAlias,
      tasks: s.tasks.size,
      io: s.nexus?.stats,
      expCmdSN: s.expCmdSN,
      connections: [...s.connections].map((c) => ({
        cid: c.cid,
        transport: c.transport.kind,
        remote: `${c.transport.remoteAddress}:${c.transport.remotePort}`,
        local: `${c.transport.localAddress}:${c.transport.localPort}`,
        headerDigest: c.params.headerDigest,
        dataDigest: c.params.dataDigest,
      })),
    }));
    return {
      sessions,
      counters: { ...this.counters, sessions: this.sessions.size, openConnections: this.connections.size },
      initiators: this.initiators.toJSON(),
    };
  }
}
