// The `rdma-target` command as a real process: exit codes, SIGTERM, and a file LUN that a
// real initiator (libiscsi's iscsi-test-cu) wrote to. The CLI is bundled from lib/ with
// esbuild (already in node_modules through vitest) so the test needs no prior `npm run build`
// and never races other builds writing dist/.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliBundle } from '../cli-bundle.js';

const bundle = cliBundle('cli-test');
const cli = bundle.cli;
const dir = mkdtempSync(join(tmpdir(), 'rt-proc-'));

beforeAll(async () => {
  await bundle.build();
});
afterAll(() => bundle.remove());

function runSync(args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Starts the daemon and resolves once it printed its portal and how to reach LUN 0 (every config here has one). */
function startDaemon(args: string[]): Promise<{ child: ChildProcess; port: number; out: () => string; exit: Promise<number | null> }> {
  // The human lines matched below (on a pipe the default would be JSON lines).
  const child = spawn(process.execPath, [cli, '--log-format', 'human', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`daemon did not start:\n${out}`)), 15_000);
    const check = () => {
      const m = /^listening on tcp 127\.0\.0\.1:(\d+) /m.exec(out);
      if (m && /^ {2}libiscsi: .*\/0\n/m.test(out)) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]), out: () => out, exit });
      }
    };
    child.stdout!.on('data', check);
    exit.then((code) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited ${code} before listening:\n${out}`));
    });
  });
}

describe('rdma-target as a process', () => {
  it('--version, --help, usage errors and bad configs give the documented exit codes', () => {
    expect(runSync(['--version'])).toMatchObject({ code: 0, out: expect.stringMatching(/^rdma-target \d+\.\d+\.\d+\n$/) });
    expect(runSync(['--help']).code).toBe(0);
    const u = runSync(['--frobnicate']);
    expect(u.code).toBe(2);
    expect(u.err).toBe(`rdma-target: Unknown option '--frobnicate'\nTry "rdma-target --help".\n`);
    const p = join(dir, 'bad.json');
    writeFileSync(p, JSON.stringify({ targets: [{ iqn: 'iqn.2025-01.com.example:x', tpgs: [{ portals: [{ port: 'abc' }] }] }] }));
    const c = runSync(['check-config', p]);
    expect(c.code).toBe(1);
    expect(c.err).toContain(`${p}: error: targets[0].tpgs[0].portals[0].port: must be an integer 1–65535, got "abc"`);
    const s = runSync(['--config', p]);
    expect(s.code).toBe(1);
    expect(s.err).toBe(`rdma-target: ${p}: targets[0].tpgs[0].portals[0].port: must be an integer 1–65535, got "abc"\n`);
  });

  it('a missing file LUN: one line naming the field, exit 1, no stack trace', () => {
    const p = join(dir, 'missing.json');
    writeFileSync(
      p,
      JSON.stringify({
        control: false,
        backstores: [{ name: 'f', type: 'file', path: join(dir, 'nope', 'disk.img') }],
        targets: [{ iqn: 'iqn.2025-01.com.example:m', tpgs: [{ luns: [{ lun: 0, backstore: 'f' }], attributes: { generateNodeAcls: true } }] }],
      }),
    );
    const r = runSync(['--config', p, '--listen', '127.0.0.1:0']);
    expect(r.code).toBe(1);
    const lines = r.err
      .trim()
      .split('\n')
      .filter((l) => !l.startsWith('warning:'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^rdma-target: backstores\[0\]\.path: cannot open file backstore: .*nope\/disk\.img: no such file or directory/);
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  it('a port in use: one line naming --listen, exit 1', async () => {
    const d = await startDaemon(['--listen', '127.0.0.1:0', '--config', writeRamConfig('inuse')]);
    try {
      const r = runSync(['--listen', `127.0.0.1:${d.port}`, '--config', writeRamConfig('inuse2')]);
      expect(r.code).toBe(1);
      expect(r.err.split('\n').filter((l) => l && !l.startsWith('warning:'))).toEqual([
        `rdma-target: --listen: cannot listen on 127.0.0.1:${d.port}: address already in use (is another target running? pick another port, e.g. --listen 127.0.0.1:${d.port + 1})`,
      ]);
    } finally {
      d.child.kill('SIGTERM');
      expect(await d.exit).toBe(0);
    }
  });

  const haveInitiator = spawnSync('sh', ['-c', 'command -v iscsi-test-cu']).status === 0;
  it.skipIf(!haveInitiator)('serves a file LUN to iscsi-test-cu; SIGTERM stops it cleanly (exit 0) with the data on disk', async () => {
    const img = join(dir, 'disk.img');
    const sock = join(dir, 'file.sock');
    const p = join(dir, 'file.json');
    writeFileSync(
      p,
      JSON.stringify({
        control: { socket: sock },
        backstores: [{ name: 'disk', type: 'file', path: img, size: '2M' }],
        targets: [{ iqn: 'iqn.2025-01.com.example:file', tpgs: [{ luns: [{ lun: 0, backstore: 'disk' }], attributes: { generateNodeAcls: true } }] }],
      }),
    );
    const d = await startDaemon(['--config', p, '--listen', '127.0.0.1:0']);
    expect(d.out()).toContain(`iscsi://127.0.0.1:${d.port}/iqn.2025-01.com.example:file/0`);
    // Write10.Simple fills the first and last 256 blocks with 0xa6.
    const t = spawnSync('iscsi-test-cu', ['-d', '-t', 'ALL.Write10.Simple', `iscsi://127.0.0.1:${d.port}/iqn.2025-01.com.example:file/0`], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(t.stdout, t.stdout + t.stderr).toMatch(/Test: Simple \.\.\.passed/);
    const st = spawnSync(process.execPath, [cli, 'status', '--socket', sock], { encoding: 'utf8' });
    expect(JSON.parse(st.stdout).targets[0].tpgs[0].luns[0]).toMatchObject({ lun: 0, type: 'file', sizeBytes: 2 * 1024 * 1024, path: img });

    d.child.kill('SIGTERM');
    expect(await d.exit).toBe(0);
    expect(d.out()).toMatch(/stopped\n/);
    expect(existsSync(sock)).toBe(false);
    expect(statSync(img).size).toBe(2 * 1024 * 1024);
    const fd = openSync(img, 'r');
    const head = Buffer.alloc(256 * 512);
    readSync(fd, head, 0, head.length, 0);
    closeSync(fd);
    expect(head.every((b) => b === 0xa6)).toBe(true);
    expect(
      readFileSync(img)
        .subarray(-256 * 512)
        .every((b) => b === 0xa6),
    ).toBe(true);
  });
});

describe('rdma-target reload', () => {
  const haveInitiator = spawnSync('sh', ['-c', 'command -v iscsi-inq']).status === 0;
  it.skipIf(!haveInitiator)('SIGHUP adds new LUNs from the file; other changes are refused and listed', async () => {
    const iqn = 'iqn.2025-01.com.example:reload';
    const sock = join(dir, 'reload.sock');
    const p = join(dir, 'reload.json');
    // biome-ignore lint/suspicious/noExplicitAny: a raw config document; the cases write any JSON into it, valid or not
    const doc: any = {
      control: { socket: sock },
      backstores: [{ name: 'r0', type: 'ram', size: '1M' }],
      targets: [{ iqn, tpgs: [{ luns: [{ lun: 0, backstore: 'r0' }], attributes: { generateNodeAcls: true } }] }],
    };
    writeFileSync(p, JSON.stringify(doc));
    const d = await startDaemon(['--config', p, '--listen', '127.0.0.1:0']);
    try {
      doc.backstores.push({ name: 'big', type: 'ram', size: '8M', thin: true });
      doc.targets[0].tpgs[0].luns.push({ lun: 1, backstore: { type: 'ram', size: '2M' } }, { lun: 2, backstore: 'big' });
      writeFileSync(p, JSON.stringify(doc));
      d.child.kill('SIGHUP');
      await waitFor(() => /reloaded/.test(d.out()));
      expect(d.out()).toContain('added LUN 2 (big)');
      for (const lun of [1, 2]) {
        const r = spawnSync('iscsi-readcapacity16', [`iscsi://127.0.0.1:${d.port}/${iqn}/${lun}`], { encoding: 'utf8', timeout: 20_000 });
        expect(r.stdout).toContain(`Total size:${lun === 1 ? 2 * 1024 * 1024 : 8 * 1024 * 1024}`);
      }
      // What cannot change live is refused as a whole: nothing of the file is applied.
      doc.targets[0].tpgs[0].attributes.generateNodeAcls = false;
      doc.targets[0].tpgs[0].luns.shift();
      doc.stateDir = join(dir, 'elsewhere');
      writeFileSync(p, JSON.stringify(doc));
      const r = runSync(['ctl', 'reload', '--socket', sock]);
      expect(r.code).toBe(1);
      expect(r.err).toBe('rdma-target: reload: not applied, these changes need a restart: stateDir: changes with a restart\n');
      expect(spawnSync('iscsi-inq', [`iscsi://127.0.0.1:${d.port}/${iqn}/0`]).status).toBe(0);
    } finally {
      d.child.kill('SIGTERM');
      expect(await d.exit).toBe(0);
    }
  });
});

describe('rdma-target save, restore and the file after run-time changes', () => {
  it("add-lun and lun resize write the file back (with a backup, the file's own portals kept); save FILE; restore FILE; a bad file changes nothing", async () => {
    const iqn = 'iqn.2025-01.com.example:persist';
    const d0 = mkdtempSync(join(dir, 'persist-'));
    const sock = join(d0, 'ctl.sock');
    const p = join(d0, 'config.json');
    // biome-ignore lint/suspicious/noExplicitAny: a raw config document
    const doc: any = {
      control: { socket: sock },
      stateDir: join(d0, 'state'),
      backstores: [{ name: 'r0', type: 'ram', size: '1M' }],
      targets: [
        { iqn, tpgs: [{ portals: [{ address: '127.0.0.1', port: 3260 }], luns: [{ lun: 0, backstore: 'r0' }], attributes: { generateNodeAcls: true } }] },
      ],
    };
    writeFileSync(p, JSON.stringify(doc));
    const original = readFileSync(p, 'utf8');
    const d = await startDaemon(['--config', p, '--listen', '127.0.0.1:0']);
    try {
      const add = runSync(['ctl', 'add-lun', JSON.stringify({ target: iqn, lun: 1, backstore: { type: 'ram', size: '2M' } }), '--socket', sock]);
      expect(add.err).toBe('');
      expect(JSON.parse(add.out)).toMatchObject({ lun: 1, saved: p });
      // biome-ignore lint/suspicious/noExplicitAny: the saved file
      let saved: any = JSON.parse(readFileSync(p, 'utf8'));
      expect(saved.targets[0].tpgs[0].luns).toEqual([
        { lun: 0, backstore: 'r0' },
        { lun: 1, backstore: { type: 'ram', size: 2 * 1024 * 1024, blockSize: 512, readOnly: false, thin: false } },
      ]);
      // --listen is this run's: the file keeps the portal it had.
      expect(saved.targets[0].tpgs[0].portals).toEqual([{ address: '127.0.0.1', port: 3260 }]);
      const backups = readdirSync(join(d0, 'backup'));
      expect(backups).toHaveLength(1);
      expect(readFileSync(join(d0, 'backup', backups[0]!), 'utf8')).toBe(original);

      const grow = runSync(['lun', 'resize', iqn, '0', '3M', '--socket', sock]);
      expect(grow.err).toBe('');
      expect(JSON.parse(grow.out)).toMatchObject({ lun: 0, previousBytes: 1024 * 1024, sizeBytes: 3 * 1024 * 1024, saved: p });
      saved = JSON.parse(readFileSync(p, 'utf8'));
      expect(saved.backstores[0].size).toBe(3 * 1024 * 1024);
      const shrink = runSync(['lun', 'resize', iqn, '0', '1M', '--socket', sock]);
      expect(shrink.code).toBe(1);
      expect(shrink.err).toBe(
        `rdma-target: lun-resize: size: must be at least the current ${3 * 1024 * 1024} bytes (shrinking would cut off data), got ${1024 * 1024}\n`,
      );
      expect(runSync(['lun', 'resize', iqn, 'x', '--socket', sock]).err).toContain('lun resize: LUN must be a LUN number, got "x"');

      // save FILE: the running configuration, validated back to itself.
      const copy = join(d0, 'copy.json');
      expect(runSync(['save', copy, '--socket', sock]).code).toBe(0);
      expect(runSync(['check-config', copy]).code).toBe(0);
      expect(JSON.parse(readFileSync(copy, 'utf8')).targets[0].tpgs[0].luns).toHaveLength(2);

      // A file that fails validation changes nothing, and the error names the field.
      const broken = structuredClone(saved);
      broken.targets[0].tpgs[0].luns.push({ lun: 2, backstore: { type: 'ram', size: '3x' } });
      writeFileSync(p, JSON.stringify(broken));
      const bad = runSync(['ctl', 'reload', '--socket', sock]);
      expect(bad.code).toBe(1);
      expect(bad.err).toContain('targets[0].tpgs[0].luns[2].backstore.size: must be a positive size');
      const st = JSON.parse(runSync(['status', '--socket', sock]).out);
      expect(st.targets[0].tpgs[0].luns.map((l: { lun: number }) => l.lun)).toEqual([0, 1]);
      writeFileSync(p, JSON.stringify(saved, null, 2) + '\n');

      // restore FILE: applied live (a new LUN), then made the configuration file.
      const next = structuredClone(saved);
      next.targets[0].tpgs[0].luns.push({ lun: 2, backstore: { type: 'ram', size: '1M' } });
      const nextFile = join(d0, 'next.json');
      writeFileSync(nextFile, JSON.stringify(next));
      const r = runSync(['restore', nextFile, '--socket', sock]);
      expect(r.err).toBe('');
      expect(JSON.parse(r.out)).toMatchObject({ restored: nextFile, saved: p, added: [{ lun: 2 }] });
      expect(JSON.parse(readFileSync(p, 'utf8')).targets[0].tpgs[0].luns.map((l: { lun: number }) => l.lun)).toEqual([0, 1, 2]);
      expect(spawnSync('iscsi-inq', [`iscsi://127.0.0.1:${d.port}/${iqn}/2`]).status).toBe(0);
      // One that needs a restart is refused and the file stays.
      next.targets[0].tpgs[0].luns.shift();
      next.stateDir = join(d0, 'elsewhere');
      writeFileSync(nextFile, JSON.stringify(next));
      const refused = runSync(['restore', nextFile, '--socket', sock]);
      expect(refused.code).toBe(1);
      expect(refused.err).toContain('stateDir: changes with a restart');
      expect(JSON.parse(readFileSync(p, 'utf8')).targets[0].tpgs[0].luns).toHaveLength(3);
    } finally {
      d.child.kill('SIGTERM');
      expect(await d.exit).toBe(0);
    }
    // With no daemon, restore validates FILE and writes it over --config FILE (with a backup).
    const before = readdirSync(join(d0, 'backup')).length;
    const offline = runSync(['restore', join(d0, 'copy.json'), '--config', p]);
    expect(offline.err).toBe('');
    expect(JSON.parse(readFileSync(p, 'utf8')).targets[0].tpgs[0].luns).toHaveLength(2);
    expect(readdirSync(join(d0, 'backup'))).toHaveLength(before + 1);
    writeFileSync(join(d0, 'bad.json'), JSON.stringify({ targets: [{ iqn: 'nope', tpgs: [] }] }));
    const rejected = runSync(['restore', join(d0, 'bad.json'), '--config', p]);
    expect(rejected.code).toBe(1);
    expect(rejected.err).toContain('targets[0].iqn');
    expect(JSON.parse(readFileSync(p, 'utf8')).targets[0].tpgs[0].luns).toHaveLength(2);
  });
});

async function waitFor(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

function writeRamConfig(name: string): string {
  const p = join(dir, `${name}.json`);
  writeFileSync(
    p,
    JSON.stringify({
      control: false,
      backstores: [{ name: 'r', type: 'ram', size: '1M' }],
      targets: [{ iqn: `iqn.2025-01.com.example:${name}`, tpgs: [{ luns: [{ lun: 0, backstore: 'r' }], attributes: { generateNodeAcls: true } }] }],
    }),
  );
  return p;
}
