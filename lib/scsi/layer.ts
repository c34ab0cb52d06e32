// The SCSI layer as the daemon's wiring (lib/target/wiring.ts, ScsiLayer) uses it:
// backstores from their config, one LogicalUnit per backstore, LUN views as ScsiCore.

import type { BackstoreConfig } from '../target/config.js';
import type { ResolvedLun } from '../target/engine.js';
import { BlockBackstore } from '../backstore/block.js';
import { FileBackstore } from '../backstore/file.js';
import { RamBackstore } from '../backstore/ram.js';
import { BufferPool } from './bufpool.js';
import { LogicalUnit } from './lu.js';
import { Asc } from './sense.js';
import type { Backstore, ScsiCore } from './types.js';
import { LunView } from './view.js';

export async function openBackstore(store: BackstoreConfig): Promise<Backstore> {
  switch (store.type) {
    case 'ram': {
      if (store.size === undefined) throw new Error('a ram backstore needs a size');
      return new RamBackstore({ blockSize: store.blockSize, blockCount: Math.floor(store.size / store.blockSize), thin: store.thin, readOnly: store.readOnly });
    }
    case 'file':
      if (!store.path) throw new Error('a file backstore needs a path');
      return FileBackstore.open({ path: store.path, blockSize: store.blockSize, readOnly: store.readOnly, ...(store.size !== undefined ? { size: store.size } : {}) });
    case 'block':
      if (!store.path) throw new Error('a block backstore needs a path');
      return BlockBackstore.open({ path: store.path, blockSize: store.blockSize, readOnly: store.readOnly });
  }
}

export interface ScsiLayerImpl {
  openBackstore(store: BackstoreConfig): Promise<Backstore>;
  createLogicalUnit(r: ResolvedLun, stateDir: string): Promise<LogicalUnit>;
  createView(luns: ReadonlyArray<{ lun: number; lu: unknown; readOnly: boolean }>): ScsiCore;
  /** The LUN inventory these LUs are seen through changed (SPC-4 6.37: REPORTED LUNS DATA HAS CHANGED to every nexus). */
  lunsChanged(lus: unknown[]): void;
  close(): Promise<void>;
}

export interface ScsiLayerOptions {
  /**
   * Memory for the bounce buffers of LUs without a zero-copy view (file, block), asked for
   * once, at the first such LU: registered memory when RDMA fabrics run (lib/scsi/bufpool.ts).
   */
  dataMemory?: () => Uint8Array;
}

export function createScsiLayer(opts: ScsiLayerOptions = {}): ScsiLayerImpl {
  const lus: LogicalUnit[] = [];
  // One pool for every LU that needs bounce buffers: they serve one task at a time each.
  let shared: BufferPool | undefined;
  const poolFor = (b: Backstore): BufferPool | undefined =>
    opts.dataMemory && !b.view ? (shared ??= new BufferPool(opts.dataMemory())) : undefined;
  return {
    openBackstore,
    async createLogicalUnit(r, stateDir) {
      const lu = new LogicalUnit({
        backstore: r.backstore,
        name: r.storeName,
        thin: r.store.thin,
        stateDir,
        pool: poolFor(r.backstore),
        ...(r.store.serial !== undefined ? { serial: r.store.serial } : {}),
        ...(r.store.wwn !== undefined ? { wwn: r.store.wwn } : {}),
      });
      await lu.open();
      lus.push(lu);
      return lu;
    },
    createView(luns) {
      return new LunView(luns.map((l) => ({ lun: l.lun, lu: l.lu as LogicalUnit, readOnly: l.readOnly })));
    },
    lunsChanged(changed) {
      for (const lu of new Set(changed)) (lu as LogicalUnit).unitAttentionOthers(Asc.ReportedLunsDataChanged);
    },
    // The daemon closes the backstores it opened (after flushing); the LUs hold nothing else.
    async close() {
      lus.splice(0);
    },
  };
}
