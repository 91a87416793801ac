// Raft's logical clock follows the wall clock when the event loop runs late, not when it stalls
// (manager/raft/ticker.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_CATCH_UP_TICKS, ticksDue } from '../../manager/raft/ticker.ts';

test('on time: one tick per wake-up, the schedule unchanged', () => {
  assert.deepEqual(ticksDue(1000, 1000, 10), { ticks: 1, next: 1010 });
  assert.deepEqual(ticksDue(1000, 1004, 10), { ticks: 1, next: 1010 });
  // A timer that fires a little early still ticks once and keeps the schedule.
  assert.deepEqual(ticksDue(1000, 998, 10), { ticks: 1, next: 1010 });
});

test('a slow loop (wake-ups 35 ms apart) runs the ticks that were due: timeouts stay in wall time', () => {
  let due = 10;
  let ticks = 0;
  for (let now = 35; now <= 3500; now += 35) {
    const r = ticksDue(due, now, 10);
    ticks += r.ticks;
    due = r.next;
    assert.ok(due > now && due <= now + 10, `next tick due at ${due}, now ${now}`);
  }
  // 3.5 s of wall time is 350 ticks, give or take the one in progress; counting wake-ups gave 100.
  assert.ok(ticks >= 349 && ticks <= 351, `${ticks} ticks`);
});

test('a stalled loop catches up at most MAX_CATCH_UP_TICKS and restarts the schedule from now', () => {
  const r = ticksDue(1000, 3000, 10);
  assert.deepEqual(r, { ticks: MAX_CATCH_UP_TICKS, next: 3010 });
  // Just under the cap is followed in full.
  assert.deepEqual(ticksDue(1000, 1000 + (MAX_CATCH_UP_TICKS - 1) * 10 + 5, 10), {
    ticks: MAX_CATCH_UP_TICKS,
    next: 1000 + MAX_CATCH_UP_TICKS * 10,
  });
});
