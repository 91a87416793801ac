// What the leader tells a node about its tasks, as a pure function of what it told the node before on
// this session. Swarm's dispatcher sends a full set once per session and increments after it; Shoal's
// sent the full set on every change, and at 200 nodes × 50 tasks a rolling update of 10,000 tasks made
// that a fifth of the leader's CPU (bench:converge --profile: serializing and writing sets of which one
// task had changed), and as much again for the nodes that parse and reconcile them.
//
//   session starts ──▶ full set ('assignments') ──▶ changes only ('assignment-changes': set / remove)
//                         ▲                               │
//                         └── a send refused, a welcome ◀─┘   (the node's copy may be behind: start over)
//
// * A task is sent again when what its node is told changed (assignmentChanged: node, desire, spec,
//   networks, slot) or the desired state it is told differs (a stop held for the drain,
//   dispatcher/drain.ts, is told as 'running' until released). Not for a status the node itself
//   reported: at 5,000 nodes / 150,000 tasks, each node got one new task per scheduler pass, and every
//   such message also carried again, whole, each task whose state the node had reported since (several
//   per task: accepted, preparing, starting, running). A full set carries the recorded states; the agent
//   reads a task's state only when the task is new to it.
// * An agent that did not name 'assignment-changes' in its hello gets a full set every time, as before.
// * Nothing here reads the store, the clock or a socket: the dispatcher gives the tasks and the desired
//   states, and sends what comes back.
import { isTerminalTaskState, taskStateRank, type Task, type TaskState } from '../../api/objects.ts';
import type { ManagerToAgent } from '../../api/dispatcher.ts';
import type { TaskAssignment } from '../../api/task-status.ts';

/** What a session was told about one task: the object it was built from and the desired state told. */
export interface SentTask {
  obj: Task;
  desired: TaskState;
}

/** A node's task as it is to be told now. */
export interface LiveTask {
  task: Task;
  /** The desired state to tell (the task's own, or 'running' while its stop is held). */
  desired: TaskState;
}

export interface AssignmentPlan {
  /** The message to send; null when nothing changed since the last one. */
  message: Extract<ManagerToAgent, { t: 'assignments' | 'assignment-changes' }> | null;
  /** What the session will have been told once `message` is sent (keep it only if the send succeeds). */
  next: Map<string, SentTask>;
}

/** The assignment of a task as sent to its node. */
export function assignmentOf(t: Task, desired: TaskState): TaskAssignment {
  return {
    id: t.id,
    serviceId: t.serviceId,
    serviceName: t.serviceAnnotations?.name ?? '',
    ...(t.slot !== undefined ? { slot: t.slot } : {}),
    spec: t.spec,
    desiredState: desired,
    state: t.status.state,
    ...(t.networks?.length ? { networks: t.networks } : {}),
  };
}

/**
 * The next message to a node given its live tasks and what its session was told (`prev`; null: nothing
 * yet on this session, or the node's copy cannot be trusted, or the agent takes full sets only).
 */
export function planAssignments(prev: ReadonlyMap<string, SentTask> | null, live: readonly LiveTask[]): AssignmentPlan {
  const next = new Map<string, SentTask>();
  const set: TaskAssignment[] = [];
  for (const { task, desired } of live) {
    next.set(task.id, { obj: task, desired });
    const was = prev?.get(task.id);
    if (prev === null || was === undefined || was.desired !== desired || (was.obj !== task && assignmentChanged(was.obj, task)))
      set.push(assignmentOf(task, desired));
  }
  if (prev === null) return { message: { t: 'assignments', tasks: set }, next };
  const remove: string[] = [];
  for (const id of prev.keys()) if (!next.has(id)) remove.push(id);
  if (set.length === 0 && remove.length === 0) return { message: null, next };
  return { message: { t: 'assignment-changes', set, remove }, next };
}

/** Equal as JSON (objects decoded from the log are new objects even when unchanged). */
function sameJson(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

/** Live on its node: assigned (or further) and not finished. */
export function liveOnNode(state: Task['status']['state']): boolean {
  return taskStateRank(state) >= taskStateRank('assigned') && !isTerminalTaskState(state);
}

/**
 * Is the only change to the node's set that the task ended (its state became terminal, as the node
 * reported, or orphaned because the node is gone; node, desired state, spec, networks and slot
 * unchanged)? The node knows it already, or cannot hear it.
 */
export function onlyEnded(old: Task, t: Task): boolean {
  return (
    liveOnNode(old.status.state) &&
    !liveOnNode(t.status.state) &&
    isTerminalTaskState(t.status.state) &&
    old.nodeId === t.nodeId &&
    old.desiredState === t.desiredState &&
    old.slot === t.slot &&
    sameJson(old.spec, t.spec) &&
    sameJson(old.networks, t.networks)
  );
}

/**
 * Whether a task update changes what its node is told (TaskAssignment): the node, the desired state,
 * the spec, networks, slot or service name, or whether it is live on the node at all. A forward step
 * between live states (the node's own report) does not: SwarmKit's dispatcher skips those the same way
 * (its tasks are compared without their status).
 */
export function assignmentChanged(old: Task, t: Task): boolean {
  return (
    old.nodeId !== t.nodeId ||
    old.serviceAnnotations?.name !== t.serviceAnnotations?.name ||
    old.desiredState !== t.desiredState ||
    !sameJson(old.spec, t.spec) ||
    !sameJson(old.networks, t.networks) ||
    old.slot !== t.slot ||
    liveOnNode(old.status.state) !== liveOnNode(t.status.state)
  );
}
