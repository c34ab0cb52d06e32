// The typed face of the RDMA binding (docs/architecture.md, lib/verbs). Knows no iSCSI or SRP.
export * from './binding.js';
export * from './wr.js';
export * from './pool.js';
export * from './dispatch.js';
export * from './cm.js';
export * from './device.js';
export * from './registry.js';
export * from './fabric.js';
export * from './channel.js';
export { sys } from './sys.js';
