// The confirmed crash, as its own test: a task prints long lines (600 lines of 20,000 bytes, then one
// line of 1 MiB) and an admin runs `shoal service logs` and `task logs` of it. That used to end the
// leader daemon (one 'log' frame over the session's 4 MiB limit, and no 'error' listener). Now every
// line must come back whole and in order through the CLI, no daemon may exit, and `task exec … cat` of
// a multi-MiB file must return it byte-exact. A real lab: 3 managers + 1 worker running real containers.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { localCall } from '../../client/context.ts';
import { buildImage, busyboxLayer } from '../../worker/images/build.ts';
import { ClusterLab, waitFor } from '../../lab/cluster-lab.ts';
import { cleanupOnExit } from '../../lab/lab.ts';

const NAME = 'h3x';
const SHOAL = join(resolve(fileURLToPath(new URL('../..', import.meta.url))), 'bin', 'shoal');
const LINES = 600;
const LINE_BYTES = 20_000;
const BIG = 1 << 20;
const SEQ = 400_000; // `seq 1 400000` is 2.7 MB

/** Prints the lines, then a marker, then idles (exits at once on SIGTERM). */
const SCRIPT = [
  `pad=$(head -c ${LINE_BYTES - 5} /dev/zero | tr '\\0' a)`,
  `i=0; while [ $i -lt ${LINES} ]; do printf '%05d%s\\n' $i "$pad"; i=$((i+1)); done`,
  `head -c ${BIG} /dev/zero | tr '\\0' b; echo`,
  `echo done-marker`,
  `seq 1 ${SEQ} > /tmp/big`,
  `trap 'exit 0' TERM; sleep 100000 & wait`,
].join('; ');

/** Compares long lines without printing megabytes on a failure. */
function assertLines(got: string[], want: string[], what: string): void {
  const show = (l: string | undefined) => (l === undefined ? 'nothing' : `${l.length} bytes starting ${JSON.stringify(l.slice(0, 12))}`);
  for (let i = 0; i < Math.max(got.length, want.length); i++) {
    if (got[i] !== want[i]) assert.fail(`${what}: line ${i} of ${got.length} (want ${want.length}) is ${show(got[i])}, want ${show(want[i])}`);
  }
}

function expectedLines(): string[] {
  const pad = 'a'.repeat(LINE_BYTES - 5);
  const out: string[] = [];
  for (let i = 0; i < LINES; i++) out.push(`${String(i).padStart(5, '0')}${pad}`);
  out.push('b'.repeat(BIG), 'done-marker');
  return out;
}

describe('long log lines and big exec output reach the CLI whole; no daemon exits', { concurrency: false, timeout: 300_000 }, () => {
  let c: ClusterLab;
  let unhook: () => void = () => {};
  const tmp = mkdtempSync(join(tmpdir(), 'shoal-h3x-'));

  const sh = (...args: string[]) =>
    new Promise<{ code: number; out: Buffer; err: string }>((res) => {
      execFile(
        SHOAL,
        args,
        { env: { ...process.env, SHOAL_CONTEXT: c.contextPath }, timeout: 120_000, maxBuffer: 256 << 20, encoding: 'buffer' },
        (e, out, err) =>
          res({ code: e ? (typeof (e as { code?: unknown }).code === 'number' ? (e as { code: number }).code : 1) : 0, out: out as Buffer, err: String(err) }),
      );
    });
  const daemonsRunning = () => [...c.daemons.keys()].filter((h) => c.daemonStatus(h).state !== 'running');

  before(async () => {
    unhook = cleanupOnExit(NAME);
    c = await ClusterLab.up({ name: NAME, managers: 3, workers: 1, executor: 'engine' });
    writeFileSync(join(tmp, 'box.tar'), buildImage({ name: 'shoal/box:1', layers: [busyboxLayer()], cmd: ['sh'] }).archive);
    await localCall(c.stateDir('h1'), 'POST', '/images/load', { path: join(tmp, 'box.tar') });
  });

  after(async () => {
    await c?.down();
    unhook();
    rmSync(tmp, { recursive: true, force: true });
  });

  let taskId = '';

  it('service logs and task logs return 600 lines of 20,000 bytes and a 1 MiB line whole and in order', async () => {
    const r = await sh('service', 'create', '--name', 'spam', '--constraint', 'node.role==worker', 'shoal/box:1', 'sh', '-c', SCRIPT);
    assert.equal(r.code, 0, `service create: ${r.err}`);
    await waitFor(
      async () => {
        const tasks: any[] = await c.control('GET', '/v1/tasks?service=spam');
        const t = tasks.find((x) => x.status.state === 'running');
        if (t) taskId = t.id;
        return t !== undefined;
      },
      60_000,
      'the spam task running',
    );
    const want = expectedLines();
    let got: string[] = [];
    await waitFor(
      async () => {
        const l = await sh('service', 'logs', '--raw', 'spam');
        assert.equal(l.code, 0, `service logs failed: ${l.err}`);
        got = l.out.toString('utf8').split('\n');
        return got.includes('done-marker');
      },
      60_000,
      'the task to print everything',
      1000,
    );
    assert.equal(got.pop(), '', 'output ends with a newline');
    assertLines(got, want, 'service logs');

    const t = await sh('task', 'logs', '--raw', taskId);
    assert.equal(t.code, 0, `task logs failed: ${t.err}`);
    assertLines(t.out.toString('utf8').split('\n').slice(0, -1), want, 'task logs');
    assert.deepEqual(daemonsRunning(), [], 'every daemon still runs');
  });

  it('task exec … cat of a multi-MiB file returns it byte-exact', async () => {
    const want = Buffer.from(`${Array.from({ length: SEQ }, (_, i) => i + 1).join('\n')}\n`);
    await waitFor(
      async () => (await sh('task', 'exec', taskId, '--', 'sh', '-c', `[ "$(wc -l < /tmp/big)" -eq ${SEQ} ]`)).code === 0,
      30_000,
      '/tmp/big written',
    );
    const r = await sh('task', 'exec', taskId, '--', 'cat', '/tmp/big');
    assert.equal(r.code, 0, `task exec: ${r.err}`);
    assert.equal(r.out.length, want.length);
    assert.ok(r.out.equals(want), 'exec output is byte-exact');
    const e = await sh('task', 'exec', taskId, '--', 'sh', '-c', 'echo out; echo err >&2; exit 3');
    assert.equal(e.code, 3);
    assert.equal(e.out.toString(), 'out\n');
    assert.match(e.err, /err/);
    assert.deepEqual(daemonsRunning(), [], 'every daemon still runs');
  });

  it('the secure port closes unclaimed and anonymous upgrades at once; shoal.sock is 0600', async () => {
    const h1 = c.host('h1');
    const admin = JSON.parse(readFileSync(c.contextPath, 'utf8')).admin as { key: string; cert: string; ca: string };
    const upgrade = (path: string, withCert: boolean) =>
      new Promise<{ answer: string; ms: number }>((resolve, reject) => {
        const t0 = Date.now();
        const s: TLSSocket = tlsConnect(
          { host: h1.ip, port: 2377, ca: admin.ca, ...(withCert ? { key: admin.key, cert: admin.cert } : {}), checkServerIdentity: () => undefined },
          () => {
            s.write(
              `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
            );
          },
        );
        let answer = '';
        s.on('data', (d: Buffer) => (answer += d.toString()));
        s.on('error', () => {});
        s.on('close', () => resolve({ answer, ms: Date.now() - t0 }));
        setTimeout(() => reject(new Error(`upgrade to ${path} still open after 5 s`)), 5000).unref();
      });
    const unclaimed = await upgrade('/anything', true);
    assert.equal(unclaimed.answer, '', 'an upgrade nobody serves is destroyed without an answer');
    const anonymous = await upgrade('/dispatcher/v1', false);
    assert.equal(anonymous.answer, '', 'an anonymous upgrade is destroyed without an answer');
    assert.equal(statSync(join(c.stateDir('h1'), 'shoal.sock')).mode & 0o777, 0o600);
    assert.deepEqual(daemonsRunning(), [], 'every daemon still runs');
  });
});
