// The unauthenticated stranger: raw TCP and certificate-less TLS connections to the managers' secure
// port. It keeps many connections open, stalls handshakes and headers, drips request bodies, and asks
// for WebSocket upgrades on every path. An upgrade must be answered or closed at once; everything
// else must end in a 4xx or a close (the time the manager took to close stalled ones is recorded).
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { unauthInput, type UnauthInput } from './generate.ts';
import type { Rng } from './prng.ts';
import type { Tally } from './tally.ts';

/** An upgrade on a path that is not a WebSocket endpoint must be refused this fast (issue: "at once"). */
export const UPGRADE_ANSWER_MS = 5000;

/** The time limits the managers declare for connections (daemon/server-guard.ts ServerLimits). */
export interface HoldLimits {
  handshakeTimeoutMs: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
}

/** Allowance over a declared limit: timers, a loaded machine, a starved attacker. */
export const HOLD_SLACK_MS = 10_000;

/** How long the managers may hold a connection of this kind that got no answer. */
export function holdLimitMs(kind: UnauthInput['kind'], l: HoldLimits): number {
  switch (kind) {
    case 'unauth/conn-hold':
    case 'unauth/tls-stall':
    case 'unauth/garbage-tcp':
      return l.handshakeTimeoutMs + HOLD_SLACK_MS; // never completes a TLS handshake
    case 'unauth/slowloris-body':
      return l.requestTimeoutMs + HOLD_SLACK_MS; // headers done, the body drips
    default:
      return l.headersTimeoutMs + HOLD_SLACK_MS; // headers never finish (or were answered)
  }
}

export interface UnauthDriverOptions {
  managers: string[];
  rng: Rng;
  /** New connections per second. */
  ratePerSec: number;
  /** Connections held open at most at once. */
  maxOpen: number;
  tally: Tally;
  stop: () => boolean;
  limits: HoldLimits;
}

/** How long the manager took to close, in coarse buckets (the outcome names stay few). */
function bucket(ms: number): string {
  return ms < 1000 ? '<1s' : ms < 10_000 ? '<10s' : ms < 30_000 ? '<30s' : ms < 60_000 ? '<60s' : '>=60s';
}

class Conn {
  readonly startedAt = Date.now();
  status: number | null = null;
  closedAt: number | null = null;
  private sock: Socket;
  private drip: NodeJS.Timeout | null = null;
  private head = '';
  private destroyedByUs = false;

  constructor(
    addr: string,
    readonly input: UnauthInput,
    private readonly tally: Tally,
    private readonly onEnd: (c: Conn) => void,
  ) {
    const at = addr.lastIndexOf(':');
    const host = addr.slice(0, at);
    const port = Number(addr.slice(at + 1));
    const start = () => {
      if (input.first.length > 0) this.sock.write(input.first);
      if (input.drip.length > 0) {
        let i = 0;
        this.drip = setInterval(() => {
          if (i >= input.drip.length || this.closedAt !== null) return this.stopDrip();
          this.sock.write(input.drip.subarray(i, i + 1));
          i++;
        }, input.dripMs);
      }
      if (input.kind === 'unauth/upgrade') {
        // setImmediate: judged after the poll phase, so an answer that arrived while this (possibly
        // starved) process was busy is read first and not mistaken for silence.
        setTimeout(
          () =>
            setImmediate(() => {
              if (this.closedAt === null && this.status === null && !this.destroyedByUs) {
                tally.finding(input.kind, `upgrade ${input.upgradePath} without a certificate`, `neither answered nor closed within ${UPGRADE_ANSWER_MS} ms`);
              }
            }),
          UPGRADE_ANSWER_MS,
        ).unref();
      }
    };
    this.sock = input.transport === 'tls' ? tlsConnect({ host, port, rejectUnauthorized: false }, start) : netConnect({ host, port }, start);
    this.sock.on('data', (d: Buffer) => {
      if (this.status !== null || this.head.length > 64) return;
      this.head += d.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(this.head);
      if (!m) return;
      this.status = Number(m[1]);
      tally.outcome(input.kind, `HTTP ${this.status}${input.upgradePath ? ` (${input.upgradePath})` : ''}`);
      if (this.status >= 500 && this.status !== 503)
        tally.finding(input.kind, JSON.stringify(input.first.subarray(0, 200).toString('latin1')), `HTTP ${this.status}`);
      if (this.status >= 200 && this.status < 300 && input.kind === 'unauth/join-hostile')
        tally.finding(input.kind, JSON.stringify(input.first.subarray(0, 200).toString('latin1')), `HTTP ${this.status}: a hostile join was accepted`);
      if (this.status === 101) tally.finding(input.kind, `upgrade ${input.upgradePath} without a certificate`, 'HTTP 101: upgraded');
      // Answered: free the slot for the next stalled connection.
      setTimeout(() => this.destroy(), 200).unref();
    });
    this.sock.on('error', () => {});
    this.sock.on('close', () => {
      this.closedAt = Date.now();
      this.stopDrip();
      if (this.status === null && !this.destroyedByUs) tally.outcome(input.kind, `closed by the manager ${bucket(this.closedAt - this.startedAt)}`);
      onEnd(this);
    });
  }

  private stopDrip(): void {
    if (this.drip) clearInterval(this.drip);
    this.drip = null;
  }

  destroy(): void {
    this.destroyedByUs = true;
    this.stopDrip();
    this.sock.destroy();
  }
}

/** Opens hostile unauthenticated connections at a rate, holding up to maxOpen, until stop(). */
export async function driveUnauth(o: UnauthDriverOptions): Promise<{ openAtEnd: Record<string, number>; oldestOpenMs: number }> {
  const open = new Set<Conn>();
  let n = 0;
  let due = Date.now();
  while (!o.stop()) {
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    due = Math.max(due + 1000 / o.ratePerSec, Date.now() - 1000);
    if (open.size >= o.maxOpen) continue;
    const input = unauthInput(o.rng);
    o.tally.count(input.kind);
    const addr = o.managers[n++ % o.managers.length]!;
    open.add(new Conn(addr, input, o.tally, (c) => open.delete(c)));
  }
  // What the managers still hold at the end: stalled connections that never timed out.
  const openAtEnd: Record<string, number> = {};
  let oldestOpenMs = 0;
  const now = Date.now();
  for (const c of [...open]) {
    if (c.closedAt === null && c.status === null) {
      const age = now - c.startedAt;
      openAtEnd[c.input.kind] = (openAtEnd[c.input.kind] ?? 0) + 1;
      oldestOpenMs = Math.max(oldestOpenMs, age);
      const limit = holdLimitMs(c.input.kind, o.limits);
      if (age > limit)
        o.tally.finding(
          c.input.kind,
          JSON.stringify(c.input.first.subarray(0, 120).toString('latin1')),
          `held open for ${Math.round(age / 1000)} s without an answer (declared limit + slack: ${limit / 1000} s)`,
        );
    }
    c.destroy();
  }
  return { openAtEnd, oldestOpenMs };
}
