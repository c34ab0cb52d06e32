// The Linux kernel iSCSI initiator (open-iscsi, iscsi_tcp) against rdma-target over TCP,
// inside the VM (the host kernel has no iSCSI initiator modules either): discovery, CHAP
// login, mkfs.ext4, mount, files checksummed across logout/login, fio with crc32c
// verification, and a file LUN that keeps every write acknowledged after SYNCHRONIZE
// CACHE across kill -9 of the target.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { KernelRig, fioVerify, inVm, stopIscsid } from './kernel-helpers.js';

const IQN = 'iqn.2025-01.org.rdma-target:kernel-test';
const INITIATOR = 'iqn.2025-01.org.rdma-target:vm-initiator';
const PORTAL = '10.77.0.1:3260';
const rig = new KernelRig({ name: 'rt-kernel-' });
const { work, sh } = rig;
const fileLun = join(work, 'lun1.img');

function config(): object {
  return {
    targets: [
      {
        iqn: IQN,
        tpgs: [
          {
            tag: 1,
            portals: [{ address: '10.77.0.1', port: 3260, transport: 'tcp' }],
            luns: [
              { lun: 0, backstore: { type: 'ram', size: '256M' } },
              { lun: 1, backstore: { type: 'file', path: fileLun, size: '64M' } },
            ],
            attributes: { authentication: true },
            acls: [{ initiator: INITIATOR, chap: { userid: 'vm-initiator', password: 'kernel-secret-1' } }],
          },
        ],
      },
    ],
    stateDir: join(work, 'state'),
  };
}

const startTarget = () => rig.start(config(), { tcp: 1 }, []);
const diskOf = (lun: number): Promise<string> => rig.diskOf(IQN, lun);

async function waitForDisks(): Promise<void> {
  await rig.waitForDisk(IQN, 0);
  await rig.waitForDisk(IQN, 1);
}

const node = (args: string) => rig.iscsiNode({ iqn: IQN, portal: PORTAL }, args);
const login = () => node('--login');
const logout = () => node('--logout');

describe('open-iscsi kernel initiator over TCP', () => {
  beforeAll(async () => {
    // Loud, never skipped: the VM tier (npm run test:rdma) runs this file inside the guest.
    if (!inVm) throw new Error('the kernel-initiator tests need the VM (RDMA_TARGET_VM=1): run npm run test:rdma');
    await sh('modprobe iscsi_tcp && modprobe sd_mod');
    await rig.startIscsid(INITIATOR);
    await startTarget();
  }, 60_000);

  afterAll(async () => {
    try {
      await logout();
    } catch {
      /* already out */
    }
    rig.target?.kill('SIGKILL');
    stopIscsid();
  });

  test('discovery, CHAP login, mkfs.ext4, mount, checksums across logout/login', async () => {
    const found = await sh(`iscsiadm -m discovery -t sendtargets -p ${PORTAL}`);
    expect(found).toContain(IQN);
    await node(`-o update -n node.session.auth.authmethod -v CHAP`);
    await node(`-o update -n node.session.auth.username -v vm-initiator`);
    // A wrong secret is refused (authentication failure), then the right one works.
    await node(`-o update -n node.session.auth.password -v wrong-secret-9`);
    await expect(login()).rejects.toThrow(/authorization failure|Login failed|24/i);
    await node(`-o update -n node.session.auth.password -v kernel-secret-1`);
    await login();
    await waitForDisks();
    const disk = await diskOf(0);
    await sh(`mkfs.ext4 -q -F ${disk}`, 300_000);
    mkdirSync('/mnt/lun0', { recursive: true });
    await sh(`mount ${disk} /mnt/lun0`);
    await sh('for i in $(seq 1 20); do head -c $((i * 37 * 1024)) /dev/urandom > /mnt/lun0/f$i; done');
    const before = await sh('cd /mnt/lun0 && sha256sum f* | sort');
    await sh('umount /mnt/lun0');
    await logout();
    await login();
    await waitForDisks();
    await sh(`mount ${await diskOf(0)} /mnt/lun0`);
    const after = await sh('cd /mnt/lun0 && sha256sum f* | sort');
    expect(after).toBe(before);
    expect(after.split('\n').filter(Boolean)).toHaveLength(20);
    await sh('umount /mnt/lun0');
  }, 600_000);

  test('fio writes then verifies with crc32c', async () => {
    const disk = await diskOf(0);
    const out = await sh(fioVerify(disk, 'verify', '--rw=randwrite --bs=4k:64k --bsrange=4k-64k --iodepth=16 --size=32M'), 600_000);
    expect(out).not.toMatch(/verify: bad/i);
  }, 600_000);

  test('a file LUN keeps writes acknowledged after SYNCHRONIZE CACHE across kill -9 of the target', async () => {
    const disk = await diskOf(1);
    await sh(`head -c 4194304 /dev/urandom > ${work}/pattern && dd if=${work}/pattern of=${disk} bs=1M oflag=direct status=none && sg_sync ${disk}`);
    const want = await sh(`sha256sum < ${work}/pattern`);
    await rig.stop('SIGKILL');
    // What the target acknowledged is in the file itself, whatever the initiator does next.
    expect(await sh(`head -c 4194304 ${fileLun} | sha256sum`)).toBe(want);
    await startTarget();
    // The initiator reconnects on its own; read through it again.
    for (let i = 0; i < 100; i++) {
      try {
        if ((await sh(`dd if=${await diskOf(1)} bs=1M count=4 iflag=direct status=none | sha256sum`, 30_000)) === want) return;
      } catch {
        /* still reconnecting */
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(await sh(`dd if=${await diskOf(1)} bs=1M count=4 iflag=direct status=none | sha256sum`)).toBe(want);
  }, 600_000);
});
