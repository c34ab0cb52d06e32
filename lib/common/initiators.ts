// Login, logout, login-failure and CHAP-failure counts per initiator (iSCSI initiator name,
// SRP initiator port id), for the Prometheus endpoint (lib/target/metrics.ts). Kept by the
// fabric that sees the events (lib/iscsi, lib/srp); nothing here runs per command.
//
// The label's cardinality is bounded: an initiator gets a row of its own once it has logged
// in, or when a failure names an initiator the configuration knows (an ACL names it); the
// failures of any other name, which anyone on the network can make up, count under
// UNKNOWN_INITIATOR. At most MAX_INITIATORS named rows (plus that one) are kept; past that,
// new names count under UNKNOWN_INITIATOR too (rows are never evicted, so a counter never
// goes backwards).

export const INITIATOR_EVENTS = ['logins', 'logouts', 'loginFailures', 'chapFailures'] as const;
export type InitiatorEvent = (typeof INITIATOR_EVENTS)[number];

/** The row of failures by initiators nobody configured, and of names past the cap. */
export const UNKNOWN_INITIATOR = 'unknown';
export const MAX_INITIATORS = 256;

export type InitiatorRow = Record<InitiatorEvent, number>;

export class InitiatorCounters {
  private readonly rows = new Map<string, InitiatorRow>();

  constructor(readonly max = MAX_INITIATORS) {}

  /**
   * Counts one event of `name`. `known`: the configuration names this initiator (an ACL), so
   * a failure of it deserves its own row; a login that succeeded is always known.
   */
  count(event: InitiatorEvent, name: string | undefined, known: boolean): void {
    let row = name ? this.rows.get(name) : undefined;
    if (!row) {
      const named = this.rows.size - (this.rows.has(UNKNOWN_INITIATOR) ? 1 : 0);
      const own = name !== undefined && name !== '' && (known || event === 'logins') && named < this.max;
      const key = own ? name : UNKNOWN_INITIATOR;
      row = this.rows.get(key);
      if (!row) {
        row = { logins: 0, logouts: 0, loginFailures: 0, chapFailures: 0 };
        this.rows.set(key, row);
      }
    }
    row[event]++;
  }

  /** The rows as plain JSON (`stats` control command). */
  toJSON(): Record<string, InitiatorRow> {
    return Object.fromEntries([...this.rows].map(([k, r]) => [k, { ...r }]));
  }
}
