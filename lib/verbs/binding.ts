// Lazy loader and type declarations of the native addon (native/). Nothing here runs at
// import time: code that needs no RDMA (SCSI core, iSCSI/TCP) imports freely on machines
// without rdma-core; the first use of RDMA there throws ERR_RDMA_UNAVAILABLE naming what
// is missing and what to do.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface PortInfo {
  port: number;
  state: string;
  activeMtu: number;
  linkLayer: string;
  gids: { index: number; gid: string }[];
}

export interface DeviceInfo {
  name: string;
  nodeGuid: string;
  sysImageGuid: string;
  maxQpWr: number;
  maxSge: number;
  maxCqe: number;
  maxQpRdAtom: number;
  maxQpInitRdAtom: number;
  maxSrqWr: number;
  maxMrSize: number;
  ports: PortInfo[];
}

export interface NativeContext extends Disposable {
  readonly name: string | null;
  query(): DeviceInfo;
  close(): void;
}
export interface NativePd extends Disposable {
  close(): void;
}
export interface NativeMr extends Disposable {
  readonly buffer: Buffer;
  readonly lkey: number;
  readonly rkey: number;
  readonly address: number;
  readonly length: number;
  close(): void;
}
export interface NativeCq extends Disposable {
  readonly capacity: number;
  poll(): number;
  close(): void;
}
/** The adaptive CQ spin's counters (native/cq.cc). */
export interface CqPollStats {
  budgetUs: number;
  spins: number;
  hits: number;
  spunUs: number;
  expectedGapUs: number;
  /** Wake-ups of this thread by a completion event, over all its CQs. */
  wakes: number;
  /** Completions handed to JS, over all CQs of this thread. */
  completions: number;
}
export interface NativeSrq extends Disposable {
  /** Posts `count` receive records from `words` (at word `offset`) as one chain. */
  postRecv(words: Uint32Array, count: number, offset?: number): number;
  close(): void;
}
export interface QpCaps {
  maxSendWr?: number;
  maxRecvWr?: number;
  maxSendSge?: number;
  maxRecvSge?: number;
  maxInlineData?: number;
}
export interface NativeQp extends Disposable {
  readonly qpNum: number;
  readonly maxInlineData: number;
  /**
   * Posts `count` send WR records from `words` (starting at word `offset`, e.g. a
   * SendBatch's offsetOf(i)) with one ibv_post_send. A failure throws an Error with `code`,
   * `syscall` and `index` (the first WR not posted, counted from the first of this call).
   */
  postSend(words: Uint32Array, count: number, offset?: number): number;
  postRecv(words: Uint32Array, count: number, offset?: number): number;
  state(): string;
  toError(): void;
  close(): void;
}
export interface ConnParam {
  privateData?: Buffer;
  initiatorDepth?: number;
  responderResources?: number;
  retryCount?: number;
  rnrRetryCount?: number;
}
export interface NativeCmId extends Disposable {
  readonly localAddress: string | null;
  readonly remoteAddress: string | null;
  readonly localPort: number | null;
  readonly remotePort: number | null;
  readonly deviceName: string | null;
  bind(address: string, port: number): void;
  listen(backlog?: number): void;
  resolveAddr(dst: string, port: number, timeoutMs?: number, src?: string): void;
  resolveRoute(timeoutMs?: number): void;
  connect(param?: ConnParam): void;
  accept(param?: ConnParam): void;
  reject(privateData?: Buffer): void;
  disconnect(): void;
  close(): void;
}
export interface CmEvent {
  /** rdma_event_str() name: 'RDMA_CM_EVENT_CONNECT_REQUEST', ... */
  type: string;
  status: number;
  id?: NativeCmId;
  /** CONNECT_REQUEST only: the listening id the request arrived on. */
  listener?: NativeCmId;
  privateData?: Buffer;
  initiatorDepth?: number;
  responderResources?: number;
  /** Addresses and device of the event's id, copied when the event arrived. */
  localAddress?: string;
  remoteAddress?: string;
  localPort?: number;
  remotePort?: number;
  deviceName?: string;
}
export interface NativeCmChannel extends Disposable {
  close(): void;
}
export interface LiveObjects {
  contexts: number;
  pds: number;
  mrs: number;
  cqs: number;
  srqs: number;
  qps: number;
  cmChannels: number;
  cmIds: number;
}

export interface Addon {
  Context: new (name: string, onAsyncEvent: (type: string, port: number) => void) => NativeContext;
  ProtectionDomain: new (ctx: NativeContext) => NativePd;
  MemoryRegion: new (pd: NativePd, sizeOrBuffer: number | Buffer, access: number) => NativeMr;
  CompletionQueue: {
    new (ctx: NativeContext, cqe: number, records: Buffer, onCompletions: (n: number) => void): NativeCq;
    /** The most a wake-up spins over this thread's CQs before re-arming (µs); 0 never. */
    setPollBudget(us: number): void;
    pollStats(): CqPollStats;
  };
  SharedReceiveQueue: new (pd: NativePd, attr: { maxWr?: number; maxSge?: number }) => NativeSrq;
  QueuePair: new (id: NativeCmId, pd: NativePd, sendCq: NativeCq, recvCq: NativeCq, srq: NativeSrq | null, caps: QpCaps) => NativeQp;
  CmEventChannel: new (onEvent: (ev: CmEvent) => void) => NativeCmChannel;
  CmId: new (channel: NativeCmChannel) => NativeCmId;
  listDevices(): DeviceInfo[];
  /** Names of the devices present now (re-syncs librdmacm's list; see native/device.cc). */
  syncDevices(): string[];
  allocAligned(size: number): Buffer;
  liveObjects(): LiveObjects;
  wcStatusName(status: number): string;
  punchHole(fd: number, offset: number, length: number): void;
  seekData(fd: number, offset: number): number;
  seekHole(fd: number, offset: number): number;
  blockDeviceInfo(fd: number): { sizeBytes: number; logicalBlockSize: number };
  constants: Record<string, number>;
}

let addon: Addon | undefined;
let failure: Error | undefined;

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The addon, loaded on first use. Throws ERR_RDMA_UNAVAILABLE with advice when it cannot load. */
export function native(): Addon {
  if (addon) return addon;
  if (failure) throw failure;
  try {
    const require = createRequire(import.meta.url);
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => Addon;
    addon = nodeGypBuild(root);
    for (const name of [
      'Context',
      'ProtectionDomain',
      'MemoryRegion',
      'CompletionQueue',
      'SharedReceiveQueue',
      'QueuePair',
      'CmEventChannel',
      'CmId',
    ] as const) {
      const proto = (addon[name] as unknown as { prototype: Record<symbol, unknown> }).prototype;
      proto[Symbol.dispose] = function (this: { close(): void }) {
        this.close();
      };
    }
    return addon;
  } catch (e) {
    failure = unavailable(e as Error);
    throw failure;
  }
}

/** Whether the addon loads here (it may still find no RDMA device). */
export function nativeAvailable(): boolean {
  try {
    native();
    return true;
  } catch {
    return false;
  }
}

const INSTALL = 'Debian/Ubuntu: apt-get install rdma-core libibverbs-dev librdmacm-dev, then `npm run build:native`';

/**
 * The ERR_RDMA_UNAVAILABLE error for an addon that failed to load: names the missing shared
 * library (from the dlopen message) or the missing build, and what to do. Exported for tests.
 */
export function unavailable(cause: Error): Error {
  const msg = cause.message ?? String(cause);
  const lib = /(lib[\w.+-]+\.so[.\d]*): cannot open shared object file/.exec(msg)?.[1];
  let what: string;
  if (lib) {
    what = `the shared library ${lib} is missing (rdma-core's ${lib.startsWith('librdmacm') ? 'RDMA/CM' : 'verbs'} library). Install it (${INSTALL}).`;
  } else if (/No native build was found/.test(msg)) {
    what = `the native addon is not built. Install the headers and build it (${INSTALL}).`;
  } else {
    what = `the native addon failed to load (${msg}). Rebuild it (${INSTALL}).`;
  }
  const err = new Error(`RDMA is unavailable: ${what}`, { cause });
  (err as NodeJS.ErrnoException).code = 'ERR_RDMA_UNAVAILABLE';
  return err;
}

/** Throws ERR_RDMA_UNAVAILABLE when this host has no RDMA device, with what to do. */
export function requireDevices(): DeviceInfo[] {
  const devices = native().listDevices();
  if (devices.length === 0) {
    const err = new Error(
      'RDMA is unavailable: no RDMA device on this host (/sys/class/infiniband is empty). ' +
        'Load soft-RoCE (modprobe rdma_rxe; rdma link add rxe0 type rxe netdev <if>; needs a kernel ' +
        'with CONFIG_RDMA_RXE) or run inside the test VM: bash scripts/vm/run.sh -- <command>.',
    );
    (err as NodeJS.ErrnoException).code = 'ERR_RDMA_UNAVAILABLE';
    throw err;
  }
  return devices;
}
