// SRP portals: an RDMA/CM listener per configured address:port (5555 by default, the port
// blktests and LIO's srpt `rdma_cm_port` use). The fabric owns what channels share: the CM
// event channel, each device's context and PD (opened on first use) and the registry of LUN
// memory every PD registers. A login is decided on CONNECT_REQUEST (lib/srp/login.ts and
// target.ts) and answered in the accept or reject private data.

import { DeviceTable, MemoryRegistry, RdmaCm, type CmEvent, type DeviceInfo, type NativeCmId } from '../verbs/index.js';
import { SrpChannel, type SrpChannelOptions } from './channel.js';
import { loginReject, loginResponse } from './login.js';
import type { SrpTarget } from './target.js';

export const SRP_DEFAULT_PORT = 5555;

export interface SrpListener {
  readonly address: string;
  readonly port: number;
  close(destroyChannels?: boolean): Promise<void>;
}

export interface SrpListenOptions {
  address?: string;
  port?: number;
  channel?: SrpChannelOptions;
}

export class SrpFabric implements Disposable {
  readonly cm: RdmaCm;
  readonly devices: DeviceTable;
  private readonly infos = new Map<string, DeviceInfo>();
  private readonly channels = new Set<SrpChannel>();
  private closed = false;

  constructor(readonly registry: MemoryRegistry, private readonly log: { info(m: string): void; warn(m: string): void } = { info() {}, warn() {} }) {
    this.cm = new RdmaCm();
    this.devices = new DeviceTable((dev, type, port) => this.log.warn(`RDMA device ${dev} port ${port}: ${type}`));
  }

  get channelCount(): number {
    return this.channels.size;
  }

  listen(target: SrpTarget, opts: SrpListenOptions = {}): Promise<SrpListener> {
    const address = opts.address ?? '0.0.0.0';
    const mine = new Set<SrpChannel>();
    const id: NativeCmId = this.cm.listen(address, opts.port ?? SRP_DEFAULT_PORT, (ev) => this.onRequest(ev, target, mine, opts.channel ?? target.opts.channel));
    const port = id.localPort ?? opts.port ?? SRP_DEFAULT_PORT;
    return Promise.resolve({
      address,
      port,
      close: async (destroyChannels = false) => {
        this.cm.destroy(id);
        if (destroyChannels) for (const c of mine) c.close(true);
      },
    });
  }

  /** Node GUIDs of the devices opened so far, by name (the default target port ids derive from them). */
  deviceGuids(): Map<string, string> {
    return new Map([...this.infos].map(([n, i]) => [n, i.nodeGuid]));
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

  private onRequest(ev: CmEvent, target: SrpTarget, mine: Set<SrpChannel>, opts: SrpChannelOptions | undefined): void {
    const id = ev.id;
    if (!id) return;
    const from = `${ev.remoteAddress ?? '?'}:${ev.remotePort ?? '?'}`;
    const refuse = (pd: Buffer | undefined, why: string) => {
      target.counters.srpLoginRejects++;
      target.log.warn(`srp: login from ${from} rejected: ${why}`);
      try { id.reject(pd) } catch { /* gone */ }
      try { this.cm.destroy(id) } catch { /* gone */ }
    };
    if (this.closed) return refuse(undefined, 'shutting down');
    const name = ev.deviceName ?? id.deviceName;
    if (!name) return refuse(undefined, 'connect request names no RDMA device');
    let dev: ReturnType<SrpFabric['device']>;
    try {
      dev = this.device(name);
    } catch (e) {
      return refuse(undefined, `device ${name}: ${(e as Error).message}`);
    }
    const d = target.evaluate(ev.privateData, dev.info.nodeGuid, ev.remoteAddress ?? '');
    if (!d.ok) return refuse(loginReject(d), `${d.why} (SRP_LOGIN_REJ reason 0x${d.reason.toString(16)})`);
    let ch: SrpChannel;
    try {
      ch = new SrpChannel(this.cm, id, dev.res, this.registry, ev, dev.info, d, {
        established: (c) => target.log.info(`srp: channel up: ${c.describe}, it_iu_len ${d.itIuLen}, credits ${d.credits}${d.immOffset ? ', immediate data' : ''}${d.multichannel ? ', multichannel' : ''}`),
        closed: (c, err) => {
          this.channels.delete(c);
          mine.delete(c);
          target.detach(c);
          if (err) target.log.warn(`srp: channel ended: ${err.message}`);
          else target.log.info(`srp: channel down: ${c.describe}`);
        },
        warn: (m) => target.log.warn(`srp: ${m}`),
      }, opts);
    } catch (e) {
      return refuse(loginReject({ ok: false, reason: 0x00010001, why: '', req: d.req }), `no resources for a channel: ${(e as Error).message}`);
    }
    const { existing } = target.attach(d, d.core!, ch);
    this.channels.add(ch);
    mine.add(ch);
    try {
      ch.accept(loginResponse(d, existing));
    } catch (e) {
      target.log.warn(`srp: accept for ${from} failed: ${(e as Error).message}`);
      ch.close(true);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.channels) c.close(true);
    this.channels.clear();
    this.cm.close();
    for (const name of this.infos.keys()) this.registry.detach(this.devices.get(name).pd);
    this.devices.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
