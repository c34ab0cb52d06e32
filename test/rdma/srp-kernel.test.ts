// The Linux kernel SRP initiator (ib_srp, add_target with dest=IP:port over RDMA/CM) against
// rdma-target on soft-RoCE, inside the VM: a login naming the wrong target port refused with
// SRP_LOGIN_REJ; ch_count 1 / queue_size 32 / cmd_sg_entries 1 and ch_count 4 / queue_size 128 /
// cmd_sg_entries 255, both with max_sect for 8 MiB commands and immediate data; WWIDs 36001405…
// from VPD 0x83; fio md5 verification on a RAM LUN and a file LUN, both zero copy between fd/LUN and wire;
// mkfs.ext4, mount, checksums across logout/login; data written before a logout verifying after
// the next login, twice; LUN reset (sg_reset -d) and host reset (sg_reset -b, a reconnect of
// every channel) during fio with the data intact; nothing left on the target after the last
// logout.
import { execSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const inVm = process.env.RDMA_TARGET_VM === '1';
const ID_EXT = '5250544152474554'; // "RPTARGET"
const IOC_GUID = '0011223344556677';
const DEST = '10.77.0.1:5555';
const work = inVm ? mkdtempSync('/run/rt-srp-') : '';
const socket = join(work, 'control.sock');
let target: ChildProcess | undefined;
let targetLog = '';

const sh = (cmd: string, timeout = 120_000): string => {
  try {
    return execSync(cmd, { encoding: 'utf8', timeout, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd}\n${err.stdout ?? ''}${err.stderr ?? ''}\n${err.message}\n--- dmesg ---\n${dmesgTail()}\n--- target log ---\n${targetLog.slice(-4000)}`);
  }
};
const dmesgTail = (): string => { try { return execSync('dmesg | tail -25', { encoding: 'utf8' }) } catch { return '' } };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
      luns: [{ lun: 0, backstore: 'ram0' }, { lun: 1, backstore: 'file1' }],
      // RDMA/CM logins are named by source address (LIO's srpt does the same); the initiator
      // reaches 10.77.0.1 over rxe0's loopback, so that is its source.
      acls: [{ initiator: '10.77.0.1' }],
    },
    stateDir: join(work, 'state'),
    control: { socket },
  };
}

async function startTarget(): Promise<void> {
  writeFileSync(join(work, 'config.json'), JSON.stringify(config()));
  target = spawn(process.execPath, ['dist/cli/main.js', '--config', join(work, 'config.json'), '--debug'], { stdio: ['ignore', 'pipe', 'pipe'] });
  target.stdout!.on('data', (d) => (targetLog += d));
  target.stderr!.on('data', (d) => (targetLog += d));
  for (let i = 0; i < 300; i++) {
    if (/listening on srp/.test(targetLog) && /control socket/.test(targetLog)) return;
    if (target.exitCode !== null) throw new Error(`target exited ${target.exitCode}: ${targetLog}`);
    await sleep(100);
  }
  throw new Error(`target did not start: ${targetLog}`);
}

interface Status { sessions: Array<{ initiator: string; transport?: string; connections: Array<{ transport: string }> }>; counters: Record<string, number> }
const status = (): Status => JSON.parse(sh(`node dist/cli/main.js status --socket ${socket}`)) as Status;

const ADD = '/sys/class/infiniband_srp/srp-rxe0-1/add_target';
async function addTarget(opts: string): Promise<void> {
  const cmd = `echo "id_ext=${ID_EXT},ioc_guid=${IOC_GUID},dest=${DEST},${opts}" > ${ADD}`;
  // ib_srp forgets a deleted target port only when its removal work has finished; until then
  // add_target fails with "Already connected".
  for (let i = 0; ; i++) {
    try { sh(cmd, 90_000); return } catch (e) {
      if (i >= 20 || !/Already connected/.test(dmesgTail())) throw e;
      await sleep(500);
    }
  }
}

/** Every SRP remote port deleted (the initiator's logout), its disks gone. */
async function removeTargets(): Promise<void> {
  const dir = '/sys/class/srp_remote_ports';
  for (const p of existsSync(dir) ? readdirSync(dir) : []) {
    try { writeFileSync(join(dir, p, 'delete'), '1') } catch { /* going */ }
  }
  // The disks go first; the initiator forgets the target port a little later (until then a
  // new add_target for it fails with "Already connected").
  const ports = () => (existsSync(dir) ? readdirSync(dir).length : 0);
  for (let i = 0; i < 150 && (disks().length > 0 || ports() > 0); i++) await sleep(200);
  if (disks().length > 0 || ports() > 0) throw new Error(`SRP disks/ports still present after delete: ${disks().map((d) => d.dev).join(', ')}\n${dmesgTail()}`);
  // And the target saw every channel disconnect.
  for (let i = 0; i < 150 && srpChannels() > 0; i++) await sleep(200);
  if (srpChannels() > 0) throw new Error(`the target still has ${srpChannels()} SRP channel(s) after the initiator deleted its ports\n${targetLog.slice(-3000)}`);
}

/** SCSI disks with their LUN numbers (H:C:T:L of the device link). */
function disks(): Array<{ dev: string; lun: number; sys: string }> {
  const out: Array<{ dev: string; lun: number; sys: string }> = [];
  for (const name of existsSync('/sys/block') ? readdirSync('/sys/block') : []) {
    if (!name.startsWith('sd')) continue;
    let link: string;
    try { link = readlinkSync(`/sys/block/${name}/device`) } catch { continue } // appearing or going
    const m = /(\d+):(\d+):(\d+):(\d+)$/.exec(link);
    if (m) out.push({ dev: `/dev/${name}`, lun: Number(m[4]), sys: `/sys/block/${name}` });
  }
  return out;
}

async function waitForDisks(n = 2): Promise<Map<number, string>> {
  for (let i = 0; i < 200; i++) {
    const d = disks();
    if (d.length >= n && d.every((x) => existsSync(x.dev))) return new Map(d.map((x) => [x.lun, x.dev]));
    await sleep(200);
  }
  throw new Error(`expected ${n} SRP disks, have ${disks().map((d) => d.dev).join(', ') || 'none'}\n${dmesgTail()}\n${targetLog.slice(-3000)}`);
}

function srpChannels(): number {
  return status().sessions.filter((s) => s.transport === 'srp').reduce((n, s) => n + s.connections.length, 0);
}

/** Runs a shell command in the background; resolves with its exit code and output. */
function bg(cmd: string): { done: Promise<{ code: number | null; out: string }>; child: ChildProcess } {
  const child = spawn('bash', ['-c', cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  return { child, done: new Promise((resolve) => child.on('exit', (code) => resolve({ code, out }))) };
}

async function shAsync(cmd: string): Promise<string> {
  const r = await bg(cmd).done;
  if (r.code !== 0) throw new Error(`${cmd}: exit ${r.code}\n${r.out}\n--- dmesg ---\n${dmesgTail()}\n--- target log ---\n${targetLog.slice(-4000)}`);
  return r.out;
}

const fio = (disk: string, name: string, extra: string): string =>
  `timeout 240 fio --name=${name} --filename=${disk} --direct=1 --ioengine=libaio --verify=md5 --do_verify=1 --verify_fatal=1 --output-format=terse ${extra}`;

describe('Linux ib_srp initiator against rdma-target', () => {
  beforeAll(async () => {
    // Loud, never skipped: the VM tier (npm run test:rdma) runs this file inside the guest.
    if (!inVm) throw new Error('the kernel SRP tests need the soft-RoCE VM (RDMA_TARGET_VM=1): bash scripts/vm/run.sh --timeout 900 -- npx vitest run --config vitest.rdma.config.ts test/rdma/srp-kernel.test.ts');
    sh('modprobe ib_srp && modprobe sd_mod');
    if (!existsSync(ADD)) throw new Error(`${ADD} is missing: ib_srp did not bind rxe0\n${dmesgTail()}`);
    await startTarget();
  }, 120_000);

  afterAll(async () => {
    try { await removeTargetsOnly() } catch { /* reported by the tests */ }
    target?.kill('SIGKILL');
  });

  test('a login naming another target port is refused with SRP_LOGIN_REJ', async () => {
    expect(() => sh(`echo "id_ext=0000000000000001,ioc_guid=${IOC_GUID},dest=${DEST}" > ${ADD}`, 60_000)).toThrow();
    for (let i = 0; i < 50 && !/rejected: TARGET PORT/.test(targetLog); i++) await sleep(100);
    expect(targetLog).toMatch(/login from .* rejected: TARGET PORT IDENTIFIER .* \(SRP_LOGIN_REJ reason 0x10003\)/);
    expect(disks()).toHaveLength(0);
  }, 120_000);

  test('ch_count=1 queue_size=32 cmd_sg_entries=1: WWIDs 36001405…, immediate data, fio md5 on a RAM LUN (zero copy) and a file LUN (registered bounce buffers)', async () => {
    await addTarget('ch_count=1,queue_size=32,cmd_sg_entries=1');
    const d = await waitForDisks();
    expect(srpChannels()).toBe(1);
    expect(targetLog).toMatch(/channel up: .*it_iu_len 8260, credits 128, immediate data/);
    for (const x of disks()) {
      const wwid = readFileSync(`${x.sys}/device/wwid`, 'utf8').trim();
      expect(wwid).toMatch(/^naa\.6001405[0-9a-f]{25}$/);
      expect(`3${wwid.slice(4)}`).toMatch(/^36001405/);
      expect(sh(`sg_inq -p 0x83 ${x.dev}`)).toMatch(/0x6001405/);
    }
    // One descriptor per command: ib_srp maps each I/O into one memory region (up to 512
    // pages), so stay within 1 MiB; it fails larger ones itself ("Failed to map data").
    const out = await shAsync(fio(d.get(0)!, 'sg1', '--rw=randwrite --bsrange=512-1m --iodepth=16 --size=48M'));
    expect(out).not.toMatch(/verify: bad|err=/i);
    // The file LUN's buffers are carved from registered memory: nothing goes through the bounce slots.
    const bounced = status().counters.rdmaBounceBytes!;
    const out2 = await shAsync(fio(d.get(1)!, 'file', '--rw=randwrite --bsrange=512-1m --iodepth=16 --size=24M'));
    expect(out2).not.toMatch(/verify: bad|err=/i);
    expect(status().counters.rdmaBounceBytes! - bounced).toBeLessThan(1 << 20);
    await removeTargets();
  }, 400_000);

  test('cmd_sg_entries=1 allow_ext_sg=1 max_sect=16384: 8 MiB commands with external descriptor tables (RDMA READ of the table)', async () => {
    await removeTargets();
    await addTarget('ch_count=1,queue_size=32,cmd_sg_entries=1,allow_ext_sg=1,max_sect=16384');
    const d = await waitForDisks();
    const out = await shAsync(fio(d.get(0)!, 'ext', '--rw=randrw --bsrange=2m-8m --iodepth=4 --size=48M'));
    expect(out).not.toMatch(/verify: bad|err=/i);
    expect(dmesgTail()).not.toMatch(/Failed to map data/);
    // The initiator sent external tables: more descriptors than the one the IU holds.
    expect(status().counters.srpExternalTables).toBeGreaterThan(0);
    await removeTargets();
  }, 400_000);

  test('ch_count=4 queue_size=128 cmd_sg_entries=255 max_sect=16384: fio md5 with 4–8 MiB commands; mkfs.ext4, mount, checksums across logout and login', async () => {
    await removeTargets();
    await addTarget('ch_count=4,queue_size=128,cmd_sg_entries=255,max_sect=16384');
    let d = await waitForDisks();
    expect(srpChannels()).toBe(4);
    const sys = disks().find((x) => x.lun === 0)!.sys;
    expect(Number(readFileSync(`${sys}/queue/max_sectors_kb`, 'utf8'))).toBeGreaterThanOrEqual(8192);
    const big = await shAsync(fio(d.get(0)!, 'big', '--rw=randwrite --bsrange=4m-8m --iodepth=4 --size=64M'));
    expect(big).not.toMatch(/verify: bad|err=/i);
    const disk = d.get(0)!;
    await shAsync(`mkfs.ext4 -q -F ${disk}`);
    mkdirSync('/mnt/srp0', { recursive: true });
    sh(`mount ${disk} /mnt/srp0`);
    sh('for i in $(seq 1 12); do head -c $((i * 377 * 1024 + i)) /dev/urandom > /mnt/srp0/f$i; done');
    const before = sh('cd /mnt/srp0 && sha256sum f* | sort');
    sh('umount /mnt/srp0');
    await removeTargets();
    await addTarget('ch_count=2,queue_size=64,max_sect=16384');
    d = await waitForDisks();
    expect(srpChannels()).toBe(2);
    sh(`mount ${d.get(0)!} /mnt/srp0`);
    const after = sh('cd /mnt/srp0 && sha256sum f* | sort');
    expect(after).toBe(before);
    expect(after.split('\n').filter(Boolean)).toHaveLength(12);
    sh('umount /mnt/srp0');
    await removeTargets();
    await addTarget('ch_count=4,queue_size=128,cmd_sg_entries=255,max_sect=16384');
  }, 400_000);

/** Logged in with `opts` unless some login is already up (tests stand alone when one before failed). */
  async function ensureLogin(opts: string): Promise<void> {
    if (disks().length >= 2 && srpChannels() > 0) return;
    await removeTargets();
    await addTarget(opts);
  }

  test('fio md5 at queue depth 128 on four channels; data written before each logout verifies after the next login', async () => {
    await ensureLogin('ch_count=4,queue_size=128,cmd_sg_entries=255,max_sect=16384');
    let d = await waitForDisks();
    const out = await shAsync(fio(d.get(0)!, 'qd128', '--rw=randrw --bsrange=4k-512k --iodepth=128 --numjobs=1 --size=48M'));
    expect(out).not.toMatch(/verify: bad|err=/i);
    for (let round = 0; round < 2; round++) {
      const area = `--offset=${96 + round * 32}M --size=24M`;
      await shAsync(fio(d.get(0)!, `w${round}`, `--rw=write --bs=256k --iodepth=16 ${area} --do_verify=0`));
      await removeTargets();
      await addTarget(round === 0 ? 'ch_count=2,queue_size=64,cmd_sg_entries=255' : 'ch_count=4,queue_size=128,cmd_sg_entries=255');
      d = await waitForDisks();
      const v = await shAsync(fio(d.get(0)!, `w${round}`, `--rw=write --bs=256k --iodepth=16 ${area} --verify_only`));
      expect(v).not.toMatch(/verify: bad|err=/i);
    }
  }, 400_000);

  test('a LUN reset (sg_reset -d) and a host reset (sg_reset -b) during fio leave the data verifying', async () => {
    await ensureLogin('ch_count=4,queue_size=128,cmd_sg_entries=255');
    for (const how of ['-d', '-b']) {
      const disk = (await waitForDisks()).get(0)!;
      const run = bg(fio(disk, `reset${how}`, '--rw=randwrite --bsrange=4k-128k --iodepth=32 --size=32M'));
      await sleep(2500);
      sh(`timeout 90 sg_reset ${how} ${disk}`, 120_000);
      const r = await run.done;
      expect(r.code, `${r.out}\n${dmesgTail()}\n${targetLog.slice(-3000)}`).toBe(0);
      expect(r.out).not.toMatch(/verify: bad/i);
    }
    expect(targetLog).toMatch(/task management 0x8/);
  }, 400_000);

  test('after the last logout no SRP channel and no per-channel RDMA object is left', async () => {
    await removeTargets();
    let st = status();
    for (let i = 0; i < 50 && (st.counters.srpChannels ?? 0) > 0; i++) {
      await sleep(200);
      st = status();
    }
    expect(st.counters.srpChannels).toBe(0);
    expect(st.sessions.filter((s) => s.transport === 'srp')).toHaveLength(0);
    expect(st.counters.rdmaQps).toBe(0);
    expect(st.counters.rdmaCqs).toBe(0);
    expect(st.counters.srpLoginRejects).toBeGreaterThanOrEqual(1);
  }, 120_000);

  test('the default target (no --config) with --listen 0.0.0.0:3260 serves SRP on 5555 under the device node GUID (LIO srpt_service_guid)', async () => {
    target?.kill('SIGKILL');
    await new Promise((r) => target!.once('exit', r));
    let log = '';
    const t = spawn(process.execPath, ['dist/cli/main.js', '--listen', '0.0.0.0:3260', '--debug'], {
      stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, XDG_RUNTIME_DIR: work, XDG_STATE_HOME: work },
    });
    t.stdout!.on('data', (d) => (log += d));
    t.stderr!.on('data', (d) => (log += d));
    try {
      for (let i = 0; i < 300 && !/listening on srp 0\.0\.0\.0:5555/.test(log); i++) await sleep(100);
      expect(log).toMatch(/serving iSER beside TCP, and SRP on port 5555/);
      const guid = readFileSync('/sys/class/infiniband/rxe0/node_guid', 'utf8').trim().replace(/:/g, '');
      sh(`echo "id_ext=${guid},ioc_guid=${guid},dest=${DEST}" > ${ADD}`, 90_000);
      const d = await waitForDisks(1);
      expect(Number(readFileSync(`${disks()[0]!.sys}/size`, 'utf8')) * 512).toBe(1024 ** 3);
      const out = await shAsync(fio(d.get(0)!, 'dflt', '--rw=randwrite --bs=64k --iodepth=8 --size=16M'));
      expect(out).not.toMatch(/verify: bad|err=/i);
      await removeTargetsOnly();
    } finally {
      t.kill('SIGTERM');
      await new Promise((r) => t.once('exit', r));
    }
    expect(log).toMatch(/srp: channel up/);
  }, 300_000);
});

/** Deletes the initiator's SRP ports without asking the (other) target for its channels. */
async function removeTargetsOnly(): Promise<void> {
  const dir = '/sys/class/srp_remote_ports';
  for (const p of existsSync(dir) ? readdirSync(dir) : []) {
    try { writeFileSync(join(dir, p, 'delete'), '1') } catch { /* going */ }
  }
  for (let i = 0; i < 150 && (disks().length > 0 || (existsSync(dir) && readdirSync(dir).length > 0)); i++) await sleep(200);
}
