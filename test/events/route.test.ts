// `GET /v1/events` over real loopback HTTP (manager/api/events.ts) and its query parsing
// (manager/events/filter.ts): since/until in both forms, repeated filters, follow with keepalives,
// `until` ending a stream, 400s that name the bad parameter, the listener bound, and a slow client
// dropped with an end line.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { type Server, type ServerResponse, createServer, get } from 'node:http';
import type { ClusterEvent } from '../../api/events.ts';
import { Router, sendError } from '../../manager/api/http.ts';
import { registerEventRoutes, serveEvents } from '../../manager/api/events.ts';
import { EventQueryError, emptyFilter, matchesFilter, parseEventQuery, parseEventTime, parseFilters } from '../../manager/events/filter.ts';
import { MiniCluster, T0, network, node, service, task } from './fixtures.ts';

describe('event query parsing', () => {
  it('reads RFC 3339 (any precision, offsets) and Unix seconds (fractions)', () => {
    assert.equal(parseEventTime('since', '2026-12-06T08:00:00Z'), T0);
    assert.equal(parseEventTime('since', '2026-12-06T08:00:00.123456789Z'), T0 + 123);
    assert.equal(parseEventTime('since', '2026-12-06T09:00:00+01:00'), T0);
    assert.equal(parseEventTime('since', String(T0 / 1000)), T0);
    assert.equal(parseEventTime('since', `${T0 / 1000}.25`), T0 + 250);
    for (const bad of ['yesterday', '2026-12-06', '12/06/2026', '-5', '']) {
      assert.throws(
        () => parseEventTime('until', bad),
        (e: unknown) => e instanceof EventQueryError && e.param === 'until' && /not a time/.test(e.message),
      );
    }
  });

  it('parses repeated filters and names what is wrong', () => {
    const f = parseFilters(['type=service', 'type=task', 'name=web', 'label=team=a', 'action=state']);
    assert.deepEqual(f, { type: ['service', 'task'], name: ['web'], label: ['team=a'], id: [], action: ['state'] });
    const cases: [string, RegExp][] = [
      ['color=red', /unknown key "color"/],
      ['type=container', /unknown type/],
      ['web', /expected KEY=VALUE/],
      ['name=', /empty value/],
    ];
    for (const [raw, re] of cases)
      assert.throws(
        () => parseFilters([raw]),
        (e: unknown) => e instanceof EventQueryError && e.param === 'filter' && re.test(e.message),
      );
    const q = (s: string) => parseEventQuery(new URLSearchParams(s));
    assert.throws(
      () => q('sinse=1'),
      (e: unknown) => e instanceof EventQueryError && e.param === 'sinse',
    );
    assert.throws(
      () => q('since=10&until=5'),
      (e: unknown) => e instanceof EventQueryError && e.param === 'until',
    );
    assert.throws(
      () => q('follow=maybe'),
      (e: unknown) => e instanceof EventQueryError && e.param === 'follow',
    );
    assert.throws(
      () => q('after=abc'),
      (e: unknown) => e instanceof EventQueryError && e.param === 'after',
    );
    assert.deepEqual(q('follow=1&after=12.3'), { follow: true, after: '12.3', filter: emptyFilter() });
  });

  it('matches like docker events: same key either, different keys all; name and id reach a service’s tasks', () => {
    const ev = (type: ClusterEvent['type'], action: string, id: string, name: string, attributes: Record<string, string>): ClusterEvent => ({
      seq: '1.0',
      time: '2026-12-06T08:00:00.000Z',
      type,
      action,
      actor: { id, name, attributes: { name, ...attributes } },
    });
    const svc = ev('service', 'update', 'abc123', 'web', { 'label.team': 'a' });
    const tsk = ev('task', 'state', 'ttt999', 'web.1', { service: 'web', 'service.id': 'abc123', 'label.team': 'a' });
    const other = ev('node', 'down', 'nnn', 'worker-1', {});
    const pick = (raws: string[]) => [svc, tsk, other].filter((e) => matchesFilter(e, parseFilters(raws))).map((e) => e.actor.name);
    assert.deepEqual(pick([]), ['web', 'web.1', 'worker-1']);
    assert.deepEqual(pick(['type=service', 'type=node']), ['web', 'worker-1']);
    assert.deepEqual(pick(['name=web']), ['web', 'web.1']);
    assert.deepEqual(pick(['name=web', 'type=task']), ['web.1']);
    assert.deepEqual(pick(['id=abc']), ['web']);
    assert.deepEqual(pick(['id=abc123']), ['web', 'web.1']);
    assert.deepEqual(pick(['label=team']), ['web', 'web.1']);
    assert.deepEqual(pick(['label=team=b']), []);
    assert.deepEqual(pick(['action=down', 'action=state']), ['web.1', 'worker-1']);
  });

  it('ANDs label values, as Docker does', () => {
    const ev = (name: string, attributes: Record<string, string>): ClusterEvent => ({
      seq: '1.0',
      time: '2026-12-06T08:00:00.000Z',
      type: 'service',
      action: 'update',
      actor: { id: name, name, attributes: { name, ...attributes } },
    });
    const both = ev('both', { 'label.team': 'a', 'label.tier': 'web' });
    const teamOnly = ev('team-only', { 'label.team': 'a' });
    const tierOnly = ev('tier-only', { 'label.tier': 'web' });
    const pick = (raws: string[]) => [both, teamOnly, tierOnly].filter((e) => matchesFilter(e, parseFilters(raws))).map((e) => e.actor.name);
    assert.deepEqual(pick(['label=team', 'label=tier']), ['both']);
    assert.deepEqual(pick(['label=team=a', 'label=tier=web']), ['both']);
    assert.deepEqual(pick(['label=team=a', 'label=tier=db']), []);
    assert.deepEqual(pick(['label=team']), ['both', 'team-only']);
    // An attribute that only looks like a label is not one.
    assert.deepEqual(pick(['label=name']), []);
  });
});

describe('GET /v1/events over HTTP', () => {
  const c = new MiniCluster(1, { maxListeners: 2 });
  const log = c.logs[0]!;
  let server: Server;
  let base = '';
  before(async () => {
    const r = new Router<object>();
    registerEventRoutes(r, { events: log, keepaliveMs: 50 });
    server = createServer((req, res) => {
      void r.dispatch({}, req, res).catch((e) => sendError(res, e));
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    c.leaders.set(1, 'm1');
    await c.update((tx) => {
      tx.create(node('n1', 'worker-1'));
      tx.create(service('s1', 'web', 1));
      tx.create(task('t1', 's1', 'web', 1));
    });
    await c.update((tx) => tx.create(network('x1', 'front')));
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((ok) => server.close(ok));
    c.close();
  });

  /** GET path; resolves with status, headers and the lines read until the server ends (or `stopAfter` lines). */
  function fetchLines(
    path: string,
    stopAfter = Number.POSITIVE_INFINITY,
    onOpen?: () => void,
    signal?: AbortSignal,
  ): Promise<{ status: number; type: string; lines: string[] }> {
    return new Promise((resolve, reject) => {
      const req = get(`${base}${path}`, (res) => {
        signal?.addEventListener('abort', () => {
          req.destroy();
          done();
        });
        let buf = '';
        const lines: string[] = [];
        const done = () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), lines });
        onOpen?.();
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          buf += d;
          for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
            lines.push(buf.slice(0, i));
            buf = buf.slice(i + 1);
            if (lines.length >= stopAfter) {
              req.destroy();
              done();
              return;
            }
          }
        });
        res.on('end', () => {
          if (buf !== '') lines.push(buf);
          done();
        });
      });
      req.on('error', (e) => ((e as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(e)));
    });
  }

  const names = (lines: string[]) => lines.map((l) => JSON.parse(l) as ClusterEvent).map((e) => `${e.type} ${e.action} ${e.actor.name}`);

  it('replays kept events as NDJSON, oldest first, filtered', async () => {
    const all = await fetchLines('/v1/events');
    assert.equal(all.status, 200);
    assert.equal(all.type, 'application/x-ndjson');
    assert.deepEqual(names(all.lines), ['manager leader m1', 'node create worker-1', 'service create web', 'task create web.1', 'network create front']);
    const some = await fetchLines('/v1/events?filter=type=service&filter=type=network');
    assert.deepEqual(names(some.lines), ['service create web', 'network create front']);
    const byName = await fetchLines('/v1/events?filter=name=web');
    assert.deepEqual(names(byName.lines), ['service create web', 'task create web.1']);
    const since = await fetchLines(`/v1/events?since=${(T0 + 2000) / 1000}`);
    assert.deepEqual(names(since.lines), ['network create front']);
    const until = await fetchLines('/v1/events?until=2026-12-06T08:00:01Z');
    assert.equal(until.lines.length, 4);
  });

  it('answers 400 naming the bad parameter', async () => {
    for (const [q, param] of [
      ['since=nope', 'since'],
      ['until=2026-13-45T99:00:00Z', 'until'],
      ['filter=colour=red', 'filter'],
      ['flolow=1', 'flolow'],
    ] as const) {
      const r = await fetchLines(`/v1/events?${q}`);
      assert.equal(r.status, 400, q);
      const body = JSON.parse(r.lines.join('') || '{}') as { error: { code: string; message: string; param: string } };
      assert.equal(body.error.param, param);
      assert.match(body.error.message, new RegExp(param));
    }
  });

  it('follows: history since T, then live events, with keepalive lines; no event twice or lost', async () => {
    let opened!: () => void;
    const open = new Promise<void>((r) => {
      opened = r;
    });
    const stream = fetchLines(`/v1/events?since=${T0 / 1000}&follow=1&filter=type=network`, 4, () => opened());
    await open;
    await c.update((tx) => tx.create(network('x2', 'back')));
    await c.update((tx) => tx.create(service('s2', 'api', 1)));
    await c.update((tx) => tx.create(network('x3', 'third')));
    const got = await stream;
    const events = got.lines.filter((l) => !l.includes('keepalive'));
    assert.deepEqual(names(events), ['network create front', 'network create back', 'network create third']);
    // One keepalive at least: the stream waits for the fourth line.
    assert.ok(
      got.lines.some((l) => l === '{"keepalive":true}'),
      got.lines.join('\n'),
    );
  });

  it('a follow stream ends when until passes; MAX_LISTENERS bound the open streams', async () => {
    const until = (Date.now() + 300) / 1000;
    const t = Date.now();
    const r = await fetchLines(`/v1/events?follow=1&until=${until}`);
    assert.equal(r.status, 200);
    assert.ok(Date.now() - t >= 250, 'ended by until, not at once');
    assert.ok(Date.now() - t < 5000);
    // Two streams fit, the third is refused.
    const leave = new AbortController();
    const a = fetchLines('/v1/events?follow=1', Number.POSITIVE_INFINITY, undefined, leave.signal);
    const b = fetchLines('/v1/events?follow=1', Number.POSITIVE_INFINITY, undefined, leave.signal);
    while (log.listening < 2) await new Promise((ok) => setTimeout(ok, 5));
    const third = await fetchLines('/v1/events?follow=1');
    assert.equal(third.status, 503);
    assert.match(third.lines.join(''), /too many event streams/);
    leave.abort();
    const [ra, rb] = await Promise.all([a, b]);
    assert.deepEqual([ra.status, rb.status], [200, 200]);
    while (log.listening > 0) await new Promise((ok) => setTimeout(ok, 5));
  });

  it('a client that stops reading is dropped with an end line and a resume point', async () => {
    // A response whose socket never drains (a reader that stopped reading).
    class Stuck extends EventEmitter {
      written: string[] = [];
      ended = false;
      writeHead(): this {
        return this;
      }
      write(s: string): boolean {
        this.written.push(s);
        return false;
      }
      end(s?: string): void {
        if (s) this.written.push(s);
        this.ended = true;
      }
    }
    const small = new MiniCluster(1, { listenerQueue: 2 });
    const res = new Stuck();
    serveEvents({ events: small.logs[0]!, keepaliveMs: 60_000 }, { follow: true, filter: emptyFilter() }, res as unknown as ServerResponse);
    for (let i = 1; i <= 5; i++) await small.update((tx) => tx.create(network(`n${i}`, `net${i}`)));
    assert.equal(res.ended, true);
    const last = JSON.parse(res.written[res.written.length - 1]!) as { end: string; after: string };
    assert.match(last.end, /fell 2 events behind and was dropped/);
    assert.match(last.after, /^\d+\.\d+$/);
    assert.equal(small.logs[0]!.listening, 0);
    small.close();
  });
});
