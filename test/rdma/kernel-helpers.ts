// Test support for the files that drive the Linux kernel initiators against the daemon inside
// the soft-RoCE VM: the daemon started with its log attached, its status over the control
// socket, shell commands whose failures carry the target's log (and the kernel's), open-iscsi
// and ib_srp login/logout, and fio write-then-verify.
import { execSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { controlRequest } from '../../lib/target/control.js';

export const inVm = process.env.RDMA_TARGET_VM === '1';
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The only place that reads the wording of the daemon's log for the helpers' own needs (the
 * start-up lines: a listener per portal, then the control socket), so a change of log format
 * is one edit here. What a test asserts about the log stays in the test.
 */
const started = {
  listeners: (log: string, transport: Transport): number => log.match(new RegExp(`listening on ${transport} `, 'g'))?.length ?? 0,
  control: (log: string): boolean => /control socket /.test(log),
};

export type Transport = 'iser' | 'srp' | 'tcp';

/** What start-up must have printed: at least this many listeners per transport, and the control socket if asked. */
export type Ready = Partial<Record<Transport, number>> & { control?: boolean };

export interface Connection {
  transport: string;
  remote: string;
  local: string;
}
export interface Session {
  target: string;
  initiator: string;
  transport?: string;
  tsih: number;
  connections: Connection[];
}
/** The part of the daemon's `status` answer that the tests read. */
export interface Status {
  sessions: Session[];
  counters: Record<string, number>;
}

export interface Bg {
  done: Promise<{ code: number | null; out: string }>;
  child: ChildProcess;
}

/** Runs a shell command in the background; resolves with its exit code and output. */
export function bg(cmd: string): Bg {
  const child = spawn('bash', ['-c', cmd], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  return { child, done: new Promise((resolve) => child.on('exit', (code) => resolve({ code, out }))) };
}

/**
 * Runs a shell command in the background; at `timeout` ms its whole process group is killed
 * (bg starts bash as a group leader). Never synchronous: vitest's worker must keep answering
 * its RPCs, and a call that blocks it for 60 s fails the whole run ("Timeout calling
 * onTaskUpdate").
 */
export async function run(cmd: string, timeout: number): Promise<{ code: number | null; out: string; timedOut: boolean }> {
  const { child, done } = bg(cmd);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
  }, timeout);
  const r = await done;
  clearTimeout(timer);
  return { ...r, timedOut };
}

/** Runs a command, ignoring its failure (clean-up that may find nothing to undo). */
export async function trySh(cmd: string, timeout = 30_000): Promise<void> {
  await run(cmd, timeout);
}

/** A third soft-RoCE port of its own: rxe2 on veth2 (peer veth3) with `address`/24, away from rxe0/rxe1. */
export const rxe2On = (address: string): string[] => [
  'ip link add veth2 type veth peer name veth3',
  `ip addr add ${address}/24 dev veth2`,
  'ip link set veth2 up',
  'ip link set veth3 up',
  'rdma link add rxe2 type rxe netdev veth2',
];

/**
 * fio writing the area, then reading it back and checking every block (verify_fatal: the
 * first mismatch ends the run with an error). `timeoutS` puts the run under timeout(1).
 */
export function fioVerify(disk: string, name: string, extra: string, o: { verify?: 'crc32c' | 'md5'; timeoutS?: number } = {}): string {
  const fio = `fio --name=${name} --filename=${disk} --direct=1 --ioengine=libaio --verify=${o.verify ?? 'crc32c'} --do_verify=1 --verify_fatal=1 --output-format=terse ${extra}`;
  return o.timeoutS ? `timeout ${o.timeoutS} ${fio}` : fio;
}

export interface KernelRigOptions {
  /** Prefix of the daemon's work folder under /run (config, state, control socket, file LUNs). */
  name: string;
  /** A shell command whose output every failure carries (dmesg, the initiator's state). */
  diagnose?: string;
}

/**
 * One file's daemon and the shell around it. Methods are bound (arrow properties) so a file
 * can take `const { sh } = rig`.
 */
export class KernelRig {
  readonly work: string;
  readonly socket: string;
  /** Everything the current daemon printed, stdout and stderr. */
  log = '';
  target: ChildProcess | undefined;
  /** startIscsid was called: failures quote iscsid's log. */
  private usesIscsid = false;

  constructor(private readonly opts: KernelRigOptions) {
    this.work = inVm ? mkdtempSync(`/run/${opts.name}`) : '';
    this.socket = join(this.work, 'control.sock');
  }

  /** The output of the `diagnose` command ('' without one, or when it fails). */
  readonly diagnostics = (): string => {
    if (!this.opts.diagnose) return '';
    try {
      return execSync(this.opts.diagnose, { encoding: 'utf8', timeout: 10_000 });
    } catch {
      return '';
    }
  };

  /**
   * What a failure message ends with: the diagnostics, iscsid's last errors when this file
   * uses it, and the tail of the target's log with runs of one repeated line folded (so a
   * login retried for minutes leaves room for what came before it).
   */
  readonly context = (logChars = 4000): string => {
    const iscsid = this.usesIscsid ? `\n--- iscsid ---\n${tailOf(ISCSID_LOG, 30)}` : '';
    return `${this.opts.diagnose ? `\n--- dmesg ---\n${this.diagnostics()}` : ''}${iscsid}\n--- target log ---\n${foldRepeats(this.log).slice(-logChars)}`;
  };

  /** Runs a command (see run); a failure, or the timeout killing it, throws with its output and the context. */
  readonly sh = async (cmd: string, timeout = 120_000): Promise<string> => {
    const r = await run(cmd, timeout);
    if (r.code !== 0 || r.timedOut) throw new Error(`${cmd}: ${r.timedOut ? `killed after ${timeout} ms` : `exit ${r.code}`}\n${r.out}${this.context()}`);
    return r.out;
  };

  /**
   * Starts the daemon (dist/cli/main.js) with `args`, after writing `config` to the work
   * folder and adding --config when one is given; resolves once start-up printed `ready`.
   */
  readonly start = async (config: object | undefined, ready: Ready, args: string[] = ['--debug'], env?: NodeJS.ProcessEnv): Promise<void> => {
    // The human lines these tests match (a pipe would get JSON lines by default).
    const argv = ['dist/cli/main.js', '--log-format', 'human'];
    if (config) {
      writeFileSync(join(this.work, 'config.json'), JSON.stringify(config));
      argv.push('--config', join(this.work, 'config.json'));
    }
    this.log = '';
    const target = spawn(process.execPath, [...argv, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) });
    this.target = target;
    target.stdout!.on('data', (d) => (this.log += d));
    target.stderr!.on('data', (d) => (this.log += d));
    for (let i = 0; i < 300; i++) {
      if (this.isReady(ready)) return;
      if (target.exitCode !== null) throw new Error(`target exited ${target.exitCode}: ${this.log}`);
      await sleep(100);
    }
    throw new Error(`target did not start: ${this.log}`);
  };

  private isReady(ready: Ready): boolean {
    for (const t of ['iser', 'srp', 'tcp'] as const) if (started.listeners(this.log, t) < (ready[t] ?? 0)) return false;
    return !ready.control || started.control(this.log);
  }

  /** Signals the daemon and resolves when it has exited. */
  readonly stop = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    const t = this.target;
    if (!t || t.exitCode !== null || t.signalCode !== null) return;
    const exited = new Promise((r) => t.once('exit', r));
    t.kill(signal);
    await exited;
  };

  /** The control socket's status, straight from this process (the CLI costs seconds of start-up under TCG). */
  readonly status = async (): Promise<Status> => {
    const t = this.target;
    if (!t || t.exitCode !== null || t.signalCode !== null)
      throw new Error(`the target died (exit ${t?.exitCode ?? t?.signalCode}):\n${this.log.slice(-4000)}`);
    return (await controlRequest(this.socket, { id: 1, cmd: 'status' }, 10_000)) as Status;
  };

  // --- open-iscsi -----------------------------------------------------------------------

  /**
   * iscsid with `initiator` as its InitiatorName. One iscsid per VM: another kernel-initiator
   * file may have started it already (each stops it in afterAll with stopIscsid).
   */
  readonly startIscsid = async (initiator: string): Promise<void> => {
    mkdirSync('/etc/iscsi', { recursive: true });
    writeFileSync('/etc/iscsi/initiatorname.iscsi', `InitiatorName=${initiator}\n`);
    if (!existsSync('/etc/iscsi/iscsid.conf')) writeFileSync('/etc/iscsi/iscsid.conf', '');
    this.usesIscsid = true;
    if ((await run('pgrep -x iscsid', 10_000)).code === 0) return;
    // In the foreground (no syslog in the VM) so its errors land in ISCSID_LOG for failures
    // to quote; setsid because on exit it signals its own process group.
    await this.sh(`setsid iscsid -f >${ISCSID_LOG} 2>&1 </dev/null &`);
    // iscsiadm exits 20 (ISCSI_ERR_ISCSID_NOTCONN) until iscsid listens.
    for (let i = 0; i < 100 && (await run('iscsiadm -m session', 10_000)).code === 20; i++) await sleep(100);
  };

  /** `iscsiadm -m node` on one node record (iface iser, or the default tcp one). */
  readonly iscsiNode = (n: IscsiNode, args: string, timeout?: number): Promise<string> =>
    this.sh(`iscsiadm -m node -T ${n.iqn} -p ${n.portal}${n.iface ? ` -I ${n.iface}` : ''} ${args}`, timeout);

  /** The session to `iqn` as `iscsiadm -m session -P3` prints it. */
  readonly sessionBlock = async (iqn: string): Promise<string> => {
    const out = await this.sh('iscsiadm -m session -P3');
    const block = sessionBlocks(out, iqn)[0];
    if (!block) throw new Error(`no session to ${iqn}:\n${out}`);
    return block;
  };

  /** The /dev/sdX of `lun` in the session to `iqn`. */
  readonly diskOf = async (iqn: string, lun = 0): Promise<string> => {
    const out = await this.sh('iscsiadm -m session -P3');
    for (const block of sessionBlocks(out, iqn)) {
      const m = new RegExp(`Lun: ${lun}\\s+Attached scsi disk (sd\\w+)`).exec(block);
      if (m) return `/dev/${m[1]}`;
    }
    throw new Error(`no disk for ${iqn} LUN ${lun} in:\n${out}`);
  };

  /** The disk of `lun` once the kernel has scanned it and udev made its node. */
  readonly waitForDisk = async (iqn: string, lun = 0): Promise<string> => {
    for (let i = 0; i < 150; i++) {
      try {
        const d = await this.diskOf(iqn, lun);
        if (existsSync(d)) return d;
      } catch {
        /* not yet */
      }
      await sleep(200);
    }
    return this.diskOf(iqn, lun);
  };
}

export interface IscsiNode {
  iqn: string;
  portal: string;
  iface?: 'iser';
}

/** Where iscsid, run in the foreground by startIscsid, writes its messages. */
const ISCSID_LOG = '/run/rt-iscsid.log';

/** The last `n` lines of a file ('' when it cannot be read). */
function tailOf(path: string, n: number): string {
  try {
    return readFileSync(path, 'utf8')
      .split('\n')
      .slice(-n - 1)
      .join('\n');
  } catch {
    return '';
  }
}

/**
 * Log lines that differ only in their numbers (ports, ids, times) counted as one: the first
 * kept, then "[… N more like it]".
 */
function foldRepeats(log: string): string {
  const out: string[] = [];
  let shape = '';
  let more = 0;
  const flush = () => {
    if (more) out.push(`[… ${more} more like it]`);
    more = 0;
  };
  for (const line of log.split('\n')) {
    const s = line.replace(/\d+/g, '#');
    if (s === shape && line !== '') {
      more++;
      continue;
    }
    flush();
    shape = s;
    out.push(line);
  }
  flush();
  return out.join('\n');
}

/** iscsiadm -P3 lists sessions in blocks, each opening with "Target: <iqn> ...". */
function sessionBlocks(out: string, iqn: string): string[] {
  return out
    .split(/^Target: /m)
    .slice(1)
    .filter((b) => b.startsWith(`${iqn} `) || b.startsWith(`${iqn}\n`));
}

/** Stops iscsid: it read this file's initiator name at start; the next file starts its own. */
export function stopIscsid(): void {
  try {
    execSync('pkill -x iscsid; sleep 0.5');
  } catch {
    /* not running */
  }
}

// --- ib_srp ---------------------------------------------------------------------------------

export interface SrpPort {
  idExt: string;
  iocGuid: string;
  dest: string;
}

/** The kernel SRP initiator on rxe0: add_target logs in, deleting the remote port logs out. */
export class IbSrp {
  static readonly add = '/sys/class/infiniband_srp/srp-rxe0-1/add_target';
  private static readonly ports = '/sys/class/srp_remote_ports';

  constructor(
    private readonly rig: KernelRig,
    private readonly port: SrpPort,
  ) {}

  /** Logs in to the target port with these add_target options. */
  async addTarget(opts: string): Promise<void> {
    const cmd = `echo "id_ext=${this.port.idExt},ioc_guid=${this.port.iocGuid},dest=${this.port.dest},${opts}" > ${IbSrp.add}`;
    // ib_srp forgets a deleted target port only when its removal work has finished; until then
    // add_target fails with "Already connected".
    for (let i = 0; ; i++) {
      try {
        await this.rig.sh(cmd, 90_000);
        return;
      } catch (e) {
        if (i >= 20 || !/Already connected/.test(this.rig.diagnostics())) throw e;
        await sleep(500);
      }
    }
  }

  /** Every SRP remote port deleted (the initiator's logout), its disks gone, and the target saw every channel disconnect. */
  async removeTargets(): Promise<void> {
    await this.removeTargetsOnly();
    if (disks().length > 0 || IbSrp.remotePorts() > 0)
      throw new Error(
        `SRP disks/ports still present after delete: ${disks()
          .map((d) => d.dev)
          .join(', ')}\n${this.rig.diagnostics()}`,
      );
    for (let i = 0; i < 150 && (await this.channels()) > 0; i++) await sleep(200);
    const left = await this.channels();
    if (left > 0) throw new Error(`the target still has ${left} SRP channel(s) after the initiator deleted its ports\n${this.rig.log.slice(-3000)}`);
  }

  /** Deletes the initiator's SRP ports without asking the target for its channels (it may be another daemon). */
  async removeTargetsOnly(): Promise<void> {
    const dir = IbSrp.ports;
    for (const p of existsSync(dir) ? readdirSync(dir) : []) {
      try {
        writeFileSync(join(dir, p, 'delete'), '1');
      } catch {
        /* going */
      }
    }
    // The disks go first; the initiator forgets the target port a little later (until then a
    // new add_target for it fails with "Already connected").
    for (let i = 0; i < 150 && (disks().length > 0 || IbSrp.remotePorts() > 0); i++) await sleep(200);
  }

  /** The target's SRP channels (status over the control socket). */
  async channels(): Promise<number> {
    return (await this.rig.status()).sessions.filter((s) => s.transport === 'srp').reduce((n, s) => n + s.connections.length, 0);
  }

  /** The LUNs' disks, once `n` are there with their device nodes. */
  async waitForDisks(n = 2): Promise<Map<number, string>> {
    for (let i = 0; i < 200; i++) {
      const d = disks();
      if (d.length >= n && d.every((x) => existsSync(x.dev))) return new Map(d.map((x) => [x.lun, x.dev]));
      await sleep(200);
    }
    throw new Error(
      `expected ${n} SRP disks, have ${
        disks()
          .map((d) => d.dev)
          .join(', ') || 'none'
      }\n${this.rig.diagnostics()}\n${this.rig.log.slice(-3000)}`,
    );
  }

  private static remotePorts(): number {
    return existsSync(IbSrp.ports) ? readdirSync(IbSrp.ports).length : 0;
  }
}

/** SCSI disks with their LUN numbers (H:C:T:L of the device link). */
export function disks(): Array<{ dev: string; lun: number; sys: string }> {
  const out: Array<{ dev: string; lun: number; sys: string }> = [];
  for (const name of existsSync('/sys/block') ? readdirSync('/sys/block') : []) {
    if (!name.startsWith('sd')) continue;
    let link: string;
    try {
      link = readlinkSync(`/sys/block/${name}/device`);
    } catch {
      continue;
    } // appearing or going
    const m = /(\d+):(\d+):(\d+):(\d+)$/.exec(link);
    if (m) out.push({ dev: `/dev/${name}`, lun: Number(m[4]), sys: `/sys/block/${name}` });
  }
  return out;
}
