// The one command table: every opcode (and service action) the core implements, its CDB
// length and usage mask (what REPORT SUPPORTED OPERATION CODES returns, SPC-4 6.35), its
// handler, and how it behaves under unit attentions, write protection and reservations.

import * as alua from './alua.js';
import { Op, PrInSa, PrOutSa, SaIn16, SaMaintIn } from './opcodes.js';
import * as pr from './pr.js';
import * as sbc from './sbc.js';
import { badCdb } from './sense.js';
import * as spc from './spc.js';
import * as xcopy from './xcopy.js';
import { put16, put32, u16, u32 } from '../common/bytes.js';
import { sendIn, type Task } from './task.js';
import type { LogicalUnit } from './lu.js';

/** How a command fares against a persistent reservation held by someone else (SPC-4 5.12.1 table). */
export const enum PrClass {
  /** Never conflicts (INQUIRY, REPORT LUNS, ...). */
  Allowed = 0,
  /** Reads: conflict only under Exclusive Access types. */
  Read = 1,
  /** Writes: conflict under every type for non-holders (registrants excepted for *RegistrantsOnly/AllRegistrants). */
  Write = 2,
}

/**
 * A command's handler: returns a promise of the bytes the CDB asked for, or nothing when it
 * ends the task itself through Task.end (READ and WRITE: the hot path, sbc.ts, without a
 * promise per command).
 */
export type Handler = (t: Task) => Promise<number> | void;

export interface CommandEntry {
  readonly op: number;
  readonly sa?: number;
  readonly name: string;
  readonly cdbLength: number;
  /** CDB usage data: bit set = the device looks at that bit (SPC-4 6.35.3). */
  readonly usage: Uint8Array;
  readonly handler: Handler;
  /** Reported even with a unit attention pending (SAM-5 5.14: INQUIRY, REPORT LUNS, REQUEST SENSE). */
  readonly noUa?: boolean;
  readonly pr: PrClass;
  /** Modifies the medium: a write-protected LU answers DATA PROTECT before the CDB is looked at (as LIO does). */
  readonly writes?: boolean;
  /** Allowed while another nexus holds an SPC-2 RESERVE (SPC-2 5.5.1). */
  readonly reserveAllowed?: boolean;
  /** Whether this LU implements the command at all (UNMAP only on thin LUs, as LIO without emulate_tpu). */
  readonly supported?: (lu: LogicalUnit) => boolean;
}

function u(hex: string): Uint8Array {
  return Uint8Array.from(hex.split(' ').map((h) => parseInt(h, 16)));
}

const R = PrClass.Read;
const W = PrClass.Write;
const A = PrClass.Allowed;

// biome-ignore format: the command table, one opcode per row
const ENTRIES: CommandEntry[] = [
  { op: Op.TestUnitReady, name: 'TEST UNIT READY', cdbLength: 6, usage: u('00 00 00 00 00 07'), handler: spc.testUnitReady, pr: A },
  { op: Op.RequestSense, name: 'REQUEST SENSE', cdbLength: 6, usage: u('03 01 00 00 ff 07'), handler: spc.requestSense, noUa: true, pr: A, reserveAllowed: true },
  { op: Op.Read6, name: 'READ(6)', cdbLength: 6, usage: u('08 1f ff ff ff 07'), handler: sbc.read, pr: R },
  { op: Op.Write6, name: 'WRITE(6)', cdbLength: 6, usage: u('0a 1f ff ff ff 07'), handler: sbc.write, writes: true, pr: W },
  { op: Op.Inquiry, name: 'INQUIRY', cdbLength: 6, usage: u('12 01 ff ff ff 07'), handler: spc.inquiry, noUa: true, pr: A, reserveAllowed: true },
  { op: Op.ModeSelect6, name: 'MODE SELECT(6)', cdbLength: 6, usage: u('15 11 00 00 ff 07'), handler: spc.modeSelect, pr: W },
  { op: Op.Reserve6, name: 'RESERVE(6)', cdbLength: 6, usage: u('16 00 00 00 00 07'), handler: pr.reserve, pr: W },
  { op: Op.Release6, name: 'RELEASE(6)', cdbLength: 6, usage: u('17 00 00 00 00 07'), handler: pr.release, pr: W, reserveAllowed: true },
  { op: Op.ModeSense6, name: 'MODE SENSE(6)', cdbLength: 6, usage: u('1a 08 ff ff ff 07'), handler: spc.modeSense, pr: R },
  { op: Op.StartStopUnit, name: 'START STOP UNIT', cdbLength: 6, usage: u('1b 01 00 0f f7 07'), handler: spc.startStopUnit, pr: W },
  { op: Op.PreventAllow, name: 'PREVENT ALLOW MEDIUM REMOVAL', cdbLength: 6, usage: u('1e 00 00 00 03 07'), handler: spc.preventAllow, pr: W },
  { op: Op.ReadCapacity10, name: 'READ CAPACITY(10)', cdbLength: 10, usage: u('25 00 ff ff ff ff 00 00 01 07'), handler: sbc.readCapacity10, pr: A },
  { op: Op.Read10, name: 'READ(10)', cdbLength: 10, usage: u('28 fc ff ff ff ff 3f ff ff 07'), handler: sbc.read, pr: R },
  { op: Op.Write10, name: 'WRITE(10)', cdbLength: 10, usage: u('2a fc ff ff ff ff 3f ff ff 07'), handler: sbc.write, writes: true, pr: W },
  { op: Op.WriteVerify10, name: 'WRITE AND VERIFY(10)', cdbLength: 10, usage: u('2e f2 ff ff ff ff 3f ff ff 07'), handler: sbc.writeAndVerify, writes: true, pr: W },
  { op: Op.Verify10, name: 'VERIFY(10)', cdbLength: 10, usage: u('2f f6 ff ff ff ff 3f ff ff 07'), handler: sbc.verify, pr: R },
  { op: Op.PreFetch10, name: 'PRE-FETCH(10)', cdbLength: 10, usage: u('34 02 ff ff ff ff 3f ff ff 07'), handler: sbc.preFetch, pr: R },
  { op: Op.SyncCache10, name: 'SYNCHRONIZE CACHE(10)', cdbLength: 10, usage: u('35 02 ff ff ff ff 3f ff ff 07'), handler: sbc.syncCache, pr: W },
  { op: Op.ReadDefectData10, name: 'READ DEFECT DATA(10)', cdbLength: 10, usage: u('37 00 1f 00 00 00 00 ff ff 07'), handler: sbc.readDefectData, pr: R },
  { op: Op.WriteSame10, name: 'WRITE SAME(10)', cdbLength: 10, usage: u('41 e8 ff ff ff ff 3f ff ff 07'), handler: sbc.writeSame, writes: true, pr: W },
  { op: Op.Unmap, name: 'UNMAP', cdbLength: 10, usage: u('42 00 00 00 00 00 3f ff ff 07'), handler: sbc.unmapCmd, writes: true, pr: W, supported: (lu) => lu.thin },
  { op: Op.ModeSelect10, name: 'MODE SELECT(10)', cdbLength: 10, usage: u('55 11 00 00 00 00 00 ff ff 07'), handler: spc.modeSelect, pr: W },
  { op: Op.Reserve10, name: 'RESERVE(10)', cdbLength: 10, usage: u('56 00 00 00 00 00 00 00 00 07'), handler: pr.reserve, pr: W },
  { op: Op.Release10, name: 'RELEASE(10)', cdbLength: 10, usage: u('57 00 00 00 00 00 00 00 00 07'), handler: pr.release, pr: W, reserveAllowed: true },
  { op: Op.ModeSense10, name: 'MODE SENSE(10)', cdbLength: 10, usage: u('5a 18 ff ff 00 00 00 ff ff 07'), handler: spc.modeSense, pr: R },
  ...[PrInSa.ReadKeys, PrInSa.ReadReservation, PrInSa.ReportCapabilities, PrInSa.ReadFullStatus].map(
    (sa): CommandEntry => ({ op: Op.PrIn, sa, name: 'PERSISTENT RESERVE IN', cdbLength: 10, usage: u('5e 1f 00 00 00 00 00 ff ff 07'), handler: pr.prIn, pr: A }),
  ),
  ...[PrOutSa.Register, PrOutSa.Reserve, PrOutSa.Release, PrOutSa.Clear, PrOutSa.Preempt, PrOutSa.PreemptAndAbort, PrOutSa.RegisterAndIgnore, PrOutSa.RegisterAndMove].map(
    (sa): CommandEntry => ({ op: Op.PrOut, sa, name: 'PERSISTENT RESERVE OUT', cdbLength: 10, usage: u('5f 1f ff 00 00 ff ff ff ff 07'), handler: pr.prOut, pr: A }),
  ),
  { op: Op.ExtendedCopy, sa: 0x00, name: 'EXTENDED COPY(LID1)', cdbLength: 16, usage: u('83 1f 00 00 00 00 00 00 00 00 ff ff ff ff 00 07'), handler: xcopy.extendedCopy, writes: true, pr: W },
  { op: Op.ReceiveCopyResults, sa: 0x00, name: 'RECEIVE COPY RESULTS(COPY STATUS)', cdbLength: 16, usage: u('84 1f ff 00 00 00 00 00 00 00 ff ff ff ff 00 07'), handler: xcopy.receiveCopyResults, pr: A },
  { op: Op.ReceiveCopyResults, sa: 0x03, name: 'RECEIVE COPY RESULTS(OPERATING PARAMETERS)', cdbLength: 16, usage: u('84 1f 00 00 00 00 00 00 00 00 ff ff ff ff 00 07'), handler: xcopy.receiveCopyResults, pr: A },
  { op: Op.Read16, name: 'READ(16)', cdbLength: 16, usage: u('88 fc ff ff ff ff ff ff ff ff ff ff ff ff 3f 07'), handler: sbc.read, pr: R },
  { op: Op.CompareAndWrite, name: 'COMPARE AND WRITE', cdbLength: 16, usage: u('89 f8 ff ff ff ff ff ff ff ff 00 00 00 ff 3f 07'), handler: sbc.compareAndWrite, writes: true, pr: W },
  { op: Op.Write16, name: 'WRITE(16)', cdbLength: 16, usage: u('8a fc ff ff ff ff ff ff ff ff ff ff ff ff 3f 07'), handler: sbc.write, writes: true, pr: W },
  { op: Op.OrWrite16, name: 'ORWRITE(16)', cdbLength: 16, usage: u('8b fc ff ff ff ff ff ff ff ff ff ff ff ff 3f 07'), handler: sbc.orWrite, writes: true, pr: W },
  { op: Op.WriteVerify16, name: 'WRITE AND VERIFY(16)', cdbLength: 16, usage: u('8e f2 ff ff ff ff ff ff ff ff ff ff ff ff 3f 07'), handler: sbc.writeAndVerify, writes: true, pr: W },
  { op: Op.Verify16, name: 'VERIFY(16)', cdbLength: 16, usage: u('8f f6 ff ff ff ff ff ff ff ff ff ff ff ff 3f 07'), handler: sbc.verify, pr: R },
  { op: Op.PreFetch16, name: 'PRE-FETCH(16)', cdbLength: 16, usage: u('90 02 ff ff ff ff ff ff ff ff ff ff ff ff 3f 07'), handler: sbc.preFetch, pr: R },
  { op: Op.SyncCache16, name: 'SYNCHRONIZE CACHE(16)', cdbLength: 16, usage: u('91 02 ff ff ff ff ff ff ff ff ff ff ff ff 3f 07'), handler: sbc.syncCache, pr: W },
  { op: Op.WriteSame16, name: 'WRITE SAME(16)', cdbLength: 16, usage: u('93 e9 ff ff ff ff ff ff ff ff ff ff ff ff 3f 07'), handler: sbc.writeSame, writes: true, pr: W },
  { op: Op.ServiceActionIn16, sa: SaIn16.ReadCapacity16, name: 'READ CAPACITY(16)', cdbLength: 16, usage: u('9e 1f 00 00 00 00 00 00 00 00 ff ff ff ff 00 07'), handler: sbc.readCapacity16, pr: A },
  { op: Op.ServiceActionIn16, sa: SaIn16.GetLbaStatus, name: 'GET LBA STATUS', cdbLength: 16, usage: u('9e 1f ff ff ff ff ff ff ff ff ff ff ff ff 00 07'), handler: sbc.getLbaStatus, pr: R },
  { op: Op.ReportLuns, name: 'REPORT LUNS', cdbLength: 12, usage: u('a0 00 ff 00 00 00 ff ff ff ff 00 07'), handler: spc.reportLuns, noUa: true, pr: A, reserveAllowed: true },
  { op: Op.MaintenanceIn, sa: SaMaintIn.ReportTargetPortGroups, name: 'REPORT TARGET PORT GROUPS', cdbLength: 12, usage: u('a3 ea 00 00 00 00 ff ff ff ff 00 07'), handler: alua.reportTargetPortGroups, pr: A, reserveAllowed: true },
  { op: Op.MaintenanceIn, sa: SaMaintIn.ReportSupportedOpcodes, name: 'REPORT SUPPORTED OPERATION CODES', cdbLength: 12, usage: u('a3 0c 87 ff ff ff ff ff ff ff 00 07'), handler: reportSupportedOpcodes, pr: A, reserveAllowed: true },
  { op: Op.Read12, name: 'READ(12)', cdbLength: 12, usage: u('a8 fc ff ff ff ff ff ff ff ff 3f 07'), handler: sbc.read, pr: R },
  { op: Op.Write12, name: 'WRITE(12)', cdbLength: 12, usage: u('aa fc ff ff ff ff ff ff ff ff 3f 07'), handler: sbc.write, writes: true, pr: W },
  { op: Op.WriteVerify12, name: 'WRITE AND VERIFY(12)', cdbLength: 12, usage: u('ae f2 ff ff ff ff ff ff ff ff 3f 07'), handler: sbc.writeAndVerify, writes: true, pr: W },
  { op: Op.Verify12, name: 'VERIFY(12)', cdbLength: 12, usage: u('af f6 ff ff ff ff ff ff ff ff 3f 07'), handler: sbc.verify, pr: R },
  { op: Op.ReadDefectData12, name: 'READ DEFECT DATA(12)', cdbLength: 12, usage: u('b7 1f ff ff ff ff ff ff ff ff 00 07'), handler: sbc.readDefectData, pr: R },
];

/** Service action field location per opcode: byte 1, low five bits (SPC-4 4.2.5.1). */
const HAS_SA = new Set<number>([Op.ExtendedCopy, Op.ReceiveCopyResults, Op.ServiceActionIn16, Op.MaintenanceIn, Op.PrIn, Op.PrOut]);

const byOp: (CommandEntry | Map<number, CommandEntry> | undefined)[] = new Array(256);
for (const e of ENTRIES) {
  if (e.sa === undefined) byOp[e.op] = e;
  else {
    let m = byOp[e.op] as Map<number, CommandEntry> | undefined;
    if (!m) byOp[e.op] = m = new Map();
    m.set(e.sa, e);
  }
}

export const enum Lookup {
  Found,
  UnknownOpcode,
  UnknownServiceAction,
}

export function lookup(cdb: Uint8Array): CommandEntry | Lookup.UnknownOpcode | Lookup.UnknownServiceAction {
  const slot = byOp[cdb[0]!];
  if (slot === undefined) return Lookup.UnknownOpcode;
  if (slot instanceof Map) return slot.get(cdb[1]! & 0x1f) ?? Lookup.UnknownServiceAction;
  return slot;
}

export function commandTable(): readonly CommandEntry[] {
  return ENTRIES;
}

async function reportSupportedOpcodes(t: Task): Promise<number> {
  const cdb = t.cdb;
  const rctd = (cdb[2]! & 0x80) !== 0;
  const option = cdb[2]! & 0x07;
  const reqOp = cdb[3]!;
  const reqSa = u16(cdb, 4);
  const alloc = u32(cdb, 6);
  const lu = t.lu;
  // Command timeouts descriptor (SPC-4 6.35.4): 12 bytes, no timeouts advertised.
  const ctd = rctd ? 12 : 0;
  let b: Uint8Array;
  let len: number;
  if (option === 0) {
    const listed = ENTRIES.filter((e) => e.supported?.(lu) ?? true);
    len = 4 + listed.length * (8 + ctd);
    b = lu.pool.acquire(len);
    b.fill(0, 0, len);
    let o = 4;
    for (const e of listed) {
      b[o] = e.op;
      put16(b, o + 2, e.sa ?? 0);
      b[o + 5] = (e.sa !== undefined ? 0x01 : 0) | (rctd ? 0x02 : 0); // SERVACTV, CTDP
      put16(b, o + 6, e.cdbLength);
      if (rctd) put16(b, o + 8, 0x0a);
      o += 8 + ctd;
    }
    put32(b, 0, len - 4);
  } else if (option >= 1 && option <= 3) {
    const hasSa = HAS_SA.has(reqOp);
    // One command (SPC-4 6.35.2): option 1 names an opcode without service actions, 2 one with.
    if (option === 1 && hasSa) throw badCdb(2, 2);
    if (option === 2 && !hasSa) throw badCdb(2, 2);
    if (option === 3 && !hasSa && reqSa !== 0) throw badCdb(4);
    const slot = byOp[reqOp];
    const found = slot instanceof Map ? slot.get(reqSa) : option === 1 || option === 3 ? slot : undefined;
    const e = found && (found.supported?.(lu) ?? true) ? found : undefined;
    const cdbLen = e?.cdbLength ?? 0;
    len = 4 + cdbLen + ctd;
    b = lu.pool.acquire(len);
    b.fill(0, 0, len);
    b[1] = (e ? 0x03 : 0x01) | (rctd ? 0x80 : 0); // SUPPORT: 3 = as the standard says, 1 = not supported
    put16(b, 2, cdbLen);
    if (e) b.set(e.usage, 4);
    if (rctd) put16(b, 4 + cdbLen, 0x0a);
  } else {
    throw badCdb(2, 2);
  }
  try {
    return await sendIn(t, b, Math.min(len, alloc));
  } finally {
    lu.pool.release(b);
  }
}
