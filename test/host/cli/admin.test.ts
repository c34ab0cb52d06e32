// The administration subcommands (lib/cli/admin.ts) against a running daemon (real engine,
// TCP only, in this process): exit codes, messages naming the bad field, --json, ls, and the
// help, completion and man page generated from one table.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../../lib/cli/main.js';
import { ADMIN_EXIT, COMMANDS, parseBackstoreArg } from '../../../lib/cli/admin.js';
import { Daemon } from '../../../lib/target/daemon.js';
import { createEngine } from '../../../lib/target/wiring.js';
import { configDocument, validateConfig } from '../../../lib/target/config.js';
import { saveConfigFile } from '../../../lib/target/persist.js';

const IQN = 'iqn.2025-01.com.example:admin';
const INI = 'iqn.2025-01.com.example:host1';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) } };
}

describe('rdma-target OBJECT VERB (administration)', () => {
  let d: Daemon;
  let sock: string;
  let file: string;
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rt-admin-'));
    sock = join(dir, 'ctl.sock');
    file = join(dir, 'config.json');
    const doc = {
      control: { socket: sock },
      stateDir: dir,
      backstores: [{ name: 'r0', type: 'ram', size: '1M' }],
      targets: [{ iqn: IQN, tpgs: [{ portals: [{ address: '127.0.0.1', port: 0 }], luns: [{ lun: 0, backstore: 'r0' }] }] }],
    };
    const v = validateConfig(doc, { allowEphemeralPort: true });
    expect(v.errors).toEqual([]);
    await saveConfigFile(file, doc);
    d = await Daemon.start(v.config!, { engine: createEngine({ rdma: false }), save: (c, f) => saveConfigFile(f ?? file, configDocument(c)) });
  });
  afterAll(() => d.stop(200));

  const cli = async (...argv: string[]) => {
    const c = capture();
    const code = await run([...argv, '--socket', sock], { io: c.io });
    return { code, out: c.out.join('\n'), err: c.err.join('\n') };
  };

  it('creates and deletes objects, printing what changed; ls prints the tree; --json prints the reply', async () => {
    let r = await cli('backstore', 'create', 'disk1', 'ram', '--size', '2M', '--thin');
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toContain(`saved to ${file}`);
    r = await cli('lun', 'create', IQN, '1', 'disk1');
    expect(r.out).toContain(`added LUN 1 (disk1, 2097152 bytes) to ${IQN} tpg 1`);
    r = await cli('lun', 'create', IQN, '2', 'ram:1M');
    expect(r.code, r.err).toBe(0);
    r = await cli('acl', 'create', IQN, INI);
    expect(r.code, r.err).toBe(0);
    r = await cli('mappedlun', 'create', IQN, INI, '7', '2', '--read-only');
    expect(r.code, r.err).toBe(0);
    r = await cli('chap', 'set', IQN, '--initiator', INI, '--userid', 'host1', '--password', 'abcdefghijkl');
    expect(r.code, r.err).toBe(0);
    r = await cli('tpg', 'set', IQN, 'defaultCmdsnDepth=128', 'MaxBurstLength=131072');
    expect(r.out).toContain('applies to new logins');
    r = await cli('portal', 'create', IQN, '127.0.0.4:0');
    expect(r.out).toMatch(/^listening on tcp 127\.0\.0\.4:\d+$/m);
    r = await cli('ls');
    expect(r.out).toContain('o- disk1 [ram 2MiB]');
    expect(r.out).toContain(`o- ${INI} [chap, Mapped LUNs: 4]`);
    expect(r.out).toContain('o- mapped_lun7 [lun2 (ro)]');
    expect(r.out).toContain('o- 127.0.0.4:0 [tcp]');
    r = await cli('ls', '--json');
    const doc = JSON.parse(r.out);
    expect(doc.targets[0].tpgs[0].attributes.defaultCmdsnDepth).toBe(128);
    expect(doc).toEqual(JSON.parse(readFileSync(file, 'utf8')));
    r = await cli('portal', 'delete', IQN, '127.0.0.4:0', '--json');
    expect(JSON.parse(r.out).portalsClosed).toHaveLength(1);
    for (const argv of [
      ['chap', 'delete', IQN, '--initiator', INI],
      ['mappedlun', 'delete', IQN, INI, '7'],
      ['acl', 'delete', IQN, INI],
      ['lun', 'delete', IQN, '2'],
      ['lun', 'delete', IQN, '1'],
      ['backstore', 'delete', 'disk1'],
      ['target', 'create', `${IQN}x`],
      ['tpg', 'create', `${IQN}x`, '2'],
      ['tpg', 'delete', `${IQN}x`, '2'],
      ['target', 'delete', `${IQN}x`],
      ['discovery-auth', 'set', '--userid', 'disc', '--password', 'abcdefghijkl'],
      ['discovery-auth', 'set', '--disable'],
    ]) {
      const x = await cli(...argv);
      expect(x.code, `${argv.join(' ')}: ${x.err}`).toBe(0);
    }
    expect(JSON.parse((await cli('target', 'list')).out).map((t: { iqn: string }) => t.iqn)).toEqual([IQN]);
  });

  it('srp subcommands: show, set, lun, acl and mappedlun create/delete, delete', async () => {
    const A = '0x0000000000000000000000000000000a';
    let r = await cli('srp', 'show');
    expect(r).toMatchObject({ code: 0, out: 'null' });
    r = await cli('srp', 'set', '--portal', '127.0.0.1:5556', '--id-ext', '5250544152474554', '--ioc-guid', '0011223344556677', 'credits=64');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('applies to new logins');
    r = await cli('srp', 'lun', 'create', '0', 'ram:1M');
    expect(r.out).toContain('added LUN 0 (srp/lun0, 1048576 bytes) to srp');
    for (const argv of [
      ['srp', 'acl', 'create', A],
      ['srp', 'mappedlun', 'create', A, '3', '0', '--read-only'],
    ]) {
      const x = await cli(...argv);
      expect(x.code, `${argv.join(' ')}: ${x.err}`).toBe(0);
    }
    expect(JSON.parse((await cli('srp', 'show')).out)).toMatchObject({
      portals: [{ address: '127.0.0.1', port: 5556 }],
      targetPortId: { idExt: '5250544152474554', iocGuid: '0011223344556677' },
      luns: [{ lun: 0, backstore: { type: 'ram', size: 1 << 20 } }],
      acls: [
        {
          initiator: A,
          mappedLuns: [
            { lun: 0, srpLun: 0 },
            { lun: 3, srpLun: 0, readOnly: true },
          ],
        },
      ],
      attributes: { credits: 64 },
    });
    expect(JSON.parse(readFileSync(file, 'utf8')).srp.acls).toHaveLength(1);
    const tree = (await cli('ls')).out;
    expect(tree).toContain('o- srpt [enabled, LUNs: 1, ACLs: 1, sessions: 0]');
    expect(tree).toContain(`o- ${A} [Mapped LUNs: 2]`);
    expect(tree).toContain('o- mapped_lun3 [lun0 (ro)]');
    expect(tree).toContain('o- lun0 [inline ram 1MiB]');
    expect(tree).toContain('o- 127.0.0.1:5556 [rdma_cm]');
    r = await cli('srp', 'lun', 'frob');
    expect(r.code).toBe(ADMIN_EXIT.usage);
    r = await cli('srp', 'set', 'credits=1');
    expect([r.code, r.err]).toEqual([ADMIN_EXIT.refused, expect.stringContaining('srp set: srp.attributes.credits: ')]);
    r = await cli('srp', 'set', '--default-port-id', '--disable');
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse((await cli('srp', 'show')).out).targetPortId).toBeUndefined();
    for (const argv of [
      ['srp', 'mappedlun', 'delete', A, '3'],
      ['srp', 'acl', 'delete', A],
      ['srp', 'set', '--enable'],
      ['srp', 'lun', 'delete', '0'],
      ['srp', 'delete'],
    ]) {
      const x = await cli(...argv);
      expect(x.code, `${argv.join(' ')}: ${x.err}`).toBe(0);
    }
    expect(JSON.parse(readFileSync(file, 'utf8')).srp).toBeUndefined();
  });

  // argv, exit code, what stderr must say.
  const BAD: Array<[string[], number, string]> = [
    [['lun', 'create', IQN, 'one', 'r0'], ADMIN_EXIT.usage, 'LUN: must be a non-negative integer, got "one"'],
    [['lun', 'create', IQN, '1'], ADMIN_EXIT.usage, 'lun create takes TARGET LUN BACKSTORE'],
    [['lun', 'create', IQN, '1', '{oops'], ADMIN_EXIT.usage, 'BACKSTORE: not valid JSON'],
    [['lun', 'frob'], ADMIN_EXIT.usage, 'lun: unknown subcommand "frob"; one of: create, delete'],
    [['acl', 'create', IQN, INI, '--colour', 'red'], ADMIN_EXIT.usage, "Unknown option '--colour'"],
    [['tpg', 'set', IQN, 'oops'], ADMIN_EXIT.usage, 'expected NAME=VALUE, got "oops"'],
    [['portal', 'create', IQN, '127.0.0.1:x'], ADMIN_EXIT.usage, 'ADDRESS[:PORT]: must be ADDRESS or ADDRESS:PORT'],
    [['lun', 'create', IQN, '0', 'r0'], ADMIN_EXIT.refused, 'lun create: targets[0].tpgs[0].luns[1].lun: duplicates luns[0].lun 0'],
    [['lun', 'create', IQN, '3', 'ram:lots'], ADMIN_EXIT.refused, 'targets[0].tpgs[0].luns[1].backstore.size: must be a positive size'],
    [['lun', 'create', 'iqn.2025-01.com.example:nope', '3', 'r0'], ADMIN_EXIT.refused, 'lun create: target: no target "iqn.2025-01.com.example:nope"'],
    [['lun', 'delete', IQN, '9'], ADMIN_EXIT.refused, 'lun delete: lun: TPG 1 has no LUN 9'],
    [['acl', 'create', IQN, 'not a name'], ADMIN_EXIT.refused, 'targets[0].tpgs[0].acls[0].initiator: '],
    [['tpg', 'set', IQN, 'defaultCmdsnDepth=0'], ADMIN_EXIT.refused, 'targets[0].tpgs[0].attributes.defaultCmdsnDepth: '],
    [['backstore', 'create', 'x', 'tape'], ADMIN_EXIT.refused, 'backstores[1].type: must be one of "ram", "file", "block"'],
    [['backstore', 'delete', 'r0'], ADMIN_EXIT.refused, `name: backstore r0 is used by ${IQN} tpg 1 LUN 0`],
  ];
  it.each(BAD)('%j exits %i naming the problem', async (argv, code, msg) => {
    const before = readFileSync(file, 'utf8');
    const r = await cli(...argv);
    expect(r.code, r.err).toBe(code);
    expect(r.err).toContain(msg);
    expect(readFileSync(file, 'utf8')).toBe(before);
  });

  it('--json prints the error object too; no daemon is exit 3', async () => {
    const r = await cli('lun', 'delete', IQN, '9', '--json');
    expect(JSON.parse(r.out)).toEqual({ error: { code: -32602, message: 'lun: TPG 1 has no LUN 9', data: { field: 'lun' } } });
    const c = capture();
    expect(await run(['ls', '--socket', '/nonexistent/sock'], { io: c.io })).toBe(ADMIN_EXIT.unreachable);
    expect(c.err.join('\n')).toContain('no daemon is listening there');
  });

  it('help, bash completion and the man page come from one table', async () => {
    const h = capture();
    await run(['--help'], { io: h.io });
    const c = capture();
    expect(await run(['completion', 'bash'], { io: c.io })).toBe(0);
    const m = capture();
    expect(await run(['man'], { io: m.io })).toBe(0);
    const help = h.out.join('\n');
    const comp = c.out.join('\n');
    const man = m.out.join('\n');
    expect(man).toMatch(/^\.TH RDMA-TARGET 1/);
    for (const cmd of COMMANDS) {
      expect(help).toContain(`rdma-target ${cmd.words}`);
      expect(man).toContain(`rdma\\-target ${cmd.words.replace(/-/g, '\\-')}`);
      const [noun, verb] = cmd.words.split(' ');
      expect(comp).toContain(noun!);
      if (verb) expect(comp).toMatch(new RegExp(`${noun}\\) COMPREPLY=\\(\\$\\(compgen -W "[^"]*\\b${verb}\\b`));
    }
  });

  it('reads BACKSTORE shorthands', () => {
    expect(parseBackstoreArg('r0')).toBe('r0');
    expect(parseBackstoreArg('ram:1G')).toEqual({ type: 'ram', size: '1G' });
    expect(parseBackstoreArg('ram:4096')).toEqual({ type: 'ram', size: 4096 });
    expect(parseBackstoreArg('file:/srv/a.img:20G')).toEqual({ type: 'file', path: '/srv/a.img', size: '20G' });
    expect(parseBackstoreArg('file:/srv/a.img')).toEqual({ type: 'file', path: '/srv/a.img' });
    expect(parseBackstoreArg('block:/dev/sdb')).toEqual({ type: 'block', path: '/dev/sdb' });
    expect(parseBackstoreArg('{"type":"ram","size":"1M"}')).toEqual({ type: 'ram', size: '1M' });
  });
});
