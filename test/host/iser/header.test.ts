// iSER header (RFC 7145 §9.2) and iser_cm_hdr codecs. Byte vectors are written out by hand
// from the layout (offset → bytes), independently of the encoder, and checked both ways.
import { describe, expect, it } from 'vitest';
import { ISER_HEADER_LENGTH, acceptCmHeader, decodeIserHeader, encodeIserHeader, parseCmHeader, type IserHeader } from '../../../lib/iser/header.js';
import { SendBatch, SEND_HEADER_WORDS } from '../../../lib/verbs/wr.js';

function bytes(...spans: Array<[number, number[]]>): Buffer {
  const b = Buffer.alloc(28);
  for (const [o, v] of spans) for (let i = 0; i < v.length; i++) b[o + i] = v[i];
  return b;
}

// biome-ignore format: a table: one case per row, read across
const table: Array<[string, IserHeader, Buffer]> = [
  ['control, no STags (a SCSI Response or NOP)',
    { opcode: 1, wsv: false, rsv: false, writeStag: 0, writeVaHi: 0, writeVaLo: 0, readStag: 0, readVaHi: 0, readVaLo: 0 },
    bytes([0, [0x10]])],
  ['READ: RSV with a kernel virtual address (beyond 2^53)',
    { opcode: 1, wsv: false, rsv: true, writeStag: 0, writeVaHi: 0, writeVaLo: 0, readStag: 0x00abcdef, readVaHi: 0xffff8880, readVaLo: 0x12345678 },
    bytes([0, [0x14]], [16, [0x00, 0xab, 0xcd, 0xef]], [20, [0xff, 0xff, 0x88, 0x80, 0x12, 0x34, 0x56, 0x78]])],
  ['WRITE: WSV, STag with the top bit set',
    { opcode: 1, wsv: true, rsv: false, writeStag: 0x80000001, writeVaHi: 0x00007fff, writeVaLo: 0xfffff000, readStag: 0, readVaHi: 0, readVaLo: 0 },
    bytes([0, [0x18]], [4, [0x80, 0, 0, 0x01]], [8, [0, 0, 0x7f, 0xff, 0xff, 0xff, 0xf0, 0]])],
  ['bidirectional: WSV and RSV',
    { opcode: 1, wsv: true, rsv: true, writeStag: 2, writeVaHi: 0, writeVaLo: 0x1000, readStag: 3, readVaHi: 1, readVaLo: 0 },
    bytes([0, [0x1c]], [7, [2]], [14, [0x10, 0]], [19, [3]], [23, [1]])],
  ['Hello (iWARP only)',
    { opcode: 2, wsv: false, rsv: false, writeStag: 0, writeVaHi: 0, writeVaLo: 0, readStag: 0, readVaHi: 0, readVaLo: 0 },
    bytes([0, [0x20]])],
];

describe('iSER header', () => {
  it.each(table)('%s: decodes from and encodes to the bytes', (_name, h, b) => {
    expect(b.length).toBe(ISER_HEADER_LENGTH);
    expect(decodeIserHeader(b)).toEqual(h);
    const out = Buffer.alloc(28, 0xee);
    encodeIserHeader(h, out);
    expect(out).toEqual(b);
  });

  it('decodes at an offset into a caller-owned object (the receive path allocates nothing)', () => {
    const slot = Buffer.concat([Buffer.alloc(5, 0xaa), table[1][2]]);
    const into = decodeIserHeader(Buffer.alloc(28));
    const same = decodeIserHeader(slot, 5, into);
    expect(same).toBe(into);
    expect(same).toEqual(table[1][1]);
  });

  it('ignores reserved bits and bytes on receipt', () => {
    const b = bytes([0, [0x13]], [1, [0xff, 0xff, 0xff]]);
    expect(decodeIserHeader(b)).toMatchObject({ opcode: 1, wsv: false, rsv: false });
  });

  it('never throws on any flags byte', () => {
    for (let f = 0; f < 256; f++) {
      const h = decodeIserHeader(bytes([0, [f]]));
      expect(h.opcode).toBe(f >> 4);
      expect(h.wsv).toBe((f & 8) !== 0);
      expect(h.rsv).toBe((f & 4) !== 0);
    }
  });
});

describe('iser_cm_hdr', () => {
  // biome-ignore format: a table: one case per row, read across
  const cases: Array<[string, Uint8Array | undefined, { zbvaNotSupported: boolean; sendWithInvNotSupported: boolean }]> = [
    ['ib_iser with remote invalidation', Uint8Array.of(0x80, 0, 0, 0), { zbvaNotSupported: true, sendWithInvNotSupported: false }],
    ['ib_iser without remote invalidation', Uint8Array.of(0xc0, 0, 0, 0), { zbvaNotSupported: true, sendWithInvNotSupported: true }],
    ['everything supported', Uint8Array.of(0, 0, 0, 0), { zbvaNotSupported: false, sendWithInvNotSupported: false }],
    ['longer private data (RDMA/CM pads it)', Uint8Array.from([0x40, ...new Array(52).fill(0)]), { zbvaNotSupported: false, sendWithInvNotSupported: true }],
    // Malformed: nothing or too little to read flags from. Remote invalidation must then be
    // off: invalidating a key the initiator did not hand over would break its next I/O.
    ['no private data', undefined, { zbvaNotSupported: true, sendWithInvNotSupported: true }],
    ['empty private data', new Uint8Array(0), { zbvaNotSupported: true, sendWithInvNotSupported: true }],
    ['3 bytes', Uint8Array.of(0, 0, 0), { zbvaNotSupported: true, sendWithInvNotSupported: true }],
  ];
  it.each(cases)('%s', (_n, pd, want) => {
    expect(parseCmHeader(pd)).toEqual(want);
  });

  it("the accept says ZBVA is not used (base offsets are the initiator's addresses)", () => {
    expect([...acceptCmHeader()]).toEqual([0x80, 0, 0, 0]);
  });
});

describe('SendBatch.setRemote', () => {
  it('writes a 64-bit remote address from its halves, low word first (native/qp.h layout)', () => {
    const b = new SendBatch(2);
    b.add(1, 0, 0, 0x1000, 16, 7, 0, 9);
    b.add(2, 0, 0, 0x2000, 16, 7, 0, 9);
    b.setRemote(1, 0xffff8880, 0x12345678);
    const at = b.offsetOf(1);
    expect(at).toBe(SEND_HEADER_WORDS + 4);
    expect(b.words[at + 8]).toBe(0x12345678);
    expect(b.words[at + 9]).toBe(0xffff8880);
    expect(b.words[b.offsetOf(0) + 8]).toBe(0);
  });

  it('carries a low half pushed past 2^32 by an offset into the high half', () => {
    const b = new SendBatch(1);
    b.add(1, 0, 0, 0x1000, 16, 7, 0, 9);
    // VA 0xffff8880_fff00000 + 2 MiB = 0xffff8881_00100000
    b.setRemote(0, 0xffff8880, 0xfff00000 + 0x200000);
    expect(b.words[b.offsetOf(0) + 8]).toBe(0x00100000);
    expect(b.words[b.offsetOf(0) + 9]).toBe(0xffff8881);
    // and wraps the high half the way the 64-bit sum does
    b.setRemote(0, 0xffffffff, 0xffffffff + 1);
    expect(b.words[b.offsetOf(0) + 8]).toBe(0);
    expect(b.words[b.offsetOf(0) + 9]).toBe(0);
  });
});
