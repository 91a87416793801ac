// dockerode 5 (a dev dependency) against the facade, as a Node script would use it: unversioned
// paths, ping/version/info, list nodes and services, create a service, update it with the version it
// read (dockerode sends the options as query AND body: unknown fields must be ignored), a stale
// version refused, tasks listed by service, events, and logs demultiplexed with modem.demuxStream.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
// @ts-expect-error dockerode ships no types (and @types/dockerode is not a dependency)
import Docker from 'dockerode';
import { OneManager } from './harness.ts';
import { logsServer } from './fixtures.ts';

describe('dockerode against a Shoal manager', () => {
  const m = new OneManager();
  let docker: any;
  before(async () => {
    await m.start();
    docker = new Docker({ socketPath: m.socket });
  });
  after(async () => m.stop());

  it('pings, and reads version and info', async () => {
    assert.equal(String(await docker.ping()), 'OK');
    assert.equal((await docker.version()).ApiVersion, '1.47');
    const info = await docker.info();
    assert.equal(info.Swarm.LocalNodeState, 'active');
    assert.equal(info.Swarm.ControlAvailable, true);
  });

  it('creates a service, lists it, updates it with the version read and refuses a stale one', async () => {
    const created = await docker.createService({
      Name: 'dk',
      TaskTemplate: { ContainerSpec: { Image: 'busybox:1.36' } },
      Mode: { Replicated: { Replicas: 1 } },
    });
    assert.match(created.id ?? created.ID, /^[0-9a-z]{25}$/);
    const list = await docker.listServices({ filters: { name: ['dk'] } });
    assert.equal(list.length, 1);
    // The allocator writes the new service's endpoint status once, just after the create, which moves
    // its version (as Swarm's allocator does). Read it for the update after that write, or the update
    // races it: on a busy machine it came between the inspect and the update (409).
    const store = m.daemon.manager!.store;
    const deadline = Date.now() + 10_000;
    while ((store.view((tx) => tx.list('service').find((x) => x.spec.name === 'dk'))?.status.endpoint ?? null) === null) {
      if (Date.now() > deadline) throw new Error('the allocator never allocated service dk');
      await new Promise((r) => setTimeout(r, 5));
    }
    const svc = docker.getService('dk');
    const cur = await svc.inspect();
    const spec = { ...cur.Spec, Mode: { Replicated: { Replicas: 2 } } };
    await svc.update({ version: cur.Version.Index, ...spec });
    const now = await svc.inspect();
    assert.equal(now.Spec.Mode.Replicated.Replicas, 2);
    await assert.rejects(
      svc.update({ version: cur.Version.Index, ...spec }),
      (e: any) => e.statusCode === 409 && /update out of sequence/.test(e.json?.message ?? e.message),
    );
    const tasks = await docker.listTasks({ filters: { service: ['dk'] } });
    assert.ok(tasks.length >= 1);
    assert.equal((await docker.listNodes()).length, 1);
    await svc.remove();
    assert.equal((await docker.listServices()).length, 0);
  });

  it('reads events with getEvents (since/until, filters)', async () => {
    const since = Date.now() / 1000;
    await docker.createService({ Name: 'evd', TaskTemplate: { ContainerSpec: { Image: 'busybox:1.36' } } });
    await docker.getService('evd').remove();
    const stream = await docker.getEvents({ since, until: Date.now() / 1000 + 1, filters: { type: ['service'] } });
    let text = '';
    for await (const c of stream) text += c.toString();
    const events = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((e) => e.Actor.Attributes.name === 'evd');
    assert.deepEqual(
      events.map((e) => e.Action),
      ['create', 'remove'],
    );
    assert.equal(events[0].scope, 'swarm');
  });
});

describe('dockerode reads demultiplexed service logs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-dockerode-'));
  const server = logsServer(join(dir, 'docker.sock'), () => {});
  before(async () => server.start());
  after(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('splits stdout from stderr with modem.demuxStream', async () => {
    const docker = new Docker({ socketPath: join(dir, 'docker.sock') });
    const stream = await docker.getService('web').logs({ stdout: true, stderr: true, follow: true, details: true });
    const out = new PassThrough();
    const err = new PassThrough();
    let o = '';
    let e = '';
    out.on('data', (c: Buffer) => (o += c.toString()));
    err.on('data', (c: Buffer) => (e += c.toString()));
    docker.modem.demuxStream(stream, out, err);
    await new Promise((r) => stream.on('end', r));
    assert.match(o, /com\.docker\.swarm\.task\.id=task00000000000000000000a1 hello from 1\n/);
    assert.match(e, /^com\.docker\.swarm\.node\.id=\S+ oops from 2\n$/);
  });
});
