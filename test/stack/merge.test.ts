// Several -c files merged by the Compose override rules: the three-file corpus in merge/, and the
// individual rules on small in-memory files.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ComposeError } from '../../stack/compose/errors.ts';
import { loadCorpus, loadMemory } from './helpers.ts';

describe('merge of 2-3 files (merge/base.yml, override.yml, prod.yml)', () => {
  it('two files: mappings merged, commands replaced, lists merged by identity', () => {
    const p = loadCorpus(['base.yml', 'override.yml'], {}, 'merge');
    const web = p.services.find((s) => s.key === 'web')!;
    assert.equal(web.image, 'shop/web:2');
    assert.deepEqual(web.command, ['serve', '--prod']);
    // environment: list and mapping forms merged by key.
    assert.deepEqual(web.environment, { EXTRA: '1', KEEP: 'base', MODE: 'prod' });
    assert.deepEqual(web.labels, { tier: 'web' });
    // ports by (host ip, published, target, protocol): the override's 8080→80 (host mode) replaces the
    // base's; 8443 is kept; 9090 is added.
    assert.deepEqual(
      web.ports.map((x) => `${x.published}:${x.target}/${x.mode}`),
      ['8080:80/host', '8443:443/ingress', '9090:9090/ingress'],
    );
    // volumes by target: /srv/static now comes from the logs volume.
    assert.deepEqual(
      web.mounts.map((m) => `${m.source}:${m.target}`),
      [`logs:/srv/static`, `${p.workingDir}/conf:/etc/web`],
    );
    // secrets by target: the same /run/secrets/api_key, now with mode 0400.
    assert.deepEqual(
      web.secrets.map((s) => [s.source, s.target, s.mode]),
      [['api_key', 'api_key', 0o400]],
    );
    assert.equal(web.deploy.replicas, 3);
    assert.deepEqual(web.deploy.labels, { owner: 'override' });
    // Other sequences append (dropping repeats).
    assert.deepEqual(web.deploy.constraints, ['node.role==worker', 'node.labels.zone==eu']);
    assert.equal(web.deploy.limits!.memoryBytes, 128 * 1024 * 1024);
    // healthcheck.test is replaced, the interval kept.
    assert.deepEqual(web.healthcheck, { test: ['CMD', 'curl', '-f', 'http://localhost/'], intervalMs: 10_000 });
    assert.deepEqual(
      p.volumes.map((v) => v.key),
      ['static', 'logs'],
    );
  });

  it('three files: !reset removes, !override replaces', () => {
    const p = loadCorpus(['base.yml', 'override.yml', 'prod.yml'], {}, 'merge');
    assert.deepEqual(
      p.services.map((s) => s.key),
      ['web'],
    );
    const web = p.services[0]!;
    assert.deepEqual(web.labels, {});
    assert.deepEqual(web.deploy.constraints, ['node.labels.zone==us']);
    assert.deepEqual(web.deploy.limits, { nanoCpus: 2_000_000_000, memoryBytes: 128 * 1024 * 1024 });
  });

  it('errors in an override name the override file and its line', () => {
    try {
      loadCorpus(['base.yml', 'override.yml', '../errors/version2.yml'], {}, 'merge');
      assert.fail('expected a ComposeError');
    } catch (e) {
      assert.ok(e instanceof ComposeError);
      assert.equal(
        e.message,
        '../errors/version2.yml:1: version: unsupported Compose file version "2.4": docker stack deploy takes version 3.x files or the Compose Specification (no version)',
      );
    }
  });
});

describe('merge rules one by one', () => {
  const two = (a: string, b: string) => loadMemory({ '/app/a.yml': a, '/app/b.yml': b, '/app/a': 'data', '/app/c': 'data' }, ['a.yml', 'b.yml']);

  it('service networks: list and mapping forms merge by network', () => {
    const p = two(
      'services:\n  s:\n    image: x\n    networks: [front]\nnetworks: {front: {}, back: {}}\n',
      'services:\n  s:\n    networks:\n      back:\n        aliases: [db]\n',
    );
    assert.deepEqual(
      p.services[0]!.networks!.map((n) => [n.key, n.aliases]),
      [
        ['front', []],
        ['back', ['db']],
      ],
    );
  });

  it('entrypoint is replaced, not appended; a string command replaces a list', () => {
    const p = two('services:\n  s:\n    image: x\n    entrypoint: [a, b]\n    command: [c]\n', 'services:\n  s:\n    entrypoint: [z]\n    command: "d e"\n');
    assert.deepEqual(p.services[0]!.entrypoint, ['z']);
    assert.deepEqual(p.services[0]!.command, ['d', 'e']);
  });

  it('scalars and shapes: the later file wins; top-level sections merge', () => {
    const p = two(
      'services:\n  s:\n    image: x\n    deploy: {mode: global}\nsecrets:\n  a: {file: ./a}\n',
      'services:\n  s:\n    image: y\n    deploy: {mode: replicated, replicas: 2}\nsecrets:\n  b: {external: true}\n',
    );
    assert.equal(p.services[0]!.image, 'y');
    assert.equal(p.services[0]!.deploy.mode, 'replicated');
    assert.deepEqual(
      p.secrets.map((s) => s.key),
      ['a', 'b'],
    );
  });

  it('a service that exists only in the override is added whole', () => {
    const p = two('services:\n  a:\n    image: x\n', 'services:\n  b:\n    image: y\n');
    assert.deepEqual(
      p.services.map((s) => s.key),
      ['a', 'b'],
    );
  });

  it('configs merge by target (default /<source>)', () => {
    const p = two(
      'services:\n  s:\n    image: x\n    configs: [c1, {source: c2, target: /etc/c2}]\nconfigs:\n  c1: {file: ./c}\n  c2: {file: ./c}\n',
      'services:\n  s:\n    configs: [{source: c1, target: /c1, mode: 0600}, {source: c1, target: /etc/other}]\n',
    );
    assert.deepEqual(
      p.services[0]!.configs.map((c) => [c.source, c.target ?? null, c.mode ?? null]),
      [
        ['c1', '/c1', 0o600],
        ['c2', '/etc/c2', null],
        ['c1', '/etc/other', null],
      ],
    );
  });
});
