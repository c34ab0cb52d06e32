// The real Engine: lib/backstore for storage and lib/scsi for logical units (both through
// ./scsi-layer.ts), lib/iscsi with lib/transport/tcp and lib/iser, and lib/srp for the
// fabrics. This file and ./scsi-layer.ts are the only places in lib/target that know their
// concrete APIs, so a change there is adapted here and nowhere else.
//
// Where RDMA devices exist, RAM LUNs live in natively allocated memory that every RDMA
// device registers (lazily, at its first iSER connection), so iSER moves their data with
// RDMA WRITE/READ straight from and into the LUN (docs/architecture.md, memory model).

import { existsSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import type { Backstore } from '../backstore/types.js';
import type { FabricIO, Nexus, ScsiCommand, ScsiCore, ScsiDone, TmfFunction, TmfResponse } from '../scsi/types.js';
import { IscsiTarget, type AclOptions, type TpgOptions } from '../iscsi/target.js';
import { listenTcp } from '../transport/tcp.js';
import { RamBackstore } from '../backstore/ram.js';
import { growBackstore } from '../backstore/open.js';
import { channelTotals, cqPollStats, MemoryRegistry, native, nativeAvailable, setCqPollBudget } from '../verbs/index.js';
import type { IserFabric } from '../iser/listener.js';
import type { SrpFabric } from '../srp/listener.js';
import { SrpTarget, type SrpSession } from '../srp/target.js';
import { targetPortId as srpTargetPortId } from '../srp/iu.js';
import {
  RDMA_BUFFER_MIB_DEFAULT,
  RDMA_POLL_US_DEFAULT,
  SRP_ATTRIBUTE_DEFAULTS,
  SRP_LUN_OWNER,
  type Config,
  type DiscoveryAuthConfig,
  type SrpConfig,
  type TpgConfig,
} from './config.js';
import type { Engine, EngineStatus, Listener, ResolvedLun, ServedTargets } from './engine.js';
import type { Logger } from '../common/log.js';
import { createScsiLayer, type ScsiLayer } from './scsi-layer.js';

/** A ScsiCore that forwards to whichever LUN view is current. */
class SwappableCore implements ScsiCore {
  current!: ScsiCore;
  submit(cmd: ScsiCommand, nexus: Nexus, io: FabricIO, done: ScsiDone): void {
    this.current.submit(cmd, nexus, io, done);
  }
  taskManagement(fn: TmfFunction, nexus: Nexus, lun: bigint, referencedTag?: number): Promise<TmfResponse> {
    return this.current.taskManagement(fn, nexus, lun, referencedTag);
  }
  nexusLost(nexus: Nexus): void {
    this.current.nexusLost(nexus);
  }
}

/** The SRP port while the section is absent or disabled: no ACL, no demo mode, so no login. */
const CLOSED_SRP: SrpConfig = {
  enable: false,
  portals: [],
  luns: [],
  acls: [],
  attributes: { ...SRP_ATTRIBUTE_DEFAULTS, generateNodeAcls: false },
};

interface SrpViews {
  cfg: SrpConfig;
  luns: ResolvedLun[];
  demo: SwappableCore;
  aclCores: Map<string, SwappableCore>;
}

interface TpgViews {
  tpg: TpgConfig;
  luns: ResolvedLun[];
  tpgCore: SwappableCore;
  aclCores: Map<string, SwappableCore>;
}

export interface WiringOptions {
  log?: Logger;
  scsi?: ScsiLayer;
  /** Serve iSER portals: default when the addon loads and this host has RDMA devices. */
  rdma?: boolean;
  /** Registered memory for file and block LUN buffers (config `rdma.bufferMiB`); 0: none, every transfer of theirs copies through the bounce slots. */
  bufferMiB?: number;
}

/** The addon loads and at least one RDMA device is present. */
export function rdmaUsable(): boolean {
  try {
    // The RDMA/CM character device exists while rdma_ucm is loaded, device or not: a target
    // started before its device appears serves iSER and SRP once it does.
    return nativeAvailable() && (native().listDevices().length > 0 || existsSync('/dev/infiniband/rdma_cm'));
  } catch {
    return false;
  }
}

export function createEngine(opts: WiringOptions = {}): Engine {
  const log = opts.log;
  const rdma = opts.rdma ?? rdmaUsable();
  const registry = rdma && !opts.scsi ? new MemoryRegistry(native().constants.ACCESS_LOCAL_WRITE) : undefined;
  // File and block LUNs bounce through registered memory, so the fabrics RDMA straight from
  // and into the buffers the fd reads and writes.
  const bufferBytes = (opts.bufferMiB ?? RDMA_BUFFER_MIB_DEFAULT) * 2 ** 20;
  const scsi: ScsiLayer =
    opts.scsi ?? createScsiLayer(registry && bufferBytes > 0 ? { dataMemory: () => registry.allocate(bufferBytes, { transient: true }) } : {});
  let fabric: IserFabric | undefined;
  let srpFabric: SrpFabric | undefined;
  return {
    transports: new Set(rdma ? ['tcp', 'iser', 'srp'] : ['tcp']),
    openBackstore: async (store) => {
      if (registry && store.type === 'ram' && store.size !== undefined) {
        const blockCount = Math.floor(store.size / store.blockSize);
        const memory = registry.allocate(blockCount * store.blockSize);
        return new RamBackstore({ blockSize: store.blockSize, blockCount, memory, thin: store.thin, readOnly: store.readOnly });
      }
      return scsi.openBackstore(store);
    },
    async build(config: Config, luns: ResolvedLun[]): Promise<ServedTargets> {
      if (rdma) setCqPollBudget(config.rdma?.pollUs ?? RDMA_POLL_US_DEFAULT);
      // One LU per backstore object, shared by every LUN that exports it.
      const lus = new Map<Backstore, unknown>();
      for (const r of luns) if (!lus.has(r.backstore)) lus.set(r.backstore, await scsi.createLogicalUnit(r, config.stateDir));

      // Views are rebuilt when a LUN is added at run time; sessions keep the core they got at
      // login, so each holds a SwappableCore whose target changes underneath it.
      const groups = new Map<string, TpgViews>();
      const viewsOf = (g: TpgViews) => {
        const wp = g.tpg.attributes.generateNodeAcls && g.tpg.attributes.demoModeWriteProtect;
        g.tpgCore.current = scsi.createView(g.luns.map((r) => ({ lun: r.lun.lun, lu: lus.get(r.backstore), readOnly: wp })));
        const byNumber = new Map(g.luns.map((r) => [r.lun.lun, r]));
        for (const a of g.tpg.acls) {
          // Without mappedLuns an ACL sees every TPG LUN (LIO's auto_add_mapped_luns), new ones included.
          const mapped = a.mappedLuns ?? g.luns.map((r) => ({ lun: r.lun.lun, tpgLun: r.lun.lun, readOnly: false }));
          // A mapping whose TPG LUN is being added or removed in the same change is left out until it exists.
          g.aclCores.get(a.initiator)!.current = scsi.createView(
            mapped.filter((m) => byNumber.has(m.tpgLun)).map((m) => ({ lun: m.lun, lu: lus.get(byNumber.get(m.tpgLun)!.backstore), readOnly: m.readOnly })),
          );
        }
      };

      // Ports the kernel picked for portals that asked for port 0, by address (SendTargets advertises them).
      const ephemeral = new Map<string, number>();
      const tpgOptions = (iqn: string, g: TpgConfig, views: TpgViews): TpgOptions => {
        const acls: AclOptions[] = g.acls.map((a) => {
          const acl: AclOptions = { initiator: a.initiator, core: views.aclCores.get(a.initiator)! };
          if (a.chap) acl.chap = { ...a.chap };
          return acl;
        });
        const { TargetAlias, ...keys } = g.parameters;
        const port = (p: { address: string; port: number }) => (p.port === 0 ? (ephemeral.get(p.address) ?? 0) : p.port);
        const tpg: TpgOptions = {
          iqn,
          tpgt: g.tag,
          enabled: g.enable,
          // SendTargets lists each address:port once, whichever transports serve it.
          portals: [...new Map(g.portals.map((p) => [`${p.address}|${port(p)}`, { address: p.address, port: port(p) }])).values()],
          core: views.tpgCore,
          acls,
          generateNodeAcls: g.attributes.generateNodeAcls,
          authentication: g.attributes.authentication,
          parameters: keys,
          cmdsnDepth: g.attributes.defaultCmdsnDepth,
          nopInterval: g.attributes.nopInTimeout * 1000,
          nopTimeout: g.attributes.nopInResponseTimeout * 1000,
        };
        if (TargetAlias !== undefined) tpg.alias = TargetAlias;
        if (g.chap) tpg.chap = { ...g.chap };
        return tpg;
      };
      const tpgs: TpgOptions[] = [];
      for (const t of config.targets) {
        for (const g of t.tpgs) {
          const views: TpgViews = {
            tpg: g,
            luns: luns.filter((r) => r.iqn === t.iqn && r.tpgTag === g.tag),
            tpgCore: new SwappableCore(),
            aclCores: new Map(g.acls.map((a) => [a.initiator, new SwappableCore()])),
          };
          viewsOf(views);
          groups.set(`${t.iqn}\u0000${g.tag}`, views);
          tpgs.push(tpgOptions(t.iqn, g, views));
        }
      }
      // The SRP target port: its LUN view (demo mode) and one view per ACL, over the same LUs;
      // sessions hold these cores, so a changed LUN list or mapping reaches them underneath.
      let srp: SrpTarget | undefined;
      let srpViews: SrpViews | undefined;
      const srpViewsOf = (v: SrpViews) => {
        const byNumber = new Map(v.luns.map((r) => [r.lun.lun, r]));
        v.demo.current = scsi.createView(v.luns.map((r) => ({ lun: r.lun.lun, lu: lus.get(r.backstore), readOnly: false })));
        for (const a of v.cfg.acls) {
          const mapped = a.mappedLuns ?? v.luns.map((r) => ({ lun: r.lun.lun, tpgLun: r.lun.lun, readOnly: false }));
          v.aclCores.get(a.initiator)!.current = scsi.createView(
            mapped.filter((m) => byNumber.has(m.tpgLun)).map((m) => ({ lun: m.lun, lu: lus.get(byNumber.get(m.tpgLun)!.backstore), readOnly: m.readOnly })),
          );
        }
      };
      const srpOptions = (sc: SrpConfig, v: SrpViews) => ({
        core: v.demo,
        generateNodeAcls: sc.attributes.generateNodeAcls,
        acls: sc.acls.map((a) => {
          const core = v.aclCores.get(a.initiator)!;
          return a.initiator.startsWith('0x') ? { initiatorPortId: a.initiator, core } : { address: a.initiator, core };
        }),
        credits: sc.attributes.credits,
        immediateData: sc.attributes.immediateData,
        maxItIuLen: sc.attributes.maxItIuLength,
        targetPortId: sc.targetPortId ? srpTargetPortId(sc.targetPortId.idExt, sc.targetPortId.iocGuid) : undefined,
      });
      const enableSrp = (sc: SrpConfig, srpLuns: ResolvedLun[]) => {
        srpViews = { cfg: sc, luns: srpLuns, demo: new SwappableCore(), aclCores: new Map(sc.acls.map((a) => [a.initiator, new SwappableCore()])) };
        srpViewsOf(srpViews);
        const { targetPortId, ...o } = srpOptions(sc, srpViews);
        srp = new SrpTarget({ ...o, ...(targetPortId ? { targetPortId } : {}), log });
      };
      /** Whether an SRP session's view holds SRP LUN `n` (demo mode: every LUN; an ACL: its mapping). */
      const srpSees = (v: SrpViews, s: SrpSession, n: number): boolean => {
        if (s.core === v.demo) return true;
        for (const a of v.cfg.acls) if (v.aclCores.get(a.initiator) === s.core) return !a.mappedLuns || a.mappedLuns.some((m) => m.tpgLun === n);
        return false;
      };
      const srpNexuses = (which: (s: SrpSession) => boolean): Nexus[] => (srp ? [...srp.sessions.values()].filter(which).map((s) => s.nexus) : []);
      // Built even when the section is absent or disabled (then closed: it accepts no login),
      // so enabling it at run time only reconfigures it and its listeners can open first.
      enableSrp(
        config.srp?.enable ? config.srp : CLOSED_SRP,
        luns.filter((r) => r.iqn === SRP_LUN_OWNER),
      );

      const discoveryAuth = (d: DiscoveryAuthConfig) =>
        d.enable && d.userid && d.password
          ? {
              required: true,
              chap: {
                userid: d.userid,
                password: d.password,
                ...(d.mutualUserid ? { mutualUserid: d.mutualUserid, mutualPassword: d.mutualPassword! } : {}),
              },
            }
          : undefined;
      const da = discoveryAuth(config.discoveryAuth);
      const loginTimeout = Math.max(...config.targets.flatMap((t) => t.tpgs.map((g) => g.attributes.loginTimeout)), 15);
      const target = new IscsiTarget({
        tpgs,
        loginTimeout: loginTimeout * 1000,
        ...(da ? { discoveryAuth: da } : {}),
        log,
      });

      /** Whether an initiator's view of a TPG holds TPG LUN `n` (its ACL's mapping, or demo mode without an ACL). */
      const iscsiSees = (g: TpgConfig, initiator: string, n: number): boolean => {
        const acl = g.acls.find((a) => a.initiator === initiator);
        return acl ? !acl.mappedLuns || acl.mappedLuns.some((m) => m.tpgLun === n) : g.attributes.generateNodeAcls;
      };
      const iscsiNexuses = (g: TpgViews, iqn: string, sees: (initiator: string) => boolean): Nexus[] => {
        const e = target.tpgs.find((x) => x.iqn === iqn && x.tpgt === g.tpg.tag);
        return e ? target.nexusesOf((s) => s.tpg === e && sees(s.initiator)) : [];
      };

      return {
        async listen(portal): Promise<Listener> {
          if (portal.transport === 'srp') {
            if (!srp) throw new Error('srp portal without an srp target port');
            if (!srpFabric) {
              const { SrpFabric } = await import('../srp/listener.js');
              srpFabric = new SrpFabric(registry ?? new MemoryRegistry(native().constants.ACCESS_LOCAL_WRITE), log);
            }
            const l = await srpFabric.listen(srp, { address: portal.address, port: portal.port });
            return { address: l.address, port: l.port, waiting: () => l.waiting(), whenListening: () => l.whenListening(), close: (force) => l.close(force) };
          }
          if (portal.transport === 'iser') {
            if (!fabric) {
              const { IserFabric } = await import('../iser/listener.js');
              fabric = new IserFabric(registry ?? new MemoryRegistry(native().constants.ACCESS_LOCAL_WRITE), log);
            }
            const l = await fabric.listen(target, { address: portal.address, port: portal.port });
            return { address: l.address, port: l.port, waiting: () => l.waiting(), whenListening: () => l.whenListening(), close: (force) => l.close(force) };
          }
          const l = await listenTcp(target, { address: portal.address, port: portal.port });
          // An ephemeral port (--listen ADDR:0) is known only now; SendTargets must advertise it.
          if (portal.port === 0) {
            ephemeral.set(portal.address, l.port);
            for (const t of target.tpgs) for (const p of t.portals) if (p.port === 0 && p.address === portal.address) p.port = l.port;
          }
          return { address: l.address, port: l.port, close: (force) => l.close(force) };
        },
        async shutdown(graceMs) {
          await Promise.all([target.shutdown(graceMs), srp?.shutdown(graceMs)]);
          fabric?.close();
          srpFabric?.close();
          await scsi.close?.();
        },
        status: () => {
          const { initiators: iscsiInitiators, ...st } = target.status();
          const initiators: NonNullable<EngineStatus['initiators']> = Object.entries(iscsiInitiators).map(([initiator, r]) => ({
            fabric: 'iscsi',
            initiator,
            ...r,
          }));
          if (!fabric && !srpFabric) return { ...st, initiators };
          // Live native objects: what the RDMA side holds now (QPs and CQs are per connection).
          const live = native().liveObjects();
          const counters: Record<string, number> = {
            ...st.counters,
            rdmaQps: live.qps,
            rdmaCqs: live.cqs,
            rdmaMrs: live.mrs,
            rdmaPds: live.pds,
            rdmaContexts: live.contexts,
            rdmaCmIds: live.cmIds,
          };
          const poll = cqPollStats();
          counters.rdmaPollSpins = poll.spins;
          counters.rdmaPollHits = poll.hits;
          counters.rdmaCqWakes = poll.wakes;
          counters.rdmaCompletions = poll.completions;
          // Registered bytes: LUN memory and the bounce slab (the registry) plus the live channels' slot pools.
          counters.rdmaChannelBytes = channelTotals.registeredBytes;
          counters.rdmaSendQueueFull = channelTotals.sendQueueFull;
          counters.rdmaRegisteredBytes = (registry?.registeredBytes() ?? 0) + channelTotals.registeredBytes;
          if (registry) counters.rdmaBounceBytes = registry.bounceBytes;
          if (fabric) counters.iserConnections = fabric.connectionCount;
          const fabrics = [
            ['iser', fabric],
            ['srp', srpFabric],
          ] as const;
          counters.rdmaDeviceRemovals = 0;
          counters.rdmaDeviceArrivals = 0;
          const rdmaDevices: NonNullable<EngineStatus['rdmaDevices']> = [];
          for (const [name, f] of fabrics) {
            if (!f) continue;
            counters.rdmaDeviceRemovals += f.removals;
            counters.rdmaDeviceArrivals += f.arrivals;
            for (const d of f.deviceStatus()) rdmaDevices.push({ fabric: name, ...d });
          }
          let sessions = st.sessions;
          if (srp && srpFabric) {
            Object.assign(counters, srp.liveCounters());
            sessions = [...sessions, ...srp.status().map((x) => ({ ...x, transport: 'srp' }))];
            for (const [initiator, r] of Object.entries(srp.initiators.toJSON())) initiators.push({ fabric: 'srp', initiator, ...r });
          }
          return { ...st, sessions, counters, rdmaDevices, initiators };
        },
        luStats(r) {
          const lu = lus.get(r.backstore);
          return lu === undefined ? undefined : scsi.statsOf?.(lu);
        },
        async addLun(r) {
          if (!lus.has(r.backstore)) lus.set(r.backstore, await scsi.createLogicalUnit(r, config.stateDir));
          if (r.iqn === SRP_LUN_OWNER) {
            const v = srpViews;
            if (!v) throw new Error('srp is not enabled');
            v.luns.push(r);
            srpViewsOf(v);
            // SRP sessions that see it learn of it, as srpt's through the target core.
            scsi.lunsChanged?.(
              v.luns.map((x) => lus.get(x.backstore)),
              srpNexuses((s) => srpSees(v, s, r.lun.lun)),
            );
            return;
          }
          const g = groups.get(`${r.iqn}\u0000${r.tpgTag}`);
          if (!g) throw new Error(`no TPG ${r.tpgTag} in ${r.iqn}`);
          g.luns.push(r);
          viewsOf(g);
          // Only the sessions whose view holds the new LUN (SPC-4 6.37: their inventory changed).
          scsi.lunsChanged?.(
            g.luns.map((x) => lus.get(x.backstore)),
            iscsiNexuses(g, r.iqn, (i) => iscsiSees(g.tpg, i, r.lun.lun)),
          );
        },
        async removeLun(r, { lastUse }) {
          const lu = lus.get(r.backstore);
          if (r.iqn === SRP_LUN_OWNER) {
            const v = srpViews;
            if (!v) throw new Error('srp is not enabled');
            const saw = srpNexuses((s) => srpSees(v, s, r.lun.lun));
            v.luns = v.luns.filter((x) => x.lun.lun !== r.lun.lun);
            srpViewsOf(v);
            scsi.lunsChanged?.(
              v.luns.map((x) => lus.get(x.backstore)),
              saw,
            );
          } else {
            const g = groups.get(`${r.iqn}\u0000${r.tpgTag}`);
            if (!g) throw new Error(`no TPG ${r.tpgTag} in ${r.iqn}`);
            const saw = iscsiNexuses(g, r.iqn, (i) => iscsiSees(g.tpg, i, r.lun.lun));
            g.luns = g.luns.filter((x) => x.lun.lun !== r.lun.lun);
            viewsOf(g);
            // The LUNs left in the TPG: the nexuses that saw it learn the inventory changed.
            scsi.lunsChanged?.(
              g.luns.map((x) => lus.get(x.backstore)),
              saw,
            );
          }
          if (lastUse && lu) {
            lus.delete(r.backstore);
            await scsi.retire?.(lu);
          }
        },
        sessionsSeeing(r) {
          if (r.iqn === SRP_LUN_OWNER) {
            const v = srpViews;
            return v ? srpNexuses((s) => srpSees(v, s, r.lun.lun)).length : 0;
          }
          const g = groups.get(`${r.iqn}\u0000${r.tpgTag}`);
          return g ? iscsiNexuses(g, r.iqn, (i) => iscsiSees(g.tpg, i, r.lun.lun)).length : 0;
        },
        setSrp(next, prev) {
          const v = srpViews;
          if (!srp || !v) return 0;
          const on = next?.enable ? next : CLOSED_SRP;
          const old = prev?.enable ? prev : v.cfg;
          const ending = new Set<ScsiCore>();
          for (const a of old.acls) if (!on.acls.some((x) => x.initiator === a.initiator)) ending.add(v.aclCores.get(a.initiator)!);
          if (old.attributes.generateNodeAcls && !on.attributes.generateNodeAcls) ending.add(v.demo);
          const remapped = on.acls
            .filter((a) => old.acls.some((x) => x.initiator === a.initiator && !isDeepStrictEqual(x.mappedLuns, a.mappedLuns)))
            .map((a): ScsiCore => v.aclCores.get(a.initiator)!);
          v.cfg = on;
          for (const a of on.acls) if (!v.aclCores.has(a.initiator)) v.aclCores.set(a.initiator, new SwappableCore());
          for (const k of [...v.aclCores.keys()]) if (!on.acls.some((a) => a.initiator === k)) v.aclCores.delete(k);
          srpViewsOf(v);
          srp.configure(srpOptions(on, v));
          if (remapped.length)
            scsi.lunsChanged?.(
              v.luns.map((x) => lus.get(x.backstore)),
              srpNexuses((s) => remapped.includes(s.core)),
            );
          // Disabled or removed: no login is accepted and every session ends (its LUNs went first).
          if (on === CLOSED_SRP) return srp.endSessions(() => true, next ? 'SRP disabled' : 'SRP section removed');
          return ending.size ? srp.endSessions((s) => ending.has(s.core), 'SRP ACL removed or demo mode turned off') : 0;
        },
        srpTarget: () => srp,
        setTpg(iqn, tpg, prev) {
          const key = `${iqn}\u0000${tpg.tag}`;
          let v = groups.get(key);
          if (!v) {
            v = { tpg, luns: [], tpgCore: new SwappableCore(), aclCores: new Map() };
            groups.set(key, v);
          }
          const before = v.tpg;
          v.tpg = tpg;
          for (const a of tpg.acls) if (!v.aclCores.has(a.initiator)) v.aclCores.set(a.initiator, new SwappableCore());
          for (const k of [...v.aclCores.keys()]) if (!tpg.acls.some((a) => a.initiator === k)) v.aclCores.delete(k);
          viewsOf(v);
          const opts = tpgOptions(iqn, tpg, v);
          const e = target.tpgs.find((x) => x.iqn === iqn && x.tpgt === tpg.tag);
          if (!e) {
            target.addTpg(opts);
            return 0;
          }
          target.updateTpg(e, opts);
          const old = prev ?? before;
          // Mapped LUNs changed: only those initiators' sessions re-read REPORT LUNS.
          const remapped = new Set(
            tpg.acls.filter((a) => old.acls.some((x) => x.initiator === a.initiator && !isDeepStrictEqual(a.mappedLuns, x.mappedLuns))).map((a) => a.initiator),
          );
          if (remapped.size)
            scsi.lunsChanged?.(
              v.luns.map((x) => lus.get(x.backstore)),
              target.nexusesOf((s) => s.tpg === e && remapped.has(s.initiator)),
            );
          const ending = new Set<string>();
          for (const a of old.acls) {
            const n = tpg.acls.find((x) => x.initiator === a.initiator);
            if (!n || !isDeepStrictEqual(n.chap, a.chap)) ending.add(a.initiator);
          }
          const demoOff = old.attributes.generateNodeAcls && !tpg.attributes.generateNodeAcls;
          const disabled = old.enable && !tpg.enable;
          if (!ending.size && !demoOff && !disabled) return 0;
          return target.endSessions(
            (s) => s.tpg === e && (disabled || ending.has(s.initiator) || (demoOff && !tpg.acls.some((a) => a.initiator === s.initiator))),
            disabled ? 'TPG disabled' : 'ACL removed or its CHAP changed',
          );
        },
        removeTpg(iqn, tag) {
          const e = target.tpgs.find((x) => x.iqn === iqn && x.tpgt === tag);
          groups.delete(`${iqn}\u0000${tag}`);
          if (!e) return 0;
          const n = target.status().sessions.filter((s) => s.target === iqn && s.tpgTag === tag).length;
          target.removeTpg(e, 'TPG removed');
          return n;
        },
        setRdma(r) {
          if (rdma) setCqPollBudget(r?.pollUs ?? RDMA_POLL_US_DEFAULT);
        },
        setDiscoveryAuth(d) {
          const a = discoveryAuth(d);
          if (a) target.options.discoveryAuth = a;
          else delete target.options.discoveryAuth;
        },
        async resizeLun(r, bytes) {
          const lu = lus.get(r.backstore);
          if (!lu) throw new Error(`LUN ${r.lun.lun} of ${r.iqn} is not served`);
          await growBackstore(r.backstore, r.store, bytes, {
            ...(registry
              ? {
                  allocate: (n: number) => registry.allocate(n),
                  // An RDMA WRITE from the old memory may still be on the wire after its task ended (its response SEND is ordered after it): deregister later.
                  release: (m: Uint8Array) => setTimeout(() => registry.release(m as Buffer), 10_000).unref(),
                }
              : {}),
            ...(scsi.exclusive ? { exclusive: (swap: () => void) => scsi.exclusive!(lu, swap) } : {}),
          });
          scsi.capacityChanged?.(lu);
        },
      };
    },
  };
}
