#!/usr/bin/env node
// Management at scale: times `lun.create` over the control socket (JSON-RPC) for LUN 1..N
// on a running daemon (real engine, TCP only, RAM LUNs, every change saved to its file as
// in production) and prints the first, every 100th and the last, and how the last fifty
// compare with the first fifty. Usage: node scripts/bench/ctl-scale.mjs [N=500] [SIZE=64K]
// (needs `npm run build`; runs in one process: the daemon and the client share the CPU).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { Daemon } = await import(join(root, 'dist/target/daemon.js'));
const { createEngine } = await import(join(root, 'dist/target/wiring.js'));
const { validateConfig, configDocument } = await import(join(root, 'dist/target/config.js'));
const { saveConfigFile } = await import(join(root, 'dist/target/persist.js'));
const { rpcCall } = await import(join(root, 'dist/target/control.js'));

const N = Number(process.argv[2] ?? 500);
// Each LUN's RAM is allocated: small LUNs keep the heap (and GC) out of the figures.
const SIZE = process.argv[3] ?? '64K';
const dir = mkdtempSync(join(tmpdir(), 'rt-ctl-scale-'));
const sock = join(dir, 'ctl.sock');
const file = join(dir, 'config.json');
const iqn = 'iqn.2025-01.org.rdma-target:scale';
const doc = {
  control: { socket: sock },
  stateDir: dir,
  targets: [
    {
      iqn,
      tpgs: [
        {
          portals: [{ address: '127.0.0.1', port: 0 }],
          luns: [{ lun: 0, backstore: { type: 'ram', size: '1M', thin: true } }],
          attributes: { generateNodeAcls: true },
        },
      ],
    },
  ],
};
const v = validateConfig(doc, { allowEphemeralPort: true });
if (!v.config) throw new Error(v.errors.join('; '));
await saveConfigFile(file, doc);
const d = await Daemon.start(v.config, { engine: createEngine({ rdma: false }), save: (c, f) => saveConfigFile(f ?? file, configDocument(c)) });
const ms = [];
try {
  for (let i = 1; i <= N; i++) {
    const t0 = process.hrtime.bigint();
    await rpcCall(sock, 'lun.create', { target: iqn, lun: i, backstore: { type: 'ram', size: SIZE, thin: true } });
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
} finally {
  await d.stop(200);
  rmSync(dir, { recursive: true, force: true });
}
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const f = (x) => `${x.toFixed(2)} ms`;
console.log(`lun.create over the control socket, each change validated, applied and saved (${N} LUNs):`);
for (const i of [1, ...Array.from({ length: Math.floor(N / 100) }, (_, k) => (k + 1) * 100)].filter((i) => i <= N))
  console.log(`  LUN ${String(i).padStart(4)}: ${f(ms[i - 1])}`);
const first = median(ms.slice(0, 50));
const last = median(ms.slice(-50));
console.log(`  median of the first 50: ${f(first)}; of the last 50: ${f(last)}; ratio ${(last / first).toFixed(2)}`);
