// `GET /events`: Docker's swarm events, converted from the cluster events every manager derives from
// the replicated log (manager/events). Any manager produces the same events with the same times (the
// proposing transaction's clock, carried in the entry), so no forwarding is needed and events keep
// flowing while a new leader is elected; `since` replays the manager's bounded event ring, `until` ends
// the stream. Docker reports services, nodes, networks, secrets and configs; tasks, leader changes,
// cluster settings and autoscaling decisions are Shoal's own (`shoal events`) and are left out, as are
// a service's rolling-update state moves (Docker's clients expect an update event per spec change).
// `toDockerEvent` is pure; the route is the I/O.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ClusterEvent } from '../../api/events.ts';
import { ApiError, badRequest, type Router } from '../api/http.ts';
import type { EventLog } from '../events/log.ts';
import { EventQueryError, emptyFilter, eventLabels, parseEventTime } from '../events/filter.ts';
import { allLabels, anyOf, parseFilters, type Filters } from './filters.ts';
import { query, type DockerCtx } from './http.ts';

export interface DockerEvent {
  Type: string;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: 'swarm';
  time: number;
  timeNano: number;
}

const DOCKER_TYPES: ReadonlySet<string> = new Set(['service', 'node', 'network', 'secret', 'config']);
/** Attributes that say a service's spec changed (derive.ts); an update with none is status only. */
const SPEC_CHANGE = ['image.new', 'replicas.new', 'mode.new', 'name.new', 'changed'];
/** Attributes Docker has no place for (labels are Docker's own `label.*`-free names here). */
const SHOAL_ONLY = new Set(['updatestate.old', 'updatestate.new', 'updatestate.message']);

/** A cluster event as Docker's, or null for events Docker does not report. */
export function toDockerEvent(e: ClusterEvent): DockerEvent | null {
  if (!DOCKER_TYPES.has(e.type)) return null;
  let action = e.action;
  if (e.type === 'node' && (action === 'down' || action === 'up')) action = 'update';
  if (action !== 'create' && action !== 'update' && action !== 'remove') return null;
  const a = e.actor.attributes;
  if (e.type === 'service' && action === 'update' && !SPEC_CHANGE.some((k) => k in a)) return null;
  const attrs: Record<string, string> = {};
  for (const [k, v] of Object.entries(a)) if (!SHOAL_ONLY.has(k) && !k.startsWith('label.')) attrs[k] = v;
  attrs.name ??= e.actor.name;
  const ms = Date.parse(e.time) || 0;
  return {
    Type: e.type,
    Action: action,
    Actor: { ID: e.actor.id, Attributes: attrs },
    scope: 'swarm',
    time: Math.floor(ms / 1000),
    timeNano: ms * 1e6,
  };
}

/** Docker's since/until (events/filter.ts parseEventTime: Unix seconds or RFC 3339) in ns; absent → the default; unreadable → 400. */
export function timeParamNs(param: 'since' | 'until', raw: string | null, dflt: number): number {
  if (raw === null || raw === '') return dflt;
  try {
    return parseEventTime(param, raw) * 1e6;
  } catch (e) {
    if (e instanceof EventQueryError) throw badRequest(e.message, { param: e.param });
    throw e;
  }
}

/** Filters for objects this swarm-only facade never reports events about: any value matches nothing. */
const NEVER_KEYS = ['container', 'image', 'volume', 'daemon', 'plugin'];

/** `labels`: the actor's labels (Docker matches `label=` against them; every value must match). */
export function matchesFilters(e: DockerEvent, f: Filters, labels: Readonly<Record<string, string>> = {}): boolean {
  const named = (key: string) =>
    e.Type === key ? anyOf(f, key, (v) => v === e.Actor.ID || v === e.Actor.Attributes.name || e.Actor.ID.startsWith(v)) : !f.get(key)?.length;
  return (
    anyOf(f, 'type', (v) => v === e.Type) &&
    anyOf(f, 'event', (v) => v === e.Action) &&
    anyOf(f, 'scope', (v) => v === 'swarm') &&
    ['service', 'node', 'network', 'secret', 'config'].every((k) => !f.get(k)?.length || named(k)) &&
    NEVER_KEYS.every((k) => !f.get(k)?.length) &&
    allLabels(f, 'label', labels)
  );
}

const FILTER_KEYS = ['type', 'event', 'scope', 'service', 'node', 'network', 'secret', 'config', 'container', 'image', 'volume', 'daemon', 'plugin', 'label'];

export function registerEventRoutes(r: Router<DockerCtx>, log: EventLog | undefined, now: () => number): void {
  r.add('GET', '/events', (_c, _p, req: IncomingMessage, res: ServerResponse) => {
    const q = query(req);
    const f = parseFilters(q.get('filters'), FILTER_KEYS);
    const nowNs = now() * 1e6;
    const sinceNs = timeParamNs('since', q.get('since'), nowNs);
    const untilNs = timeParamNs('until', q.get('until'), Number.POSITIVE_INFINITY);
    const convert = (e: ClusterEvent): DockerEvent | null => {
      const d = toDockerEvent(e);
      return d && d.timeNano >= sinceNs && d.timeNano <= untilNs && matchesFilters(d, f, eventLabels(e.actor.attributes)) ? d : null;
    };
    const past = log ? log.replay({ filter: emptyFilter() }) : [];
    // Opened in the same turn as the replay, so nothing falls between the two.
    let wake = (): void => {};
    const follow = log !== undefined && untilNs > nowNs;
    const l = follow ? log.listen({ filter: emptyFilter(), ...(past.length > 0 ? { after: past[past.length - 1]!.seq } : {}) }, () => wake()) : null;
    // As /v1/events (manager/api/events.ts): a full listener table is a 503, not a stream that ends at once.
    if (follow && l === null) throw new ApiError(503, 'EBUSY', 'too many event streams are open on this manager; retry later or ask another manager');
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    for (const e of past) {
      const d = convert(e);
      if (d) res.write(`${JSON.stringify(d)}\n`);
    }
    if (!l) {
      res.end();
      return undefined;
    }
    // Live: until `until` passes or the client goes away. A client that stops reading is dropped
    // (the log bounds its queue) rather than buffered without bound.
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      l.close();
      if (timer) clearTimeout(timer);
      res.end();
    };
    wake = () => {
      for (let e = l.take(); e !== undefined; e = l.take()) {
        const d = convert(e);
        if (d) res.write(`${JSON.stringify(d)}\n`);
      }
      if (l.endReason !== null || res.writableLength > 1 << 20) end();
    };
    const timer = Number.isFinite(untilNs) ? setTimeout(end, Math.max(0, untilNs / 1e6 - now())) : null;
    res.on('close', end);
    return undefined;
  });
}
