// SRP as its own fabric (docs/architecture.md, lib/srp): IU codec, login over RDMA/CM, channels, the target port.
export * from './iu.js';
export * from './login.js';
export * from './channel.js';
export * from './target.js';
export * from './listener.js';
