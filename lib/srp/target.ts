// The SRP target port (SRP r16a §4, §5.4): logins, I_T nexuses and task management.
//
// An I_T nexus is (initiator port id, target port id). It lives as long as one of its RDMA
// channels does: ib_srp opens `ch_count` channels, the first with the multichannel action
// SINGLE (which ends every channel the nexus had: a relogin), the rest with MULTI (they join).
// Commands from every channel of a nexus go to one LUN view as one initiator; task management
// on any channel reaches the tasks of all of them (ib_srp sends ABORT TASK on the command's
// channel, LUN RESET on the first). Tasks this nexus aborts end silently (SAM-5 5.6) and their
// credits go back with the channel's next response or an SRP_CRED_REQ.
//
// Access: an ACL names an initiator port id (LIO srpt's "0x" + 32 hex digits) or, for RDMA/CM
// logins, the initiator's source address (what LIO names its RDMA/CM ACLs by); without ACLs
// and with generateNodeAcls any initiator sees the demo LUN view.

import { InitiatorCounters } from '../common/initiators.js';
import { TmfFunction, TmfResponse, type Nexus, type ScsiCore } from '../scsi/types.js';
import { transportIndex } from '../common/transports.js';
import { IoStats } from '../scsi/stats.js';
import { SrpTmf, SrpRspCode, TLogoutReason, isKnownTmf, parsePortId, portIdHex, tagNumber, type TskMgmt } from './iu.js';
import { defaultTargetPortId, evaluateLogin, type LoginAccepted, type LoginDecision, type LoginPolicy } from './login.js';
import type { SrpChannel, SrpChannelOptions, SrpSessionLink } from './channel.js';
import { silentLogger, type Logger } from '../common/log.js';

export interface SrpAcl {
  /** Initiator port id, "0x" + 32 hex digits (any case, colons allowed), or... */
  initiatorPortId?: string;
  /** ...the initiator's source IP address (RDMA/CM). */
  address?: string;
  core: ScsiCore;
}

export interface SrpTargetOptions {
  /** 16 bytes (id_ext ‖ ioc_guid); default: each device's node GUID twice, as LIO does. */
  targetPortId?: Uint8Array;
  /** The LUN view of demo mode (generateNodeAcls). */
  core?: ScsiCore;
  generateNodeAcls?: boolean;
  acls?: SrpAcl[];
  /** Credits per channel (= request receive depth). Default 128, as LIO. */
  credits?: number;
  /** Largest initiator-to-target IU accepted. Default 65536 (ib_srp asks 8260). */
  maxItIuLen?: number;
  /** Largest IU we send. Default 256 (SRP_RSP with up to 220 bytes of sense). */
  maxTiIuLen?: number;
  immediateData?: boolean;
  /** Channels one nexus may have. Default 64. */
  channelsPerNexus?: number;
  relativePortId?: number;
  log?: Logger;
  channel?: SrpChannelOptions;
}

/** SPC-4 7.6.4.5: the SRP TransportID (24 bytes, protocol identifier 4, the initiator port id). */
export function srpTransportId(initiatorPortId: Uint8Array): Uint8Array {
  const t = new Uint8Array(24);
  t[0] = 0x04;
  t.set(initiatorPortId.subarray(0, 16), 8);
  return t;
}

function normalizePortId(s: string): string | undefined {
  const b = parsePortId(s);
  return b ? portIdHex(b) : undefined;
}

export class SrpSession implements SrpSessionLink {
  readonly channels = new Set<SrpChannel>();
  /** Replaced by a SINGLE relogin or its last channel gone: the core was told. */
  ended = false;

  constructor(
    readonly key: string,
    readonly nexus: Nexus,
    readonly core: ScsiCore,
    private readonly log: Logger,
    private readonly initiators: InitiatorCounters,
  ) {}

  /** The initiator sent SRP_I_LOGOUT on one of the nexus's channels. */
  loggedOut(): void {
    this.initiators.count('logouts', this.nexus.initiatorPort, true);
  }

  async taskManagement(from: SrpChannel, iu: TskMgmt): Promise<number> {
    if (!isKnownTmf(iu.function)) return SrpRspCode.NotSupported;
    let fn: TmfFunction;
    let tag: number | undefined;
    switch (iu.function) {
      case SrpTmf.AbortTask:
        fn = TmfFunction.AbortTask;
        tag = tagNumber(iu.taskTagLo, iu.taskTagHi);
        break;
      case SrpTmf.AbortTaskSet:
        fn = TmfFunction.AbortTaskSet;
        break;
      case SrpTmf.ClearTaskSet:
        fn = TmfFunction.ClearTaskSet;
        break;
      case SrpTmf.LunReset:
        fn = TmfFunction.LogicalUnitReset;
        break;
      default:
        fn = TmfFunction.ClearAca;
        break;
    }
    // The tasks this nexus aborts end without a response (SAM-5 5.6): mark them first, so
    // that their data movement stops and their TASK ABORTED completion is suppressed.
    if (fn !== TmfFunction.ClearAca) {
      for (const ch of this.channels) {
        for (const t of ch.tasks.values()) {
          if (t.lun !== iu.lun) continue;
          if (tag === undefined || t.tag === tag) t.aborted = true;
        }
      }
    }
    this.log.debug(`${from.describe}: task management 0x${iu.function.toString(16)} LUN ${iu.lun}${tag !== undefined ? ` tag 0x${tag.toString(16)}` : ''}`);
    const r = await this.core.taskManagement(fn, this.nexus, iu.lun, tag);
    switch (r) {
      case TmfResponse.Complete:
      case TmfResponse.TaskDoesNotExist: // SAM-5 7.2: ABORT TASK of no task is FUNCTION COMPLETE
        return SrpRspCode.Complete;
      case TmfResponse.NotSupported:
        return SrpRspCode.NotSupported;
      default:
        return SrpRspCode.Failed;
    }
  }
}

export interface SrpSessionStatus {
  initiator: string;
  target: string;
  /** The nexus's command counters (lib/scsi/stats.ts). */
  io?: IoStats;
  connections: Array<{ remote: string; local: string; transport: 'srp'; device: string }>;
}

export class SrpTarget {
  readonly sessions = new Map<string, SrpSession>();
  readonly channels = new Set<SrpChannel>();
  readonly log: Logger;
  readonly counters = { srpLogins: 0, srpLoginRejects: 0, srpCommands: 0, srpMalformed: 0, srpExternalTables: 0 };
  /** Logins, logouts and login rejects per initiator port (lib/common/initiators.ts). */
  readonly initiators = new InitiatorCounters();
  private acls: Array<{ portId?: string; address?: string; core: ScsiCore }> = [];
  private shuttingDown = false;

  constructor(readonly opts: SrpTargetOptions) {
    this.log = opts.log ?? silentLogger;
    this.setAcls(opts.acls ?? []);
  }

  /**
   * Run-time reconfiguration: access (demo view, generateNodeAcls, ACLs) and login policy
   * (credits, IU lengths, immediate data, target port id) for logins from now on. Sessions
   * keep what they logged in with; ending those that must not continue is the caller's
   * (endSessions).
   */
  configure(o: Pick<SrpTargetOptions, 'core' | 'generateNodeAcls' | 'acls' | 'credits' | 'maxItIuLen' | 'immediateData' | 'targetPortId'>): void {
    if (o.acls) this.setAcls(o.acls);
    Object.assign(this.opts, o);
    // Absent: each device's node GUID again (the default).
    if (o.targetPortId === undefined) delete this.opts.targetPortId;
  }

  /** Ends the sessions `which` selects: each channel gets SRP_T_LOGOUT and closes. Returns how many. */
  endSessions(which: (s: SrpSession) => boolean, reason: string): number {
    let n = 0;
    for (const s of [...this.sessions.values()]) {
      if (!which(s)) continue;
      this.log.info({ event: 'session-ended', transport: 'srp', initiatorPort: s.nexus.initiatorPort }, `srp: ending ${s.nexus.initiatorPort}: ${reason}`);
      this.endSession(s);
      for (const ch of [...s.channels]) ch.logout(TLogoutReason.NoReason);
      n++;
    }
    return n;
  }

  private setAcls(list: SrpAcl[]): void {
    this.acls = list.map((a) => {
      const e: { portId?: string; address?: string; core: ScsiCore } = { core: a.core };
      if (a.initiatorPortId !== undefined) {
        const n = normalizePortId(a.initiatorPortId);
        if (!n) throw new Error(`SRP ACL initiatorPortId ${JSON.stringify(a.initiatorPortId)} is not 32 hex digits`);
        e.portId = n;
      }
      if (a.address !== undefined) e.address = a.address;
      return e;
    });
  }

  get channelCount(): number {
    return this.channels.size;
  }

  policy(nodeGuid: string): LoginPolicy {
    return {
      targetPortId: this.opts.targetPortId ?? defaultTargetPortId(nodeGuid),
      maxItIuLen: this.opts.maxItIuLen ?? 65536,
      maxTiIuLen: this.opts.maxTiIuLen ?? 256,
      credits: this.opts.credits ?? 128,
      immediateData: this.opts.immediateData ?? true,
    };
  }

  /** The target port id a device serves (for logs and `add_target` hints). */
  targetPortIdFor(nodeGuid: string): string {
    return portIdHex(this.policy(nodeGuid).targetPortId);
  }

  /**
   * Decides a login: the request's own fields, then the ACL and the channel limit. On
   * success the caller builds the channel and calls attach().
   */
  evaluate(privateData: Uint8Array | undefined, nodeGuid: string, remoteAddress: string): LoginDecision & { core?: ScsiCore } {
    if (this.shuttingDown) return { ok: false, reason: 0x00010001, why: 'the target is shutting down' };
    const d = evaluateLogin(privateData, this.policy(nodeGuid));
    if (!d.ok) return d;
    const core = this.authorize(d.initiatorPort, remoteAddress);
    if (!core) {
      return { ok: false, reason: 0x00010000, why: `no ACL for initiator port ${d.initiatorPort} or address ${remoteAddress}`, req: d.req };
    }
    const s = this.sessions.get(sessionKey(d));
    const max = this.opts.channelsPerNexus ?? 64;
    if (d.multichannel && s && s.channels.size >= max) {
      return { ok: false, reason: 0x00010006, why: `the nexus already has ${s.channels.size} channels (limit ${max})`, req: d.req };
    }
    return { ...d, core };
  }

  /** Whether an ACL names this initiator port or the address it logs in from (its login failures get a row of their own). */
  namedByAcl(initiatorPort: string, address: string): boolean {
    return this.acls.some((a) => a.portId === initiatorPort || (a.address !== undefined && a.address === address));
  }

  private authorize(initiatorPort: string, address: string): ScsiCore | undefined {
    for (const a of this.acls) if (a.portId === initiatorPort) return a.core;
    for (const a of this.acls) if (a.address !== undefined && a.address === address) return a.core;
    if (this.opts.generateNodeAcls && this.opts.core) return this.opts.core;
    return undefined;
  }

  /**
   * The session a new channel joins, after the multichannel action (§5.4.4): SINGLE ends the
   * nexus' channels and starts it afresh; MULTI joins. Returns the LOGIN_RSP flag.
   */
  attach(d: LoginAccepted, core: ScsiCore, ch: SrpChannel): { session: SrpSession; existing: 0 | 1 | 2 } {
    const key = sessionKey(d);
    let s = this.sessions.get(key);
    let existing: 0 | 1 | 2 = 0;
    if (s && !d.multichannel) {
      existing = s.channels.size > 0 ? 1 : 0;
      this.log.info(
        { event: 'session-reinstatement', transport: 'srp', initiatorPort: d.initiatorPort },
        `srp: relogin of ${d.initiatorPort}: ending its ${s.channels.size} channel(s)`,
      );
      this.endSession(s);
      for (const old of [...s.channels]) old.logout(TLogoutReason.MultichannelAction);
      s = undefined;
    } else if (s) {
      existing = s.channels.size > 0 ? 2 : 0;
    }
    if (!s) {
      const nexus: Nexus = {
        initiatorPort: d.initiatorPort,
        targetPort: d.targetPort,
        relativePortId: this.opts.relativePortId ?? 1,
        transportId: srpTransportId(d.req.initiatorPortId),
        transport: transportIndex('srp'),
        stats: new IoStats(),
      };
      s = new SrpSession(key, nexus, core, this.log, this.initiators);
      this.sessions.set(key, s);
    }
    s.channels.add(ch);
    this.channels.add(ch);
    ch.session = s;
    this.counters.srpLogins++;
    this.initiators.count('logins', d.initiatorPort, true);
    return { session: s, existing };
  }

  /** A channel is gone (after attach): the nexus ends with its last channel. */
  detach(ch: SrpChannel): void {
    this.channels.delete(ch);
    this.counters.srpCommands += ch.commands;
    this.counters.srpMalformed += ch.malformed;
    this.counters.srpExternalTables += ch.externalTables;
    const s = ch.session as SrpSession | undefined;
    if (!s) return;
    s.channels.delete(ch);
    if (s.channels.size === 0 && !s.ended) this.endSession(s);
  }

  private endSession(s: SrpSession): void {
    if (s.ended) return;
    s.ended = true;
    if (this.sessions.get(s.key) === s) this.sessions.delete(s.key);
    try {
      s.core.nexusLost(s.nexus);
    } catch (e) {
      this.log.warn(`srp: nexusLost threw: ${(e as Error).message}`);
    }
  }

  /** Counters including the channels still open. */
  liveCounters(): Record<string, number> {
    let commands = this.counters.srpCommands,
      malformed = this.counters.srpMalformed,
      ext = this.counters.srpExternalTables;
    for (const c of this.channels) {
      commands += c.commands;
      malformed += c.malformed;
      ext += c.externalTables;
    }
    return {
      ...this.counters,
      srpCommands: commands,
      srpMalformed: malformed,
      srpExternalTables: ext,
      srpChannels: this.channels.size,
      srpSessions: this.sessions.size,
    };
  }

  status(): SrpSessionStatus[] {
    return [...this.sessions.values()].map((s) => ({
      initiator: s.nexus.initiatorPort,
      target: s.nexus.targetPort,
      io: s.nexus.stats,
      connections: [...s.channels].map((c) => ({
        remote: `${c.remoteAddress}:${c.remotePort}`,
        local: `${c.localAddress}:${c.localPort}`,
        transport: 'srp' as const,
        device: c.deviceName,
      })),
    }));
  }

  /**
   * Graceful stop: refuse new logins, let commands in flight finish for up to `graceMs`,
   * then SRP_T_LOGOUT on every channel and disconnect. Resolves when every channel is gone
   * or after a bound.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.shuttingDown = true;
    const until = Date.now() + graceMs;
    const busy = () => [...this.channels].some((c) => c.tasks.size > 0);
    while (busy() && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    for (const c of [...this.channels]) c.logout(TLogoutReason.NoReason);
    const bound = Date.now() + 4000;
    while (this.channels.size > 0 && Date.now() < bound) await new Promise((r) => setTimeout(r, 20));
  }
}

function sessionKey(d: LoginAccepted): string {
  return `${d.initiatorPort}|${d.targetPort}`;
}
