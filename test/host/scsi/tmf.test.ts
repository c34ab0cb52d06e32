import { describe, expect, it } from 'vitest';
import { RamBackstore } from '../../../lib/backstore/ram.js';
import { LogicalUnit } from '../../../lib/scsi/lu.js';
import { DataDirection, TaskAttribute, type Nexus, type ScsiCompletion } from '../../../lib/scsi/types.js';
import { cdb10, Harness, hex, nexusA, nexusB } from './helpers.js';
import { submitAsync } from './async-io.js';

/** A WRITE(10) of one block whose Data-Out arrives only when `open()` is called. */
function gatedWrite(h: Harness, tag: number, attribute = TaskAttribute.Simple, nexus: Nexus = nexusA, fill = 1) {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const done = submitAsync(
    h.view,
    { lun: 0n, cdb: Uint8Array.from(cdb10(0x2a, 0, 1)), tag, attribute, expectedLength: 512, direction: DataDirection.Write },
    nexus,
    {
      dataOut: async (into) => {
        await gate;
        into.fill(fill);
      },
      dataIn: async () => {},
    },
  );
  return { open, done };
}

function tur(h: Harness, tag: number, attribute: TaskAttribute, nexus: Nexus = nexusA): Promise<ScsiCompletion> {
  return submitAsync(h.view, { lun: 0n, cdb: new Uint8Array(6), tag, attribute, expectedLength: 0, direction: DataDirection.None }, nexus, {
    dataOut: async () => {},
    dataIn: async () => {},
  });
}

const tick = () => new Promise((r) => setImmediate(r));
const settled = async <T>(p: Promise<T>): Promise<boolean> => {
  let done = false;
  void p.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((r) => setTimeout(r, 5));
  return done;
};
const UA = (ascq: string) => '700006000000000a00000000' + ascq + '00000000';

async function two(tmfWaitMs?: number): Promise<Harness> {
  const h =
    tmfWaitMs === undefined
      ? Harness.ram()
      : new Harness(new LogicalUnit({ backstore: new RamBackstore({ blockSize: 512, blockCount: 64 }), name: 't', tmfWaitMs }));
  await h.ready();
  await h.ready(nexusB);
  return h;
}

describe('task management', () => {
  it('QUERY TASK finds a running task; ABORT TASK completes only after the task ended, which ends TASK ABORTED', async () => {
    const h = await two();
    const w = gatedWrite(h, 9001);
    await tick();
    expect(await h.view.taskManagement(8, nexusA, 0n, 9001)).toBe(0);
    expect(await h.view.taskManagement(8, nexusA, 0n, 9002)).toBe(1);
    expect(await h.view.taskManagement(8, nexusB, 0n, 9001)).toBe(1); // tags are per I_T nexus
    const abort = h.view.taskManagement(1, nexusA, 0n, 9001);
    expect(await settled(abort)).toBe(false);
    w.open();
    expect(await abort).toBe(0);
    expect((await w.done).status).toBe(0x40);
    expect(await h.view.taskManagement(8, nexusA, 0n, 9001)).toBe(1);
    expect(await h.view.taskManagement(1, nexusA, 0n, 9001)).toBe(1);
    expect(await h.view.taskManagement(5, nexusA, 7n << 48n)).toBe(2);
  });

  it('a task stuck on its Data-Out holds the TMF back no longer than tmfWaitMs', async () => {
    const h = await two(30);
    const w = gatedWrite(h, 1);
    await tick();
    const t0 = Date.now();
    expect(await h.view.taskManagement(1, nexusA, 0n, 1)).toBe(0);
    expect(Date.now() - t0).toBeLessThan(2000);
    w.open();
    expect((await w.done).status).toBe(0x40);
  });

  it("ABORT TASK SET ends only the requesting nexus's tasks; CLEAR TASK SET ends everyone's", async () => {
    const h = await two();
    const a = gatedWrite(h, 1, TaskAttribute.Simple, nexusA);
    const b = gatedWrite(h, 1, TaskAttribute.Simple, nexusB);
    await tick();
    const ats = h.view.taskManagement(2, nexusA, 0n);
    a.open();
    expect(await ats).toBe(0);
    expect((await a.done).status).toBe(0x40);
    expect(await settled(b.done)).toBe(false);
    b.open();
    expect((await b.done).status).toBe(0);

    const a2 = gatedWrite(h, 2, TaskAttribute.Simple, nexusA);
    const b2 = gatedWrite(h, 2, TaskAttribute.Simple, nexusB);
    await tick();
    const cts = h.view.taskManagement(4, nexusA, 0n);
    a2.open();
    b2.open();
    expect(await cts).toBe(0);
    expect([(await a2.done).status, (await b2.done).status]).toEqual([0x40, 0x40]);
    // TAS=1: the other nexus learns through TASK ABORTED, not a unit attention.
    expect((await h.cmd([0, 0, 0, 0, 0, 0], { nexus: nexusB })).status).toBe(0);
  });

  it('LOGICAL UNIT RESET aborts every task, drops RESERVE(6), keeps registrations, and raises 29/03 on every nexus', async () => {
    const h = await two();
    const a = gatedWrite(h, 5, TaskAttribute.Simple, nexusA);
    const b = gatedWrite(h, 5, TaskAttribute.Simple, nexusB);
    await tick();
    expect((await h.cmd([0x16, 0, 0, 0, 0, 0])).status).toBe(0);
    expect((await h.cmd(cdb10(0x28, 0, 1), { nexus: nexusB })).status).toBe(0x18);
    const reset = h.view.taskManagement(5, nexusA, 0n);
    expect(await settled(reset)).toBe(false);
    a.open();
    b.open();
    expect(await reset).toBe(0);
    expect([(await a.done).status, (await b.done).status]).toEqual([0x40, 0x40]);
    for (const n of [nexusA, nexusB]) {
      expect(hex((await h.cmd([0, 0, 0, 0, 0, 0], { nexus: n })).sense)).toBe(UA('2903'));
      expect((await h.cmd(cdb10(0x28, 0, 1), { nexus: n })).status).toBe(0);
    }
    const reg = new Uint8Array(24);
    reg[15] = 0x42;
    expect((await h.cmd([0x5f, 0, 0, 0, 0, 0, 0, 0, 24, 0], { out: reg, nexus: nexusB })).status).toBe(0);
    expect(await h.view.taskManagement(5, nexusB, 0n)).toBe(0);
    await h.ready();
    expect(hex((await h.cmd([0x5e, 0, 0, 0, 0, 0, 0, 0, 16, 0])).data)).toBe('00000001000000080000000000000042');
  });

  it('TARGET WARM RESET resets each LU once even when mapped twice; COLD RESET reports POWER ON', async () => {
    const lu = new LogicalUnit({ backstore: new RamBackstore({ blockSize: 512, blockCount: 64 }), name: 'x' });
    const h = new Harness(lu, false, [0, 1]);
    await h.ready();
    expect(await h.view.taskManagement(6, nexusA, 0n)).toBe(0);
    expect(hex((await h.cmd([0, 0, 0, 0, 0, 0], { lun: 1n << 48n })).sense)).toBe(UA('2903'));
    expect((await h.cmd([0, 0, 0, 0, 0, 0])).status).toBe(0);
    expect(await h.view.taskManagement(7, nexusA, 0n)).toBe(0);
    expect(hex((await h.cmd([0, 0, 0, 0, 0, 0])).sense)).toBe(UA('2900'));
    expect(await h.view.taskManagement(3, nexusA, 0n)).toBe(0); // CLEAR ACA: no ACA, nothing to clear
    expect(await h.view.taskManagement(99 as never, nexusA, 0n)).toBe(5);
  });

  it('I_T nexus loss ends its tasks, releases its RESERVE(6), and it later learns I_T NEXUS LOSS OCCURRED', async () => {
    const h = await two();
    expect((await h.cmd([0x16, 0, 0, 0, 0, 0])).status).toBe(0);
    const a = gatedWrite(h, 3);
    await tick();
    h.view.nexusLost(nexusA);
    a.open();
    expect((await a.done).status).toBe(0x40);
    expect((await h.cmd([0x16, 0, 0, 0, 0, 0], { nexus: nexusB })).status).toBe(0);
    expect(hex((await h.cmd([0, 0, 0, 0, 0, 0])).sense)).toBe(UA('2907'));
  });
});

describe('task attributes (SAM-5 8.6)', () => {
  it('an ORDERED task waits for the tasks before it; SIMPLE tasks do not wait for each other', async () => {
    const h = await two();
    const first = gatedWrite(h, 1);
    await tick();
    const simple = tur(h, 2, TaskAttribute.Simple);
    const ordered = tur(h, 3, TaskAttribute.Ordered);
    expect(await settled(simple)).toBe(true);
    expect(await settled(ordered)).toBe(false);
    first.open();
    await first.done;
    expect((await ordered).status).toBe(0);
  });

  it('tasks after an ORDERED task wait for it; HEAD OF QUEUE does not', async () => {
    const h = await two();
    const ordered = gatedWrite(h, 1, TaskAttribute.Ordered);
    await tick();
    const after = tur(h, 2, TaskAttribute.Simple, nexusB);
    const hoq = tur(h, 3, TaskAttribute.HeadOfQueue);
    expect(await settled(hoq)).toBe(true);
    expect(await settled(after)).toBe(false);
    ordered.open();
    expect((await ordered.done).status).toBe(0);
    expect((await after).status).toBe(0);
  });

  it('an aborted task waiting behind an ORDERED task ends at once', async () => {
    const h = await two();
    const ordered = gatedWrite(h, 1, TaskAttribute.Ordered);
    await tick();
    const waiting = tur(h, 2, TaskAttribute.Simple);
    await tick();
    expect(await h.view.taskManagement(1, nexusA, 0n, 2)).toBe(0);
    expect((await waiting).status).toBe(0x40);
    ordered.open();
    expect((await ordered.done).status).toBe(0);
  });

  it('writes complete in ORDERED order: the later ORDERED write wins', async () => {
    const h = await two();
    const first = gatedWrite(h, 1, TaskAttribute.Ordered, nexusA, 0x11);
    const second = gatedWrite(h, 2, TaskAttribute.Ordered, nexusA, 0x22);
    second.open();
    await tick();
    expect(await settled(second.done)).toBe(false);
    first.open();
    await Promise.all([first.done, second.done]);
    expect(h.lu.backstore.view!(0, 1)![0]).toBe(0x22);
  });
});

describe('task set capacity', () => {
  it('beyond queueDepth tasks a new one gets TASK SET FULL; room again once one ends', async () => {
    const h = new Harness(new LogicalUnit({ backstore: new RamBackstore({ blockSize: 512, blockCount: 64 }), name: 'q', queueDepth: 2 }));
    await h.ready();
    const a = gatedWrite(h, 1);
    const b = gatedWrite(h, 2);
    await tick();
    expect((await tur(h, 3, TaskAttribute.Simple)).status).toBe(0x28);
    a.open();
    await a.done;
    expect((await tur(h, 4, TaskAttribute.Simple)).status).toBe(0);
    b.open();
    await b.done;
  });
});

describe('aborting a write that waits for an overlapping one', () => {
  it('never lets its data reach the medium', async () => {
    const h = await two();
    const first = gatedWrite(h, 1, TaskAttribute.Simple, nexusA, 0x11);
    await tick();
    let asked = false;
    const second = submitAsync(
      h.view,
      { lun: 0n, cdb: Uint8Array.from(cdb10(0x2a, 0, 1)), tag: 2, attribute: TaskAttribute.Simple, expectedLength: 512, direction: DataDirection.Write },
      nexusA,
      {
        dataOut: async (into) => {
          asked = true;
          into.fill(0x22);
        },
        dataIn: async () => {},
      },
    );
    await tick();
    const abort = h.view.taskManagement(1, nexusA, 0n, 2);
    first.open();
    expect(await abort).toBe(0);
    expect((await second).status).toBe(0x40);
    expect((await first.done).status).toBe(0);
    expect(asked).toBe(false);
    expect(h.lu.backstore.view!(0, 1)![0]).toBe(0x11);
  });
});
