// NOP-Out / NOP-In (RFC 7143 §11.18, §11.19).
//  - A NOP-Out with a valid ITT is a ping: answer with a NOP-In echoing its data, in CmdSN
//    order unless immediate; StatSN advances.
//  - A NOP-Out with ITT 0xffffffff answers our ping (TTT names it) and carries no CmdSN.
//  - Our keep-alive: when nothing arrives for `interval`, send a NOP-In with a TTT
//    (ITT 0xffffffff, StatSN not advanced); no answer within `timeout` drops the connection.

import type { ConnectionContext } from './context.js';
import { Opcode, RESERVED_TAG } from './opcodes.js';
import { encodeBhs, type NopInPdu, type NopOutPdu } from './pdu.js';

export function handleNopOut(conn: ConnectionContext, pdu: NopOutPdu, data: Uint8Array): void {
  if (pdu.itt === RESERVED_TAG) {
    if (pdu.ttt !== RESERVED_TAG) conn.nop.answered(pdu.ttt);
    return;
  }
  const echo = data.length ? Uint8Array.from(data) : undefined;
  conn.session!.order(pdu.cmdSN, pdu.immediate, () => {
    const s = conn.session!;
    conn.sendPdu(
      encodeBhs<NopInPdu>({
        opcode: Opcode.NopIn,
        itt: pdu.itt,
        dataLength: echo?.length ?? 0,
        lun: pdu.lun,
        ttt: RESERVED_TAG,
        statSN: conn.nextStatSN(),
        expCmdSN: s.expCmdSN,
        maxCmdSN: s.maxCmdSN,
      }),
      echo,
    );
  });
}

export class NopKeeper {
  private timer: NodeJS.Timeout | undefined;
  private outstanding: { ttt: number; sentAt: number } | undefined;
  /**
   * PDUs received, counted by the connection. The tick compares it with what it saw last
   * rather than the connection stamping each PDU with the time: a clock read per PDU is a
   * system call wherever the vDSO cannot serve it (the emulated test VM, some hypervisors).
   * So idleness is known to one tick (half the interval or timeout).
   */
  received = 0;
  private seen = 0;
  private lastReceive = Date.now();

  constructor(
    private readonly conn: ConnectionContext,
    private intervalMs: number,
    private timeoutMs: number,
  ) {}

  /** The timers of the connection's TPG, known once the login has picked it (before start). */
  configure(intervalMs: number, timeoutMs: number): void {
    this.intervalMs = intervalMs;
    this.timeoutMs = timeoutMs;
  }

  start(): void {
    if (this.intervalMs <= 0 || this.timer) return;
    const tick = Math.max(50, Math.min(this.intervalMs, this.timeoutMs || this.intervalMs) / 2);
    this.timer = setInterval(() => this.tick(), tick);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    const now = Date.now();
    if (this.received !== this.seen) {
      this.seen = this.received;
      this.lastReceive = now;
    }
    if (this.outstanding) {
      if (this.timeoutMs > 0 && now - this.outstanding.sentAt >= this.timeoutMs) {
        this.conn.drop(`no NOP-Out answer in ${this.timeoutMs} ms (RFC 7143 §11.19 keep-alive)`);
      }
      return;
    }
    if (now - this.lastReceive < this.intervalMs) return;
    const s = this.conn.session;
    if (!s) return;
    const ttt = this.conn.allocTtt();
    this.outstanding = { ttt, sentAt: now };
    this.conn.sendPdu(
      encodeBhs<NopInPdu>({
        opcode: Opcode.NopIn,
        itt: RESERVED_TAG,
        lun: 0n,
        ttt,
        statSN: this.conn.statSN,
        expCmdSN: s.expCmdSN,
        maxCmdSN: s.maxCmdSN,
      }),
    );
  }

  answered(ttt: number): void {
    if (this.outstanding?.ttt === ttt) this.outstanding = undefined;
  }
}
