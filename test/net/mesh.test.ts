// Published ports (overlay-net/mesh.ts): golden renderings, then the routing mesh and host mode with real
// traffic in a hand-built lab:
//
//   client (10.77.0.2) ── node (10.77.0.1; gwbr 172.31.0.1/16; ing0 169.254.230.1) ── ingress (veth0
//   169.254.230.2; br0 10.255.0.2 = ingressAddr) ── br0 ── t1, t2, t3 (10.255.0.11-13, servers on :80)
//   t1 also has gw0 172.31.0.11 on the node's gateway bridge (default route via 172.31.0.1).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  HostPortProgrammer,
  hostPortTable,
  MeshProgrammer,
  meshIngressTable,
  planMeshChanges,
  renderHostPortRuleset,
  renderMeshRuleset,
} from '../../overlay-net/mesh.ts';
import { NftApplier, planTableChanges } from '../../overlay-net/nft.ts';
import type { NetView } from '../../api/netview.ts';
import { endpoint, kernelSkip, Lab, net, service, tally, view } from './netlab.ts';

const ING = net('ing', '10.255.0.0/24', { ingress: true, attachable: false });
const APP = net('app', '10.1.0.0/24');

function meshView(running: Record<string, boolean> = {}): NetView {
  const r = (t: string) => running[t] ?? true;
  return view(
    [ING, APP],
    [
      service('web', { ing: '10.255.0.3' }, [
        { protocol: 'tcp', targetPort: 80, publishedPort: 8080, publishMode: 'ingress' },
        { protocol: 'udp', targetPort: 80, publishedPort: 8053, publishMode: 'ingress' },
      ]),
      service('hosted', {}, [{ protocol: 'tcp', targetPort: 80, publishedPort: 9090, publishMode: 'host' }]),
      service('internal', { app: '10.1.0.2' }),
    ],
    [
      endpoint('web', 'ing', 't1', '10.255.0.11', r('t1')),
      endpoint('web', 'ing', 't2', '10.255.0.12', r('t2')),
      endpoint('web', 'ing', 't3', '10.255.0.13', r('t3')),
      endpoint('internal', 'app', 'i1', '10.1.0.5'),
    ],
    '10.255.0.2',
  );
}

describe('mesh renderers', () => {
  test('golden rulesets for a small view', () => {
    const v = meshView({ t3: false });
    const { node, ingress } = renderMeshRuleset(v);
    assert.equal(
      node,
      `table ip shoal-mesh
delete table ip shoal-mesh
table ip shoal-mesh {
	set tcp_ports {
		type inet_service
		elements = { 8080 }
	}

	set udp_ports {
		type inet_service
		elements = { 8053 }
	}

	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local tcp dport @tcp_ports dnat to 169.254.230.2
		fib daddr type local udp dport @udp_ports dnat to 169.254.230.2
	}

	chain output {
		type nat hook output priority -100; policy accept;
		ip daddr != 127.0.0.0/8 fib daddr type local tcp dport @tcp_ports dnat to 169.254.230.2
		ip daddr != 127.0.0.0/8 fib daddr type local udp dport @udp_ports dnat to 169.254.230.2
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
		ip daddr 169.254.230.2 ct status dnat accept
		ip saddr 169.254.230.2 ct state established,related accept
	}
}
`,
    );
    assert.equal(
      ingress,
      `table ip shoal-ingress
delete table ip shoal-ingress
table ip shoal-ingress {
	map tcp_ports {
		type inet_service : verdict
		elements = { 8080 : goto pub_tcp_8080 }
	}

	map udp_ports {
		type inet_service : verdict
		elements = { 8053 : goto pub_udp_8053 }
	}

	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr 169.254.230.2 tcp dport vmap @tcp_ports
		ip daddr 169.254.230.2 udp dport vmap @udp_ports
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "br0" ct status dnat snat to 10.255.0.2
	}

	chain pub_tcp_8080 {
		meta l4proto tcp numgen random mod 2 0 dnat to 10.255.0.11:80
		meta l4proto tcp dnat to 10.255.0.12:80
	}

	chain pub_udp_8053 {
		meta l4proto udp numgen random mod 2 0 dnat to 10.255.0.11:80
		meta l4proto udp dnat to 10.255.0.12:80
	}
}
`,
    );
  });

  test('host mode: only ports of services with a local task, to the gw0 address', () => {
    const v = meshView();
    assert.equal(hostPortTable(v, new Map()).sets.get('tcp_ports')!.elements.size, 0);
    v.endpoints.push(endpoint('hosted', 'app', 'h1', '10.1.0.9'));
    const script = renderHostPortRuleset(v, new Map([['h1', '172.31.0.9']]));
    assert.match(script, /elements = \{ 9090 : goto host_tcp_9090 \}/);
    assert.match(script, /chain host_tcp_9090 \{\n\t\tmeta l4proto tcp dnat to 172\.31\.0\.9:80\n\t\}/);
    assert.doesNotMatch(script, /8080/); // ingress-mode ports are the mesh's
    assert.doesNotMatch(script, /snat|masquerade/); // the client's address is kept
    // A task without any network attachment: its service comes from taskServices.
    const t = hostPortTable(meshView(), new Map([['h2', '172.31.0.10']]), new Map([['h2', 'hosted']]));
    assert.deepEqual(t.chains.get('host_tcp_9090')!.rules, ['meta l4proto tcp dnat to 172.31.0.10:80']);
  });

  test('no ingress network or no ingressAddr', () => {
    const v = meshView();
    v.networks = [APP];
    assert.equal(renderMeshRuleset(v).node.includes('elements'), false);
    const w = meshView();
    delete w.ingressAddr;
    assert.deepEqual(meshIngressTable(w).chains.get('postrouting')!.rules, ['oifname "br0" ct status dnat masquerade']);
  });

  test('planMeshChanges: a backend stops → only its port chain in the ingress table; a new port → one set element', () => {
    assert.deepEqual(planMeshChanges(meshView(), meshView()), { node: '', ingress: '' });
    const p = planMeshChanges(meshView(), meshView({ t2: false }));
    assert.equal(p.node, '');
    assert.equal(
      p.ingress,
      [
        'insert rule ip shoal-ingress pub_tcp_8080 meta l4proto tcp dnat to 10.255.0.13:80',
        'insert rule ip shoal-ingress pub_tcp_8080 meta l4proto tcp numgen random mod 2 0 dnat to 10.255.0.11:80',
        'insert rule ip shoal-ingress pub_udp_8053 meta l4proto udp dnat to 10.255.0.13:80',
        'insert rule ip shoal-ingress pub_udp_8053 meta l4proto udp numgen random mod 2 0 dnat to 10.255.0.11:80',
        '',
      ].join('\n'),
    );
    const next = meshView();
    next.services[0]!.ports.push({ protocol: 'tcp', targetPort: 443, publishedPort: 8443, publishMode: 'ingress' });
    const q = planMeshChanges(meshView(), next);
    assert.equal(q.node, 'add element ip shoal-mesh tcp_ports { 8443 }\n');
    assert.match(q.ingress, /^add chain ip shoal-ingress pub_tcp_8443\n/);
    assert.match(q.ingress, /add element ip shoal-ingress tcp_ports \{ 8443 : goto pub_tcp_8443 \}\n$/);
    // ingressAddr changes: the postrouting base chain is rewritten (flush + add).
    const r = meshView();
    r.ingressAddr = '10.255.0.9';
    assert.equal(
      planMeshChanges(meshView(), r).ingress,
      'flush chain ip shoal-ingress postrouting\nadd rule ip shoal-ingress postrouting oifname "br0" ct status dnat snat to 10.255.0.9\n',
    );
    // A set declaration never changes: plans never need a full reload.
    assert.ok(planTableChanges(meshIngressTable(meshView()), meshIngressTable(next)));
  });
});

const skip = kernelSkip();

describe('mesh in the kernel', { skip }, () => {
  const lab = new Lab();
  const applier = new NftApplier();
  const NODE = '10.77.0.1';
  let mesh: MeshProgrammer;
  /** Connections the mesh's sweeps deleted so far (stale-flows.ts). */
  let swept = 0;
  let hostp: HostPortProgrammer;
  const hostTasks = new Map([['t1', '172.31.0.11']]);
  const hostView = () => {
    const v = meshView();
    v.endpoints.push(endpoint('hosted', 'app', 't1', '10.1.0.11'));
    return v;
  };

  before(async () => {
    lab.addNs('node');
    lab.addNs('ing');
    lab.addNs('cl');
    lab.veth({ ns: 'cl', dev: 'eth0', addr: '10.77.0.2/24' }, { ns: 'node', dev: 'cl0', addr: `${NODE}/24` });
    lab.veth({ ns: 'node', dev: 'ing0', addr: '169.254.230.1/30' }, { ns: 'ing', dev: 'veth0', addr: '169.254.230.2/30' });
    lab.ip('ing', 'route', 'add', 'default', 'via', '169.254.230.1');
    lab.bridge('ing', 'br0', '10.255.0.2/24');
    lab.bridge('node', 'gwbr', '172.31.0.1/16');
    for (const [i, t] of ['t1', 't2', 't3'].entries()) {
      lab.addNs(t);
      lab.veth({ ns: 'ing', dev: `v${t}`, master: 'br0' }, { ns: t, dev: 'eth0', addr: `10.255.0.${11 + i}/24` });
    }
    lab.veth({ ns: 'node', dev: 'vt1', master: 'gwbr' }, { ns: 't1', dev: 'gw0', addr: '172.31.0.11/16' });
    lab.ip('t1', 'route', 'add', 'default', 'via', '172.31.0.1');
    await Promise.all(['t1', 't2', 't3'].map((t) => lab.server(t, t, 80)));
    mesh = new MeshProgrammer({
      nodeNetns: lab.path('node'),
      ingressNetns: lab.path('ing'),
      applier,
      compactAfterMs: 0,
      staleFlows: { onSwept: (_gone, n) => (swept += n) },
    });
    hostp = new HostPortProgrammer({ netns: lab.path('node'), applier, compactAfterMs: 0 });
  });
  after(async () => {
    mesh?.dispose();
    hostp?.dispose();
    applier.close();
    await lab.close();
  });

  test('ip_forward is turned on in the node and ingress namespaces (and only there)', async () => {
    assert.equal(lab.exec('node', 'cat', '/proc/sys/net/ipv4/ip_forward').trim(), '0');
    assert.deepEqual(await mesh.update(meshView()), { node: 'full', ingress: 'full' });
    assert.equal(lab.exec('node', 'cat', '/proc/sys/net/ipv4/ip_forward').trim(), '1');
    assert.equal(lab.exec('ing', 'cat', '/proc/sys/net/ipv4/ip_forward').trim(), '1');
    assert.equal(lab.exec('cl', 'cat', '/proc/sys/net/ipv4/ip_forward').trim(), '0');
  });

  test('routing mesh, TCP: a client reaches the published port, all backends answer, they see ingressAddr', async () => {
    await mesh.update(meshView());
    const rs = await lab.probe('cl', 'tcp', NODE, 8080, 60);
    const t = tally(rs);
    assert.deepEqual([...t.keys()].sort(), ['t1', 't2', 't3'], JSON.stringify([...t]));
    for (const r of rs) assert.equal(r.line!.split(' ')[1], '10.255.0.2');
    // From the node itself, to its own address (the output hook).
    assert.deepEqual([...tally(await lab.probe('node', 'tcp', NODE, 8080, 40)).keys()].sort(), ['t1', 't2', 't3']);
    // Ports that are not published are not touched.
    const other = await lab.probe('cl', 'tcp', NODE, 8081, 1);
    assert.equal(other[0]!.err, 'ECONNREFUSED');
  });

  test('routing mesh, UDP', async () => {
    await mesh.update(meshView());
    const rs = await lab.probe('cl', 'udp', NODE, 8053, 30);
    const t = tally(rs);
    assert.deepEqual([...t.keys()].sort(), ['t1', 't2', 't3'], JSON.stringify([...t]));
    for (const r of rs) assert.equal(r.line!.split(' ')[1], '10.255.0.2');
  });

  test('routing mesh: a backend stops → it gets no new connection; none running → refused at once', async () => {
    await mesh.update(meshView());
    assert.deepEqual(await mesh.update(meshView({ t2: false })), { node: 'unchanged', ingress: 'incremental' });
    const t = tally(await lab.probe('cl', 'tcp', NODE, 8080, 30));
    assert.deepEqual([...t.keys()].sort(), ['t1', 't3'], JSON.stringify([...t]));
    await mesh.update(meshView({ t1: false, t2: false, t3: false }));
    for (const r of await lab.probe('cl', 'tcp', NODE, 8080, 3, 3000)) {
      assert.equal(r.err, 'ECONNREFUSED', JSON.stringify(r));
      assert.ok(r.ms < 500, `refused after ${r.ms} ms`);
    }
    await mesh.update(meshView());
    assert.equal(await mesh.compact(), 2);
    assert.equal(tally(await lab.probe('cl', 'tcp', NODE, 8080, 40)).size, 3);
  });

  test('a backend that died unanswered: the same source port reaches a live one once the mesh drops it', async () => {
    // t3 is the only backend, and its link is down: frames to it leave the ingress namespace (so conntrack
    // keeps the entries, SYN_SENT and UDP [UNREPLIED]) and go nowhere, as to a task killed on another node.
    await mesh.update(meshView({ t1: false, t2: false }));
    lab.ip('t3', 'link', 'set', 'eth0', 'down');
    try {
      const entries = (port: number) =>
        lab
          .exec('ing', 'cat', '/proc/net/nf_conntrack')
          .split('\n')
          .filter((l) => l.includes(`sport=${port} `))
          .join(' | ');
      assert.equal((await lab.probe('cl', 'tcp', NODE, 8080, 1, 700, 41_001))[0]!.err, 'TIMEOUT');
      assert.equal((await lab.probe('cl', 'udp', NODE, 8053, 1, 700, 41_002))[0]!.err, 'TIMEOUT');
      assert.match(entries(41_001), /SYN_SENT .*\[UNREPLIED\] src=10\.255\.0\.13 /);
      assert.match(entries(41_002), /\[UNREPLIED\] src=10\.255\.0\.13 /);
      const before = swept;
      // t3 leaves the view, t1 and t2 are back: the same source ports must reach them now, not follow the
      // stale entries to t3 (a SYN retransmission or a reused port would, for 120 s).
      await mesh.update(meshView({ t3: false }));
      await mesh.settled(); // the sweep runs in the background (the apply does not wait for it)
      assert.equal(swept - before, 2, `the two unreplied entries to t3 were deleted (${entries(41_001)} ${entries(41_002)})`);
      const tcp = (await lab.probe('cl', 'tcp', NODE, 8080, 1, 2000, 41_001))[0]!;
      assert.match(tcp.line ?? '', /^t[12] /, JSON.stringify(tcp));
      const udp = (await lab.probe('cl', 'udp', NODE, 8053, 1, 2000, 41_002))[0]!;
      assert.match(udp.line ?? '', /^t[12] /, JSON.stringify(udp));
    } finally {
      lab.ip('t3', 'link', 'set', 'eth0', 'up');
      await mesh.update(meshView());
    }
    assert.equal(tally(await lab.probe('cl', 'tcp', NODE, 8080, 40)).size, 3);
  });

  test('a backend that died mid-connection: once its address leaves the view, its client gets a reset', async () => {
    await mesh.update(meshView({ t1: false, t2: false }));
    const h = lab.hold('cl', NODE, 8080);
    assert.match(await h.next(), /^t3 /);
    lab.ip('t3', 'link', 'set', 'eth0', 'down'); // t3 dies: its frames go nowhere, nothing resets the client
    try {
      // Withdrawn first (still in the view): the established connection is kept, as for a drained stop.
      await mesh.update(meshView({ t3: false }));
      await mesh.settled();
      // Then the task ends and its address is released: it leaves the view, and its connections go.
      const gone = meshView();
      gone.endpoints = gone.endpoints.filter((e) => e.ip !== '10.255.0.13');
      await mesh.update(gone);
      await mesh.settled();
      // The client's next packet is balanced afresh to t1 or t2, which know no such connection: a reset,
      // at once (on the old code the packet follows the entry to t3 and the client waits for minutes).
      h.send('anyone there?');
      assert.match(await h.next(5000), /^ERROR (ECONNRESET|EPIPE)|^CLOSED/);
    } finally {
      lab.ip('t3', 'link', 'set', 'eth0', 'up');
      h.proc.kill('SIGKILL');
      await mesh.update(meshView());
    }
  });

  test('a withdrawn backend keeps the connections it accepted (a drained stop)', async () => {
    await mesh.update(meshView({ t1: false, t2: false }));
    const h = lab.hold('cl', NODE, 8080);
    assert.match(await h.next(), /^t3 /);
    const before = swept;
    await mesh.update(meshView({ t3: false }));
    await mesh.settled();
    assert.equal(swept, before, 'a replied connection is not swept');
    h.send('still there');
    assert.equal(await h.next(), 'still there');
    h.proc.stdin!.end();
    await mesh.update(meshView());
  });

  test('host mode: the local task answers and sees the client’s real address', async () => {
    assert.equal(await hostp.update(hostView(), hostTasks), 'full');
    const rs = await lab.probe('cl', 'tcp', NODE, 9090, 5);
    for (const r of rs) assert.equal(r.line, 't1 10.77.0.2', JSON.stringify(r));
    // From the node itself.
    assert.equal((await lab.probe('node', 'tcp', NODE, 9090, 1))[0]!.line, `t1 ${NODE}`);
    // The task goes away: the port is no longer published on this node.
    assert.equal(await hostp.update(hostView(), new Map()), 'incremental');
    assert.equal((await lab.probe('cl', 'tcp', NODE, 9090, 1))[0]!.err, 'ECONNREFUSED');
    await hostp.update(hostView(), hostTasks);
    assert.equal((await lab.probe('cl', 'tcp', NODE, 9090, 1))[0]!.line, 't1 10.77.0.2');
  });

  test('nft flush ruleset in the node namespace: verify() restores the mesh and the host ports', async () => {
    await mesh.update(meshView());
    await hostp.update(hostView(), hostTasks);
    assert.deepEqual(await mesh.verify(), { node: { ok: true }, ingress: { ok: true }, forwarding: true });
    lab.exec('node', 'nft', 'flush', 'ruleset');
    lab.exec('node', 'sh', '-c', 'echo 0 > /proc/sys/net/ipv4/ip_forward');
    assert.ok((await lab.probe('cl', 'tcp', NODE, 8080, 1, 500))[0]!.err);
    const v = await mesh.verify();
    assert.equal(v.node.ok, false);
    assert.equal(v.ingress.ok, true);
    assert.equal(v.forwarding, false);
    const h = await hostp.verify();
    assert.equal(h.ok, false);
    assert.equal(lab.exec('node', 'cat', '/proc/sys/net/ipv4/ip_forward').trim(), '1');
    assert.equal(tally(await lab.probe('cl', 'tcp', NODE, 8080, 40)).size, 3);
    assert.equal((await lab.probe('cl', 'tcp', NODE, 9090, 1))[0]!.line, 't1 10.77.0.2');
    assert.deepEqual(await mesh.verify(), { node: { ok: true }, ingress: { ok: true }, forwarding: true });
  });
});
