// The tests' fabrics move data with async functions and await a completion; the core's
// contract is callbacks (lib/scsi/types.ts, ScsiCore.submit, FabricIO). These adapt one to
// the other, and nothing else: what the core does is what the tests see.

import type { FabricIO, Nexus, ScsiCommand, ScsiCompletion, ScsiCore } from '../../../lib/scsi/types.js';

/** A test fabric's data movement, as promises. */
export interface AsyncIo {
  dataOut(into: Uint8Array, offset: number): Promise<void>;
  dataIn(from: Uint8Array, offset: number): Promise<void>;
}

export function callbackIo(io: AsyncIo): FabricIO {
  return {
    dataOut(into, offset, done) {
      io.dataOut(into, offset).then(() => done(undefined), done);
    },
    dataIn(from, offset, done) {
      io.dataIn(from, offset).then(() => done(undefined), done);
    },
  };
}

/** submit() as a promise of the completion; rejects when the core reports a failure. */
export function submitAsync(core: ScsiCore, cmd: ScsiCommand, nexus: Nexus, io: AsyncIo): Promise<ScsiCompletion> {
  return new Promise<ScsiCompletion>((resolve, reject) => {
    core.submit(cmd, nexus, callbackIo(io), (status, transferred, sense, failure) => {
      if (failure) reject(failure);
      else resolve(sense ? { status, transferred, sense } : { status, transferred });
    });
  });
}
