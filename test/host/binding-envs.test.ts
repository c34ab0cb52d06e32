// The addon keeps its state per Node environment (main thread, each worker thread): a
// worker that loads it, uses it and ends must leave the main thread's binding working.
// No device is needed: argument checks go through the per-env class constructors, and the
// live-object counts are per env. The RDMA tier (test/rdma/envs.test.ts) repeats this with
// open verbs objects.
import { Worker } from 'node:worker_threads';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';
import { native } from '../../lib/verbs/binding.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

// Loads the addon in a worker, checks its argument errors there, reports, then stays alive
// until told to go (or is terminated).
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { createRequire } = require('node:module');
const n = createRequire(workerData.root + '/package.json')('node-gyp-build')(workerData.root);
let typeError = false;
try { new n.ProtectionDomain({}); } catch (e) { typeError = e instanceof TypeError; }
parentPort.postMessage({ typeError, live: n.liveObjects() });
parentPort.on('message', (m) => { if (m === 'exit') process.exit(0); });
`;

function startWorker(): Promise<{ worker: Worker; report: { typeError: boolean; live: Record<string, number> } }> {
  const worker = new Worker(WORKER, { eval: true, workerData: { root } });
  return new Promise((resolve, reject) => {
    worker.once('message', (report) => resolve({ worker, report }));
    worker.once('error', reject);
  });
}

function mainStillWorks(): void {
  const n = native();
  // Each check unwraps its argument against this env's constructors.
  expect(() => new n.ProtectionDomain({} as never)).toThrow(TypeError);
  expect(() => new n.CompletionQueue({} as never, 1, Buffer.alloc(32), () => {})).toThrow(TypeError);
  expect(() => new n.MemoryRegion({} as never, 4096, 0)).toThrow(TypeError);
  expect(() => new n.Context('no-such-device', () => {})).toThrow(expect.objectContaining({ code: 'ENODEV' }));
  expect(Object.values(n.liveObjects()).every((v) => v === 0)).toBe(true);
  expect(n.allocAligned(4096).length).toBe(4096);
}

test('a worker thread loads the addon beside the main thread and ends without disturbing it', async () => {
  mainStillWorks();
  const a = await startWorker();
  const b = await startWorker();
  expect(a.report.typeError).toBe(true);
  expect(b.report.typeError).toBe(true);
  expect(a.report.live.contexts).toBe(0);
  mainStillWorks();
  // One ends by itself, one is terminated: both run the env's cleanup.
  const exited = new Promise((resolve) => a.worker.once('exit', resolve));
  a.worker.postMessage('exit');
  expect(await exited).toBe(0);
  mainStillWorks();
  await b.worker.terminate();
  mainStillWorks();
  // And a new worker after both ended still gets a working binding of its own.
  const c = await startWorker();
  expect(c.report.typeError).toBe(true);
  await c.worker.terminate();
  mainStillWorks();
});
