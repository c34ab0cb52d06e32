// The SCSI core's face to the fabrics, kept small: fabrics (iSCSI over TCP or iSER, SRP)
// submit commands to a ScsiCore with a FabricIO that moves data. Below the core,
// backstores store blocks (Backstore, lib/backstore/types.ts). The core never sees a
// socket or a QP.

import type { IoStats } from './stats.js';

export const enum DataDirection {
  None = 0,
  Write = 1, // initiator → target (Data-Out)
  Read = 2, // target → initiator (Data-In)
  Bidi = 3,
}

export const enum TaskAttribute {
  Simple = 0,
  Ordered = 1,
  HeadOfQueue = 2,
  Aca = 3,
}

/** One SCSI command as a fabric hands it to the core. */
export interface ScsiCommand {
  /** 8-byte LUN field as the fabric received it (SAM-5 4.6); the core decodes it. */
  lun: bigint;
  cdb: Uint8Array;
  /** Initiator task tag; unique per I_T nexus while the task lives. */
  tag: number;
  attribute: TaskAttribute;
  /** Expected data transfer length from the fabric (iSCSI EDTL, SRP descriptors). */
  expectedLength: number;
  direction: DataDirection;
}

/** Who sent a command: the I_T nexus. Transport IDs are what PR uses (SPC-4 7.6.4). */
export interface Nexus {
  /** Initiator port name, e.g. "iqn.1994-05.com.redhat:host,i,0x23d000000001" for iSCSI. */
  initiatorPort: string;
  /** Target port name. */
  targetPort: string;
  /** Relative target port identifier (VPD 0x83, REPORT TARGET PORT GROUPS). */
  relativePortId: number;
  /** TransportID for PERSISTENT RESERVE (SPC-4 7.6.4), built by the fabric. */
  transportId: Uint8Array;
  /**
   * The transport that carries the nexus, as its index in lib/common/transports.ts's TRANSPORTS
   * (set by the fabric when the session is bound): the core only uses it to pick the row of
   * the LU's per-transport counters (stats.ts LuStats), never to behave differently.
   */
  transport: number;
  /** The nexus's command counters, when the fabric keeps them (stats.ts; lu.ts updates them). */
  stats?: IoStats;
}

/**
 * Data moved (`error` undefined) or could not be. Called exactly once, possibly before the
 * call that started the move returns (the command path runs as one synchronous chain when
 * nothing waits: no promise, no closure per command).
 */
export type IoDone = (error: Error | undefined) => void;

/** How the core moves data through the fabric for one command. */
export interface FabricIO {
  /**
   * Obtain `into.length` bytes of Data-Out starting at byte `offset` of the command's
   * data. Called only for write-direction commands, after the CDB is validated. `into`
   * may be the LUN's own memory (zero copy).
   */
  dataOut(into: Uint8Array, offset: number, done: IoDone): void;
  /** Deliver Data-In bytes at byte `offset`; called with ascending offsets. `from` may be reused once `done` ran. */
  dataIn(from: Uint8Array, offset: number, done: IoDone): void;
}

/**
 * The command ended: SAM status, bytes the CDB asked for (the fabric derives residuals from
 * its expected length), sense data if any; or `failure`, the core could not run it (the
 * fabric answers HARDWARE ERROR). Integers rather than a completion object: nothing is
 * allocated per command. Called exactly once, possibly before submit() returns.
 */
export type ScsiDone = (status: number, transferred: number, sense: Uint8Array | undefined, failure: Error | undefined) => void;

export interface ScsiCompletion {
  status: ScsiStatus;
  sense?: Uint8Array;
  /** Bytes actually moved; the fabric derives over/underflow residuals from expectedLength. */
  transferred: number;
}

export const enum TmfFunction {
  AbortTask = 1,
  AbortTaskSet = 2,
  ClearAca = 3,
  ClearTaskSet = 4,
  LogicalUnitReset = 5,
  TargetWarmReset = 6,
  TargetColdReset = 7,
  QueryTask = 8,
}

export const enum TmfResponse {
  Complete = 0,
  TaskDoesNotExist = 1,
  LunDoesNotExist = 2,
  TaskStillAllegiant = 3,
  NotSupported = 5,
  Rejected = 255,
}

/** SAM-5 status codes a ScsiCompletion carries: the one status enum (ScsiError, fabrics, core). */
export const enum ScsiStatus {
  Good = 0x00,
  CheckCondition = 0x02,
  ConditionMet = 0x04,
  Busy = 0x08,
  ReservationConflict = 0x18,
  TaskSetFull = 0x28,
  /**
   * The task was aborted (TMF, LUN/target reset, PREEMPT AND ABORT, I_T nexus loss). SAM-5
   * 5.6: the I_T nexus that caused the abort gets no status at all — the fabric suppresses
   * the response for the tasks it aborted itself — while other I_T nexuses get TASK
   * ABORTED (the control mode page reports TAS=1).
   */
  TaskAborted = 0x40,
}

/**
 * The SCSI core as every fabric (iSCSI over TCP or iSER, SRP) sees it: the one
 * fabric-facing contract, one per LUN view (an ACL's mapping or a TPG's demo LUNs),
 * implemented by LunView in lib/scsi/view.ts.
 */
export interface ScsiCore {
  /** Execute one command; the core moves data through `io` and reports its end through `done`. */
  submit(cmd: ScsiCommand, nexus: Nexus, io: FabricIO, done: ScsiDone): void;
  /**
   * A task management function; `referencedTag` is the tag of the task for ABORT TASK
   * (iSCSI's Referenced Task Tag, SRP's TASK TAG). Resolves once the aborted tasks have
   * ended (bounded), so the fabric may answer the TMF then.
   */
  taskManagement(fn: TmfFunction, nexus: Nexus, lun: bigint, referencedTag?: number): Promise<TmfResponse>;
  /** The I_T nexus is gone: its tasks end, its RESERVE(6) goes; PR registrations stay. */
  nexusLost(nexus: Nexus): void;
}
