// A registered buffer pool: one memory region cut into fixed-size slots, handed out by
// integer index. Slot views, addresses and the free stack are built once; alloc/free
// allocate nothing.
import { native, type NativeMr, type NativePd } from './binding.js';

export class BufferPool implements Disposable {
  readonly mr: NativeMr;
  readonly lkey: number;
  readonly rkey: number;
  private readonly views: Buffer[];
  private readonly freeStack: Int32Array;
  private freeTop: number;

  constructor(
    pd: NativePd,
    readonly slotSize: number,
    readonly slotCount: number,
    access: number,
  ) {
    if (!(slotSize > 0 && slotCount > 0)) throw new RangeError('slotSize and slotCount must be positive');
    this.mr = new (native().MemoryRegion)(pd, slotSize * slotCount, access);
    this.lkey = this.mr.lkey;
    this.rkey = this.mr.rkey;
    this.views = [];
    for (let i = 0; i < slotCount; i++) this.views.push(this.mr.buffer.subarray(i * slotSize, (i + 1) * slotSize));
    this.freeStack = new Int32Array(slotCount);
    for (let i = 0; i < slotCount; i++) this.freeStack[i] = slotCount - 1 - i;
    this.freeTop = slotCount;
  }

  get available(): number {
    return this.freeTop;
  }

  /** A free slot index, or -1 when the pool is exhausted. */
  alloc(): number {
    return this.freeTop > 0 ? this.freeStack[--this.freeTop] : -1;
  }

  free(slot: number): void {
    if (this.freeTop >= this.slotCount) throw new Error('BufferPool: free() of a slot that is not allocated');
    this.freeStack[this.freeTop++] = slot;
  }

  view(slot: number): Buffer {
    return this.views[slot];
  }

  address(slot: number): number {
    return this.mr.address + slot * this.slotSize;
  }

  close(): void {
    this.mr.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
