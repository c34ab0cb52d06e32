// The Prometheus endpoint's RDMA resource metrics, exercised for real inside the soft-RoCE
// VM: the daemon with `metrics.listen` on, the kernel iSER initiator (open-iscsi + ib_iser)
// logging in, fio doing I/O, then logging out. Scraped over HTTP as Prometheus would: the
// QPs, CQs, MRs and registered bytes rise with the session's connection (the first one also
// opens the device's PD, on which the RAM LUN gets registered) and fall back once it is gone
// (all but the LUN's registration, which lives as long as the device is open); the LU's commands count under transport="iser" only; the
// initiator's logins and logouts count under its name; the send-queue-full and bounce
// counters are served.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { KernelRig, bg, inVm, sleep, stopIscsid } from './kernel-helpers.js';

const IQN = 'iqn.2025-01.org.rdma-target:metrics';
const INITIATOR = 'iqn.2025-01.org.rdma-target:vm-metrics-initiator';
const PORTAL = '10.77.0.1:3260';
const METRICS = 'http://127.0.0.1:9469/metrics';
const rig = new KernelRig({ name: 'rt-metrics-', diagnose: 'dmesg | tail -n 30' });
const { sh, waitForDisk, socket } = rig;
const node = (args: string) => rig.iscsiNode({ iqn: IQN, portal: PORTAL, iface: 'iser' }, args);

/** A sample's key: its name and its labels sorted, so lookups do not depend on the order served. */
const key = (name: string, labels: Record<string, string> = {}): string =>
  `${name}{${Object.keys(labels)
    .sort()
    .map((k) => `${k}="${labels[k]}"`)
    .join(',')}}`;

/** One scrape: every sample by key() → value. Retries while the endpoint is not up yet. */
async function scrape(): Promise<Map<string, number>> {
  let text = '';
  for (let i = 0; ; i++) {
    try {
      text = await (await fetch(METRICS)).text();
      break;
    } catch (e) {
      if (i >= 50) throw e;
      await sleep(200);
    }
  }
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.set(key(m[1]!, labels), Number(m[3]));
  }
  return out;
}
const gauge = (s: Map<string, number>, g: string): number => {
  const v = s.get(key('rdma_target_engine_gauge', { gauge: g }));
  if (v === undefined) throw new Error(`no rdma_target_engine_gauge{gauge="${g}"} in the scrape`);
  return v;
};
const counter = (s: Map<string, number>, c: string): number | undefined => s.get(key('rdma_target_engine_counter_total', { counter: c }));
/** The LU's commands of one transport, all ops. */
const luCommands = (s: Map<string, number>, transport: string): number => {
  let n = 0;
  for (const [k, v] of s) if (k.startsWith('rdma_target_lu_commands_total{') && k.includes(`transport="${transport}"`)) n += v;
  return n;
};
const initiatorEvent = (s: Map<string, number>, initiator: string, event: string): number =>
  s.get(key('rdma_target_initiator_events_total', { fabric: 'iscsi', initiator, event })) ?? 0;
const resources = (s: Map<string, number>) => ({
  qps: gauge(s, 'rdma_qps'),
  cqs: gauge(s, 'rdma_cqs'),
  mrs: gauge(s, 'rdma_mrs'),
  registered: gauge(s, 'rdma_registered_bytes'),
  channel: gauge(s, 'rdma_channel_bytes'),
});

describe('RDMA resource metrics over a kernel iSER session', () => {
  beforeAll(async () => {
    if (!inVm) throw new Error('the kernel iSER tests need the soft-RoCE VM (RDMA_TARGET_VM=1): run npm run test:rdma');
    await sh('modprobe ib_iser && modprobe sd_mod');
    await rig.startIscsid(INITIATOR);
    await rig.start(
      {
        control: { socket },
        stateDir: `${rig.work}/state`,
        metrics: { listen: '127.0.0.1:9469' },
        backstores: [{ name: 'ram0', type: 'ram', size: '64M' }],
        targets: [
          {
            iqn: IQN,
            tpgs: [
              {
                portals: [{ address: '10.77.0.1', port: 3260, transport: 'iser' }],
                luns: [{ lun: 0, backstore: 'ram0' }],
                acls: [{ initiator: INITIATOR }],
              },
            ],
          },
        ],
      },
      { iser: 1, control: true },
    );
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

  test('QPs, CQs, MRs and registered bytes follow the session in and out; I/O counts under transport="iser"', async () => {
    const idle = await scrape();
    const base = resources(idle);
    // Served even when nothing has happened yet (a counter that appears late loses its first increase in rate()).
    expect(counter(idle, 'rdma_send_queue_full')).toBe(0);
    expect(idle.has(key('rdma_target_engine_gauge', { gauge: 'rdma_bounce_bytes' }))).toBe(true);
    expect(base.channel).toBe(0);
    expect(base.qps).toBe(0);

    await sh(`iscsiadm -m discovery -t sendtargets -p ${PORTAL} -I iser`, 90_000);
    await node('--login');
    const disk = await waitForDisk(IQN, 0);
    const fio = bg(
      `timeout 120 fio --name=m --filename=${disk} --rw=randrw --bs=4k-64k --iodepth=16 --ioengine=libaio --direct=1 --time_based --runtime=10 --output-format=terse`,
    );
    // Two scrapes during the I/O: the session's connection holds one QP, its CQ and its three slot-pool MRs.
    await sleep(3000);
    const during1 = await scrape();
    await sleep(2000);
    const during2 = await scrape();
    const r = await fio.done;
    expect(r.code, r.out + rig.context()).toBe(0);
    const busy = resources(during1);
    expect(busy.qps).toBe(base.qps + 1);
    expect(busy.cqs).toBe(base.cqs + 1);
    expect(busy.channel).toBeGreaterThan(0);
    // The device's PD opened with the first connection: the registry registered the RAM LUN (64 MiB) on it (and
    // would the bounce slab, once a file LUN needs one), beside the connection's three slot-pool MRs.
    expect(busy.mrs).toBeGreaterThanOrEqual(base.mrs + 3 + 1);
    expect(busy.registered - busy.channel).toBeGreaterThanOrEqual(base.registered + (64 << 20));
    expect(gauge(during1, 'iser_connections')).toBe(1);
    // The LU's commands: moving under iser between the two scrapes, none under another transport.
    expect(luCommands(during2, 'iser')).toBeGreaterThan(luCommands(during1, 'iser'));
    expect(luCommands(during1, 'iser')).toBeGreaterThan(0);
    for (const t of ['tcp', 'srp']) expect(luCommands(during2, t), t).toBe(0);
    for (const op of ['read', 'write'])
      expect(during2.get(key('rdma_target_lu_commands_total', { backstore: 'ram0', type: 'ram', transport: 'iser', op })), op).toBeGreaterThan(0);
    expect(during2.get(key('rdma_target_portal_connections', { transport: 'iser', local: PORTAL }))).toBe(1);
    // The discovery session and the normal one both logged in under the initiator's name.
    expect(initiatorEvent(during2, INITIATOR, 'logins')).toBe(2);
    expect(counter(during2, 'rdma_send_queue_full')).toBeGreaterThanOrEqual(0);
    const bounce = during2.get(key('rdma_target_engine_gauge', { gauge: 'rdma_bounce_bytes' }));
    expect(bounce).toBeGreaterThanOrEqual(0);
    console.log(
      `metrics-rdma: idle ${JSON.stringify(base)}, during I/O ${JSON.stringify(busy)}, bounce bytes ${bounce}, sq full ${counter(during2, 'rdma_send_queue_full')}`,
    );

    // Completions and CQ wake-ups per I/O at queue depth 1: each READ is one receive and one
    // signalled response SEND (its RDMA WRITE is unsignalled), so two completions per
    // command; a wake-up may serve both, never fewer than one completion.
    expect(counter(idle, 'rdma_completions')).toBe(0);
    const c0 = await scrape();
    const n = 2000;
    await sh(`fio --name=qd1 --filename=${disk} --rw=randread --bs=4k --iodepth=1 --ioengine=libaio --direct=1 --number_ios=${n} --size=32M`, 300_000);
    const c1 = await scrape();
    const ios = luCommands(c1, 'iser') - luCommands(c0, 'iser');
    const completions = counter(c1, 'rdma_completions')! - counter(c0, 'rdma_completions')!;
    const wakes = counter(c1, 'rdma_cq_wakes')! - counter(c0, 'rdma_cq_wakes')!;
    console.log(`metrics-rdma: qd1 randread: ${ios} commands, ${completions} completions, ${wakes} CQ wake-ups`);
    expect(ios).toBeGreaterThanOrEqual(n);
    expect(completions).toBeGreaterThanOrEqual(2 * n);
    expect(completions).toBeLessThan(2 * ios + 100);
    expect(wakes).toBeGreaterThan(0);
    expect(wakes).toBeLessThanOrEqual(completions);

    await node('--logout');
    let after = await scrape();
    for (let i = 0; i < 50 && resources(after).qps !== base.qps; i++) {
      await sleep(200);
      after = await scrape();
    }
    // Everything the connection held is gone again; what the registry registered on the device stays while it is open.
    expect(resources(after)).toEqual({
      qps: base.qps,
      cqs: base.cqs,
      mrs: busy.mrs - 3,
      registered: busy.registered - busy.channel,
      channel: 0,
    });
    expect(gauge(after, 'iser_connections')).toBe(0);
    // The normal session's logout counted under the initiator's name (the discovery session may or may not log out first).
    expect(initiatorEvent(after, INITIATOR, 'logouts')).toBe(initiatorEvent(during2, INITIATOR, 'logouts') + 1);
    expect(initiatorEvent(after, 'unknown', 'login_failures')).toBe(0);
    // The counts stay where the I/O left them.
    expect(luCommands(after, 'iser')).toBeGreaterThanOrEqual(luCommands(during2, 'iser'));
  }, 600_000);
});
