// A fake fabric for driving the core directly: Data-Out from a buffer, Data-In collected.

import { LogicalUnit } from '../../../lib/scsi/lu.js';
import { LunView } from '../../../lib/scsi/view.js';
import { RamBackstore } from '../../../lib/backstore/ram.js';
import type { Backstore } from '../../../lib/backstore/types.js';
import { DataDirection, TaskAttribute, type Nexus, type ScsiCompletion } from '../../../lib/scsi/types.js';
import { submitAsync } from './async-io.js';

export const nexusA: Nexus = {
  initiatorPort: 'iqn.2025-01.test:a,i,0x1',
  targetPort: 'iqn.2025-01.test:t,t,0x1',
  relativePortId: 1,
  transport: 0,
  transportId: new Uint8Array([0x05]),
};
export const nexusB: Nexus = {
  initiatorPort: 'iqn.2025-01.test:b,i,0x1',
  targetPort: 'iqn.2025-01.test:t,t,0x1',
  relativePortId: 1,
  transport: 0,
  transportId: new Uint8Array([0x05]),
};

export interface Result extends ScsiCompletion {
  data: Uint8Array;
}

let tag = 1;

export class Harness {
  readonly view: LunView;
  constructor(
    readonly lu: LogicalUnit,
    readOnly = false,
    luns: number[] = [0],
  ) {
    this.view = new LunView(luns.map((lun) => ({ lun, lu, readOnly })));
  }

  static ram(opts: { blockSize?: number; blockCount?: number; thin?: boolean; readOnly?: boolean } = {}): Harness {
    const b = new RamBackstore({
      blockSize: opts.blockSize ?? 512,
      blockCount: opts.blockCount ?? 2048,
      thin: opts.thin ?? false,
      readOnly: opts.readOnly ?? false,
    });
    return Harness.of(b, opts.thin);
  }

  static of(b: Backstore, thin = false): Harness {
    return new Harness(new LogicalUnit({ backstore: b, name: 'test-lu', serial: '0123456789abcdef0123456789abcdef', thin }));
  }

  /** Sends a command; clears the power-on UA first unless `keepUa`. */
  async cmd(cdb: number[] | Uint8Array, opts: { out?: Uint8Array; expected?: number; nexus?: Nexus; lun?: bigint } = {}): Promise<Result> {
    const c = cdb instanceof Uint8Array ? cdb : Uint8Array.from(cdb);
    const out = opts.out;
    const expected = opts.expected ?? out?.length ?? 65536;
    const collected = new Uint8Array(Math.max(expected, 0));
    let hi = 0;
    const io = {
      async dataOut(into: Uint8Array, offset: number) {
        if (!out) throw new Error('unexpected dataOut');
        into.set(out.subarray(offset, offset + into.length));
      },
      async dataIn(from: Uint8Array, offset: number) {
        collected.set(from, offset);
        hi = Math.max(hi, offset + from.length);
      },
    };
    const r = await submitAsync(
      this.view,
      {
        lun: opts.lun ?? 0n,
        cdb: c,
        tag: tag++,
        attribute: TaskAttribute.Simple,
        expectedLength: expected,
        direction: out ? DataDirection.Write : DataDirection.Read,
      },
      opts.nexus ?? nexusA,
      io,
    );
    return { ...r, data: collected.subarray(0, hi) };
  }

  /** Consumes the power-on unit attention for the nexus. */
  async ready(nexus: Nexus = nexusA): Promise<void> {
    await this.cmd([0, 0, 0, 0, 0, 0], { nexus });
  }
}

export function hex(b: Uint8Array | undefined): string {
  return b ? Buffer.from(b).toString('hex') : '';
}

export function cdb10(op: number, lba: number, blocks: number, flags = 0): number[] {
  return [op, flags, (lba >>> 24) & 0xff, (lba >>> 16) & 0xff, (lba >>> 8) & 0xff, lba & 0xff, 0, (blocks >> 8) & 0xff, blocks & 0xff, 0];
}

export function cdb16(op: number, lba: number, blocks: number, flags = 0): number[] {
  const c = new Array(16).fill(0);
  c[0] = op;
  c[1] = flags;
  const hi = Math.floor(lba / 0x100000000);
  const lo = lba >>> 0;
  [hi >>> 24, hi >>> 16, hi >>> 8, hi, lo >>> 24, lo >>> 16, lo >>> 8, lo].forEach((v, i) => (c[2 + i] = v & 0xff));
  [blocks >>> 24, blocks >>> 16, blocks >>> 8, blocks].forEach((v, i) => (c[10 + i] = v & 0xff));
  return c;
}
