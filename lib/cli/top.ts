// `rdma-target top`: a live view of LUNs and sessions, as iostat -x or spdk_top: asks the
// daemon's control socket for its raw counters (`stats`) every interval and shows what
// changed between two samples — IOPS, MiB/s, mean and p99 latency — and the queue depth now.

import { controlRequest } from '../target/control.js';
import type { DaemonStats } from '../target/daemon.js';
import type { IoStatsJson } from '../scsi/stats.js';

export interface TopOptions {
  socket: string;
  intervalMs: number;
  /** Initial sort column (a key of SORT_KEYS or a column name). */
  sort?: string | undefined;
  /** Print one screen (from two samples an interval apart) without clearing, then exit. */
  once?: boolean;
  io: { out(s: string): void; err(s: string): void };
}

export interface TopRow {
  kind: 'lun' | 'session';
  name: string;
  detail: string;
  readIops: number;
  writeIops: number;
  iops: number;
  mibps: number;
  /** Microseconds; NaN when no command completed in the interval. */
  meanUs: number;
  p99Us: number;
  /** Average commands in flight over the interval (Little's law: mean latency × IOPS), as iostat's aqu-sz. */
  aqu: number;
  /** Commands in flight at the sample. */
  queued: number;
}

/** Sort keys: key → column. */
export const SORT_KEYS: Record<string, keyof TopRow> = { i: 'iops', m: 'mibps', l: 'meanUs', p: 'p99Us', a: 'aqu', d: 'queued', n: 'name' };

const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);

/** The latency below which `q` of the commands in `buckets` (non-cumulative, all kinds) fell: the bucket's upper bound. */
function quantileUs(bounds: number[], kinds: number, buckets: number[], q: number): number {
  const nb = bounds.length + 1;
  const per = new Array<number>(nb).fill(0);
  for (let k = 0; k < kinds; k++) for (let b = 0; b < nb; b++) per[b]! += buckets[k * nb + b]!;
  const total = sum(per);
  if (total === 0) return Number.NaN;
  let cum = 0;
  for (let b = 0; b < nb; b++) {
    cum += per[b]!;
    if (cum >= q * total) return b < bounds.length ? bounds[b]! * 1e6 : Number.POSITIVE_INFINITY;
  }
  return Number.POSITIVE_INFINITY;
}

function delta(now: IoStatsJson, before: IoStatsJson | undefined, f: (s: IoStatsJson) => number[]): number[] {
  const a = f(now);
  const b = before ? f(before) : undefined;
  return a.map((v, i) => v - (b?.[i] ?? 0));
}

/** Rows from two samples (`prev` may lack a row that is new: it counts from zero). */
export function topRows(prev: DaemonStats, now: DaemonStats): TopRow[] {
  const dt = Math.max(1e-6, now.time - prev.time);
  const kinds = now.kinds.length;
  const row = (kind: TopRow['kind'], name: string, detail: string, io: IoStatsJson | undefined, before: IoStatsJson | undefined, queued: number): TopRow => {
    if (!io) return { kind, name, detail, readIops: 0, writeIops: 0, iops: 0, mibps: 0, meanUs: Number.NaN, p99Us: Number.NaN, aqu: 0, queued };
    const cmds = delta(io, before, (s) => s.commands);
    const bytes = delta(io, before, (s) => s.bytes);
    const lat = delta(io, before, (s) => s.latencySum);
    const timed = sum(delta(io, before, (s) => s.timed));
    const buckets = delta(io, before, (s) => s.buckets);
    const n = sum(cmds);
    return {
      kind,
      name,
      detail,
      readIops: cmds[0]! / dt,
      writeIops: cmds[1]! / dt,
      iops: n / dt,
      mibps: sum(bytes) / dt / (1 << 20),
      meanUs: timed > 0 ? (sum(lat) / timed) * 1e6 : Number.NaN,
      p99Us: quantileUs(now.latencyBounds, kinds, buckets, 0.99),
      // Little's law: mean latency × commands per second (the latency is a sample's).
      aqu: timed > 0 ? (sum(lat) / timed) * (n / dt) : 0,
      queued,
    };
  };
  const rows: TopRow[] = [];
  for (const l of now.luns) {
    const p = prev.luns.find((x) => x.backstore === l.backstore);
    rows.push(row('lun', l.backstore, l.luns.join(','), l.io, p?.io, l.queued));
  }
  for (const s of now.sessions) {
    if (!s.io) continue;
    const p = prev.sessions.find((x) => x.initiator === s.initiator && x.isid === s.isid && x.target === s.target);
    rows.push(row('session', `${s.initiator}${s.isid ? ` ${s.isid}` : ''}`, `${s.transport} ${s.target}`, s.io, p?.io, s.queued));
  }
  return rows;
}

function sortRows(rows: TopRow[], col: keyof TopRow, reverse: boolean): TopRow[] {
  const dir = (col === 'name' ? 1 : -1) * (reverse ? -1 : 1);
  const val = (r: TopRow) => {
    const v = r[col];
    return typeof v === 'number' && Number.isNaN(v) ? -1 : v;
  };
  return [...rows].sort((a, b) => {
    const x = val(a);
    const y = val(b);
    return (x < y ? -1 : x > y ? 1 : 0) * dir;
  });
}

const num = (v: number, w: number, digits = 0) => (Number.isFinite(v) ? v.toFixed(digits) : Number.isNaN(v) ? '-' : 'inf').padStart(w);

/** One screen of text. */
export function renderTop(rows: TopRow[], o: { sort: keyof TopRow; reverse: boolean; width: number; when: string; intervalMs: number }): string {
  const head = `${'NAME'.padEnd(36)} ${'r/s'.padStart(8)} ${'w/s'.padStart(8)} ${'IOPS'.padStart(9)} ${'MiB/s'.padStart(8)} ${'avg_us'.padStart(8)} ${'p99_us'.padStart(8)} ${'aqu'.padStart(6)} ${'qd'.padStart(4)}  DETAIL`;
  const line = (r: TopRow) =>
    `${r.name.slice(0, 36).padEnd(36)} ${num(r.readIops, 8)} ${num(r.writeIops, 8)} ${num(r.iops, 9)} ${num(r.mibps, 8, 1)} ${num(r.meanUs, 8, 1)} ${num(r.p99Us, 8)} ${num(r.aqu, 6, 2)} ${num(r.queued, 4)}  ${r.detail}`.slice(
      0,
      o.width,
    );
  const sorted = sortRows(rows, o.sort, o.reverse);
  const luns = sorted.filter((r) => r.kind === 'lun');
  const sessions = sorted.filter((r) => r.kind === 'session');
  return [
    `rdma-target top — ${o.when}, every ${o.intervalMs / 1000}s, sorted by ${o.sort}${o.reverse ? ' (reversed)' : ''}; keys: i m l p a d n sort, r reverse, q quit`,
    '',
    `LUNS (${luns.length})`,
    head,
    ...luns.map(line),
    '',
    `SESSIONS (${sessions.length})`,
    head,
    ...sessions.map(line),
  ].join('\n');
}

function sortColumn(s: string | undefined): keyof TopRow | undefined {
  if (s === undefined) return 'iops';
  if (SORT_KEYS[s]) return SORT_KEYS[s];
  const cols: Record<string, keyof TopRow> = {
    iops: 'iops',
    mibps: 'mibps',
    'mib/s': 'mibps',
    avg: 'meanUs',
    mean: 'meanUs',
    p99: 'p99Us',
    qd: 'queued',
    name: 'name',
  };
  return cols[s.toLowerCase()];
}

export async function runTop(o: TopOptions): Promise<number> {
  let sort = sortColumn(o.sort);
  if (!sort) {
    o.io.err(
      `rdma-target: --sort: must be one of iops, mibps, avg, p99, aqu, qd, name (or a key ${Object.keys(SORT_KEYS).join(' ')}), got ${JSON.stringify(o.sort)}`,
    );
    return 2;
  }
  let reverse = false;
  const sample = async () => (await controlRequest(o.socket, { cmd: 'stats' })) as DaemonStats;
  let prev: DaemonStats;
  try {
    prev = await sample();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    o.io.err(
      `rdma-target: control socket ${o.socket}: ${code === 'ENOENT' || code === 'ECONNREFUSED' ? 'no daemon is listening there' : (e as Error).message}`,
    );
    return 1;
  }
  const tty = !o.once && process.stdout.isTTY === true;
  let last: { rows: TopRow[]; when: string } = { rows: topRows(prev, prev), when: new Date().toISOString().slice(11, 19) };
  const draw = () => {
    const text = renderTop(last.rows, { sort: sort!, reverse, width: tty ? process.stdout.columns || 160 : 200, when: last.when, intervalMs: o.intervalMs });
    if (tty) process.stdout.write(`\x1b[H\x1b[2J${text}\n`);
    else o.io.out(text);
  };
  return new Promise<number>((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    const stop = (code: number) => {
      if (stopped) return;
      stopped = true;
      if (timer) clearTimeout(timer);
      if (tty && process.stdin.isTTY) {
        process.stdin.setRawMode(false);
        process.stdin.pause();
        process.stdin.off('data', onKey);
      }
      process.off('SIGINT', onInt);
      resolve(code);
    };
    const onKey = (d: Buffer) => {
      for (const ch of d.toString('utf8')) {
        if (ch === 'q' || ch === '\u0003') return stop(0);
        if (ch === 'r') reverse = !reverse;
        else if (SORT_KEYS[ch]) sort = SORT_KEYS[ch];
        else continue;
        draw();
      }
    };
    const onInt = () => stop(0);
    process.on('SIGINT', onInt);
    if (tty && process.stdin.isTTY) {
      process.stdin.setRawMode(true);
      process.stdin.resume();
      process.stdin.on('data', onKey);
    }
    const tick = async () => {
      let now: DaemonStats;
      try {
        now = await sample();
      } catch (e) {
        if (tty) process.stdout.write('\x1b[H\x1b[2J');
        o.io.err(`rdma-target: top: ${(e as Error).message}`);
        return stop(1);
      }
      if (stopped) return;
      last = { rows: topRows(prev, now), when: new Date().toISOString().slice(11, 19) };
      prev = now;
      draw();
      if (o.once) return stop(0);
      timer = setTimeout(tick, o.intervalMs);
    };
    if (tty) draw();
    timer = setTimeout(tick, o.intervalMs);
  });
}
