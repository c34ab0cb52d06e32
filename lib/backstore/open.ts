// A backstore from its description (the daemon's `backstores[]` entries and inline LUN
// backstores have this shape): the one place that maps a backstore type to its class.

import { BlockBackstore } from './block.js';
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
