// Operational/security text key negotiation (RFC 7143 §6, §13; iSER keys RFC 7145 §6).
// One declarative table says, for every key, its type (how a result is computed), default,
// range, where it may be used and by whom; `Negotiator` answers an initiator's offers from
// it. Keys the login state machine owns (names, SessionType, AuthMethod, CHAP_*) are in the
// table for completeness but answered there.

import type { KeyValue } from './text.js';

/** Result function of a key (§6.2, §13). */
export type KeyKind =
  | 'and' // boolean, result = offer AND ours
  | 'or' // boolean, result = offer OR ours
  | 'min' // numeric, result = min(offer, ours)
  | 'max' // numeric, result = max(offer, ours)
  | 'list' // responder picks the first offered value it supports
  | 'declarative' // string declared by the sender; no answer
  | 'declarative-number' // number declared by the sender; no answer
  | 'marker' // obsolete IFMarker/OFMarker: answer "No" (§13.25 allows No, forbids NotUnderstood)
  | 'obsolete'; // obsolete OFMarkInt/IFMarkInt: answer "Reject" (§13.25)

/** When a key may be sent (§13 "Use"): IO initial login only, LO leading connection login, FFPO full feature only, ALL. */
export type KeyUse = 'IO' | 'LO' | 'FFPO' | 'ALL' | 'SEC';
/** Session-wide or connection-only (§13 "Scope"). */
export type KeyScope = 'SW' | 'CO';

export interface KeyDef {
  readonly name: string;
  readonly kind: KeyKind;
  readonly def: string;
  readonly min?: number;
  readonly max?: number;
  /** For list keys: every value the spec defines. */
  readonly values?: readonly string[];
  readonly use: KeyUse;
  readonly scope: KeyScope;
  /** Who may send it. */
  readonly senders: 'I' | 'T' | 'IT';
  /** Answered by the login state machine, not by the negotiator. */
  readonly owner?: 'login';
  /**
   * The TargetPreferences field holding the target's own value: the keys a TPG's
   * `parameters` may set (preferencesFromKeys, TPG_KEY_RULES).
   */
  readonly pref?: keyof TargetPreferences;
  /** The target's answer to a key no preference field holds (a value it always uses). */
  readonly ours?: string | readonly string[];
  /** When the key is irrelevant (§13): answered with "Irrelevant". */
  readonly irrelevant?: (s: NegotiationState) => boolean;
  readonly spec: string;
}

const SEG_MAX = 16777215;
const discovery = (s: NegotiationState): boolean => s.sessionType === 'Discovery';
const noRdma = (s: NegotiationState): boolean => s.values.get('RDMAExtensions') !== 'Yes';

export const KEYS: readonly KeyDef[] = [
  { name: 'HeaderDigest', kind: 'list', def: 'None', values: ['None', 'CRC32C'], use: 'IO', scope: 'CO', senders: 'IT', pref: 'headerDigest', spec: '§13.1' },
  { name: 'DataDigest', kind: 'list', def: 'None', values: ['None', 'CRC32C'], use: 'IO', scope: 'CO', senders: 'IT', pref: 'dataDigest', spec: '§13.1' },
  {
    name: 'MaxConnections',
    kind: 'min',
    def: '1',
    min: 1,
    max: 65535,
    use: 'LO',
    scope: 'SW',
    senders: 'IT',
    irrelevant: discovery,
    pref: 'maxConnections',
    spec: '§13.2',
  },
  { name: 'SendTargets', kind: 'declarative', def: '', use: 'FFPO', scope: 'SW', senders: 'I', owner: 'login', spec: '§13.3' },
  { name: 'TargetName', kind: 'declarative', def: '', use: 'IO', scope: 'SW', senders: 'IT', owner: 'login', spec: '§13.4' },
  { name: 'InitiatorName', kind: 'declarative', def: '', use: 'IO', scope: 'SW', senders: 'I', owner: 'login', spec: '§13.5' },
  { name: 'TargetAlias', kind: 'declarative', def: '', use: 'ALL', scope: 'SW', senders: 'T', spec: '§13.6' },
  { name: 'InitiatorAlias', kind: 'declarative', def: '', use: 'ALL', scope: 'SW', senders: 'I', owner: 'login', spec: '§13.7' },
  { name: 'TargetAddress', kind: 'declarative', def: '', use: 'ALL', scope: 'SW', senders: 'T', spec: '§13.8' },
  { name: 'TargetPortalGroupTag', kind: 'declarative-number', def: '1', min: 0, max: 65535, use: 'IO', scope: 'SW', senders: 'T', spec: '§13.9' },
  { name: 'InitialR2T', kind: 'or', def: 'Yes', use: 'LO', scope: 'SW', senders: 'IT', irrelevant: discovery, pref: 'initialR2T', spec: '§13.10' },
  { name: 'ImmediateData', kind: 'and', def: 'Yes', use: 'LO', scope: 'SW', senders: 'IT', irrelevant: discovery, pref: 'immediateData', spec: '§13.11' },
  {
    name: 'MaxRecvDataSegmentLength',
    kind: 'declarative-number',
    def: '8192',
    min: 512,
    max: SEG_MAX,
    use: 'ALL',
    scope: 'CO',
    senders: 'IT',
    irrelevant: (s) => s.values.get('RDMAExtensions') === 'Yes',
    pref: 'maxRecvDataSegmentLength',
    spec: '§13.12',
  },
  {
    name: 'MaxBurstLength',
    kind: 'min',
    def: '262144',
    min: 512,
    max: SEG_MAX,
    use: 'LO',
    scope: 'SW',
    senders: 'IT',
    irrelevant: discovery,
    pref: 'maxBurstLength',
    spec: '§13.13',
  },
  {
    name: 'FirstBurstLength',
    kind: 'min',
    def: '65536',
    min: 512,
    max: SEG_MAX,
    use: 'LO',
    scope: 'SW',
    senders: 'IT',
    irrelevant: (s) => discovery(s) || (s.values.get('InitialR2T') === 'Yes' && s.values.get('ImmediateData') === 'No'),
    pref: 'firstBurstLength',
    spec: '§13.14',
  },
  { name: 'DefaultTime2Wait', kind: 'max', def: '2', min: 0, max: 3600, use: 'LO', scope: 'SW', senders: 'IT', pref: 'defaultTime2Wait', spec: '§13.15' },
  { name: 'DefaultTime2Retain', kind: 'min', def: '20', min: 0, max: 3600, use: 'LO', scope: 'SW', senders: 'IT', pref: 'defaultTime2Retain', spec: '§13.16' },
  {
    name: 'MaxOutstandingR2T',
    kind: 'min',
    def: '1',
    min: 1,
    max: 65535,
    use: 'LO',
    scope: 'SW',
    senders: 'IT',
    irrelevant: discovery,
    pref: 'maxOutstandingR2T',
    spec: '§13.17',
  },
  { name: 'DataPDUInOrder', kind: 'or', def: 'Yes', use: 'LO', scope: 'SW', senders: 'IT', irrelevant: discovery, pref: 'dataPduInOrder', spec: '§13.18' },
  {
    name: 'DataSequenceInOrder',
    kind: 'or',
    def: 'Yes',
    use: 'LO',
    scope: 'SW',
    senders: 'IT',
    irrelevant: discovery,
    pref: 'dataSequenceInOrder',
    spec: '§13.19',
  },
  { name: 'ErrorRecoveryLevel', kind: 'min', def: '0', min: 0, max: 2, use: 'LO', scope: 'SW', senders: 'IT', pref: 'errorRecoveryLevel', spec: '§13.20' },
  {
    name: 'SessionType',
    kind: 'declarative',
    def: 'Normal',
    values: ['Discovery', 'Normal'],
    use: 'LO',
    scope: 'SW',
    senders: 'I',
    owner: 'login',
    spec: '§13.21',
  },
  {
    name: 'AuthMethod',
    kind: 'list',
    def: 'None',
    values: ['KRB5', 'SPKM1', 'SPKM2', 'SRP', 'CHAP', 'None'],
    use: 'SEC',
    scope: 'CO',
    senders: 'IT',
    owner: 'login',
    spec: '§12.1',
  },
  {
    name: 'TaskReporting',
    kind: 'list',
    def: 'RFC3720',
    values: ['RFC3720', 'ResponseFence', 'FastAbort'],
    use: 'LO',
    scope: 'SW',
    senders: 'IT',
    irrelevant: discovery,
    ours: ['RFC3720'],
    spec: '§13.23',
  },
  {
    name: 'iSCSIProtocolLevel',
    kind: 'min',
    def: '1',
    min: 0,
    max: 31,
    use: 'LO',
    scope: 'SW',
    senders: 'IT',
    irrelevant: discovery,
    ours: '1',
    spec: '§13.24, RFC 7144',
  },
  { name: 'IFMarker', kind: 'marker', def: 'No', use: 'IO', scope: 'CO', senders: 'IT', spec: '§13.25' },
  { name: 'OFMarker', kind: 'marker', def: 'No', use: 'IO', scope: 'CO', senders: 'IT', spec: '§13.25' },
  { name: 'IFMarkInt', kind: 'obsolete', def: '', use: 'IO', scope: 'CO', senders: 'IT', spec: '§13.25' },
  { name: 'OFMarkInt', kind: 'obsolete', def: '', use: 'IO', scope: 'CO', senders: 'IT', spec: '§13.25' },
  // RFC 7145 §6 (iSER)
  {
    name: 'RDMAExtensions',
    kind: 'and',
    def: 'No',
    use: 'LO',
    scope: 'SW',
    senders: 'IT',
    irrelevant: discovery,
    pref: 'rdmaExtensions',
    spec: 'RFC 7145 §6.2',
  },
  {
    name: 'TargetRecvDataSegmentLength',
    kind: 'declarative-number',
    def: '8192',
    min: 512,
    max: SEG_MAX,
    use: 'IO',
    scope: 'SW',
    senders: 'IT',
    irrelevant: noRdma,
    pref: 'targetRecvDataSegmentLength',
    spec: 'RFC 7145 §6.3',
  },
  {
    name: 'InitiatorRecvDataSegmentLength',
    kind: 'declarative-number',
    def: '8192',
    min: 512,
    max: SEG_MAX,
    use: 'IO',
    scope: 'SW',
    senders: 'IT',
    irrelevant: noRdma,
    spec: 'RFC 7145 §6.4',
  },
  {
    name: 'MaxOutstandingUnexpectedPDUs',
    kind: 'min',
    def: '0',
    min: 0,
    max: 0xffffffff,
    use: 'LO',
    scope: 'SW',
    senders: 'IT',
    irrelevant: noRdma,
    pref: 'maxOutstandingUnexpectedPdus',
    spec: 'RFC 7145 §6.5',
  },
];

export const KEY_TABLE: ReadonlyMap<string, KeyDef> = new Map(KEYS.map((k) => [k.name, k]));

/** CHAP keys exchanged in the security stage (§12.1.3), owned by login/chap. */
export const CHAP_KEYS = new Set(['CHAP_A', 'CHAP_I', 'CHAP_C', 'CHAP_N', 'CHAP_R']);

/** Parse a numerical value (§6.1: decimal-constant or hex-constant). */
export function parseNumber(v: string): number | undefined {
  if (/^[0-9]{1,10}$/.test(v)) return Number(v);
  if (/^0[xX][0-9a-fA-F]{1,8}$/.test(v)) return parseInt(v.slice(2), 16);
  return undefined;
}

/** The session-wide values both a preference and a negotiated result hold (RFC 7143 §13, RFC 7145 §6). */
interface SessionValues {
  maxConnections: number;
  initialR2T: boolean;
  immediateData: boolean;
  maxBurstLength: number;
  firstBurstLength: number;
  defaultTime2Wait: number;
  defaultTime2Retain: number;
  maxOutstandingR2T: number;
  dataPduInOrder: boolean;
  dataSequenceInOrder: boolean;
  errorRecoveryLevel: number;
  /** RDMAExtensions (RFC 7145): as a preference, whether the transport can do RDMA (TCP answers No). */
  rdmaExtensions: boolean;
  maxOutstandingUnexpectedPdus: number;
}

/** What the target is willing to do: every key's preferred value, from defaults plus overrides. */
export interface TargetPreferences extends SessionValues {
  headerDigest: readonly ('CRC32C' | 'None')[];
  dataDigest: readonly ('CRC32C' | 'None')[];
  maxRecvDataSegmentLength: number;
  targetRecvDataSegmentLength: number;
}

export const DEFAULT_PREFERENCES: TargetPreferences = {
  headerDigest: ['CRC32C', 'None'],
  dataDigest: ['CRC32C', 'None'],
  maxConnections: 1,
  // Immediate and unsolicited data save a round trip per write; accept them by default.
  initialR2T: false,
  immediateData: true,
  maxRecvDataSegmentLength: 262144,
  maxBurstLength: 1048576,
  firstBurstLength: 262144,
  defaultTime2Wait: 2,
  defaultTime2Retain: 20,
  maxOutstandingR2T: 8,
  dataPduInOrder: true,
  dataSequenceInOrder: true,
  errorRecoveryLevel: 0,
  rdmaExtensions: false,
  targetRecvDataSegmentLength: 8192,
  maxOutstandingUnexpectedPdus: 0,
};

const yesNo = (b: boolean): string => (b ? 'Yes' : 'No');

function preferred(p: TargetPreferences, key: string): string | readonly string[] | undefined {
  const def = KEY_TABLE.get(key);
  if (!def?.pref) return def?.ours;
  const v = p[def.pref];
  return typeof v === 'boolean' ? yesNo(v) : typeof v === 'number' ? String(v) : v;
}

export interface NegotiationState {
  sessionType: 'Discovery' | 'Normal';
  /** Results (and declarations) so far, by key. */
  values: Map<string, string>;
}

/** Outcome of answering one batch of offers. */
export interface NegotiationResult {
  reply: KeyValue[];
  /** Set when the batch must fail the login/text exchange (§6.2, §13). */
  error?: { kind: 'duplicate' | 'renegotiation'; key: string };
}

/** The values a session and connection run with once login completes. */
export interface OperationalParams extends SessionValues {
  headerDigest: boolean;
  dataDigest: boolean;
  /** Largest data segment the initiator accepts: our limit for Data-In, text responses... */
  initiatorMaxRecvDataSegmentLength: number;
  /** Largest data segment we accept (what we declared). */
  targetMaxRecvDataSegmentLength: number;
}

export class Negotiator {
  readonly state: NegotiationState;
  /** Keys already answered in this login (renegotiation is an initiator error, §6.2). */
  private readonly settled = new Set<string>();
  private declaredOurs = false;
  /** Keys we offered and whose answer we wait for (§6.2: the initiator must answer them). */
  private readonly offered = new Set<string>();
  private offersMade = false;

  constructor(
    readonly prefs: TargetPreferences,
    sessionType: 'Discovery' | 'Normal' = 'Normal',
  ) {
    this.state = { sessionType, values: new Map() };
  }

  setSessionType(t: 'Discovery' | 'Normal'): void {
    this.state.sessionType = t;
  }

  /**
   * Answer one batch of offers (one login/text request's keys). Keys owned by the login
   * state machine are skipped; `inFullFeature` makes IO/LO keys answer Reject.
   */
  negotiate(pairs: readonly KeyValue[], opts: { inFullFeature?: boolean } = {}): NegotiationResult {
    const reply: KeyValue[] = [];
    const seen = new Set<string>();
    for (const [k] of pairs) {
      if (seen.has(k)) return { reply: [], error: { kind: 'duplicate', key: k } };
      seen.add(k);
    }
    // Keys whose results decide others' relevance go first (RDMAExtensions → *RecvDataSegmentLength,
    // InitialR2T/ImmediateData → FirstBurstLength) so a single PDU's order does not matter.
    const order = (k: string): number => (k === 'RDMAExtensions' ? 0 : k === 'InitialR2T' || k === 'ImmediateData' ? 1 : 2);
    const sorted = [...pairs].sort((a, b) => order(a[0]) - order(b[0]));
    const answers = new Map<string, string>();
    for (const [key, value] of sorted) {
      const def = KEY_TABLE.get(key);
      if (def?.owner === 'login' || CHAP_KEYS.has(key)) continue;
      if (!def) {
        answers.set(key, 'NotUnderstood');
        continue;
      } // §6.2, X- and X# keys included
      // An initiator answering a key we offered uses these constants; nothing to answer (§6.2).
      if (this.offered.has(key)) {
        this.offered.delete(key);
        this.settled.add(key);
        this.acceptAnswer(def, value);
        continue;
      }
      if (value === 'NotUnderstood' || value === 'Irrelevant' || value === 'Reject') continue;
      if (this.settled.has(key) && def.kind !== 'declarative-number') return { reply: [], error: { kind: 'renegotiation', key } };
      const a = this.answer(def, value, opts.inFullFeature ?? false);
      this.settled.add(key);
      if (a !== undefined) answers.set(key, a);
    }
    for (const [k] of pairs) {
      const a = answers.get(k);
      if (a !== undefined) reply.push([k, a]);
    }
    return { reply };
  }

  private answer(def: KeyDef, value: string, ffp: boolean): string | undefined {
    const s = this.state;
    if (def.senders === 'T') return 'Reject'; // initiator sent a target-only key
    if (ffp && def.use !== 'ALL' && def.use !== 'FFPO') return 'Reject'; // §13 Use: not negotiable in FFP
    if (def.irrelevant?.(s)) return 'Irrelevant';
    switch (def.kind) {
      case 'marker':
        s.values.set(def.name, 'No');
        return 'No';
      case 'obsolete':
        return 'Reject';
      case 'declarative':
        s.values.set(def.name, value);
        return undefined;
      case 'declarative-number': {
        const n = parseNumber(value);
        if (n === undefined || n < (def.min ?? 0) || n > (def.max ?? SEG_MAX)) return 'Reject';
        // The initiator declares what it can receive; we declare what we can receive.
        s.values.set(`peer:${def.name}`, String(n));
        if (def.name === 'TargetRecvDataSegmentLength') {
          // The initiator's value is a hint (RFC 7145 §6.3); we answer with ours, never above it.
          const ours = Math.min(n, this.prefs.targetRecvDataSegmentLength);
          s.values.set(def.name, String(ours));
          return String(ours);
        }
        return undefined;
      }
      case 'and':
      case 'or': {
        if (value !== 'Yes' && value !== 'No') return 'Reject';
        const ours = preferred(this.prefs, def.name) === 'Yes';
        const theirs = value === 'Yes';
        const r = def.kind === 'and' ? ours && theirs : ours || theirs;
        s.values.set(def.name, yesNo(r));
        return yesNo(r);
      }
      case 'min':
      case 'max': {
        const n = parseNumber(value);
        if (n === undefined || n < (def.min ?? 0) || n > (def.max ?? 0)) return 'Reject';
        const ours = Number(preferred(this.prefs, def.name) ?? def.def);
        let r: number;
        if (def.name === 'MaxOutstandingUnexpectedPDUs')
          r = n === 0 ? ours : ours === 0 ? n : Math.min(n, ours); // 0 = no limit
        else r = def.kind === 'min' ? Math.min(n, ours) : Math.max(n, ours);
        s.values.set(def.name, String(r));
        return String(r);
      }
      case 'list': {
        const supported = preferred(this.prefs, def.name);
        const allowed = Array.isArray(supported) ? supported : (def.values ?? []);
        for (const v of value.split(',')) {
          if (allowed.includes(v)) {
            s.values.set(def.name, v);
            return v;
          }
        }
        return 'Reject';
      }
    }
  }

  /**
   * Keys the target must offer itself because its limit is tighter than the default the
   * initiator would otherwise assume (§6.2: a default is in force until negotiated), e.g. a
   * MaxBurstLength below 262144. Offered once, only for keys the initiator has not
   * mentioned; the login does not transit until every offer is answered.
   */
  offers(): KeyValue[] {
    if (this.offersMade || this.state.sessionType === 'Discovery') return [];
    this.offersMade = true;
    const p = this.prefs;
    const out: KeyValue[] = [];
    const want = (k: string, v: string, tighter: boolean): void => {
      if (!tighter || this.settled.has(k)) return;
      out.push([k, v]);
      this.offered.add(k);
    };
    want('ImmediateData', 'No', !p.immediateData);
    want('InitialR2T', 'Yes', false);
    want('MaxBurstLength', String(p.maxBurstLength), p.maxBurstLength < defaultNumber('MaxBurstLength'));
    want(
      'FirstBurstLength',
      String(Math.min(p.firstBurstLength, p.maxBurstLength)),
      Math.min(p.firstBurstLength, p.maxBurstLength) < defaultNumber('FirstBurstLength'),
    );
    want('DefaultTime2Wait', String(p.defaultTime2Wait), p.defaultTime2Wait > defaultNumber('DefaultTime2Wait'));
    want('DefaultTime2Retain', String(p.defaultTime2Retain), p.defaultTime2Retain < defaultNumber('DefaultTime2Retain'));
    want('HeaderDigest', 'CRC32C', !p.headerDigest.includes('None'));
    want('DataDigest', 'CRC32C', !p.dataDigest.includes('None'));
    return out;
  }

  get awaitingAnswers(): boolean {
    return this.offered.size > 0;
  }

  /** The initiator's answer to one of our offers: the result, if admissible. */
  private acceptAnswer(def: KeyDef, value: string): void {
    const ours = preferred(this.prefs, def.name);
    const s = this.state.values;
    switch (def.kind) {
      case 'and':
      case 'or':
        if (value === 'Yes' || value === 'No')
          s.set(def.name, def.kind === 'and' ? yesNo(ours === 'Yes' && value === 'Yes') : yesNo(ours === 'Yes' || value === 'Yes'));
        else if (typeof ours === 'string') s.set(def.name, ours);
        return;
      case 'min':
      case 'max': {
        const n = parseNumber(value);
        const o = Number(ours);
        s.set(def.name, String(n === undefined ? o : def.kind === 'min' ? Math.min(n, o) : Math.max(n, o)));
        return;
      }
      case 'list':
        if (Array.isArray(ours) && ours.includes(value)) s.set(def.name, value);
        return;
      default:
        return;
    }
  }

  /**
   * Declarations the target makes once per login (§13.12: MaxRecvDataSegmentLength is
   * declarative; each side states its own). Returned once, then empty.
   */
  declarations(): KeyValue[] {
    if (this.declaredOurs) return [];
    this.declaredOurs = true;
    if (this.state.values.get('RDMAExtensions') === 'Yes') return [];
    return [['MaxRecvDataSegmentLength', String(this.prefs.maxRecvDataSegmentLength)]];
  }

  /** The negotiated values with defaults for keys nobody mentioned (§13). */
  result(): OperationalParams {
    return paramsFrom(this.state.values, this.prefs.maxRecvDataSegmentLength);
  }
}

/** A key's default (§13) as a number. */
function defaultNumber(key: string): number {
  return Number(KEY_TABLE.get(key)!.def);
}

/** Operational values from negotiated ones (`v`), the table's defaults for the rest. */
function paramsFrom(v: ReadonlyMap<string, string>, ourMaxRecvDataSegmentLength: number): OperationalParams {
  const num = (k: string): number => Number(v.get(k) ?? KEY_TABLE.get(k)!.def);
  const bool = (k: string): boolean => (v.get(k) ?? KEY_TABLE.get(k)!.def) === 'Yes';
  /** What the initiator declared it can receive. */
  const peer = (k: string): number => Number(v.get(`peer:${k}`) ?? KEY_TABLE.get(k)!.def);
  const rdma = bool('RDMAExtensions');
  const maxBurst = num('MaxBurstLength');
  return {
    headerDigest: v.get('HeaderDigest') === 'CRC32C',
    dataDigest: v.get('DataDigest') === 'CRC32C',
    maxConnections: num('MaxConnections'),
    initialR2T: bool('InitialR2T'),
    immediateData: bool('ImmediateData'),
    initiatorMaxRecvDataSegmentLength: rdma ? peer('InitiatorRecvDataSegmentLength') : peer('MaxRecvDataSegmentLength'),
    targetMaxRecvDataSegmentLength: rdma ? num('TargetRecvDataSegmentLength') : ourMaxRecvDataSegmentLength,
    maxBurstLength: maxBurst,
    // §13.14: FirstBurstLength MUST NOT exceed MaxBurstLength.
    firstBurstLength: Math.min(num('FirstBurstLength'), maxBurst),
    defaultTime2Wait: num('DefaultTime2Wait'),
    defaultTime2Retain: num('DefaultTime2Retain'),
    maxOutstandingR2T: num('MaxOutstandingR2T'),
    dataPduInOrder: bool('DataPDUInOrder'),
    dataSequenceInOrder: bool('DataSequenceInOrder'),
    errorRecoveryLevel: num('ErrorRecoveryLevel'),
    rdmaExtensions: rdma,
    maxOutstandingUnexpectedPdus: num('MaxOutstandingUnexpectedPDUs'),
  };
}

/** The values in force during the login, before anything is negotiated: every key's default (§13; §13.12: 8192-byte data segments). */
export function loginParams(): OperationalParams {
  return paramsFrom(new Map(), defaultNumber('MaxRecvDataSegmentLength'));
}

/** Merge overrides (e.g. from config) into the defaults, clamping to the spec's ranges. */
export function preferencesFrom(overrides: Partial<TargetPreferences> = {}): TargetPreferences {
  const p = { ...DEFAULT_PREFERENCES, ...overrides };
  const clamp = (n: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, Math.floor(n)));
  p.maxRecvDataSegmentLength = clamp(p.maxRecvDataSegmentLength, 512, SEG_MAX);
  p.maxBurstLength = clamp(p.maxBurstLength, 512, SEG_MAX);
  p.firstBurstLength = clamp(Math.min(p.firstBurstLength, p.maxBurstLength), 512, SEG_MAX);
  p.maxOutstandingR2T = clamp(p.maxOutstandingR2T, 1, 65535);
  p.maxConnections = clamp(p.maxConnections, 1, 65535);
  p.errorRecoveryLevel = 0; // only ERL 0 is implemented
  p.targetRecvDataSegmentLength = clamp(p.targetRecvDataSegmentLength, 512, SEG_MAX);
  return p;
}

/** Turn RFC 7143 key=value overrides into preferences (unknown keys are an error). */
export function preferencesFromKeys(keys: Record<string, string>): Partial<TargetPreferences> {
  const p: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(keys)) {
    const def = KEY_TABLE.get(k);
    if (!def?.pref) throw new Error(`${k}: not a negotiable operational key`);
    p[def.pref] = preferenceValue(def, v);
  }
  return p as Partial<TargetPreferences>;
}

function preferenceValue(def: KeyDef, v: string): boolean | number | string[] {
  switch (def.kind) {
    case 'and':
    case 'or':
      if (v !== 'Yes' && v !== 'No') throw new Error(`${def.name}=${v}: expected Yes or No`);
      return v === 'Yes';
    case 'list': {
      const l = v.split(',');
      if (!l.every((x) => def.values!.includes(x))) throw new Error(`${def.name}=${v}: expected ${def.values!.join(' and/or ')}`);
      return l;
    }
    default: {
      const n = parseNumber(v);
      if (n === undefined) throw new Error(`${def.name}=${v}: expected a number`);
      return n;
    }
  }
}

/** How a configuration file may write a key's value. */
export type TpgKeyRule = { kind: 'bool' } | { kind: 'int'; min: number; max: number } | { kind: 'enum'; values: string[] } | { kind: 'text' };

/** Every ordering of every non-empty subset of `values`, shortest first ("None", "CRC32C", "CRC32C,None", ...). */
function valueLists(values: readonly string[]): string[] {
  const lists: string[][] = values.map((v) => [v]);
  for (let i = 0; i < lists.length; i++) for (const v of values) if (!lists[i].includes(v)) lists.push([v, ...lists[i]]);
  return lists.map((l) => l.join(','));
}

function tpgKeyRule(def: KeyDef): TpgKeyRule {
  switch (def.kind) {
    case 'and':
    case 'or':
      return { kind: 'bool' };
    case 'list':
      return { kind: 'enum', values: valueLists(def.values!) };
    case 'declarative':
      return { kind: 'text' };
    default:
      return { kind: 'int', min: def.min!, max: def.max! };
  }
}

/**
 * The login keys a TPG's configuration may set, with the rule for each value: every key a
 * preference field holds, and TargetAlias (the TPG's alias, §13.6). AuthMethod is not among
 * them: it follows the TPG's authentication attribute, as in LIO, so the two cannot
 * disagree; initiator-declared keys (InitiatorRecvDataSegmentLength) are not the target's to set.
 */
export const TPG_KEY_RULES: Readonly<Record<string, TpgKeyRule>> = Object.fromEntries(
  KEYS.filter((k) => k.pref !== undefined || k.name === 'TargetAlias').map((k) => [k.name, tpgKeyRule(k)]),
);
