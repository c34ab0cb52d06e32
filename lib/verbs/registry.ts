// Memory that every protection domain registers: the RAM LUNs (design.md, memory model),
// so Data-In is an RDMA WRITE straight from the LUN and Data-Out an RDMA READ straight into
// it. Memories are allocated natively (page-aligned, never from Node's Buffer pool) and
// registered once per PD, when the PD is attached or when the memory is added, whichever
// comes later. A lookup by view allocates nothing.
import { native, type NativeMr, type NativePd } from './binding.js';

export class MemoryRegistry {
  private readonly memories = new Set<Buffer>();
  private readonly byPd = new Map<NativePd, Map<ArrayBufferLike, NativeMr>>();

  constructor(private readonly access: number) {}

  /** Page-aligned native memory of `bytes`, registered with every attached PD now and later. */
  allocate(bytes: number): Buffer {
    const buf = native().allocAligned(bytes);
    this.memories.add(buf);
    for (const [pd, mrs] of this.byPd) mrs.set(buf.buffer, new (native().MemoryRegion)(pd, buf, this.access));
    return buf;
  }

  /** Forgets a memory (its LUN was closed) and deregisters it everywhere. */
  release(buf: Buffer): void {
    if (!this.memories.delete(buf)) return;
    for (const mrs of this.byPd.values()) {
      mrs.get(buf.buffer)?.close();
      mrs.delete(buf.buffer);
    }
  }

  /** Registers every memory with `pd` (a device opened for the first time). */
  attach(pd: NativePd): void {
    if (this.byPd.has(pd)) return;
    const mrs = new Map<ArrayBufferLike, NativeMr>();
    this.byPd.set(pd, mrs);
    for (const buf of this.memories) mrs.set(buf.buffer, new (native().MemoryRegion)(pd, buf, this.access));
  }

  /** Stops tracking `pd` (its device is closing and closes the MRs with it). */
  detach(pd: NativePd): void {
    this.byPd.delete(pd);
  }

  /** The MR of `pd` that covers `view`, or undefined when the view is not registered memory. */
  lookup(pd: NativePd, view: Uint8Array): NativeMr | undefined {
    const mr = this.byPd.get(pd)?.get(view.buffer);
    if (!mr) return undefined;
    const start = view.byteOffset - mr.buffer.byteOffset;
    return start >= 0 && start + view.length <= mr.length ? mr : undefined;
  }

  /** The registered address of `view`'s first byte, for an MR that lookup() returned. */
  static address(mr: NativeMr, view: Uint8Array): number {
    return mr.address + (view.byteOffset - mr.buffer.byteOffset);
  }
}
