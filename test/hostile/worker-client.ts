// The hostile worker: a real node identity (joined with the worker token, certificate signed by the
// cluster CA) that speaks the dispatcher protocol over mutual TLS, but writes its WebSocket frames by
// hand (ws-frame.ts) so it can send anything the generator makes, pipelined at a set rate.
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { randomBytes } from 'node:crypto';
import { httpsJson } from '../../transport/https.ts';
import { createCsr, generateKeyPem } from '../../manager/ca/pki.ts';
import { DISPATCHER_PATH } from '../../api/dispatcher.ts';
import { dispatcherInput, type DispatcherContext } from './generate.ts';
import type { Rng } from './prng.ts';
import type { Tally } from './tally.ts';

export interface WorkerCreds {
  nodeId: string;
  key: string;
  cert: string;
  ca: string;
  /** A CSR for the same key (a valid `renew`). */
  csr: string;
}

export class JoinError extends Error {
  override name = 'JoinError';
}

/**
 * Joins `count` worker identities through POST /v1/join (as `shoal join` does: a key, a CSR, the token),
 * following leader redirects and waiting out the join rate limit. One key serves all of them: key
 * generation would dominate, and the certificates still differ (CN = node id).
 */
export async function joinWorkers(o: {
  manager: string;
  token: string;
  caPem: string;
  count: number;
  advertise: string;
  hostnamePrefix: string;
}): Promise<WorkerCreds[]> {
  const key = await generateKeyPem();
  const out: WorkerCreds[] = [];
  for (let i = 0; i < o.count; i++) {
    let remote = o.manager;
    for (let attempt = 0; ; attempt++) {
      if (attempt >= 50) throw new JoinError(`join ${o.hostnamePrefix}${i}: gave up after 50 attempts`);
      const r = await httpsJson(
        remote,
        'POST',
        '/v1/join',
        { token: o.token, csr: createCsr({ keyPem: key, nodeId: 'joining' }), advertise: o.advertise, hostname: `${o.hostnamePrefix}${i}` },
        { ca: o.caPem },
      );
      if (r.status === 421 && typeof r.body?.error?.leader === 'string') {
        remote = r.body.error.leader;
        continue;
      }
      if (r.status === 429 || r.status === 503) {
        await new Promise((res) => setTimeout(res, 200));
        continue;
      }
      if (r.status !== 200) throw new JoinError(`join ${o.hostnamePrefix}${i}: HTTP ${r.status} ${r.body?.error?.message ?? ''}`);
      const nodeId = String(r.body.nodeId);
      out.push({ nodeId, key, cert: r.body.certPem, ca: r.body.caCertPem, csr: createCsr({ keyPem: key, nodeId }) });
      break;
    }
  }
  return out;
}

export class HandshakeError extends Error {
  override name = 'HandshakeError';
}

/** One dispatcher session on a raw TLS socket (after a hand-made WebSocket upgrade). */
export class RawSession {
  closed = false;
  /** When the server (not we) closed the stream. */
  closedByServerAt: number | null = null;
  private endedByUs = false;

  private constructor(private readonly sock: TLSSocket) {
    sock.on('data', () => {}); // the manager's frames are read and dropped, so its send buffer drains
    sock.on('error', () => {});
    sock.on('close', () => {
      this.closed = true;
      if (!this.endedByUs) this.closedByServerAt = Date.now();
    });
  }

  static open(addr: string, creds: WorkerCreds, timeoutMs = 5000): Promise<RawSession> {
    const i = addr.lastIndexOf(':');
    return new Promise((resolve, reject) => {
      const sock = tlsConnect({
        host: addr.slice(0, i),
        port: Number(addr.slice(i + 1)),
        key: creds.key,
        cert: creds.cert,
        ca: creds.ca,
        checkServerIdentity: () => undefined,
      });
      const timer = setTimeout(() => fail(new HandshakeError(`${addr}: no upgrade answer within ${timeoutMs} ms`)), timeoutMs);
      let head = Buffer.alloc(0);
      const fail = (e: Error) => {
        clearTimeout(timer);
        sock.removeAllListeners('data');
        sock.destroy();
        reject(e);
      };
      sock.on('error', (e) => fail(new HandshakeError(`${addr}: ${e.message}`)));
      sock.on('close', () => fail(new HandshakeError(`${addr}: closed during the upgrade`)));
      sock.once('secureConnect', () => {
        sock.write(
          `GET ${DISPATCHER_PATH} HTTP/1.1\r\nHost: ${addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n\r\n`,
        );
      });
      sock.on('data', (d: Buffer) => {
        head = Buffer.concat([head, d]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const status = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
        if (!/^HTTP\/1\.1 101 /.test(status)) return fail(new HandshakeError(`${addr}: upgrade refused: ${status}`));
        clearTimeout(timer);
        sock.removeAllListeners('data');
        sock.removeAllListeners('error');
        sock.removeAllListeners('close');
        resolve(new RawSession(sock));
      });
    });
  }

  /** Writes bytes; false if the stream is closed (before or while writing). */
  async write(b: Buffer): Promise<boolean> {
    if (this.closed) return false;
    if (!this.sock.write(b)) {
      await new Promise<void>((r) => {
        const done = () => {
          this.sock.off('drain', done);
          this.sock.off('close', done);
          r();
        };
        this.sock.on('drain', done);
        this.sock.on('close', done);
      });
    }
    return !this.closed;
  }

  /** Waits up to `ms` for the server to close the stream; true if it did. */
  async waitClosed(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.closed;
  }

  end(): void {
    this.endedByUs = true;
    this.sock.destroy();
  }
}

export interface WorkerDriverOptions {
  /** Managers to connect to, the leader first (a follower redirects and closes). */
  managers: string[];
  creds: WorkerCreds;
  otherTaskIds: () => readonly string[];
  maxPayload: number;
  rng: Rng;
  /** Hostile inputs per second for this connection. */
  ratePerSec: number;
  tally: Tally;
  stop: () => boolean;
  log: (l: string) => void;
}

const TICK_MS = 20;
/** How long to wait for the manager to close a stream after a protocol error before closing it ourselves
 * (short: waiting is time not spent attacking; a slower close shows as 'left open' in the outcomes). */
const ENDS_WAIT_MS = 300;
/** Bytes written per pipelined batch at most. */
const BATCH_BYTES = 1 << 20;

/** Runs one hostile worker until stop(): reconnects whenever the session ends. */
export async function driveWorker(o: WorkerDriverOptions): Promise<void> {
  let next = 0;
  let budget = 0;
  let last = Date.now();
  while (!o.stop()) {
    const addr = o.managers[next % o.managers.length]!;
    let s: RawSession;
    const t0 = Date.now();
    try {
      s = await RawSession.open(addr, o.creds);
      // Session set-up time (TLS handshake + upgrade): with the dispatcher closing misbehaving sessions,
      // it bounds how many hostile inputs a worker identity can deliver.
      const ms = Date.now() - t0;
      o.tally.outcome('dispatcher/connect-time', ms < 100 ? '<100ms' : ms < 300 ? '<300ms' : ms < 1000 ? '<1s' : ms < 3000 ? '<3s' : '>=3s');
    } catch (e) {
      o.tally.outcome('dispatcher/connect', (e as Error).message.replace(/^[^:]+: /, '').slice(0, 80));
      next++;
      await new Promise((r) => setTimeout(r, 200));
      continue;
    }
    o.tally.count('dispatcher/connect');
    let lastKinds: string[] = [];
    let endedOnPurpose = false;
    while (!o.stop() && !s.closed) {
      await new Promise((r) => setTimeout(r, TICK_MS));
      const now = Date.now();
      // Time lost reconnecting is made up (up to 2 s of inputs), so the rate holds across sessions.
      budget = Math.min(budget + (o.ratePerSec * (now - last)) / 1000, 2 * o.ratePerSec);
      last = now;
      const ctx: DispatcherContext = { nodeId: o.creds.nodeId, otherTaskIds: o.otherTaskIds(), csr: o.creds.csr, maxPayload: o.maxPayload };
      const batch: Buffer[] = [];
      const kinds: string[] = [];
      let bytes = 0;
      let ending: string | null = null;
      while (budget >= 1 && bytes < BATCH_BYTES) {
        const input = dispatcherInput(o.rng, ctx, () => o.rng.bytes(4));
        budget--;
        batch.push(input.bytes);
        kinds.push(input.kind);
        bytes += input.bytes.length;
        if (input.ends) {
          ending = input.kind;
          break;
        }
      }
      if (batch.length === 0) continue;
      if (!(await s.write(Buffer.concat(batch)))) break;
      for (const k of kinds) o.tally.count(`dispatcher/${k}`);
      lastKinds = kinds;
      if (ending) {
        // A compliant manager closes the stream on a protocol error; a truncated frame can only be ended by us.
        const closed = await s.waitClosed(ENDS_WAIT_MS);
        o.tally.outcome(`dispatcher/${ending}`, closed ? 'closed by the manager' : 'left open (we closed it)');
        endedOnPurpose = true;
        break;
      }
    }
    // A session the manager ends before we wrote anything (a follower's "not leader" redirect) moves us
    // to the next manager: after a leader change the attack follows the leadership round the managers.
    if (s.closedByServerAt !== null && lastKinds.length === 0) next++;
    if (s.closedByServerAt !== null && !endedOnPurpose && !o.stop()) {
      // Not after a stream-ending input: the manager dropped the session (fair for a misbehaving peer).
      o.tally.outcome('dispatcher/session', 'closed by the manager mid-stream');
      if (lastKinds.length > 0) o.tally.outcome('dispatcher/session-closed-after', lastKinds[lastKinds.length - 1]!);
    }
    s.end();
  }
}
