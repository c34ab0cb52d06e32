// A stand-in Engine for lifecycle tests: real TCP listeners (so bind errors are real),
// in-memory backstores that count flushes, no protocol.
import { createServer, type Server, type Socket } from 'node:net';
import type { Backstore } from '../../../lib/backstore/types.js';
import type { Engine, Listener, ResolvedLun, ServedTargets } from '../../../lib/target/engine.js';
import type { BackstoreConfig, Config } from '../../../lib/target/config.js';

export class FakeBackstore implements Backstore {
  flushes = 0;
  closed = false;
  readonly blockCount: number;
  constructor(
    readonly blockSize: number,
    size: number,
    readonly readOnly: boolean,
  ) {
    this.blockCount = size / blockSize;
  }
  async read(): Promise<void> {}
  async write(): Promise<void> {}
  async flush(): Promise<void> {
    this.flushes++;
  }
  async unmap(): Promise<void> {}
  async close(): Promise<void> {
    this.closed = true;
  }
}

export interface FakeEngine extends Engine {
  stores: FakeBackstore[];
  built?: { config: Config; luns: ResolvedLun[] };
  shutdownGrace?: number;
  connections: Socket[];
  /** With `rdmaWaiting`: the RDMA device appears, and the waiting iSER portals listen. */
  rdmaArrives(): void;
}

/** `rdmaWaiting`: the engine serves iSER too, but its portals wait for a device until rdmaArrives() (no socket is opened for them). */
export function fakeEngine(opts: { failOpen?: NodeJS.ErrnoException; rdmaWaiting?: boolean } = {}): FakeEngine {
  let arrived = false;
  let arrive!: () => void;
  const arrival = new Promise<void>((r) => (arrive = r));
  const e: FakeEngine = {
    stores: [],
    connections: [],
    transports: new Set(opts.rdmaWaiting ? ['tcp', 'iser'] : ['tcp']),
    rdmaArrives() {
      arrived = true;
      arrive();
    },
    async openBackstore(store: BackstoreConfig) {
      if (opts.failOpen) throw opts.failOpen;
      const b = new FakeBackstore(store.blockSize, store.size ?? 1 << 20, store.readOnly);
      e.stores.push(b);
      return b;
    },
    async build(config, luns): Promise<ServedTargets> {
      e.built = { config, luns };
      const servers: Server[] = [];
      return {
        async listen(p): Promise<Listener> {
          if (p.transport === 'iser')
            return {
              address: p.address,
              port: p.port,
              waiting: () => (arrived ? undefined : 'no RDMA device yet (fake)'),
              whenListening: () => arrival,
              close: async () => {},
            };
          const s = createServer((c) => {
            e.connections.push(c);
            c.on('error', () => {});
          });
          await new Promise<void>((resolve, reject) => {
            s.once('error', reject);
            s.listen(p.port, p.address, () => resolve());
          });
          servers.push(s);
          const a = s.address() as { address: string; port: number };
          return {
            address: a.address,
            port: a.port,
            close: (force) =>
              new Promise((r) => {
                s.close(() => r());
                if (force) for (const c of e.connections) c.destroy();
              }),
          };
        },
        async shutdown(graceMs) {
          e.shutdownGrace = graceMs;
          for (const c of e.connections) c.destroy();
        },
        status() {
          return { sessions: [{ initiator: 'iqn.1994-05.com.example:fake', target: config.targets[0]!.iqn }], counters: { commands: 7 } };
        },
      };
    },
  };
  return e;
}
