// The iSCSI section: targets → TPGs → portals, LUNs, ACLs, attributes and login parameters.
// Each part is a schema (what one field may hold) and a resolver (defaults, normalisation,
// and the checks between fields that a schema cannot express: unique names and tags,
// portals shared between TPGs, references from ACLs to LUNs).

import { isIP } from 'node:net';
import { Type, type Static } from '@sinclair/typebox';
import { TPG_KEY_RULES, type TpgKeyRule } from '../../iscsi/params.js';
import { bool, isObj, join, type Checker, type Obj } from './checker.js';
import {
  Bool,
  ChapSchema,
  LunListSchema,
  OneOf,
  Port,
  int,
  mappedLunsSchema,
  rangeMessage,
  resolveChap,
  resolveLuns,
  resolveMappedLuns,
  type SchemaOptions,
} from './common.js';
import { DEFAULT_ADDRESS, DEFAULT_PORT, DEFAULT_TPG_TAG, TPG_ATTRIBUTE_DEFAULTS } from './defaults.js';
import type { AclConfig, BackstoreConfig, ChapConfig, PortalConfig, TargetConfig, TpgAttributes, TpgConfig, TransportKind } from './types.js';
import { describe, fmtAddr, ipLiteral, isLoopback, isWildcard, iscsiNameProblem, ISCSI_NAME_MAX_BYTES, ISCSI_NAME_PATTERN } from './values.js';

// iSCSI login keys a config may override, with the value rule for each: the engine's key
// table says which (lib/iscsi/params.ts). Values are kept as the strings the engine negotiates with.
type KeyRule = TpgKeyRule;
export const ISCSI_KEYS: Readonly<Record<string, KeyRule>> = TPG_KEY_RULES;

// ---------------------------------------------------------------------------------------
// Parameters: the schema of each key follows its rule in ISCSI_KEYS

const TEXT_MAX = 255;

function keySchema(rule: KeyRule): Obj {
  switch (rule.kind) {
    case 'bool':
      return { enum: ['Yes', 'No', true, false], errorMessage: 'must be "Yes" or "No"' };
    case 'enum':
      return { enum: rule.values, errorMessage: `must be one of ${rule.values.map((x) => `"${x}"`).join(', ')}` };
    case 'text':
      return { type: 'string', maxLength: TEXT_MAX, errorMessage: `must be a string of at most ${TEXT_MAX} characters` };
    case 'int': {
      // Integers may be written as decimal strings, as LIO's saveconfig does; their range is checked after parsing.
      const errorMessage = rangeMessage(rule.min, rule.max);
      return {
        if: { type: 'string' },
        // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then keyword
        then: { pattern: '^\\d+$', errorMessage },
        else: { type: 'integer', minimum: rule.min, maximum: rule.max, errorMessage },
        errorMessage,
      };
    }
  }
}

const ParametersSchema = Type.Object(
  {
    ...Object.fromEntries(Object.entries(ISCSI_KEYS).map(([k, rule]) => [k, Type.Optional(Type.Unsafe<string | number | boolean>(keySchema(rule)))])),
    AuthMethod: Type.Optional(
      Type.Unsafe<never>({ not: {}, errorMessage: 'is set by attributes.authentication (true: CHAP required; false: None), not here' }),
    ),
  },
  {
    additionalProperties: false,
    description: 'iSCSI login key overrides, RFC 7143 §13 names; strings as in LIO\'s saveconfig, numbers, or booleans (true = "Yes")',
  },
);

function resolveParameters(c: Checker, path: string, v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isObj(v)) return out;
  for (const [k, val] of Object.entries(v)) {
    const rule = ISCSI_KEYS[k];
    const p = join(path, k);
    if (!rule || c.bad(p)) continue;
    switch (rule.kind) {
      case 'bool':
        out[k] = val === true || val === 'Yes' ? 'Yes' : 'No';
        break;
      case 'int': {
        const n = Number(val);
        if (n < rule.min || n > rule.max) c.err(p, `${rangeMessage(rule.min, rule.max)}, got ${describe(n)}`);
        else out[k] = String(n);
        break;
      }
      default:
        out[k] = val as string;
    }
  }
  const fb = out.FirstBurstLength,
    mb = out.MaxBurstLength;
  if (fb !== undefined && mb !== undefined && Number(fb) > Number(mb)) {
    c.err(join(path, 'FirstBurstLength'), `must not exceed MaxBurstLength ${mb} (RFC 7143 §13.14), got ${fb}`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Schemas

/** An iSCSI name; the `iscsi-name` format words the reason a name is refused (iscsiNameProblem). */
export const IscsiName = (description: string) =>
  Type.String({ pattern: ISCSI_NAME_PATTERN, maxLength: ISCSI_NAME_MAX_BYTES, format: 'iscsi-name', description });

const ADDRESS_MESSAGE = 'must be an IPv4 or IPv6 address (e.g. "127.0.0.1", "0.0.0.0", "::")';

function portalSchema(o: SchemaOptions) {
  return Type.Object(
    {
      address: Type.Optional(
        Type.String({
          default: DEFAULT_ADDRESS,
          description: 'an IPv4 or IPv6 literal ("[::1]" accepted); "0.0.0.0" or "::" for every interface',
          errorMessage: ADDRESS_MESSAGE,
        }),
      ),
      port: Type.Optional(Port(o, DEFAULT_PORT, 'TCP port')),
      transport: Type.Optional(
        OneOf<'tcp' | 'iser'>(['tcp', 'iser'], { default: 'tcp', description: "iSER may share TCP's address:port", errorMessage: 'must be "tcp" or "iser"' }),
      ),
    },
    { additionalProperties: false },
  );
}

const d = TPG_ATTRIBUTE_DEFAULTS;
const seconds = 'an integer number of seconds';
const AttributesSchema = Type.Object(
  {
    generateNodeAcls: Type.Optional(Bool(d.generateNodeAcls, 'demo mode: any initiator may log in and sees every LUN (LIO generate_node_acls)')),
    authentication: Type.Optional(Bool(d.authentication, 'require CHAP on normal sessions')),
    demoModeWriteProtect: Type.Optional(Bool(d.demoModeWriteProtect, 'in demo mode, export LUNs read-only')),
    defaultCmdsnDepth: Type.Optional(
      int(1, 512, { default: d.defaultCmdsnDepth, description: 'commands an initiator may have outstanding per session (CmdSN window)' }),
    ),
    loginTimeout: Type.Optional(
      int(1, 3600, { what: seconds, default: d.loginTimeout, description: 'seconds a login may take before the connection is dropped' }),
    ),
    nopInTimeout: Type.Optional(
      int(0, 3600, { what: seconds, default: d.nopInTimeout, description: 'seconds without a PDU from the initiator before a NOP-In ping (0: no pings)' }),
    ),
    nopInResponseTimeout: Type.Optional(
      int(1, 3600, { what: seconds, default: d.nopInResponseTimeout, description: 'seconds a NOP-In ping may go unanswered before the connection is dropped' }),
    ),
  },
  { additionalProperties: false },
);

const AclSchema = Type.Object(
  {
    initiator: IscsiName("the initiator's InitiatorName; unique within the TPG"),
    chap: Type.Optional(ChapSchema),
    mappedLuns: Type.Optional(mappedLunsSchema('tpgLun', 'the TPG')),
  },
  { additionalProperties: false },
);

function tpgSchema(o: SchemaOptions) {
  return Type.Object(
    {
      tag: Type.Optional(int(1, 65535, { default: DEFAULT_TPG_TAG, description: 'the target portal group tag; unique within the target' })),
      enable: Type.Optional(Bool(true, 'a disabled TPG is validated but not served')),
      portals: Type.Optional(Type.Array(portalSchema(o), { description: `where it listens (default: ${DEFAULT_ADDRESS}:${DEFAULT_PORT} over TCP)` })),
      luns: Type.Optional(LunListSchema),
      acls: Type.Optional(Type.Array(AclSchema)),
      attributes: Type.Optional(AttributesSchema),
      chap: Type.Optional(ChapSchema),
      parameters: Type.Optional(ParametersSchema),
    },
    { additionalProperties: false },
  );
}

export function targetSchema(o: SchemaOptions) {
  return Type.Object(
    {
      iqn: IscsiName("the target's iSCSI name; unique"),
      tpgs: Type.Array(tpgSchema(o), { description: 'target portal groups' }),
    },
    { additionalProperties: false },
  );
}
type TpgDocument = Static<ReturnType<typeof tpgSchema>>;

// ---------------------------------------------------------------------------------------
// Resolvers

function resolvePortal(c: Checker, path: string, v: unknown): PortalConfig | undefined {
  if (!isObj(v)) return undefined;
  let address: string | undefined;
  if (!c.bad(join(path, 'address'))) {
    address = ipLiteral(v.address ?? DEFAULT_ADDRESS);
    if (address === undefined) c.err(join(path, 'address'), `${ADDRESS_MESSAGE}, got ${describe(v.address)}`);
  }
  if (address === undefined || c.bad(join(path, 'port')) || c.bad(join(path, 'transport'))) return undefined;
  return { address, port: (v.port ?? DEFAULT_PORT) as number, transport: (v.transport ?? 'tcp') as TransportKind };
}

function resolveAttributes(v: unknown): TpgAttributes {
  const a = isObj(v) ? v : {};
  const out = { ...TPG_ATTRIBUTE_DEFAULTS };
  for (const k of Object.keys(out) as Array<keyof TpgAttributes>) {
    const dflt = out[k];
    if (typeof dflt === 'boolean') (out as Record<string, unknown>)[k] = bool(a[k], dflt);
    else if (typeof a[k] === 'number') (out as Record<string, unknown>)[k] = a[k];
  }
  return out;
}

function resolveTpg(c: Checker, path: string, v: unknown, named: ReadonlyMap<string, BackstoreConfig>): TpgConfig | undefined {
  if (!isObj(v)) return undefined;
  const o = v as Partial<TpgDocument>;
  const tag = c.bad(join(path, 'tag')) ? undefined : (o.tag ?? DEFAULT_TPG_TAG);
  const enable = bool(o.enable, true);
  const attributes = resolveAttributes(o.attributes);

  const portals: PortalConfig[] = [];
  const pa: unknown[] = Array.isArray(o.portals) ? o.portals : o.portals === undefined ? [{}] : [];
  const seenPortal = new Map<string, number>();
  pa.forEach((pv, i) => {
    const pp = `${join(path, 'portals')}[${i}]`;
    const p = resolvePortal(c, pp, pv);
    if (!p) return;
    const key = `${p.transport}:${p.address}:${p.port}`;
    const prev = seenPortal.get(key);
    if (prev !== undefined) c.err(pp, `duplicates portals[${prev}] (${p.transport} ${p.address}:${p.port})`);
    else {
      seenPortal.set(key, i);
      portals.push(p);
    }
  });
  if (Array.isArray(o.portals) && o.portals.length === 0 && enable) c.warn(join(path, 'portals'), 'is empty: this TPG is reachable on no address');

  const { luns, numbers } = resolveLuns(c, join(path, 'luns'), o.luns, named);

  let chap: ChapConfig | undefined;
  if (o.chap !== undefined && !c.bad(join(path, 'chap'))) chap = resolveChap(c, join(path, 'chap'), o.chap);

  const acls: AclConfig[] = [];
  const seenAcl = new Map<string, number>();
  (Array.isArray(o.acls) ? (o.acls as unknown[]) : []).forEach((av, i) => {
    const acp = `${join(path, 'acls')}[${i}]`;
    if (!isObj(av)) return;
    const problem = c.bad(join(acp, 'initiator')) || iscsiNameProblem(av.initiator) !== undefined;
    if (!problem) {
      const prev = seenAcl.get(av.initiator as string);
      if (prev !== undefined) c.err(join(acp, 'initiator'), `duplicates acls[${prev}].initiator`);
      seenAcl.set(av.initiator as string, i);
    }
    const achap = av.chap === undefined || c.bad(join(acp, 'chap')) ? undefined : resolveChap(c, join(acp, 'chap'), av.chap);
    if (attributes.authentication && av.chap === undefined) {
      c.err(join(acp, 'chap'), 'is required because attributes.authentication is true');
    }
    const mapped =
      av.mappedLuns === undefined
        ? undefined
        : resolveMappedLuns(c, join(acp, 'mappedLuns'), av.mappedLuns, 'tpgLun', numbers, (keys, l) => `names no LUN of this TPG (luns: ${keys}), got ${l}`);
    if (problem || (av.chap !== undefined && !achap)) return;
    const acl: AclConfig = { initiator: av.initiator as string };
    if (achap) acl.chap = achap;
    if (mapped) acl.mappedLuns = mapped;
    acls.push(acl);
  });

  if (attributes.authentication && attributes.generateNodeAcls && o.chap === undefined) {
    c.err(
      join(path, 'chap'),
      'is required when attributes.authentication and attributes.generateNodeAcls are both true (demo-mode sessions have no ACL to hold credentials)',
    );
  }
  if (!attributes.generateNodeAcls && acls.length === 0 && enable && Array.isArray(o.acls) === false) {
    c.warn(path, 'has no acls[] and attributes.generateNodeAcls is false: no initiator can log in');
  }
  if (attributes.generateNodeAcls && enable) {
    const exposed = portals.filter((p) => !isLoopback(p.address));
    const where = exposed.length ? ` on ${exposed.map((p) => fmtAddr(p.address, p.port)).join(', ')}` : '';
    c.warn(
      path,
      `ACLs are off (attributes.generateNodeAcls is true): any initiator that reaches this TPG${where} can ${attributes.demoModeWriteProtect ? 'read' : 'read and write'} its LUNs${attributes.authentication ? ' (CHAP still required)' : ''}`,
    );
  }
  if (!attributes.authentication && enable && portals.some((p) => !isLoopback(p.address))) {
    c.warn(join(path, 'attributes.authentication'), 'is false on a non-loopback portal: sessions are not authenticated');
  }

  const parameters = resolveParameters(c, join(path, 'parameters'), o.parameters);
  if (tag === undefined) return undefined;
  const tpg: TpgConfig = { tag, enable, portals, luns, acls, attributes, parameters };
  if (chap) tpg.chap = chap;
  return tpg;
}

/** The `targets[]` section: each target, then what must hold between targets and TPGs. */
export function resolveTargets(c: Checker, v: unknown, named: ReadonlyMap<string, BackstoreConfig>): TargetConfig[] {
  const targets: TargetConfig[] = [];
  const ta: unknown[] = Array.isArray(v) ? v : [];
  if (Array.isArray(v) && ta.length === 0) c.warn('targets', 'is empty: nothing will be exported');
  const seenIqn = new Map<string, number>();
  ta.forEach((tv, i) => {
    const tp = `targets[${i}]`;
    if (!isObj(tv)) return;
    const iqn = tv.iqn as string;
    // The schema has said why a name is refused; only uniqueness is left.
    const problem = c.bad(join(tp, 'iqn')) || iscsiNameProblem(iqn) !== undefined;
    if (!problem && seenIqn.has(iqn)) c.err(join(tp, 'iqn'), `duplicates targets[${seenIqn.get(iqn)}].iqn`);
    else if (!problem) seenIqn.set(iqn, i);
    const tpgs: TpgConfig[] = [];
    const seenTag = new Map<number, number>();
    const tpgPortals = new Map<string, string>();
    (Array.isArray(tv.tpgs) ? (tv.tpgs as unknown[]) : []).forEach((gv, j) => {
      const gp = `${tp}.tpgs[${j}]`;
      const g = resolveTpg(c, gp, gv, named);
      if (!g) return;
      if (seenTag.has(g.tag)) {
        c.err(join(gp, 'tag'), `duplicates ${tp}.tpgs[${seenTag.get(g.tag)}].tag ${g.tag}`);
        return;
      }
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
    if (!problem) targets.push({ iqn, tpgs });
  });

  // A wildcard listener and a specific one on the same port cannot both bind.
  const listeners = new Map<string, string>();
  targets.forEach((t, i) =>
    t.tpgs.forEach((g, j) =>
      g.portals.forEach((p, k) => {
        if (p.port === 0) return;
        const here = `targets[${i}].tpgs[${j}].portals[${k}]`;
        for (const [key, where] of listeners) {
          const [tr, addr, port] = key.split('|');
          if (tr !== p.transport || Number(port) !== p.port || addr === p.address) continue;
          if (isWildcard(addr!) || isWildcard(p.address)) {
            if (isIP(addr!) === isIP(p.address) || addr === '::' || p.address === '::') {
              c.err(
                here,
                `${fmtAddr(p.address, p.port)} overlaps ${where} (${fmtAddr(addr!, p.port)}); use the same address in both, since one listener serves many targets`,
              );
            }
          }
        }
        listeners.set(`${p.transport}|${p.address}|${p.port}`, here);
      }),
    ),
  );
  return targets;
}
