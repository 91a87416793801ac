// `GET /events`: Docker's swarm events, derived from the replicated store's changes. Every manager
// applies the same Raft entries, and an event's time is the object's `updatedAt` (the proposing
// transaction's clock, carried in the entry), so any manager produces the same events — no
// forwarding needed, and they keep flowing while a new leader is elected. A bounded ring keeps the
// recent ones for `since`; `until` ends the stream. Tasks produce no events (as in Docker).
// `toDockerEvent` and the ring are pure; the route is the I/O.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Router } from '../api/http.ts';
import type { Frozen, Kind, Network, Node, Service } from '../../api/objects.ts';
import type { StoreEvent } from '../store/store.ts';
import { anyOf, parseFilters, type Filters } from './filters.ts';
import { query, type DockerCtx } from './http.ts';

export interface DockerEvent {
  Type: string;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: 'swarm';
  time: number;
  timeNano: number;
}

/** Events kept for `since` (older ones are gone, as in dockerd's own bounded log). */
export const EVENT_RING = 10_000;
/** Listeners of the live stream at once. */
export const MAX_EVENT_LISTENERS = 64;

const KINDS: readonly Kind[] = ['service', 'node', 'network', 'secret', 'config'];

function imageOf(s: Frozen<Service> | undefined): string {
  return s?.spec.task.image ?? '';
}

function replicasOf(s: Frozen<Service> | undefined): string {
  const m = s?.spec.mode;
  return m && 'replicated' in m ? String(m.replicated.replicas) : '';
}

/** A store change as Docker's event, or null for changes Docker does not report. */
export function toDockerEvent(ev: StoreEvent): DockerEvent | null {
  if (!KINDS.includes(ev.kind)) return null;
  const o = ev.object as { id: string; updatedAt?: string; spec?: { name?: string } };
  const attrs: Record<string, string> = {};
  if (ev.kind === 'node') {
    const n = ev.object as Frozen<Node>;
    attrs.name = n.description?.hostname ?? n.id;
    const old = ev.old as Frozen<Node> | undefined;
    if (ev.type === 'update' && old) {
      if (old.status.state !== n.status.state) Object.assign(attrs, { 'state.old': old.status.state, 'state.new': n.status.state });
      if (old.spec.availability !== n.spec.availability)
        Object.assign(attrs, { 'availability.old': old.spec.availability, 'availability.new': n.spec.availability });
      if (old.spec.role !== n.spec.role) Object.assign(attrs, { 'role.old': old.spec.role, 'role.new': n.spec.role });
      // Heartbeats and other status-only writes are not events.
      if (Object.keys(attrs).length === 1 && old.version !== undefined && JSON.stringify(old.spec) === JSON.stringify(n.spec)) return null;
    }
  } else {
    attrs.name = o.spec?.name ?? o.id;
    if (ev.kind === 'service' && ev.type === 'update') {
      const s = ev.object as Frozen<Service>;
      const old = ev.old as Frozen<Service> | undefined;
      // Only spec changes: the orchestrator's status writes (update progress, endpoints) are not events.
      if (old && JSON.stringify(old.spec) === JSON.stringify(s.spec)) return null;
      if (imageOf(old) !== imageOf(s)) Object.assign(attrs, { 'image.old': imageOf(old), 'image.new': imageOf(s) });
      if (replicasOf(old) !== replicasOf(s)) Object.assign(attrs, { 'replicas.old': replicasOf(old), 'replicas.new': replicasOf(s) });
    }
    if (ev.kind === 'network' && ev.type === 'update') {
      const old = ev.old as Frozen<Network> | undefined;
      if (old && JSON.stringify(old.spec) === JSON.stringify((ev.object as Frozen<Network>).spec)) return null;
    }
  }
  const ms = Date.parse(o.updatedAt ?? '') || 0;
  return {
    Type: ev.kind,
    Action: ev.type === 'delete' ? 'remove' : ev.type,
    Actor: { ID: o.id, Attributes: attrs },
    scope: 'swarm',
    time: Math.floor(ms / 1000),
    timeNano: ms * 1e6,
  };
}

/** Recent events, bounded, plus the live listeners. */
export class EventRing {
  private events: DockerEvent[] = [];
  private readonly listeners = new Set<(e: DockerEvent) => void>();

  constructor(private readonly capacity = EVENT_RING) {}

  push(e: DockerEvent): void {
    this.events.push(e);
    if (this.events.length > this.capacity) this.events.splice(0, this.events.length - this.capacity);
    for (const l of this.listeners) l(e);
  }

  /** Kept events with sinceNs ≤ timeNano ≤ untilNs. */
  between(sinceNs: number, untilNs: number): DockerEvent[] {
    return this.events.filter((e) => e.timeNano >= sinceNs && e.timeNano <= untilNs);
  }

  listen(l: (e: DockerEvent) => void): () => void {
    if (this.listeners.size >= MAX_EVENT_LISTENERS) return () => {};
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  get listening(): number {
    return this.listeners.size;
  }
}

/** Docker's since/until: unix seconds (fractional) or RFC 3339; absent → the default. In ns. */
export function timeParamNs(raw: string | null, dflt: number): number {
  if (raw === null || raw === '') return dflt;
  const n = Number(raw);
  if (Number.isFinite(n)) return n * 1e9;
  const t = Date.parse(raw);
  return Number.isNaN(t) ? dflt : t * 1e6;
}

export function matchesFilters(e: DockerEvent, f: Filters): boolean {
  const named = (key: string) =>
    e.Type === key ? anyOf(f, key, (v) => v === e.Actor.ID || v === e.Actor.Attributes.name || e.Actor.ID.startsWith(v)) : !f.get(key)?.length;
  return (
    anyOf(f, 'type', (v) => v === e.Type) &&
    anyOf(f, 'event', (v) => v === e.Action) &&
    anyOf(f, 'scope', (v) => v === 'swarm') &&
    ['service', 'node', 'network', 'secret', 'config'].every((k) => !f.get(k)?.length || named(k))
  );
}

export function registerEventRoutes(r: Router<DockerCtx>, ring: EventRing, now: () => number): void {
  r.add('GET', '/events', (_c, _p, req: IncomingMessage, res: ServerResponse) => {
    const q = query(req);
    const f = parseFilters(q.get('filters'), [
      'type',
      'event',
      'scope',
      'service',
      'node',
      'network',
      'secret',
      'config',
      'container',
      'image',
      'volume',
      'daemon',
      'plugin',
      'label',
    ]);
    const nowNs = now() * 1e6;
    const sinceNs = timeParamNs(q.get('since'), nowNs);
    const untilNs = timeParamNs(q.get('until'), Number.POSITIVE_INFINITY);
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    for (const e of ring.between(sinceNs, Math.min(untilNs, nowNs))) if (matchesFilters(e, f)) res.write(`${JSON.stringify(e)}\n`);
    if (untilNs <= nowNs) {
      res.end();
      return undefined;
    }
    // Live: until `until` passes or the client goes away. A client that stops reading is dropped
    // rather than buffered without bound.
    const stop = ring.listen((e) => {
      if (!matchesFilters(e, f)) return;
      if (res.writableLength > 1 << 20) {
        end();
        return;
      }
      res.write(`${JSON.stringify(e)}\n`);
    });
    const timer = Number.isFinite(untilNs) ? setTimeout(() => end(), Math.max(0, untilNs / 1e6 - now())) : null;
    let ended = false;
    function end(): void {
      if (ended) return;
      ended = true;
      stop();
      if (timer) clearTimeout(timer);
      res.end();
    }
    res.on('close', end);
    return undefined;
  });
}
