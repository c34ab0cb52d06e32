// A LUN on a block device. I/O is the file backstore's; the size comes from sysfs
// (/sys/class/block/<name>/size is in 512-byte sectors whatever the device's block size).

import { readFile, realpath } from 'node:fs/promises';
import { basename } from 'node:path';
import { FileBackstore } from './file.js';

export interface BlockDeviceGeometry {
  bytes: number;
  logicalBlockSize: number;
}

export async function blockDeviceGeometry(devPath: string, sysRoot = '/sys/class/block'): Promise<BlockDeviceGeometry> {
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

export class BlockBackstore {
  static async open(opts: { path: string; blockSize: number; readOnly?: boolean; sysRoot?: string }): Promise<FileBackstore> {
    const g = await blockDeviceGeometry(opts.path, opts.sysRoot);
    if (opts.blockSize % g.logicalBlockSize !== 0)
      throw new Error(`${opts.path}: blockSize ${opts.blockSize} is not a multiple of the device's logical block size ${g.logicalBlockSize}`);
    return FileBackstore.open({ path: opts.path, blockSize: opts.blockSize, size: g.bytes, readOnly: opts.readOnly ?? false });
  }
}
