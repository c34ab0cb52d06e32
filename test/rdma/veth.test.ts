// Across the wire: a connection from rxe1 (10.77.0.2) to rxe0 (10.77.0.1) whose packets
// really cross the veth pair. Both addresses are local to the guest, so by default the
// kernel routes RDMA/CM over rxe0's loopback; this file reroutes locally generated traffic
// through the veths for its duration (docs/rxe-vm.md, "Loopback, not the veth").
// Few operations: under emulation, rxe on this path retransmits and is slow.
import { execSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ADDR_A, ADDR_B, BufferPool, Completions, DeviceTable, RdmaCm, SendBatch, access, devicesOrFail, native, type Endpoint } from './rc.js';
import { CompletionDispatcher, RecvBatch } from '../../lib/verbs/index.js';

const inVm = process.env.RDMA_TARGET_VM === '1';
const sh = (c: string) => execSync(c, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
let cm: RdmaCm;
let devices: DeviceTable;

const ROUTING = [
  'sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.veth0.rp_filter=0 net.ipv4.conf.veth1.rp_filter=0',
  'sysctl -qw net.ipv4.conf.all.accept_local=1 net.ipv4.conf.veth0.accept_local=1 net.ipv4.conf.veth1.accept_local=1',
  `ip route add ${ADDR_A}/32 dev veth1 src ${ADDR_B} table 100`,
  `ip route add ${ADDR_B}/32 dev veth0 src ${ADDR_A} table 100`,
  'ip rule add pref 100 iif lo lookup 100',
  'ip rule add pref 1000 lookup local',
  'ip rule del pref 0 lookup local',
];
const UNDO = ['ip rule add pref 0 lookup local', 'ip rule del pref 1000 lookup local', 'ip rule del pref 100', 'ip route flush table 100'];

beforeAll(() => {
  if (!inVm) throw new Error('veth.test.ts reroutes the guest network: it runs only in the VM (npm run test:rdma)');
  devicesOrFail();
  for (const c of ROUTING) sh(c);
  cm = new RdmaCm();
  devices = new DeviceTable();
});

afterAll(() => {
  devices?.close();
  cm?.close();
  if (inVm)
    for (const c of UNDO) {
      try {
        sh(c);
      } catch {
        /* best effort */
      }
    }
});

test('rxe1 → rxe0 over the veth: SEND, RDMA WRITE and RDMA READ verified', async () => {
  const c = native().constants;
  const port = 33000 + (process.pid % 1000);
  let server: Endpoint | undefined;
  let serverPool: BufferPool | undefined;
  const accepted = new Promise<void>((resolve, reject) => {
    const listener = cm.listen(ADDR_A, port, (ev) => {
      try {
        const id = ev.id!;
        const dev = devices.get(id.deviceName!);
        const disp = new CompletionDispatcher(dev.context, 64, 64);
        const qp = new (native().QueuePair)(id, dev.pd, disp.cq, disp.cq, null, { maxSendWr: 16, maxRecvWr: 16 });
        serverPool = new BufferPool(dev.pd, 65536, 4, access());
        server = { id, dev, disp, qp, sends: new Completions(), recvs: new Completions() };
        const rb = new RecvBatch(1).add(disp.register(server.recvs, 0), serverPool.address(0), 65536, serverPool.lkey);
        qp.postRecv(rb.words, rb.count);
        cm.next(id, 30_000).then((e) => (e.type === 'RDMA_CM_EVENT_ESTABLISHED' ? resolve() : reject(new Error(e.type))), reject);
        id.accept({ initiatorDepth: 4, responderResources: 4 });
      } catch (e) {
        reject(e);
      }
    });
    void listener;
  });
  const id = await cm.resolve(ADDR_A, port, 5000, ADDR_B);
  expect(id.deviceName).toBe('rxe1');
  const dev = devices.get('rxe1');
  const disp = new CompletionDispatcher(dev.context, 64, 64);
  const qp = new (native().QueuePair)(id, dev.pd, disp.cq, disp.cq, null, { maxSendWr: 16, maxRecvWr: 1 });
  await cm.connect(id, { initiatorDepth: 4, responderResources: 4 }, 30_000);
  await accepted;
  expect(server!.id.deviceName).toBe('rxe0');

  const sends = new Completions();
  const local = new BufferPool(dev.pd, 65536, 2, access());
  randomFillSync(local.view(0));
  const b = new SendBatch(3)
    .add(disp.register(sends, 0), c.WR_SEND, c.SEND_SIGNALED, local.address(0), 65536, local.lkey)
    .add(disp.register(sends, 1), c.WR_RDMA_WRITE, c.SEND_SIGNALED, local.address(0), 65536, local.lkey, serverPool!.address(1), serverPool!.rkey);
  qp.postSend(b.words, b.count);
  for (const d of await sends.wait(2, 60_000)) expect(d.statusName).toBe('success');
  const [r] = await server!.recvs.wait(1, 60_000);
  expect(r.byteLen).toBe(65536);
  expect(serverPool!.view(0).equals(local.view(0))).toBe(true);
  expect(serverPool!.view(1).equals(local.view(0))).toBe(true);
  randomFillSync(serverPool!.view(2));
  const rd = new SendBatch(1).add(
    disp.register(sends, 2),
    c.WR_RDMA_READ,
    c.SEND_SIGNALED,
    local.address(1),
    65536,
    local.lkey,
    serverPool!.address(2),
    serverPool!.rkey,
  );
  qp.postSend(rd.words, rd.count);
  expect((await sends.wait(1, 60_000))[0].statusName).toBe('success');
  expect(local.view(1).equals(serverPool!.view(2))).toBe(true);
  // And the bytes went over the wire: veth1 carried them.
  const txBytes = Number(sh('cat /sys/class/net/veth1/statistics/tx_bytes'));
  expect(txBytes).toBeGreaterThan(2 * 65536);
  cm.destroy(id);
  cm.destroy(server!.id);
  disp.close();
  server!.disp.close();
  local.close();
  serverPool!.close();
}, 300_000);
