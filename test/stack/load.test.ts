// The compose loader over the test corpus: errors named file:line:key (the error files mark each
// expected problem on its line), Docker's warnings for ignored options, anchors and merge keys, the
// .env file and its precedence, env_file, and the loader's own limits.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ComposeError, ComposeFileError, formatProblem } from '../../stack/compose/errors.ts';
import { CORPUS, errorMarkers, loadCorpus, loadMemory } from './helpers.ts';

function problemsOf(fn: () => unknown): ComposeError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ComposeError) return e;
    throw e;
  }
  assert.fail('expected a ComposeError');
}

describe('compose loader: errors name file:line:key', () => {
  for (const file of ['types.yml', 'unknown.yml', 'references.yml', 'version2.yml', 'syntax.yml']) {
    it(`errors/${file}: every marked problem, on its line, and no others`, () => {
      const shown = `errors/${file}`;
      const err = problemsOf(() => loadCorpus([shown]));
      const markers = errorMarkers(shown);
      assert.ok(markers.length > 0);
      const lines = err.message.split('\n');
      for (const m of markers) {
        const hit = err.problems.find((p) => p.pos.line === m.line && formatProblem(p).startsWith(`${shown}:${m.line}: `) && formatProblem(p).includes(m.text));
        assert.ok(hit, `expected at ${shown}:${m.line}: ${m.text}\ngot:\n${lines.join('\n')}`);
      }
      assert.equal(err.problems.length, markers.length, `unexpected problems:\n${lines.join('\n')}`);
    });
  }

  it('formats the example of the issue exactly', () => {
    const err = problemsOf(() => loadCorpus(['errors/types.yml']));
    assert.ok(err.message.split('\n').includes('errors/types.yml:8: services.web.deploy.replicas: must be an integer, got "three"'));
  });

  it('lists problems in file and line order', () => {
    const err = problemsOf(() => loadCorpus(['errors/types.yml']));
    const lines = err.problems.map((p) => p.pos.line);
    assert.deepEqual(
      lines,
      [...lines].sort((a, b) => a - b),
    );
  });

  it('a missing compose file is a ComposeFileError naming it', () => {
    assert.throws(
      () => loadCorpus(['no-such-stack.yml']),
      (e: unknown) => e instanceof ComposeFileError && e.message === 'no-such-stack.yml: no such file',
    );
  });

  it('a file that is not a mapping, and an empty services section, are refused', () => {
    assert.match(problemsOf(() => loadMemory({ '/app/a.yml': '- just\n- a list\n' }, ['a.yml'])).message, /^a\.yml:1: a compose file must be a mapping/);
    assert.match(
      problemsOf(() => loadMemory({ '/app/a.yml': 'version: "3"\nservices: {}\n' }, ['a.yml'])).message,
      /a\.yml:2: services: a stack needs at least one service/,
    );
    assert.match(problemsOf(() => loadMemory({ '/app/a.yml': 'version: "3"\n' }, ['a.yml'])).message, /services: a stack needs at least one service/);
  });

  it('an alias bomb is refused, bounded', () => {
    const rows = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 8; i++)
      rows.push(
        `${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10)
          .fill(`*${String.fromCharCode(96 + i)}`)
          .join(', ')}]`,
      );
    rows.push('services: {web: {image: nginx, x-bomb: *h}}');
    const err = problemsOf(() => loadMemory({ '/app/bomb.yml': rows.join('\n') }, ['bomb.yml']));
    assert.match(err.message, /expands to more than \d+ values/);
  });

  it('keeps at most MAX_PROBLEMS problems', () => {
    const svcs = Array.from({ length: 80 }, (_, i) => `  s${i}:\n    image: x\n    bogus: 1`).join('\n');
    const err = problemsOf(() => loadMemory({ '/app/a.yml': `services:\n${svcs}\n` }, ['a.yml']));
    assert.equal(err.problems.length, 50);
  });
});

describe("compose loader: ignored options give Docker's warnings", () => {
  it('ignored.yml loads with exactly the expected warning lines', () => {
    const p = loadCorpus(['ignored.yml']);
    assert.deepEqual(p.warnings, [
      'Ignoring unsupported options: build, depends_on, links, network_mode, privileged, profiles, restart, security_opt',
      "Ignoring deprecated options:\n\ncontainer_name: Setting the container name is not supported.\nexpose: Exposing ports is unnecessary - services on the same network can access each other's containers on any port.",
      'Not honoured by Shoal yet, deployed without them: dns, healthcheck.start_interval, logging',
      "networks.default.driver_opts.com.docker.network.driver.mtu: not honoured by Shoal's overlay driver",
      'services.app.ports[0]: the host IP 127.0.0.1 in "127.0.0.1:8080:8080" is not honoured: a published port listens on every node\'s addresses',
      'services.db.volumes[0].volume.nocopy: not honoured',
    ]);
    // cap_add, init and sysctls are honoured (task.capabilityAdd …); cap_drop: [] and read_only: false ask for nothing.
    assert.deepEqual(
      p.services.map((s) => s.key),
      ['app', 'db'],
    );
  });

  it('a variable used while unset is a warning, as in Docker', () => {
    const p = loadMemory({ '/app/a.yml': 'services:\n  web:\n    image: "nginx:${TAG}1"\n' }, ['a.yml']);
    assert.deepEqual(p.warnings, ['The "TAG" variable is not set. Defaulting to a blank string.']);
    assert.equal(p.services[0]!.image, 'nginx:1');
  });
});

describe('compose loader: anchors, merge keys, extension fields', () => {
  it('anchors.yml expands aliases and merge keys; explicit keys win over merged ones', () => {
    const p = loadCorpus(['anchors.yml']);
    const [a, b, c] = p.services;
    assert.deepEqual(a!.environment, { LANG: 'C.UTF-8', ROLE: 'a', TZ: 'UTC' });
    assert.equal(a!.deploy.replicas, 2);
    assert.deepEqual(a!.deploy.restartPolicy, { condition: 'on-failure', maxAttempts: 5 });
    assert.deepEqual(a!.deploy.updateConfig, { parallelism: 1, order: 'start-first' });
    assert.deepEqual(b!.environment, { LANG: 'C.UTF-8', TZ: 'Europe/Paris' });
    assert.equal(b!.deploy.replicas, 5);
    assert.deepEqual(b!.deploy.restartPolicy, { condition: 'on-failure', maxAttempts: 5, delayMs: 3000 });
    // In a list of merged maps the earlier one wins.
    assert.equal(c!.hostname, 'one');
    assert.equal(c!.user, '1000');
    assert.equal(c!.workingDir, '/app');
    assert.deepEqual(p.warnings, []);
  });

  it('x- fields are allowed at the top, in services, sections and nested options; x-shoal-* are kept', () => {
    const p = loadMemory(
      {
        '/app/a.yml': [
          'x-top: 1',
          'services:',
          '  x-not-a-service: {image: 1}',
          '  web:',
          '    image: nginx',
          '    x-shoal-autoscale: {min: 1, max: 4}',
          '    x-other: ignored',
          '    deploy:',
          '      x-note: fine',
          'networks:',
          '  x-meta: {}',
        ].join('\n'),
      },
      ['a.yml'],
    );
    assert.deepEqual(
      p.services.map((s) => s.key),
      ['web'],
    );
    assert.deepEqual(p.services[0]!.extensions, { 'x-shoal-autoscale': { min: 1, max: 4 } });
  });
});

describe('compose loader: environment, .env and env_file', () => {
  it('the .env beside the first file supplies defaults; the process environment wins', () => {
    const p = loadCorpus(['full/docker-stack.yml'], { TAG: '9.9', FROM_SHELL: 'sh' });
    const web = p.services.find((s) => s.key === 'web')!;
    assert.equal(web.image, 'registry.example.com:5000/shop/web:9.9');
    assert.equal(web.environment.GREETING, 'hello world');
    assert.equal(web.deploy.replicas, 3);
  });

  it('env_file values are overlaid by environment; bare KEY comes from the environment or is left out', () => {
    const p = loadCorpus(['full/docker-stack.yml'], {});
    const api = p.services.find((s) => s.key === 'api')!;
    assert.deepEqual(api.environment, { DB_HOST: 'db', DEBUG: 'false', FEATURE_X: 'on', LOG_LEVEL: 'debug', WORKERS: '4' });
    const web = p.services.find((s) => s.key === 'web')!;
    assert.equal(web.environment.FROM_SHELL, undefined);
    assert.equal(web.environment.EMPTY, '');
    const withShell = loadCorpus(['full/docker-stack.yml'], { FROM_SHELL: 'x' });
    assert.equal(withShell.services.find((s) => s.key === 'web')!.environment.FROM_SHELL, 'x');
  });

  it('a missing env_file is an error unless required: false', () => {
    const base = 'services:\n  web:\n    image: nginx\n    env_file:\n';
    const err = problemsOf(() => loadMemory({ '/app/a.yml': `${base}      - missing.env\n` }, ['a.yml']));
    assert.equal(err.message, 'a.yml:5: services.web.env_file[0]: env file /app/missing.env not found');
    const p = loadMemory({ '/app/a.yml': `${base}      - path: missing.env\n        required: false\n      - path: ok.env\n`, '/app/ok.env': 'A=1\n' }, [
      'a.yml',
    ]);
    assert.deepEqual(p.services[0]!.environment, { A: '1' });
  });

  it('bad lines of a .env file are errors naming the .env file and line', () => {
    const err = problemsOf(() => loadMemory({ '/app/a.yml': 'services: {web: {image: x}}\n', '/app/.env': 'OK=1\n\n9BAD=2\nQ="open\n' }, ['a.yml']));
    assert.deepEqual(err.message.split('\n'), ['/app/.env:3: invalid variable name "9BAD" (expected KEY=value)', '/app/.env:4: Q: unterminated double quote']);
  });

  it("paths resolve against the first file's directory; ~ against HOME", () => {
    const p = loadMemory(
      { '/app/stack/a.yml': 'services:\n  web:\n    image: x\n    volumes:\n      - ./conf:/conf\n      - ~/data:/data\n      - ../shared:/shared:ro\n' },
      ['stack/a.yml'],
      { HOME: '/home/ops' },
    );
    assert.deepEqual(
      p.services[0]!.mounts.map((m) => [m.source, m.target, m.readOnly]),
      [
        ['/app/stack/conf', '/conf', false],
        ['/home/ops/data', '/data', false],
        ['/app/shared', '/shared', true],
      ],
    );
  });

  it('the corpus directory exists where the helpers say', () => {
    assert.match(CORPUS, /test\/stack\/corpus$/);
  });
});
