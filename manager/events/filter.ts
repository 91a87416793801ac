// The query of `GET /v1/events` and `shoal events` (api/events.ts), parsed and matched. Pure: the route
// and the CLI share it, and a bad parameter becomes an EventQueryError naming it (the route answers 400).
//
// Filters work as Docker's: values of the same key are alternatives (type=service&type=node is either),
// except label, whose values must all match (label=a&label=b is both); different keys must all match.
//   type=KIND        one of api/events.ts EVENT_TYPES
//   name=NAME        the object's name; for tasks also their service's name (name=web shows web's tasks)
//   id=ID            the object's id or a prefix of it; for tasks also their service's full id
//   label=KEY[=VAL]  the object's label (services, nodes, networks, secrets, configs; tasks carry their
//                    service's labels)
//   action=ACTION    create, update, remove, state, down, up, leader, autoscale, …
import { EVENT_TYPES, compareSeq, type ClusterEvent } from '../../api/events.ts';
import { anyValue, everyLabel } from '../filters.ts';

export const FILTER_KEYS = ['type', 'name', 'label', 'id', 'action'] as const;
export type FilterKey = (typeof FILTER_KEYS)[number];
export type EventFilter = Record<FilterKey, string[]>;

export interface EventQuery {
  /** Milliseconds since the epoch; events at or after. Absent: see the route (history, or live only). */
  since?: number;
  /** Milliseconds since the epoch; events at or before. */
  until?: number;
  /** Only events after this seq (resume exactly where a dropped stream stopped). */
  after?: string;
  follow: boolean;
  filter: EventFilter;
}

/** A query parameter that cannot be used; `param` names it. */
export class EventQueryError extends Error {
  readonly code = 'EBADPARAM';
  constructor(
    readonly param: string,
    message: string,
  ) {
    super(message);
    this.name = 'EventQueryError';
  }
}

export function emptyFilter(): EventFilter {
  return { type: [], name: [], label: [], id: [], action: [] };
}

/**
 * A time as `docker events` takes it: Unix seconds (fractions allowed) or RFC 3339 (any sub-second
 * precision; nanoseconds are cut to milliseconds). Returns milliseconds since the epoch.
 */
export function parseEventTime(param: string, raw: string): number {
  const t = raw.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Math.floor(Number(t) * 1000);
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i.exec(t);
  if (m) {
    const frac = m[2] ? m[2].slice(0, 4).padEnd(4, '0') : '';
    const ms = Date.parse(`${m[1]}${frac}${m[3]!.toUpperCase()}`);
    if (!Number.isNaN(ms)) return ms;
  }
  throw new EventQueryError(
    param,
    `${param} ${JSON.stringify(raw)}: not a time (expected RFC 3339 like 2026-12-06T08:00:00Z, or Unix seconds like 1796544000.5)`,
  );
}

/** `KEY=VALUE` strings (the repeated `filter` parameter) into a filter. */
export function parseFilters(raws: readonly string[]): EventFilter {
  const f = emptyFilter();
  for (const raw of raws) {
    const eq = raw.indexOf('=');
    if (eq <= 0) throw new EventQueryError('filter', `filter ${JSON.stringify(raw)}: expected KEY=VALUE with KEY one of ${FILTER_KEYS.join(', ')}`);
    const key = raw.slice(0, eq);
    const value = raw.slice(eq + 1);
    if (!(FILTER_KEYS as readonly string[]).includes(key)) {
      throw new EventQueryError('filter', `filter ${JSON.stringify(raw)}: unknown key ${JSON.stringify(key)} (expected one of ${FILTER_KEYS.join(', ')})`);
    }
    if (value === '') throw new EventQueryError('filter', `filter ${JSON.stringify(raw)}: empty value`);
    if (key === 'type' && !(EVENT_TYPES as readonly string[]).includes(value)) {
      throw new EventQueryError('filter', `filter type=${value}: unknown type (expected one of ${EVENT_TYPES.join(', ')})`);
    }
    f[key as FilterKey].push(value);
  }
  return f;
}

const SEQ_RE = /^\d+\.\d+$/;

/** The query string of `GET /v1/events`. */
export function parseEventQuery(q: URLSearchParams): EventQuery {
  const known = new Set(['since', 'until', 'filter', 'follow', 'after']);
  for (const k of q.keys())
    if (!known.has(k)) throw new EventQueryError(k, `unknown parameter ${JSON.stringify(k)} (expected since, until, filter, follow, after)`);
  const out: EventQuery = { follow: false, filter: parseFilters(q.getAll('filter')) };
  const since = q.get('since');
  const until = q.get('until');
  if (since !== null && since !== '') out.since = parseEventTime('since', since);
  if (until !== null && until !== '') out.until = parseEventTime('until', until);
  if (out.since !== undefined && out.until !== undefined && out.until < out.since) {
    throw new EventQueryError('until', `until (${until}) is before since (${since})`);
  }
  const follow = q.get('follow');
  if (follow !== null) {
    if (!['', '1', 'true', '0', 'false'].includes(follow))
      throw new EventQueryError('follow', `follow ${JSON.stringify(follow)}: expected 1, true, 0 or false`);
    out.follow = follow === '' || follow === '1' || follow === 'true';
  }
  const after = q.get('after');
  if (after !== null) {
    if (!SEQ_RE.test(after)) throw new EventQueryError('after', `after ${JSON.stringify(after)}: not a seq (expected INDEX.POSITION, e.g. 1234.0)`);
    out.after = after;
  }
  return out;
}

/** An event's labels: its `label.KEY` attributes (derive.ts). */
export function eventLabels(a: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(a)) if (k.startsWith('label.')) out[k.slice('label.'.length)] = v;
  return out;
}

export function matchesFilter(e: ClusterEvent, f: EventFilter): boolean {
  const a = e.actor.attributes;
  return (
    anyValue(f.type, (v) => v === e.type) &&
    anyValue(f.action, (v) => v === e.action) &&
    anyValue(f.name, (v) => v === e.actor.name || v === a.name || (e.type === 'task' && v === a.service)) &&
    anyValue(f.id, (v) => e.actor.id === v || (v.length > 0 && e.actor.id.startsWith(v)) || (e.type === 'task' && a['service.id'] === v)) &&
    (f.label.length === 0 || everyLabel(f.label, eventLabels(a)))
  );
}

/** The event's time in ms (its `time` is RFC 3339 with milliseconds). */
export function eventMs(e: ClusterEvent): number {
  return Date.parse(e.time);
}

/** Inside since/until/after? (Filters are matched separately.) */
export function inWindow(e: ClusterEvent, q: Pick<EventQuery, 'since' | 'until' | 'after'>): boolean {
  const t = eventMs(e);
  if (q.since !== undefined && t < q.since) return false;
  if (q.until !== undefined && t > q.until) return false;
  if (q.after !== undefined && compareSeq(e.seq, q.after) <= 0) return false;
  return true;
}
