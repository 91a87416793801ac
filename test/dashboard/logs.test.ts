// The dashboard's live logs (/api/logs) and stream edges, with a fake cluster behind a real server on
// loopback: partial lines are joined but never past MAX_LOG_LINE (then sent marked cut), a browser that
// stops reading pauses the manager's stream until it drains, a browser gone while the source is not yet
// ready leaves no listener behind, and a malformed %-escape is a 400.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { StreamHandlers } from '../../cli/dashboard/source.ts';
import { type Dashboard, LOG_CUT_MARK, MAX_LOG_LINE, startDashboard } from '../../cli/dashboard/server.ts';
import { LiveSource } from '../../cli/dashboard/source.ts';
import { UsageFeed } from '../../cli/dashboard/usage.ts';

class FakeStreams {
  streams: { path: string; h: StreamHandlers; paused: number; resumed: number; closed: boolean }[] = [];
  clusterId = 'c1';
  async get<T>(_path: string): Promise<T> {
    throw Object.assign(new Error('not here'), { status: 404 });
  }
  async post<T>(): Promise<T> {
    return {} as T;
  }
  stream(path: string, h: StreamHandlers) {
    const s = { path, h, paused: 0, resumed: 0, closed: false };
    this.streams.push(s);
    return {
      close: () => void (s.closed = true),
      pause: () => void s.paused++,
      resume: () => void s.resumed++,
    };
  }
  managers() {
    return [];
  }
}

const until = async (cond: () => boolean, what: string) => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > 5000) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('dashboard logs and stream edges', () => {
  let dir = '';
  let fake: FakeStreams;
  let source: LiveSource;
  let usage: UsageFeed;
  let d: Dashboard;
  let cookie = '';

  const open = (path: string): Promise<IncomingMessage> => {
    const u = new URL(d.origin);
    return new Promise((resolve, reject) => {
      const req = request({ host: u.hostname, port: Number(u.port), path, headers: { host: u.host, cookie } }, resolve);
      req.on('error', reject);
      req.end();
    });
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shoal-dashlogs-'));
    writeFileSync(join(dir, 'index.html'), '<!doctype html>');
    fake = new FakeStreams();
    source = new LiveSource(fake); // not started: never ready
    usage = new UsageFeed(fake.get.bind(fake), 50);
    d = await startDashboard({ host: '127.0.0.1', port: 0, staticDir: dir, source, usage, api: fake, contextName: 't' });
    const u = new URL(d.url);
    const res = await new Promise<IncomingMessage>((resolve) =>
      request({ host: u.hostname, port: Number(u.port), path: `${u.pathname}${u.search}`, headers: { host: u.host } }, resolve).end(),
    );
    res.resume();
    cookie = String(res.headers['set-cookie']?.[0]).split(';')[0]!;
  });
  after(async () => {
    source.stop();
    usage.stop();
    await d.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends a line that never ends in MAX_LOG_LINE pieces marked cut', async () => {
    const n = fake.streams.length;
    const res = await open('/api/logs?task=t1');
    assert.equal(res.statusCode, 200);
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (c: string) => (text += c));
    await until(() => fake.streams.length === n + 1, 'the upstream stream');
    const up = fake.streams[n]!;
    const piece = 'x'.repeat(16 * 1024);
    for (let i = 0; i < 9; i++) up.h.onLine({ task: 't1', node: 'n', ts: 't', stream: 'stdout', line: piece, partial: true });
    up.h.onLine({ task: 't1', node: 'n', ts: 't', stream: 'stdout', line: 'end' });
    await until(() => (text.match(/^event: line$/gm) ?? []).length === 3, 'three lines');
    const lines = [...text.matchAll(/^data: (.*)$/gm)].map((m) => (JSON.parse(m[1]!) as { line: string }).line);
    assert.deepEqual(
      lines.map((l) => l.length),
      [MAX_LOG_LINE + LOG_CUT_MARK.length, MAX_LOG_LINE + LOG_CUT_MARK.length, 16 * 1024 + 3],
    );
    assert.ok(lines[0]!.endsWith(LOG_CUT_MARK));
    assert.ok(lines[2]!.endsWith('xend'));
    res.destroy();
    await until(() => up.closed, 'the upstream closed with the browser');
  });

  it('pauses the manager stream while the browser does not read, and resumes on drain', async () => {
    const n = fake.streams.length;
    const res = await open('/api/logs?task=t2');
    res.pause();
    await until(() => fake.streams.length === n + 1, 'the upstream stream');
    const up = fake.streams[n]!;
    const line = 'y'.repeat(60 * 1024);
    // The fake upstream behaves like a paused socket: nothing arrives between pause() and resume().
    const isPaused = () => up.paused > up.resumed;
    const t0 = Date.now();
    let fed = 0;
    while (Date.now() - t0 < 1500 && fed < 256 << 20) {
      if (!isPaused()) {
        up.h.onLine({ task: 't2', node: 'n', ts: 't', stream: 'stdout', line });
        fed += line.length;
      }
      await new Promise((r) => setImmediate(r));
    }
    assert.ok(up.paused >= 1, 'paused when the browser stopped reading');
    assert.ok(isPaused(), `still paused while the browser does not read (fed ${fed >> 20} MiB)`);
    res.resume();
    await until(() => !isPaused(), 'resumed after drain');
    res.destroy();
  });

  it('a browser gone before the source is ready leaves no listener', async () => {
    const listeners = () => (source as unknown as { listeners: Set<unknown> }).listeners.size;
    const u = new URL(d.origin);
    const req = request({ host: u.hostname, port: Number(u.port), path: '/api/stream', headers: { host: u.host, cookie } });
    req.on('error', () => {});
    req.end();
    await new Promise((r) => setTimeout(r, 100)); // the server awaits source.ready
    req.destroy();
    await new Promise((r) => setTimeout(r, 100));
    (source as unknown as { markReady: () => void }).markReady();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(listeners(), 0);
  });

  it('answers a malformed %-escape with 400, not 500', async () => {
    const csrf = await new Promise<string>((resolve) => {
      const u = new URL(d.origin);
      request({ host: u.hostname, port: Number(u.port), path: '/api/session', headers: { host: u.host, cookie } }, (res) => {
        let t = '';
        res.on('data', (c) => (t += c));
        res.on('end', () => resolve((JSON.parse(t) as { csrf: string }).csrf));
      }).end();
    });
    for (const p of ['/%E0%A4%A', '/api/services/%E0%A4%A/scale']) {
      const u = new URL(d.origin);
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(
          {
            host: u.hostname,
            port: Number(u.port),
            method: p.startsWith('/api') ? 'POST' : 'GET',
            path: p,
            headers: { host: u.host, cookie, 'x-shoal-csrf': csrf, 'content-type': 'application/json' },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end('{"replicas":1}');
      });
      assert.equal(status, 400, p);
    }
  });
});
