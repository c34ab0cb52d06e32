// Login phase state machine (RFC 7143 §6.3, §11.12, §11.13):
//   SecurityNegotiation (CSG 0) → LoginOperationalNegotiation (CSG 1) → FullFeaturePhase (3)
// with the T (transit) and C (continue) bits, TSIH assignment, session reinstatement by
// ISID (§6.3.5), and status class/detail on failure (§11.13.5). The target only transits
// when the initiator asks to (T=1) and its own conditions (authentication) are met.

import { randomInt } from 'node:crypto';
import type { Nexus } from '../scsi/types.js';
import { transportIndex } from '../common/transports.js';
import { IoStats } from '../scsi/stats.js';
import { ChapServer, type ChapCredentials } from './chap.js';
import type { ConnectionContext } from './context.js';
import { LoginStatus, Opcode, Stage } from './opcodes.js';
import { Negotiator, type TargetPreferences } from './params.js';
import { encodeBhs, type LoginRequestPdu, type LoginResponsePdu } from './pdu.js';
import { iscsiTransportId, IscsiSession, type SessionKey, type SessionType } from './session.js';
import { hostPort } from './transport.js';
import { decodeText, encodeText, TextAccumulator, TextFormatError, type KeyValue } from './text.js';
import type { AclEntry, TpgEntry } from './tpg.js';

/** §13.12: until negotiated, neither side sends more than 8192 bytes of data per PDU. */
const LOGIN_MAX_DATA = 8192;
/** A login's key=value text may span PDUs (C bit); this bounds what we buffer. */
const LOGIN_TEXT_LIMIT = 65536;
/** CmdSN window offered to discovery sessions. */
const DISCOVERY_WINDOW = 4;

/** Status class/detail names (RFC 7143 §11.13.5), for log lines. */
const LOGIN_STATUS_NAMES: Record<number, string> = {
  [LoginStatus.InitiatorError]: 'initiator error',
  [LoginStatus.AuthenticationFailure]: 'authentication failure',
  [LoginStatus.AuthorizationFailure]: 'authorization failure',
  [LoginStatus.NotFound]: 'not found',
  [LoginStatus.TargetRemoved]: 'target removed',
  [LoginStatus.UnsupportedVersion]: 'unsupported version',
  [LoginStatus.TooManyConnections]: 'too many connections',
  [LoginStatus.MissingParameter]: 'missing parameter',
  [LoginStatus.CantIncludeInSession]: 'cannot include in session',
  [LoginStatus.SessionTypeNotSupported]: 'session type not supported',
  [LoginStatus.SessionDoesNotExist]: 'session does not exist',
  [LoginStatus.InvalidDuringLogin]: 'invalid during login',
  [LoginStatus.TargetError]: 'target error',
  [LoginStatus.ServiceUnavailable]: 'service unavailable',
  [LoginStatus.OutOfResources]: 'out of resources',
};

export class LoginFailure extends Error {
  constructor(
    readonly status: LoginStatus,
    message: string,
  ) {
    super(message);
  }
}

export class LoginHandler {
  private started = false;
  stage: Stage = Stage.Security;
  private isid = 0;
  private tsih = 0;
  private cid = 0;
  private initialCmdSN = 0;
  private itt = 0;
  initiatorName = '';
  initiatorAlias: string | undefined;
  targetName = '';
  sessionType: SessionType = 'Normal';
  tpg: TpgEntry | undefined;
  acl: AclEntry | undefined;
  private joining: IscsiSession | undefined;
  private neg: Negotiator | undefined;
  private readonly acc = new TextAccumulator(LOGIN_TEXT_LIMIT);
  private authMethods: string[] = ['None'];
  private authMethod: string | undefined;
  private chapCreds: ChapCredentials | undefined;
  private chapMutualRequired = false;
  private chap: ChapServer | undefined;
  private authenticated = false;
  private authRequired = false;
  private tpgtSent = false;
  private done = false;
  /** Keys the login owns that were seen already (redeclaration is an initiator error, §6.2). */
  private declared = new Map<string, string>();

  constructor(private readonly conn: ConnectionContext) {}

  handle(pdu: LoginRequestPdu, data: Uint8Array): void {
    if (this.done) return;
    // Each login PDU at debug level, with its ITT: what a hung login on the initiator's side
    // (its login task never completed) is told apart by.
    const log = this.conn.log;
    if (log.isLevelEnabled('debug'))
      log.debug(
        `login request: ITT 0x${pdu.itt.toString(16)} CID ${pdu.cid} TSIH ${pdu.tsih} CSG ${pdu.csg}${pdu.transit ? `→NSG ${pdu.nsg}` : ''}${pdu.cont ? ' C' : ''}, ${data.length} data bytes`,
      );
    try {
      this.step(pdu, data);
    } catch (e) {
      if (e instanceof LoginFailure) this.fail(e.status, e.message, pdu);
      else throw e;
    }
  }

  private step(pdu: LoginRequestPdu, data: Uint8Array): void {
    const conn = this.conn;
    if (!this.started) {
      this.started = true;
      this.isid = pdu.isid;
      this.tsih = pdu.tsih;
      this.cid = pdu.cid;
      this.initialCmdSN = pdu.cmdSN;
      // §11.13.4: the first Login Response's StatSN starts the connection's numbering.
      conn.statSN = randomInt(0x7fffffff);
      conn.cid = pdu.cid;
      if (pdu.versionMin > 0) throw new LoginFailure(LoginStatus.UnsupportedVersion, `Version-min ${pdu.versionMin} > 0 (RFC 7143 §11.12.4)`);
      if (pdu.csg !== Stage.Security && pdu.csg !== Stage.Operational)
        throw new LoginFailure(LoginStatus.InitiatorError, `login starts in stage ${pdu.csg} (RFC 7143 §11.12.3)`);
      this.stage = pdu.csg;
    } else if (pdu.isid !== this.isid || pdu.tsih !== this.tsih || pdu.cid !== this.cid) {
      throw new LoginFailure(LoginStatus.InitiatorError, 'ISID/TSIH/CID changed during login (RFC 7143 §6.3)');
    }
    this.itt = pdu.itt;
    if (pdu.csg !== this.stage) throw new LoginFailure(LoginStatus.InitiatorError, `Login Request CSG ${pdu.csg} while in stage ${this.stage} (RFC 7143 §6.3)`);
    if (pdu.transit && pdu.cont) throw new LoginFailure(LoginStatus.InitiatorError, 'T and C both set (RFC 7143 §11.12.2)');
    if (pdu.transit && (pdu.nsg <= pdu.csg || pdu.nsg === 2))
      throw new LoginFailure(LoginStatus.InitiatorError, `bad transition ${pdu.csg}→${pdu.nsg} (RFC 7143 §11.12.3)`);
    if (data.length > LOGIN_MAX_DATA)
      throw new LoginFailure(LoginStatus.InitiatorError, `login data segment ${data.length} > ${LOGIN_MAX_DATA} (RFC 7143 §13.12)`);
    if (!this.acc.push(data)) throw new LoginFailure(LoginStatus.InitiatorError, `login text over ${LOGIN_TEXT_LIMIT} bytes`);
    if (pdu.cont) {
      // §11.12.2: more text follows; answer with an empty response and wait.
      this.respond([], false, 0);
      return;
    }
    let pairs: KeyValue[];
    try {
      pairs = decodeText(this.acc.take());
    } catch (e) {
      if (e instanceof TextFormatError) throw new LoginFailure(LoginStatus.InitiatorError, e.message);
      throw e;
    }
    const keys = new Map<string, string>();
    for (const [k, v] of pairs) {
      // §6.2: a key may not appear twice in one negotiation (initiator error).
      if (keys.has(k)) throw new LoginFailure(LoginStatus.InitiatorError, `key ${k} repeated (RFC 7143 §6.2)`);
      keys.set(k, v);
    }
    if (!this.neg) this.identify(keys);
    else this.checkRedeclared(keys);

    const reply: KeyValue[] = [];
    if (!this.tpgtSent && this.sessionType === 'Normal' && this.tpg) {
      // §13.9: the first Login Response of a normal session carries TargetPortalGroupTag.
      reply.push(['TargetPortalGroupTag', String(this.tpg.tpgt)]);
      if (this.tpg.alias) reply.push(['TargetAlias', this.tpg.alias]);
      this.tpgtSent = true;
    }

    if (this.stage === Stage.Security) {
      this.security(keys, reply);
    } else {
      for (const k of keys.keys()) {
        if (k === 'AuthMethod' || k.startsWith('CHAP_'))
          throw new LoginFailure(LoginStatus.InitiatorError, `${k} outside the security stage (RFC 7143 §6.3.1)`);
      }
    }
    const r = this.neg!.negotiate(pairs.filter(([k]) => k !== 'AuthMethod' && !k.startsWith('CHAP_')));
    if (r.error) throw new LoginFailure(LoginStatus.InitiatorError, `bad parameter: key ${r.error.key}: ${r.error.kind} (RFC 7143 §6.2)`);
    reply.push(...r.reply);

    let transit = false;
    let nsg = 0;
    if (pdu.transit) {
      if (this.stage === Stage.Security && this.authMethod === 'CHAP' && !this.authenticated) {
        transit = false; // §12.1.3: keep going until CHAP completes
      } else if (this.stage === Stage.Security && !this.authenticated && this.authRequired) {
        throw new LoginFailure(LoginStatus.AuthenticationFailure, 'no authentication agreed before leaving the security stage');
      } else {
        transit = true;
        nsg = pdu.nsg;
      }
    }
    if (this.stage === Stage.Operational || (transit && nsg === Stage.FullFeature)) {
      // Operational declarations belong to the operational stage (§6.3), not security.
      reply.push(...this.neg!.declarations());
    }
    if (this.stage === Stage.Operational) {
      const offers = this.neg!.offers();
      reply.push(...offers);
      // §6.2: we may not leave the stage with our own offers unanswered.
      if (this.neg!.awaitingAnswers) {
        transit = false;
        nsg = 0;
      }
    }
    if (transit && nsg === Stage.FullFeature) {
      this.finish(reply);
      return;
    }
    this.respond(reply, transit, nsg);
    if (transit) this.stage = nsg as Stage;
  }

  /** First PDU: who is logging in, to what, and what authentication that requires. */
  private identify(keys: Map<string, string>): void {
    const conn = this.conn;
    const target = conn.target;
    const iname = keys.get('InitiatorName');
    if (!iname) throw new LoginFailure(LoginStatus.MissingParameter, 'InitiatorName missing (RFC 7143 §13.5)');
    this.initiatorName = iname;
    this.initiatorAlias = keys.get('InitiatorAlias');
    // Bound once: every later line of this connection names who it is.
    conn.log = conn.log.child({ initiator: iname, isid: `0x${this.isid.toString(16).padStart(12, '0')}` });
    const st = keys.get('SessionType') ?? 'Normal';
    if (st !== 'Normal' && st !== 'Discovery') throw new LoginFailure(LoginStatus.SessionTypeNotSupported, `SessionType=${st} (RFC 7143 §13.21)`);
    this.sessionType = st;
    for (const k of ['InitiatorName', 'InitiatorAlias', 'SessionType', 'TargetName']) {
      const v = keys.get(k);
      if (v !== undefined) this.declared.set(k, v);
    }
    let prefs: TargetPreferences;
    if (st === 'Normal') {
      const tname = keys.get('TargetName');
      if (!tname) throw new LoginFailure(LoginStatus.MissingParameter, 'TargetName missing in a normal session (RFC 7143 §13.4)');
      this.targetName = tname;
      const tpg = target.findTpg(tname, conn.transport);
      if (!tpg) throw new LoginFailure(LoginStatus.NotFound, `target ${tname} not found (or not served on this portal)`);
      this.tpg = tpg;
      this.acl = tpg.acls.get(iname);
      if (!this.acl && !tpg.generateNodeAcls)
        throw new LoginFailure(
          LoginStatus.AuthorizationFailure,
          `initiator not allowed: ${iname} is not in the ACLs of ${tname} tpg ${tpg.tpgt} (add it to the TPG's acls, or set generateNodeAcls)`,
        );
      this.chapCreds = this.acl?.chap ?? tpg.chap;
      this.authRequired = tpg.authentication;
      this.chapMutualRequired = false;
      prefs = conn.transport.rdma ? tpg.rdmaPrefs : tpg.prefs;
    } else {
      const d = target.options.discoveryAuth;
      this.chapCreds = d?.chap;
      this.authRequired = !!d?.required;
      prefs = target.discoveryPrefs;
    }
    if (this.authRequired && !this.chapCreds)
      throw new LoginFailure(LoginStatus.AuthenticationFailure, 'authentication required but no CHAP credentials configured');
    this.authMethods = this.authRequired ? ['CHAP'] : this.chapCreds ? ['CHAP', 'None'] : ['None'];
    if (this.tsih !== 0) {
      const s = target.sessionByTsih(this.tsih);
      if (!s || s.key.initiatorName !== iname || s.key.isid !== this.isid || s.type !== st || (s.type === 'Normal' && s.key.targetName !== this.targetName)) {
        throw new LoginFailure(LoginStatus.SessionDoesNotExist, `TSIH ${this.tsih} names no session of this initiator (RFC 7143 §6.3.4)`);
      }
      if (s.connections.size >= s.params.maxConnections)
        throw new LoginFailure(
          LoginStatus.TooManyConnections,
          `session ${this.tsih} already has ${s.connections.size} connection(s) (MaxConnections=${s.params.maxConnections})`,
        );
      this.joining = s;
    }
    const p = { ...prefs };
    if (!conn.transport.digests) {
      p.headerDigest = ['None'];
      p.dataDigest = ['None'];
    }
    // RFC 7145 §6.2: RDMAExtensions=Yes only where the transport is iSER; TCP answers No.
    p.rdmaExtensions = conn.transport.rdma;
    const limit = conn.transport.recvDataSegmentLimit;
    if (limit) {
      p.targetRecvDataSegmentLength = Math.min(p.targetRecvDataSegmentLength === 8192 ? limit : p.targetRecvDataSegmentLength, limit);
      p.maxRecvDataSegmentLength = Math.min(p.maxRecvDataSegmentLength, limit);
    }
    this.neg = new Negotiator(p, st);
    // §6.3: with no authentication needed, starting in the operational stage is fine.
    if (this.stage === Stage.Operational) {
      if (this.authRequired) throw new LoginFailure(LoginStatus.AuthenticationFailure, 'authentication required; login skipped the security stage');
      this.authenticated = true;
    }
  }

  private checkRedeclared(keys: Map<string, string>): void {
    for (const k of ['InitiatorName', 'InitiatorAlias', 'SessionType', 'TargetName']) {
      const v = keys.get(k);
      if (v === undefined) continue;
      const was = this.declared.get(k);
      if (was !== undefined && was !== v) throw new LoginFailure(LoginStatus.InitiatorError, `${k} changed during login (RFC 7143 §6.2)`);
      this.declared.set(k, v);
    }
  }

  private security(keys: Map<string, string>, reply: KeyValue[]): void {
    const am = keys.get('AuthMethod');
    if (am !== undefined) {
      if (this.authMethod !== undefined) throw new LoginFailure(LoginStatus.InitiatorError, 'AuthMethod renegotiated (RFC 7143 §6.2)');
      const pick = am.split(',').find((m) => this.authMethods.includes(m));
      if (!pick) {
        // §12: no acceptable method; the target ends the login rather than answer Reject.
        throw new LoginFailure(LoginStatus.AuthenticationFailure, `AuthMethod=${am} not acceptable (need ${this.authMethods.join(',')})`);
      }
      this.authMethod = pick;
      reply.push(['AuthMethod', pick]);
      if (pick === 'None') this.authenticated = true;
      else this.chap = new ChapServer(this.chapCreds!, { requireMutual: this.chapMutualRequired });
    }
    const chapKeys = new Map([...keys].filter(([k]) => k.startsWith('CHAP_')));
    if (chapKeys.size) {
      if (!this.chap) throw new LoginFailure(LoginStatus.InitiatorError, 'CHAP keys without AuthMethod=CHAP');
      const r = this.chap.step(chapKeys);
      if (r.failure) {
        this.conn.target.counters.chapFailures = (this.conn.target.counters.chapFailures ?? 0) + 1;
        this.conn.target.initiators.count('chapFailures', this.initiatorName, this.acl !== undefined);
        throw new LoginFailure(
          LoginStatus.AuthenticationFailure,
          `CHAP authentication failed: ${r.failure} (check the initiator's CHAP user name and secret against the ACL's or TPG's)`,
        );
      }
      reply.push(...r.reply);
      if (r.done) this.authenticated = true;
    }
  }

  /** Final response: create or join the session and enter Full Feature Phase. */
  private finish(reply: KeyValue[]): void {
    const conn = this.conn;
    const target = conn.target;
    const params = this.neg!.result();
    if (!conn.transport.digests) {
      params.headerDigest = false;
      params.dataDigest = false;
    }
    // RFC 7145 §5.1: on an RDMA connection (InfiniBand/RoCE, no streaming mode to fall back
    // to) a normal session that did not agree RDMAExtensions=Yes cannot carry iSCSI at all.
    if (conn.transport.rdma && !params.rdmaExtensions && this.sessionType === 'Normal') {
      throw new LoginFailure(LoginStatus.MissingParameter, 'RDMAExtensions=Yes is required on an iSER connection (RFC 7145 §5.1)');
    }
    let session = this.joining;
    if (!session) {
      const key: SessionKey = { initiatorName: this.initiatorName, isid: this.isid, targetName: this.targetName, tpgt: this.tpg?.tpgt ?? 0 };
      // §6.3.5 session reinstatement: same initiator, ISID and target portal group, TSIH 0.
      const old = target.findSession(key, this.sessionType);
      if (old) {
        conn.log.info({ event: 'session-reinstatement', oldTsih: old.tsih }, `session reinstatement: ending session tsih ${old.tsih} of the same ISID`);
        old.close('reinstated by a new login with the same ISID (RFC 7143 §6.3.5)');
      }
      const tsih = target.allocTsih();
      if (tsih === 0) throw new LoginFailure(LoginStatus.OutOfResources, 'no free TSIH');
      let nexus: Nexus | undefined;
      const tpg = this.tpg;
      if (this.sessionType === 'Normal' && tpg) {
        const isidHex = this.isid.toString(16).padStart(12, '0');
        nexus = {
          initiatorPort: `${this.initiatorName},i,0x${isidHex}`,
          targetPort: `${tpg.iqn},t,0x${tpg.tpgt.toString(16).padStart(4, '0')}`,
          relativePortId: tpg.relativePortId,
          transportId: iscsiTransportId(this.initiatorName, isidHex),
          transport: transportIndex(conn.transport.kind),
          stats: new IoStats(),
        };
      }
      const core = this.acl?.core ?? tpg?.core;
      const window = this.sessionType === 'Normal' ? (tpg?.cmdWindow ?? 64) : DISCOVERY_WINDOW;
      const slog = target.log.child({
        transport: conn.transport.kind,
        initiator: this.initiatorName,
        isid: `0x${this.isid.toString(16).padStart(12, '0')}`,
        tsih,
        ...(this.sessionType === 'Normal' ? { target: this.targetName } : { sessionType: 'Discovery' }),
      });
      session = new IscsiSession(tsih, key, this.sessionType, params, tpg, nexus, core, window, this.initialCmdSN, slog, this.initiatorAlias);
      target.addSession(session);
    }
    this.tsih = session.tsih;
    this.done = true;
    conn.transport.loginComplete();
    this.respond(reply, true, Stage.FullFeature, session);
    target.counters.logins++;
    target.initiators.count('logins', this.initiatorName, true);
    conn.log = conn.log.child({ tsih: session.tsih, ...(this.sessionType === 'Normal' ? { target: this.targetName } : {}) });
    conn.log.info(
      { event: 'login', sessionType: this.sessionType, cid: this.cid, ...(session === this.joining ? { joined: true } : {}) },
      `login: ${this.initiatorName} → ${this.sessionType === 'Normal' ? this.targetName : 'discovery'}${session === this.joining ? ` (connection ${this.cid} joins the session)` : ''}`,
    );
    conn.enterFullFeature(
      session,
      session === this.joining
        ? {
            ...session.params,
            headerDigest: params.headerDigest,
            dataDigest: params.dataDigest,
            initiatorMaxRecvDataSegmentLength: params.initiatorMaxRecvDataSegmentLength,
          }
        : params,
    );
  }

  private respond(reply: KeyValue[], transit: boolean, nsg: number, session?: IscsiSession): void {
    const data = reply.length ? encodeText(reply) : undefined;
    const log = this.conn.log;
    if (log.isLevelEnabled('debug'))
      log.debug(`login response: ITT 0x${this.itt.toString(16)} CSG ${this.stage}${transit ? `→NSG ${nsg}` : ''}, status 0x0000`);
    const expCmdSN = session?.expCmdSN ?? this.joining?.expCmdSN ?? this.initialCmdSN;
    const maxCmdSN = session?.maxCmdSN ?? this.joining?.maxCmdSN ?? this.initialCmdSN;
    this.conn.sendPdu(
      encodeBhs<LoginResponsePdu>({
        opcode: Opcode.LoginResponse,
        itt: this.itt,
        dataLength: data?.length ?? 0,
        transit,
        cont: false,
        csg: this.stage,
        nsg: transit ? nsg : 0,
        versionMax: 0,
        versionActive: 0,
        isid: this.isid,
        tsih: transit && nsg === Stage.FullFeature ? this.tsih : this.joining ? this.tsih : 0,
        statSN: this.conn.nextStatSN(),
        expCmdSN,
        maxCmdSN,
        statusClass: 0,
        statusDetail: 0,
      }),
      data,
    );
  }

  /** Login Reject: status class/detail (§11.13.5), then close the connection. */
  fail(status: LoginStatus, why: string, pdu?: LoginRequestPdu): void {
    const conn = this.conn;
    this.done = true;
    conn.target.counters.loginFailures++;
    conn.target.initiators.count('loginFailures', this.initiatorName, this.acl !== undefined);
    // One line with all an operator needs: who, where from, on which portal, and why.
    const hex = `0x${status.toString(16).padStart(4, '0')}`;
    conn.log.warn(
      {
        event: 'login-failed',
        status: hex,
        statusName: LOGIN_STATUS_NAMES[status] ?? 'unknown',
        reason: why,
        ...(this.initiatorName ? {} : { initiator: null }),
        ...(this.targetName ? { target: this.targetName } : {}),
      },
      `login failed: ${this.initiatorName || '(no InitiatorName)'} from ${conn.transport.kind} ${hostPort(conn.transport.remoteAddress, conn.transport.remotePort)} on portal ${hostPort(conn.transport.localAddress, conn.transport.localPort)}${this.targetName ? ` to ${this.targetName}` : ''}: ${why} [${LOGIN_STATUS_NAMES[status] ?? hex}]`,
    );
    if (conn.log.isLevelEnabled('debug')) conn.log.debug(`login response: ITT 0x${(pdu?.itt ?? this.itt).toString(16)} CSG ${this.stage}, status ${hex}`);
    conn.sendPdu(
      encodeBhs<LoginResponsePdu>({
        opcode: Opcode.LoginResponse,
        itt: pdu?.itt ?? this.itt,
        transit: false,
        cont: false,
        csg: this.stage,
        nsg: 0,
        versionMax: 0,
        versionActive: 0,
        isid: pdu?.isid ?? this.isid,
        tsih: pdu?.tsih ?? this.tsih,
        statSN: conn.nextStatSN(),
        expCmdSN: this.initialCmdSN,
        maxCmdSN: this.initialCmdSN,
        statusClass: status >> 8,
        statusDetail: status & 0xff,
      }),
    );
    conn.close(`login failed: ${why}`);
  }
}
