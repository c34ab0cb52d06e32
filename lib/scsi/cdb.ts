// CDB field decoding shared by the block commands: where the LOGICAL BLOCK ADDRESS and the
// TRANSFER (or NUMBER OF LOGICAL BLOCKS) LENGTH sit is fixed by the CDB size, which the
// operation code's group code gives (SPC-4 4.2.5.1, SBC-3 5.x).

import { u16, u24, u32, u64 } from '../common/bytes.js';

export interface Range {
  lba: number;
  blocks: number;
}

/** The CDB length its operation code's group code implies (SPC-4 4.2.5.1); 0 for the vendor/variable groups. */
export function groupCdbLength(op: number): number {
  switch (op >> 5) {
    case 0:
      return 6;
    case 1:
    case 2:
      return 10;
    case 4:
      return 16;
    case 5:
      return 12;
    default:
      return 0;
  }
}

/**
 * LBA and block count of a block command: 6-byte READ/WRITE carry a 21-bit LBA and a
 * length where 0 means 256 (SBC-3 5.13); 10-byte ones a 32-bit LBA and 16-bit length;
 * 12-byte ones 32/32; 16-byte ones a 64-bit LBA (exact up to 2^53, beyond that still larger
 * than any LU) and a 32-bit length.
 */
export function lbaRange(cdb: Uint8Array): Range {
  return { lba: cdbLba(cdb), blocks: cdbBlocks(cdb) };
}

/** The LBA field alone (lbaRange without an object: READ and WRITE run per command). */
export function cdbLba(cdb: Uint8Array): number {
  switch (groupCdbLength(cdb[0]!)) {
    case 6:
      return u24(cdb, 1) & 0x1fffff;
    case 10:
    case 12:
      return u32(cdb, 2);
    default:
      return u64(cdb, 2);
  }
}

/** The TRANSFER LENGTH field alone (6-byte CDBs: 0 means 256). */
export function cdbBlocks(cdb: Uint8Array): number {
  switch (groupCdbLength(cdb[0]!)) {
    case 6: {
      const n = cdb[4]!;
      return n === 0 ? 256 : n;
    }
    case 10:
      return u16(cdb, 7);
    case 12:
      return u32(cdb, 6);
    default:
      return u32(cdb, 10);
  }
}
