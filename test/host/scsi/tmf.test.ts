import { describe, expect, it } from 'vitest';
import { DataDirection, TaskAttribute } from '../../../lib/scsi/types.js';
import { cdb10, Harness, nexusA } from './helpers.js';

function gatedWrite(h: Harness, tag: number, attribute = TaskAttribute.Simple) {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const done = h.view.submit(
    { lun: 0n, cdb: Uint8Array.from(cdb10(0x2a, 0, 1)), tag, attribute, expectedLength: 512, direction: DataDirection.Write },
    nexusA,
    { dataOut: async (into) => { await gate; into.fill(1); }, dataIn: async () => {} },
  );
  return { open, done };
}

describe('task management', () => {
  it('QUERY TASK and ABORT TASK find a running task; the aborted task ends TASK ABORTED', async () => {
    const h = Harness.ram();
    await h.ready();
    const w = gatedWrite(h, 9001);
    await new Promise((r) => setImmediate(r));
    expect(await h.view.taskManagement(8, nexusA, 0n, 9001)).toBe(0);
    expect(await h.view.taskManagement(8, nexusA, 0n, 9002)).toBe(1);
    expect(await h.view.taskManagement(1, nexusA, 0n, 9001)).toBe(0);
    w.open();
    expect((await w.done).status).toBe(0x40);
    expect(await h.view.taskManagement(8, nexusA, 0n, 9001)).toBe(1);
    expect(await h.view.taskManagement(5, nexusA, 7n << 48n)).toBe(2);
  });
  it('an ORDERED task waits for the tasks before it', async () => {
    const h = Harness.ram();
    await h.ready();
    const first = gatedWrite(h, 1);
    await new Promise((r) => setImmediate(r));
    let orderedDone = false;
    const ordered = h.cmd([0, 0, 0, 0, 0, 0]).then(() => (orderedDone = true));
    void ordered;
    const o = h.view.submit({ lun: 0n, cdb: new Uint8Array(6), tag: 2, attribute: TaskAttribute.Ordered, expectedLength: 0, direction: DataDirection.None }, nexusA, { dataOut: async () => {}, dataIn: async () => {} });
    let oDone = false;
    void o.then(() => (oDone = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(orderedDone).toBe(true); // SIMPLE tasks do not wait for each other
    expect(oDone).toBe(false);
    first.open();
    await first.done;
    expect((await o).status).toBe(0);
  });
});
