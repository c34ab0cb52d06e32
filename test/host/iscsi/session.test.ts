// TMF, NOP keep-alive, Async logout request on shutdown, text continuation, CmdSN ordering.
import { describe, expect, it } from 'vitest';
import { Opcode, RESERVED_TAG } from '../../../lib/iscsi/opcodes.js';
import { IscsiTarget, type TpgOptions } from '../../../lib/iscsi/target.js';
import { listenTcp } from '../../../lib/transport/tcp.js';
import { FakeCore, read10, TestInitiator, tur } from './helpers.js';

const IQN = 'iqn.2024-01.test:sess';

async function setup(o: Partial<ConstructorParameters<typeof IscsiTarget>[0]> = {}, tpg: Partial<TpgOptions> = {}) {
  const core = new FakeCore();
  const target = new IscsiTarget({ core, nopInterval: 0, ...o, tpgs: [{ iqn: IQN, generateNodeAcls: true, ...tpg }] });
  const portal = await listenTcp(target, { port: 0 });
  const login = async (): Promise<TestInitiator> => {
    const i = await TestInitiator.connect(portal.port);
    expect((await i.login({ targetName: IQN })).status).toBe(0);
    return i;
  };
  return {
    core,
    target,
    portal,
    login,
    done: async () => {
      await target.shutdown(50);
      await portal.close(true);
    },
  };
}

/** Sends an immediate ABORT TASK for `rtt` naming `refCmdSN` and resolves with its response. */
function abortTask(i: TestInitiator, tmfItt: number, rtt: number, refCmdSN: number) {
  i.send({
    opcode: Opcode.TaskMgmtRequest,
    immediate: true,
    itt: tmfItt,
    fn: 1,
    lun: 0n,
    rtt,
    cmdSN: i.cmdSN,
    expStatSN: i.expStatSN,
    refCmdSN,
    expDataSN: 0,
  });
  return i.next((x) => x.pdu.itt === tmfItt);
}

describe('task management (RFC 7143 §11.5)', () => {
  it('ABORT TASK: the aborted command gets no response; TMF response Function complete', async () => {
    const t = await setup();
    const i = await t.login();
    t.core.hold = true;
    const itt = i.itt;
    const pending = i.scsi(read10(0, 1), { read: 512, timeoutMs: 800 }).then(
      () => 'answered',
      () => 'no answer',
    );
    await new Promise((r) => setTimeout(r, 50));
    const r = await abortTask(i, 0x7000, itt, i.cmdSN - 1);
    expect(r.pdu.opcode).toBe(Opcode.TaskMgmtResponse);
    expect((r.pdu as { response: number }).response).toBe(0);
    expect(t.core.tmfs[0]).toMatchObject({ fn: 1, tag: itt });
    expect(await pending).toBe('no answer');
    t.core.hold = false;
    expect((await i.scsi(tur())).status).toBe(0);
    await t.done();
  });
  it('ABORT TASK before its command arrived (RefCmdSN in the window): the command never runs, gets no answer, and leaves no task behind', async () => {
    const t = await setup();
    const i = await t.login();
    const itt = i.itt; // the ITT the next command will carry
    const r = await abortTask(i, 0x7001, itt, i.cmdSN);
    expect((r.pdu as { response: number }).response).toBe(0); // Function complete (§11.5.1)
    const aborted = await i.scsi(read10(0, 1), { read: 512, timeoutMs: 300 }).then(
      () => 'answered',
      () => 'no answer',
    );
    expect(aborted).toBe('no answer');
    expect(t.core.submitted.length).toBe(0);
    // Its CmdSN was consumed, and its ITT is free: a new command with it runs (no Reject "task in progress").
    i.itt = itt;
    expect((await i.scsi(tur())).status).toBe(0);
    expect(t.core.submitted.length).toBe(1);
    await t.done();
  });
  it('ABORT TASK of an unknown task → Task does not exist; TASK REASSIGN → not supported at ERL 0; LUN RESET → core', async () => {
    const t = await setup();
    const i = await t.login();
    const send = async (fn: number, rtt = 0x5555): Promise<number> => {
      const itt = i.nextItt();
      i.send({
        opcode: Opcode.TaskMgmtRequest,
        immediate: true,
        itt,
        fn,
        lun: 0n,
        rtt,
        cmdSN: i.cmdSN,
        expStatSN: i.expStatSN,
        refCmdSN: i.cmdSN - 5,
        expDataSN: 0,
      });
      const r = await i.next((x) => x.pdu.itt === itt);
      return (r.pdu as { response: number }).response;
    };
    expect(await send(1)).toBe(1);
    expect(await send(8)).toBe(4);
    expect(await send(5)).toBe(0);
    expect(t.core.tmfs.map((x) => x.fn)).toEqual([5]);
    expect(await send(42)).toBe(5);
    await t.done();
  });
});

describe('CmdSN ordering (§4.2.2.1)', () => {
  it('out-of-order CmdSNs inside the window are queued and run in order', async () => {
    const t = await setup();
    const i = await t.login();
    const base = i.cmdSN;
    const later = i.scsi(read10(1, 1), { read: 512, cmdSN: base + 1 });
    await new Promise((r) => setTimeout(r, 30));
    expect(t.core.submitted.length).toBe(0); // waits for base
    const first = i.scsi(read10(0, 1), { read: 512, cmdSN: base });
    await Promise.all([later, first]);
    expect(t.core.submitted.map((c) => c.cdb[5])).toEqual([0, 1]);
    await t.done();
  });
});

describe('receive flow control', () => {
  it('stops reading while the connection holds a full command window, resumes as tasks finish', async () => {
    const t = await setup({}, { cmdsnDepth: 4 });
    const i = await t.login();
    t.core.hold = true;
    // Immediate commands are not bound by MaxCmdSN; the read pause still bounds them.
    const all = Array.from({ length: 8 }, (_, k) => i.scsi(read10(k, 1), { read: 512, immediate: true, timeoutMs: 5000 }));
    await new Promise((r) => setTimeout(r, 100));
    expect(t.core.submitted.length).toBe(4);
    t.core.hold = false;
    t.core.release();
    const rs = await Promise.all(all);
    expect(rs.every((r) => r.status === 0)).toBe(true);
    expect(t.core.submitted.length).toBe(8);
    await t.done();
  });
});

describe('NOP keep-alive (§11.19)', () => {
  it('pings an idle initiator and keeps the connection when answered', async () => {
    const t = await setup({ nopInterval: 100, nopTimeout: 300 });
    const i = await t.login();
    const ping = await i.next((x) => x.pdu.opcode === Opcode.NopIn, 2000);
    expect(ping.pdu.itt).toBe(RESERVED_TAG);
    const ttt = (ping.pdu as { ttt: number }).ttt;
    expect(ttt).not.toBe(RESERVED_TAG);
    i.send({ opcode: Opcode.NopOut, immediate: true, itt: RESERVED_TAG, lun: 0n, ttt, cmdSN: i.cmdSN, expStatSN: i.expStatSN });
    await new Promise((r) => setTimeout(r, 250));
    expect(i.closed).toBe(false);
    expect((await i.scsi(tur())).status).toBe(0);
    await t.done();
  });
  it('drops the connection when the ping is not answered', async () => {
    const t = await setup({ nopInterval: 100, nopTimeout: 200 });
    const i = await t.login();
    await Promise.race([i.closedPromise, new Promise((_, rej) => setTimeout(() => rej(new Error('not dropped')), 3000))]);
    expect(t.core.lost.length).toBe(1);
    await t.done();
  });
  it("a TPG's own timers override the target's (keep-alive off target-wide, on for this TPG)", async () => {
    const t = await setup({ nopInterval: 0 }, { nopInterval: 100, nopTimeout: 200 });
    const i = await t.login();
    const t0 = Date.now();
    await Promise.race([i.closedPromise, new Promise((_, rej) => setTimeout(() => rej(new Error('not dropped')), 3000))]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    await t.done();
  });
  it('a TPG with keep-alive off sends no ping, though the target-wide timers would', async () => {
    const t = await setup({ nopInterval: 50, nopTimeout: 100 }, { nopInterval: 0 });
    const i = await t.login();
    await new Promise((r) => setTimeout(r, 500));
    expect(i.closed).toBe(false);
    expect((await i.scsi(tur())).status).toBe(0);
    await t.done();
  });
});

describe('shutdown (§11.9.1)', () => {
  it('sends Async logout request, waits for the logout, then is done', async () => {
    const t = await setup();
    const i = await t.login();
    const stopping = t.target.shutdown(2000);
    const a = await i.next((x) => x.pdu.opcode === Opcode.AsyncMessage);
    expect((a.pdu as { event: number; param3: number }).event).toBe(1);
    expect((a.pdu as { param3: number }).param3).toBe(2);
    expect(await i.logout()).toBe(0);
    const t0 = Date.now();
    await stopping;
    expect(Date.now() - t0).toBeLessThan(1500);
    await t.portal.close(true);
  });
  it('drops sessions that do not log out within the grace period', async () => {
    const t = await setup();
    const i = await t.login();
    await t.target.shutdown(200);
    await i.closedPromise;
    expect(t.core.lost.length).toBe(1);
    await t.portal.close(true);
  });
});

describe('text (§11.10)', () => {
  it('a SendTargets answer longer than MaxRecvDataSegmentLength comes in pieces (C bit, TTT)', async () => {
    const core = new FakeCore();
    const tpgs = Array.from({ length: 60 }, (_, k) => ({
      iqn: `iqn.2024-01.test:a-rather-long-target-name-number-${k}`,
      generateNodeAcls: true,
      portals: [
        { address: '192.0.2.1', port: 3260 },
        { address: '2001:db8::1', port: 3260 },
      ],
    }));
    const target = new IscsiTarget({ core, nopInterval: 0, tpgs });
    const portal = await listenTcp(target, { port: 0 });
    const i = await TestInitiator.connect(portal.port);
    i.mrdsl = 1024;
    expect((await i.login({ discovery: true })).status).toBe(0);
    const m = await i.text([['SendTargets', 'All']]);
    expect(m.get('TargetName')!.split('|').length).toBe(60);
    expect(m.get('TargetAddress')!.split('|')).toContain('[2001:db8::1]:3260,1');
    await target.shutdown(50);
    await portal.close(true);
  });
});
