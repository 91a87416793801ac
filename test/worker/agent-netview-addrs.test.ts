// The agent's side of 'netview-addr-changes' (worker/netview-addrs.ts): it names the feature, keeps the node
// addresses of its session's first (whole) view, applies the changes that follow to them, and hands
// onNetwork whole views each time. A change that does not apply to what it has (another generation, or no
// whole view yet on this session) ends the session: the next one starts with a whole view. Real TLS
// WebSockets on loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { agentOf, untilLogged, welcomingManager } from '../helpers/fake-manager.ts';
import type { NetView } from '../../api/netview.ts';

const { fake, hellos, session } = welcomingManager();

const view = (nodeAddrs?: string[]): NetView => ({
  nodeId: 'n1',
  vtep: '10.0.0.1',
  networks: [],
  endpoints: [],
  services: [],
  ...(nodeAddrs ? { nodeAddrs } : {}),
});

test('a whole view, then changes of its node addresses applied to it; a change out of step starts a new session', async () => {
  const views: NetView[] = [];
  const logs: string[] = [];
  const agent = agentOf(fake(), { onNetwork: (v) => void views.push(v), log: (l) => logs.push(l) });
  const until = (what: string, cond: () => boolean) => untilLogged(what, cond, logs);
  agent.start();
  try {
    await until('ready', () => agent.state === 'ready');
    assert.ok(hellos[0]?.features?.includes('netview-addr-changes'), 'the hello names the feature');
    const send = (m: unknown) => session()!.send(JSON.stringify(m));
    send({ t: 'network', view: view(['10.0.0.1', '10.0.0.9']), addrsGen: 4, v: 1 });
    await until('the whole view', () => views.length === 1);
    assert.deepEqual(views[0]!.nodeAddrs, ['10.0.0.1', '10.0.0.9']);
    send({ t: 'network', view: view(), addrs: { base: 4, gen: 5, add: ['10.0.0.10', '10.0.0.2'], remove: ['10.0.0.9'] }, v: 2 });
    await until('the change', () => views.length === 2);
    assert.deepEqual(views[1]!.nodeAddrs, ['10.0.0.1', '10.0.0.2', '10.0.0.10'], 'applied, in address order');
    send({ t: 'network', view: view(), addrs: { base: 5, gen: 5, add: [], remove: [] }, v: 3 });
    await until('an empty change', () => views.length === 3);
    assert.deepEqual(views[2]!.nodeAddrs, views[1]!.nodeAddrs);

    // Against a generation it does not have: no view reaches onNetwork, and the session ends.
    const first = session();
    send({ t: 'network', view: view(), addrs: { base: 3, gen: 6, add: ['10.0.0.3'], remove: [] }, v: 4 });
    await until('a new session', () => hellos.length === 2 && agent.state === 'ready' && session() !== first);
    assert.equal(views.length, 3);
    assert.ok(
      logs.some((l) => /generation 3, but this session has generation 5/.test(l)),
      logs.join('\n'),
    );
    // The new session has no list yet: a change before its whole view ends it too.
    send({ t: 'network', view: view(), addrs: { base: 5, gen: 6, add: [], remove: [] }, v: 5 });
    await until('another session', () => hellos.length === 3 && agent.state === 'ready');
    assert.ok(
      logs.some((l) => /this session has no list yet/.test(l)),
      logs.join('\n'),
    );
    // A malformed change is refused the same way, never thrown.
    send({ t: 'network', view: view(['10.0.0.1']), addrsGen: 1, v: 6 });
    await until('a whole view again', () => views.length === 4);
    send({ t: 'network', view: view(), addrs: { base: 1, gen: 2, add: 'nope' }, v: 7 });
    await until('one more session', () => hellos.length === 4 && agent.state === 'ready');
    assert.ok(
      logs.some((l) => /malformed node address change/.test(l)),
      logs.join('\n'),
    );
    assert.equal(views.length, 4);
  } finally {
    await agent.stop();
  }
});
