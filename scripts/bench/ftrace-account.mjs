#!/usr/bin/env node
// Exact CPU accounting of one process from an ftrace text dump, per I/O: for each of its
// threads, the time it was on a CPU (sched_switch), split by where it was at the time: in user
// space, inside each system call (raw_syscalls sys_enter/sys_exit; read, write and ioctl named
// by the file they act on), in interrupts taken in its context (irq_handler_*, softirq_*,
// irq_vectors: the timer tick and IPIs), or in kernel functions probed by kprobe/kretprobe
// events named FN_in/FN_out (taken out of the call they ran in). A wait inside a system call
// (epoll_wait asleep) is off-CPU and not counted; the CPU an epoll_wait spends is. No sampling:
// under qemu TCG the cpu-clock samples land late and mostly in the idle loop (profile.md), the
// tracepoints do not.
//
// Optionally the main thread by V8's --cpu-prof samples over the same window (JS by function,
// the binding's native methods, GC), as shares of its busy samples.
//
// Run by scripts/bench/cpu-split-guest.sh (TRACE=1) in the soft-RoCE VM:
//   node scripts/bench/ftrace-account.mjs --trace FILE --tids 1,2,3 --ios N [--fds FILE]
//        [--unistd /usr/include/x86_64-linux-gnu/asm/unistd_64.h] [--cpuprofile FILE --from S --to S]
//        [--name LABEL] [--json | --record (the text, then the JSON on a line of its own after "RECORD ")]
// --fds: `ls -l /proc/PID/fd` of the process; --from/--to: CLOCK_MONOTONIC seconds of the window.
import { readFileSync, existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { cpuprofileSelf } from './profile-summary.mjs';

// rdma-core's rxe provider rings the send doorbell with a raw write() of struct ibv_post_send
// (32 bytes) on the uverbs fd; the other commands (the CQ's re-arm among them) go through
// rdma-core's ioctl interface, so they show as ioctl on uverbs.
const UVERBS_WRITES = new Map([[32n, 'POST_SEND doorbell: rxe transmits']]);
const FD_SYSCALLS = new Set([
  'read',
  'write',
  'ioctl',
  'readv',
  'writev',
  'sendmsg',
  'recvmsg',
  'sendto',
  'recvfrom',
  'pread64',
  'pwrite64',
  'io_submit',
  'io_getevents',
]);

/** x86-64 system call numbers from the kernel's uapi header (`#define __NR_read 0`). */
export function syscallNames(text) {
  const m = new Map();
  for (const r of text.matchAll(/^#define __NR_(\w+)\s+(\d+)/gm)) m.set(Number(r[2]), r[1]);
  return m;
}

/** `ls -l /proc/PID/fd` → fd number → what it is. */
export function fdKinds(text) {
  const m = new Map();
  for (const r of text.matchAll(/\s(\d+) -> (.*)$/gm)) {
    const t = r[2].trim();
    let k = t;
    if (/^\/dev\/infiniband\/uverbs/.test(t)) k = 'uverbs';
    else if (/^\/dev\/infiniband\/rdma_cm/.test(t)) k = 'rdma_cm';
    else if (/infinibandevent/.test(t)) k = 'CQ event channel';
    else if (/^anon_inode:\[?(\w+)/.test(t)) k = /^anon_inode:\[?(\w+)/.exec(t)[1];
    else if (/^socket:/.test(t)) k = 'socket';
    else if (/^pipe:/.test(t)) k = 'pipe';
    else if (/^\/dev\/sd|\.img$|\/lun/.test(t)) k = 'LUN file';
    m.set(Number(r[1]), k);
  }
  return m;
}

/** Ends the innermost open `place` and whatever opened inside it without an end seen. */
function popTo(s, place) {
  const i = s.irq.lastIndexOf(place);
  if (i >= 0) s.irq.length = i;
}

const LINE = /^\s*(.*)-(\d+)\s+\[(\d+)\]\s+\S+\s+(\d+\.\d+):\s+(\w+):\s?(.*)$/;

/**
 * Walk the trace: per thread, on-CPU time by place. Returns Map tid → {
 *   comm, onUs, byPlace: Map place → us, calls: Map syscall label → count, userBefore: Map syscall
 *   label → user µs run since the thread's previous system call or switch-in (what it did before
 *   calling it), faults: Map user|kernel → page faults, switchIn, sleeps, preempted }.
 */
export function account(text, tids, names = new Map(), fds = new Map()) {
  const want = new Set(tids);
  const th = new Map();
  const get = (tid) => {
    let s = th.get(tid);
    if (!s) {
      s = {
        comm: '',
        on: false,
        t: 0,
        base: null,
        pending: 0,
        irq: [],
        cur: null,
        onUs: 0,
        byPlace: new Map(),
        calls: new Map(),
        userRun: 0,
        userBefore: new Map(),
        faults: new Map(),
        switchIn: 0,
        sleeps: 0,
        preempted: 0,
      };
      th.set(tid, s);
    }
    return s;
  };
  const add = (m, k, v) => m.set(k, (m.get(k) ?? 0) + v);
  // Time since the thread's last event goes to where it was; before its first system call event
  // we do not know whether it was inside one, so that time is held as `pending`.
  const charge = (s, t) => {
    if (s.on) {
      const dt = (t - s.t) * 1e6;
      s.onUs += dt;
      const place = s.irq.length ? s.irq[s.irq.length - 1] : s.base;
      if (place == null) s.pending += dt;
      else add(s.byPlace, place, dt);
      if (place === 'user') s.userRun += dt;
    }
    s.t = t;
  };
  const label = (nr, args) => {
    const name = names.get(nr) ?? `NR ${nr}`;
    if (!FD_SYSCALLS.has(name) || !args) return name;
    const fd = Number(BigInt('0x' + args[0]));
    const kind = fds.get(fd) ?? `fd ${fd}`;
    if (name === 'write' && kind === 'uverbs') {
      const what = UVERBS_WRITES.get(BigInt('0x' + args[2]));
      return `write uverbs (${what ?? `${Number(BigInt('0x' + args[2]))} B command`})`;
    }
    return `${name} ${kind}`;
  };
  let first = null;
  let last = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const r = LINE.exec(line);
    if (!r) continue;
    const pid = Number(r[2]);
    const t = Number(r[4]);
    const ev = r[5];
    const body = r[6];
    first ??= t;
    last = t;
    if (ev === 'sched_switch') {
      const prev = Number(/prev_pid=(\d+)/.exec(body)?.[1]);
      const next = Number(/next_pid=(\d+)/.exec(body)?.[1]);
      if (want.has(prev)) {
        const s = get(prev);
        charge(s, t);
        s.on = false;
        const st = /prev_state=(\S+)/.exec(body)?.[1] ?? '';
        if (st.startsWith('R')) s.preempted++;
        else s.sleeps++;
      }
      if (want.has(next)) {
        const s = get(next);
        s.comm ||= /next_comm=(.*) next_pid=/.exec(body)?.[1] ?? '';
        s.t = t;
        s.on = true;
        s.switchIn++;
        s.userRun = 0;
      }
      continue;
    }
    if (!want.has(pid)) continue;
    const s = get(pid);
    s.comm ||= r[1].trim();
    if (!s.on) {
      // Its own event: it is on a CPU now (it was running when tracing began).
      s.on = true;
      s.t = t;
    }
    charge(s, t);
    if (ev === 'sys_enter') {
      const m = /^NR (\d+) \(([^)]*)\)/.exec(body);
      if (!m) continue;
      if (s.base == null) {
        add(s.byPlace, 'user', s.pending);
        s.pending = 0;
      }
      s.cur = label(Number(m[1]), m[2].split(', '));
      s.base = `sys:${s.cur}`;
      add(s.userBefore, s.cur, s.userRun);
      s.userRun = 0;
    } else if (ev === 'sys_exit') {
      const nr = Number(/^NR (\d+)/.exec(body)?.[1]);
      if (s.base == null) {
        // The first we see of this thread is the end of a call it was already in.
        s.cur = label(nr, null);
        add(s.byPlace, `sys:${s.cur}`, s.pending);
        s.pending = 0;
      } else if (s.cur != null) add(s.calls, s.cur, 1);
      s.base = 'user';
      s.cur = null;
      // A function probed inside the call whose return was missed must not outlive it.
      s.irq = s.irq.filter((p) => !p.startsWith('kernel '));
    } else if (ev === 'irq_handler_entry') s.irq.push('hardirq');
    else if (ev === 'softirq_entry') s.irq.push(`softirq ${/action=(\w+)/.exec(body)?.[1] ?? body}`);
    else if (ev.startsWith('page_fault_')) add(s.faults, ev.slice(11), 1);
    else if (ev.endsWith('_in'))
      s.irq.push(`kernel ${ev.slice(0, -3)}()`); // kprobe (cpu-split-guest.sh KPROBES)
    else if (ev.endsWith('_out')) popTo(s, `kernel ${ev.slice(0, -4)}()`);
    else if (ev.endsWith('_entry'))
      s.irq.push(`APIC ${ev.slice(0, -6)}`); // irq_vectors: timer, IPIs
    else if (ev.endsWith('_exit')) s.irq.pop();
  }
  for (const s of th.values()) if (s.on && last != null) charge(s, last);
  return { threads: th, windowUs: first == null ? 0 : (last - first) * 1e6, first, last };
}

// Where a thread waits rather than works, when it is asleep inside the call.
const WAITS = /^(epoll_wait|epoll_pwait2?|poll|ppoll|select|pselect6|futex|nanosleep|clock_nanosleep|io_getevents|rt_sigtimedwait)/;

/** Per-I/O summary of the whole process (all traced threads) and of each thread. */
export function summarise(acc, ios) {
  const per = (us) => +(us / ios).toFixed(1);
  const total = new Map();
  const calls = new Map();
  const before = new Map();
  const faults = new Map();
  let onUs = 0;
  const threads = [];
  for (const [tid, s] of acc.threads) {
    onUs += s.onUs;
    for (const [k, v] of s.byPlace) total.set(k, (total.get(k) ?? 0) + v);
    for (const [k, v] of s.calls) calls.set(k, (calls.get(k) ?? 0) + v);
    for (const [k, v] of s.userBefore) before.set(k, (before.get(k) ?? 0) + v);
    for (const [k, v] of s.faults) faults.set(k, (faults.get(k) ?? 0) + v);
    if (s.onUs > 0)
      threads.push({
        tid,
        comm: s.comm,
        cpu_us_per_io: per(s.onUs),
        user_us_per_io: per(s.byPlace.get('user') ?? 0),
        wakeups_per_io: +(s.switchIn / ios).toFixed(2),
        sleeps_per_io: +(s.sleeps / ios).toFixed(2),
        preempted_per_io: +(s.preempted / ios).toFixed(2),
      });
  }
  threads.sort((a, b) => b.cpu_us_per_io - a.cpu_us_per_io);
  let sys = 0;
  let irq = 0;
  let probed = 0;
  const places = [];
  for (const [k, v] of total) {
    if (k.startsWith('sys:')) sys += v;
    else if (k.startsWith('kernel ')) probed += v;
    else if (k !== 'user') irq += v;
    const name = k.startsWith('sys:') ? k.slice(4) : k;
    const c = calls.get(name);
    places.push({
      place: k === 'user' ? 'user space' : k.startsWith('sys:') || k.startsWith('kernel ') ? name : `interrupt: ${k}`,
      us_per_io: per(v),
      calls_per_io: c == null ? null : +(c / ios).toFixed(2),
      us_per_call: c ? +(v / c).toFixed(1) : null,
      waits: WAITS.test(name) || undefined,
    });
  }
  places.sort((a, b) => b.us_per_io - a.us_per_io);
  const allCalls = [...calls.values()].reduce((a, b) => a + b, 0);
  return {
    window_s: +(acc.windowUs / 1e6).toFixed(3),
    ios,
    cpu_us_per_io: per(onUs),
    user_us_per_io: per(total.get('user') ?? 0),
    syscall_us_per_io: per(sys),
    interrupt_us_per_io: per(irq),
    // Probed kernel functions (KPROBES), taken out of the system call or interrupt they ran in.
    probed_us_per_io: per(probed),
    syscalls_per_io: +(allCalls / ios).toFixed(2),
    places,
    user_before: [...before].sort((a, b) => b[1] - a[1]).map(([call, us]) => ({ call, us_per_io: per(us) })),
    page_faults_per_io: Object.fromEntries([...faults].map(([k, v]) => [k, +(v / ios).toFixed(2)])),
    threads,
  };
}

/** The main thread's user time by V8's samples over [from, to] (CLOCK_MONOTONIC s): shares. */
export function userSplit(profile, from, to) {
  const self = cpuprofileSelf(profile, from * 1e6, to * 1e6);
  const busy = [...self.byFunction].filter(([k]) => k !== '(idle)');
  const sum = busy.reduce((a, [, v]) => a + v, 0);
  if (sum === 0) return null;
  const special = new Set(['(program)', '(garbage collector)', '(root)']);
  const isJs = (k) => / \S+:\d+$/.test(k);
  const share = (v) => +((100 * v) / sum).toFixed(1);
  const of = (f) => busy.filter(([k]) => f(k)).reduce((a, [, v]) => a + v, 0);
  return {
    samples_ms: +(sum / 1e3).toFixed(1),
    idle_ms: +((self.byFunction.get('(idle)') ?? 0) / 1e3).toFixed(1),
    js_pct: share(of(isJs)),
    native_pct: share(of((k) => !isJs(k) && !special.has(k))),
    gc_pct: share(of((k) => k === '(garbage collector)')),
    program_pct: share(of((k) => k === '(program)')),
    top: busy
      .sort((a, b) => b[1] - a[1])
      .slice(0, 15)
      .map(([name, v]) => ({ name, pct: share(v) })),
  };
}

function main() {
  const { values: o } = parseArgs({
    options: {
      trace: { type: 'string' },
      tids: { type: 'string' },
      ios: { type: 'string' },
      fds: { type: 'string' },
      unistd: { type: 'string', default: '/usr/include/x86_64-linux-gnu/asm/unistd_64.h' },
      cpuprofile: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      main: { type: 'string' },
      name: { type: 'string', default: '' },
      json: { type: 'boolean', default: false },
      record: { type: 'boolean', default: false },
    },
  });
  if (!o.trace || !o.tids || !o.ios) throw new Error('ftrace-account: --trace FILE --tids A,B,... --ios N are required');
  const names = existsSync(o.unistd) ? syscallNames(readFileSync(o.unistd, 'utf8')) : new Map();
  const fds = o.fds ? fdKinds(readFileSync(o.fds, 'utf8')) : new Map();
  const tids = o.tids.split(',').map(Number);
  const ios = Number(o.ios);
  const acc = account(readFileSync(o.trace, 'utf8'), tids, names, fds);
  const rec = { name: o.name, ...summarise(acc, ios) };
  if (o.cpuprofile && existsSync(o.cpuprofile)) {
    rec.main_user_split = userSplit(JSON.parse(readFileSync(o.cpuprofile, 'utf8')), Number(o.from), Number(o.to));
  }
  if (o.json) {
    console.log(JSON.stringify(rec));
    return;
  }
  const L = [];
  L.push(
    `== ${rec.name}: ${ios} I/Os in the traced ${rec.window_s} s; on-CPU ${rec.cpu_us_per_io} µs/IO = user ${rec.user_us_per_io} + system calls ${rec.syscall_us_per_io} + interrupts ${rec.interrupt_us_per_io}${rec.probed_us_per_io ? ` + probed kernel functions ${rec.probed_us_per_io}` : ''}; ${rec.syscalls_per_io} system calls/IO`,
  );
  for (const p of rec.places) {
    if (p.us_per_io < 0.5 && !(p.calls_per_io >= 0.05)) continue;
    L.push(
      `   ${p.place.padEnd(48)} ${String(p.us_per_io).padStart(8)} µs/IO${p.calls_per_io != null ? `  ${String(p.calls_per_io).padStart(6)} calls/IO  ${String(p.us_per_call).padStart(7)} µs/call` : ''}${p.waits ? '  (on-CPU part of a call that may wait)' : ''}`,
    );
  }
  L.push(
    `   user time by the system call that ended it: ${rec.user_before
      .filter((b) => b.us_per_io >= 1)
      .map((b) => `${b.call} ${b.us_per_io}`)
      .join(' · ')}`,
  );
  L.push(`   page faults /IO: ${JSON.stringify(rec.page_faults_per_io)}`);
  for (const t of rec.threads)
    if (t.cpu_us_per_io >= 1)
      L.push(
        `   thread ${t.tid} ${t.comm}: ${t.cpu_us_per_io} µs/IO (user ${t.user_us_per_io}); wake-ups ${t.wakeups_per_io}/IO, sleeps ${t.sleeps_per_io}, preempted ${t.preempted_per_io}`,
      );
  const u = rec.main_user_split;
  if (u) {
    L.push(
      `   main thread user time by V8 samples (${u.samples_ms} ms busy, ${u.idle_ms} ms idle): JS ${u.js_pct} %, native ${u.native_pct} %, GC ${u.gc_pct} %, (program) ${u.program_pct} %`,
    );
    for (const f of u.top) L.push(`      ${String(f.pct).padStart(5)} %  ${f.name}`);
  }
  console.log(L.join('\n'));
  if (o.record) console.log(`RECORD ${JSON.stringify({ kind: 'trace', ...rec })}`);
}

if (import.meta.url === `file://${process.argv[1]}`) main();
