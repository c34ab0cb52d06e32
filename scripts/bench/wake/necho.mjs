// Echo server in Node: one event-loop wake-up per round trip.
import { createServer } from 'node:net';
import { unlinkSync } from 'node:fs';
try {
  unlinkSync(process.argv[2]);
} catch {}
createServer((s) => {
  s.on('data', (d) => s.write(d));
  s.on('error', () => {});
}).listen(process.argv[2]);
