// A Data-In's memory belongs to the SCSI core again as soon as sendPdu's promise settles
// (pooled buffers are reused at once). Node keeps a reference to written Buffers, so a PDU
// whose bytes are still queued must not settle before they reach the kernel, even when
// the queue is under the high-water mark; the responses to one received chunk are corked
// into one writev; flow control is its own signal (sendQueueFull).
import { Duplex } from 'node:stream';
import type net from 'node:net';
import { expect, test } from 'vitest';
import type { RxPdu } from '../../../lib/iscsi/pdu.js';
import type { TransportSink } from '../../../lib/iscsi/transport.js';
import { TcpTransport } from '../../../lib/transport/tcp.js';

/** A socket stand-in whose kernel accepts writes only when told to. */
class SlowSocket extends Duplex {
  readonly sent: Buffer[] = [];
  /** How many buffers each writev carried (a corked batch). */
  readonly writevs: number[] = [];
  private pending: (() => void)[] = [];
  constructor() {
    super({ writableHighWaterMark: 16 * 1024 });
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error) => void): void {
    // The kernel "copies" only when flush() is called: until then the caller's memory is live.
    this.pending.push(() => {
      this.sent.push(Buffer.from(chunk));
      cb();
    });
  }
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (e?: Error) => void): void {
    this.writevs.push(chunks.length);
    this.pending.push(() => {
      for (const c of chunks) this.sent.push(Buffer.from(c.chunk));
      cb();
    });
  }
  flush(): void {
    while (this.pending.length) this.pending.shift()!();
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
}

test('sendPdu settles only after queued data left, even below the high-water mark', async () => {
  const sock = new SlowSocket();
  const t = new TcpTransport(sock as unknown as net.Socket, { keepAliveMs: 0 });
  const bhs = new Uint8Array(48);
  const data = new Uint8Array(4096).fill(0x11); // well under 16 KiB
  let settled = false;
  const p = t.sendPdu(bhs, data);
  expect(p).toBeInstanceOf(Promise);
  void p!.then(() => (settled = true));
  await new Promise((r) => setTimeout(r, 20));
  expect(settled).toBe(false);
  sock.flush();
  await p;
  data.fill(0x22); // the core reuses its buffer now
  const wire = Buffer.concat(sock.sent);
  expect(wire.length).toBe(48 + 4096);
  expect(wire.subarray(48).every((b) => b === 0x11)).toBe(true);
});

/**
 * A sink that answers every PDU it receives with a 48-byte response carrying `reply` as
 * data, and notes how many writes had reached the socket just after each answer.
 */
function echoSink(
  t: TcpTransport,
  sock: SlowSocket,
  reply: Uint8Array,
  waits: Array<Promise<void> | undefined>,
  full: boolean[],
  writesAfter: number[] = [],
): TransportSink {
  return {
    dataDestination: () => undefined,
    receive: (pdu: RxPdu) => {
      waits.push(t.sendPdu(new Uint8Array(pdu.bhs), reply));
      writesAfter.push(sock.writevs.length);
    },
    sendQueueFull: (f: boolean) => full.push(f),
    headerDigestError: () => undefined,
    dataDigestError: () => undefined,
    framingError: () => undefined,
    closed: () => undefined,
  };
}

/** `n` NOP-Out BHSs (no data) in one chunk, ITT i. */
function nopChunk(n: number): Buffer {
  const b = Buffer.alloc(48 * n);
  for (let i = 0; i < n; i++) {
    b[48 * i] = 0x00; // NOP-Out
    b.writeUInt32BE(i, 48 * i + 16);
  }
  return b;
}

test('the responses to one received chunk leave in one writev, held until written', async () => {
  const sock = new SlowSocket();
  const t = new TcpTransport(sock as unknown as net.Socket, { keepAliveMs: 0 });
  const reply = new Uint8Array(4096).fill(0x33);
  const waits: Array<Promise<void> | undefined> = [];
  const full: boolean[] = [];
  const writesAfter: number[] = [];
  t.attach(echoSink(t, sock, reply, waits, full, writesAfter));
  sock.push(nopChunk(3));
  await new Promise((r) => setImmediate(r));
  expect(waits).toHaveLength(3);
  // Held while more PDUs of the chunk follow; the last one's response takes them all along
  // at once, not after the engine's work on it.
  expect(writesAfter).toEqual([0, 0, 1]);
  // One promise for the turn: the views are the kernel's only once the writev is done.
  expect(waits[0]).toBeInstanceOf(Promise);
  expect(new Set(waits).size).toBe(1);
  expect(sock.writevs).toHaveLength(1);
  let settled = false;
  void waits[0]!.then(() => (settled = true));
  await new Promise((r) => setTimeout(r, 10));
  expect(settled).toBe(false);
  sock.flush();
  await waits[0];
  reply.fill(0x44); // reused once settled
  const wire = Buffer.concat(sock.sent);
  expect(wire.length).toBe(3 * (48 + 4096));
  for (let i = 0; i < 3; i++) {
    const at = i * (48 + 4096);
    expect(wire.readUInt32BE(at + 16)).toBe(i);
    expect(wire.subarray(at + 48, at + 48 + 4096).every((b) => b === 0x33)).toBe(true);
  }
  // 12 KiB stayed under the 16 KiB mark: reading never stopped.
  expect(full).toEqual([]);
});

test('past the high-water mark the engine is told to stop reading, and to go on after drain', async () => {
  const sock = new SlowSocket();
  const t = new TcpTransport(sock as unknown as net.Socket, { keepAliveMs: 0 });
  const waits: Array<Promise<void> | undefined> = [];
  const full: boolean[] = [];
  t.attach(echoSink(t, sock, new Uint8Array(8192), waits, full));
  sock.push(nopChunk(3)); // 24 KiB of responses
  await new Promise((r) => setImmediate(r));
  expect(full).toEqual([true]);
  sock.flush();
  await waits[0];
  await new Promise((r) => setImmediate(r));
  expect(full).toEqual([true, false]);
});
