// A LUN in memory. Its bytes are one Uint8Array (optionally supplied by the caller, e.g.
// memory registered with the RDMA device) so fabrics can move data straight to and from
// it through view() (docs/architecture.md, memory model). Thin LUNs track mapped blocks in a bitmap
// for GET LBA STATUS; untouched pages of a fresh ArrayBuffer are never faulted in, so an
// unwritten thin LUN costs no resident memory.

import type { Backstore } from './types.js';

export interface RamBackstoreOptions {
  blockSize: number;
  blockCount: number;
  memory?: Uint8Array;
  thin?: boolean;
  readOnly?: boolean;
}

export class RamBackstore implements Backstore {
  readonly blockSize: number;
  /** Changed only by grow(). */
  blockCount: number;
  readonly readOnly: boolean;
  /** Changed only by grow(). */
  memory: Uint8Array;
  /** One bit per block, set once written; only for thin LUNs. */
  private mapped: Uint8Array | undefined;

  constructor(opts: RamBackstoreOptions) {
    if (!Number.isSafeInteger(opts.blockSize) || opts.blockSize < 512 || (opts.blockSize & (opts.blockSize - 1)) !== 0)
      throw new RangeError(`blockSize must be a power of two >= 512, got ${opts.blockSize}`);
    this.blockSize = opts.blockSize;
    this.blockCount = opts.blockCount;
    this.readOnly = opts.readOnly ?? false;
    const bytes = opts.blockSize * opts.blockCount;
    if (opts.memory) {
      if (opts.memory.byteLength < bytes) throw new RangeError(`memory holds ${opts.memory.byteLength} bytes, need ${bytes}`);
      this.memory = opts.memory;
    } else {
      this.memory = new Uint8Array(bytes);
    }
    this.mapped = opts.thin ? new Uint8Array(Math.ceil(opts.blockCount / 8)) : undefined;
  }

  /**
   * Grows the LUN to `blockCount` blocks in `memory` (or new heap memory): the data is copied
   * and the old memory returned, for the caller to free once nothing uses it. Synchronous,
   * so that it can run at a moment when no command holds a view of the old memory.
   */
  grow(blockCount: number, memory?: Uint8Array): Uint8Array {
    if (blockCount < this.blockCount) throw new RangeError(`cannot shrink from ${this.blockCount} to ${blockCount} blocks`);
    const bytes = blockCount * this.blockSize;
    if (memory && memory.byteLength < bytes) throw new RangeError(`memory holds ${memory.byteLength} bytes, need ${bytes}`);
    const next = memory ?? new Uint8Array(bytes);
    const old = this.memory;
    next.set(old.subarray(0, this.blockCount * this.blockSize));
    if (this.mapped) {
      const m = new Uint8Array(Math.ceil(blockCount / 8));
      m.set(this.mapped);
      this.mapped = m;
    }
    this.memory = next;
    this.blockCount = blockCount;
    return old;
  }

  view(lba: number, blocks: number): Uint8Array {
    return this.memory.subarray(lba * this.blockSize, (lba + blocks) * this.blockSize);
  }

  written(lba: number, blocks: number): void {
    if (this.mapped) this.markMapped(lba, blocks);
  }

  async read(lba: number, blocks: number, into: Uint8Array): Promise<void> {
    into.set(this.memory.subarray(lba * this.blockSize, (lba + blocks) * this.blockSize));
  }

  async write(lba: number, blocks: number, from: Uint8Array): Promise<void> {
    this.memory.set(from.subarray(0, blocks * this.blockSize), lba * this.blockSize);
    if (this.mapped) this.markMapped(lba, blocks);
  }

  async flush(): Promise<void> {}

  async unmap(ranges: ReadonlyArray<{ lba: number; blocks: number }>): Promise<void> {
    for (const r of ranges) {
      this.memory.fill(0, r.lba * this.blockSize, (r.lba + r.blocks) * this.blockSize);
      if (this.mapped) for (let b = r.lba; b < r.lba + r.blocks; b++) this.mapped[b >> 3]! &= ~(1 << (b & 7));
    }
  }

  async lbaStatus(lba: number): Promise<{ mapped: boolean; blocks: number }> {
    const m = this.mapped;
    if (!m) return { mapped: true, blocks: this.blockCount - lba };
    const state = this.isMapped(lba);
    let b = lba + 1;
    while (b < this.blockCount && this.isMapped(b) === state) {
      // Skip whole bytes of the same state: a large LUN is mostly one state.
      if ((b & 7) === 0 && b + 8 <= this.blockCount && m[b >> 3] === (state ? 0xff : 0)) b += 8;
      else b++;
    }
    return { mapped: state, blocks: b - lba };
  }

  async close(): Promise<void> {}

  private isMapped(b: number): boolean {
    return (this.mapped![b >> 3]! & (1 << (b & 7))) !== 0;
  }

  private markMapped(lba: number, blocks: number): void {
    const m = this.mapped!;
    for (let b = lba; b < lba + blocks; b++) m[b >> 3]! |= 1 << (b & 7);
  }
}
