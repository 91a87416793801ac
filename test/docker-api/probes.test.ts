// What Portainer, dockerode and scripts call besides the CLI's everyday commands, against a
// one-manager Shoal in this process over TCP with the admin certificate (as they connect): the
// `dangling` network filter, `POST /networks/prune` (never ingress, never a network in use),
// `network connect` (a manager runs no containers: 404 "No such container"), image inspects with a
// slash in the name (404 "No such image"), `swarm init/join/leave` on TCP (503 with the engine's
// words), and Placement.Platforms round-tripped, plus the translation of Shoal's field paths to
// Docker's in 400 answers.
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { ApiError, Router } from '../../manager/api/http.ts';
import { callControl } from '../../manager/docker-api/control.ts';
import { dockerFieldPath, dockerSpecError } from '../../manager/docker-api/fields.ts';
import { SpecError } from '../../manager/service/spec.ts';
import { OneManager } from './harness.ts';

describe('field paths in Docker names', () => {
  it('maps every level of the spec and keeps what it does not know', () => {
    assert.equal(dockerFieldPath('task.image'), 'TaskTemplate.ContainerSpec.Image');
    assert.equal(dockerFieldPath('task.placement.constraints[0]'), 'TaskTemplate.Placement.Constraints[0]');
    assert.equal(dockerFieldPath('task.placement.platforms[1].arch'), 'TaskTemplate.Placement.Platforms[1].Architecture');
    assert.equal(dockerFieldPath('endpoint.ports[1].publishedPort'), 'EndpointSpec.Ports[1].PublishedPort');
    assert.equal(dockerFieldPath('task.secrets[0].target.mode'), 'TaskTemplate.ContainerSpec.Secrets[0].File.Mode');
    assert.equal(dockerFieldPath('task.resources.limits.nanoCpus'), 'TaskTemplate.Resources.Limits.NanoCPUs');
    assert.equal(dockerFieldPath('mode.replicated.replicas'), 'Mode.Replicated.Replicas');
    assert.equal(dockerFieldPath('networks[2].target'), 'TaskTemplate.Networks[2].Target');
    assert.equal(dockerFieldPath('rollback.delayMs'), 'RollbackConfig.Delay');
    assert.equal(dockerFieldPath('task.somethingNew.x'), 'TaskTemplate.somethingNew.x');
  });

  it('rewrites the field and its mentions, not words inside values', () => {
    const e = dockerSpecError(new SpecError('name', 'name must be 1–63 characters (got "bad!name")')) as SpecError;
    assert.equal(e.field, 'Name');
    assert.equal(e.message, 'Name must be 1–63 characters (got "bad!name")');
    const c = dockerSpecError(new SpecError('task.placement.constraints[0]', 'task.placement.constraints[0]: invalid constraint "x"')) as SpecError;
    assert.equal(c.message, 'TaskTemplate.Placement.Constraints[0]: invalid constraint "x"');
    const other = new Error('not a spec error');
    assert.equal(dockerSpecError(other), other);
  });
});

describe('reads through the control API', () => {
  it('retries a read that could not be confirmed, never a write, and gives up with the 503', async () => {
    let reads = 0;
    let writes = 0;
    const r = new Router<{ cn: string }>();
    r.add('GET', '/v1/x', () => {
      if (++reads < 3) throw new ApiError(503, 'ERETRY', 'read could not be confirmed (read timed out); retry');
      return { ok: true };
    });
    r.add('POST', '/v1/x', () => {
      writes++;
      throw new ApiError(503, 'ERETRY', 'no');
    });
    r.add('GET', '/v1/quorum', () => {
      throw new ApiError(503, 'ENOQUORUM', 'no quorum: 1 of 3 managers reachable (need 2)');
    });
    assert.deepEqual(await callControl(r, 'GET', '/v1/x'), { ok: true });
    assert.equal(reads, 3);
    await assert.rejects(callControl(r, 'POST', '/v1/x', {}), /no/);
    assert.equal(writes, 1);
    await assert.rejects(callControl(r, 'GET', '/v1/quorum'), /no quorum/);
  });
});

describe('engine calls Portainer and dockerode make', () => {
  const m = new OneManager();
  before(async () => m.start({ tcp: true }));
  after(async () => m.stop());

  const call = (method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> =>
    new Promise((res, rej) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        {
          host: '127.0.0.1',
          port: m.dockerPort!,
          method,
          path,
          ...m.context.admin,
          headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {},
        },
        (r) => {
          let b = '';
          r.on('data', (x: Buffer) => (b += x.toString()));
          r.on('end', () => res({ status: r.statusCode ?? 0, body: b ? JSON.parse(b) : null }));
        },
      );
      req.on('error', rej);
      req.end(data);
    });
  const filters = (f: unknown) => encodeURIComponent(JSON.stringify(f));

  it('filters dangling networks and prunes only those', async () => {
    assert.equal((await call('POST', '/networks/create', { Name: 'used', Driver: 'overlay' })).status, 201);
    assert.equal((await call('POST', '/networks/create', { Name: 'spare', Driver: 'overlay', Labels: { keep: 'no' } })).status, 201);
    assert.equal((await call('POST', '/networks/create', { Name: 'kept', Driver: 'overlay', Labels: { keep: 'yes' } })).status, 201);
    const svc = await call('POST', '/services/create', {
      Name: 'web',
      TaskTemplate: { ContainerSpec: { Image: 'busybox:1.36' }, Networks: [{ Target: 'used' }] },
    });
    assert.equal(svc.status, 201, JSON.stringify(svc.body));
    const names = (r: { body: { Name: string }[] }) => r.body.map((n) => n.Name).sort();
    assert.deepEqual(names(await call('GET', `/v1.47/networks?filters=${filters({ dangling: { true: true } })}`)), ['kept', 'spare']);
    assert.deepEqual(names(await call('GET', `/networks?filters=${filters({ dangling: ['false'] })}`)), ['ingress', 'used']);
    const pruned = await call('POST', `/v1.47/networks/prune?filters=${filters({ 'label!': { 'keep=yes': true } })}`);
    assert.equal(pruned.status, 200);
    assert.deepEqual(pruned.body, { NetworksDeleted: ['spare'] });
    assert.deepEqual(names(await call('GET', '/networks')), ['ingress', 'kept', 'used']);
    assert.equal((await call('POST', '/networks/prune?filters=%7Bbad')).status, 400);
  });

  it('answers container, image and swarm-membership calls as the engine does', async () => {
    const conn = await call('POST', '/v1.47/networks/used/connect', { Container: 'abc' });
    assert.deepEqual(conn, { status: 404, body: { message: 'No such container: abc' } });
    assert.equal((await call('POST', '/networks/nope/disconnect', { Container: 'abc' })).status, 404);
    assert.deepEqual(await call('GET', '/v1.47/images/shoal/box:1/json'), { status: 404, body: { message: 'No such image: shoal/box:1' } });
    for (const op of ['init', 'join']) {
      const r = await call('POST', `/v1.47/swarm/${op}`, {});
      assert.equal(r.status, 503);
      assert.match(r.body.message, /already part of a swarm/);
    }
    const leave = await call('POST', '/v1.47/swarm/leave?force=1');
    assert.equal(leave.status, 503);
    assert.match(leave.body.message, /local socket/);
  });

  it('round-trips Placement.Platforms and names Docker fields in 400s', async () => {
    const platforms = [{ Architecture: 'amd64', OS: 'linux' }, { OS: 'linux' }];
    const c = await call('POST', '/services/create', {
      Name: 'plat',
      TaskTemplate: { ContainerSpec: { Image: 'busybox:1.36' }, Placement: { Platforms: platforms } },
    });
    assert.equal(c.status, 201, JSON.stringify(c.body));
    assert.deepEqual((await call('GET', '/services/plat')).body.Spec.TaskTemplate.Placement.Platforms, platforms);
    const bad = await call('POST', '/services/create', {
      Name: 'plat2',
      TaskTemplate: { ContainerSpec: { Image: 'busybox:1.36' }, Placement: { Platforms: [{ Architecture: 'amd 64' }] } },
    });
    assert.equal(bad.status, 400);
    assert.match(bad.body.message, /^TaskTemplate\.Placement\.Platforms\[0\]\.Architecture must be a platform name/);
    const cur = (await call('GET', '/services/plat')).body;
    const upd = await call('POST', `/services/${cur.ID}/update?version=${cur.Version.Index}`, {
      ...cur.Spec,
      EndpointSpec: { Ports: [{ TargetPort: 80, PublishedPort: 70000 }] },
    });
    assert.equal(upd.status, 400);
    assert.match(upd.body.message, /^EndpointSpec\.Ports\[0\]\.PublishedPort /);
  });
});
