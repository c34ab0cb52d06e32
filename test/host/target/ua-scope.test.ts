// REPORTED LUNS DATA HAS CHANGED goes to the sessions whose view changed, not to every I_T
// nexus of the TPG's logical units (docs/control.md, "What a change touches"): two
// initiators hold sessions through the project's test initiator, one whose ACL maps only
// LUN 0 and one whose ACL sees every TPG LUN. A new LUN tells only the second; mapping it for
// the first tells only the first; removing it (forced) tells both, as both saw it.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon } from '../../../lib/target/daemon.js';
import { rpcCall } from '../../../lib/target/control.js';
import { createEngine } from '../../../lib/target/wiring.js';
import { configDocument, validateConfig } from '../../../lib/target/config.js';
import { saveConfigFile } from '../../../lib/target/persist.js';
import { TestInitiator, tur } from '../iscsi/helpers.js';

const IQN = 'iqn.2025-01.com.example:uascope';
const MAPPED = 'iqn.2025-01.com.example:mapped';
const ALL = 'iqn.2025-01.com.example:all';
const lunField = (n: number): bigint => BigInt(n) << 48n;
/** [status, sense key, ASC, ASCQ] of a TEST UNIT READY. */
async function turOn(i: TestInitiator, lun = 0): Promise<number[]> {
  const r = await i.scsi(tur(), { lun: lunField(lun) });
  return r.sense ? [r.status, r.sense[2]! & 0x0f, r.sense[12]!, r.sense[13]!] : [r.status];
}
const REPORTED_LUNS_CHANGED = [2, 6, 0x3f, 0x0e];
const POWER_ON = [2, 6, 0x29, 0x00];
const NO_SUCH_LUN = [2, 5, 0x25, 0x00];

describe('REPORTED LUNS DATA HAS CHANGED reaches only the sessions that see the change', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rt-uascope-'));
  const sock = join(dir, 'ctl.sock');
  const file = join(dir, 'config.json');
  let d: Daemon;
  let mapped: TestInitiator;
  let all: TestInitiator;
  const call = (m: string, p: Record<string, unknown> = {}) => rpcCall(sock, m, p);

  beforeAll(async () => {
    const doc = {
      control: { socket: sock },
      stateDir: dir,
      backstores: [
        { name: 'r0', type: 'ram', size: '1M' },
        { name: 'r1', type: 'ram', size: '1M' },
      ],
      targets: [
        {
          iqn: IQN,
          tpgs: [
            {
              portals: [{ address: '127.0.0.1', port: 0 }],
              luns: [{ lun: 0, backstore: 'r0' }],
              acls: [{ initiator: MAPPED, mappedLuns: [{ lun: 0, tpgLun: 0 }] }, { initiator: ALL }],
            },
          ],
        },
      ],
    };
    const v = validateConfig(doc, { allowEphemeralPort: true });
    expect(v.errors).toEqual([]);
    await saveConfigFile(file, doc);
    d = await Daemon.start(v.config!, { engine: createEngine({ rdma: false }), save: async (c, f) => saveConfigFile(f ?? file, configDocument(c)) });
    const port = d.portals[0]!.port;
    mapped = await TestInitiator.connect(port);
    expect((await mapped.login({ initiatorName: MAPPED, targetName: IQN })).status).toBe(0);
    all = await TestInitiator.connect(port);
    all.isid = 0x023d00000002;
    expect((await all.login({ initiatorName: ALL, targetName: IQN })).status).toBe(0);
    for (const i of [mapped, all]) {
      expect(await turOn(i)).toEqual(POWER_ON);
      expect(await turOn(i)).toEqual([0]);
    }
  });
  afterAll(async () => {
    for (const i of [mapped, all]) if (i && !i.closed) i.socket.destroy();
    await d.stop(500);
  });

  it('a new LUN: only the initiator whose view holds it', async () => {
    expect(await call('lun.create', { target: IQN, lun: 1, backstore: 'r1' })).toMatchObject({ added: [{ lun: 1 }], endedSessions: 0 });
    expect(await turOn(all)).toEqual(REPORTED_LUNS_CHANGED);
    expect(await turOn(all)).toEqual([0]);
    expect(await turOn(all, 1)).toEqual(POWER_ON);
    expect(await turOn(mapped)).toEqual([0]);
    expect(await turOn(mapped, 1)).toEqual(NO_SUCH_LUN);
  });

  it('mappedlun.create: only that initiator', async () => {
    await call('mappedlun.create', { target: IQN, initiator: MAPPED, lun: 1, tpgLun: 1 });
    expect(await turOn(mapped)).toEqual(REPORTED_LUNS_CHANGED);
    expect(await turOn(mapped, 1)).toEqual(POWER_ON);
    expect(await turOn(all)).toEqual([0]);
    expect(await turOn(all, 1)).toEqual([0]);
  });

  it('a removed LUN (forced): every initiator that saw it, and neither session ends', async () => {
    expect(await call('lun.delete', { target: IQN, lun: 1, force: true })).toMatchObject({ removed: [{ lun: 1 }], endedSessions: 0 });
    expect(await turOn(mapped)).toEqual(REPORTED_LUNS_CHANGED);
    expect(await turOn(all)).toEqual(REPORTED_LUNS_CHANGED);
    expect(await turOn(mapped, 1)).toEqual(NO_SUCH_LUN);
    expect(await turOn(all, 1)).toEqual(NO_SUCH_LUN);
    expect(mapped.closed || all.closed).toBe(false);
  });
});
