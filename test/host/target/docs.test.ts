// docs/config.md must stay true: every JSON block in it is a valid configuration, and the
// one it calls the embedded default is the embedded default.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultConfigJson, validateConfig } from '../../../lib/target/config.js';

const doc = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'docs', 'config.md'), 'utf8');
const blocks = [...doc.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]!);
const pin = { defaults: { stateDir: '/x', controlSocket: '/x.sock' } };

describe('docs/config.md', () => {
  it('has JSON examples, all valid', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(2);
    for (const b of blocks) expect(validateConfig(JSON.parse(b), pin).errors).toEqual([]);
  });

  it('shows the embedded default as it is', () => {
    const i = doc.indexOf('## The embedded default');
    const shown = blocks.find((b) => doc.indexOf(b) > i)!;
    expect(validateConfig(JSON.parse(shown), pin).config).toEqual(validateConfig(defaultConfigJson(), pin).config);
  });
});
