// A Data-In's memory belongs to the SCSI core again as soon as sendPdu's promise settles
// (pooled buffers are reused at once). Node keeps a reference to written Buffers, so a PDU
// whose bytes are still queued must not settle before they reach the kernel, even when
// the queue is under the high-water mark.
import { Duplex } from 'node:stream';
import type net from 'node:net';
import { expect, test } from 'vitest';
import { TcpTransport } from '../../../lib/transport/tcp.js';

/** A socket stand-in whose kernel accepts writes only when told to. */
class SlowSocket extends Duplex {
  readonly sent: Buffer[] = [];
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
