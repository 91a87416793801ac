// Stack files in the shapes real Swarm users deploy (a Traefik proxy, a Prometheus/Grafana monitoring
// stack, a Portainer agent), written for these tests: they must load and convert with only the expected
// warnings, and their specs must pass the real validator.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { validateServiceSpec } from '../../manager/service/spec.ts';
import { ComposeError } from '../../stack/compose/errors.ts';
import { convertStack, type Stack } from '../../stack/convert.ts';
import { CORPUS, loadCorpus } from './helpers.ts';

function load(file: string, ns: string, env: Record<string, string> = {}): Stack {
  const stack = convertStack(loadCorpus([file], env, 'real'), ns);
  for (const s of stack.services) assert.deepEqual(validateServiceSpec(s.spec), s.spec);
  return stack;
}

describe('real-world stack shapes', () => {
  it('traefik: required variable, $$ escapes, backticks, host-mode ports, external network', () => {
    assert.throws(
      () => loadCorpus(['traefik.yml'], {}, 'real'),
      (e: unknown) =>
        e instanceof ComposeError &&
        /^traefik\.yml:15: services\.traefik\.command\[5\]: required variable ACME_EMAIL is missing a value: set ACME_EMAIL$/.test(e.message),
    );
    const stack = load('traefik.yml', 'proxy', { ACME_EMAIL: 'ops@example.com', DOMAIN: 'shoal.test' });
    assert.deepEqual(stack.warnings, ['Not honoured by Shoal yet, deployed without them: logging']);
    const t = stack.services.find((s) => s.key === 'traefik')!.spec;
    assert.equal(t.task.args![5], '--certificatesresolvers.le.acme.email=ops@example.com');
    assert.equal(t.labels['traefik.http.middlewares.admin-auth.basicauth.users'], 'admin:$apr1$8evjzfst$tB5fT1kwU7lmN2Vvf3Gyi/');
    assert.equal(t.labels['traefik.http.routers.dashboard.rule'], 'Host(`traefik.shoal.test`)');
    assert.deepEqual(
      t.endpoint.ports.map((p) => `${p.publishedPort}:${p.targetPort}/${p.publishMode}`),
      ['80:80/host', '443:443/host'],
    );
    assert.deepEqual(t.networks, [{ target: 'traefik-public', aliases: ['traefik'] }]);
    assert.deepEqual(
      stack.networks.map((n) => [n.name, n.external]),
      [['traefik-public', true]],
    );
    const w = stack.services.find((s) => s.key === 'whoami')!.spec;
    assert.equal(w.labels['traefik.http.routers.whoami.rule'], 'Host(`whoami.shoal.test`)');
  });

  it('monitoring: configs with interpolated names, global exporter, templated hostname, merged deploy defaults', () => {
    const stack = load('monitoring.yml', 'mon');
    assert.deepEqual(stack.warnings, []);
    assert.deepEqual(
      stack.configs.map((c) => [c.name, c.file]),
      [['prometheus_config_v1', `${CORPUS}/real/prometheus.yml`]],
    );
    const prom = stack.services.find((s) => s.key === 'prometheus')!;
    assert.deepEqual(prom.configs, [
      { source: 'prometheus_config_v1', key: 'prometheus_config', target: '/etc/prometheus/prometheus.yml', uid: '0', gid: '0', mode: 0o444 },
    ]);
    assert.equal(prom.spec.task.args![2], '--storage.tsdb.retention.time=15d');
    assert.deepEqual(prom.spec.task.resources, {
      limits: { nanoCpus: 1e9, memoryBytes: 2 * 2 ** 30 },
      reservations: { nanoCpus: 250_000_000, memoryBytes: 256 * 2 ** 20 },
    });
    assert.deepEqual(prom.spec.task.restartPolicy, { condition: 'on-failure', delayMs: 5000, maxAttempts: 0, windowMs: 0 });
    const ne = stack.services.find((s) => s.key === 'node-exporter')!.spec;
    assert.deepEqual(ne.mode, { global: {} });
    assert.equal(ne.task.hostname, '{{.Node.Hostname}}');
    assert.equal(ne.task.args![2], '--collector.filesystem.mount-points-exclude=^/(sys|proc|dev|host|etc)($|/)');
    assert.deepEqual(
      ne.task.mounts!.map((m) => `${m.source}:${m.target}:${m.readOnly ? 'ro' : 'rw'}`),
      ['/proc:/host/proc:ro', '/sys:/host/sys:ro', '/:/rootfs:ro'],
    );
    assert.equal(ne.task.resources!.limits!.memoryBytes, 512 * 2 ** 20);
    const g = stack.services.find((s) => s.key === 'grafana')!;
    assert.equal(g.spec.update!.order, 'start-first');
    assert.deepEqual(
      g.secrets.map((s) => s.source),
      ['grafana_admin_password'],
    );
  });

  it('portainer: global agent with socket binds, a string command split into args', () => {
    const stack = load('portainer.yml', 'portainer');
    assert.deepEqual(stack.warnings, []);
    const p = stack.services.find((s) => s.key === 'portainer')!.spec;
    assert.deepEqual(p.task.args, ['-H', 'tcp://tasks.agent:9001', '--tlsskipverify']);
    assert.deepEqual(
      p.endpoint.ports.map((x) => x.publishedPort),
      [9443, 9000, 8000],
    );
    const a = stack.services.find((s) => s.key === 'agent')!.spec;
    assert.deepEqual(a.task.placement, { constraints: ['node.platform.os == linux'] });
    assert.equal(stack.networks[0]!.spec!.attachable, true);
  });
});
