// Metrics against a real Prometheus: a lab of 3 managers + 1 worker, each daemon started with
// --metrics-addr on its lab host's address, and Debian's `prometheus` started by this test in the root
// namespace (it reaches the lab hosts through the lab bridge) with its own config and a temp TSDB. The
// checks are PromQL answers, the way an operator would ask: tasks running per service equal what
// `shoal service ls` says, exactly one manager is leader, the commit index moves after a write, and
// control-API requests are counted by route pattern.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ClusterLab, waitFor } from '../../lab/cluster-lab.ts';
import { cleanupOnExit } from '../../lab/lab.ts';

const NAME = 'h16x';
const METRICS_PORT = 9323;
const SHOAL = join(resolve(fileURLToPath(new URL('../..', import.meta.url))), 'bin', 'shoal');

/** A free loopback port for Prometheus's own listener. */
function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => res(port));
    });
  });
}

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

describe('Prometheus metrics on a lab, checked with a real Prometheus', { concurrency: false }, () => {
  let c: ClusterLab | undefined;
  let prom: ChildProcess | null = null;
  let promDir = '';
  let promUrl = '';
  let promLog = '';
  let unhook: () => void = () => {};

  before(async () => {
    unhook = cleanupOnExit(NAME);
    c = await ClusterLab.up({ name: NAME, managers: 3, workers: 1, daemonArgs: (h) => ['--metrics-addr', `${h.ip}:${METRICS_PORT}`] });
    promDir = mkdtempSync(join(tmpdir(), 'shoal-h16-prom-'));
    const targets = c.lab.hosts.map((h) => `'${h.ip}:${METRICS_PORT}'`).join(', ');
    writeFileSync(
      join(promDir, 'prometheus.yml'),
      `global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: shoal\n    static_configs:\n      - targets: [${targets}]\n`,
    );
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    prom = spawn(
      'prometheus',
      [
        `--config.file=${join(promDir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(promDir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    prom.stderr!.on('data', (d: Buffer) => (promLog = (promLog + d.toString()).slice(-4000)));
    await waitFor(async () => (await fetch(`${promUrl}/-/ready`).catch(() => null))?.ok === true, 20_000, `prometheus ready (${promLog})`, 200);
  });

  after(async () => {
    if (prom?.pid !== undefined && prom.exitCode === null) {
      const exited = new Promise((r) => prom!.once('exit', r));
      process.kill(prom.pid, 'SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
      if (prom.exitCode === null && prom.signalCode === null) process.kill(prom.pid, 'SIGKILL');
    }
    if (promDir) rmSync(promDir, { recursive: true, force: true });
    await c?.down();
    unhook();
  });

  const sh = (...args: string[]) =>
    new Promise<{ code: number; out: string; err: string }>((res) => {
      execFile(SHOAL, args, { env: { ...process.env, SHOAL_CONTEXT: c!.contextPath }, timeout: 60_000 }, (e, out, err) =>
        res({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out: String(out), err: String(err) }),
      );
    });
  const ok = async (...args: string[]) => {
    const r = await sh(...args);
    assert.equal(r.code, 0, `shoal ${args.join(' ')} failed: ${r.err}${r.out}`);
    return r.out;
  };
  const query = async (q: string): Promise<Sample[]> => {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`);
    const body = (await res.json()) as { status: string; data?: { resultType: string; result: Sample[] }; error?: string };
    assert.equal(body.status, 'success', `query ${q}: ${body.error}`);
    return body.data!.result;
  };
  /** `shoal service ls`: name → running replicas (the N of N/M). */
  const serviceLs = async () => {
    const out = await ok('service', 'ls');
    const m = new Map<string, number>();
    for (const line of out.split('\n').slice(1)) {
      const r = /^\S+\s+(\S+)\s+\S+\s+(\d+)\/(\d+)/.exec(line.trim());
      if (r) m.set(r[1]!, Number(r[2]));
    }
    return m;
  };

  it('every daemon is scraped', async () => {
    await waitFor(async () => (await query('up == 1')).length === 4, 20_000, 'all 4 targets up', 250);
  });

  it('tasks running per service equal `shoal service ls`', async () => {
    await ok('service', 'create', '--name', 'web', '--replicas', '3', 'nginx:1.25');
    await ok('service', 'create', '--name', 'api', '--replicas', '2', 'busybox:1.36');
    let last = '';
    await waitFor(
      async () => {
        const ls = await serviceLs();
        const prom = new Map((await query('sum by (service) (shoal_tasks{state="running"})')).map((s) => [s.metric['service']!, Number(s.value[1])]));
        last = `service ls ${JSON.stringify([...ls])}, prometheus ${JSON.stringify([...prom])}`;
        return ls.get('web') === 3 && ls.get('api') === 2 && ls.size === prom.size && [...ls].every(([k, v]) => prom.get(k) === v);
      },
      30_000,
      'prometheus to agree with service ls',
      500,
    ).catch((e: Error) => assert.fail(`${e.message}: ${last}`));
  });

  it("the leader counts the nodes' heartbeats", async () => {
    // 4 nodes heartbeat every second: the leader's counter grows (it read a key no message has before).
    await waitFor(async () => Number((await query('sum(shoal_dispatcher_heartbeats_total)'))[0]?.value[1] ?? 0) > 0, 20_000, 'heartbeats counted', 500);
  });

  it('exactly one manager reports is_leader 1', async () => {
    await waitFor(async () => (await query('shoal_raft_is_leader')).length === 3, 10_000, 'is_leader from 3 managers', 250);
    const leaders = await query('shoal_raft_is_leader == 1');
    assert.equal(leaders.length, 1, `leaders: ${JSON.stringify(leaders)}`);
    // Cluster-wide gauges come from the leader alone, so sums are not triple-counted.
    const sources = await query('count by (instance) (shoal_tasks)');
    assert.deepEqual(
      sources.map((s) => s.metric['instance']),
      leaders.map((s) => s.metric['instance']),
    );
  });

  it('the raft commit index increases after a write', async () => {
    const before = Number((await query('max(shoal_raft_commit_index)'))[0]!.value[1]);
    assert.ok(before > 0);
    await ok('service', 'scale', 'web=4');
    await waitFor(async () => Number((await query('max(shoal_raft_commit_index)'))[0]?.value[1] ?? 0) > before, 15_000, 'commit index to increase', 250);
    // Every manager applied it too.
    await waitFor(async () => (await query(`shoal_raft_apply_index > ${before}`)).length === 3, 15_000, 'all managers to apply past it', 250);
  });

  it('control-API requests are counted by route pattern and status', async () => {
    await waitFor(
      async () => {
        const rows = await query('sum by (route, status) (shoal_api_request_duration_seconds_count)');
        const routes = new Set(rows.map((r) => `${r.metric['route']} ${r.metric['status']}`));
        return routes.has('/v1/services 200') || routes.has('/v1/services 201');
      },
      15_000,
      'a /v1/services request to be counted',
      250,
    );
    const rows = await query('sum by (route) (shoal_api_request_duration_seconds_count)');
    // Patterns, never raw paths: no service id or name appears in a route label.
    for (const r of rows) assert.doesNotMatch(r.metric['route']!, /web|api\b|[0-9a-z]{20,}/, `raw path in route label: ${r.metric['route']}`);
    assert.ok((await query('histogram_quantile(0.99, sum by (le) (rate(shoal_raft_fsync_duration_seconds_bucket[1m])))')).length > 0);
  });
});
