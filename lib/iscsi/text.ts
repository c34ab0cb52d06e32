// Text key=value codec for Login/Text data segments (RFC 7143 §6.1).
// Each pair is "key=value" followed by one NUL. Keys are at most 63 bytes of
// [A-Za-z0-9.\-+@_:] ; values are UTF-8, at most 255 bytes unless the key says otherwise
// (CHAP binary values may be longer: §12.1.3 allows up to 1024 bits... we accept 8192 bytes).

export type KeyValue = readonly [key: string, value: string];

export class TextFormatError extends Error {
  readonly code = 'ISCSI_TEXT_FORMAT';
}

const KEY_MAX = 63;
const VALUE_MAX = 8192;

function validKeyByte(c: number): boolean {
  return (
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x2e ||
    c === 0x2d ||
    c === 0x2b ||
    c === 0x40 ||
    c === 0x5f ||
    c === 0x3a ||
    c === 0x23
  );
}

/**
 * Decode a complete text segment. Throws TextFormatError (§6.1) for a pair without "=",
 * an invalid or over-long key, an over-long value, or trailing bytes without a NUL.
 * A trailing run of NULs (padding some initiators leave) is tolerated.
 */
export function decodeText(buf: Uint8Array): KeyValue[] {
  const out: KeyValue[] = [];
  let start = 0;
  while (start < buf.length) {
    if (buf[start] === 0) {
      start++;
      continue;
    }
    let eq = -1;
    let end = start;
    for (; end < buf.length && buf[end] !== 0; end++) if (eq < 0 && buf[end] === 0x3d) eq = end;
    if (end >= buf.length) throw new TextFormatError('text pair not NUL-terminated (RFC 7143 §6.1)');
    if (eq < 0) throw new TextFormatError('text pair without "=" (RFC 7143 §6.1)');
    const klen = eq - start;
    if (klen === 0 || klen > KEY_MAX) throw new TextFormatError(`key length ${klen} outside 1..${KEY_MAX} (RFC 7143 §6.1)`);
    for (let i = start; i < eq; i++) if (!validKeyByte(buf[i])) throw new TextFormatError('invalid character in key (RFC 7143 §6.1)');
    if (end - eq - 1 > VALUE_MAX) throw new TextFormatError('value too long (RFC 7143 §6.1)');
    const key = Buffer.from(buf.buffer, buf.byteOffset + start, klen).toString('latin1');
    const value = Buffer.from(buf.buffer, buf.byteOffset + eq + 1, end - eq - 1).toString('utf8');
    out.push([key, value]);
    start = end + 1;
  }
  return out;
}

/** Encode pairs as "k=v\0..." */
export function encodeText(pairs: Iterable<KeyValue>): Buffer {
  const parts: string[] = [];
  for (const [k, v] of pairs) parts.push(`${k}=${v}\0`);
  return Buffer.from(parts.join(''), 'utf8');
}

/**
 * Accumulates a text exchange that spans PDUs with the C (continue) bit (§6.1: "a key=value
 * pair can span PDU boundaries"). Bounded: a peer cannot make us buffer without limit.
 */
export class TextAccumulator {
  private parts: Uint8Array[] = [];
  private length = 0;
  constructor(readonly limit: number) {}
  /** Returns false when the limit would be exceeded. */
  push(data: Uint8Array): boolean {
    if (this.length + data.length > this.limit) return false;
    if (data.length) {
      this.parts.push(Uint8Array.from(data));
      this.length += data.length;
    }
    return true;
  }
  get size(): number {
    return this.length;
  }
  take(): Uint8Array {
    const all = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.length);
    this.parts = [];
    this.length = 0;
    return all;
  }
}
