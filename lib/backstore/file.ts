// A LUN in a regular file (or, through BlockBackstore, a block device). Reads and writes
// go straight into the caller's buffer at the block's position; FUA and SYNCHRONIZE CACHE
// become fdatasync. UNMAP punches holes and GET LBA STATUS finds them through the
// binding's fallocate/lseek(SEEK_DATA) helpers (./native.ts over lib/verbs/sys.ts, which
// Node lacks); where the addon cannot load, UNMAP writes zeroes and every block reads as mapped.

import { open, type FileHandle } from 'node:fs/promises';
import { constants } from 'node:fs';
import type { Backstore } from './types.js';
import { backstoreSys } from './native.js';

const ZERO_CHUNK = 1 << 20;
let zeroes: Uint8Array | undefined;

export interface FileBackstoreOptions {
  path: string;
  blockSize: number;
  /** Bytes; the file is created or grown to this size. Absent: the file's own size. */
  size?: number;
  readOnly?: boolean;
}

export class FileBackstore implements Backstore {
  readonly blockSize: number;
  readonly readOnly: boolean;
  blockCount = 0;
  protected fh!: FileHandle;
  /** A regular file (holes are findable with SEEK_DATA); false for block devices. */
  protected regular = true;
  private closed: Promise<void> | undefined;

  protected constructor(blockSize: number, readOnly: boolean) {
    this.blockSize = blockSize;
    this.readOnly = readOnly;
  }

  static async open(opts: FileBackstoreOptions): Promise<FileBackstore> {
    const b = new FileBackstore(opts.blockSize, opts.readOnly ?? false);
    const flags = b.readOnly ? constants.O_RDONLY : constants.O_RDWR | (opts.size !== undefined ? constants.O_CREAT : 0);
    b.fh = await open(opts.path, flags, 0o600);
    try {
      const st = await b.fh.stat();
      b.regular = st.isFile();
      let size = st.size;
      // A block device's stat size is 0: its size comes from the caller (sysfs), never truncate it.
      if (st.isFile() && opts.size !== undefined && size < opts.size) {
        if (b.readOnly) throw new Error(`${opts.path}: ${size} bytes, smaller than the configured ${opts.size}, and read-only`);
        await b.fh.truncate(opts.size);
        size = opts.size;
      }
      if (opts.size !== undefined) size = opts.size;
      b.blockCount = Math.floor(size / b.blockSize);
      if (b.blockCount === 0) throw new Error(`${opts.path}: smaller than one ${b.blockSize}-byte block`);
    } catch (e) {
      await b.fh.close();
      throw e;
    }
    return b;
  }

  /** Grows a regular file to `size` bytes (a LUN resize; the LU then raises CAPACITY DATA HAS CHANGED). */
  async resize(size: number): Promise<void> {
    if (!this.regular) throw new Error('only a file-backed LUN can be resized here');
    if (this.readOnly) throw new Error('read-only LUN');
    const blocks = Math.floor(size / this.blockSize);
    if (blocks < this.blockCount) throw new Error('shrinking a LUN is not supported');
    await this.fh.truncate(blocks * this.blockSize);
    this.blockCount = blocks;
  }

  /**
   * Takes the size the file or device has now (grown under us: a file extended by someone
   * else, a device grown by its volume manager). A device's size comes from the caller
   * (./block.ts reads it); a smaller size than the LUN's is refused, as shrinking would cut
   * off data initiators have written.
   */
  async rescan(deviceBytes?: number): Promise<void> {
    const bytes = this.regular ? (await this.fh.stat()).size : deviceBytes;
    if (bytes === undefined) throw new Error("a block device's size must be given");
    const blocks = Math.floor(bytes / this.blockSize);
    if (blocks < this.blockCount)
      throw new Error(`now ${blocks * this.blockSize} bytes, smaller than the LUN's ${this.blockCount * this.blockSize}: shrinking is refused`);
    this.blockCount = blocks;
  }

  async read(lba: number, blocks: number, into: Uint8Array): Promise<void> {
    const len = blocks * this.blockSize;
    let done = 0;
    while (done < len) {
      const { bytesRead } = await this.fh.read(into, done, len - done, lba * this.blockSize + done);
      if (bytesRead === 0) {
        into.fill(0, done, len); // beyond EOF of a sparse/short file reads as zeroes
        return;
      }
      done += bytesRead;
    }
  }

  async write(lba: number, blocks: number, from: Uint8Array, opts?: { fua?: boolean }): Promise<void> {
    const len = blocks * this.blockSize;
    let done = 0;
    while (done < len) {
      const { bytesWritten } = await this.fh.write(from, done, len - done, lba * this.blockSize + done);
      done += bytesWritten;
    }
    // FUA (SBC-3 5.x): only stable data may be acknowledged.
    if (opts?.fua) await this.fh.datasync();
  }

  async flush(): Promise<void> {
    await this.fh.datasync();
  }

  async unmap(ranges: ReadonlyArray<{ lba: number; blocks: number }>): Promise<void> {
    const s = await backstoreSys();
    for (const r of ranges) {
      const off = r.lba * this.blockSize;
      const len = r.blocks * this.blockSize;
      if (s && this.punch(s, off, len)) continue;
      await this.writeZeroes(off, len);
    }
  }

  /** Deallocates; false where the file system (or a block device) cannot punch holes. */
  private punch(s: NonNullable<Awaited<ReturnType<typeof backstoreSys>>>, off: number, len: number): boolean {
    try {
      s.punchHole(this.fh.fd, off, len);
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EOPNOTSUPP' || code === 'ENOTSUP' || code === 'ENODEV' || code === 'EINVAL') return false;
      throw e;
    }
  }

  private async writeZeroes(off: number, len: number): Promise<void> {
    zeroes ??= new Uint8Array(ZERO_CHUNK);
    for (let done = 0; done < len; ) {
      const n = Math.min(ZERO_CHUNK, len - done);
      const { bytesWritten } = await this.fh.write(zeroes, 0, n, off + done);
      done += bytesWritten;
    }
  }

  /** Mapped or not from lseek(SEEK_DATA/SEEK_HOLE); all mapped where the addon is absent. */
  async lbaStatus(lba: number): Promise<{ mapped: boolean; blocks: number }> {
    const rest = this.blockCount - lba;
    const s = this.regular ? await backstoreSys() : undefined;
    if (!s) return { mapped: true, blocks: rest };
    const off = lba * this.blockSize;
    const data = s.seekData(this.fh.fd, off);
    if (data < 0) return { mapped: false, blocks: rest };
    if (data > off) return { mapped: false, blocks: Math.min(rest, Math.max(1, Math.floor((data - off) / this.blockSize))) };
    const hole = s.seekHole(this.fh.fd, off);
    return { mapped: true, blocks: Math.min(rest, Math.max(1, Math.ceil((hole - off) / this.blockSize))) };
  }

  /** Closes the fd once; later calls wait for the same close. */
  close(): Promise<void> {
    this.closed ??= this.fh.close();
    return this.closed;
  }
}
