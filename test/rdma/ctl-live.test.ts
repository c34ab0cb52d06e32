// Live reconfiguration under load, with the kernel iSER initiator in the VM: fio --verify
// on LUN 0 over ib_iser while other LUNs, an ACL and a portal are added and removed through
// the control API; fio finishes verified and the kernel's session never logged in again
// (counted). A second initiator (libiscsi's iscsi-perf over TCP, another initiator name)
// loses its session when its ACL is deleted, and only it does.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { rpcCall } from '../../lib/target/control.js';
import { KernelRig, bg, fioVerify as fio, inVm, sleep, stopIscsid } from './kernel-helpers.js';

const IQN = 'iqn.2025-01.org.rdma-target:ctl-live';
const INITIATOR = 'iqn.2025-01.org.rdma-target:vm-ctl-initiator';
const SECOND = 'iqn.2025-01.org.rdma-target:vm-ctl-second';
const PORTAL = '10.77.0.1:3260';
const rig = new KernelRig({ name: 'rt-ctl-live-', diagnose: 'dmesg | tail -n 30' });
const { sh, status, waitForDisk, socket } = rig;
const node = (args: string) => rig.iscsiNode({ iqn: IQN, portal: PORTAL, iface: 'iser' }, args);
const call = (method: string, params: Record<string, unknown> = {}) => rpcCall(socket, method, params, 60_000);

describe('control API changes during fio --verify over iSER', () => {
  beforeAll(async () => {
    if (!inVm) throw new Error('the kernel iSER tests need the soft-RoCE VM (RDMA_TARGET_VM=1): run npm run test:rdma');
    sh('modprobe ib_iser && modprobe sd_mod');
    rig.startIscsid(INITIATOR);
    await rig.start(
      {
        control: { socket },
        stateDir: `${rig.work}/state`,
        targets: [
          {
            iqn: IQN,
            tpgs: [
              {
                portals: [
                  { address: '10.77.0.1', port: 3260, transport: 'iser' },
                  { address: '10.77.0.1', port: 3260, transport: 'tcp' },
                ],
                luns: [{ lun: 0, backstore: { type: 'ram', size: '64M' } }],
                acls: [{ initiator: INITIATOR }, { initiator: SECOND }],
              },
            ],
          },
        ],
      },
      { iser: 1, tcp: 1, control: true },
    );
    sh(`iscsiadm -m discovery -t sendtargets -p ${PORTAL} -I iser`, 90_000);
    node('--login');
    await waitForDisk(IQN, 0);
  }, 180_000);

  afterAll(() => {
    try {
      node('--logout');
    } catch {
      /* not logged in */
    }
    try {
      sh('iscsiadm -m node -o delete');
    } catch {
      /* none left */
    }
    rig.target?.kill('SIGKILL');
    stopIscsid();
  });

  test('LUNs, an ACL and a portal come and go; fio verifies with no new login; only the second initiator’s session ends', async () => {
    const disk = await waitForDisk(IQN, 0);
    const before = await status();
    const kernel = before.sessions.filter((s) => s.initiator === INITIATOR);
    expect(kernel).toHaveLength(1);
    const run = bg(fio(disk, 'live', '--rw=randwrite --bsrange=4k-128k --iodepth=16 --size=24M', { timeoutS: 600 }));
    // The second initiator reads LUN 0 over TCP until its ACL goes (-x 0: no reconnect).
    const second = bg(`timeout 120 iscsi-perf -t 90 -x 0 -m 4 -i ${SECOND} iscsi://${PORTAL}/${IQN}/0`);
    for (let i = 0; i < 50 && !(await status()).sessions.some((s) => s.initiator === SECOND); i++) await sleep(200);
    expect((await status()).sessions.filter((s) => s.initiator === SECOND)).toHaveLength(1);

    for (const lun of [1, 2, 3]) await call('lun.create', { target: IQN, lun, backstore: { type: 'ram', size: '8M' } });
    await call('portal.create', { target: IQN, address: '10.77.0.1', port: 3261, transport: 'tcp' });
    await call('acl.create', { target: IQN, initiator: 'iqn.2025-01.org.rdma-target:nobody' });
    await call('lun.delete', { target: IQN, lun: 3, force: true });
    await call('acl.delete', { target: IQN, initiator: 'iqn.2025-01.org.rdma-target:nobody' });
    await call('portal.delete', { target: IQN, address: '10.77.0.1', port: 3261, transport: 'tcp' });
    await call('tpg.set', { target: IQN, parameters: { MaxBurstLength: '262144' } });
    const ended = (await call('acl.delete', { target: IQN, initiator: SECOND })) as { endedSessions: number };
    expect(ended.endedSessions).toBe(1);
    const s2 = await second.done;
    // Its reads stopped with the session, long before its 90 s: the final average line
    // (printed only when the run time is reached) is absent. (iscsi-perf prints
    // "finished." either way: the cancelled reads leave nothing in flight.)
    expect(s2.out).not.toMatch(/iops average \d+ \(\d+ MB\/s\) {20,}/);

    const r = await run.done;
    expect(r.code, `${r.out}${rig.context()}`).toBe(0);
    const after = await status();
    // The kernel's session is the one it had: same TSIH, and the only logins since are the second initiator's.
    expect(after.sessions.filter((s) => s.initiator === INITIATOR).map((s) => s.tsih)).toEqual(kernel.map((s) => s.tsih));
    expect(after.sessions.some((s) => s.initiator === SECOND)).toBe(false);
    expect(after.counters.logins).toBe(before.counters.logins + 1);
    // The kernel saw the new LUNs announced, not an error on LUN 0.
    expect(sh('dmesg')).not.toContain(`I/O error, dev ${disk.replace('/dev/', '')},`);
  }, 900_000);
});
