// LBA range locks: a writer holds [lba, lba+blocks) while it reads-modifies-writes or moves
// Data-Out into the LU, so COMPARE AND WRITE is atomic against every other write to its
// range (SBC-3 5.2) and overlapping writes land whole, one after the other.
//
// Every WRITE takes one, so the uncontended case is synchronous (tryLock/unlock, no promise
// or closure); a holder's promise exists only once a writer waits for it.

export class Held {
  lba = 0;
  end = 0;
  private released = true;
  private donePromise: Promise<void> | undefined;
  private resolveDone: (() => void) | undefined;

  /** Makes a released holder (a new one, or one a task keeps for its writes) the holder of [lba, end). */
  arm(lba: number, end: number): this {
    if (!this.released) throw new Error(`range lock [${this.lba}, ${this.end}) armed again while held`);
    this.lba = lba;
    this.end = end;
    this.released = false;
    this.donePromise = undefined;
    this.resolveDone = undefined;
    return this;
  }

  /** Resolves when the holder releases the range. */
  get done(): Promise<void> {
    if (!this.donePromise) this.donePromise = this.released ? Promise.resolve() : new Promise<void>((r) => (this.resolveDone = r));
    return this.donePromise;
  }

  release(): void {
    this.released = true;
    this.resolveDone?.();
  }
}

export class RangeLocks {
  private held: Held[] = [];

  /**
   * Takes the range if no holder overlaps it; undefined if one does. Release with unlock().
   * `into`: a released holder to reuse (a task's own), so an uncontended WRITE allocates none.
   */
  tryLock(lba: number, blocks: number, into?: Held): Held | undefined {
    const end = lba + blocks;
    const held = this.held;
    for (let i = 0; i < held.length; i++) if (held[i].lba < end && lba < held[i].end) return undefined;
    const h = (into ?? new Held()).arm(lba, end);
    held.push(h);
    return h;
  }

  /** Waits until no holder overlaps the range and takes it. Release with unlock(). */
  async acquire(lba: number, blocks: number): Promise<Held> {
    const end = lba + blocks;
    for (;;) {
      const h = this.tryLock(lba, blocks);
      if (h) return h;
      await this.held.find((l) => l.lba < end && lba < l.end)!.done;
    }
  }

  unlock(h: Held): void {
    const held = this.held;
    const i = held.indexOf(h);
    // Swap-remove (the order of holders does not matter): splice() returns a fresh array.
    if (i >= 0) {
      const last = held.pop()!;
      if (i < held.length) held[i] = last;
    }
    h.release();
  }

  /** Waits until no holder overlaps the range, takes it, and returns its release. */
  async lock(lba: number, blocks: number): Promise<() => void> {
    const h = await this.acquire(lba, blocks);
    return () => this.unlock(h);
  }
}
