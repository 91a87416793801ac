// Raft transport over mutually authenticated TLS WebSockets.
//
// * Identity: a node is the CN of its certificate. The server side requires a client certificate
//   signed by the cluster CA and takes the CN as the peer id; the dialing side verifies the server
//   certificate against the CA and requires its CN to equal the id it meant to reach (no hostname
//   checks). `authorize` is applied in both directions. Every inbound message whose `from` is not the
//   connection's authenticated id is dropped (stats.rejectedSpoofed).
// * One persistent connection per peer pair, used in both directions. Either side may dial. When two
//   connections to the same peer exist, the one dialed by the node with the smaller id (JavaScript
//   string order) wins; between two connections dialed by the same node the newer wins. Both sides
//   apply the same rule to the same facts, so they agree and nothing flaps. Losers are closed
//   gracefully (terminated after closeTimeoutMs).
// * Per-peer order is preserved across a switch of connection: a sender only ever moves to a better
//   connection, and a receiver holds what arrives on the better connection until every worse one to
//   the same peer has closed (by then everything the peer sent on it has been delivered).
// * send() queues per peer and flushes once per event-loop turn (setImmediate) as one binary frame
//   per peer (codec.ts). Queues are bounded while disconnected (oldest dropped); frames are dropped
//   rather than buffered once a socket holds highWaterMark bytes.
// * Each socket lives in a Session (transport/session.ts), which owns its `error` and `close` events and
//   its inbound size limit, so no path of a connection can throw out of the transport. Liveness stays
//   the transport's own (pings and half-open probes tied to its tie-break rules).
import { createServer } from 'node:https';
import type { Server as HttpsServer } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { PeerCertificate } from 'node:tls';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import type { ClientOptions } from 'ws';
import { Session } from '../../transport/session.ts';
import { CodecError, decodeMessages, encodeMessages, encodedSize, messageSize } from './codec.ts';
import type { RaftTransport } from './transport.ts';
import type { Message, NodeId } from './types.ts';

export interface WsRaftTransportTls {
  /** PEM private key of this node. */
  key: string;
  /** PEM certificate of this node; its CN must be the node id. */
  cert: string;
  /** PEM CA certificate(s) peers' certificates must chain to. */
  ca: string;
}

export interface WsRaftTransportOptions {
  id: NodeId;
  tls: WsRaftTransportTls;
  /** WebSocket path. Default '/raft/v1'. */
  path?: string;
  /** Attach to an existing mutual-TLS https server ('upgrade' requests on `path` only). */
  server?: HttpsServer;
  /** Or create and own an https server listening here (port 0 for an ephemeral port). */
  listen?: { host: string; port: number };
  /** Extra admission check for peers (both inbound and outbound). Default: any cert signed by the CA. */
  authorize?: (peerCertCN: string, peerCert: PeerCertificate) => boolean;
  /** Random source in [0, 1) for backoff jitter. Default Math.random. */
  random?: () => number;
  /** First reconnect delay in ms (doubles per failure, jittered to [d/2, d]). Default 20. */
  backoffInitialMs?: number;
  /** Reconnect delay cap in ms. Default 1000. */
  backoffMaxMs?: number;
  /** Messages kept per peer while it has no open connection (oldest dropped). Default 1024. */
  maxQueue?: number;
  /** Bytes buffered on a socket above which outbound frames are dropped. Default 16 MiB. */
  highWaterMark?: number;
  /** Largest frame sent or accepted (ws maxPayload); bigger batches are split. Default 64 MiB. */
  maxFrameBytes?: number;
  /** Ping interval; a connection silent (no frame, no pong) for two intervals is terminated. 0 = off. Default 5000. */
  keepaliveMs?: number;
  /** How long a graceful close may take before the socket is terminated. Default 1000. */
  closeTimeoutMs?: number;
  /** Outbound TLS + WebSocket handshake timeout in ms. Default 5000. */
  handshakeTimeoutMs?: number;
  /** Errors that are not the peer's fault (handler exceptions, unencodable messages). Default console.error. */
  onError?: (err: unknown) => void;
}

export interface WsRaftTransportStats {
  /** Messages handed to a socket. */
  sent: number;
  /** Messages delivered to the handler. */
  received: number;
  /** Messages dropped: queue overflow, back-pressure, unknown destination, oversize, shutdown, no handler. */
  dropped: number;
  /** Connections refused: TLS client errors (own server), unauthorized or self certs, 403s, server identity mismatches when dialing. */
  rejectedAuth: number;
  /** Inbound messages whose `from` differs from the connection's authenticated id. */
  rejectedSpoofed: number;
  /** Inbound frames that failed to decode (the connection is closed). */
  malformed: number;
  /** Inbound messages addressed to another node. */
  misrouted: number;
  /** Connections established (dialed and opened, or accepted). */
  connects: number;
  /** Dials made by the reconnect/backoff logic (after a failure or a lost connection). */
  reconnects: number;
  /** Dials refused (nothing listened at the peer's address) while no link to it was open. */
  refusedDials: number;
}

/** What tests and diagnostics can see about a connection. */
export interface WsConnectionInfo {
  peer: NodeId;
  /** Id of the node that dialed this connection. */
  dialer: NodeId;
  outbound: boolean;
  /** Dialed by the node with the smaller id (the kind that wins a tie-break). */
  preferred: boolean;
  state: 'connecting' | 'open' | 'closing';
  /** The connection messages to this peer are currently sent on. */
  active: boolean;
  localPort: number | undefined;
  remotePort: number | undefined;
}

const OPEN = WebSocket.OPEN;

/** One inbound frame as the session hands it over (decoding is the transport's, with its own counters). */
interface Frame {
  data: Buffer;
  isBinary: boolean;
}

interface Link {
  readonly ws: WebSocket;
  readonly session: Session<Frame>;
  readonly peer: PeerState;
  readonly outbound: boolean;
  readonly preferred: boolean;
  readonly seq: number;
  socket: TLSSocket | null;
  open: boolean;
  openedAt: number;
  retired: boolean;
  closed: boolean;
  /** Frames after a malformed one are ignored. */
  poisoned: boolean;
  /** Close code to use once a link retired while connecting opens. */
  closeCode: number;
  /** Date.now() of the last frame or pong received (liveness). */
  lastSeen: number;
  /** Inbound messages waiting for worse connections to this peer to close. */
  held: Message[] | null;
  killTimer: NodeJS.Timeout | null;
  probeTimer: NodeJS.Timeout | null;
}

interface PeerState {
  readonly id: NodeId;
  /** Dial target (with path); null when the peer is not registered (inbound-only). */
  url: string | null;
  /** Links that exist and have not emitted 'close'. */
  readonly links: Set<Link>;
  /** Links (possibly closed) that hold inbound messages. */
  readonly holding: Set<Link>;
  /** Where messages go now: the best open link, or null. */
  active: Link | null;
  queue: Message[];
  attempt: number;
  reconnectTimer: NodeJS.Timeout | null;
}

/** True if `a` beats `b`: dialed by the smaller id first, then newer. */
function above(a: Link, b: Link): boolean {
  return a.preferred !== b.preferred ? a.preferred : a.seq > b.seq;
}

function rejectUpgrade(socket: Duplex, status: number, reason: string): void {
  socket.on('error', () => {});
  if (socket.writable) {
    socket.once('finish', () => socket.destroy());
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  } else {
    socket.destroy();
  }
}

export class WsRaftTransport implements RaftTransport {
  readonly id: NodeId;
  readonly path: string;
  readonly stats: WsRaftTransportStats = {
    sent: 0,
    received: 0,
    dropped: 0,
    rejectedAuth: 0,
    rejectedSpoofed: 0,
    malformed: 0,
    misrouted: 0,
    connects: 0,
    reconnects: 0,
    refusedDials: 0,
  };

  private tls: WsRaftTransportTls;
  private readonly authorizeFn: (cn: string, cert: PeerCertificate) => boolean;
  private readonly random: () => number;
  private readonly backoffInitialMs: number;
  private readonly backoffMaxMs: number;
  private readonly maxQueue: number;
  private readonly highWaterMark: number;
  private readonly maxFrameBytes: number;
  private readonly keepaliveMs: number;
  private readonly closeTimeoutMs: number;
  private readonly handshakeTimeoutMs: number;
  private readonly onError: (err: unknown) => void;
  private readonly listenAt: { host: string; port: number } | undefined;

  private server: HttpsServer | null;
  private readonly ownServer: boolean;
  private readonly wss: WebSocketServer;
  private handler: ((message: Message) => void) | null = null;
  private goneHandler: ((peer: NodeId) => void) | null = null;
  private readonly peers = new Map<NodeId, PeerState>();
  private readonly dirty = new Set<PeerState>();
  private flushImmediate: NodeJS.Immediate | null = null;
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private seq = 0;
  private started: Promise<void> | null = null;
  private closing: Promise<void> | null = null;
  private closed = false;
  private linkCount = 0;
  private allLinksClosed: (() => void) | null = null;

  private readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    this.handleUpgrade(req, socket, head);
  };
  private readonly onTlsClientError = (): void => {
    this.stats.rejectedAuth++;
  };
  /** TCP connections to our own server, so close() can cut stalled handshakes short. */
  private readonly rawSockets = new Set<Socket>();
  private readonly onConnection = (socket: Socket): void => {
    this.rawSockets.add(socket);
    socket.once('close', () => this.rawSockets.delete(socket));
  };
  private readonly onPlainRequest = (req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(426, { Connection: 'close', 'Content-Length': '0' }).end();
    req.resume();
  };

  constructor(opts: WsRaftTransportOptions) {
    if (!opts.id) throw new Error('WsRaftTransport: id is required');
    if (opts.server && opts.listen) throw new Error('WsRaftTransport: give either server or listen, not both');
    this.id = opts.id;
    this.path = opts.path ?? '/raft/v1';
    this.tls = opts.tls;
    this.authorizeFn = opts.authorize ?? (() => true);
    this.random = opts.random ?? Math.random;
    this.backoffInitialMs = opts.backoffInitialMs ?? 20;
    this.backoffMaxMs = opts.backoffMaxMs ?? 1000;
    this.maxQueue = opts.maxQueue ?? 1024;
    this.highWaterMark = opts.highWaterMark ?? 16 * 1024 * 1024;
    this.maxFrameBytes = opts.maxFrameBytes ?? 64 * 1024 * 1024;
    this.keepaliveMs = opts.keepaliveMs ?? 5000;
    this.closeTimeoutMs = opts.closeTimeoutMs ?? 1000;
    this.handshakeTimeoutMs = opts.handshakeTimeoutMs ?? 5000;
    this.onError = opts.onError ?? ((err) => console.error(`raft transport ${this.id}:`, err));
    this.listenAt = opts.listen;
    this.server = opts.server ?? null;
    this.ownServer = !opts.server && !!opts.listen;
    this.wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: this.maxFrameBytes,
      clientTracking: false,
    });
  }

  /** Creates a transport and waits until it listens (if it listens at all). */
  static async create(opts: WsRaftTransportOptions): Promise<WsRaftTransport> {
    const t = new WsRaftTransport(opts);
    await t.start();
    return t;
  }

  /** Attaches to or starts the https server; resolves once listening. Idempotent. */
  start(): Promise<void> {
    this.started ??= this.doStart();
    return this.started;
  }

  private async doStart(): Promise<void> {
    if (this.closed) throw new Error('WsRaftTransport: closed');
    if (this.ownServer && this.listenAt) {
      const server = createServer({
        key: this.tls.key,
        cert: this.tls.cert,
        ca: this.tls.ca,
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.2',
        handshakeTimeout: 10_000,
        noDelay: true,
      });
      server.on('tlsClientError', this.onTlsClientError);
      server.on('request', this.onPlainRequest);
      server.on('connection', this.onConnection);
      this.server = server;
      const { host, port } = this.listenAt;
      await new Promise<void>((resolve, reject) => {
        const onError = (err: Error): void => reject(err);
        server.once('error', onError);
        server.listen(port, host, () => {
          server.off('error', onError);
          resolve();
        });
      });
    }
    this.server?.on('upgrade', this.onUpgrade);
    if (this.keepaliveMs > 0) {
      this.keepaliveTimer = setInterval(() => this.keepalive(), this.keepaliveMs);
    }
  }

  /** Port the server listens on (useful with port 0); undefined when not listening. */
  get port(): number | undefined {
    const addr = this.server?.address();
    return addr && typeof addr === 'object' ? (addr as AddressInfo).port : undefined;
  }

  // -------------------------------------------------------------------------------------------------
  // RaftTransport

  onMessage(handler: (message: Message) => void): void {
    this.handler = handler;
  }

  onPeerGone(handler: (peer: NodeId) => void): void {
    this.goneHandler = handler;
  }

  addPeer(id: NodeId, url: string): void {
    if (this.closed || id === this.id) return;
    const u = new URL(url);
    if (u.protocol !== 'wss:') throw new Error(`WsRaftTransport: peer ${id} url must be wss:, got ${url}`);
    if (u.pathname === '/' || u.pathname === '') u.pathname = this.path;
    const peer = this.peerState(id);
    const changed = peer.url !== u.toString();
    peer.url = u.toString();
    if (changed) {
      peer.attempt = 0;
      if (peer.reconnectTimer) {
        clearTimeout(peer.reconnectTimer);
        peer.reconnectTimer = null;
      }
    }
    this.ensureDial(peer);
  }

  removePeer(id: NodeId): void {
    const peer = this.peers.get(id);
    if (!peer) return;
    peer.url = null;
    if (peer.reconnectTimer) {
      clearTimeout(peer.reconnectTimer);
      peer.reconnectTimer = null;
    }
    this.stats.dropped += peer.queue.length;
    peer.queue = [];
    peer.active = null;
    for (const link of peer.links) this.retire(link, 1000, 'peer removed');
    this.maybeForget(peer);
  }

  send(messages: Message[]): void {
    for (const m of messages) {
      const peer = this.closed || m.to === this.id ? undefined : this.peers.get(m.to);
      if (!peer) {
        this.stats.dropped++;
        continue;
      }
      peer.queue.push(m);
      if (peer.active === null && peer.queue.length > this.maxQueue) {
        peer.queue.shift();
        this.stats.dropped++;
      }
      this.dirty.add(peer);
    }
    if (this.dirty.size > 0 && this.flushImmediate === null && !this.closed) {
      this.flushImmediate = setImmediate(() => this.flush());
    }
  }

  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  // -------------------------------------------------------------------------------------------------
  // Introspection

  /** Connections that currently exist (not yet closed), optionally for one peer. */
  connections(peer?: NodeId): WsConnectionInfo[] {
    const out: WsConnectionInfo[] = [];
    for (const p of this.peers.values()) {
      if (peer !== undefined && p.id !== peer) continue;
      for (const l of p.links) {
        out.push({
          peer: p.id,
          dialer: l.outbound ? this.id : p.id,
          outbound: l.outbound,
          preferred: l.preferred,
          state: l.retired ? 'closing' : l.open ? 'open' : 'connecting',
          active: p.active === l,
          localPort: l.socket?.localPort,
          remotePort: l.socket?.remotePort,
        });
      }
    }
    return out;
  }

  // -------------------------------------------------------------------------------------------------
  // Outbound

  private peerState(id: NodeId): PeerState {
    let peer = this.peers.get(id);
    if (!peer) {
      peer = {
        id,
        url: null,
        links: new Set(),
        holding: new Set(),
        active: null,
        queue: [],
        attempt: 0,
        reconnectTimer: null,
      };
      this.peers.set(id, peer);
    }
    return peer;
  }

  private flush(): void {
    this.flushImmediate = null;
    const peers = [...this.dirty];
    this.dirty.clear();
    for (const peer of peers) this.flushPeer(peer);
  }

  private flushPeer(peer: PeerState): void {
    if (peer.queue.length === 0) return;
    const link = peer.active;
    if (link === null || link.ws.readyState !== OPEN) {
      const excess = peer.queue.length - this.maxQueue;
      if (excess > 0) {
        peer.queue.splice(0, excess);
        this.stats.dropped += excess;
      }
      this.ensureDial(peer);
      return;
    }
    const msgs = peer.queue;
    peer.queue = [];
    this.transmit(link, msgs);
  }

  /** Sends `msgs` on `link` as one frame (several only if they exceed maxFrameBytes). */
  private transmit(link: Link, msgs: Message[]): void {
    let size = -1;
    try {
      size = encodedSize(msgs);
    } catch {
      // Some message is not encodable: the slow path below finds and drops it.
    }
    if (size >= 0 && size <= this.maxFrameBytes) {
      this.sendFrame(link, msgs, encodeMessages(msgs));
      return;
    }
    let group: Message[] = [];
    let groupSize = 10; // version byte + count varint (upper bound)
    for (const m of msgs) {
      let s: number;
      try {
        s = messageSize(m);
      } catch (err) {
        this.stats.dropped++;
        this.onError(err);
        continue;
      }
      if (s + 10 > this.maxFrameBytes) {
        this.stats.dropped++;
        this.onError(new Error(`raft message ${m.type} to ${m.to} is ${s} bytes, above maxFrameBytes`));
        continue;
      }
      if (groupSize + s > this.maxFrameBytes) {
        this.sendFrame(link, group, encodeMessages(group));
        group = [];
        groupSize = 10;
      }
      group.push(m);
      groupSize += s;
    }
    if (group.length > 0) this.sendFrame(link, group, encodeMessages(group));
  }

  private sendFrame(link: Link, msgs: Message[], frame: Uint8Array): void {
    if (link.ws.readyState !== OPEN || link.ws.bufferedAmount >= this.highWaterMark) {
      this.stats.dropped += msgs.length;
      return;
    }
    // The session refuses (false) only past its buffer limit; a frame is never half-queued.
    if (!link.session.send(Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength))) {
      this.stats.dropped += msgs.length;
      return;
    }
    this.stats.sent += msgs.length;
  }

  /** A link that is open or still connecting and not being closed. */
  private hasLiveLink(peer: PeerState): boolean {
    for (const l of peer.links) if (!l.retired) return true;
    return false;
  }

  private ensureDial(peer: PeerState): void {
    if (this.closed || peer.url === null || peer.reconnectTimer !== null) return;
    if (this.hasLiveLink(peer)) return;
    this.dial(peer);
  }

  private scheduleReconnect(peer: PeerState): void {
    if (this.closed || peer.url === null || peer.reconnectTimer !== null) return;
    const base = Math.min(this.backoffMaxMs, this.backoffInitialMs * 2 ** Math.min(peer.attempt, 30));
    const delay = base / 2 + (this.random() * base) / 2;
    peer.attempt++;
    peer.reconnectTimer = setTimeout(() => {
      peer.reconnectTimer = null;
      if (this.closed || peer.url === null || this.hasLiveLink(peer)) return;
      this.stats.reconnects++;
      this.dial(peer);
    }, delay);
  }

  private dial(peer: PeerState): void {
    const url = peer.url;
    if (url === null) return;
    const peerId = peer.id;
    const options = {
      key: this.tls.key,
      cert: this.tls.cert,
      ca: this.tls.ca,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
      // Only called once the chain verified against `ca`; replaces the hostname check.
      checkServerIdentity: (_host: string, cert: PeerCertificate): Error | undefined => {
        const cn = cert.subject?.CN;
        if (cn !== peerId) {
          this.stats.rejectedAuth++;
          return new Error(`server certificate CN ${JSON.stringify(cn)} is not peer ${JSON.stringify(peerId)}`);
        }
        if (!this.authorized(cn, cert)) {
          this.stats.rejectedAuth++;
          return new Error(`peer ${JSON.stringify(cn)} is not authorized`);
        }
        return undefined;
      },
      perMessageDeflate: false,
      maxPayload: this.maxFrameBytes,
      handshakeTimeout: this.handshakeTimeoutMs,
      followRedirects: false,
    };
    let ws: WebSocket;
    try {
      // @types/ws types checkServerIdentity as returning boolean; ws hands it to tls.connect, which
      // expects Error | undefined.
      ws = new WebSocket(url, options as unknown as ClientOptions);
    } catch (err) {
      this.onError(err);
      this.scheduleReconnect(peer);
      return;
    }
    const link = this.newLink(ws, peer, true);
    // A refused dial while no link to the peer is open: nothing listens at its address, so its process
    // is not running (a full accept queue drops SYNs, it does not refuse them). Raft uses this to skip
    // the election timeout when the peer was its leader (RaftCore.leaderGone). The session still owns
    // the error and the close that follows.
    ws.once('error', (e: Error & { code?: string }) => {
      if (link.open || e.code !== 'ECONNREFUSED' || this.closed) return;
      for (const l of peer.links) if (l.open && !l.closed) return;
      this.stats.refusedDials++;
      try {
        this.goneHandler?.(peerId);
      } catch (err) {
        this.onError(err);
      }
    });
    ws.on('upgrade', (res: IncomingMessage) => {
      if (res.socket instanceof TLSSocket) {
        link.socket = res.socket;
        res.socket.setNoDelay(true);
      }
    });
    ws.once('open', () => this.onOpen(link));
  }

  /**
   * The node's certificate was renewed (or its trust anchor changed, root CA rotation): later dials
   * present and trust these. Open links keep the session they have.
   */
  setTls(tls: WsRaftTransportTls): void {
    this.tls = tls;
    // A server of its own presents them too (a shared server is its owner's to update).
    if (this.ownServer && this.server) this.server.setSecureContext({ key: tls.key, cert: tls.cert, ca: tls.ca });
  }

  /**
   * Re-applies `authorize` to every open link's peer certificate (the deny list changed): links whose
   * peer is no longer authorized are closed; an inbound one is refused at its next upgrade, an outbound
   * one at its next dial. Returns how many were closed.
   */
  recheckPeers(): number {
    let closed = 0;
    for (const peer of this.peers.values()) {
      for (const link of [...peer.links]) {
        if (link.retired || link.closed || link.socket === null) continue;
        const cert = link.socket.getPeerCertificate();
        const cn = cert?.subject?.CN;
        if (typeof cn === 'string' && cn !== '' && this.authorized(cn, cert)) continue;
        this.stats.rejectedAuth++;
        this.retire(link, 4003, 'certificate revoked');
        closed++;
      }
    }
    return closed;
  }

  /**
   * Like recheckPeers, for a change that retires a root CA rather than revoking anyone (a completed root
   * rotation: every member renewed under the new root, but links opened before carry old-root
   * certificates): each link whose peer certificate is no longer accepted is replaced before it is
   * closed. Where a new dial from this side would win the tie-break (this side is the preferred dialer,
   * or it dialled the old link itself), it dials now, with the current certificates; once open, the new
   * link takes over and the old one is retired as a duplicate, so per-peer order holds and nothing is
   * lost. Otherwise the other side, which saw the same change, does it from its end. A link still in use
   * after `withinMs` (the peer could not or did not replace it) is closed as recheckPeers would. Returns
   * how many links are being replaced.
   */
  replaceRefusedPeers(withinMs: number): number {
    let replacing = 0;
    for (const peer of this.peers.values()) {
      const refused = [...peer.links].filter((link) => {
        if (link.retired || link.closed || link.socket === null) return false;
        const cert = link.socket.getPeerCertificate();
        const cn = cert?.subject?.CN;
        return !(typeof cn === 'string' && cn !== '' && this.authorized(cn, cert));
      });
      if (refused.length === 0) continue;
      replacing += refused.length;
      const wins = this.id < peer.id || refused.every((l) => l.outbound);
      if (wins && peer.url !== null && !this.closed) this.dial(peer);
      const deadline = setTimeout(() => {
        for (const link of refused) {
          if (link.retired || link.closed) continue;
          this.stats.rejectedAuth++;
          this.retire(link, 4003, 'certificate of a retired root');
        }
      }, withinMs);
      deadline.unref();
    }
    return replacing;
  }

  // -------------------------------------------------------------------------------------------------
  // Inbound

  private authorized(cn: string, cert: PeerCertificate): boolean {
    try {
      return this.authorizeFn(cn, cert) === true;
    } catch (err) {
      this.onError(err);
      return false;
    }
  }

  private handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    let pathname: string;
    try {
      pathname = new URL(req.url ?? '/', 'https://raft.invalid').pathname;
    } catch {
      pathname = '';
    }
    if (pathname !== this.path) {
      // On a shared server other paths belong to someone else.
      if (this.ownServer) rejectUpgrade(socket, 404, 'Not Found');
      return;
    }
    if (this.closed) {
      rejectUpgrade(socket, 503, 'Service Unavailable');
      return;
    }
    if (!(socket instanceof TLSSocket) || !socket.authorized) {
      this.stats.rejectedAuth++;
      rejectUpgrade(socket, 401, 'Unauthorized');
      return;
    }
    const cert = socket.getPeerCertificate();
    const cn: unknown = cert?.subject?.CN;
    if (typeof cn !== 'string' || cn === '' || cn === this.id || !this.authorized(cn, cert)) {
      this.stats.rejectedAuth++;
      rejectUpgrade(socket, 403, 'Forbidden');
      return;
    }
    socket.setNoDelay(true);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const link = this.newLink(ws, this.peerState(cn), false);
      link.socket = socket;
      this.onOpen(link);
    });
  }

  // -------------------------------------------------------------------------------------------------
  // Links

  private newLink(ws: WebSocket, peer: PeerState, outbound: boolean): Link {
    const dialer = outbound ? this.id : peer.id;
    const smaller = this.id < peer.id ? this.id : peer.id;
    const link: Link = {
      ws,
      // Errors (handshake failures, resets, ws protocol errors such as a frame over maxPayload) are
      // routine: the session records them and 'close' follows, which is where the link ends.
      session: new Session<Frame>(ws, {
        name: `raft ${this.id}↔${peer.id}`,
        decode: (data, isBinary) => ({ data, isBinary }),
        onMessage: (f) => this.onFrame(link, f.data, f.isBinary),
        onClose: () => this.onClose(link),
        limits: {
          maxMessageBytes: this.maxFrameBytes,
          // The transport stops at highWaterMark itself (sendFrame); the session's limit only has to let
          // one more frame through above it.
          maxBufferedBytes: this.highWaterMark + this.maxFrameBytes,
          slowConsumer: 'drop',
          liveness: null,
          // Malformed frames are the transport's to judge (it closes the link at the first one).
          violations: { count: Number.MAX_SAFE_INTEGER, windowMs: 1 },
        },
        log: () => {},
      }),
      peer,
      outbound,
      preferred: dialer === smaller,
      seq: ++this.seq,
      socket: null,
      open: false,
      openedAt: 0,
      retired: false,
      closed: false,
      poisoned: false,
      closeCode: 1000,
      lastSeen: Date.now(),
      held: null,
      killTimer: null,
      probeTimer: null,
    };
    peer.links.add(link);
    this.linkCount++;
    ws.on('pong', () => {
      link.lastSeen = Date.now();
    });
    return link;
  }

  private onOpen(link: Link): void {
    link.open = true;
    link.openedAt = Date.now();
    this.stats.connects++;
    if (link.retired) {
      // Lost a tie-break while connecting: close now that the handshake is done.
      this.closeWs(link.ws, link.closeCode, 'duplicate connection');
      return;
    }
    if (this.closed) {
      this.retire(link, 1001, 'shutting down');
      return;
    }
    this.reconcile(link.peer);
  }

  /** Picks the best open link, closes every worse one and flushes what waited for a connection. */
  private reconcile(peer: PeerState): void {
    let best: Link | null = null;
    for (const l of peer.links) {
      if (l.open && !l.retired && l.ws.readyState === OPEN && (best === null || above(l, best))) best = l;
    }
    if (best !== null) {
      for (const l of peer.links) {
        if (l === best || l.retired || !above(best, l)) continue;
        // A newer connection from the other side losing to an older preferred one may mean the old one
        // is half-open (the peer restarted): make sure it still answers.
        if (l.open && !l.preferred && best.preferred && l.seq > best.seq) this.probe(best);
        this.retire(l, 1000, 'duplicate connection', false);
      }
      if (peer.reconnectTimer !== null) {
        clearTimeout(peer.reconnectTimer);
        peer.reconnectTimer = null;
      }
    }
    peer.active = best;
    if (best !== null && peer.queue.length > 0) this.flushPeer(peer);
  }

  /**
   * Stops using `link` and closes it gracefully (terminated after closeTimeoutMs). A link that is still
   * connecting is aborted when `abort`; otherwise it is allowed to open and then closed, because the
   * other side may already consider it open and have sent messages on it.
   */
  private retire(link: Link, code: number, reason: string, abort = true): void {
    if (link.retired || link.closed) return;
    link.retired = true;
    if (link.peer.active === link) link.peer.active = null;
    if (link.ws.readyState === WebSocket.CONNECTING && !abort) {
      link.closeCode = code;
    } else {
      this.closeWs(link.ws, code, reason);
    }
    link.killTimer = setTimeout(() => {
      link.killTimer = null;
      link.ws.terminate();
    }, this.closeTimeoutMs);
  }

  private closeWs(ws: WebSocket, code: number, reason: string): void {
    try {
      ws.close(code, reason);
    } catch {
      ws.terminate();
    }
  }

  /** Pings `link`; terminates it unless something arrives within closeTimeoutMs. */
  private probe(link: Link): void {
    if (link.probeTimer !== null || link.ws.readyState !== OPEN) return;
    const sentAt = Date.now();
    try {
      link.ws.ping();
    } catch {
      return;
    }
    link.probeTimer = setTimeout(() => {
      link.probeTimer = null;
      if (link.lastSeen < sentAt && !link.closed) link.ws.terminate();
    }, this.closeTimeoutMs);
  }

  /** Pings every open link; one that has been silent for two intervals is terminated. */
  private keepalive(): void {
    const now = Date.now();
    for (const peer of this.peers.values()) {
      for (const link of peer.links) {
        if (!link.open || link.ws.readyState !== OPEN) continue;
        if (now - link.lastSeen > 2 * this.keepaliveMs) {
          link.ws.terminate();
          continue;
        }
        try {
          link.ws.ping();
        } catch {
          // closing
        }
      }
    }
  }

  private onFrame(link: Link, buf: Buffer, isBinary: boolean): void {
    link.lastSeen = Date.now();
    if (link.poisoned || link.closed) return;
    let msgs: Message[];
    try {
      if (!isBinary) throw new CodecError('text frame');
      msgs = decodeMessages(buf);
    } catch (err) {
      this.stats.malformed++;
      link.poisoned = true;
      if (!(err instanceof CodecError)) this.onError(err);
      if (link.retired) link.ws.terminate();
      else this.retire(link, 1007, 'malformed frame');
      return;
    }
    const peer = link.peer;
    for (const m of msgs) {
      if (m.from !== peer.id) {
        this.stats.rejectedSpoofed++;
        continue;
      }
      if (m.to !== this.id) {
        this.stats.misrouted++;
        continue;
      }
      if (link.held !== null || this.hasWorsePresent(link)) {
        if (link.held === null) {
          link.held = [];
          peer.holding.add(link);
        }
        link.held.push(m);
        if (link.held.length > this.maxQueue * 4) {
          link.held.shift();
          this.stats.dropped++;
        }
      } else {
        this.deliver(m);
      }
    }
  }

  /** Whether a worse connection to the same peer still exists (it may still carry earlier messages). */
  private hasWorsePresent(link: Link): boolean {
    for (const l of link.peer.links) if (l !== link && above(link, l)) return true;
    return false;
  }

  private releaseHeld(peer: PeerState): void {
    if (peer.holding.size === 0) return;
    const ordered = [...peer.holding].sort((a, b) => (above(a, b) ? 1 : -1));
    for (const link of ordered) {
      if (this.hasWorsePresent(link)) break;
      const held = link.held ?? [];
      link.held = null;
      peer.holding.delete(link);
      for (const m of held) this.deliver(m);
    }
  }

  private deliver(m: Message): void {
    const handler = this.handler;
    if (handler === null || this.closed) {
      this.stats.dropped++;
      return;
    }
    this.stats.received++;
    try {
      handler(m);
    } catch (err) {
      this.onError(err);
    }
  }

  private onClose(link: Link): void {
    link.closed = true;
    if (link.killTimer !== null) clearTimeout(link.killTimer);
    if (link.probeTimer !== null) clearTimeout(link.probeTimer);
    link.killTimer = link.probeTimer = null;
    const peer = link.peer;
    peer.links.delete(link);
    if (peer.active === link) peer.active = null;
    if (link.openedAt > 0 && Date.now() - link.openedAt >= this.backoffMaxMs) peer.attempt = 0;
    this.releaseHeld(peer);
    if (!this.closed) {
      this.reconcile(peer);
      if (peer.active === null && !this.hasLiveLink(peer)) {
        if (peer.url !== null) this.scheduleReconnect(peer);
      }
      this.maybeForget(peer);
    }
    this.linkCount--;
    if (this.linkCount === 0 && this.allLinksClosed !== null) this.allLinksClosed();
  }

  /** Drops the state of an unregistered peer once it has no connections. */
  private maybeForget(peer: PeerState): void {
    if (peer.url !== null || peer.links.size > 0) return;
    if (peer.holding.size > 0) {
      for (const l of peer.holding) for (const m of l.held ?? []) this.deliver(m);
      peer.holding.clear();
    }
    this.stats.dropped += peer.queue.length;
    peer.queue = [];
    this.dirty.delete(peer);
    if (this.peers.get(peer.id) === peer) this.peers.delete(peer.id);
  }

  private async doClose(): Promise<void> {
    this.closed = true;
    if (this.started !== null) await this.started.catch(() => {});
    if (this.flushImmediate !== null) {
      clearImmediate(this.flushImmediate);
      this.flushImmediate = null;
    }
    if (this.keepaliveTimer !== null) {
      clearInterval(this.keepaliveTimer);
      this.keepaliveTimer = null;
    }
    this.dirty.clear();
    const linksClosed = new Promise<void>((resolve) => {
      this.allLinksClosed = resolve;
    });
    for (const peer of this.peers.values()) {
      if (peer.reconnectTimer !== null) {
        clearTimeout(peer.reconnectTimer);
        peer.reconnectTimer = null;
      }
      this.stats.dropped += peer.queue.length;
      peer.queue = [];
      peer.active = null;
      for (const link of peer.links) this.retire(link, 1001, 'shutting down');
    }
    if (this.linkCount > 0) await linksClosed;
    this.allLinksClosed = null;
    this.peers.clear();
    const server = this.server;
    if (server !== null) {
      server.off('upgrade', this.onUpgrade);
      if (this.ownServer) {
        server.off('request', this.onPlainRequest);
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
          for (const socket of this.rawSockets) socket.destroy();
        });
        server.off('tlsClientError', this.onTlsClientError);
        server.off('connection', this.onConnection);
      }
    }
    this.wss.close();
  }
}
