// `shoal stack` end to end, through the CLI, on a 3-manager + 2-worker lab running real containers: a
// stack with two networks, a named volume and a published port answers through the routing mesh on
// every host; an unchanged redeploy restarts nothing and a one-service change restarts only that
// service; --prune; a stack using secrets and configs (delivered, or refused with one clear line on a
// cluster without them); `stack rm` leaves nothing labelled behind; and the compose files shaped like
// the public "example voting app" and "atsea sample shop" stacks deploy unchanged once images are loaded
// under the names they use (`shoal image load --tag`).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildImage, busyboxLayer, demoWebImage } from '../../worker/images/build.ts';
import { ClusterLab, httpGet, waitFor } from '../../lab/cluster-lab.ts';
import { cleanupOnExit } from '../../lab/lab.ts';

const NAME = 'h10x';
const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const SHOAL = join(REPO, 'bin', 'shoal');
const CORPUS = join(REPO, 'test', 'stack', 'corpus');
const NS_LABEL = 'com.docker.stack.namespace';

/** The test's own stack: two networks, a named volume, a published port. `apiEnv` varies per deploy. */
function appFile(apiEnv: string, withApi = true): string {
  return `version: "3.8"
services:
  web:
    image: shoal/demo-web:1
    ports: ["8080:80"]
    networks: [front]
    deploy:
      replicas: 2
  cache:
    image: shoal/box:1
    networks: [back]
${
  withApi
    ? `  api:
    image: shoal/box:1
    environment:
      MODE: ${apiEnv}
    networks: [front, back]
    volumes:
      - data:/data
`
    : ''
}networks:
  front:
  back:
volumes:
  data:
`;
}

const SECRET_VALUE = 's3cret-h10-value';
const CONFIG_VALUE = 'listen=80\n';
const filesFile = `services:
  reader:
    image: shoal/box:1
    secrets:
      - source: token
        target: app_token
        mode: 0400
    configs:
      - source: settings
        target: /etc/app.conf
secrets:
  token:
    file: ./token.txt
configs:
  settings:
    file: ./app.conf
`;

describe('shoal stack on a 3+2 lab', { concurrency: false, timeout: 900_000 }, () => {
  let c: ClusterLab;
  let unhook: () => void = () => {};
  const tmp = mkdtempSync(join(tmpdir(), 'shoal-stack-'));

  const sh = (args: string[], input?: string) =>
    new Promise<{ code: number; out: string; err: string }>((res) => {
      const p = execFile(SHOAL, args, { env: { ...process.env, SHOAL_CONTEXT: c.contextPath }, timeout: 240_000, cwd: tmp }, (e, out, err) =>
        res({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out: String(out), err: String(err) }),
      );
      if (input !== undefined) p.stdin!.end(input);
    });
  const ok = async (args: string[], input?: string) => {
    const r = await sh(args, input);
    assert.equal(r.code, 0, `shoal ${args.join(' ')}: ${r.err}${r.out}`);
    return r;
  };
  const services = async () => (await c.control('GET', '/v1/services')) as any[];
  const labelled = async (ns: string) => {
    const has = (o: any) => o.spec?.labels?.[NS_LABEL] === ns;
    const list = async (p: string) => ((await c.control('GET', p).catch(() => [])) as any[]).filter(has).map((o) => o.spec.name as string);
    return {
      services: await list('/v1/services'),
      networks: await list('/v1/networks'),
      secrets: await list('/v1/secrets'),
      configs: await list('/v1/configs'),
    };
  };
  /** Ids of the running tasks of a service, sorted. */
  const running = async (svc: string) =>
    ((await c.control('GET', `/v1/tasks?service=${svc}`)) as any[])
      .filter((t) => t.status.state === 'running' && t.desiredState === 'running')
      .map((t) => t.id as string)
      .sort();
  const converged = (svc: string, n: number) => waitFor(async () => (await running(svc)).length === n, 90_000, `${svc} runs ${n} task(s)`, 250);
  const hasSecretApi = async () => {
    try {
      await c.control('GET', '/v1/secrets');
      return true;
    } catch (e) {
      if (/no endpoint/.test((e as Error).message)) return false;
      throw e;
    }
  };

  before(async () => {
    unhook = cleanupOnExit(NAME);
    c = await ClusterLab.up({ name: NAME, managers: 3, workers: 2, executor: 'engine' });
    await c.waitReady(5, 60_000);
    writeFileSync(join(tmp, 'web.tar'), demoWebImage('shoal/demo-web:1').archive);
    writeFileSync(
      join(tmp, 'box.tar'),
      buildImage({ name: 'shoal/box:1', layers: [busyboxLayer()], cmd: ['/bin/sh', '-c', 'trap "exit 0" TERM; sleep 100000 & wait'] }).archive,
    );
    const load = (archive: string, tag: string) => ok(['image', 'load', '--state-dir', c.stateDir('h1'), '--tag', tag, join(tmp, archive)]);
    await load('web.tar', 'shoal/demo-web:1');
    await load('box.tar', 'shoal/box:1');
  });

  after(async () => {
    await c?.down();
    unhook();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('deploys two networks, a volume and a published port; the mesh answers on every host', async () => {
    writeFileSync(join(tmp, 'app.yml'), appFile('one'));
    const r = await ok(['stack', 'deploy', '-c', 'app.yml', 'app']);
    assert.match(r.out, /^Creating network app_back$/m);
    assert.match(r.out, /^Creating network app_front$/m);
    assert.match(r.out, /^Creating service app_web$/m);
    assert.deepEqual(await labelled('app').then((l) => [l.services.sort(), l.networks.sort()]), [
      ['app_api', 'app_cache', 'app_web'],
      ['app_back', 'app_front'],
    ]);
    // deploy waited for convergence
    assert.equal((await running('app_web')).length, 2);
    for (const h of c.lab.hosts) await waitFor(async () => /Hello from/.test((await httpGet(h.ip!, 8080)) ?? ''), 20_000, `mesh on ${h.name}:8080`);
    const api = (await services()).find((s) => s.spec.name === 'app_api');
    assert.deepEqual(api.spec.task.mounts, [{ type: 'volume', source: 'app_data', target: '/data' }]);
    assert.deepEqual(
      api.spec.networks.map((n: any) => n.target),
      ['app_back', 'app_front'],
    );

    const ls = await ok(['stack', 'ls']);
    assert.match(ls.out, /^NAME\s+SERVICES$/m);
    assert.match(ls.out, /^app\s+3$/m);
    const svcs = await ok(['stack', 'services', 'app']);
    assert.match(svcs.out, /^ID\s+NAME\s+MODE\s+REPLICAS\s+IMAGE\s+PORTS$/m);
    assert.match(svcs.out, /app_web\s+replicated\s+2\/2\s+shoal\/demo-web:1\S*\s+\*:8080->80\/tcp/);
    assert.equal((await ok(['stack', 'services', '-q', 'app'])).out.trim().split('\n').length, 3);
    const ps = await ok(['stack', 'ps', 'app']);
    assert.match(ps.out, /^ID\s+NAME\s+IMAGE\s+NODE\s+DESIRED STATE\s+CURRENT STATE\s+ERROR\s+PORTS$/m);
    assert.match(ps.out, /app_web\.1\s+shoal\/demo-web:1\s+h\d\s+Running\s+Running/);
    const nothing = await sh(['stack', 'ps', 'nosuch']);
    assert.equal(nothing.code, 0);
    assert.match(nothing.err, /Nothing found in stack: nosuch/);
  });

  it('an unchanged redeploy restarts no task; changing one env restarts only that service', async () => {
    const before = { web: await running('app_web'), cache: await running('app_cache'), api: await running('app_api') };
    const again = await ok(['stack', 'deploy', '-c', 'app.yml', 'app']);
    assert.doesNotMatch(again.out, /Creating|Updating/, 'nothing to do');
    assert.deepEqual({ web: await running('app_web'), cache: await running('app_cache'), api: await running('app_api') }, before);

    writeFileSync(join(tmp, 'app.yml'), appFile('two'));
    const r = await ok(['stack', 'deploy', '-c', 'app.yml', 'app']);
    assert.match(r.out, /^Updating service app_api \(id: \w+\)$/m);
    assert.doesNotMatch(r.out, /app_web|app_cache/);
    await converged('app_api', 1);
    assert.notDeepEqual(await running('app_api'), before.api, 'api restarted');
    assert.deepEqual(await running('app_web'), before.web, 'web kept its tasks');
    assert.deepEqual(await running('app_cache'), before.cache, 'cache kept its tasks');
    const api = (await services()).find((s) => s.spec.name === 'app_api');
    assert.deepEqual(api.spec.task.env, ['MODE=two']);
  });

  it('reads the file from stdin; --prune removes services no longer in the file, and only with it', async () => {
    const without = appFile('two', false);
    await ok(['stack', 'deploy', '-c', '-', 'app'], without);
    assert.ok((await labelled('app')).services.includes('app_api'), 'kept without --prune');
    const r = await ok(['stack', 'deploy', '--prune', '-c', '-', 'app'], without);
    assert.match(r.out, /^Removing service app_api$/m);
    assert.deepEqual((await labelled('app')).services.sort(), ['app_cache', 'app_web']);
  });

  it('a deploy cut short half-way finishes when run again', async () => {
    const file = `services:\n  first:\n    image: shoal/box:1\n  second:\n    image: shoal/later:1\nnetworks:\n  default:\n`;
    writeFileSync(join(tmp, 'half.yml'), file);
    // No manager has shoal/later:1 yet: the network and the first service are created, the second refused.
    const r = await sh(['stack', 'deploy', '-c', 'half.yml', 'half']);
    assert.equal(r.code, 1);
    assert.match(r.err, /shoal\/later:1/);
    assert.deepEqual((await labelled('half')).services, ['half_first']);
    await ok(['image', 'load', '--state-dir', c.stateDir('h1'), '--tag', 'shoal/later:1', join(tmp, 'box.tar')]);
    // Its task must be running before we note it (under load it may still be starting).
    await converged('half_first', 1);
    const first = await running('half_first');
    const again = await ok(['stack', 'deploy', '-c', 'half.yml', 'half']);
    assert.match(again.out, /^Creating service half_second$/m);
    assert.doesNotMatch(again.out, /half_first|Creating network/, 'what exists is left alone');
    assert.deepEqual(await running('half_first'), first);
    assert.equal((await running('half_second')).length, 1);
    await ok(['stack', 'rm', 'half']);
  });

  it('a stack with a secret and a config: delivered to the task, or refused with one line', async () => {
    writeFileSync(join(tmp, 'token.txt'), SECRET_VALUE);
    writeFileSync(join(tmp, 'app.conf'), CONFIG_VALUE);
    writeFileSync(join(tmp, 'files.yml'), filesFile);
    if (!(await hasSecretApi())) {
      const r = await sh(['stack', 'deploy', '-c', 'files.yml', 'files']);
      assert.equal(r.code, 1);
      assert.equal(r.err.trim(), 'shoal: secrets are not supported by this cluster yet');
      assert.deepEqual(await labelled('files'), { services: [], networks: [], secrets: [], configs: [] }, 'nothing created');
      console.log('# this cluster has no secret/config API yet: the refusal was checked instead');
      return;
    }
    await ok(['stack', 'deploy', '-c', 'files.yml', 'files']);
    const l = await labelled('files');
    assert.deepEqual([l.secrets, l.configs], [['files_token'], ['files_settings']]);
    const t = (await running('files_reader'))[0]!;
    await waitFor(
      async () => (await sh(['task', 'exec', t, '--', 'cat', '/run/secrets/app_token'])).out === SECRET_VALUE,
      20_000,
      'secret readable in the task',
    );
    assert.equal((await ok(['task', 'exec', t, '--', 'cat', '/etc/app.conf'])).out, CONFIG_VALUE);
    // The stack's secret cannot be removed while its service uses it.
    await assert.rejects(c.control('DELETE', '/v1/secrets/files_token'), /files_reader/);
    // A redeploy of the same files changes nothing.
    const again = await ok(['stack', 'deploy', '-c', 'files.yml', 'files']);
    assert.doesNotMatch(again.out, /Creating|Updating/);
    assert.deepEqual(await running('files_reader'), [t]);
  });

  it('stack rm removes services, networks, secrets and configs of the stack and nothing else', async () => {
    // An object outside the stack with a similar name must survive.
    await ok(['network', 'create', 'app_outside']);
    const ids = new Set((await services()).filter((s) => ['app', 'files'].includes(s.spec.labels?.[NS_LABEL])).map((s) => s.id as string));
    assert.ok(ids.size >= 2);
    const r = await ok(['stack', 'rm', 'app', 'files']);
    assert.match(r.out, /^Removing service app_web$/m);
    assert.match(r.out, /^Removing network app_front$/m);
    for (const ns of ['app', 'files']) assert.deepEqual(await labelled(ns), { services: [], networks: [], secrets: [], configs: [] }, `nothing of ${ns} left`);
    // stack rm returned only once the tasks had stopped
    assert.deepEqual(
      ((await c.control('GET', '/v1/tasks')) as any[]).filter((t) => ids.has(t.serviceId)),
      [],
    );
    assert.ok(((await c.control('GET', '/v1/networks')) as any[]).some((n) => n.spec.name === 'app_outside'));
    assert.match((await ok(['stack', 'ls'])).out.trim(), /^NAME\s+SERVICES$/);
    const again = await sh(['stack', 'rm', 'app']);
    assert.equal(again.code, 0);
    assert.match(again.err, /Nothing found in stack: app/);
  });

  it('the example voting app stack deploys unchanged; every service runs; port 5000 answers on every host', async () => {
    // Stand-ins under the names the file uses: the web services serve HTTP on :80, the rest stay up.
    for (const tag of ['dockersamples/examplevotingapp_vote:latest', 'dockersamples/examplevotingapp_result:latest']) {
      await ok(['image', 'load', '--state-dir', c.stateDir('h1'), '--tag', tag, join(tmp, 'web.tar')]);
    }
    for (const tag of ['redis:alpine', 'postgres:15-alpine', 'dockersamples/examplevotingapp_worker:latest']) {
      await ok(['image', 'load', '--state-dir', c.stateDir('h1'), '--tag', tag, join(tmp, 'box.tar')]);
    }
    const r = await ok(['stack', 'deploy', '-c', join(CORPUS, 'voting-app.yml'), 'vote']);
    assert.match(r.err, /depends_on/, "the ignored option's warning is on stderr");
    const names = (await labelled('vote')).services.sort();
    assert.deepEqual(names, ['vote_db', 'vote_redis', 'vote_result', 'vote_vote', 'vote_worker']);
    for (const [svc, n] of [
      ['vote_vote', 2],
      ['vote_result', 1],
      ['vote_redis', 1],
      ['vote_db', 1],
      ['vote_worker', 1],
    ] as const)
      await converged(svc, n);
    for (const h of c.lab.hosts) await waitFor(async () => /Hello from/.test((await httpGet(h.ip!, 5000)) ?? ''), 20_000, `vote on ${h.name}:5000`);
    // db and worker are placed on managers, as the file says.
    const nodes = await c.nodes();
    for (const svc of ['vote_db', 'vote_worker']) {
      const t = ((await c.control('GET', `/v1/tasks?service=${svc}`)) as any[]).find((x) => x.status.state === 'running');
      assert.equal(nodes.find((n) => n.id === t.nodeId).spec.role, 'manager', `${svc} on a manager`);
    }
    await ok(['stack', 'rm', 'vote']);
    assert.deepEqual(await labelled('vote'), { services: [], networks: [], secrets: [], configs: [] });
  });

  it('the atsea sample shop stack deploys unchanged (secrets, an encrypted network, placement)', async () => {
    const file = join(CORPUS, 'atsea', 'docker-stack.yml');
    if (!(await hasSecretApi())) {
      const r = await sh(['stack', 'deploy', '-c', file, 'atsea']);
      assert.equal(r.code, 1);
      assert.match(r.err, /^shoal: secrets are not supported by this cluster yet$/m);
      assert.deepEqual(await labelled('atsea'), { services: [], networks: [], secrets: [], configs: [] });
      console.log('# atsea needs secrets: refused with one line on this cluster');
      return;
    }
    // What the shop's instructions have the operator do first: the external TLS secrets, the PCI label.
    for (const s of ['revprox_cert', 'revprox_key'])
      await c.control('POST', '/v1/secrets', { name: s, labels: {}, data: Buffer.from(`${s}-pem`).toString('base64') });
    const worker = (await c.nodes()).find((n) => n.spec.role === 'worker');
    await ok(['node', 'update', '--label-add', 'pcidss=yes', worker.id]);
    for (const tag of [
      'dockersamples/atseasampleshopapp_reverse_proxy',
      'dockersamples/atsea_db',
      'dockersamples/atsea_app',
      'dockersamples/atseasampleshopapp_payment_gateway',
    ]) {
      await ok(['image', 'load', '--state-dir', c.stateDir('h1'), '--tag', tag, join(tmp, 'box.tar')]);
    }
    const r = await ok(['stack', 'deploy', '-c', file, 'atsea']);
    assert.match(r.err, /encrypted/, 'the encrypted network is reported as not honoured');
    for (const [svc, n] of [
      ['atsea_reverse_proxy', 1],
      ['atsea_database', 1],
      ['atsea_appserver', 2],
      ['atsea_payment_gateway', 1],
    ] as const)
      await converged(svc, n);
    const pg = ((await c.control('GET', '/v1/tasks?service=atsea_payment_gateway')) as any[]).find((x) => x.status.state === 'running');
    assert.equal(pg.nodeId, worker.id, 'payment gateway on the PCI node');
    await ok(['stack', 'rm', 'atsea']);
    assert.deepEqual(await labelled('atsea'), { services: [], networks: [], secrets: [], configs: [] });
    assert.equal(((await c.control('GET', '/v1/secrets')) as any[]).filter((s) => s.spec.name.startsWith('revprox_')).length, 2, 'external secrets stay');
  });
});
