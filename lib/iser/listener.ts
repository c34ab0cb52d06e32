// iSER portals: an RDMA/CM listener per configured address:port (RFC 7145 §5.1; port 3260
// by default, the same number as iSCSI/TCP — RoCE/IB port spaces are separate from TCP's,
// so one portal address serves both). A wildcard address (0.0.0.0, ::) listens on every
// RDMA device. The fabric owns what connections share: the CM event channel, each device's
// context and PD (opened on first use), and the registry of LUN memory every PD registers.

import { DeviceTable, MemoryRegistry, RdmaCm, native, type CmEvent, type DeviceInfo, type NativeCmId } from '../verbs/index.js';
import type { IscsiTarget } from '../iscsi/target.js';
import { IserConnection, type IserConnectionOptions } from './connection.js';

export interface IserListener {
  readonly address: string;
  readonly port: number;
  /** Stop listening; with `destroyConnections`, also drop the connections it accepted. */
  close(destroyConnections?: boolean): Promise<void>;
}

export interface IserListenOptions {
  address?: string;
  port?: number;
  connection?: IserConnectionOptions;
}

/** Access flags of registered LUN memory: the initiator never touches it, our WRs do. */
export function lunMemoryAccess(): number {
  return native().constants.ACCESS_LOCAL_WRITE;
}

export class IserFabric implements Disposable {
  readonly cm: RdmaCm;
  readonly devices: DeviceTable;
  private readonly infos = new Map<string, DeviceInfo>();
  private readonly connections = new Set<IserConnection>();
  private closed = false;

  constructor(readonly registry: MemoryRegistry, private readonly log: { info(m: string): void; warn(m: string): void } = { info() {}, warn() {} }) {
    this.cm = new RdmaCm();
    this.devices = new DeviceTable((dev, type, port) => this.log.warn(`RDMA device ${dev} port ${port}: ${type}`));
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  listen(target: IscsiTarget, opts: IserListenOptions = {}): Promise<IserListener> {
    const address = opts.address ?? '0.0.0.0';
    const mine = new Set<IserConnection>();
    const id: NativeCmId = this.cm.listen(address, opts.port ?? 3260, (ev) => this.onRequest(ev, target, mine, opts.connection));
    const port = id.localPort ?? opts.port ?? 3260;
    return Promise.resolve({
      address,
      port,
      close: async (destroyConnections = false) => {
        this.cm.destroy(id);
        if (destroyConnections) for (const c of mine) c.close(true);
      },
    });
  }

  private device(name: string): { info: DeviceInfo; res: ReturnType<DeviceTable['get']> } {
    const res = this.devices.get(name);
    let info = this.infos.get(name);
    if (!info) {
      info = res.context.query();
      this.infos.set(name, info);
      this.registry.attach(res.pd);
    }
    return { info, res };
  }

  private onRequest(ev: CmEvent, target: IscsiTarget, mine: Set<IserConnection>, opts: IserConnectionOptions | undefined): void {
    const id = ev.id;
    if (!id) return;
    let conn: IserConnection | undefined;
    try {
      if (this.closed) throw new Error('shutting down');
      const name = ev.deviceName ?? id.deviceName;
      if (!name) throw new Error('connect request names no RDMA device');
      const { info, res } = this.device(name);
      conn = new IserConnection(this.cm, id, res, this.registry, ev, info, {
        established: (c) => {
          try {
            target.accept(c);
          } catch (e) {
            this.log.warn(`iser: accept failed: ${(e as Error).message}`);
            c.close(true);
          }
        },
        closed: (c) => { this.connections.delete(c); mine.delete(c) },
      }, opts);
      const c = conn;
      this.connections.add(c);
      mine.add(c);
      c.accept();
    } catch (e) {
      this.log.warn(`iser: connect request from ${ev.remoteAddress ?? '?'} refused: ${(e as Error).message}`);
      if (conn) { this.connections.delete(conn); mine.delete(conn); conn.close(true) }
      else {
        try { id.reject() } catch { /* gone */ }
        try { this.cm.destroy(id) } catch { /* gone */ }
      }
    }
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
