// The SCSI layer's bounce-buffer pool: size classes, reuse, and carving from a slab of
// (registered) memory so RDMA fabrics can move file-LUN data without a copy.
import { describe, expect, test } from 'vitest';
import { BufferPool, CHUNK_BYTES } from '../../../lib/scsi/bufpool.js';

describe('BufferPool', () => {
  test('rounds up to a power-of-two class of at least 4 KiB and reuses released buffers', () => {
    const p = new BufferPool();
    const a = p.acquire(512);
    expect(a.byteLength).toBe(4096);
    const b = p.acquire(5000);
    expect(b.byteLength).toBe(8192);
    p.release(a);
    expect(p.acquire(100)).toBe(a);
    expect(p.acquire(100)).not.toBe(a);
  });

  test('a transfer over one chunk gets a one-off buffer that is never kept', () => {
    const p = new BufferPool();
    const big = p.acquire(CHUNK_BYTES + 1);
    expect(big.byteLength).toBe(CHUNK_BYTES + 1);
    p.release(big);
    expect(p.acquire(CHUNK_BYTES + 1)).not.toBe(big);
  });

  test('carves buffers from the slab, aligned to their size, then falls back to the heap', () => {
    const slab = new Uint8Array(3 << 20);
    const p = new BufferPool(slab);
    const small = p.acquire(4096);
    expect(small.buffer).toBe(slab.buffer);
    expect(small.byteOffset).toBe(0);
    const m1 = p.acquire(1 << 20);
    expect(m1.buffer).toBe(slab.buffer);
    expect(m1.byteOffset).toBe(1 << 20); // aligned past the 4 KiB one
    const m2 = p.acquire(1 << 20);
    expect(m2.byteOffset).toBe(2 << 20);
    const heap = p.acquire(1 << 20); // slab spent
    expect(heap.buffer).not.toBe(slab.buffer);
    expect(heap.byteLength).toBe(1 << 20);
    // Carved buffers come back through their class, never overlapping one still held.
    p.release(m1);
    expect(p.acquire(1 << 20)).toBe(m1);
    expect(p.acquire(4096).buffer).not.toBe(slab.buffer); // the 4 KiB one is still held
  });

  test('keeps every slab buffer released, even beyond the heap bound', () => {
    const slab = new Uint8Array(64 * 4096);
    const p = new BufferPool(slab);
    const held = Array.from({ length: 64 }, () => p.acquire(4096));
    expect(new Set(held.map((b) => b.byteOffset)).size).toBe(64);
    for (const b of held) p.release(b);
    const again = Array.from({ length: 64 }, () => p.acquire(4096));
    expect(again.every((b) => b.buffer === slab.buffer)).toBe(true);
    expect(p.acquire(4096).buffer).not.toBe(slab.buffer);
  });

  test('ignores foreign views: odd sizes and offset views of heap memory', () => {
    const p = new BufferPool();
    const odd = new Uint8Array(5000);
    p.release(odd);
    const view = new Uint8Array(8192).subarray(4096);
    p.release(view);
    expect(p.acquire(4096)).not.toBe(view);
  });
});
