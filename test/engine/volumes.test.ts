// Named volumes (worker/engine/volumes.ts) and the translation of task mounts for the shim
// (worker/engine/mounts.ts): plain files, no containers.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { checkTarget, planMounts, volumeUses } from '../../worker/engine/mounts.ts';
import { VolumeStore } from '../../worker/engine/volumes.ts';

const root = mkdtempSync(join(tmpdir(), 'shoal-eng-vol-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const store = () => new VolumeStore(join(root, `s${n++}`));

describe('VolumeStore', () => {
  test('a volume is created on first use at <root>/volumes/<name>/_data and listed with its users', () => {
    const v = store();
    const p = v.acquire('data', 't1');
    assert.equal(p, join(v.dir, 'data', '_data'));
    assert.ok(existsSync(p));
    v.acquire('data', 't2');
    assert.deepEqual(v.list(), [{ name: 'data', path: p, users: ['t1', 't2'], anonymous: false }]);
  });

  test('names are validated', () => {
    const v = store();
    for (const bad of ['', '.x', '-x', 'a/b', '..', 'a b']) assert.throws(() => v.acquire(bad, 't'), /invalid volume name/);
    for (const good of ['a', 'A9', 'db_data.1-x']) assert.doesNotThrow(() => v.acquire(good, 't'));
  });

  test('rm refuses while a task uses the volume; data survives its tasks until removed', () => {
    const v = store();
    const p = v.acquire('db', 'task-a');
    writeFileSync(join(p, 'f'), 'x');
    assert.throws(() => v.rm('db'), /^Error: volume db is in use by task task-a$/);
    v.release('task-a');
    assert.ok(existsSync(join(p, 'f')), 'a named volume outlives its tasks');
    assert.deepEqual(
      v.list().map((x) => x.users),
      [[]],
    );
    v.rm('db');
    assert.deepEqual(v.list(), []);
    assert.throws(() => v.rm('db'), /no such volume: db/);
  });

  test('an anonymous volume is deleted with its task', () => {
    const v = store();
    const name = VolumeStore.anonymousName('t9', 0);
    const p = v.acquire(name, 't9', { anonymous: true });
    assert.equal(v.list()[0]!.anonymous, true);
    v.release('t9');
    assert.ok(!existsSync(p));
    assert.deepEqual(v.list(), []);
  });

  test('prune removes the volumes no task uses', () => {
    const v = store();
    v.acquire('used', 't1');
    v.acquire('free1', 't2');
    v.acquire('free2', 't2');
    v.release('t2');
    assert.deepEqual(v.prune(), ['free1', 'free2']);
    assert.deepEqual(
      v.list().map((x) => x.name),
      ['used'],
    );
  });
});

describe('planMounts', () => {
  const deps = () => ({ volumes: store(), nodeName: 'node-7' });

  test('bind, volume and tmpfs mounts become shim mounts, parents first (else in the given order)', () => {
    const d = deps();
    const src = mkdtempSync(join(root, 'src-'));
    const m = planMounts(
      't1',
      [
        { type: 'tmpfs', target: '/data/cache/', tmpfsSizeBytes: 1 << 20 },
        { type: 'volume', source: 'dbdata', target: '/data', readOnly: true },
        { type: 'bind', source: src, target: '/srv//app' },
        { type: 'volume', target: '/scratch' },
      ],
      d,
    );
    assert.deepEqual(m, [
      { type: 'bind', source: d.volumes.dataPath('dbdata'), target: '/data', readOnly: true },
      { type: 'bind', source: d.volumes.dataPath('anon-t1-3'), target: '/scratch' },
      { type: 'tmpfs', target: '/data/cache', sizeBytes: 1 << 20 },
      { type: 'bind', source: src, target: '/srv/app' },
    ]);
    assert.deepEqual(
      d.volumes.list().map((v) => [v.name, v.users, v.anonymous]),
      [
        ['anon-t1-3', ['t1'], true],
        ['dbdata', ['t1'], false],
      ],
    );
    assert.deepEqual(
      volumeUses('t1', [
        { type: 'volume', source: 'dbdata', target: '/x' },
        { type: 'bind', source: '/', target: '/y' },
        { type: 'volume', target: '/z' },
      ]),
      [
        { name: 'dbdata', anonymous: false },
        { name: 'anon-t1-2', anonymous: true },
      ],
    );
  });

  test('a missing bind source names the node', () => {
    assert.throws(
      () => planMounts('t', [{ type: 'bind', source: '/nonexistent/shoal-eng-x', target: '/x' }], deps()),
      /^Error: bind source \/nonexistent\/shoal-eng-x missing on node node-7$/,
    );
  });

  test('bad targets and options are refused, and then no volume is acquired', () => {
    for (const [target, msg] of [
      ['relative', /must be an absolute path/],
      ['/a/../etc', /must not contain '\.\.'/],
      ['/', /replace the container's root/],
      ['/proc/x', /mounts in \/proc are not supported/],
      ['/dev', /mounts in \/dev are not supported/],
      ['/a,b', /commas/],
    ] as const)
      assert.throws(() => checkTarget(target), msg, target);
    const d = deps();
    assert.throws(
      () =>
        planMounts(
          't',
          [
            { type: 'volume', source: 'ok', target: '/a' },
            { type: 'volume', source: 'bad/name', target: '/b' },
          ],
          d,
        ),
      /invalid volume name/,
    );
    assert.throws(
      () =>
        planMounts(
          't',
          [
            { type: 'volume', source: 'ok', target: '/a' },
            { type: 'tmpfs', target: '/a/' },
          ],
          d,
        ),
      /duplicate mount target \/a/,
    );
    assert.throws(() => planMounts('t', [{ type: 'bind', source: 'rel', target: '/a' }], d), /source must be an absolute path/);
    assert.throws(() => planMounts('t', [{ type: 'tmpfs', target: '/a', tmpfsSizeBytes: 0 }], d), /size must be a positive number/);
    assert.throws(() => planMounts('t', [{ type: 'volume', source: 'v', target: '/a', tmpfsSizeBytes: 5 }], d), /for tmpfs mounts only/);
    assert.deepEqual(d.volumes.list(), []);
  });
});
