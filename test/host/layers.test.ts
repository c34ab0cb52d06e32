// Data flows transport → fabric → SCSI core → backstore, and nothing lower imports anything
// higher. This test holds every import in lib/ against the layer table below, as the
// native-sources test holds binding.gyp against CMakeLists.txt.
//
// The imports come from the compiler itself (`tsc --explainFiles` names, for every file of
// the program, each import that brought it in): static `import … from`, `import type`,
// `export … from`, `import('…')` calls and `import('…').T` type queries alike, resolved to
// files exactly as the build resolves them, with comments and strings never mistaken for one.
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';

/**
 * The layer table: each folder of lib/ and what its files may import besides their own
 * folder. An entry is a folder of lib/ or one file in it. Packages and Node's modules are
 * not layers; an import of anything else outside lib/ breaks the table too.
 */
const MAY_IMPORT: Record<string, readonly string[]> = {
  // Shared helpers (byte readers, the logger type): the bottom, imports nothing of lib/.
  common: [],
  // The binding's TypeScript face: knows no protocol.
  verbs: ['common'],
  // Blocks by LBA, nothing of SCSI; the binding only for the system calls Node lacks
  // (hole punching, SEEK_DATA, block ioctls), loaded lazily by backstore/native.ts.
  backstore: ['common', 'verbs/sys.ts'],
  // The fabric-agnostic SCSI core on its backstores.
  scsi: ['common', 'backstore'],
  // The iSCSI fabric: talks to its transports through its own interface, to the core through ScsiCore.
  iscsi: ['common', 'scsi'],
  // The two iSCSI transports.
  transport: ['common', 'verbs', 'scsi', 'iscsi'],
  iser: ['common', 'verbs', 'scsi', 'iscsi'],
  // SRP is a fabric of its own: it shares nothing with iSCSI beyond lib/scsi and lib/verbs.
  srp: ['common', 'verbs', 'scsi'],
  // The daemon wires everything below it together.
  target: ['common', 'verbs', 'backstore', 'scsi', 'iscsi', 'transport', 'iser', 'srp'],
  // The command: the daemon and anything below it.
  cli: ['common', 'verbs', 'backstore', 'scsi', 'iscsi', 'transport', 'iser', 'srp', 'target'],
  // Benchmark code, on its way out of lib/ (it belongs with scripts/bench); until it has
  // moved it may import what it imports today, and nothing may import it.
  bench: ['verbs'],
};

function libFiles(dir = 'lib'): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? libFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Every import edge of lib/ as the compiler resolved it: importer, specifier, imported file. */
function importsOfLib(): { files: Set<string>; edges: Array<{ from: string; spec: string; to: string }> } {
  const out = execFileSync(join('node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json', '--noEmit', '--noCheck', '--explainFiles'], { encoding: 'utf8' });
  const files = new Set<string>();
  const edges: Array<{ from: string; spec: string; to: string }> = [];
  let current = '';
  for (const line of out.split('\n')) {
    if (line && !/^\s/.test(line)) {
      current = line.trim();
      files.add(current);
      continue;
    }
    const m = /^\s+Imported via (['"])(.*?)\1 from file '(.*?)'/.exec(line);
    if (m && m[3]!.startsWith('lib/')) edges.push({ from: m[3]!, spec: m[2]!, to: current });
  }
  return { files, edges };
}

/** The layer a file of lib/ belongs to, and its path inside lib/; undefined outside lib/. */
function place(file: string): { layer: string; rest: string } | undefined {
  const m = /^lib\/([^/]+)\/(.+)$/.exec(file);
  return m ? { layer: m[1]!, rest: m[2]! } : undefined;
}

const isPackage = (file: string): boolean => file.startsWith('node_modules/');

function allowed(from: string, to: string): boolean {
  if (isPackage(to)) return true;
  const a = place(from);
  const b = place(to);
  if (!a || !b) return false;
  if (a.layer === b.layer) return true;
  return (MAY_IMPORT[a.layer] ?? []).some((e) => e === b.layer || e === `${b.layer}/${b.rest}`);
}

test('every import in lib/ follows the layer table', () => {
  const { files, edges } = importsOfLib();
  const onDisk = libFiles();
  // The compiler saw every file of lib/ (nothing checked vacuously) and found imports.
  expect(onDisk.filter((f) => !files.has(f))).toEqual([]);
  expect(edges.length).toBeGreaterThan(onDisk.length);

  const unknown = onDisk.map((f) => place(f)?.layer ?? f).filter((l) => !(l in MAY_IMPORT));
  expect([...new Set(unknown)], 'folders of lib/ that the layer table does not place').toEqual([]);

  const broken = edges
    .filter((e) => !allowed(e.from, e.to))
    .map((e) => {
      const layer = place(e.from)!.layer;
      return `${e.from} imports '${e.spec}' (${e.to}): lib/${layer} may import only ${(MAY_IMPORT[layer] ?? []).join(', ') || 'nothing of lib/'}`;
    });
  expect(broken, 'imports that break the layer table').toEqual([]);
});
