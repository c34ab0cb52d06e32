// The command counters (lib/scsi/stats.ts) and their one hook in the LU: what a command
// adds where, and that the latency sample is the advertised fraction.
import { describe, expect, it } from 'vitest';
import { IoStats, LATENCY_BOUNDS, LATENCY_BUCKETS, ioKindOf, IoKind, recordAnswered, recordEnd, senseKeyOf, stamp } from '../../../lib/scsi/stats.js';
import { ScsiError, SenseKey, Asc, buildSense } from '../../../lib/scsi/sense.js';
import { TRANSPORTS, transportIndex } from '../../../lib/common/transports.js';
import { cdb10, Harness, nexusA, nexusB } from './helpers.js';

describe('IoStats', () => {
  it('classifies operation codes', () => {
    expect(ioKindOf(0x28)).toBe(IoKind.Read);
    expect(ioKindOf(0x88)).toBe(IoKind.Read);
    expect(ioKindOf(0x2a)).toBe(IoKind.Write);
    expect(ioKindOf(0x89)).toBe(IoKind.Write); // COMPARE AND WRITE
    expect(ioKindOf(0x12)).toBe(IoKind.Other); // INQUIRY
  });

  it('puts a latency in the first bucket whose bound holds it; +Inf beyond the last', () => {
    const s = new IoStats(1);
    s.record(0x28, 4096, 0.0005); // 0.5 µs
    s.record(0x28, 4096, 0.003); // 3 µs: the 5 µs bucket
    s.record(0x2a, 512, 20_000); // 20 s
    expect(LATENCY_BOUNDS[0]).toBe(1e-6);
    expect(s.buckets[0]).toBe(1);
    expect(s.buckets[2]).toBe(1);
    expect(s.buckets[IoKind.Write * LATENCY_BUCKETS + LATENCY_BUCKETS - 1]).toBe(1);
    expect([...s.commands]).toEqual([2, 1, 0]);
    expect([...s.timed]).toEqual([2, 1, 0]);
    expect([...s.bytes]).toEqual([8192, 512, 0]);
    expect(s.latencySum[0]).toBeCloseTo(3.5e-6);
    s.record(0x28, 4096, -1); // not measured: counted only
    expect(s.commands[0]).toBe(3);
    expect(s.timed[0]).toBe(2);
  });

  it('counts statuses: CHECK CONDITION by sense key, others apart, failures without status', () => {
    const lu = new IoStats(1);
    const nx = new IoStats(1);
    recordEnd(lu, nx, 0x28, 4096, stamp(), false, undefined);
    recordEnd(lu, nx, 0x28, 4096, stamp(), false, new ScsiError(SenseKey.MediumError, Asc.NoAdditional));
    recordEnd(lu, nx, 0x2a, 4096, -1, true, undefined); // aborted
    recordEnd(lu, undefined, 0x2a, 4096, -1, false, new Error('backstore gone'));
    recordAnswered(lu, nx, 0x00, 0x02, buildSense(false, SenseKey.UnitAttention, Asc.PowerOnReset));
    recordAnswered(lu, nx, 0x00, 0x02, buildSense(true, SenseKey.IllegalRequest, Asc.InvalidOpcode));
    expect([...lu.commands]).toEqual([2, 2, 2]);
    expect([...lu.bytes]).toEqual([4096, 0, 0]); // only the good read moved data
    expect(lu.senseKeys[SenseKey.MediumError]).toBe(1);
    expect(lu.senseKeys[SenseKey.UnitAttention]).toBe(1);
    expect(lu.senseKeys[SenseKey.IllegalRequest]).toBe(1); // descriptor format too
    expect(lu.otherStatus).toBe(1);
    expect(lu.failures).toBe(1);
    expect([...lu.timed]).toEqual([2, 0, 0]); // answered and unsampled commands are not timed
    expect([...nx.commands]).toEqual([2, 1, 2]);
    expect(nx.failures).toBe(0);
    expect(senseKeyOf(undefined)).toBe(0);
  });

  it('samples about 1 in sampleEvery; 1 samples all; refuses a non-power of two', () => {
    const s = new IoStats(16);
    let n = 0;
    for (let i = 0; i < 160_000; i++) if (s.sample()) n++;
    expect(n).toBeGreaterThan(9000);
    expect(n).toBeLessThan(11000);
    const all = new IoStats(1);
    for (let i = 0; i < 100; i++) expect(all.sample()).toBe(true);
    expect(() => new IoStats(10)).toThrow(/power of two/);
  });

  it('toJSON gives plain arrays', () => {
    const j = JSON.parse(JSON.stringify(new IoStats()));
    expect(j.buckets).toHaveLength(3 * LATENCY_BUCKETS);
    expect(j.senseKeys).toHaveLength(16);
    expect(j.commands).toEqual([0, 0, 0]);
  });
});

describe('LuStats: a logical unit counts per transport', () => {
  it("puts each command in the row of its nexus's transport; total() sums the rows", async () => {
    const h = Harness.ram();
    const iser = { ...nexusB, transport: transportIndex('iser') };
    const tcp = { ...nexusA, transport: transportIndex('tcp') };
    await h.ready(tcp); // TEST UNIT READY (unit attention): other, on tcp
    await h.ready(iser);
    expect((await h.cmd(cdb10(0x28, 0, 2), { nexus: tcp })).status).toBe(0); // READ(10) 2 blocks
    for (let i = 0; i < 3; i++) expect((await h.cmd(cdb10(0x2a, 8, 1), { nexus: iser, out: new Uint8Array(512) })).status).toBe(0);
    expect((await h.cmd(cdb10(0x28, 4096, 1), { nexus: iser })).status).toBe(2); // LBA out of range: CHECK CONDITION
    const st = h.lu.stats!;
    expect(st.byTransport).toHaveLength(TRANSPORTS.length);
    const t = st.of(transportIndex('tcp'));
    const i = st.of(transportIndex('iser'));
    const s = st.of(transportIndex('srp'));
    expect([...t.commands]).toEqual([1, 0, 1]);
    expect([...t.bytes]).toEqual([1024, 0, 0]);
    expect([...i.commands]).toEqual([1, 3, 1]);
    expect([...i.bytes]).toEqual([0, 1536, 0]);
    expect(i.senseKeys[SenseKey.IllegalRequest]).toBe(1);
    expect(t.senseKeys[SenseKey.IllegalRequest]).toBe(0);
    expect([...s.commands]).toEqual([0, 0, 0]);
    const total = st.total();
    expect([...total.commands]).toEqual([2, 3, 2]);
    expect([...total.bytes]).toEqual([1024, 1536, 0]);
    expect(total.senseKeys[SenseKey.UnitAttention]).toBe(2);
    expect(total.senseKeys[SenseKey.IllegalRequest]).toBe(1);
    // Reading the total leaves the rows as they were.
    expect([...t.commands]).toEqual([1, 0, 1]);
  });

  it('names the transports once, in the order nexuses index them', () => {
    expect(TRANSPORTS).toEqual(['tcp', 'iser', 'srp']);
    expect(TRANSPORTS.map((k) => transportIndex(k))).toEqual([0, 1, 2]);
  });
});
