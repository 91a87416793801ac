// NodeBatch (manager/dispatcher/node-batch.ts): ids added within the delay are handed over once,
// together; a cleared batch hands over nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { NodeBatch } from '../../manager/dispatcher/node-batch.ts';

test('ids added before the timer fires go together, once; later ones start a new batch', async () => {
  const flushed: string[][] = [];
  const b = new NodeBatch(20, (ids) => flushed.push(ids));
  b.add('a');
  b.add('b');
  b.add('a');
  b.delete('b');
  assert.equal(b.has('a'), true);
  await sleep(60);
  assert.deepEqual(flushed, [['a']]);
  assert.equal(b.has('a'), false);
  b.add('c');
  await sleep(60);
  assert.deepEqual(flushed, [['a'], ['c']]);
});

test('clear forgets the ids and the timer', async () => {
  const flushed: string[][] = [];
  const b = new NodeBatch(10, (ids) => flushed.push(ids));
  b.add('a');
  b.clear();
  await sleep(40);
  assert.deepEqual(flushed, []);
});
