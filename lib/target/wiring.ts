// The real Engine: lib/backstore for storage, lib/scsi for logical units, lib/iscsi and
// lib/transport/tcp for the fabric. This file is the only place in lib/target that knows
// their concrete APIs, so a change there is adapted here and nowhere else.

import type { Engine } from './engine.js';

export function createEngine(): Engine {
  return {
    transports: new Set(),
    async openBackstore() {
      throw new Error('the backstore layer is not available in this build yet');
    },
    async build() {
      throw new Error('the SCSI core and iSCSI engine are not available in this build yet');
    },
  };
}
