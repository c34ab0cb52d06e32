// `add-lun` over the control socket, with the real engine (SCSI core, iSCSI, TCP) and
// libiscsi's tools as the initiator.

import { afterEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon, type DaemonStatus } from '../../../lib/target/daemon.js';
import { controlRequest } from '../../../lib/target/control.js';
import { createEngine } from '../../../lib/target/wiring.js';
import { validateConfig } from '../../../lib/target/config.js';

const dir = mkdtempSync(join(tmpdir(), 'rt-addlun-'));
const haveLibiscsi = spawnSync('sh', ['-c', 'command -v iscsi-inq && command -v iscsi-ls']).status === 0;
const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const s of stops.splice(0)) await s();
});

// Asynchronous: the daemon runs in this process.
function tool(cmd: string, ...args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (out += d));
    c.on('close', (code) => resolve({ code, out }));
  });
}

describe.skipIf(!haveLibiscsi)('control socket: add-lun', () => {
  it('adds a RAM LUN that initiators can use at once; bad requests name the field', async () => {
    const iqn = 'iqn.2025-01.com.example:grow';
    const sock = join(dir, 'ctl.sock');
    const r = validateConfig(
      {
        control: { socket: sock },
        backstores: [
          { name: 'r0', type: 'ram', size: '1M' },
          { name: 'spare', type: 'ram', size: '2M' },
        ],
        targets: [{ iqn, tpgs: [{ portals: [{ port: 0 }], luns: [{ lun: 0, backstore: 'r0' }], attributes: { generateNodeAcls: true } }] }],
      },
      { allowEphemeralPort: true, defaults: { stateDir: dir } },
    );
    expect(r.errors).toEqual([]);
    const d = await Daemon.start(r.config!, { engine: createEngine() });
    stops.push(() => d.stop(500));
    const port = d.portals[0]!.port;

    expect((await tool('iscsi-inq', `iscsi://127.0.0.1:${port}/${iqn}/1`)).code).not.toBe(0);

    expect(await controlRequest(sock, { cmd: 'add-lun', target: iqn, lun: 1, backstore: { type: 'ram', size: '4M', thin: true } })).toEqual({
      target: iqn,
      tpg: 1,
      lun: 1,
      backstore: `${iqn}/tpg1/lun1`,
      sizeBytes: 4 * 1024 * 1024,
    });
    expect(await controlRequest(sock, { cmd: 'add-lun', target: iqn, tpg: 1, lun: 2, backstore: 'spare' })).toMatchObject({
      lun: 2,
      backstore: 'spare',
      sizeBytes: 2 * 1024 * 1024,
    });

    const cap = await tool('iscsi-readcapacity16', `iscsi://127.0.0.1:${port}/${iqn}/1`);
    expect(cap.code, cap.out).toBe(0);
    expect(cap.out).toContain('Total size:4194304');
    const ls = await tool('iscsi-ls', '-s', `iscsi://127.0.0.1:${port}`);
    // iscsi-ls prints last LBA × block size, one block short of the size.
    expect(ls.out).toMatch(/Lun:1 +Type:DIRECT_ACCESS \(Size:3M\)/);
    expect(ls.out).toMatch(/Lun:2 +Type:DIRECT_ACCESS \(Size:1M\)/);

    const st = (await controlRequest(sock, { cmd: 'status' })) as DaemonStatus;
    expect(st.targets[0].tpgs[0].luns.map((l: { lun: number }) => l.lun)).toEqual([0, 1, 2]);

    await expect(controlRequest(sock, { cmd: 'add-lun', target: iqn, lun: 1, backstore: 'spare' })).rejects.toThrow(
      'targets[0].tpgs[0].luns[3].lun: duplicates luns[1].lun 1',
    );
    await expect(controlRequest(sock, { cmd: 'add-lun', target: iqn, lun: 3, backstore: { type: 'ram' } })).rejects.toThrow(
      'targets[0].tpgs[0].luns[3].backstore.size: is required for a ram backstore',
    );
    await expect(controlRequest(sock, { cmd: 'add-lun', target: 'iqn.2025-01.com.example:nope', lun: 3, backstore: 'spare' })).rejects.toThrow(
      'target: no target "iqn.2025-01.com.example:nope"',
    );
  });
});
