// SRP login decisions (lib/srp/login.ts) and the target's ACL / multichannel bookkeeping
// (lib/srp/target.ts), without RDMA: requests built by hand, answers decoded.
import { describe, expect, it } from 'vitest';
import { LoginRejReason, decodeLoginRej, decodeLoginRsp, encodeLoginReqRdma, type LoginReq } from '../../../lib/srp/iu.js';
import { defaultTargetPortId, evaluateLogin, loginReject, loginResponse, type LoginPolicy } from '../../../lib/srp/login.js';
import { SrpTarget, srpTransportId } from '../../../lib/srp/target.js';
import type { SrpChannel } from '../../../lib/srp/channel.js';
import { TmfResponse, type ScsiCore } from '../../../lib/scsi/types.js';

const tpid = Uint8Array.from(Buffer.from('52505441524745540011223344556677', 'hex'));
const ipid = Uint8Array.from(Buffer.from('0000000000000000f8c16afffee72052', 'hex'));
const policy: LoginPolicy = { targetPortId: tpid, maxItIuLen: 65536, maxTiIuLen: 256, credits: 128, immediateData: true };

function req(over: Partial<LoginReq> = {}): Buffer {
  const r: LoginReq = {
    tagLo: 7,
    tagHi: 0,
    reqBufFmt: 6,
    reqFlags: 0x80,
    reqItIuLen: 8260,
    initiatorPortId: ipid,
    targetPortId: tpid,
    immDataOffset: 68,
    ...over,
  };
  return Buffer.from(encodeLoginReqRdma(r));
}

type Case = [name: string, pd: Buffer | undefined, reason: number, why: RegExp];
const refused: Case[] = [
  ['no private data', undefined, LoginRejReason.UnableToEstablish, /private data of 0 bytes/],
  ['short private data', req().subarray(0, 40), LoginRejReason.UnableToEstablish, /shorter than srp_login_req_rdma/],
  [
    'not a login request',
    (() => {
      const b = req();
      b[11] = 0x02;
      return b;
    })(),
    LoginRejReason.UnableToEstablish,
    /IU TYPE/,
  ],
  ['IU length below 64', req({ reqItIuLen: 32 }), LoginRejReason.ItIuLengthTooLarge, /below 64/],
  ['IU length above the limit', req({ reqItIuLen: 70000 }), LoginRejReason.ItIuLengthTooLarge, /exceeds 65536/],
  ['no buffer format', req({ reqBufFmt: 0x01 }), LoginRejReason.UnsupportedDescriptorFormat, /neither direct nor indirect/],
  ['reserved multichannel action', req({ reqFlags: 0x02 }), LoginRejReason.UnableToEstablish, /MULTI-CHANNEL ACTION 2/],
  ['another target port', req({ targetPortId: new Uint8Array(16) }), LoginRejReason.UnableToAssociate, /TARGET PORT IDENTIFIER 0x0{32} is not/],
];

describe('login: refusals carry the SRP r16a reason', () => {
  it.each(refused)('%s', (_n, pd, reason, why) => {
    const d = evaluateLogin(pd, policy);
    expect(d.ok).toBe(false);
    if (d.ok) return;
    expect(d.reason).toBe(reason);
    expect(d.why).toMatch(why);
    const rej = decodeLoginRej(loginReject(d));
    expect(rej.reason).toBe(reason);
    if (d.req) expect(rej.tagLo).toBe(7);
  });
});

describe('login: accepted', () => {
  it('ib_srp defaults: 8260-byte IUs, immediate data at 68, credits and formats in the response', () => {
    const d = evaluateLogin(req(), policy);
    expect(d.ok).toBe(true);
    if (!d.ok) return;
    expect(d).toMatchObject({ itIuLen: 8260, tiIuLen: 256, credits: 128, bufFmt: 6, immOffset: 68, multichannel: false });
    expect(d.initiatorPort).toBe('0x0000000000000000f8c16afffee72052');
    const rsp = decodeLoginRsp(loginResponse(d, 1));
    expect(rsp).toEqual({ tagLo: 7, tagHi: 0, reqLimDelta: 128, maxItIuLen: 8260, maxTiIuLen: 256, bufFmt: 6, rspFlags: 0x81 });
  });

  it('no immediate data when not requested, not offered, or at an impossible offset', () => {
    for (const [pd, p] of [
      [req({ reqFlags: 0 }), policy],
      [req(), { ...policy, immediateData: false }],
      [req({ immDataOffset: 40 }), policy],
      [req({ immDataOffset: 9000 }), policy],
    ] as const) {
      const d = evaluateLogin(pd, p);
      expect(d.ok && d.immOffset).toBe(0);
      if (d.ok) expect(decodeLoginRsp(loginResponse(d, 0)).rspFlags & 0x80).toBe(0);
    }
  });

  it('only the formats both sides know are answered; MULTI joins', () => {
    const d = evaluateLogin(req({ reqBufFmt: 0x06 | 0x08, reqFlags: 0x81 }), policy);
    expect(d.ok && d.bufFmt).toBe(6);
    expect(d.ok && d.multichannel).toBe(true);
  });

  it('the default target port id is the node GUID twice (LIO srpt_service_guid)', () => {
    expect(Buffer.from(defaultTargetPortId('0002c90300a1b2c3')).toString('hex')).toBe('0002c90300a1b2c30002c90300a1b2c3');
    expect(Buffer.from(defaultTargetPortId('0002:c903:00a1:b2c3')).toString('hex')).toBe('0002c90300a1b2c30002c90300a1b2c3');
  });
});

describe('target: ACLs, nexus and multichannel action', () => {
  const lost: string[] = [];
  const core = (name: string): ScsiCore => ({
    submit: () => Promise.reject(new Error('unused')),
    taskManagement: () => Promise.resolve(TmfResponse.Complete),
    nexusLost: (n) => {
      lost.push(`${name}:${n.initiatorPort}`);
    },
  });
  const fakeChannel = (): SrpChannel => {
    const ch = {
      tasks: new Map(),
      session: undefined,
      commands: 0,
      malformed: 0,
      closedWith: 0,
      describe: 'fake',
      logout(r: number) {
        this.closedWith = r;
      },
    };
    return ch as unknown as SrpChannel;
  };

  it('an ACL by port id or by source address selects its view; others are refused', () => {
    const t = new SrpTarget({
      targetPortId: tpid,
      acls: [
        { initiatorPortId: '0x0000000000000000F8C16AFFFEE72052', core: core('byId') },
        { address: '10.0.0.9', core: core('byAddr') },
      ],
    });
    const a = t.evaluate(req(), '00', '10.0.0.1');
    expect(a.ok && a.core).toBeTruthy();
    const other = req({ initiatorPortId: new Uint8Array(16).fill(1) });
    expect(t.evaluate(other, '00', '10.0.0.9').ok).toBe(true);
    const no = t.evaluate(other, '00', '10.0.0.1');
    expect(no.ok).toBe(false);
    if (!no.ok) expect(no.reason).toBe(LoginRejReason.UnableToEstablish);
  });

  it('demo mode admits anyone; the default target port id follows the device', () => {
    const t = new SrpTarget({ generateNodeAcls: true, core: core('demo') });
    expect(t.evaluate(req({ targetPortId: defaultTargetPortId('1122334455667788') }), '1122334455667788', 'x').ok).toBe(true);
    expect(t.evaluate(req(), '1122334455667788', 'x').ok).toBe(false);
    expect(t.targetPortIdFor('1122334455667788')).toBe('0x11223344556677881122334455667788');
  });

  it('MULTI joins the nexus, SINGLE ends its channels and the nexus; the last channel gone ends it too', () => {
    lost.length = 0;
    const t = new SrpTarget({ targetPortId: tpid, generateNodeAcls: true, core: core('c') });
    const single = evaluateLogin(req(), policy);
    const multi = evaluateLogin(req({ reqFlags: 0x81 }), policy);
    if (!single.ok || !multi.ok) throw new Error('login');
    const c1 = fakeChannel(),
      c2 = fakeChannel(),
      c3 = fakeChannel();
    expect(t.attach(single, core('c'), c1).existing).toBe(0);
    expect(t.attach(multi, core('c'), c2).existing).toBe(2);
    expect(t.sessions.size).toBe(1);
    const s1 = t.attach(single, core('c'), c3);
    expect(s1.existing).toBe(1);
    expect((c1 as unknown as { closedWith: number }).closedWith).toBe(4); // SRP_T_LOGOUT: multichannel action
    expect(lost).toEqual(['c:0x0000000000000000f8c16afffee72052']);
    t.detach(c1);
    t.detach(c2);
    expect(lost).toHaveLength(1); // the old nexus was already ended
    t.detach(c3);
    expect(lost).toHaveLength(2);
    expect(t.sessions.size).toBe(0);
    expect(s1.session.nexus.transportId).toEqual(srpTransportId(ipid));
  });

  it('the SRP TransportID is protocol 4 with the initiator port id at byte 8 (SPC-4 7.6.4.5)', () => {
    const id = srpTransportId(ipid);
    expect(id.length).toBe(24);
    expect(id[0]).toBe(0x04);
    expect(Buffer.from(id.subarray(8)).toString('hex')).toBe('0000000000000000f8c16afffee72052');
  });
});
