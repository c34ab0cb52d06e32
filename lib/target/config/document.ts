// The inverse of validateConfig(): a resolved configuration written back as a file. It is
// what `save` and every run-time change write, so it holds every field the model holds,
// defaults included, in the file's own names: validating what it returns gives the same
// model back (a host test walks the schema so that a new field cannot be forgotten here).

import type { ConfigDocument } from './schema.js';
import type { BackstoreConfig, Config, LunConfig, MappedLunConfig } from './types.js';

function backstore(b: BackstoreConfig): BackstoreConfig {
  return { ...b };
}

function luns(list: readonly LunConfig[]): Array<{ lun: number; backstore: string | BackstoreConfig }> {
  return list.map((l) => ({ lun: l.lun, backstore: typeof l.backstore === 'string' ? l.backstore : backstore(l.backstore) }));
}

function mapped(list: readonly MappedLunConfig[], source: 'tpgLun' | 'srpLun') {
  return list.map((m) => ({ lun: m.lun, [source]: m.tpgLun, readOnly: m.readOnly }));
}

/** The file that, validated, gives `config` back. */
export function configDocument(config: Config): ConfigDocument {
  const doc = {
    targets: config.targets.map((t) => ({
      iqn: t.iqn,
      tpgs: t.tpgs.map((g) => ({
        tag: g.tag,
        enable: g.enable,
        portals: g.portals.map((p) => ({ address: p.address, port: p.port, transport: p.transport })),
        luns: luns(g.luns),
        acls: g.acls.map((a) => ({
          initiator: a.initiator,
          ...(a.chap ? { chap: { ...a.chap } } : {}),
          ...(a.mappedLuns ? { mappedLuns: mapped(a.mappedLuns, 'tpgLun') } : {}),
        })),
        attributes: { ...g.attributes },
        ...(g.chap ? { chap: { ...g.chap } } : {}),
        parameters: { ...g.parameters },
      })),
    })),
    backstores: config.backstores.map(backstore),
    discoveryAuth: { ...config.discoveryAuth },
    ...(config.srp
      ? {
          srp: {
            enable: config.srp.enable,
            portals: config.srp.portals.map((p) => ({ ...p })),
            ...(config.srp.targetPortId ? { targetPortId: { ...config.srp.targetPortId } } : {}),
            luns: luns(config.srp.luns),
            acls: config.srp.acls.map((a) => ({ initiator: a.initiator, ...(a.mappedLuns ? { mappedLuns: mapped(a.mappedLuns, 'srpLun') } : {}) })),
            attributes: { ...config.srp.attributes },
          },
        }
      : {}),
    stateDir: config.stateDir,
    control: config.control === false ? false : { socket: config.control.socket },
    ...(config.metrics ? { metrics: { listen: config.metrics.listen } } : {}),
    ...(config.rdma ? { rdma: { pollUs: config.rdma.pollUs, ...(config.rdma.bufferMiB !== undefined ? { bufferMiB: config.rdma.bufferMiB } : {}) } } : {}),
  };
  return doc as ConfigDocument;
}
