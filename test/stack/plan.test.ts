// The deploy plan: first deploy, an unchanged redeploy (nothing changes), a one-image change (one
// update), --prune, external objects (never created or removed; missing ones refused before anything),
// name conflicts, an interrupted deploy finishing on re-run — all against an in-memory "cluster" that
// applies the plan's steps the way the CLI will.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { convertStack, NAMESPACE_LABEL, type Stack } from '../../stack/convert.ts';
import { changes, planDeploy, planRemove, PlanError, type Existing, type ExistingService, type PlanStep } from '../../stack/plan.ts';
import { readFileSync } from 'node:fs';
import { CORPUS, loadCorpus, loadMemory } from './helpers.ts';

const votingText = () => readFileSync(`${CORPUS}/voting-app.yml`, 'utf8');

/** A tiny cluster model: applies plan steps (optionally only the first n) to its object lists. */
class FakeCluster implements Existing {
  services: ExistingService[] = [];
  networks: Existing['networks'][number][] = [];
  secrets: Existing['secrets'][number][] = [];
  configs: Existing['configs'][number][] = [];
  private next = 1;

  apply(steps: PlanStep[], limit = Infinity): void {
    for (const s of steps.slice(0, limit)) {
      const id = `id${this.next++}`;
      if (s.action === 'remove') {
        if (s.kind === 'service') this.services = this.services.filter((x) => x.id !== s.id);
        else if (s.kind === 'network') this.networks = this.networks.filter((x) => x.id !== s.id);
        else this[`${s.kind}s`] = this[`${s.kind}s`].filter((x) => x.id !== s.id);
      } else if (s.action === 'create' && s.kind === 'network') this.networks.push({ id, name: s.name, labels: s.network.spec!.labels, spec: s.network.spec! });
      else if (s.action === 'create' && (s.kind === 'secret' || s.kind === 'config')) this[`${s.kind}s`].push({ id, name: s.name, labels: s.object.labels });
      else if (s.action === 'update' && (s.kind === 'secret' || s.kind === 'config')) {
        const list = this[`${s.kind}s`];
        const i = list.findIndex((x) => x.id === s.id);
        list[i] = { ...list[i]!, labels: s.object.labels };
      } else if (s.action === 'create' && s.kind === 'service') this.services.push({ id, name: s.name, labels: s.service.spec.labels, spec: s.service.spec });
      else if (s.action === 'update' && s.kind === 'service') {
        const i = this.services.findIndex((x) => x.id === s.id);
        this.services[i] = { ...this.services[i]!, labels: s.service.spec.labels, spec: s.service.spec };
      }
    }
  }
}

const summary = (steps: PlanStep[]) => steps.map((s) => `${s.action} ${s.kind} ${s.name}`);

function voting(env: Record<string, string> = {}): Stack {
  return convertStack(loadCorpus(['voting-app.yml'], env), 'vote');
}

describe('deploy plan', () => {
  it('first deploy creates networks, then services, in a stable order', () => {
    const plan = planDeploy(voting(), new FakeCluster());
    assert.deepEqual(summary(plan.steps), [
      'create network vote_backend',
      'create network vote_frontend',
      'create service vote_db',
      'create service vote_redis',
      'create service vote_result',
      'create service vote_vote',
      'create service vote_worker',
    ]);
  });

  it('a redeploy of the unchanged file changes nothing', () => {
    const c = new FakeCluster();
    c.apply(planDeploy(voting(), c).steps);
    const again = planDeploy(voting(), c);
    assert.deepEqual(changes(again), []);
    assert.equal(again.steps.filter((s) => s.action === 'unchanged').length, 7);
  });

  it('changing one image updates only that service, naming what changed', () => {
    const c = new FakeCluster();
    c.apply(planDeploy(voting(), c).steps);
    const edited = convertStack(loadMemory({ '/app/s.yml': votingText().replace('redis:alpine', 'redis:7-alpine') }, ['s.yml']), 'vote');
    const plan = planDeploy(edited, c);
    assert.deepEqual(summary(changes(plan)), ['update service vote_redis']);
    const step = changes(plan)[0]!;
    assert.ok(step.action === 'update' && step.kind === 'service');
    assert.deepEqual(step.changed, ['labels', 'task']);
  });

  it("--prune removes the stack's services that left the file, first; without it they stay", () => {
    const c = new FakeCluster();
    c.apply(planDeploy(voting(), c).steps);
    c.services.push({ id: 'other', name: 'elsewhere_web', labels: { [NAMESPACE_LABEL]: 'elsewhere' }, spec: c.services[0]!.spec });
    const smaller = convertStack(
      loadMemory({ '/app/s.yml': 'services:\n  vote:\n    image: dockersamples/examplevotingapp_vote:latest\n' }, ['s.yml']),
      'vote',
    );
    const noPrune = planDeploy(smaller, c);
    assert.equal(noPrune.steps.filter((s) => s.action === 'remove').length, 0);
    const pruned = planDeploy(smaller, c, { prune: true });
    assert.deepEqual(summary(pruned.steps).slice(0, 4), [
      'remove service vote_db',
      'remove service vote_redis',
      'remove service vote_result',
      'remove service vote_worker',
    ]);
    assert.ok(!summary(pruned.steps).some((s) => s.includes('elsewhere')));
  });

  it('external objects are never created; missing ones fail the whole plan before anything', () => {
    const stack = convertStack(loadCorpus(['atsea/docker-stack.yml']), 'atsea');
    const c = new FakeCluster();
    assert.throws(
      () => planDeploy(stack, c),
      (e: unknown) =>
        e instanceof PlanError &&
        e.problems.length === 2 &&
        e.problems[0] ===
          'secret revprox_cert is declared as external, but it does not exist: create it (shoal secret create revprox_cert FILE) before deploying' &&
        e.problems[1]!.startsWith('secret revprox_key is declared as external'),
    );
    c.secrets.push({ id: 's1', name: 'revprox_cert', labels: {} }, { id: 's2', name: 'revprox_key', labels: {} });
    const plan = planDeploy(stack, c);
    assert.deepEqual(
      summary(plan.steps).filter((s) => s.includes('secret')),
      ['create secret atsea_postgres_password', 'create secret atsea_staging_token'],
    );
    c.apply(plan.steps);
    // Pruning a stack never touches external objects (and only ever removes services).
    const pruned = planDeploy(stack, c, { prune: true });
    assert.deepEqual(changes(pruned), []);
    assert.equal(c.secrets.filter((s) => s.name.startsWith('revprox')).length, 2);
  });

  it('external networks must exist (host always does)', () => {
    const stack = convertStack(
      loadMemory(
        {
          '/app/s.yml':
            'services:\n  web:\n    image: x\n    networks: [proxy, hostnet]\nnetworks:\n  proxy: {external: true}\n  hostnet: {external: true, name: host}\n',
        },
        ['s.yml'],
      ),
      'ns',
    );
    const c = new FakeCluster();
    assert.throws(() => planDeploy(stack, c), /network proxy is declared as external, but it does not exist/);
    c.networks.push({ id: 'n1', name: 'proxy', labels: {} });
    assert.deepEqual(summary(planDeploy(stack, c).steps), ['create service ns_web']);
  });

  it('names taken by objects outside the stack are refused, all problems at once', () => {
    const stack = voting();
    const c = new FakeCluster();
    c.networks.push({ id: 'n1', name: 'vote_frontend', labels: {} });
    c.services.push({ id: 's1', name: 'vote_db', labels: {}, spec: stack.services[0]!.spec });
    assert.throws(
      () => planDeploy(stack, c),
      (e: unknown) =>
        e instanceof PlanError &&
        e.problems.length === 2 &&
        /network vote_frontend already exists and does not belong to stack vote/.test(e.problems[0]!) &&
        /service vote_db already exists and does not belong to stack vote/.test(e.problems[1]!),
    );
  });

  it('a service may not change mode kind on redeploy (Swarm refuses it)', () => {
    const stack = (deploy: string) => convertStack(loadMemory({ '/app/s.yml': `services:\n  agent:\n    image: x\n    deploy: ${deploy}\n` }, ['s.yml']), 'ns');
    const c = new FakeCluster();
    c.apply(planDeploy(stack('{replicas: 2}'), c).steps);
    assert.deepEqual(summary(changes(planDeploy(stack('{replicas: 3}'), c))), ['update service ns_agent']);
    assert.throws(() => planDeploy(stack('{mode: global}'), c), /service ns_agent: cannot change mode from replicated to global; remove the service/);
  });

  it('keeps the force-update counter of `service update --force`: no restart on redeploy', () => {
    const c = new FakeCluster();
    c.apply(planDeploy(voting(), c).steps);
    const i = c.services.findIndex((x) => x.name === 'vote_vote');
    const forced = structuredClone(c.services[i]!.spec) as ExistingService['spec'] & { task: { forceUpdate?: number } };
    forced.task.forceUpdate = 2;
    c.services[i] = { ...c.services[i]!, spec: forced };
    assert.deepEqual(changes(planDeploy(voting(), c)), []);
    const edited = convertStack(loadMemory({ '/app/s.yml': votingText().replace('replicas: 2', 'replicas: 4') }, ['s.yml']), 'vote');
    const step = changes(planDeploy(edited, c))[0]!;
    assert.ok(step.action === 'update' && step.kind === 'service');
    assert.deepEqual(step.changed, ['mode']);
    assert.equal(step.service.spec.task.forceUpdate, 2);
  });

  it('an interrupted deploy completes when re-run', () => {
    const c = new FakeCluster();
    const first = planDeploy(voting(), c);
    c.apply(first.steps, 4); // two networks and two services, then the leader was lost
    const rerun = planDeploy(voting(), c);
    assert.deepEqual(summary(changes(rerun)), ['create service vote_result', 'create service vote_vote', 'create service vote_worker']);
    c.apply(rerun.steps);
    assert.deepEqual(changes(planDeploy(voting(), c)), []);
  });

  it('secret labels changed in the file → update; data is not compared here', () => {
    const files = (label: string) => ({
      '/app/s.yml': `services:\n  web:\n    image: x\n    secrets: [k]\nsecrets:\n  k:\n    file: ./k\n    labels: {v: "${label}"}\n`,
      '/app/k': 'data',
    });
    const c = new FakeCluster();
    c.apply(planDeploy(convertStack(loadMemory(files('1'), ['s.yml']), 'ns'), c).steps);
    const plan = planDeploy(convertStack(loadMemory(files('2'), ['s.yml']), 'ns'), c);
    assert.deepEqual(summary(changes(plan)), ['update secret ns_k']);
  });

  it('compares secret references once the store reports them', () => {
    const files = { '/app/s.yml': 'services:\n  web:\n    image: x\n    secrets: [k]\nsecrets:\n  k: {file: ./k}\n', '/app/k': 'data' };
    const stack = convertStack(loadMemory(files, ['s.yml']), 'ns');
    const c = new FakeCluster();
    c.apply(planDeploy(stack, c).steps);
    assert.deepEqual(changes(planDeploy(stack, c)), []);
    c.services[0] = { ...c.services[0]!, secrets: [] };
    const plan = planDeploy(stack, c);
    assert.deepEqual(summary(changes(plan)), ['update service ns_web']);
    const step = changes(plan)[0]!;
    assert.ok(step.action === 'update' && step.kind === 'service' && step.changed.includes('secrets'));
  });

  it('stack rm removes what the stack created (services first) and leaves external and foreign objects', () => {
    const stack = convertStack(loadCorpus(['atsea/docker-stack.yml']), 'atsea');
    const c = new FakeCluster();
    c.secrets.push({ id: 'x1', name: 'revprox_cert', labels: {} }, { id: 'x2', name: 'revprox_key', labels: {} });
    c.networks.push({ id: 'x3', name: 'atsea_lookalike', labels: { [NAMESPACE_LABEL]: 'other' } });
    c.apply(planDeploy(stack, c).steps);
    const rm = planRemove('atsea', c);
    assert.deepEqual(summary(rm), [
      'remove service atsea_appserver',
      'remove service atsea_database',
      'remove service atsea_payment_gateway',
      'remove service atsea_reverse_proxy',
      'remove secret atsea_postgres_password',
      'remove secret atsea_staging_token',
      'remove network atsea_back-tier',
      'remove network atsea_front-tier',
      'remove network atsea_payment',
    ]);
    c.apply(rm);
    assert.deepEqual(planRemove('atsea', c), []);
    assert.deepEqual(
      c.secrets.map((x) => x.name),
      ['revprox_cert', 'revprox_key'],
    );
    assert.deepEqual(
      c.networks.map((x) => x.name),
      ['atsea_lookalike'],
    );
    assert.deepEqual(c.services, []);
  });
});
