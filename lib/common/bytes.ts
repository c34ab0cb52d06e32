// Fixed-width integers in byte arrays: big-endian, as SCSI (SPC-4 3.5), iSCSI (RFC 7143
// §11.1), iSER (RFC 7145 §9.2) and SRP (r16a §4.2) lay out their fields, plus the
// little-endian 32-bit form of SRP tags and iSCSI digests. Plain functions on a view and
// an offset: the codecs call them per field on the data path, so nothing here allocates
// or checks bounds (callers check lengths once per PDU/IU/CDB).

export function u16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}
export function u24(b: Uint8Array, o: number): number {
  return (b[o]! << 16) | (b[o + 1]! << 8) | b[o + 2]!;
}
export function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) >>> 0) + ((b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!);
}
/** 48-bit (the iSCSI ISID): exact in a Number. */
export function u48(b: Uint8Array, o: number): number {
  return u16(b, o) * 0x100000000 + u32(b, o + 2);
}
/** 64-bit as a Number; values past 2^53 lose precision but stay larger than any LBA or LUN. */
export function u64(b: Uint8Array, o: number): number {
  return u32(b, o) * 0x100000000 + u32(b, o + 4);
}
/** 64-bit exactly (LUN fields). */
export function bigU64(b: Uint8Array, o: number): bigint {
  return (BigInt(u32(b, o)) << 32n) | BigInt(u32(b, o + 4));
}
export function le32(b: Uint8Array, o: number): number {
  return ((b[o + 3]! << 24) >>> 0) + ((b[o + 2]! << 16) | (b[o + 1]! << 8) | b[o]!);
}

export function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}
export function put24(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 16) & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = v & 0xff;
}
export function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}
export function put48(b: Uint8Array, o: number, v: number): void {
  put16(b, o, Math.floor(v / 0x100000000));
  put32(b, o + 2, v >>> 0);
}
export function put64(b: Uint8Array, o: number, v: number): void {
  put32(b, o, Math.floor(v / 0x100000000));
  put32(b, o + 4, v >>> 0);
}
export function putBigU64(b: Uint8Array, o: number, v: bigint): void {
  put32(b, o, Number((v >> 32n) & 0xffffffffn));
  put32(b, o + 4, Number(v & 0xffffffffn));
}
export function putLe32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}
