// The sense the fabrics send for failures the core never saw (a malformed SRP_CMD, a
// broken iSCSI Data-Out sequence, a transport error): fixed format, bytes as SPC-4 4.5.3
// lays them out, the same bytes iscsi/scsi-cmd.ts and srp/channel.ts once built by hand.
import { describe, expect, it } from 'vitest';
import { abortedCommandSense, Asc, checkCondition, internalTargetFailureSense, invalidIuSense } from '../../../lib/scsi/sense.js';
import { ScsiStatus } from '../../../lib/scsi/types.js';
import { hex } from './helpers.js';

describe('fabric sense', () => {
  it('HARDWARE ERROR / INTERNAL TARGET FAILURE (44h/00h)', () => {
    expect(hex(internalTargetFailureSense())).toBe('700004000000000a00000000440000000000');
  });
  it('ILLEGAL REQUEST / INVALID FIELD IN COMMAND INFORMATION UNIT (0Eh/03h)', () => {
    expect(hex(invalidIuSense())).toBe('700005000000000a000000000e0300000000');
  });
  it('ABORTED COMMAND with the DATA PHASE ERROR family and UNEXPECTED UNSOLICITED DATA', () => {
    expect(hex(abortedCommandSense(Asc.DataPhaseError))).toBe('70000b000000000a000000004b0000000000');
    expect(hex(abortedCommandSense(Asc.TooMuchWriteData))).toBe('70000b000000000a000000004b0200000000');
    expect(hex(abortedCommandSense(Asc.DataOffsetError))).toBe('70000b000000000a000000004b0500000000');
    expect(hex(abortedCommandSense(Asc.UnexpectedUnsolicitedData))).toBe('70000b000000000a000000000c0c00000000');
  });
  it('CHECK CONDITION carries the sense and moves nothing', () => {
    const s = invalidIuSense();
    expect(checkCondition(s)).toEqual({ status: ScsiStatus.CheckCondition, sense: s, transferred: 0 });
    expect(ScsiStatus.CheckCondition).toBe(0x02);
  });
});
