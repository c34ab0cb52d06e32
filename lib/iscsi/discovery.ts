// SendTargets (RFC 7143 §13.3 and Appendix C): TargetName followed by its TargetAddress
// values "address:port,tpgt", for the targets this initiator may see. Works in discovery
// sessions and in full feature phase of normal sessions.

import { isIPv6 } from 'node:net';
import type { ConnectionContext } from './context.js';
import type { KeyValue } from './text.js';
import type { TpgEntry } from './tpg.js';

function hostPort(address: string, port: number): string {
  return isIPv6(address) ? `[${address}]:${port}` : `${address}:${port}`;
}

export function sendTargetsReply(conn: ConnectionContext, value: string): KeyValue[] {
  const s = conn.session!;
  const target = conn.target;
  const initiator = s.key.initiatorName;
  const visible = (t: TpgEntry): boolean => t.enabled && (t.generateNodeAcls || t.acls.has(initiator));
  let wanted: (t: TpgEntry) => boolean;
  if (value === 'All') wanted = visible;
  else if (value === '') {
    // Empty value: the session's own target (normal sessions only, §13.3).
    if (s.type !== 'Normal') return [];
    wanted = (t) => t.iqn === s.key.targetName && visible(t);
  } else wanted = (t) => t.iqn === value && visible(t);
  const byIqn = new Map<string, TpgEntry[]>();
  for (const t of target.tpgs)
    if (wanted(t)) {
      const l = byIqn.get(t.iqn) ?? [];
      l.push(t);
      byIqn.set(t.iqn, l);
    }
  const out: KeyValue[] = [];
  const tr = conn.transport;
  for (const [iqn, tpgs] of byIqn) {
    out.push(['TargetName', iqn]);
    for (const t of tpgs) {
      const portals = t.portals.length ? t.portals : [{ address: tr.localAddress, port: tr.localPort }];
      for (const p of portals) {
        const wildcard = p.address === '0.0.0.0' || p.address === '::' || p.address === '';
        out.push(['TargetAddress', `${hostPort(wildcard ? tr.localAddress : p.address, p.port)},${t.tpgt}`]);
      }
    }
  }
  return out;
}
