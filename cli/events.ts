// `shoal events [--since T] [--until T] [--filter K=V]... [--format json|TEMPLATE]`: the cluster's events
// (GET /v1/events, api/events.ts), printed as `docker events` prints them. As Docker: without --until the
// stream stays open (after replaying --since, if given); with --until it ends there. Any manager answers
// the same, so the first one of the context that answers is used; if it goes away before the stream
// started, the next is tried.
import type { ClusterEvent } from '../api/events.ts';
import { CliError } from '../client/context.ts';
import { NdjsonError, readNdjson } from '../client/ndjson.ts';
import type { Invocation } from './command.ts';
import { checkFormat, renderInspect } from './format.ts';
import { durationAgoMs, neutralise } from './logs.ts';

/** A line longer than this is an error, not something to buffer. */
const MAX_LINE = 1 << 20;
/** The manager sends a keepalive every 15 s: this long without a byte, the stream is dead. */
const EVENTS_IDLE_MS = 40_000;

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
  try {
    await readNdjson(ctx, { path: `/v1/events?${q}`, idleMs: EVENTS_IDLE_MS, maxLine: MAX_LINE }, (o) => {
      const l = o as ClusterEvent & Line;
      if (l.keepalive) return;
      if (l.end !== undefined) throw new Error(`the event stream was ended by the manager: ${l.end}`);
      print(l);
    });
  } catch (e) {
    throw e instanceof NdjsonError ? new CliError(e.message, e.status) : e;
  }
  return 0;
}
