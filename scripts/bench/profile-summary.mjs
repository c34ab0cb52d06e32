#!/usr/bin/env node
// Self time of a V8 .cpuprofile (node --cpu-prof), by function and by file:
//
//   node scripts/bench/profile-summary.mjs --cpuprofile FILE|DIR [--top N]
//
// e.g. of scripts/bench/engine-cmd.mjs run under node --cpu-prof --cpu-prof-dir=DIR (a DIR: its
// first .cpuprofile). Shares are of the busy time, the samples that were not "(idle)" (the event
// loop waiting). Prints one JSON record ({"type":"cpuprofile",...}) on stdout and the tables on
// stderr. cpuprofileSelf (self time by function over a window) is also used by
// scripts/bench/ftrace-account.mjs.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function args() {
  const a = process.argv.slice(2);
  const o = { top: 12 };
  for (let i = 0; i < a.length; i++) {
    const v = a[i + 1];
    switch (a[i]) {
      case '--cpuprofile':
        o.cpuprofile = v;
        i++;
        break;
      case '--top':
        o.top = Number(v);
        i++;
        break;
      default:
        throw new Error(`profile-summary: unknown argument ${a[i]} (see the header of scripts/bench/profile-summary.mjs)`);
    }
  }
  return o;
}

// ------------------------------------------------------------------ .cpuprofile

/** Self time by function of a V8 .cpuprofile, in µs, between two CLOCK_MONOTONIC µs (or all). */
export function cpuprofileSelf(p, fromUs, toUs) {
  const nodes = new Map(p.nodes.map((n) => [n.id, n]));
  const perNode = new Map();
  let t = p.startTime;
  let inWindow = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    if (fromUs != null && (t < fromUs || t > toUs)) continue;
    perNode.set(p.samples[i], (perNode.get(p.samples[i]) ?? 0) + dt);
    inWindow += dt;
  }
  const byFunction = new Map();
  const short = (url) => url.split('/').slice(-2).join('/');
  for (const [id, us] of perNode) {
    const cf = nodes.get(id).callFrame;
    const key = cf.url ? `${cf.functionName || '(anonymous)'} ${short(cf.url)}:${cf.lineNumber + 1}` : cf.functionName || '(anonymous)';
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
  }
  return { total_us: inWindow, byFunction };
}

// ------------------------------------------------------------------ main

function summarise(o) {
  let file = o.cpuprofile;
  if (statSync(file).isDirectory()) {
    const f = readdirSync(file).find((x) => x.endsWith('.cpuprofile'));
    if (!f) throw new Error(`no .cpuprofile in ${file}`);
    file = join(file, f);
  }
  const self = cpuprofileSelf(JSON.parse(readFileSync(file, 'utf8')), null, null);
  const all = [...self.byFunction].sort((a, b) => b[1] - a[1]);
  const busy = all.filter(([k]) => k !== '(idle)').reduce((a, [, us]) => a + us, 0);
  const pct = (x) => (busy > 0 ? +((100 * x) / busy).toFixed(1) : null);
  const byFile = new Map();
  for (const [k, v] of all) {
    if (k === '(idle)') continue;
    const f = / (\S+):\d+$/.exec(k)?.[1] ?? k;
    byFile.set(f, (byFile.get(f) ?? 0) + v);
  }
  const rows = (pairs) => pairs.slice(0, o.top).map(([name, us]) => ({ name, self_us: us, pct_of_busy: pct(us) }));
  return {
    type: 'cpuprofile',
    file,
    window_us: self.total_us,
    busy_us: busy,
    top: rows(all.filter(([k]) => k !== '(idle)')),
    top_files: rows([...byFile].sort((a, b) => b[1] - a[1])),
  };
}

function print(rec) {
  const L = [`cpuprofile: ${(rec.window_us / 1e6).toFixed(1)} s sampled (self time; "(idle)" is the event loop waiting)`];
  const tab = (title, rows) => {
    if (!rows.length) return;
    L.push(`  ${title}`);
    for (const r of rows) L.push(`    ${String(r.pct_of_busy != null ? `${r.pct_of_busy}%` : '?').padStart(8)}  ${r.name}`);
  };
  tab('cpuprofile by function (self, % of busy)', rec.top);
  tab('cpuprofile by file (self, % of busy)', rec.top_files);
  console.error(L.join('\n'));
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const o = args();
  if (!o.cpuprofile) throw new Error('profile-summary: --cpuprofile FILE|DIR');
  const rec = summarise(o);
  process.stdout.write(`${JSON.stringify(rec)}\n`);
  print(rec);
}
