// The control API's model methods (docs/control.md): each is an edit of the configuration
// *document* (the file's shape, configDocument()), so the result is validated by the very
// code that validates the file (errors name the same field paths), and the daemon applies
// the difference between the running configuration and the edited one (Daemon.applyConfig),
// touching only the objects that differ. `reload` applies an edited file the same way.

/** A request the caller got wrong: `field` names the parameter or configuration field. */
export class ParamError extends Error {
  constructor(
    readonly field: string,
    message: string,
    readonly code = -32602,
  ) {
    super(`${field}: ${message}`);
    this.name = 'ParamError';
  }
}

/** An error whose message is given whole (no "field: " prefix), still naming the field for JSON-RPC's data. */
export function fieldError(field: string, message: string, code: number): Error {
  return Object.assign(new Error(message), { field, code });
}

type Obj = Record<string, unknown>;
type Params = Obj;
type Doc = Obj & { targets: Obj[]; backstores: Obj[] };
interface TpgDoc extends Obj {
  tag: number;
  portals: Obj[];
  luns: Obj[];
  acls: Obj[];
  attributes: Obj;
  parameters: Obj;
}

function str(p: Params, k: string, required = true): string | undefined {
  const v = p[k];
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'string' || v === '') throw new ParamError(k, `must be a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}

function int(p: Params, k: string, dflt?: number): number {
  const v = p[k] ?? dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new ParamError(k, `must be a non-negative integer, got ${JSON.stringify(v)}`);
  return v;
}

function obj(p: Params, k: string): Obj | undefined {
  const v = p[k];
  if (v === undefined) return undefined;
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new ParamError(k, `must be an object, got ${JSON.stringify(v)}`);
  return v as Obj;
}

function only(p: Params, allowed: string[]): void {
  for (const k of Object.keys(p)) if (!allowed.includes(k)) throw new ParamError(k, `unknown parameter; allowed: ${allowed.join(', ')}`);
}

function target(doc: Doc, p: Params): Obj & { tpgs: TpgDoc[] } {
  const iqn = str(p, 'target')!;
  const t = doc.targets.find((x) => x.iqn === iqn);
  if (!t) throw new ParamError('target', `no target ${JSON.stringify(iqn)} (have: ${doc.targets.map((x) => String(x.iqn)).join(', ') || 'none'})`);
  return t as Obj & { tpgs: TpgDoc[] };
}

function tpg(doc: Doc, p: Params): TpgDoc {
  const t = target(doc, p);
  const tag = int(p, 'tpg', 1);
  const g = t.tpgs.find((x) => x.tag === tag);
  if (!g) throw new ParamError('tpg', `${String(t.iqn)} has no TPG ${tag} (have: ${t.tpgs.map((x) => x.tag).join(', ') || 'none'})`);
  return g;
}

function acl(g: TpgDoc, p: Params): Obj {
  const initiator = str(p, 'initiator')!;
  const a = g.acls.find((x) => x.initiator === initiator);
  if (!a) throw new ParamError('initiator', `TPG ${g.tag} has no ACL for ${JSON.stringify(initiator)}`);
  return a;
}

const TPG = ['target', 'tpg'];
const CHAP = ['userid', 'password', 'mutualUserid', 'mutualPassword'];

function chapOf(p: Params): Obj {
  const c: Obj = {};
  for (const k of CHAP) if (p[k] !== undefined) c[k] = p[k];
  return c;
}

export interface MethodSpec {
  /** One line for `help` and the CLI. */
  summary: string;
  params: string;
  /** Edits `doc` in place; returns what the reply reports besides the applied difference. */
  edit(doc: Doc, p: Params): unknown;
  /** Refuse removing in-use LUNs unless the request says force. */
  force?: boolean;
}

/** Every model-changing method, by name. */
export const EDIT_METHODS: Record<string, MethodSpec> = {
  'backstore.create': {
    summary: 'define a named backstore (opened when a LUN first uses it)',
    params: '{name, type: ram|file|block, size?, path?, blockSize?, readOnly?, thin?, serial?, wwn?}',
    edit(doc, p) {
      str(p, 'name');
      doc.backstores.push({ ...p });
    },
  },
  'backstore.delete': {
    summary: 'remove a named backstore no LUN uses',
    params: '{name}',
    edit(doc, p) {
      only(p, ['name']);
      const name = str(p, 'name');
      const i = doc.backstores.findIndex((b) => b.name === name);
      if (i < 0) throw new ParamError('name', `no backstore ${JSON.stringify(name)}`);
      const users: string[] = [];
      for (const t of doc.targets)
        for (const g of t.tpgs as TpgDoc[]) for (const l of g.luns) if (l.backstore === name) users.push(`${String(t.iqn)} tpg ${g.tag} LUN ${String(l.lun)}`);
      for (const l of ((doc.srp as Obj | undefined)?.luns as Obj[] | undefined) ?? []) if (l.backstore === name) users.push(`srp LUN ${String(l.lun)}`);
      if (users.length) throw new ParamError('name', `backstore ${name} is used by ${users.join(', ')}; delete those LUNs first`, -32001);
      doc.backstores.splice(i, 1);
    },
  },
  'target.create': {
    summary: 'create an iSCSI target with TPG 1 (no portals, LUNs or ACLs yet: add them)',
    params: '{target}',
    edit(doc, p) {
      only(p, ['target']);
      doc.targets.push({ iqn: str(p, 'target'), tpgs: [{ tag: 1, portals: [] }] });
    },
  },
  'target.delete': {
    summary: 'delete a target, its TPGs and their sessions (force when a LUN is in use)',
    params: '{target, force?}',
    force: true,
    edit(doc, p) {
      only(p, ['target', 'force']);
      const t = target(doc, p);
      doc.targets.splice(doc.targets.indexOf(t), 1);
    },
  },
  'tpg.create': {
    summary: 'add a TPG to a target',
    params: '{target, tpg, attributes?, parameters?}',
    edit(doc, p) {
      only(p, [...TPG, 'attributes', 'parameters', 'enable']);
      const t = target(doc, p);
      const tag = int(p, 'tpg');
      t.tpgs.push({
        tag,
        portals: [],
        luns: [],
        acls: [],
        ...(p.attributes ? { attributes: p.attributes } : {}),
        ...(p.parameters ? { parameters: p.parameters } : {}),
        ...(p.enable !== undefined ? { enable: p.enable } : {}),
      } as unknown as TpgDoc);
    },
  },
  'tpg.delete': {
    summary: 'delete a TPG and end its sessions (force when a LUN is in use)',
    params: '{target, tpg, force?}',
    force: true,
    edit(doc, p) {
      only(p, [...TPG, 'force']);
      const t = target(doc, p);
      const g = tpg(doc, p);
      t.tpgs.splice(t.tpgs.indexOf(g), 1);
    },
  },
  'tpg.set': {
    summary: 'set TPG attributes and iSCSI login parameters (they apply to new logins)',
    params: '{target, tpg?, attributes?: {name: value}, parameters?: {Key: "value"}, enable?, force?}',
    force: true,
    edit(doc, p) {
      only(p, [...TPG, 'attributes', 'parameters', 'enable', 'force']);
      const g = tpg(doc, p);
      const a = obj(p, 'attributes');
      const ps = obj(p, 'parameters');
      if (a) g.attributes = { ...g.attributes, ...a };
      if (ps) {
        const next = { ...g.parameters, ...ps };
        // null removes an override (back to the default).
        for (const [k, v] of Object.entries(ps)) if (v === null) delete next[k];
        g.parameters = next;
      }
      if (p.enable !== undefined) g.enable = p.enable;
      return { appliesTo: 'new logins; existing sessions keep what they negotiated' };
    },
  },
  'portal.create': {
    summary: 'add a portal (tcp or iser) to a TPG; opens its listener if new',
    params: '{target, tpg?, address, port?: 3260, transport?: tcp|iser}',
    edit(doc, p) {
      only(p, [...TPG, 'address', 'port', 'transport']);
      const g = tpg(doc, p);
      g.portals.push({ address: str(p, 'address'), port: p.port ?? 3260, transport: p.transport ?? 'tcp' });
    },
  },
  'portal.delete': {
    summary: 'remove a portal; closes its listener (and its connections) when no TPG uses it',
    params: '{target, tpg?, address, port?: 3260, transport?: tcp|iser}',
    edit(doc, p) {
      only(p, [...TPG, 'address', 'port', 'transport']);
      const g = tpg(doc, p);
      const port = p.port ?? 3260;
      const transport = p.transport ?? 'tcp';
      const i = g.portals.findIndex((x) => x.address === p.address && x.port === port && x.transport === transport);
      if (i < 0) throw new ParamError('address', `TPG ${g.tag} has no ${String(transport)} portal ${String(p.address)}:${String(port)}`);
      g.portals.splice(i, 1);
    },
  },
  'lun.create': {
    summary: 'export a LUN (a named backstore or an inline definition); sessions that see it get REPORTED LUNS DATA HAS CHANGED',
    params: '{target, tpg?, lun, backstore: name | {type, size?, path?, ...}}',
    edit(doc, p) {
      only(p, [...TPG, 'lun', 'backstore']);
      const g = tpg(doc, p);
      if (p.backstore === undefined) throw new ParamError('backstore', 'is required (a backstore name or definition)');
      g.luns.push({ lun: p.lun, backstore: p.backstore });
    },
  },
  'lun.delete': {
    summary: 'stop exporting a LUN; refused while a session sees it unless force (in-flight commands are then aborted)',
    params: '{target, tpg?, lun, force?}',
    force: true,
    edit(doc, p) {
      only(p, [...TPG, 'lun', 'force']);
      const g = tpg(doc, p);
      const n = int(p, 'lun');
      const i = g.luns.findIndex((l) => l.lun === n);
      if (i < 0) throw new ParamError('lun', `TPG ${g.tag} has no LUN ${n}`);
      g.luns.splice(i, 1);
      // Mapped LUNs that pointed at it go too (LIO removes them with the LUN).
      for (const a of g.acls) if (Array.isArray(a.mappedLuns)) a.mappedLuns = (a.mappedLuns as Obj[]).filter((m) => m.tpgLun !== n);
    },
  },
  'acl.create': {
    summary: 'allow an initiator, with optional CHAP and mapped LUNs (absent: every TPG LUN)',
    params: '{target, tpg?, initiator, chap?: {userid, password, mutualUserid?, mutualPassword?}, mappedLuns?: [{lun, tpgLun, readOnly?}]}',
    edit(doc, p) {
      only(p, [...TPG, 'initiator', 'chap', 'mappedLuns']);
      const g = tpg(doc, p);
      g.acls.push({
        initiator: str(p, 'initiator'),
        ...(p.chap !== undefined ? { chap: p.chap } : {}),
        ...(p.mappedLuns !== undefined ? { mappedLuns: p.mappedLuns } : {}),
      });
    },
  },
  'acl.delete': {
    summary: "remove an initiator's ACL and end that initiator's sessions only",
    params: '{target, tpg?, initiator}',
    edit(doc, p) {
      only(p, [...TPG, 'initiator']);
      const g = tpg(doc, p);
      g.acls.splice(g.acls.indexOf(acl(g, p)), 1);
    },
  },
  'mappedlun.create': {
    summary: 'map a TPG LUN into an ACL under a LUN number',
    params: '{target, tpg?, initiator, lun, tpgLun, readOnly?}',
    edit(doc, p) {
      only(p, [...TPG, 'initiator', 'lun', 'tpgLun', 'readOnly']);
      const g = tpg(doc, p);
      const a = acl(g, p);
      // An ACL without mappedLuns sees every LUN: mapping one makes the list explicit.
      const list = Array.isArray(a.mappedLuns) ? (a.mappedLuns as Obj[]) : g.luns.map((l) => ({ lun: l.lun, tpgLun: l.lun, readOnly: false }));
      a.mappedLuns = [...list, { lun: p.lun, tpgLun: p.tpgLun, ...(p.readOnly !== undefined ? { readOnly: p.readOnly } : {}) }];
    },
  },
  'mappedlun.delete': {
    summary: 'unmap a LUN number from an ACL',
    params: '{target, tpg?, initiator, lun}',
    edit(doc, p) {
      only(p, [...TPG, 'initiator', 'lun']);
      const g = tpg(doc, p);
      const a = acl(g, p);
      const n = int(p, 'lun');
      const list = Array.isArray(a.mappedLuns) ? (a.mappedLuns as Obj[]) : g.luns.map((l) => ({ lun: l.lun, tpgLun: l.lun, readOnly: false }));
      if (!list.some((m) => m.lun === n)) throw new ParamError('lun', `${String(a.initiator)} has no mapped LUN ${n}`);
      a.mappedLuns = list.filter((m) => m.lun !== n);
    },
  },
  'chap.set': {
    summary: "set CHAP (and mutual CHAP) for an ACL (initiator given: its sessions end) or the TPG's demo mode",
    params: '{target, tpg?, initiator?, userid, password, mutualUserid?, mutualPassword?}',
    edit(doc, p) {
      only(p, [...TPG, 'initiator', ...CHAP]);
      const g = tpg(doc, p);
      if (p.initiator !== undefined) acl(g, p).chap = chapOf(p);
      else g.chap = chapOf(p);
    },
  },
  'chap.delete': {
    summary: 'remove CHAP from an ACL (its sessions end) or from the TPG',
    params: '{target, tpg?, initiator?}',
    edit(doc, p) {
      only(p, [...TPG, 'initiator']);
      const g = tpg(doc, p);
      if (p.initiator !== undefined) delete acl(g, p).chap;
      else delete g.chap;
    },
  },
  'discovery-auth.set': {
    summary: 'set discovery-session CHAP (enable: false turns it off)',
    params: '{enable?, userid?, password?, mutualUserid?, mutualPassword?}',
    edit(doc, p) {
      only(p, ['enable', ...CHAP]);
      doc.discoveryAuth = { enable: p.enable ?? true, ...chapOf(p) };
    },
  },
  'srp.set': {
    summary: 'create or change the SRP section: enable, portals, targetPortId (null: the default), attributes (for new logins)',
    params: '{enable?, portals?: [{address, port?}], targetPortId?: {idExt, iocGuid} | null, attributes?: {name: value}, force?}',
    force: true,
    edit(doc, p) {
      only(p, ['enable', 'portals', 'targetPortId', 'attributes', 'force']);
      const srp = srpSection(doc, true);
      if (p.enable !== undefined) srp.enable = p.enable;
      if (p.portals !== undefined) srp.portals = p.portals;
      if (p.targetPortId === null) delete srp.targetPortId;
      else if (p.targetPortId !== undefined) srp.targetPortId = p.targetPortId;
      const a = obj(p, 'attributes');
      if (a) srp.attributes = { ...((srp.attributes as Obj | undefined) ?? {}), ...a };
      return { appliesTo: 'new logins; existing SRP sessions keep what they logged in with' };
    },
  },
  'srp.delete': {
    summary: 'remove the SRP section: its LUNs, listeners and sessions (force when a LUN is in use)',
    params: '{force?}',
    force: true,
    edit(doc, p) {
      only(p, ['force']);
      srpSection(doc);
      delete doc.srp;
    },
  },
  'srp.lun.create': {
    summary: 'export a LUN over SRP; SRP sessions that see it get REPORTED LUNS DATA HAS CHANGED',
    params: '{lun, backstore: name | {type, size?, path?, ...}}',
    edit(doc, p) {
      only(p, ['lun', 'backstore']);
      const srp = srpSection(doc);
      if (p.backstore === undefined) throw new ParamError('backstore', 'is required (a backstore name or definition)');
      srp.luns.push({ lun: p.lun, backstore: p.backstore });
    },
  },
  'srp.lun.delete': {
    summary: 'stop exporting an SRP LUN; refused while an SRP session sees it unless force (in-flight commands are then aborted)',
    params: '{lun, force?}',
    force: true,
    edit(doc, p) {
      only(p, ['lun', 'force']);
      const srp = srpSection(doc);
      const n = int(p, 'lun');
      const i = srp.luns.findIndex((l) => l.lun === n);
      if (i < 0) throw new ParamError('lun', `srp has no LUN ${n}`);
      srp.luns.splice(i, 1);
      for (const a of srp.acls) if (Array.isArray(a.mappedLuns)) a.mappedLuns = (a.mappedLuns as Obj[]).filter((m) => m.srpLun !== n);
    },
  },
  'srp.acl.create': {
    summary: 'allow an SRP initiator (port id "0x" + 32 hex digits, or its IP address), with optional mapped LUNs (absent: every SRP LUN)',
    params: '{initiator, mappedLuns?: [{lun, srpLun, readOnly?}]}',
    edit(doc, p) {
      only(p, ['initiator', 'mappedLuns']);
      const srp = srpSection(doc);
      srp.acls.push({ initiator: str(p, 'initiator'), ...(p.mappedLuns !== undefined ? { mappedLuns: p.mappedLuns } : {}) });
    },
  },
  'srp.acl.delete': {
    summary: "remove an SRP initiator's ACL and end that initiator's SRP sessions only",
    params: '{initiator}',
    edit(doc, p) {
      only(p, ['initiator']);
      const srp = srpSection(doc);
      srp.acls.splice(srp.acls.indexOf(srpAcl(srp, p)), 1);
    },
  },
  'srp.mappedlun.create': {
    summary: "map an SRP LUN into an SRP ACL under a LUN number (that initiator's sessions get REPORTED LUNS DATA HAS CHANGED)",
    params: '{initiator, lun, srpLun, readOnly?}',
    edit(doc, p) {
      only(p, ['initiator', 'lun', 'srpLun', 'readOnly']);
      const srp = srpSection(doc);
      const a = srpAcl(srp, p);
      const list = Array.isArray(a.mappedLuns) ? (a.mappedLuns as Obj[]) : srp.luns.map((l) => ({ lun: l.lun, srpLun: l.lun, readOnly: false }));
      a.mappedLuns = [...list, { lun: p.lun, srpLun: p.srpLun, ...(p.readOnly !== undefined ? { readOnly: p.readOnly } : {}) }];
    },
  },
  'srp.mappedlun.delete': {
    summary: 'unmap a LUN number from an SRP ACL',
    params: '{initiator, lun}',
    edit(doc, p) {
      only(p, ['initiator', 'lun']);
      const srp = srpSection(doc);
      const a = srpAcl(srp, p);
      const n = int(p, 'lun');
      const list = Array.isArray(a.mappedLuns) ? (a.mappedLuns as Obj[]) : srp.luns.map((l) => ({ lun: l.lun, srpLun: l.lun, readOnly: false }));
      if (!list.some((m) => m.lun === n)) throw new ParamError('lun', `${String(a.initiator)} has no mapped LUN ${n}`);
      a.mappedLuns = list.filter((m) => m.lun !== n);
    },
  },
};

/** The SRP section of the document; `create` makes an empty one (enabled, default portal) when absent. */
function srpSection(doc: Doc, create = false): Obj & { luns: Obj[]; acls: Obj[] } {
  let srp = doc.srp as (Obj & { luns?: Obj[]; acls?: Obj[] }) | undefined;
  if (!srp) {
    if (!create) throw new ParamError('srp', 'there is no srp section (create it with srp.set)');
    srp = {};
    doc.srp = srp;
  }
  srp.luns ??= [];
  srp.acls ??= [];
  return srp as Obj & { luns: Obj[]; acls: Obj[] };
}

function srpAcl(srp: { acls: Obj[] }, p: Params): Obj {
  const initiator = str(p, 'initiator')!;
  const a = srp.acls.find((x) => x.initiator === initiator);
  if (!a) throw new ParamError('initiator', `srp has no ACL for ${JSON.stringify(initiator)}`);
  return a;
}

/** A tree of the model in the spirit of targetcli's `ls`. */
export function lsTree(doc: Doc, sessions: ReadonlyArray<{ initiator: string; target: string; tpgTag?: number; transport?: unknown }> = []): string {
  const out: string[] = ['o- /'];
  const size = (b: Obj) => (b.size === undefined ? '' : ` ${typeof b.size === 'number' ? human(b.size) : String(b.size)}`);
  out.push(`  o- backstores [${doc.backstores.length}]`);
  for (const b of doc.backstores)
    out.push(`  | o- ${String(b.name)} [${String(b.type)}${size(b)}${b.path ? ` ${String(b.path)}` : ''}${b.readOnly ? ' ro' : ''}]`);
  out.push(`  o- iscsi [Targets: ${doc.targets.length}]`);
  for (const t of doc.targets) {
    const tpgs = t.tpgs as TpgDoc[];
    out.push(`  | o- ${String(t.iqn)} [TPGs: ${tpgs.length}]`);
    for (const g of tpgs) {
      const attrs = g.attributes ?? {};
      const live = sessions.filter((s) => s.target === t.iqn && s.tpgTag === g.tag).length;
      out.push(
        `  |   o- tpg${g.tag} [${attrs.generateNodeAcls ? 'gen-acls' : 'no-gen-acls'}, ${attrs.authentication ? 'auth' : 'no-auth'}, sessions: ${live}]`,
      );
      out.push(`  |     o- acls [ACLs: ${g.acls.length}]`);
      for (const a of g.acls) {
        const m = a.mappedLuns as Obj[] | undefined;
        out.push(`  |     | o- ${String(a.initiator)} [${a.chap ? 'chap, ' : ''}Mapped LUNs: ${m ? m.length : 'all'}]`);
        for (const x of m ?? []) out.push(`  |     |   o- mapped_lun${String(x.lun)} [lun${String(x.tpgLun)} ${x.readOnly ? '(ro)' : '(rw)'}]`);
      }
      out.push(`  |     o- luns [LUNs: ${g.luns.length}]`);
      for (const l of g.luns) {
        const b = l.backstore;
        out.push(`  |     | o- lun${String(l.lun)} [${typeof b === 'string' ? b : `inline ${String((b as Obj).type)}${size(b as Obj)}`}]`);
      }
      out.push(`  |     o- portals [Portals: ${g.portals.length}]`);
      for (const p of g.portals) out.push(`  |       o- ${String(p.address)}:${String(p.port)} [${String(p.transport)}]`);
    }
  }
  const srp = doc.srp as Obj | undefined;
  if (srp) {
    const live = sessions.filter((x) => x.transport === 'srp').length;
    const luns = (srp.luns as Obj[] | undefined) ?? [];
    const acls = (srp.acls as Obj[] | undefined) ?? [];
    out.push(`  o- srpt [${srp.enable === false ? 'disabled' : 'enabled'}, LUNs: ${luns.length}, ACLs: ${acls.length}, sessions: ${live}]`);
    out.push(`    o- acls [ACLs: ${acls.length}]`);
    for (const a of acls) {
      const m = a.mappedLuns as Obj[] | undefined;
      out.push(`    | o- ${String(a.initiator)} [Mapped LUNs: ${m ? m.length : 'all'}]`);
      for (const x of m ?? []) out.push(`    |   o- mapped_lun${String(x.lun)} [lun${String(x.srpLun)} ${x.readOnly ? '(ro)' : '(rw)'}]`);
    }
    out.push(`    o- luns [LUNs: ${luns.length}]`);
    for (const l of luns) {
      const b = l.backstore;
      out.push(`    | o- lun${String(l.lun)} [${typeof b === 'string' ? b : `inline ${String((b as Obj).type)}${size(b as Obj)}`}]`);
    }
    const portals = (srp.portals as Obj[] | undefined) ?? [];
    out.push(`    o- portals [Portals: ${portals.length}]`);
    for (const p of portals) out.push(`      o- ${String(p.address)}:${String(p.port)} [rdma_cm]`);
  }
  return out.join('\n');
}

function human(n: number): string {
  for (const [u, f] of [
    ['TiB', 2 ** 40],
    ['GiB', 2 ** 30],
    ['MiB', 2 ** 20],
    ['KiB', 2 ** 10],
  ] as const)
    if (n >= f) return `${+(n / f).toFixed(1)}${u}`;
  return `${n}B`;
}
