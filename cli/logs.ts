// `shoal service logs [-f] [--tail N] [--since 10m|ISO] [-t] SERVICE|TASK` and
// `shoal task logs|exec`: the leader merges the logs of every task on every node (see
// manager/api/remote.ts); a node that is down yields a warning on stderr, and the command still succeeds.
import { request as httpsRequest } from 'node:https';
import { parseArgs } from 'node:util';
import { managerRequest } from '../daemon/https.ts';
import { CliError, control, type Context } from './context.ts';

/** `10m`, `1h30m`, `45s`, `2d` or an ISO timestamp → ISO timestamp. */
export function parseSince(v: string, now = Date.now()): string {
  const m = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(v);
  if (m && v !== '') {
    const [, d, h, mi, s] = m.map((x) => Number(x ?? 0));
    return new Date(now - (((d! * 24 + h!) * 60 + mi!) * 60 + s!) * 1000).toISOString();
  }
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new CliError(`--since: "${v}" is neither a duration (10m, 1h30m) nor a timestamp`);
  return new Date(t).toISOString();
}

function streamOnce(ctx: Context, remote: string, path: string, onLine: (o: any) => void): Promise<{ redirect?: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { ...managerRequest(remote, ctx.admin), path },
      (res) => {
        let buf = '';
        res.setEncoding('utf8');
        if (res.statusCode !== 200) {
          res.on('data', (c: string) => (buf += c));
          res.on('end', () => {
            let body: any = null;
            try {
              body = JSON.parse(buf);
            } catch {
              /* not JSON */
            }
            if (res.statusCode === 421 && body?.error?.leader) resolve({ redirect: body.error.leader });
            else reject(new CliError(body?.error?.message ?? `HTTP ${res.statusCode}`));
          });
          return;
        }
        res.on('data', (c: string) => {
          buf += c;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (line.trim() !== '') onLine(JSON.parse(line));
          }
        });
        res.on('end', () => resolve({}));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function streamLogs(ctx: Context, path: string, onLine: (o: any) => void): Promise<void> {
  const queue = [...ctx.managers];
  const tried = new Set<string>();
  let last = '';
  while (queue.length) {
    const m = queue.shift()!;
    if (tried.has(m)) continue;
    tried.add(m);
    try {
      const r = await streamOnce(ctx, m, path, onLine);
      if (r.redirect) {
        queue.unshift(r.redirect);
        continue;
      }
      return;
    } catch (e) {
      if (e instanceof CliError) throw e;
      last = (e as Error).message;
    }
  }
  throw new CliError(`no manager reachable: ${last}`);
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
  let warnings = 0;
  await streamLogs(ctx, `/v1/logs?${q}`, (o) => {
    if (o.warning) {
      warnings++;
      process.stderr.write(`warning: ${o.warning}\n`);
      return;
    }
    if (o.info) return;
    const who = values['no-task-ids'] ? `${o.task.split('.').slice(0, 2).join('.')}@${o.node}` : `${o.task}@${o.node}`;
    const prefix = values.raw ? '' : `${values.timestamps ? `${o.ts} ` : ''}${who}    | `;
    (o.stream === 'stderr' ? process.stderr : process.stdout).write(`${prefix}${o.line}\n`);
  });
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
  const r = await control<{ stdout: string; stderr: string; exitCode: number }>(ctx, 'POST', `/v1/tasks/${encodeURIComponent(positionals[0]!)}/exec`, { args: cmd, timeoutMs });
  process.stdout.write(Buffer.from(r.stdout, 'base64'));
  process.stderr.write(Buffer.from(r.stderr, 'base64'));
  return r.exitCode;
}
