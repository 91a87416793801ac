// Where a rolling update's time goes, slot by slot, read back from the tasks it left in the store.
//
// A stop-first update of slot s leaves two tasks: the old one (shut down; kept as history) and its
// replacement (running). Their timestamps split the slot's cycle into phases, each between two clocks
// of the same machine (lab hosts share it):
//
//   previous slot done ──▶ old task stopped at its agent     (window: orchestrator sees a slot done,
//        (committed)          (old.status.timestamp)          commits the next stop, dispatch, agent)
//   old task stopped ──▶ that report committed                (agent batch, dispatcher flush, Raft)
//        (old.updatedAt: the entry that wrote the stop)
//   stop committed ──▶ replacement created                     (orchestrator's reaction and commit)
//        (new.createdAt)
//   created ──▶ running at its agent                           (allocator, scheduler, dispatch, executor)
//        (new.status.timestamp)
//   running ──▶ that report committed                          (agent batch, dispatcher flush, Raft)
//        (new.updatedAt)
//
// "Previous slot done" pairs the i-th stop with the (i − parallelism)-th completion: with a sliding
// window of `parallelism` slots, a slot can only start once one has finished. Pure: tasks in, phases out.
import type { Task } from '../api/objects.ts';
import { type LatencySummary, summarize } from './stats.ts';

export interface SlotPhases {
  slots: number;
  /** Milliseconds per phase, over the slots that have both tasks. */
  window: LatencySummary;
  stopReported: LatencySummary;
  replaced: LatencySummary;
  started: LatencySummary;
  runningReported: LatencySummary;
  /** One slot's whole cycle: its stop at the agent → its replacement's running committed. */
  cycle: LatencySummary;
}

const ms = (iso: string) => Date.parse(iso);

export function slotPhases(tasks: readonly Task[], newVersion: number, parallelism: number): SlotPhases {
  const old = new Map<number, Task>();
  const neu = new Map<number, Task>();
  for (const t of tasks) {
    if (t.slot === undefined) continue;
    if (t.specVersion === newVersion) {
      if (t.status.state === 'running') neu.set(t.slot, t);
    } else if (t.status.state === 'shutdown') {
      // A slot restarted before the update may have older history: the latest stop is the update's.
      const had = old.get(t.slot);
      if (!had || ms(had.updatedAt) < ms(t.updatedAt)) old.set(t.slot, t);
    }
  }
  const pairs: { o: Task; n: Task }[] = [];
  for (const [slot, n] of neu) {
    const o = old.get(slot);
    if (o) pairs.push({ o, n });
  }
  const stops = pairs.map((p) => ms(p.o.status.timestamp)).sort((a, b) => a - b);
  const dones = pairs.map((p) => ms(p.n.updatedAt)).sort((a, b) => a - b);
  const window: number[] = [];
  for (let i = parallelism; i < stops.length; i++) window.push(stops[i]! - dones[i - parallelism]!);
  const of = (f: (p: { o: Task; n: Task }) => number) => summarize(pairs.map(f));
  return {
    slots: pairs.length,
    window: summarize(window),
    stopReported: of(({ o }) => ms(o.updatedAt) - ms(o.status.timestamp)),
    replaced: of(({ o, n }) => ms(n.createdAt) - ms(o.updatedAt)),
    started: of(({ n }) => ms(n.status.timestamp) - ms(n.createdAt)),
    runningReported: of(({ n }) => ms(n.updatedAt) - ms(n.status.timestamp)),
    cycle: of(({ o, n }) => ms(n.updatedAt) - ms(o.status.timestamp)),
  };
}

/** One line per phase: `label: p50 … ms, p99 … ms`. */
export function formatSlotPhases(p: SlotPhases): string[] {
  const line = (label: string, s: LatencySummary) => `${label}: p50 ${s.p50.toFixed(0)} ms, p99 ${s.p99.toFixed(0)} ms`;
  return [
    `slots measured: ${p.slots}`,
    line('a slot done (committed) -> the next stop at its agent', p.window),
    line('stop at the agent -> committed', p.stopReported),
    line('stop committed -> replacement created', p.replaced),
    line('replacement created -> running at its agent', p.started),
    line('running at the agent -> committed', p.runningReported),
    line('one slot, stop at the agent -> replacement running committed', p.cycle),
  ];
}
