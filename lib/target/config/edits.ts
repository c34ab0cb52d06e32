// Changes made to a configuration after it is read: the CLI's --listen, the RDMA portals the
// embedded default gains where devices exist, and looking up a LUN's backstore.

import type { Obj } from './checker.js';
import { SRP_ATTRIBUTE_DEFAULTS, SRP_DEFAULT_PORT } from './defaults.js';
import type { BackstoreConfig, Config, LunConfig } from './types.js';

/**
 * Where RDMA devices exist, the default target also listens for iSER on each of its TCP
 * portals, and serves its LUNs over SRP on those addresses (port 5555), (LIO serves both on one address:port once `iser` is enabled on the portal) —
 * except loopback ones: no RDMA initiator reaches 127.0.0.1, and widening the default's
 * loopback-only demo mode to the network is the administrator's call (`--listen`).
 * With no devices it leaves the config unchanged.
 */
export function addRdmaPortals(config: Config, rdmaDevices: ReadonlyArray<{ name: string }>): Config {
  if (rdmaDevices.length === 0) return config;
  const loopback = (a: string) => a.startsWith('127.') || a === '::1' || a === 'localhost';
  for (const t of config.targets) {
    for (const tpg of t.tpgs) {
      const tcp = tpg.portals.filter((p) => p.transport === 'tcp' && !loopback(p.address));
      for (const p of tcp) {
        if (!tpg.portals.some((q) => q.transport === 'iser' && q.address === p.address && q.port === p.port)) {
          tpg.portals.push({ address: p.address, port: p.port, transport: 'iser' });
        }
      }
      // SRP beside it, on the same address (port 5555), exporting the same LUNs with the
      // same access rule: the first such TPG only, as an SRP target port is one LUN set.
      if (tcp.length && !config.srp) {
        config.srp = {
          enable: true,
          portals: [...new Set(tcp.map((p) => p.address))].map((address) => ({ address, port: SRP_DEFAULT_PORT })),
          luns: tpg.luns.map((l) => ({ ...l })),
          acls: [],
          attributes: { ...SRP_ATTRIBUTE_DEFAULTS, generateNodeAcls: tpg.attributes.generateNodeAcls && tpg.acls.length === 0 },
        };
      }
    }
  }
  return config;
}

/** Replaces every TCP portal with `address:port` (the CLI's --listen). */
export function overrideListen<T extends object>(doc: T, address: string, port: number): T {
  const copy = structuredClone(doc) as Obj;
  const targets = Array.isArray(copy.targets) ? copy.targets : [];
  for (const t of targets) {
    if (!t || typeof t !== 'object' || !Array.isArray((t as Obj).tpgs)) continue;
    for (const g of (t as { tpgs: unknown[] }).tpgs) {
      if (!g || typeof g !== 'object') continue;
      const go = g as Obj;
      const others = Array.isArray(go.portals) ? (go.portals as Obj[]).filter((p) => p && p.transport === 'iser') : [];
      go.portals = [{ address, port, transport: 'tcp' }, ...others];
    }
  }
  return copy as T;
}

/**
 * Puts back into `doc` (a configuration about to be saved) the TCP portals `file` gives each
 * of its TPGs: --listen replaced them only for this run, so the file keeps its own. The other
 * portals (iser) are what runs: --listen leaves them alone, so run-time changes to them are
 * saved. (The daemon refuses TCP portal changes under --listen: they could not be saved.)
 */
export function filePortals<T extends object>(doc: T, file: unknown): T {
  const fileTpgs = new Map<string, unknown>();
  const targets = (x: unknown) => (x && typeof x === 'object' && Array.isArray((x as Obj).targets) ? ((x as Obj).targets as unknown[]) : []);
  for (const t of targets(file)) {
    const to = t as Obj;
    for (const g of Array.isArray(to?.tpgs) ? (to.tpgs as Obj[]) : [])
      if (g && typeof g === 'object') fileTpgs.set(`${String(to.iqn)}\u0000${String(g.tag ?? 1)}`, g.portals);
  }
  const tcp = (p: unknown) => !!p && typeof p === 'object' && ((p as Obj).transport ?? 'tcp') === 'tcp';
  const copy = structuredClone(doc) as Obj;
  for (const t of targets(copy)) {
    const to = t as Obj;
    for (const g of to.tpgs as Obj[]) {
      const key = `${String(to.iqn)}\u0000${String(g.tag)}`;
      if (!fileTpgs.has(key)) continue;
      const own = fileTpgs.get(key);
      const running = Array.isArray(g.portals) ? (g.portals as unknown[]).filter((p) => !tcp(p)) : [];
      const portals = [...(Array.isArray(own) ? own.filter(tcp) : []), ...running];
      if (own === undefined && portals.length === 0) delete g.portals;
      else g.portals = portals;
    }
  }
  return copy as T;
}

/** Resolves a LUN's backstore (by name or inline) to its definition. */
export function resolveBackstore(config: Config, lun: LunConfig): BackstoreConfig {
  if (typeof lun.backstore !== 'string') return lun.backstore;
  const b = config.backstores.find((x) => x.name === lun.backstore);
  if (!b) throw new Error(`backstore ${lun.backstore} vanished after validation`);
  return b;
}
