// A target portal group as the engine serves it (RFC 7143 §4.4.1: the TPG a login reaches,
// its ACLs, CHAP and login preferences), built by IscsiTarget.addTpg from TpgOptions.

import type { ChapCredentials } from './chap.js';
import type { ScsiCore } from '../scsi/types.js';
import type { TargetPreferences } from './params.js';

export interface TpgEntry {
  iqn: string;
  tpgt: number;
  alias?: string;
  enabled: boolean;
  portals: Array<{ address: string; port: number }>;
  acls: Map<string, AclEntry>;
  generateNodeAcls: boolean;
  authentication: boolean;
  chap?: ChapCredentials;
  prefs: TargetPreferences;
  /** The same over iSER: InitialR2T=Yes unless the TPG's parameters say otherwise (see addTpg). */
  rdmaPrefs: TargetPreferences;
  cmdWindow: number;
  core?: ScsiCore;
  relativePortId: number;
  /** Keep-alive timers of its sessions' connections (ms), see NopKeeper. */
  nopInterval: number;
  nopTimeout: number;
}

export interface AclEntry {
  initiator: string;
  chap?: ChapCredentials;
  core?: ScsiCore;
}
