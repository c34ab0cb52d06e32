// Live reconfiguration under load, with the kernel iSER initiator in the VM: fio --verify
// on LUN 0 over ib_iser while other LUNs, an ACL and a portal are added and removed through
// the control API; fio finishes verified and the kernel's session never logged in again
// (counted). A second initiator (libiscsi's iscsi-perf over TCP, another initiator name)
// loses its session when its ACL is deleted, and only it does.
// The srp section the same way with the kernel ib_srp initiator: fio --verify on SRP LUN 0
// while an SRP LUN is added (the initiator sees it after a rescan) and removed (forced);
// the SRP channel is the one it had (no new SRP login).
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { rpcCall } from '../../lib/target/control.js';
import { IbSrp, KernelRig, bg, disks, fioVerify as fio, inVm, sleep, stopIscsid } from './kernel-helpers.js';

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
    await sh('modprobe ib_iser && modprobe sd_mod');
    await rig.startIscsid(INITIATOR);
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
    await sh(`iscsiadm -m discovery -t sendtargets -p ${PORTAL} -I iser`, 90_000);
    await node('--login');
    await waitForDisk(IQN, 0);
  }, 180_000);

  afterAll(async () => {
    try {
      await node('--logout');
    } catch {
      /* not logged in */
    }
    try {
      await sh('iscsiadm -m node -o delete');
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
    // The evidence an operator reads in the test log (the assertions below decide).
    console.log(
      `[ctl-live iser] changes: lun.create 1-3, portal.create/delete 3261, acl.create/delete, lun.delete 3 (force), tpg.set, acl.delete ${SECOND}; ` +
        `kernel TSIH ${kernel.map((s) => s.tsih).join(',')} → ${after.sessions
          .filter((s) => s.initiator === INITIATOR)
          .map((s) => s.tsih)
          .join(',')}; ` +
        `logins ${before.counters.logins} → ${after.counters.logins} (the second initiator's); second initiator's sessions ended: ${ended.endedSessions}; fio --verify rc ${r.code}`,
    );
    // The kernel's session is the one it had: same TSIH, and the only logins since are the second initiator's.
    expect(after.sessions.filter((s) => s.initiator === INITIATOR).map((s) => s.tsih)).toEqual(kernel.map((s) => s.tsih));
    expect(after.sessions.some((s) => s.initiator === SECOND)).toBe(false);
    expect(after.counters.logins).toBe(before.counters.logins + 1);
    // The kernel saw the new LUNs announced, not an error on LUN 0.
    expect(await sh('dmesg')).not.toContain(`I/O error, dev ${disk.replace('/dev/', '')},`);
  }, 900_000);
});

const SRP_ID_EXT = '5250544152474554';
const SRP_IOC_GUID = '0011223344556677';
const srpRig = new KernelRig({ name: 'rt-ctl-srp-', diagnose: 'dmesg | tail -n 30' });
const ibSrp = new IbSrp(srpRig, { idExt: SRP_ID_EXT, iocGuid: SRP_IOC_GUID, dest: '10.77.0.1:5555' });
const srpCall = (method: string, params: Record<string, unknown> = {}) => rpcCall(srpRig.socket, method, params, 60_000);

describe('srp section changes during fio --verify over ib_srp', () => {
  beforeAll(async () => {
    if (!inVm) throw new Error('the kernel SRP tests need the soft-RoCE VM (RDMA_TARGET_VM=1): run npm run test:rdma');
    await srpRig.sh('modprobe ib_srp && modprobe sd_mod');
    if (!existsSync(IbSrp.add)) throw new Error(`${IbSrp.add} is missing: ib_srp did not bind rxe0\n${srpRig.diagnostics()}`);
    await srpRig.start(
      {
        control: { socket: srpRig.socket },
        stateDir: `${srpRig.work}/state`,
        targets: [],
        srp: {
          portals: [{ address: '10.77.0.1', port: 5555 }],
          targetPortId: { idExt: SRP_ID_EXT, iocGuid: SRP_IOC_GUID },
          luns: [{ lun: 0, backstore: { type: 'ram', size: '64M' } }],
          // RDMA/CM logins are named by source address; the initiator reaches 10.77.0.1 over rxe0's loopback.
          acls: [{ initiator: '10.77.0.1' }],
        },
      },
      { srp: 1, control: true },
    );
  }, 120_000);

  afterAll(async () => {
    try {
      await ibSrp.removeTargetsOnly();
    } catch {
      /* reported by the test */
    }
    srpRig.target?.kill('SIGKILL');
  });

  test('an SRP LUN added and removed live: fio verifies, the session is the one it had, the new LUN appears after a rescan', async () => {
    await ibSrp.addTarget('ch_count=1,queue_size=32');
    const d = await ibSrp.waitForDisks(1);
    const before = await srpRig.status();
    const channels = before.sessions.filter((s) => s.transport === 'srp');
    expect(channels).toHaveLength(1);
    const run = bg(fio(d.get(0)!, 'srplive', '--rw=randwrite --bsrange=4k-128k --iodepth=16 --size=48M --loops=3', { timeoutS: 600 }));
    const fioRunning = () => run.child.exitCode === null && run.child.signalCode === null;
    await sleep(2000);
    expect(fioRunning()).toBe(true);

    const added = (await srpCall('srp.lun.create', { lun: 1, backstore: { type: 'ram', size: '8M' } })) as { added: unknown[]; endedSessions: number };
    expect(added).toMatchObject({ added: [{ target: 'srp', lun: 1 }], endedSessions: 0 });
    // ib_srp does not rescan on REPORTED LUNS DATA HAS CHANGED by itself: ask the SCSI host.
    await srpRig.sh('for h in /sys/class/scsi_host/host*; do echo "- - -" > $h/scan 2>/dev/null || true; done', 60_000);
    const both = await ibSrp.waitForDisks(2);
    expect([...both.keys()].sort()).toEqual([0, 1]);
    expect(await srpRig.sh(`sg_readcap ${both.get(1)!}`)).toMatch(/Device size: 8388608 bytes/);

    // In use (the session sees it): refused without force; forced, the session stays.
    await expect(srpCall('srp.lun.delete', { lun: 1 })).rejects.toThrow(/srp LUN 1 is in use by 1 session; removing it needs force/);
    expect(await srpCall('srp.lun.delete', { lun: 1, force: true })).toMatchObject({ removed: [{ target: 'srp', lun: 1 }], endedSessions: 0 });
    // Every change above happened while fio was writing and verifying LUN 0.
    expect(fioRunning(), 'fio finished before the changes were made: make its run longer').toBe(true);

    const r = await run.done;
    expect(r.code, `${r.out}${srpRig.context()}`).toBe(0);
    expect(r.out).not.toMatch(/verify: bad|err=/i);
    const after = await srpRig.status();
    console.log(
      `[ctl-live srp] changes: srp.lun.create 1, rescan, srp.lun.delete 1 (refused, then forced); ` +
        `SRP logins ${before.counters.srpLogins} → ${after.counters.srpLogins}; channels ${channels.length} → ${after.sessions.filter((s) => s.transport === 'srp').length}; fio --verify rc ${r.code}`,
    );
    expect(after.sessions.filter((s) => s.transport === 'srp').map((s) => s.connections.map((c) => c.remote))).toEqual(
      channels.map((s) => s.connections.map((c) => c.remote)),
    );
    expect(after.counters.srpLogins).toBe(before.counters.srpLogins);
    expect(disks().some((x) => x.lun === 0)).toBe(true);
  }, 900_000);
});
