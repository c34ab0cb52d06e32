// Block commands (SBC-3). Plain READ/WRITE hand the RAM backstore's own memory to the
// fabric (zero copy); other backstores go through pooled 1 MiB chunks.

import { CHUNK_BYTES } from './bufpool.js';
import { cdbBlocks, cdbLba, lbaRange, type Range } from './cdb.js';
import { Op } from './opcodes.js';
import { Asc, badCdb, badParam, lbaOutOfRange, ScsiError, SenseKey } from './sense.js';
import { put32, put64, u16, u32, u64 } from '../common/bytes.js';
import { dataIn, dataOut, IoNext, receiveOut, sendIn, type Task } from './task.js';
import { ScsiStatus } from './types.js';

/** LBA range check as LIO's sbc_check... does: lba + blocks may equal the capacity. */
function checkRange(t: Task, r: Range): void {
  checkBlocks(t, r.lba, r.blocks);
}

function checkBlocks(t: Task, lba: number, blocks: number): void {
  if (lba + blocks > t.lu.blockCount || lba > t.lu.blockCount) throw lbaOutOfRange();
}

/** RD/WR/VR/ORPROTECT (byte 1 bits 7-5): no protection information here, so nonzero is invalid (SBC-3 5.x). */
function checkProtect(cdb: Uint8Array): void {
  if ((cdb[1]! & 0xe0) !== 0) throw badCdb(1, 7);
}

function writeProtected(t: Task): void {
  if (t.mappedReadOnly || t.lu.writeProtected) throw new ScsiError(SenseKey.DataProtect, Asc.WriteProtected);
}

// READ and WRITE are the hot path: callback handlers (table.ts Handler) that end the task
// through Task.end, with no promise or closure per command when the LU's memory can be
// handed to the fabric (RAM: zero copy) and no other writer holds the range. Their CDB
// checks throw synchronously, which the dispatcher (lu.ts start) turns into the status.
export function read(t: Task): void {
  const cdb = t.cdb;
  if (cdb[0] !== Op.Read6) checkProtect(cdb);
  const lba = cdbLba(cdb);
  const blocks = cdbBlocks(cdb);
  checkBlocks(t, lba, blocks);
  const lu = t.lu;
  const bs = lu.blockSize;
  const total = blocks * bs;
  const moved = Math.min(total, t.inLength);
  if (moved === 0) return t.end(undefined, total);
  const nb = Math.ceil(moved / bs);
  const v = lu.backstore.view?.(lba, nb);
  if (v) {
    // Zero copy (RAM): one Data-In from the LU's memory.
    t.next = IoNext.ReadView;
    t.total = total;
    t.io.dataIn(moved === v.length ? v : v.subarray(0, moved), 0, t.ioDone);
    return;
  }
  moveInChunks(t, lba, nb, moved, total).then(
    (n) => t.end(undefined, n),
    (e: unknown) => t.end(e, 0),
  );
}

/** The hot path's data movement ended (Task.ioDone): finish what read() / write() started. */
export function ioContinue(t: Task, e: Error | undefined): void {
  const next = t.next;
  t.next = IoNext.None;
  if (next === IoNext.ReadView) return t.end(e, t.total);
  if (next !== IoNext.WriteView) return t.end(e ?? new Error('data moved for a task that waited for none'), 0);
  const lu = t.lu;
  if (e) {
    lu.locks.unlock(t.rangeLock);
    return t.end(e, 0);
  }
  lu.backstore.written?.(t.lba, t.blocks);
  if (!t.fua) {
    lu.locks.unlock(t.rangeLock);
    return t.end(undefined, t.total);
  }
  lu.backstore.flush().then(
    () => {
      lu.locks.unlock(t.rangeLock);
      t.end(undefined, t.total);
    },
    (err: unknown) => {
      lu.locks.unlock(t.rangeLock);
      t.end(err, 0);
    },
  );
}

/** Through pooled chunks: the backstore reads into one, the fabric sends from it. */
async function moveInChunks(t: Task, lba: number, nb: number, moved: number, total: number): Promise<number> {
  const lu = t.lu;
  const bs = lu.blockSize;
  const chunkBlocks = Math.max(1, Math.floor(CHUNK_BYTES / bs));
  const buf = lu.pool.acquire(Math.min(chunkBlocks, nb) * bs);
  try {
    for (let off = 0; off < moved && !t.aborted; ) {
      const n = Math.min(chunkBlocks, Math.ceil((moved - off) / bs));
      await lu.backstore.read(lba + off / bs, n, buf.subarray(0, n * bs));
      const bytes = Math.min(n * bs, moved - off);
      await dataIn(t.io, buf.subarray(0, bytes), off);
      off += bytes;
    }
  } finally {
    lu.pool.release(buf);
  }
  return total;
}

export function write(t: Task): void {
  const cdb = t.cdb;
  if (cdb[0] !== Op.Write6) checkProtect(cdb);
  const lba = cdbLba(cdb);
  const blocks = cdbBlocks(cdb);
  checkBlocks(t, lba, blocks);
  writeProtected(t);
  const fua = cdb[0] !== Op.Write6 && (cdb[1]! & 0x08) !== 0;
  const lu = t.lu;
  const bs = lu.blockSize;
  const total = blocks * bs;
  const moved = Math.min(total, t.outLength);
  if (moved === 0) return t.end(undefined, total);
  const nb = Math.ceil(moved / bs);
  const v = lu.backstore.view?.(lba, nb);
  if (v && lu.locks.tryLock(lba, nb, t.rangeLock)) {
    // Zero copy (RAM), no other writer on the range: Data-Out straight into the LU's memory.
    t.next = IoNext.WriteView;
    t.lba = lba;
    t.blocks = nb;
    t.total = total;
    t.fua = fua;
    t.io.dataOut(moved === v.length ? v : v.subarray(0, moved), 0, t.ioDone);
    return;
  }
  moveOut(t, lba, blocks, fua).then(
    (n) => t.end(undefined, n),
    (e: unknown) => t.end(e, 0),
  );
}

/** Writes Data-Out to the blocks; with a short EDTL only what arrived is written (libiscsi Write10Residuals). */
async function moveOut(t: Task, lba: number, blocks: number, fua: boolean): Promise<number> {
  const lu = t.lu;
  const bs = lu.blockSize;
  const total = blocks * bs;
  const moved = Math.min(total, t.outLength);
  if (moved === 0) return total;
  const nb = Math.ceil(moved / bs);
  const held = lu.locks.tryLock(lba, nb) ?? (await lu.locks.acquire(lba, nb));
  try {
    // Aborted while waiting for an overlapping writer: nothing of it may reach the medium.
    if (t.aborted) return total;
    const v = lu.backstore.view?.(lba, nb);
    if (v) {
      await dataOut(t.io, moved === v.length ? v : v.subarray(0, moved), 0);
      lu.backstore.written?.(lba, nb);
      if (fua) await lu.backstore.flush();
      return total;
    }
    const chunkBlocks = Math.max(1, Math.floor(CHUNK_BYTES / bs));
    const buf = lu.pool.acquire(Math.min(chunkBlocks, nb) * bs);
    try {
      for (let off = 0; off < moved && !t.aborted; ) {
        const n = Math.min(chunkBlocks, Math.ceil((moved - off) / bs));
        const bytes = Math.min(n * bs, moved - off);
        const chunk = buf.subarray(0, n * bs);
        // A partial last block keeps the bytes the initiator did not send.
        if (bytes < n * bs) await lu.backstore.read(lba + off / bs, n, chunk);
        await dataOut(t.io, buf.subarray(0, bytes), off);
        // An aborted task writes nothing more (SAM-5 7.2: nothing of it may follow the TMF's completion).
        if (t.aborted) break;
        await lu.backstore.write(lba + off / bs, n, chunk, { fua });
        off += bytes;
      }
    } finally {
      lu.pool.release(buf);
    }
  } finally {
    lu.locks.unlock(held);
  }
  return total;
}

export async function writeAndVerify(t: Task): Promise<number> {
  checkProtect(t.cdb);
  const r = lbaRange(t.cdb);
  checkRange(t, r);
  writeProtected(t);
  // Stable storage is what makes the verify meaningful (SBC-3 5.41).
  return moveOut(t, r.lba, r.blocks, true);
}

/** Reads `blocks` into a pooled buffer (caller releases). */
async function readBlocks(t: Task, lba: number, blocks: number): Promise<Uint8Array> {
  const buf = t.lu.pool.acquire(blocks * t.lu.blockSize);
  await t.lu.backstore.read(lba, blocks, buf.subarray(0, blocks * t.lu.blockSize));
  return buf;
}

function firstDifference(a: Uint8Array, b: Uint8Array, len: number): number {
  for (let i = 0; i < len; i++) if (a[i] !== b[i]) return i;
  return -1;
}

function miscompare(offset: number): ScsiError {
  return new ScsiError(SenseKey.Miscompare, Asc.MiscompareDuringVerify, undefined, offset);
}

export async function verify(t: Task): Promise<number> {
  const cdb = t.cdb;
  checkProtect(cdb);
  const bytchk = (cdb[1]! >> 1) & 3;
  if (bytchk === 2) throw badCdb(1, 2);
  const r = lbaRange(cdb);
  checkRange(t, r);
  if (bytchk === 0 || r.blocks === 0) return 0; // medium verification only: RAM and files have no media errors
  const bs = t.lu.blockSize;
  const outLen = bytchk === 3 ? bs : r.blocks * bs;
  const data = t.lu.pool.acquire(outLen);
  try {
    await receiveOut(t, data, outLen);
    for (let done = 0; done < r.blocks; ) {
      const n = Math.min(r.blocks - done, Math.max(1, Math.floor(CHUNK_BYTES / bs)));
      const cur = await readBlocks(t, r.lba + done, n);
      try {
        for (let b = 0; b < n; b++) {
          const ref = bytchk === 3 ? data.subarray(0, bs) : data.subarray((done + b) * bs, (done + b + 1) * bs);
          const d = firstDifference(cur.subarray(b * bs, (b + 1) * bs), ref, bs);
          if (d >= 0) throw miscompare((bytchk === 3 ? 0 : (done + b) * bs) + d);
        }
      } finally {
        t.lu.pool.release(cur);
      }
      done += n;
    }
  } finally {
    t.lu.pool.release(data);
  }
  return outLen;
}

export async function compareAndWrite(t: Task): Promise<number> {
  const cdb = t.cdb;
  checkProtect(cdb);
  const lba = u64(cdb, 2);
  const blocks = cdb[13]!;
  if (blocks > t.lu.maxCompareAndWrite) throw badCdb(13);
  checkRange(t, { lba, blocks });
  writeProtected(t);
  const bs = t.lu.blockSize;
  const half = blocks * bs;
  // The Data-Out must be exactly the compare and the write halves (libiscsi CompareAndWrite
  // expects INVALID FIELD IN CDB otherwise, e.g. a block count that wrapped to 0).
  if (t.outLength !== 2 * half) throw badCdb(13);
  if (blocks === 0) return 0;
  const data = t.lu.pool.acquire(2 * half);
  // The range lock makes read-compare-write atomic against every other write (SBC-3 5.2).
  const unlock = await t.lu.lockRange(lba, blocks);
  try {
    const got = await receiveOut(t, data, 2 * half);
    if (got < 2 * half) throw badCdb(13); // too little data to compare and write
    const cur = await readBlocks(t, lba, blocks);
    try {
      const d = firstDifference(cur, data, half);
      if (d >= 0) throw miscompare(d);
    } finally {
      t.lu.pool.release(cur);
    }
    await t.lu.backstore.write(lba, blocks, data.subarray(half, 2 * half), { fua: (cdb[1]! & 0x08) !== 0 });
  } finally {
    unlock();
    t.lu.pool.release(data);
  }
  return 2 * half;
}

export async function orWrite(t: Task): Promise<number> {
  const cdb = t.cdb;
  checkProtect(cdb);
  const r = lbaRange(cdb);
  checkRange(t, r);
  writeProtected(t);
  if (r.blocks === 0) return 0;
  const bs = t.lu.blockSize;
  const len = r.blocks * bs;
  const data = t.lu.pool.acquire(len);
  const unlock = await t.lu.lockRange(r.lba, r.blocks);
  try {
    await receiveOut(t, data, len);
    const cur = await readBlocks(t, r.lba, r.blocks);
    try {
      for (let i = 0; i < len; i++) cur[i]! |= data[i]!;
      await t.lu.backstore.write(r.lba, r.blocks, cur.subarray(0, len), { fua: (cdb[1]! & 0x08) !== 0 });
    } finally {
      t.lu.pool.release(cur);
    }
  } finally {
    unlock();
    t.lu.pool.release(data);
  }
  return len;
}

export async function writeSame(t: Task): Promise<number> {
  const cdb = t.cdb;
  const is16 = cdb[0] === Op.WriteSame16;
  checkProtect(cdb);
  const flags = cdb[1]!;
  if (flags & 0x10) throw badCdb(1, 4); // ANCHOR: anchored state not supported (SBC-3 5.45)
  const unmap = (flags & 0x08) !== 0;
  const ndob = is16 && (flags & 0x01) !== 0;
  if (unmap && !t.lu.thin) throw badCdb(1, 3);
  const r = lbaRange(cdb);
  // WSNZ is set in the Block Limits page: zero blocks is not "to the end of the medium".
  if (r.blocks === 0) throw badCdb(is16 ? 10 : 7);
  if (r.blocks > t.lu.maxWriteSame) throw badCdb(is16 ? 10 : 7);
  checkRange(t, r);
  writeProtected(t);
  const bs = t.lu.blockSize;
  const pattern = t.lu.pool.acquire(bs);
  const unlock = await t.lu.lockRange(r.lba, r.blocks);
  try {
    if (ndob) pattern.fill(0, 0, bs);
    else await receiveOut(t, pattern, bs);
    let zero = true;
    for (let i = 0; i < bs; i++)
      if (pattern[i] !== 0) {
        zero = false;
        break;
      }
    // LBPRZ: unmapped blocks read back as zeroes, so UNMAP of a zero pattern is exact.
    if (unmap && zero) {
      await t.lu.backstore.unmap([r]);
    } else {
      const chunkBlocks = Math.min(r.blocks, Math.max(1, Math.floor(CHUNK_BYTES / bs)));
      const buf = t.lu.pool.acquire(chunkBlocks * bs);
      try {
        for (let b = 0; b < chunkBlocks; b++) buf.set(pattern.subarray(0, bs), b * bs);
        for (let done = 0; done < r.blocks; ) {
          const n = Math.min(chunkBlocks, r.blocks - done);
          await t.lu.backstore.write(r.lba + done, n, buf.subarray(0, n * bs));
          done += n;
        }
      } finally {
        t.lu.pool.release(buf);
      }
    }
  } finally {
    unlock();
    t.lu.pool.release(pattern);
  }
  return ndob ? 0 : bs;
}

export async function unmapCmd(t: Task): Promise<number> {
  const cdb = t.cdb;
  if (cdb[1]! & 0x01) throw badCdb(1, 0); // ANCHOR
  const len = u16(cdb, 7);
  writeProtected(t);
  if (len === 0) return 0;
  // SBC-3 5.30.2: the header is 8 bytes; shorter is a parameter list length error.
  if (len < 8) throw new ScsiError(SenseKey.IllegalRequest, Asc.ParameterListLengthError);
  const p = t.lu.pool.acquire(len);
  try {
    const got = await receiveOut(t, p, len);
    const dataLen = u16(p, 0);
    const bdLen = u16(p, 2);
    if (got < 8 || bdLen > got - 8 || dataLen + 2 > len) throw new ScsiError(SenseKey.IllegalRequest, Asc.ParameterListLengthError);
    const count = Math.floor(bdLen / 16);
    if (count > t.lu.maxUnmapDescriptors) throw badParam(2);
    const ranges: Range[] = [];
    for (let i = 0; i < count; i++) {
      const o = 8 + i * 16;
      const r = { lba: u64(p, o), blocks: u32(p, o + 8) };
      if (r.blocks > t.lu.maxUnmapBlocks) throw badParam(o + 8);
      checkRange(t, r);
      if (r.blocks > 0) ranges.push(r);
    }
    for (const r of ranges) {
      const unlock = await t.lu.lockRange(r.lba, r.blocks);
      try {
        await t.lu.backstore.unmap([r]);
      } finally {
        unlock();
      }
    }
    return len;
  } finally {
    t.lu.pool.release(p);
  }
}

export async function getLbaStatus(t: Task): Promise<number> {
  const cdb = t.cdb;
  const lba = u64(cdb, 2);
  const alloc = u32(cdb, 10);
  if (lba >= t.lu.blockCount) throw lbaOutOfRange();
  if (alloc === 0) return 0;
  const st = t.lu.backstore.lbaStatus ? await t.lu.backstore.lbaStatus(lba) : { mapped: true, blocks: t.lu.blockCount - lba };
  const b = t.lu.pool.acquire(24);
  try {
    b.fill(0, 0, 24);
    put32(b, 0, 20); // parameter data length: one descriptor (SBC-3 5.7.2)
    put64(b, 8, lba);
    put32(b, 16, Math.min(st.blocks, 0xffffffff));
    b[20] = st.mapped ? 0 : 1; // 0 mapped, 1 deallocated
    return await sendIn(t, b, Math.min(24, alloc));
  } finally {
    t.lu.pool.release(b);
  }
}

export async function syncCache(t: Task): Promise<number> {
  const cdb = t.cdb;
  const r = lbaRange(cdb);
  checkRange(t, r);
  await t.lu.backstore.flush();
  return 0;
}

export async function preFetch(t: Task): Promise<number> {
  const cdb = t.cdb;
  const r = lbaRange(cdb);
  checkRange(t, r);
  // Everything is "in cache" as far as the initiator can tell (SBC-3 5.9: CONDITION MET).
  throw new ScsiError(SenseKey.NoSense, Asc.NoAdditional, undefined, undefined, ScsiStatus.ConditionMet);
}

export async function readCapacity10(t: Task): Promise<number> {
  const cdb = t.cdb;
  // SBC-3 5.15: an LBA without PMI is invalid.
  if ((cdb[8]! & 1) === 0 && u32(cdb, 2) !== 0) throw badCdb(2);
  const b = t.lu.pool.acquire(8);
  try {
    const last = t.lu.blockCount - 1;
    put32(b, 0, Math.min(last, 0xffffffff));
    put32(b, 4, t.lu.blockSize);
    return await sendIn(t, b, 8);
  } finally {
    t.lu.pool.release(b);
  }
}

export async function readCapacity16(t: Task): Promise<number> {
  const alloc = u32(t.cdb, 10);
  const b = t.lu.pool.acquire(32);
  try {
    b.fill(0, 0, 32);
    put64(b, 0, t.lu.blockCount - 1);
    put32(b, 8, t.lu.blockSize);
    // LBPME and LBPRZ (SBC-3 5.16): thin LUNs deallocate on UNMAP and read zeroes there.
    if (t.lu.thin) b[14] = 0xc0;
    return await sendIn(t, b, Math.min(32, alloc));
  } finally {
    t.lu.pool.release(b);
  }
}

/**
 * READ DEFECT DATA (10)/(12) (SBC-3 5.19, 5.20): memory and files have no defects, so both
 * lists are valid and empty, in the format asked for.
 */
export async function readDefectData(t: Task): Promise<number> {
  const cdb = t.cdb;
  const ten = cdb[0] === Op.ReadDefectData10;
  const flags = ten ? cdb[2]! : cdb[1]!;
  const format = flags & 0x07;
  // 001b, 010b and 111b are reserved defect list formats (SBC-3 6.2.1).
  if (format === 1 || format === 2 || format === 7) throw badCdb(ten ? 2 : 1, 2);
  const alloc = ten ? u16(cdb, 7) : u32(cdb, 6);
  const b = t.lu.pool.acquire(8);
  try {
    b.fill(0, 0, 8);
    // PLISTV/GLISTV: the lists asked for are valid (and empty).
    b[1] = (flags & 0x18) | format;
    return await sendIn(t, b, Math.min(ten ? 4 : 8, alloc));
  } finally {
    t.lu.pool.release(b);
  }
}
