import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RamBackstore } from '../../../lib/backstore/ram.js';
import { LogicalUnit } from '../../../lib/scsi/lu.js';
import { DataDirection, TaskAttribute, type Nexus } from '../../../lib/scsi/types.js';
import { cdb10, Harness, hex, nexusA, nexusB } from './helpers.js';
import { submitAsync } from './async-io.js';

function params(key: bigint, saKey: bigint, flags = 0): Uint8Array {
  const p = new Uint8Array(24);
  const dv = new DataView(p.buffer);
  dv.setBigUint64(0, key);
  dv.setBigUint64(8, saKey);
  p[20] = flags;
  return p;
}
const prOut = (sa: number, type = 0) => [0x5f, sa, type, 0, 0, 0, 0, 0, 24, 0];
const prIn = (sa: number) => [0x5e, sa, 0, 0, 0, 0, 0, 0x10, 0, 0];

async function two(): Promise<Harness> {
  const h = Harness.ram();
  await h.ready();
  await h.ready(nexusB);
  return h;
}

describe('PERSISTENT RESERVE', () => {
  it('REGISTER, READ KEYS, generation', async () => {
    const h = await two();
    expect((await h.cmd(prOut(0), { out: params(0n, 0xaan) })).status).toBe(0);
    expect((await h.cmd(prOut(0), { out: params(0n, 0xbbn), nexus: nexusB })).status).toBe(0);
    const k = await h.cmd(prIn(0));
    expect(hex(k.data)).toBe('00000002' + '00000010' + '00000000000000aa' + '00000000000000bb');
    // Wrong key: RESERVATION CONFLICT.
    expect((await h.cmd(prOut(0), { out: params(0x1n, 0xccn) })).status).toBe(0x18);
    // REGISTER AND IGNORE EXISTING KEY.
    expect((await h.cmd(prOut(6), { out: params(0n, 0xccn) })).status).toBe(0);
    expect(hex((await h.cmd(prIn(0))).data).slice(16, 32)).toBe('00000000000000cc');
  });

  it('WRITE EXCLUSIVE: others read but cannot write; RELEASE; READ RESERVATION', async () => {
    const h = await two();
    await h.cmd(prOut(0), { out: params(0n, 0xaan) });
    expect((await h.cmd(prOut(1, 1), { out: params(0xaan, 0n) })).status).toBe(0);
    const rr = await h.cmd(prIn(1));
    expect(hex(rr.data)).toBe('00000001' + '00000010' + '00000000000000aa' + '00000000' + '0001' + '0000');
    expect((await h.cmd(cdb10(0x28, 0, 1), { nexus: nexusB })).status).toBe(0);
    expect((await h.cmd(cdb10(0x2a, 0, 1), { out: new Uint8Array(512), nexus: nexusB })).status).toBe(0x18);
    expect((await h.cmd(cdb10(0x2a, 0, 1), { out: new Uint8Array(512) })).status).toBe(0);
    // Releasing with the wrong type is INVALID RELEASE OF PERSISTENT RESERVATION.
    expect(hex((await h.cmd(prOut(2, 3), { out: params(0xaan, 0n) })).sense)).toBe('700005000000000a00000000260400000000');
    expect((await h.cmd(prOut(2, 1), { out: params(0xaan, 0n) })).status).toBe(0);
    expect((await h.cmd(cdb10(0x2a, 0, 1), { out: new Uint8Array(512), nexus: nexusB })).status).toBe(0);
  });

  it('EXCLUSIVE ACCESS blocks reads; PREEMPT moves it and tells the preempted nexus', async () => {
    const h = await two();
    await h.cmd(prOut(0), { out: params(0n, 0xaan) });
    await h.cmd(prOut(0), { out: params(0n, 0xbbn), nexus: nexusB });
    await h.cmd(prOut(1, 3), { out: params(0xaan, 0n) });
    expect((await h.cmd(cdb10(0x28, 0, 1), { nexus: nexusB })).status).toBe(0x18);
    expect((await h.cmd(prOut(4, 3), { out: params(0xbbn, 0xaan), nexus: nexusB })).status).toBe(0);
    expect(hex((await h.cmd([0, 0, 0, 0, 0, 0])).sense)).toBe('700006000000000a000000002a0500000000');
    expect((await h.cmd(cdb10(0x28, 0, 1))).status).toBe(0x18);
    expect((await h.cmd(cdb10(0x28, 0, 1), { nexus: nexusB })).status).toBe(0);
  });

  it('CLEAR drops everything; REPORT CAPABILITIES; bad parameter list length', async () => {
    const h = await two();
    await h.cmd(prOut(0), { out: params(0n, 0xaan) });
    await h.cmd(prOut(1, 8), { out: params(0xaan, 0n) });
    expect((await h.cmd(prOut(3), { out: params(0xaan, 0n) })).status).toBe(0);
    expect(hex((await h.cmd(prIn(0))).data).slice(8, 16)).toBe('00000000');
    const caps = (await h.cmd(prIn(2))).data;
    expect([caps[1], caps[4], caps[5]]).toEqual([8, 0xea, 0x01]);
    const bad = [0x5f, 0, 0, 0, 0, 0, 0, 0, 20, 0];
    expect(hex((await h.cmd(bad, { out: new Uint8Array(20) })).sense)).toBe('700005000000000a000000001a0000000000');
    expect(hex((await h.cmd([0x5e, 4, 0, 0, 0, 0, 0, 0, 0x10, 0])).sense)).toBe('700005000000000a00000000240000cc0001');
  });

  it('APTPL registrations survive a new LogicalUnit over the same state directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rdma-target-pr-'));
    try {
      const bs = new RamBackstore({ blockSize: 512, blockCount: 64 });
      const lu = await new LogicalUnit({ backstore: bs, name: 'x', stateDir: dir }).open();
      const h = new Harness(lu);
      await h.ready();
      expect((await h.cmd(prOut(0), { out: params(0n, 0x1234n, 0x01) })).status).toBe(0);
      await h.cmd(prOut(1, 1), { out: params(0x1234n, 0n) });
      expect(await readFile(join(dir, `pr-${lu.serial}.json`), 'utf8')).toContain('0x1234');
      const h2 = new Harness(await new LogicalUnit({ backstore: bs, name: 'x', stateDir: dir }).open());
      await h2.ready(nexusB);
      expect(hex((await h2.cmd(prIn(1), { nexus: nexusB })).data).slice(16, 32)).toBe('0000000000001234');
      expect((await h2.cmd(cdb10(0x2a, 0, 1), { out: new Uint8Array(512), nexus: nexusB })).status).toBe(0x18);
      void nexusA;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// ---- SPEC_I_PT, ALL_TG_PT, REGISTER AND MOVE, every type against the SPC-4 5.12.1 table ----

const nexusC: Nexus = {
  initiatorPort: 'iqn.2025-01.test:c,i,0x2',
  targetPort: 'iqn.2025-01.test:t,t,0x1',
  relativePortId: 1,
  transport: 0,
  transportId: new Uint8Array([0x05]),
};
/** Nexus A through a second target port (relative port 2). */
const nexusA2: Nexus = { ...nexusA, targetPort: 'iqn.2025-01.test:t,t,0x2', relativePortId: 2 };

/** iSCSI TransportID (SPC-4 7.6.4.6) by hand: format in the top bits of byte 0, protocol 5, NUL-padded name. */
function iscsiTid(name: string, format: 0 | 1): number[] {
  const body = [...Buffer.from(name), 0];
  while (body.length % 4 !== 0 || body.length < 20) body.push(0);
  return [(format << 6) | 0x05, 0, body.length >> 8, body.length & 0xff, ...body];
}

function specIptList(key: bigint, saKey: bigint, flags: number, tids: number[][]): Uint8Array {
  const all = tids.flat();
  const p = new Uint8Array(28 + all.length);
  p.set(params(key, saKey, flags));
  new DataView(p.buffer).setUint32(24, all.length);
  p.set(all, 28);
  return p;
}

function moveList(key: bigint, saKey: bigint, flags: number, rtpi: number, tid: number[]): Uint8Array {
  const p = new Uint8Array(24 + tid.length);
  const dv = new DataView(p.buffer);
  dv.setBigUint64(0, key);
  dv.setBigUint64(8, saKey);
  p[17] = flags;
  dv.setUint16(18, rtpi);
  dv.setUint32(20, tid.length);
  p.set(tid, 24);
  return p;
}
const prOutLen = (sa: number, len: number, type = 0) => [0x5f, sa, type, 0, 0, (len >>> 24) & 0xff, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff, 0];
const keysOf = (data: Uint8Array): string[] => {
  const out: string[] = [];
  for (let o = 8; o + 8 <= data.length; o += 8) out.push(hex(data.subarray(o, o + 8)).replace(/^0+/, ''));
  return out.sort();
};
/** Fixed-format ILLEGAL REQUEST sense with an optional SKS. */
const illegal = (ascq: string, sks = '000000') => '700005000000000a00000000' + ascq + '00' + sks;

async function three(): Promise<Harness> {
  const h = await two();
  await h.ready(nexusC);
  return h;
}

describe('PERSISTENT RESERVE: SPEC_I_PT and ALL_TG_PT', () => {
  it('REGISTER with SPEC_I_PT registers the named port and device with the same key', async () => {
    const h = await three();
    const list = specIptList(0n, 0xabn, 0x08, [iscsiTid('iqn.2025-01.test:b,i,0x1', 1), iscsiTid('iqn.2025-01.test:c', 0)]);
    expect((await h.cmd(prOutLen(0, list.length), { out: list })).status).toBe(0);
    expect(keysOf((await h.cmd(prIn(0))).data)).toEqual(['ab', 'ab', 'ab']);
    // B and C are registered though they never sent PERSISTENT RESERVE OUT themselves.
    expect((await h.cmd(prOut(1, 5), { out: params(0xabn, 0n), nexus: nexusB })).status).toBe(0);
    expect((await h.cmd(cdb10(0x2a, 0, 1), { out: new Uint8Array(512), nexus: nexusC })).status).toBe(0);
    // A TransportID naming an initiator already registered is skipped, not an error.
    const again = specIptList(0n, 0xcdn, 0x08, [iscsiTid('iqn.2025-01.test:b,i,0x1', 1)]);
    expect((await h.cmd(prOutLen(0, again.length), { out: again, nexus: nexusC })).status).toBe(0x18); // C is registered: key 0 mismatches
  });

  const bad: Array<[string, number, () => Uint8Array, string]> = [
    ['SPEC_I_PT with REGISTER AND IGNORE EXISTING KEY', 6, () => specIptList(0n, 1n, 0x08, [iscsiTid('iqn.x:b,i,0x1', 1)]), illegal('2600', '8b0014')],
    [
      'TransportID parameter data length past the list',
      0,
      () => {
        const l = specIptList(0n, 1n, 0x08, [iscsiTid('iqn.x:b,i,0x1', 1)]);
        l[27]! += 4;
        return l;
      },
      illegal('1a00'),
    ],
    [
      'iSCSI ADDITIONAL LENGTH not a multiple of 4',
      0,
      () => {
        const l = specIptList(0n, 1n, 0x08, [iscsiTid('iqn.x:b,i,0x1', 1)]);
        l[31] = 21;
        return l;
      },
      illegal('2600', '80001e'),
    ],
    ['iSCSI format 1 without ,i,0x', 0, () => specIptList(0n, 1n, 0x08, [iscsiTid('iqn.x:b', 1)]), illegal('2600', '800020')],
    ['a protocol no nexus of this LU speaks (FC)', 0, () => specIptList(0n, 1n, 0x08, [[0x00, ...new Array(23).fill(1)]]), illegal('2600', '8b001c')],
    ['basic list longer than 24 without SPEC_I_PT', 0, () => new Uint8Array(32), illegal('1a00')],
  ];
  for (const [name, sa, list, sense] of bad) {
    it(`rejects ${name}`, async () => {
      const h = await two();
      const l = list();
      const r = await h.cmd(prOutLen(sa, l.length), { out: l });
      expect(hex(r.sense)).toBe(sense);
      expect(hex((await h.cmd(prIn(0))).data)).toBe('0000000000000000');
    });
  }

  it('SPEC_I_PT from a registered I_T nexus is INVALID FIELD IN PARAMETER LIST', async () => {
    const h = await two();
    await h.cmd(prOut(0), { out: params(0n, 0xaan) });
    const l = specIptList(0xaan, 0xaan, 0x08, [iscsiTid('iqn.2025-01.test:b,i,0x1', 1)]);
    expect(hex((await h.cmd(prOutLen(0, l.length), { out: l })).sense)).toBe(illegal('2600', '8b0014'));
  });

  it('ALL_TG_PT registers the initiator port on every target port; READ FULL STATUS says so', async () => {
    const h = await two();
    await h.ready(nexusA2);
    expect((await h.cmd(prOut(0), { out: params(0n, 0x77n, 0x04) })).status).toBe(0);
    // The same initiator port through target port 2 is registered too and may reserve.
    expect((await h.cmd(prOut(1, 3), { out: params(0x77n, 0n), nexus: nexusA2 })).status).toBe(0);
    expect((await h.cmd(cdb10(0x28, 0, 1))).status).toBe(0); // all-target-port registrant holds it from port 1 too
    expect((await h.cmd(cdb10(0x28, 0, 1), { nexus: nexusB })).status).toBe(0x18);
    const fs = (await h.cmd([0x5e, 3, 0, 0, 0, 0, 0, 1, 0, 0])).data;
    // generation 1, one 25-byte descriptor: key, ALL_TG_PT|R_HOLDER, type 3, TransportID of A.
    expect(hex(fs.subarray(0, 8))).toBe('0000000100000019');
    expect(hex(fs.subarray(8, 33))).toBe('0000000000000077' + '00000000' + '03' + '03' + '0000' + '0000' + '0000' + '00000001' + '05');
  });
});

describe('PERSISTENT RESERVE: REGISTER AND MOVE', () => {
  const bTid = iscsiTid('iqn.2025-01.test:b,i,0x1', 1);

  it('moves a WRITE EXCLUSIVE reservation to another I_T nexus and unregisters the source (UNREG)', async () => {
    const h = await two();
    await h.cmd(prOut(0), { out: params(0n, 0xaan) });
    await h.cmd(prOut(1, 1), { out: params(0xaan, 0n) });
    const l = moveList(0xaan, 0xbbn, 0x02, 1, bTid);
    expect((await h.cmd(prOutLen(7, l.length), { out: l })).status).toBe(0);
    expect(hex((await h.cmd(prIn(1))).data)).toBe('00000002' + '00000010' + '00000000000000bb' + '00000000' + '0001' + '0000');
    expect(keysOf((await h.cmd(prIn(0))).data)).toEqual(['bb']);
    expect((await h.cmd(cdb10(0x2a, 0, 1), { out: new Uint8Array(512), nexus: nexusB })).status).toBe(0);
    expect((await h.cmd(cdb10(0x2a, 0, 1), { out: new Uint8Array(512) })).status).toBe(0x18);
  });

  const cases: Array<[string, (h: Harness) => Promise<void>, () => Uint8Array, number, string]> = [
    ['from an unregistered I_T nexus', async () => {}, () => moveList(0xaan, 0xbbn, 0, 1, bTid), 0x18, ''],
    [
      'with a zero SERVICE ACTION RESERVATION KEY',
      async (h) => {
        await h.cmd(prOut(0), { out: params(0n, 0xaan) });
      },
      () => moveList(0xaan, 0n, 0, 1, bTid),
      2,
      illegal('2600', '800008'),
    ],
    [
      'to an unknown relative target port',
      async (h) => {
        await h.cmd(prOut(0), { out: params(0n, 0xaan) });
        await h.cmd(prOut(1, 1), { out: params(0xaan, 0n) });
      },
      () => moveList(0xaan, 0xbbn, 0, 9, bTid),
      2,
      illegal('2600', '800012'),
    ],
    [
      'to the I_T nexus it came from',
      async (h) => {
        await h.cmd(prOut(0), { out: params(0n, 0xaan) });
        await h.cmd(prOut(1, 1), { out: params(0xaan, 0n) });
      },
      () => moveList(0xaan, 0xbbn, 0, 1, iscsiTid('iqn.2025-01.test:a,i,0x1', 1)),
      2,
      illegal('2600', '800018'),
    ],
    [
      'with no reservation',
      async (h) => {
        await h.cmd(prOut(0), { out: params(0n, 0xaan) });
      },
      () => moveList(0xaan, 0xbbn, 0, 1, bTid),
      2,
      illegal('2400'),
    ],
    [
      'of an all-registrants reservation',
      async (h) => {
        await h.cmd(prOut(0), { out: params(0n, 0xaan) });
        await h.cmd(prOut(1, 7), { out: params(0xaan, 0n) });
      },
      () => moveList(0xaan, 0xbbn, 0, 1, bTid),
      0x18,
      '',
    ],
    [
      'by a registrant that does not hold the reservation',
      async (h) => {
        await h.cmd(prOut(0), { out: params(0n, 0xaan) });
        await h.cmd(prOut(0), { out: params(0n, 0xccn), nexus: nexusB });
        await h.cmd(prOut(1, 1), { out: params(0xccn, 0n), nexus: nexusB });
      },
      () => moveList(0xaan, 0xbbn, 0, 1, bTid),
      0x18,
      '',
    ],
    [
      'with a TransportID length past the list',
      async (h) => {
        await h.cmd(prOut(0), { out: params(0n, 0xaan) });
      },
      () => {
        const l = moveList(0xaan, 0xbbn, 0, 1, bTid);
        l[23]! += 1;
        return l;
      },
      2,
      illegal('1a00'),
    ],
  ];
  for (const [name, setup, list, status, sense] of cases) {
    it(`refuses a move ${name}`, async () => {
      const h = await two();
      await setup(h);
      const l = list();
      const r = await h.cmd(prOutLen(7, l.length), { out: l });
      expect(r.status).toBe(status);
      expect(hex(r.sense)).toBe(sense);
    });
  }
});

describe('PERSISTENT RESERVE: access by type (SPC-4 5.12.1)', () => {
  // [type, holder A, registered B, unregistered C] as read/write outcomes: 0 GOOD, 0x18 conflict.
  const table: Array<[number, [number, number], [number, number]]> = [
    [1, [0, 0x18], [0, 0x18]],
    [3, [0x18, 0x18], [0x18, 0x18]],
    [5, [0, 0], [0, 0x18]],
    [6, [0, 0], [0x18, 0x18]],
    [7, [0, 0], [0, 0x18]],
    [8, [0, 0], [0x18, 0x18]],
  ];
  for (const [type, registered, unregistered] of table) {
    it(`type ${type}`, async () => {
      const h = await three();
      await h.cmd(prOut(0), { out: params(0n, 0xaan) });
      await h.cmd(prOut(0), { out: params(0n, 0xbbn), nexus: nexusB });
      expect((await h.cmd(prOut(1, type), { out: params(0xaan, 0n) })).status).toBe(0);
      const rw = async (n: Nexus) => [
        (await h.cmd(cdb10(0x28, 0, 1), { nexus: n })).status,
        (await h.cmd(cdb10(0x2a, 0, 1), { out: new Uint8Array(512), nexus: n })).status,
      ];
      expect(await rw(nexusA)).toEqual([0, 0]);
      expect(await rw(nexusB)).toEqual(registered);
      expect(await rw(nexusC)).toEqual(unregistered);
      // INQUIRY, REPORT LUNS, TEST UNIT READY, READ CAPACITY, PR IN are allowed for everyone.
      for (const c of [[0x12, 0, 0, 0, 36, 0], [0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0], [0, 0, 0, 0, 0, 0], [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], prIn(0)]) {
        expect((await h.cmd(c, { nexus: nexusC })).status).toBe(0);
      }
    });
  }

  it('releasing a registrants-only reservation tells the other registrants (RESERVATIONS RELEASED)', async () => {
    const h = await two();
    await h.cmd(prOut(0), { out: params(0n, 0xaan) });
    await h.cmd(prOut(0), { out: params(0n, 0xbbn), nexus: nexusB });
    await h.cmd(prOut(1, 5), { out: params(0xaan, 0n) });
    expect((await h.cmd(prOut(2, 5), { out: params(0xaan, 0n) })).status).toBe(0);
    expect(hex((await h.cmd([0, 0, 0, 0, 0, 0], { nexus: nexusB })).sense)).toBe('700006000000000a000000002a0400000000');
    expect((await h.cmd([0, 0, 0, 0, 0, 0])).status).toBe(0);
  });

  it('CLEAR tells every other registrant RESERVATIONS PREEMPTED', async () => {
    const h = await two();
    await h.cmd(prOut(0), { out: params(0n, 0xaan) });
    await h.cmd(prOut(0), { out: params(0n, 0xbbn), nexus: nexusB });
    await h.cmd(prOut(3), { out: params(0xaan, 0n) });
    expect(hex((await h.cmd([0, 0, 0, 0, 0, 0], { nexus: nexusB })).sense)).toBe('700006000000000a000000002a0300000000');
  });

  it('an all-registrants reservation outlives its first holder and goes with the last registrant', async () => {
    const h = await two();
    await h.cmd(prOut(0), { out: params(0n, 0xaan) });
    await h.cmd(prOut(0), { out: params(0n, 0xbbn), nexus: nexusB });
    await h.cmd(prOut(1, 8), { out: params(0xaan, 0n) });
    await h.cmd(prOut(0), { out: params(0xaan, 0n) }); // A unregisters
    expect((await h.cmd(prIn(1))).data[21]).toBe(8);
    expect((await h.cmd(cdb10(0x28, 0, 1))).status).toBe(0x18);
    await h.cmd(prOut(0), { out: params(0xbbn, 0n), nexus: nexusB });
    expect(hex((await h.cmd(prIn(1))).data)).toBe('0000000400000000');
    expect((await h.cmd(cdb10(0x28, 0, 1))).status).toBe(0);
  });

  it("PREEMPT AND ABORT ends the preempted nexus's tasks", async () => {
    const h = await two();
    await h.cmd(prOut(0), { out: params(0n, 0xaan) });
    await h.cmd(prOut(0), { out: params(0n, 0xbbn), nexus: nexusB });
    await h.cmd(prOut(1, 1), { out: params(0xbbn, 0n), nexus: nexusB });
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const pending = submitAsync(
      h.view,
      { lun: 0n, cdb: Uint8Array.from(cdb10(0x2a, 0, 1)), tag: 777, attribute: TaskAttribute.Simple, expectedLength: 512, direction: DataDirection.Write },
      nexusB,
      {
        dataOut: async (into) => {
          await gate;
          into.fill(1);
        },
        dataIn: async () => {},
      },
    );
    await new Promise((r) => setImmediate(r));
    expect((await h.cmd(prOut(5, 3), { out: params(0xaan, 0xbbn) })).status).toBe(0);
    open();
    expect((await pending).status).toBe(0x40);
    expect(hex((await h.cmd([0, 0, 0, 0, 0, 0], { nexus: nexusB })).sense)).toBe('700006000000000a000000002a0500000000');
    expect(hex((await h.cmd(prIn(1))).data).slice(16, 32)).toBe('00000000000000aa');
  });

  it('SPC-2 RESERVE under a persistent reservation: a no-op for its holder, a conflict for others (CRH)', async () => {
    const h = await two();
    await h.cmd(prOut(0), { out: params(0n, 0xaan) });
    await h.cmd(prOut(1, 1), { out: params(0xaan, 0n) });
    expect((await h.cmd([0x16, 0, 0, 0, 0, 0])).status).toBe(0);
    expect((await h.cmd([0x16, 0, 0, 0, 0, 0], { nexus: nexusB })).status).toBe(0x18);
    expect((await h.cmd(cdb10(0x28, 0, 1), { nexus: nexusB })).status).toBe(0); // no SPC-2 reservation was made
  });

  it('APTPL keeps SPEC_I_PT and ALL_TG_PT registrations and the holder across a restart; APTPL 0 forgets them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rdma-target-pr-'));
    try {
      const bs = new RamBackstore({ blockSize: 512, blockCount: 64 });
      const h = new Harness(await new LogicalUnit({ backstore: bs, name: 'y', stateDir: dir }).open());
      await h.ready();
      const l = specIptList(0n, 0x99n, 0x08 | 0x04 | 0x01, [iscsiTid('iqn.2025-01.test:b', 0)]);
      expect((await h.cmd(prOutLen(0, l.length), { out: l })).status).toBe(0);
      await h.cmd(prOut(1, 5), { out: params(0x99n, 0n) });
      const h2 = new Harness(await new LogicalUnit({ backstore: bs, name: 'y', stateDir: dir }).open());
      await h2.ready(nexusB);
      await h2.ready(nexusA2);
      expect(keysOf((await h2.cmd(prIn(0), { nexus: nexusB })).data)).toEqual(['99', '99']);
      expect((await h2.cmd(prIn(1), { nexus: nexusB })).data[21]).toBe(5);
      expect((await h2.cmd(cdb10(0x2a, 0, 1), { out: new Uint8Array(512), nexus: nexusA2 })).status).toBe(0);
      expect((await h2.cmd(cdb10(0x2a, 0, 1), { out: new Uint8Array(512), nexus: nexusB })).status).toBe(0);
      await h2.cmd(prOut(0), { out: params(0x99n, 0x98n), nexus: nexusA2 }); // APTPL 0
      await expect(readFile(join(dir, `pr-${h2.lu.serial}.json`))).rejects.toThrow();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
