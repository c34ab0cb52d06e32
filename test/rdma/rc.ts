// Test support: RC connections between the two soft-RoCE ports through RDMA/CM, and a
// completion handler that turns completions into awaitable results.
import { afterAll, beforeAll } from 'vitest';
import {
  BufferPool,
  CompletionDispatcher,
  DeviceTable,
  RdmaCm,
  RecvBatch,
  SendBatch,
  native,
  requireDevices,
  type CompletionHandler,
  type NativeCmId,
  type NativeMr,
  type NativeQp,
  type WorkCompletion,
  type DeviceResources,
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
      this.waiters.push({
        n: total,
        resolve: () => {
          clearTimeout(t);
          resolve();
        },
      });
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
    maxSendWr: depth,
    maxRecvWr: depth,
    maxSendSge: 4,
    maxRecvSge: 1,
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
  cm: RdmaCm,
  devices: DeviceTable,
  depth = 64,
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
    server: s,
    client,
    listener,
    close() {
      for (const ep of [client, s]) {
        cm.destroy(ep.id);
        ep.disp.close();
      }
      cm.destroy(listener);
    },
  };
}

/**
 * The RDMA/CM channel and device table a file's tests share: opened in beforeAll (a missing
 * device fails the file, never skips it) and handed to `use`, closed in afterAll, after
 * which `after` runs.
 */
export function verbsPerFile(use: (cm: RdmaCm, devices: DeviceTable) => void, after?: () => void): void {
  let cm: RdmaCm | undefined;
  let devices: DeviceTable | undefined;
  beforeAll(() => {
    devicesOrFail();
    cm = new RdmaCm();
    devices = new DeviceTable();
    use(cm, devices);
  });
  afterAll(() => {
    devices?.close();
    cm?.close();
    after?.();
  });
}

/**
 * The initiator of a hostile test on the project's binding: an RC connection to ADDR_A:port,
 * one pool of `slotSize` slots (0..31 receives, posted again as they complete; 32..47 sends,
 * used in turn) and a 1 MiB registered buffer for the target's RDMA. The protocol is the
 * subclass's: it connects the id from open() and reads what received() hands it.
 */
export class RawClient {
  ep!: Endpoint;
  ctrl!: BufferPool;
  data!: NativeMr;
  private cm!: RdmaCm;
  private sendCount = 0;

  constructor(private readonly slotSize: number) {}

  /** Resolves the target's address, builds the QP and buffers, posts the receives. */
  protected async open(cm: RdmaCm, devices: DeviceTable, port: number): Promise<NativeCmId> {
    this.cm = cm;
    const id = await cm.resolve(ADDR_A, port, 2000);
    const dev = devices.get(id.deviceName!);
    const disp = new CompletionDispatcher(dev.context, 256, 256);
    const qp = new (native().QueuePair)(id, dev.pd, disp.cq, disp.cq, null, { maxSendWr: 64, maxRecvWr: 32 });
    this.ep = { id, dev, disp, qp, sends: new Completions(), recvs: new Completions() };
    this.ctrl = new BufferPool(dev.pd, this.slotSize, 48, access());
    this.data = new (native().MemoryRegion)(dev.pd, 1 << 20, access());
    postRecvs(this.ep, this.ctrl, 0, 32);
    const orig = this.ep.recvs.onCompletion.bind(this.ep.recvs);
    this.ep.recvs.onCompletion = (wc, cookie) => {
      orig(wc, cookie);
      if (!wc.ok) return;
      const bytes = Buffer.from(this.ctrl.view(cookie).subarray(0, wc.byteLen));
      postRecvs(this.ep, this.ctrl, cookie, 1);
      this.received(bytes);
    };
    return id;
  }

  /** One message received (a copy: its slot is already posted again). */
  protected received(_bytes: Buffer): void {}

  /** Sends raw bytes as one SEND. */
  sendRaw(bytes: Uint8Array): void {
    const slot = 32 + (this.sendCount++ % 16);
    this.ctrl.view(slot).set(bytes);
    const c = native().constants;
    const b = new SendBatch(1).add(
      this.ep.disp.register(this.ep.sends, slot),
      c.WR_SEND,
      c.SEND_SIGNALED,
      this.ctrl.address(slot),
      bytes.length,
      this.ctrl.lkey,
    );
    this.ep.qp.postSend(b.words, b.count);
  }

  close(): void {
    try {
      this.cm.destroy(this.ep.id);
    } catch {
      /* gone */
    }
    this.ep.disp.close();
    this.ctrl.close();
    this.data.close();
  }
}

export { BufferPool, CompletionDispatcher, DeviceTable, RdmaCm, RecvBatch, SendBatch, native };
