// The configuration file's JSON Schema: the one owner of what the file may hold. It is built
// here in TypeScript (TypeBox) rather than written as JSON because its parts come from tables
// and constants the code already owns (the iSCSI login keys, CHAP limits, defaults), and the
// file's TypeScript types are derived from it (Static). validateConfig() checks files against
// it with ajv; schema/config.schema.json is this object written out for editors (`$schema`),
// and a host test keeps the two equal (`node scripts/config-schema.mjs` rewrites the file).

import { Type, type Static } from '@sinclair/typebox';
import { AbsPath, backstoreSchema, Bool, chapProperties, type SchemaOptions } from './common.js';
import { targetSchema } from './iscsi.js';
import type {
  AclConfig,
  BackstoreConfig,
  ChapConfig,
  Config,
  DiscoveryAuthConfig,
  PortalConfig,
  SrpAttributes,
  SrpConfig,
  TargetConfig,
  TpgAttributes,
  TpgConfig,
} from './types.js';
import { RDMA_BUFFER_MIB_DEFAULT, RDMA_BUFFER_MIB_MAX, RDMA_POLL_US_DEFAULT, RDMA_POLL_US_MAX } from './defaults.js';
import { srpSchema } from './srp.js';

export type { SchemaOptions };

export function configSchema(o: SchemaOptions = {}) {
  return Type.Object(
    {
      targets: Type.Array(targetSchema(o), { description: 'iSCSI targets; may be empty (a warning)' }),
      backstores: Type.Optional(
        Type.Array(backstoreSchema(true), { description: 'named storage, referred to from luns[].backstore; an entry no LUN uses is not opened' }),
      ),
      discoveryAuth: Type.Optional(
        Type.Object(
          {
            enable: Type.Optional(Bool(true, 'CHAP for SendTargets discovery sessions (default true when the object is given)')),
            userid: Type.Optional(Type.Unknown()),
            password: Type.Optional(Type.Unknown()),
            mutualUserid: Type.Optional(Type.Unknown()),
            mutualPassword: Type.Optional(Type.Unknown()),
          },
          {
            additionalProperties: false,
            // The credentials are checked only when discovery authentication is on.
            if: { properties: { enable: { enum: [false, 0] } }, required: ['enable'] },
            else: Type.Object(chapProperties),
          },
        ),
      ),
      srp: Type.Optional(srpSchema(o)),
      stateDir: Type.Optional(AbsPath('where persistent-reservation state (APTPL) lives')),
      control: Type.Optional(
        Type.Unsafe<false | { socket: string }>({
          if: { const: false },
          else: Type.Object({ socket: AbsPath("the control socket's path") }, { additionalProperties: false }),
          description: 'the control socket (JSON lines); false disables it',
        }),
      ),
      metrics: Type.Optional(
        Type.Object(
          {
            listen: Type.String({
              pattern: '^(\\[[0-9A-Fa-f:.]+\\]|[^:\\[\\]]+):[0-9]{1,5}$',
              description: 'ADDR:PORT the Prometheus endpoint (GET /metrics) listens on, e.g. "127.0.0.1:9469" or "[::1]:9469"',
              errorMessage: 'must be ADDR:PORT such as "127.0.0.1:9469" or "[::1]:9469"',
              requiredMessage: 'is required (a string)',
            }),
          },
          { additionalProperties: false, description: 'the Prometheus metrics endpoint; absent: off' },
        ),
      ),
      rdma: Type.Optional(
        Type.Object(
          {
            pollUs: Type.Optional(
              Type.Integer({
                minimum: 0,
                maximum: RDMA_POLL_US_MAX,
                default: RDMA_POLL_US_DEFAULT,
                description:
                  'how long (µs) a wake-up may spin over the completion queues for the next completion before sleeping; it spins only while completions have recently come that fast; 0 never spins',
                errorMessage: `must be an integer 0–${RDMA_POLL_US_MAX} (µs)`,
              }),
            ),
            bufferMiB: Type.Optional(
              Type.Integer({
                minimum: 0,
                maximum: RDMA_BUFFER_MIB_MAX,
                default: RDMA_BUFFER_MIB_DEFAULT,
                description:
                  "registered memory (MiB) for the I/O buffers of file and block LUNs, which RDMA then moves with no copy; beyond it, and with 0, their data is copied through the connections' bounce slots; changes with a restart",
                errorMessage: `must be an integer 0–${RDMA_BUFFER_MIB_MAX} (MiB)`,
              }),
            ),
          },
          { additionalProperties: false, description: 'RDMA (iSER and SRP) tuning' },
        ),
      ),
      $schema: Type.Optional(Type.Unknown({ description: 'ignored: for editors' })),
      comment: Type.Optional(Type.Unknown({ description: 'ignored: for humans' })),
    },
    { title: 'rdma-target configuration', additionalProperties: false },
  );
}

/** A configuration file as written (before defaults and normalisation). */
export type ConfigDocument = Static<ReturnType<typeof configSchema>>;

/** The schema as published for editors. */
export function publishedSchema(): Record<string, unknown> {
  return { $schema: 'http://json-schema.org/draft-07/schema#', ...configSchema() };
}

// The resolved model (./types.ts) names the same fields as the file, object by object: a
// field added to one and not the other fails the typecheck here.
type SameKeys<A, B> = [Exclude<keyof A, keyof B>, Exclude<keyof B, keyof A>] extends [never, never]
  ? true
  : { onlyInFile: Exclude<keyof A, keyof B>; onlyInModel: Exclude<keyof B, keyof A> };
type Item<T> = T extends ReadonlyArray<infer I> ? I : never;
type Tpg = Item<ConfigDocument['targets'][number]['tpgs']>;
type Srp = NonNullable<ConfigDocument['srp']>;
const fieldsAgree: [
  SameKeys<Omit<ConfigDocument, '$schema' | 'comment'>, Config>,
  SameKeys<Item<NonNullable<ConfigDocument['backstores']>>, BackstoreConfig>,
  SameKeys<ConfigDocument['targets'][number], TargetConfig>,
  SameKeys<Tpg, TpgConfig>,
  SameKeys<Item<NonNullable<Tpg['portals']>>, PortalConfig>,
  SameKeys<Item<NonNullable<Tpg['acls']>>, AclConfig>,
  SameKeys<NonNullable<Tpg['attributes']>, TpgAttributes>,
  SameKeys<NonNullable<Tpg['chap']>, ChapConfig>,
  SameKeys<Srp, SrpConfig>,
  SameKeys<NonNullable<Srp['attributes']>, SrpAttributes>,
  SameKeys<NonNullable<ConfigDocument['discoveryAuth']>, DiscoveryAuthConfig>,
] = [true, true, true, true, true, true, true, true, true, true, true];
void fieldsAgree;
