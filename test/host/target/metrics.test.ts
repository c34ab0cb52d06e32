// A real scrape: the daemon as a process with its Prometheus endpoint on, a real Prometheus
// (Debian's `prometheus`, installed by scripts/deps.sh) scraping it every second on loopback,
// and libiscsi's tools doing I/O over TCP. What Prometheus stored, asked through its own
// HTTP query API, must match what the initiator did: libiscsi's SCSI.Read10.Simple reads
// 1..256 blocks at LBA 0 and at the LUN's end (test_read10_simple.c), so exactly 512 READ(10)
// commands and 2 × (1 + … + 256) = 65 792 blocks; SCSI.Write10.Simple writes at least as much.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliBundle } from '../cli-bundle.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const bundle = cliBundle('metrics-test');
const cli = bundle.cli;
const dir = mkdtempSync(join(tmpdir(), 'rt-metrics-'));
const IQN = 'iqn.2025-01.com.example:metrics';
const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const missing = ['prometheus', 'iscsi-test-cu', 'iscsi-perf'].filter((c) => !have(c));
if (missing.length)
  console.error(`\n*** metrics.test.ts CANNOT RUN: ${missing.join(', ')} not installed (bash scripts/deps.sh installs prometheus and libiscsi-bin) ***\n`);

const children: ChildProcess[] = [];
function start(cmd: string, args: string[]): { child: ChildProcess; out: () => string; exit: Promise<number | null> } {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  return { child, out: () => out, exit: new Promise((r) => child.once('exit', (code) => r(code))) };
}

async function until<T>(what: string, f: () => Promise<T | undefined> | T | undefined, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

let promUrl = '';
/** One instant query through Prometheus's HTTP API: the vector's samples as [labels, value]. */
async function query(q: string): Promise<Array<[Record<string, string>, number]>> {
  const r = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`);
  const j = (await r.json()) as { status: string; data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
  if (j.status !== 'success') throw new Error(`${q}: ${JSON.stringify(j)}`);
  return j.data.result.map((x) => [x.metric, Number(x.value[1])]);
}
async function scalar(q: string): Promise<number | undefined> {
  const r = await query(q);
  return r.length === 1 ? r[0]![1] : undefined;
}

describe.skipIf(missing.length > 0)('Prometheus scraping the metrics endpoint during libiscsi I/O', () => {
  let daemon: ReturnType<typeof start>;
  let url = '';
  let metricsPort = 0;

  beforeAll(async () => {
    await bundle.build();
    const cfg = join(dir, 'c.json');
    writeFileSync(
      cfg,
      JSON.stringify({
        control: { socket: join(dir, 'ctl.sock') },
        stateDir: join(dir, 'state'),
        backstores: [{ name: 'ram0', type: 'ram', size: '64M', blockSize: 512 }],
        targets: [{ iqn: IQN, tpgs: [{ luns: [{ lun: 0, backstore: 'ram0' }], attributes: { generateNodeAcls: true } }] }],
      }),
    );
    daemon = start(process.execPath, [cli, '--config', cfg, '--listen', '127.0.0.1:0', '--metrics', '127.0.0.1:0', '--log-format', 'human']);
    const [port, mport] = await until('the daemon to listen', () => {
      const p = /^listening on tcp 127\.0\.0\.1:(\d+) /m.exec(daemon.out());
      const m = /^metrics: http:\/\/127\.0\.0\.1:(\d+)\/metrics/m.exec(daemon.out());
      return p && m ? [Number(p[1]), Number(m[1])] : undefined;
    });
    url = `iscsi://127.0.0.1:${port}/${IQN}/0`;
    metricsPort = mport;
    const pport = await freePort();
    promUrl = `http://127.0.0.1:${pport}`;
    const pcfg = join(dir, 'prometheus.yml');
    writeFileSync(
      pcfg,
      [
        'global:',
        '  scrape_interval: 1s',
        '  evaluation_interval: 1s',
        'scrape_configs:',
        '  - job_name: rdma-target',
        '    static_configs:',
        `      - targets: ['127.0.0.1:${metricsPort}']`,
        '',
      ].join('\n'),
    );
    start('prometheus', [`--config.file=${pcfg}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${pport}`, '--log.level=warn']);
    // Prometheus is up and has scraped the target at least once.
    await until('Prometheus to scrape the target', async () => {
      try {
        return (await scalar('up{job="rdma-target"}')) === 1 ? true : undefined;
      } catch {
        return undefined;
      }
    });
  }, 90_000);

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    await Promise.race([
      Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(0) : c.once('exit', r))))),
      new Promise((r) => setTimeout(r, 10_000)),
    ]);
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    bundle.remove();
    rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('counts, bytes and latency histograms in Prometheus match what iscsi-test-cu and iscsi-perf did', async () => {
    // The LU's command series are split by transport (lib/common/transports.ts): libiscsi here is iSCSI over TCP.
    const lu = 'backstore="ram0",transport="tcp",job="rdma-target"';
    for (const t of ['SCSI.Read10.Simple', 'SCSI.Write10.Simple']) {
      const r = spawnSync('iscsi-test-cu', ['-d', '-t', t, url], { encoding: 'utf8', timeout: 60_000 });
      expect(r.stdout, r.stdout + r.stderr).toMatch(/Test: Simple \.\.\.passed/);
    }
    // Both tests: 2 × 256 commands of 1..256 blocks (the other commands are INQUIRY, READ CAPACITY, TEST UNIT READY...).
    const blocks = 2 * ((256 * 257) / 2);
    // Scraped after both ran: the other commands' count stops moving once the last test logged out.
    // Each iscsi-test-cu run logs in twice (two sessions); all four have logged out.
    await until('Prometheus to see the sessions end', async () =>
      (await scalar('rdma_target_engine_counter_total{counter="logouts"}')) === 4 ? true : undefined,
    );
    await until('a scrape after the last command', async () => ((await query('rdma_target_session_commands_total')).length === 0 ? true : undefined));
    await new Promise((r) => setTimeout(r, 2500));
    expect(await scalar(`rdma_target_lu_commands_total{${lu},op="read"}`)).toBe(512);
    const writes = (await scalar(`rdma_target_lu_commands_total{${lu},op="write"}`))!;
    expect(writes).toBeGreaterThanOrEqual(512);
    expect(await scalar(`rdma_target_lu_latency_seconds_count{${lu},op="write"}`)).toBeGreaterThan(0);
    expect(await scalar(`rdma_target_lu_latency_seconds_count{${lu},op="write"}`)).toBeLessThanOrEqual(writes);
    expect(await scalar(`rdma_target_lu_bytes_total{${lu},op="read"}`)).toBe(blocks * 512);
    expect(await scalar(`rdma_target_lu_bytes_total{${lu},op="write"}`)).toBeGreaterThanOrEqual(blocks * 512);
    // Latency is measured on a random 1 in 16 of the commands (lib/scsi/stats.ts): of 512, some (P(none) < 1e-14), never more.
    const timedReads = (await scalar(`rdma_target_lu_latency_seconds_count{${lu},op="read"}`))!;
    expect(timedReads).toBeGreaterThan(0);
    expect(timedReads).toBeLessThanOrEqual(512);
    expect(await scalar(`rdma_target_lu_latency_seconds_bucket{${lu},op="read",le="+Inf"}`)).toBe(timedReads);
    // Every command answered: a quantile inside the buckets (a RAM LUN on loopback: well under a second).
    const p99 = await scalar(`histogram_quantile(0.99, rdma_target_lu_latency_seconds_bucket{${lu},op="write"})`);
    expect(p99).toBeGreaterThan(0);
    expect(p99).toBeLessThan(1);
    const mean = await scalar(`rdma_target_lu_latency_seconds_sum{${lu},op="read"} / rdma_target_lu_latency_seconds_count{${lu},op="read"}`);
    expect(mean).toBeGreaterThan(0);
    expect(await scalar('rdma_target_engine_counter_total{counter="logins"}')).toBe(4);
    // Per initiator: libiscsi's one initiator name has the four logins and logouts; a login to a target that does not
    // exist, under a name nobody configured, counts under initiator="unknown" (lib/common/initiators.ts).
    const logins = await query('rdma_target_initiator_events_total{event="logins"}');
    expect(logins).toHaveLength(1);
    expect(logins[0]![0]).toMatchObject({ fabric: 'iscsi' });
    expect(logins[0]![0].initiator).not.toBe('unknown');
    expect(logins[0]![1]).toBe(4);
    expect(await scalar(`rdma_target_initiator_events_total{event="logouts",initiator="${logins[0]![0].initiator}"}`)).toBe(4);
    const bogus = spawnSync('iscsi-inq', ['-i', 'iqn.2025-01.com.example:made-up', url.replace(IQN, `${IQN}-no-such-target`)], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(bogus.status, bogus.stdout + bogus.stderr).not.toBe(0);
    await until('the failed login in Prometheus', async () =>
      (await scalar('rdma_target_initiator_events_total{event="login_failures",initiator="unknown"}')) === 1 ? true : undefined,
    );
    expect(await query('rdma_target_initiator_events_total{initiator="iqn.2025-01.com.example:made-up"}')).toHaveLength(0);
    // Every command came over TCP: the other transports' rows (present when this host has RDMA) stay at zero,
    // and the LU's commands summed over transports equal the tcp row.
    const others = await query('rdma_target_lu_commands_total{backstore="ram0",transport!="tcp"}');
    for (const [labels, v] of others) expect(v, JSON.stringify(labels)).toBe(0);
    expect(await scalar('sum(rdma_target_lu_commands_total{backstore="ram0",op="read"})')).toBe(512);
    expect(await scalar(`sum(rdma_target_lu_sense_errors_total{${lu},sense_key="illegal_request"})`)).toBe(0);

    // A stream of reads: while it runs Prometheus sees a session, a portal connection and a nonzero read rate on
    // the LU and on the session, and the session's count never exceeds the LU's.
    const before = (await scalar(`rdma_target_lu_commands_total{${lu},op="read"}`))!;
    const perf = start('iscsi-perf', ['-t', '4', '-m', '8', url]);
    const rate = await until('a nonzero read rate', async () => {
      const v = await scalar(`rate(rdma_target_lu_commands_total{${lu},op="read"}[3s])`);
      return v !== undefined && v > 0 ? v : undefined;
    });
    expect(rate).toBeGreaterThan(0);
    const sessionReads = await until('the session in Prometheus', async () => {
      const r = await query('rdma_target_session_commands_total{op="read",transport="tcp"}');
      return r.length === 1 && r[0]![1] > 0 ? r[0]![1] : undefined;
    });
    expect(sessionReads).toBeLessThanOrEqual((await scalar(`rdma_target_lu_commands_total{${lu},op="read"}`))! - before);
    expect(await scalar('sum(rdma_target_portal_connections{transport="tcp"})')).toBe(1);
    expect(await perf.exit).toBe(0);
    // iscsi-perf's own average IOPS over its run, against what Prometheus counted: every command it completed was counted.
    const avg = /iops average (\d+)/g;
    const all = [...perf.out().matchAll(avg)].map((m) => Number(m[1]));
    expect(all.length, perf.out()).toBeGreaterThan(0);
    const total = await until('the final scrape', async () => {
      const v = (await scalar(`rdma_target_lu_commands_total{${lu},op="read"}`))! - before;
      return (await scalar('count(rdma_target_session_commands_total)')) === undefined ? v : undefined;
    });
    // iscsi-perf reports whole seconds of its run; it ran at least 3 of them at its last printed average.
    expect(total).toBeGreaterThanOrEqual(all.at(-1)! * 3 * 0.9);
    // The histogram counts a sample of those commands: about 1 in 16 of tens of thousands.
    const timed = (await scalar(`rdma_target_lu_latency_seconds_count{${lu},op="read"}`))! - timedReads;
    expect(timed).toBeGreaterThan(total / 64);
    expect(timed).toBeLessThan(total / 4);
    // Process metrics from prom-client.
    expect(await scalar('rdma_target_process_resident_memory_bytes')).toBeGreaterThan(0);
    expect((await query('rdma_target_nodejs_eventloop_lag_p99_seconds')).length).toBe(1);
  }, 120_000);

  it('the Grafana dashboard (docs/grafana/rdma-target.json) queries metrics the endpoint serves, in PromQL Prometheus accepts', async () => {
    const dash = JSON.parse(readFileSync(join(root, 'docs', 'grafana', 'rdma-target.json'), 'utf8')) as {
      panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
    };
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const served = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
    expect(dash.panels.length).toBeGreaterThanOrEqual(8);
    for (const p of dash.panels)
      for (const t of p.targets) {
        for (const [name] of t.expr.matchAll(/rdma_target_\w+/g)) expect(served, `${p.title}: ${name}`).toContain(name.replace(/_(bucket|sum|count)$/, ''));
        // Prometheus parses and runs it (an error answers status "error", which query() throws on).
        await query(t.expr.replaceAll('$__rate_interval', '5s').replaceAll('$backstore', '.*').replaceAll('$transport', '.*'));
      }
  });
});
