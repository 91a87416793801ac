// `shoal service create|update` flags: every flag lands in the right spec field (checked through the
// validator, as the manager would see it), list edits on update, value parsers, and errors that name
// the flag.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deepFreeze } from '../../api/objects.ts';
import type { ServiceSpec } from '../../api/objects.ts';
import { specDiff, validateServiceSpec } from '../../manager/service/spec.ts';
import {
  isFlagError,
  parseCpus,
  parseDurationGo,
  parseMemory,
  parseMount,
  parseNetwork,
  parsePlacementPref,
  parsePublish,
  parseServiceCreateArgs,
  parseServiceUpdateArgs,
  parseVolume,
  serviceUpdateTarget,
  shellSplit,
} from '../../cli/service-flags.ts';
import type { FlagIo } from '../../cli/service-flags.ts';
import { CliError } from '../../client/context.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

const FILES: Record<string, string> = {
  'app.env': '\uFEFF# settings\r\nA=from-file\r\n\r\n   B=2\nFROM_ENV\nUNSET_VAR\n# trailing comment\nC=x=y\n',
  'bad.env': 'OK=1\nBAD KEY=2\n',
};

const IO: FlagIo = {
  env: { FROM_ENV: 'env-value', TOKEN: 's3cret' },
  readFile: (p) => {
    const f = FILES[p];
    if (f === undefined) throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
    return f;
  },
};

/** `service create` argv → the validated spec the manager would store. */
function create(...argv: string[]): ServiceSpec {
  return validateServiceSpec(parseServiceCreateArgs(argv, IO).spec);
}

function flagFailure(fn: () => unknown): CliError & { flag: string } {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof CliError, `expected a CliError, got ${String(e)}`);
    assert.ok(isFlagError(e), 'expected a flag error');
    return e;
  }
  assert.fail('expected the flags to be refused');
}

// ------------------------------------------------------------------------------------------- create

test('the docker-style examples from the issue', () => {
  const bind = create('--name', 'files', '--mount', 'type=bind,source=/srv,target=/data,readonly', 'nginx');
  assert.deepEqual(bind.task.mounts, [{ type: 'bind', source: '/srv', target: '/data', readOnly: true }]);

  const host = create('--name', 'web', '-p', 'mode=host,published=8080,target=80', 'nginx');
  assert.deepEqual(host.endpoint.ports, [{ protocol: 'tcp', targetPort: 80, publishedPort: 8080, publishMode: 'host' }]);

  const spread = create('--name', 'r', '--replicas', '9', '--placement-pref', 'spread=node.labels.zone', 'redis:7');
  assert.deepEqual(spread.task.placement, { preferences: [{ spread: 'node.labels.zone' }] });
  assert.deepEqual(spread.mode, { replicated: { replicas: 9 } });

  const job = create('--name', 'batch', '--mode', 'replicated-job', '--max-concurrent', '2', '--total-completions', '10', 'bash', 'true');
  assert.deepEqual(job.mode, { replicatedJob: { maxConcurrent: 2, totalCompletions: 10 } });
  assert.equal(job.update, undefined);
  assert.deepEqual(job.task.args, ['true']);

  // Docker's own job example: --replicas is the number of completions, all run at once by default.
  assert.deepEqual(create('--name', 'j', '--mode', 'replicated-job', '--replicas', '10', 'bash', 'true').mode, {
    replicatedJob: { maxConcurrent: 10, totalCompletions: 10 },
  });
  assert.deepEqual(create('--name', 'j', '--mode', 'replicated-job', '--replicas', '10', '--max-concurrent', '2', 'bash', 'true').mode, {
    replicatedJob: { maxConcurrent: 2, totalCompletions: 10 },
  });

  const tmpl = create('--name', 'hosttempl', '--hostname={{.Node.Hostname}}-{{.Node.ID}}-{{.Service.Name}}', 'busybox', 'top');
  assert.equal(tmpl.task.hostname, '{{.Node.Hostname}}-{{.Node.ID}}-{{.Service.Name}}');

  const redis = create('--name', 'redis', '--update-delay', '10s', '--update-parallelism', '2', '--reserve-memory=4GB', 'redis:3.0.6');
  assert.deepEqual(redis.update, { parallelism: 2, delayMs: 10_000, failureAction: 'pause', monitorMs: 5000, maxFailureRatio: 0, order: 'stop-first' });
  assert.deepEqual(redis.task.resources, { reservations: { memoryBytes: 4 * GiB } });
});

test('IMAGE [COMMAND [ARG...]]: everything after the image belongs to the command', () => {
  const { spec } = parseServiceCreateArgs(['--name', 'web', 'nginx:1.27', 'nginx', '-g', 'daemon off;', '--name', 'x', '-d'], IO);
  assert.equal(spec.name, 'web');
  assert.equal(spec.task.image, 'nginx:1.27');
  assert.deepEqual(spec.task.args, ['nginx', '-g', 'daemon off;', '--name', 'x', '-d']);
  assert.equal(spec.task.command, undefined);
  assert.equal(parseServiceCreateArgs(['nginx', '-d'], IO).detach, false);
  // -- ends the flags.
  assert.deepEqual(parseServiceCreateArgs(['--name', 'a', '--', 'busybox', 'echo', '--hi'], IO).spec.task, { image: 'busybox', args: ['echo', '--hi'] });
  // No command: no args.
  assert.deepEqual(parseServiceCreateArgs(['busybox'], IO).spec, { task: { image: 'busybox' }, mode: { replicated: {} } });
  // --entrypoint is the command (Docker's ENTRYPOINT override), split like a shell would.
  const e = create('--name', 'e', '--entrypoint', `/bin/sh -c 'echo "hi there"'`, 'busybox', 'ignored-arg');
  assert.deepEqual(e.task.command, ['/bin/sh', '-c', 'echo "hi there"']);
  assert.deepEqual(e.task.args, ['ignored-arg']);
});

test('flag syntaxes: --flag value, --flag=value, -x value, -xvalue, -x=value, booleans, clusters', () => {
  const s = create('--name=web', '-e', 'A=1', '--env', 'B=2', '-eC=3', '-e=D=4', '--env=E=5', '-l', 'x=1', '-dq', 'nginx');
  assert.equal(s.name, 'web');
  assert.deepEqual(s.task.env, ['A=1', 'B=2', 'C=3', 'D=4', 'E=5']);
  const r = parseServiceCreateArgs(['-dq', 'nginx'], IO);
  assert.equal(r.detach, true);
  assert.equal(r.quiet, true);
  assert.equal(parseServiceCreateArgs(['--detach=false', 'nginx'], IO).detach, false);
  assert.equal(parseServiceCreateArgs(['--detach=true', 'nginx'], IO).detach, true);
  assert.equal(parseServiceCreateArgs(['-d', 'nginx'], IO).detach, true);
  assert.equal(parseServiceCreateArgs(['nginx'], IO).detach, false);
  // Scalars: the last one wins. Values may start with '-'.
  assert.deepEqual(parseServiceCreateArgs(['--replicas', '1', '--replicas', '4', 'nginx'], IO).spec.mode, { replicated: { replicas: 4 } });
  assert.deepEqual(parseServiceCreateArgs(['--replicas', '-1', 'nginx'], IO).spec.mode, { replicated: { replicas: -1 } });
});

type RoundTrip = [flags: string[], check: (s: ServiceSpec) => void];

const ROUND_TRIPS: RoundTrip[] = [
  [['--name', 'api'], (s) => assert.equal(s.name, 'api')],
  [['--replicas', '3'], (s) => assert.deepEqual(s.mode, { replicated: { replicas: 3 } })],
  [['--replicas', '0'], (s) => assert.deepEqual(s.mode, { replicated: { replicas: 0 } })],
  [['--mode', 'replicated'], (s) => assert.deepEqual(s.mode, { replicated: { replicas: 1 } })],
  [['--mode', 'global'], (s) => assert.deepEqual(s.mode, { global: {} })],
  [['--mode', 'global-job'], (s) => assert.deepEqual(s.mode, { globalJob: {} })],
  [['--mode', 'replicated-job'], (s) => assert.deepEqual(s.mode, { replicatedJob: { maxConcurrent: 1, totalCompletions: 1 } })],
  [['--mode', 'replicated-job', '--max-concurrent', '3'], (s) => assert.deepEqual(s.mode, { replicatedJob: { maxConcurrent: 3, totalCompletions: 3 } })],
  [['--mode', 'replicated-job', '--total-completions', '4'], (s) => assert.deepEqual(s.mode, { replicatedJob: { maxConcurrent: 4, totalCompletions: 4 } })],
  [
    ['--mode', 'replicated-job', '--replicas', '6', '--total-completions', '6'],
    (s) => assert.deepEqual(s.mode, { replicatedJob: { maxConcurrent: 6, totalCompletions: 6 } }),
  ],
  [['-e', 'A=1', '--env', 'B=with spaces=and equals'], (s) => assert.deepEqual(s.task.env, ['A=1', 'B=with spaces=and equals'])],
  [['-e', 'TOKEN'], (s) => assert.deepEqual(s.task.env, ['TOKEN=s3cret'])],
  [['-e', 'EMPTY='], (s) => assert.deepEqual(s.task.env, ['EMPTY='])],
  [['-e', 'NODE={{.Node.Hostname}}'], (s) => assert.deepEqual(s.task.env, ['NODE={{.Node.Hostname}}'])],
  [['--env-file', 'app.env', '-e', 'A=from-flag'], (s) => assert.deepEqual(s.task.env, ['A=from-file', 'B=2', 'FROM_ENV=env-value', 'C=x=y', 'A=from-flag'])],
  [['-l', 'com.example.team=core', '--label', 'flag'], (s) => assert.deepEqual(s.labels, { 'com.example.team': 'core', flag: '' })],
  [['-l', '__proto__=x'], (s) => assert.deepEqual(Object.entries(s.labels), [['__proto__', 'x']])],
  [['--container-label', 'tier=web', '--container-label', 'x=a=b'], (s) => assert.deepEqual(s.task.labels, { tier: 'web', x: 'a=b' })],
  [['--hostname', '{{.Service.Name}}-{{.Task.Slot}}'], (s) => assert.equal(s.task.hostname, '{{.Service.Name}}-{{.Task.Slot}}')],
  [['-w', '/srv/app'], (s) => assert.equal(s.task.workdir, '/srv/app')],
  [['--workdir=/x'], (s) => assert.equal(s.task.workdir, '/x')],
  [['-u', 'nobody:nogroup'], (s) => assert.equal(s.task.user, 'nobody:nogroup')],
  [['--user', '1000'], (s) => assert.equal(s.task.user, '1000')],
  [['--mount', 'type=volume,src=data,dst=/data'], (s) => assert.deepEqual(s.task.mounts, [{ type: 'volume', source: 'data', target: '/data' }])],
  [
    ['--mount', 'source=data,destination=/data,ro=true'],
    (s) => assert.deepEqual(s.task.mounts, [{ type: 'volume', source: 'data', target: '/data', readOnly: true }]),
  ],
  [
    ['--mount', 'type=bind,src=/etc/resolv.conf,target=/etc/resolv.conf,readonly=false'],
    (s) => assert.deepEqual(s.task.mounts, [{ type: 'bind', source: '/etc/resolv.conf', target: '/etc/resolv.conf' }]),
  ],
  [['--mount', 'type=tmpfs,target=/run,tmpfs-size=64m'], (s) => assert.deepEqual(s.task.mounts, [{ type: 'tmpfs', target: '/run', tmpfsSizeBytes: 64 * MiB }])],
  [['--mount', 'type=volume,target=/anon'], (s) => assert.deepEqual(s.task.mounts, [{ type: 'volume', target: '/anon' }])],
  [['--mount', 'type=volume,source=cache-{{.Task.Slot}},target=/cache'], (s) => assert.equal(s.task.mounts![0]!.source, 'cache-{{.Task.Slot}}')],
  [
    ['-v', '/srv:/data:ro', '--volume', 'named:/named', '-v', '/anon'],
    (s) =>
      assert.deepEqual(s.task.mounts, [
        { type: 'bind', source: '/srv', target: '/data', readOnly: true },
        { type: 'volume', source: 'named', target: '/named' },
        { type: 'volume', target: '/anon' },
      ]),
  ],
  [
    ['--mount', 'type=volume,target=/m', '-v', '/v'],
    (s) =>
      assert.deepEqual(
        s.task.mounts!.map((m) => m.target),
        ['/m', '/v'],
      ),
  ],
  [
    ['--limit-cpu', '1.5', '--reserve-cpu', '.25'],
    (s) => assert.deepEqual(s.task.resources, { limits: { nanoCpus: 1_500_000_000 }, reservations: { nanoCpus: 250_000_000 } }),
  ],
  [
    ['--limit-memory', '512m', '--reserve-memory', '1g'],
    (s) => assert.deepEqual(s.task.resources, { limits: { memoryBytes: 512 * MiB }, reservations: { memoryBytes: GiB } }),
  ],
  [['--limit-memory', '8388608'], (s) => assert.equal(s.task.resources!.limits!.memoryBytes, 8 * MiB)],
  [['--limit-pids', '100'], (s) => assert.deepEqual(s.task.resources, { limits: { pids: 100 } })],
  [['--limit-cpu', '0', '--limit-memory', '0'], (s) => assert.equal(s.task.resources, undefined)],
  [
    ['--restart-condition', 'on-failure', '--restart-delay', '1m30s', '--restart-max-attempts', '3', '--restart-window', '2h'],
    (s) => assert.deepEqual(s.task.restartPolicy, { condition: 'on-failure', delayMs: 90_000, maxAttempts: 3, windowMs: 7_200_000 }),
  ],
  [['--restart-condition', 'none'], (s) => assert.deepEqual(s.task.restartPolicy, { condition: 'none', delayMs: 5000, maxAttempts: 0, windowMs: 0 })],
  [
    ['--stop-signal', 'SIGQUIT', '--stop-grace-period', '30s'],
    (s) => (assert.equal(s.task.stopSignal, 'SIGQUIT'), assert.equal(s.task.stopGracePeriodMs, 30_000)),
  ],
  [['--stop-grace-period', '500ms'], (s) => assert.equal(s.task.stopGracePeriodMs, 500)],
  [
    [
      '--health-cmd',
      'curl -f http://localhost/ || exit 1',
      '--health-interval',
      '10s',
      '--health-timeout',
      '2s',
      '--health-retries',
      '3',
      '--health-start-period',
      '1m',
    ],
    (s) =>
      assert.deepEqual(s.task.healthcheck, {
        test: ['CMD-SHELL', 'curl -f http://localhost/ || exit 1'],
        intervalMs: 10_000,
        timeoutMs: 2000,
        retries: 3,
        startPeriodMs: 60_000,
      }),
  ],
  [['--health-interval', '5s'], (s) => assert.deepEqual(s.task.healthcheck, { test: [], intervalMs: 5000 })],
  [['--no-healthcheck'], (s) => assert.deepEqual(s.task.healthcheck, { test: ['NONE'] })],
  [
    ['--constraint', 'node.role==worker', '--constraint', ' node.labels.zone != a '],
    (s) => assert.deepEqual(s.task.placement, { constraints: ['node.role==worker', 'node.labels.zone != a'] }),
  ],
  [
    ['--placement-pref', 'spread=node.labels.dc', '--placement-pref', 'spread=node.labels.rack'],
    (s) => assert.deepEqual(s.task.placement, { preferences: [{ spread: 'node.labels.dc' }, { spread: 'node.labels.rack' }] }),
  ],
  [['--replicas', '2', '--replicas-max-per-node', '1'], (s) => assert.deepEqual(s.task.placement, { maxReplicas: 1 })],
  [
    [
      '--update-parallelism',
      '0',
      '--update-delay',
      '10s',
      '--update-monitor',
      '1m',
      '--update-failure-action',
      'rollback',
      '--update-max-failure-ratio',
      '0.2',
      '--update-order',
      'start-first',
    ],
    (s) =>
      assert.deepEqual(s.update, { parallelism: 0, delayMs: 10_000, failureAction: 'rollback', monitorMs: 60_000, maxFailureRatio: 0.2, order: 'start-first' }),
  ],
  [
    [
      '--rollback-parallelism',
      '3',
      '--rollback-delay',
      '1s',
      '--rollback-monitor',
      '0s',
      '--rollback-failure-action',
      'continue',
      '--rollback-max-failure-ratio',
      '1',
      '--rollback-order',
      'start-first',
    ],
    (s) => assert.deepEqual(s.rollback, { parallelism: 3, delayMs: 1000, failureAction: 'continue', monitorMs: 0, maxFailureRatio: 1, order: 'start-first' }),
  ],
  [
    ['--network', 'backend', '--network', 'name=front,alias=web,alias=www', '--network', 'network=third'],
    (s) => assert.deepEqual(s.networks, [{ target: 'backend' }, { target: 'front', aliases: ['web', 'www'] }, { target: 'third' }]),
  ],
  [['-p', '8080:80'], (s) => assert.deepEqual(s.endpoint.ports, [{ protocol: 'tcp', targetPort: 80, publishedPort: 8080, publishMode: 'ingress' }])],
  [
    ['-p', '8080:80/udp', '--publish', '8080:80'],
    (s) =>
      assert.deepEqual(s.endpoint.ports, [
        { protocol: 'udp', targetPort: 80, publishedPort: 8080, publishMode: 'ingress' },
        { protocol: 'tcp', targetPort: 80, publishedPort: 8080, publishMode: 'ingress' },
      ]),
  ],
  [['-p', '80'], (s) => assert.deepEqual(s.endpoint.ports, [{ protocol: 'tcp', targetPort: 80, publishMode: 'ingress' }])],
  [
    ['-p', 'published=53,target=53,protocol=udp'],
    (s) => assert.deepEqual(s.endpoint.ports, [{ protocol: 'udp', targetPort: 53, publishedPort: 53, publishMode: 'ingress' }]),
  ],
  [
    ['--endpoint-mode', 'dnsrr', '-p', 'mode=host,target=80,published=80'],
    (s) => assert.deepEqual(s.endpoint, { mode: 'dnsrr', ports: [{ protocol: 'tcp', targetPort: 80, publishedPort: 80, publishMode: 'host' }] }),
  ],
  [['--endpoint-mode', 'vip'], (s) => assert.deepEqual(s.endpoint, { mode: 'vip', ports: [] })],
];

for (const [flags, check] of ROUND_TRIPS) {
  test(`create ${flags.join(' ')}`, () => {
    const withName = flags.includes('--name') ? flags : ['--name', 'svc', ...flags];
    check(create(...withName, 'nginx:1.27'));
  });
}

test('every create flag at once gives a valid, complete spec', () => {
  const s = create(
    ...[
      '--name',
      'all',
      '--replicas',
      '2',
      '-e',
      'A=1',
      '--env-file',
      'app.env',
      '-l',
      'a=b',
      '--container-label',
      'c=d',
      '--hostname',
      'h',
      '-w',
      '/w',
      '-u',
      'u',
    ],
    ...[
      '--mount',
      'type=tmpfs,target=/t',
      '-v',
      'vol:/v',
      '--limit-cpu',
      '1',
      '--limit-memory',
      '64m',
      '--limit-pids',
      '10',
      '--reserve-cpu',
      '0.5',
      '--reserve-memory',
      '32m',
    ],
    ...[
      '--restart-condition',
      'any',
      '--restart-delay',
      '1s',
      '--restart-max-attempts',
      '1',
      '--restart-window',
      '1s',
      '--stop-signal',
      'TERM',
      '--stop-grace-period',
      '1s',
    ],
    ...['--health-cmd', 'true', '--health-interval', '1s', '--health-timeout', '1s', '--health-retries', '1', '--health-start-period', '1s'],
    ...['--constraint', 'node.role==worker', '--placement-pref', 'spread=node.labels.z', '--replicas-max-per-node', '1'],
    ...[
      '--update-parallelism',
      '1',
      '--update-delay',
      '1s',
      '--update-monitor',
      '1s',
      '--update-failure-action',
      'pause',
      '--update-max-failure-ratio',
      '0',
      '--update-order',
      'stop-first',
    ],
    ...[
      '--rollback-parallelism',
      '1',
      '--rollback-delay',
      '1s',
      '--rollback-monitor',
      '1s',
      '--rollback-failure-action',
      'pause',
      '--rollback-max-failure-ratio',
      '0',
      '--rollback-order',
      'stop-first',
    ],
    ...['--network', 'n', '-p', '8080:80', '--endpoint-mode', 'vip', '--entrypoint', 'sh', '-d'],
    'nginx',
    'arg',
  );
  assert.deepEqual(Object.keys(s.task), [
    'image',
    'command',
    'args',
    'env',
    'workdir',
    'user',
    'hostname',
    'labels',
    'mounts',
    'resources',
    'restartPolicy',
    'placement',
    'healthcheck',
    'stopSignal',
    'stopGracePeriodMs',
  ]);
});

// ------------------------------------------------------------------------------------- bad values

type BadFlags = [argv: string[], flag: string, message: RegExp];

const BAD_CREATE: BadFlags[] = [
  [['--limit-memory', '12q', 'nginx'], '--limit-memory', /^--limit-memory: invalid size "12q" \(use e\.g\. 512m, 1g\)$/],
  [['--reserve-memory', '-1g', 'nginx'], '--reserve-memory', /invalid size "-1g"/],
  [['--limit-cpu', 'abc', 'nginx'], '--limit-cpu', /^--limit-cpu: invalid CPU count "abc" \(use e\.g\. 0\.5, 2\)$/],
  [['--limit-cpu', '-1', 'nginx'], '--limit-cpu', /invalid CPU count "-1"/],
  [['--reserve-cpu', '0.0000000001', 'nginx'], '--reserve-cpu', /too precise/],
  [['--limit-pids', 'many', 'nginx'], '--limit-pids', /^--limit-pids: invalid number "many"/],
  [['--restart-delay', '5', 'nginx'], '--restart-delay', /^--restart-delay: invalid duration "5" \(use e\.g\. 500ms, 10s, 1m30s, 1h\)$/],
  [['--restart-delay', '-5s', 'nginx'], '--restart-delay', /^--restart-delay: duration cannot be negative \(got "-5s"\)$/],
  [['--update-delay', '1x', 'nginx'], '--update-delay', /invalid duration "1x"/],
  [['--stop-grace-period', '10 s', 'nginx'], '--stop-grace-period', /invalid duration/],
  [['--health-interval', 'often', 'nginx'], '--health-interval', /invalid duration "often"/],
  [['--replicas', 'abc', 'nginx'], '--replicas', /^--replicas: invalid number "abc" \(expected a whole number\)$/],
  [['--replicas', '1.5', 'nginx'], '--replicas', /invalid number "1\.5"/],
  [['--health-retries', 'x', 'nginx'], '--health-retries', /invalid number/],
  [['--restart-max-attempts', '2.5', 'nginx'], '--restart-max-attempts', /invalid number/],
  [['--update-max-failure-ratio', 'half', 'nginx'], '--update-max-failure-ratio', /^--update-max-failure-ratio: invalid number "half"$/],
  [['--mode', 'daemon', 'nginx'], '--mode', /^--mode: invalid value "daemon" \(use replicated, global, replicated-job, global-job\)$/],
  [['--restart-condition', 'always', 'nginx'], '--restart-condition', /invalid value "always" \(use none, on-failure, any\)/],
  [['--update-failure-action', 'stop', 'nginx'], '--update-failure-action', /use pause, continue, rollback/],
  [['--rollback-failure-action', 'rollback', 'nginx'], '--rollback-failure-action', /invalid value "rollback" \(use pause, continue\)/],
  [['--update-order', 'first', 'nginx'], '--update-order', /use stop-first, start-first/],
  [['--endpoint-mode', 'rr', 'nginx'], '--endpoint-mode', /use vip, dnsrr/],
  [['--mount', 'type=volume,source=data', 'nginx'], '--mount', /^--mount: target is required in "type=volume,source=data"/],
  [['--mount', 'type=volume,target=/d,size=1', 'nginx'], '--mount', /^--mount: unknown option "size"/],
  [['--mount', 'type=bind,target=/d', 'nginx'], '--mount', /a bind mount needs source=<absolute host path>/],
  [['--mount', 'type=tmpfs,source=x,target=/d', 'nginx'], '--mount', /a tmpfs mount takes no source/],
  [['--mount', 'type=volume,target=/d,tmpfs-size=1m', 'nginx'], '--mount', /tmpfs-size only applies to type=tmpfs/],
  [['--mount', 'type=tmpfs,target=/d,tmpfs-size=big', 'nginx'], '--mount tmpfs-size', /invalid size "big"/],
  [['--mount', 'type=bind,source=/a,target=/b,bind-propagation=shared', 'nginx'], '--mount', /mount option bind-propagation is not supported by Shoal/],
  [['--mount', 'type=npipe,source=x,target=/b', 'nginx'], '--mount', /mount type npipe is not supported/],
  [['--mount', 'type=nfs,target=/b', 'nginx'], '--mount', /invalid value "nfs"/],
  [['--mount', 'type=volume,target="/b', 'nginx'], '--mount', /unterminated quote/],
  [['--mount', 'type=volume,target=/b,readonly=maybe', 'nginx'], '--mount readonly', /invalid boolean "maybe"/],
  [['--mount', 'type=volume,source=,target=/b', 'nginx'], '--mount', /source needs a value/],
  [['-v', 'a:b:c:d', 'nginx'], '--volume', /^--volume: invalid volume "a:b:c:d"/],
  [['-v', '/a:/b:z', 'nginx'], '--volume', /volume option "z" is not supported/],
  [['-p', '127.0.0.1:80:80', 'nginx'], '--publish', /^--publish: a host IP is not supported/],
  [['-p', 'http', 'nginx'], '--publish', /invalid target port "http"/],
  [['-p', '70000:80', 'nginx'], '--publish', /invalid published port "70000"/],
  [['-p', '8000-8002:80-81', 'nginx'], '--publish', /port ranges differ in size/],
  [['-p', '80/http', 'nginx'], '--publish', /invalid value "http" \(use tcp, udp, sctp\)/],
  [['-p', 'mode=host,published=80', 'nginx'], '--publish', /target is required/],
  [['-p', 'target=80,foo=1', 'nginx'], '--publish', /unknown option "foo"/],
  [['-p', 'target=80,mode=global', 'nginx'], '--publish', /use ingress, host/],
  [['--network', 'name=x,driver-opt=a=b', 'nginx'], '--network', /network option driver-opt is not supported/],
  [['--network', 'alias=x', 'nginx'], '--network', /name is required/],
  [
    ['--placement-pref', 'pack=node.labels.x', 'nginx'],
    '--placement-pref',
    /^--placement-pref: invalid placement preference "pack=node\.labels\.x" \(use spread=node\.labels\.<name>\)$/,
  ],
  [['--placement-pref', 'spread=', 'nginx'], '--placement-pref', /invalid placement preference/],
  [
    ['--constraint', 'node.label.zone==a', 'nginx'],
    '--constraint',
    /^--constraint: invalid constraint "node\.label\.zone==a": unknown key "node\.label\.zone"/,
  ],
  [['-e', '=x', 'nginx'], '--env', /^--env: invalid environment variable "=x"/],
  [['-e', 'NOT_SET_ANYWHERE', 'nginx'], '--env', /^--env: NOT_SET_ANYWHERE has no value and is not set in this environment/],
  [['-e', 'MY VAR=1', 'nginx'], '--env', /contains whitespace/],
  [['--env-file', 'missing.env', 'nginx'], '--env-file', /^--env-file: cannot read missing\.env: ENOENT$/],
  [['--env-file', 'bad.env', 'nginx'], '--env-file bad.env:2', /^--env-file bad\.env:2: variable name "BAD KEY" contains whitespace$/],
  [['-l', '=x', 'nginx'], '--label', /^--label: invalid label "=x": empty key$/],
  [['--container-label', 'a b=c', 'nginx'], '--container-label', /contains whitespace/],
  [['--no-healthcheck', '--health-cmd', 'true', 'nginx'], '--no-healthcheck', /^--no-healthcheck: conflicts with --health-cmd/],
  [['--mode', 'global', '--replicas', '3', 'nginx'], '--replicas', /^--replicas: cannot be used with a global service \(--mode global\)$/],
  [['--mode', 'global-job', '--replicas', '3', 'nginx'], '--replicas', /cannot be used with a global service/],
  [['--max-concurrent', '2', 'nginx'], '--max-concurrent', /^--max-concurrent: only valid with --mode replicated-job/],
  [['--mode', 'global', '--total-completions', '2', 'nginx'], '--total-completions', /only valid with --mode replicated-job/],
  [['--mode', 'replicated-job', '--replicas', '4', '--total-completions', '3', 'nginx'], '--total-completions', /conflicts with --replicas 4/],
  [['--mode', 'global', '--replicas-max-per-node', '1', 'nginx'], '--replicas-max-per-node', /cannot be used with a global service/],
  [['--entrypoint', `sh -c 'x`, 'nginx'], '--entrypoint', /unterminated quote/],
  [['--foo', 'nginx'], '--foo', /^--foo: unknown flag$/],
  [['--replica', '3', 'nginx'], '--replica', /^--replica: unknown flag \(did you mean --replicas\?\)$/],
  [['-x', 'nginx'], '-x', /unknown flag/],
  [['--image', 'nginx'], '--image', /give the image as the first argument/],
  [['--force', 'nginx'], '--force', /only for service update/],
  [['--detach=maybe', 'nginx'], '--detach', /invalid boolean "maybe"/],
  [['nginx', '--name'].slice(1), '--name', /^--name: needs a value$/],
  [['-e'], '--env', /needs a value/],
  [[], 'IMAGE', /^IMAGE: required: shoal service create \[OPTIONS\] IMAGE \[COMMAND\] \[ARG\.\.\.\]$/],
  [['--name', 'x'], 'IMAGE', /required/],
];

for (const [argv, flag, message] of BAD_CREATE) {
  test(`create refuses ${JSON.stringify(argv.join(' '))} naming ${flag}`, () => {
    const e = flagFailure(() => parseServiceCreateArgs(argv, IO));
    assert.equal(e.flag, flag);
    assert.match(e.message, message);
  });
}

test('range rules are left to the validator, which names the field', () => {
  const cases: [string[], string, RegExp][] = [
    [['--replicas', '-1'], 'mode.replicated.replicas', /^mode\.replicated\.replicas must be a non-negative integer \(got -1\)$/],
    [['--update-parallelism', '-1'], 'update.parallelism', /^update\.parallelism must be ≥ 0/],
    [['--update-max-failure-ratio', '1.5'], 'update.maxFailureRatio', /must be between 0 and 1 \(got 1\.5\)/],
    [['--limit-memory', '1k'], 'task.resources.limits.memoryBytes', /at least 4 MiB/],
    [['--mode', 'replicated-job', '--max-concurrent', '0'], 'mode.replicatedJob.maxConcurrent', /must be ≥ 1 \(got 0\)/],
    [['--mount', 'type=bind,source=srv,target=/data'], 'task.mounts[0].source', /^task\.mounts\[0\]: bind mount needs an absolute source \(got "srv"\)$/],
    [['-p', '8080:80', '-p', '8080:81'], 'endpoint.ports[1]', /^endpoint\.ports\[1\]: published port 8080\/tcp is used twice/],
    [['-e', 'X={{.Node.Foo}}'], 'task.env[0]', /unknown template field \{\{\.Node\.Foo\}\}/],
    [['--endpoint-mode', 'dnsrr', '-p', '80:80'], 'endpoint.ports[0]', /cannot be used with endpoint mode dnsrr/],
    [['--mode', 'replicated-job', '--update-delay', '1s'], 'update', /cannot have an update config/],
    [['-w', 'relative'], 'task.workdir', /absolute path/],
    [['--stop-signal', 'SIGNOPE'], 'task.stopSignal', /signal name or number/],
    [['--name', 'bad name'], 'name', /^name must be 1–63 characters/],
  ];
  for (const [flags, field, message] of cases) {
    const draft = parseServiceCreateArgs([...(flags.includes('--name') ? [] : ['--name', 'svc']), ...flags, 'nginx'], IO).spec;
    assert.throws(
      () => validateServiceSpec(draft),
      (e: any) => e.name === 'SpecError' && e.field === field && message.test(e.message),
      `${flags.join(' ')} → ${field}`,
    );
  }
});

// ------------------------------------------------------------------------------------------- parsers

test('parseDurationGo: Go-style compound durations in milliseconds', () => {
  const ok: [string, number][] = [
    ['500ms', 500],
    ['10s', 10_000],
    ['1m30s', 90_000],
    ['1h', 3_600_000],
    ['2h45m', 9_900_000],
    ['1.5h', 5_400_000],
    ['.5s', 500],
    ['0', 0],
    ['0s', 0],
    ['+5s', 5000],
    ['-0', 0],
    ['1500us', 2],
    ['1000000ns', 1],
    ['3µs', 0],
    ['1h1m1s1ms', 3_661_001],
    [' 10s ', 10_000],
  ];
  for (const [s, ms] of ok) assert.equal(parseDurationGo(s, '--d'), ms, s);
  for (const s of ['', '5', 'ms', '1d', '1.s.', '10 s', 's10', '1m-30s', '.s', 'abc']) {
    assert.throws(() => parseDurationGo(s, '--d'), /--d: invalid duration/, s);
  }
  assert.throws(() => parseDurationGo('-1s', '--d'), /--d: duration cannot be negative/);
});

test('parseMemory: Docker sizes, binary units', () => {
  const ok: [string, number][] = [
    ['1024', 1024],
    ['100b', 100],
    ['100k', 100 * 1024],
    ['100K', 100 * 1024],
    ['512m', 512 * MiB],
    ['512MiB', 512 * MiB],
    ['512mb', 512 * MiB],
    ['512 m', 512 * MiB],
    ['1g', GiB],
    ['4GB', 4 * GiB],
    ['1.5g', 1.5 * GiB],
    ['2t', 2 * 1024 * GiB],
    ['0', 0],
  ];
  for (const [s, n] of ok) assert.equal(parseMemory(s, '--m'), n, s);
  for (const s of ['12q', '', 'm', '-1m', '1.2.3m', '10ib', '1 gb b', '1e3']) {
    assert.throws(
      () => parseMemory(s, '--limit-memory'),
      new RegExp(`--limit-memory: invalid size ${JSON.stringify(s).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`),
      s,
    );
  }
});

test('parseCpus: exact decimal → nano CPUs', () => {
  const ok: [string, number][] = [
    ['1', 1e9],
    ['0.5', 5e8],
    ['.25', 2.5e8],
    ['0.1', 1e8],
    ['0.3', 3e8],
    ['2.', 2e9],
    ['1.000000001', 1_000_000_001],
    ['0.001', 1e6],
    ['64', 64e9],
  ];
  for (const [s, n] of ok) assert.equal(parseCpus(s, '--c'), n, s);
  for (const s of ['', '.', 'one', '-1', '1,5', '1e2']) assert.throws(() => parseCpus(s, '--c'), /--c: invalid CPU count/, s);
  assert.throws(() => parseCpus('0.1234567891', '--c'), /too precise/);
});

test('parsePublish: short and long syntax, ranges, protocols', () => {
  assert.deepEqual(parsePublish('8080:80'), [{ protocol: 'tcp', targetPort: 80, publishedPort: 8080, publishMode: 'ingress' }]);
  assert.deepEqual(parsePublish('8080:80/UDP'), [{ protocol: 'udp', targetPort: 80, publishedPort: 8080, publishMode: 'ingress' }]);
  assert.deepEqual(parsePublish('80/sctp'), [{ protocol: 'sctp', targetPort: 80, publishMode: 'ingress' }]);
  assert.deepEqual(parsePublish(':80'), [{ protocol: 'tcp', targetPort: 80, publishMode: 'ingress' }]);
  assert.deepEqual(parsePublish('8000-8001:80-81'), [
    { protocol: 'tcp', targetPort: 80, publishedPort: 8000, publishMode: 'ingress' },
    { protocol: 'tcp', targetPort: 81, publishedPort: 8001, publishMode: 'ingress' },
  ]);
  assert.deepEqual(parsePublish('80-81'), [
    { protocol: 'tcp', targetPort: 80, publishMode: 'ingress' },
    { protocol: 'tcp', targetPort: 81, publishMode: 'ingress' },
  ]);
  assert.deepEqual(parsePublish('mode=host,published=8080,target=80'), [{ protocol: 'tcp', targetPort: 80, publishedPort: 8080, publishMode: 'host' }]);
  assert.deepEqual(parsePublish('target=80'), [{ protocol: 'tcp', targetPort: 80, publishMode: 'ingress' }]);
  assert.deepEqual(parsePublish('published=0,target=80,protocol=udp,mode=ingress'), [{ protocol: 'udp', targetPort: 80, publishMode: 'ingress' }]);
  assert.throws(() => parsePublish('81-80'), /invalid target port range/);
});

test('parseMount, parseVolume, parseNetwork, parsePlacementPref, shellSplit', () => {
  assert.deepEqual(parseMount('type=bind,source=/srv,target=/data,readonly'), { type: 'bind', source: '/srv', target: '/data', readOnly: true });
  assert.deepEqual(parseMount('target=/data'), { type: 'volume', target: '/data' });
  assert.deepEqual(parseMount('Type=volume,Src=a,Dst=/b,RO'), { type: 'volume', source: 'a', target: '/b', readOnly: true });
  assert.deepEqual(parseMount('type=volume,"source=a,b",target=/c'), { type: 'volume', source: 'a,b', target: '/c' });
  assert.deepEqual(parseMount('type=tmpfs,dst=/t,tmpfs-size=1g,ro=0'), { type: 'tmpfs', target: '/t', tmpfsSizeBytes: GiB });
  assert.deepEqual(parseVolume('/host:/ctr'), { type: 'bind', source: '/host', target: '/ctr' });
  assert.deepEqual(parseVolume('vol:/ctr:rw'), { type: 'volume', source: 'vol', target: '/ctr' });
  assert.deepEqual(parseVolume('vol:/ctr:ro,rw'), { type: 'volume', source: 'vol', target: '/ctr' });
  assert.deepEqual(parseNetwork('backend'), { target: 'backend' });
  assert.deepEqual(parseNetwork('target=b,alias=x'), { target: 'b', aliases: ['x'] });
  assert.deepEqual(parsePlacementPref('spread=node.labels.zone'), { spread: 'node.labels.zone' });
  assert.deepEqual(shellSplit(`a "b c" 'd e' f\\ g "h\\"i" ''`), ['a', 'b c', 'd e', 'f g', 'h"i', '']);
  assert.deepEqual(shellSplit('   '), []);
  assert.deepEqual(shellSplit(`--opt="x y"`), ['--opt=x y']);
});

// ------------------------------------------------------------------------------------------- update

function current(): ServiceSpec {
  return deepFreeze(
    create(
      ...['--name', 'web', '--replicas', '3', '-e', 'A=1', '-e', 'B=2', '-l', 'team=core', '-l', 'tier=web', '--container-label', 'c=1'],
      ...['--mount', 'type=volume,source=data,target=/data', '--mount', 'type=tmpfs,target=/tmp'],
      ...['--constraint', 'node.role==worker', '--constraint', 'node.labels.zone!=a', '--placement-pref', 'spread=node.labels.dc'],
      ...['-p', '8080:80', '-p', '53:53/udp', '--network', 'backend', '--network', 'name=front,alias=web'],
      'nginx:1.27',
      'nginx',
      '-g',
      'daemon off;',
    ),
  ) as ServiceSpec;
}

function update(argv: string[], cur: ServiceSpec = current()): { spec: ServiceSpec; force: boolean; detach: boolean; rollback: boolean; service?: string } {
  const r = parseServiceUpdateArgs(argv, cur, IO);
  return { ...r, spec: validateServiceSpec(r.spec) };
}

test('update with no flags returns the current spec unchanged (and does not modify it)', () => {
  const cur = current();
  const r = parseServiceUpdateArgs([], cur, IO);
  assert.deepEqual(r.spec, cur);
  assert.notEqual(r.spec, cur);
  assert.deepEqual(validateServiceSpec(r.spec), cur);
  assert.deepEqual(
    { force: r.force, detach: r.detach, rollback: r.rollback, quiet: r.quiet, service: r.service },
    { force: false, detach: false, rollback: false, quiet: false, service: undefined },
  );
});

test('update scalars: image, replicas, args, entrypoint, hostname, resources, restart, stop, update config', () => {
  const { spec } = update([
    ...['--image', 'nginx:1.28', '--replicas', '5', '--args', `nginx -g 'daemon off; worker_processes 2;'`, '--entrypoint', '/docker-entrypoint.sh'],
    ...[
      '--hostname',
      'h-{{.Task.Slot}}',
      '-w',
      '/srv',
      '-u',
      'www-data',
      '--limit-cpu',
      '2',
      '--limit-memory',
      '1g',
      '--limit-pids',
      '50',
      '--reserve-cpu',
      '0.5',
      '--reserve-memory',
      '256m',
    ],
    ...['--restart-condition', 'on-failure', '--restart-max-attempts', '2', '--stop-signal', 'SIGQUIT', '--stop-grace-period', '1m'],
    ...['--update-parallelism', '2', '--update-order', 'start-first', '--rollback-monitor', '10s', '--endpoint-mode', 'vip', '--replicas-max-per-node', '2'],
  ]);
  assert.equal(spec.task.image, 'nginx:1.28');
  assert.deepEqual(spec.mode, { replicated: { replicas: 5 } });
  assert.deepEqual(spec.task.args, ['nginx', '-g', 'daemon off; worker_processes 2;']);
  assert.deepEqual(spec.task.command, ['/docker-entrypoint.sh']);
  assert.equal(spec.task.hostname, 'h-{{.Task.Slot}}');
  assert.equal(spec.task.workdir, '/srv');
  assert.equal(spec.task.user, 'www-data');
  assert.deepEqual(spec.task.resources, { limits: { nanoCpus: 2e9, memoryBytes: GiB, pids: 50 }, reservations: { nanoCpus: 5e8, memoryBytes: 256 * MiB } });
  assert.deepEqual(spec.task.restartPolicy, { condition: 'on-failure', delayMs: 5000, maxAttempts: 2, windowMs: 0 });
  assert.equal(spec.task.stopSignal, 'SIGQUIT');
  assert.equal(spec.task.stopGracePeriodMs, 60_000);
  assert.equal(spec.update!.parallelism, 2);
  assert.equal(spec.update!.order, 'start-first');
  assert.equal(spec.rollback!.monitorMs, 10_000);
  assert.equal(spec.task.placement!.maxReplicas, 2);
  // Empty values clear optional fields.
  const cleared = update(['--hostname', '', '--args', '', '--entrypoint', '', '--limit-cpu', '0'], validateServiceSpec(spec)).spec;
  assert.equal(cleared.task.hostname, undefined);
  assert.equal(cleared.task.args, undefined);
  assert.equal(cleared.task.command, undefined);
  assert.equal(cleared.task.resources!.limits!.nanoCpus, undefined);
});

test('update --env-add replaces in place or appends; --env-rm removes by name (after the adds, as in Docker)', () => {
  assert.deepEqual(update(['--env-add', 'B=20', '--env-add', 'C=3']).spec.task.env, ['A=1', 'B=20', 'C=3']);
  assert.deepEqual(update(['--env-rm', 'A']).spec.task.env, ['B=2']);
  assert.deepEqual(update(['--env-rm', 'A', '--env-rm', 'B']).spec.task.env, undefined);
  assert.deepEqual(update(['--env-add', 'TOKEN', '--env-rm', 'NOPE']).spec.task.env, ['A=1', 'B=2', 'TOKEN=s3cret']);
  assert.deepEqual(update(['--env-add', 'A=9', '--env-rm', 'A']).spec.task.env, ['B=2']);
});

test('update labels and container labels', () => {
  const { spec } = update([
    '--label-add',
    'team=edge',
    '--label-add',
    'new',
    '--label-rm',
    'tier',
    '--container-label-add',
    'd=2',
    '--container-label-rm',
    'c',
  ]);
  assert.deepEqual(spec.labels, { new: '', team: 'edge' });
  assert.deepEqual(spec.task.labels, { d: '2' });
  assert.equal(update(['--container-label-rm', 'c']).spec.task.labels, undefined);
});

test('update constraints and placement preferences', () => {
  const a = update(['--constraint-add', 'node.labels.ssd==true', '--constraint-add', 'node.role == worker', '--constraint-rm', 'node.labels.zone != a']).spec;
  assert.deepEqual(a.task.placement!.constraints, ['node.role==worker', 'node.labels.ssd==true']);
  const b = update([
    '--placement-pref-rm',
    'spread=node.labels.dc',
    '--placement-pref-add',
    'spread=node.labels.rack',
    '--placement-pref-add',
    'spread=node.labels.dc',
  ]).spec;
  assert.deepEqual(b.task.placement!.preferences, [{ spread: 'node.labels.rack' }, { spread: 'node.labels.dc' }]);
  const c = update(['--constraint-rm', 'node.role==worker', '--constraint-rm', 'node.labels.zone!=a', '--placement-pref-rm', 'spread=node.labels.dc']).spec;
  assert.equal(c.task.placement, undefined);
  const bad = flagFailure(() => parseServiceUpdateArgs(['--constraint-add', 'zone==a'], current(), IO));
  assert.equal(bad.flag, '--constraint-add');
});

test('update mounts: add replaces the mount at the same target; rm by target', () => {
  const { spec } = update(['--mount-add', 'type=volume,source=data2,target=/data/', '--mount-add', 'type=bind,src=/etc/x,dst=/x,ro', '--mount-rm', '/tmp']);
  assert.deepEqual(spec.task.mounts, [
    { type: 'volume', source: 'data2', target: '/data/' },
    { type: 'bind', source: '/etc/x', target: '/x', readOnly: true },
  ]);
  assert.equal(update(['--mount-rm', '/data', '--mount-rm', '/tmp/']).spec.task.mounts, undefined);
});

test('update ports: rm by target port (and protocol), then add; duplicates are skipped', () => {
  assert.deepEqual(update(['--publish-rm', '80']).spec.endpoint.ports, [{ protocol: 'udp', targetPort: 53, publishedPort: 53, publishMode: 'ingress' }]);
  assert.deepEqual(update(['--publish-rm', '53']).spec.endpoint.ports.length, 2, 'tcp 53 is not udp 53');
  assert.deepEqual(update(['--publish-rm', '53/udp', '--publish-rm', '8080:80']).spec.endpoint.ports, []);
  assert.deepEqual(update(['--publish-rm', 'target=80,mode=host']).spec.endpoint.ports.length, 2, 'mode must match when given');
  const added = update(['--publish-add', '8080:80', '--publish-add', 'mode=host,published=9090,target=90']).spec.endpoint.ports;
  assert.deepEqual(
    added.map((p) => `${p.publishedPort}:${p.targetPort}/${p.protocol}/${p.publishMode}`),
    ['8080:80/tcp/ingress', '53:53/udp/ingress', '9090:90/tcp/host'],
  );
  // Moving a port: remove and add in one update.
  assert.deepEqual(
    update(['--publish-rm', '80', '--publish-add', '8081:80']).spec.endpoint.ports.map((p) => p.publishedPort),
    [53, 8081],
  );
});

test('update networks: rm then add; adding an attached network is refused', () => {
  assert.deepEqual(update(['--network-rm', 'front', '--network-add', 'name=front,alias=web2']).spec.networks, [
    { target: 'backend' },
    { target: 'front', aliases: ['web2'] },
  ]);
  assert.deepEqual(
    update(['--network-add', 'third']).spec.networks.map((n) => n.target),
    ['backend', 'front', 'third'],
  );
  const e = flagFailure(() => parseServiceUpdateArgs(['--network-add', 'backend'], current(), IO));
  assert.equal(e.flag, '--network-add');
  assert.match(e.message, /already attached to network backend/);
});

test('update health check flags', () => {
  const none = update(['--no-healthcheck']).spec;
  assert.deepEqual(none.task.healthcheck, { test: ['NONE'] });
  // Timing flags on a disabled check go back to the image's check with that timing.
  assert.deepEqual(update(['--health-interval', '3s'], none).spec.task.healthcheck, { test: [], intervalMs: 3000 });
  assert.equal(update(['--no-healthcheck=false'], none).spec.task.healthcheck, undefined);
  const cmd = update(['--health-cmd', 'pg_isready', '--health-retries', '5']).spec;
  assert.deepEqual(cmd.task.healthcheck, { test: ['CMD-SHELL', 'pg_isready'], retries: 5 });
  assert.deepEqual(update(['--health-timeout', '1s'], cmd).spec.task.healthcheck, { test: ['CMD-SHELL', 'pg_isready'], timeoutMs: 1000, retries: 5 });
  assert.deepEqual(update(['--health-cmd', ''], cmd).spec.task.healthcheck, { test: [], retries: 5 });
});

test('update --force bumps forceUpdate (a rolling restart with no other change)', () => {
  const r = update(['--force']);
  assert.equal(r.force, true);
  assert.equal(r.spec.task.forceUpdate, 1);
  const again = update(['--force'], r.spec);
  assert.equal(again.spec.task.forceUpdate, 2);
  const d = specDiff(current(), r.spec);
  assert.deepEqual(d.changed, ['task']);
  assert.equal(d.rollingUpdate, true);
});

test('update diff semantics through the flags: labels only, scale, rolling update', () => {
  const cur = current();
  assert.equal(specDiff(cur, update(['--label-add', 'x=y']).spec).metadataOnly, true);
  assert.equal(specDiff(cur, update(['--update-delay', '5s']).spec).metadataOnly, true);
  const scale = specDiff(cur, update(['--replicas', '10']).spec);
  assert.equal(scale.scale, true);
  assert.equal(scale.rollingUpdate, false);
  assert.equal(specDiff(cur, update(['--env-add', 'Z=1']).spec).rollingUpdate, true);
  assert.deepEqual(specDiff(cur, update(['--env-add', 'A=1']).spec).changed, [], 'setting a value to what it is changes nothing');
});

test('update modes: replicas on jobs and global services', () => {
  const job = validateServiceSpec(parseServiceCreateArgs(['--name', 'j', '--mode', 'replicated-job', '--replicas', '4', 'busybox'], IO).spec);
  assert.deepEqual(update(['--replicas', '8'], job).spec.mode, { replicatedJob: { maxConcurrent: 4, totalCompletions: 8 } });
  assert.deepEqual(update(['--max-concurrent', '1', '--total-completions', '2'], job).spec.mode, { replicatedJob: { maxConcurrent: 1, totalCompletions: 2 } });
  assert.equal(update(['--force'], job).spec.task.forceUpdate, 1, 'a job is re-run with --force');
  const global = validateServiceSpec(parseServiceCreateArgs(['--name', 'g', '--mode', 'global', 'busybox'], IO).spec);
  const e = flagFailure(() => parseServiceUpdateArgs(['--replicas', '3'], global, IO));
  assert.equal(e.flag, '--replicas');
  assert.match(e.message, /^--replicas: cannot be used with a global service \(this service is global\)$/);
  assert.match(
    flagFailure(() => parseServiceUpdateArgs(['--max-concurrent', '3'], current(), IO)).message,
    /only valid for a replicated job \(this service is replicated\)/,
  );
  // Update config on a job is caught by the validator.
  assert.throws(() => validateServiceSpec(parseServiceUpdateArgs(['--update-parallelism', '2'], job, IO).spec), /update: a job/);
});

test('update --rollback: alone, or with --update-*/--rollback-* and --detach only', () => {
  const r = update(['--rollback', '-d']);
  assert.equal(r.rollback, true);
  assert.equal(r.detach, true);
  assert.deepEqual(r.spec, current());
  assert.equal(update(['--rollback', '--update-delay', '0s', '--rollback-parallelism', '4']).spec.rollback!.parallelism, 4);
  const e = flagFailure(() => parseServiceUpdateArgs(['--rollback', '--image', 'nginx:2'], current(), IO));
  assert.equal(e.flag, '--rollback');
  assert.match(e.message, /cannot be combined with --image/);
});

test('update: the SERVICE positional may appear anywhere (or be left out by the caller)', () => {
  assert.equal(update(['web', '--replicas', '2']).service, 'web');
  assert.equal(update(['--replicas', '2', 'web', '-d']).service, 'web');
  assert.equal(update(['--replicas', '2']).service, undefined);
  assert.equal(serviceUpdateTarget(['--image', 'nginx:2', '--env-add', 'A=1', 'web', '--force']), 'web');
  assert.equal(serviceUpdateTarget(['--force', '--', '-weird']), '-weird');
  const e = flagFailure(() => parseServiceUpdateArgs(['a', 'b'], current(), IO));
  assert.equal(e.flag, 'SERVICE');
});

const BAD_UPDATE: BadFlags[] = [
  [['--env', 'A=1'], '--env', /^--env: unknown flag here \(use --env-add \/ --env-rm\)$/],
  [['-e', 'A=1'], '-e', /unknown flag/],
  [['--name', 'x'], '--name', /a service cannot be renamed/],
  [['--mode', 'global'], '--mode', /the mode of a service cannot be changed/],
  [['--publish', '80'], '--publish', /use --publish-add \/ --publish-rm/],
  [['--mount', 'target=/x'], '--mount', /use --mount-add \/ --mount-rm/],
  [['--limit-memory', '12q'], '--limit-memory', /^--limit-memory: invalid size "12q" \(use e\.g\. 512m, 1g\)$/],
  [['--update-delay', '-1s'], '--update-delay', /cannot be negative/],
  [['--mount-add', 'type=bind,target=/x'], '--mount-add', /a bind mount needs source/],
  [['--publish-add', '1.2.3.4:1:1'], '--publish-add', /host IP is not supported/],
  [['--publish-rm', 'x'], '--publish-rm', /invalid target port/],
  [['--placement-pref-add', 'node.labels.x'], '--placement-pref-add', /invalid placement preference/],
  [['--env-add', 'NOT_SET_ANYWHERE'], '--env-add', /not set in this environment/],
  [['--label-add', '=v'], '--label-add', /empty key/],
  [['--network-add', 'name=x,ip=1.2.3.4'], '--network-add', /network option ip is not supported/],
  [['--no-healthcheck', '--health-interval', '1s'], '--no-healthcheck', /conflicts with --health-interval/],
  [['--forse'], '--forse', /did you mean --force\?/],
  [['--image'], '--image', /needs a value/],
];

for (const [argv, flag, message] of BAD_UPDATE) {
  test(`update refuses ${JSON.stringify(argv.join(' '))} naming ${flag}`, () => {
    const e = flagFailure(() => parseServiceUpdateArgs(argv, current(), IO));
    assert.equal(e.flag, flag);
    assert.match(e.message, message);
  });
}

test('update accepts every scalar create flag', () => {
  const scalars = [
    ...['--replicas', '2', '--hostname', 'h', '-w', '/w', '-u', 'u', '--entrypoint', 'sh', '--limit-cpu', '1', '--limit-memory', '64m', '--limit-pids', '9'],
    ...[
      '--reserve-cpu',
      '1',
      '--reserve-memory',
      '64m',
      '--restart-condition',
      'none',
      '--restart-delay',
      '1s',
      '--restart-max-attempts',
      '1',
      '--restart-window',
      '1s',
    ],
    ...[
      '--stop-signal',
      'INT',
      '--stop-grace-period',
      '2s',
      '--health-cmd',
      'true',
      '--health-interval',
      '1s',
      '--health-timeout',
      '1s',
      '--health-retries',
      '1',
      '--health-start-period',
      '1s',
    ],
    ...['--replicas-max-per-node', '1', '--endpoint-mode', 'vip', '-d', '-q'],
    ...['parallelism', 'delay', 'monitor', 'failure-action', 'max-failure-ratio', 'order'].flatMap((f) => {
      const val = { parallelism: '3', delay: '1s', monitor: '1s', 'failure-action': 'continue', 'max-failure-ratio': '0.5', order: 'start-first' }[f]!;
      return [`--update-${f}`, val, `--rollback-${f}`, val];
    }),
  ];
  const { spec, detach } = update(scalars);
  assert.equal(detach, true);
  assert.deepEqual(spec.update, { parallelism: 3, delayMs: 1000, failureAction: 'continue', monitorMs: 1000, maxFailureRatio: 0.5, order: 'start-first' });
  assert.deepEqual(spec.rollback, spec.update);
  assert.equal(spec.task.stopSignal, 'INT');
  assert.deepEqual(spec.task.healthcheck, { test: ['CMD-SHELL', 'true'], intervalMs: 1000, timeoutMs: 1000, retries: 1, startPeriodMs: 1000 });
});
