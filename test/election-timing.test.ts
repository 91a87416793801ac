// The election timeout as the store grows (manager/election-timing.ts), and RaftCore taking a new one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_FACTOR, TASKS_PER_NODE, TASKS_PER_STEP, electionTimeoutFor, tasksToSizeFor } from '../manager/election-timing.ts';
import { RaftCore } from '../manager/raft/core.ts';

const BASE = { electionMs: 1000, jitterMs: 500 };

test('1 s more per 100,000 tasks, rounded to 250 ms, at most 5 times the base', () => {
  assert.deepEqual(electionTimeoutFor(0, BASE), BASE);
  assert.deepEqual(electionTimeoutFor(15_000, BASE), { electionMs: 1250, jitterMs: 500 }, 'an eighth more, rounded; the jitter rounds back');
  assert.deepEqual(electionTimeoutFor(TASKS_PER_STEP, BASE), { electionMs: 2000, jitterMs: 1000 });
  assert.deepEqual(electionTimeoutFor(150_000, BASE), { electionMs: 2500, jitterMs: 1250 });
  assert.deepEqual(electionTimeoutFor(10_000_000, BASE), { electionMs: MAX_FACTOR * 1000, jitterMs: MAX_FACTOR * 500 });
  // Never below what was configured, whatever the input.
  for (const bad of [Number.NaN, -5, Number.NEGATIVE_INFINITY]) assert.deepEqual(electionTimeoutFor(bad, BASE), BASE);
  assert.deepEqual(electionTimeoutFor(Number.POSITIVE_INFINITY, BASE), BASE, 'not a count');
  // Short test timeouts scale the same way and stay above their base.
  const fast = { electionMs: 200, jitterMs: 100 };
  assert.deepEqual(electionTimeoutFor(0, fast), fast);
  assert.ok(electionTimeoutFor(150_000, fast).electionMs >= 200);
});

test('a follower given a longer election timeout campaigns that much later; bad values are refused', () => {
  const follower = (): RaftCore => {
    const entries = RaftCore.bootstrapEntries(['n1', 'n2', 'n3']);
    return new RaftCore(
      { id: 'n1', electionTicks: 10, electionJitterTicks: 1, heartbeatTicks: 1, random: () => 0 },
      { hardState: { term: 1, vote: null, commit: entries.length }, snapshot: null, entries },
    );
  };
  const ticksToCampaign = (core: RaftCore): number => {
    for (let i = 1; i <= 1000; i++) {
      core.tick();
      if (core.role !== 'follower') return i;
    }
    return -1;
  };
  assert.equal(ticksToCampaign(follower()), 10);
  const slow = follower();
  slow.setElectionTimeout(35, 1);
  assert.equal(ticksToCampaign(slow), 35);
  // Time already waited counts against the new timeout.
  const mid = follower();
  for (let i = 0; i < 8; i++) mid.tick();
  mid.setElectionTimeout(12, 1);
  assert.equal(ticksToCampaign(mid), 4);
  assert.throws(() => follower().setElectionTimeout(1, 1), /above the heartbeat/);
  assert.throws(() => follower().setElectionTimeout(10.5, 1), /whole number/);
  assert.throws(() => follower().setElectionTimeout(10, 0), /jitter/);
});

test('sized for the tasks in the store or those the services ask for, whichever is more, and the nodes', () => {
  const svc = (mode: unknown) => ({ spec: { mode } });
  const nodes = 5000 * TASKS_PER_NODE;
  // A 150,000-replica service just created: no task yet, the timeout is already sized for them.
  assert.equal(tasksToSizeFor(0, [svc({ replicated: { replicas: 150_000 } })], 5000), 150_000 + nodes);
  // Global services count one per node; jobs and nonsense count nothing.
  assert.equal(
    tasksToSizeFor(
      10,
      [svc({ global: {} }), svc({ replicated: { replicas: 3 } }), svc({ replicatedJob: {} }), svc({ replicated: { replicas: Number.NaN } })],
      5000,
    ),
    5003 + nodes,
  );
  // A service scaled down: its old tasks are still in the store until reaped.
  assert.equal(tasksToSizeFor(160_000, [svc({ replicated: { replicas: 10 } })], 5000), 160_000 + nodes);
  // 5,000 nodes joining an empty store: a second more than the base (two of six runs lost their leader
  // in the joins at 1 s).
  assert.deepEqual(electionTimeoutFor(tasksToSizeFor(0, [], 5000), BASE), { electionMs: 2000, jitterMs: 1000 });
  assert.deepEqual(electionTimeoutFor(tasksToSizeFor(0, [svc({ replicated: { replicas: 150_000 } })], 5000), BASE), { electionMs: 3500, jitterMs: 1750 });
  // A small cluster keeps the base; nonsense node counts count nothing.
  assert.deepEqual(electionTimeoutFor(tasksToSizeFor(0, [], 5), BASE), BASE);
  for (const bad of [Number.NaN, -1, Number.POSITIVE_INFINITY]) assert.equal(tasksToSizeFor(7, [], bad), 7);
});
