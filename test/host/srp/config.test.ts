// The `srp` section of the configuration (lib/target/config.ts), the daemon's handling of SRP
// LUNs and portals (lib/target/daemon.ts) with a fake engine, and the default config's SRP
// portal beside a non-loopback TCP portal (addRdmaPortals).
import { lineLogger } from '../../../lib/common/log.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SRP_LUN_OWNER, addRdmaPortals, defaultConfigJson, overrideListen, validateConfig } from '../../../lib/target/config.js';
import { Daemon } from '../../../lib/target/daemon.js';
import { fakeEngine } from '../target/fake-engine.js';

const pin = { defaults: { stateDir: '/var/lib/rt-test', controlSocket: '/run/rt-test.sock' } };

// biome-ignore lint/suspicious/noExplicitAny: a raw config document; the cases write any JSON into it, valid or not
function doc(srp: unknown): any {
  return {
    backstores: [{ name: 'ram0', type: 'ram', size: '64M' }],
    targets: [
      {
        iqn: 'iqn.2025-01.com.example:t1',
        tpgs: [{ portals: [{ address: '127.0.0.1', port: 3260 }], luns: [{ lun: 0, backstore: 'ram0' }], attributes: { generateNodeAcls: true } }],
      },
    ],
    srp,
  };
}

describe('config: srp', () => {
  it('a full section, normalised', () => {
    const r = validateConfig(
      doc({
        portals: [{ address: '10.0.0.1' }, { address: '10.0.0.2', port: 5556 }],
        targetPortId: { idExt: '0x5250544152474554', iocGuid: '0002:c903:00a1:b2c3' },
        luns: [
          { lun: 0, backstore: 'ram0' },
          { lun: 3, backstore: { type: 'ram', size: '8M' } },
        ],
        acls: [{ initiator: '0x0000000000000000F8C16AFFFEE72052', mappedLuns: [0, { lun: 1, srpLun: 3, readOnly: true }] }, { initiator: '10.0.0.9' }],
        attributes: { credits: 64, immediateData: false, maxItIuLength: 16384 },
      }),
      pin,
    );
    expect(r.errors).toEqual([]);
    expect(r.config!.srp).toEqual({
      enable: true,
      portals: [
        { address: '10.0.0.1', port: 5555 },
        { address: '10.0.0.2', port: 5556 },
      ],
      targetPortId: { idExt: '5250544152474554', iocGuid: '0002c90300a1b2c3' },
      luns: [
        { lun: 0, backstore: 'ram0' },
        { lun: 3, backstore: expect.objectContaining({ type: 'ram', size: 8 * 1024 * 1024 }) },
      ],
      acls: [
        {
          initiator: '0x0000000000000000f8c16afffee72052',
          mappedLuns: [
            { lun: 0, tpgLun: 0, readOnly: false },
            { lun: 1, tpgLun: 3, readOnly: true },
          ],
        },
        { initiator: '10.0.0.9' },
      ],
      attributes: { generateNodeAcls: false, credits: 64, immediateData: false, maxItIuLength: 16384 },
    });
  });

  it('defaults: 0.0.0.0:5555, node-GUID port id, 128 credits, immediate data; warns that nobody may log in', () => {
    const r = validateConfig(doc({ luns: [{ lun: 0, backstore: 'ram0' }] }), pin);
    expect(r.errors).toEqual([]);
    expect(r.config!.srp).toMatchObject({
      enable: true,
      portals: [{ address: '0.0.0.0', port: 5555 }],
      acls: [],
      attributes: { generateNodeAcls: false, credits: 128, immediateData: true, maxItIuLength: 65536 },
    });
    expect(r.config!.srp!.targetPortId).toBeUndefined();
    expect(r.warnings).toContain('srp: has no acls[] and attributes.generateNodeAcls is false: no SRP initiator can log in');
  });

  const bad: Array<[string, unknown, string[]]> = [
    ['not an object', true, ['srp: must be an object, got true']],
    ['unknown key', { lunz: [] }, ['srp.lunz: unknown field (did you mean "luns"?); allowed: enable, portals, targetPortId, luns, acls, attributes']],
    [
      'bad address',
      { portals: [{ address: 'rxe0' }] },
      ['srp.portals[0].address: must be an IPv4 or IPv6 address of an RDMA interface (e.g. "10.0.0.1", "0.0.0.0"), got "rxe0"'],
    ],
    ['bad port', { portals: [{ port: 70000 }] }, ['srp.portals[0].port: must be an integer 1–65535, got 70000']],
    [
      'duplicate portal',
      { portals: [{ address: '10.0.0.1' }, { address: '10.0.0.1', port: 5555 }] },
      ['srp.portals[1]: duplicates portals[0] (10.0.0.1:5555)'],
    ],
    [
      'wildcard overlap',
      { portals: [{ address: '0.0.0.0' }, { address: '10.0.0.1' }] },
      ['srp.portals: 10.0.0.1:5555 overlaps the wildcard 0.0.0.0:5555; list one of them'],
    ],
    [
      'bad idExt',
      { targetPortId: { idExt: '1234', iocGuid: '0011223344556677' } },
      ['srp.targetPortId.idExt: must be 16 hex digits (as in ib_srp\'s add_target, e.g. "0002c90300a1b2c3" or "0002:c903:00a1:b2c3"), got "1234"'],
    ],
    ['unknown backstore', { luns: [{ lun: 0, backstore: 'nope' }] }, ['srp.luns[0].backstore: names no entry in backstores[] (known: ram0), got "nope"']],
    [
      'duplicate LUN',
      {
        luns: [
          { lun: 0, backstore: 'ram0' },
          { lun: 0, backstore: 'ram0' },
        ],
      },
      ['srp.luns[1].lun: duplicates luns[0].lun 0'],
    ],
    [
      'bad ACL name',
      { acls: [{ initiator: 'iqn.2025-01.com.example:x' }] },
      [
        'srp.acls[0].initiator: must be an initiator port id ("0x" + 32 hex digits, as LIO srpt names its ACLs) or the initiator\'s IP address for RDMA/CM logins, got "iqn.2025-01.com.example:x"',
      ],
    ],
    ['duplicate ACL', { acls: [{ initiator: '10.0.0.9' }, { initiator: '10.0.0.9' }] }, ['srp.acls[1].initiator: duplicates acls[0].initiator']],
    [
      'mapped LUN not exported',
      { luns: [{ lun: 0, backstore: 'ram0' }], acls: [{ initiator: '10.0.0.9', mappedLuns: [4] }] },
      ['srp.acls[0].mappedLuns[0]: names no entry of srp.luns (0), got 4'],
    ],
    [
      'IU length too small',
      { attributes: { maxItIuLength: 4096 } },
      ['srp.attributes.maxItIuLength: must be an integer number of bytes (at least 8260, the IU ib_srp sends with immediate data) 8260–1048576, got 4096'],
    ],
    ['credits out of range', { attributes: { credits: 1 } }, ['srp.attributes.credits: must be an integer 2–4096, got 1']],
  ];
  it.each(bad)('%s', (_n, srp, errors) => {
    const r = validateConfig(doc(srp), pin);
    expect(r.errors).toEqual(errors);
  });

  it('a TPG portal cannot be srp (SRP is its own target port)', () => {
    const d = doc(undefined);
    d.targets[0].tpgs[0].portals = [{ address: '10.0.0.1', port: 5555, transport: 'srp' }];
    expect(validateConfig(d, pin).errors).toEqual(['targets[0].tpgs[0].portals[0].transport: must be "tcp" or "iser", got "srp"']);
  });
});

describe('default config: SRP beside a non-loopback TCP portal only', () => {
  const devs = [{ name: 'rxe0' }];
  it('loopback default: no SRP', () => {
    const c = validateConfig(defaultConfigJson(), pin).config!;
    expect(addRdmaPortals(c, devs).srp).toBeUndefined();
  });
  it('--listen 0.0.0.0:3260: SRP on 0.0.0.0:5555 with the TPG LUNs, demo mode as the TPG', () => {
    const c = validateConfig(overrideListen(defaultConfigJson(), '0.0.0.0', 3260), pin).config!;
    const out = addRdmaPortals(c, devs);
    expect(out.srp).toEqual({
      enable: true,
      portals: [{ address: '0.0.0.0', port: 5555 }],
      luns: [{ lun: 0, backstore: 'ram0' }],
      acls: [],
      attributes: { generateNodeAcls: true, credits: 128, immediateData: true, maxItIuLength: 65536 },
    });
    expect(addRdmaPortals(validateConfig(overrideListen(defaultConfigJson(), '0.0.0.0', 3260), pin).config!, []).srp).toBeUndefined();
  });
});

describe('daemon: SRP LUNs and portals (fake engine)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rt-srp-'));
  const cfg = (srp: unknown) => {
    const r = validateConfig({ ...doc(srp), targets: [] }, { allowEphemeralPort: true, defaults: { stateDir: dir, controlSocket: join(dir, 'c.sock') } });
    expect(r.errors).toEqual([]);
    r.config!.control = false;
    return r.config!;
  };

  it('opens the SRP LUN backstores (shared by name) and skips the portal loudly without RDMA', async () => {
    const engine = fakeEngine();
    const warnings: string[] = [];
    const log = lineLogger((level, m) => {
      if (level === 'warn') warnings.push(m);
    });
    const d = await Daemon.start(
      cfg({
        portals: [{ address: '10.0.0.1' }],
        luns: [
          { lun: 0, backstore: 'ram0' },
          { lun: 1, backstore: { type: 'ram', size: '1M' } },
        ],
        attributes: { generateNodeAcls: true },
      }),
      { engine, log },
    );
    expect(engine.built!.luns.map((l) => [l.iqn, l.lun.lun, l.storeName])).toEqual([
      [SRP_LUN_OWNER, 0, 'ram0'],
      [SRP_LUN_OWNER, 1, 'srp/lun1'],
    ]);
    expect(engine.stores).toHaveLength(2);
    expect(d.portals).toHaveLength(0);
    expect(warnings.join('\n')).toMatch(/srp\.portals\[0\]: srp portal 10\.0\.0\.1:5555 skipped: RDMA is unavailable here/);
    await d.stop();
  });

  it('binds the SRP portal when the engine serves srp, with an add_target hint', async () => {
    const engine = fakeEngine();
    (engine.transports as Set<string>).add('srp');
    const d = await Daemon.start(
      cfg({
        portals: [{ address: '127.0.0.1', port: 0 }],
        targetPortId: { idExt: '0011223344556677', iocGuid: '8899aabbccddeeff' },
        luns: [{ lun: 0, backstore: 'ram0' }],
        attributes: { generateNodeAcls: true },
      }),
      { engine },
    );
    expect(d.portals).toEqual([expect.objectContaining({ transport: 'srp', address: '127.0.0.1', field: 'srp.portals[0]' })]);
    const hints = d.connectionHints().join('\n');
    expect(hints).toMatch(/listening on srp 127\.0\.0\.1:\d+ \(RDMA\/CM\)/);
    expect(hints).toMatch(
      /echo "id_ext=0011223344556677,ioc_guid=8899aabbccddeeff,dest=127\.0\.0\.1:\d+" > \/sys\/class\/infiniband_srp\/srp-<dev>-1\/add_target/,
    );
    await d.stop();
  });
});
