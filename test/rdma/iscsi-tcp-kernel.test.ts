// The Linux kernel iSCSI initiator (open-iscsi, iscsi_tcp) against rdma-target over TCP,
// inside the VM (the host kernel has no iSCSI initiator modules either): discovery, CHAP
// login, mkfs.ext4, mount, files checksummed across logout/login, fio with crc32c
// verification, and a file LUN that keeps every write acknowledged after SYNCHRONIZE
// CACHE across kill -9 of the target.
import { execSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const inVm = process.env.RDMA_TARGET_VM === '1';
const IQN = 'iqn.2025-01.org.rdma-target:kernel-test';
const INITIATOR = 'iqn.2025-01.org.rdma-target:vm-initiator';
const PORTAL = '10.77.0.1:3260';
const work = inVm ? mkdtempSync('/run/rt-kernel-') : '';
const fileLun = join(work, 'lun1.img');
let target: ChildProcess | undefined;
let targetLog = '';

const sh = (cmd: string, timeout = 120_000): string => {
  try {
    return execSync(cmd, { encoding: 'utf8', timeout, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd}\n${err.stdout ?? ''}${err.stderr ?? ''}\n${err.message}\n--- target log ---\n${targetLog.slice(-3000)}`);
  }
};

function config(): object {
  return {
    targets: [{
      iqn: IQN,
      tpgs: [{
        tag: 1,
        portals: [{ address: '10.77.0.1', port: 3260, transport: 'tcp' }],
        luns: [
          { lun: 0, backstore: { type: 'ram', size: '256M' } },
          { lun: 1, backstore: { type: 'file', path: fileLun, size: '64M' } },
        ],
        attributes: { authentication: true },
        acls: [{ initiator: INITIATOR, chap: { userid: 'vm-initiator', password: 'kernel-secret-1' } }],
      }],
    }],
    stateDir: join(work, 'state'),
  };
}

async function startTarget(): Promise<void> {
  writeFileSync(join(work, 'config.json'), JSON.stringify(config()));
  target = spawn(process.execPath, ['dist/cli/main.js', '--config', join(work, 'config.json')], { stdio: ['ignore', 'pipe', 'pipe'] });
  target.stdout!.on('data', (d) => (targetLog += d));
  target.stderr!.on('data', (d) => (targetLog += d));
  for (let i = 0; i < 200; i++) {
    if (/listening|iscsiadm/i.test(targetLog)) return;
    if (target.exitCode !== null) throw new Error(`target exited ${target.exitCode}: ${targetLog}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`target did not start: ${targetLog}`);
}

const diskOf = (lun: number): string => {
  const out = sh('iscsiadm -m session -P3');
  const re = new RegExp(`scsi\\d+ Channel \\d+ Id \\d+ Lun: ${lun}\\s+Attached scsi disk (sd\\w+)`);
  const m = re.exec(out);
  if (!m) throw new Error(`no disk for LUN ${lun} in:\n${out}`);
  return `/dev/${m[1]}`;
};

async function waitForDisks(): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      diskOf(0);
      diskOf(1);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  diskOf(0);
}

const login = () => sh(`iscsiadm -m node -T ${IQN} -p ${PORTAL} --login`);
const logout = () => sh(`iscsiadm -m node -T ${IQN} -p ${PORTAL} --logout`);

describe('open-iscsi kernel initiator over TCP', () => {
  beforeAll(async () => {
    // Loud, never skipped: the VM tier (npm run test:rdma) runs this file inside the guest.
    if (!inVm) throw new Error('the kernel-initiator tests need the VM (RDMA_TARGET_VM=1): run npm run test:rdma');
    sh('modprobe iscsi_tcp && modprobe sd_mod');
    mkdirSync('/etc/iscsi', { recursive: true });
    writeFileSync('/etc/iscsi/initiatorname.iscsi', `InitiatorName=${INITIATOR}\n`);
    if (!existsSync('/etc/iscsi/iscsid.conf')) writeFileSync('/etc/iscsi/iscsid.conf', '');
    // One iscsid per VM: another kernel-initiator file may have started it already.
    try { sh('pgrep -x iscsid') } catch { sh('iscsid') }
    await startTarget();
  }, 60_000);

  afterAll(() => {
    try { logout(); } catch { /* already out */ }
    target?.kill('SIGKILL');
    // iscsid read this file's initiator name at start; the next file starts its own.
    try { execSync('pkill -x iscsid; sleep 0.5') } catch { /* not running */ }
  });

  test('discovery, CHAP login, mkfs.ext4, mount, checksums across logout/login', async () => {
    const found = sh(`iscsiadm -m discovery -t sendtargets -p ${PORTAL}`);
    expect(found).toContain(IQN);
    sh(`iscsiadm -m node -T ${IQN} -p ${PORTAL} -o update -n node.session.auth.authmethod -v CHAP`);
    sh(`iscsiadm -m node -T ${IQN} -p ${PORTAL} -o update -n node.session.auth.username -v vm-initiator`);
    // A wrong secret is refused (authentication failure), then the right one works.
    sh(`iscsiadm -m node -T ${IQN} -p ${PORTAL} -o update -n node.session.auth.password -v wrong-secret-9`);
    expect(() => login()).toThrow(/authorization failure|Login failed|24/i);
    sh(`iscsiadm -m node -T ${IQN} -p ${PORTAL} -o update -n node.session.auth.password -v kernel-secret-1`);
    login();
    await waitForDisks();
    const disk = diskOf(0);
    sh(`mkfs.ext4 -q -F ${disk}`, 300_000);
    mkdirSync('/mnt/lun0', { recursive: true });
    sh(`mount ${disk} /mnt/lun0`);
    sh('for i in $(seq 1 20); do head -c $((i * 37 * 1024)) /dev/urandom > /mnt/lun0/f$i; done');
    const before = sh('cd /mnt/lun0 && sha256sum f* | sort');
    sh('umount /mnt/lun0');
    logout();
    login();
    await waitForDisks();
    sh(`mount ${diskOf(0)} /mnt/lun0`);
    const after = sh('cd /mnt/lun0 && sha256sum f* | sort');
    expect(after).toBe(before);
    expect(after.split('\n').filter(Boolean)).toHaveLength(20);
    sh('umount /mnt/lun0');
  }, 600_000);

  test('fio writes then verifies with crc32c', () => {
    const disk = diskOf(0);
    const out = sh(`fio --name=verify --filename=${disk} --direct=1 --ioengine=libaio --rw=randwrite --bs=4k:64k --bsrange=4k-64k --iodepth=16 --size=32M --verify=crc32c --do_verify=1 --verify_fatal=1 --output-format=terse`, 600_000);
    expect(out).not.toMatch(/verify: bad/i);
  }, 600_000);

  test('a file LUN keeps writes acknowledged after SYNCHRONIZE CACHE across kill -9 of the target', async () => {
    const disk = diskOf(1);
    sh(`head -c 4194304 /dev/urandom > ${work}/pattern && dd if=${work}/pattern of=${disk} bs=1M oflag=direct status=none && sg_sync ${disk}`);
    const want = sh(`sha256sum < ${work}/pattern`);
    target!.kill('SIGKILL');
    await new Promise((r) => target!.once('exit', r));
    // What the target acknowledged is in the file itself, whatever the initiator does next.
    expect(sh(`head -c 4194304 ${fileLun} | sha256sum`)).toBe(want);
    targetLog = '';
    await startTarget();
    // The initiator reconnects on its own; read through it again.
    for (let i = 0; i < 100; i++) {
      try {
        if (sh(`dd if=${diskOf(1)} bs=1M count=4 iflag=direct status=none | sha256sum`, 30_000) === want) return;
      } catch { /* still reconnecting */ }
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(sh(`dd if=${diskOf(1)} bs=1M count=4 iflag=direct status=none | sha256sum`)).toBe(want);
  }, 600_000);
});
