// The networks control API (manager/api/networks.ts) against an in-memory Store, and the CLI's flag
// parsing (cli/network.ts): validation errors name the field and change nothing; names are unique;
// subnets may not overlap; networks in use cannot be removed, and the error says by whom.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError, Router } from '../../manager/api/http.ts';
import { registerNetworkRoutes, validateNetworkSpec } from '../../manager/api/networks.ts';
import { Store } from '../../manager/store/store.ts';
import { CLUSTER_ID, defaultClusterSpec } from '../../api/objects.ts';
import type { Cluster, Draft, Network, Service, Task } from '../../api/objects.ts';
import { networkRows, parseNetworkCreateArgs } from '../../cli/network.ts';

function api(store = new Store({})) {
  const r = new Router<object>();
  let n = 0;
  registerNetworkRoutes(r, {
    store,
    newId: () => `net${String(++n).padStart(22, '0')}`,
    requireLeader: () => {},
    linearizable: async () => {},
    write: async (fn) => void (await store.update(fn)),
  });
  const call = async (method: string, url: string, body?: unknown): Promise<any> => {
    const m = r.match(method, url);
    if (m === null) throw new Error(`no route for ${method} ${url}`);
    const req = Readable.from(body === undefined ? [] : [Buffer.from(JSON.stringify(body))]) as unknown as IncomingMessage;
    return m.handler({}, m.params, req, {} as ServerResponse);
  };
  return { store, call };
}

async function rejects(p: Promise<unknown>, status: number, message: RegExp, field?: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ApiError, `expected an ApiError, got ${String(e)}`);
    assert.equal(e.status, status, e.message);
    assert.match(e.message, message);
    if (field !== undefined) assert.equal(e.details?.field, field, e.message);
    return true;
  });
}

const create = (name: string, extra: Record<string, unknown> = {}) => ({ spec: { name, driver: 'overlay', ...extra } });

test('create: a valid spec is stored normalised; ls and inspect by name, id and id prefix', async () => {
  const a = api();
  const r = await a.call(
    'POST',
    '/v1/networks',
    create('front', { labels: { team: 'web' }, attachable: true, ipam: { configs: [{ subnet: '10.20.0.0/16', gateway: '10.20.0.254' }] } }),
  );
  assert.deepEqual(r, { id: 'net0000000000000000000001', name: 'front' });
  const n = a.store.view((tx) => tx.get('network', r.id))!;
  assert.deepEqual(n.spec, {
    name: 'front',
    driver: 'overlay',
    labels: { team: 'web' },
    ipam: { configs: [{ subnet: '10.20.0.0/16', gateway: '10.20.0.254' }] },
    attachable: true,
    internal: false,
  });
  await a.call('POST', '/v1/networks', { spec: { name: 'back' } }); // driver defaults to overlay
  assert.deepEqual(
    (await a.call('GET', '/v1/networks')).map((x: Network) => x.spec.name),
    ['front', 'back'],
  );
  assert.equal((await a.call('GET', '/v1/networks/front')).id, r.id);
  assert.equal((await a.call('GET', '/v1/networks/FRONT')).id, r.id, 'names are case-insensitive');
  assert.equal((await a.call('GET', `/v1/networks/${r.id}`)).spec.name, 'front');
  assert.equal((await a.call('GET', '/v1/networks/net0000000000000000000002')).spec.name, 'back');
  await rejects(a.call('GET', '/v1/networks/net000'), 400, /ambiguous \(2 networks match\)/);
  await rejects(a.call('GET', '/v1/networks/nope'), 404, /^network nope not found$/);
});

test('create: validation errors name the field and change nothing', async () => {
  const a = api();
  await a.call('POST', '/v1/networks', create('front', { ipam: { configs: [{ subnet: '10.20.0.0/16' }] } }));
  const before = a.store.index;
  const cases: [unknown, number, RegExp, string?][] = [
    [{ spec: {} }, 400, /^name is required$/, 'name'],
    [create('-bad'), 400, /name "-bad" is invalid/, 'name'],
    [create('a b'), 400, /is invalid/, 'name'],
    [create('x'.repeat(65)), 400, /at most 64/, 'name'],
    [create('host'), 400, /name host is reserved/, 'name'],
    [create('None'), 400, /reserved/, 'name'],
    [create('n', { driver: 'bridge' }), 400, /^driver bridge is not supported: Shoal networks are cluster-wide overlays/, 'driver'],
    [create('n', { colour: 'red' }), 400, /^colour: unknown field/, 'colour'],
    [create('n', { labels: { a: 1 } }), 400, /labels\.a must be a string/, 'labels.a'],
    [create('n', { internal: 'yes' }), 400, /internal must be true or false/, 'internal'],
    [
      create('n', { ipam: { configs: [{ subnet: '10.30.0.1/24' }] } }),
      400,
      /^subnet 10\.30\.0\.1\/24 has host bits set \(did you mean 10\.30\.0\.0\/24\?\)$/,
      'ipam.configs[0].subnet',
    ],
    [create('n', { ipam: { configs: [{ subnet: '10.30.0.0/31' }] } }), 400, /too small/, 'ipam.configs[0].subnet'],
    [create('n', { ipam: { configs: [{ subnet: 'banana' }] } }), 400, /is not a CIDR/, 'ipam.configs[0].subnet'],
    [
      create('n', { ipam: { configs: [{ subnet: '10.30.0.0/24', gateway: '10.31.0.1' }] } }),
      400,
      /^gateway 10\.31\.0\.1 is not inside subnet 10\.30\.0\.0\/24$/,
      'ipam.configs[0].gateway',
    ],
    [create('n', { ipam: { configs: [{ subnet: '10.30.0.0/24', gateway: '10.30.0.255' }] } }), 400, /broadcast/, 'ipam.configs[0].gateway'],
    [create('n', { ipam: { configs: [{ gateway: '10.30.0.1' }] } }), 400, /a gateway needs a subnet/, 'ipam.configs[0].gateway'],
    [create('n', { ipam: { configs: [{ subnet: '10.30.0.0/24', range: '10.30.0.0/25' }] } }), 400, /ranges are not supported/, 'ipam.configs[0].range'],
    [create('n', { ipam: { configs: [{ subnet: '10.30.0.0/24' }, { subnet: '10.31.0.0/24' }] } }), 400, /one subnet/, 'ipam.configs'],
    [create('n', { ipam: { driver: 'dhcp' } }), 400, /not supported/, 'ipam.driver'],
    [
      create('n', { ipam: { configs: [{ subnet: '10.20.5.0/24' }] } }),
      400,
      /^subnet 10\.20\.5\.0\/24 overlaps network front \(10\.20\.0\.0\/16\)$/,
      'ipam.configs[0].subnet',
    ],
    [create('FRONT'), 409, /^network name FRONT is already in use/],
  ];
  for (const [body, status, message, field] of cases) await rejects(a.call('POST', '/v1/networks', body), status, message, field);
  assert.equal(a.store.index, before, 'nothing was written');
  assert.equal(a.store.view((tx) => tx.list('network')).length, 1);
});

test('create: overlap with an allocated subnet (ingress) and an exhausted pool are refused', async () => {
  const a = api();
  await a.store.update((tx) => {
    tx.create({
      id: 'ing',
      kind: 'network',
      spec: { name: 'ingress', driver: 'overlay', labels: {}, ipam: { configs: [] }, attachable: false, internal: false, ingress: true },
      allocation: { vni: 4096, subnets: [{ subnet: '10.255.0.0/16', gateway: '10.255.0.1' }] },
      status: {},
    } as Draft<Network>);
    const c: Draft<Cluster> = {
      id: CLUSTER_ID,
      kind: 'cluster',
      spec: { ...defaultClusterSpec('t'), defaultAddressPool: { cidr: '10.40.0.0/24', size: 24 } },
      status: {},
      rootCa: { caCertPem: '', caKeyPem: '' },
      joinTokens: { worker: '', manager: '' },
      denyList: { removedNodes: [], revokedSerials: [] },
    };
    tx.create(c);
  });
  await rejects(
    a.call('POST', '/v1/networks', create('n', { ipam: { configs: [{ subnet: '10.255.9.0/24' }] } })),
    400,
    /overlaps network ingress \(10\.255\.0\.0\/16\)/,
    'ipam.configs[0].subnet',
  );
  await rejects(a.call('POST', '/v1/networks', create('second', { ingress: true })), 400, /already an ingress network \(ingress\)/, 'ingress');
  await a.call('POST', '/v1/networks', create('one'));
  await rejects(
    a.call('POST', '/v1/networks', create('two')),
    400,
    /^the default address pool 10\.40\.0\.0\/24 has no free \/24 subnet left: give the network a subnet \(--subnet\)$/,
    'ipam.configs[0].subnet',
  );
  await a.call('POST', '/v1/networks', create('two', { ipam: { configs: [{ subnet: '192.168.1.0/24' }] } }));
});

function service(id: string, networks: string[], ports: number[] = []): Draft<Service> {
  return {
    id,
    kind: 'service',
    spec: {
      name: id,
      labels: {},
      mode: { replicated: { replicas: 1 } },
      task: { image: 'x' },
      networks: networks.map((target) => ({ target })),
      endpoint: { ports: ports.map((p) => ({ protocol: 'tcp', targetPort: p, publishMode: 'ingress' })) },
    },
    specVersion: 1,
    status: {},
  };
}

test('rm: refused while services or tasks use the network (naming them); ingress while ports are published', async () => {
  const a = api();
  const { id } = await a.call('POST', '/v1/networks', create('front'));
  await a.store.update((tx) => {
    tx.create(service('web', ['front']));
    tx.create(service('api', [id]));
    tx.create(service('pub', [], [80]));
  });
  const before = a.store.index;
  await rejects(a.call('DELETE', '/v1/networks/front'), 409, /^network front is in use by services api, web: remove them or detach them first$/);
  await a.store.update((tx) => {
    tx.delete('service', 'web');
    tx.delete('service', 'api');
    const t: Draft<Task> = {
      id: 'task000000000001',
      kind: 'task',
      serviceId: 'web',
      spec: { image: 'x' },
      desiredState: 'remove',
      status: { state: 'running', timestamp: new Date(0).toISOString(), message: '' },
      serviceAnnotations: { name: 'web', labels: {} },
      networks: [{ networkId: id, addresses: ['10.10.0.3/24'] }],
    };
    tx.create(t);
  });
  await rejects(a.call('DELETE', '/v1/networks/front'), 409, /^network front is in use by 1 task that has not stopped yet \(task00000000\)$/);
  await a.store.update((tx) => tx.modify('task', 'task000000000001', (d) => void (d.status.state = 'shutdown')));
  assert.ok(a.store.index > before);
  assert.deepEqual(await a.call('DELETE', '/v1/networks/front'), { removed: id, name: 'front' });
  await rejects(a.call('DELETE', '/v1/networks/front'), 404, /not found/);
  // The ingress network: only once no service publishes ports.
  await a.call('POST', '/v1/networks', create('mesh', { ingress: true }));
  await rejects(
    a.call('DELETE', '/v1/networks/mesh'),
    409,
    /^network mesh is the routing mesh and service pub publishes ports through it: remove the published ports first$/,
  );
  await a.store.update((tx) => tx.modify('service', 'pub', (d) => void (d.spec.endpoint.ports = [])));
  await a.call('DELETE', '/v1/networks/mesh');
});

test('validateNetworkSpec: the normalised form', () => {
  assert.deepEqual(validateNetworkSpec({ name: 'n', ipam: { configs: [{ subnet: '10.1.0.0/16', gateway: '' }] } }), {
    name: 'n',
    driver: 'overlay',
    labels: {},
    ipam: { configs: [{ subnet: '10.1.0.0/16' }] },
    attachable: false,
    internal: false,
  });
});

test('CLI: network create flags become a spec; ls rows', () => {
  assert.deepEqual(
    parseNetworkCreateArgs([
      '--driver',
      'overlay',
      '--subnet',
      '10.5.0.0/24',
      '--gateway',
      '10.5.0.254',
      '--attachable',
      '--internal',
      '--label',
      'a=b',
      '--label',
      'c',
      'front',
    ]),
    {
      spec: {
        name: 'front',
        driver: 'overlay',
        labels: { a: 'b', c: '' },
        ipam: { configs: [{ subnet: '10.5.0.0/24', gateway: '10.5.0.254' }] },
        attachable: true,
        internal: true,
      },
    },
  );
  assert.deepEqual(parseNetworkCreateArgs(['-d', 'overlay', 'back']).spec.ipam, { configs: [] });
  assert.throws(() => parseNetworkCreateArgs(['--gateway', '10.0.0.1', 'x']), /--gateway needs --subnet/);
  assert.throws(() => parseNetworkCreateArgs(['a', 'b']), /exactly one network name/);
  assert.throws(() => parseNetworkCreateArgs(['--ip-range', 'x', 'a']), /Unknown option '--ip-range'/);
  const rows = networkRows([
    {
      id: 'zzzzzzzzzzzzzzzz',
      spec: { name: 'web', driver: 'overlay' },
      allocation: { vni: 4097, subnets: [{ subnet: '10.10.0.0/24', gateway: '10.10.0.1' }] },
    },
    { id: 'aaaaaaaaaaaaaaaa', spec: { name: 'ingress', driver: 'overlay', ipam: { configs: [{ subnet: '10.255.0.0/16' }] } } },
  ]);
  assert.deepEqual(rows, [
    ['ID', 'NAME', 'DRIVER', 'SCOPE', 'SUBNET', 'VNI'],
    ['aaaaaaaaaaaa', 'ingress', 'overlay', 'swarm', '10.255.0.0/16', 'pending'],
    ['zzzzzzzzzzzz', 'web', 'overlay', 'swarm', '10.10.0.0/24', '4097'],
  ]);
});
