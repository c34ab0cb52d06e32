// The daemon's configuration: one JSON file, modelled on LIO's /etc/target/saveconfig.json
// (targets → TPGs → portals, LUNs, node ACLs; shared storage objects) but camelCased and
// validated up front, so that a bad file fails with every problem named by its field path
// instead of half-starting a target. The parts, by concern, are in ./config/:
//   types.ts     the resolved model validateConfig() returns
//   defaults.ts  every default, and the embedded default config
//   schema.ts    the file's JSON Schema (published as schema/config.schema.json)
//   validate.ts  ajv against the schema, then the sections' cross-field checks
//   common.ts    what both fabrics share: backstores, CHAP, LUN lists, mapped LUNs
//   iscsi.ts     targets, TPGs, portals, ACLs, login parameters
//   srp.ts       the SRP target port
//   document.ts  the inverse of validation: the file that gives a model back (save)
//   edits.ts     --listen, RDMA portals for the default, backstore look-up
//   values.ts    sizes, names, addresses, how a bad value is shown

export type * from './config/types.js';
export * from './config/defaults.js';
export { configSchema, publishedSchema, type ConfigDocument } from './config/schema.js';
export { validateConfig, parseConfig, parseJsonText } from './config/validate.js';
export { ISCSI_KEYS } from './config/iscsi.js';
export { addRdmaPortals, filePortals, overrideListen, resolveBackstore } from './config/edits.js';
export { configDocument } from './config/document.js';
export { describe, fmtAddr, iscsiNameProblem, isLoopback, parseSize, srpInitiatorName } from './config/values.js';
