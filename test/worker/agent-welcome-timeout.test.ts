// A manager that accepts the agent's connection and never answers its hello (neither a welcome nor a
// redirect) must not hold the agent: it gives up after the welcome timeout and dials again. Before, it
// waited for the session's liveness (45 s). Real TLS WebSockets on loopback.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type FakeManager, WELCOME_N1, agentOf, startFakeManager } from '../helpers/fake-manager.ts';

let fake: FakeManager;
let answer = false;

before(async () => {
  // Silent (a manager wedged, or stopping) until told to answer.
  fake = await startFakeManager((ws) => {
    if (answer) ws.send(WELCOME_N1);
  });
});

after(() => fake.close());

test('no welcome within the timeout: the agent closes that connection and dials again', async () => {
  const logs: string[] = [];
  const agent = agentOf(fake, {
    random: () => 1,
    welcomeTimeoutMs: 300,
    log: (l) => logs.push(l),
  });
  agent.start();
  try {
    const deadline = Date.now() + 10_000;
    while (fake.opens.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(fake.opens.length >= 3, `${fake.opens.length} connection(s): the agent stayed on a silent one`);
    assert.ok(
      logs.some((l) => /ended \(4000 no welcome\)/.test(l)),
      logs.join('\n'),
    );
    // A manager that answers keeps the agent: ready, and no more dialling.
    answer = true;
    while (agent.state !== 'ready' && Date.now() < deadline + 5000) await new Promise((r) => setTimeout(r, 20));
    assert.equal(agent.state, 'ready');
    const n = fake.opens.length;
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(fake.opens.length, n, 'a welcomed session is not timed out');
  } finally {
    agent.stop();
  }
});
