// What an RDMA/CM fabric (iSER, SRP) owns for all its connections: the CM event channel,
// each device's context and PD (opened on a connection's first use of it, its attributes
// queried once and its PD given the registry's memory), the set of live connections and, per
// listener, the connections it accepted. Close is deterministic, children first:
// connections, the CM channel, the registrations, the devices.
import { RdmaCm } from './cm.js';
import { DeviceTable, type DeviceResources } from './device.js';
import type { CmEvent, DeviceInfo, NativeCmId } from './binding.js';
import type { MemoryRegistry } from './registry.js';
import { silentLogger, type Logger } from '../common/log.js';

export interface CmListener {
  readonly address: string;
  readonly port: number;
  /** Stop listening; with `destroyConnections`, also drop the connections it accepted. */
  close(destroyConnections?: boolean): Promise<void>;
}

/** Connections of one listener, so closing it can drop just those. */
export type Accepted<C> = Set<C>;

export abstract class CmFabric<C extends { close(abort?: boolean): void }> implements Disposable {
  readonly cm: RdmaCm;
  readonly devices: DeviceTable;
  protected readonly infos = new Map<string, DeviceInfo>();
  protected readonly connections = new Set<C>();
  protected closed = false;

  constructor(
    readonly registry: MemoryRegistry,
    protected readonly log: Logger = silentLogger,
  ) {
    this.cm = new RdmaCm();
    this.devices = new DeviceTable((dev, type, port) => this.log.warn(`RDMA device ${dev} port ${port}: ${type}`));
  }

  protected listenOn(address: string, port: number, onRequest: (ev: CmEvent, mine: Accepted<C>) => void): Promise<CmListener> {
    const mine: Accepted<C> = new Set();
    const id: NativeCmId = this.cm.listen(address, port, (ev) => onRequest(ev, mine));
    return Promise.resolve({
      address,
      port: id.localPort ?? port,
      close: async (destroyConnections = false) => {
        this.cm.destroy(id);
        if (destroyConnections) for (const c of mine) c.close(true);
      },
    });
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

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.connections) c.close(true);
    this.connections.clear();
    this.cm.close();
    for (const name of this.infos.keys()) this.registry.detach(this.devices.get(name).pd);
    this.devices.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
