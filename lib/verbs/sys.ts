// System helpers for the file and block backstores (native/sys.cc), or undefined where
// the addon cannot load — callers fall back (write zeroes, report everything mapped).
import { native, type Addon } from './binding.js';

export type Sys = Pick<Addon, 'punchHole' | 'seekData' | 'seekHole' | 'blockDeviceInfo'>;

export function sys(): Sys | undefined {
  try {
    return native();
  } catch {
    return undefined;
  }
}
