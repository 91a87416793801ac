// The constraint enforcer: which nodes may keep (or get) a service's tasks. Pure.
//
// SwarmKit runs a separate enforcer that marks non-compliant tasks REJECTED and lets the orchestrator
// restart them. Shoal folds it into the reconcile functions: when a node is drained, goes down, is
// removed, or its labels / role change so that a running task's placement constraints fail, the
// reconciler sets that task's desiredState to 'shutdown' and, in the same transaction, creates its
// replacement (replicated services and jobs: same slot, any node; global services: none on that node).
// Paused nodes keep their tasks. Constraint text that does not parse is ignored (the API validates
// constraints before storing a spec; a bad one must not make the enforcer kill everything).
import { ConstraintError, firstFailing, parseConstraints } from '../scheduler/constraints.ts';
import type { Constraint, ConstraintNode } from '../scheduler/constraints.ts';
import { isFinished, isRunning, isUnassigned, wantsToRun } from './types.ts';
import type { FNode, FTask } from './types.ts';

/** constraintNode's answers per stored node (frozen: a changed node is a new object). */
const factsOf = new WeakMap<FNode, ConstraintNode>();

/** The node facts constraints are evaluated against. */
export function constraintNode(n: FNode): ConstraintNode {
  if (!Object.isFrozen(n)) return nodeFacts(n);
  let f = factsOf.get(n);
  if (f === undefined) factsOf.set(n, (f = nodeFacts(n)));
  return f;
}

function nodeFacts(n: FNode): ConstraintNode {
  return {
    id: n.id,
    hostname: n.description.hostname,
    role: n.spec.role,
    os: n.description.platform.os,
    arch: n.description.platform.arch,
    ip: n.status.addr || n.description.addr,
    labels: n.spec.labels,
  };
}

const parsed = new Map<string, Constraint[] | null>();
/**
 * The same, by array: tasks share their service's frozen spec (manager/store/shared-values.ts), so a pass
 * over 10,000 tasks meets the same array 10,000 times and need not build its text key each time.
 */
const parsedArrays = new WeakMap<readonly string[], Constraint[] | null>();

/** Parsed constraints (cached by text); null when they do not parse. */
export function constraintsOf(texts: readonly string[] | undefined): Constraint[] | null {
  if (texts === undefined || texts.length === 0) return [];
  const frozen = Object.isFrozen(texts);
  if (frozen) {
    const hit = parsedArrays.get(texts);
    if (hit !== undefined) return hit;
  }
  const cs = constraintsOfText(texts);
  if (frozen) parsedArrays.set(texts, cs);
  return cs;
}

function constraintsOfText(texts: readonly string[]): Constraint[] | null {
  const key = JSON.stringify(texts);
  let cs = parsed.get(key);
  if (cs === undefined) {
    try {
      cs = parseConstraints(texts);
    } catch (e) {
      if (!(e instanceof ConstraintError)) throw e;
      cs = null;
    }
    if (parsed.size > 10_000) parsed.clear();
    parsed.set(key, cs);
  }
  return cs;
}

/** The first constraint (text) the node fails, or null when it satisfies them all (or they do not parse). */
export function failingConstraint(texts: readonly string[] | undefined, n: FNode): string | null {
  const cs = constraintsOf(texts);
  if (cs === null || cs.length === 0) return null;
  const c = firstFailing(cs, constraintNode(n));
  return c === null ? null : c.text;
}

/**
 * Why a task that is placed on a node must move away, or null if it can stay: node removed, down,
 * drained, or one of the task's own placement constraints no longer holds.
 */
export function placementProblem(t: FTask, nodes: ReadonlyMap<string, FNode>): string | null {
  if (t.nodeId === undefined) return null;
  return problemOn(t, nodes.get(t.nodeId));
}

/** placementProblem with the task's node given (undefined: it no longer exists). */
export function problemOn(t: FTask, n: FNode | undefined): string | null {
  if (t.nodeId === undefined) return null;
  if (n === undefined) return `node ${t.nodeId} was removed`;
  if (n.status.state === 'down') return `node ${t.nodeId} is down`;
  if (n.spec.availability === 'drain') return `node ${t.nodeId} is drained`;
  const c = failingConstraint(t.spec.placement?.constraints, n);
  if (c !== null) return `node ${t.nodeId} no longer satisfies constraint ${c}`;
  return null;
}

/**
 * Is this task change the scheduler placing a task that is desired to run (no node and not assigned
 * before; assigned to a node now, same desire, spec version and slot) on a node that can keep it?
 * Such a change decides nothing: every reconcile function treats a task that is pending and one that is
 * assigned but not running alike, except that it checks where an assigned one is placed. So the runner
 * skips the pass (a third of a rolling update's passes), given the node as the store has it when the
 * change is seen. Any later change of that node reconciles every service with a task on it, this one
 * included: the assignment is in the store by then.
 */
export function isFitPlacement(old: FTask, t: FTask, node: FNode | undefined): boolean {
  if (old.nodeId !== undefined || t.nodeId === undefined || old.desiredState !== t.desiredState) return false;
  if (old.specVersion !== t.specVersion || old.slot !== t.slot || !wantsToRun(t)) return false;
  // Unassigned before; assigned now and neither running nor finished yet.
  if (!isUnassigned(old) || isUnassigned(t) || isRunning(t) || isFinished(t)) return false;
  return node?.id === t.nodeId && problemOn(t, node) === null;
}

/**
 * Global services: may node `n` run a task of a service with these constraints? Not down, not drained,
 * constraints satisfied. (Paused nodes keep their tasks; whether they get *new* ones is `acceptsNew`.)
 */
export function nodeKeeps(n: FNode | undefined, constraints: readonly string[] | undefined): string | null {
  if (n === undefined) return 'node was removed';
  if (n.status.state === 'down') return `node ${n.id} is down`;
  if (n.spec.availability === 'drain') return `node ${n.id} is drained`;
  const c = failingConstraint(constraints, n);
  if (c !== null) return `node ${n.id} does not satisfy constraint ${c}`;
  return null;
}

/** Global services: does `n` get a task it never had? Only active nodes (paused ones get nothing new). */
export function acceptsNew(n: FNode | undefined, constraints: readonly string[] | undefined): boolean {
  return n !== undefined && nodeKeeps(n, constraints) === null && n.spec.availability === 'active';
}
