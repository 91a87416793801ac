// readLogs (worker/engine/logs.ts) over log files in the shim's format, written by the test: rotated file
// first, tail, since, follow across a rotation, the end of following, abort.
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readLogs, type LogEntry } from '../../worker/engine/logs.ts';

const root = mkdtempSync(join(tmpdir(), 'shoal-eng-logs-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const newLog = () => join(mkdtempSync(join(root, `l${n++}-`)), 'container.log');
const at = (sec: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, sec)).toISOString();
const entry = (sec: number, line: string, s = 'stdout') => `${JSON.stringify({ t: at(sec), s, l: line })}\n`;

async function collect(it: AsyncIterable<LogEntry>): Promise<string[]> {
  const out: string[] = [];
  for await (const e of it) out.push(e.line);
  return out;
}

test('the rotated file comes first; entries carry time, stream and line; junk lines are skipped', async () => {
  const log = newLog();
  writeFileSync(`${log}.1`, entry(1, 'one') + entry(2, 'two', 'stderr'));
  writeFileSync(log, entry(3, 'three "q"') + 'not json\n' + entry(4, 'four'));
  const all: LogEntry[] = [];
  for await (const e of readLogs(log)) all.push(e);
  assert.deepEqual(all, [
    { ts: at(1), stream: 'stdout', line: 'one' },
    { ts: at(2), stream: 'stderr', line: 'two' },
    { ts: at(3), stream: 'stdout', line: 'three "q"' },
    { ts: at(4), stream: 'stdout', line: 'four' },
  ]);
  assert.deepEqual(await collect(readLogs([`${log}.1`])), ['one', 'two'], 'an explicit file list');
  assert.deepEqual(await collect(readLogs(join(root, 'missing.log'))), [], 'no log yet');
});

test('tail and since', async () => {
  const log = newLog();
  writeFileSync(`${log}.1`, entry(1, 'a') + entry(2, 'b'));
  writeFileSync(log, entry(3, 'c') + entry(4, 'd') + entry(5, 'e'));
  assert.deepEqual(await collect(readLogs(log, { tail: 4 })), ['b', 'c', 'd', 'e'], 'across the rotation');
  assert.deepEqual(await collect(readLogs(log, { tail: 0 })), []);
  assert.deepEqual(await collect(readLogs(log, { since: new Date(at(2)) })), ['b', 'c', 'd', 'e']);
  assert.deepEqual(await collect(readLogs(log, { since: new Date(at(2)), tail: 2 })), ['d', 'e']);
});

test('a large log is tailed correctly', async () => {
  const log = newLog();
  writeFileSync(log, Array.from({ length: 20_000 }, (_, i) => entry(i % 60, `line ${i}`)).join(''));
  assert.deepEqual(await collect(readLogs(log, { tail: 3 })), ['line 19997', 'line 19998', 'line 19999']);
});

test('follow: new lines, a line written in two pieces, a rotation; ends when done and drained', async () => {
  const log = newLog();
  writeFileSync(log, entry(1, 'old'));
  let finished = false;
  const seen: string[] = [];
  const reader = (async () => {
    for await (const e of readLogs(log, { follow: true, pollMs: 10, done: () => finished })) seen.push(e.line);
  })();
  const waitSeen = async (k: number) => {
    const end = Date.now() + 5000;
    while (seen.length < k) {
      if (Date.now() > end) throw new Error(`saw only ${JSON.stringify(seen)}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  await waitSeen(1);
  const half = entry(2, 'split');
  appendFileSync(log, half.slice(0, 10));
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(seen, ['old'], 'an incomplete line waits');
  appendFileSync(log, half.slice(10) + entry(3, 'new'));
  await waitSeen(3);
  // what the shim does when the log is full: rename to .1, start a new file
  appendFileSync(log, entry(4, 'before-rotate'));
  renameSync(log, `${log}.1`);
  writeFileSync(log, entry(5, 'after-rotate'));
  await waitSeen(5);
  appendFileSync(log, entry(6, 'last'));
  finished = true;
  await reader;
  assert.deepEqual(seen, ['old', 'split', 'new', 'before-rotate', 'after-rotate', 'last']);
});

test('follow ends without an error when aborted', async () => {
  const log = newLog();
  writeFileSync(log, entry(1, 'x'));
  const ac = new AbortController();
  const t0 = Date.now();
  setTimeout(() => ac.abort(), 100);
  assert.deepEqual(await collect(readLogs(log, { follow: true, signal: ac.signal, pollMs: 1000 })), ['x']);
  assert.ok(Date.now() - t0 < 900, 'the abort cut the poll interval short');
});
