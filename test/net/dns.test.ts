// Shoal's embedded DNS resolver: the pure resolve() rules, then a real DnsServer on loopback queried over
// UDP and TCP (by our own client and by busybox nslookup), forwarding to fake upstream servers that the test
// runs on other loopback ports. Clients are told apart by their loopback source address (127.0.0.x).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DnsServer, indexView, parseResolvConf, resolve } from '../../overlay-net/dns.ts';
import { viewBeforeApply } from '../../api/netview.ts';
import type { DnsClient, Resolution } from '../../overlay-net/dns.ts';
import {
  aRecord,
  CLASS,
  decodeHeader,
  decodeMessage,
  encodeQuery,
  encodeResponse,
  frameTcp,
  parseQuery,
  RCODE,
  reverseName,
  TcpDeframer,
  TYPE,
} from '../../overlay-net/dns-wire.ts';
import type { DnsMessage } from '../../overlay-net/dns-wire.ts';
import type { Endpoint, NetInfo, NetView, SvcInfo } from '../../api/netview.ts';
import { macForIp } from '../../api/netview.ts';
import { Rng } from '../../sim/rng.ts';

// ---------------------------------------------------------------------------------------------------------
// A view: networks front, back, an internal one and ingress

function netInfo(id: string, third: number, over: Partial<NetInfo> = {}): NetInfo {
  return {
    id,
    name: id,
    vni: 4096 + third,
    subnet: `10.0.${third}.0/24`,
    gateway: `10.0.${third}.1`,
    internal: false,
    attachable: false,
    ingress: false,
    ...over,
  };
}

function ep(
  networkId: string,
  serviceId: string,
  serviceName: string,
  slot: number,
  taskId: string,
  ip: string,
  running = true,
  aliases: string[] = [],
): Endpoint {
  return {
    networkId,
    taskId,
    serviceId,
    serviceName,
    taskName: `${serviceName}.${slot}.${taskId}`,
    ip,
    mac: macForIp(ip),
    nodeId: 'node1',
    vtep: '192.168.0.1',
    aliases,
    running,
  };
}

function svc(id: string, name: string, endpointMode: 'vip' | 'dnsrr', vips: [string, string][], aliases: [string, string[]][] = []): SvcInfo {
  return {
    id,
    name,
    endpointMode,
    vips: vips.map(([networkId, ip]) => ({ networkId, ip })),
    ports: [],
    aliases: aliases.map(([networkId, a]) => ({ networkId, aliases: a })),
  };
}

function fixture(): NetView {
  return {
    nodeId: 'node1',
    vtep: '192.168.0.1',
    networks: [netInfo('front', 1), netInfo('back', 2), netInfo('vault', 3, { internal: true }), netInfo('ingress', 255, { ingress: true })],
    services: [
      svc(
        's-web',
        'web',
        'vip',
        [
          ['front', '10.0.1.2'],
          ['back', '10.0.2.2'],
          ['ingress', '10.0.255.2'],
        ],
        [['front', ['www', 'Portal']]],
      ),
      svc('s-api', 'api', 'dnsrr', [], [['back', ['rest']]]),
      svc('s-db', 'db', 'vip', [['back', '10.0.2.3']]),
      svc('s-secret', 'secret', 'vip', [['vault', '10.0.3.2']]),
    ],
    endpoints: [
      ep('front', 's-web', 'web', 1, 'aaa111', '10.0.1.10'),
      ep('back', 's-web', 'web', 1, 'aaa111', '10.0.2.10'),
      ep('ingress', 's-web', 'web', 1, 'aaa111', '10.0.255.10'),
      ep('front', 's-web', 'web', 2, 'bbb222', '10.0.1.11', false),
      ep('back', 's-web', 'web', 2, 'bbb222', '10.0.2.11', false),
      ep('back', 's-api', 'api', 1, 'ccc333', '10.0.2.20'),
      ep('back', 's-api', 'api', 2, 'ddd444', '10.0.2.21'),
      ep('back', 's-api', 'api', 3, 'eee555', '10.0.2.22'),
      ep('back', 's-api', 'api', 4, 'fff666', '10.0.2.23', false),
      ep('back', 's-db', 'db', 1, 'ggg777', '10.0.2.30', true, ['primary']),
      ep('back', 's-db', 'db', 2, 'hhh888', '10.0.2.31', true, ['replica']),
      ep('vault', 's-secret', 'secret', 1, 'iii999', '10.0.3.10'),
    ],
  };
}

const FRONT: DnsClient = { networkIds: ['front'], taskId: 'x' };
const BACK: DnsClient = { networkIds: ['back'] };
const BOTH: DnsClient = { networkIds: ['front', 'back'] };
const VAULT: DnsClient = { networkIds: ['vault'] };
const INGRESS_ONLY: DnsClient = { networkIds: ['ingress'] };

const A = (name: string) => ({ name, type: TYPE.A });

function addrs(r: Resolution): string[] {
  assert.equal(r.action, 'answer');
  if (r.action !== 'answer') return [];
  assert.equal(r.rcode, RCODE.NOERROR);
  return r.answers.map((a) => {
    assert.equal(a.type, TYPE.A);
    assert.equal(a.ttl, 0);
    return a.data.kind === 'a' ? a.data.address : '?';
  });
}

function rcodeOf(r: Resolution): number | 'forward' {
  return r.action === 'forward' ? 'forward' : r.rcode;
}

describe('resolve()', () => {
  const view = fixture();

  test('a vip-mode service resolves to its VIP on the client network, in the client network order', () => {
    assert.deepEqual(addrs(resolve(A('web'), FRONT, view)), ['10.0.1.2']);
    assert.deepEqual(addrs(resolve(A('web'), BACK, view)), ['10.0.2.2']);
    assert.deepEqual(addrs(resolve(A('web'), BOTH, view)), ['10.0.1.2']);
    assert.deepEqual(addrs(resolve(A('web'), { networkIds: ['back', 'front'] }, view)), ['10.0.2.2']);
  });

  test('names are case-insensitive, with or without the trailing dot; the owner keeps the asked spelling', () => {
    for (const n of ['WEB', 'Web.', 'web.', 'wEb']) assert.deepEqual(addrs(resolve(A(n), FRONT, view)), ['10.0.1.2'], n);
    const r = resolve(A('WeB.'), FRONT, view);
    assert.equal(r.action === 'answer' && r.answers[0]!.name, 'WeB');
    assert.deepEqual(addrs(resolve(A('TASKS.Web'), FRONT, view)), ['10.0.1.10']);
    assert.deepEqual(addrs(resolve(A('WEB.1.AAA111.'), FRONT, view)), ['10.0.1.10']);
  });

  test('scoping: a service on a network the client is not on does not resolve', () => {
    assert.equal(rcodeOf(resolve(A('db'), FRONT, view)), RCODE.NXDOMAIN);
    assert.equal(rcodeOf(resolve(A('api'), FRONT, view)), RCODE.NXDOMAIN);
    assert.equal(rcodeOf(resolve(A('secret'), BACK, view)), RCODE.NXDOMAIN);
    assert.equal(rcodeOf(resolve(A('db.1.ggg777'), FRONT, view)), 'forward'); // dotted and not ours here
    assert.equal(rcodeOf(resolve(A('ggg777'), FRONT, view)), RCODE.NXDOMAIN);
    assert.equal(rcodeOf(resolve(A('primary'), FRONT, view)), RCODE.NXDOMAIN);
    assert.deepEqual(addrs(resolve(A('db'), BOTH, view)), ['10.0.2.3']); // found on the second network
    assert.deepEqual(addrs(resolve(A('secret'), VAULT, view)), ['10.0.3.2']);
    assert.equal(rcodeOf(resolve(A('web'), { networkIds: [] }, view)), RCODE.NXDOMAIN);
    assert.equal(rcodeOf(resolve(A('web'), { networkIds: ['no-such-net'] }, view)), RCODE.NXDOMAIN);
  });

  test('dnsrr: running task addresses only, rotated per query', () => {
    const seen = new Set<string>();
    for (let rot = 0; rot < 6; rot++) {
      const got = addrs(resolve(A('api'), BACK, view, { rotation: rot }));
      assert.deepEqual([...got].sort(), ['10.0.2.20', '10.0.2.21', '10.0.2.22']);
      seen.add(got[0]!);
    }
    assert.equal(seen.size, 3, 'every task comes first in turn');
    assert.deepEqual(addrs(resolve(A('api'), BACK, view, { rotation: 1 })), ['10.0.2.21', '10.0.2.22', '10.0.2.20']);
  });

  test('tasks.<service>: running tasks on the client network, for vip and dnsrr services and aliases', () => {
    assert.deepEqual(addrs(resolve(A('tasks.web'), FRONT, view)), ['10.0.1.10']);
    assert.deepEqual(addrs(resolve(A('tasks.web'), BACK, view)), ['10.0.2.10']);
    assert.deepEqual([...addrs(resolve(A('tasks.api'), BACK, view))].sort(), ['10.0.2.20', '10.0.2.21', '10.0.2.22']);
    assert.deepEqual([...addrs(resolve(A('tasks.db'), BACK, view))].sort(), ['10.0.2.30', '10.0.2.31']);
    assert.deepEqual([...addrs(resolve(A('tasks.rest'), BACK, view))].sort(), ['10.0.2.20', '10.0.2.21', '10.0.2.22']);
    assert.deepEqual(addrs(resolve(A('tasks.www'), FRONT, view)), ['10.0.1.10']);
    assert.equal(rcodeOf(resolve(A('tasks.api'), FRONT, view)), 'forward');
    assert.equal(rcodeOf(resolve(A('tasks.nothing'), FRONT, view)), 'forward');
  });

  test('a task by full task name or task id (running or not yet)', () => {
    assert.deepEqual(addrs(resolve(A('web.1.aaa111'), FRONT, view)), ['10.0.1.10']);
    assert.deepEqual(addrs(resolve(A('web.1.aaa111'), BACK, view)), ['10.0.2.10']);
    assert.deepEqual(addrs(resolve(A('aaa111'), BACK, view)), ['10.0.2.10']);
    assert.deepEqual(addrs(resolve(A('web.2.bbb222'), FRONT, view)), ['10.0.1.11']);
    assert.deepEqual(addrs(resolve(A('bbb222'), FRONT, view)), ['10.0.1.11']);
    assert.deepEqual(addrs(resolve(A('api.4.fff666'), BACK, view)), ['10.0.2.23']);
    // short forms other than the task id are not names
    assert.equal(rcodeOf(resolve(A('web.1'), FRONT, view)), 'forward');
  });

  test('service aliases resolve like the service name (per network); endpoint aliases to their tasks', () => {
    assert.deepEqual(addrs(resolve(A('www'), FRONT, view)), ['10.0.1.2']);
    assert.deepEqual(addrs(resolve(A('portal'), FRONT, view)), ['10.0.1.2']);
    assert.equal(rcodeOf(resolve(A('www'), BACK, view)), RCODE.NXDOMAIN); // the alias is front's only
    assert.equal(addrs(resolve(A('rest'), BACK, view)).length, 3); // alias of a dnsrr service
    assert.deepEqual(addrs(resolve(A('primary'), BACK, view)), ['10.0.2.30']);
    assert.deepEqual(addrs(resolve(A('REPLICA'), BACK, view)), ['10.0.2.31']);
  });

  test('PTR: task addresses name the task, VIPs the service, both consistent with the forward records', () => {
    const ptr = (ip: string, c: DnsClient): string | number | 'forward' => {
      const r = resolve({ name: reverseName(ip), type: TYPE.PTR }, c, view);
      if (r.action !== 'answer' || r.rcode !== RCODE.NOERROR) return rcodeOf(r);
      assert.equal(r.answers.length, 1);
      const a = r.answers[0]!;
      assert.equal(a.type, TYPE.PTR);
      assert.equal(a.name, reverseName(ip));
      return a.data.kind === 'name' ? a.data.target : '?';
    };
    assert.equal(ptr('10.0.1.10', FRONT), 'web.1.aaa111');
    assert.equal(ptr('10.0.2.10', BACK), 'web.1.aaa111');
    assert.equal(ptr('10.0.1.2', FRONT), 'web');
    assert.equal(ptr('10.0.2.3', BACK), 'db');
    assert.equal(ptr('10.0.2.30', BOTH), 'db.1.ggg777');
    // scoped: back's addresses are unknown to a front-only client, and not in its subnet → upstream
    assert.equal(ptr('10.0.2.30', FRONT), 'forward');
    // in the client's subnet but unused, or in the node-local gateway range → NXDOMAIN
    assert.equal(ptr('10.0.1.99', FRONT), RCODE.NXDOMAIN);
    assert.equal(ptr('172.31.0.7', FRONT), RCODE.NXDOMAIN);
    assert.equal(ptr('192.0.2.1', FRONT), 'forward');
    // every PTR target resolves forward to the address it came from
    for (const c of [FRONT, BACK, VAULT]) {
      for (const e of view.endpoints.filter((x) => c.networkIds.includes(x.networkId))) {
        const t = ptr(e.ip, c);
        assert.equal(typeof t, 'string');
        assert.deepEqual(addrs(resolve(A(t as string), c, view)), [e.ip], `${e.ip} → ${String(t)}`);
      }
      for (const s of view.services) {
        for (const v of s.vips.filter((x) => c.networkIds.includes(x.networkId))) {
          assert.equal(ptr(v.ip, c), s.name);
          assert.deepEqual(addrs(resolve(A(s.name), c, view)), [v.ip]);
        }
      }
    }
    // an A question for a reverse name we own has no A data
    const r = resolve(A(reverseName('10.0.1.10')), FRONT, view);
    assert.deepEqual(r, { action: 'answer', rcode: RCODE.NOERROR, answers: [] });
  });

  test('other types for our names get an empty NOERROR; ANY gets the addresses', () => {
    for (const type of [TYPE.AAAA, TYPE.MX, TYPE.TXT, TYPE.SRV, TYPE.PTR]) {
      assert.deepEqual(resolve({ name: 'web', type }, FRONT, view), { action: 'answer', rcode: RCODE.NOERROR, answers: [] });
    }
    assert.deepEqual(addrs(resolve({ name: 'web', type: TYPE.ANY }, FRONT, view)), ['10.0.1.2']);
    assert.equal(rcodeOf(resolve({ name: 'nothing', type: TYPE.AAAA }, FRONT, view)), RCODE.NXDOMAIN);
  });

  test('a known name without running tasks is NODATA, not NXDOMAIN', () => {
    const v = fixture();
    v.endpoints = v.endpoints.map((e) => (e.serviceId === 's-api' ? { ...e, running: false } : e));
    assert.deepEqual(resolve(A('api'), BACK, v), { action: 'answer', rcode: RCODE.NOERROR, answers: [] });
    assert.equal(rcodeOf(resolve(A('tasks.api'), BACK, v)), RCODE.NOERROR);
    assert.deepEqual(addrs(resolve(A('tasks.web'), BACK, v)), ['10.0.2.10']);
  });

  test('unknown single labels are NXDOMAIN; other names are forwarded, except for internal-only clients', () => {
    assert.equal(rcodeOf(resolve(A('nothing'), FRONT, view)), RCODE.NXDOMAIN);
    assert.equal(rcodeOf(resolve(A('localhost'), FRONT, view)), RCODE.NXDOMAIN);
    assert.equal(rcodeOf(resolve(A('example.com'), FRONT, view)), 'forward');
    assert.equal(rcodeOf(resolve(A('example.com.'), BOTH, view)), 'forward');
    assert.equal(rcodeOf(resolve(A(''), FRONT, view)), 'forward');
    assert.equal(rcodeOf(resolve(A('example.com'), { networkIds: [] }, view)), 'forward');
    assert.equal(rcodeOf(resolve(A('example.com'), VAULT, view)), RCODE.REFUSED);
    assert.equal(rcodeOf(resolve(A('nothing'), VAULT, view)), RCODE.NXDOMAIN);
    assert.equal(rcodeOf(resolve(A('example.com'), { networkIds: ['vault', 'front'] }, view)), 'forward');
    // a label with an escaped dot is never one of our (dotted) names
    assert.equal(rcodeOf(resolve(A('web\\.1\\.aaa111'), FRONT, view)), RCODE.NXDOMAIN);
    assert.equal(rcodeOf(resolve(A('tasks\\.web'), FRONT, view)), RCODE.NXDOMAIN);
  });

  test('the ingress network offers no discovery', () => {
    assert.equal(rcodeOf(resolve(A('web'), INGRESS_ONLY, view)), RCODE.NXDOMAIN);
    assert.equal(rcodeOf(resolve(A('tasks.web'), INGRESS_ONLY, view)), 'forward');
    assert.equal(rcodeOf(resolve({ name: reverseName('10.0.255.10'), type: TYPE.PTR }, INGRESS_ONLY, view)), 'forward');
    assert.equal(rcodeOf(resolve(A('example.com'), INGRESS_ONLY, view)), 'forward');
    assert.deepEqual(addrs(resolve(A('web'), { networkIds: ['ingress', 'back'] }, view)), ['10.0.2.2']);
  });

  test('scale: 20,000 endpoints index quickly and queries stay cheap', () => {
    const v: NetView = { ...fixture(), endpoints: [], services: [] };
    for (let s = 0; s < 200; s++) {
      const netId = s % 2 === 0 ? 'front' : 'back';
      const third = s % 2 === 0 ? 1 : 2;
      v.services.push(svc(`s${s}`, `svc${s}`, s % 4 < 2 ? 'vip' : 'dnsrr', s % 4 < 2 ? [[netId, `10.0.${third}.${s}`]] : []));
      for (let t = 0; t < 100; t++) v.endpoints.push(ep(netId, `s${s}`, `svc${s}`, t, `t${s}x${t}`, `10.${100 + s}.${t}.${third}`));
    }
    let t0 = performance.now();
    indexView(v);
    const buildMs = performance.now() - t0;
    t0 = performance.now();
    for (let i = 0; i < 10_000; i++) {
      const r = resolve(A(`svc${i % 200}`), BOTH, v, { rotation: i });
      assert.equal(r.action, 'answer');
    }
    const queryMs = performance.now() - t0;
    // Guards against accidental quadratic work, not figures: the build took 2.9 s at load 40 on 2 cores.
    assert.ok(buildMs < 20_000, `index build ${buildMs.toFixed(0)} ms`);
    assert.ok(queryMs < 20_000, `10k queries ${queryMs.toFixed(0)} ms`);
    assert.equal(addrs(resolve(A('tasks.svc3'), BOTH, v)).length, 100);
  });

  test('the index is built once per view object', () => {
    assert.equal(indexView(view), indexView(view));
    assert.notEqual(indexView(fixture()), indexView(view));
    assert.deepEqual(addrs(resolve(A('web'), FRONT, indexView(view))), ['10.0.1.2']);
  });

  test('before the data plane applies a view: removals count at once, unprogrammed additions wait', () => {
    const applied = fixture();
    const next = fixture();
    // api task 2 is being stopped (not running any more); web task 2 became running (it was listed, so
    // its ARP/FDB entries exist); a new api task appears already running on another node (no entries yet).
    next.endpoints = next.endpoints.map((e) => (e.taskId === 'ddd444' ? { ...e, running: false } : e.taskId === 'bbb222' ? { ...e, running: true } : e));
    next.endpoints.push({ ...ep('back', 's-api', 'api', 5, 'jjj000', '10.0.2.24'), nodeId: 'node2', vtep: '192.168.0.2' });
    const interim = viewBeforeApply(applied, next);
    const tasksApi = (v: NetView) => addrs(resolve(A('tasks.api'), BACK, v)).sort();
    assert.deepEqual(tasksApi(interim), ['10.0.2.20', '10.0.2.22']);
    assert.deepEqual(addrs(resolve(A('tasks.web'), FRONT, interim)).sort(), ['10.0.1.10', '10.0.1.11']);
    assert.deepEqual(tasksApi(next), ['10.0.2.20', '10.0.2.22', '10.0.2.24']);
    // the same address moved to another node (new VTEP) is not reachable until applied either
    const moved = fixture();
    moved.endpoints = moved.endpoints.map((e) => (e.taskId === 'ccc333' ? { ...e, vtep: '192.168.0.9' } : e));
    assert.deepEqual(tasksApi(viewBeforeApply(applied, moved)), ['10.0.2.21', '10.0.2.22']);
    // nothing to hold back: the view itself; no view applied yet: the view itself
    assert.equal(viewBeforeApply(applied, applied), applied);
    assert.equal(viewBeforeApply(null, next), next);
    // pure: the inputs are unchanged
    assert.equal(next.endpoints.find((e) => e.taskId === 'jjj000')!.running, true);
  });
});

test('parseResolvConf keeps IPv4 nameservers in order', () => {
  assert.deepEqual(parseResolvConf('# c\nsearch x\nnameserver 10.255.255.53\nnameserver ::1\n  nameserver 127.0.0.53 # local\nnameserver bogus\n'), [
    '10.255.255.53',
    '127.0.0.53',
  ]);
});

// ---------------------------------------------------------------------------------------------------------
// A real server on loopback

const KNOWN = '127.0.0.1';
const KNOWN_BACK = '127.0.0.2';
const STRANGER = '127.0.0.3';

function clientInfo(ip: string): DnsClient | undefined {
  if (ip === KNOWN) return { networkIds: ['front', 'back'], taskId: 'aaa111' };
  if (ip === KNOWN_BACK) return { networkIds: ['back'] };
  return undefined;
}

function udpExchange(port: number, msg: Uint8Array, opts: { from?: string; timeoutMs?: number } = {}): Promise<Buffer | undefined> {
  return new Promise((res) => {
    const s = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      s.close();
      res(undefined);
    }, opts.timeoutMs ?? 2000);
    s.on('message', (m) => {
      clearTimeout(timer);
      s.close();
      res(m);
    });
    s.bind({ address: opts.from ?? KNOWN, port: 0 }, () => s.send(msg, port, '127.0.0.1'));
  });
}

async function udpQuery(
  port: number,
  name: string,
  type: number = TYPE.A,
  opts: { from?: string; edns?: boolean; id?: number; timeoutMs?: number } = {},
): Promise<DnsMessage | undefined> {
  const id = opts.id ?? 4242;
  const r = await udpExchange(port, encodeQuery({ id, name, type, ...(opts.edns ? { edns: { udpSize: 4096 } } : {}) }), opts);
  if (!r) return undefined;
  const m = decodeMessage(r);
  assert.equal(m.id, id);
  assert.equal(m.qr, true);
  return m;
}

/** Sends the given bytes over one TCP connection and collects `expect` framed responses. */
function tcpExchange(port: number, chunks: Uint8Array[], expect: number, from = KNOWN, timeoutMs = 3000): Promise<DnsMessage[]> {
  return new Promise((res, rej) => {
    const out: DnsMessage[] = [];
    const d = new TcpDeframer();
    const s = net.connect({ host: '127.0.0.1', port, localAddress: from });
    const timer = setTimeout(() => {
      s.destroy();
      res(out);
    }, timeoutMs);
    s.on('error', rej);
    s.on('connect', async () => {
      for (const c of chunks) {
        s.write(c);
        await new Promise((r) => setImmediate(r));
      }
    });
    s.on('data', (b: Buffer) => {
      for (const m of d.push(new Uint8Array(b))) out.push(decodeMessage(m));
      if (out.length >= expect) {
        clearTimeout(timer);
        s.destroy();
        res(out);
      }
    });
  });
}

function addresses(m: DnsMessage | undefined): string[] {
  assert.ok(m, 'an answer');
  return m.answers.map((a) => (a.data.kind === 'a' ? a.data.address : '?'));
}

/** A fake upstream resolver on loopback (UDP and TCP on one port) that records the queries it sees. */
class FakeUpstream {
  udp = dgram.createSocket('udp4');
  tcp = net.createServer();
  port = 0;
  seen: { transport: 'udp' | 'tcp'; id: number; name: string }[] = [];
  conns = new Set<net.Socket>();
  constructor(private readonly mode: 'answer' | 'silent' | 'servfail' | 'spoof' | 'big') {}

  answer(q: Uint8Array): Uint8Array | undefined {
    const p = parseQuery(q);
    if (p.kind !== 'query') return undefined;
    const name = p.query.question.name;
    if (this.mode === 'servfail') return encodeResponse(p.query, { rcode: RCODE.SERVFAIL, ra: true }, 65535);
    const n = this.mode === 'big' ? 200 : 1;
    const answers = Array.from({ length: n }, (_, i) => aRecord(name, `192.0.2.${(i % 250) + 1}`, 300));
    return encodeResponse(p.query, { rcode: RCODE.NOERROR, ra: true, answers }, 65535);
  }

  async start(): Promise<void> {
    await new Promise<void>((r) => this.udp.bind({ address: '127.0.0.1', port: 0 }, () => r()));
    this.port = this.udp.address().port;
    const spoofer = dgram.createSocket('udp4');
    this.udp.on('message', (m, r) => {
      const h = decodeHeader(m);
      const p = parseQuery(m);
      this.seen.push({ transport: 'udp', id: h?.id ?? -1, name: p.kind === 'query' ? p.query.question.name : '?' });
      if (this.mode === 'silent') return;
      const a = this.answer(m);
      if (!a) return;
      if (this.mode === 'spoof')
        spoofer.send(a, r.port, r.address); // right id, wrong source port
      else this.udp.send(a, r.port, r.address);
    });
    this.tcp.on('connection', (s) => {
      this.conns.add(s);
      s.on('close', () => this.conns.delete(s));
      const d = new TcpDeframer();
      s.on('data', (b: Buffer) => {
        for (const m of d.push(new Uint8Array(b))) {
          const h = decodeHeader(m);
          const p = parseQuery(m);
          this.seen.push({ transport: 'tcp', id: h?.id ?? -1, name: p.kind === 'query' ? p.query.question.name : '?' });
          if (this.mode === 'silent') continue;
          const a = this.answer(m);
          if (a) s.write(frameTcp(a));
        }
      });
    });
    await new Promise<void>((r) => this.tcp.listen({ host: '127.0.0.1', port: this.port }, () => r()));
    this.spoofer = spoofer;
  }
  spoofer: dgram.Socket | undefined;

  async close(): Promise<void> {
    for (const c of this.conns) c.destroy();
    await new Promise<void>((r) => this.udp.close(() => r()));
    await new Promise<void>((r) => this.tcp.close(() => r()));
    this.spoofer?.close();
  }
}

describe('DnsServer on loopback', () => {
  let server: DnsServer;
  let up: FakeUpstream;
  let port = 0;

  before(async () => {
    up = new FakeUpstream('answer');
    await up.start();
    server = new DnsServer({ address: '127.0.0.1', port: 0, upstreams: [`127.0.0.1:${up.port}`], clientInfo, forwardTimeoutMs: 500 });
    await server.start();
    server.setView(fixture());
    port = server.port;
  });

  after(async () => {
    await server.close();
    await up.close();
  });

  test('UDP: an authoritative answer with TTL 0, id and question echoed, per-client scoping', async () => {
    const m = await udpQuery(port, 'Web', TYPE.A, { id: 0x7777 });
    assert.ok(m);
    assert.equal(m.aa, true);
    assert.equal(m.ra, true);
    assert.equal(m.rd, true);
    assert.equal(m.rcode, RCODE.NOERROR);
    assert.deepEqual(m.questions, [{ name: 'Web', type: TYPE.A, class: CLASS.IN }]);
    assert.deepEqual(m.answers, [aRecord('Web', '10.0.1.2', 0)]);
    assert.deepEqual(addresses(await udpQuery(port, 'web', TYPE.A, { from: KNOWN_BACK })), ['10.0.2.2']);
    assert.deepEqual(addresses(await udpQuery(port, 'tasks.api', TYPE.A, { from: KNOWN_BACK })).sort(), ['10.0.2.20', '10.0.2.21', '10.0.2.22']);
    const nx = await udpQuery(port, 'nothing');
    assert.equal(nx?.rcode, RCODE.NXDOMAIN);
    assert.equal(nx?.aa, true);
    const ptr = await udpQuery(port, reverseName('10.0.2.30'), TYPE.PTR);
    assert.deepEqual(
      ptr?.answers.map((a) => (a.data.kind === 'name' ? a.data.target : '?')),
      ['db.1.ggg777'],
    );
    const edns = await udpQuery(port, 'web', TYPE.A, { edns: true });
    assert.equal(edns?.edns?.udpSize, 1232);
  });

  test('dnsrr answers rotate from query to query', async () => {
    const firsts = new Set<string>();
    for (let i = 0; i < 6; i++) firsts.add(addresses(await udpQuery(port, 'api', TYPE.A, { from: KNOWN_BACK }))[0]!);
    assert.equal(firsts.size, 3);
  });

  test('TCP: pipelined queries in one write and a query split byte by byte', async () => {
    const q1 = frameTcp(encodeQuery({ id: 1, name: 'web', type: TYPE.A }));
    const q2 = frameTcp(encodeQuery({ id: 2, name: 'db', type: TYPE.A }));
    const both = await tcpExchange(port, [Buffer.concat([q1, q2])], 2);
    assert.deepEqual(both.map((m) => [m.id, addresses(m)]).sort(), [
      [1, ['10.0.1.2']],
      [2, ['10.0.2.3']],
    ]);
    const q3 = frameTcp(encodeQuery({ id: 3, name: 'tasks.web', type: TYPE.A }));
    const split = await tcpExchange(
      port,
      [...q3].map((b) => new Uint8Array([b])),
      1,
    );
    assert.deepEqual(addresses(split[0]), ['10.0.1.10']);
  });

  test('busybox nslookup resolves through the server', { skip: !existsSync('/bin/busybox') && 'no /bin/busybox' }, async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number; out: string }>((res) =>
        execFile('/bin/busybox', ['nslookup', ...args, `127.0.0.1:${port}`], { timeout: 10_000 }, (e, stdout, stderr) =>
          res({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
        ),
      );
    const web = await run(['web']);
    assert.equal(web.code, 0, web.out);
    assert.match(web.out, /Address:\s*10\.0\.1\.2\b/);
    const task = await run(['web.1.aaa111']);
    assert.match(task.out, /Address:\s*10\.0\.1\.10\b/);
    const ptr = await run(['10.0.1.10']);
    assert.match(ptr.out, /name = web\.1\.aaa111/);
    const nx = await run(['nothing']);
    assert.notEqual(nx.code, 0);
    assert.match(nx.out, /NXDOMAIN/);
    const fwd = await run(['example.org']);
    assert.match(fwd.out, /Address:\s*192\.0\.2\.1\b/);
  });

  test('truncation over UDP (512 without EDNS, our 1232 with it); TCP carries everything', async () => {
    const v = fixture();
    for (let i = 0; i < 120; i++) v.endpoints.push(ep('back', 's-api', 'api', 10 + i, `t${i}`, `10.0.2.${100 + i}`));
    server.setView(v);
    try {
      const plain = await udpExchange(port, encodeQuery({ id: 9, name: 'api', type: TYPE.A }), { from: KNOWN_BACK });
      assert.ok(plain && plain.length <= 512);
      const pm = decodeMessage(plain);
      assert.equal(pm.tc, true);
      assert.ok(pm.answers.length > 10 && pm.answers.length < 123);
      const big = await udpExchange(port, encodeQuery({ id: 9, name: 'api', type: TYPE.A, edns: { udpSize: 4096 } }), { from: KNOWN_BACK });
      assert.ok(big && big.length > 512 && big.length <= 1232);
      assert.equal(decodeMessage(big).tc, true);
      const [all] = await tcpExchange(port, [frameTcp(encodeQuery({ id: 9, name: 'api', type: TYPE.A }))], 1, KNOWN_BACK);
      assert.equal(all?.tc, false);
      assert.equal(all?.answers.length, 123);
      assert.ok(server.stats().truncated >= 2);
    } finally {
      server.setView(fixture());
    }
  });

  test('setView changes the answers for the very next query', async () => {
    assert.deepEqual(addresses(await udpQuery(port, 'db', TYPE.A, { from: KNOWN_BACK })), ['10.0.2.3']);
    const v = fixture();
    v.services = v.services.map((s) => (s.id === 's-db' ? { ...s, vips: [{ networkId: 'back', ip: '10.0.2.99' }] } : s));
    v.endpoints = v.endpoints.map((e) => (e.taskId === 'ccc333' ? { ...e, running: false } : e));
    server.setView(v);
    try {
      assert.deepEqual(addresses(await udpQuery(port, 'db', TYPE.A, { from: KNOWN_BACK })), ['10.0.2.99']);
      assert.deepEqual(addresses(await udpQuery(port, 'tasks.api', TYPE.A, { from: KNOWN_BACK })).sort(), ['10.0.2.21', '10.0.2.22']);
      v.services = [];
      server.setView({ ...v, services: [], endpoints: [] });
      assert.equal((await udpQuery(port, 'db', TYPE.A, { from: KNOWN_BACK }))?.rcode, RCODE.NXDOMAIN);
    } finally {
      server.setView(fixture());
    }
  });

  test('unknown sources are REFUSED (UDP and TCP); their malformed packets get nothing', async () => {
    const r = await udpQuery(port, 'web', TYPE.A, { from: STRANGER });
    assert.equal(r?.rcode, RCODE.REFUSED);
    assert.deepEqual(r?.answers, []);
    const fwd = await udpQuery(port, 'example.org', TYPE.A, { from: STRANGER });
    assert.equal(fwd?.rcode, RCODE.REFUSED);
    const [t] = await tcpExchange(port, [frameTcp(encodeQuery({ id: 5, name: 'web', type: TYPE.A }))], 1, STRANGER);
    assert.equal(t?.rcode, RCODE.REFUSED);
    const junk = encodeQuery({ id: 5, name: 'web', type: TYPE.A }).subarray(0, 15);
    assert.equal(await udpExchange(port, junk, { from: STRANGER, timeoutMs: 300 }), undefined);
  });

  test('forwarding over UDP: the upstream sees another id, the client gets its own back', async () => {
    const before = up.seen.length;
    const m = await udpQuery(port, 'example.org', TYPE.A, { id: 0x0101 });
    assert.deepEqual(addresses(m), ['192.0.2.1']);
    assert.equal(m?.aa, false);
    assert.equal(m?.answers[0]?.ttl, 300); // relayed as the upstream said
    const seen = up.seen.slice(before);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.transport, 'udp');
    assert.equal(seen[0]!.name, 'example.org');
    // concurrent forwards each get their own answer back
    const names = Array.from({ length: 20 }, (_, i) => `host${i}.example.org`);
    const rs = await Promise.all(names.map((n, i) => udpQuery(port, n, TYPE.A, { id: 1000 + i })));
    rs.forEach((r, i) => {
      assert.equal(r?.answers[0]?.name, names[i]);
    });
    // the upstream saw 20 distinct ids
    assert.equal(new Set(up.seen.slice(-20).map((s) => s.id)).size, 20);
    assert.ok(server.stats().forwarded >= 21);
    assert.equal(server.stats().inflightForwards, 0);
  });

  test('forwarding over TCP goes to the upstream over TCP', async () => {
    const before = up.seen.length;
    const [m] = await tcpExchange(port, [frameTcp(encodeQuery({ id: 0x2222, name: 'example.net', type: TYPE.A }))], 1);
    assert.equal(m?.id, 0x2222);
    assert.deepEqual(addresses(m), ['192.0.2.1']);
    assert.deepEqual(
      up.seen.slice(before).map((s) => s.transport),
      ['tcp'],
    );
  });

  test('malformed packets get FORMERR or nothing, and never take the server down', async () => {
    // a readable header with a broken body → FORMERR with the id
    const broken = encodeQuery({ id: 0x3333, name: 'web', type: TYPE.A }).subarray(0, 16);
    const f = await udpExchange(port, broken);
    assert.ok(f);
    const fh = decodeHeader(f)!;
    assert.equal(fh.id, 0x3333);
    assert.equal(fh.rcode, RCODE.FORMERR);
    // a response, or less than a header → nothing
    const resp = encodeQuery({ id: 1, name: 'web', type: TYPE.A });
    resp[2]! |= 0x80;
    assert.equal(await udpExchange(port, resp, { timeoutMs: 300 }), undefined);
    assert.equal(await udpExchange(port, new Uint8Array(3), { timeoutMs: 300 }), undefined);
    // a compression loop
    const loop = new Uint8Array([0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]);
    assert.equal(decodeHeader((await udpExchange(port, loop))!)!.rcode, RCODE.FORMERR);
    // NOTIMP for another opcode, FORMERR-free BADVERS for EDNS version 1
    const status = encodeQuery({ id: 4, name: 'web', type: TYPE.A });
    status[2] = (status[2]! & 0x87) | (2 << 3);
    assert.equal(decodeHeader((await udpExchange(port, status))!)!.rcode, RCODE.NOTIMP);
    const v1 = decodeMessage((await udpExchange(port, encodeQuery({ id: 6, name: 'web', type: TYPE.A, edns: { version: 1 } })))!);
    assert.equal((v1.edns!.extRcode << 4) | v1.rcode, RCODE.BADVERS);
    // zone transfers are refused
    assert.equal((await udpQuery(port, 'web', TYPE.AXFR))?.rcode, RCODE.REFUSED);

    // seeded junk over UDP and TCP
    const rng = new Rng(99);
    const valid = encodeQuery({ id: 1, name: 'tasks.web', type: TYPE.A, edns: {} });
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind({ address: KNOWN, port: 0 }, () => r()));
    const tcpJunk: Uint8Array[] = [];
    for (let i = 0; i < 1500; i++) {
      let b: Uint8Array;
      if (i % 2 === 0) {
        b = new Uint8Array(rng.u32() % 64);
        for (let j = 0; j < b.length; j++) b[j] = rng.u32() % 256;
      } else {
        b = valid.slice(0, rng.u32() % (valid.length + 1));
        for (let k = 0; k < 3 && b.length > 0; k++) b[rng.u32() % b.length] = rng.u32() % 256;
        if (b.length >= 3) b[2]! &= 0x7f; // a query, so that it is parsed further
      }
      sock.send(b, port, '127.0.0.1');
      if (i % 4 === 0) tcpJunk.push(frameTcp(b));
      if (i % 100 === 0) await new Promise((r) => setImmediate(r));
    }
    sock.close();
    await tcpExchange(port, tcpJunk, Number.MAX_SAFE_INTEGER, KNOWN, 500);
    // raw garbage that is not even framed sensibly
    await tcpExchange(port, [new Uint8Array([0xff, 0xff, 1, 2, 3])], 1, KNOWN, 200);
    await tcpExchange(port, [new Uint8Array([0, 0])], 1, KNOWN, 200);
    // still serving
    assert.deepEqual(addresses(await udpQuery(port, 'web')), ['10.0.1.2']);
    const [t] = await tcpExchange(port, [frameTcp(encodeQuery({ id: 8, name: 'web', type: TYPE.A }))], 1);
    assert.deepEqual(addresses(t), ['10.0.1.2']);
    const st = server.stats();
    assert.ok(st.formerr > 10 && st.dropped > 10, JSON.stringify(st));
  });
});

describe('DnsServer forwarding failures', () => {
  const servers: DnsServer[] = [];
  const ups: FakeUpstream[] = [];
  after(async () => {
    for (const s of servers) await s.close();
    for (const u of ups) await u.close();
  });
  async function upstream(mode: ConstructorParameters<typeof FakeUpstream>[0]): Promise<FakeUpstream> {
    const u = new FakeUpstream(mode);
    await u.start();
    ups.push(u);
    return u;
  }
  async function serve(upstreams: string[], over: Partial<ConstructorParameters<typeof DnsServer>[0]> = {}): Promise<DnsServer> {
    const s = new DnsServer({ address: '127.0.0.1', port: 0, upstreams, clientInfo, forwardTimeoutMs: 200, ...over });
    await s.start();
    s.setView(fixture());
    servers.push(s);
    return s;
  }

  test('a silent upstream → SERVFAIL after the timeout (UDP and TCP)', async () => {
    const silent = await upstream('silent');
    const s = await serve([`127.0.0.1:${silent.port}`]);
    const t0 = Date.now();
    const m = await udpQuery(s.port, 'example.org');
    assert.equal(m?.rcode, RCODE.SERVFAIL);
    assert.ok(Date.now() - t0 >= 180);
    const [t] = await tcpExchange(s.port, [frameTcp(encodeQuery({ id: 3, name: 'example.org', type: TYPE.A }))], 1);
    assert.equal(t?.rcode, RCODE.SERVFAIL);
    assert.equal(s.stats().forwardTimeouts, 2);
    assert.equal(s.stats().inflightForwards, 0);
    // local names are unaffected
    assert.deepEqual(addresses(await udpQuery(s.port, 'web')), ['10.0.1.2']);
  });

  test('the next upstream is tried after a timeout or a SERVFAIL', async () => {
    const silent = await upstream('silent');
    const failing = await upstream('servfail');
    const good = await upstream('answer');
    const s = await serve([`127.0.0.1:${silent.port}`, `127.0.0.1:${failing.port}`, `127.0.0.1:${good.port}`]);
    assert.deepEqual(addresses(await udpQuery(s.port, 'example.org')), ['192.0.2.1']);
    const [t] = await tcpExchange(s.port, [frameTcp(encodeQuery({ id: 3, name: 'example.org', type: TYPE.A }))], 1);
    assert.deepEqual(addresses(t), ['192.0.2.1']);
    assert.equal(silent.seen.length, 2);
    assert.equal(failing.seen.length, 2);
  });

  test('an answer from the wrong source port is ignored (→ SERVFAIL)', async () => {
    const spoof = await upstream('spoof');
    const s = await serve([`127.0.0.1:${spoof.port}`]);
    assert.equal((await udpQuery(s.port, 'example.org'))?.rcode, RCODE.SERVFAIL);
    assert.equal(spoof.seen.length, 1);
  });

  test('an upstream answer larger than the client accepts is relayed as TC', async () => {
    const big = await upstream('big');
    const s = await serve([`127.0.0.1:${big.port}`]);
    const m = await udpQuery(s.port, 'many.example.org');
    assert.equal(m?.tc, true);
    assert.equal(m?.answers.length, 0);
    const [t] = await tcpExchange(s.port, [frameTcp(encodeQuery({ id: 3, name: 'many.example.org', type: TYPE.A }))], 1);
    assert.equal(t?.answers.length, 200);
  });

  test('at most maxInflightForwards forwards at once; the rest get SERVFAIL at once', async () => {
    const silent = await upstream('silent');
    const s = await serve([`127.0.0.1:${silent.port}`], { maxInflightForwards: 2, forwardTimeoutMs: 400 });
    const t0 = Date.now();
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, i) => udpQuery(s.port, `h${i}.example.org`, TYPE.A, { id: i }).then((m) => ({ m, ms: Date.now() - t0 }))),
    );
    assert.ok(results.every((r) => r.m?.rcode === RCODE.SERVFAIL));
    assert.equal(results.filter((r) => r.ms < 300).length, 3);
    assert.equal(silent.seen.length, 2);
  });

  test('no upstreams → SERVFAIL for names that are not ours; no view yet → SERVFAIL for ours', async () => {
    const s = new DnsServer({ address: '127.0.0.1', port: 0, upstreams: [], clientInfo });
    await s.start();
    servers.push(s);
    assert.equal((await udpQuery(s.port, 'web'))?.rcode, RCODE.SERVFAIL);
    assert.equal((await udpQuery(s.port, 'example.org'))?.rcode, RCODE.SERVFAIL);
    s.setView(fixture());
    assert.deepEqual(addresses(await udpQuery(s.port, 'web')), ['10.0.1.2']);
  });

  test('default upstreams come from resolv.conf, without our own address', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'shoal-dns-'));
    try {
      const probe = new DnsServer({ address: '127.0.0.1', port: 0, clientInfo, resolvConf: join(dir, 'none') });
      await probe.start();
      const own = probe.port;
      assert.deepEqual(probe.stats().upstreams, []);
      await probe.close();
      // No traffic is sent to these addresses: the test only reads the parsed list back.
      await writeFile(join(dir, 'resolv.conf'), `nameserver 198.51.100.7\nnameserver 127.0.0.53\nnameserver fe80::1\nnameserver 198.51.100.7\n`);
      const s = new DnsServer({ address: '127.0.0.1', port: own, clientInfo, resolvConf: join(dir, 'resolv.conf') });
      await s.start();
      servers.push(s);
      assert.deepEqual(s.stats().upstreams, ['198.51.100.7:53', '127.0.0.53:53']);
      // our own address:port is never an upstream (it would loop)
      const s2 = new DnsServer({ address: '127.0.0.1', port: 0, clientInfo, upstreams: [`127.0.0.1:${own}`] });
      await s2.start();
      servers.push(s2);
      assert.deepEqual(s2.stats().upstreams, [`127.0.0.1:${own}`]); // another port: not ourselves
      const ownPort = s2.port;
      await s2.close();
      const s3 = new DnsServer({ address: '127.0.0.1', port: ownPort, clientInfo, upstreams: [`127.0.0.1:${ownPort}`, '198.51.100.7'] });
      await s3.start();
      servers.push(s3);
      assert.deepEqual(s3.stats().upstreams, ['198.51.100.7:53']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('TCP connections beyond the limit are closed; close() frees the port', async () => {
    const s = new DnsServer({ address: '127.0.0.1', port: 0, upstreams: [], clientInfo, maxTcpConnections: 2 });
    await s.start();
    s.setView(fixture());
    const held: net.Socket[] = [];
    for (let i = 0; i < 2; i++) {
      const c = net.connect({ host: '127.0.0.1', port: s.port });
      c.on('error', () => {});
      await new Promise((r) => c.once('connect', r));
      held.push(c);
    }
    // the server counts a connection once its accept has been handled
    for (const end = Date.now() + 2000; s.stats().tcpConnections < 2 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 5));
    assert.equal(s.stats().tcpConnections, 2);
    const third = net.connect({ host: '127.0.0.1', port: s.port });
    third.on('error', () => {});
    await new Promise((r) => third.once('close', r));
    for (const c of held) c.destroy();
    const p = s.port;
    await s.close();
    const again = new DnsServer({ address: '127.0.0.1', port: p, upstreams: [], clientInfo });
    await again.start();
    assert.equal(again.port, p);
    await again.close();
  });
});
