// The facade's pure translations: Docker ServiceSpec → Shoal spec (validated by the control API's own
// validator) and back, durations in nanoseconds, warnings for fields Shoal lacks, list filters, and
// one architecture under its three names in placement constraints.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { specOut, toShoalSpec } from '../../manager/docker-api/convert-service.ts';
import { allLabels, anyOf, parseFilters, prefixOf } from '../../manager/docker-api/filters.ts';
import { dockerArch, goArch } from '../../manager/docker-api/wire.ts';
import { validateServiceSpec } from '../../manager/service/spec.ts';
import { matches, parseConstraints } from '../../manager/scheduler/constraints.ts';

/** What `docker service create` 28.x sends for a typical service (trimmed of empty fields). */
const CLI_SPEC = {
  Name: 'web',
  Labels: { tier: 'front' },
  TaskTemplate: {
    ContainerSpec: {
      Image: 'busybox:1.36@sha256:' + 'a'.repeat(64),
      Args: ['sleep', '1000'],
      Env: ['A=1'],
      Init: false,
      StopGracePeriod: 3_000_000_000,
      Healthcheck: { Test: ['CMD-SHELL', 'true'], Interval: 2_000_000_000 },
      Mounts: [{ Type: 'tmpfs', Target: '/scratch', TmpfsOptions: { SizeBytes: 1 << 20 } }],
      DNSConfig: {},
      Isolation: 'default',
    },
    Resources: { Limits: { NanoCPUs: 500_000_000, MemoryBytes: 64 << 20 }, Reservations: {} },
    RestartPolicy: { Condition: 'on-failure', Delay: 1_000_000_000, MaxAttempts: 3 },
    Placement: { Constraints: ['node.platform.arch==x86_64'], Platforms: [{ Architecture: 'amd64', OS: 'linux' }] },
    Networks: [{ Target: 'front', Aliases: ['www'] }],
    ForceUpdate: 0,
    Runtime: 'container',
  },
  Mode: { Replicated: { Replicas: 3 } },
  UpdateConfig: { Parallelism: 2, Delay: 500_000_000, FailureAction: 'rollback', Monitor: 4_000_000_000, MaxFailureRatio: 0.1, Order: 'start-first' },
  EndpointSpec: { Mode: 'vip', Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'ingress' }] },
};

describe('Docker ServiceSpec ↔ Shoal', () => {
  it('translates what the CLI sends into a spec the control API accepts, ns → ms', () => {
    const { spec, warnings } = toShoalSpec(CLI_SPEC);
    assert.deepEqual(warnings, []);
    const v = validateServiceSpec(spec);
    assert.equal(v.name, 'web');
    assert.deepEqual(v.mode, { replicated: { replicas: 3 } });
    assert.equal(v.task.stopGracePeriodMs, 3000);
    assert.equal(v.task.healthcheck?.intervalMs, 2000);
    assert.deepEqual(v.task.restartPolicy, { condition: 'on-failure', delayMs: 1000, maxAttempts: 3, windowMs: 0 });
    assert.deepEqual(v.update, { parallelism: 2, delayMs: 500, failureAction: 'rollback', monitorMs: 4000, maxFailureRatio: 0.1, order: 'start-first' });
    assert.deepEqual(v.networks, [{ target: 'front', aliases: ['www'] }]);
    assert.equal(v.endpoint.ports[0]?.publishedPort, 8080);
  });

  it('comes back as the same Docker spec (the fields both have)', () => {
    const back = specOut(validateServiceSpec(toShoalSpec(CLI_SPEC).spec)) as any;
    assert.equal(back.TaskTemplate.ContainerSpec.StopGracePeriod, 3_000_000_000);
    assert.deepEqual(back.UpdateConfig, CLI_SPEC.UpdateConfig);
    assert.deepEqual(back.Mode, CLI_SPEC.Mode);
    assert.deepEqual(back.EndpointSpec, CLI_SPEC.EndpointSpec);
    assert.deepEqual(back.TaskTemplate.Resources.Limits, CLI_SPEC.TaskTemplate.Resources.Limits);
  });

  it('reads a stack deploy spec: Mode {Replicated: {}} is one replica, no EndpointSpec is vip', () => {
    const v = validateServiceSpec(
      toShoalSpec({ Name: 'ns_db', TaskTemplate: { ContainerSpec: { Image: 'redis:7' } }, Mode: { Replicated: {} }, EndpointSpec: {} }).spec,
    );
    assert.deepEqual(v.mode, { replicated: { replicas: 1 } });
    assert.deepEqual(v.endpoint.ports, []);
  });

  it('names every set field Shoal cannot honour, and only those', () => {
    const { warnings } = toShoalSpec({
      Name: 'x',
      TaskTemplate: {
        ContainerSpec: { Image: 'busybox', ReadOnly: true, CapabilityAdd: ['NET_ADMIN'], Sysctls: { 'net.ipv4.ip_forward': '1' }, TTY: false, Groups: [] },
        LogDriver: { Name: 'json-file' },
      },
    });
    assert.deepEqual(warnings.sort(), [
      'ContainerSpec.CapabilityAdd is not supported by Shoal and was ignored',
      'ContainerSpec.ReadOnly is not supported by Shoal and was ignored',
      'ContainerSpec.Sysctls is not supported by Shoal and was ignored',
      'TaskTemplate.LogDriver is not supported by Shoal (tasks log to their node) and was ignored',
    ]);
  });

  it('refuses an unknown restart condition with the field named', () => {
    assert.throws(
      () => toShoalSpec({ Name: 'x', TaskTemplate: { ContainerSpec: { Image: 'b' }, RestartPolicy: { Condition: 'always' } } }),
      /RestartPolicy\.Condition/,
    );
  });
});

describe('filters', () => {
  it('parses map[string]map[string]bool and the older map[string][]string', () => {
    const f = parseFilters(JSON.stringify({ name: { we: true, no: false }, label: ['a=b'] }), ['name', 'label']);
    assert.deepEqual(f.get('name'), ['we']);
    assert.ok(anyOf(f, 'name', prefixOf('web')));
    assert.ok(!anyOf(f, 'name', prefixOf('api')));
    assert.ok(allLabels(f, 'label', { a: 'b' }));
    assert.ok(!allLabels(f, 'label', { a: 'c' }));
  });

  it('refuses unknown keys and bad JSON with a 400', () => {
    assert.throws(() => parseFilters('{"nmae":{"x":true}}', ['name']), /invalid filter 'nmae'/);
    assert.throws(() => parseFilters('{', ['name']), /not valid JSON/);
  });
});

describe('architecture names', () => {
  it('reports x86_64 to Docker and amd64 for images; constraints match any spelling', () => {
    assert.equal(dockerArch('x64'), 'x86_64');
    assert.equal(goArch('x86_64'), 'amd64');
    const node = { id: 'n', hostname: 'h', role: 'worker', os: 'linux', arch: 'x64', ip: '10.0.0.1', labels: {} };
    for (const c of ['node.platform.arch==amd64', 'node.platform.arch==x86_64', 'node.platform.arch==X64'])
      assert.ok(matches(parseConstraints([c])[0]!, node), c);
    assert.ok(!matches(parseConstraints(['node.platform.arch==arm64'])[0]!, node));
    assert.ok(matches(parseConstraints(['node.platform.arch!=aarch64'])[0]!, node));
  });
});
