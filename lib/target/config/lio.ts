// LIO's saved configuration (/etc/target/saveconfig.json, as rtslib-fb's dump() writes it
// and targetcli's `saveconfig` saves it) converted to this project's configuration file.
// What LIO states and this target has no counterpart for is listed, each with its reason,
// never dropped in silence. Facts about the format: rtslib-fb (root.py, tcm.py, target.py,
// fabric.py, node.py) and saveconfig.json(5).
//
// LIO dumps every attribute and parameter it has, its defaults included; only values that
// differ from LIO's defaults were the administrator's choice, so only those are carried
// over (as overrides) or reported, and this target's own defaults apply to the rest.

import { isObj, type Obj } from './checker.js';
import { ISCSI_KEYS } from './iscsi.js';
import type { ConfigDocument } from './schema.js';
import { srpInitiatorName } from './values.js';

export interface LioImport {
  document: ConfigDocument;
  /** What could not be mapped, each "<where in saveconfig.json>: <what> (<why>)". */
  unmapped: string[];
}

/** LIO's iSCSI login key defaults (the kernel's iscsi_target_parameters.h): a value equal to one of these was not chosen. */
const LIO_PARAMETER_DEFAULTS: Readonly<Record<string, string | readonly string[]>> = {
  AuthMethod: 'CHAP,None',
  HeaderDigest: 'CRC32C,None',
  DataDigest: 'CRC32C,None',
  MaxConnections: '1',
  TargetAlias: 'LIO Target',
  InitialR2T: 'Yes',
  ImmediateData: 'Yes',
  MaxRecvDataSegmentLength: '8192',
  MaxXmitDataSegmentLength: '262144',
  MaxBurstLength: '262144',
  FirstBurstLength: '65536',
  DefaultTime2Wait: '2',
  DefaultTime2Retain: '20',
  MaxOutstandingR2T: '1',
  DataPDUInOrder: 'Yes',
  DataSequenceInOrder: 'Yes',
  ErrorRecoveryLevel: '0',
  IFMarker: 'No',
  OFMarker: 'No',
  // Markers are gone from RFC 7143; newer kernels save "Reject".
  IFMarkInt: ['2048~65535', 'Reject'],
  OFMarkInt: ['2048~65535', 'Reject'],
  RDMAExtensions: 'No',
  InitiatorRecvDataSegmentLength: '262144',
  TargetRecvDataSegmentLength: '8192',
};

/** LIO's TPG attributes: this project's name where it has one, else LIO's default (a differing value is reported). */
const TPG_ATTRIBUTES: Readonly<Record<string, { to: string; bool?: boolean } | { lioDefault: number; why: string }>> = {
  generate_node_acls: { to: 'generateNodeAcls', bool: true },
  authentication: { to: 'authentication', bool: true },
  demo_mode_write_protect: { to: 'demoModeWriteProtect', bool: true },
  default_cmdsn_depth: { to: 'defaultCmdsnDepth' },
  login_timeout: { to: 'loginTimeout' },
  cache_dynamic_acls: { lioDefault: 0, why: 'demo-mode sessions keep no ACL here' },
  demo_mode_discovery: { lioDefault: 1, why: 'SendTargets always answers sessions that may log in' },
  prod_mode_write_protect: { lioDefault: 0, why: 'write protection is per backstore (readOnly) or per mapped LUN (readOnly)' },
  default_erl: { lioDefault: 0, why: 'ErrorRecoveryLevel is a login parameter here' },
  netif_timeout: { lioDefault: 2, why: 'connections are watched by NOP-In (nopInTimeout)' },
  t10_pi: { lioDefault: 0, why: 'T10 protection information is not supported' },
  fabric_prot_type: { lioDefault: 0, why: 'T10 protection information is not supported' },
  tpg_enabled_sendtargets: { lioDefault: 1, why: 'SendTargets lists every enabled TPG' },
  login_keys_workaround: { lioDefault: 1, why: 'login keys follow RFC 7143' },
};

/** LIO's srpt TPG attributes (ib_srpt's defaults): this target sizes its channels itself (srp.attributes). */
const SRPT_ATTRIBUTE_DEFAULTS: Readonly<Record<string, number>> = { srp_max_rdma_size: 65536, srp_max_rsp_size: 256, srp_sq_size: 4096 };

/** LIO's per-ACL attributes that this project keeps per TPG. */
const ACL_TO_TPG: Readonly<Record<string, string>> = { nopin_timeout: 'nopInTimeout', nopin_response_timeout: 'nopInResponseTimeout' };

const BLOCK_SIZES = [512, 1024, 2048, 4096];

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function flag(v: unknown): boolean {
  return v === true || v === 1 || v === '1';
}

/** A backstore name this project accepts, from LIO's (unique per plugin, not globally). */
function backstoreName(plugin: string, name: string, taken: Set<string>): string {
  let n = name.replace(/[^A-Za-z0-9_.:-]/g, '_').slice(0, 64) || plugin;
  if (taken.has(n)) n = `${plugin}_${n}`.slice(0, 64);
  for (let i = 2; taken.has(n); i++) n = `${plugin}_${name}_${i}`.replace(/[^A-Za-z0-9_.:-]/g, '_').slice(0, 64);
  taken.add(n);
  return n;
}

/** CHAP credentials from LIO's chap_* (TPG, ACL) or discovery_* (fabric module) fields. */
function chap(o: Obj, prefix: string): Obj | undefined {
  const userid = str(o[`${prefix}userid`]);
  const password = str(o[`${prefix}password`]);
  if (userid === undefined && password === undefined) return undefined;
  const c: Obj = { userid: userid ?? '', password: password ?? '' };
  const mu = str(o[`${prefix}mutual_userid`]);
  const mp = str(o[`${prefix}mutual_password`]);
  if (mu !== undefined || mp !== undefined) {
    c.mutualUserid = mu ?? '';
    c.mutualPassword = mp ?? '';
  }
  return c;
}

/** An SRP initiator port name as rtslib writes it ("ib." + 32 hex; configfs: "0x" + 32 hex, or a GID with colons) in this project's form. */
function srpInitiator(wwn: string): string | undefined {
  const hex = wwn.replace(/^(0x|ib\.)/i, '').replace(/[:-]/g, '');
  return srpInitiatorName(/^[0-9a-fA-F]{32}$/.test(hex) ? `0x${hex}` : wwn);
}

function arr(v: unknown): Obj[] {
  return Array.isArray(v) ? v.filter(isObj) : [];
}

/** Converts a parsed saveconfig.json. The result still has to pass validateConfig(). */
export function importLio(saved: unknown): LioImport {
  const unmapped: string[] = [];
  const note = (where: string, what: string) => unmapped.push(`${where}: ${what}`);
  const root = isObj(saved) ? saved : {};
  if (!isObj(saved)) note('(file)', 'not a JSON object; nothing imported');

  // Storage objects, by LIO's path "/backstores/<plugin>/<name>".
  const backstores: Obj[] = [];
  const byPath = new Map<string, string>();
  const names = new Set<string>();
  arr(root.storage_objects).forEach((so, i) => {
    const where = `storage_objects[${i}] (${String(so.plugin)}/${String(so.name)})`;
    const plugin = String(so.plugin);
    const type = plugin === 'fileio' ? 'file' : plugin === 'block' ? 'block' : plugin === 'ramdisk' || plugin === 'rd_mcp' ? 'ram' : undefined;
    if (!type || typeof so.name !== 'string') {
      note(where, `plugin ${JSON.stringify(so.plugin)} is not imported (this target serves fileio, block and ramdisk storage); LUNs on it are left out`);
      return;
    }
    const name = backstoreName(plugin, so.name, names);
    const b: Obj = { name, type };
    const attrs = isObj(so.attributes) ? so.attributes : {};
    if (type !== 'block' && typeof so.size === 'number') b.size = so.size;
    if (type !== 'ram' && typeof so.dev === 'string') b.path = so.dev;
    const bs = Number(attrs.block_size ?? 512);
    if (BLOCK_SIZES.includes(bs)) b.blockSize = bs;
    else note(`${where}.attributes.block_size`, `${bs} is not one of ${BLOCK_SIZES.join(', ')}; 512 is used`);
    if (flag(so.readonly)) b.readOnly = true;
    // Thin provisioning is announced in LIO by UNMAP / WRITE SAME with UNMAP emulation.
    if (flag(attrs.emulate_tpu) || flag(attrs.emulate_tpws)) b.thin = true;
    // LIO's "wwn" of a storage object is its unit serial number (VPD 0x80); the NAA
    // designator derives from it as here (6001405 + its hex digits).
    if (typeof so.wwn === 'string' && /^[\x21-\x7e]{1,36}$/.test(so.wwn)) b.serial = so.wwn;
    if (flag(so.nullio)) note(`${where}.nullio`, 'a null-I/O ramdisk (reads zeroes, discards writes) is imported as a real RAM disk of the same size');
    if (so.write_back === false && type === 'file')
      note(`${where}.write_back`, 'write-through is not imported: file LUNs report a write-back cache and honour SYNCHRONIZE CACHE and FUA');
    if (arr(so.alua_tpgs).some((g) => g.name !== 'default_tg_pt_gp')) note(`${where}.alua_tpgs`, 'ALUA groups other than the default are not imported');
    backstores.push(b);
    byPath.set(`/backstores/${plugin}/${so.name}`, name);
    if (plugin === 'rd_mcp') byPath.set(`/backstores/ramdisk/${so.name}`, name);
  });
  const lunsOf = (where: string, luns: Obj[]) => {
    const out: Obj[] = [];
    luns.forEach((l, i) => {
      const b = byPath.get(String(l.storage_object));
      if (b === undefined) note(`${where}.luns[${i}]`, `${String(l.storage_object)} was not imported; LUN ${String(l.index)} left out`);
      else out.push({ lun: l.index, backstore: b });
    });
    return out;
  };
  const mappedOf = (where: string, mapped: Obj[], source: 'tpgLun' | 'srpLun', exported: Obj[]) => {
    const have = new Set(exported.map((l) => l.lun));
    return mapped.flatMap((m, i) => {
      if (!have.has(m.tpg_lun)) {
        note(`${where}.mapped_luns[${i}]`, `TPG LUN ${String(m.tpg_lun)} was left out, so is this mapping`);
        return [];
      }
      return [{ lun: m.index, [source]: m.tpg_lun, readOnly: flag(m.write_protect) }];
    });
  };

  const doc: Obj = { targets: [], backstores };

  for (const fm of arr(root.fabric_modules)) {
    if (fm.name !== 'iscsi') continue;
    const c = chap(fm, 'discovery_');
    const enable = flag(fm.discovery_enable_auth);
    if (enable || c) doc.discoveryAuth = { enable, ...(c ?? {}) };
  }

  const targets = doc.targets as Obj[];
  let srp: Obj | undefined;
  arr(root.targets).forEach((t, ti) => {
    const tw = `targets[${ti}] (${String(t.fabric)} ${String(t.wwn)})`;
    if (t.fabric === 'iscsi') {
      const tpgs = arr(t.tpgs).map((g, gi) => {
        const gw = `${tw}.tpgs[${gi}]`;
        const attrs = isObj(g.attributes) ? g.attributes : {};
        const attributes: Obj = {};
        for (const [k, v] of Object.entries(attrs)) {
          const rule = TPG_ATTRIBUTES[k];
          if (!rule) continue;
          if ('to' in rule) attributes[rule.to] = rule.bool ? flag(v) : Number(v);
          else if (Number(v) !== rule.lioDefault) note(`${gw}.attributes.${k}`, `${String(v)} is not imported (${rule.why})`);
        }
        const parameters: Obj = {};
        for (const [k, v] of Object.entries(isObj(g.parameters) ? g.parameters : {})) {
          const dflt = LIO_PARAMETER_DEFAULTS[k];
          if (dflt !== undefined && (typeof dflt === 'string' ? [dflt] : dflt).includes(String(v))) continue;
          if (k === 'AuthMethod') {
            // What LIO offers follows from its authentication attribute, as here: only a contradiction is worth saying.
            if (String(v) !== (attributes.authentication ? 'CHAP' : 'None'))
              note(`${gw}.parameters.AuthMethod`, `${String(v)} is not imported: attributes.authentication decides it here (CHAP when true, None when false)`);
            continue;
          }
          if (!ISCSI_KEYS[k]) {
            note(`${gw}.parameters.${k}`, `${String(v)} is not imported (this target negotiates ${k} itself)`);
            continue;
          }
          parameters[k] = String(v);
        }
        const portals: Obj[] = [];
        arr(g.portals).forEach((p, pi) => {
          const address = String(p.ip_address).replace(/^\[(.*)\]$/, '$1');
          // LIO's iser flag adds an iSER listener beside the portal's TCP one (same address:port).
          portals.push({ address, port: p.port, transport: 'tcp' });
          if (flag(p.iser)) portals.push({ address, port: p.port, transport: 'iser' });
          if (flag(p.offload)) note(`${gw}.portals[${pi}].offload`, 'hardware iSCSI offload is not supported; served over TCP');
        });
        const luns = lunsOf(gw, arr(g.luns));
        const tpgNop: Obj = {};
        const acls = arr(g.node_acls).map((a, ai) => {
          const aw = `${gw}.node_acls[${ai}] (${String(a.node_wwn)})`;
          const acl: Obj = { initiator: a.node_wwn };
          const c = chap(a, 'chap_');
          if (c) acl.chap = c;
          acl.mappedLuns = mappedOf(aw, arr(a.mapped_luns), 'tpgLun', luns);
          for (const [k, to] of Object.entries(ACL_TO_TPG)) {
            const v = isObj(a.attributes) ? a.attributes[k] : undefined;
            if (v === undefined) continue;
            if (tpgNop[to] === undefined) tpgNop[to] = Number(v);
            else if (tpgNop[to] !== Number(v))
              note(
                `${aw}.attributes.${k}`,
                `${String(v)} differs from another ACL's ${String(tpgNop[to])}; here it is one value per TPG (the first ACL's is used)`,
              );
          }
          return acl;
        });
        for (const [to, v] of Object.entries(tpgNop)) attributes[to] = to === 'nopInResponseTimeout' && v === 0 ? 1 : v;
        const tpg: Obj = { tag: g.tag, enable: g.enable === undefined ? true : flag(g.enable), portals, luns, acls, attributes };
        const c = chap(g, 'chap_');
        if (c) tpg.chap = c;
        if (Object.keys(parameters).length) tpg.parameters = parameters;
        return tpg;
      });
      targets.push({ iqn: t.wwn, tpgs });
      return;
    }
    if (t.fabric === 'srpt') {
      // LIO has one srpt target per HCA port (named by its GUID or GID); here one SRP target
      // port listens through RDMA/CM on every RDMA address and identifies itself by each
      // device's node GUID, as ib_srpt does.
      const g = arr(t.tpgs)[0];
      if (arr(t.tpgs).length > 1) note(`${tw}.tpgs`, 'only the first TPG of an srpt target is imported');
      if (!g) return;
      const gw = `${tw}.tpgs[0]`;
      const luns = lunsOf(gw, arr(g.luns));
      const acls = arr(g.node_acls).flatMap((a, ai) => {
        const aw = `${gw}.node_acls[${ai}] (${String(a.node_wwn)})`;
        const initiator = typeof a.node_wwn === 'string' ? srpInitiator(a.node_wwn) : undefined;
        if (!initiator) {
          note(aw, 'not an SRP initiator port id; left out');
          return [];
        }
        return [{ initiator, mappedLuns: mappedOf(aw, arr(a.mapped_luns), 'srpLun', luns) }];
      });
      const attrs = isObj(g.attributes) ? g.attributes : {};
      for (const [k, v] of Object.entries(attrs)) {
        const dflt = SRPT_ATTRIBUTE_DEFAULTS[k];
        if (dflt !== undefined && Number(v) !== dflt)
          note(`${gw}.attributes.${k}`, `${String(v)} is not imported (channel sizes are srp.attributes here: credits, maxItIuLength)`);
      }
      const next = { enable: g.enable === undefined ? true : flag(g.enable), luns, acls, attributes: { generateNodeAcls: flag(attrs.generate_node_acls) } };
      if (srp) {
        // One SRP target port here: a second srpt target (another HCA port) must export the same.
        if (JSON.stringify(srp.luns) !== JSON.stringify(next.luns) || JSON.stringify(srp.acls) !== JSON.stringify(next.acls))
          note(tw, 'a second srpt target with other LUNs or ACLs is not imported (one SRP target port serves every RDMA device here)');
        return;
      }
      srp = next;
      note(`${tw}.wwn`, `the srpt port name is not imported: SRP is served on every RDMA device through RDMA/CM (srp.portals, default 0.0.0.0:5555)`);
      return;
    }
    note(tw, `fabric ${JSON.stringify(t.fabric)} is not served by this target (iscsi and srpt are)`);
  });
  if (srp) doc.srp = srp;
  return { document: doc as unknown as ConfigDocument, unmapped };
}
