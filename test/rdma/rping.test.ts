// Interop with rdma-core's rping (librdmacm/examples/rping.c), speaking its wire protocol
// from our side of the connection:
//   client SENDs a 16-byte advert {be64 addr, be32 rkey, be32 len} of its source buffer;
//   server RDMA READs it, SENDs a 16-byte "go ahead";
//   client SENDs the advert of its sink buffer; server RDMA WRITEs the data back
//   (strlen + 1 bytes), SENDs "go ahead"; the client compares source and sink. Repeat.
// The ping data is "rdma-ping-<n>: " followed by letters cycling 'A'..'z' from a start
// letter that advances per ping, and a trailing NUL.
import { spawn, type ChildProcess } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import {
  ADDR_A,
  BufferPool,
  Completions,
  CompletionDispatcher,
  type DeviceTable,
  type RdmaCm,
  SendBatch,
  access,
  freshPort,
  native,
  postRecvs,
  verbsPerFile,
  type Endpoint,
} from './rc.js';
import type { NativeCmId } from '../../lib/verbs/index.js';

const ADVERT = 16;
const PINGS = 20;
let cm: RdmaCm;
let devices: DeviceTable;

verbsPerFile(
  (c, d) => {
    cm = c;
    devices = d;
  },
  () => {
    // Every id, QP, CQ and MR the tests made was closed: nothing native outlives the file.
    const live = native().liveObjects();
    expect(
      Object.values(live).every((n) => n === 0),
      `native objects left open: ${JSON.stringify(live)}`,
    ).toBe(true);
  },
);

/** The bytes rping's client puts in its source buffer for ping `n` (size includes the NUL). */
function pingData(n: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  const head = Buffer.from(`rdma-ping-${n}: `);
  head.copy(b, 0, 0, Math.min(head.length, size));
  let c = 65 + (n % 58);
  for (let i = head.length; i < size; i++) {
    b[i] = c;
    c = c === 122 ? 65 : c + 1;
  }
  b[size - 1] = 0;
  return b;
}

function writeAdvert(into: Buffer, addr: number, rkey: number, len: number): void {
  into.writeBigUInt64BE(BigInt(addr), 0);
  into.writeUInt32BE(rkey, 8);
  into.writeUInt32BE(len, 12);
}

function readAdvert(from: Buffer): { addr: number; rkey: number; len: number } {
  return { addr: Number(from.readBigUInt64BE(0)), rkey: from.readUInt32BE(8), len: from.readUInt32BE(12) };
}

interface Proc {
  child: ChildProcess;
  /** stdout alone (what we parse); stderr is unbuffered and would interleave with it. */
  out: () => string;
  err: () => string;
  exit: Promise<number | null>;
}

function run(args: string[]): Proc {
  const child = spawn('rping', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => resolve(code));
  });
  return { child, out: () => out, err: () => err, exit };
}

/** `p`, or an Error naming `what` (evaluated when the time is up: it can show rping's output so far). */
function withTimeout<T>(p: Promise<T>, ms: number, what: () => string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<T>((_, reject) => (t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what()}`)), ms))),
  ]);
}

describe('rping interop', () => {
  test(`rping as server: our client runs ${PINGS} pings of rping's protocol, data verified`, async () => {
    const c = native().constants;
    const port = freshPort();
    const SIZE = 4000; // rping's -S: its RDMA buffer; our adverts must not exceed it
    const server = run(['-s', '-a', ADDR_A, '-p', String(port), '-C', String(PINGS), '-S', String(SIZE), '-v']);
    let ep: Endpoint | undefined;
    const pools: BufferPool[] = [];
    try {
      // rping listens a moment after it starts: retry while the port refuses.
      let id: NativeCmId | undefined;
      for (let attempt = 0; ; attempt++) {
        id = await cm.resolve(ADDR_A, port, 2000);
        const dev = devices.get(id.deviceName!);
        const disp = new CompletionDispatcher(dev.context, 64, 64);
        const qp = new (native().QueuePair)(id, dev.pd, disp.cq, disp.cq, null, { maxSendWr: 16, maxRecvWr: 4 });
        ep = { id, dev, disp, qp, sends: new Completions(), recvs: new Completions() };
        const ctrl = new BufferPool(dev.pd, ADVERT, 4, access()); // 0,1: receives; 2: adverts
        postRecvs(ep, ctrl, 0, 2);
        try {
          await cm.connect(id, { initiatorDepth: 1, responderResources: 1 });
          pools.push(ctrl);
          break;
        } catch (e) {
          ctrl.close();
          cm.destroy(id);
          disp.close();
          ep = undefined;
          if (attempt >= 50 || server.child.exitCode !== null) throw new Error(`${(e as Error).message}; rping: ${server.out()}${server.err()}`);
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      const ctrl = pools[0];
      const source = new BufferPool(ep!.dev.pd, SIZE, 1, access());
      const sink = new BufferPool(ep!.dev.pd, SIZE, 1, access());
      pools.push(source, sink);
      const e = ep!;
      const send = new SendBatch(1);
      let recvSlot = 0;
      const advertise = async (pool: BufferPool) => {
        writeAdvert(ctrl.view(2), pool.address(0), pool.rkey, SIZE);
        send.reset().add(e.disp.register(e.sends, 2), c.WR_SEND, c.SEND_SIGNALED, ctrl.address(2), ADVERT, ctrl.lkey);
        e.qp.postSend(send.words, send.count);
        const [s] = await e.sends.wait(1, 30_000);
        expect(s.statusName).toBe('success');
        const [r] = await e.recvs.wait(1, 30_000);
        expect(r.statusName).toBe('success');
        expect(r.byteLen).toBe(ADVERT); // rping's "go ahead"
        postRecvs(e, ctrl, r.cookie, 1);
        recvSlot++;
      };
      for (let n = 0; n < PINGS; n++) {
        const data = pingData(n, SIZE);
        data.copy(source.view(0));
        sink.view(0).fill(0xee);
        await advertise(source); // rping RDMA READs our source
        await advertise(sink); // rping RDMA WRITEs it back into our sink
        expect(sink.view(0).equals(data), `ping ${n} echoed byte for byte`).toBe(true);
      }
      expect(recvSlot).toBe(2 * PINGS);
      e.id.disconnect();
      const code = await withTimeout(
        server.exit,
        30_000,
        () => `rping server did not exit after our disconnect; stdout: ${server.out()} stderr: ${server.err()}`,
      );
      const echoed = server
        .out()
        .split('\n')
        .filter((l) => l.startsWith('server ping data: rdma-ping-'));
      console.log(`rping server exited ${code}; it printed ${echoed.length} pings; stderr: ${server.err().trim()}`);
      expect(code).toBe(0);
      expect(echoed).toHaveLength(PINGS);
      for (let n = 0; n < PINGS; n++)
        expect(echoed[n]).toBe(
          `server ping data: ${pingData(n, SIZE)
            .subarray(0, SIZE - 1)
            .toString()}`,
        );
    } finally {
      server.child.kill('SIGKILL');
      if (ep) {
        cm.destroy(ep.id);
        ep.disp.close();
      }
      for (const p of pools) p.close();
    }
  });

  test(`rping as client: our server reads, verifies and echoes ${PINGS} pings; rping -V validates`, async () => {
    const c = native().constants;
    const port = freshPort();
    const SIZE = 1500;
    let ep: Endpoint | undefined;
    const pools: BufferPool[] = [];
    let ctrl!: BufferPool;
    let data!: BufferPool;
    let listener: NativeCmId | undefined;
    const dropListener = () => {
      if (listener) cm.destroy(listener);
      listener = undefined;
    };
    const accepted = new Promise<Endpoint>((resolve, reject) => {
      listener = cm.listen(ADDR_A, port, (ev) => {
        try {
          const id = ev.id!;
          const dev = devices.get(id.deviceName!);
          const disp = new CompletionDispatcher(dev.context, 64, 64);
          const qp = new (native().QueuePair)(id, dev.pd, disp.cq, disp.cq, null, { maxSendWr: 16, maxRecvWr: 4 });
          ep = { id, dev, disp, qp, sends: new Completions(), recvs: new Completions() };
          ctrl = new BufferPool(dev.pd, ADVERT, 4, access()); // 0,1: receives; 2: go-ahead
          data = new BufferPool(dev.pd, 64 * 1024, 1, access());
          pools.push(ctrl, data);
          postRecvs(ep, ctrl, 0, 2);
          const established = cm.next(id, 15_000);
          id.accept({ initiatorDepth: 1, responderResources: 1 });
          established.then((e) => (e.type === 'RDMA_CM_EVENT_ESTABLISHED' ? resolve(ep!) : reject(new Error(e.type))), reject);
        } catch (e) {
          reject(e);
        }
        dropListener(); // one connection only
      });
    });
    const client = run(['-c', '-a', ADDR_A, '-p', String(port), '-C', String(PINGS), '-S', String(SIZE), '-V', '-v']);
    try {
      const e = await withTimeout(accepted, 30_000, () => `no connection from rping -c; stdout: ${client.out()} stderr: ${client.err()}`);
      const disconnected = cm.next(e.id, 120_000);
      disconnected.catch(() => {}); // awaited below; a failure before then must not surface as unhandled
      const send = new SendBatch(1);
      const op = async (opcode: number, len: number, advert: { addr: number; rkey: number }) => {
        send.reset().add(e.disp.register(e.sends, 0), opcode, c.SEND_SIGNALED, data.address(0), len, data.lkey, advert.addr, advert.rkey);
        e.qp.postSend(send.words, send.count);
        const [wc] = await e.sends.wait(1, 30_000);
        expect(wc.statusName).toBe('success');
      };
      const goAhead = async () => {
        ctrl.view(2).fill(0);
        send.reset().add(e.disp.register(e.sends, 2), c.WR_SEND, c.SEND_SIGNALED, ctrl.address(2), ADVERT, ctrl.lkey);
        e.qp.postSend(send.words, send.count);
        const [wc] = await e.sends.wait(1, 30_000);
        expect(wc.statusName).toBe('success');
      };
      const nextAdvert = async () => {
        const [r] = await e.recvs.wait(1, 30_000);
        expect(r.statusName).toBe('success');
        expect(r.byteLen).toBe(ADVERT);
        const a = readAdvert(ctrl.view(r.cookie));
        postRecvs(e, ctrl, r.cookie, 1);
        return a;
      };
      let verified = 0;
      for (let n = 0; n < PINGS; n++) {
        const src = await nextAdvert();
        expect(src.len).toBe(SIZE);
        data.view(0).fill(0xee, 0, SIZE);
        await op(c.WR_RDMA_READ, src.len, src);
        expect(data.view(0).subarray(0, SIZE).equals(pingData(n, SIZE)), `ping ${n} read byte for byte`).toBe(true);
        verified++;
        await goAhead();
        const sinkAdvert = await nextAdvert();
        const len = data.view(0).indexOf(0) + 1; // rping echoes strlen + 1
        expect(len).toBe(SIZE);
        await op(c.WR_RDMA_WRITE, len, sinkAdvert);
        await goAhead();
      }
      const code = await withTimeout(client.exit, 60_000, () => `rping client did not exit; stdout: ${client.out()} stderr: ${client.err()}`);
      const pings = client
        .out()
        .split('\n')
        .filter((l) => l.startsWith('ping data: rdma-ping-'));
      console.log(`our server verified ${verified} pings; rping -V client exited ${code} after ${pings.length} pings; stderr: ${client.err().trim()}`);
      expect(code).toBe(0);
      expect(pings).toHaveLength(PINGS);
      // rping -v prints its sink buffer after the echo: exactly the text we read and wrote back.
      for (let n = 0; n < PINGS; n++)
        expect(pings[n]).toBe(
          `ping data: ${pingData(n, SIZE)
            .subarray(0, SIZE - 1)
            .toString()}`,
        );
      expect((await disconnected).type).toBe('RDMA_CM_EVENT_DISCONNECTED');
    } finally {
      client.child.kill('SIGKILL');
      dropListener();
      if (ep) {
        cm.destroy(ep.id);
        ep.disp.close();
      }
      for (const p of pools) p.close();
    }
  });
});
