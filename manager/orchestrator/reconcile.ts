// One entry point for the runner: reconcile a service (or the leftovers of a deleted one) from what the
// store holds. Pure.
import { reconcileGlobal } from './global.ts';
import { reconcileGlobalJob, reconcileReplicatedJob } from './jobs.ts';
import { reconcileDeleted } from './reaper.ts';
import { reconcileReplicated } from './replicated.ts';
import { modeOf } from './types.ts';
import type { FService, FTask, ReconcileContext, ReconcileResult } from './types.ts';

/**
 * Decisions for one service. `service` undefined = it was deleted: its tasks are removed.
 * `tasks` = every task of the service (history included).
 */
export function reconcileService(serviceId: string, service: FService | undefined, tasks: readonly FTask[], ctx: ReconcileContext): ReconcileResult {
  if (service === undefined) return reconcileDeleted(serviceId, tasks, ctx);
  switch (modeOf(service)) {
    case 'replicated':
      return reconcileReplicated(service, tasks, ctx);
    case 'global':
      return reconcileGlobal(service, tasks, ctx);
    case 'replicatedJob':
      return reconcileReplicatedJob(service, tasks, ctx);
    case 'globalJob':
      return reconcileGlobalJob(service, tasks, ctx);
  }
}
