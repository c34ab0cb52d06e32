// Task management functions (SAM-5 7) on one LU. Each resolves once the tasks it aborted
// have ended (bounded by the task set's abortWaitMs, for a task stuck waiting on its
// initiator's data), so no aborted write reaches the medium after the function is
// reported complete. The fabric suppresses the status of tasks it aborted itself; tasks of
// other I_T nexuses end with TASK ABORTED (TAS=1 in the control mode page).

import type { LogicalUnit } from './lu.js';
import { Asc } from './sense.js';
import { nexusKey } from './task.js';
import { TmfFunction, TmfResponse, type Nexus } from './types.js';

export async function taskManagement(lu: LogicalUnit, fn: TmfFunction, nexus: Nexus, tag?: number): Promise<TmfResponse> {
  const key = nexusKey(nexus);
  const ts = lu.tasks;
  switch (fn) {
    case TmfFunction.AbortTask: {
      const r = ts.find(key, tag);
      if (!r) return TmfResponse.TaskDoesNotExist;
      await ts.abortAndWait([r]);
      return TmfResponse.Complete;
    }
    case TmfFunction.QueryTask:
      return ts.find(key, tag) ? TmfResponse.Complete : TmfResponse.TaskDoesNotExist;
    case TmfFunction.AbortTaskSet:
      await ts.abortAndWait(ts.of(key));
      return TmfResponse.Complete;
    case TmfFunction.ClearTaskSet:
      // With TAS=1 the other nexuses' tasks end with TASK ABORTED instead of a COMMANDS
      // CLEARED BY ANOTHER INITIATOR unit attention (SAM-5 7.4).
      await ts.abortAndWait(ts.of());
      return TmfResponse.Complete;
    case TmfFunction.LogicalUnitReset:
    case TmfFunction.TargetWarmReset:
      await lu.reset(Asc.BusDeviceReset);
      return TmfResponse.Complete;
    case TmfFunction.TargetColdReset:
      await lu.reset(Asc.PowerOnReset);
      return TmfResponse.Complete;
    case TmfFunction.ClearAca:
      // NACA is never accepted, so there is no ACA condition to clear (SAM-5 7.3).
      return TmfResponse.Complete;
    default:
      return TmfResponse.NotSupported;
  }
}
