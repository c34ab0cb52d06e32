// The daemon's view of the layers below it. The daemon only turns configuration into
// objects and runs their lifecycle (docs/architecture.md: lib/target holds no protocol logic), so all
// it needs from the backstores, the SCSI core, the iSCSI engine and its transports is this
// small surface. `wiring.ts` implements it with the real modules; tests substitute fakes.

import type { InitiatorRow } from '../common/initiators.js';
import type { Backstore } from '../backstore/types.js';
import type { LuStats } from '../scsi/stats.js';
import type { BackstoreConfig, Config, DiscoveryAuthConfig, LunConfig, PortalConfig, RdmaConfig, SrpConfig, TpgConfig } from './config.js';

/** A LUN as the daemon resolved it: where it is in the config and the open backstore behind it. */
export interface ResolvedLun {
  iqn: string;
  tpgTag: number;
  lun: LunConfig;
  /** The backstore's definition (named or inline). */
  store: BackstoreConfig;
  /** Name for status output and default serials: the backstores[] name or "<iqn>/tpg<N>/lun<M>". */
  storeName: string;
  backstore: Backstore;
}

export interface Listener {
  /** Address and port actually bound (port differs from the config's when it asked for 0). */
  address: string;
  port: number;
  /**
   * Why the portal accepts no connection yet: an RDMA portal started before any RDMA device
   * exists waits for one (docs/architecture.md, device lifecycle). Undefined once it listens;
   * absent for TCP, which listens as soon as the listener exists.
   */
  waiting?(): string | undefined;
  /** Resolves once the portal listens: at once when it does now (absent: it always does). */
  whenListening?(): Promise<void>;
  /**
   * Stops accepting at once; resolves when the connections it accepted are gone. With
   * `force`, destroys those that remain (the backstop after the engine's graceful shutdown).
   */
  close(force?: boolean): Promise<void>;
}

export interface SessionStatus {
  initiator: string;
  target: string;
  tpgTag?: number;
  isid?: string;
  tsih?: number;
  connections?: Array<{ cid?: number; remote?: string; local?: string; transport?: string }>;
  [k: string]: unknown;
}

export interface EngineStatus {
  sessions: SessionStatus[];
  /** Monotonic counters the engine keeps (commands, bytes, errors, logins...). */
  counters: Record<string, number>;
  /** Logins, logouts, login and CHAP failures per initiator and fabric (lib/common/initiators.ts bounds the names). */
  initiators?: Array<{ fabric: 'iscsi' | 'srp'; initiator: string } & InitiatorRow>;
  /** RDMA devices the fabrics hold or are letting go of (docs/architecture.md, device lifecycle). */
  rdmaDevices?: Array<{ fabric: string; name: string; state: string; connections: number; registeredMrs: number; ports: Record<string, string> }>;
}

/** The targets as built from a config, ready to be given portals. */
export interface ServedTargets {
  /** Accept connections on one portal; several targets may share it (routing is by TargetName). */
  listen(portal: PortalConfig): Promise<Listener>;
  /**
   * Graceful stop: ask every session to log out (Async Message, RFC 7143 §11.9.1 event 1),
   * let in-flight commands finish, abort what is left after `graceMs`, drop connections.
   */
  shutdown(graceMs: number): Promise<void>;
  status(): EngineStatus;
  /** The command counters of a LUN's logical unit and the tasks it holds now; absent if unsupported. */
  luStats?(lun: ResolvedLun): { stats: LuStats | undefined; queued: number } | undefined;
  /**
   * Export one more LUN in a served TPG, or over SRP (iqn SRP_LUN_OWNER); the sessions whose
   * view holds it get REPORTED LUNS DATA HAS CHANGED. Absent if unsupported.
   */
  addLun?(lun: ResolvedLun): Promise<void>;
  /**
   * Grows a LUN's backstore to `bytes` (undefined: the size its file or device has now) and
   * tells every I_T nexus of its LU (CAPACITY DATA HAS CHANGED); absent if unsupported.
   */
  resizeLun?(lun: ResolvedLun, bytes: number | undefined): Promise<void>;
  /**
   * Stops exporting a LUN: the views lose it (the sessions that saw it get REPORTED LUNS DATA
   * HAS CHANGED on their other LUNs); with `lastUse` (no other LUN exports its backstore) its in-flight commands
   * are aborted (TASK ABORTED) and waited for, so the backstore can be closed.
   */
  removeLun?(lun: ResolvedLun, opts: { lastUse: boolean }): Promise<void>;
  /** How many sessions can reach this LUN now (a LUN with any is "in use"). */
  sessionsSeeing?(lun: ResolvedLun): number;
  /**
   * Adds a TPG (prev undefined) or replaces its settings (ACLs, CHAP, mapped LUNs,
   * attributes, parameters, advertised portals) for logins from now on; ends only the
   * sessions of initiators whose ACL went away or whose CHAP changed. Its LUNs are added
   * separately (addLun). Returns how many sessions it ended.
   */
  setTpg?(iqn: string, tpg: TpgConfig, prev: TpgConfig | undefined): number;
  /** Removes a TPG and ends its sessions (its LUNs are removed first with removeLun). */
  removeTpg?(iqn: string, tag: number): number;
  /**
   * The SRP section's settings (ACLs and their mapped LUNs, attributes, target port id) for
   * logins from now on; `next` undefined or disabled ends every SRP session. Ends only the
   * sessions of removed ACLs (and demo-mode sessions when generateNodeAcls turns off); SRP
   * LUNs are added and removed separately (addLun, removeLun with iqn SRP_LUN_OWNER).
   * Returns how many sessions it ended.
   */
  setSrp?(next: SrpConfig | undefined, prev: SrpConfig | undefined): number;
  /** The SRP target port object, when one was built (tests attach sessions to it). */
  srpTarget?(): unknown;
  /** Discovery-session CHAP for logins from now on. */
  setDiscoveryAuth?(d: DiscoveryAuthConfig): void;
  /** Applies the RDMA tuning (config `rdma`; undefined: the defaults) from now on. */
  setRdma?(r: RdmaConfig | undefined): void;
}

export interface Engine {
  /** Opens (creating if the config says how) the storage behind one backstore definition. */
  openBackstore(store: BackstoreConfig): Promise<Backstore>;
  /** Builds SCSI logical units and iSCSI targets (TPGs, ACLs, CHAP, parameters) for `config`. */
  build(config: Config, luns: ResolvedLun[]): Promise<ServedTargets>;
  /** Transports this build can serve; portals of other kinds are skipped with a warning. */
  readonly transports: ReadonlySet<PortalConfig['transport']>;
}
