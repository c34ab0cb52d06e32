// The binding's state is per Node environment: a worker thread that opens verbs objects
// (a connected pair of QPs on its own CQ, PD, context and CM channel) and then ends, by
// itself or terminated, closes only its own objects, children before parents, through its
// env's cleanup hook; the main thread's objects on the same device keep working.
import { Worker } from 'node:worker_threads';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ADDR_A, BufferPool, DeviceTable, RdmaCm, SendBatch, access, connectPair, devicesOrFail, freshPort, native, postRecvs } from './rc.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
let cm: RdmaCm;
let devices: DeviceTable;

beforeAll(() => {
  devicesOrFail();
  cm = new RdmaCm();
  devices = new DeviceTable();
});

afterAll(() => {
  devices?.close();
  cm?.close();
});

// In the worker: a listener on `address:port` and a client of it on one CM channel, both
// with a QP on one CQ and PD, plus an MR and an SRQ; reports its live objects once both
// sides are ESTABLISHED, then waits to be told to exit (or to be terminated), all open.
const WORKER = `
const { parentPort, workerData: w } = require('node:worker_threads');
const { createRequire } = require('node:module');
const n = createRequire(w.root + '/package.json')('node-gyp-build')(w.root);
const c = n.constants;
const keep = (globalThis.keep = []);
let established = 0;
const qpOn = (id) => keep.push(new n.QueuePair(id, pd, cq, cq, null, { maxSendWr: 4, maxRecvWr: 4 }));
const ch = new n.CmEventChannel((ev) => {
  if (ev.type === 'RDMA_CM_EVENT_ADDR_RESOLVED') client.resolveRoute(2000);
  else if (ev.type === 'RDMA_CM_EVENT_ROUTE_RESOLVED') { qpOn(client); client.connect({}); }
  else if (ev.type === 'RDMA_CM_EVENT_CONNECT_REQUEST') { qpOn(ev.id); ev.id.accept({}); }
  else if (ev.type === 'RDMA_CM_EVENT_ESTABLISHED') {
    if (++established === 2) parentPort.postMessage({ live: n.liveObjects(), states: keep.slice(-2).map((q) => q.state()) });
  } else throw new Error('unexpected ' + ev.type + ' (status ' + ev.status + ')');
});
const listener = new n.CmId(ch);
listener.bind(w.address, w.port);
listener.listen(8);
const ctx = new n.Context(listener.deviceName, () => {});
const pd = new n.ProtectionDomain(ctx);
const cq = new n.CompletionQueue(ctx, 16, Buffer.alloc(16 * c.CQ_RECORD_BYTES), () => {});
keep.push(ch, listener, ctx, pd, cq, new n.MemoryRegion(pd, 4096, c.ACCESS_LOCAL_WRITE), new n.SharedReceiveQueue(pd, { maxWr: 4 }));
const client = new n.CmId(ch);
keep.push(client);
client.resolveAddr(w.address, w.port, 2000);
parentPort.on('message', (m) => { if (m === 'exit') process.exit(0); });
`;

interface Report {
  live: Record<string, number>;
  states: string[];
}

function startWorker(port: number): Promise<{ worker: Worker; report: Report }> {
  const worker = new Worker(WORKER, { eval: true, workerData: { root, address: ADDR_A, port } });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('the worker did not connect in 30 s')), 30_000);
    worker.once('message', (report: Report) => {
      clearTimeout(t);
      resolve({ worker, report });
    });
    worker.once('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
}

test('a worker thread ending (by itself, or terminated) closes only its own verbs objects', async () => {
  const n = native();
  const c = n.constants;
  const name = devicesOrFail()[0];
  // The main thread's own objects, raw, kept open across both workers.
  const ctx = new n.Context(name, () => {});
  const pd = new n.ProtectionDomain(ctx);
  const cq = new n.CompletionQueue(ctx, 16, Buffer.alloc(16 * c.CQ_RECORD_BYTES), () => {});
  const mr = new n.MemoryRegion(pd, 4096, access());
  mr.buffer.write('main thread');
  const mine = n.liveObjects();

  for (const ending of ['exit', 'terminate'] as const) {
    const port = freshPort();
    const { worker, report } = await startWorker(port);
    // Counts are per env: the worker sees only its objects, the main thread only its own.
    expect(report.live).toEqual({ contexts: 1, pds: 1, mrs: 1, cqs: 1, srqs: 1, qps: 2, cmChannels: 1, cmIds: 3 });
    expect(report.states).toEqual(['RTS', 'RTS']);
    expect(n.liveObjects()).toEqual(mine);
    // The worker's listener holds the port...
    const probe = cm.createId();
    expect(() => probe.bind(ADDR_A, port)).toThrow(expect.objectContaining({ code: 'EADDRINUSE' }));
    cm.destroy(probe);

    const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
    if (ending === 'exit') worker.postMessage('exit');
    else await worker.terminate();
    expect(await exited).toBe(ending === 'exit' ? 0 : 1);

    // ...until its env's cleanup destroyed it (with its QPs, CQ, PD and channel).
    const again = cm.createId();
    again.bind(ADDR_A, port);
    again.listen(8);
    cm.destroy(again);
    // The main thread's objects are untouched and still work.
    expect(n.liveObjects()).toEqual(mine);
    expect(ctx.query().name).toBe(name);
    expect(cq.poll()).toBe(0);
    expect(mr.buffer.toString('utf8', 0, 11)).toBe('main thread');
    const mr2 = new n.MemoryRegion(pd, 4096, access());
    expect(mr2.lkey).toBeGreaterThan(0);
    mr2.close();
  }

  // And a whole connection in the main thread still moves data.
  let serverPool!: BufferPool;
  const pair = await connectPair(cm, devices, 8, (ep, side) => {
    if (side !== 'server') return;
    serverPool = new BufferPool(ep.dev.pd, 64, 2, access());
    postRecvs(ep, serverPool, 0, 2);
  });
  const m = new BufferPool(pair.client.dev.pd, 64, 1, access());
  try {
    m.view(0).write('after the workers');
    const s = new SendBatch(1).add(pair.client.disp.register(pair.client.sends, 0), c.WR_SEND, c.SEND_SIGNALED, m.address(0), 17, m.lkey);
    pair.client.qp.postSend(s.words, s.count);
    expect((await pair.client.sends.wait(1))[0].statusName).toBe('success');
    const [r] = await pair.server.recvs.wait(1);
    expect(serverPool.view(r.cookie).subarray(0, 17).toString()).toBe('after the workers');
  } finally {
    m.close();
    serverPool.close();
    pair.close();
  }

  const before = n.liveObjects();
  ctx.close(); // takes the PD, CQ and MR with it
  expect(n.liveObjects()).toEqual({
    ...before,
    contexts: before.contexts - 1,
    pds: before.pds - 1,
    cqs: before.cqs - 1,
    mrs: before.mrs - 1,
  });
});
