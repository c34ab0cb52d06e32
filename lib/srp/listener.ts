// SRP portals: an RDMA/CM listener per configured address:port (5555 by default, the port
// blktests and LIO's srpt `rdma_cm_port` use). What channels share (the CM event channel,
// devices and their PDs, the registry of memory every PD registers) is lib/verbs/fabric.ts's.
// A login is decided on CONNECT_REQUEST (lib/srp/login.ts and target.ts) and answered in the
// accept or reject private data.

import { CmFabric, type Accepted, type CmEvent, type CmListener } from '../verbs/index.js';
import { SrpChannel, type SrpChannelOptions } from './channel.js';
import { portIdHex } from './iu.js';
import { loginReject, loginResponse } from './login.js';
import type { SrpTarget } from './target.js';

export const SRP_DEFAULT_PORT = 5555;

export type SrpListener = CmListener;

export interface SrpListenOptions {
  address?: string;
  port?: number;
  channel?: SrpChannelOptions;
}

export class SrpFabric extends CmFabric<SrpChannel> {
  get channelCount(): number {
    return this.connections.size;
  }

  listen(target: SrpTarget, opts: SrpListenOptions = {}): Promise<SrpListener> {
    return this.listenOn(opts.address ?? '0.0.0.0', opts.port ?? SRP_DEFAULT_PORT, (ev, mine) =>
      this.onRequest(ev, target, mine, opts.channel ?? target.opts.channel),
    );
  }

  /** Node GUIDs of the devices opened so far, by name (the default target port ids derive from them). */
  deviceGuids(): Map<string, string> {
    return new Map([...this.infos].map(([n, i]) => [n, i.nodeGuid]));
  }

  private onRequest(ev: CmEvent, target: SrpTarget, mine: Accepted<SrpChannel>, opts: SrpChannelOptions | undefined): void {
    const id = ev.id;
    if (!id) return;
    const from = `${ev.remoteAddress ?? '?'}:${ev.remotePort ?? '?'}`;
    const local = `${ev.localAddress ?? '?'}:${ev.localPort ?? '?'}`;
    // Bound once per channel: every line about it names the transport, both ends and, once
    // the login request is decoded, the initiator port id.
    let log = target.log.child({ transport: 'srp', local, remote: from });
    const refuse = (pd: Buffer | undefined, why: string, initiatorPort?: string) => {
      target.counters.srpLoginRejects++;
      target.initiators.count('loginFailures', initiatorPort, initiatorPort !== undefined && target.namedByAcl(initiatorPort, ev.remoteAddress ?? ''));
      log.warn(
        { event: 'login-failed', reason: why, ...(initiatorPort ? { initiatorPort } : { initiatorPort: null }) },
        `srp: login from ${from} on portal ${local} (initiator port ${initiatorPort ?? 'unknown'}) rejected: ${why}`,
      );
      try {
        id.reject(pd);
      } catch {
        /* gone */
      }
      try {
        this.cm.destroy(id);
      } catch {
        /* gone */
      }
    };
    if (this.closed) return refuse(undefined, 'shutting down');
    const name = ev.deviceName ?? id.deviceName;
    if (!name) return refuse(undefined, 'connect request names no RDMA device');
    let dev: ReturnType<CmFabric<SrpChannel>['device']>;
    try {
      dev = this.device(name);
    } catch (e) {
      return refuse(undefined, `device ${name}: ${(e as Error).message}`);
    }
    const d = target.evaluate(ev.privateData, dev.info.nodeGuid, ev.remoteAddress ?? '');
    if (!d.ok)
      return refuse(loginReject(d), `${d.why} (SRP_LOGIN_REJ reason 0x${d.reason.toString(16)})`, d.req ? portIdHex(d.req.initiatorPortId) : undefined);
    log = log.child({ initiatorPort: d.initiatorPort });
    let ch: SrpChannel;
    try {
      ch = new SrpChannel(
        this.cm,
        id,
        dev.res,
        this.registry,
        ev,
        dev.info,
        d,
        {
          established: (c) =>
            log.info(
              { event: 'login', itIuLen: d.itIuLen, credits: d.credits, multichannel: d.multichannel },
              `srp: channel up: ${c.describe}, it_iu_len ${d.itIuLen}, credits ${d.credits}${d.immOffset ? ', immediate data' : ''}${d.multichannel ? ', multichannel' : ''}`,
            ),
          closed: (c, err) => {
            this.untrack(c, mine);
            target.detach(c);
            if (err) log.warn({ event: 'connection-end', reason: err.message }, `srp: channel ended: ${err.message}`);
            else log.info({ event: 'connection-end' }, `srp: channel down: ${c.describe}`);
          },
          warn: (m) => log.warn(`srp: ${m}`),
        },
        opts,
      );
    } catch (e) {
      return refuse(loginReject({ ok: false, reason: 0x00010001, why: '', req: d.req }), `no resources for a channel: ${(e as Error).message}`);
    }
    const { existing } = target.attach(d, d.core!, ch);
    this.track(ch, mine);
    try {
      ch.accept(loginResponse(d, existing));
    } catch (e) {
      log.warn({ event: 'login-failed', reason: (e as Error).message }, `srp: accept for ${from} failed: ${(e as Error).message}`);
      ch.close(true);
    }
  }
}
