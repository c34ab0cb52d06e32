// One command in flight inside the core, and the helpers every handler uses to move
// data: at most the fabric's expected length moves, while the returned length is what
// the CDB asked for, from which the fabric computes over/underflow residuals (RFC 7143
// 11.4.5.1; libiscsi's residual tests expect exactly that).

import { DataDirection, type FabricIO, type Nexus, type ScsiCommand } from './types.js';
import type { LogicalUnit } from './lu.js';

export interface Task {
  readonly cmd: ScsiCommand;
  readonly cdb: Uint8Array;
  readonly nexus: Nexus;
  readonly io: FabricIO;
  readonly lu: LogicalUnit;
  /** Write protection by the LUN mapping (ACL or demo-mode), on top of the backstore's own. */
  readonly mappedReadOnly: boolean;
  /** LUN numbers of the view the command came through (REPORT LUNS). */
  readonly luns: readonly number[];
  /** I_T nexus key: the unit of UAs and reservations. */
  readonly key: string;
  /** Data-In the fabric will carry: the expected length if its direction reads, else 0. */
  readonly inLength: number;
  /** Data-Out the fabric can supply: the expected length if its direction writes, else 0 (FabricIO: dataOut only for writes). */
  readonly outLength: number;
  aborted: boolean;
}

/** How much data each way a command's fabric direction allows (SAM-5 5.4; RFC 7143 11.3.1 R and W bits). */
export function directionLengths(cmd: ScsiCommand): { inLength: number; outLength: number } {
  const len = Math.max(0, cmd.expectedLength);
  return { inLength: cmd.direction & DataDirection.Read ? len : 0, outLength: cmd.direction & DataDirection.Write ? len : 0 };
}

/**
 * Keys by nexus object: a fabric keeps one Nexus per I_T nexus (the iSCSI session's, the
 * SRP channel's) and every command looks its key up, so building the string (and hashing
 * a fresh one in the UA and task-set maps) per command is avoided. Nexus fields are never
 * changed after the fabric made it.
 */
const nexusKeys = new WeakMap<Nexus, string>();

export function nexusKey(n: Nexus): string {
  let k = nexusKeys.get(n);
  if (k === undefined) {
    k = `${n.initiatorPort}\u0000${n.targetPort}`;
    nexusKeys.set(n, k);
  }
  return k;
}

/** Sends `len` bytes of a response built in `buf`, as far as the fabric expects them; returns `len`. */
export async function sendIn(t: Task, buf: Uint8Array, len: number): Promise<number> {
  const n = Math.min(len, t.inLength, buf.length);
  if (n > 0) await t.io.dataIn(buf.subarray(0, n), 0);
  return len;
}

/** Receives up to `len` bytes of parameter data into `buf`; zeroes what the initiator did not send. Returns bytes received. */
export async function receiveOut(t: Task, buf: Uint8Array, len: number): Promise<number> {
  const n = Math.min(len, t.outLength);
  if (n > 0) await t.io.dataOut(buf.subarray(0, n), 0);
  if (n < len) buf.fill(0, n, len);
  return n;
}
