// The copy path of both RDMA fabrics, which the other files seldom reach: with
// `rdma.bufferMiB: 0` no file LUN buffer is registered memory, so every byte of a file LUN
// moves through the connection's bounce slots (Data-In copied into a slot, then RDMA WRITE;
// Data-Out by RDMA READ into a slot, then copied out). fio writes and verifies over the
// kernel's ib_iser and ib_srp, and the target's rdmaBounceBytes shows the data went that way.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { IbSrp, KernelRig, fioVerify, inVm, stopIscsid } from './kernel-helpers.js';

const IQN = 'iqn.2025-01.org.rdma-target:vm-bounce';
const INITIATOR = 'iqn.2025-01.org.rdma-target:vm-bounce-initiator';
const PORTAL = '10.77.0.1:3260';
const ID_EXT = '5250544152474554';
const IOC_GUID = '0011223344556677';
const MiB = 1 << 20;
/** What each fio run writes, then reads back to verify. */
const SIZE_MIB = 16;
/**
 * Every byte read back goes through a slot, and so do the written ones that come by RDMA
 * READ. Immediate data arrives inside the command's SEND and is not counted: over 1.5× the
 * size shows both directions took the slots (reads alone are 1×).
 */
const BOTH_WAYS = 1.5 * SIZE_MIB * MiB;

const rig = new KernelRig({ name: 'rt-bounce-', diagnose: 'dmesg | tail -25' });
const { work, socket, sh, status } = rig;
const srp = new IbSrp(rig, { idExt: ID_EXT, iocGuid: IOC_GUID, dest: '10.77.0.1:5555' });
const node = (args: string) => rig.iscsiNode({ iqn: IQN, portal: PORTAL, iface: 'iser' }, args);

function config(): object {
  return {
    rdma: { bufferMiB: 0 },
    backstores: [
      { name: 'iserfile', type: 'file', path: join(work, 'iser.img'), size: '64M' },
      { name: 'srpfile', type: 'file', path: join(work, 'srp.img'), size: '64M' },
    ],
    targets: [
      {
        iqn: IQN,
        tpgs: [
          { portals: [{ address: '10.77.0.1', port: 3260, transport: 'iser' }], luns: [{ lun: 0, backstore: 'iserfile' }], acls: [{ initiator: INITIATOR }] },
        ],
      },
    ],
    srp: {
      portals: [{ address: '10.77.0.1', port: 5555 }],
      targetPortId: { idExt: ID_EXT, iocGuid: IOC_GUID },
      luns: [{ lun: 0, backstore: 'srpfile' }],
      acls: [{ initiator: '10.77.0.1' }],
    },
    stateDir: join(work, 'state'),
    control: { socket },
  };
}

/** fio writes SIZE_MIB in blocks of 4 KiB–1 MiB, then reads it all back and checks it; returns the bounce bytes it caused. */
async function writeAndVerify(disk: string, name: string): Promise<number> {
  const before = (await status()).counters.rdmaBounceBytes!;
  const out = await sh(fioVerify(disk, name, `--rw=randwrite --bsrange=4k-1m --iodepth=16 --size=${SIZE_MIB}M`, { verify: 'md5', timeoutS: 400 }), 600_000);
  expect(out).not.toMatch(/verify: bad|err=/i);
  return (await status()).counters.rdmaBounceBytes! - before;
}

describe('file LUNs with no registered buffers: every byte through the bounce slots', () => {
  beforeAll(async () => {
    if (!inVm) throw new Error('the bounce-slot tests need the soft-RoCE VM (RDMA_TARGET_VM=1): run npm run test:rdma');
    await sh('modprobe ib_iser && modprobe ib_srp && modprobe sd_mod');
    await rig.startIscsid(INITIATOR);
    await rig.start(config(), { iser: 1, srp: 1, control: true });
    await sh(`iscsiadm -m discovery -t sendtargets -p ${PORTAL} -I iser`, 90_000);
  }, 180_000);

  afterAll(async () => {
    await node('--logout').catch(() => {});
    await sh('iscsiadm -m node -o delete').catch(() => {});
    await srp.removeTargetsOnly().catch(() => {});
    rig.target?.kill('SIGKILL');
    stopIscsid();
  }, 120_000);

  test('iSER: fio writes and verifies; the bytes moved through the bounce slots both ways', async () => {
    await node('--login');
    const bounced = await writeAndVerify(await rig.waitForDisk(IQN), 'iser');
    console.log(`[bounce iser] ${SIZE_MIB} MiB written and verified; rdmaBounceBytes +${bounced}`);
    expect(bounced).toBeGreaterThanOrEqual(BOTH_WAYS);
    await node('--logout');
  }, 700_000);

  test('SRP: fio writes and verifies; the bytes moved through the bounce slots both ways', async () => {
    await srp.addTarget('ch_count=1,queue_size=32');
    const d = await srp.waitForDisks(1);
    const bounced = await writeAndVerify(d.get(0)!, 'srp');
    console.log(`[bounce srp] ${SIZE_MIB} MiB written and verified; rdmaBounceBytes +${bounced}`);
    expect(bounced).toBeGreaterThanOrEqual(BOTH_WAYS);
    await srp.removeTargets();
  }, 700_000);
});
