// Sense data (SPC-4 4.5): fixed format 0x70 and descriptor format 0x72. The control mode
// page's D_SENSE bit picks the format per LU; errors are thrown as ScsiError and turned
// into sense once, at the dispatcher, so handlers never build bytes themselves. Fabrics
// that fail a command the core never ran (a malformed IU, broken Data-Out, a transport
// error) take their sense from the constructors at the end, not from hand-built bytes.

import { ScsiStatus, type ScsiCompletion } from './types.js';

export const enum SenseKey {
  NoSense = 0x0,
  NotReady = 0x2,
  MediumError = 0x3,
  HardwareError = 0x4,
  IllegalRequest = 0x5,
  UnitAttention = 0x6,
  DataProtect = 0x7,
  CopyAborted = 0xa,
  AbortedCommand = 0xb,
  Miscompare = 0xe,
}

/** Additional sense code + qualifier, packed as (asc << 8) | ascq. */
export const enum Asc {
  NoAdditional = 0x0000,
  ParameterListLengthError = 0x1a00,
  InvalidOpcode = 0x2000,
  LbaOutOfRange = 0x2100,
  InvalidFieldInCdb = 0x2400,
  LunNotSupported = 0x2500,
  InvalidFieldInParameterList = 0x2600,
  WriteProtected = 0x2700,
  PowerOnReset = 0x2900,
  BusDeviceReset = 0x2903,
  ItNexusLoss = 0x2907,
  CapacityDataChanged = 0x2a09,
  ModeParametersChanged = 0x2a01,
  ReservationsPreempted = 0x2a03,
  ReservationsReleased = 0x2a04,
  RegistrationsPreempted = 0x2a05,
  SavingParametersNotSupported = 0x3900,
  CommandsClearedByAnotherInitiator = 0x2f00,
  ReportedLunsDataChanged = 0x3f0e,
  MiscompareDuringVerify = 0x1d00,
  InsufficientRegistrationResources = 0x5504,
  InvalidFieldInInformationUnit = 0x0e03,
  InternalTargetFailure = 0x4400,
  DataPhaseError = 0x4b00,
  TooMuchWriteData = 0x4b02,
  DataOffsetError = 0x4b05,
  UnexpectedUnsolicitedData = 0x0c0c,
}

/** Where a bad field is (SPC-4 4.5.2.4.2): in the CDB or the parameter list, byte, and optionally bit. */
export interface FieldPointer {
  cdb: boolean;
  byte: number;
  bit?: number;
}

export class ScsiError extends Error {
  constructor(
    readonly key: SenseKey,
    readonly asc: Asc,
    readonly field?: FieldPointer,
    readonly information?: number,
    readonly status: ScsiStatus = ScsiStatus.CheckCondition,
  ) {
    super(`sense ${key.toString(16)}/${(asc >> 8).toString(16)}/${(asc & 0xff).toString(16)}`);
  }
}

/** ILLEGAL REQUEST / INVALID FIELD IN CDB pointing at `byte` (and `bit`, the field's most significant bit). */
export function badCdb(byte: number, bit?: number): ScsiError {
  return new ScsiError(SenseKey.IllegalRequest, Asc.InvalidFieldInCdb, bit === undefined ? { cdb: true, byte } : { cdb: true, byte, bit });
}
export function badParam(byte: number, bit?: number): ScsiError {
  return new ScsiError(SenseKey.IllegalRequest, Asc.InvalidFieldInParameterList, bit === undefined ? { cdb: false, byte } : { cdb: false, byte, bit });
}
export function lbaOutOfRange(): ScsiError {
  return new ScsiError(SenseKey.IllegalRequest, Asc.LbaOutOfRange);
}
export function reservationConflict(): ScsiError {
  return new ScsiError(SenseKey.NoSense, Asc.NoAdditional, undefined, undefined, ScsiStatus.ReservationConflict);
}

function sksBytes(f: FieldPointer): [number, number, number] {
  // SKSV | C/D | BPV | bit pointer, then the 16-bit field pointer (SPC-4 4.5.2.4.2).
  const b0 = 0x80 | (f.cdb ? 0x40 : 0) | (f.bit !== undefined ? 0x08 | (f.bit & 7) : 0);
  return [b0, (f.byte >> 8) & 0xff, f.byte & 0xff];
}

/** Builds sense bytes. `information` fits 32 bits in fixed format (SPC-4 4.5.3: VALID only then). */
export function buildSense(descriptor: boolean, key: SenseKey, asc: Asc, field?: FieldPointer, information?: number): Uint8Array {
  if (descriptor) {
    const len = 8 + (information !== undefined ? 12 : 0) + (field ? 8 : 0);
    const s = new Uint8Array(len);
    s[0] = 0x72;
    s[1] = key & 0x0f;
    s[2] = asc >> 8;
    s[3] = asc & 0xff;
    s[7] = len - 8;
    let o = 8;
    if (information !== undefined) {
      // Information descriptor (SPC-4 4.5.2.2): type 0, VALID set, 64-bit field.
      s[o] = 0x00;
      s[o + 1] = 0x0a;
      s[o + 2] = 0x80;
      new DataView(s.buffer).setBigUint64(o + 4, BigInt(information));
      o += 12;
    }
    if (field) {
      // Sense key specific descriptor (SPC-4 4.5.2.3): type 2.
      s[o] = 0x02;
      s[o + 1] = 0x06;
      const [a, b, c] = sksBytes(field);
      s[o + 4] = a;
      s[o + 5] = b;
      s[o + 6] = c;
    }
    return s;
  }
  const s = new Uint8Array(18);
  s[0] = 0x70 | (information !== undefined && information <= 0xffffffff ? 0x80 : 0);
  s[2] = key & 0x0f;
  if (information !== undefined && information <= 0xffffffff) new DataView(s.buffer).setUint32(3, information);
  s[7] = 10;
  s[12] = asc >> 8;
  s[13] = asc & 0xff;
  if (field) {
    const [a, b, c] = sksBytes(field);
    s[15] = a;
    s[16] = b;
    s[17] = c;
  }
  return s;
}

// ---- For fabrics: failures the core never saw, in fixed format (SPC-4 4.5.3) ----------

/** CHECK CONDITION with `sense`, nothing moved: a command the fabric fails on its own. */
export function checkCondition(sense: Uint8Array): ScsiCompletion {
  return { status: ScsiStatus.CheckCondition, sense, transferred: 0 };
}
/** HARDWARE ERROR / INTERNAL TARGET FAILURE: the core or the transport failed under a command. */
export function internalTargetFailureSense(): Uint8Array {
  return buildSense(false, SenseKey.HardwareError, Asc.InternalTargetFailure);
}
/** ABORTED COMMAND with `asc`: the DATA PHASE ERROR family for a broken Data-Out sequence (RFC 7143 §11.4.7.2). */
export function abortedCommandSense(asc: Asc): Uint8Array {
  return buildSense(false, SenseKey.AbortedCommand, asc);
}
/** ILLEGAL REQUEST / INVALID FIELD IN COMMAND INFORMATION UNIT: a malformed SRP_CMD or its descriptors. */
export function invalidIuSense(): Uint8Array {
  return buildSense(false, SenseKey.IllegalRequest, Asc.InvalidFieldInInformationUnit);
}
