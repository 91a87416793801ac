// The `shoal` command line. Cluster commands talk to the managers over mutual TLS with the admin
// certificate from the context file that `cluster init` wrote; `cluster init|join` and `daemon` talk to
// the local daemon over its unix socket. Errors are one clear line and a non-zero exit code.
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { httpsJson } from '../daemon/https.ts';

class CliError extends Error {}

export interface Context {
  /** Where this context was loaded from (not stored). */
  path?: string;
  clusterId: string;
  managers: string[];
  admin: { key: string; cert: string; ca: string };
}

const DEFAULT_STATE_DIR = '/var/lib/shoal';

function contextPath(flag?: string): string {
  return flag ?? process.env.SHOAL_CONTEXT ?? join(homedir(), '.shoal', 'context.json');
}

export function loadContext(path: string): Context {
  if (!existsSync(path)) throw new CliError(`no cluster context at ${path}: run \`shoal cluster init\` (or set SHOAL_CONTEXT / --context)`);
  return { ...(JSON.parse(readFileSync(path, 'utf8')) as Context), path };
}

export function saveContext(path: string, ctx: Context): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const { path: _p, ...rest } = ctx;
  writeFileSync(path, JSON.stringify(rest, null, 2), { mode: 0o600 });
}

/**
 * Calls the control API on some manager, following leader redirects and skipping dead managers. The
 * context's manager list is refreshed from every answer so the CLI fails over like the agents do.
 */
export async function control(ctx: Context, method: string, path: string, body?: unknown, explicit?: string): Promise<any> {
  // During a leader election managers answer "no leader yet": wait a little and ask again.
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      return await controlOnce(ctx, method, path, body, explicit);
    } catch (e) {
      if (!(e instanceof RetryableError) || Date.now() > deadline) throw e instanceof RetryableError ? new CliError(e.message) : e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

class RetryableError extends Error {}

/**
 * One pass over the managers. A manager that redirects to the leader is followed; one that says "no
 * leader yet" or "no quorum", or redirects to a leader that does not answer (it just died; an election
 * is under way), makes the pass retryable, but the other managers are still asked first — a manager cut
 * off from the majority must not hide a majority that has a leader.
 */
async function controlOnce(ctx: Context, method: string, path: string, body?: unknown, explicit?: string): Promise<any> {
  const queue = explicit ? [explicit] : [...ctx.managers];
  const tried = new Set<string>();
  let lastErr: string | null = null;
  let retryable: string | null = null;
  const redirectedTo = new Set<string>();
  while (queue.length > 0) {
    const m = queue.shift()!;
    if (tried.has(m)) continue;
    tried.add(m);
    let out;
    try {
      out = await httpsJson(m, method, path, body, { ca: ctx.admin.ca, key: ctx.admin.key, cert: ctx.admin.cert });
    } catch (e) {
      lastErr = (e as Error).message;
      if (redirectedTo.has(m)) retryable = `the leader ${m} does not answer (${lastErr}); a new one is being elected`;
      continue;
    }
    if (out.status === 421 && out.body?.error?.leader) {
      const leader = String(out.body.error.leader);
      if (tried.has(leader)) retryable ??= `the managers still name ${leader} as leader; a new one is being elected`;
      else {
        redirectedTo.add(leader);
        queue.unshift(leader);
      }
      continue;
    }
    if (out.managers && out.managers.join(',') !== ctx.managers.join(',') && ctx.path) {
      ctx.managers = [...new Set([...out.managers, ...ctx.managers])];
      saveContext(ctx.path, ctx);
    }
    const code = out.body?.error?.code;
    if (out.status === 503 && (code === 'ENOLEADER' || code === 'ERETRY' || code === 'ENOQUORUM')) {
      retryable = out.body.error.message;
      continue;
    }
    if (out.status >= 400) throw new CliError(out.body?.error?.message ?? `HTTP ${out.status}`);
    return out.body;
  }
  if (retryable) throw new RetryableError(retryable);
  throw new CliError(`no manager reachable (${[...tried].join(', ')}): ${lastErr ?? 'no managers in context'}`);
}

export function localCall(stateDir: string, method: string, path: string, body?: unknown, timeoutMs = 60_000): Promise<any> {
  const socketPath = join(stateDir, 'shoal.sock');
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolvePromise, reject) => {
    const req = httpRequest(
      { socketPath, method, path, timeout: timeoutMs, headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {} },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: any = null;
          try {
            parsed = JSON.parse(text);
          } catch {
            parsed = { error: { message: text } };
          }
          if ((res.statusCode ?? 500) >= 400) reject(new CliError(parsed?.error?.message ?? `HTTP ${res.statusCode}`));
          else resolvePromise(parsed);
        });
      },
    );
    req.on('timeout', () => req.destroy(new CliError(`the local daemon did not answer within ${timeoutMs} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') reject(new CliError(`no Shoal daemon is running for ${stateDir} (start one with \`shoal daemon --state-dir ${stateDir}\`)`));
      else reject(e instanceof CliError ? e : new CliError(e.message));
    });
    if (data) req.write(data);
    req.end();
  });
}

/** '500ms', '1s', '5m', '2h', '90d' → milliseconds. */
export function parseDuration(s: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(s.trim());
  if (!m) throw new CliError(`${what}: invalid duration ${JSON.stringify(s)} (use e.g. 500ms, 10s, 5m, 2h, 90d)`);
  const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms'];
  return Math.round(Number(m[1]) * mult);
}

// -------------------------------------------------------------------- output

export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 3))).join('').trimEnd()).join('\n');
}

function nodeRows(nodes: any[]): string[][] {
  const rows = [['ID', 'HOSTNAME', 'STATUS', 'AVAILABILITY', 'MANAGER STATUS', 'ROLE', 'ADDRESS']];
  const sorted = [...nodes].sort((a, b) => String(a.description?.hostname).localeCompare(String(b.description?.hostname)));
  for (const n of sorted) {
    const ms = n.managerStatus ? (n.managerStatus.leader ? 'Leader' : n.managerStatus.voter ? cap(n.managerStatus.reachability) : 'Joining') : '';
    rows.push([n.id.slice(0, 12), n.description?.hostname ?? '', cap(n.status?.state ?? ''), cap(n.spec?.availability ?? ''), ms, n.spec?.role ?? '', n.status?.addr ?? '']);
  }
  return rows;
}

const cap = (s: string) => (s ? s[0]!.toUpperCase() + s.slice(1) : s);

// -------------------------------------------------------------------- commands

const USAGE = `Usage: shoal <command> [options]

Cluster:
  shoal cluster init [--advertise-addr IP|IFACE] [--listen-port 2377] [--state-dir DIR] [--force-new-cluster]
  shoal cluster join --token TOKEN [--advertise-addr IP|IFACE] [--state-dir DIR] MANAGER[:PORT]
  shoal cluster join-token worker|manager [--rotate] [--quiet]
  shoal cluster leave [--force] [--state-dir DIR]
  shoal cluster inspect
  shoal cluster update [--dispatcher-heartbeat 1s] [--cert-expiry 90d]
  shoal cluster ca --rotate-node-certs
Nodes:
  shoal node ls [--format json]
  shoal node inspect NODE | node ps [--all] NODE   (tasks on a node, with their CPU and memory)
  shoal node update [--label-add k=v]... [--label-rm k]... [--availability active|pause|drain] NODE
  shoal node promote NODE... | node demote NODE...
  shoal node rm [--force] NODE
Services:
  shoal service create [OPTIONS] IMAGE [COMMAND [ARG...]]   (docker service create flags)
  shoal service ls | ps [--all] SERVICE | inspect SERVICE | scale SERVICE=N | rm SERVICE
  shoal service update [OPTIONS] SERVICE | rollback SERVICE
  shoal service logs [-f] [--tail N] [--since 10m|TIME] [-t] [--raw] SERVICE
  shoal task logs [...] TASK | task exec [--timeout S] TASK -- COMMAND [ARG...]
Networks:
  shoal network create [--driver overlay] [--subnet CIDR] [--gateway IP] [--attachable] [--internal] [--ingress] [--label k=v]... NAME
  shoal network ls [--format json] [-q] | inspect NETWORK... | rm NETWORK...
Daemon and lab:
  shoal daemon [--state-dir DIR] [--hostname NAME] [--executor engine|test] [--insecure-registry HOST:PORT]...
  shoal image load [--state-dir DIR] [--tag NAME:TAG] ARCHIVE | image pull REF | image ls|rm IMAGE...|prune [--state-dir DIR]
    (registry credentials for pull: SHOAL_REGISTRY_USER / SHOAL_REGISTRY_PASSWORD)
  shoal volume ls|rm NAME...|prune [--state-dir DIR]   (per node; created on first use by --mount type=volume)
  shoal lab up [--managers 3] [--workers 2] [--name shoal] [--no-demo] [--replicas 6] [--port 8080] | lab down [--name shoal] [--force] | lab ls

Global: --context FILE (default $SHOAL_CONTEXT or ~/.shoal/context.json), --format table|json`;

export async function main(argv: string[]): Promise<number> {
  const [group, sub, ...rest] = argv;
  if (!group || group === '--help' || group === 'help' || group === '-h') {
    console.log(USAGE);
    return 0;
  }
  switch (group) {
    case 'daemon':
      return daemonCmd([sub, ...rest].filter((x): x is string => x !== undefined));
    case 'cluster':
      return clusterCmd(sub, rest);
    case 'node':
      return nodeCmd(sub, rest);
    case 'service': {
      // Service flags are many and docker-shaped: take --context/--format out, hand the rest over as is.
      let ctxFlag: string | undefined;
      let format: string | undefined;
      const restArgs: string[] = [];
      for (let i = 0; i < rest.length; i++) {
        const a = rest[i]!;
        if (a === '--context') ctxFlag = rest[++i];
        else if (a.startsWith('--context=')) ctxFlag = a.slice(10);
        else if (a === '--format' && (sub === 'ls' || sub === 'ps')) format = rest[++i];
        else restArgs.push(a);
      }
      if (sub === 'logs') {
        const { logsCmd } = await import('./logs.ts');
        return logsCmd(loadContext(contextPath(ctxFlag)), 'service', restArgs);
      }
      const { serviceCmd } = await import('./service.ts');
      return serviceCmd(loadContext(contextPath(ctxFlag)), sub, restArgs, format);
    }
    case 'network': {
      const { networkCmd } = await import('./network.ts');
      return networkCmd(sub, rest, (flag) => loadContext(contextPath(flag)));
    }
    case 'task': {
      let ctxFlag: string | undefined;
      const restArgs: string[] = [];
      for (let i = 0; i < rest.length; i++) {
        const a = rest[i]!;
        if (a === '--context' && !restArgs.includes('--')) ctxFlag = rest[++i];
        else restArgs.push(a);
      }
      const { logsCmd, taskExecCmd } = await import('./logs.ts');
      if (sub === 'logs') return logsCmd(loadContext(contextPath(ctxFlag)), 'task', restArgs);
      if (sub === 'exec') return taskExecCmd(loadContext(contextPath(ctxFlag)), restArgs);
      throw new CliError(`unknown task command '${sub ?? ''}' (logs, exec)`);
    }
    case 'image': {
      const { values, positionals } = opts(rest, { 'state-dir': { type: 'string' }, tag: { type: 'string' } });
      const stateDir = resolve(String(values['state-dir'] ?? DEFAULT_STATE_DIR));
      if (sub === 'load') {
        if (positionals.length !== 1) throw new CliError('image load needs one archive (docker save or OCI layout)');
        const r = await localCall(stateDir, 'POST', '/images/load', { path: resolve(positionals[0]!), ...(values.tag ? { tag: values.tag } : {}) });
        console.log(`Loaded image: ${r.name} (${String(r.digest).slice(0, 19)})`);
        return 0;
      }
      if (sub === 'ls') {
        const list = await localCall(stateDir, 'GET', '/images');
        const rows = [['NAME', 'IMAGE ID', 'LAYERS']];
        for (const i of list) rows.push([String(i.name ?? i.names?.[0] ?? '<none>'), String(i.digest ?? i.id ?? '').replace('sha256:', '').slice(0, 12), String(i.layers?.length ?? i.chainIds?.length ?? '')]);
        console.log(table(rows));
        return 0;
      }
      if (sub === 'pull') {
        if (positionals.length !== 1) throw new CliError('image pull needs one image reference');
        const user = process.env.SHOAL_REGISTRY_USER;
        const password = process.env.SHOAL_REGISTRY_PASSWORD;
        const r = await localCall(stateDir, 'POST', '/images/pull', { ref: positionals[0], ...(user && password ? { username: user, password } : {}) }, 600_000);
        console.log(`Pulled image: ${r.name} (${String(r.digest).slice(0, 19)})`);
        return 0;
      }
      if (sub === 'rm') {
        if (positionals.length === 0) throw new CliError('image rm needs at least one image');
        const r = await localCall(stateDir, 'POST', '/images/rm', { refs: positionals });
        for (const x of r.removed as string[]) console.log(`Untagged: ${x}`);
        return 0;
      }
      if (sub === 'prune') {
        const r = await localCall(stateDir, 'POST', '/images/prune', {});
        for (const x of r.removed as string[]) console.log(`Deleted: ${x}`);
        console.log(`${(r.removed as string[]).length} image(s) removed; layers no image uses were garbage-collected`);
        return 0;
      }
      throw new CliError(`unknown image command '${sub ?? ''}' (load, ls, rm, prune)`);
    }
    case 'volume': {
      const { values, positionals } = opts(rest, { 'state-dir': { type: 'string' } });
      const stateDir = resolve(String(values['state-dir'] ?? DEFAULT_STATE_DIR));
      if (sub === 'ls') {
        const list = (await localCall(stateDir, 'GET', '/volumes')) as { name: string; users?: string[]; anonymous?: boolean }[];
        const rows = [['DRIVER', 'VOLUME NAME', 'IN USE BY']];
        for (const v of list) rows.push(['local', v.name, (v.users ?? []).map((u) => u.slice(0, 12)).join(',')]);
        console.log(table(rows));
        return 0;
      }
      if (sub === 'rm') {
        if (positionals.length === 0) throw new CliError('volume rm needs at least one volume');
        await localCall(stateDir, 'POST', '/volumes/rm', { names: positionals });
        for (const n of positionals) console.log(n);
        return 0;
      }
      if (sub === 'prune') {
        const r = await localCall(stateDir, 'POST', '/volumes/prune', {});
        for (const n of r.removed as string[]) console.log(`Deleted: ${n}`);
        return 0;
      }
      throw new CliError(`unknown volume command '${sub ?? ''}' (ls, rm, prune; volumes are created on first use by a task's --mount type=volume,source=NAME)`);
    }
    case 'lab': {
      const { labCmd } = await import('./lab.ts');
      return labCmd(sub, rest);
    }
    default:
      throw new CliError(`unknown command '${group}' (see shoal --help)`);
  }
}

type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

function opts(args: string[], options: OptionSpec): { values: Record<string, any>; positionals: string[] } {
  try {
    const r = parseArgs({ args, options: { context: { type: 'string' }, format: { type: 'string' }, ...options }, allowPositionals: true, strict: true });
    return { values: r.values as Record<string, any>, positionals: r.positionals };
  } catch (e) {
    throw new CliError((e as Error).message.replace(/^.*?: /, ''));
  }
}

async function daemonCmd(args: string[]): Promise<number> {
  const { values } = opts(args, { 'state-dir': { type: 'string' }, hostname: { type: 'string' }, 'election-ms': { type: 'string' }, executor: { type: 'string' }, 'insecure-registry': { type: 'string', multiple: true }, 'netns-prefix': { type: 'string' } });
  const stateDir = resolve(String(values['state-dir'] ?? DEFAULT_STATE_DIR));
  if (values.executor !== undefined && values.executor !== 'engine' && values.executor !== 'test') throw new CliError('--executor must be engine or test');
  const { Daemon } = await import('../daemon/daemon.ts'); // only the daemon needs the manager and the engine
  const d = new Daemon({
    stateDir,
    ...(values.executor ? { executor: values.executor as 'engine' | 'test' } : {}),
    ...(values.hostname ? { hostname: String(values.hostname) } : {}),
    ...(values['insecure-registry'] ? { insecureRegistries: values['insecure-registry'] as string[] } : {}),
    ...(values['netns-prefix'] ? { netnsPrefix: String(values['netns-prefix']) } : {}),
    ...(values['election-ms'] ? { timing: { electionMs: Number(values['election-ms']) } } : {}),
  });
  await d.start();
  const stop = async (sig: string) => {
    console.log(`${new Date().toISOString()} ${sig}: stopping`);
    await d.stop().catch(() => {});
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  await new Promise(() => {});
  return 0;
}

async function clusterCmd(sub: string | undefined, args: string[]): Promise<number> {
  switch (sub) {
    case 'init': {
      const { values } = opts(args, { 'advertise-addr': { type: 'string' }, 'listen-port': { type: 'string' }, 'state-dir': { type: 'string' }, 'force-new-cluster': { type: 'boolean' } });
      const stateDir = resolve(String(values['state-dir'] ?? DEFAULT_STATE_DIR));
      if (values['force-new-cluster']) {
        const r = await localCall(stateDir, 'POST', '/init', { forceNewCluster: true });
        const path = contextPath(values.context as string | undefined);
        if (existsSync(path)) {
          const ctx = loadContext(path);
          if (ctx.clusterId === r.clusterId) saveContext(path, { ...ctx, managers: r.managers });
        }
        console.log(`Forced a new cluster from this manager's state (${r.recovered.entriesReplayed} log entries replayed, index ${r.recovered.index}).`);
        if (r.recovered.demoted.length > 0) console.log(`Demoted ${r.recovered.demoted.length} unreachable managers to workers; promote nodes again to restore fault tolerance.`);
        return 0;
      }
      const r = await localCall(stateDir, 'POST', '/init', { advertiseAddr: values['advertise-addr'], ...(values['listen-port'] ? { listenPort: Number(values['listen-port']) } : {}) });
      const path = contextPath(values.context as string | undefined);
      saveContext(path, { clusterId: r.clusterId, managers: r.managers, admin: r.admin });
      console.log(`Cluster initialized: this node (${r.nodeId}) is now a manager.\n`);
      console.log(`To add a worker to this cluster, run on the worker:\n\n    shoal cluster join --token ${r.joinTokens.worker} ${r.managers[0]}\n`);
      console.log(`To add a manager, run \`shoal cluster join-token manager\` and follow the instructions.`);
      console.log(`Admin credentials written to ${path}`);
      return 0;
    }
    case 'join': {
      const { values, positionals } = opts(args, { token: { type: 'string' }, 'advertise-addr': { type: 'string' }, 'listen-port': { type: 'string' }, 'state-dir': { type: 'string' } });
      if (!values.token) throw new CliError('cluster join needs --token');
      if (positionals.length !== 1) throw new CliError('cluster join needs exactly one manager address (host[:port])');
      const stateDir = resolve(String(values['state-dir'] ?? DEFAULT_STATE_DIR));
      const r = await localCall(stateDir, 'POST', '/join', { token: values.token, remote: positionals[0], advertiseAddr: values['advertise-addr'], ...(values['listen-port'] ? { listenPort: Number(values['listen-port']) } : {}) });
      console.log(`This node joined the cluster as a ${r.role} (node id ${r.nodeId}).`);
      return 0;
    }
    case 'leave': {
      const { values } = opts(args, { force: { type: 'boolean', short: 'f' }, 'state-dir': { type: 'string' } });
      const stateDir = resolve(String(values['state-dir'] ?? DEFAULT_STATE_DIR));
      const r = await localCall(stateDir, 'POST', '/leave', { force: values.force ?? false });
      console.log(`Node left cluster ${r.left}.`);
      return 0;
    }
    case 'join-token': {
      const { values, positionals } = opts(args, { rotate: { type: 'boolean' }, quiet: { type: 'boolean', short: 'q' } });
      const role = positionals[0];
      if (role !== 'worker' && role !== 'manager') throw new CliError('cluster join-token needs worker or manager');
      const ctx = loadContext(contextPath(values.context as string | undefined));
      if (values.rotate) await control(ctx, 'POST', '/v1/join-tokens/rotate', { role });
      const t = await control(ctx, 'GET', '/v1/join-tokens');
      if (values.quiet) console.log(t[role]);
      else console.log(`To add a ${role} to this cluster, run:\n\n    shoal cluster join --token ${t[role]} ${t.managers[0]}\n`);
      return 0;
    }
    case 'inspect': {
      const { values } = opts(args, {});
      const ctx = loadContext(contextPath(values.context as string | undefined));
      console.log(JSON.stringify(await control(ctx, 'GET', '/v1/cluster'), null, 2));
      return 0;
    }
    case 'update': {
      const { values } = opts(args, { 'dispatcher-heartbeat': { type: 'string' }, 'cert-expiry': { type: 'string' } });
      const body: Record<string, number> = {};
      if (values['dispatcher-heartbeat']) body.heartbeatPeriodMs = parseDuration(values['dispatcher-heartbeat'], '--dispatcher-heartbeat');
      if (values['cert-expiry']) body.nodeCertValidityMs = parseDuration(values['cert-expiry'], '--cert-expiry');
      if (Object.keys(body).length === 0) throw new CliError('cluster update needs --dispatcher-heartbeat and/or --cert-expiry');
      const ctx = loadContext(contextPath(values.context as string | undefined));
      await control(ctx, 'POST', '/v1/cluster/update', body);
      console.log('Cluster updated.');
      return 0;
    }
    case 'ca': {
      const { values } = opts(args, { 'rotate-node-certs': { type: 'boolean' } });
      if (!values['rotate-node-certs']) throw new CliError('cluster ca needs --rotate-node-certs');
      const ctx = loadContext(contextPath(values.context as string | undefined));
      const r = await control(ctx, 'POST', '/v1/cluster/rotate-node-certs');
      console.log(`Asked ${r.notified} connected nodes to renew their certificates.`);
      return 0;
    }
    default:
      throw new CliError(`unknown cluster command '${sub ?? ''}' (init, join, join-token, leave, inspect, update, ca)`);
  }
}

async function nodeCmd(sub: string | undefined, args: string[]): Promise<number> {
  switch (sub) {
    case 'ls': {
      const { values } = opts(args, {});
      const ctx = loadContext(contextPath(values.context as string | undefined));
      const nodes = await control(ctx, 'GET', '/v1/nodes');
      console.log(values.format === 'json' ? JSON.stringify(nodes, null, 2) : table(nodeRows(nodes)));
      return 0;
    }
    case 'ps': {
      // Docker's `node ps`, plus the CPU and memory each task's node last reported.
      const { values, positionals } = opts(args, { all: { type: 'boolean', short: 'a' } });
      const ctx = loadContext(contextPath(values.context as string | undefined));
      if (positionals.length !== 1) throw new CliError('node ps needs one node (id, id prefix or hostname)');
      const node = await control(ctx, 'GET', `/v1/nodes/${encodeURIComponent(positionals[0]!)}`);
      const tasks = (await control(ctx, 'GET', `/v1/tasks?node=${encodeURIComponent(node.id)}${values.all ? '&all=1' : ''}`)) as any[];
      if (values.format === 'json') {
        console.log(JSON.stringify(tasks, null, 2));
        return 0;
      }
      const mib = (b: number) => `${(b / 1048576).toFixed(1)}MiB`;
      const rows = [['ID', 'NAME', 'IMAGE', 'DESIRED STATE', 'CURRENT STATE', 'CPU %', 'MEM', 'ERROR']];
      for (const t of [...tasks].sort((a, b) => String(a.serviceAnnotations?.name).localeCompare(String(b.serviceAnnotations?.name)) || (a.slot ?? 0) - (b.slot ?? 0))) {
        const u = t.usage;
        rows.push([
          t.id.slice(0, 12),
          `${t.serviceAnnotations?.name ?? t.serviceId}.${t.slot ?? node.description?.hostname ?? ''}`,
          String(t.spec.image).replace(/@sha256:([a-f0-9]{12})[a-f0-9]*/, '@$1…'),
          t.desiredState,
          t.status.state,
          u?.cpuPercent !== undefined ? u.cpuPercent.toFixed(1) : '-',
          u ? mib(u.memoryBytes) : '-',
          t.status.err ?? '',
        ]);
      }
      console.log(table(rows));
      return 0;
    }
    case 'inspect': {
      const { values, positionals } = opts(args, {});
      if (positionals.length !== 1) throw new CliError('node inspect needs one node (id, id prefix or hostname)');
      const ctx = loadContext(contextPath(values.context as string | undefined));
      console.log(JSON.stringify(await control(ctx, 'GET', `/v1/nodes/${encodeURIComponent(positionals[0]!)}`), null, 2));
      return 0;
    }
    case 'update': {
      const { values, positionals } = opts(args, { 'label-add': { type: 'string', multiple: true }, 'label-rm': { type: 'string', multiple: true }, availability: { type: 'string' } });
      if (positionals.length !== 1) throw new CliError('node update needs one node (id, id prefix or hostname)');
      const labelAdd: Record<string, string> = {};
      for (const kv of (values['label-add'] as string[] | undefined) ?? []) {
        const i = kv.indexOf('=');
        if (i <= 0) throw new CliError(`--label-add ${kv}: expected key=value`);
        labelAdd[kv.slice(0, i)] = kv.slice(i + 1);
      }
      const ctx = loadContext(contextPath(values.context as string | undefined));
      const n = await control(ctx, 'POST', `/v1/nodes/${encodeURIComponent(positionals[0]!)}/update`, {
        labelAdd,
        labelRm: values['label-rm'] ?? [],
        ...(values.availability ? { availability: values.availability } : {}),
      });
      console.log(n.id);
      return 0;
    }
    case 'promote':
    case 'demote': {
      const { values, positionals } = opts(args, {});
      if (positionals.length === 0) throw new CliError(`node ${sub} needs at least one node`);
      const ctx = loadContext(contextPath(values.context as string | undefined));
      for (const ref of positionals) {
        await control(ctx, 'POST', `/v1/nodes/${encodeURIComponent(ref)}/${sub}`);
        console.log(`Node ${ref} ${sub}d ${sub === 'promote' ? 'to a manager' : 'to a worker'} in the cluster.`);
      }
      return 0;
    }
    case 'rm': {
      const { values, positionals } = opts(args, { force: { type: 'boolean', short: 'f' } });
      if (positionals.length !== 1) throw new CliError('node rm needs one node');
      const ctx = loadContext(contextPath(values.context as string | undefined));
      const r = await control(ctx, 'DELETE', `/v1/nodes/${encodeURIComponent(positionals[0]!)}${values.force ? '?force=1' : ''}`);
      console.log(r.removed);
      return 0;
    }
    default:
      throw new CliError(`unknown node command '${sub ?? ''}' (ls, inspect, update, promote, demote, rm)`);
  }
}

// Run when executed directly.
const invoked = process.argv[1] ? resolve(process.argv[1]) : '';
if (invoked.endsWith('cli/shoal.ts') || invoked.endsWith('/shoal')) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      console.error(`shoal: ${e instanceof CliError || (e as Error).name === 'ApiError' ? (e as Error).message : (e as Error).stack ?? String(e)}`);
      process.exit(1);
    },
  );
}

export { CliError };
