import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request } from 'node:https';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { caDigest, createCsr, generateKeyPem } from '../../manager/ca/pki.ts';
import { createRootCa, signNodeCertificate } from '../../manager/ca/issue.ts';
import type { CaMaterial } from '../../manager/ca/pki.ts';
import { formatJoinToken, makeJoinToken, parseJoinToken, pinCa, RateLimiter, tokenMatches, TokenError } from '../../manager/ca/tokens.ts';
import type { TokenErrorCode } from '../../manager/ca/tokens.ts';

const DIGEST = 'a'.repeat(12) + '0123456789abcdef'.repeat(3) + 'b'.repeat(4);
const SECRET = 'abcdefghijklmnopqrstuvw12';

let ca: CaMaterial;
let rogueCa: CaMaterial; // a man in the middle's CA, same subject
let nodeKey: string;

before(async () => {
  [ca, rogueCa, nodeKey] = await Promise.all([createRootCa({ clusterId: 'cluster-a' }), createRootCa({ clusterId: 'cluster-a' }), generateKeyPem()]);
});

function tokenError(code: TokenErrorCode, message: string | RegExp, secret?: string): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof TokenError, `expected TokenError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (typeof message === 'string') assert.equal(err.message, message);
    else assert.match(err.message, message);
    if (secret) assert.ok(!err.message.includes(secret), 'the message must not echo the secret');
    return true;
  };
}

describe('join tokens', () => {
  test('format: SHOAL-1-<64 hex digest>-<25 base36>, round-trips through parse', () => {
    const t = makeJoinToken(DIGEST);
    assert.match(t, /^SHOAL-1-[0-9a-f]{64}-[0-9a-z]{25}$/);
    assert.ok(t.startsWith(`SHOAL-1-${DIGEST}-`));
    const p = parseJoinToken(t);
    assert.deepEqual(p, { version: 1, caDigest: DIGEST, secret: t.slice(-25) });
    assert.equal(formatJoinToken(p), t);
  });

  test('secrets are fresh and use the whole base36 alphabet', () => {
    const secrets = Array.from({ length: 400 }, () => parseJoinToken(makeJoinToken(DIGEST)).secret);
    assert.equal(new Set(secrets).size, secrets.length);
    const chars = new Set(secrets.join(''));
    assert.equal(chars.size, 36, `saw ${[...chars].sort().join('')}`); // 10,000 draws: a missing char is ~1e-120
  });

  test('makeJoinToken refuses a digest that is not 64 hex characters', () => {
    assert.throws(() => makeJoinToken('abc'), tokenError('TOKEN_DIGEST', 'join token CA digest must be 64 hex characters'));
    assert.throws(() => makeJoinToken('g'.repeat(64)), tokenError('TOKEN_DIGEST', /64 hex/));
  });

  test('parse tolerates surrounding whitespace and an upper-case digest, and canonicalises', () => {
    const p = parseJoinToken(`  SHOAL-1-${DIGEST.toUpperCase()}-${SECRET}\n`);
    assert.deepEqual(p, { version: 1, caDigest: DIGEST, secret: SECRET });
    assert.equal(formatJoinToken(p), `SHOAL-1-${DIGEST}-${SECRET}`);
  });

  const malformed: [string, string, TokenErrorCode, string | RegExp][] = [
    ['empty', '', 'TOKEN_PREFIX', 'join token must start with SHOAL-1-'],
    ['no prefix', SECRET, 'TOKEN_PREFIX', 'join token must start with SHOAL-1-'],
    ['lower-case prefix', `shoal-1-${DIGEST}-${SECRET}`, 'TOKEN_PREFIX', 'join token must start with SHOAL-1-'],
    [
      'a Docker Swarm token',
      `SWMTKN-1-${'x'.repeat(50)}-${SECRET}`,
      'TOKEN_PREFIX',
      'join token must start with SHOAL-1- (this looks like a Docker Swarm token)',
    ],
    ['another version', `SHOAL-2-${DIGEST}-${SECRET}`, 'TOKEN_PREFIX', 'join token must start with SHOAL-1- (this token is from a different Shoal version)'],
    ['short digest', `SHOAL-1-${DIGEST.slice(1)}-${SECRET}`, 'TOKEN_DIGEST', 'join token CA digest must be 64 hex characters'],
    ['non-hex digest', `SHOAL-1-${DIGEST.slice(1)}z-${SECRET}`, 'TOKEN_DIGEST', 'join token CA digest must be 64 hex characters'],
    ['digest only', `SHOAL-1-${DIGEST}`, 'TOKEN_SECRET', /^join token secret is malformed/],
    ['empty secret', `SHOAL-1-${DIGEST}-`, 'TOKEN_SECRET', /^join token secret is malformed/],
    ['short secret', `SHOAL-1-${DIGEST}-${SECRET.slice(1)}`, 'TOKEN_SECRET', /^join token secret is malformed/],
    ['upper-case secret', `SHOAL-1-${DIGEST}-${SECRET.toUpperCase()}`, 'TOKEN_SECRET', /^join token secret is malformed/],
    ['extra part', `SHOAL-1-${DIGEST}-${SECRET}-x`, 'TOKEN_SECRET', /^join token secret is malformed/],
    ['secret with a space', `SHOAL-1-${DIGEST}-${SECRET.slice(0, 12)} ${SECRET.slice(13)}`, 'TOKEN_SECRET', /^join token secret is malformed/],
  ];
  for (const [name, input, code, message] of malformed) {
    test(`parse refuses: ${name}`, () => {
      assert.throws(() => parseJoinToken(input), tokenError(code, message, SECRET.slice(0, 12)));
    });
  }

  test('tokenMatches: equal only when identical; any length, never throws', () => {
    const t = makeJoinToken(DIGEST);
    assert.equal(tokenMatches(t, t), true);
    assert.equal(tokenMatches(`${t}`, String(t)), true);
    const flipped = t.slice(0, -1) + (t.endsWith('a') ? 'b' : 'a');
    assert.equal(tokenMatches(flipped, t), false);
    assert.equal(tokenMatches(t.slice(0, -1), t), false, 'a prefix');
    assert.equal(tokenMatches(`${t}0`, t), false, 'longer');
    assert.equal(tokenMatches('', t), false);
    assert.equal(tokenMatches(makeJoinToken(DIGEST), t), false, 'another secret');
    assert.equal(tokenMatches(undefined as unknown as string, t), false);
  });
});

describe('pinCa', () => {
  test('accepts the CA the token was made for (string or parsed token)', () => {
    const token = makeJoinToken(caDigest(ca.certPem));
    pinCa(ca.certPem, token);
    pinCa(ca.certPem, parseJoinToken(token), '10.0.0.1:2377');
  });

  test('refuses another CA with the same name: possible man-in-the-middle', () => {
    const digest = caDigest(ca.certPem);
    const token = makeJoinToken(digest);
    const secret = parseJoinToken(token).secret;
    const expected =
      `the CA certificate presented by 10.0.0.1:2377 does not match the join token's digest ${digest.slice(0, 12)}…: ` +
      'refusing to join (possible man-in-the-middle)';
    assert.throws(() => pinCa(rogueCa.certPem, token, '10.0.0.1:2377'), tokenError('CA_MISMATCH', expected, secret));
    assert.throws(() => pinCa(rogueCa.certPem, token), tokenError('CA_MISMATCH', /presented by the manager does not match/));
  });

  test('refuses something that is not a certificate, and a malformed token', () => {
    const token = makeJoinToken(caDigest(ca.certPem));
    assert.throws(
      () => pinCa('<html>hi</html>', token, 'm1'),
      tokenError('CA_MALFORMED', /^the CA certificate presented by m1 is not a valid certificate.*: refusing to join$/),
    );
    assert.throws(() => pinCa(ca.certPem, 'SHOAL-1-xyz'), tokenError('TOKEN_DIGEST', /64 hex/));
  });
});

describe('join flow over https: fetch the CA untrusted, pin it, then trust only it', () => {
  const HOST = '127.0.0.1';
  const servers: Server[] = [];
  let realPort = 0;
  let mitmPort = 0;
  const secretsSeenByMitm: string[] = [];

  async function serveCa(material: CaMaterial, onJoin: (body: string) => void): Promise<number> {
    const csr = createCsr({ keyPem: nodeKey, nodeId: 'mgr-1' });
    const cert = signNodeCertificate({
      caCertPem: material.certPem,
      caKeyPem: material.keyPem,
      csrPem: csr,
      nodeId: 'mgr-1',
      role: 'manager',
      clusterId: 'cluster-a',
      sans: { ips: [HOST] },
    });
    // The CA-fetch and join endpoints are unauthenticated: no client certificate is requested.
    const server = createServer({ key: nodeKey, cert: cert.certPem }, (req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        if (req.url === '/ca') res.end(material.certPem);
        else {
          onJoin(body);
          res.end('joined');
        }
      });
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    return (server.address() as AddressInfo).port;
  }

  before(async () => {
    realPort = await serveCa(ca, () => {});
    mitmPort = await serveCa(rogueCa, (body) => secretsSeenByMitm.push(body));
  });

  after(async () => {
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  });

  function call(port: number, path: string, tls: { ca?: string; rejectUnauthorized: boolean }, body = ''): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = request({ host: HOST, port, path, method: body ? 'POST' : 'GET', agent: false, ...tls }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  /** What a joining node does. */
  async function join(port: number, token: string): Promise<string> {
    const presented = await call(port, '/ca', { rejectUnauthorized: false }); // not trusted yet
    pinCa(presented, token, `${HOST}:${port}`);
    return call(port, '/join', { ca: presented, rejectUnauthorized: true }, token); // secret only now
  }

  test('the real manager: pinned, then joined over TLS verified against the pinned CA', async () => {
    const token = makeJoinToken(caDigest(ca.certPem));
    assert.equal(await join(realPort, token), 'joined');
  });

  test('a man in the middle with its own CA: refused before the secret is sent', async () => {
    const token = makeJoinToken(caDigest(ca.certPem));
    await assert.rejects(join(mitmPort, token), tokenError('CA_MISMATCH', new RegExp(`presented by ${HOST}:${mitmPort} does not match`)));
    assert.deepEqual(secretsSeenByMitm, []);
  });
});

describe('RateLimiter', () => {
  test('a burst of `capacity`, then one request per refill interval', () => {
    const rl = new RateLimiter({ capacity: 3, refillPerSec: 1 });
    assert.deepEqual(
      [1, 2, 3, 4].map(() => rl.allow('10.0.0.1', 0)),
      [true, true, true, false],
    );
    assert.equal(rl.retryAfterMs('10.0.0.1', 0), 1000);
    assert.equal(rl.allow('10.0.0.1', 999), false);
    assert.equal(rl.retryAfterMs('10.0.0.1', 999), 1);
    assert.equal(rl.allow('10.0.0.1', 1000), true);
    assert.equal(rl.allow('10.0.0.1', 1000), false);
    assert.equal(rl.allow('10.0.0.1', 1_000_000), true, 'refilled');
    assert.deepEqual(
      [1, 2, 3].map(() => rl.allow('10.0.0.1', 1_000_000)),
      [true, true, false],
      'but never beyond capacity',
    );
  });

  test('keys are independent', () => {
    const rl = new RateLimiter({ capacity: 1, refillPerSec: 1 });
    assert.equal(rl.allow('a', 0), true);
    assert.equal(rl.allow('a', 0), false);
    assert.equal(rl.allow('b', 0), true);
    assert.equal(rl.retryAfterMs('c', 0), 0);
  });

  test('uses the injected clock when no time is passed; a clock stepping back grants nothing', () => {
    let now = 5_000;
    const rl = new RateLimiter({ capacity: 2, refillPerSec: 0.5, now: () => now });
    assert.equal(rl.allow('k'), true);
    assert.equal(rl.allow('k'), true);
    assert.equal(rl.allow('k'), false);
    now = 1_000; // backwards
    assert.equal(rl.allow('k'), false);
    now = 6_999;
    assert.equal(rl.allow('k'), false);
    now = 7_000; // 2 s at 0.5/s since 5 s
    assert.equal(rl.allow('k'), true);
  });

  test('bounded memory: forgets full buckets first, then the least recently used', () => {
    const rl = new RateLimiter({ capacity: 2, refillPerSec: 1, maxKeys: 3 });
    rl.allow('a', 0);
    rl.allow('a', 0); // a drained
    rl.allow('b', 500); // b at 1 of 2
    rl.allow('c', 1000); // c at 1 of 2
    assert.equal(rl.size, 3);
    // At t=1600: a has 1.6 tokens, b full (2), c 1.6. A new key evicts b (full) only.
    assert.equal(rl.allow('d', 1600), true);
    assert.equal(rl.size, 3);
    assert.equal(rl.allow('a', 1600), true);
    assert.equal(rl.allow('a', 1600), false, 'a was remembered, not reset');
    // Nothing is full now: a new key evicts the least recently used (c) to make room.
    assert.equal(rl.allow('d', 1600), true); // d at 0 of 2
    assert.equal(rl.allow('e', 1600), true);
    assert.equal(rl.size, 3);
    assert.equal(rl.allow('a', 1600), false, 'a (recently used) is still limited');
    assert.equal(rl.allow('d', 1600), false, 'd (recently used) is still limited');
    assert.equal(rl.allow('c', 1600), true);
    assert.equal(rl.allow('c', 1600), true, 'c was forgotten: a fresh bucket of 2');
  });

  test('rejects nonsense options', () => {
    assert.throws(() => new RateLimiter({ capacity: 0 }), RangeError);
    assert.throws(() => new RateLimiter({ refillPerSec: 0 }), RangeError);
  });
});
