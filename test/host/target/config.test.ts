import { describe, expect, it } from 'vitest';
import {
  addRdmaPortals,
  defaultConfigJson,
  DEFAULT_IQN,
  overrideListen,
  parseConfig,
  parseSize,
  validateConfig,
  type Config,
} from '../../../lib/target/config.js';

const pin = { defaults: { stateDir: '/var/lib/rt-test', controlSocket: '/run/rt-test.sock' } };

/** A minimal valid document; each bad case below breaks one field of it. */
// biome-ignore lint/suspicious/noExplicitAny: a raw config document; the cases write any JSON into it, valid or not
function base(): any {
  return {
    backstores: [{ name: 'disk0', type: 'file', path: '/srv/disk0.img', size: '64M' }],
    targets: [
      {
        iqn: 'iqn.2025-01.com.example:t1',
        tpgs: [
          {
            tag: 1,
            portals: [{ address: '127.0.0.1', port: 3260, transport: 'tcp' }],
            luns: [
              { lun: 0, backstore: 'disk0' },
              { lun: 1, backstore: { type: 'ram', size: 1048576, thin: true } },
            ],
            acls: [
              {
                initiator: 'iqn.1994-05.com.redhat:client1',
                chap: { userid: 'client1', password: 'secret-123456' },
                mappedLuns: [0, { lun: 5, tpgLun: 1, readOnly: true }],
              },
            ],
          },
        ],
      },
    ],
  };
}

function ok(doc: unknown): Config {
  const r = validateConfig(doc, pin);
  expect(r.errors).toEqual([]);
  return r.config!;
}

describe('config: good documents', () => {
  it('the embedded default is valid and warns that ACLs are off', () => {
    const r = validateConfig(defaultConfigJson(), pin);
    expect(r.errors).toEqual([]);
    const c = r.config!;
    expect(c.targets[0]!.iqn).toBe(DEFAULT_IQN);
    const tpg = c.targets[0]!.tpgs[0]!;
    expect(tpg.portals).toEqual([{ address: '127.0.0.1', port: 3260, transport: 'tcp' }]);
    expect(tpg.attributes.generateNodeAcls).toBe(true);
    expect(c.backstores[0]).toMatchObject({ type: 'ram', size: 1024 ** 3, thin: true, blockSize: 512 });
    expect(r.warnings.join('\n')).toMatch(/ACLs are off/);
    expect(c.control).toEqual({ socket: '/run/rt-test.sock' });
    expect(c.stateDir).toBe('/var/lib/rt-test');
  });

  it('fills defaults and normalises', () => {
    const c = ok(base());
    const tpg = c.targets[0]!.tpgs[0]!;
    expect(tpg.enable).toBe(true);
    expect(tpg.attributes).toEqual({
      generateNodeAcls: false,
      authentication: false,
      demoModeWriteProtect: false,
      defaultCmdsnDepth: 64,
      loginTimeout: 15,
      nopInTimeout: 15,
      nopInResponseTimeout: 30,
    });
    expect(c.backstores[0]).toEqual({
      name: 'disk0',
      type: 'file',
      path: '/srv/disk0.img',
      size: 64 * 1024 ** 2,
      blockSize: 512,
      readOnly: false,
      thin: false,
    });
    expect(tpg.luns[1]!.backstore).toEqual({ type: 'ram', size: 1048576, blockSize: 512, readOnly: false, thin: true });
    expect(tpg.acls[0]!.mappedLuns).toEqual([
      { lun: 0, tpgLun: 0, readOnly: false },
      { lun: 5, tpgLun: 1, readOnly: true },
    ]);
    expect(c.discoveryAuth).toEqual({ enable: false });
  });

  it('a portal with only a port binds loopback; a TPG without portals gets 127.0.0.1:3260', () => {
    const d = base();
    d.targets[0].tpgs[0].portals = [{ port: 3261 }];
    expect(ok(d).targets[0]!.tpgs[0]!.portals).toEqual([{ address: '127.0.0.1', port: 3261, transport: 'tcp' }]);
    delete d.targets[0].tpgs[0].portals;
    expect(ok(d).targets[0]!.tpgs[0]!.portals).toEqual([{ address: '127.0.0.1', port: 3260, transport: 'tcp' }]);
  });

  it('accepts IPv6, iSER portals, parameters, mutual CHAP, discovery auth, LIO 0/1 booleans', () => {
    const d = base();
    d.targets[0].tpgs[0].portals = [
      { address: '::', port: 3260, transport: 'tcp' },
      { address: '[::]', port: 3260, transport: 'iser' },
    ];
    d.targets[0].tpgs[0].attributes = { authentication: 1, generateNodeAcls: 0 };
    d.targets[0].tpgs[0].acls[0].chap = { userid: 'u', password: 'aaaaaaaaaaaa', mutualUserid: 'tgt', mutualPassword: 'bbbbbbbbbbbbbbbb' };
    d.targets[0].tpgs[0].parameters = { MaxRecvDataSegmentLength: 262144, ImmediateData: true, HeaderDigest: 'CRC32C,None', MaxBurstLength: '1048576' };
    d.discoveryAuth = { userid: 'disc', password: 'discpassword1' };
    const c = ok(d);
    const tpg = c.targets[0]!.tpgs[0]!;
    expect(tpg.portals.map((p) => p.transport)).toEqual(['tcp', 'iser']);
    expect(tpg.attributes.authentication).toBe(true);
    expect(tpg.parameters).toEqual({ MaxRecvDataSegmentLength: '262144', ImmediateData: 'Yes', HeaderDigest: 'CRC32C,None', MaxBurstLength: '1048576' });
    expect(c.discoveryAuth).toEqual({ enable: true, userid: 'disc', password: 'discpassword1' });
  });

  it('several targets may share one listener', () => {
    const d = base();
    d.targets.push({ iqn: 'iqn.2025-01.com.example:t2', tpgs: [{ portals: [{ address: '127.0.0.1', port: 3260 }], attributes: { generateNodeAcls: true } }] });
    expect(ok(d).targets).toHaveLength(2);
  });

  it('control: false disables the socket; a disabled srp section is accepted quietly', () => {
    const d = base();
    d.control = false;
    d.srp = { enable: false };
    const r = validateConfig(d, pin);
    expect(r.errors).toEqual([]);
    expect(r.config!.control).toBe(false);
    expect(r.config!.srp?.enable).toBe(false);
    expect(r.warnings.join('\n')).not.toMatch(/^srp/m);
  });

  it('warns when authentication is off on a non-loopback portal', () => {
    const d = base();
    d.targets[0].tpgs[0].portals = [{ address: '0.0.0.0', port: 3260 }];
    expect(validateConfig(d, pin).warnings).toContain(
      'targets[0].tpgs[0].attributes.authentication: is false on a non-loopback portal: sessions are not authenticated',
    );
  });
});

// Each row: what to break, and the exact error(s) it must produce.
// biome-ignore lint/suspicious/noExplicitAny: breaks a raw config document (base()) anywhere
const bad: Array<[string, (d: any) => void, string[]]> = [
  [
    'port not a number',
    (d) => (d.targets[0].tpgs[0].portals = [{ port: 3260 }, { port: 'abc' }]),
    ['targets[0].tpgs[0].portals[1].port: must be an integer 1–65535, got "abc"'],
  ],
  ['port 0 without --listen', (d) => (d.targets[0].tpgs[0].portals[0].port = 0), ['targets[0].tpgs[0].portals[0].port: must be an integer 1–65535, got 0']],
  ['port too big', (d) => (d.targets[0].tpgs[0].portals[0].port = 70000), ['targets[0].tpgs[0].portals[0].port: must be an integer 1–65535, got 70000']],
  [
    'address a hostname',
    (d) => (d.targets[0].tpgs[0].portals[0].address = 'localhost'),
    ['targets[0].tpgs[0].portals[0].address: must be an IPv4 or IPv6 address (e.g. "127.0.0.1", "0.0.0.0", "::"), got "localhost"'],
  ],
  ['transport', (d) => (d.targets[0].tpgs[0].portals[0].transport = 'rdma'), ['targets[0].tpgs[0].portals[0].transport: must be "tcp" or "iser", got "rdma"']],
  [
    'duplicate portal',
    (d) => d.targets[0].tpgs[0].portals.push({ address: '127.0.0.1', port: 3260 }),
    ['targets[0].tpgs[0].portals[1]: duplicates portals[0] (tcp 127.0.0.1:3260)'],
  ],
  [
    'wildcard overlaps specific',
    (d) =>
      d.targets.push({ iqn: 'iqn.2025-01.com.example:t2', tpgs: [{ portals: [{ address: '0.0.0.0', port: 3260 }], attributes: { generateNodeAcls: true } }] }),
    [
      'targets[1].tpgs[0].portals[0]: 0.0.0.0:3260 overlaps targets[0].tpgs[0].portals[0] (127.0.0.1:3260); use the same address in both, since one listener serves many targets',
    ],
  ],
  [
    'iqn uppercase',
    (d) => (d.targets[0].iqn = 'iqn.2025-01.com.Example:t1'),
    ['targets[0].iqn: must be lowercase (iSCSI names are normalised to lowercase, RFC 3722), got "iqn.2025-01.com.Example:t1"'],
  ],
  [
    'iqn malformed',
    (d) => (d.targets[0].iqn = 'iqn.25-01.com.example'),
    ['targets[0].iqn: must be an iSCSI name such as "iqn.2025-01.com.example:disk1", "eui.<16 hex>" or "naa.<16 or 32 hex>", got "iqn.25-01.com.example"'],
  ],
  ['iqn missing', (d) => delete d.targets[0].iqn, ['targets[0].iqn: must be an iSCSI name string, got nothing']],
  ['duplicate iqn', (d) => d.targets.push({ iqn: 'iqn.2025-01.com.example:t1', tpgs: [] }), ['targets[1].iqn: duplicates targets[0].iqn']],
  ['targets missing', (d) => delete d.targets, ['targets: is required (an array)']],
  ['targets not array', (d) => (d.targets = {}), ['targets: must be an array, got an object']],
  [
    'unknown top-level key with hint',
    (d) => (d.target = []),
    ['target: unknown field (did you mean "targets"?); allowed: targets, backstores, discoveryAuth, srp, stateDir, control, metrics, rdma, $schema, comment'],
  ],
  [
    'LIO spelling of an attribute',
    (d) => (d.targets[0].tpgs[0].attributes = { generate_node_acls: 1 }),
    [
      'targets[0].tpgs[0].attributes.generate_node_acls: unknown field (did you mean "generateNodeAcls"?); allowed: generateNodeAcls, authentication, demoModeWriteProtect, defaultCmdsnDepth, loginTimeout, nopInTimeout, nopInResponseTimeout',
    ],
  ],
  [
    'NOP-In response timeout of 0',
    (d) => (d.targets[0].tpgs[0].attributes = { nopInResponseTimeout: 0 }),
    ['targets[0].tpgs[0].attributes.nopInResponseTimeout: must be an integer number of seconds 1–3600, got 0'],
  ],
  [
    'attribute not boolean',
    (d) => (d.targets[0].tpgs[0].attributes = { generateNodeAcls: 'yes' }),
    ['targets[0].tpgs[0].attributes.generateNodeAcls: must be true or false, got "yes"'],
  ],
  [
    'duplicate tag',
    (d) => d.targets[0].tpgs.push({ tag: 1, portals: [{ port: 3261 }], attributes: { generateNodeAcls: true } }),
    ['targets[0].tpgs[1].tag: duplicates targets[0].tpgs[0].tag 1'],
  ],
  [
    'portal in two TPGs of one target',
    (d) => d.targets[0].tpgs.push({ tag: 2, portals: [{ port: 3260 }], attributes: { generateNodeAcls: true } }),
    ['targets[0].tpgs[1].portals[0]: is also a portal of targets[0].tpgs[0] in the same target'],
  ],
  [
    'lun out of range',
    (d) => (d.targets[0].tpgs[0].luns[0].lun = 20000),
    [
      'targets[0].tpgs[0].luns[0].lun: must be an integer 0–16383, got 20000',
      'targets[0].tpgs[0].acls[0].mappedLuns[0]: names no LUN of this TPG (luns: 1), got 0',
    ],
  ],
  [
    'duplicate lun',
    (d) => (d.targets[0].tpgs[0].luns[1].lun = 0),
    ['targets[0].tpgs[0].luns[1].lun: duplicates luns[0].lun 0', 'targets[0].tpgs[0].acls[0].mappedLuns[1].tpgLun: names no LUN of this TPG (luns: 0), got 1'],
  ],
  [
    'unknown backstore ref',
    (d) => (d.targets[0].tpgs[0].luns[0].backstore = 'disk9'),
    ['targets[0].tpgs[0].luns[0].backstore: names no entry in backstores[] (known: disk0), got "disk9"'],
  ],
  [
    'backstore missing',
    (d) => delete d.targets[0].tpgs[0].luns[1].backstore,
    ['targets[0].tpgs[0].luns[1].backstore: is required: a name from backstores[] or an inline {type, size, ...}'],
  ],
  [
    'inline type',
    (d) => (d.targets[0].tpgs[0].luns[1].backstore.type = 'nvme'),
    ['targets[0].tpgs[0].luns[1].backstore.type: must be one of "ram", "file", "block", got "nvme"'],
  ],
  [
    'ram without size',
    (d) => delete d.targets[0].tpgs[0].luns[1].backstore.size,
    ['targets[0].tpgs[0].luns[1].backstore.size: is required for a ram backstore'],
  ],
  [
    'bad size',
    (d) => (d.backstores[0].size = '12 parsecs'),
    ['backstores[0].size: must be a positive size in bytes or with a suffix such as "512M", "1GiB", got "12 parsecs"'],
  ],
  [
    'size not a block multiple',
    (d) => {
      d.backstores[0].size = 1000;
    },
    ['backstores[0].size: must be a multiple of blockSize 512, got 1000'],
  ],
  ['blockSize', (d) => (d.backstores[0].blockSize = 520), ['backstores[0].blockSize: must be 512, 1024, 2048 or 4096, got 520']],
  ['file without path', (d) => delete d.backstores[0].path, ['backstores[0].path: is required (a string)']],
  ['relative path', (d) => (d.backstores[0].path = 'disk.img'), ['backstores[0].path: must be an absolute path, got "disk.img"']],
  [
    'block with size',
    (d) => d.backstores.push({ name: 'b', type: 'block', path: '/dev/sdz', size: '1G' }),
    ['backstores[1].size: a block backstore takes its size from the device; remove it'],
  ],
  [
    'two backstores one path',
    (d) => d.backstores.push({ name: 'disk1', type: 'file', path: '/srv/disk0.img' }),
    ['backstores[1].path: is also used by backstores[0]; two backstores on one file would corrupt each other'],
  ],
  [
    'duplicate backstore name',
    (d) => d.backstores.push({ name: 'disk0', type: 'ram', size: 4096 }),
    ['backstores[1].name: duplicates another backstore named "disk0"'],
  ],
  [
    'backstore name missing',
    (d) => delete d.backstores[0].name,
    ['backstores[0].name: is required (a string)', 'targets[0].tpgs[0].luns[0].backstore: names no entry in backstores[], got "disk0"'],
  ],
  [
    'inline backstore with name',
    (d) => (d.targets[0].tpgs[0].luns[1].backstore.name = 'x'),
    ['targets[0].tpgs[0].luns[1].backstore.name: an inline backstore has no name; move it to backstores[] to share it between LUNs'],
  ],
  [
    'serial',
    (d) => (d.backstores[0].serial = 'has space'),
    ['backstores[0].serial: must be 1–36 printable ASCII characters without spaces (VPD page 0x80), got "has space"'],
  ],
  [
    'wwn',
    (d) => (d.backstores[0].wwn = '5001405'),
    ['backstores[0].wwn: must be an NAA 6 identifier of 32 hex digits starting with 6, e.g. "6001405c0ffee0000000000000000001", got "5001405"'],
  ],
  [
    'chap secret too short',
    (d) => (d.targets[0].tpgs[0].acls[0].chap.password = 'short'),
    ['targets[0].tpgs[0].acls[0].chap.password: must be a CHAP secret of 12–16 characters, got 5 characters'],
  ],
  [
    'chap secret too long',
    (d) => (d.targets[0].tpgs[0].acls[0].chap.password = 'x'.repeat(17)),
    ['targets[0].tpgs[0].acls[0].chap.password: must be a CHAP secret of 12–16 characters, got 17 characters'],
  ],
  ['chap userid missing', (d) => delete d.targets[0].tpgs[0].acls[0].chap.userid, ['targets[0].tpgs[0].acls[0].chap.userid: is required (a string)']],
  [
    'mutual half-set',
    (d) => (d.targets[0].tpgs[0].acls[0].chap.mutualUserid = 'tgt'),
    ['targets[0].tpgs[0].acls[0].chap: mutual CHAP needs both mutualUserid and mutualPassword'],
  ],
  [
    'mutual same secret',
    (d) => Object.assign(d.targets[0].tpgs[0].acls[0].chap, { mutualUserid: 't', mutualPassword: 'secret-123456' }),
    ['targets[0].tpgs[0].acls[0].chap.mutualPassword: must differ from password (RFC 7143 §12.1.3)'],
  ],
  [
    'authentication without chap',
    (d) => {
      d.targets[0].tpgs[0].attributes = { authentication: true };
      delete d.targets[0].tpgs[0].acls[0].chap;
    },
    ['targets[0].tpgs[0].acls[0].chap: is required because attributes.authentication is true'],
  ],
  [
    'demo mode + authentication without tpg chap',
    (d) => (d.targets[0].tpgs[0].attributes = { authentication: true, generateNodeAcls: true }),
    [
      'targets[0].tpgs[0].chap: is required when attributes.authentication and attributes.generateNodeAcls are both true (demo-mode sessions have no ACL to hold credentials)',
    ],
  ],
  [
    'acl initiator',
    (d) => (d.targets[0].tpgs[0].acls[0].initiator = 'client1'),
    [
      'targets[0].tpgs[0].acls[0].initiator: must be an iSCSI name such as "iqn.2025-01.com.example:disk1", "eui.<16 hex>" or "naa.<16 or 32 hex>", got "client1"',
    ],
  ],
  [
    'duplicate acl',
    (d) => d.targets[0].tpgs[0].acls.push({ initiator: 'iqn.1994-05.com.redhat:client1', chap: { userid: 'a', password: 'bbbbbbbbbbbbb' } }),
    ['targets[0].tpgs[0].acls[1].initiator: duplicates acls[0].initiator'],
  ],
  [
    'mapped lun to nothing',
    (d) => d.targets[0].tpgs[0].acls[0].mappedLuns.push({ lun: 7, tpgLun: 9 }),
    ['targets[0].tpgs[0].acls[0].mappedLuns[2].tpgLun: names no LUN of this TPG (luns: 0, 1), got 9'],
  ],
  [
    'mapped lun twice',
    (d) => d.targets[0].tpgs[0].acls[0].mappedLuns.push({ lun: 5, tpgLun: 0 }),
    ['targets[0].tpgs[0].acls[0].mappedLuns[2].lun: maps LUN 5 twice'],
  ],
  [
    'parameter unknown',
    (d) => (d.targets[0].tpgs[0].parameters = { MaxRecvDataSegmentLen: 8192 }),
    [
      expect.stringMatching(
        /^targets\[0\]\.tpgs\[0\]\.parameters\.MaxRecvDataSegmentLen: unknown field \(did you mean "MaxRecvDataSegmentLength"\?\)/,
      ) as unknown as string,
    ],
  ],
  [
    'AuthMethod belongs to attributes',
    (d) => (d.targets[0].tpgs[0].parameters = { AuthMethod: 'CHAP', ImmediateData: 'No' }),
    ['targets[0].tpgs[0].parameters.AuthMethod: is set by attributes.authentication (true: CHAP required; false: None), not here'],
  ],
  [
    'parameter range',
    (d) => (d.targets[0].tpgs[0].parameters = { MaxRecvDataSegmentLength: 100 }),
    ['targets[0].tpgs[0].parameters.MaxRecvDataSegmentLength: must be an integer 512–16777215, got 100'],
  ],
  [
    'parameter yes/no',
    (d) => (d.targets[0].tpgs[0].parameters = { InitialR2T: 'yes' }),
    ['targets[0].tpgs[0].parameters.InitialR2T: must be "Yes" or "No", got "yes"'],
  ],
  [
    'FirstBurst > MaxBurst',
    (d) => (d.targets[0].tpgs[0].parameters = { FirstBurstLength: 65536, MaxBurstLength: 8192 }),
    ['targets[0].tpgs[0].parameters.FirstBurstLength: must not exceed MaxBurstLength 8192 (RFC 7143 §13.14), got 65536'],
  ],
  [
    'discoveryAuth secret',
    (d) => (d.discoveryAuth = { enable: true, userid: 'd', password: 'x' }),
    ['discoveryAuth.password: must be a CHAP secret of 12–16 characters, got 1 characters'],
  ],
  ['stateDir relative', (d) => (d.stateDir = 'state'), ['stateDir: must be an absolute path, got "state"']],
  ['control socket relative', (d) => (d.control = { socket: 'x.sock' }), ['control.socket: must be an absolute path, got "x.sock"']],
  ['srp not an object', (d) => (d.srp = true), ['srp: must be an object, got true']],
  [
    'metrics listen without a port',
    (d) => (d.metrics = { listen: '127.0.0.1' }),
    ['metrics.listen: must be ADDR:PORT such as "127.0.0.1:9469" or "[::1]:9469", got "127.0.0.1"'],
  ],
  ['rdma pollUs negative', (d) => (d.rdma = { pollUs: -1 }), ['rdma.pollUs: must be an integer 0–100000 (µs), got -1']],
  ['rdma pollUs too big', (d) => (d.rdma = { pollUs: 200000 }), ['rdma.pollUs: must be an integer 0–100000 (µs), got 200000']],
  ['rdma pollUs fraction', (d) => (d.rdma = { pollUs: 1.5 }), ['rdma.pollUs: must be an integer 0–100000 (µs), got 1.5']],
  ['rdma unknown key', (d) => (d.rdma = { poll: 1 }), ['rdma.poll: unknown field (did you mean "pollUs"?); allowed: pollUs, bufferMiB']],
  ['rdma bufferMiB negative', (d) => (d.rdma = { bufferMiB: -1 }), ['rdma.bufferMiB: must be an integer 0–65536 (MiB), got -1']],
  ['rdma bufferMiB a string', (d) => (d.rdma = { bufferMiB: '64M' }), ['rdma.bufferMiB: must be an integer 0–65536 (MiB), got "64M"']],
  ['metrics unknown key', (d) => (d.metrics = { listen: '127.0.0.1:9469', port: 1 }), ['metrics.port: unknown field; allowed: listen']],
  [
    'top level not an object',
    (d) => {
      for (const k of Object.keys(d)) delete d[k];
      Object.setPrototypeOf(d, Array.prototype);
    },
    [],
  ],
];

describe('config: each bad field is named with its path', () => {
  it.each(bad.filter((b) => b[2].length > 0))('%s', (_name, breakIt, expected) => {
    const d = base();
    breakIt(d);
    const r = validateConfig(d, pin);
    expect(r.config).toBeUndefined();
    expect(r.errors).toEqual(expected);
  });

  it('collects every error, not only the first', () => {
    const d = base();
    d.targets[0].tpgs[0].portals[0].port = 'abc';
    d.backstores[0].blockSize = 3;
    d.targets[0].tpgs[0].acls[0].chap.password = 'short';
    const r = validateConfig(d, pin);
    expect(r.errors).toEqual([
      'backstores[0].blockSize: must be 512, 1024, 2048 or 4096, got 3',
      'targets[0].tpgs[0].portals[0].port: must be an integer 1–65535, got "abc"',
      'targets[0].tpgs[0].acls[0].chap.password: must be a CHAP secret of 12–16 characters, got 5 characters',
    ]);
  });

  it('a non-object document', () => {
    expect(validateConfig([], pin).errors).toEqual(['must be an object, got an array']);
    expect(validateConfig('x', pin).errors).toEqual(['must be an object, got "x"']);
  });

  it('JSON syntax errors are one error, with line and column where V8 gives a position', () => {
    const r = parseConfig('{\n  "targets": [,]\n}');
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(/^invalid JSON/);
    const r2 = parseConfig('{\n  "targets": []\n');
    expect(r2.errors[0]).toMatch(/^invalid JSON/);
  });
});

describe('config helpers', () => {
  it('parseSize', () => {
    expect(parseSize('1GiB')).toBe(1024 ** 3);
    expect(parseSize('1G')).toBe(1024 ** 3);
    expect(parseSize('512M')).toBe(512 * 1024 ** 2);
    expect(parseSize('1.5k')).toBe(1536);
    expect(parseSize(4096)).toBe(4096);
    expect(parseSize(-1)).toBeUndefined();
    expect(parseSize('1X')).toBeUndefined();
  });

  it('--listen replaces TCP portals and may use an ephemeral port', () => {
    const doc = overrideListen(defaultConfigJson(), '127.0.0.1', 0);
    expect(validateConfig(doc, pin).errors).toEqual(['targets[0].tpgs[0].portals[0].port: must be an integer 1–65535, got 0']);
    const r = validateConfig(doc, { ...pin, allowEphemeralPort: true });
    expect(r.config!.targets[0]!.tpgs[0]!.portals).toEqual([{ address: '127.0.0.1', port: 0, transport: 'tcp' }]);
  });

  it('the RDMA hook adds an iSER portal beside each non-loopback TCP portal only when devices exist', () => {
    const c = validateConfig(defaultConfigJson(), pin).config!;
    expect(addRdmaPortals(structuredClone(c), []).targets[0]!.tpgs[0]!.portals).toHaveLength(1);
    // The default is loopback only: no RDMA initiator reaches it, so nothing is added.
    expect(addRdmaPortals(structuredClone(c), [{ name: 'rxe0' }]).targets[0]!.tpgs[0]!.portals).toEqual([
      { address: '127.0.0.1', port: 3260, transport: 'tcp' },
    ]);
    c.targets[0]!.tpgs[0]!.portals[0]!.address = '0.0.0.0';
    expect(addRdmaPortals(c, [{ name: 'rxe0' }]).targets[0]!.tpgs[0]!.portals).toEqual([
      { address: '0.0.0.0', port: 3260, transport: 'tcp' },
      { address: '0.0.0.0', port: 3260, transport: 'iser' },
    ]);
  });
});
