// The Prometheus endpoint (config `metrics.listen`, CLI --metrics): GET /metrics serves the
// daemon's command counters (Daemon.stats, read from lib/scsi/stats.ts at scrape time) and
// engine counters through prom-client, with prom-client's process metrics (event-loop lag,
// GC, heap). Nothing here runs per command: every value is read when Prometheus scrapes.

import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { INITIATOR_EVENTS, MAX_INITIATORS, UNKNOWN_INITIATOR } from '../common/initiators.js';
import type { Logger } from '../common/log.js';
import type { DaemonStats } from './daemon.js';

type Labels = Record<string, string>;
interface Sample {
  metricName?: string;
  labels: Labels;
  value: number;
}

/** SCSI sense keys (SPC-4 4.5.6) by number, for the errors' label. */
const SENSE_KEYS = [
  'no_sense',
  'recovered_error',
  'not_ready',
  'medium_error',
  'hardware_error',
  'illegal_request',
  'unit_attention',
  'data_protect',
  'blank_check',
  'vendor_specific',
  'copy_aborted',
  'aborted_command',
  'reserved_c',
  'volume_overflow',
  'miscompare',
  'completed',
];

/** A metric whose samples are computed from one stats snapshot at scrape time (prom-client's registry formats them). */
class Computed {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge' | 'histogram',
    private readonly samples: (s: DaemonStats) => Sample[],
    private readonly snapshot: () => DaemonStats,
  ) {}
  get(): { name: string; help: string; type: string; values: Sample[]; aggregator: 'sum' } {
    return { name: this.name, help: this.help, type: this.type, values: this.samples(this.snapshot()), aggregator: 'sum' };
  }
  reset(): void {}
}

type IoRow = { io: DaemonStats['luns'][0]['io']; queued: number };

function ioSamples(rows: Array<IoRow & { labels: Labels }>, pick: (r: NonNullable<IoRow['io']>, k: number) => number, kinds: string[]): Sample[] {
  const out: Sample[] = [];
  for (const r of rows) {
    if (!r.io) continue;
    for (let k = 0; k < kinds.length; k++) out.push({ labels: { ...r.labels, op: kinds[k]! }, value: pick(r.io, k) });
  }
  return out;
}

function histogramSamples(name: string, rows: Array<IoRow & { labels: Labels }>, s: DaemonStats): Sample[] {
  const out: Sample[] = [];
  const nb = s.latencyBounds.length + 1;
  for (const r of rows) {
    if (!r.io) continue;
    for (let k = 0; k < s.kinds.length; k++) {
      const labels = { ...r.labels, op: s.kinds[k]! };
      let cum = 0;
      for (let b = 0; b < nb; b++) {
        cum += r.io.buckets[k * nb + b]!;
        out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: b < nb - 1 ? String(s.latencyBounds[b]) : '+Inf' }, value: cum });
      }
      out.push({ metricName: `${name}_sum`, labels, value: r.io.latencySum[k]! });
      out.push({ metricName: `${name}_count`, labels, value: r.io.timed[k]! });
    }
  }
  return out;
}

/** The registry of one daemon: its command counters, engine counters and process metrics. */
export function createRegistry(stats: () => DaemonStats): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'rdma_target_' });
  // One snapshot per scrape, shared by every metric of it (they are read one after the other, synchronously).
  let cached: { at: number; s: DaemonStats } | undefined;
  const snap = (): DaemonStats => {
    const now = Date.now();
    if (!cached || now - cached.at > 100) cached = { at: now, s: stats() };
    return cached.s;
  };
  // A logical unit's command series are split by the transport of the nexus that sent each
  // command (DaemonStats.luns[].transports); its queue depth is the LU's own.
  const luRows = (s: DaemonStats) =>
    s.luns.flatMap((l) => l.transports.map((t) => ({ io: t.io, queued: l.queued, labels: { backstore: l.backstore, type: l.type, transport: t.transport } })));
  const luQueueRows = (s: DaemonStats) => s.luns.map((l) => ({ io: l.io, queued: l.queued, labels: { backstore: l.backstore, type: l.type } }));
  const sessRows = (s: DaemonStats) =>
    s.sessions.filter((x) => x.io).map((x) => ({ ...x, labels: { initiator: x.initiator, target: x.target, transport: x.transport, isid: x.isid ?? '' } }));
  type Rows = (s: DaemonStats) => Array<IoRow & { labels: Labels }>;
  const groups: Array<[string, string, Rows, Rows]> = [
    ['lu', 'logical unit (one per backstore, whichever LUNs export it) and transport', luRows, luQueueRows],
    ['session', 'session (I_T nexus)', sessRows, sessRows],
  ];
  const add = (m: Computed) => registry.registerMetric(m as never);
  for (const [g, what, rows, queueRows] of groups) {
    add(
      new Computed(
        `rdma_target_${g}_commands_total`,
        `SCSI commands completed per ${what}, by op`,
        'counter',
        (s) => ioSamples(rows(s), (io, k) => io.commands[k]!, s.kinds),
        snap,
      ),
    );
    add(
      new Computed(
        `rdma_target_${g}_bytes_total`,
        `Data bytes moved per ${what}, by op`,
        'counter',
        (s) => ioSamples(rows(s), (io, k) => io.bytes[k]!, s.kinds),
        snap,
      ),
    );
    add(
      new Computed(
        `rdma_target_${g}_sense_errors_total`,
        `CHECK CONDITION statuses per ${what}, by sense key`,
        'counter',
        (s) => rows(s).flatMap((r) => (r.io ? SENSE_KEYS.map((key, i) => ({ labels: { ...r.labels, sense_key: key }, value: r.io!.senseKeys[i]! })) : [])),
        snap,
      ),
    );
    add(
      new Computed(
        `rdma_target_${g}_status_errors_total`,
        `Statuses other than GOOD and CHECK CONDITION (BUSY, RESERVATION CONFLICT, TASK SET FULL, TASK ABORTED) per ${what}`,
        'counter',
        (s) => rows(s).flatMap((r) => (r.io ? [{ labels: r.labels, value: r.io.otherStatus }] : [])),
        snap,
      ),
    );
    add(
      new Computed(
        `rdma_target_${g}_failures_total`,
        `Commands that failed without a SCSI status (fabric or backstore error) per ${what}`,
        'counter',
        (s) => rows(s).flatMap((r) => (r.io ? [{ labels: r.labels, value: r.io.failures }] : [])),
        snap,
      ),
    );
    add(
      new Computed(
        `rdma_target_${g}_latency_seconds`,
        `Command latency, submission to the SCSI core to status handed to the fabric, of a random sample of the commands (1 in 16), per ${what}`,
        'histogram',
        (s) => histogramSamples(`rdma_target_${g}_latency_seconds`, rows(s), s),
        snap,
      ),
    );
    add(
      new Computed(
        `rdma_target_${g}_queue_depth`,
        `Commands in flight per ${what.replace(/ and transport$/, '')}`,
        'gauge',
        (s) => queueRows(s).map((r) => ({ labels: r.labels, value: r.queued })),
        snap,
      ),
    );
  }
  // The engine's own counters (the daemon `status` counters): logins, logouts, login and CHAP
  // failures, connections, and the RDMA objects (QPs, CQs, MRs, registered and bounce bytes).
  const engineCounter =
    /^(connections|logins|loginFailures|chapFailures|logouts|commands|rdmaDeviceRemovals|rdmaDeviceArrivals|rdmaSendQueueFull|rdmaPollSpins|rdmaPollHits|rdmaCqWakes|rdmaCompletions)$/;
  const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  add(
    new Computed(
      'rdma_target_engine_counter_total',
      'Monotonic engine counters (the daemon status counters): connections, logins, loginFailures, chapFailures, logouts, commands, RDMA device events, RDMA send-queue-full events, CQ wake-ups, completions and spin polls',
      'counter',
      (s) => Object.entries(s.counters).flatMap(([k, v]) => (engineCounter.test(k) ? [{ labels: { counter: snake(k) }, value: v }] : [])),
      snap,
    ),
  );
  add(
    new Computed(
      'rdma_target_engine_gauge',
      'Engine levels (the daemon status counters): sessions, open connections, RDMA QPs, CQs, MRs, PDs, registered bytes (rdma_channel_bytes: the part the live channels hold), bounce bytes, iSER connections',
      'gauge',
      (s) => Object.entries(s.counters).flatMap(([k, v]) => (engineCounter.test(k) ? [] : [{ labels: { gauge: snake(k) }, value: v }])),
      snap,
    ),
  );
  add(
    new Computed(
      'rdma_target_initiator_events_total',
      `Logins, logouts, login failures and CHAP failures per initiator (iSCSI initiator name or SRP initiator port id) and fabric; failures of initiators no ACL names and that never logged in count under initiator="${UNKNOWN_INITIATOR}", as do names past the first ${MAX_INITIATORS}`,
      'counter',
      (s) => s.initiators.flatMap((r) => INITIATOR_EVENTS.map((e) => ({ labels: { fabric: r.fabric, initiator: r.initiator, event: snake(e) }, value: r[e] }))),
      snap,
    ),
  );
  add(
    new Computed(
      'rdma_target_portal_connections',
      'Connections of logged-in sessions per portal (transport and local address)',
      'gauge',
      (s) =>
        Object.entries(s.portalConnections).map(([k, v]) => {
          const [transport, local] = k.split('|');
          return { labels: { transport: transport!, local: local! }, value: v };
        }),
      snap,
    ),
  );
  return registry;
}

/** Parses "ADDR:PORT" / "[v6]:PORT". */
export function parseMetricsListen(v: string): { address: string; port: number } | string {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(v);
  if (!m) return `must be ADDR:PORT such as 127.0.0.1:9469 or [::1]:9469, got ${JSON.stringify(v)}`;
  const port = Number(m[3]);
  if (port > 65535) return `port must be 0–65535, got ${m[3]}`;
  return { address: m[1] ?? m[2]!, port };
}

/** The HTTP endpoint: GET /metrics (and / for a pointer to it). */
export class MetricsServer {
  private server: Server | undefined;
  readonly registry: Registry;

  constructor(
    stats: () => DaemonStats,
    private readonly log?: Logger,
  ) {
    this.registry = createRegistry(stats);
  }

  async listen(address: string, port: number): Promise<{ address: string; port: number }> {
    const server = createServer((req, res) => {
      if (req.method !== 'GET' || (req.url !== '/metrics' && !req.url?.startsWith('/metrics?'))) {
        res.writeHead(req.url === '/' ? 200 : 404, { 'content-type': 'text/plain' }).end('rdma-target: metrics at /metrics\n');
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        (e: unknown) => {
          this.log?.warn(`metrics: ${(e as Error).message}`);
          res.writeHead(500).end(String(e));
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, address, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    const a = server.address();
    return typeof a === 'object' && a ? { address: a.address, port: a.port } : { address, port };
  }

  close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return Promise.resolve();
    s.closeAllConnections();
    return new Promise((r) => s.close(() => r()));
  }
}
