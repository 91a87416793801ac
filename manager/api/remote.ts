// Requests the leader makes to nodes over their dispatcher sessions — task logs, exec in a container —
// and the resource usage nodes report, plus the control-API routes built on them:
//
//   GET  /v1/logs?service=S|task=T[&tail=N][&since=ISO][&follow=1]   newline-delimited JSON
//   POST /v1/tasks/:id/exec  {args, timeoutMs}                        newline-delimited JSON:
//        {"stream":"stdout"|"stderr","data":base64}… then {"exitCode":N} (or {"error":{code,message}})
//
// `service logs` merges the logs of every task of a service on every node. A node that is down or
// disconnected, or that fails to answer, yields a `{"warning": …}` line — never a failed command: the
// logs that can be had are still shown (Docker's `service logs` fails or hangs instead).
//
// Nothing is held whole on the leader: a log line arrives in chunks of at most 16 KiB (every chunk but
// a line's last has `"partial": true`, and a line's chunks are contiguous in the output; a client joins
// them), nodes send each task at most a window ahead of what the leader has written to its client
// (log-merge.ts, worker/logs/), and exec output is passed on piece by piece the same way. A node that
// sends more than its window, lines of tasks it was not asked for, or exec pieces out of order has its
// request ended and the message counted as a protocol violation.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import {
  EXEC_CHUNK_BYTES,
  EXEC_WINDOW_BYTES,
  LOG_CHUNK_BYTES,
  LOG_WINDOW_BYTES,
  logWindowFor,
  type LogLine,
  type LogRequestOptions,
  type ManagerToAgent,
  type TaskUsage,
} from '../../api/dispatcher.ts';
import type { Node, Task } from '../../api/objects.ts';
import type { Store } from '../store/store.ts';
import { ProtocolViolation } from '../../transport/session.ts';
import { logChunkCost } from '../../api/log-chunk.ts';
import { ApiError, badRequest, notFound, queryParam, readJson, sendError, type Router } from './http.ts';
import { LogMerge } from './log-merge.ts';
import { MAX_ERROR_TEXT, validateExecOutput, validateExecResult, validateLog, validateLogEnd } from './remote-validate.ts';
import { resolveService } from './services.ts';

/** Logs streams and execs the leader serves at once (each holds up to a window per task). */
export const MAX_LOG_STREAMS = 32;
export const MAX_EXECS = 32;
/** A node may overshoot its window by one chunk (it reserves before it knows the ack is on its way). */
const LOG_SLACK = LOG_CHUNK_BYTES + 64;
/** Follow: how long one task's open line may hold up the others (then it is cut and goes on later). */
const OPEN_LINE_MS = 2_000;
/** Tasks taken from one usage report, and kept in the usage table (every running task of a big cluster fits). */
const MAX_USAGE_PER_REPORT = 10_000;
const MAX_USAGE_ENTRIES = 200_000;

export interface LogHandlers {
  onChunk: (c: LogLine) => void;
  /** One task's part is complete (or failed). */
  onTaskEnd: (taskId: string, error?: string) => void;
  /** The whole request is complete, failed, or the node went away. */
  onEnd: (error?: string) => void;
}

export interface ExecHandlers {
  /** A piece of output; call `ack` once it is passed on, so the node sends more. */
  onOutput: (stream: 'stdout' | 'stderr', data: Buffer, ack: () => void) => void;
  onExit: (exitCode: number) => void;
  onError: (e: ApiError) => void;
}

interface LogCall {
  kind: 'logs';
  nodeId: string;
  /** Unacknowledged window bytes per task asked for (ownership: only these tasks' lines are taken). */
  outstanding: Map<string, number>;
  /** Chunks received per task (checked against the node's count at the task's end). */
  received: Map<string, number>;
  /** The per-task flow window the node was given. */
  window: number;
  h: LogHandlers;
}
interface ExecCall {
  kind: 'exec';
  nodeId: string;
  nextSeq: number;
  outstanding: number;
  timer: NodeJS.Timeout;
  h: ExecHandlers;
}

export class RemoteCalls {
  private pending = new Map<string, LogCall | ExecCall>();
  private usage = new Map<string, { at: number; u: TaskUsage; cpuPercent?: number }>();
  /** Node messages refused (protocol violations), by kind, for diagnostics. */
  readonly refused: Record<string, number> = {};

  constructor(private readonly send: (nodeId: string, m: ManagerToAgent) => boolean) {}

  private id(): string {
    return randomBytes(8).toString('hex');
  }

  get activeLogs(): number {
    let n = 0;
    for (const c of this.pending.values()) if (c.kind === 'logs') n++;
    return n;
  }

  get activeExecs(): number {
    return this.pending.size - this.activeLogs;
  }

  /**
   * Starts a logs request. Returns `cancel` and `ack` (the chunks' window cost, once written to the
   * client), or null if the node has no session.
   */
  logs(
    nodeId: string,
    taskIds: string[],
    opts: LogRequestOptions,
    h: LogHandlers,
    window = LOG_WINDOW_BYTES,
  ): { cancel: () => void; ack: (taskId: string, bytes: number) => void } | null {
    const req = this.id();
    if (!this.send(nodeId, { t: 'logs', req, taskIds, window, ...opts })) return null;
    const call: LogCall = { kind: 'logs', nodeId, outstanding: new Map(taskIds.map((id) => [id, 0])), received: new Map(), window, h };
    this.pending.set(req, call);
    return {
      cancel: () => {
        if (this.pending.delete(req)) this.send(nodeId, { t: 'logs-cancel', req });
      },
      ack: (taskId, bytes) => {
        const o = call.outstanding.get(taskId);
        if (o === undefined || this.pending.get(req) !== call) return;
        call.outstanding.set(taskId, Math.max(0, o - bytes));
        this.send(nodeId, { t: 'logs-ack', req, taskId, bytes });
      },
    };
  }

  /** Starts an exec; returns `cancel` (the client went away), or throws 503 if the node has no session. */
  exec(nodeId: string, taskId: string, args: string[], timeoutMs: number, h: ExecHandlers): () => void {
    const req = this.id();
    if (this.activeExecs >= MAX_EXECS) throw new ApiError(503, 'EBUSY', `the leader is running ${MAX_EXECS} execs already; try again later`);
    if (!this.send(nodeId, { t: 'exec', req, taskId, args, timeoutMs })) throw new ApiError(503, 'ENODEDOWN', `node ${nodeId} is not connected`);
    const timer = setTimeout(() => {
      if (this.pending.delete(req)) h.onError(new ApiError(504, 'ETIMEDOUT', `no answer from node ${nodeId} within ${timeoutMs + 5000} ms`));
    }, timeoutMs + 5000);
    this.pending.set(req, { kind: 'exec', nodeId, nextSeq: 0, outstanding: 0, timer, h });
    return () => {
      clearTimeout(timer);
      this.pending.delete(req);
    };
  }

  /**
   * A node's message about a logs or exec request ('log', 'log-end', 'exec-output', 'exec-result').
   * Throws ProtocolViolation for a malformed message, or one that breaks its request's rules (which
   * then ends that request); answers for unknown requests (cancelled, timed out) are ignored.
   */
  onNodeMessage(nodeId: string, m: { t: string }): void {
    try {
      this.route(nodeId, m);
    } catch (e) {
      if (e instanceof ProtocolViolation) this.refused[m.t] = (this.refused[m.t] ?? 0) + 1;
      throw e;
    }
  }

  private route(nodeId: string, m: { t: string }): void {
    switch (m.t) {
      case 'log': {
        const v = validateLog(m);
        const c = this.pending.get(v.req);
        if (c?.kind !== 'logs' || c.nodeId !== nodeId) return;
        for (const l of v.lines) {
          const o = c.outstanding.get(l.taskId);
          if (o === undefined) {
            this.failLogs(v.req, c, `a line of task ${l.taskId}, which this request did not ask the node for`);
            return;
          }
          const next = o + logChunkCost(l);
          if (next > c.window + LOG_SLACK) {
            this.failLogs(v.req, c, `more than its window of ${c.window} bytes of task ${l.taskId}`);
            return;
          }
          c.outstanding.set(l.taskId, next);
          c.received.set(l.taskId, (c.received.get(l.taskId) ?? 0) + 1);
        }
        for (const l of v.lines) c.h.onChunk(l);
        return;
      }
      case 'log-end': {
        const v = validateLogEnd(m);
        const c = this.pending.get(v.req);
        if (c?.kind !== 'logs' || c.nodeId !== nodeId) return;
        if (v.taskId !== undefined) {
          if (!c.outstanding.has(v.taskId)) {
            this.failLogs(v.req, c, `the end of task ${v.taskId}, which this request did not ask the node for`);
            return;
          }
          const got = c.received.get(v.taskId) ?? 0;
          const lost =
            v.chunks !== undefined && v.chunks !== got ? `${v.chunks - got} of ${v.chunks} log chunks of task ${v.taskId} were lost on the way` : undefined;
          c.h.onTaskEnd(v.taskId, [v.error, lost].filter(Boolean).join('; ') || undefined);
          return;
        }
        this.pending.delete(v.req);
        c.h.onEnd(v.error);
        return;
      }
      case 'exec-output': {
        const v = validateExecOutput(m);
        const data = v.bytes;
        const c = this.pending.get(v.req);
        if (c?.kind !== 'exec' || c.nodeId !== nodeId) return;
        if (v.seq !== c.nextSeq) {
          this.failExec(v.req, c, `exec output piece ${v.seq} where ${c.nextSeq} was due`);
          return;
        }
        if (c.outstanding + data.length > EXEC_WINDOW_BYTES + EXEC_CHUNK_BYTES) {
          this.failExec(v.req, c, `more exec output than its window of ${EXEC_WINDOW_BYTES} bytes`);
          return;
        }
        c.nextSeq++;
        c.outstanding += data.length;
        let acked = false;
        c.h.onOutput(v.stream, data, () => {
          if (acked) return;
          acked = true;
          c.outstanding = Math.max(0, c.outstanding - data.length);
          if (this.pending.get(v.req) === c) this.send(nodeId, { t: 'exec-ack', req: v.req, bytes: data.length });
        });
        return;
      }
      case 'exec-result': {
        const v = validateExecResult(m);
        const c = this.pending.get(v.req);
        if (c?.kind !== 'exec' || c.nodeId !== nodeId) return;
        this.pending.delete(v.req);
        clearTimeout(c.timer);
        if ('error' in v) c.h.onError(new ApiError(409, 'EEXEC', v.error || 'exec failed'));
        else if (v.pieces !== undefined && v.pieces !== c.nextSeq)
          c.h.onError(new ApiError(502, 'EEXEC', `exec output incomplete: ${c.nextSeq} of ${v.pieces} pieces arrived`));
        else c.h.onExit(v.exitCode);
        return;
      }
      default:
        throw new ProtocolViolation('bad-type', `not a logs or exec answer: ${String(m.t).slice(0, 32)}`);
    }
  }

  private failLogs(req: string, c: LogCall, what: string): never {
    this.pending.delete(req);
    this.send(c.nodeId, { t: 'logs-cancel', req });
    c.h.onEnd(`node sent ${what}; its logs were cut short`);
    throw new ProtocolViolation('not-owner', `log: ${what}`);
  }

  private failExec(req: string, c: ExecCall, what: string): never {
    this.pending.delete(req);
    clearTimeout(c.timer);
    c.h.onError(new ApiError(502, 'EEXEC', `node sent ${what}`));
    throw new ProtocolViolation('bad-order', `exec-output: ${what}`);
  }

  /**
   * A node's usage report. With `owns`, only the node's own tasks are taken (a node cannot write other
   * nodes' numbers); entries with non-finite or negative numbers are skipped; the table is bounded.
   */
  onUsage(at: number, tasks: Record<string, TaskUsage>, owns?: (taskId: string) => boolean): void {
    if (typeof tasks !== 'object' || tasks === null) return;
    let n = 0;
    for (const [id, u] of Object.entries(tasks)) {
      if (++n > MAX_USAGE_PER_REPORT) break;
      if (typeof u !== 'object' || u === null || !(u.cpuNanos >= 0) || !(u.memoryBytes >= 0) || !Number.isFinite(u.cpuNanos) || !Number.isFinite(u.memoryBytes))
        continue;
      if (owns && !owns(id)) continue;
      if (!this.usage.has(id) && this.usage.size >= MAX_USAGE_ENTRIES) continue;
      const prev = this.usage.get(id);
      const dt = prev ? at - prev.at : 0;
      const cpuPercent = prev && dt > 0 ? Math.max(0, ((u.cpuNanos - prev.u.cpuNanos) / (dt * 1e6)) * 100) : undefined;
      this.usage.set(id, { at, u: { cpuNanos: u.cpuNanos, memoryBytes: u.memoryBytes }, ...(cpuPercent !== undefined ? { cpuPercent } : {}) });
    }
    // forget tasks not reported for a minute
    for (const [id, v] of this.usage) if (at - v.at > 60_000) this.usage.delete(id);
  }

  usageOf(taskId: string): { cpuPercent?: number; memoryBytes: number; at: string } | undefined {
    const v = this.usage.get(taskId);
    return v
      ? {
          memoryBytes: v.u.memoryBytes,
          ...(v.cpuPercent !== undefined ? { cpuPercent: Math.round(v.cpuPercent * 10) / 10 } : {}),
          at: new Date(v.at).toISOString(),
        }
      : undefined;
  }

  /** The node's session ended: its pending requests end with a warning/error. */
  nodeGone(nodeId: string): void {
    for (const [req, c] of this.pending) {
      if (c.nodeId !== nodeId) continue;
      this.pending.delete(req);
      if (c.kind === 'logs') c.h.onEnd(`node ${nodeId} disconnected`);
      else {
        clearTimeout(c.timer);
        c.h.onError(new ApiError(503, 'ENODEDOWN', `node ${nodeId} disconnected`));
      }
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
  /** Logs responses open now (each holds up to a window per task of its request). */
  let streams = 0;
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
      const t =
        all.find((x) => x.id === taskRef) ??
        (() => {
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
    tasks = tasks.filter(
      (t) => t.nodeId && (t.status.state === 'running' || t.status.state === 'starting' || ENDED.has(t.status.state)) && t.status.state !== 'rejected',
    );
    const byNode = new Map<string, Task[]>();
    for (const t of tasks) byNode.set(t.nodeId!, [...(byNode.get(t.nodeId!) ?? []), t]);
    const nodes = new Map((d.store.view((tx) => tx.list('node')) as Node[]).map((n) => [n.id, n]));
    const taskName = new Map(tasks.map((t) => [t.id, `${t.serviceAnnotations.name}.${t.slot ?? t.nodeId}.${t.id}`]));

    if (streams >= MAX_LOG_STREAMS) throw new ApiError(503, 'EBUSY', `the leader is serving ${MAX_LOG_STREAMS} logs streams already; try again later`);
    streams++;
    res.once('close', () => streams--);
    const byId = new Map(tasks.map((t) => [t.id, t]));
    // The request's memory on the leader is at most a window per task: with many tasks, smaller windows.
    const window = logWindowFor(tasks.length);

    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    const write = (o: unknown) => res.write(`${JSON.stringify(o)}\n`);
    const merge = new LogMerge(
      follow ? 'arrival' : 'sorted',
      tasks.map((t) => t.id),
      OPEN_LINE_MS,
    );
    const calls = new Map<string, NonNullable<ReturnType<RemoteCalls['logs']>>>(); // by node
    const acks = new Map<string, number>(); // window bytes written, not yet acknowledged, by task
    let open = 0;
    let finished = false;
    let paused = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      if (ticker) clearInterval(ticker);
      res.end();
    };
    const decorate = (l: LogLine) => {
      const t = byId.get(l.taskId);
      const n = t?.nodeId ? nodes.get(t.nodeId) : undefined;
      return {
        task: taskName.get(l.taskId) ?? l.taskId,
        taskId: l.taskId,
        node: n?.description.hostname ?? t?.nodeId ?? '?',
        ts: l.ts,
        stream: l.stream,
        line: l.line,
        ...(l.partial ? { partial: true } : {}),
      };
    };
    const flushAcks = () => {
      for (const [taskId, bytes] of acks) calls.get(byId.get(taskId)?.nodeId ?? '')?.ack(taskId, bytes);
      acks.clear();
    };
    // Writes what the merge can give until the client's buffer is full, then waits for 'drain': the
    // nodes get their acknowledgements only for what was written, so nothing piles up here.
    const pump = () => {
      while (!finished && !paused) {
        const o = merge.next(Date.now());
        if (o === null) break;
        let ok: boolean;
        if (o.kind === 'chunk') {
          ok = write(decorate(o.chunk));
          acks.set(o.chunk.taskId, (acks.get(o.chunk.taskId) ?? 0) + logChunkCost(o.chunk));
        } else {
          const t = byId.get(o.taskId);
          ok = write({ ...decorate({ taskId: o.taskId, ts: o.ts, stream: o.stream, line: '' }), incomplete: true });
          if (t && o.reason === 'ended')
            write({ warning: `the last line of task ${taskName.get(o.taskId) ?? o.taskId} on ${o.stream} is incomplete (its node stopped sending it)` });
        }
        if (!ok) {
          paused = true;
          res.once('drain', () => {
            paused = false;
            pump();
          });
        }
      }
      if (!finished) flushAcks();
      if (open === 0 && merge.done) finish();
    };
    // Follow: a line left open (a program printed part of a line and went quiet) is cut after a while
    // if other tasks wait; this timer looks again when nothing else arrives.
    const ticker = follow ? setInterval(pump, OPEN_LINE_MS) : null;
    req.on('close', () => {
      for (const c of calls.values()) c.cancel();
      finished = true;
      if (ticker) clearInterval(ticker);
    });
    if (byNode.size === 0) write({ info: `${what} has no task that ran on a node yet` });
    for (const [nodeId, ts] of byNode) {
      const n = nodes.get(nodeId);
      const endAll = () => {
        for (const t of ts) merge.end(t.id);
      };
      if (n && n.status.state !== 'ready') {
        write({ warning: `node ${nodeLabel(n, nodeId)} is ${n.status.state}: logs of ${ts.length} task(s) unavailable` });
        endAll();
        continue;
      }
      open++;
      const call = d.calls.logs(
        nodeId,
        ts.map((t) => t.id),
        opts,
        {
          onChunk: (c) => {
            if (merge.push(c)) pump();
          },
          onTaskEnd: (taskId, error) => {
            if (error && !finished) write({ warning: `node ${nodeLabel(n, nodeId)}: ${error.slice(0, MAX_ERROR_TEXT)}` });
            merge.end(taskId);
            pump();
          },
          onEnd: (error) => {
            if (error && !finished) write({ warning: `node ${nodeLabel(n, nodeId)}: ${error.slice(0, MAX_ERROR_TEXT)}` });
            calls.delete(nodeId);
            endAll();
            open--;
            pump();
          },
        },
        window,
      );
      if (call === null) {
        open--;
        endAll();
        write({ warning: `node ${nodeLabel(n, nodeId)} is not connected: logs of ${ts.length} task(s) unavailable` });
      } else calls.set(nodeId, call);
    }
    pump();
    return undefined;
  });

  r.add('POST', '/v1/tasks/:id/exec', async (_c, p, req: IncomingMessage, res: ServerResponse) => {
    const b = (await readJson(req)) as { args?: unknown; timeoutMs?: unknown };
    if (!Array.isArray(b.args) || b.args.length === 0 || !b.args.every((a) => typeof a === 'string'))
      throw badRequest('exec needs a command (args: a non-empty list of strings)');
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
    // The answer streams: output pieces as the node sends them (each acknowledged once written, so a
    // slow client slows the node, not the leader's memory), then the exit code. Errors before any
    // output keep their status code.
    const nodeId = t.nodeId;
    await new Promise<void>((resolve) => {
      let started = false;
      const start = () => {
        if (started) return;
        started = true;
        res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
      };
      const write = (o: unknown) => res.write(`${JSON.stringify(o)}\n`);
      let cancel: () => void = () => {};
      res.on('close', () => {
        cancel();
        resolve();
      });
      try {
        cancel = d.calls.exec(nodeId, t.id, b.args as string[], timeoutMs, {
          onOutput: (stream, data, ack) => {
            start();
            if (write({ stream, data: data.toString('base64') })) ack();
            else res.once('drain', ack);
          },
          onExit: (exitCode) => {
            start();
            write({ exitCode });
            res.end();
            resolve();
          },
          onError: (e) => {
            if (started) {
              write({ error: { code: e.code, message: e.message } });
              res.end();
            } else sendError(res, e);
            resolve();
          },
        });
      } catch (e) {
        sendError(res, e);
        resolve();
      }
    });
    return undefined;
  });
}
