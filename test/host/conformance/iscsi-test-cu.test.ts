// libiscsi's iscsi-test-cu against the real daemon on 127.0.0.1 (scripts/conformance.sh
// does the work). The suite asserts a floor: every family listed in floor.json keeps at
// least its passed count and at most its failed count, so a regression anywhere in the
// stack fails here, and an improvement only needs floor.json raised. Each failing test is
// printed by name so the run's log says what to look at.

import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');

interface Floor {
  /** family → { minPassed, maxFailed } for the run on the LUN scripts/conformance.sh picks. */
  families: Record<string, { minPassed: number; maxFailed: number; note?: string }>;
  minTotalPassed: number;
}

function readTsv(path: string): string[][] {
  return readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split('\t'));
}

describe('conformance: iscsi-test-cu ALL families on 127.0.0.1', () => {
  it('keeps the floor', { timeout: 900_000 }, async () => {
    const out = mkdtempSync(join(tmpdir(), 'rt-conformance-'));
    const args = [join(root, 'scripts', 'conformance.sh'), '--out', out];
    if (process.env.CONFORMANCE_FAMILIES) args.push('--families', process.env.CONFORMANCE_FAMILIES);
    // In the background, not spawnSync: the run takes about 40 s, and a worker blocked for 60 s
    // fails the whole vitest run ("Timeout calling onTaskUpdate") on a loaded machine.
    const r = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const child = spawn('bash', args, { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), 880_000);
      child.on('close', (status) => {
        clearTimeout(timer);
        resolve({ status, stderr });
      });
    });
    const log = r.stderr;
    expect(r.status, `scripts/conformance.sh failed (exit ${r.status}):\n${log}`).toBe(0);

    const floor = JSON.parse(readFileSync(join(here, 'floor.json'), 'utf8')) as Floor;
    const summary = new Map(readTsv(join(out, 'summary.tsv')).map(([fam, p, f, s, x]) => [fam!, { p: +p!, f: +f!, s: +s!, x: +x! }]));
    const results = readTsv(join(out, 'results.tsv'));
    const failing = results
      .filter((row) => row[2] === 'F' || row[2] === 'X')
      .map(([fam, test, res]) => `${res === 'F' ? 'FAILED' : 'NO RESULT'} ALL.${fam}.${test}`);
    if (failing.length) console.log(`iscsi-test-cu: ${failing.length} failing tests (logs in ${out}):\n  ${failing.join('\n  ')}`);
    console.log(readFileSync(join(out, 'total.txt'), 'utf8').trim());

    const regressions: string[] = [];
    for (const [fam, want] of Object.entries(floor.families)) {
      if (process.env.CONFORMANCE_FAMILIES && !process.env.CONFORMANCE_FAMILIES.split(/\s+/).includes(fam)) continue;
      const got = summary.get(fam);
      if (!got) {
        regressions.push(`${fam}: did not run`);
        continue;
      }
      if (got.p < want.minPassed) regressions.push(`${fam}: ${got.p} passed, floor is ${want.minPassed}`);
      if (got.f + got.x > want.maxFailed) {
        const names = results.filter((row) => row[0] === fam && (row[2] === 'F' || row[2] === 'X')).map((row) => row[1]);
        regressions.push(`${fam}: ${got.f + got.x} failed (${names.join(', ')}), floor allows ${want.maxFailed}`);
      }
    }
    if (!process.env.CONFORMANCE_FAMILIES) {
      const total = [...summary.values()].reduce((n, v) => n + v.p, 0);
      if (total < floor.minTotalPassed) regressions.push(`total passed ${total} < floor ${floor.minTotalPassed}`);
    }
    expect(regressions, `below the conformance floor (logs in ${out})`).toEqual([]);
  });
});
