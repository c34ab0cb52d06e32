// Per-device resources shared by every connection on that device: the context (async
// events) and one protection domain. Connections' CM ids name their device; QPs need a PD
// on that same context.
import { native, type NativeContext, type NativePd } from './binding.js';

export class DeviceResources implements Disposable {
  readonly context: NativeContext;
  readonly pd: NativePd;

  constructor(
    readonly name: string,
    onAsyncEvent: (type: string, port: number) => void = () => {},
  ) {
    this.context = new (native().Context)(name, onAsyncEvent);
    this.pd = new (native().ProtectionDomain)(this.context);
  }

  close(): void {
    // The context closes its children (PD, MRs, CQs, QPs on them) first.
    this.context.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Opens each device once, on first use by name. */
export class DeviceTable implements Disposable {
  private readonly devices = new Map<string, DeviceResources>();
  constructor(private readonly onAsyncEvent?: (device: string, type: string, port: number) => void) {}

  get(name: string): DeviceResources {
    let d = this.devices.get(name);
    if (!d) {
      d = new DeviceResources(name, (type, port) => this.onAsyncEvent?.(name, type, port));
      this.devices.set(name, d);
    }
    return d;
  }

  close(): void {
    for (const d of this.devices.values()) d.close();
    this.devices.clear();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
