#!/usr/bin/env node
// Where a target's CPU goes per I/O, from a whole-system `perf record -g -a -e cpu-clock` (its
// `perf script -F comm,pid,tid,time,period,ip,sym,dso` text) and, for rdma-target, node's
// --cpu-prof of the daemon over the same window. Run by scripts/bench/iscsi-guest.sh --profile 1
// inside the VM (where the samples' symbols resolve):
//
//   node scripts/bench/profile-summary.mjs --perf-script FILE --pid PID --iops N
//        [--cpuprofile FILE] [--target NAME] [--job NAME] [--top N]
//   node scripts/bench/profile-summary.mjs --cpuprofile FILE|DIR [--top N]
//        (a .cpuprofile alone, e.g. of scripts/bench/engine-cmd.mjs: self time by function and
//        by file, as shares of the busy time)
//
// Prints one JSON record ({"type":"profile",...}) on stdout and a readable table on stderr.
// Every figure is CPU time per I/O: the samples' periods (the CPU time each sample stands for;
// under TCG a timer sample can arrive late and then stands for more than 1/999 s) ÷ (IOPS ×
// the window the samples span). The target's samples (its pid, all threads) are split by the leaf frame:
//   kernel, inside a system call: the verbs commands (ibv_post_send into rxe, which transmits
//     and computes the ICRC in the caller's context; post_recv; CQ re-arm), completion-channel
//     reads, epoll, socket I/O, other system calls; kernel outside system calls (interrupts,
//     softirq, page faults);
//   user: GC (any V8 heap frame on the stack), N-API glue (napi_*, v8impl), the addon's C++,
//     libibverbs and the rxe provider, JS (JIT code and V8 builtins), the V8 runtime (IC,
//     runtime calls, compiler), node/libuv, the profiler itself, tgtd's own code, other.
// Frames in libc are charged to the first caller frame that is not libc.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const HZ = 999;

function args() {
  const a = process.argv.slice(2);
  const o = { top: 12 };
  for (let i = 0; i < a.length; i++) {
    const v = a[i + 1];
    switch (a[i]) {
      case '--perf-script':
        o.perf = v;
        i++;
        break;
      case '--pid':
        o.pid = Number(v);
        i++;
        break;
      case '--iops':
        o.iops = Number(v);
        i++;
        break;
      case '--cpuprofile':
        o.cpuprofile = v;
        i++;
        break;
      case '--target':
        o.target = v;
        i++;
        break;
      case '--job':
        o.job = v;
        i++;
        break;
      case '--top':
        o.top = Number(v);
        i++;
        break;
      case '--trace-summary':
        o.trace = v;
        i++;
        break;
      case '--cpu-ns':
        o.cpuNs = Number(v);
        i++;
        break;
      case '--window':
        o.window = Number(v);
        i++;
        break;
      case '--gc-log':
        o.gcLog = v;
        i++;
        break;
      default:
        throw new Error(`profile-summary: unknown argument ${a[i]} (see the header of scripts/bench/profile-summary.mjs)`);
    }
  }
  return o;
}

// ------------------------------------------------------------------ perf script

/** Samples from `perf script -F comm,pid,tid,time,period,ip,sym,dso` with call chains (leaf first). */
export function parsePerfScript(text) {
  const samples = [];
  let cur = null;
  for (const line of text.split('\n')) {
    if (!line.trim()) {
      cur = null;
      continue;
    }
    if (/^\s/.test(line)) {
      if (!cur) continue;
      const m = /^\s*([0-9a-f]+)\s+(.*?)\s+\(([^)]*)\)\s*$/.exec(line);
      if (m) cur.frames.push({ ip: m[1], sym: m[2].replace(/\+0x[0-9a-f]+$/, ''), dso: m[3] });
      continue;
    }
    const h = /^(.*?)\s+(-?\d+)\/(-?\d+)\s+(?:\[\d+\]\s+)?([\d.]+):\s*(\d+)?/.exec(line);
    if (!h) {
      cur = null;
      continue;
    }
    // period: nanoseconds of cpu-clock the sample stands for (perf script -F ...,period).
    cur = { comm: h[1].trim(), pid: Number(h[2]), tid: Number(h[3]), time: Number(h[4]), ns: h[5] ? Number(h[5]) : 1e9 / HZ, frames: [] };
    samples.push(cur);
  }
  return samples;
}

const isKernelFrame = (f) => f.ip.length >= 16 && f.ip.startsWith('ffff');
const GC_RE =
  /v8::internal::(Heap::|Scavenger|ScavengerCollector|ScavengeJob|MarkCompact|MinorMarkCompact|MinorMC|ConcurrentMarking|IncrementalMarking|MarkingVisitor|MarkingBarrier|Sweeper|ArrayBufferSweeper|GCTracer|MemoryAllocator|PagedSpace|NewSpace|SemiSpace|EvacuateVisitor|Evacuator|PointersUpdating|MarkingWorklist|HeapObjectsFilter|LocalHeap::|Safepoint|ScavengeVisitor|IterateAndScavenge|RememberedSet|SlotSet)|Heap::CollectGarbage|\bScavenge|MarkCompactCollector/;
const PROFILER_RE =
  /v8::internal::(Sampler|SamplingEventsProcessor|ProfilerEventsProcessor|CpuProfiler|CpuProfile|ProfilerListener|ProfilerCodeObserver|CodeEntry|TickSample|SamplingHeapProfiler|ProfileGenerator|ProfileTree|Symbolizer|CodeMap)|v8::sampler::|node::profiler::|SignalHandler::HandleProfilerSignal/;
const NAPI_RE = /^(napi_|v8impl::|node_api_|napi_env__|node::napi)/;
const LIBC_RE = /\/(libc|libm|libpthread|libstdc\+\+|libgcc_s|ld-linux[^/]*)[.-][^/]*$|^\[vdso\]$/;
const VERBS_RE = /lib(ibverbs|rdmacm|rxe|mlx\d|efa|bnxt|irdma|siw|hns|qedr|vmw_pvrdma|ocrdma|cxgb4|hfi1verbs|ipathverbs|mthca)[-.]/;

/** The user-space category of a stack whose frames from `i` on are user frames. */
function userCategory(frames, i, targetDso) {
  for (const f of frames) if (GC_RE.test(f.sym)) return 'GC (V8 heap: scavenge, mark-compact, sweeping)';
  for (const f of frames) if (PROFILER_RE.test(f.sym)) return 'profiler overhead (node --cpu-prof sampling)';
  for (let k = i; k < frames.length; k++) {
    const f = frames[k];
    if (LIBC_RE.test(f.dso)) continue;
    if (NAPI_RE.test(f.sym)) return 'N-API glue (napi_*, v8impl)';
    if (/\.node$/.test(f.dso)) return 'binding C++ (the addon, outside napi_*)';
    if (VERBS_RE.test(f.dso)) return 'libibverbs + rxe provider (user space)';
    if (
      /^Builtins_/.test(f.sym) ||
      f.dso === '[unknown]' ||
      /perf-\d+\.map|jitted-|\/\/anon|\[anon/.test(f.dso) ||
      /^(LazyCompile|JS|Function|Script|Builtin|Stub|BytecodeHandler):/.test(f.sym)
    )
      return 'JS (JIT code, interpreter, V8 builtins)';
    if (
      /^v8::internal::(compiler|maglev|baseline|Compiler|Parser|Scanner|Zone|Turbofan)/.test(f.sym) ||
      /^v8::internal::.*(Compil|Optimiz|Deoptimiz)/.test(f.sym)
    )
      return 'V8 compiler (JIT)';
    if (/^(v8::|v8_|Runtime_)/.test(f.sym) || /^v8::internal::/.test(f.sym)) return 'V8 runtime (IC, runtime calls, API)';
    if (/^(uv_|uv__|node::|cppgc::|std::)/.test(f.sym)) return 'node / libuv';
    if (targetDso && f.dso.endsWith(targetDso)) return `${targetDso} code`;
    return `other user (${f.dso.split('/').pop()})`;
  }
  // A libc leaf whose caller could not be unwound (libc keeps no frame pointers).
  const leaf = frames[i]?.sym ?? '';
  if (/malloc|free|_int_|consolidate|unlink_chunk|tcache|realloc|calloc|arena/.test(leaf)) return 'malloc / free (libc, caller unknown)';
  return 'libc other (memcpy, ...; caller unknown)';
}

/** The kernel category of a stack whose leaf is in the kernel. */
function kernelCategory(frames) {
  let sys = null;
  const syms = frames.map((f) => f.sym);
  for (const s of syms) {
    const m = /^(?:__x64_sys_|__ia32_sys_|__do_sys_|__se_sys_)(\w+)/.exec(s);
    if (m) {
      sys = m[1];
      break;
    }
  }
  const has = (re) => syms.some((s) => re.test(s));
  if (!sys && !has(/^do_syscall_64$|^entry_SYSCALL/)) {
    if (has(/exc_page_fault|do_user_addr_fault|handle_mm_fault/)) return 'kernel: page faults';
    return 'kernel: outside system calls (interrupts, softirq)';
  }
  // The uverbs handlers are static and may be inlined: the rxe verb they end in names them too.
  if (has(/^ib_uverbs_post_send$|^rxe_post_send$|^ib_post_send$/)) return 'kernel: ibv_post_send (uverbs write into rxe: transmit, ICRC)';
  if (has(/^ib_uverbs_post_recv$|^ib_uverbs_post_srq_recv$|^rxe_post_recv$|^rxe_post_srq_recv$/)) return 'kernel: ibv_post_recv (uverbs write)';
  if (has(/^ib_uverbs_req_notify_cq$|^rxe_req_notify_cq$/)) return 'kernel: CQ re-arm (ibv_req_notify_cq)';
  if (has(/^ib_uverbs_poll_cq$/)) return 'kernel: ibv_poll_cq (uverbs write)';
  if (has(/ib_uverbs_comp_event|ib_uverbs_event_read|ib_uverbs_async_event|uverbs_event/)) return 'kernel: completion channel (read CQ events)';
  if (has(/^ib_uverbs_(write|ioctl)$/)) return 'kernel: other verbs commands';
  if (has(/^ucma_/)) return 'kernel: RDMA/CM';
  if (/^epoll/.test(sys ?? '')) return 'kernel: epoll';
  if (
    /^(sendmsg|recvmsg|sendto|recvfrom|sendmmsg|recvmmsg|socket|accept4?|connect|shutdown)$/.test(sys ?? '') ||
    has(/^(sock_|tcp_|inet_|__sys_sendmsg|__sys_recvmsg)/)
  )
    return 'kernel: socket I/O';
  if (/^(io_submit|io_getevents|io_pgetevents|pread64|pwrite64|preadv2?|pwritev2?|fallocate|fsync|fdatasync)$/.test(sys ?? ''))
    return 'kernel: file I/O (backstore)';
  if (/^(futex|futex_waitv)$/.test(sys ?? '')) return 'kernel: futex (thread wake-ups)';
  if (/^(read|write|readv|writev)$/.test(sys ?? '') && has(/eventfd|signalfd|timerfd/)) return 'kernel: eventfd / timerfd / signalfd';
  return `kernel: other system calls (${sys ?? '?'})`;
}

export function classify(frames, targetDso) {
  if (!frames.length) return 'no call chain';
  if (isKernelFrame(frames[0])) return kernelCategory(frames);
  return userCategory(frames, 0, targetDso);
}

function group(sample, pid) {
  if (sample.pid === pid) return 'target';
  if (sample.pid === 0 || /^swapper/.test(sample.comm)) return 'idle';
  if (/^fio$/.test(sample.comm)) return 'fio (initiator)';
  if (/^(ksoftirqd|kworker|rcu_|migration|kthreadd|irq\/|rxe|ib_|iw_cm|rdma_cm|iscsi|scsi_)/.test(sample.comm))
    return `kernel threads (${sample.comm.replace(/[/:].*$/, '')})`;
  if (/^perf/.test(sample.comm)) return 'perf';
  return `other processes (${sample.comm})`;
}

// ------------------------------------------------------------------ .cpuprofile

/** Self time by function of a V8 .cpuprofile, in µs, between two CLOCK_MONOTONIC µs (or all). */
export function cpuprofileSelf(p, fromUs, toUs) {
  const nodes = new Map(p.nodes.map((n) => [n.id, n]));
  const perNode = new Map();
  let t = p.startTime;
  let inWindow = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    if (fromUs != null && (t < fromUs || t > toUs)) continue;
    perNode.set(p.samples[i], (perNode.get(p.samples[i]) ?? 0) + dt);
    inWindow += dt;
  }
  const byFunction = new Map();
  const short = (url) => url.split('/').slice(-2).join('/');
  for (const [id, us] of perNode) {
    const cf = nodes.get(id).callFrame;
    const key = cf.url ? `${cf.functionName || '(anonymous)'} ${short(cf.url)}:${cf.lineNumber + 1}` : cf.functionName || '(anonymous)';
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
  }
  return { total_us: inWindow, byFunction };
}

// ------------------------------------------------------------------ exact accounting

// System calls in which a thread waits rather than works: their time is not CPU time.
const BLOCKING =
  /^(epoll_wait|epoll_pwait2?|poll|ppoll|select|pselect6|futex|futex_waitv|nanosleep|clock_nanosleep|wait4|waitid|pause|rt_sigtimedwait|rt_sigsuspend|io_getevents|io_pgetevents|accept4?)$/;

/** `perf trace -s` output: per thread a table of syscall, calls, errors, total ms, ...; summed
 *  over the threads. */
export function parseTraceSummary(text) {
  const m = new Map();
  for (const line of text.split('\n')) {
    const r = /^\s+([a-z_0-9]+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+[\d.]+\s+[\d.]+\s+[\d.]+/.exec(line);
    if (!r) continue;
    const e = m.get(r[1]) ?? { calls: 0, ms: 0 };
    e.calls += Number(r[2]);
    e.ms += Number(r[4]);
    m.set(r[1], e);
  }
  return m;
}

/** node --trace-gc lines: the main thread's pause of each GC, in ms, by kind. */
export function parseGcLog(text) {
  const kinds = new Map();
  for (const line of text.split('\n')) {
    const r = /(Scavenge|Minor Mark-Compact|Mark-Compact|Mark-sweep)\b.*?MB, ([\d.]+) \/ ([\d.]+) ms/.exec(line);
    if (!r) continue;
    const e = kinds.get(r[1]) ?? { count: 0, ms: 0 };
    e.count++;
    e.ms += Number(r[2]);
    kinds.set(r[1], e);
  }
  return kinds;
}

function exact(o) {
  const ios = o.iops * o.window;
  const ex = { window_s: o.window, ios: Math.round(ios), cpu_us_per_io: o.cpuNs > 0 ? r1(o.cpuNs / 1e3 / ios) : null };
  if (o.trace) {
    let text = '';
    try {
      text = readFileSync(o.trace, 'utf8');
    } catch {
      /* perf trace failed: no table */
    }
    const sc = [...parseTraceSummary(text)].sort((a, b) => b[1].ms - a[1].ms);
    ex.syscalls = sc.map(([name, e]) => ({
      name,
      blocking: BLOCKING.test(name),
      calls_per_io: +(e.calls / ios).toFixed(2),
      us_per_io: r1((e.ms * 1e3) / ios),
      avg_us: r1((e.ms * 1e3) / e.calls),
    }));
    ex.syscall_cpu_us_per_io = r1((sc.filter(([n]) => !BLOCKING.test(n)).reduce((a, [, e]) => a + e.ms, 0) * 1e3) / ios);
    ex.syscalls_per_io = +(sc.reduce((a, [, e]) => a + e.calls, 0) / ios).toFixed(2);
    if (ex.cpu_us_per_io != null) ex.user_us_per_io = r1(ex.cpu_us_per_io - ex.syscall_cpu_us_per_io);
  }
  if (o.gcLog) {
    let text = '';
    try {
      text = readFileSync(o.gcLog, 'utf8');
    } catch {
      /* none */
    }
    const kinds = parseGcLog(text);
    const all = [...kinds.values()].reduce((a, e) => ({ count: a.count + e.count, ms: a.ms + e.ms }), { count: 0, ms: 0 });
    ex.gc = {
      pause_us_per_io: r1((all.ms * 1e3) / ios),
      per_1000_io: +((1000 * all.count) / ios).toFixed(2),
      kinds: [...kinds].map(([k, e]) => ({ kind: k, count: e.count, pause_us_per_io: r1((e.ms * 1e3) / ios), avg_ms: +(e.ms / e.count).toFixed(2) })),
    };
  }
  return ex;
}

// ------------------------------------------------------------------ main

const perIo = (ns, ios) => (ios > 0 ? ns / 1e3 / ios : null);
const r1 = (x) => (x == null ? null : Math.round(x * 10) / 10);

function summarise(o) {
  const rec = { type: 'profile', target: o.target ?? null, job: o.job ?? null, perf_hz: HZ };
  let winFrom = null;
  let winTo = null;
  let ios = null;
  if (o.perf) {
    const samples = parsePerfScript(readFileSync(o.perf, 'utf8'));
    if (!samples.length) throw new Error(`no samples in ${o.perf}`);
    winFrom = Math.min(...samples.map((s) => s.time));
    winTo = Math.max(...samples.map((s) => s.time));
    const window = winTo - winFrom + 1 / HZ;
    ios = o.iops * window;
    const weight = (arr) => arr.reduce((a, x) => a + x.ns, 0);
    // CPUs the samples account for over the window: the guest's vCPU count if none was lost.
    const cpus = weight(samples) / 1e9 / window;
    const target = samples.filter((s) => s.pid === o.pid);
    // tgtd's own frames are named by its binary; node's by the categories above.
    const targetDso = target.map((s) => s.frames.find((f) => !isKernelFrame(f))?.dso).find((d) => d && /\/tgtd$/.test(d)) ? 'tgtd' : null;
    const count = (arr, key) => {
      const m = new Map();
      for (const s of arr) {
        const k = key(s);
        m.set(k, (m.get(k) ?? 0) + s.ns);
      }
      return [...m].sort((a, b) => b[1] - a[1]);
    };
    const rows = (pairs, n = Infinity) => pairs.slice(0, n).map(([name, ns]) => ({ name, cpu_ms: r1(ns / 1e6), us_per_io: r1(perIo(ns, ios)) }));
    Object.assign(rec, {
      window_s: +window.toFixed(3),
      iops: o.iops,
      ios: Math.round(ios),
      samples: samples.length,
      cpus_sampled: +cpus.toFixed(2),
      target_pid: o.pid,
      target_samples: target.length,
      target_us_per_io: r1(perIo(weight(target), ios)),
      period_ns: {
        min: Math.min(...samples.map((x) => x.ns)),
        median: [...samples.map((x) => x.ns)].sort((a, b) => a - b)[samples.length >> 1],
        max: Math.max(...samples.map((x) => x.ns)),
      },
      system: rows(count(samples, (s) => group(s, o.pid))),
      categories: rows(count(target, (s) => classify(s.frames, targetDso))),
      threads: rows(
        count(target, (s) => (s.tid === o.pid ? `${s.comm} (main thread)` : s.comm)),
        o.top,
      ),
      syscalls: rows(
        count(
          target.filter((s) => s.frames.length && isKernelFrame(s.frames[0])),
          (s) => {
            const f = s.frames.find((x) => /^__x64_sys_/.test(x.sym));
            return f ? f.sym.replace(/^__x64_sys_/, '') : '(not in a system call)';
          },
        ),
        o.top,
      ),
      kernel_leaf: rows(
        count(
          target.filter((s) => s.frames.length && isKernelFrame(s.frames[0])),
          (s) => s.frames[0].sym,
        ),
        o.top,
      ),
      user_leaf: rows(
        count(
          target.filter((s) => s.frames.length && !isKernelFrame(s.frames[0])),
          (s) => `${s.frames[0].sym} (${s.frames[0].dso.split('/').pop()})`,
        ),
        o.top,
      ),
    });
    // rxe and ICRC: inclusive (anywhere on the stack), whichever category the sample is in.
    const incl = (re) => weight(target.filter((s) => s.frames.some((f) => isKernelFrame(f) && re.test(f.sym))));
    // Over rxe's loopback (both ends in this VM) the packets a target sends may be received,
    // and the initiator's side processed, in the sender's context: the receive path shows that.
    rec.inclusive = rows([
      ['kernel rxe_* code (any stack)', incl(/^rxe_/)],
      ['rxe send path (rxe_requester, rxe_xmit_packet)', incl(/^rxe_requester$|^rxe_xmit_packet$|^rxe_send$/)],
      ['rxe receive path (rxe_rcv, rxe_responder, rxe_completer)', incl(/^rxe_rcv$|^rxe_responder$|^rxe_completer$|^rxe_udp_encap_recv$/)],
      ['ICRC (rxe_icrc_*, crc32*)', incl(/rxe_icrc|^crc32|crc32_(le|be)|__crc32/)],
      ['softirq (any stack)', incl(/^__do_softirq$|^do_softirq$|^net_rx_action$/)],
      ['kernel, all', weight(target.filter((s) => s.frames.length && isKernelFrame(s.frames[0])))],
    ]);
  }
  if (o.window > 0 && o.iops > 0) rec.exact = exact(o);
  if (o.cpuprofile) {
    let file = o.cpuprofile;
    if (statSync(file).isDirectory()) {
      const f = readdirSync(file).find((x) => x.endsWith('.cpuprofile'));
      if (!f) throw new Error(`no .cpuprofile in ${file}`);
      file = join(file, f);
    }
    const p = JSON.parse(readFileSync(file, 'utf8'));
    // perf's sample times are CLOCK_MONOTONIC seconds (perf record -k CLOCK_MONOTONIC), V8's µs of the same clock.
    let from = winFrom == null ? null : winFrom * 1e6;
    let to = winTo == null ? null : winTo * 1e6;
    let self = cpuprofileSelf(p, from, to);
    if (from != null && self.total_us === 0) {
      rec.cpuprofile_note = 'the .cpuprofile has no sample in the perf window (clock mismatch?): its whole run is shown, as shares';
      from = to = null;
      ios = null;
      self = cpuprofileSelf(p, null, null);
    }
    const special = new Set(['(idle)', '(program)', '(garbage collector)', '(root)']);
    const all = [...self.byFunction].sort((a, b) => b[1] - a[1]);
    const busy = all.filter(([k]) => k !== '(idle)').reduce((a, [, us]) => a + us, 0);
    const us = (x) => (ios ? r1(x / ios) : null);
    const pct = (x) => (busy > 0 ? +((100 * x) / busy).toFixed(1) : null);
    const get = (k) => self.byFunction.get(k) ?? 0;
    // Functions without a URL (other than V8's own entries) are native: the binding's methods and node's.
    const native = all.filter(([k]) => !special.has(k) && !/ \S+:\d+$/.test(k));
    const js = all.filter(([k]) => / \S+:\d+$/.test(k));
    const byFile = new Map();
    for (const [k, v] of all) {
      if (k === '(idle)') continue;
      const f = / (\S+):\d+$/.exec(k)?.[1] ?? k;
      byFile.set(f, (byFile.get(f) ?? 0) + v);
    }
    rec.cpuprofile = {
      window_us: self.total_us,
      busy_us_per_io: us(busy),
      idle_us_per_io: us(get('(idle)')),
      gc_us_per_io: us(get('(garbage collector)')),
      program_us_per_io: us(get('(program)')),
      native_us_per_io: us(native.reduce((a, [, v]) => a + v, 0)),
      js_us_per_io: us(js.reduce((a, [, v]) => a + v, 0)),
      top: all
        .filter(([k]) => k !== '(idle)')
        .slice(0, o.top)
        .map(([name, v]) => ({ name, us_per_io: us(v), pct_of_busy: pct(v) })),
      top_js: js.slice(0, o.top).map(([name, v]) => ({ name, us_per_io: us(v), pct_of_busy: pct(v) })),
      top_native: native.slice(0, 8).map(([name, v]) => ({ name, us_per_io: us(v), pct_of_busy: pct(v) })),
      top_files: [...byFile]
        .sort((a, b) => b[1] - a[1])
        .slice(0, o.top)
        .map(([name, v]) => ({ name, us_per_io: us(v), pct_of_busy: pct(v) })),
    };
  }
  return rec;
}

function print(rec) {
  const L = [];
  const tab = (title, rows) => {
    if (!rows?.length) return;
    L.push(`  ${title}`);
    for (const r of rows) L.push(`    ${String(r.us_per_io ?? (r.pct_of_busy != null ? `${r.pct_of_busy}%` : '?')).padStart(8)}  ${r.name}`);
  };
  if (rec.iops) {
    L.push(
      `PROFILE ${rec.target ?? ''} ${rec.job ?? ''}: ${rec.target_us_per_io ?? '?'} µs CPU per I/O in the target process ` +
        `(${rec.iops} IOPS, ${rec.window_s} s window, ${rec.samples} samples)`,
    );
  }
  if (rec.exact) {
    const e = rec.exact;
    L.push(
      `  exact: process CPU ${e.cpu_us_per_io} µs/IO = system calls (not waiting) ${e.syscall_cpu_us_per_io} + the rest ${e.user_us_per_io}; ${e.syscalls_per_io} system calls per I/O; GC pauses ${e.gc?.pause_us_per_io ?? '—'} µs/IO`,
    );
    tab('system calls (µs/IO, from the syscall tracepoints)', e.syscalls?.slice(0, 10));
  }
  tab('system (µs/IO)', rec.system);
  tab('target by category (µs/IO)', rec.categories);
  tab('inclusive', rec.inclusive);
  tab('system calls', rec.syscalls);
  if (rec.cpuprofile) {
    const c = rec.cpuprofile;
    if (rec.iops)
      L.push(
        `  cpuprofile (main thread): busy ${c.busy_us_per_io} µs/IO, JS ${c.js_us_per_io}, native ${c.native_us_per_io}, GC ${c.gc_us_per_io}, program ${c.program_us_per_io}${rec.cpuprofile_note ? ` (${rec.cpuprofile_note})` : ''}`,
      );
    else L.push(`cpuprofile: ${(c.window_us / 1e6).toFixed(1)} s sampled (self time; "(idle)" is the event loop waiting)`);
    tab(`cpuprofile by function (self${rec.iops ? ', µs/IO' : ', % of busy'})`, c.top);
    if (!rec.iops) tab('cpuprofile by file (self, % of busy)', c.top_files);
  }
  console.error(L.join('\n'));
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const o = args();
  if (!o.perf && !o.cpuprofile) throw new Error('profile-summary: --perf-script and/or --cpuprofile');
  if (o.perf && (!Number.isFinite(o.pid) || !(o.iops > 0))) throw new Error('profile-summary: --perf-script needs --pid and --iops > 0');
  const rec = summarise(o);
  process.stdout.write(`${JSON.stringify(rec)}\n`);
  print(rec);
}
