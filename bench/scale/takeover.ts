// What a new leader's control loops do first at scale, in this process: the orchestrator, allocator and
// scheduler started on a store that already holds a converged cluster (every task running where it was
// placed), as they start when a manager wins an election. Nothing needs doing, so every millisecond is the
// cost of finding that out; what matters is the longest stretch the event loop cannot run (Raft's election
// timeout is 1 s: a longer one costs the new leader its term) and the time until the loops are quiet.
import { performance } from 'node:perf_hooks';
import { AllocatorRunner } from '../../manager/allocator/runner.ts';
import { Orchestrator } from '../../manager/orchestrator/runner.ts';
import { SchedulerRunner } from '../../manager/scheduler/runner.ts';
import type { Store } from '../../manager/store/store.ts';
import { startLoopProbe } from './loop-probe.ts';

export interface LoopFigures {
  /** Longest gap between two runs of a 5 ms timer from the loops' start until they were quiet. */
  longestBlockMs: number;
  /** From the start until no store write for `quietMs`. */
  quietAfterMs: number;
  /** Store writes (transactions) the loops made: 0 for a converged cluster. */
  writes: number;
  cpuMs: number;
}

export interface TakeoverFigures extends LoopFigures {
  /**
   * Then, on the same loops, one node marked Down (its tasks moved elsewhere), as the leader's liveness
   * check writes it: the same figures, from the write until quiet.
   */
  nodeDown?: LoopFigures & { moved: number };
}

/**
 * Runs the loops once until quiet (the leader that built the cluster: the ingress network, the nodes'
 * attachments), then measures fresh ones, as a newly elected leader starts them, and a node Down on them.
 */
export async function measureTakeover(store: Store, quietMs = 1000): Promise<TakeoverFigures> {
  await runLoops(store, quietMs, false);
  return runLoops(store, quietMs, true);
}

async function runLoops(store: Store, quietMs: number, nodeDown: boolean): Promise<TakeoverFigures> {
  let writes = 0;
  let lastWrite = performance.now();
  const unwatch = store.watch({}, () => {
    writes++;
    lastWrite = performance.now();
  });
  const loops = [new Orchestrator(store), new AllocatorRunner(store), new SchedulerRunner(store)];
  const probe = startLoopProbe();
  /** Does `action`, then waits until no store write for quietMs; the figures from the action on. */
  const untilQuiet = async (action: () => Promise<void> | void): Promise<LoopFigures> => {
    probe.reset();
    writes = 0;
    const u0 = process.cpuUsage();
    const t0 = performance.now();
    lastWrite = t0;
    await action();
    while (performance.now() - Math.max(lastWrite, t0) < quietMs) await new Promise((r) => setTimeout(r, 20));
    const u = process.cpuUsage(u0);
    return { longestBlockMs: probe.longest(), quietAfterMs: Math.max(lastWrite, t0) - t0, writes, cpuMs: (u.user + u.system) / 1000 };
  };
  try {
    const start = await untilQuiet(() => {
      for (const l of loops) l.start();
    });
    if (!nodeDown) return start;
    // One node Down: the tasks it ran are moved (the orchestrator), placed (the scheduler) and given
    // addresses (the allocator).
    const node = store.view((tx) => tx.list('node')[0]!);
    const moved = store.view((tx) => tx.tasksByNode(node.id).length);
    const down = await untilQuiet(async () => {
      await store.update((tx) => void tx.modify('node', node.id, (n) => void (n.status.state = 'down')));
    });
    return { ...start, nodeDown: { ...down, moved } };
  } finally {
    probe.stop();
    for (const l of loops) l.stop();
    unwatch();
  }
}
