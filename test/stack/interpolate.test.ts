// Interpolation (${VAR} and its forms), the .env format, and the precedence of the process environment
// over .env — as pure functions, then through the loader with file:line:key errors.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ComposeError, Problems } from '../../stack/compose/errors.ts';
import { InterpolationError, interpolate, mergeEnvironments, parseEnvFile } from '../../stack/compose/interpolate.ts';
import { loadMemory } from './helpers.ts';

const env: Record<string, string> = { SET: 'value', EMPTY: '', NUM: '3', INNER: 'in' };
const lookup = (k: string) => (Object.hasOwn(env, k) ? env[k] : undefined);

describe('interpolate', () => {
  const cases: [string, string][] = [
    ['plain text', 'plain text'],
    ['$SET', 'value'],
    ['${SET}', 'value'],
    ['a-${SET}-b', 'a-value-b'],
    ['$SET.suffix', 'value.suffix'],
    ['${UNSET}', ''],
    ['${UNSET:-dflt}', 'dflt'],
    ['${EMPTY:-dflt}', 'dflt'],
    ['${EMPTY-dflt}', ''],
    ['${UNSET-dflt}', 'dflt'],
    ['${SET:-dflt}', 'value'],
    ['${SET:+alt}', 'alt'],
    ['${EMPTY:+alt}', ''],
    ['${EMPTY+alt}', 'alt'],
    ['${UNSET+alt}', ''],
    ['${UNSET:-${INNER}}', 'in'],
    ['${UNSET:-${ALSO_UNSET:-deep}}', 'deep'],
    ['${UNSET:-a ${SET} b}', 'a value b'],
    ['${UNSET:-{braces}}', '{braces}'],
    ['$$', '$'],
    ['$$SET', '$SET'],
    ['$${SET}', '${SET}'],
    ['cost: $$5', 'cost: $5'],
    ['${UNSET:-$$}', '$'],
    ['${UNSET:-x:y}', 'x:y'],
    ['${NUM}', '3'],
  ];
  for (const [input, want] of cases) {
    it(`${JSON.stringify(input)} → ${JSON.stringify(want)}`, () => assert.equal(interpolate(input, lookup), want));
  }

  it('required variables: :? when unset or empty, ? only when unset', () => {
    assert.throws(() => interpolate('${UNSET:?set UNSET first}', lookup), { message: 'required variable UNSET is missing a value: set UNSET first' });
    assert.throws(() => interpolate('${EMPTY:?}', lookup), { message: 'required variable EMPTY is missing a value' });
    assert.equal(interpolate('${EMPTY?needed}', lookup), '');
    assert.throws(() => interpolate('${UNSET?needed}', lookup), { message: 'required variable UNSET is missing a value: needed' });
    assert.equal(interpolate('${SET:?x}', lookup), 'value');
  });

  it('a lone $, ${}, an unclosed brace and an unknown operator are errors that say to write $$', () => {
    for (const bad of ['$1', 'price $', '${}', '${SET', '${SET:=x}', '${-x}']) {
      assert.throws(
        () => interpolate(bad, lookup),
        (e: unknown) => e instanceof InterpolationError && /invalid interpolation format/.test(e.message),
        bad,
      );
    }
  });

  it('reports each variable used while unset (for the warning), not those with a default', () => {
    const unset: string[] = [];
    interpolate('${A} $B ${C:-x} ${D-y} ${E:+z}', lookup, (n) => unset.push(n));
    assert.deepEqual(unset, ['A', 'B']);
  });
});

describe('.env format and precedence', () => {
  it('parses comments, export, quotes, inline comments and bare keys', () => {
    const p = new Problems();
    const lines = parseEnvFile(
      ['# comment', '', 'A=1', 'export B = two ', 'C="x\\ny # not a comment"', "D='$literal \\n'", 'E=val # comment', 'F=', 'G', 'H=a=b'].join('\n'),
      '.env',
      p,
    );
    assert.deepEqual(p.list, []);
    assert.deepEqual(
      lines.map((l) => [l.key, l.value, l.pos.line]),
      [
        ['A', '1', 3],
        ['B', 'two', 4],
        ['C', 'x\ny # not a comment', 5],
        ['D', '$literal \\n', 6],
        ['E', 'val', 7],
        ['F', '', 8],
        ['G', undefined, 9],
        ['H', 'a=b', 10],
      ],
    );
  });

  it('the process environment wins over .env (Compose Specification precedence)', () => {
    assert.deepEqual(mergeEnvironments({ A: 'shell', C: undefined }, { A: 'file', B: 'file', C: 'file' }), { A: 'shell', B: 'file', C: 'file' });
  });

  it('through the loader: .env beside the first file, environment over it', () => {
    const files = {
      '/app/a.yml': 'services:\n  web:\n    image: "nginx:${TAG}"\n    deploy:\n      replicas: ${REPLICAS:-1}\n',
      '/app/.env': 'TAG=from-file\nREPLICAS=4\n',
    };
    const p1 = loadMemory(files, ['a.yml']);
    assert.equal(p1.services[0]!.image, 'nginx:from-file');
    assert.equal(p1.services[0]!.deploy.replicas, 4);
    const p2 = loadMemory(files, ['a.yml'], { TAG: 'from-shell', REPLICAS: '2' });
    assert.equal(p2.services[0]!.image, 'nginx:from-shell');
    assert.equal(p2.services[0]!.deploy.replicas, 2);
  });

  it('interpolated numbers and booleans are read as such; keys are never interpolated', () => {
    const p = loadMemory(
      {
        '/app/a.yml': [
          'services:',
          '  web:',
          '    image: x',
          '    environment:',
          '      ${KEY}: ${VAL}',
          '    deploy:',
          '      replicas: ${N}',
          '      update_config: {max_failure_ratio: "${R}"}',
          'networks:',
          '  n:',
          '    attachable: ${ATT}',
        ].join('\n'),
      },
      ['a.yml'],
      { KEY: 'k', VAL: 'v', N: '5', R: '0.5', ATT: 'true' },
    );
    assert.deepEqual(p.services[0]!.environment, { '${KEY}': 'v' });
    assert.equal(p.services[0]!.deploy.replicas, 5);
    assert.equal(p.services[0]!.deploy.updateConfig!.maxFailureRatio, 0.5);
    assert.equal(p.networks.find((n) => n.key === 'n')!.attachable, true);
  });

  it('interpolation errors name file:line:key, for every file of a merge', () => {
    try {
      loadMemory(
        {
          '/app/a.yml': 'services:\n  web:\n    image: "${IMAGE:?set IMAGE to the web image}"\n',
          '/app/b.yml': 'services:\n  web:\n    hostname: "$1host"\n',
        },
        ['a.yml', 'b.yml'],
      );
      assert.fail('expected a ComposeError');
    } catch (e) {
      assert.ok(e instanceof ComposeError);
      assert.deepEqual(e.message.split('\n'), [
        'a.yml:3: services.web.image: required variable IMAGE is missing a value: set IMAGE to the web image',
        'b.yml:3: services.web.hostname: invalid interpolation format in "$1host": a $ must start $VAR or ${VAR} (write $$ for a literal $)',
      ]);
    }
  });
});
