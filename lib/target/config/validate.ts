// Validation: the schema (./schema.ts) checks every field on its own with ajv; the section
// resolvers then fill defaults, normalise, and check what lies between fields. Every problem
// of a file is reported, each as "<field path>: <why>", in the order of the file's sections.

import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { Checker, isObj, join } from './checker.js';
import { resolveBackstoreList, resolveChap, type SchemaOptions } from './common.js';
import { RDMA_POLL_US_DEFAULT, defaultControlSocket, defaultStateDir } from './defaults.js';
import { resolveTargets } from './iscsi.js';
import { configSchema } from './schema.js';
import { resolveSrp } from './srp.js';
import type { Config, ControlConfig, DiscoveryAuthConfig, SrpConfig, ValidateOptions, ValidationResult } from './types.js';
import { describe, iscsiNameProblem, nearest } from './values.js';

type SchemaNode = Record<string, unknown> & { errorMessage?: string; requiredMessage?: string; properties?: Record<string, SchemaNode> };

const ajv = new Ajv({ allErrors: true, verbose: true, strictTypes: false });
// The schema's own annotations (./common.ts): messages, not constraints.
ajv.addVocabulary(['errorMessage', 'requiredMessage']);
ajv.addFormat('iscsi-name', { type: 'string', validate: (s: string) => iscsiNameProblem(s) === undefined });

const compiled = new Map<boolean, ValidateFunction>();
function validator(o: SchemaOptions): ValidateFunction {
  const key = !!o.allowEphemeralPort;
  let v = compiled.get(key);
  if (!v) {
    v = ajv.compile(configSchema(o));
    compiled.set(key, v);
  }
  return v;
}

/** "/targets/0/tpgs/1" → "targets[0].tpgs[1]". */
function fieldPath(pointer: string): string {
  let out = '';
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out = /^\d+$/.test(seg) ? `${out}[${seg}]` : join(out, seg);
  }
  return out;
}

const TYPE_WORDS: Record<string, string> = {
  object: 'an object',
  array: 'an array',
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
};

function valueMessage(node: SchemaNode, e: ErrorObject): string {
  if (node.format === 'iscsi-name') return iscsiNameProblem(e.data) ?? `${e.message}`;
  if (e.keyword === 'not' && node.errorMessage) return node.errorMessage;
  const got = (e.keyword === 'minLength' || e.keyword === 'maxLength') && typeof e.data === 'string' ? `${e.data.length} characters` : describe(e.data);
  if (node.errorMessage) return `${node.errorMessage}, got ${got}`;
  const word = typeof node.type === 'string' ? TYPE_WORDS[node.type] : undefined;
  return `${word ? `must be ${word}` : e.message}, got ${got}`;
}

function requiredMessage(prop: SchemaNode): string {
  if (prop.format === 'iscsi-name') return iscsiNameProblem(undefined)!;
  if (prop.requiredMessage) return prop.requiredMessage;
  if (prop.errorMessage) return `${prop.errorMessage}, got nothing`;
  const word = typeof prop.type === 'string' ? TYPE_WORDS[prop.type] : undefined;
  return word ? `is required (${word})` : 'is required';
}

interface Refusal {
  path: string;
  message: string;
  depth: number;
}

/** One refusal per field: where several keywords refuse one value, the outermost speaks. */
function refusals(errors: readonly ErrorObject[]): Refusal[] {
  const byPath = new Map<string, Refusal>();
  for (const e of errors) {
    if (e.keyword === 'if') continue; // the failing branch reports its own errors
    const node = (e.parentSchema ?? {}) as SchemaNode;
    const at = fieldPath(e.instancePath);
    let r: Refusal;
    if (e.keyword === 'additionalProperties') {
      const k = (e.params as { additionalProperty: string }).additionalProperty;
      // Fields a schema forbids outright (`not: {}`) are not offered as alternatives.
      const allowed = Object.entries(node.properties ?? {})
        .filter(([, s]) => !('not' in s))
        .map(([name]) => name);
      const hint = nearest(k, allowed);
      r = { path: join(at, k), message: `unknown field${hint ? ` (did you mean "${hint}"?)` : ''}; allowed: ${allowed.join(', ')}`, depth: 0 };
    } else if (e.keyword === 'required') {
      const k = (e.params as { missingProperty: string }).missingProperty;
      r = { path: join(at, k), message: requiredMessage(node.properties?.[k] ?? {}), depth: e.schemaPath.length };
    } else {
      r = { path: at, message: valueMessage(node, e), depth: e.schemaPath.length };
    }
    const prev = byPath.get(r.path);
    if (!prev || r.depth < prev.depth) byPath.set(r.path, r);
  }
  return [...byPath.values()];
}

// Errors are listed section by section, in this order (unknown top-level fields first).
const SECTIONS = ['backstores', 'targets', 'discoveryAuth', 'srp', 'stateDir', 'control', 'metrics', 'rdma'];
function sectionRank(line: string): number {
  return SECTIONS.indexOf(/^[^.[:]*/.exec(line)![0]);
}

/** Validates a parsed JSON document; `config` is set only when there are no errors. */
export function validateConfig(doc: unknown, opts: ValidateOptions = {}): ValidationResult {
  const validate = validator(opts);
  const refused = validate(doc) ? [] : refusals(validate.errors ?? []);
  const schemaErrors = refused.map((r) => (r.path ? `${r.path}: ${r.message}` : r.message));
  if (!isObj(doc)) return { errors: schemaErrors, warnings: [] };

  const c = new Checker(
    opts,
    refused.map((r) => r.path),
  );
  const { backstores, named } = resolveBackstoreList(c, doc.backstores);
  const targets = resolveTargets(c, doc.targets, named);

  let discoveryAuth: DiscoveryAuthConfig = { enable: false };
  const da = doc.discoveryAuth;
  if (isObj(da) && !c.bad('discoveryAuth.enable')) {
    const enable = da.enable === undefined || da.enable === true || da.enable === 1;
    discoveryAuth = { enable };
    if (enable) {
      const { enable: _e, ...rest } = da;
      const chap = resolveChap(c, 'discoveryAuth', rest);
      if (chap) discoveryAuth = { enable, ...chap };
    }
  }

  let srp: SrpConfig | undefined;
  if (doc.srp !== undefined) srp = resolveSrp(c, 'srp', doc.srp, named);

  const stateDir = typeof doc.stateDir === 'string' ? doc.stateDir : (opts.defaults?.stateDir ?? defaultStateDir());
  let control: ControlConfig | false = { socket: opts.defaults?.controlSocket ?? defaultControlSocket() };
  if (doc.control === false) control = false;
  else if (isObj(doc.control) && typeof doc.control.socket === 'string') control = { socket: doc.control.socket };

  const errors = [...schemaErrors, ...c.errors]
    .map((line, i) => ({ line, i, rank: sectionRank(line) }))
    .sort((a, b) => a.rank - b.rank || a.i - b.i)
    .map((x) => x.line);
  if (errors.length > 0) return { errors, warnings: c.warnings };
  const config: Config = { targets, backstores, discoveryAuth, stateDir, control };
  if (srp) config.srp = srp;
  if (isObj(doc.metrics) && typeof doc.metrics.listen === 'string') config.metrics = { listen: doc.metrics.listen };
  if (isObj(doc.rdma)) {
    config.rdma = { pollUs: typeof doc.rdma.pollUs === 'number' ? doc.rdma.pollUs : RDMA_POLL_US_DEFAULT };
    if (typeof doc.rdma.bufferMiB === 'number') config.rdma.bufferMiB = doc.rdma.bufferMiB;
  }
  return { config, errors: [], warnings: c.warnings };
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
