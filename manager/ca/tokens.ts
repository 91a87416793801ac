// Join tokens, CA pinning and the rate limiter for the unauthenticated join endpoints.
// See docs/design/ca.md ("Joining").
//
// A token is `SHOAL-1-<sha256 of the CA certificate DER, 64 hex>-<secret, 25 base36 chars>`. The digest
// lets a joining node pin the CA it fetched over an unauthenticated connection; the secret proves to
// the manager that the joiner was given the token (one secret for workers, one for managers).
import { createHash, randomInt, timingSafeEqual } from 'node:crypto';
import { caDigest as digestOf, PkiError } from './pki.ts';

export const TOKEN_PREFIX = 'SHOAL-1-';
export const TOKEN_SECRET_LENGTH = 25;
const BASE36 = '0123456789abcdefghijklmnopqrstuvwxyz';
const DIGEST = /^[0-9a-f]{64}$/;
const SECRET = /^[0-9a-z]{25}$/;

export type TokenErrorCode = 'TOKEN_PREFIX' | 'TOKEN_DIGEST' | 'TOKEN_SECRET' | 'CA_MISMATCH' | 'CA_MALFORMED';

/** A join-token problem. Messages never contain the token's secret. */
export class TokenError extends Error {
  override readonly name = 'TokenError';
  constructor(
    readonly code: TokenErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface JoinToken {
  version: 1;
  /** Lowercase hex sha256 of the CA certificate's DER. */
  caDigest: string;
  /** 25 characters of [0-9a-z]. */
  secret: string;
}

/** A new token for the CA with this digest: 25 uniformly random base36 characters (~129 bits). */
export function makeJoinToken(caDigest: string): string {
  const digest = typeof caDigest === 'string' ? caDigest.toLowerCase() : '';
  if (!DIGEST.test(digest)) throw new TokenError('TOKEN_DIGEST', 'join token CA digest must be 64 hex characters');
  let secret = '';
  for (let i = 0; i < TOKEN_SECRET_LENGTH; i++) secret += BASE36[randomInt(36)];
  return `${TOKEN_PREFIX}${digest}-${secret}`;
}

/**
 * Parses a token as a user pasted it (surrounding whitespace is ignored; the digest may be upper case).
 * Throws TokenError naming what is wrong, without echoing any of the token.
 */
export function parseJoinToken(s: string): JoinToken {
  const text = typeof s === 'string' ? s.trim() : '';
  if (!text.startsWith(TOKEN_PREFIX)) {
    const hint = /^SWMTKN-/i.test(text)
      ? ' (this looks like a Docker Swarm token)'
      : /^SHOAL-\d+-/.test(text)
        ? ' (this token is from a different Shoal version)'
        : '';
    throw new TokenError('TOKEN_PREFIX', `join token must start with ${TOKEN_PREFIX}${hint}`);
  }
  const rest = text.slice(TOKEN_PREFIX.length);
  const dash = rest.indexOf('-');
  const digest = (dash < 0 ? rest : rest.slice(0, dash)).toLowerCase();
  if (!DIGEST.test(digest)) throw new TokenError('TOKEN_DIGEST', 'join token CA digest must be 64 hex characters');
  const secret = dash < 0 ? '' : rest.slice(dash + 1);
  if (!SECRET.test(secret)) {
    throw new TokenError('TOKEN_SECRET', `join token secret is malformed (expected ${TOKEN_SECRET_LENGTH} characters of 0-9 and a-z)`);
  }
  return { version: 1, caDigest: digest, secret };
}

/** The canonical text of a parsed token (what a joining node should send). */
export function formatJoinToken(t: JoinToken): string {
  return `${TOKEN_PREFIX}${t.caDigest}-${t.secret}`;
}

/**
 * Constant-time token comparison: both sides are hashed first, so neither their contents nor their
 * lengths influence the timing. Compare canonical forms (formatJoinToken) when input may be untidy.
 */
export function tokenMatches(presented: string, expected: string): boolean {
  if (typeof presented !== 'string' || typeof expected !== 'string') return false;
  const a = createHash('sha256').update(presented, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/**
 * Pins a CA certificate fetched over an unauthenticated connection to the join token's digest. Throws
 * TokenError when it is not the certificate the token was made for. `where` names the peer in the message.
 */
export function pinCa(caCertPem: string, token: string | JoinToken, where = 'the manager'): void {
  const parsed = typeof token === 'string' ? parseJoinToken(token) : token;
  let actual: string;
  try {
    actual = digestOf(caCertPem);
  } catch (err) {
    const why = err instanceof PkiError ? `: ${err.message}` : '';
    throw new TokenError('CA_MALFORMED', `the CA certificate presented by ${where} is not a valid certificate${why}: refusing to join`);
  }
  if (actual !== parsed.caDigest.toLowerCase()) {
    throw new TokenError(
      'CA_MISMATCH',
      `the CA certificate presented by ${where} does not match the join token's digest ${parsed.caDigest.slice(0, 12)}…: ` +
        'refusing to join (possible man-in-the-middle)',
    );
  }
}

// ---------------------------------------------------------------------------------------------------
// Rate limiting

export interface RateLimiterOptions {
  /** Bucket size: requests a fresh key may make in a burst. Default 10. */
  capacity?: number;
  /** Tokens added per second. Default 1. */
  refillPerSec?: number;
  /** Keys remembered at most; beyond that, full buckets and then the least recently used go. Default 10,000. */
  maxKeys?: number;
  /** Clock in milliseconds. Default Date.now. */
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * A token bucket per key (the remote address) for the unauthenticated endpoints (CA fetch, join). The
 * caller chooses the key: normalise IPv4-mapped IPv6 addresses, and consider an IPv6 /64 as one key.
 */
export class RateLimiter {
  readonly capacity: number;
  readonly refillPerSec: number;
  readonly maxKeys: number;
  private readonly clock: () => number;
  private readonly buckets = new Map<string, Bucket>();

  constructor(opts: RateLimiterOptions = {}) {
    this.capacity = opts.capacity ?? 10;
    this.refillPerSec = opts.refillPerSec ?? 1;
    this.maxKeys = opts.maxKeys ?? 10_000;
    this.clock = opts.now ?? Date.now;
    if (!(this.capacity >= 1) || !(this.refillPerSec > 0) || !(this.maxKeys >= 1)) {
      throw new RangeError('RateLimiter needs capacity >= 1, refillPerSec > 0 and maxKeys >= 1');
    }
  }

  /** Takes one token from `key`'s bucket; false when it is empty (the request should get a 429). */
  allow(key: string, now: number = this.clock()): boolean {
    const bucket = this.refill(key, now);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Milliseconds until `key` may make its next request (0 if it may now); for Retry-After. */
  retryAfterMs(key: string, now: number = this.clock()): number {
    const b = this.buckets.get(key);
    if (!b) return 0;
    const tokens = this.level(b, now);
    // (the epsilon absorbs floating-point residue: 0.999 tokens at 1/s is 1 ms, not 2)
    return tokens >= 1 ? 0 : Math.ceil(((1 - tokens) * 1000) / this.refillPerSec - 1e-6);
  }

  /** Keys currently remembered. */
  get size(): number {
    return this.buckets.size;
  }

  private level(b: Bucket, now: number): number {
    const elapsed = Math.max(0, now - b.at); // a clock stepping backwards adds nothing
    return Math.min(this.capacity, b.tokens + (elapsed * this.refillPerSec) / 1000);
  }

  private refill(key: string, now: number): Bucket {
    let b = this.buckets.get(key);
    if (b) {
      b.tokens = this.level(b, now);
      b.at = Math.max(b.at, now);
      this.buckets.delete(key); // re-insert: Map order is least recently used first
    } else {
      if (this.buckets.size >= this.maxKeys) this.evict(now);
      b = { tokens: this.capacity, at: now };
    }
    this.buckets.set(key, b);
    return b;
  }

  private evict(now: number): void {
    // A full bucket carries no information: forgetting it changes nothing. Then least recently used
    // first, down to 90 % so the scan runs once per maxKeys/10 new keys, not on every one.
    for (const [k, b] of this.buckets) {
      if (this.level(b, now) >= this.capacity) this.buckets.delete(k);
    }
    const target = Math.min(this.maxKeys - 1, Math.floor(this.maxKeys * 0.9));
    for (const k of this.buckets.keys()) {
      if (this.buckets.size <= target) break;
      this.buckets.delete(k);
    }
  }
}
