// Reusable bounce buffers for backstores without a zero-copy view (file, block) and for
// parameter data: one free list per power-of-two size class, so steady-state I/O
// allocates nothing (design.md, memory model).

const MIN_CLASS = 12; // 4 KiB
const MAX_CLASS = 20; // 1 MiB: the chunk size; larger transfers are moved in chunks
export const CHUNK_BYTES = 1 << MAX_CLASS;
const KEEP_PER_CLASS = 16;

export class BufferPool {
  private readonly free: Uint8Array[][] = [];

  acquire(bytes: number): Uint8Array {
    if (bytes > CHUNK_BYTES) return new Uint8Array(bytes); // rare: one-off (e.g. huge parameter list)
    let c = MIN_CLASS;
    while (1 << c < bytes) c++;
    const list = this.free[c];
    const b = list?.pop();
    return b ?? new Uint8Array(1 << c);
  }

  release(buf: Uint8Array): void {
    const n = buf.byteLength;
    if (n > CHUNK_BYTES || n < 1 << MIN_CLASS || (n & (n - 1)) !== 0 || buf.byteOffset !== 0) return;
    const c = 31 - Math.clz32(n);
    const list = (this.free[c] ??= []);
    if (list.length < KEEP_PER_CLASS) list.push(buf);
  }
}
