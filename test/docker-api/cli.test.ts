// Contract tests of the Docker Engine API facade (manager/docker-api) with the REAL docker CLI (the
// machine's `docker` 28.x client) against a one-manager Shoal in this process, over its docker.sock:
// version negotiation, info, nodes, services (create with and without -d, update, scale, rollback,
// rm), tasks, networks, and the error paths clients branch on (404 → "no such service", a stale
// version → "update out of sequence", a refused spec → the control API's 400). Tables are compared
// with golden text once ids and times are masked; the CLI's progress output is not (it varies).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { dockerCli, OneManager, type Run } from './harness.ts';

const cli = await dockerCli();
const skip = cli === null ? 'the docker CLI is not on PATH (the machine image ships docker 28.2.2; install it to run these)' : false;

/** Ids (25 base36 characters, or their 12-character truncation) and relative times masked. */
function mask(s: string): string {
  return s
    .replace(/\b[0-9a-z]{25}\b/g, '<id>')
    .replace(/\b[0-9a-z]{12}\b(?=\s)/g, '<id12>')
    .replace(
      /(Running|Shutdown|Preparing|Starting|Pending|Assigned|Complete|Failed|Rejected|Accepted|New) (less than a second|about a minute|\d+ seconds?|\d+ minutes?) ago/g,
      '$1 <when> ago',
    )
    .replace(/[ \t]+$/gm, '');
}

function ok(r: Run, what: string): string {
  assert.equal(r.code, 0, `${what} failed (${r.code}):\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** A raw Engine API call on the socket (what the CLI cannot be made to send: a stale version). */
function raw(socket: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      { socketPath: socket, method, path, headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {} },
      (res) => {
        let b = '';
        res.on('data', (c: Buffer) => (b += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('docker CLI against a Shoal manager', { skip }, () => {
  const m = new OneManager();
  before(async () => m.start());
  after(async () => m.stop());

  it('negotiates the API version from /_ping and answers version and info', async () => {
    const v = ok(
      await m.docker(['version', '--format', '{{.Client.APIVersion}} {{.Server.APIVersion}} {{.Server.MinAPIVersion}} {{.Server.Os}}/{{.Server.Arch}}']),
      'version',
    );
    assert.equal(v.trim(), '1.47 1.47 1.24 linux/amd64');
    const info = ok(
      await m.docker([
        'info',
        '--format',
        '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.Nodes}} {{.Swarm.Managers}} {{len .Swarm.RemoteManagers}} {{.Architecture}} {{.Name}}',
      ]),
      'info',
    );
    assert.equal(info.trim(), 'active true 1 1 1 x86_64 shoal-dk1');
    // Unversioned and too-old paths (Portainer and dockerode send unversioned ones).
    const unversioned = await raw(m.socket, 'GET', '/version');
    assert.equal(unversioned.status, 200);
    const old = await raw(m.socket, 'GET', '/v1.12/version');
    assert.equal(old.status, 400);
    assert.match(JSON.parse(old.body).message, /too old.*1\.24/);
  });

  it('lists, inspects and updates nodes (labels, availability) with the version read', async () => {
    const ls = ok(await m.docker(['node', 'ls']), 'node ls');
    assert.equal(
      mask(ls),
      [
        'ID                            HOSTNAME    STATUS    AVAILABILITY   MANAGER STATUS   ENGINE VERSION',
        '<id> *   shoal-dk1   Ready     Active         Leader           shoal-0.1.0',
        '',
      ].join('\n'),
    );
    assert.equal(
      ok(
        await m.docker([
          'node',
          'inspect',
          'self',
          '--format',
          '{{.Description.Hostname}} {{.Spec.Role}} {{.Description.Platform.Architecture}} {{.Status.Addr}}',
        ]),
        'node inspect',
      ).trim(),
      'shoal-dk1 manager x86_64 127.0.0.1',
    );
    ok(await m.docker(['node', 'update', '--label-add', 'zone=a', '--availability', 'drain', 'shoal-dk1']), 'node update');
    assert.equal(
      ok(await m.docker(['node', 'inspect', 'shoal-dk1', '--format', '{{json .Spec}}']), 'inspect').trim(),
      '{"Labels":{"zone":"a"},"Role":"manager","Availability":"drain"}',
    );
    ok(await m.docker(['node', 'update', '--label-rm', 'zone', '--availability', 'active', 'shoal-dk1']), 'node update');
    assert.equal(
      ok(await m.docker(['node', 'ls', '--filter', 'role=manager', '--format', '{{.Hostname}} {{.Availability}}']), 'ls').trim(),
      'shoal-dk1 Active',
    );
    assert.equal(ok(await m.docker(['node', 'ls', '--filter', 'role=worker', '-q']), 'ls').trim(), '');
    const missing = await m.docker(['node', 'rm', 'nope']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /node nope not found/);
  });

  it('creates a service without -d and returns once it converged', async () => {
    const r = await m.docker(['service', 'create', '--name', 'conv', '--replicas', '2', '--no-resolve-image', 'busybox:1.36'], 90_000);
    assert.match(ok(r, 'service create'), /converged/);
    // Converged means both tasks run now, not eventually.
    const ps = ok(await m.docker(['service', 'ps', 'conv', '--format', '{{.Name}} {{.CurrentState}}']), 'ps');
    assert.deepEqual(
      ps
        .trim()
        .split('\n')
        .map((l) => l.replace(/ .*$/, ''))
        .sort(),
      ['conv.1', 'conv.2'],
    );
    assert.match(ps, /^conv\.\d Running/m);
    ok(await m.docker(['service', 'rm', 'conv']), 'rm');
  });

  it('runs a service through create -d, ls, inspect, update --image, scale, rollback and rm', async () => {
    const id = ok(
      await m.docker([
        'service',
        'create',
        '-d',
        '--name',
        'web',
        '--replicas',
        '2',
        '--no-resolve-image',
        '-e',
        'A=1',
        '--label',
        'tier=front',
        'busybox:1.36',
      ]),
      'create',
    ).trim();
    assert.match(id, /^[0-9a-z]{25}$/);
    await waitFor('2 running', async () => /2\/2/.test((await m.docker(['service', 'ls'])).stdout));
    assert.equal(
      mask(ok(await m.docker(['service', 'ls']), 'ls')),
      ['ID             NAME      MODE         REPLICAS   IMAGE          PORTS', '<id12>   web       replicated   2/2        busybox:1.36', ''].join('\n'),
    );
    const spec = JSON.parse(ok(await m.docker(['service', 'inspect', 'web', '--format', '{{json .Spec}}']), 'inspect')) as Record<string, any>;
    assert.equal(spec.Name, 'web');
    assert.deepEqual(spec.Labels, { tier: 'front' });
    assert.deepEqual(spec.Mode, { Replicated: { Replicas: 2 } });
    assert.equal(spec.TaskTemplate.ContainerSpec.Image, 'busybox:1.36');
    assert.deepEqual(spec.TaskTemplate.ContainerSpec.Env, ['A=1']);
    assert.equal(spec.UpdateConfig.Monitor, 5_000_000_000, 'durations are nanoseconds');

    ok(await m.docker(['service', 'update', '--image', 'busybox:1.37', '--no-resolve-image', 'web'], 90_000), 'update --image');
    const ps = mask(ok(await m.docker(['service', 'ps', 'web']), 'ps'));
    assert.match(ps, /web\.1\s+busybox:1\.37\s+shoal-dk1\s+Running\s+Running <when> ago/);
    // History: the replaced tasks are listed too (Shutdown), as Docker lists them.
    assert.match(ps, /\\_ web\.\d\s+busybox:1\.36\s+shoal-dk1\s+Shutdown/);

    assert.match(ok(await m.docker(['service', 'scale', '-d', 'web=3']), 'scale'), /web scaled to 3/);
    await waitFor('3/3', async () => (await m.docker(['service', 'ls', '--format', '{{.Replicas}}'])).stdout.trim() === '3/3');
    ok(await m.docker(['service', 'rollback', '-d', 'web']), 'rollback');
    assert.equal(
      ok(
        await m.docker([
          'service',
          'inspect',
          'web',
          '--format',
          '{{.Spec.Mode.Replicated.Replicas}} {{.Spec.TaskTemplate.ContainerSpec.Image}} {{.PreviousSpec.Mode.Replicated.Replicas}}',
        ]),
        'inspect',
      ).trim(),
      '2 busybox:1.37 3',
    );

    // Filters: names by prefix, labels, the up-to-date tasks the CLI's progress polls.
    assert.equal(ok(await m.docker(['service', 'ls', '--filter', 'name=we', '-q']), 'ls').trim().length, 12);
    assert.equal(ok(await m.docker(['service', 'ls', '--filter', 'label=tier=back', '-q']), 'ls').trim(), '');
    const upToDate = await raw(
      m.socket,
      'GET',
      `/v1.47/tasks?filters=${encodeURIComponent(JSON.stringify({ service: { [id]: true }, '_up-to-date': { true: true } }))}`,
    );
    const tasks = JSON.parse(upToDate.body) as { DesiredState: string; Spec: { ContainerSpec: { Image: string } } }[];
    await waitFor('2 up-to-date tasks', async () => {
      const now = JSON.parse(
        (
          await raw(
            m.socket,
            'GET',
            `/v1.47/tasks?filters=${encodeURIComponent(JSON.stringify({ service: { [id]: true }, '_up-to-date': { true: true }, 'desired-state': { running: true } }))}`,
          )
        ).body,
      ) as unknown[];
      return now.length === 2;
    });
    assert.ok(
      tasks.every((t) => t.Spec.ContainerSpec.Image === 'busybox:1.37'),
      'only tasks of the current spec are up to date',
    );

    ok(await m.docker(['service', 'rm', 'web']), 'rm');
    assert.equal(ok(await m.docker(['service', 'ls', '-q']), 'ls').trim(), '');
  });

  it('refuses a stale version with "update out of sequence" and requires one', async () => {
    ok(await m.docker(['service', 'create', '-d', '--name', 'seq', '--no-resolve-image', 'busybox:1.36']), 'create');
    const svc = JSON.parse((await raw(m.socket, 'GET', '/v1.47/services/seq')).body) as { ID: string; Version: { Index: number }; Spec: unknown };
    ok(await m.docker(['service', 'update', '-d', '--env-add', 'B=2', 'seq']), 'update');
    const stale = await raw(m.socket, 'POST', `/v1.47/services/${svc.ID}/update?version=${svc.Version.Index}`, svc.Spec);
    assert.equal(stale.status, 409);
    assert.match(JSON.parse(stale.body).message, /update out of sequence/);
    const none = await raw(m.socket, 'POST', `/v1.47/services/${svc.ID}/update`, svc.Spec);
    assert.equal(none.status, 400);
    ok(await m.docker(['service', 'rm', 'seq']), 'rm');
  });

  it('answers 404 for missing objects the way clients branch on', async () => {
    const s = await m.docker(['service', 'inspect', 'nope']);
    assert.equal(s.code, 1);
    assert.match(s.stderr, /no such service: nope/);
    const any = await m.docker(['inspect', 'nope']);
    assert.equal(any.code, 1);
    assert.match(any.stderr, /No such object: nope/);
    const logs = await m.docker(['service', 'logs', 'nope']);
    assert.equal(logs.code, 1);
    assert.match(logs.stderr, /no such task or service: nope/);
    for (const p of ['/v1.47/containers/json', '/v1.47/images/json', '/v1.47/plugins']) assert.equal((await raw(m.socket, 'GET', p)).body, '[]', p);
    assert.equal((await raw(m.socket, 'GET', '/v1.47/containers/abc/json')).status, 404);
    assert.equal((await raw(m.socket, 'GET', '/v1.47/no/such/endpoint')).status, 404);
  });

  it('creates, lists, inspects and removes overlay networks; refuses other drivers', async () => {
    ok(await m.docker(['network', 'create', '-d', 'overlay', '--subnet', '10.20.0.0/24', '--label', 'a=b', 'front']), 'create');
    assert.equal(
      ok(
        await m.docker(['network', 'inspect', 'front', '--format', '{{.Name}} {{.Driver}} {{.Scope}} {{json .IPAM.Config}} {{json .Labels}}']),
        'inspect',
      ).trim(),
      'front overlay swarm [{"Subnet":"10.20.0.0/24","Gateway":"10.20.0.1"}] {"a":"b"}',
    );
    assert.equal(
      mask(ok(await m.docker(['network', 'ls', '--filter', 'name=fr']), 'ls')),
      ['NETWORK ID     NAME      DRIVER    SCOPE', '<id12>   front     overlay   swarm', ''].join('\n'),
    );
    const id = ok(
      await m.docker(['service', 'create', '-d', '--name', 'onnet', '--network', 'front', '--no-resolve-image', 'busybox:1.36']),
      'create on network',
    ).trim();
    const inUse = await m.docker(['network', 'rm', 'front']);
    assert.equal(inUse.code, 1, 'a network in use is not removed');
    ok(await m.docker(['service', 'rm', id]), 'rm service');
    ok(await m.docker(['network', 'rm', 'front']), 'rm');
    assert.match((await m.docker(['network', 'inspect', 'front'])).stderr, /not found/);
    const bridge = await m.docker(['network', 'create', 'plain']);
    assert.equal(bridge.code, 1);
    assert.match(bridge.stderr, /driver bridge is not supported/);
  });

  it('reports spec fields Shoal does not implement as warnings the CLI prints', async () => {
    const r = await m.docker(['service', 'create', '-d', '--name', 'warned', '--read-only', '--init', '--no-resolve-image', 'busybox:1.36']);
    ok(r, 'create');
    assert.match(r.stderr, /ContainerSpec\.ReadOnly is not supported/);
    assert.match(r.stderr, /ContainerSpec\.Init is not supported/);
    ok(await m.docker(['service', 'rm', 'warned']), 'rm');
  });

  it('creates, lists, inspects and removes secrets and configs; a secret in use is kept', async () => {
    writeFileSync(join(m.dir, 'pw.txt'), 's3cret\n');
    writeFileSync(join(m.dir, 'app.conf'), 'port=80\n');
    ok(await m.docker(['secret', 'create', '--label', 'k=v', 'pw', join(m.dir, 'pw.txt')]), 'secret create');
    ok(await m.docker(['config', 'create', 'conf', join(m.dir, 'app.conf')]), 'config create');
    assert.equal(ok(await m.docker(['secret', 'ls', '--format', '{{.Name}} {{.Labels}}']), 'ls').trim(), 'pw k=v');
    const sec = JSON.parse(ok(await m.docker(['secret', 'inspect', 'pw']), 'inspect'))[0];
    assert.equal(sec.Spec.Data, undefined, 'a secret never shows its data');
    const conf = JSON.parse(ok(await m.docker(['config', 'inspect', 'conf']), 'inspect'))[0];
    assert.equal(Buffer.from(conf.Spec.Data, 'base64').toString(), 'port=80\n');
    ok(
      await m.docker([
        'service',
        'create',
        '-d',
        '--name',
        'usesecret',
        '--secret',
        'pw',
        '--config',
        'src=conf,target=/etc/app.conf',
        '--no-resolve-image',
        'busybox:1.36',
      ]),
      'service with secret',
    );
    const spec = JSON.parse(ok(await m.docker(['service', 'inspect', 'usesecret', '--format', '{{json .Spec.TaskTemplate.ContainerSpec}}']), 'inspect'));
    assert.equal(spec.Secrets[0].SecretName, 'pw');
    assert.equal(spec.Configs[0].File.Name, '/etc/app.conf');
    const inUse = await m.docker(['secret', 'rm', 'pw']);
    assert.equal(inUse.code, 1);
    assert.match(inUse.stderr, /in use by service usesecret/);
    ok(await m.docker(['service', 'rm', 'usesecret']), 'rm service');
    ok(await m.docker(['secret', 'rm', 'pw']), 'secret rm');
    ok(await m.docker(['config', 'rm', 'conf']), 'config rm');
    assert.match((await m.docker(['secret', 'inspect', 'pw'])).stderr, /not found/i);
  });

  it('deploys a stack twice (create, then update) and removes it', async () => {
    writeFileSync(join(m.dir, 'pw.txt'), 's3cret\n');
    writeFileSync(
      join(m.dir, 'stack.yml'),
      [
        'version: "3.8"',
        'services:',
        '  web:',
        '    image: busybox:1.36',
        '    networks: [front]',
        '    secrets: [pw]',
        '    deploy:',
        '      replicas: 2',
        '  cache:',
        '    image: busybox:1.36',
        'networks:',
        '  front: {}',
        'secrets:',
        '  pw:',
        `    file: ${join(m.dir, 'pw.txt')}`,
        '',
      ].join('\n'),
    );
    const first = ok(await m.docker(['stack', 'deploy', '-c', join(m.dir, 'stack.yml'), '--resolve-image', 'never', 'app'], 60_000), 'stack deploy');
    assert.match(first, /Creating network app_front/);
    assert.match(first, /Creating secret app_pw/);
    assert.match(first, /Creating service app_web/);
    const again = ok(await m.docker(['stack', 'deploy', '-c', join(m.dir, 'stack.yml'), '--resolve-image', 'never', 'app'], 60_000), 'stack redeploy');
    assert.match(again, /Updating service app_web/);
    assert.equal(ok(await m.docker(['stack', 'ls', '--format', '{{.Name}} {{.Services}}']), 'stack ls').trim(), 'app 2');
    await waitFor('app_web 2/2', async () =>
      /app_web .*2\/2/.test((await m.docker(['stack', 'services', 'app', '--format', '{{.Name}} {{.Replicas}}'])).stdout),
    );
    ok(await m.docker(['stack', 'rm', 'app']), 'stack rm');
    await waitFor(
      'the stack gone',
      async () =>
        (await m.docker(['network', 'ls', '--filter', 'name=app_', '-q'])).stdout.trim() === '' &&
        (await m.docker(['service', 'ls', '-q'])).stdout.trim() === '',
    );
  });

  it('shows and rotates join tokens and the unlock key; turns autolock on and off', async () => {
    const before = ok(await m.docker(['swarm', 'join-token', '-q', 'worker']), 'join-token').trim();
    assert.ok(before.length > 20, before);
    ok(await m.docker(['swarm', 'join-token', '--rotate', 'worker']), 'rotate');
    const after = ok(await m.docker(['swarm', 'join-token', '-q', 'worker']), 'join-token').trim();
    assert.notEqual(after, before);
    // Autolock: off (no key), then on with a key the CLI shows and rotates.
    assert.match((await m.docker(['swarm', 'unlock-key'])).stderr, /no unlock key is set/);
    ok(await m.docker(['swarm', 'update', '--autolock=true']), 'swarm update --autolock');
    const key = ok(await m.docker(['swarm', 'unlock-key', '-q']), 'unlock-key').trim();
    assert.match(key, /^SHOALKEY-1-/);
    ok(await m.docker(['swarm', 'unlock-key', '--rotate']), 'unlock-key --rotate');
    assert.notEqual(ok(await m.docker(['swarm', 'unlock-key', '-q']), 'unlock-key').trim(), key);
    assert.equal(ok(await m.docker(['info', '--format', '{{.Swarm.Cluster.Spec.EncryptionConfig.AutoLockManagers}}']), 'info').trim(), 'true');
    ok(await m.docker(['swarm', 'update', '--autolock=false']), 'swarm update --autolock=false');
    const cmd = ok(await m.docker(['swarm', 'join-token', 'manager']), 'join-token manager');
    assert.match(cmd, /docker swarm join --token \S+ 127\.0\.0\.1:\d+/);
  });

  it('reports service, network and node changes as events (since/until, filters, live)', async () => {
    const t0 = Math.floor(Date.now() / 1000) - 1;
    // Live: a stream opened before the change sees it.
    const live = m.docker(
      [
        'events',
        '--filter',
        'type=service',
        '--filter',
        'event=create',
        '--format',
        '{{.Type}} {{.Action}} {{.Actor.Attributes.name}}',
        '--until',
        String(t0 + 8),
      ],
      20_000,
    );
    // Wait until the CLI's stream is subscribed to this manager's event log (not for a fixed time).
    const events = m.daemon.manager!.events.log;
    const deadline = Date.now() + 15_000;
    while (events.listening === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(events.listening, 1, 'docker events subscribed');
    ok(await m.docker(['service', 'create', '-d', '--name', 'ev', '--no-resolve-image', 'busybox:1.36']), 'create');
    ok(await m.docker(['service', 'update', '-d', '--image', 'busybox:1.37', '--no-resolve-image', 'ev']), 'update');
    ok(await m.docker(['network', 'create', '-d', 'overlay', 'evnet']), 'network');
    ok(await m.docker(['service', 'rm', 'ev']), 'rm');
    ok(await m.docker(['network', 'rm', 'evnet']), 'network rm');
    const t1 = Math.ceil(Date.now() / 1000) + 1;
    const past = ok(
      await m.docker([
        'events',
        '--since',
        String(t0),
        '--until',
        String(t1),
        '--filter',
        'type=service',
        '--filter',
        'type=network',
        '--format',
        '{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{index .Actor.Attributes "image.new"}}',
      ]),
      'events',
    );
    // Only this test's objects: others' (and the ingress network's) may fall in the same second.
    assert.deepEqual(
      past
        .trim()
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => / (ev|evnet)( |$)/.test(l)),
      ['service create ev', 'service update ev busybox:1.37', 'network create evnet', 'service remove ev', 'network remove evnet'],
    );
    const streamed = await live;
    assert.equal(streamed.code, 0, streamed.stderr);
    assert.equal(streamed.stdout.trim(), 'service create ev');
  });
});
