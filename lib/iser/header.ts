// The iSER header (RFC 7145 §9.2) and the RDMA/CM private data (RFC 7145 §9.1 as the Linux
// initiator and target use it, include/scsi/iser.h).
//
// Every iSER message starts with a 28-byte header; for an iSCSI control-type PDU the BHS
// follows at byte 28:
//
//   byte 0     flags: high nibble opcode (1 = iSCSI control-type, 2 = Hello, 3 = HelloReply),
//              0x08 WSV (write STag valid), 0x04 RSV (read STag valid)
//   bytes 1-3  reserved
//   4..7       write STag      8..15  write base offset (VA of the initiator's buffer)
//   16..19     read STag       20..27 read base offset
//
// All big-endian. Base offsets are 64-bit addresses the initiator chose — a kernel
// initiator's are kernel virtual addresses (0xffff8880…), beyond what a Number holds exactly —
// so they are kept as two 32-bit halves. Decoding writes into a caller-owned object so the
// receive path allocates nothing; it never throws (callers check `opcode`).

import { put32, u32 } from '../common/bytes.js';

export const ISER_HEADER_LENGTH = 28;

export const enum IserOpcode {
  Control = 0x1,
  Hello = 0x2,
  HelloReply = 0x3,
}

export const ISER_WSV = 0x08;
export const ISER_RSV = 0x04;

/** iser_cm_hdr flags in the connect request (initiator → target). */
export const ISER_ZBVA_NOT_SUP = 0x80;
export const ISER_SEND_W_INV_NOT_SUP = 0x40;
/** iser_cm_hdr flags in the accept (target → initiator): we use offsets, not zero-based VAs. */
export const ISERT_ZBVA_NOT_USED = 0x80;
export const ISER_CM_HDR_LENGTH = 4;

export interface IserHeader {
  opcode: number;
  wsv: boolean;
  rsv: boolean;
  writeStag: number;
  /** Write base offset (the initiator's address), high and low 32 bits. */
  writeVaHi: number;
  writeVaLo: number;
  readStag: number;
  readVaHi: number;
  readVaLo: number;
}

export function emptyIserHeader(): IserHeader {
  return { opcode: 0, wsv: false, rsv: false, writeStag: 0, writeVaHi: 0, writeVaLo: 0, readStag: 0, readVaHi: 0, readVaLo: 0 };
}

/** Decodes the 28 bytes at `at` of `b` into `into` (which it returns). */
export function decodeIserHeader(b: Uint8Array, at = 0, into: IserHeader = emptyIserHeader()): IserHeader {
  const f = b[at];
  into.opcode = f >> 4;
  into.wsv = (f & ISER_WSV) !== 0;
  into.rsv = (f & ISER_RSV) !== 0;
  into.writeStag = u32(b, at + 4);
  into.writeVaHi = u32(b, at + 8);
  into.writeVaLo = u32(b, at + 12);
  into.readStag = u32(b, at + 16);
  into.readVaHi = u32(b, at + 20);
  into.readVaLo = u32(b, at + 24);
  return into;
}

/** Writes an iSER header at `at` of `b` (reserved bytes zeroed). */
export function encodeIserHeader(h: Partial<IserHeader> & { opcode: number }, b: Uint8Array, at = 0): void {
  b[at] = (h.opcode << 4) | (h.wsv ? ISER_WSV : 0) | (h.rsv ? ISER_RSV : 0);
  b[at + 1] = 0;
  b[at + 2] = 0;
  b[at + 3] = 0;
  put32(b, at + 4, h.writeStag ?? 0);
  put32(b, at + 8, h.writeVaHi ?? 0);
  put32(b, at + 12, h.writeVaLo ?? 0);
  put32(b, at + 16, h.readStag ?? 0);
  put32(b, at + 20, h.readVaHi ?? 0);
  put32(b, at + 24, h.readVaLo ?? 0);
}

export interface IserCmHeader {
  /** The initiator cannot use zero-based virtual addresses (ISER_ZBVA_NOT_SUP). */
  zbvaNotSupported: boolean;
  /** The initiator cannot take SEND with invalidate (ISER_SEND_W_INV_NOT_SUP). */
  sendWithInvNotSupported: boolean;
}

/**
 * The initiator's iser_cm_hdr from the connect request's private data. Missing or short
 * private data (an initiator that sends none) reads as "everything supported" except
 * remote invalidation, which must be offered to be used: invalidating a key the initiator
 * did not expect to lose would break its next I/O.
 */
export function parseCmHeader(privateData: Uint8Array | undefined): IserCmHeader {
  if (!privateData || privateData.length < ISER_CM_HDR_LENGTH) return { zbvaNotSupported: true, sendWithInvNotSupported: true };
  const f = privateData[0];
  return { zbvaNotSupported: (f & ISER_ZBVA_NOT_SUP) !== 0, sendWithInvNotSupported: (f & ISER_SEND_W_INV_NOT_SUP) !== 0 };
}

/** The target's iser_cm_hdr for the accept: ZBVA not used (base offsets are VAs). */
export function acceptCmHeader(): Buffer {
  const b = Buffer.alloc(ISER_CM_HDR_LENGTH);
  b[0] = ISERT_ZBVA_NOT_USED;
  return b;
}
