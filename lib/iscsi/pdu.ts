// Basic Header Segment codec (RFC 7143 §11). One decoded object per opcode; the data
// segment and AHS stay as views into whatever the transport received (zero copy).
//
// decodeBhs never throws on any 48 bytes: reserved bits are ignored (§11.2: "reserved
// fields ... MUST be ignored on receipt"), unknown opcodes decode as `Unknown` so the
// connection can answer them with Reject.

import { bigU64, put16, put24, put32, put48, putBigU64, u16, u24, u32, u48 } from '../common/bytes.js';
import { AhsType, BHS_LENGTH, IMMEDIATE_BIT, Opcode } from './opcodes.js';

interface Common {
  immediate: boolean;
  /** TotalAHSLength in 4-byte words (§11.2.1.4). */
  ahsWords: number;
  /** DataSegmentLength in bytes, without padding (§11.2.1.5). */
  dataLength: number;
  itt: number;
}

export interface NopOutPdu extends Common {
  opcode: Opcode.NopOut;
  lun: bigint;
  ttt: number;
  cmdSN: number;
  expStatSN: number;
}
export interface ScsiCommandPdu extends Common {
  opcode: Opcode.ScsiCommand;
  final: boolean;
  read: boolean;
  write: boolean;
  attr: number;
  lun: bigint;
  edtl: number;
  cmdSN: number;
  expStatSN: number;
  /** 16-byte CDB field (view). */
  cdb: Uint8Array;
}
export interface TmfRequestPdu extends Common {
  opcode: Opcode.TaskMgmtRequest;
  fn: number;
  lun: bigint;
  rtt: number;
  cmdSN: number;
  expStatSN: number;
  refCmdSN: number;
  expDataSN: number;
}
export interface LoginRequestPdu extends Common {
  opcode: Opcode.LoginRequest;
  transit: boolean;
  cont: boolean;
  csg: number;
  nsg: number;
  versionMax: number;
  versionMin: number;
  isid: number;
  tsih: number;
  cid: number;
  cmdSN: number;
  expStatSN: number;
}
export interface TextRequestPdu extends Common {
  opcode: Opcode.TextRequest;
  final: boolean;
  cont: boolean;
  lun: bigint;
  ttt: number;
  cmdSN: number;
  expStatSN: number;
}
export interface DataOutPdu extends Common {
  opcode: Opcode.DataOut;
  final: boolean;
  lun: bigint;
  ttt: number;
  expStatSN: number;
  dataSN: number;
  bufferOffset: number;
}
export interface LogoutRequestPdu extends Common {
  opcode: Opcode.LogoutRequest;
  reason: number;
  cid: number;
  cmdSN: number;
  expStatSN: number;
}
export interface SnackPdu extends Common {
  opcode: Opcode.SnackRequest;
  type: number;
  lun: bigint;
  ttt: number;
  expStatSN: number;
  begRun: number;
  runLength: number;
}
export interface NopInPdu extends Common {
  opcode: Opcode.NopIn;
  lun: bigint;
  ttt: number;
  statSN: number;
  expCmdSN: number;
  maxCmdSN: number;
}
export interface ScsiResponsePdu extends Common {
  opcode: Opcode.ScsiResponse;
  bidiOverflow: boolean;
  bidiUnderflow: boolean;
  overflow: boolean;
  underflow: boolean;
  response: number;
  status: number;
  snackTag: number;
  statSN: number;
  expCmdSN: number;
  maxCmdSN: number;
  expDataSN: number;
  bidiResidual: number;
  residual: number;
}
export interface TmfResponsePdu extends Common {
  opcode: Opcode.TaskMgmtResponse;
  response: number;
  statSN: number;
  expCmdSN: number;
  maxCmdSN: number;
}
export interface LoginResponsePdu extends Common {
  opcode: Opcode.LoginResponse;
  transit: boolean;
  cont: boolean;
  csg: number;
  nsg: number;
  versionMax: number;
  versionActive: number;
  isid: number;
  tsih: number;
  statSN: number;
  expCmdSN: number;
  maxCmdSN: number;
  statusClass: number;
  statusDetail: number;
}
export interface TextResponsePdu extends Common {
  opcode: Opcode.TextResponse;
  final: boolean;
  cont: boolean;
  lun: bigint;
  ttt: number;
  statSN: number;
  expCmdSN: number;
  maxCmdSN: number;
}
export interface DataInPdu extends Common {
  opcode: Opcode.DataIn;
  final: boolean;
  ack: boolean;
  overflow: boolean;
  underflow: boolean;
  hasStatus: boolean;
  status: number;
  lun: bigint;
  ttt: number;
  statSN: number;
  expCmdSN: number;
  maxCmdSN: number;
  dataSN: number;
  bufferOffset: number;
  residual: number;
}
export interface LogoutResponsePdu extends Common {
  opcode: Opcode.LogoutResponse;
  response: number;
  statSN: number;
  expCmdSN: number;
  maxCmdSN: number;
  time2Wait: number;
  time2Retain: number;
}
export interface R2TPdu extends Common {
  opcode: Opcode.R2T;
  lun: bigint;
  ttt: number;
  statSN: number;
  expCmdSN: number;
  maxCmdSN: number;
  r2tSN: number;
  bufferOffset: number;
  desiredLength: number;
}
export interface AsyncPdu extends Common {
  opcode: Opcode.AsyncMessage;
  lun: bigint;
  statSN: number;
  expCmdSN: number;
  maxCmdSN: number;
  event: number;
  vcode: number;
  param1: number;
  param2: number;
  param3: number;
}
export interface RejectPdu extends Common {
  opcode: Opcode.Reject;
  reason: number;
  statSN: number;
  expCmdSN: number;
  maxCmdSN: number;
  dataSN: number;
}
export interface UnknownPdu extends Common {
  opcode: -1;
  rawOpcode: number;
}

export type Pdu =
  | NopOutPdu
  | ScsiCommandPdu
  | TmfRequestPdu
  | LoginRequestPdu
  | TextRequestPdu
  | DataOutPdu
  | LogoutRequestPdu
  | SnackPdu
  | NopInPdu
  | ScsiResponsePdu
  | TmfResponsePdu
  | LoginResponsePdu
  | TextResponsePdu
  | DataInPdu
  | LogoutResponsePdu
  | R2TPdu
  | AsyncPdu
  | RejectPdu
  | UnknownPdu;

/** Fields every encoder fills in if the caller leaves them out. */
type Defaults = 'immediate' | 'ahsWords' | 'dataLength';
export type PduInit<T extends Pdu> = T extends Pdu ? Omit<T, Defaults> & Partial<Pick<T, Defaults>> : never;

/** A PDU as received: header views and the data segment (padding and digests stripped). */
export interface RxPdu {
  bhs: Uint8Array;
  ahs: Uint8Array;
  data: Uint8Array;
}

/** LUN fields of the common single-level form (only the first two bytes set), decoded once each. */
const SHORT_U64: bigint[] = [];
function lun(b: Uint8Array, o: number): bigint {
  // Every PDU carries a LUN field; BigInt arithmetic per PDU is a measurable cost where the
  // CPU is emulated (the test VM), so the usual 2-byte form comes from a table.
  if (b[o + 2] === 0 && b[o + 3] === 0 && u32(b, o + 4) === 0) {
    const k = (b[o] << 8) | b[o + 1];
    return (SHORT_U64[k] ??= BigInt(k) << 48n);
  }
  return bigU64(b, o);
}

/** The opcode byte's low 6 bits. */
export function bhsOpcode(bhs: Uint8Array): number {
  return bhs[0] & 0x3f;
}
export function bhsAhsLength(bhs: Uint8Array): number {
  return bhs[4] * 4;
}
export function bhsDataLength(bhs: Uint8Array): number {
  return u24(bhs, 5);
}
export function bhsItt(bhs: Uint8Array): number {
  return u32(bhs, 16);
}

/**
 * Decode a SCSI Command BHS (§11.3) into `out`, the receiver's one scratch object: the
 * command path reads it synchronously and keeps nothing of it, so no object per command.
 * Same fields as decodeBhs gives, except that the CDB is copied into `out.cdb`, which must
 * be 16 bytes of the scratch object's own (no view per command either).
 */
export function decodeScsiCommandInto(b: Uint8Array, out: ScsiCommandPdu): ScsiCommandPdu {
  const f1 = b[1];
  out.immediate = (b[0] & IMMEDIATE_BIT) !== 0;
  out.ahsWords = b[4];
  out.dataLength = u24(b, 5);
  out.itt = u32(b, 16);
  out.final = (f1 & 0x80) !== 0;
  out.read = (f1 & 0x40) !== 0;
  out.write = (f1 & 0x20) !== 0;
  out.attr = f1 & 0x07;
  out.lun = lun(b, 8);
  out.edtl = u32(b, 20);
  out.cmdSN = u32(b, 24);
  out.expStatSN = u32(b, 28);
  const cdb = out.cdb;
  for (let i = 0; i < 16; i++) cdb[i] = b[32 + i];
  return out;
}

/** Decode the 48-byte BHS. `bhs` must be at least 48 bytes; the CDB is a view. */
export function decodeBhs(b: Uint8Array): Pdu {
  if (b.length < BHS_LENGTH) throw new RangeError(`BHS is ${BHS_LENGTH} bytes (RFC 7143 §11.2), got ${b.length}`);
  const op = b[0] & 0x3f;
  const f1 = b[1];
  // The common fields go into each literal by name: `{ ...common, more }` is a slow path in
  // V8 (about 2 µs a PDU natively, a hundred times that where the CPU is emulated).
  const immediate = (b[0] & IMMEDIATE_BIT) !== 0;
  const ahsWords = b[4];
  const dataLength = u24(b, 5);
  const itt = u32(b, 16);
  switch (op) {
    case Opcode.NopOut:
      return { immediate, ahsWords, dataLength, itt, opcode: op, lun: lun(b, 8), ttt: u32(b, 20), cmdSN: u32(b, 24), expStatSN: u32(b, 28) };
    case Opcode.ScsiCommand:
      return {
        immediate,
        ahsWords,
        dataLength,
        itt,
        opcode: op,
        final: (f1 & 0x80) !== 0,
        read: (f1 & 0x40) !== 0,
        write: (f1 & 0x20) !== 0,
        attr: f1 & 0x07,
        lun: lun(b, 8),
        edtl: u32(b, 20),
        cmdSN: u32(b, 24),
        expStatSN: u32(b, 28),
        cdb: b.subarray(32, 48),
      };
    case Opcode.TaskMgmtRequest:
      return {
        immediate,
        ahsWords,
        dataLength,
        itt,
        opcode: op,
        fn: f1 & 0x7f,
        lun: lun(b, 8),
        rtt: u32(b, 20),
        cmdSN: u32(b, 24),
        expStatSN: u32(b, 28),
        refCmdSN: u32(b, 32),
        expDataSN: u32(b, 36),
      };
    case Opcode.LoginRequest:
      return {
        immediate,
        ahsWords,
        dataLength,
        itt,
        opcode: op,
        transit: (f1 & 0x80) !== 0,
        cont: (f1 & 0x40) !== 0,
        csg: (f1 >> 2) & 3,
        nsg: f1 & 3,
        versionMax: b[2],
        versionMin: b[3],
        isid: u48(b, 8),
        tsih: u16(b, 14),
        cid: u16(b, 20),
        cmdSN: u32(b, 24),
        expStatSN: u32(b, 28),
      };
    case Opcode.TextRequest:
      return {
        immediate,
        ahsWords,
        dataLength,
        itt,
        opcode: op,
        final: (f1 & 0x80) !== 0,
        cont: (f1 & 0x40) !== 0,
        lun: lun(b, 8),
        ttt: u32(b, 20),
        cmdSN: u32(b, 24),
        expStatSN: u32(b, 28),
      };
    case Opcode.DataOut:
      return {
        immediate,
        ahsWords,
        dataLength,
        itt,
        opcode: op,
        final: (f1 & 0x80) !== 0,
        lun: lun(b, 8),
        ttt: u32(b, 20),
        expStatSN: u32(b, 28),
        dataSN: u32(b, 36),
        bufferOffset: u32(b, 40),
      };
    case Opcode.LogoutRequest:
      return { immediate, ahsWords, dataLength, itt, opcode: op, reason: f1 & 0x7f, cid: u16(b, 20), cmdSN: u32(b, 24), expStatSN: u32(b, 28) };
    case Opcode.SnackRequest:
      return {
        immediate,
        ahsWords,
        dataLength,
        itt,
        opcode: op,
        type: f1 & 0x0f,
        lun: lun(b, 8),
        ttt: u32(b, 20),
        expStatSN: u32(b, 28),
        begRun: u32(b, 40),
        runLength: u32(b, 44),
      };
    case Opcode.NopIn:
      return {
        immediate,
        ahsWords,
        dataLength,
        itt,
        opcode: op,
        lun: lun(b, 8),
        ttt: u32(b, 20),
        statSN: u32(b, 24),
        expCmdSN: u32(b, 28),
        maxCmdSN: u32(b, 32),
      };
    case Opcode.ScsiResponse:
      return {
        immediate,
        ahsWords,
        dataLength,
        itt,
        opcode: op,
        bidiOverflow: (f1 & 0x10) !== 0,
        bidiUnderflow: (f1 & 0x08) !== 0,
        overflow: (f1 & 0x04) !== 0,
        underflow: (f1 & 0x02) !== 0,
        response: b[2],
        status: b[3],
        snackTag: u32(b, 20),
        statSN: u32(b, 24),
        expCmdSN: u32(b, 28),
        maxCmdSN: u32(b, 32),
        expDataSN: u32(b, 36),
        bidiResidual: u32(b, 40),
        residual: u32(b, 44),
      };
    case Opcode.TaskMgmtResponse:
      return { immediate, ahsWords, dataLength, itt, opcode: op, response: b[2], statSN: u32(b, 24), expCmdSN: u32(b, 28), maxCmdSN: u32(b, 32) };
    case Opcode.LoginResponse:
      return {
        immediate,
        ahsWords,
        dataLength,
        itt,
        opcode: op,
        transit: (f1 & 0x80) !== 0,
        cont: (f1 & 0x40) !== 0,
        csg: (f1 >> 2) & 3,
        nsg: f1 & 3,
        versionMax: b[2],
        versionActive: b[3],
        isid: u48(b, 8),
        tsih: u16(b, 14),
        statSN: u32(b, 24),
        expCmdSN: u32(b, 28),
        maxCmdSN: u32(b, 32),
        statusClass: b[36],
        statusDetail: b[37],
      };
    case Opcode.TextResponse:
      return {
        immediate,
        ahsWords,
        dataLength,
        itt,
        opcode: op,
        final: (f1 & 0x80) !== 0,
        cont: (f1 & 0x40) !== 0,
        lun: lun(b, 8),
        ttt: u32(b, 20),
        statSN: u32(b, 24),
        expCmdSN: u32(b, 28),
        maxCmdSN: u32(b, 32),
      };
    case Opcode.DataIn:
      return {
        immediate,
        ahsWords,
        dataLength,
        itt,
        opcode: op,
        final: (f1 & 0x80) !== 0,
        ack: (f1 & 0x40) !== 0,
        overflow: (f1 & 0x04) !== 0,
        underflow: (f1 & 0x02) !== 0,
        hasStatus: (f1 & 0x01) !== 0,
        status: f1 & 0x01 ? b[3] : 0,
        lun: lun(b, 8),
        ttt: u32(b, 20),
        statSN: u32(b, 24),
        expCmdSN: u32(b, 28),
        maxCmdSN: u32(b, 32),
        dataSN: u32(b, 36),
        bufferOffset: u32(b, 40),
        residual: u32(b, 44),
      };
    case Opcode.LogoutResponse:
      return {
        immediate,
        ahsWords,
        dataLength,
        itt,
        opcode: op,
        response: b[2],
        statSN: u32(b, 24),
        expCmdSN: u32(b, 28),
        maxCmdSN: u32(b, 32),
        time2Wait: u16(b, 40),
        time2Retain: u16(b, 42),
      };
    case Opcode.R2T:
      return {
        immediate,
        ahsWords,
        dataLength,
        itt,
        opcode: op,
        lun: lun(b, 8),
        ttt: u32(b, 20),
        statSN: u32(b, 24),
        expCmdSN: u32(b, 28),
        maxCmdSN: u32(b, 32),
        r2tSN: u32(b, 36),
        bufferOffset: u32(b, 40),
        desiredLength: u32(b, 44),
      };
    case Opcode.AsyncMessage:
      return {
        immediate,
        ahsWords,
        dataLength,
        itt,
        opcode: op,
        lun: lun(b, 8),
        statSN: u32(b, 24),
        expCmdSN: u32(b, 28),
        maxCmdSN: u32(b, 32),
        event: b[36],
        vcode: b[37],
        param1: u16(b, 38),
        param2: u16(b, 40),
        param3: u16(b, 42),
      };
    case Opcode.Reject:
      return {
        immediate,
        ahsWords,
        dataLength,
        itt,
        opcode: op,
        reason: b[2],
        statSN: u32(b, 24),
        expCmdSN: u32(b, 28),
        maxCmdSN: u32(b, 32),
        dataSN: u32(b, 36),
      };
    default:
      return { immediate, ahsWords, dataLength, itt, opcode: -1, rawOpcode: op };
  }
}

/**
 * Encode a BHS into `out` (48 bytes, zeroed here first). Fields not in the layout of the
 * opcode stay zero, as reserved fields must (§11.2).
 */
/**
 * A zeroed BHS carved from Node's shared buffer pool: a view object only, where a
 * `new Uint8Array(48)` also makes an ArrayBuffer (about twice the heap per PDU).
 */
function newBhs(): Uint8Array {
  return Buffer.allocUnsafe(BHS_LENGTH).fill(0);
}

/**
 * SCSI Response BHS (§11.4) from integers: the per-command status path, without the
 * object literal encodeBhs takes. `flags` holds the o/u bits of byte 1 (bidi overflow
 * 0x10, bidi underflow 0x08, overflow 0x04, underflow 0x02).
 */
export function encodeScsiResponse(
  itt: number,
  flags: number,
  response: number,
  status: number,
  statSN: number,
  expCmdSN: number,
  maxCmdSN: number,
  expDataSN: number,
  bidiResidual: number,
  residual: number,
  dataLength: number,
  /** Memory to build it in (zeroed first) instead of a new buffer. */
  into?: Uint8Array,
): Uint8Array {
  const b = into ? into.fill(0) : newBhs();
  b[0] = Opcode.ScsiResponse;
  b[1] = 0x80 | flags;
  b[2] = response;
  b[3] = status;
  put24(b, 5, dataLength);
  put32(b, 16, itt);
  put32(b, 24, statSN);
  put32(b, 28, expCmdSN);
  put32(b, 32, maxCmdSN);
  put32(b, 36, expDataSN);
  put32(b, 40, bidiResidual);
  put32(b, 44, residual);
  return b;
}

/**
 * SCSI Data-In BHS (§11.7) from integers, LUN 0 and TTT 0xffffffff as the engine sends it.
 * `flags` is byte 1 (F 0x80, A 0x40, O 0x04, U 0x02, S 0x01); `status` counts only with S.
 */
export function encodeDataIn(
  itt: number,
  flags: number,
  status: number,
  dataLength: number,
  statSN: number,
  expCmdSN: number,
  maxCmdSN: number,
  dataSN: number,
  bufferOffset: number,
  residual: number,
  /** Memory to build it in (zeroed first) instead of a new buffer. */
  into?: Uint8Array,
): Uint8Array {
  const b = into ? into.fill(0) : newBhs();
  b[0] = Opcode.DataIn;
  b[1] = flags;
  b[3] = flags & 0x01 ? status : 0;
  put24(b, 5, dataLength);
  put32(b, 16, itt);
  b[20] = 0xff;
  b[21] = 0xff;
  b[22] = 0xff;
  b[23] = 0xff;
  put32(b, 24, statSN);
  put32(b, 28, expCmdSN);
  put32(b, 32, maxCmdSN);
  put32(b, 36, dataSN);
  put32(b, 40, bufferOffset);
  put32(b, 44, residual);
  return b;
}

export function encodeBhs<T extends Pdu>(p: PduInit<T>, out: Uint8Array = new Uint8Array(BHS_LENGTH)): Uint8Array {
  const b = out;
  b.fill(0, 0, BHS_LENGTH);
  const q = p as PduInit<Pdu>;
  const op = q.opcode === -1 ? q.rawOpcode : q.opcode;
  b[0] = (op & 0x3f) | (q.immediate ? IMMEDIATE_BIT : 0);
  b[4] = q.ahsWords ?? 0;
  put24(b, 5, q.dataLength ?? 0);
  put32(b, 16, q.itt);
  switch (q.opcode) {
    case Opcode.NopOut:
      b[1] = 0x80;
      putBigU64(b, 8, q.lun);
      put32(b, 20, q.ttt);
      put32(b, 24, q.cmdSN);
      put32(b, 28, q.expStatSN);
      break;
    case Opcode.ScsiCommand:
      b[1] = (q.final ? 0x80 : 0) | (q.read ? 0x40 : 0) | (q.write ? 0x20 : 0) | (q.attr & 7);
      putBigU64(b, 8, q.lun);
      put32(b, 20, q.edtl);
      put32(b, 24, q.cmdSN);
      put32(b, 28, q.expStatSN);
      b.set(q.cdb.subarray(0, 16), 32);
      break;
    case Opcode.TaskMgmtRequest:
      b[1] = 0x80 | (q.fn & 0x7f);
      putBigU64(b, 8, q.lun);
      put32(b, 20, q.rtt);
      put32(b, 24, q.cmdSN);
      put32(b, 28, q.expStatSN);
      put32(b, 32, q.refCmdSN);
      put32(b, 36, q.expDataSN);
      break;
    case Opcode.LoginRequest:
      b[1] = (q.transit ? 0x80 : 0) | (q.cont ? 0x40 : 0) | ((q.csg & 3) << 2) | (q.nsg & 3);
      b[2] = q.versionMax;
      b[3] = q.versionMin;
      put48(b, 8, q.isid);
      put16(b, 14, q.tsih);
      put16(b, 20, q.cid);
      put32(b, 24, q.cmdSN);
      put32(b, 28, q.expStatSN);
      break;
    case Opcode.TextRequest:
      b[1] = (q.final ? 0x80 : 0) | (q.cont ? 0x40 : 0);
      putBigU64(b, 8, q.lun);
      put32(b, 20, q.ttt);
      put32(b, 24, q.cmdSN);
      put32(b, 28, q.expStatSN);
      break;
    case Opcode.DataOut:
      b[1] = q.final ? 0x80 : 0;
      putBigU64(b, 8, q.lun);
      put32(b, 20, q.ttt);
      put32(b, 28, q.expStatSN);
      put32(b, 36, q.dataSN);
      put32(b, 40, q.bufferOffset);
      break;
    case Opcode.LogoutRequest:
      b[1] = 0x80 | (q.reason & 0x7f);
      put16(b, 20, q.cid);
      put32(b, 24, q.cmdSN);
      put32(b, 28, q.expStatSN);
      break;
    case Opcode.SnackRequest:
      b[1] = 0x80 | (q.type & 0x0f);
      putBigU64(b, 8, q.lun);
      put32(b, 20, q.ttt);
      put32(b, 28, q.expStatSN);
      put32(b, 40, q.begRun);
      put32(b, 44, q.runLength);
      break;
    case Opcode.NopIn:
      b[1] = 0x80;
      putBigU64(b, 8, q.lun);
      put32(b, 20, q.ttt);
      put32(b, 24, q.statSN);
      put32(b, 28, q.expCmdSN);
      put32(b, 32, q.maxCmdSN);
      break;
    case Opcode.ScsiResponse:
      b[1] = 0x80 | (q.bidiOverflow ? 0x10 : 0) | (q.bidiUnderflow ? 0x08 : 0) | (q.overflow ? 0x04 : 0) | (q.underflow ? 0x02 : 0);
      b[2] = q.response;
      b[3] = q.status;
      put32(b, 20, q.snackTag);
      put32(b, 24, q.statSN);
      put32(b, 28, q.expCmdSN);
      put32(b, 32, q.maxCmdSN);
      put32(b, 36, q.expDataSN);
      put32(b, 40, q.bidiResidual);
      put32(b, 44, q.residual);
      break;
    case Opcode.TaskMgmtResponse:
      b[1] = 0x80;
      b[2] = q.response;
      put32(b, 24, q.statSN);
      put32(b, 28, q.expCmdSN);
      put32(b, 32, q.maxCmdSN);
      break;
    case Opcode.LoginResponse:
      b[1] = (q.transit ? 0x80 : 0) | (q.cont ? 0x40 : 0) | ((q.csg & 3) << 2) | (q.nsg & 3);
      b[2] = q.versionMax;
      b[3] = q.versionActive;
      put48(b, 8, q.isid);
      put16(b, 14, q.tsih);
      put32(b, 24, q.statSN);
      put32(b, 28, q.expCmdSN);
      put32(b, 32, q.maxCmdSN);
      b[36] = q.statusClass;
      b[37] = q.statusDetail;
      break;
    case Opcode.TextResponse:
      b[1] = (q.final ? 0x80 : 0) | (q.cont ? 0x40 : 0);
      putBigU64(b, 8, q.lun);
      put32(b, 20, q.ttt);
      put32(b, 24, q.statSN);
      put32(b, 28, q.expCmdSN);
      put32(b, 32, q.maxCmdSN);
      break;
    case Opcode.DataIn:
      b[1] = (q.final ? 0x80 : 0) | (q.ack ? 0x40 : 0) | (q.overflow ? 0x04 : 0) | (q.underflow ? 0x02 : 0) | (q.hasStatus ? 0x01 : 0);
      b[3] = q.hasStatus ? q.status : 0;
      putBigU64(b, 8, q.lun);
      put32(b, 20, q.ttt);
      put32(b, 24, q.statSN);
      put32(b, 28, q.expCmdSN);
      put32(b, 32, q.maxCmdSN);
      put32(b, 36, q.dataSN);
      put32(b, 40, q.bufferOffset);
      put32(b, 44, q.residual);
      break;
    case Opcode.LogoutResponse:
      b[1] = 0x80;
      b[2] = q.response;
      put32(b, 24, q.statSN);
      put32(b, 28, q.expCmdSN);
      put32(b, 32, q.maxCmdSN);
      put16(b, 40, q.time2Wait);
      put16(b, 42, q.time2Retain);
      break;
    case Opcode.R2T:
      b[1] = 0x80;
      putBigU64(b, 8, q.lun);
      put32(b, 20, q.ttt);
      put32(b, 24, q.statSN);
      put32(b, 28, q.expCmdSN);
      put32(b, 32, q.maxCmdSN);
      put32(b, 36, q.r2tSN);
      put32(b, 40, q.bufferOffset);
      put32(b, 44, q.desiredLength);
      break;
    case Opcode.AsyncMessage:
      b[1] = 0x80;
      putBigU64(b, 8, q.lun);
      put32(b, 24, q.statSN);
      put32(b, 28, q.expCmdSN);
      put32(b, 32, q.maxCmdSN);
      b[36] = q.event;
      b[37] = q.vcode;
      put16(b, 38, q.param1);
      put16(b, 40, q.param2);
      put16(b, 42, q.param3);
      break;
    case Opcode.Reject:
      b[1] = 0x80;
      b[2] = q.reason;
      put32(b, 24, q.statSN);
      put32(b, 28, q.expCmdSN);
      put32(b, 32, q.maxCmdSN);
      put32(b, 36, q.dataSN);
      break;
    default:
      break;
  }
  return b;
}

/** Bytes of padding after a data segment of `n` bytes (§11.2: segments end on a 4-byte boundary). */
export function padLength(n: number): number {
  return (4 - (n & 3)) & 3;
}

/** An AHS as a view (§11.2.2): type, and the AHS-specific bytes after the 4-byte header. */
export interface Ahs {
  type: number;
  body: Uint8Array;
}

/**
 * Split the AHS area into segments. Returns undefined when a length runs past the area
 * (§11.2.2: AHSLength does not include padding; each AHS is padded to 4 bytes).
 */
export function parseAhs(area: Uint8Array): Ahs[] | undefined {
  const out: Ahs[] = [];
  let o = 0;
  while (o < area.length) {
    if (o + 4 > area.length) return undefined;
    const len = u16(area, o);
    const type = area[o + 2];
    const end = o + 3 + len; // AHSLength counts from byte 3 (the reserved/specific byte)
    if (end > area.length) return undefined;
    out.push({ type, body: area.subarray(o + 4, Math.max(o + 4, end)) });
    o = end + padLength(end);
  }
  return out;
}

/** Build the Bidirectional Read Expected Data Transfer Length AHS (§11.2.2.4). */
export function encodeBidiAhs(readLength: number): Uint8Array {
  const a = new Uint8Array(8);
  put16(a, 0, 5);
  a[2] = AhsType.BidiReadLength;
  put32(a, 4, readLength);
  return a;
}

/** Build an Extended CDB AHS (§11.2.2.3) for the CDB bytes past the first 16. */
export function encodeExtendedCdbAhs(cdb: Uint8Array): Uint8Array {
  const rest = cdb.subarray(16);
  const len = rest.length + 1;
  const a = new Uint8Array(4 + rest.length + padLength(3 + len));
  put16(a, 0, len);
  a[2] = AhsType.ExtendedCdb;
  a.set(rest, 4);
  return a;
}
