// The transports the target serves, by the names configuration, status, logs and metrics use.
// The one owner of that list: a nexus carries its transport as an index into it (set once when
// the session is bound), so the SCSI core keeps per-transport counters in arrays indexed by a
// small integer without knowing what the names mean.

/** iSCSI over TCP, iSCSI over RDMA (iSER, RFC 7145), SRP over RDMA/CM. */
export const TRANSPORTS = ['tcp', 'iser', 'srp'] as const;

export type TransportKind = (typeof TRANSPORTS)[number];

/** The index of a transport in TRANSPORTS. */
export function transportIndex(kind: TransportKind): number {
  return TRANSPORTS.indexOf(kind);
}
