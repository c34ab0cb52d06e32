// A backstore from its description (the daemon's `backstores[]` entries and inline LUN
// backstores have this shape): the one place that maps a backstore type to its class.

import { BlockBackstore, rescanBlockBackstore } from './block.js';
import { FileBackstore } from './file.js';
import { RamBackstore } from './ram.js';
import type { Backstore } from './types.js';

export type BackstoreType = 'ram' | 'file' | 'block';

/** A backstore as the configuration describes it (the daemon's BackstoreConfig adds the name and the LU's identity). */
export interface BackstoreSpec {
  type: BackstoreType;
  /** Bytes. Required for ram; for file, required only when the file must be created or grown. */
  size?: number;
  blockSize: number;
  path?: string;
  readOnly: boolean;
  /** Thin provisioning: the LUN reports LBPME and honours UNMAP / GET LBA STATUS. */
  thin: boolean;
}

export async function openBackstore(store: BackstoreSpec): Promise<Backstore> {
  switch (store.type) {
    case 'ram': {
      if (store.size === undefined) throw new Error('a ram backstore needs a size');
      return new RamBackstore({ blockSize: store.blockSize, blockCount: Math.floor(store.size / store.blockSize), thin: store.thin, readOnly: store.readOnly });
    }
    case 'file':
      if (!store.path) throw new Error('a file backstore needs a path');
      return FileBackstore.open({
        path: store.path,
        blockSize: store.blockSize,
        readOnly: store.readOnly,
        ...(store.size !== undefined ? { size: store.size } : {}),
      });
    case 'block':
      if (!store.path) throw new Error('a block backstore needs a path');
      return BlockBackstore.open({ path: store.path, blockSize: store.blockSize, readOnly: store.readOnly });
  }
}

export interface GrowOptions {
  /** Memory for a grown RAM LUN (registered memory where RDMA fabrics run); default heap. */
  allocate?(bytes: number): Uint8Array;
  /** Frees a RAM LUN's old memory (or memory allocated for a grow that did not happen). */
  release?(memory: Uint8Array): void;
  /** Runs `swap` at a moment when no command of this LUN is in flight (a RAM grow moves the data). */
  exclusive?(swap: () => void): Promise<void>;
}

/**
 * Grows a backstore to `bytes`, or, with `bytes` undefined, takes the size its file or device
 * has now. Never shrinks (the caller has refused that with the field's name).
 */
export async function growBackstore(b: Backstore, store: BackstoreSpec, bytes: number | undefined, o: GrowOptions = {}): Promise<void> {
  switch (store.type) {
    case 'ram': {
      if (!(b instanceof RamBackstore)) throw new Error('not a RAM backstore');
      if (bytes === undefined) throw new Error('a ram backstore needs a size');
      const memory = o.allocate?.(bytes);
      let old: Uint8Array | undefined;
      const swap = () => {
        old = b.grow(bytes / b.blockSize, memory);
      };
      try {
        await (o.exclusive ? o.exclusive(swap) : Promise.resolve(swap()));
      } catch (e) {
        if (memory) o.release?.(memory);
        throw e;
      }
      if (old) o.release?.(old);
      return;
    }
    case 'file':
      if (!(b instanceof FileBackstore)) throw new Error('not a file backstore');
      return bytes === undefined ? b.rescan() : b.resize(bytes);
    case 'block':
      if (!(b instanceof FileBackstore) || !store.path) throw new Error('not a block backstore');
      if (bytes !== undefined) throw new Error('a block backstore takes its size from the device');
      return rescanBlockBackstore(b, store.path);
  }
}
