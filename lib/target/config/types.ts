// The resolved configuration model: what validateConfig() returns once every field of the
// file has been checked, defaulted and normalised (sizes in bytes, LIO's 0/1 as booleans,
// bare mapped-LUN numbers as objects). The file's own shape is owned by ./schema.ts.

import type { BackstoreSpec } from '../../backstore/open.js';
export type { BackstoreType } from '../../backstore/open.js';

/** 'srp' portals come only from the top-level `srp` section (a TPG serves iSCSI). */
import type { TransportKind } from '../../common/transports.js';
export type { TransportKind };

/** A backstore (type, size, path, block size, read-only, thin: lib/backstore's BackstoreSpec) and the LU's identity. */
export interface BackstoreConfig extends BackstoreSpec {
  /** Required in the top-level `backstores[]` (LUNs refer to it); absent when inline. */
  name?: string;
  /** Unit serial number (VPD page 0x80); derived from the name when absent. */
  serial?: string;
  /** 32 hex digits, NAA 6 (VPD page 0x83); LIO's 6001405 + serial form when absent. */
  wwn?: string;
}

export interface LunConfig {
  lun: number;
  /** Either a name from `backstores[]` or an inline definition owned by this LUN. */
  backstore: string | BackstoreConfig;
}

export interface PortalConfig {
  address: string;
  port: number;
  transport: TransportKind;
}

export interface ChapConfig {
  userid: string;
  password: string;
  mutualUserid?: string;
  mutualPassword?: string;
}

export interface MappedLunConfig {
  /** LUN number the initiator sees. */
  lun: number;
  /** LUN number in the TPG it maps to. */
  tpgLun: number;
  readOnly: boolean;
}

export interface AclConfig {
  initiator: string;
  chap?: ChapConfig;
  /** Absent: every TPG LUN, same numbers (LIO's auto_add_mapped_luns). */
  mappedLuns?: MappedLunConfig[];
}

export interface TpgAttributes {
  /** Demo mode: any initiator may log in and sees every LUN (LIO generate_node_acls). */
  generateNodeAcls: boolean;
  /** Require CHAP on normal sessions. */
  authentication: boolean;
  /** In demo mode, export LUNs read-only (LIO demo_mode_write_protect). */
  demoModeWriteProtect: boolean;
  /** Commands an initiator may have outstanding per session (CmdSN window). */
  defaultCmdsnDepth: number;
  /** Seconds a login may take before the connection is dropped. */
  loginTimeout: number;
  /** Seconds without a PDU from the initiator before a NOP-In ping (0 = no pings; LIO nopin_timeout). */
  nopInTimeout: number;
  /** Seconds a NOP-In ping may go unanswered before the connection is dropped (LIO nopin_response_timeout). */
  nopInResponseTimeout: number;
}

export interface TpgConfig {
  tag: number;
  enable: boolean;
  portals: PortalConfig[];
  luns: LunConfig[];
  acls: AclConfig[];
  attributes: TpgAttributes;
  /** CHAP for demo-mode sessions when `authentication` is on (no per-initiator ACL to hold it). */
  chap?: ChapConfig;
  /** iSCSI login key overrides, RFC 7143 §13 names and string values. */
  parameters: Record<string, string>;
}

/** An SRP ACL: an initiator port id ("0x" + 32 hex digits) or, for RDMA/CM logins, a source address. */
export interface SrpAclConfig {
  initiator: string;
  /** Absent: every SRP LUN, same numbers. */
  mappedLuns?: MappedLunConfig[];
}

export interface SrpAttributes {
  /** Any initiator that names the target port id may log in and sees every SRP LUN. */
  generateNodeAcls: boolean;
  /** Credits per RDMA channel (request receive depth; LIO srpt uses 128). */
  credits: number;
  /** Offer SRP-2 immediate data (ib_srp uses it for writes up to 8 KiB). */
  immediateData: boolean;
  /** Largest initiator-to-target IU accepted (ib_srp asks 8260 by default, more with max_it_iu_size=). */
  maxItIuLength: number;
}

/** The SRP target port (LIO's srpt): RDMA/CM portals, its identifier, LUNs and ACLs. */
export interface SrpConfig {
  enable: boolean;
  portals: Array<{ address: string; port: number }>;
  /** id_ext and ioc_guid the initiator's add_target names (16 hex digits each); absent: each RDMA device's node GUID, as LIO. */
  targetPortId?: { idExt: string; iocGuid: string };
  luns: LunConfig[];
  acls: SrpAclConfig[];
  attributes: SrpAttributes;
}

export interface TargetConfig {
  iqn: string;
  tpgs: TpgConfig[];
}

export interface DiscoveryAuthConfig {
  enable: boolean;
  userid?: string;
  password?: string;
  mutualUserid?: string;
  mutualPassword?: string;
}

export interface ControlConfig {
  socket: string;
}

export interface MetricsConfig {
  /** ADDR:PORT of the Prometheus endpoint (GET /metrics), e.g. "127.0.0.1:9469". */
  listen: string;
}

export interface RdmaConfig {
  /** The most a wake-up spins over the CQs before sleeping, µs; 0 never. */
  pollUs: number;
  /** Registered memory for file and block LUN buffers, MiB (absent: RDMA_BUFFER_MIB_DEFAULT); read at start. */
  bufferMiB?: number;
}

export interface Config {
  targets: TargetConfig[];
  backstores: BackstoreConfig[];
  discoveryAuth: DiscoveryAuthConfig;
  /** The SRP target port, when configured. */
  srp?: SrpConfig;
  /** Where persistent-reservation state (APTPL) lives. */
  stateDir: string;
  /** Unix socket for `rdma-target ctl`-style JSON-lines requests; false disables it. */
  control: ControlConfig | false;
  /** The Prometheus endpoint; absent: off. */
  metrics?: MetricsConfig;
  /** RDMA tuning; absent: the defaults. */
  rdma?: RdmaConfig;
}

export interface ValidationResult {
  config?: Config;
  errors: string[];
  warnings: string[];
}

export interface ValidateOptions {
  /** Permit port 0 (an ephemeral port the kernel picks); the CLI's --listen allows it for tests. */
  allowEphemeralPort?: boolean;
  /** Overrides for the environment-derived defaults (tests pin them). */
  defaults?: Partial<Pick<Config, 'stateDir'>> & { controlSocket?: string };
}
