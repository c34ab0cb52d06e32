// What an RDMA/CM fabric (iSER, SRP) owns for all its connections: the CM event channel,
// each device's context and PD (opened on a connection's first use of it, its attributes
// queried once and its PD given the registry's memory), the set of live connections, its
// listeners and, per listener, the connections it accepted. Close is deterministic,
// children first: connections, the CM channel, the registrations, the devices.
//
// Devices come and go (docs/architecture.md, device lifecycle). When one is removed
// (RDMA/CM DEVICE_REMOVAL on any of our ids, IBV_EVENT_DEVICE_FATAL, or the device missing
// from the monitor's listing) the fabric ends every connection on it as a transport failure
// ends one, stops the listeners bound to it, deregisters the registry's memory from its PD
// and closes the device, so the kernel can finish removing it. Listeners that have no device
// to bind to (the device is gone, none exists yet, an address moved) wait and retry at each
// scan; wildcard listeners stay: the kernel extends them to devices that appear.
import { CmEventType, RdmaCm } from './cm.js';
import { DeviceTable, sharedDeviceMonitor, type DeviceMonitor, type DeviceResources } from './device.js';
import type { CmEvent, DeviceInfo, NativeCmId } from './binding.js';
import type { MemoryRegistry } from './registry.js';
import { silentLogger, type Logger } from '../common/log.js';

export interface CmListener {
  readonly address: string;
  readonly port: number;
  /** Why the portal accepts no connection yet (it waits for an RDMA device), or undefined once it listens. */
  waiting(): string | undefined;
  /** Resolves once the portal listens: at once when it does now; never, if it is closed first. */
  whenListening(): Promise<void>;
  /** Stop listening; with `destroyConnections`, also drop the connections it accepted. */
  close(destroyConnections?: boolean): Promise<void>;
}

/** Connections of one listener, so closing it can drop just those. */
export type Accepted<C> = Set<C>;

/** What a fabric needs of its connections. */
export interface FabricConnection {
  close(abort?: boolean): void;
  /** The device went away: end now, as a transport failure. */
  lost(err: Error): void;
  readonly deviceName: string;
}

/** One listener, bound or waiting for a device that carries its address. */
interface Portal<C> {
  readonly address: string;
  readonly port: number;
  readonly onRequest: (ev: CmEvent, mine: Accepted<C>) => void;
  readonly mine: Accepted<C>;
  id: NativeCmId | undefined;
  /** Device the bound id is on (none for a wildcard address). */
  device: string | undefined;
  closed: boolean;
  /** Why the last bind failed, while the portal waits for a device. */
  waitReason: string | undefined;
  /** Resolves when the portal is next bound (a new one after each unbind). */
  listening: Promise<void>;
  bound: () => void;
}

/** One device as `status` shows it. */
export interface FabricDeviceStatus {
  name: string;
  state: 'open' | 'removing';
  connections: number;
  registeredMrs: number;
  ports: Record<string, string>;
}

export interface FabricOptions {
  /** The device monitor to follow (default: the process's). */
  monitor?: DeviceMonitor;
}

export abstract class CmFabric<C extends FabricConnection> implements Disposable {
  readonly devices: DeviceTable;
  protected readonly infos = new Map<string, DeviceInfo>();
  protected readonly connections = new Set<C>();
  protected closed = false;
  private cmChannel: RdmaCm | undefined;
  private readonly portals = new Set<Portal<C>>();
  private readonly monitor: DeviceMonitor;
  private readonly unsubscribe: () => void;
  private subscribed = false;
  private readonly ports = new Map<string, Record<string, string>>();
  /** Devices removed / appeared since start (status counters). */
  removals = 0;
  arrivals = 0;
  /** Duration of the last removal's teardown in ms (status). */
  lastRemovalMs = 0;

  constructor(
    readonly registry: MemoryRegistry,
    protected readonly log: Logger = silentLogger,
    opts: FabricOptions = {},
  ) {
    this.devices = new DeviceTable((dev, type, port) => this.onAsyncEvent(dev, type, port));
    this.monitor = opts.monitor ?? sharedDeviceMonitor();
    // The CM channel needs a device to exist (librdmacm refuses otherwise): made now when
    // one does, else when the first appears.
    this.ensureCm();
    this.unsubscribe = this.monitor.subscribe({
      added: (name) => this.deviceAdded(name),
      removed: (name) => {
        this.removeDevice(name, 'no longer listed');
        this.devices.forget(name);
      },
      scanned: () => this.retryPortals(),
    });
    this.subscribed = true;
  }

  /** The CM event channel; throws ENODEV while no RDMA device has ever been present. */
  get cm(): RdmaCm {
    const cm = this.ensureCm();
    if (!cm) {
      const e = new Error('no RDMA device present');
      (e as NodeJS.ErrnoException).code = 'ENODEV';
      throw e;
    }
    return cm;
  }

  private ensureCm(): RdmaCm | undefined {
    if (this.cmChannel || this.closed) return this.cmChannel;
    try {
      this.cmChannel = new RdmaCm();
    } catch {
      return undefined;
    }
    this.cmChannel.onDeviceEvent = (ev) => this.onCmDeviceEvent(ev);
    return this.cmChannel;
  }

  protected listenOn(address: string, port: number, onRequest: (ev: CmEvent, mine: Accepted<C>) => void): Promise<CmListener> {
    const portal: Portal<C> = {
      address,
      port,
      onRequest,
      mine: new Set(),
      id: undefined,
      device: undefined,
      closed: false,
      waitReason: undefined,
      listening: Promise.resolve(),
      bound: () => {},
    };
    this.expectBind(portal);
    try {
      this.bindPortal(portal);
    } catch (e) {
      // With no device at all, the portal waits for one; with devices, a bad address is the
      // operator's to fix now.
      if (this.monitor.devices.size > 0 && this.cmChannel) throw e;
      portal.waitReason = `no RDMA device yet (${(e as Error).message})`;
      this.log.warn(`RDMA portal ${address}:${port}: ${portal.waitReason}; listening once one appears`);
    }
    this.portals.add(portal);
    return Promise.resolve({
      address,
      port: portal.id?.localPort ?? port,
      waiting: () => (portal.id || portal.closed ? undefined : (portal.waitReason ?? 'waiting for its RDMA device')),
      whenListening: () => (portal.id ? Promise.resolve() : portal.listening),
      close: async (destroyConnections = false) => {
        portal.closed = true;
        this.portals.delete(portal);
        this.unbindPortal(portal);
        if (destroyConnections) for (const c of portal.mine) c.close(true);
      },
    });
  }

  private bindPortal(p: Portal<C>): void {
    const id = this.cm.listen(p.address, p.port, (ev) => {
      if (ev.type === CmEventType.ConnectRequest) p.onRequest(ev, p.mine);
    });
    p.id = id;
    p.device = id.deviceName ?? undefined;
    p.waitReason = undefined;
    p.bound();
  }

  /** A fresh promise for the next bind of `p`. */
  private expectBind(p: Portal<C>): void {
    p.listening = new Promise<void>((r) => (p.bound = r));
  }

  private unbindPortal(p: Portal<C>): void {
    if (!p.id) return;
    this.expectBind(p);
    try {
      this.cmChannel?.destroy(p.id);
    } catch {
      /* gone */
    }
    p.id = undefined;
    p.device = undefined;
  }

  /** Binds the portals that wait for a device; quiet when it still fails. */
  private retryPortals(): void {
    if (this.closed) return;
    for (const p of this.portals) {
      if (p.id || p.closed) continue;
      try {
        this.bindPortal(p);
        this.log.info(`RDMA portal ${p.address}:${p.port} listening again${p.device ? ` on ${p.device}` : ''}`);
      } catch {
        /* not yet */
      }
    }
  }

  protected track(c: C, mine: Accepted<C>): void {
    this.connections.add(c);
    mine.add(c);
  }

  protected untrack(c: C, mine: Accepted<C>): void {
    this.connections.delete(c);
    mine.delete(c);
  }

  /** The device's resources and attributes, opened on first use. */
  protected device(name: string): { info: DeviceInfo; res: DeviceResources } {
    const res = this.devices.get(name);
    let info = this.infos.get(name);
    if (!info) {
      info = res.context.query();
      this.infos.set(name, info);
      this.registry.attach(res.pd);
    }
    return { info, res };
  }

  private deviceAdded(name: string): void {
    // Devices present when the fabric starts are not arrivals.
    if (this.subscribed) {
      this.arrivals++;
      this.log.info(`RDMA device ${name} present`);
    }
    this.ensureCm();
  }

  private onAsyncEvent(dev: string, type: string, port: number): void {
    // ibv_event_type_str(IBV_EVENT_DEVICE_FATAL), as the binding reports it.
    if (type === 'local catastrophic error') {
      this.removeDevice(dev, type);
      return;
    }
    if (port) {
      const ports = this.ports.get(dev) ?? {};
      if (type === 'port error') ports[port] = 'DOWN';
      else if (type === 'port active') ports[port] = 'ACTIVE';
      this.ports.set(dev, ports);
    }
    this.log.warn(`RDMA device ${dev} port ${port}: ${type}`);
    // A port that came back may carry an address a waiting portal wants.
    if (type === 'port active') this.retryPortals();
  }

  private onCmDeviceEvent(ev: CmEvent): void {
    if (ev.type === CmEventType.DeviceRemoval) {
      if (ev.deviceName) this.removeDevice(ev.deviceName, ev.type);
      return;
    }
    // ADDR_CHANGE: the address a bound listener uses moved; rebind it where it is now.
    for (const p of this.portals) {
      if (p.id && p.id === ev.id) {
        this.log.warn(`RDMA portal ${p.address}:${p.port}: address changed; rebinding`);
        this.unbindPortal(p);
      }
    }
    this.retryPortals();
  }

  /**
   * Releases everything this fabric holds on `name`, children first: its connections (each
   * as a transport failure: QP, CQ, CM id, its slot MRs), the listeners bound to it, the
   * registry's MRs on its PD, the PD and the context. Idempotent; synchronous.
   */
  removeDevice(name: string, why: string): void {
    if (this.closed) return;
    const wasOpen = this.devices.peek(name) !== undefined;
    const t0 = performance.now();
    let ended = 0;
    const err = new Error(`RDMA device ${name} removed (${why})`);
    for (const c of [...this.connections]) {
      if (c.deviceName !== name) continue;
      ended++;
      try {
        c.lost(err);
      } catch (e) {
        this.log.warn(`RDMA device ${name}: ending a connection failed: ${(e as Error).message}`);
      }
      this.connections.delete(c);
    }
    let paused = 0;
    for (const p of this.portals) {
      if (p.id && p.device === name) {
        this.unbindPortal(p);
        paused++;
      }
    }
    const res = this.devices.peek(name);
    if (res) this.registry.detach(res.pd);
    this.devices.remove(name);
    this.infos.delete(name);
    this.ports.delete(name);
    if (!wasOpen && ended === 0 && paused === 0) return;
    this.removals++;
    this.lastRemovalMs = performance.now() - t0;
    this.log.warn(
      `RDMA device ${name} removed (${why}): ${ended} connection(s) ended, ${paused} listener(s) waiting, device released in ${this.lastRemovalMs.toFixed(1)} ms`,
    );
    // librdmacm closes its context at a listing made after the kernel stopped listing the
    // device: list fast until then.
    this.monitor.hurry();
  }

  /** Devices this fabric holds or is letting go of. */
  deviceStatus(): FabricDeviceStatus[] {
    const out: FabricDeviceStatus[] = [];
    const names = new Set([...this.devices.names(), ...[...this.connections].map((c) => c.deviceName)]);
    for (const name of names) {
      const res = this.devices.peek(name);
      out.push({
        name,
        state: this.devices.isRemoving(name) ? 'removing' : 'open',
        connections: [...this.connections].filter((c) => c.deviceName === name).length,
        registeredMrs: res ? this.registry.mrCount(res.pd) : 0,
        ports: { ...(this.ports.get(name) ?? {}) },
      });
    }
    return out;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    for (const c of this.connections) c.close(true);
    this.connections.clear();
    for (const p of this.portals) p.closed = true;
    this.portals.clear();
    this.cmChannel?.close();
    for (const name of this.devices.names()) {
      const res = this.devices.peek(name);
      if (res) this.registry.detach(res.pd);
    }
    this.devices.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
