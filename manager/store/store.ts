// Shoal's replicated object store (the model is SwarmKit's memory store): the one place cluster state
// lives. Reconcilers read it, write it in transactions, and watch it.
//
// Writes. `update(fn)` runs `fn` against a WriteTx: a private overlay on top of the applied state, so the
// transaction reads its own writes. Writes are checked eagerly (a stale version fails at once), then the
// coalesced changes are encoded into ONE Raft proposal. When that entry is applied (on every manager, in
// log order), `apply()` re-checks every precondition against the then-current state (other transactions
// may have committed in between) and applies all of the entry or none of it. The proposer's promise
// resolves with apply()'s result: the commit index, or the ConflictError / ValidationError that made the
// entry a no-op; `update()` rejects with that error.
//
// Without a proposer the store commits locally (single process, in-memory): the entry is applied at once
// with the next local index. Both paths encode and decode the same bytes.
//
// Limits. Every create and update is checked against the cluster's limits (object size, labels, name
// length, tasks in the cluster; limits.ts) when it is written into the transaction, as part of the eager
// checks; apply() does not re-check them, so replaying an old log never depends on today's limits.
//
// Determinism. apply() depends only on the current state and the entry's bytes: timestamps come from the
// proposer's clock and travel in the entry; versions are the entry's index. Replaying the same entries on
// the same snapshot yields byte-identical snapshots.
//
// Immutability. Every object the store holds is deep-frozen; reads and events hand out those frozen
// objects themselves (no copies). Edit a copy (`mutable(obj)`, or WriteTx.modify) and write it back.
//
// Watches. Events are queued per subscriber during apply() and delivered afterwards from a microtask,
// never inside apply(); see watch().
import type { StateMachine } from '../raft/node.ts';
import type { EntryType } from '../raft/types.ts';
import { CLUSTER_ID, KINDS, TASK_STATES, deepFreeze } from '../../api/objects.ts';
import { checkStoredObject, checkTaskBudget, limitsOf } from './limits.ts';
import { SHARED_TASK_FIELDS, ValuePool } from './shared-values.ts';
import type { AnyObject, Cluster, ClusterLimits, Draft, Frozen, Kind, NamedKind, ObjectOf, Task } from '../../api/objects.ts';
import {
  BatchError,
  ConflictError,
  NameInUseError,
  NotFoundError,
  StoreError,
  StoreResetError,
  TxTooLargeError,
  ValidationError,
  WatchOverflowError,
} from './errors.ts';

// ------------------------------------------------------------------------------------------------ errors

// The error classes live in errors.ts; they are re-exported here because most callers import the store.
export {
  BatchError,
  ConflictError,
  LimitExceededError,
  NameInUseError,
  NotFoundError,
  StoreError,
  StoreResetError,
  TxTooLargeError,
  ValidationError,
  WatchOverflowError,
} from './errors.ts';

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

// ---------------------------------------------------------------------------------------------- API types

/** Swarm's limit on one transaction (grpc message size): 1.5 MiB encoded. */
export const MAX_TX_BYTES = 1.5 * 1024 * 1024;
/** Default per-subscriber queue bound. */
export const DEFAULT_WATCH_QUEUE = 100_000;

/** Leading byte of an encoded transaction: JSON body, version 1. */
export const TX_FORMAT_JSON_V1 = 1;
/** Leading byte of a store snapshot: JSON body, version 1 (read, no longer written). */
export const SNAPSHOT_FORMAT_JSON_V1 = 1;
/** Leading byte of a store snapshot: JSON body with shared task values, version 2 (see snapshot()). */
export const SNAPSHOT_FORMAT_JSON_V2 = 2;

export interface StoreOptions {
  /** Replicates an encoded transaction (RaftNode.propose). Absent: commit locally, in memory. */
  propose?: (data: Uint8Array) => Promise<unknown>;
  /** Linearizable read barrier (RaftNode.read), used by linearizableView. */
  read?: () => Promise<void>;
  /** Clock for transaction timestamps. Default: new Date(). */
  now?: () => Date;
  /** Largest encoded transaction. Default MAX_TX_BYTES. */
  maxTxBytes?: number;
  /**
   * This manager's node id, carried in every transaction it proposes (`by`). Only the leader of a term
   * proposes entries of that term, so the first transaction of a term names its leader the same way on
   * every manager, also when the log is replayed after a restart (manager/events: leader events).
   */
  proposer?: string;
}

/** What apply() needs of a Raft entry (RaftNode passes a whole Entry). */
export interface StoreEntry {
  index: number;
  data: Uint8Array;
  term?: number;
  type?: EntryType;
}

export type StoreEventType = 'create' | 'update' | 'delete';

export interface StoreEvent<K extends Kind = Kind> {
  type: StoreEventType;
  kind: K;
  /** The new object (create, update) or the object as it was when deleted (delete). */
  object: Frozen<ObjectOf<K>>;
  /** update only: the previous object. */
  old?: Frozen<ObjectOf<K>>;
  /** Commit index of the transaction; all events of one transaction share it and arrive together. */
  index: number;
  /** The transaction's timestamp (its proposer's clock, carried in the entry): the same on every manager. */
  time: string;
  /** Raft term of the entry, when the applier passed it (StoreEntry.term). */
  term?: number;
  /** Node id of the manager that proposed the transaction (StoreOptions.proposer), when it said. */
  by?: string;
}

export interface WatchOptions {
  /** Only these kinds (default: all). */
  kinds?: readonly Kind[];
  /** Only events for which this returns true. Runs inside apply(): keep it pure and cheap; a throw closes the watch. */
  predicate?(ev: StoreEvent): boolean;
  /** Events queued but not yet handled before the watch is closed with WatchOverflowError. Default DEFAULT_WATCH_QUEUE. */
  maxQueue?: number;
  /**
   * Called (from a microtask) when the store closes the watch: WatchOverflowError, StoreResetError, or
   * the error the handler threw. Not called when the subscriber unsubscribes itself.
   */
  onClose?(err: Error): void;
}

/** A consistent read of the store. Objects are deep-frozen. */
export interface ReadTx {
  /** Index of the applied state this view reads (a WriteTx reads the live applied state under its own writes). */
  readonly index: number;
  get<K extends Kind>(kind: K, id: string): Frozen<ObjectOf<K>> | undefined;
  /** All objects of a kind (creation order), optionally filtered. */
  list<K extends Kind>(kind: K, filter?: (obj: Frozen<ObjectOf<K>>) => boolean): Frozen<ObjectOf<K>>[];
  /** The first object of a kind (creation order) that matches. */
  find<K extends Kind>(kind: K, predicate: (obj: Frozen<ObjectOf<K>>) => boolean): Frozen<ObjectOf<K>> | undefined;
  /**
   * Service or network by spec.name, node by description.hostname; case-insensitive. Node hostnames are
   * not unique: the first node created with that hostname is returned.
   */
  byName<K extends NamedKind>(kind: K, name: string): Frozen<ObjectOf<K>> | undefined;
  /** Tasks of a service (order unspecified). */
  tasksByService(serviceId: string): Frozen<Task>[];
  /** Tasks assigned to a node (order unspecified). */
  tasksByNode(nodeId: string): Frozen<Task>[];
  /** Tasks of a replicated service's slot, current and historic (order unspecified). */
  tasksBySlot(serviceId: string, slot: number): Frozen<Task>[];
  /** How many objects of a kind there are (a write transaction counts its own creates and deletes). O(1). */
  count(kind: Kind): number;
  /**
   * How many tasks of a service are desired and reported running (what `service ls` shows). O(1) in a
   * view; a write transaction with writes of its own counts the service's tasks.
   */
  runningTasks(serviceId: string): number;
}

type DraftOf<K extends Kind> = Draft<ObjectOf<K>>;

/** A transaction: reads see its own writes. Errors thrown by writes leave the transaction unchanged. */
export interface WriteTx extends ReadTx {
  /** The transaction's timestamp (ISO-8601): createdAt/updatedAt of everything it writes. */
  readonly now: string;
  /**
   * Creates an object. ConflictError if the id exists, NameInUseError for a taken service/network name,
   * ValidationError if malformed, LimitExceededError past a cluster limit (object size, labels, name
   * length, tasks in the cluster; see limits.ts). Returns the pending object (version 0 until committed).
   */
  create<K extends Kind>(obj: Frozen<DraftOf<K>> & { readonly kind: K }): Frozen<ObjectOf<K>>;
  /**
   * Replaces an object. `obj.version` must equal the version this transaction sees (ConflictError
   * otherwise, also if the object no longer exists). createdAt is kept; version/updatedAt are assigned.
   * LimitExceededError when the change makes the object break a cluster limit (see limits.ts).
   */
  update<K extends Kind>(obj: Frozen<ObjectOf<K>> & { readonly kind: K }): Frozen<ObjectOf<K>>;
  /** Reads, copies, edits and updates in one step. NotFoundError if absent. */
  modify<K extends Kind>(kind: K, id: string, edit: (draft: ObjectOf<K>) => void): Frozen<ObjectOf<K>>;
  /**
   * Deletes an object. With `version`, it must match (ConflictError); without, the version this
   * transaction sees now is required at apply time. NotFoundError if absent (without `version`).
   */
  delete(kind: Kind, id: string, version?: number): void;
}

// ------------------------------------------------------------------------------------------- internals

/** Internal, loosely typed view of any stored (frozen) object. */
type Obj = Frozen<AnyObject>;
type Body = Record<string, unknown> & { id: string; kind: Kind };

const KIND_SET: ReadonlySet<string> = new Set(KINDS);
const TASK_STATE_SET: ReadonlySet<string> = new Set(TASK_STATES);
const utf8 = new TextEncoder();
const utf8d = new TextDecoder('utf-8', { fatal: true });

function keyOf(kind: Kind, id: string): string {
  return `${kind}\u0000${id}`;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Multimap key -> ids (insertion-ordered). */
/**
 * Keys to ids. A key with one id holds the id itself, not a Set of one: most keys of the slot index name
 * one task (150,000 one-element Sets were ≈ 20 % of a snapshot install's CPU and ≈ 0.1 KB a task).
 */
class Multi<K = string> {
  private readonly m = new Map<K, string | Set<string>>();
  get size(): number {
    return this.m.size;
  }
  add(k: K, id: string): void {
    const cur = this.m.get(k);
    if (cur === undefined) this.m.set(k, id);
    else if (typeof cur === 'string') {
      if (cur !== id) this.m.set(k, new Set([cur, id]));
    } else cur.add(id);
  }
  remove(k: K, id: string): void {
    const cur = this.m.get(k);
    if (cur === undefined) return;
    if (typeof cur === 'string') {
      if (cur === id) this.m.delete(k);
      return;
    }
    cur.delete(id);
    if (cur.size === 1) this.m.set(k, cur.values().next().value as string);
  }
  get(k: K): Iterable<string> | undefined {
    const cur = this.m.get(k);
    return typeof cur === 'string' ? [cur] : cur;
  }
}

/** Tasks by service and slot: numbers under a service, not a string built per task (`id\0slot`). */
class SlotIndex {
  private readonly m = new Map<string, Multi<number>>();
  add(serviceId: string, slot: number, id: string): void {
    let s = this.m.get(serviceId);
    if (s === undefined) this.m.set(serviceId, (s = new Multi<number>()));
    s.add(slot, id);
  }
  remove(serviceId: string, slot: number, id: string): void {
    const s = this.m.get(serviceId);
    if (s === undefined) return;
    s.remove(slot, id);
    if (s.size === 0) this.m.delete(serviceId);
  }
  get(serviceId: string, slot: number): Iterable<string> | undefined {
    return this.m.get(serviceId)?.get(slot);
  }
}

function nameKey(name: string): string {
  return name.toLowerCase();
}

/** The name an object is indexed under, if any. */
function nameOf(o: Obj): string | undefined {
  switch (o.kind) {
    case 'service':
    case 'network':
    case 'secret':
    case 'config':
      return nameKey(o.spec.name);
    case 'node':
      return nameKey(o.description.hostname);
    default:
      return undefined;
  }
}

/** A task `runningTasks` counts: desired and reported running. */
function countsAsRunning(t: Pick<Task, 'desiredState' | 'status'>): boolean {
  return t.desiredState === 'running' && t.status.state === 'running';
}

/** Secondary indexes over a set of objects. */
class Indexes {
  readonly names: Record<NamedKind, Multi> = { service: new Multi(), network: new Multi(), node: new Multi(), secret: new Multi(), config: new Multi() };
  readonly taskService = new Multi();
  readonly taskNode = new Multi();
  readonly taskSlot = new SlotIndex();
  /**
   * Per service, its tasks desired and reported running. `service ls` and `service inspect` show it, and
   * counting it over the service's tasks on every call was 4.3 of the leader's 125 busy seconds while a
   * client polled a 150,000-replica service every 500 ms (docs/design/scale.md).
   */
  readonly running = new Map<string, number>();

  add(o: Obj): void {
    if (o.kind === 'task') {
      this.taskService.add(o.serviceId, o.id);
      if (o.nodeId !== undefined) this.taskNode.add(o.nodeId, o.id);
      if (o.slot !== undefined) this.taskSlot.add(o.serviceId, o.slot, o.id);
      if (countsAsRunning(o)) this.running.set(o.serviceId, (this.running.get(o.serviceId) ?? 0) + 1);
    } else if (o.kind !== 'cluster') {
      const n = nameOf(o);
      if (n !== undefined) this.names[o.kind].add(n, o.id);
    }
  }

  remove(o: Obj): void {
    if (o.kind === 'task') {
      this.taskService.remove(o.serviceId, o.id);
      if (o.nodeId !== undefined) this.taskNode.remove(o.nodeId, o.id);
      if (o.slot !== undefined) this.taskSlot.remove(o.serviceId, o.slot, o.id);
      if (countsAsRunning(o)) {
        const n = (this.running.get(o.serviceId) ?? 0) - 1;
        if (n > 0) this.running.set(o.serviceId, n);
        else this.running.delete(o.serviceId);
      }
    } else if (o.kind !== 'cluster') {
      const n = nameOf(o);
      if (n !== undefined) this.names[o.kind].remove(n, o.id);
    }
  }
}

/** The applied state. */
class State {
  index = 0;
  objects = new Map<Kind, Map<string, Obj>>(KINDS.map((k) => [k, new Map()]));
  idx = new Indexes();

  /** Takes over another state's contents (restore), so views and transactions holding this one see them. */
  replaceWith(other: State): void {
    this.index = other.index;
    this.objects = other.objects;
    this.idx = other.idx;
  }

  table(kind: Kind): Map<string, Obj> {
    return this.objects.get(kind)!;
  }

  put(kind: Kind, id: string, obj: Obj | null): void {
    const t = this.table(kind);
    const prev = t.get(id);
    if (prev !== undefined) this.idx.remove(prev);
    if (obj === null) {
      t.delete(id);
    } else {
      t.set(id, obj);
      this.idx.add(obj);
    }
  }
}

/** Pending change of one object inside a transaction or an entry being applied. */
interface Rec {
  kind: Kind;
  id: string;
  /** Version when the transaction first touched it (null = absent then). */
  expect: number | null;
  /** Current pending value (null = deleted / absent). */
  cur: Obj | null;
  /** Deleted and created again within the transaction (encoded as delete + create). */
  recreated: boolean;
  /** JSON of `cur` without the store-assigned fields (null when cur is null). */
  body: string | null;
  /** Encoded operations and their UTF-8 size (commas between operations excluded). */
  ops: string[];
  bytes: number;
}

/** Changes layered over the applied state. */
class Overlay {
  readonly recs = new Map<string, Rec>();
  readonly idx = new Indexes();
  /** Per kind: objects created minus objects deleted (kept by Tx only; apply() does not count). */
  readonly counts = new Map<Kind, number>();
}

/** Read access to state + optional overlay. */
class View implements ReadTx {
  constructor(
    protected readonly state: State,
    protected readonly ov: Overlay | null,
  ) {}

  get index(): number {
    return this.state.index;
  }

  protected rec(kind: Kind, id: string): Rec | undefined {
    return this.ov?.recs.get(keyOf(kind, id));
  }

  protected getObj(kind: Kind, id: string): Obj | undefined {
    const r = this.rec(kind, id);
    if (r !== undefined) return r.cur ?? undefined;
    return this.state.table(kind).get(id);
  }

  protected listObj(kind: Kind, filter?: (o: Obj) => boolean): Obj[] {
    const out: Obj[] = [];
    const base = this.state.table(kind);
    const ov = this.ov !== null && this.ov.recs.size > 0 ? this.ov : null;
    for (const [id, o] of base) {
      const r = ov?.recs.get(keyOf(kind, id));
      const cur = r !== undefined ? r.cur : o;
      if (cur !== null && (filter === undefined || filter(cur))) out.push(cur);
    }
    if (ov !== null) {
      for (const r of ov.recs.values()) {
        if (r.kind === kind && r.cur !== null && !base.has(r.id) && (filter === undefined || filter(r.cur))) out.push(r.cur);
      }
    }
    return out;
  }

  /** Objects of `kind` whose index `sel` has `key`: applied ones not overridden by the overlay, then pending ones. */
  protected lookup(kind: Kind, sel: (ix: Indexes) => Iterable<string> | undefined): Obj[] {
    const out: Obj[] = [];
    const base = sel(this.state.idx);
    const table = this.state.table(kind);
    // A pass reads before it writes: with nothing pending, no per-object key is built (at 20,000 tasks
    // of a service those strings were most of a rolling-update pass's store time and garbage).
    const ov = this.ov !== null && this.ov.recs.size > 0 ? this.ov : null;
    if (base !== undefined) {
      for (const id of base) {
        if (ov?.recs.has(keyOf(kind, id))) continue;
        const o = table.get(id);
        if (o !== undefined) out.push(o);
      }
    }
    if (ov !== null) {
      const pending = sel(ov.idx);
      if (pending !== undefined) {
        for (const id of pending) {
          const cur = ov.recs.get(keyOf(kind, id))?.cur;
          if (cur) out.push(cur);
        }
      }
    }
    return out;
  }

  get<K extends Kind>(kind: K, id: string): Frozen<ObjectOf<K>> | undefined {
    return this.getObj(kind, id) as Frozen<ObjectOf<K>> | undefined;
  }

  list<K extends Kind>(kind: K, filter?: (obj: Frozen<ObjectOf<K>>) => boolean): Frozen<ObjectOf<K>>[] {
    return this.listObj(kind, filter as ((o: Obj) => boolean) | undefined) as Frozen<ObjectOf<K>>[];
  }

  find<K extends Kind>(kind: K, predicate: (obj: Frozen<ObjectOf<K>>) => boolean): Frozen<ObjectOf<K>> | undefined {
    const pred = predicate as (o: Obj) => boolean;
    const ov = this.ov;
    const base = this.state.table(kind);
    for (const [id, o] of base) {
      const r = ov?.recs.get(keyOf(kind, id));
      const cur = r !== undefined ? r.cur : o;
      if (cur !== null && pred(cur)) return cur as Frozen<ObjectOf<K>>;
    }
    if (ov !== null) {
      for (const r of ov.recs.values()) {
        if (r.kind === kind && r.cur !== null && !base.has(r.id) && pred(r.cur)) return r.cur as Frozen<ObjectOf<K>>;
      }
    }
    return undefined;
  }

  byName<K extends NamedKind>(kind: K, name: string): Frozen<ObjectOf<K>> | undefined {
    return this.lookup(kind, (ix) => ix.names[kind].get(nameKey(name)))[0] as Frozen<ObjectOf<K>> | undefined;
  }

  /** Ids of other objects of `kind` that carry `name`. */
  protected namesakes(kind: NamedKind, name: string, exceptId: string): Obj[] {
    return this.lookup(kind, (ix) => ix.names[kind].get(nameKey(name))).filter((o) => o.id !== exceptId);
  }

  tasksByService(serviceId: string): Frozen<Task>[] {
    return this.lookup('task', (ix) => ix.taskService.get(serviceId)) as Frozen<Task>[];
  }

  tasksByNode(nodeId: string): Frozen<Task>[] {
    return this.lookup('task', (ix) => ix.taskNode.get(nodeId)) as Frozen<Task>[];
  }

  tasksBySlot(serviceId: string, slot: number): Frozen<Task>[] {
    return this.lookup('task', (ix) => ix.taskSlot.get(serviceId, slot)) as Frozen<Task>[];
  }

  runningTasks(serviceId: string): number {
    if (this.ov === null || this.ov.recs.size === 0) return this.state.idx.running.get(serviceId) ?? 0;
    let n = 0;
    for (const t of this.tasksByService(serviceId)) if (countsAsRunning(t)) n++;
    return n;
  }

  count(kind: Kind): number {
    return this.state.table(kind).size + (this.ov?.counts.get(kind) ?? 0);
  }
}

// ---------------------------------------------------------------------------------------- validation

/**
 * Throws ValidationError unless `v` is plain JSON data (undefined object properties are allowed and
 * dropped), naming where (`root`, then `.key` and `[i]` steps). The path is built only for the error: a
 * string per property visited was most of this check's cost and garbage on every write (a task is
 * checked at each of its creation, placement and status writes). Objects `known` says are already valid
 * (the store's pooled shared values, themselves parsed from JSON) are not walked again.
 */
function checkJson(v: unknown, root: string, known?: (o: object) => boolean): void {
  const at: (string | number)[] = [];
  const where = (): string => root + at.map((k) => (typeof k === 'number' ? `[${k}]` : `.${k}`)).join('');
  const walk = (x: unknown, depth: number): void => {
    if (depth > 64) throw new ValidationError(`${where()}: nested too deeply`);
    if (x === null || typeof x === 'string' || typeof x === 'boolean') return;
    if (typeof x === 'number') {
      if (!Number.isFinite(x)) throw new ValidationError(`${where()}: ${x} is not valid JSON`);
      return;
    }
    if (typeof x === 'object' && known?.(x)) return;
    if (Array.isArray(x)) {
      for (let i = 0; i < x.length; i++) {
        at.push(i);
        if (x[i] === undefined) throw new ValidationError(`${where()}: undefined in an array`);
        walk(x[i], depth + 1);
        at.pop();
      }
      return;
    }
    if (typeof x === 'object') {
      const proto = Object.getPrototypeOf(x) as unknown;
      if (proto !== Object.prototype && proto !== null) throw new ValidationError(`${where()}: not a plain object`);
      const o = x as Record<string, unknown>;
      for (const k of Object.keys(o)) {
        const y = o[k];
        if (y === undefined) continue;
        at.push(k);
        walk(y, depth + 1);
        at.pop();
      }
      return;
    }
    throw new ValidationError(`${where()}: a ${typeof x} is not JSON data`);
  };
  walk(v, 0);
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

/** Shape checks shared by transactions and apply(). Returns a problem or null. */
function shapeProblem(o: Record<string, unknown>): string | null {
  const { id, kind } = o;
  if (typeof kind !== 'string' || !KIND_SET.has(kind)) return `unknown kind ${JSON.stringify(kind)}`;
  if (typeof id !== 'string' || id.length === 0) return `${kind}: id must be a non-empty string`;
  const what = `${kind} ${id}`;
  if (!isPlainObject(o['spec'])) return `${what}: spec must be an object`;
  if (!isPlainObject(o['status'])) return `${what}: status must be an object`;
  const spec = o['spec'];
  const status = o['status'];
  switch (kind as Kind) {
    case 'cluster':
      if (id !== CLUSTER_ID) return `cluster id must be '${CLUSTER_ID}', not ${JSON.stringify(id)}`;
      break;
    case 'service':
      if (typeof spec['name'] !== 'string' || spec['name'].length === 0) return `${what}: spec.name must be a non-empty string`;
      if (!isInt(o['specVersion'])) return `${what}: specVersion must be an integer`;
      break;
    case 'network':
    case 'secret':
    case 'config':
      if (typeof spec['name'] !== 'string' || spec['name'].length === 0) return `${what}: spec.name must be a non-empty string`;
      break;
    case 'node': {
      const d = o['description'];
      if (!isPlainObject(d) || typeof d['hostname'] !== 'string') return `${what}: description.hostname must be a string`;
      break;
    }
    case 'task':
      if (typeof o['serviceId'] !== 'string') return `${what}: serviceId must be a string`;
      if (o['slot'] !== undefined && !isInt(o['slot'])) return `${what}: slot must be an integer`;
      if (o['nodeId'] !== undefined && typeof o['nodeId'] !== 'string') return `${what}: nodeId must be a string`;
      if (typeof o['desiredState'] !== 'string' || !TASK_STATE_SET.has(o['desiredState'])) return `${what}: bad desiredState`;
      if (typeof status['state'] !== 'string' || !TASK_STATE_SET.has(status['state'])) return `${what}: bad status.state`;
      break;
  }
  return null;
}

/**
 * The object as stored: envelope fields first, then the body's fields; deep-frozen. With a pool (applied
 * entries, not a transaction's drafts), a task's shared fields become the pool's copies (shared-values.ts).
 */
function materialize(body: Record<string, unknown>, version: number, createdAt: string, updatedAt: string, pool?: ValuePool): Obj {
  const out: Record<string, unknown> = { id: body['id'], kind: body['kind'], version, createdAt, updatedAt };
  for (const [k, v] of Object.entries(body)) {
    if (k === 'id' || k === 'kind' || k === 'version' || k === 'createdAt' || k === 'updatedAt') continue;
    if (k === '__proto__') Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
    else out[k] = v;
  }
  if (pool !== undefined && out['kind'] === 'task') pool.internTask(out);
  return deepFreeze(out) as unknown as Obj;
}

/** Encoded size of a stored object as a transaction would write it (without version and timestamps). */
function bodyBytes(o: Obj): number {
  return Buffer.byteLength(JSON.stringify({ ...o, version: undefined, createdAt: undefined, updatedAt: undefined }), 'utf8');
}

/**
 * Validates a caller's object and returns its JSON body (without store-assigned fields) and a parsed copy.
 * A task's shared fields (shared-values.ts) that are the pool's own objects are neither checked again nor
 * left as their fresh parse: the parsed copy holds the pooled object itself. It is what parsing its JSON
 * gives (pooled values are parsed from JSON themselves, deep-frozen), so the copy is the same value, and
 * the apply that follows finds it pooled (ValuePool.intern) instead of serialising it to look it up.
 */
function prepare(obj: unknown, pool?: ValuePool): { body: string; parsed: Body } {
  if (!isPlainObject(obj)) throw new ValidationError('store objects must be plain objects');
  const kind = obj['kind'];
  const known = pool !== undefined && kind === 'task' ? (o: object) => pool.has(o) : undefined;
  checkJson(obj, typeof kind === 'string' ? kind : 'object', known);
  const rest: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (k === 'version' || k === 'createdAt' || k === 'updatedAt') continue;
    if (k === '__proto__') Object.defineProperty(rest, k, { value: v, enumerable: true, writable: true, configurable: true });
    else rest[k] = v;
  }
  const body = JSON.stringify(rest);
  const parsed = JSON.parse(body) as Record<string, unknown>;
  const problem = shapeProblem(parsed);
  if (problem !== null) throw new ValidationError(problem);
  if (known !== undefined) {
    for (const f of SHARED_TASK_FIELDS) {
      const v = obj[f];
      if (typeof v === 'object' && v !== null && known(v)) parsed[f] = v;
    }
  }
  return { body, parsed: parsed as Body };
}

// ------------------------------------------------------------------------------------------ encoding

type Op = { op: 'create'; object: Body } | { op: 'update'; expect: number; object: Body } | { op: 'delete'; kind: Kind; id: string; expect: number };

interface DecodedTx {
  ts: string;
  by?: string;
  ops: Op[];
}

function encodeOps(r: Pick<Rec, 'kind' | 'id' | 'expect' | 'cur' | 'recreated' | 'body'>): string[] {
  const del = (expect: number) => `{"op":"delete","kind":${JSON.stringify(r.kind)},"id":${JSON.stringify(r.id)},"expect":${expect}}`;
  const create = (body: string) => `{"op":"create","object":${body}}`;
  if (r.expect === null) return r.body === null ? [] : [create(r.body)];
  if (r.body === null) return [del(r.expect)];
  if (r.recreated) return [del(r.expect), create(r.body)];
  return [`{"op":"update","expect":${r.expect},"object":${r.body}}`];
}

/**
 * The operations encodeOps writes, as decodeTx would read them back: `cur` is the transaction's parse of
 * exactly the JSON that `body` holds (prepare), so its fields and their order are what a follower decodes.
 */
function decodedOps(r: Pick<Rec, 'kind' | 'id' | 'expect' | 'cur' | 'recreated'>): Op[] {
  const del = (expect: number): Op => ({ op: 'delete', kind: r.kind, id: r.id, expect });
  const create = (o: Obj): Op => ({ op: 'create', object: o as unknown as Body });
  if (r.expect === null) return r.cur === null ? [] : [create(r.cur)];
  if (r.cur === null) return [del(r.expect)];
  if (r.recreated) return [del(r.expect), create(r.cur)];
  return [{ op: 'update', expect: r.expect, object: r.cur as unknown as Body }];
}

function txHead(ts: string, by: string | undefined): string {
  return `{"ts":${JSON.stringify(ts)},${by !== undefined ? `"by":${JSON.stringify(by)},` : ''}"ops":[`;
}

/** Longest proposer id decoded (node ids are 25 characters; anything longer is not one). */
const MAX_PROPOSER_ID = 64;
const TX_TAIL = ']}';

function decodeTx(data: Uint8Array): DecodedTx {
  if (data[0] !== TX_FORMAT_JSON_V1) throw new ValidationError(`unknown transaction format ${String(data[0])}`);
  let raw: unknown;
  try {
    raw = JSON.parse(utf8d.decode(data.subarray(1)));
  } catch (err) {
    throw new ValidationError(`undecodable transaction: ${errText(err)}`);
  }
  if (!isPlainObject(raw) || typeof raw['ts'] !== 'string' || !Array.isArray(raw['ops'])) {
    throw new ValidationError('malformed transaction');
  }
  const ops: Op[] = [];
  for (const op of raw['ops'] as unknown[]) {
    if (!isPlainObject(op)) throw new ValidationError('malformed transaction operation');
    if (op['op'] === 'delete') {
      const { kind, id, expect } = op;
      if (typeof kind !== 'string' || !KIND_SET.has(kind) || typeof id !== 'string' || !isInt(expect)) {
        throw new ValidationError('malformed delete operation');
      }
      ops.push({ op: 'delete', kind: kind as Kind, id, expect });
      continue;
    }
    const object = op['object'];
    if ((op['op'] !== 'create' && op['op'] !== 'update') || !isPlainObject(object)) throw new ValidationError('malformed operation');
    const problem = shapeProblem(object);
    if (problem !== null) throw new ValidationError(problem);
    if (op['op'] === 'create') ops.push({ op: 'create', object: object as Body });
    else {
      if (!isInt(op['expect'])) throw new ValidationError('malformed update operation');
      ops.push({ op: 'update', expect: op['expect'], object: object as Body });
    }
  }
  const by = raw['by'];
  if (by !== undefined && (typeof by !== 'string' || by.length > MAX_PROPOSER_ID)) throw new ValidationError('malformed transaction proposer');
  return { ts: raw['ts'], ...(by !== undefined ? { by } : {}), ops };
}

// ------------------------------------------------------------------------------------------- WriteTx

interface UndoStep {
  key: string;
  prev: Rec | undefined;
}

class Tx extends View implements WriteTx {
  readonly now: string;
  /** Encoded size so far (format byte, head, operations, commas, tail). */
  private opBytes = 0;
  private opCount = 0;
  private readonly headBytes: number;
  private readonly undo: UndoStep[] = [];
  closed = false;

  constructor(
    state: State,
    now: string,
    private readonly by?: string,
    /** The store's pool of shared values (prepare: already-valid, already-pooled task fields). */
    private readonly pool?: ValuePool,
  ) {
    super(state, new Overlay());
    this.now = now;
    this.headBytes = 1 + utf8.encode(txHead(now, by)).length + TX_TAIL.length;
  }

  private get overlay(): Overlay {
    return this.ov!;
  }

  get size(): number {
    return this.headBytes + this.opBytes + Math.max(0, this.opCount - 1);
  }

  get empty(): boolean {
    return this.opCount === 0;
  }

  mark(): number {
    return this.undo.length;
  }

  rollback(mark: number): void {
    while (this.undo.length > mark) {
      const step = this.undo.pop()!;
      this.install(step.key, step.prev);
    }
  }

  encode(): Uint8Array {
    const parts: string[] = [];
    for (const r of this.overlay.recs.values()) for (const op of r.ops) parts.push(op);
    const body = utf8.encode(txHead(this.now, this.by) + parts.join(',') + TX_TAIL);
    const out = new Uint8Array(body.length + 1);
    out[0] = TX_FORMAT_JSON_V1;
    out.set(body, 1);
    return out;
  }

  /**
   * What decodeTx(encode()) returns, without encoding and parsing it again: the leader applies its own
   * transactions from this (Store.commit). Each object is the one the write made (deep-frozen): apply()
   * copies its fields into a new object as it does a decoded one's.
   */
  decoded(): DecodedTx {
    const ops: Op[] = [];
    for (const r of this.overlay.recs.values()) for (const op of decodedOps(r)) ops.push(op);
    return { ts: this.now, ...(this.by !== undefined ? { by: this.by } : {}), ops };
  }

  /** Puts `next` in place of the key's record (keeping its first-touch position), or removes it. */
  private install(key: string, next: Rec | undefined): void {
    const ov = this.overlay;
    const prev = ov.recs.get(key);
    if (prev !== undefined) {
      if (prev.cur !== null) ov.idx.remove(prev.cur);
      this.opBytes -= prev.bytes;
      this.opCount -= prev.ops.length;
      this.countChange(prev, -1);
    }
    if (next === undefined) {
      ov.recs.delete(key);
      return;
    }
    ov.recs.set(key, next);
    if (next.cur !== null) ov.idx.add(next.cur);
    this.opBytes += next.bytes;
    this.opCount += next.ops.length;
    this.countChange(next, 1);
  }

  /** Adds (sign 1) or takes back (sign -1) what a record does to its kind's object count. */
  private countChange(r: Rec, sign: 1 | -1): void {
    const d = (r.cur !== null ? 1 : 0) - (r.expect !== null ? 1 : 0);
    if (d === 0) return;
    const counts = this.overlay.counts;
    counts.set(r.kind, (counts.get(r.kind) ?? 0) + sign * d);
  }

  /**
   * The cluster's limits as this transaction sees them. Checked here, when the write is proposed, and
   * not in apply(): see limits.ts for why.
   */
  private limits(): ClusterLimits {
    return limitsOf(this.getObj('cluster', CLUSTER_ID)?.spec as Frozen<Cluster['spec']> | undefined);
  }

  private setRec(kind: Kind, id: string, fields: Pick<Rec, 'expect' | 'cur' | 'recreated' | 'body'>): void {
    const key = keyOf(kind, id);
    const ops = encodeOps({ kind, id, ...fields });
    let bytes = 0;
    for (const op of ops) bytes += Buffer.byteLength(op, 'utf8');
    this.undo.push({ key, prev: this.overlay.recs.get(key) });
    this.install(key, { kind, id, ...fields, ops, bytes });
  }

  private live(): void {
    if (this.closed) throw new StoreError('the transaction has already finished; writes after update() returned are not allowed');
  }

  private checkName(o: Obj): void {
    if (o.kind !== 'service' && o.kind !== 'network' && o.kind !== 'secret' && o.kind !== 'config') return;
    if (this.namesakes(o.kind, o.spec.name, o.id).length > 0) throw new NameInUseError(o.kind, o.spec.name);
  }

  create<K extends Kind>(obj: Frozen<DraftOf<K>> & { readonly kind: K }): Frozen<ObjectOf<K>> {
    this.live();
    const { body, parsed } = prepare(obj, this.pool);
    const { kind, id } = parsed;
    const existing = this.getObj(kind, id);
    if (existing !== undefined) throw new ConflictError(kind, id, null, existing.version);
    const cur = materialize(parsed, 0, this.now, this.now);
    this.checkName(cur);
    const limits = this.limits();
    checkStoredObject(cur, Buffer.byteLength(body, 'utf8'), limits);
    if (kind === 'task') checkTaskBudget(this.count('task'), 1, limits);
    const r = this.rec(kind, id);
    const expect = r?.expect ?? null;
    this.setRec(kind, id, { expect, cur, recreated: expect !== null, body });
    return cur as Frozen<ObjectOf<K>>;
  }

  update<K extends Kind>(obj: Frozen<ObjectOf<K>> & { readonly kind: K }): Frozen<ObjectOf<K>> {
    this.live();
    const version = (obj as { version?: unknown }).version;
    const { body, parsed } = prepare(obj, this.pool);
    const { kind, id } = parsed;
    if (!isInt(version)) throw new ValidationError(`${kind} ${id}: update needs the version that was read`);
    const existing = this.getObj(kind, id);
    if (existing === undefined) throw new ConflictError(kind, id, version, null);
    if (existing.version !== version) throw new ConflictError(kind, id, version, existing.version);
    const cur = materialize(parsed, existing.version, existing.createdAt, this.now);
    this.checkName(cur);
    checkStoredObject(cur, Buffer.byteLength(body, 'utf8'), this.limits(), existing, () => bodyBytes(existing));
    const r = this.rec(kind, id);
    if (r !== undefined) this.setRec(kind, id, { expect: r.expect, cur, recreated: r.recreated, body });
    else this.setRec(kind, id, { expect: existing.version, cur, recreated: false, body });
    return cur as Frozen<ObjectOf<K>>;
  }

  modify<K extends Kind>(kind: K, id: string, edit: (draft: ObjectOf<K>) => void): Frozen<ObjectOf<K>> {
    this.live();
    const existing = this.getObj(kind, id);
    if (existing === undefined) throw new NotFoundError(kind, id);
    const draft = structuredClone(existing) as ObjectOf<K>;
    edit(draft);
    const meta = draft as { kind: string; id: string; version: number };
    if (meta.kind !== kind || meta.id !== id) throw new ValidationError(`modify must not change the kind or id of ${kind} ${id}`);
    meta.version = existing.version;
    return this.update<K>(draft as Frozen<ObjectOf<K>> & { readonly kind: K });
  }

  delete(kind: Kind, id: string, version?: number): void {
    this.live();
    const existing = this.getObj(kind, id);
    if (existing === undefined) {
      if (version === undefined) throw new NotFoundError(kind, id);
      throw new ConflictError(kind, id, version, null);
    }
    if (version !== undefined && existing.version !== version) throw new ConflictError(kind, id, version, existing.version);
    const r = this.rec(kind, id);
    if (r !== undefined) this.setRec(kind, id, { expect: r.expect, cur: null, recreated: false, body: null });
    else this.setRec(kind, id, { expect: existing.version, cur: null, recreated: false, body: null });
  }
}

// --------------------------------------------------------------------------------------------- watches

class Subscription {
  private q: StoreEvent[] = [];
  private head = 0;
  closed = false;
  /** Set when the store closed the watch (overflow, reset, handler error). */
  error: Error | null = null;
  private readonly kinds: ReadonlySet<Kind> | null;
  private readonly predicate: ((ev: StoreEvent) => boolean) | undefined;
  private readonly maxQueue: number;

  constructor(
    private readonly owner: Set<Subscription>,
    opts: WatchOptions,
    /** Called after an event is queued. */
    readonly notify: () => void,
    /** Called once when closed (err null = closed by the subscriber). */
    private readonly onClosed: (err: Error | null) => void,
  ) {
    this.kinds = opts.kinds ? new Set(opts.kinds) : null;
    this.predicate = opts.predicate;
    this.maxQueue = opts.maxQueue ?? DEFAULT_WATCH_QUEUE;
    if (!(this.maxQueue >= 1)) throw new RangeError('watch: maxQueue must be >= 1');
    owner.add(this);
  }

  get size(): number {
    return this.q.length - this.head;
  }

  offer(ev: StoreEvent): void {
    if (this.closed) return;
    if (this.kinds !== null && !this.kinds.has(ev.kind)) return;
    if (this.predicate !== undefined) {
      let ok: boolean;
      try {
        ok = this.predicate(ev);
      } catch (err) {
        this.close(toError(err));
        return;
      }
      if (!ok) return;
    }
    if (this.size >= this.maxQueue) {
      this.close(new WatchOverflowError(this.maxQueue));
      return;
    }
    this.q.push(ev);
  }

  shift(): StoreEvent | undefined {
    if (this.head >= this.q.length) return undefined;
    const ev = this.q[this.head];
    this.q[this.head++] = undefined as unknown as StoreEvent;
    if (this.head === this.q.length) {
      this.q = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.q.length) {
      this.q = this.q.slice(this.head);
      this.head = 0;
    }
    return ev;
  }

  close(err: Error | null): void {
    if (this.closed) return;
    this.closed = true;
    this.error = err;
    this.q = [];
    this.head = 0;
    this.owner.delete(this);
    this.onClosed(err);
  }
}

interface IndexWaiter {
  index: number;
  resolve: () => void;
  reject: (e: unknown) => void;
}

// ------------------------------------------------------------------------------------------------ Store

/** Objects serialised between two yields of Store.snapshotInSteps: ≈ 6 ms of tasks (150,000 in ≈ 420 ms, --store-only). */
const SNAPSHOT_STEP_OBJECTS = 2000;

function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = Buffer.concat(parts);
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/**
 * The snapshot body (format 2, see Store.snapshot) of `lists`, captured at `index`, one step per
 * SNAPSHOT_STEP_OBJECTS objects. Each step's JSON is UTF-8 encoded at once, so the last step only joins
 * the parts. JSON.stringify of a slice of a list, brackets removed, is that slice of the whole list's JSON,
 * so the bytes are the same as one JSON.stringify per kind.
 */
function* serialiseSnapshot(index: number, lists: ReadonlyArray<readonly [Kind, readonly Obj[]]>): Generator<void, Uint8Array[], void> {
  const shared: unknown[] = [];
  const byObject = new Map<unknown, number>();
  const byJson = new Map<string, number>();
  const position = (v: unknown): number => {
    let i = byObject.get(v);
    if (i !== undefined) return i;
    const key = JSON.stringify(v);
    i = byJson.get(key);
    if (i === undefined) {
      i = shared.length;
      shared.push(v);
      byJson.set(key, i);
    }
    byObject.set(v, i);
    return i;
  };
  const body: Uint8Array[] = [];
  let first = true;
  for (const [kind, list] of lists) {
    body.push(Buffer.from(`${first ? '' : ','}${JSON.stringify(kind)}:[`));
    first = false;
    for (let i = 0; i < list.length; i += SNAPSHOT_STEP_OBJECTS) {
      const slice: unknown[] = list.slice(i, i + SNAPSHOT_STEP_OBJECTS);
      if (kind === 'task') {
        for (let j = 0; j < slice.length; j++) {
          const out: Record<string, unknown> = { ...(slice[j] as Record<string, unknown>) };
          for (const f of SHARED_TASK_FIELDS) {
            const v = out[f];
            if (typeof v === 'object' && v !== null) out[f] = position(v);
          }
          slice[j] = out;
        }
      }
      const json = JSON.stringify(slice);
      body.push(Buffer.from(`${i > 0 ? ',' : ''}${json.slice(1, -1)}`));
      yield;
    }
    body.push(Buffer.from(']'));
  }
  const head = Buffer.from(`{"format":${SNAPSHOT_FORMAT_JSON_V2},"index":${index},"shared":${JSON.stringify(shared)},"objects":{`);
  return [Uint8Array.of(SNAPSHOT_FORMAT_JSON_V2), head, ...body, Buffer.from('}}')];
}

export class Store implements StateMachine {
  private readonly state = new State();
  private readonly proposeFn: ((data: Uint8Array) => Promise<unknown>) | undefined;
  private readBarrier: (() => Promise<void>) | undefined;
  private readonly now: () => Date;
  readonly maxTxBytes: number;
  private readonly proposer: string | undefined;
  private readonly subs = new Set<Subscription>();
  /** Subscriptions with events queued since the last apply (notified after the apply). */
  private readonly touched = new Set<Subscription>();
  private waiters: IndexWaiter[] = [];
  /** One frozen copy of each task spec the applied tasks share (shared-values.ts). */
  private readonly pool = new ValuePool();
  /**
   * This store's own transactions by their encoded bytes, from commit() until apply() meets the same bytes
   * (Raft hands the leader its entry's data as proposed): apply() then skips decoding them. Weak: a
   * proposal that never commits leaves with its entry.
   */
  private readonly own = new WeakMap<Uint8Array, DecodedTx>();
  private ownCount = 0;

  constructor(opts: StoreOptions = {}) {
    this.proposeFn = opts.propose;
    this.readBarrier = opts.read;
    this.now = opts.now ?? (() => new Date());
    this.maxTxBytes = opts.maxTxBytes ?? MAX_TX_BYTES;
    this.proposer = opts.proposer;
  }

  /** Transactions this store applied from its own writes, without decoding them (tests, stats). */
  get ownApplied(): number {
    return this.ownCount;
  }

  /** Index of the last entry applied to the store (0 = empty). */
  get index(): number {
    return this.state.index;
  }

  // ------------------------------------------------------------------------------------------ reads

  /** Runs `fn` on the applied state. Synchronous; objects are deep-frozen and stay valid after fn returns. */
  view<T>(fn: (tx: ReadTx) => T): T {
    return fn(new View(this.state, null));
  }

  /** Sets (or replaces) the linearizable read barrier, typically RaftNode.read. */
  readLinearizable(read: () => Promise<void>): void {
    this.readBarrier = read;
  }

  /**
   * Awaits the read barrier (RaftNode.read: this manager's state then reflects every write acknowledged
   * before the call), then reads. Without a barrier (local mode) this is view().
   */
  async linearizableView<T>(fn: (tx: ReadTx) => T): Promise<T> {
    if (this.readBarrier !== undefined) await this.readBarrier();
    return this.view(fn);
  }

  /** Resolves once the store has applied `index` (rejects with signal.reason on abort). */
  waitForIndex(index: number, signal?: AbortSignal): Promise<void> {
    if (this.state.index >= index) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const w: IndexWaiter = { index, resolve, reject };
      this.waiters.push(w);
      signal?.addEventListener(
        'abort',
        () => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) {
            this.waiters.splice(i, 1);
            reject(signal.reason);
          }
        },
        { once: true },
      );
    });
  }

  // ----------------------------------------------------------------------------------------- writes

  /**
   * Runs `fn` in a transaction and commits its writes as one entry. `fn` may be async (across an await
   * its reads may see newer commits; its writes are still version-checked); its return value is ignored.
   * Resolves with the commit index (or the current index if fn wrote nothing). Rejects with: whatever fn threw (nothing proposed);
   * TxTooLargeError (nothing proposed); ConflictError / ValidationError from apply (the entry was a
   * no-op everywhere); the proposer's error (NotLeaderError: not proposed; other Raft errors: outcome
   * unknown, re-read before retrying).
   */
  async update(fn: (tx: WriteTx) => unknown): Promise<number> {
    const tx = new Tx(this.state, this.now().toISOString(), this.proposer, this.pool);
    try {
      await fn(tx);
    } finally {
      tx.closed = true;
    }
    return this.commit(tx);
  }

  /**
   * Applies `fn` to every item, packing the writes into as few transactions as fit under maxTxBytes.
   * `fn` must be synchronous and may run more than once for an item (when its writes overflow the
   * current transaction they are rolled back and re-run on a fresh transaction after committing). Each
   * transaction sees the previous ones. Resolves with the commit indexes. If `fn` throws or a commit
   * fails, the items before it in the open transaction are still committed (when possible) and the
   * promise rejects with BatchError (`itemsCommitted`, `cause`). TxTooLargeError if one item alone is
   * too large.
   */
  async batch<T>(items: Iterable<T>, fn: (tx: WriteTx, item: T) => unknown): Promise<number[]> {
    const indexes: number[] = [];
    let committed = 0;
    let inTx = 0;
    let tx = new Tx(this.state, this.now().toISOString(), this.proposer, this.pool);
    const flush = async (): Promise<void> => {
      tx.closed = true;
      if (!tx.empty) indexes.push(await this.commit(tx));
      committed += inTx;
      inTx = 0;
      tx = new Tx(this.state, this.now().toISOString(), this.proposer, this.pool);
    };
    const run = (item: T): void => {
      const mark = tx.mark();
      try {
        fn(tx, item);
      } catch (err) {
        tx.rollback(mark);
        throw err;
      }
      if (tx.size > this.maxTxBytes) {
        const size = tx.size;
        tx.rollback(mark);
        throw new TxTooLargeError(size, this.maxTxBytes);
      }
    };
    try {
      for (const item of items) {
        try {
          run(item);
        } catch (err) {
          if (!(err instanceof TxTooLargeError) || inTx === 0) throw err;
          await flush();
          run(item);
        }
        inTx++;
      }
      await flush();
    } catch (err) {
      if (err instanceof TxTooLargeError && committed === 0 && inTx === 0) throw err;
      if (!tx.closed && inTx > 0) {
        try {
          await flush();
        } catch {
          // The earlier items could not be committed either; report the original error.
        }
      }
      throw new BatchError(committed, indexes, err);
    }
    return indexes;
  }

  private async commit(tx: Tx): Promise<number> {
    tx.closed = true;
    if (tx.empty) return this.state.index;
    if (tx.size > this.maxTxBytes) throw new TxTooLargeError(tx.size, this.maxTxBytes);
    const data = tx.encode();
    this.own.set(data, tx.decoded());
    const result: unknown = this.proposeFn ? await this.proposeFn(data) : this.apply({ index: this.state.index + 1, data });
    if (result instanceof Error) throw result;
    if (typeof result !== 'number') throw new StoreError(`unexpected apply result ${String(result)}`);
    return result;
  }

  // ----------------------------------------------------------------------------------- state machine

  /**
   * Applies one committed entry. Returns the entry's index if the transaction was applied, the
   * ConflictError / ValidationError that made it a no-op, or undefined for entries that carry no
   * transaction (empty, membership, already applied). Deterministic.
   */
  apply(entry: StoreEntry): unknown {
    if (entry.index <= this.state.index) return undefined;
    if (entry.type === 'conf' || entry.data.length === 0) {
      this.advance(entry.index);
      return undefined;
    }
    let result: number | Error;
    const events: StoreEvent[] = [];
    try {
      // The leader's own transaction, as it wrote it: decoding its bytes gives the same operations (at
      // 150,000 tasks the leader decoded every one of its writes again, ≈ 4 s of its CPU in a create).
      const own = this.own.get(entry.data);
      if (own !== undefined) {
        this.own.delete(entry.data);
        this.ownCount++;
      }
      result = this.applyTx(entry.index, entry.term, own ?? decodeTx(entry.data), events);
    } catch (err) {
      // Preconditions are checked before anything is written, so a failure leaves the state untouched.
      // (Anything but a StoreError is a bug; it is returned the same way so every manager stays in step.)
      events.length = 0;
      result = toError(err);
    }
    this.advance(entry.index);
    if (events.length > 0) this.publish(events);
    return result;
  }

  private applyTx(index: number, term: number | undefined, tx: DecodedTx, events: StoreEvent[]): number {
    const at = { index, time: tx.ts, ...(term !== undefined ? { term } : {}), ...(tx.by !== undefined ? { by: tx.by } : {}) };
    const ov = new Overlay();
    const view = new ApplyView(this.state, ov);
    for (const op of tx.ops) {
      if (op.op === 'delete') {
        const cur = view.obj(op.kind, op.id);
        if (cur === undefined) throw new ConflictError(op.kind, op.id, op.expect, null);
        if (cur.version !== op.expect) throw new ConflictError(op.kind, op.id, op.expect, cur.version);
        view.put(op.kind, op.id, null);
        events.push({ type: 'delete', kind: op.kind, object: cur, ...at });
      } else if (op.op === 'create') {
        const { kind, id } = op.object;
        const cur = view.obj(kind, id);
        if (cur !== undefined) throw new ConflictError(kind, id, null, cur.version);
        const o = materialize(op.object, index, tx.ts, tx.ts, this.pool);
        view.put(kind, id, o);
        events.push({ type: 'create', kind, object: o, ...at });
      } else {
        const { kind, id } = op.object;
        const cur = view.obj(kind, id);
        if (cur === undefined) throw new ConflictError(kind, id, op.expect, null);
        if (cur.version !== op.expect) throw new ConflictError(kind, id, op.expect, cur.version);
        const o = materialize(op.object, index, cur.createdAt, tx.ts, this.pool);
        view.put(kind, id, o);
        events.push({ type: 'update', kind, object: o, old: cur, ...at });
      }
    }
    view.checkNames();
    for (const r of ov.recs.values()) this.state.put(r.kind, r.id, r.cur);
    return index;
  }

  private advance(index: number): void {
    this.state.index = index;
    if (this.waiters.length === 0) return;
    const still: IndexWaiter[] = [];
    for (const w of this.waiters) {
      if (w.index <= index) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }

  /**
   * The whole state and its index: `format byte | JSON {format, index, shared, objects: {kind: [...]}}`.
   * Format 2: a task's shared fields (shared-values.ts) are written once in `shared` and each task names
   * its value by position there (a number where format 1 had the object): 150,000 replicas of one service
   * write their spec once, not 150,000 times. Positions follow first use in table order, so equal states
   * write equal bytes on every manager.
   */
  snapshot(): Uint8Array {
    const steps = this.snapshotInSteps();
    for (;;) {
      const r = steps.next();
      if (r.done) return concatBytes(r.value);
    }
  }

  /**
   * snapshot() in steps, for a leader that cannot stop for the whole of it (at 150,000 tasks it is
   * 0.4-0.7 s of CPU, and Raft's election timeout is 1 s). The state is captured now, when this is called:
   * every stored object is deep-frozen, so holding the tables' objects keeps what they were at this index
   * whatever is applied while the steps run. Each next() serialises at most SNAPSHOT_STEP_OBJECTS objects;
   * the last returns the snapshot's bytes in parts whose concatenation is exactly what snapshot() returns.
   */
  snapshotInSteps(): Generator<void, Uint8Array[], void> {
    const index = this.state.index;
    const lists = KINDS.map((kind) => [kind, [...this.state.table(kind).values()]] as const);
    return serialiseSnapshot(index, lists);
  }

  /**
   * Replaces the whole state with a snapshot's (format 1 or 2). Every open watch is closed with
   * StoreResetError (the difference is not replayed as events): subscribers resync from the store. A
   * malformed snapshot throws EBADSNAPSHOT and changes nothing.
   */
  restore(data: Uint8Array): void {
    const bad = (why: string) => new StoreError(`store snapshot: ${why}`, 'EBADSNAPSHOT');
    const format = data[0];
    if (data.length === 0 || (format !== SNAPSHOT_FORMAT_JSON_V1 && format !== SNAPSHOT_FORMAT_JSON_V2)) {
      throw bad(`unknown format ${String(format)}`);
    }
    let raw: unknown;
    try {
      raw = JSON.parse(utf8d.decode(data.subarray(1)));
    } catch (err) {
      throw bad(errText(err));
    }
    if (!isPlainObject(raw) || !isInt(raw['index']) || raw['index'] < 0 || !isPlainObject(raw['objects'])) throw bad('malformed');
    // Format 2's shared values, each pooled once; a task's number is a position in this list.
    const shared = format === SNAPSHOT_FORMAT_JSON_V2 ? raw['shared'] : [];
    if (!Array.isArray(shared)) throw bad('shared is not a list');
    // Pooled in the store's own pool, so tasks applied later share the restored tasks' copies (a value
    // pooled by a snapshot that then fails only stays cached: pooled values are frozen and unreferenced).
    const pool = this.pool;
    const pooled: unknown[] = shared.map((v) => pool.intern(v));
    const next = new State();
    next.index = raw['index'];
    const objects = raw['objects'];
    for (const kind of KINDS) {
      const list = objects[kind] ?? [];
      if (!Array.isArray(list)) throw bad(`${kind} is not a list`);
      for (const o of list as unknown[]) {
        if (!isPlainObject(o)) throw bad(`${kind}: not an object`);
        if (kind === 'task') {
          for (const f of SHARED_TASK_FIELDS) {
            const v = o[f];
            if (typeof v === 'number') {
              if (!isInt(v) || v < 0 || v >= pooled.length) throw bad(`task ${String(o['id'])}: ${f} names shared value ${v} of ${pooled.length}`);
              o[f] = pooled[v];
            } else if (typeof v === 'object' && v !== null) o[f] = pool.intern(v);
          }
        }
        const problem = shapeProblem(o);
        if (problem !== null) throw bad(problem);
        if (o['kind'] !== kind) throw bad(`${String(o['kind'])} object in the ${kind} list`);
        if (!isInt(o['version']) || typeof o['createdAt'] !== 'string' || typeof o['updatedAt'] !== 'string') {
          throw bad(`${kind} ${String(o['id'])}: bad version or timestamps`);
        }
        const id = o['id'] as string;
        if (next.table(kind).has(id)) throw bad(`duplicate ${kind} ${id}`);
        next.put(kind, id, deepFreeze(o) as unknown as Obj);
      }
    }
    this.state.replaceWith(next);
    for (const s of [...this.subs]) s.close(new StoreResetError(next.index));
    this.advance(next.index);
  }

  // ---------------------------------------------------------------------------------------- watches

  private publish(events: StoreEvent[]): void {
    if (this.subs.size === 0) return;
    for (const ev of events) {
      for (const s of this.subs) {
        const before = s.size;
        s.offer(ev);
        if (s.size > before) this.touched.add(s);
      }
    }
    for (const s of this.touched) s.notify();
    this.touched.clear();
  }

  /**
   * Subscribes `handler` to events after this point, in commit order (all events of one transaction
   * together, in the transaction's order). apply() only queues them; they are delivered from a
   * microtask, one at a time: when the handler returns a promise the next event waits for it. When the
   * handler runs, the store has applied at least `ev.index` (possibly more). If more than `maxQueue`
   * events are waiting, the watch is closed with WatchOverflowError (onClose); a handler that throws
   * closes it with that error; restore() closes it with StoreResetError. Returns the unsubscribe function.
   */
  watch(filter: WatchOptions | undefined, handler: (ev: StoreEvent) => void | Promise<void>): () => void {
    const opts = filter ?? {};
    let scheduled = false;
    let draining = false;
    const drain = async (): Promise<void> => {
      draining = true;
      try {
        while (!sub.closed) {
          const ev = sub.shift();
          if (ev === undefined) break;
          try {
            const r = handler(ev);
            if (r !== undefined && typeof (r as Promise<void>).then === 'function') await r;
          } catch (err) {
            sub.close(toError(err));
          }
        }
      } finally {
        draining = false;
      }
    };
    const sub: Subscription = new Subscription(
      this.subs,
      opts,
      () => {
        if (draining || scheduled) return;
        scheduled = true;
        queueMicrotask(() => {
          scheduled = false;
          if (!draining) void drain();
        });
      },
      (err) => {
        if (err !== null && opts.onClose) {
          const cb = opts.onClose;
          queueMicrotask(() => cb(err));
        }
      },
    );
    return () => sub.close(null);
  }

  /**
   * Async-iterator form of watch(): yields events in commit order. Ends when `signal` aborts or the
   * loop breaks; throws WatchOverflowError / StoreResetError when the store closes the watch (events
   * still queued at that moment are dropped: resync).
   */
  events(filter?: WatchOptions, signal?: AbortSignal): AsyncIterableIterator<StoreEvent> {
    const opts = filter ?? {};
    let waiter: { resolve: (r: IteratorResult<StoreEvent>) => void; reject: (e: unknown) => void } | null = null;
    let thrown = false;
    const done = (): IteratorResult<StoreEvent> => ({ value: undefined, done: true });
    const onAbort = (): void => sub.close(null);
    const sub: Subscription = new Subscription(
      this.subs,
      opts,
      () => {
        if (waiter === null) return;
        const ev = sub.shift();
        if (ev === undefined) return;
        const w = waiter;
        waiter = null;
        w.resolve({ value: ev, done: false });
      },
      (err) => {
        signal?.removeEventListener('abort', onAbort);
        if (err !== null && opts.onClose) {
          const cb = opts.onClose;
          queueMicrotask(() => cb(err));
        }
        if (waiter === null) return;
        const w = waiter;
        waiter = null;
        if (err === null) w.resolve(done());
        else {
          thrown = true;
          w.reject(err);
        }
      },
    );
    if (signal?.aborted) sub.close(null);
    else signal?.addEventListener('abort', onAbort, { once: true });
    const it: AsyncIterableIterator<StoreEvent> = {
      next: (): Promise<IteratorResult<StoreEvent>> => {
        const ev = sub.shift();
        if (ev !== undefined) return Promise.resolve({ value: ev, done: false });
        if (sub.closed) {
          if (sub.error !== null && !thrown) {
            thrown = true;
            return Promise.reject(sub.error);
          }
          return Promise.resolve(done());
        }
        if (waiter !== null) return Promise.reject(new StoreError('events(): next() called while a previous next() is pending'));
        return new Promise((resolve, reject) => {
          waiter = { resolve, reject };
        });
      },
      return: (): Promise<IteratorResult<StoreEvent>> => {
        sub.close(null);
        return Promise.resolve(done());
      },
      [Symbol.asyncIterator]() {
        return it;
      },
    };
    return it;
  }
}

/** The view apply() validates an entry against: the applied state plus the entry's changes so far. */
class ApplyView extends View {
  obj(kind: Kind, id: string): Obj | undefined {
    return this.getObj(kind, id);
  }

  put(kind: Kind, id: string, obj: Obj | null): void {
    const ov = this.ov!;
    const key = keyOf(kind, id);
    const prev = ov.recs.get(key);
    if (prev !== undefined) {
      if (prev.cur !== null) ov.idx.remove(prev.cur);
      prev.cur = obj;
    } else {
      ov.recs.set(key, { kind, id, expect: null, cur: obj, recreated: false, body: null, ops: [], bytes: 0 });
    }
    if (obj !== null) ov.idx.add(obj);
  }

  /** Names must be unique in the state the entry leaves behind (not after each operation). */
  checkNames(): void {
    for (const r of this.ov!.recs.values()) {
      const o = r.cur;
      if (o === null || (o.kind !== 'service' && o.kind !== 'network' && o.kind !== 'secret' && o.kind !== 'config')) continue;
      if (this.namesakes(o.kind, o.spec.name, o.id).length > 0) throw new NameInUseError(o.kind, o.spec.name);
    }
  }
}
