// The binding against real verbs: RC QPs over RDMA/CM between rxe0 (ADDR_A) and rxe1
// (ADDR_B). Data is verified byte for byte.
import { randomFillSync } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  ADDR_A,
  SOURCE,
  BufferPool,
  Completions,
  DeviceTable,
  RdmaCm,
  SendBatch,
  access,
  connectPair,
  devicesOrFail,
  native,
  postRecvs,
  type Endpoint,
} from './rc.js';

const MiB = 1 << 20;
let cm: RdmaCm;
let devices: DeviceTable;

beforeAll(() => {
  const names = devicesOrFail();
  // The log shows which devices the tier ran on.
  for (const d of native().listDevices())
    console.log(
      `device ${d.name} node_guid ${d.nodeGuid} ports ${d.ports.map((p) => `${p.port}:${p.state}/${p.linkLayer}/mtu${p.activeMtu}`).join(',')} max_qp_wr ${d.maxQpWr} max_sge ${d.maxSge} max_qp_rd_atom ${d.maxQpRdAtom} max_mr_size ${d.maxMrSize}`,
    );
  expect(names.length).toBeGreaterThan(0);
  cm = new RdmaCm();
  devices = new DeviceTable();
});

afterAll(() => {
  devices?.close();
  cm?.close();
});

// Sizes from 1 B to 1 MiB, mostly small (soft-RoCE under emulation moves ~50 MiB/s).
function sizeFor(i: number, rnd: Uint32Array): number {
  const r = rnd[i % rnd.length];
  const bucket = r % 100;
  if (bucket < 75) return 1 + ((r >>> 8) % 4096);
  if (bucket < 98) return 4096 + ((r >>> 8) % (60 * 1024));
  return 64 * 1024 + ((r >>> 8) % (MiB - 64 * 1024 + 1));
}

describe('RC queue pairs over RDMA/CM', () => {
  test('SEND/RECV, RDMA WRITE and RDMA READ: 10,000 mixed-size operations verified byte for byte', async () => {
    const c = native().constants;
    const SLOTS = 16; // WRs per batch
    const source = randomFillSync(Buffer.alloc(2 * MiB));
    const rnd = randomFillSync(new Uint32Array(4096));
    let serverRecv!: BufferPool;
    let clientRecv!: BufferPool;
    const pair = await connectPair(cm, devices, 64, (ep, side) => {
      const pool = new BufferPool(ep.dev.pd, 64 * 1024, SLOTS, access());
      if (side === 'server') serverRecv = pool;
      else clientRecv = pool;
      postRecvs(ep, pool, 0, SLOTS);
    });
    const { server, client } = pair;
    try {
      const local = new BufferPool(client.dev.pd, MiB, SLOTS, access());
      const remote = new BufferPool(server.dev.pd, MiB, SLOTS, access());
      const batch = new SendBatch(SLOTS);
      let ops = 0;
      let bytes = 0;
      const kinds = ['send', 'write', 'read'] as const;
      for (let round = 0; ops < 10_000; round++) {
        const kind = kinds[round % 3];
        batch.reset();
        const sizes: number[] = [];
        for (let s = 0; s < SLOTS && ops < 10_000; s++, ops++) {
          let size = sizeFor(ops, rnd);
          if (kind === 'send') size = Math.min(size, 64 * 1024);
          const off = (ops * 7919) % (source.length - size);
          sizes.push(size);
          bytes += size;
          const wrId = client.disp.register(client.sends, s);
          if (kind === 'send') {
            source.copy(local.view(s), 0, off, off + size);
            batch.add(wrId, c.WR_SEND, c.SEND_SIGNALED, local.address(s), size, local.lkey);
          } else if (kind === 'write') {
            source.copy(local.view(s), 0, off, off + size);
            batch.add(wrId, c.WR_RDMA_WRITE, c.SEND_SIGNALED, local.address(s), size, local.lkey, remote.address(s), remote.rkey);
          } else {
            source.copy(remote.view(s), 0, off, off + size);
            local.view(s).fill(0, 0, size);
            batch.add(wrId, c.WR_RDMA_READ, c.SEND_SIGNALED, local.address(s), size, local.lkey, remote.address(s), remote.rkey);
          }
        }
        expect(client.qp.postSend(batch.words, batch.count)).toBe(batch.count);
        const done = await client.sends.wait(batch.count);
        for (const d of done) expect(d.statusName).toBe('success');
        if (kind === 'send') {
          const got = await server.recvs.wait(batch.count);
          for (let s = 0; s < got.length; s++) {
            expect(got[s].byteLen).toBe(sizes[s]);
            expect(serverRecv.view(got[s].cookie).subarray(0, sizes[s]).equals(local.view(s).subarray(0, sizes[s]))).toBe(true);
          }
          postRecvs(server, serverRecv, 0, got.length);
        } else {
          for (let s = 0; s < sizes.length; s++) {
            const a = local.view(s).subarray(0, sizes[s]);
            const b = remote.view(s).subarray(0, sizes[s]);
            expect(a.equals(b), `${kind} #${s} of ${sizes[s]} bytes`).toBe(true);
          }
        }
      }
      console.log(`verified ${ops} operations, ${(bytes / MiB).toFixed(1)} MiB`);
      expect(ops).toBe(10_000);
      local.close();
      remote.close();
    } finally {
      pair.close();
      serverRecv.close();
      clientRecv.close();
    }
  });

  test('a shared receive queue serves several QPs', async () => {
    const c = native().constants;
    const dev = devices.get(readdirSync('/sys/class/infiniband').length ? await serverDeviceName() : 'rxe0');
    const srqPool = new BufferPool(dev.pd, 4096, 64, access());
    const srq = new (native().SharedReceiveQueue)(dev.pd, { maxWr: 64, maxSge: 1 });
    const srqRecvs = new Completions();
    const { CompletionDispatcher, RecvBatch } = await import('../../lib/verbs/index.js');
    const disp = new CompletionDispatcher(dev.context, 256, 256);
    const rb = new RecvBatch(64);
    for (let s = 0; s < 64; s++) rb.add(disp.register(srqRecvs, s), srqPool.address(s), 4096, srqPool.lkey);
    expect(srq.postRecv(rb.words, rb.count)).toBe(64);

    const port = 31000 + (process.pid % 1000);
    const serverIds: import('../../lib/verbs/index.js').NativeCmId[] = [];
    const qps: import('../../lib/verbs/index.js').NativeQp[] = [];
    const listener = cm.listen(ADDR_A, port, (ev) => {
      const id = ev.id!;
      serverIds.push(id);
      qps.push(new (native().QueuePair)(id, dev.pd, disp.cq, disp.cq, srq, { maxSendWr: 16 }));
      id.accept({});
    });
    const clients: Endpoint[] = [];
    const { CompletionDispatcher: CD } = await import('../../lib/verbs/index.js');
    for (let k = 0; k < 3; k++) {
      const id = await cm.resolve(ADDR_A, port, 2000, SOURCE);
      const cdev = devices.get(id.deviceName!);
      const cdisp = new CD(cdev.context, 64, 64);
      const qp = new (native().QueuePair)(id, cdev.pd, cdisp.cq, cdisp.cq, null, { maxSendWr: 16, maxRecvWr: 1 });
      await cm.connect(id, {});
      clients.push({ id, dev: cdev, disp: cdisp, qp, sends: new Completions(), recvs: new Completions() });
    }
    // Each client sends 8 messages naming itself; all land in the one SRQ.
    const msgs = new BufferPool(clients[0].dev.pd, 64, 32, access());
    for (let k = 0; k < 3; k++) {
      const b = new SendBatch(8);
      for (let m = 0; m < 8; m++) {
        const slot = k * 8 + m;
        msgs.view(slot).write(`client ${k} message ${m}`);
        b.add(clients[k].disp.register(clients[k].sends, slot), c.WR_SEND, c.SEND_SIGNALED, msgs.address(slot), 32, msgs.lkey);
      }
      clients[k].qp.postSend(b.words, b.count);
    }
    for (const cl of clients) for (const d of await cl.sends.wait(8)) expect(d.statusName).toBe('success');
    const got = await srqRecvs.wait(24);
    const texts = got.map((d) => srqPool.view(d.cookie).subarray(0, 32).toString().replace(/\0+$/, ''));
    const qpNums = new Set(got.map((d) => d.qpNum));
    expect(qpNums.size).toBe(3);
    for (let k = 0; k < 3; k++) for (let m = 0; m < 8; m++) expect(texts).toContain(`client ${k} message ${m}`);
    for (const cl of clients) {
      cm.destroy(cl.id);
      cl.disp.close();
    }
    for (const id of serverIds) cm.destroy(id);
    cm.destroy(listener);
    srq.close();
    disp.close();
    srqPool.close();
    msgs.close();
  });
});

// The device that ADDR_A resolves to (rxe0 in the VM).
async function serverDeviceName(): Promise<string> {
  const id = await cm.resolve(ADDR_A, 9, 2000);
  const name = id.deviceName!;
  cm.destroy(id);
  return name;
}
