// The JSON Schema shipped for editors (schema/config.schema.json) is the schema validation
// uses, written out; an editor's validator that knows nothing of this project accepts the
// good configurations and refuses the bad ones at the same field validateConfig() names.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { defaultConfigJson, publishedSchema, validateConfig } from '../../../lib/target/config.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const shipped = JSON.parse(readFileSync(join(root, 'schema', 'config.schema.json'), 'utf8'));
const docBlocks = [...readFileSync(join(root, 'docs', 'config.md'), 'utf8').matchAll(/```json\n([\s\S]*?)```/g)].map((m) => JSON.parse(m[1]!));
const pin = { defaults: { stateDir: '/x', controlSocket: '/x.sock' } };

// As an editor sees it: a stock validator, the project's annotations and format unknown to it.
const editor = new Ajv({ allErrors: true, strict: false, validateFormats: false }).compile(shipped);

// biome-ignore lint/suspicious/noExplicitAny: a raw config document; the cases write any JSON into it, valid or not
function good(): any {
  return {
    $schema: '../schema/config.schema.json',
    backstores: [
      { name: 'disk0', type: 'file', path: '/srv/disk0.img', size: '64M' },
      { name: 'dev', type: 'block', path: '/dev/vg0/lv', readOnly: 1 },
    ],
    targets: [
      {
        iqn: 'iqn.2025-01.com.example:t1',
        tpgs: [
          {
            portals: [
              { address: '::', port: 3260 },
              { address: '::', transport: 'iser' },
            ],
            luns: [
              { lun: 0, backstore: 'disk0' },
              { lun: 1, backstore: { type: 'ram', size: 1048576, thin: true, wwn: 'naa.6001405c0ffee0000000000000000001' } },
              { lun: 2, backstore: 'dev' },
            ],
            attributes: { authentication: true, nopInTimeout: 0 },
            acls: [
              {
                initiator: 'iqn.1994-05.com.redhat:c1',
                chap: { userid: 'c1', password: 'secret-123456', mutualUserid: 't', mutualPassword: 'other-1234567' },
                mappedLuns: [0, { lun: 5, tpgLun: 1, readOnly: true }],
              },
            ],
            parameters: { MaxRecvDataSegmentLength: '262144', ImmediateData: true, HeaderDigest: 'CRC32C,None', TargetAlias: 'disk' },
          },
        ],
      },
    ],
    discoveryAuth: { enable: false, password: 'not checked when off' },
    srp: {
      portals: [{ address: '10.0.0.1' }],
      targetPortId: { idExt: '0002:c903:00a1:b2c3', iocGuid: '0x0011223344556677' },
      luns: [{ lun: 0, backstore: 'disk0' }],
      acls: [{ initiator: '10.0.0.2', mappedLuns: [{ lun: 0, srpLun: 0 }] }],
    },
    stateDir: '/var/lib/rt',
    control: false,
    comment: 'ignored',
  };
}

describe('schema/config.schema.json', () => {
  it('is the schema validation uses (rewrite it with `npm run build && node scripts/config-schema.mjs`)', () => {
    expect(shipped).toEqual(JSON.parse(JSON.stringify(publishedSchema())));
  });

  const goods: Array<[string, unknown]> = [
    ['the embedded default', defaultConfigJson()],
    ['a config using most fields', good()],
    ...docBlocks.map((b, i) => [`docs/config.md example ${i + 1}`, b] as [string, unknown]),
  ];
  it.each(goods)('%s validates, for an editor and for the daemon', (_name, doc) => {
    expect(editor(doc), JSON.stringify(editor.errors)).toBe(true);
    expect(validateConfig(doc, pin).errors).toEqual([]);
  });

  // What to break, and the field both the editor and the daemon must name.
  // biome-ignore lint/suspicious/noExplicitAny: breaks a raw config document (good()) anywhere
  const bad: Array<[string, (d: any) => void, string]> = [
    ['unknown field', (d) => (d.targets[0].tpgs[0].atributes = {}), 'targets[0].tpgs[0].atributes'],
    ['port out of range', (d) => (d.targets[0].tpgs[0].portals[0].port = 0), 'targets[0].tpgs[0].portals[0].port'],
    ['transport', (d) => (d.targets[0].tpgs[0].portals[1].transport = 'srp'), 'targets[0].tpgs[0].portals[1].transport'],
    ['iqn uppercase', (d) => (d.targets[0].iqn = 'iqn.2025-01.com.Example:t1'), 'targets[0].iqn'],
    ['iqn missing', (d) => delete d.targets[0].iqn, 'targets[0].iqn'],
    ['inline backstore type', (d) => (d.targets[0].tpgs[0].luns[1].backstore.type = 'nvme'), 'targets[0].tpgs[0].luns[1].backstore.type'],
    ['inline backstore named', (d) => (d.targets[0].tpgs[0].luns[1].backstore.name = 'x'), 'targets[0].tpgs[0].luns[1].backstore.name'],
    ['ram without size', (d) => delete d.targets[0].tpgs[0].luns[1].backstore.size, 'targets[0].tpgs[0].luns[1].backstore.size'],
    ['ram with path', (d) => (d.targets[0].tpgs[0].luns[1].backstore.path = '/x'), 'targets[0].tpgs[0].luns[1].backstore.path'],
    ['block with size', (d) => (d.backstores[1].size = '1G'), 'backstores[1].size'],
    ['file without path', (d) => delete d.backstores[0].path, 'backstores[0].path'],
    ['size with a bad unit', (d) => (d.backstores[0].size = '12 parsecs'), 'backstores[0].size'],
    ['blockSize', (d) => (d.backstores[0].blockSize = 520), 'backstores[0].blockSize'],
    ['wwn', (d) => (d.backstores[0].wwn = '5001405'), 'backstores[0].wwn'],
    ['boolean', (d) => (d.backstores[0].thin = 'yes'), 'backstores[0].thin'],
    ['chap secret short', (d) => (d.targets[0].tpgs[0].acls[0].chap.password = 'short'), 'targets[0].tpgs[0].acls[0].chap.password'],
    ['attribute range', (d) => (d.targets[0].tpgs[0].attributes.nopInResponseTimeout = 0), 'targets[0].tpgs[0].attributes.nopInResponseTimeout'],
    ['mapped LUN number', (d) => d.targets[0].tpgs[0].acls[0].mappedLuns.push(20000), 'targets[0].tpgs[0].acls[0].mappedLuns[2]'],
    ['AuthMethod', (d) => (d.targets[0].tpgs[0].parameters.AuthMethod = 'CHAP'), 'targets[0].tpgs[0].parameters.AuthMethod'],
    ['parameter value', (d) => (d.targets[0].tpgs[0].parameters.InitialR2T = 'yes'), 'targets[0].tpgs[0].parameters.InitialR2T'],
    ['discovery secret when on', (d) => (d.discoveryAuth = { userid: 'd', password: 'x' }), 'discoveryAuth.password'],
    ['srp id', (d) => (d.srp.targetPortId.idExt = '1234'), 'srp.targetPortId.idExt'],
    ['srp IU length', (d) => (d.srp.attributes = { maxItIuLength: 4096 }), 'srp.attributes.maxItIuLength'],
    ['stateDir relative', (d) => (d.stateDir = 'state'), 'stateDir'],
    ['control', (d) => (d.control = { socket: 'x.sock' }), 'control.socket'],
  ];
  it.each(bad)('%s: refused, naming the field', (_name, breakIt, field) => {
    const d = good();
    breakIt(d);
    expect(editor(d)).toBe(false);
    const pointers = editor.errors!.map(
      (e) =>
        e.instancePath +
        ('missingProperty' in e.params ? `/${e.params.missingProperty}` : '') +
        ('additionalProperty' in e.params ? `/${e.params.additionalProperty}` : ''),
    );
    const asPointer =
      '/' +
      field
        .replace(/\[(\d+)\]/g, '.$1')
        .split('.')
        .join('/');
    expect(pointers).toContain(asPointer);
    const errors = validateConfig(d, pin).errors;
    expect(errors.length).toBeGreaterThan(0);
    expect(
      errors.every((e) => e.startsWith(`${field}: `)),
      errors.join('\n'),
    ).toBe(true);
  });
});
