// Reusable bounce buffers for backstores without a zero-copy view (file, block) and for
// parameter data: one free list per power-of-two size class, so steady-state I/O
// allocates nothing (docs/architecture.md, memory model).
//
// With a slab (registered memory from lib/verbs/registry.ts, when RDMA is in use) buffers
// are carved from it, so a file LUN's read lands in memory an RDMA fabric can WRITE from
// directly, and Data-Out is RDMA READ into the buffer the fd then writes: the fd and the
// wire meet in one buffer, no copy between. When the slab is spent, buffers come from the
// heap and the fabrics' bounce slots carry them (one copy), so nothing fails for lack of it.

const MIN_CLASS = 12; // 4 KiB
const MAX_CLASS = 20; // 1 MiB: the chunk size; larger transfers are moved in chunks
export const CHUNK_BYTES = 1 << MAX_CLASS;
const KEEP_PER_CLASS = 16;

export class BufferPool {
  private readonly free: Uint8Array[][] = [];
  /** Bytes of the slab handed out so far (carved buffers return to their class's list, never to the slab). */
  private carved = 0;

  constructor(private readonly slab?: Uint8Array) {}

  acquire(bytes: number): Uint8Array {
    if (bytes > CHUNK_BYTES) return new Uint8Array(bytes); // rare: one-off (e.g. huge parameter list)
    let c = MIN_CLASS;
    while (1 << c < bytes) c++;
    const b = this.free[c]?.pop();
    if (b) return b;
    const size = 1 << c;
    // Aligned to its own size (a power of two), so no buffer straddles a page it need not.
    const at = Math.ceil(this.carved / size) * size;
    if (this.slab && at + size <= this.slab.length) {
      this.carved = at + size;
      return this.slab.subarray(at, at + size);
    }
    return new Uint8Array(size);
  }

  release(buf: Uint8Array): void {
    const n = buf.byteLength;
    if (n > CHUNK_BYTES || n < 1 << MIN_CLASS || (n & (n - 1)) !== 0) return;
    const fromSlab = this.slab !== undefined && buf.buffer === this.slab.buffer;
    if (!fromSlab && buf.byteOffset !== 0) return;
    const c = 31 - Math.clz32(n);
    const list = (this.free[c] ??= []);
    // Slab buffers are always kept (the slab is never given back); heap ones up to a bound.
    if (fromSlab || list.length < KEEP_PER_CLASS) list.push(buf);
  }
}
