// `rdma-target top` on a real terminal: tmux runs it against a daemon (a real process)
// while libiscsi's iscsi-perf reads from LUN 0 over TCP; the screen, read with
// `tmux capture-pane -p`, must show the LUN's row with nonzero IOPS, and a key re-sorts.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliBundle } from '../cli-bundle.js';
import { renderTop, topRows } from '../../../lib/cli/top.js';
import type { DaemonStats } from '../../../lib/target/daemon.js';
import { IoStats, LATENCY_BOUNDS } from '../../../lib/scsi/stats.js';

const bundle = cliBundle('top-test');
const cli = bundle.cli;
const dir = mkdtempSync(join(tmpdir(), 'rt-top-'));
const IQN = 'iqn.2025-01.com.example:top';
const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const missing = ['tmux', 'iscsi-perf'].filter((c) => !have(c));
if (missing.length) console.error(`\n*** top.test.ts CANNOT RUN its tmux test: ${missing.join(', ')} not installed (bash scripts/deps.sh) ***\n`);
// A tmux server of this test's own, so nothing touches the user's sessions.
const tmuxSock = join(dir, 'tmux.sock');
const tmux = (...args: string[]) => spawnSync('tmux', ['-S', tmuxSock, ...args], { encoding: 'utf8', timeout: 10_000 });

async function until<T>(what: string, f: () => T | undefined, ms = 30_000, last?: () => string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `:\n${last()}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function sample(time: number, reads: number, latencyS: number, queued: number): DaemonStats {
  const io = new IoStats(1);
  for (let i = 0; i < reads; i++) io.record(0x28, 4096, latencyS * 1000);
  return {
    time,
    latencyBounds: [...LATENCY_BOUNDS],
    kinds: ['read', 'write', 'other'],
    luns: [{ backstore: 'ram0', type: 'ram', luns: ['iqn.x/tpg1/lun0'], queued, io: io.toJSON(), transports: [{ transport: 'tcp', io: io.toJSON() }] }],
    sessions: [],
    counters: {},
    initiators: [],
    portals: [],
    portalConnections: {},
  };
}

describe('top: rates from two samples', () => {
  it('IOPS, MiB/s, mean and p99 latency come from the difference of the counters', () => {
    const rows = topRows(sample(10, 100, 0.0002, 0), sample(12, 300, 0.0002, 3));
    expect(rows).toHaveLength(1);
    const r = rows[0]!;
    expect(r.readIops).toBe(100); // 200 reads in 2 s
    expect(r.iops).toBe(100);
    expect(r.mibps).toBeCloseTo((200 * 4096) / 2 / (1 << 20));
    expect(r.meanUs).toBeCloseTo(200);
    expect(r.p99Us).toBe(250); // the bucket 100–250 µs
    expect(r.queued).toBe(3);
    expect(r.aqu).toBeCloseTo((200 * 0.0002) / 2); // Little's law: 100/s × 200 µs
    const screen = renderTop(rows, { sort: 'iops', reverse: false, width: 200, when: '00:00:00', intervalMs: 1000 });
    expect(screen).toMatch(/^ram0\s+100\s+0\s+100\s+0\.4\s+200\.0\s+250\s+0\.02\s+3\s+iqn\.x\/tpg1\/lun0$/m);
  });
  it('no command in the interval: zero rates, no latency', () => {
    const r = topRows(sample(10, 5, 0.001, 0), sample(11, 5, 0.001, 0))[0]!;
    expect(r.iops).toBe(0);
    expect(Number.isNaN(r.meanUs)).toBe(true);
    expect(renderTop([r], { sort: 'iops', reverse: false, width: 200, when: '', intervalMs: 1000 })).toMatch(/^ram0\s+0\s+0\s+0\s+0\.0\s+-\s+-\s+0\.00\s+0/m);
  });
});

describe.skipIf(missing.length > 0)('rdma-target top in tmux during libiscsi I/O', () => {
  let daemon: ChildProcess;
  let out = '';
  let url = '';
  const sock = join(dir, 'ctl.sock');
  let perf: ChildProcess | undefined;

  beforeAll(async () => {
    await bundle.build();
    const cfg = join(dir, 'c.json');
    writeFileSync(
      cfg,
      JSON.stringify({
        control: { socket: sock },
        stateDir: join(dir, 'state'),
        backstores: [{ name: 'ram0', type: 'ram', size: '64M' }],
        targets: [{ iqn: IQN, tpgs: [{ luns: [{ lun: 0, backstore: 'ram0' }], attributes: { generateNodeAcls: true } }] }],
      }),
    );
    daemon = spawn(process.execPath, [cli, '--config', cfg, '--listen', '127.0.0.1:0', '--log-format', 'human'], { stdio: ['ignore', 'pipe', 'pipe'] });
    daemon.stdout!.on('data', (d) => (out += d));
    daemon.stderr!.on('data', (d) => (out += d));
    const port = await until('the daemon to listen', () => /^listening on tcp 127\.0\.0\.1:(\d+) /m.exec(out)?.[1]);
    await until('the control socket', () => (/^control socket /m.test(out) ? true : undefined));
    url = `iscsi://127.0.0.1:${port}/${IQN}/0`;
  }, 60_000);

  afterAll(async () => {
    tmux('kill-server');
    perf?.kill('SIGTERM');
    if (daemon && daemon.exitCode === null) {
      daemon.kill('SIGTERM');
      await Promise.race([new Promise((r) => daemon.once('exit', r)), new Promise((r) => setTimeout(r, 10_000))]);
      if (daemon.exitCode === null) daemon.kill('SIGKILL');
    }
    bundle.remove();
    rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('the LUN row shows nonzero IOPS while iscsi-perf reads; keys re-sort; q quits', async () => {
    const started = tmux('new-session', '-d', '-x', '180', '-y', '30', '-s', 'top', process.execPath, cli, 'top', '--socket', sock);
    expect(started.status, started.stderr).toBe(0);
    const screen = () => tmux('capture-pane', '-p', '-t', 'top').stdout;
    await until('top to draw', () => (/^LUNS \(1\)/m.test(screen()) ? true : undefined), 15_000, screen);
    perf = spawn('iscsi-perf', ['-t', '30', '-m', '4', url], { stdio: 'ignore' });
    // NAME r/s w/s IOPS ...: the ram0 row with IOPS above zero.
    const iops = await until(
      'a nonzero IOPS on the LUN row',
      () => {
        const m = /^ram0\s+(\d+)\s+(\d+)\s+(\d+)\s/m.exec(screen());
        return m && Number(m[3]) > 0 ? Number(m[3]) : undefined;
      },
      20_000,
      screen,
    );
    expect(iops).toBeGreaterThan(0);
    expect(screen()).toMatch(/^SESSIONS \(1\)/m);
    // 'n' sorts by name, 'r' reverses: the header says so.
    tmux('send-keys', '-t', 'top', 'n');
    await until('sort by name', () => (/sorted by name;/.test(screen()) ? true : undefined), 5_000, screen);
    tmux('send-keys', '-t', 'top', 'r');
    await until('reversed', () => (/sorted by name \(reversed\)/.test(screen()) ? true : undefined), 5_000, screen);
    const captured = screen();
    console.log(`top screen:\n${captured}`);
    tmux('send-keys', '-t', 'top', 'q');
    await until('top to quit', () => (tmux('has-session', '-t', 'top').status !== 0 ? true : undefined), 5_000, screen);
    perf.kill('SIGTERM');
  }, 90_000);
});
