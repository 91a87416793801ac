// The autoscale policy where people write it: the service spec (validation with the field named,
// defaults, limits, the update diff), the CLI's --autoscale flag, and a compose file's x-shoal-autoscale
// (converted into the spec; a redeploy keeps the autoscaled count).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_LIMITS } from '../../api/objects.ts';
import { parseAutoscale, parseServiceCreateArgs, parseServiceUpdateArgs } from '../../cli/service-flags.ts';
import { DEFAULT_COOLDOWN_IN_MS, DEFAULT_COOLDOWN_OUT_MS, DEFAULT_WINDOW_MS } from '../../manager/autoscale/decide.ts';
import { SpecError, specDiff, validateServiceSpec } from '../../manager/service/spec.ts';
import { LimitExceededError } from '../../manager/store/errors.ts';
import { convertStack } from '../../stack/convert.ts';
import { ComposeError } from '../../stack/compose/errors.ts';
import { planDeploy } from '../../stack/plan.ts';
import { loadMemory } from '../stack/helpers.ts';

const spec = (autoscale: unknown, extra: Record<string, unknown> = {}) => ({ name: 'web', task: { image: 'nginx:1.27' }, autoscale, ...extra });

function refused(input: unknown, field: string, message: RegExp): void {
  assert.throws(
    () => validateServiceSpec(input),
    (e: unknown) => e instanceof SpecError && e.field === field && message.test(e.message),
    `expected a SpecError on ${field} matching ${message}`,
  );
}

describe('autoscale in the service spec', () => {
  it('is normalised: defaults filled in, "70%" read as 70, canonical key order', () => {
    const s = validateServiceSpec(spec({ cpu: '70%', max: 20, min: 2 }));
    assert.deepEqual(s.autoscale, {
      min: 2,
      max: 20,
      cpu: 70,
      windowMs: DEFAULT_WINDOW_MS,
      cooldowns: { outMs: DEFAULT_COOLDOWN_OUT_MS, inMs: DEFAULT_COOLDOWN_IN_MS },
    });
    assert.deepEqual(Object.keys(s.autoscale!), ['min', 'max', 'cpu', 'windowMs', 'cooldowns']);
    const m = validateServiceSpec(
      spec(
        { min: 1, max: 3, memory: 80, windowMs: 20_000, cooldowns: { outMs: 5000 } },
        { task: { image: 'nginx', resources: { limits: { memoryBytes: 64 << 20 } } } },
      ),
    );
    assert.deepEqual(m.autoscale, { min: 1, max: 3, memory: 80, windowMs: 20_000, cooldowns: { outMs: 5000, inMs: DEFAULT_COOLDOWN_IN_MS } });
    assert.equal(validateServiceSpec(spec(undefined)).autoscale, undefined);
  });

  it('bad policies are refused with the field named', () => {
    refused(spec({ max: 3, cpu: 50 }), 'autoscale.min', /autoscale\.min is required/);
    refused(spec({ min: 1, cpu: 50 }), 'autoscale.max', /autoscale\.max is required/);
    refused(spec({ min: 0, max: 3, cpu: 50 }), 'autoscale.min', /≥ 1/);
    refused(spec({ min: 1.5, max: 3, cpu: 50 }), 'autoscale.min', /whole number/);
    refused(spec({ min: 4, max: 3, cpu: 50 }), 'autoscale.max', /must not be below autoscale\.min \(4\)/);
    refused(spec({ min: 1, max: 3 }), 'autoscale', /at least one target: cpu or memory/);
    refused(spec({ min: 1, max: 3, cpu: 0 }), 'autoscale.cpu', /whole percentage from 1 to 100 \(got 0\)/);
    refused(spec({ min: 1, max: 3, cpu: 101 }), 'autoscale.cpu', /1 to 100/);
    refused(spec({ min: 1, max: 3, cpu: '70 percent' }), 'autoscale.cpu', /percentage/);
    refused(spec({ min: 1, max: 3, memory: 80 }), 'autoscale.memory', /set task\.resources\.limits\.memoryBytes/);
    refused(spec({ min: 1, max: 3, cpu: 50, windowMs: 10 }), 'autoscale.windowMs', /at least 1000/);
    refused(spec({ min: 1, max: 3, cpu: 50, cooldowns: { outMs: -1 } }), 'autoscale.cooldowns.outMs', /non-negative/);
    refused(spec({ min: 1, max: 3, cpu: 50, cooldown: 5 }), 'autoscale.cooldown', /unknown field.*did you mean cooldowns/);
    refused(spec({ min: 1, max: 3, cpu: 50 }, { mode: { global: {} } }), 'autoscale', /only a replicated service can be autoscaled \(this one is global\)/);
    refused(spec([1, 2]), 'autoscale', /must be an object/);
  });

  it('max is held to the cluster replica limit', () => {
    assert.throws(
      () => validateServiceSpec(spec({ min: 1, max: 50, cpu: 50 }), { ...DEFAULT_LIMITS, maxReplicas: 10 }),
      (e: unknown) => e instanceof LimitExceededError && /autoscale\.max/.test(e.message),
    );
  });

  it('changing only the policy is a metadata-only update (no task is replaced)', () => {
    const a = validateServiceSpec(spec({ min: 1, max: 3, cpu: 50 }));
    const b = validateServiceSpec(spec({ min: 1, max: 5, cpu: 50 }));
    const d = specDiff(a, b);
    assert.deepEqual(d.changed, ['autoscale']);
    assert.equal(d.metadataOnly, true);
    assert.equal(d.rollingUpdate, false);
    assert.deepEqual(specDiff(validateServiceSpec(spec(undefined)), a).changed, ['autoscale']);
  });
});

describe('--autoscale', () => {
  it('parses min, max, targets, window and cooldowns', () => {
    assert.deepEqual(parseAutoscale('min=2,max=20,cpu=70%'), { min: 2, max: 20, cpu: 70 });
    assert.deepEqual(parseAutoscale('min=1,max=4,cpu=50,memory=80%,window=30s,cooldown-out=10s,cooldown-in=1m'), {
      min: 1,
      max: 4,
      cpu: 50,
      memory: 80,
      windowMs: 30_000,
      cooldowns: { outMs: 10_000, inMs: 60_000 },
    });
    assert.deepEqual(parseAutoscale('min=1,max=2,cpu=60%,cooldown=5s')?.cooldowns, { outMs: 5000, inMs: 5000 });
    assert.equal(parseAutoscale('none'), null);
  });

  it('refuses what it cannot parse, naming the flag', () => {
    const bad: [string, RegExp][] = [
      ['min=2,cpu=70%', /needs min= and max=/],
      ['min=2,max=3', /needs a target/],
      ['min=2,max=3,cpu=high', /cpu=high: expected a percentage/],
      ['min=2,max=3,cpu=70%,target=5', /unknown key "target"/],
      ['min=two,max=3,cpu=70%', /invalid number "two"/],
      ['min=2,max=3,cpu=70%,window=5', /invalid duration/],
      ['min=2,max=3,cpu=', /cpu needs a value/],
    ];
    for (const [s, re] of bad)
      assert.throws(
        () => parseAutoscale(s),
        (e: unknown) => /--autoscale/.test((e as Error).message) && re.test((e as Error).message),
        s,
      );
  });

  it('create sets the policy; update replaces it, or removes it with none, and keeps it otherwise', () => {
    const c = parseServiceCreateArgs(['--name', 'web', '--autoscale', 'min=2,max=20,cpu=70%', 'nginx']);
    assert.deepEqual(c.spec.autoscale, { min: 2, max: 20, cpu: 70 });
    const current = validateServiceSpec(spec({ min: 2, max: 20, cpu: 70 }));
    assert.deepEqual(parseServiceUpdateArgs(['--autoscale', 'min=1,max=5,memory=50%', 'web'], current).spec.autoscale, { min: 1, max: 5, memory: 50 });
    assert.equal(parseServiceUpdateArgs(['--autoscale', 'none', 'web'], current).spec.autoscale, undefined);
    assert.deepEqual(parseServiceUpdateArgs(['--image', 'nginx:2', 'web'], current).spec.autoscale, current.autoscale);
  });
});

describe('x-shoal-autoscale in a compose file', () => {
  const stack = (auto: string, replicas = 2) =>
    convertStack(
      loadMemory({ '/app/s.yml': `services:\n  web:\n    image: nginx:1.27\n    deploy:\n      replicas: ${replicas}\n    x-shoal-autoscale: ${auto}\n` }, [
        's.yml',
      ]),
      'ns',
    );

  it('becomes spec.autoscale, with compose durations', () => {
    const s = stack('{min: 2, max: 8, cpu: 60%, window: 1m, cooldown_out: 10s, cooldown_in: 20s}');
    assert.deepEqual(s.services[0]!.spec.autoscale, { min: 2, max: 8, cpu: 60, windowMs: 60_000, cooldowns: { outMs: 10_000, inMs: 20_000 } });
  });

  it('problems name the file, line and x-shoal-autoscale', () => {
    const cases: [string, RegExp][] = [
      ['{min: 2, max: 1, cpu: 60}', /s\.yml:2: services\.web\.x-shoal-autoscale: autoscale\.max \(1\) must not be below/],
      ['{min: 2, max: 3}', /services\.web\.x-shoal-autoscale: autoscale needs at least one target/],
      ['{min: 2, max: 3, cpu: 50, window: soon}', /services\.web\.x-shoal-autoscale: window must be a duration/],
      ['{min: 2, max: 3, cpu: 50, step: 2}', /services\.web\.x-shoal-autoscale: unknown key step/],
    ];
    for (const [auto, re] of cases)
      assert.throws(
        () => stack(auto),
        (e: unknown) => e instanceof ComposeError && re.test(e.message),
        auto,
      );
  });

  it('a redeploy keeps the count the autoscaler chose, and still updates the rest', () => {
    const s = stack('{min: 2, max: 8, cpu: 60}');
    const cur = { ...s.services[0]!.spec, mode: { replicated: { replicas: 6 } } };
    const existing = {
      services: [{ id: 'x', name: 'ns_web', labels: { 'com.docker.stack.namespace': 'ns' }, spec: cur }],
      networks: [],
      secrets: [],
      configs: [],
    };
    const same = planDeploy(s, existing);
    assert.ok(
      same.steps.some((st) => st.kind === 'service' && st.action === 'unchanged'),
      JSON.stringify(same.steps.map((x) => x.action)),
    );
    const wider = stack('{min: 2, max: 10, cpu: 60}');
    const upd = planDeploy(wider, existing).steps.find((st) => st.kind === 'service' && st.action === 'update');
    assert.ok(upd && upd.action === 'update' && upd.kind === 'service');
    assert.deepEqual(upd.changed, ['autoscale']);
    assert.deepEqual(upd.service.spec.mode, { replicated: { replicas: 6 } });
  });
});
