#!/usr/bin/env node
// The `rdma-target` command. It parses arguments, loads and validates the configuration,
// and runs the daemon; everything it prints on failure is one line an operator can act on
// (the config field or flag at fault), with the stack trace kept for --debug.

import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { parseArgs } from 'node:util';
import {
  addRdmaPortals,
  configDocument,
  defaultConfigJson,
  filePortals,
  fmtAddr,
  overrideListen,
  parseConfig,
  parseJsonText,
  validateConfig,
  type Config,
  type ValidationResult,
} from '../target/config.js';
import { Daemon, StartError } from '../target/daemon.js';
import { createLogger, LOG_FORMATS, type LogFormat } from '../target/logging.js';
import { SystemdNotifier } from '../target/systemd.js';
import { controlRequest } from '../target/control.js';
import { adminHelp, isAdminCommand, runAdmin } from './admin.js';
import { saveConfigFile } from '../target/persist.js';
import { importLio } from '../target/config/lio.js';
import type { Engine } from '../target/engine.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

const USAGE = `Usage:
  rdma-target [--config FILE] [--listen ADDR:PORT] [--metrics ADDR:PORT] [--rdma auto|on|off] [--debug] [--log-format human|json]
  rdma-target check-config FILE
  rdma-target status [--socket PATH]
  rdma-target top [--socket PATH] [--interval S] [--sort COLUMN]
  rdma-target ctl COMMAND [JSON] [--socket PATH]
  rdma-target save [FILE] [--socket PATH]
  rdma-target restore FILE [--config FILE] [--socket PATH]
  rdma-target lun resize TARGET LUN [SIZE] [--tpg N] [--socket PATH]
  rdma-target import-lio SAVECONFIG [-o OUT]
  rdma-target OBJECT VERB ARGS... [--json]   (ls, backstore, target, tpg, portal, lun,
                           acl, mappedlun, chap, discovery-auth, session: see below)
  rdma-target completion bash | man
  rdma-target --help | --version

Serves iSCSI LUNs (iSCSI/TCP now; iSER and SRP when RDMA devices are present).
With no --config it serves the embedded default: target
iqn.2025-01.org.rdma-target:default, LUN 0 = 1 GiB thin RAM disk, on 127.0.0.1:3260,
demo mode (any initiator, no CHAP).

Options:
  -c, --config FILE        JSON configuration (see docs/config.md)
  -l, --listen ADDR:PORT   serve every TCP portal on ADDR:PORT instead ("[::1]:3260" for
                           IPv6; port 0 picks a free port and prints it)
      --metrics ADDR:PORT  serve Prometheus metrics at http://ADDR:PORT/metrics (the
                           config's metrics.listen; off unless one of them is given)
      --rdma auto|on|off   iSER and SRP portals: auto (default) where the native addon loads
                           and RDMA/CM exists; on also before any RDMA device or rdma_ucm
                           exists (the portals wait for a device: a unit started early in
                           boot); off never
      --debug              verbose log, stack traces on errors
      --log-format F       human (info on stdout, warnings on stderr) or json (one JSON
                           object per line on stdout); default: human on a terminal, else json
      --shutdown-timeout S seconds in-flight commands get at shutdown (default 5)
  -h, --help               this text
  -V, --version            print the version

Commands:
  check-config FILE        validate FILE, print every problem with its field path;
                           exit 0 if it is valid, 1 if not
  status                   ask a running daemon for sessions, LUNs and counters
                           (via its control socket; --socket PATH to pick one)
  top                      live view of LUNs and sessions (IOPS, MiB/s, mean and p99
                           latency, average and current queue depth), refreshed each
                           second (--interval S, --sort COLUMN); keys: i m l p a d n sort
                           by IOPS, MiB/s, mean, p99, average or current queue depth,
                           name; r reverses; q or Ctrl-C quits
  ctl COMMAND [JSON]       send one control request, e.g.
                           ctl add-lun '{"target":"iqn...","lun":1,"backstore":{"type":"ram","size":"1G"}}'
                           ctl reload (or SIGHUP): re-read --config FILE, add new LUNs
                           (a file that fails validation changes nothing)
  save [FILE]              write the running configuration to FILE, or to the daemon's
                           --config file (atomically; the replaced version is kept in
                           backup/ beside it, the newest 10). Every run-time change
                           (add-lun, lun resize, restore) is saved this way by itself.
  restore FILE             apply FILE to the running daemon as reload does, then make it
                           the configuration file; with no daemon running, validate FILE
                           and write it over --config FILE (with a backup)
  lun resize TARGET LUN [SIZE]
                           grow a LUN (TARGET: its iqn, or "srp"; --tpg N, default 1):
                           RAM and file LUNs to SIZE ("20G"); file and block LUNs without
                           SIZE take the size the file or device has now. Initiators get
                           CAPACITY DATA HAS CHANGED; shrinking is refused
  import-lio SAVECONFIG    convert LIO's /etc/target/saveconfig.json to this project's
                           configuration (stdout, or -o OUT), validate it, and list what
                           could not be mapped and why

Exit status: 0 clean stop, 1 configuration or start-up error, 2 usage error.`;

export function version(): string {
  // Walk up from this file: dist/cli/main.js, lib/cli/main.ts and test bundles all live under the package.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'rdma-target') return pkg.version ?? '0.0.0';
    } catch {
      /* not here */
    }
    dir = dirname(dir);
  }
  return '0.0.0';
}

/** "127.0.0.1:3260", "[::1]:3260", "0.0.0.0:0" → address and port, or an error message. */
export function parseListen(v: string): { address: string; port: number } | string {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(v) ?? /^([^:]+):(\d+)$/.exec(v);
  if (!m) return `--listen: must be ADDR:PORT such as 127.0.0.1:3260 or [::1]:3260, got ${JSON.stringify(v)}`;
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port > 65535) return `--listen: port must be an integer 0–65535, got ${JSON.stringify(m[2])}`;
  return { address: m[1]!, port };
}

export interface Io {
  out(line: string): void;
  err(line: string): void;
}

const consoleIo: Io = {
  out: (l) => process.stdout.write(l + '\n'),
  err: (l) => process.stderr.write(l + '\n'),
};

function loadFile(file: string): { text?: string; error?: string } {
  try {
    return { text: readFileSync(file, 'utf8') };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (e as Error).message;
    return { error: `${file}: ${why}` };
  }
}

export interface RunOptions {
  io?: Io;
  /** The engine to run; the real one is loaded lazily so `--help` never touches native code. */
  engine?: Engine;
  /** Called once the daemon is up (tests use it instead of signals). */
  onStarted?: (d: Daemon) => void;
  /** Install SIGINT/SIGTERM handlers (the real command does; tests may not). */
  signals?: boolean;
}

/** Runs the command; resolves with the exit code instead of exiting, so tests can call it. */
export async function run(argv: string[], ro: RunOptions = {}): Promise<number> {
  const io = ro.io ?? consoleIo;
  // The administration subcommands (one per control method) parse their own arguments.
  if (isAdminCommand(argv)) return runAdmin(argv, io, (s, c) => controlSocketPath(s, c, io), { version: version(), usage: USAGE });
  // biome-ignore lint/suspicious/noImplicitAnyLet: TypeScript types it from the parseArgs() assignment below (control-flow typing)
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: 'string', short: 'c' },
        listen: { type: 'string', short: 'l' },
        debug: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
        socket: { type: 'string' },
        tpg: { type: 'string' },
        output: { type: 'string', short: 'o' },
        'shutdown-timeout': { type: 'string' },
        'log-format': { type: 'string' },
        metrics: { type: 'string' },
        rdma: { type: 'string' },
        interval: { type: 'string' },
        sort: { type: 'string' },
        once: { type: 'boolean' },
      },
    });
  } catch (e) {
    io.err(`rdma-target: ${(e as Error).message.replace(/\. To specify a positional argument.*$/s, '')}`);
    io.err('Try "rdma-target --help".');
    return EXIT_USAGE;
  }
  const { values: o, positionals: pos } = parsed;
  const usage = (msg: string): number => {
    io.err(`rdma-target: ${msg}`);
    io.err('Try "rdma-target --help".');
    return EXIT_USAGE;
  };

  if (o.help) {
    io.out(USAGE);
    io.out('');
    io.out(adminHelp());
    return EXIT_OK;
  }
  if (o.version) {
    io.out(`rdma-target ${version()}`);
    return EXIT_OK;
  }

  const cmd = pos[0];
  if (cmd === 'check-config') {
    if (pos.length !== 2) return usage('check-config takes exactly one FILE');
    if (o.config || o.listen || o.socket) return usage('check-config takes no --config, --listen or --socket');
    return checkConfig(pos[1]!, io);
  }
  if (cmd === 'status') {
    if (pos.length !== 1) return usage('status takes no arguments');
    return status(o.socket, o.config, io, { cmd: 'status' });
  }
  if (cmd === 'top') {
    if (pos.length !== 1) return usage('top takes no arguments');
    const interval = o.interval === undefined ? 1 : Number(o.interval);
    if (!(interval >= 0.1 && interval <= 3600)) return usage(`--interval: must be seconds 0.1–3600, got ${JSON.stringify(o.interval)}`);
    const socket = controlSocketPath(o.socket, o.config, io);
    if (typeof socket === 'number') return socket;
    const { runTop } = await import('./top.js');
    return runTop({ socket, intervalMs: interval * 1000, sort: o.sort, once: !!o.once, io });
  }
  if (cmd === 'ctl') {
    if (pos.length < 2 || pos.length > 3) return usage('ctl takes COMMAND and optionally one JSON object of arguments');
    let args: Record<string, unknown> = {};
    if (pos[2] !== undefined) {
      const j = parseJsonText(pos[2]);
      if (j.error || !j.doc || typeof j.doc !== 'object' || Array.isArray(j.doc))
        return usage(`ctl: arguments must be one JSON object, got ${JSON.stringify(pos[2])}`);
      args = j.doc as Record<string, unknown>;
    }
    return status(o.socket, o.config, io, { ...args, cmd: pos[1]! });
  }
  if (cmd === 'save') {
    if (pos.length > 2) return usage('save takes at most one FILE');
    return status(o.socket, o.config, io, { cmd: 'save', ...(pos[1] !== undefined ? { file: resolvePath(pos[1]) } : {}) });
  }
  if (cmd === 'restore') {
    if (pos.length !== 2) return usage('restore takes exactly one FILE');
    return restore(resolvePath(pos[1]!), o.config, o.socket, io);
  }
  if (cmd === 'lun') {
    if (pos[1] !== 'resize') return usage(`lun: unknown subcommand ${JSON.stringify(pos[1] ?? '')}; try "lun resize"`);
    if (pos.length < 4 || pos.length > 5) return usage('lun resize takes TARGET LUN and optionally SIZE');
    const lun = Number(pos[3]);
    if (!Number.isInteger(lun) || lun < 0) return usage(`lun resize: LUN must be a LUN number, got ${JSON.stringify(pos[3])}`);
    const tpg = o.tpg === undefined ? undefined : Number(o.tpg);
    if (tpg !== undefined && !(Number.isInteger(tpg) && tpg > 0)) return usage(`--tpg: must be a TPG tag, got ${JSON.stringify(o.tpg)}`);
    const size = pos[4] === undefined ? undefined : /^\d+$/.test(pos[4]) ? Number(pos[4]) : pos[4];
    return status(o.socket, o.config, io, {
      cmd: 'lun-resize',
      target: pos[2]!,
      lun,
      ...(tpg !== undefined ? { tpg } : {}),
      ...(size !== undefined ? { size } : {}),
    });
  }
  if (cmd === 'import-lio') {
    if (pos.length !== 2) return usage('import-lio takes exactly one SAVECONFIG file');
    return importLioCommand(pos[1]!, o.output, io);
  }
  if (o.tpg !== undefined || o.output !== undefined) return usage('--tpg belongs to lun resize, -o to import-lio');
  if (cmd !== undefined) return usage(`unknown command ${JSON.stringify(cmd)}`);
  if (o.socket) return usage('--socket belongs to the status and ctl commands');

  let graceMs = 5000;
  if (o['shutdown-timeout'] !== undefined) {
    const s = Number(o['shutdown-timeout']);
    if (!Number.isFinite(s) || s < 0 || s > 3600) return usage(`--shutdown-timeout: must be seconds 0–3600, got ${JSON.stringify(o['shutdown-timeout'])}`);
    graceMs = s * 1000;
  }
  // Without the flag: human on a terminal, JSON lines otherwise (journald, a pipe, a file).
  const logFormat = o['log-format'] ?? (ro.io || process.stdout.isTTY ? 'human' : 'json');
  if (!(LOG_FORMATS as readonly string[]).includes(logFormat))
    return usage(`--log-format: must be ${LOG_FORMATS.join(' or ')}, got ${JSON.stringify(logFormat)}`);

  let doc: Record<string, unknown>;
  let source = 'embedded default config';
  if (o.config !== undefined) {
    const f = loadFile(o.config);
    if (f.error) {
      io.err(`rdma-target: ${f.error}`);
      return EXIT_FAILURE;
    }
    const j = parseJsonText(f.text!);
    if (j.error) {
      io.err(`rdma-target: ${o.config}: ${j.error}`);
      return EXIT_FAILURE;
    }
    if (!j.doc || typeof j.doc !== 'object' || Array.isArray(j.doc)) {
      io.err(`rdma-target: ${o.config}: must be a JSON object`);
      return EXIT_FAILURE;
    }
    doc = j.doc as Record<string, unknown>;
    source = o.config;
  } else {
    doc = defaultConfigJson();
  }

  if (o.rdma !== undefined && !['auto', 'on', 'off'].includes(o.rdma)) return usage(`--rdma must be auto, on or off, got ${JSON.stringify(o.rdma)}`);
  let listen: { address: string; port: number } | undefined;
  if (o.listen !== undefined) {
    const l = parseListen(o.listen);
    if (typeof l === 'string') return usage(l);
    listen = l;
    doc = overrideListen(doc, l.address, l.port);
  }
  const result: ValidationResult = validateConfig(doc, { allowEphemeralPort: listen !== undefined });
  if (!result.config) {
    for (const e of result.errors)
      io.err(`rdma-target: ${source}: ${listen ? e.replace(/^targets\[\d+\]\.tpgs\[\d+\]\.portals\[0\]\.(address|port)/, '--listen') : e}`);
    return EXIT_FAILURE;
  }
  const log = createLogger({ format: logFormat as LogFormat, debug: !!o.debug, sink: io });
  // The real command only (tests pass their own io): a test runner's own $NOTIFY_SOCKET is not ours.
  const sd = ro.io ? undefined : SystemdNotifier.fromEnv({ log });
  for (const w of result.warnings) log.warn(w);
  if (o.config !== undefined) {
    const p = secretsExposed(o.config, result.config);
    if (p) log.warn(p);
  }

  let engine = ro.engine;
  if (!engine) {
    const { createEngine } = await import('../target/wiring.js');
    let rdma: boolean | undefined;
    if (o.rdma === 'on') {
      const { nativeAvailable } = await import('../verbs/index.js');
      if (!nativeAvailable()) {
        io.err('rdma-target: --rdma on: the native addon or rdma-core (libibverbs, librdmacm) is missing');
        return EXIT_FAILURE;
      }
      rdma = true;
    } else if (o.rdma === 'off') rdma = false;
    engine = createEngine({
      log,
      ...(rdma !== undefined ? { rdma } : {}),
      ...(result.config.rdma?.bufferMiB !== undefined ? { bufferMiB: result.config.rdma.bufferMiB } : {}),
    });
  }

  // The default target also listens for iSER where RDMA devices exist, once the build has
  // an iSER transport (the hook; a --config file says for itself which portals it wants).
  if (o.config === undefined && engine.transports.has('iser')) {
    const devices = rdmaDevices();
    if (devices.length) {
      const before = result.config.targets.flatMap((t) => t.tpgs.flatMap((g) => g.portals)).length;
      addRdmaPortals(result.config, devices);
      const added = result.config.targets.flatMap((t) => t.tpgs.flatMap((g) => g.portals)).length - before;
      log.info(
        added
          ? `RDMA devices ${devices.map((d) => d.name).join(', ')}: serving iSER beside TCP${result.config.srp ? ', and SRP on port 5555' : ''}`
          : `RDMA devices ${devices.map((d) => d.name).join(', ')}: no iSER or SRP on a loopback portal; --listen ADDR:3260 (an RDMA interface's address or 0.0.0.0) serves iSER and SRP there too`,
      );
    }
  }

  let daemon: Daemon;
  try {
    daemon = await Daemon.start(result.config, {
      engine,
      log,
      shutdownGraceMs: graceMs,
      version: version(),
      ...(listen ? { listenOverride: fmtAddr(listen.address, listen.port) } : {}),
      // Like --listen, this run's only: not written back by save.
      ...(o.metrics !== undefined ? { metricsListen: o.metrics } : {}),
      // Any file `restore` names is read as the configuration file is, --listen included.
      reloadSource: (file?: string) => {
        const f = file ?? o.config;
        if (f === undefined) return Promise.reject(new Error('this daemon has no configuration file to reload (embedded default)'));
        return reloadConfig(f, listen);
      },
      save: (config: Config, file?: string) => saveRunning(config, file, o.config, listen),
    });
  } catch (e) {
    const msg = e instanceof StartError ? e.message : ((e as Error).message ?? String(e));
    io.err(`rdma-target: ${msg}`);
    if (o.debug) io.err(((e as Error).cause as Error | undefined)?.stack ?? (e as Error).stack ?? '');
    return EXIT_FAILURE;
  }

  return new Promise<number>((resolve) => {
    let signalled = 0;
    const finish = (code: number) => {
      if (ro.signals !== false) {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        process.off('SIGHUP', onHup);
      }
      if (sd) void sd.flush().then(() => resolve(code));
      else resolve(code);
    };
    const onSignal = (sig: NodeJS.Signals) => {
      signalled++;
      if (signalled > 1) {
        io.err(`rdma-target: ${sig} again: exiting without waiting`);
        finish(EXIT_FAILURE);
        return;
      }
      log.info(`rdma-target: ${sig}: stopping (sessions asked to log out, ${graceMs / 1000}s for in-flight commands; ${sig} again to force)`);
      void sd?.stopping(`${sig}: stopping`);
      daemon.stop(graceMs).then(
        () => {
          log.info('rdma-target: stopped');
          finish(EXIT_OK);
        },
        (e: unknown) => {
          io.err(`rdma-target: unclean stop: ${(e as Error).message}`);
          finish(EXIT_FAILURE);
        },
      );
    };
    // A waiting RDMA portal that starts listening: STATUS= says so (followed until none waits).
    let following = false;
    const followWaiting = () => {
      if (!sd || following) return;
      const { listening } = daemon.servingStatus();
      if (!listening) return;
      following = true;
      void listening.then(() => {
        following = false;
        void sd.status(daemon.servingStatus().text);
        followWaiting();
      });
    };
    // SIGHUP: re-read the file and add what can be added live (see Daemon.reload).
    const onHup = () => {
      void sd?.reloading();
      daemon
        .reload()
        .then(
          (r) => log.info(`rdma-target: SIGHUP: reloaded ${JSON.stringify(r)}`),
          (e: unknown) => log.error(`SIGHUP: ${(e as Error).message}`),
        )
        .finally(() => {
          if (!sd) return;
          void sd.ready(`${daemon.servingStatus().text} (reloaded)`);
          followWaiting();
        });
    };
    if (ro.signals !== false) {
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      process.on('SIGHUP', onHup);
    }
    // Only now say we are up: whoever reads these lines may signal at once (a pipe's write is
    // synchronous on Linux, so printing first let a quick SIGHUP find the default action: exit).
    log.info(`rdma-target ${version()} serving ${source} (pid ${process.pid})`);
    for (const line of daemon.connectionHints()) log.info(line);
    // Type=notify: ready only now that every TCP portal listens and every RDMA portal listens or
    // waits for its device (Daemon.servingStatus; STATUS= names the waiting ones).
    if (sd) {
      void sd.ready(daemon.servingStatus().text);
      followWaiting();
    }
    ro.onStarted?.(daemon);
    // Tests without signals stop the daemon themselves; resolve once it has stopped.
    if (ro.signals === false) {
      const orig = daemon.stop.bind(daemon);
      daemon.stop = (ms?: number) => {
        const p = orig(ms);
        p.then(
          () => finish(EXIT_OK),
          () => finish(EXIT_FAILURE),
        );
        return p;
      };
    }
  });
}

/** LIO keeps saveconfig.json at 0600 because it holds CHAP secrets; say so when a file that does is not. */
function secretsExposed(file: string, c: Config): string | undefined {
  const hasSecret =
    c.discoveryAuth.password !== undefined || c.targets.some((t) => t.tpgs.some((g) => g.chap !== undefined || g.acls.some((a) => a.chap !== undefined)));
  if (!hasSecret) return undefined;
  try {
    const mode = statSync(file).mode & 0o777;
    if ((mode & 0o077) === 0) return undefined;
    return `${file} holds CHAP secrets and is readable by ${mode & 0o007 ? 'everyone' : 'its group'} (mode ${mode.toString(8).padStart(4, '0')}); chmod 600 ${file}`;
  } catch {
    return undefined;
  }
}

/** RDMA devices the kernel knows (/sys/class/infiniband: rxe, mlx5, siw...). */
function rdmaDevices(): Array<{ name: string }> {
  try {
    return readdirSync('/sys/class/infiniband').map((name) => ({ name }));
  } catch {
    return [];
  }
}

async function reloadConfig(file: string, listen: { address: string; port: number } | undefined): Promise<Config> {
  const f = loadFile(file);
  if (f.error) throw new Error(f.error);
  const j = parseJsonText(f.text!);
  if (j.error) throw new Error(`${file}: ${j.error}`);
  if (!j.doc || typeof j.doc !== 'object' || Array.isArray(j.doc)) throw new Error(`${file}: must be a JSON object`);
  const doc = listen ? overrideListen(j.doc as Record<string, unknown>, listen.address, listen.port) : j.doc;
  const r = validateConfig(doc, { allowEphemeralPort: listen !== undefined });
  if (!r.config) throw new Error(`${file}: ${r.errors.join('; ')}`);
  return r.config;
}

/**
 * Writes the running configuration to `file` or the configuration file (none: the embedded
 * default has no file, and nothing is written). --listen is this run's, so what is written
 * keeps the portals of the configuration it overrode (the file's, or the embedded default's).
 */
async function saveRunning(config: Config, file: string | undefined, configFile: string | undefined, listen: unknown) {
  const target = file ?? configFile;
  if (target === undefined) return undefined;
  let doc = configDocument(config);
  if (listen) {
    let source: unknown = defaultConfigJson();
    if (configFile !== undefined) {
      const f = loadFile(configFile);
      source = f.text === undefined ? undefined : parseJsonText(f.text).doc;
    }
    if (source !== undefined) doc = filePortals(doc, source);
  }
  return saveConfigFile(target, doc);
}

/** `restore FILE`: through the running daemon, or, with none, over the --config file. */
async function restore(file: string, configFile: string | undefined, socket: string | undefined, io: Io): Promise<number> {
  const code = await status(socket, configFile, io, { cmd: 'restore', file }, { quietWhenDown: true });
  if (code !== EXIT_NO_DAEMON) return code;
  if (configFile === undefined) {
    io.err('rdma-target: restore: no daemon is running; name the file to restore over with --config FILE');
    return EXIT_FAILURE;
  }
  const f = loadFile(file);
  if (f.error) {
    io.err(`rdma-target: ${f.error}`);
    return EXIT_FAILURE;
  }
  const r = parseConfig(f.text!);
  if (!r.config) {
    for (const e of r.errors) io.err(`${file}: error: ${e}`);
    return EXIT_FAILURE;
  }
  try {
    const s = await saveConfigFile(configFile, configDocument(r.config));
    io.out(JSON.stringify({ restored: file, saved: s.file, ...(s.backup ? { backup: s.backup } : {}) }, null, 2));
    return EXIT_OK;
  } catch (e) {
    io.err(`rdma-target: ${configFile}: ${(e as Error).message}`);
    return EXIT_FAILURE;
  }
}

/** `import-lio`: LIO's saveconfig.json → this project's configuration, validated; what did not map on stderr. */
async function importLioCommand(file: string, out: string | undefined, io: Io): Promise<number> {
  const f = loadFile(file);
  if (f.error) {
    io.err(`rdma-target: ${f.error}`);
    return EXIT_FAILURE;
  }
  const j = parseJsonText(f.text!);
  if (j.error) {
    io.err(`rdma-target: ${file}: ${j.error}`);
    return EXIT_FAILURE;
  }
  const r = importLio(j.doc);
  for (const n of r.unmapped) io.err(`${file}: not imported: ${n}`);
  const v = validateConfig(r.document);
  for (const w of v.warnings) io.err(`${file}: warning: ${w}`);
  if (!v.config) {
    for (const e of v.errors) io.err(`${file}: error in the converted configuration: ${e}`);
    return EXIT_FAILURE;
  }
  const text = JSON.stringify(r.document, null, 2);
  if (out === undefined) {
    io.out(text);
    return EXIT_OK;
  }
  try {
    await saveConfigFile(out, r.document);
  } catch (e) {
    io.err(`rdma-target: ${out}: ${(e as Error).message}`);
    return EXIT_FAILURE;
  }
  io.err(
    `${file}: imported to ${out}${r.unmapped.length ? ` (${r.unmapped.length} item${r.unmapped.length === 1 ? '' : 's'} not imported, listed above)` : ''}`,
  );
  return EXIT_OK;
}

function checkConfig(file: string, io: Io): number {
  const f = loadFile(file);
  if (f.error) {
    io.err(`rdma-target: ${f.error}`);
    return EXIT_FAILURE;
  }
  const r = parseConfig(f.text!);
  for (const e of r.errors) io.err(`${file}: error: ${e}`);
  for (const w of r.warnings) io.err(`${file}: warning: ${w}`);
  if (!r.config) {
    io.err(`${file}: ${r.errors.length} error${r.errors.length === 1 ? '' : 's'}`);
    return EXIT_FAILURE;
  }
  const c = r.config;
  const tpgs = c.targets.reduce((n, t) => n + t.tpgs.length, 0);
  const luns = c.targets.reduce((n, t) => n + t.tpgs.reduce((m, g) => m + g.luns.length, 0), 0);
  const portals = new Set(c.targets.flatMap((t) => t.tpgs.flatMap((g) => g.portals.map((p) => `${p.transport} ${fmtAddr(p.address, p.port)}`))));
  io.out(
    `${file}: OK: ${c.targets.length} target${c.targets.length === 1 ? '' : 's'}, ${tpgs} TPG${tpgs === 1 ? '' : 's'}, ${luns} LUN${luns === 1 ? '' : 's'}, portals: ${[...portals].join(', ') || 'none'}`,
  );
  return EXIT_OK;
}

/** Sends one request to a running daemon's control socket and prints the result as JSON. */
/** status()'s answer when nothing listens on the socket and the caller asked to handle that itself. */
const EXIT_NO_DAEMON = -1;

/** The control socket to talk to: --socket, or the one the configuration (--config or the default) names; an exit code when there is none. */
export function controlSocketPath(socket: string | undefined, configFile: string | undefined, io: Io): string | number {
  let path = socket;
  if (!path) {
    let doc: unknown = defaultConfigJson();
    if (configFile) {
      const f = loadFile(configFile);
      if (f.error) {
        io.err(`rdma-target: ${f.error}`);
        return EXIT_FAILURE;
      }
      const j = parseJsonText(f.text!);
      if (j.error) {
        io.err(`rdma-target: ${configFile}: ${j.error}`);
        return EXIT_FAILURE;
      }
      doc = j.doc;
    }
    const r = validateConfig(doc);
    if (!r.config) {
      io.err(`rdma-target: ${configFile}: ${r.errors[0]}`);
      return EXIT_FAILURE;
    }
    if (!r.config.control) {
      io.err('rdma-target: the configuration disables the control socket (control: false)');
      return EXIT_FAILURE;
    }
    path = r.config.control.socket;
  }
  return path;
}

async function status(
  socket: string | undefined,
  configFile: string | undefined,
  io: Io,
  req: { cmd: string; [k: string]: unknown },
  o: { quietWhenDown?: boolean } = {},
): Promise<number> {
  const path = controlSocketPath(socket, configFile, io);
  if (typeof path === 'number') return path;
  try {
    const result = await controlRequest(path, req);
    io.out(JSON.stringify(result, null, 2));
    return EXIT_OK;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === undefined) {
      io.err(`rdma-target: ${req.cmd}: ${(e as Error).message}`);
      return EXIT_FAILURE;
    }
    const down = code === 'ENOENT' || code === 'ECONNREFUSED';
    if (down && o.quietWhenDown) return EXIT_NO_DAEMON;
    const why = down ? 'no daemon is listening there' : (e as Error).message;
    io.err(`rdma-target: control socket ${path}: ${why}`);
    return EXIT_FAILURE;
  }
}

// Run when executed as a program, not when imported by tests.
function invokedDirectly(): boolean {
  try {
    return process.argv[1] !== undefined && fileURLToPath(import.meta.url) === realpathSync(process.argv[1]);
  } catch {
    return false;
  }
}
if (invokedDirectly()) {
  const code = await run(process.argv.slice(2));
  // Exit explicitly: a lingering handle must not keep a stopped daemon alive.
  process.exit(code);
}
