// CRC32C (Castagnoli, reflected polynomial 0x82F63B78) for HeaderDigest/DataDigest
// (RFC 7143 §13.1; check values RFC 3720 Appendix B.4). Table-driven, slicing-by-4: the
// data digest runs over every byte of every data PDU, so it is worth four tables.

import { le32, putLe32 } from '../common/bytes.js';

const POLY = 0x82f63b78;
const T0 = new Uint32Array(256);
const T1 = new Uint32Array(256);
const T2 = new Uint32Array(256);
const T3 = new Uint32Array(256);
for (let i = 0; i < 256; i++) {
  let c = i;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  T0[i] = c >>> 0;
}
for (let i = 0; i < 256; i++) {
  T1[i] = (T0[T0[i] & 0xff] ^ (T0[i] >>> 8)) >>> 0;
  T2[i] = (T0[T1[i] & 0xff] ^ (T1[i] >>> 8)) >>> 0;
  T3[i] = (T0[T2[i] & 0xff] ^ (T2[i] >>> 8)) >>> 0;
}

/** Initial running value; feed chunks with crc32cUpdate, finish with crc32cFinal. */
export const CRC32C_INIT = 0xffffffff;

export function crc32cUpdate(crc: number, buf: Uint8Array, start = 0, end = buf.length): number {
  let c = crc >>> 0;
  let i = start;
  for (; i + 4 <= end; i += 4) {
    c ^= buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24);
    c = T3[c & 0xff] ^ T2[(c >>> 8) & 0xff] ^ T1[(c >>> 16) & 0xff] ^ T0[c >>> 24];
  }
  for (; i < end; i++) c = T0[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return c >>> 0;
}

export function crc32cFinal(crc: number): number {
  return (crc ^ 0xffffffff) >>> 0;
}

/** One-shot CRC32C of `buf` (the value as a number; on the wire it is little-endian). */
export function crc32c(buf: Uint8Array): number {
  return crc32cFinal(crc32cUpdate(CRC32C_INIT, buf));
}

/**
 * iSCSI sends the digest as the CRC's register bytes in order, which is the 32-bit value
 * stored little-endian (RFC 3720 B.4: the 32 zero bytes give "aa 36 91 8a", value 0x8a9136aa).
 */
export const writeDigest: (buf: Uint8Array, offset: number, value: number) => void = putLe32;
export const readDigest: (buf: Uint8Array, offset: number) => number = le32;
