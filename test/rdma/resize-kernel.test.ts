// Online resize seen by the Linux kernel initiator (open-iscsi over TCP, inside the VM): an
// ext4 file system on a RAM LUN and on a file LUN, files checksummed, the LUN grown with
// `rdma-target lun resize` while mounted, a rescan, the kernel's new size, resize2fs growing
// the mounted file system, and the checksums unchanged; the configuration file holds the new
// sizes afterwards, and a shrink is refused naming the field.
import { execSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { KernelRig, inVm, stopIscsid } from './kernel-helpers.js';

const IQN = 'iqn.2025-01.org.rdma-target:resize-test';
const INITIATOR = 'iqn.2025-01.org.rdma-target:vm-resize-initiator';
const PORTAL = '10.77.0.1:3260';
const rig = new KernelRig({ name: 'rt-resize-', diagnose: 'dmesg | tail -n 30' });
const { work, sh } = rig;
const socket = join(work, 'control.sock');
const fileLun = join(work, 'lun1.img');
const blockImg = join(work, 'lun2.img');
/** The loop device LUN 2 is on (a block backstore whose device grows, as after lvextend). */
let loopDev = '';
const MiB = 1 << 20;

function config(): object {
  return {
    control: { socket },
    stateDir: join(work, 'state'),
    targets: [
      {
        iqn: IQN,
        tpgs: [
          {
            portals: [{ address: '10.77.0.1', port: 3260, transport: 'tcp' }],
            luns: [
              { lun: 0, backstore: { type: 'ram', size: '64M' } },
              { lun: 1, backstore: { type: 'file', path: fileLun, size: '64M' } },
              { lun: 2, backstore: { type: 'block', path: loopDev } },
            ],
            acls: [{ initiator: INITIATOR }],
          },
        ],
      },
    ],
  };
}

const node = (args: string) => rig.iscsiNode({ iqn: IQN, portal: PORTAL }, args);
/** The CLI, as an administrator types it. */
const cli = (args: string) => sh(`node dist/cli/main.js ${args} --socket ${socket}`);
const blockdevBytes = async (disk: string) => Number((await sh(`blockdev --getsize64 ${disk}`)).trim());

async function waitFor(what: string, cond: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${rig.context()}`);
}

describe('online LUN resize with the kernel initiator', () => {
  beforeAll(async () => {
    if (!inVm) throw new Error('the kernel-initiator tests need the VM (RDMA_TARGET_VM=1): run npm run test:rdma');
    await sh('modprobe iscsi_tcp && modprobe sd_mod');
    await rig.startIscsid(INITIATOR);
    await sh(`modprobe loop; truncate -s 64M ${blockImg}`);
    loopDev = (await sh(`losetup -f --show ${blockImg}`)).trim();
    await rig.start(config(), { tcp: 1, control: true });
    await sh(`iscsiadm -m discovery -t sendtargets -p ${PORTAL}`);
    await node('--login');
    await rig.waitForDisk(IQN, 0);
    await rig.waitForDisk(IQN, 1);
    await rig.waitForDisk(IQN, 2);
  }, 120_000);

  afterAll(async () => {
    for (const m of ['/mnt/resize0', '/mnt/resize1', '/mnt/resize2']) {
      try {
        execSync(`umount ${m}`, { stdio: 'ignore' });
      } catch {
        /* not mounted */
      }
    }
    try {
      await node('--logout');
    } catch {
      /* already out */
    }
    rig.target?.kill('SIGKILL');
    stopIscsid();
    if (loopDev) execSync(`losetup -d ${loopDev}`);
  });

  for (const [lun, kind, grown] of [
    [0, 'RAM', 160],
    [1, 'file', 128],
    [2, 'block', 96],
  ] as const) {
    test(`LUN ${lun} (${kind}): mkfs, files, grow to ${grown} MiB while mounted, rescan, resize2fs, checksums intact`, async () => {
      const disk = await rig.diskOf(IQN, lun);
      const mnt = `/mnt/resize${lun}`;
      expect(await blockdevBytes(disk)).toBe(64 * MiB);
      await sh(`mkfs.ext4 -q -F ${disk}`, 300_000);
      mkdirSync(mnt, { recursive: true });
      await sh(`mount ${disk} ${mnt}`);
      await sh(`for i in $(seq 1 12); do head -c $((i * 53 * 1024)) /dev/urandom > ${mnt}/f$i; done; sync`);
      const before = await sh(`cd ${mnt} && sha256sum f* | sort`);

      // RAM and file LUNs grow to a size; a block LUN takes its device's new size.
      if (kind === 'block') await sh(`truncate -s ${grown}M ${blockImg} && losetup -c ${loopDev}`);
      const out = JSON.parse(await cli(kind === 'block' ? `lun resize ${IQN} ${lun}` : `lun resize ${IQN} ${lun} ${grown}M`));
      expect(out).toMatchObject({ lun, previousBytes: 64 * MiB, sizeBytes: grown * MiB });
      // The unit attention tells the kernel on its next command; a rescan makes it re-read the capacity.
      await sh('iscsiadm -m session --rescan');
      await sh(`echo 1 > /sys/block/${disk.replace('/dev/', '')}/device/rescan`);
      await waitFor(`${disk} at ${grown} MiB`, async () => (await blockdevBytes(disk)) === grown * MiB);
      const dmesg = await sh('dmesg');
      expect(dmesg).toMatch(/Capacity data has changed|detected capacity change/i);

      await sh(`resize2fs ${disk}`, 300_000);
      const blocks = Number((await sh(`df -B1 --output=size ${mnt} | tail -1`)).trim());
      expect(blocks).toBeGreaterThan((grown - 16) * MiB);
      await sh(`head -c 8388608 /dev/urandom > ${mnt}/after; sync`);
      expect(await sh(`cd ${mnt} && sha256sum f* | sort`)).toBe(before);
      await sh(`umount ${mnt}`);
      await sh(`e2fsck -fn ${disk}`, 300_000);
      await sh(`mount ${disk} ${mnt}`);
      expect(await sh(`cd ${mnt} && sha256sum f* | sort`)).toBe(before);

      // Saved: the configuration file now says the new size (a block device's is the device's own).
      const saved = JSON.parse(readFileSync(join(work, 'config.json'), 'utf8'));
      if (kind !== 'block') expect(saved.targets[0].tpgs[0].luns[lun].backstore.size).toBe(grown * MiB);
      else expect(saved.targets[0].tpgs[0].luns[lun].backstore).toMatchObject({ type: 'block', path: loopDev });
    }, 900_000);
  }

  test('shrinking is refused, naming the field, and changes nothing', async () => {
    let err = '';
    try {
      await cli(`lun resize ${IQN} 0 64M`);
    } catch (e) {
      err = (e as Error).message;
    }
    expect(err).toContain(`size: must be at least the current ${160 * MiB} bytes`);
    expect(await blockdevBytes(await rig.diskOf(IQN, 0))).toBe(160 * MiB);
  });
});
