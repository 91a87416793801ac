// Requests the leader makes to nodes over their dispatcher sessions — task logs, exec in a container —
// and the resource usage nodes report, plus the control-API routes built on them:
//
//   GET  /v1/logs?service=S|task=T[&tail=N][&since=ISO][&follow=1]   newline-delimited JSON
//   POST /v1/tasks/:id/exec  {args, timeoutMs}                        {exitCode, stdout, stderr} (base64)
//
// `service logs` merges the logs of every task of a service on every node. A node that is down or
// disconnected, or that fails to answer, yields a `{"warning": …}` line — never a failed command: the
// logs that can be had are still shown (Docker's `service logs` fails or hangs instead).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { LogLine, LogRequestOptions, ManagerToAgent, TaskUsage } from '../dispatcher/protocol.ts';
import type { Node, Task } from '../store/objects.ts';
import type { Store } from '../store/store.ts';
import { ApiError, badRequest, notFound, queryParam, readJson, type Router } from './http.ts';
import { resolveService } from './services.ts';

interface LogCall {
  kind: 'logs';
  nodeId: string;
  onLines: (lines: LogLine[]) => void;
  onEnd: (error?: string) => void;
}
interface ExecCall {
  kind: 'exec';
  nodeId: string;
  resolve: (r: { exitCode: number; stdout: string; stderr: string }) => void;
  reject: (e: Error) => void;
}

export class RemoteCalls {
  private pending = new Map<string, LogCall | ExecCall>();
  private usage = new Map<string, { at: number; u: TaskUsage; cpuPercent?: number }>();

  constructor(private readonly send: (nodeId: string, m: ManagerToAgent) => boolean) {}

  private id(): string {
    return randomBytes(8).toString('hex');
  }

  /** Starts a logs request; returns a cancel function, or null if the node has no session. */
  logs(nodeId: string, taskIds: string[], opts: LogRequestOptions, onLines: LogCall['onLines'], onEnd: LogCall['onEnd']): (() => void) | null {
    const req = this.id();
    if (!this.send(nodeId, { t: 'logs', req, taskIds, ...opts })) return null;
    this.pending.set(req, { kind: 'logs', nodeId, onLines, onEnd });
    return () => {
      if (this.pending.delete(req)) this.send(nodeId, { t: 'logs-cancel', req });
    };
  }

  exec(nodeId: string, taskId: string, args: string[], timeoutMs: number): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    const req = this.id();
    return new Promise((resolve, reject) => {
      if (!this.send(nodeId, { t: 'exec', req, taskId, args, timeoutMs })) {
        reject(new ApiError(503, 'ENODEDOWN', `node ${nodeId} is not connected`));
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(req);
        reject(new ApiError(504, 'ETIMEDOUT', `no answer from node ${nodeId} within ${timeoutMs + 5000} ms`));
      }, timeoutMs + 5000);
      this.pending.set(req, {
        kind: 'exec',
        nodeId,
        resolve: (r) => (clearTimeout(timer), resolve(r)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
    });
  }

  /** A node's answer arrived over its session. */
  onLog(nodeId: string, req: string, lines: LogLine[]): void {
    const c = this.pending.get(req);
    if (c?.kind === 'logs' && c.nodeId === nodeId) c.onLines(lines);
  }

  onLogEnd(nodeId: string, req: string, error?: string): void {
    const c = this.pending.get(req);
    if (c?.kind !== 'logs' || c.nodeId !== nodeId) return;
    this.pending.delete(req);
    c.onEnd(error);
  }

  onExecResult(nodeId: string, m: { req: string; exitCode?: number; stdout?: string; stderr?: string; error?: string }): void {
    const c = this.pending.get(m.req);
    if (c?.kind !== 'exec' || c.nodeId !== nodeId) return;
    this.pending.delete(m.req);
    if (m.error !== undefined || m.exitCode === undefined) c.reject(new ApiError(409, 'EEXEC', m.error ?? 'exec failed'));
    else c.resolve({ exitCode: m.exitCode, stdout: m.stdout ?? '', stderr: m.stderr ?? '' });
  }

  onUsage(at: number, tasks: Record<string, TaskUsage>): void {
    for (const [id, u] of Object.entries(tasks)) {
      const prev = this.usage.get(id);
      const dt = prev ? at - prev.at : 0;
      const cpuPercent = prev && dt > 0 ? Math.max(0, ((u.cpuNanos - prev.u.cpuNanos) / (dt * 1e6)) * 100) : undefined;
      this.usage.set(id, { at, u, ...(cpuPercent !== undefined ? { cpuPercent } : {}) });
    }
    // forget tasks not reported for a minute
    for (const [id, v] of this.usage) if (at - v.at > 60_000) this.usage.delete(id);
  }

  usageOf(taskId: string): { cpuPercent?: number; memoryBytes: number; at: string } | undefined {
    const v = this.usage.get(taskId);
    return v ? { memoryBytes: v.u.memoryBytes, ...(v.cpuPercent !== undefined ? { cpuPercent: Math.round(v.cpuPercent * 10) / 10 } : {}), at: new Date(v.at).toISOString() } : undefined;
  }

  /** The node's session ended: its pending requests end with a warning/error. */
  nodeGone(nodeId: string): void {
    for (const [req, c] of this.pending) {
      if (c.nodeId !== nodeId) continue;
      this.pending.delete(req);
      if (c.kind === 'logs') c.onEnd(`node ${nodeId} disconnected`);
      else c.reject(new ApiError(503, 'ENODEDOWN', `node ${nodeId} disconnected`));
    }
  }
}

export interface RemoteRouteDeps {
  store: Store;
  calls: RemoteCalls;
  requireLeader: () => void;
  linearizable: () => Promise<void>;
}

const ENDED = new Set(['complete', 'shutdown', 'failed', 'rejected', 'remove', 'orphaned']);

function nodeLabel(n: Node | undefined, id: string): string {
  return n ? `${n.description.hostname} (${id.slice(0, 12)})` : id.slice(0, 12);
}

export function registerRemoteRoutes<C>(r: Router<C>, d: RemoteRouteDeps): void {
  r.add('GET', '/v1/logs', async (_c, _p, req: IncomingMessage, res: ServerResponse) => {
    d.requireLeader(); // the sessions live on the leader
    await d.linearizable();
    const svcRef = queryParam(req, 'service');
    const taskRef = queryParam(req, 'task');
    const tailRaw = queryParam(req, 'tail');
    const sinceRaw = queryParam(req, 'since');
    const follow = queryParam(req, 'follow') === '1';
    const opts: LogRequestOptions = { follow };
    if (tailRaw && tailRaw !== 'all') {
      const n = Number(tailRaw);
      if (!Number.isInteger(n) || n < 0) throw badRequest(`tail must be a non-negative integer or "all" (got ${tailRaw})`);
      opts.tail = n;
    }
    if (sinceRaw) {
      if (Number.isNaN(Date.parse(sinceRaw))) throw badRequest(`since must be a timestamp or a duration (got ${sinceRaw})`);
      opts.since = new Date(sinceRaw).toISOString();
    }
    let tasks: Task[];
    let what: string;
    if (taskRef) {
      const all = d.store.view((tx) => tx.list('task')) as Task[];
      const t = all.find((x) => x.id === taskRef) ?? (() => {
        const m = all.filter((x) => x.id.startsWith(taskRef));
        if (m.length > 1) throw badRequest(`task reference ${taskRef} is ambiguous (${m.length} tasks match)`);
        return m[0];
      })();
      if (!t) throw notFound(`task ${taskRef} not found`);
      tasks = [t];
      what = `task ${t.id}`;
    } else if (svcRef) {
      const s = resolveService(d.store, svcRef);
      tasks = d.store.view((tx) => tx.tasksByService(s.id)) as Task[];
      what = `service ${s.spec.name}`;
    } else throw badRequest('logs needs service= or task=');
    // Tasks that ran somewhere: their logs live on their node (until the task is removed there).
    tasks = tasks.filter((t) => t.nodeId && (t.status.state === 'running' || t.status.state === 'starting' || ENDED.has(t.status.state)) && t.status.state !== 'rejected');
    const byNode = new Map<string, Task[]>();
    for (const t of tasks) byNode.set(t.nodeId!, [...(byNode.get(t.nodeId!) ?? []), t]);
    const nodes = new Map((d.store.view((tx) => tx.list('node')) as Node[]).map((n) => [n.id, n]));
    const taskName = new Map(tasks.map((t) => [t.id, `${t.serviceAnnotations.name}.${t.slot ?? t.nodeId}.${t.id}`]));

    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    const write = (o: unknown) => res.write(`${JSON.stringify(o)}\n`);
    const cancels: (() => void)[] = [];
    const buffered: LogLine[] = [];
    let open = 0;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      if (!follow) {
        buffered.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
        for (const l of buffered) write(decorate(l));
      }
      res.end();
    };
    const decorate = (l: LogLine) => {
      const t = tasks.find((x) => x.id === l.taskId);
      const n = t?.nodeId ? nodes.get(t.nodeId) : undefined;
      return { task: taskName.get(l.taskId) ?? l.taskId, taskId: l.taskId, node: n?.description.hostname ?? t?.nodeId ?? '?', ts: l.ts, stream: l.stream, line: l.line };
    };
    req.on('close', () => {
      for (const c of cancels) c();
      finished = true;
    });
    if (byNode.size === 0) write({ info: `${what} has no task that ran on a node yet` });
    for (const [nodeId, ts] of byNode) {
      const n = nodes.get(nodeId);
      if (n && n.status.state !== 'ready') {
        write({ warning: `node ${nodeLabel(n, nodeId)} is ${n.status.state}: logs of ${ts.length} task(s) unavailable` });
        continue;
      }
      open++;
      const cancel = d.calls.logs(
        nodeId,
        ts.map((t) => t.id),
        opts,
        (lines) => {
          if (finished) return;
          if (follow) for (const l of lines) write(decorate(l));
          else buffered.push(...lines);
        },
        (error) => {
          if (error && !finished) write({ warning: `node ${nodeLabel(n, nodeId)}: ${error}` });
          if (--open === 0) finish();
        },
      );
      if (cancel === null) {
        open--;
        write({ warning: `node ${nodeLabel(n, nodeId)} is not connected: logs of ${ts.length} task(s) unavailable` });
      } else cancels.push(cancel);
    }
    if (open === 0) finish();
    return undefined;
  });

  r.add('POST', '/v1/tasks/:id/exec', async (_c, p, req) => {
    const b = (await readJson(req)) as { args?: unknown; timeoutMs?: unknown };
    if (!Array.isArray(b.args) || b.args.length === 0 || !b.args.every((a) => typeof a === 'string')) throw badRequest('exec needs a command (args: a non-empty list of strings)');
    const timeoutMs = b.timeoutMs === undefined ? 60_000 : Number(b.timeoutMs);
    if (!Number.isInteger(timeoutMs) || timeoutMs < 100 || timeoutMs > 3600_000) throw badRequest('timeoutMs must be between 100 ms and 1 h');
    d.requireLeader();
    await d.linearizable();
    const all = d.store.view((tx) => tx.list('task')) as Task[];
    const hits = all.filter((t) => t.id === p.id || t.id.startsWith(p.id!));
    if (hits.length > 1 && !hits.some((t) => t.id === p.id)) throw badRequest(`task reference ${p.id} is ambiguous`);
    const t = hits.find((x) => x.id === p.id) ?? hits[0];
    if (!t) throw notFound(`task ${p.id} not found`);
    if (t.status.state !== 'running' || !t.nodeId) throw new ApiError(409, 'ENOTRUNNING', `task ${t.id} is not running (${t.status.state})`);
    return d.calls.exec(t.nodeId, t.id, b.args as string[], timeoutMs);
  });
}
