// The daemon with the real iSCSI engine and TCP portals, over a stand-in SCSI layer (the
// iSCSI tests' FakeCore), driven by libiscsi's command-line initiators: checks the wiring
// from config to TPGs, ACLs, CHAP and portals without depending on the SCSI core.

import { afterEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeCore } from '../iscsi/helpers.js';
import { Daemon } from '../../../lib/target/daemon.js';
import { createEngine } from '../../../lib/target/wiring.js';
import type { ScsiLayer } from '../../../lib/target/scsi-layer.js';
import { validateConfig } from '../../../lib/target/config.js';
import { FakeBackstore } from './fake-engine.js';

const dir = mkdtempSync(join(tmpdir(), 'rt-wiring-'));
const haveLibiscsi = spawnSync('sh', ['-c', 'command -v iscsi-inq && command -v iscsi-ls']).status === 0;
const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const s of stops.splice(0)) await s();
});

function fakeScsi(): ScsiLayer & { views: number } {
  const layer = {
    views: 0,
    async openBackstore(store: { blockSize: number; size?: number; readOnly: boolean }) {
      return new FakeBackstore(store.blockSize, store.size ?? 1 << 20, store.readOnly);
    },
    async createLogicalUnit() {
      return new FakeCore();
    },
    createView(luns: ReadonlyArray<{ lun: number; lu: unknown }>) {
      layer.views++;
      return (luns.find((l) => l.lun === 0)?.lu as FakeCore) ?? new FakeCore();
    },
  };
  return layer;
}

async function start(doc: Record<string, unknown>) {
  const r = validateConfig(doc, { allowEphemeralPort: true, defaults: { stateDir: dir, controlSocket: join(dir, 'x.sock') } });
  expect(r.errors).toEqual([]);
  const d = await Daemon.start({ ...r.config!, control: false }, { engine: createEngine({ scsi: fakeScsi() }) });
  stops.push(() => d.stop(500));
  return d;
}

// Asynchronous: the daemon runs in this process, so a synchronous spawn would starve it.
function tool(cmd: string, ...args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (out += d));
    c.on('close', (code) => resolve({ code, out }));
  });
}

describe.skipIf(!haveLibiscsi)('wiring: real iSCSI engine, stand-in SCSI layer, libiscsi initiators', () => {
  it('demo mode: discovery lists the target, iscsi-inq reads the LUN', async () => {
    const d = await start({
      backstores: [{ name: 'r', type: 'ram', size: '1M' }],
      targets: [
        { iqn: 'iqn.2025-01.com.example:demo', tpgs: [{ portals: [{ port: 0 }], luns: [{ lun: 0, backstore: 'r' }], attributes: { generateNodeAcls: true } }] },
      ],
    });
    const port = d.portals[0]!.port;
    const ls = await tool('iscsi-ls', `iscsi://127.0.0.1:${port}`);
    expect(ls.out).toContain('Target:iqn.2025-01.com.example:demo');
    const inq = await tool('iscsi-inq', `iscsi://127.0.0.1:${port}/iqn.2025-01.com.example:demo/0`);
    expect(inq.code, inq.out).toBe(0);
    expect(inq.out).toMatch(/Vendor:FAKE/);
  });

  it('ACLs and CHAP: the listed initiator with the right secret logs in, others are refused', async () => {
    const d = await start({
      backstores: [{ name: 'r', type: 'ram', size: '1M' }],
      targets: [
        {
          iqn: 'iqn.2025-01.com.example:acl',
          tpgs: [
            {
              portals: [{ port: 0 }],
              luns: [{ lun: 0, backstore: 'r' }],
              attributes: { authentication: true },
              acls: [{ initiator: 'iqn.2025-01.com.example:good', chap: { userid: 'good', password: 'good-secret-12' } }],
            },
          ],
        },
      ],
    });
    const port = d.portals[0]!.port;
    const url = (cred: string) => `iscsi://${cred}127.0.0.1:${port}/iqn.2025-01.com.example:acl/0`;
    expect((await tool('iscsi-inq', '-i', 'iqn.2025-01.com.example:good', url('good%good-secret-12@'))).code).toBe(0);
    expect((await tool('iscsi-inq', '-i', 'iqn.2025-01.com.example:good', url('good%wrong-secret-1@'))).code).not.toBe(0);
    expect((await tool('iscsi-inq', '-i', 'iqn.2025-01.com.example:bad', url('good%good-secret-12@'))).code).not.toBe(0);
    expect((await tool('iscsi-inq', '-i', 'iqn.2025-01.com.example:good', url(''))).code).not.toBe(0);
    const st = d.status();
    expect(st.counters.loginFailures).toBeGreaterThanOrEqual(3);
  });

  it('several targets on one portal: each found by name', async () => {
    const d = await start({
      backstores: [
        { name: 'a', type: 'ram', size: '1M' },
        { name: 'b', type: 'ram', size: '1M' },
      ],
      targets: [
        { iqn: 'iqn.2025-01.com.example:one', tpgs: [{ portals: [{ port: 0 }], luns: [{ lun: 0, backstore: 'a' }], attributes: { generateNodeAcls: true } }] },
        { iqn: 'iqn.2025-01.com.example:two', tpgs: [{ portals: [{ port: 0 }], luns: [{ lun: 0, backstore: 'b' }], attributes: { generateNodeAcls: true } }] },
      ],
    });
    // Port 0 twice asks for one ephemeral listener shared by both (same transport, address, port).
    expect(d.portals).toHaveLength(1);
    expect(d.portals[0]!.targets).toEqual(['iqn.2025-01.com.example:one', 'iqn.2025-01.com.example:two']);
    const port = d.portals[0]!.port;
    for (const t of ['one', 'two']) expect((await tool('iscsi-inq', `iscsi://127.0.0.1:${port}/iqn.2025-01.com.example:${t}/0`)).code).toBe(0);
  });
});
