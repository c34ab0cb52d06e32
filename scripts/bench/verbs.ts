// Raw verbs benchmark: this binding against perftest on the same soft-RoCE devices, in one
// run, printed side by side with ratios (docs/architecture.md: benchmarks are scripts and
// ratios, not absolute times). `npm run bench:verbs` builds the project, compiles this file
// (scripts/bench/tsconfig.json, to .cache/bench/verbs.js beside nothing that ships) and runs it
// inside the VM:
//   bash scripts/vm/run.sh --timeout 900 -- node .cache/bench/verbs.js
// Options: --bw-iters N (default 4000), --lat-iters N (default 10000), --size BYTES
// (default 65536), --depth N (default 16), --lat-size BYTES (default 2), --addr A (default 10.77.0.1).
//
// Bandwidth: RDMA WRITE of `size`-byte messages with `depth` outstanding, event-driven
// (completion channel on the loop, one callback per batch, reposting in batches) against
// `ib_write_bw -R -s size -t depth`. Latency: SEND/RECV ping-pong, half the round trip as
// perftest reports it, busy-polling the CQ (as perftest does) and event-driven, against
// `ib_send_lat -R -s lat-size`.
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import {
  BufferPool,
  CompletionDispatcher,
  DeviceTable,
  RdmaCm,
  RecvBatch,
  SendBatch,
  UNSIGNALED_WR_ID,
  native,
  requireDevices,
  type CompletionHandler,
  type NativeCmId,
  type NativePd,
  type NativeQp,
  type WorkCompletion,
} from '../../dist/verbs/index.js';

interface Options {
  bwIters: number;
  latIters: number;
  size: number;
  depth: number;
  latSize: number;
  addr: string;
  role: 'bench' | 'lat-server';
  mode: 'busy' | 'event';
  port: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { bwIters: 4000, latIters: 10_000, size: 65536, depth: 16, latSize: 2, addr: '10.77.0.1', role: 'bench', mode: 'busy', port: 0 };
  for (let i = 0; i < argv.length; i += 2) {
    const v = argv[i + 1];
    switch (argv[i]) {
      case '--bw-iters':
        o.bwIters = Number(v);
        break;
      case '--lat-iters':
        o.latIters = Number(v);
        break;
      case '--size':
        o.size = Number(v);
        break;
      case '--depth':
        o.depth = Number(v);
        break;
      case '--lat-size':
        o.latSize = Number(v);
        break;
      case '--addr':
        o.addr = v;
        break;
      case '--role':
        o.role = v as Options['role'];
        break; // internal: the latency test's child
      case '--mode':
        o.mode = v as Options['mode'];
        break;
      case '--port':
        o.port = Number(v);
        break;
      default:
        throw new Error(`unknown option ${argv[i]} (see the header of scripts/bench/verbs.ts)`);
    }
  }
  return o;
}

// ------------------------------------------------------------------ perftest

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
}

function exec(cmd: string, args: string[]): { done: Promise<Run>; kill(): void } {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<Run>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal, out }));
  });
  return { done, kill: () => child.kill('SIGKILL') };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs a perftest server and its client; returns the client's report. */
async function perftest(tool: string, args: string[], addr: string, port: number): Promise<string> {
  const common = [...args, '-R', '-F', '-p', String(port)];
  const server = exec(tool, common);
  try {
    for (let attempt = 0; ; attempt++) {
      await sleep(attempt === 0 ? 1000 : 500);
      const client = await exec(tool, [...common, addr]).done;
      if (client.code === 0) {
        await server.done;
        return client.out;
      }
      if (attempt >= 10) throw new Error(`${tool} ${common.join(' ')} ${addr} failed:\n${client.out}`);
    }
  } finally {
    server.kill();
  }
}

/** The numbers of perftest's result line (the line after its column header). */
function resultRow(report: string, header: RegExp): number[] {
  const lines = report.split('\n');
  const at = lines.findIndex((l) => header.test(l));
  const row = at >= 0 ? lines.slice(at + 1).find((l) => /^\s*\d/.test(l)) : undefined;
  if (!row) throw new Error(`no result line in perftest output:\n${report}`);
  return row.trim().split(/\s+/).map(Number);
}

// ------------------------------------------------------------------ our side

interface Side {
  id: NativeCmId;
  disp: CompletionDispatcher;
  qp: NativeQp;
}

/** A connected RC pair in this process: server on `addr`, client resolved to it. */
async function connectPair(
  cm: RdmaCm,
  devices: DeviceTable,
  addr: string,
  port: number,
  depth: number,
  prepare: (side: Side, role: 'server' | 'client') => void,
): Promise<{ server: Side; client: Side; close(): void }> {
  const make = (id: NativeCmId): Side => makeSide(devices, id, depth);
  let listener: NativeCmId | undefined;
  const serverUp = new Promise<Side>((resolve, reject) => {
    listener = cm.listen(addr, port, (ev) => {
      try {
        const s = make(ev.id!);
        prepare(s, 'server');
        cm.next(s.id, 15_000).then((e) => (e.type === 'RDMA_CM_EVENT_ESTABLISHED' ? resolve(s) : reject(new Error(e.type))), reject);
        s.id.accept({ initiatorDepth: 16, responderResources: 16 });
      } catch (e) {
        reject(e);
      }
    });
  });
  const client = make(await cm.resolve(addr, port, 2000));
  prepare(client, 'client');
  await cm.connect(client.id, { initiatorDepth: 16, responderResources: 16 });
  const server = await serverUp;
  return {
    server,
    client,
    close() {
      for (const s of [client, server]) {
        cm.destroy(s.id);
        s.disp.close();
      }
      cm.destroy(listener!);
    },
  };
}

/** RDMA WRITE bandwidth in MiB/s: `iters` writes of `size` bytes, `depth` in flight. */
async function jsWriteBandwidth(cm: RdmaCm, devices: DeviceTable, o: Options, port: number): Promise<number> {
  const c = native().constants;
  const access = c.ACCESS_LOCAL_WRITE | c.ACCESS_REMOTE_WRITE | c.ACCESS_REMOTE_READ;
  if (o.bwIters % o.depth !== 0) throw new Error('--bw-iters must be a multiple of --depth');
  const pair = await connectPair(cm, devices, o.addr, port, o.depth, () => {});
  const dev = devices.get(pair.client.id.deviceName!);
  const sdev = devices.get(pair.server.id.deviceName!);
  const local = new BufferPool(dev.pd, o.size, o.depth, access);
  const remote = new BufferPool(sdev.pd, o.size, o.depth, access);
  for (let s = 0; s < o.depth; s++) local.view(s).fill(s);
  // Every `group`-th WR is signalled (perftest's CQ moderation does the same): its completion
  // frees its whole group, since an RC send queue completes in order. Groups are posted
  // together, so completions and CQ wake-ups are a quarter of the messages.
  const group = o.depth % 4 === 0 ? 4 : 1;
  let posted = 0;
  let completed = 0;
  let failed = '';
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  const client = pair.client;
  const handler: CompletionHandler = {
    onCompletion(wc: WorkCompletion, first: number) {
      if (!wc.ok && !failed) failed = wc.statusName;
      completed += group;
      freed[nFreed++] = first;
    },
  };
  // One prebuilt WR per slot (the slot's local and remote buffers); a post patches the
  // signalled WR's wr_id and sends a run of consecutive slots in one ibv_post_send.
  const table = new SendBatch(o.depth);
  for (let s = 0; s < o.depth; s++) {
    const last = (s + 1) % group === 0;
    table.add(UNSIGNALED_WR_ID, c.WR_RDMA_WRITE, last ? c.SEND_SIGNALED : 0, local.address(s), o.size, local.lkey, remote.address(s), remote.rkey);
  }
  const freed = new Int32Array(o.depth);
  let nFreed = 0;
  const postRun = (first: number, groups: number) => {
    for (let g = 0; g < groups; g++) {
      const s = first + g * group;
      table.setWrId(s + group - 1, client.disp.register(handler, s));
    }
    client.qp.postSend(table.words, groups * group, table.offsetOf(first));
    posted += groups * group;
  };
  // Groups freed by one CQ callback go back out together: completions arrive in order, so
  // they are consecutive slots (one run, two when they wrap past the last slot).
  const post = (firsts: Int32Array, n: number) => {
    let runStart = -1;
    let runGroups = 0;
    for (let i = 0; i < n && posted + (runGroups + 1) * group <= o.bwIters; i++) {
      const s = firsts[i];
      if (runGroups > 0 && s === runStart + runGroups * group) {
        runGroups++;
        continue;
      }
      if (runGroups > 0) postRun(runStart, runGroups);
      runStart = s;
      runGroups = 1;
    }
    if (runGroups > 0) postRun(runStart, runGroups);
  };
  client.disp.onBatchEnd = () => {
    if (nFreed > 0) {
      post(freed, nFreed);
      nFreed = 0;
    }
    if (completed >= o.bwIters || failed) finish();
  };
  const t0 = performance.now();
  postRun(0, o.depth / group);
  await finished;
  const seconds = (performance.now() - t0) / 1000;
  if (failed) throw new Error(`RDMA WRITE failed: ${failed}`);
  // The last message landed in the remote slot: spot-check that the bytes arrived.
  const last = (o.bwIters - 1) % o.depth;
  if (!remote.view(last).equals(local.view(last))) throw new Error('RDMA WRITE data mismatch');
  local.close();
  remote.close();
  pair.close();
  return (o.bwIters * o.size) / (1 << 20) / seconds;
}

// SEND/RECV ping-pong, the two ends in two processes as perftest runs them: this process
// is the client; a child (this script with --role lat-server) answers each message.

const WARMUP = 200;
const RING = 16; // receives per side
const REPOST = 8; // receives go back in batches of this many
const SIGNALED = 2; // IBV_SEND_SIGNALED; checked against the addon's constants in main()

/** One end of the ping-pong: a receive ring, one send slot, counters. No allocation per message. */
class PingPongEnd {
  got = 0;
  error = '';
  readonly pool: BufferPool;
  private readonly send = new SendBatch(1);
  private readonly recv = new RecvBatch(RING);
  private readonly onRecv: CompletionHandler;
  private readonly onSend: CompletionHandler;
  private readonly flags: number;

  constructor(
    readonly side: Side,
    pd: NativePd,
    readonly size: number,
  ) {
    const c = native().constants;
    this.pool = new BufferPool(pd, Math.max(64, size), RING + 1, c.ACCESS_LOCAL_WRITE);
    this.flags = size <= side.qp.maxInlineData ? c.SEND_INLINE : 0;
    this.onRecv = {
      onCompletion: (wc) => {
        if (!wc.ok && !this.error) this.error = `recv: ${wc.statusName}`;
        this.got++;
      },
    };
    this.onSend = {
      onCompletion: (wc) => {
        if (!wc.ok && !this.error) this.error = `send: ${wc.statusName}`;
      },
    };
    // Prebuilt WRs: the one send and a receive per ring slot; posting patches wr_ids only.
    this.send.add(UNSIGNALED_WR_ID, c.WR_SEND, this.flags, this.pool.address(RING), size, this.pool.lkey);
    for (let s = 0; s < RING; s++) this.recv.add(side.disp.register(this.onRecv, s), this.pool.address(s), this.pool.slotSize, this.pool.lkey);
    side.qp.postRecv(this.recv.words, RING);
  }

  /** Sends message `i`; every 16th is signalled to free send-queue slots (unsignalled WRs take no wr_id). */
  ping(i: number): void {
    if (i % 16 === 0) this.send.setWrId(0, this.side.disp.register(this.onSend)).setFlags(0, this.flags | SIGNALED);
    else this.send.setWrId(0, UNSIGNALED_WR_ID).setFlags(0, this.flags);
    this.side.qp.postSend(this.send.words, 1);
  }

  /** Gives receive `i`'s slot back, posting once per REPOST slots. */
  repost(i: number): void {
    const s = i % RING;
    this.recv.setWrId(s, this.side.disp.register(this.onRecv, s));
    if ((s + 1) % REPOST === 0) this.side.qp.postRecv(this.recv.words, REPOST, this.recv.offsetOf(s + 1 - REPOST));
  }

  /** Busy-polls until message `i` has arrived. */
  spin(i: number): void {
    while (this.got <= i && !this.error) this.side.disp.poll();
  }

  /** Event-driven: calls `onMessage(i)` from the CQ callback for each message. */
  onEachMessage(onMessage: (i: number) => void): void {
    const counted = this.onRecv.onCompletion;
    this.onRecv.onCompletion = (wc, cookie) => {
      counted(wc, cookie);
      onMessage(this.got - 1);
    };
  }

  close(): void {
    this.pool.close();
  }
}

function makeSide(devices: DeviceTable, id: NativeCmId, depth: number): Side {
  const dev = devices.get(id.deviceName!);
  const disp = new CompletionDispatcher(dev.context, depth * 4 + 16, depth * 4 + 16);
  const qp = new (native().QueuePair)(id, dev.pd, disp.cq, disp.cq, null, {
    maxSendWr: depth * 2,
    maxRecvWr: depth * 2,
    maxSendSge: 1,
    maxRecvSge: 1,
    maxInlineData: 64,
  });
  return { id, disp, qp };
}

/** The child's side: accept one connection, answer every message, exit on DISCONNECTED. */
async function latencyServer(o: Options, port: number, mode: 'busy' | 'event'): Promise<void> {
  const cm = new RdmaCm();
  const devices = new DeviceTable();
  const total = o.latIters + WARMUP;
  let end!: PingPongEnd;
  const established = new Promise<void>((resolve, reject) => {
    cm.listen(o.addr, port, (ev) => {
      try {
        const side = makeSide(devices, ev.id!, RING);
        end = new PingPongEnd(side, devices.get(side.id.deviceName!).pd, o.latSize);
        if (mode === 'event')
          end.onEachMessage((i) => {
            end.repost(i);
            end.ping(i);
          });
        cm.next(side.id, 15_000).then((e) => (e.type === 'RDMA_CM_EVENT_ESTABLISHED' ? resolve() : reject(new Error(e.type))), reject);
        side.id.accept({});
      } catch (e) {
        reject(e);
      }
    });
  });
  console.log('listening');
  await established;
  const disconnected = cm.next(end.side.id, 600_000);
  if (mode === 'busy') {
    for (let i = 0; i < total && !end.error; i++) {
      end.spin(i);
      end.repost(i);
      end.ping(i);
    }
  }
  await disconnected;
  if (end.error) throw new Error(`latency server: ${end.error}`);
  devices.close();
  cm.close();
}

/** Both ends in this one process and thread, busy-polling in turn: no cross-CPU wake-ups. */
async function jsSendLatencyOneProcess(cm: RdmaCm, devices: DeviceTable, o: Options, port: number): Promise<number> {
  const ends: PingPongEnd[] = [];
  const pair = await connectPair(cm, devices, o.addr, port, RING, (side) => {
    ends.push(new PingPongEnd(side, devices.get(side.id.deviceName!).pd, o.latSize));
  });
  const server = ends.find((e) => e.side === pair.server)!;
  const client = ends.find((e) => e.side === pair.client)!;
  const total = o.latIters + WARMUP;
  let t0 = 0;
  for (let i = 0; i < total && !client.error && !server.error; i++) {
    if (i === WARMUP) t0 = performance.now();
    client.ping(i);
    server.spin(i);
    server.repost(i);
    server.ping(i);
    client.spin(i);
    client.repost(i);
  }
  const usec = ((performance.now() - t0) * 1000) / (total - WARMUP) / 2;
  if (client.error || server.error) throw new Error(`ping-pong failed: ${client.error || server.error}`);
  pair.close();
  for (const e of ends) e.close();
  return usec;
}

/** Mean one-way latency in µs (half the round trip, as perftest reports it). */
async function jsSendLatency(cm: RdmaCm, devices: DeviceTable, o: Options, port: number, mode: 'busy' | 'event'): Promise<number> {
  const server = exec(process.execPath, [
    process.argv[1],
    '--role',
    'lat-server',
    '--mode',
    mode,
    '--port',
    String(port),
    '--lat-iters',
    String(o.latIters),
    '--lat-size',
    String(o.latSize),
    '--addr',
    o.addr,
  ]);
  try {
    let side: Side | undefined;
    for (let attempt = 0; !side; attempt++) {
      await sleep(attempt === 0 ? 700 : 300);
      const id = await cm.resolve(o.addr, port, 2000);
      const s = makeSide(devices, id, RING);
      const pre = new PingPongEnd(s, devices.get(id.deviceName!).pd, o.latSize);
      try {
        await cm.connect(id, {});
        side = s;
        return await runClient(pre, o, mode, cm, server);
      } catch (e) {
        pre.close();
        cm.destroy(id);
        s.disp.close();
        if (side || attempt >= 10)
          throw new Error(
            `${(e as Error).message}; latency server said: ${((await Promise.race([server.done, sleep(100)])) as Run | undefined)?.out ?? '(running)'}`,
          );
      }
    }
    throw new Error('unreachable');
  } finally {
    server.kill();
  }
}

async function runClient(end: PingPongEnd, o: Options, mode: 'busy' | 'event', cm: RdmaCm, server: { done: Promise<Run> }): Promise<number> {
  const total = o.latIters + WARMUP;
  let t0 = 0;
  if (mode === 'busy') {
    for (let i = 0; i < total && !end.error; i++) {
      if (i === WARMUP) t0 = performance.now();
      end.ping(i);
      end.spin(i);
      end.repost(i);
    }
  } else {
    await new Promise<void>((resolve) => {
      end.onEachMessage((i) => {
        end.repost(i);
        if (i + 1 === WARMUP) t0 = performance.now();
        if (i + 1 >= total || end.error) resolve();
        else end.ping(i + 1);
      });
      end.ping(0);
    });
  }
  const usec = ((performance.now() - t0) * 1000) / (total - WARMUP) / 2;
  if (end.error) throw new Error(`ping-pong failed: ${end.error}`);
  end.side.id.disconnect(); // the server exits on DISCONNECTED
  cm.destroy(end.side.id);
  end.side.disp.close();
  end.close();
  const r = await server.done;
  if (r.code !== 0) throw new Error(`latency server exited ${r.code ?? r.signal}: ${r.out}`);
  return usec;
}

// ------------------------------------------------------------------ report

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (native().constants.SEND_SIGNALED !== SIGNALED) throw new Error('IBV_SEND_SIGNALED changed value');
  if (o.role === 'lat-server') return latencyServer(o, o.port, o.mode);
  const devs = requireDevices();
  console.log('hca_id\tnode_guid\t\tports');
  for (const d of devs) console.log(`${d.name}\t${d.nodeGuid}\t${d.ports.map((p) => `${p.port}:${p.state}/${p.linkLayer}/mtu${p.activeMtu}`).join(' ')}`);
  const cm = new RdmaCm();
  const devices = new DeviceTable();
  const probe = await cm.resolve(o.addr, 9, 2000);
  const dev = probe.deviceName!;
  cm.destroy(probe);
  let port = 19000 + (process.pid % 1000);
  console.log(
    `\nall traffic to ${o.addr} (device ${dev}); ${o.size}-byte RDMA WRITEs x ${o.bwIters}, depth ${o.depth}; ${o.latSize}-byte ping-pong x ${o.latIters}\n`,
  );

  const bwArgs = ['-d', dev, '-s', String(o.size), '-t', String(o.depth), '-n', String(o.bwIters)];
  const bwReport = await perftest('ib_write_bw', bwArgs, o.addr, port++);
  const pBw = resultRow(bwReport, /BW average\[MB\/sec\]/)[3];
  const jBw = await jsWriteBandwidth(cm, devices, o, port++);

  const latArgs = ['-d', dev, '-s', String(o.latSize), '-n', String(o.latIters)];
  const latReport = await perftest('ib_send_lat', latArgs, o.addr, port++);
  const pLat = resultRow(latReport, /t_avg\[usec\]/)[5];
  const jLatBusy = await jsSendLatency(cm, devices, o, port++, 'busy');
  const jLatEvent = await jsSendLatency(cm, devices, o, port++, 'event');
  const jLatOne = await jsSendLatencyOneProcess(cm, devices, o, port++);

  const row = (what: string, js: string, pt: string, ratio: string) =>
    console.log(`${what.padEnd(44)}${js.padStart(12)}${pt.padStart(12)}${ratio.padStart(10)}`);
  row('', 'rdma-target', 'perftest', 'ratio');
  row(`RDMA WRITE ${o.size / 1024} KiB x${o.depth} [MiB/s]`, jBw.toFixed(1), pBw.toFixed(1), (jBw / pBw).toFixed(2));
  row(`SEND ${o.latSize} B latency, busy poll [us, mean]`, jLatBusy.toFixed(2), pLat.toFixed(2), (jLatBusy / pLat).toFixed(2));
  row(`SEND ${o.latSize} B latency, CQ events [us, mean]`, jLatEvent.toFixed(2), pLat.toFixed(2), (jLatEvent / pLat).toFixed(2));
  row(`SEND ${o.latSize} B latency, 1 process [us, mean]`, jLatOne.toFixed(2), pLat.toFixed(2), (jLatOne / pLat).toFixed(2));
  console.log(`\nperftest: ib_write_bw ${bwArgs.join(' ')} -R -F (server; client adds ${o.addr})`);
  console.log(`perftest: ib_send_lat ${latArgs.join(' ')} -R -F (server; client adds ${o.addr})`);
  const bwOk = jBw >= 0.9 * pBw;
  const latOk = jLatBusy <= 2 * pLat;
  console.log(`goals: bandwidth >= 90% of perftest: ${bwOk ? 'met' : 'NOT met'}; mean latency <= 2x perftest: ${latOk ? 'met' : 'NOT met'}`);
  devices.close();
  cm.close();
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exit(1);
});
