// Secrets and configs through the real Router and an in-memory store (this manager scripted as the
// leader): status codes, a secret's data never in an answer nor in the store in plaintext, labels-only
// updates, references resolved when a service is written, rm refused while in use; plus the pure parts
// around them: spec validation, the dispatcher's delivery plan, the node's in-memory copy, the CLI flags.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Router, sendError } from '../../manager/api/http.ts';
import { registerSecretRoutes } from '../../manager/api/secrets.ts';
import { registerServiceRoutes } from '../../manager/api/services.ts';
import { KeyRing } from '../../manager/keys/keyring.ts';
import { Store } from '../../manager/store/store.ts';
import { defaultClusterSpec, type Cluster, type Draft, type Task } from '../../api/objects.ts';
import { validateServiceSpec } from '../../manager/service/spec.ts';
import { planFileMessages } from '../../manager/dispatcher/secret-delivery.ts';
import { NodeFiles, FilesError } from '../../worker/files.ts';
import { parseFileRef } from '../../cli/secret.ts';
import { parseServiceUpdateArgs } from '../../cli/service-flags.ts';
import { testCluster } from '../helpers/cluster.ts';

const SECRET = `s3cr3t-${randomBytes(8).toString('hex')}`;
const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('secrets and configs API', () => {
  let server: Server;
  let base = '';
  const store = new Store();
  const ring = KeyRing.generate(randomBytes, new Date());
  let n = 0;

  async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any; text: string }> {
    const r = await fetch(base + path, {
      method,
      ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
    });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null, text };
  }

  before(async () => {
    await store.update((tx) => {
      tx.create(testCluster());
    });
    const deps = {
      store,
      newId: () => `id${String(++n).padStart(4, '0')}`,
      requireLeader: () => {},
      linearizable: async () => {},
      write: async (fn: Parameters<Store['update']>[0]) => void (await store.update(fn)),
    };
    const r = new Router<{ cn: string }>();
    registerSecretRoutes(r, { ...deps, keys: () => ring });
    registerServiceRoutes(r, deps);
    server = createServer((req, res) => {
      r.dispatch({ cn: 'admin' }, req, res)
        .then((ok) => {
          if (!ok) sendError(res, new Error('no route'));
        })
        .catch((e) => sendError(res, e));
    });
    server.listen(0, '127.0.0.1');
    await new Promise((res) => server.once('listening', res));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(() => new Promise<void>((res) => server.close(() => res())));

  it('creates a secret whose data is sealed in the store and never answered', async () => {
    const c = await call('POST', '/v1/secrets', { name: 'db_pass', labels: { a: 'b' }, data: b64(SECRET) });
    assert.equal(c.status, 200, c.text);
    const ls = await call('GET', '/v1/secrets');
    const one = await call('GET', '/v1/secrets/db_pass');
    assert.equal(one.status, 200);
    assert.equal(one.body.spec.name, 'db_pass');
    assert.deepEqual(one.body.spec.labels, { a: 'b' });
    for (const t of [ls.text, one.text]) {
      assert.ok(!t.includes(SECRET) && !t.includes(b64(SECRET)), 'no data in answers');
      assert.ok(!t.includes('"ct"'), 'not even sealed data');
    }
    const dump = JSON.stringify(store.view((tx) => tx.list('secret')));
    assert.ok(!dump.includes(SECRET) && !dump.includes(b64(SECRET)), 'no plaintext in the store');
    const s = store.view((tx) => tx.byName('secret', 'db_pass'))!;
    assert.equal(ring.open(s.spec.data, { kind: 'secret', id: s.id }).toString(), SECRET);
  });

  it('answers 409 for a name in use, 413 past 500 KiB, 400 for bad input', async () => {
    assert.equal((await call('POST', '/v1/secrets', { name: 'db_pass', data: b64('x') })).status, 409);
    const big = await call('POST', '/v1/secrets', { name: 'big', data: Buffer.alloc(500 * 1024 + 1, 1).toString('base64') });
    assert.equal(big.status, 413);
    assert.match(big.body.error.message, /500 KiB/);
    assert.equal((await call('POST', '/v1/secrets', { name: 'x', data: 'not base64!' })).status, 400);
    assert.equal((await call('POST', '/v1/secrets', { name: 'x', data: '' })).status, 400);
    assert.equal((await call('POST', '/v1/secrets', { name: '-bad', data: b64('x') })).status, 400);
    assert.equal((await call('POST', '/v1/secrets', { name: 'x', data: b64('x'), extra: 1 })).status, 400);
    assert.equal((await call('GET', '/v1/secrets/nope')).status, 404);
  });

  it('updates labels only; identical data passes, other data or a rename is a 400, a stale version a 409', async () => {
    const cur = (await call('GET', '/v1/secrets/db_pass')).body;
    const ok = await call('POST', '/v1/secrets/db_pass/update', { version: cur.version, labels: { c: 'd' }, name: 'db_pass', data: b64(SECRET) });
    assert.equal(ok.status, 200, ok.text);
    assert.deepEqual((await call('GET', '/v1/secrets/db_pass')).body.spec.labels, { c: 'd' });
    const now = (await call('GET', '/v1/secrets/db_pass')).body.version;
    assert.equal((await call('POST', '/v1/secrets/db_pass/update', { version: now, data: b64('other') })).status, 400);
    const rn = await call('POST', '/v1/secrets/db_pass/update', { version: now, name: 'renamed' });
    assert.equal(rn.status, 400);
    assert.match(rn.body.error.message, /only updates to labels are allowed/);
    assert.equal((await call('POST', '/v1/secrets/db_pass/update', { version: cur.version, labels: {} })).status, 409);
    assert.equal((await call('POST', '/v1/secrets/db_pass/update', { labels: {} })).status, 400, 'version is required');
  });

  it('shows a config with its data', async () => {
    assert.equal((await call('POST', '/v1/configs', { name: 'app.conf', data: b64('port=80\n') })).status, 200);
    const c = await call('GET', '/v1/configs/app.conf');
    assert.equal(Buffer.from(c.body.spec.data, 'base64').toString(), 'port=80\n');
  });

  it('resolves references when a service is written; a missing one is a 400 naming it', async () => {
    const spec = (secrets: unknown[], configs: unknown[] = []) => ({
      name: 'web',
      mode: { replicated: { replicas: 1 } },
      task: { image: 'demo', secrets, configs },
    });
    const bad = await call('POST', '/v1/services', { spec: spec([{ secretName: 'nope' }]) });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /task\.secrets\[0\]: secret nope not found/);
    const ok = await call('POST', '/v1/services', {
      spec: spec([{ secretName: 'db_pass', target: { name: 'pw', uid: '1000', mode: 0o400 } }], [{ configName: 'app.conf' }]),
    });
    assert.equal(ok.status, 200, ok.text);
    const svc = (await call('GET', '/v1/services/web')).body;
    const sid = store.view((tx) => tx.byName('secret', 'db_pass'))!.id;
    assert.deepEqual(svc.spec.task.secrets, [{ secretId: sid, secretName: 'db_pass', target: { name: 'pw', uid: '1000', gid: '0', mode: 0o400 } }]);
    assert.equal(svc.spec.task.configs[0].target.name, '/app.conf');
    assert.equal(svc.spec.task.configs[0].target.mode, 0o444);
  });

  it('refuses rm while a service uses it, naming the service; allows it after', async () => {
    const rm = await call('DELETE', '/v1/secrets/db_pass');
    assert.equal(rm.status, 409);
    assert.match(rm.body.error.message, /in use by service web/);
    assert.equal((await call('DELETE', '/v1/configs/app.conf')).status, 409);
    assert.equal((await call('DELETE', '/v1/services/web')).status, 200);
    assert.equal((await call('DELETE', '/v1/secrets/db_pass')).status, 200);
    assert.equal((await call('DELETE', '/v1/configs/app.conf')).status, 200);
    assert.equal(store.view((tx) => tx.list('secret')).length, 0);
  });
});

describe('secret and config references in a spec', () => {
  const spec = (task: Record<string, unknown>) => ({ name: 's', task: { image: 'demo', ...task } });
  it("fills in Docker's defaults", () => {
    const s = validateServiceSpec(spec({ secrets: [{ secretName: 'a' }], configs: [{ configName: 'c' }] }));
    assert.deepEqual(s.task.secrets, [{ secretId: '', secretName: 'a', target: { name: 'a', uid: '0', gid: '0', mode: 0o444 } }]);
    assert.deepEqual(s.task.configs![0]!.target, { name: '/c', uid: '0', gid: '0', mode: 0o444 });
  });
  it('accepts an absolute secret target under /run/secrets only', () => {
    assert.equal(validateServiceSpec(spec({ secrets: [{ secretName: 'a', target: { name: '/run/secrets/x/y' } }] })).task.secrets![0]!.target.name, 'x/y');
    assert.throws(() => validateServiceSpec(spec({ secrets: [{ secretName: 'a', target: { name: '/etc/a' } }] })), /under \/run\/secrets/);
    assert.throws(() => validateServiceSpec(spec({ secrets: [{ secretName: 'a', target: { name: '../a' } }] })), /'\.\.'/);
  });
  it('wants absolute config targets outside /proc, /sys and /dev', () => {
    assert.throws(() => validateServiceSpec(spec({ configs: [{ configName: 'c', target: { name: 'rel' } }] })), /absolute path/);
    assert.throws(() => validateServiceSpec(spec({ configs: [{ configName: 'c', target: { name: '/proc/x' } }] })), /lies in \/proc/);
  });
  it('refuses duplicate targets, bad modes and ids, and unnamed references', () => {
    assert.throws(() => validateServiceSpec(spec({ secrets: [{ secretName: 'a' }, { secretName: 'b', target: { name: 'a' } }] })), /used twice/);
    assert.throws(
      () => validateServiceSpec(spec({ secrets: [{ secretName: 'a' }], configs: [{ configName: 'c', target: { name: '/run/secrets/a' } }] })),
      /used twice/,
    );
    assert.throws(() => validateServiceSpec(spec({ secrets: [{ secretName: 'a', target: { mode: 0o10000 } }] })), /mode/);
    assert.throws(() => validateServiceSpec(spec({ secrets: [{ secretName: 'a', target: { uid: 'root' } }] })), /numeric id/);
    assert.throws(() => validateServiceSpec(spec({ secrets: [{}] })), /names no secret/);
  });
});

describe('delivery plan and the node copy', () => {
  it('sends exactly what assigned tasks reference, once, and removes what is no longer needed', async () => {
    const store = new Store();
    const ring = KeyRing.generate(randomBytes, new Date());
    await store.update((tx) => {
      tx.create({
        id: 'sec1',
        kind: 'secret',
        spec: { name: 'a', labels: {}, data: ring.seal(Buffer.from(SECRET), { kind: 'secret', id: 'sec1' }, randomBytes) },
        status: {},
      });
      tx.create({
        id: 'sec2',
        kind: 'secret',
        spec: { name: 'b', labels: {}, data: ring.seal(Buffer.from('other'), { kind: 'secret', id: 'sec2' }, randomBytes) },
        status: {},
      });
      tx.create({ id: 'cfg1', kind: 'config', spec: { name: 'c', labels: {}, data: b64('conf') }, status: {} });
    });
    const task = (id: string, secretId: string, desired: Task['desiredState'] = 'running') =>
      ({
        id,
        spec: {
          image: 'x',
          secrets: [{ secretId, secretName: '', target: { name: 'x', uid: '0', gid: '0', mode: 0o444 } }],
          configs: [{ configId: 'cfg1', configName: 'c', target: { name: '/c', uid: '0', gid: '0', mode: 0o444 } }],
        },
        desiredState: desired,
      }) as unknown as Task;
    const sent = new Set<string>();
    const plan = (tasks: Task[]) => store.view((tx) => planFileMessages(tx, tasks, sent, ring, () => {}));
    const m1 = plan([task('t1', 'sec1')]);
    assert.equal(m1.length, 1);
    const files = new NodeFiles();
    files.apply(m1[0]!);
    assert.equal(files.get('secret', 'sec1')!.toString(), SECRET);
    assert.equal(files.get('config', 'cfg1')!.toString(), 'conf');
    assert.equal(files.get('secret', 'sec2'), undefined, 'a secret no task here references is not sent');
    assert.deepEqual(plan([task('t1', 'sec1')]), [], 'nothing twice on one session');
    const m3 = plan([task('t1', 'sec1', 'shutdown')]);
    assert.deepEqual(m3, [
      {
        t: 'files',
        set: [],
        remove: [
          { kind: 'secret', id: 'sec1' },
          { kind: 'config', id: 'cfg1' },
        ],
      },
    ]);
    files.apply(m3[0]!);
    assert.equal(files.size, 0);
    assert.deepEqual(
      store.view((tx) => planFileMessages(tx, [task('t2', 'sec2')], new Set(), null, () => {})),
      [{ t: 'files', set: [{ kind: 'config', id: 'cfg1', data: b64('conf') }], remove: [] }],
      'no key: the secret is left out',
    );
  });

  it('the node copy refuses malformed messages without changing anything', () => {
    const f = new NodeFiles();
    f.apply({ set: [{ kind: 'secret', id: 'a', data: b64('1') }], remove: [] });
    assert.throws(() => f.apply({ set: [{ kind: 'x', id: 'b', data: '' }], remove: [{ kind: 'secret', id: 'a' }] }), FilesError);
    assert.equal(f.get('secret', 'a')!.toString(), '1');
    f.reset();
    assert.equal(f.size, 0);
  });
});

describe('CLI flags', () => {
  it('parses --secret as Docker does', () => {
    assert.deepEqual(parseFileRef('secret', 'db', '--secret'), { secretName: 'db', target: {} });
    assert.deepEqual(parseFileRef('secret', 'source=db,target=pw,uid=1000,gid=1000,mode=0400', '--secret'), {
      secretName: 'db',
      target: { name: 'pw', uid: '1000', gid: '1000', mode: 0o400 },
    });
    assert.throws(() => parseFileRef('config', 'target=/x', '--config'), /missing/);
    assert.throws(() => parseFileRef('secret', 'source=a,mode=999', '--secret'), /octal/);
  });

  it('rotates a secret in one update: --secret-rm old --secret-add source=new,target=old', () => {
    const current = validateServiceSpec({ name: 's', task: { image: 'demo', secrets: [{ secretId: 'i1', secretName: 'pw_v1', target: { name: 'pw' } }] } });
    const u = parseServiceUpdateArgs(['--secret-rm', 'pw_v1', '--secret-add', 'source=pw_v2,target=pw', 's'], current);
    assert.deepEqual(u.spec.task?.secrets, [{ secretName: 'pw_v2', target: { name: 'pw' } }]);
  });
});
