// The metrics endpoint: plain HTTP on the operator's --metrics-addr only (never on the managers' secure
// port), GET /metrics in Prometheus text format. Metrics carry no secrets, and keeping them off 2377
// means a scraper needs no cluster certificate; bind it to loopback or a management network.
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

export class MetricsAddrError extends Error {
  constructor(
    readonly value: string,
    why: string,
  ) {
    super(`--metrics-addr ${JSON.stringify(value)}: ${why} (expected HOST:PORT, e.g. 127.0.0.1:9323)`);
    this.name = 'MetricsAddrError';
  }
}

/** Parses HOST:PORT (IPv6 as [::1]:9323). Port 0 picks a free port. */
export function parseMetricsAddr(value: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(value);
  if (!m) throw new MetricsAddrError(value, 'not HOST:PORT');
  const port = Number(m[3]);
  if (port > 65535) throw new MetricsAddrError(value, `port ${port} is out of range`);
  return { host: (m[1] ?? m[2])!, port };
}

export interface MetricsServer {
  /** The bound address (useful with port 0). */
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

export async function serveMetrics(reg: Registry, addr: string): Promise<MetricsServer> {
  const { host, port } = parseMetricsAddr(addr);
  const srv: Server = createServer({ requestTimeout: 30_000, headersTimeout: 10_000, keepAliveTimeout: 5_000 }, (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only /metrics is served here\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end(`${req.method} is not allowed on /metrics\n`);
      return;
    }
    reg.metrics().then(
      (text) => res.writeHead(200, { 'content-type': reg.contentType }).end(req.method === 'HEAD' ? undefined : text),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`collecting metrics failed: ${(err as Error).message}\n`),
    );
  });
  // Scrapers are few; a bound on connections keeps a misbehaving one from holding many sockets.
  srv.maxConnections = 64;
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(port, host, () => {
      srv.off('error', reject);
      resolve();
    });
  });
  const a = srv.address();
  const bound = typeof a === 'object' && a ? { host, port: a.port } : { host, port };
  return {
    address: bound,
    close: () =>
      new Promise<void>((r) => {
        srv.close(() => r());
        srv.closeAllConnections();
      }),
  };
}
