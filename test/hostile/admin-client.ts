// The hostile admin: holds the cluster's admin certificate and sends the generator's control-API
// requests, well-formed HTTP through node:https (keep-alive, so volume is cheap) and malformed HTTP on
// raw TLS connections. Every answer is judged: a hostile request must get a 4xx (503 only during an
// election) or a closed connection; a 5xx, or a 2xx to a write, is a finding.
import type { ClientRequest } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { adminInput, type AdminContext, type AdminInput } from './generate.ts';
import type { Rng } from './prng.ts';
import type { Tally } from './tally.ts';

export interface AdminCreds {
  key: string;
  cert: string;
  ca: string;
}

/** Generous: on a loaded machine the attacker itself may be starved for seconds. */
const REQUEST_TIMEOUT_MS = 10_000;

type Answer = { status: number } | { closed: string } | { timeout: true };

function describe(i: AdminInput): string {
  if (i.raw) return `raw ${JSON.stringify(i.raw.subarray(0, 200).toString('latin1'))}`;
  const body = i.body ? ` body(${i.body.length} B) ${JSON.stringify(i.body.subarray(0, 160).toString('utf8'))}` : '';
  return `${i.method} ${i.path.length > 200 ? i.path.slice(0, 200) + '…' : i.path}${body}`;
}

function send(addr: string, creds: AdminCreds, agent: Agent, i: AdminInput): Promise<Answer> {
  const at = addr.lastIndexOf(':');
  return new Promise((resolve) => {
    let done = false;
    const finish = (a: Answer) => {
      if (!done) {
        done = true;
        resolve(a);
      }
    };
    let req: ClientRequest;
    try {
      req = httpsRequest(
        {
          host: addr.slice(0, at),
          port: Number(addr.slice(at + 1)),
          method: i.method,
          path: i.path,
          headers: { ...i.headers, ...(i.body ? { 'content-length': String(i.body.length) } : {}) },
          key: creds.key,
          cert: creds.cert,
          ca: creds.ca,
          checkServerIdentity: () => undefined,
          agent,
          timeout: REQUEST_TIMEOUT_MS,
        },
        (res) => {
          res.resume();
          res.on('error', () => {});
          finish({ status: res.statusCode ?? 0 });
        },
      );
    } catch (e) {
      // node:http refuses some paths or methods itself: nothing reached the manager.
      finish({ closed: `not sendable: ${(e as Error).message.slice(0, 60)}` });
      return;
    }
    req.on('timeout', () => {
      finish({ timeout: true });
      req.destroy();
    });
    req.on('error', (e: NodeJS.ErrnoException) => finish({ closed: e.code ?? e.message }));
    req.end(i.body ?? undefined);
  });
}

function sendRaw(addr: string, creds: AdminCreds, raw: Buffer): Promise<Answer> {
  const at = addr.lastIndexOf(':');
  return new Promise((resolve) => {
    let head = '';
    let done = false;
    const sock = tlsConnect({
      host: addr.slice(0, at),
      port: Number(addr.slice(at + 1)),
      key: creds.key,
      cert: creds.cert,
      ca: creds.ca,
      checkServerIdentity: () => undefined,
    });
    const finish = (a: Answer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(a);
    };
    const timer = setTimeout(() => finish({ timeout: true }), 3000);
    sock.on('secureConnect', () => sock.write(raw));
    sock.on('data', (d: Buffer) => {
      head += d.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      if (m) finish({ status: Number(m[1]) });
      else if (head.length > 12) finish({ closed: `non-HTTP answer ${JSON.stringify(head.slice(0, 20))}` });
    });
    sock.on('error', (e: NodeJS.ErrnoException) => finish({ closed: e.code ?? e.message }));
    sock.on('close', () => finish({ closed: 'closed' }));
  });
}

export interface AdminDriverOptions {
  /** The leader's address (writes are only answered there; followers redirect). */
  target: () => string;
  creds: AdminCreds;
  ctx: () => AdminContext;
  rng: Rng;
  ratePerSec: number;
  tally: Tally;
  stop: () => boolean;
}

/** Judges one answer: counts it, and records a finding for a 5xx (not 503) or an accepted write. */
export function judgeAdmin(tally: Tally, i: AdminInput, a: Answer): void {
  if ('timeout' in a) {
    tally.outcome(i.kind, 'no answer within the timeout');
    // A follow-mode log stream legitimately never ends, and some raw requests announce a body they
    // never send (the manager waits for it: its idle timeout, not an answer, ends those).
    if (!i.raw && !i.path.startsWith('/v1/logs')) tally.finding(i.kind, describe(i), `no answer within ${i.raw ? 3000 : REQUEST_TIMEOUT_MS} ms`);
    return;
  }
  if ('closed' in a) {
    tally.outcome(i.kind, `closed (${a.closed})`);
    return;
  }
  tally.outcome(i.kind, String(a.status));
  // 505 answers a request line with an unknown HTTP version: its meaning is right.
  if (a.status >= 500 && a.status !== 503 && !(i.raw && a.status === 505)) tally.finding(i.kind, describe(i), `HTTP ${a.status}`);
  else if (a.status >= 200 && a.status < 300 && i.method === 'POST') tally.finding(i.kind, describe(i), `HTTP ${a.status}: a hostile write was accepted`);
}

/** One sequential hostile admin client (keep-alive connection) until stop(). */
export async function driveAdmin(o: AdminDriverOptions): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    let due = Date.now();
    while (!o.stop()) {
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      due = Math.max(due + 1000 / o.ratePerSec, Date.now() - 1000);
      const i = adminInput(o.rng, o.ctx());
      o.tally.count(i.kind);
      const a = i.raw ? await sendRaw(o.target(), o.creds, i.raw) : await send(o.target(), o.creds, agent, i);
      judgeAdmin(o.tally, i, a);
    }
  } finally {
    agent.destroy();
  }
}
