// PDU codec, CRC32C and text codec. Byte vectors are built by hand from the RFC 7143 §11
// layouts (offset → bytes), independently of the serializer, and checked both ways.
import { describe, expect, it } from 'vitest';
import { crc32c, crc32cFinal, crc32cUpdate, CRC32C_INIT, readDigest, writeDigest } from '../../../lib/iscsi/digest.js';
import {
  decodeBhs,
  encodeBhs,
  encodeBidiAhs,
  decodeScsiCommandInto,
  encodeDataIn,
  encodeExtendedCdbAhs,
  encodeScsiResponse,
  parseAhs,
  type Pdu,
} from '../../../lib/iscsi/pdu.js';
import { decodeText, encodeText, TextAccumulator, TextFormatError } from '../../../lib/iscsi/text.js';

/** 48 zero bytes with the given bytes at the given offsets. */
function bytes(...spans: Array<[number, number[]]>): Buffer {
  const b = Buffer.alloc(48);
  for (const [o, v] of spans) for (let i = 0; i < v.length; i++) b[o + i] = v[i];
  return b;
}
const cdb16 = (...head: number[]): Uint8Array => {
  const c = new Uint8Array(16);
  c.set(head);
  return c;
};

// biome-ignore format: a table: one case per row, read across
const table: Array<[string, Pdu, Buffer]> = [
  ['SCSI Command READ(10) (RFC 3720 B.4 vector)',
    { opcode: 0x01, immediate: false, ahsWords: 0, dataLength: 0, itt: 0x14000000, final: true, read: true, write: false, attr: 0, lun: 0n, edtl: 0x400, cmdSN: 0x14, expStatSN: 0x18, cdb: cdb16(0x28) },
    bytes([0, [0x01, 0xc0]], [16, [0x14, 0, 0, 0]], [20, [0, 0, 4, 0]], [24, [0, 0, 0, 0x14]], [28, [0, 0, 0, 0x18]], [32, [0x28]])],
  ['SCSI Command WRITE immediate, ordered, LUN 1, 512 bytes immediate data',
    { opcode: 0x01, immediate: true, ahsWords: 0, dataLength: 512, itt: 7, final: false, read: false, write: true, attr: 2, lun: 0x0001000000000000n, edtl: 4096, cmdSN: 0xfffffffe, expStatSN: 3, cdb: cdb16(0x2a, 0, 0, 0, 0, 8, 0, 0, 8) },
    bytes([0, [0x41, 0x22]], [5, [0, 2, 0]], [8, [0, 1]], [19, [7]], [20, [0, 0, 0x10, 0]], [24, [0xff, 0xff, 0xff, 0xfe]], [31, [3]], [32, [0x2a, 0, 0, 0, 0, 8, 0, 0, 8]])],
  ['SCSI Response CHECK CONDITION with underflow',
    { opcode: 0x21, immediate: false, ahsWords: 0, dataLength: 20, itt: 9, bidiOverflow: false, bidiUnderflow: false, overflow: false, underflow: true, response: 0, status: 2, snackTag: 0, statSN: 0x100, expCmdSN: 0x21, maxCmdSN: 0x60, expDataSN: 2, bidiResidual: 0, residual: 512 },
    bytes([0, [0x21, 0x82, 0x00, 0x02]], [7, [20]], [19, [9]], [24, [0, 0, 1, 0]], [31, [0x21]], [35, [0x60]], [39, [2]], [44, [0, 0, 2, 0]])],
  ['SCSI Response bidi overflow flags',
    { opcode: 0x21, immediate: false, ahsWords: 0, dataLength: 0, itt: 1, bidiOverflow: true, bidiUnderflow: true, overflow: true, underflow: false, response: 1, status: 0, snackTag: 5, statSN: 1, expCmdSN: 2, maxCmdSN: 3, expDataSN: 4, bidiResidual: 6, residual: 7 },
    bytes([0, [0x21, 0x9c, 0x01, 0x00]], [19, [1]], [23, [5]], [27, [1]], [31, [2]], [35, [3]], [39, [4]], [43, [6]], [47, [7]])],
  ['Data-In final with status, underflow',
    { opcode: 0x25, immediate: false, ahsWords: 0, dataLength: 8192, itt: 0x11, final: true, ack: false, overflow: false, underflow: true, hasStatus: true, status: 0, lun: 0n, ttt: 0xffffffff, statSN: 10, expCmdSN: 11, maxCmdSN: 12, dataSN: 3, bufferOffset: 0x6000, residual: 100 },
    bytes([0, [0x25, 0x83]], [5, [0, 0x20, 0]], [19, [0x11]], [20, [0xff, 0xff, 0xff, 0xff]], [27, [10]], [31, [11]], [35, [12]], [39, [3]], [40, [0, 0, 0x60, 0]], [47, [100]])],
  ['Data-Out',
    { opcode: 0x05, immediate: false, ahsWords: 0, dataLength: 4096, itt: 0x22, final: true, lun: 0n, ttt: 0x33, expStatSN: 0x44, dataSN: 1, bufferOffset: 8192 },
    bytes([0, [0x05, 0x80]], [5, [0, 0x10, 0]], [19, [0x22]], [23, [0x33]], [31, [0x44]], [39, [1]], [40, [0, 0, 0x20, 0]])],
  ['R2T',
    { opcode: 0x31, immediate: false, ahsWords: 0, dataLength: 0, itt: 0x22, lun: 0x0002000000000000n, ttt: 0x33, statSN: 5, expCmdSN: 6, maxCmdSN: 7, r2tSN: 1, bufferOffset: 65536, desiredLength: 262144 },
    bytes([0, [0x31, 0x80]], [8, [0, 2]], [19, [0x22]], [23, [0x33]], [27, [5]], [31, [6]], [35, [7]], [39, [1]], [40, [0, 1, 0, 0]], [44, [0, 4, 0, 0]])],
  ['Login Request security→operational, T=1',
    { opcode: 0x03, immediate: true, ahsWords: 0, dataLength: 100, itt: 0x1000, transit: true, cont: false, csg: 0, nsg: 1, versionMax: 0, versionMin: 0, isid: 0x023d00000001, tsih: 0, cid: 0, cmdSN: 1, expStatSN: 0 },
    bytes([0, [0x43, 0x81]], [7, [100]], [8, [0x02, 0x3d, 0, 0, 0, 0x01]], [16, [0, 0, 0x10, 0]], [27, [1]])],
  ['Login Request operational→FFP, C bit, CID 5, TSIH 7',
    { opcode: 0x03, immediate: true, ahsWords: 0, dataLength: 0, itt: 1, transit: false, cont: true, csg: 1, nsg: 0, versionMax: 0, versionMin: 0, isid: 0x400001370000, tsih: 7, cid: 5, cmdSN: 9, expStatSN: 10 },
    bytes([0, [0x43, 0x44]], [8, [0x40, 0x00, 0x01, 0x37, 0, 0]], [15, [7]], [19, [1]], [21, [5]], [27, [9]], [31, [10]])],
  ['Login Response final, TSIH 1',
    { opcode: 0x23, immediate: false, ahsWords: 0, dataLength: 0, itt: 0x1000, transit: true, cont: false, csg: 1, nsg: 3, versionMax: 0, versionActive: 0, isid: 0x023d00000001, tsih: 1, statSN: 0x1234, expCmdSN: 1, maxCmdSN: 64, statusClass: 0, statusDetail: 0 },
    bytes([0, [0x23, 0x87]], [8, [0x02, 0x3d, 0, 0, 0, 0x01]], [15, [1]], [16, [0, 0, 0x10, 0]], [26, [0x12, 0x34]], [31, [1]], [35, [64]])],
  ['Login Response reject 0x0201',
    { opcode: 0x23, immediate: false, ahsWords: 0, dataLength: 0, itt: 2, transit: false, cont: false, csg: 0, nsg: 0, versionMax: 0, versionActive: 0, isid: 1, tsih: 0, statSN: 1, expCmdSN: 1, maxCmdSN: 1, statusClass: 2, statusDetail: 1 },
    bytes([0, [0x23, 0x00]], [13, [1]], [19, [2]], [27, [1]], [31, [1]], [35, [1]], [36, [2, 1]])],
  ['Text Request',
    { opcode: 0x04, immediate: false, ahsWords: 0, dataLength: 16, itt: 3, final: true, cont: false, lun: 0n, ttt: 0xffffffff, cmdSN: 2, expStatSN: 5 },
    bytes([0, [0x04, 0x80]], [7, [16]], [19, [3]], [20, [0xff, 0xff, 0xff, 0xff]], [27, [2]], [31, [5]])],
  ['Text Response continued',
    { opcode: 0x24, immediate: false, ahsWords: 0, dataLength: 8192, itt: 3, final: false, cont: true, lun: 0n, ttt: 0x77, statSN: 5, expCmdSN: 3, maxCmdSN: 10 },
    bytes([0, [0x24, 0x40]], [5, [0, 0x20, 0]], [19, [3]], [23, [0x77]], [27, [5]], [31, [3]], [35, [10]])],
  ['NOP-Out ping',
    { opcode: 0x00, immediate: true, ahsWords: 0, dataLength: 4, itt: 0x99, lun: 0n, ttt: 0xffffffff, cmdSN: 4, expStatSN: 8 },
    bytes([0, [0x40, 0x80]], [7, [4]], [19, [0x99]], [20, [0xff, 0xff, 0xff, 0xff]], [27, [4]], [31, [8]])],
  ['NOP-In keep-alive',
    { opcode: 0x20, immediate: false, ahsWords: 0, dataLength: 0, itt: 0xffffffff, lun: 0n, ttt: 0x10, statSN: 8, expCmdSN: 4, maxCmdSN: 67 },
    bytes([0, [0x20, 0x80]], [16, [0xff, 0xff, 0xff, 0xff]], [23, [0x10]], [27, [8]], [31, [4]], [35, [67]])],
  ['TMF ABORT TASK',
    { opcode: 0x02, immediate: true, ahsWords: 0, dataLength: 0, itt: 0x50, fn: 1, lun: 0n, rtt: 0x40, cmdSN: 12, expStatSN: 13, refCmdSN: 11, expDataSN: 0 },
    bytes([0, [0x42, 0x81]], [19, [0x50]], [23, [0x40]], [27, [12]], [31, [13]], [35, [11]])],
  ['TMF Response',
    { opcode: 0x22, immediate: false, ahsWords: 0, dataLength: 0, itt: 0x50, response: 1, statSN: 13, expCmdSN: 12, maxCmdSN: 75 },
    bytes([0, [0x22, 0x80, 0x01]], [19, [0x50]], [27, [13]], [31, [12]], [35, [75]])],
  ['Logout Request close session',
    { opcode: 0x06, immediate: true, ahsWords: 0, dataLength: 0, itt: 0x60, reason: 0, cid: 0, cmdSN: 20, expStatSN: 21 },
    bytes([0, [0x46, 0x80]], [19, [0x60]], [27, [20]], [31, [21]])],
  ['Logout Response',
    { opcode: 0x26, immediate: false, ahsWords: 0, dataLength: 0, itt: 0x60, response: 0, statSN: 21, expCmdSN: 20, maxCmdSN: 83, time2Wait: 2, time2Retain: 20 },
    bytes([0, [0x26, 0x80]], [19, [0x60]], [27, [21]], [31, [20]], [35, [83]], [41, [2]], [43, [20]])],
  ['Async Message logout request',
    { opcode: 0x32, immediate: false, ahsWords: 0, dataLength: 0, itt: 0xffffffff, lun: 0n, statSN: 30, expCmdSN: 31, maxCmdSN: 94, event: 1, vcode: 0, param1: 0, param2: 0, param3: 5 },
    bytes([0, [0x32, 0x80]], [16, [0xff, 0xff, 0xff, 0xff]], [27, [30]], [31, [31]], [35, [94]], [36, [1]], [43, [5]])],
  ['Reject protocol error',
    { opcode: 0x3f, immediate: false, ahsWords: 0, dataLength: 48, itt: 0xffffffff, reason: 4, statSN: 40, expCmdSN: 41, maxCmdSN: 104, dataSN: 0 },
    bytes([0, [0x3f, 0x80, 0x04]], [7, [48]], [16, [0xff, 0xff, 0xff, 0xff]], [27, [40]], [31, [41]], [35, [104]])],
  ['SNACK',
    { opcode: 0x10, immediate: false, ahsWords: 0, dataLength: 0, itt: 5, type: 1, lun: 0n, ttt: 0xffffffff, expStatSN: 3, begRun: 4, runLength: 2 },
    bytes([0, [0x10, 0x81]], [19, [5]], [20, [0xff, 0xff, 0xff, 0xff]], [31, [3]], [43, [4]], [47, [2]])],
  ['unknown opcode 0x1c with AHS words',
    { opcode: -1, rawOpcode: 0x1c, immediate: false, ahsWords: 2, dataLength: 0, itt: 1 },
    bytes([0, [0x1c]], [4, [2]], [19, [1]])],
];

describe('BHS codec (RFC 7143 §11)', () => {
  for (const [name, obj, wire] of table) {
    it(`decode: ${name}`, () => {
      const d = decodeBhs(wire);
      if ('cdb' in obj) expect(Buffer.from((d as typeof obj).cdb)).toEqual(Buffer.from(obj.cdb));
      expect({ ...d, cdb: undefined }).toEqual({ ...obj, cdb: undefined });
    });
    it(`encode: ${name}`, () => {
      const e = Buffer.from(encodeBhs(obj));
      // Byte 1 of an unknown opcode is not ours to set; compare everything we encode.
      expect(e.toString('hex')).toBe(wire.toString('hex'));
    });
  }
  it('never throws on arbitrary 48 bytes', () => {
    for (let i = 0; i < 2000; i++) {
      const b = Buffer.alloc(48);
      for (let k = 0; k < 48; k++) b[k] = (Math.random() * 256) | 0;
      expect(() => decodeBhs(b)).not.toThrow();
    }
  });
  it("the status path's SCSI Response and Data-In encoders write what encodeBhs writes for the same fields", () => {
    const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
    expect(hex(encodeScsiResponse(0x12345678, 0x08 | 0x02, 1, 2, 0xfffffffe, 7, 9, 3, 0x100, 0x200, 20))).toBe(
      hex(
        encodeBhs({
          opcode: 0x21,
          itt: 0x12345678,
          dataLength: 20,
          bidiOverflow: false,
          bidiUnderflow: true,
          overflow: false,
          underflow: true,
          response: 1,
          status: 2,
          snackTag: 0,
          statSN: 0xfffffffe,
          expCmdSN: 7,
          maxCmdSN: 9,
          expDataSN: 3,
          bidiResidual: 0x100,
          residual: 0x200,
        }),
      ),
    );
    for (const [flags, status] of [
      [0x80 | 0x01 | 0x04, 0x02],
      [0x80, 0x02],
      [0, 0],
    ] as const) {
      const s = (flags & 1) !== 0;
      expect(hex(encodeDataIn(0xa1b2c3d4, flags, status, 4096, 11, 12, 13, 14, 8192, 77))).toBe(
        hex(
          encodeBhs({
            opcode: 0x25,
            itt: 0xa1b2c3d4,
            dataLength: 4096,
            final: (flags & 0x80) !== 0,
            ack: false,
            overflow: (flags & 4) !== 0,
            underflow: (flags & 2) !== 0,
            hasStatus: s,
            status,
            lun: 0n,
            ttt: 0xffffffff,
            statSN: 11,
            expCmdSN: 12,
            maxCmdSN: 13,
            dataSN: 14,
            bufferOffset: 8192,
            residual: 77,
          }),
        ),
      );
    }
  });
  it("a SCSI Command decoded into a scratch object gives decodeBhs's fields, the CDB copied", () => {
    const scratch = { ...(decodeBhs(Buffer.alloc(48, 0).fill(1, 0, 1)) as Pdu & { cdb: Uint8Array }), cdb: new Uint8Array(16) };
    const ownCdb = scratch.cdb;
    for (let i = 0; i < 50; i++) {
      const b = Buffer.alloc(48);
      for (let k = 0; k < 48; k++) b[k] = (Math.random() * 256) | 0;
      b[0] = (b[0] & 0x40) | 0x01;
      const want = decodeBhs(b) as Pdu & { cdb: Uint8Array };
      const got = decodeScsiCommandInto(b, scratch as never);
      expect(got.cdb).toBe(ownCdb);
      expect(Buffer.from(got.cdb).toString('hex')).toBe(b.subarray(32, 48).toString('hex'));
      expect({ ...got, cdb: undefined }).toEqual({ ...want, cdb: undefined });
    }
  });
  it('short BHS is a RangeError citing §11.2', () => {
    expect(() => decodeBhs(new Uint8Array(47))).toThrow(/§11\.2/);
  });
  it('AHS: extended CDB and bidirectional read length (§11.2.2)', () => {
    const cdb = new Uint8Array(32).map((_, i) => i + 1);
    const ext = encodeExtendedCdbAhs(cdb);
    // AHSLength = CDB length - 15 = 17; type 1; then CDB bytes 16..31; padded to 4.
    expect(Buffer.from(ext.subarray(0, 4)).toString('hex')).toBe('00110100');
    expect(ext.length % 4).toBe(0);
    const bidi = encodeBidiAhs(0x12345678);
    expect(Buffer.from(bidi).toString('hex')).toBe('0005020012345678');
    const parsed = parseAhs(Buffer.concat([ext, bidi]))!;
    expect(parsed.map((a) => a.type)).toEqual([1, 2]);
    expect(Buffer.from(parsed[0].body)).toEqual(Buffer.from(cdb.subarray(16)));
    expect(parseAhs(Buffer.from([0, 9, 1, 0, 1, 2, 3, 4]))).toBeUndefined();
  });
});

describe('CRC32C (RFC 3720 Appendix B.4)', () => {
  const vec = (data: Buffer, wire: string): void => {
    const v = crc32c(data);
    const out = Buffer.alloc(4);
    writeDigest(out, 0, v);
    expect(out.toString('hex')).toBe(wire);
    expect(readDigest(out, 0)).toBe(v);
  };
  it('32 bytes of zeroes', () => vec(Buffer.alloc(32), 'aa36918a'));
  it('32 bytes of ones', () => vec(Buffer.alloc(32, 0xff), '43aba862'));
  it('32 incrementing bytes', () => vec(Buffer.from(Array.from({ length: 32 }, (_, i) => i)), '4e79dd46'));
  it('32 decrementing bytes', () => vec(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)), '5cdb3f11'));
  it('table-driven equals a bit-at-a-time reference on a PDU header and random data', () => {
    const ref = (d: Uint8Array): number => {
      let c = 0xffffffff;
      for (const x of d) {
        c ^= x;
        for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
      }
      return (c ^ 0xffffffff) >>> 0;
    };
    expect(crc32c(table[0][2])).toBe(ref(table[0][2]));
    for (let n = 0; n < 70; n++) {
      const d = Buffer.from(Array.from({ length: n }, () => (Math.random() * 256) | 0));
      expect(crc32c(d)).toBe(ref(d));
    }
  });
  it('"123456789" check value 0xE3069283', () => expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283));
  it('incremental equals one-shot at every split', () => {
    const d = Buffer.from(Array.from({ length: 67 }, (_, i) => (i * 37) & 0xff));
    for (let s = 0; s <= d.length; s++) {
      expect(crc32cFinal(crc32cUpdate(crc32cUpdate(CRC32C_INIT, d, 0, s), d, s, d.length))).toBe(crc32c(d));
    }
  });
});

describe('text codec (RFC 7143 §6.1)', () => {
  it('round trip', () => {
    const pairs: Array<[string, string]> = [
      ['InitiatorName', 'iqn.1994-05.com.redhat:abc'],
      ['MaxRecvDataSegmentLength', '262144'],
      ['X-com.example.Key', ''],
      ['TargetAlias', 'ünïcode'],
    ];
    const b = encodeText(pairs);
    expect(b.toString('latin1').startsWith('InitiatorName=iqn.1994-05.com.redhat:abc\0')).toBe(true);
    expect(decodeText(b)).toEqual(pairs);
  });
  it('tolerates trailing NUL padding', () => {
    expect(decodeText(Buffer.from('A=1\0\0\0\0'))).toEqual([['A', '1']]);
  });
  // biome-ignore format: a table: one case per row, read across
  const bad: Array<[string, string]> = [
    ['no NUL', 'A=1'], ['no =', 'A\0'], ['empty key', '=1\0'], ['key too long', `${'K'.repeat(64)}=1\0`],
    ['bad key char', 'A B=1\0'], ['value too long', `A=${'v'.repeat(8193)}\0`],
  ];
  for (const [name, s] of bad) it(`rejects ${name}`, () => expect(() => decodeText(Buffer.from(s))).toThrow(TextFormatError));
  it('accumulator bounds what it buffers', () => {
    const a = new TextAccumulator(10);
    expect(a.push(Buffer.from('A=1\0'))).toBe(true);
    expect(a.push(Buffer.from('B=22\0'))).toBe(true);
    expect(a.push(Buffer.from('C=3\0'))).toBe(false);
    expect(Buffer.from(a.take()).toString()).toBe('A=1\0B=22\0');
  });
});
