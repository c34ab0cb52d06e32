// A minimal iSCSI/TCP initiator for host experiments without a kernel initiator: logs in
// (operational stage only: the target must not require CHAP) and keeps QD WRITE(10)s of BS
// bytes in flight, the data sent as immediate data, for SECS seconds; prints IOPS and MiB/s.
// Used to reproduce the garbage collector's behaviour under large writes
// (docs/benchmarks/profile.md, "TCP write 128k qd8"):
//   node --trace-gc dist/cli/main.js --listen 127.0.0.1:3299 --rdma off &
//   node scripts/bench/tcp-writes.mjs 127.0.0.1 3299 iqn.2025-01.org.rdma-target:default 131072 8 5
// A Unit Attention (the new I_T nexus) is counted as done; any other status ends the run.
import net from 'node:net';

const [host = '127.0.0.1', port = '3260', target = 'iqn.2025-01.org.rdma-target:default', BS = '131072', QD = '8', SECS = '10', BLOCK = '512'] =
  process.argv.slice(2);
const bs = Number(BS);
const qd = Number(QD);
const block = Number(BLOCK);
const span = (56 * 1024 * 1024) / block; // LBAs written round-robin: fits a 64 MiB LUN
const data = Buffer.alloc(bs, 0x5a);
const s = net.connect(Number(port), host);
let rx = Buffer.alloc(0);
let cmdSN = 1;
let expStatSN = 0;
let itt = 1;
let lba = 0;
let done = 0;
let inflight = 0;
let stop = false;
let t0 = 0n;

function send(bhs, payload) {
  s.cork();
  s.write(bhs);
  if (payload) {
    s.write(payload);
    const pad = (4 - (payload.length % 4)) % 4;
    if (pad) s.write(Buffer.alloc(pad));
  }
  s.uncork();
}

function login() {
  const keys = [
    'InitiatorName=iqn.2025-01.org.rdma-target:tcp-writes',
    'SessionType=Normal',
    `TargetName=${target}`,
    'HeaderDigest=None',
    'DataDigest=None',
    'ImmediateData=Yes',
    'InitialR2T=No',
    'MaxRecvDataSegmentLength=262144',
    'FirstBurstLength=262144',
    'MaxBurstLength=1048576',
  ];
  const text = Buffer.from(`${keys.join('\0')}\0`);
  const bhs = Buffer.alloc(48);
  bhs[0] = 0x43; // Login Request, immediate
  bhs[1] = 0x87; // T=1, CSG=1 (operational), NSG=3 (full feature)
  bhs.writeUIntBE(text.length, 5, 3);
  bhs.writeUIntBE(0x400000000001, 8, 6); // ISID
  bhs.writeUInt32BE(cmdSN, 24);
  send(bhs, text);
}

function write() {
  const bhs = Buffer.alloc(48);
  bhs[0] = 0x01; // SCSI Command
  bhs[1] = 0xa1; // F, W, SIMPLE
  bhs.writeUIntBE(bs, 5, 3);
  bhs.writeUInt32BE(itt++, 16);
  bhs.writeUInt32BE(bs, 20);
  bhs.writeUInt32BE(cmdSN++, 24);
  bhs.writeUInt32BE(expStatSN, 28);
  bhs[32] = 0x2a; // WRITE(10)
  bhs.writeUInt32BE(lba, 34);
  bhs.writeUInt16BE(bs / block, 39);
  lba = (lba + bs / block) % span;
  inflight++;
  send(bhs, data);
}

function fail(why) {
  console.error(why);
  process.exit(1);
}

s.on('connect', login);
s.on('error', (e) => fail(e.message));
s.on('data', (chunk) => {
  rx = rx.length ? Buffer.concat([rx, chunk]) : chunk;
  while (rx.length >= 48) {
    const dataLength = rx.readUIntBE(5, 3);
    const total = 48 + ((dataLength + 3) & ~3);
    if (rx.length < total) break;
    const opcode = rx[0] & 0x3f;
    if (opcode === 0x23) {
      if (rx[36] !== 0) fail(`login refused: status class ${rx[36]} detail ${rx[37]}`);
      if (!(rx[1] & 0x80)) fail('the target wants another login step (CHAP?): not supported here');
      expStatSN = rx.readUInt32BE(24) + 1;
      t0 = process.hrtime.bigint();
      setTimeout(() => (stop = true), Number(SECS) * 1000);
      for (let i = 0; i < qd; i++) write();
    } else if (opcode === 0x21) {
      // SCSI Response: status GOOD, or CHECK CONDITION with UNIT ATTENTION (sense key at data byte 4).
      if (rx[3] !== 0 && !(rx[3] === 2 && (rx[52] & 0x0f) === 6)) fail(`status 0x${rx[3].toString(16)}, sense key ${rx[52] & 0x0f}`);
      expStatSN = rx.readUInt32BE(24) + 1;
      inflight--;
      done++;
      if (!stop) write();
      else if (inflight === 0) {
        const secs = Number(process.hrtime.bigint() - t0) / 1e9;
        console.log(
          `${done} writes of ${bs} bytes at qd${qd} in ${secs.toFixed(1)} s: ${(done / secs).toFixed(0)} IOPS, ${((done * bs) / secs / 1048576).toFixed(1)} MiB/s`,
        );
        s.destroy();
      }
    } else if (opcode === 0x31) fail('R2T: this initiator sends all data unsolicited');
    rx = rx.subarray(total);
  }
});
