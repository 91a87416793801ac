// The healthcheck state machine (worker/engine/health.ts): pure, fed with probe results and times.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  HEALTH_LOG_SIZE,
  HEALTH_OUTPUT_MAX,
  HealthState,
  PROBE_TIMEOUT_EXIT,
  healthConfig,
  mergeHealthcheck,
  type HealthConfig,
} from '../../worker/engine/health.ts';

const cfg = (o: Partial<HealthConfig> = {}): HealthConfig => ({ command: ['true'], intervalMs: 1000, timeoutMs: 500, retries: 3, startPeriodMs: 0, ...o });
/** A probe that started at `at` and took 10 ms. */
const probe = (at: number, exitCode: number, output = '') => ({ startMs: at, endMs: at + 10, exitCode, output });

describe('healthConfig', () => {
  test('Docker test forms', () => {
    assert.deepEqual(healthConfig({ test: ['CMD', 'curl', '-f', 'http://x'] })?.command, ['curl', '-f', 'http://x']);
    assert.deepEqual(healthConfig({ test: ['CMD-SHELL', 'test -f /ok && echo yes'] })?.command, ['/bin/sh', '-c', 'test -f /ok && echo yes']);
    assert.equal(healthConfig({ test: ['NONE'] }), null);
    assert.equal(healthConfig({ test: [] }), null);
    assert.equal(healthConfig(undefined), null);
  });

  test('defaults for missing or zero numbers (Swarm: 30 s interval and timeout, 3 retries, no start period)', () => {
    assert.deepEqual(healthConfig({ test: ['CMD', 'x'], intervalMs: 0 }), {
      command: ['x'],
      intervalMs: 30_000,
      timeoutMs: 30_000,
      retries: 3,
      startPeriodMs: 0,
    });
    assert.deepEqual(healthConfig({ test: ['CMD', 'x'], intervalMs: 5, timeoutMs: 6, retries: 1, startPeriodMs: 7 }), {
      command: ['x'],
      intervalMs: 5,
      timeoutMs: 6,
      retries: 1,
      startPeriodMs: 7,
    });
  });

  test('malformed checks are errors', () => {
    assert.throws(() => healthConfig({ test: ['SHELL', 'x'] }), /must start with CMD, CMD-SHELL or NONE/);
    assert.throws(() => healthConfig({ test: ['CMD'] }), /no command/);
    assert.throws(() => healthConfig({ test: ['CMD-SHELL', 'a', 'b'] }), /exactly one shell command/);
    assert.throws(() => healthConfig({ test: ['CMD', 'x'], retries: -1 }), /retries must be a non-negative integer/);
  });

  test('the task overrides the image field by field; NONE disables the image check', () => {
    const image = { Test: ['CMD', 'img-check'], Interval: 5e9, Retries: 7 };
    assert.deepEqual(mergeHealthcheck({ test: [], intervalMs: 1000 }, image), { test: ['CMD', 'img-check'], intervalMs: 1000, retries: 7 });
    assert.deepEqual(mergeHealthcheck(undefined, image), { test: ['CMD', 'img-check'], intervalMs: 5000, retries: 7 });
    assert.equal(healthConfig(mergeHealthcheck({ test: ['NONE'] }, image)), null);
    assert.deepEqual(mergeHealthcheck({ test: ['CMD', 'mine'] }, undefined), { test: ['CMD', 'mine'] });
  });
});

describe('HealthState', () => {
  test('starting until the first success, then healthy; the first probe is one interval after the start', () => {
    const h = new HealthState(cfg(), 10_000);
    assert.equal(h.nextProbeAt(), 11_000);
    assert.equal(h.record(probe(11_000, 1, 'not yet')), 'none');
    assert.equal(h.report().status, 'starting');
    assert.equal(h.report().failingStreak, 1);
    // the next probe is due one interval after the previous one *ended*: probes never overlap
    assert.equal(h.nextProbeAt(), 12_010);
    assert.equal(h.record(probe(12_010, 0, 'ok')), 'healthy');
    assert.deepEqual({ ...h.report(), log: undefined }, { status: 'healthy', failingStreak: 0, log: undefined });
    assert.equal(h.record(probe(13_020, 0)), 'none', 'staying healthy changes nothing');
  });

  test('`retries` consecutive failures make it unhealthy (final); a success in between resets the streak', () => {
    const h = new HealthState(cfg({ retries: 3 }), 0);
    h.record(probe(1000, 0));
    assert.equal(h.record(probe(2000, 1)), 'none');
    assert.equal(h.record(probe(3000, 1)), 'none');
    assert.equal(h.record(probe(4000, 0)), 'none');
    assert.equal(h.report().failingStreak, 0);
    assert.equal(h.record(probe(5000, 2)), 'none');
    assert.equal(h.record(probe(6000, 1)), 'none');
    assert.equal(h.record(probe(7000, 1, 'down\n')), 'unhealthy');
    assert.equal(h.report().status, 'unhealthy');
    assert.equal(h.nextProbeAt(), Infinity, 'no more probes');
    assert.equal(h.record(probe(8000, 0)), 'none', 'unhealthy is final');
    assert.equal(h.report().status, 'unhealthy');
  });

  test('a container that never succeeds becomes unhealthy without ever being healthy', () => {
    const h = new HealthState(cfg({ retries: 2 }), 0);
    assert.equal(h.record(probe(1000, 1)), 'none');
    assert.equal(h.record(probe(2000, 1)), 'unhealthy');
  });

  test('failures of probes started within the start period do not count while starting', () => {
    const h = new HealthState(cfg({ retries: 1, startPeriodMs: 5000 }), 0);
    assert.equal(h.record(probe(1000, 1)), 'none');
    assert.equal(h.record(probe(4999, 1)), 'none');
    assert.equal(h.report().failingStreak, 0);
    assert.equal(h.report().status, 'starting');
    assert.equal(h.record(probe(5000, 1)), 'unhealthy', 'from the end of the start period on they count');
  });

  test('the start period no longer applies once healthy', () => {
    const h = new HealthState(cfg({ retries: 1, startPeriodMs: 60_000 }), 0);
    assert.equal(h.record(probe(1000, 0)), 'healthy');
    assert.equal(h.record(probe(2000, 1)), 'unhealthy');
  });

  test('a timed-out probe is a failure with exit -1 and a timeout message', () => {
    const h = new HealthState(cfg({ retries: 1, timeoutMs: 500 }), 0);
    assert.equal(h.record({ startMs: 1000, endMs: 1500, exitCode: 137, output: 'partial', timedOut: true }), 'unhealthy');
    const [r] = h.report().log;
    assert.equal(r!.exitCode, PROBE_TIMEOUT_EXIT);
    assert.equal(r!.output, 'Health check exceeded timeout (500ms)');
  });

  test('keeps the last 5 results with times and output capped at 4 KiB', () => {
    const h = new HealthState(cfg({ retries: 100 }), 0);
    for (let i = 1; i <= 7; i++) h.record(probe(i * 1000, i % 2, `run ${i}`));
    const log = h.report().log;
    assert.equal(log.length, HEALTH_LOG_SIZE);
    assert.deepEqual(
      log.map((r) => r.output),
      ['run 3', 'run 4', 'run 5', 'run 6', 'run 7'],
    );
    assert.deepEqual(
      log.map((r) => r.exitCode),
      [1, 0, 1, 0, 1],
    );
    assert.equal(log[0]!.start, new Date(3000).toISOString());
    assert.equal(log[0]!.end, new Date(3010).toISOString());
    h.record(probe(9000, 0, 'x'.repeat(10_000)));
    assert.equal(h.report().log.at(-1)!.output.length, HEALTH_OUTPUT_MAX);
  });
});
