// Negotiation tables (RFC 7143 §6.2, §13; RFC 7145 §6): for each key its default, range,
// result function and the answer to an offer.
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_PREFERENCES,
  KEYS,
  KEY_TABLE,
  Negotiator,
  parseNumber,
  loginParams,
  preferencesFrom,
  preferencesFromKeys,
  TPG_KEY_RULES,
  type TargetPreferences,
} from '../../../lib/iscsi/params.js';

function answer(key: string, value: string, prefs: Partial<TargetPreferences> = {}, sessionType: 'Normal' | 'Discovery' = 'Normal'): string | undefined {
  const n = new Negotiator(preferencesFrom(prefs), sessionType);
  const r = n.negotiate([[key, value]]);
  expect(r.error).toBeUndefined();
  return r.reply.find(([k]) => k === key)?.[1];
}

describe('key table', () => {
  it('has every RFC 7143 §13 key and the RFC 7145 iSER keys', () => {
    const names = KEYS.map((k) => k.name);
    for (const k of [
      'HeaderDigest',
      'DataDigest',
      'MaxConnections',
      'SendTargets',
      'TargetName',
      'InitiatorName',
      'TargetAlias',
      'InitiatorAlias',
      'TargetAddress',
      'TargetPortalGroupTag',
      'InitialR2T',
      'ImmediateData',
      'MaxRecvDataSegmentLength',
      'MaxBurstLength',
      'FirstBurstLength',
      'DefaultTime2Wait',
      'DefaultTime2Retain',
      'MaxOutstandingR2T',
      'DataPDUInOrder',
      'DataSequenceInOrder',
      'ErrorRecoveryLevel',
      'SessionType',
      'AuthMethod',
      'TaskReporting',
      'iSCSIProtocolLevel',
      'IFMarker',
      'OFMarker',
      'IFMarkInt',
      'OFMarkInt',
      'RDMAExtensions',
      'TargetRecvDataSegmentLength',
      'InitiatorRecvDataSegmentLength',
      'MaxOutstandingUnexpectedPDUs',
    ]) {
      expect(names).toContain(k);
    }
  });
  // biome-ignore format: a table: one case per row, read across
  const defaults: Array<[string, string, string, number?, number?]> = [
    ['HeaderDigest', 'None', 'list'], ['DataDigest', 'None', 'list'], ['MaxConnections', '1', 'min', 1, 65535],
    ['InitialR2T', 'Yes', 'or'], ['ImmediateData', 'Yes', 'and'], ['MaxRecvDataSegmentLength', '8192', 'declarative-number', 512, 16777215],
    ['MaxBurstLength', '262144', 'min', 512, 16777215], ['FirstBurstLength', '65536', 'min', 512, 16777215],
    ['DefaultTime2Wait', '2', 'max', 0, 3600], ['DefaultTime2Retain', '20', 'min', 0, 3600], ['MaxOutstandingR2T', '1', 'min', 1, 65535],
    ['DataPDUInOrder', 'Yes', 'or'], ['DataSequenceInOrder', 'Yes', 'or'], ['ErrorRecoveryLevel', '0', 'min', 0, 2],
    ['SessionType', 'Normal', 'declarative'], ['RDMAExtensions', 'No', 'and'], ['TargetRecvDataSegmentLength', '8192', 'declarative-number', 512, 16777215],
    ['InitiatorRecvDataSegmentLength', '8192', 'declarative-number', 512, 16777215], ['MaxOutstandingUnexpectedPDUs', '0', 'min'],
  ];
  for (const [k, def, kind, min, max] of defaults) {
    it(`${k}: default ${def}, ${kind}${min !== undefined ? ` ${min}..${max}` : ''}`, () => {
      const d = KEY_TABLE.get(k)!;
      expect(d.def).toBe(def);
      expect(d.kind).toBe(kind);
      if (min !== undefined) {
        expect(d.min).toBe(min);
        expect(d.max).toBe(max);
      }
    });
  }
  it('scope and use', () => {
    expect(KEY_TABLE.get('HeaderDigest')).toMatchObject({ use: 'IO', scope: 'CO' });
    expect(KEY_TABLE.get('MaxRecvDataSegmentLength')).toMatchObject({ use: 'ALL', scope: 'CO' });
    expect(KEY_TABLE.get('MaxBurstLength')).toMatchObject({ use: 'LO', scope: 'SW' });
    expect(KEY_TABLE.get('SendTargets')).toMatchObject({ use: 'FFPO' });
  });
});

describe('answers to offers (target defaults: InitialR2T=No, ImmediateData=Yes, MaxBurst 1 MiB, FirstBurst 256 KiB, MaxOutstandingR2T 8)', () => {
  // biome-ignore format: a table: one case per row, read across
  const cases: Array<[string, string, string | undefined, Partial<TargetPreferences>?]> = [
    // boolean OR: Yes if either says Yes
    ['InitialR2T', 'Yes', 'Yes'], ['InitialR2T', 'No', 'No'], ['InitialR2T', 'No', 'Yes', { initialR2T: true }],
    ['DataPDUInOrder', 'No', 'Yes'], ['DataSequenceInOrder', 'No', 'Yes'],
    // boolean AND: Yes only if both
    ['ImmediateData', 'Yes', 'Yes'], ['ImmediateData', 'No', 'No'], ['ImmediateData', 'Yes', 'No', { immediateData: false }],
    ['InitialR2T', 'maybe', 'Reject'],
    // numeric min / max
    ['MaxBurstLength', '262144', '262144'], ['MaxBurstLength', '16776192', '1048576'], ['MaxBurstLength', '0x40000', '262144'],
    ['MaxBurstLength', '511', 'Reject'], ['MaxBurstLength', '16777216', 'Reject'], ['MaxBurstLength', 'lots', 'Reject'],
    ['FirstBurstLength', '65536', '65536'], ['FirstBurstLength', '16776192', '262144'],
    ['MaxOutstandingR2T', '1', '1'], ['MaxOutstandingR2T', '100', '8'], ['MaxOutstandingR2T', '0', 'Reject'],
    ['MaxConnections', '8', '1'], ['ErrorRecoveryLevel', '2', '0'], ['ErrorRecoveryLevel', '3', 'Reject'],
    ['DefaultTime2Wait', '0', '2'], ['DefaultTime2Wait', '10', '10'], ['DefaultTime2Retain', '0', '0'], ['DefaultTime2Retain', '60', '20'],
    ['iSCSIProtocolLevel', '2', '1'],
    // lists: the first offered value we support
    ['HeaderDigest', 'CRC32C,None', 'CRC32C'], ['HeaderDigest', 'None,CRC32C', 'None'], ['DataDigest', 'CRC32C,None', 'None', { dataDigest: ['None'] }],
    ['DataDigest', 'CRC32C', 'Reject', { dataDigest: ['None'] }], ['HeaderDigest', 'MD5', 'Reject'],
    ['TaskReporting', 'FastAbort,RFC3720', 'RFC3720'], ['TaskReporting', 'FastAbort', 'Reject'],
    // declarative: no answer
    ['MaxRecvDataSegmentLength', '65536', undefined], ['InitiatorAlias', 'host', undefined],
    // obsolete markers (§13.25)
    ['IFMarker', 'No', 'No'], ['OFMarker', 'Yes', 'No'], ['IFMarkInt', '2048~8192', 'Reject'], ['OFMarkInt', '2048', 'Reject'],
    // unknown and extension keys
    ['X-com.example.Foo', 'bar', 'NotUnderstood'], ['X#vendor', '1', 'NotUnderstood'], ['NoSuchKey', '1', 'NotUnderstood'],
    // target-only keys from an initiator
    ['TargetAlias', 'x', 'Reject'], ['TargetPortalGroupTag', '1', 'Reject'],
    // iSER over a transport without RDMA (TCP): No
    ['RDMAExtensions', 'Yes', 'No'], ['RDMAExtensions', 'Yes', 'Yes', { rdmaExtensions: true }],
    ['InitiatorRecvDataSegmentLength', '262144', 'Irrelevant'], ['TargetRecvDataSegmentLength', '8192', 'Irrelevant'],
    ['MaxOutstandingUnexpectedPDUs', '8', 'Irrelevant'],
  ];
  for (const [k, v, want, prefs] of cases) {
    it(`${k}=${v} → ${want ?? '(no answer)'}${prefs ? ` with ${JSON.stringify(prefs)}` : ''}`, () => expect(answer(k, v, prefs)).toBe(want));
  }
});

describe('irrelevance and phase', () => {
  for (const k of [
    'InitialR2T',
    'ImmediateData',
    'MaxBurstLength',
    'FirstBurstLength',
    'MaxConnections',
    'MaxOutstandingR2T',
    'DataPDUInOrder',
    'DataSequenceInOrder',
  ]) {
    it(`${k} is Irrelevant in a discovery session`, () =>
      expect(answer(k, k.endsWith('Length') ? '65536' : k.startsWith('Max') ? '1' : 'Yes', {}, 'Discovery')).toBe('Irrelevant'));
  }
  it('FirstBurstLength is Irrelevant with InitialR2T=Yes and ImmediateData=No in the same PDU, whatever the order', () => {
    const n = new Negotiator(preferencesFrom({}));
    const r = n.negotiate([
      ['FirstBurstLength', '65536'],
      ['InitialR2T', 'Yes'],
      ['ImmediateData', 'No'],
    ]);
    expect(r.reply).toEqual([
      ['FirstBurstLength', 'Irrelevant'],
      ['InitialR2T', 'Yes'],
      ['ImmediateData', 'No'],
    ]);
  });
  it('LO/IO keys are rejected in full feature phase; MaxRecvDataSegmentLength is not', () => {
    const n = new Negotiator(preferencesFrom({}));
    const r = n.negotiate(
      [
        ['MaxBurstLength', '65536'],
        ['MaxRecvDataSegmentLength', '4096'],
      ],
      { inFullFeature: true },
    );
    expect(r.reply).toEqual([['MaxBurstLength', 'Reject']]);
  });
  it('duplicate key in one batch and renegotiation across batches are errors (§6.2)', () => {
    const n = new Negotiator(preferencesFrom({}));
    expect(
      n.negotiate([
        ['MaxBurstLength', '65536'],
        ['MaxBurstLength', '65536'],
      ]).error,
    ).toEqual({ kind: 'duplicate', key: 'MaxBurstLength' });
    expect(n.negotiate([['MaxBurstLength', '65536']]).error).toBeUndefined();
    expect(n.negotiate([['MaxBurstLength', '65536']]).error).toEqual({ kind: 'renegotiation', key: 'MaxBurstLength' });
  });
});

describe('results', () => {
  it('defaults for keys nobody mentioned, and our declaration', () => {
    const n = new Negotiator(preferencesFrom({}));
    n.negotiate([['MaxRecvDataSegmentLength', '65536']]);
    const r = n.result();
    expect(r).toMatchObject({
      headerDigest: false,
      dataDigest: false,
      initialR2T: true,
      immediateData: true,
      maxBurstLength: 262144,
      firstBurstLength: 65536,
      maxOutstandingR2T: 1,
      initiatorMaxRecvDataSegmentLength: 65536,
      targetMaxRecvDataSegmentLength: DEFAULT_PREFERENCES.maxRecvDataSegmentLength,
      errorRecoveryLevel: 0,
    });
    expect(n.declarations()).toEqual([['MaxRecvDataSegmentLength', '262144']]);
    expect(n.declarations()).toEqual([]);
  });
  it('FirstBurstLength is clamped to MaxBurstLength (§13.14)', () => {
    const n = new Negotiator(preferencesFrom({}));
    n.negotiate([
      ['MaxBurstLength', '16384'],
      ['FirstBurstLength', '65536'],
    ]);
    expect(n.result().firstBurstLength).toBe(16384);
  });
  it('iSER: RDMAExtensions=Yes uses Initiator/TargetRecvDataSegmentLength and no MaxRecvDataSegmentLength', () => {
    const n = new Negotiator(preferencesFrom({ rdmaExtensions: true, targetRecvDataSegmentLength: 8192 }));
    const r = n.negotiate([
      ['InitiatorRecvDataSegmentLength', '262144'],
      ['TargetRecvDataSegmentLength', '65536'],
      ['RDMAExtensions', 'Yes'],
      ['MaxOutstandingUnexpectedPDUs', '0'],
      ['MaxRecvDataSegmentLength', '8192'],
    ]);
    expect(r.reply).toEqual([
      ['TargetRecvDataSegmentLength', '8192'],
      ['RDMAExtensions', 'Yes'],
      ['MaxOutstandingUnexpectedPDUs', '0'],
      ['MaxRecvDataSegmentLength', 'Irrelevant'],
    ]);
    expect(n.declarations()).toEqual([]);
    expect(n.result()).toMatchObject({ rdmaExtensions: true, initiatorMaxRecvDataSegmentLength: 262144, targetMaxRecvDataSegmentLength: 8192 });
  });
  it('numbers: decimal and hex (§6.1)', () => {
    expect(parseNumber('8192')).toBe(8192);
    expect(parseNumber('0x2000')).toBe(8192);
    expect(parseNumber('-1')).toBeUndefined();
    expect(parseNumber('1e3')).toBeUndefined();
  });
  it('config overrides by RFC key name', () => {
    expect(preferencesFromKeys({ InitialR2T: 'Yes', MaxBurstLength: '65536', HeaderDigest: 'CRC32C' })).toEqual({
      initialR2T: true,
      maxBurstLength: 65536,
      headerDigest: ['CRC32C'],
    });
    expect(() => preferencesFromKeys({ InitialR2T: 'maybe' })).toThrow();
    expect(() => preferencesFromKeys({ Bogus: '1' })).toThrow();
    expect(() => preferencesFromKeys({ TargetAlias: 'disk' })).toThrow(/not a negotiable/);
    expect(() => preferencesFromKeys({ DataDigest: 'MD5' })).toThrow(/DataDigest=MD5/);
    expect(() => preferencesFromKeys({ MaxBurstLength: 'lots' })).toThrow(/expected a number/);
    // Every key a configuration may set maps to its preference field.
    for (const k of Object.keys(TPG_KEY_RULES))
      if (k !== 'TargetAlias') expect(Object.keys(preferencesFromKeys({ [k]: KEY_TABLE.get(k)!.def }))).toHaveLength(1);
  });
  it('the keys and value rules a configuration may set, in key-table order', () => {
    const bool = { kind: 'bool' };
    const digest = { kind: 'enum', values: ['None', 'CRC32C', 'CRC32C,None', 'None,CRC32C'] };
    const seg = { kind: 'int', min: 512, max: 16777215 };
    expect(Object.entries(TPG_KEY_RULES)).toEqual(
      Object.entries({
        HeaderDigest: digest,
        DataDigest: digest,
        MaxConnections: { kind: 'int', min: 1, max: 65535 },
        TargetAlias: { kind: 'text' },
        InitialR2T: bool,
        ImmediateData: bool,
        MaxRecvDataSegmentLength: seg,
        MaxBurstLength: seg,
        FirstBurstLength: seg,
        DefaultTime2Wait: { kind: 'int', min: 0, max: 3600 },
        DefaultTime2Retain: { kind: 'int', min: 0, max: 3600 },
        MaxOutstandingR2T: { kind: 'int', min: 1, max: 65535 },
        DataPDUInOrder: bool,
        DataSequenceInOrder: bool,
        ErrorRecoveryLevel: { kind: 'int', min: 0, max: 2 },
        RDMAExtensions: bool,
        TargetRecvDataSegmentLength: seg,
        MaxOutstandingUnexpectedPDUs: { kind: 'int', min: 0, max: 4294967295 },
      }),
    );
  });
  it('login-phase values are the §13 defaults (§13.12: 8192-byte segments both ways)', () => {
    expect(loginParams()).toEqual({
      headerDigest: false,
      dataDigest: false,
      maxConnections: 1,
      initialR2T: true,
      immediateData: true,
      initiatorMaxRecvDataSegmentLength: 8192,
      targetMaxRecvDataSegmentLength: 8192,
      maxBurstLength: 262144,
      firstBurstLength: 65536,
      defaultTime2Wait: 2,
      defaultTime2Retain: 20,
      maxOutstandingR2T: 1,
      dataPduInOrder: true,
      dataSequenceInOrder: true,
      errorRecoveryLevel: 0,
      rdmaExtensions: false,
      maxOutstandingUnexpectedPdus: 0,
    });
  });
});
