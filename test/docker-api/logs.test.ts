// Service and task logs in the Engine API's multiplexed stream. The framing is checked byte by byte,
// then the REAL docker CLI reads a stream through the facade: `service logs` (prefixes built from the
// details), `--timestamps`, stdout/stderr routing, `--tail` and `--since` passed on, and task logs.
// Nodes of the test executor keep no logs, so the control API's GET /v1/logs is played here by a
// route that answers what remote.ts answers (its NDJSON); everything between it and the CLI is real.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { logFrame, parseFrames, sinceToIso } from '../../manager/docker-api/logs-frame.ts';
import { dockerCli } from './harness.ts';
import { logsServer, TASKS } from './fixtures.ts';

describe('multiplexed log frames', () => {
  it('frames a line with an 8-byte header, the details prefix and a newline', () => {
    const f = logFrame(
      { stream: 'stderr', ts: '2026-12-06T05:00:00.123456789Z', line: 'boom', nodeId: 'n1', serviceId: 's1', taskId: 't1' },
      { timestamps: true, details: true },
    );
    assert.deepEqual([...f.subarray(0, 4)], [2, 0, 0, 0]);
    const payload = '2026-12-06T05:00:00.123456789Z com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s1,com.docker.swarm.task.id=t1 boom\n';
    assert.equal(f.readUInt32BE(4), Buffer.byteLength(payload));
    assert.equal(f.subarray(8).toString(), payload);
  });

  it('leaves the newline off a partial piece and parses frames back, keeping an incomplete rest', () => {
    const a = logFrame(
      { stream: 'stdout', ts: 't', line: 'ab', partial: true, nodeId: 'n', serviceId: 's', taskId: 'x' },
      { timestamps: false, details: false },
    );
    const b = logFrame({ stream: 'stdout', ts: 't', line: 'cd', nodeId: 'n', serviceId: 's', taskId: 'x' }, { timestamps: false, details: false });
    const all = Buffer.concat([a, b]);
    const p = parseFrames(all.subarray(0, all.length - 1));
    assert.deepEqual(p.frames, [{ stream: 1, payload: 'ab' }]);
    assert.equal(p.rest.length, b.length - 1);
    assert.deepEqual(
      parseFrames(all)
        .frames.map((f) => f.payload)
        .join(''),
      'abcd\n',
    );
  });

  it('reads Docker since values (unix seconds with a fraction; 0 = none)', () => {
    assert.equal(sinceToIso('0'), undefined);
    assert.equal(sinceToIso(''), undefined);
    assert.equal(sinceToIso('1700000000.5'), '2023-11-14T22:13:20.500Z');
    assert.equal(sinceToIso('2023-11-14T22:13:20Z'), '2023-11-14T22:13:20.000Z');
  });
});

const cli = await dockerCli();
const skip = cli === null ? 'the docker CLI is not on PATH (the machine image ships docker 28.2.2)' : false;

describe('docker service logs through the facade', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-docker-logs-'));
  const socket = join(dir, 'docker.sock');
  const logged: string[] = [];
  const server = logsServer(socket, (l) => logged.push(l));
  const docker = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(
        'docker',
        args,
        { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, DOCKER_CONFIG: join(dir, 'cfg'), DOCKER_HOST: `unix://${socket}` }, timeout: 30_000 },
        (e, stdout, stderr) => resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, stdout, stderr }),
      ),
    );
  before(async () => server.start());
  after(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints each line with the task and node prefix the CLI builds from the details', async () => {
    const r = await docker(['service', 'logs', 'web']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, ['web.1.task00000000@host-a    | hello from 1', 'web.2.task00000000@host-a    | tail=all since=-', ''].join('\n'));
    assert.equal(r.stderr, 'web.2.task00000000@host-a    | oops from 2\n');
    assert.ok(
      logged.some((l) => /host-b is down/.test(l)),
      'control-stream warnings go to the manager log',
    );
  });

  it('passes --timestamps, --tail, --since and --no-task-ids / --raw on', async () => {
    const r = await docker(['service', 'logs', '--timestamps', '--tail', '5', '--since', '2026-12-06T05:00:00Z', '--raw', 'web']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      ['2026-12-06T05:00:01.000000001Z hello from 1', '2026-12-06T05:00:03.000000003Z tail=5 since=2026-12-06T05:00:00.000Z', ''].join('\n'),
    );
  });

  it("serves one task's logs", async () => {
    const r = await docker(['service', 'logs', '--raw', TASKS[0]!.id]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'hello from 1\n');
  });

  it('refuses a request for no stream at all', async () => {
    const r = await new Promise<number>((resolve) => {
      const http = import('node:http');
      void http.then(({ request }) => {
        const req = request({ socketPath: socket, path: '/v1.47/services/web/logs' }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.end();
      });
    });
    assert.equal(r, 400);
  });
});
