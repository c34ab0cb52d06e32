// Makes a fresh clone runnable: npm dependencies, the native addon, the compiled
// TypeScript. Idempotent and quiet when there is nothing to do; used by `npm start`
// and by scripts/test.sh.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`bootstrap: \`${cmd} ${args.join(' ')}\` failed (exit ${r.status})`);
    process.exit(r.status ?? 1);
  }
};

function newestMtime(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

const lock = join(root, 'node_modules', '.package-lock.json');
if (!existsSync(lock) || statSync(lock).mtimeMs < statSync(join(root, 'package.json')).mtimeMs) {
  run('npm', [existsSync(join(root, 'package-lock.json')) ? 'ci' : 'install', '--no-audit', '--no-fund']);
}
// The addon: rebuilt when a native source is newer than it. A machine without rdma-core
// headers gets a warning and runs everything that needs no RDMA.
const release = join(root, 'build', 'Release');
const addon = existsSync(release) ? readdirSync(release).find((f) => f.endsWith('.node')) : undefined;
if (existsSync(join(root, 'native')) && existsSync(join(root, 'binding.gyp'))) {
  const sources = Math.max(newestMtime(join(root, 'native')), statSync(join(root, 'binding.gyp')).mtimeMs);
  if (!addon || statSync(join(release, addon)).mtimeMs < sources) {
    // Through npm, which hands node-gyp the machine's npm config (nodedir: no header
    // download); node-gyp-build would load a stale addon rather than rebuild it.
    const r = spawnSync('npm', ['run', '--silent', 'build:native'], { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) {
      console.warn(
        'bootstrap: the RDMA addon did not build (rdma-core headers: apt-get install libibverbs-dev ' +
          'librdmacm-dev); everything that needs no RDMA still runs',
      );
    }
  }
}

const stamp = join(root, 'dist', '.built');
if (!existsSync(stamp) || statSync(stamp).mtimeMs < newestMtime(join(root, 'lib'))) {
  run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json']);
  run('touch', [stamp]);
}
