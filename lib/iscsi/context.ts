// The connection as its PDU handlers see it (login, logout, NOP, TMF, text, discovery,
// reject, async): send a PDU, the StatSN/TTT numbering, the session and its command window,
// the log and counters, and the ways to end the connection. The handlers import this file
// and not connection.ts, so they can be driven without a transport or a socket (LIO's
// iscsit_conn plays the part; tgt's iscsi_connection). Types only.

import type { InitiatorCounters } from '../common/initiators.js';
import type { ChapCredentials } from './chap.js';
import type { Logger } from '../common/log.js';
import type { OperationalParams, TargetPreferences } from './params.js';
import type { IscsiSession, SessionConnection, SessionKey, SessionType } from './session.js';
import type { TextAccumulator } from './text.js';
import type { TpgEntry } from './tpg.js';

export type ConnectionPhase = 'login' | 'full-feature' | 'logout' | 'closed';

export interface ConnectionCounters {
  pdusIn: number;
  pdusOut: number;
  commands: number;
  rejects: number;
  digestErrors: number;
}

export interface TargetCounters {
  connections: number;
  logins: number;
  loginFailures: number;
  logouts: number;
  commands: number;
  [k: string]: number;
}

/** A text exchange in Full Feature Phase (RFC 7143 §11.10): request text so far, response text still to send. */
export interface TextExchangeState {
  readonly acc: TextAccumulator;
  /** Response text still to send, and the TTT that continues it. */
  pending: { itt: number; ttt: number; rest: Uint8Array } | undefined;
}

/** What a connection and its login need of the target: its portal groups, session table and counters. */
export interface TargetContext {
  readonly log: Logger;
  readonly options: {
    readonly nopInterval: number;
    readonly nopTimeout: number;
    readonly loginTimeout: number;
    readonly discoveryAuth?: { chap?: ChapCredentials; required?: boolean };
  };
  readonly counters: TargetCounters;
  /** Logins, logouts and failures per initiator (lib/common/initiators.ts). */
  readonly initiators: InitiatorCounters;
  readonly tpgs: readonly TpgEntry[];
  readonly discoveryPrefs: TargetPreferences;
  /** The enabled TPG of `iqn` that serves the portal a connection arrived on. */
  findTpg(iqn: string, local: { readonly localAddress: string; readonly localPort: number }): TpgEntry | undefined;
  sessionByTsih(tsih: number): IscsiSession | undefined;
  findSession(key: SessionKey, type: SessionType): IscsiSession | undefined;
  /** A free TSIH, 0 when none is left. */
  allocTsih(): number;
  addSession(s: IscsiSession): void;
  /** The session's last connection is gone (ERL 0): the session ends. */
  sessionEnded(s: IscsiSession, reason: string): void;
  connectionEnded(c: ConnectionContext): void;
  /** Drop every session of a portal group (TARGET COLD RESET), or of all with undefined. */
  resetSessionsOf(tpg: TpgEntry | undefined, reason: string): void;
}

export interface ConnectionContext extends SessionConnection {
  readonly phase: ConnectionPhase;
  /** Set when the login completes (enterFullFeature). */
  readonly session: IscsiSession | undefined;
  /** Set by the first Login Request (RFC 7143 §11.12.7). */
  cid: number;
  /** Next StatSN to send (§4.2.2.2); the login sets the first one (§11.13.4). */
  statSN: number;
  readonly target: TargetContext;
  /** The connection's logger (transport, addresses); the login rebinds it with the initiator and session. */
  log: Logger;
  readonly counters: ConnectionCounters;
  /** "tcp 10.0.0.2:40000", for log lines. */
  readonly describe: string;
  /** The keep-alive: a NOP-Out answered the NOP-In with this TTT (§11.18). */
  readonly nop: { answered(ttt: number): void };
  readonly text: TextExchangeState;

  /**
   * Queue a PDU (a BHS from encodeBhs, the data segment as views). Returns the transport's
   * backpressure promise, if any; undefined once the connection is closed.
   */
  sendPdu(bhs: Uint8Array, data?: Uint8Array | readonly Uint8Array[], ahs?: Uint8Array): Promise<void> | undefined;
  /** The StatSN for a response that advances it (§4.2.2.2). */
  nextStatSN(): number;
  /** A fresh Target Transfer Tag (never 0xffffffff). */
  allocTtt(): number;
  /** Login done: Full Feature Phase with these values. */
  enterFullFeature(session: IscsiSession, params: OperationalParams): void;
  /** Graceful close: flush what is queued, then close. */
  close(reason: string): void;
}
