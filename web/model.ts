// The page's copy of the cluster: the server's snapshot, then each delta applied in order (protocol.ts).
// Pure data and pure functions, no DOM: the views read it, main.ts feeds it.
import type { ClusterEvent } from '../api/events.ts';
import type { DashLink, DashNode, DashRaft, DashService, DashTask, Delta, Snapshot } from './protocol.ts';

/** Events the feed keeps (the server keeps as many). */
const MAX_EVENTS = 500;
/** Task states after which a task is history (api/objects.ts isTerminalTaskState). */
const ENDED = new Set(['complete', 'shutdown', 'failed', 'rejected', 'remove', 'orphaned']);

export class Model {
  clusterId = '';
  nodes = new Map<string, DashNode>();
  services = new Map<string, DashService>();
  tasks = new Map<string, DashTask>();
  raft = new Map<string, DashRaft>();
  events: ClusterEvent[] = [];
  link: DashLink = { state: 'connecting', message: 'connecting', since: 0 };
  /** The page's own connection to the dashboard server (EventSource). */
  connected = false;
  /** The `cause` of the last delta applied (tests and the benchmark read it). */
  lastCause = '';

  load(s: Snapshot): void {
    this.clusterId = s.clusterId;
    this.nodes = new Map(s.nodes.map((n) => [n.id, n]));
    this.services = new Map(s.services.map((x) => [x.id, x]));
    this.tasks = new Map(s.tasks.map((t) => [t.id, t]));
    this.raft = new Map(s.raft.map((r) => [r.addr, r]));
    this.events = s.events.slice(-MAX_EVENTS);
    this.link = s.link;
  }

  apply(d: Delta): void {
    for (const n of d.nodes ?? []) this.nodes.set(n.id, n);
    for (const id of d.removeNodes ?? []) this.nodes.delete(id);
    for (const s of d.services ?? []) this.services.set(s.id, s);
    for (const id of d.removeServices ?? []) this.services.delete(id);
    for (const t of d.tasks ?? []) this.tasks.set(t.id, t);
    for (const id of d.removeTasks ?? []) this.tasks.delete(id);
    for (const r of d.raft ?? []) this.raft.set(r.addr, r);
    if (d.events?.length) {
      this.events.push(...d.events);
      if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS);
    }
    if (d.link) this.link = d.link;
    if (d.cause) this.lastCause = d.cause;
  }

  /** Nodes in a stable order: managers first (leader first), then workers, each by hostname. */
  sortedNodes(): DashNode[] {
    const rank = (n: DashNode) => (n.manager?.leader ? 0 : n.role === 'manager' ? 1 : 2);
    return [...this.nodes.values()].sort((a, b) => rank(a) - rank(b) || a.hostname.localeCompare(b.hostname));
  }

  sortedServices(): DashService[] {
    return [...this.services.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Tasks that run or should (what the map shows): not history. */
  currentTasks(): DashTask[] {
    return [...this.tasks.values()].filter((t) => isCurrent(t));
  }

  tasksOf(serviceId: string): DashTask[] {
    return [...this.tasks.values()].filter((t) => t.serviceId === serviceId).sort(byTask);
  }

  serviceByRef(ref: string): DashService | undefined {
    return this.services.get(ref) ?? [...this.services.values()].find((s) => s.name === ref);
  }
}

export function isCurrent(t: DashTask): boolean {
  return t.desiredState === 'running' || t.desiredState === 'complete' || !ENDED.has(t.state);
}

/** By service, slot, then newest first (a slot's current task above its history). */
export function byTask(a: DashTask, b: DashTask): number {
  return a.serviceName.localeCompare(b.serviceName) || (a.slot ?? 0) - (b.slot ?? 0) || b.timestamp.localeCompare(a.timestamp);
}

/** A task's short name, as `service ps` shows it: `web.3` (global tasks: `web.<node>`). */
export function taskName(t: DashTask, nodes?: Map<string, DashNode>): string {
  if (t.slot !== null) return `${t.serviceName}.${t.slot}`;
  const n = t.nodeId ? (nodes?.get(t.nodeId)?.hostname ?? t.nodeId.slice(0, 8)) : '?';
  return `${t.serviceName}.${n}`;
}

/** A short "3 s ago" from an ISO time and now. */
export function ago(iso: string, now = Date.now()): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function bytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(1)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(0)} KiB`;
  return `${n} B`;
}
