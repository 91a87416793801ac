// The native netlink addon (overlay-net/netlink.ts): every operation checked against `ip -j` / `bridge -j`
// inside namespaces this test creates (all named shoal-nl-t-*), plus errors and namespace cleanup.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import * as nl from '../../overlay-net/netlink.ts';

const P = 'shoal-nl-t-';
const A = `${P}a`;
const B = `${P}b`;
const pathA = `/run/netns/${A}`;
const pathB = `/run/netns/${B}`;

function ipj(ns: string, args: string[], tool = 'ip'): any[] {
  const r = spawnSync(tool, ['-n', ns, '-j', ...args], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.status, 0, `${tool} -n ${ns} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim() ? (JSON.parse(r.stdout) as any[]) : [];
}

function link(ns: string, name: string): any {
  const l = ipj(ns, ['-d', 'link', 'show', 'dev', name]);
  return l[0];
}

function cleanup(): void {
  for (const n of nl.listNetns(P)) {
    try {
      nl.deleteNetns(n);
    } catch {
      spawnSync('ip', ['netns', 'delete', n]);
    }
  }
}

function throwsNl(fn: () => unknown, code: string, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof nl.NetlinkError, `not a NetlinkError: ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.equal(typeof e.errno, 'number');
    assert.match(e.message, message);
    return true;
  });
}

function mountedAt(p: string): boolean {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === p);
}

describe('netlink addon', () => {
  before(() => {
    cleanup();
    nl.createNetns(A);
    nl.createNetns(B);
  });
  after(cleanup);

  test('namespaces: create, list, delete leaves no file and no mount', () => {
    const p = nl.createNetns(`${P}tmp`);
    assert.equal(p, `/run/netns/${P}tmp`);
    assert.ok(fs.existsSync(p));
    assert.ok(mountedAt(p));
    assert.ok(nl.listNetns(P).includes(`${P}tmp`));
    // iproute2 sees it as a namespace of its own.
    assert.ok(spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.includes(`${P}tmp`));
    assert.notEqual(nl.netnsId(p), nl.netnsId(''));
    assert.deepEqual(
      ipj(`${P}tmp`, ['link', 'show']).map((l) => l.ifname),
      ['lo'],
    );
    nl.deleteNetns(`${P}tmp`);
    assert.ok(!fs.existsSync(p));
    assert.ok(!mountedAt(p));
    throwsNl(() => nl.deleteNetns(`${P}tmp`), 'ENOENT', /^no such namespace \/run\/netns\/shoal-nl-t-tmp$/);
    throwsNl(() => nl.createNetns(A), 'EEXIST', /namespace \/run\/netns\/shoal-nl-t-a exists/);
    throwsNl(() => nl.listLinks({ netns: '/run/netns/x' }), 'ENOENT', /^no such namespace \/run\/netns\/x$/);
    // A failed call leaves the thread in its own namespace.
    assert.equal(nl.netnsId(''), nl.netnsId('/proc/self/ns/net'));
  });

  test('many namespaces created and deleted: nothing left behind', () => {
    const before = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').length;
    for (let i = 0; i < 20; i++) nl.createNetns(`${P}many${i}`);
    for (let i = 0; i < 20; i++) nl.deleteNetns(`${P}many${i}`);
    assert.deepEqual(nl.listNetns(`${P}many`), []);
    assert.equal(fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').length, before);
  });

  test('bridge and veth (peer created in another namespace, enslaved, up, MAC, MTU)', () => {
    nl.setUp('lo', true, { netns: pathA });
    nl.createBridge('br0', { netns: pathA, up: true, mtu: 1400 });
    nl.createVeth('v1', 'eth0', { netns: pathA, peerNetns: pathB, master: 'br0', up: true, peerUp: true, mtu: 1350, peerMac: '02:42:0a:0a:00:05' });
    const br = link(A, 'br0');
    assert.equal(br.linkinfo.info_kind, 'bridge');
    assert.ok(br.flags.includes('UP'));
    const v1 = link(A, 'v1');
    assert.equal(v1.master, 'br0');
    assert.equal(v1.mtu, 1350);
    assert.equal(v1.linkinfo.info_kind, 'veth');
    assert.ok(v1.flags.includes('UP'));
    const eth0 = link(B, 'eth0');
    assert.equal(eth0.address, '02:42:0a:0a:00:05');
    assert.equal(eth0.mtu, 1350);
    assert.ok(eth0.flags.includes('UP'));
    // listLinks agrees with ip.
    const mine = nl.listLinks({ netns: pathA });
    const l1 = mine.find((l) => l.name === 'v1')!;
    assert.equal(l1.kind, 'veth');
    assert.equal(l1.master, 'br0');
    assert.equal(l1.mtu, 1350);
    assert.equal(l1.up, true);
    assert.equal(l1.mac, v1.address);
    assert.equal(l1.index, v1.ifindex);
    assert.equal(nl.getLink('eth0', { netns: pathB })!.mac, '02:42:0a:0a:00:05');
    assert.equal(nl.getLink('nope', { netns: pathB }), null);
    throwsNl(() => nl.createBridge('br0', { netns: pathA }), 'EEXIST', /^link br0 exists$/);
    throwsNl(() => nl.setMaster('v1', 'br9', { netns: pathA }), 'ENODEV', /^no such link br9$/);
  });

  test('set MAC, MTU, up/down, alias, port isolation, release from the bridge', () => {
    const o = { netns: pathA };
    nl.setMac('v1', '02:00:00:00:00:aa', o);
    nl.setMtu('v1', 1300, o);
    nl.setLink('v1', { alias: 'task:abc', isolated: true }, o);
    let v = link(A, 'v1');
    assert.equal(v.address, '02:00:00:00:00:aa');
    assert.equal(v.mtu, 1300);
    assert.equal(v.ifalias, 'task:abc');
    assert.equal(v.linkinfo.info_slave_data.isolated, true);
    const l = nl.getLink('v1', o)!;
    assert.equal(l.alias, 'task:abc');
    assert.equal(l.isolated, true);
    nl.setUp('v1', false, o);
    v = link(A, 'v1');
    assert.ok(!v.flags.includes('UP'));
    assert.equal(nl.getLink('v1', o)!.up, false);
    nl.setMaster('v1', null, o);
    assert.equal(link(A, 'v1').master, undefined);
    nl.setMaster('v1', 'br0', o);
    nl.setUp('v1', true, o);
    assert.equal(link(A, 'v1').master, 'br0');
  });

  test('rename and move to another namespace, renamed on the way', () => {
    nl.createVeth('d0', 'd0p', { netns: pathA }); // (bridges cannot change namespace: veths can)
    nl.renameLink('d0', 'd1', { netns: pathA });
    assert.ok(link(A, 'd1'));
    nl.setUp('d1', true, { netns: pathA });
    nl.renameLink('d1', 'd2', { netns: pathA }); // this kernel renames links that are up
    nl.renameLink('d2', 'd1', { netns: pathA });
    nl.setUp('d1', false, { netns: pathA });
    nl.moveLink('d1', pathB, { netns: pathA, newName: 'moved0' });
    assert.equal(nl.getLink('d1', { netns: pathA }), null);
    assert.equal(link(B, 'moved0').linkinfo.info_kind, 'veth');
    assert.equal(nl.getLink('moved0', { netns: pathB })!.linkNetnsId !== null, true);
    nl.createVeth('moved1', 'moved1p', { netns: pathA });
    throwsNl(() => nl.moveLink('moved1', pathB, { netns: pathA, newName: 'moved0' }), 'EEXIST', /^link moved0 exists in \/run\/netns\/shoal-nl-t-b$/);
    nl.deleteLink('moved1', { netns: pathA });
    nl.deleteLink('moved0', { netns: pathB });
    throwsNl(() => nl.deleteLink('moved0', { netns: pathB }), 'ENODEV', /^no such link moved0$/);
    throwsNl(() => nl.setUp('eth9', true, { netns: pathB }), 'ENODEV', /^no such link eth9$/);
    throwsNl(() => nl.createBridge('much-too-long-name', { netns: pathB }), 'EINVAL', /invalid link name/);
  });

  test('vxlan created from one namespace into another (socket stays), VNI conflicts', () => {
    nl.createVxlan('vx-1f4', { netns: pathA, targetNetns: pathB, vni: 500, local: '10.9.0.1', mtu: 1350 });
    const v = link(B, 'vx-1f4');
    const d = v.linkinfo.info_data;
    assert.equal(v.linkinfo.info_kind, 'vxlan');
    assert.equal(d.id, 500);
    assert.equal(d.local, '10.9.0.1');
    assert.equal(d.port, 4789);
    assert.equal(d.learning, false);
    assert.equal(d.proxy, true);
    assert.equal(v.mtu, 1350);
    const mine = nl.getLink('vx-1f4', { netns: pathB })!;
    assert.deepEqual(mine.vxlan, { vni: 500, local: '10.9.0.1', port: 4789, learning: false, proxy: true });
    throwsNl(() => nl.createVxlan('vx-1f4', { netns: pathB, vni: 501 }), 'EEXIST', /^link vx-1f4 exists$/);
    // Same VNI and port from the same (socket) namespace: the kernel refuses and says why.
    throwsNl(() => nl.createVxlan('vx-other', { netns: pathA, vni: 500, local: '10.9.0.1' }), 'EEXIST', /vx-other.*VNI/);
  });

  test('addresses: add, list, delete', () => {
    const o = { netns: pathB };
    nl.addAddress('eth0', '10.10.0.5/24', o);
    nl.addAddress('eth0', '10.10.0.6/24', o);
    const j = ipj(B, ['addr', 'show', 'dev', 'eth0']);
    const ips = j[0].addr_info.filter((a: any) => a.family === 'inet').map((a: any) => `${a.local}/${a.prefixlen}`);
    assert.deepEqual(ips, ['10.10.0.5/24', '10.10.0.6/24']);
    const mine = nl.listAddresses({ ...o, dev: 'eth0' });
    assert.deepEqual(
      mine.map((a) => [a.cidr, a.secondary]),
      [
        ['10.10.0.5/24', false],
        ['10.10.0.6/24', true],
      ],
    );
    throwsNl(() => nl.addAddress('eth0', '10.10.0.5/24', o), 'EEXIST', /^address 10.10.0.5\/24 exists on eth0$/);
    nl.addAddress('eth0', '10.10.0.5/24', { ...o, replace: true });
    nl.deleteAddress('eth0', '10.10.0.6/24', o);
    throwsNl(() => nl.deleteAddress('eth0', '10.10.0.6/24', o), 'EADDRNOTAVAIL', /^no address 10.10.0.6\/24 on eth0$/);
    assert.deepEqual(
      nl.listAddresses({ ...o, dev: 'eth0' }).map((a) => a.cidr),
      ['10.10.0.5/24'],
    );
    nl.addAddress('br0', '10.10.0.1/24', { netns: pathA });
  });

  test('routes: default via a gateway, a subnet via a device, delete, errors', () => {
    const o = { netns: pathB };
    nl.addRoute({ dst: 'default', via: '10.10.0.1' }, o);
    nl.createBridge('r0', { ...o, up: true });
    nl.addRoute({ dst: '10.77.0.0/16', dev: 'r0' }, o);
    nl.addRoute({ dst: '10.78.0.0/16', via: '10.10.0.1', dev: 'eth0', metric: 50 }, o);
    const j = ipj(B, ['route', 'show']);
    const def = j.find((r: any) => r.dst === 'default');
    assert.equal(def.gateway, '10.10.0.1');
    assert.equal(def.dev, 'eth0');
    assert.equal(j.find((r: any) => r.dst === '10.77.0.0/16').dev, 'r0');
    assert.equal(j.find((r: any) => r.dst === '10.78.0.0/16').metric, 50);
    const mine = nl.listRoutes(o);
    assert.deepEqual(mine.find((r) => r.dst === 'default')!.via, '10.10.0.1');
    assert.equal(mine.find((r) => r.dst === '10.78.0.0/16')!.metric, 50);
    throwsNl(() => nl.addRoute({ dst: 'default', via: '10.10.0.1' }, o), 'EEXIST', /^route default exists$/);
    throwsNl(() => nl.addRoute({ dst: '10.79.0.0/16', via: '10.200.0.1' }, o), 'ENETUNREACH', /gateway 10.200.0.1 is unreachable/);
    nl.replaceRoute({ dst: 'default', via: '10.10.0.7', dev: 'eth0' }, o);
    assert.equal(ipj(B, ['route', 'show', 'default'])[0].gateway, '10.10.0.7');
    nl.deleteRoute({ dst: '10.77.0.0/16' }, o);
    throwsNl(() => nl.deleteRoute({ dst: '10.77.0.0/16' }, o), 'ESRCH', /^no such route 10.77.0.0\/16$/);
    assert.equal(
      ipj(B, ['route', 'show']).some((r: any) => r.dst === '10.77.0.0/16'),
      false,
    );
  });

  test('neighbours: replace (nud permanent), list, delete', () => {
    const o = { netns: pathB };
    nl.setNeighbour('vx-1f4', '10.10.0.9', '02:42:0a:0a:00:09', o);
    nl.setNeighbour('vx-1f4', '10.10.0.9', '02:42:0a:0a:00:99', o); // replace
    nl.setNeighbour('vx-1f4', '10.10.0.10', '02:42:0a:0a:00:0a', o);
    const j = ipj(B, ['neigh', 'show', 'dev', 'vx-1f4']);
    assert.deepEqual(j.map((n: any) => [n.dst, n.lladdr, n.state]).sort(), [
      ['10.10.0.10', '02:42:0a:0a:00:0a', ['PERMANENT']],
      ['10.10.0.9', '02:42:0a:0a:00:99', ['PERMANENT']],
    ]);
    const mine = nl.listNeighbours({ ...o, dev: 'vx-1f4' });
    assert.deepEqual(mine.map((n) => [n.ip, n.mac, n.permanent]).sort(), [
      ['10.10.0.10', '02:42:0a:0a:00:0a', true],
      ['10.10.0.9', '02:42:0a:0a:00:99', true],
    ]);
    nl.deleteNeighbour('vx-1f4', '10.10.0.9', o);
    throwsNl(() => nl.deleteNeighbour('vx-1f4', '10.10.0.9', o), 'ENOENT', /^no neighbour 10.10.0.9 on vx-1f4$/);
    assert.deepEqual(
      ipj(B, ['neigh', 'show', 'dev', 'vx-1f4']).map((n: any) => n.dst),
      ['10.10.0.10'],
    );
  });

  test('fdb: vxlan self entries with a destination, replace, append (flood list), delete', () => {
    const o = { netns: pathB };
    const Z = '00:00:00:00:00:00';
    nl.setFdb('vx-1f4', '02:42:0a:0a:00:0a', { ...o, dst: '10.9.0.2' });
    nl.setFdb('vx-1f4', '02:42:0a:0a:00:0a', { ...o, dst: '10.9.0.3' }); // replace
    // The kernel appends destinations only to the all-zeros (flood) and multicast entries.
    // (and refuses to 'replace' those: they are built with append from the start).
    nl.setFdb('vx-1f4', Z, { ...o, dst: '10.9.0.4', append: true });
    nl.setFdb('vx-1f4', Z, { ...o, dst: '10.9.0.5', append: true });
    const j = ipj(B, ['fdb', 'show', 'dev', 'vx-1f4'], 'bridge').filter((f: any) => f.dst);
    assert.deepEqual(j.map((f: any) => [f.mac, f.dst, f.state, f.flags.includes('self')]).sort(), [
      ['00:00:00:00:00:00', '10.9.0.4', 'permanent', true],
      ['00:00:00:00:00:00', '10.9.0.5', 'permanent', true],
      ['02:42:0a:0a:00:0a', '10.9.0.3', 'permanent', true],
    ]);
    const mine = nl.listFdb({ ...o, dev: 'vx-1f4' }).filter((f) => f.dst);
    assert.deepEqual(mine.map((f) => [f.mac, f.dst, f.permanent, f.self]).sort(), j.map((f: any) => [f.mac, f.dst, true, true]).sort());
    nl.deleteFdb('vx-1f4', Z, { ...o, dst: '10.9.0.4' });
    assert.deepEqual(
      nl
        .listFdb({ ...o, dev: 'vx-1f4' })
        .filter((f) => f.mac === Z)
        .map((f) => f.dst),
      ['10.9.0.5'],
    );
    nl.deleteFdb('vx-1f4', Z, o);
    throwsNl(() => nl.deleteFdb('vx-1f4', Z, o), 'ENOENT', /^no fdb entry 00:00:00:00:00:00 on vx-1f4$/);
    throwsNl(() => nl.setFdb('vx-1f4', 'zz:42:0a:0a:00:0b', o), 'EINVAL', /invalid MAC address/);
    assert.deepEqual(
      nl
        .listFdb({ ...o, dev: 'vx-1f4' })
        .filter((f) => f.dst)
        .map((f) => f.mac),
      ['02:42:0a:0a:00:0a'],
    );
  });

  test('neighBatch: many neighbour/FDB changes in one call, errors per entry', () => {
    const o = { netns: pathB };
    const ops: nl.NeighOpSpec[] = [];
    for (let i = 0; i < 300; i++) {
      const ip = `10.11.${i >> 8}.${i & 255}`;
      const mac = `02:42:0a:0b:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
      ops.push({ op: 'neighSet', dev: 'vx-1f4', ip, mac }, { op: 'fdbSet', dev: 'vx-1f4', mac, dst: '10.9.1.1' });
    }
    const t0 = performance.now();
    const res = nl.neighBatch(ops, o);
    const ms = performance.now() - t0;
    assert.ok(res.every((r) => r === null));
    assert.equal(ipj(B, ['neigh', 'show', 'dev', 'vx-1f4']).filter((n: any) => n.dst.startsWith('10.11.')).length, 300);
    assert.equal(ipj(B, ['fdb', 'show', 'dev', 'vx-1f4'], 'bridge').filter((f: any) => f.dst === '10.9.1.1').length, 300);
    const del = nl.neighBatch(
      [
        { op: 'neighDel', dev: 'vx-1f4', ip: '10.11.0.0' },
        { op: 'neighDel', dev: 'vx-1f4', ip: '10.11.0.0' },
        { op: 'fdbDel', dev: 'nope0', mac: '02:42:0a:0b:00:01' },
        { op: 'fdbDel', dev: 'vx-1f4', mac: '02:42:0a:0b:00:01', dst: '10.9.1.1' },
      ],
      o,
    );
    assert.deepEqual(
      del.map((r) => r?.code ?? null),
      [null, 'ENOENT', 'ENODEV', null],
    );
    assert.equal(del[2]!.message, 'no such link nope0');
    // Clean up for the next tests.
    nl.neighBatch(
      ops.filter((x) => x.op === 'neighSet').map((x) => ({ op: 'neighDel' as const, dev: 'vx-1f4', ip: (x as { ip: string }).ip })),
      o,
    );
    nl.neighBatch(
      ops.filter((x) => x.op === 'fdbSet').map((x) => ({ op: 'fdbDel' as const, dev: 'vx-1f4', mac: x.mac })),
      o,
    );
    assert.equal(ipj(B, ['fdb', 'show', 'dev', 'vx-1f4'], 'bridge').filter((f: any) => f.dst === '10.9.1.1').length, 0);
    assert.ok(ms < 500, `600 changes took ${ms.toFixed(1)} ms`);
  });

  test('sysctl inside a namespace', () => {
    const o = { netns: pathB };
    const rootBefore = nl.sysctlRead('net.ipv4.ip_forward');
    assert.equal(nl.sysctlRead('net.ipv4.ip_forward', o), '0');
    nl.sysctlWrite('net.ipv4.ip_forward', 1, o);
    assert.equal(nl.sysctlRead('net.ipv4.ip_forward', o), '1');
    const r = spawnSync('nsenter', [`--net=${pathB}`, '--', 'cat', '/proc/sys/net/ipv4/ip_forward'], { encoding: 'utf8' });
    assert.equal(r.stdout.trim(), '1');
    assert.equal(nl.sysctlRead('net.ipv4.ip_forward'), rootBefore);
    nl.sysctlWrite('net/ipv4/conf/eth0/proxy_arp', 1, o);
    assert.equal(nl.sysctlRead('net.ipv4.conf.eth0.proxy_arp', o), '1');
    assert.equal(nl.sysctlEnsure('net.ipv4.conf.eth0.proxy_arp', 1, o), false);
    throwsNl(() => nl.sysctlRead('net.ipv4.nope', o), 'ENOENT', /^no such sysctl net.ipv4.nope$/);
  });

  test('deleteLinks runs on a worker thread, batched, and tolerates links already gone', async () => {
    for (let i = 0; i < 4; i++) nl.createVeth(`dv${i}`, `dp${i}`, { netns: pathA, peerNetns: pathB });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const t0 = performance.now();
    const res = await nl.deleteLinks(['dv0', 'dv1', 'dv2', 'dv3', 'gone0'], { netns: pathA });
    const ms = performance.now() - t0;
    clearInterval(timer);
    assert.deepEqual(
      res.map((r) => [r.name, r.error?.code]),
      [
        ['dv0', undefined],
        ['dv1', undefined],
        ['dv2', undefined],
        ['dv3', undefined],
        ['gone0', undefined],
      ],
    );
    // Any tick proves the loop ran while the deletion was pending (a synchronous call allows none); how many
    // depends on how much CPU the process gets (1 in 1.2 s at load 36).
    assert.ok(ticks > 0, `the event loop ran while links were deleted (${ticks} ticks in ${ms.toFixed(1)} ms)`);
    const left = nl.listLinks({ netns: pathB }).map((l) => l.name);
    for (let i = 0; i < 4; i++) assert.ok(!left.includes(`dp${i}`));
    const missing = await nl.deleteLinks(['x'], { netns: '/run/netns/shoal-nl-t-nope' });
    assert.equal(missing[0]!.error, undefined); // a namespace already gone: nothing left to delete
  });

  test('dropStaleFlows: an empty table, bad addresses and a missing namespace', async () => {
    // The deletions themselves are tested with real traffic in mesh.test.ts and lb.test.ts.
    assert.deepEqual(await nl.dropStaleFlows({ unreplied: ['10.9.9.9'], all: ['10.9.9.8'] }, { netns: pathA }), { scanned: 0, deleted: 0 });
    assert.deepEqual(await nl.dropStaleFlows({ unreplied: [], all: [] }, { netns: pathA }), { scanned: 0, deleted: 0 });
    await assert.rejects(nl.dropStaleFlows({ unreplied: [], all: ['10.9.9.300'] }, { netns: pathA }), /invalid IPv4 address "10\.9\.9\.300"/);
    await assert.rejects(nl.dropStaleFlows({ unreplied: ['10.9.9.9'], all: [] }, { netns: '/run/netns/shoal-nl-t-nope' }), (e: nl.NetlinkError) => {
      assert.equal(e.code, 'ENOENT');
      assert.match(e.message, /no such namespace/);
      return true;
    });
  });

  test('write counter counts requests that change state', () => {
    const s0 = nl.netlinkStats();
    nl.listLinks({ netns: pathA });
    nl.setUp('lo', true, { netns: pathA });
    const s1 = nl.netlinkStats();
    assert.equal(s1.writes - s0.writes, 1);
    assert.equal(s1.reads - s0.reads, 1);
  });
});
