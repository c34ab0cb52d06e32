// SRP IU codec (lib/srp/iu.ts) against byte vectors written out by hand from SRP r16a §6 and
// include/scsi/srp.h, independent of the encoder: each vector decodes to its object and the
// object encodes to the vector. Then a table of malformed IUs, each refused naming its field.
import { describe, expect, it } from 'vitest';
import {
  BufFormat,
  DataDir,
  DescFormat,
  RspFlags,
  SrpIuError,
  SrpOpcode,
  decodeCmd,
  decodeCredReq,
  decodeCredRsp,
  decodeDataDescriptors,
  decodeDescriptorTable,
  decodeILogout,
  decodeLoginRej,
  decodeLoginReq,
  decodeLoginReqRdma,
  decodeLoginRsp,
  decodeRsp,
  decodeTLogout,
  decodeTskMgmt,
  encodeCmd,
  encodeCredReq,
  encodeCredRsp,
  encodeDirect,
  encodeILogout,
  encodeImmediateDesc,
  encodeIndirect,
  encodeLoginRej,
  encodeLoginReq,
  encodeLoginReqRdma,
  encodeLoginRsp,
  encodeRsp,
  encodeTLogout,
  encodeTskMgmt,
  parsePortId,
  portIdHex,
  tagNumber,
  targetPortId,
  type SrpCmd,
} from '../../../lib/srp/iu.js';

/** "c0 00 | 01 02" → bytes; spaces and "|" are layout only. */
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/[\s|]/g, ''), 'hex'));
const zeros = (n: number): string => '00'.repeat(n);

const TAG = '01 02 03 04 05 06 07 08';
const tag = { tagLo: 0x04030201, tagHi: 0x08070605 };
const IPID = '10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f';
const TPID = '20 21 22 23 24 25 26 27 28 29 2a 2b 2c 2d 2e 2f';
const ipid = hex(IPID);
const tpid = hex(TPID);

describe('login IUs, both ways', () => {
  it('srp_login_req_rdma (RDMA/CM private data, 56 bytes)', () => {
    const bytes = hex(`${TAG} | 00 06 | 81 | 00 | 00 00 20 44 | ${IPID} | ${TPID} | 00 44 | ${zeros(6)}`);
    expect(bytes.length).toBe(56);
    const obj = { ...tag, reqBufFmt: 6, reqFlags: 0x81, reqItIuLen: 8260, initiatorPortId: ipid, targetPortId: tpid, immDataOffset: 68 };
    expect(decodeLoginReqRdma(bytes)).toEqual(obj);
    expect(encodeLoginReqRdma(obj)).toEqual(bytes);
  });

  it('SRP_LOGIN_REQ (IB CM form, 64 bytes)', () => {
    const bytes = hex(`00 ${zeros(7)} | ${TAG} | 00 00 20 44 | ${zeros(4)} | 00 06 | 81 | 00 | 00 44 | 00 00 | ${IPID} | ${TPID}`);
    expect(bytes.length).toBe(64);
    const obj = { ...tag, reqItIuLen: 8260, reqBufFmt: 6, reqFlags: 0x81, immDataOffset: 68, initiatorPortId: ipid, targetPortId: tpid };
    expect(decodeLoginReq(bytes)).toEqual(obj);
    expect(encodeLoginReq(obj)).toEqual(bytes);
  });

  it('SRP_LOGIN_RSP (52 bytes): credits, IU lengths, formats, flags', () => {
    const bytes = hex(`c0 00 00 00 | 00 00 00 80 | ${TAG} | 00 00 20 44 | 00 00 01 00 | 00 06 | 82 | ${zeros(25)}`);
    expect(bytes.length).toBe(52);
    const obj = { ...tag, reqLimDelta: 128, maxItIuLen: 8260, maxTiIuLen: 256, bufFmt: 6, rspFlags: 0x82 };
    expect(decodeLoginRsp(bytes)).toEqual(obj);
    expect(encodeLoginRsp(obj)).toEqual(bytes);
  });

  it('SRP_LOGIN_REJ (32 bytes) with UNABLE TO ASSOCIATE RDMA CHANNEL', () => {
    const bytes = hex(`c2 00 00 00 | 00 01 00 03 | ${TAG} | ${zeros(8)} | 00 06 | ${zeros(6)}`);
    const obj = { ...tag, reason: 0x00010003, bufFmt: 6 };
    expect(decodeLoginRej(bytes)).toEqual(obj);
    expect(encodeLoginRej(obj)).toEqual(bytes);
  });
});

describe('logout, credit and task management IUs, both ways', () => {
  it('SRP_I_LOGOUT', () => {
    const bytes = hex(`03 ${zeros(7)} | ${TAG}`);
    expect(decodeILogout(bytes)).toEqual(tag);
    expect(encodeILogout(tag)).toEqual(bytes);
  });

  it('SRP_T_LOGOUT with reason INVALID IU TYPE', () => {
    const bytes = hex(`80 00 00 00 | 00 00 00 02 | ${TAG}`);
    const obj = { ...tag, solNot: 0, reason: 2 };
    expect(decodeTLogout(bytes)).toEqual(obj);
    expect(encodeTLogout(obj)).toEqual(bytes);
  });

  it('SRP_CRED_REQ and SRP_CRED_RSP', () => {
    const req = hex(`81 00 00 00 | 00 00 00 05 | ${TAG}`);
    expect(decodeCredReq(req)).toEqual({ ...tag, solNot: 0, reqLimDelta: 5 });
    expect(encodeCredReq({ ...tag, solNot: 0, reqLimDelta: 5 })).toEqual(req);
    const rsp = hex(`41 ${zeros(7)} | ${TAG}`);
    expect(decodeCredRsp(rsp)).toEqual(tag);
    expect(encodeCredRsp(tag)).toEqual(rsp);
    expect(decodeCredRsp(hex(`42 ${zeros(7)} | ${TAG}`), 16, SrpOpcode.AerRsp)).toEqual(tag);
  });

  it('SRP_TSK_MGMT: LUN RESET of LUN 1, with a task tag', () => {
    const bytes = hex(`01 00 ${zeros(6)} | ${TAG} | ${zeros(4)} | 00 01 00 00 00 00 00 00 | 00 00 | 08 | 00 | 11 22 33 44 55 66 77 88 | ${zeros(8)}`);
    expect(bytes.length).toBe(48);
    const obj = { ...tag, solNot: 0, lun: 0x0001000000000000n, function: 0x08, taskTagLo: 0x44332211, taskTagHi: 0x88776655 };
    expect(decodeTskMgmt(bytes)).toEqual(obj);
    expect(encodeTskMgmt(obj)).toEqual(bytes);
  });
});

describe('SRP_CMD and its data descriptors, both ways', () => {
  const CDB = '28 00 00 00 00 10 00 00 08 00 00 00 00 00 00 00';
  const cdb = hex(CDB);

  it('READ(10) with a direct data-in descriptor at a kernel address', () => {
    const bytes = hex(
      `02 00 00 00 00 | 01 | 00 | 00 | ${TAG} | ${zeros(4)} | 00 00 00 00 00 00 00 00 | 00 | 00 | 00 | 00 | ${CDB} | ff ff 88 80 12 34 56 78 | 00 00 12 34 | 00 00 10 00`,
    );
    expect(bytes.length).toBe(64);
    const cmd = decodeCmd(bytes);
    expect(cmd).toEqual({
      ...tag,
      solNot: 0,
      dataOutFormat: 0,
      dataInFormat: DescFormat.Direct,
      dataOutCount: 0,
      dataInCount: 0,
      lun: 0n,
      taskAttribute: 0,
      addCdbLength: 0,
      cdb,
    });
    const layout = decodeDataDescriptors(bytes, bytes.length, cmd, BufFormat.Direct | BufFormat.Indirect, 68);
    expect(layout).toEqual({ direction: DataDir.In, length: 4096, buffers: [{ vaHi: 0xffff8880, vaLo: 0x12345678, key: 0x1234, len: 4096 }] });
    const enc = encodeCmd({
      ...tag,
      lun: 0n,
      cdb,
      dataInFormat: DescFormat.Direct,
      descriptors: encodeDirect({ vaHi: 0xffff8880, vaLo: 0x12345678, key: 0x1234, len: 4096 }),
    });
    expect(enc).toEqual(bytes);
  });

  it('WRITE(10) with an indirect table of two descriptors inside the IU', () => {
    const WCDB = '2a 00 00 00 00 20 00 00 10 00 00 00 00 00 00 00';
    const table = `00 00 00 00 00 00 10 00 | 00 00 00 09 | 00 00 00 20`;
    const d1 = `00 00 00 01 00 00 00 00 | 00 00 00 0a | 00 00 10 00`;
    const d2 = `00 00 00 01 00 01 00 00 | 00 00 00 0b | 00 00 10 00`;
    const bytes = hex(
      `02 00 00 00 00 | 20 | 02 | 00 | ${TAG} | ${zeros(4)} | 00 01 00 00 00 00 00 00 | 00 | 02 | 00 | 00 | ${WCDB} | ${table} | 00 00 20 00 | ${d1} | ${d2}`,
    );
    expect(bytes.length).toBe(48 + 20 + 32);
    const cmd = decodeCmd(bytes);
    expect(cmd.dataOutFormat).toBe(DescFormat.Indirect);
    expect(cmd.dataOutCount).toBe(2);
    expect(cmd.taskAttribute).toBe(2);
    expect(cmd.lun).toBe(0x0001000000000000n);
    const layout = decodeDataDescriptors(bytes, bytes.length, cmd, BufFormat.Indirect, 0);
    expect(layout).toEqual({
      direction: DataDir.Out,
      length: 8192,
      buffers: [
        { vaHi: 1, vaLo: 0, key: 10, len: 4096 },
        { vaHi: 1, vaLo: 0x10000, key: 11, len: 4096 },
      ],
    });
    const enc = encodeCmd({
      ...tag,
      lun: 0x0001000000000000n,
      cdb: hex(WCDB),
      taskAttribute: 2,
      dataOutFormat: DescFormat.Indirect,
      dataOutCount: 2,
      descriptors: encodeIndirect({ vaHi: 0, vaLo: 0x1000, key: 9, len: 32 }, 8192, [
        { vaHi: 1, vaLo: 0, key: 10, len: 4096 },
        { vaHi: 1, vaLo: 0x10000, key: 11, len: 4096 },
      ]),
    });
    expect(enc).toEqual(bytes);
  });

  it('WRITE(10) of 8 bytes as immediate data at offset 68, as ib_srp sends it', () => {
    const WCDB = '2a 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00';
    const bytes = hex(
      `02 00 00 00 00 | 30 | 00 | 00 | ${TAG} | ${zeros(4)} | ${zeros(8)} | 00 00 00 00 | ${WCDB} | 00 00 00 08 | ${zeros(16)} | de ad be ef 01 02 03 04`,
    );
    expect(bytes.length).toBe(76);
    const cmd = decodeCmd(bytes);
    const layout = decodeDataDescriptors(bytes, bytes.length, cmd, BufFormat.Direct, 68);
    expect(layout.direction).toBe(DataDir.Out);
    expect(layout.length).toBe(8);
    expect(layout.buffers).toEqual([]);
    expect(Buffer.from(layout.immediate!).toString('hex')).toBe('deadbeef01020304');
    const enc = encodeCmd({
      ...tag,
      lun: 0n,
      cdb: hex(WCDB),
      dataOutFormat: DescFormat.Immediate,
      descriptors: encodeImmediateDesc(8),
      immediate: { offset: 68, data: hex('de ad be ef 01 02 03 04') },
    });
    expect(enc).toEqual(bytes);
  });

  it('a 32-byte CDB: ADDITIONAL CDB LENGTH counts bytes in its top six bits, descriptors follow it', () => {
    const long = new Uint8Array(32).map((_, i) => i + 1);
    const enc = encodeCmd({ ...tag, lun: 0n, cdb: long, dataInFormat: DescFormat.Direct, descriptors: encodeDirect({ vaHi: 0, vaLo: 64, key: 1, len: 512 }) });
    expect(enc[31]).toBe(16);
    const cmd = decodeCmd(enc);
    expect(Buffer.from(cmd.cdb)).toEqual(Buffer.from(long));
    expect(decodeDataDescriptors(enc, enc.length, cmd, BufFormat.Direct, 0).buffers[0]).toEqual({ vaHi: 0, vaLo: 64, key: 1, len: 512 });
  });
});

describe('SRP_RSP, both ways', () => {
  it('CHECK CONDITION with 18 bytes of sense and a data-in underflow', () => {
    const SENSE = '70 00 05 00 00 00 00 0a 00 00 00 00 24 00 00 00 00 00';
    const bytes = hex(`c1 00 00 00 | 00 00 00 01 | ${TAG} | 00 00 | 22 | 02 | 00 00 00 00 | 00 00 02 00 | 00 00 00 12 | 00 00 00 00 | ${SENSE}`);
    const obj = { ...tag, solNot: 0, reqLimDelta: 1, flags: RspFlags.DiUnder, status: 2, dataOutResidual: 0, dataInResidual: 512, sense: hex(SENSE) };
    expect(decodeRsp(bytes)).toEqual(obj);
    expect(encodeRsp(obj)).toEqual(bytes);
  });

  it('a task management response: RSPVALID, 4 bytes of response data, RSP_CODE last', () => {
    const bytes = hex(`c1 00 00 00 | 00 00 00 03 | ${TAG} | 00 00 | 01 | 00 | ${zeros(8)} | 00 00 00 00 | 00 00 00 04 | 00 00 00 05`);
    const obj = { ...tag, solNot: 0, reqLimDelta: 3, flags: 0, status: 0, dataOutResidual: 0, dataInResidual: 0, rspCode: 5 };
    expect(decodeRsp(bytes)).toEqual(obj);
    expect(encodeRsp(obj)).toEqual(bytes);
  });

  it('GOOD with a data-out overflow', () => {
    const bytes = hex(`c1 00 00 00 | 00 00 00 02 | ${TAG} | 00 00 | 04 | 00 | 00 00 01 00 | 00 00 00 00 | 00 00 00 00 | 00 00 00 00`);
    const obj = { ...tag, solNot: 0, reqLimDelta: 2, flags: RspFlags.DoOver, status: 0, dataOutResidual: 256, dataInResidual: 0 };
    expect(decodeRsp(bytes)).toEqual(obj);
    expect(encodeRsp(obj)).toEqual(bytes);
  });
});

describe('port identifiers and tags', () => {
  it('formats and parses LIO-style names', () => {
    expect(portIdHex(ipid)).toBe('0x101112131415161718191a1b1c1d1e1f');
    expect(parsePortId('0x101112131415161718191A1B1C1D1E1F')).toEqual(ipid);
    expect(parsePortId('1011:1213:1415:1617:1819:1a1b:1c1d:1e1f')).toEqual(ipid);
    expect(parsePortId('0x1234')).toBeUndefined();
    expect(targetPortId('2021222324252627', '28292a2b2c2d2e2f')).toEqual(tpid);
    expect(targetPortId('xyz', '28292a2b2c2d2e2f')).toBeUndefined();
  });

  it('a tag is one exact Number below 2^53 and a stable one above', () => {
    expect(tagNumber(5, 0)).toBe(5);
    expect(tagNumber(0xffffffff, 0x1fffff)).toBe(2 ** 53 - 1);
    expect(tagNumber(1, 0x80000000)).toBe(tagNumber(1, 0x80000000));
    expect(tagNumber(1, 0x80000000)).not.toBe(tagNumber(2, 0x80000000));
  });
});

// ---- malformed IUs -----------------------------------------------------------------------

/** A valid 64-byte READ(10) SRP_CMD with a direct descriptor, to break one field at a time. */
function readCmd(): Uint8Array {
  return hex(
    `02 00 00 00 00 | 01 | 00 | 01 | ${TAG} | ${zeros(4)} | ${zeros(8)} | 00 00 00 00 | 28 00 00 00 00 00 00 00 08 00 00 00 00 00 00 00 | 00 00 00 00 00 00 10 00 | 00 00 00 01 | 00 00 10 00`,
  );
}
/** A WRITE with an indirect table of `n` descriptors of 512 bytes. */
function indirectCmd(n: number, count = n, total = 512 * n, tableLen = 16 * n): Uint8Array {
  const list = Array.from({ length: n }, (_, i) => ({ vaHi: 0, vaLo: 0x10000 * (i + 1), key: 7, len: 512 }));
  return encodeCmd({
    ...tag,
    lun: 0n,
    cdb: hex('2a 00 00 00 00 00 00 00 08 00 00 00 00 00 00 00'),
    dataOutFormat: DescFormat.Indirect,
    dataOutCount: count,
    descriptors: encodeIndirect({ vaHi: 0, vaLo: 0x1000, key: 9, len: tableLen }, total, list),
  });
}
function immCmd(len: number, dataBytes = len): Uint8Array {
  return encodeCmd({
    ...tag,
    lun: 0n,
    cdb: hex('2a 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00'),
    dataOutFormat: DescFormat.Immediate,
    descriptors: encodeImmediateDesc(len),
    immediate: { offset: 68, data: new Uint8Array(dataBytes) },
  });
}
const set = (b: Uint8Array, at: number, v: number): Uint8Array => {
  const c = Uint8Array.from(b);
  c[at] = v;
  return c;
};

type Bad = [name: string, bytes: Uint8Array, len: number | undefined, bufFmt: number, immOffset: number, field: string];
const ALL = BufFormat.Direct | BufFormat.Indirect;
// biome-ignore format: a table: one case per row, read across
const bad: Bad[] = [
  ['shorter than the fixed part', readCmd().subarray(0, 40), undefined, ALL, 68, 'length'],
  ['declared length beyond the buffer', readCmd(), 80, ALL, 68, 'length'],
  ['wrong IU type', set(readCmd(), 0, 0x03), undefined, ALL, 68, 'IU TYPE'],
  ['additional CDB beyond the IU', set(readCmd(), 31, 0x40), undefined, ALL, 68, 'ADDITIONAL CDB LENGTH'],
  ['bidirectional', set(readCmd(), 5, 0x11), undefined, ALL, 68, 'BUFFER FORMAT'],
  ['direct descriptor cut short', readCmd().subarray(0, 60), undefined, ALL, 68, 'length'],
  ['direct descriptor count 2', set(readCmd(), 7, 2), undefined, ALL, 68, 'DATA-IN BUFFER DESCRIPTOR COUNT'],
  ['count for a direction without descriptor', set(readCmd(), 6, 1), undefined, ALL, 68, 'DATA-OUT BUFFER DESCRIPTOR COUNT'],
  ['direct not negotiated', readCmd(), undefined, BufFormat.Indirect, 68, 'DATA-IN BUFFER DESCRIPTOR FORMAT'],
  ['reserved descriptor format', set(readCmd(), 5, 0x05), undefined, ALL, 68, 'DATA-IN BUFFER DESCRIPTOR FORMAT'],
  ['indirect not negotiated', indirectCmd(2), undefined, BufFormat.Direct, 0, 'DATA-OUT BUFFER DESCRIPTOR FORMAT'],
  ['indirect table length not a multiple of 16', indirectCmd(2, 2, 1024, 31), undefined, ALL, 0, 'DESCRIPTOR TABLE LENGTH'],
  ['indirect empty table', indirectCmd(1, 1, 512, 0), undefined, ALL, 0, 'DESCRIPTOR TABLE LENGTH'],
  ['external descriptor table (count below the table)', indirectCmd(2, 1, 1024, 48), undefined, ALL, 0, 'DATA-OUT BUFFER DESCRIPTOR COUNT'],
  ['descriptor count beyond the table', indirectCmd(2, 3), undefined, ALL, 0, 'DATA-OUT BUFFER DESCRIPTOR COUNT'],
  ['descriptors beyond the IU', indirectCmd(3).subarray(0, 48 + 20 + 40), undefined, ALL, 0, 'DATA-OUT BUFFER DESCRIPTOR COUNT'],
  ['indirect header beyond the IU', indirectCmd(1).subarray(0, 60), undefined, ALL, 0, 'length'],
  ['total length that is not the sum', indirectCmd(2, 2, 1000), undefined, ALL, 0, 'TOTAL LENGTH'],
  ['zero count for an indirect descriptor', indirectCmd(2, 0), undefined, ALL, 0, 'DATA-OUT BUFFER DESCRIPTOR COUNT'],
  ['immediate data not negotiated', immCmd(8), undefined, ALL, 0, 'DATA-OUT BUFFER DESCRIPTOR FORMAT'],
  ['immediate data beyond the IU', immCmd(64, 8), undefined, ALL, 68, 'DATA LENGTH'],
  ['immediate data for data-in', set(immCmd(8), 5, 0x03), undefined, ALL, 68, 'DATA-IN BUFFER DESCRIPTOR FORMAT'],
  ['immediate descriptor overlapping the data', immCmd(8), undefined, ALL, 50, 'ADDITIONAL CDB LENGTH'],
];

describe('malformed SRP_CMD: refused before use, naming the field', () => {
  it.each(bad)('%s', (_name, bytes, len, bufFmt, imm, field) => {
    let err: unknown;
    try {
      const n = len ?? bytes.length;
      const cmd: SrpCmd = decodeCmd(bytes, n);
      decodeDataDescriptors(bytes, n, cmd, bufFmt, imm);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SrpIuError);
    expect((err as SrpIuError).field).toBe(field);
    expect((err as SrpIuError).message).toMatch(/^SRP_CMD: /);
  });

  it('an external descriptor table (ib_srp allow_ext_sg=1) is accepted where allowed, then read and checked', () => {
    const b = indirectCmd(2, 1, 1024, 48);
    const cmd = decodeCmd(b);
    const layout = decodeDataDescriptors(b, b.length, cmd, ALL, 0, true);
    expect(layout).toEqual({ direction: DataDir.Out, length: 1024, buffers: [], external: { table: { vaHi: 0, vaLo: 0x1000, key: 9, len: 48 }, entries: 3 } });
    const table = hex(
      `00 00 00 00 00 01 00 00 | 00 00 00 07 | 00 00 01 00 | 00 00 00 00 00 02 00 00 | 00 00 00 07 | 00 00 02 00 | 00 00 00 00 00 03 00 00 | 00 00 00 07 | 00 00 01 00`,
    );
    expect(decodeDescriptorTable(table, 3, 1024)).toEqual([
      { vaHi: 0, vaLo: 0x10000, key: 7, len: 256 },
      { vaHi: 0, vaLo: 0x20000, key: 7, len: 512 },
      { vaHi: 0, vaLo: 0x30000, key: 7, len: 256 },
    ]);
    expect(() => decodeDescriptorTable(table, 3, 2048)).toThrow(/TOTAL LENGTH: 2048 but the external table's descriptors add up to 1024/);
    expect(() => decodeDescriptorTable(table.subarray(0, 40), 3, 1024)).toThrow(/DESCRIPTOR TABLE LENGTH/);
    const huge = indirectCmd(1, 1, 512, 16 * 9000);
    expect(() => decodeDataDescriptors(huge, huge.length, decodeCmd(huge), ALL, 0, true)).toThrow(/exceeds 8192/);
  });

  it('other IUs check their length and type', () => {
    expect(() => decodeTskMgmt(hex(`01 ${zeros(30)}`))).toThrow(/SRP_TSK_MGMT: length/);
    expect(() => decodeILogout(hex(`02 ${zeros(15)}`))).toThrow(/SRP_I_LOGOUT: IU TYPE/);
    expect(() => decodeLoginReqRdma(hex(zeros(40)))).toThrow(/length: 40 bytes/);
    expect(() => decodeLoginReqRdma(hex(`${zeros(11)} 02 ${zeros(44)}`))).toThrow(/IU TYPE: 0x2/);
    expect(() => decodeRsp(hex(`c1 00 00 00 | 00 00 00 01 | ${TAG} | 00 00 | 02 | 02 | ${zeros(8)} | 00 00 00 40 | 00 00 00 00`))).toThrow(
      /SENSE DATA LIST LENGTH/,
    );
    expect(() => decodeCredRsp(hex(`41 ${zeros(10)}`))).toThrow(/SRP_CRED_RSP: length/);
  });
});
