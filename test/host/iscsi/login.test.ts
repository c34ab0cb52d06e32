// Login state machine (RFC 7143 §6.3, §11.12–§11.13, §12.1.3) over real TCP.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoginStatus } from '../../../lib/iscsi/opcodes.js';
import { IscsiTarget } from '../../../lib/iscsi/target.js';
import { listenTcp, type TcpListener } from '../../../lib/transport/tcp.js';
import { FakeCore, TestInitiator, tur } from './helpers.js';

const OPEN = 'iqn.2024-01.test:open';
const ACL = 'iqn.2024-01.test:acl';
const CHAP = 'iqn.2024-01.test:chap';
const MUTUAL = 'iqn.2024-01.test:mutual';
const GOOD = 'iqn.2024-01.test:good-initiator';

describe('login', () => {
  let core: FakeCore;
  let target: IscsiTarget;
  let portal: TcpListener;
  beforeAll(async () => {
    core = new FakeCore();
    target = new IscsiTarget({
      core,
      nopInterval: 0,
      tpgs: [
        { iqn: OPEN, generateNodeAcls: true },
        { iqn: ACL, acls: [{ initiator: GOOD }] },
        { iqn: CHAP, authentication: true, acls: [{ initiator: GOOD, chap: { userid: 'user1', password: 'secret-123456' } }] },
        {
          iqn: MUTUAL,
          authentication: true,
          generateNodeAcls: true,
          chap: { userid: 'u2', password: 'pw-0123456789', mutualUserid: 'tgt', mutualPassword: 'tgt-secret-9876' },
        },
      ],
      discoveryAuth: { required: false },
    });
    portal = await listenTcp(target, { port: 0 });
  });
  afterAll(async () => {
    await target.shutdown(100);
    await portal.close(true);
  });

  const connect = (): Promise<TestInitiator> => TestInitiator.connect(portal.port);

  it('security → operational → full feature, TSIH assigned, StatSN sequence', async () => {
    const i = await connect();
    const a = await i.loginStep({ csg: 0, nsg: 1, transit: true, keys: { InitiatorName: GOOD, TargetName: OPEN, SessionType: 'Normal', AuthMethod: 'None' } });
    expect(a.status).toBe(0);
    expect(a.pdu.transit && a.pdu.nsg === 1 && a.pdu.tsih === 0).toBe(true);
    expect(a.keys.get('AuthMethod')).toBe('None');
    expect(a.keys.get('TargetPortalGroupTag')).toBe('1');
    const b = await i.loginStep({ csg: 1, nsg: 3, transit: true, keys: { MaxRecvDataSegmentLength: '65536' } });
    expect(b.status).toBe(0);
    expect(b.pdu.statSN).toBe((a.pdu.statSN + 1) >>> 0);
    expect(b.pdu.tsih).toBeGreaterThan(0);
    expect(b.keys.get('MaxRecvDataSegmentLength')).toBe('262144');
    i.cmdSN = b.pdu.expCmdSN;
    const t = await i.scsi(tur());
    expect(t.status).toBe(0);
    expect(t.response.opcode === 0x21 && t.response.statSN).toBe((b.pdu.statSN + 1) >>> 0);
    i.close();
  });

  it('operational stage first when no authentication is required', async () => {
    const i = await connect();
    expect((await i.login({ targetName: OPEN, skipSecurity: true })).status).toBe(0);
    i.close();
  });

  const failures: Array<[string, number, (i: TestInitiator) => Promise<{ status: number }>]> = [
    ['unknown target → 0x0203', LoginStatus.NotFound, (i) => i.login({ targetName: 'iqn.2024-01.test:nope' })],
    ['initiator not in ACL → 0x0202', LoginStatus.AuthorizationFailure, (i) => i.login({ targetName: ACL, initiatorName: 'iqn.2024-01.test:stranger' })],
    [
      'missing InitiatorName → 0x0207',
      LoginStatus.MissingParameter,
      (i) => i.loginStep({ csg: 0, nsg: 1, transit: true, keys: { TargetName: OPEN, AuthMethod: 'None' } }),
    ],
    [
      'missing TargetName in a normal session → 0x0207',
      LoginStatus.MissingParameter,
      (i) => i.loginStep({ csg: 0, nsg: 1, transit: true, keys: { InitiatorName: GOOD, AuthMethod: 'None' } }),
    ],
    [
      'bad SessionType → 0x0209',
      LoginStatus.SessionTypeNotSupported,
      (i) => i.loginStep({ csg: 0, nsg: 1, transit: true, keys: { InitiatorName: GOOD, SessionType: 'Fancy', AuthMethod: 'None' } }),
    ],
    [
      'unsupported version → 0x0205',
      LoginStatus.UnsupportedVersion,
      (i) => i.loginStep({ csg: 0, nsg: 1, transit: true, versionMin: 1, keys: { InitiatorName: GOOD, TargetName: OPEN } }),
    ],
    [
      'CSG=FullFeature in a request → 0x0200',
      LoginStatus.InitiatorError,
      (i) => i.loginStep({ csg: 3, nsg: 3, transit: true, keys: { InitiatorName: GOOD, TargetName: OPEN } }),
    ],
    [
      'NSG not after CSG → 0x0200',
      LoginStatus.InitiatorError,
      (i) => i.loginStep({ csg: 1, nsg: 0, transit: true, keys: { InitiatorName: GOOD, TargetName: OPEN } }),
    ],
    [
      'T and C both set → 0x0200',
      LoginStatus.InitiatorError,
      (i) => i.loginStep({ csg: 0, nsg: 1, transit: true, cont: true, keys: { InitiatorName: GOOD, TargetName: OPEN } }),
    ],
    [
      'duplicated key in one PDU → 0x0200',
      LoginStatus.InitiatorError,
      (i) =>
        i.loginStep({
          csg: 0,
          nsg: 1,
          transit: true,
          keys: [
            ['InitiatorName', GOOD],
            ['TargetName', OPEN],
            ['AuthMethod', 'None'],
            ['AuthMethod', 'None'],
          ],
        }),
    ],
    ['malformed text → 0x0200', LoginStatus.InitiatorError, (i) => i.loginStep({ csg: 0, nsg: 1, transit: true, raw: Buffer.from('InitiatorName\0') })],
    [
      'login PDU in the wrong stage → 0x0200',
      LoginStatus.InitiatorError,
      async (i) => {
        const a = await i.loginStep({ csg: 0, nsg: 1, transit: false, keys: { InitiatorName: GOOD, TargetName: OPEN, AuthMethod: 'None' } });
        expect(a.status).toBe(0);
        return i.loginStep({ csg: 1, nsg: 3, transit: true, keys: {} }); // target never agreed to leave security
      },
    ],
    [
      'renegotiating a key in a later PDU → 0x0200',
      LoginStatus.InitiatorError,
      async (i) => {
        await i.loginStep({ csg: 1, nsg: 3, transit: false, keys: { InitiatorName: GOOD, TargetName: OPEN, MaxBurstLength: '65536' } });
        return i.loginStep({ csg: 1, nsg: 3, transit: true, keys: { MaxBurstLength: '65536' } });
      },
    ],
    ['CHAP required but skipped → 0x0201', LoginStatus.AuthenticationFailure, (i) => i.login({ targetName: CHAP, initiatorName: GOOD, skipSecurity: true })],
    ['CHAP required, AuthMethod=None offered → 0x0201', LoginStatus.AuthenticationFailure, (i) => i.login({ targetName: CHAP, initiatorName: GOOD })],
    [
      'CHAP MD5 wrong secret → 0x0201',
      LoginStatus.AuthenticationFailure,
      (i) => i.login({ targetName: CHAP, initiatorName: GOOD, chap: { user: 'user1', secret: 'wrong-secret-1' } }),
    ],
    [
      'CHAP wrong user → 0x0201',
      LoginStatus.AuthenticationFailure,
      (i) => i.login({ targetName: CHAP, initiatorName: GOOD, chap: { user: 'user2', secret: 'secret-123456' } }),
    ],
    [
      'CHAP unsupported algorithm only → 0x0201',
      LoginStatus.AuthenticationFailure,
      (i) => i.login({ targetName: CHAP, initiatorName: GOOD, chap: { user: 'user1', secret: 'secret-123456', algorithms: '6' } }),
    ],
    [
      'mutual CHAP reflected challenge → 0x0201',
      LoginStatus.AuthenticationFailure,
      async (i) => {
        await i.loginStep({ csg: 0, nsg: 1, transit: false, keys: { InitiatorName: GOOD, TargetName: MUTUAL, AuthMethod: 'CHAP' } });
        const r = await i.loginStep({ csg: 0, nsg: 1, transit: false, keys: { CHAP_A: '5' } });
        const { chapResponse, decodeBinary, encodeHex } = await import('../../../lib/iscsi/chap.js');
        const c = decodeBinary(r.keys.get('CHAP_C')!)!;
        const id = Number(r.keys.get('CHAP_I'));
        return i.loginStep({
          csg: 0,
          nsg: 1,
          transit: true,
          keys: { CHAP_N: 'u2', CHAP_R: encodeHex(chapResponse(5, id, 'pw-0123456789', c)), CHAP_I: '9', CHAP_C: encodeHex(c) },
        });
      },
    ],
    [
      'mutual CHAP asked where none is configured → 0x0201',
      LoginStatus.AuthenticationFailure,
      (i) => i.login({ targetName: CHAP, initiatorName: GOOD, chap: { user: 'user1', secret: 'secret-123456', mutual: { secret: 'whatever-12345' } } }),
    ],
    [
      'TSIH naming no session → 0x020a',
      LoginStatus.SessionDoesNotExist,
      (i) => {
        i.tsih = 0x7777;
        return i.login({ targetName: OPEN });
      },
    ],
    [
      'non-login PDU during login → 0x0200',
      LoginStatus.InitiatorError,
      async (i) => {
        i.send({ opcode: 0x00, immediate: true, itt: 5, lun: 0n, ttt: 0xffffffff, cmdSN: 1, expStatSN: 0 });
        const r = await i.next();
        const p = r.pdu as { statusClass: number; statusDetail: number };
        return { status: (p.statusClass << 8) | p.statusDetail };
      },
    ],
  ];
  for (const [name, status, run] of failures) {
    it(name, async () => {
      const i = await connect();
      const r = await run(i);
      expect(r.status).toBe(status);
      await i.closedPromise; // the target closes the connection after a Login Reject
    });
  }

  for (const alg of ['5', '7', '7,5', '5,7']) {
    it(`CHAP one-way, CHAP_A=${alg}`, async () => {
      const i = await connect();
      const r = await i.login({ targetName: CHAP, initiatorName: GOOD, chap: { user: 'user1', secret: 'secret-123456', algorithms: alg } });
      expect(r.status).toBe(0);
      expect((await i.scsi(tur())).status).toBe(0);
      i.close();
    });
  }
  for (const alg of ['5', '7']) {
    it(`CHAP mutual, CHAP_A=${alg} (target proves itself)`, async () => {
      const i = await connect();
      const r = await i.login({
        targetName: MUTUAL,
        initiatorName: 'iqn.2024-01.test:anyone',
        chap: { user: 'u2', secret: 'pw-0123456789', algorithms: alg, mutual: { user: 'tgt', secret: 'tgt-secret-9876' } },
      });
      expect(r.status).toBe(0);
      i.close();
    });
  }

  it('session reinstatement: same initiator + ISID closes the old session (§6.3.5)', async () => {
    const a = await connect();
    expect((await a.login({ targetName: OPEN, initiatorName: GOOD })).status).toBe(0);
    const lostBefore = core.lost.length;
    const b = await connect();
    expect((await b.login({ targetName: OPEN, initiatorName: GOOD })).status).toBe(0);
    await a.closedPromise;
    expect(core.lost.length).toBe(lostBefore + 1);
    expect(b.tsih).not.toBe(a.tsih);
    expect((await b.scsi(tur())).status).toBe(0);
    // A different ISID is a second, independent session.
    const c = await connect();
    c.isid = 0x023d00000002;
    expect((await c.login({ targetName: OPEN, initiatorName: GOOD })).status).toBe(0);
    expect((await b.scsi(tur())).status).toBe(0);
    const st = target.status().sessions.filter((s) => s.initiator === GOOD);
    expect(st.map((s) => s.isid).sort()).toEqual(['0x023d00000001', '0x023d00000002']);
    b.close();
    c.close();
  });

  it('a second connection to a MaxConnections=1 session → 0x0206', async () => {
    const a = await connect();
    expect((await a.login({ targetName: OPEN, initiatorName: GOOD })).status).toBe(0);
    const b = await connect();
    b.tsih = a.tsih;
    const r = await b.login({ targetName: OPEN, initiatorName: GOOD });
    expect(r.status).toBe(LoginStatus.TooManyConnections);
    expect((await a.scsi(tur())).status).toBe(0);
    a.close();
  });

  it('nexus names and TransportID (SPC-4 7.6.4.6)', async () => {
    const i = await connect();
    i.isid = 0x23d000000001;
    expect((await i.login({ targetName: OPEN, initiatorName: 'iqn.1994-05.com.redhat:host' })).status).toBe(0);
    await i.scsi(tur());
    const n = core.nexuses[core.nexuses.length - 1];
    expect(n.initiatorPort).toBe('iqn.1994-05.com.redhat:host,i,0x23d000000001');
    expect(n.targetPort).toBe(`${OPEN},t,0x0001`);
    const id = Buffer.from(n.transportId);
    expect(id[0]).toBe(0x45);
    expect(id.readUInt16BE(2) % 4).toBe(0);
    expect(id.subarray(4).toString().replace(/\0+$/, '')).toBe('iqn.1994-05.com.redhat:host,i,0x23d000000001');
    i.close();
  });

  it('login text spanning PDUs with the C bit', async () => {
    const i = await connect();
    const text = Buffer.from(`InitiatorName=${GOOD}\0TargetName=${OPEN}\0AuthMethod=None\0`);
    const a = await i.loginStep({ csg: 0, nsg: 1, transit: false, cont: true, raw: text.subarray(0, 20) });
    expect(a.status).toBe(0);
    expect(a.keys.size).toBe(0);
    const b = await i.loginStep({ csg: 0, nsg: 1, transit: true, raw: text.subarray(20) });
    expect(b.status).toBe(0);
    expect(b.keys.get('AuthMethod')).toBe('None');
    i.close();
  });
});
