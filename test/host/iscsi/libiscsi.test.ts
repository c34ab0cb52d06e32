// The real Linux userspace initiator (Debian libiscsi-bin) against the target on 127.0.0.1.
// Skipped where the tools are not installed. Uses the fake core until the SCSI core lands.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IscsiTarget } from '../../../lib/iscsi/target.js';
import { listenTcp, type TcpListener } from '../../../lib/transport/tcp.js';
import { FakeCore } from './helpers.js';

const run = promisify(execFile);
const IQN = 'iqn.2024-01.test:libiscsi';
const have = (tool: string): boolean => existsSync(`/usr/bin/${tool}`);

describe.skipIf(!have('iscsi-inq'))('libiscsi tools', () => {
  let target: IscsiTarget;
  let portal: TcpListener;
  let url: string;
  beforeAll(async () => {
    target = new IscsiTarget({ core: new FakeCore({ blocks: 8192 }), nopInterval: 0, tpgs: [{ iqn: IQN, generateNodeAcls: true }] });
    portal = await listenTcp(target, { address: '127.0.0.1', port: 0 });
    url = `iscsi://127.0.0.1:${portal.port}/${IQN}/0`;
  });
  afterAll(async () => {
    await target.shutdown(200);
    await portal.close(true);
  });

  it('iscsi-inq', async () => {
    const { stdout } = await run('iscsi-inq', [url], { timeout: 20000 });
    expect(stdout).toMatch(/Vendor:FAKE/);
  });
  it('iscsi-ls (SendTargets discovery, then REPORT LUNS / READ CAPACITY)', async () => {
    const { stdout } = await run('iscsi-ls', ['-s', `iscsi://127.0.0.1:${portal.port}`], { timeout: 20000 });
    expect(stdout).toContain(`Target:${IQN} Portal:127.0.0.1:${portal.port},1`);
    expect(stdout).toMatch(/Lun:0\s+Type:DIRECT_ACCESS/);
  });
  it('iscsi-readcapacity16', async () => {
    const { stdout } = await run('iscsi-readcapacity16', [url], { timeout: 20000 });
    expect(stdout).toContain('Total size:4194304');
  });
  it.skipIf(!have('iscsi-test-cu'))(
    'iscsi-test-cu -t iSCSI (cmdsn, datasn, residuals, TMF): no failures',
    async () => {
      const { stdout } = await run('iscsi-test-cu', ['-d', '-t', 'iSCSI', '-i', 'iqn.2024-01.test:i1', '--initiator-name-2', 'iqn.2024-01.test:i2', url], {
        timeout: 120000,
      });
      const summary = stdout.split('\n').find((l) => /^\s+tests\s/.test(l));
      expect(summary).toBeDefined();
      const [, total, ran, passed, failed] = summary!.trim().split(/\s+/).map(Number);
      expect(failed).toBe(0);
      expect(passed).toBe(ran);
      expect(total).toBeGreaterThanOrEqual(15);
    },
    130000,
  );
});
