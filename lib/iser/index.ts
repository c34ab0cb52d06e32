// iSCSI Extensions for RDMA (RFC 7145): the iSCSI transport over RDMA/CM and verbs.
export * from './header.js';
export * from './connection.js';
export * from './listener.js';
