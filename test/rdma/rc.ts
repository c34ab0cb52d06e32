// Test support: RC connections between the two soft-RoCE ports through RDMA/CM, and a
// completion handler that turns completions into awaitable results.
import {
  BufferPool, CompletionDispatcher, DeviceTable, RdmaCm, RecvBatch, SendBatch, native, requireDevices,
  type CompletionHandler, type NativeCmId, type NativeQp, type WorkCompletion, type DeviceResources,
} from '../../lib/verbs/index.js';

/** Server and client addresses: the VM's veth pair unless pointed at real ports. */
export const ADDR_A = process.env.RDMA_TEST_ADDR_A ?? '10.77.0.1';
export const ADDR_B = process.env.RDMA_TEST_ADDR_B ?? '10.77.0.2';

/**
 * Source address for clients. Unset by default: with both addresses local to the guest,
 * the kernel routes RDMA/CM to 10.77.0.1 over rxe0's loopback and resolution bound to
 * 10.77.0.2 times out (docs/rxe-vm.md, "Loopback, not the veth").
 */
export const SOURCE = process.env.RDMA_TEST_SOURCE || undefined;

let nextPort = 20000 + (process.pid % 5000);
export const freshPort = (): number => nextPort++;

export function access(): number {
  const c = native().constants;
  return c.ACCESS_LOCAL_WRITE | c.ACCESS_REMOTE_WRITE | c.ACCESS_REMOTE_READ;
}

export function devicesOrFail(): string[] {
  // Throws ERR_RDMA_UNAVAILABLE with advice: a missing device fails the tier, it never skips.
  return requireDevices().map((d) => d.name);
}

export interface Done {
  status: number;
  statusName: string;
  opcode: number;
  byteLen: number;
  qpNum: number;
  cookie: number;
}

/** Collects completions; wait(n) resolves with the next n not yet taken, once they arrive. */
export class Completions implements CompletionHandler {
  readonly done: Done[] = [];
  private taken = 0;
  private waiters: { n: number; resolve: () => void }[] = [];
  onCompletion(wc: WorkCompletion, cookie: number): void {
    this.done.push({ status: wc.status, statusName: wc.statusName, opcode: wc.opcode, byteLen: wc.byteLen, qpNum: wc.qpNum, cookie });
    this.waiters = this.waiters.filter((w) => {
      if (this.done.length < w.n) return true;
      w.resolve();
      return false;
    });
  }
  wait(count: number, timeoutMs = 60_000): Promise<Done[]> {
    const target = (this.taken += count);
    return this.until(target, timeoutMs).then(() => this.done.slice(target - count, target));
  }
  until(total: number, timeoutMs = 60_000): Promise<void> {
    if (this.done.length >= total) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for completions: ${this.done.length}/${total}`)), timeoutMs);
      this.waiters.push({ n: total, resolve: () => { clearTimeout(t); resolve(); } });
    });
  }
}

export interface Endpoint {
  id: NativeCmId;
  dev: DeviceResources;
  disp: CompletionDispatcher;
  qp: NativeQp;
  sends: Completions;
  recvs: Completions;
}

export interface EndpointOptions {
  depth?: number;
  recvPool?: BufferPool;
  /** Receives to post before connecting, as [wrId-cookie, slot] from recvPool. */
  prepost?: number;
}

function endpoint(devices: DeviceTable, id: NativeCmId, depth: number): Endpoint {
  const dev = devices.get(id.deviceName!);
  const disp = new CompletionDispatcher(dev.context, depth * 2 + 16, depth * 2 + 16);
  const qp = new (native().QueuePair)(id, dev.pd, disp.cq, disp.cq, null, {
    maxSendWr: depth, maxRecvWr: depth, maxSendSge: 4, maxRecvSge: 1,
  });
  return { id, dev, disp, qp, sends: new Completions(), recvs: new Completions() };
}

/** Posts `count` receives of whole slots of `pool` (slots 0..count-1), cookie = slot. */
export function postRecvs(ep: Endpoint, pool: BufferPool, first: number, count: number): void {
  const b = new RecvBatch(count);
  for (let s = first; s < first + count; s++) b.add(ep.disp.register(ep.recvs, s), pool.address(s), pool.slotSize, pool.lkey);
  ep.qp.postRecv(b.words, b.count);
}

export interface Pair {
  server: Endpoint;
  client: Endpoint;
  listener: NativeCmId;
  close(): void;
}

/**
 * A connected RC pair: server on ADDR_A, client from ADDR_B. `prepare` runs on each side
 * after its QP exists and before accept/connect (post receives there).
 */
export async function connectPair(
  cm: RdmaCm, devices: DeviceTable, depth = 64,
  prepare: (ep: Endpoint, side: 'server' | 'client') => void = () => {},
): Promise<Pair> {
  const port = freshPort();
  let server: Endpoint | undefined;
  let listenerRef: NativeCmId | undefined;
  const serverUp = new Promise<Endpoint>((resolve, reject) => {
    const listener = cm.listen(ADDR_A, port, (ev) => {
      try {
        const ep = endpoint(devices, ev.id!, depth);
        prepare(ep, 'server');
        cm.next(ep.id, 15_000).then((e) => (e.type === 'RDMA_CM_EVENT_ESTABLISHED' ? resolve(ep) : reject(new Error(e.type))), reject);
        ep.id.accept({ initiatorDepth: 16, responderResources: 16 });
        server = ep;
      } catch (e) {
        reject(e);
      }
    });
    listenerRef = listener;
  });
  const id = await cm.resolve(ADDR_A, port, 2000, SOURCE);
  const client = endpoint(devices, id, depth);
  prepare(client, 'client');
  await cm.connect(id, { initiatorDepth: 16, responderResources: 16 });
  server = await serverUp;
  const listener = listenerRef!;
  const s = server;
  return {
    server: s, client, listener,
    close() {
      for (const ep of [client, s]) {
        cm.destroy(ep.id);
        ep.disp.close();
      }
      cm.destroy(listener);
    },
  };
}

export { BufferPool, CompletionDispatcher, DeviceTable, RdmaCm, RecvBatch, SendBatch, native };
