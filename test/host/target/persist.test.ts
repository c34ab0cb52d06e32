// What is saved is exactly what runs: every field the schema knows survives validate → save
// (configDocument) → validate, the iSER flag and discovery auth included; the field list is
// walked out of the TypeBox schema itself, so a field added there and forgotten in the
// fixture or in configDocument() fails here. And the file is written so that it is never
// lost: backups rotate, and a process killed with SIGKILL between the write and the rename
// (or anywhere else) leaves the old file or the new one, never a torn one.

import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configDocument, configSchema, ISCSI_KEYS, validateConfig, type Config } from '../../../lib/target/config.js';
import { CONFIG_BACKUPS, backupDir, listBackups, saveConfigFile } from '../../../lib/target/persist.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'rt-persist-'));

type Node = Record<string, unknown>;

/** Every field path the schema allows ("targets[].tpgs[].portals[].transport"), forbidden fields and annotations left out. */
function schemaPaths(node: unknown, path = '', out = new Set<string>()): Set<string> {
  if (!node || typeof node !== 'object') return out;
  const n = node as Node;
  if (n.properties && typeof n.properties === 'object') {
    for (const [k, v] of Object.entries(n.properties as Node)) {
      if (v && typeof v === 'object' && 'not' in (v as Node)) continue; // Forbidden(): no value is valid
      if (!path && (k === '$schema' || k === 'comment')) continue;
      const p = path ? `${path}.${k}` : k;
      out.add(p);
      schemaPaths(v, p, out);
    }
  }
  if (n.items) schemaPaths(n.items, `${path}[]`, out);
  // Unsafe nodes hold their object form in a conditional branch (inline backstores, mapped LUNs, control).
  for (const k of ['then', 'else'] as const) if (n[k]) schemaPaths(n[k], path, out);
  for (const k of ['anyOf', 'oneOf'] as const) if (Array.isArray(n[k])) for (const s of n[k] as unknown[]) schemaPaths(s, path, out);
  return out;
}

/** The field paths a document holds, in the same notation. */
function docPaths(v: unknown, path = '', out = new Set<string>()): Set<string> {
  if (Array.isArray(v)) for (const x of v) docPaths(x, `${path}[]`, out);
  else if (v && typeof v === 'object')
    for (const [k, x] of Object.entries(v)) {
      const p = path ? `${path}.${k}` : k;
      out.add(p);
      docPaths(x, p, out);
    }
  return out;
}

/** A value for every iSCSI login key (not the default where the rule allows another). */
function everyParameter(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, rule] of Object.entries(ISCSI_KEYS)) {
    if (rule.kind === 'bool') out[k] = 'No';
    else if (rule.kind === 'enum') out[k] = rule.values[rule.values.length - 1]!;
    else if (rule.kind === 'int') out[k] = String(Math.min(rule.max, Math.max(rule.min + 1, 1024)));
    else out[k] = 'alias-of-everything';
  }
  return out;
}

/** Every field of the file set, each to a value that is not its default (so a field dropped and defaulted shows). */
function everything(): Record<string, unknown> {
  return {
    targets: [
      {
        iqn: 'iqn.2025-01.com.example:everything',
        tpgs: [
          {
            tag: 7,
            enable: false,
            portals: [
              { address: '192.0.2.1', port: 3261, transport: 'tcp' },
              { address: '192.0.2.1', port: 3261, transport: 'iser' },
            ],
            luns: [
              { lun: 0, backstore: 'named' },
              {
                lun: 1,
                backstore: {
                  type: 'file',
                  path: '/srv/inline.img',
                  size: '1M',
                  blockSize: 4096,
                  readOnly: true,
                  thin: true,
                  serial: 'inline-serial',
                  wwn: '6001405c0ffee0000000000000000002',
                },
              },
            ],
            acls: [
              {
                initiator: 'iqn.2025-01.com.example:init',
                chap: { userid: 'init', password: 'secret-init-01', mutualUserid: 'tgt', mutualPassword: 'secret-tgt-001' },
                mappedLuns: [0, { lun: 2, tpgLun: 1, readOnly: true }],
              },
            ],
            attributes: {
              generateNodeAcls: true,
              authentication: true,
              demoModeWriteProtect: true,
              defaultCmdsnDepth: 32,
              loginTimeout: 20,
              nopInTimeout: 5,
              nopInResponseTimeout: 7,
            },
            chap: { userid: 'demo', password: 'secret-demo-01', mutualUserid: 'tgt2', mutualPassword: 'secret-tgt-002' },
            parameters: everyParameter(),
          },
        ],
      },
    ],
    backstores: [
      { name: 'named', type: 'ram', size: '2M', blockSize: 1024, readOnly: true, thin: true, serial: 'named-serial', wwn: '6001405c0ffee0000000000000000001' },
      { name: 'device', type: 'block', path: '/dev/vg0/lv0', blockSize: 4096 },
    ],
    discoveryAuth: { enable: true, userid: 'disc', password: 'secret-disc-01', mutualUserid: 'disc-tgt', mutualPassword: 'secret-disc-02' },
    srp: {
      enable: false,
      portals: [{ address: '192.0.2.2', port: 5556 }],
      targetPortId: { idExt: '0002c90300a1b2c3', iocGuid: '0011223344556677' },
      luns: [
        { lun: 3, backstore: 'named' },
        {
          lun: 5,
          backstore: {
            type: 'file',
            path: '/srv/srp.img',
            size: '2M',
            blockSize: 2048,
            readOnly: true,
            thin: true,
            serial: 'srp-serial',
            wwn: '6001405c0ffee0000000000000000003',
          },
        },
      ],
      acls: [{ initiator: '0x0000000000000000aabbccddeeff0011', mappedLuns: [{ lun: 4, srpLun: 3, readOnly: true }] }],
      attributes: { generateNodeAcls: true, credits: 64, immediateData: false, maxItIuLength: 9000 },
    },
    stateDir: '/var/lib/rt-everything',
    control: { socket: '/run/rt-everything.sock' },
    metrics: { listen: '127.0.0.1:9469' },
    rdma: { pollUs: 250, bufferMiB: 128 },
  };
}

const pin = { defaults: { stateDir: '/x', controlSocket: '/x.sock' } };

describe('what is saved is what runs', () => {
  const fields = schemaPaths(configSchema());

  it('the fixture sets every field the schema has', () => {
    expect(fields.size).toBeGreaterThan(60);
    const missing = [...fields].filter((p) => !docPaths(everything()).has(p));
    expect(missing, 'fields of the schema the fixture does not set: add them to everything()').toEqual([]);
  });

  it('validate → configDocument → validate gives the same model, with every field written', () => {
    const first = validateConfig(everything(), pin);
    expect(first.errors).toEqual([]);
    const saved = configDocument(first.config!);
    const missing = [...fields].filter((p) => !docPaths(saved).has(p));
    expect(missing, 'fields configDocument() does not write').toEqual([]);
    // Through JSON, as the file is.
    const again = validateConfig(JSON.parse(JSON.stringify(saved)), { defaults: { stateDir: '/elsewhere', controlSocket: '/elsewhere.sock' } });
    expect(again.errors).toEqual([]);
    expect(again.config).toEqual(first.config);
    // The iSER flag and discovery auth, named, since other targets have lost exactly these.
    expect(again.config!.targets[0]!.tpgs[0]!.portals.map((p) => p.transport)).toEqual(['tcp', 'iser']);
    expect(again.config!.discoveryAuth).toEqual(everything().discoveryAuth);
  });

  it('control: false and a minimal file round-trip too', () => {
    for (const doc of [
      { targets: [], control: false },
      { targets: [{ iqn: 'iqn.2025-01.com.example:min', tpgs: [{ luns: [{ lun: 0, backstore: { type: 'ram', size: '1M' } }] }] }] },
    ]) {
      const c = validateConfig(doc, pin).config!;
      expect(validateConfig(JSON.parse(JSON.stringify(configDocument(c))), pin).config).toEqual(c);
    }
  });

  it('the embedded default, as run, saves and reloads to itself', async () => {
    const { defaultConfigJson } = await import('../../../lib/target/config.js');
    const c: Config = validateConfig(defaultConfigJson(), pin).config!;
    expect(validateConfig(configDocument(c), pin).config).toEqual(c);
  });
});

describe('saveConfigFile', () => {
  it('creates the file 0600, keeps the replaced versions in backup/, the newest CONFIG_BACKUPS of them', async () => {
    const d = mkdtempSync(join(dir, 'rot-'));
    const file = join(d, 'saveconfig.json');
    const r0 = await saveConfigFile(file, { v: 0 });
    expect(r0).toEqual({ file });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // Same text: nothing written, no backup.
    expect(await saveConfigFile(file, { v: 0 })).toEqual({ file, unchanged: true });
    const t0 = Date.parse('2026-01-05T10:00:00Z');
    for (let i = 1; i <= CONFIG_BACKUPS + 3; i++) {
      const r = await saveConfigFile(file, { v: i }, { now: new Date(t0 + i * 1000) });
      expect(r.backup).toBeDefined();
      expect(JSON.parse(readFileSync(r.backup!, 'utf8'))).toEqual({ v: i - 1 });
    }
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ v: CONFIG_BACKUPS + 3 });
    const kept = await listBackups(file);
    expect(kept).toHaveLength(CONFIG_BACKUPS);
    // The oldest went first: what is left holds versions 3..12.
    expect(kept.map((f) => JSON.parse(readFileSync(f, 'utf8')).v)).toEqual(Array.from({ length: CONFIG_BACKUPS }, (_, i) => i + 3));
    expect(statSync(backupDir(file)).mode & 0o777).toBe(0o700);
    // Two saves within one millisecond keep both backups.
    const now = new Date(t0 + 99_000);
    const a = await saveConfigFile(file, { v: 'a' }, { now });
    const b = await saveConfigFile(file, { v: 'b' }, { now });
    expect(a.backup).not.toBe(b.backup);
    // No temporary file is left beside it.
    expect(readdirSync(d).sort()).toEqual(['backup', 'saveconfig.json']);
  });
});

/** Runs a child that saves `next` over `file`, SIGKILLed at `at` (or after `delayMs`); resolves with its signal. */
function crashChild(file: string, next: unknown, at: 'rename' | 'after-rename' | 'none', delayMs?: number): Promise<NodeJS.Signals | null> {
  const persist = join(root, 'dist', 'target', 'persist.js');
  const nextFile = `${file}.next-input`;
  writeFileSync(nextFile, JSON.stringify(next));
  // The hook is the test's own: fs.rename is wrapped in the child so that the process dies
  // exactly between the fsynced temporary file and the rename (write-file-atomic calls it late-bound).
  const script = `
    import fs from 'node:fs';
    const at = ${JSON.stringify(at)};
    const rename = fs.rename;
    fs.rename = function (from, to, cb) {
      if (at === 'rename' && to === ${JSON.stringify(file)}) process.kill(process.pid, 'SIGKILL');
      return rename.call(fs, from, to, (e) => {
        if (at === 'after-rename' && to === ${JSON.stringify(file)}) process.kill(process.pid, 'SIGKILL');
        cb(e);
      });
    };
    const { saveConfigFile } = await import(${JSON.stringify(persist)});
    const next = JSON.parse(fs.readFileSync(${JSON.stringify(nextFile)}, 'utf8'));
    for (;;) await saveConfigFile(${JSON.stringify(file)}, next);
  `;
  return new Promise((resolve) => {
    const c = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
    if (delayMs !== undefined) setTimeout(() => c.kill('SIGKILL'), delayMs);
    c.on('exit', (_code, sig) => resolve(sig));
  });
}

describe('crash safety of the save', () => {
  const big = (tag: string) => ({ tag, pad: 'x'.repeat(256 * 1024), list: Array.from({ length: 2000 }, (_, i) => ({ i, tag })) });

  it('SIGKILL between the fsync of the temporary file and the rename leaves the old file', async () => {
    const d = mkdtempSync(join(dir, 'kill-'));
    const file = join(d, 'config.json');
    writeFileSync(file, JSON.stringify(big('old'), null, 2) + '\n');
    expect(await crashChild(file, big('new'), 'rename')).toBe('SIGKILL');
    expect(JSON.parse(readFileSync(file, 'utf8')).tag).toBe('old');
  });

  it('SIGKILL right after the rename leaves the new file', async () => {
    const d = mkdtempSync(join(dir, 'kill-'));
    const file = join(d, 'config.json');
    writeFileSync(file, JSON.stringify(big('old'), null, 2) + '\n');
    expect(await crashChild(file, big('new'), 'after-rename')).toBe('SIGKILL');
    expect(JSON.parse(readFileSync(file, 'utf8')).tag).toBe('new');
  });

  it('SIGKILL at arbitrary moments of repeated saves: always a whole file, old or new', async () => {
    const d = mkdtempSync(join(dir, 'kill-'));
    const file = join(d, 'config.json');
    for (let i = 0; i < 12; i++) {
      writeFileSync(file, JSON.stringify(big('old'), null, 2) + '\n');
      expect(await crashChild(file, big('new'), 'none', 60 + ((i * 37) % 140))).toBe('SIGKILL');
      // JSON.parse throws on a torn file.
      expect(['old', 'new']).toContain(JSON.parse(readFileSync(file, 'utf8')).tag);
    }
  }, 60_000);
});
