// Primary commands (SPC-4): identification, sense, mode pages, LUN inventory, ports.

import { TARGET_PORT_GROUP } from './alua.js';
import { Op } from './opcodes.js';
import { Asc, badCdb, badParam, buildSense, ScsiError, SenseKey } from './sense.js';
import { put16, put32, u16, u32 } from '../common/bytes.js';
import { receiveOut, sendIn, type Task } from './task.js';

export const VENDOR = 'RDMATGT ';
export const PRODUCT = 'rdma-target     ';
export const REVISION = '0010';

function ascii(b: Uint8Array, o: number, s: string): void {
  for (let i = 0; i < s.length; i++) b[o + i] = s.charCodeAt(i) & 0x7f;
}

export async function testUnitReady(): Promise<number> {
  return 0;
}

const VPD_PAGES = [0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2];

export async function inquiry(t: Task): Promise<number> {
  const cdb = t.cdb;
  const evpd = (cdb[1]! & 1) !== 0;
  if (cdb[1]! & 0x02) throw badCdb(1, 1); // CmdDt is obsolete (SPC-4 6.6)
  const alloc = u16(cdb, 3);
  const b = t.lu.pool.acquire(512);
  try {
    b.fill(0, 0, 512);
    let len: number;
    if (!evpd) {
      if (cdb[2] !== 0) throw badCdb(2);
      len = standardInquiry(t, b);
    } else {
      len = vpd(t, cdb[2]!, b);
    }
    return await sendIn(t, b, Math.min(len, alloc));
  } finally {
    t.lu.pool.release(b);
  }
}

function standardInquiry(_t: Task, b: Uint8Array): number {
  b[0] = 0x00; // direct-access block device, connected
  b[2] = 0x06; // SPC-4
  b[3] = 0x12; // HISUP, response data format 2
  b[5] = 0x10 | 0x08; // TPGS=01 (implicit ALUA: REPORT TARGET PORT GROUPS), 3PC (EXTENDED COPY)
  b[6] = 0x00;
  b[7] = 0x02; // CMDQUE
  ascii(b, 8, VENDOR);
  ascii(b, 16, PRODUCT);
  ascii(b, 32, REVISION);
  // Version descriptors (SPC-4 6.6.2 table): SAM-5, SPC-4, SBC-3, iSCSI.
  put16(b, 58, 0x00a0);
  put16(b, 60, 0x0460);
  put16(b, 62, 0x04c0);
  put16(b, 64, 0x0960);
  b[4] = 66 - 5;
  return 66;
}

function vpd(t: Task, page: number, b: Uint8Array): number {
  const lu = t.lu;
  b[0] = 0x00;
  b[1] = page;
  switch (page) {
    case 0x00:
      VPD_PAGES.forEach((p, i) => (b[4 + i] = p));
      put16(b, 2, VPD_PAGES.length);
      return 4 + VPD_PAGES.length;
    case 0x80: {
      ascii(b, 4, lu.serial);
      put16(b, 2, lu.serial.length);
      return 4 + lu.serial.length;
    }
    case 0x83:
      return deviceIdentification(t, b);
    case 0xb0: {
      // Block Limits (SBC-3 6.5.3).
      put16(b, 2, 0x3c);
      b[4] = 0x01; // WSNZ
      b[5] = lu.maxCompareAndWrite;
      put16(b, 6, 1);
      put32(b, 8, lu.maxTransferBlocks);
      put32(b, 12, lu.maxTransferBlocks);
      put32(b, 16, lu.maxTransferBlocks); // maximum prefetch length
      if (lu.thin) {
        put32(b, 20, lu.maxUnmapBlocks);
        put32(b, 24, lu.maxUnmapDescriptors);
        put32(b, 28, 1); // optimal unmap granularity
      }
      put32(b, 40, lu.maxWriteSame); // low half of the 8-byte MAXIMUM WRITE SAME LENGTH
      return 0x40;
    }
    case 0xb1:
      // Block Device Characteristics (SBC-3 6.5.2): non-rotating medium.
      put16(b, 2, 0x3c);
      put16(b, 4, 0x0001);
      return 0x40;
    case 0xb2:
      // Logical Block Provisioning (SBC-3 6.5.4).
      put16(b, 2, 4);
      if (lu.thin) {
        b[5] = 0x80 | 0x40 | 0x20 | 0x04; // LBPU, LBPWS, LBPWS10, LBPRZ
        b[6] = 0x02; // thin provisioned
      }
      return 8;
    default:
      throw badCdb(2);
  }
}

function deviceIdentification(t: Task, b: Uint8Array): number {
  const lu = t.lu;
  const proto = (t.nexus.transportId[0] ?? 5) & 0x0f;
  let o = 4;
  // NAA IEEE Registered Extended (type 3, LU association, binary): 6 001405 + serial bits (LIO form).
  b[o] = 0x01;
  b[o + 1] = 0x03;
  b[o + 3] = 16;
  b.set(lu.naa, o + 4);
  o += 20;
  // T10 vendor ID (type 1, ASCII): vendor + serial, as LIO lists it.
  const t10 = VENDOR + lu.serial;
  b[o] = 0x02;
  b[o + 1] = 0x01;
  b[o + 3] = t10.length;
  ascii(b, o + 4, t10);
  o += 4 + t10.length;
  // Relative target port (type 4, target port association, PIV).
  b[o] = (proto << 4) | 0x01;
  b[o + 1] = 0x80 | 0x10 | 0x04;
  b[o + 3] = 4;
  put16(b, o + 6, t.nexus.relativePortId);
  o += 8;
  // Target port group (type 5).
  b[o] = (proto << 4) | 0x01;
  b[o + 1] = 0x80 | 0x10 | 0x05;
  b[o + 3] = 4;
  put16(b, o + 6, TARGET_PORT_GROUP);
  o += 8;
  // SCSI name string of the target port (type 8, UTF-8), NUL-terminated, padded to 4 (SPC-4 7.8.6.11).
  const name = t.nexus.targetPort;
  const nlen = Math.min((name.length + 4) & ~3, 252);
  if (o + 4 + nlen <= 508) {
    b[o] = (proto << 4) | 0x03;
    b[o + 1] = 0x80 | 0x10 | 0x08;
    b[o + 3] = nlen;
    ascii(b, o + 4, name.slice(0, nlen - 1));
    o += 4 + nlen;
  }
  put16(b, 2, o - 4);
  return o;
}

/**
 * The LUN list REPORT LUNS returns for `select` (SPC-5 6.33): every LU here is an ordinary
 * one (no well-known, administrative or subsidiary LUs), so 00h, 02h and 11h list them
 * all, 01h and 10h list none, and 12h (subsidiaries of an administrative LU) is invalid.
 */
export function reportLunsSelection(cdb: Uint8Array, luns: readonly number[]): readonly number[] {
  switch (cdb[2]) {
    case 0x00:
    case 0x02:
    case 0x11:
      return luns;
    case 0x01:
    case 0x10:
      return [];
    default:
      throw badCdb(2);
  }
}

/** REPORT LUNS parameter data: peripheral addressing below 256, flat space above (SAM-5 4.7). */
export function encodeLunList(luns: readonly number[], b: Uint8Array): number {
  const len = 8 + 8 * luns.length;
  b.fill(0, 0, len);
  put32(b, 0, 8 * luns.length);
  luns.forEach((l, i) => {
    if (l < 256) b[8 + i * 8 + 1] = l;
    else put16(b, 8 + i * 8, 0x4000 | l);
  });
  return len;
}

export async function reportLuns(t: Task): Promise<number> {
  const cdb = t.cdb;
  const luns = reportLunsSelection(cdb, t.luns);
  const alloc = u32(cdb, 6);
  // SPC-4 6.33: an allocation length under 16 is invalid.
  if (alloc < 16) throw badCdb(6);
  t.lu.clearUnitAttention(t.key, Asc.ReportedLunsDataChanged);
  const b = t.lu.pool.acquire(8 + 8 * luns.length);
  try {
    const len = encodeLunList(luns, b);
    return await sendIn(t, b, Math.min(len, alloc));
  } finally {
    t.lu.pool.release(b);
  }
}

export async function requestSense(t: Task): Promise<number> {
  const cdb = t.cdb;
  const desc = (cdb[1]! & 1) !== 0;
  const alloc = cdb[4]!;
  const ua = t.lu.takeUnitAttention(t.key);
  const s = ua !== undefined ? buildSense(desc, SenseKey.UnitAttention, ua) : buildSense(desc, SenseKey.NoSense, Asc.NoAdditional);
  return sendIn(t, s, Math.min(s.length, alloc));
}

export async function startStopUnit(t: Task): Promise<number> {
  // Fixed media: START/STOP and power conditions have nothing to do (SBC-3 5.25).
  const pc = t.cdb[4]! >> 4;
  if (pc !== 0 && pc !== 1 && pc !== 2 && pc !== 3 && pc !== 7 && pc !== 0xa && pc !== 0xb) throw badCdb(4, 7);
  return 0;
}

export async function preventAllow(t: Task): Promise<number> {
  // PREVENT values 2 and 3 are obsolete (SPC-4 6.13).
  if ((t.cdb[4]! & 3) > 1) throw badCdb(4, 1);
  return 0;
}

// ---- mode pages (SPC-4 7.5, SBC-3 6.4) ----------------------------------------

const enum PageControl {
  Current = 0,
  Changeable = 1,
  Default = 2,
  Saved = 3,
}

const PAGE_CACHING = 0x08;
const PAGE_CONTROL = 0x0a;
const PAGE_IE = 0x1c;
const PAGE_ALL = 0x3f;
const PAGES = [PAGE_CACHING, PAGE_CONTROL, PAGE_IE];

/** Writes one mode page at b[o]; returns its length. */
function modePage(t: Task, page: number, pc: PageControl, b: Uint8Array, o: number): number {
  const lu = t.lu;
  const ch = pc === PageControl.Changeable;
  const def = pc === PageControl.Default;
  switch (page) {
    case PAGE_CACHING:
      b.fill(0, o, o + 20);
      b[o] = PAGE_CACHING;
      b[o + 1] = 0x12;
      b[o + 2] = ch ? 0x04 : (def ? lu.defaultWce : lu.mode.wce) ? 0x04 : 0; // WCE
      return 20;
    case PAGE_CONTROL:
      b.fill(0, o, o + 12);
      b[o] = PAGE_CONTROL;
      b[o + 1] = 0x0a;
      if (ch) {
        b[o + 2] = 0x04; // D_SENSE
        b[o + 4] = 0x08; // SWP
      } else {
        b[o + 2] = !def && lu.mode.dsense ? 0x04 : 0;
        b[o + 3] = 0x10; // queue algorithm modifier 1: unrestricted reordering
        b[o + 4] = !def && lu.mode.swp ? 0x08 : 0;
        b[o + 5] = 0x40; // TAS: aborted tasks of other nexuses end with TASK ABORTED
        put16(b, o + 8, 0xffff); // busy timeout: unlimited
      }
      return 12;
    case PAGE_IE:
      b.fill(0, o, o + 12);
      b[o] = PAGE_IE;
      b[o + 1] = 0x0a;
      return 12;
    default:
      return 0;
  }
}

export async function modeSense(t: Task): Promise<number> {
  const cdb = t.cdb;
  const ten = cdb[0] === Op.ModeSense10;
  const dbd = (cdb[1]! & 0x08) !== 0;
  const llbaa = ten && (cdb[1]! & 0x10) !== 0;
  const pc = (cdb[2]! >> 6) as PageControl;
  const page = cdb[2]! & 0x3f;
  const subpage = cdb[3]!;
  const alloc = ten ? u16(cdb, 7) : cdb[4]!;
  if (pc === PageControl.Saved) throw new ScsiError(SenseKey.IllegalRequest, Asc.SavingParametersNotSupported);
  if (page !== PAGE_ALL && !PAGES.includes(page)) throw badCdb(2, 5);
  if (subpage !== 0 && !(subpage === 0xff && page === PAGE_ALL)) throw badCdb(3);
  const lu = t.lu;
  const b = lu.pool.acquire(256);
  try {
    b.fill(0, 0, 256);
    const hdr = ten ? 8 : 4;
    const bdl = dbd ? 0 : llbaa ? 16 : 8;
    const wp = t.mappedReadOnly || lu.writeProtected;
    const devSpecific = (wp ? 0x80 : 0) | 0x10; // WP, DPOFUA (SBC-3 6.4.1)
    let o = hdr;
    if (bdl === 8) {
      put32(b, o, Math.min(lu.blockCount, 0xffffffff) & 0x00ffffff);
      if (lu.blockCount > 0xffffff) put32(b, o, 0x00ffffff);
      put32(b, o + 4, lu.blockSize & 0x00ffffff);
      o += 8;
    } else if (bdl === 16) {
      put32(b, o, Math.floor(lu.blockCount / 0x100000000));
      put32(b, o + 4, lu.blockCount >>> 0);
      put32(b, o + 12, lu.blockSize);
      o += 16;
    }
    for (const p of page === PAGE_ALL ? PAGES : [page]) o += modePage(t, p, pc, b, o);
    if (ten) {
      put16(b, 0, o - 2);
      b[3] = devSpecific;
      b[4] = llbaa ? 1 : 0;
      put16(b, 6, bdl);
    } else {
      b[0] = o - 1;
      b[2] = devSpecific;
      b[3] = bdl;
    }
    return await sendIn(t, b, Math.min(o, alloc));
  } finally {
    lu.pool.release(b);
  }
}

export async function modeSelect(t: Task): Promise<number> {
  const cdb = t.cdb;
  const ten = cdb[0] === Op.ModeSelect10;
  if ((cdb[1]! & 0x10) === 0) throw badCdb(1, 4); // PF: only SPC-format pages
  if (cdb[1]! & 0x01) throw badCdb(1, 0); // SP: nothing is saveable
  const len = ten ? u16(cdb, 7) : cdb[4]!;
  if (len === 0) return 0;
  const lu = t.lu;
  const p = lu.pool.acquire(len);
  try {
    await receiveOut(t, p, len);
    const hdr = ten ? 8 : 4;
    if (len < hdr) throw new ScsiError(SenseKey.IllegalRequest, Asc.ParameterListLengthError);
    const bdl = ten ? u16(p, 6) : p[3]!;
    let o = hdr + bdl;
    if (o > len) throw new ScsiError(SenseKey.IllegalRequest, Asc.ParameterListLengthError);
    checkBlockDescriptors(t, p, hdr, bdl, ten && (p[4]! & 0x01) !== 0);
    const cur = lu.pool.acquire(32);
    const chg = lu.pool.acquire(32);
    const next = { ...lu.mode };
    try {
      while (o < len) {
        if (o + 2 > len) throw new ScsiError(SenseKey.IllegalRequest, Asc.ParameterListLengthError);
        const code = p[o]! & 0x3f;
        if (p[o]! & 0x40) throw badParam(o, 6); // SPF: no subpages here
        const plen = modePage(t, code, PageControl.Current, cur, 0);
        if (plen === 0) throw badParam(o, 5);
        if (p[o + 1]! !== plen - 2) throw badParam(o + 1);
        if (o + plen > len) throw new ScsiError(SenseKey.IllegalRequest, Asc.ParameterListLengthError);
        modePage(t, code, PageControl.Changeable, chg, 0);
        // Bits that are not changeable must be sent as they are now (SPC-4 6.11).
        for (let i = 2; i < plen; i++) if (((p[o + i]! ^ cur[i]!) & ~chg[i]!) !== 0) throw badParam(o + i);
        if (code === PAGE_CACHING) next.wce = (p[o + 2]! & 0x04) !== 0;
        if (code === PAGE_CONTROL) {
          next.dsense = (p[o + 2]! & 0x04) !== 0;
          next.swp = (p[o + 4]! & 0x08) !== 0;
        }
        o += plen;
      }
    } finally {
      lu.pool.release(cur);
      lu.pool.release(chg);
    }
    lu.setMode(next, t.key);
    return len;
  } finally {
    lu.pool.release(p);
  }
}

/**
 * Block descriptors in MODE SELECT (SBC-3 6.4.2) may restate the block length but not
 * change it: there is no FORMAT UNIT here. A zero block length means "unchanged".
 */
function checkBlockDescriptors(t: Task, p: Uint8Array, hdr: number, bdl: number, longLba: boolean): void {
  const size = longLba ? 16 : 8;
  if (bdl % size !== 0) throw badParam(longLba ? 6 : 3);
  for (let o = hdr; o < hdr + bdl; o += size) {
    const blockLength = longLba ? u32(p, o + 12) : (p[o + 5]! << 16) | (p[o + 6]! << 8) | p[o + 7]!;
    if (blockLength !== 0 && blockLength !== t.lu.blockSize) throw badParam(longLba ? o + 12 : o + 5);
  }
}
