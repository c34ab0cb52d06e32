// npm's install hook: load a prebuild or compile the addon through node-gyp-build.
// A machine without rdma-core headers must still install, because everything that
// needs no RDMA (SCSI core, iSCSI/TCP) runs there; using RDMA later fails with an
// error that names what is missing (lib/verbs/binding.ts).
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
let bin;
try {
  bin = require.resolve('node-gyp-build/bin.js');
} catch {
  console.warn('rdma-target: node-gyp-build is not installed; skipping the native addon');
  process.exit(0);
}
const r = spawnSync(process.execPath, [bin], { stdio: 'inherit' });
if (r.status !== 0) {
  console.warn(
    'rdma-target: the RDMA addon was not built. iSCSI/TCP works without it; for iSER and SRP\n' +
      '  install rdma-core headers (Debian: apt-get install libibverbs-dev librdmacm-dev)\n' +
      '  and run `npm run build:native`.',
  );
}
