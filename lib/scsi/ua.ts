// Unit attention conditions (SAM-5 5.14, 6.3), per I_T nexus: queued oldest first, each
// reported once, by CHECK CONDITION or by REQUEST SENSE. The registry of I_T nexuses that
// have reached the LU lives here too: they are the "other" nexuses a condition goes to.

import { Asc } from './sense.js';
import type { Nexus } from './types.js';

export class UnitAttentions {
  private readonly pending = new Map<string, Asc[]>();
  /** Every I_T nexus that has sent a command, by nexus key. */
  readonly nexuses = new Map<string, Nexus>();

  /** Records a nexus; its first command learns the LU was powered on for it (SAM-5 6.3.1). */
  arrive(key: string, nexus: Nexus): void {
    if (this.nexuses.has(key)) return;
    this.nexuses.set(key, nexus);
    this.pending.set(key, [Asc.PowerOnReset]);
  }

  /** The oldest pending condition, removed. */
  take(key: string): Asc | undefined {
    const q = this.pending.get(key);
    if (!q || q.length === 0) return undefined;
    const a = q.shift()!;
    if (q.length === 0) this.pending.delete(key);
    return a;
  }

  /** Drops one pending condition (REPORT LUNS clears REPORTED LUNS DATA HAS CHANGED, SPC-4 6.33). */
  clear(key: string, asc: Asc): void {
    const q = this.pending.get(key);
    if (!q) return;
    const i = q.indexOf(asc);
    if (i >= 0) q.splice(i, 1);
    if (q.length === 0) this.pending.delete(key);
  }

  /** Queues a condition for one nexus; one already pending is not queued twice. */
  establish(key: string, asc: Asc): void {
    const q = this.pending.get(key);
    if (!q) this.pending.set(key, [asc]);
    else if (!q.includes(asc)) q.push(asc);
  }

  /** Queues a condition for every known nexus but `except`. */
  establishAll(asc: Asc, except?: string): void {
    for (const k of this.nexuses.keys()) if (k !== except) this.establish(k, asc);
  }

  /** Queues a condition for every known nexus `covered` accepts. */
  establishWhere(covered: (n: Nexus) => boolean, asc: Asc): void {
    for (const [k, n] of this.nexuses) if (covered(n)) this.establish(k, asc);
  }

  /**
   * The nexus was lost (SAM-5 6.3.4): when it returns it learns I_T NEXUS LOSS OCCURRED,
   * unless a POWER ON condition, which says more, is still pending (SAM-5 5.14 precedence).
   */
  nexusLoss(key: string): void {
    if (!this.nexuses.has(key)) return;
    const q = this.pending.get(key);
    if (!q?.includes(Asc.PowerOnReset)) this.pending.set(key, [Asc.ItNexusLoss]);
  }
}
