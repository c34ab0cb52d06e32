// The login state machine (RFC 7143 §6.3, §11.12, §11.13) driven through its connection
// context, without a transport or a socket: Login Requests are byte vectors laid out by
// hand from §11.12 (offset → bytes, key=value text as NUL-terminated strings), built
// independently of the PDU serializer and the text encoder, and each Login Response is
// read back from its bytes (§11.13).
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../lib/common/log.js';
import type { ConnectionContext, ConnectionCounters, ConnectionPhase } from '../../../lib/iscsi/context.js';
import { LoginHandler } from '../../../lib/iscsi/login.js';
import { loginParams, type OperationalParams } from '../../../lib/iscsi/params.js';
import { decodeBhs, type LoginRequestPdu } from '../../../lib/iscsi/pdu.js';
import type { IscsiSession } from '../../../lib/iscsi/session.js';
import { IscsiTarget } from '../../../lib/iscsi/target.js';
import { TextExchange } from '../../../lib/iscsi/text-req.js';
import type { IscsiTransport } from '../../../lib/iscsi/transport.js';
import { FakeCore } from './helpers.js';

const OPEN = 'iqn.2024-01.test:open';
const ACL = 'iqn.2024-01.test:acl';
const CHAP = 'iqn.2024-01.test:chap';
const GOOD = 'iqn.2024-01.test:good-initiator';

interface Req {
  t?: boolean;
  c?: boolean;
  csg: number;
  nsg: number;
  versionMin?: number;
  isid?: number[];
  tsih?: number;
  itt?: number;
  cid?: number;
  cmdSN?: number;
  /** key=value pairs, or raw text bytes. */
  keys?: Array<[string, string]> | Buffer;
}

/** A Login Request (§11.12) as bytes: BHS, then the data segment. */
function loginRequest(r: Req): { bhs: Buffer; data: Buffer } {
  const data = Buffer.isBuffer(r.keys) ? r.keys : Buffer.from((r.keys ?? []).map(([k, v]) => `${k}=${v}\0`).join(''), 'utf8');
  const b = Buffer.alloc(48);
  b[0] = 0x40 | 0x03; // I bit, opcode 0x03
  b[1] = (r.t ? 0x80 : 0) | (r.c ? 0x40 : 0) | (r.csg << 2) | r.nsg;
  b[2] = 0x00; // Version-max
  b[3] = r.versionMin ?? 0;
  b[5] = (data.length >> 16) & 0xff;
  b[6] = (data.length >> 8) & 0xff;
  b[7] = data.length & 0xff;
  Buffer.from(r.isid ?? [0x40, 0x00, 0x01, 0x37, 0x00, 0x01]).copy(b, 8);
  b[14] = ((r.tsih ?? 0) >> 8) & 0xff;
  b[15] = (r.tsih ?? 0) & 0xff;
  b.writeUInt32BE(r.itt ?? 0x1000, 16);
  b[20] = ((r.cid ?? 0) >> 8) & 0xff;
  b[21] = (r.cid ?? 0) & 0xff;
  b.writeUInt32BE(r.cmdSN ?? 1, 24);
  return { bhs: b, data };
}

/** A Login Response (§11.13) read from its bytes. */
interface Rsp {
  t: boolean;
  c: boolean;
  csg: number;
  nsg: number;
  tsih: number;
  itt: number;
  statSN: number;
  expCmdSN: number;
  maxCmdSN: number;
  status: number;
  keys: Map<string, string>;
}
function readResponse(bhs: Buffer, data: Buffer): Rsp {
  expect(bhs[0] & 0x3f).toBe(0x23);
  expect(bhs.readUIntBE(5, 3)).toBe(data.length);
  const text = data.toString('utf8');
  if (text.length) expect(text.endsWith('\0')).toBe(true);
  const keys = new Map(
    text
      .split('\0')
      .filter((kv) => kv)
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as [string, string]),
  );
  return {
    t: (bhs[1] & 0x80) !== 0,
    c: (bhs[1] & 0x40) !== 0,
    csg: (bhs[1] >> 2) & 3,
    nsg: bhs[1] & 3,
    tsih: bhs.readUInt16BE(14),
    itt: bhs.readUInt32BE(16),
    statSN: bhs.readUInt32BE(24),
    expCmdSN: bhs.readUInt32BE(28),
    maxCmdSN: bhs.readUInt32BE(32),
    status: (bhs[36] << 8) | bhs[37],
    keys,
  };
}

/** A connection context that records what the login does to it. */
class Ctx implements ConnectionContext {
  phase: ConnectionPhase = 'login';
  session: IscsiSession | undefined;
  cid = 0;
  statSN = 0;
  params: OperationalParams = loginParams();
  readonly log = silentLogger;
  readonly counters: ConnectionCounters = { pdusIn: 0, pdusOut: 0, commands: 0, rejects: 0, digestErrors: 0 };
  readonly describe = 'test connection';
  readonly nop = { answered(): void {} };
  readonly text = new TextExchange();
  readonly transport: IscsiTransport;
  /** What happened, in order: 'send', 'loginComplete', 'fullFeature', 'close'. */
  readonly events: string[] = [];
  readonly sent: Rsp[] = [];
  fullFeatureParams: OperationalParams | undefined;
  closeReason: string | undefined;

  constructor(
    readonly target: IscsiTarget,
    rdma = false,
  ) {
    const events = this.events;
    this.transport = {
      kind: rdma ? 'iser' : 'tcp',
      rdma,
      digests: !rdma,
      localAddress: '192.0.2.1',
      localPort: 3260,
      remoteAddress: '192.0.2.2',
      remotePort: 50000,
      attach() {},
      sendPdu() {
        return undefined;
      },
      loginComplete() {
        events.push('loginComplete');
      },
      enterFullFeature() {},
      pauseReceive() {},
      resumeReceive() {},
      close() {},
    };
  }

  sendPdu(bhs: Uint8Array, data?: Uint8Array | readonly Uint8Array[]): undefined {
    const d = data === undefined ? Buffer.alloc(0) : Buffer.concat(data instanceof Uint8Array ? [data] : [...data]);
    this.events.push('send');
    this.sent.push(readResponse(Buffer.from(bhs), d));
    return undefined;
  }
  nextStatSN(): number {
    const s = this.statSN;
    this.statSN = (s + 1) >>> 0;
    return s;
  }
  allocTtt(): number {
    return 1;
  }
  enterFullFeature(session: IscsiSession, params: OperationalParams): void {
    this.events.push('fullFeature');
    this.session = session;
    this.fullFeatureParams = params;
    this.phase = 'full-feature';
  }
  close(reason: string): void {
    this.events.push('close');
    this.closeReason = reason;
  }
  drop(reason: string): void {
    this.events.push('drop');
    this.closeReason = reason;
  }
  whenIdle(): Promise<void> {
    return Promise.resolve();
  }
}

function newTarget(): IscsiTarget {
  return new IscsiTarget({
    core: new FakeCore(),
    nopInterval: 0,
    loginTimeout: 0,
    tpgs: [
      { iqn: OPEN, generateNodeAcls: true, alias: 'open disk' },
      { iqn: ACL, acls: [{ initiator: GOOD }] },
      { iqn: CHAP, authentication: true, acls: [{ initiator: GOOD, chap: { userid: 'user1', password: 'secret-123456' } }] },
    ],
  });
}

/** Feed requests to a fresh login; returns the context and the responses. */
function run(reqs: Req[], target = newTarget(), rdma = false): { ctx: Ctx; rsp: Rsp[] } {
  const ctx = new Ctx(target, rdma);
  const login = new LoginHandler(ctx);
  for (const r of reqs) {
    const { bhs, data } = loginRequest(r);
    login.handle(decodeBhs(bhs) as LoginRequestPdu, data);
  }
  return { ctx, rsp: ctx.sent };
}

const SEC: Array<[string, string]> = [
  ['InitiatorName', GOOD],
  ['TargetName', OPEN],
  ['SessionType', 'Normal'],
  ['AuthMethod', 'None'],
];

describe('login from PDU tables (no transport)', () => {
  it('security → operational → full feature: statuses, stages, TSIH, StatSN, keys', () => {
    const { ctx, rsp } = run([
      { t: true, csg: 0, nsg: 1, keys: SEC, itt: 0x10, cid: 7 },
      {
        t: true,
        csg: 1,
        nsg: 3,
        keys: [
          ['MaxRecvDataSegmentLength', '65536'],
          ['MaxBurstLength', '131072'],
          ['ImmediateData', 'Yes'],
        ],
        itt: 0x11,
        cid: 7,
      },
    ]);
    expect(rsp).toHaveLength(2);
    const [a, b] = rsp;
    expect(a).toMatchObject({ status: 0, t: true, c: false, csg: 0, nsg: 1, tsih: 0, itt: 0x10, expCmdSN: 1 });
    expect(a.keys.get('AuthMethod')).toBe('None');
    expect(a.keys.get('TargetPortalGroupTag')).toBe('1');
    expect(a.keys.get('TargetAlias')).toBe('open disk');
    expect(b).toMatchObject({ status: 0, t: true, csg: 1, nsg: 3, itt: 0x11, expCmdSN: 1, maxCmdSN: 64 });
    expect(b.tsih).toBeGreaterThan(0);
    expect(b.statSN).toBe((a.statSN + 1) >>> 0);
    expect(b.keys.get('MaxBurstLength')).toBe('131072');
    expect(b.keys.get('ImmediateData')).toBe('Yes');
    expect(b.keys.get('MaxRecvDataSegmentLength')).toBe('262144'); // our declaration (§13.12)
    expect(ctx.cid).toBe(7);
    expect(ctx.statSN).toBe((b.statSN + 1) >>> 0);
    expect(ctx.session?.tsih).toBe(b.tsih);
    expect(ctx.fullFeatureParams).toMatchObject({ maxBurstLength: 131072, initiatorMaxRecvDataSegmentLength: 65536, immediateData: true });
    // The transport hears of the login before the final Login Response, Full Feature Phase after it.
    expect(ctx.events).toEqual(['send', 'loginComplete', 'send', 'fullFeature']);
    expect(ctx.target.counters.logins).toBe(1);
  });

  it('straight to the operational stage when no authentication is required', () => {
    const { ctx, rsp } = run([
      {
        t: true,
        csg: 1,
        nsg: 3,
        keys: [
          ['InitiatorName', GOOD],
          ['TargetName', OPEN],
        ],
      },
    ]);
    expect(rsp.map((r) => [r.status, r.t, r.csg, r.nsg])).toEqual([[0, true, 1, 3]]);
    expect(ctx.phase).toBe('full-feature');
  });

  it('a discovery session', () => {
    const { ctx, rsp } = run([
      {
        t: true,
        csg: 1,
        nsg: 3,
        keys: [
          ['InitiatorName', GOOD],
          ['SessionType', 'Discovery'],
        ],
      },
    ]);
    expect(rsp[0]).toMatchObject({ status: 0, t: true, nsg: 3 });
    expect(rsp[0].keys.has('TargetPortalGroupTag')).toBe(false);
    expect(ctx.session?.type).toBe('Discovery');
  });

  it('text spanning two PDUs (C bit, §11.12.2): an empty response, then the answer', () => {
    const text = Buffer.from(SEC.map(([k, v]) => `${k}=${v}\0`).join(''));
    const { rsp } = run([
      { c: true, csg: 0, nsg: 1, keys: text.subarray(0, 25) },
      { t: true, csg: 0, nsg: 1, keys: text.subarray(25) },
    ]);
    expect(rsp.map((r) => [r.status, r.t, r.keys.size])).toEqual([
      [0, false, 0],
      [0, true, 3],
    ]);
  });

  it('the target stays in the security stage when the initiator does not ask to leave it', () => {
    const { rsp } = run([{ t: false, csg: 0, nsg: 0, keys: SEC }]);
    expect(rsp[0]).toMatchObject({ status: 0, t: false, csg: 0, nsg: 0 });
  });

  it('over iSER: RDMAExtensions=Yes, no digests, and a normal session without it is refused (RFC 7145 §5.1, §6.2)', () => {
    const ok = run(
      [
        {
          t: true,
          csg: 1,
          nsg: 3,
          keys: [
            ['InitiatorName', GOOD],
            ['TargetName', OPEN],
            ['RDMAExtensions', 'Yes'],
            ['HeaderDigest', 'CRC32C,None'],
          ],
        },
      ],
      newTarget(),
      true,
    );
    expect(ok.rsp[0].status).toBe(0);
    expect(ok.rsp[0].keys.get('RDMAExtensions')).toBe('Yes');
    expect(ok.rsp[0].keys.get('HeaderDigest')).toBe('None');
    const no = run(
      [
        {
          t: true,
          csg: 1,
          nsg: 3,
          keys: [
            ['InitiatorName', GOOD],
            ['TargetName', OPEN],
          ],
        },
      ],
      newTarget(),
      true,
    );
    expect(no.rsp[0].status).toBe(0x0207);
    expect(no.ctx.events).not.toContain('loginComplete');
  });

  // Malformed or refused logins: the Login Response's status class/detail (§11.13.5), T=0,
  // and the connection is closed after it.
  const bad: Array<[string, number, Req[]]> = [
    ['Version-min above 0 → 0x0205 unsupported version', 0x0205, [{ t: true, csg: 0, nsg: 1, versionMin: 1, keys: SEC }]],
    ['CSG 3 in a request → 0x0200 initiator error', 0x0200, [{ t: true, csg: 3, nsg: 3, keys: SEC }]],
    ['CSG 2 (reserved) → 0x0200', 0x0200, [{ t: true, csg: 2, nsg: 3, keys: SEC }]],
    ['T and C both set → 0x0200', 0x0200, [{ t: true, c: true, csg: 0, nsg: 1, keys: SEC }]],
    ['transit to an earlier stage → 0x0200', 0x0200, [{ t: true, csg: 1, nsg: 0, keys: SEC }]],
    ['transit to NSG 2 → 0x0200', 0x0200, [{ t: true, csg: 0, nsg: 2, keys: SEC }]],
    [
      'InitiatorName missing → 0x0207 missing parameter',
      0x0207,
      [
        {
          t: true,
          csg: 0,
          nsg: 1,
          keys: [
            ['TargetName', OPEN],
            ['AuthMethod', 'None'],
          ],
        },
      ],
    ],
    [
      'TargetName missing in a normal session → 0x0207',
      0x0207,
      [
        {
          t: true,
          csg: 0,
          nsg: 1,
          keys: [
            ['InitiatorName', GOOD],
            ['AuthMethod', 'None'],
          ],
        },
      ],
    ],
    [
      'unknown target → 0x0203 not found',
      0x0203,
      [
        {
          t: true,
          csg: 0,
          nsg: 1,
          keys: [
            ['InitiatorName', GOOD],
            ['TargetName', 'iqn.2024-01.test:nope'],
          ],
        },
      ],
    ],
    [
      'initiator not in the ACL → 0x0202 authorization failure',
      0x0202,
      [
        {
          t: true,
          csg: 0,
          nsg: 1,
          keys: [
            ['InitiatorName', 'iqn.2024-01.test:stranger'],
            ['TargetName', ACL],
          ],
        },
      ],
    ],
    [
      'SessionType=Fancy → 0x0209 session type not supported',
      0x0209,
      [
        {
          t: true,
          csg: 0,
          nsg: 1,
          keys: [
            ['InitiatorName', GOOD],
            ['SessionType', 'Fancy'],
          ],
        },
      ],
    ],
    [
      'CHAP required, security stage skipped → 0x0201 authentication failure',
      0x0201,
      [
        {
          t: true,
          csg: 1,
          nsg: 3,
          keys: [
            ['InitiatorName', GOOD],
            ['TargetName', CHAP],
          ],
        },
      ],
    ],
    [
      'CHAP required, AuthMethod=None → 0x0201',
      0x0201,
      [
        {
          t: true,
          csg: 0,
          nsg: 1,
          keys: [
            ['InitiatorName', GOOD],
            ['TargetName', CHAP],
            ['AuthMethod', 'None'],
          ],
        },
      ],
    ],
    ['a key twice in one request → 0x0200', 0x0200, [{ t: true, csg: 0, nsg: 1, keys: [...SEC, ['AuthMethod', 'None']] }]],
    ['text without "=" → 0x0200', 0x0200, [{ t: true, csg: 0, nsg: 1, keys: Buffer.from(`InitiatorName=${GOOD}\0TargetName\0`) }]],
    ['text not NUL-terminated → 0x0200', 0x0200, [{ t: true, csg: 0, nsg: 1, keys: Buffer.from(`InitiatorName=${GOOD}`) }]],
    ['data segment over 8192 bytes during login (§13.12) → 0x0200', 0x0200, [{ t: true, csg: 0, nsg: 1, keys: [...SEC, ['X-pad', 'x'.repeat(8200)]] }]],
    [
      'ISID changed between requests → 0x0200',
      0x0200,
      [
        { t: false, csg: 0, nsg: 1, keys: SEC },
        { t: true, csg: 0, nsg: 1, keys: [], isid: [0x40, 0x00, 0x01, 0x37, 0x00, 0x02] },
      ],
    ],
    [
      'CSG differs from the stage the target is in → 0x0200',
      0x0200,
      [
        { t: false, csg: 0, nsg: 1, keys: SEC },
        { t: true, csg: 1, nsg: 3, keys: [] },
      ],
    ],
    [
      'a key renegotiated in a later request → 0x0200',
      0x0200,
      [
        {
          t: false,
          csg: 1,
          nsg: 3,
          keys: [
            ['InitiatorName', GOOD],
            ['TargetName', OPEN],
            ['MaxBurstLength', '65536'],
          ],
        },
        { t: true, csg: 1, nsg: 3, keys: [['MaxBurstLength', '65536']] },
      ],
    ],
    [
      'InitiatorName changed during the login → 0x0200',
      0x0200,
      [
        { t: false, csg: 0, nsg: 1, keys: SEC },
        { t: true, csg: 0, nsg: 1, keys: [['InitiatorName', 'iqn.2024-01.test:other']] },
      ],
    ],
    ['TSIH naming no session → 0x020a session does not exist', 0x020a, [{ t: true, csg: 0, nsg: 1, tsih: 0x7777, keys: SEC }]],
  ];
  for (const [name, status, reqs] of bad) {
    it(name, () => {
      const { ctx, rsp } = run(reqs);
      const last = rsp[rsp.length - 1];
      expect(last.status).toBe(status);
      expect(last.status >> 8).toBe(2); // initiator error class (§11.13.5)
      expect(last.t).toBe(false);
      expect(last.tsih).toBe(reqs[reqs.length - 1].tsih ?? 0);
      expect(ctx.events.slice(-2)).toEqual(['send', 'close']);
      expect(ctx.events).not.toContain('loginComplete');
      expect(ctx.phase).toBe('login');
      expect(ctx.target.counters.loginFailures).toBe(1);
    });
  }

  it('nothing is answered after a failed login', () => {
    const { ctx, rsp } = run([
      { t: true, csg: 0, nsg: 1, versionMin: 1, keys: SEC },
      { t: true, csg: 0, nsg: 1, keys: SEC },
    ]);
    expect(rsp).toHaveLength(1);
    expect(ctx.events).toEqual(['send', 'close']);
  });
});

describe('logins, logouts and failures per initiator (lib/common/initiators.ts)', () => {
  const FULL: Req = { t: true, csg: 1, nsg: 3, keys: [] };
  const chapFail = (initiator: string): Req[] => [
    {
      t: false,
      csg: 0,
      nsg: 1,
      keys: [
        ['InitiatorName', initiator],
        ['TargetName', CHAP],
        ['SessionType', 'Normal'],
        ['AuthMethod', 'CHAP'],
      ],
    },
    { t: false, csg: 0, nsg: 1, keys: [['CHAP_A', '5']] },
    {
      t: true,
      csg: 0,
      nsg: 1,
      keys: [
        ['CHAP_N', 'user1'],
        ['CHAP_R', `0x${'00'.repeat(16)}`],
      ],
    },
  ];

  it('a login and a CHAP failure of an ACL-named initiator count under its name; strangers under "unknown"', () => {
    const target = newTarget();
    run([{ t: true, csg: 0, nsg: 1, keys: SEC }, FULL], target);
    const { rsp } = run(chapFail(GOOD), target);
    expect(rsp.at(-1)!.status).toBe(0x0201); // authentication failure
    // An initiator no ACL of the CHAP target names, and one without an InitiatorName: their own names are not kept.
    for (let i = 0; i < 300; i++) run(chapFail(`iqn.2024-01.test:stranger-${i}`), target);
    run([{ t: true, csg: 0, nsg: 1, keys: [['TargetName', OPEN]] }], target);
    const rows = target.status().initiators;
    expect(rows[GOOD]).toEqual({ logins: 1, logouts: 0, loginFailures: 1, chapFailures: 1 });
    expect(rows.unknown!.loginFailures).toBe(301);
    expect(Object.keys(rows).sort()).toEqual([GOOD, 'unknown']);
    // The engine's totals are the sums of the rows.
    expect(target.counters.loginFailures).toBe(302);
    expect(target.counters.logins).toBe(1);
  });

  it('an initiator that logged in keeps its row when it later fails', () => {
    const target = newTarget();
    const stranger = 'iqn.2024-01.test:demo-mode-initiator';
    run([{ t: true, csg: 0, nsg: 1, keys: [['InitiatorName', stranger], ...SEC.slice(1)] }, FULL], target);
    run(chapFail(stranger), target); // not in the CHAP target's ACL: refused, but known from its login
    expect(target.status().initiators[stranger]).toMatchObject({ logins: 1, loginFailures: 1 });
    expect(target.status().initiators.unknown).toBeUndefined();
  });
});
