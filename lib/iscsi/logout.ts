// Logout Request / Response (RFC 7143 §11.14, §11.15). At ERL 0: close the session or
// this connection; "remove the connection for recovery" needs ERL 2 (response 2).
// Outstanding commands on the connection finish (bounded wait) before the response,
// so the initiator gets their status first.

import type { ConnectionContext } from './context.js';
import { LogoutReason, LogoutResponseCode, Opcode } from './opcodes.js';
import { encodeBhs, type LogoutRequestPdu, type LogoutResponsePdu } from './pdu.js';

const LOGOUT_TASK_WAIT_MS = 10_000;

export function handleLogout(conn: ConnectionContext, pdu: LogoutRequestPdu): void {
  const s = conn.session!;
  s.order(pdu.cmdSN, pdu.immediate, () => {
    void (async () => {
      let code = LogoutResponseCode.Success;
      let closeWhat: 'session' | 'connection' | 'none' = 'none';
      if (pdu.reason === LogoutReason.CloseSession) closeWhat = 'session';
      else if (pdu.reason === LogoutReason.CloseConnection) {
        if (pdu.cid === conn.cid) closeWhat = 'connection';
        else {
          const other = [...s.connections].find((c) => c.cid === pdu.cid);
          if (other) {
            other.drop(`logout of CID ${pdu.cid} from another connection`);
          } else code = LogoutResponseCode.CidNotFound;
        }
      } else code = LogoutResponseCode.RecoveryNotSupported;
      if (closeWhat === 'session') await Promise.all([...s.connections].map((c) => c.whenIdle(LOGOUT_TASK_WAIT_MS)));
      else if (closeWhat === 'connection') await conn.whenIdle(LOGOUT_TASK_WAIT_MS);
      if (conn.phase === 'closed') return;
      const w = conn.sendPdu(
        encodeBhs<LogoutResponsePdu>({
          opcode: Opcode.LogoutResponse,
          itt: pdu.itt,
          response: code,
          statSN: conn.nextStatSN(),
          expCmdSN: s.expCmdSN,
          maxCmdSN: s.maxCmdSN,
          time2Wait: 0,
          time2Retain: 0,
        }),
      );
      if (closeWhat === 'none') return;
      if (w) await w.catch(() => undefined);
      if (closeWhat === 'session') {
        for (const c of [...s.connections]) if (c !== conn) c.drop('session logged out');
      }
      conn.target.counters.logouts++;
      conn.target.initiators.count('logouts', s.key.initiatorName, true);
      conn.log.info(
        { event: 'logout', scope: closeWhat, cid: conn.cid },
        `logout: ${closeWhat === 'session' ? 'session' : `connection ${conn.cid}`} closed at the initiator's request`,
      );
      conn.close('logout');
    })().catch((e: Error) => conn.drop(`logout failed: ${e.message}`));
  });
}
