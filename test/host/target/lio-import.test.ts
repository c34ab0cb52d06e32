// `import-lio`: LIO's saveconfig.json (rtslib-fb's dump) to this project's configuration.
// fixtures/lio-handmade.json covers every branch of the format by hand (storage plugins this
// target does not serve, a second srpt target, offload, ACL attributes that differ); the
// lio-vm-*.json files are what targetcli itself saved in the VM (test/rdma/lio-import.test.ts
// builds the same configurations and imports them there too).

import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { importLio } from '../../../lib/target/config/lio.js';
import { validateConfig } from '../../../lib/target/config.js';
import { run, type Io } from '../../../lib/cli/main.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const load = (name: string): unknown => JSON.parse(readFileSync(join(fixtures, name), 'utf8'));
const pin = { defaults: { stateDir: '/x', controlSocket: '/x.sock' } };

describe('import-lio', () => {
  it('every fixture converts to a configuration the validator accepts', () => {
    const files = readdirSync(fixtures).filter((f) => f.startsWith('lio-') && f.endsWith('.json'));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const r = importLio(load(f));
      const v = validateConfig(r.document, pin);
      expect(v.errors, f).toEqual([]);
    }
  });

  it('maps storage, portals (iSER beside TCP), LUNs, ACLs with CHAP and mapped LUNs, attributes, parameters, discovery auth and srpt', () => {
    const r = importLio(load('lio-handmade.json'));
    // biome-ignore lint/suspicious/noExplicitAny: a converted configuration document, read field by field
    const d = r.document as any;
    expect(d.backstores).toEqual([
      { name: 'disk0', type: 'file', size: 1073741824, path: '/srv/disk0.img', blockSize: 4096, thin: true, serial: '9d4a1c2e-3b5f-4a6d-8e7f-0a1b2c3d4e5f' },
      { name: 'lv0', type: 'block', path: '/dev/vg0/lv0', blockSize: 512, readOnly: true, serial: '11111111-2222-3333-4444-555555555555' },
      { name: 'rd0', type: 'ram', size: 67108864, blockSize: 512, serial: '66666666-7777-8888-9999-000000000000' },
      // LIO's names are unique per plugin, here across all: the second "disk0" is renamed.
      { name: 'ramdisk_disk0', type: 'ram', size: 1048576, blockSize: 512, serial: 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee' },
    ]);
    const [g1, g2] = d.targets[0].tpgs;
    expect(d.targets[0].iqn).toBe('iqn.2003-01.org.linux-iscsi.host:sn.1234');
    expect(g1.portals).toEqual([
      { address: '192.0.2.10', port: 3260, transport: 'tcp' },
      { address: '192.0.2.10', port: 3260, transport: 'iser' },
      { address: '::', port: 3261, transport: 'tcp' },
    ]);
    expect(g1.luns).toEqual([
      { lun: 0, backstore: 'disk0' },
      { lun: 1, backstore: 'lv0' },
      { lun: 3, backstore: 'ramdisk_disk0' },
    ]);
    expect(g1.acls).toEqual([
      {
        initiator: 'iqn.2004-10.com.example:init1',
        chap: { userid: 'user1', password: 'secret-user-01', mutualUserid: 'target1', mutualPassword: 'secret-target1' },
        mappedLuns: [
          { lun: 0, tpgLun: 0, readOnly: false },
          { lun: 1, tpgLun: 1, readOnly: false },
        ],
      },
      {
        initiator: 'iqn.2004-10.com.example:init2',
        chap: { userid: 'user2', password: 'secret-user-02' },
        mappedLuns: [{ lun: 5, tpgLun: 3, readOnly: true }],
      },
    ]);
    expect(g1.attributes).toEqual({
      authentication: true,
      defaultCmdsnDepth: 32,
      demoModeWriteProtect: true,
      generateNodeAcls: false,
      loginTimeout: 20,
      nopInTimeout: 15,
      nopInResponseTimeout: 30,
    });
    expect(g1.chap).toEqual({ userid: 'tpg-user', password: 'secret-tpg-001' });
    // Only what differs from LIO's defaults is an override; AuthMethod is the authentication attribute.
    expect(g1.parameters).toEqual({ ImmediateData: 'No', MaxRecvDataSegmentLength: '65536', TargetAlias: 'my disks' });
    expect(g2).toMatchObject({ tag: 2, enable: false, portals: [], luns: [], acls: [], attributes: { generateNodeAcls: true } });
    expect(d.discoveryAuth).toEqual({
      enable: true,
      userid: 'disc-user',
      password: 'disc-secret-01',
      mutualUserid: 'disc-target',
      mutualPassword: 'disc-secret-02',
    });
    expect(d.srp).toEqual({
      enable: true,
      luns: [{ lun: 0, backstore: 'rd0' }],
      acls: [{ initiator: '0x0000000000000000aabbccddeeff0011', mappedLuns: [{ lun: 0, srpLun: 0, readOnly: false }] }],
      attributes: { generateNodeAcls: false },
    });
    // What did not map is said, each with where and why.
    const why = r.unmapped.join('\n');
    for (const s of [
      'storage_objects[2] (ramdisk/rd0).nullio: a null-I/O ramdisk',
      'storage_objects[3] (pscsi/tape): plugin "pscsi" is not imported',
      'tpgs[0].luns[2]: /backstores/pscsi/tape was not imported; LUN 2 left out',
      'mapped_luns[2]: TPG LUN 2 was left out, so is this mapping',
      'tpgs[0].parameters.MaxXmitDataSegmentLength: 131072 is not imported',
      'tpgs[0].portals[1].offload: hardware iSCSI offload is not supported',
      'attributes.nopin_timeout: 10 differs from another ACL',
      'wwn: the srpt port name is not imported',
      'targets[2] (loopback naa.5001405abcdef012): fabric "loopback" is not served',
    ])
      expect(why).toContain(s);
    expect(r.unmapped).toHaveLength(9);
  });

  // Saved by targetcli (targetcli-fb 2.1.53, rtslib-fb, kernel 6.1) in the VM by
  // test/rdma/lio-import.test.ts: it prints each file between markers; copied here from a run.
  it("targetcli's file for an iSER portal in demo mode", () => {
    const r = importLio(load('lio-vm-iser-targetcli.json'));
    // biome-ignore lint/suspicious/noExplicitAny: a converted configuration document, read field by field
    const d = r.document as any;
    expect(d.backstores).toEqual([{ name: 'rd0', type: 'ram', size: 64 << 20, blockSize: 512, serial: '85a2cbce-bbba-4973-9915-7b640dc804fa' }]);
    expect(d.targets).toEqual([
      {
        iqn: 'iqn.2003-01.org.linux-iscsi.rdma-target-vm:iser',
        tpgs: [
          {
            tag: 1,
            enable: true,
            portals: [
              { address: '10.77.0.1', port: 3260, transport: 'tcp' },
              { address: '10.77.0.1', port: 3260, transport: 'iser' },
            ],
            luns: [{ lun: 0, backstore: 'rd0' }],
            acls: [],
            attributes: { authentication: false, defaultCmdsnDepth: 64, demoModeWriteProtect: false, generateNodeAcls: true, loginTimeout: 15 },
          },
        ],
      },
    ]);
    expect(r.unmapped).toEqual([
      'targets[0] (iscsi iqn.2003-01.org.linux-iscsi.rdma-target-vm:iser).tpgs[0].attributes.cache_dynamic_acls: 1 is not imported (demo-mode sessions keep no ACL here)',
    ]);
  });

  it("targetcli's file for ACLs with CHAP and mutual CHAP, a read-only remapped LUN, fileio and block storage, discovery auth", () => {
    const r = importLio(load('lio-vm-chap-targetcli.json'));
    // biome-ignore lint/suspicious/noExplicitAny: a converted configuration document, read field by field
    const d = r.document as any;
    expect(r.unmapped).toEqual([]);
    expect(d.backstores).toEqual([
      { name: 'blk0', type: 'block', path: '/dev/loop0', blockSize: 512, serial: '0bd3c17d-5143-4e77-b7fe-9409721d4d66' },
      {
        name: 'file0',
        type: 'file',
        size: 32 << 20,
        path: '/run/rt-lio-import-xmUhaT/file0.img',
        blockSize: 512,
        serial: '9d3ceb07-fb20-4ef9-843c-bbc7c2bddd3d',
      },
    ]);
    const g = d.targets[0].tpgs[0];
    expect(g.portals).toEqual([{ address: '10.77.0.1', port: 3261, transport: 'tcp' }]);
    // rtslib saves a TPG's LUNs in its own order.
    expect(g.luns).toEqual(
      expect.arrayContaining([
        { lun: 0, backstore: 'file0' },
        { lun: 1, backstore: 'blk0' },
      ]),
    );
    expect(g.luns).toHaveLength(2);
    expect(g.attributes).toMatchObject({ authentication: true, generateNodeAcls: false });
    expect(g.parameters).toEqual({ MaxRecvDataSegmentLength: '65536' });
    const byName = Object.fromEntries(g.acls.map((a: { initiator: string }) => [a.initiator, a]));
    expect(byName['iqn.2004-10.com.example:init1']).toEqual({
      initiator: 'iqn.2004-10.com.example:init1',
      chap: { userid: 'user1', password: 'secret-user-01', mutualUserid: 'target1', mutualPassword: 'secret-target1' },
      mappedLuns: expect.arrayContaining([
        { lun: 0, tpgLun: 0, readOnly: false },
        { lun: 1, tpgLun: 1, readOnly: false },
      ]),
    });
    expect(byName['iqn.2004-10.com.example:init2']).toEqual({
      initiator: 'iqn.2004-10.com.example:init2',
      chap: { userid: 'user2', password: 'secret-user-02' },
      mappedLuns: [{ lun: 5, tpgLun: 1, readOnly: true }],
    });
    expect(d.discoveryAuth).toEqual({
      enable: true,
      userid: 'disc-user',
      password: 'disc-secret-01',
      mutualUserid: 'disc-target',
      mutualPassword: 'disc-secret-02',
    });
  });

  it("targetcli's file with an srpt target port and its ACL (beside an iSCSI target)", () => {
    const r = importLio(load('lio-vm-srpt-targetcli.json'));
    // biome-ignore lint/suspicious/noExplicitAny: a converted configuration document, read field by field
    const d = r.document as any;
    expect(d.srp).toEqual({
      enable: true,
      luns: [{ lun: 0, backstore: 'srp0' }],
      acls: [{ initiator: '0x0000000000000000aabbccddeeff0011', mappedLuns: [{ lun: 0, srpLun: 0, readOnly: false }] }],
      attributes: { generateNodeAcls: false },
    });
    expect(d.targets.map((t: { iqn: string }) => t.iqn)).toEqual(['iqn.2003-01.org.linux-iscsi.rdma-target-vm:chap']);
    expect(r.unmapped).toEqual([
      'targets[0] (srpt ib.fe80000000000000847f3ffffefa0bcf).wwn: the srpt port name is not imported: SRP is served on every RDMA device through RDMA/CM (srp.portals, default 0.0.0.0:5555)',
    ]);
  });

  it('says so when the file is not a saveconfig at all, and maps nothing', () => {
    expect(importLio([]).unmapped).toEqual(['(file): not a JSON object; nothing imported']);
    expect(importLio({}).document).toEqual({ targets: [], backstores: [] });
  });

  it('the command writes the converted file, lists what it left out, and fails on what the validator refuses', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io: Io = { out: (l) => out.push(l), err: (l) => err.push(l) };
    const dest = join(mkdtempSync(join(tmpdir(), 'rt-lio-')), 'rdma-target.json');
    expect(await run(['import-lio', join(fixtures, 'lio-handmade.json'), '-o', dest], { io })).toBe(0);
    expect(validateConfig(JSON.parse(readFileSync(dest, 'utf8')), pin).errors).toEqual([]);
    expect(err.filter((l) => l.includes('not imported:'))).toHaveLength(9);
    expect(err.at(-1)).toContain(`imported to ${dest} (9 items not imported, listed above)`);

    // A CHAP secret LIO accepted but this target does not: the validator's error, naming the field.
    // biome-ignore lint/suspicious/noExplicitAny: a converted configuration document, read field by field
    const bad = structuredClone(load('lio-handmade.json')) as any;
    bad.targets[0].tpgs[0].node_acls[1].chap_password = 'short';
    const badFile = join(dirname(dest), 'bad.json');
    (await import('node:fs')).writeFileSync(badFile, JSON.stringify(bad));
    err.length = 0;
    expect(await run(['import-lio', badFile], { io })).toBe(1);
    expect(err.join('\n')).toContain(
      'error in the converted configuration: targets[0].tpgs[0].acls[1].chap.password: must be a CHAP secret of 12–16 characters',
    );
  });
});
