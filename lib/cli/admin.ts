// The administrator's subcommands: one per control method (docs/control.md), e.g.
// `rdma-target lun create IQN 1 ram:1G`, `rdma-target acl delete IQN INITIATOR`,
// `rdma-target ls`. One table (COMMANDS) is the source of the help text, the bash
// completion and the man page, so the three cannot disagree.
//
// Arguments are parsed with node:util's parseArgs, which the daemon's own command line
// already uses: the table does what a CLI framework would (subcommand dispatch, help), and
// the completion and man page come from the same table without one.

import { parseArgs } from 'node:util';
import { RpcFailure, rpcCall } from '../target/control.js';

export interface AdminIo {
  out(line: string): void;
  err(line: string): void;
}

/** Exit status: 0 done, 1 the daemon refused or failed the request, 2 usage error, 3 no daemon reachable. */
export const ADMIN_EXIT = { ok: 0, refused: 1, usage: 2, unreachable: 3 } as const;

type Kind = 'string' | 'int' | 'bool' | 'size' | 'portal';
interface Opt {
  /** The method parameter it sets. */
  param: string;
  kind: Kind;
  help: string;
}
interface Command {
  words: string;
  method: string;
  /** Positional arguments: parameter names (in order), as shown in the help. */
  args: Array<{ name: string; param: string; kind: Kind | 'backstore' | 'portal' }>;
  options?: Record<string, Opt>;
  /** Takes NAME=VALUE words after the positionals (tpg set). */
  assignments?: boolean;
  help: string;
}

const TPG: Record<string, Opt> = { tpg: { param: 'tpg', kind: 'int', help: 'TPG tag (default 1)' } };
const FORCE: Record<string, Opt> = {
  force: { param: 'force', kind: 'bool', help: 'also when a session can reach a LUN it removes (its in-flight commands are aborted)' },
};
const CHAP: Record<string, Opt> = {
  userid: { param: 'userid', kind: 'string', help: 'CHAP user name the initiator gives' },
  password: { param: 'password', kind: 'string', help: 'CHAP secret (12–16 characters for most initiators)' },
  'mutual-userid': { param: 'mutualUserid', kind: 'string', help: 'mutual CHAP: the name the target gives' },
  'mutual-password': { param: 'mutualPassword', kind: 'string', help: 'mutual CHAP: the target’s secret' },
};
const IQN = { name: 'TARGET', param: 'target', kind: 'string' } as const;

export const COMMANDS: Command[] = [
  { words: 'ls', method: 'ls', args: [], help: 'print the configuration as a tree (as targetcli’s ls); --json: the whole configuration' },
  { words: 'session list', method: 'session.list', args: [], help: 'list sessions (initiator, target, TPG, connections)' },
  { words: 'backstore list', method: 'backstore.list', args: [], help: 'list named backstores' },
  {
    words: 'backstore create',
    method: 'backstore.create',
    args: [
      { name: 'NAME', param: 'name', kind: 'string' },
      { name: 'TYPE', param: 'type', kind: 'string' },
    ],
    options: {
      size: { param: 'size', kind: 'size', help: 'size ("1G", "512M", bytes); ram needs it, file creates with it' },
      path: { param: 'path', kind: 'string', help: 'file or block device path (file, block)' },
      'block-size': { param: 'blockSize', kind: 'int', help: 'logical block size (512 or 4096)' },
      'read-only': { param: 'readOnly', kind: 'bool', help: 'export read-only' },
      thin: { param: 'thin', kind: 'bool', help: 'thin provisioned (UNMAP)' },
      serial: { param: 'serial', kind: 'string', help: 'unit serial number' },
      wwn: { param: 'wwn', kind: 'string', help: 'NAA 6 identifier (32 hex digits)' },
    },
    help: 'define a named backstore (TYPE ram, file or block); opened when a LUN uses it',
  },
  { words: 'backstore delete', method: 'backstore.delete', args: [{ name: 'NAME', param: 'name', kind: 'string' }], help: 'remove a backstore no LUN uses' },
  { words: 'target list', method: 'target.list', args: [], help: 'list targets with their TPGs' },
  { words: 'target create', method: 'target.create', args: [IQN], help: 'create a target with TPG 1 (add portals, LUNs, ACLs next)' },
  { words: 'target delete', method: 'target.delete', args: [IQN], options: FORCE, help: 'delete a target; its sessions end' },
  { words: 'tpg show', method: 'tpg.get', args: [IQN], options: TPG, help: 'show one TPG: portals, LUNs, ACLs, attributes, parameters' },
  {
    words: 'tpg create',
    method: 'tpg.create',
    args: [IQN, { name: 'TAG', param: 'tpg', kind: 'int' }],
    help: 'add a TPG to a target',
  },
  {
    words: 'tpg delete',
    method: 'tpg.delete',
    args: [IQN, { name: 'TAG', param: 'tpg', kind: 'int' }],
    options: FORCE,
    help: 'delete a TPG; its sessions end',
  },
  {
    words: 'tpg set',
    method: 'tpg.set',
    args: [IQN],
    options: {
      ...TPG,
      enable: { param: 'enable', kind: 'bool', help: 'serve the TPG' },
      disable: { param: 'enable', kind: 'bool', help: 'stop serving the TPG (its sessions end)' },
      ...FORCE,
    },
    assignments: true,
    help: 'set attributes (camelCase NAME=VALUE, e.g. defaultCmdsnDepth=128) and iSCSI parameters (Key=Value, e.g. MaxBurstLength=262144; Key= removes the override); they apply to new logins',
  },
  {
    words: 'portal create',
    method: 'portal.create',
    args: [IQN, { name: 'ADDRESS[:PORT]', param: 'address', kind: 'portal' }],
    options: { ...TPG, transport: { param: 'transport', kind: 'string', help: 'tcp (default) or iser' } },
    help: 'add a portal; its listener opens if no TPG had it',
  },
  {
    words: 'portal delete',
    method: 'portal.delete',
    args: [IQN, { name: 'ADDRESS[:PORT]', param: 'address', kind: 'portal' }],
    options: { ...TPG, transport: { param: 'transport', kind: 'string', help: 'tcp (default) or iser' } },
    help: 'remove a portal; when no TPG uses it, its listener and the connections through it close',
  },
  {
    words: 'lun create',
    method: 'lun.create',
    args: [IQN, { name: 'LUN', param: 'lun', kind: 'int' }, { name: 'BACKSTORE', param: 'backstore', kind: 'backstore' }],
    options: TPG,
    help: 'export a LUN: BACKSTORE is a backstore name, ram:SIZE, file:PATH[:SIZE], block:DEVICE or a JSON object; sessions get REPORTED LUNS DATA HAS CHANGED',
  },
  {
    words: 'lun delete',
    method: 'lun.delete',
    args: [IQN, { name: 'LUN', param: 'lun', kind: 'int' }],
    options: { ...TPG, ...FORCE },
    help: 'stop exporting a LUN (refused while a session can reach it, unless --force)',
  },
  {
    words: 'acl create',
    method: 'acl.create',
    args: [IQN, { name: 'INITIATOR', param: 'initiator', kind: 'string' }],
    options: TPG,
    help: 'allow an initiator (every TPG LUN until mapped LUNs are given); CHAP with chap set',
  },
  {
    words: 'acl delete',
    method: 'acl.delete',
    args: [IQN, { name: 'INITIATOR', param: 'initiator', kind: 'string' }],
    options: TPG,
    help: 'remove an initiator’s ACL; only that initiator’s sessions end',
  },
  {
    words: 'mappedlun create',
    method: 'mappedlun.create',
    args: [
      IQN,
      { name: 'INITIATOR', param: 'initiator', kind: 'string' },
      { name: 'LUN', param: 'lun', kind: 'int' },
      { name: 'TPG_LUN', param: 'tpgLun', kind: 'int' },
    ],
    options: { ...TPG, 'read-only': { param: 'readOnly', kind: 'bool', help: 'the initiator may only read it' } },
    help: 'show TPG LUN TPG_LUN to INITIATOR as LUN',
  },
  {
    words: 'mappedlun delete',
    method: 'mappedlun.delete',
    args: [IQN, { name: 'INITIATOR', param: 'initiator', kind: 'string' }, { name: 'LUN', param: 'lun', kind: 'int' }],
    options: TPG,
    help: 'hide LUN from INITIATOR',
  },
  {
    words: 'chap set',
    method: 'chap.set',
    args: [IQN],
    options: { ...TPG, initiator: { param: 'initiator', kind: 'string', help: 'the ACL (absent: the TPG’s demo-mode CHAP)' }, ...CHAP },
    help: 'set CHAP (and mutual CHAP) of an ACL (that initiator’s sessions end) or of the TPG',
  },
  {
    words: 'chap delete',
    method: 'chap.delete',
    args: [IQN],
    options: { ...TPG, initiator: { param: 'initiator', kind: 'string', help: 'the ACL (absent: the TPG)' } },
    help: 'remove CHAP from an ACL or the TPG',
  },
  {
    words: 'discovery-auth set',
    method: 'discovery-auth.set',
    args: [],
    options: { ...CHAP, disable: { param: 'enable', kind: 'bool', help: 'no CHAP on discovery sessions' } },
    help: 'CHAP for SendTargets discovery sessions',
  },
  { words: 'srp show', method: 'srp.get', args: [], help: 'show the SRP section (portals, target port id, LUNs, ACLs, attributes)' },
  {
    words: 'srp set',
    method: 'srp.set',
    args: [],
    options: {
      enable: { param: 'enable', kind: 'bool', help: 'serve SRP' },
      disable: { param: 'enable', kind: 'bool', help: 'stop serving SRP (its sessions end; --force when a LUN is in use)' },
      portal: { param: 'portals', kind: 'portal', help: 'the one RDMA/CM listener, ADDRESS[:PORT] (default port 5555)' },
      'id-ext': { param: 'targetPortId.idExt', kind: 'string', help: 'target port id: what add_target’s id_ext= must say (16 hex digits; with --ioc-guid)' },
      'ioc-guid': {
        param: 'targetPortId.iocGuid',
        kind: 'string',
        help: 'target port id: what add_target’s ioc_guid= must say (16 hex digits; with --id-ext)',
      },
      'default-port-id': { param: 'targetPortId', kind: 'bool', help: 'back to each device’s node GUID as the target port id' },
      ...FORCE,
    },
    assignments: true,
    help: 'create or change the SRP section; NAME=VALUE sets attributes (generateNodeAcls, credits, immediateData, maxItIuLength) for new logins',
  },
  { words: 'srp delete', method: 'srp.delete', args: [], options: FORCE, help: 'remove the SRP section: its LUNs, listeners and sessions' },
  {
    words: 'srp lun create',
    method: 'srp.lun.create',
    args: [
      { name: 'LUN', param: 'lun', kind: 'int' },
      { name: 'BACKSTORE', param: 'backstore', kind: 'backstore' },
    ],
    help: 'export a LUN over SRP (BACKSTORE as for lun create); SRP sessions that see it get REPORTED LUNS DATA HAS CHANGED',
  },
  {
    words: 'srp lun delete',
    method: 'srp.lun.delete',
    args: [{ name: 'LUN', param: 'lun', kind: 'int' }],
    options: FORCE,
    help: 'stop exporting an SRP LUN (refused while an SRP session can reach it, unless --force)',
  },
  {
    words: 'srp acl create',
    method: 'srp.acl.create',
    args: [{ name: 'INITIATOR', param: 'initiator', kind: 'string' }],
    help: 'allow an SRP initiator: its port id ("0x" + 32 hex digits) or, for RDMA/CM logins, its IP address',
  },
  {
    words: 'srp acl delete',
    method: 'srp.acl.delete',
    args: [{ name: 'INITIATOR', param: 'initiator', kind: 'string' }],
    help: 'remove an SRP initiator’s ACL; only that initiator’s SRP sessions end',
  },
  {
    words: 'srp mappedlun create',
    method: 'srp.mappedlun.create',
    args: [
      { name: 'INITIATOR', param: 'initiator', kind: 'string' },
      { name: 'LUN', param: 'lun', kind: 'int' },
      { name: 'SRP_LUN', param: 'srpLun', kind: 'int' },
    ],
    options: { 'read-only': { param: 'readOnly', kind: 'bool', help: 'the initiator may only read it' } },
    help: 'show SRP LUN SRP_LUN to INITIATOR as LUN',
  },
  {
    words: 'srp mappedlun delete',
    method: 'srp.mappedlun.delete',
    args: [
      { name: 'INITIATOR', param: 'initiator', kind: 'string' },
      { name: 'LUN', param: 'lun', kind: 'int' },
    ],
    help: 'hide LUN from an SRP INITIATOR',
  },
];

const NOUNS = new Set(COMMANDS.map((c) => c.words.split(' ')[0]!));

/** Whether argv is one of these subcommands (`lun resize` stays with lib/cli/main.ts). */
export function isAdminCommand(argv: readonly string[]): boolean {
  const [a, b] = argv;
  if (a === 'completion' || a === 'man') return true;
  if (!a || !NOUNS.has(a)) return false;
  if (a === 'lun' && b === 'resize') return false;
  return true;
}

const COMMON: Record<string, Opt> = {
  json: { param: '', kind: 'bool', help: 'print the result as JSON (for scripts)' },
  socket: { param: '', kind: 'string', help: 'control socket (default: the one --config or the default configuration names)' },
  config: { param: '', kind: 'string', help: 'configuration file naming the control socket' },
};

function synopsis(c: Command): string {
  const opts = Object.entries(c.options ?? {}).map(([k, o]) => (o.kind === 'bool' ? `[--${k}]` : `[--${k} ${o.param.toUpperCase()}]`));
  return [c.words, ...c.args.map((a) => a.name), ...(c.assignments ? ['[NAME=VALUE...]'] : []), ...opts].join(' ');
}

/** The help text of every subcommand (also the man page's source). */
export function adminHelp(): string {
  const lines = ['Administration (a running daemon, over its control socket; docs/control.md):', ''];
  for (const c of COMMANDS) {
    lines.push(`  rdma-target ${synopsis(c)}`);
    lines.push(`      ${c.help}`);
  }
  lines.push('', 'Common options:');
  for (const [k, o] of Object.entries(COMMON)) lines.push(`  --${k}${o.kind === 'bool' ? '' : ' X'}  ${o.help}`);
  lines.push('', 'Exit status: 0 done, 1 the daemon refused the request (the message names the field), 2 usage error, 3 no daemon reachable.');
  return lines.join('\n');
}

/** bash completion: `source <(rdma-target completion bash)`. */
export function bashCompletion(): string {
  const nouns = [...NOUNS, 'lun', 'status', 'save', 'restore', 'check-config', 'import-lio', 'ctl'];
  const verbs = new Map<string, string[]>();
  const flags = new Map<string, string[]>();
  for (const c of COMMANDS) {
    const [n, v] = c.words.split(' ');
    if (v && !verbs.get(n!)?.includes(v)) verbs.set(n!, [...(verbs.get(n!) ?? []), v]);
    flags.set(
      c.words,
      [...Object.keys(c.options ?? {}), ...Object.keys(COMMON)].map((k) => `--${k}`),
    );
  }
  verbs.set('lun', [...(verbs.get('lun') ?? []), 'resize']);
  const cases = [...verbs].map(([n, vs]) => `    ${n}) COMPREPLY=($(compgen -W "${vs.join(' ')}" -- "$cur")); return ;;`).join('\n');
  const fcases = [...flags].map(([w, fs]) => `    "${w}") COMPREPLY=($(compgen -W "${fs.join(' ')}" -- "$cur")); return ;;`).join('\n');
  return `# bash completion for rdma-target (generated by: rdma-target completion bash)
_rdma_target() {
  local cur="\${COMP_WORDS[COMP_CWORD]}"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "${[...new Set(nouns)].join(' ')} --help --version" -- "$cur")); return
  fi
  if [ "$COMP_CWORD" -eq 2 ]; then
    case "\${COMP_WORDS[1]}" in
${cases}
    esac
  fi
  if [[ "$cur" == --* ]]; then
    case "\${COMP_WORDS[1]} \${COMP_WORDS[2]}" in
${fcases}
    esac
  fi
  COMPREPLY=($(compgen -f -- "$cur"))
}
complete -F _rdma_target rdma-target
`;
}

/** A man page (roff) from the same table: `rdma-target man > rdma-target.1`. */
export function manPage(version: string, daemonUsage: string): string {
  const esc = (s: string) =>
    s
      .replace(/\\/g, '\\\\')
      .replace(/^([.'])/gm, '\\&$1')
      .replace(/-/g, '\\-');
  const out = [
    `.TH RDMA-TARGET 1 "" "rdma-target ${version}" "User Commands"`,
    '.SH NAME',
    'rdma\\-target \\- iSCSI (TCP, iSER) and SRP block storage target',
    '.SH SYNOPSIS',
    '.nf',
    esc(daemonUsage.split('\n\n')[0]!.replace(/^Usage:\n/, '')),
    '.fi',
    '.SH DESCRIPTION',
    '.nf',
    esc(daemonUsage.split('\n\n').slice(1).join('\n\n')),
    '.fi',
    '.SH ADMINISTRATION',
  ];
  for (const c of COMMANDS) {
    out.push('.TP', `.B rdma\\-target ${esc(synopsis(c))}`, esc(c.help));
    for (const [k, o] of Object.entries(c.options ?? {})) out.push('.RS', `.B \\-\\-${esc(k)}`, `${esc(o.help)}`, '.RE');
  }
  out.push('.SH COMMON OPTIONS');
  for (const [k, o] of Object.entries(COMMON)) out.push('.TP', `.B \\-\\-${esc(k)}`, esc(o.help));
  out.push(
    '.SH EXIT STATUS',
    '0 done, 1 the daemon refused the request (the message names the field), 2 usage error, 3 no daemon reachable.',
    '.SH SEE ALSO',
    'targetcli(8), iscsiadm(8); docs/control.md and docs/config.md in the source.',
  );
  return out.join('\n') + '\n';
}

/** "ram:1G", "file:/srv/a.img:20G", "block:/dev/sdb", a JSON object, or a backstore name. */
export function parseBackstoreArg(v: string): unknown {
  if (v.startsWith('{')) return JSON.parse(v) as unknown;
  const m = /^(ram|file|block):(.*)$/.exec(v);
  if (!m) return v;
  const [, type, rest] = m;
  if (type === 'ram') return { type, size: sizeValue(rest!) };
  const i = type === 'file' ? rest!.lastIndexOf(':') : -1;
  if (i > 0) return { type, path: rest!.slice(0, i), size: sizeValue(rest!.slice(i + 1)) };
  return { type, path: rest };
}

const sizeValue = (v: string): string | number => (/^\d+$/.test(v) ? Number(v) : v);

function convert(v: string, kind: Kind | 'backstore' | 'portal', name: string): unknown {
  switch (kind) {
    case 'int': {
      if (!/^\d+$/.test(v)) throw new UsageError(`${name}: must be a non-negative integer, got ${JSON.stringify(v)}`);
      return Number(v);
    }
    case 'size':
      return sizeValue(v);
    case 'backstore':
      try {
        return parseBackstoreArg(v);
      } catch (e) {
        throw new UsageError(`${name}: not valid JSON: ${(e as Error).message}`);
      }
    default:
      return v;
  }
}

class UsageError extends Error {}

/** NAME=VALUE words of tpg set: camelCase names are attributes (numbers, true/false), Capitalised ones iSCSI parameters (strings). */
function assignments(words: string[]): { attributes?: Record<string, unknown>; parameters?: Record<string, unknown> } {
  const attributes: Record<string, unknown> = {};
  const parameters: Record<string, unknown> = {};
  for (const w of words) {
    const m = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(w);
    if (!m) throw new UsageError(`expected NAME=VALUE, got ${JSON.stringify(w)}`);
    const [, k, v] = m as unknown as [string, string, string];
    if (/^[A-Z]/.test(k)) parameters[k] = v === '' ? null : v;
    else attributes[k] = v === 'true' ? true : v === 'false' ? false : /^\d+$/.test(v) ? Number(v) : v;
  }
  return { ...(Object.keys(attributes).length ? { attributes } : {}), ...(Object.keys(parameters).length ? { parameters } : {}) };
}

/** "srp" or "<iqn> tpg N" of an added/removed LUN. */
const where = (a: Record<string, unknown>): string => (a.tpg === undefined ? String(a.target) : `${String(a.target)} tpg ${String(a.tpg)}`);

/** What a change did, in words (the JSON reply has every detail). */
function describeChange(method: string, r: Record<string, unknown>): string[] {
  const lines: string[] = [];
  for (const a of (r.added as Array<Record<string, unknown>> | undefined) ?? [])
    lines.push(`added LUN ${String(a.lun)} (${String(a.backstore)}, ${String(a.sizeBytes)} bytes) to ${where(a)}`);
  for (const a of (r.removed as Array<Record<string, unknown>> | undefined) ?? [])
    lines.push(`removed LUN ${String(a.lun)} (${String(a.backstore)}) from ${where(a)}`);
  for (const p of (r.portalsOpened as string[] | undefined) ?? []) lines.push(`listening on ${p}`);
  for (const p of (r.portalsClosed as string[] | undefined) ?? []) lines.push(`closed ${p}`);
  for (const p of (r.portalsSkipped as string[] | undefined) ?? []) lines.push(`not served: ${p}`);
  if (r.endedSessions) lines.push(`ended ${String(r.endedSessions)} session${r.endedSessions === 1 ? '' : 's'}`);
  if (r.appliesTo) lines.push(`applies to ${String(r.appliesTo)}`);
  if (r.saved) lines.push(`saved to ${String(r.saved)}`);
  if (!lines.length) lines.push(`${method}: done`);
  return lines;
}

/**
 * Runs one administration subcommand. `socketOf` resolves --socket/--config to the control
 * socket (lib/cli/main.ts owns that), or returns an exit code after printing why.
 */
export async function runAdmin(
  argv: string[],
  io: AdminIo,
  socketOf: (socket: string | undefined, config: string | undefined) => string | number,
  meta: { version: string; usage: string },
): Promise<number> {
  const usage = (msg: string) => {
    io.err(`rdma-target: ${msg}`);
    io.err('Try "rdma-target --help".');
    return ADMIN_EXIT.usage;
  };
  if (argv[0] === 'completion') {
    if (argv[1] !== 'bash') return usage('completion: only "completion bash" is available');
    io.out(bashCompletion());
    return ADMIN_EXIT.ok;
  }
  if (argv[0] === 'man') {
    io.out(manPage(meta.version, meta.usage));
    return ADMIN_EXIT.ok;
  }
  const three = `${argv[0]} ${argv[1] ?? ''} ${argv[2] ?? ''}`;
  const two = `${argv[0]} ${argv[1] ?? ''}`;
  const cmd = COMMANDS.find((c) => c.words === three) ?? COMMANDS.find((c) => c.words === two) ?? COMMANDS.find((c) => c.words === argv[0]);
  if (!cmd) {
    const verbs = [...new Set(COMMANDS.filter((c) => c.words.startsWith(`${argv[0]} `)).map((c) => c.words.split(' ').slice(1).join(' ')))];
    return usage(`${argv[0]}: unknown subcommand ${JSON.stringify(argv[1] ?? '')}; one of: ${verbs.join(', ')}`);
  }
  const rest = argv.slice(cmd.words.split(' ').length);
  const options: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const [k, o] of Object.entries({ ...COMMON, ...(cmd.options ?? {}) })) options[k] = { type: o.kind === 'bool' ? 'boolean' : 'string' };
  options.help = { type: 'boolean' };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  } catch (e) {
    return usage(`${cmd.words}: ${(e as Error).message.replace(/\. To specify a positional argument.*$/s, '')}`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values.help) {
    io.out(`Usage: rdma-target ${synopsis(cmd)}\n  ${cmd.help}`);
    for (const [k, o] of Object.entries(cmd.options ?? {})) io.out(`  --${k}  ${o.help}`);
    return ADMIN_EXIT.ok;
  }
  const pos = parsed.positionals;
  const params: Record<string, unknown> = {};
  try {
    const fixed = cmd.assignments ? pos.slice(0, cmd.args.length) : pos;
    if (fixed.length !== cmd.args.length || (!cmd.assignments && pos.length !== cmd.args.length))
      throw new UsageError(`${cmd.words} takes ${cmd.args.map((a) => a.name).join(' ') || 'no arguments'}${cmd.assignments ? ' [NAME=VALUE...]' : ''}`);
    for (const [i, a] of cmd.args.entries()) {
      if (a.kind === 'portal') {
        const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(fixed[i]!) ?? /^([^:]+)(?::(\d+))?$/.exec(fixed[i]!);
        if (!m) throw new UsageError(`${a.name}: must be ADDRESS or ADDRESS:PORT, got ${JSON.stringify(fixed[i])}`);
        params.address = m[1];
        if (m[2] !== undefined) params.port = Number(m[2]);
      } else params[a.param] = convert(fixed[i]!, a.kind, a.name);
    }
    if (cmd.assignments) Object.assign(params, assignments(pos.slice(cmd.args.length)));
    for (const [k, o] of Object.entries(cmd.options ?? {})) {
      const v = values[k];
      if (v === undefined) continue;
      if (k === 'disable') params[o.param] = false;
      else if (k === 'default-port-id') params[o.param] = null;
      else if (o.kind === 'portal') {
        const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(v as string) ?? /^([^:]+)(?::(\d+))?$/.exec(v as string);
        if (!m) throw new UsageError(`--${k}: must be ADDRESS or ADDRESS:PORT, got ${JSON.stringify(v)}`);
        params[o.param] = [{ address: m[1], ...(m[2] !== undefined ? { port: Number(m[2]) } : {}) }];
      } else {
        const value = o.kind === 'bool' ? v : convert(v as string, o.kind, `--${k}`);
        // "a.b" sets a field of an object parameter (targetPortId.idExt).
        const [outer, inner] = o.param.split('.') as [string, string | undefined];
        if (inner) params[outer] = { ...((params[outer] as object | undefined) ?? {}), [inner]: value };
        else params[outer] = value;
      }
    }
  } catch (e) {
    if (e instanceof UsageError) return usage(e.message);
    throw e;
  }
  const path = socketOf(values.socket as string | undefined, values.config as string | undefined);
  if (typeof path === 'number') return path;
  let result: unknown;
  try {
    result = await rpcCall(path, cmd.method === 'ls' && values.json ? 'config.get' : cmd.method, params);
  } catch (e) {
    if (e instanceof RpcFailure) {
      io.err(`rdma-target: ${cmd.words}: ${e.message}`);
      if (values.json) io.out(JSON.stringify({ error: { code: e.code, message: e.message, ...(e.data ? { data: e.data } : {}) } }));
      return ADMIN_EXIT.refused;
    }
    const code = (e as NodeJS.ErrnoException).code;
    const down = code === 'ENOENT' || code === 'ECONNREFUSED';
    io.err(`rdma-target: control socket ${path}: ${down ? 'no daemon is listening there' : (e as Error).message}`);
    return ADMIN_EXIT.unreachable;
  }
  if (values.json) io.out(JSON.stringify(result));
  else if (cmd.method === 'ls') io.out((result as { tree: string }).tree);
  else if (cmd.method.endsWith('.list') || cmd.method.endsWith('.get')) io.out(JSON.stringify(result, null, 2));
  else for (const l of describeChange(cmd.method, (result ?? {}) as Record<string, unknown>)) io.out(l);
  return ADMIN_EXIT.ok;
}
