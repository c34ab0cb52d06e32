// Reservations: SPC-2 RESERVE/RELEASE (whole LU, one holder). PERSISTENT RESERVE is not
// in this build yet: its opcodes answer INVALID COMMAND OPERATION CODE, which libiscsi
// treats as "not implemented" and skips.

import { Asc, ScsiError, SenseKey } from './sense.js';
import type { Task } from './task.js';

export async function reserve(t: Task): Promise<number> {
  // SPC-2 7.21: 3rd-party and extent reservations are obsolete.
  if (t.cdb[1]! & 0x13) throw new ScsiError(SenseKey.IllegalRequest, Asc.InvalidFieldInCdb, { cdb: true, byte: 1 });
  t.lu.reserve(t.key);
  return 0;
}

export async function release(t: Task): Promise<number> {
  t.lu.release(t.key);
  return 0;
}

export async function prIn(_t: Task): Promise<number> {
  throw new ScsiError(SenseKey.IllegalRequest, Asc.InvalidOpcode);
}

export async function prOut(_t: Task): Promise<number> {
  throw new ScsiError(SenseKey.IllegalRequest, Asc.InvalidOpcode);
}
