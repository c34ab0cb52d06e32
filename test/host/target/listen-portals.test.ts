// Portals under --listen (docs/control.md, Limits): --listen replaces every TCP portal for
// the run and again at each reload, so a TCP portal change through the control API could be
// neither saved nor kept: it is refused (-32003, naming --listen) and nothing changes. iser
// portals are not replaced by --listen, so a change to them is live and saved: what is saved
// keeps the file's own TCP portals and the running iser ones (filePortals).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon } from '../../../lib/target/daemon.js';
import { RpcFailure, rpcCall } from '../../../lib/target/control.js';
import { createEngine } from '../../../lib/target/wiring.js';
import { configDocument, filePortals, overrideListen, validateConfig } from '../../../lib/target/config.js';
import { saveConfigFile } from '../../../lib/target/persist.js';

const IQN = 'iqn.2025-01.com.example:listen';

describe('filePortals: what a --listen run saves', () => {
  const file = {
    targets: [
      {
        iqn: IQN,
        tpgs: [
          {
            tag: 1,
            portals: [
              { address: '10.0.0.1', port: 3260 },
              { address: '10.0.0.1', port: 3260, transport: 'iser' },
            ],
          },
          { tag: 2, luns: [] },
        ],
      },
    ],
  };
  it('keeps the file’s TCP portals and the running iser portals, added or removed', () => {
    const running = overrideListen(file, '127.0.0.1', 3299) as typeof file & { targets: Array<{ tpgs: Array<{ portals: unknown[] }> }> };
    // At run time: the file's iser portal deleted, another added, and a TPG without portals given an iser one.
    running.targets[0]!.tpgs[0]!.portals = [
      { address: '127.0.0.1', port: 3299, transport: 'tcp' },
      { address: '10.0.0.2', port: 3260, transport: 'iser' },
    ];
    running.targets[0]!.tpgs[1]!.portals = [
      { address: '127.0.0.1', port: 3299, transport: 'tcp' },
      { address: '10.0.0.3', port: 3260, transport: 'iser' },
    ];
    const saved = filePortals(running, file) as { targets: Array<{ tpgs: Array<{ portals?: unknown[] }> }> };
    expect(saved.targets[0]!.tpgs[0]!.portals).toEqual([
      { address: '10.0.0.1', port: 3260 },
      { address: '10.0.0.2', port: 3260, transport: 'iser' },
    ]);
    expect(saved.targets[0]!.tpgs[1]!.portals).toEqual([{ address: '10.0.0.3', port: 3260, transport: 'iser' }]);
    // Nothing changed at run time: the file's portals come back as they were.
    const same = filePortals(overrideListen(file, '127.0.0.1', 3299), file) as typeof file;
    expect(same.targets[0]!.tpgs[0]!.portals).toEqual(file.targets[0]!.tpgs[0]!.portals);
    expect('portals' in same.targets[0]!.tpgs[1]!).toBe(false);
  });
});

describe('the control API under --listen', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rt-listen-'));
  const sock = join(dir, 'ctl.sock');
  const path = join(dir, 'config.json');
  const fileDoc = {
    control: { socket: sock },
    stateDir: dir,
    backstores: [{ name: 'r0', type: 'ram', size: '1M' }],
    targets: [{ iqn: IQN, tpgs: [{ portals: [{ address: '10.0.0.1', port: 3260 }], luns: [{ lun: 0, backstore: 'r0' }] }] }],
  };
  let d: Daemon;
  beforeAll(async () => {
    await saveConfigFile(path, fileDoc);
    const v = validateConfig(overrideListen(fileDoc, '127.0.0.1', 0), { allowEphemeralPort: true });
    expect(v.errors).toEqual([]);
    d = await Daemon.start(v.config!, {
      engine: createEngine({ rdma: false }),
      listenOverride: '127.0.0.1:0',
      // As lib/cli/main.ts saves under --listen.
      save: async (c, f) => saveConfigFile(f ?? path, filePortals(configDocument(c), fileDoc)),
    });
  });
  afterAll(() => d.stop(200));

  it('a TCP portal change is refused naming --listen; an iser portal is saved', async () => {
    const before = readFileSync(path, 'utf8');
    for (const m of ['portal.create', 'portal.delete']) {
      const e = await rpcCall(sock, m, { target: IQN, address: '127.0.0.2', port: 3260 }).then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(e).toBeInstanceOf(RpcFailure);
      expect((e as RpcFailure).code).toBe(-32003);
      expect((e as RpcFailure).message).toMatch(/^transport: TCP portals come from --listen 127\.0\.0\.1:0 for this run/);
    }
    expect(readFileSync(path, 'utf8')).toBe(before);
    expect(d.portals.map((p) => `${p.transport} ${p.address}`)).toEqual(['tcp 127.0.0.1']);

    const r = (await rpcCall(sock, 'portal.create', { target: IQN, address: '10.0.0.1', port: 3260, transport: 'iser' })) as { portalsSkipped: string[] };
    expect(r.portalsSkipped).toHaveLength(1);
    const saved = JSON.parse(readFileSync(path, 'utf8')) as { targets: Array<{ tpgs: Array<{ portals: unknown[] }> }> };
    expect(saved.targets[0]!.tpgs[0]!.portals).toEqual([
      { address: '10.0.0.1', port: 3260 },
      { address: '10.0.0.1', port: 3260, transport: 'iser' },
    ]);
    await rpcCall(sock, 'portal.delete', { target: IQN, address: '10.0.0.1', port: 3260, transport: 'iser' });
    expect((JSON.parse(readFileSync(path, 'utf8')) as typeof saved).targets[0]!.tpgs[0]!.portals).toEqual([{ address: '10.0.0.1', port: 3260 }]);
  });
});
