// Reject PDU (RFC 7143 §11.17): the data segment is the complete header of the PDU being
// rejected; ITT is 0xffffffff; StatSN advances (§11.17.3).

import type { ConnectionContext } from './context.js';
import { BHS_LENGTH, Opcode, RESERVED_TAG, type RejectReason } from './opcodes.js';
import { encodeBhs, type RejectPdu } from './pdu.js';

export function sendReject(conn: ConnectionContext, reason: RejectReason, badBhs: Uint8Array): void {
  const header = Uint8Array.from(badBhs.subarray(0, BHS_LENGTH));
  const s = conn.session;
  conn.counters.rejects++;
  if (conn.log.isLevelEnabled('debug')) conn.log.debug(`reject reason 0x${reason.toString(16)} for opcode 0x${(header[0] & 0x3f).toString(16)}`);
  conn.sendPdu(
    encodeBhs<RejectPdu>({
      opcode: Opcode.Reject,
      itt: RESERVED_TAG,
      dataLength: header.length,
      reason,
      statSN: conn.nextStatSN(),
      expCmdSN: s?.expCmdSN ?? 0,
      maxCmdSN: s?.maxCmdSN ?? 0,
      dataSN: 0,
    }),
    header,
  );
}
