// Every default of the configuration, in one place: the schema publishes them to editors
// (`default`), validation fills them in, and the embedded default config is built from them.

import type { ConfigDocument } from './schema.js';
import type { SrpAttributes, TpgAttributes } from './types.js';

export const DEFAULT_IQN = 'iqn.2025-01.org.rdma-target:default';
export const DEFAULT_PORT = 3260;
export const DEFAULT_ADDRESS = '127.0.0.1';

/** The ResolvedLun.iqn of SRP LUNs (an SRP target port has no iSCSI name). */
export const SRP_LUN_OWNER = 'srp';
export const SRP_DEFAULT_PORT = 5555;
/** SRP portals default to every interface: RDMA/CM binds what the RDMA devices serve. */
export const SRP_DEFAULT_ADDRESS = '0.0.0.0';

/** LIO keeps CHAP secrets short enough for every initiator; see docs/config.md. */
export const CHAP_SECRET_MIN = 12;
export const CHAP_SECRET_MAX = 16;

export const DEFAULT_BLOCK_SIZE = 512;

/**
 * `rdma.pollUs`: how long a wake-up may spin over the CQs for the next completion before
 * sleeping (native/cq.cc). Chosen by measurement: docs/benchmarks/polling.md.
 */
export const RDMA_POLL_US_DEFAULT = 500;
export const RDMA_POLL_US_MAX = 100000;
/**
 * `rdma.bufferMiB`: registered memory for the I/O buffers of file and block LUNs, so RDMA
 * moves their data with no copy; what does not fit goes through the connections' bounce
 * slots (one copy). 64 MiB holds 1 MiB for each of 64 commands in flight.
 */
export const RDMA_BUFFER_MIB_DEFAULT = 64;
export const RDMA_BUFFER_MIB_MAX = 65536;
export const DEFAULT_TPG_TAG = 1;

export const TPG_ATTRIBUTE_DEFAULTS: Readonly<TpgAttributes> = {
  generateNodeAcls: false,
  authentication: false,
  demoModeWriteProtect: false,
  defaultCmdsnDepth: 64,
  loginTimeout: 15,
  nopInTimeout: 15,
  nopInResponseTimeout: 30,
};

export const SRP_ATTRIBUTE_DEFAULTS: Readonly<SrpAttributes> = {
  generateNodeAcls: false,
  credits: 128,
  immediateData: true,
  maxItIuLength: 65536,
};

/**
 * The config served when the command is run with no arguments: one thin 1 GiB RAM LUN,
 * demo mode, loopback only. RDMA portals are added by `addRdmaPortals` when devices exist.
 */
export function defaultConfigJson(): ConfigDocument {
  return {
    targets: [
      {
        iqn: DEFAULT_IQN,
        tpgs: [
          {
            tag: 1,
            portals: [{ address: DEFAULT_ADDRESS, port: DEFAULT_PORT, transport: 'tcp' }],
            luns: [{ lun: 0, backstore: 'ram0' }],
            attributes: { generateNodeAcls: true, authentication: false, demoModeWriteProtect: false },
          },
        ],
      },
    ],
    backstores: [{ name: 'ram0', type: 'ram', size: '1GiB', blockSize: 512, thin: true }],
  };
}

export function defaultStateDir(): string {
  if (process.getuid?.() === 0) return '/var/lib/rdma-target';
  const base = process.env.XDG_STATE_HOME || (process.env.HOME ? `${process.env.HOME}/.local/state` : '/tmp');
  return `${base}/rdma-target`;
}

export function defaultControlSocket(): string {
  if (process.getuid?.() === 0) return '/run/rdma-target.sock';
  if (process.env.XDG_RUNTIME_DIR) return `${process.env.XDG_RUNTIME_DIR}/rdma-target.sock`;
  return `/tmp/rdma-target-${process.getuid?.() ?? 'user'}.sock`;
}
