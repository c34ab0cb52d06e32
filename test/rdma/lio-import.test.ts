// `rdma-target import-lio` on saveconfig.json files that targetcli itself wrote, inside the
// VM, for the configurations the benchmarks build with LIO: an iSER portal in demo mode on a
// ramdisk, a TPG with ACLs (CHAP, mutual CHAP, a read-only remapped LUN) on fileio and block
// storage, discovery authentication, and an srpt target port with an ACL. Each file is
// imported, validated, and compared field by field; the files are printed (between markers)
// so that test/host/target/fixtures/ can be refreshed from a run.
import { execSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { KernelRig, inVm } from './kernel-helpers.js';

const rig = new KernelRig({ name: 'rt-lio-import-' });
const { work, sh } = rig;
const haveTargetcli = (() => {
  try {
    execSync('command -v targetcli', { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const ISER_IQN = 'iqn.2003-01.org.linux-iscsi.rdma-target-vm:iser';
const CHAP_IQN = 'iqn.2003-01.org.linux-iscsi.rdma-target-vm:chap';
const INIT1 = 'iqn.2004-10.com.example:init1';
const INIT2 = 'iqn.2004-10.com.example:init2';
const SRP_INIT = '0x0000000000000000aabbccddeeff0011';

/** One targetcli command (a fresh Python process each: seconds under TCG, so run without blocking vitest's worker). */
const tcli = (cmd: string) => sh(`targetcli ${cmd}`, 300_000);

/** The file targetcli saves, printed for fixture capture, parsed. */
async function saveconfig(name: string): Promise<unknown> {
  const file = join(work, `${name}.json`);
  await tcli(`saveconfig savefile=${file}`);
  const text = readFileSync(file, 'utf8');
  process.stdout.write(`\n--- saveconfig ${name} begin ---\n${text}\n--- saveconfig ${name} end ---\n`);
  return JSON.parse(text) as unknown;
}

/** Runs the CLI's import-lio; returns the converted configuration and what it reported. */
// biome-ignore lint/suspicious/noExplicitAny: a converted configuration document, read field by field
async function importLio(name: string): Promise<{ config: Record<string, any>; stderr: string }> {
  const out = join(work, `${name}.rdma-target.json`);
  const errFile = join(work, `${name}.stderr`);
  await sh(`node dist/cli/main.js import-lio ${join(work, `${name}.json`)} -o ${out} 2>${errFile}`);
  expect(await sh(`node dist/cli/main.js check-config ${out}`)).toContain('OK');
  return { config: JSON.parse(readFileSync(out, 'utf8')), stderr: readFileSync(errFile, 'utf8') };
}

describe.skipIf(!haveTargetcli)('import-lio on saveconfig.json written by targetcli', () => {
  let loop = '';
  let dbusPid = '';
  beforeAll(async () => {
    if (!inVm) throw new Error('LIO needs the VM (RDMA_TARGET_VM=1): run npm run test:rdma');
    // targetcli asks the system D-Bus for tcmu-runner's backstores and fails outright when
    // there is no bus (the VM runs no init): a private bus stands in for it.
    const [address, pid] = (await sh('dbus-daemon --session --fork --nopidfile --print-address=1 --print-pid=1')).trim().split('\n');
    process.env.DBUS_SYSTEM_BUS_ADDRESS = address;
    dbusPid = pid ?? '';
    await sh('modprobe -a target_core_mod iscsi_target_mod target_core_file target_core_iblock ib_isert ib_srpt loop');
    await sh(`truncate -s 16M ${join(work, 'blk.img')}`);
    loop = (await sh(`losetup -f --show ${join(work, 'blk.img')}`)).trim();
    await sh('mkdir -p /etc/target');
    writeFileSync(join(work, 'empty'), '');
  }, 120_000);

  // Each test starts from an empty LIO, whatever the one before left.
  afterEach(async () => {
    await tcli('clearconfig confirm=True');
  }, 120_000);

  afterAll(() => {
    if (loop) execSync(`losetup -d ${loop}`);
    if (dbusPid) execSync(`kill ${dbusPid}`);
  });

  test('an iSER portal in demo mode on a ramdisk', async () => {
    await tcli('/backstores/ramdisk create name=rd0 size=64M');
    await tcli(`/iscsi create ${ISER_IQN}`);
    await tcli(`/iscsi/${ISER_IQN}/tpg1/luns create /backstores/ramdisk/rd0`);
    await tcli(`/iscsi/${ISER_IQN}/tpg1/portals delete 0.0.0.0 3260`);
    await tcli(`/iscsi/${ISER_IQN}/tpg1/portals create 10.77.0.1 3260`);
    await tcli(`/iscsi/${ISER_IQN}/tpg1/portals/10.77.0.1:3260 enable_iser true`);
    await tcli(`/iscsi/${ISER_IQN}/tpg1 set attribute generate_node_acls=1 demo_mode_write_protect=0 authentication=0 cache_dynamic_acls=1`);
    await saveconfig('lio-iser');
    const { config, stderr } = await importLio('lio-iser');
    expect(config.backstores).toEqual([expect.objectContaining({ name: 'rd0', type: 'ram', size: 64 << 20 })]);
    const g = config.targets[0].tpgs[0];
    expect(config.targets[0].iqn).toBe(ISER_IQN);
    expect(g.portals).toEqual([
      { address: '10.77.0.1', port: 3260, transport: 'tcp' },
      { address: '10.77.0.1', port: 3260, transport: 'iser' },
    ]);
    expect(g.luns).toEqual([{ lun: 0, backstore: 'rd0' }]);
    expect(g.attributes).toMatchObject({ generateNodeAcls: true, authentication: false, demoModeWriteProtect: false });
    // Said, not dropped: cache_dynamic_acls has no counterpart here.
    expect(stderr).toMatch(/attributes\.cache_dynamic_acls: 1 is not imported/);
  });

  test('ACLs with CHAP and mutual CHAP, a read-only remapped LUN, fileio and block, discovery auth', async () => {
    await tcli(`/backstores/fileio create name=file0 file_or_dev=${join(work, 'file0.img')} size=32M`);
    await tcli(`/backstores/block create name=blk0 dev=${loop}`);
    await tcli(`/iscsi create ${CHAP_IQN}`);
    await tcli(`/iscsi/${CHAP_IQN}/tpg1/luns create /backstores/fileio/file0`);
    await tcli(`/iscsi/${CHAP_IQN}/tpg1/luns create /backstores/block/blk0`);
    await tcli(`/iscsi/${CHAP_IQN}/tpg1/portals delete 0.0.0.0 3260`);
    await tcli(`/iscsi/${CHAP_IQN}/tpg1/portals create 10.77.0.1 3261`);
    await tcli(`/iscsi/${CHAP_IQN}/tpg1/acls create ${INIT1}`);
    await tcli(`/iscsi/${CHAP_IQN}/tpg1/acls/${INIT1} set auth userid=user1 password=secret-user-01 mutual_userid=target1 mutual_password=secret-target1`);
    await tcli(`/iscsi/${CHAP_IQN}/tpg1/acls create ${INIT2} add_mapped_luns=false`);
    await tcli(`/iscsi/${CHAP_IQN}/tpg1/acls/${INIT2} create mapped_lun=5 tpg_lun_or_backstore=1 write_protect=1`);
    await tcli(`/iscsi/${CHAP_IQN}/tpg1/acls/${INIT2} set auth userid=user2 password=secret-user-02`);
    await tcli(`/iscsi/${CHAP_IQN}/tpg1 set attribute authentication=1 generate_node_acls=0`);
    await tcli(`/iscsi/${CHAP_IQN}/tpg1 set parameter MaxRecvDataSegmentLength=65536`);
    await tcli('/iscsi set discovery_auth enable=1 userid=disc-user password=disc-secret-01 mutual_userid=disc-target mutual_password=disc-secret-02');
    await saveconfig('lio-chap');
    const { config } = await importLio('lio-chap');
    // rtslib saves storage objects in its own order.
    expect(config.backstores).toHaveLength(2);
    expect(config.backstores).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'file0', type: 'file', path: join(work, 'file0.img'), size: 32 << 20 }),
        expect.objectContaining({ name: 'blk0', type: 'block', path: loop }),
      ]),
    );
    const g = config.targets[0].tpgs[0];
    expect(g.portals).toEqual([{ address: '10.77.0.1', port: 3261, transport: 'tcp' }]);
    expect(g.attributes).toMatchObject({ authentication: true, generateNodeAcls: false });
    expect(g.parameters).toEqual({ MaxRecvDataSegmentLength: '65536' });
    // rtslib saves ACLs, LUNs and mapped LUNs in its own order.
    expect(g.luns).toHaveLength(2);
    expect(g.acls).toHaveLength(2);
    expect(g.acls).toEqual(
      expect.arrayContaining([
        {
          initiator: INIT1,
          chap: { userid: 'user1', password: 'secret-user-01', mutualUserid: 'target1', mutualPassword: 'secret-target1' },
          mappedLuns: expect.arrayContaining([
            { lun: 0, tpgLun: 0, readOnly: false },
            { lun: 1, tpgLun: 1, readOnly: false },
          ]),
        },
        { initiator: INIT2, chap: { userid: 'user2', password: 'secret-user-02' }, mappedLuns: [{ lun: 5, tpgLun: 1, readOnly: true }] },
      ]),
    );
    expect(config.discoveryAuth).toEqual({
      enable: true,
      userid: 'disc-user',
      password: 'disc-secret-01',
      mutualUserid: 'disc-target',
      mutualPassword: 'disc-secret-02',
    });
  });

  test('an srpt target port with an ACL', async () => {
    // rtslib names srpt targets by GID 0 of an RDMA port ("ib." + 32 hex digits).
    const gid = readFileSync('/sys/class/infiniband/rxe0/ports/1/gids/0', 'utf8').trim().replace(/:/g, '');
    await tcli('/backstores/ramdisk create name=srp0 size=32M');
    await tcli(`/srpt create ib.${gid}`);
    await tcli(`/srpt/ib.${gid}/luns create /backstores/ramdisk/srp0`);
    await tcli(`/srpt/ib.${gid}/acls create ${SRP_INIT.replace(/^0x/, 'ib.')}`);
    await saveconfig('lio-srpt');
    const { config, stderr } = await importLio('lio-srpt');
    expect(config.srp).toMatchObject({
      enable: true,
      luns: [{ lun: 0, backstore: 'srp0' }],
      acls: [{ initiator: SRP_INIT, mappedLuns: [{ lun: 0, srpLun: 0, readOnly: false }] }],
    });
    expect(stderr).toMatch(/the srpt port name is not imported/);
  });
});
