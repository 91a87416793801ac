// Root CA rotation: the cross-signed link (checked by OpenSSL through Node's TLS, both directions, and
// by `openssl verify`), an operator-supplied root, and the pure state machine (manager/ca/rotation.ts):
// issuer, accepted roots, progress, reconciler steps, completion.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { caDigest, issuingRootDigest, createCsr, generateKeyPem, PkiError, verifyNodeCertificate, type CaMaterial } from '../../manager/ca/pki.ts';
import { checkRootCa, createRootCa, crossSignRoot, signNodeCertificate } from '../../manager/ca/issue.ts';
import {
  acceptedRoots,
  beginRotation,
  completeRotation,
  issuerOf,
  NUDGE_EVERY_MS,
  phaseOf,
  progress,
  reconcile,
  RotationError,
  withChain,
  type NodeView,
} from '../../manager/ca/rotation.ts';
import { makeJoinToken, parseJoinToken } from '../../manager/ca/tokens.ts';
import type { RootCa } from '../../api/objects.ts';

const CLUSTER = 'cluster-r';
let r0: CaMaterial;
let r1: CaMaterial;
let r2: CaMaterial;
let cross: string;
let keyA: string;
let keyB: string;
let dir: string;

before(async () => {
  [r0, r1, r2, keyA, keyB] = await Promise.all([
    createRootCa({ clusterId: CLUSTER }),
    createRootCa({ clusterId: CLUSTER }),
    createRootCa({ clusterId: CLUSTER }),
    generateKeyPem(),
    generateKeyPem(),
  ]);
  cross = crossSignRoot({ newCertPem: r1.certPem, oldCertPem: r0.certPem, oldKeyPem: r0.keyPem });
  dir = mkdtempSync(join(tmpdir(), 'shoal-rot-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const leaf = (ca: CaMaterial, key: string, id: string) =>
  signNodeCertificate({
    caCertPem: ca.certPem,
    caKeyPem: ca.keyPem,
    csrPem: createCsr({ keyPem: key, nodeId: id }),
    nodeId: id,
    role: 'manager',
    clusterId: CLUSTER,
    sans: { ips: ['127.0.0.1'] },
  });

/** A mutual-TLS handshake: server (cert chain, trust) ↔ client (cert chain, trust). Resolves with what each side saw. */
async function handshake(server: { key: string; cert: string; ca: string }, client: { key: string; cert: string; ca: string }) {
  const srv: Server = createServer({ ...server, requestCert: true, rejectUnauthorized: false }, (_q, s) => s.end('ok'));
  const serverSaw = new Promise<{ authorized: boolean; error: string | null }>((resolve) => {
    srv.on('secureConnection', (s: TLSSocket) => resolve({ authorized: s.authorized, error: s.authorizationError ? String(s.authorizationError) : null }));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as AddressInfo).port;
  try {
    const clientSaw = await new Promise<{ ok: boolean; error: string | null }>((resolve) => {
      const s = connect({ host: '127.0.0.1', port, ...client, rejectUnauthorized: false, checkServerIdentity: () => undefined }, () => {
        resolve({ ok: s.authorized, error: s.authorizationError ? String(s.authorizationError) : null });
        s.end();
      });
      s.on('error', (e) => resolve({ ok: false, error: e.message }));
    });
    return { client: clientSaw, server: await serverSaw };
  } finally {
    srv.closeAllConnections();
    await new Promise<void>((r) => srv.close(() => r()));
  }
}

describe('crossSignRoot', () => {
  test('the cross-signed copy has the new root subject and key, issued by the old root', () => {
    const x = new X509Certificate(cross);
    const n = new X509Certificate(r1.certPem);
    const o = new X509Certificate(r0.certPem);
    assert.equal(x.subject, n.subject);
    assert.ok(x.publicKey.equals(n.publicKey));
    assert.ok(x.checkIssued(o) && x.verify(o.publicKey), 'signed by the old root');
    assert.ok(!x.verify(n.publicKey), 'not self-signed');
    assert.ok(x.ca);
    assert.ok(new Date(x.validTo).getTime() <= new Date(o.validTo).getTime());
  });

  test('openssl verify: a new-key leaf chains to the old root through the cross-signed copy, and to the new root alone', () => {
    const l = leaf(r1, keyA, 'node-a');
    const f = (n: string, s: string) => {
      writeFileSync(join(dir, n), s);
      return join(dir, n);
    };
    const ok = (args: string[]) => execFileSync('openssl', ['verify', ...args], { encoding: 'utf8' });
    assert.match(ok(['-CAfile', f('r0.pem', r0.certPem), '-untrusted', f('x.pem', cross), f('l.pem', l.certPem)]), /OK/);
    assert.match(ok(['-CAfile', f('r1.pem', r1.certPem), f('l.pem', l.certPem)]), /OK/);
    assert.throws(
      () => execFileSync('openssl', ['verify', '-CAfile', join(dir, 'r0.pem'), join(dir, 'l.pem')], { stdio: 'pipe' }),
      'no chain without the cross-signed copy',
    );
    assert.throws(() =>
      execFileSync('openssl', ['verify', '-CAfile', f('r2.pem', r2.certPem), '-untrusted', join(dir, 'x.pem'), join(dir, 'l.pem')], { stdio: 'pipe' }),
    );
  });

  test('TLS both ways: old-root truster ↔ new-key leaf served with its chain, new-root truster ↔ same', async () => {
    const a = leaf(r1, keyA, 'node-a'); // reissued during the rotation
    const b = leaf(r0, keyB, 'node-b'); // not yet reissued
    const issuer = issuerOf({
      caCertPem: r0.certPem,
      caKeyPem: r0.keyPem,
      rotation: { newCertPem: r1.certPem, newKeyPem: r1.keyPem, crossSignedPem: cross, startedAt: '', external: false },
    });
    const aChain = withChain(a.certPem, issuer);
    // During the rotation everyone trusts R0: a new-key node and an old-key node talk both ways.
    let out = await handshake({ key: keyA, cert: aChain, ca: r0.certPem }, { key: keyB, cert: b.certPem, ca: r0.certPem });
    assert.deepEqual([out.client.ok, out.server.authorized], [true, true], JSON.stringify(out));
    out = await handshake({ key: keyB, cert: b.certPem, ca: r0.certPem }, { key: keyA, cert: aChain, ca: r0.certPem });
    assert.deepEqual([out.client.ok, out.server.authorized], [true, true], JSON.stringify(out));
    // After completion: a node that swapped its anchor to R1 and one that still trusts R0, both with new-key leaves.
    const b1 = withChain(leaf(r1, keyB, 'node-b').certPem, issuer);
    out = await handshake({ key: keyA, cert: aChain, ca: r1.certPem }, { key: keyB, cert: b1, ca: r0.certPem });
    assert.deepEqual([out.client.ok, out.server.authorized], [true, true], JSON.stringify(out));
    // An old-root leaf is refused by a node that trusts only R1.
    out = await handshake({ key: keyA, cert: aChain, ca: r1.certPem }, { key: keyB, cert: b.certPem, ca: r0.certPem });
    assert.equal(out.server.authorized, false);
  });
});

describe('checkRootCa (an operator-supplied root)', () => {
  test('accepts an OpenSSL-made RSA root and keeps its bytes (the token digest is over them)', () => {
    const k = join(dir, 'ext.key');
    const c = join(dir, 'ext.crt');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', k, '-out', c, '-days', '3650', '-subj', '/CN=Example Root/O=ops'], {
      stdio: 'pipe',
    });
    const certPem = readFileSync(c, 'utf8');
    const got = checkRootCa(certPem, readFileSync(k, 'utf8'), { minValidityMs: 90 * 24 * 3600_000 });
    assert.equal(caDigest(got.certPem), caDigest(certPem));
    // It can issue, and its cross-signed copy chains to R0.
    const x = crossSignRoot({ newCertPem: got.certPem, oldCertPem: r0.certPem, oldKeyPem: r0.keyPem });
    const l = leaf(got, keyA, 'node-x');
    writeFileSync(join(dir, 'xl.pem'), l.certPem);
    writeFileSync(join(dir, 'xx.pem'), x);
    writeFileSync(join(dir, 'r0.pem'), r0.certPem);
    assert.match(
      execFileSync('openssl', ['verify', '-CAfile', join(dir, 'r0.pem'), '-untrusted', join(dir, 'xx.pem'), join(dir, 'xl.pem')], { encoding: 'utf8' }),
      /OK/,
    );
  });

  test('refuses a key of another certificate, a leaf, two certificates, an expiring root', () => {
    const code = (c: string, re: RegExp) => (e: unknown) => e instanceof PkiError && e.code === c && re.test(e.message);
    assert.throws(() => checkRootCa(r1.certPem, r0.keyPem), code('CA_KEY_MISMATCH', /does not belong/));
    const l = leaf(r1, keyA, 'node-l');
    assert.throws(() => checkRootCa(l.certPem, keyA), code('INVALID_ARGUMENT', /not a CA/));
    assert.throws(() => checkRootCa(r1.certPem + r2.certPem, r1.keyPem), code('INVALID_ARGUMENT', /exactly one/));
    assert.throws(() => checkRootCa(r1.certPem, r1.keyPem, { minValidityMs: 200 * 365 * 24 * 3600_000 }), code('CA_NOT_VALID', /too soon/));
  });
});

describe('rotation state machine', () => {
  const idle = (): RootCa => ({ caCertPem: r0.certPem, caKeyPem: r0.keyPem });
  const rotating = (): RootCa => beginRotation(idle(), { newCertPem: r1.certPem, newKeyPem: r1.keyPem, crossSignedPem: cross, external: false }, new Date(0));
  const d0 = () => caDigest(r0.certPem);
  const d1 = () => caDigest(r1.certPem);
  const nodes = (...issuers: (string | undefined)[]): NodeView[] =>
    issuers.map((issuer, i) => ({ id: `n${i}`, hostname: `h${i}`, state: i === 2 ? 'down' : 'ready', issuer, anchor: issuer, presented: issuer }));

  test('idle: the root issues, no chain, only the root accepted', () => {
    const i = issuerOf(idle());
    assert.equal(phaseOf(idle()), 'idle');
    assert.deepEqual([i.certPem, i.chainPem, i.anchorPem, i.digest], [r0.certPem, '', r0.certPem, d0()]);
    assert.deepEqual(acceptedRoots(idle()), [r0.certPem]);
  });

  test('rotating: the new key issues with the cross-signed chain; anchor stays; both roots accepted', () => {
    const root = rotating();
    const i = issuerOf(root);
    assert.equal(phaseOf(root), 'rotating');
    assert.deepEqual([i.certPem, i.chainPem, i.anchorPem, i.digest, i.anchorDigest], [r1.certPem, cross, r0.certPem, d1(), d0()]);
    assert.deepEqual(acceptedRoots(root), [r0.certPem, r1.certPem]);
    const l = leaf(r1, keyA, 'node-a');
    assert.ok(verifyNodeCertificate(l.certPem, { caCertPem: acceptedRoots(root), clusterId: CLUSTER }).ok);
    assert.match(String((verifyNodeCertificate(l.certPem, { caCertPem: r0.certPem, clusterId: CLUSTER }) as { reason: string }).reason), /another CA/);
    assert.equal(withChain(l.certPem, i).match(/BEGIN CERTIFICATE/g)?.length, 2);
  });

  test('rotating to the current root is refused; a second --rotate replaces the target', () => {
    assert.throws(
      () => beginRotation(idle(), { newCertPem: r0.certPem, newKeyPem: r0.keyPem, crossSignedPem: cross, external: false }, new Date()),
      RotationError,
    );
    const again = beginRotation(rotating(), { newCertPem: r2.certPem, newKeyPem: r2.keyPem, crossSignedPem: 'x2', external: true }, new Date(5));
    assert.equal(again.caCertPem, r0.certPem, 'the anchor is still the old root');
    assert.equal(again.rotation?.newCertPem, r2.certPem);
    assert.equal(again.rotation?.startedAt, new Date(5).toISOString());
  });

  test('progress names the nodes and admins still on the old root (down ones too)', () => {
    const p = progress(rotating(), nodes(d1(), undefined, d0()), [
      { name: 'alice', serial: '1', notAfter: '', issuedAt: '', revoked: false, issuer: d1() },
      { name: 'bob', serial: '2', notAfter: '', issuedAt: '', revoked: false },
      { name: 'eve', serial: '3', notAfter: '', issuedAt: '', revoked: true },
    ]);
    assert.equal(p.phase, 'rotating');
    assert.deepEqual([p.nodes, p.reissued], [3, 1]);
    assert.deepEqual(
      p.pending.map((n) => [n.id, n.state]),
      [
        ['n1', 'ready'],
        ['n2', 'down'],
      ],
    );
    assert.deepEqual(p.adminsPending, ['bob']);
    assert.equal(p.rootDigest, d0());
    assert.equal(p.newRootDigest, d1());
    assert.deepEqual(progress(idle(), nodes(d0())).pending, []);
  });

  test('reconcile nudges connected pending nodes, at most every NUDGE_EVERY_MS, and completes when none is left', () => {
    const root = rotating();
    const ns = nodes(d1(), d0(), d0(), undefined);
    const connected = (id: string) => id !== 'n2';
    let step = reconcile(root, ns, connected, new Map(), 1000);
    assert.deepEqual(step, { complete: false, nudge: ['n1', 'n3'] }, 'n0 is done, n2 has no session');
    step = reconcile(root, ns, connected, new Map([['n1', 1000]]), 1000 + NUDGE_EVERY_MS - 1);
    assert.deepEqual(step.nudge, ['n3']);
    step = reconcile(root, ns, connected, new Map([['n1', 1000]]), 1000 + NUDGE_EVERY_MS);
    assert.deepEqual(step.nudge, ['n1', 'n3']);
    // A down node blocks completion until it comes back and renews, or is removed.
    assert.equal(reconcile(root, nodes(d1(), d1(), d0()), connected, new Map(), 0).complete, false);
    assert.deepEqual(reconcile(root, nodes(d1(), d1()), connected, new Map(), 0), { complete: true, nudge: [] });
    assert.deepEqual(reconcile(root, [], connected, new Map(), 0), { complete: true, nudge: [] });
  });

  test('a node counts as moved only once a session presented the new certificate (a lost answer strands nobody)', () => {
    const root = rotating();
    // Issued by the new key (the record says so) but the answer never arrived: it still presents R0.
    const lost: NodeView = { id: 'lost', hostname: 'lost', state: 'ready', issuer: d1(), anchor: d0(), presented: d0() };
    const moved: NodeView = { id: 'ok', hostname: 'ok', state: 'ready', issuer: d1(), anchor: d0(), presented: d1() };
    assert.deepEqual(
      reconcile(root, [moved, lost], () => true, new Map(), 0),
      { complete: false, nudge: ['lost'] },
    );
    assert.deepEqual(
      progress(root, [moved, lost]).pending.map((n) => n.id),
      ['lost'],
    );
    assert.deepEqual(
      reconcile(root, [moved, { ...lost, presented: d1() }], () => true, new Map(), 0),
      { complete: true, nudge: [] },
    );
  });

  test('issuingRootDigest names the root whose key signed a leaf, of those given', () => {
    const l1 = leaf(r1, keyA, 'node-a');
    assert.equal(issuingRootDigest(l1.certPem, [r0.certPem, r1.certPem]), d1());
    assert.equal(issuingRootDigest(new X509Certificate(l1.certPem).raw, [r1.certPem]), d1(), 'DER as the TLS socket gives it');
    assert.equal(issuingRootDigest(l1.certPem, [r0.certPem]), null, 'not the old root');
    assert.equal(issuingRootDigest('not a certificate', [r0.certPem]), null);
    assert.equal(issuingRootDigest(leaf(r0, keyA, 'node-b').certPem, ['garbage', r0.certPem]), d0(), 'a root that does not parse is skipped');
  });

  test('completion: the new root is the anchor, the cross-signed copy its chain, tokens keep secrets and take the new digest', () => {
    const tokens = { worker: makeJoinToken(d0()), manager: makeJoinToken(d0()) };
    const done = completeRotation(rotating(), tokens, new Date(7));
    assert.deepEqual(done.rootCa, { caCertPem: r1.certPem, caKeyPem: r1.keyPem, chainPem: cross, lastRotatedAt: new Date(7).toISOString() });
    for (const role of ['worker', 'manager'] as const) {
      assert.equal(parseJoinToken(done.joinTokens[role]).caDigest, d1());
      assert.equal(parseJoinToken(done.joinTokens[role]).secret, parseJoinToken(tokens[role]).secret);
    }
    assert.deepEqual(acceptedRoots(done.rootCa), [r1.certPem], 'the old root is no longer accepted');
    const old = leaf(r0, keyA, 'node-old');
    assert.match(
      String((verifyNodeCertificate(old.certPem, { caCertPem: acceptedRoots(done.rootCa), clusterId: CLUSTER }) as { reason: string }).reason),
      /another CA/,
    );
    // Issued after completion: still served with the cross-signed copy (nodes not yet on the new anchor).
    assert.equal(issuerOf(done.rootCa).chainPem, cross);
    assert.throws(() => completeRotation(idle(), tokens, new Date()), RotationError);
  });

  test('after completion, nodes whose anchor is still the old root are nudged until they renew', () => {
    const done = completeRotation(rotating(), { worker: makeJoinToken(d0()), manager: makeJoinToken(d0()) }, new Date(7)).rootCa;
    const ns: NodeView[] = [
      { id: 'a', hostname: 'a', state: 'ready', issuer: d1(), anchor: d0() },
      { id: 'b', hostname: 'b', state: 'ready', issuer: d1(), anchor: d1() },
    ];
    assert.deepEqual(
      reconcile(done, ns, () => true, new Map(), 0),
      { complete: false, nudge: ['a'] },
    );
    // Never rotated: nothing to do, whatever the records say.
    assert.deepEqual(
      reconcile(idle(), ns, () => true, new Map(), 0),
      { complete: false, nudge: [] },
    );
  });
});
