// The daemon's lifecycle: config → backstores → SCSI LUNs + iSCSI targets → portals →
// control socket, and the reverse on stop. Every failure at start is turned into one
// StartError naming the config field it came from, because the operator's fix is always
// an edit to that field (or freeing a port), never reading a stack trace.

import {
  RDMA_BUFFER_MIB_DEFAULT,
  SRP_LUN_OWNER,
  configDocument,
  fmtAddr,
  parseSize,
  resolveBackstore,
  validateConfig,
  type BackstoreConfig,
  type Config,
  type PortalConfig,
} from './config.js';
import type { Engine, EngineStatus, Listener, ResolvedLun, ServedTargets } from './engine.js';
import { ControlServer } from './control.js';
import { EDIT_METHODS, fieldError, lsTree, ParamError } from './model.js';
import { MetricsServer, parseMetricsListen } from './metrics.js';
import { isDeepStrictEqual } from 'node:util';
import type { Backstore } from '../backstore/types.js';
import { silentLogger, type Logger } from '../common/log.js';
import { TRANSPORTS, type TransportKind } from '../common/transports.js';
import { IO_KINDS, LATENCY_BOUNDS, type IoStats, type IoStatsJson } from '../scsi/stats.js';

/** A start-up failure attributable to one config field (or to the command line). */
export class StartError extends Error {
  constructor(
    readonly field: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${field}: ${message}`, options);
    this.name = 'StartError';
  }
}

export interface DaemonOptions {
  engine: Engine;
  log?: Logger;
  /** How long in-flight commands get to finish at shutdown before they are aborted. */
  shutdownGraceMs?: number;
  version?: string;
  /** Where --listen came from, so a bind error can point at the flag instead of the file. */
  listenOverride?: string;
  /** --metrics ADDR:PORT: the Prometheus endpoint for this run, instead of the config's metrics.listen. */
  metricsListen?: string;
  /**
   * Reads and validates the configuration source (the CLI's file) for `reload`, or `file`
   * for `restore`; throws with the errors (each naming its field).
   */
  reloadSource?: (file?: string) => Promise<Config>;
  /**
   * Writes the running configuration to `file`, or to the configuration file when absent
   * (lib/target/persist.ts: atomic, with backups). Called after every run-time change and by
   * `save`; resolves with where it wrote, or undefined when there is no file to write to.
   * Absent: nothing is written back.
   */
  save?: (config: Config, file?: string) => Promise<{ file: string; backup?: string } | undefined>;
}

export interface BoundPortal {
  /** Config path of the first portal that asked for this listener. */
  field: string;
  transport: PortalConfig['transport'];
  address: string;
  port: number;
  /** Targets reachable through it. */
  targets: string[];
}

export interface DaemonStatus {
  version: string;
  pid: number;
  uptimeSeconds: number;
  state: 'running' | 'stopping' | 'stopped';
  portals: Array<{ transport: string; address: string; port: number; targets: string[] }>;
  targets: Array<{
    iqn: string;
    tpgs: Array<{
      tag: number;
      demoMode: boolean;
      authentication: boolean;
      acls: string[];
      luns: Array<{ lun: number; backstore: string; type: string; sizeBytes: number; blockSize: number; readOnly: boolean; thin: boolean; path?: string }>;
    }>;
  }>;
  sessions: EngineStatus['sessions'];
  counters: EngineStatus['counters'];
  rdmaDevices?: EngineStatus['rdmaDevices'];
}

/** The `stats` control command's answer (Daemon.stats). */
export interface DaemonStats {
  /** Seconds on a monotonic clock. */
  time: number;
  /** Upper bounds in seconds of the latency buckets (a last, +Inf bucket follows). */
  latencyBounds: number[];
  /** Row names of the per-kind arrays in `io`. */
  kinds: string[];
  /**
   * Per logical unit: `io` all transports together, `transports` the same counters split by
   * the transport of the nexus that sent each command (one row per transport this daemon
   * serves, lib/common/transports.ts).
   */
  luns: Array<{
    backstore: string;
    type: string;
    luns: string[];
    queued: number;
    io: IoStatsJson | undefined;
    transports: Array<{ transport: TransportKind; io: IoStatsJson }>;
  }>;
  sessions: Array<{ initiator: string; target: string; transport: string; isid?: string; queued: number; io: IoStatsJson | undefined }>;
  counters: Record<string, number>;
  /** Logins, logouts, login and CHAP failures per initiator (unknown initiators' failures share one row: lib/common/initiators.ts). */
  initiators: NonNullable<EngineStatus['initiators']>;
  portals: Array<{ transport: string; address: string; port: number }>;
  /** Connections of logged-in sessions by "transport|local address:port". */
  portalConnections: Record<string, number>;
}

/** Human hint for an errno from opening a backstore or binding a portal. */
function errnoText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  switch (err?.code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory';
    case 'ENOTDIR':
      return 'a parent is not a directory';
    case 'EROFS':
      return 'read-only file system (set readOnly: true to export it read-only)';
    case 'ENOSPC':
      return 'no space left on device';
    case 'EBUSY':
      return 'device or resource busy';
    case 'ENXIO':
    case 'ENODEV':
      return 'no such device';
    case 'EADDRINUSE':
      return 'address already in use';
    case 'EADDRNOTAVAIL':
      return 'address not available on this host';
    default:
      return err?.message ?? String(e);
  }
}

/** A served LUN for messages: "srp LUN 3" or "<iqn> tpg 1 LUN 3". */
function lunName(r: ResolvedLun): string {
  return r.iqn === SRP_LUN_OWNER ? `srp LUN ${r.lun.lun}` : `${r.iqn} tpg ${r.tpgTag} LUN ${r.lun.lun}`;
}

/** A configuration the validator refused: the first error's field, every error in `data.errors`. */
function invalid(errors: string[]): ParamError {
  const m = /^([^:\s]+): (.*)$/s.exec(errors[0] ?? '');
  const e = new ParamError(m ? m[1]! : 'config', m ? m[2]! : (errors[0] ?? 'invalid'));
  (e as { data?: unknown }).data = { errors };
  if (errors.length > 1) e.message = errors.join('; ');
  return e;
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

export class Daemon {
  readonly portals: BoundPortal[] = [];
  private readonly log: Logger;
  private readonly listeners: Listener[] = [];
  /** transport|address|port (as configured) of each listener, aligned with `listeners` and `portals`. */
  private readonly listenerKeys: string[] = [];
  private readonly opened: Array<{ name: string; field: string; store: BackstoreConfig; backstore: Backstore }> = [];
  private served: ServedTargets | undefined;
  private control: ControlServer | undefined;
  private metricsServer: MetricsServer | undefined;
  /** Where the Prometheus endpoint listens (config `metrics.listen`), once bound. */
  metricsAddress: { address: string; port: number } | undefined;
  private state: DaemonStatus['state'] = 'running';
  private readonly startedAt = Date.now();
  private stopping: Promise<void> | undefined;
  private resolved: ResolvedLun[] = [];
  /** Serialises configuration changes from the control socket. */
  private changes: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly config: Config,
    private readonly opts: DaemonOptions,
  ) {
    this.log = opts.log ?? silentLogger;
  }

  /** Starts everything or, on the first failure, undoes what was started and throws a StartError. */
  static async start(config: Config, opts: DaemonOptions): Promise<Daemon> {
    const d = new Daemon(config, opts);
    try {
      await d.openBackstores();
      d.served = await d.opts.engine.build(config, d.resolved);
      await d.bindPortals();
      if (config.control) {
        d.control = new ControlServer(config.control.socket, (method, params) => d.handleControl(method, params), d.log);
        try {
          await d.control.listen();
        } catch (e) {
          d.control = undefined;
          throw new StartError('control.socket', `cannot listen on ${config.control.socket}: ${(e as Error).message}`, { cause: e });
        }
      }
      const metricsListen = opts.metricsListen ?? config.metrics?.listen;
      if (metricsListen !== undefined) {
        const field = opts.metricsListen !== undefined ? '--metrics' : 'metrics.listen';
        const at = parseMetricsListen(metricsListen);
        if (typeof at === 'string') throw new StartError(field, at);
        d.metricsServer = new MetricsServer(() => d.stats(), d.log);
        try {
          d.metricsAddress = await d.metricsServer.listen(at.address, at.port);
        } catch (e) {
          d.metricsServer = undefined;
          throw new StartError(field, `cannot listen on ${metricsListen}: ${errnoText(e)}`, { cause: e });
        }
        d.log.info(`metrics: http://${fmtAddr(d.metricsAddress.address, d.metricsAddress.port)}/metrics`);
      }
    } catch (e) {
      await d.teardown(0).catch(() => {});
      if (e instanceof StartError) throw e;
      throw new StartError('start', (e as Error).message ?? String(e), { cause: e });
    }
    return d;
  }

  private async openOne(store: BackstoreConfig, field: string, name: string): Promise<Backstore> {
    let b: Backstore;
    try {
      b = await this.opts.engine.openBackstore(store);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException)?.code;
      const what = store.path ? `${store.path}: ` : '';
      const sub = store.path ? `${field}.path` : field;
      const hint = store.type === 'file' && store.size === undefined && code === 'ENOENT' ? ' (give a size to create it)' : '';
      throw new StartError(sub, `cannot open ${store.type} backstore: ${what}${errnoText(e)}${hint}`, { cause: e });
    }
    this.opened.push({ name, field, store, backstore: b });
    this.log.debug(`opened ${store.type} backstore ${name}: ${b.blockCount} × ${b.blockSize} bytes${b.readOnly ? ', read-only' : ''}`);
    return b;
  }

  private async openBackstores(): Promise<void> {
    const byName = new Map<string, Backstore>();
    const open = (store: BackstoreConfig, field: string, name: string) => this.openOne(store, field, name);
    // Only backstores a LUN uses are opened: an unused entry in a shared file costs nothing.
    const used = new Set<string>();
    for (const t of this.config.targets) for (const g of t.tpgs) for (const l of g.luns) if (typeof l.backstore === 'string') used.add(l.backstore);
    const srp = this.config.srp?.enable ? this.config.srp : undefined;
    for (const l of srp?.luns ?? []) if (typeof l.backstore === 'string') used.add(l.backstore);
    for (const [i, s] of this.config.backstores.entries()) {
      if (!used.has(s.name!)) {
        this.log.warn(`backstores[${i}] (${s.name}) is used by no LUN; not opened`);
        continue;
      }
      byName.set(s.name!, await open(s, `backstores[${i}]`, s.name!));
    }
    for (const [ti, t] of this.config.targets.entries()) {
      for (const [gi, g] of t.tpgs.entries()) {
        if (!g.enable) continue;
        for (const [li, l] of g.luns.entries()) {
          const store = resolveBackstore(this.config, l);
          const inline = typeof l.backstore !== 'string';
          const storeName = inline ? `${t.iqn}/tpg${g.tag}/lun${l.lun}` : (l.backstore as string);
          const backstore = inline ? await open(store, `targets[${ti}].tpgs[${gi}].luns[${li}].backstore`, storeName) : byName.get(storeName)!;
          this.resolved.push({ iqn: t.iqn, tpgTag: g.tag, lun: l, store, storeName, backstore });
        }
      }
    }
    // SRP LUNs: a named backstore is the same object (one LU) as in any TPG that exports it.
    for (const [li, l] of (srp?.luns ?? []).entries()) {
      const store = resolveBackstore(this.config, l);
      const inline = typeof l.backstore !== 'string';
      const storeName = inline ? `srp/lun${l.lun}` : (l.backstore as string);
      const backstore = inline ? await open(store, `srp.luns[${li}].backstore`, storeName) : byName.get(storeName)!;
      this.resolved.push({ iqn: SRP_LUN_OWNER, tpgTag: 0, lun: l, store, storeName, backstore });
    }
  }

  private async bindPortals(): Promise<void> {
    for (const [key, w] of this.wantedPortals(this.config, true)) await this.bindOne(key, w);
    if (this.portals.length === 0 && this.resolved.length > 0) this.log.warn('no portal is being served: initiators cannot reach any LUN');
  }

  /** The listeners `config` asks for: one per transport+address+port, whatever number of targets shares it. */
  private wantedPortals(config: Config, tell = false): Map<string, BoundPortal & { portal: PortalConfig }> {
    const wanted = new Map<string, BoundPortal & { portal: PortalConfig }>();
    for (const [ti, t] of config.targets.entries()) {
      for (const [gi, g] of t.tpgs.entries()) {
        if (!g.enable) {
          if (tell) this.log.info(`targets[${ti}].tpgs[${gi}] (${t.iqn} tpg ${g.tag}) is disabled; not served`);
          continue;
        }
        for (const [pi, p] of g.portals.entries()) {
          const field = this.opts.listenOverride && p.transport === 'tcp' ? '--listen' : `targets[${ti}].tpgs[${gi}].portals[${pi}]`;
          if (!this.opts.engine.transports.has(p.transport)) {
            if (tell)
              this.log.warn(
                `${field}: ${p.transport} portal ${fmtAddr(p.address, p.port)} skipped: ${p.transport === 'iser' ? 'RDMA is unavailable here (no RDMA device, or the native addon or rdma-core is missing)' : `this build has no ${p.transport} transport`}`,
              );
            continue;
          }
          const key = `${p.transport}|${p.address}|${p.port}`;
          const w = wanted.get(key);
          if (w) {
            if (!w.targets.includes(t.iqn)) w.targets.push(t.iqn);
          } else wanted.set(key, { field, transport: p.transport, address: p.address, port: p.port, targets: [t.iqn], portal: p });
        }
      }
    }
    const srp = config.srp;
    if (srp && !srp.enable) {
      if (tell) this.log.info('srp is disabled; not served');
    } else if (srp) {
      for (const [pi, p] of srp.portals.entries()) {
        const field = `srp.portals[${pi}]`;
        if (!this.opts.engine.transports.has('srp')) {
          if (tell)
            this.log.warn(
              `${field}: srp portal ${fmtAddr(p.address, p.port)} skipped: RDMA is unavailable here (no RDMA device, or the native addon or rdma-core is missing)`,
            );
          continue;
        }
        wanted.set(`srp|${p.address}|${p.port}`, {
          field,
          transport: 'srp',
          address: p.address,
          port: p.port,
          targets: [SRP_LUN_OWNER],
          portal: { ...p, transport: 'srp' },
        });
      }
    }
    return wanted;
  }

  private async bindOne(key: string, w: BoundPortal & { portal: PortalConfig }): Promise<void> {
    let l: Listener;
    try {
      l = await this.served!.listen(w.portal);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException)?.code;
      let hint = '';
      if (code === 'EADDRINUSE') hint = ' (is another target running? pick another port, e.g. --listen ' + fmtAddr(w.address, w.port + 1) + ')';
      if ((code === 'EACCES' || code === 'EPERM') && w.port < 1024) hint = ' (ports below 1024 need root or CAP_NET_BIND_SERVICE)';
      throw new StartError(w.field, `cannot listen on ${fmtAddr(w.address, w.port)}: ${errnoText(e)}${hint}`, { cause: e });
    }
    this.listeners.push(l);
    this.listenerKeys.push(key);
    const { portal: _p, ...bound } = w;
    this.portals.push({ ...bound, address: l.address, port: l.port });
  }

  /**
   * What the daemon serves, for systemd's STATUS= (lib/target/systemd.ts). The service is
   * ready (READY=1) once start() has returned: every TCP portal listens, and every RDMA portal
   * either listens or waits for an RDMA device that carries its address (a portal started
   * before its device: docs/architecture.md, device lifecycle). The waiting ones are named in
   * the text; `listening` resolves when one of them starts listening, so the status can be
   * told again.
   */
  servingStatus(): { text: string; waiting: number; listening: Promise<void> | undefined } {
    const serving: string[] = [];
    const waiting: string[] = [];
    const pending: Promise<void>[] = [];
    for (const [i, p] of this.portals.entries()) {
      const l = this.listeners[i];
      const why = l?.waiting?.();
      const name = `${p.transport} ${fmtAddr(p.address, p.port)}`;
      if (why === undefined) serving.push(name);
      else {
        waiting.push(`${name} waiting for an RDMA device with address ${p.address} (${why})`);
        if (l?.whenListening) pending.push(l.whenListening());
      }
    }
    const text = [serving.length ? `serving ${serving.join(', ')}` : waiting.length ? 'serving no portal yet' : 'serving no portal', ...waiting].join('; ');
    return { text, waiting: waiting.length, listening: pending.length ? Promise.race(pending) : undefined };
  }

  /** Lines telling a user how to reach what is served (printed at start). */
  connectionHints(): string[] {
    const lines: string[] = [];
    for (const p of this.portals) {
      const hp = fmtAddr(p.address === '0.0.0.0' ? '127.0.0.1' : p.address === '::' ? '::1' : p.address, p.port);
      if (p.transport === 'srp') {
        const id = this.config.srp?.targetPortId;
        const ids = id ? `id_ext=${id.idExt},ioc_guid=${id.iocGuid}` : 'id_ext=<node_guid>,ioc_guid=<node_guid>';
        lines.push(`listening on srp ${fmtAddr(p.address, p.port)} (RDMA/CM)`);
        lines.push(
          `  login:     echo "${ids},dest=${fmtAddr(p.address === '0.0.0.0' ? '<address>' : p.address, p.port)}" > /sys/class/infiniband_srp/srp-<dev>-1/add_target`,
        );
        if (!id) lines.push("             (<node_guid>: /sys/class/infiniband/<dev>/node_guid of the target's device, without colons)");
        continue;
      }
      lines.push(`listening on ${p.transport} ${fmtAddr(p.address, p.port)} for ${p.targets.join(', ')}`);
      const why = this.listeners[this.portals.indexOf(p)]?.waiting?.();
      if (why !== undefined) lines.push(`  waiting:   for an RDMA device with address ${p.address}: ${why}`);
      if (p.transport !== 'tcp') continue;
      lines.push(`  discover:  iscsiadm -m discovery -t st -p ${hp}`);
      for (const iqn of p.targets) {
        lines.push(`  login:     iscsiadm -m node -T ${iqn} -p ${hp} --login`);
        const luns = this.resolved.filter((r) => r.iqn === iqn).map((r) => r.lun.lun);
        for (const lun of [...new Set(luns)].sort((a, b) => a - b)) lines.push(`  libiscsi:  iscsi://${hp}/${iqn}/${lun}`);
      }
    }
    if (this.control) lines.push(`control socket ${this.control.path} (rdma-target status --socket ${this.control.path})`);
    return lines;
  }

  status(): DaemonStatus {
    const engine = this.served?.status() ?? { sessions: [], counters: {} };
    return {
      version: this.opts.version ?? '0.0.0',
      pid: process.pid,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      state: this.state,
      portals: this.portals.map(({ transport, address, port, targets }) => ({ transport, address, port, targets })),
      targets: this.config.targets.map((t) => ({
        iqn: t.iqn,
        tpgs: t.tpgs.map((g) => ({
          tag: g.tag,
          demoMode: g.attributes.generateNodeAcls,
          authentication: g.attributes.authentication,
          acls: g.acls.map((a) => a.initiator),
          luns: this.resolved
            .filter((r) => r.iqn === t.iqn && r.tpgTag === g.tag)
            .map((r) => {
              const lun: DaemonStatus['targets'][0]['tpgs'][0]['luns'][0] = {
                lun: r.lun.lun,
                backstore: r.storeName,
                type: r.store.type,
                sizeBytes: r.backstore.blockCount * r.backstore.blockSize,
                blockSize: r.backstore.blockSize,
                readOnly: r.backstore.readOnly,
                thin: r.store.thin,
              };
              if (r.store.path) lun.path = r.store.path;
              return lun;
            }),
        })),
      })),
      sessions: engine.sessions.map(({ io: _io, ...s }) => s),
      counters: engine.counters,
      ...(engine.rdmaDevices ? { rdmaDevices: engine.rdmaDevices } : {}),
    };
  }

  /**
   * Raw command counters (`stats` control command, `rdma-target top`, the Prometheus
   * endpoint): per logical unit (one per backstore, whichever LUNs export it) and per
   * session, with a monotonic time so a reader computes rates from two samples.
   */
  stats(): DaemonStats {
    const engine = this.served?.status() ?? { sessions: [], counters: {} };
    const luns: DaemonStats['luns'] = [];
    const byStore = new Map<string, DaemonStats['luns'][0]>();
    for (const r of this.resolved) {
      const mapping = r.iqn === SRP_LUN_OWNER ? `srp/lun${r.lun.lun}` : `${r.iqn}/tpg${r.tpgTag}/lun${r.lun.lun}`;
      const have = byStore.get(r.storeName);
      if (have) {
        have.luns.push(mapping);
        continue;
      }
      const s = this.served?.luStats?.(r);
      const st = s?.stats;
      const row = {
        backstore: r.storeName,
        type: r.store.type,
        luns: [mapping],
        queued: s?.queued ?? 0,
        io: st?.total().toJSON(),
        transports: st ? TRANSPORTS.flatMap((t, i) => (this.opts.engine.transports.has(t) ? [{ transport: t, io: st.of(i).toJSON() }] : [])) : [],
      };
      byStore.set(r.storeName, row);
      luns.push(row);
    }
    const portalConnections: Record<string, number> = {};
    for (const s of engine.sessions)
      for (const c of s.connections ?? []) {
        const k = `${c.transport ?? 'unknown'}|${c.local ?? ''}`;
        portalConnections[k] = (portalConnections[k] ?? 0) + 1;
      }
    return {
      time: performance.now() / 1000,
      latencyBounds: [...LATENCY_BOUNDS],
      kinds: [...IO_KINDS],
      luns,
      sessions: engine.sessions.map((s) => ({
        initiator: s.initiator,
        target: s.target,
        transport: s.connections?.[0]?.transport ?? 'unknown',
        ...(s.isid !== undefined ? { isid: s.isid } : {}),
        queued: typeof s.tasks === 'number' ? s.tasks : 0,
        io: (s.io as IoStats | undefined)?.toJSON(),
      })),
      counters: engine.counters,
      initiators: engine.initiators ?? [],
      portals: this.portals.map(({ transport, address, port }) => ({ transport, address, port })),
      portalConnections,
    };
  }

  /** One control request (lib/target/control.ts turns both request forms into method + params). */
  private async handleControl(method: string, params: Record<string, unknown>): Promise<unknown> {
    const edit = EDIT_METHODS[method];
    if (edit) return this.change(() => this.edit(method, params));
    switch (method) {
      case 'status':
        return this.status();
      case 'stats':
        return this.stats();
      case 'version':
        return { version: this.opts.version ?? '0.0.0' };
      case 'config.get':
        return configDocument(this.config);
      case 'ls':
        return { tree: lsTree(configDocument(this.config) as never, this.served?.status().sessions ?? []) };
      case 'backstore.list':
        return configDocument(this.config).backstores;
      case 'target.list':
        return configDocument(this.config).targets;
      case 'tpg.get': {
        const doc = configDocument(this.config) as unknown as { targets: Array<{ iqn: string; tpgs: Array<{ tag: number }> }> };
        const t = doc.targets.find((x) => x.iqn === params.target);
        if (!t) throw new ParamError('target', `no target ${JSON.stringify(params.target)}`);
        const g = t.tpgs.find((x) => x.tag === (params.tpg ?? 1));
        if (!g) throw new ParamError('tpg', `${t.iqn} has no TPG ${JSON.stringify(params.tpg ?? 1)}`);
        return g;
      }
      case 'srp.get':
        return configDocument(this.config).srp ?? null;
      case 'session.list':
        return this.served?.status().sessions ?? [];
      case 'add-lun':
        return this.change(async () => this.saved(await this.addLun(params)));
      case 'lun-resize':
      case 'lun.resize':
        return this.change(async () => this.saved(await this.resizeLun(params)));
      case 'reload':
        if (params.force !== undefined && typeof params.force !== 'boolean') throw new ParamError('force', 'must be true or false');
        return this.reload({ force: params.force === true });
      case 'restore':
        if (typeof params.file !== 'string' || !params.file.startsWith('/')) throw new ParamError('file', 'must be an absolute path');
        return this.restore(params.file);
      case 'save':
        if (params.file !== undefined && (typeof params.file !== 'string' || !params.file.startsWith('/')))
          throw new ParamError('file', 'must be an absolute path');
        return this.change(() => this.save(params.file as string | undefined));
      case 'help':
      case 'rpc.methods':
        return { commands: this.methods() };
      default:
        throw fieldError('method', `unknown command ${JSON.stringify(method)}; try "help"`, -32601);
    }
  }

  /** Every method with its parameters (help, rpc.methods, the CLI's help text). */
  methods(): string[] {
    return [
      'status',
      'stats',
      'version',
      'ls',
      'config.get',
      'backstore.list',
      'target.list',
      'tpg.get {target, tpg?}',
      'srp.get',
      'session.list',
      ...Object.entries(EDIT_METHODS).map(([name, m]) => `${name} ${m.params}`),
      'lun.resize {target, tpg?, lun, size?}',
      'add-lun {target, tpg?, lun, backstore} (older name of lun.create)',
      'reload {force?}',
      'save {file?}',
      'restore {file}',
      'help',
    ];
  }

  /**
   * A model method: the running configuration as a document, edited, validated by the
   * configuration file's own validator (so errors name its fields), applied as a
   * difference, and written back.
   */
  private async edit(method: string, params: Record<string, unknown>): Promise<unknown> {
    if (this.state !== 'running') throw new Error('the daemon is stopping');
    const spec = EDIT_METHODS[method]!;
    if (params.force !== undefined && typeof params.force !== 'boolean')
      throw new ParamError('force', `must be true or false, got ${JSON.stringify(params.force)}`);
    // --listen replaces every TCP portal for this run (and again at each reload): a TCP portal
    // change could be neither saved nor kept, so it is refused; iser portals are unaffected.
    if (this.opts.listenOverride && (method === 'portal.create' || method === 'portal.delete') && (params.transport ?? 'tcp') === 'tcp')
      throw new ParamError(
        'transport',
        `TCP portals come from --listen ${this.opts.listenOverride} for this run (a reload or restart with it serves only that), so they cannot change here; edit the file's portals and restart without --listen`,
        -32003,
      );
    const doc = configDocument(this.config) as unknown as Parameters<typeof spec.edit>[0];
    const extra = spec.edit(doc, params) as object | undefined;
    const v = validateConfig(doc, { allowEphemeralPort: true, defaults: { stateDir: this.config.stateDir } });
    if (!v.config) throw invalid(v.errors);
    const r = await this.applyConfig(v.config, { force: spec.force === true && params.force === true });
    return this.saved({ ...(extra ?? {}), ...r });
  }

  /** Runs one configuration change after those before it (they never interleave). */
  private change<T>(f: () => Promise<T>): Promise<T> {
    const run = this.changes.then(f);
    this.changes = run.catch(() => {});
    return run;
  }

  /** Writes the running configuration to `file` or the configuration file. */
  private async save(file?: string): Promise<{ file: string; backup?: string }> {
    if (!this.opts.save) throw new Error('this daemon cannot save its configuration');
    const r = await this.opts.save(this.config, file);
    if (!r) throw new Error('file: this daemon serves the embedded default; name a file to save to');
    return r;
  }

  /** A change's result, once the configuration that now runs is written back (when there is a file). */
  private async saved<T extends object>(result: T): Promise<T & { saved?: string }> {
    if (!this.opts.save) return result;
    let r: { file: string } | undefined;
    try {
      r = await this.opts.save(this.config);
    } catch (e) {
      // The change is live; the operator must know the file does not hold it.
      throw new Error(`applied, but the configuration could not be saved: ${(e as Error).message}`, { cause: e });
    }
    return r ? { ...result, saved: r.file } : result;
  }

  /**
   * Grows a LUN (RAM and file: to `size`; file and block without a size: to what the file or
   * device holds now). Every I_T nexus of its LU gets CAPACITY DATA HAS CHANGED; a size
   * below the current one is refused, since it would cut off written data.
   */
  private async resizeLun(req: {
    [k: string]: unknown;
  }): Promise<{ target: string; tpg?: number; lun: number; backstore: string; previousBytes: number; sizeBytes: number }> {
    if (this.state !== 'running') throw new Error('the daemon is stopping');
    if (!this.served?.resizeLun) throw new Error('this engine cannot resize LUNs');
    const srp = req.target === SRP_LUN_OWNER;
    if (!srp && !this.config.targets.some((t) => t.iqn === req.target))
      throw new Error(
        `target: no target ${JSON.stringify(req.target)} (have: ${[...this.config.targets.map((t) => t.iqn), ...(this.config.srp ? [SRP_LUN_OWNER] : [])].join(', ')})`,
      );
    const tag = srp ? 0 : (req.tpg ?? 1);
    const r = this.resolved.find((x) => x.iqn === req.target && x.tpgTag === tag && x.lun.lun === req.lun);
    if (!r) throw new Error(`lun: ${srp ? 'srp' : `${String(req.target)} tpg ${String(tag)}`} serves no LUN ${JSON.stringify(req.lun)}`);
    const bs = r.backstore.blockSize;
    const previousBytes = r.backstore.blockCount * bs;
    let bytes: number | undefined;
    if (req.size !== undefined) {
      bytes = parseSize(req.size);
      if (bytes === undefined)
        throw new Error(`size: must be a positive size in bytes or with a suffix such as "512M", "1GiB", got ${JSON.stringify(req.size)}`);
      if (r.store.type === 'block') throw new Error('size: a block backstore takes its size from the device; grow the device, then resize without a size');
      if (bytes % bs !== 0) throw new Error(`size: must be a multiple of blockSize ${bs}, got ${bytes}`);
      if (bytes < previousBytes) throw new Error(`size: must be at least the current ${previousBytes} bytes (shrinking would cut off data), got ${bytes}`);
    } else if (r.store.type === 'ram') throw new Error('size: is required for a ram LUN');
    if (r.backstore.readOnly && bytes !== undefined && bytes !== previousBytes) throw new Error(`size: the LUN is read-only; it cannot grow`);
    if (bytes !== previousBytes) await this.served.resizeLun(r, bytes);
    const sizeBytes = r.backstore.blockCount * bs;
    // What is saved is what runs: the backstore's size in the configuration follows (a block
    // device's size is the device's own; a file's is written when the file had one or it was given).
    if (r.store.type !== 'block' && (r.store.size !== undefined || bytes !== undefined)) {
      for (const store of this.storesOf(r)) store.size = sizeBytes;
    }
    if (sizeBytes !== previousBytes) this.log.info(`LUN ${r.lun.lun} (${r.storeName}) of ${r.iqn}: ${previousBytes} → ${sizeBytes} bytes`);
    return { target: r.iqn, ...(srp ? {} : { tpg: r.tpgTag }), lun: r.lun.lun, backstore: r.storeName, previousBytes, sizeBytes };
  }

  /** Every object of the running configuration that describes `r`'s backstore (one named entry, or the inline one). */
  private storesOf(r: ResolvedLun): BackstoreConfig[] {
    const out = new Set<BackstoreConfig>([r.store]);
    if (typeof r.lun.backstore === 'string') {
      const b = this.config.backstores.find((x) => x.name === r.lun.backstore);
      if (b) out.add(b);
      for (const x of this.resolved) if (x.backstore === r.backstore) out.add(x.store);
    } else {
      const luns =
        r.iqn === SRP_LUN_OWNER ? this.config.srp?.luns : this.config.targets.find((t) => t.iqn === r.iqn)?.tpgs.find((g) => g.tag === r.tpgTag)?.luns;
      const l = luns?.find((x) => x.lun === r.lun.lun);
      if (l && typeof l.backstore !== 'string') out.add(l.backstore);
    }
    return [...out];
  }

  /**
   * Exports one more LUN while running: validated as if it had been in the file (so errors
   * name the same field paths), opened, then handed to the engine. Sessions see it on their
   * next REPORT LUNS (the engine raises REPORTED LUNS DATA HAS CHANGED). The control
   * command writes the configuration back afterwards (saved()).
   */
  private async addLun(req: { [k: string]: unknown }): Promise<{ target: string; tpg: number; lun: number; backstore: string; sizeBytes: number }> {
    if (this.state !== 'running') throw new Error('the daemon is stopping');
    if (!this.served?.addLun) throw new Error('this engine cannot add LUNs at run time');
    const ti = this.config.targets.findIndex((t) => t.iqn === req.target);
    if (ti < 0) throw new Error(`target: no target ${JSON.stringify(req.target)} (have: ${this.config.targets.map((t) => t.iqn).join(', ')})`);
    const tag = req.tpg ?? 1;
    const gi = this.config.targets[ti]!.tpgs.findIndex((g) => g.tag === tag);
    if (gi < 0) throw new Error(`tpg: ${JSON.stringify(req.target)} has no TPG with tag ${JSON.stringify(tag)}`);
    const doc = configDocument(this.config) as unknown as { targets: Array<{ tpgs: Array<{ luns: unknown[] }> }> };
    const li = doc.targets[ti]!.tpgs[gi]!.luns.push({ lun: req.lun, backstore: req.backstore }) - 1;
    const v = validateConfig(doc, { allowEphemeralPort: true, defaults: { stateDir: this.config.stateDir } });
    if (!v.config) throw new Error(v.errors.join('; '));
    const field = `targets[${ti}].tpgs[${gi}].luns[${li}]`;
    const t = v.config.targets[ti]!;
    const g = t.tpgs[gi]!;
    const lun = g.luns[li]!;
    const store = resolveBackstore(v.config, lun);
    const storeName = typeof lun.backstore === 'string' ? lun.backstore : `${t.iqn}/tpg${g.tag}/lun${lun.lun}`;
    let backstore = typeof lun.backstore === 'string' ? this.opened.find((o) => o.name === lun.backstore)?.backstore : undefined;
    if (!backstore) {
      const bi = v.config.backstores.findIndex((b) => b.name === lun.backstore);
      backstore = await this.openOne(store, bi >= 0 ? `backstores[${bi}]` : `${field}.backstore`, storeName);
    }
    const r: ResolvedLun = { iqn: t.iqn, tpgTag: g.tag, lun, store, storeName, backstore };
    await this.served.addLun(r);
    this.resolved.push(r);
    (this.config as { targets: Config['targets'] }).targets = v.config.targets;
    (this.config as { backstores: Config['backstores'] }).backstores = v.config.backstores;
    this.log.info(`added LUN ${lun.lun} (${storeName}) to ${t.iqn} tpg ${g.tag}`);
    return { target: t.iqn, tpg: g.tag, lun: lun.lun, backstore: storeName, sizeBytes: backstore.blockCount * backstore.blockSize };
  }

  /**
   * Re-reads the configuration and applies it as a difference (applyConfig): unchanged
   * objects and their sessions are untouched. A file that fails validation throws before
   * anything is compared, so nothing changes.
   */
  reload(opts: { force?: boolean } = {}): Promise<unknown> {
    return this.change(async () => {
      if (!this.opts.reloadSource) throw new Error('this daemon has no configuration file to reload (embedded default)');
      return this.applyConfig(await this.opts.reloadSource(), opts);
    });
  }

  /**
   * `restore FILE`: applies FILE as `reload` applies the configuration file, then writes it
   * as the configuration file (the replaced version goes to backup/), so what is saved stays what runs.
   */
  restore(file: string): Promise<unknown> {
    return this.change(async () => {
      if (!this.opts.reloadSource) throw new Error('this daemon cannot read configuration files');
      const r = await this.applyConfig(await this.opts.reloadSource(file));
      return this.saved({ ...r, restored: file });
    });
  }

  /**
   * Makes the running target match `next`, touching only what differs (docs/control.md):
   * removed TPGs and LUNs go first (a LUN a session can reach is refused unless `force`),
   * then changed TPG settings (ACLs, CHAP, mapped LUNs, attributes, parameters: for new
   * logins; only the sessions of a removed ACL or changed CHAP end), new TPGs and LUNs,
   * then listeners no TPG wants any more are closed and new ones opened. Everything that
   * can be refused is checked before anything changes.
   */
  private async applyConfig(
    next: Config,
    opts: { force?: boolean } = {},
  ): Promise<{
    added: unknown[];
    removed: unknown[];
    changedTpgs: string[];
    endedSessions: number;
    portalsOpened: string[];
    portalsClosed: string[];
    portalsSkipped?: string[];
  }> {
    if (this.state !== 'running') throw new Error('the daemon is stopping');
    const served = this.served!;
    const cur = this.config;
    const restart: string[] = [];
    if (next.stateDir !== cur.stateDir) restart.push('stateDir: changes with a restart');
    if (!isDeepStrictEqual(next.control, cur.control)) restart.push('control: changes with a restart');
    const bufferMiB = (c: Config) => c.rdma?.bufferMiB ?? RDMA_BUFFER_MIB_DEFAULT;
    if (bufferMiB(next) !== bufferMiB(cur)) restart.push('rdma.bufferMiB: changes with a restart');
    for (const [i, b] of cur.backstores.entries()) {
      const nb = next.backstores.find((x) => x.name === b.name);
      if (nb && !isDeepStrictEqual(nb, b) && this.opened.some((o) => o.name === b.name))
        restart.push(`backstores[${i}]: backstore ${b.name} is in use; delete its LUNs before changing it (or lun.resize to grow it)`);
    }
    if (restart.length) throw fieldError(restart[0]!.split(':')[0]!, `not applied, these changes need a restart: ${restart.join('; ')}`, -32003);

    const tpgOf = (c: Config, iqn: string, tag: number) => c.targets.find((t) => t.iqn === iqn)?.tpgs.find((g) => g.tag === tag);
    // LUNs the next configuration serves (enabled TPGs), by target/tpg/lun.
    const want = new Map<string, { iqn: string; tag: number; lun: Config['targets'][0]['tpgs'][0]['luns'][0]; field: string }>();
    for (const [ti, t] of next.targets.entries())
      for (const [gi, g] of t.tpgs.entries())
        if (g.enable)
          for (const [li, l] of g.luns.entries())
            want.set(`${t.iqn}\u0000${g.tag}\u0000${l.lun}`, { iqn: t.iqn, tag: g.tag, lun: l, field: `targets[${ti}].tpgs[${gi}].luns[${li}]` });
    // SRP LUNs (an enabled section) under the same key scheme: owner "srp", tag 0.
    if (next.srp?.enable)
      for (const [li, l] of next.srp.luns.entries())
        want.set(`${SRP_LUN_OWNER}\u0000${0}\u0000${l.lun}`, { iqn: SRP_LUN_OWNER, tag: 0, lun: l, field: `srp.luns[${li}]` });
    const keyOf = (r: ResolvedLun) => `${r.iqn}\u0000${r.tpgTag}\u0000${r.lun.lun}`;
    const iscsiLuns = this.resolved;
    const removing = iscsiLuns.filter((r) => {
      const w = want.get(keyOf(r));
      return !w || !isDeepStrictEqual(w.lun, r.lun);
    });
    const curByKey = new Map(iscsiLuns.map((r) => [keyOf(r), r]));
    const adding = [...want.entries()].filter(([k, w]) => {
      const r = curByKey.get(k);
      return !r || !isDeepStrictEqual(w.lun, r.lun);
    });
    const removedTpgs: Array<{ iqn: string; tag: number }> = [];
    for (const t of cur.targets) for (const g of t.tpgs) if (!tpgOf(next, t.iqn, g.tag)) removedTpgs.push({ iqn: t.iqn, tag: g.tag });
    const strip = (g: Config['targets'][0]['tpgs'][0] | undefined) => (g ? { ...g, luns: undefined } : undefined);
    const changedTpgs: Array<{ iqn: string; g: Config['targets'][0]['tpgs'][0] }> = [];
    for (const t of next.targets)
      for (const g of t.tpgs) if (!isDeepStrictEqual(strip(g), strip(tpgOf(cur, t.iqn, g.tag)))) changedTpgs.push({ iqn: t.iqn, g });
    const srpSettings = (c: Config['srp']) => (c ? { ...c, luns: undefined } : undefined);
    const srpChanged = !isDeepStrictEqual(srpSettings(next.srp), srpSettings(cur.srp));
    const wanted = this.wantedPortals(next);
    const closing = this.listenerKeys.filter((k) => !wanted.has(k));
    const opening = [...wanted.keys()].filter((k) => !this.listenerKeys.includes(k));

    const need = (ok: unknown, what: string) => {
      if (!ok) throw new Error(`this engine cannot ${what} at run time`);
    };
    if (removing.length) need(served.removeLun, 'remove LUNs');
    if (adding.length) need(served.addLun, 'add LUNs');
    if (changedTpgs.length) need(served.setTpg, 'change TPGs');
    if (removedTpgs.length) need(served.removeTpg, 'remove TPGs');
    if (srpChanged) need(served.setSrp, 'change the SRP section');
    if (!isDeepStrictEqual(next.discoveryAuth, cur.discoveryAuth)) need(served.setDiscoveryAuth, 'change discovery authentication');
    if (!opts.force) {
      for (const r of removing) {
        const n = served.sessionsSeeing?.(r) ?? 0;
        const w = want.get(keyOf(r));
        if (n > 0)
          throw new ParamError(
            this.lunField(r),
            `${lunName(r)} is in use by ${n} session${n === 1 ? '' : 's'}; ${w ? 'changing' : 'removing'} it needs force`,
            -32002,
          );
      }
    }

    // Open what the new LUNs need first: a backstore that cannot be opened changes nothing.
    const fresh: Array<{ iqn: string; tag: number; lun: ResolvedLun['lun']; store: BackstoreConfig; storeName: string; backstore: Backstore }> = [];
    const openedHere: typeof this.opened = [];
    const portalsOpened: string[] = [];
    try {
      for (const [, w] of adding) {
        const store = resolveBackstore(next, w.lun);
        const named = typeof w.lun.backstore === 'string';
        const storeName = named ? (w.lun.backstore as string) : w.iqn === SRP_LUN_OWNER ? `srp/lun${w.lun.lun}` : `${w.iqn}/tpg${w.tag}/lun${w.lun.lun}`;
        let backstore = named ? this.opened.find((o) => o.name === storeName)?.backstore : undefined;
        if (!backstore) {
          const bi = next.backstores.findIndex((b) => b.name === storeName);
          backstore = await this.openOne(store, bi >= 0 ? `backstores[${bi}]` : `${w.field}.backstore`, storeName);
          openedHere.push(this.opened.at(-1)!);
        }
        fresh.push({ iqn: w.iqn, tag: w.tag, lun: w.lun, store, storeName, backstore });
      }
      // New listeners next: a port in use also changes nothing.
      for (const k of opening) {
        await this.bindOne(k, wanted.get(k)!);
        const p = this.portals.at(-1)!;
        portalsOpened.push(`${p.transport} ${fmtAddr(p.address, p.port)}`);
      }
    } catch (e) {
      for (const k of opening) {
        const i = this.listenerKeys.indexOf(k);
        if (i < 0) continue;
        const l = this.listeners[i]!;
        this.listeners.splice(i, 1);
        this.listenerKeys.splice(i, 1);
        this.portals.splice(i, 1);
        await l.close(true).catch(() => {});
      }
      for (const o of openedHere) await this.closeOpened(o);
      throw Object.assign(e as Error, { code: -32000 });
    }
    for (const p of portalsOpened) this.log.info(`opened portal ${p}`);

    let endedSessions = 0;
    const removed: unknown[] = [];
    const retire = async (r: ResolvedLun) => {
      const lastUse = !this.resolved.some((x) => x !== r && x.backstore === r.backstore);
      await served.removeLun!(r, { lastUse });
      this.resolved.splice(this.resolved.indexOf(r), 1);
      if (lastUse && !fresh.some((f) => f.backstore === r.backstore)) {
        const o = this.opened.find((x) => x.backstore === r.backstore);
        if (o) await this.closeOpened(o);
      }
      removed.push({ target: r.iqn, ...(r.iqn === SRP_LUN_OWNER ? {} : { tpg: r.tpgTag }), lun: r.lun.lun, backstore: r.storeName });
      this.log.info(`removed LUN ${r.lun.lun} (${r.storeName}) from ${r.iqn === SRP_LUN_OWNER ? 'srp' : `${r.iqn} tpg ${r.tpgTag}`}`);
    };
    for (const r of removing) await retire(r);
    for (const t of removedTpgs) {
      endedSessions += served.removeTpg!(t.iqn, t.tag);
      this.log.info(`removed ${t.iqn} tpg ${t.tag}`);
    }
    for (const c of changedTpgs) endedSessions += served.setTpg!(c.iqn, c.g, tpgOf(cur, c.iqn, c.g.tag));
    if (srpChanged) {
      endedSessions += served.setSrp!(next.srp, cur.srp);
      this.log.info(`srp: settings changed${next.srp?.enable ? '' : next.srp ? ' (disabled)' : ' (section removed)'}`);
    }
    const added: unknown[] = [];
    for (const f of fresh) {
      const r: ResolvedLun = { iqn: f.iqn, tpgTag: f.tag, lun: f.lun, store: f.store, storeName: f.storeName, backstore: f.backstore };
      await served.addLun!(r);
      this.resolved.push(r);
      added.push({
        target: f.iqn,
        ...(f.iqn === SRP_LUN_OWNER ? {} : { tpg: f.tag }),
        lun: f.lun.lun,
        backstore: f.storeName,
        sizeBytes: f.backstore.blockCount * f.backstore.blockSize,
      });
      this.log.info(`added LUN ${f.lun.lun} (${f.storeName}) to ${f.iqn === SRP_LUN_OWNER ? 'srp' : `${f.iqn} tpg ${f.tag}`}`);
    }
    if (!isDeepStrictEqual(next.discoveryAuth, cur.discoveryAuth)) served.setDiscoveryAuth!(next.discoveryAuth);
    if (!isDeepStrictEqual(next.rdma, cur.rdma)) served.setRdma?.(next.rdma);
    const portalsClosed: string[] = [];
    for (const k of closing) {
      const i = this.listenerKeys.indexOf(k);
      const l = this.listeners[i]!;
      const p = this.portals[i]!;
      this.listeners.splice(i, 1);
      this.listenerKeys.splice(i, 1);
      this.portals.splice(i, 1);
      // Only this listener and the connections that came through it.
      await l.close(true);
      portalsClosed.push(`${p.transport} ${fmtAddr(p.address, p.port)}`);
      this.log.info(`closed portal ${p.transport} ${fmtAddr(p.address, p.port)}`);
    }
    for (const [k, w] of wanted) {
      const i = this.listenerKeys.indexOf(k);
      if (i >= 0) this.portals[i]!.targets = w.targets;
    }
    // A portal this build cannot serve (iser without RDMA) stays in the configuration, unserved: say so.
    const portalsSkipped: string[] = [];
    for (const t of next.targets)
      for (const g of t.tpgs)
        for (const p of g.enable ? g.portals : [])
          if (!this.opts.engine.transports.has(p.transport) && !tpgOf(cur, t.iqn, g.tag)?.portals.some((q) => isDeepStrictEqual(q, p)))
            portalsSkipped.push(`${p.transport} ${fmtAddr(p.address, p.port)}: no ${p.transport} transport here (RDMA unavailable); saved, not served`);
    if (next.srp?.enable && !this.opts.engine.transports.has('srp'))
      for (const p of next.srp.portals)
        if (!(cur.srp?.enable && cur.srp.portals.some((q) => isDeepStrictEqual(q, p))))
          portalsSkipped.push(`srp ${fmtAddr(p.address, p.port)}: no srp transport here (RDMA unavailable); saved, not served`);
    Object.assign(this.config as Config, { targets: next.targets, backstores: next.backstores, discoveryAuth: next.discoveryAuth });
    if (next.srp) (this.config as Config).srp = next.srp;
    else delete (this.config as Config).srp;
    return {
      added,
      removed,
      changedTpgs: [...changedTpgs.map((c) => `${c.iqn} tpg ${c.g.tag}`), ...(srpChanged ? ['srp'] : [])],
      endedSessions,
      portalsOpened,
      portalsClosed,
      ...(portalsSkipped.length ? { portalsSkipped } : {}),
    };
  }

  /** Where a served LUN is in the running configuration. */
  private lunField(r: ResolvedLun): string {
    if (r.iqn === SRP_LUN_OWNER) return `srp.luns[${this.config.srp?.luns.findIndex((l) => l.lun === r.lun.lun) ?? -1}]`;
    const ti = this.config.targets.findIndex((t) => t.iqn === r.iqn);
    const gi = this.config.targets[ti]?.tpgs.findIndex((g) => g.tag === r.tpgTag) ?? -1;
    const li = this.config.targets[ti]?.tpgs[gi]?.luns.findIndex((l) => l.lun === r.lun.lun) ?? -1;
    return `targets[${ti}].tpgs[${gi}].luns[${li}]`;
  }

  private async closeOpened(o: Daemon['opened'][0]): Promise<void> {
    const i = this.opened.indexOf(o);
    if (i >= 0) this.opened.splice(i, 1);
    try {
      if (!o.backstore.readOnly) await o.backstore.flush();
      await o.backstore.close();
    } catch (e) {
      this.log.error(`closing ${o.name}: ${(e as Error).message}`);
    }
  }

  /**
   * Stops in order: no new connections, sessions asked to log out and given `graceMs` to
   * drain, then backstores flushed (file LUNs reach stable storage) and closed. Idempotent.
   */
  stop(graceMs = this.opts.shutdownGraceMs ?? 5000): Promise<void> {
    this.stopping ??= this.teardown(graceMs);
    return this.stopping;
  }

  private async teardown(graceMs: number): Promise<void> {
    this.state = 'stopping';
    const errors: unknown[] = [];
    const attempt = async (what: string, f: () => Promise<void>) => {
      try {
        await f();
      } catch (e) {
        errors.push(e);
        this.log.error(`${what}: ${(e as Error).message}`);
      }
    };
    // Stop accepting first, so no session starts while the others are asked to log out.
    const listeners = this.listeners.splice(0);
    this.listenerKeys.splice(0);
    const closing = listeners.map((l) =>
      l.close().catch((e: unknown) => {
        errors.push(e);
      }),
    );
    const t0 = Date.now();
    if (this.served) await attempt('iSCSI shutdown', () => this.served!.shutdown(graceMs));
    this.log.debug(`sessions closed after ${Date.now() - t0} ms`);
    // The engine dropped every connection; give the sockets a moment to finish closing, then force.
    const settled = await Promise.race([Promise.all(closing).then(() => true), delay(1000).then(() => false)]);
    if (!settled) this.log.debug('portals still had connections 1 s after the iSCSI shutdown; forcing them closed');
    if (!settled) for (const l of listeners) await attempt(`closing ${fmtAddr(l.address, l.port)}`, () => l.close(true));
    for (const o of this.opened.splice(0).reverse()) {
      await attempt(`flushing ${o.name}`, async () => {
        if (!o.backstore.readOnly) await o.backstore.flush();
      });
      await attempt(`closing ${o.name}`, () => o.backstore.close());
    }
    if (this.control) await attempt('control socket', () => this.control!.close());
    if (this.metricsServer) await attempt('metrics endpoint', () => this.metricsServer!.close());
    this.state = 'stopped';
    if (errors.length) throw errors[0];
  }
}
