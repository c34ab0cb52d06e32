// Value rules shared by the schema, the cross-field checks and the edits: how a bad value is
// rendered in a message, sizes with suffixes, iSCSI and SRP names, addresses.

import { isIP } from 'node:net';

/** Renders a bad value for an error message: short, unambiguous about its JSON type. */
export function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  const s = JSON.stringify(v);
  return s.length > 60 ? s.slice(0, 57) + '..."' : s;
}

const GiB = 1024 ** 3;
const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: GiB,
  gb: GiB,
  gib: GiB,
  t: 1024 ** 4,
  tb: 1024 ** 4,
  tib: 1024 ** 4,
};
/** The shape of a size string, for editors; parseSize() is the rule (it also bounds the value). */
export const SIZE_PATTERN = '^\\s*\\d+(\\.\\d+)?\\s*([bB]|[kKmMgGtT]([iI]?[bB])?)?\\s*$';

/**
 * Sizes are bytes, as a number or a string with a binary suffix ("512M", "1GiB"). Suffixes
 * are powers of 1024 even when spelled "GB", as in targetcli, so a LUN size never surprises.
 */
export function parseSize(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v > 0 ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(v);
  if (!m) return undefined;
  const unit = SIZE_UNITS[m[2]!.toLowerCase()];
  if (unit === undefined) return undefined;
  const n = Number(m[1]) * unit;
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

// RFC 3720 §3.2.6.3 / RFC 3722: iqn.yyyy-mm.reversed.domain[:anything], eui.<16 hex>, naa.<16|32 hex>.
const IQN = 'iqn\\.\\d{4}-(0[1-9]|1[0-2])\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[a-z0-9.:\\-_]+)?';
const EUI = 'eui\\.[0-9a-f]{16}';
const NAA = 'naa\\.([0-9a-f]{16}|[0-9a-f]{32})';
export const ISCSI_NAME_PATTERN = `^(${IQN}|${EUI}|${NAA})$`;
const ISCSI_NAME_RE = new RegExp(ISCSI_NAME_PATTERN);
export const ISCSI_NAME_MAX_BYTES = 223;

/** Why `name` is not a valid iSCSI name, or undefined when it is. */
export function iscsiNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return `must be an iSCSI name string, got ${describe(name)}`;
  if (name.length === 0) return 'must not be empty';
  if (Buffer.byteLength(name) > ISCSI_NAME_MAX_BYTES)
    return `must be at most ${ISCSI_NAME_MAX_BYTES} bytes (RFC 7143 §4.2.7.1), got ${Buffer.byteLength(name)}`;
  if (name !== name.toLowerCase()) return `must be lowercase (iSCSI names are normalised to lowercase, RFC 3722), got ${describe(name)}`;
  if (ISCSI_NAME_RE.test(name)) return undefined;
  return `must be an iSCSI name such as "iqn.2025-01.com.example:disk1", "eui.<16 hex>" or "naa.<16 or 32 hex>", got ${describe(name)}`;
}

/** An IP literal with IPv6 brackets removed ("[::1]" → "::1"), or undefined. */
export function ipLiteral(v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined;
  const a = v.replace(/^\[(.*)\]$/, '$1');
  return isIP(a) === 0 ? undefined : a;
}

export function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.');
}

export function isWildcard(a: string): boolean {
  return a === '0.0.0.0' || a === '::';
}

/** "127.0.0.1:3260" or "[::1]:3260". */
export function fmtAddr(address: string, port: number): string {
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

/** 16 hex digits as ib_srp's add_target takes them (optionally "0x", or 4 groups of 4 with colons). */
export const HEX16_PATTERN = '^(0x)?([0-9a-fA-F]{16}|[0-9a-fA-F]{4}(:[0-9a-fA-F]{4}){3})$';

export function normalizeHex16(v: string): string {
  return v.replace(/^0x/i, '').replace(/:/g, '').toLowerCase();
}

/** An SRP ACL name: "0x" + 32 hex digits (initiator port id) or an IP address; normalised, or undefined. */
export function srpInitiatorName(v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined;
  if (isIP(v) !== 0) return v;
  const h = v.replace(/^0x/i, '').replace(/:/g, '');
  return /^[0-9a-fA-F]{32}$/.test(h) ? `0x${h.toLowerCase()}` : undefined;
}

/** The allowed key closest to a typo, if it is close enough to be a plausible suggestion. */
export function nearest(k: string, allowed: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const a of allowed) {
    const d = editDistance(k.toLowerCase(), a.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = a;
    }
  }
  // LIO spellings (generate_node_acls) differ mostly by underscores: compare without them too.
  const flat = k.replace(/_/g, '').toLowerCase();
  for (const a of allowed) if (a.toLowerCase() === flat) return a;
  return bestD <= Math.max(2, Math.floor(k.length / 4)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length]![b.length]!;
}
