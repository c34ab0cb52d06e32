// The SCSI layer as the daemon's wiring (./wiring.ts) uses it: backstores from their
// config, one LogicalUnit per backstore, LUN views as the ScsiCore the fabrics submit to.
// It lives in lib/target because it maps the daemon's config and resolved LUNs onto
// lib/scsi and lib/backstore, which know nothing of either.

import { openBackstore } from '../backstore/open.js';
import type { Backstore } from '../backstore/types.js';
import { BufferPool } from '../scsi/bufpool.js';
import { LogicalUnit } from '../scsi/lu.js';
import { Asc } from '../scsi/sense.js';
import type { LuStats } from '../scsi/stats.js';
import type { Nexus, ScsiCore } from '../scsi/types.js';
import { nexusKey } from '../scsi/task.js';
import { LunView } from '../scsi/view.js';
import type { BackstoreConfig } from './config.js';
import type { ResolvedLun } from './engine.js';

/**
 * What the daemon needs from the SCSI core and the backstores: storage, one logical unit
 * per backstore (reservations, unit attentions and the task set live with the LU, so two
 * TPGs exporting one backstore share them, as LIO's se_device does), and a LUN view — the
 * numbers an initiator sees — as the ScsiCore the fabrics submit to.
 */
export interface ScsiLayer {
  openBackstore(store: BackstoreConfig): Promise<Backstore>;
  createLogicalUnit(r: ResolvedLun, stateDir: string): Promise<unknown>;
  createView(luns: ReadonlyArray<{ lun: number; lu: unknown; readOnly: boolean }>): ScsiCore;
  /**
   * The LUN inventory of these LUs' TPG changed: REPORTED LUNS DATA HAS CHANGED (SPC-4 6.37)
   * for `nexuses` (the sessions whose view changed), or for every nexus of the LUs when absent.
   */
  lunsChanged?(lus: unknown[], nexuses?: readonly Nexus[]): void;
  /** The LU's backstore grew: READ CAPACITY answers the new size, CAPACITY DATA HAS CHANGED for its nexuses (SBC-3 4.10). */
  capacityChanged?(lu: unknown): void;
  /** Runs `fn` (synchronously) at the first moment no command of the LU is in flight; rejects after `timeoutMs`. */
  exclusive?(lu: unknown, fn: () => void, timeoutMs?: number): Promise<void>;
  /** The LU is no longer exported: its in-flight commands are aborted (TASK ABORTED) and waited for. */
  retire?(lu: unknown): Promise<void>;
  /** The LU's command counters (lib/scsi/stats.ts) and the tasks in its task set. */
  statsOf?(lu: unknown): { stats: LuStats | undefined; queued: number };
  close?(): Promise<void>;
}

export interface ScsiLayerOptions {
  /**
   * Memory for the bounce buffers of LUs without a zero-copy view (file, block), asked for
   * once, at the first such LU: registered memory when RDMA fabrics run (lib/scsi/bufpool.ts).
   */
  dataMemory?: () => Uint8Array;
}

export function createScsiLayer(
  opts: ScsiLayerOptions = {},
): Required<ScsiLayer> & { createLogicalUnit(r: ResolvedLun, stateDir: string): Promise<LogicalUnit> } {
  const lus: LogicalUnit[] = [];
  // One pool for every LU that needs bounce buffers: they serve one task at a time each.
  let shared: BufferPool | undefined;
  const poolFor = (b: Backstore): BufferPool | undefined => (opts.dataMemory && !b.view ? (shared ??= new BufferPool(opts.dataMemory())) : undefined);
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
    lunsChanged(changed, nexuses) {
      const keys = nexuses && new Set(nexuses.map(nexusKey));
      for (const lu of new Set(changed)) {
        if (!lu) continue;
        if (keys) (lu as LogicalUnit).ua.establishWhere((n) => keys.has(nexusKey(n)), Asc.ReportedLunsDataChanged);
        else (lu as LogicalUnit).unitAttentionOthers(Asc.ReportedLunsDataChanged);
      }
    },
    capacityChanged(lu) {
      (lu as LogicalUnit).capacityChanged();
    },
    exclusive(lu, fn, timeoutMs = 5000) {
      const tasks = (lu as LogicalUnit).tasks;
      const until = Date.now() + timeoutMs;
      return new Promise<void>((resolve, reject) => {
        // Checked from a macrotask: commands arrive from I/O callbacks, so none starts between the check and fn().
        const poll = () => {
          if (tasks.size === 0) {
            try {
              fn();
              resolve();
            } catch (e) {
              reject(e as Error);
            }
          } else if (Date.now() > until) reject(new Error(`commands kept the LU busy for ${timeoutMs} ms; try again`));
          else setTimeout(poll, 1);
        };
        poll();
      });
    },
    async retire(lu) {
      const l = lu as LogicalUnit;
      await l.tasks.abortAndWait(l.tasks.of());
      const i = lus.indexOf(l);
      if (i >= 0) lus.splice(i, 1);
    },
    statsOf(lu) {
      const l = lu as LogicalUnit;
      return { stats: l.stats, queued: l.tasks.size };
    },
    // The daemon closes the backstores it opened (after flushing); the LUs hold nothing else.
    async close() {
      lus.splice(0);
    },
  };
}
