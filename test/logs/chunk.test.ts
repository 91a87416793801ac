// Chunking, batching, flow windows and the leader's merge of log chunks (pure parts of the logs path:
// api/log-chunk.ts, worker/logs/flow.ts, manager/api/log-merge.ts, manager/api/remote-validate.ts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chunkEntry, LogBatcher, logChunkCost, splitBuffer, splitLine } from '../../api/log-chunk.ts';
import { FlowWindow } from '../../worker/logs/flow.ts';
import { LogMerge, type MergeOut } from '../../manager/api/log-merge.ts';
import { validateExecOutput, validateExecResult, validateLog, validateLogEnd } from '../../manager/api/remote-validate.ts';
import { EXEC_CHUNK_BYTES, LOG_BATCH_BYTES, LOG_CHUNK_BYTES, type LogLine } from '../../api/dispatcher.ts';
import { ProtocolViolation } from '../../transport/session.ts';

/** What a client does with the merged output: join each line's chunks. */
function reassemble(outs: MergeOut[]): { taskId: string; stream: string; line: string; incomplete?: boolean }[] {
  const lines: { taskId: string; stream: string; line: string; incomplete?: boolean }[] = [];
  const open = new Map<string, string>();
  for (const o of outs) {
    if (o.kind === 'cut') {
      lines.push({ taskId: o.taskId, stream: o.stream, line: open.get(`${o.taskId}/${o.stream}`) ?? '', incomplete: true });
      open.delete(`${o.taskId}/${o.stream}`);
      continue;
    }
    const k = `${o.chunk.taskId}/${o.chunk.stream}`;
    const text = (open.get(k) ?? '') + o.chunk.line;
    if (o.chunk.partial) open.set(k, text);
    else {
      open.delete(k);
      lines.push({ taskId: o.chunk.taskId, stream: o.chunk.stream, line: text });
    }
  }
  return lines;
}

function drain(m: LogMerge): MergeOut[] {
  const out: MergeOut[] = [];
  for (let o = m.next(); o !== null; o = m.next()) out.push(o);
  return out;
}

describe('splitLine', () => {
  it('keeps short lines whole and an empty line as one empty piece', () => {
    assert.deepEqual(splitLine('hello'), ['hello']);
    assert.deepEqual(splitLine(''), ['']);
  });

  it('cuts a 1 MiB line into 64 pieces of 16 KiB that join back', () => {
    const line = 'x'.repeat(1 << 20);
    const pieces = splitLine(line);
    assert.equal(pieces.length, 64);
    for (const p of pieces) assert.equal(Buffer.byteLength(p), LOG_CHUNK_BYTES);
    assert.equal(pieces.join(''), line);
  });

  it('never cuts inside a multi-byte character or a surrogate pair', () => {
    const line = 'aé€😀'.repeat(5000); // 1 + 2 + 3 + 4 bytes
    const pieces = splitLine(line, 1000);
    assert.equal(pieces.join(''), line);
    for (const p of pieces) {
      assert.ok(Buffer.byteLength(p) <= 1000);
      assert.equal(Buffer.from(p, 'utf8').toString('utf8'), p, 'each piece is valid UTF-8 on its own');
      assert.ok(!/[\ud800-\udbff]$/.test(p), 'no piece ends with a lone high surrogate');
    }
  });
});

describe('chunkEntry', () => {
  it('marks every chunk but the last partial, and all of them when the entry itself is partial', () => {
    const e = { ts: '2026-12-06T04:00:00.000Z', stream: 'stdout' as const, line: 'y'.repeat(40_000) };
    const c = chunkEntry('t1', e);
    assert.deepEqual(
      c.map((x) => x.partial === true),
      [true, true, false],
    );
    assert.equal(c.map((x) => x.line).join(''), e.line);
    assert.ok(chunkEntry('t1', { ...e, partial: true }).every((x) => x.partial === true));
    assert.equal(chunkEntry('t1', { ...e, line: 'short' })[0]!.partial, undefined);
  });
});

describe('LogBatcher', () => {
  it('keeps every batch under its byte limit and loses nothing', () => {
    const b = new LogBatcher();
    const batches: LogLine[][] = [];
    const chunks = chunkEntry('t', { ts: '2026-12-06T04:00:00.000Z', stream: 'stdout', line: 'z'.repeat(600 * 20_000) });
    for (const c of chunks) {
      const full = b.add(c);
      if (full) batches.push(full);
    }
    batches.push(b.take());
    for (const batch of batches) assert.ok(Buffer.byteLength(JSON.stringify({ t: 'log', req: '0123456789abcdef', lines: batch })) <= LOG_BATCH_BYTES);
    assert.equal(batches.flat().length, chunks.length);
    assert.equal(
      batches
        .flat()
        .map((c) => c.line)
        .join('').length,
      600 * 20_000,
    );
  });

  it('bounds a flood of empty lines by bytes too', () => {
    const b = new LogBatcher();
    let first: LogLine[] | null = null;
    for (let i = 0; i < 100_000 && !first; i++) first = b.add({ taskId: 't', ts: '2026-12-06T04:00:00.000Z', stream: 'stdout', line: '' });
    assert.ok(first && Buffer.byteLength(JSON.stringify(first)) <= LOG_BATCH_BYTES);
  });
});

describe('splitBuffer', () => {
  it('cuts exec output into pieces of at most 64 KiB', () => {
    const data = Buffer.alloc(3 * EXEC_CHUNK_BYTES + 5, 7);
    const p = splitBuffer(data);
    assert.deepEqual(
      p.map((x) => x.length),
      [EXEC_CHUNK_BYTES, EXEC_CHUNK_BYTES, EXEC_CHUNK_BYTES, 5],
    );
    assert.ok(Buffer.concat(p).equals(data));
    assert.deepEqual(splitBuffer(Buffer.alloc(0)), []);
  });
});

describe('FlowWindow', () => {
  it('makes the sender wait once the window is full and lets it go on acknowledgement', async () => {
    const w = new FlowWindow(100);
    assert.equal(await w.take(60), true);
    assert.equal(w.tryTake(60), false);
    let granted = false;
    const p = w.take(60).then((ok) => (granted = ok));
    await Promise.resolve();
    assert.equal(granted, false);
    w.release(60);
    await p;
    assert.equal(granted, true);
    assert.equal(w.inFlight, 60);
  });

  it('a waiting sender resumes only once half the window is free (few, large messages)', async () => {
    const w = new FlowWindow(100);
    assert.equal(w.tryTake(60), true);
    assert.equal(w.tryTake(30), true);
    let granted = false;
    const p = w.take(20).then((ok) => (granted = ok));
    w.release(20); // 70 outstanding: room for 20, but not below half yet
    await Promise.resolve();
    assert.equal(granted, false);
    w.release(30); // 40 outstanding
    await p;
    assert.equal(granted, true);
    assert.equal(w.tryTake(30), true, 'then it sends on without waiting');
  });

  it('lets a piece bigger than the window through when nothing is outstanding, and clamps over-acknowledgement', async () => {
    const w = new FlowWindow(10);
    assert.equal(w.tryTake(50), true);
    w.release(1_000_000);
    assert.equal(w.inFlight, 0);
  });

  it('resolves false when aborted', async () => {
    const w = new FlowWindow(10);
    w.tryTake(10);
    const ac = new AbortController();
    const p = w.take(5, ac.signal);
    ac.abort();
    assert.equal(await p, false);
    assert.equal(w.inFlight, 10);
  });
});

describe('LogMerge', () => {
  const ts = (n: number) => `2026-12-06T04:00:${String(n).padStart(2, '0')}.000Z`;

  it('sorted: merges tasks by time and waits for a task that has not ended', () => {
    const m = new LogMerge('sorted', ['a', 'b']);
    m.push({ taskId: 'a', ts: ts(1), stream: 'stdout', line: 'a1' });
    m.push({ taskId: 'a', ts: ts(3), stream: 'stdout', line: 'a3' });
    assert.equal(m.next(), null, 'b may still have an earlier line');
    m.push({ taskId: 'b', ts: ts(2), stream: 'stdout', line: 'b2' });
    m.end('b');
    m.end('a');
    assert.deepEqual(
      reassemble(drain(m)).map((l) => l.line),
      ['a1', 'b2', 'a3'],
    );
    assert.equal(m.done, true);
  });

  it('keeps a long line whole and contiguous, even when another task has earlier lines queued', () => {
    const m = new LogMerge('sorted', ['a', 'b']);
    const big = 'q'.repeat(1 << 20);
    const chunks = chunkEntry('a', { ts: ts(1), stream: 'stdout', line: big });
    m.push(chunks[0]!);
    m.push({ taskId: 'b', ts: ts(2), stream: 'stdout', line: 'b2' });
    const first = m.next();
    assert.equal(first?.kind === 'chunk' && first.chunk.taskId, 'a');
    assert.equal(m.next(), null, 'the open line of a must continue before b');
    for (const c of chunks.slice(1)) m.push(c);
    m.end('a');
    m.end('b');
    const lines = reassemble([first!, ...drain(m)]);
    assert.equal(lines.length, 2);
    assert.equal(lines[0]!.line, big);
    assert.equal(lines[1]!.line, 'b2');
  });

  it('closes a line left open by a task that ended (its node went away)', () => {
    const m = new LogMerge('arrival', ['a']);
    m.push({ taskId: 'a', ts: ts(1), stream: 'stderr', line: 'half', partial: true });
    m.end('a');
    const out = drain(m);
    assert.deepEqual(reassemble(out), [{ taskId: 'a', stream: 'stderr', line: 'half', incomplete: true }]);
    assert.equal(out[1]?.kind === 'cut' && out[1].reason, 'ended');
    assert.equal(m.done, true);
  });

  it('arrival: writes in arrival order without waiting for other tasks; refuses chunks of unknown or ended tasks', () => {
    const m = new LogMerge('arrival', ['a', 'b']);
    assert.equal(m.push({ taskId: 'b', ts: ts(5), stream: 'stdout', line: 'b5' }), true);
    assert.equal(m.push({ taskId: 'a', ts: ts(1), stream: 'stdout', line: 'a1' }), true);
    assert.deepEqual(
      reassemble(drain(m)).map((l) => l.line),
      ['b5', 'a1'],
    );
    assert.equal(m.push({ taskId: 'x', ts: ts(1), stream: 'stdout', line: 'x' }), false);
    m.end('a');
    assert.equal(m.push({ taskId: 'a', ts: ts(1), stream: 'stdout', line: 'late' }), false);
  });

  it('600 lines of 20,000 bytes and a 1 MiB line from two tasks come out whole and in order', () => {
    const m = new LogMerge('sorted', ['a', 'b']);
    const want: string[] = [];
    for (let i = 0; i < 600; i++) {
      const line = `${String(i).padStart(5, '0')}${'x'.repeat(19_995)}`;
      // the shim cuts at 16 KiB and marks the first piece partial; the agent cuts again where needed
      for (const c of chunkEntry('a', { ts: ts(10), stream: 'stdout', line: line.slice(0, 16384), partial: true })) m.push(c);
      for (const c of chunkEntry('a', { ts: ts(10), stream: 'stdout', line: line.slice(16384) })) m.push(c);
      want.push(line);
    }
    const big = 'M'.repeat(1 << 20);
    for (const c of chunkEntry('b', { ts: ts(20), stream: 'stdout', line: big })) m.push(c);
    m.end('a');
    m.end('b');
    const got = reassemble(drain(m)).map((l) => l.line);
    assert.equal(got.length, 601);
    assert.deepEqual(got.slice(0, 600), want);
    assert.equal(got[600], big);
  });

  it('arrival: cuts a line left open too long while other tasks wait, and goes on', () => {
    const m = new LogMerge('arrival', ['a', 'b'], 2000);
    m.push({ taskId: 'a', ts: ts(1), stream: 'stdout', line: 'part', partial: true });
    assert.equal(m.next(0)?.kind, 'chunk');
    m.push({ taskId: 'b', ts: ts(2), stream: 'stdout', line: 'b2' });
    assert.equal(m.next(1000), null, 'within the limit the open line holds');
    const cut = m.next(2500);
    assert.deepEqual(cut, { kind: 'cut', taskId: 'a', stream: 'stdout', ts: ts(1), reason: 'stalled' });
    const b = m.next(2500);
    assert.equal(b?.kind === 'chunk' && b.chunk.line, 'b2');
    m.push({ taskId: 'a', ts: ts(3), stream: 'stdout', line: 'rest' });
    const rest = m.next(2600);
    assert.equal(rest?.kind === 'chunk' && rest.chunk.line, 'rest');
  });

  it('sorted: never cuts a line that is still coming', () => {
    const m = new LogMerge('sorted', ['a', 'b'], 10);
    m.push({ taskId: 'a', ts: ts(1), stream: 'stdout', line: 'part', partial: true });
    m.push({ taskId: 'b', ts: ts(2), stream: 'stdout', line: 'b2' });
    assert.equal(m.next(0)?.kind, 'chunk');
    assert.equal(m.next(1_000_000), null);
  });

  it('window cost counts empty lines', () => {
    assert.ok(logChunkCost({ line: '' }) > 0);
  });
});

describe('remote-validate', () => {
  const line = { taskId: 't1', ts: '2026-12-06T04:00:00.123456Z', stream: 'stdout', line: 'hi' };
  it('accepts well-formed messages', () => {
    assert.equal(validateLog({ t: 'log', req: 'r', lines: [line, { ...line, partial: true }] }).lines.length, 2);
    assert.deepEqual(validateLogEnd({ t: 'log-end', req: 'r', taskId: 't1' }), { t: 'log-end', req: 'r', taskId: 't1' });
    assert.equal(
      validateExecOutput({ t: 'exec-output', req: 'r', stream: 'stderr', data: Buffer.from('abc').toString('base64'), seq: 0 }).bytes.toString(),
      'abc',
    );
    assert.deepEqual(validateExecResult({ t: 'exec-result', req: 'r', exitCode: 3 }), { t: 'exec-result', req: 'r', exitCode: 3 });
  });

  it('refuses wrong types, unknown fields, oversized pieces and bad base64, naming the field', () => {
    const bad: [() => unknown, RegExp][] = [
      [() => validateLog({ t: 'log', req: 'r', lines: [{ ...line, line: 'x'.repeat(LOG_CHUNK_BYTES + 1) }] }), /lines\[0\]\.line/],
      [() => validateLog({ t: 'log', req: 'r', lines: [{ ...line, line: 'é'.repeat(LOG_CHUNK_BYTES / 2 + 1) }] }), /longer than/],
      [() => validateLog({ t: 'log', req: 'r', lines: [{ ...line, stream: 'stdin' }] }), /stream/],
      [() => validateLog({ t: 'log', req: 'r', lines: [{ ...line, extra: 1 }] }), /extra: unknown field/],
      [() => validateLog({ t: 'log', req: 'r', lines: [{ ...line, partial: false }] }), /partial/],
      [() => validateLog({ t: 'log', req: 'r', lines: [{ ...line, ts: 'yesterday' }] }), /ts/],
      [() => validateLog({ t: 'log', req: 'r', lines: [] }), /lines/],
      [() => validateLog({ t: 'log', req: 5, lines: [line] }), /req/],
      [() => validateLogEnd({ t: 'log-end', req: 'r', error: 'e'.repeat(5000) }), /error/],
      [() => validateExecOutput({ t: 'exec-output', req: 'r', stream: 'stdout', data: 'not base64!', seq: 0 }), /base64/],
      [() => validateExecOutput({ t: 'exec-output', req: 'r', stream: 'stdout', data: Buffer.alloc(EXEC_CHUNK_BYTES + 3).toString('base64'), seq: 0 }), /data/],
      [() => validateExecOutput({ t: 'exec-output', req: 'r', stream: 'stdout', data: 'AAAA', seq: -1 }), /seq/],
      [() => validateExecResult({ t: 'exec-result', req: 'r', exitCode: 1.5 }), /exitCode/],
      [() => validateExecResult({ t: 'exec-result', req: 'r', exitCode: 0, error: 'x' }), /both/],
    ];
    for (const [f, re] of bad) assert.throws(f, (e: unknown) => e instanceof ProtocolViolation && re.test(e.message), String(f));
  });
});
