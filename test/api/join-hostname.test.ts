// Join refuses a hostname another node has (security review, finding 8): the lookup the join makes, by the
// store's name index, finds a node whatever the case, and only the node that has it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeWithHostname } from '../../manager/api/join.ts';
import { Store } from '../../manager/store/store.ts';

test('a hostname is found whatever its case, renamed nodes under their new name only', async () => {
  const store = new Store();
  const node = (id: string, hostname: string) =>
    ({
      id,
      kind: 'node',
      spec: { labels: {}, availability: 'active', role: 'worker' },
      description: { hostname, platform: { os: 'linux', arch: 'x64' }, resources: { nanoCpus: 0, memoryBytes: 0 }, engineVersion: '', addr: '10.0.0.1' },
      status: { state: 'ready', message: '', addr: '10.0.0.1' },
    }) as never;
  await store.update((tx) => {
    tx.create(node('n1', 'Worker-1'));
    tx.create(node('n2', 'worker-2'));
  });
  store.view((tx) => {
    assert.equal(nodeWithHostname(tx, 'worker-1')?.id, 'n1');
    assert.equal(nodeWithHostname(tx, 'WORKER-2')?.id, 'n2');
    assert.equal(nodeWithHostname(tx, 'worker-3'), undefined);
    assert.equal(nodeWithHostname(tx, 'worker'), undefined, 'no prefix match');
  });
  await store.update((tx) => void tx.modify('node', 'n1', (d) => void (d.description.hostname = 'renamed')));
  store.view((tx) => {
    assert.equal(nodeWithHostname(tx, 'worker-1'), undefined);
    assert.equal(nodeWithHostname(tx, 'Renamed')?.id, 'n1');
  });
});
