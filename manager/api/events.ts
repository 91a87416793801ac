// `GET /v1/events` (api/events.ts is the contract): the cluster's events as newline-delimited JSON, from
// this manager's event log (manager/events). Any manager answers the same; no leader needed.
//
//   since   absent: every kept event when not following; only new ones when following (as docker events)
//   until   the replay stops there; a follow stream ends when it passes
//   after   only events after this seq (a dropped stream's resume point)
//   filter  repeated KEY=VALUE (manager/events/filter.ts)
//   follow  1: stay open, a {"keepalive":true} line every KEEPALIVE_MS
//
// A listener that falls LISTENER_QUEUE events behind gets a last line {"end": reason, "after": seq} and
// the stream closes. At most MAX_LISTENERS follow at once per manager (then 503).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError, badRequest, type Router } from './http.ts';
import type { EventLog } from '../events/log.ts';
import { EventQueryError, parseEventQuery, type EventQuery } from '../events/filter.ts';

export const KEEPALIVE_MS = 15_000;

export interface EventRouteDeps {
  events: EventLog;
  keepaliveMs?: number;
  now?: () => number;
}

function query(req: IncomingMessage): EventQuery {
  const q = new URL(req.url ?? '/', 'http://x').searchParams;
  try {
    return parseEventQuery(q);
  } catch (e) {
    if (e instanceof EventQueryError) throw badRequest(e.message, { param: e.param });
    throw e;
  }
}

export function registerEventRoutes<C>(r: Router<C>, d: EventRouteDeps): void {
  r.add('GET', '/v1/events', (_c, _p, req, res) => {
    serveEvents(d, query(req), res);
    return undefined;
  });
}

/** Writes the replay and, when following, the live stream; returns at once (the stream runs on). */
export function serveEvents(d: EventRouteDeps, q: EventQuery, res: ServerResponse): void {
  const now = (d.now ?? Date.now)();
  const follow = q.follow && (q.until === undefined || q.until > now);
  // Following without `since`: live only.
  const since = q.since ?? (follow ? now : undefined);
  const past = d.events.replay({ ...q, ...(since !== undefined ? { since } : {}) });
  const lastSeq = past.length > 0 ? past[past.length - 1]!.seq : q.after;
  // Opened in the same turn as the replay, so no event falls between the two.
  let wake = (): void => {};
  const l = follow
    ? d.events.listen({ filter: q.filter, ...(q.until !== undefined ? { until: q.until } : {}), ...(lastSeq !== undefined ? { after: lastSeq } : {}) }, () =>
        wake(),
      )
    : null;
  if (follow && l === null) throw new ApiError(503, 'EBUSY', 'too many event streams are open on this manager; retry later or ask another manager');
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store', 'x-shoal-events-oldest': d.events.oldestSeq });
  res.write(past.map((e) => `${JSON.stringify(e)}\n`).join(''));
  if (!l) {
    res.end();
    return;
  }
  let blocked = false;
  let done = false;
  const finish = (last?: Record<string, unknown>): void => {
    if (done) return;
    done = true;
    clearInterval(keepalive);
    if (untilTimer) clearTimeout(untilTimer);
    l.close();
    if (last) res.end(`${JSON.stringify(last)}\n`);
    else res.end();
  };
  const pump = (): void => {
    if (done) return;
    while (!blocked) {
      const e = l.take();
      if (e === undefined) break;
      if (!res.write(`${JSON.stringify(e)}\n`)) {
        blocked = true;
        res.once('drain', () => {
          blocked = false;
          pump();
        });
      }
    }
    // Dropped by the log (too far behind): the end line goes after whatever the socket still holds.
    if (l.endReason !== null) finish({ end: l.endReason, ...(l.lastSeq ? { after: l.lastSeq } : {}) });
  };
  wake = pump;
  const keepalive = setInterval(() => {
    if (!blocked) res.write('{"keepalive":true}\n');
  }, d.keepaliveMs ?? KEEPALIVE_MS);
  const untilTimer = q.until !== undefined ? setTimeout(() => finish(), Math.max(0, q.until - now + 1)) : null;
  res.on('close', () => finish());
}
