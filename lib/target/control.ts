// Control socket: a unix stream socket speaking JSON lines. One request per line,
// `{"id": any, "cmd": "status", ...}`; one reply per line, `{"id", "ok": true, "result"}` or
// `{"id", "ok": false, "error"}`. A bare word ("status") is accepted too, so that
// `echo status | socat - UNIX:/run/rdma-target.sock` works without quoting.

import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { chmod, unlink } from 'node:fs/promises';
import type { Logger } from '../common/log.js';

export type ControlRequest = { cmd: string; id?: unknown; [k: string]: unknown };
export type ControlHandler = (req: ControlRequest) => Promise<unknown>;

const MAX_LINE = 64 * 1024;

export class ControlServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(
    readonly path: string,
    private readonly handler: ControlHandler,
    private readonly log: Logger,
  ) {}

  async listen(): Promise<void> {
    await this.removeStale();
    const server = createServer((s) => this.serve(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    // The socket can reconfigure the target: owner only, like LIO's saveconfig.json (0600).
    await chmod(this.path, 0o600).catch(() => {});
  }

  /** A socket file left by a crashed daemon would make listen fail; one with a live daemon must not be stolen. */
  private async removeStale(): Promise<void> {
    const alive = await new Promise<boolean>((resolve) => {
      const c = createConnection(this.path);
      c.once('connect', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (alive) {
      const e = new Error('another rdma-target is running with this control socket') as NodeJS.ErrnoException;
      e.code = 'EADDRINUSE';
      throw e;
    }
    await unlink(this.path).catch(() => {});
  }

  private serve(s: Socket): void {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => {});
    s.setEncoding('utf8');
    let buf = '';
    // Requests on one connection are answered in order.
    let chain = Promise.resolve();
    s.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_LINE && !buf.includes('\n')) {
        s.end(JSON.stringify({ ok: false, error: 'request line too long' }) + '\n');
        return;
      }
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        chain = chain.then(() => this.answer(s, line));
      }
    });
  }

  private async answer(s: Socket, line: string): Promise<void> {
    let req: ControlRequest;
    if (/^[a-z][a-z-]*$/.test(line)) req = { cmd: line };
    else {
      try {
        const v = JSON.parse(line) as unknown;
        if (!v || typeof v !== 'object' || typeof (v as ControlRequest).cmd !== 'string') throw new Error('a request is an object with a string "cmd"');
        req = v as ControlRequest;
      } catch (e) {
        s.write(JSON.stringify({ ok: false, error: `bad request: ${(e as Error).message}` }) + '\n');
        return;
      }
    }
    try {
      const result = await this.handler(req);
      s.write(JSON.stringify({ id: req.id, ok: true, result }) + '\n');
    } catch (e) {
      this.log.debug(`control ${req.cmd}: ${(e as Error).message}`);
      s.write(JSON.stringify({ id: req.id, ok: false, error: (e as Error).message }) + '\n');
    }
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await unlink(this.path).catch(() => {});
  }
}

/** Sends one request and resolves with its `result` (or rejects with its `error`). */
export function controlRequest(path: string, req: ControlRequest, timeoutMs = 5000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const c = createConnection(path);
    let buf = '';
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`no answer from ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    c.setEncoding('utf8');
    c.once('connect', () => c.write(JSON.stringify(req) + '\n'));
    c.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      c.end();
      try {
        const r = JSON.parse(buf.slice(0, nl)) as { ok: boolean; result?: unknown; error?: string };
        if (r.ok) resolve(r.result);
        else reject(new Error(r.error ?? 'request failed'));
      } catch (e) {
        reject(e as Error);
      }
    });
    c.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}
