// iSER portals: an RDMA/CM listener per configured address:port (RFC 7145 §5.1; port 3260
// by default, the same number as iSCSI/TCP — RoCE/IB port spaces are separate from TCP's,
// so one portal address serves both). A wildcard address (0.0.0.0, ::) listens on every
// RDMA device. What connections share (the CM event channel, devices and their PDs, the
// registry of memory every PD registers) is lib/verbs/fabric.ts's.

import { CmFabric, native, type Accepted, type CmEvent, type CmListener } from '../verbs/index.js';
import type { IscsiTarget } from '../iscsi/target.js';
import { IserConnection, type IserConnectionOptions } from './connection.js';

export type IserListener = CmListener;

export interface IserListenOptions {
  address?: string;
  port?: number;
  connection?: IserConnectionOptions;
}

/** Access flags of registered LUN memory: the initiator never touches it, our WRs do. */
export function lunMemoryAccess(): number {
  return native().constants.ACCESS_LOCAL_WRITE;
}

export class IserFabric extends CmFabric<IserConnection> {
  get connectionCount(): number {
    return this.connections.size;
  }

  listen(target: IscsiTarget, opts: IserListenOptions = {}): Promise<IserListener> {
    return this.listenOn(opts.address ?? '0.0.0.0', opts.port ?? 3260, (ev, mine) => this.onRequest(ev, target, mine, opts.connection));
  }

  private onRequest(ev: CmEvent, target: IscsiTarget, mine: Accepted<IserConnection>, opts: IserConnectionOptions | undefined): void {
    const id = ev.id;
    if (!id) return;
    if (this.log.isLevelEnabled('debug')) this.log.debug(`iser: connect request from ${ev.remoteAddress ?? '?'}:${ev.remotePort ?? '?'}`);
    let conn: IserConnection | undefined;
    try {
      if (this.closed) throw new Error('shutting down');
      const name = ev.deviceName ?? id.deviceName;
      if (!name) throw new Error('connect request names no RDMA device');
      const { info, res } = this.device(name);
      conn = new IserConnection(
        this.cm,
        id,
        res,
        this.registry,
        ev,
        info,
        {
          established: (c) => {
            try {
              target.accept(c);
            } catch (e) {
              this.log.warn(`iser: accept failed: ${(e as Error).message}`);
              c.close(true);
            }
          },
          closed: (c) => this.untrack(c, mine),
        },
        opts,
      );
      this.track(conn, mine);
      conn.accept();
    } catch (e) {
      this.log.warn(`iser: connect request from ${ev.remoteAddress ?? '?'} refused: ${(e as Error).message}`);
      if (conn) {
        this.untrack(conn, mine);
        conn.close(true);
      } else {
        try {
          id.reject();
        } catch {
          /* gone */
        }
        try {
          this.cm.destroy(id);
        } catch {
          /* gone */
        }
      }
    }
  }
}
