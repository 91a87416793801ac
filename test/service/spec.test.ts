// Service specs: validation (every rule, with the offending field named), normalisation and defaults,
// the update diff, and task template expansion.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deepFreeze } from '../../api/objects.ts';
import type { ServiceSpec, TaskTemplate } from '../../api/objects.ts';
import {
  SpecError,
  defaultRestartPolicy,
  defaultUpdateConfig,
  imageReferenceProblem,
  isJobMode,
  isValidSignal,
  modeKind,
  specDiff,
  validateServiceSpec,
} from '../../manager/service/spec.ts';
import { DEFAULT_LIMITS, jsonEqual } from '../../api/objects.ts';
import { LimitExceededError } from '../../manager/store/errors.ts';
import { checkSpecLimits } from '../../manager/service/spec.ts';
import { TEMPLATE_FIELDS, TemplateError, expandString, expandTemplates, templateFields } from '../../api/templates.ts';
import type { TemplateContext } from '../../api/templates.ts';

// ---------------------------------------------------------------------------------------------- helpers

/** A minimal valid spec, as a client could send it. */
function base(): any {
  return { name: 'web', task: { image: 'nginx:1.27' } };
}

/** base() changed by `edit`. */
function spec(edit: (s: any) => void): any {
  const s = base();
  edit(s);
  return s;
}

function specError(input: unknown): SpecError {
  try {
    validateServiceSpec(input);
  } catch (e) {
    assert.ok(e instanceof SpecError, `expected a SpecError, got ${String(e)}`);
    assert.equal(e.code, 'EINVALIDSPEC');
    assert.equal(e.name, 'SpecError');
    return e;
  }
  assert.fail(`expected ${JSON.stringify(input)} to be refused`);
}

const FULL_DEFAULTS: ServiceSpec = {
  name: 'web',
  labels: {},
  mode: { replicated: { replicas: 1 } },
  task: {
    image: 'nginx:1.27',
    restartPolicy: { condition: 'any', delayMs: 5000, maxAttempts: 0, windowMs: 0 },
    stopGracePeriodMs: 10_000,
  },
  update: { parallelism: 1, delayMs: 0, failureAction: 'pause', monitorMs: 5000, maxFailureRatio: 0, order: 'stop-first' },
  rollback: { parallelism: 1, delayMs: 0, failureAction: 'pause', monitorMs: 5000, maxFailureRatio: 0, order: 'stop-first' },
  networks: [],
  endpoint: { mode: 'vip', ports: [] },
};

/** A spec that sets every field. */
function rich(): any {
  return {
    name: 'api_v2.backend-1',
    labels: { 'com.example.team': 'core', empty: '' },
    mode: { replicated: { replicas: 3 } },
    task: {
      image: 'registry.example.com:5000/team/api@sha256:' + 'a'.repeat(64),
      command: ['/bin/api'],
      args: ['--port', '8080'],
      env: ['A=1', 'NODE={{.Node.Hostname}}', 'EMPTY='],
      workdir: '/srv',
      user: '1000:1000',
      hostname: '{{.Service.Name}}-{{.Task.Slot}}',
      labels: { tier: 'backend' },
      mounts: [
        { type: 'bind', source: '/srv/data', target: '/data', readOnly: true },
        { type: 'volume', source: 'cache-{{.Task.Slot}}', target: '/cache' },
        { type: 'volume', target: '/anon' },
        { type: 'tmpfs', target: '/tmp', tmpfsSizeBytes: 64 * 1024 * 1024 },
      ],
      resources: {
        limits: { nanoCpus: 500_000_000, memoryBytes: 512 * 1024 * 1024, pids: 100 },
        reservations: { nanoCpus: 250_000_000, memoryBytes: 256 * 1024 * 1024 },
      },
      restartPolicy: { condition: 'on-failure', delayMs: 1000, maxAttempts: 3, windowMs: 60_000 },
      placement: { constraints: ['node.role==worker', 'node.labels.zone!=a'], preferences: [{ spread: 'node.labels.zone' }], maxReplicas: 2 },
      healthcheck: { test: ['CMD', 'curl', '-f', 'http://localhost/'], intervalMs: 10_000, timeoutMs: 2000, retries: 3, startPeriodMs: 5000 },
      stopSignal: 'SIGQUIT',
      stopGracePeriodMs: 30_000,
      forceUpdate: 2,
    },
    update: { parallelism: 2, delayMs: 10_000, failureAction: 'rollback', monitorMs: 30_000, maxFailureRatio: 0.25, order: 'start-first' },
    rollback: { parallelism: 0, delayMs: 0, failureAction: 'continue', monitorMs: 0, maxFailureRatio: 1, order: 'stop-first' },
    networks: [{ target: 'backend', aliases: ['api', 'api-{{.Task.Slot}}'] }, { target: 'frontend' }],
    endpoint: {
      mode: 'vip',
      ports: [
        { name: 'http', protocol: 'tcp', targetPort: 8080, publishedPort: 80, publishMode: 'ingress' },
        { protocol: 'udp', targetPort: 8080, publishedPort: 80, publishMode: 'ingress' },
        { protocol: 'tcp', targetPort: 9090, publishMode: 'host' },
      ],
    },
  };
}

// ---------------------------------------------------------------------------------- defaults, shape

test('a minimal spec gets every default filled in', () => {
  assert.deepEqual(validateServiceSpec(base()), FULL_DEFAULTS);
  assert.deepEqual(defaultUpdateConfig(), FULL_DEFAULTS.update);
  assert.deepEqual(defaultRestartPolicy(), FULL_DEFAULTS.task.restartPolicy);
});

test('partial update, rollback and restart configs are completed with the defaults', () => {
  const v = validateServiceSpec(
    spec((s) => {
      s.update = { parallelism: 0 };
      s.rollback = { order: 'start-first' };
      s.task.restartPolicy = { condition: 'none' };
      s.endpoint = { ports: [{ targetPort: 80 }] };
    }),
  );
  assert.deepEqual(v.update, { ...defaultUpdateConfig(), parallelism: 0 });
  assert.deepEqual(v.rollback, { ...defaultUpdateConfig(), order: 'start-first' });
  assert.deepEqual(v.task.restartPolicy, { condition: 'none', delayMs: 5000, maxAttempts: 0, windowMs: 0 });
  assert.deepEqual(v.endpoint, { mode: 'vip', ports: [{ protocol: 'tcp', targetPort: 80, publishMode: 'ingress' }] });
});

test('a spec that sets every field survives validation unchanged, and validation is idempotent', () => {
  const input = rich();
  const v = validateServiceSpec(input);
  assert.deepEqual(v, input);
  assert.deepEqual(validateServiceSpec(v), v);
  assert.deepEqual(Object.keys(v), ['name', 'labels', 'mode', 'task', 'update', 'rollback', 'networks', 'endpoint']);
});

test('validation does not modify its input (frozen input works) and returns fresh objects', () => {
  const input = deepFreeze(rich());
  const v = validateServiceSpec(input);
  assert.equal(Object.isFrozen(v), false);
  assert.notEqual(v.task, input.task);
  v.task.env!.push('X=1');
  assert.equal(input.task.env.length, 3);
});

test('replicated and global jobs: no update/rollback config, job defaults', () => {
  const j = validateServiceSpec(spec((s) => (s.mode = { replicatedJob: {} })));
  assert.deepEqual(j.mode, { replicatedJob: { maxConcurrent: 1, totalCompletions: 1 } });
  assert.equal(j.update, undefined);
  assert.equal(j.rollback, undefined);
  assert.equal('update' in j, false);
  // Like Docker: by default all completions run at once; totalCompletions defaults to maxConcurrent.
  assert.deepEqual(validateServiceSpec(spec((s) => (s.mode = { replicatedJob: { totalCompletions: 10 } }))).mode, {
    replicatedJob: { maxConcurrent: 10, totalCompletions: 10 },
  });
  assert.deepEqual(validateServiceSpec(spec((s) => (s.mode = { replicatedJob: { maxConcurrent: 2 } }))).mode, {
    replicatedJob: { maxConcurrent: 2, totalCompletions: 2 },
  });
  assert.deepEqual(validateServiceSpec(spec((s) => (s.mode = { replicatedJob: { maxConcurrent: 2, totalCompletions: 10 } }))).mode, {
    replicatedJob: { maxConcurrent: 2, totalCompletions: 10 },
  });
  assert.deepEqual(validateServiceSpec(spec((s) => (s.mode = { replicatedJob: { totalCompletions: 0 } }))).mode, {
    replicatedJob: { maxConcurrent: 1, totalCompletions: 0 },
  });
  const g = validateServiceSpec(spec((s) => (s.mode = { globalJob: {} })));
  assert.deepEqual(g.mode, { globalJob: {} });
  assert.equal(g.update, undefined);
  const gs = validateServiceSpec(spec((s) => (s.mode = { global: {} })));
  assert.deepEqual(gs.update, defaultUpdateConfig());
  assert.equal(isJobMode(j.mode), true);
  assert.equal(isJobMode(gs.mode), false);
  assert.equal(modeKind(g.mode), 'globalJob');
});

test('"no value" forms are normalised away so equal meanings compare equal', () => {
  const v = validateServiceSpec(
    spec((s) => {
      s.labels = null;
      s.update = null;
      s.task.command = undefined;
      s.task.env = [];
      s.task.workdir = '';
      s.task.user = '';
      s.task.hostname = '';
      s.task.labels = {};
      s.task.mounts = [{ type: 'volume', source: '', target: '/x', readOnly: false, tmpfsSizeBytes: 0 }];
      s.task.resources = { limits: { nanoCpus: 0, memoryBytes: 0, pids: 0 }, reservations: {} };
      s.task.placement = { constraints: [], preferences: [], maxReplicas: 0 };
      s.task.healthcheck = { intervalMs: 0, timeoutMs: 0, startPeriodMs: 0, retries: 0 };
      s.task.stopSignal = '';
      s.task.forceUpdate = 0;
      s.endpoint = { ports: [{ targetPort: 80, publishedPort: 0, name: '' }] };
      s.networks = [{ target: 'n', aliases: [] }];
    }),
  );
  assert.deepEqual(v.task, {
    image: 'nginx:1.27',
    mounts: [{ type: 'volume', target: '/x' }],
    restartPolicy: defaultRestartPolicy(),
    healthcheck: { test: [] },
    stopGracePeriodMs: 10_000,
  });
  assert.deepEqual(v.labels, {});
  assert.deepEqual(v.update, defaultUpdateConfig());
  assert.deepEqual(v.endpoint.ports, [{ protocol: 'tcp', targetPort: 80, publishMode: 'ingress' }]);
  assert.deepEqual(v.networks, [{ target: 'n' }]);
});

// ---------------------------------------------------------------------------------- invalid specs

type Bad = [what: string, input: unknown, field: string, message: RegExp];

const BAD: Bad[] = [
  // the whole spec
  ['not an object', 'web', '', /^spec must be an object \(got "web"\)/],
  ['an array', [], '', /^spec must be an object \(got an array\)/],
  ['unknown top-level key', spec((s) => (s.replica = 3)), 'replica', /^replica: unknown field .*did you mean mode\.replicated\.replicas\?/],
  ['unknown top-level key (typo)', spec((s) => (s.lables = {})), 'lables', /^lables: unknown field .*did you mean labels\?/],
  ['top-level image', spec((s) => (s.image = 'x')), 'image', /^image: unknown field .*did you mean task\.image\?/],
  // name
  ['missing name', spec((s) => delete s.name), 'name', /^name is required$/],
  ['empty name', spec((s) => (s.name = '')), 'name', /^name is required$/],
  ['name not a string', spec((s) => (s.name = 5)), 'name', /^name must be a string \(got 5\)/],
  [
    'name with a space',
    spec((s) => (s.name = 'my web')),
    'name',
    /^name must be 1–63 characters of \[a-zA-Z0-9-_\.\] starting with a letter or digit \(got "my web"\)/,
  ],
  ['name starting with -', spec((s) => (s.name = '-web')), 'name', /^name must be 1–63 characters/],
  ['name starting with .', spec((s) => (s.name = '.web')), 'name', /^name must be 1–63 characters/],
  ['name too long', spec((s) => (s.name = 'a'.repeat(64))), 'name', /^name must be 1–63 characters/],
  ['name with a slash', spec((s) => (s.name = 'a/b')), 'name', /^name must be 1–63 characters/],
  // labels
  ['labels not an object', spec((s) => (s.labels = ['a=b'])), 'labels', /^labels must be an object of string values \(got an array\)/],
  ['label value not a string', spec((s) => (s.labels = { a: 1 })), 'labels["a"]', /^labels\["a"\] must be a string \(got 1\)/],
  ['empty label key', spec((s) => (s.labels = { '': 'x' })), 'labels[""]', /^labels: label keys must not be empty/],
  ['label key with whitespace', spec((s) => (s.labels = { 'a b': 'x' })), 'labels["a b"]', /^labels: label key "a b" contains whitespace/],
  ['container label value not a string', spec((s) => (s.task.labels = { a: true })), 'task.labels["a"]', /^task\.labels\["a"\] must be a string/],
  // mode
  [
    'negative replicas',
    spec((s) => (s.mode = { replicated: { replicas: -1 } })),
    'mode.replicated.replicas',
    /^mode\.replicated\.replicas must be a non-negative integer \(got -1\)$/,
  ],
  ['fractional replicas', spec((s) => (s.mode = { replicated: { replicas: 1.5 } })), 'mode.replicated.replicas', /must be a non-negative integer \(got 1\.5\)/],
  ['replicas as a string', spec((s) => (s.mode = { replicated: { replicas: '3' } })), 'mode.replicated.replicas', /must be a non-negative integer \(got "3"\)/],
  ['replicas on a global service', spec((s) => (s.mode = { global: { replicas: 3 } })), 'mode', /^mode: --replicas cannot be used with a global service$/],
  [
    'replicated and global at once',
    spec((s) => (s.mode = { replicated: { replicas: 3 }, global: {} })),
    'mode',
    /^mode: --replicas cannot be used with a global service$/,
  ],
  [
    'two modes',
    spec((s) => (s.mode = { replicated: {}, replicatedJob: {} })),
    'mode',
    /^mode must set exactly one of replicated, global, replicatedJob, globalJob \(got replicated, replicatedJob\)/,
  ],
  ['no mode kind', spec((s) => (s.mode = {})), 'mode', /^mode must set exactly one of .* \(got none\)/],
  ['unknown mode', spec((s) => (s.mode = { replicas: 3 })), 'mode.replicas', /^mode\.replicas: unknown field .*did you mean mode\.replicated\.replicas\?/],
  ['mode as a string', spec((s) => (s.mode = 'global')), 'mode', /^mode must be an object \(got "global"\)/],
  ['unknown key in replicated', spec((s) => (s.mode = { replicated: { replica: 2 } })), 'mode.replicated.replica', /unknown field .*did you mean replicas\?/],
  [
    'maxConcurrent 0',
    spec((s) => (s.mode = { replicatedJob: { maxConcurrent: 0 } })),
    'mode.replicatedJob.maxConcurrent',
    /^mode\.replicatedJob\.maxConcurrent must be ≥ 1 \(got 0\)$/,
  ],
  [
    'negative totalCompletions',
    spec((s) => (s.mode = { replicatedJob: { totalCompletions: -2 } })),
    'mode.replicatedJob.totalCompletions',
    /must be a non-negative integer \(got -2\)/,
  ],
  [
    'options on a global job',
    spec((s) => (s.mode = { globalJob: { maxConcurrent: 2 } })),
    'mode.globalJob.maxConcurrent',
    /unknown field \(no fields are allowed here\)/,
  ],
  [
    'update config on a job',
    spec((s) => ((s.mode = { replicatedJob: {} }), (s.update = { parallelism: 2 }))),
    'update',
    /^update: a job .* cannot have an update config/,
  ],
  [
    'rollback config on a global job',
    spec((s) => ((s.mode = { globalJob: {} }), (s.rollback = {}))),
    'rollback',
    /^rollback: a job .* cannot have an rollback config/,
  ],
  // task
  ['missing task', spec((s) => delete s.task), 'task.image', /^task\.image is required$/],
  ['missing image', spec((s) => delete s.task.image), 'task.image', /^task\.image is required$/],
  ['empty image', spec((s) => (s.task.image = '')), 'task.image', /^task\.image is required$/],
  [
    'uppercase image',
    spec((s) => (s.task.image = 'Nginx')),
    'task.image',
    /^task\.image: invalid image reference "Nginx": the repository name must be lowercase/,
  ],
  ['image with a space', spec((s) => (s.task.image = 'nginx latest')), 'task.image', /invalid image reference .*whitespace/],
  ['image with a bad tag', spec((s) => (s.task.image = 'nginx:-x')), 'task.image', /invalid tag "-x"/],
  ['image with a bad digest', spec((s) => (s.task.image = 'nginx@sha256:xyz')), 'task.image', /invalid digest/],
  ['unknown task key', spec((s) => (s.task.entrypoint = ['x'])), 'task.entrypoint', /^task\.entrypoint: unknown field/],
  ['ports in the task', spec((s) => (s.task.ports = [])), 'task.ports', /did you mean endpoint\.ports\?/],
  ['command not an array', spec((s) => (s.task.command = 'sleep 1')), 'task.command', /^task\.command must be an array of strings \(got "sleep 1"\)/],
  ['command with a number', spec((s) => (s.task.command = ['sleep', 1])), 'task.command[1]', /^task\.command\[1\] must be a string \(got 1\)/],
  ['args with NUL', spec((s) => (s.task.args = ['a\0b'])), 'task.args[0]', /NUL/],
  ['env without =', spec((s) => (s.task.env = ['A=1', 'B=2', 'NOVALUE'])), 'task.env[2]', /^task\.env\[2\]: expected KEY=value \(got "NOVALUE"\)/],
  ['env with empty key', spec((s) => (s.task.env = ['=x'])), 'task.env[0]', /^task\.env\[0\]: expected KEY=value/],
  ['env not strings', spec((s) => (s.task.env = [{ A: 1 }])), 'task.env[0]', /^task\.env\[0\] must be a string/],
  ['relative workdir', spec((s) => (s.task.workdir = 'app')), 'task.workdir', /^task\.workdir must be an absolute path \(got "app"\)/],
  ['user with a space', spec((s) => (s.task.user = 'a b')), 'task.user', /^task\.user must be a user name or uid/],
  ['hostname with a space', spec((s) => (s.task.hostname = 'a b')), 'task.hostname', /^task\.hostname must not contain whitespace/],
  ['bad stop signal', spec((s) => (s.task.stopSignal = 'SIGFOO')), 'task.stopSignal', /^task\.stopSignal must be a signal name or number/],
  ['signal number out of range', spec((s) => (s.task.stopSignal = '99')), 'task.stopSignal', /^task\.stopSignal must be a signal/],
  [
    'negative stop grace period',
    spec((s) => (s.task.stopGracePeriodMs = -1)),
    'task.stopGracePeriodMs',
    /^task\.stopGracePeriodMs must be a non-negative whole number of milliseconds \(got -1\)/,
  ],
  ['fractional stop grace period', spec((s) => (s.task.stopGracePeriodMs = 1.5)), 'task.stopGracePeriodMs', /milliseconds \(got 1\.5\)/],
  ['negative forceUpdate', spec((s) => (s.task.forceUpdate = -1)), 'task.forceUpdate', /must be a non-negative integer/],
  // templates
  [
    'unknown template field in env',
    spec((s) => (s.task.env = ['NODE={{.Node.Foo}}'])),
    'task.env[0]',
    /^task\.env\[0\]: unknown template field \{\{\.Node\.Foo\}\} \(use \.Node\.ID, \.Node\.Hostname, \.Task\.ID, \.Task\.Name, \.Task\.Slot, \.Service\.ID, \.Service\.Name\)$/,
  ],
  ['unclosed template in env', spec((s) => (s.task.env = ['A=1', 'B={{.Node.ID'])), 'task.env[1]', /^task\.env\[1\]: unclosed action/],
  [
    'template function in hostname',
    spec((s) => (s.task.hostname = '{{index .Service.Labels "x"}}')),
    'task.hostname',
    /^task\.hostname: unknown template field \{\{index \.Service\.Labels "x"\}\}/,
  ],
  ['lowercase template field', spec((s) => (s.task.hostname = '{{.node.hostname}}')), 'task.hostname', /unknown template field \{\{\.node\.hostname\}\}/],
  [
    'unknown template field in a mount source',
    spec((s) => (s.task.mounts = [{ type: 'volume', source: 'd-{{.Task.Number}}', target: '/d' }])),
    'task.mounts[0].source',
    /^task\.mounts\[0\]\.source: unknown template field \{\{\.Task\.Number\}\}/,
  ],
  [
    'unknown template field in a mount target',
    spec((s) => (s.task.mounts = [{ type: 'tmpfs', target: '/d/{{.Slot}}' }])),
    'task.mounts[0].target',
    /unknown template field \{\{\.Slot\}\}/,
  ],
  [
    'unknown template field in a network alias',
    spec((s) => (s.networks = [{ target: 'n', aliases: ['{{.Foo}}'] }])),
    'networks[0].aliases[0]',
    /unknown template field \{\{\.Foo\}\}/,
  ],
  // mounts
  [
    'bind mount with a relative source',
    spec((s) => (s.task.mounts = [{ type: 'bind', source: 'srv', target: '/data' }])),
    'task.mounts[0].source',
    /^task\.mounts\[0\]: bind mount needs an absolute source \(got "srv"\)/,
  ],
  [
    'bind mount without a source',
    spec((s) => (s.task.mounts = [{ type: 'bind', target: '/data' }])),
    'task.mounts[0].source',
    /^task\.mounts\[0\]: bind mount needs an absolute source \(got nothing\)/,
  ],
  [
    'mount without a target',
    spec((s) => (s.task.mounts = [{ type: 'volume', source: 'v' }])),
    'task.mounts[0].target',
    /^task\.mounts\[0\]: target is required/,
  ],
  [
    'relative mount target',
    spec((s) => (s.task.mounts = [{ type: 'volume', target: 'data' }])),
    'task.mounts[0].target',
    /^task\.mounts\[0\]: target must be an absolute path \(got "data"\)/,
  ],
  ['mount on /', spec((s) => (s.task.mounts = [{ type: 'volume', target: '/' }])), 'task.mounts[0].target', /^task\.mounts\[0\]: target cannot be \//],
  [
    'same target twice',
    spec(
      (s) =>
        (s.task.mounts = [
          { type: 'volume', target: '/d' },
          { type: 'tmpfs', target: '/d/' },
        ]),
    ),
    'task.mounts[1]',
    /^task\.mounts\[1\]: target \/d\/ is used twice \(also by task\.mounts\[0\]\)/,
  ],
  [
    'unknown mount type',
    spec((s) => (s.task.mounts = [{ type: 'npipe', target: '/d' }])),
    'task.mounts[0].type',
    /^task\.mounts\[0\]\.type must be bind, volume or tmpfs \(got "npipe"\)/,
  ],
  ['missing mount type', spec((s) => (s.task.mounts = [{ target: '/d' }])), 'task.mounts[0].type', /must be bind, volume or tmpfs \(got nothing\)/],
  [
    'bad volume name',
    spec((s) => (s.task.mounts = [{ type: 'volume', source: 'a/b', target: '/d' }])),
    'task.mounts[0].source',
    /^task\.mounts\[0\]: invalid volume name "a\/b"/,
  ],
  [
    'one-character volume name',
    spec((s) => (s.task.mounts = [{ type: 'volume', source: 'v', target: '/d' }])),
    'task.mounts[0].source',
    /invalid volume name "v": use 2 or more characters/,
  ],
  [
    'tmpfs with a source',
    spec((s) => (s.task.mounts = [{ type: 'tmpfs', source: 'x', target: '/d' }])),
    'task.mounts[0].source',
    /^task\.mounts\[0\]: a tmpfs mount takes no source/,
  ],
  [
    'tmpfs size on a volume',
    spec((s) => (s.task.mounts = [{ type: 'volume', target: '/d', tmpfsSizeBytes: 10 }])),
    'task.mounts[0].tmpfsSizeBytes',
    /only applies to tmpfs/,
  ],
  [
    'readOnly not a boolean',
    spec((s) => (s.task.mounts = [{ type: 'volume', target: '/d', readOnly: 'yes' }])),
    'task.mounts[0].readOnly',
    /^task\.mounts\[0\]\.readOnly must be true or false \(got "yes"\)/,
  ],
  [
    'unknown mount key',
    spec((s) => (s.task.mounts = [{ type: 'volume', target: '/d', readonly: true }])),
    'task.mounts[0].readonly',
    /unknown field .*did you mean readOnly\?/,
  ],
  ['mounts not an array', spec((s) => (s.task.mounts = {})), 'task.mounts', /^task\.mounts must be an array/],
  // resources
  [
    'memory limit below 4 MiB',
    spec((s) => (s.task.resources = { limits: { memoryBytes: 1000 } })),
    'task.resources.limits.memoryBytes',
    /^task\.resources\.limits\.memoryBytes must be 0 or at least 4 MiB \(4194304 bytes\) \(got 1000\)/,
  ],
  [
    'negative memory limit',
    spec((s) => (s.task.resources = { limits: { memoryBytes: -1 } })),
    'task.resources.limits.memoryBytes',
    /^task\.resources\.limits\.memoryBytes must be a non-negative integer \(got -1\)/,
  ],
  [
    'fractional memory',
    spec((s) => (s.task.resources = { reservations: { memoryBytes: 5e6 + 0.5 } })),
    'task.resources.reservations.memoryBytes',
    /non-negative integer/,
  ],
  [
    'CPU limit below 0.001',
    spec((s) => (s.task.resources = { limits: { nanoCpus: 5 } })),
    'task.resources.limits.nanoCpus',
    /^task\.resources\.limits\.nanoCpus must be 0 or at least 1000000 \(0\.001 CPU\) \(got 5\)/,
  ],
  [
    'CPU reservation as a decimal',
    spec((s) => (s.task.resources = { reservations: { nanoCpus: 0.5 } })),
    'task.resources.reservations.nanoCpus',
    /non-negative integer \(got 0\.5\)/,
  ],
  ['negative pids limit', spec((s) => (s.task.resources = { limits: { pids: -5 } })), 'task.resources.limits.pids', /non-negative integer \(got -5\)/],
  ['pids reservation', spec((s) => (s.task.resources = { reservations: { pids: 5 } })), 'task.resources.reservations.pids', /unknown field/],
  [
    'typo in limits',
    spec((s) => (s.task.resources = { limits: { memroyBytes: 5 } })),
    'task.resources.limits.memroyBytes',
    /^task\.resources\.limits\.memroyBytes: unknown field .*did you mean memoryBytes\?/,
  ],
  ['unknown resources key', spec((s) => (s.task.resources = { limit: {} })), 'task.resources.limit', /did you mean limits\?/],
  // restart policy
  [
    'unknown restart condition',
    spec((s) => (s.task.restartPolicy = { condition: 'always' })),
    'task.restartPolicy.condition',
    /^task\.restartPolicy\.condition must be none, on-failure or any \(got "always"\)/,
  ],
  ['negative restart delay', spec((s) => (s.task.restartPolicy = { delayMs: -5 })), 'task.restartPolicy.delayMs', /milliseconds \(got -5\)/],
  ['negative max attempts', spec((s) => (s.task.restartPolicy = { maxAttempts: -1 })), 'task.restartPolicy.maxAttempts', /non-negative integer \(got -1\)/],
  ['negative restart window', spec((s) => (s.task.restartPolicy = { windowMs: -1 })), 'task.restartPolicy.windowMs', /milliseconds/],
  // placement
  [
    'bad constraint key',
    spec((s) => (s.task.placement = { constraints: ['node.label.zone==a'] })),
    'task.placement.constraints[0]',
    /^task\.placement\.constraints\[0\]: invalid constraint "node\.label\.zone==a": unknown key "node\.label\.zone"/,
  ],
  [
    'constraint without operator',
    spec((s) => (s.task.placement = { constraints: ['node.role==manager', 'node.role'] })),
    'task.placement.constraints[1]',
    /^task\.placement\.constraints\[1\]: invalid constraint "node\.role": expected key==value/,
  ],
  [
    'bad role in a constraint',
    spec((s) => (s.task.placement = { constraints: ['node.role==boss'] })),
    'task.placement.constraints[0]',
    /node\.role is manager or worker/,
  ],
  ['constraints not strings', spec((s) => (s.task.placement = { constraints: [1] })), 'task.placement.constraints[0]', /must be a string/],
  [
    'spread over something else',
    spec((s) => (s.task.placement = { preferences: [{ spread: 'zone' }] })),
    'task.placement.preferences[0].spread',
    /^task\.placement\.preferences\[0\]\.spread must be node\.labels\.<name> \(got "zone"\)/,
  ],
  ['preference without spread', spec((s) => (s.task.placement = { preferences: [{}] })), 'task.placement.preferences[0].spread', /is required/],
  [
    'unknown preference strategy',
    spec((s) => (s.task.placement = { preferences: [{ pack: 'node.labels.x' }] })),
    'task.placement.preferences[0].pack',
    /unknown field/,
  ],
  ['negative maxReplicas', spec((s) => (s.task.placement = { maxReplicas: -1 })), 'task.placement.maxReplicas', /non-negative integer \(got -1\)/],
  [
    'maxReplicas on a global service',
    spec((s) => ((s.mode = { global: {} }), (s.task.placement = { maxReplicas: 1 }))),
    'task.placement.maxReplicas',
    /cannot be used with a global service/,
  ],
  // health check
  [
    'health check interval negative',
    spec((s) => (s.task.healthcheck = { test: ['CMD-SHELL', 'true'], intervalMs: -5 })),
    'task.healthcheck.intervalMs',
    /^task\.healthcheck\.intervalMs must be > 0 \(got -5; leave it out, or 0, for the default\)/,
  ],
  [
    'health check timeout not a number',
    spec((s) => (s.task.healthcheck = { timeoutMs: '5s' })),
    'task.healthcheck.timeoutMs',
    /^task\.healthcheck\.timeoutMs must be > 0 \(got "5s"/,
  ],
  ['health check start period fractional', spec((s) => (s.task.healthcheck = { startPeriodMs: 0.5 })), 'task.healthcheck.startPeriodMs', /must be > 0/],
  ['negative health retries', spec((s) => (s.task.healthcheck = { retries: -1 })), 'task.healthcheck.retries', /non-negative integer/],
  [
    'health test with an unknown form',
    spec((s) => (s.task.healthcheck = { test: ['curl', 'x'] })),
    'task.healthcheck.test',
    /^task\.healthcheck\.test must be \[\]/,
  ],
  ['health test NONE with extras', spec((s) => (s.task.healthcheck = { test: ['NONE', 'x'] })), 'task.healthcheck.test', /must be \[\]/],
  ['health test CMD-SHELL without command', spec((s) => (s.task.healthcheck = { test: ['CMD-SHELL'] })), 'task.healthcheck.test', /must be \[\]/],
  ['health test CMD without executable', spec((s) => (s.task.healthcheck = { test: ['CMD'] })), 'task.healthcheck.test', /must be \[\]/],
  ['health check typo', spec((s) => (s.task.healthcheck = { interval: 5 })), 'task.healthcheck.interval', /did you mean intervalMs\?/],
  // update / rollback
  ['negative update parallelism', spec((s) => (s.update = { parallelism: -1 })), 'update.parallelism', /^update\.parallelism must be ≥ 0 \(got -1/],
  [
    'fractional rollback parallelism',
    spec((s) => (s.rollback = { parallelism: 0.5 })),
    'rollback.parallelism',
    /^rollback\.parallelism must be an integer ≥ 0/,
  ],
  [
    'failure ratio above 1',
    spec((s) => (s.update = { maxFailureRatio: 2 })),
    'update.maxFailureRatio',
    /^update\.maxFailureRatio must be between 0 and 1 \(got 2\)$/,
  ],
  ['negative failure ratio', spec((s) => (s.rollback = { maxFailureRatio: -0.1 })), 'rollback.maxFailureRatio', /must be between 0 and 1/],
  [
    'unknown failure action',
    spec((s) => (s.update = { failureAction: 'stop' })),
    'update.failureAction',
    /^update\.failureAction must be pause, continue or rollback \(got "stop"\)/,
  ],
  [
    'rollback on rollback failure',
    spec((s) => (s.rollback = { failureAction: 'rollback' })),
    'rollback.failureAction',
    /^rollback\.failureAction must be pause or continue/,
  ],
  ['unknown order', spec((s) => (s.update = { order: 'parallel' })), 'update.order', /must be stop-first or start-first/],
  ['negative update delay', spec((s) => (s.update = { delayMs: -1 })), 'update.delayMs', /milliseconds/],
  ['negative monitor', spec((s) => (s.rollback = { monitorMs: -1 })), 'rollback.monitorMs', /milliseconds/],
  ['update typo', spec((s) => (s.update = { paralelism: 2 })), 'update.paralelism', /did you mean parallelism\?/],
  // networks
  ['networks not an array', spec((s) => (s.networks = 'backend')), 'networks', /^networks must be an array/],
  ['network without target', spec((s) => (s.networks = [{ aliases: ['a'] }])), 'networks[0].target', /^networks\[0\]\.target is required/],
  [
    'network attached twice',
    spec((s) => (s.networks = [{ target: 'a' }, { target: 'b' }, { target: 'a' }])),
    'networks[2]',
    /^networks\[2\]: network a is attached twice/,
  ],
  ['empty alias', spec((s) => (s.networks = [{ target: 'a', aliases: [''] }])), 'networks[0].aliases[0]', /must be a non-empty name/],
  ['network as a string', spec((s) => (s.networks = ['a'])), 'networks[0]', /^networks\[0\] must be an object \(got "a"\)/],
  // endpoint
  ['unknown endpoint mode', spec((s) => (s.endpoint = { mode: 'rr' })), 'endpoint.mode', /^endpoint\.mode must be vip or dnsrr \(got "rr"\)/],
  [
    'published port used twice',
    spec(
      (s) =>
        (s.endpoint = {
          ports: [
            { targetPort: 80, publishedPort: 8080 },
            { targetPort: 81, publishedPort: 8080 },
          ],
        }),
    ),
    'endpoint.ports[1]',
    /^endpoint\.ports\[1\]: published port 8080\/tcp is used twice/,
  ],
  [
    'host and ingress on the same port',
    spec(
      (s) =>
        (s.endpoint = {
          ports: [
            { targetPort: 80, publishedPort: 80, publishMode: 'host' },
            { targetPort: 81, publishedPort: 80 },
          ],
        }),
    ),
    'endpoint.ports[1]',
    /published port 80\/tcp is used twice/,
  ],
  [
    'target port 0',
    spec((s) => (s.endpoint = { ports: [{ targetPort: 0 }] })),
    'endpoint.ports[0].targetPort',
    /^endpoint\.ports\[0\]\.targetPort must be an integer 1–65535 \(got 0\)/,
  ],
  ['target port missing', spec((s) => (s.endpoint = { ports: [{ publishedPort: 80 }] })), 'endpoint.ports[0].targetPort', /is required/],
  [
    'published port too big',
    spec((s) => (s.endpoint = { ports: [{ targetPort: 80, publishedPort: 70000 }] })),
    'endpoint.ports[0].publishedPort',
    /must be an integer 1–65535 \(got 70000\)/,
  ],
  ['unknown protocol', spec((s) => (s.endpoint = { ports: [{ targetPort: 80, protocol: 'http' }] })), 'endpoint.ports[0].protocol', /must be tcp, udp or sctp/],
  [
    'unknown publish mode',
    spec((s) => (s.endpoint = { ports: [{ targetPort: 80, publishMode: 'global' }] })),
    'endpoint.ports[0].publishMode',
    /must be ingress or host/,
  ],
  [
    'ingress port with dnsrr',
    spec((s) => (s.endpoint = { mode: 'dnsrr', ports: [{ targetPort: 80, publishedPort: 8080 }] })),
    'endpoint.ports[0]',
    /^endpoint\.ports\[0\]: port 80\/tcp is published in ingress mode, which cannot be used with endpoint mode dnsrr/,
  ],
  ['port typo', spec((s) => (s.endpoint = { ports: [{ target: 80 }] })), 'endpoint.ports[0].target', /unknown field/],
];

for (const [what, input, field, message] of BAD) {
  test(`refused: ${what} → ${field || 'spec'}`, () => {
    const e = specError(input);
    assert.equal(e.field, field, `field for "${what}": ${e.message}`);
    assert.match(e.message, message);
    // The message names the field (or its parent object for "must set one of" style messages).
    const named = field.replace(/\[[^\]]*\]$/, '').split('.')[0] || 'spec';
    assert.ok(e.message.includes(named) || (field === '' && e.message.startsWith('spec')), `message "${e.message}" does not name ${field}`);
  });
}

// ------------------------------------------------------------------------------- valid in Docker

const GOOD: [what: string, input: unknown][] = [
  ['0 replicas', spec((s) => (s.mode = { replicated: { replicas: 0 } }))],
  ['a name with _ and .', spec((s) => (s.name = 'my_web.v2'))],
  ['a 63-character name', spec((s) => (s.name = 'a'.repeat(63)))],
  ['image with registry port, path and tag', spec((s) => (s.task.image = 'localhost:5000/a/b-c/d__e:v1.2-rc_3'))],
  ['image with a digest only', spec((s) => (s.task.image = 'busybox@sha256:' + '0'.repeat(64)))],
  ['image with tag and digest', spec((s) => (s.task.image = 'docker.io/library/busybox:1.36@sha256:' + 'f'.repeat(64)))],
  ['image on an uppercase registry host', spec((s) => (s.task.image = 'Registry.Example.com/team/app'))],
  ['image on an IPv6 registry', spec((s) => (s.task.image = '[::1]:5000/app:1'))],
  ['an anonymous volume', spec((s) => (s.task.mounts = [{ type: 'volume', target: '/data' }]))],
  ['a read-only tmpfs', spec((s) => (s.task.mounts = [{ type: 'tmpfs', target: '/run', readOnly: true }]))],
  ['templated bind source', spec((s) => (s.task.mounts = [{ type: 'bind', source: '/srv/{{.Task.Slot}}', target: '/data' }]))],
  ['templated volume name', spec((s) => (s.task.mounts = [{ type: 'volume', source: '{{.Service.Name}}-{{.Task.Slot}}', target: '/data' }]))],
  [
    'every template field',
    spec(
      (s) =>
        (s.task.env = [
          `ALL=${TEMPLATE_FIELDS.map((f) => `{{${f}}}`).join(',')}`,
          'SPACED={{ .Node.ID }}',
          'TRIM={{- .Task.Name -}}',
          'LIT={{"{{"}}',
          'C={{/* c */}}x',
        ]),
    ),
  ],
  ['templates only in env values (keys are literal)', spec((s) => (s.task.env = ['K{{x}}=1']))],
  ['env with = in the value', spec((s) => (s.task.env = ['A=b=c', 'EMPTY=']))],
  [
    'ingress and host ports on different numbers',
    spec(
      (s) =>
        (s.endpoint = {
          ports: [
            { targetPort: 80, publishedPort: 80 },
            { targetPort: 80, publishedPort: 81, publishMode: 'host' },
          ],
        }),
    ),
  ],
  [
    'same published port over tcp and udp',
    spec(
      (s) =>
        (s.endpoint = {
          ports: [
            { targetPort: 53, publishedPort: 53 },
            { targetPort: 53, publishedPort: 53, protocol: 'udp' },
          ],
        }),
    ),
  ],
  ['two dynamically published ports', spec((s) => (s.endpoint = { ports: [{ targetPort: 80 }, { targetPort: 81 }] }))],
  ['host ports with dnsrr', spec((s) => (s.endpoint = { mode: 'dnsrr', ports: [{ targetPort: 80, publishedPort: 80, publishMode: 'host' }] }))],
  ['dnsrr without ports', spec((s) => (s.endpoint = { mode: 'dnsrr' }))],
  ['parallelism 0, ratio 1, monitor 0', spec((s) => (s.update = { parallelism: 0, maxFailureRatio: 1, monitorMs: 0 }))],
  [
    'memory reservation above the limit (Docker allows it)',
    spec((s) => (s.task.resources = { limits: { memoryBytes: 8 << 20 }, reservations: { memoryBytes: 16 << 20 } })),
  ],
  ['exactly the minimum limits', spec((s) => (s.task.resources = { limits: { nanoCpus: 1_000_000, memoryBytes: 4 << 20 } }))],
  ['signal forms', spec((s) => (s.task.stopSignal = 'term'))],
  ['a numeric signal', spec((s) => (s.task.stopSignal = '9'))],
  ['a realtime signal', spec((s) => (s.task.stopSignal = 'SIGRTMIN+3'))],
  ['health check from the image with new timing', spec((s) => (s.task.healthcheck = { intervalMs: 1000 }))],
  ['health check disabled', spec((s) => (s.task.healthcheck = { test: ['NONE'] }))],
  ['health check CMD form', spec((s) => (s.task.healthcheck = { test: ['CMD', '/bin/check'] }))],
  ['restart none', spec((s) => (s.task.restartPolicy = { condition: 'none' }))],
  [
    'constraints on every key',
    spec(
      (s) =>
        (s.task.placement = {
          constraints: [
            'node.id==abc',
            'node.hostname!=n1',
            'node.platform.os==linux',
            'node.platform.arch==x86_64',
            'node.ip==10.0.0.0/8',
            'node.labels.a/b==c',
          ],
        }),
    ),
  ],
  [
    'maxReplicas on a replicated job',
    spec((s) => ((s.mode = { replicatedJob: { maxConcurrent: 2, totalCompletions: 4 } }), (s.task.placement = { maxReplicas: 1 }))),
  ],
  ['a command and empty args', spec((s) => ((s.task.command = []), (s.task.args = [])))],
  ['labels with empty values', spec((s) => (s.labels = { 'com.example.x': '' }))],
  ['a label called __proto__', JSON.parse('{"name":"w","labels":{"__proto__":"x"},"task":{"image":"busybox"}}')],
  ['null for optional parts', spec((s) => ((s.networks = null), (s.endpoint = null), (s.task.healthcheck = null), (s.mode = null)))],
];

for (const [what, input] of GOOD) {
  test(`accepted: ${what}`, () => {
    const v = validateServiceSpec(input);
    assert.deepEqual(validateServiceSpec(v), v, 'validation is idempotent');
  });
}

test('a label called __proto__ stays a label', () => {
  const v = validateServiceSpec(JSON.parse('{"name":"w","labels":{"__proto__":"x"},"task":{"image":"busybox"}}'));
  assert.deepEqual(Object.keys(v.labels), ['__proto__']);
  assert.equal(Object.getPrototypeOf(v.labels), Object.prototype);
  assert.equal(validateServiceSpec(parseLike(['__proto__=y'])).labels['__proto__'], 'y');
});

function parseLike(labels: string[]): unknown {
  return JSON.parse(JSON.stringify({ name: 'w', task: { image: 'busybox' }, labels: Object.fromEntries(labels.map((l) => l.split('='))) }));
}

test('image reference checks', () => {
  for (const ok of ['nginx', 'nginx:1.27', 'library/nginx', 'ghcr.io/org/app:sha-abc', 'localhost/app', 'a.b:1/c', 'x'.repeat(200)]) {
    assert.equal(imageReferenceProblem(ok), null, ok);
  }
  for (const bad of ['', 'NGINX', 'nginx:', ':tag', 'a//b', 'a/-b', 'nginx@', 'bad_host_/x', 'x'.repeat(256)]) {
    assert.notEqual(imageReferenceProblem(bad), null, bad);
  }
});

test('signal names', () => {
  for (const s of ['SIGTERM', 'TERM', 'sigquit', 'Hup', '1', '64', 'RTMAX-2', 'SIGUSR1']) assert.equal(isValidSignal(s), true, s);
  for (const s of ['0', '65', 'SIGFOO', 'RTMIN+99', 'SIG', '-9', 'TERM ']) assert.equal(isValidSignal(s), false, s);
});

// -------------------------------------------------------------------------------------------- diff

test('specDiff: what an update means for the tasks', () => {
  const a = validateServiceSpec(rich());
  const edit = (f: (s: any) => void) => {
    const b = structuredClone(a) as any;
    f(b);
    return specDiff(a, validateServiceSpec(b));
  };
  assert.deepEqual(specDiff(a, a), { changed: [], renamed: false, modeKindChanged: false, scale: false, rollingUpdate: false, metadataOnly: false });

  const labelsOnly = edit((s) => (s.labels.extra = 'x'));
  assert.deepEqual(labelsOnly.changed, ['labels']);
  assert.equal(labelsOnly.metadataOnly, true);
  assert.equal(labelsOnly.rollingUpdate, false);

  const scale = edit((s) => (s.mode.replicated.replicas = 7));
  assert.deepEqual(scale.changed, ['mode']);
  assert.equal(scale.scale, true);
  assert.equal(scale.rollingUpdate, false);
  assert.equal(scale.metadataOnly, false);

  const image = edit((s) => (s.task.image = 'nginx:1.28'));
  assert.deepEqual(image.changed, ['task']);
  assert.equal(image.rollingUpdate, true);

  const force = edit((s) => (s.task.forceUpdate += 1));
  assert.equal(force.rollingUpdate, true);

  const both = edit((s) => ((s.mode.replicated.replicas = 1), (s.task.env = ['B=2'])));
  assert.deepEqual(both.changed, ['mode', 'task']);
  assert.equal(both.scale && both.rollingUpdate, true);

  const cfg = edit((s) => ((s.update.parallelism = 5), (s.rollback.delayMs = 1)));
  assert.deepEqual(cfg.changed, ['update', 'rollback']);
  assert.equal(cfg.metadataOnly, true);

  assert.deepEqual(edit((s) => s.networks.pop()).changed, ['networks']);
  assert.equal(edit((s) => s.networks.pop()).rollingUpdate, true);
  assert.equal(edit((s) => s.endpoint.ports.pop()).rollingUpdate, true);

  const kind = edit((s) => ((s.mode = { global: {} }), delete s.task.placement.maxReplicas));
  assert.equal(kind.modeKindChanged, true);
  assert.equal(kind.scale, false);
  assert.equal(edit((s) => (s.name = 'other')).renamed, true);
});

test('specDiff ignores key order; jsonEqual treats undefined properties as absent', () => {
  const a = validateServiceSpec(rich());
  const b = { ...a, task: Object.fromEntries(Object.entries(a.task).reverse()) as unknown as TaskTemplate };
  assert.deepEqual(specDiff(a, b).changed, []);
  assert.equal(jsonEqual({ a: 1, b: undefined }, { a: 1 }), true);
  assert.equal(jsonEqual([1, 2], [2, 1]), false);
  assert.equal(jsonEqual({ a: [1] }, { a: [1] }), true);
  assert.equal(jsonEqual(null, {}), false);
  // Frozen specs from the store work as they are.
  assert.deepEqual(specDiff(deepFreeze(structuredClone(a)), a).changed, []);
});

// --------------------------------------------------------------------------------------- templates

const CTX: TemplateContext = {
  node: { id: 'node0123', hostname: 'worker-1' },
  task: { id: 'task4567', name: 'web.3.task4567', slot: 3 },
  service: { id: 'svc89', name: 'web' },
};

test('expandString: every field, whitespace, trim markers, constants and comments', () => {
  assert.equal(
    expandString('{{.Node.ID}}|{{.Node.Hostname}}|{{.Task.ID}}|{{.Task.Name}}|{{.Task.Slot}}|{{.Service.ID}}|{{.Service.Name}}', CTX),
    'node0123|worker-1|task4567|web.3.task4567|3|svc89|web',
  );
  assert.equal(expandString('{{ .Node.Hostname }}-{{\t.Task.Slot\t}}', CTX), 'worker-1-3');
  assert.equal(expandString('a  {{- .Task.Slot -}}  b', CTX), 'a3b');
  assert.equal(expandString('a {{- .Task.Slot}} b', CTX), 'a3 b');
  assert.equal(expandString('{{"{{"}}.Node.ID}}', CTX), '{{.Node.ID}}');
  assert.equal(expandString('{{`raw {{x}}`}}', CTX), 'raw {{x}}');
  assert.equal(expandString('x{{/* note */}}y', CTX), 'xy');
  assert.equal(expandString('no templates, just } and { and }}', CTX), 'no templates, just } and { and }}');
  assert.equal(expandString('', CTX), '');
});

test('.Task.Slot falls back to the node id for global tasks (no slot), as in Swarm', () => {
  const g: TemplateContext = { ...CTX, task: { id: 't', name: 'web.node0123.t' } };
  assert.equal(expandString('{{.Task.Slot}}', g), 'node0123');
  assert.equal(expandString('{{.Task.Slot}}', { ...CTX, task: { ...CTX.task, slot: 0 } }), 'node0123');
});

test('templateFields lists placeholders (known or not); malformed templates throw', () => {
  assert.deepEqual(templateFields('{{.Node.ID}}-{{ .Foo.Bar }}-{{"lit"}}-{{/* c */}}'), ['.Node.ID', '.Foo.Bar']);
  assert.deepEqual(templateFields('plain'), []);
  assert.throws(() => templateFields('{{.Node.ID'), TemplateError);
  assert.throws(() => templateFields('{{"unterminated}}'), /unterminated quoted string/);
  assert.throws(
    () => expandString('{{.Node.Foo}}', CTX),
    /unknown template field \{\{\.Node\.Foo\}\} \(use \.Node\.ID, \.Node\.Hostname, \.Task\.ID, \.Task\.Name, \.Task\.Slot, \.Service\.ID, \.Service\.Name\)/,
  );
});

test('expandTemplates expands env values, hostname and mount sources and targets, nothing else, purely', () => {
  const tmpl: TaskTemplate = deepFreeze({
    image: 'app:{{.Task.Slot}}',
    command: ['echo', '{{.Node.ID}}'],
    env: ['NODE={{.Node.Hostname}}', 'KEY{{.Task.Slot}}=v', 'BARE', 'SLOT={{.Task.Slot}}/{{.Service.Name}}'],
    hostname: '{{.Service.Name}}-{{.Task.Slot}}',
    labels: { l: '{{.Node.ID}}' },
    mounts: [
      { type: 'volume', source: 'data-{{.Task.Slot}}', target: '/data/{{.Task.ID}}' },
      { type: 'tmpfs', target: '/tmp' },
    ],
  }) as unknown as TaskTemplate;
  const out = expandTemplates(tmpl, CTX);
  assert.deepEqual(out, {
    image: 'app:{{.Task.Slot}}',
    command: ['echo', '{{.Node.ID}}'],
    env: ['NODE=worker-1', 'KEY{{.Task.Slot}}=v', 'BARE', 'SLOT=3/web'],
    hostname: 'web-3',
    labels: { l: '{{.Node.ID}}' },
    mounts: [
      { type: 'volume', source: 'data-3', target: '/data/task4567' },
      { type: 'tmpfs', target: '/tmp' },
    ],
  });
  assert.equal(tmpl.env![0], 'NODE={{.Node.Hostname}}');
  assert.equal(Object.isFrozen(out), false);
  // A template without any templated field comes back equal.
  const plain: TaskTemplate = { image: 'x', env: ['A=1'] };
  assert.deepEqual(expandTemplates(plain, CTX), plain);
});

test('a validated spec expands cleanly (validation and expansion agree)', () => {
  const v = validateServiceSpec(rich());
  const out = expandTemplates(v.task, CTX);
  assert.deepEqual(out.env, ['A=1', 'NODE=worker-1', 'EMPTY=']);
  assert.equal(out.hostname, 'web-3');
  assert.equal(out.mounts![1]!.source, 'cache-3');
});

// ------------------------------------------------------------------------------------------- limits

/** The LimitExceededError validating `input` under `limits` throws. */
function limitError(input: unknown, limits = DEFAULT_LIMITS): LimitExceededError {
  try {
    validateServiceSpec(input, { ...limits });
  } catch (e) {
    assert.ok(e instanceof LimitExceededError, `expected a LimitExceededError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected validation to fail');
}

test('cluster limits: replicas, job completions and concurrency past limits.maxReplicas are refused, naming the setting and field', () => {
  const e = limitError(spec((s) => (s.mode = { replicated: { replicas: 1_000_000_000 } })));
  assert.equal(e.setting, 'limits.maxReplicas');
  assert.equal(e.limit, DEFAULT_LIMITS.maxReplicas);
  assert.equal(e.actual, 1_000_000_000);
  assert.equal(e.field, 'mode.replicated.replicas');
  assert.match(e.message, /at most 10000 replicas .*limits\.maxReplicas.*--max-replicas/);
  // Exactly at the limit passes; the limit is the cluster's, not a constant.
  validateServiceSpec(spec((s) => (s.mode = { replicated: { replicas: DEFAULT_LIMITS.maxReplicas } })));
  const small = { ...DEFAULT_LIMITS, maxReplicas: 3 };
  assert.equal(
    limitError(
      spec((s) => (s.mode = { replicated: { replicas: 4 } })),
      small,
    ).field,
    'mode.replicated.replicas',
  );
  assert.equal(
    limitError(
      spec((s) => (s.mode = { replicatedJob: { totalCompletions: 4, maxConcurrent: 1 } })),
      small,
    ).field,
    'mode.replicatedJob.totalCompletions',
  );
  assert.equal(
    limitError(
      spec((s) => (s.mode = { replicatedJob: { totalCompletions: 2, maxConcurrent: 4 } })),
      small,
    ).field,
    'mode.replicatedJob.maxConcurrent',
  );
  // Global services have no replica count to limit.
  validateServiceSpec(
    spec((s) => (s.mode = { global: {} })),
    small,
  );
});

test('cluster limits: labels (count, key and value bytes) of the service and its task template', () => {
  const few = { ...DEFAULT_LIMITS, maxLabels: 2, maxLabelKeyBytes: 8, maxLabelValueBytes: 16 };
  assert.equal(
    limitError(
      spec((s) => (s.labels = { a: '', b: '', c: '' })),
      few,
    ).setting,
    'limits.maxLabels',
  );
  assert.equal(
    limitError(
      spec((s) => (s.task.labels = { a: '', b: '', c: '' })),
      few,
    ).field,
    'task.labels',
  );
  assert.equal(
    limitError(
      spec((s) => (s.labels = { 'a-very-long-key': '' })),
      few,
    ).setting,
    'limits.maxLabelKeyBytes',
  );
  assert.equal(
    limitError(
      spec((s) => (s.labels = { k: 'v'.repeat(17) })),
      few,
    ).setting,
    'limits.maxLabelValueBytes',
  );
  validateServiceSpec(
    spec((s) => (s.labels = { a: 'v'.repeat(16), b: '' })),
    few,
  );
});

test('cluster limits: the name length and the spec size (half of limits.maxObjectBytes: the previous spec is kept too)', () => {
  assert.equal(
    limitError(
      spec((s) => (s.name = 'web-frontend')),
      { ...DEFAULT_LIMITS, maxNameLength: 8 },
    ).setting,
    'limits.maxNameLength',
  );
  // A 300 KiB spec: over half of a 512 KiB object limit, within half of 1 MiB.
  const big = spec((s) => (s.task.env = [`PAD=${'x'.repeat(300 * 1024)}`]));
  const e = limitError(big, { ...DEFAULT_LIMITS, maxObjectBytes: 512 * 1024 });
  assert.equal(e.setting, 'limits.maxObjectBytes');
  assert.match(e.message, /previous spec/);
  validateServiceSpec(big, { ...DEFAULT_LIMITS, maxObjectBytes: 1024 * 1024 });
  // checkSpecLimits is what validation runs; the API also runs it on specs it builds (scale).
  assert.throws(() => checkSpecLimits(validateServiceSpec(base()), { ...DEFAULT_LIMITS, maxNameLength: 2 }), LimitExceededError);
});

test('cluster limits are checked after every other rule: an invalid spec is still a SpecError', () => {
  const e = specError(
    spec((s) => {
      s.mode = { replicated: { replicas: 1_000_000_000 } };
      s.task.image = 'Not An Image';
    }),
  );
  assert.equal(e.field, 'task.image');
});
