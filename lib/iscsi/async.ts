// Async Message (RFC 7143 §11.9): the target asks the initiator to log out (event 1,
// Parameter3 = seconds it has to do so) or announces it will drop the connection (event 2)
// or all connections of the session (event 3). Advances StatSN.

import type { ConnectionContext } from './context.js';
import { AsyncEvent, Opcode, RESERVED_TAG } from './opcodes.js';
import { encodeBhs, type AsyncPdu } from './pdu.js';

export function sendAsync(conn: ConnectionContext, event: AsyncEvent, p: { param1?: number; param2?: number; param3?: number } = {}): void {
  const s = conn.session;
  if (!s || conn.phase !== 'full-feature') return;
  conn.sendPdu(
    encodeBhs<AsyncPdu>({
      opcode: Opcode.AsyncMessage,
      itt: RESERVED_TAG,
      lun: 0n,
      statSN: conn.nextStatSN(),
      expCmdSN: s.expCmdSN,
      maxCmdSN: s.maxCmdSN,
      event,
      vcode: 0,
      param1: p.param1 ?? 0,
      param2: p.param2 ?? 0,
      param3: p.param3 ?? 0,
    }),
  );
}

/** Event 1: "please log out within `seconds`" (Parameter3, §11.9.1). */
export function requestLogout(conn: ConnectionContext, seconds: number): void {
  sendAsync(conn, AsyncEvent.LogoutRequest, { param3: Math.max(0, Math.min(0xffff, Math.ceil(seconds))) });
}

/** Event 2: this connection will be dropped (Parameter1 = CID, 2 = Time2Wait, 3 = Time2Retain). */
export function announceDrop(conn: ConnectionContext, time2Wait = 0, time2Retain = 0): void {
  sendAsync(conn, AsyncEvent.ConnectionDrop, { param1: conn.cid, param2: time2Wait, param3: time2Retain });
}

/** Event 3: all connections of the session will be dropped. */
export function announceSessionDrop(conn: ConnectionContext, time2Wait = 0, time2Retain = 0): void {
  sendAsync(conn, AsyncEvent.SessionDrop, { param2: time2Wait, param3: time2Retain });
}
