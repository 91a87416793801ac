// PassLoop (manager/store/pass-loop.ts): requests during a pass give exactly one more pass, and that
// pass waits as long as the previous one computed (its wall time when it does not say), so passes that
// read the whole store cannot run back to back under a stream of events. Real timers, short passes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { PassLoop, pacingDelay } from '../../manager/store/pass-loop.ts';

/**
 * Runs a loop whose first pass asks for `requests` more passes (with `ask`: a plain trigger unless
 * given), then waits `waitMs` (its commit, say) and reports `computedMs` (undefined: no compute figure,
 * its wall time paces). Returns when each pass started and ended.
 */
async function twoPasses(
  requests: number,
  waitMs: number,
  computedMs: number | undefined,
  ask: (loop: PassLoop) => void = (loop) => loop.trigger(),
): Promise<{ starts: number[]; ends: number[] }> {
  const starts: number[] = [];
  const ends: number[] = [];
  const loop: PassLoop = new PassLoop(
    async () => {
      starts.push(performance.now());
      if (starts.length === 1) {
        for (let i = 0; i < requests; i++) ask(loop);
        if (waitMs > 0) await sleep(waitMs);
        ends.push(performance.now());
        return computedMs;
      }
      ends.push(performance.now());
      return 0;
    },
    { who: 'test', log: () => {} },
  );
  loop.start();
  loop.trigger();
  await loop.idle();
  loop.stop();
  return { starts, ends };
}

test('requests during a long pass give one more pass, started no sooner than that pass took', async () => {
  // Three requests while the first pass runs (60 ms), which says nothing of its compute time.
  const { starts, ends } = await twoPasses(3, 60, undefined);
  assert.equal(starts.length, 2, 'the requests made during the pass gave exactly one more');
  const gap = starts[1]! - ends[0]!;
  assert.ok(gap >= 55, `the second pass waited ${gap.toFixed(0)} ms after a 60 ms pass`);
});

test('a short pass is followed at once (no added wait)', async () => {
  const { starts } = await twoPasses(1, 0, undefined);
  assert.equal(starts.length, 2);
  assert.ok(starts[1]! - starts[0]! < 50, `${(starts[1]! - starts[0]!).toFixed(0)} ms between short passes`);
});

test('a pass that reports its compute time is paced by it, not by its wait for a commit', async () => {
  // 2 ms of work, then 300 ms waiting for a commit (the core is free meanwhile).
  const { starts, ends } = await twoPasses(1, 300, 2);
  assert.equal(starts.length, 2);
  const gap = starts[1]! - ends[0]!;
  // Paced by the wall time it would have waited 300 ms more; by its compute, 2 ms (the bound leaves room
  // for a loaded machine's timer lateness).
  assert.ok(gap < 150, `the second pass waited ${gap.toFixed(0)} ms after a pass that computed 2 ms`);
});

test('pacingDelay: the next pass waits as long as the last one computed, counted from its end', () => {
  assert.equal(pacingDelay(300, 0, 5, 2000), 300, 'asked right at the end of a 300 ms pass');
  assert.equal(pacingDelay(300, 120, 5, 2000), 180, 'the time since the end already counts');
  assert.equal(pacingDelay(300, 400, 5, 2000), 5, 'never below the debounce');
  assert.equal(pacingDelay(9000, 0, 5, 2000), 2000, 'a very long pass waits at most the cap');
});

/** A loop counting its passes, with when each started. */
function counting(): { loop: PassLoop; starts: number[] } {
  const starts: number[] = [];
  const loop = new PassLoop(
    async () => {
      starts.push(performance.now());
      return 0;
    },
    { who: 'test', log: () => {} },
  );
  loop.start();
  return { loop, starts };
}

test('lazy requests within the window share one pass, run no later than the window', async () => {
  const { loop, starts } = counting();
  const t0 = performance.now();
  for (let i = 0; i < 10; i++) {
    loop.triggerLazy(120);
    await sleep(5);
  }
  await loop.idle();
  loop.stop();
  assert.equal(starts.length, 1, `ten lazy requests over ≈ 50 ms: ${starts.length} passes`);
  const at = starts[0]! - t0;
  assert.ok(at >= 110, `the pass ran ${at.toFixed(0)} ms after the first request (window 120 ms)`);
});

test('a request that cannot wait runs the pass at once, although a lazy one is pending', async () => {
  const { loop, starts } = counting();
  const t0 = performance.now();
  loop.triggerLazy(2_000);
  await sleep(10);
  loop.trigger();
  await loop.idle();
  loop.stop();
  assert.equal(starts.length, 1, 'one pass for both');
  assert.ok(starts[0]! - t0 < 500, `the pass ran after ${(starts[0]! - t0).toFixed(0)} ms, not after the lazy window`);
});

test('a lazy request during a pass waits its window after it', async () => {
  const { starts, ends } = await twoPasses(1, 5, 0, (loop) => loop.triggerLazy(150));
  assert.equal(starts.length, 2, 'the lazy request made during the pass gave one more');
  const gap = starts[1]! - ends[0]!;
  assert.ok(gap >= 140, `the next pass waited ${gap.toFixed(0)} ms (window 150 ms)`);
});
