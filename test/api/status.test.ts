// Status codes of the control API, through the real Router, the real service and network routes, an
// in-memory store and an in-process HTTP server on loopback: 400 invalid or past a cluster limit, 404,
// 405, 409 name in use or stale version, 413 too large, 503 Raft errors, 500 anything else; every error
// mapped by class (manager/api/errors.ts), and every body read under an explicit cap.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BODY_LIMITS, Router, readJson, sendError } from '../../manager/api/http.ts';
import { ApiError, errorStatus, notFound } from '../../manager/api/errors.ts';
import { registerServiceRoutes } from '../../manager/api/services.ts';
import { registerNetworkRoutes } from '../../manager/api/networks.ts';
import { Store } from '../../manager/store/store.ts';
import { BatchError, ConflictError, LimitExceededError, NameInUseError, NotFoundError, TxTooLargeError, ValidationError } from '../../manager/store/errors.ts';
import { DEFAULT_LIMITS, defaultClusterSpec } from '../../api/objects.ts';
import { SpecError } from '../../manager/service/spec.ts';
import { TemplateError } from '../../api/templates.ts';
import { ConstraintError } from '../../manager/scheduler/constraints.ts';
import { IpamError } from '../../manager/allocator/ipam.ts';
import { NotLeaderError } from '../../manager/raft/core.ts';
import { ProposalDroppedError, ProposalOutcomeUnknownError, ReadFailedError } from '../../manager/raft/node.ts';

// ---------------------------------------------------------------------------------------------- server

let server: Server;
let port = 0;
const store = new Store();
let ids = 0;

/** Errors thrown by /test/throw/:n, to check the mapping of classes no route of these two files throws. */
const THROWN: Record<string, () => unknown> = {
  conflict: () => new ConflictError('service', 's1', 3, 5),
  nameInUse: () => new NameInUseError('service', 'web'),
  batchNameInUse: () => new BatchError(0, [], new NameInUseError('network', 'front')),
  validation: () => new ValidationError('spec.name must be a non-empty string'),
  notFound: () => new NotFoundError('task', 't1'),
  txTooLarge: () => new TxTooLargeError(2_000_000, 1_572_864),
  limit: () => new LimitExceededError('limits.maxTasks', 10, 11, '1 more task would make 11 in the cluster', 'replicas'),
  spec: () => new SpecError('task.image', 'task.image is required'),
  template: () => new TemplateError('unknown template field .Foo'),
  constraint: () => new ConstraintError('bad constraint node.role=manager'),
  ipam: () => new IpamError('EOVERLAP', '10.0.0.0/24 overlaps network a', 'ipam.configs[0].subnet'),
  notLeader: () => new NotLeaderError('m2'),
  readFailed: () => new ReadFailedError(null),
  dropped: () => new ProposalDroppedError(7, 2, 'another entry'),
  unknown: () => new ProposalOutcomeUnknownError(7),
  api: () => new ApiError(418, 'ETEAPOT', 'short and stout'),
  bug: () => new TypeError("Cannot read properties of undefined (reading 'x')"),
  string: () => 'thrown as a string',
};

before(async () => {
  await store.update(
    (tx) =>
      void tx.create({
        id: 'cluster',
        kind: 'cluster',
        spec: { ...defaultClusterSpec('t'), limits: { ...DEFAULT_LIMITS, maxReplicas: 100, maxTasks: 50, maxLabels: 4 } },
        status: {},
        rootCa: { caCertPem: '', caKeyPem: '' },
        joinTokens: { worker: '', manager: '' },
        denyList: { removedNodes: [], revokedSerials: [] },
      }),
  );
  const r = new Router<object>();
  const deps = {
    store,
    newId: () => `id${String(++ids).padStart(4, '0')}`,
    requireLeader: () => {},
    linearizable: async () => {},
    write: async (fn: Parameters<Store['update']>[0]) => void (await store.update(fn)),
  };
  registerServiceRoutes(r, deps);
  registerNetworkRoutes(r, deps);
  r.add('POST', '/test/throw/:n', (_c, p) => {
    throw THROWN[p.n!]!();
  });
  r.add('POST', '/test/echo', async (_c, _p, req) => ({ got: await readJson(req, BODY_LIMITS.small) }));
  server = createServer((req, res) => {
    void (async () => {
      try {
        if (!(await r.dispatch({}, req, res))) sendError(res, notFound(`no route for ${req.method} ${req.url}`));
      } catch (e) {
        sendError(res, e);
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

after(() => {
  server.closeAllConnections();
  server.close();
});

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  error: { code: string; message: string; [k: string]: unknown } | undefined;
  body: Record<string, unknown>;
}

/**
 * One request. `body`: an object (sent as JSON), a string, or a Buffer. `chunked` leaves Content-Length
 * out. The server may answer (413) and close before the body is all sent: write errors after an answer
 * are expected then and ignored.
 */
function call(method: string, path: string, body?: unknown, opts: { chunked?: boolean } = {}): Promise<Reply> {
  const data = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        headers: { 'content-type': 'application/json', ...(data && !opts.chunked ? { 'content-length': String(data.length) } : {}) },
      },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const parsed = (text ? JSON.parse(text) : {}) as Record<string, unknown>;
          resolve({ status: res.statusCode ?? 0, headers: res.headers, error: parsed.error as Reply['error'], body: parsed });
        });
        res.on('error', reject);
      },
    );
    req.on('error', (e) => {
      if (!answered) reject(e);
    });
    if (data && opts.chunked) {
      // Several writes without a length: the server must count what arrives.
      for (let i = 0; i < data.length; i += 64 * 1024) req.write(data.subarray(i, i + 64 * 1024));
      req.end();
    } else req.end(data);
  });
}

function spec(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, task: { image: 'busybox:1.36' }, ...extra };
}

// ------------------------------------------------------------------------------------------------ tests

test('POST /v1/services: 200 created, then 409 ENAMEINUSE for the same name (it was a 500)', async () => {
  const ok = await call('POST', '/v1/services', { spec: spec('web') });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  const dup = await call('POST', '/v1/services', { spec: spec('web') });
  assert.equal(dup.status, 409, JSON.stringify(dup.body));
  assert.equal(dup.error?.code, 'ENAMEINUSE');
  assert.match(dup.error!.message, /service name web is already in use/);
  // Names are unique case-insensitively, as in Swarm.
  assert.equal((await call('POST', '/v1/services', { spec: spec('WEB') })).status, 409);
  assert.equal(
    store.view((tx) => tx.list('service').length),
    1,
  );
});

test('400: invalid JSON, an invalid spec (naming the field), a bad replicas value', async () => {
  const bad = await call('POST', '/v1/services', '{"spec": ');
  assert.equal(bad.status, 400);
  assert.match(bad.error!.message, /not valid JSON/);
  // JSON that is not an object: a 400 for every route, never a handler reading fields of null.
  for (const body of ['null', '[]', '7', '"x"']) {
    const r = await call('POST', '/v1/services/web/scale', body);
    assert.equal(r.status, 400, `${body}: ${JSON.stringify(r.body)}`);
    assert.match(r.error!.message, /must be a JSON object/);
  }
  // Deep nesting is refused before any handler recurses over it (it was a 500: stack overflow).
  const deep = await call('POST', '/v1/services/web/scale', `{"replicas":${'['.repeat(5000)}${']'.repeat(5000)}}`);
  assert.equal(deep.status, 400, JSON.stringify(deep.body));
  assert.match(deep.error!.message, /nested 5001 levels deep; at most 64/);
  // Brackets inside strings are not nesting.
  assert.equal((await call('POST', '/test/echo', { s: '[[[[{{{{'.repeat(100) })).status, 200);
  const invalid = await call('POST', '/v1/services', { spec: spec('api', { mode: { replicated: { replica: 3 } } }) });
  assert.equal(invalid.status, 400, JSON.stringify(invalid.body));
  assert.equal(invalid.error?.code, 'EINVALIDSPEC');
  assert.equal(invalid.error?.field, 'mode.replicated.replica');
  const scale = await call('POST', '/v1/services/web/scale', { replicas: -1 });
  assert.equal(scale.status, 400);
  assert.equal(scale.error?.field, 'replicas');
});

test('400 ELIMIT naming the setting: too many replicas on create and scale, too many labels, past the task budget', async () => {
  const create = await call('POST', '/v1/services', { spec: spec('huge', { mode: { replicated: { replicas: 1_000_000_000 } } }) });
  assert.equal(create.status, 400, JSON.stringify(create.body));
  assert.equal(create.error?.code, 'ELIMIT');
  assert.equal(create.error?.setting, 'limits.maxReplicas');
  assert.equal(create.error?.limit, 100);
  assert.equal(create.error?.field, 'mode.replicated.replicas');
  assert.match(create.error!.message, /--max-replicas/);

  const scale = await call('POST', '/v1/services/web/scale', { replicas: 1_000_000_000 });
  assert.equal(scale.status, 400, JSON.stringify(scale.body));
  assert.equal(scale.error?.setting, 'limits.maxReplicas');
  assert.deepEqual(
    store.view((tx) => tx.byName('service', 'web')!.spec.mode),
    { replicated: { replicas: 1 } },
    'nothing was changed',
  );

  const labels = await call('POST', '/v1/services', { spec: spec('lab', { labels: { a: '1', b: '2', c: '3', d: '4', e: '5' } }) });
  assert.equal(labels.status, 400);
  assert.equal(labels.error?.setting, 'limits.maxLabels');
  const netLabels = await call('POST', '/v1/networks', { spec: { name: 'front', labels: { a: '', b: '', c: '', d: '', e: '' } } });
  assert.equal(netLabels.status, 400, JSON.stringify(netLabels.body));
  assert.equal(netLabels.error?.setting, 'limits.maxLabels');

  // maxTasks is 50 and no task exists: 60 replicas fit maxReplicas (100) but not the task budget.
  const budget = await call('POST', '/v1/services', { spec: spec('many', { mode: { replicated: { replicas: 60 } } }) });
  assert.equal(budget.status, 400, JSON.stringify(budget.body));
  assert.equal(budget.error?.setting, 'limits.maxTasks');
  const scaleBudget = await call('POST', '/v1/services/web/scale', { replicas: 60 });
  assert.equal(scaleBudget.status, 400);
  assert.equal(scaleBudget.error?.setting, 'limits.maxTasks');
  assert.equal((await call('POST', '/v1/services/web/scale', { replicas: 50 })).status, 200);
  assert.equal((await call('POST', '/v1/services/web/scale', { replicas: 1 })).status, 200);
});

test('404 for unknown objects and paths, 405 for a wrong method', async () => {
  const svc = await call('GET', '/v1/services/nope');
  assert.equal(svc.status, 404);
  assert.equal(svc.error?.code, 'ENOTFOUND');
  assert.equal((await call('GET', '/v1/networks/nope')).status, 404);
  assert.equal((await call('GET', '/v1/nothing-here')).status, 404);
  // A malformed percent-encoding is the client's mistake, not a 500.
  const odd = await call('GET', '/v1/services/%E0%A4%A');
  assert.equal(odd.status, 400, JSON.stringify(odd.body));
  const method = await call('PUT', '/v1/services');
  assert.equal(method.status, 405);
  assert.equal(method.error?.code, 'EMETHOD');
});

test('409 for a stale version ("update out of sequence", naming both versions) and for a network name in use', async () => {
  const cur = store.view((tx) => tx.byName('service', 'web')!);
  const stale = await call('POST', `/v1/services/${cur.id}/update`, { spec: spec('web', { labels: { x: '1' } }), version: cur.version - 1 });
  assert.equal(stale.status, 409, JSON.stringify(stale.body));
  assert.match(stale.error!.message, new RegExp(`update out of sequence: sent version ${cur.version - 1}, current version ${cur.version}`));
  // A version of the wrong type is a bad request, not a conflict.
  const typed = await call('POST', `/v1/services/${cur.id}/update`, { spec: spec('web'), version: String(cur.version) });
  assert.equal(typed.status, 400);
  assert.equal(typed.error?.field, 'version');
  const fresh = await call('POST', `/v1/services/${cur.id}/update`, { spec: spec('web', { labels: { x: '1' } }), version: cur.version });
  assert.equal(fresh.status, 200, JSON.stringify(fresh.body));
  assert.equal((await call('POST', '/v1/networks', { spec: { name: 'back' } })).status, 200);
  const dup = await call('POST', '/v1/networks', { spec: { name: 'back' } });
  assert.equal(dup.status, 409);
});

test('413 naming the limit: a declared length over the cap, a chunked body over it, on small and spec-sized routes', async () => {
  const big = Buffer.alloc(BODY_LIMITS.spec + 1, 0x20);
  const declared = await call('POST', '/v1/services', big);
  assert.equal(declared.status, 413);
  assert.equal(declared.error?.code, 'ETOOLARGE');
  assert.match(declared.error!.message, /limit of 1 MiB/);
  assert.equal(declared.headers.connection, 'close');
  const chunked = await call('POST', '/v1/services', big, { chunked: true });
  assert.equal(chunked.status, 413);
  // Routes that take a few fields have the small cap: 64 KiB.
  const scale = await call('POST', '/v1/services/web/scale', Buffer.alloc(BODY_LIMITS.small + 1, 0x20), { chunked: true });
  assert.equal(scale.status, 413);
  assert.match(scale.error!.message, /limit of 64 KiB/);
  // Just under the cap is read (and then judged on its content).
  const echo = await call('POST', '/test/echo', `{"pad":"${'x'.repeat(BODY_LIMITS.small - 20)}"}`);
  assert.equal(echo.status, 200);
  // A spec-sized body fits the spec routes' cap, and the server still answers after the refusals.
  const env = [`PAD=${'x'.repeat(100 * 1024)}`];
  assert.equal((await call('POST', '/v1/services', { spec: spec('padded', { task: { image: 'busybox:1.36', env } }) })).status, 200);
});

test('every typed error maps to its status by class, through the real server', async () => {
  const expect: Record<string, [number, string]> = {
    conflict: [409, 'ECONFLICT'],
    nameInUse: [409, 'ENAMEINUSE'],
    batchNameInUse: [409, 'ENAMEINUSE'],
    validation: [400, 'EINVALID'],
    notFound: [404, 'ENOTFOUND'],
    txTooLarge: [413, 'ETXTOOLARGE'],
    limit: [400, 'ELIMIT'],
    spec: [400, 'EINVALIDSPEC'],
    template: [400, 'ETEMPLATE'],
    constraint: [400, 'EINVALIDCONSTRAINT'],
    ipam: [400, 'EOVERLAP'],
    notLeader: [503, 'ENOTLEADER'],
    readFailed: [503, 'EREADFAILED'],
    dropped: [503, 'EPROPOSALDROPPED'],
    unknown: [503, 'EPROPOSALUNKNOWN'],
    api: [418, 'ETEAPOT'],
    bug: [500, 'EINTERNAL'],
    string: [500, 'EINTERNAL'],
  };
  assert.deepEqual(Object.keys(expect).sort(), Object.keys(THROWN).sort());
  for (const [n, [status, code]] of Object.entries(expect)) {
    const r = await call('POST', `/test/throw/${n}`);
    assert.equal(r.status, status, `${n}: ${JSON.stringify(r.body)}`);
    assert.equal(r.error?.code, code, n);
    assert.ok(r.error!.message.length > 0, n);
  }
  const conflict = await call('POST', '/test/throw/conflict');
  assert.match(conflict.error!.message, /update out of sequence: sent version 3, current version 5/);
  assert.equal(conflict.error?.expected, 3);
  assert.equal((await call('POST', '/test/throw/spec')).error?.field, 'task.image');
  assert.equal((await call('POST', '/test/throw/notLeader')).error?.leader, 'm2');
});

test('the mapping is by class, not by name: a subclass or a renamed error keeps its status', () => {
  class Renamed extends NameInUseError {
    constructor() {
      super('service', 'x');
      this.name = 'SomethingElse';
    }
  }
  assert.equal(errorStatus(new Renamed()).status, 409);
  // An unrelated error that merely calls itself ValidationError is not one.
  const impostor = Object.assign(new Error('x'), { name: 'ValidationError' });
  assert.equal(errorStatus(impostor).status, 500);
});
