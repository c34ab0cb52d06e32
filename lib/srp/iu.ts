// SRP information units (T10 SRP r16a §6; SRP-2 for immediate data; Linux include/scsi/srp.h
// for the RDMA/CM login variant). Every decoder checks the length and the fields it relies on
// before anything uses them and throws SrpIuError naming the IU and field; encoders write into
// a caller's buffer (a registered send slot) or a fresh one.
//
// Tags are opaque 8-byte values the initiator chooses (ib_srp stores a native-endian u64):
// they are read as two little-endian 32-bit halves and written back the same way, so the
// initiator gets back exactly the bytes it sent. 64-bit virtual addresses are big-endian and
// kept as 32-bit halves (kernel initiators use addresses above 2^53).

import { bigU64, le32, put16, put32, putBigU64, putLe32, u16, u32 } from '../common/bytes.js';

export const enum SrpOpcode {
  LoginReq = 0x00,
  TskMgmt = 0x01,
  Cmd = 0x02,
  ILogout = 0x03,
  LoginRsp = 0xc0,
  Rsp = 0xc1,
  LoginRej = 0xc2,
  TLogout = 0x80,
  CredReq = 0x81,
  AerReq = 0x82,
  CredRsp = 0x41,
  AerRsp = 0x42,
}

/** SRP_LOGIN_REQ REQUIRED BUFFER FORMATS / SRP_LOGIN_RSP SUPPORTED BUFFER FORMATS bits (§6.2, table 10). */
export const enum BufFormat {
  Direct = 1 << 1,
  Indirect = 1 << 2,
}

/** Data buffer descriptor formats in SRP_CMD's DATA-OUT/DATA-IN BUFFER DESCRIPTOR FORMAT nibbles (§6.8, table 22). */
export const enum DescFormat {
  None = 0,
  Direct = 1,
  Indirect = 2,
  /** SRP-2: the data follows in the IU at the login's immediate data offset. */
  Immediate = 3,
}

/** SRP_LOGIN_REQ flags (§6.2). */
export const enum LoginReqFlags {
  MultichannelMask = 0x03,
  MultichannelSingle = 0,
  MultichannelMulti = 1,
  ImmediateRequested = 0x80,
}

/** SRP_LOGIN_RSP flags (§6.3). */
export const enum LoginRspFlags {
  NoExistingChannels = 0,
  ExistingTerminated = 1,
  ExistingMaintained = 2,
  ImmediateSupported = 0x80,
}

/** SRP_LOGIN_REJ REASON (§6.4, table 13). */
export const enum LoginRejReason {
  UnableToEstablish = 0x00010000,
  InsufficientResources = 0x00010001,
  ItIuLengthTooLarge = 0x00010002,
  UnableToAssociate = 0x00010003,
  UnsupportedDescriptorFormat = 0x00010004,
  MultichannelUnsupported = 0x00010005,
  ChannelLimitReached = 0x00010006,
}

/** SRP_T_LOGOUT REASON (§6.6, table 16). */
export const enum TLogoutReason {
  NoReason = 0,
  InactiveChannel = 1,
  InvalidIuType = 2,
  UnexpectedResponse = 3,
  MultichannelAction = 4,
  UnsupportedDataOutFormat = 5,
  UnsupportedDataInFormat = 6,
  InvalidDescriptorCount = 7,
  InvalidIuLength = 8,
}

/** SRP_TSK_MGMT TASK MANAGEMENT FUNCTION (§6.7, table 18). */
export const enum SrpTmf {
  AbortTask = 0x01,
  AbortTaskSet = 0x02,
  ClearTaskSet = 0x04,
  LunReset = 0x08,
  ClearAca = 0x40,
}

/** SRP_RSP RSP_CODE in the response data of a task management response (§6.9, table 24). */
export const enum SrpRspCode {
  Complete = 0x00,
  FieldsInvalid = 0x02,
  NotSupported = 0x04,
  Failed = 0x05,
}

/** SRP_RSP flags (§6.9). */
export const enum RspFlags {
  RspValid = 1 << 0,
  SnsValid = 1 << 1,
  DoOver = 1 << 2,
  DoUnder = 1 << 3,
  DiOver = 1 << 4,
  DiUnder = 1 << 5,
}

export const LOGIN_REQ_LENGTH = 64;
export const LOGIN_REQ_RDMA_LENGTH = 56;
export const LOGIN_RSP_LENGTH = 52;
export const LOGIN_REJ_LENGTH = 32;
export const LOGOUT_LENGTH = 16;
export const CRED_LENGTH = 16;
export const TSK_MGMT_LENGTH = 48;
export const CMD_LENGTH = 48;
export const RSP_LENGTH = 36;
export const DIRECT_DESC_LENGTH = 16;
export const INDIRECT_HEADER_LENGTH = 20;
export const IMM_DESC_LENGTH = 4;
/** The IU length every Linux initiator may ask for with immediate data on (68 + 8 KiB). */
export const IB_SRP_IMM_IU_LENGTH = 8260;

/** A malformed IU: `field` is the SRP r16a field at fault, for logs and tests. */
export class SrpIuError extends Error {
  readonly code = 'SRP_IU';
  constructor(
    readonly iu: string,
    readonly field: string,
    message: string,
  ) {
    super(`${iu}: ${field}: ${message}`);
  }
}

export interface Tag {
  /** Low and high 32-bit halves of the tag bytes read little-endian (opaque; echoed back as is). */
  tagLo: number;
  tagHi: number;
}

export interface LoginReq extends Tag {
  reqItIuLen: number;
  reqBufFmt: number;
  reqFlags: number;
  immDataOffset: number;
  /** 16 bytes each. */
  initiatorPortId: Uint8Array;
  targetPortId: Uint8Array;
}

export interface LoginRsp extends Tag {
  reqLimDelta: number;
  maxItIuLen: number;
  maxTiIuLen: number;
  bufFmt: number;
  rspFlags: number;
}

export interface LoginRej extends Tag {
  reason: number;
  bufFmt: number;
}

export interface TLogout extends Tag {
  solNot: number;
  reason: number;
}

export interface TskMgmt extends Tag {
  solNot: number;
  lun: bigint;
  function: number;
  taskTagLo: number;
  taskTagHi: number;
}

export interface SrpCmd extends Tag {
  solNot: number;
  dataOutFormat: number;
  dataInFormat: number;
  dataOutCount: number;
  dataInCount: number;
  lun: bigint;
  taskAttribute: number;
  /** ADDITIONAL CDB LENGTH in bytes (the field counts 4-byte words in bits 7..2). */
  addCdbLength: number;
  /** The CDB: 16 bytes plus the additional CDB bytes (a view into the IU). */
  cdb: Uint8Array;
}

export interface DirectDesc {
  vaHi: number;
  vaLo: number;
  key: number;
  len: number;
}

export interface SrpRsp extends Tag {
  solNot: number;
  reqLimDelta: number;
  flags: number;
  status: number;
  dataOutResidual: number;
  dataInResidual: number;
  /** RSP_CODE when this answers a task management function (RSPVALID, 4 bytes of response data). */
  rspCode?: number;
  sense?: Uint8Array;
}

export interface CredReq extends Tag {
  solNot: number;
  reqLimDelta: number;
}

// ---- little helpers ---------------------------------------------------------------------

function need(b: Uint8Array, len: number, iu: string, min: number): void {
  if (len > b.length) throw new SrpIuError(iu, 'length', `declared ${len} bytes but the buffer holds ${b.length}`);
  if (len < min) throw new SrpIuError(iu, 'length', `${len} bytes, shorter than the ${min} bytes of its fixed part (SRP r16a §6)`);
}
function opcode(b: Uint8Array, at: number, want: number, iu: string): void {
  if (b[at] !== want) throw new SrpIuError(iu, 'IU TYPE', `0x${b[at]!.toString(16)} where 0x${want.toString(16)} was expected`);
}
/** An IU's length and its IU TYPE (byte 0). */
function checkIu(b: Uint8Array, len: number, iu: string, min: number, type: number): void {
  need(b, len, iu, min);
  opcode(b, 0, type, iu);
}
function readTag(b: Uint8Array, o: number): Tag {
  return { tagLo: le32(b, o), tagHi: le32(b, o + 4) };
}
export function writeTag(b: Uint8Array, o: number, lo: number, hi: number): void {
  putLe32(b, o, lo);
  putLe32(b, o + 4, hi);
}
function out(len: number, into?: Uint8Array): Uint8Array {
  if (!into) return new Uint8Array(len);
  if (into.length < len) throw new RangeError(`SRP: ${len}-byte IU does not fit a ${into.length}-byte buffer`);
  into.fill(0, 0, len);
  return into;
}

/** A tag as one Number for the SCSI core (exact below 2^53; folded above, still stable). */
export function tagNumber(lo: number, hi: number): number {
  return hi < 0x200000 ? hi * 4294967296 + lo : (hi & 0x1fffff) * 4294967296 + ((lo ^ (hi >>> 21)) >>> 0);
}

/** The IU type of a received IU, or -1 when it is empty. */
export function iuType(b: Uint8Array, len: number): number {
  return len > 0 ? b[0]! : -1;
}

// ---- login ------------------------------------------------------------------------------

/** srp_login_req_rdma: the login request an RDMA/CM initiator puts in the CM private data. */
export function decodeLoginReqRdma(b: Uint8Array, len = b.length): LoginReq {
  const iu = 'SRP_LOGIN_REQ (RDMA/CM private data)';
  need(b, len, iu, LOGIN_REQ_RDMA_LENGTH);
  opcode(b, 11, SrpOpcode.LoginReq, iu);
  return {
    ...readTag(b, 0),
    reqBufFmt: u16(b, 8),
    reqFlags: b[10]!,
    reqItIuLen: u32(b, 12),
    initiatorPortId: Uint8Array.from(b.subarray(16, 32)),
    targetPortId: Uint8Array.from(b.subarray(32, 48)),
    immDataOffset: u16(b, 48),
  };
}

export function encodeLoginReqRdma(r: LoginReq, into?: Uint8Array): Uint8Array {
  const b = out(LOGIN_REQ_RDMA_LENGTH, into);
  writeTag(b, 0, r.tagLo, r.tagHi);
  put16(b, 8, r.reqBufFmt);
  b[10] = r.reqFlags;
  b[11] = SrpOpcode.LoginReq;
  put32(b, 12, r.reqItIuLen);
  b.set(r.initiatorPortId.subarray(0, 16), 16);
  b.set(r.targetPortId.subarray(0, 16), 32);
  put16(b, 48, r.immDataOffset);
  return b;
}

/** SRP_LOGIN_REQ as an IU (§6.2; the InfiniBand CM form). */
export function decodeLoginReq(b: Uint8Array, len = b.length): LoginReq {
  const iu = 'SRP_LOGIN_REQ';
  checkIu(b, len, iu, LOGIN_REQ_LENGTH, SrpOpcode.LoginReq);
  return {
    ...readTag(b, 8),
    reqItIuLen: u32(b, 16),
    reqBufFmt: u16(b, 24),
    reqFlags: b[26]!,
    immDataOffset: u16(b, 28),
    initiatorPortId: Uint8Array.from(b.subarray(32, 48)),
    targetPortId: Uint8Array.from(b.subarray(48, 64)),
  };
}

export function encodeLoginReq(r: LoginReq, into?: Uint8Array): Uint8Array {
  const b = out(LOGIN_REQ_LENGTH, into);
  b[0] = SrpOpcode.LoginReq;
  writeTag(b, 8, r.tagLo, r.tagHi);
  put32(b, 16, r.reqItIuLen);
  put16(b, 24, r.reqBufFmt);
  b[26] = r.reqFlags;
  put16(b, 28, r.immDataOffset);
  b.set(r.initiatorPortId.subarray(0, 16), 32);
  b.set(r.targetPortId.subarray(0, 16), 48);
  return b;
}

export function encodeLoginRsp(r: LoginRsp, into?: Uint8Array): Uint8Array {
  const b = out(LOGIN_RSP_LENGTH, into);
  b[0] = SrpOpcode.LoginRsp;
  put32(b, 4, r.reqLimDelta);
  writeTag(b, 8, r.tagLo, r.tagHi);
  put32(b, 16, r.maxItIuLen);
  put32(b, 20, r.maxTiIuLen);
  put16(b, 24, r.bufFmt);
  b[26] = r.rspFlags;
  return b;
}

export function decodeLoginRsp(b: Uint8Array, len = b.length): LoginRsp {
  const iu = 'SRP_LOGIN_RSP';
  checkIu(b, len, iu, LOGIN_RSP_LENGTH, SrpOpcode.LoginRsp);
  return { reqLimDelta: u32(b, 4), ...readTag(b, 8), maxItIuLen: u32(b, 16), maxTiIuLen: u32(b, 20), bufFmt: u16(b, 24), rspFlags: b[26]! };
}

export function encodeLoginRej(r: LoginRej, into?: Uint8Array): Uint8Array {
  const b = out(LOGIN_REJ_LENGTH, into);
  b[0] = SrpOpcode.LoginRej;
  put32(b, 4, r.reason);
  writeTag(b, 8, r.tagLo, r.tagHi);
  put16(b, 24, r.bufFmt);
  return b;
}

export function decodeLoginRej(b: Uint8Array, len = b.length): LoginRej {
  const iu = 'SRP_LOGIN_REJ';
  checkIu(b, len, iu, LOGIN_REJ_LENGTH, SrpOpcode.LoginRej);
  return { reason: u32(b, 4), ...readTag(b, 8), bufFmt: u16(b, 24) };
}

// ---- logout, credits --------------------------------------------------------------------
// SRP_I_LOGOUT, SRP_T_LOGOUT, SRP_CRED_REQ, SRP_CRED_RSP and SRP_AER_RSP share one 16-byte
// layout (§6.5, §6.6, §6.11, §6.12): IU TYPE, SOLNOT, one 32-bit field (REASON or
// REQUEST LIMIT DELTA; reserved in the others), TAG.

function encodeShortIu(type: SrpOpcode, len: number, solNot: number, word: number, t: Tag, into?: Uint8Array): Uint8Array {
  const b = out(len, into);
  b[0] = type;
  b[1] = solNot;
  put32(b, 4, word);
  writeTag(b, 8, t.tagLo, t.tagHi);
  return b;
}

export function decodeILogout(b: Uint8Array, len = b.length): Tag {
  checkIu(b, len, 'SRP_I_LOGOUT', LOGOUT_LENGTH, SrpOpcode.ILogout);
  return readTag(b, 8);
}

export function encodeILogout(t: Tag, into?: Uint8Array): Uint8Array {
  return encodeShortIu(SrpOpcode.ILogout, LOGOUT_LENGTH, 0, 0, t, into);
}

export function encodeTLogout(t: TLogout, into?: Uint8Array): Uint8Array {
  return encodeShortIu(SrpOpcode.TLogout, LOGOUT_LENGTH, t.solNot, t.reason, t, into);
}

export function decodeTLogout(b: Uint8Array, len = b.length): TLogout {
  checkIu(b, len, 'SRP_T_LOGOUT', LOGOUT_LENGTH, SrpOpcode.TLogout);
  return { solNot: b[1]!, reason: u32(b, 4), ...readTag(b, 8) };
}

export function encodeCredReq(c: CredReq, into?: Uint8Array): Uint8Array {
  return encodeShortIu(SrpOpcode.CredReq, CRED_LENGTH, c.solNot, c.reqLimDelta, c, into);
}

export function decodeCredReq(b: Uint8Array, len = b.length): CredReq {
  checkIu(b, len, 'SRP_CRED_REQ', CRED_LENGTH, SrpOpcode.CredReq);
  return { solNot: b[1]!, reqLimDelta: u32(b, 4), ...readTag(b, 8) };
}

/** SRP_CRED_RSP and SRP_AER_RSP: the initiator's answers, a tag and nothing else. */
export function decodeCredRsp(b: Uint8Array, len = b.length, type: SrpOpcode.CredRsp | SrpOpcode.AerRsp = SrpOpcode.CredRsp): Tag {
  checkIu(b, len, type === SrpOpcode.CredRsp ? 'SRP_CRED_RSP' : 'SRP_AER_RSP', CRED_LENGTH, type);
  return readTag(b, 8);
}

export function encodeCredRsp(t: Tag, into?: Uint8Array): Uint8Array {
  return encodeShortIu(SrpOpcode.CredRsp, CRED_LENGTH, 0, 0, t, into);
}

// ---- task management --------------------------------------------------------------------

const TMF_FUNCTIONS = new Set<number>([SrpTmf.AbortTask, SrpTmf.AbortTaskSet, SrpTmf.ClearTaskSet, SrpTmf.LunReset, SrpTmf.ClearAca]);

/** SRP_TSK_MGMT (§6.7). An unknown function decodes (the response says NOT SUPPORTED). */
export function decodeTskMgmt(b: Uint8Array, len = b.length): TskMgmt {
  const iu = 'SRP_TSK_MGMT';
  checkIu(b, len, iu, TSK_MGMT_LENGTH, SrpOpcode.TskMgmt);
  const tt = readTag(b, 32);
  return { solNot: b[1]!, ...readTag(b, 8), lun: bigU64(b, 20), function: b[30]!, taskTagLo: tt.tagLo, taskTagHi: tt.tagHi };
}

export function isKnownTmf(fn: number): boolean {
  return TMF_FUNCTIONS.has(fn);
}

export function encodeTskMgmt(t: TskMgmt, into?: Uint8Array): Uint8Array {
  const b = out(TSK_MGMT_LENGTH, into);
  b[0] = SrpOpcode.TskMgmt;
  b[1] = t.solNot;
  writeTag(b, 8, t.tagLo, t.tagHi);
  putBigU64(b, 20, t.lun);
  b[30] = t.function;
  writeTag(b, 32, t.taskTagLo, t.taskTagHi);
  return b;
}

// ---- SRP_CMD ------------------------------------------------------------------------------

/** SRP_CMD's fixed part and CDB (§6.8). The descriptors are checked by decodeDataDescriptors. */
export function decodeCmd(b: Uint8Array, len = b.length): SrpCmd {
  const iu = 'SRP_CMD';
  checkIu(b, len, iu, CMD_LENGTH, SrpOpcode.Cmd);
  const addCdbLength = b[31]! & 0xfc;
  if (CMD_LENGTH + addCdbLength > len) {
    throw new SrpIuError(iu, 'ADDITIONAL CDB LENGTH', `${addCdbLength} additional CDB bytes but the IU ends ${len - CMD_LENGTH} bytes after the CDB`);
  }
  return {
    solNot: b[1]!,
    dataOutFormat: b[5]! >> 4,
    dataInFormat: b[5]! & 0xf,
    dataOutCount: b[6]!,
    dataInCount: b[7]!,
    ...readTag(b, 8),
    lun: bigU64(b, 20),
    taskAttribute: b[29]! & 0x7,
    addCdbLength,
    cdb: b.subarray(32, 48 + addCdbLength),
  };
}

export interface CmdEncoding {
  tagLo: number;
  tagHi: number;
  lun: bigint;
  cdb: Uint8Array;
  taskAttribute?: number;
  solNot?: number;
  dataOutFormat?: number;
  dataInFormat?: number;
  dataOutCount?: number;
  dataInCount?: number;
  /** The descriptor bytes that follow the CDB (encodeDirect/encodeIndirect/encodeImmediateDesc). */
  descriptors?: Uint8Array;
  /** Immediate data and where it starts in the IU. */
  immediate?: { offset: number; data: Uint8Array };
}

export function encodeCmd(c: CmdEncoding, into?: Uint8Array): Uint8Array {
  const add = Math.max(0, c.cdb.length - 16);
  if (add & 3) throw new RangeError('SRP_CMD: a CDB longer than 16 bytes grows in 4-byte steps');
  const descLen = c.descriptors?.length ?? 0;
  let len = CMD_LENGTH + add + descLen;
  if (c.immediate) len = Math.max(len, c.immediate.offset + c.immediate.data.length);
  const b = out(len, into);
  b[0] = SrpOpcode.Cmd;
  b[1] = c.solNot ?? 0;
  b[5] = ((c.dataOutFormat ?? 0) << 4) | (c.dataInFormat ?? 0);
  b[6] = c.dataOutCount ?? 0;
  b[7] = c.dataInCount ?? 0;
  writeTag(b, 8, c.tagLo, c.tagHi);
  putBigU64(b, 20, c.lun);
  b[29] = c.taskAttribute ?? 0;
  b[31] = add;
  b.set(c.cdb.subarray(0, 16), 32);
  if (add) b.set(c.cdb.subarray(16), 48);
  if (c.descriptors) b.set(c.descriptors, CMD_LENGTH + add);
  if (c.immediate) b.set(c.immediate.data, c.immediate.offset);
  return b.subarray(0, len);
}

export function encodeDirect(d: DirectDesc, into?: Uint8Array, at = 0): Uint8Array {
  const b = into ?? new Uint8Array(DIRECT_DESC_LENGTH);
  put32(b, at, d.vaHi);
  put32(b, at + 4, d.vaLo);
  put32(b, at + 8, d.key);
  put32(b, at + 12, d.len);
  return b;
}

/** An indirect descriptor with its table inside the IU: table descriptor, total length, the list. */
export function encodeIndirect(table: DirectDesc, totalLength: number, list: readonly DirectDesc[]): Uint8Array {
  const b = new Uint8Array(INDIRECT_HEADER_LENGTH + DIRECT_DESC_LENGTH * list.length);
  encodeDirect(table, b, 0);
  put32(b, 16, totalLength);
  list.forEach((d, i) => encodeDirect(d, b, INDIRECT_HEADER_LENGTH + DIRECT_DESC_LENGTH * i));
  return b;
}

export function encodeImmediateDesc(len: number): Uint8Array {
  const b = new Uint8Array(IMM_DESC_LENGTH);
  put32(b, 0, len);
  return b;
}

function readDirect(b: Uint8Array, o: number): DirectDesc {
  return { vaHi: u32(b, o), vaLo: u32(b, o + 4), key: u32(b, o + 8), len: u32(b, o + 12) };
}

export const enum DataDir {
  None = 0,
  Out = 1,
  In = 2,
}

/** Where a command's data is, after every descriptor field was checked against the IU. */
export interface DataLayout {
  direction: DataDir;
  /** Total bytes the descriptors describe (the expected data transfer length). */
  length: number;
  /** Remote buffers in order (empty for immediate data and no data). */
  buffers: DirectDesc[];
  /** Immediate data: a view into the IU. */
  immediate?: Uint8Array;
  /**
   * An external descriptor table (ib_srp with allow_ext_sg=1 and more descriptors than
   * cmd_sg_entries): the whole table is in initiator memory at `table`, `entries` long;
   * `buffers` is empty until it has been read (decodeDescriptorTable).
   */
  external?: { table: DirectDesc; entries: number };
}

/** Largest external descriptor table fetched (entries; 16 bytes each). */
export const MAX_EXTERNAL_DESCRIPTORS = 8192;

/**
 * SRP_CMD data buffer descriptors (§6.8, §5.5): the formats the login allowed, counts that
 * match the formats, indirect tables inside the IU (external tables are refused, as LIO
 * does), lengths that add up, immediate data inside the IU and within `immOffset`.
 * `bufFmt` is what the login accepted (BufFormat bits); `immOffset` 0 when immediate data
 * was not negotiated. Bidirectional commands are refused (no fabric-level bidi support).
 */
export function decodeDataDescriptors(b: Uint8Array, len: number, cmd: SrpCmd, bufFmt: number, immOffset: number, allowExternal = false): DataLayout {
  const iu = 'SRP_CMD';
  const outF = cmd.dataOutFormat;
  const inF = cmd.dataInFormat;
  if (outF !== DescFormat.None && inF !== DescFormat.None) {
    throw new SrpIuError(iu, 'BUFFER FORMAT', 'both a data-out and a data-in descriptor (bidirectional commands are not supported)');
  }
  let at = CMD_LENGTH + cmd.addCdbLength;
  const format = outF || inF;
  const dir = outF ? DataDir.Out : inF ? DataDir.In : DataDir.None;
  const fieldF = outF ? 'DATA-OUT BUFFER DESCRIPTOR FORMAT' : 'DATA-IN BUFFER DESCRIPTOR FORMAT';
  const count = outF ? cmd.dataOutCount : cmd.dataInCount;
  const fieldC = outF ? 'DATA-OUT BUFFER DESCRIPTOR COUNT' : 'DATA-IN BUFFER DESCRIPTOR COUNT';
  // The count of the direction without a descriptor must be 0 (§6.8).
  if ((outF === 0 && cmd.dataOutCount !== 0) || (inF === 0 && cmd.dataInCount !== 0)) {
    throw new SrpIuError(
      iu,
      outF === 0 && cmd.dataOutCount !== 0 ? 'DATA-OUT BUFFER DESCRIPTOR COUNT' : 'DATA-IN BUFFER DESCRIPTOR COUNT',
      'nonzero for a direction whose format is "no data buffer descriptor"',
    );
  }
  switch (format) {
    case DescFormat.None:
      return { direction: DataDir.None, length: 0, buffers: [] };
    case DescFormat.Direct: {
      if (!(bufFmt & BufFormat.Direct)) throw new SrpIuError(iu, fieldF, 'direct descriptor, which the login did not negotiate');
      // ib_srp leaves the count 0 with a direct descriptor (LIO ignores it): 0 or 1.
      if (count > 1) throw new SrpIuError(iu, fieldC, `${count} for a direct descriptor (one descriptor follows)`);
      if (at + DIRECT_DESC_LENGTH > len)
        throw new SrpIuError(iu, 'length', `the direct descriptor ends at ${at + DIRECT_DESC_LENGTH}, beyond the ${len}-byte IU`);
      const d = readDirect(b, at);
      return { direction: dir, length: d.len, buffers: [d] };
    }
    case DescFormat.Indirect: {
      if (!(bufFmt & BufFormat.Indirect)) throw new SrpIuError(iu, fieldF, 'indirect descriptor, which the login did not negotiate');
      if (at + INDIRECT_HEADER_LENGTH > len)
        throw new SrpIuError(iu, 'length', `the indirect descriptor header ends at ${at + INDIRECT_HEADER_LENGTH}, beyond the ${len}-byte IU`);
      const table = readDirect(b, at);
      const total = u32(b, at + 16);
      if (table.len % DIRECT_DESC_LENGTH !== 0) throw new SrpIuError(iu, 'DESCRIPTOR TABLE LENGTH', `${table.len} is not a multiple of 16`);
      const n = table.len / DIRECT_DESC_LENGTH;
      if (n === 0) throw new SrpIuError(iu, 'DESCRIPTOR TABLE LENGTH', 'an empty indirect table');
      if (count === 0) throw new SrpIuError(iu, fieldC, '0 for an indirect descriptor');
      if (count > n) throw new SrpIuError(iu, fieldC, `${count} exceeds the ${n} entries the table length declares`);
      at += INDIRECT_HEADER_LENGTH;
      if (at + count * DIRECT_DESC_LENGTH > len) {
        throw new SrpIuError(iu, fieldC, `${count} descriptors end at ${at + count * DIRECT_DESC_LENGTH}, beyond the ${len}-byte IU`);
      }
      if (count < n) {
        // Only the first `count` entries are in the IU; the table itself is in the initiator's memory.
        if (!allowExternal)
          throw new SrpIuError(iu, fieldC, `${count} descriptors in the IU but the table has ${n}: external descriptor tables are not supported`);
        if (n > MAX_EXTERNAL_DESCRIPTORS)
          throw new SrpIuError(iu, 'DESCRIPTOR TABLE LENGTH', `an external table of ${n} descriptors exceeds ${MAX_EXTERNAL_DESCRIPTORS}`);
        return { direction: dir, length: total, buffers: [], external: { table, entries: n } };
      }
      const buffers: DirectDesc[] = new Array(n);
      let sum = 0;
      for (let i = 0; i < n; i++) {
        const d = readDirect(b, at + i * DIRECT_DESC_LENGTH);
        buffers[i] = d;
        sum += d.len;
      }
      if (sum !== total) throw new SrpIuError(iu, 'TOTAL LENGTH', `${total} but the descriptors add up to ${sum}`);
      return { direction: dir, length: total, buffers };
    }
    case DescFormat.Immediate: {
      if (dir !== DataDir.Out) throw new SrpIuError(iu, fieldF, 'immediate data is for data-out only');
      if (!immOffset) throw new SrpIuError(iu, fieldF, 'immediate data, which the login did not negotiate');
      if (at + IMM_DESC_LENGTH > len)
        throw new SrpIuError(iu, 'length', `the immediate data descriptor ends at ${at + IMM_DESC_LENGTH}, beyond the ${len}-byte IU`);
      if (at + IMM_DESC_LENGTH > immOffset)
        throw new SrpIuError(iu, 'ADDITIONAL CDB LENGTH', `the immediate data descriptor overlaps the immediate data at ${immOffset}`);
      const n = u32(b, at);
      if (immOffset + n > len) throw new SrpIuError(iu, 'DATA LENGTH', `${n} bytes of immediate data at ${immOffset} but the IU is ${len} bytes`);
      return { direction: DataDir.Out, length: n, buffers: [], immediate: b.subarray(immOffset, immOffset + n) };
    }
    default:
      throw new SrpIuError(iu, fieldF, `reserved format ${format}`);
  }
}

/** The entries of an external descriptor table read from the initiator, checked against TOTAL LENGTH. */
export function decodeDescriptorTable(b: Uint8Array, entries: number, total: number): DirectDesc[] {
  const iu = 'SRP_CMD';
  if (b.length < entries * DIRECT_DESC_LENGTH) throw new SrpIuError(iu, 'DESCRIPTOR TABLE LENGTH', `${entries} descriptors but ${b.length} bytes were read`);
  const out: DirectDesc[] = new Array(entries);
  let sum = 0;
  for (let i = 0; i < entries; i++) {
    const d = readDirect(b, i * DIRECT_DESC_LENGTH);
    out[i] = d;
    sum += d.len;
  }
  if (sum !== total) throw new SrpIuError(iu, 'TOTAL LENGTH', `${total} but the external table's descriptors add up to ${sum}`);
  return out;
}

// ---- SRP_RSP ------------------------------------------------------------------------------

/** Bytes an SRP_RSP takes with this sense / response data. */
export function rspLength(senseLength: number, withRspCode: boolean): number {
  return RSP_LENGTH + (withRspCode ? 4 : 0) + senseLength;
}

export function encodeRsp(r: SrpRsp, into?: Uint8Array): Uint8Array {
  const sense = r.sense?.length ?? 0;
  const withCode = r.rspCode !== undefined;
  const len = rspLength(sense, withCode);
  const b = out(len, into);
  b[0] = SrpOpcode.Rsp;
  b[1] = r.solNot;
  put32(b, 4, r.reqLimDelta);
  writeTag(b, 8, r.tagLo, r.tagHi);
  b[18] = r.flags | (withCode ? RspFlags.RspValid : 0) | (sense ? RspFlags.SnsValid : 0);
  b[19] = r.status;
  put32(b, 20, r.dataOutResidual);
  put32(b, 24, r.dataInResidual);
  put32(b, 28, sense);
  put32(b, 32, withCode ? 4 : 0);
  let at = RSP_LENGTH;
  if (withCode) {
    b[at + 3] = r.rspCode!;
    at += 4;
  }
  if (sense) b.set(r.sense!, at);
  return b.subarray(0, len);
}

export function decodeRsp(b: Uint8Array, len = b.length): SrpRsp {
  const iu = 'SRP_RSP';
  checkIu(b, len, iu, RSP_LENGTH, SrpOpcode.Rsp);
  const flags = b[18]!;
  const senseLen = flags & RspFlags.SnsValid ? u32(b, 28) : 0;
  const respLen = flags & RspFlags.RspValid ? u32(b, 32) : 0;
  if (RSP_LENGTH + respLen + senseLen > len)
    throw new SrpIuError(iu, 'SENSE DATA LIST LENGTH', `response ${respLen} + sense ${senseLen} bytes exceed the ${len}-byte IU`);
  const r: SrpRsp = {
    solNot: b[1]!,
    reqLimDelta: u32(b, 4),
    ...readTag(b, 8),
    flags: flags & ~(RspFlags.RspValid | RspFlags.SnsValid),
    status: b[19]!,
    dataOutResidual: u32(b, 20),
    dataInResidual: u32(b, 24),
  };
  if (respLen >= 4) r.rspCode = b[RSP_LENGTH + 3]!;
  if (senseLen) r.sense = Uint8Array.from(b.subarray(RSP_LENGTH + respLen, RSP_LENGTH + respLen + senseLen));
  return r;
}

// ---- port identifiers ---------------------------------------------------------------------

/** 16 bytes → "0x" + 32 hex digits (LIO's srpt session/ACL name form). */
export function portIdHex(id: Uint8Array): string {
  let s = '0x';
  for (let i = 0; i < 16; i++) s += (id[i] ?? 0).toString(16).padStart(2, '0');
  return s;
}

/** "0x…"/"…" 32 hex digits (colons allowed) → 16 bytes, or undefined when malformed. */
export function parsePortId(s: string): Uint8Array | undefined {
  const h = s.replace(/^0x/i, '').replace(/:/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(h)) return undefined;
  const b = new Uint8Array(16);
  for (let i = 0; i < 16; i++) b[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return b;
}

/** Target port id from id_ext and ioc_guid, each 16 hex digits (colons allowed). */
export function targetPortId(idExt: string, iocGuid: string): Uint8Array | undefined {
  const a = idExt.replace(/^0x/i, '').replace(/:/g, '');
  const g = iocGuid.replace(/^0x/i, '').replace(/:/g, '');
  if (!/^[0-9a-fA-F]{16}$/.test(a) || !/^[0-9a-fA-F]{16}$/.test(g)) return undefined;
  return parsePortId(a + g);
}
