// The agent's reconnect backoff against a manager that accepts the connection and redirects at once
// without knowing a leader (a follower during an election): the agent must wait the election out, not
// redial every 50 ms. At 1,000 nodes that redial storm starved the managers' election of CPU (bench:scale, leader
// kill took 53 s). Real TLS WebSockets on loopback.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type FakeManager, WELCOME_N1, agentOf, startFakeManager } from '../helpers/fake-manager.ts';

let fake: FakeManager;
let welcome = false;

before(async () => {
  // The hello: a follower without a leader redirects and closes; once "elected", welcome.
  fake = await startFakeManager((ws) => {
    if (welcome) ws.send(WELCOME_N1);
    else {
      ws.send(JSON.stringify({ t: 'redirect', leader: null, message: 'no leader' }));
      ws.close(4001, 'not leader');
    }
  });
});

after(() => fake.close());

test('without a leader the agent backs off (connections do not reset it); a welcome does', async () => {
  const agent = agentOf(fake, { random: () => 1 });
  agent.start();
  try {
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 3000));
    // "Not leader" without a leader is an election: delays 1,000 then 2,000 ms (random 1: the full
    // delay; worker/reconnect.ts) plus connect time: 2 or 3 connections in 3 s. Reset on every open, it
    // was one every ~50 ms (30 and more); backing off from 50 ms, 6 or 7.
    const inWindow = fake.opens.filter((t) => t - t0 <= 3000).length;
    assert.ok(inWindow >= 2 && inWindow <= 3, `${inWindow} connections in 3 s`);
    // Elected: the next connection is welcomed and the agent is ready.
    welcome = true;
    const deadline = Date.now() + 5000;
    while (agent.state !== 'ready' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(agent.state, 'ready');
  } finally {
    agent.stop();
  }
});
