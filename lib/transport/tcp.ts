// iSCSI over TCP (RFC 7143 §4.2): a net.Server per portal and, per connection, a PDU
// framer that is a small explicit state machine over the socket's chunks:
//
//   BHS(48) → AHS(TotalAHSLength·4) → [HeaderDigest(4)] → data + padding → [DataDigest(4)]
//
// A connection accepted by listenTcp reads into one buffer of its own (READ_BUFFER_BYTES)
// rather than a fresh 64 KiB buffer per read: under large writes those buffers' external
// bytes made V8 scavenge every ~32 MB and, often, run back-to-back full collections
// (docs/benchmarks/profile.md, "TCP write 128k qd8"). So nothing the framer hands the engine
// outlives the call: headers are copied into the transport's own BHS buffer, a data segment
// goes straight into the buffer the engine names (Data-Out → the task's buffer, which may be
// LUN memory), or is viewed in place when the chunk holds the rest of its PDU (the engine
// copies what it keeps, as over iSER), or is copied once into a fresh buffer. Digests are CRC32C
// computed while copying. Sending copies each PDU's header, padding and digests into the
// connection's staging buffer (so the engine builds every header in one scratch BHS, as over
// iSER) and hands the socket the staged bytes and the data views, corked: the PDUs one
// received chunk produces leave in one writev, and a run of responses without data is one
// write, not one per header. Past the socket's high-water mark the engine is told to stop
// reading until 'drain'.

import net from 'node:net';
import { CRC32C_INIT, crc32cFinal, crc32cUpdate, readDigest, writeDigest } from '../iscsi/digest.js';
import type { OperationalParams } from '../iscsi/params.js';
import { BHS_LENGTH } from '../iscsi/opcodes.js';
import { bhsAhsLength, bhsDataLength, padLength } from '../iscsi/pdu.js';
import type { IscsiTarget } from '../iscsi/target.js';
import type { IscsiTransport, TransportSink } from '../iscsi/transport.js';

const EMPTY = new Uint8Array(0);
/** Largest data segment framed during login (§13.12 allows 8192; the engine answers bigger ones). */
const LOGIN_FRAME_LIMIT = 65536;
/** A connection's receive buffer: a 128 KiB write's PDU arrives in one read. */
export const READ_BUFFER_BYTES = 256 * 1024;
/** A connection's staging buffer for headers, padding and digests: ~340 responses' headers. */
const STAGING_BYTES = 16 * 1024;
/** What one PDU stages around its AHS: BHS, header digest, padding, data digest. */
const STAGED_FIXED = BHS_LENGTH + 4 + 3 + 4;

const enum RxState {
  Bhs,
  Ahs,
  HeaderDigest,
  Data,
  Pad,
  DataDigest,
  Stopped,
}

export interface TcpTransportOptions {
  /** TCP keep-alive probe delay in ms (0 disables). Default 30000. */
  keepAliveMs?: number;
  /** How long a graceful close waits for the peer before destroying the socket. */
  closeTimeoutMs?: number;
}

export class TcpTransport implements IscsiTransport {
  readonly kind = 'tcp';
  readonly rdma = false;
  readonly digests = true;
  /** sendPdu copies the header into `staging`. */
  readonly copiesBhs = true;
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;

  private sink: TransportSink | undefined;
  private headerDigest = false;
  private dataDigest = false;
  private frameLimit = LOGIN_FRAME_LIMIT;
  private closedSent = false;
  /** Inside onChunk: the socket is corked until the chunk's PDUs are all handled. */
  private inTurn = false;
  /** The PDU being delivered is the last one the chunk completes. */
  private lastOfChunk = false;
  /** The views queued since the last seal, settled together once written (heldUntilWritten). */
  private held: { promise: Promise<void>; resolve: () => void } | undefined;
  /** Held promises of a socket that stopped being writable: settled when it closes. */
  private unsealed: Array<() => void> = [];
  /** We told the engine the send queue is full; 'drain' tells it otherwise. */
  private queueFull = false;
  private pausedByEngine = false;
  /** The unframed rest of a chunk, kept while the engine has paused receiving. */
  private stash: Buffer | undefined;
  /**
   * Headers, padding and digests of the PDUs being sent: [stagedFrom, stagedTo) is not yet
   * handed to the socket; what is before it may still be queued in the socket (Node keeps a
   * reference, not a copy), so it is written over only once the socket's queue is empty.
   */
  private staging = Buffer.allocUnsafeSlow(STAGING_BYTES);
  private stagedFrom = 0;
  private stagedTo = 0;

  // Receive state machine.
  private state = RxState.Bhs;
  /** The PDU's header, always copied here: the chunk it came in is reused by the next read. */
  private readonly bhs = new Uint8Array(BHS_LENGTH);
  private bhsFill = 0;
  private ahs: Uint8Array = EMPTY;
  private ahsFill = 0;
  private hd = new Uint8Array(4);
  private hdFill = 0;
  private dataLen = 0;
  private data: Uint8Array = EMPTY;
  private dataFill = 0;
  private padLeft = 0;
  private crc = CRC32C_INIT;
  private dd = new Uint8Array(4);
  private ddFill = 0;

  /**
   * `readBuffer`: the buffer `socket` reads into (net.Socket's `onread`, see listenTcp),
   * whose bytes arrive by `onRead`; without it, chunks arrive as 'data' events.
   */
  constructor(
    readonly socket: net.Socket,
    private readonly opts: TcpTransportOptions = {},
    private readonly readBuffer?: Buffer,
  ) {
    this.localAddress = socket.localAddress ?? '';
    this.localPort = socket.localPort ?? 0;
    this.remoteAddress = socket.remoteAddress ?? '';
    this.remotePort = socket.remotePort ?? 0;
    socket.setNoDelay(true);
    const ka = opts.keepAliveMs ?? 30000;
    if (ka > 0) socket.setKeepAlive(true, ka);
    socket.pause();
    socket.on('data', (chunk: Buffer) => this.onChunk(chunk));
    socket.on('drain', () => this.onDrain());
    socket.on('error', (e) => this.finish(e));
    socket.on('close', () => this.finish());
    socket.on('end', () => {
      if (!socket.destroyed) socket.end();
    });
  }

  attach(sink: TransportSink): void {
    this.sink = sink;
    if (!this.socket.destroyed) this.socket.resume();
  }

  /** Nothing to prepare: the socket reads on as it did during the login. */
  loginComplete(): void {}

  enterFullFeature(params: OperationalParams): void {
    this.headerDigest = params.headerDigest;
    this.dataDigest = params.dataDigest;
    // A PDU up to twice what we declared is still read so the engine can answer it with a
    // Reject (§13.12); anything bigger cannot be an honest mistake and ends framing.
    this.frameLimit = Math.max(params.targetMaxRecvDataSegmentLength * 2, LOGIN_FRAME_LIMIT);
  }

  pauseReceive(): void {
    this.pausedByEngine = true;
    this.socket.pause();
  }

  resumeReceive(): void {
    this.pausedByEngine = false;
    if (this.socket.destroyed || this.state === RxState.Stopped) return;
    const rest = this.stash;
    if (rest) {
      // Bytes read before the pause: frame them first (not re-entrantly), then read on.
      this.stash = undefined;
      setImmediate(() => {
        this.onChunk(rest);
        if (!this.pausedByEngine && !this.stash) this.socket.resume();
      });
      return;
    }
    this.socket.resume();
  }

  get paused(): boolean {
    return this.pausedByEngine;
  }

  sendPdu(bhs: Uint8Array, data?: Uint8Array | readonly Uint8Array[], ahs?: Uint8Array): Promise<void> | undefined {
    const s = this.socket;
    if (s.destroyed || !s.writable) return undefined;
    const parts = data === undefined ? undefined : data instanceof Uint8Array ? [data] : data;
    let len = 0;
    if (parts) for (const p of parts) len += p.length;
    // Within a turn the socket is corked already (onChunk); alone, this PDU is one writev.
    const alone = !this.inTurn;
    if (alone) s.cork();
    const ahsLength = ahs?.length ?? 0;
    this.reserve(STAGED_FIXED + ahsLength);
    const o = this.staging;
    const start = this.stagedTo;
    o.set(bhs, start);
    if (ahsLength) o.set(ahs!, start + BHS_LENGTH);
    let at = start + BHS_LENGTH + ahsLength;
    if (this.headerDigest) {
      writeDigest(o, at, crc32cFinal(crc32cUpdate(CRC32C_INIT, o, start, at)));
      at += 4;
    }
    this.stagedTo = at;
    if (len > 0) {
      this.flushStaged();
      let c = CRC32C_INIT;
      for (const p of parts!) {
        if (!p.length) continue;
        s.write(p);
        if (this.dataDigest) c = crc32cUpdate(c, p);
      }
      // Padding and data digest follow the data: staged, they leave with the next header.
      const pad = padLength(len);
      if (pad) {
        o.fill(0, at, at + pad);
        if (this.dataDigest) c = crc32cUpdate(c, o, at, at + pad);
        at += pad;
      }
      if (this.dataDigest) {
        writeDigest(o, at, crc32cFinal(c));
        at += 4;
      }
      this.stagedTo = at;
    }
    // The data parts are the caller's memory (a pooled buffer, the LUN itself), which it
    // may reuse once our promise settles. Node keeps a reference, not a copy, for whatever
    // the kernel did not take yet, so while bytes stay queued the promise settles only
    // once they reached the kernel: one promise for all the PDUs queued so far.
    if (!alone) {
      // More PDUs of this chunk to come: keep batching.
      if (!this.lastOfChunk) return len > 0 ? this.heldUntilWritten() : undefined;
      // The chunk's last PDU: the batch leaves with its first response, now, rather than
      // after the rest of the engine's work on it (at qd1, all a response would wait for).
      this.inTurn = false;
    }
    this.uncork();
    const w = len > 0 && s.writableLength > 0 ? this.heldUntilWritten() : undefined;
    this.sealHeld();
    this.checkQueue();
    return w;
  }

  /** Room for `n` more staged bytes: a new buffer when the socket may still hold the old one's. */
  private reserve(n: number): void {
    if (this.staging.length - this.stagedTo >= n) return;
    this.flushStaged();
    if (this.socket.writableLength > 0 || n > this.staging.length) this.staging = Buffer.allocUnsafeSlow(Math.max(STAGING_BYTES, n));
    this.stagedFrom = this.stagedTo = 0;
  }

  /** Hands the staged bytes to the socket (in order: before any data view written after them). */
  private flushStaged(): void {
    if (this.stagedTo === this.stagedFrom) return;
    // Ended or destroyed (a drop inside a turn): the bytes go nowhere, as a write would.
    if (this.socket.writable) this.socket.write(this.staging.subarray(this.stagedFrom, this.stagedTo));
    this.stagedFrom = this.stagedTo;
  }

  /** Ends a corked batch; the staging buffer starts over once the kernel took every byte. */
  private uncork(): void {
    const s = this.socket;
    this.flushStaged();
    s.uncork();
    if (s.writableLength === 0) this.stagedFrom = this.stagedTo = 0;
  }

  /** The promise that settles once every byte queued so far has reached the kernel. */
  private heldUntilWritten(): Promise<void> {
    if (!this.held) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.held = { promise, resolve };
    }
    return this.held.promise;
  }

  /**
   * Closes the open `held` promise (after an uncork): settled now if the kernel took every
   * byte, else by the write callback of an empty write queued after them.
   */
  private sealHeld(): void {
    const h = this.held;
    if (!h) return;
    this.held = undefined;
    const s = this.socket;
    if (s.writableLength === 0) h.resolve();
    else if (s.writable) s.write(EMPTY, () => h.resolve());
    else this.unsealed.push(h.resolve); // ending or destroyed: settled by finish()
  }

  /** Tell the engine when the queue crosses the high-water mark, either way ('drain'). */
  private checkQueue(): void {
    const s = this.socket;
    if (this.queueFull || s.writableLength < s.writableHighWaterMark) return;
    this.queueFull = true;
    this.sink?.sendQueueFull(true);
  }

  private onDrain(): void {
    if (!this.queueFull) return;
    this.queueFull = false;
    this.sink?.sendQueueFull(false);
  }

  /** `n` bytes were read into readBuffer. */
  onRead(n: number): void {
    this.onChunk(this.readBuffer!.subarray(0, n));
  }

  /** Whether this connection reads into a buffer of its own (listenTcp could adopt its socket). */
  get ownsReadBuffer(): boolean {
    return this.readBuffer !== undefined;
  }

  /**
   * One received chunk is one turn: the PDUs it brings are delivered synchronously, and
   * the responses they produce at once (a RAM LUN's reads and writes) stay corked until the
   * first response to the chunk's last PDU (or the chunk's end), so they leave in one
   * writev instead of one each.
   */
  private onChunk(chunk: Buffer): void {
    const s = this.socket;
    this.inTurn = true;
    s.cork();
    try {
      this.onData(chunk);
    } finally {
      // Still corked unless the chunk's last PDU had a response (sendPdu ended the turn).
      if (this.inTurn) {
        this.inTurn = false;
        this.uncork();
        this.sealHeld();
        this.checkQueue();
      }
    }
  }

  close(abort = false): void {
    const s = this.socket;
    this.state = RxState.Stopped;
    if (s.destroyed) return;
    if (abort) {
      s.destroy();
      return;
    }
    // end() sends what the socket holds; what this turn staged (a Reject's data digest, a
    // Login Response) must join it first, or it would be written after the end.
    this.flushStaged();
    s.end();
    const t = setTimeout(() => s.destroy(), this.opts.closeTimeoutMs ?? 5000);
    t.unref();
  }

  private finish(err?: Error): void {
    this.state = RxState.Stopped;
    this.queueFull = false;
    const w = this.unsealed;
    this.unsealed = [];
    for (const r of w) r();
    this.held?.resolve();
    this.held = undefined;
    if (this.closedSent) return;
    this.closedSent = true;
    if (!this.socket.destroyed) this.socket.destroy();
    this.sink?.closed(err);
  }

  private stop(): void {
    this.state = RxState.Stopped;
  }

  /** Framer: consume one chunk, delivering every complete PDU in it. */
  private onData(chunk: Buffer): void {
    const sink = this.sink;
    if (!sink) return;
    if (this.stash) {
      this.stash = Buffer.concat([this.stash, chunk]);
      return;
    }
    let off = 0;
    const n = chunk.length;
    while (off < n) {
      if (this.pausedByEngine && this.state === RxState.Bhs && this.bhsFill === 0) {
        // The engine asked us to stop (flow control): keep the rest for resumeReceive.
        this.stash = Buffer.from(chunk.subarray(off));
        return;
      }
      switch (this.state) {
        case RxState.Stopped:
          return;
        case RxState.Bhs: {
          const k = Math.min(BHS_LENGTH - this.bhsFill, n - off);
          this.bhs.set(chunk.subarray(off, off + k), this.bhsFill);
          this.bhsFill += k;
          off += k;
          if (this.bhsFill < BHS_LENGTH) return;
          this.bhsFill = 0;
          const ahsLen = bhsAhsLength(this.bhs);
          this.dataLen = bhsDataLength(this.bhs);
          if (this.dataLen > this.frameLimit) {
            this.stop();
            sink.framingError(`DataSegmentLength ${this.dataLen} > ${this.frameLimit} (RFC 7143 §13.12)`);
            return;
          }
          this.ahs = ahsLen ? new Uint8Array(ahsLen) : EMPTY;
          this.ahsFill = 0;
          if (ahsLen) this.state = RxState.Ahs;
          else if (this.headerDigest) this.state = RxState.HeaderDigest;
          else this.headerDone(n - off);
          break;
        }
        case RxState.Ahs: {
          const k = Math.min(this.ahs.length - this.ahsFill, n - off);
          this.ahs.set(chunk.subarray(off, off + k), this.ahsFill);
          this.ahsFill += k;
          off += k;
          if (this.ahsFill < this.ahs.length) return;
          if (this.headerDigest) this.state = RxState.HeaderDigest;
          else this.headerDone(n - off);
          break;
        }
        case RxState.HeaderDigest: {
          const k = Math.min(4 - this.hdFill, n - off);
          this.hd.set(chunk.subarray(off, off + k), this.hdFill);
          this.hdFill += k;
          off += k;
          if (this.hdFill < 4) return;
          this.hdFill = 0;
          let c = crc32cUpdate(CRC32C_INIT, this.bhs);
          if (this.ahs.length) c = crc32cUpdate(c, this.ahs);
          if (crc32cFinal(c) !== readDigest(this.hd, 0)) {
            this.stop();
            sink.headerDigestError();
            return;
          }
          this.headerDone(n - off);
          break;
        }
        case RxState.Data: {
          if (this.dataFill === 0 && this.data.length === 0) {
            // No destination given. The rest of the PDU in this chunk: view the segment (the
            // PDU is delivered before the next read reuses the chunk); else one buffer.
            if (n - off >= this.segmentBytes()) {
              this.data = chunk.subarray(off, off + this.dataLen);
              if (this.dataDigest) this.crc = crc32cUpdate(this.crc, this.data);
              off += this.dataLen;
              this.dataFill = this.dataLen;
            } else {
              this.data = Buffer.allocUnsafe(this.dataLen);
            }
          }
          if (this.dataFill < this.dataLen) {
            const k = Math.min(this.dataLen - this.dataFill, n - off);
            this.data.set(chunk.subarray(off, off + k), this.dataFill);
            if (this.dataDigest) this.crc = crc32cUpdate(this.crc, chunk, off, off + k);
            this.dataFill += k;
            off += k;
            if (this.dataFill < this.dataLen) return;
          }
          this.padLeft = padLength(this.dataLen);
          if (this.padLeft) this.state = RxState.Pad;
          else if (this.dataDigest) this.state = RxState.DataDigest;
          else this.deliver(off === n);
          break;
        }
        case RxState.Pad: {
          const k = Math.min(this.padLeft, n - off);
          if (this.dataDigest) this.crc = crc32cUpdate(this.crc, chunk, off, off + k);
          this.padLeft -= k;
          off += k;
          if (this.padLeft) return;
          if (this.dataDigest) this.state = RxState.DataDigest;
          else this.deliver(off === n);
          break;
        }
        case RxState.DataDigest: {
          const k = Math.min(4 - this.ddFill, n - off);
          this.dd.set(chunk.subarray(off, off + k), this.ddFill);
          this.ddFill += k;
          off += k;
          if (this.ddFill < 4) return;
          this.ddFill = 0;
          if (crc32cFinal(this.crc) !== readDigest(this.dd, 0)) {
            this.stop();
            sink.dataDigestError(this.bhs);
            return;
          }
          this.deliver(off === n);
          break;
        }
      }
    }
  }

  /**
   * Header (and its digest) complete, `left` bytes of the chunk after it: ask the engine
   * where the data goes, or deliver now.
   */
  private headerDone(left: number): void {
    this.dataFill = 0;
    this.crc = CRC32C_INIT;
    this.data = EMPTY;
    if (this.dataLen === 0) {
      this.deliver(left === 0);
      return;
    } // no data segment, no data digest (§11.2)
    const dst = this.sink!.dataDestination(this.bhs, this.dataLen, left >= this.segmentBytes());
    if (dst && dst.length === this.dataLen) this.data = dst;
    this.state = RxState.Data;
  }

  /** The data segment's bytes on the wire: data, padding and data digest. */
  private segmentBytes(): number {
    return this.dataLen + padLength(this.dataLen) + (this.dataDigest ? 4 : 0);
  }

  /**
   * Hand a complete PDU to the engine; the engine may stop us (close) while in it.
   * `endsChunk`: nothing follows it in this chunk, so its first response ends the turn.
   */
  private deliver(endsChunk: boolean): void {
    this.lastOfChunk = endsChunk;
    const pdu = { bhs: this.bhs, ahs: this.ahs, data: this.data };
    this.data = EMPTY;
    this.dataLen = 0;
    this.dataFill = 0;
    this.state = RxState.Bhs;
    this.sink!.receive(pdu);
  }
}

export interface TcpListenOptions {
  address?: string;
  port?: number;
  transport?: TcpTransportOptions;
}

export interface TcpListener {
  readonly address: string;
  readonly port: number;
  /** Stop accepting; with `destroyConnections`, also drop the connections it accepted. */
  close(destroyConnections?: boolean): Promise<void>;
}

/** Listen on one TCP portal (default 127.0.0.1:3260) and feed connections to `target`. */
export function listenTcp(target: IscsiTarget, opts: TcpListenOptions = {}): Promise<TcpListener> {
  // The connections, tracked here: the server does not count a socket readingInto made.
  const sockets = new Set<net.Socket>();
  const whenEmpty: Array<() => void> = [];
  const server = net.createServer({ pauseOnConnect: true, noDelay: true }, (accepted) => {
    let transport: TcpTransport | undefined;
    const readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    const socket = readingInto(accepted, readBuffer, (n) => transport?.onRead(n));
    sockets.add(socket);
    socket.on('close', () => {
      sockets.delete(socket);
      if (sockets.size > 0) return;
      for (const r of whenEmpty.splice(0)) r();
    });
    try {
      transport = new TcpTransport(socket, opts.transport, socket === accepted ? undefined : readBuffer);
      target.accept(transport);
    } catch (e) {
      target.log.warn(`accept failed: ${(e as Error).message}`);
      socket.destroy();
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 3260, opts.address ?? '127.0.0.1', () => {
      server.off('error', reject);
      server.on('error', (e) => target.log.warn(`portal error: ${e.message}`));
      const a = server.address() as net.AddressInfo;
      resolve({
        address: a.address,
        port: a.port,
        // Settles once the server stopped and its connections are gone (as net.Server.close).
        close: (destroyConnections = false) =>
          Promise.all([
            new Promise<void>((r) => server.close(() => r())),
            new Promise<void>((r) => {
              if (destroyConnections) for (const s of sockets) s.destroy();
              if (sockets.size === 0) r();
              else whenEmpty.push(r);
            }),
          ]).then(() => undefined),
      });
    });
  });
}

/**
 * The accepted connection as a socket that reads into `buffer` (net.Socket's documented
 * `onread` option) and reports each read by `onRead`. Node offers `onread` only to sockets
 * it creates, not to a server's accepted ones, so the accepted socket's handle moves into a
 * new one: `handle` is an undocumented constructor option (Node's own tls and child_process wrap
 * handles with it) and `_handle` the socket's field for it. The accepted socket, left
 * without a handle, is destroyed, which only releases the server's count of it. Where the
 * handle cannot be taken (another Node), the accepted socket is returned as it is and reads
 * Node's buffers; a host test asserts that this Node takes the fast way.
 */
function readingInto(accepted: net.Socket, buffer: Buffer, onRead: (n: number) => void): net.Socket {
  const field = accepted as unknown as { _handle?: object | null };
  const handle = field._handle;
  if (!handle) return accepted;
  let socket: net.Socket;
  try {
    socket = new net.Socket({
      handle,
      readable: true,
      writable: true,
      onread: { buffer, callback: (n: number) => void onRead(n) },
    } as net.SocketConstructorOpts);
  } catch {
    return accepted;
  }
  socket.pause(); // as the accepted socket was (pauseOnConnect): TcpTransport.attach resumes
  field._handle = null;
  accepted.destroy();
  return socket;
}
