#!/usr/bin/env node
// Markdown tables from the RECORD lines of one or more runs of scripts/bench/cpu-split-guest.sh
// with TRACE=1 (the VM's console log): per target and queue depth, the median over the runs
// and its range, of the untraced window (IOPS, the scheduler's CPU per I/O) and of the traced
// one (on-CPU time split into user space, each system call and interrupts).
//   node scripts/bench/cpu-account-table.mjs LOG [--min 2]
// A window's name is "TARGET qdN"; every run of the script contributes one window per name.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: o, positionals } = parseArgs({ allowPositionals: true, options: { min: { type: 'string', default: '2' } } });
const recs = [];
for (const line of readFileSync(positionals[0], 'utf8').split('\n')) {
  const i = line.indexOf('RECORD {');
  if (i >= 0) recs.push(JSON.parse(line.slice(i + 7)));
}
const names = [...new Set(recs.map((r) => r.name))];
const of = (kind, name) => recs.filter((r) => r.kind === kind && r.name === name);
const med = (xs) => {
  const s = xs.filter((x) => x != null && Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return null;
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmt = (x, d = 0) => (x == null ? '—' : x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));
const cell = (xs, d = 0) => {
  const v = xs.filter((x) => x != null);
  if (!v.length) return '—';
  if (v.length === 1) return fmt(v[0], d);
  return `${fmt(med(v), d)} (${fmt(Math.min(...v), d)}–${fmt(Math.max(...v), d)})`;
};
const L = [];
const short = (n) => n.replace(/\(main poll=-\)/, '');
L.push(
  `| window | runs | IOPS untraced | CPU µs/IO untraced | IOPS traced | on-CPU µs/IO traced | user | system calls | interrupts | system calls /IO | main thread wake-ups /IO |`,
);
L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const n of names) {
  const w = of('window', n);
  const t = of('trace', n);
  if (!t.length) continue;
  const main = t.map((r) => r.threads[0]);
  L.push(
    `| ${short(n)} | ${t.length} | ${cell(w.map((r) => r.iops))} | ${cell(w.map((r) => r.cpu_us_per_io))} | ${cell(t.map((r) => r.ios / r.window_s))} | ${cell(t.map((r) => r.cpu_us_per_io))} | ${cell(t.map((r) => r.user_us_per_io))} | ${cell(t.map((r) => r.syscall_us_per_io))} | ${cell(t.map((r) => r.interrupt_us_per_io))} | ${cell(
      t.map((r) => r.syscalls_per_io),
      2,
    )} | ${cell(
      main.map((m) => m?.wakeups_per_io),
      2,
    )} |`,
  );
}
// Places: rows by the largest median, columns by window.
const cols = names.filter((n) => of('trace', n).length);
const placeMed = (n, place, key) => med(of('trace', n).map((r) => r.places.find((p) => p.place === place)?.[key] ?? (key === 'us_per_io' ? 0 : null)));
const places = [...new Set(cols.flatMap((n) => of('trace', n).flatMap((r) => r.places.map((p) => p.place))))]
  .map((p) => ({ p, top: Math.max(...cols.map((n) => placeMed(n, p, 'us_per_io') ?? 0)) }))
  .filter((x) => x.top >= Number(o.min))
  .sort((a, b) => b.top - a.top);
L.push('');
L.push(`| where (µs/IO, median; calls/IO) | ${cols.map(short).join(' | ')} |`);
L.push(`|---|${cols.map(() => '---:').join('|')}|`);
for (const { p } of places) {
  L.push(
    `| ${p} | ${cols
      .map((n) => {
        const us = placeMed(n, p, 'us_per_io');
        const c = placeMed(n, p, 'calls_per_io');
        return `${fmt(us, 1)}${c != null ? ` (${fmt(c, 2)})` : ''}`;
      })
      .join(' | ')} |`,
  );
}
const callsBefore = [...new Set(cols.flatMap((n) => of('trace', n).flatMap((r) => r.user_before.map((b) => b.call))))]
  .map((c) => ({ c, top: Math.max(...cols.map((n) => med(of('trace', n).map((r) => r.user_before.find((b) => b.call === c)?.us_per_io ?? 0)))) }))
  .filter((x) => x.top >= Number(o.min))
  .sort((a, b) => b.top - a.top);
L.push('');
L.push(`| user time, by the system call that ended it (µs/IO, median) | ${cols.map(short).join(' | ')} |`);
L.push(`|---|${cols.map(() => '---:').join('|')}|`);
for (const { c } of callsBefore)
  L.push(`| ${c} | ${cols.map((n) => fmt(med(of('trace', n).map((r) => r.user_before.find((b) => b.call === c)?.us_per_io ?? 0)), 1)).join(' | ')} |`);
L.push('');
L.push(`| threads (on-CPU µs/IO, median) | ${cols.map(short).join(' | ')} |`);
L.push(`|---|${cols.map(() => '---:').join('|')}|`);
const mainRow = cols.map((n) => fmt(med(of('trace', n).map((r) => r.threads[0]?.cpu_us_per_io)), 1));
const restRow = cols.map((n) => fmt(med(of('trace', n).map((r) => r.threads.slice(1).reduce((a, t) => a + t.cpu_us_per_io, 0))), 1));
const restN = cols.map((n) => fmt(med(of('trace', n).map((r) => r.threads.slice(1).filter((t) => t.cpu_us_per_io >= 1).length))));
L.push(`| busiest thread | ${mainRow.join(' | ')} |`);
L.push(`| all other threads | ${restRow.join(' | ')} |`);
L.push(`| other threads using ≥ 1 µs/IO | ${restN.join(' | ')} |`);
console.log(L.join('\n'));
