// LBA range locks: a writer holds [lba, lba+blocks) while it reads-modifies-writes or moves
// Data-Out into the LU, so COMPARE AND WRITE is atomic against every other write to its
// range (SBC-3 5.2) and overlapping writes land whole, one after the other.

interface Held {
  lba: number;
  end: number;
  done: Promise<void>;
}

export class RangeLocks {
  private held: Held[] = [];

  /** Waits until no holder overlaps the range, takes it, and returns its release. */
  async lock(lba: number, blocks: number): Promise<() => void> {
    const end = lba + blocks;
    for (;;) {
      const c = this.held.find((l) => l.lba < end && lba < l.end);
      if (!c) break;
      await c.done;
    }
    let release!: () => void;
    const l: Held = { lba, end, done: new Promise<void>((r) => (release = r)) };
    this.held.push(l);
    return () => {
      const i = this.held.indexOf(l);
      if (i >= 0) this.held.splice(i, 1);
      release();
    };
  }
}
