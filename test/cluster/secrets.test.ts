// Secrets and configs end to end through the CLI on lab hosts with real containers (lab h9x: two
// managers, so the second one fetches the data-encryption key from the first, and one worker): a
// service with a secret (custom target, mode 0400, uid 1000) and a config; the task reads them with the
// right contents, owner and mode; rotation by --secret-rm/--secret-add under one target; `secret rm`
// refused while in use; every host's directory (state dir, Raft DB, WAL, snapshots, daemon log) holds
// the secret value neither in plaintext nor in base64, also after kill -9 of the worker's daemon while
// the task runs; after `service rm` the task's tmpfs is gone.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { localCall } from '../../client/context.ts';
import { demoWebImage } from '../../worker/images/build.ts';
import { ClusterLab, waitFor } from '../../lab/cluster-lab.ts';
import { cleanupOnExit } from '../../lab/lab.ts';
import { filesContaining } from '../helpers/disk-grep.ts';

const NAME = 'h9x';
const SHOAL = join(resolve(fileURLToPath(new URL('../..', import.meta.url))), 'bin', 'shoal');
const HOSTS = ['h1', 'h2', 'h3'];

const mountedUnder = (prefix: string): string[] =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(prefix));

describe('secrets and configs through the CLI on lab hosts', { concurrency: false, timeout: 240_000 }, () => {
  let c: ClusterLab;
  let unhook: () => void = () => {};
  const tmp = mkdtempSync(join(tmpdir(), 'shoal-h9x-'));
  const value1 = `v1-${randomBytes(12).toString('hex')}`;
  const value2 = `v2-${randomBytes(12).toString('hex')}`;
  const needles = [value1, value2].flatMap((v) => [Buffer.from(v), Buffer.from(Buffer.from(v).toString('base64'))]);
  let workerId = '';

  const sh = (...args: string[]) =>
    new Promise<{ code: number; out: string; err: string }>((res) => {
      execFile(SHOAL, args, { env: { ...process.env, SHOAL_CONTEXT: c.contextPath }, timeout: 90_000 }, (e, out, err) =>
        res({ code: e ? (typeof (e as { code?: unknown }).code === 'number' ? (e as { code: number }).code : 1) : 0, out: String(out), err: String(err) }),
      );
    });
  const ok = async (...args: string[]) => {
    const r = await sh(...args);
    assert.equal(r.code, 0, `shoal ${args.join(' ')} failed (${r.code}): ${r.err}${r.out}`);
    return r.out;
  };
  const runningTask = async (svc: string): Promise<any> => {
    let t: any;
    await waitFor(
      async () => {
        const ts: any[] = await c.control('GET', `/v1/tasks?service=${svc}`);
        t = ts.find((x) => x.status.state === 'running' && x.desiredState === 'running');
        return t !== undefined;
      },
      30_000,
      `a running task of ${svc}`,
    );
    return t;
  };
  const leaks = () => HOSTS.flatMap((h) => filesContaining(c.host(h).dir, needles));
  const filesRoot = () => join('/run/shoal', workerId, 'files');

  before(async () => {
    unhook = cleanupOnExit(NAME);
    c = await ClusterLab.up({ name: NAME, managers: 2, workers: 1, executor: 'engine' });
    writeFileSync(join(tmp, 'web.tar'), demoWebImage('shoal/demo-web:1').archive);
    await localCall(c.stateDir('h1'), 'POST', '/images/load', { path: join(tmp, 'web.tar') });
    workerId = (await c.nodes()).find((n: any) => n.description.hostname === 'h3').id;
  });

  after(async () => {
    await c?.down();
    unhook();
    // The test's own leftovers under /run/shoal (the worker's tmpfs root), also on failure.
    if (workerId) {
      for (const m of mountedUnder(join('/run/shoal', workerId)).reverse()) execFileSync('umount', ['-l', m]);
      rmSync(join('/run/shoal', workerId), { recursive: true, force: true });
    }
    rmSync(tmp, { recursive: true, force: true });
  });

  it('both managers hold the data-encryption key, and only in their key file', async () => {
    for (const h of ['h1', 'h2']) await waitFor(() => existsSync(join(c.stateDir(h), 'keys', 'dek.json')), 20_000, `${h} has the key file`);
    assert.equal(readFileSync(join(c.stateDir('h1'), 'keys', 'dek.json'), 'utf8'), readFileSync(join(c.stateDir('h2'), 'keys', 'dek.json'), 'utf8'));
    assert.ok(!existsSync(join(c.stateDir('h3'), 'keys')), 'a worker holds no key');
  });

  it('a task reads its secret and config with the right contents, owner and mode', async () => {
    writeFileSync(join(tmp, 'pw1'), value1);
    writeFileSync(join(tmp, 'app.conf'), 'listen=8080\n');
    await ok('secret', 'create', '--label', 'team=a', 'pw_v1', join(tmp, 'pw1'));
    await ok('config', 'create', 'app_conf', join(tmp, 'app.conf'));
    const ls = await ok('secret', 'ls');
    assert.match(ls.split('\n')[0]!, /^ID\s+NAME\s+CREATED\s+UPDATED$/);
    assert.match(ls, /pw_v1/);
    const inspect = await ok('secret', 'inspect', 'pw_v1');
    assert.ok(!inspect.includes(value1) && !inspect.includes(Buffer.from(value1).toString('base64')), 'secret inspect shows no data');
    assert.match(await ok('config', 'inspect', 'app_conf'), new RegExp(Buffer.from('listen=8080\n').toString('base64')));

    await ok(
      'service',
      'create',
      '--name',
      'app',
      '--constraint',
      'node.role==worker',
      '--secret',
      'source=pw_v1,target=db_password,uid=1000,gid=1000,mode=0400',
      '--config',
      'source=app_conf,target=/etc/app.conf',
      'shoal/demo-web:1',
    );
    const t = await runningTask('app');
    const ex = await ok(
      'task',
      'exec',
      t.id,
      '--',
      'sh',
      '-c',
      'cat /run/secrets/db_password; echo; stat -c "%u:%g:%a" /run/secrets/db_password; cat /etc/app.conf; stat -c "%u:%g:%a" /etc/app.conf',
    );
    assert.deepEqual(ex.trim().split('\n'), [value1, '1000:1000:400', 'listen=8080', '0:0:444']);
    const w = await sh('task', 'exec', t.id, '--', 'sh', '-c', 'echo x > /run/secrets/db_password');
    assert.notEqual(w.code, 0, 'the secret is read-only in the container');
    assert.deepEqual(mountedUnder(filesRoot()), [join(filesRoot(), t.id)], 'one tmpfs, for the task');
    assert.deepEqual(leaks(), [], 'no host directory holds the secret');
  });

  it('secret rm is refused while a service uses it', async () => {
    const r = await sh('secret', 'rm', 'pw_v1');
    assert.notEqual(r.code, 0);
    assert.match(r.err, /in use by service app/);
  });

  it('rotates the secret under the same target in one rolling update', async () => {
    writeFileSync(join(tmp, 'pw2'), value2);
    await ok('secret', 'create', 'pw_v2', join(tmp, 'pw2'));
    const before = await runningTask('app');
    await ok('service', 'update', '--secret-rm', 'pw_v1', '--secret-add', 'source=pw_v2,target=db_password,uid=1000,gid=1000,mode=0400', 'app');
    let t: any;
    await waitFor(async () => (t = await runningTask('app')).id !== before.id, 30_000, 'a new task after the rotation');
    assert.equal((await ok('task', 'exec', t.id, '--', 'cat', '/run/secrets/db_password')).trim(), value2);
    await ok('secret', 'rm', 'pw_v1');
    await waitFor(() => !mountedUnder(filesRoot()).includes(join(filesRoot(), before.id)), 15_000, "the old task's tmpfs unmounted");
  });

  it('kill -9 of the worker daemon while the task runs leaves no secret on any disk; service rm removes the tmpfs', async () => {
    const t = await runningTask('app');
    c.killDaemon('h3');
    await waitFor(() => c.daemonStatus('h3').state !== 'running', 10_000, 'h3 daemon dead');
    assert.deepEqual(leaks(), [], 'no host directory holds the secret after kill -9');
    await c.restartDaemon('h3');
    await c.waitRejoined('h3', 30_000);
    assert.equal((await ok('task', 'exec', t.id, '--', 'cat', '/run/secrets/db_password')).trim(), value2, 'the re-adopted task still reads its secret');
    await ok('service', 'rm', 'app');
    const left = () => (existsSync(filesRoot()) ? readdirSync(filesRoot()) : []);
    await waitFor(() => mountedUnder(filesRoot()).length === 0 && left().length === 0, 20_000, 'no secret tmpfs left');
    await ok('secret', 'rm', 'pw_v2');
    await ok('config', 'rm', 'app_conf');
    assert.deepEqual(leaks(), [], 'no host directory holds the secret at the end');
  });

  it('lab down after kill -9 of the worker daemon leaves no tmpfs and no directory under /run/shoal', async () => {
    await ok('secret', 'create', 'pw_last', join(tmp, 'pw1'));
    await ok('service', 'create', '--name', 'last', '--constraint', 'node.role==worker', '--secret', 'pw_last', 'shoal/demo-web:1');
    await runningTask('last');
    assert.ok(mountedUnder(filesRoot()).length > 0, "the task's secret tmpfs is mounted");
    c.killDaemon('h3');
    await waitFor(() => c.daemonStatus('h3').state !== 'running', 10_000, 'h3 daemon dead');
    const r = await c.down();
    assert.deepEqual(r.errors, [], 'lab down reports no leftovers');
    assert.deepEqual(mountedUnder(join('/run/shoal', workerId)), [], 'no tmpfs left mounted');
    assert.ok(!existsSync(join('/run/shoal', workerId)), "the worker's /run/shoal directory is gone");
  });
});
