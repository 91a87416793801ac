// `shoal service autoscale`: the report as the CLI prints it (cli/service.ts autoscaleText), from the
// shape GET /v1/services/ID/autoscale answers (api/objects.ts AutoscaleReport).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AutoscaleReport } from '../../api/objects.ts';
import { humanAgo } from '../../cli/format.ts';
import { autoscaleText, msText } from '../../cli/service.ts';

const ago = (ms: number) => new Date(Date.now() - ms).toISOString();

test('durations print as the flags take them', () => {
  assert.equal(msText(0), '0s');
  assert.equal(msText(5000), '5s');
  assert.equal(msText(90_000), '1m30s');
  assert.equal(msText(3_600_000 + 1500), '1h1s500ms');
});

test('times ago are worded as the docker CLI words them', () => {
  const now = Date.parse('2026-12-06T12:00:00Z');
  const at = (ms: number) => new Date(now - ms).toISOString();
  const cases: [number, string][] = [
    [400, 'Less than a second ago'],
    [1000, '1 second ago'],
    [59_000, '59 seconds ago'],
    [60_000, 'About a minute ago'],
    [119_000, 'About a minute ago'],
    [120_000, '2 minutes ago'],
    [59 * 60_000, '59 minutes ago'],
    [60 * 60_000, 'About an hour ago'],
    [90 * 60_000, '2 hours ago'],
    [47 * 3_600_000, '47 hours ago'],
    [3 * 86_400_000, '3 days ago'],
    [15 * 86_400_000, '2 weeks ago'],
    [100 * 86_400_000, '3 months ago'],
    [800 * 86_400_000, '2 years ago'],
  ];
  for (const [ms, text] of cases) assert.equal(humanAgo(at(ms), now), text, `${ms} ms`);
  assert.equal(humanAgo(at(-5000), now), 'Less than a second ago', 'a time ahead of this clock');
  assert.equal(humanAgo(undefined, now), '');
  assert.equal(humanAgo('not a time', now), '');
});

test('the report: policy, last change and what the autoscaler wants now', () => {
  const r: AutoscaleReport = {
    serviceId: 'abcdefghijklmnopqrstuvwxy',
    name: 'web',
    policy: { min: 2, max: 20, cpu: 70, memory: 80, windowMs: 300_000, cooldowns: { outMs: 30_000, inMs: 60_000 } },
    replicas: 3,
    lastChange: { time: ago(65_000), from: 2, to: 3, reason: 'cpu 91% of limit (target 70%)' },
    decision: { recommendation: 5, reason: 'cpu 120% of limit (target 70%)', at: ago(1000) },
  };
  assert.deepEqual(autoscaleText(r).split('\n'), [
    'Service:     web (abcdefghijkl)',
    'Policy:      min 2, max 20, cpu 70%, memory 80%; window 5m, cooldowns out 30s / in 1m',
    'Replicas:    3',
    'Last change: 2 → 3, about a minute ago: cpu 91% of limit (target 70%)',
    'Now:         wants 5: cpu 120% of limit (target 70%) (evaluated 1 second ago)',
    '',
  ]);
  const holding = autoscaleText({ ...r, lastChange: null, decision: { ...r.decision!, recommendation: 3, reason: 'within target' } });
  assert.match(holding, /^Last change:\s+none yet$/m);
  assert.match(holding, /^Now:\s+holds 3: within target/m);
  assert.match(autoscaleText({ ...r, decision: null }), /^Now:\s+not evaluated yet by this leader$/m);
  assert.equal(
    autoscaleText({ ...r, policy: null }),
    'Service web has no autoscale policy (set one with: shoal service update --autoscale min=N,max=M,cpu=P% web)\n',
  );
});
