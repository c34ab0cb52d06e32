// Reservations: SPC-2 RESERVE/RELEASE (whole LU, one holder) and SPC-3 PERSISTENT
// RESERVE IN/OUT (SPC-4 5.12, 6.15, 6.16). Registrations belong to I_T nexuses and survive
// their loss; with APTPL they survive a restart too, as JSON in the state directory.

import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PrInSa, PrOutSa } from './opcodes.js';
import { Asc, badCdb, badParam, reservationConflict, ScsiError, SenseKey } from './sense.js';
import { PrClass } from './table.js';
import { put16, put32, receiveOut, sendIn, u16, u32, type Task } from './task.js';

export const enum PrType {
  WriteExclusive = 1,
  ExclusiveAccess = 3,
  WriteExclusiveRegistrantsOnly = 5,
  ExclusiveAccessRegistrantsOnly = 6,
  WriteExclusiveAllRegistrants = 7,
  ExclusiveAccessAllRegistrants = 8,
}

const VALID_TYPES = new Set([1, 3, 5, 6, 7, 8]);
const INVALID_RELEASE = 0x2604 as Asc; // INVALID RELEASE OF PERSISTENT RESERVATION

interface Registration {
  key: bigint;
  initiatorPort: string;
  targetPort: string;
  relativePortId: number;
  transportId: Uint8Array;
}

interface Reservation {
  /** Nexus key of the holder; for all-registrants types every registrant holds it. */
  holder: string;
  type: PrType;
}

function allRegistrants(type: PrType): boolean {
  return type === PrType.WriteExclusiveAllRegistrants || type === PrType.ExclusiveAccessAllRegistrants;
}

export class PersistentReservations {
  generation = 0;
  aptpl = false;
  readonly regs = new Map<string, Registration>();
  res: Reservation | undefined;

  constructor(private readonly file: string | undefined) {}

  isHolder(key: string): boolean {
    const r = this.res;
    if (!r) return false;
    return allRegistrants(r.type) ? this.regs.has(key) : r.holder === key;
  }

  /** SPC-4 5.12.1 (table "SPC commands that are allowed in the presence of various reservations"). */
  conflicts(key: string, cls: PrClass): boolean {
    const r = this.res;
    if (!r || cls === PrClass.Allowed || this.isHolder(key)) return false;
    switch (r.type) {
      case PrType.WriteExclusive:
        return cls === PrClass.Write;
      case PrType.ExclusiveAccess:
        return true;
      case PrType.WriteExclusiveRegistrantsOnly:
      case PrType.WriteExclusiveAllRegistrants:
        return !this.regs.has(key) && cls === PrClass.Write;
      default:
        return !this.regs.has(key);
    }
  }

  async load(): Promise<void> {
    if (!this.file) return;
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch {
      return;
    }
    const j = JSON.parse(text) as { generation: number; registrations: Array<Omit<Registration, 'key' | 'transportId'> & { nexus: string; key: string; transportId: string }>; reservation?: Reservation };
    this.generation = j.generation;
    this.aptpl = true;
    for (const r of j.registrations)
      this.regs.set(r.nexus, { key: BigInt(r.key), initiatorPort: r.initiatorPort, targetPort: r.targetPort, relativePortId: r.relativePortId, transportId: Uint8Array.from(Buffer.from(r.transportId, 'hex')) });
    if (j.reservation) this.res = j.reservation;
  }

  /** Persists (APTPL, SPC-4 5.12.5) or forgets the state; atomic by rename. */
  async save(): Promise<void> {
    if (!this.file) return;
    if (!this.aptpl) {
      await rm(this.file, { force: true });
      return;
    }
    const j = {
      generation: this.generation,
      registrations: [...this.regs].map(([nexus, r]) => ({ nexus, key: '0x' + r.key.toString(16), initiatorPort: r.initiatorPort, targetPort: r.targetPort, relativePortId: r.relativePortId, transportId: Buffer.from(r.transportId).toString('hex') })),
      ...(this.res ? { reservation: this.res } : {}),
    };
    await mkdir(join(this.file, '..'), { recursive: true });
    await writeFile(this.file + '.tmp', JSON.stringify(j, null, 2));
    await rename(this.file + '.tmp', this.file);
  }
}

// ---- SPC-2 RESERVE / RELEASE ------------------------------------------------------

export async function reserve(t: Task): Promise<number> {
  // SPC-2 7.21: 3rd-party and extent reservations are obsolete.
  if (t.cdb[1]! & 0x13) throw badCdb(1);
  // A persistent reservation excludes SPC-2 ones (SPC-4 5.12.3).
  if (t.lu.pr.res || t.lu.pr.regs.size > 0) throw reservationConflict();
  t.lu.reserve(t.key);
  return 0;
}

export async function release(t: Task): Promise<number> {
  if (t.lu.pr.res && !t.lu.pr.isHolder(t.key)) throw reservationConflict();
  t.lu.release(t.key);
  return 0;
}

// ---- PERSISTENT RESERVE IN ----------------------------------------------------------

export async function prIn(t: Task): Promise<number> {
  const cdb = t.cdb;
  const sa = cdb[1]! & 0x1f;
  const alloc = u16(cdb, 7);
  const pr = t.lu.pr;
  const regs = [...pr.regs.entries()];
  let len: number;
  let b: Uint8Array;
  switch (sa) {
    case PrInSa.ReadKeys:
      len = 8 + 8 * regs.length;
      b = t.lu.pool.acquire(len);
      b.fill(0, 0, len);
      regs.forEach(([, r], i) => new DataView(b.buffer, b.byteOffset).setBigUint64(8 + 8 * i, r.key));
      break;
    case PrInSa.ReadReservation:
      len = pr.res ? 24 : 8;
      b = t.lu.pool.acquire(len);
      b.fill(0, 0, len);
      if (pr.res) {
        // All-registrants reservations report key 0 (SPC-4 6.15.3.3).
        const key = allRegistrants(pr.res.type) ? 0n : (pr.regs.get(pr.res.holder)?.key ?? 0n);
        new DataView(b.buffer, b.byteOffset).setBigUint64(8, key);
        b[21] = pr.res.type;
      }
      break;
    case PrInSa.ReportCapabilities:
      len = 8;
      b = t.lu.pool.acquire(len);
      b.fill(0, 0, len);
      put16(b, 0, 8);
      b[2] = 0x10 | 0x01; // CRH, PTPL_C
      b[3] = 0x80 | (pr.aptpl ? 0x01 : 0); // TMV, PTPL_A
      b[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02; // WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX
      b[5] = 0x01; // EX_AC_AR
      break;
    case PrInSa.ReadFullStatus: {
      len = 8 + regs.reduce((n, [, r]) => n + 24 + r.transportId.length, 0);
      b = t.lu.pool.acquire(len);
      b.fill(0, 0, len);
      let o = 8;
      for (const [k, r] of regs) {
        new DataView(b.buffer, b.byteOffset).setBigUint64(o, r.key);
        if (pr.isHolder(k)) {
          b[o + 12] = 0x01; // R_HOLDER
          b[o + 13] = pr.res!.type;
        }
        put16(b, o + 18, r.relativePortId);
        put32(b, o + 20, r.transportId.length);
        b.set(r.transportId, o + 24);
        o += 24 + r.transportId.length;
      }
      break;
    }
    default:
      throw badCdb(1, 4);
  }
  try {
    put32(b, 0, pr.generation);
    if (sa !== PrInSa.ReportCapabilities) put32(b, 4, len - 8);
    else put16(b, 0, 8);
    return await sendIn(t, b, Math.min(len, alloc));
  } finally {
    t.lu.pool.release(b);
  }
}

// ---- PERSISTENT RESERVE OUT ---------------------------------------------------------

export async function prOut(t: Task): Promise<number> {
  const cdb = t.cdb;
  const sa = cdb[1]! & 0x1f;
  const scope = cdb[2]! >> 4;
  const type = cdb[2]! & 0x0f;
  const plen = u32(cdb, 5);
  const lu = t.lu;
  const pr = lu.pr;
  if (sa === PrOutSa.RegisterAndMove) throw badCdb(1, 4); // not supported here
  // SPC-4 6.16.3: the basic parameter list is 24 bytes.
  if (plen !== 24) throw new ScsiError(SenseKey.IllegalRequest, Asc.ParameterListLengthError);
  const p = lu.pool.acquire(24);
  let key: bigint;
  let saKey: bigint;
  let flags: number;
  try {
    if ((await receiveOut(t, p, 24)) < 24) throw new ScsiError(SenseKey.IllegalRequest, Asc.ParameterListLengthError);
    const dv = new DataView(p.buffer, p.byteOffset);
    key = dv.getBigUint64(0);
    saKey = dv.getBigUint64(8);
    flags = p[20]!;
  } finally {
    lu.pool.release(p);
  }
  if (flags & 0x08) throw badParam(20, 3); // SPEC_I_PT: not supported (capabilities say SIP_C 0)
  if (flags & 0x04) throw badParam(20, 2); // ALL_TG_PT: ATP_C 0
  const me = pr.regs.get(t.key);
  const needsReservation = sa === PrOutSa.Reserve || sa === PrOutSa.Release || sa === PrOutSa.Preempt || sa === PrOutSa.PreemptAndAbort;
  if (needsReservation && scope !== 0) throw badCdb(2, 7);
  if ((sa === PrOutSa.Reserve || sa === PrOutSa.Preempt || sa === PrOutSa.PreemptAndAbort) && !VALID_TYPES.has(type)) throw badCdb(2, 3);

  switch (sa) {
    case PrOutSa.Register:
    case PrOutSa.RegisterAndIgnore: {
      if (sa === PrOutSa.Register && (me ? me.key !== key : key !== 0n)) throw reservationConflict();
      if (!me) {
        if (saKey !== 0n)
          pr.regs.set(t.key, { key: saKey, initiatorPort: t.nexus.initiatorPort, targetPort: t.nexus.targetPort, relativePortId: t.nexus.relativePortId, transportId: t.nexus.transportId.slice() });
      } else if (saKey === 0n) {
        unregister(t, t.key);
      } else {
        me.key = saKey;
      }
      pr.aptpl = (flags & 0x01) !== 0;
      pr.generation = (pr.generation + 1) >>> 0;
      break;
    }
    case PrOutSa.Reserve:
      if (!me || me.key !== key) throw reservationConflict();
      if (pr.res) {
        // Re-reserving what one holds is a no-op; anything else conflicts (SPC-4 5.12.9).
        if (!pr.isHolder(t.key) || pr.res.type !== type) throw reservationConflict();
        return 24;
      }
      pr.res = { holder: t.key, type };
      break;
    case PrOutSa.Release:
      if (!me || me.key !== key) throw reservationConflict();
      if (!pr.res || !pr.isHolder(t.key)) return 24;
      if (pr.res.type !== type) throw new ScsiError(SenseKey.IllegalRequest, INVALID_RELEASE);
      releaseReservation(t);
      break;
    case PrOutSa.Clear:
      if (!me || me.key !== key) throw reservationConflict();
      for (const k of pr.regs.keys()) if (k !== t.key) lu.addUnitAttention(k, Asc.ReservationsPreempted);
      pr.regs.clear();
      pr.res = undefined;
      pr.generation = (pr.generation + 1) >>> 0;
      break;
    case PrOutSa.Preempt:
    case PrOutSa.PreemptAndAbort: {
      if (!me || me.key !== key) throw reservationConflict();
      const res = pr.res;
      const removeWithKey = (k: bigint): string[] => {
        const gone: string[] = [];
        for (const [nk, r] of pr.regs) if (r.key === k && nk !== t.key) gone.push(nk);
        for (const nk of gone) {
          pr.regs.delete(nk);
          lu.addUnitAttention(nk, Asc.RegistrationsPreempted);
        }
        return gone;
      };
      let gone: string[];
      if (!res) {
        if (saKey === 0n) throw badParam(8);
        gone = removeWithKey(saKey);
        if (gone.length === 0) throw reservationConflict();
      } else if (allRegistrants(res.type)) {
        if (saKey === 0n) {
          // SPC-4 5.12.11.4.4: preempting an all-registrants reservation with key 0 removes everyone else.
          gone = [...pr.regs.keys()].filter((k) => k !== t.key);
          for (const k of gone) {
            pr.regs.delete(k);
            lu.addUnitAttention(k, Asc.RegistrationsPreempted);
          }
          pr.res = { holder: t.key, type };
        } else {
          gone = removeWithKey(saKey);
          if (gone.length === 0) throw reservationConflict();
        }
      } else {
        const holderKey = pr.regs.get(res.holder)?.key;
        if (holderKey === saKey) {
          gone = removeWithKey(saKey);
          const oldType = res.type;
          pr.res = { holder: t.key, type };
          if (oldType !== type) for (const k of pr.regs.keys()) if (k !== t.key && !gone.includes(k)) lu.addUnitAttention(k, Asc.ReservationsReleased);
        } else {
          if (saKey === 0n) throw badParam(8);
          gone = removeWithKey(saKey);
          if (gone.length === 0) throw reservationConflict();
        }
      }
      if (sa === PrOutSa.PreemptAndAbort) lu.abortTasksOf(new Set(gone));
      pr.generation = (pr.generation + 1) >>> 0;
      break;
    }
  }
  await pr.save();
  return 24;
}

function releaseReservation(t: Task): void {
  const pr = t.lu.pr;
  const type = pr.res!.type;
  pr.res = undefined;
  // Registrants of the other types learn the reservation is gone (SPC-4 5.12.11.2).
  if (type !== PrType.WriteExclusive && type !== PrType.ExclusiveAccess)
    for (const k of pr.regs.keys()) if (k !== t.key) t.lu.addUnitAttention(k, Asc.ReservationsReleased);
}

function unregister(t: Task, k: string): void {
  const pr = t.lu.pr;
  const res = pr.res;
  pr.regs.delete(k);
  if (!res) return;
  if (allRegistrants(res.type)) {
    if (pr.regs.size === 0) pr.res = undefined;
  } else if (res.holder === k) {
    pr.res = undefined;
    if (res.type !== PrType.WriteExclusive && res.type !== PrType.ExclusiveAccess)
      for (const o of pr.regs.keys()) t.lu.addUnitAttention(o, Asc.ReservationsReleased);
  }
}

export function prFile(stateDir: string | undefined, serial: string): string | undefined {
  return stateDir ? join(stateDir, `pr-${serial}.json`) : undefined;
}
