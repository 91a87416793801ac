// `GET /services/{id}/logs` and `GET /tasks/{id}/logs`: the control API's merged logs (GET /v1/logs,
// which fetches them from the nodes with flow control) re-framed as the multiplexed stream. The node
// and service of each line come from the task it belongs to. Back-pressure is kept end to end: a
// frame the client cannot take yet holds the control stream (its 'drain'), which holds the nodes.
// The control stream's `warning`/`info` lines have no place in Docker's format: they go to the log.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { badRequest, type Router } from '../api/http.ts';
import type { Service, Task } from '../../api/objects.ts';
import { callControl, streamControl } from './control.ts';
import type { DockerDeps } from './deps.ts';
import { query, type DockerCtx } from './http.ts';
import { logFrame, sinceToIso } from './logs-frame.ts';
import { queryBool } from './wire.ts';

/** Longest NDJSON line of the control stream kept while waiting for its end (a chunk is ≤ 16 KiB). */
const MAX_PENDING_LINE = 256 << 10;

interface ControlLogLine {
  taskId?: string;
  ts?: string;
  stream?: 'stdout' | 'stderr';
  line?: string;
  partial?: boolean;
  incomplete?: boolean;
  warning?: string;
  info?: string;
}

async function serveLogs(
  d: DockerDeps,
  kind: 'service' | 'task',
  ref: string,
  req: IncomingMessage,
  res: ServerResponse,
  log: (l: string) => void,
): Promise<undefined> {
  const q = query(req);
  const stdout = queryBool(q.get('stdout'));
  const stderr = queryBool(q.get('stderr'));
  if (!stdout && !stderr) throw badRequest('Bad parameters: you must choose at least one stream');
  const opts = { timestamps: queryBool(q.get('timestamps')), details: queryBool(q.get('details')) };
  const tasks = await callControl<Task[]>(d.control, 'GET', '/v1/tasks?all=1');
  let target: string;
  if (kind === 'service')
    target = `service=${encodeURIComponent((await callControl<Service>(d.control, 'GET', `/v1/services/${encodeURIComponent(ref)}`)).id)}`;
  else target = `task=${encodeURIComponent(ref)}`;
  const byTask = new Map(tasks.map((t) => [t.id, t]));
  const params = new URLSearchParams();
  const tail = q.get('tail');
  if (tail && tail !== 'all' && /^\d+$/.test(tail)) params.set('tail', tail);
  const since = sinceToIso(q.get('since'));
  if (since) params.set('since', since);
  if (queryBool(q.get('follow'))) params.set('follow', '1');
  let pending = '';
  let started = false;
  const start = () => {
    if (started) return;
    started = true;
    res.writeHead(200, { 'content-type': 'application/vnd.docker.multiplexed-stream', 'cache-control': 'no-store' });
  };
  // One NDJSON line of the control stream → at most one frame; returns what res.write returned.
  const onLine = (text: string): boolean => {
    if (text === '') return true;
    let l: ControlLogLine;
    try {
      l = JSON.parse(text) as ControlLogLine;
    } catch {
      return true;
    }
    if (l.warning || l.info) {
      log(`docker-api: logs of ${kind} ${ref}: ${l.warning ?? l.info}`);
      return true;
    }
    if (!l.taskId || l.incomplete || l.line === undefined) return true;
    const s = l.stream === 'stderr' ? 'stderr' : 'stdout';
    if ((s === 'stdout' && !stdout) || (s === 'stderr' && !stderr)) return true;
    const t = byTask.get(l.taskId);
    start();
    return res.write(
      logFrame(
        { stream: s, ts: l.ts ?? '', line: l.line, partial: l.partial === true, nodeId: t?.nodeId ?? '', serviceId: t?.serviceId ?? '', taskId: l.taskId },
        opts,
      ),
    );
  };
  await new Promise<void>((resolve, reject) => {
    let call: Awaited<ReturnType<typeof streamControl>> | null = null;
    const sink = (chunk: Buffer): boolean => {
      pending += chunk.toString('utf8');
      let ok = true;
      for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
        ok = onLine(pending.slice(0, nl)) && ok;
        pending = pending.slice(nl + 1);
      }
      if (pending.length > MAX_PENDING_LINE) pending = '';
      if (!ok) res.once('drain', () => call?.res.drained());
      return ok;
    };
    streamControl(d.control, `/v1/logs?${target}&${params.toString()}`, sink, () => {
      start();
      res.end();
      resolve();
    })
      .then((c) => {
        call = c;
        res.once('close', () => {
          c.cancel();
          resolve();
        });
      })
      .catch(reject);
  });
  return undefined;
}

export function registerLogRoutes(r: Router<DockerCtx>, d: DockerDeps, log: (l: string) => void): void {
  r.add('GET', '/services/:id/logs', (_c, p, req, res) => serveLogs(d, 'service', p.id!, req, res, log));
  r.add('GET', '/tasks/:id/logs', (_c, p, req, res) => serveLogs(d, 'task', p.id!, req, res, log));
}
