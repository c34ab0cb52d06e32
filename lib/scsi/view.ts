// A LUN view: the LUN numbers one initiator (or a TPG in demo mode) sees, mapped to
// logical units. It is what a fabric submits to (ScsiCore). Commands to a LUN that is
// not in the view are answered here (SPC-4 4.6.6 / 6.6.2 / 6.39).

import type { LogicalUnit } from './lu.js';
import { Op } from './opcodes.js';
import { Asc, buildSense, SenseKey, type ScsiError } from './sense.js';
import { encodeLunList, PRODUCT, REVISION, reportLunsSelection, VENDOR } from './spc.js';
import { lookup } from './table.js';
import { u16, u32 } from '../common/bytes.js';
import { dataIn, directionLengths } from './task.js';
import {
  ScsiStatus,
  TmfFunction,
  TmfResponse,
  type FabricIO,
  type Nexus,
  type ScsiCommand,
  type ScsiCompletion,
  type ScsiCore,
  type ScsiDone,
} from './types.js';

export interface ViewEntry {
  lun: number;
  lu: LogicalUnit;
  readOnly: boolean;
}

/** Decodes the 8-byte LUN field (SAM-5 4.7): peripheral or flat space, single level; -1 if anything else. */
export function decodeLun(lun: bigint): number {
  if ((lun & 0xffffffffffffn) !== 0n) return -1;
  const top = Number(lun >> 48n);
  const method = top >> 14;
  if (method === 0) return top >> 8 === 0 ? top & 0xff : -1;
  if (method === 1) return top & 0x3fff;
  return -1;
}

export function encodeLun(lun: number): bigint {
  return BigInt(lun < 256 ? lun : 0x4000 | lun) << 48n;
}

export class LunView implements ScsiCore {
  private readonly byLun = new Map<number, ViewEntry>();
  readonly luns: readonly number[];

  constructor(entries: ReadonlyArray<ViewEntry>) {
    for (const e of entries) this.byLun.set(e.lun, e);
    this.luns = [...this.byLun.keys()].sort((a, b) => a - b);
  }

  /** The LUN field last seen and its entry: BigInt decoding per command costs, and commands mostly go to one LUN after another. */
  private lastLun: bigint | undefined;
  private lastEntry: ViewEntry | undefined;

  submit(cmd: ScsiCommand, nexus: Nexus, io: FabricIO, done: ScsiDone): void {
    let e: ViewEntry | undefined;
    if (cmd.lun === this.lastLun) e = this.lastEntry;
    else {
      e = this.byLun.get(decodeLun(cmd.lun));
      if (e) {
        this.lastLun = cmd.lun;
        this.lastEntry = e;
      }
    }
    if (e) return e.lu.execute(cmd, nexus, io, e.readOnly, this.luns, done);
    this.noSuchLun(cmd, io).then(
      (c) => done(c.status, c.transferred, c.sense, undefined),
      (err: Error) => done(0, 0, undefined, err),
    );
  }

  private async noSuchLun(cmd: ScsiCommand, io: FabricIO): Promise<ScsiCompletion> {
    const cdb = cmd.cdb;
    const send = async (b: Uint8Array, len: number): Promise<ScsiCompletion> => {
      const n = Math.min(len, directionLengths(cmd).inLength);
      if (n > 0) await dataIn(io, b.subarray(0, n), 0);
      return { status: ScsiStatus.Good, transferred: len };
    };
    const entry = lookup(cdb);
    // A CDB shorter than its operation code's length cannot be answered either.
    if (typeof entry === 'object' && cdb.length < entry.cdbLength)
      return {
        status: ScsiStatus.CheckCondition,
        sense: buildSense(false, SenseKey.IllegalRequest, Asc.InvalidFieldInCdb, { cdb: true, byte: 0, bit: 7 }),
        transferred: 0,
      };
    switch (cdb[0]) {
      case Op.Inquiry: {
        if ((cdb[1]! & 1) !== 0 || cdb[2] !== 0) break;
        const b = new Uint8Array(36);
        b[0] = 0x7f; // qualifier 011b: no LU here (SPC-4 6.6.2)
        b[2] = 0x06;
        b[3] = 0x12;
        b[4] = 31;
        for (const [o, s] of [
          [8, VENDOR],
          [16, PRODUCT],
          [32, REVISION],
        ] as const)
          for (let i = 0; i < s.length; i++) b[o + i] = s.charCodeAt(i);
        return send(b, Math.min(36, u16(cdb, 3)));
      }
      case Op.ReportLuns: {
        // Answered for any LUN, existing or not (SAM-5 5.14), with the same checks as on an LU.
        let luns: readonly number[];
        try {
          luns = reportLunsSelection(cdb, this.luns);
        } catch (e) {
          const err = e as ScsiError;
          return { status: ScsiStatus.CheckCondition, sense: buildSense(false, err.key, err.asc, err.field), transferred: 0 };
        }
        const alloc = u32(cdb, 6);
        if (alloc < 16)
          return {
            status: ScsiStatus.CheckCondition,
            sense: buildSense(false, SenseKey.IllegalRequest, Asc.InvalidFieldInCdb, { cdb: true, byte: 6 }),
            transferred: 0,
          };
        const b = new Uint8Array(8 + 8 * luns.length);
        return send(b, Math.min(encodeLunList(luns, b), alloc));
      }
      case Op.RequestSense: {
        const s = buildSense((cdb[1]! & 1) !== 0, SenseKey.IllegalRequest, Asc.LunNotSupported);
        return send(s, Math.min(s.length, cdb[4]!));
      }
    }
    return { status: ScsiStatus.CheckCondition, sense: buildSense(false, SenseKey.IllegalRequest, Asc.LunNotSupported), transferred: 0 };
  }

  async taskManagement(fn: TmfFunction, nexus: Nexus, lun: bigint, referencedTag?: number): Promise<TmfResponse> {
    if (fn === TmfFunction.TargetWarmReset || fn === TmfFunction.TargetColdReset) {
      // Every LU of the target resets, each once even if mapped under two LUN numbers.
      await Promise.all([...new Set([...this.byLun.values()].map((e) => e.lu))].map((lu) => lu.taskManagement(fn, nexus)));
      return TmfResponse.Complete;
    }
    const e = this.byLun.get(decodeLun(lun));
    if (!e) return TmfResponse.LunDoesNotExist;
    return e.lu.taskManagement(fn, nexus, referencedTag);
  }

  nexusLost(nexus: Nexus): void {
    for (const lu of new Set([...this.byLun.values()].map((e) => e.lu))) lu.nexusLost(nexus);
  }
}
