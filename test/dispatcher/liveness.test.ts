// Node liveness (manager/dispatcher/liveness.ts): the heartbeat period announced to a large cluster, and
// when a silent node is Down with it. Pure: times are numbers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  HEARTBEAT_BUDGET_PER_SEC,
  MASS_SILENCE_FRACTION,
  MASS_SILENCE_MIN_NODES,
  MAX_ADAPTIVE_PERIOD_MS,
  MAX_TAKEOVER_GRACE_MS,
  MIN_TAKEOVER_GRACE_MS,
  NodeLiveness,
  downDecision,
  heartbeatPeriodFor,
  reconnectSpreadMs,
  takeoverGraceMs,
} from '../../manager/dispatcher/liveness.ts';

test('the configured period is announced while the nodes fit the heartbeat budget', () => {
  assert.equal(heartbeatPeriodFor(1000, 0), 1000);
  assert.equal(heartbeatPeriodFor(1000, 200), 1000);
  assert.equal(heartbeatPeriodFor(1000, HEARTBEAT_BUDGET_PER_SEC), 1000);
});

test('beyond the budget the period grows with the node count, in 100 ms steps, up to the cap', () => {
  assert.equal(heartbeatPeriodFor(1000, HEARTBEAT_BUDGET_PER_SEC + 1), 1100);
  assert.equal(heartbeatPeriodFor(1000, 3000), 1500);
  assert.equal(heartbeatPeriodFor(1000, 5000), 2500);
  assert.equal(heartbeatPeriodFor(1000, 50_000), MAX_ADAPTIVE_PERIOD_MS);
  // Heartbeats a second at 5,000 nodes stay within the budget.
  assert.ok((5000 * 1000) / heartbeatPeriodFor(1000, 5000) <= HEARTBEAT_BUDGET_PER_SEC);
});

test('a configured period longer than the cap is kept as it is, never shortened', () => {
  assert.equal(heartbeatPeriodFor(5000, 10), 5000);
  assert.equal(heartbeatPeriodFor(5000, 50_000), 5000);
  assert.equal(heartbeatPeriodFor(1000, 4000, 1000), MAX_ADAPTIVE_PERIOD_MS);
});

test('with equal periods a node is Down after 3 missed ones (as before)', () => {
  const l = new NodeLiveness(1000);
  l.heartbeat('a', 0);
  assert.equal(l.deadlineMs, 3000);
  assert.deepEqual(l.expired(3000), []);
  assert.deepEqual(l.expired(3001), ['a']);
  assert.equal(l.isTracked('a'), false, 'an expired node is no longer tracked');
});

test('a longer announced period adds itself, not 3 of itself: 2.5 s + 2 × 1 s = 4.5 s', () => {
  const l = new NodeLiveness(1000);
  l.setPeriod(2500, 1000, 0);
  assert.equal(l.deadlineMs, 4500);
  l.heartbeat('a', 0);
  assert.deepEqual(l.expired(4500), []);
  assert.deepEqual(l.expired(4501), ['a']);
});

test('when the period shrinks, the longer deadline holds until nodes can have heard of it', () => {
  const l = new NodeLiveness(1000);
  l.setPeriod(2500, 1000, 0);
  l.heartbeat('a', 10_000); // still on 2.5 s
  l.setPeriod(1000, 1000, 10_000);
  assert.equal(l.deadlineMs, 3000);
  // 4 s of silence: Down under the new period alone, but the old one (4.5 s) still holds.
  assert.deepEqual(l.expired(14_000), []);
  assert.deepEqual(l.expired(14_501), ['a']);
  // Once the hold is over the shorter deadline applies.
  l.heartbeat('b', 15_000);
  assert.deepEqual(l.expired(18_000), []);
  assert.deepEqual(l.expired(18_001), ['b']);
});

test('a new leader gives every node a full window from the moment it took over', () => {
  const l = new NodeLiveness(1000);
  l.startTracking(['a', 'b'], 50_000);
  assert.deepEqual(l.expired(53_000), []);
  assert.deepEqual(l.expired(53_001).sort(), ['a', 'b']);
});

test('a new leader waits for the nodes it inherits to reconnect before the usual deadline runs', () => {
  // At least 12 s; 5 s per 1,000 nodes beyond 2,400 (25 s for 5,000); at most a minute.
  assert.equal(takeoverGraceMs(0), 0);
  assert.equal(takeoverGraceMs(3), MIN_TAKEOVER_GRACE_MS);
  assert.equal(takeoverGraceMs(1000), MIN_TAKEOVER_GRACE_MS);
  assert.equal(takeoverGraceMs(5000), 25_000);
  assert.equal(takeoverGraceMs(100_000), MAX_TAKEOVER_GRACE_MS);
  const l = new NodeLiveness(1000);
  l.startTracking(['a', 'b', 'c'], 50_000, takeoverGraceMs(1000));
  // Nobody expires within the grace plus the deadline...
  assert.deepEqual(l.expired(65_000), []);
  // ...a node that reconnected is on the usual deadline from its heartbeat...
  l.heartbeat('a', 63_000);
  // ...and one that never came back is Down after both.
  assert.deepEqual(l.expired(65_001).sort(), ['b', 'c']);
  assert.deepEqual(l.expired(66_001), ['a']);
});

test('a period set before any node is tracked (leadership starting) holds no longer deadline', () => {
  const l = new NodeLiveness(1000);
  l.setPeriod(200, 200, 0);
  l.heartbeat('a', 0);
  assert.deepEqual(l.expired(600), []);
  assert.deepEqual(l.expired(601), ['a']);
});

test("a leader's own stall is not counted against its nodes", () => {
  const l = new NodeLiveness(1000, 3); // Down after 3 s
  l.startTracking(['a', 'b', 'c'], 0);
  l.heartbeat('a', 1_000);
  l.heartbeat('b', 2_500);
  // The leader runs nothing from 2,600 to 4,600 (a blocked event loop): b's and c's heartbeats of that
  // time wait unread. Without the shift, at 4,600 a (3.6 s) and c (4.6 s) would be overdue.
  l.leaderStalled(2_600, 4_600);
  assert.deepEqual(l.overdue(4_600), []);
  // The shift moves each node by the stall, never past its end: a is at 3,000, b at 4,500, c at 2,000.
  assert.deepEqual(l.overdue(5_001), ['c']);
  assert.deepEqual(l.overdue(6_001), ['a', 'c']);
  assert.deepEqual(l.overdue(7_501), ['a', 'b', 'c']);
  // A stall of no length, or a clock that went back, changes nothing.
  l.leaderStalled(5_000, 5_000);
  l.leaderStalled(5_000, 4_000);
  assert.deepEqual(l.overdue(5_001), ['c']);
});

test('overdue nodes stay tracked; expired ones stop being tracked', () => {
  const l = new NodeLiveness(1000, 3);
  l.startTracking(['a', 'b'], 0);
  l.heartbeat('b', 2_000);
  assert.deepEqual(l.overdue(3_001), ['a']);
  assert.equal(l.trackedCount, 2);
  assert.deepEqual(l.expired(3_001), ['a']);
  assert.equal(l.trackedCount, 1);
  assert.equal(l.isTracked('a'), false);
});

test('a few silent nodes are marked at once, however small the cluster', () => {
  assert.deepEqual(downDecision({ overdue: 0, tracked: 5000, now: 10, deadlineMs: 4500, heldUntil: null }), { mark: 'all' });
  assert.deepEqual(downDecision({ overdue: 2, tracked: 3, now: 10, deadlineMs: 3000, heldUntil: null }), { mark: 'all' });
  // Below the minimum count, even all of them: a 40-node cluster whose nodes all died is Down on time.
  assert.deepEqual(downDecision({ overdue: MASS_SILENCE_MIN_NODES - 1, tracked: MASS_SILENCE_MIN_NODES - 1, now: 10, deadlineMs: 3000, heldUntil: null }), {
    mark: 'all',
  });
  // At or above the count but under the fraction: individual failures in a large cluster.
  const tracked = 5000;
  const under = Math.ceil(MASS_SILENCE_FRACTION * tracked) - 1;
  assert.deepEqual(downDecision({ overdue: under, tracked, now: 10, deadlineMs: 4500, heldUntil: null }), { mark: 'all' });
});

test('a mass silence is held for one deadline, then marked if it lasts', () => {
  const tracked = 5000;
  const overdue = 1085; // what one 2 s stall of a 5,000-node leader made overdue (bench:scale)
  const first = downDecision({ overdue, tracked, now: 100_000, deadlineMs: 4500, heldUntil: null });
  assert.equal(first.mark, 'none');
  assert.ok(first.mark === 'none');
  assert.equal(first.holdUntil, 104_500);
  assert.match(first.reason, /1085 of 5000 nodes went silent at once: holding Down for 4500 ms/);
  // During the hold nothing is marked, whatever else goes silent; the hold does not move.
  const during = downDecision({ overdue: 2000, tracked, now: 103_000, deadlineMs: 4500, heldUntil: first.holdUntil });
  assert.deepEqual(during, { mark: 'none', holdUntil: 104_500, reason: 'held' });
  // When it ends, whoever is still silent is marked if no longer a mass (900 < a fifth of 5,000).
  assert.deepEqual(downDecision({ overdue: 900, tracked, now: 104_500, deadlineMs: 4500, heldUntil: first.holdUntil }), { mark: 'all' });
});

test('a mass silence that outlasts its hold is marked a tenth of the nodes per deadline, then all', () => {
  let tracked = 5000;
  let overdue = 2884; // still silent after the hold, as after a leader kill with the simulator behind
  let heldUntil: number | null = 104_500;
  let now = 104_500;
  const marked: number[] = [];
  for (let round = 0; round < 20 && overdue > 0; round++) {
    const d = downDecision({ overdue, tracked, now, deadlineMs: 4500, heldUntil, heldSince: 100_000 });
    if (d.mark === 'none') {
      now = d.holdUntil;
      continue;
    }
    const n = d.mark === 'all' ? overdue : d.max;
    if (d.mark === 'some') {
      assert.equal(d.holdUntil, now + 4500, 'the rest is judged one deadline later');
      assert.match(d.reason, /^\d+ of \d+ nodes still silent after a hold: marking the \d+ silent longest Down/);
    }
    marked.push(n);
    overdue -= n;
    tracked -= n; // marked nodes stop being tracked
    heldUntil = d.mark === 'all' ? null : d.holdUntil;
    now += 4500;
  }
  // A tenth of those tracked per deadline, the longest silent first; five deadlines after the first
  // hold, all that is left.
  assert.deepEqual(marked, [500, 450, 405, 364, 1165]);
  // A mass that shrinks below a fifth of the nodes before that is marked whole at once.
  assert.deepEqual(downDecision({ overdue: 600, tracked: 4000, now: 109_000, deadlineMs: 4500, heldUntil: 109_000, heldSince: 100_000 }), { mark: 'all' });
  // A whole cluster silent: marked a tenth at a time, then all of it five deadlines after the first hold.
  tracked = 5000;
  overdue = 5000;
  now = 104_500;
  heldUntil = 104_500;
  const whole: string[] = [];
  while (overdue > 0) {
    const d = downDecision({ overdue, tracked, now, deadlineMs: 4500, heldUntil, heldSince: 100_000 });
    assert.notEqual(d.mark, 'none');
    const n = d.mark === 'some' ? d.max : overdue;
    whole.push(`${d.mark} ${n}`);
    overdue -= n;
    tracked -= n;
    heldUntil = d.mark === 'some' ? d.holdUntil : null;
    now += 4500;
  }
  assert.deepEqual(whole, ['some 500', 'some 450', 'some 405', 'some 364', 'all 3281']);
  assert.equal(now - 4500 - 100_000, 5 * 4500, 'the last of them Down five deadlines after the first hold');
  // A small cluster: at least MASS_SILENCE_MIN_NODES per deadline.
  const small = downDecision({ overdue: 120, tracked: 200, now: 10_000, deadlineMs: 3000, heldUntil: 10_000 });
  assert.deepEqual(small.mark === 'some' && small.max, MASS_SILENCE_MIN_NODES);
});

test('a mass silence is held on while nodes are still starting sessions, up to the takeover window', () => {
  const base = { tracked: 5000, deadlineMs: 3500, firstHeldAt: 100_000 };
  // The hold ended; a node said hello 1 s ago: the leader is still taking reconnects, hold again.
  const again = downDecision({ ...base, overdue: 2069, now: 103_500, heldUntil: 103_500, heldSince: 100_000, lastSessionAt: 102_500 });
  assert.equal(again.mark, 'none');
  assert.ok(again.mark === 'none' && again.reconnecting === true && again.holdUntil === 107_000);
  assert.match(
    again.mark === 'none' ? again.reason : '',
    /^2069 of 5000 nodes still silent while nodes are still starting sessions: holding Down another 3500 ms$/,
  );
  // No hello for longer than a deadline: the reconnects are over, the tenth-a-deadline rule applies,
  // counted from the last hold for reconnects (heldSince), not from the first.
  const after = downDecision({ ...base, overdue: 2069, now: 150_000, heldUntil: 150_000, heldSince: 146_500, lastSessionAt: 140_000 });
  assert.equal(after.mark, 'some');
  // Still reconnecting, but MAX_TAKEOVER_GRACE_MS after the first hold: no more holds.
  const late = downDecision({
    ...base,
    overdue: 2069,
    now: 100_000 + MAX_TAKEOVER_GRACE_MS,
    heldUntil: 100_000 + MAX_TAKEOVER_GRACE_MS,
    heldSince: 156_500,
    lastSessionAt: 159_000,
  });
  assert.equal(late.mark, 'some');
  // Not a mass any more: all of it, hellos or not.
  assert.deepEqual(downDecision({ ...base, overdue: 300, now: 103_500, heldUntil: 103_500, heldSince: 100_000, lastSessionAt: 103_000 }), { mark: 'all' });
});

test('expired(now, max): the longest silent first, and only those stop being tracked', () => {
  const l = new NodeLiveness(1000);
  l.startTracking(['a', 'b', 'c', 'd'], 0);
  l.heartbeat('a', 500);
  l.heartbeat('b', 100);
  l.heartbeat('c', 300);
  l.heartbeat('d', 9000);
  assert.deepEqual(l.expired(5000, 2), ['b', 'c']);
  assert.deepEqual(
    [...['a', 'b', 'c', 'd']].filter((n) => l.isTracked(n)),
    ['a', 'd'],
  );
  assert.deepEqual(l.expired(5000), ['a']);
});

test('the reconnect spread: none below 2,500 nodes, then the time for all at 250 a second, in 5 s steps, inside the takeover window', () => {
  assert.equal(reconnectSpreadMs(0), 0);
  assert.equal(reconnectSpreadMs(200), 0);
  assert.equal(reconnectSpreadMs(2_499), 0);
  assert.equal(reconnectSpreadMs(2_500), 10_000);
  assert.equal(reconnectSpreadMs(3_700), 10_000, 'steps: a few nodes more re-time no agent');
  assert.equal(reconnectSpreadMs(3_750), 15_000);
  assert.equal(reconnectSpreadMs(5_000), 20_000);
  assert.equal(reconnectSpreadMs(1_000_000), MAX_TAKEOVER_GRACE_MS);
  // The last agent arrives before the new leader's takeover window ends.
  for (const n of [2_500, 5_000, 10_000, 14_000]) assert.ok(reconnectSpreadMs(n) < takeoverGraceMs(n), `${n} nodes`);
  assert.equal(reconnectSpreadMs(20_000), takeoverGraceMs(20_000), 'both at their bound past 15,000 nodes');
});
