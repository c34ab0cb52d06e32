import { afterEach, describe, expect, it, vi } from 'vitest';
import { lineLogger } from '../../../lib/common/log.js';
import { createConnection, createServer, type Server } from 'node:net';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon, StartError, type DaemonStatus } from '../../../lib/target/daemon.js';
import { controlRequest } from '../../../lib/target/control.js';
import { defaultConfigJson, overrideListen, validateConfig, type Config } from '../../../lib/target/config.js';
import { fakeEngine } from './fake-engine.js';

const dir = mkdtempSync(join(tmpdir(), 'rt-daemon-'));
let n = 0;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

function config(doc: Record<string, unknown> = overrideListen(defaultConfigJson(), '127.0.0.1', 0), control = true): Config {
  const r = validateConfig(doc, { allowEphemeralPort: true, defaults: { stateDir: dir, controlSocket: join(dir, `c${n++}.sock`) } });
  expect(r.errors).toEqual([]);
  if (!control) r.config!.control = false;
  return r.config!;
}

describe('daemon lifecycle (fake engine)', () => {
  it('servingStatus: an iSER portal waiting for its RDMA device is named as waiting, then as served once it listens', async () => {
    const engine = fakeEngine({ rdmaWaiting: true });
    const doc = overrideListen(defaultConfigJson(), '127.0.0.1', 0) as { targets: Array<{ tpgs: Array<{ portals: object[] }> }> };
    doc.targets[0]!.tpgs[0]!.portals.push({ address: '192.0.2.9', port: 3260, transport: 'iser' });
    const d = await Daemon.start(config(doc as Record<string, unknown>), { engine, version: '9.9.9' });
    cleanups.push(() => d.stop());
    const tcp = d.portals.find((p) => p.transport === 'tcp')!;
    const before = d.servingStatus();
    expect(before.waiting).toBe(1);
    expect(before.text).toBe(
      `serving tcp 127.0.0.1:${tcp.port}; iser 192.0.2.9:3260 waiting for an RDMA device with address 192.0.2.9 (no RDMA device yet (fake))`,
    );
    expect(d.connectionHints().join('\n')).toContain('  waiting:   for an RDMA device with address 192.0.2.9: no RDMA device yet (fake)');
    engine.rdmaArrives();
    await before.listening;
    const after = d.servingStatus();
    expect(after).toMatchObject({ text: `serving tcp 127.0.0.1:${tcp.port}, iser 192.0.2.9:3260`, waiting: 0, listening: undefined });
  });

  it('starts on an ephemeral port, reports how to connect, answers status, stops cleanly', async () => {
    const engine = fakeEngine();
    const cfg = config();
    const d = await Daemon.start(cfg, { engine, version: '9.9.9' });
    cleanups.push(() => d.stop());
    expect(d.portals).toHaveLength(1);
    const port = d.portals[0]!.port;
    expect(port).toBeGreaterThan(0);
    const hints = d.connectionHints().join('\n');
    expect(hints).toContain(`listening on tcp 127.0.0.1:${port} for iqn.2025-01.org.rdma-target:default`);
    expect(hints).toContain(`iscsiadm -m discovery -t st -p 127.0.0.1:${port}`);
    expect(hints).toContain(`iscsiadm -m node -T iqn.2025-01.org.rdma-target:default -p 127.0.0.1:${port} --login`);
    expect(hints).toContain(`iscsi://127.0.0.1:${port}/iqn.2025-01.org.rdma-target:default/0`);
    expect(engine.built!.luns).toHaveLength(1);
    expect(engine.built!.luns[0]).toMatchObject({ iqn: 'iqn.2025-01.org.rdma-target:default', tpgTag: 1, storeName: 'ram0' });

    const sock = (cfg.control as { socket: string }).socket;
    const st = (await controlRequest(sock, { cmd: 'status' })) as DaemonStatus;
    expect(st.version).toBe('9.9.9');
    expect(st.state).toBe('running');
    expect(st.portals).toEqual([{ transport: 'tcp', address: '127.0.0.1', port, targets: ['iqn.2025-01.org.rdma-target:default'] }]);
    expect(st.targets[0].tpgs[0].luns).toEqual([{ lun: 0, backstore: 'ram0', type: 'ram', sizeBytes: 1024 ** 3, blockSize: 512, readOnly: false, thin: true }]);
    expect(st.sessions).toHaveLength(1);
    expect(st.counters).toEqual({ commands: 7 });
    await expect(controlRequest(sock, { cmd: 'frobnicate' })).rejects.toThrow(/unknown command "frobnicate"/);

    await d.stop(1234);
    expect(engine.shutdownGrace).toBe(1234);
    expect(engine.stores[0]!.flushes).toBe(1);
    expect(engine.stores[0]!.closed).toBe(true);
    expect(existsSync(sock)).toBe(false);
    // The port is free again.
    const s = createServer();
    await new Promise<void>((r, j) => {
      s.once('error', j);
      s.listen(port, '127.0.0.1', () => r());
    });
    await new Promise<void>((r) => s.close(() => r()));
  });

  it('a port in use is one StartError naming the portal field, and nothing is left open', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise((r) => blocker.close(() => r())));
    const port = (blocker.address() as { port: number }).port;
    // biome-ignore lint/suspicious/noExplicitAny: a raw config document; the cases write any JSON into it, valid or not
    const doc = defaultConfigJson() as any;
    doc.targets[0].tpgs[0].portals[0].port = port;
    const engine = fakeEngine();
    const err = await Daemon.start(config(doc), { engine }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StartError);
    expect((err as StartError).message).toBe(
      `targets[0].tpgs[0].portals[0]: cannot listen on 127.0.0.1:${port}: address already in use (is another target running? pick another port, e.g. --listen 127.0.0.1:${port + 1})`,
    );
    expect(engine.stores[0]!.closed).toBe(true);
  });

  it('a missing file is a StartError naming backstores[i].path', async () => {
    // biome-ignore lint/suspicious/noExplicitAny: a raw config document; the cases write any JSON into it, valid or not
    const doc = overrideListen(defaultConfigJson(), '127.0.0.1', 0) as any;
    doc.backstores = [{ name: 'f', type: 'file', path: '/nonexistent/disk.img' }];
    doc.targets[0].tpgs[0].luns = [{ lun: 0, backstore: 'f' }];
    const enoent = Object.assign(new Error('ENOENT: open'), { code: 'ENOENT' });
    const err = await Daemon.start(config(doc, false), { engine: fakeEngine({ failOpen: enoent }) }).catch((e: unknown) => e);
    expect((err as Error).message).toBe(
      'backstores[0].path: cannot open file backstore: /nonexistent/disk.img: no such file or directory (give a size to create it)',
    );
  });

  it('an inline backstore failure names the LUN field', async () => {
    // biome-ignore lint/suspicious/noExplicitAny: a raw config document; the cases write any JSON into it, valid or not
    const doc = overrideListen(defaultConfigJson(), '127.0.0.1', 0) as any;
    doc.backstores = [];
    doc.targets[0].tpgs[0].luns = [{ lun: 3, backstore: { type: 'block', path: '/dev/nonexistent' } }];
    const enoent = Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    const err = await Daemon.start(config(doc, false), { engine: fakeEngine({ failOpen: enoent }) }).catch((e: unknown) => e);
    expect((err as Error).message).toBe('targets[0].tpgs[0].luns[0].backstore.path: cannot open block backstore: /dev/nonexistent: no such file or directory');
  });

  it('a second daemon on the same control socket is refused, the first keeps it', async () => {
    const cfg = config();
    const d = await Daemon.start(cfg, { engine: fakeEngine() });
    cleanups.push(() => d.stop());
    const cfg2 = { ...config(), control: cfg.control };
    const err = await Daemon.start(cfg2, { engine: fakeEngine() }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/^control\.socket: cannot listen on .*: another rdma-target is running with this control socket$/);
    expect(((await controlRequest((cfg.control as { socket: string }).socket, { cmd: 'version' })) as { version: string }).version).toBe('0.0.0');
  });

  it('skips portals of transports the build lacks, with a warning', async () => {
    // biome-ignore lint/suspicious/noExplicitAny: a raw config document; the cases write any JSON into it, valid or not
    const doc = overrideListen(defaultConfigJson(), '127.0.0.1', 0) as any;
    doc.targets[0].tpgs[0].portals.push({ address: '127.0.0.1', port: 3260, transport: 'iser' });
    const warnings: string[] = [];
    const log = lineLogger((level, m) => {
      if (level === 'warn') warnings.push(m);
    });
    const d = await Daemon.start(config(doc, false), { engine: fakeEngine(), log });
    cleanups.push(() => d.stop());
    expect(d.portals.map((p) => p.transport)).toEqual(['tcp']);
    expect(warnings).toContain(
      'targets[0].tpgs[0].portals[1]: iser portal 127.0.0.1:3260 skipped: RDMA is unavailable here (no RDMA device, or the native addon or rdma-core is missing)',
    );
  });

  it('stop with a connection open: the engine shuts it down before the listener finishes closing', async () => {
    const engine = fakeEngine();
    const d = await Daemon.start(config(undefined, false), { engine });
    const c = createConnection(d.portals[0]!.port, '127.0.0.1');
    c.on('error', () => {});
    await new Promise<void>((r) => c.once('connect', () => r()));
    await vi.waitFor(() => expect(engine.connections).toHaveLength(1));
    const t0 = Date.now();
    await d.stop(50);
    expect(Date.now() - t0).toBeLessThan(900);
    expect(engine.shutdownGrace).toBe(50);
  });

  it('stop is idempotent', async () => {
    const d = await Daemon.start(config(undefined, false), { engine: fakeEngine() });
    await Promise.all([d.stop(), d.stop()]);
    await d.stop();
    expect(d.status().state).toBe('stopped');
  });
});
