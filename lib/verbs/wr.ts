// Encoders for the fixed-size work-request records the binding posts (layout in
// native/qp.h). A batch is built in a preallocated Uint32Array and posted with one call;
// nothing is allocated per work request.

export const SEND_HEADER_WORDS = 10;
export const RECV_HEADER_WORDS = 4;
export const SGE_WORDS = 4;
const TWO32 = 4294967296;

function putAddr(w: Uint32Array, at: number, addr: number): void {
  if (addr <= 0x3fffffff && addr >= 0) {
    // Small integers (wr_ids, lengths): no floating point, which is costly where the CPU
    // is emulated (the TCG test VM) and needless anywhere.
    w[at] = addr;
    w[at + 1] = 0;
    return;
  }
  w[at] = addr >>> 0; // addresses and wr_ids stay below 2^53: exact as Numbers
  w[at + 1] = Math.floor(addr / TWO32);
}

/**
 * wr_id for unsignalled WRs. They complete only when flushed (QP in error), and then a
 * CompletionDispatcher ignores this id, as it is beyond any table. A small integer on purpose.
 */
export const UNSIGNALED_WR_ID = 0x3fffffff;

export class SendBatch {
  readonly words: Uint32Array;
  count = 0;
  private at = 0;
  private readonly starts: Int32Array;

  constructor(
    readonly maxWrs: number,
    readonly maxSgePerWr = 1,
  ) {
    this.words = new Uint32Array(maxWrs * (SEND_HEADER_WORDS + SGE_WORDS * maxSgePerWr));
    this.starts = new Int32Array(maxWrs);
  }

  /**
   * Word offset of WR `i`: prebuild a table of WRs once, then per post patch what changes
   * (setWrId/setFlags) and post a range with qp.postSend(words, n, offsetOf(first)).
   */
  offsetOf(i: number): number {
    return this.starts[i];
  }

  setWrId(i: number, wrId: number): this {
    putAddr(this.words, this.starts[i], wrId);
    return this;
  }

  /**
   * Sets WR `i`'s remote address from its 32-bit halves: for addresses a Number cannot hold
   * exactly (a kernel peer's virtual addresses, 0xffff8880…).
   */
  setRemote(i: number, hi: number, lo: number): this {
    // `lo` may be a low half plus an offset past 2^32: its carry goes into the high half.
    const carry = lo >= TWO32 ? Math.floor(lo / TWO32) : 0;
    this.words[this.starts[i] + 8] = (lo - carry * TWO32) >>> 0;
    this.words[this.starts[i] + 9] = (hi + carry) >>> 0;
    return this;
  }

  setFlags(i: number, flags: number): this {
    this.words[this.starts[i] + 3] = flags;
    return this;
  }

  reset(): this {
    this.count = 0;
    this.at = 0;
    return this;
  }

  /**
   * Appends a WR with `sges` scatter/gather entries that the caller then fills with sge().
   * `immOrInv` is the immediate data, or the rkey to invalidate for SEND_WITH_INV.
   */
  begin(wrId: number, opcode: number, flags: number, sges: number, remoteAddr = 0, rkey = 0, immOrInv = 0): this {
    if (this.count >= this.maxWrs || sges > this.maxSgePerWr) throw new RangeError('SendBatch is full');
    const w = this.words;
    const a = this.at;
    this.starts[this.count] = a;
    putAddr(w, a, wrId);
    w[a + 2] = opcode;
    w[a + 3] = flags;
    w[a + 4] = sges;
    w[a + 5] = immOrInv;
    w[a + 6] = rkey;
    w[a + 7] = 0;
    putAddr(w, a + 8, remoteAddr);
    this.at += SEND_HEADER_WORDS;
    this.count++;
    return this;
  }

  sge(addr: number, length: number, lkey: number): this {
    putAddr(this.words, this.at, addr);
    this.words[this.at + 2] = length;
    this.words[this.at + 3] = lkey;
    this.at += SGE_WORDS;
    return this;
  }

  /** One WR with one SGE: the common case. */
  add(wrId: number, opcode: number, flags: number, addr: number, length: number, lkey: number, remoteAddr = 0, rkey = 0, immOrInv = 0): this {
    return this.begin(wrId, opcode, flags, length > 0 ? 1 : 0, remoteAddr, rkey, immOrInv).sgeIf(addr, length, lkey);
  }

  private sgeIf(addr: number, length: number, lkey: number): this {
    return length > 0 ? this.sge(addr, length, lkey) : this;
  }
}

export class RecvBatch {
  readonly words: Uint32Array;
  count = 0;
  private at = 0;

  constructor(readonly maxWrs: number) {
    this.words = new Uint32Array(maxWrs * (RECV_HEADER_WORDS + SGE_WORDS));
  }

  reset(): this {
    this.count = 0;
    this.at = 0;
    return this;
  }

  /** Word offset of receive WR `i` (records are fixed-size). */
  offsetOf(i: number): number {
    return i * (RECV_HEADER_WORDS + SGE_WORDS);
  }

  setWrId(i: number, wrId: number): this {
    putAddr(this.words, this.offsetOf(i), wrId);
    return this;
  }

  add(wrId: number, addr: number, length: number, lkey: number): this {
    if (this.count >= this.maxWrs) throw new RangeError('RecvBatch is full');
    const w = this.words;
    const a = this.at;
    putAddr(w, a, wrId);
    w[a + 2] = 1;
    w[a + 3] = 0;
    putAddr(w, a + 4, addr);
    w[a + 6] = length;
    w[a + 7] = lkey;
    this.at += RECV_HEADER_WORDS + SGE_WORDS;
    this.count++;
    return this;
  }
}
