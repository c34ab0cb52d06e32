// Host microbenchmark of the engine's SCSI command path: from "a SCSI Command PDU arrives
// at the engine" (TransportSink.receive) to "the SCSI Response PDU is handed to the
// transport" (IscsiTransport.sendPdu), on a RAM LUN, with an in-memory transport.
//   npm run build && node --expose-gc scripts/bench/engine-cmd.mjs [N] [--only CASE,...]
//   node --expose-gc --cpu-prof --cpu-prof-dir=/tmp/prof scripts/bench/engine-cmd.mjs 200000 --only iser-read-qd1
//   node scripts/bench/engine-cmd.mjs 50000 --only iser-read-qd1 --alloc-prof /tmp/a.heapprofile
//     (allocation sampling of the measured run, collected objects included: where the bytes go)
//   RT_BENCH_STATS=off node --expose-gc scripts/bench/engine-cmd.mjs   (LU command counters off: their cost by A/B)
//   RT_BENCH_SAMPLE=1 node --expose-gc scripts/bench/engine-cmd.mjs    (latency measured for every command, not 1 in 16)
//   RT_BENCH_EVICT_KB=8192 node --expose-gc scripts/bench/engine-cmd.mjs 2000 --only iser-read-qd1
//     (before each command, untimed, write that many KiB of other memory, as the kernel and the
//     initiator do between two commands of a real target; the time reported is the engine's
//     calls only, each with cold caches: what the tight loop hides)
// Cases: iser-{read,write,write-imm} (RDMA WRITE / RDMA READ / 4 KiB immediate data) and
// tcp-{read,write-imm} (Data-In PDUs with the status collapsed; immediate data), each at
// queue depth 1 and 32. Reported: ns/command (wall time over N commands after a warm-up)
// and bytes allocated per command (JS heap and ArrayBuffer memory, from chunks of commands
// during which no GC ran). The fake initiator preallocates everything it sends, so what is
// measured is the engine's own cost. Not a test: no assertions on times.

import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { IscsiTarget } from '../../dist/iscsi/target.js';
import { encodeBhs, decodeBhs } from '../../dist/iscsi/pdu.js';
import { encodeText, decodeText } from '../../dist/iscsi/text.js';
import { RamBackstore } from '../../dist/backstore/ram.js';
import { LogicalUnit } from '../../dist/scsi/lu.js';
import { LunView } from '../../dist/scsi/view.js';

const OP_SCSI_COMMAND = 0x01;
const OP_LOGIN_REQUEST = 0x03;
const OP_SCSI_RESPONSE = 0x21;
const OP_LOGIN_RESPONSE = 0x23;
const OP_DATA_IN = 0x25;
const BS = 4096; // one 4 KiB command = 8 blocks of 512 bytes
const LUN_BLOCKS = 2048 * 8; // 64 MiB

const args = process.argv.slice(2);
const N = Number(args.find((a) => /^\d+$/.test(a)) ?? 200000);
const onlyIdx = args.indexOf('--only');
const only = onlyIdx >= 0 ? new Set(args[onlyIdx + 1].split(',')) : undefined;
const profIdx = args.indexOf('--alloc-prof');
const allocProf = profIdx >= 0 ? args[profIdx + 1] : undefined;
const silent = {
  debug() {},
  info() {},
  warn(m) {
    console.error(m);
  },
  error(m) {
    console.error(m);
  },
  child() {
    return silent;
  },
  isLevelEnabled(level) {
    return level === 'warn' || level === 'error';
  },
};
const DONE = Promise.resolve();
const EVICT = Number(process.env.RT_BENCH_EVICT_KB ?? 0) * 1024;
const evictBuf = new Uint8Array(EVICT);
let evictN = 0;
function evict() {
  evictN++;
  for (let i = 0; i < EVICT; i += 64) evictBuf[i] = evictN;
}

class FakeTransport {
  kind;
  rdma;
  digests = false;
  recvDataSegmentLimit;
  sendDataSegmentLimit;
  localAddress = '10.0.0.1';
  localPort = 3260;
  remoteAddress = '10.0.0.2';
  remotePort = 40000;
  sink;
  last;
  onResponse;
  errors = 0;
  initiatorData = new Uint8Array(BS).fill(0xa5);
  constructor(rdma) {
    this.kind = rdma ? 'iser' : 'tcp';
    this.rdma = rdma;
    // As both real transports: the BHS is copied (iSER into a send slot, TCP into its
    // staging buffer) before sendPdu returns.
    this.copiesBhs = true;
    if (rdma) {
      this.recvDataSegmentLimit = 8192;
      this.sendDataSegmentLimit = 8192;
    } else {
      this.deliverDataIn = undefined;
      this.obtainDataOut = undefined;
    }
  }
  attach(sink) {
    this.sink = sink;
  }
  sendPdu(bhs, data) {
    const op = bhs[0] & 0x3f;
    if (op === OP_SCSI_RESPONSE || (op === OP_DATA_IN && (bhs[1] & 0x01) !== 0)) {
      // The first command of the nexus reports POWER ON (a unit attention); count others.
      if (bhs[3] !== 0) {
        this.errors++;
        if (process.env.DBG && this.errors < 3) console.log(Buffer.from(bhs).toString('hex'), data && Buffer.from(data).toString('hex'));
      }
      this.onResponse(((bhs[16] << 24) | (bhs[17] << 16) | (bhs[18] << 8) | bhs[19]) >>> 0);
    } else if (op === OP_LOGIN_RESPONSE) {
      this.last = { pdu: decodeBhs(Uint8Array.from(bhs)), data: data ? Uint8Array.from(data) : new Uint8Array(0) };
    }
    return undefined;
  }
  // iSER: the RDMA WRITE is posted (done at once, as for LUN memory); the RDMA READ
  // completes later, from the runner's loop (as a CQ completion would), not inside the call.
  deliverDataIn(_task, _from, _offset, done) {
    done(undefined);
  }
  obtainDataOut(_task, into, offset, done) {
    into.set(offset === 0 && into.length === BS ? this.initiatorData : this.initiatorData.subarray(offset, offset + into.length));
    this.reads[this.nReads++] = done;
  }
  // A preallocated list (no array growth and shrink per command: the engine's bytes are measured).
  reads = new Array(64).fill(undefined);
  nReads = 0;
  completeReads() {
    const r = this.reads;
    const n = this.nReads;
    this.nReads = 0;
    for (let i = 0; i < n; i++) {
      const d = r[i];
      r[i] = undefined;
      d(undefined);
    }
  }
  loginComplete() {}
  enterFullFeature() {}
  pauseReceive() {}
  resumeReceive() {}
  close() {
    this.sink.closed();
  }
}

function login(t) {
  const step = (csg, nsg, keys) => {
    const data = encodeText(keys);
    t.sink.receive({
      bhs: encodeBhs({
        opcode: OP_LOGIN_REQUEST,
        immediate: true,
        itt: 1,
        transit: true,
        cont: false,
        csg,
        nsg,
        versionMax: 0,
        versionMin: 0,
        isid: 0x400000000001,
        tsih: 0,
        cid: 0,
        cmdSN: 1,
        expStatSN: 0,
        dataLength: data.length,
      }),
      ahs: new Uint8Array(0),
      data,
    });
    if (t.last?.pdu.statusClass !== 0) throw new Error('login failed');
    return new Map(decodeText(t.last.data));
  };
  step(0, 1, [
    ['InitiatorName', 'iqn.2024-01.bench:init'],
    ['TargetName', 'iqn.2024-01.bench:target'],
    ['SessionType', 'Normal'],
    ['AuthMethod', 'None'],
  ]);
  const op = [
    ['HeaderDigest', 'None'],
    ['DataDigest', 'None'],
    ['ImmediateData', 'Yes'],
    ['InitialR2T', 'No'],
    ['MaxBurstLength', '262144'],
    ['FirstBurstLength', '65536'],
  ];
  if (t.rdma)
    op.push(
      ['RDMAExtensions', 'Yes'],
      ['InitiatorRecvDataSegmentLength', '262144'],
      ['TargetRecvDataSegmentLength', '8192'],
      ['MaxRecvDataSegmentLength', '8192'],
    );
  else op.push(['MaxRecvDataSegmentLength', '262144']);
  step(1, 3, op);
}

function setup(rdma) {
  // RT_BENCH_STATS=off: the LU keeps no command counters (lib/scsi/stats.ts), for an A/B of their cost.
  // RT_BENCH_SAMPLE=N: measure the latency of 1 in N commands (default 16; 1: every command).
  const lu = new LogicalUnit({
    backstore: new RamBackstore({ blockSize: 512, blockCount: LUN_BLOCKS }),
    name: 'bench',
    stats: process.env.RT_BENCH_STATS !== 'off',
    latencySampleEvery: Number(process.env.RT_BENCH_SAMPLE ?? 16),
  });
  const core = new LunView([{ lun: 0, lu, readOnly: false }]);
  const target = new IscsiTarget({
    core,
    nopInterval: 0,
    loginTimeout: 0,
    log: silent,
    tpgs: [{ iqn: 'iqn.2024-01.bench:target', generateNodeAcls: true, cmdsnDepth: 128 }],
  });
  const t = new FakeTransport(rdma);
  target.accept(t);
  login(t);
  return { target, t };
}

/** One preallocated command slot per queue position: its BHS, RxPdu and immediate data. */
function makeSlots(qd, write, imm) {
  const slots = [];
  for (let i = 0; i < qd; i++) {
    const bhs = new Uint8Array(48);
    bhs[0] = OP_SCSI_COMMAND;
    bhs[1] = 0x80 | (write ? 0x20 : 0x40) | 1; // F, W or R, SIMPLE
    bhs[5] = 0;
    bhs[6] = imm ? (BS >> 8) & 0xff : 0;
    bhs[7] = 0; // DataSegmentLength
    bhs[20] = 0;
    bhs[21] = 0;
    bhs[22] = BS >> 8;
    bhs[23] = 0; // EDTL 4096
    bhs[32] = write ? 0x2a : 0x28; // WRITE(10) / READ(10)
    bhs[39] = 0;
    bhs[40] = 8; // TRANSFER LENGTH 8 blocks (CDB bytes 7-8)
    const data = imm ? new Uint8Array(BS).fill(0x5a) : new Uint8Array(0);
    slots.push({ bhs, data, rx: { bhs, ahs: new Uint8Array(0), data } });
  }
  return slots;
}

const w32 = (b, o, v) => {
  b[o] = v >>> 24;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
};

/**
 * Runs `count` commands at queue depth `qd`; resolves with the elapsed ns. The fake
 * initiator and its "CQ" take turns in one loop, as a transport's poll callback would: RDMA
 * READs complete, then every slot whose response came back issues its next command (never
 * from inside sendPdu). The loop itself allocates nothing per command (no microtask or
 * promise per batch), so the bytes measured are the engine's; it yields to the microtask
 * queue only when the engine waits on a promise of its own.
 */
function makeRunner(t, qd, write, imm) {
  const slots = makeSlots(qd, write, imm);
  const ready = new Int32Array(qd);
  let readyN = 0;
  let cmdSN = 1,
    itt = 0,
    issued = 0,
    done = 0;
  const issue = (slot) => {
    const s = slots[slot];
    const lba = ((issued * 8) % LUN_BLOCKS) >>> 0;
    w32(s.bhs, 16, ((slot << 24) | (itt++ & 0xffffff)) >>> 0); // ITT names the slot
    w32(s.bhs, 24, cmdSN);
    cmdSN = (cmdSN + 1) >>> 0;
    w32(s.bhs, 34, lba);
    issued++;
    if (imm) {
      // As a transport does: ask where the data segment goes, receive it there.
      const dst = t.sink.dataDestination(s.bhs, BS, true);
      if (dst) {
        dst.set(s.data);
        s.rx.data = dst;
      } else s.rx.data = s.data;
    }
    t.sink.receive(s.rx, undefined);
  };
  t.onResponse = (ittv) => {
    done++;
    ready[readyN++] = ittv >>> 24;
  };
  if (EVICT) {
    return async (count) => {
      const target = issued + count;
      let ns = 0n;
      readyN = 0;
      for (let i = 0; i < qd && issued < target; i++) {
        evict();
        const a = process.hrtime.bigint();
        issue(i);
        ns += process.hrtime.bigint() - a;
      }
      while (done < target) {
        const a = process.hrtime.bigint();
        let slot = -1;
        if (t.nReads > 0) t.completeReads();
        else if (readyN > 0) slot = ready[--readyN];
        ns += process.hrtime.bigint() - a;
        if (slot >= 0 && issued < target) {
          evict();
          const b = process.hrtime.bigint();
          issue(slot);
          ns += process.hrtime.bigint() - b;
        } else if (slot < 0 && t.nReads === 0 && readyN === 0 && done < target) await DONE;
      }
      return Number(ns);
    };
  }
  return async (count) => {
    const target = issued + count;
    readyN = 0; // every slot is idle between runs
    const start = process.hrtime.bigint();
    for (let i = 0; i < qd && issued < target; i++) issue(i);
    while (done < target) {
      if (t.nReads > 0) t.completeReads();
      else if (readyN > 0) {
        while (readyN > 0) {
          const slot = ready[--readyN];
          if (issued < target) issue(slot);
        }
      } else await DONE; // only when the engine itself waits on a promise
    }
    return Number(process.hrtime.bigint() - start);
  };
}

async function measure(name, rdma, write, imm, qd) {
  const { target, t } = setup(rdma);
  const run = makeRunner(t, qd, write, imm);
  await run(Math.min(N, 20000)); // warm-up: let the optimizing compiler settle
  globalThis.gc?.();
  t.errors = 0;
  let session;
  if (allocProf) {
    session = new Session();
    session.connect();
    await session.post('HeapProfiler.startSampling', {
      samplingInterval: 1024,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
  }
  const ns = await run(N);
  if (session) {
    const { profile } = await session.post('HeapProfiler.stopSampling');
    writeFileSync(allocProf, JSON.stringify(profile));
    session.disconnect();
  }
  if (t.errors) throw new Error(`${name}: ${t.errors} commands ended with a non-GOOD status`);
  // Allocation: chunks of commands with heap/ArrayBuffer usage before and after; chunks
  // during which a GC ran (usage fell) are discarded; the median of the rest is reported.
  const chunk = 500;
  const heap = [],
    ab = [];
  for (let i = 0; i < Math.max(20, Math.floor(N / chunk / 4)); i++) {
    const a = process.memoryUsage();
    await run(chunk);
    const b = process.memoryUsage();
    if (b.heapUsed >= a.heapUsed && b.arrayBuffers >= a.arrayBuffers) {
      heap.push((b.heapUsed - a.heapUsed) / chunk);
      ab.push((b.arrayBuffers - a.arrayBuffers) / chunk);
    }
  }
  const med = (xs) => (xs.length ? [...xs].sort((x, y) => x - y)[xs.length >> 1] : NaN);
  await target.shutdown(0);
  return { name, nsPerCmd: ns / N, heapBytes: med(heap), abBytes: med(ab), samples: heap.length };
}

const CASES = [
  ['iser-read', true, false, false],
  ['iser-write', true, true, false],
  ['iser-write-imm', true, true, true],
  ['tcp-read', false, false, false],
  ['tcp-write-imm', false, true, true],
];

console.log(
  `engine command path, ${N} x 4 KiB commands per case, node ${process.version}${globalThis.gc ? '' : ' (run with --expose-gc for steadier numbers)'}`,
);
console.log('case                  ns/cmd   heap B/cmd   ArrayBuffer B/cmd');
for (const [base, rdma, write, imm] of CASES) {
  for (const qd of [1, 32]) {
    const name = `${base}-qd${qd}`;
    if (only && !only.has(name) && !only.has(base)) continue;
    const r = await measure(name, rdma, write, imm, qd);
    console.log(`${name.padEnd(20)} ${r.nsPerCmd.toFixed(0).padStart(7)}   ${r.heapBytes.toFixed(0).padStart(10)}   ${r.abBytes.toFixed(0).padStart(17)}`);
  }
}
