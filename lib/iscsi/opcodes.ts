// iSCSI opcodes, flags and code points (RFC 7143 §11). `const enum` so they inline.

/** BHS byte 0, low 6 bits (RFC 7143 §11.2.1.2). */
export const enum Opcode {
  // Initiator → target
  NopOut = 0x00,
  ScsiCommand = 0x01,
  TaskMgmtRequest = 0x02,
  LoginRequest = 0x03,
  TextRequest = 0x04,
  DataOut = 0x05,
  LogoutRequest = 0x06,
  SnackRequest = 0x10,
  // Target → initiator
  NopIn = 0x20,
  ScsiResponse = 0x21,
  TaskMgmtResponse = 0x22,
  LoginResponse = 0x23,
  TextResponse = 0x24,
  DataIn = 0x25,
  LogoutResponse = 0x26,
  R2T = 0x31,
  AsyncMessage = 0x32,
  Reject = 0x3f,
}

export const BHS_LENGTH = 48;
/** ITT/TTT value meaning "none" (RFC 7143 §11.18, §11.19). */
export const RESERVED_TAG = 0xffffffff;
/** Byte-0 flag: immediate delivery (RFC 7143 §11.2.1.1). */
export const IMMEDIATE_BIT = 0x40;
/** Byte-1 F (final) bit for most PDUs. */
export const FINAL_BIT = 0x80;

/** Login stages, CSG/NSG (RFC 7143 §11.12.3). */
export const enum Stage {
  Security = 0,
  Operational = 1,
  FullFeature = 3,
}

/** Login status class/detail as a 16-bit value (RFC 7143 §11.13.5). */
export const enum LoginStatus {
  Success = 0x0000,
  TargetMovedTemporarily = 0x0101,
  TargetMovedPermanently = 0x0102,
  InitiatorError = 0x0200,
  AuthenticationFailure = 0x0201,
  AuthorizationFailure = 0x0202,
  NotFound = 0x0203,
  TargetRemoved = 0x0204,
  UnsupportedVersion = 0x0205,
  TooManyConnections = 0x0206,
  MissingParameter = 0x0207,
  CantIncludeInSession = 0x0208,
  SessionTypeNotSupported = 0x0209,
  SessionDoesNotExist = 0x020a,
  InvalidDuringLogin = 0x020b,
  TargetError = 0x0300,
  ServiceUnavailable = 0x0301,
  OutOfResources = 0x0302,
}

/** Reject reasons (RFC 7143 §11.17.1). */
export const enum RejectReason {
  DataDigestError = 0x02,
  SnackReject = 0x03,
  ProtocolError = 0x04,
  CommandNotSupported = 0x05,
  ImmediateCommandReject = 0x06,
  TaskInProgress = 0x07,
  InvalidDataAck = 0x08,
  InvalidPduField = 0x09,
  LongOperationReject = 0x0a,
  NegotiationReset = 0x0b,
  WaitingForLogout = 0x0c,
}

/** iSCSI TMF function codes (RFC 7143 §11.5.1); 1–7 coincide with the core's TmfFunction. */
export const enum IscsiTmfFunction {
  AbortTask = 1,
  AbortTaskSet = 2,
  ClearAca = 3,
  ClearTaskSet = 4,
  LogicalUnitReset = 5,
  TargetWarmReset = 6,
  TargetColdReset = 7,
  TaskReassign = 8,
}

/** TMF responses (RFC 7143 §11.6.1). */
export const enum IscsiTmfResponse {
  FunctionComplete = 0,
  TaskDoesNotExist = 1,
  LunDoesNotExist = 2,
  TaskStillAllegiant = 3,
  ReassignmentNotSupported = 4,
  NotSupported = 5,
  AuthorizationFailed = 6,
  Rejected = 255,
}

/** Logout reason codes (RFC 7143 §11.14.1) and responses (§11.15.1). */
export const enum LogoutReason {
  CloseSession = 0,
  CloseConnection = 1,
  RemoveConnectionForRecovery = 2,
}
export const enum LogoutResponseCode {
  Success = 0,
  CidNotFound = 1,
  RecoveryNotSupported = 2,
  CleanupFailed = 3,
}

/** Async events (RFC 7143 §11.9.1). */
export const enum AsyncEvent {
  ScsiAsyncEvent = 0,
  LogoutRequest = 1,
  ConnectionDrop = 2,
  SessionDrop = 3,
  NegotiationRequest = 4,
  TaskTermination = 5,
  VendorSpecific = 255,
}

/** SCSI Response "Response" field (RFC 7143 §11.4.3). */
export const enum ScsiResponseCode {
  CommandCompleted = 0x00,
  TargetFailure = 0x01,
}

/** AHS types (RFC 7143 §11.2.2). */
export const enum AhsType {
  ExtendedCdb = 1,
  BidiReadLength = 2,
}

export function opcodeName(op: number): string {
  switch (op) {
    case Opcode.NopOut:
      return 'NOP-Out';
    case Opcode.ScsiCommand:
      return 'SCSI Command';
    case Opcode.TaskMgmtRequest:
      return 'Task Management Request';
    case Opcode.LoginRequest:
      return 'Login Request';
    case Opcode.TextRequest:
      return 'Text Request';
    case Opcode.DataOut:
      return 'SCSI Data-Out';
    case Opcode.LogoutRequest:
      return 'Logout Request';
    case Opcode.SnackRequest:
      return 'SNACK Request';
    case Opcode.NopIn:
      return 'NOP-In';
    case Opcode.ScsiResponse:
      return 'SCSI Response';
    case Opcode.TaskMgmtResponse:
      return 'Task Management Response';
    case Opcode.LoginResponse:
      return 'Login Response';
    case Opcode.TextResponse:
      return 'Text Response';
    case Opcode.DataIn:
      return 'SCSI Data-In';
    case Opcode.LogoutResponse:
      return 'Logout Response';
    case Opcode.R2T:
      return 'R2T';
    case Opcode.AsyncMessage:
      return 'Async Message';
    case Opcode.Reject:
      return 'Reject';
    default:
      return `opcode 0x${op.toString(16)}`;
  }
}
