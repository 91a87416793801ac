// The metric definitions and collectors, without a cluster: a ClusterView over plain arrays, the Raft
// gauges over a status object, the control-API observer through a real Router, and the endpoint over
// real loopback HTTP. What Prometheus would read is checked in the text exposition itself.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Router } from '../../manager/api/http.ts';
import { badRequest } from '../../manager/api/errors.ts';
import { pendingReasonClass, type ClusterView, type TaskView } from '../../metrics/cluster.ts';
import { DaemonMetrics } from '../../metrics/daemon-metrics.ts';
import { MetricsAddrError, parseMetricsAddr, serveMetrics } from '../../metrics/server.ts';

function view(tasks: TaskView[], opts: { leader?: boolean; usage?: Record<string, { cpuPercent?: number; memoryBytes: number }> } = {}): ClusterView {
  return {
    isLeader: () => opts.leader ?? true,
    counts: () => ({ service: 2, task: tasks.length, node: 2 }),
    tasks: () => tasks,
    services: () => [
      { name: 'web', updateState: 'updating' },
      { name: 'api', updateState: null },
    ],
    nodes: () => [
      { id: 'n1', hostname: 'h1', state: 'ready', availability: 'active' },
      { id: 'n2', hostname: 'h2', state: 'down', availability: 'drain' },
    ],
    dispatcher: () => ({
      sessions: { open: 2 },
      messages: { byType: { hb: 7, status: 3 } },
      dropped: { byReason: { 'rate-limit': 4 } },
      drain: { holding: 1, released: { acknowledged: 5, 'node-gone': 0, deadline: 2 }, immediate: 3, heldMs: 4500 },
    }),
    usageOf: (id) => opts.usage?.[id],
  };
}

const task = (id: string, service: string, state: string, node: string | null = 'n1', message = ''): TaskView => ({ id, service, node, state, message });

/** The value of one sample line, e.g. line(text, 'shoal_tasks{service="web",state="running"}'). */
function sample(text: string, series: string): number | undefined {
  const l = text.split('\n').find((x) => x.startsWith(series + ' '));
  return l === undefined ? undefined : Number(l.slice(series.length + 1));
}

describe('metrics: cluster collectors', () => {
  it('counts tasks by service and state, history by state only', async () => {
    const m = new DaemonMetrics({ processMetrics: false });
    m.cluster.source(
      view([
        task('a', 'web', 'running'),
        task('b', 'web', 'running'),
        task('c', 'api', 'pending', null, 'no suitable node (3 nodes have insufficient memory)'),
        task('d', 'web', 'failed'),
      ]),
    );
    const t = await m.text();
    assert.equal(sample(t, 'shoal_tasks{service="web",state="running"}'), 2);
    assert.equal(sample(t, 'shoal_tasks{service="api",state="pending"}'), 1);
    assert.equal(sample(t, 'shoal_tasks{service="",state="failed"}'), 1);
    assert.equal(sample(t, 'shoal_scheduler_pending_tasks{reason="resources"}'), 1);
    assert.equal(sample(t, 'shoal_store_objects{kind="task"}'), 4);
    assert.equal(sample(t, 'shoal_services{update_state="updating"}'), 1);
    assert.equal(sample(t, 'shoal_services{update_state="none"}'), 1);
    assert.equal(sample(t, 'shoal_nodes{state="down",availability="drain"}'), 1);
    assert.equal(sample(t, 'shoal_dispatcher_sessions'), 2);
    assert.equal(sample(t, 'shoal_dispatcher_heartbeats_total'), 7);
    assert.equal(sample(t, 'shoal_dispatcher_dropped_messages_total{reason="rate-limit"}'), 4);
    assert.equal(sample(t, 'shoal_dispatcher_stops_held'), 1);
    assert.equal(sample(t, 'shoal_dispatcher_stop_drains_total{outcome="acknowledged"}'), 5);
    assert.equal(sample(t, 'shoal_dispatcher_stop_drains_total{outcome="deadline"}'), 2);
    assert.equal(sample(t, 'shoal_dispatcher_stop_drains_total{outcome="immediate"}'), 3);
    assert.equal(sample(t, 'shoal_dispatcher_stop_drain_seconds_total'), 4.5);
  });

  it('a scrape reads the current state: a task that stops running leaves the gauge', async () => {
    const m = new DaemonMetrics({ processMetrics: false });
    const tasks = [task('a', 'web', 'running')];
    m.cluster.source(view(tasks));
    assert.equal(sample(await m.text(), 'shoal_tasks{service="web",state="running"}'), 1);
    tasks[0] = task('a', 'web', 'shutdown');
    const t = await m.text();
    assert.equal(sample(t, 'shoal_tasks{service="web",state="running"}'), undefined);
    assert.equal(sample(t, 'shoal_tasks{service="",state="shutdown"}'), 1);
  });

  it('a follower exports its store counts but no cluster-wide numbers', async () => {
    const m = new DaemonMetrics({ processMetrics: false });
    m.cluster.source(view([task('a', 'web', 'running')], { leader: false }));
    const t = await m.text();
    assert.equal(sample(t, 'shoal_store_objects{kind="task"}'), 1);
    assert.doesNotMatch(t, /^shoal_tasks\{/m);
    assert.doesNotMatch(t, /^shoal_nodes\{/m);
  });

  it('usage per task and summed per node, only for running tasks with a report', async () => {
    const m = new DaemonMetrics({ processMetrics: false });
    m.cluster.source(
      view([task('a', 'web', 'running', 'n1'), task('b', 'web', 'running', 'n1'), task('c', 'api', 'running', 'n2'), task('d', 'api', 'running', 'n2')], {
        usage: { a: { cpuPercent: 10, memoryBytes: 100 }, b: { cpuPercent: 5, memoryBytes: 50 }, c: { memoryBytes: 7 } },
      }),
    );
    const t = await m.text();
    assert.equal(sample(t, 'shoal_task_cpu_percent{service="web",task="a"}'), 10);
    assert.equal(sample(t, 'shoal_task_memory_bytes{service="api",task="c"}'), 7);
    assert.equal(sample(t, 'shoal_task_cpu_percent{service="api",task="c"}'), undefined);
    assert.equal(sample(t, 'shoal_node_tasks_cpu_percent{node="h1"}'), 15);
    assert.equal(sample(t, 'shoal_node_tasks_memory_bytes{node="h1"}'), 150);
    assert.equal(sample(t, 'shoal_node_tasks_memory_bytes{node="h2"}'), 7);
  });

  it('pending reasons fall into a small fixed set', () => {
    assert.equal(pendingReasonClass(''), 'not-tried');
    assert.equal(pendingReasonClass('no suitable node (no nodes available)'), 'no-nodes');
    assert.equal(pendingReasonClass('no suitable node (2 nodes fail constraint node.labels.zone==eu)'), 'constraints');
    assert.equal(pendingReasonClass('no suitable node (1 node has insufficient cpu)'), 'resources');
    assert.equal(pendingReasonClass('something new'), 'other');
  });

  it('scheduler passes feed the placement histogram', async () => {
    const m = new DaemonMetrics({ processMetrics: false });
    m.cluster.schedulerPass({ ms: 3, assigned: 5, unplaced: 1 });
    const t = await m.text();
    assert.equal(sample(t, 'shoal_scheduler_pass_duration_seconds_count'), 1);
    assert.equal(sample(t, 'shoal_scheduler_pass_duration_seconds_bucket{le="0.005"}'), 1);
    assert.equal(sample(t, 'shoal_scheduler_tasks_total{result="assigned"}'), 5);
  });

  it('orchestrator reconciles are counted by whether they decided anything, and timed', async () => {
    const m = new DaemonMetrics({ processMetrics: false });
    m.cluster.orchestratorReconcile({ ms: 2, decided: true });
    m.cluster.orchestratorReconcile({ ms: 40, decided: false });
    m.cluster.orchestratorReconcile({ ms: 1, decided: false });
    const t = await m.text();
    assert.equal(sample(t, 'shoal_orchestrator_reconciles_total{result="decided"}'), 1);
    assert.equal(sample(t, 'shoal_orchestrator_reconciles_total{result="nothing"}'), 2);
    assert.equal(sample(t, 'shoal_orchestrator_reconcile_duration_seconds_count'), 3);
    assert.equal(sample(t, 'shoal_orchestrator_reconcile_duration_seconds_bucket{le="0.005"}'), 2);
  });
});

describe('metrics: raft', () => {
  it('reads term, indexes and leadership at scrape time, and only while a manager runs', async () => {
    const m = new DaemonMetrics({ processMetrics: false });
    assert.doesNotMatch(await m.text(), /shoal_raft_term/);
    const st = { role: 'leader', term: 4, commit: 120, applied: 119, lastIndex: 121 };
    m.raft.source(() => st);
    let t = await m.text();
    assert.equal(sample(t, 'shoal_raft_term'), 4);
    assert.equal(sample(t, 'shoal_raft_commit_index'), 120);
    assert.equal(sample(t, 'shoal_raft_apply_index'), 119);
    assert.equal(sample(t, 'shoal_raft_is_leader'), 1);
    st.role = 'follower';
    assert.equal(sample(await m.text(), 'shoal_raft_is_leader'), 0);
    m.raft.source(null);
    t = await m.text();
    assert.doesNotMatch(t, /^shoal_raft_term/m);
  });

  it('proposal, fsync and leader-change observers', async () => {
    const m = new DaemonMetrics({ processMetrics: false });
    m.raft.proposal(0.002, true);
    m.raft.proposal(0.5, false);
    m.raft.fsync(0.0003);
    m.raft.leaderChanged();
    const t = await m.text();
    assert.equal(sample(t, 'shoal_raft_proposal_duration_seconds_count{outcome="applied"}'), 1);
    assert.equal(sample(t, 'shoal_raft_proposal_duration_seconds_count{outcome="failed"}'), 1);
    assert.equal(sample(t, 'shoal_raft_fsync_duration_seconds_bucket{le="0.0005"}'), 1);
    assert.equal(sample(t, 'shoal_raft_leader_changes_total'), 1);
  });
});

describe('metrics: control API by route pattern', () => {
  it('observes the matched pattern and the status, errors included', async () => {
    const m = new DaemonMetrics({ processMetrics: false });
    const r = new Router<object>();
    r.add('GET', '/v1/services/:id', (_c, p) => {
      if (p['id'] === 'bad') throw badRequest('bad id');
      return { id: p['id'] };
    });
    r.observe = (method, route, status, s) => m.api.request(method, route, status, s);
    const fakeRes = () => {
      const res = {
        statusCode: 200,
        headersSent: false,
        writeHead(s: number) {
          res.statusCode = s;
          res.headersSent = true;
          return res;
        },
        end() {},
      };
      return res as unknown as import('node:http').ServerResponse;
    };
    const req = (url: string) => ({ method: 'GET', url }) as import('node:http').IncomingMessage;
    await r.dispatch({}, req('/v1/services/abc123'), fakeRes());
    await r.dispatch({}, req('/v1/services/def456'), fakeRes());
    await assert.rejects(r.dispatch({}, req('/v1/services/bad'), fakeRes()));
    const t = await m.text();
    assert.equal(sample(t, 'shoal_api_request_duration_seconds_count{method="GET",route="/v1/services/:id",status="200"}'), 2);
    assert.equal(sample(t, 'shoal_api_request_duration_seconds_count{method="GET",route="/v1/services/:id",status="400"}'), 1);
    assert.doesNotMatch(t, /abc123/);
  });
});

describe('metrics: endpoint', () => {
  it('parses HOST:PORT and refuses anything else with the flag named', () => {
    assert.deepEqual(parseMetricsAddr('127.0.0.1:9323'), { host: '127.0.0.1', port: 9323 });
    assert.deepEqual(parseMetricsAddr('[::1]:0'), { host: '::1', port: 0 });
    assert.throws(() => parseMetricsAddr('9323'), MetricsAddrError);
    assert.throws(() => parseMetricsAddr('h:70000'), /--metrics-addr "h:70000": port 70000 is out of range/);
  });

  it('serves /metrics in the text format over HTTP, and nothing else', async () => {
    const m = new DaemonMetrics();
    m.raft.leaderChanged();
    const srv = await serveMetrics(m.registry, '127.0.0.1:0');
    try {
      const base = `http://127.0.0.1:${srv.address.port}`;
      const res = await fetch(`${base}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      const text = await res.text();
      assert.match(text, /^# TYPE shoal_raft_leader_changes_total counter$/m);
      assert.match(text, /^shoal_process_resident_memory_bytes \d+/m);
      assert.equal((await fetch(`${base}/other`)).status, 404);
      assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);
    } finally {
      await srv.close();
    }
  });
});
