// EXTENDED COPY (LID1) and RECEIVE COPY RESULTS (SPC-4 6.3, 6.18): block-to-block copies
// (segment descriptor 0x02) between logical units named by identification target
// descriptors (0xE4) carrying their NAA designator. Only this LU can be named for now:
// another one is "not reachable", which is what SPC-4 says for a copy target it cannot use.

import { CHUNK_BYTES } from './bufpool.js';
import { Asc, badCdb, badParam, ScsiError, SenseKey } from './sense.js';
import { put16, put32, u16, u32, u64 } from '../common/bytes.js';
import { receiveOut, sendIn, type Task } from './task.js';

const MAX_TARGET_DESCRIPTORS = 2;
const MAX_SEGMENT_DESCRIPTORS = 1;
const MAX_DESCRIPTOR_LIST = 1024;
const MAX_SEGMENT_BYTES = 64 << 20;
const HEADER = 16;
const TARGET_DESCRIPTOR = 32;
const IDENTIFICATION_DESCRIPTOR = 0xe4;
const BLOCK_TO_BLOCK = 0x02;

const TOO_MANY_TARGET_DESCRIPTORS = 0x2606 as Asc;
const UNSUPPORTED_TARGET_DESCRIPTOR = 0x2607 as Asc;
const TOO_MANY_SEGMENT_DESCRIPTORS = 0x2608 as Asc;
const UNSUPPORTED_SEGMENT_DESCRIPTOR = 0x2609 as Asc;
const COPY_TARGET_NOT_REACHABLE = 0x0d02 as Asc;

const illegal = (asc: Asc) => new ScsiError(SenseKey.IllegalRequest, asc);
const listLength = () => new ScsiError(SenseKey.IllegalRequest, Asc.ParameterListLengthError);
const copyAborted = (asc: Asc = Asc.NoAdditional) => new ScsiError(SenseKey.CopyAborted, asc);

interface Segment {
  blocks: number;
  src: number;
  dst: number;
}

export async function extendedCopy(t: Task): Promise<number> {
  const len = u32(t.cdb, 10);
  if (len === 0) return 0; // SPC-4 6.3.1: no copy, not an error
  if (len < HEADER) throw listLength();
  if (len > HEADER + MAX_DESCRIPTOR_LIST) throw listLength();
  const lu = t.lu;
  const p = lu.pool.acquire(len);
  const segments: Segment[] = [];
  let listId = 0;
  let holdResults = false;
  try {
    const got = await receiveOut(t, p, len);
    listId = p[0]!;
    // LIST ID USAGE 11b: the initiator will not ask for results (SPC-4 6.3.1).
    holdResults = ((p[1]! >> 3) & 3) !== 3;
    const tdl = u16(p, 2);
    const sdl = u32(p, 8);
    const inline = u32(p, 12);
    if (HEADER + tdl + sdl + inline > got) throw listLength();
    if (inline !== 0) throw badParam(12);
    if (tdl % TARGET_DESCRIPTOR !== 0) throw listLength();
    const targets = tdl / TARGET_DESCRIPTOR;
    if (targets > MAX_TARGET_DESCRIPTORS) throw illegal(TOO_MANY_TARGET_DESCRIPTORS);
    let nseg = 0;
    for (let o = HEADER + tdl; o < HEADER + tdl + sdl; o += 4 + u16(p, o + 2)) nseg++;
    if (nseg > MAX_SEGMENT_DESCRIPTORS) throw illegal(TOO_MANY_SEGMENT_DESCRIPTORS);

    for (let i = 0; i < targets; i++) {
      const o = HEADER + i * TARGET_DESCRIPTOR;
      if (p[o] !== IDENTIFICATION_DESCRIPTOR) throw illegal(UNSUPPORTED_TARGET_DESCRIPTOR);
      // LU ID TYPE (byte 1 bits 7-6) is not checked: the designator alone names the LU, and the
      // installed libiscsi's ValidTgtDescr expects a reserved LU ID TYPE to be ignored.
      if (p[o + 1]! & 0x20) throw copyAborted(COPY_TARGET_NOT_REACHABLE); // NUL: no such device
      // Designator: NAA (type 3), 16 bytes, equal to this LU's.
      const naaOk = (p[o + 5]! & 0x0f) === 3 && p[o + 7] === 16 && lu.naa.every((b, k) => p[o + 8 + k] === b);
      if (!naaOk || (p[o + 1]! & 0x1f) !== 0) throw copyAborted(COPY_TARGET_NOT_REACHABLE);
      const bl = (p[o + 29]! << 16) | (p[o + 30]! << 8) | p[o + 31]!;
      if (bl !== lu.blockSize) throw copyAborted(COPY_TARGET_NOT_REACHABLE);
    }
    for (let o = HEADER + tdl; o < HEADER + tdl + sdl; o += 4 + u16(p, o + 2)) {
      if (p[o] !== BLOCK_TO_BLOCK) throw illegal(UNSUPPORTED_SEGMENT_DESCRIPTOR);
      if (u16(p, o + 2) !== 0x18) throw listLength();
      if (u16(p, o + 4) >= targets || u16(p, o + 6) >= targets) throw copyAborted(COPY_TARGET_NOT_REACHABLE);
      const s = { blocks: u16(p, o + 10), src: u64(p, o + 12), dst: u64(p, o + 20) };
      if (s.src + s.blocks > lu.blockCount || s.dst + s.blocks > lu.blockCount) throw copyAborted();
      if (s.blocks * lu.blockSize > MAX_SEGMENT_BYTES) throw copyAborted();
      segments.push(s);
    }
  } finally {
    lu.pool.release(p);
  }
  let bytes = 0;
  for (const s of segments) {
    await copyBlocks(t, s);
    bytes += s.blocks * lu.blockSize;
  }
  if (holdResults) lu.copyResults.set(`${t.key}\u0000${listId}`, { segments: segments.length, bytes });
  return len;
}

async function copyBlocks(t: Task, s: Segment): Promise<void> {
  const lu = t.lu;
  const bs = lu.blockSize;
  const chunk = Math.max(1, Math.floor(CHUNK_BYTES / bs));
  const buf = lu.pool.acquire(Math.min(chunk, Math.max(1, s.blocks)) * bs);
  const unlock = await lu.lockRange(s.dst, s.blocks);
  try {
    // Overlapping ranges copy as if through a buffer the size of the segment: go backwards when dst > src.
    const backwards = s.dst > s.src && s.dst < s.src + s.blocks;
    for (let done = 0; done < s.blocks; ) {
      const n = Math.min(chunk, s.blocks - done);
      const off = backwards ? s.blocks - done - n : done;
      const view = buf.subarray(0, n * bs);
      await lu.backstore.read(s.src + off, n, view);
      await lu.backstore.write(s.dst + off, n, view);
      done += n;
    }
  } finally {
    unlock();
    lu.pool.release(buf);
  }
}

export async function receiveCopyResults(t: Task): Promise<number> {
  const sa = t.cdb[1]! & 0x1f;
  const alloc = u32(t.cdb, 10);
  if (sa === 0x00) return copyStatus(t, alloc);
  const b = t.lu.pool.acquire(64);
  try {
    const len = 46;
    b.fill(0, 0, len);
    put32(b, 0, len - 4);
    put16(b, 8, MAX_TARGET_DESCRIPTORS);
    put16(b, 10, MAX_SEGMENT_DESCRIPTORS);
    put32(b, 12, MAX_DESCRIPTOR_LIST);
    put32(b, 16, MAX_SEGMENT_BYTES);
    put16(b, 34, 1); // total concurrent copies
    b[36] = 1; // maximum concurrent copies
    b[37] = 9; // data segment granularity 512 bytes (log2)
    b[43] = 2; // implemented descriptor list length
    b[44] = BLOCK_TO_BLOCK;
    b[45] = IDENTIFICATION_DESCRIPTOR;
    return await sendIn(t, b, Math.min(len, alloc));
  } finally {
    t.lu.pool.release(b);
  }
}

/** COPY STATUS (SPC-4 6.18.2): copies run to completion inside EXTENDED COPY, so a held result is always "completed". */
async function copyStatus(t: Task, alloc: number): Promise<number> {
  const r = t.lu.copyResults.get(`${t.key}\u0000${t.cdb[2]!}`);
  if (!r) throw badCdb(2); // no such list identifier from this nexus
  const b = t.lu.pool.acquire(12);
  try {
    b.fill(0, 0, 12);
    put32(b, 0, 8);
    b[4] = 0x01; // operation completed without errors
    put16(b, 5, r.segments);
    // TRANSFER COUNT UNITS (SPC-4 6.18.2): 00h bytes while they fit 32 bits, else F1h kibibytes.
    const kib = r.bytes > 0xffffffff;
    b[7] = kib ? 0xf1 : 0x00;
    put32(b, 8, kib ? Math.floor(r.bytes / 1024) : r.bytes);
    return await sendIn(t, b, Math.min(12, alloc));
  } finally {
    t.lu.pool.release(b);
  }
}
