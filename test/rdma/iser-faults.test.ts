// Faults under the Linux kernel iSER initiator (ib_iser + open-iscsi) against rdma-target,
// inside the soft-RoCE VM:
//  1. the initiator "dies" mid-I/O: every packet of its RDMA path is dropped (netem loss
//     100% both ways on the veth), so no logout, no RDMA/CM DREQ, no ACK ever comes. The
//     target must notice by itself, free that connection's session, QP, CQ and buffers while
//     another session verifies data undisturbed, and take the initiator back when it returns
//     (its fio write-then-verify pass then completes with no error and no mismatch);
//  2. the initiator's link goes down and up during I/O (ip link set veth1 down; 15 s; up):
//     ib_iser recovers the session (reconnect within replacement_timeout), fio's crc32c
//     verification passes, and the target holds exactly the live connections afterwards.
//
// Topology: the faulted sessions must cross a wire, the surviving one must be untouched by
// the faults. 10.77.0.1 is routed from the guest's own stack over veth1 → veth0 (rxe1 → rxe0,
// as in veth.test.ts); the survivor reaches the target on a device of its own, rxe2 on a
// second veth pair (10.77.1.1, rxe2's loopback), so neither the netem loss nor veth1's link
// concerns it. While veth1 is down its route is gone and the initiator reconnects to
// 10.77.0.1 over rxe0's loopback (it works though rxe0's port is down): a real initiator
// host with a second path does the same. (Pinning it to the wire with an unreachable route
// for the down time left the initiator not reconnecting after the link came back, in one
// run; the cause was not pinned down.)
// What detects a silent initiator on rxe (measured): not RDMA/CM (the DREQ is lost), not RC
// retry exhaustion (rxe treats retry_cnt 7, which every iSER peer uses, as "retry forever"),
// but the target's NOP-In keep-alive (RFC 7143 §11.19; the TPG attributes nopInTimeout and
// nopInResponseTimeout, LIO's nopin_timeout/nopin_response_timeout, 15 s + 30 s by default).
// Test 1 runs its target at 3 s + 5 s; test 2 keeps the defaults, so there the initiator's
// re-login (session reinstatement, §6.3.5) is what ends the dead connection.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { KernelRig, bg, fioVerify, inVm, rxe2On, sleep, stopIscsid, trySh, type Bg, type Status } from './kernel-helpers.js';

const BASE = 'iqn.2025-01.org.rdma-target:faults';
const IQN = { victim: `${BASE}-victim`, survivor: `${BASE}-survivor`, flap: `${BASE}-flap` };
const INITIATOR = 'iqn.2025-01.org.rdma-target:vm-faults-initiator';
const WIRE = '10.77.0.1'; // reached across veth1 → veth0
const LOCAL = '10.77.1.1'; // on veth2 (rxe2), reached over rxe2's loopback
const PORTAL = { victim: WIRE, flap: WIRE, survivor: LOCAL } as const;
const NOP = { interval: 3, response: 5 };
const rig = new KernelRig({ name: 'rt-iser-faults-', diagnose: 'dmesg | tail -25; iscsiadm -m session -P1; ip route show table 100' });
const { work, socket, sh, status, diskOf, waitForDisk } = rig;
const t0 = Date.now();
const stamp = () => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
const say = (m: string) => console.log(`[iser-faults ${stamp()}] ${m}`);

const ROUTING = [
  ...rxe2On(LOCAL),
  'sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.veth0.rp_filter=0 net.ipv4.conf.veth1.rp_filter=0',
  'sysctl -qw net.ipv4.conf.all.accept_local=1 net.ipv4.conf.veth0.accept_local=1 net.ipv4.conf.veth1.accept_local=1',
  `ip route add ${WIRE}/32 dev veth1 src 10.77.0.2 table 100`,
  `ip route add 10.77.0.2/32 dev veth0 src ${WIRE} table 100`,
  'ip rule add pref 100 iif lo lookup 100',
  'ip rule add pref 1000 lookup local',
  'ip rule del pref 0 lookup local',
];
const UNDO = [
  'ip rule add pref 0 lookup local',
  'ip rule del pref 1000 lookup local',
  'ip rule del pref 100',
  'ip route flush table 100',
  'rdma link delete rxe2',
  'ip link del veth2',
];
const blackhole = async (on: boolean): Promise<void> => {
  for (const dev of ['veth1', 'veth0']) await sh(on ? `tc qdisc add dev ${dev} root netem loss 100%` : `tc qdisc del dev ${dev} root`);
};

function tpg(luns: object[], attributes: object = {}): object {
  return {
    tag: 1,
    portals: [
      { address: WIRE, port: 3260, transport: 'iser' },
      { address: LOCAL, port: 3260, transport: 'iser' },
    ],
    luns,
    attributes: { generateNodeAcls: true, ...attributes },
  };
}

function config(): object {
  const ram = (size: string) => ({ lun: 0, backstore: { type: 'ram', size } });
  return {
    targets: [
      { iqn: IQN.victim, tpgs: [tpg([ram('64M')], { nopInTimeout: NOP.interval, nopInResponseTimeout: NOP.response })] },
      { iqn: IQN.survivor, tpgs: [tpg([ram('64M')])] },
      { iqn: IQN.flap, tpgs: [tpg([ram('64M')])] },
    ],
    stateDir: join(work, 'state'),
    control: { socket },
  };
}

const summary = (st: Status) =>
  `sessions [${st.sessions.map((s) => `${s.target.replace(`${BASE}-`, '')}#${s.tsih}@${s.connections.map((c) => c.remote).join(',')}`).join(' ')}] ` +
  `open=${st.counters.openConnections} iser=${st.counters.iserConnections} qps=${st.counters.rdmaQps} cqs=${st.counters.rdmaCqs}`;

/** Polls the target until `ok` holds for two reads in a row (no connection half set up), or fails with the last state. */
async function until(what: string, ok: (st: Status) => boolean, ms: number): Promise<Status> {
  const end = Date.now() + ms;
  let st = await status();
  let streak = 0;
  for (;;) {
    streak = ok(st) ? streak + 1 : 0;
    if (streak >= 2) return st;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms / 1000} s; last: ${summary(st)}${rig.context()}`);
    await sleep(500);
    st = await status();
  }
}

/** Exactly these targets have sessions (one each), with one iSER connection, QP and CQ apiece. */
const holdsExactly = (iqns: string[]) => (st: Status) =>
  st.sessions
    .map((s) => s.target)
    .sort()
    .join() === [...iqns].sort().join() &&
  st.sessions.every((s) => s.connections.length === 1) &&
  st.counters.openConnections === iqns.length &&
  st.counters.iserConnections === iqns.length &&
  st.counters.rdmaQps === iqns.length &&
  st.counters.rdmaCqs === iqns.length;

const sessionOf = (st: Status, iqn: string) => st.sessions.find((s) => s.target === iqn);

const node = (iqn: keyof typeof IQN, args: string, timeoutS?: number) =>
  rig.iscsiNode({ iqn: IQN[iqn], portal: `${PORTAL[iqn]}:3260`, iface: 'iser' }, args, timeoutS && timeoutS * 1000);
const login = (iqn: keyof typeof IQN) => node(iqn, '--login', 60);

/** Bytes written to a disk so far (the block layer's own count). */
const written = (disk: string) =>
  Number(
    readFileSync(`/sys/block/${disk.replace('/dev/', '')}/stat`, 'utf8')
      .trim()
      .split(/\s+/)[6],
  ) * 512;

/** Waits until `bytes` more have been written to `disk` (so a fault lands mid-I/O). */
async function whenWritten(disk: string, bytes: number, run: Bg, ms = 60_000): Promise<void> {
  const start = written(disk);
  const end = Date.now() + ms;
  while (written(disk) - start < bytes) {
    if (run.child.exitCode !== null) throw new Error(`fio ended before the fault: ${(await run.done).out}`);
    if (Date.now() > end) throw new Error(`fio wrote ${written(disk) - start} bytes in ${ms / 1000} s`);
    await sleep(100);
  }
}

/**
 * Awaits a fio verify job: exit 0, no verify error, and its read-back (terse v3: field 4 the
 * error, field 5 the KiB read) covered every one of the `kib` it wrote.
 */
async function finished(run: Bg, what: string, ms: number, kib: number): Promise<void> {
  const r = await Promise.race([run.done, sleep(ms).then(() => undefined)]);
  if (!r) throw new Error(`${what}: fio still running after ${ms / 1000} s${rig.context(3000)}`);
  const why = `${what}: ${r.out}${rig.context(2000)}`;
  expect(r.code, why).toBe(0);
  expect(r.out, why).not.toMatch(/verify: bad|error/i);
  const terse = r.out
    .split('\n')
    .find((l) => l.startsWith('3;'))
    ?.split(';');
  expect(terse?.[4], why).toBe('0');
  expect(Number(terse?.[5]), why).toBe(kib);
}

describe('iSER faults with the Linux initiator', () => {
  beforeAll(async () => {
    // Loud, never skipped: the VM tier (npm run test:rdma) runs this file inside the guest.
    if (!inVm) throw new Error('the iSER fault tests need the soft-RoCE VM (RDMA_TARGET_VM=1): run npm run test:rdma');
    await sh('modprobe ib_iser && modprobe sd_mod && modprobe sch_netem');
    for (const c of ROUTING) await sh(c);
    // The faulted sessions must really cross the wire, the survivor must not.
    expect(await sh(`ip route get ${WIRE}`)).toMatch(/dev veth1/);
    expect(await sh(`ip route get ${LOCAL}`)).toMatch(/^local /);
    await rig.startIscsid(INITIATOR);
    await rig.start(config(), { iser: 2, control: true });
    for (const k of Object.keys(IQN) as Array<keyof typeof IQN>) {
      await node(k, '-o new');
      // Long enough that I/O waits out the fault instead of failing (the default is 120 s).
      await node(k, '-o update -n node.session.timeo.replacement_timeout -v 300');
    }
  }, 120_000);

  afterAll(async () => {
    if (!inVm) return;
    for (const dev of ['veth1', 'veth0']) await trySh(`tc qdisc del dev ${dev} root`);
    await trySh('ip link set veth1 up');
    for (const k of Object.keys(IQN) as Array<keyof typeof IQN>) await trySh(`iscsiadm -m node -T ${IQN[k]} -p ${PORTAL[k]}:3260 -I iser --logout`);
    await trySh('iscsiadm -m node -o delete');
    rig.target?.kill('SIGKILL');
    await trySh('sleep 1');
    for (const c of UNDO) await trySh(c);
    // Neighbour entries left FAILED by the black hole would only slow the next resolution.
    for (const dev of ['veth0', 'veth1']) await trySh(`ip neigh flush dev ${dev}`);
    stopIscsid();
  }, 300_000);

  test('an initiator that vanishes mid-I/O is detected and freed; another session verifies meanwhile; it comes back and verifies', async () => {
    await login('victim');
    await login('survivor');
    const vdisk = await waitForDisk(IQN.victim);
    const sdisk = await waitForDisk(IQN.survivor);
    const before = await until('both sessions up', holdsExactly([IQN.victim, IQN.survivor]), 30_000);
    // The victim's connection comes from rxe1 across the veth; the survivor's stays on rxe0.
    expect(sessionOf(before, IQN.victim)!.connections[0]!.remote).toMatch(/^10\.77\.0\.2:/);
    expect(sessionOf(before, IQN.survivor)!.connections[0]!.remote.startsWith(`${LOCAL}:`)).toBe(true);
    const survivorTsih = sessionOf(before, IQN.survivor)!.tsih;

    const victim = bg(fioVerify(vdisk, 'victim', '--rw=write --bs=64k --iodepth=16 --size=48M'));
    await whenWritten(vdisk, 4 << 20, victim);
    // The victim must be logged in when the path is cut, or the test would judge the target by
    // a drop it did not make. Once (a fresh-clone run), soft-RoCE on the initiator's side
    // refused to fast-register one of ib_iser's own MRs (rxe_reg_fast_mr "not free" -> iser
    // "memreg failure" -> conn error 1011) and the initiator dropped the victim's connection
    // just before the cut. If that happens, it is named here and the cut waits for ib_iser's
    // recovery; what the target logs is judged only from the cut on.
    let atCut = await status();
    if (!holdsExactly([IQN.victim, IQN.survivor])(atCut)) {
      say(
        `the victim's connection is not up before the cut (${summary(atCut)}); dmesg: ${await sh("dmesg | grep -E 'memreg|conn error|not free' | tail -3; true")}`,
      );
      atCut = await until('the victim recovered by ib_iser before the cut', holdsExactly([IQN.victim, IQN.survivor]), 120_000);
    }
    const victimTsih = sessionOf(atCut, IQN.victim)!.tsih;
    const logAtCut = rig.log.length;
    await blackhole(true);
    const cut = Date.now();
    say(`victim's path cut (netem loss 100% on veth0 and veth1) with fio running: ${summary(await status())}`);
    // Meanwhile the survivor writes and verifies over the loopback path.
    const survivor = bg(fioVerify(sdisk, 'survivor', '--rw=randwrite --bsrange=4k-64k --iodepth=8 --size=16M'));

    // No DREQ, no ACK, no NOP-Out: only the target can end this connection, by its keep-alive
    // or, when its own RDMA WRITE/READ/SEND to the initiator was in flight at the cut, by the RC
    // transport's retry exhaustion (that WR's error completion, even for an unsignalled WR).
    const gone = await until("the vanished initiator's connection freed", holdsExactly([IQN.survivor]), 40_000);
    const detected = (Date.now() - cut) / 1000;
    say(`target freed the dead connection ${detected.toFixed(1)} s after the cut: ${summary(gone)}`);
    expect(sessionOf(gone, IQN.survivor)!.tsih).toBe(survivorTsih);
    expect(rig.log.slice(logAtCut)).toMatch(
      /10\.77\.0\.2:\d+: (dropping connection: no NOP-Out answer in 5000 ms|transport error: .*(retry|timeout|exceeded))/i,
    );
    // nopInTimeout + nopInResponseTimeout + a tick, + the 3 s wait for an RDMA/CM DISCONNECTED that never comes.
    expect(detected).toBeLessThan(NOP.interval + NOP.response + 15);
    expect(victim.child.exitCode, "the victim's fio must still be waiting for its I/O (replacement_timeout 300 s)").toBeNull();

    await finished(survivor, 'survivor fio during the outage', 180_000, 16 << 10);
    say('survivor fio verified during the outage');

    // The initiator comes back: iscsid reconnects, logs in again, the SCSI layer retries
    // what was in flight, and fio's read-back verifies every block it wrote.
    await blackhole(false);
    const back = Date.now();
    await finished(victim, 'victim fio after the initiator came back', 240_000, 48 << 10);
    say(`victim fio completed and verified ${((Date.now() - back) / 1000).toFixed(1)} s after the path returned`);
    const after = await until('victim back, survivor untouched', holdsExactly([IQN.victim, IQN.survivor]), 60_000);
    expect(sessionOf(after, IQN.victim)!.tsih).not.toBe(victimTsih);
    expect(sessionOf(after, IQN.victim)!.connections[0]!.remote).toMatch(/^10\.77\.0\.2:/);
    expect(sessionOf(after, IQN.survivor)!.tsih).toBe(survivorTsih);
    say(`after: ${summary(after)}`);
  }, 600_000);

  test("the initiator's link down for 15 s and up during fio: ib_iser recovers, data verifies, only live connections remain", async () => {
    await login('flap');
    const disk = await waitForDisk(IQN.flap);
    const three = [IQN.victim, IQN.survivor, IQN.flap];
    const before = await until('three sessions up', holdsExactly(three), 30_000);
    expect(sessionOf(before, IQN.flap)!.connections[0]!.remote).toMatch(/^10\.77\.0\.2:/);
    const tsih = Object.fromEntries(before.sessions.map((s) => [s.target, s.tsih]));

    const run = bg(fioVerify(disk, 'flap', '--rw=write --bs=64k --iodepth=16 --size=48M'));
    await whenWritten(disk, 4 << 20, run);
    await sh('ip link set veth1 down');
    say(`veth1 down with fio running: ${summary(await status())}`);
    await sleep(15_000);
    await sh('ip link set veth1 up');
    // Taking a link down drops its routes; a host's network configuration puts them back.
    await sh(`ip route replace ${WIRE}/32 dev veth1 src 10.77.0.2 table 100`);
    const up = Date.now();
    say(`veth1 up again: ${summary(await status())}`);

    await finished(run, 'fio across the link flap', 240_000, 48 << 10);
    say(`fio completed and verified ${((Date.now() - up) / 1000).toFixed(1)} s after the link came back`);
    // Both wire sessions were recovered (new sessions, the dead connections freed: by the
    // keep-alive for the victim's TPG, by session reinstatement or the keep-alive for the
    // flap's); the survivor's session on rxe2 was never touched.
    const after = await until('exactly the three live connections', holdsExactly(three), 90_000);
    say(`after: ${summary(after)}`);
    expect(sessionOf(after, IQN.flap)!.tsih).not.toBe(tsih[IQN.flap]);
    expect(sessionOf(after, IQN.victim)!.tsih).not.toBe(tsih[IQN.victim]);
    expect(sessionOf(after, IQN.survivor)!.tsih).toBe(tsih[IQN.survivor]);
    // Every session moves verified data afterwards.
    for (const iqn of three)
      await finished(
        bg(fioVerify(await diskOf(iqn), 'after', '--rw=randwrite --bs=32k --iodepth=8 --size=4M')),
        `fio on ${iqn} after the flap`,
        120_000,
        4 << 10,
      );
  }, 600_000);

  test('after logout no connection and no per-connection RDMA object is left', async () => {
    for (const k of Object.keys(IQN) as Array<keyof typeof IQN>) await node(k, '--logout');
    const st = await until('everything freed', holdsExactly([]), 30_000);
    expect(st.sessions).toHaveLength(0);
    expect(st.counters.rdmaQps).toBe(0);
    expect(rig.target!.exitCode).toBeNull();
    expect(rig.log).not.toMatch(/unhandled|uncaught|TypeError|RangeError/i);
  }, 120_000);
});
