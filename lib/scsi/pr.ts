// Reservations: SPC-2 RESERVE/RELEASE (whole LU, one holder) and SPC-3 PERSISTENT
// RESERVE IN/OUT (SPC-4 5.12, 6.15, 6.16). A registration names an initiator port (or,
// from an iSCSI TransportID without an ISID, every port of an initiator device) and one
// target port or all of them (ALL_TG_PT); the I_T nexuses it covers are found by
// matching, so registrations made through SPEC_I_PT or REGISTER AND MOVE apply to a
// nexus that logs in later. Registrations survive the loss of their nexus; with APTPL
// they survive a restart too, as JSON in the state directory.

import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PrInSa, PrOutSa } from './opcodes.js';
import { Asc, badCdb, badParam, reservationConflict, ScsiError, SenseKey } from './sense.js';
import { PrClass } from './table.js';
import { bigU64, put16, put32, putBigU64, u16, u32 } from '../common/bytes.js';
import { receiveOut, sendIn, type Task } from './task.js';
import type { Nexus } from './types.js';

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
/** Largest PERSISTENT RESERVE OUT parameter list taken (SPEC_I_PT lists of TransportIDs). */
export const MAX_PR_OUT_LIST = 64 * 1024;

const enum ProtocolId {
  Iscsi = 0x5,
}

/** Who a registration covers (SPC-4 5.12.7): one initiator port, every port of an iSCSI initiator device, or a non-iSCSI TransportID. */
export type InitiatorMatch = { kind: 'port'; id: string } | { kind: 'device'; id: string } | { kind: 'tid'; id: string };

export interface Registration {
  key: bigint;
  initiator: InitiatorMatch;
  /** Target port name, or undefined for every target port (ALL_TG_PT). */
  targetPort: string | undefined;
  relativePortId: number;
  transportId: Uint8Array;
}

interface Reservation {
  /** Registration id of the holder; for all-registrants types every registrant holds it. */
  holder: string;
  type: PrType;
}

function allRegistrants(type: PrType): boolean {
  return type === PrType.WriteExclusiveAllRegistrants || type === PrType.ExclusiveAccessAllRegistrants;
}

function registrantsOnly(type: PrType): boolean {
  return type === PrType.WriteExclusiveRegistrantsOnly || type === PrType.ExclusiveAccessRegistrantsOnly;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

/** An iSCSI initiator port name is "<device name>,i,0x<ISID>" (RFC 7143 4.2.7.1); names compare case-insensitively. */
function iscsiDeviceName(port: string): string {
  const i = port.toLowerCase().indexOf(',i,0x');
  return (i < 0 ? port : port.slice(0, i)).toLowerCase();
}

/** The match for the I_T nexus itself: its initiator port (iSCSI) or its TransportID (other protocols). */
export function nexusMatch(n: Nexus): InitiatorMatch {
  const proto = (n.transportId[0] ?? ProtocolId.Iscsi) & 0x0f;
  if (proto === ProtocolId.Iscsi || n.transportId.length === 0) return { kind: 'port', id: n.initiatorPort.toLowerCase() };
  return { kind: 'tid', id: hex(n.transportId.subarray(1)) };
}

function matches(m: InitiatorMatch, n: Nexus): boolean {
  switch (m.kind) {
    case 'port':
      return m.id === n.initiatorPort.toLowerCase();
    case 'device':
      return m.id === iscsiDeviceName(n.initiatorPort);
    case 'tid':
      return n.transportId.length > 1 && m.id === hex(n.transportId.subarray(1));
  }
}

function sameInitiator(a: InitiatorMatch, b: InitiatorMatch): boolean {
  if (a.kind === b.kind) return a.id === b.id;
  // A device-level name covers every port of that device, the issuer's included.
  if (a.kind === 'device' && b.kind === 'port') return a.id === iscsiDeviceName(b.id);
  if (b.kind === 'device' && a.kind === 'port') return b.id === iscsiDeviceName(a.id);
  return false;
}

export function registrationId(m: InitiatorMatch, targetPort: string | undefined): string {
  return `${m.kind}:${m.id}\u0000${targetPort ?? '*'}`;
}

export interface ParsedTransportId {
  match: InitiatorMatch;
  bytes: Uint8Array;
  length: number;
}

/**
 * Decodes one TransportID at `p[o]` (SPC-4 7.6.4); throws INVALID FIELD IN PARAMETER LIST
 * pointing at it when it is malformed or runs past `end`.
 */
export function parseTransportId(p: Uint8Array, o: number, end: number): ParsedTransportId {
  if (o + 4 > end) throw badParam(o);
  const proto = p[o]! & 0x0f;
  const format = p[o]! >> 6;
  if (proto === ProtocolId.Iscsi) {
    // SPC-4 7.6.4.6: ADDITIONAL LENGTH is at least 20 and a multiple of 4.
    const add = u16(p, o + 2);
    if (add < 20 || add % 4 !== 0 || o + 4 + add > end) throw badParam(o + 2);
    if (format > 1) throw badParam(o, 7);
    const body = p.subarray(o + 4, o + 4 + add);
    const nul = body.indexOf(0);
    if (nul <= 0) throw badParam(o + 4);
    const name = Buffer.from(body.subarray(0, nul)).toString('utf8').toLowerCase();
    if (format === 1) {
      if (name.indexOf(',i,0x') <= 0) throw badParam(o + 4);
      return { match: { kind: 'port', id: name }, bytes: p.slice(o, o + 4 + add), length: 4 + add };
    }
    if (name.includes(',')) throw badParam(o + 4);
    return { match: { kind: 'device', id: name }, bytes: p.slice(o, o + 4 + add), length: 4 + add };
  }
  // Fibre Channel, SAS, SRP, 1394 ... (SPC-4 7.6.4.2-5): 24 bytes, format 00b.
  if (proto > 0x0a) throw badParam(o, 3);
  if (format !== 0) throw badParam(o, 7);
  if (o + 24 > end) throw badParam(o);
  return { match: { kind: 'tid', id: hex(p.subarray(o + 1, o + 24)) }, bytes: p.slice(o, o + 24), length: 24 };
}

export class PersistentReservations {
  generation = 0;
  aptpl = false;
  /** By registration id (registrationId()). */
  readonly regs = new Map<string, Registration>();
  res: Reservation | undefined;

  constructor(private readonly file: string | undefined) {}

  /** The registration that covers this I_T nexus; one naming its own target port wins over an ALL_TG_PT one. */
  find(n: Nexus): [string, Registration] | undefined {
    if (this.regs.size === 0) return undefined;
    let wildcard: [string, Registration] | undefined;
    for (const e of this.regs) {
      const r = e[1];
      if (!matches(r.initiator, n)) continue;
      if (r.targetPort === n.targetPort) return e;
      if (r.targetPort === undefined) wildcard ??= e;
    }
    return wildcard;
  }

  isHolderId(id: string): boolean {
    const r = this.res;
    if (!r) return false;
    return allRegistrants(r.type) ? this.regs.has(id) : r.holder === id;
  }

  isHolder(n: Nexus): boolean {
    if (!this.res) return false;
    const f = this.find(n);
    return f !== undefined && this.isHolderId(f[0]);
  }

  /** SPC-4 5.12.1 (table "SPC commands that are allowed in the presence of various reservations"). */
  conflicts(n: Nexus, cls: PrClass): boolean {
    const r = this.res;
    if (!r || cls === PrClass.Allowed) return false;
    const f = this.find(n);
    if (f && this.isHolderId(f[0])) return false;
    const registered = f !== undefined;
    switch (r.type) {
      case PrType.WriteExclusive:
        return cls === PrClass.Write;
      case PrType.ExclusiveAccess:
        return true;
      case PrType.WriteExclusiveRegistrantsOnly:
      case PrType.WriteExclusiveAllRegistrants:
        return !registered && cls === PrClass.Write;
      default:
        return !registered;
    }
  }

  add(m: InitiatorMatch, targetPort: string | undefined, key: bigint, relativePortId: number, transportId: Uint8Array): string {
    const id = registrationId(m, targetPort);
    this.regs.set(id, { key, initiator: m, targetPort, relativePortId, transportId });
    return id;
  }

  bump(): void {
    this.generation = (this.generation + 1) >>> 0;
  }

  async load(): Promise<void> {
    if (!this.file) return;
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch {
      return;
    }
    const j = JSON.parse(text) as SavedState;
    this.generation = j.generation >>> 0;
    this.aptpl = true;
    for (const r of j.registrations) {
      // Files from before registrations were matched by initiator carry the nexus's port names.
      const initiator: InitiatorMatch = r.initiator ?? { kind: 'port', id: (r.initiatorPort ?? '').toLowerCase() };
      const targetPort = r.allTargetPorts ? undefined : r.targetPort;
      this.regs.set(registrationId(initiator, targetPort), {
        key: BigInt(r.key),
        initiator,
        targetPort,
        relativePortId: r.relativePortId,
        transportId: Uint8Array.from(Buffer.from(r.transportId, 'hex')),
      });
    }
    if (j.reservation) {
      const h = j.reservation.holder;
      // Old files named the holder by nexus key (initiator port NUL target port).
      const holder = this.regs.has(h) ? h : registrationId({ kind: 'port', id: h.split('\u0000')[0]!.toLowerCase() }, h.split('\u0000')[1]);
      this.res = { holder, type: j.reservation.type };
    }
  }

  /** Persists (APTPL, SPC-4 5.12.5) or forgets the state; atomic by rename. */
  async save(): Promise<void> {
    if (!this.file) return;
    if (!this.aptpl) {
      await rm(this.file, { force: true });
      return;
    }
    const j: SavedState = {
      generation: this.generation,
      registrations: [...this.regs.values()].map((r) => ({
        key: '0x' + r.key.toString(16),
        initiator: r.initiator,
        ...(r.targetPort !== undefined ? { targetPort: r.targetPort } : { allTargetPorts: true }),
        relativePortId: r.relativePortId,
        transportId: hex(r.transportId),
      })),
      ...(this.res ? { reservation: this.res } : {}),
    };
    await mkdir(join(this.file, '..'), { recursive: true });
    await writeFile(this.file + '.tmp', JSON.stringify(j, null, 2));
    await rename(this.file + '.tmp', this.file);
  }
}

interface SavedState {
  generation: number;
  registrations: Array<{
    key: string;
    initiator?: InitiatorMatch;
    initiatorPort?: string;
    targetPort?: string;
    allTargetPorts?: boolean;
    relativePortId: number;
    transportId: string;
  }>;
  reservation?: Reservation;
}

// ---- SPC-2 RESERVE / RELEASE ------------------------------------------------------

/**
 * SPC-4 5.12.3 (compatible reservation handling, CRH=1 in REPORT CAPABILITIES): under a
 * persistent reservation, RESERVE/RELEASE from its holder, or from a registrant of a
 * registrants-only or all-registrants type, succeed and change nothing; with any other
 * registrations present they conflict.
 */
function crh(t: Task): 'noop' | 'conflict' | 'spc2' {
  const pr = t.lu.pr;
  if (pr.regs.size === 0) return 'spc2';
  const f = pr.find(t.nexus);
  if (f && pr.res && (pr.isHolderId(f[0]) || registrantsOnly(pr.res.type) || allRegistrants(pr.res.type))) return 'noop';
  return 'conflict';
}

export async function reserve(t: Task): Promise<number> {
  // SPC-2 7.21: 3rd-party and extent reservations are obsolete.
  if (t.cdb[1]! & 0x13) throw badCdb(1);
  const c = crh(t);
  if (c === 'noop') return 0;
  if (c === 'conflict') throw reservationConflict();
  t.lu.reserve(t.key);
  return 0;
}

export async function release(t: Task): Promise<number> {
  const c = crh(t);
  if (c === 'noop') return 0;
  if (c === 'conflict') throw reservationConflict();
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
      regs.forEach(([, r], i) => putBigU64(b, 8 + 8 * i, r.key));
      break;
    case PrInSa.ReadReservation:
      len = pr.res ? 24 : 8;
      b = t.lu.pool.acquire(len);
      b.fill(0, 0, len);
      if (pr.res) {
        // All-registrants reservations report key 0 (SPC-4 6.15.3.3).
        const key = allRegistrants(pr.res.type) ? 0n : (pr.regs.get(pr.res.holder)?.key ?? 0n);
        putBigU64(b, 8, key);
        b[21] = pr.res.type; // scope 0 (LU_SCOPE)
      }
      break;
    case PrInSa.ReportCapabilities:
      len = 8;
      b = t.lu.pool.acquire(len);
      b.fill(0, 0, len);
      put16(b, 0, 8);
      b[2] = 0x10 | 0x08 | 0x04 | 0x01; // CRH, SIP_C, ATP_C, PTPL_C (SPC-4 6.15.4)
      b[3] = 0x80 | (pr.aptpl ? 0x01 : 0); // TMV, PTPL_A; ALLOW COMMANDS 0
      b[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02; // WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX
      b[5] = 0x01; // EX_AC_AR
      break;
    case PrInSa.ReadFullStatus: {
      len = 8 + regs.reduce((n, [, r]) => n + 24 + r.transportId.length, 0);
      b = t.lu.pool.acquire(len);
      b.fill(0, 0, len);
      let o = 8;
      for (const [id, r] of regs) {
        // Full status descriptor (SPC-4 6.15.5).
        putBigU64(b, o, r.key);
        if (r.targetPort === undefined) b[o + 12] |= 0x02; // ALL_TG_PT
        if (pr.isHolderId(id)) {
          b[o + 12] |= 0x01; // R_HOLDER
          b[o + 13] = pr.res!.type;
        }
        if (r.targetPort !== undefined) put16(b, o + 18, r.relativePortId);
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

interface ProutParams {
  key: bigint;
  saKey: bigint;
  /** Byte 20 of the basic list; byte 17 for REGISTER AND MOVE. */
  flags: number;
  /** The whole list as received (pooled; valid until the handler returns). */
  list: Uint8Array;
  length: number;
}

const listLengthError = () => new ScsiError(SenseKey.IllegalRequest, Asc.ParameterListLengthError);

export async function prOut(t: Task): Promise<number> {
  const cdb = t.cdb;
  const sa = cdb[1]! & 0x1f;
  const scope = cdb[2]! >> 4;
  const type = cdb[2]! & 0x0f;
  const plen = u32(cdb, 5);
  const lu = t.lu;
  // SPC-4 6.16.3: the basic parameter list is 24 bytes; longer only with SPEC_I_PT or for REGISTER AND MOVE.
  if (plen < 24 || plen > MAX_PR_OUT_LIST) throw listLengthError();
  if (sa !== PrOutSa.RegisterAndMove && plen !== 24 && plen < 28) throw listLengthError();
  const needsType = sa === PrOutSa.Reserve || sa === PrOutSa.Release || sa === PrOutSa.Preempt || sa === PrOutSa.PreemptAndAbort;
  if (needsType && scope !== 0) throw badCdb(2, 7);
  if ((sa === PrOutSa.Reserve || sa === PrOutSa.Preempt || sa === PrOutSa.PreemptAndAbort) && !VALID_TYPES.has(type)) throw badCdb(2, 3);
  const list = lu.pool.acquire(plen);
  try {
    if ((await receiveOut(t, list, plen)) < plen) throw listLengthError();
    const p: ProutParams = {
      key: bigU64(list, 0),
      saKey: bigU64(list, 8),
      flags: sa === PrOutSa.RegisterAndMove ? list[17]! : list[20]!,
      list,
      length: plen,
    };
    if (sa !== PrOutSa.RegisterAndMove) {
      const specIpt = (p.flags & 0x08) !== 0;
      // SPC-4 6.16.3: SPEC_I_PT only with REGISTER; without it the list is exactly 24 bytes.
      if (specIpt && sa !== PrOutSa.Register) throw badParam(20, 3);
      if (!specIpt && plen !== 24) throw listLengthError();
    }
    await dispatchProut(t, sa, type, p);
  } finally {
    lu.pool.release(list);
  }
  await lu.pr.save();
  return plen;
}

async function dispatchProut(t: Task, sa: number, type: number, p: ProutParams): Promise<void> {
  const pr = t.lu.pr;
  const mine = pr.find(t.nexus);
  switch (sa) {
    case PrOutSa.Register:
    case PrOutSa.RegisterAndIgnore:
      return register(t, sa, p, mine);
    case PrOutSa.Reserve: {
      if (!mine || mine[1].key !== p.key) throw reservationConflict();
      if (pr.res) {
        // Re-reserving what one holds is a no-op; anything else conflicts (SPC-4 5.12.9).
        if (!pr.isHolderId(mine[0]) || pr.res.type !== type) throw reservationConflict();
        return;
      }
      pr.res = { holder: mine[0], type };
      return;
    }
    case PrOutSa.Release:
      if (!mine || mine[1].key !== p.key) throw reservationConflict();
      if (!pr.res || !pr.isHolderId(mine[0])) return;
      if (pr.res.type !== type) throw new ScsiError(SenseKey.IllegalRequest, INVALID_RELEASE);
      releaseReservation(t, mine[0]);
      return;
    case PrOutSa.Clear:
      if (!mine || mine[1].key !== p.key) throw reservationConflict();
      // SPC-4 5.12.11.6: every other registrant learns its reservation is gone.
      for (const [id, r] of pr.regs) if (id !== mine[0]) t.lu.unitAttentionMatching(r, Asc.ReservationsPreempted);
      pr.regs.clear();
      pr.res = undefined;
      pr.bump();
      return;
    case PrOutSa.Preempt:
    case PrOutSa.PreemptAndAbort:
      return preempt(t, sa, type, p, mine);
    case PrOutSa.RegisterAndMove:
      return registerAndMove(t, p, mine);
    default:
      throw badCdb(1, 4);
  }
}

/** REGISTER and REGISTER AND IGNORE EXISTING KEY (SPC-4 5.12.7, table "Register behaviors"). */
function register(t: Task, sa: number, p: ProutParams, mine: [string, Registration] | undefined): void {
  const pr = t.lu.pr;
  const specIpt = (p.flags & 0x08) !== 0;
  const allTgPt = (p.flags & 0x04) !== 0;
  const aptpl = (p.flags & 0x01) !== 0;
  if (!mine) {
    if (sa === PrOutSa.Register && p.key !== 0n) throw reservationConflict();
    if (p.saKey === 0n) return; // unregistering what is not registered: nothing to do
    const me = nexusMatch(t.nexus);
    const targetPort = allTgPt ? undefined : t.nexus.targetPort;
    // SPEC_I_PT (SPC-4 5.12.7.2): all TransportIDs are checked before anything is registered.
    const others = specIpt ? specifiedInitiators(t, p, me, targetPort) : [];
    pr.add(me, targetPort, p.saKey, t.nexus.relativePortId, t.nexus.transportId.slice());
    for (const o of others) pr.add(o.match, targetPort, p.saKey, t.nexus.relativePortId, o.bytes);
  } else {
    if (sa === PrOutSa.Register && mine[1].key !== p.key) throw reservationConflict();
    // A registered I_T nexus may not name others (SPC-4 6.16.3; LIO answers the same).
    if (specIpt) throw badParam(20, 3);
    if (p.saKey === 0n) unregister(t, mine[0]);
    else mine[1].key = p.saKey;
  }
  pr.aptpl = aptpl;
  pr.bump();
}

/** The TransportIDs after a SPEC_I_PT REGISTER's basic list (SPC-4 6.16.3); those already registered are skipped. */
function specifiedInitiators(t: Task, p: ProutParams, me: InitiatorMatch, targetPort: string | undefined): ParsedTransportId[] {
  const list = p.list;
  if (p.length < 28) throw listLengthError();
  const tpdl = u32(list, 24);
  if (28 + tpdl !== p.length) throw listLengthError();
  const pr = t.lu.pr;
  const out: ParsedTransportId[] = [];
  const seen = new Set<string>();
  for (let o = 28; o < 28 + tpdl; ) {
    const tid = parseTransportId(list, o, 28 + tpdl);
    if (!t.lu.protocolSeen(list[o]! & 0x0f)) throw badParam(o, 3);
    const id = registrationId(tid.match, targetPort);
    if (!sameInitiator(tid.match, me) && !pr.regs.has(id) && !seen.has(id)) {
      seen.add(id);
      out.push(tid);
    }
    o += tid.length;
  }
  return out;
}

/** PREEMPT and PREEMPT AND ABORT (SPC-4 5.12.11.4). */
function preempt(t: Task, sa: number, type: number, p: ProutParams, mine: [string, Registration] | undefined): void {
  const pr = t.lu.pr;
  const lu = t.lu;
  if (!mine || mine[1].key !== p.key) throw reservationConflict();
  const res = pr.res;
  const removed: Registration[] = [];
  const removeWhere = (pred: (id: string, r: Registration) => boolean): void => {
    for (const [id, r] of pr.regs) {
      if (id === mine[0] || !pred(id, r)) continue;
      pr.regs.delete(id);
      removed.push(r);
      lu.unitAttentionMatching(r, Asc.RegistrationsPreempted);
    }
  };
  const withKey = (k: bigint) => (_: string, r: Registration) => r.key === k;
  if (!res) {
    if (p.saKey === 0n) throw badParam(8);
    removeWhere(withKey(p.saKey));
    if (removed.length === 0) throw reservationConflict();
  } else if (allRegistrants(res.type)) {
    if (p.saKey === 0n) {
      // SPC-4 5.12.11.4.4: preempting an all-registrants reservation with key 0 removes everyone else.
      removeWhere(() => true);
      pr.res = { holder: mine[0], type };
    } else {
      removeWhere(withKey(p.saKey));
      if (removed.length === 0) throw reservationConflict();
    }
  } else {
    const holderKey = pr.regs.get(res.holder)?.key;
    if (holderKey === p.saKey) {
      removeWhere(withKey(p.saKey));
      const oldType = res.type;
      pr.res = { holder: mine[0], type };
      // A changed type is news to the remaining registrants (SPC-4 5.12.11.4.3).
      if (oldType !== type) for (const [id, r] of pr.regs) if (id !== mine[0]) lu.unitAttentionMatching(r, Asc.ReservationsReleased);
    } else {
      if (p.saKey === 0n) throw badParam(8);
      removeWhere(withKey(p.saKey));
      if (removed.length === 0) throw reservationConflict();
    }
  }
  if (sa === PrOutSa.PreemptAndAbort) lu.abortTasksOf((n) => removed.some((r) => coversNexus(r, n)));
  pr.bump();
}

/** REGISTER AND MOVE (SPC-4 5.12.8, 6.16.4). */
function registerAndMove(t: Task, p: ProutParams, mine: [string, Registration] | undefined): void {
  const pr = t.lu.pr;
  const list = p.list;
  if (!mine || mine[1].key !== p.key) throw reservationConflict();
  if (p.saKey === 0n) throw badParam(8);
  const rtpi = u16(list, 18);
  const tidLen = u32(list, 20);
  if (24 + tidLen !== p.length) throw listLengthError();
  const targetPort = t.lu.targetPortOf(rtpi);
  if (targetPort === undefined) throw badParam(18);
  const tid = parseTransportId(list, 24, 24 + tidLen);
  if (!t.lu.protocolSeen(list[24]! & 0x0f)) throw badParam(24, 3);
  // The destination must be another I_T nexus than the one moving the reservation.
  if (sameInitiator(tid.match, nexusMatch(t.nexus)) && targetPort === t.nexus.targetPort) throw badParam(24);
  if (!pr.res) throw new ScsiError(SenseKey.IllegalRequest, Asc.InvalidFieldInCdb);
  if (!pr.isHolderId(mine[0]) || allRegistrants(pr.res.type)) throw reservationConflict();
  const type = pr.res.type;
  const destId = registrationId(tid.match, targetPort);
  const dest = pr.regs.get(destId);
  if (dest) dest.key = p.saKey;
  else pr.add(tid.match, targetPort, p.saKey, rtpi, tid.bytes);
  pr.res = { holder: destId, type };
  // UNREG: the source leaves without releasing (the reservation is not its any more).
  if (p.flags & 0x02) pr.regs.delete(mine[0]);
  pr.aptpl = (p.flags & 0x01) !== 0;
  pr.bump();
}

export function coversNexus(r: Registration, n: Nexus): boolean {
  return matches(r.initiator, n) && (r.targetPort === undefined || r.targetPort === n.targetPort);
}

function releaseReservation(t: Task, holder: string): void {
  const pr = t.lu.pr;
  const type = pr.res!.type;
  pr.res = undefined;
  // Registrants of the other types learn the reservation is gone (SPC-4 5.12.11.2).
  if (type !== PrType.WriteExclusive && type !== PrType.ExclusiveAccess)
    for (const [id, r] of pr.regs) if (id !== holder) t.lu.unitAttentionMatching(r, Asc.ReservationsReleased);
}

function unregister(t: Task, id: string): void {
  const pr = t.lu.pr;
  const res = pr.res;
  pr.regs.delete(id);
  if (!res) return;
  if (allRegistrants(res.type)) {
    // The last registrant of an all-registrants reservation takes it with it (SPC-4 5.12.11.3).
    if (pr.regs.size === 0) pr.res = undefined;
    else if (res.holder === id) res.holder = pr.regs.keys().next().value!;
  } else if (res.holder === id) {
    pr.res = undefined;
    if (registrantsOnly(res.type)) for (const r of pr.regs.values()) t.lu.unitAttentionMatching(r, Asc.ReservationsReleased);
  }
}

export function prFile(stateDir: string | undefined, serial: string): string | undefined {
  return stateDir ? join(stateDir, `pr-${serial}.json`) : undefined;
}
