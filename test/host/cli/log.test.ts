// The daemon's one logger (pino behind lib/common/log.ts): the human format prints exactly the
// lines the daemon always printed, and --log-format json turns every line into a JSON object.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, EXIT_OK, EXIT_USAGE } from '../../../lib/cli/main.js';
import { createLogger, type LogFormat } from '../../../lib/target/logging.js';
import type { Daemon } from '../../../lib/target/daemon.js';
import { fakeEngine } from '../target/fake-engine.js';

function sink() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) }, out, err };
}

function logAll(format: LogFormat, debug: boolean) {
  const s = sink();
  const log = createLogger({ format, debug, sink: s.io });
  log.info('listening on tcp 127.0.0.1:3260 for iqn.2025-01.org.rdma-target:default');
  log.warn('backstores[1] (x) is used by no LUN; not opened');
  log.error('SIGHUP: 50% of nothing %s');
  log.debug('sessions closed after 3 ms');
  log.child({ initiator: 'iqn.1994-05.com.redhat:c1', isid: '0x23d000000001' }).info({ tsih: 1 }, 'session up');
  return s;
}

describe('logger', () => {
  it('human: info bare on stdout; warning/error/debug prefixed on stderr; fields as key=value', () => {
    const s = logAll('human', false);
    expect(s.out).toEqual([
      'listening on tcp 127.0.0.1:3260 for iqn.2025-01.org.rdma-target:default',
      'session up initiator=iqn.1994-05.com.redhat:c1 isid=0x23d000000001 tsih=1',
    ]);
    expect(s.err).toEqual(['warning: backstores[1] (x) is used by no LUN; not opened', 'error: SIGHUP: 50% of nothing %s']);
    expect(logAll('human', true).err).toContain('debug: sessions closed after 3 ms');
  });

  it('json: one object per line on stdout, with level, time, message and bound fields', () => {
    const s = logAll('json', false);
    expect(s.err).toEqual([]);
    const lines = s.out.map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      ['info', 'listening on tcp 127.0.0.1:3260 for iqn.2025-01.org.rdma-target:default'],
      ['warn', 'backstores[1] (x) is used by no LUN; not opened'],
      ['error', 'SIGHUP: 50% of nothing %s'],
      ['info', 'session up'],
    ]);
    expect(lines[3]).toMatchObject({ initiator: 'iqn.1994-05.com.redhat:c1', isid: '0x23d000000001', tsih: 1 });
    expect(Number.isNaN(Date.parse(lines[0].time))).toBe(false);
  });

  it("rdma-target --log-format json: the daemon's lines, ready lines included, are JSON", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rt-log-'));
    const cfg = join(dir, 'c.json');
    writeFileSync(
      cfg,
      JSON.stringify({
        control: false,
        backstores: [
          { name: 'r', type: 'ram', size: '1M' },
          { name: 'unused', type: 'ram', size: '1M' },
        ],
        targets: [{ iqn: 'iqn.2025-01.com.example:s', tpgs: [{ luns: [{ lun: 0, backstore: 'r' }], attributes: { generateNodeAcls: true } }] }],
      }),
    );
    const s = sink();
    let daemon: Daemon | undefined;
    const p = run(['--config', cfg, '--listen', '127.0.0.1:0', '--log-format', 'json'], {
      io: s.io,
      engine: fakeEngine(),
      signals: false,
      onStarted: (d) => (daemon = d),
    });
    for (let i = 0; i < 200 && !daemon; i++) await new Promise((r) => setTimeout(r, 10));
    await daemon!.stop();
    expect(await p).toBe(EXIT_OK);
    expect(s.err).toEqual([]);
    const lines = s.out.map((l) => JSON.parse(l));
    expect(lines).toContainEqual(expect.objectContaining({ level: 'warn', msg: expect.stringMatching(/^targets\[0\]\.tpgs\[0\]: ACLs are off/) }));
    expect(lines).toContainEqual(
      expect.objectContaining({
        level: 'info',
        msg: expect.stringMatching(new RegExp(`^rdma-target \\S+ serving ${cfg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(pid \\d+\\)$`)),
      }),
    );
    expect(lines).toContainEqual(
      expect.objectContaining({ level: 'info', msg: expect.stringMatching(/^listening on tcp 127\.0\.0\.1:\d+ for iqn\.2025-01\.com\.example:s$/) }),
    );
  });

  it('isLevelEnabled: debug only with --debug (data-path debug lines ask it before building their message)', () => {
    for (const format of ['human', 'json'] as const) {
      expect(createLogger({ format, debug: false, sink: sink().io }).isLevelEnabled('debug')).toBe(false);
      expect(createLogger({ format, debug: false, sink: sink().io }).child({ tsih: 1 }).isLevelEnabled('info')).toBe(true);
      expect(createLogger({ format, debug: true, sink: sink().io }).child({ tsih: 1 }).isLevelEnabled('debug')).toBe(true);
    }
  });

  it('--log-format takes human or json', async () => {
    const s = sink();
    expect(await run(['--log-format', 'xml'], { io: s.io, engine: fakeEngine(), signals: false })).toBe(EXIT_USAGE);
    expect(s.err[0]).toBe('rdma-target: --log-format: must be human or json, got "xml"');
  });
});
