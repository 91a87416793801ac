// Network confinement (overlay-net/filter.ts): the renderers as pure functions, then the tables on a real
// kernel — two "hosts" (namespaces) on one switch, a DataPlane and a GuardProgrammer per host, tasks
// attached by the data plane, and probes run inside the task namespaces: the manager port and the node's
// other ports refused, DNS answered, VXLAN to another node never arriving, VXLAN from a non-node dropped,
// an internal-only task going nowhere even with a forged default route, and forged source addresses (gateway
// leg and overlay port) dropped. Every namespace carries the lab's prefix; after() removes them all.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { DataPlane } from '../../overlay-net/dataplane.ts';
import { clusterAddrs, gwBridgeGuardTable, GuardError, GuardProgrammer, netBridgeGuardTable, nodeGuardTable, GUARD_TABLE } from '../../overlay-net/filter.ts';
import { diffTable, parseNftListing, renderTable } from '../../overlay-net/nft.ts';
import { macForIp, type Endpoint, type NetInfo, type NetView } from '../../api/netview.ts';
import { kernelSkip, Lab } from './netlab.ts';

const NODE = { gwBridge: 'x-gwbr', ingressLink: 'x-ing', nodeAddrs: ['10.0.0.2', '10.0.0.1'] };

describe('guard renderers (pure)', () => {
  it('node table: DNS only from the gateway bridge, no manager/VXLAN port of any node, sealed tasks, VTEPs', () => {
    const t = nodeGuardTable(NODE, [
      { port: 'sg00000001', ip: '172.31.0.2', sealed: false },
      { port: 'sg00000002', ip: '172.31.0.3', sealed: true },
    ]);
    assert.equal(t.family, 'ip');
    assert.equal(t.name, GUARD_TABLE);
    assert.deepEqual([...t.sets.get('nodes')!.elements.keys()], ['10.0.0.2', '10.0.0.1']);
    assert.deepEqual([...t.sets.get('sealed')!.elements.keys()], ['172.31.0.3']);
    const input = t.chains.get('input')!.rules;
    assert.equal(input[0], 'iifname "x-gwbr" ip daddr 172.31.0.1 meta l4proto { tcp, udp } th dport 53 accept');
    assert.ok(input.indexOf('iifname "x-gwbr" reject with tcp reset') > input.indexOf('iifname "x-gwbr" ct state established,related accept'));
    assert.ok(input.includes('udp dport 4789 ip saddr != @nodes drop'));
    assert.ok(input.includes('iifname "x-ing" drop'));
    const fwd = t.chains.get('forward')!.rules;
    assert.ok(fwd.includes('iifname "x-gwbr" ip daddr @nodes tcp dport 2377 reject with tcp reset'));
    assert.ok(fwd.includes('iifname "x-gwbr" ip daddr @nodes udp dport 4789 drop'));
    assert.ok(fwd.indexOf('iifname "x-gwbr" ip saddr @sealed drop') < fwd.indexOf('iifname "x-gwbr" oifname "x-ing" ct status dnat accept'));
    // Only drops and rejects end a packet here: the chains never accept what another table refuses.
    assert.equal(t.chains.get('input')!.hook, 'type filter hook input priority filter; policy accept;');
    assert.equal(t.chains.get('forward')!.hook, 'type filter hook forward priority filter; policy accept;');
  });

  it('anti-spoofing tables: a leg sends only with its own address (and MAC on overlays)', () => {
    const g = gwBridgeGuardTable([{ port: 'sg00000001', ip: '172.31.0.2', sealed: false }]);
    assert.equal(g.family, 'bridge');
    assert.deepEqual([...g.sets.get('legs')!.elements.keys()], ['"sg00000001" . 172.31.0.2']);
    assert.deepEqual(g.chains.get('prerouting')!.rules, ['iifname . ip saddr @legs accept', 'iifname . arp saddr ip @legs accept', 'iifname @ports drop']);
    const n = netBridgeGuardTable([{ port: 'sv00000001', mac: '02:42:0a:00:00:05', ip: '10.0.0.5' }]);
    assert.deepEqual([...n.sets.get('legs')!.elements.keys()], ['"sv00000001" . 02:42:0a:00:00:05 . 10.0.0.5']);
    assert.deepEqual(n.chains.get('prerouting')!.rules.at(-1), 'drop');
    assert.equal(n.chains.get('prerouting')!.rules[0], 'iifname "vxlan0" accept');
  });

  it('refuses bad input with a GuardError naming it', () => {
    assert.throws(
      () => nodeGuardTable({ ...NODE, nodeAddrs: ['10.0.0.300'] }, []),
      (e: unknown) => e instanceof GuardError && /node address/.test(e.message),
    );
    assert.throws(() => nodeGuardTable({ ...NODE, gwBridge: 'a"; flush ruleset' }, []), GuardError);
    assert.throws(() => gwBridgeGuardTable([{ port: 'x', ip: 'nope', sealed: false }]), /gateway leg x/);
    assert.throws(() => netBridgeGuardTable([{ port: 'x', mac: 'zz', ip: '10.0.0.1' }]), /invalid MAC/);
  });

  it('cluster addresses: the view list, every VTEP and the own one, unique and sorted', () => {
    const ep = { vtep: '10.0.0.9' } as Endpoint;
    const v: NetView = { nodeId: 'n', vtep: '10.0.0.1', networks: [], endpoints: [ep, ep], services: [], nodeAddrs: ['10.0.0.3', 'bogus'] };
    assert.deepEqual(clusterAddrs(v), ['10.0.0.1', '10.0.0.3', '10.0.0.9']);
  });

  it('renders a table that parses back to itself (so verify() sees no difference)', () => {
    const t = nodeGuardTable(NODE, [{ port: 'sg00000001', ip: '172.31.0.2', sealed: true }]);
    const body = renderTable(t).split('\n').slice(2).join('\n');
    assert.equal(diffTable(parseNftListing(body), t), null);
  });
});

const skip = kernelSkip();

describe('confinement on a real kernel', { skip, timeout: 180_000 }, () => {
  const lab = new Lab();
  const netA: NetInfo = {
    id: 'fa11aaaanetA',
    name: 'front',
    vni: 4201,
    subnet: '10.253.1.0/24',
    gateway: '10.253.1.1',
    internal: false,
    attachable: false,
    ingress: false,
  };
  const netI: NetInfo = {
    id: 'fa11iiiinetI',
    name: 'private',
    vni: 4202,
    subnet: '10.253.2.0/24',
    gateway: '10.253.2.1',
    internal: true,
    attachable: false,
    ingress: false,
  };
  const hosts: { name: string; vtep: string; dp: DataPlane; guard: GuardProgrammer; prefix: string }[] = [];
  const place: { task: string; net: NetInfo; ip: string; host: number }[] = [
    { task: 'taskA1xxxxxxxxxxxx', net: netA, ip: '10.253.1.11', host: 0 },
    { task: 'taskA2xxxxxxxxxxxx', net: netA, ip: '10.253.1.12', host: 1 },
    { task: 'taskI1xxxxxxxxxxxx', net: netI, ip: '10.253.2.11', host: 0 },
    { task: 'taskI2xxxxxxxxxxxx', net: netI, ip: '10.253.2.12', host: 1 },
  ];
  const taskNs = (host: number, task: string) => `h${host + 1}-t-${task.slice(0, 12)}`;
  const gwOf = new Map<string, string>();

  function viewFor(i: number): NetView {
    const h = hosts[i]!;
    const endpoints: Endpoint[] = place.map((p) => ({
      networkId: p.net.id,
      taskId: p.task,
      serviceId: 's',
      serviceName: 's',
      taskName: `s.1.${p.task}`,
      ip: p.ip,
      mac: macForIp(p.ip),
      nodeId: `node${p.host + 1}`,
      vtep: hosts[p.host]!.vtep,
      aliases: [],
      running: true,
    }));
    return { nodeId: `node${i + 1}`, vtep: h.vtep, networks: [netA, netI], endpoints, services: [], nodeAddrs: hosts.map((x) => x.vtep) };
  }

  async function converge(): Promise<void> {
    for (let i = 0; i < hosts.length; i++) {
      const h = hosts[i]!;
      const v = viewFor(i);
      h.dp.apply(v);
      const legs = h.dp.guardLegs();
      await h.guard.update({
        node: { gwBridge: h.dp.names.gwBridge, ingressLink: h.dp.names.ingressLink, nodeAddrs: clusterAddrs(v) },
        gwLegs: legs.gw,
        netLegs: legs.nets,
      });
    }
  }

  const nsx = (ns: string, ...args: string[]) => {
    const r = spawnSync('nsenter', [`--net=${lab.path(ns)}`, ...args], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.status, 0, `${args.join(' ')} in ${ns}: ${r.stderr}`);
    return r.stdout;
  };
  /** Packets of UDP 4789 that passed the guard on a host (a counter hooked after it). */
  const vxlanSeen = (host: number) => Number(/packets (\d+)/.exec(nsx(`h${host + 1}`, 'nft', 'list', 'chain', 'ip', 'h13count', 'input'))?.[1] ?? NaN);
  const tcp = async (ns: string, host: string, port: number) => (await lab.probe(ns, 'tcp', host, port, 1, 1500))[0]!;

  before(async () => {
    lab.addNs('sw');
    lab.bridge('sw', 'br0');
    for (let i = 1; i <= 2; i++) {
      lab.addNs(`h${i}`);
      lab.veth({ ns: 'sw', dev: `p${i}`, master: 'br0' }, { ns: `h${i}`, dev: 'eth0', addr: `10.251.88.${10 + i}/24` });
      const prefix = `${lab.ns(`h${i}`)}-`;
      const path = lab.path(`h${i}`);
      hosts.push({
        name: `h${i}`,
        vtep: `10.251.88.${10 + i}`,
        prefix,
        dp: new DataPlane({ prefix, hostNetns: path, underlayMtu: 1500 }),
        guard: new GuardProgrammer({ netns: path }),
      });
      // Stand-ins for the node's services: a "manager" on 2377, "ssh" on 2222, a resolver on 53, an app on 8000.
      for (const [name, port] of [
        ['mgr', 2377],
        ['ssh', 2222],
        ['dns', 53],
        ['app', 8000],
      ] as const)
        await lab.server(`h${i}`, `${name}${i}`, port);
    }
    lab.ip('sw', 'addr', 'add', '10.251.88.99/24', 'dev', 'br0');
    await converge();
    for (const p of place) {
      const r = hosts[p.host]!.dp.attachTask(p.task, [{ networkId: p.net.id, ip: `${p.ip}/24` }]);
      gwOf.set(p.task, r.gwIp);
    }
    await converge();
    for (let i = 0; i < 2; i++) {
      const r = spawnSync('nsenter', [`--net=${lab.path(`h${i + 1}`)}`, 'nft', '-f', '-'], {
        input: 'table ip h13count {\n chain input {\n  type filter hook input priority 10; policy accept;\n  udp dport 4789 counter\n }\n}\n',
        encoding: 'utf8',
      });
      assert.equal(r.status, 0, r.stderr);
    }
    await lab.server(taskNs(1, 'taskA2xxxxxxxxxxxx'), 'A2', 7000);
    await lab.server(taskNs(1, 'taskI2xxxxxxxxxxxx'), 'I2', 7000);
  });

  after(async () => {
    for (const h of hosts) {
      await h.guard.remove().catch(() => {});
      h.guard.dispose();
      await h.dp.destroy().catch(() => {});
    }
    await lab.close();
    for (const n of readdirSync('/run/netns')) if (n.startsWith(lab.id)) spawnSync('ip', ['netns', 'del', n]);
  });

  it('a task reaches a peer on another node over the overlay (positive control, VXLAN counted)', async () => {
    const before = vxlanSeen(1);
    const r = await tcp(taskNs(0, 'taskA1xxxxxxxxxxxx'), '10.253.1.12', 7000);
    assert.equal(r.line, 'A2 10.253.1.11');
    assert.ok(vxlanSeen(1) > before, 'the counter sees legitimate VXLAN');
  });

  it("the manager port is refused on every node, quickly; other nodes' other ports stay reachable", async () => {
    const ns = taskNs(0, 'taskA1xxxxxxxxxxxx');
    for (const addr of ['10.251.88.11', '10.251.88.12', '172.31.0.1']) {
      const r = await tcp(ns, addr, 2377);
      assert.equal(r.err, 'ECONNREFUSED', `${addr}:2377 → ${JSON.stringify(r)}`);
      assert.ok(r.ms < 1000, `refused within ${r.ms} ms`);
    }
    assert.equal((await tcp(ns, '10.251.88.12', 8000)).line, 'app2 10.251.88.11', 'egress (masqueraded) still works');
  });

  it("the node's own other ports are closed to tasks; DNS at 172.31.0.1:53 answers", async () => {
    const ns = taskNs(0, 'taskA1xxxxxxxxxxxx');
    assert.equal((await tcp(ns, '172.31.0.1', 2222)).err, 'ECONNREFUSED');
    assert.equal((await tcp(ns, '10.251.88.11', 2222)).err, 'ECONNREFUSED');
    const gw = gwOf.get('taskA1xxxxxxxxxxxx')!;
    assert.equal((await lab.probe(ns, 'udp', '172.31.0.1', 53, 1, 1500))[0]!.line, `dns1 ${gw}`);
    assert.equal((await tcp(ns, '172.31.0.1', 53)).line, `dns1 ${gw}`);
    assert.notEqual((await lab.probe(ns, 'udp', '172.31.0.1', 8000, 1, 500))[0]!.line, `app1 ${gw}`);
  });

  it("UDP to any node's 4789 from a task never arrives; VXLAN from a non-node is dropped", async () => {
    const ns = taskNs(0, 'taskA1xxxxxxxxxxxx');
    for (const host of [0, 1]) {
      const before = vxlanSeen(host);
      await lab.probe(ns, 'udp', hosts[host]!.vtep, 4789, 3, 200);
      assert.equal(vxlanSeen(host), before, `host ${host + 1} got a task's VXLAN datagram`);
    }
    const before = vxlanSeen(0);
    await lab.probe('sw', 'udp', '10.251.88.11', 4789, 3, 200);
    assert.equal(vxlanSeen(0), before, 'a non-node sender reached the VXLAN socket');
  });

  it('a task on an internal network goes nowhere, even with a default route it forged; DNS still answers', async () => {
    const ns = taskNs(0, 'taskI1xxxxxxxxxxxx');
    assert.equal((await tcp(ns, '10.253.2.12', 7000)).line, 'I2 10.253.2.11', 'its peer answers');
    nsx(ns, 'ip', 'route', 'add', 'default', 'via', '172.31.0.1', 'dev', 'gw0');
    const r = await tcp(ns, '10.251.88.12', 8000);
    assert.ok(r.err === 'TIMEOUT' || r.err === 'ECONNREFUSED', `egress from an internal-only task: ${JSON.stringify(r)}`);
    assert.notEqual(r.line, 'app2 10.251.88.11');
    assert.equal((await lab.probe(ns, 'udp', '172.31.0.1', 53, 1, 1500))[0]!.line, `dns1 ${gwOf.get('taskI1xxxxxxxxxxxx')}`);
  });

  it('forged source addresses are dropped, on the gateway leg and on an overlay port', async () => {
    const ns = taskNs(0, 'taskA1xxxxxxxxxxxx');
    // Gateway leg: another address of the gateway subnet as source.
    nsx(ns, 'ip', 'addr', 'add', '172.31.0.200/32', 'dev', 'gw0');
    nsx(ns, 'ip', 'route', 'replace', '172.31.0.1/32', 'dev', 'gw0', 'src', '172.31.0.200');
    assert.equal((await tcp(ns, '172.31.0.1', 53)).err, 'TIMEOUT', 'a forged gateway source got through');
    nsx(ns, 'ip', 'route', 'del', '172.31.0.1/32');
    assert.ok((await tcp(ns, '172.31.0.1', 53)).line?.startsWith('dns1 '), 'its own source works again');
    // Overlay port: another address of the network as source.
    nsx(ns, 'ip', 'addr', 'add', '10.253.1.77/32', 'dev', 'eth0');
    nsx(ns, 'ip', 'route', 'replace', '10.253.1.12/32', 'dev', 'eth0', 'src', '10.253.1.77');
    assert.equal((await tcp(ns, '10.253.1.12', 7000)).err, 'TIMEOUT', 'a forged overlay source got through');
    nsx(ns, 'ip', 'route', 'del', '10.253.1.12/32');
    // Overlay port: another task's MAC.
    nsx(ns, 'ip', 'link', 'set', 'eth0', 'address', '02:42:0a:fd:01:63');
    nsx(ns, 'ip', 'neigh', 'flush', 'all');
    assert.equal((await tcp(ns, '10.253.1.12', 7000)).err, 'TIMEOUT', 'a forged MAC got through');
    nsx(ns, 'ip', 'link', 'set', 'eth0', 'address', macForIp('10.253.1.11'));
    assert.equal((await tcp(ns, '10.253.1.12', 7000)).line, 'A2 10.253.1.11', 'its own MAC and address work again');
  });

  it('a flushed ruleset is restored by verify()', async () => {
    nsx('h1', 'nft', 'flush', 'ruleset');
    const repaired = await hosts[0]!.guard.verify();
    assert.ok(
      repaired.some((r) => r.startsWith(`ip ${GUARD_TABLE}`)),
      repaired.join('; '),
    );
    assert.equal((await tcp(taskNs(0, 'taskA1xxxxxxxxxxxx'), '10.251.88.12', 2377)).err, 'ECONNREFUSED');
    assert.deepEqual(await hosts[0]!.guard.verify(), [], 'converged after the repair');
  });
});
