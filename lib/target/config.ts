// The daemon's configuration: one JSON file, modelled on LIO's /etc/target/saveconfig.json
// (targets → TPGs → portals, LUNs, node ACLs; shared storage objects) but camelCased and
// validated up front, so that a bad file fails with every problem named by its field path
// instead of half-starting a target. The validator is hand-written because the project
// takes no schema dependency; every check collects into one list rather than throwing.

import { isIP } from 'node:net';
import { isAbsolute } from 'node:path';
import type { BackstoreSpec } from '../backstore/open.js';
import { TPG_KEY_RULES, type TpgKeyRule } from '../iscsi/params.js';

/** 'srp' portals come only from the top-level `srp` section (a TPG serves iSCSI). */
export type TransportKind = 'tcp' | 'iser' | 'srp';

/** A backstore (type, size, path, block size, read-only, thin: lib/backstore's BackstoreSpec) and the LU's identity. */
export interface BackstoreConfig extends BackstoreSpec {
  /** Required in the top-level `backstores[]` (LUNs refer to it); absent when inline. */
  name?: string;
  /** Unit serial number (VPD page 0x80); derived from the name when absent. */
  serial?: string;
  /** 32 hex digits, NAA 6 (VPD page 0x83); LIO's 6001405 + serial form when absent. */
  wwn?: string;
}

export interface LunConfig {
  lun: number;
  /** Either a name from `backstores[]` or an inline definition owned by this LUN. */
  backstore: string | BackstoreConfig;
}

export interface PortalConfig {
  address: string;
  port: number;
  transport: TransportKind;
}

export interface ChapConfig {
  userid: string;
  password: string;
  mutualUserid?: string;
  mutualPassword?: string;
}

export interface MappedLunConfig {
  /** LUN number the initiator sees. */
  lun: number;
  /** LUN number in the TPG it maps to. */
  tpgLun: number;
  readOnly: boolean;
}

export interface AclConfig {
  initiator: string;
  chap?: ChapConfig;
  /** Absent: every TPG LUN, same numbers (LIO's auto_add_mapped_luns). */
  mappedLuns?: MappedLunConfig[];
}

export interface TpgAttributes {
  /** Demo mode: any initiator may log in and sees every LUN (LIO generate_node_acls). */
  generateNodeAcls: boolean;
  /** Require CHAP on normal sessions. */
  authentication: boolean;
  /** In demo mode, export LUNs read-only (LIO demo_mode_write_protect). */
  demoModeWriteProtect: boolean;
  /** Commands an initiator may have outstanding per session (CmdSN window). */
  defaultCmdsnDepth: number;
  /** Seconds a login may take before the connection is dropped. */
  loginTimeout: number;
  /** Seconds without a PDU from the initiator before a NOP-In ping (0 = no pings; LIO nopin_timeout). */
  nopInTimeout: number;
  /** Seconds a NOP-In ping may go unanswered before the connection is dropped (LIO nopin_response_timeout). */
  nopInResponseTimeout: number;
}

export interface TpgConfig {
  tag: number;
  enable: boolean;
  portals: PortalConfig[];
  luns: LunConfig[];
  acls: AclConfig[];
  attributes: TpgAttributes;
  /** CHAP for demo-mode sessions when `authentication` is on (no per-initiator ACL to hold it). */
  chap?: ChapConfig;
  /** iSCSI login key overrides, RFC 7143 §13 names and string values. */
  parameters: Record<string, string>;
}

/** An SRP ACL: an initiator port id ("0x" + 32 hex digits) or, for RDMA/CM logins, a source address. */
export interface SrpAclConfig {
  initiator: string;
  /** Absent: every SRP LUN, same numbers. */
  mappedLuns?: MappedLunConfig[];
}

export interface SrpAttributes {
  /** Any initiator that names the target port id may log in and sees every SRP LUN. */
  generateNodeAcls: boolean;
  /** Credits per RDMA channel (request receive depth; LIO srpt uses 128). */
  credits: number;
  /** Offer SRP-2 immediate data (ib_srp uses it for writes up to 8 KiB). */
  immediateData: boolean;
  /** Largest initiator-to-target IU accepted (ib_srp asks 8260 by default, more with max_it_iu_size=). */
  maxItIuLength: number;
}

/** The SRP target port (LIO's srpt): RDMA/CM portals, its identifier, LUNs and ACLs. */
export interface SrpConfig {
  enable: boolean;
  portals: Array<{ address: string; port: number }>;
  /** id_ext and ioc_guid the initiator's add_target names (16 hex digits each); absent: each RDMA device's node GUID, as LIO. */
  targetPortId?: { idExt: string; iocGuid: string };
  luns: LunConfig[];
  acls: SrpAclConfig[];
  attributes: SrpAttributes;
}

/** The ResolvedLun.iqn of SRP LUNs (an SRP target port has no iSCSI name). */
export const SRP_LUN_OWNER = 'srp';
export const SRP_DEFAULT_PORT = 5555;

export interface TargetConfig {
  iqn: string;
  tpgs: TpgConfig[];
}

export interface DiscoveryAuthConfig {
  enable: boolean;
  userid?: string;
  password?: string;
  mutualUserid?: string;
  mutualPassword?: string;
}

export interface ControlConfig {
  socket: string;
}

export interface Config {
  targets: TargetConfig[];
  backstores: BackstoreConfig[];
  discoveryAuth: DiscoveryAuthConfig;
  /** The SRP target port, when configured. */
  srp?: SrpConfig;
  /** Where persistent-reservation state (APTPL) lives. */
  stateDir: string;
  /** Unix socket for `rdma-target ctl`-style JSON-lines requests; false disables it. */
  control: ControlConfig | false;
}

export interface ValidationResult {
  config?: Config;
  errors: string[];
  warnings: string[];
}

export interface ValidateOptions {
  /** Permit port 0 (an ephemeral port the kernel picks); the CLI's --listen allows it for tests. */
  allowEphemeralPort?: boolean;
  /** Overrides for the environment-derived defaults (tests pin them). */
  defaults?: Partial<Pick<Config, 'stateDir'>> & { controlSocket?: string };
}

export const DEFAULT_IQN = 'iqn.2025-01.org.rdma-target:default';
export const DEFAULT_PORT = 3260;
export const DEFAULT_ADDRESS = '127.0.0.1';

/** LIO keeps CHAP secrets short enough for every initiator; see docs/config.md. */
export const CHAP_SECRET_MIN = 12;
export const CHAP_SECRET_MAX = 16;

const GiB = 1024 ** 3;

/**
 * The config served when the command is run with no arguments: one thin 1 GiB RAM LUN,
 * demo mode, loopback only. RDMA portals are added by `addRdmaPortals` when devices exist.
 */
export function defaultConfigJson(): Record<string, unknown> {
  return {
    targets: [
      {
        iqn: DEFAULT_IQN,
        tpgs: [
          {
            tag: 1,
            portals: [{ address: DEFAULT_ADDRESS, port: DEFAULT_PORT, transport: 'tcp' }],
            luns: [{ lun: 0, backstore: 'ram0' }],
            attributes: { generateNodeAcls: true, authentication: false, demoModeWriteProtect: false },
          },
        ],
      },
    ],
    backstores: [{ name: 'ram0', type: 'ram', size: '1GiB', blockSize: 512, thin: true }],
  };
}

/**
 * Where RDMA devices exist, the default target also listens for iSER on each of its TCP
 * portals, and serves its LUNs over SRP on those addresses (port 5555), (LIO serves both on one address:port once `iser` is enabled on the portal) —
 * except loopback ones: no RDMA initiator reaches 127.0.0.1, and widening the default's
 * loopback-only demo mode to the network is the administrator's call (`--listen`).
 * With no devices it leaves the config unchanged.
 */
export function addRdmaPortals(config: Config, rdmaDevices: ReadonlyArray<{ name: string }>): Config {
  if (rdmaDevices.length === 0) return config;
  const loopback = (a: string) => a.startsWith('127.') || a === '::1' || a === 'localhost';
  for (const t of config.targets) {
    for (const tpg of t.tpgs) {
      const tcp = tpg.portals.filter((p) => p.transport === 'tcp' && !loopback(p.address));
      for (const p of tcp) {
        if (!tpg.portals.some((q) => q.transport === 'iser' && q.address === p.address && q.port === p.port)) {
          tpg.portals.push({ address: p.address, port: p.port, transport: 'iser' });
        }
      }
      // SRP beside it, on the same address (port 5555), exporting the same LUNs with the
      // same access rule: the first such TPG only, as an SRP target port is one LUN set.
      if (tcp.length && !config.srp) {
        config.srp = {
          enable: true,
          portals: [...new Set(tcp.map((p) => p.address))].map((address) => ({ address, port: SRP_DEFAULT_PORT })),
          luns: tpg.luns.map((l) => ({ ...l })),
          acls: [],
          attributes: { generateNodeAcls: tpg.attributes.generateNodeAcls && tpg.acls.length === 0, credits: 128, immediateData: true, maxItIuLength: 65536 },
        };
      }
    }
  }
  return config;
}

// ---------------------------------------------------------------------------------------
// Value helpers

/** Renders a bad value for an error message: short, unambiguous about its JSON type. */
export function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  const s = JSON.stringify(v);
  return s.length > 60 ? s.slice(0, 57) + '..."' : s;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1024, kb: 1024, kib: 1024,
  m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2,
  g: GiB, gb: GiB, gib: GiB,
  t: 1024 ** 4, tb: 1024 ** 4, tib: 1024 ** 4,
};

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
const IQN_RE = /^iqn\.\d{4}-(0[1-9]|1[0-2])\.[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[a-z0-9.:\-_]+)?$/;
const EUI_RE = /^eui\.[0-9a-f]{16}$/;
const NAA_RE = /^naa\.([0-9a-f]{16}|[0-9a-f]{32})$/;

/** Why `name` is not a valid iSCSI name, or undefined when it is. */
export function iscsiNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return `must be an iSCSI name string, got ${describe(name)}`;
  if (name.length === 0) return 'must not be empty';
  if (Buffer.byteLength(name) > 223) return `must be at most 223 bytes (RFC 7143 §4.2.7.1), got ${Buffer.byteLength(name)}`;
  if (name !== name.toLowerCase()) return `must be lowercase (iSCSI names are normalised to lowercase, RFC 3722), got ${describe(name)}`;
  if (IQN_RE.test(name) || EUI_RE.test(name) || NAA_RE.test(name)) return undefined;
  return `must be an iSCSI name such as "iqn.2025-01.com.example:disk1", "eui.<16 hex>" or "naa.<16 or 32 hex>", got ${describe(name)}`;
}

// iSCSI login keys a config may override, with the value rule for each: the engine's key
// table says which (lib/iscsi/params.ts). Values are kept as the strings the engine negotiates with.
type KeyRule = TpgKeyRule;
export const ISCSI_KEYS: Readonly<Record<string, KeyRule>> = TPG_KEY_RULES;

// ---------------------------------------------------------------------------------------
// The validator

type Obj = Record<string, unknown>;

class Checker {
  readonly errors: string[] = [];
  readonly warnings: string[] = [];
  constructor(readonly opts: ValidateOptions) {}

  err(path: string, msg: string): void {
    this.errors.push(path ? `${path}: ${msg}` : msg);
  }
  warn(path: string, msg: string): void {
    this.warnings.push(path ? `${path}: ${msg}` : msg);
  }

  /** An object whose keys are all in `allowed`; unknown keys are errors because they are usually typos. */
  object(path: string, v: unknown, allowed: readonly string[]): Obj | undefined {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      this.err(path, `must be an object, got ${describe(v)}`);
      return undefined;
    }
    const o = v as Obj;
    for (const k of Object.keys(o)) {
      if (!allowed.includes(k)) {
        const hint = nearest(k, allowed);
        this.err(join(path, k), `unknown field${hint ? ` (did you mean "${hint}"?)` : ''}; allowed: ${allowed.join(', ')}`);
      }
    }
    return o;
  }

  array(path: string, v: unknown, required: boolean): unknown[] | undefined {
    if (v === undefined) {
      if (required) this.err(path, 'is required (an array)');
      return undefined;
    }
    if (!Array.isArray(v)) {
      this.err(path, `must be an array, got ${describe(v)}`);
      return undefined;
    }
    return v;
  }

  bool(path: string, v: unknown, dflt: boolean): boolean {
    if (v === undefined) return dflt;
    if (typeof v === 'boolean') return v;
    // LIO's saveconfig writes attributes as 0/1; accept those so files convert by renaming.
    if (v === 0 || v === 1) return v === 1;
    this.err(path, `must be true or false, got ${describe(v)}`);
    return dflt;
  }

  int(path: string, v: unknown, min: number, max: number, what = 'an integer'): number | undefined {
    if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max) return v;
    this.err(path, `must be ${what} ${min}–${max}, got ${describe(v)}`);
    return undefined;
  }

  str(path: string, v: unknown, required: boolean): string | undefined {
    if (v === undefined) {
      if (required) this.err(path, 'is required (a string)');
      return undefined;
    }
    if (typeof v !== 'string' || v.length === 0) {
      this.err(path, `must be a non-empty string, got ${describe(v)}`);
      return undefined;
    }
    return v;
  }
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/** The allowed key closest to a typo, if it is close enough to be a plausible suggestion. */
function nearest(k: string, allowed: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const a of allowed) {
    const d = editDistance(k.toLowerCase(), a.toLowerCase());
    if (d < bestD) { bestD = d; best = a; }
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
    for (let j = 1; j <= b.length; j++)
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length]![b.length]!;
}

const BACKSTORE_KEYS = ['name', 'type', 'size', 'blockSize', 'path', 'readOnly', 'thin', 'serial', 'wwn'] as const;

function checkBackstore(c: Checker, path: string, v: unknown, named: boolean): BackstoreConfig | undefined {
  const o = c.object(path, v, BACKSTORE_KEYS);
  if (!o) return undefined;
  let ok = true;
  let name: string | undefined;
  if (named) {
    name = c.str(join(path, 'name'), o.name, true);
    if (name !== undefined && !/^[A-Za-z0-9_.:-]{1,64}$/.test(name)) {
      c.err(join(path, 'name'), `must be 1–64 characters of letters, digits, "_", ".", ":" or "-", got ${describe(name)}`);
      name = undefined;
    }
    if (name === undefined) ok = false;
  } else if (o.name !== undefined) {
    c.err(join(path, 'name'), 'an inline backstore has no name; move it to backstores[] to share it between LUNs');
    ok = false;
  }
  const type = o.type;
  if (type !== 'ram' && type !== 'file' && type !== 'block') {
    c.err(join(path, 'type'), `must be one of "ram", "file", "block", got ${describe(type)}`);
    return undefined;
  }
  let size: number | undefined;
  if (o.size !== undefined) {
    size = parseSize(o.size);
    if (size === undefined) { c.err(join(path, 'size'), `must be a positive size in bytes or with a suffix such as "512M", "1GiB", got ${describe(o.size)}`); ok = false; }
  }
  let blockSize = 512;
  if (o.blockSize !== undefined) {
    if (o.blockSize === 512 || o.blockSize === 1024 || o.blockSize === 2048 || o.blockSize === 4096) blockSize = o.blockSize;
    else { c.err(join(path, 'blockSize'), `must be 512, 1024, 2048 or 4096, got ${describe(o.blockSize)}`); ok = false; }
  }
  if (size !== undefined && size % blockSize !== 0) {
    c.err(join(path, 'size'), `must be a multiple of blockSize ${blockSize}, got ${size}`);
    ok = false;
  }
  let p: string | undefined;
  if (type === 'ram') {
    if (size === undefined && o.size === undefined) { c.err(join(path, 'size'), 'is required for a ram backstore'); ok = false; }
    if (o.path !== undefined) { c.err(join(path, 'path'), 'a ram backstore has no path'); ok = false; }
  } else {
    p = c.str(join(path, 'path'), o.path, true);
    if (p !== undefined && !isAbsolute(p)) { c.err(join(path, 'path'), `must be an absolute path, got ${describe(p)}`); ok = false; }
    if (p === undefined) ok = false;
    if (type === 'block' && o.size !== undefined) { c.err(join(path, 'size'), 'a block backstore takes its size from the device; remove it'); ok = false; }
  }
  const readOnly = c.bool(join(path, 'readOnly'), o.readOnly, false);
  const thin = c.bool(join(path, 'thin'), o.thin, false);
  let serial: string | undefined;
  if (o.serial !== undefined) {
    if (typeof o.serial === 'string' && /^[\x21-\x7e]{1,36}$/.test(o.serial)) serial = o.serial;
    else { c.err(join(path, 'serial'), `must be 1–36 printable ASCII characters without spaces (VPD page 0x80), got ${describe(o.serial)}`); ok = false; }
  }
  let wwn: string | undefined;
  if (o.wwn !== undefined) {
    const w = typeof o.wwn === 'string' ? o.wwn.toLowerCase().replace(/^naa\./, '') : undefined;
    if (w !== undefined && /^6[0-9a-f]{31}$/.test(w)) wwn = w;
    else { c.err(join(path, 'wwn'), `must be an NAA 6 identifier of 32 hex digits starting with 6, e.g. "6001405c0ffee0000000000000000001", got ${describe(o.wwn)}`); ok = false; }
  }
  if (!ok) return undefined;
  const b: BackstoreConfig = { type, blockSize, readOnly, thin };
  if (name !== undefined) b.name = name;
  if (size !== undefined) b.size = size;
  if (p !== undefined) b.path = p;
  if (serial !== undefined) b.serial = serial;
  if (wwn !== undefined) b.wwn = wwn;
  return b;
}

function checkChap(c: Checker, path: string, v: unknown): ChapConfig | undefined {
  const o = c.object(path, v, ['userid', 'password', 'mutualUserid', 'mutualPassword']);
  if (!o) return undefined;
  const userid = c.str(join(path, 'userid'), o.userid, true);
  const password = secret(c, join(path, 'password'), o.password, true);
  const mu = c.str(join(path, 'mutualUserid'), o.mutualUserid, false);
  const mp = secret(c, join(path, 'mutualPassword'), o.mutualPassword, false);
  if ((o.mutualUserid === undefined) !== (o.mutualPassword === undefined)) {
    c.err(path, 'mutual CHAP needs both mutualUserid and mutualPassword');
    return undefined;
  }
  if (mp !== undefined && mp === password) {
    // RFC 7143 §12.1.3: a secret used both ways lets an attacker reflect challenges.
    c.err(join(path, 'mutualPassword'), 'must differ from password (RFC 7143 §12.1.3)');
    return undefined;
  }
  if (userid === undefined || password === undefined) return undefined;
  const chap: ChapConfig = { userid, password };
  if (mu !== undefined && mp !== undefined) { chap.mutualUserid = mu; chap.mutualPassword = mp; }
  return chap;
}

function secret(c: Checker, path: string, v: unknown, required: boolean): string | undefined {
  if (v === undefined) {
    if (required) c.err(path, 'is required (a string)');
    return undefined;
  }
  if (typeof v !== 'string' || v.length < CHAP_SECRET_MIN || v.length > CHAP_SECRET_MAX) {
    const got = typeof v === 'string' ? `${v.length} characters` : describe(v);
    c.err(path, `must be a CHAP secret of ${CHAP_SECRET_MIN}–${CHAP_SECRET_MAX} characters, got ${got}`);
    return undefined;
  }
  return v;
}

function checkPortal(c: Checker, path: string, v: unknown): PortalConfig | undefined {
  const o = c.object(path, v, ['address', 'port', 'transport']);
  if (!o) return undefined;
  let address: string | undefined = DEFAULT_ADDRESS;
  if (o.address !== undefined) {
    address = typeof o.address === 'string' ? o.address.replace(/^\[(.*)\]$/, '$1') : undefined;
    if (address === undefined || isIP(address) === 0) {
      c.err(join(path, 'address'), `must be an IPv4 or IPv6 address (e.g. "127.0.0.1", "0.0.0.0", "::"), got ${describe(o.address)}`);
      address = undefined;
    }
  }
  let port: number | undefined = DEFAULT_PORT;
  if (o.port !== undefined) port = c.int(join(path, 'port'), o.port, c.opts.allowEphemeralPort ? 0 : 1, 65535);
  let transport: TransportKind | undefined = 'tcp';
  if (o.transport !== undefined) {
    if (o.transport === 'tcp' || o.transport === 'iser') transport = o.transport;
    else { c.err(join(path, 'transport'), `must be "tcp" or "iser", got ${describe(o.transport)}`); transport = undefined; }
  }
  if (address === undefined || port === undefined || transport === undefined) return undefined;
  return { address, port, transport };
}

function checkParameters(c: Checker, path: string, v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (v === undefined) return out;
  if (v && typeof v === 'object' && 'AuthMethod' in v) {
    c.err(join(path, 'AuthMethod'), 'is set by attributes.authentication (true: CHAP required; false: None), not here');
    v = Object.fromEntries(Object.entries(v).filter(([k]) => k !== 'AuthMethod'));
  }
  const o = c.object(path, v, Object.keys(ISCSI_KEYS));
  if (!o) return out;
  for (const [k, val] of Object.entries(o)) {
    const rule = ISCSI_KEYS[k];
    if (!rule) continue; // already reported as unknown
    const p = join(path, k);
    switch (rule.kind) {
      case 'bool':
        if (val === true || val === 'Yes') out[k] = 'Yes';
        else if (val === false || val === 'No') out[k] = 'No';
        else c.err(p, `must be "Yes" or "No", got ${describe(val)}`);
        break;
      case 'int': {
        const n = typeof val === 'string' && /^\d+$/.test(val) ? Number(val) : val;
        if (c.int(p, n, rule.min, rule.max) !== undefined) out[k] = String(n);
        break;
      }
      case 'enum':
        if (typeof val === 'string' && rule.values.includes(val)) out[k] = val;
        else c.err(p, `must be one of ${rule.values.map((x) => `"${x}"`).join(', ')}, got ${describe(val)}`);
        break;
      case 'text':
        if (typeof val === 'string' && val.length <= 255) out[k] = val;
        else c.err(p, `must be a string of at most 255 characters, got ${describe(val)}`);
        break;
    }
  }
  const fb = out.FirstBurstLength, mb = out.MaxBurstLength;
  if (fb !== undefined && mb !== undefined && Number(fb) > Number(mb)) {
    c.err(join(path, 'FirstBurstLength'), `must not exceed MaxBurstLength ${mb} (RFC 7143 §13.14), got ${fb}`);
  }
  return out;
}

const ATTR_KEYS = ['generateNodeAcls', 'authentication', 'demoModeWriteProtect', 'defaultCmdsnDepth', 'loginTimeout', 'nopInTimeout', 'nopInResponseTimeout'] as const;

function checkTpg(c: Checker, path: string, v: unknown, named: Map<string, BackstoreConfig>): TpgConfig | undefined {
  const o = c.object(path, v, ['tag', 'enable', 'portals', 'luns', 'acls', 'attributes', 'chap', 'parameters']);
  if (!o) return undefined;
  const tag = o.tag === undefined ? 1 : c.int(join(path, 'tag'), o.tag, 1, 65535);
  const enable = c.bool(join(path, 'enable'), o.enable, true);

  const a = o.attributes === undefined ? {} : c.object(join(path, 'attributes'), o.attributes, ATTR_KEYS) ?? {};
  const ap = join(path, 'attributes');
  const attributes: TpgAttributes = {
    generateNodeAcls: c.bool(join(ap, 'generateNodeAcls'), a.generateNodeAcls, false),
    authentication: c.bool(join(ap, 'authentication'), a.authentication, false),
    demoModeWriteProtect: c.bool(join(ap, 'demoModeWriteProtect'), a.demoModeWriteProtect, false),
    defaultCmdsnDepth: a.defaultCmdsnDepth === undefined ? 64 : c.int(join(ap, 'defaultCmdsnDepth'), a.defaultCmdsnDepth, 1, 512) ?? 64,
    loginTimeout: a.loginTimeout === undefined ? 15 : c.int(join(ap, 'loginTimeout'), a.loginTimeout, 1, 3600, 'an integer number of seconds') ?? 15,
    nopInTimeout: a.nopInTimeout === undefined ? 15 : c.int(join(ap, 'nopInTimeout'), a.nopInTimeout, 0, 3600, 'an integer number of seconds') ?? 15,
    nopInResponseTimeout: a.nopInResponseTimeout === undefined ? 30 : c.int(join(ap, 'nopInResponseTimeout'), a.nopInResponseTimeout, 1, 3600, 'an integer number of seconds') ?? 30,
  };

  const portals: PortalConfig[] = [];
  const pa = c.array(join(path, 'portals'), o.portals, false) ?? (o.portals === undefined ? [{}] : []);
  const seenPortal = new Map<string, number>();
  pa.forEach((pv, i) => {
    const pp = `${join(path, 'portals')}[${i}]`;
    const p = checkPortal(c, pp, pv);
    if (!p) return;
    const key = `${p.transport}:${p.address}:${p.port}`;
    const prev = seenPortal.get(key);
    if (prev !== undefined) c.err(pp, `duplicates portals[${prev}] (${p.transport} ${p.address}:${p.port})`);
    else { seenPortal.set(key, i); portals.push(p); }
  });
  if (Array.isArray(o.portals) && o.portals.length === 0 && enable) c.warn(join(path, 'portals'), 'is empty: this TPG is reachable on no address');

  const luns: LunConfig[] = [];
  const seenLun = new Map<number, number>();
  (c.array(join(path, 'luns'), o.luns, false) ?? []).forEach((lv, i) => {
    const lp = `${join(path, 'luns')}[${i}]`;
    const lo = c.object(lp, lv, ['lun', 'backstore']);
    if (!lo) return;
    const lun = c.int(join(lp, 'lun'), lo.lun, 0, 16383);
    let backstore: string | BackstoreConfig | undefined;
    if (typeof lo.backstore === 'string') {
      if (named.has(lo.backstore)) backstore = lo.backstore;
      else c.err(join(lp, 'backstore'), `names no entry in backstores[]${named.size ? ` (known: ${[...named.keys()].join(', ')})` : ''}, got ${describe(lo.backstore)}`);
    } else if (lo.backstore === undefined) {
      c.err(join(lp, 'backstore'), 'is required: a name from backstores[] or an inline {type, size, ...}');
    } else {
      backstore = checkBackstore(c, join(lp, 'backstore'), lo.backstore, false);
    }
    if (lun !== undefined) {
      const prev = seenLun.get(lun);
      if (prev !== undefined) { c.err(join(lp, 'lun'), `duplicates luns[${prev}].lun ${lun}`); return; }
      seenLun.set(lun, i);
    }
    if (lun !== undefined && backstore !== undefined) luns.push({ lun, backstore });
  });

  let chap: ChapConfig | undefined;
  if (o.chap !== undefined) chap = checkChap(c, join(path, 'chap'), o.chap);

  const acls: AclConfig[] = [];
  const seenAcl = new Map<string, number>();
  (c.array(join(path, 'acls'), o.acls, false) ?? []).forEach((av, i) => {
    const acp = `${join(path, 'acls')}[${i}]`;
    const ao = c.object(acp, av, ['initiator', 'chap', 'mappedLuns']);
    if (!ao) return;
    const problem = iscsiNameProblem(ao.initiator);
    if (problem) c.err(join(acp, 'initiator'), problem);
    else {
      const prev = seenAcl.get(ao.initiator as string);
      if (prev !== undefined) c.err(join(acp, 'initiator'), `duplicates acls[${prev}].initiator`);
      seenAcl.set(ao.initiator as string, i);
    }
    const achap = ao.chap === undefined ? undefined : checkChap(c, join(acp, 'chap'), ao.chap);
    if (attributes.authentication && ao.chap === undefined) {
      c.err(join(acp, 'chap'), 'is required because attributes.authentication is true');
    }
    let mapped: MappedLunConfig[] | undefined;
    if (ao.mappedLuns !== undefined) {
      mapped = [];
      const seenMapped = new Set<number>();
      (c.array(join(acp, 'mappedLuns'), ao.mappedLuns, false) ?? []).forEach((mv, j) => {
        const mp = `${join(acp, 'mappedLuns')}[${j}]`;
        // A bare number maps a TPG LUN under its own number, the common case.
        const mo = typeof mv === 'number' ? { lun: mv, tpgLun: mv } : c.object(mp, mv, ['lun', 'tpgLun', 'readOnly']);
        if (!mo) return;
        const isBare = typeof mv === 'number';
        const ml = c.int(isBare ? mp : join(mp, 'lun'), mo.lun, 0, 16383);
        const tl = mo.tpgLun === undefined ? ml : c.int(join(mp, 'tpgLun'), mo.tpgLun, 0, 16383);
        const ro = c.bool(join(mp, 'readOnly'), (mo as Obj).readOnly, false);
        if (ml === undefined || tl === undefined) return;
        if (!seenLun.has(tl)) { c.err(isBare ? mp : join(mp, 'tpgLun'), `names no LUN of this TPG (luns: ${[...seenLun.keys()].join(', ') || 'none'}), got ${tl}`); return; }
        if (seenMapped.has(ml)) { c.err(isBare ? mp : join(mp, 'lun'), `maps LUN ${ml} twice`); return; }
        seenMapped.add(ml);
        mapped!.push({ lun: ml, tpgLun: tl, readOnly: ro });
      });
    }
    if (problem || (ao.chap !== undefined && !achap)) return;
    const acl: AclConfig = { initiator: ao.initiator as string };
    if (achap) acl.chap = achap;
    if (mapped) acl.mappedLuns = mapped;
    acls.push(acl);
  });

  if (attributes.authentication && attributes.generateNodeAcls && o.chap === undefined) {
    c.err(join(path, 'chap'), 'is required when attributes.authentication and attributes.generateNodeAcls are both true (demo-mode sessions have no ACL to hold credentials)');
  }
  if (!attributes.generateNodeAcls && acls.length === 0 && enable && Array.isArray(o.acls) === false) {
    c.warn(path, 'has no acls[] and attributes.generateNodeAcls is false: no initiator can log in');
  }
  if (attributes.generateNodeAcls && enable) {
    const exposed = portals.filter((p) => !isLoopback(p.address));
    const where = exposed.length ? ` on ${exposed.map((p) => fmtAddr(p.address, p.port)).join(', ')}` : '';
    c.warn(path, `ACLs are off (attributes.generateNodeAcls is true): any initiator that reaches this TPG${where} can ${attributes.demoModeWriteProtect ? 'read' : 'read and write'} its LUNs${attributes.authentication ? ' (CHAP still required)' : ''}`);
  }
  if (!attributes.authentication && enable && portals.some((p) => !isLoopback(p.address))) {
    c.warn(join(path, 'attributes.authentication'), 'is false on a non-loopback portal: sessions are not authenticated');
  }

  const parameters = checkParameters(c, join(path, 'parameters'), o.parameters);
  if (tag === undefined) return undefined;
  const tpg: TpgConfig = { tag, enable, portals, luns, acls, attributes, parameters };
  if (chap) tpg.chap = chap;
  return tpg;
}

export function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.');
}

/** "127.0.0.1:3260" or "[::1]:3260". */
export function fmtAddr(address: string, port: number): string {
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

function defaultStateDir(): string {
  if (process.getuid?.() === 0) return '/var/lib/rdma-target';
  const base = process.env.XDG_STATE_HOME || (process.env.HOME ? `${process.env.HOME}/.local/state` : '/tmp');
  return `${base}/rdma-target`;
}

function defaultControlSocket(): string {
  if (process.getuid?.() === 0) return '/run/rdma-target.sock';
  if (process.env.XDG_RUNTIME_DIR) return `${process.env.XDG_RUNTIME_DIR}/rdma-target.sock`;
  return `/tmp/rdma-target-${process.getuid?.() ?? 'user'}.sock`;
}

/** Validates a parsed JSON document; `config` is set only when there are no errors. */
export function validateConfig(doc: unknown, opts: ValidateOptions = {}): ValidationResult {
  const c = new Checker(opts);
  const o = c.object('', doc, ['targets', 'backstores', 'discoveryAuth', 'srp', 'stateDir', 'control', '$schema', 'comment']);
  if (!o) return { errors: c.errors, warnings: c.warnings };

  const backstores: BackstoreConfig[] = [];
  const named = new Map<string, BackstoreConfig>();
  (c.array('backstores', o.backstores, false) ?? []).forEach((bv, i) => {
    const p = `backstores[${i}]`;
    const b = checkBackstore(c, p, bv, true);
    // Keep the name known even when the entry has other errors, so LUN references don't cascade.
    const name = (bv as Obj | null)?.name;
    if (typeof name === 'string' && named.has(name)) { c.err(join(p, 'name'), `duplicates another backstore named ${describe(name)}`); return; }
    if (typeof name === 'string') named.set(name, b ?? ({} as BackstoreConfig));
    if (b) backstores.push(b);
  });
  const paths = new Map<string, string>();
  backstores.forEach((b, i) => {
    if (b.path === undefined) return;
    const prev = paths.get(b.path);
    if (prev) c.err(`backstores[${i}].path`, `is also used by ${prev}; two backstores on one file would corrupt each other`);
    else paths.set(b.path, `backstores[${i}]`);
  });

  const targets: TargetConfig[] = [];
  const ta = c.array('targets', o.targets, true) ?? [];
  if (Array.isArray(o.targets) && ta.length === 0) c.warn('targets', 'is empty: nothing will be exported');
  const seenIqn = new Map<string, number>();
  ta.forEach((tv, i) => {
    const tp = `targets[${i}]`;
    const to = c.object(tp, tv, ['iqn', 'tpgs']);
    if (!to) return;
    const problem = iscsiNameProblem(to.iqn);
    if (problem) c.err(join(tp, 'iqn'), problem);
    else if (seenIqn.has(to.iqn as string)) c.err(join(tp, 'iqn'), `duplicates targets[${seenIqn.get(to.iqn as string)}].iqn`);
    else seenIqn.set(to.iqn as string, i);
    const tpgs: TpgConfig[] = [];
    const seenTag = new Map<number, number>();
    const tpgPortals = new Map<string, string>();
    (c.array(join(tp, 'tpgs'), to.tpgs, true) ?? []).forEach((gv, j) => {
      const gp = `${tp}.tpgs[${j}]`;
      const g = checkTpg(c, gp, gv, named);
      if (!g) return;
      if (seenTag.has(g.tag)) { c.err(join(gp, 'tag'), `duplicates ${tp}.tpgs[${seenTag.get(g.tag)}].tag ${g.tag}`); return; }
      seenTag.set(g.tag, j);
      // Within one target a portal belongs to one TPG, or SendTargets could not say which.
      g.portals.forEach((p, k) => {
        const key = `${p.transport}:${p.address}:${p.port}`;
        const prev = tpgPortals.get(key);
        if (prev) c.err(`${gp}.portals[${k}]`, `is also a portal of ${prev} in the same target`);
        else tpgPortals.set(key, `${gp}`);
      });
      tpgs.push(g);
    });
    if (!problem) targets.push({ iqn: to.iqn as string, tpgs });
  });

  // A wildcard listener and a specific one on the same port cannot both bind.
  const listeners = new Map<string, string>();
  targets.forEach((t, i) => t.tpgs.forEach((g, j) => g.portals.forEach((p, k) => {
    if (p.port === 0) return;
    const here = `targets[${i}].tpgs[${j}].portals[${k}]`;
    for (const [key, where] of listeners) {
      const [tr, addr, port] = key.split('|');
      if (tr !== p.transport || Number(port) !== p.port || addr === p.address) continue;
      if (isWildcard(addr!) || isWildcard(p.address)) {
        if (isIP(addr!) === isIP(p.address) || addr === '::' || p.address === '::') {
          c.err(here, `${fmtAddr(p.address, p.port)} overlaps ${where} (${fmtAddr(addr!, p.port)}); use the same address in both, since one listener serves many targets`);
        }
      }
    }
    listeners.set(`${p.transport}|${p.address}|${p.port}`, here);
  })));

  let discoveryAuth: DiscoveryAuthConfig = { enable: false };
  if (o.discoveryAuth !== undefined) {
    const d = c.object('discoveryAuth', o.discoveryAuth, ['enable', 'userid', 'password', 'mutualUserid', 'mutualPassword']);
    if (d) {
      const enable = c.bool('discoveryAuth.enable', d.enable, true);
      discoveryAuth = { enable };
      if (enable) {
        const { enable: _e, ...rest } = d;
        const chap = checkChap(c, 'discoveryAuth', rest);
        if (chap) discoveryAuth = { enable, ...chap };
      }
    }
  }

  let srp: SrpConfig | undefined;
  if (o.srp !== undefined) srp = checkSrp(c, 'srp', o.srp, named);

  let stateDir = opts.defaults?.stateDir ?? defaultStateDir();
  if (o.stateDir !== undefined) {
    const s = c.str('stateDir', o.stateDir, false);
    if (s !== undefined && !isAbsolute(s)) c.err('stateDir', `must be an absolute path, got ${describe(s)}`);
    else if (s !== undefined) stateDir = s;
  }

  let control: ControlConfig | false = { socket: opts.defaults?.controlSocket ?? defaultControlSocket() };
  if (o.control === false) control = false;
  else if (o.control !== undefined) {
    const co = c.object('control', o.control, ['socket']);
    if (co) {
      const s = c.str('control.socket', co.socket, true);
      if (s !== undefined && !isAbsolute(s)) c.err('control.socket', `must be an absolute path, got ${describe(s)}`);
      else if (s !== undefined) control = { socket: s };
    }
  }

  if (c.errors.length > 0) return { errors: c.errors, warnings: c.warnings };
  const config: Config = { targets, backstores, discoveryAuth, stateDir, control };
  if (srp) config.srp = srp;
  return { config, errors: [], warnings: c.warnings };
}

const SRP_ATTR_KEYS = ['generateNodeAcls', 'credits', 'immediateData', 'maxItIuLength'] as const;

function hex16(c: Checker, path: string, v: unknown): string | undefined {
  if (typeof v !== 'string' || !/^(0x)?([0-9a-fA-F]{16}|[0-9a-fA-F]{4}(:[0-9a-fA-F]{4}){3})$/.test(v)) {
    c.err(path, `must be 16 hex digits (as in ib_srp's add_target, e.g. "0002c90300a1b2c3" or "0002:c903:00a1:b2c3"), got ${describe(v)}`);
    return undefined;
  }
  return v.replace(/^0x/i, '').replace(/:/g, '').toLowerCase();
}

/** An SRP ACL name: "0x" + 32 hex digits (initiator port id) or an IP address; normalised, or undefined. */
export function srpInitiatorName(v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined;
  if (isIP(v) !== 0) return v;
  const h = v.replace(/^0x/i, '').replace(/:/g, '');
  return /^[0-9a-fA-F]{32}$/.test(h) ? `0x${h.toLowerCase()}` : undefined;
}

function checkSrp(c: Checker, path: string, v: unknown, named: Map<string, BackstoreConfig>): SrpConfig | undefined {
  const o = c.object(path, v, ['enable', 'portals', 'targetPortId', 'luns', 'acls', 'attributes']);
  if (!o) return undefined;
  const enable = c.bool(join(path, 'enable'), o.enable, true);
  const a = o.attributes === undefined ? {} : c.object(join(path, 'attributes'), o.attributes, SRP_ATTR_KEYS) ?? {};
  const ap = join(path, 'attributes');
  const attributes: SrpAttributes = {
    generateNodeAcls: c.bool(join(ap, 'generateNodeAcls'), a.generateNodeAcls, false),
    credits: a.credits === undefined ? 128 : c.int(join(ap, 'credits'), a.credits, 2, 4096) ?? 128,
    immediateData: c.bool(join(ap, 'immediateData'), a.immediateData, true),
    maxItIuLength: a.maxItIuLength === undefined ? 65536 : c.int(join(ap, 'maxItIuLength'), a.maxItIuLength, 8260, 1 << 20, 'an integer number of bytes (at least 8260, the IU ib_srp sends with immediate data)') ?? 65536,
  };

  const portals: SrpConfig['portals'] = [];
  const pa = c.array(join(path, 'portals'), o.portals, false) ?? (o.portals === undefined ? [{}] : []);
  const seen = new Map<string, number>();
  pa.forEach((pv, i) => {
    const pp = `${join(path, 'portals')}[${i}]`;
    const po = c.object(pp, pv, ['address', 'port']);
    if (!po) return;
    let address: string | undefined = '0.0.0.0';
    if (po.address !== undefined) {
      address = typeof po.address === 'string' ? po.address.replace(/^\[(.*)\]$/, '$1') : undefined;
      if (address === undefined || isIP(address) === 0) {
        c.err(join(pp, 'address'), `must be an IPv4 or IPv6 address of an RDMA interface (e.g. "10.0.0.1", "0.0.0.0"), got ${describe(po.address)}`);
        return;
      }
    }
    const port = po.port === undefined ? SRP_DEFAULT_PORT : c.int(join(pp, 'port'), po.port, c.opts.allowEphemeralPort ? 0 : 1, 65535);
    if (port === undefined) return;
    const key = `${address}|${port}`;
    if (seen.has(key)) { c.err(pp, `duplicates portals[${seen.get(key)}] (${fmtAddr(address, port)})`); return; }
    seen.set(key, i);
    if (isLoopback(address)) c.warn(pp, `${fmtAddr(address, port)} is a loopback address: no RDMA initiator reaches it`);
    portals.push({ address, port });
  });
  for (const p of portals) {
    if (!isWildcard(p.address)) continue;
    for (const q of portals) if (q !== p && q.port === p.port && !isWildcard(q.address)) c.err(path + '.portals', `${fmtAddr(q.address, q.port)} overlaps the wildcard ${fmtAddr(p.address, p.port)}; list one of them`);
    break;
  }

  let targetPortId: SrpConfig['targetPortId'];
  if (o.targetPortId !== undefined) {
    const to = c.object(join(path, 'targetPortId'), o.targetPortId, ['idExt', 'iocGuid']);
    if (to) {
      const idExt = hex16(c, join(path, 'targetPortId.idExt'), to.idExt);
      const iocGuid = hex16(c, join(path, 'targetPortId.iocGuid'), to.iocGuid);
      if (idExt && iocGuid) targetPortId = { idExt, iocGuid };
    }
  }

  const luns: LunConfig[] = [];
  const seenLun = new Map<number, number>();
  (c.array(join(path, 'luns'), o.luns, false) ?? []).forEach((lv, i) => {
    const lp = `${join(path, 'luns')}[${i}]`;
    const lo = c.object(lp, lv, ['lun', 'backstore']);
    if (!lo) return;
    const lun = c.int(join(lp, 'lun'), lo.lun, 0, 16383);
    let backstore: string | BackstoreConfig | undefined;
    if (typeof lo.backstore === 'string') {
      if (named.has(lo.backstore)) backstore = lo.backstore;
      else c.err(join(lp, 'backstore'), `names no entry in backstores[]${named.size ? ` (known: ${[...named.keys()].join(', ')})` : ''}, got ${describe(lo.backstore)}`);
    } else if (lo.backstore === undefined) {
      c.err(join(lp, 'backstore'), 'is required: a name from backstores[] (shared with iSCSI TPGs) or an inline {type, size, ...}');
    } else {
      backstore = checkBackstore(c, join(lp, 'backstore'), lo.backstore, false);
    }
    if (lun !== undefined) {
      if (seenLun.has(lun)) { c.err(join(lp, 'lun'), `duplicates luns[${seenLun.get(lun)}].lun ${lun}`); return; }
      seenLun.set(lun, i);
    }
    if (lun !== undefined && backstore !== undefined) luns.push({ lun, backstore });
  });
  if (enable && Array.isArray(o.luns) && luns.length === 0 && o.luns.length === 0) c.warn(join(path, 'luns'), 'is empty: SRP initiators will see no LUN');

  const acls: SrpAclConfig[] = [];
  const seenAcl = new Map<string, number>();
  (c.array(join(path, 'acls'), o.acls, false) ?? []).forEach((av, i) => {
    const acp = `${join(path, 'acls')}[${i}]`;
    const ao = c.object(acp, av, ['initiator', 'mappedLuns']);
    if (!ao) return;
    const name = srpInitiatorName(ao.initiator);
    if (!name) { c.err(join(acp, 'initiator'), `must be an initiator port id ("0x" + 32 hex digits, as LIO srpt names its ACLs) or the initiator's IP address for RDMA/CM logins, got ${describe(ao.initiator)}`); return; }
    if (seenAcl.has(name)) { c.err(join(acp, 'initiator'), `duplicates acls[${seenAcl.get(name)}].initiator`); return; }
    seenAcl.set(name, i);
    let mapped: MappedLunConfig[] | undefined;
    if (ao.mappedLuns !== undefined) {
      mapped = [];
      const seenMapped = new Set<number>();
      (c.array(join(acp, 'mappedLuns'), ao.mappedLuns, false) ?? []).forEach((mv, j) => {
        const mp = `${join(acp, 'mappedLuns')}[${j}]`;
        const isBare = typeof mv === 'number';
        const mo = isBare ? { lun: mv, tpgLun: mv } : c.object(mp, mv, ['lun', 'srpLun', 'readOnly']);
        if (!mo) return;
        const ml = c.int(isBare ? mp : join(mp, 'lun'), mo.lun, 0, 16383);
        const srcLun = (mo as Obj).srpLun ?? (mo as Obj).tpgLun;
        const tl = srcLun === undefined ? ml : c.int(join(mp, 'srpLun'), srcLun, 0, 16383);
        const ro = c.bool(join(mp, 'readOnly'), (mo as Obj).readOnly, false);
        if (ml === undefined || tl === undefined) return;
        if (!seenLun.has(tl)) { c.err(isBare ? mp : join(mp, 'srpLun'), `names no entry of srp.luns (${[...seenLun.keys()].join(', ') || 'none'}), got ${tl}`); return; }
        if (seenMapped.has(ml)) { c.err(isBare ? mp : join(mp, 'lun'), `maps LUN ${ml} twice`); return; }
        seenMapped.add(ml);
        mapped!.push({ lun: ml, tpgLun: tl, readOnly: ro });
      });
    }
    const acl: SrpAclConfig = { initiator: name };
    if (mapped) acl.mappedLuns = mapped;
    acls.push(acl);
  });
  if (enable && !attributes.generateNodeAcls && acls.length === 0) {
    c.warn(path, 'has no acls[] and attributes.generateNodeAcls is false: no SRP initiator can log in');
  }
  if (enable && attributes.generateNodeAcls) {
    c.warn(path, 'ACLs are off (attributes.generateNodeAcls is true): any SRP initiator that names this target port can read and write its LUNs');
  }
  const srp: SrpConfig = { enable, portals, luns, acls, attributes };
  if (targetPortId) srp.targetPortId = targetPortId;
  return srp;
}

function isWildcard(a: string): boolean {
  return a === '0.0.0.0' || a === '::';
}

/** Parses JSON text; syntax errors carry line and column where V8 reports a position. */
export function parseJsonText(text: string): { doc?: unknown; error?: string } {
  try {
    return { doc: JSON.parse(text) as unknown };
  } catch (e) {
    const msg = (e as Error).message;
    const m = /position (\d+)/.exec(msg);
    if (m) {
      const pos = Number(m[1]);
      const before = text.slice(0, pos);
      const line = before.split('\n').length;
      const col = pos - before.lastIndexOf('\n');
      return { error: `invalid JSON at line ${line}, column ${col}: ${msg.replace(/ in JSON at position \d+.*$/s, '')}` };
    }
    return { error: `invalid JSON: ${msg}` };
  }
}

/** Parses JSON text and validates it. */
export function parseConfig(text: string, opts: ValidateOptions = {}): ValidationResult {
  const { doc, error } = parseJsonText(text);
  if (error) return { errors: [error], warnings: [] };
  return validateConfig(doc, opts);
}

/** Replaces every TCP portal with `address:port` (the CLI's --listen). */
export function overrideListen(doc: Record<string, unknown>, address: string, port: number): Record<string, unknown> {
  const copy = structuredClone(doc);
  const targets = Array.isArray(copy.targets) ? copy.targets : [];
  for (const t of targets) {
    if (!t || typeof t !== 'object' || !Array.isArray((t as Obj).tpgs)) continue;
    for (const g of (t as { tpgs: unknown[] }).tpgs) {
      if (!g || typeof g !== 'object') continue;
      const go = g as Obj;
      const others = Array.isArray(go.portals) ? (go.portals as Obj[]).filter((p) => p && p.transport === 'iser') : [];
      go.portals = [{ address, port, transport: 'tcp' }, ...others];
    }
  }
  return copy;
}

/** Resolves a LUN's backstore (by name or inline) to its definition. */
export function resolveBackstore(config: Config, lun: LunConfig): BackstoreConfig {
  if (typeof lun.backstore !== 'string') return lun.backstore;
  const b = config.backstores.find((x) => x.name === lun.backstore);
  if (!b) throw new Error(`backstore ${lun.backstore} vanished after validation`);
  return b;
}
