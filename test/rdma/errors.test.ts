// Error paths against real verbs: a bad rkey, a peer that goes away mid-transfer, and
// connection churn without leaking fds, MRs or QPs.
import { readdirSync } from 'node:fs';
import { expect, test } from 'vitest';
import { ADDR_A, BufferPool, type DeviceTable, type RdmaCm, SendBatch, access, connectPair, native, postRecvs, verbsPerFile } from './rc.js';
import { UNSIGNALED_WR_ID } from '../../lib/verbs/index.js';

let cm: RdmaCm;
let devices: DeviceTable;

verbsPerFile((c, d) => {
  cm = c;
  devices = d;
});

const openFds = () => readdirSync('/proc/self/fd').length;

test('an RDMA WRITE with a wrong rkey completes in error; the QP is errored and closed; other QPs keep working', async () => {
  const c = native().constants;
  const bad = await connectPair(cm, devices);
  const good = await connectPair(cm, devices, 16, (ep, side) => {
    if (side === 'server') postRecvs(ep, recvPool(ep), 0, 4);
  });
  const local = new BufferPool(bad.client.dev.pd, 4096, 2, access());
  const remote = new BufferPool(bad.server.dev.pd, 4096, 2, access());
  try {
    const b = new SendBatch(1).add(
      bad.client.disp.register(bad.client.sends, 0),
      c.WR_RDMA_WRITE,
      c.SEND_SIGNALED,
      local.address(0),
      512,
      local.lkey,
      remote.address(0),
      remote.rkey ^ 0x5a5a00,
    );
    bad.client.qp.postSend(b.words, b.count);
    const [wc] = await bad.client.sends.wait(1);
    expect(wc.status).not.toBe(0);
    expect(wc.statusName).toMatch(/remote access error|remote invalid request|remote operation error/i);
    expect(bad.client.qp.state()).toBe('ERR');
    // Posting to an errored QP either fails at once or completes flushed: never a crash.
    bad.client.qp.close();
    expect(() => bad.client.qp.postSend(b.words, b.count)).toThrow(/closed/);

    // The other connection is untouched.
    const m = new BufferPool(good.client.dev.pd, 64, 1, access());
    m.view(0).write('still alive');
    const s = new SendBatch(1).add(good.client.disp.register(good.client.sends, 0), c.WR_SEND, c.SEND_SIGNALED, m.address(0), 11, m.lkey);
    good.client.qp.postSend(s.words, s.count);
    expect((await good.client.sends.wait(1))[0].statusName).toBe('success');
    const [r] = await good.server.recvs.wait(1);
    expect(r.byteLen).toBe(11);
    expect(pools.get(good.server.id)!.view(r.cookie).subarray(0, 11).toString()).toBe('still alive');
    m.close();
  } finally {
    local.close();
    remote.close();
    bad.close();
    good.close();
  }
});

const pools = new Map<unknown, BufferPool>();
function recvPool(ep: { id: unknown; dev: { pd: import('../../lib/verbs/index.js').NativePd } }): BufferPool {
  const p = new BufferPool(ep.dev.pd, 256, 4, access());
  pools.set(ep.id, p);
  return p;
}

test('a peer disconnecting mid-transfer: in-flight work completes or flushes, DISCONNECTED arrives, later work flushes', async () => {
  const c = native().constants;
  const pair = await connectPair(cm, devices, 64);
  const local = new BufferPool(pair.client.dev.pd, 256 * 1024, 32, access());
  const remote = new BufferPool(pair.server.dev.pd, 256 * 1024, 32, access());
  const disconnected = cm.next(pair.client.id, 30_000);
  const reads = (n: number) => {
    const b = new SendBatch(n);
    for (let s = 0; s < n; s++)
      b.add(
        pair.client.disp.register(pair.client.sends, s),
        c.WR_RDMA_READ,
        c.SEND_SIGNALED,
        local.address(s),
        256 * 1024,
        local.lkey,
        remote.address(s),
        remote.rkey,
      );
    return b;
  };
  const first = reads(32);
  pair.client.qp.postSend(first.words, first.count);
  // The server side goes away while the reads are in flight.
  pair.server.id.disconnect();
  const done = await pair.client.sends.wait(32, 60_000);
  const failed = done.filter((d) => d.status !== 0);
  console.log(
    `peer disconnected mid-transfer: ${done.length - failed.length} reads completed, ${failed.length} failed (${[...new Set(failed.map((d) => d.statusName))].join(', ')})`,
  );
  expect(done).toHaveLength(32);
  expect((await disconnected).type).toBe('RDMA_CM_EVENT_DISCONNECTED');
  // What a target does on DISCONNECTED: error the QP so whatever is still posted flushes.
  pair.client.qp.toError();
  expect(pair.client.qp.state()).toBe('ERR');
  const second = reads(8);
  pair.client.qp.postSend(second.words, second.count);
  const flushed = await pair.client.sends.wait(8, 30_000);
  expect(flushed.map((d) => d.statusName)).toEqual(new Array(8).fill('Work Request Flushed Error'));
  local.close();
  remote.close();
  pair.close();
});

test('200 connect/disconnect cycles leave no open fds, MRs, QPs or CM ids behind', async () => {
  const before = { fds: openFds(), live: native().liveObjects() };
  for (let i = 0; i < 200; i++) {
    const pair = await connectPair(cm, devices, 8, (ep) => {
      const p = new BufferPool(ep.dev.pd, 4096, 2, access());
      pools.set(ep.id, p);
      postRecvs(ep, p, 0, 2);
    });
    const closed = cm.next(pair.server.id, 10_000);
    pair.client.id.disconnect();
    expect((await closed).type).toBe('RDMA_CM_EVENT_DISCONNECTED');
    for (const ep of [pair.server, pair.client]) {
      pools.get(ep.id)!.close();
      pools.delete(ep.id);
    }
    pair.close();
  }
  const after = { fds: openFds(), live: native().liveObjects() };
  console.log('before', JSON.stringify(before), 'after', JSON.stringify(after));
  expect(after.live).toEqual(before.live);
  expect(after.fds).toBeLessThanOrEqual(before.fds);
}, 600_000);

test('close() is idempotent; closing a parent closes its children first; closed objects refuse use; views stay readable', async () => {
  const c = native().constants;
  const base = native().liveObjects();
  const id = await cm.resolve(ADDR_A, 4791, 2000);
  const { DeviceResources, CompletionDispatcher } = await import('../../lib/verbs/index.js');
  const dev = new DeviceResources(id.deviceName!);
  const mr = new (native().MemoryRegion)(dev.pd, 8192, access());
  const disp = new CompletionDispatcher(dev.context, 16);
  const srq = new (native().SharedReceiveQueue)(dev.pd, { maxWr: 4 });
  const qp = new (native().QueuePair)(id, dev.pd, disp.cq, disp.cq, null, { maxSendWr: 4, maxRecvWr: 4 });
  const live = native().liveObjects();
  expect(live).toMatchObject({
    contexts: base.contexts + 1,
    pds: base.pds + 1,
    mrs: base.mrs + 1,
    cqs: base.cqs + 1,
    srqs: base.srqs + 1,
    qps: base.qps + 1,
  });
  expect(qp.state()).toBe('INIT');
  mr.buffer.write('survives deregistration');
  // The context takes the PD, MR, CQ, SRQ and QP with it (children first: the QP before its CQ and PD).
  dev.close();
  dev.close();
  expect(native().liveObjects()).toEqual({ ...base, cmIds: base.cmIds + 1 });
  expect(qp.state()).toBe('CLOSED');
  const b = new SendBatch(1).add(1, c.WR_SEND, c.SEND_SIGNALED, mr.address, 8, mr.lkey);
  expect(() => qp.postSend(b.words, b.count)).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }));
  expect(() => disp.cq.poll()).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }));
  expect(() => new (native().MemoryRegion)(dev.pd, 4096, access())).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }));
  for (const o of [qp, srq, mr, disp.cq, dev.pd, dev.context]) expect(() => o.close()).not.toThrow();
  // close() deregistered the MR; the memory belongs to the Buffer until it is unreachable.
  expect(mr.buffer.toString('utf8', 0, 23)).toBe('survives deregistration');
  // The CM id had the QP as a child only; it is still usable and closes once.
  expect(id.deviceName).toBe(dev.name);
  cm.destroy(id);
  id.close();
  expect(native().liveObjects()).toEqual(base);
  expect(() => id.resolveRoute(100)).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }));
});

test('a batch whose second WR is invalid: EINVAL with index 1 from ibv_post_send, the first still completes; ranges post by offset', async () => {
  const c = native().constants;
  const pair = await connectPair(cm, devices, 16);
  const local = new BufferPool(pair.client.dev.pd, 4096, 4, access());
  const remote = new BufferPool(pair.server.dev.pd, 4096, 4, access());
  try {
    const b = new SendBatch(3, 5);
    b.add(pair.client.disp.register(pair.client.sends, 0), c.WR_RDMA_WRITE, c.SEND_SIGNALED, local.address(0), 64, local.lkey, remote.address(0), remote.rkey);
    // 5 SGEs on a QP created with maxSendSge 4.
    b.begin(UNSIGNALED_WR_ID, c.WR_RDMA_WRITE, c.SEND_SIGNALED, 5, remote.address(1), remote.rkey);
    for (let s = 0; s < 5; s++) b.sge(local.address(1) + s * 8, 8, local.lkey);
    b.add(UNSIGNALED_WR_ID, c.WR_RDMA_WRITE, c.SEND_SIGNALED, local.address(2), 64, local.lkey, remote.address(2), remote.rkey);
    local.view(0).fill(0x5a, 0, 64);
    expect(() => pair.client.qp.postSend(b.words, b.count)).toThrow(expect.objectContaining({ code: 'EINVAL', syscall: 'ibv_post_send', index: 1 }));
    const [first] = await pair.client.sends.wait(1);
    expect(first.statusName).toBe('success');
    expect(remote.view(0).subarray(0, 64).equals(local.view(0).subarray(0, 64))).toBe(true);
    // The third WR alone, by word offset, with a real wr_id.
    b.setWrId(2, pair.client.disp.register(pair.client.sends, 2));
    local.view(2).fill(0xa5, 0, 64);
    expect(pair.client.qp.postSend(b.words, 1, b.offsetOf(2))).toBe(1);
    expect((await pair.client.sends.wait(1))[0].statusName).toBe('success');
    expect(remote.view(2).subarray(0, 64).equals(local.view(2).subarray(0, 64))).toBe(true);
    expect(() => pair.client.qp.postSend(b.words, 1, b.words.length + 1)).toThrow(RangeError);
    expect(pair.client.qp.state()).toBe('RTS');
  } finally {
    local.close();
    remote.close();
    pair.close();
  }
});
