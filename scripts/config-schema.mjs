#!/usr/bin/env node
// Writes schema/config.schema.json from the schema that validation uses (lib/target/config/
// schema.ts, compiled into dist/ by `npm run build`), so that editors see exactly what the
// daemon checks. The host test test/host/target/schema.test.ts fails when the file is stale.
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { publishedSchema } = await import(join(root, 'dist/target/config.js'));
const out = join(root, 'schema/config.schema.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(publishedSchema(), null, 2) + '\n');
console.log(`wrote ${out}`);
