// The SRP section: one SRP target port (LIO's srpt), with RDMA/CM portals, the target port
// identifier initiators name, LUNs (checked as a TPG's are) and ACLs by initiator port id.

import { Type, type Static } from '@sinclair/typebox';
import { bool, isObj, join, type Checker } from './checker.js';
import { Bool, LunListSchema, Port, int, mappedLunsSchema, resolveLuns, resolveMappedLuns, type SchemaOptions } from './common.js';
import { SRP_ATTRIBUTE_DEFAULTS, SRP_DEFAULT_ADDRESS, SRP_DEFAULT_PORT } from './defaults.js';
import type { BackstoreConfig, SrpAclConfig, SrpAttributes, SrpConfig } from './types.js';
import { describe, fmtAddr, HEX16_PATTERN, ipLiteral, isLoopback, isWildcard, normalizeHex16, srpInitiatorName } from './values.js';

const ADDRESS_MESSAGE = 'must be an IPv4 or IPv6 address of an RDMA interface (e.g. "10.0.0.1", "0.0.0.0")';
const INITIATOR_MESSAGE = 'must be an initiator port id ("0x" + 32 hex digits, as LIO srpt names its ACLs) or the initiator\'s IP address for RDMA/CM logins';

const Hex16 = (description: string) =>
  Type.String({
    pattern: HEX16_PATTERN,
    description,
    errorMessage: 'must be 16 hex digits (as in ib_srp\'s add_target, e.g. "0002c90300a1b2c3" or "0002:c903:00a1:b2c3")',
  });

const d = SRP_ATTRIBUTE_DEFAULTS;

export function srpSchema(o: SchemaOptions) {
  return Type.Object(
    {
      enable: Type.Optional(Bool(true, 'false keeps the section but serves nothing')),
      portals: Type.Optional(
        Type.Array(
          Type.Object(
            {
              address: Type.Optional(
                Type.String({
                  default: SRP_DEFAULT_ADDRESS,
                  description: "an RDMA interface's IPv4 or IPv6 address, or a wildcard",
                  errorMessage: ADDRESS_MESSAGE,
                }),
              ),
              port: Type.Optional(Port(o, SRP_DEFAULT_PORT, 'RDMA/CM port')),
            },
            { additionalProperties: false },
          ),
          { description: `RDMA/CM listeners (default: ${SRP_DEFAULT_ADDRESS}:${SRP_DEFAULT_PORT})` },
        ),
      ),
      targetPortId: Type.Optional(
        Type.Object(
          {
            idExt: Hex16("what add_target's id_ext= must say"),
            iocGuid: Hex16("what add_target's ioc_guid= must say"),
          },
          { additionalProperties: false, description: "absent: each RDMA device's node GUID, as LIO" },
        ),
      ),
      luns: Type.Optional(LunListSchema),
      acls: Type.Optional(
        Type.Array(
          Type.Object(
            {
              initiator: Type.String({
                description: '"0x" + 32 hex digits (initiator port id) or, for RDMA/CM logins, the initiator\'s IP address',
                errorMessage: INITIATOR_MESSAGE,
              }),
              mappedLuns: Type.Optional(mappedLunsSchema('srpLun', 'srp.luns')),
            },
            { additionalProperties: false },
          ),
        ),
      ),
      attributes: Type.Optional(
        Type.Object(
          {
            generateNodeAcls: Type.Optional(Bool(d.generateNodeAcls, 'any initiator that names the target port id may log in and sees every SRP LUN')),
            credits: Type.Optional(int(2, 4096, { default: d.credits, description: 'credits per RDMA channel (request receive depth; LIO srpt uses 128)' })),
            immediateData: Type.Optional(Bool(d.immediateData, 'offer SRP-2 immediate data')),
            maxItIuLength: Type.Optional(
              int(8260, 1 << 20, {
                what: 'an integer number of bytes (at least 8260, the IU ib_srp sends with immediate data)',
                default: d.maxItIuLength,
                description: 'largest initiator-to-target IU accepted',
              }),
            ),
          },
          { additionalProperties: false },
        ),
      ),
    },
    { additionalProperties: false, description: "the SRP target port (SCSI RDMA Protocol over RDMA/CM, LIO's srpt)" },
  );
}
type SrpDocument = Static<ReturnType<typeof srpSchema>>;

export function resolveSrp(c: Checker, path: string, v: unknown, named: ReadonlyMap<string, BackstoreConfig>): SrpConfig | undefined {
  if (!isObj(v)) return undefined;
  const o = v as Partial<SrpDocument>;
  const enable = bool(o.enable, true);
  const a = isObj(o.attributes) ? o.attributes : {};
  const attributes: SrpAttributes = {
    generateNodeAcls: bool(a.generateNodeAcls, d.generateNodeAcls),
    credits: a.credits ?? d.credits,
    immediateData: bool(a.immediateData, d.immediateData),
    maxItIuLength: a.maxItIuLength ?? d.maxItIuLength,
  };

  const portals: SrpConfig['portals'] = [];
  const pa: unknown[] = Array.isArray(o.portals) ? o.portals : o.portals === undefined ? [{}] : [];
  const seen = new Map<string, number>();
  pa.forEach((pv, i) => {
    const pp = `${join(path, 'portals')}[${i}]`;
    if (!isObj(pv) || c.bad(join(pp, 'address'))) return;
    const address = ipLiteral(pv.address ?? SRP_DEFAULT_ADDRESS);
    if (address === undefined) {
      c.err(join(pp, 'address'), `${ADDRESS_MESSAGE}, got ${describe(pv.address)}`);
      return;
    }
    if (c.bad(join(pp, 'port'))) return;
    const port = (pv.port ?? SRP_DEFAULT_PORT) as number;
    const key = `${address}|${port}`;
    if (seen.has(key)) {
      c.err(pp, `duplicates portals[${seen.get(key)}] (${fmtAddr(address, port)})`);
      return;
    }
    seen.set(key, i);
    if (isLoopback(address)) c.warn(pp, `${fmtAddr(address, port)} is a loopback address: no RDMA initiator reaches it`);
    portals.push({ address, port });
  });
  for (const p of portals) {
    if (!isWildcard(p.address)) continue;
    for (const q of portals)
      if (q !== p && q.port === p.port && !isWildcard(q.address))
        c.err(path + '.portals', `${fmtAddr(q.address, q.port)} overlaps the wildcard ${fmtAddr(p.address, p.port)}; list one of them`);
    break;
  }

  let targetPortId: SrpConfig['targetPortId'];
  if (o.targetPortId !== undefined && !c.bad(join(path, 'targetPortId'))) {
    targetPortId = { idExt: normalizeHex16(o.targetPortId.idExt), iocGuid: normalizeHex16(o.targetPortId.iocGuid) };
  }

  const { luns, numbers } = resolveLuns(c, join(path, 'luns'), o.luns, named);
  if (enable && Array.isArray(o.luns) && o.luns.length === 0) c.warn(join(path, 'luns'), 'is empty: SRP initiators will see no LUN');

  const acls: SrpAclConfig[] = [];
  const seenAcl = new Map<string, number>();
  (Array.isArray(o.acls) ? (o.acls as unknown[]) : []).forEach((av, i) => {
    const acp = `${join(path, 'acls')}[${i}]`;
    if (!isObj(av) || c.bad(join(acp, 'initiator'))) return;
    const name = srpInitiatorName(av.initiator);
    if (!name) {
      c.err(join(acp, 'initiator'), `${INITIATOR_MESSAGE}, got ${describe(av.initiator)}`);
      return;
    }
    if (seenAcl.has(name)) {
      c.err(join(acp, 'initiator'), `duplicates acls[${seenAcl.get(name)}].initiator`);
      return;
    }
    seenAcl.set(name, i);
    const acl: SrpAclConfig = { initiator: name };
    if (av.mappedLuns !== undefined) {
      acl.mappedLuns = resolveMappedLuns(
        c,
        join(acp, 'mappedLuns'),
        av.mappedLuns,
        'srpLun',
        numbers,
        (keys, l) => `names no entry of srp.luns (${keys}), got ${l}`,
      );
    }
    acls.push(acl);
  });
  if (enable && !attributes.generateNodeAcls && acls.length === 0) {
    c.warn(path, 'has no acls[] and attributes.generateNodeAcls is false: no SRP initiator can log in');
  }
  if (enable && attributes.generateNodeAcls) {
    c.warn(path, 'ACLs are off (attributes.generateNodeAcls is true): any SRP initiator that names this target port can read and write its LUNs');
  }
  const srp: SrpConfig = { enable, portals, luns, acls, attributes };
  if (targetPortId) srp.targetPortId = targetPortId;
  return srp;
}
