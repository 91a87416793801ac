// status-batch.ts: reports the managers act on go at the leading edge, the rest in 20 ms batches, and
// never more than one message per STATUS_BATCH_MS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { managersActOn, STATUS_BATCH_MS, statusSendDelay } from '../../worker/status-batch.ts';

test('running and every end are acted on; the steps before running are not', () => {
  for (const s of ['running', 'complete', 'failed', 'shutdown', 'rejected', 'orphaned'] as const) assert.equal(managersActOn(s), true, s);
  for (const s of ['new', 'pending', 'assigned', 'accepted', 'preparing', 'starting'] as const) assert.equal(managersActOn(s), false, s);
});

test('a running or ended task goes at once after a quiet spell, else when the last message is a batch old', () => {
  assert.equal(statusSendDelay('running', 1000, -Infinity), 0, 'nothing sent yet');
  assert.equal(statusSendDelay('shutdown', 1000, 900), 0, 'the last message is 100 ms old');
  assert.equal(statusSendDelay('running', 1000, 995), STATUS_BATCH_MS - 5, 'one went 5 ms ago');
  assert.equal(statusSendDelay('failed', 1000, 1000), STATUS_BATCH_MS, 'one went just now');
});

test('the steps before running wait a whole batch, however quiet it was', () => {
  assert.equal(statusSendDelay('accepted', 1000, -Infinity), STATUS_BATCH_MS);
  assert.equal(statusSendDelay('preparing', 1000, 0), STATUS_BATCH_MS);
});
