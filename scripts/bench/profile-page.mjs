// docs/benchmarks/profile.md from the results of `npm run bench:profile` (scripts/bench/iscsi.mjs
// --profile): per target and job, the target process's CPU per I/O split by category (from
// scripts/bench/profile-summary.mjs in the guest), the whole system beside it, and rdma-target's
// JS by function from node --cpu-prof over the same window.
import { JOBS, TARGETS, loadLines } from './iscsi.mjs';

const f1 = (x) => (x == null ? '—' : x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1));
const esc = (s) => String(s ?? '').replace(/\|/g, '\\|');

// The categories in reading order: kernel inside system calls, kernel outside, then user space.
const ORDER = [
  'kernel: ibv_post_send (uverbs write into rxe: transmit, ICRC)',
  'kernel: ibv_post_recv (uverbs write)',
  'kernel: CQ re-arm (ibv_req_notify_cq)',
  'kernel: ibv_poll_cq (uverbs write)',
  'kernel: other verbs commands',
  'kernel: completion channel (read CQ events)',
  'kernel: epoll',
  'kernel: socket I/O',
  'kernel: file I/O (backstore)',
  'kernel: futex (thread wake-ups)',
  'kernel: eventfd / timerfd / signalfd',
  'kernel: RDMA/CM',
  'kernel: page faults',
  'kernel: outside system calls (interrupts, softirq)',
  'N-API glue (napi_*, v8impl)',
  'binding C++ (the addon, outside napi_*)',
  'libibverbs + rxe provider (user space)',
  'JS (JIT code, interpreter, V8 builtins)',
  'V8 runtime (IC, runtime calls, API)',
  'V8 compiler (JIT)',
  'GC (V8 heap: scavenge, mark-compact, sweeping)',
  'node / libuv',
  'malloc / free (libc, caller unknown)',
  'libc other (memcpy, ...; caller unknown)',
  'tgtd code',
  'profiler overhead (node --cpu-prof sampling)',
];
const rank = (name) => {
  const i = ORDER.indexOf(name);
  return i < 0 ? (name.startsWith('kernel') ? ORDER.indexOf('kernel: outside system calls (interrupts, softirq)') + 0.5 : ORDER.length) : i;
};

export function renderProfile(res) {
  const profiles = res.profiles ?? [];
  const label = (k) => TARGETS.find((t) => t.key === k)?.label ?? k;
  const jobLabel = (k) => JOBS.find((j) => j.key === k)?.label ?? k;
  // Columns: job by job, the targets side by side.
  const cols = [];
  for (const j of res.jobs.map((x) => x.key))
    for (const t of res.targets_order ?? []) {
      const p = profiles.find((x) => x.target === t && x.job === j);
      if (p) cols.push({ t, j, p, head: `${label(t)}, ${jobLabel(j).replace(' (latency)', '')}` });
    }
  const g = res.guest ?? {};
  const src = res.rdma_target_source;
  const L = [];
  L.push('# Where the CPU goes, per I/O: rdma-target and tgt over iSER');
  L.push('');
  L.push(`- **Date:** ${res.date.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}`);
  L.push(
    `- **Command:** \`${res.command}\` (= \`node scripts/bench/iscsi.mjs --profile\`, which runs \`node scripts/bootstrap.mjs\` and then \`${res.vm_command}\`)`,
  );
  if (src?.commit)
    L.push(`- **rdma-target:** commit ${src.commit}${src.uncommitted?.length ? ` plus uncommitted changes to ${src.uncommitted.join(', ')}` : ''}.`);
  L.push(
    `- **Where:** one boot of the soft-RoCE VM (qemu TCG, ${g.cpus ?? '?'} vCPUs, kernel ${g.kernel ?? '?'}), ${g.perf ?? 'perf'}; tgt ${g.tgt ?? ''}, node ${g.node ?? ''}, ${g.fio ?? 'fio'}.`,
  );
  L.push(
    `- **Jobs:** fio over the kernel's ib_iser, \`--ioengine=libaio --direct=1 --runtime=${res.runtime_s} --ramp_time=${res.ramp_s}\`, a 512 MiB RAM LUN (${res.prefill ? 'prefilled' : 'not prefilled'}); each target and job on a fresh target process, the targets alternating job by job. **A short run:** the profile covers ${profiles[0]?.window_s ?? '?'} s of each job.`,
  );
  L.push(...loadLines(res.concurrency));
  L.push('');
  L.push(
    'Everything is emulated (TCG): the absolute figures are far above real hardware; what counts is how the CPU divides, and rdma-target against tgt in the same boot.',
  );
  L.push('');
  L.push('## How it is measured');
  L.push('');
  L.push(
    "- During each job, after the ramp: `perf record -F 999 -g -a -e cpu-clock -k CLOCK_MONOTONIC -- sleep <runtime − 1>` in the guest (software clock events: TCG has no hardware counters; whole system, call graphs; kernel symbols from /proc/kallsyms with `kernel.kptr_restrict=0`, `kernel.perf_event_paranoid=-1`). The perf binary is Debian's linux-perf for the guest's 6.1 kernel, run from the host's root that the guest mounts.",
  );
  L.push(
    '- rdma-target runs under `node --cpu-prof --cpu-prof-interval 10000 --trace-gc` (V8\'s sampling profiler every 10 ms: each sample costs a signal and system calls, at 1 ms that cost was a large share of what is measured under TCG; GC pauses logged) and without `--debug`: its samples inside the perf window give JS by function. The profiler\'s own cost shows as "profiler overhead" in the sampled table and is part of the totals.',
  );
  L.push(
    "- At the same time `perf trace -s -p PID` (syscall tracepoints: count and time of every system call) and the process's CPU from `/proc/PID/task/*/schedstat`: the exact accounting.",
  );
  L.push(
    "- `scripts/bench/profile-summary.mjs` (in the guest) charges each sample of the target process (all its threads) to one category by its leaf frame: kernel frames by the system call they are in (the verbs commands by their `ib_uverbs_*` handler: `ibv_post_send` writes into the kernel, where rxe builds, checksums (ICRC) and transmits the packets in the caller's context), user frames by code (napi_*, the addon, libibverbs and the rxe provider, JIT code, V8 runtime, GC, node/libuv, libc); libc frames go to their caller where the stack shows one.",
  );
  L.push("- **µs per I/O** = samples ÷ 999 Hz ÷ (fio IOPS × the window). GC also runs on V8's worker threads; all threads of the process count.");
  L.push('');
  if (!cols.length) {
    L.push('**No profile was recorded** (see the notes below).');
    L.push('');
  } else {
    const ex = cols.filter((c) => c.p.exact);
    if (ex.length) {
      L.push('## CPU per I/O of the target process, exactly accounted (µs)');
      L.push('');
      L.push(
        'Over the profile window: the process\'s CPU time from the scheduler (`/proc/PID/task/*/schedstat`, all threads); the time inside each system call from the syscall tracepoints (`perf trace -s -p PID`, which adds its own cost to every call); "the rest" is CPU outside system calls (user space: JS, N-API, the binding, libibverbs and the rxe provider, GC, libc; plus interrupts taken in the process). GC pauses: the main thread\'s, from `node --trace-gc`. System calls in which a thread waits (epoll_wait, futex, ...) are listed with their time but not counted as CPU.',
      );
      L.push('');
      L.push(`| | ${ex.map((c) => c.head).join(' | ')} |`);
      L.push(`|---|${ex.map(() => '---:').join('|')}|`);
      const e = (c) => c.p.exact;
      L.push(`| **process CPU** | ${ex.map((c) => `**${f1(e(c).cpu_us_per_io)}**`).join(' | ')} |`);
      L.push(`| kernel inside system calls (not waiting) | ${ex.map((c) => f1(e(c).syscall_cpu_us_per_io)).join(' | ')} |`);
      L.push(`| the rest: user space and interrupts | ${ex.map((c) => f1(e(c).user_us_per_io)).join(' | ')} |`);
      L.push(
        `| of which GC pauses (main thread) | ${ex.map((c) => (e(c).gc ? `${f1(e(c).gc.pause_us_per_io)} (${e(c).gc.per_1000_io} per 1000 I/Os)` : '—')).join(' | ')} |`,
      );
      L.push(`| system calls per I/O | ${ex.map((c) => e(c).syscalls_per_io ?? '—').join(' | ')} |`);
      const names = [...new Set(ex.flatMap((c) => (e(c).syscalls ?? []).filter((x) => x.us_per_io >= 0.5 || x.calls_per_io >= 0.05).map((x) => x.name)))];
      for (const n of names) {
        const blocking = ex.some((c) => e(c).syscalls?.find((x) => x.name === n)?.blocking);
        L.push(
          `| ${n}${blocking ? ' (waits: not CPU)' : ''}: µs/IO (calls/IO, µs each) | ${ex
            .map((c) => {
              const x = e(c).syscalls?.find((y) => y.name === n);
              return x ? `${f1(x.us_per_io)} (${x.calls_per_io}, ${f1(x.avg_us)})` : '—';
            })
            .join(' | ')} |`,
        );
      }
      L.push(`| fio IOPS during the profile | ${ex.map((c) => f1(c.p.iops)).join(' | ')} |`);
      L.push('');
      L.push(
        'For rdma-target and tgt over iSER, `write` is the verbs commands: `ibv_post_send` (rxe builds, checksums and transmits the packets inside it) and re-arming the CQ; the rxe provider polls the CQ in user space.',
      );
      L.push('');
    }
    L.push('## Sampled: CPU per I/O of the target process, by category (µs)');
    L.push('');
    L.push(
      '**Read with care under TCG:** compare "guest busy % by /proc/stat / by perf" below: the `cpu-clock` samples see the guest mostly idle while the scheduler\'s accounting sees it mostly busy, because qemu TCG delivers a busy vCPU\'s timer interrupt late (at points where the guest re-enables interrupts or halts): samples pile up on `_raw_spin_unlock_irqrestore`, `finish_task_switch` and the idle loop, and user code (JS, N-API) is under-sampled. The categories and kernel function names show *where* the kernel time goes; the exact table above gives *how much*.',
    );
    L.push('');
    L.push(`| category | ${cols.map((c) => c.head).join(' | ')} |`);
    L.push(`|---|${cols.map(() => '---:').join('|')}|`);
    const names = [...new Set(cols.flatMap((c) => c.p.categories.map((x) => x.name)))].sort((a, b) => rank(a) - rank(b));
    const val = (c, n) => c.p.categories.find((x) => x.name === n)?.us_per_io;
    const sumWhere = (c, pred) => c.p.categories.filter((x) => pred(x.name)).reduce((a, x) => a + (x.us_per_io ?? 0), 0);
    for (const n of names) L.push(`| ${esc(n)} | ${cols.map((c) => f1(val(c, n))).join(' | ')} |`);
    L.push(`| **kernel, in all** | ${cols.map((c) => `**${f1(sumWhere(c, (n) => n.startsWith('kernel')))}**`).join(' | ')} |`);
    L.push(`| **user space, in all** | ${cols.map((c) => `**${f1(sumWhere(c, (n) => !n.startsWith('kernel')))}**`).join(' | ')} |`);
    L.push(`| **total** | ${cols.map((c) => `**${f1(c.p.target_us_per_io)}**`).join(' | ')} |`);
    L.push(`| fio IOPS during the profile | ${cols.map((c) => f1(c.p.iops)).join(' | ')} |`);
    // Cross-checks: the same process's CPU from /proc/PID/stat over the job's measured window,
    // and how busy the guest was by /proc/stat against the share of perf's time that was not idle.
    const job = (c) => res.targets?.[c.t]?.jobs?.[c.j];
    L.push(`| cross-check: target CPU-µs/IO by /proc/PID/stat (whole measured window) | ${cols.map((c) => f1(job(c)?.target_cpu_us_per_io)).join(' | ')} |`);
    const perfBusy = (c) => {
      const all = c.p.system.reduce((a, x) => a + (x.cpu_ms ?? 0), 0);
      const idle = c.p.system.find((x) => x.name === 'idle')?.cpu_ms ?? 0;
      return all > 0 ? (100 * (all - idle)) / all : null;
    };
    L.push(`| cross-check: guest busy % by /proc/stat / by perf | ${cols.map((c) => `${f1(job(c)?.guest_cpu_busy_pct)} / ${f1(perfBusy(c))}`).join(' | ')} |`);
    L.push(
      `| perf samples account for … CPUs (of ${g.cpus ?? '?'}); sample period median (max), ms | ${cols.map((c) => `${c.p.cpus_sampled}; ${c.p.period_ns ? `${(c.p.period_ns.median / 1e6).toFixed(2)} (${(c.p.period_ns.max / 1e6).toFixed(1)})` : '—'}`).join(' | ')} |`,
    );
    L.push(
      `| of which in rxe_* kernel code (any frame; the rows below overlap) | ${cols.map((c) => f1(c.p.inclusive?.find((x) => /rxe_/.test(x.name))?.us_per_io)).join(' | ')} |`,
    );
    for (const [re, name] of [
      [/send path/, 'rxe send path (rxe_requester, rxe_xmit_packet)'],
      [/receive path/, 'rxe receive path (rxe_rcv, rxe_responder, rxe_completer)'],
      [/ICRC/, 'ICRC (rxe_icrc_*, crc32*)'],
      [/softirq/, 'softirq'],
    ]) {
      L.push(`| of which ${name} | ${cols.map((c) => f1(c.p.inclusive?.find((x) => re.test(x.name))?.us_per_io)).join(' | ')} |`);
    }
    L.push('');
    L.push('## The whole guest per I/O (µs)');
    L.push('');
    L.push(
      "All CPU samples of the VM in the same window, by process: the target, the initiator side (fio and the kernel work done in its context: ib_iser, the block layer, rxe on the initiator's side), kernel threads, idle.",
    );
    L.push('');
    // The processes that matter: those over 1 µs/IO somewhere, the rest summed.
    const big = (x) => (x.us_per_io ?? 0) >= 1 || x.name === 'target' || x.name === 'idle';
    const groups = [...new Set(cols.flatMap((c) => c.p.system.filter(big).map((x) => x.name)))];
    L.push(`| process | ${cols.map((c) => c.head).join(' | ')} |`);
    L.push(`|---|${cols.map(() => '---:').join('|')}|`);
    for (const gname of groups) L.push(`| ${esc(gname)} | ${cols.map((c) => f1(c.p.system.find((x) => x.name === gname)?.us_per_io)).join(' | ')} |`);
    const rest = (c) => c.p.system.filter((x) => !groups.includes(x.name)).reduce((a, x) => a + (x.us_per_io ?? 0), 0);
    L.push(`| everything else | ${cols.map((c) => f1(rest(c))).join(' | ')} |`);
    L.push(
      `| **busy in all (not idle)** | ${cols.map((c) => `**${f1(c.p.system.filter((x) => x.name !== 'idle').reduce((a, x) => a + (x.us_per_io ?? 0), 0))}**`).join(' | ')} |`,
    );
    L.push('');
    L.push('## System calls of the target process (µs per I/O, kernel time)');
    L.push('');
    for (const c of cols) L.push(`- **${c.head}:** ${c.p.syscalls.map((x) => `${esc(x.name)} ${f1(x.us_per_io)}`).join(' · ')}`);
    L.push('');
    L.push('## Hottest kernel functions of the target process (leaf, µs per I/O)');
    L.push('');
    for (const c of cols)
      L.push(
        `- **${c.head}:** ${c.p.kernel_leaf
          .slice(0, 10)
          .map((x) => `\`${esc(x.name)}\` ${f1(x.us_per_io)}`)
          .join(' · ')}`,
      );
    L.push('');
    L.push('## Hottest user-space functions of the target process (leaf, µs per I/O)');
    L.push('');
    for (const c of cols)
      L.push(
        `- **${c.head}:** ${c.p.user_leaf
          .slice(0, 10)
          .map((x) => `\`${esc(x.name)}\` ${f1(x.us_per_io)}`)
          .join(' · ')}`,
      );
    L.push('');
    L.push('## Threads of the target process (µs per I/O)');
    L.push('');
    for (const c of cols) L.push(`- **${c.head}:** ${c.p.threads.map((x) => `${esc(x.name)} ${f1(x.us_per_io)}`).join(' · ')}`);
    L.push('');
    // (Only rdma-target runs under --cpu-prof.)
    const cp = cols.filter((c) => c.p.cpuprofile && c.t.startsWith('rdma-target'));
    if (cp.length) {
      L.push("## rdma-target's main thread by JS function (node --cpu-prof, same window)");
      L.push('');
      L.push(
        "Self time per I/O of the main thread as V8's sampler saw it (wall time while not idle: it includes the kernel time of the system calls a function makes, and time the vCPU was taken away, so it need not add up to the other figures; its SIGPROF reaches a busy thread late under TCG as the perf samples do, so shares lean towards code just after system calls). Native functions (no source position) are the binding's methods and node's built-ins: the N-API crossings seen from JS.",
      );
      L.push('');
      for (const c of cp) {
        const x = c.p.cpuprofile;
        L.push(
          `**${c.head}:** busy ${f1(x.busy_us_per_io)} µs/IO: JS ${f1(x.js_us_per_io)}, native ${f1(x.native_us_per_io)}, GC ${f1(x.gc_us_per_io)}, (program) ${f1(x.program_us_per_io)}${c.p.cpuprofile_note ? ` (${c.p.cpuprofile_note})` : ''}.`,
        );
        L.push('');
        L.push('| function | µs/IO | % of busy |');
        L.push('|---|---:|---:|');
        for (const fn of x.top) L.push(`| \`${esc(fn.name)}\` | ${f1(fn.us_per_io)} | ${fn.pct_of_busy ?? '—'} |`);
        L.push('');
      }
    }
  }
  const notes = [...(res.notes ?? [])];
  for (const t of Object.values(res.targets ?? {})) {
    if (t.status === 'failed') notes.push(`${t.label}: ${t.phase ?? 'setup'} failed: ${t.reason}`);
    for (const n of t.notes ?? []) notes.push(`${t.label}: ${n.text}`);
  }
  if (notes.length) {
    L.push('## Notes');
    L.push('');
    for (const n of notes) L.push(`- ${esc(n)}`);
    L.push('');
  }
  L.push(
    'Raw figures: [profile.json](profile.json). Scripts: `scripts/bench/iscsi.mjs --profile` (host), `scripts/bench/iscsi-guest.sh --profile 1` (guest), `scripts/bench/profile-summary.mjs` (the split).',
  );
  L.push('');
  return L.join('\n');
}
