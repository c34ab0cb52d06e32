// Bad network input gets the RFC's answer and affects only its own connection: a table of
// malformed PDUs sent on one session while a second session on the same target keeps working.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Opcode, RESERVED_TAG } from '../../../lib/iscsi/opcodes.js';
import { encodeBhs } from '../../../lib/iscsi/pdu.js';
import { IscsiTarget } from '../../../lib/iscsi/target.js';
import { encodeText } from '../../../lib/iscsi/text.js';
import { listenTcp, type TcpListener } from '../../../lib/transport/tcp.js';
import { FakeCore, pattern, TestInitiator, tur, write10, type RxItem } from './helpers.js';

const IQN = 'iqn.2024-01.test:malformed';

type Outcome = { reject?: number; check?: boolean; dropped?: boolean; silent?: boolean; text?: Record<string, string>; stillWorks?: boolean };

describe('malformed input', () => {
  let core: FakeCore;
  let target: IscsiTarget;
  let portal: TcpListener;
  let bystander: TestInitiator;

  beforeAll(async () => {
    core = new FakeCore({ blocks: 4096 });
    target = new IscsiTarget({
      core,
      nopInterval: 0,
      tpgs: [{ iqn: IQN, generateNodeAcls: true, preferences: { maxRecvDataSegmentLength: 8192, firstBurstLength: 16384, maxBurstLength: 65536 } }],
    });
    portal = await listenTcp(target, { port: 0 });
    bystander = await TestInitiator.connect(portal.port);
    bystander.isid = 0x023d0000ffff;
    expect((await bystander.login({ targetName: IQN, initiatorName: 'iqn.2024-01.test:bystander' })).status).toBe(0);
  });
  afterAll(async () => {
    await target.shutdown(100);
    await portal.close(true);
  });

  async function fresh(keys: Record<string, string> = {}, digests = false): Promise<TestInitiator> {
    const i = await TestInitiator.connect(portal.port);
    const r = await i.login({ targetName: IQN, keys, headerDigest: digests, dataDigest: digests });
    expect(r.status).toBe(0);
    return i;
  }

  const nextOrClose = async (i: TestInitiator, ms = 400): Promise<RxItem | 'closed' | 'nothing'> => {
    try {
      return await i.next(() => true, ms);
    } catch (e) {
      return (e as Error).message.includes('closed') ? 'closed' : 'nothing';
    }
  };

  const cases: Array<[string, (i: TestInitiator) => void | Promise<void>, Outcome, Record<string, string>?, boolean?]> = [
    [
      'undefined opcode 0x1c → Reject Command not supported',
      (i) => i.sendRaw(Buffer.concat([Buffer.from([0x1c, 0x80]), Buffer.alloc(46)])),
      { reject: 0x05, stillWorks: true },
    ],
    [
      'target opcode (SCSI Response) from an initiator → Reject',
      (i) =>
        i.sendRaw(
          encodeBhs({
            opcode: Opcode.ScsiResponse,
            itt: 1,
            bidiOverflow: false,
            bidiUnderflow: false,
            overflow: false,
            underflow: false,
            response: 0,
            status: 0,
            snackTag: 0,
            statSN: 0,
            expCmdSN: 0,
            maxCmdSN: 0,
            expDataSN: 0,
            bidiResidual: 0,
            residual: 0,
          }),
        ),
      { reject: 0x05, stillWorks: true },
    ],
    [
      'SNACK at ErrorRecoveryLevel 0 → Reject Protocol Error',
      (i) => i.send({ opcode: Opcode.SnackRequest, itt: 1, type: 0, lun: 0n, ttt: RESERVED_TAG, expStatSN: i.expStatSN, begRun: 0, runLength: 0 }),
      { reject: 0x04, stillWorks: true },
    ],
    [
      'Login Request in Full Feature Phase → Reject Protocol Error',
      (i) => i.loginPdu({ csg: 1, nsg: 3, transit: true, keys: { InitiatorName: 'x' } }),
      { reject: 0x04, stillWorks: true },
    ],
    [
      'CmdSN above MaxCmdSN → silently ignored',
      (i) => {
        i.send({
          opcode: Opcode.ScsiCommand,
          itt: 0x999,
          final: true,
          read: false,
          write: false,
          attr: 1,
          lun: 0n,
          edtl: 0,
          cmdSN: i.cmdSN + 1000,
          expStatSN: i.expStatSN,
          cdb: new Uint8Array(16),
        });
      },
      { silent: true, stillWorks: true },
    ],
    [
      'CmdSN below ExpCmdSN → silently ignored',
      (i) => {
        i.send({
          opcode: Opcode.ScsiCommand,
          itt: 0x998,
          final: true,
          read: false,
          write: false,
          attr: 1,
          lun: 0n,
          edtl: 0,
          cmdSN: i.cmdSN - 1,
          expStatSN: i.expStatSN,
          cdb: new Uint8Array(16),
        });
      },
      { silent: true, stillWorks: true },
    ],
    [
      'immediate data beyond FirstBurstLength → Reject Protocol Error',
      (i) => {
        i.send(
          {
            opcode: Opcode.ScsiCommand,
            itt: 0x50,
            final: true,
            read: false,
            write: true,
            attr: 1,
            lun: 0n,
            edtl: 32768,
            cmdSN: i.cmdSN++,
            expStatSN: i.expStatSN,
            cdb: Buffer.concat([write10(0, 64), Buffer.alloc(6)]),
          },
          pattern(20000).subarray(0, 8192 + 4),
        );
      },
      { reject: 0x04, stillWorks: false },
    ],
    [
      'unsolicited Data-Out beyond FirstBurstLength → Reject + CHECK CONDITION for that command only',
      (i) => {
        const itt = 0x51;
        i.send(
          {
            opcode: Opcode.ScsiCommand,
            itt,
            final: false,
            read: false,
            write: true,
            attr: 1,
            lun: 0n,
            edtl: 32768,
            cmdSN: i.cmdSN++,
            expStatSN: i.expStatSN,
            cdb: Buffer.concat([write10(0, 64), Buffer.alloc(6)]),
          },
          pattern(8192),
        );
        i.send({ opcode: Opcode.DataOut, itt, final: false, lun: 0n, ttt: RESERVED_TAG, expStatSN: i.expStatSN, dataSN: 0, bufferOffset: 8192 }, pattern(8192));
        i.send({ opcode: Opcode.DataOut, itt, final: true, lun: 0n, ttt: RESERVED_TAG, expStatSN: i.expStatSN, dataSN: 1, bufferOffset: 16384 }, pattern(4096));
      },
      { reject: 0x04, check: true, stillWorks: true },
      { InitialR2T: 'No' },
    ],
    [
      'Data-Out beyond the R2T burst / EDTL → Reject + CHECK CONDITION',
      async (i) => {
        const itt = 0x52;
        i.send({
          opcode: Opcode.ScsiCommand,
          itt,
          final: true,
          read: false,
          write: true,
          attr: 1,
          lun: 0n,
          edtl: 4096,
          cmdSN: i.cmdSN++,
          expStatSN: i.expStatSN,
          cdb: Buffer.concat([write10(0, 8), Buffer.alloc(6)]),
        });
        const r2t = await i.next((x) => x.pdu.opcode === Opcode.R2T);
        const ttt = (r2t.pdu as { ttt: number }).ttt;
        i.send({ opcode: Opcode.DataOut, itt, final: true, lun: 0n, ttt, expStatSN: i.expStatSN, dataSN: 0, bufferOffset: 0 }, pattern(8192));
      },
      { reject: 0x04, check: true, stillWorks: true },
      { ImmediateData: 'No' },
    ],
    [
      'Data-Out with a wrong DataSN → Reject + CHECK CONDITION (iSCSIdatasn)',
      async (i) => {
        const itt = 0x53;
        i.send({
          opcode: Opcode.ScsiCommand,
          itt,
          final: true,
          read: false,
          write: true,
          attr: 1,
          lun: 0n,
          edtl: 4096,
          cmdSN: i.cmdSN++,
          expStatSN: i.expStatSN,
          cdb: Buffer.concat([write10(0, 8), Buffer.alloc(6)]),
        });
        const r2t = await i.next((x) => x.pdu.opcode === Opcode.R2T);
        i.send(
          { opcode: Opcode.DataOut, itt, final: true, lun: 0n, ttt: (r2t.pdu as { ttt: number }).ttt, expStatSN: i.expStatSN, dataSN: 27, bufferOffset: 0 },
          pattern(4096),
        );
      },
      { reject: 0x04, check: true, stillWorks: true },
      { ImmediateData: 'No' },
    ],
    [
      'Data-Out naming no R2T → Reject Invalid PDU Field',
      (i) => i.send({ opcode: Opcode.DataOut, itt: 0x77, final: true, lun: 0n, ttt: 0x1234, expStatSN: i.expStatSN, dataSN: 0, bufferOffset: 0 }, pattern(512)),
      { reject: 0x09, stillWorks: true },
    ],
    [
      'text over MaxRecvDataSegmentLength → Reject Protocol Error',
      (i) => {
        i.send(
          { opcode: Opcode.TextRequest, itt: 0x60, final: true, cont: false, lun: 0n, ttt: RESERVED_TAG, cmdSN: i.cmdSN++, expStatSN: i.expStatSN },
          encodeText([['X-big', 'v'.repeat(8192)]]),
        );
      },
      { reject: 0x04, stillWorks: true },
    ],
    [
      'text with an unknown key → NotUnderstood',
      (i) => {
        i.send(
          { opcode: Opcode.TextRequest, itt: 0x61, final: true, cont: false, lun: 0n, ttt: RESERVED_TAG, cmdSN: i.cmdSN++, expStatSN: i.expStatSN },
          encodeText([['X-com.example.What', '1']]),
        );
      },
      { text: { 'X-com.example.What': 'NotUnderstood' }, stillWorks: true },
    ],
    [
      'text with a duplicated key → Reject',
      (i) => {
        i.send(
          { opcode: Opcode.TextRequest, itt: 0x62, final: true, cont: false, lun: 0n, ttt: RESERVED_TAG, cmdSN: i.cmdSN++, expStatSN: i.expStatSN },
          encodeText([
            ['SendTargets', 'All'],
            ['SendTargets', 'All'],
          ]),
        );
      },
      { reject: 0x04, stillWorks: true },
    ],
    [
      'text not NUL-terminated → Reject',
      (i) => {
        i.send(
          { opcode: Opcode.TextRequest, itt: 0x63, final: true, cont: false, lun: 0n, ttt: RESERVED_TAG, cmdSN: i.cmdSN++, expStatSN: i.expStatSN },
          Buffer.from('SendTargets=All'),
        );
      },
      { reject: 0x04, stillWorks: true },
    ],
    [
      'DataSegmentLength far beyond what was declared → drop',
      (i) => {
        const b = Buffer.alloc(48);
        b[0] = 0x04;
        b[1] = 0x80;
        b.writeUIntBE(0xffffff, 5, 3);
        i.sendRaw(b);
      },
      { dropped: true },
    ],
    [
      'bad header digest → drop',
      (i) => {
        const b = Buffer.from(
          encodeBhs({ opcode: Opcode.NopOut, immediate: true, itt: 0x70, lun: 0n, ttt: RESERVED_TAG, cmdSN: i.cmdSN, expStatSN: i.expStatSN }),
        );
        i.sendRaw(Buffer.concat([b, Buffer.from([1, 2, 3, 4])]));
      },
      { dropped: true },
      {},
      true,
    ],
    [
      'bad data digest → Reject Data Digest Error + drop',
      (i) => {
        const b = Buffer.from(
          encodeBhs({ opcode: Opcode.NopOut, immediate: true, itt: 0x71, dataLength: 4, lun: 0n, ttt: RESERVED_TAG, cmdSN: i.cmdSN, expStatSN: i.expStatSN }),
        );
        const { crc32c, writeDigest } = digestFns;
        const hd = Buffer.alloc(4);
        writeDigest(hd, 0, crc32c(b));
        i.sendRaw(Buffer.concat([b, hd, Buffer.from('ping'), Buffer.from([9, 9, 9, 9])]));
      },
      { reject: 0x02, dropped: true },
      {},
      true,
    ],
  ];

  for (const [name, send, want, keys, digests] of cases) {
    it(name, async () => {
      const i = await fresh(keys ?? {}, digests ?? false);
      await send(i);
      const first = await nextOrClose(i, 600);
      if (want.reject !== undefined) {
        expect(first).not.toBe('closed');
        expect(first).not.toBe('nothing');
        const r = first as RxItem;
        expect(r.pdu.opcode).toBe(Opcode.Reject);
        expect((r.pdu as { reason: number }).reason).toBe(want.reject);
        expect(r.data.length).toBe(48); // the rejected header (§11.17)
      }
      if (want.check) {
        const r = await i.next((x) => x.pdu.opcode === Opcode.ScsiResponse);
        expect((r.pdu as { status: number }).status).toBe(2);
        expect(r.data[2 + 2] & 0x0f).toBe(0x0b); // ABORTED COMMAND
      }
      if (want.silent) expect(first).toBe('nothing');
      if (want.text) {
        const r = first as RxItem;
        expect(r.pdu.opcode).toBe(Opcode.TextResponse);
        const m = Object.fromEntries(
          r.data
            .toString('latin1')
            .split('\0')
            .filter(Boolean)
            .map((kv) => kv.split('=')),
        );
        expect(m).toEqual(want.text);
      }
      if (want.dropped) {
        await Promise.race([i.closedPromise, new Promise((_, rej) => setTimeout(() => rej(new Error('connection not dropped')), 2000))]);
      }
      if (want.stillWorks) {
        expect((await i.scsi(tur())).status).toBe(0);
      }
      i.close();
      // The other session is unaffected.
      expect((await bystander.scsi(tur())).status).toBe(0);
    });
  }

  it('SCSI command in a discovery session → Reject', async () => {
    const i = await TestInitiator.connect(portal.port);
    expect((await i.login({ discovery: true })).status).toBe(0);
    i.send({
      opcode: Opcode.ScsiCommand,
      itt: 5,
      final: true,
      read: false,
      write: false,
      attr: 1,
      lun: 0n,
      edtl: 0,
      cmdSN: i.cmdSN++,
      expStatSN: i.expStatSN,
      cdb: new Uint8Array(16),
    });
    const r = await i.next();
    expect(r.pdu.opcode).toBe(Opcode.Reject);
    i.close();
  });

  it('fuzz: garbage after login drops or rejects only that connection, never crashes the target', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 600 }), fc.boolean(), async (junk, digests) => {
        const i = await fresh({}, digests);
        i.sendRaw(junk);
        await new Promise((r) => setTimeout(r, 5));
        i.close();
        return true;
      }),
      { numRuns: 40 },
    );
    expect((await bystander.scsi(tur())).status).toBe(0);
  });

  it('fuzz: garbage before login gets a Login Reject or a drop', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 48, maxLength: 300 }), async (junk) => {
        const i = await TestInitiator.connect(portal.port);
        i.sendRaw(junk);
        await new Promise((r) => setTimeout(r, 5));
        i.close();
        return true;
      }),
      { numRuns: 40 },
    );
    expect((await bystander.scsi(tur())).status).toBe(0);
  });
});

import * as digestFns from '../../../lib/iscsi/digest.js';
