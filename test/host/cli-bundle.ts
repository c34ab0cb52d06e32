// The daemon's CLI bundled with esbuild straight from lib/ (no dist/ build needed), for the
// host tests that start it as a process: one bundle directory per test file and process.

import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface CliBundle {
  /** The bundled lib/cli/main.ts, to run with process.execPath. */
  readonly cli: string;
  build(): Promise<void>;
  remove(): void;
}

export function cliBundle(name: string): CliBundle {
  const dir = join(repoRoot, '.cache', `${name}-${process.pid}`);
  const cli = join(dir, 'main.mjs');
  return {
    cli,
    async build() {
      mkdirSync(dir, { recursive: true });
      await build({
        entryPoints: [join(repoRoot, 'lib', 'cli', 'main.ts')],
        bundle: true,
        platform: 'node',
        format: 'esm',
        target: 'node20',
        packages: 'external',
        outfile: cli,
        logLevel: 'error',
      });
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
