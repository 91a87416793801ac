// The pool of shared task values (manager/store/shared-values.ts): equal values become one frozen object,
// and the pool stays within its entry and character bounds, least recently used out first.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ValuePool } from '../../manager/store/shared-values.ts';

test('equal values are one frozen object; different ones are not; primitives pass through', () => {
  const pool = new ValuePool();
  const a = pool.intern({ image: 'busybox:1.36', env: ['A=1'] });
  const b = pool.intern({ image: 'busybox:1.36', env: ['A=1'] });
  assert.equal(a, b);
  assert.ok(Object.isFrozen(a) && Object.isFrozen(a.env));
  assert.notEqual(pool.intern({ image: 'busybox:1.37', env: ['A=1'] }), a);
  assert.equal(pool.intern(5), 5);
  assert.equal(pool.intern(null), null);
  const body: Record<string, unknown> = { id: 't1', spec: { image: 'busybox:1.36', env: ['A=1'] }, serviceAnnotations: { name: 'web' } };
  pool.internTask(body);
  assert.equal(body.spec, a, 'a task body takes the pooled spec');
});

test('bounded by entries: the least recently used goes first', () => {
  const pool = new ValuePool(2);
  const one = pool.intern({ n: 1 });
  const two = pool.intern({ n: 2 });
  assert.equal(pool.intern({ n: 1 }), one, 'a hit refreshes {n:1}');
  pool.intern({ n: 3 });
  assert.equal(pool.size, 2);
  assert.equal(pool.intern({ n: 1 }), one, '{n:1} was used more recently than {n:2}: kept');
  assert.notEqual(pool.intern({ n: 2 }), two, '{n:2} was the least recently used: evicted');
  assert.equal(pool.size, 2);
});

test('bounded by the characters of its keys: large values push out old ones, one too large is not kept', () => {
  const pool = new ValuePool(100, 1000);
  const small = pool.intern({ s: 'x'.repeat(300) });
  pool.intern({ s: 'y'.repeat(300) });
  pool.intern({ s: 'z'.repeat(300) });
  assert.ok(pool.chars <= 1000, `${pool.chars} characters`);
  pool.intern({ s: 'w'.repeat(300) });
  assert.ok(pool.chars <= 1000, `${pool.chars} characters`);
  assert.notEqual(pool.intern({ s: 'x'.repeat(300) }), small, 'the oldest was evicted');
  const huge = { s: 'h'.repeat(5000) };
  assert.equal(pool.intern(huge), huge, 'still frozen and returned');
  assert.ok(Object.isFrozen(huge));
  assert.ok(pool.chars <= 1000, `${pool.chars} characters after a value larger than the bound`);
});

test('has(): the pool knows its own objects, and forgets those it evicts; interning one returns it as it is', () => {
  const pool = new ValuePool(2);
  const a = pool.intern({ image: 'a' });
  assert.equal(pool.has(a), true);
  assert.equal(pool.has({ image: 'a' }), false, 'an equal object is not the pooled one');
  assert.equal(pool.intern(a), a);
  assert.equal(pool.size, 1);
  pool.intern({ image: 'b' });
  pool.intern({ image: 'c' }); // evicts a
  assert.equal(pool.has(a), false);
  assert.notEqual(pool.intern({ image: 'a' }), a, 'after eviction an equal value is pooled anew');
});
