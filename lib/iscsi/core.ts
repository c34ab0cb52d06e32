// What the iSCSI engine needs from the SCSI core, and small shared helpers.
// Typed structurally so the engine never depends on lib/scsi's internals.

import type { FabricIO, Nexus, ScsiCommand, ScsiCompletion, TmfFunction, TmfResponse } from '../scsi/types.js';

export interface IscsiCore {
  /** Execute one command; the core moves data through `io` and resolves with status. */
  submit(cmd: ScsiCommand, nexus: Nexus, io: FabricIO): Promise<ScsiCompletion>;
  /** A task management function; `referencedTag` is the ITT of the task for ABORT TASK. */
  taskManagement(fn: TmfFunction, nexus: Nexus, lun: bigint, referencedTag?: number): Promise<TmfResponse>;
  /** The I_T nexus is gone (session closed): drop its reservations' registrations per SPC-4, UAs... */
  nexusLost(nexus: Nexus): void;
}

/** Serial number arithmetic on 32 bits (RFC 1982, used by RFC 7143 §4.2.2.1 for CmdSN). */
export function snLess(a: number, b: number): boolean {
  return a !== b && ((a < b && b - a < 0x80000000) || (a > b && a - b > 0x80000000));
}
export function snLessEq(a: number, b: number): boolean { return a === b || snLess(a, b) }
export function snAdd(a: number, n: number): number { return (a + n) >>> 0 }

/** An engine error carrying the RFC section that makes it one. */
export class IscsiProtocolError extends Error {
  constructor(message: string, readonly code: string = 'ISCSI_PROTOCOL') { super(message) }
}
