// The docker CLI's everyday commands against a Shoal lab (lab dkcli: 3 managers + 2 workers, real
// containers), over TCP 2376 with the admin certificate, set up as a user would: `shoal context
// docker` writes the PEM files and a docker context; most commands go through that context (the
// first manager), writes that must be forwarded go through a FOLLOWER by the DOCKER_* variables.
// Each test asserts what the CLI prints AND what the cluster holds (the control API), for nodes
// (promote/demote, drain/active, labels), services (scale, update --image, rollback, --replicas/
// --env-add/--publish-add, logs, ps --no-trunc, docker inspect on service/node/task), overlay
// networks, secrets and configs (stdin and file, seen inside the task), a public-style stack file
// (networks, secrets, configs, replicas, update_config, placement, healthcheck), Placement.Platforms,
// and the error paths docker users know (404 → "not found", 409 name conflicts, 400 naming the field).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildImage, busyboxLayer } from '../../worker/images/build.ts';
import { ClusterLab, waitFor } from '../../lab/cluster-lab.ts';
import { cleanupOnExit } from '../../lab/lab.ts';

const NAME = 'dkcli';
const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const SHOAL = join(REPO, 'bin', 'shoal');
const CTX = 'dk-lab';

interface Run {
  code: number;
  out: string;
  err: string;
}

function run(cmd: string, args: string[], env: Record<string, string>, o: { timeoutMs?: number; input?: string; cwd?: string } = {}): Promise<Run> {
  return new Promise((res) => {
    const p = execFile(
      cmd,
      args,
      { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, timeout: o.timeoutMs ?? 180_000, maxBuffer: 16 << 20, cwd: o.cwd },
      (e, out, err) => res({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, out, err }),
    );
    p.stdin?.end(o.input ?? '');
  });
}

const docker = await run('docker', ['--version'], {});
const skip = docker.code !== 0 ? 'the docker CLI is not on PATH (the machine image ships docker 28.2.2)' : process.getuid?.() !== 0 ? 'labs need root' : false;

/** An image that prints one line naming its version, then waits to be stopped. */
function boxImage(name: string, version: string): Buffer {
  return buildImage({
    name,
    layers: [busyboxLayer()],
    cmd: ['/bin/sh', '-c', `echo "${version} from $(hostname) DK=$DK"; trap "exit 0" TERM; sleep 100000 & wait`],
  }).archive;
}

const STACK_SECRET = 'stack-secret-0f3a';
const STACK_CONFIG = 'mode=prod\n';
/** A stack file in the style of the public samples (atsea, voting app), offline images. */
const STACK_FILE = `version: "3.8"
services:
  web:
    image: shoal/box:1
    environment:
      ROLE: web
    networks:
      - front
      - back
    secrets:
      - app_pw
    configs:
      - source: app_conf
        target: /etc/app.conf
        mode: 0440
    healthcheck:
      test: ["CMD-SHELL", "test -f /run/secrets/app_pw"]
      interval: 2s
      timeout: 2s
      retries: 3
      start_period: 1s
    deploy:
      replicas: 2
      update_config:
        parallelism: 1
        delay: 1s
        order: start-first
        failure_action: rollback
      restart_policy:
        condition: on-failure
        delay: 2s
        max_attempts: 3
      placement:
        constraints:
          - node.role == worker
        max_replicas_per_node: 1
      labels:
        tier: front
  db:
    image: shoal/box:1
    networks:
      - back
    secrets:
      - source: app_pw
        target: db_password
        uid: "0"
        gid: "0"
        mode: 0400
    deploy:
      replicas: 1
      placement:
        constraints:
          - node.labels.dk.db == yes
networks:
  front:
    driver: overlay
    attachable: true
  back:
    driver: overlay
secrets:
  app_pw:
    file: ./app_pw.txt
configs:
  app_conf:
    file: ./app.conf
`;

/** Control API JSON, read field by field. */
type J = any;

describe('docker CLI commands on a Shoal 3+2 lab', { skip, concurrency: false, timeout: 1_500_000 }, () => {
  let c: ClusterLab;
  let unhook = () => {};
  const tmp = mkdtempSync(join(tmpdir(), 'shoal-dkcli-'));
  const certs = join(tmp, 'certs');
  const base = { HOME: tmp, DOCKER_CONFIG: join(tmp, 'docker-config') };
  let follower: Record<string, string> = {};
  let followerIp = '';
  let admin: { ca: string; cert: string; key: string };

  /** docker through the context `shoal context docker` created. */
  const dk = (args: string[], o: { input?: string; timeoutMs?: number } = {}) => run('docker', ['--context', CTX, ...args], base, { ...o, cwd: tmp });
  /** docker through a follower, by the DOCKER_* variables. */
  const dkf = (args: string[], o: { input?: string; timeoutMs?: number } = {}) => run('docker', args, follower, { ...o, cwd: tmp });
  const must = (r: Run, what: string): string => {
    assert.equal(r.code, 0, `docker ${what} failed (${r.code}):\n${r.out}${r.err}`);
    return r.out;
  };
  const ok = async (args: string[], o?: { input?: string; timeoutMs?: number }) => must(await dk(args, o), args.join(' '));
  const okf = async (args: string[], o?: { input?: string; timeoutMs?: number }) => must(await dkf(args, o), args.join(' '));
  const fails = async (args: string[], o?: { input?: string }) => {
    const r = await dk(args, o);
    assert.notEqual(r.code, 0, `docker ${args.join(' ')} should fail:\n${r.out}`);
    return r.err;
  };
  const sh = (args: string[]) => run(SHOAL, args, { ...base, SHOAL_CONTEXT: c.contextPath });
  const ctl = (method: string, path: string, body?: unknown): Promise<J> => c.control(method, path, body);
  const svc = async (name: string): Promise<J> => ((await ctl('GET', '/v1/services')) as J[]).find((s) => s.spec.name === name);
  const nodeByHost = async (host: string): Promise<J> => ((await c.nodes()) as J[]).find((n) => n.description?.hostname === host);
  /** Running tasks (desired and observed) of a service, by name. */
  const running = async (name: string): Promise<J[]> => {
    const s = await svc(name);
    if (!s) return [];
    return ((await ctl('GET', `/v1/tasks?service=${s.id}`)) as J[]).filter((t) => t.status.state === 'running' && t.desiredState === 'running');
  };
  const converged = (name: string, n: number, ms = 120_000) => waitFor(async () => (await running(name)).length === n, ms, `${name} runs ${n} task(s)`, 250);
  /** A raw Engine API call over 2376 to the follower (status codes the CLI hides). */
  const raw = (method: string, path: string, body?: unknown): Promise<{ status: number; body: J }> =>
    new Promise((res, rej) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        {
          host: followerIp,
          port: 2376,
          method,
          path,
          ca: admin.ca,
          cert: admin.cert,
          key: admin.key,
          headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {},
        },
        (r) => {
          let b = '';
          r.on('data', (x: Buffer) => (b += x.toString()));
          r.on('end', () => {
            let parsed: J = b;
            try {
              parsed = b ? JSON.parse(b) : null;
            } catch {
              // not JSON
            }
            res({ status: r.statusCode ?? 0, body: parsed });
          });
        },
      );
      req.on('error', rej);
      req.end(data);
    });

  before(async () => {
    unhook = cleanupOnExit(NAME);
    c = await ClusterLab.up({ name: NAME, managers: 3, workers: 2, executor: 'engine' });
    await c.waitReady(5, 90_000);
    writeFileSync(join(tmp, 'v1.tar'), boxImage('shoal/box:1', 'v1'));
    writeFileSync(join(tmp, 'v2.tar'), boxImage('shoal/box:2', 'v2'));
    for (const h of ['h1', 'h2', 'h3']) {
      for (const [file, tag] of [
        ['v1.tar', 'shoal/box:1'],
        ['v2.tar', 'shoal/box:2'],
      ] as const) {
        const r = await run(SHOAL, ['image', 'load', '--state-dir', c.stateDir(h), '--tag', tag, join(tmp, file)], base);
        assert.equal(r.code, 0, r.err);
      }
    }
    // As a user would: the context command writes the certificates and the docker context.
    const r = await run(SHOAL, ['context', 'docker', '--context', c.contextPath, '--dir', certs, '--name', CTX], base);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, new RegExp(`docker context ${CTX} created`));
    admin = c.ctx.admin;
    const info = await ctl('GET', '/v1/info');
    const fh = ['h1', 'h2', 'h3'].find((h) => c.daemons.get(h)?.nodeId !== info.leader)!;
    followerIp = c.host(fh).ip!;
    follower = { ...base, DOCKER_HOST: `tcp://${followerIp}:2376`, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certs };
  });

  after(async () => {
    await c?.down();
    for (const ns of (await run('ip', ['netns', 'list'], {})).out.split('\n').map((l) => l.split(' ')[0] ?? '')) {
      if (ns.startsWith(`sl-${NAME}-`)) await run('ip', ['netns', 'delete', ns], {});
    }
    unhook();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('reaches every node through the context and through a follower', async () => {
    const ls = await ok(['node', 'ls', '--format', '{{.Hostname}} {{.Status}} {{.Availability}} {{.ManagerStatus}}']);
    const rows = ls.replace(/\n$/, '').split('\n');
    assert.deepEqual(
      rows.sort(),
      [...rows.filter((l) => /^h[123] Ready Active (Leader|Reachable)$/.test(l)).sort(), 'h4 Ready Active ', 'h5 Ready Active '].sort(),
    );
    assert.equal((await okf(['info', '--format', '{{.Swarm.Nodes}} {{.Swarm.Managers}} {{.Swarm.ControlAvailable}}'])).trim(), '5 3 true');
  });

  it('promotes and demotes a worker, drains it and labels it (node update)', async () => {
    const h4 = await nodeByHost('h4');
    assert.match(await okf(['node', 'promote', 'h4']), /Node h4 promoted to a manager in the swarm\./);
    await waitFor(async () => (await nodeByHost('h4'))?.managerStatus?.reachability === 'reachable', 120_000, 'h4 a reachable manager', 500);
    assert.equal((await nodeByHost('h4')).spec.role, 'manager');
    assert.match(await ok(['node', 'ls', '--filter', 'role=manager', '--format', '{{.Hostname}}']), /^h4$/m);
    assert.match(await okf(['node', 'demote', 'h4']), /Manager h4 demoted in the swarm\./);
    await waitFor(async () => (await nodeByHost('h4'))?.spec.role === 'worker' && !(await nodeByHost('h4'))?.managerStatus, 120_000, 'h4 a worker', 500);
    assert.match(await ok(['node', 'ls', '--filter', 'role=worker', '--format', '{{.Hostname}}']), /^h4$/m);

    assert.equal((await okf(['node', 'update', '--availability', 'drain', '--label-add', 'dk.db=yes', '--label-add', 'zone=b', 'h5'])).trim(), 'h5');
    let h5 = await nodeByHost('h5');
    assert.equal(h5.spec.availability, 'drain');
    assert.deepEqual(h5.spec.labels, { 'dk.db': 'yes', zone: 'b' });
    assert.equal((await ok(['node', 'inspect', 'h5', '--format', '{{.Spec.Availability}} {{index .Spec.Labels "zone"}}'])).trim(), 'drain b');
    await okf(['node', 'update', '--availability', 'active', '--label-rm', 'zone', 'h5']);
    h5 = await nodeByHost('h5');
    assert.equal(h5.spec.availability, 'active');
    assert.deepEqual(h5.spec.labels, { 'dk.db': 'yes' });
    assert.equal(h4.id, (await nodeByHost('h4')).id, 'the same node throughout');

    // Wrong input: the node does not exist; an availability Docker does not know (the CLI's own check).
    assert.match(await fails(['node', 'promote', 'nosuch']), /Error response from daemon: node nosuch not found/);
    assert.match(await fails(['node', 'update', '--availability', 'drain', 'nosuch']), /node nosuch not found/);
    assert.match(await fails(['node', 'update', '--availability', 'sleepy', 'h5']), /invalid argument "sleepy"|sleepy/);
    assert.equal((await nodeByHost('h5')).spec.availability, 'active');
  });

  it('creates, lists, inspects and removes an attachable overlay network', async () => {
    const id = (await okf(['network', 'create', '-d', 'overlay', '--attachable', '--label', 'team=dk', 'dk-net'])).trim();
    assert.match(id, /^[0-9a-z]{25}$/);
    const net = ((await ctl('GET', '/v1/networks')) as J[]).find((n) => n.spec.name === 'dk-net');
    assert.equal(net.id, id);
    assert.equal(net.spec.attachable, true);
    assert.equal(net.spec.driver, 'overlay');
    assert.match(await ok(['network', 'ls', '--filter', 'driver=overlay', '--format', '{{.Name}} {{.Driver}} {{.Scope}}']), /^dk-net overlay swarm$/m);
    assert.equal((await ok(['network', 'ls', '-q', '--filter', 'label=team=dk'])).trim(), id.slice(0, 12));
    const inspect = JSON.parse(await ok(['network', 'inspect', 'dk-net']))[0];
    assert.equal(inspect.Id, id);
    assert.equal(inspect.Attachable, true);
    assert.equal(inspect.Scope, 'swarm');
    assert.match(inspect.IPAM.Config[0].Subnet, /^\d+\.\d+\.\d+\.\d+\/\d+$/);
    assert.deepEqual(inspect.Labels, { team: 'dk' });

    assert.match(await fails(['network', 'create', '-d', 'overlay', 'dk-net']), /Error response from daemon: network name dk-net is already in use/);
    assert.match(await fails(['network', 'create', '-d', 'bridge', 'dk-br']), /Error response from daemon: .*driver bridge is not supported/);
    assert.equal(((await ctl('GET', '/v1/networks')) as J[]).filter((n) => n.spec.name.startsWith('dk-')).length, 1);
    assert.equal((await okf(['network', 'rm', 'dk-net'])).trim(), 'dk-net');
    assert.equal(
      ((await ctl('GET', '/v1/networks')) as J[]).find((n) => n.spec.name === 'dk-net'),
      undefined,
    );
    assert.match(await fails(['network', 'inspect', 'dk-net']), /network dk-net not found/);
    assert.match(await fails(['network', 'rm', 'dk-net']), /network dk-net not found/);

    // Portainer and scripts: dangling networks, prune (never ingress), connect (a manager runs no containers).
    const spare = (await okf(['network', 'create', '-d', 'overlay', 'dk-spare'])).trim();
    assert.equal((await ok(['network', 'ls', '-q', '--filter', 'dangling=true'])).trim(), spare.slice(0, 12));
    assert.match(await fails(['network', 'connect', 'dk-spare', 'some-container']), /No such container: some-container/);
    assert.match(await okf(['network', 'prune', '-f']), /^Deleted Networks:\ndk-spare$/m);
    const left = ((await ctl('GET', '/v1/networks')) as J[]).map((n) => n.spec.name);
    assert.deepEqual(left, ['ingress']);
  });

  it('creates secrets and configs from stdin and files; a service reads them; in use they stay', async () => {
    writeFileSync(join(tmp, 'key.txt'), 'file-secret-9c1\n');
    writeFileSync(join(tmp, 'dk.conf'), 'listen=8080\n');
    const pw = (await okf(['secret', 'create', '--label', 'team=dk', 'dk_pw', '-'], { input: 'stdin-secret-7b2' })).trim();
    assert.match(pw, /^[0-9a-z]{25}$/);
    await okf(['secret', 'create', 'dk_key', join(tmp, 'key.txt')]);
    await okf(['config', 'create', 'dk_conf', join(tmp, 'dk.conf')]);
    await okf(['config', 'create', 'dk_conf2', '-'], { input: 'from-stdin\n' });
    assert.deepEqual(
      ((await ctl('GET', '/v1/secrets')) as J[])
        .map((s) => s.spec.name)
        .filter((n) => n.startsWith('dk_'))
        .sort(),
      ['dk_key', 'dk_pw'],
    );
    assert.match(await ok(['secret', 'ls', '--format', '{{.Name}}']), /^dk_key$[\s\S]*^dk_pw$/m);
    assert.match(await ok(['config', 'ls', '--format', '{{.Name}}']), /^dk_conf$\n^dk_conf2$/m);
    const sec = JSON.parse(await ok(['secret', 'inspect', 'dk_pw']))[0];
    assert.equal(sec.ID, pw);
    assert.deepEqual(sec.Spec.Labels, { team: 'dk' });
    assert.equal(sec.Spec.Data, undefined, 'a secret never shows its data');
    assert.equal((await ok(['config', 'inspect', 'dk_conf', '--format', '{{printf "%s" .Spec.Data}}'])).trim(), 'listen=8080');
    assert.match(await fails(['secret', 'create', 'dk_pw', '-'], { input: 'again' }), /Error response from daemon: secret name dk_pw is already in use/);
    assert.match(await fails(['secret', 'inspect', 'dk_nope']), /secret dk_nope not found/);
    assert.match(await fails(['config', 'rm', 'dk_nope']), /config dk_nope not found/);

    const created = await dkf(
      [
        'service',
        'create',
        '--name',
        'dk-files',
        '--secret',
        'dk_pw',
        '--secret',
        'source=dk_key,target=key.txt,mode=0400',
        '--config',
        'source=dk_conf,target=/etc/dk.conf',
        'shoal/box:1',
      ],
      { timeoutMs: 240_000 },
    );
    assert.equal(created.code, 0, created.out + created.err);
    assert.match(created.out, /converged/);
    const [t] = await running('dk-files');
    assert.ok(t, 'a running task');
    const cat = await sh([
      'task',
      'exec',
      t.id,
      '--',
      'sh',
      '-c',
      'cat /run/secrets/dk_pw; echo; cat /run/secrets/key.txt; stat -c %a /run/secrets/key.txt; cat /etc/dk.conf',
    ]);
    assert.equal(cat.code, 0, cat.err);
    assert.equal(cat.out, 'stdin-secret-7b2\nfile-secret-9c1\n400\nlisten=8080\n');
    assert.match(await fails(['secret', 'rm', 'dk_pw']), /dk_pw.*in use|in use.*dk-files/);
    assert.ok(
      ((await ctl('GET', '/v1/secrets')) as J[]).some((s) => s.spec.name === 'dk_pw'),
      'still there',
    );

    await okf(['service', 'rm', 'dk-files']);
    assert.deepEqual((await okf(['secret', 'rm', 'dk_pw', 'dk_key'])).trim().split('\n'), ['dk_pw', 'dk_key']);
    await okf(['config', 'rm', 'dk_conf', 'dk_conf2']);
    assert.equal(((await ctl('GET', '/v1/secrets')) as J[]).filter((s) => s.spec.name.startsWith('dk_')).length, 0);
    assert.equal(((await ctl('GET', '/v1/configs')) as J[]).filter((s) => s.spec.name.startsWith('dk_')).length, 0);
  });

  it('scales, updates the image, rolls back, and updates replicas, env and ports', async () => {
    const created = await dkf(['service', 'create', '--name', 'dk-web', '--replicas', '2', 'shoal/box:1'], { timeoutMs: 240_000 });
    assert.equal(created.code, 0, created.out + created.err);
    assert.match(created.out, /verify: Service \S+ converged/);
    await converged('dk-web', 2);

    const scaled = await dkf(['service', 'scale', 'dk-web=4'], { timeoutMs: 240_000 });
    assert.equal(scaled.code, 0, scaled.out + scaled.err);
    assert.match(scaled.out, /dk-web scaled to 4/);
    assert.equal((await running('dk-web')).length, 4, 'scale returns once converged');
    assert.equal((await svc('dk-web')).spec.mode.replicated.replicas, 4);

    const upd = await dkf(['service', 'update', '--image', 'shoal/box:2', 'dk-web'], { timeoutMs: 300_000 });
    assert.equal(upd.code, 0, upd.out + upd.err);
    assert.match(upd.out, /converged/);
    assert.match((await svc('dk-web')).spec.task.image, /^shoal\/box:2@sha256:/);
    assert.ok((await running('dk-web')).every((t) => t.spec.image.startsWith('shoal/box:2')));

    const rb = await dkf(['service', 'rollback', 'dk-web'], { timeoutMs: 300_000 });
    assert.equal(rb.code, 0, rb.out + rb.err);
    assert.match(rb.out, /rollback: manually requested rollback/);
    assert.match(rb.out, /verify: Service \S+ converged/);
    const back = await svc('dk-web');
    assert.match(back.spec.task.image, /^shoal\/box:1@sha256:/);
    assert.match(back.previousSpec.task.image, /^shoal\/box:2@sha256:/);
    assert.equal(
      (await ok(['service', 'inspect', 'dk-web', '--format', '{{.UpdateStatus.State}}'])).trim(),
      'rollback_completed',
      'the CLI reads the rollback as complete',
    );

    // An image no manager has: refused before anything changes (Docker would accept it and fail tasks).
    const specBefore = await svc('dk-web');
    const bad = await dkf(['service', 'update', '--image', 'shoal/nope:1', 'dk-web'], { timeoutMs: 300_000 });
    assert.equal(bad.code, 1, bad.out + bad.err);
    assert.match(bad.err, /Error response from daemon: image shoal\/nope:1: not found on any manager/);
    const specAfter = await svc('dk-web');
    assert.equal(specAfter.specVersion, specBefore.specVersion);
    assert.deepEqual(specAfter.spec, specBefore.spec);

    const u2 = await dkf(['service', 'update', '--replicas', '2', '--env-add', 'DK=7', '--publish-add', '18080:80', 'dk-web'], { timeoutMs: 300_000 });
    assert.equal(u2.code, 0, u2.out + u2.err);
    await converged('dk-web', 2);
    const s = await svc('dk-web');
    assert.equal(s.spec.mode.replicated.replicas, 2);
    assert.deepEqual(s.spec.task.env, ['DK=7']);
    assert.deepEqual(
      s.spec.endpoint.ports.map((p: J) => `${p.publishedPort}:${p.targetPort}/${p.protocol}`),
      ['18080:80/tcp'],
    );
    assert.match(await ok(['service', 'ls', '--filter', 'name=dk-web', '--format', '{{.Name}} {{.Replicas}} {{.Ports}}']), /^dk-web 2\/2 \*:18080->80\/tcp$/m);

    // Logs through the follower: every line of the running tasks carries the new environment.
    await waitFor(
      async () => ((await dkf(['service', 'logs', 'dk-web'])).out.match(/ v1 from \S+ DK=7/g) ?? []).length >= 2,
      60_000,
      'logs of the DK=7 tasks',
      1000,
    );
    const logs = await okf(['service', 'logs', '--no-task-ids', 'dk-web']);
    for (const line of logs.trim().split('\n')) assert.match(line, /^dk-web\.\d+@h[1-5]\s+\| v[12] from \S+ DK=\d*$/, line);

    // ps --no-trunc: full ids, the history of every slot (4 image versions' worth of shut-down tasks).
    const ps = await ok(['service', 'ps', '--no-trunc', '--format', '{{.ID}} {{.Name}} {{.Image}} {{.DesiredState}}', 'dk-web']);
    const rows = ps.trim().split('\n');
    assert.ok(
      rows.every((r) => /^[0-9a-z]{25} /.test(r)),
      ps,
    );
    assert.equal(rows.filter((r) => / Running$/.test(r)).length, 2, ps);
    assert.ok(
      rows.some((r) => /shoal\/box:2@sha256:[0-9a-f]{64} Shutdown$/.test(r)),
      `untruncated image digests in the history:\n${ps}`,
    );

    // docker inspect finds a service, a node and a task by id or name.
    const task = (await running('dk-web'))[0];
    assert.equal((await ok(['inspect', '--format', '{{.Spec.Name}} {{.Spec.Mode.Replicated.Replicas}}', 'dk-web'])).trim(), 'dk-web 2');
    assert.equal(
      (await ok(['inspect', '--format', '{{.Description.Hostname}}', task.nodeId])).trim(),
      ((await c.nodes()) as J[]).find((n) => n.id === task.nodeId).description.hostname,
    );
    assert.equal((await ok(['inspect', '--format', '{{.ServiceID}} {{.Status.State}} {{.DesiredState}}', task.id])).trim(), `${s.id} running running`);
  });

  it('refuses wrong input with the status and message docker users know, changing nothing', async () => {
    const before = (await ctl('GET', '/v1/services')) as J[];
    // 404 → the CLI's own wording, or the daemon's "… not found".
    assert.match(await fails(['service', 'inspect', 'nope']), /no such service: nope/i);
    assert.match(await fails(['service', 'rm', 'nope']), /Error response from daemon: service nope not found/);
    assert.match(await fails(['service', 'scale', 'nope=2']), /service nope not found/);
    assert.match(await fails(['service', 'logs', 'nope']), /no such task or service: nope/);
    assert.match(await fails(['service', 'rollback', 'nope']), /service nope not found/);
    assert.match(await fails(['inspect', 'nope']), /Error: No such object: nope/);
    assert.match(await fails(['image', 'inspect', 'shoal/box:1']), /No such image: shoal\/box:1/);
    assert.match(await fails(['swarm', 'init']), /This node is already part of a swarm/);
    assert.match(await fails(['swarm', 'leave', '--force']), /swarm leave acts on the node that runs it/);
    assert.equal((await c.nodes()).length, 5);
    assert.equal((await raw('GET', '/v1.47/services/nope')).status, 404);
    assert.deepEqual((await raw('GET', '/v1.47/services/nope')).body, { message: 'service nope not found' });
    assert.equal((await raw('GET', '/v1.47/tasks/nope')).status, 404);
    assert.equal((await raw('GET', '/v1.47/nodes/nope')).status, 404);
    // 409: names in use; a stale version.
    assert.match(
      await fails(['service', 'create', '-d', '--name', 'dk-web', 'shoal/box:1']),
      /Error response from daemon: service name dk-web is already in use/,
    );
    const dup = await raw('POST', '/v1.47/services/create', { Name: 'dk-web', TaskTemplate: { ContainerSpec: { Image: 'shoal/box:1' } } });
    assert.equal(dup.status, 409);
    const cur = await svc('dk-web');
    const stale = await raw('POST', `/v1.47/services/${cur.id}/update?version=${cur.version - 1}`, {
      Name: 'dk-web',
      TaskTemplate: { ContainerSpec: { Image: 'shoal/box:2' } },
    });
    assert.equal(stale.status, 409);
    assert.match(stale.body.message, /update out of sequence/);
    // 400: the field is named as Docker names it.
    const badName = await dk(['service', 'create', '-d', '--name', 'bad!name', 'shoal/box:1']);
    assert.equal(badName.code, 1);
    assert.match(badName.err, /Error response from daemon: .*[Nn]ame.*bad!name/);
    const noImage = await raw('POST', '/v1.47/services/create', { Name: 'dk-noimg', TaskTemplate: { ContainerSpec: {} } });
    assert.equal(noImage.status, 400);
    assert.match(noImage.body.message, /ContainerSpec\.Image/);
    const badPort = await raw('POST', '/v1.47/services/create', {
      Name: 'dk-port',
      TaskTemplate: { ContainerSpec: { Image: 'shoal/box:1' } },
      EndpointSpec: { Ports: [{ TargetPort: 80, PublishedPort: 99999 }] },
    });
    assert.equal(badPort.status, 400);
    assert.match(badPort.body.message, /EndpointSpec\.Ports\[0\]\.PublishedPort/);
    const badConstraint = await dk(['service', 'create', '-d', '--name', 'dk-con', '--constraint', 'node.role=manager', 'shoal/box:1']);
    assert.equal(badConstraint.code, 1);
    assert.match(badConstraint.err, /Error response from daemon: .*Placement\.Constraints\[0\]/);
    const noVersion = await raw('POST', `/v1.47/services/${cur.id}/update`, {});
    assert.equal(noVersion.status, 400);
    assert.match(noVersion.body.message, /version/);
    const badFilter = await raw('GET', '/v1.47/services?filters=%7B%22colour%22%3A%7B%22red%22%3Atrue%7D%7D');
    assert.equal(badFilter.status, 400);
    assert.match(badFilter.body.message, /invalid filter 'colour'/);
    // Nothing changed.
    const afterList = (await ctl('GET', '/v1/services')) as J[];
    const specs = (l: J[]) => l.map((s) => `${s.spec.name}@${s.specVersion} ${JSON.stringify(s.spec)}`).sort();
    assert.deepEqual(specs(afterList), specs(before));
    await okf(['service', 'rm', 'dk-web']);
  });

  it('stores Placement.Platforms and schedules by it', async () => {
    // The CLI pins the image and adds the platform /distribution answered.
    const r = await dkf(['service', 'create', '--name', 'dk-plat', 'shoal/box:1'], { timeoutMs: 240_000 });
    assert.equal(r.code, 0, r.out + r.err);
    assert.equal(
      (await ok(['service', 'inspect', 'dk-plat', '--format', '{{json .Spec.TaskTemplate.Placement.Platforms}}'])).trim(),
      '[{"Architecture":"amd64","OS":"linux"}]',
    );
    assert.deepEqual((await svc('dk-plat')).spec.task.placement.platforms, [{ os: 'linux', arch: 'amd64' }]);
    await okf(['service', 'rm', 'dk-plat']);
    // A platform no node has: accepted, and the task waits with the reason.
    const arm = await raw('POST', '/v1.47/services/create', {
      Name: 'dk-arm',
      TaskTemplate: { ContainerSpec: { Image: 'shoal/box:1' }, Placement: { Platforms: [{ Architecture: 'arm64', OS: 'linux' }] } },
    });
    assert.equal(arm.status, 201, JSON.stringify(arm.body));
    await waitFor(
      async () => {
        const s = await svc('dk-arm');
        const ts = (await ctl('GET', `/v1/tasks?service=${s.id}`)) as J[];
        return ts.length === 1 && ts[0].status.state === 'pending' && /platform/.test(`${ts[0].status.err ?? ''} ${ts[0].status.message ?? ''}`);
      },
      60_000,
      'dk-arm pending for its platform',
      500,
    );
    const bad = await raw('POST', '/v1.47/services/create', {
      Name: 'dk-arm2',
      TaskTemplate: { ContainerSpec: { Image: 'shoal/box:1' }, Placement: { Platforms: [{ Architecture: 'amd64', OS: 'windows!' }] } },
    });
    assert.equal(bad.status, 400);
    assert.match(bad.body.message, /Placement\.Platforms\[0\]\.OS/);
    await okf(['service', 'rm', 'dk-arm']);
  });

  it('deploys a stack file with networks, secrets, configs, placement and a healthcheck; ls, services, ps, rm', async () => {
    writeFileSync(join(tmp, 'stack.yml'), STACK_FILE);
    writeFileSync(join(tmp, 'app_pw.txt'), STACK_SECRET);
    writeFileSync(join(tmp, 'app.conf'), STACK_CONFIG);
    const dep = await dkf(['stack', 'deploy', '-c', join(tmp, 'stack.yml'), 'dkapp'], { timeoutMs: 240_000 });
    assert.equal(dep.code, 0, dep.out + dep.err);
    for (const l of [
      'Creating network dkapp_front',
      'Creating network dkapp_back',
      'Creating secret dkapp_app_pw',
      'Creating config dkapp_app_conf',
      'Creating service dkapp_web',
      'Creating service dkapp_db',
    ])
      assert.match(dep.out + dep.err, new RegExp(l), l);
    await converged('dkapp_web', 2, 180_000);
    await converged('dkapp_db', 1, 180_000);

    // The cluster holds what the file says.
    const web = await svc('dkapp_web');
    assert.equal(web.spec.labels.tier, 'front');
    assert.equal(web.spec.labels['com.docker.stack.namespace'], 'dkapp');
    assert.deepEqual(web.spec.task.placement.constraints, ['node.role == worker']);
    assert.equal(web.spec.task.placement.maxReplicas, 1);
    assert.equal(web.spec.update.parallelism, 1);
    assert.equal(web.spec.update.delayMs, 1000);
    assert.equal(web.spec.update.order, 'start-first');
    assert.equal(web.spec.update.failureAction, 'rollback');
    assert.equal(web.spec.task.restartPolicy.condition, 'on-failure');
    assert.equal(web.spec.task.restartPolicy.maxAttempts, 3);
    assert.deepEqual(web.spec.task.healthcheck.test, ['CMD-SHELL', 'test -f /run/secrets/app_pw']);
    assert.equal(web.spec.task.healthcheck.intervalMs, 2000);
    const nets = (await ctl('GET', '/v1/networks')) as J[];
    assert.equal(nets.find((n) => n.spec.name === 'dkapp_front')?.spec.attachable, true);
    assert.ok(nets.some((n) => n.spec.name === 'dkapp_back'));
    const hosts = new Map(((await c.nodes()) as J[]).map((n) => [n.id, n.description.hostname]));
    assert.deepEqual((await running('dkapp_web')).map((t) => hosts.get(t.nodeId)).sort(), ['h4', 'h5'], 'one per worker');
    assert.deepEqual(
      (await running('dkapp_db')).map((t) => hosts.get(t.nodeId)),
      ['h5'],
      'on the labelled node',
    );

    // Inside the tasks: the secret, the config, and a passing healthcheck.
    const w = (await running('dkapp_web'))[0];
    const cat = await sh(['task', 'exec', w.id, '--', 'sh', '-c', 'cat /run/secrets/app_pw; echo; cat /etc/app.conf; stat -c %a /etc/app.conf']);
    assert.equal(cat.code, 0, cat.err);
    assert.equal(cat.out, `${STACK_SECRET}\n${STACK_CONFIG}440\n`);
    const db = (await running('dkapp_db'))[0];
    assert.equal((await sh(['task', 'exec', db.id, '--', 'cat', '/run/secrets/db_password'])).out, STACK_SECRET);
    // With a healthcheck a task is `running` only once its first probe passed (the engine's rule).
    assert.ok((await running('dkapp_web')).every((t) => t.status.message !== 'starting'));

    // What the CLI shows.
    assert.match(await ok(['stack', 'ls']), /^NAME\s+SERVICES\n^dkapp\s+2$/m);
    const svcs = await ok(['stack', 'services', '--format', '{{.Name}} {{.Mode}} {{.Replicas}}', 'dkapp']);
    assert.deepEqual(svcs.trim().split('\n').sort(), ['dkapp_db replicated 1/1', 'dkapp_web replicated 2/2 (max 1 per node)']);
    const ps = await ok(['stack', 'ps', '--filter', 'desired-state=running', '--format', '{{.Name}} {{.Node}} {{.CurrentState}}', 'dkapp']);
    const psRows = ps.trim().split('\n').sort();
    assert.equal(psRows.length, 3, ps);
    assert.match(psRows[0]!, /^dkapp_db\.1 h5 Running /);
    assert.match(psRows[1]!, /^dkapp_web\.[12] h[45] Running /);

    // Deploying the same file again updates nothing it need not (the secret's data is identical).
    const again = await dkf(['stack', 'deploy', '-c', join(tmp, 'stack.yml'), 'dkapp'], { timeoutMs: 240_000 });
    assert.equal(again.code, 0, again.out + again.err);
    assert.match(again.out + again.err, /Updating service dkapp_web/);
    // A secret's data cannot change in place (Docker's rule): the redeploy stops, naming it.
    const pwBefore = ((await ctl('GET', '/v1/secrets')) as J[]).find((x) => x.spec.name === 'dkapp_app_pw');
    writeFileSync(join(tmp, 'app_pw.txt'), 'changed');
    const changed = await dkf(['stack', 'deploy', '-c', join(tmp, 'stack.yml'), 'dkapp'], { timeoutMs: 240_000 });
    assert.equal(changed.code, 1, changed.out + changed.err);
    assert.match(changed.err, /failed to update secret dkapp_app_pw: Error response from daemon: only updates to labels are allowed/);
    const pwAfter = ((await ctl('GET', '/v1/secrets')) as J[]).find((x) => x.spec.name === 'dkapp_app_pw');
    assert.equal(pwAfter.version, pwBefore.version);

    const rm = await dkf(['stack', 'rm', 'dkapp'], { timeoutMs: 240_000 });
    assert.equal(rm.code, 0, rm.out + rm.err);
    for (const l of ['Removing service dkapp_web', 'Removing secret dkapp_app_pw', 'Removing config dkapp_app_conf', 'Removing network dkapp_front'])
      assert.match(rm.out + rm.err, new RegExp(l), l);
    const has = (o: J) => o.spec?.labels?.['com.docker.stack.namespace'] === 'dkapp';
    await waitFor(
      async () => {
        const lists = await Promise.all(['/v1/services', '/v1/networks', '/v1/secrets', '/v1/configs'].map((p) => ctl('GET', p)));
        return lists.every((l: J[]) => !l.some(has));
      },
      60_000,
      'the stack gone',
      500,
    );
    assert.match((await dk(['stack', 'ps', 'dkapp'])).err, /nothing found in stack: dkapp/i);
  });
});
