// RDMA devices removed and added back under the Linux kernel initiators (ib_iser + open-iscsi,
// ib_srp), inside the soft-RoCE VM (docs/architecture.md, device lifecycle):
//  1. ten cycles of `rdma link del rxe2` / `rdma link add rxe2` while a victim initiator of
//     each transport uses rxe2 and a survivor of each uses rxe0 with fio verifying all along:
//     each removal returns within the bound (before the fix it hung in the kernel for as long
//     as the target lived), the target then holds nothing on rxe2 and keeps the survivors;
//     after the return the victims reconnect (iSER: iscsid's reconnect; SRP: a new
//     add_target) and verify; file descriptors, MRs, QPs, CQs and registered bytes are the
//     same after the tenth cycle as after the first;
//  2. every RDMA device removed while a TCP session runs fio: TCP never notices;
//  3. a target started with no RDMA device at all serves iSER and SRP once one is added.
// Topology: rxe2 sits on a veth pair of its own (10.77.1.1, as in iser-faults.test.ts) so
// the cycles leave rxe0/rxe1 alone; each initiator reaches its address over that device's
// loopback. The iSER portals are bound to the two addresses (a bound listener goes with its
// device and is bound again when it returns), the SRP portal is the wildcard (the kernel
// extends it to a returning device). rxe0/rxe1 are put back for the files that follow.
import { execSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { KernelRig, bg, disks, fioVerify, inVm, rxe2On, sleep, stopIscsid, trySh, type Bg, type Status } from './kernel-helpers.js';

const BASE = 'iqn.2025-01.org.rdma-target:devices';
const IQN = { victim: `${BASE}-victim`, survivor: `${BASE}-survivor`, tcp: `${BASE}-tcp` };
const INITIATOR = 'iqn.2025-01.org.rdma-target:vm-devices-initiator';
const SURVIVOR_ADDR = '10.77.0.1'; // rxe0's loopback
const VICTIM_ADDR = '10.77.1.1'; // rxe2's loopback
const PORTAL = { victim: VICTIM_ADDR, survivor: SURVIVOR_ADDR } as const;
const ID_EXT = '5250544152474554';
const IOC_GUID = '0011223344556677';
const SRP_PORT = 5555;
const CYCLES = 10;
/** What a removal may take here (TCG, fio running): the design bound is one device listing (0.5 s) plus the teardown. */
const REMOVAL_BOUND_MS = 10_000;
const SRP_ADD = (dev: string) => `/sys/class/infiniband_srp/srp-${dev}-1/add_target`;

const rig = new KernelRig({ name: 'rt-devices-', diagnose: 'dmesg | tail -25; iscsiadm -m session -P1; rdma link' });
const cold = new KernelRig({ name: 'rt-devices-cold-', diagnose: 'dmesg | tail -25; rdma link' });
const { work, socket, sh, status, diskOf, waitForDisk } = rig;
const t0 = Date.now();
const say = (m: string) => console.log(`[devices ${((Date.now() - t0) / 1000).toFixed(1)}s] ${m}`);

function tpg(luns: object[], portals: object[]): object {
  return { tag: 1, portals, luns, attributes: { generateNodeAcls: true } };
}

function config(w: string, sock: string, ports = { iser: 3260, srp: SRP_PORT, tcp: 3260 }): object {
  const ram = (size: string) => ({ lun: 0, backstore: { type: 'ram', size } });
  const iser = [
    { address: SURVIVOR_ADDR, port: ports.iser, transport: 'iser' },
    { address: VICTIM_ADDR, port: ports.iser, transport: 'iser' },
  ];
  return {
    targets: [
      { iqn: IQN.victim, tpgs: [tpg([ram('32M')], iser)] },
      { iqn: IQN.survivor, tpgs: [tpg([ram('32M')], iser)] },
      { iqn: IQN.tcp, tpgs: [tpg([ram('32M')], [{ address: SURVIVOR_ADDR, port: ports.tcp, transport: 'tcp' }])] },
    ],
    backstores: [{ name: 'srpram', type: 'ram', size: '32M' }],
    srp: {
      portals: [{ address: '0.0.0.0', port: ports.srp }],
      targetPortId: { idExt: ID_EXT, iocGuid: IOC_GUID },
      luns: [{ lun: 0, backstore: 'srpram' }],
      attributes: { generateNodeAcls: true },
    },
    stateDir: join(w, 'state'),
    control: { socket: sock },
  };
}

const node = (iqn: 'victim' | 'survivor', args: string, timeout?: number) =>
  rig.iscsiNode({ iqn: IQN[iqn], portal: `${PORTAL[iqn]}:3260`, iface: 'iser' }, args, timeout);

/** Polls status until `ok` holds twice in a row, or fails with the last state. */
async function until(what: string, ok: (st: Status) => boolean, ms: number, get = status): Promise<Status> {
  const end = Date.now() + ms;
  let st = await get();
  let streak = 0;
  for (;;) {
    streak = ok(st) ? streak + 1 : 0;
    if (streak >= 2) return st;
    if (Date.now() > end)
      throw new Error(`${what}: not within ${ms / 1000} s; last: ${JSON.stringify(st.counters)} ${JSON.stringify(devicesOf(st))}${rig.context()}`);
    await sleep(250);
    st = await get();
  }
}

type DevStatus = { fabric: string; name: string; state: string; connections: number; registeredMrs: number };
const devicesOf = (st: Status): DevStatus[] => (st as unknown as { rdmaDevices?: DevStatus[] }).rdmaDevices ?? [];
const srpChannels = (st: Status) => st.sessions.filter((s) => s.transport === 'srp').reduce((n, s) => n + s.connections.length, 0);
const iserOf = (st: Status, iqn: string) => st.sessions.filter((s) => s.target === iqn).reduce((n, s) => n + s.connections.length, 0);

/** Adds an SRP target port through `dev`'s ib_srp port; resolves with the disk that appeared. */
async function srpLogin(dev: string, dest: string): Promise<string> {
  for (let i = 0; i < 100 && !existsSync(SRP_ADD(dev)); i++) await sleep(100);
  const before = new Set(disks().map((d) => d.dev));
  const cmd = `echo "id_ext=${ID_EXT},ioc_guid=${IOC_GUID},dest=${dest}:${SRP_PORT},ch_count=1,queue_size=32" > ${SRP_ADD(dev)}`;
  for (let i = 0; ; i++) {
    try {
      await sh(cmd, 60_000);
      break;
    } catch (e) {
      if (i >= 20) throw e;
      await sleep(500);
    }
  }
  for (let i = 0; i < 150; i++) {
    const d = disks().find((x) => !before.has(x.dev) && existsSync(x.dev));
    if (d) return d.dev;
    await sleep(200);
  }
  throw new Error(`no SRP disk appeared through ${dev}${rig.context()}`);
}

/** A fio verify job whose result must be clean: exit 0, no verify error, every KiB read back. */
async function verified(run: Bg, what: string, ms: number): Promise<void> {
  const r = await Promise.race([run.done, sleep(ms).then(() => undefined)]);
  if (!r) throw new Error(`${what}: fio still running after ${ms / 1000} s${rig.context(3000)}`);
  const why = `${what}: ${r.out}${rig.context(2000)}`;
  expect(r.code, why).toBe(0);
  expect(r.out, why).not.toMatch(/verify: bad|error/i);
}

/** fio write-then-verify in a loop until `stop()`: the survivors verify throughout. */
function verifyLoop(disk: string, name: string): { stop: () => Promise<{ code: number | null; out: string }> } {
  const flag = join(work, `stop-${name}`);
  const job = fioVerify(disk, name, '--rw=randwrite --bsrange=4k-64k --iodepth=8 --size=4M');
  const run = bg(
    `n=0; while [ ! -e ${flag} ]; do ${job} > /dev/null 2>${join(work, `${name}.err`)} || { echo "pass $n failed"; cat ${join(work, `${name}.err`)}; exit 1; }; n=$((n+1)); done; echo "passes $n"`,
  );
  return {
    stop: async () => {
      await sh(`touch ${flag}`);
      return run.done;
    },
  };
}

/**
 * The daemon's resources: open fds (read first, before this call's own control connection
 * exists), and the counters that must stay flat.
 */
async function resources(): Promise<Record<string, number>> {
  const fds = readdirSync(`/proc/${rig.target!.pid}/fd`).length;
  const c = (await status()).counters;
  return { fds, qps: c.rdmaQps!, cqs: c.rdmaCqs!, mrs: c.rdmaMrs!, registeredBytes: c.rdmaRegisteredBytes!, contexts: c.rdmaContexts!, pds: c.rdmaPds! };
}

/** Runs `rdma link del DEV` (or a command) in the background; resolves with how long it took. */
async function timed(cmd: string): Promise<number> {
  const start = Date.now();
  const r = await Promise.race([bg(`timeout 120 ${cmd}`).done, sleep(130_000).then(() => undefined)]);
  const ms = Date.now() - start;
  if (r?.code !== 0) throw new Error(`${cmd}: ${r ? `exit ${r.code} ${r.out}` : 'no end'} after ${ms} ms${rig.context()}`);
  return ms;
}

describe('RDMA devices removed and returned under the kernel initiators', () => {
  beforeAll(async () => {
    if (!inVm) throw new Error('the device removal tests need the soft-RoCE VM (RDMA_TARGET_VM=1): run npm run test:rdma');
    await sh('modprobe ib_iser && modprobe ib_srp && modprobe sd_mod');
    for (const c of rxe2On(VICTIM_ADDR)) await sh(c);
    await rig.startIscsid(INITIATOR);
    await rig.start(config(work, socket), { iser: 2, srp: 1, tcp: 1, control: true });
    for (const k of ['victim', 'survivor'] as const) {
      await node(k, '-o new');
      await node(k, '-o update -n node.session.timeo.replacement_timeout -v 300');
    }
  }, 120_000);

  afterAll(async () => {
    if (!inVm) return;
    const ports = '/sys/class/srp_remote_ports';
    for (const p of existsSync(ports) ? readdirSync(ports) : []) await trySh(`echo 1 > ${ports}/${p}/delete`);
    await trySh('iscsiadm -m node --logoutall=all');
    await trySh('iscsiadm -m node -o delete');
    rig.target?.kill('SIGKILL');
    cold.target?.kill('SIGKILL');
    stopIscsid();
    await trySh('sleep 1');
    // Back to what guest-init.sh set up, for the files that follow.
    const links = (() => {
      try {
        return execSync('rdma link', { encoding: 'utf8' });
      } catch {
        return '';
      }
    })();
    if (!/rxe0/.test(links)) await trySh('rdma link add rxe0 type rxe netdev veth0');
    if (!/rxe1/.test(links)) await trySh('rdma link add rxe1 type rxe netdev veth1');
    if (/rxe2/.test(links)) await trySh('rdma link delete rxe2', 60_000);
    await trySh('ip link del veth2');
  }, 300_000);

  test(`${CYCLES} cycles of rdma link del/add of the victims' device: bounded removal, survivors verify throughout, victims come back, resources flat`, async () => {
    await node('survivor', '--login', 60_000);
    await node('victim', '--login', 60_000);
    const iserSurvivor = await waitForDisk(IQN.survivor);
    const iserVictim = await waitForDisk(IQN.victim);
    const srpSurvivor = await srpLogin('rxe0', SURVIVOR_ADDR);
    let srpVictim = await srpLogin('rxe2', VICTIM_ADDR);
    await until('four connections', (st) => st.counters.iserConnections === 2 && srpChannels(st) === 2, 30_000);
    // Full verification through the victims once before the cycles.
    await verified(bg(fioVerify(iserVictim, 'iv0', '--rw=randwrite --bsrange=4k-128k --iodepth=16 --size=8M')), 'iSER victim before', 180_000);
    await verified(bg(fioVerify(srpVictim, 'sv0', '--rw=randwrite --bsrange=4k-128k --iodepth=16 --size=8M')), 'SRP victim before', 180_000);

    const loops = [verifyLoop(iserSurvivor, 'iser-survivor'), verifyLoop(srpSurvivor, 'srp-survivor')];
    const removals: number[] = [];
    let first: Record<string, number> | undefined;
    let last: Record<string, number> | undefined;
    for (let cycle = 1; cycle <= CYCLES; cycle++) {
      const ms = await timed('rdma link del rxe2');
      removals.push(ms);
      expect(ms, `cycle ${cycle}: rdma link del rxe2 took ${ms} ms`).toBeLessThan(REMOVAL_BOUND_MS);
      const gone = await until(
        `cycle ${cycle}: nothing left on rxe2, survivors kept`,
        (st) =>
          devicesOf(st).every((d) => d.name !== 'rxe2') &&
          iserOf(st, IQN.survivor) === 1 &&
          iserOf(st, IQN.victim) === 0 &&
          st.counters.iserConnections === 1 &&
          srpChannels(st) === 1 &&
          st.counters.rdmaQps === 2 &&
          st.counters.rdmaCqs === 2,
        30_000,
      );
      expect(gone.counters.rdmaDeviceRemovals).toBeGreaterThanOrEqual(cycle);

      await sh('rdma link add rxe2 type rxe netdev veth2');
      // iscsid reconnects the victim's session by itself; ib_srp forgot the port with the device.
      srpVictim = await srpLogin('rxe2', VICTIM_ADDR);
      await until(`cycle ${cycle}: victims back`, (st) => st.counters.iserConnections === 2 && srpChannels(st) === 2 && iserOf(st, IQN.victim) === 1, 120_000);
      const size = cycle === 1 || cycle === CYCLES ? '8M' : '1M';
      await verified(
        bg(fioVerify(iserVictim, `iv${cycle}`, `--rw=randwrite --bsrange=4k-64k --iodepth=8 --size=${size}`)),
        `cycle ${cycle}: iSER victim`,
        180_000,
      );
      await verified(
        bg(fioVerify(srpVictim, `sv${cycle}`, `--rw=randwrite --bsrange=4k-64k --iodepth=8 --size=${size}`)),
        `cycle ${cycle}: SRP victim`,
        180_000,
      );
      // Measured after the victims' fio runs: every earlier status connection has closed.
      const res = await resources();
      if (cycle === 1) first = res;
      last = res;
      say(`cycle ${cycle}: rdma link del rxe2 returned in ${ms} ms; resources ${JSON.stringify(res)}`);
    }
    for (const l of loops) {
      const r = await l.stop();
      expect(r.code, `survivor fio loop: ${r.out}${rig.context()}`).toBe(0);
      say(`survivor loop: ${r.out.trim()}`);
    }
    say(`removal times (ms): ${removals.join(' ')}; after cycle 1 ${JSON.stringify(first)}; after cycle ${CYCLES} ${JSON.stringify(last)}`);
    expect(last).toEqual(first);
    expect(rig.log).toMatch(/RDMA device rxe2 removed \(.*\): \d+ connection\(s\) ended/);
    expect(rig.log).not.toMatch(/unhandled|uncaught|TypeError|RangeError/i);
  }, 900_000);

  test('every RDMA device removed while a TCP session runs fio: TCP carries on; nothing RDMA is left', async () => {
    const ports = '/sys/class/srp_remote_ports';
    for (const p of existsSync(ports) ? readdirSync(ports) : []) await trySh(`echo 1 > ${ports}/${p}/delete`);
    await trySh('iscsiadm -m node --logoutall=all');
    await rig.iscsiNode({ iqn: IQN.tcp, portal: `${SURVIVOR_ADDR}:3260` }, '-o new');
    await rig.iscsiNode({ iqn: IQN.tcp, portal: `${SURVIVOR_ADDR}:3260` }, '--login', 60_000);
    const disk = await waitForDisk(IQN.tcp);
    const run = bg(fioVerify(disk, 'tcp', '--rw=randwrite --bsrange=4k-64k --iodepth=8 --size=24M'));
    const times: string[] = [];
    for (const dev of ['rxe2', 'rxe1', 'rxe0']) {
      const ms = await timed(`rdma link del ${dev}`);
      times.push(`${dev} ${ms} ms`);
      expect(ms, `rdma link del ${dev}`).toBeLessThan(REMOVAL_BOUND_MS);
    }
    say(`removing every device with TCP running: ${times.join(', ')}`);
    expect(await sh('rdma link')).not.toMatch(/rxe/);
    const st = await until('no RDMA object left', (s) => devicesOf(s).length === 0 && s.counters.rdmaContexts === 0 && s.counters.rdmaQps === 0, 30_000);
    expect(st.counters.rdmaPds).toBe(0);
    expect(st.counters.rdmaMrs).toBe(0);
    await verified(run, 'TCP fio across the removal of every RDMA device', 240_000);
    expect(st.sessions.some((s) => s.target === IQN.tcp)).toBe(true);
    expect(await diskOf(IQN.tcp)).toBe(disk);
  }, 600_000);

  test('a target started with no RDMA device serves iSER and SRP once one is added', async () => {
    rig.target?.kill('SIGKILL');
    expect(await sh('rdma link')).not.toMatch(/rxe/);
    // Ports of its own: the first daemon's kernel-side listeners may linger a moment.
    const ports = { iser: 3261, srp: 5556, tcp: 3262 };
    await cold.start(config(cold.work, cold.socket, ports), { iser: 2, srp: 1, tcp: 1, control: true });
    expect(cold.log).toMatch(/no RDMA device yet/);
    await sh('rdma link add rxe0 type rxe netdev veth0');
    await sh('rdma link add rxe1 type rxe netdev veth1');
    for (let i = 0; i < 100 && (cold.log.match(/listening again/g)?.length ?? 0) < 2; i++) await sleep(200);
    expect(cold.log).toMatch(/RDMA portal 10\.77\.0\.1:3261 listening again/);
    expect(cold.log).toMatch(/RDMA portal 0\.0\.0\.0:5556 listening again/);
    // A real login over each transport.
    const n = { iqn: IQN.survivor, portal: `${SURVIVOR_ADDR}:3261`, iface: 'iser' as const };
    await rig.iscsiNode(n, '-o new');
    await rig.iscsiNode(n, '--login', 60_000);
    const disk = await waitForDisk(IQN.survivor);
    await verified(bg(fioVerify(disk, 'cold-iser', '--rw=randwrite --bs=16k --iodepth=8 --size=2M')), 'iSER after the device arrived', 120_000);
    for (let i = 0; i < 100 && !existsSync(SRP_ADD('rxe0')); i++) await sleep(100);
    const before = new Set(disks().map((d) => d.dev));
    await sh(`echo "id_ext=${ID_EXT},ioc_guid=${IOC_GUID},dest=${SURVIVOR_ADDR}:${ports.srp},ch_count=1,queue_size=32" > ${SRP_ADD('rxe0')}`, 60_000);
    let srpDisk: string | undefined;
    for (let i = 0; i < 150 && !srpDisk; i++) {
      srpDisk = disks().find((x) => !before.has(x.dev) && existsSync(x.dev))?.dev;
      if (!srpDisk) await sleep(200);
    }
    expect(srpDisk, `no SRP disk${cold.context()}`).toBeDefined();
    await verified(bg(fioVerify(srpDisk!, 'cold-srp', '--rw=randwrite --bs=16k --iodepth=8 --size=2M')), 'SRP after the device arrived', 120_000);
    await rig.iscsiNode(n, '--logout', 60_000);
    await rig.iscsiNode(n, '-o delete');
    expect(cold.log).not.toMatch(/unhandled|uncaught|TypeError|RangeError/i);
  }, 300_000);
});
