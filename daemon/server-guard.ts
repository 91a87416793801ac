// Limits on the daemon's secure port that no handler has to remember: a stalled TLS handshake, slow
// request headers or body, an idle keep-alive connection, too many connections from one address (or in
// all), and WebSocket upgrades nobody serves (security review, finding 5).
//
// Node hands an 'upgrade' request to the 'upgrade' listeners and detaches the socket from every HTTP
// timeout: a socket no listener takes is held forever. The guard destroys at once any upgrade whose path
// is not one of the claimed WebSocket paths, and any upgrade from a client without a valid client
// certificate (no endpoint upgrades for anonymous clients: they may reach only /v1/ca and /v1/join,
// which are plain requests).
import type { Server as HttpsServer } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';

export interface ServerLimits {
  /** TLS handshake must finish within this (ms). */
  handshakeTimeoutMs: number;
  /** Request headers must arrive within this (ms). */
  headersTimeoutMs: number;
  /** A whole request (headers and body) must arrive within this (ms); responses may stream longer. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this (ms). */
  keepAliveTimeoutMs: number;
  /** Open TCP connections from one source address. */
  maxConnectionsPerIp: number;
  /** Open TCP connections in all. */
  maxConnections: number;
}

export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  handshakeTimeoutMs: 10_000,
  headersTimeoutMs: 15_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5_000,
  maxConnectionsPerIp: 256,
  maxConnections: 8192,
};

export interface GuardStats {
  /** TCP connections open now. */
  open: number;
  /** Connections refused for the per-address cap. */
  refusedPerIp: number;
  /** Connections refused for the global cap. */
  refusedTotal: number;
  /** Upgrades destroyed: no listener serves the path. */
  unmatchedUpgrades: number;
  /** Upgrades destroyed: no valid client certificate. */
  anonymousUpgrades: number;
  /** TLS handshakes that failed or timed out. */
  tlsErrors: number;
}

/** The options an https server needs for these limits (pass them to createServer). */
export function serverOptions(l: ServerLimits = DEFAULT_SERVER_LIMITS): {
  handshakeTimeout: number;
  requestTimeout: number;
  headersTimeout: number;
  keepAliveTimeout: number;
  connectionsCheckingInterval: number;
} {
  return {
    handshakeTimeout: l.handshakeTimeoutMs,
    requestTimeout: l.requestTimeoutMs,
    headersTimeout: l.headersTimeoutMs,
    keepAliveTimeout: l.keepAliveTimeoutMs,
    // Node checks the header and request timeouts only this often (30 s by default), so a client dripping
    // headers a byte a second was held up to 45 s against a 15 s limit (found by the hostile suite).
    connectionsCheckingInterval: CONNECTIONS_CHECK_MS,
  };
}

/** How often Node looks for connections past their header/request deadline. */
export const CONNECTIONS_CHECK_MS = 1_000;

/**
 * Installs the guards on `server` (created with serverOptions). `claimed(path)` says whether a WebSocket
 * endpoint serves the path. Returns live counters and a function that removes the guards.
 */
export function guardServer(
  server: HttpsServer,
  claimed: (path: string) => boolean,
  l: ServerLimits = DEFAULT_SERVER_LIMITS,
): { stats: GuardStats; remove: () => void } {
  const stats: GuardStats = { open: 0, refusedPerIp: 0, refusedTotal: 0, unmatchedUpgrades: 0, anonymousUpgrades: 0, tlsErrors: 0 };
  server.headersTimeout = l.headersTimeoutMs;
  server.requestTimeout = l.requestTimeoutMs;
  server.keepAliveTimeout = l.keepAliveTimeoutMs;
  // The global cap is enforced below (Node's maxConnections drops silently and uncounted).
  const perIp = new Map<string, number>();
  let total = 0;
  const onConnection = (socket: Socket) => {
    const ip = socket.remoteAddress ?? '?';
    const n = perIp.get(ip) ?? 0;
    if (n >= l.maxConnectionsPerIp || total >= l.maxConnections) {
      if (n >= l.maxConnectionsPerIp) stats.refusedPerIp++;
      else stats.refusedTotal++;
      socket.destroy();
      return;
    }
    perIp.set(ip, n + 1);
    stats.open = ++total;
    socket.once('close', () => {
      stats.open = --total;
      const m = (perIp.get(ip) ?? 1) - 1;
      if (m <= 0) perIp.delete(ip);
      else perIp.set(ip, m);
    });
  };
  const onUpgrade = (req: IncomingMessage, socket: Duplex) => {
    const tls = socket as TLSSocket;
    if (!tls.authorized) {
      stats.anonymousUpgrades++;
      socket.destroy();
      return;
    }
    let path = '';
    try {
      path = new URL(req.url ?? '/', 'https://x').pathname;
    } catch {
      /* unparsable: unclaimed */
    }
    if (!claimed(path)) {
      stats.unmatchedUpgrades++;
      socket.destroy();
    }
  };
  const onTlsError = (_e: Error, socket: TLSSocket) => {
    stats.tlsErrors++;
    socket.destroy();
  };
  // 'connection' fires for the TCP socket before TLS; prepend so the cap applies before anything else.
  server.prependListener('connection', onConnection);
  // First, so that the endpoints' own listeners see an already destroyed socket and do nothing.
  server.prependListener('upgrade', onUpgrade);
  server.on('tlsClientError', onTlsError);
  return {
    stats,
    remove: () => {
      server.off('connection', onConnection);
      server.off('upgrade', onUpgrade);
      server.off('tlsClientError', onTlsError);
    },
  };
}
