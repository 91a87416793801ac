// The dashboard's live picture of the cluster, driven by the managers' event stream (GET /v1/events,
// api/events.ts): no polling. It keeps slim copies of the nodes, services and tasks (views.ts), and
// turns every cluster event into a refetch of just the object(s) it names, and the difference into a
// Delta for the browsers (server.ts sends it over Server-Sent Events).
//
//   event stream ──> dirty keys ──> flush: refetch each key ──> diff with the model ──> Delta ──> browsers
//
//   service event        service:<id>   GET /v1/services/<id>            (404: removed, with its tasks)
//   task event           tasks:<svc>    GET /v1/tasks?service=<svc>&all=1 (and the service's running count)
//   node event           node:<id>      GET /v1/nodes/<id>
//   manager/cluster      nodes, raft    GET /v1/nodes, GET /v1/info on each manager
//
// Flushes are single-flight: keys that turn dirty during a flush wait for the next one, so a burst of
// events (a scale to 100 replicas) costs a handful of requests, not one per event. The Raft view (each
// manager's own /v1/info: term, commit, applied) is refreshed after a flush at most every RAFT_EVERY_MS.
//
// Failure: when the stream ends or cannot be opened (a manager died, the network broke, or the cluster
// predates /v1/events), the link shows `connecting`/`down` on the page and the source reconnects with
// exponential backoff (RECONNECT_MIN_MS doubling to RECONNECT_MAX_MS); every (re)connection starts with a
// full resync, so nothing that changed while it was away is missed. That reconnect is the only timer.
import type { ClusterEvent } from '../../api/events.ts';
import { EVENT_TYPES, compareSeq } from '../../api/events.ts';
import type { Task } from '../../api/objects.ts';
import type { DashLink, DashNode, DashRaft, DashService, DashTask, Delta, Snapshot } from '../../web/protocol.ts';
import type { NdjsonStream } from '../../client/ndjson.ts';
import { countRunning, dashNode, dashService, dashTask, type NodeJson, type ServiceJson, same } from './views.ts';

/** What the dashboard hands a stream (client/ndjson.ts's handlers, with the end reason as text). */
export interface StreamHandlers {
  onOpen?: (manager: string) => void;
  onLine: (o: unknown) => void;
  /** Ended: why, or undefined when the manager ended it cleanly. */
  onEnd: (error?: string) => void;
}

/** What the source needs from the cluster (a context in production, a fake in the unit tests). */
export interface ClusterApi {
  /** A control-API GET (any manager, or `manager` only). Rejects with an Error whose message the API gave, and its `status` when it answered. */
  get<T>(path: string, manager?: string): Promise<T>;
  stream(path: string, h: StreamHandlers): NdjsonStream;
  managers(): string[];
  clusterId: string;
}

const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 10_000;
/** A stream that stayed up this long resets the backoff. */
const STABLE_MS = 30_000;
/** Events the page's feed keeps (and a new browser gets in its snapshot). */
export const EVENT_RING = 500;
/** On (re)connect: the recent past replayed into the events feed. */
const REPLAY_MS = 10 * 60_000;
const RAFT_EVERY_MS = 2_000;

/** The cluster answered 404 (client/context.ts's CliError carries the status). */
const isNotFound = (e: unknown) => (e as { status?: unknown } | null)?.status === 404;

function isEvent(o: unknown): o is ClusterEvent {
  if (typeof o !== 'object' || o === null) return false;
  const e = o as Partial<ClusterEvent>;
  return (
    typeof e.seq === 'string' &&
    typeof e.type === 'string' &&
    (EVENT_TYPES as readonly string[]).includes(e.type) &&
    typeof e.action === 'string' &&
    typeof e.actor === 'object' &&
    e.actor !== null &&
    typeof e.actor.id === 'string'
  );
}

export class LiveSource {
  readonly nodes = new Map<string, DashNode>();
  readonly services = new Map<string, DashService>();
  readonly tasks = new Map<string, DashTask>();
  readonly raft = new Map<string, DashRaft>();
  private readonly events: ClusterEvent[] = [];
  private link: DashLink = { state: 'connecting', message: 'connecting to the cluster', since: Date.now() };
  private readonly listeners = new Set<(d: Delta) => void>();

  private stream: NdjsonStream | null = null;
  private stopped = true;
  private backoff = RECONNECT_MIN_MS;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private openedAt = 0;
  /** Keys to refetch (see the table above), and the newest event seq that made each dirty. */
  private dirty = new Map<string, string | undefined>();
  private flushing = false;
  private syncing = false;
  private lastRaft = 0;
  private raftTimer: NodeJS.Timeout | null = null;
  /** Settles when the first resync is done (the server answers the first page only after it). */
  readonly ready: Promise<void>;
  private markReady!: () => void;

  constructor(
    private readonly api: ClusterApi,
    private readonly log: (line: string) => void = () => {},
  ) {
    this.ready = new Promise((r) => (this.markReady = r));
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.stream?.close();
    this.stream = null;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.raftTimer) clearTimeout(this.raftTimer);
    this.listeners.clear();
  }

  subscribe(fn: (d: Delta) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  snapshot(): Snapshot {
    return {
      clusterId: this.api.clusterId,
      nodes: [...this.nodes.values()],
      services: [...this.services.values()],
      tasks: [...this.tasks.values()],
      raft: [...this.raft.values()],
      events: [...this.events],
      link: this.link,
    };
  }

  get linkState(): DashLink {
    return this.link;
  }

  private emit(d: Delta): void {
    const keys = Object.keys(d).filter((k) => k !== 'at' && k !== 'cause');
    if (keys.length === 0) return;
    for (const fn of this.listeners) fn(d);
  }

  private setLink(state: DashLink['state'], message: string): void {
    if (this.link.state === state && this.link.message === message) return;
    this.link = { state, message, since: Date.now() };
    this.emit({ at: Date.now(), link: this.link });
  }

  // ------------------------------------------------------------------------------------- the stream

  private connect(): void {
    if (this.stopped) return;
    this.setLink('connecting', 'opening the event stream');
    const since = ((Date.now() - REPLAY_MS) / 1000).toFixed(3);
    let opened = false;
    this.stream = this.api.stream(`/v1/events?follow=1&since=${since}`, {
      onOpen: (m) => {
        opened = true;
        this.openedAt = Date.now();
        this.setLink('live', `event stream from ${m}`);
        void this.resync();
      },
      onLine: (o) => this.onEvent(o),
      onEnd: (error) => {
        this.stream = null;
        if (this.stopped) return;
        const why = error ?? 'the manager ended the event stream';
        if (opened && Date.now() - this.openedAt > STABLE_MS) this.backoff = RECONNECT_MIN_MS;
        this.log(`dashboard: event stream: ${why}; reconnecting in ${this.backoff} ms`);
        this.setLink('down', `${why}; reconnecting`);
        // Without a stream, still show what the cluster looks like now (once per reconnect attempt).
        if (!opened) void this.resync();
        this.reconnectTimer = setTimeout(() => this.connect(), this.backoff);
        this.backoff = Math.min(RECONNECT_MAX_MS, this.backoff * 2);
      },
    });
  }

  private onEvent(o: unknown): void {
    if (!isEvent(o)) return; // keepalives, and anything this version does not know
    const last = this.events[this.events.length - 1];
    if (last && compareSeq(o.seq, last.seq) <= 0 && this.events.some((e) => e.seq === o.seq)) return; // a replay we hold
    this.events.push(o);
    if (this.events.length > EVENT_RING) this.events.splice(0, this.events.length - EVENT_RING);
    this.emit({ at: Date.now(), events: [o], cause: o.seq });
    for (const key of this.keysOf(o)) this.dirty.set(key, o.seq);
    this.scheduleFlush();
  }

  /** Which objects an event makes stale. */
  keysOf(e: ClusterEvent): string[] {
    const a = e.actor.attributes ?? {};
    switch (e.type) {
      case 'service':
        return [`service:${e.actor.id}`, ...(e.action === 'remove' ? [`tasks:${e.actor.id}`] : [])];
      case 'task': {
        const svc = a['service.id'] ?? a.serviceId ?? this.tasks.get(e.actor.id)?.serviceId ?? this.serviceIdByName(e.actor.name.split('.')[0] ?? '');
        return svc ? [`tasks:${svc}`] : ['tasks:*'];
      }
      case 'node':
        return [`node:${e.actor.id}`];
      case 'manager':
      case 'cluster':
        return ['nodes', 'raft'];
      default:
        return [];
    }
  }

  private serviceIdByName(name: string): string | undefined {
    for (const s of this.services.values()) if (s.name === name) return s.id;
    return undefined;
  }

  // ------------------------------------------------------------------------------------ refetching

  private scheduleFlush(): void {
    if (this.flushing || this.syncing || this.dirty.size === 0) return;
    void this.flush();
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.dirty.size > 0 && !this.stopped) {
        const batch = this.dirty;
        this.dirty = new Map();
        const cause = [...batch.values()]
          .filter((s): s is string => s !== undefined)
          .sort(compareSeq)
          .pop();
        const d: Delta = { at: 0 };
        const results = await Promise.allSettled([...batch.keys()].map((k) => this.refetch(k, d)));
        for (const r of results) if (r.status === 'rejected') this.log(`dashboard: refetch failed: ${(r.reason as Error).message}`);
        d.at = Date.now();
        if (cause !== undefined) d.cause = cause;
        this.emit(d);
      }
    } finally {
      this.flushing = false;
    }
    this.refreshRaftSoon();
  }

  private async refetch(key: string, d: Delta): Promise<void> {
    const [kind, id = ''] = key.split(/:(.*)/s) as [string, string?];
    if (kind === 'service') {
      try {
        const s = await this.api.get<ServiceJson>(`/v1/services/${encodeURIComponent(id)}`);
        this.putService(dashService(s, countRunning(this.tasks.values(), s.id)), d);
      } catch (e) {
        if (!isNotFound(e)) throw e;
        if (this.services.delete(id)) (d.removeServices ??= []).push(id);
        for (const t of [...this.tasks.values()]) if (t.serviceId === id) this.removeTask(t.id, d);
      }
    } else if (kind === 'tasks') {
      if (id === '*') return this.putAllTasks(await this.api.get<Task[]>('/v1/tasks?all=1'), d);
      let tasks: Task[];
      try {
        tasks = await this.api.get<Task[]>(`/v1/tasks?service=${encodeURIComponent(id)}&all=1`);
      } catch (e) {
        if (!isNotFound(e)) throw e;
        tasks = [];
      }
      const seen = new Set<string>();
      for (const t of tasks) {
        seen.add(t.id);
        this.putTask(dashTask(t), d);
      }
      for (const t of [...this.tasks.values()]) if (t.serviceId === id && !seen.has(t.id)) this.removeTask(t.id, d);
      this.recount(id, d);
    } else if (kind === 'node') {
      try {
        this.putNode(dashNode(await this.api.get<NodeJson>(`/v1/nodes/${encodeURIComponent(id)}`)), d);
      } catch (e) {
        if (!isNotFound(e)) throw e;
        if (this.nodes.delete(id)) (d.removeNodes ??= []).push(id);
      }
    } else if (kind === 'nodes') {
      this.putAllNodes(await this.api.get<NodeJson[]>('/v1/nodes'), d);
    } else if (kind === 'raft') {
      this.lastRaft = 0;
    }
  }

  private putService(s: DashService, d: Delta): void {
    if (same(this.services.get(s.id), s)) return;
    this.services.set(s.id, s);
    (d.services ??= []).push(s);
  }

  private putTask(t: DashTask, d: Delta): void {
    if (same(this.tasks.get(t.id), t)) return;
    this.tasks.set(t.id, t);
    (d.tasks ??= []).push(t);
  }

  private removeTask(id: string, d: Delta): void {
    if (this.tasks.delete(id)) (d.removeTasks ??= []).push(id);
  }

  private putNode(n: DashNode, d: Delta): void {
    if (same(this.nodes.get(n.id), n)) return;
    this.nodes.set(n.id, n);
    (d.nodes ??= []).push(n);
  }

  /** A service's running count follows its tasks. */
  private recount(serviceId: string, d: Delta): void {
    const s = this.services.get(serviceId);
    if (!s) return;
    const running = countRunning(this.tasks.values(), serviceId);
    if (running !== s.running) this.putService({ ...s, running }, d);
  }

  private putAllTasks(tasks: Task[], d: Delta): void {
    const seen = new Set<string>();
    for (const t of tasks) {
      seen.add(t.id);
      this.putTask(dashTask(t), d);
    }
    for (const id of [...this.tasks.keys()]) if (!seen.has(id)) this.removeTask(id, d);
    for (const id of this.services.keys()) this.recount(id, d);
  }

  private putAllNodes(nodes: NodeJson[], d: Delta): void {
    const seen = new Set<string>();
    for (const n of nodes) {
      seen.add(n.id);
      this.putNode(dashNode(n), d);
    }
    for (const id of [...this.nodes.keys()]) if (!seen.has(id) && this.nodes.delete(id)) (d.removeNodes ??= []).push(id);
  }

  /** Everything, from scratch: on every (re)connection. Events that arrive meanwhile are flushed after. */
  async resync(): Promise<void> {
    if (this.syncing) return;
    this.syncing = true;
    try {
      const [nodes, services, tasks] = await Promise.all([
        this.api.get<NodeJson[]>('/v1/nodes'),
        this.api.get<ServiceJson[]>('/v1/services'),
        this.api.get<Task[]>('/v1/tasks?all=1'),
      ]);
      const d: Delta = { at: 0 };
      this.putAllNodes(nodes, d);
      const seen = new Set<string>();
      // Tasks first: the services' running counts are computed from them.
      this.putAllTasks(tasks, d);
      for (const s of services) {
        seen.add(s.id);
        this.putService(dashService(s, countRunning(this.tasks.values(), s.id)), d);
      }
      for (const id of [...this.services.keys()]) if (!seen.has(id) && this.services.delete(id)) (d.removeServices ??= []).push(id);
      d.at = Date.now();
      this.emit(d);
      await this.refreshRaft();
    } catch (e) {
      this.log(`dashboard: resync failed: ${(e as Error).message}`);
      this.setLink('down', `cannot read the cluster: ${(e as Error).message}`);
    } finally {
      this.syncing = false;
      this.markReady();
    }
    this.scheduleFlush();
  }

  // ------------------------------------------------------------------------------------------ raft

  private refreshRaftSoon(): void {
    if (this.raftTimer || this.stopped) return;
    const wait = Math.max(0, this.lastRaft + RAFT_EVERY_MS - Date.now());
    this.raftTimer = setTimeout(() => {
      this.raftTimer = null;
      void this.refreshRaft();
    }, wait);
  }

  /** Each manager's own view (GET /v1/info asked of it alone): who it thinks leads, its term and indexes. */
  async refreshRaft(): Promise<void> {
    this.lastRaft = Date.now();
    const managers = [...new Set([...this.api.managers(), ...[...this.nodes.values()].flatMap((n) => (n.manager?.addr ? [n.manager.addr] : []))])];
    interface Info {
      nodeId: string;
      role: string;
      leader: string | null;
      term: number;
      commit: number;
      applied: number;
    }
    const rows = await Promise.all(
      managers.map(async (addr): Promise<DashRaft> => {
        try {
          const i = await this.api.get<Info>('/v1/info', addr);
          return { addr, nodeId: i.nodeId, role: i.role, leader: i.leader, term: i.term, commit: i.commit, applied: i.applied, error: null };
        } catch (e) {
          return { addr, nodeId: null, role: null, leader: null, term: null, commit: null, applied: null, error: (e as Error).message };
        }
      }),
    );
    const changed = rows.filter((r) => !same(this.raft.get(r.addr), r));
    for (const r of changed) this.raft.set(r.addr, r);
    if (changed.length > 0) this.emit({ at: Date.now(), raft: changed });
  }
}
