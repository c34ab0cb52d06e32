// Text Request / Response in Full Feature Phase (RFC 7143 §11.10, §11.11, §6.1):
// SendTargets, and declarations such as MaxRecvDataSegmentLength. Requests spanning PDUs
// (C bit) are accumulated up to a bound; responses longer than the initiator's
// MaxRecvDataSegmentLength go out in pieces, each continued by an empty request carrying
// the Target Transfer Tag we gave (§11.11.4).

import type { ConnectionContext, TextExchangeState } from './context.js';
import { Opcode, RESERVED_TAG, RejectReason } from './opcodes.js';
import { KEY_TABLE, parseNumber } from './params.js';
import { encodeBhs, type TextRequestPdu, type TextResponsePdu } from './pdu.js';
import { sendReject } from './reject.js';
import { sendTargetsReply } from './discovery.js';
import { decodeText, encodeText, TextAccumulator, type KeyValue } from './text.js';

/** Bound on one text exchange's request text ("oversize text" is refused, §6.1). */
export const TEXT_REQUEST_LIMIT = 65536;

export class TextExchange implements TextExchangeState {
  readonly acc = new TextAccumulator(TEXT_REQUEST_LIMIT);
  pending: { itt: number; ttt: number; rest: Uint8Array } | undefined;
}

export function handleTextRequest(conn: ConnectionContext, pdu: TextRequestPdu, data: Uint8Array, bhs: Uint8Array): void {
  const s = conn.session!;
  const copy = data.length ? Uint8Array.from(data) : data;
  const header = Uint8Array.from(bhs);
  s.order(pdu.cmdSN, pdu.immediate, () => process(conn, pdu, copy, header));
}

function process(conn: ConnectionContext, pdu: TextRequestPdu, data: Uint8Array, bhs: Uint8Array): void {
  const ex = conn.text;
  if (pdu.ttt !== RESERVED_TAG) {
    if (ex.pending && ex.pending.ttt === pdu.ttt && ex.pending.itt === pdu.itt) return sendPiece(conn, pdu.itt, ex.pending.rest);
    if (ex.acc.size > 0 && data.length >= 0 && !ex.pending) {
      /* continuation of a C-bit request */
    } else {
      ex.acc.take();
      return sendReject(conn, RejectReason.InvalidPduField, bhs); // §11.10.4: TTT names nothing we sent
    }
  } else if (ex.pending) {
    ex.pending = undefined; // §11.10.4: a new request (TTT 0xffffffff) resets the exchange
  }
  if (!ex.acc.push(data)) {
    ex.acc.take();
    return sendReject(conn, RejectReason.ProtocolError, bhs);
  }
  if (pdu.cont) {
    // §11.10.2: more request text follows; answer empty, not final.
    const ttt = conn.allocTtt();
    return respond(conn, pdu.itt, undefined, false, false, ttt);
  }
  let pairs: KeyValue[];
  try {
    pairs = decodeText(ex.acc.take());
  } catch {
    return sendReject(conn, RejectReason.ProtocolError, bhs);
  }
  const seen = new Set<string>();
  for (const [k] of pairs) {
    if (seen.has(k)) return sendReject(conn, RejectReason.ProtocolError, bhs); // §6.2: one key once
    seen.add(k);
  }
  const reply: KeyValue[] = [];
  for (const [k, v] of pairs) {
    if (k === 'SendTargets') {
      reply.push(...sendTargetsReply(conn, v));
      continue;
    }
    const def = KEY_TABLE.get(k);
    if (!def) {
      reply.push([k, 'NotUnderstood']);
      continue;
    }
    if (k === 'MaxRecvDataSegmentLength') {
      // Declarative and allowed in FFP (§13.12): the initiator changes what it accepts.
      const n = parseNumber(v);
      if (n === undefined || n < 512 || n > 16777215) reply.push([k, 'Reject']);
      else conn.params.initiatorMaxRecvDataSegmentLength = n;
      continue;
    }
    if (def.use === 'ALL' || def.use === 'FFPO') continue; // declarations: no answer
    reply.push([k, 'Reject']); // IO/LO keys cannot be renegotiated in FFP (§13)
  }
  sendPiece(conn, pdu.itt, encodeText(reply));
}

function sendPiece(conn: ConnectionContext, itt: number, text: Uint8Array): void {
  const max = conn.params.initiatorMaxRecvDataSegmentLength;
  if (text.length <= max) {
    conn.text.pending = undefined;
    return respond(conn, itt, text, true, false, RESERVED_TAG);
  }
  const ttt = conn.allocTtt();
  conn.text.pending = { itt, ttt, rest: text.subarray(max) };
  respond(conn, itt, text.subarray(0, max), false, true, ttt);
}

function respond(conn: ConnectionContext, itt: number, data: Uint8Array | undefined, final: boolean, cont: boolean, ttt: number): void {
  const s = conn.session!;
  conn.sendPdu(
    encodeBhs<TextResponsePdu>({
      opcode: Opcode.TextResponse,
      itt,
      dataLength: data?.length ?? 0,
      final,
      cont,
      lun: 0n,
      ttt,
      statSN: conn.nextStatSN(),
      expCmdSN: s.expCmdSN,
      maxCmdSN: s.maxCmdSN,
    }),
    data?.length ? data : undefined,
  );
}
