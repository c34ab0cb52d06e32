// The device lifecycle with fakes (docs/architecture.md, device lifecycle): the monitor's
// added/removed events from successive listings, the table's absent → present → open →
// removing → absent states, and that a removing device is never reopened. The real
// removal runs in the soft-RoCE VM (test/rdma/device-removal.test.ts).
import { describe, expect, test } from 'vitest';
import { DeviceMonitor, DeviceState, DeviceTable, type DeviceResources } from '../../lib/verbs/device.js';

function fakeDevice(name: string, closed: string[]): DeviceResources {
  return { name, context: {}, pd: {}, close: () => closed.push(name) } as unknown as DeviceResources;
}

describe('DeviceMonitor', () => {
  const recorder = (seen: string[], tag = '') => ({
    added: (n: string) => seen.push(`${tag}+${n}`),
    removed: (n: string) => seen.push(`${tag}-${n}`),
    scanned: () => seen.push(`${tag}scan`),
  });

  test('reports devices that appear and vanish between listings, removals first', () => {
    let listing = ['rxe0', 'rxe1'];
    const seen: string[] = [];
    const m = new DeviceMonitor(() => listing, 60_000);
    const off = m.subscribe(recorder(seen));
    expect(seen).toEqual(['+rxe0', '+rxe1', 'scan']);
    seen.length = 0;
    m.scan();
    expect(seen).toEqual(['scan']);
    listing = ['rxe1', 'rxe2'];
    m.scan();
    expect(seen).toEqual(['scan', '-rxe0', '+rxe2', 'scan']);
    expect([...m.devices]).toEqual(['rxe1', 'rxe2']);
    off();
  });

  test('every subscriber sees the same listing; a late one hears the present devices first', () => {
    let listing = ['rxe0'];
    const a: string[] = [];
    const b: string[] = [];
    const m = new DeviceMonitor(() => listing, 60_000);
    const offA = m.subscribe(recorder(a));
    const offB = m.subscribe(recorder(b));
    expect(b).toEqual(['+rxe0']);
    listing = [];
    m.scan();
    expect(a.slice(-2)).toEqual(['-rxe0', 'scan']);
    expect(b.slice(-2)).toEqual(['-rxe0', 'scan']);
    offA();
    offB();
  });

  test('a listing that throws counts as no device (every device removed), and the next one brings them back', () => {
    let fail = false;
    const seen: string[] = [];
    const m = new DeviceMonitor(() => {
      if (fail) throw new Error('ENODEV');
      return ['rxe0'];
    }, 60_000);
    const off = m.subscribe({ added: (n) => seen.push(`+${n}`), removed: (n) => seen.push(`-${n}`) });
    fail = true;
    m.scan();
    fail = false;
    m.scan();
    expect(seen).toEqual(['+rxe0', '-rxe0', '+rxe0']);
    off();
  });

  test('hurry() polls at the fast interval, then falls back; the last unsubscribe stops polling', async () => {
    let calls = 0;
    const m = new DeviceMonitor(
      () => {
        calls++;
        return [];
      },
      60_000,
      5,
      60,
    );
    const off = m.subscribe({ added: () => {}, removed: () => {} });
    calls = 0;
    await new Promise((r) => setTimeout(r, 40));
    expect(calls).toBe(0);
    m.hurry();
    await new Promise((r) => setTimeout(r, 150));
    const fast = calls;
    expect(fast).toBeGreaterThanOrEqual(4);
    await new Promise((r) => setTimeout(r, 60));
    expect(calls - fast).toBeLessThanOrEqual(1);
    m.hurry();
    off();
    const at = calls;
    await new Promise((r) => setTimeout(r, 30));
    expect(calls).toBe(at);
  });
});

describe('DeviceTable lifecycle', () => {
  test('absent → present → open → removing → absent → open again', () => {
    const closed: string[] = [];
    let opened = 0;
    const t = new DeviceTable(undefined, (n) => {
      opened++;
      return fakeDevice(n, closed);
    });
    expect(t.state('rxe0', false)).toBe(DeviceState.Absent);
    expect(t.state('rxe0', true)).toBe(DeviceState.Present);
    const d = t.get('rxe0');
    expect(t.get('rxe0')).toBe(d);
    expect(opened).toBe(1);
    expect(t.state('rxe0', true)).toBe(DeviceState.Open);
    expect(t.remove('rxe0')).toBe(d);
    expect(closed).toEqual(['rxe0']);
    expect(t.state('rxe0', true)).toBe(DeviceState.Removing);
    // The kernel still lists it while it finishes: a connection request must not reopen it.
    expect(() => t.get('rxe0')).toThrow(expect.objectContaining({ code: 'ENODEV' }));
    expect(opened).toBe(1);
    t.forget('rxe0');
    expect(t.state('rxe0', false)).toBe(DeviceState.Absent);
    const again = t.get('rxe0');
    expect(again).not.toBe(d);
    expect(opened).toBe(2);
  });

  test('removing one device leaves the others open; close() closes what is open, once', () => {
    const closed: string[] = [];
    const t = new DeviceTable(undefined, (n) => fakeDevice(n, closed));
    t.get('rxe0');
    t.get('rxe1');
    t.remove('rxe0');
    t.remove('rxe0');
    expect(closed).toEqual(['rxe0']);
    expect(t.names()).toEqual(['rxe1']);
    t.close();
    expect(closed).toEqual(['rxe0', 'rxe1']);
  });

  test('async events reach the owner with the device name', () => {
    const events: string[] = [];
    let fire: ((type: string, port: number) => void) | undefined;
    const t = new DeviceTable(
      (dev, type, port) => events.push(`${dev}:${type}:${port}`),
      (n, cb) => {
        fire = cb;
        return fakeDevice(n, []);
      },
    );
    t.get('rxe1');
    fire?.('port error', 1);
    expect(events).toEqual(['rxe1:port error:1']);
  });
});
