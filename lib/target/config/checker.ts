// The state the cross-field checks share: errors and warnings collected into lists (a bad
// file fails with every problem named by its field path, never only the first), and the
// paths the schema already refused, so a check never repeats or cascades from them.

import type { ValidateOptions } from './types.js';

export type Obj = Record<string, unknown>;

export class Checker {
  readonly errors: string[] = [];
  readonly warnings: string[] = [];
  constructor(
    readonly opts: ValidateOptions,
    private readonly refused: readonly string[] = [],
  ) {}

  err(path: string, msg: string): void {
    this.errors.push(path ? `${path}: ${msg}` : msg);
  }
  warn(path: string, msg: string): void {
    this.warnings.push(path ? `${path}: ${msg}` : msg);
  }

  /** The schema refused the field at `path` or something inside it. */
  bad(path: string): boolean {
    return this.refused.some((p) => p === path || p.startsWith(path + '.') || p.startsWith(path + '['));
  }
}

export function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

export function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** A boolean the schema has accepted; LIO's saveconfig writes 0/1, so files convert by renaming keys. */
export function bool(v: unknown, dflt: boolean): boolean {
  return v === undefined ? dflt : v === true || v === 1;
}
