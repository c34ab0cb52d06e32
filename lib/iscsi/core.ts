// Small helpers shared by the iSCSI engine's files. What it submits commands to is the
// SCSI core's fabric contract, ScsiCore in lib/scsi/types.ts.

/** Serial number arithmetic on 32 bits (RFC 1982, used by RFC 7143 §4.2.2.1 for CmdSN). */
export function snLess(a: number, b: number): boolean {
  return a !== b && ((a < b && b - a < 0x80000000) || (a > b && a - b > 0x80000000));
}
export function snLessEq(a: number, b: number): boolean {
  return a === b || snLess(a, b);
}
export function snAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** An engine error carrying the RFC section that makes it one. */
export class IscsiProtocolError extends Error {
  constructor(
    message: string,
    readonly code: string = 'ISCSI_PROTOCOL',
  ) {
    super(message);
  }
}
