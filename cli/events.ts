// `shoal events [--since T] [--until T] [--filter K=V]... [--format json|TEMPLATE]`: the cluster's events
// (GET /v1/events, api/events.ts), printed as `docker events` prints them. As Docker: without --until the
// stream stays open (after replaying --since, if given); with --until it ends there. Any manager answers
// the same, so the first one of the context that answers is used; if it goes away before the stream
// started, the next is tried.
import { request as httpsRequest } from 'node:https';
import type { ClusterEvent } from '../api/events.ts';
import { managerRequest } from '../transport/https.ts';
import { CliError, type Context } from '../client/context.ts';
import type { Invocation } from './command.ts';
import { checkFormat, renderInspect } from './format.ts';
import { durationAgoMs, neutralise } from './logs.ts';

/** A line longer than this is an error, not something to buffer. */
const MAX_LINE = 1 << 20;

/**
 * --since / --until as the API takes them: a duration back from now (`10m`, `1h30m`, `2d`, `45s`) as
 * Unix seconds; anything else (RFC 3339, Unix seconds) is passed on for the manager to check.
 */
export function eventTimeArg(v: string, now = Date.now()): string {
  const ago = durationAgoMs(v);
  return ago === null ? v : String((now - ago) / 1000);
}

/** RFC 3339 with nanoseconds, as Docker prints event times (the log carries milliseconds). */
export function nanoTime(iso: string): string {
  const m = /^(.*T\d{2}:\d{2}:\d{2})(?:\.(\d+))?Z$/.exec(iso);
  return m ? `${m[1]}.${(m[2] ?? '').padEnd(9, '0').slice(0, 9)}Z` : iso;
}

/** `TIME TYPE ACTION ID (name=…, k=v, …)`, as `docker events`: the name first, then the rest as derived. */
export function eventLine(e: ClusterEvent): string {
  const a = e.actor.attributes;
  const attrs = [...('name' in a ? [['name', a.name!] as const] : []), ...Object.entries(a).filter(([k]) => k !== 'name')].map(([k, v]) => `${k}=${v}`);
  return `${nanoTime(e.time)} ${e.type} ${e.action} ${e.actor.id}${attrs.length > 0 ? ` (${attrs.join(', ')})` : ''}`;
}

interface Line {
  keepalive?: boolean;
  end?: string;
  after?: string;
}

function streamFrom(ctx: Context, manager: string, path: string, onEvent: (e: ClusterEvent) => void): Promise<{ started: boolean }> {
  let started = false;
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ ...managerRequest(manager, ctx.admin), method: 'GET', path }, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      if (res.statusCode !== 200) {
        res.on('data', (c: string) => {
          if (buf.length < MAX_LINE) buf += c;
        });
        res.on('end', () => {
          let msg = `HTTP ${res.statusCode}`;
          try {
            msg = (JSON.parse(buf) as { error?: { message?: string } }).error?.message ?? msg;
          } catch {
            /* not JSON */
          }
          reject(new CliError(msg));
        });
        return;
      }
      started = true;
      res.on('data', (c: string) => {
        buf += c;
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const text = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (text.trim() === '') continue;
          let o: ClusterEvent & Line;
          try {
            o = JSON.parse(text) as ClusterEvent & Line;
          } catch (e) {
            req.destroy();
            reject(new CliError(`bad answer from ${manager}: ${(e as Error).message}`));
            return;
          }
          if (o.keepalive) continue;
          if (o.end !== undefined) {
            req.destroy();
            reject(new CliError(`the event stream was ended by ${manager}: ${o.end}`));
            return;
          }
          onEvent(o);
        }
        if (buf.length > MAX_LINE) {
          req.destroy();
          reject(new CliError(`${manager} sent a line longer than ${MAX_LINE} bytes`));
        }
      });
      res.on('end', () => resolve({ started }));
      res.on('error', (e) => reject(Object.assign(e, { started })));
    });
    req.on('error', (e) => reject(Object.assign(e, { started })));
    req.end();
  });
}

/** `write` is where events go (standard output; tests pass their own). */
export async function eventsCmd(i: Invocation, write: (s: string) => void = (s) => void process.stdout.write(s)): Promise<number> {
  if (i.positionals.length > 0) throw new CliError(`events takes no arguments (got ${i.positionals.join(' ')})`);
  const format = i.value('format');
  if (format !== undefined && format !== 'json') {
    if (format === 'table') throw new CliError('--format table is not for events; use json or a template such as {{.Type}}');
    checkFormat(format);
  }
  const q = new URLSearchParams();
  const since = i.value('since');
  const until = i.value('until');
  if (since !== undefined) q.set('since', eventTimeArg(since));
  if (until !== undefined) q.set('until', eventTimeArg(until));
  else q.set('follow', '1');
  for (const f of i.values('filter')) q.append('filter', f);
  const ctx = i.context();
  const tty = process.stdout.isTTY === true;
  const print = (e: ClusterEvent): void => {
    const text = format === 'json' ? JSON.stringify(e) : format !== undefined ? renderInspect([e], format) : eventLine(e);
    write(`${tty ? neutralise(text) : text}\n`);
  };
  let last = '';
  for (const m of ctx.managers) {
    try {
      await streamFrom(ctx, m, `/v1/events?${q}`, print);
      return 0;
    } catch (e) {
      if (e instanceof CliError) throw e;
      if ((e as { started?: boolean }).started) throw new CliError(`connection to ${m} lost: ${(e as Error).message}`);
      last = `${m}: ${(e as Error).message}`;
    }
  }
  throw new CliError(`no manager reachable (${last})`);
}
