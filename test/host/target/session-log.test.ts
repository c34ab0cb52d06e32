// Structured session logs: the daemon's JSON lines (lib/target/logging.ts) for logins,
// logouts and refused logins, as libiscsi's initiators over TCP on 127.0.0.1 produce them.
// Every line of a session carries the initiator, ISID, TSIH, transport and both addresses
// (child loggers bound once per connection and session); a refused login is one line
// saying why; the data path logs nothing per command at the default level.

import { afterEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon } from '../../../lib/target/daemon.js';
import { createEngine } from '../../../lib/target/wiring.js';
import { createLogger } from '../../../lib/target/logging.js';
import { validateConfig } from '../../../lib/target/config.js';

const dir = mkdtempSync(join(tmpdir(), 'rt-slog-'));
const haveLibiscsi = spawnSync('sh', ['-c', 'command -v iscsi-inq && command -v iscsi-perf']).status === 0;
if (!haveLibiscsi) console.error('session-log.test: SKIPPED: libiscsi-bin (iscsi-inq, iscsi-perf) is not installed; run scripts/deps.sh');
const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const s of stops.splice(0)) await s();
});

const IQN = 'iqn.2025-01.com.example:logs';
const GOOD = 'iqn.2025-01.com.example:good';
const STRANGER = 'iqn.2025-01.com.example:stranger';

type Line = Record<string, unknown> & { level: string; msg: string };

/** The daemon in this process, logging JSON lines (default level: info) into `raw`; parse() checks each is one JSON object. */
async function start(): Promise<{ d: Daemon; port: number; raw: string[] }> {
  const raw: string[] = [];
  const log = createLogger({ format: 'json', debug: false, sink: { out: (l) => raw.push(l), err: (l) => raw.push(l) } });
  const r = validateConfig(
    {
      backstores: [{ name: 'r', type: 'ram', size: '1M' }],
      targets: [
        {
          iqn: IQN,
          tpgs: [
            {
              portals: [{ address: '127.0.0.1', port: 0 }],
              luns: [{ lun: 0, backstore: 'r' }],
              attributes: { authentication: true },
              acls: [{ initiator: GOOD, chap: { userid: 'good', password: 'good-secret-12' } }],
            },
          ],
        },
      ],
    },
    { allowEphemeralPort: true, defaults: { stateDir: dir } },
  );
  expect(r.errors).toEqual([]);
  const d = await Daemon.start({ ...r.config!, control: false }, { engine: createEngine({ log }), log });
  stops.push(() => d.stop(500));
  return { d, port: d.portals[0]!.port, raw };
}

const parse = (raw: string[]): Line[] => raw.map((l) => JSON.parse(l) as Line);

function tool(cmd: string, ...args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (out += d));
    c.on('close', (code) => resolve({ code, out }));
  });
}

/** Waits (bounded by the test timeout) until `f` holds, re-checking as the event loop turns. */
async function until(f: () => boolean): Promise<void> {
  while (!f()) await new Promise((r) => setTimeout(r, 20));
}

const url = (port: number, cred: string) => `iscsi://${cred}127.0.0.1:${port}/${IQN}/0`;

describe.skipIf(!haveLibiscsi)('structured session logs (JSON lines, libiscsi over TCP)', () => {
  it('login and logout lines carry initiator, ISID, TSIH, transport and both addresses', async () => {
    const { port, raw } = await start();
    const r = await tool('iscsi-inq', '-i', GOOD, url(port, 'good%good-secret-12@'));
    expect(r.code, r.out).toBe(0);
    await until(() => parse(raw).some((l) => l.event === 'session-end'));
    const lines = parse(raw);
    const login = lines.find((l) => l.event === 'login');
    expect(login, raw.join('\n')).toMatchObject({
      level: 'info',
      transport: 'tcp',
      initiator: GOOD,
      target: IQN,
      sessionType: 'Normal',
      local: `127.0.0.1:${port}`,
      remote: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
      isid: expect.stringMatching(/^0x[0-9a-f]{12}$/),
      tsih: expect.any(Number),
    });
    expect(typeof login!.time).toBe('string');
    const logout = lines.find((l) => l.event === 'logout');
    expect(logout, raw.join('\n')).toMatchObject({
      level: 'info',
      transport: 'tcp',
      initiator: GOOD,
      isid: login!.isid,
      tsih: login!.tsih,
      local: login!.local,
      remote: login!.remote,
      scope: 'session',
    });
    expect(lines.find((l) => l.event === 'connection-end')).toMatchObject({ initiator: GOOD, tsih: login!.tsih, remote: login!.remote });
    expect(lines.find((l) => l.event === 'session-end')).toMatchObject({ initiator: GOOD, tsih: login!.tsih, isid: login!.isid, transport: 'tcp' });
  });

  it('a CHAP failure and an ACL refusal: one warning line each, saying why, with initiator and portal', async () => {
    const { port, raw } = await start();
    expect((await tool('iscsi-inq', '-i', GOOD, url(port, 'good%wrong-secret-1@'))).code).not.toBe(0);
    expect((await tool('iscsi-inq', '-i', STRANGER, url(port, 'good%good-secret-12@'))).code).not.toBe(0);
    await until(() => parse(raw).filter((l) => l.event === 'login-failed').length >= 2);
    const failed = parse(raw).filter((l) => l.event === 'login-failed');
    expect(failed.length, raw.join('\n')).toBe(2);
    const [chap, acl] = failed as [Line, Line];
    expect(chap).toMatchObject({
      level: 'warn',
      transport: 'tcp',
      initiator: GOOD,
      target: IQN,
      local: `127.0.0.1:${port}`,
      remote: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
      status: '0x0201',
      statusName: 'authentication failure',
      reason: expect.stringMatching(/^CHAP authentication failed: CHAP_R mismatch/),
    });
    expect(chap.msg).toContain(GOOD);
    expect(chap.msg).toContain(`on portal 127.0.0.1:${port}`);
    expect(chap.msg).toContain('CHAP authentication failed');
    expect(acl).toMatchObject({
      level: 'warn',
      transport: 'tcp',
      initiator: STRANGER,
      target: IQN,
      local: `127.0.0.1:${port}`,
      status: '0x0202',
      statusName: 'authorization failure',
      reason: expect.stringContaining(`initiator not allowed: ${STRANGER} is not in the ACLs of ${IQN}`),
    });
    expect(acl.msg).toContain(`login failed: ${STRANGER} from tcp 127.0.0.1:`);
    // No login line for either.
    expect(parse(raw).filter((l) => l.event === 'login')).toEqual([]);
  });

  it('no line per command at the default level', async () => {
    const { d, port, raw } = await start();
    const perf = spawn('iscsi-perf', ['-i', GOOD, url(port, 'good%good-secret-12@')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    perf.stdout!.on('data', (b) => (out += b));
    perf.stderr!.on('data', (b) => (out += b));
    const gone = new Promise((r) => perf.once('exit', r));
    try {
      await until(() => (d.status().counters.commands ?? 0) >= 2000 || perf.exitCode !== null);
    } finally {
      perf.kill('SIGKILL');
      await gone;
    }
    expect(d.status().counters.commands, out).toBeGreaterThanOrEqual(2000);
    await until(() => parse(raw).some((l) => l.event === 'session-end'));
    const session = parse(raw).filter((l) => l.initiator === GOOD);
    // The session's own lines: its login, and its end (the initiator vanished), nothing per command.
    expect(
      session.map((l) => l.event),
      raw.join('\n'),
    ).toEqual(['login', 'connection-end', 'session-end']);
  });
});
