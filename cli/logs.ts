// `shoal service logs [-f] [--tail N] [--since 10m|ISO] [-t] SERVICE|TASK` and
// `shoal task logs|exec`: the leader merges the logs of every task on every node (see
// manager/api/remote.ts); a node that is down yields a warning on stderr, and the command still succeeds.
import { parseArgs } from 'node:util';
import { CliError, type Context } from '../client/context.ts';
import { NdjsonError, readNdjson } from '../client/ndjson.ts';

/** A duration back from now (`10m`, `1h30m`, `45s`, `2d`) in milliseconds, or null if `v` is not one. */
export function durationAgoMs(v: string): number | null {
  const m = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(v);
  if (!m || v === '') return null;
  const [, d, h, mi, s] = m.map((x) => Number(x ?? 0));
  return (((d! * 24 + h!) * 60 + mi!) * 60 + s!) * 1000;
}

/** `10m`, `1h30m`, `45s`, `2d` or an ISO timestamp → ISO timestamp. */
export function parseSince(v: string, now = Date.now()): string {
  const ago = durationAgoMs(v);
  if (ago !== null) return new Date(now - ago).toISOString();
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new CliError(`--since: "${v}" is neither a duration (10m, 1h30m) nor a timestamp`);
  return new Date(t).toISOString();
}

/** An NDJSON line longer than this from the leader is an error, not something to buffer. */
const MAX_NDJSON_LINE = 8 << 20;

/**
 * Terminal control characters made visible (`\x1b` for ESC and so on; tab stays), so that what a task
 * prints, or a node calls itself, cannot move the cursor, retitle the window or worse on the admin's
 * terminal. Only applied when writing to a TTY: piped output stays byte-exact.
 */
export function neutralise(s: string): string {
  // eslint-style note: C0 except \t, DEL, and the C1 range (U+0080–U+009F, 8-bit CSI and friends).
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point (they are escaped)
  return s.replace(/[\x00-\x08\x0a-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * One NDJSON object of a streaming answer (logs or exec). The manager's fields, all optional: each is
 * checked where it is read, so a malformed line cannot be mistaken for another kind.
 */
interface StreamLine {
  warning?: unknown;
  info?: unknown;
  stream?: unknown;
  task?: unknown;
  node?: unknown;
  ts?: unknown;
  line?: unknown;
  partial?: unknown;
  incomplete?: unknown;
  data?: unknown;
  exitCode?: unknown;
  error?: { message?: unknown } | null;
}

/**
 * Sends a streaming request to the managers (client/ndjson.ts: a redirect is followed to the leader;
 * after the first answer a failure is final, the request may have had effects). `onLine` gets each
 * NDJSON object and may return a stream whose buffer is full (reading pauses until it drains).
 */
async function streamRequest(
  ctx: Context,
  method: 'GET' | 'POST',
  path: string,
  body: unknown,
  onLine: (o: StreamLine) => NodeJS.WriteStream | undefined | void,
): Promise<void> {
  try {
    await readNdjson(ctx, { method, path, ...(body !== undefined ? { body } : {}), maxLine: MAX_NDJSON_LINE }, (o) => onLine(o as StreamLine));
  } catch (e) {
    if (e instanceof NdjsonError) throw new CliError(e.message, e.status);
    throw e;
  }
}

export async function logsCmd(ctx: Context, kind: 'service' | 'task', args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      follow: { type: 'boolean', short: 'f' },
      tail: { type: 'string', short: 'n' },
      since: { type: 'string' },
      timestamps: { type: 'boolean', short: 't' },
      raw: { type: 'boolean' },
      'no-task-ids': { type: 'boolean' },
    },
  });
  if (positionals.length !== 1) throw new CliError(`${kind} logs needs one ${kind}`);
  const q = new URLSearchParams({ [kind]: positionals[0]! });
  if (values.tail !== undefined) {
    if (values.tail !== 'all' && !/^\d+$/.test(values.tail)) throw new CliError(`--tail must be a number or "all" (got ${values.tail})`);
    q.set('tail', values.tail);
  }
  if (values.since) q.set('since', parseSince(values.since));
  if (values.follow) q.set('follow', '1');
  const outs = { stdout: process.stdout, stderr: process.stderr } as const;
  const clean = (out: NodeJS.WriteStream, s: string) => (out.isTTY ? neutralise(s) : s);
  // A long line comes in chunks (all but the last `partial`), contiguous per task: each chunk is
  // written as it arrives, the prefix before the first and the newline after the last.
  const open = { stdout: false, stderr: false };
  await streamRequest(ctx, 'GET', `/v1/logs?${q}`, undefined, (o) => {
    if (o.warning) {
      if (open.stderr) process.stderr.write('\n');
      open.stderr = false;
      return process.stderr.write(`warning: ${clean(process.stderr, String(o.warning))}\n`) ? undefined : process.stderr;
    }
    if (o.info || (o.stream !== 'stdout' && o.stream !== 'stderr')) return undefined;
    const stream: 'stdout' | 'stderr' = o.stream;
    const out = outs[stream];
    let text = '';
    if (!open[stream]) {
      const task = String(o.task);
      const who = values['no-task-ids'] ? `${task.split('.').slice(0, 2).join('.')}@${o.node}` : `${task}@${o.node}`;
      text += values.raw ? '' : clean(out, `${values.timestamps ? `${o.ts} ` : ''}${who}    | `);
    }
    text += clean(out, String(o.line));
    if (o.partial === true) open[stream] = true;
    else {
      open[stream] = false;
      text += o.incomplete === true ? ' [incomplete]\n' : '\n';
    }
    return out.write(text) ? undefined : out;
  });
  for (const s of ['stdout', 'stderr'] as const) if (open[s]) outs[s].write('\n');
  return 0;
}

export async function taskExecCmd(ctx: Context, args: string[]): Promise<number> {
  const dd = args.indexOf('--');
  const before = dd >= 0 ? args.slice(0, dd) : args.slice(0, 1);
  const cmd = dd >= 0 ? args.slice(dd + 1) : args.slice(1);
  const { values, positionals } = parseArgs({ args: before, allowPositionals: true, options: { timeout: { type: 'string' } } });
  if (positionals.length !== 1 || cmd.length === 0) throw new CliError('usage: shoal task exec [--timeout SECONDS] TASK -- COMMAND [ARG...]');
  const timeoutMs = values.timeout ? Math.round(Number(values.timeout) * 1000) : 60_000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new CliError(`--timeout must be a positive number of seconds`);
  // The output streams in pieces as the node sends them; written raw (it may be binary), as it arrives.
  let exitCode: number | null = null;
  await streamRequest(ctx, 'POST', `/v1/tasks/${encodeURIComponent(positionals[0]!)}/exec`, { args: cmd, timeoutMs }, (o) => {
    if (o.stream === 'stdout' || o.stream === 'stderr') {
      const out = o.stream === 'stdout' ? process.stdout : process.stderr;
      return out.write(Buffer.from(String(o.data), 'base64')) ? undefined : out;
    }
    if (typeof o.exitCode === 'number') exitCode = o.exitCode;
    else if (o.error) throw new CliError(String(o.error.message ?? 'exec failed'));
    return undefined;
  });
  if (exitCode === null) throw new CliError('the exec ended without an exit code (the connection to the manager was cut)');
  return exitCode;
}
