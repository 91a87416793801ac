// Test harness for the orchestrator: an in-memory Store on a fake clock, fake timers, and a tiny FAKE
// WORKER that plays the allocator, the scheduler and the dispatcher deterministically:
//   new                    → pending (the allocator's move; these services have no networks or ports)
//   pending (no node)      → assigned to the next ready, active node that satisfies the constraints
//                            (round robin over node ids, or a custom placer)
//   pending (bound node)   → assigned (global tasks), if the node is ready and not drained
//   assigned               → running; image 'broken' → failed (no exit code: never ran)
//   running, image 'job'   → complete (exit 0)
//   told to stop           → shutdown (unless the node is down: nobody reports)
// Each step() advances every task by at most one state, in one transaction.
import { parseConstraints, matches } from '../../manager/scheduler/constraints.ts';
import { CLUSTER_ID, defaultClusterSpec, isTerminalTaskState, taskStateRank } from '../../api/objects.ts';
import type {
  Cluster,
  Draft,
  Frozen,
  Node,
  NodeAvailability,
  NodeStateName,
  Service,
  ServiceMode,
  ServiceSpec,
  Task,
  TaskTemplate,
  UpdateConfig,
} from '../../api/objects.ts';
import { Store } from '../../manager/store/store.ts';
import { constraintNode } from '../../manager/orchestrator/enforcer.ts';
import { Orchestrator } from '../../manager/orchestrator/runner.ts';
import { ALLOCATED_MESSAGE } from '../../manager/allocator/allocator.ts';
import type { OrchestratorOptions, OrchestratorTimers } from '../../manager/orchestrator/runner.ts';

export const T0 = Date.parse('2025-01-01T00:00:00.000Z');

export class FakeClock {
  now = T0;
  private seq = 0;
  private pending: { id: number; at: number; fn: () => void }[] = [];

  readonly timers: OrchestratorTimers = {
    setTimeout: (fn, ms) => {
      const id = ++this.seq;
      this.pending.push({ id, at: this.now + Math.max(0, ms), fn });
      return id;
    },
    clearTimeout: (h) => {
      this.pending = this.pending.filter((p) => p.id !== h);
    },
  };

  /** Moves time forward, firing due timers in order (including ones they schedule, if due). */
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      this.pending.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.pending[0];
      if (next === undefined || next.at > end) break;
      this.pending.shift();
      this.now = Math.max(this.now, next.at);
      next.fn();
    }
    this.now = end;
  }

  iso(): string {
    return new Date(this.now).toISOString();
  }
}

/**
 * A replicated service `big` whose task spec is ≈ 250 bytes of JSON, so that a store with a small
 * transaction limit needs several transactions for a few hundred of its tasks.
 */
export const bigService = (replicas: number) => ({
  id: 'big',
  kind: 'service' as const,
  spec: {
    name: 'big',
    labels: {},
    mode: { replicated: { replicas } },
    task: { image: 'app:1', env: [`A=${'x'.repeat(200)}`] },
    networks: [],
    endpoint: { ports: [] },
  },
  specVersion: 1,
  status: {},
});

export function seqIds(prefix = 't'): () => string {
  let n = 0;
  return () => `${prefix}${String(++n).padStart(4, '0')}`;
}

export interface ServiceInit {
  name?: string;
  mode?: ServiceMode;
  task?: Partial<TaskTemplate>;
  update?: Partial<UpdateConfig>;
  rollback?: Partial<UpdateConfig>;
}

export type Placer = (task: Frozen<Task>, candidates: Frozen<Node>[]) => string | undefined;

export class Harness {
  readonly clock = new FakeClock();
  readonly store: Store;
  orch: Orchestrator;
  readonly logs: string[] = [];
  placer: Placer | null = null;
  private rr = 0;
  private svcSeq = 0;
  /** Called after every orchestrator settle and every worker step. */
  observers: (() => void)[] = [];

  constructor(opts: Partial<OrchestratorOptions> = {}) {
    this.store = new Store({ now: () => new Date(this.clock.now) });
    this.orch = this.newOrchestrator(opts);
    this.orch.start();
  }

  newOrchestrator(opts: Partial<OrchestratorOptions> = {}, ids = seqIds('t')): Orchestrator {
    return new Orchestrator(this.store, {
      now: () => this.clock.now,
      newId: ids,
      timers: this.clock.timers,
      log: (l) => this.logs.push(l),
      // Every test of the runner also checks the slots it keeps between passes against fresh ones.
      verifySlotCache: (d) => (d === null ? this.slotCacheReuses++ : this.slotCacheErrors.push(d)),
      ...opts,
    });
  }

  /** Differences the orchestrator's slot cache had with a fresh grouping (settle() fails on any). */
  readonly slotCacheErrors: string[] = [];
  /** Passes that reused kept slots (each checked). */
  slotCacheReuses = 0;

  // ------------------------------------------------------------------------------------------- objects

  async addNode(
    id: string,
    o: { labels?: Record<string, string>; availability?: NodeAvailability; state?: NodeStateName; role?: 'manager' | 'worker' } = {},
  ): Promise<void> {
    const n: Draft<Node> = {
      id,
      kind: 'node',
      spec: { labels: o.labels ?? {}, availability: o.availability ?? 'active', role: o.role ?? 'worker' },
      description: {
        hostname: id,
        platform: { os: 'linux', arch: 'amd64' },
        resources: { nanoCpus: 4e9, memoryBytes: 8 * 2 ** 30 },
        engineVersion: 'test',
        addr: '10.0.0.1',
      },
      status: { state: o.state ?? 'ready', message: '', addr: '10.0.0.1' },
    };
    await this.store.update((tx) => void tx.create(n));
  }

  async editNode(id: string, edit: (n: Node) => void): Promise<void> {
    await this.store.update((tx) => void tx.modify('node', id, edit));
  }

  async removeNode(id: string): Promise<void> {
    await this.store.update((tx) => tx.delete('node', id));
  }

  async setHistoryLimit(limit: number): Promise<void> {
    await this.store.update((tx) => {
      const cur = tx.get('cluster', CLUSTER_ID);
      if (cur) {
        tx.modify('cluster', CLUSTER_ID, (c) => {
          c.spec.taskHistoryLimit = limit;
        });
        return;
      }
      const c: Draft<Cluster> = {
        id: CLUSTER_ID,
        kind: 'cluster',
        spec: { ...defaultClusterSpec('test'), taskHistoryLimit: limit },
        status: {},
        rootCa: { caCertPem: '', caKeyPem: '' },
        joinTokens: { worker: '', manager: '' },
        denyList: { removedNodes: [], revokedSerials: [] },
      };
      tx.create(c);
    });
  }

  spec(init: ServiceInit): ServiceSpec {
    const spec: ServiceSpec = {
      name: init.name ?? `svc${++this.svcSeq}`,
      labels: {},
      mode: init.mode ?? { replicated: { replicas: 1 } },
      task: { image: 'app:1', ...init.task },
      networks: [],
      endpoint: { ports: [] },
    };
    if (init.update)
      spec.update = { parallelism: 1, delayMs: 0, failureAction: 'pause', monitorMs: 5_000, maxFailureRatio: 0, order: 'stop-first', ...init.update };
    if (init.rollback)
      spec.rollback = { parallelism: 1, delayMs: 0, failureAction: 'pause', monitorMs: 5_000, maxFailureRatio: 0, order: 'stop-first', ...init.rollback };
    return spec;
  }

  async createService(id: string, init: ServiceInit = {}): Promise<string> {
    const spec = this.spec(init);
    await this.store.update((tx) => void tx.create({ id, kind: 'service', spec, specVersion: 1, status: {} }));
    return id;
  }

  /** What the control API does on `service update`: previousSpec, specVersion+1 and 'updating' when tasks change. */
  async updateService(id: string, edit: (spec: ServiceSpec) => void): Promise<void> {
    await this.store.update((tx) => {
      tx.modify('service', id, (s) => {
        const next = structuredClone(s.spec);
        edit(next);
        const rolling = JSON.stringify(next.task) !== JSON.stringify(s.spec.task);
        s.previousSpec = s.spec;
        s.spec = next;
        if (rolling) {
          s.specVersion += 1;
          s.updateStatus = { state: 'updating', startedAt: this.clock.iso(), message: 'update in progress' };
        }
      });
    });
  }

  /** What the control API does on `service rollback`. */
  async rollbackService(id: string): Promise<void> {
    await this.store.update((tx) => {
      tx.modify('service', id, (s) => {
        const prev = s.previousSpec!;
        s.previousSpec = s.spec;
        s.spec = prev;
        s.specVersion += 1;
        s.updateStatus = { state: 'rollback_started', startedAt: this.clock.iso(), message: 'manually requested rollback' };
      });
    });
  }

  async deleteService(id: string): Promise<void> {
    await this.store.update((tx) => tx.delete('service', id));
  }

  // --------------------------------------------------------------------------------------------- reads

  service(id: string): Frozen<Service> {
    return this.store.view((tx) => tx.get('service', id))!;
  }

  tasks(serviceId: string): Frozen<Task>[] {
    return this.store.view((tx) => tx.tasksByService(serviceId)).sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Tasks desired to run and not finished. */
  live(serviceId: string): Frozen<Task>[] {
    return this.tasks(serviceId).filter((t) => taskStateRank(t.desiredState) <= taskStateRank('complete') && !isTerminalTaskState(t.status.state));
  }

  running(serviceId: string): Frozen<Task>[] {
    return this.tasks(serviceId).filter((t) => t.status.state === 'running' && t.desiredState === 'running');
  }

  task(id: string): Frozen<Task> | undefined {
    return this.store.view((tx) => tx.get('task', id));
  }

  // -------------------------------------------------------------------------------------- fake worker

  /** Makes a task finish as the worker would report it. */
  async finish(taskId: string, state: 'failed' | 'complete' | 'shutdown' | 'rejected', exitCode?: number): Promise<void> {
    await this.store.update((tx) => {
      tx.modify('task', taskId, (t) => {
        t.status = { state, timestamp: this.clock.iso(), message: state, ...(exitCode !== undefined ? { exitCode } : {}) };
      });
    });
  }

  private candidates(nodes: Frozen<Node>[], t: Frozen<Task>): Frozen<Node>[] {
    const cs = parseConstraints(t.spec.placement?.constraints);
    return nodes.filter((n) => n.status.state === 'ready' && n.spec.availability === 'active' && cs.every((c) => matches(c, constraintNode(n))));
  }

  /** One round of scheduler + dispatcher + workers. Returns whether anything changed. */
  async step(): Promise<boolean> {
    let changed = false;
    const { nodes, ids } = this.store.view((tx) => ({
      nodes: tx.list('node').sort((a, b) => a.id.localeCompare(b.id)),
      ids: tx.list('task').map((t) => t.id),
    }));
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const ts = this.clock.iso();
    // Split like the real dispatcher would (store.batch keeps each transaction under the size limit).
    await this.store.batch(ids, (tx, id) => {
      const t = tx.get('task', id);
      if (t === undefined) return;
      const st = t.status.state;
      if (isTerminalTaskState(st)) return;
      const node = t.nodeId !== undefined ? byId.get(t.nodeId) : undefined;
      const set = (state: Task['status']['state'], message: string, extra: Partial<Task['status']> = {}, nodeId?: string) => {
        tx.update({ ...t, ...(nodeId !== undefined ? { nodeId } : {}), status: { state, timestamp: ts, message, ...extra } });
        changed = true;
      };
      const stop = taskStateRank(t.desiredState) >= taskStateRank('shutdown');
      if (stop) {
        // The orchestrator shuts unassigned tasks down itself; a worker stops assigned ones.
        if (taskStateRank(st) >= taskStateRank('assigned') && node !== undefined && node.status.state !== 'down') set('shutdown', 'stopped');
        return;
      }
      if (st === 'new') {
        set('pending', ALLOCATED_MESSAGE);
        return;
      }
      if (st === 'pending') {
        if (t.nodeId !== undefined) {
          if (node && node.status.state === 'ready' && node.spec.availability !== 'drain') set('assigned', 'assigned');
          return;
        }
        const cands = this.candidates(nodes, t);
        if (cands.length === 0) return;
        const chosen = this.placer ? this.placer(t, cands) : cands[this.rr++ % cands.length]!.id;
        if (chosen !== undefined) set('assigned', 'assigned', {}, chosen);
        return;
      }
      if (node === undefined || node.status.state === 'down') return;
      if (st === 'assigned') {
        if (t.spec.image === 'broken') set('failed', 'starting container failed', { err: 'image broken not found' });
        else set('running', 'started');
        return;
      }
      if (st === 'running' && t.spec.image.startsWith('job')) set('complete', 'finished', { exitCode: 0 });
    });
    for (const o of this.observers) o();
    return changed;
  }

  /** Orchestrator and fake worker until neither has anything left to do. */
  async settle(maxRounds = 500): Promise<void> {
    for (let i = 0; i < maxRounds; i++) {
      await this.orch.idle();
      if (this.slotCacheErrors.length > 0) throw new Error(`orchestrator slot cache: ${this.slotCacheErrors.join('; ')}`);
      for (const o of this.observers) o();
      if (!(await this.step())) return;
    }
    throw new Error('harness: did not settle');
  }

  /** Advances the clock (firing the orchestrator's timers) and settles. */
  async advance(ms: number): Promise<void> {
    this.clock.advance(ms);
    await this.settle();
  }
}

/** Tasks by slot (live ones). */
export function bySlot(tasks: readonly Frozen<Task>[]): Map<number, Frozen<Task>[]> {
  const m = new Map<number, Frozen<Task>[]>();
  for (const t of tasks) {
    if (t.slot === undefined) continue;
    const l = m.get(t.slot) ?? [];
    l.push(t);
    m.set(t.slot, l);
  }
  return m;
}

export function countBy<T>(xs: readonly T[], key: (x: T) => string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) {
    const k = key(x);
    if (k === undefined) continue;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}
