// PassLoop (manager/store/pass-loop.ts): requests during a pass give exactly one more pass, and that
// pass waits as long as the previous one computed (its wall time when it does not say), so passes that read the whole store cannot run back to
// back under a stream of events. Real timers, short passes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { PassLoop, pacingDelay } from '../../manager/store/pass-loop.ts';

test('requests during a long pass give one more pass, started no sooner than that pass took', async () => {
  const starts: number[] = [];
  const ends: number[] = [];
  let loop: PassLoop;
  const pass = async () => {
    starts.push(performance.now());
    if (starts.length === 1) {
      // Three requests while the first pass runs (60 ms).
      for (let i = 0; i < 3; i++) loop.trigger();
      await sleep(60);
    }
    ends.push(performance.now());
    return undefined; // no compute figure: the wall time paces
  };
  loop = new PassLoop(pass, { who: 'test', log: () => {} });
  loop.start();
  loop.trigger();
  await loop.idle();
  loop.stop();
  assert.equal(starts.length, 2, 'the requests made during the pass gave exactly one more');
  const gap = starts[1]! - ends[0]!;
  assert.ok(gap >= 55, `the second pass waited ${gap.toFixed(0)} ms after a 60 ms pass`);
});

test('a short pass is followed at once (no added wait)', async () => {
  const starts: number[] = [];
  let loop: PassLoop;
  loop = new PassLoop(
    async () => {
      starts.push(performance.now());
      if (starts.length === 1) loop.trigger();
      return undefined;
    },
    { who: 'test', log: () => {} },
  );
  loop.start();
  loop.trigger();
  await loop.idle();
  loop.stop();
  assert.equal(starts.length, 2);
  assert.ok(starts[1]! - starts[0]! < 50, `${(starts[1]! - starts[0]!).toFixed(0)} ms between short passes`);
});

test('a pass that reports its compute time is paced by it, not by its wait for a commit', async () => {
  const starts: number[] = [];
  const ends: number[] = [];
  let loop: PassLoop;
  const pass = async () => {
    starts.push(performance.now());
    if (starts.length === 1) {
      loop.trigger();
      // 2 ms of work, then 80 ms waiting for a commit (the core is free meanwhile).
      await sleep(80);
      ends.push(performance.now());
      return 2;
    }
    ends.push(performance.now());
    return 0;
  };
  loop = new PassLoop(pass, { who: 'test', log: () => {} });
  loop.start();
  loop.trigger();
  await loop.idle();
  loop.stop();
  assert.equal(starts.length, 2);
  const gap = starts[1]! - ends[0]!;
  // Paced by the wall time it would have waited 80 ms more; by its compute, 2 ms.
  assert.ok(gap < 40, `the second pass waited ${gap.toFixed(0)} ms after a pass that computed 2 ms`);
});

test('pacingDelay: the next pass waits as long as the last one computed, counted from its end', () => {
  assert.equal(pacingDelay(300, 0, 5, 2000), 300, 'asked right at the end of a 300 ms pass');
  assert.equal(pacingDelay(300, 120, 5, 2000), 180, 'the time since the end already counts');
  assert.equal(pacingDelay(300, 400, 5, 2000), 5, 'never below the debounce');
  assert.equal(pacingDelay(9000, 0, 5, 2000), 2000, 'a very long pass waits at most the cap');
});
