// The SRP section through the control API, live (docs/control.md): the real engine (SCSI
// core, the SRP target port of lib/srp) without RDMA — the SRP sessions are logged in by hand
// (a login request built as ib_srp builds it, evaluated and attached to a fake channel, as
// test/host/srp/login.test.ts does) and send SCSI commands straight to the LUN view their
// login chose. Adding an SRP LUN drops no session and tells only the sessions that see it;
// removing one in use needs force; removing an SRP ACL ends only that initiator's session;
// `reload` applies srp differences the same way; bad input names the field.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon } from '../../../lib/target/daemon.js';
import { RpcFailure, rpcCall } from '../../../lib/target/control.js';
import { createEngine } from '../../../lib/target/wiring.js';
import { configDocument, validateConfig, type Config } from '../../../lib/target/config.js';
import type { ServedTargets } from '../../../lib/target/engine.js';
import { saveConfigFile } from '../../../lib/target/persist.js';
import { encodeLoginReqRdma } from '../../../lib/srp/iu.js';
import type { SrpChannel } from '../../../lib/srp/channel.js';
import type { SrpSession, SrpTarget } from '../../../lib/srp/target.js';
import type { Nexus, ScsiCompletion, ScsiCore } from '../../../lib/scsi/types.js';
import { submitAsync } from '../scsi/async-io.js';

const ID_EXT = '5250544152474554';
const IOC_GUID = '0011223344556677';
const A = '0x0000000000000000000000000000000a';
const B = '0x0000000000000000000000000000000b';
const port = (hex: string) => Uint8Array.from(Buffer.from(hex.slice(2), 'hex'));

function loginReq(initiator: string): Buffer {
  return Buffer.from(
    encodeLoginReqRdma({
      tagLo: 1,
      tagHi: 0,
      reqBufFmt: 6,
      reqFlags: 0x80,
      reqItIuLen: 8260,
      initiatorPortId: port(initiator),
      targetPortId: Uint8Array.from(Buffer.from(ID_EXT + IOC_GUID, 'hex')),
      immDataOffset: 68,
    }),
  );
}

interface FakeChannel {
  closedWith: number | undefined;
}

function fakeChannel(): SrpChannel & FakeChannel {
  const ch = {
    tasks: new Map(),
    session: undefined,
    commands: 0,
    malformed: 0,
    externalTables: 0,
    closedWith: undefined as number | undefined,
    describe: 'fake',
    logout(r: number) {
      this.closedWith = r;
    },
  };
  return ch as unknown as SrpChannel & FakeChannel;
}

let tag = 1;
/** TEST UNIT READY on `lun` through the session's LUN view: [status, sense key, ASC, ASCQ]. */
async function tur(s: { core: ScsiCore; nexus: Nexus }, lun = 0): Promise<number[]> {
  const c: ScsiCompletion = await submitAsync(
    s.core,
    { lun: BigInt(lun) << 48n, cdb: new Uint8Array(6), tag: tag++, attribute: 0, expectedLength: 0, direction: 0 },
    s.nexus,
    { dataOut: async () => {}, dataIn: async () => {} },
  );
  const sense = c.sense;
  return sense ? [c.status, sense[2]! & 0x0f, sense[12]!, sense[13]!] : [c.status];
}

const REPORTED_LUNS_CHANGED = [2, 6, 0x3f, 0x0e];
const POWER_ON = [2, 6, 0x29, 0x00];
const NO_SUCH_LUN = [2, 5, 0x25, 0x00];

async function rpcError(p: Promise<unknown>): Promise<RpcFailure> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(RpcFailure);
    return e as RpcFailure;
  }
  throw new Error('the request succeeded');
}

describe('control API: the srp section, live', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rt-srplive-'));
  const sock = join(dir, 'ctl.sock');
  const file = join(dir, 'config.json');
  let d: Daemon;
  let served: ServedTargets;
  let srp: SrpTarget;
  const call = (m: string, p: Record<string, unknown> = {}) => rpcCall(sock, m, p);
  const saved = () => JSON.parse(readFileSync(file, 'utf8')) as { srp?: { luns: Array<{ lun: number }>; acls: Array<{ initiator: string }> } };
  const channels = new Map<string, SrpChannel & FakeChannel>();

  /** An SRP login as `initiator`, as the fabric would do it after the RDMA/CM handshake. */
  function login(initiator: string): SrpSession {
    const dec = srp.evaluate(loginReq(initiator), '00', '10.0.0.1');
    if (!dec.ok || !dec.core) throw new Error(`login of ${initiator} refused: ${dec.ok ? 'no core' : dec.why}`);
    const ch = fakeChannel();
    channels.set(initiator, ch);
    return srp.attach(dec, dec.core, ch).session;
  }

  beforeAll(async () => {
    const doc = {
      control: { socket: sock },
      stateDir: dir,
      backstores: [
        { name: 'r0', type: 'ram', size: '1M' },
        { name: 'r1', type: 'ram', size: '1M' },
        { name: 'r2', type: 'ram', size: '1M' },
      ],
      targets: [],
      srp: {
        portals: [{ address: '10.0.0.1', port: 5555 }],
        targetPortId: { idExt: ID_EXT, iocGuid: IOC_GUID },
        luns: [{ lun: 0, backstore: 'r0' }],
        acls: [{ initiator: A }, { initiator: B, mappedLuns: [{ lun: 0, srpLun: 0 }] }],
      },
    };
    const v = validateConfig(doc, { allowEphemeralPort: true });
    expect(v.errors).toEqual([]);
    await saveConfigFile(file, doc);
    const engine = createEngine({ rdma: false });
    const build = engine.build.bind(engine);
    engine.build = async (c, l) => (served = await build(c, l));
    d = await Daemon.start(v.config!, {
      engine,
      reloadSource: async (f?: string): Promise<Config> => {
        const r = validateConfig(JSON.parse(readFileSync(f ?? file, 'utf8')), { allowEphemeralPort: true });
        if (!r.config) throw new Error(r.errors.join('; '));
        return r.config;
      },
      save: async (c, f) => saveConfigFile(f ?? file, configDocument(c)),
    });
    srp = served.srpTarget!() as SrpTarget;
  });
  afterAll(() => d.stop(500));

  it('adds an SRP LUN with sessions logged in: no session drops, only the sessions that see it are told', async () => {
    const a = login(A);
    const b = login(B);
    expect(await tur(a)).toEqual(POWER_ON);
    expect(await tur(a)).toEqual([0]);
    expect(await tur(b)).toEqual(POWER_ON);
    expect(await tur(b)).toEqual([0]);

    const r = (await call('srp.lun.create', { lun: 1, backstore: 'r1' })) as Record<string, unknown>;
    expect(r).toMatchObject({ added: [{ target: 'srp', lun: 1, backstore: 'r1', sizeBytes: 1 << 20 }], removed: [], endedSessions: 0, saved: file });
    expect(saved().srp!.luns.map((l) => l.lun)).toEqual([0, 1]);
    expect(srp.sessions.size).toBe(2);
    expect([...channels.values()].map((c) => c.closedWith)).toEqual([undefined, undefined]);
    // A (every SRP LUN) sees LUN 1 and is told; B (mapped LUN 0 only) neither sees it nor is told.
    expect(await tur(a)).toEqual(REPORTED_LUNS_CHANGED);
    expect(await tur(a)).toEqual([0]);
    expect(await tur(a, 1)).toEqual(POWER_ON);
    expect(await tur(b)).toEqual([0]);
    expect(await tur(b, 1)).toEqual(NO_SUCH_LUN);

    // Mapping it for B tells B only.
    await call('srp.mappedlun.create', { initiator: B, lun: 1, srpLun: 1 });
    expect(await tur(b)).toEqual(REPORTED_LUNS_CHANGED);
    expect(await tur(b, 1)).toEqual(POWER_ON);
    expect(await tur(a)).toEqual([0]);
    expect(srp.sessions.size).toBe(2);
  });

  it('removing an SRP LUN in use needs force; forced, the sessions that saw it are told', async () => {
    const e = await rpcError(call('srp.lun.delete', { lun: 1 }));
    expect(e.code).toBe(-32002);
    expect(e.message).toBe('srp.luns[1]: srp LUN 1 is in use by 2 sessions; removing it needs force');
    expect(saved().srp!.luns.map((l) => l.lun)).toEqual([0, 1]);
    const [a, b] = [...srp.sessions.values()] as [SrpSession, SrpSession];
    expect(await tur(a, 1)).toEqual([0]);

    const r = (await call('srp.lun.delete', { lun: 1, force: true })) as Record<string, unknown>;
    expect(r).toMatchObject({ removed: [{ target: 'srp', lun: 1, backstore: 'r1' }], endedSessions: 0 });
    expect(await tur(a)).toEqual(REPORTED_LUNS_CHANGED);
    expect(await tur(b)).toEqual(REPORTED_LUNS_CHANGED);
    expect(await tur(a, 1)).toEqual(NO_SUCH_LUN);
    expect(await tur(b, 1)).toEqual(NO_SUCH_LUN);
    expect(srp.sessions.size).toBe(2);
    // B's mapping of the removed LUN went with it.
    expect(saved().srp!.acls).toEqual([{ initiator: A }, { initiator: B, mappedLuns: [{ lun: 0, srpLun: 0, readOnly: false }] }]);
  });

  it('removing an SRP ACL ends only that initiator’s session; attributes apply to new logins', async () => {
    const r = (await call('srp.acl.delete', { initiator: B })) as Record<string, unknown>;
    expect(r).toMatchObject({ endedSessions: 1, changedTpgs: ['srp'] });
    expect(channels.get(B)!.closedWith).toBeDefined();
    expect(channels.get(A)!.closedWith).toBeUndefined();
    expect([...srp.sessions.values()].map((s) => s.nexus.initiatorPort)).toEqual([A]);
    expect(srp.evaluate(loginReq(B), '00', '10.0.0.1').ok).toBe(false);
    const a = srp.sessions.values().next().value as SrpSession;
    expect(await tur(a)).toEqual([0]);

    const s = (await call('srp.set', { attributes: { credits: 64 } })) as Record<string, unknown>;
    expect(s).toMatchObject({ endedSessions: 0, appliesTo: expect.stringMatching(/new logins/) });
    expect(srp.opts.credits).toBe(64);
    expect(srp.sessions.size).toBe(1);
    await call('srp.acl.create', { initiator: B });
    expect(srp.evaluate(loginReq(B), '00', '10.0.0.1').ok).toBe(true);
    expect(srp.sessions.size).toBe(1);
    expect(await call('srp.get')).toMatchObject({ attributes: { credits: 64 }, acls: [{ initiator: A }, { initiator: B }] });
  });

  it('refuses bad SRP requests naming the field, changing nothing', async () => {
    const before = readFileSync(file, 'utf8');
    const cases: Array<[string, Record<string, unknown>, number, string]> = [
      ['srp.lun.create', { lun: 0, backstore: 'r2' }, -32602, 'srp.luns[1].lun'],
      ['srp.lun.create', { lun: 2, backstore: 'nope' }, -32602, 'srp.luns[1].backstore'],
      ['srp.lun.create', { lun: 2 }, -32602, 'backstore'],
      ['srp.lun.delete', { lun: 9 }, -32602, 'lun'],
      ['srp.acl.create', { initiator: 'not-a-port-id' }, -32602, 'srp.acls[2].initiator'],
      ['srp.acl.create', { initiator: A }, -32602, 'srp.acls[2].initiator'],
      ['srp.acl.delete', { initiator: '0x000000000000000000000000000000ff' }, -32602, 'initiator'],
      ['srp.mappedlun.create', { initiator: A, lun: 3, srpLun: 7 }, -32602, 'srp.acls[0].mappedLuns[1].srpLun'],
      ['srp.set', { attributes: { credits: 1 } }, -32602, 'srp.attributes.credits'],
      ['srp.set', { targetPortId: { idExt: 'xyz', iocGuid: IOC_GUID } }, -32602, 'srp.targetPortId.idExt'],
      ['srp.set', { bogus: 1 }, -32602, 'bogus'],
    ];
    for (const [m, p, code, field] of cases) {
      const e = await rpcError(call(m, p));
      expect([m, e.code, e.data?.field], JSON.stringify(p)).toEqual([m, code, field]);
      expect(e.message.startsWith(`${field}: `), e.message).toBe(true);
    }
    expect(readFileSync(file, 'utf8')).toBe(before);
    expect(srp.sessions.size).toBe(1);
  });

  it('reload applies srp differences live: an added LUN keeps the session, an in-use LUN removed needs force', async () => {
    const a = srp.sessions.values().next().value as SrpSession;
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { srp: { luns: unknown[]; acls: unknown[] } };
    doc.srp.luns.push({ lun: 2, backstore: 'r2' });
    writeFileSync(file, JSON.stringify(doc));
    const r = (await call('reload')) as Record<string, unknown>;
    expect(r).toMatchObject({ added: [{ target: 'srp', lun: 2, backstore: 'r2' }], removed: [], endedSessions: 0 });
    expect(srp.sessions.get([...srp.sessions.keys()][0]!)).toBe(a);
    expect(await tur(a)).toEqual(REPORTED_LUNS_CHANGED);
    expect(await tur(a, 2)).toEqual(POWER_ON);

    doc.srp.luns.pop();
    writeFileSync(file, JSON.stringify(doc));
    const e = await rpcError(call('reload'));
    expect(e.code).toBe(-32002);
    expect(await tur(a, 2)).toEqual([0]);
    expect((await call('reload', { force: true })) as Record<string, unknown>).toMatchObject({ removed: [{ target: 'srp', lun: 2 }], endedSessions: 0 });
    expect(await tur(a, 2)).toEqual(NO_SUCH_LUN);
    expect(srp.sessions.size).toBe(1);
  });

  it('srp.delete ends every SRP session (force when a LUN is in use); srp.set creates the section again', async () => {
    expect((await rpcError(call('srp.delete'))).code).toBe(-32002);
    const r = (await call('srp.delete', { force: true })) as Record<string, unknown>;
    expect(r).toMatchObject({ removed: [{ target: 'srp', lun: 0 }], endedSessions: 1 });
    expect(channels.get(A)!.closedWith).toBeDefined();
    expect(srp.sessions.size).toBe(0);
    expect(saved().srp).toBeUndefined();
    expect(await call('srp.get')).toBeNull();
    expect(srp.evaluate(loginReq(A), '00', '10.0.0.1').ok).toBe(false);
    expect((await rpcError(call('srp.lun.create', { lun: 0, backstore: 'r0' }))).data?.field).toBe('srp');

    const again = (await call('srp.set', { targetPortId: { idExt: ID_EXT, iocGuid: IOC_GUID }, attributes: { generateNodeAcls: true } })) as Record<
      string,
      unknown
    >;
    // The default portal (0.0.0.0:5555), which this host cannot serve without RDMA: saved, and said.
    expect(again.portalsSkipped).toEqual(['srp 0.0.0.0:5555: no srp transport here (RDMA unavailable); saved, not served']);
    await call('srp.lun.create', { lun: 0, backstore: 'r0' });
    const s = login(A);
    // r0 was closed with the section (no LUN used it), so this is a new logical unit.
    expect(await tur(s)).toEqual(POWER_ON);
    expect(await tur(s)).toEqual([0]);
    expect(saved().srp).toMatchObject({ luns: [{ lun: 0 }], acls: [] });
  });
});
