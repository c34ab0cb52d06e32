#!/usr/bin/env node
// The iSCSI/iSER/SRP benchmark (`npm run bench`): the same fio jobs against eight targets in
// ONE boot of the soft-RoCE VM (docs/rxe-vm.md), each on an equal 512 MiB RAM LUN, one
// at a time, in interleaved rounds (every job against every target per round, the order of
// the targets rotated by one each round): on 10.77.0.1:3260 rdma-target over iSER and over TCP, LIO over iSER and TCP
// (configfs, rd_mcp), tgt over iSER and TCP (tmpfs-backed file); on 10.77.0.1:5555 (RDMA/CM)
// rdma-target's SRP target port and LIO's ib_srpt (rd_mcp), both through the kernel's ib_srp;
// plus raw RDMA WRITE bandwidth at 128 KiB (ib_write_bw -R) in the same VM. Writes
//   docs/benchmarks/iscsi.json  every raw number (per target, per job, per round)
//   docs/benchmarks/iscsi.md    the table: per target the median over the rounds and its
//                               spread (min–max), target CPU per I/O; the ratios against the
//                               best peer taken per round, their median and spread; the
//                               command, the commit, the date and the host's load
//   docs/benchmarks/iscsi.svg   a grouped bar chart (throughput relative to the best per job)
// The guest half is scripts/bench/iscsi-guest.sh, which prints one `BENCH {json}` line per
// result; this script parses them from the VM's console.
//
// Environment:
//   BENCH_RUNTIME   seconds per fio job (default 8; ramp_time is 2 s on top)
//   BENCH_TARGETS   space-separated subset, e.g. "rdma-target-iser lio-iser" (default: all eight)
//   BENCH_JOBS      space-separated subset of the job names below (default: all six)
//   BENCH_PREFILL   1 (default): write the whole LUN once (1 MiB sequential) before the jobs
//   BENCH_WARMUP    seconds of unmeasured mixed I/O on each target before its first job (default 20)
//   BENCH_ROUNDS    rounds (default 3; --rounds N wins)
//   BENCH_LOCK      a lock file to hold (flock) while the VM runs, e.g. /work/vm.lock where
//                   several people share one machine; the builds before it run unlocked
//   BENCH_VM_TIMEOUT  seconds for the whole VM run (default: from the rounds, targets and jobs)
// Options: --rounds N  interleaved rounds (at least 1; the recorded page needs 3 or more)
//          --only iser|tcp|srp[,...]  only the targets of those transports (both columns of a
//            ratio), e.g. `--only srp` for the two SRP rows: rdma-target SRP and LIO srpt
//          --out DIR  write iscsi.{json,md,svg} and the console log to DIR instead of
//            docs/benchmarks (development runs that must not replace the recorded numbers)
//          --from-log FILE  render the docs from a saved console log (no VM run).
//          --render  re-render iscsi.md and iscsi.svg from the iscsi.json already in the output
//            folder (no VM run; the recorded numbers, date and command stay as they are).
//          --ab REV_A REV_B  A/B of two builds of rdma-target alone (git revisions, or WORKTREE
//            for this checkout as it is): each revision is built in a worktree under
//            .cache/bench/ab-<commit> (node scripts/bootstrap.mjs there), then both daemons
//            run in alternation in one VM boot, --rounds rounds (default 3), over iSER unless
//            --only says otherwise; writes ab.{json,md} to --out (default .cache/bench/ab):
//            per job the median B/A ratio and its spread.
// A quick SRP-only check: BENCH_RUNTIME=3 BENCH_PREFILL=0 node scripts/bench/iscsi.mjs --only srp --rounds 1 --out .cache/bench/dev
// A quick A/B of the working tree against HEAD: BENCH_RUNTIME=3 BENCH_PREFILL=0 BENCH_JOBS='randread-4k-qd32 randread-4k-qd1' node scripts/bench/iscsi.mjs --ab HEAD WORKTREE
// Plain Node ESM, no dependencies. Not a test: failures of a target are results.
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const outDir = join(root, 'docs', 'benchmarks');
const cacheDir = join(root, '.cache', 'bench');

export const TARGETS = [
  { key: 'rdma-target-iser', label: 'rdma-target iSER', impl: 'rdma-target', transport: 'iser', color: '#1f5fa8' },
  { key: 'lio-iser', label: 'LIO iSER', impl: 'lio', transport: 'iser', color: '#d9660b' },
  { key: 'tgt-iser', label: 'tgt iSER', impl: 'tgt', transport: 'iser', color: '#2b8a3e' },
  { key: 'rdma-target-tcp', label: 'rdma-target TCP', impl: 'rdma-target', transport: 'tcp', color: '#8fb8e8' },
  { key: 'lio-tcp', label: 'LIO TCP', impl: 'lio', transport: 'tcp', color: '#f7b780' },
  { key: 'tgt-tcp', label: 'tgt TCP', impl: 'tgt', transport: 'tcp', color: '#9fd6a8' },
  { key: 'rdma-target-srp', label: 'rdma-target SRP', impl: 'rdma-target', transport: 'srp', color: '#5b3fa0' },
  { key: 'lio-srp', label: 'LIO srpt', impl: 'lio', transport: 'srp', color: '#b8860b' },
];
// The ratio columns: rdma-target on a transport against the best of the peers on it.
export const COMPARISONS = [
  { ours: 'rdma-target-iser', peers: ['lio-iser', 'tgt-iser'], header: 'rdma-target iSER / best of LIO,tgt iSER' },
  { ours: 'rdma-target-tcp', peers: ['lio-tcp', 'tgt-tcp'], header: 'rdma-target TCP / best of LIO,tgt TCP' },
  { ours: 'rdma-target-srp', peers: ['lio-srp'], header: 'rdma-target SRP / LIO srpt' },
];
const TRANSPORTS = ['iser', 'tcp', 'srp'];
// The targets whose data moves by RDMA, compared with raw RDMA WRITE bandwidth.
const RDMA_TARGETS = TARGETS.filter((t) => t.transport !== 'tcp').map((t) => t.key);
// metric: what the headline cell shows and the ratio compares (higher is better for all:
// the qd1 row compares IOPS, the inverse of mean latency, and shows the latency).
export const JOBS = [
  { key: 'randread-4k-qd32', label: 'randread 4k qd32', metric: 'iops' },
  { key: 'randwrite-4k-qd32', label: 'randwrite 4k qd32', metric: 'iops' },
  { key: 'randread-4k-qd1', label: 'randread 4k qd1 (latency)', metric: 'lat' },
  { key: 'read-128k-qd8', label: 'read 128k qd8', metric: 'bw' },
  { key: 'write-128k-qd8', label: 'write 128k qd8', metric: 'bw' },
  { key: 'read-1m-qd4', label: 'read 1M qd4', metric: 'bw' },
];

// ------------------------------------------------------------------ options

function options() {
  const env = process.env;
  const runtime = env.BENCH_RUNTIME === undefined || env.BENCH_RUNTIME === '' ? 8 : Number(env.BENCH_RUNTIME);
  if (!Number.isInteger(runtime) || runtime < 1 || runtime > 600) fail(`BENCH_RUNTIME must be an integer 1–600, got ${env.BENCH_RUNTIME}`);
  const pick = (name, all) => {
    const v = (env[name] ?? '').trim();
    if (!v) return all.map((x) => x.key);
    const keys = v.split(/\s+/);
    for (const k of keys) if (!all.some((x) => x.key === k)) fail(`${name}: unknown name ${k} (known: ${all.map((x) => x.key).join(' ')})`);
    return keys;
  };
  const argv = process.argv.slice(2);
  let fromLog;
  let render = false;
  let only;
  let out;
  let rounds = env.BENCH_ROUNDS ? Number(env.BENCH_ROUNDS) : 3;
  let ab;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--from-log') fromLog = argv[++i];
    else if (argv[i] === '--render') render = true;
    else if (argv[i] === '--rounds') rounds = Number(argv[++i]);
    else if (argv[i] === '--ab') {
      ab = [argv[++i], argv[++i]];
      if (!ab[0] || !ab[1] || ab.some((r) => r.startsWith('--'))) fail('--ab needs two revisions (a git revision, or WORKTREE for this checkout)');
    } else if (argv[i] === '--only') {
      only = String(argv[++i] ?? '')
        .split(',')
        .filter(Boolean);
      if (!only.length || only.some((t) => !TRANSPORTS.includes(t)))
        fail(`--only takes transports from ${TRANSPORTS.join(', ')} (comma-separated), got ${argv[i]}`);
    } else if (argv[i] === '--out') {
      out = argv[++i];
      if (!out) fail('--out needs a folder');
    } else if (argv[i] === '-h' || argv[i] === '--help') {
      const head = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n');
      console.log(
        head
          .slice(
            1,
            head.findIndex((l) => l.startsWith('import ')),
          )
          .map((l) => l.replace(/^\/\/ ?/, ''))
          .join('\n'),
      );
      process.exit(0);
    } else fail(`unknown argument ${argv[i]} (see the header of scripts/bench/iscsi.mjs)`);
  }
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50) fail(`--rounds / BENCH_ROUNDS must be an integer 1–50, got ${rounds}`);
  let targets = pick('BENCH_TARGETS', TARGETS);
  const jobs = pick('BENCH_JOBS', JOBS);
  if (ab) {
    // rdma-target alone: over iSER unless --only or BENCH_TARGETS name its other transports.
    targets = targets.filter((k) => k.startsWith('rdma-target-'));
    if (!only && !env.BENCH_TARGETS?.trim()) targets = ['rdma-target-iser'];
  }
  if (only) {
    targets = targets.filter((k) => only.includes(TARGETS.find((t) => t.key === k).transport));
    if (!targets.length) fail(`--only ${only.join(',')} leaves no target of BENCH_TARGETS`);
  }
  const prefill = (env.BENCH_PREFILL ?? '1') !== '0';
  // Unmeasured mixed I/O on each target before its first job (iscsi-guest.sh --warmup): a new
  // Node daemon runs its first seconds unoptimised.
  const warmup = Number(env.BENCH_WARMUP ?? 20);
  if (!(Number.isInteger(warmup) && warmup >= 0)) fail(`BENCH_WARMUP must be a whole number of seconds, got ${env.BENCH_WARMUP}`);
  // The guest's own estimate: per round and target set-up and login (~30 s), prefill (~30 s),
  // per job ramp + runtime + fio's start and end; plus boot and raw RDMA (~3 min).
  const perTarget = 30 + (prefill ? 30 : 0) + warmup + jobs.length * (runtime + 2 + 8);
  const nTargets = targets.length * (ab ? 2 : 1);
  const vmTimeout = Number(env.BENCH_VM_TIMEOUT || Math.max(1200, Math.round(1.5 * (180 + rounds * nTargets * perTarget))));
  const defaultOut = ab ? join(cacheDir, 'ab') : outDir;
  return { runtime, ramp: 2, targets, jobs, prefill, warmup, vmTimeout, fromLog, render, only, rounds, ab, out: out ? resolve(out) : defaultOut };
}

function fail(msg) {
  console.error(`bench: ${msg}`);
  process.exit(2);
}

// ------------------------------------------------------------------ host prerequisites

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/** The guest runs the host's own binaries (the root is shared): make sure they are here. */
function prerequisites(notes) {
  const need = {
    fio: 'fio',
    jq: 'jq',
    tgtd: 'tgt',
    tgtadm: 'tgt',
    iscsiadm: 'open-iscsi',
    iscsid: 'open-iscsi',
    ib_write_bw: 'perftest',
    ss: 'iproute2',
    rdma: 'iproute2',
  };
  const missing = [
    ...new Set(
      Object.entries(need)
        .filter(([c]) => !has(c) && !has(`/usr/sbin/${c}`))
        .map(([, p]) => p),
    ),
  ];
  if (missing.length) {
    console.log(`bench: installing ${missing.join(' ')} (the guest uses the host's binaries)`);
    const apt = (args) => spawnSync('apt-get', args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } }).status === 0;
    if (!apt(['install', '-y', '-q', ...missing])) {
      apt(['update', '-q']);
      if (!apt(['install', '-y', '-q', ...missing])) notes.push(`could not install ${missing.join(' ')} on the host`);
    }
  }
  for (const c of ['fio', 'jq']) if (!has(c)) fail(`${c} is required (apt-get install ${c})`);
}

// ------------------------------------------------------------------ other VMs on the host

/** Samples, while the benchmark's VM runs, how many other qemu processes share the host, and
 *  how much of the host's CPU went to anything but this benchmark's VM (/proc/stat less the
 *  CPU time of our own qemu), every 5 s. */
function concurrencyMonitor(ourPid) {
  const samples = [];
  const procTicks = (pid) => {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      return Number(f[11]) + Number(f[12]);
    } catch {
      return 0;
    }
  };
  const hostTicks = () => {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const busy = f[0] + f[1] + f[2] + f[5] + f[6] + f[7];
    return { busy, total: busy + f[3] + f[4] };
  };
  let prev = null;
  const ourQemu = new Map(); // pid -> last CPU ticks seen (qemu's ticks vanish with it at exit)
  const parentOf = (pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      return 0;
    }
  };
  const ours = (pid) => {
    for (let p = pid, n = 0; p > 1 && n < 50; p = parentOf(p), n++) if (p === ourPid) return true;
    return false;
  };
  const sample = (final = false) => {
    let others = 0;
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      let comm = '';
      try {
        comm = readFileSync(`/proc/${d}/comm`, 'utf8').trim();
      } catch {
        continue;
      }
      if (!comm.startsWith('qemu-system')) continue;
      if (ours(Number(d))) ourQemu.set(Number(d), procTicks(Number(d)) || ourQemu.get(Number(d)) || 0);
      else others++;
    }
    // Until our VM has started (e.g. while BENCH_LOCK waits for another one), nothing counts.
    if (!ourQemu.size) return;
    const load = Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
    const now = { ...hostTicks(), vm: [...ourQemu.values()].reduce((a, b) => a + b, 0) };
    // CPUs busy outside this benchmark's VM over the last interval.
    // (Not at the end: our qemu has exited, and its last CPU seconds are gone with it.)
    const otherCpus =
      !final && prev && now.total > prev.total ? Math.max(0, (now.busy - prev.busy - (now.vm - prev.vm)) / (now.total - prev.total)) * cpus().length : null;
    const hostCpus = prev && now.total > prev.total ? ((now.busy - prev.busy) / (now.total - prev.total)) * cpus().length : null;
    prev = now;
    samples.push({ others, load, otherCpus, hostCpus });
  };
  sample();
  const timer = setInterval(sample, 5000);
  return {
    stop() {
      clearInterval(timer);
      sample(true);
      if (!samples.length) return null;
      const withOthers = samples.filter((s) => s.others > 0).length;
      const oc = samples.map((s) => s.otherCpus).filter((x) => x != null);
      const hc = samples.map((s) => s.hostCpus).filter((x) => x != null);
      const mean = (a) => (a.length ? +(a.reduce((x, y) => x + y, 0) / a.length).toFixed(2) : null);
      return {
        samples: samples.length,
        samples_with_other_vms: withOthers,
        max_other_vms: Math.max(...samples.map((s) => s.others)),
        load1_mean: +(samples.reduce((a, s) => a + s.load, 0) / samples.length).toFixed(2),
        load1_max: Math.max(...samples.map((s) => s.load)),
        host_cpus_busy_mean: mean(hc),
        other_cpus_busy_mean: mean(oc),
        other_cpus_busy_max: oc.length ? +Math.max(...oc).toFixed(2) : null,
        host_cpus: cpus().length,
      };
    },
  };
}

// ------------------------------------------------------------------ running the VM

function guestArgs(o) {
  // A/B: each rdma-target row twice, as variant A and B, A first in odd rounds (the rotation).
  const targets = o.ab ? o.targets.flatMap((k) => [`${k}@A`, `${k}@B`]) : o.targets;
  const args = [
    'bash',
    'scripts/bench/iscsi-guest.sh',
    '--runtime',
    String(o.runtime),
    '--ramp',
    String(o.ramp),
    '--targets',
    targets.join(' '),
    '--jobs',
    o.jobs.join(' '),
    '--prefill',
    o.prefill ? '1' : '0',
    '--warmup',
    String(o.warmup),
    '--rounds',
    String(o.rounds),
  ];
  if (o.ab)
    for (const [v, b] of [
      ['A', o.abBuilds[0]],
      ['B', o.abBuilds[1]],
    ])
      args.push('--rt-dir', `${v}=${b.dir}`);
  return args;
}

function runVm(o) {
  // The recorded run's console log stays in .cache/bench; a run with --out keeps its own.
  const logDir = o.out === outDir ? cacheDir : o.out;
  mkdirSync(logDir, { recursive: true });
  const logPath = join(logDir, `${o.ab ? 'ab' : 'iscsi'}-console.log`);
  const log = createWriteStream(logPath);
  // What A and B are, in the log itself, so that --from-log can name them.
  if (o.ab) log.write(`BENCH ${JSON.stringify({ type: 'ab_builds', builds: o.abBuilds })}\n`);
  let args = ['bash', 'scripts/vm/run.sh', '--timeout', String(o.vmTimeout), '--', ...guestArgs(o)];
  // BENCH_LOCK: hold this lock file (flock) for the VM run only, not for the builds before it.
  if (process.env.BENCH_LOCK) args = ['flock', process.env.BENCH_LOCK, ...args];
  console.log(`bench: ${args.map((a) => (/\s/.test(a) ? `'${a}'` : a)).join(' ')}`);
  console.log(`bench: console log in ${logPath}`);
  const t0 = Date.now();
  const child = spawn(args[0], args.slice(1), { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  const monitor = concurrencyMonitor(child.pid);
  let text = '';
  let partial = '';
  const onData = (d) => {
    const s = d.toString();
    text += s;
    log.write(s);
    partial += s;
    const lines = partial.split('\n');
    partial = lines.pop();
    for (const l of lines) if (!l.startsWith('BENCHR ')) process.stdout.write(`${l}\n`);
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      if (partial) process.stdout.write(`${partial}\n`);
      log.end();
      resolve({ text, code: code ?? (signal ? 128 : 1), wall_s: Math.round((Date.now() - t0) / 1000), concurrency: monitor.stop() });
    });
  });
}

// ------------------------------------------------------------------ parsing

/** BENCH records from console text. A kernel message may break a line: such a record is
 *  skipped here and usually recovered from the replay (BENCHR) the guest prints at the end. */
export function parseRecords(text) {
  const records = new Map();
  let broken = 0;
  for (const line of text.split('\n')) {
    const m = /BENCHR? (\{.*)$/.exec(line);
    if (!m) continue;
    let rec;
    try {
      rec = JSON.parse(m[1].slice(0, m[1].lastIndexOf('}') + 1));
    } catch {
      broken++;
      continue;
    }
    const key = [rec.type, rec.target ?? '', rec.job ?? '', rec.run ?? '', rec.round ?? '', rec.type === 'note' ? rec.text : ''].join('|');
    if (!records.has(key)) records.set(key, rec);
  }
  return { records: [...records.values()], broken };
}

const us = (ns) => (typeof ns === 'number' ? ns / 1000 : null);

/** The median of numbers (the mean of the middle two for an even count); null for none. */
export function median(xs) {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
const minOf = (xs) => {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x));
  return v.length ? Math.min(...v) : null;
};
const maxOf = (xs) => {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x));
  return v.length ? Math.max(...v) : null;
};
// The per-run numbers whose median (and, for SPREAD, min and max) a job's summary carries.
const MEDIAN_FIELDS = [
  'iops',
  'MiBps',
  'lat_mean_us',
  'lat_p50_us',
  'lat_p99_us',
  'lat_p999_us',
  'lat_max_us',
  'lat_stddev_us',
  'clat_mean_us',
  'total_ios',
  'io_KiB',
  'runtime_ms',
  'fio_usr_cpu_pct',
  'fio_sys_cpu_pct',
  'guest_cpu_busy_pct',
  'target_process_cpu_s',
  'target_cpu_us_per_io',
  'guest_cpu_us_per_io',
];
const SPREAD_FIELDS = ['iops', 'MiBps', 'lat_mean_us', 'target_cpu_us_per_io', 'guest_cpu_us_per_io'];
const roundOf = (r) => r.round || 1;

/** One round's fio result as the JSON keeps it. */
function runResult(jr, impl) {
  return {
    round: roundOf(jr),
    status: 'ok',
    iops: jr.iops,
    MiBps: jr.bw_kib / 1024,
    lat_mean_us: us(jr.lat_mean_ns),
    lat_p50_us: us(jr.lat_p50_ns),
    lat_p99_us: us(jr.lat_p99_ns),
    lat_p999_us: us(jr.lat_p999_ns),
    lat_max_us: us(jr.lat_max_ns),
    lat_stddev_us: us(jr.lat_stddev_ns),
    clat_mean_us: us(jr.clat_mean_ns),
    total_ios: jr.total_ios,
    io_KiB: jr.io_kib,
    runtime_ms: jr.runtime_ms,
    fio_usr_cpu_pct: jr.fio_usr_cpu,
    fio_sys_cpu_pct: jr.fio_sys_cpu,
    guest_cpu_busy_pct: jr.guest_cpu_busy_pct,
    cpu_window_s: jr.cpu_window_s ?? null,
    // LIO runs in the kernel: its CPU shows only in the guest-wide figure.
    target_process_cpu_s: impl === 'lio' ? null : (jr.target_proc_cpu_s ?? null),
    target_cpu_us_per_io: impl === 'lio' ? null : (jr.target_cpu_us_per_io ?? null),
    // Recordings before 2026-12-07 read utime + stime (/proc/PID/stat, 10 ms units).
    target_cpu_source: jr.target_cpu_source ?? 'ticks',
    guest_cpu_us_per_io: jr.guest_cpu_us_per_io ?? null,
    conn_errors: jr.conn_errors ?? null,
  };
}

/** How a recording read the targets' CPU: 'schedstat' (ns) or 'ticks' (/proc/PID/stat, before 2026-12-07). */
function cpuSource(res) {
  for (const t of Object.values(res.targets ?? {}))
    for (const j of Object.values(t.jobs ?? {})) for (const r of j.runs ?? [j]) if (r.target_cpu_source) return r.target_cpu_source;
  return 'ticks';
}

/** A job over the rounds: every round's run, and the median (min, max) of the ok ones. */
export function summariseRuns(runs) {
  const ok = runs.filter((r) => r.status === 'ok');
  if (!ok.length) return { status: 'failed', reason: runs.find((r) => r.reason)?.reason ?? 'failed', rounds_ok: 0, runs };
  const sum = { status: 'ok', rounds_ok: ok.length };
  for (const f of MEDIAN_FIELDS) sum[f] = median(ok.map((r) => r[f]));
  sum.min = Object.fromEntries(SPREAD_FIELDS.map((f) => [f, minOf(ok.map((r) => r[f]))]));
  sum.max = Object.fromEntries(SPREAD_FIELDS.map((f) => [f, maxOf(ok.map((r) => r[f]))]));
  sum.conn_errors = ok.reduce((a, r) => a + (r.conn_errors ?? 0), 0);
  sum.runs = runs;
  return sum;
}

/** One target's entry (a row of TARGETS, or an A/B variant such as rdma-target-iser@B) from
 *  the records of all rounds. */
function buildTarget(key, meta, records, o, vmEnded, requested) {
  const entry = { ...meta, status: 'not run', jobs: {} };
  const mine = (type) => records.filter((r) => r.type === type && r.target === key);
  const setups = mine('target').sort((a, b) => roundOf(a) - roundOf(b));
  const okSetup = setups.find((r) => r.status === 'ok');
  if (okSetup || setups.length) {
    const { type, target, round, ...rest } = okSetup ?? setups[0];
    Object.assign(entry, rest);
  } else if (requested) {
    entry.status = 'failed';
    entry.reason = `no result from the guest${vmEnded ? ` (${vmEnded})` : ''}`;
  }
  if (requested) {
    entry.rounds = Array.from({ length: o.rounds }, (_, i) => {
      const r = setups.find((x) => roundOf(x) === i + 1);
      return r
        ? {
            round: i + 1,
            status: r.status,
            ...(r.status === 'ok' ? { setup_s: r.setup_s, prefill_MiBps: r.prefill_MiBps } : { phase: r.phase, reason: r.reason }),
          }
        : { round: i + 1, status: 'failed', reason: `no result from the guest${vmEnded ? ` (${vmEnded})` : ''}` };
    });
    const failedSetups = setups.filter((r) => r.status !== 'ok');
    if (okSetup && failedSetups.length) entry.failed_rounds = failedSetups.map(({ type, target, ...r }) => r);
  }
  for (const j of JOBS) {
    if (!requested || !o.jobs.includes(j.key)) continue;
    const runs = entry.rounds.map(({ round }) => {
      const jr = records.find((r) => r.type === 'job' && r.target === key && r.job === j.key && roundOf(r) === round);
      if (jr?.status === 'ok') return runResult(jr, meta.impl);
      if (jr) return { round, status: 'failed', reason: jr.reason ?? 'failed' };
      const setup = setups.find((x) => roundOf(x) === round);
      return {
        round,
        status: 'failed',
        reason: setup?.status === 'failed' ? `target ${setup.phase ?? 'setup'} failed: ${setup.reason}` : `no result${vmEnded ? ` (${vmEnded})` : ''}`,
      };
    });
    const sum = summariseRuns(runs);
    const first = records.find((r) => r.type === 'job' && r.target === key && r.job === j.key && r.status === 'ok');
    if (first) Object.assign(sum, { rw: first.rw, bs: first.bs, iodepth: first.iodepth });
    entry.jobs[j.key] = sum;
  }
  const tag = (r) => (o.rounds > 1 ? `round ${roundOf(r)}: ` : '');
  const logs = mine('log');
  if (logs.length) entry.failure_logs = logs.map(({ type, target, ...r }) => r);
  const kes = mine('kernel_events');
  if (kes.length) {
    entry.conn_errors = kes.reduce((a, r) => a + (r.conn_errors ?? 0), 0);
    entry.target_logins = kes.some((r) => r.target_logins != null) ? maxOf(kes.map((r) => r.target_logins)) : null;
    entry.kernel_events = kes
      .map((r) => String(r.dmesg ?? ''))
      .filter((x) => x.trim())
      .join('');
  }
  const tls = mine('target_log');
  if (tls.length) entry.log_tail = tls[tls.length - 1].tail;
  const tn = mine('note');
  if (tn.length) entry.notes = tn.map((r) => ({ text: `${tag(r)}${r.text}`, log: r.log }));
  return entry;
}

export function buildResults(o, text, vm, notes) {
  const { records, broken } = parseRecords(text);
  if (broken) notes.push(`${broken} console line(s) with a BENCH record could not be parsed (kernel messages in the line?); replayed copies were used`);
  const env = records.find((r) => r.type === 'env') ?? null;
  const done = records.find((r) => r.type === 'done');
  const raw = records.filter((r) => r.type === 'raw_rdma');
  const okRaw = raw.filter((r) => r.status === 'ok');
  const rawMean = okRaw.length ? okRaw.reduce((a, r) => a + r.bw_avg_MiBps, 0) / okRaw.length : null;
  const vmEnded = vm.code === 0 && done ? null : `the VM run ended early (run.sh exit ${vm.code}${vm.code === 124 ? ', timeout' : ''})`;
  const targets = {};
  for (const t of TARGETS) {
    targets[t.key] = buildTarget(t.key, { label: t.label, impl: t.impl, transport: t.transport }, records, o, vmEnded, o.targets.includes(t.key));
  }
  for (const r of records.filter((x) => x.type === 'note' && !x.target)) notes.push(r.text);
  if (vmEnded) notes.push(vmEnded);
  return {
    benchmark: 'iscsi',
    date: new Date().toISOString(),
    command: commandLine(o),
    vm_command: `bash scripts/vm/run.sh --timeout ${o.vmTimeout} -- ${guestArgs(o)
      .map((a) => (/\s/.test(a) ? `'${a}'` : a))
      .join(' ')}`,
    runtime_s: o.runtime,
    ramp_s: o.ramp,
    rounds: o.rounds,
    prefill: o.prefill,
    warmup_s: o.warmup,
    host: { kernel: release(), cpus: cpus().length, cpu_model: cpus()[0]?.model ?? '', node: process.version },
    rdma_target_source: o.source ?? null,
    guest: env,
    vm: { exit_code: vm.code, wall_s: vm.wall_s, guest_elapsed_s: done?.elapsed_s ?? null },
    concurrency: vm.concurrency,
    raw_rdma: { size: 131072, runs: raw, mean_MiBps: rawMean },
    jobs: JOBS.filter((j) => o.jobs.includes(j.key)).map((j) => ({ key: j.key, label: j.label, headline_metric: j.metric })),
    targets_order: o.targets,
    targets,
    notes,
  };
}

function commandLine(o) {
  const env = [];
  if (process.env.BENCH_RUNTIME) env.push(`BENCH_RUNTIME=${o.runtime}`);
  if (process.env.BENCH_TARGETS) env.push(`BENCH_TARGETS='${o.targets.join(' ')}'`);
  if (process.env.BENCH_JOBS) env.push(`BENCH_JOBS='${o.jobs.join(' ')}'`);
  if (!o.prefill) env.push('BENCH_PREFILL=0');
  if (process.env.BENCH_WARMUP) env.push(`BENCH_WARMUP=${o.warmup}`);
  const args = [];
  if (o.ab) args.push(`--ab ${o.ab.join(' ')}`);
  if (o.rounds !== 3) args.push(`--rounds ${o.rounds}`);
  if (o.only) args.push(`--only ${o.only.join(',')}`);
  const defaultOut = o.ab ? join(cacheDir, 'ab') : outDir;
  if (o.out !== defaultOut) args.push(`--out ${relative(root, o.out) || '.'}`);
  return [...env, args.length ? `node scripts/bench/iscsi.mjs ${args.join(' ')}` : 'npm run bench'].join(' ');
}

// ------------------------------------------------------------------ rendering

const fmtInt = (n) => Math.round(n).toLocaleString('en-US');
const fmt1 = (n) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
const headline = (job, r) => (job.metric === 'bw' ? r.MiBps : r.iops);
/** A target's cell: the median over the rounds, its spread (min–max) beneath, then the target
 *  process's CPU per I/O (user-space targets), and how many rounds failed, if any. */
function cell(job, r) {
  if (!r) return '—';
  if (r.status !== 'ok') return `failed: ${short(r.reason)}`;
  const mark = r.conn_errors > 0 ? ` ⚠${r.conn_errors}` : '';
  const n = r.runs?.length ?? 1;
  const spread = (f, fmt, unit = '') => (r.rounds_ok > 1 && r.min?.[f] != null ? `<br>${fmt(r.min[f])}–${fmt(r.max[f])}${unit}` : '');
  let text;
  if (job.metric === 'iops') text = `${fmtInt(r.iops)} IOPS${mark}${spread('iops', fmtInt)}`;
  else if (job.metric === 'bw') text = `${fmt1(r.MiBps)} MiB/s${mark}${spread('MiBps', fmt1)}`;
  else text = `${fmtInt(r.lat_mean_us)} µs (${fmtInt(r.iops)} IOPS)${mark}${spread('lat_mean_us', fmtInt, ' µs')}`;
  if (r.target_cpu_us_per_io != null) text += `<br>${fmtInt(r.target_cpu_us_per_io)} CPU-µs/IO`;
  if (r.rounds_ok < n) text += `<br>(${r.rounds_ok} of ${n} rounds)`;
  return text;
}
const mdEscape = (s) =>
  String(s ?? '')
    .replace(/\|/g, '\\|')
    .replace(/\n/g, ' ');
/** A failure reason short enough for a table cell (the full text is in the notes and the JSON). */
const short = (s, n = 90) => {
  const t = String(s ?? '');
  return mdEscape(t.length > n ? `${t.slice(0, n - 1)}…` : t);
};
const shortName = (key) => TARGETS.find((t) => t.key === key).label.split(' ')[0];

/** ours / best peer (by the job's headline metric, higher is better), taken in each round
 *  against that round's best peer; the median over the rounds, its spread, and the peer that
 *  was best most often. */
export function ratio(res, job, ours, peers) {
  const o = res.targets[ours].jobs[job.key];
  if (!o) return { text: '—' };
  const ps = peers.map((k) => ({ k, r: res.targets[k].jobs[job.key] })).filter((p) => p.r?.status === 'ok');
  if (o.status !== 'ok') return { text: 'n/a (rdma-target failed)' };
  if (!ps.length) return { text: 'n/a (no peer result)' };
  const runsOf = (r) => r.runs ?? [{ round: 1, ...r }];
  const perRound = [];
  const bestCount = new Map();
  for (const run of runsOf(o)) {
    if (run.status !== 'ok') continue;
    const cands = ps.map((p) => ({ k: p.k, run: runsOf(p.r).find((x) => x.round === run.round && x.status === 'ok') })).filter((c) => c.run);
    if (!cands.length) continue;
    const best = cands.reduce((a, b) => (headline(job, b.run) > headline(job, a.run) ? b : a));
    perRound.push({ round: run.round, value: headline(job, run) / headline(job, best.run), peer: best.k });
    bestCount.set(best.k, (bestCount.get(best.k) ?? 0) + 1);
  }
  if (!perRound.length) return { text: 'n/a (no round with both results)' };
  const values = perRound.map((x) => x.value);
  const v = median(values);
  const peer = [...bestCount].sort((a, b) => b[1] - a[1])[0][0];
  const spread = perRound.length > 1 ? `<br>${minOf(values).toFixed(2)}–${maxOf(values).toFixed(2)}` : '';
  return {
    value: v,
    min: minOf(values),
    max: maxOf(values),
    rounds: perRound,
    text: `**${v.toFixed(2)}** (vs ${shortName(peer)}${bestCount.size > 1 ? ' mostly' : ''})${spread}`,
  };
}

/** What else the host was doing while the benchmark's VM ran (the page states it). */
export function loadLines(c) {
  if (!c) return [];
  const cpu =
    c.other_cpus_busy_mean != null
      ? `; CPU busy outside this benchmark's VM: mean ${c.other_cpus_busy_mean} of ${c.host_cpus} CPUs, max ${c.other_cpus_busy_max} over 5 s; host CPUs busy in all, mean ${c.host_cpus_busy_mean}`
      : '';
  return [
    c.samples_with_other_vms > 0
      ? `- **⚠ Host load:** another VM ran on this ${c.host_cpus}-CPU host during ${c.samples_with_other_vms} of ${c.samples} samples (up to ${c.max_other_vms} at once; load average mean ${c.load1_mean}, max ${c.load1_max}${cpu}). Absolute numbers are depressed and noisier than on an idle host.`
      : `- **Host load:** no other VM ran on the host during the run (${c.samples} samples every 5 s; load average mean ${c.load1_mean}, max ${c.load1_max}${cpu}).`,
  ];
}

export function renderMarkdown(res) {
  const jobs = JOBS.filter((j) => res.jobs.some((x) => x.key === j.key));
  const L = [];
  const g = res.guest;
  L.push('# iSCSI / iSER / SRP benchmark: rdma-target against LIO and tgt');
  L.push('');
  L.push(`- **Date:** ${res.date.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}`);
  L.push(
    `- **Command:** \`${res.command}\` (${res.command.endsWith('npm run bench') ? '= `node scripts/bench/iscsi.mjs`, ' : ''}which runs \`node scripts/bootstrap.mjs\` and then \`${res.vm_command}\`)`,
  );
  L.push(
    `- **Where:** one boot of the soft-RoCE VM (qemu TCG, ${g?.cpus ?? '?'} vCPUs, ${g ? Math.round(g.mem_kib / 1024) : '?'} MiB, kernel ${g?.kernel ?? '?'}; host: ${res.host.cpus} CPUs, ${res.host.cpu_model}). ` +
      "RDMA is rdma_rxe; every connection to 10.77.0.1 runs over rxe0's loopback (docs/rxe-vm.md).",
  );
  L.push(
    `- **Targets:** one at a time, each fully torn down before the next; a 512 MiB RAM LUN each: rdma-target \`ram\` backstore (\`node dist/cli/main.js --debug\`, ${g?.node ?? ''}), LIO \`rd_mcp\` (configfs), tgt ${g?.tgt ?? ''} (tmpfs file). ` +
      `iSCSI on 10.77.0.1:3260: LIO in demo mode, rdma-target with generated node ACLs; initiator Linux ib_iser / iscsi_tcp with open-iscsi ${g?.iscsiadm?.replace(/^iscsiadm version /, '') ?? ''}, its packaged iscsid.conf defaults (queue_depth 32, NOP-Out every 5 s, 5 s timeout) except replacement_timeout 20 s.`,
  );
  if (TARGETS.some((t) => t.transport === 'srp' && res.targets[t.key].status !== 'not run'))
    L.push(
      "- **SRP:** on 10.77.0.1:5555 over RDMA/CM: rdma-target's `srp` section, and LIO's `ib_srpt` (`srpt/discovery_auth/rdma_cm_port` 5555, the target port named by rxe0's port GUID, TPG `tpgt_1` with the ramdisk as LUN 0). " +
        "Both answer to target port id rxe0's node GUID (LIO's default `srpt_service_guid`) and admit one initiator, by an ACL named `10.77.0.1` with LUN 0 mapped (srpt names RDMA/CM logins by IP address and has no demo mode). " +
        "Initiator: the kernel's ib_srp, `echo id_ext=<guid>,ioc_guid=<guid>,dest=10.77.0.1:5555 > /sys/class/infiniband_srp/srp-rxe0-1/add_target` with its defaults (2 channels on 2 CPUs, queue_size 64, cmd_sg_entries 12, immediate data); logout by `srp_remote_ports/*/delete`.",
    );
  const src = res.rdma_target_source;
  if (src?.commit)
    L.push(
      `- **rdma-target:** commit ${src.commit}${src.uncommitted.length ? ` plus uncommitted changes to ${src.uncommitted.join(', ')}` : ''}, built by \`node scripts/bootstrap.mjs\`.`,
    );
  L.push(
    `- **Jobs:** ${g?.fio ?? 'fio'}, \`--ioengine=libaio --direct=1 --time_based --runtime=${res.runtime_s} --ramp_time=${res.ramp_s} --numjobs=1\` on the raw disk` +
      (res.prefill
        ? '; before the jobs each LUN is written once end to end (1 MiB sequential, qd8), so no target reads never-written memory.'
        : '; no prefill.') +
      (res.warmup_s
        ? ` Then ${res.warmup_s} s of unmeasured mixed I/O (randrw, 4–128 KiB, qd8) on each target before its first job: a new Node daemon runs its first seconds unoptimised.`
        : ''),
  );
  const rounds = res.rounds ?? 1;
  L.push(
    rounds > 1
      ? `- **Rounds:** ${rounds}, interleaved in the one VM boot: each round sets up every target in turn, runs every job against it and tears it down; the order of the targets is rotated by one each round (round r starts with the r-th target). Cells are the median over the rounds with the spread (min–max) beneath; ratios are taken per round (rdma-target against that round's best peer), then their median and spread.`
      : '- **Rounds:** 1 (a single pass: no spread, and the ratios are single samples; see "How to run").',
  );
  L.push(...loadLines(res.concurrency));
  L.push('');
  L.push('Everything is emulated: absolute figures mean nothing outside this VM. Compare targets side by side within one run.');
  L.push('');
  L.push('## How to run');
  L.push('');
  L.push(
    '- `npm run bench`: all eight targets (rdma-target, LIO and tgt over iSER and TCP; rdma-target SRP and LIO srpt), all six jobs, 3 interleaved rounds (`--rounds N` or `BENCH_ROUNDS`), one VM boot, about 15 minutes per round under TCG; rewrites this page, `iscsi.json` and `iscsi.svg`. On a shared machine `BENCH_LOCK=/path/to/lock` holds that lock (flock) for the VM run.',
  );
  L.push(
    "- A subset: `node scripts/bench/iscsi.mjs --only srp` (or `iser`, `tcp`, comma-separated) runs only those transports' targets; `BENCH_TARGETS`, `BENCH_JOBS`, `BENCH_RUNTIME` (seconds per job, default 8), `BENCH_PREFILL=0` narrow it further. " +
      'Add `--out DIR` so a development run does not replace the recorded numbers here, e.g. `BENCH_RUNTIME=3 BENCH_PREFILL=0 node scripts/bench/iscsi.mjs --only srp --out .cache/bench/dev`.',
  );
  L.push('- `--from-log FILE` renders the pages from a saved console log; `--render` re-renders this page and the chart from `iscsi.json` (no VM).');
  L.push(
    '- A/B of two builds of rdma-target alone, for development: `node scripts/bench/iscsi.mjs --ab REV_A REV_B` (a git revision, or `WORKTREE` for the checkout as it is; each revision is built in `.cache/bench/ab-<commit>`), both daemons in alternation in one VM boot, per job the median B/A ratio with its spread, in `.cache/bench/ab/ab.md`.',
  );
  L.push('- Where the CPU goes: [profile.md](profile.md) (`npm run bench:profile`).');
  L.push(
    "- Columns: one per target that ran — `rdma-target iSER`, `LIO iSER`, `tgt iSER`, `rdma-target TCP`, `LIO TCP`, `tgt TCP` (open-iscsi with ib_iser or iscsi_tcp to 10.77.0.1:3260), `rdma-target SRP` and `LIO srpt` (the kernel's ib_srp, `add_target` with `dest=10.77.0.1:5555` over RDMA/CM) — then one ratio per transport: rdma-target against the best peer on it (iSER, TCP: LIO or tgt; SRP: LIO srpt, tgt has no SRP). " +
      'A target that could not be set up shows `failed:` with the reason in every cell; the full reason and its logs are under "Failures and notes".',
  );
  L.push('');
  L.push('## Results');
  L.push('');
  L.push(
    'Cells: IOPS for the 4k qd32 jobs, MiB/s for the large-block jobs, mean latency (and IOPS) for qd1' +
      (rounds > 1 ? ', each the median over the rounds, with the lowest and highest round beneath' : '') +
      "; then, for the user-space targets (rdma-target, tgtd), **CPU-µs/IO**: the target process's CPU time " +
      (cpuSource(res) === 'schedstat'
        ? "(the scheduler's run time of all its threads, `/proc/PID/task/*/schedstat`)"
        : '(user + system of all its threads, `/proc/PID/stat`, in 10 ms units)') +
      ' over the measured part of the job (after the ramp) ÷ the I/Os fio completed in it. LIO works in the kernel; its CPU shows only in the guest-wide figure under "All numbers". ' +
      'Ratios compare the throughput (for qd1: IOPS, the inverse of mean latency) with the better of LIO and tgt on the same transport (SRP: with LIO srpt; tgt has no SRP)' +
      (rounds > 1 ? ', per round; the cell is their median, the spread beneath' : '') +
      ': **> 1 means rdma-target is faster**.' +
      (res.cpu_per_io_estimated
        ? ' (This recording predates the measured window: its CPU-µs/IO is the CPU over the whole fio run, ramp included, ÷ (IOPS × (runtime + ramp)).)'
        : ''),
  );
  L.push('');
  const shown = TARGETS.filter((t) => res.targets[t.key].status !== 'not run');
  const comps = COMPARISONS.filter((c) => res.targets[c.ours].status !== 'not run' || c.peers.some((k) => res.targets[k].status !== 'not run'));
  L.push(`| job | ${shown.map((t) => t.label).join(' | ')} | ${comps.map((c) => c.header).join(' | ')} |`);
  L.push(`|---|${shown.map(() => '---:').join('|')}|${comps.map(() => '---:').join('|')}|`);
  for (const j of jobs) {
    const cells = shown.map((t) => {
      const tr = res.targets[t.key];
      if (tr.status === 'failed' && !tr.jobs[j.key]) return `failed: ${short(tr.reason)}`;
      return cell(j, tr.jobs[j.key]);
    });
    L.push(`| ${j.label} | ${cells.join(' | ')} | ${comps.map((c) => ratio(res, j, c.ours, c.peers).text).join(' | ')} |`);
  }
  L.push('');
  const notRun = TARGETS.filter((t) => res.targets[t.key].status === 'not run');
  if (notRun.length) {
    L.push(
      `Not in this run: ${notRun.map((t) => t.label).join(', ')}${notRun.some((t) => t.transport === 'srp') && !res.command.includes('--only') && !res.command.includes('BENCH_TARGETS') ? ' (this recording predates the SRP rows)' : ''}.`,
    );
    L.push('');
  }
  if (shown.some((t) => Object.values(res.targets[t.key].jobs).some((r) => r.conn_errors > 0))) {
    L.push(
      '⚠N: during this job the initiator logged N connection error(s) (iSCSI: dmesg "detected conn error"; SRP: ib_srp reconnects and failed completions) and logged in again; the figure includes that recovery. See "Failures and notes".',
    );
    L.push('');
  }
  // 128k read against raw RDMA WRITE.
  const raw = res.raw_rdma;
  const runs = raw.runs.filter((r) => r.status === 'ok');
  if (runs.length && jobs.some((j) => j.key === 'read-128k-qd8')) {
    const pct = RDMA_TARGETS.filter((k) => res.targets[k].status !== 'not run').map((k) => {
      const r = res.targets[k].jobs['read-128k-qd8'];
      return `${res.targets[k].label} ${r?.status === 'ok' ? `**${((100 * r.MiBps) / raw.mean_MiBps).toFixed(0)} %** (${fmt1(r.MiBps)} MiB/s)` : 'n/a'}`;
    });
    L.push(
      `**read 128k qd8 over RDMA (iSER, SRP) as a share of raw RDMA WRITE bandwidth at 128 KiB** (${fmt1(raw.mean_MiBps)} MiB/s, ` +
        `${runs.length > 1 ? 'the mean of ' : ''}${runs.map((r) => `${fmt1(r.bw_avg_MiBps)} ${r.run}`).join(' and ')} the targets; \`ib_write_bw -R -d rxe0 -s 131072 -D 5\` as server, ` +
        `\`ib_write_bw -R -d rxe1 -s 131072 -D 5 10.77.0.1\` as client, in the same VM): ${pct.join(' · ')}.`,
    );
  } else if (runs.length) {
    L.push(
      `**Raw RDMA WRITE 128 KiB** (\`ib_write_bw -R\`, rxe1 → 10.77.0.1): ${fmt1(raw.mean_MiBps)} MiB/s (${runs.map((r) => `${r.run}: ${fmt1(r.bw_avg_MiBps)}`).join(', ')}); read 128k qd8 was not run.`,
    );
  } else {
    L.push(`**Raw RDMA WRITE 128 KiB:** ${raw.runs.length ? `failed (${raw.runs.map((r) => mdEscape(r.reason)).join('; ')})` : 'not measured'}.`);
  }
  L.push('');
  L.push('![throughput relative to the best target per job](iscsi.svg)');
  L.push('');
  // Details.
  L.push('## All numbers');
  L.push('');
  L.push(
    `Latency is fio's total latency (submission to completion) in µs${rounds > 1 ? '; every figure is the median over the rounds' : ''}. Guest CPU: both vCPUs busy, % over the measured part of the job; target CPU-µs/IO: the user-space target process (rdma-target, tgtd), as in the table above; guest CPU-µs/IO: all busy CPU time of the guest (initiator, fio and target, both vCPUs) ÷ I/Os, the one CPU figure that covers LIO.`,
  );
  L.push('');
  L.push('| target | job | IOPS | MiB/s | mean µs | p50 µs | p99 µs | p99.9 µs | guest CPU % | target CPU-µs/IO | guest CPU-µs/IO |');
  L.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const t of shown) {
    for (const j of jobs) {
      const r = res.targets[t.key].jobs[j.key];
      if (!r) continue;
      if (r.status !== 'ok') {
        L.push(`| ${t.label} | ${j.label} | failed: ${short(r.reason)} ||||||||`);
        continue;
      }
      const n = (v) => (v == null ? '—' : fmtInt(v));
      L.push(
        `| ${t.label} | ${j.label} | ${fmtInt(r.iops)} | ${fmt1(r.MiBps)} | ${n(r.lat_mean_us)} | ${n(r.lat_p50_us)} | ${n(r.lat_p99_us)} | ${n(r.lat_p999_us)} | ` +
          `${r.guest_cpu_busy_pct == null ? '—' : +r.guest_cpu_busy_pct.toFixed(1)} | ${n(r.target_cpu_us_per_io)} | ${n(r.guest_cpu_us_per_io)} |`,
      );
    }
  }
  L.push('');
  if (rounds > 1) {
    L.push('### Every round');
    L.push('');
    L.push('The headline figure of each round (IOPS, MiB/s; qd1: mean latency in µs), in the order the rounds ran; `#k`: the target ran k-th in that round.');
    L.push('');
    L.push(`| target | job | ${Array.from({ length: rounds }, (_, i) => `round ${i + 1}`).join(' | ')} |`);
    L.push(`|---|---|${Array.from({ length: rounds }, () => '---:').join('|')}|`);
    const order = res.targets_order ?? shown.map((t) => t.key);
    for (const t of shown) {
      for (const j of jobs) {
        const r = res.targets[t.key].jobs[j.key];
        if (!r?.runs) continue;
        const cells = Array.from({ length: rounds }, (_, i) => {
          const run = r.runs.find((x) => x.round === i + 1);
          const pos = order.indexOf(t.key) < 0 ? '' : ` #${((((order.indexOf(t.key) - i) % order.length) + order.length) % order.length) + 1}`;
          if (run?.status !== 'ok') return `failed${pos}`;
          const v = j.metric === 'iops' ? fmtInt(run.iops) : j.metric === 'bw' ? fmt1(run.MiBps) : fmtInt(run.lat_mean_us);
          return `${v}${pos}`;
        });
        L.push(`| ${t.label} | ${j.label} | ${cells.join(' | ')} |`);
      }
    }
    L.push('');
  }
  L.push('## Sessions');
  L.push('');
  L.push('As negotiated (`iscsiadm -m session -P2`) and as the block layer saw the disk; set-up time is from starting the target to the disk appearing.');
  L.push('');
  L.push(
    'Connection errors: what the initiator logged (dmesg "detected conn error") over the whole target run, prefill included; logins: sessions rdma-target saw (one is expected).',
  );
  L.push('');
  const iscsiShown = shown.filter((t) => t.transport !== 'srp');
  const srpShown = shown.filter((t) => t.transport === 'srp');
  // One row per target: set-up, prefill, errors and logins, then the transport's own cells.
  const sessionRow = (t, cells) => {
    const tr = res.targets[t.key];
    if (tr.status !== 'ok') return `| ${t.label} | failed (${tr.phase ?? 'setup'}): ${short(tr.reason)} ||||||||||`;
    const prefill = `${tr.prefill_MiBps == null ? '—' : fmt1(tr.prefill_MiBps)}${tr.prefill_MiB != null && tr.prefill_MiB < 512 ? ` (${Math.round(tr.prefill_MiB)} MiB in 180 s)` : ''}`;
    return `| ${t.label} | ${tr.setup_s ?? '—'} | ${prefill} | ${tr.conn_errors ?? '?'} | ${tr.target_logins ?? '—'} | ${cells(tr.negotiated ?? {}, tr).join(' | ')} |`;
  };
  if (iscsiShown.length) {
    L.push(
      '| target | set-up s | prefill MiB/s | connection errors | logins | ImmediateData | InitialR2T | FirstBurstLength | MaxBurstLength | MaxXmitDataSegmentLength | max_sectors_kb |',
    );
    L.push('|---|---:|---:|---:|---:|---|---|---:|---:|---:|---:|');
    for (const t of iscsiShown) {
      L.push(
        sessionRow(t, (n, tr) => [
          n.ImmediateData ?? '?',
          n.InitialR2T ?? '?',
          n.FirstBurstLength ?? '?',
          n.MaxBurstLength ?? '?',
          n.MaxXmitDataSegmentLength ?? '?',
          tr.disk?.max_sectors_kb ?? '?',
        ]),
      );
    }
    L.push('');
  }
  if (srpShown.length) {
    L.push(
      "SRP logins as ib_srp set them up (its SCSI host's attributes); connection errors: ib_srp reconnects and failed work completions in dmesg over the whole target run; channels: the RDMA channels rdma-target saw come up (one login is `ch_count` of them).",
    );
    L.push('');
    L.push(
      '| target | set-up s | prefill MiB/s | connection errors | channels | ch_count | req_lim | can_queue | cmd_sg_entries | sg_tablesize | max_sectors_kb |',
    );
    L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const t of srpShown) {
      L.push(
        sessionRow(t, (n, tr) => [
          n.ch_count || '?',
          n.req_lim || '?',
          n.can_queue || '?',
          n.cmd_sg_entries || '?',
          n.sg_tablesize || '?',
          tr.disk?.max_sectors_kb ?? '?',
        ]),
      );
    }
    L.push('');
  }
  // Failures and notes.
  const problems = [];
  for (const t of TARGETS) {
    const tr = res.targets[t.key];
    if (tr.status === 'failed') problems.push({ head: `${t.label}: set-up failed (${tr.phase ?? 'setup'}): ${tr.reason}`, log: tr.log, dmesg: tr.dmesg });
    for (const fr of tr.failed_rounds ?? [])
      problems.push({ head: `${t.label}: round ${fr.round}: set-up failed (${fr.phase ?? 'setup'}): ${fr.reason}`, log: fr.log, dmesg: fr.dmesg });
    const failedSetup = new Set((tr.failed_rounds ?? []).map((fr) => fr.round));
    for (const [jk, r] of Object.entries(tr.jobs)) {
      if (r.status !== 'ok' && tr.status === 'ok') problems.push({ head: `${t.label} ${jk}: ${r.reason}` });
      else if (r.status === 'ok' && (res.rounds ?? 1) > 1) {
        for (const run of r.runs ?? [])
          if (run.status !== 'ok' && !failedSetup.has(run.round)) problems.push({ head: `${t.label} ${jk}, round ${run.round}: ${run.reason}` });
      }
    }
    for (const l of tr.failure_logs ?? []) problems.push({ head: `${t.label}: log at the first failed job (${l.job})`, log: l.target_log, dmesg: l.dmesg });
    for (const nt of tr.notes ?? []) problems.push({ head: `${t.label}: ${nt.text}`, log: nt.log });
    const srp = t.transport === 'srp';
    const expectedLogins = srp ? Number(tr.negotiated?.ch_count) || 1 : 1;
    if (tr.conn_errors > 0 || tr.target_logins > expectedLogins) {
      problems.push({
        head: `${t.label}: the initiator logged ${tr.conn_errors} connection error(s)${tr.target_logins != null ? `; rdma-target saw ${tr.target_logins} ${srp ? 'channel(s) come up' : 'login(s)'}` : ''} during the run (it recovered; the jobs went on)`,
        dmesg: tr.kernel_events,
        log: t.impl === 'rdma-target' ? tr.log_tail : undefined,
      });
    }
  }
  if (problems.length || res.notes.length) {
    L.push('## Failures and notes');
    L.push('');
    for (const n of res.notes) L.push(`- ${n}`);
    const printed = new Set();
    for (const p of problems) {
      L.push(`- ${mdEscape(p.head)}`);
      for (const [what, text, n] of [
        ['target log', p.log, 25],
        ['dmesg', p.dmesg, 12],
      ]) {
        const body = String(text ?? '').trimEnd();
        if (!body) continue;
        if (printed.has(body)) {
          L.push(`  (${what}: as above)`);
          continue;
        }
        printed.add(body);
        L.push('');
        L.push(`  ${what} (tail):`);
        L.push('  ```');
        for (const line of body.split('\n').slice(-n)) L.push(`  ${line.replace(/```/g, "'''")}`);
        L.push('  ```');
      }
    }
    L.push('');
  }
  L.push('Raw numbers: [iscsi.json](iscsi.json). Scripts: `scripts/bench/iscsi.mjs` (host) and `scripts/bench/iscsi-guest.sh` (guest).');
  L.push('');
  return L.join('\n');
}

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Grouped bars: per job, each target's headline throughput as a % of the best target's. */
export function renderSvg(res) {
  const jobs = JOBS.filter((j) => res.jobs.some((x) => x.key === j.key));
  const targets = TARGETS.filter((t) => res.targets[t.key].status !== 'not run');
  const barW = 20,
    gap = 3,
    groupGap = 34;
  const groupW = targets.length * (barW + gap) - gap;
  const left = 56,
    top = 104,
    plotH = 260,
    bottom = 96;
  const width = Math.max(760, left + jobs.length * (groupW + groupGap) + 20);
  const height = top + plotH + bottom;
  const y = (pct) => top + plotH - (plotH * pct) / 100;
  const S = [];
  S.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="11">`,
  );
  S.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  S.push(
    `<text x="${left}" y="22" font-size="15" font-weight="bold">iSCSI / iSER / SRP in the soft-RoCE VM: throughput relative to the best target, per job</text>`,
  );
  S.push(
    `<text x="${left}" y="40" fill="#555">higher is better · bar label: IOPS (4k, qd1) or MiB/s (128k, 1M) · ${esc(res.date.slice(0, 10))}, ${res.runtime_s} s per job${(res.rounds ?? 1) > 1 ? ` · median of ${res.rounds} rounds, line: min–max` : ''}${res.concurrency?.samples_with_other_vms ? ' · another VM was running on the host' : ''}</text>`,
  );
  // Legend.
  targets.forEach((t, i) => {
    const lx = left + i * 118;
    S.push(`<rect x="${lx}" y="50" width="12" height="12" fill="${t.color}"/><text x="${lx + 16}" y="60">${esc(t.label)}</text>`);
  });
  // Axis and grid.
  for (let p = 0; p <= 100; p += 25) {
    S.push(`<line x1="${left}" x2="${width - 10}" y1="${y(p)}" y2="${y(p)}" stroke="${p === 0 ? '#333' : '#ddd'}"/>`);
    S.push(`<text x="${left - 6}" y="${y(p) + 4}" text-anchor="end" fill="#555">${p} %</text>`);
  }
  jobs.forEach((j, gi) => {
    const gx = left + 14 + gi * (groupW + groupGap);
    const vals = targets.map((t) => res.targets[t.key].jobs[j.key]).map((r) => (r?.status === 'ok' ? headline(j, r) : null));
    const best = Math.max(0, ...vals.filter((v) => v != null));
    targets.forEach((t, i) => {
      const x = gx + i * (barW + gap);
      const r = res.targets[t.key].jobs[j.key];
      const v = vals[i];
      if (v == null) {
        const why = r ? r.reason : (res.targets[t.key].reason ?? 'no result');
        S.push(
          `<g><title>${esc(`${t.label}, ${j.label}: failed: ${why}`)}</title><text x="${x + barW / 2}" y="${y(0) - 5}" text-anchor="middle" fill="#c00" font-weight="bold">✗</text></g>`,
        );
        return;
      }
      const pct = best > 0 ? (100 * v) / best : 0;
      // The spread over the rounds: a line from the lowest to the highest round (clipped at 110 %).
      const whisker = (cx, rr) => {
        const f = j.metric === 'bw' ? 'MiBps' : 'iops';
        if (!(rr.rounds_ok > 1) || rr.min?.[f] == null || !(best > 0)) return '';
        const lo = Math.min(110, (100 * rr.min[f]) / best),
          hi = Math.min(110, (100 * rr.max[f]) / best);
        return `<line x1="${cx}" x2="${cx}" y1="${y(lo).toFixed(1)}" y2="${y(hi).toFixed(1)}" stroke="#222" stroke-width="1.5"/>`;
      };
      const label = j.metric === 'bw' ? fmt1(v) : v >= 1000 ? `${(v / 1000).toFixed(1)}k` : fmtInt(v);
      const tip =
        j.metric === 'lat'
          ? `${fmtInt(r.lat_mean_us)} µs mean, ${fmtInt(r.iops)} IOPS`
          : j.metric === 'bw'
            ? `${fmt1(r.MiBps)} MiB/s`
            : `${fmtInt(r.iops)} IOPS`;
      const ce = r.conn_errors > 0 ? `; ${r.conn_errors} connection error(s) during the job` : '';
      S.push(
        `<g><title>${esc(`${t.label}, ${j.label}: ${tip} (${pct.toFixed(0)} % of the best)${ce}`)}</title>` +
          `<rect x="${x}" y="${y(pct).toFixed(1)}" width="${barW}" height="${(y(0) - y(pct)).toFixed(1)}" fill="${t.color}"/>` +
          whisker(x + barW / 2, r) +
          `<text transform="translate(${x + barW / 2 + 4},${(y(pct) - 4).toFixed(1)}) rotate(-90)" font-size="10" fill="#222">${esc(label)}</text></g>`,
      );
    });
    S.push(`<text x="${gx + groupW / 2}" y="${y(0) + 16}" text-anchor="middle" font-weight="bold">${esc(j.label.replace(' (latency)', ''))}</text>`);
    S.push(`<text x="${gx + groupW / 2}" y="${y(0) + 30}" text-anchor="middle" fill="#555">${j.metric === 'bw' ? 'MiB/s' : 'IOPS'}</text>`);
  });
  const raw = res.raw_rdma;
  if (raw.mean_MiBps) {
    S.push(
      `<text x="${left}" y="${height - 30}" fill="#333">raw RDMA WRITE 128 KiB in the same VM (ib_write_bw -R): ${fmt1(raw.mean_MiBps)} MiB/s; read 128k qd8 as a share of it: ${RDMA_TARGETS.filter(
        (k) => res.targets[k].status !== 'not run',
      )
        .map((k) => {
          const r = res.targets[k].jobs['read-128k-qd8'];
          return `${res.targets[k].label} ${r?.status === 'ok' ? `${((100 * r.MiBps) / raw.mean_MiBps).toFixed(0)} %` : 'n/a'}`;
        })
        .join(', ')}</text>`,
    );
  }
  S.push(
    `<text x="${left}" y="${height - 12}" fill="#777">✗ = failed (hover for the reason). Numbers: docs/benchmarks/iscsi.json · scripts/bench/iscsi.mjs</text>`,
  );
  S.push('</svg>');
  return `${S.join('\n')}\n`;
}

// ------------------------------------------------------------------ main

/** Which rdma-target was measured: the commit, and uncommitted changes to its sources. */
function sourceState() {
  const git = (args) => spawnSync('git', args, { cwd: root, encoding: 'utf8' });
  const head = git(['rev-parse', '--short', 'HEAD']);
  const dirty = git(['status', '--porcelain', '--', 'lib', 'native', 'binding.gyp', 'tsconfig.json']);
  return {
    commit: head.status === 0 ? head.stdout.trim() : null,
    uncommitted:
      dirty.status === 0
        ? dirty.stdout
            .split('\n')
            .filter(Boolean)
            .map((l) => l.slice(3))
        : [],
  };
}

/** A results object from an iscsi.json, with the targets it predates marked as not run. */
/** A results object from an iscsi.json, with the targets it predates marked as not run. A
 *  recording from before the rounds (one pass, no "rounds") reads as one round, its target
 *  CPU per I/O estimated from the CPU seconds it kept (measured over the whole fio run, ramp
 *  included: CPU ÷ (IOPS × (runtime + ramp))). */
export function loadResults(path) {
  const res = JSON.parse(readFileSync(path, 'utf8'));
  for (const t of TARGETS) {
    res.targets[t.key] ??= { label: t.label, impl: t.impl, transport: t.transport, status: 'not run', jobs: {} };
  }
  if (res.rounds == null) {
    res.rounds = 1;
    res.cpu_per_io_estimated = true;
    for (const t of Object.values(res.targets)) {
      for (const [k, r] of Object.entries(t.jobs)) {
        if (r.status !== 'ok') {
          t.jobs[k] = { ...r, runs: [{ round: 1, ...r }] };
          continue;
        }
        const cpuUs = r.target_process_cpu_s != null && r.iops > 0 ? (r.target_process_cpu_s * 1e6) / (r.iops * (res.runtime_s + res.ramp_s)) : null;
        const run = { round: 1, ...r, target_cpu_us_per_io: cpuUs, guest_cpu_us_per_io: null };
        t.jobs[k] = { ...summariseRuns([run]), rw: r.rw, bs: r.bs, iodepth: r.iodepth };
      }
    }
  }
  return res;
}

// ------------------------------------------------------------------ A/B of two builds

const git = (args, cwd = root) => spawnSync('git', args, { cwd, encoding: 'utf8' });

/** A revision built for the A/B: WORKTREE is this checkout (built by the bench's own
 *  bootstrap); anything else is checked out in .cache/bench/ab-<commit> and built there once. */
function abBuild(rev) {
  if (rev === 'WORKTREE') {
    const st = sourceState();
    return { rev, commit: st.commit, uncommitted: st.uncommitted, dir: root };
  }
  const r = git(['rev-parse', '--verify', '--quiet', `${rev}^{commit}`]);
  if (r.status !== 0) fail(`--ab: ${rev} is not a git revision here (or say WORKTREE)`);
  const sha = r.stdout.trim();
  const dir = join(cacheDir, `ab-${sha.slice(0, 12)}`);
  if (!existsSync(join(dir, '.git'))) {
    console.log(`bench: git worktree add --detach ${relative(root, dir)} ${sha.slice(0, 12)}`);
    const w = spawnSync('git', ['worktree', 'add', '--detach', dir, sha], { cwd: root, stdio: 'inherit' });
    if (w.status !== 0) fail(`git worktree add for ${rev} failed`);
  }
  const stamp = join(dir, '.cache', 'bench-built');
  if (!existsSync(stamp) || readFileSync(stamp, 'utf8').trim() !== sha || !existsSync(join(dir, 'dist', 'cli', 'main.js'))) {
    console.log(`bench: building ${rev} (${sha.slice(0, 12)}): node scripts/bootstrap.mjs in ${relative(root, dir)}`);
    const b = spawnSync(process.execPath, ['scripts/bootstrap.mjs'], { cwd: dir, stdio: 'inherit' });
    if (b.status !== 0) fail(`node scripts/bootstrap.mjs failed in ${relative(root, dir)} (${rev})`);
    mkdirSync(dirname(stamp), { recursive: true });
    writeFileSync(stamp, `${sha}\n`);
  }
  return { rev, commit: sha.slice(0, 12), uncommitted: [], dir };
}

/** Per job and transport: B against A, the ratio taken per round, its median and spread. */
export function buildAb(o, text, vm, notes) {
  const { records } = parseRecords(text);
  const env = records.find((r) => r.type === 'env') ?? null;
  const done = records.find((r) => r.type === 'done');
  const vmEnded = vm.code === 0 && done ? null : `the VM run ended early (run.sh exit ${vm.code}${vm.code === 124 ? ', timeout' : ''})`;
  if (vmEnded) notes.push(vmEnded);
  const builds = records.find((r) => r.type === 'ab_builds')?.builds ?? o.abBuilds;
  const variants = {};
  const rows = [];
  for (const key of o.targets) {
    const t = TARGETS.find((x) => x.key === key);
    for (const v of ['A', 'B']) {
      variants[`${key}@${v}`] = buildTarget(`${key}@${v}`, { label: `${t.label} ${v}`, impl: t.impl, transport: t.transport }, records, o, vmEnded, true);
    }
    for (const j of JOBS.filter((x) => o.jobs.includes(x.key))) {
      const a = variants[`${key}@A`].jobs[j.key];
      const b = variants[`${key}@B`].jobs[j.key];
      const per = [];
      const cpu = [];
      for (const ra of a.runs) {
        const rb = b.runs.find((x) => x.round === ra.round);
        if (ra.status !== 'ok' || rb?.status !== 'ok') continue;
        per.push(headline(j, rb) / headline(j, ra));
        if (ra.target_cpu_us_per_io > 0 && rb.target_cpu_us_per_io != null) cpu.push(rb.target_cpu_us_per_io / ra.target_cpu_us_per_io);
      }
      rows.push({
        target: key,
        job: j.key,
        label: `${t.label}, ${j.label}`,
        metric: j.metric,
        a,
        b,
        ratio: { median: median(per), min: minOf(per), max: maxOf(per), rounds: per },
        cpu_ratio: { median: median(cpu), min: minOf(cpu), max: maxOf(cpu), rounds: cpu },
      });
    }
  }
  return {
    benchmark: 'iscsi-ab',
    date: new Date().toISOString(),
    command: commandLine(o),
    vm_command: `bash scripts/vm/run.sh --timeout ${o.vmTimeout} -- ${guestArgs(o)
      .map((x) => (/\s/.test(x) ? `'${x}'` : x))
      .join(' ')}`,
    runtime_s: o.runtime,
    ramp_s: o.ramp,
    rounds: o.rounds,
    prefill: o.prefill,
    warmup_s: o.warmup,
    builds,
    guest: env,
    vm: { exit_code: vm.code, wall_s: vm.wall_s, guest_elapsed_s: done?.elapsed_s ?? null },
    concurrency: vm.concurrency,
    rows,
    variants,
    notes,
  };
}

export function renderAb(res) {
  const [A, B] = res.builds;
  const desc = (b) => `\`${b.rev}\` = ${b.commit ?? '?'}${b.uncommitted?.length ? ` + uncommitted changes to ${b.uncommitted.join(', ')}` : ''}`;
  const L = ['# A/B: two builds of rdma-target in one VM boot', ''];
  L.push(`- **Date:** ${res.date.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}; **command:** \`${res.command}\``);
  L.push(`- **A:** ${desc(A)}; **B:** ${desc(B)}`);
  L.push(
    `- **Rounds:** ${res.rounds}, A and B alternating (A first in odd rounds, B first in even ones), a fresh daemon for each; ${res.runtime_s} s per job after a ${res.ramp_s} s ramp${res.prefill ? ', LUN prefilled' : ', no prefill'}${res.warmup_s ? `, ${res.warmup_s} s warm-up before the first job` : ', no warm-up'}.`,
  );
  L.push(...loadLines(res.concurrency));
  L.push('');
  L.push(
    "B/A: B's throughput (qd1: IOPS, the inverse of mean latency) over A's, taken per round, then the median and the spread (min–max) over the rounds: **> 1 means B is faster**. CPU B/A: the same for the target process's CPU-µs/IO: **< 1 means B spends less CPU per I/O**.",
  );
  L.push('');
  L.push('| target, job | A (median) | B (median) | B/A | B/A per round | CPU-µs/IO A | CPU-µs/IO B | CPU B/A |');
  L.push('|---|---:|---:|---:|---|---:|---:|---:|');
  const job = (r) => JOBS.find((j) => j.key === r.job);
  const f2 = (x) => (x == null ? '—' : x.toFixed(2));
  for (const r of res.rows) {
    const sp = (st) => (st.rounds.length > 1 ? ` (${f2(st.min)}–${f2(st.max)})` : '');
    L.push(
      `| ${r.label} | ${cell(job(r), r.a).replace(/<br>[^<]*CPU-µs\/IO/, '')} | ${cell(job(r), r.b).replace(/<br>[^<]*CPU-µs\/IO/, '')} | ` +
        `**${f2(r.ratio.median)}**${sp(r.ratio)} | ${r.ratio.rounds.map(f2).join(', ') || '—'} | ` +
        `${r.a.target_cpu_us_per_io == null ? '—' : fmtInt(r.a.target_cpu_us_per_io)} | ${r.b.target_cpu_us_per_io == null ? '—' : fmtInt(r.b.target_cpu_us_per_io)} | ${f2(r.cpu_ratio.median)}${sp(r.cpu_ratio)} |`,
    );
  }
  L.push('');
  for (const n of res.notes) L.push(`- ${n}`);
  for (const [k, v] of Object.entries(res.variants)) {
    for (const fr of v.failed_rounds ?? []) L.push(`- ${k} round ${fr.round}: ${fr.phase ?? 'setup'} failed: ${mdEscape(fr.reason)}`);
    if (v.status === 'failed') L.push(`- ${k}: ${mdEscape(v.reason)}`);
  }
  L.push('');
  return L.join('\n');
}

// ------------------------------------------------------------------ main

async function main() {
  const o = options();
  if (o.render) {
    const res = loadResults(join(o.out, 'iscsi.json'));
    writeFileSync(join(o.out, 'iscsi.md'), renderMarkdown(res));
    writeFileSync(join(o.out, 'iscsi.svg'), renderSvg(res));
    console.log(`bench: re-rendered ${relative(root, o.out)}/iscsi.{md,svg} from its iscsi.json (${res.date})`);
    return;
  }
  const notes = [];
  let vm;
  if (o.fromLog) {
    const text = readFileSync(o.fromLog, 'utf8');
    vm = { text, code: /vm: command exited 0/.test(text) ? 0 : 1, wall_s: null, concurrency: null };
    notes.push(`rendered from a saved console log (${o.fromLog})`);
    const { records } = parseRecords(text);
    const env = records.find((r) => r.type === 'env');
    if (env) {
      const abRun = env.targets.some((t) => t.includes('@'));
      Object.assign(o, {
        targets: [...new Set(env.targets.map((t) => t.replace(/@.*$/, '')))],
        jobs: env.jobs,
        runtime: env.runtime_s,
        ramp: env.ramp_s,
        rounds: env.rounds ?? 1,
        ...(env.prefill != null ? { prefill: env.prefill } : {}),
      });
      if (abRun) {
        o.abBuilds = records.find((r) => r.type === 'ab_builds')?.builds ?? [
          { rev: 'A', dir: '?' },
          { rev: 'B', dir: '?' },
        ];
        o.ab = o.abBuilds.map((b) => b.rev);
      }
    }
  } else {
    prerequisites(notes);
    console.log('bench: node scripts/bootstrap.mjs');
    const b = spawnSync(process.execPath, [join(root, 'scripts', 'bootstrap.mjs')], { cwd: root, stdio: 'inherit' });
    if (b.status !== 0) {
      notes.push(`node scripts/bootstrap.mjs failed (exit ${b.status}); the existing dist/ build was benchmarked`);
      console.warn('bench: bootstrap failed; going on with the existing dist/');
    }
    if (!existsSync(join(root, 'dist', 'cli', 'main.js'))) notes.push('dist/cli/main.js is missing: rdma-target cannot start');
    o.source = sourceState();
    if (o.ab) o.abBuilds = o.ab.map(abBuild);
    vm = await runVm(o);
  }
  mkdirSync(o.out, { recursive: true });
  if (o.ab) {
    const res = buildAb(o, vm.text, vm, notes);
    writeFileSync(join(o.out, 'ab.json'), `${JSON.stringify(res, null, 2)}\n`);
    const md = renderAb(res);
    writeFileSync(join(o.out, 'ab.md'), md);
    console.log(`\nbench: wrote ${relative(root, o.out)}/ab.{json,md}\n`);
    console.log(
      md
        .split('\n')
        .filter((l) => l.startsWith('|'))
        .join('\n'),
    );
    process.exit(res.rows.some((r) => r.ratio.median != null) && (vm.code === 0 || o.fromLog) ? 0 : 1);
  }
  const res = buildResults(o, vm.text, vm, notes);
  res.ratios = Object.fromEntries(
    res.jobs.map((j) => [
      j.key,
      Object.fromEntries(
        COMPARISONS.map((c) => {
          const { text, ...rest } = ratio(
            res,
            JOBS.find((x) => x.key === j.key),
            c.ours,
            c.peers,
          );
          return [c.ours, rest];
        }),
      ),
    ]),
  );
  writeFileSync(join(o.out, 'iscsi.json'), `${JSON.stringify(res, null, 2)}\n`);
  const md = renderMarkdown(res);
  writeFileSync(join(o.out, 'iscsi.md'), md);
  writeFileSync(join(o.out, 'iscsi.svg'), renderSvg(res));
  console.log(`\nbench: wrote ${relative(root, o.out)}/iscsi.{json,md,svg}\n`);
  const table = md.split('\n').filter((l, i, a) => l.startsWith('|') && a.indexOf('## Results') < i && i < a.indexOf('## All numbers'));
  console.log(table.join('\n'));
  const anyResult = Object.values(res.targets).some((t) => Object.values(t.jobs).some((j) => j.status === 'ok'));
  process.exit(anyResult && (vm.code === 0 || o.fromLog) ? 0 : 1);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((e) => {
    console.error(e?.stack ?? e);
    process.exit(1);
  });
}
