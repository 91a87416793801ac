// The dashboard server on loopback with a fake cluster behind it: who gets in (Host check, one-time token,
// cookie flags, CSRF and Origin on POSTs, 401 for everything else), what is served (static files without
// path escapes, security headers), that bad action bodies are refused naming the field without reaching
// the cluster, and the live source's event → refetch → delta path over real Server-Sent Events.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ClusterEvent } from '../../api/events.ts';
import { allowedHosts, DashboardAuth, parseCookies } from '../../cli/dashboard/auth.ts';
import { parseListen } from '../../cli/dashboard/command.ts';
import type { StreamHandlers } from '../../cli/dashboard/source.ts';
import { type Dashboard, startDashboard } from '../../cli/dashboard/server.ts';
import { type ClusterApi, LiveSource } from '../../cli/dashboard/source.ts';
import { UsageFeed } from '../../cli/dashboard/usage.ts';
import type { Delta, Snapshot } from '../../web/protocol.ts';

const NOW = '2026-12-06T08:00:00.000Z';

function node(id: string, hostname: string, state = 'ready', role: 'manager' | 'worker' = 'worker') {
  return {
    id,
    kind: 'node',
    version: 1,
    createdAt: NOW,
    updatedAt: NOW,
    spec: { labels: {}, availability: 'active', role },
    description: { hostname, platform: { os: 'linux', arch: 'x64' }, resources: { nanoCpus: 2e9, memoryBytes: 2 ** 30 }, engineVersion: 'x', addr: '10.0.0.1' },
    status: { state, message: '', addr: '10.0.0.1' },
    managerStatus: role === 'manager' ? { leader: true, voter: true, reachability: 'reachable', addr: '10.0.0.1:2377' } : null,
  };
}

function service(id: string, name: string, replicas: number, version = 5) {
  return {
    id,
    kind: 'service',
    version,
    createdAt: NOW,
    updatedAt: NOW,
    specVersion: 1,
    spec: {
      name,
      labels: {},
      mode: { replicated: { replicas } },
      task: { image: 'busybox:1@sha256:abc', env: ['SECRET=x'] },
      networks: [],
      endpoint: { ports: [] },
    },
    status: {},
  };
}

function task(id: string, serviceId: string, slot: number, state: string, nodeId = 'n1') {
  return {
    id,
    kind: 'task',
    version: 1,
    createdAt: NOW,
    updatedAt: NOW,
    serviceId,
    slot,
    nodeId,
    spec: { image: 'busybox:1@sha256:abc', env: ['SECRET=x'] },
    desiredState: 'running',
    status: { state, timestamp: NOW, message: '' },
    serviceAnnotations: { name: 'web', labels: {} },
    networks: [],
  };
}

/** A cluster in memory: GETs answer from `objects`, POSTs are recorded, the event stream is driven by the test. */
class FakeCluster implements ClusterApi {
  clusterId = 'c0ffee';
  gets: string[] = [];
  posts: { path: string; body: unknown }[] = [];
  streams: StreamHandlers[] = [];
  nodes = [node('n1', 'alpha', 'ready', 'manager'), node('n2', 'beta')];
  services = [service('s1', 'web', 2)];
  tasks = [task('t1', 's1', 1, 'running'), task('t2', 's1', 2, 'running', 'n2')];

  async get<T>(path: string): Promise<T> {
    this.gets.push(path);
    const u = new URL(path, 'http://x');
    let out: unknown;
    if (u.pathname === '/v1/nodes') out = this.nodes;
    else if (u.pathname.startsWith('/v1/nodes/')) out = this.nodes.find((n) => n.id === u.pathname.slice(10));
    else if (u.pathname === '/v1/services') out = this.services;
    else if (u.pathname.startsWith('/v1/services/')) out = this.services.find((s) => s.id === decodeURIComponent(u.pathname.slice(13)));
    else if (u.pathname === '/v1/tasks') {
      const svc = u.searchParams.get('service');
      out = svc ? this.tasks.filter((t) => t.serviceId === svc) : this.tasks;
    } else if (u.pathname === '/v1/info') out = { nodeId: 'n1', role: 'leader', leader: 'n1', term: 3, commit: 10, applied: 10 };
    if (out === undefined) throw Object.assign(new Error(`${u.pathname.split('/')[2]} ${u.pathname.split('/')[3]} not found`), { status: 404 });
    return structuredClone(out) as T;
  }
  async post<T>(path: string, body: unknown): Promise<T> {
    this.posts.push({ path, body });
    if (path.endsWith('/rollback')) throw Object.assign(new Error('service web has no previous spec to roll back to'), { status: 409 });
    return { ok: true } as T;
  }
  stream(_path: string, h: StreamHandlers) {
    this.streams.push(h);
    queueMicrotask(() => h.onOpen?.('10.0.0.1:2377'));
    return { close() {}, pause() {}, resume() {} };
  }
  managers() {
    return ['10.0.0.1:2377'];
  }
  event(e: Partial<ClusterEvent> & Pick<ClusterEvent, 'type' | 'action'> & { id: string; name?: string }) {
    const ev: ClusterEvent = { seq: e.seq ?? '100.0', time: NOW, type: e.type, action: e.action, actor: { id: e.id, name: e.name ?? '', attributes: {} } };
    this.streams[this.streams.length - 1]!.onLine(ev);
  }
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function call(d: Dashboard, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Answer> {
  const u = new URL(d.origin);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: Number(u.port), method, path, headers: { host: u.host, ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** Opens an SSE stream and collects its events until `until` says enough (or 5 s pass); `onFirst` runs once the first arrived. */
function sse(d: Dashboard, path: string, cookie: string, until: (events: { event: string; data: unknown }[]) => boolean, onFirst?: () => void) {
  const u = new URL(d.origin);
  return new Promise<{ event: string; data: unknown }[]>((resolve, reject) => {
    const got: { event: string; data: unknown }[] = [];
    const req = request({ host: u.hostname, port: Number(u.port), path, headers: { host: u.host, cookie } }, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      const timer = setTimeout(() => {
        req.destroy();
        reject(new Error(`SSE: condition not met in 5 s; got ${JSON.stringify(got.map((g) => [g.event, Object.keys(g.data as object)]))}`));
      }, 5000);
      res.on('data', (c: string) => {
        buf += c;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (ev && data) got.push({ event: ev, data: JSON.parse(data) });
          if (got.length === 1 && ev && onFirst) onFirst();
        }
        if (until(got)) {
          clearTimeout(timer);
          req.destroy();
          resolve(got);
        }
      });
    });
    req.on('error', (e) => (got.length > 0 ? undefined : reject(e)));
    req.end();
  });
}

describe('dashboard server', () => {
  let dir = '';
  let www = '';
  let fake: FakeCluster;
  let source: LiveSource;
  let usage: UsageFeed;
  let d: Dashboard;
  let cookie = '';
  let csrf = '';

  before(async () => {
    // <tmp>/www is served; <tmp>/outside.js must stay out of reach.
    dir = mkdtempSync(join(tmpdir(), 'shoal-dash-'));
    www = join(dir, 'www');
    mkdirSync(www);
    writeFileSync(join(www, 'index.html'), '<!doctype html><title>x</title>');
    writeFileSync(join(www, 'app.js'), 'console.log(1)');
    writeFileSync(join(dir, 'outside.js'), 'secret');
    fake = new FakeCluster();
    source = new LiveSource(fake);
    usage = new UsageFeed(fake.get.bind(fake), 50);
    d = await startDashboard({ host: '127.0.0.1', port: 0, staticDir: www, source, usage, api: fake, contextName: 'test' });
    source.start();
    await source.ready;
  });

  after(async () => {
    source.stop();
    usage.stop();
    await d.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers 401 to everything without a session, static files and the API alike', async () => {
    for (const p of ['/', '/app.js', '/index.html', '/api/session', '/api/stream', '/api/usage?all=1']) {
      const r = await call(d, 'GET', p);
      assert.equal(r.status, 401, p);
      assert.match(r.body, /open the URL/);
    }
    const forged = await call(d, 'GET', '/', { cookie: 'shoal_dash=AAAA' });
    assert.equal(forged.status, 401);
    const post = await call(d, 'POST', '/api/services/s1/scale', { 'content-type': 'application/json' }, '{"replicas":1}');
    assert.equal(post.status, 401);
    assert.equal(fake.posts.length, 0);
  });

  it('refuses a Host header other than its address, even with the right token (DNS rebinding)', async () => {
    const r = await call(d, 'GET', `/?token=${d.auth.token}`, { host: `evil.example:${new URL(d.origin).port}` });
    assert.equal(r.status, 421);
    assert.ok(d.auth.token, 'a refused request does not spend the token');
    const noPort = await call(d, 'GET', '/', { host: '127.0.0.1' });
    assert.equal(noPort.status, 421);
  });

  it('exchanges the one-time token for an HttpOnly SameSite=Strict cookie, once', async () => {
    const wrong = await call(d, 'GET', '/?token=not-the-token');
    assert.equal(wrong.status, 401);
    const token = d.auth.token!;
    const r = await call(d, 'GET', `/?token=${token}`);
    assert.equal(r.status, 303);
    assert.equal(r.headers.location, '/');
    const set = String(r.headers['set-cookie']);
    assert.match(set, /^shoal_dash=[A-Za-z0-9_-]{43}; /);
    assert.match(set, /HttpOnly/);
    assert.match(set, /SameSite=Strict/);
    assert.match(set, /Path=\//);
    cookie = set.split(';')[0]!;
    const again = await call(d, 'GET', `/?token=${token}`);
    assert.equal(again.status, 401, 'the token works once');
    assert.match(again.body, /already used/);
    assert.equal(d.auth.token, null);
  });

  it('serves the page with a strict CSP to the session, and nothing outside its folder', async () => {
    const r = await call(d, 'GET', '/', { cookie });
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /text\/html/);
    assert.match(String(r.headers['content-security-policy']), /default-src 'none'; script-src 'self'/);
    assert.equal(r.headers['referrer-policy'], 'no-referrer');
    assert.equal(r.headers['x-frame-options'], 'DENY');
    assert.equal((await call(d, 'GET', '/app.js', { cookie })).body, 'console.log(1)');
    for (const p of ['/../outside.js', '/%2e%2e/outside.js', '/..%2foutside.js', '/nope.js', '/index.ts'])
      assert.equal((await call(d, 'GET', p, { cookie })).status, 404, p);
    const s = JSON.parse((await call(d, 'GET', '/api/session', { cookie })).body) as { csrf: string; context: string };
    assert.equal(s.context, 'test');
    assert.match(s.csrf, /^[A-Za-z0-9_-]{43}$/);
    csrf = s.csrf;
  });

  it('needs the CSRF header and a matching Origin on POSTs', async () => {
    const body = '{"replicas":3}';
    const json = { cookie, 'content-type': 'application/json' };
    assert.equal((await call(d, 'POST', '/api/services/s1/scale', json, body)).status, 403);
    assert.equal((await call(d, 'POST', '/api/services/s1/scale', { ...json, 'x-shoal-csrf': 'x'.repeat(43) }, body)).status, 403);
    assert.equal((await call(d, 'POST', '/api/services/s1/scale', { ...json, 'x-shoal-csrf': csrf, origin: 'http://evil.example' }, body)).status, 403);
    assert.equal((await call(d, 'POST', '/api/services/s1/scale', { 'content-type': 'application/json', 'x-shoal-csrf': csrf }, body)).status, 401);
    assert.equal(fake.posts.length, 0, 'nothing refused reached the cluster');
    const ok = await call(d, 'POST', '/api/services/s1/scale', { ...json, 'x-shoal-csrf': csrf, origin: d.origin }, body);
    assert.equal(ok.status, 200, ok.body);
    assert.deepEqual(fake.posts, [{ path: '/v1/services/s1/scale', body: { replicas: 3 } }]);
  });

  it('refuses bad action bodies naming the field, without calling the cluster', async () => {
    fake.posts = [];
    const h = { cookie, 'content-type': 'application/json', 'x-shoal-csrf': csrf };
    const cases: [string, string, string][] = [
      ['/api/services/s1/scale', '{"replicas":-1}', 'replicas'],
      ['/api/services/s1/scale', '{"replicas":"3"}', 'replicas'],
      ['/api/services/s1/image', '{"image":"has space"}', 'image'],
      ['/api/services/s1/image', '{}', 'image'],
      ['/api/nodes/n2/availability', '{"availability":"gone"}', 'availability'],
    ];
    for (const [p, b, field] of cases) {
      const r = await call(d, 'POST', p, h, b);
      assert.equal(r.status, 400, `${p} ${b}`);
      assert.equal((JSON.parse(r.body) as { error: { field: string } }).error.field, field);
    }
    assert.equal((await call(d, 'POST', '/api/services/s1/scale', h, 'not json')).status, 400);
    assert.equal((await call(d, 'POST', '/api/services/s1/scale', { ...h, 'content-type': 'text/plain' }, '{"replicas":1}')).status, 415);
    assert.equal((await call(d, 'POST', '/api/services/s1/explode', h, '{}')).status, 404);
    assert.deepEqual(fake.posts, []);
  });

  it('sends an image update with the whole spec and the version read; keeps a refusal status', async () => {
    fake.posts = [];
    const h = { cookie, 'content-type': 'application/json', 'x-shoal-csrf': csrf };
    const r = await call(d, 'POST', '/api/services/s1/image', h, '{"image":"busybox:2"}');
    assert.equal(r.status, 200, r.body);
    const sent = fake.posts[0]!.body as { spec: { name: string; task: { image: string; env: string[] } }; version: number };
    assert.equal(fake.posts[0]!.path, '/v1/services/s1/update');
    assert.equal(sent.version, 5);
    assert.equal(sent.spec.name, 'web');
    assert.equal(sent.spec.task.image, 'busybox:2');
    assert.deepEqual(sent.spec.task.env, ['SECRET=x'], 'the rest of the spec is kept');
    const rb = await call(d, 'POST', '/api/services/s1/rollback', h, '{}');
    assert.equal(rb.status, 409);
    assert.match(rb.body, /no previous spec/);
    const drain = await call(d, 'POST', '/api/nodes/n2/availability', h, '{"availability":"drain"}');
    assert.equal(drain.status, 200);
    assert.deepEqual(fake.posts[2], { path: '/v1/nodes/n2/update', body: { availability: 'drain' } });
  });

  it('keeps the status the cluster answered a read with: a missing service is a 404, not a 502', async () => {
    const h = { cookie, 'content-type': 'application/json', 'x-shoal-csrf': csrf };
    const r = await call(d, 'POST', '/api/services/nope/image', h, '{"image":"busybox:2"}');
    assert.equal(r.status, 404, r.body);
    assert.match(r.body, /not found/);
  });

  it('streams a slim snapshot, then refetches only what an event names and pushes the delta', async () => {
    // The cluster changes once the snapshot is there (the server subscribed the stream before sending it).
    const got = await sse(
      d,
      '/api/stream',
      cookie,
      (got) => got.some((g) => g.event === 'delta' && (g.data as Delta).cause === '200.0' && (g.data as Delta).tasks),
      () => {
        fake.gets = [];
        fake.tasks = [task('t1', 's1', 1, 'running'), task('t2', 's1', 2, 'failed', 'n2'), task('t3', 's1', 2, 'starting', 'n1')];
        fake.event({ seq: '200.0', type: 'task', action: 'state', id: 't2', name: 'web.2' });
      },
    );
    const snap = got[0]!;
    assert.equal(snap.event, 'snapshot');
    const s = snap.data as Snapshot;
    assert.deepEqual(s.nodes.map((n) => n.hostname).sort(), ['alpha', 'beta']);
    assert.deepEqual(
      s.services.map((x) => [x.name, x.running, x.desired, x.image]),
      [['web', 2, 2, 'busybox:1']],
    );
    assert.equal(s.tasks.length, 2);
    assert.ok(!JSON.stringify(s).includes('SECRET'), 'no environment reaches the browser');
    const delta = got.find((g) => g.event === 'delta' && (g.data as Delta).tasks)!.data as Delta;
    assert.deepEqual(delta.tasks!.map((t) => [t.id, t.state]).sort(), [
      ['t2', 'failed'],
      ['t3', 'starting'],
    ]);
    assert.deepEqual(
      delta.services!.map((x) => [x.name, x.running]),
      [['web', 1]],
    );
    assert.deepEqual(fake.gets, ['/v1/tasks?service=s1&all=1'], 'one refetch, of the service the task belongs to');
  });

  it('drops a removed service with its tasks', async () => {
    const got = await sse(
      d,
      '/api/stream',
      cookie,
      (got) => got.some((g) => (g.data as Delta).removeServices),
      () => {
        fake.services = [];
        fake.tasks = [];
        fake.event({ seq: '300.0', type: 'service', action: 'remove', id: 's1', name: 'web' });
      },
    );
    const delta = got.find((g) => (g.data as Delta).removeServices)!.data as Delta;
    assert.deepEqual(delta.removeServices, ['s1']);
    assert.deepEqual((delta.removeTasks ?? []).sort(), ['t1', 't2', 't3']);
    assert.equal(source.services.size, 0);
  });

  it('shows the link down and reconnects when the event stream ends', async () => {
    const before = fake.streams.length;
    fake.streams[fake.streams.length - 1]!.onEnd('connection reset');
    assert.equal(source.linkState.state, 'down');
    assert.match(source.linkState.message, /connection reset/);
    const t0 = Date.now();
    while (fake.streams.length === before && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 20));
    assert.equal(fake.streams.length, before + 1, 'reconnected');
    const state = (): string => source.linkState.state; // read afresh (the assert above narrowed the type to 'down')
    const t1 = Date.now();
    while (state() !== 'live' && Date.now() - t1 < 3000) await new Promise((r) => setTimeout(r, 10));
    assert.equal(state(), 'live');
  });

  it('samples usage only while someone watches', async () => {
    fake.gets = [];
    const got = await sse(d, '/api/usage?service=s1', cookie, (g) => g.length >= 2);
    assert.equal(got[0]!.event, 'usage');
    const n = fake.gets.filter((p) => p === '/v1/tasks?service=s1').length;
    assert.ok(n >= 2, `sampled ${n} times`);
    // The server sees the browser leave (the connection's close), then samples no more.
    const t0 = Date.now();
    while (usage.active > 0 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
    assert.equal(usage.active, 0);
    // A sample in flight at that moment lands: the fake's get (counted when called) settles within one
    // turn of the event loop, and a sampler already removed schedules no next sample.
    await new Promise((r) => setImmediate(r));
    const samples = () => fake.gets.filter((p) => p === '/v1/tasks?service=s1').length;
    const after = samples();
    await new Promise((r) => setTimeout(r, 300)); // six sampling periods
    assert.equal(samples(), after, 'no sampling once the browser left');
  });
});

describe('dashboard auth, pure parts', () => {
  it('parses cookies and the listen address, and lists the Host names a loopback listener accepts', () => {
    assert.deepEqual(parseCookies('a=1; shoal_dash=xyz; a=2'), { a: '1', shoal_dash: 'xyz' });
    assert.deepEqual(parseCookies(undefined), {});
    assert.deepEqual([...allowedHosts('127.0.0.1', 7373)].sort(), ['127.0.0.1:7373', '[::1]:7373', 'localhost:7373']);
    assert.deepEqual([...allowedHosts('10.1.2.3', 80)], ['10.1.2.3:80']);
    assert.ok(allowedHosts('0.0.0.0', 80, ['10.9.9.9']).has('10.9.9.9:80'));
    assert.deepEqual(parseListen('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
    assert.deepEqual(parseListen('[::1]:80'), { host: '::1', port: 80 });
    assert.deepEqual(parseListen('localhost:9'), { host: '127.0.0.1', port: 9 });
    for (const bad of ['127.0.0.1', ':80', 'example.com:80', '1.2.3.4:99999', '']) assert.throws(() => parseListen(bad), /--listen/, bad);
  });

  it('keeps at most a bounded number of sessions, and a POST without Origin still needs the CSRF token', () => {
    const a = new DashboardAuth(new Set(['h:1']), new Set(['http://h:1']));
    const r = a.check({ method: 'GET', url: `/?token=${a.token}`, headers: { host: 'h:1' } });
    assert.equal(r.ok, 'exchange');
    const cookie = r.ok === 'exchange' ? r.cookie.split(';')[0]! : '';
    const ok = a.check({ method: 'GET', url: '/api/session', headers: { host: 'h:1', cookie } });
    assert.equal(ok.ok, true);
    const post = a.check({ method: 'POST', url: '/api/x', headers: { host: 'h:1', cookie } });
    assert.deepEqual([post.ok, post.ok === false && post.status], [false, 403]);
    const session = ok.ok === true ? ok.session : '';
    const good = a.check({ method: 'POST', url: '/api/x', headers: { host: 'h:1', cookie, 'x-shoal-csrf': a.csrfOf(session)! } });
    assert.equal(good.ok, true);
  });
});
