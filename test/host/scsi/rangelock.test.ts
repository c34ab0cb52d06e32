// LBA range locks (lib/scsi/rangelock.ts): overlap rules, waiting, and the reuse of a
// task's own holder from command to command.
import { describe, expect, it } from 'vitest';
import { Held, RangeLocks } from '../../../lib/scsi/rangelock.js';

describe('RangeLocks', () => {
  it('grants disjoint and adjacent ranges, refuses overlapping ones', () => {
    const l = new RangeLocks();
    const a = l.tryLock(10, 10); // [10, 20)
    expect(a).toBeDefined();
    expect(l.tryLock(20, 5)).toBeDefined(); // adjacent above
    expect(l.tryLock(0, 10)).toBeDefined(); // adjacent below
    expect(l.tryLock(19, 1)).toBeUndefined();
    expect(l.tryLock(5, 6)).toBeUndefined();
    expect(l.tryLock(12, 2)).toBeUndefined();
    l.unlock(a!);
    expect(l.tryLock(12, 2)).toBeDefined();
  });

  it("reuses a caller's released holder, and refuses to arm one that is still held", () => {
    const l = new RangeLocks();
    const mine = new Held();
    expect(l.tryLock(0, 8, mine)).toBe(mine);
    expect(() => l.tryLock(100, 8, mine)).toThrow(/armed again while held/);
    l.unlock(mine);
    expect(l.tryLock(100, 8, mine)).toBe(mine);
    expect([mine.lba, mine.end]).toEqual([100, 108]);
    expect(l.tryLock(104, 1)).toBeUndefined();
    expect(l.tryLock(0, 8)).toBeDefined(); // the first range was released for real
  });

  it('a waiter on a reused holder is woken by its release, and the next use waits anew', async () => {
    const l = new RangeLocks();
    const mine = new Held();
    l.tryLock(0, 8, mine);
    let got = false;
    const waiter = l.acquire(4, 1).then((h) => {
      got = true;
      return h;
    });
    await Promise.resolve();
    expect(got).toBe(false);
    l.unlock(mine);
    const h = await waiter;
    expect(got).toBe(true);
    // Re-armed for another range: a new waiter there waits for this use's release only.
    l.tryLock(50, 8, mine);
    let second = false;
    const w2 = l.acquire(52, 1).then(() => (second = true));
    await new Promise((r) => setTimeout(r, 5));
    expect(second).toBe(false);
    l.unlock(mine);
    await w2;
    expect(second).toBe(true);
    l.unlock(h);
  });
});
