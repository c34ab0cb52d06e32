// Asymmetric logical unit access (SPC-4 5.16): one target port group holding every port,
// active/optimized — implicit ALUA (TPGS=01b in standard INQUIRY) so that multipath
// initiators asking REPORT TARGET PORT GROUPS get a definite answer.

import { put16, put32, u32 } from '../common/bytes.js';
import { sendIn, type Task } from './task.js';

/** The one target port group's identifier (VPD 0x83 target port group designator, RTPG). */
export const TARGET_PORT_GROUP = 1;

/** REPORT TARGET PORT GROUPS (SPC-4 6.37), length-only or extended header. */
export async function reportTargetPortGroups(t: Task): Promise<number> {
  const cdb = t.cdb;
  const extended = cdb[1]! >> 5 === 1;
  const alloc = u32(cdb, 6);
  const b = t.lu.pool.acquire(64);
  try {
    b.fill(0, 0, 64);
    let o = extended ? 8 : 4;
    if (extended) b[4] = 0x10;
    // One group, active/optimized, holding the port the command came through (SPC-4 6.37).
    b[o] = 0x80; // PREF, state 0 (active/optimized)
    b[o + 1] = 0x01; // AO_SUP
    put16(b, o + 2, TARGET_PORT_GROUP);
    b[o + 7] = 1;
    put16(b, o + 10, t.nexus.relativePortId);
    o += 12;
    put32(b, 0, o - 4);
    return await sendIn(t, b, Math.min(o, alloc));
  } finally {
    t.lu.pool.release(b);
  }
}
