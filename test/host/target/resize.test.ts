// Online resize through the control socket, with the real engine (SCSI core, iSCSI/TCP) and
// the project's test initiator holding a session across the change: the session's next
// command gets CAPACITY DATA HAS CHANGED (2Ah/09h), READ CAPACITY then reports the new size,
// the data already written is intact, shrinking is refused naming the field, and the new size
// is what the configuration file holds afterwards.

import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon } from '../../../lib/target/daemon.js';
import { controlRequest } from '../../../lib/target/control.js';
import { createEngine } from '../../../lib/target/wiring.js';
import { configDocument, validateConfig, type Config } from '../../../lib/target/config.js';
import { saveConfigFile } from '../../../lib/target/persist.js';
import { pattern, read10, TestInitiator, tur, write10 } from '../iscsi/helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'rt-resize-'));
const IQN = 'iqn.2025-01.com.example:resize';
const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const s of stops.splice(0)) await s();
});

const readCapacity10 = (): Buffer => Buffer.from([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
/** LUN field of a SCSI command PDU for LUN n (SAM-5 single-level peripheral addressing). */
const lunField = (n: number): bigint => BigInt(n) << 48n;

async function startDaemon(name: string, luns: unknown[]) {
  const file = join(dir, `${name}.json`);
  const sock = join(dir, `${name}.sock`);
  const doc = {
    control: { socket: sock },
    stateDir: join(dir, `${name}-state`),
    targets: [{ iqn: IQN, tpgs: [{ portals: [{ address: '127.0.0.1', port: 0 }], luns, attributes: { generateNodeAcls: true } }] }],
  };
  writeFileSync(file, JSON.stringify(doc));
  const v = validateConfig(doc, { allowEphemeralPort: true });
  expect(v.errors).toEqual([]);
  const d = await Daemon.start(v.config!, {
    engine: createEngine({ rdma: false }),
    save: (c: Config, f?: string) => saveConfigFile(f ?? file, configDocument(c)),
  });
  stops.push(() => d.stop(500));
  return { d, file, sock, port: d.portals[0]!.port };
}

async function session(port: number, keys?: Record<string, string>): Promise<TestInitiator> {
  const i = await TestInitiator.connect(port);
  expect((await i.login({ targetName: IQN, ...(keys ? { keys } : {}) })).status).toBe(0);
  stops.push(async () => {
    if (!i.closed) i.socket.destroy();
  });
  return i;
}

/** Sense key, ASC, ASCQ of fixed-format sense data. */
const senseOf = (s: Buffer | undefined) => (s ? [s[2]! & 0x0f, s[12], s[13]] : undefined);

async function capacity(i: TestInitiator, lun: number): Promise<number> {
  const r = await i.scsi(readCapacity10(), { read: 8, lun: lunField(lun) });
  expect(r.status).toBe(0);
  return (r.data.readUInt32BE(0) + 1) * r.data.readUInt32BE(4);
}

describe('lun-resize', () => {
  it('grows a RAM LUN under a live session: CAPACITY DATA HAS CHANGED, the new size, data intact, saved', async () => {
    const { sock, port, file } = await startDaemon('ram', [{ lun: 0, backstore: { type: 'ram', size: '1M' } }]);
    const i = await session(port);
    // The first command learns of the power-on (SAM-5 6.3.1); then the nexus is quiet.
    expect(senseOf((await i.scsi(tur())).sense)).toEqual([6, 0x29, 0x00]);
    expect((await i.scsi(tur())).status).toBe(0);
    const data = pattern(64 * 512, 3);
    expect((await i.scsi(write10(1900, 64), { write: data })).status).toBe(0);

    expect(await controlRequest(sock, { cmd: 'lun-resize', target: IQN, lun: 0, size: '3M' })).toEqual({
      target: IQN,
      tpg: 1,
      lun: 0,
      backstore: `${IQN}/tpg1/lun0`,
      previousBytes: 1 << 20,
      sizeBytes: 3 << 20,
      saved: file,
    });
    const ua = await i.scsi(tur());
    expect(ua.status).toBe(2);
    expect(senseOf(ua.sense)).toEqual([6, 0x2a, 0x09]);
    expect((await i.scsi(tur())).status).toBe(0);
    expect(await capacity(i, 0)).toBe(3 << 20);
    const back = await i.scsi(read10(1900, 64), { read: data.length });
    expect(back.data.equals(data)).toBe(true);
    // The new blocks are there to use.
    const w = await i.scsi(write10(6000, 64), { write: data });
    expect([w.status, senseOf(w.sense)]).toEqual([0, undefined]);
    expect((await i.scsi(read10(6000, 64), { read: data.length })).data.equals(data)).toBe(true);
    // What runs is what is saved.
    const saved = JSON.parse(readFileSync(file, 'utf8'));
    expect(saved.targets[0].tpgs[0].luns[0].backstore.size).toBe(3 << 20);

    // Shrinking, and other bad requests, are refused naming the field; nothing changes.
    await expect(controlRequest(sock, { cmd: 'lun-resize', target: IQN, lun: 0, size: '2M' })).rejects.toThrow(
      `size: must be at least the current ${3 << 20} bytes (shrinking would cut off data), got ${2 << 20}`,
    );
    await expect(controlRequest(sock, { cmd: 'lun-resize', target: IQN, lun: 0, size: 3 * 1048576 + 100 })).rejects.toThrow(
      'size: must be a multiple of blockSize 512, got 3145828',
    );
    await expect(controlRequest(sock, { cmd: 'lun-resize', target: IQN, lun: 0 })).rejects.toThrow('size: is required for a ram LUN');
    await expect(controlRequest(sock, { cmd: 'lun-resize', target: IQN, lun: 0, size: 'big' })).rejects.toThrow('size: must be a positive size');
    await expect(controlRequest(sock, { cmd: 'lun-resize', target: IQN, lun: 9, size: '4M' })).rejects.toThrow(`lun: ${IQN} tpg 1 serves no LUN 9`);
    await expect(controlRequest(sock, { cmd: 'lun-resize', target: 'iqn.2025-01.com.example:nope', lun: 0, size: '4M' })).rejects.toThrow(
      'target: no target "iqn.2025-01.com.example:nope"',
    );
    expect((await i.scsi(tur())).status).toBe(0);
    expect(await capacity(i, 0)).toBe(3 << 20);
  });

  it('grows a file LUN to a size, and takes the size of a file grown under it', async () => {
    const img = join(dir, 'lun.img');
    const { sock, port, file } = await startDaemon('file', [{ lun: 0, backstore: { type: 'file', path: img, size: '1M' } }]);
    const i = await session(port);
    await i.scsi(tur());
    const data = pattern(8 * 512, 5);
    expect((await i.scsi(write10(100, 8), { write: data })).status).toBe(0);
    expect(await controlRequest(sock, { cmd: 'lun-resize', target: IQN, tpg: 1, lun: 0, size: '2M' })).toMatchObject({ sizeBytes: 2 << 20 });
    expect(statSync(img).size).toBe(2 << 20);
    expect(senseOf((await i.scsi(tur())).sense)).toEqual([6, 0x2a, 0x09]);
    expect(await capacity(i, 0)).toBe(2 << 20);

    // Someone grows the file (as a volume manager grows a device); a resize without a size takes it.
    truncateSync(img, 5 << 20);
    expect(await controlRequest(sock, { cmd: 'lun-resize', target: IQN, lun: 0 })).toMatchObject({ previousBytes: 2 << 20, sizeBytes: 5 << 20 });
    expect(senseOf((await i.scsi(tur())).sense)).toEqual([6, 0x2a, 0x09]);
    expect(await capacity(i, 0)).toBe(5 << 20);
    expect((await i.scsi(read10(100, 8), { read: data.length })).data.equals(data)).toBe(true);
    expect(JSON.parse(readFileSync(file, 'utf8')).targets[0].tpgs[0].luns[0].backstore.size).toBe(5 << 20);

    // A file cut below the LUN is not taken: that would drop written data.
    truncateSync(img, 1 << 20);
    await expect(controlRequest(sock, { cmd: 'lun-resize', target: IQN, lun: 0 })).rejects.toThrow('shrinking is refused');
    expect(await capacity(i, 0)).toBe(5 << 20);
  });

  it('a RAM LUN grown while writes are in flight loses none of them', async () => {
    const { sock, port } = await startDaemon('busy', [{ lun: 0, backstore: { type: 'ram', size: '1M', thin: true } }]);
    // No immediate data, small bursts: a write's data arrives over several PDUs and event-loop
    // turns, so a grow that copied the memory in between would lose part of it.
    const i = await session(port, { ImmediateData: 'No', InitialR2T: 'Yes', MaxBurstLength: '16384', FirstBurstLength: '8192' });
    await i.scsi(tur());
    // 4 writers, each rewriting its own 256 KiB extent with a new pattern, round after round,
    // while the LUN grows twice (the data is copied to new memory when no command is in flight).
    let round = 0;
    let stop = false;
    const last = new Map<number, Buffer>();
    const writers = Array.from({ length: 4 }, async (_, w) => {
      while (!stop) {
        const data = pattern(512 * 512, 1000 * w + round++);
        const r = await i.scsi(write10(w * 512, 512), { write: data });
        if (r.status !== 0 && senseOf(r.sense)?.[1] !== 0x2a) throw new Error(`write failed: ${r.status} ${senseOf(r.sense)}`);
        if (r.status === 0) last.set(w, data);
      }
    });
    await new Promise((r) => setTimeout(r, 50));
    await controlRequest(sock, { cmd: 'lun-resize', target: IQN, lun: 0, size: '2M' });
    await new Promise((r) => setTimeout(r, 50));
    await controlRequest(sock, { cmd: 'lun-resize', target: IQN, lun: 0, size: '4M' });
    await new Promise((r) => setTimeout(r, 50));
    stop = true;
    await Promise.all(writers);
    expect(round).toBeGreaterThan(8);
    for (const [w, data] of last) {
      let r = await i.scsi(read10(w * 512, 512), { read: data.length });
      if (r.status !== 0) r = await i.scsi(read10(w * 512, 512), { read: data.length });
      expect(r.data.equals(data), `extent ${w}`).toBe(true);
    }
    expect(await capacity(i, 0)).toBe(4 << 20);
  });

  it('a RAM grow waits for a moment with no command of the LU in flight, and gives up after its timeout', async () => {
    const { createScsiLayer } = await import('../../../lib/target/scsi-layer.js');
    const layer = createScsiLayer();
    // Over TCP the data reaches RAM in one synchronous copy, so the test above cannot catch a
    // swap in the middle of a transfer (iSER's RDMA READ into the LUN's memory can): the wait itself is checked here.
    const lu = { tasks: { size: 2 } };
    let ran = false;
    const done = layer.exclusive(lu, () => (ran = true), 2000);
    await new Promise((r) => setTimeout(r, 30));
    expect(ran).toBe(false);
    lu.tasks.size = 1;
    await new Promise((r) => setTimeout(r, 30));
    expect(ran).toBe(false);
    lu.tasks.size = 0;
    await done;
    expect(ran).toBe(true);
    await expect(layer.exclusive({ tasks: { size: 1 } }, () => {}, 50)).rejects.toThrow('commands kept the LU busy for 50 ms; try again');
  });

  it('an unchanged size changes nothing and raises no unit attention', async () => {
    const { sock, port } = await startDaemon('same', [{ lun: 0, backstore: { type: 'ram', size: '1M' } }]);
    const i = await session(port);
    await i.scsi(tur());
    expect(await controlRequest(sock, { cmd: 'lun-resize', target: IQN, lun: 0, size: '1M' })).toMatchObject({ previousBytes: 1 << 20, sizeBytes: 1 << 20 });
    expect((await i.scsi(tur())).status).toBe(0);
  });
});
