import { describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, parseListen, EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from '../../../lib/cli/main.js';
import { fakeEngine } from '../target/fake-engine.js';
import type { Daemon } from '../../../lib/target/daemon.js';

const dir = mkdtempSync(join(tmpdir(), 'rt-cli-'));

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) }, out, err };
}

async function cli(args: string[]) {
  const c = capture();
  const code = await run(args, { io: c.io, engine: fakeEngine(), signals: false });
  return { code, out: c.out.join('\n'), err: c.err.join('\n') };
}

function file(name: string, content: unknown): string {
  const p = join(dir, name);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}

describe('rdma-target usage', () => {
  it('--help and --version exit 0', async () => {
    const h = await cli(['--help']);
    expect(h.code).toBe(EXIT_OK);
    expect(h.out).toMatch(/^Usage:\n {2}rdma-target \[--config FILE\] \[--listen ADDR:PORT\] \[--metrics ADDR:PORT\] \[--rdma auto\|on\|off\] \[--debug\]/);
    expect(h.out).toContain('rdma-target check-config FILE');
    const v = await cli(['--version']);
    expect(v.code).toBe(EXIT_OK);
    expect(v.out).toMatch(/^rdma-target \d+\.\d+\.\d+$/);
  });

  it.each([
    [['--bogus'], "rdma-target: Unknown option '--bogus'"],
    [['frobnicate'], 'rdma-target: unknown command "frobnicate"'],
    [['check-config'], 'rdma-target: check-config takes exactly one FILE'],
    [['check-config', 'a', 'b'], 'rdma-target: check-config takes exactly one FILE'],
    [['check-config', '--listen', '1.2.3.4:5', 'a'], 'rdma-target: check-config takes no --config, --listen or --socket'],
    [['--listen', '127.0.0.1'], 'rdma-target: --listen: must be ADDR:PORT such as 127.0.0.1:3260 or [::1]:3260, got "127.0.0.1"'],
    [['--listen', '127.0.0.1:99999'], 'rdma-target: --listen: port must be an integer 0–65535, got "99999"'],
    [['--config'], "rdma-target: Option '-c, --config <value>' argument missing"],
    [['--socket', '/x'], 'rdma-target: --socket belongs to the status and ctl commands'],
    [['ctl'], 'rdma-target: ctl takes COMMAND and optionally one JSON object of arguments'],
    [['ctl', 'add-lun', '[1]'], 'rdma-target: ctl: arguments must be one JSON object, got "[1]"'],
    [['--shutdown-timeout', 'soon'], 'rdma-target: --shutdown-timeout: must be seconds 0–3600, got "soon"'],
    [['status', 'now'], 'rdma-target: status takes no arguments'],
  ])('%j is a usage error (exit 2)', async (args, message) => {
    const r = await cli(args);
    expect(r.code).toBe(EXIT_USAGE);
    expect(r.err.split('\n')[0]).toBe(message);
    expect(r.err).toContain('Try "rdma-target --help".');
  });

  it('parseListen', () => {
    expect(parseListen('[::1]:3260')).toEqual({ address: '::1', port: 3260 });
    expect(parseListen('0.0.0.0:0')).toEqual({ address: '0.0.0.0', port: 0 });
  });

  it('--listen with a host name is named as --listen', async () => {
    const r = await cli(['--listen', 'localhost:3260']);
    expect(r.code).toBe(EXIT_FAILURE);
    expect(r.err).toBe('rdma-target: embedded default config: --listen: must be an IPv4 or IPv6 address (e.g. "127.0.0.1", "0.0.0.0", "::"), got "localhost"');
  });
});

describe('rdma-target check-config', () => {
  it('a good file: exit 0 and a summary, warnings on stderr', async () => {
    const p = file('good.json', {
      targets: [
        {
          iqn: 'iqn.2025-01.com.example:a',
          tpgs: [{ portals: [{ port: 3261 }], luns: [{ lun: 0, backstore: { type: 'ram', size: '16M' } }], attributes: { generateNodeAcls: true } }],
        },
      ],
    });
    const r = await cli(['check-config', p]);
    expect(r.code).toBe(EXIT_OK);
    expect(r.out).toBe(`${p}: OK: 1 target, 1 TPG, 1 LUN, portals: tcp 127.0.0.1:3261`);
    expect(r.err).toMatch(/warning: targets\[0\]\.tpgs\[0\]: ACLs are off/);
  });

  it('a bad file: every error with its path, exit 1', async () => {
    const p = file('bad.json', {
      targets: [{ iqn: 'iqn.2025-01.com.example:a', tpgs: [{ portals: [{ port: 'abc' }], luns: [{ lun: -1, backstore: 'nope' }] }] }],
    });
    const r = await cli(['check-config', p]);
    expect(r.code).toBe(EXIT_FAILURE);
    expect(r.err.split('\n')).toEqual([
      `${p}: error: targets[0].tpgs[0].portals[0].port: must be an integer 1–65535, got "abc"`,
      `${p}: error: targets[0].tpgs[0].luns[0].lun: must be an integer 0–16383, got -1`,
      `${p}: error: targets[0].tpgs[0].luns[0].backstore: names no entry in backstores[], got "nope"`,
      `${p}: warning: targets[0].tpgs[0]: has no acls[] and attributes.generateNodeAcls is false: no initiator can log in`,
      `${p}: 3 errors`,
    ]);
  });

  it('a missing file and bad JSON are one line each', async () => {
    const r = await cli(['check-config', join(dir, 'missing.json')]);
    expect(r.code).toBe(EXIT_FAILURE);
    expect(r.err).toBe(`rdma-target: ${join(dir, 'missing.json')}: no such file`);
    const p = file('syntax.json', '{"targets": [');
    const s = await cli(['check-config', p]);
    expect(s.code).toBe(EXIT_FAILURE);
    expect(s.err.split('\n')[0]).toMatch(new RegExp(`^${p}: error: invalid JSON`));
  });
});

describe('rdma-target serving (fake engine)', () => {
  it('serves the embedded default on --listen, prints how to connect, stops with exit 0', async () => {
    const c = capture();
    let daemon: Daemon | undefined;
    const sock = join(dir, 'ctl.sock');
    const cfg = file('serve.json', {
      control: { socket: sock },
      backstores: [{ name: 'r', type: 'ram', size: '1M' }],
      targets: [{ iqn: 'iqn.2025-01.com.example:s', tpgs: [{ luns: [{ lun: 0, backstore: 'r' }], attributes: { generateNodeAcls: true } }] }],
    });
    const p = run(['--config', cfg, '--listen', '127.0.0.1:0'], { io: c.io, engine: fakeEngine(), signals: false, onStarted: (d) => (daemon = d) });
    await vi_waitFor(() => daemon !== undefined);
    const port = daemon!.portals[0]!.port;
    expect(c.out).toContain(`listening on tcp 127.0.0.1:${port} for iqn.2025-01.com.example:s`);
    expect(c.out).toContain(`  discover:  iscsiadm -m discovery -t st -p 127.0.0.1:${port}`);
    expect(c.out).toContain(`  libiscsi:  iscsi://127.0.0.1:${port}/iqn.2025-01.com.example:s/0`);

    const st = capture();
    expect(await run(['status', '--socket', sock], { io: st.io })).toBe(EXIT_OK);
    expect(JSON.parse(st.out.join('\n')).portals[0].port).toBe(port);

    const v = capture();
    expect(await run(['ctl', 'version', '--socket', sock], { io: v.io })).toBe(EXIT_OK);
    expect(JSON.parse(v.out.join('\n')).version).toMatch(/^\d+\.\d+\.\d+$/);
    const bad = capture();
    expect(await run(['ctl', 'frobnicate', '{}', '--socket', sock], { io: bad.io })).toBe(EXIT_FAILURE);
    expect(bad.err).toEqual(['rdma-target: frobnicate: unknown command "frobnicate"; try "help"']);

    await daemon!.stop();
    expect(await p).toBe(EXIT_OK);
  });

  it('warns when a file holding CHAP secrets is readable by others', async () => {
    const cfg = file('chap.json', {
      control: false,
      backstores: [{ name: 'r', type: 'ram', size: '1M' }],
      targets: [
        {
          iqn: 'iqn.2025-01.com.example:c',
          tpgs: [
            {
              luns: [{ lun: 0, backstore: 'r' }],
              attributes: { authentication: true },
              acls: [{ initiator: 'iqn.2025-01.com.example:i', chap: { userid: 'u', password: 'twelve-chars' } }],
            },
          ],
        },
      ],
    });
    chmodSync(cfg, 0o644);
    const c = capture();
    let daemon: Daemon | undefined;
    const p = run(['--config', cfg, '--listen', '127.0.0.1:0'], { io: c.io, engine: fakeEngine(), signals: false, onStarted: (d) => (daemon = d) });
    await vi_waitFor(() => daemon !== undefined);
    await daemon!.stop();
    expect(await p).toBe(EXIT_OK);
    expect(c.err).toContain(`warning: ${cfg} holds CHAP secrets and is readable by everyone (mode 0644); chmod 600 ${cfg}`);
  });

  it('status without a daemon is one line, exit 1', async () => {
    const st = capture();
    expect(await run(['status', '--socket', join(dir, 'nobody.sock')], { io: st.io })).toBe(EXIT_FAILURE);
    expect(st.err).toEqual([`rdma-target: control socket ${join(dir, 'nobody.sock')}: no daemon is listening there`]);
  });

  it('a start-up failure is one line naming the field, no stack trace without --debug', async () => {
    const cfg = file('fail.json', {
      control: false,
      backstores: [{ name: 'f', type: 'file', path: '/nonexistent/x.img' }],
      targets: [
        { iqn: 'iqn.2025-01.com.example:f', tpgs: [{ portals: [{ port: 0 }], luns: [{ lun: 0, backstore: 'f' }], attributes: { generateNodeAcls: true } }] },
      ],
    });
    const c = capture();
    const enoent = Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    const code = await run(['--config', cfg, '--listen', '127.0.0.1:0'], { io: c.io, engine: fakeEngine({ failOpen: enoent }), signals: false });
    expect(code).toBe(EXIT_FAILURE);
    expect(c.err.filter((l) => !l.startsWith('warning:'))).toEqual([
      'rdma-target: backstores[0].path: cannot open file backstore: /nonexistent/x.img: no such file or directory (give a size to create it)',
    ]);
    const d = capture();
    await run(['--debug', '--config', cfg, '--listen', '127.0.0.1:0'], { io: d.io, engine: fakeEngine({ failOpen: enoent }), signals: false });
    expect(d.err.join('\n')).toMatch(/\n.*Error: ENOENT\n\s+at /);
  });
});

async function vi_waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}
