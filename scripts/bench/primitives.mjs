// What the building blocks of a wake-up cost in this Node: a call through N-API into the
// addon, a clock read, a typed-array view, an allocation, a microtask, a turn of the event
// loop. Run it on the host and inside the soft-RoCE VM (qemu TCG) to see how much more each
// costs there than the command path's own JS; the figures steer where per-I/O work goes.
//   npm run build && node scripts/bench/primitives.mjs [N]
//   bash scripts/vm/run.sh --timeout 300 -- node scripts/bench/primitives.mjs
// Wall time per operation, best of three passes of N (default 20000) after a warm-up. Not a
// test: nothing is asserted.
import { native } from '../../dist/verbs/binding.js';

const addon = native();
const N = Number(process.argv[2] ?? 20000);
const u8 = new Uint8Array(4096);
let sink = 0;

/** Best of three timed passes of `run` (N operations each); `run` may be async. */
async function best(run) {
  let min = Infinity;
  for (let pass = 0; pass < 3; pass++) {
    const t0 = process.hrtime.bigint();
    await run();
    min = Math.min(min, Number(process.hrtime.bigint() - t0) / N);
  }
  return min;
}

// Each case is its own loop (no shared, megamorphic call site), so the figure is the operation's.
const cases = {
  'loop iteration': () => {
    for (let i = 0; i < N; i++) sink += i;
  },
  'N-API call (wcStatusName)': () => {
    for (let i = 0; i < N; i++) sink += addon.wcStatusName(i & 3).length;
  },
  'Date.now()': () => {
    for (let i = 0; i < N; i++) sink += Date.now() & 1;
  },
  'subarray (a view)': () => {
    for (let i = 0; i < N; i++) sink += u8.subarray(i & 15, 64).length;
  },
  'new Uint8Array(64)': () => {
    for (let i = 0; i < N; i++) sink += new Uint8Array(64).length;
  },
  'object literal': () => {
    for (let i = 0; i < N; i++) {
      const o = { a: i, b: i + 1 };
      sink += o.b;
    }
  },
  'copy 2 KiB (set)': () => {
    for (let i = 0; i < N; i++) u8.set(u8.subarray(0, 2048), 2048);
  },
  'await (a microtask)': async () => {
    for (let i = 0; i < N; i++) await null;
  },
  'event-loop turn (setImmediate)': () =>
    new Promise((done) => {
      let n = 0;
      const step = () => (++n < N ? setImmediate(step) : done());
      setImmediate(step);
    }),
};
const rows = [];
for (const [name, run] of Object.entries(cases)) {
  await run(); // warm-up
  rows.push([name, await best(run)]);
}
console.log(`node ${process.version}, N=${N}, best of 3 passes`);
for (const [name, ns] of rows) console.log(`${name.padEnd(32)} ${ns.toFixed(0).padStart(8)} ns`);
if (sink === 0.5) console.log(sink);
