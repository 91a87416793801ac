// RemoteCalls (manager/api/remote.ts), the leader's side of logs and exec requests, with a recording
// `send` in place of node sessions: a node may answer only for the tasks it was asked, within its flow
// window, with exec pieces in order; acknowledgements go back as the leader passes output on.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RemoteCalls } from '../../manager/api/remote.ts';
import { LOG_MIN_WINDOW_BYTES, LOG_WINDOW_BYTES, logWindowFor, type ManagerToAgent } from '../../api/dispatcher.ts';
import { ProtocolViolation } from '../../transport/session.ts';

function setup() {
  const sent: { nodeId: string; m: ManagerToAgent }[] = [];
  const calls = new RemoteCalls((nodeId, m) => {
    sent.push({ nodeId, m });
    return true;
  });
  const reqOf = (t: string) => (sent.find((s) => s.m.t === t)!.m as { req: string }).req;
  return { sent, calls, reqOf };
}

const TS = '2026-12-06T04:00:00.000Z';

describe('RemoteCalls: logs', () => {
  it('passes chunks on, ends tasks and the request, and acknowledges what the route wrote', () => {
    const { sent, calls, reqOf } = setup();
    const chunks: string[] = [];
    const ended: string[] = [];
    let end: string | undefined | null = null;
    const call = calls.logs('n1', ['t1', 't2'], {}, { onChunk: (c) => chunks.push(c.line), onTaskEnd: (id) => ended.push(id), onEnd: (e) => (end = e) })!;
    const req = reqOf('logs');
    calls.onNodeMessage('n1', {
      t: 'log',
      req,
      lines: [
        { taskId: 't1', ts: TS, stream: 'stdout', line: 'a', partial: true },
        { taskId: 't2', ts: TS, stream: 'stdout', line: 'b' },
      ],
    } as never);
    calls.onNodeMessage('n1', { t: 'log-end', req, taskId: 't1' } as never);
    calls.onNodeMessage('n1', { t: 'log-end', req } as never);
    assert.deepEqual(chunks, ['a', 'b']);
    assert.deepEqual(ended, ['t1']);
    assert.equal(end, undefined);
    call.ack('t1', 65);
    assert.equal(sent.filter((s) => s.m.t === 'logs-ack').length, 0, 'no acknowledgement after the request ended');
  });

  it('ignores answers from another node, and ends the request when a node sends lines of a task it was not asked for', () => {
    const { sent, calls, reqOf } = setup();
    const chunks: string[] = [];
    let end: string | undefined | null = null;
    calls.logs('n1', ['t1'], {}, { onChunk: (c) => chunks.push(c.line), onTaskEnd: () => {}, onEnd: (e) => (end = e) });
    const req = reqOf('logs');
    calls.onNodeMessage('n2', { t: 'log', req, lines: [{ taskId: 't1', ts: TS, stream: 'stdout', line: 'forged' }] } as never);
    assert.deepEqual(chunks, []);
    assert.throws(
      () => calls.onNodeMessage('n1', { t: 'log', req, lines: [{ taskId: 'other', ts: TS, stream: 'stdout', line: 'x' }] } as never),
      ProtocolViolation,
    );
    assert.match(String(end), /did not ask/);
    assert.ok(sent.some((s) => s.m.t === 'logs-cancel'));
    assert.equal(calls.refused.log, 1);
  });

  it('ends the request of a node that sends more than its window without acknowledgement', () => {
    const { calls, reqOf } = setup();
    let end: string | undefined | null = null;
    calls.logs('n1', ['t1'], {}, { onChunk: () => {}, onTaskEnd: () => {}, onEnd: (e) => (end = e) });
    const req = reqOf('logs');
    const line = 'x'.repeat(16 * 1024);
    const n = Math.ceil(LOG_WINDOW_BYTES / line.length) + 2;
    assert.throws(() => {
      for (let i = 0; i < n; i++) calls.onNodeMessage('n1', { t: 'log', req, lines: [{ taskId: 't1', ts: TS, stream: 'stdout', line }] } as never);
    }, /window/);
    assert.match(String(end), /window/);
  });

  it('warns when a task ends with fewer chunks than the node sent', () => {
    const { calls, reqOf } = setup();
    let taskError: string | undefined = '';
    calls.logs('n1', ['t1'], {}, { onChunk: () => {}, onTaskEnd: (_id, e) => (taskError = e), onEnd: () => {} });
    const req = reqOf('logs');
    calls.onNodeMessage('n1', { t: 'log', req, lines: [{ taskId: 't1', ts: TS, stream: 'stdout', line: 'a' }] } as never);
    calls.onNodeMessage('n1', { t: 'log-end', req, taskId: 't1', chunks: 3 } as never);
    assert.match(String(taskError), /2 of 3 log chunks of task t1 were lost/);
  });

  it('gives a request over many tasks smaller windows (bounded memory per request) and holds nodes to them', () => {
    assert.equal(logWindowFor(1), LOG_WINDOW_BYTES);
    assert.ok(logWindowFor(1000) * 1000 <= 64 * 1024 * 1024);
    assert.equal(logWindowFor(1_000_000), LOG_MIN_WINDOW_BYTES);
    const { sent, calls, reqOf } = setup();
    let end: string | undefined | null = null;
    calls.logs('n1', ['t1'], {}, { onChunk: () => {}, onTaskEnd: () => {}, onEnd: (e) => (end = e) }, LOG_MIN_WINDOW_BYTES);
    assert.equal((sent[0]!.m as { window?: number }).window, LOG_MIN_WINDOW_BYTES);
    const req = reqOf('logs');
    const line = 'x'.repeat(16 * 1024);
    assert.throws(() => {
      for (let i = 0; i < 4; i++) calls.onNodeMessage('n1', { t: 'log', req, lines: [{ taskId: 't1', ts: TS, stream: 'stdout', line }] } as never);
    }, /window/);
    assert.match(String(end), /window/);
  });

  it('lets a node that respects acknowledgements send any amount', () => {
    const { calls, reqOf } = setup();
    let got = 0;
    const call = calls.logs('n1', ['t1'], {}, { onChunk: () => got++, onTaskEnd: () => {}, onEnd: () => {} })!;
    const req = reqOf('logs');
    const line = 'x'.repeat(16 * 1024);
    for (let i = 0; i < 1000; i++) {
      calls.onNodeMessage('n1', { t: 'log', req, lines: [{ taskId: 't1', ts: TS, stream: 'stdout', line }] } as never);
      call.ack('t1', line.length + 64);
    }
    assert.equal(got, 1000);
  });
});

describe('RemoteCalls: exec', () => {
  it('passes output on in order, acknowledges it once, and resolves with the exit code', () => {
    const { sent, calls, reqOf } = setup();
    const out: string[] = [];
    let exit: number | null = null;
    const cancel = calls.exec('n1', 't1', ['cat'], 1000, {
      onOutput: (s, d, ack) => (out.push(`${s}:${d}`), ack(), ack()),
      onExit: (c) => (exit = c),
      onError: (e) => assert.fail(e.message),
    });
    const req = reqOf('exec');
    calls.onNodeMessage('n1', { t: 'exec-output', req, stream: 'stdout', data: Buffer.from('hello').toString('base64'), seq: 0 } as never);
    calls.onNodeMessage('n1', { t: 'exec-output', req, stream: 'stderr', data: Buffer.from('oops').toString('base64'), seq: 1 } as never);
    calls.onNodeMessage('n1', { t: 'exec-result', req, exitCode: 2 } as never);
    cancel();
    assert.deepEqual(out, ['stdout:hello', 'stderr:oops']);
    assert.equal(exit, 2);
    assert.deepEqual(
      sent.filter((s) => s.m.t === 'exec-ack').map((s) => (s.m as { bytes: number }).bytes),
      [5, 4],
    );
  });

  it('fails an exec whose pieces come out of order', () => {
    const { calls, reqOf } = setup();
    let err = '';
    const cancel = calls.exec('n1', 't1', ['cat'], 1000, {
      onOutput: () => {},
      onExit: () => assert.fail('no exit expected'),
      onError: (e) => (err = e.message),
    });
    const req = reqOf('exec');
    assert.throws(() => calls.onNodeMessage('n1', { t: 'exec-output', req, stream: 'stdout', data: 'AAAA', seq: 1 } as never), ProtocolViolation);
    assert.match(err, /piece 1 where 0 was due/);
    cancel();
  });

  it('reports an exec whose output lost a piece on the way instead of a clean exit', () => {
    const { calls, reqOf } = setup();
    let err = '';
    const cancel = calls.exec('n1', 't1', ['cat'], 1000, {
      onOutput: (_s, _d, ack) => ack(),
      onExit: () => assert.fail('no clean exit expected'),
      onError: (e) => (err = e.message),
    });
    const req = reqOf('exec');
    calls.onNodeMessage('n1', { t: 'exec-output', req, stream: 'stdout', data: 'AAAA', seq: 0 } as never);
    calls.onNodeMessage('n1', { t: 'exec-result', req, exitCode: 0, pieces: 2 } as never);
    assert.match(err, /1 of 2 pieces/);
    cancel();
  });

  it('answers 503 at once for a node without a session', () => {
    const calls = new RemoteCalls(() => false);
    assert.throws(() => calls.exec('n1', 't1', ['true'], 1000, { onOutput: () => {}, onExit: () => {}, onError: () => {} }), /not connected/);
  });
});
