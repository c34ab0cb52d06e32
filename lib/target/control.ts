// Control socket: a unix stream socket speaking JSON lines (docs/control.md). One request per
// line, one reply per line, in order. Two request forms:
//   JSON-RPC 2.0: `{"jsonrpc": "2.0", "method": "lun.create", "params": {...}, "id": 1}` →
//     `{"jsonrpc": "2.0", "id": 1, "result": ...}` or `{"jsonrpc": "2.0", "id": 1, "error":
//     {"code", "message", "data": {"field", ...}}}`; a request without an id is a
//     notification (run, not answered).
//   The older form: `{"id": any, "cmd": "status", ...params}` → `{"id", "ok": true, "result"}`
//     or `{"id", "ok": false, "error": "field: why"}`. A bare word ("status") is accepted
//     too, so that `echo status | socat - UNIX:/run/rdma-target.sock` works without quoting.

import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { chmod, unlink } from 'node:fs/promises';
import type { Logger } from '../common/log.js';

export type ControlRequest = { cmd: string; id?: unknown; [k: string]: unknown };
export type ControlHandler = (method: string, params: Record<string, unknown>) => Promise<unknown>;

/** JSON-RPC 2.0 error codes (the spec's, then this daemon's in the -32000 range). */
export const RpcError = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  /** The change could not be applied (I/O, engine). */
  Failed: -32000,
  /** A name the change needs is in use (backstore used by LUNs). */
  InUse: -32001,
  /** A LUN a session can reach: removing or changing it needs force. */
  LunInUse: -32002,
  /** The change needs a restart (SRP section, stateDir, control). */
  NeedsRestart: -32003,
} as const;

/** The error object for a failed request: code, message, and data naming the field when known. */
export function rpcError(e: unknown): { code: number; message: string; data?: Record<string, unknown> } {
  const err = e as Error & { field?: string; code?: unknown; data?: Record<string, unknown> };
  const message = err?.message ?? String(e);
  let field = err?.field;
  if (field === undefined) {
    const m = /^([A-Za-z][\w.[\]-]*): /.exec(message);
    if (m) field = m[1];
  }
  const code = typeof err?.code === 'number' ? err.code : field !== undefined && !/^applied, but/.test(message) ? RpcError.InvalidParams : RpcError.Failed;
  const data = { ...(field !== undefined ? { field } : {}), ...(err?.data ?? {}) };
  return { code, message, ...(Object.keys(data).length ? { data } : {}) };
}

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
    let v: unknown;
    if (/^[a-z][a-z.-]*$/.test(line)) v = { cmd: line };
    else {
      try {
        v = JSON.parse(line) as unknown;
      } catch (e) {
        // Which form was meant is unknown: a JSON-RPC parse error (the older form ignores unknown fields).
        s.write(
          JSON.stringify({ jsonrpc: '2.0', id: null, ok: false, error: { code: RpcError.ParseError, message: `bad request: ${(e as Error).message}` } }) + '\n',
        );
        return;
      }
    }
    const o = (v && typeof v === 'object' && !Array.isArray(v) ? v : {}) as Record<string, unknown>;
    if (o.jsonrpc !== undefined) return this.answerRpc(s, o);
    if (typeof o.cmd !== 'string') {
      s.write(JSON.stringify({ ok: false, error: 'bad request: a request is an object with a string "cmd" (or a JSON-RPC 2.0 request)' }) + '\n');
      return;
    }
    const { cmd, id, ...params } = o as ControlRequest;
    try {
      const result = await this.handler(cmd, params);
      s.write(JSON.stringify({ id, ok: true, result }) + '\n');
    } catch (e) {
      this.log.debug(`control ${cmd}: ${(e as Error).message}`);
      s.write(JSON.stringify({ id, ok: false, error: (e as Error).message }) + '\n');
    }
  }

  private async answerRpc(s: Socket, o: Record<string, unknown>): Promise<void> {
    const id = o.id === undefined ? undefined : o.id;
    const reply = (body: object) => {
      if (id !== undefined) s.write(JSON.stringify({ jsonrpc: '2.0', id, ...body }) + '\n');
    };
    const bad = (message: string, field: string) => {
      // An invalid request is answered even without an id (JSON-RPC 2.0 §5: id null).
      s.write(JSON.stringify({ jsonrpc: '2.0', id: id ?? null, error: { code: RpcError.InvalidRequest, message, data: { field } } }) + '\n');
    };
    if (o.jsonrpc !== '2.0') return bad('jsonrpc: must be "2.0"', 'jsonrpc');
    if (typeof o.method !== 'string' || !o.method) return bad('method: must be a non-empty string', 'method');
    if (id !== undefined && id !== null && typeof id !== 'string' && typeof id !== 'number') return bad('id: must be a string, a number or null', 'id');
    const params = o.params ?? {};
    if (!params || typeof params !== 'object' || Array.isArray(params)) {
      reply({ error: { code: RpcError.InvalidParams, message: 'params: must be an object (named parameters)', data: { field: 'params' } } });
      return;
    }
    try {
      reply({ result: (await this.handler(o.method, params as Record<string, unknown>)) ?? null });
    } catch (e) {
      this.log.debug(`control ${o.method}: ${(e as Error).message}`);
      reply({ error: rpcError(e) });
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

/** Writes one request line and resolves with the first reply line, parsed. */
function exchange(path: string, request: unknown, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const c = createConnection(path);
    let buf = '';
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`no answer from ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    c.setEncoding('utf8');
    c.once('connect', () => c.write(JSON.stringify(request) + '\n'));
    c.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      c.end();
      try {
        resolve(JSON.parse(buf.slice(0, nl)));
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

/** Sends one request and resolves with its `result` (or rejects with its `error`). */
export async function controlRequest(path: string, req: ControlRequest, timeoutMs = 5000): Promise<unknown> {
  const r = (await exchange(path, req, timeoutMs)) as { ok: boolean; result?: unknown; error?: string };
  if (r.ok) return r.result;
  throw new Error(r.error ?? 'request failed');
}

/** A JSON-RPC error as the client sees it: the message, plus the reply's code and data. */
export class RpcFailure extends Error {
  constructor(
    message: string,
    readonly code: number,
    readonly data?: { field?: string; [k: string]: unknown },
  ) {
    super(message);
    this.name = 'RpcFailure';
  }
}

/** Sends one JSON-RPC 2.0 request and resolves with its result (rejects with an RpcFailure). */
export async function rpcCall(path: string, method: string, params: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<unknown> {
  const r = (await exchange(path, { jsonrpc: '2.0', method, params, id: 1 }, timeoutMs)) as {
    result?: unknown;
    error?: { code: number; message: string; data?: { field?: string } };
  };
  if (r.error) throw new RpcFailure(r.error.message, r.error.code, r.error.data);
  return r.result;
}
