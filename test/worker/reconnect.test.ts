// When an agent dials again (worker/reconnect.ts): a lost leader's nodes spread their reconnects over a
// heartbeat period, an election is waited out, failures back off.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  MAX_BACKOFF_MS,
  MAX_HANDSHAKE_TIMEOUT_MS,
  MAX_SPREAD_MS,
  MIN_BACKOFF_MS,
  NO_LEADER_BACKOFF_MS,
  handshakeTimeoutMs,
  reconnectDelay,
} from '../../worker/reconnect.ts';

const base = { wasReady: false, code: 1006, redirected: false, backoff: MIN_BACKOFF_MS, periodMs: 1000, random: 1 };

test('a welcomed session that ends: a random part of one heartbeat period, and the backoff starts over', () => {
  // 1,000 nodes drawing uniformly: spread over the whole period, not bunched at its start.
  const delays = Array.from({ length: 1000 }, (_, i) => reconnectDelay({ ...base, wasReady: true, backoff: 800, random: i / 1000 }));
  assert.ok(delays.every((d) => d.backoff === MIN_BACKOFF_MS));
  assert.equal(Math.min(...delays.map((d) => d.delay)), 0);
  assert.ok(Math.max(...delays.map((d) => d.delay)) >= 990);
  assert.equal(delays.filter((d) => d.delay < 100).length, 100, 'a tenth in the first tenth');
  // The period grows with the cluster (up to 2.5 s at 5,000 nodes): so does the spread.
  assert.equal(reconnectDelay({ ...base, wasReady: true, periodMs: 2500, random: 0.5 }).delay, 1250);
});

test('redirected to a known leader: at once, backoff kept', () => {
  assert.deepEqual(reconnectDelay({ ...base, code: 4001, redirected: true, backoff: 400 }), { delay: 0, backoff: 400 });
  // Also right after a welcomed session (the leader stepped down and named its successor).
  assert.equal(reconnectDelay({ ...base, wasReady: true, code: 4001, redirected: true }).delay, 0);
});

test('not leader, no leader known: at least an election timeout, doubling to the cap', () => {
  let backoff = MIN_BACKOFF_MS;
  const delays: number[] = [];
  for (let i = 0; i < 5; i++) {
    const r = reconnectDelay({ ...base, code: 4001, backoff, random: 1 });
    delays.push(r.delay);
    backoff = r.backoff;
  }
  assert.deepEqual(delays, [NO_LEADER_BACKOFF_MS, 2 * NO_LEADER_BACKOFF_MS, MAX_BACKOFF_MS, MAX_BACKOFF_MS, MAX_BACKOFF_MS]);
  // Equal jitter: never less than half.
  assert.equal(reconnectDelay({ ...base, code: 4001, random: 0 }).delay, NO_LEADER_BACKOFF_MS / 2);
});

test('a failed connection backs off exponentially from the minimum', () => {
  let backoff = MIN_BACKOFF_MS;
  const delays: number[] = [];
  for (let i = 0; i < 8; i++) {
    const r = reconnectDelay({ ...base, backoff, random: 1 });
    delays.push(r.delay);
    backoff = r.backoff;
  }
  assert.deepEqual(delays, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
});

test("a large cluster's announced spread replaces the period for a lost leader, and lengthens the no-leader backoff", () => {
  // 5,000 nodes: the leader announces 20 s. Redials spread over all of it, not over the 2.5 s period.
  const spread = { ...base, wasReady: true, periodMs: 2500, spreadMs: 20_000 };
  assert.equal(reconnectDelay({ ...spread, random: 0.5 }).delay, 10_000);
  assert.equal(reconnectDelay({ ...spread, random: 0.999 }).delay, 19_980);
  // A spread shorter than the period changes nothing; 0, absent or nonsense is no spread.
  assert.equal(reconnectDelay({ ...spread, spreadMs: 1000, random: 0.5 }).delay, 1250);
  for (const spreadMs of [0, -5, Number.NaN, Number.POSITIVE_INFINITY, undefined]) {
    assert.equal(reconnectDelay({ ...spread, spreadMs, random: 0.5 }).delay, 1250, String(spreadMs));
  }
  // A spread past the bound (a confused manager) is bounded: no agent waits minutes.
  assert.equal(reconnectDelay({ ...spread, spreadMs: 3_600_000, random: 1 }).delay, MAX_SPREAD_MS);
  // While no leader is known, probes back off to a quarter of the spread: 5,000 agents probing every
  // 2 s were ≈ 2,500 handshakes a second on the survivors during the election.
  let backoff = MIN_BACKOFF_MS;
  const delays: number[] = [];
  for (let i = 0; i < 5; i++) {
    const r = reconnectDelay({ ...base, code: 4001, backoff, spreadMs: 20_000, random: 1 });
    delays.push(r.delay);
    backoff = r.backoff;
  }
  assert.deepEqual(delays, [1000, 2000, 4000, 5000, 5000]);
});

test("an agent's handshake timeout grows with the spread a large cluster's leader announces", () => {
  // No spread (a small cluster, or before the first welcome): the base.
  for (const spreadMs of [undefined, 0, -1, Number.NaN, Number.POSITIVE_INFINITY]) assert.equal(handshakeTimeoutMs(spreadMs, 3000), 3000, String(spreadMs));
  // Half the spread once that is longer: 5,000 nodes announce 20 s.
  assert.equal(handshakeTimeoutMs(4000, 3000), 3000);
  assert.equal(handshakeTimeoutMs(8000, 3000), 4000);
  assert.equal(handshakeTimeoutMs(20_000, 3000), MAX_HANDSHAKE_TIMEOUT_MS);
  // Bounded whatever a manager announces.
  assert.equal(handshakeTimeoutMs(3_600_000, 3000), MAX_HANDSHAKE_TIMEOUT_MS);
});
