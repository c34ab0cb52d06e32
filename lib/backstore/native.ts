// The few system calls Node lacks that the file and block backstores use — hole punching
// (fallocate PUNCH_HOLE), SEEK_DATA/SEEK_HOLE, the block device ioctls — come from the
// binding's lib/verbs/sys.ts. It is imported lazily, on the first call that needs it, so a
// RAM-only or file-only target never loads the addon; where it cannot load, callers fall
// back (UNMAP writes zeroes, GET LBA STATUS reports mapped, sizes come from sysfs).

export interface BackstoreSys {
  /** fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE); throws with `code` (EOPNOTSUPP where the file system cannot). */
  punchHole(fd: number, offset: number, length: number): void;
  /** lseek(SEEK_DATA): the next data at or after `offset`, -1 past the last data. */
  seekData(fd: number, offset: number): number;
  /** lseek(SEEK_HOLE): the next hole at or after `offset` (EOF counts as one). */
  seekHole(fd: number, offset: number): number;
  /** BLKGETSIZE64 and BLKSSZGET. */
  blockDeviceInfo(fd: number): { sizeBytes: number; logicalBlockSize: number };
}

let override: BackstoreSys | undefined | null = null;
let loaded: Promise<BackstoreSys | undefined> | undefined;

/** The helpers, or undefined where the addon is unavailable. */
export function backstoreSys(): Promise<BackstoreSys | undefined> {
  if (override !== null) return Promise.resolve(override);
  loaded ??= import('../verbs/sys.js').then(
    (m) => m.sys(),
    () => undefined,
  );
  return loaded;
}

/**
 * Replaces the helpers (tests, or a host that provides its own): `undefined` forces the
 * fallbacks, `null` returns to the binding's.
 */
export function setBackstoreSys(s: BackstoreSys | undefined | null): void {
  override = s;
}
