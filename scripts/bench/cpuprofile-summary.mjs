// Summarises a V8 .cpuprofile (node --cpu-prof): self time by file and by function.
//   node scripts/bench/cpuprofile-summary.mjs DIR [TOP]
import { readFileSync, readdirSync } from 'node:fs';

const dir = process.argv[2];
const topN = Number(process.argv[3] ?? 30);
const file = readdirSync(dir).find((x) => x.endsWith('.cpuprofile'));
if (!file) throw new Error(`no .cpuprofile in ${dir}`);
const p = JSON.parse(readFileSync(`${dir}/${file}`, 'utf8'));
const nodes = new Map(p.nodes.map((n) => [n.id, n]));
const perNode = new Map();
let total = 0;
for (let i = 0; i < p.samples.length; i++) {
  const dt = p.timeDeltas[i] ?? 0;
  perNode.set(p.samples[i], (perNode.get(p.samples[i]) ?? 0) + dt);
  total += dt;
}
const byFunction = new Map();
const byFile = new Map();
const short = (url) => url.split('/').slice(-2).join('/');
for (const [id, t] of perNode) {
  const cf = nodes.get(id).callFrame;
  const fn = `${cf.functionName || '(anonymous)'} ${short(cf.url)}:${cf.lineNumber + 1}`;
  byFunction.set(fn, (byFunction.get(fn) ?? 0) + t);
  const f = cf.url ? short(cf.url) : cf.functionName;
  byFile.set(f, (byFile.get(f) ?? 0) + t);
}
const top = (m) => [...m].sort((a, b) => b[1] - a[1]).slice(0, topN)
  .map(([k, t]) => `${((100 * t) / total).toFixed(1).padStart(5)}%  ${k}`).join('\n');
console.log(`PROFILE ${(total / 1e6).toFixed(1)} s sampled (self time; "(idle)" is the event loop waiting)`);
console.log(`--- by file ---\n${top(byFile)}`);
console.log(`--- by function ---\n${top(byFunction)}`);
