// `shoal dashboard [--listen 127.0.0.1:PORT]`: a live web view of the cluster, served from the admin's
// machine with the admin's context (the managers serve nothing new). Prints a URL with a one-time token
// and runs in the foreground until Ctrl-C. See docs/design/dashboard.md.
import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CliError, control, type Context } from '../../client/context.ts';
import type { Invocation } from '../command.ts';
import { openNdjson } from '../../client/ndjson.ts';
import { startDashboard, type ActionApi } from './server.ts';
import { LiveSource, type ClusterApi } from './source.ts';
import { UsageFeed } from './usage.ts';

export const DEFAULT_LISTEN = '127.0.0.1:7373';
/** dist/web of this checkout (scripts/build-web.mjs writes it at install time). */
const STATIC_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'web');

/** `HOST:PORT` or `[V6]:PORT` → parts; a clear error naming --listen otherwise. */
export function parseListen(v: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(v);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!m || host === undefined || !(port >= 0 && port <= 65535))
    throw new CliError(`--listen must be HOST:PORT, e.g. ${DEFAULT_LISTEN} (got ${JSON.stringify(v)})`);
  if (host !== 'localhost' && isIP(host) === 0) throw new CliError(`--listen: ${JSON.stringify(host)} is not an IP address (or localhost)`);
  return { host: host === 'localhost' ? '127.0.0.1' : host, port };
}

const isLoopback = (h: string) => h === '127.0.0.1' || h === '::1' || h.startsWith('127.');

/** Without a byte for this long the events stream (a keepalive every 15 s) is dead. */
const EVENTS_IDLE_MS = 40_000;

/** The cluster through the admin context: control() for JSON (leader-following, failover), client/ndjson.ts for streams. */
export function contextApi(ctx: Context): ClusterApi & ActionApi {
  return {
    clusterId: ctx.clusterId,
    get: <T>(path: string, manager?: string) => control<T>(ctx, 'GET', path, undefined, manager),
    // control() has already retried what is worth retrying; what it throws carries the cluster's status
    // when a manager refused (server.ts keeps a 4xx), and none when no manager answered (a 502).
    post: <T>(path: string, body: unknown) => control<T>(ctx, 'POST', path, body),
    // The events stream sends a keepalive every 15 s, so silence means it is dead; a log stream may be
    // quiet for as long as the service is.
    stream: (path, h) =>
      openNdjson(ctx, { path, ...(path.startsWith('/v1/events') ? { idleMs: EVENTS_IDLE_MS } : {}) }, { ...h, onEnd: (e) => h.onEnd(e?.message) }),
    managers: () => ctx.managers,
  };
}

export async function dashboardCmd(i: Invocation): Promise<number> {
  if (i.positionals.length > 0) throw new CliError(`${i.name} takes no arguments`);
  const { host, port } = parseListen(i.value('listen') ?? DEFAULT_LISTEN);
  if (!existsSync(join(STATIC_DIR, 'index.html')) || !existsSync(join(STATIC_DIR, 'app.js')))
    throw new CliError(`the dashboard's page is not built (${STATIC_DIR}): run \`bash scripts/install.sh\` or \`node scripts/build.mjs\``);
  const ctx = i.context();
  const api = contextApi(ctx);
  const log = (l: string) => process.stderr.write(`${new Date().toISOString()} ${l}\n`);
  const source = new LiveSource(api, log);
  const usage = new UsageFeed(api.get);
  const localAddrs = Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((a) => a.address));
  let d: Awaited<ReturnType<typeof startDashboard>>;
  try {
    d = await startDashboard({ host, port, staticDir: STATIC_DIR, source, usage, api, contextName: basename(ctx.path ?? 'context'), localAddrs, log });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE') throw new CliError(`--listen ${host}:${port}: the address is in use (pick another port, or :0 for any)`);
    if (err.code === 'EADDRNOTAVAIL') throw new CliError(`--listen ${host}:${port}: not an address of this machine`);
    throw e;
  }
  source.start();
  if (!isLoopback(host)) process.stderr.write(`shoal dashboard: warning: ${host} is not loopback; the page and its token travel in plain HTTP\n`);
  console.log(`shoal dashboard: cluster ${ctx.clusterId.slice(0, 12)} (${ctx.managers.length} managers in ${ctx.path})`);
  console.log(`shoal dashboard: open ${d.url}`);
  console.log('shoal dashboard: the link works once (it becomes a cookie in the browser that opens it); Ctrl-C stops the dashboard');
  await new Promise<void>((resolveStop) => {
    const stop = () => resolveStop();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  source.stop();
  usage.stop();
  await d.close();
  return 0;
}
