// Running under systemd (Type=notify, systemd/rdma-target.service): the daemon as a real
// process with $NOTIFY_SOCKET pointing at a real AF_UNIX datagram socket (a python3 receiver,
// Node has none) and $WATCHDOG_USEC set. READY=1 arrives only once the portal accepts
// connections, WATCHDOG=1 arrives again and again, RELOADING=1 then READY=1 around a SIGHUP,
// STOPPING=1 at SIGTERM before a clean exit. Also: the unit passes `systemd-analyze verify`,
// the example configuration passes check-config, and without --log-format the daemon's lines
// on a pipe are JSON.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliBundle } from '../cli-bundle.js';
import { nativeAvailable } from '../../../lib/verbs/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const bundle = cliBundle('sd-test');
const cli = bundle.cli;
const dir = mkdtempSync(join(tmpdir(), 'rt-sd-'));

const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const haveNotify = have('systemd-notify') && have('python3');
if (!haveNotify) console.error('systemd.test: SKIPPED the notify tests: systemd-notify or python3 is missing (scripts/deps.sh installs systemd and python3)');
const haveNative = nativeAvailable();
if (!haveNative)
  console.error(
    'systemd.test: SKIPPED the waiting-RDMA-portal test: the native addon does not load (node scripts/bootstrap.mjs builds it; rdma-core is needed)',
  );
const haveAnalyze = have('systemd-analyze');
if (!haveAnalyze) console.error('systemd.test: SKIPPED `systemd-analyze verify`: systemd-analyze is not installed (package systemd)');

beforeAll(async () => {
  await bundle.build();
});
afterAll(() => bundle.remove());

// Prints every datagram received on argv[1] as one JSON line (its VAR=value lines as an object).
const RECEIVER = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps({"bound": True}), flush=True)
while True:
    d = s.recv(65536).decode()
    print(json.dumps(dict(l.split("=", 1) for l in d.split("\\n") if "=" in l)), flush=True)
`;

type Msg = Record<string, string>;

/** The notify socket: every message in arrival order; `next(pred)` resolves with the first (unconsumed) one that matches. */
async function notifySocket(path: string) {
  const py = spawn('python3', ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const msgs: Msg[] = [];
  const waiters: Array<() => void> = [];
  let buf = '';
  let bound!: () => void;
  const isBound = new Promise<void>((r) => (bound = r));
  py.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const o = JSON.parse(buf.slice(0, i)) as Msg & { bound?: boolean };
      buf = buf.slice(i + 1);
      if (o.bound) bound();
      // BARRIER=1 is systemd-notify's own synchronisation, not one of the daemon's messages.
      else if (!o.BARRIER) msgs.push(o);
    }
    for (const w of waiters.splice(0)) w();
  });
  await isBound;
  let seen = 0;
  const next = async (pred: (m: Msg) => boolean, what: string): Promise<Msg> => {
    for (;;) {
      for (; seen < msgs.length; seen++) {
        if (pred(msgs[seen]!)) return msgs[seen++]!;
      }
      if (py.exitCode !== null) throw new Error(`receiver exited before ${what}`);
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  return { msgs, next, close: () => py.kill('SIGKILL') };
}

function daemon(args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; out: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, out: () => out, exit };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

describe('systemd: sd_notify over a real notify socket', () => {
  it.skipIf(!haveNotify)('READY=1 once the portal accepts, WATCHDOG=1 repeatedly, RELOADING=1/READY=1 on SIGHUP, STOPPING=1 on SIGTERM', async () => {
    const sockPath = join(dir, 'notify.sock');
    const ns = await notifySocket(sockPath);
    const cfg = join(dir, 'sd.json');
    writeFileSync(
      cfg,
      JSON.stringify({
        control: false,
        backstores: [{ name: 'r', type: 'ram', size: '1M' }],
        targets: [{ iqn: 'iqn.2025-01.com.example:sd', tpgs: [{ luns: [{ lun: 0, backstore: 'r' }], attributes: { generateNodeAcls: true } }] }],
      }),
    );
    // 400 ms: pings every 200 ms, so several arrive within the test.
    const d = daemon(['--config', cfg, '--listen', '127.0.0.1:0'], { NOTIFY_SOCKET: sockPath, WATCHDOG_USEC: '400000' });
    try {
      const ready = await ns.next((m) => m.READY === '1', 'READY=1');
      expect(ready.MAINPID).toBe(String(d.child.pid));
      // STATUS names the portal; it must be accepting connections already.
      const m = /tcp 127\.0\.0\.1:(\d+)/.exec(ready.STATUS ?? '');
      expect(m, JSON.stringify(ready)).not.toBeNull();
      expect(await accepts(Number(m![1]))).toBe(true);
      // Nothing but READY=1 came first (no watchdog ping before being ready).
      expect(ns.msgs[0]).toBe(ready);

      for (let i = 0; i < 3; i++) expect(await ns.next((x) => x.WATCHDOG === '1', `WATCHDOG=1 #${i + 1}`)).toMatchObject({ WATCHDOG: '1' });

      d.child.kill('SIGHUP');
      const reloading = await ns.next((x) => x.RELOADING === '1', 'RELOADING=1');
      expect(reloading.MONOTONIC_USEC).toMatch(/^\d+$/);
      const again = await ns.next((x) => x.READY === '1', 'READY=1 after the reload');
      expect(ns.msgs.indexOf(again)).toBeGreaterThan(ns.msgs.indexOf(reloading));

      d.child.kill('SIGTERM');
      const stopping = await ns.next((x) => x.STOPPING === '1', 'STOPPING=1');
      expect(stopping.STATUS).toMatch(/SIGTERM/);
      expect(await d.exit, d.out()).toBe(0);
      // No ping after STOPPING=1.
      expect(ns.msgs.slice(ns.msgs.indexOf(stopping) + 1).filter((x) => x.WATCHDOG)).toEqual([]);
      // On a pipe and without --log-format, the lines are JSON.
      const lines = d
        .out()
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { msg: string; level: string });
      expect(lines.some((l) => l.level === 'info' && l.msg.startsWith('listening on tcp 127.0.0.1:'))).toBe(true);
      expect(lines.some((l) => l.msg.includes('SIGHUP: reloaded'))).toBe(true);
    } finally {
      d.child.kill('SIGKILL');
      ns.close();
    }
  });

  // An iSER portal whose RDMA device does not exist yet (on this host there is none at all; --rdma on serves the
  // RDMA transports anyway): the service is ready once the TCP portal listens, and STATUS= names what waits.
  it.skipIf(!haveNotify || !haveNative)('READY=1 with an RDMA portal waiting for its device: TCP listens, STATUS= names the waiting iSER portal', async () => {
    const sockPath = join(dir, 'notify-rdma.sock');
    const ns = await notifySocket(sockPath);
    const cfg = join(dir, 'sd-rdma.json');
    writeFileSync(
      cfg,
      JSON.stringify({
        control: false,
        backstores: [{ name: 'r', type: 'ram', size: '1M' }],
        targets: [
          {
            iqn: 'iqn.2025-01.com.example:sd-rdma',
            tpgs: [
              {
                portals: [
                  { address: '127.0.0.1', port: 3260, transport: 'tcp' },
                  { address: '192.0.2.7', port: 3260, transport: 'iser' },
                ],
                luns: [{ lun: 0, backstore: 'r' }],
                attributes: { generateNodeAcls: true },
              },
            ],
          },
        ],
      }),
    );
    const d = daemon(['--config', cfg, '--listen', '127.0.0.1:0', '--rdma', 'on'], { NOTIFY_SOCKET: sockPath });
    try {
      const ready = await ns.next((m) => m.READY === '1', 'READY=1');
      const status = ready.STATUS ?? '';
      // Serving: the TCP portal, which accepts connections already; the iSER one is not claimed as served.
      const m = /^serving tcp 127\.0\.0\.1:(\d+); /.exec(status);
      expect(m, status).not.toBeNull();
      expect(await accepts(Number(m![1]))).toBe(true);
      expect(status).toMatch(/; iser 192\.0\.2\.7:3260 waiting for an RDMA device with address 192\.0\.2\.7 \(no RDMA device yet/);
      expect(status.split(';')[0]).not.toContain('iser');
      expect(d.out()).toMatch(/waiting: +for an RDMA device with address 192\.0\.2\.7/);
      d.child.kill('SIGTERM');
      expect(await ns.next((x) => x.STOPPING === '1', 'STOPPING=1')).toMatchObject({ STOPPING: '1' });
      expect(await d.exit, d.out()).toBe(0);
    } finally {
      d.child.kill('SIGKILL');
      ns.close();
    }
  });

  it('without NOTIFY_SOCKET nothing is sent (and nothing spawned): the daemon starts and stops as before', async () => {
    const env = { ...process.env };
    delete env.NOTIFY_SOCKET;
    delete env.WATCHDOG_USEC;
    // A systemd-notify on PATH that would leave a mark if it were run.
    const bin = join(dir, 'bin');
    mkdirSync(bin, { recursive: true });
    const mark = join(dir, 'spawned');
    writeFileSync(join(bin, 'systemd-notify'), `#!/bin/sh\ntouch ${mark}\n`);
    chmodSync(join(bin, 'systemd-notify'), 0o755);
    // Its own configuration without a control socket: the default one may belong to another daemon on this machine.
    const cfg = join(dir, 'plain.json');
    writeFileSync(
      cfg,
      JSON.stringify({
        control: false,
        backstores: [{ name: 'r', type: 'ram', size: '1M' }],
        targets: [{ iqn: 'iqn.2025-01.com.example:plain', tpgs: [{ luns: [{ lun: 0, backstore: 'r' }], attributes: { generateNodeAcls: true } }] }],
      }),
    );
    const child = spawn(process.execPath, [cli, '--config', cfg, '--log-format', 'human', '--listen', '127.0.0.1:0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...env, PATH: `${bin}:${env.PATH}` },
    });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    while (!/^listening on tcp /m.test(out) && child.exitCode === null) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGTERM');
    expect(await exit, out).toBe(0);
    expect(() => readFileSync(mark)).toThrow();
  });
});

describe('log format without --log-format', () => {
  // A warning goes through the logger (demo mode), then the start fails (a missing file LUN): the daemon exits by itself.
  const cfg = () => {
    const p = join(dir, 'fmt.json');
    writeFileSync(
      p,
      JSON.stringify({
        control: false,
        backstores: [{ name: 'f', type: 'file', path: join(dir, 'nope', 'disk.img') }],
        targets: [{ iqn: 'iqn.2025-01.com.example:f', tpgs: [{ luns: [{ lun: 0, backstore: 'f' }], attributes: { generateNodeAcls: true } }] }],
      }),
    );
    return p;
  };

  it('on a pipe: JSON lines', () => {
    const r = spawnSync(process.execPath, [cli, '--config', cfg(), '--listen', '127.0.0.1:0'], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(1);
    const warn = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { level: string; msg: string })
      .find((l) => l.msg.includes('ACLs are off'));
    expect(warn, r.stdout + r.stderr).toMatchObject({ level: 'warn' });
  });

  it.skipIf(!have('python3'))('on a terminal: human lines', () => {
    // python3's pty gives the daemon a terminal for stdout and stderr.
    const r = spawnSync(
      'python3',
      ['-c', 'import pty, sys; sys.exit(pty.spawn(sys.argv[1:]) >> 8)', process.execPath, cli, '--config', cfg(), '--listen', '127.0.0.1:0'],
      { encoding: 'utf8', timeout: 20_000 },
    );
    expect(r.status, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^warning: targets\[0\]\.tpgs\[0\]: ACLs are off /m);
    expect(r.stdout).not.toContain('{"level"');
  });
});

describe('systemd: the shipped unit and example configuration', () => {
  it.skipIf(!haveAnalyze)('systemd/rdma-target.service passes systemd-analyze verify', () => {
    // verify checks that ExecStart's program exists: point it at a stand-in of the installed command.
    const unitDir = join(dir, 'unit');
    mkdirSync(unitDir, { recursive: true });
    const stub = join(unitDir, 'rdma-target');
    writeFileSync(stub, '#!/bin/sh\n');
    chmodSync(stub, 0o755);
    const unit = readFileSync(join(root, 'systemd', 'rdma-target.service'), 'utf8');
    expect(unit).toMatch(/^Type=notify$/m);
    expect(unit).toMatch(/^NotifyAccess=all$/m);
    expect(unit).toMatch(/^WatchdogSec=\d+/m);
    expect(unit).toMatch(/^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/rdma-target --config \/etc\/rdma-target\/config\.json$/m);
    const path = join(unitDir, 'rdma-target.service');
    writeFileSync(path, unit.replaceAll('/usr/bin/rdma-target', stub));
    const r = spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8', timeout: 30_000 });
    // Lines about other units on this machine are not ours to judge.
    const ours = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes('rdma-target'));
    expect(ours, `${r.stdout}${r.stderr}`).toEqual([]);
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
  });

  it('systemd/rdma-target.json (installed as /etc/rdma-target/config.json) passes check-config', () => {
    const r = spawnSync(process.execPath, [cli, 'check-config', join(root, 'systemd', 'rdma-target.json')], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/OK: 1 target, 1 TPG, 1 LUN, portals: tcp 0\.0\.0\.0:3260/);
  });
});
