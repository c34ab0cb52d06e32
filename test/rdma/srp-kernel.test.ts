// The Linux kernel SRP initiator (ib_srp, add_target with dest=IP:port over RDMA/CM) against
// rdma-target on soft-RoCE, inside the VM: a login naming the wrong target port refused with
// SRP_LOGIN_REJ; ch_count 1 / queue_size 32 / cmd_sg_entries 1 and ch_count 4 / queue_size 128 /
// cmd_sg_entries 255, both with max_sect for 8 MiB commands and immediate data; WWIDs 36001405…
// from VPD 0x83; fio md5 verification on a RAM LUN and a file LUN, both zero copy between fd/LUN and wire;
// mkfs.ext4, mount, checksums across logout/login; data written before a logout verifying after
// the next login, twice; LUN reset (sg_reset -d) and host reset (sg_reset -b, a reconnect of
// every channel) during fio with the data intact; nothing left on the target after the last
// logout.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { controlRequest } from '../../lib/target/control.js';
import { IbSrp, KernelRig, bg, disks, fioVerify, inVm, sleep } from './kernel-helpers.js';

const ID_EXT = '5250544152474554'; // "RPTARGET"
const IOC_GUID = '0011223344556677';
const DEST = '10.77.0.1:5555';
const rig = new KernelRig({ name: 'rt-srp-', diagnose: 'dmesg | tail -25' });
const { work, socket, sh, status } = rig;
const dmesgTail = rig.diagnostics;
const srp = new IbSrp(rig, { idExt: ID_EXT, iocGuid: IOC_GUID, dest: DEST });
const ADD = IbSrp.add;

function config(): object {
  return {
    targets: [],
    backstores: [
      { name: 'ram0', type: 'ram', size: '192M' },
      { name: 'file1', type: 'file', path: join(work, 'lun1.img'), size: '64M' },
    ],
    srp: {
      portals: [{ address: '10.77.0.1', port: 5555 }],
      targetPortId: { idExt: ID_EXT, iocGuid: IOC_GUID },
      luns: [
        { lun: 0, backstore: 'ram0' },
        { lun: 1, backstore: 'file1' },
      ],
      // RDMA/CM logins are named by source address (LIO's srpt does the same); the initiator
      // reaches 10.77.0.1 over rxe0's loopback, so that is its source.
      acls: [{ initiator: '10.77.0.1' }],
    },
    stateDir: join(work, 'state'),
    control: { socket },
  };
}

const fio = (disk: string, name: string, extra: string): string => fioVerify(disk, name, extra, { verify: 'md5', timeoutS: 240 });

describe('Linux ib_srp initiator against rdma-target', () => {
  beforeAll(async () => {
    // Loud, never skipped: the VM tier (npm run test:rdma) runs this file inside the guest.
    if (!inVm)
      throw new Error(
        'the kernel SRP tests need the soft-RoCE VM (RDMA_TARGET_VM=1): bash scripts/vm/run.sh --timeout 900 -- npx vitest run --config vitest.rdma.config.ts test/rdma/srp-kernel.test.ts',
      );
    await sh('modprobe ib_srp && modprobe sd_mod');
    if (!existsSync(ADD)) throw new Error(`${ADD} is missing: ib_srp did not bind rxe0\n${dmesgTail()}`);
    await rig.start(config(), { srp: 1, control: true });
  }, 120_000);

  afterAll(async () => {
    try {
      await srp.removeTargetsOnly();
    } catch {
      /* reported by the tests */
    }
    rig.target?.kill('SIGKILL');
  });

  test('a login naming another target port is refused with SRP_LOGIN_REJ', async () => {
    await expect(sh(`echo "id_ext=0000000000000001,ioc_guid=${IOC_GUID},dest=${DEST}" > ${ADD}`, 60_000)).rejects.toThrow();
    for (let i = 0; i < 50 && !/rejected: TARGET PORT/.test(rig.log); i++) await sleep(100);
    expect(rig.log).toMatch(/login from .* rejected: TARGET PORT IDENTIFIER .* \(SRP_LOGIN_REJ reason 0x10003\)/);
    expect(disks()).toHaveLength(0);
  }, 120_000);

  test('ch_count=1 queue_size=32 cmd_sg_entries=1: WWIDs 36001405…, immediate data, fio md5 on a RAM LUN (zero copy) and a file LUN (registered bounce buffers)', async () => {
    await srp.addTarget('ch_count=1,queue_size=32,cmd_sg_entries=1');
    const d = await srp.waitForDisks();
    expect(await srp.channels()).toBe(1);
    expect(rig.log).toMatch(/channel up: .*it_iu_len 8260, credits 128, immediate data/);
    for (const x of disks()) {
      const wwid = readFileSync(`${x.sys}/device/wwid`, 'utf8').trim();
      expect(wwid).toMatch(/^naa\.6001405[0-9a-f]{25}$/);
      expect(`3${wwid.slice(4)}`).toMatch(/^36001405/);
      expect(await sh(`sg_inq -p 0x83 ${x.dev}`)).toMatch(/0x6001405/);
    }
    // One descriptor per command: ib_srp maps each I/O into one memory region (up to 512
    // pages), so stay within 1 MiB; it fails larger ones itself ("Failed to map data").
    const out = await sh(fio(d.get(0)!, 'sg1', '--rw=randwrite --bsrange=512-1m --iodepth=16 --size=48M'), 600_000);
    expect(out).not.toMatch(/verify: bad|err=/i);
    // The file LUN's buffers are carved from registered memory: nothing goes through the bounce slots.
    const bounced = (await status()).counters.rdmaBounceBytes!;
    const out2 = await sh(fio(d.get(1)!, 'file', '--rw=randwrite --bsrange=512-1m --iodepth=16 --size=24M'), 600_000);
    expect(out2).not.toMatch(/verify: bad|err=/i);
    expect((await status()).counters.rdmaBounceBytes! - bounced).toBeLessThan(1 << 20);
    await srp.removeTargets();
  }, 400_000);

  test('cmd_sg_entries=1 allow_ext_sg=1 max_sect=16384: 8 MiB commands with external descriptor tables (RDMA READ of the table)', async () => {
    await srp.removeTargets();
    await srp.addTarget('ch_count=1,queue_size=32,cmd_sg_entries=1,allow_ext_sg=1,max_sect=16384');
    const d = await srp.waitForDisks();
    const out = await sh(fio(d.get(0)!, 'ext', '--rw=randrw --bsrange=2m-8m --iodepth=4 --size=48M'), 600_000);
    expect(out).not.toMatch(/verify: bad|err=/i);
    expect(dmesgTail()).not.toMatch(/Failed to map data/);
    // The initiator sent external tables: more descriptors than the one the IU holds.
    expect((await status()).counters.srpExternalTables).toBeGreaterThan(0);
    await srp.removeTargets();
  }, 400_000);

  test('ch_count=4 queue_size=128 cmd_sg_entries=255 max_sect=16384: fio md5 with 4–8 MiB commands; mkfs.ext4, mount, checksums across logout and login', async () => {
    await srp.removeTargets();
    await srp.addTarget('ch_count=4,queue_size=128,cmd_sg_entries=255,max_sect=16384');
    let d = await srp.waitForDisks();
    expect(await srp.channels()).toBe(4);
    const sys = disks().find((x) => x.lun === 0)!.sys;
    expect(Number(readFileSync(`${sys}/queue/max_sectors_kb`, 'utf8'))).toBeGreaterThanOrEqual(8192);
    const big = await sh(fio(d.get(0)!, 'big', '--rw=randwrite --bsrange=4m-8m --iodepth=4 --size=64M'), 600_000);
    expect(big).not.toMatch(/verify: bad|err=/i);
    const disk = d.get(0)!;
    await sh(`mkfs.ext4 -q -F ${disk}`, 300_000);
    mkdirSync('/mnt/srp0', { recursive: true });
    await sh(`mount ${disk} /mnt/srp0`);
    await sh('for i in $(seq 1 12); do head -c $((i * 377 * 1024 + i)) /dev/urandom > /mnt/srp0/f$i; done');
    const before = await sh('cd /mnt/srp0 && sha256sum f* | sort');
    await sh('umount /mnt/srp0');
    await srp.removeTargets();
    await srp.addTarget('ch_count=2,queue_size=64,max_sect=16384');
    d = await srp.waitForDisks();
    expect(await srp.channels()).toBe(2);
    await sh(`mount ${d.get(0)!} /mnt/srp0`);
    const after = await sh('cd /mnt/srp0 && sha256sum f* | sort');
    expect(after).toBe(before);
    expect(after.split('\n').filter(Boolean)).toHaveLength(12);
    await sh('umount /mnt/srp0');
    await srp.removeTargets();
    await srp.addTarget('ch_count=4,queue_size=128,cmd_sg_entries=255,max_sect=16384');
  }, 400_000);

  /** Logged in with `opts` unless some login is already up (tests stand alone when one before failed). */
  async function ensureLogin(opts: string): Promise<void> {
    if (disks().length >= 2 && (await srp.channels()) > 0) return;
    await srp.removeTargets();
    await srp.addTarget(opts);
  }

  test('fio md5 at queue depth 128 on four channels; data written before each logout verifies after the next login', async () => {
    await ensureLogin('ch_count=4,queue_size=128,cmd_sg_entries=255,max_sect=16384');
    let d = await srp.waitForDisks();
    const out = await sh(fio(d.get(0)!, 'qd128', '--rw=randrw --bsrange=4k-512k --iodepth=128 --numjobs=1 --size=48M'), 600_000);
    expect(out).not.toMatch(/verify: bad|err=/i);
    for (let round = 0; round < 2; round++) {
      const area = `--offset=${96 + round * 32}M --size=24M`;
      await sh(fio(d.get(0)!, `w${round}`, `--rw=write --bs=256k --iodepth=16 ${area} --do_verify=0`), 600_000);
      await srp.removeTargets();
      await srp.addTarget(round === 0 ? 'ch_count=2,queue_size=64,cmd_sg_entries=255' : 'ch_count=4,queue_size=128,cmd_sg_entries=255');
      d = await srp.waitForDisks();
      const v = await sh(fio(d.get(0)!, `w${round}`, `--rw=write --bs=256k --iodepth=16 ${area} --verify_only`), 600_000);
      expect(v).not.toMatch(/verify: bad|err=/i);
    }
  }, 400_000);

  test('a LUN reset (sg_reset -d) and a host reset (sg_reset -b) during fio leave the data verifying', async () => {
    await ensureLogin('ch_count=4,queue_size=128,cmd_sg_entries=255');
    for (const how of ['-d', '-b']) {
      const disk = (await srp.waitForDisks()).get(0)!;
      const run = bg(fio(disk, `reset${how}`, '--rw=randwrite --bsrange=4k-128k --iodepth=32 --size=32M'));
      await sleep(2500);
      await sh(`timeout 90 sg_reset ${how} ${disk}`, 120_000);
      const r = await run.done;
      expect(r.code, `${r.out}\n${dmesgTail()}\n${rig.log.slice(-3000)}`).toBe(0);
      expect(r.out).not.toMatch(/verify: bad/i);
    }
    expect(rig.log).toMatch(/task management 0x8/);
  }, 400_000);

  test('after the last logout no SRP channel and no per-channel RDMA object is left', async () => {
    await srp.removeTargets();
    let st = await status();
    for (let i = 0; i < 50 && (st.counters.srpChannels ?? 0) > 0; i++) {
      await sleep(200);
      st = await status();
    }
    expect(st.counters.srpChannels).toBe(0);
    expect(st.sessions.filter((s) => s.transport === 'srp')).toHaveLength(0);
    expect(st.counters.rdmaQps).toBe(0);
    expect(st.counters.rdmaCqs).toBe(0);
    expect(st.counters.srpLoginRejects).toBeGreaterThanOrEqual(1);
    // Per initiator (the Prometheus rdma_target_initiator_events_total): ib_srp's initiator port id has its logins
    // and, its address being in the ACL, the refused login of the first test under its own name, not "unknown".
    const stats = (await controlRequest(socket, { id: 2, cmd: 'stats' }, 10_000)) as {
      initiators: Array<{ fabric: string; initiator: string; logins: number; loginFailures: number }>;
    };
    const srpRows = stats.initiators.filter((r) => r.fabric === 'srp');
    expect(
      srpRows.map((r) => r.initiator),
      JSON.stringify(stats.initiators),
    ).not.toContain('unknown');
    expect(srpRows.reduce((n, r) => n + r.logins, 0)).toBeGreaterThanOrEqual(2);
    expect(srpRows.reduce((n, r) => n + r.loginFailures, 0)).toBeGreaterThanOrEqual(1);
    for (const r of srpRows) expect(r.initiator).toMatch(/^0x[0-9a-fA-F]{32}$/);
  }, 120_000);

  test('the default target (no --config) with --listen 0.0.0.0:3260 serves SRP on 5555 under the device node GUID (LIO srpt_service_guid)', async () => {
    await rig.stop('SIGKILL');
    // The default target: no config, its state and control socket in the XDG folders.
    const env = { ...process.env, XDG_RUNTIME_DIR: work, XDG_STATE_HOME: work };
    try {
      await rig.start(undefined, { srp: 1 }, ['--listen', '0.0.0.0:3260', '--debug'], env);
      expect(rig.log).toMatch(/serving iSER beside TCP, and SRP on port 5555/);
      const guid = readFileSync('/sys/class/infiniband/rxe0/node_guid', 'utf8').trim().replace(/:/g, '');
      await sh(`echo "id_ext=${guid},ioc_guid=${guid},dest=${DEST}" > ${ADD}`, 90_000);
      const d = await srp.waitForDisks(1);
      expect(Number(readFileSync(`${disks()[0]!.sys}/size`, 'utf8')) * 512).toBe(1024 ** 3);
      const out = await sh(fio(d.get(0)!, 'dflt', '--rw=randwrite --bs=64k --iodepth=8 --size=16M'), 600_000);
      expect(out).not.toMatch(/verify: bad|err=/i);
      await srp.removeTargetsOnly();
    } finally {
      await rig.stop('SIGTERM');
    }
    expect(rig.log).toMatch(/srp: channel up/);
  }, 300_000);
});
