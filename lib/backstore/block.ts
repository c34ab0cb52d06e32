// A LUN on a block device. I/O is the file backstore's (pread/pwrite on the device fd);
// size and logical block size come from the device itself (BLKGETSIZE64/BLKSSZGET through
// ./native.ts) or, without the addon, from sysfs (/sys/class/block/<name>/size is in
// 512-byte sectors whatever the device's block size).

import { open, readFile, realpath } from 'node:fs/promises';
import { basename } from 'node:path';
import { FileBackstore } from './file.js';
import { backstoreSys } from './native.js';

export interface BlockDeviceGeometry {
  bytes: number;
  logicalBlockSize: number;
}

export async function sysfsGeometry(devPath: string, sysRoot = '/sys/class/block'): Promise<BlockDeviceGeometry> {
  const name = basename(await realpath(devPath));
  const sectors = Number((await readFile(`${sysRoot}/${name}/size`, 'utf8')).trim());
  // Partitions have no queue/ of their own; their parent's is the one that applies.
  let lbs: number;
  try {
    lbs = Number((await readFile(`${sysRoot}/${name}/queue/logical_block_size`, 'utf8')).trim());
  } catch {
    lbs = Number((await readFile(`${sysRoot}/${name}/../queue/logical_block_size`, 'utf8')).trim());
  }
  return { bytes: sectors * 512, logicalBlockSize: lbs };
}

/** The device's geometry: from its ioctls where the addon loads, else from sysfs. */
export async function blockDeviceGeometry(devPath: string, sysRoot?: string): Promise<BlockDeviceGeometry> {
  const s = await backstoreSys();
  if (s) {
    const fh = await open(devPath, 'r');
    try {
      const g = s.blockDeviceInfo(fh.fd);
      return { bytes: g.sizeBytes, logicalBlockSize: g.logicalBlockSize };
    } catch {
      // ENOTTY: not a block device (or an addon without the ioctls): sysfs decides.
    } finally {
      await fh.close();
    }
  }
  return sysfsGeometry(devPath, sysRoot);
}

export interface BlockBackstoreOptions {
  path: string;
  /** Logical block size to export; a multiple of the device's. Default: the device's own. */
  blockSize?: number;
  readOnly?: boolean;
  sysRoot?: string;
}

// A block device is served by FileBackstore; this class is the named way to open one.
// biome-ignore lint/complexity/noStaticOnlyClass: BlockBackstore.open() beside RamBackstore and FileBackstore.open()
export class BlockBackstore {
  static async open(opts: BlockBackstoreOptions): Promise<FileBackstore> {
    const g = await blockDeviceGeometry(opts.path, opts.sysRoot);
    const blockSize = opts.blockSize ?? g.logicalBlockSize;
    if (!(g.logicalBlockSize > 0) || blockSize % g.logicalBlockSize !== 0)
      throw new Error(`${opts.path}: blockSize ${blockSize} is not a multiple of the device's logical block size ${g.logicalBlockSize}`);
    return FileBackstore.open({ path: opts.path, blockSize, size: g.bytes, readOnly: opts.readOnly ?? false });
  }
}

/** Takes a grown device's new size (BLKGETSIZE64 or sysfs), e.g. after lvextend. */
export async function rescanBlockBackstore(b: FileBackstore, path: string, sysRoot?: string): Promise<void> {
  await b.rescan((await blockDeviceGeometry(path, sysRoot)).bytes);
}
