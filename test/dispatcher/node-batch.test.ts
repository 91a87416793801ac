// NodeBatch (manager/dispatcher/node-batch.ts): ids added within the delay are handed over once,
// together; a cleared batch hands over nothing. Mocked timers: the clock is moved, not waited for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NodeBatch } from '../../manager/dispatcher/node-batch.ts';

test('ids added before the timer fires go together, once; later ones start a new batch', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const flushed: string[][] = [];
  const b = new NodeBatch(20, (ids) => flushed.push(ids));
  b.add('a');
  b.add('b');
  b.add('a');
  b.delete('b');
  assert.equal(b.has('a'), true);
  t.mock.timers.tick(19);
  assert.deepEqual(flushed, [], 'not before the delay');
  t.mock.timers.tick(1);
  assert.deepEqual(flushed, [['a']]);
  assert.equal(b.has('a'), false);
  b.add('c');
  t.mock.timers.tick(20);
  assert.deepEqual(flushed, [['a'], ['c']]);
});

test('clear forgets the ids and the timer', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const flushed: string[][] = [];
  const b = new NodeBatch(10, (ids) => flushed.push(ids));
  b.add('a');
  b.clear();
  t.mock.timers.tick(100);
  assert.deepEqual(flushed, []);
});
