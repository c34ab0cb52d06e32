// Per-device resources shared by every connection on that device: the context (async
// events) and one protection domain. Connections' CM ids name their device; QPs need a PD
// on that same context. Devices come and go (a NIC reset, a driver reload, `rdma link del`):
// DeviceMonitor follows the set of devices present, DeviceTable knows which are open, which
// were removed and are still being torn down by the kernel (docs/architecture.md, device
// lifecycle).
import { native, type NativeContext, type NativePd } from './binding.js';

export class DeviceResources implements Disposable {
  readonly context: NativeContext;
  readonly pd: NativePd;

  constructor(
    readonly name: string,
    onAsyncEvent: (type: string, port: number) => void = () => {},
  ) {
    this.context = new (native().Context)(name, onAsyncEvent);
    try {
      this.pd = new (native().ProtectionDomain)(this.context);
    } catch (e) {
      this.context.close();
      throw e;
    }
  }

  close(): void {
    // The context closes its children (PD, MRs, CQs, QPs on them) first.
    this.context.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Where a device is in its life, as one fabric sees it:
 * absent → present (listed) → open (context and PD held) → removing (torn down; the kernel
 * still lists it while it finishes) → absent. A device that is removing is never reopened:
 * a context opened then would hold the kernel's removal up again.
 */
export const enum DeviceState {
  Absent = 0,
  Present = 1,
  Open = 2,
  Removing = 3,
}

/** Opens each device once, on first use by name; forgets it when it is removed. */
export class DeviceTable implements Disposable {
  private readonly devices = new Map<string, DeviceResources>();
  private readonly removing = new Set<string>();
  constructor(
    private readonly onAsyncEvent?: (device: string, type: string, port: number) => void,
    private readonly open: (name: string, onAsyncEvent: (type: string, port: number) => void) => DeviceResources = (n, cb) => new DeviceResources(n, cb),
  ) {}

  get(name: string): DeviceResources {
    let d = this.devices.get(name);
    if (!d) {
      if (this.removing.has(name)) {
        const e = new Error(`RDMA device ${name} is being removed`);
        (e as NodeJS.ErrnoException).code = 'ENODEV';
        throw e;
      }
      d = this.open(name, (type, port) => this.onAsyncEvent?.(name, type, port));
      this.devices.set(name, d);
    }
    return d;
  }

  /** The open device's resources, without opening it. */
  peek(name: string): DeviceResources | undefined {
    return this.devices.get(name);
  }

  state(name: string, listed: boolean): DeviceState {
    if (this.removing.has(name)) return DeviceState.Removing;
    if (this.devices.has(name)) return DeviceState.Open;
    return listed ? DeviceState.Present : DeviceState.Absent;
  }

  names(): string[] {
    return [...this.devices.keys()];
  }

  /** Closes the device's resources (children first) and refuses to reopen it until forget(). */
  remove(name: string): DeviceResources | undefined {
    this.removing.add(name);
    const d = this.devices.get(name);
    this.devices.delete(name);
    d?.close();
    return d;
  }

  /** The kernel no longer lists the device: a device of that name appearing later is a new one. */
  forget(name: string): void {
    this.removing.delete(name);
  }

  isRemoving(name: string): boolean {
    return this.removing.has(name);
  }

  close(): void {
    for (const d of this.devices.values()) d.close();
    this.devices.clear();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

export interface DeviceEvents {
  added(name: string): void;
  removed(name: string): void;
  /** After every scan, devices changed or not (pending listeners retry then). */
  scanned?(): void;
}

/**
 * Follows the set of RDMA devices by listing them on a timer, for every subscriber (the
 * process has one, sharedDeviceMonitor(): both fabrics see a device vanish at the same
 * listing). Each listing also re-syncs librdmacm's own list, which is what lets it close a
 * removed device's context once nothing holds it (native/device.cc). Polling rather than a
 * netlink subscription: the RDMA netlink monitor group exists only in newer kernels (not
 * the 6.1 of the test VM), uevents would need a raw netlink socket Node has no API for, and
 * a removed device must be re-listed anyway for librdmacm to let go of it. A listing is a
 * few sysfs/netlink reads. After a removal starts, hurry() polls fast for a while, so the
 * kernel's removal completes within one fast interval of our last object going.
 */
export class DeviceMonitor implements Disposable {
  private present = new Set<string>();
  private readonly subscribers = new Set<DeviceEvents>();
  private timer: NodeJS.Timeout | undefined;
  private fastUntil = 0;
  private running = false;

  constructor(
    private readonly list: () => string[] = () => native().syncDevices(),
    readonly intervalMs = 500,
    readonly fastIntervalMs = 50,
    readonly fastForMs = 5000,
  ) {}

  /** Devices listed at the last scan. */
  get devices(): ReadonlySet<string> {
    return this.present;
  }

  /**
   * Adds a subscriber: it hears added() for each device listed now, then every change. The
   * first subscriber starts the timer; unsubscribing the last stops it.
   */
  subscribe(events: DeviceEvents): () => void {
    this.subscribers.add(events);
    if (!this.running) {
      this.running = true;
      this.scan();
      this.arm();
    } else {
      for (const n of this.present) events.added(n);
    }
    return () => {
      this.subscribers.delete(events);
      if (this.subscribers.size === 0) this.stop();
    };
  }

  /** Lists devices now; tells every subscriber removed() for the vanished, then added() for the new. */
  scan(): void {
    let names: string[];
    try {
      names = this.list();
    } catch {
      names = [];
    }
    const now = new Set(names);
    const before = this.present;
    this.present = now;
    for (const s of [...this.subscribers]) {
      for (const n of before) if (!now.has(n)) s.removed(n);
      for (const n of now) if (!before.has(n)) s.added(n);
      s.scanned?.();
    }
  }

  /** Poll fast for a while: a removal is under way. */
  hurry(): void {
    this.fastUntil = Date.now() + this.fastForMs;
    if (this.running) {
      clearTimeout(this.timer);
      this.arm();
    }
  }

  private arm(): void {
    if (!this.running) return;
    const ms = Date.now() < this.fastUntil ? this.fastIntervalMs : this.intervalMs;
    this.timer = setTimeout(() => {
      this.scan();
      this.arm();
    }, ms);
    this.timer.unref();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
  }

  [Symbol.dispose](): void {
    this.stop();
  }
}

let shared: DeviceMonitor | undefined;

/** The process's device monitor (one listing per interval, whatever the number of fabrics). */
export function sharedDeviceMonitor(): DeviceMonitor {
  shared ??= new DeviceMonitor();
  return shared;
}
