// SRP as its own fabric (design.md: lib/srp): IU codec, login over RDMA/CM, channels, the target port.
export * from './iu.js';
export * from './login.js';
export * from './channel.js';
export * from './target.js';
export * from './listener.js';
