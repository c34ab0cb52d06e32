// The TCP PDU framer as a state machine: any split of a valid PDU stream delivers exactly
// those PDUs; digests are checked; garbage never throws; the send side pads and digests.
import { EventEmitter } from 'node:events';
import net from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32c, readDigest, writeDigest } from '../../../lib/iscsi/digest.js';
import { KEYS, Negotiator, preferencesFrom } from '../../../lib/iscsi/params.js';
import { decodeBhs, encodeBhs, padLength, type RxPdu } from '../../../lib/iscsi/pdu.js';
import type { OperationalParams } from '../../../lib/iscsi/params.js';
import type { TransportSink } from '../../../lib/iscsi/transport.js';
import type { IscsiTarget } from '../../../lib/iscsi/target.js';
import { listenTcp, READ_BUFFER_BYTES, TcpTransport } from '../../../lib/transport/tcp.js';

class MockSocket extends EventEmitter {
  destroyed = false;
  writable = true;
  writableLength = 0;
  writableHighWaterMark = 1 << 20;
  localAddress = '127.0.0.1';
  localPort = 3260;
  remoteAddress = '127.0.0.1';
  remotePort = 5000;
  written: Buffer[] = [];
  setNoDelay(): void {}
  setKeepAlive(): void {}
  pause(): void {}
  resume(): void {}
  cork(): void {}
  uncork(): void {}
  write(b: Uint8Array): boolean {
    this.written.push(Buffer.from(b));
    return true;
  }
  end(): void {
    this.destroy();
  }
  destroy(): void {
    if (!this.destroyed) {
      this.destroyed = true;
      this.emit('close');
    }
  }
}

class RecordingSink implements TransportSink {
  got: Array<{ bhs: Buffer; ahs: Buffer; data: Buffer; dataView: Uint8Array; arrived: boolean }> = [];
  errors: string[] = [];
  destinations = new Map<number, Uint8Array>();
  closedCalled = false;
  private arrived = false;
  dataDestination(_bhs: Uint8Array, len: number, arrived: boolean): Uint8Array | undefined {
    this.arrived = arrived;
    const d = this.destinations.get(this.got.length);
    return d && d.length === len ? d : undefined;
  }
  receive(p: RxPdu): void {
    this.got.push({ bhs: Buffer.from(p.bhs), ahs: Buffer.from(p.ahs), data: Buffer.from(p.data), dataView: p.data, arrived: this.arrived });
    this.arrived = false;
  }
  headerDigestError(): void {
    this.errors.push('header');
  }
  dataDigestError(): void {
    this.errors.push('data');
  }
  framingError(r: string): void {
    this.errors.push(`framing: ${r}`);
  }
  sendQueueFull(): void {}
  closed(): void {
    this.closedCalled = true;
  }
}

const params = (hd: boolean, dd: boolean): OperationalParams => ({
  headerDigest: hd,
  dataDigest: dd,
  maxConnections: 1,
  initialR2T: true,
  immediateData: true,
  initiatorMaxRecvDataSegmentLength: 8192,
  targetMaxRecvDataSegmentLength: 65536,
  maxBurstLength: 262144,
  firstBurstLength: 65536,
  defaultTime2Wait: 2,
  defaultTime2Retain: 20,
  maxOutstandingR2T: 1,
  dataPduInOrder: true,
  dataSequenceInOrder: true,
  errorRecoveryLevel: 0,
  rdmaExtensions: false,
  maxOutstandingUnexpectedPdus: 0,
});

function frame(bhs: Buffer, ahs: Buffer, data: Buffer, hd: boolean, dd: boolean): Buffer {
  const parts = [bhs, ahs];
  if (hd) {
    const d = Buffer.alloc(4);
    writeDigest(d, 0, crc32c(Buffer.concat([bhs, ahs])));
    parts.push(d);
  }
  if (data.length) {
    const padded = Buffer.concat([data, Buffer.alloc(padLength(data.length))]);
    parts.push(padded);
    if (dd) {
      const d = Buffer.alloc(4);
      writeDigest(d, 0, crc32c(padded));
      parts.push(d);
    }
  }
  return Buffer.concat(parts);
}

/** A PDU with up to `maxData` bytes of data; its BHS declares the AHS and data lengths. */
const pduArbOf = (maxData: number) =>
  fc
    .record({
      head: fc.uint8Array({ minLength: 48, maxLength: 48 }),
      ahsWords: fc.integer({ min: 0, max: 3 }),
      data: fc.uint8Array({ minLength: 0, maxLength: maxData }),
    })
    .map(({ head, ahsWords, data }) => {
      const bhs = Buffer.from(head);
      bhs[4] = ahsWords;
      bhs.writeUIntBE(data.length, 5, 3);
      const ahs = Buffer.alloc(ahsWords * 4, 0xa5);
      return { bhs, ahs, data: Buffer.from(data) };
    });
const pduArb = pduArbOf(3000);

/** The sink got exactly these PDUs, in order, and no error. */
function expectDelivered(sink: RecordingSink, pdus: Array<{ bhs: Buffer; ahs: Buffer; data: Buffer }>): void {
  expect(sink.errors).toEqual([]);
  expect(sink.got.length).toBe(pdus.length);
  pdus.forEach((p, k) => {
    expect(sink.got[k].bhs.equals(p.bhs)).toBe(true);
    expect(sink.got[k].ahs.equals(p.ahs)).toBe(true);
    expect(sink.got[k].data.equals(p.data)).toBe(true);
  });
}

function feed(t: TcpTransport, sock: MockSocket, stream: Buffer, cuts: number[]): void {
  const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  let prev = 0;
  for (const p of [...points, stream.length]) {
    if (p > prev) sock.emit('data', stream.subarray(prev, p));
    prev = p;
  }
  void t;
}

describe('TCP framer', () => {
  it('any chunking of a valid stream delivers the same PDUs (with and without digests)', () => {
    fc.assert(
      fc.property(fc.array(pduArb, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 30 }), fc.boolean(), fc.boolean(), (pdus, cuts, hd, dd) => {
        const sock = new MockSocket();
        const t = new TcpTransport(sock as unknown as net.Socket);
        const sink = new RecordingSink();
        t.attach(sink);
        if (hd || dd) t.enterFullFeature(params(hd, dd));
        const stream = Buffer.concat(pdus.map((p) => frame(p.bhs, p.ahs, p.data, hd, dd)));
        feed(t, sock, stream, cuts);
        expectDelivered(sink, pdus);
        // A segment the engine was told had `arrived` came as a view of the chunk (lent to it).
        const inStream = (v: Uint8Array) => v.buffer === stream.buffer && v.byteOffset >= stream.byteOffset && v.byteOffset < stream.byteOffset + stream.length;
        for (const g of sink.got) if (g.arrived) expect(inStream(g.dataView)).toBe(true);
        if (cuts.length === 0) for (const g of sink.got) expect(g.arrived).toBe(g.data.length > 0);
      }),
      { numRuns: 300 },
    );
  });

  it('data lands in the buffer the engine names (zero copy for Data-Out)', () => {
    const sock = new MockSocket();
    const t = new TcpTransport(sock as unknown as net.Socket);
    const sink = new RecordingSink();
    const lunMemory = new Uint8Array(10000);
    sink.destinations.set(0, lunMemory.subarray(1000, 1000 + 4097));
    t.attach(sink);
    const data = Buffer.alloc(4097, 7);
    const bhs = Buffer.alloc(48);
    bhs[0] = 0x05;
    bhs.writeUIntBE(4097, 5, 3);
    const stream = frame(bhs, Buffer.alloc(0), data, false, false);
    feed(t, sock, stream, [10, 60, 3000, 4000]);
    expect(sink.got.length).toBe(1);
    expect(sink.got[0].dataView.buffer).toBe(lunMemory.buffer);
    expect(Buffer.from(lunMemory.subarray(1000, 1000 + 4097)).equals(data)).toBe(true);
  });

  it('header digest mismatch stops framing and reports it', () => {
    const sock = new MockSocket();
    const t = new TcpTransport(sock as unknown as net.Socket);
    const sink = new RecordingSink();
    t.attach(sink);
    t.enterFullFeature(params(true, false));
    const s = frame(Buffer.alloc(48, 1).fill(0, 4, 8), Buffer.alloc(0), Buffer.alloc(0), true, false);
    s[48] ^= 1;
    sock.emit('data', Buffer.concat([s, s]));
    expect(sink.errors).toEqual(['header']);
    expect(sink.got.length).toBe(0);
  });

  it('data digest mismatch (padding included in the CRC) is reported', () => {
    const sock = new MockSocket();
    const t = new TcpTransport(sock as unknown as net.Socket);
    const sink = new RecordingSink();
    t.attach(sink);
    t.enterFullFeature(params(false, true));
    const bhs = Buffer.alloc(48);
    bhs.writeUIntBE(5, 5, 3);
    const s = frame(bhs, Buffer.alloc(0), Buffer.from('hello'), false, true);
    s[48 + 6] = 9; // a padding byte
    sock.emit('data', s);
    expect(sink.errors).toEqual(['data']);
  });

  it('garbage never throws; it ends in PDUs, a framing error, or waiting for more', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.array(fc.nat(), { maxLength: 10 }), fc.boolean(), (junk, cuts, digests) => {
        const sock = new MockSocket();
        const t = new TcpTransport(sock as unknown as net.Socket);
        const sink = new RecordingSink();
        t.attach(sink);
        if (digests) t.enterFullFeature(params(true, true));
        expect(() => feed(t, sock, Buffer.from(junk), cuts)).not.toThrow();
      }),
      { numRuns: 300 },
    );
  });

  it('send side: BHS, AHS, header digest, data views, zero padding, data digest', () => {
    const sock = new MockSocket();
    const t = new TcpTransport(sock as unknown as net.Socket);
    t.attach(new RecordingSink());
    t.enterFullFeature(params(true, true));
    const bhs = encodeBhs({
      opcode: 0x25,
      itt: 1,
      dataLength: 7,
      final: true,
      ack: false,
      overflow: false,
      underflow: false,
      hasStatus: false,
      status: 0,
      lun: 0n,
      ttt: 0xffffffff,
      statSN: 0,
      expCmdSN: 1,
      maxCmdSN: 2,
      dataSN: 0,
      bufferOffset: 0,
      residual: 0,
    });
    expect(t.sendPdu(bhs, [Buffer.from('abc'), Buffer.from('defg')])).toBeUndefined();
    const out = Buffer.concat(sock.written);
    expect(out.length).toBe(48 + 4 + 8 + 4);
    expect(readDigest(out, 48)).toBe(crc32c(out.subarray(0, 48)));
    expect(out.subarray(52, 60).toString('latin1')).toBe('abcdefg\0');
    expect(readDigest(out, 60)).toBe(crc32c(out.subarray(52, 60)));
  });

  it('send side: a close inside a turn sends what the turn staged before the end (a Reject and its data digest)', () => {
    const sock = new QueueingSocket();
    const t = new TcpTransport(sock as unknown as net.Socket);
    const reject = Buffer.alloc(48);
    reject[0] = 0x3f;
    reject.writeUIntBE(48, 5, 3);
    const bad = Buffer.alloc(48, 7);
    // As the engine answers a PDU it cannot take: a Reject carrying its header, then the close.
    const sink = new (class extends RecordingSink {
      override receive(p: RxPdu): void {
        super.receive(p);
        t.sendPdu(reject, bad);
        t.close();
      }
    })();
    t.attach(sink);
    t.enterFullFeature(params(true, true));
    const nop = Buffer.alloc(48);
    nop[0] = 0x00;
    const first = frame(nop, Buffer.alloc(0), Buffer.alloc(0), true, true);
    // The chunk ends inside a second PDU: the first is not the chunk's last, so the turn
    // stays corked when the close comes.
    sock.emit('data', Buffer.concat([first, first.subarray(0, 10)]));
    expect(sink.got.length).toBe(1);
    expect(sock.writesAfterEnd).toBe(0);
    expect(Buffer.concat(sock.wire).equals(frame(reject, Buffer.alloc(0), bad, true, true))).toBe(true);
  });

  it('send side: staged headers are never written over while the socket still holds them', () => {
    let replaced = 0;
    fc.assert(
      fc.property(
        // More headers than the staging buffer holds (16 KiB: ~340 BHSs).
        fc.array(fc.record({ pdu: pduArbOf(64), hold: fc.integer({ min: 0, max: 9 }) }), { minLength: 350, maxLength: 500 }),
        fc.integer({ min: 0, max: 10 }),
        fc.integer({ min: 1, max: 1000 }),
        fc.boolean(),
        fc.boolean(),
        (steps, holdBelow, releaseEvery, hd, dd) => {
          const sock = new QueueingSocket();
          const t = new TcpTransport(sock as unknown as net.Socket);
          t.attach(new RecordingSink());
          t.enterFullFeature(params(hd, dd));
          const staging = () => (t as unknown as { staging: Buffer }).staging;
          const first = staging();
          steps.forEach(({ pdu, hold }, i) => {
            sock.hold = hold < holdBelow;
            t.sendPdu(pdu.bhs, pdu.data.length ? pdu.data : undefined, pdu.ahs.length ? pdu.ahs : undefined);
            if (i % releaseEvery === releaseEvery - 1) sock.take();
          });
          sock.take();
          if (staging() !== first) replaced++;
          const want = Buffer.concat(steps.map(({ pdu }) => frame(pdu.bhs, pdu.ahs, pdu.data, hd, dd)));
          expect(Buffer.concat(sock.wire).equals(want)).toBe(true);
        },
      ),
      {
        numRuns: 60,
        // Besides the random runs: 400 headers the socket holds throughout (none taken).
        examples: [
          [
            Array.from({ length: 400 }, (_, i) => ({ pdu: { bhs: Buffer.alloc(48, i), ahs: Buffer.alloc(0), data: Buffer.alloc(0) }, hold: 0 })),
            10,
            1000,
            true,
            true,
          ],
        ],
      },
    );
    // The runs went past the staging buffer's end while the socket held its bytes.
    expect(replaced).toBeGreaterThan(0);
  });
});

/**
 * As net.Socket: what is written stays referenced, not copied, until the kernel takes it
 * (`take`); corked writes wait for uncork; `hold` plays a full kernel buffer.
 */
class QueueingSocket extends MockSocket {
  wire: Buffer[] = [];
  hold = false;
  writesAfterEnd = 0;
  private queued: Uint8Array[] = [];
  private callbacks: Array<() => void> = [];
  private corks = 0;
  override cork(): void {
    this.corks++;
  }
  override uncork(): void {
    if (this.corks > 0 && --this.corks === 0 && !this.hold) this.take();
  }
  override write(b: Uint8Array, cb?: () => void): boolean {
    if (!this.writable) {
      // Node: ERR_STREAM_WRITE_AFTER_END, and the socket is destroyed.
      this.writesAfterEnd++;
      return false;
    }
    this.queued.push(b);
    this.writableLength += b.length;
    if (cb) this.callbacks.push(cb);
    if (this.corks === 0 && !this.hold) this.take();
    return true;
  }
  /** As Writable.end(): uncorks fully, sends what is queued, then takes no more writes. */
  override end(): void {
    this.corks = 0;
    this.take();
    this.writable = false;
  }
  take(): void {
    for (const b of this.queued) this.wire.push(Buffer.from(b));
    this.queued = [];
    this.writableLength = 0;
    for (const cb of this.callbacks.splice(0)) cb();
  }
}

describe('TCP framer reading into one buffer of its own (listenTcp)', () => {
  it('any chunking delivers the same PDUs although every read overwrites the buffer', () => {
    fc.assert(
      fc.property(fc.array(pduArb, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 30 }), fc.boolean(), (pdus, cuts, hd) => {
        const sock = new MockSocket();
        const readBuffer = Buffer.alloc(4096);
        const t = new TcpTransport(sock as unknown as net.Socket, {}, readBuffer);
        const sink = new RecordingSink();
        t.attach(sink);
        if (hd) t.enterFullFeature(params(hd, false));
        const stream = Buffer.concat(pdus.map((p) => frame(p.bhs, p.ahs, p.data, hd, false)));
        const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
        let prev = 0;
        for (const p of [...points, stream.length]) {
          // What the kernel does with a reused buffer: each read lands at its start, and
          // whatever a stale view still pointed at is gone (scribbled over here).
          for (let at = prev; at < p; at += readBuffer.length) {
            const n = Math.min(readBuffer.length, p - at);
            readBuffer.fill(0xee);
            stream.copy(readBuffer, 0, at, at + n);
            t.onRead(n);
          }
          prev = p;
        }
        expectDelivered(sink, pdus);
      }),
      { numRuns: 300 },
    );
  });

  it('listenTcp gives each accepted connection its own receive buffer; PDUs arrive whole over a real socket; close waits for the connection', async () => {
    const accepted: TcpTransport[] = [];
    const stub = { accept: (t: TcpTransport) => accepted.push(t), log: { warn: () => undefined } } as unknown as IscsiTarget;
    const l = await listenTcp(stub, { port: 0, transport: { keepAliveMs: 0 } });
    const client = net.connect(l.port, '127.0.0.1');
    try {
      await new Promise<void>((r) => client.once('connect', () => r()));
      for (let i = 0; i < 100 && accepted.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      const t = accepted[0];
      // Fails loudly if a Node release stops letting listenTcp move the accepted handle.
      expect(t.ownsReadBuffer).toBe(true);
      const sink = new RecordingSink();
      t.attach(sink);
      // More than the buffer holds, written in pieces that split headers and data segments.
      const pdus = [100, 65000, 65001, 3, 64999, 65535, 7, 40000].map((len, k) => {
        const bhs = Buffer.alloc(48, k + 1);
        bhs[4] = 0;
        bhs.writeUIntBE(len, 5, 3);
        const data = Buffer.alloc(len);
        for (let i = 0; i < len; i++) data[i] = (i * 7 + k) & 0xff;
        return { bhs, data };
      });
      const stream = Buffer.concat(pdus.map((p) => frame(p.bhs, Buffer.alloc(0), p.data, false, false)));
      expect(stream.length).toBeGreaterThan(READ_BUFFER_BYTES);
      for (let at = 0; at < stream.length; at += 70001) {
        client.write(stream.subarray(at, Math.min(stream.length, at + 70001)));
        await new Promise((r) => setImmediate(r));
      }
      for (let i = 0; i < 300 && sink.got.length < pdus.length; i++) await new Promise((r) => setTimeout(r, 10));
      expect(sink.got.length).toBe(pdus.length);
      pdus.forEach((p, k) => {
        expect(sink.got[k].bhs.equals(p.bhs)).toBe(true);
        expect(sink.got[k].data.equals(p.data)).toBe(true);
      });
      // The listener's close settles once its connections are gone, though the server no
      // longer counts them (the daemon's shutdown waits on it before forcing them closed).
      let closed = false;
      const closing = l.close().then(() => (closed = true));
      await new Promise((r) => setTimeout(r, 50));
      expect(closed).toBe(false);
      client.destroy();
      await closing;
    } finally {
      client.destroy();
      await l.close(true);
    }
  });
});

describe('decoder and negotiation properties', () => {
  it('decode ∘ encode ∘ decode = decode for any 48 bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 48, maxLength: 48 }), (b) => {
        const d = decodeBhs(b);
        const again = decodeBhs(encodeBhs(d));
        expect({ ...again, cdb: undefined }).toEqual({ ...d, cdb: undefined });
      }),
      { numRuns: 2000 },
    );
  });

  const keyArb = fc.oneof(fc.constantFrom(...KEYS.map((k) => k.name)), fc.stringMatching(/^[A-Za-z0-9.\-+@_:]{1,20}$/));
  const valueArb = fc.oneof(
    fc.constantFrom(
      'Yes',
      'No',
      'None',
      'CRC32C',
      'CRC32C,None',
      '0',
      '1',
      '512',
      '8192',
      '65536',
      '16777215',
      '16777216',
      '0x10',
      'Reject',
      'Irrelevant',
      'NotUnderstood',
      '',
    ),
    fc.string({ maxLength: 12 }),
  );
  it('negotiation never throws and answers each offered key at most once with a legal value', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(keyArb, valueArb), { maxLength: 12 }),
        fc.constantFrom('Normal', 'Discovery') as fc.Arbitrary<'Normal' | 'Discovery'>,
        fc.boolean(),
        (pairs, st, rdma) => {
          const n = new Negotiator(preferencesFrom({ rdmaExtensions: rdma }), st);
          const r = n.negotiate(pairs);
          if (r.error) return;
          const keys = r.reply.map(([k]) => k);
          expect(new Set(keys).size).toBe(keys.length);
          for (const [k, v] of r.reply) {
            expect(pairs.some(([pk]) => pk === k)).toBe(true);
            expect(typeof v).toBe('string');
          }
          expect(() => n.result()).not.toThrow();
          const res = n.result();
          expect(res.firstBurstLength).toBeLessThanOrEqual(res.maxBurstLength);
          expect(res.maxBurstLength).toBeGreaterThanOrEqual(512);
        },
      ),
      { numRuns: 1000 },
    );
  });
});
