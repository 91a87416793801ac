// `GET /events` (manager/docker-api/events.ts): filters Docker's swarm events cannot match, label
// filters, unreadable since/until, and a full listener table.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type Server, createServer, get } from 'node:http';
import { Router } from '../../manager/api/http.ts';
import { matchesFilters, registerEventRoutes, type DockerEvent } from '../../manager/docker-api/events.ts';
import { parseFilters } from '../../manager/docker-api/filters.ts';
import { sendDockerError, type DockerCtx } from '../../manager/docker-api/http.ts';
import { MiniCluster, T0, network, service } from '../events/fixtures.ts';

const KEYS = ['type', 'event', 'scope', 'service', 'node', 'network', 'secret', 'config', 'container', 'image', 'volume', 'daemon', 'plugin', 'label'];

describe('docker events filters', () => {
  const web: DockerEvent = {
    Type: 'service',
    Action: 'create',
    Actor: { ID: 'abc123', Attributes: { name: 'web' } },
    scope: 'swarm',
    time: 0,
    timeNano: 0,
  };
  const match = (filters: Record<string, string[]>, labels?: Record<string, string>) =>
    matchesFilters(web, parseFilters(JSON.stringify(filters), KEYS), labels);

  it('container, image, volume, daemon and plugin match no swarm event', () => {
    assert.ok(match({}));
    for (const k of ['container', 'image', 'volume', 'daemon', 'plugin']) assert.ok(!match({ [k]: ['web'] }), k);
    assert.ok(match({ container: [] }), 'an empty value list filters nothing');
  });

  it('label matches the actor’s labels, every value', () => {
    const labels = { team: 'a', tier: 'web' };
    assert.ok(match({ label: ['team'] }, labels));
    assert.ok(match({ label: ['team=a', 'tier=web'] }, labels));
    assert.ok(!match({ label: ['team=a', 'tier=db'] }, labels));
    assert.ok(!match({ label: ['team'] }, {}));
    assert.ok(!match({ label: ['team'] }));
  });
});

describe('GET /events over HTTP', () => {
  const c = new MiniCluster(1, { maxListeners: 1 });
  const log = c.logs[0]!;
  const NOW = T0 + 3_600_000;
  let server: Server;
  let base = '';
  before(async () => {
    const r = new Router<DockerCtx>();
    registerEventRoutes(r, log, () => NOW);
    server = createServer((req, res) => {
      void r.dispatch({ version: '1.47' }, req, res).catch((e) => sendDockerError(res, e));
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    c.leaders.set(1, 'm1');
    await c.update((tx) => {
      tx.create(service('s1', 'web', 1));
      tx.create(network('x1', 'front'));
    });
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((ok) => server.close(ok));
    c.close();
  });

  function fetchText(path: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      get(`${base}${path}`, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      }).on('error', reject);
    });
  }
  const filters = (f: Record<string, string[]>) => `&filters=${encodeURIComponent(JSON.stringify(f))}`;
  const names = (body: string) =>
    body
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as DockerEvent).Actor.Attributes.name);
  const window = `since=0&until=${(NOW - 60_000) / 1000}`;

  it('replays the window; container and label filters apply', async () => {
    assert.deepEqual(names((await fetchText(`/events?${window}`)).body), ['web', 'front']);
    assert.deepEqual(names((await fetchText(`/events?${window}${filters({ container: ['web'] })}`)).body), []);
    assert.deepEqual(names((await fetchText(`/events?${window}${filters({ label: ['team=a'] })}`)).body), ['web']);
    assert.deepEqual(names((await fetchText(`/events?${window}${filters({ label: ['team=a', 'tier=x'] })}`)).body), []);
  });

  it('answers 400 naming since or until when it is not a time', async () => {
    for (const [param, path] of [
      ['since', '/events?since=yesterday'],
      ['until', '/events?since=0&until=2026-13-99'],
    ] as const) {
      const r = await fetchText(path);
      assert.equal(r.status, 400, path);
      const m = (JSON.parse(r.body) as { message: string }).message;
      assert.ok(m.startsWith(`${param} `), m);
    }
  });

  it('answers 503 when every listener slot is taken, rather than an empty 200 stream', async () => {
    const held = log.listen({ filter: { type: [], name: [], label: [], id: [], action: [] } }, () => {});
    assert.ok(held);
    try {
      const r = await fetchText('/events');
      assert.equal(r.status, 503);
      assert.match((JSON.parse(r.body) as { message: string }).message, /too many event streams/);
    } finally {
      held.close();
    }
  });
});
