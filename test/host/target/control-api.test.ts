// The control API (docs/control.md): JSON-RPC 2.0 over the control socket, every model
// method's happy path and a table of bad inputs, and live changes while libiscsi does I/O
// (the real engine: SCSI core, iSCSI, TCP on 127.0.0.1).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon, type DaemonStatus } from '../../../lib/target/daemon.js';
import { controlRequest, RpcFailure, rpcCall } from '../../../lib/target/control.js';
import { createEngine } from '../../../lib/target/wiring.js';
import { configDocument, validateConfig, type Config } from '../../../lib/target/config.js';
import { saveConfigFile } from '../../../lib/target/persist.js';

const haveLibiscsi = spawnSync('sh', ['-c', 'command -v iscsi-perf && command -v iscsi-inq && command -v iscsi-ls']).status === 0;
if (!haveLibiscsi)
  console.error(
    'control-api.test: libiscsi tools (iscsi-perf, iscsi-inq, iscsi-ls) missing: the live-I/O tests are SKIPPED; scripts/deps.sh installs libiscsi-bin',
  );

const IQN = 'iqn.2025-01.com.example:ctl';
const INI1 = 'iqn.2025-01.com.example:ini1';
const INI2 = 'iqn.2025-01.com.example:ini2';

function tool(cmd: string, ...args: string[]): Promise<{ code: number | null; out: string }> {
  return toolFor(15_000, cmd, ...args);
}

function toolFor(ms: number, cmd: string, ...args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: ms, killSignal: 'SIGKILL' });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (out += d));
    c.on('close', (code) => resolve({ code, out }));
  });
}

/** One raw line in, one reply line out. */
function raw(sock: string, line: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const c = createConnection(sock);
    let buf = '';
    c.setEncoding('utf8');
    c.once('connect', () => c.write(line + '\n'));
    c.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        c.end();
        resolve(JSON.parse(buf.slice(0, nl)));
      }
    });
    c.once('error', reject);
  });
}

/**
 * iscsi-perf reading LUN `lun` for `seconds` as `initiator`, no reconnects (-x 0). It exits on
 * the first failed READ ("Read10/16 failed"). libiscsi 1.19's iscsi-perf retries a UNIT
 * ATTENTION itself (REPORTED LUNS DATA HAS CHANGED reaches LUN 0 when another LUN is added,
 * as LIO does) but then miscounts its in-flight reads and never leaves its loop after the
 * run: so it is killed a few seconds after its run time, and the verdict is its output —
 * the run reached its final "iops average" line, and no read failed.
 */
async function perf(url: string, initiator: string, seconds: number): Promise<{ ok: boolean; out: string }> {
  const r = await toolFor((seconds + 4) * 1000, 'iscsi-perf', '-t', String(seconds), '-x', '0', '-m', '8', '-i', initiator, url);
  const finished = /iops average \d+ \(\d+ MB\/s\) {20,}/.test(r.out);
  const failed = /failed|Login Failed|reconnect/i.test(r.out) || (r.code !== 0 && r.code !== null);
  return { ok: finished && !failed, out: r.out };
}

async function startDaemon(doc: object): Promise<{ d: Daemon; sock: string; file: string; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'rt-ctlapi-'));
  const sock = join(dir, 'ctl.sock');
  const file = join(dir, 'config.json');
  const full = { control: { socket: sock }, stateDir: dir, ...doc };
  const r = validateConfig(full, { allowEphemeralPort: true });
  expect(r.errors).toEqual([]);
  await saveConfigFile(file, full);
  const reloadSource = async (f?: string): Promise<Config> => {
    const v = validateConfig(JSON.parse(readFileSync(f ?? file, 'utf8')), { allowEphemeralPort: true });
    if (!v.config) throw new Error(v.errors.join('; '));
    return v.config;
  };
  const d = await Daemon.start(r.config!, {
    engine: createEngine({ rdma: false }),
    reloadSource,
    save: async (c, f) => saveConfigFile(f ?? file, configDocument(c)),
  });
  return { d, sock, file, dir };
}

async function rpcError(p: Promise<unknown>): Promise<RpcFailure> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(RpcFailure);
    return e as RpcFailure;
  }
  throw new Error('the request succeeded');
}

describe('control API: JSON-RPC 2.0, every method', () => {
  let d: Daemon;
  let sock: string;
  let file: string;
  beforeAll(async () => {
    ({ d, sock, file } = await startDaemon({
      backstores: [{ name: 'r0', type: 'ram', size: '1M' }],
      targets: [
        { iqn: IQN, tpgs: [{ portals: [{ address: '127.0.0.1', port: 0 }], luns: [{ lun: 0, backstore: 'r0' }], attributes: { generateNodeAcls: true } }] },
      ],
    }));
  });
  afterAll(() => d.stop(500));
  const call = (m: string, p: Record<string, unknown> = {}) => rpcCall(sock, m, p);
  const saved = () =>
    JSON.parse(readFileSync(file, 'utf8')) as { targets: Array<{ iqn: string; tpgs: Array<Record<string, unknown>> }>; backstores: Array<{ name: string }> };

  it('answers JSON-RPC 2.0 and the older {cmd} form alike', async () => {
    expect(await raw(sock, JSON.stringify({ jsonrpc: '2.0', method: 'version', id: 7 }))).toEqual({ jsonrpc: '2.0', id: 7, result: { version: '0.0.0' } });
    expect(await raw(sock, JSON.stringify({ cmd: 'version', id: 'x' }))).toEqual({ id: 'x', ok: true, result: { version: '0.0.0' } });
    expect(await raw(sock, JSON.stringify({ jsonrpc: '2.0', method: 'nope', id: 1 }))).toMatchObject({
      id: 1,
      error: { code: -32601, data: { field: 'method' } },
    });
    expect(await raw(sock, JSON.stringify({ jsonrpc: '1.0', method: 'status', id: 2 }))).toMatchObject({
      id: 2,
      error: { code: -32600, data: { field: 'jsonrpc' } },
    });
    expect(await raw(sock, JSON.stringify({ jsonrpc: '2.0', method: 'status', params: [1], id: 3 }))).toMatchObject({
      id: 3,
      error: { code: -32602, data: { field: 'params' } },
    });
    expect(await raw(sock, '{"jsonrpc": "2.0", "method"')).toMatchObject({ id: null, error: { code: -32700 } });
    const help = (await call('rpc.methods')) as { commands: string[] };
    expect(help.commands.some((c) => c.startsWith('lun.create '))).toBe(true);
  });

  it('creates, lists and deletes every kind of object, saving each change', async () => {
    await call('backstore.create', { name: 'b1', type: 'ram', size: '2M' });
    expect((await call('backstore.list')) as unknown[]).toHaveLength(2);
    expect(saved().backstores.map((b) => b.name)).toEqual(['r0', 'b1']);
    await call('target.create', { target: `${IQN}2` });
    await call('tpg.create', { target: `${IQN}2`, tpg: 2 });
    await call('portal.create', { target: `${IQN}2`, tpg: 2, address: '127.0.0.1', port: 0 });
    const r = (await call('lun.create', { target: `${IQN}2`, tpg: 2, lun: 0, backstore: 'b1' })) as { added: unknown[]; saved: string };
    expect(r.added).toEqual([{ target: `${IQN}2`, tpg: 2, lun: 0, backstore: 'b1', sizeBytes: 2 << 20 }]);
    expect(r.saved).toBe(file);
    await call('lun.create', { target: `${IQN}2`, tpg: 2, lun: 1, backstore: { type: 'ram', size: '1M' } });
    await call('acl.create', { target: `${IQN}2`, tpg: 2, initiator: INI1, chap: { userid: 'u1', password: 'secret-secret1' } });
    await call('mappedlun.create', { target: `${IQN}2`, tpg: 2, initiator: INI1, lun: 5, tpgLun: 1, readOnly: true });
    await call('acl.create', { target: `${IQN}2`, tpg: 2, initiator: INI2 });
    await call('chap.set', {
      target: `${IQN}2`,
      tpg: 2,
      initiator: INI2,
      userid: 'u2',
      password: 'secret-secret2',
      mutualUserid: 't',
      mutualPassword: 'mutual-secret2',
    });
    await call('chap.set', { target: `${IQN}2`, tpg: 2, userid: 'demo', password: 'secret-secret3' });
    const set = (await call('tpg.set', {
      target: `${IQN}2`,
      tpg: 2,
      attributes: { defaultCmdsnDepth: 32 },
      parameters: { MaxRecvDataSegmentLength: '65536' },
    })) as {
      appliesTo: string;
    };
    expect(set.appliesTo).toMatch(/new logins/);
    await call('discovery-auth.set', { userid: 'disc', password: 'secret-secret4' });
    const g = (await call('tpg.get', { target: `${IQN}2`, tpg: 2 })) as Record<string, unknown>;
    expect(g).toMatchObject({
      tag: 2,
      luns: [
        { lun: 0, backstore: 'b1' },
        { lun: 1, backstore: { type: 'ram', size: 1 << 20 } },
      ],
      acls: [
        {
          initiator: INI1,
          chap: { userid: 'u1' },
          mappedLuns: [
            { lun: 0, tpgLun: 0 },
            { lun: 1, tpgLun: 1 },
            { lun: 5, tpgLun: 1, readOnly: true },
          ],
        },
        { initiator: INI2, chap: { userid: 'u2', mutualUserid: 't' } },
      ],
      chap: { userid: 'demo' },
      attributes: { defaultCmdsnDepth: 32 },
      parameters: { MaxRecvDataSegmentLength: '65536' },
    });
    expect(saved().targets[1]!.tpgs[1]).toEqual(g);
    const st = (await controlRequest(sock, { cmd: 'status' })) as DaemonStatus;
    expect(st.portals.filter((p) => p.targets.includes(`${IQN}2`))).toHaveLength(1);
    const ls = (await call('ls')) as { tree: string };
    expect(ls.tree).toContain(`o- ${IQN}2 [TPGs: 2]`);
    expect(ls.tree).toMatch(/o- mapped_lun5 \[lun1 \(ro\)\]/);

    await call('mappedlun.delete', { target: `${IQN}2`, tpg: 2, initiator: INI1, lun: 5 });
    await call('chap.delete', { target: `${IQN}2`, tpg: 2, initiator: INI2 });
    await call('chap.delete', { target: `${IQN}2`, tpg: 2 });
    await call('discovery-auth.set', { enable: false });
    await call('acl.delete', { target: `${IQN}2`, tpg: 2, initiator: INI2 });
    await call('lun.delete', { target: `${IQN}2`, tpg: 2, lun: 1 });
    await call('portal.delete', { target: `${IQN}2`, tpg: 2, address: '127.0.0.1', port: 0 });
    await call('tpg.delete', { target: `${IQN}2`, tpg: 2 });
    await call('target.delete', { target: `${IQN}2` });
    await call('backstore.delete', { name: 'b1' });
    expect(saved().targets.map((t) => t.iqn)).toEqual([IQN]);
    expect(saved().backstores.map((b) => b.name)).toEqual(['r0']);
    expect(((await call('status')) as DaemonStatus).portals).toHaveLength(1);
  });

  it('says when a portal is saved but cannot be served here (iser without RDMA)', async () => {
    const r = (await call('portal.create', { target: IQN, address: '127.0.0.1', port: 3261, transport: 'iser' })) as { portalsSkipped: string[] };
    expect(r.portalsSkipped).toEqual(['iser 127.0.0.1:3261: no iser transport here (RDMA unavailable); saved, not served']);
    await call('portal.delete', { target: IQN, address: '127.0.0.1', port: 3261, transport: 'iser' });
  });

  it('a portal whose port is taken is refused (-32000) and changes nothing', async () => {
    const before = readFileSync(file, 'utf8');
    const taken = d.portals[0]!.port;
    const e = await rpcError(call('portal.create', { target: IQN, address: '127.0.0.1', port: taken }));
    expect(e.code).toBe(-32000);
    expect(e.data?.field).toBe('targets[0].tpgs[0].portals[1]');
    expect(e.message).toContain('address already in use');
    expect(readFileSync(file, 'utf8')).toBe(before);
    expect(((await call('status')) as DaemonStatus).portals).toHaveLength(1);
  });

  // method, params, the field the error names, the code.
  const BAD: Array<[string, Record<string, unknown>, string, number]> = [
    ['lun.create', { target: 'iqn.2025-01.com.example:none', lun: 1, backstore: 'r0' }, 'target', -32602],
    ['lun.create', { target: IQN, tpg: 9, lun: 1, backstore: 'r0' }, 'tpg', -32602],
    ['lun.create', { target: IQN, lun: 0, backstore: 'r0' }, 'targets[0].tpgs[0].luns[1].lun', -32602],
    ['lun.create', { target: IQN, lun: 1, backstore: 'nope' }, 'targets[0].tpgs[0].luns[1].backstore', -32602],
    ['lun.create', { target: IQN, lun: 1, backstore: { type: 'ram', size: '1X' } }, 'targets[0].tpgs[0].luns[1].backstore.size', -32602],
    ['lun.create', { target: IQN, lun: 1 }, 'backstore', -32602],
    ['lun.create', { target: IQN, lun: 1, backstore: 'r0', colour: 'red' }, 'colour', -32602],
    ['lun.delete', { target: IQN, lun: 3 }, 'lun', -32602],
    ['lun.delete', { target: IQN, lun: 0, force: 'yes' }, 'force', -32602],
    ['backstore.create', { name: 'r0', type: 'ram', size: '1M' }, 'backstores[1].name', -32602],
    ['backstore.create', { name: 'x', type: 'tape' }, 'backstores[1].type', -32602],
    ['backstore.delete', { name: 'r0' }, 'name', -32001],
    ['target.create', { target: 'not-an-iqn' }, 'targets[1].iqn', -32602],
    ['target.create', { target: IQN }, 'targets[1].iqn', -32602],
    ['tpg.create', { target: IQN, tpg: 1 }, 'targets[0].tpgs[1].tag', -32602],
    ['tpg.set', { target: IQN, attributes: { defaultCmdsnDepth: 0 } }, 'targets[0].tpgs[0].attributes.defaultCmdsnDepth', -32602],
    ['tpg.set', { target: IQN, attributes: { noSuch: 1 } }, 'targets[0].tpgs[0].attributes.noSuch', -32602],
    ['tpg.set', { target: IQN, parameters: { MaxRecvDataSegmentLength: 'lots' } }, 'targets[0].tpgs[0].parameters.MaxRecvDataSegmentLength', -32602],
    ['portal.create', { target: IQN, address: '127.0.0.1', port: 70000 }, 'targets[0].tpgs[0].portals[1].port', -32602],
    ['portal.create', { target: IQN, address: '127.0.0.1', port: 3260, transport: 'fc' }, 'targets[0].tpgs[0].portals[1].transport', -32602],
    ['portal.delete', { target: IQN, address: '10.9.9.9' }, 'address', -32602],
    ['acl.create', { target: IQN, initiator: 'bogus name' }, 'targets[0].tpgs[0].acls[0].initiator', -32602],
    ['acl.create', { target: IQN, initiator: INI1, chap: { userid: 'u', password: 'short' } }, 'targets[0].tpgs[0].acls[0].chap.password', -32602],
    ['acl.create', { target: IQN, initiator: INI1, mappedLuns: [{ lun: 0, tpgLun: 7 }] }, 'targets[0].tpgs[0].acls[0].mappedLuns[0].tpgLun', -32602],
    ['acl.delete', { target: IQN, initiator: INI2 }, 'initiator', -32602],
    ['mappedlun.create', { target: IQN, initiator: INI2, lun: 1, tpgLun: 0 }, 'initiator', -32602],
    ['chap.set', { target: IQN, userid: 'u' }, 'targets[0].tpgs[0].chap.password', -32602],
    ['discovery-auth.set', { userid: 'u', password: 1 }, 'discoveryAuth.password', -32602],
  ];
  it.each(BAD)('%s %j is refused naming %s', async (method, params, field, code) => {
    const before = readFileSync(file, 'utf8');
    const e = await rpcError(call(method, params));
    expect(e.data?.field, e.message).toBe(field);
    expect(e.code, e.message).toBe(code);
    expect(e.message.startsWith(`${field}: `) || e.message.includes(`${field}: `), e.message).toBe(true);
    // Nothing changed.
    expect(readFileSync(file, 'utf8')).toBe(before);
  });
});

describe.skipIf(!haveLibiscsi)('control API: live changes under libiscsi I/O', () => {
  it('adds and removes LUNs, ACLs and a portal while another LUN reads without an error', async () => {
    const { d, sock } = await startDaemon({
      backstores: [{ name: 'r0', type: 'ram', size: '64M' }],
      targets: [
        { iqn: IQN, tpgs: [{ portals: [{ address: '127.0.0.1', port: 0 }], luns: [{ lun: 0, backstore: 'r0' }], attributes: { generateNodeAcls: true } }] },
      ],
    });
    try {
      const port = d.portals[0]!.port;
      const call = (m: string, p: Record<string, unknown> = {}) => rpcCall(sock, m, p);
      // -x 0: no reconnects, so a dropped session is an error; -t: seconds to run.
      const io = perf(`iscsi://127.0.0.1:${port}/${IQN}/0`, INI1, 6);
      await new Promise((r) => setTimeout(r, 800));
      const st0 = (await call('status')) as DaemonStatus;
      expect(st0.sessions.filter((s) => s.initiator === INI1)).toHaveLength(1);
      for (let i = 1; i <= 5; i++) await call('lun.create', { target: IQN, lun: i, backstore: { type: 'ram', size: '1M' } });
      // LUN 3 is visible to the demo-mode session: removing it needs force.
      const busy = await rpcError(call('lun.delete', { target: IQN, lun: 3 }));
      expect(busy.code).toBe(-32002);
      expect(busy.data?.field).toBe('targets[0].tpgs[0].luns[3]');
      // Forced while a second initiator reads LUN 3: its reads end (TASK ABORTED in flight,
      // then LOGICAL UNIT NOT SUPPORTED), and LUN 0's reader sees nothing.
      const doomed = perf(`iscsi://127.0.0.1:${port}/${IQN}/3`, INI2, 4);
      await new Promise((r) => setTimeout(r, 500));
      const forced = (await call('lun.delete', { target: IQN, lun: 3, force: true })) as { removed: unknown[] };
      expect(forced.removed).toEqual([{ target: IQN, tpg: 1, lun: 3, backstore: `${IQN}/tpg1/lun3` }]);
      const gone = await doomed;
      expect(gone.ok, gone.out).toBe(false);
      expect(gone.out).toMatch(/Read(10\/)?16 failed/);
      await call('acl.create', { target: IQN, initiator: INI2 });
      await call('acl.delete', { target: IQN, initiator: INI2 });
      await call('portal.create', { target: IQN, address: '127.0.0.2', port: 0 });
      await call('portal.delete', { target: IQN, address: '127.0.0.2', port: 0 });
      await call('tpg.set', { target: IQN, parameters: { MaxBurstLength: '131072' } });
      // Disabling the TPG would take LUN 0 from its reader: refused without force.
      expect((await rpcError(call('tpg.set', { target: IQN, enable: false }))).code).toBe(-32002);
      const r = await io;
      expect(r.ok, r.out).toBe(true);
      const st = (await call('status')) as DaemonStatus;
      // One login more: the LUN 3 reader; LUN 0’s reader never logged in again.
      expect(st.counters.logins).toBe(st0.counters.logins + 1);
      const ls = await tool('iscsi-ls', '-s', `iscsi://127.0.0.1:${port}`);
      expect(ls.out).toMatch(/Lun:5 +Type:DIRECT_ACCESS/);
      expect(ls.out).not.toMatch(/Lun:3 +Type/);
    } finally {
      await d.stop(500);
    }
  });

  it('deleting an ACL ends only that initiator’s session; deleting a portal closes only its listener', async () => {
    const { d, sock } = await startDaemon({
      backstores: [{ name: 'r0', type: 'ram', size: '16M' }],
      targets: [
        {
          iqn: IQN,
          tpgs: [
            {
              portals: [
                { address: '127.0.0.1', port: 0 },
                { address: '127.0.0.3', port: 0 },
              ],
              luns: [{ lun: 0, backstore: 'r0' }],
              acls: [{ initiator: INI1 }, { initiator: INI2 }],
            },
          ],
        },
      ],
    });
    try {
      const call = (m: string, p: Record<string, unknown> = {}) => rpcCall(sock, m, p);
      const [p1, p3] = [d.portals.find((p) => p.address === '127.0.0.1')!.port, d.portals.find((p) => p.address === '127.0.0.3')!.port];
      const one = perf(`iscsi://127.0.0.1:${p1}/${IQN}/0`, INI1, 5);
      const two = perf(`iscsi://127.0.0.1:${p1}/${IQN}/0`, INI2, 5);
      const three = perf(`iscsi://127.0.0.3:${p3}/${IQN}/0`, INI1, 5);
      await new Promise((r) => setTimeout(r, 1000));
      const inits = async () =>
        ((await call('session.list')) as Array<{ initiator: string; connections: Array<{ local: string }> }>)
          .map((s) => `${s.initiator}@${s.connections[0]?.local.split(':')[0]}`)
          .sort();
      expect(await inits()).toEqual([`${INI1}@127.0.0.1`, `${INI1}@127.0.0.3`, `${INI2}@127.0.0.1`]);
      const r = (await call('acl.delete', { target: IQN, initiator: INI2 })) as { endedSessions: number };
      expect(r.endedSessions).toBe(1);
      expect(await inits()).toEqual([`${INI1}@127.0.0.1`, `${INI1}@127.0.0.3`]);
      const p = (await call('portal.delete', { target: IQN, address: '127.0.0.3', port: 0 })) as { portalsClosed: string[] };
      expect(p.portalsClosed).toEqual([`tcp 127.0.0.3:${p3}`]);
      await new Promise((res) => setTimeout(res, 200));
      expect(await inits()).toEqual([`${INI1}@127.0.0.1`]);
      const [a, b, c] = await Promise.all([one, two, three]);
      expect(a.ok, a.out).toBe(true);
      expect(b.ok, `the removed initiator’s I/O must fail: ${b.out}`).toBe(false);
      expect(c.ok, `I/O through the removed portal must fail: ${c.out}`).toBe(false);
      // The listener is gone: a new login there is refused at connect.
      expect((await tool('iscsi-inq', '-i', INI1, `iscsi://127.0.0.3:${p3}/${IQN}/0`)).code).not.toBe(0);
    } finally {
      await d.stop(500);
    }
  });

  it('changing an ACL’s CHAP ends only that initiator’s session', async () => {
    const { d, sock } = await startDaemon({
      backstores: [{ name: 'r0', type: 'ram', size: '16M' }],
      targets: [
        {
          iqn: IQN,
          tpgs: [
            {
              portals: [{ address: '127.0.0.1', port: 0 }],
              luns: [{ lun: 0, backstore: 'r0' }],
              acls: [
                { initiator: INI1, chap: { userid: 'ini1', password: 'secret-secret1' } },
                { initiator: INI2, chap: { userid: 'ini2', password: 'secret-secret2' } },
              ],
              attributes: { authentication: true },
            },
          ],
        },
      ],
    });
    try {
      const call = (m: string, p: Record<string, unknown> = {}) => rpcCall(sock, m, p);
      const port = d.portals[0]!.port;
      const one = perf(`iscsi://ini1%secret-secret1@127.0.0.1:${port}/${IQN}/0`, INI1, 4);
      const two = perf(`iscsi://ini2%secret-secret2@127.0.0.1:${port}/${IQN}/0`, INI2, 4);
      await new Promise((r) => setTimeout(r, 800));
      expect(((await call('session.list')) as unknown[]).length).toBe(2);
      const r = (await call('chap.set', { target: IQN, initiator: INI2, userid: 'ini2', password: 'another-secret' })) as { endedSessions: number };
      expect(r.endedSessions).toBe(1);
      const [a, b] = await Promise.all([one, two]);
      expect(a.ok, a.out).toBe(true);
      // Its session ended and the old secret no longer logs in: its reads stop.
      expect(b.ok, b.out).toBe(false);
      expect((await tool('iscsi-inq', '-i', INI2, `iscsi://ini2%another-secret@127.0.0.1:${port}/${IQN}/0`)).code).toBe(0);
    } finally {
      await d.stop(500);
    }
  });

  it('reload applies an edited file as a difference; a bad file changes nothing', async () => {
    const { d, sock, file } = await startDaemon({
      backstores: [{ name: 'r0', type: 'ram', size: '16M' }],
      targets: [
        {
          iqn: IQN,
          tpgs: [{ portals: [{ address: '127.0.0.1', port: 0 }], luns: [{ lun: 0, backstore: 'r0' }], acls: [{ initiator: INI1 }, { initiator: INI2 }] }],
        },
      ],
    });
    try {
      const call = (m: string, p: Record<string, unknown> = {}) => rpcCall(sock, m, p);
      const port = d.portals[0]!.port;
      const io = perf(`iscsi://127.0.0.1:${port}/${IQN}/0`, INI1, 5);
      await new Promise((r) => setTimeout(r, 800));
      const doc = JSON.parse(readFileSync(file, 'utf8'));
      const bad = structuredClone(doc);
      bad.targets[0].tpgs[0].luns.push({ lun: 1, backstore: { type: 'ram', size: 'huge' } });
      await saveConfigFile(file, bad);
      await expect(call('reload')).rejects.toThrow('targets[0].tpgs[0].luns[1].backstore.size');
      expect(((await call('tpg.get', { target: IQN })) as { luns: unknown[] }).luns).toHaveLength(1);
      doc.targets[0].tpgs[0].luns.push({ lun: 1, backstore: { type: 'ram', size: '1M' } });
      doc.targets[0].tpgs[0].acls = [{ initiator: INI1 }];
      doc.targets[0].tpgs[0].parameters = { MaxBurstLength: '131072' };
      await saveConfigFile(file, doc);
      const r = (await call('reload')) as { added: unknown[]; endedSessions: number; changedTpgs: string[] };
      expect(r.added).toHaveLength(1);
      expect(r.endedSessions).toBe(0);
      expect(r.changedTpgs).toEqual([`${IQN} tpg 1`]);
      const res = await io;
      expect(res.ok, res.out).toBe(true);
    } finally {
      await d.stop(500);
    }
  });
});
