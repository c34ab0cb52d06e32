// The real Engine: lib/backstore for storage and lib/scsi for logical units (both through
// ./scsi-layer.ts), lib/iscsi with lib/transport/tcp and lib/iser, and lib/srp for the
// fabrics. This file and ./scsi-layer.ts are the only places in lib/target that know their
// concrete APIs, so a change there is adapted here and nowhere else.
//
// Where RDMA devices exist, RAM LUNs live in natively allocated memory that every RDMA
// device registers (lazily, at its first iSER connection), so iSER moves their data with
// RDMA WRITE/READ straight from and into the LUN (docs/architecture.md, memory model).

import { existsSync } from 'node:fs';
import type { Backstore } from '../backstore/types.js';
import type { FabricIO, Nexus, ScsiCommand, ScsiCore, ScsiDone, TmfFunction, TmfResponse } from '../scsi/types.js';
import { IscsiTarget, type AclOptions, type TpgOptions } from '../iscsi/target.js';
import { listenTcp } from '../transport/tcp.js';
import { RamBackstore } from '../backstore/ram.js';
import { growBackstore } from '../backstore/open.js';
import { MemoryRegistry, native, nativeAvailable } from '../verbs/index.js';
import type { IserFabric } from '../iser/listener.js';
import type { SrpFabric } from '../srp/listener.js';
import { SrpTarget } from '../srp/target.js';
import { targetPortId as srpTargetPortId } from '../srp/iu.js';
import { SRP_LUN_OWNER, type Config, type TpgConfig } from './config.js';
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
}

/** The addon loads and at least one RDMA device is present. */
/** Registered bounce memory shared by file and block LUNs: 1 MiB chunks for 64 commands in flight; beyond it, heap buffers and one copy. */
const DATA_SLAB_BYTES = 64 << 20;

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
  const scsi: ScsiLayer = opts.scsi ?? createScsiLayer(registry ? { dataMemory: () => registry.allocate(DATA_SLAB_BYTES, { transient: true }) } : {});
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
          g.aclCores.get(a.initiator)!.current = scsi.createView(
            mapped.map((m) => ({ lun: m.lun, lu: lus.get(byNumber.get(m.tpgLun)!.backstore), readOnly: m.readOnly })),
          );
        }
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
          const tpgView = views.tpgCore;
          const acls: AclOptions[] = g.acls.map((a) => {
            const acl: AclOptions = { initiator: a.initiator, core: views.aclCores.get(a.initiator)! };
            if (a.chap) acl.chap = { ...a.chap };
            return acl;
          });
          const { TargetAlias, ...keys } = g.parameters;
          const tpg: TpgOptions = {
            iqn: t.iqn,
            tpgt: g.tag,
            enabled: g.enable,
            // SendTargets lists each address:port once, whichever transports serve it.
            portals: [...new Map(g.portals.map((p) => [`${p.address}|${p.port}`, { address: p.address, port: p.port }])).values()],
            core: tpgView,
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
          tpgs.push(tpg);
        }
      }
      // The SRP target port: its LUN view (demo mode) and one view per ACL, over the same LUs.
      let srp: SrpTarget | undefined;
      const sc = config.srp;
      if (sc?.enable) {
        const srpLuns = luns.filter((r) => r.iqn === SRP_LUN_OWNER);
        const byNumber = new Map(srpLuns.map((r) => [r.lun.lun, r]));
        const demo = scsi.createView(srpLuns.map((r) => ({ lun: r.lun.lun, lu: lus.get(r.backstore), readOnly: false })));
        const acls = sc.acls.map((a) => {
          const mapped = a.mappedLuns ?? srpLuns.map((r) => ({ lun: r.lun.lun, tpgLun: r.lun.lun, readOnly: false }));
          const core = scsi.createView(mapped.map((m) => ({ lun: m.lun, lu: lus.get(byNumber.get(m.tpgLun)!.backstore), readOnly: m.readOnly })));
          return a.initiator.startsWith('0x') ? { initiatorPortId: a.initiator, core } : { address: a.initiator, core };
        });
        const tpid = sc.targetPortId ? srpTargetPortId(sc.targetPortId.idExt, sc.targetPortId.iocGuid) : undefined;
        srp = new SrpTarget({
          core: demo,
          generateNodeAcls: sc.attributes.generateNodeAcls,
          acls,
          credits: sc.attributes.credits,
          immediateData: sc.attributes.immediateData,
          maxItIuLen: sc.attributes.maxItIuLength,
          ...(tpid ? { targetPortId: tpid } : {}),
          log,
        });
      }

      const d = config.discoveryAuth;
      const loginTimeout = Math.max(...config.targets.flatMap((t) => t.tpgs.map((g) => g.attributes.loginTimeout)), 15);
      const target = new IscsiTarget({
        tpgs,
        loginTimeout: loginTimeout * 1000,
        ...(d.enable && d.userid && d.password
          ? {
              discoveryAuth: {
                required: true,
                chap: {
                  userid: d.userid,
                  password: d.password,
                  ...(d.mutualUserid ? { mutualUserid: d.mutualUserid, mutualPassword: d.mutualPassword! } : {}),
                },
              },
            }
          : {}),
        log,
      });

      return {
        async listen(portal): Promise<Listener> {
          if (portal.transport === 'srp') {
            if (!srp) throw new Error('srp portal without an enabled srp section');
            if (!srpFabric) {
              const { SrpFabric } = await import('../srp/listener.js');
              srpFabric = new SrpFabric(registry ?? new MemoryRegistry(native().constants.ACCESS_LOCAL_WRITE), log);
            }
            const l = await srpFabric.listen(srp, { address: portal.address, port: portal.port });
            return { address: l.address, port: l.port, close: (force) => l.close(force) };
          }
          if (portal.transport === 'iser') {
            if (!fabric) {
              const { IserFabric } = await import('../iser/listener.js');
              fabric = new IserFabric(registry ?? new MemoryRegistry(native().constants.ACCESS_LOCAL_WRITE), log);
            }
            const l = await fabric.listen(target, { address: portal.address, port: portal.port });
            return { address: l.address, port: l.port, close: (force) => l.close(force) };
          }
          const l = await listenTcp(target, { address: portal.address, port: portal.port });
          // An ephemeral port (--listen ADDR:0) is known only now; SendTargets must advertise it.
          if (portal.port === 0) {
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
          const st = target.status();
          if (!fabric && !srpFabric) return st;
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
          if (registry) {
            counters.rdmaBounceBytes = registry.bounceBytes;
            counters.rdmaRegisteredBytes = registry.registeredBytes();
          }
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
          }
          return { ...st, sessions, counters, rdmaDevices };
        },
        luStats(r) {
          const lu = lus.get(r.backstore);
          return lu === undefined ? undefined : scsi.statsOf?.(lu);
        },
        async addLun(r) {
          const g = groups.get(`${r.iqn}\u0000${r.tpgTag}`);
          if (!g) throw new Error(`no TPG ${r.tpgTag} in ${r.iqn}`);
          if (!lus.has(r.backstore)) lus.set(r.backstore, await scsi.createLogicalUnit(r, config.stateDir));
          g.luns.push(r);
          viewsOf(g);
          const changed = g.luns.map((x) => lus.get(x.backstore));
          scsi.lunsChanged?.(changed);
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
