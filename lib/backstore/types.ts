// What the SCSI core asks of storage, kept small: blocks by LBA, nothing of SCSI.
// lib/scsi's logical units sit on it; ram.ts, file.ts and block.ts implement it.

/** Where a LUN's blocks live. Offsets and counts are in blocks of `blockSize`. */
export interface Backstore {
  readonly blockSize: number;
  readonly blockCount: number;
  readonly readOnly: boolean;
  /** Fills `into` (exactly blocks*blockSize bytes) from `lba`. */
  read(lba: number, blocks: number, into: Uint8Array): Promise<void>;
  /** Stores `from` (exactly blocks*blockSize bytes) at `lba`; `fua` returns only once on stable storage. */
  write(lba: number, blocks: number, from: Uint8Array, opts?: { fua?: boolean }): Promise<void>;
  flush(): Promise<void>;
  /** Deallocates ranges; later reads return zeroes. */
  unmap(ranges: ReadonlyArray<{ lba: number; blocks: number }>): Promise<void>;
  /** Whether `lba` is mapped and how many blocks from it share that state (GET LBA STATUS). */
  lbaStatus?(lba: number): Promise<{ mapped: boolean; blocks: number }>;
  /**
   * Zero-copy access for fabrics (docs/architecture.md, memory model): the RAM backstore returns
   * the byte view of its (registered) memory for these blocks, so Data-In can be an RDMA
   * WRITE straight from it and Data-Out an RDMA READ straight into it. Undefined where the
   * data must pass through a buffer (file, block).
   */
  view?(lba: number, blocks: number): Uint8Array | undefined;
  /** Data reached these blocks through view() (thin bookkeeping: they are mapped now). */
  written?(lba: number, blocks: number): void;
  close(): Promise<void>;
}
