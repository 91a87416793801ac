// Conversion of loaded stacks into Shoal objects: Docker's names and labels, every compose option in
// Shoal's units, and agreement with the real validators (manager/service/spec.ts validateServiceSpec,
// manager/api/networks.ts validateNetworkSpec). Includes the shapes of two well-known public sample
// stacks (the voting app and the atsea shop), which must load with only the expected warnings.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { validateServiceSpec } from '../../manager/service/spec.ts';
import { validateNetworkSpec } from '../../manager/api/networks.ts';
import { ComposeError } from '../../stack/compose/errors.ts';
import { IMAGE_LABEL, NAMESPACE_LABEL, StackNameError, convertStack, type Stack } from '../../stack/convert.ts';
import { CORPUS, loadCorpus, loadMemory } from './helpers.ts';

const NS = { [NAMESPACE_LABEL]: 'shop' };

function svc(stack: Stack, key: string) {
  const s = stack.services.find((x) => x.key === key);
  assert.ok(s, `service ${key}`);
  return s;
}

/** Every converted spec is already what the control API accepts, and validating it again changes nothing. */
function assertValid(stack: Stack): void {
  for (const s of stack.services) assert.deepEqual(validateServiceSpec(s.spec), s.spec, s.name);
  for (const n of stack.networks) if (n.spec) assert.deepEqual(validateNetworkSpec(n.spec), n.spec, n.name);
}

describe('the example voting app stack', () => {
  const project = loadCorpus(['voting-app.yml']);
  const stack = convertStack(project, 'vote');

  it('loads with only the expected warning', () => {
    assert.deepEqual(stack.warnings, ['Ignoring unsupported options: depends_on']);
  });

  it('names and labels every object as docker stack deploy does', () => {
    assert.deepEqual(
      stack.services.map((s) => s.name),
      ['vote_db', 'vote_redis', 'vote_result', 'vote_vote', 'vote_worker'],
    );
    assert.deepEqual(
      stack.networks.map((n) => n.name),
      ['vote_frontend', 'vote_backend'],
    );
    assert.deepEqual(
      stack.volumes.map((v) => v.name),
      ['vote_db-data'],
    );
    for (const s of stack.services) {
      assert.equal(s.spec.labels[NAMESPACE_LABEL], 'vote');
      assert.equal(s.spec.labels[IMAGE_LABEL], s.spec.task.image);
      assert.equal(s.spec.task.labels![NAMESPACE_LABEL], 'vote');
    }
    for (const n of stack.networks) assert.equal(n.spec!.labels[NAMESPACE_LABEL], 'vote');
    assertValid(stack);
  });

  it('converts ports, networks, volume, placement, update and restart policies', () => {
    const vote = svc(stack, 'vote').spec;
    assert.deepEqual(vote.mode, { replicated: { replicas: 2 } });
    assert.deepEqual(vote.endpoint, { mode: 'vip', ports: [{ protocol: 'tcp', targetPort: 80, publishedPort: 5000, publishMode: 'ingress' }] });
    assert.deepEqual(vote.networks, [{ target: 'vote_frontend', aliases: ['vote'] }]);
    assert.equal(vote.update!.parallelism, 2);
    assert.equal(vote.task.restartPolicy!.condition, 'on-failure');
    assert.equal(svc(stack, 'result').spec.endpoint.ports[0]!.publishedPort, 5001);
    const db = svc(stack, 'db').spec;
    assert.deepEqual(db.task.mounts, [{ type: 'volume', source: 'vote_db-data', target: '/var/lib/postgresql/data' }]);
    assert.deepEqual(db.task.placement, { constraints: ['node.role == manager'] });
    assert.deepEqual(db.task.env, ['POSTGRES_PASSWORD=postgres', 'POSTGRES_USER=postgres']);
    const worker = svc(stack, 'worker').spec;
    assert.deepEqual(worker.networks, [
      { target: 'vote_backend', aliases: ['worker'] },
      { target: 'vote_frontend', aliases: ['worker'] },
    ]);
    assert.deepEqual(worker.task.restartPolicy, { condition: 'on-failure', delayMs: 10_000, maxAttempts: 3, windowMs: 120_000 });
    assert.equal(worker.labels.APP, 'VOTING');
    assert.deepEqual(svc(stack, 'redis').spec.update, {
      parallelism: 2,
      delayMs: 10_000,
      failureAction: 'pause',
      monitorMs: 5000,
      maxFailureRatio: 0,
      order: 'stop-first',
    });
  });
});

describe('the atsea sample shop stack', () => {
  const stack = convertStack(loadCorpus(['atsea/docker-stack.yml']), 'atsea');

  it('loads with only the warning that the encrypted network is not encrypted', () => {
    assert.deepEqual(stack.warnings, [
      'networks.payment.driver_opts.encrypted: NOT honoured: Shoal overlays cannot encrypt (no IPsec in the data plane); traffic on this network crosses the wire in clear',
    ]);
    assertValid(stack);
  });

  it('secrets: files resolved beside the compose file, external ones by their own name', () => {
    assert.deepEqual(
      stack.secrets.map((s) => [s.key, s.name, s.external, s.file ?? null]),
      [
        ['postgres_password', 'atsea_postgres_password', false, `${CORPUS}/atsea/devsecrets/postgres_password`],
        ['staging_token', 'atsea_staging_token', false, `${CORPUS}/atsea/devsecrets/payment_token`],
        ['revprox_key', 'revprox_key', true, null],
        ['revprox_cert', 'revprox_cert', true, null],
      ],
    );
    assert.deepEqual(stack.secrets[0]!.labels, { [NAMESPACE_LABEL]: 'atsea' });
    assert.deepEqual(stack.secrets[2]!.labels, {});
  });

  it("secret references in Docker's shape, with defaults", () => {
    assert.deepEqual(svc(stack, 'payment_gateway').secrets, [
      { source: 'atsea_staging_token', key: 'staging_token', target: '/run/secrets/payment_token', uid: '1000', gid: '1000', mode: 0o400 },
    ]);
    assert.deepEqual(svc(stack, 'database').secrets, [
      { source: 'atsea_postgres_password', key: 'postgres_password', target: '/run/secrets/postgres_password', uid: '0', gid: '0', mode: 0o444 },
    ]);
    assert.deepEqual(
      svc(stack, 'reverse_proxy').secrets.map((s) => [s.source, s.target]),
      [
        ['revprox_cert', '/run/secrets/revprox_cert'],
        ['revprox_key', '/run/secrets/revprox_key'],
      ],
    );
  });

  it('restart policy, placement, rollback on failure', () => {
    const app = svc(stack, 'appserver').spec;
    assert.deepEqual(app.task.restartPolicy, { condition: 'on-failure', delayMs: 5000, maxAttempts: 3, windowMs: 120_000 });
    assert.equal(app.update!.failureAction, 'rollback');
    assert.deepEqual(svc(stack, 'payment_gateway').spec.task.placement, { constraints: ['node.role == worker', 'node.labels.pcidss == yes'] });
    assert.deepEqual(
      app.networks.map((n) => n.target),
      ['atsea_back-tier', 'atsea_front-tier', 'atsea_payment'],
    );
  });
});

describe('every option of full/docker-stack.yml', () => {
  const stack = convertStack(loadCorpus(['full/docker-stack.yml'], { FROM_SHELL: 'shell', HOME: '/home/ops' }), 'shop');
  const web = svc(stack, 'web');
  const t = web.spec.task;

  it('passes the real validators unchanged', () => assertValid(stack));

  it('image, entrypoint → command, command → args (shell-split), env sorted, user, workdir, hostname template', () => {
    assert.equal(t.image, 'registry.example.com:5000/shop/web:1.4.2');
    assert.deepEqual(t.command, ['/docker-entrypoint.sh']);
    assert.deepEqual(t.args, ['nginx', '-g', 'daemon off;']);
    assert.deepEqual(t.env, ['EMPTY=', 'FROM_SHELL=shell', 'GREETING=hello world']);
    assert.equal(t.user, '101:101');
    assert.equal(t.workdir, '/usr/share/nginx');
    assert.equal(t.hostname, '{{.Service.Name}}-{{.Task.Slot}}');
  });

  it('labels: deploy.labels on the service, labels on the containers, both with the namespace', () => {
    assert.deepEqual(web.spec.labels, { [IMAGE_LABEL]: t.image, ...NS, 'com.example.tier': 'frontend' });
    assert.deepEqual(t.labels, { ...NS, team: 'platform' });
  });

  it('ports: short, ranges, udp, long syntax with host mode, dynamic published port', () => {
    assert.deepEqual(web.spec.endpoint, {
      mode: 'vip',
      ports: [
        { protocol: 'tcp', targetPort: 80, publishedPort: 8080, publishMode: 'ingress' },
        { protocol: 'tcp', targetPort: 443, publishedPort: 8443, publishMode: 'ingress' },
        { protocol: 'udp', targetPort: 9000, publishedPort: 9000, publishMode: 'ingress' },
        { protocol: 'udp', targetPort: 9001, publishedPort: 9001, publishMode: 'ingress' },
        { protocol: 'tcp', targetPort: 8081, publishedPort: 18081, publishMode: 'host' },
        { protocol: 'tcp', targetPort: 8082, publishMode: 'ingress' },
      ],
    });
  });

  it("networks: aliases are the service key plus the file's; the default network only for services naming none", () => {
    assert.deepEqual(web.spec.networks, [
      { target: 'shop_back', aliases: ['web'] },
      { target: 'shop_front', aliases: ['web', 'www', 'shop'] },
    ]);
    assert.deepEqual(svc(stack, 'cleanup').spec.networks, [{ target: 'shop_default', aliases: ['cleanup'] }]);
    assert.deepEqual(
      stack.networks.map((n) => n.name),
      ['shop_front', 'shop_back', 'shop_default'],
    );
    const back = stack.networks.find((n) => n.key === 'back')!.spec!;
    assert.deepEqual(back, {
      name: 'shop_back',
      driver: 'overlay',
      labels: NS,
      ipam: { configs: [{ subnet: '10.77.0.0/24', gateway: '10.77.0.1' }] },
      attachable: false,
      internal: true,
    });
    assert.deepEqual(stack.networks.find((n) => n.key === 'front')!.spec!.labels, { 'com.example.purpose': 'public', ...NS });
  });

  it('mounts: named (NS_ or name:), bind resolved, anonymous, tmpfs with size, service-level tmpfs', () => {
    assert.deepEqual(t.mounts, [
      { type: 'volume', source: 'shop_static', target: '/usr/share/nginx/html', readOnly: true },
      { type: 'bind', source: `${CORPUS}/full/nginx.conf`, target: '/etc/nginx/conf.d/default.conf', readOnly: true },
      { type: 'volume', target: '/var/cache/nginx' },
      { type: 'tmpfs', target: '/run', tmpfsSizeBytes: 64 * 1024 * 1024 },
      { type: 'volume', source: 'shop-logs', target: '/var/log/nginx' },
      { type: 'bind', source: '/srv/certs', target: '/certs', readOnly: true },
      { type: 'tmpfs', target: '/tmp', tmpfsSizeBytes: 16 * 1024 * 1024 },
    ]);
    assert.deepEqual(stack.volumes, [
      { key: 'static', name: 'shop_static', external: false, labels: NS },
      { key: 'logs', name: 'shop-logs', external: false, labels: { backup: 'daily', ...NS } },
      { key: 'legacy', name: 'legacy', external: true, labels: {} },
    ]);
  });

  it('secrets and configs: short and long syntax, default targets, octal modes', () => {
    assert.deepEqual(web.secrets, [
      { source: 'shop_api_key', key: 'api_key', target: '/run/secrets/api_key', uid: '0', gid: '0', mode: 0o444 },
      { source: 'shop_api_key', key: 'api_key', target: '/run/secrets/web_key', uid: '101', gid: '101', mode: 0o400 },
    ]);
    assert.deepEqual(web.configs, [
      { source: 'shop_nginx_conf', key: 'nginx_conf', target: '/nginx_conf', uid: '0', gid: '0', mode: 0o444 },
      { source: 'shop_nginx_conf', key: 'nginx_conf', target: '/etc/nginx/nginx.conf', uid: '0', gid: '0', mode: 0o440 },
    ]);
    assert.deepEqual(
      stack.secrets.map((s) => [s.name, s.external, s.labels]),
      [
        ['shop_api_key', false, { rotation: 'monthly', ...NS }],
        ['shared_tls_cert', true, {}],
      ],
    );
    assert.equal(stack.configs[0]!.file, `${CORPUS}/full/nginx.conf`);
  });

  it('healthcheck: list, string (CMD-SHELL), disable; durations in ms', () => {
    assert.deepEqual(t.healthcheck, {
      test: ['CMD', 'curl', '-f', 'http://localhost/'],
      intervalMs: 30_000,
      timeoutMs: 5000,
      retries: 3,
      startPeriodMs: 60_000,
    });
    assert.deepEqual(svc(stack, 'api').spec.task.healthcheck, { test: ['CMD-SHELL', 'curl -f http://localhost:3000/health || exit 1'], intervalMs: 10_000 });
    assert.deepEqual(svc(stack, 'migrate').spec.task.healthcheck, { test: ['NONE'] });
    assert.equal(t.stopSignal, 'SIGQUIT');
    assert.equal(t.stopGracePeriodMs, 30_000);
  });

  it('deploy: replicas from .env, placement, resources, restart, update and rollback configs', () => {
    assert.deepEqual(web.spec.mode, { replicated: { replicas: 3 } });
    assert.deepEqual(t.placement, {
      constraints: ['node.role == worker', 'node.labels.zone != dmz'],
      preferences: [{ spread: 'node.labels.zone' }],
      maxReplicas: 2,
    });
    assert.deepEqual(t.resources, {
      limits: { nanoCpus: 500_000_000, memoryBytes: 256 * 1024 * 1024, pids: 200 },
      reservations: { nanoCpus: 250_000_000, memoryBytes: 64 * 1024 * 1024 },
    });
    assert.deepEqual(t.restartPolicy, { condition: 'on-failure', delayMs: 5000, maxAttempts: 3, windowMs: 120_000 });
    assert.deepEqual(web.spec.update, {
      parallelism: 2,
      delayMs: 10_000,
      failureAction: 'rollback',
      monitorMs: 90_000,
      maxFailureRatio: 0.25,
      order: 'start-first',
    });
    assert.deepEqual(web.spec.rollback, { parallelism: 0, delayMs: 0, failureAction: 'pause', monitorMs: 10_000, maxFailureRatio: 0, order: 'stop-first' });
  });

  it('modes: global with dnsrr, replicated-job, global-job', () => {
    assert.deepEqual(svc(stack, 'api').spec.mode, { global: {} });
    assert.equal(svc(stack, 'api').spec.endpoint.mode, 'dnsrr');
    assert.deepEqual(svc(stack, 'migrate').spec.mode, { replicatedJob: { maxConcurrent: 1, totalCompletions: 1 } });
    assert.deepEqual(svc(stack, 'cleanup').spec.mode, { globalJob: {} });
    assert.equal(svc(stack, 'cleanup').spec.update, undefined);
  });

  it('x-shoal-autoscale is kept with the service and converted into spec.autoscale', () => {
    assert.deepEqual(web.extensions, { 'x-shoal-autoscale': { min: 2, max: 10, cpu: 70 } });
    assert.equal(web.spec.autoscale?.min, 2);
    assert.equal(web.spec.autoscale?.max, 10);
    assert.equal(web.spec.autoscale?.cpu, 70);
  });
});

describe('conversion errors', () => {
  const one = (yaml: string) => convertStack(loadMemory({ '/app/s.yml': yaml }, ['s.yml']), 'ns');

  it("rules only Shoal's validator knows become ComposeErrors naming the service and the compose option", () => {
    const cases: [string, RegExp][] = [
      ['services:\n  web:\n    image: x\n    stop_signal: SIGNOPE\n', /^s\.yml:2: services\.web\.stop_signal: task\.stopSignal must be a signal name/],
      ['services:\n  web:\n    image: "Not A Valid Ref"\n', /^s\.yml:2: services\.web\.image: task\.image: invalid image reference/],
      [
        'services:\n  web:\n    image: x\n    ports: ["80:80"]\n    deploy: {endpoint_mode: dnsrr}\n',
        /^s\.yml:2: services\.web\.ports: endpoint\.ports\[0\]: port 80\/tcp is published in ingress mode/,
      ],
      [
        'services:\n  web:\n    image: x\n    deploy:\n      placement: {constraints: ["node.colour==red"]}\n',
        /^s\.yml:2: services\.web\.deploy\.placement: task\.placement\.constraints\[0\]: invalid constraint/,
      ],
      [
        'services:\n  job:\n    image: x\n    deploy: {mode: replicated-job, update_config: {parallelism: 1}}\n',
        /^s\.yml:2: services\.job\.deploy\.update_config: update: a job/,
      ],
      [
        'services:\n  web:\n    image: x\n    deploy: {resources: {limits: {memory: 1k}}}\n',
        /^s\.yml:2: services\.web\.deploy\.resources: task\.resources\.limits\.memoryBytes must be 0 or at least 4 MiB/,
      ],
    ];
    for (const [yaml, re] of cases) {
      assert.throws(
        () => one(yaml),
        (e: unknown) => e instanceof ComposeError && re.test(e.message),
        yaml,
      );
    }
  });

  it("stack names follow Docker's rule", () => {
    const p = loadMemory({ '/app/s.yml': 'services: {web: {image: x}}\n' }, ['s.yml']);
    for (const bad of ['', '-x', 'has space', 'a/b', 'x'.repeat(51)]) assert.throws(() => convertStack(p, bad), StackNameError, bad);
    assert.equal(convertStack(p, 'my.stack-1_a').services[0]!.name, 'my.stack-1_a_web');
  });

  it('an empty networks list joins the default network', () => {
    const s = one('services:\n  web:\n    image: x\n    networks: []\n');
    assert.deepEqual(s.services[0]!.spec.networks, [{ target: 'ns_default', aliases: ['web'] }]);
    assert.deepEqual(
      s.networks.map((n) => n.name),
      ['ns_default'],
    );
  });

  it('unused networks are not part of the stack (as Docker), declared external ones keep their name', () => {
    const s = one('services:\n  web:\n    image: x\n    networks: [proxy]\nnetworks:\n  proxy: {external: true, name: traefik}\n  unused: {}\n');
    assert.deepEqual(
      s.networks.map((n) => [n.key, n.name, n.external]),
      [['proxy', 'traefik', true]],
    );
    assert.deepEqual(s.services[0]!.spec.networks, [{ target: 'traefik', aliases: ['web'] }]);
  });
});
