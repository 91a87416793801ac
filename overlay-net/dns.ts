// Shoal's embedded DNS resolver. Every worker agent runs one on NODE_LOCAL.gwBridgeAddr:53 (UDP and TCP) in
// the node's namespace; each task's resolv.conf points there and its queries arrive from the task's
// node-local gateway address, which the agent maps to the task (`clientInfo`).
//
// Names served (case-insensitive, with or without the trailing dot), always scoped to the networks of the
// querying task, ingress excluded (the routing mesh offers no discovery), first matching network in the
// client's order:
//   <service> and the service's network aliases → its VIP on that network (endpoint mode vip), or the
//       addresses of its running tasks there (dnsrr, rotated per query);
//   tasks.<service> / tasks.<alias>            → the addresses of its running tasks there (rotated);
//   <service>.<slot>.<task id> and <task id>   → that task's address there (whether running yet or not:
//       a task can look itself up during its healthcheck's start period);
//   an endpoint's own aliases                  → the addresses of the running tasks that carry it;
//   d.c.b.a.in-addr.arpa                       → the task name or the service name owning a.b.c.d on one of
//       the client's networks (so PTR and forward records agree).
// A known name with no address of the asked type gets an empty NOERROR (NODATA); an unknown single-label
// name, and an unknown address in the client's subnets or the gateway bridge, gets NXDOMAIN; anything else
// is forwarded to the node's upstream resolvers — unless every network of the client is internal, which
// gets REFUSED (an internal network has no way out, DNS included). TTLs are 0: nothing downstream caches
// an answer, so answers follow the view as soon as the agent installs it. Negative answers carry no SOA:
// without one, RFC 2308 resolvers do not cache them either.
import { randomInt } from 'node:crypto';
import * as dgram from 'node:dgram';
import { readFile } from 'node:fs/promises';
import * as net from 'node:net';
import {
  aRecord,
  asciiLower,
  CLASS,
  decodeHeaderAndQuestion,
  encodeResponse,
  frameTcp,
  nameToLabels,
  parseQuery,
  ptrRecord,
  RCODE,
  TcpDeframer,
  TYPE,
  udpLimit,
  UDP_MIN_SIZE,
} from './dns-wire.ts';
import type { DnsQuery, DnsQuestion, DnsRecord, QueryParse, ResponseParts } from './dns-wire.ts';
import { NODE_LOCAL } from '../api/netview.ts';
import type { Endpoint, NetInfo, NetView, SvcInfo } from '../api/netview.ts';

/** TTL of every record we answer. */
export const DNS_TTL = 0;

export interface DnsClient {
  /** The networks the querying task is attached to, in its attachment order. */
  networkIds: string[];
  taskId?: string;
}

export type Resolution =
  /** Answer authoritatively (NOERROR with records or empty, NXDOMAIN, or REFUSED). */
  | { action: 'answer'; rcode: number; answers: DnsRecord[] }
  /** Not ours: ask the upstream resolvers. */
  | { action: 'forward' };

// ---------------------------------------------------------------------------------------------------------
// Index: built once per view, read by every query

interface SvcOnNet {
  svc: SvcInfo;
  vip?: string;
  running: string[];
}

interface NetIndex {
  info?: NetInfo;
  /** Service names, then service aliases → services. */
  services: Map<string, SvcOnNet[]>;
  /** Task names and task ids → endpoint. */
  tasks: Map<string, Endpoint>;
  /** Endpoint aliases → addresses of running endpoints carrying them. */
  epAliases: Map<string, string[]>;
  /** `tasks.<x>` without the prefix: service names (from SvcInfo and from endpoints) and service aliases. */
  taskSets: Map<string, string[]>;
  /** Address → PTR target. */
  ptr: Map<string, string>;
  subnet?: { base: number; mask: number };
}

export class DnsIndex {
  /** @internal */
  readonly nets = new Map<string, NetIndex>();
  private constructor(readonly view: NetView) {}

  /** @internal */
  static build(view: NetView): DnsIndex {
    const idx = new DnsIndex(view);
    // Built with sets (views can hold thousands of tasks per service), frozen into arrays at the end.
    interface Building {
      n: NetIndex;
      epAliases: Map<string, Set<string>>;
      taskSets: Map<string, Set<string>>;
    }
    const building = new Map<string, Building>();
    const net = (id: string): Building => {
      let b = building.get(id);
      if (!b) {
        const n: NetIndex = { services: new Map(), tasks: new Map(), epAliases: new Map(), taskSets: new Map(), ptr: new Map() };
        b = { n, epAliases: new Map(), taskSets: new Map() };
        building.set(id, b);
        idx.nets.set(id, n);
      }
      return b;
    };
    const add = (m: Map<string, Set<string>>, k: string, v?: string): void => {
      let set = m.get(k);
      if (!set) m.set(k, (set = new Set()));
      if (v !== undefined) set.add(v);
    };
    for (const info of view.networks) {
      const { n } = net(info.id);
      n.info = info;
      const s = parseCidr(info.subnet);
      if (s) n.subnet = s;
    }
    const isIngress = (id: string): boolean => idx.nets.get(id)?.info?.ingress === true;

    // Running addresses per network and service id.
    const runningBySvc = new Map<string, Map<string, Set<string>>>();
    for (const ep of view.endpoints) {
      if (isIngress(ep.networkId)) continue;
      const b = net(ep.networkId);
      const n = b.n;
      if (validName(ep.taskName)) {
        const tn = asciiLower(ep.taskName);
        if (!n.tasks.has(tn) || ep.running) n.tasks.set(tn, ep);
        if (!n.ptr.has(ep.ip) || ep.running) n.ptr.set(ep.ip, ep.taskName);
      }
      const tid = asciiLower(ep.taskId);
      if (!n.tasks.has(tid) || ep.running) n.tasks.set(tid, ep);
      let bySvc = runningBySvc.get(ep.networkId);
      if (!bySvc) runningBySvc.set(ep.networkId, (bySvc = new Map()));
      // Known names without running tasks answer NODATA, not NXDOMAIN: their keys exist, empty.
      add(bySvc, ep.serviceId);
      add(b.taskSets, asciiLower(ep.serviceName));
      for (const a of ep.aliases) add(b.epAliases, asciiLower(a));
      if (!ep.running) continue;
      add(bySvc, ep.serviceId, ep.ip);
      add(b.taskSets, asciiLower(ep.serviceName), ep.ip);
      for (const a of ep.aliases) add(b.epAliases, asciiLower(a), ep.ip);
    }
    // Services, own names before aliases (a real name comes first when someone else uses it as an alias).
    const entries: { b: Building; e: SvcOnNet; aliases: string[] }[] = [];
    for (const svc of view.services) {
      const nets = new Set<string>();
      for (const v of svc.vips) nets.add(v.networkId);
      for (const a of svc.aliases) nets.add(a.networkId);
      for (const [netId, bySvc] of runningBySvc) if (bySvc.has(svc.id)) nets.add(netId);
      for (const netId of nets) {
        if (isIngress(netId)) continue;
        const vip = svc.endpointMode === 'vip' ? svc.vips.find((v) => v.networkId === netId)?.ip : undefined;
        const e: SvcOnNet = { svc, running: [...(runningBySvc.get(netId)?.get(svc.id) ?? [])], ...(vip ? { vip } : {}) };
        entries.push({ b: net(netId), e, aliases: svc.aliases.filter((a) => a.networkId === netId).flatMap((a) => a.aliases) });
      }
    }
    const addSvc = (n: NetIndex, key: string, e: SvcOnNet): void => {
      const l = n.services.get(key);
      if (!l) n.services.set(key, [e]);
      else if (!l.includes(e)) l.push(e);
    };
    for (const { b, e } of entries) {
      const key = asciiLower(e.svc.name);
      addSvc(b.n, key, e);
      add(b.taskSets, key);
      for (const ip of e.running) add(b.taskSets, key, ip);
      if (e.vip && validName(e.svc.name)) b.n.ptr.set(e.vip, e.svc.name); // a VIP's name wins over a task's
    }
    for (const { b, e, aliases } of entries) {
      for (const a of aliases) {
        const key = asciiLower(a);
        addSvc(b.n, key, e);
        add(b.taskSets, key);
        for (const ip of e.running) add(b.taskSets, key, ip);
      }
    }
    for (const b of building.values()) {
      for (const [k, v] of b.taskSets) b.n.taskSets.set(k, [...v]);
      for (const [k, v] of b.epAliases) b.n.epAliases.set(k, [...v]);
    }
    return idx;
  }
}

const indexCache = new WeakMap<NetView, DnsIndex>();

/** The lookup index of a view (built once per view object and cached). */
export function indexView(view: NetView): DnsIndex {
  let idx = indexCache.get(view);
  if (!idx) {
    idx = DnsIndex.build(view);
    indexCache.set(view, idx);
  }
  return idx;
}

function pushUnique<T>(list: T[], v: T): void {
  if (!list.includes(v)) list.push(v);
}

const PLAIN_NAME = /^[A-Za-z0-9_-]{1,63}(?:\.[A-Za-z0-9_-]{1,63})*$/;

function validName(name: string): boolean {
  if (name.length <= 253 && PLAIN_NAME.test(name)) return true;
  try {
    return nameToLabels(name).length > 0;
  } catch {
    return false;
  }
}

function ipToInt(ip: string): number | undefined {
  const p = ip.split('.');
  if (p.length !== 4) return undefined;
  let v = 0;
  for (const x of p) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(x) || Number(x) > 255) return undefined;
    v = v * 256 + Number(x);
  }
  return v;
}

function parseCidr(cidr: string): { base: number; mask: number } | undefined {
  const [ip, len] = cidr.split('/');
  const base = ipToInt(ip ?? '');
  const bits = Number(len);
  if (base === undefined || !Number.isInteger(bits) || bits < 0 || bits > 32) return undefined;
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return { base: (base & mask) >>> 0, mask };
}

function inSubnet(ip: number, s: { base: number; mask: number }): boolean {
  return (ip & s.mask) >>> 0 === s.base;
}

const GW_SUBNET = parseCidr(NODE_LOCAL.gwBridgeCidr)!;

// ---------------------------------------------------------------------------------------------------------
// Resolution (pure)

function rotate<T>(list: readonly T[], by: number): T[] {
  if (list.length < 2) return [...list];
  const k = ((by % list.length) + list.length) % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}

/** Addresses of `key` on one network: undefined when the name is unknown there, [] when it has none. */
function lookup(n: NetIndex, key: string, rotation: number): string[] | undefined {
  const svcs = n.services.get(key);
  if (svcs?.length === 1) {
    const e = svcs[0]!;
    if (e.svc.endpointMode === 'vip') return e.vip ? [e.vip] : [];
    return rotate(e.running, rotation);
  }
  if (svcs) {
    const out: string[] = [];
    let rr = false;
    for (const e of svcs) {
      if (e.svc.endpointMode === 'vip') {
        if (e.vip) pushUnique(out, e.vip);
      } else {
        rr = true;
        for (const ip of e.running) pushUnique(out, ip);
      }
    }
    return rr ? rotate(out, rotation) : out;
  }
  const ep = n.tasks.get(key);
  if (ep) return [ep.ip];
  const aliased = n.epAliases.get(key);
  if (aliased) return rotate(aliased, rotation);
  if (key.startsWith('tasks.')) {
    const set = n.taskSets.get(key.slice('tasks.'.length));
    if (set) return rotate(set, rotation);
  }
  return undefined;
}

function reverseIp(labels: string[]): string | undefined {
  if (labels.length !== 6 || labels[4] !== 'in-addr' || labels[5] !== 'arpa') return undefined;
  const ip = [labels[3], labels[2], labels[1], labels[0]].join('.');
  return ipToInt(ip) === undefined ? undefined : ip;
}

/**
 * Answers one question for one client from one view. Pure; `opts.rotation` picks where round-robin lists
 * start (the server passes a per-query counter). Pass the view itself or its `indexView()`: the index is
 * built once per view object either way.
 */
export function resolve(q: { name: string; type: number }, client: DnsClient, view: NetView | DnsIndex, opts: { rotation?: number } = {}): Resolution {
  const idx = view instanceof DnsIndex ? view : indexView(view);
  const rotation = opts.rotation ?? 0;
  let raw: string[];
  try {
    raw = nameToLabels(q.name);
  } catch {
    return { action: 'answer', rcode: RCODE.FORMERR, answers: [] };
  }
  const owner = q.name.endsWith('.') && !q.name.endsWith('\\.') ? q.name.slice(0, -1) : q.name;
  const labels = raw.map(asciiLower);
  const nets: NetIndex[] = [];
  let overlays = 0;
  let internal = 0;
  for (const id of client.networkIds) {
    const n = idx.nets.get(id);
    if (n?.info?.ingress) continue;
    overlays++;
    if (n?.info?.internal === true) internal++;
    if (n) nets.push(n);
  }
  const allInternal = overlays > 0 && internal === overlays;
  const notOurs = (): Resolution => (allInternal ? { action: 'answer', rcode: RCODE.REFUSED, answers: [] } : { action: 'forward' });
  if (labels.length === 0) return notOurs();
  const wantsA = q.type === TYPE.A || q.type === TYPE.ANY;

  const rev = reverseIp(labels);
  if (rev !== undefined) {
    for (const n of nets) {
      const target = n.ptr.get(rev);
      if (target === undefined) continue;
      const answers = q.type === TYPE.PTR || q.type === TYPE.ANY ? [ptrRecord(owner, target, DNS_TTL)] : [];
      return { action: 'answer', rcode: RCODE.NOERROR, answers };
    }
    const ipv = ipToInt(rev)!;
    if (inSubnet(ipv, GW_SUBNET) || nets.some((n) => n.subnet && inSubnet(ipv, n.subnet))) {
      return { action: 'answer', rcode: RCODE.NXDOMAIN, answers: [] };
    }
    return notOurs();
  }

  // A label holding an escaped dot can never be one of our names (and must not alias a dotted one).
  if (!labels.some((l) => l.includes('.'))) {
    const key = labels.join('.');
    let known = false;
    for (const n of nets) {
      const ips = lookup(n, key, rotation);
      if (ips === undefined) continue;
      known = true;
      if (ips.length === 0) continue;
      return { action: 'answer', rcode: RCODE.NOERROR, answers: wantsA ? ips.map((ip) => aRecord(owner, ip, DNS_TTL)) : [] };
    }
    if (known) return { action: 'answer', rcode: RCODE.NOERROR, answers: [] };
  }
  if (labels.length === 1) return { action: 'answer', rcode: RCODE.NXDOMAIN, answers: [] };
  return notOurs();
}

// ---------------------------------------------------------------------------------------------------------
// Server

export interface DnsServerOptions {
  address: string;
  port: number;
  /**
   * Upstream resolvers, `ip` or `ip:port` (IPv4). Default: the nameservers of `resolvConf`. Our own
   * address:port is never used (it would loop).
   */
  upstreams?: string[];
  /** Maps a query's source address to the task that sent it; undefined → REFUSED. */
  clientInfo: (srcIp: string) => DnsClient | undefined;
  /** How long to wait for one upstream before trying the next one (then SERVFAIL). Default 2000 ms. */
  forwardTimeoutMs?: number;
  /** Forwards in flight at once (UDP and TCP); beyond that, SERVFAIL at once. Default 256. */
  maxInflightForwards?: number;
  /** Default 64; further connections are closed at once. */
  maxTcpConnections?: number;
  /** A TCP connection with nothing in flight closes after this long. Default 10 s. */
  tcpIdleTimeoutMs?: number;
  /** Queries in flight on one TCP connection before it stops being read. Default 32. */
  maxTcpPipeline?: number;
  /** Default /etc/resolv.conf. */
  resolvConf?: string;
}

export interface DnsStats {
  queries: number;
  udpQueries: number;
  tcpQueries: number;
  /** Answered from the view (NOERROR or NXDOMAIN). */
  local: number;
  nxdomain: number;
  forwarded: number;
  forwardTimeouts: number;
  forwardErrors: number;
  servfail: number;
  refused: number;
  formerr: number;
  notimp: number;
  /** Messages not answered at all (unreadable, responses, malformed from unknown sources). */
  dropped: number;
  truncated: number;
  inflightForwards: number;
  tcpConnections: number;
  upstreams: string[];
}

interface Upstream {
  host: string;
  port: number;
}

interface UdpPending {
  id: number;
  query: DnsQuery;
  bytes: Uint8Array;
  limit: number;
  tried: number;
  upstream: Upstream;
  timer: NodeJS.Timeout;
  done: (resp?: Uint8Array) => void;
}

type Done = (resp?: Uint8Array) => void;

function once(f: Done): Done {
  let called = false;
  return (resp) => {
    if (called) return;
    called = true;
    f(resp);
  };
}

/** Parses `nameserver` lines (IPv4 only: the forwarding socket is IPv4). */
export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m && ipToInt(m[1]!) !== undefined) out.push(m[1]!);
  }
  return out;
}

function parseUpstream(s: string): Upstream | undefined {
  const m = /^([0-9.]+)(?::([0-9]{1,5}))?$/.exec(s.trim());
  if (!m || ipToInt(m[1]!) === undefined) return undefined;
  const port = m[2] === undefined ? 53 : Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host: m[1]!, port };
}

const MAX_TCP_UNREAD = 1 << 20;

const NO_VIEW = DnsIndex.build({ nodeId: '', vtep: '', networks: [], endpoints: [], services: [] });

export class DnsServer {
  private readonly opts: DnsServerOptions;
  private readonly forwardTimeoutMs: number;
  private readonly maxInflight: number;
  private index: DnsIndex | undefined;
  private upstreams: Upstream[] = [];
  private udp: dgram.Socket | undefined;
  private fwd: dgram.Socket | undefined;
  private tcp: net.Server | undefined;
  private readonly conns = new Set<net.Socket>();
  private readonly fwdTcp = new Set<net.Socket>();
  private readonly pending = new Map<number, UdpPending>();
  private inflight = 0;
  private rotation = 0;
  private boundPort = 0;
  private closed = false;
  private readonly st = {
    queries: 0,
    udpQueries: 0,
    tcpQueries: 0,
    local: 0,
    nxdomain: 0,
    forwarded: 0,
    forwardTimeouts: 0,
    forwardErrors: 0,
    servfail: 0,
    refused: 0,
    formerr: 0,
    notimp: 0,
    dropped: 0,
    truncated: 0,
  };

  constructor(opts: DnsServerOptions) {
    this.opts = opts;
    this.forwardTimeoutMs = opts.forwardTimeoutMs ?? 2000;
    this.maxInflight = opts.maxInflightForwards ?? 256;
  }

  /** The port actually bound (UDP and TCP), once started. */
  get port(): number {
    return this.boundPort;
  }

  async start(): Promise<void> {
    if (this.udp) throw new Error('DnsServer already started');
    let list = this.opts.upstreams;
    if (!list) {
      try {
        list = parseResolvConf(await readFile(this.opts.resolvConf ?? '/etc/resolv.conf', 'utf8'));
      } catch {
        list = [];
      }
    }
    // Bind UDP first; with port 0 TCP takes the same port, retried if someone holds it for TCP.
    for (let attempt = 0; ; attempt++) {
      const udp = dgram.createSocket({ type: 'udp4' });
      udp.on('error', () => {});
      await new Promise<void>((res, rej) => {
        udp.once('error', rej);
        udp.bind({ address: this.opts.address, port: this.opts.port, exclusive: true }, () => {
          udp.off('error', rej);
          res();
        });
      });
      const port = udp.address().port;
      const tcp = net.createServer({ pauseOnConnect: false }, (s) => this.onTcpConnection(s));
      try {
        await new Promise<void>((res, rej) => {
          tcp.once('error', rej);
          tcp.listen({ host: this.opts.address, port, exclusive: true }, () => {
            tcp.off('error', rej);
            res();
          });
        });
      } catch (e) {
        udp.close();
        if (this.opts.port === 0 && attempt < 10) continue;
        throw e;
      }
      tcp.on('error', () => {});
      this.udp = udp;
      this.tcp = tcp;
      this.boundPort = port;
      break;
    }
    this.upstreams = [];
    for (const s of list) {
      const u = parseUpstream(s);
      if (!u || u.host === '0.0.0.0') continue;
      if (u.host === this.opts.address && u.port === this.boundPort) continue;
      if (!this.upstreams.some((x) => x.host === u.host && x.port === u.port)) this.upstreams.push(u);
    }
    const fwd = dgram.createSocket({ type: 'udp4' });
    fwd.on('error', () => {});
    fwd.on('message', (m, r) => this.onUpstreamUdp(m, r));
    await new Promise<void>((res) => fwd.bind({ port: 0, exclusive: true }, () => res()));
    this.fwd = fwd;
    this.udp.on('message', (m, r) => this.onUdp(m, r));
  }

  /** Installs a new view: every later query is answered from it. */
  setView(view: NetView): void {
    this.index = indexView(view);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    for (const s of this.conns) s.destroy();
    for (const s of this.fwdTcp) s.destroy();
    const closing: Promise<void>[] = [];
    if (this.udp) {
      const u = this.udp;
      closing.push(new Promise((res) => u.close(() => res())));
    }
    if (this.fwd) {
      const u = this.fwd;
      closing.push(new Promise((res) => u.close(() => res())));
    }
    if (this.tcp) {
      const t = this.tcp;
      closing.push(new Promise((res) => t.close(() => res())));
    }
    await Promise.all(closing);
  }

  stats(): DnsStats {
    return { ...this.st, inflightForwards: this.inflight, tcpConnections: this.conns.size, upstreams: this.upstreams.map((u) => `${u.host}:${u.port}`) };
  }

  // --- transports ------------------------------------------------------------------------------------

  private onUdp(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.closed || rinfo.port === 0) return;
    this.st.udpQueries++;
    const udp = this.udp!;
    this.handle(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength), rinfo.address, 'udp', (resp) => {
      if (resp && !this.closed) udp.send(resp, rinfo.port, rinfo.address, () => {});
    });
  }

  private onTcpConnection(sock: net.Socket): void {
    sock.on('error', () => {});
    if (this.closed || this.conns.size >= (this.opts.maxTcpConnections ?? 64)) {
      sock.destroy();
      return;
    }
    this.conns.add(sock);
    sock.on('close', () => this.conns.delete(sock));
    sock.setNoDelay(true);
    sock.setTimeout(this.opts.tcpIdleTimeoutMs ?? 10_000, () => {
      if (outstanding === 0) sock.destroy();
    });
    const deframer = new TcpDeframer();
    const maxPipeline = this.opts.maxTcpPipeline ?? 32;
    let outstanding = 0;
    const src = sock.remoteAddress ?? '';
    sock.on('data', (chunk: Buffer) => {
      let msgs: Uint8Array[];
      try {
        msgs = deframer.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength).slice());
      } catch {
        sock.destroy();
        return;
      }
      for (const m of msgs) {
        outstanding++;
        this.st.tcpQueries++;
        this.handle(m, src, 'tcp', (resp) => {
          outstanding--;
          if (resp && !sock.destroyed) {
            // A client that sends but never reads would make us buffer without bound.
            if (sock.writableLength > MAX_TCP_UNREAD) sock.destroy();
            else sock.write(frameTcp(resp));
          }
          if (outstanding < maxPipeline && sock.isPaused()) sock.resume();
        });
      }
      if (outstanding >= maxPipeline) sock.pause();
    });
  }

  // --- one query ------------------------------------------------------------------------------------

  private client(ip: string): DnsClient | undefined {
    const v4 = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
    try {
      return this.opts.clientInfo(v4);
    } catch {
      return undefined;
    }
  }

  private reply(
    q: Pick<DnsQuery, 'id' | 'opcode' | 'rd' | 'cd' | 'edns'> & { question?: DnsQuestion },
    parts: ResponseParts,
    limit: number,
  ): Uint8Array | undefined {
    try {
      const r = encodeResponse(q, { ra: true, ...parts }, limit);
      if ((r[2]! & 0x02) !== 0) this.st.truncated++;
      switch (parts.rcode) {
        case RCODE.SERVFAIL:
          this.st.servfail++;
          break;
        case RCODE.REFUSED:
          this.st.refused++;
          break;
        case RCODE.FORMERR:
          this.st.formerr++;
          break;
        case RCODE.NOTIMP:
          this.st.notimp++;
          break;
      }
      return r;
    } catch {
      // Unencodable (only a question too large for the limit could do this): better no answer than a throw.
      this.st.dropped++;
      return undefined;
    }
  }

  private handle(buf: Uint8Array, srcIp: string, transport: 'udp' | 'tcp', doneRaw: Done): void {
    const done = once(doneRaw);
    try {
      this.st.queries++;
      const p: QueryParse = parseQuery(buf);
      if (p.kind === 'drop') {
        this.st.dropped++;
        done();
        return;
      }
      const client = this.client(srcIp);
      const limit = transport === 'udp' ? udpLimit(p.kind === 'query' ? p.query.edns : p.edns) : 65535;
      if (p.kind === 'error') {
        if (!client) {
          this.st.dropped++;
          done();
          return;
        }
        done(this.reply(p, { rcode: p.rcode }, limit));
        return;
      }
      const q = p.query;
      if (!client) {
        done(this.reply(q, { rcode: RCODE.REFUSED }, limit));
        return;
      }
      const { question } = q;
      if (question.class !== CLASS.IN && question.class !== CLASS.ANY) {
        done(this.reply(q, { rcode: RCODE.REFUSED }, limit));
        return;
      }
      if (question.type === TYPE.AXFR || question.type === TYPE.IXFR) {
        done(this.reply(q, { rcode: RCODE.REFUSED }, limit));
        return;
      }
      const r = resolve(question, client, this.index ?? NO_VIEW, { rotation: this.rotation++ });
      if (this.rotation > 0x3fffffff) this.rotation = 0;
      if (r.action === 'answer') {
        // Before the first view arrives, an answer of ours would be a lie: let the client retry.
        if (!this.index && r.rcode !== RCODE.REFUSED) {
          done(this.reply(q, { rcode: RCODE.SERVFAIL }, limit));
          return;
        }
        if (r.rcode === RCODE.NOERROR || r.rcode === RCODE.NXDOMAIN) {
          this.st.local++;
          if (r.rcode === RCODE.NXDOMAIN) this.st.nxdomain++;
        }
        const aa = r.rcode === RCODE.NOERROR || r.rcode === RCODE.NXDOMAIN;
        done(this.reply(q, { rcode: r.rcode, aa, answers: r.answers }, limit));
        return;
      }
      if (this.upstreams.length === 0 || this.inflight >= this.maxInflight) {
        done(this.reply(q, { rcode: RCODE.SERVFAIL }, limit));
        return;
      }
      this.st.forwarded++;
      this.inflight++;
      const finish: Done = (resp) => {
        this.inflight--;
        done(resp);
      };
      if (transport === 'udp') this.forwardUdp(q, buf, limit, once(finish));
      else this.forwardTcp(q, buf, 0, once(finish));
    } catch {
      this.st.dropped++;
      done();
    }
  }

  // --- forwarding -----------------------------------------------------------------------------------

  private newId(): number | undefined {
    for (let i = 0; i < 32; i++) {
      const id = randomInt(0x10000);
      if (!this.pending.has(id)) return id;
    }
    return undefined;
  }

  private forwardUdp(q: DnsQuery, buf: Uint8Array, clientLimit: number, done: Done): void {
    const id = this.newId();
    if (id === undefined || !this.fwd) {
      done(this.reply(q, { rcode: RCODE.SERVFAIL }, clientLimit));
      return;
    }
    const bytes = buf.slice();
    bytes[0] = id >>> 8;
    bytes[1] = id & 0xff;
    // A relayed answer may be as large as the client said it accepts (the upstream saw the same OPT).
    const limit = q.edns ? Math.max(q.edns.udpSize, UDP_MIN_SIZE) : UDP_MIN_SIZE;
    const p: UdpPending = { id, query: q, bytes, limit, tried: 0, upstream: this.upstreams[0]!, timer: undefined as unknown as NodeJS.Timeout, done };
    this.pending.set(id, p);
    this.sendUdpAttempt(p);
  }

  private sendUdpAttempt(p: UdpPending): void {
    // In resolv.conf order: the first upstream is preferred, the others are fallbacks.
    const up = this.upstreams[p.tried % this.upstreams.length]!;
    p.upstream = up;
    p.tried++;
    p.timer = setTimeout(() => {
      this.st.forwardTimeouts++;
      this.nextUdpAttempt(p);
    }, this.forwardTimeoutMs);
    this.fwd!.send(p.bytes, up.port, up.host, (err) => {
      if (err && this.pending.get(p.id) === p) {
        this.st.forwardErrors++;
        clearTimeout(p.timer);
        this.nextUdpAttempt(p);
      }
    });
  }

  private nextUdpAttempt(p: UdpPending): void {
    if (this.pending.get(p.id) !== p || this.closed) return;
    if (p.tried < this.upstreams.length) {
      this.sendUdpAttempt(p);
      return;
    }
    this.pending.delete(p.id);
    p.done(this.reply(p.query, { rcode: RCODE.SERVFAIL }, udpLimit(p.query.edns)));
  }

  private onUpstreamUdp(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    try {
      const m = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
      const d = decodeHeaderAndQuestion(m);
      if (!d || !d.header.qr) return;
      const p = this.pending.get(d.header.id);
      // Only the upstream we asked, with our id, about our question (anything else could be spoofed).
      if (!p || rinfo.address !== p.upstream.host || rinfo.port !== p.upstream.port) return;
      const rcode = d.header.rcode;
      if (d.question) {
        const a = d.question;
        const b = p.query.question;
        if (a.type !== b.type || a.class !== b.class || asciiLower(a.name) !== asciiLower(b.name)) return;
      } else if (rcode === RCODE.NOERROR || d.header.qdcount !== 0) return;
      clearTimeout(p.timer);
      if (rcode === RCODE.SERVFAIL || rcode === RCODE.REFUSED || !d.question) {
        this.st.forwardErrors++;
        if (p.tried < this.upstreams.length) {
          this.sendUdpAttempt(p);
          return;
        }
      }
      this.pending.delete(p.id);
      // An answer without the question is no answer a stub resolver accepts.
      if (!d.question) {
        p.done(this.reply(p.query, { rcode: RCODE.SERVFAIL }, udpLimit(p.query.edns)));
        return;
      }
      if (m.length > p.limit) {
        p.done(this.reply(p.query, { rcode, tc: true }, udpLimit(p.query.edns)));
        return;
      }
      const out = m.slice();
      out[0] = p.query.id >>> 8;
      out[1] = p.query.id & 0xff;
      p.done(out);
    } catch {
      // never let an upstream's bytes throw out of the socket handler
    }
  }

  private forwardTcp(q: DnsQuery, buf: Uint8Array, attempt: number, done: Done): void {
    if (this.closed) {
      done();
      return;
    }
    const up = this.upstreams[attempt];
    if (!up) {
      done(this.reply(q, { rcode: RCODE.SERVFAIL }, 65535));
      return;
    }
    let settled = false;
    const sock = net.connect({ host: up.host, port: up.port });
    this.fwdTcp.add(sock);
    const finish = (resp: Uint8Array | undefined, failed: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      this.fwdTcp.delete(sock);
      if (failed) {
        if (attempt + 1 < this.upstreams.length) return this.forwardTcp(q, buf, attempt + 1, done);
        return done(this.reply(q, { rcode: RCODE.SERVFAIL }, 65535));
      }
      done(resp);
    };
    const timer = setTimeout(() => {
      this.st.forwardTimeouts++;
      finish(undefined, true);
    }, this.forwardTimeoutMs);
    const deframer = new TcpDeframer();
    sock.on('error', () => {
      this.st.forwardErrors++;
      finish(undefined, true);
    });
    sock.on('close', () => finish(undefined, true));
    sock.on('connect', () => sock.write(frameTcp(buf)));
    sock.on('data', (chunk: Buffer) => {
      try {
        for (const m of deframer.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength).slice())) {
          const d = decodeHeaderAndQuestion(m);
          if (!d || !d.header.qr || d.header.id !== q.id) continue;
          const rc = d.header.rcode;
          if ((rc === RCODE.SERVFAIL || rc === RCODE.REFUSED) && attempt + 1 < this.upstreams.length) {
            this.st.forwardErrors++;
            finish(undefined, true);
          } else finish(m, false);
          return;
        }
      } catch {
        finish(undefined, true);
      }
    });
  }
}
