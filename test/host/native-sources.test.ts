// binding.gyp is the build of record (node-gyp-build, prebuildify); CMakeLists.txt serves
// cmake-js development builds. They must compile the same files, and every .cc in native/.
import { readFileSync, readdirSync } from 'node:fs';
import { expect, test } from 'vitest';

test('binding.gyp and CMakeLists.txt list the same native sources, all of native/*.cc', () => {
  const gyp = JSON.parse(readFileSync('binding.gyp', 'utf8')) as { targets: { sources: string[] }[] };
  const fromGyp = [...gyp.targets[0].sources].sort();
  const cmake = readFileSync('CMakeLists.txt', 'utf8');
  const block = /set\(RDMA_TARGET_SOURCES([\s\S]*?)\)/.exec(cmake)?.[1] ?? '';
  const fromCmake = block.split(/\s+/).filter(Boolean).sort();
  const onDisk = readdirSync('native')
    .filter((f) => f.endsWith('.cc'))
    .map((f) => `native/${f}`)
    .sort();
  expect(fromCmake).toEqual(fromGyp);
  expect(fromGyp).toEqual(onDisk);
});
