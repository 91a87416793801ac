// Shared vocabulary of the orchestrators: what a reconcile function is given (ReconcileContext), what it
// returns (decisions made of actions), and the task predicates every mode uses. Everything here is pure:
// no store, no clock, no I/O. See docs/design/orchestrator.md.
import { taskStateRank } from '../../api/objects.ts';
import { ALLOCATED_MESSAGE, allocatesNothingFor } from '../allocator/allocator.ts';

import type { Draft, Frozen, Node, Service, Task, TaskState, TaskStatus, UpdateStatus } from '../../api/objects.ts';

export type FTask = Frozen<Task>;
export type FService = Frozen<Service>;
export type FNode = Frozen<Node>;

// ---------------------------------------------------------------------------------------------- actions

/** Create a task (always in state 'new': the allocator gives it its network addresses, then 'pending'). */
export interface CreateAction {
  type: 'create';
  task: Draft<Task>;
}

/** Change a task the orchestrator read at `version`: its desiredState and/or (rarely) its status. */
export interface SetAction {
  type: 'set';
  taskId: string;
  version: number;
  desiredState?: TaskState;
  /**
   * Only for tasks no worker has (never scheduled: shut down directly) or whose node is gone (orphaned).
   * Everything else about a task's status is written by the dispatcher.
   */
  status?: TaskStatus;
}

/** Delete a task (history beyond the limit, removed tasks that have stopped). */
export interface DeleteAction {
  type: 'delete';
  taskId: string;
  version: number;
}

/** Write a service's updateStatus; with `rollback`, also swap spec and previousSpec and bump specVersion. */
export interface ServiceAction {
  type: 'service';
  serviceId: string;
  version: number;
  updateStatus: UpdateStatus;
  rollback?: boolean;
}

export type Action = CreateAction | SetAction | DeleteAction | ServiceAction;

/** Actions that must be committed together (e.g. shut the failed task down AND create its replacement). */
export interface Decision {
  /** Human-readable, for logs: `slot 3: restart (task x failed: exit 1)`. */
  reason: string;
  actions: Action[];
}

export interface ReconcileResult {
  decisions: Decision[];
  /** Earliest time (ms) at which reconciling again could decide something new (restart delay, monitor…). */
  wakeAt: number | null;
}

// ---------------------------------------------------------------------------------------------- context

export interface OrchestratorTuning {
  /**
   * A task shut down on a node that is down is marked 'orphaned' (so history can reap it) after this
   * long. Swarm: 24 h. Tasks on a node that was removed are orphaned at once.
   */
  orphanAfterMs: number;
  /**
   * A task that was told to stop but whose worker never reported it stopped is treated as stopped this
   * long (plus its stopGracePeriodMs) after it was last written, so its slot can be refilled.
   */
  stopTimeoutMs: number;
}

export const DEFAULT_TUNING: OrchestratorTuning = {
  orphanAfterMs: 24 * 3600 * 1000,
  stopTimeoutMs: 60_000,
};

export interface ReconcileContext {
  /** Current time, ms since the epoch. */
  now: number;
  /** Id generator for new tasks. */
  newId: () => string;
  /** Every node in the store, by id. */
  nodes: ReadonlyMap<string, FNode>;
  /** Cluster spec.taskHistoryLimit (negative = keep everything). */
  taskHistoryLimit: number;
  /**
   * When the runner saw a task enter 'running' (ms). Optional memory used by update monitoring; a new
   * leader starts without it and falls back to what the store says (see update.ts).
   */
  runningSince?: ReadonlyMap<string, number>;
  tuning?: Partial<OrchestratorTuning>;
}

export function tuningOf(ctx: Pick<ReconcileContext, 'tuning'>): OrchestratorTuning {
  return { ...DEFAULT_TUNING, ...ctx.tuning };
}

// --------------------------------------------------------------------------------------------- predicates

const R_ASSIGNED = taskStateRank('assigned');
const R_RUNNING = taskStateRank('running');
const R_COMPLETE = taskStateRank('complete');
const R_SHUTDOWN = taskStateRank('shutdown');

export function rank(s: TaskState): number {
  return taskStateRank(s);
}

/** Desired to run: desiredState is 'running' (services) or 'complete' (jobs), or earlier. */
export function wantsToRun(t: FTask): boolean {
  return taskStateRank(t.desiredState) <= R_COMPLETE;
}

/** Told to stop: desiredState 'shutdown' or 'remove'. */
export function toldToStop(t: FTask): boolean {
  return taskStateRank(t.desiredState) >= R_SHUTDOWN;
}

export function isFinished(t: FTask): boolean {
  return taskStateRank(t.status.state) >= R_COMPLETE;
}

/** No worker has it: the scheduler has not assigned it yet (new / pending). */
export function isUnassigned(t: FTask): boolean {
  return taskStateRank(t.status.state) < R_ASSIGNED;
}

export function isRunning(t: FTask): boolean {
  return taskStateRank(t.status.state) === R_RUNNING;
}

/**
 * Whether a task update can change what the orchestrator decides:
 *   'yes'      a change of desire, node, slot or spec version, an end, or an assignment;
 *   'running'  the task reached 'running' (or changed while running), and nothing above: this matters
 *              only to a service whose update is not settled (updateSettled);
 *   'no'       progress reported before 'running' (new → pending by the allocator; assigned → accepted →
 *              preparing → starting by the node) of a task desired to run on the same node and spec.
 * The reconcile functions read only whether such a task is assigned, running or finished, and 'running'
 * only in the updater (its progress and monitoring) and in a slot whose old task retires once its
 * replacement runs (a start-first update, which is not settled while such a slot exists). At scale these
 * steps are most task events (5 or 6 per task started), and each would otherwise cost a pass over every
 * task of the service: in the 150,000-replica create, the passes the 'running' reports started were 19
 * of the leader's 125 busy seconds (docs/design/scale.md).
 */
export function taskChange(old: FTask, t: FTask): 'yes' | 'running' | 'no' {
  if (old.desiredState !== t.desiredState || old.nodeId !== t.nodeId || old.specVersion !== t.specVersion || old.slot !== t.slot) return 'yes';
  if (!wantsToRun(t) || isFinished(old) || isFinished(t)) return 'yes';
  const a = taskStateRank(old.status.state);
  const b = taskStateRank(t.status.state);
  if (a >= R_ASSIGNED !== b >= R_ASSIGNED) return 'yes';
  return a >= R_RUNNING || b >= R_RUNNING ? 'running' : 'no';
}

/** taskChange for a service whose update is not settled (or not known): 'running' counts. */
export function taskChangeMatters(old: FTask, t: FTask): boolean {
  return taskChange(old, t) !== 'no';
}

/**
 * Is the service's update settled: none ever started, or the last one (or its rollback) completed? While
 * it is updating, paused or rolling back, its tasks reaching 'running' may move it on (taskChange).
 */
export function updateSettled(s: FService | undefined): boolean {
  if (s === undefined) return false;
  const st = s.updateStatus?.state;
  return st === undefined || st === 'completed' || st === 'rollback_completed';
}

/**
 * Is this update the echo of the orchestrator telling a task to stop, and nothing else: the desired
 * state moved to shutdown or remove, while the task is assigned, not finished, on a node that is up
 * (`node`: the task's node as the store has it now), with the same state, node, slot and spec version?
 * A pass after such an echo only arms the stop deadline (the pass that decided the stop saw the task
 * running), which the deciding pass arms itself (runner.ts). A stop of a task on a node that is gone or
 * down is not one: its pass may orphan the task.
 */
export function isStopEcho(old: FTask, t: FTask, node: FNode | undefined): boolean {
  if (old.desiredState === t.desiredState || !toldToStop(t)) return false;
  if (old.status.state !== t.status.state || old.nodeId !== t.nodeId || old.slot !== t.slot || old.specVersion !== t.specVersion) return false;
  if (isFinished(t) || isUnassigned(t) || t.nodeId === undefined) return false;
  return node !== undefined && node.id === t.nodeId && node.status.state !== 'down';
}

/** The task's node no longer exists or is down: nobody will report on it. */
export function nodeGone(t: FTask, nodes: ReadonlyMap<string, FNode>): boolean {
  if (t.nodeId === undefined) return false;
  const n = nodes.get(t.nodeId);
  return n === undefined || n.status.state === 'down';
}

/** ms of an ISO timestamp, or `fallback` when absent / unparseable. */
export function ms(iso: string | undefined, fallback = 0): number {
  if (!iso) return fallback;
  const v = Date.parse(iso);
  return Number.isFinite(v) ? v : fallback;
}

/**
 * When the task entered its current state, on the managers' clock: the store's updatedAt (the time of
 * the transaction that wrote the state), falling back to the worker-reported status timestamp.
 */
export function stateSince(t: FTask): number {
  return ms(t.updatedAt, ms(t.status.timestamp));
}

/** Has a task that was told to stop actually stopped (or can it be considered stopped)? */
export function isStopped(t: FTask, ctx: ReconcileContext): boolean {
  if (isFinished(t) || isUnassigned(t) || nodeGone(t, ctx.nodes)) return true;
  return ctx.now >= stopDeadline(t, ctx);
}

export function stopDeadline(t: FTask, ctx: ReconcileContext): number {
  return stopDeadlineFrom(stateSince(t), t, ctx.tuning);
}

/** stopDeadline for a task told to stop at `since` (ms): the runner arms it as it writes the stop. */
export function stopDeadlineFrom(since: number, t: FTask, tuning: Partial<OrchestratorTuning> | undefined): number {
  return since + (t.spec.stopGracePeriodMs ?? 10_000) + tuningOf({ tuning }).stopTimeoutMs;
}

/** Newest first: last written, then created, then id (deterministic). */
export function newestFirst(a: FTask, b: FTask): number {
  return ms(b.updatedAt) - ms(a.updatedAt) || ms(b.createdAt) - ms(a.createdAt) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

// -------------------------------------------------------------------------------------------- JSON utils

export function iso(msValue: number): string {
  return new Date(msValue).toISOString();
}

// ------------------------------------------------------------------------------------------------ plans

/**
 * Collects decisions while a reconcile function runs. It guarantees that no task is written by two
 * decisions of one plan (the second would be built on a stale read).
 */
export class Plan {
  readonly decisions: Decision[] = [];
  private readonly touched = new Set<string>();
  wakeAt: number | null = null;
  /** wake() calls so far, counted also when ignored (replicated.ts tells a quiet slot by it). */
  wakes = 0;

  constructor(readonly ctx: ReconcileContext) {}

  touchedTask(t: FTask): boolean {
    return this.touched.has(t.id);
  }

  /** Asks to be reconciled again at `at` (ignored if not in the future). */
  wake(at: number): void {
    this.wakes++;
    if (!Number.isFinite(at) || at <= this.ctx.now) return;
    if (this.wakeAt === null || at < this.wakeAt) this.wakeAt = at;
  }

  add(reason: string, actions: Action[]): void {
    if (actions.length === 0) return;
    for (const a of actions) if (a.type === 'set' || a.type === 'delete') this.touched.add(a.taskId);
    this.decisions.push({ reason, actions });
  }

  /**
   * Tells a task to stop (or be removed). A task no worker has yet is shut down right here (its status
   * becomes 'shutdown'), since no worker will ever report on it.
   */
  stop(t: FTask, desiredState: 'shutdown' | 'remove', why: string): SetAction | null {
    if (this.touched.has(t.id)) return null;
    const needDesired = taskStateRank(t.desiredState) < taskStateRank(desiredState);
    const needStatus = isUnassigned(t) && !isFinished(t);
    if (!needDesired && !needStatus) return null;
    const a: SetAction = { type: 'set', taskId: t.id, version: t.version };
    if (needDesired) a.desiredState = desiredState;
    if (needStatus) a.status = { state: 'shutdown', timestamp: iso(this.ctx.now), message: `shut down before it was scheduled: ${why}` };
    return a;
  }

  orphan(t: FTask, why: string): SetAction {
    return {
      type: 'set',
      taskId: t.id,
      version: t.version,
      status: { ...t.status, state: 'orphaned', timestamp: iso(this.ctx.now), message: `task orphaned: ${why}` },
    };
  }

  delete(t: FTask): DeleteAction {
    return { type: 'delete', taskId: t.id, version: t.version };
  }

  result(): ReconcileResult {
    return { decisions: this.decisions, wakeAt: this.wakeAt };
  }
}

/** Drops nulls (Plan.stop returns null when there is nothing to change). */
export function acts(...xs: (Action | null | undefined)[]): Action[] {
  return xs.filter((x): x is Action => x !== null && x !== undefined);
}

// --------------------------------------------------------------------------------------------- new tasks

export interface NewTaskOptions {
  slot?: number;
  nodeId?: string;
  /** 'running' for services, 'complete' for jobs. */
  desiredState: 'running' | 'complete';
}

/** status.message of a task the orchestrator just created. */
export const CREATED_MESSAGE = 'created';

/**
 * A new task of `service`: a copy of the task template and the current specVersion, state 'new'. The
 * allocator (manager/allocator) gives it its network attachments and moves it to 'pending'; then the
 * scheduler places it. A task the allocator would give nothing (no overlay network, no published port:
 * allocatesNothingFor) is created 'pending' with the allocator's message, one commit sooner. Replicated
 * tasks carry a slot and no node (the scheduler assigns one); global tasks are created already bound to
 * their node (the scheduler validates it and moves them to 'assigned').
 */
export function newTask(service: FService, ctx: ReconcileContext, o: NewTaskOptions): Draft<Task> {
  const t: Draft<Task> = {
    id: ctx.newId(),
    kind: 'task',
    serviceId: service.id,
    spec: structuredClone(service.spec.task) as Task['spec'],
    specVersion: service.specVersion,
    desiredState: o.desiredState,
    status: allocatesNothingFor(service.spec)
      ? { state: 'pending', timestamp: iso(ctx.now), message: ALLOCATED_MESSAGE }
      : { state: 'new', timestamp: iso(ctx.now), message: CREATED_MESSAGE },
    serviceAnnotations: { name: service.spec.name, labels: { ...service.spec.labels } },
    networks: [],
  };
  if (o.slot !== undefined) t.slot = o.slot;
  if (o.nodeId !== undefined) t.nodeId = o.nodeId;
  return t;
}

/** 'replicated' | 'global' | 'replicatedJob' | 'globalJob' */
export type ModeName = 'replicated' | 'global' | 'replicatedJob' | 'globalJob';

export function modeOf(service: FService): ModeName {
  const m = service.spec.mode;
  if ('replicated' in m) return 'replicated';
  if ('global' in m) return 'global';
  if ('replicatedJob' in m) return 'replicatedJob';
  return 'globalJob';
}

/** Re-exported for convenience of the mode modules. */
export type { UpdateStatus };
