// What the iSCSI and SRP sections share: the schema's building blocks, backstores, CHAP
// credentials, LUN lists and ACLs' mapped-LUN lists (one check each, whichever fabric
// exports the LUN).
//
// Two annotation keywords carry the project's messages in the schema: `errorMessage` (the
// message for a value the node refuses; VS Code shows it too, and the validator appends
// ", got <value>") and `requiredMessage` (when a required field is absent).

import { Type, type Static } from '@sinclair/typebox';
import { bool, isObj, join, type Checker, type Obj } from './checker.js';
import { CHAP_SECRET_MAX, CHAP_SECRET_MIN, DEFAULT_BLOCK_SIZE } from './defaults.js';
import type { BackstoreConfig, BackstoreType, ChapConfig, LunConfig, MappedLunConfig } from './types.js';
import { describe, parseSize, SIZE_PATTERN } from './values.js';

export interface SchemaOptions {
  /** Permit port 0 (the CLI's --listen allows it for tests); the published schema does not. */
  allowEphemeralPort?: boolean;
}

// ---------------------------------------------------------------------------------------
// Building blocks

export function rangeMessage(min: number, max: number, what = 'an integer'): string {
  return `must be ${what} ${min}–${max}`;
}

export function int(min: number, max: number, o: { what?: string; default?: number; description?: string } = {}) {
  const { what, ...rest } = o;
  return Type.Integer({ minimum: min, maximum: max, errorMessage: rangeMessage(min, max, what), ...rest });
}

export function Bool(dflt: boolean, description: string) {
  return Type.Unsafe<boolean | 0 | 1>({ enum: [true, false, 0, 1], default: dflt, description, errorMessage: 'must be true or false' });
}

export function OneOf<T extends string | number>(values: readonly T[], o: { default?: T; description?: string; errorMessage?: string } = {}) {
  const list = values.map((v) => JSON.stringify(v));
  const errorMessage = o.errorMessage ?? `must be one of ${list.join(', ')}`;
  return Type.Unsafe<T>({ enum: [...values], ...o, errorMessage });
}

/** A field that must be absent here (a schema node that refuses every value). */
export function Forbidden(why: string) {
  return Type.Unsafe<never>({ not: {}, errorMessage: why });
}

export function NonEmpty(description: string) {
  return Type.String({ minLength: 1, description, errorMessage: 'must be a non-empty string', requiredMessage: 'is required (a string)' });
}

export function AbsPath(description: string, dflt?: string) {
  return Type.String({
    pattern: '^/',
    description,
    errorMessage: 'must be an absolute path',
    requiredMessage: 'is required (a string)',
    ...(dflt ? { default: dflt } : {}),
  });
}

export function Port(o: SchemaOptions, dflt: number, description: string) {
  return int(o.allowEphemeralPort ? 0 : 1, 65535, { default: dflt, description });
}

/** A schema node that applies `then` when the object's `key` is one of `values`. */
export function when(key: string, values: unknown[], then: Record<string, unknown>) {
  return { if: { properties: { [key]: { enum: values } }, required: [key] }, then };
}

// ---------------------------------------------------------------------------------------
// Backstores

export const SIZE_MESSAGE = 'must be a positive size in bytes or with a suffix such as "512M", "1GiB"';

const Size = Type.Unsafe<number | string>({
  anyOf: [
    { type: 'integer', minimum: 1 },
    { type: 'string', pattern: SIZE_PATTERN },
  ],
  description: 'bytes, or a string with a binary suffix ("512M", "1GiB", "20G": all powers of 1024, as in targetcli); a multiple of blockSize',
  errorMessage: SIZE_MESSAGE,
});

export function backstoreSchema(named: boolean) {
  return Type.Object(
    {
      name: named
        ? Type.String({
            pattern: '^[A-Za-z0-9_.:-]{1,64}$',
            description: 'how LUNs refer to it',
            errorMessage: 'must be 1–64 characters of letters, digits, "_", ".", ":" or "-"',
            requiredMessage: 'is required (a string)',
          })
        : Type.Optional(Forbidden('an inline backstore has no name; move it to backstores[] to share it between LUNs')),
      type: OneOf<BackstoreType>(['ram', 'file', 'block'], { description: 'RAM (lost at exit), a regular file, a block device' }),
      size: Type.Optional(Size),
      blockSize: Type.Optional(
        OneOf([512, 1024, 2048, 4096], { default: DEFAULT_BLOCK_SIZE, description: 'logical block size', errorMessage: 'must be 512, 1024, 2048 or 4096' }),
      ),
      path: Type.Optional(AbsPath('the backing file or device; two backstores may not share one')),
      readOnly: Type.Optional(Bool(false, 'export write-protected')),
      thin: Type.Optional(Bool(false, 'thin provisioning: the LUN reports LBPME and honours UNMAP / GET LBA STATUS')),
      serial: Type.Optional(
        Type.String({
          pattern: '^[\\x21-\\x7e]{1,36}$',
          description: 'unit serial number (VPD page 0x80); derived from the name when absent',
          errorMessage: 'must be 1–36 printable ASCII characters without spaces (VPD page 0x80)',
        }),
      ),
      wwn: Type.Optional(
        Type.String({
          pattern: '^([nN][aA][aA]\\.)?6[0-9a-fA-F]{31}$',
          description: "NAA 6 designator (VPD page 0x83); LIO's 6001405 + serial form when absent",
          errorMessage: 'must be an NAA 6 identifier of 32 hex digits starting with 6, e.g. "6001405c0ffee0000000000000000001"',
        }),
      ),
    },
    {
      additionalProperties: false,
      allOf: [
        when('type', ['ram'], {
          required: ['size'],
          properties: { size: { requiredMessage: 'is required for a ram backstore' }, path: Forbidden('a ram backstore has no path') },
        }),
        when('type', ['file', 'block'], { required: ['path'], properties: { path: { requiredMessage: 'is required (a string)' } } }),
        when('type', ['block'], { properties: { size: Forbidden('a block backstore takes its size from the device; remove it') } }),
      ],
    },
  );
}
export type BackstoreDocument = Static<ReturnType<typeof backstoreSchema>>;

/** Normalises a backstore the schema accepted; checks what depends on parsing the size. */
export function checkBackstore(c: Checker, path: string, v: unknown): BackstoreConfig | undefined {
  if (!isObj(v)) return undefined;
  const o = v as Partial<BackstoreDocument>;
  const sp = join(path, 'size');
  let size: number | undefined;
  if (o.size !== undefined && !c.bad(sp)) {
    size = parseSize(o.size);
    if (size === undefined) c.err(sp, `${SIZE_MESSAGE}, got ${describe(o.size)}`);
  }
  const blockSize = c.bad(join(path, 'blockSize')) ? undefined : (o.blockSize ?? DEFAULT_BLOCK_SIZE);
  if (size !== undefined && blockSize !== undefined && size % blockSize !== 0) {
    c.err(sp, `must be a multiple of blockSize ${blockSize}, got ${size}`);
    return undefined;
  }
  if (c.bad(path) || (size === undefined && o.size !== undefined) || blockSize === undefined) return undefined;
  const b: BackstoreConfig = { type: o.type!, blockSize, readOnly: bool(o.readOnly, false), thin: bool(o.thin, false) };
  if (o.name !== undefined) b.name = o.name;
  if (size !== undefined) b.size = size;
  if (o.path !== undefined) b.path = o.path;
  if (o.serial !== undefined) b.serial = o.serial;
  if (o.wwn !== undefined) b.wwn = o.wwn.toLowerCase().replace(/^naa\./, '');
  return b;
}

/** The top-level `backstores[]`: each entry, unique names, no file shared by two. */
export function resolveBackstoreList(c: Checker, v: unknown): { backstores: BackstoreConfig[]; named: Map<string, BackstoreConfig> } {
  const backstores: BackstoreConfig[] = [];
  const named = new Map<string, BackstoreConfig>();
  (Array.isArray(v) ? (v as unknown[]) : []).forEach((bv, i) => {
    const p = `backstores[${i}]`;
    const b = checkBackstore(c, p, bv);
    // Keep the name known even when the entry has other errors, so LUN references don't cascade.
    const name = isObj(bv) ? bv.name : undefined;
    if (typeof name === 'string' && named.has(name)) {
      c.err(join(p, 'name'), `duplicates another backstore named ${describe(name)}`);
      return;
    }
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
  return { backstores, named };
}

// ---------------------------------------------------------------------------------------
// CHAP

function Secret(description: string) {
  return Type.String({
    minLength: CHAP_SECRET_MIN,
    maxLength: CHAP_SECRET_MAX,
    description,
    errorMessage: `must be a CHAP secret of ${CHAP_SECRET_MIN}–${CHAP_SECRET_MAX} characters`,
    requiredMessage: 'is required (a string)',
  });
}

export const chapProperties = {
  userid: NonEmpty('the name the initiator authenticates as'),
  password: Secret("the initiator's secret"),
  mutualUserid: Type.Optional(NonEmpty('mutual CHAP: the name the target authenticates as (with mutualPassword)')),
  mutualPassword: Type.Optional(Secret("mutual CHAP: the target's secret; must differ from password (RFC 7143 §12.1.3)")),
};
export const ChapSchema = Type.Object(chapProperties, { additionalProperties: false });

/** The checks between CHAP fields; `v` holds at least the CHAP fields (discoveryAuth holds `enable` too). */
export function resolveChap(c: Checker, path: string, v: unknown): ChapConfig | undefined {
  if (!isObj(v)) return undefined;
  const o = v as Partial<Static<typeof ChapSchema>>;
  if ((o.mutualUserid === undefined) !== (o.mutualPassword === undefined)) {
    c.err(path, 'mutual CHAP needs both mutualUserid and mutualPassword');
    return undefined;
  }
  const mp = join(path, 'mutualPassword');
  if (o.mutualPassword !== undefined && o.mutualPassword === o.password && !c.bad(mp)) {
    // RFC 7143 §12.1.3: a secret used both ways lets an attacker reflect challenges.
    c.err(mp, 'must differ from password (RFC 7143 §12.1.3)');
    return undefined;
  }
  for (const k of ['userid', 'password', 'mutualUserid', 'mutualPassword']) if (c.bad(join(path, k))) return undefined;
  const chap: ChapConfig = { userid: o.userid!, password: o.password! };
  if (o.mutualUserid !== undefined && o.mutualPassword !== undefined) {
    chap.mutualUserid = o.mutualUserid;
    chap.mutualPassword = o.mutualPassword;
  }
  return chap;
}

// ---------------------------------------------------------------------------------------
// LUN lists, for a TPG and for the SRP target port alike

const LunNumber = int(0, 16383);

export const LunListSchema = Type.Array(
  Type.Object(
    {
      lun: LunNumber,
      backstore: Type.Unsafe<string | Static<ReturnType<typeof backstoreSchema>>>({
        if: { type: 'string' },
        else: backstoreSchema(false),
        description: 'a name from backstores[] (one logical unit with every TPG that exports it) or an inline backstore owned by this LUN',
        requiredMessage: 'is required: a name from backstores[] or an inline {type, size, ...}',
      }),
    },
    { additionalProperties: false },
  ),
);

export interface LunList {
  luns: LunConfig[];
  /** Every LUN number listed (even one whose backstore is bad), to the index that lists it. */
  numbers: Map<number, number>;
}

export function resolveLuns(c: Checker, path: string, v: unknown, named: ReadonlyMap<string, BackstoreConfig>): LunList {
  const out: LunList = { luns: [], numbers: new Map() };
  if (!Array.isArray(v)) return out;
  v.forEach((lv, i) => {
    const lp = `${path}[${i}]`;
    if (!isObj(lv)) return;
    const lun = c.bad(join(lp, 'lun')) ? undefined : (lv.lun as number);
    const bp = join(lp, 'backstore');
    let backstore: string | BackstoreConfig | undefined;
    if (typeof lv.backstore === 'string') {
      if (named.has(lv.backstore)) backstore = lv.backstore;
      else c.err(bp, `names no entry in backstores[]${named.size ? ` (known: ${[...named.keys()].join(', ')})` : ''}, got ${describe(lv.backstore)}`);
    } else if (lv.backstore !== undefined) {
      backstore = checkBackstore(c, bp, lv.backstore);
    }
    if (lun !== undefined) {
      const prev = out.numbers.get(lun);
      if (prev !== undefined) {
        c.err(join(lp, 'lun'), `duplicates luns[${prev}].lun ${lun}`);
        return;
      }
      out.numbers.set(lun, i);
    }
    if (lun !== undefined && backstore !== undefined) out.luns.push({ lun, backstore });
  });
  return out;
}

// ---------------------------------------------------------------------------------------
// An ACL's mapped LUNs: a bare number maps a LUN under its own number, the common case

/** `source` names the field holding the exported LUN number: tpgLun in a TPG, srpLun for SRP. */
export function mappedLunsSchema(source: 'tpgLun' | 'srpLun', exportedBy: string) {
  return Type.Array(
    Type.Unsafe<number | ({ lun: number; readOnly?: boolean | 0 | 1 } & { [k in typeof source]?: number })>({
      if: { type: 'number' },
      // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then keyword
      then: LunNumber,
      else: Type.Object(
        {
          lun: int(0, 16383, { description: 'the LUN number the initiator sees' }),
          [source]: Type.Optional(int(0, 16383, { description: `the LUN number in ${exportedBy} it shows (default: lun)` })),
          readOnly: Type.Optional(Bool(false, 'write-protected for this initiator')),
        },
        { additionalProperties: false },
      ),
    }),
    { description: `absent: every LUN of ${exportedBy} under its own number; present: only these` },
  );
}

/**
 * Resolves a mapped-LUN list against the LUN numbers exported (`exported`); `noSuch` words
 * the error for a number that is not one of them.
 */
export function resolveMappedLuns(
  c: Checker,
  path: string,
  v: unknown,
  source: 'tpgLun' | 'srpLun',
  exported: ReadonlyMap<number, number>,
  noSuch: (keys: string, lun: number) => string,
): MappedLunConfig[] {
  const mapped: MappedLunConfig[] = [];
  if (!Array.isArray(v)) return mapped;
  const seen = new Set<number>();
  v.forEach((mv, j) => {
    const mp = `${path}[${j}]`;
    if (c.bad(mp)) return;
    const isBare = typeof mv === 'number';
    const mo = isBare ? { lun: mv } : (mv as Obj);
    const ml = mo.lun as number;
    const tl = (mo[source] ?? ml) as number;
    if (!exported.has(tl)) {
      c.err(isBare ? mp : join(mp, source), noSuch([...exported.keys()].join(', ') || 'none', tl));
      return;
    }
    if (seen.has(ml)) {
      c.err(isBare ? mp : join(mp, 'lun'), `maps LUN ${ml} twice`);
      return;
    }
    seen.add(ml);
    mapped.push({ lun: ml, tpgLun: tl, readOnly: bool(mo.readOnly, false) });
  });
  return mapped;
}
