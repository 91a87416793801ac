// The agent's heartbeat (worker/agent.ts): one period after the last message the leader takes as one
// (a heartbeat or a status message), so a node reporting its tasks sends no heartbeat beside the
// reports, and an idle node still heartbeats every period. Real TLS WebSockets on loopback.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { WebSocket } from 'ws';
import { type FakeManager, agentOf, startFakeManager } from '../helpers/fake-manager.ts';
import type { Executor } from '../../worker/executor.ts';
import type { TaskStatusUpdate } from '../../api/task-status.ts';

const PERIOD_MS = 150;
let fake: FakeManager;
/** What the manager received, and when (performance.now()). */
const got: { t: string; at: number }[] = [];

before(async () => {
  fake = await startFakeManager((ws: WebSocket, data) => {
    const m = JSON.parse(data) as { t: string };
    got.push({ t: m.t, at: performance.now() });
    if (m.t === 'hello') ws.send(JSON.stringify({ t: 'welcome', nodeId: 'n1', heartbeatPeriodMs: PERIOD_MS, managers: [], role: 'worker' }));
  });
});

after(() => fake.close());

test('no heartbeat beside status reports; every period when idle; never longer than a period without either', async () => {
  let emit: ((u: TaskStatusUpdate) => void) | null = null;
  const executor: Executor = { reconcile: () => {}, onStatus: (cb) => void (emit = cb), snapshot: () => [], close: async () => {} };
  const agent = agentOf(fake, { executor });
  agent.start();
  try {
    while (agent.state !== 'ready') await new Promise((r) => setTimeout(r, 5));
    // Reports every 60 ms for 1.2 s (a 'running' goes at once: status-batch.ts).
    const t0 = performance.now();
    for (let i = 0; performance.now() - t0 < 1_200; i++) {
      emit!({ taskId: `t${i}`, state: 'running', message: 'started', timestamp: new Date().toISOString() } as TaskStatusUpdate);
      await new Promise((r) => setTimeout(r, 60));
    }
    const busy = got.filter((m) => m.at >= t0 + PERIOD_MS && m.at < t0 + 1_200);
    assert.ok(busy.filter((m) => m.t === 'status').length >= 10, 'reports went');
    assert.equal(busy.filter((m) => m.t === 'hb').length, 0, `heartbeats beside reports: ${busy.map((m) => m.t).join(' ')}`);
    // Idle for 1.2 s: heartbeats, a period apart.
    const t1 = performance.now();
    await new Promise((r) => setTimeout(r, 1_200));
    const idle = got.filter((m) => m.at >= t1 && m.at < t1 + 1_200 && m.t === 'hb');
    assert.ok(idle.length >= 5 && idle.length <= 9, `${idle.length} heartbeats in 1.2 s at a ${PERIOD_MS} ms period`);
    // Throughout, the leader heard from the node at least every period (with room for timer lateness).
    const alive = got.filter((m) => (m.t === 'hb' || m.t === 'status') && m.at >= t0).map((m) => m.at);
    const gaps = alive.slice(1).map((a, i) => a - alive[i]!);
    assert.ok(Math.max(...gaps) < PERIOD_MS + 100, `longest silence ${Math.max(...gaps).toFixed(0)} ms`);
  } finally {
    agent.stop();
  }
});
