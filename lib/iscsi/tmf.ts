// Task Management Function Request / Response (RFC 7143 §11.5, §11.6), mapped onto the
// core's taskManagement. The iSCSI layer first marks the affected tasks aborted so that
// their responses are not sent (§4.2.3.3 / SAM-5: an aborted task gets no status) and
// their pending R2T / unsolicited-data waits release the core.

import { TmfFunction, type TmfResponse } from '../scsi/types.js';
import type { ConnectionContext } from './context.js';
import { snLess } from './core.js';
import { IscsiTmfFunction, IscsiTmfResponse, Opcode } from './opcodes.js';
import { encodeBhs, type TmfRequestPdu, type TmfResponsePdu } from './pdu.js';
import type { IscsiTask } from './scsi-cmd.js';

export function handleTmf(conn: ConnectionContext, pdu: TmfRequestPdu): void {
  const s = conn.session!;
  s.order(pdu.cmdSN, pdu.immediate, () => {
    void run().catch((e: Error) => {
      conn.log.warn(`TMF ${pdu.fn} failed: ${e.message}`);
      respond(IscsiTmfResponse.Rejected);
    });
  });

  function respond(code: number): void {
    if (conn.phase !== 'full-feature') return;
    conn.sendPdu(
      encodeBhs<TmfResponsePdu>({
        opcode: Opcode.TaskMgmtResponse,
        itt: pdu.itt,
        response: code,
        statSN: conn.nextStatSN(),
        expCmdSN: s.expCmdSN,
        maxCmdSN: s.maxCmdSN,
      }),
    );
  }

  function abortWhere(pred: (t: IscsiTask) => boolean, why: string): void {
    for (const t of s.tasks.values()) if (pred(t)) t.abort(why);
  }

  async function core(fn: TmfFunction, lun: bigint, tag?: number): Promise<number> {
    if (!s.core || !s.nexus) return IscsiTmfResponse.NotSupported;
    const r: TmfResponse = await s.core.taskManagement(fn, s.nexus, lun, tag);
    return r as number;
  }

  async function run(): Promise<void> {
    switch (pdu.fn) {
      case IscsiTmfFunction.AbortTask: {
        const t = s.tasks.get(pdu.rtt);
        if (!t || t.finished) {
          // §11.5.1: a task whose command has not arrived yet but whose RefCmdSN is inside
          // the window is considered aborted: answer Function complete and never run it.
          if (!s.inWindow(pdu.refCmdSN) || snLess(pdu.refCmdSN, s.expCmdSN)) return respond(IscsiTmfResponse.TaskDoesNotExist);
          s.discard.add(pdu.refCmdSN);
          return respond(IscsiTmfResponse.FunctionComplete);
        }
        t.abort('ABORT TASK');
        const r = await core(TmfFunction.AbortTask, t.lun, pdu.rtt);
        // The core may not know a task that never reached it (queued for CmdSN order).
        return respond(r === IscsiTmfResponse.TaskDoesNotExist ? IscsiTmfResponse.FunctionComplete : r);
      }
      case IscsiTmfFunction.AbortTaskSet:
      case IscsiTmfFunction.ClearTaskSet:
        abortWhere((t) => t.lun === pdu.lun, 'ABORT/CLEAR TASK SET');
        return respond(await core(pdu.fn === IscsiTmfFunction.AbortTaskSet ? TmfFunction.AbortTaskSet : TmfFunction.ClearTaskSet, pdu.lun));
      case IscsiTmfFunction.ClearAca:
        return respond(await core(TmfFunction.ClearAca, pdu.lun));
      case IscsiTmfFunction.LogicalUnitReset:
        abortWhere((t) => t.lun === pdu.lun, 'LOGICAL UNIT RESET');
        return respond(await core(TmfFunction.LogicalUnitReset, pdu.lun));
      case IscsiTmfFunction.TargetWarmReset:
      case IscsiTmfFunction.TargetColdReset: {
        abortWhere(() => true, 'TARGET RESET');
        const cold = pdu.fn === IscsiTmfFunction.TargetColdReset;
        respond(await core(cold ? TmfFunction.TargetColdReset : TmfFunction.TargetWarmReset, 0n));
        // §11.5.1: after a cold reset the target drops all its connections.
        if (cold) conn.target.resetSessionsOf(s.tpg, 'TARGET COLD RESET');
        return;
      }
      case IscsiTmfFunction.TaskReassign:
        return respond(IscsiTmfResponse.ReassignmentNotSupported); // §11.5.1: needs ERL 2
      default:
        return respond(IscsiTmfResponse.NotSupported);
    }
  }
}
