// Memory that every protection domain registers: the RAM LUNs (docs/architecture.md, memory model),
// so Data-In is an RDMA WRITE straight from the LUN and Data-Out an RDMA READ straight into
// it. Memories are allocated natively (page-aligned, never from Node's Buffer pool) and
// registered once per PD, when the PD is attached or when the memory is added, whichever
// comes later. A lookup by view allocates nothing.
//
// Transient memories (the SCSI layer's bounce-buffer slab for file and block LUNs) are
// reused as soon as a fabric's data promise resolves, so an RDMA WRITE from them must have
// completed by then; a LUN's own memory needs only to be posted (the response SEND that
// follows on the same QP is ordered after it).
import { native, type NativeMr, type NativePd } from './binding.js';

export class MemoryRegistry {
  private readonly memories = new Set<Buffer>();
  private readonly transients = new Set<ArrayBufferLike>();
  private readonly byPd = new Map<NativePd, Map<ArrayBufferLike, NativeMr>>();

  constructor(private readonly access: number) {}

  /** Page-aligned native memory of `bytes`, registered with every attached PD now and later. */
  allocate(bytes: number, opts: { transient?: boolean } = {}): Buffer {
    const buf = native().allocAligned(bytes);
    this.memories.add(buf);
    if (opts.transient) this.transients.add(buf.buffer);
    for (const [pd, mrs] of this.byPd) mrs.set(buf.buffer, new (native().MemoryRegion)(pd, buf, this.access));
    return buf;
  }

  /** Forgets a memory (its LUN was closed) and deregisters it everywhere. */
  release(buf: Buffer): void {
    if (!this.memories.delete(buf)) return;
    this.transients.delete(buf.buffer);
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

  /** MRs this registry holds on `pd` (status: nothing may be left on a removed device). */
  mrCount(pd: NativePd): number {
    return this.byPd.get(pd)?.size ?? 0;
  }

  /** Bytes registered, summed over every attached PD (status counter rdmaRegisteredBytes). */
  registeredBytes(): number {
    let n = 0;
    for (const mrs of this.byPd.values()) for (const mr of mrs.values()) n += mr.length;
    return n;
  }

  /**
   * Bytes fabrics asked about that were not in registered memory: each such view moves
   * through a bounce slot with a copy (the status counter rdmaBounceBytes).
   */
  bounceBytes = 0;

  /** The MR of `pd` that covers `view`, or undefined when the view is not registered memory (the caller copies). */
  lookup(pd: NativePd, view: Uint8Array): NativeMr | undefined {
    const mr = this.byPd.get(pd)?.get(view.buffer);
    const start = mr ? view.byteOffset - mr.buffer.byteOffset : -1;
    if (mr && start >= 0 && start + view.length <= mr.length) return mr;
    this.bounceBytes += view.length;
    return undefined;
  }

  /** Whether `view` lies in transient memory (see above): RDMA WRITEs from it must complete before its promise resolves. */
  isTransient(view: Uint8Array): boolean {
    return this.transients.has(view.buffer);
  }

  /** The registered address of `view`'s first byte, for an MR that lookup() returned. */
  static address(mr: NativeMr, view: Uint8Array): number {
    return mr.address + (view.byteOffset - mr.buffer.byteOffset);
  }
}
