// CHAP authentication in the Security Negotiation stage (RFC 7143 §12.1.3, RFC 1994),
// with CHAP_A=5 (MD5) and CHAP_A=7 (SHA-256, the RFC 7143 errata / IANA "CHAP Algorithms"
// value that Linux and open-iscsi implement). One-way and mutual.
//
//   I → T  CHAP_A=<A1,A2,...>
//   T → I  CHAP_A=<A>  CHAP_I=<id>  CHAP_C=<challenge>
//   I → T  CHAP_N=<name> CHAP_R=<H(id ‖ secret ‖ challenge)> [CHAP_I=<id'> CHAP_C=<c'>]
//   T → I  [CHAP_N=<target name> CHAP_R=<H(id' ‖ mutual secret ‖ c')>]
//
// §12.1.3: the target MUST reject a mutual challenge equal to the one it sent (reflection).

import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import type { KeyValue } from './text.js';

export interface ChapCredentials {
  /** What the initiator must send as CHAP_N, and the secret it proves. */
  userid: string;
  password: string;
  /** Mutual CHAP: what the target answers as CHAP_N, and its secret. */
  mutualUserid?: string;
  mutualPassword?: string;
}

export const enum ChapAlgorithm {
  Md5 = 5,
  Sha256 = 7,
}

const DIGEST: Record<number, { name: string; challenge: number }> = {
  [ChapAlgorithm.Md5]: { name: 'md5', challenge: 16 },
  [ChapAlgorithm.Sha256]: { name: 'sha256', challenge: 32 },
};

/** Decode a binary value (§6.1: "0x" hex or "0b" base64). */
export function decodeBinary(v: string): Buffer | undefined {
  if (/^0[xX]([0-9a-fA-F]{2})+$/.test(v)) return Buffer.from(v.slice(2), 'hex');
  if (/^0[xX][0-9a-fA-F]+$/.test(v)) return Buffer.from('0' + v.slice(2), 'hex'); // odd digit count
  if (/^0[bB][A-Za-z0-9+/]+=*$/.test(v)) return Buffer.from(v.slice(2), 'base64');
  return undefined;
}

export function encodeHex(b: Uint8Array): string {
  return '0x' + Buffer.from(b).toString('hex');
}

export function chapResponse(alg: ChapAlgorithm, id: number, secret: string, challenge: Uint8Array): Buffer {
  const h = createHash(DIGEST[alg].name);
  h.update(Buffer.of(id & 0xff));
  h.update(Buffer.from(secret, 'utf8'));
  h.update(challenge);
  return h.digest();
}

export interface ChapStep {
  reply: KeyValue[];
  /** Authentication finished successfully. */
  done?: boolean;
  /** Authentication failed: the login fails with 0x0201 (§11.13.5). */
  failure?: string;
}

export class ChapServer {
  private state: 'algorithm' | 'response' | 'done' = 'algorithm';
  private alg: ChapAlgorithm = ChapAlgorithm.Md5;
  private id = 0;
  private challenge: Buffer = Buffer.alloc(0);

  constructor(
    private readonly creds: ChapCredentials,
    private readonly opts: { algorithms?: readonly ChapAlgorithm[]; requireMutual?: boolean } = {},
  ) {}

  get finished(): boolean {
    return this.state === 'done';
  }
  get algorithm(): ChapAlgorithm {
    return this.alg;
  }

  /** Feed the CHAP_* keys of one Login Request. */
  step(keys: ReadonlyMap<string, string>): ChapStep {
    if (this.state === 'algorithm') {
      const offered = keys.get('CHAP_A');
      if (offered === undefined) return { reply: [] }; // CHAP chosen; algorithm list comes next PDU
      if ([...keys.keys()].some((k) => k !== 'CHAP_A' && k.startsWith('CHAP_'))) return { reply: [], failure: 'CHAP keys out of order' };
      const ours = this.opts.algorithms ?? [ChapAlgorithm.Sha256, ChapAlgorithm.Md5];
      const pick = offered
        .split(',')
        .map((x) => Number(x))
        .find((a) => ours.includes(a as ChapAlgorithm));
      if (pick === undefined) return { reply: [['CHAP_A', 'Reject']], failure: `no acceptable CHAP_A in "${offered}"` };
      this.alg = pick as ChapAlgorithm;
      this.id = randomInt(256);
      this.challenge = randomBytes(DIGEST[this.alg].challenge);
      this.state = 'response';
      return {
        reply: [
          ['CHAP_A', String(this.alg)],
          ['CHAP_I', String(this.id)],
          ['CHAP_C', encodeHex(this.challenge)],
        ],
      };
    }
    if (this.state === 'response') {
      const name = keys.get('CHAP_N');
      const resp = keys.get('CHAP_R');
      if (name === undefined || resp === undefined) {
        if (keys.size === 0) return { reply: [] };
        return { reply: [], failure: 'expected CHAP_N and CHAP_R' };
      }
      const r = decodeBinary(resp);
      const want = chapResponse(this.alg, this.id, this.creds.password, this.challenge);
      if (name !== this.creds.userid) return { reply: [], failure: `CHAP_N "${name}" unknown` };
      if (!r || r.length !== want.length || !timingSafeEqual(r, want)) return { reply: [], failure: 'CHAP_R mismatch' };
      const mi = keys.get('CHAP_I');
      const mc = keys.get('CHAP_C');
      if (mi === undefined && mc === undefined) {
        if (this.opts.requireMutual) return { reply: [], failure: 'mutual CHAP required' };
        this.state = 'done';
        return { reply: [], done: true };
      }
      if (mi === undefined || mc === undefined) return { reply: [], failure: 'mutual CHAP needs both CHAP_I and CHAP_C' };
      if (!this.creds.mutualUserid || this.creds.mutualPassword === undefined) return { reply: [], failure: 'mutual CHAP not configured' };
      const id = /^[0-9]{1,3}$/.test(mi) ? Number(mi) : NaN;
      const c = decodeBinary(mc);
      if (!(id >= 0 && id <= 255) || !c || c.length === 0) return { reply: [], failure: 'bad mutual CHAP_I/CHAP_C' };
      if (c.equals(this.challenge)) return { reply: [], failure: 'reflected CHAP challenge (RFC 7143 §12.1.3)' };
      this.state = 'done';
      const ours = chapResponse(this.alg, id, this.creds.mutualPassword, c);
      return {
        reply: [
          ['CHAP_N', this.creds.mutualUserid],
          ['CHAP_R', encodeHex(ours)],
        ],
        done: true,
      };
    }
    return { reply: [], failure: 'CHAP already complete' };
  }
}
