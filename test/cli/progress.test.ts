// Progress while a service converges: without a terminal a line is printed only when the status
// changes (a two-minute wait is a few lines, not one per poll); on a terminal the line is redrawn in
// place. The status text itself is a pure function of the service and its tasks.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StatusLine } from '../../cli/progress.ts';
import { progressLine } from '../../cli/service.ts';

function fakeStream(isTTY: boolean) {
  const writes: string[] = [];
  return { isTTY, columns: 60, writes, write: (s: string) => writes.push(s) };
}

describe('StatusLine', () => {
  it('without a terminal prints a line only when the text changes', () => {
    const out = fakeStream(false);
    const s = new StatusLine(out);
    for (let i = 0; i < 480; i++) s.update('converging: 0/3 tasks running [pending 3] (waiting: no suitable node)', `${i}s`);
    s.update('converging: 1/3 tasks running [running 1, pending 2]', '121s');
    s.update('converging: 1/3 tasks running [running 1, pending 2]', '122s');
    s.done('verify: service web converged');
    assert.deepEqual(out.writes, [
      'converging: 0/3 tasks running [pending 3] (waiting: no suitable node)\n',
      'converging: 1/3 tasks running [running 1, pending 2]\n',
      'verify: service web converged\n',
    ]);
  });

  it('on a terminal redraws one line in place, cut to the width, and ends it once', () => {
    const out = fakeStream(true);
    const s = new StatusLine(out);
    s.update('converging: 0/3', '1s');
    s.update('converging: 0/3', '2s');
    s.update(`converging: ${'x'.repeat(100)}`);
    s.done('verify: done');
    s.done();
    assert.equal(out.writes[0], '\r\x1b[2Kconverging: 0/3 1s');
    assert.equal(out.writes[1], '\r\x1b[2Kconverging: 0/3 2s');
    assert.ok(out.writes[2]!.startsWith('\r\x1b[2K') && out.writes[2]!.endsWith('…') && out.writes[2]!.length <= 5 + 59, 'fits the terminal');
    assert.equal(out.writes.filter((w) => w.includes('\n')).length, 2, 'the status line ends once, then the final line');
    assert.equal(out.writes.at(-1), 'verify: done\n');
  });
});

describe('progressLine', () => {
  const svc = (over: object = {}) => ({ id: 's', specVersion: 2, spec: { name: 'web' }, replicas: { running: 0, desired: 2 }, ...over }) as never;
  const task = (state: string, message = '', specVersion = 2) => ({ desiredState: 'running', specVersion, status: { state, message } }) as never;

  it('names the waiting reason in the status itself, so it is printed once', () => {
    const p = progressLine(svc(), [task('pending', 'no suitable node (2 nodes fail constraint node.labels.x==y)'), task('running')], 'create');
    assert.equal(p.line, 'converging: 1/2 tasks running [pending 1, running 1] (waiting: no suitable node (2 nodes fail constraint node.labels.x==y))');
    assert.equal(p.done, false);
  });

  it('is done when every task of the current version runs', () => {
    assert.equal(progressLine(svc(), [task('running'), task('running')], 'create').done, true);
    assert.equal(progressLine(svc(), [task('running'), task('running', '', 1)], 'create').done, false, 'a task of the old spec does not count');
  });

  it('a service the orchestrator cannot grow (a cluster limit) ends the wait with the reason', () => {
    const p = progressLine(svc({ status: { blocked: 'the cluster has reached limits.maxTasks (250000 tasks)' } }), [task('running')], 'scale');
    assert.equal(p.error, 'service web cannot converge: the cluster has reached limits.maxTasks (250000 tasks) (the change is stored)');
    assert.equal(
      progressLine(svc({ status: { blocked: 'x' } }), [task('running'), task('running')], 'scale').error,
      undefined,
      'not once it runs what it asks for',
    );
  });

  it('an update that paused or rolled back is an error', () => {
    const paused = progressLine(svc({ updateStatus: { state: 'paused', message: 'task failed' } }), [task('running')], 'update');
    assert.equal(paused.error, 'update paused: task failed');
    const rolled = progressLine(svc({ updateStatus: { state: 'rollback_completed', message: 'x' } }), [task('running'), task('running')], 'update');
    assert.match(rolled.error!, /rolled back/);
  });
});
