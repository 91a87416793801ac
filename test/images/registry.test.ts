// Registry pulls against a real registry (Debian's docker-registry, distribution 2.8) on loopback: TLS with a
// self-signed certificate and htpasswd (bcrypt) users, a plain-HTTP registry, and a registry with Bearer
// token auth whose tokens come from a token server in this test. Images are the busybox fixtures, pushed
// by the test's own push client. A counting proxy tells which blobs were fetched, and can redirect blob
// GETs to another origin or tamper with responses.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { ImageStore } from '../../worker/images/store.ts';
import { parseReference } from '../../worker/images/reference.ts';
import { parseChallenges, pullImage } from '../../worker/images/registry.ts';
import type { PullOptions, PullProgress } from '../../worker/images/registry.ts';
import { appImage, baseImage, ociFiles, tar, writeFiles } from './fixtures.ts';
import {
  basic,
  blobDataPath,
  buildImage,
  freePort,
  htpasswdFile,
  imageFromFixture,
  makeCert,
  manifestList,
  mintToken,
  pushImage,
  pushManifest,
  sha,
  startProxy,
  startRegistry,
  startTokenServer,
} from './registry-server.ts';
import type { BuiltImage, Cert, PushTarget, Registry, TokenIssuer, TokenServer } from './registry-server.ts';

const USER = 'shoal';
/** Every test is bounded: a stuck registry or socket fails that test instead of hanging the run. */
const T = { timeout: 60_000 };
const PASS = 'hunter2-but-longer';

let tmp = '';
let cert: Cert;
let reg: Registry; // TLS + htpasswd
let plain: Registry; // plain HTTP, no auth
let push: PushTarget;
let app: BuiltImage; // the fixtures' 3-layer busybox image, OCI manifest
let baseDocker: BuiltImage; // its 2-layer base, Docker schema2 manifest
let arm: BuiltImage;
let n = 0;
const stops: Array<() => Promise<void>> = [];

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-registry-'));
  cert = await makeCert(tmp, 'registry');
  const htpasswd = await htpasswdFile(tmp, { [USER]: PASS });
  fs.mkdirSync(path.join(tmp, 'reg'));
  reg = await startRegistry({ dir: path.join(tmp, 'reg'), tls: cert, htpasswd });
  stops.push(reg.stop);
  push = { url: reg.url, ca: cert.cert, auth: basic(USER, PASS) };
  app = imageFromFixture(appImage());
  baseDocker = imageFromFixture(baseImage(), 'docker');
  await pushImage(push, 'shoal/app', '1', app);
  await pushImage(push, 'shoal/base', 'docker', baseDocker);
  // a second platform: its own busybox-less layer, so nothing is shared with the amd64 image
  const armTar = tar([
    { path: 'etc/', type: 'dir' },
    { path: 'etc/arch', data: 'arm64\n' },
  ]);
  arm = buildImage([{ blob: gzipSync(armTar), tar: armTar, gzip: true }], 'arm64');
  await pushImage(push, 'shoal/multi', 'arm64', arm);
  await pushImage(push, 'shoal/multi', 'amd64', app);
  const list = manifestList(
    [
      { img: arm, arch: 'arm64', variant: 'v8' },
      { img: app, arch: 'amd64' },
    ],
    'docker',
  );
  await pushManifest(push, 'shoal/multi', '1', list.body, list.mediaType);
  const index = manifestList(
    [
      { img: arm, arch: 'arm64' },
      { img: app, arch: 'amd64' },
    ],
    'oci',
  );
  await pushManifest(push, 'shoal/multi', 'oci', index.body, index.mediaType);
});

after(async () => {
  for (const s of stops.reverse()) await s().catch(() => undefined);
  fs.rmSync(tmp, { recursive: true, force: true });
});

function store(): ImageStore {
  return new ImageStore(path.join(tmp, `store${++n}`));
}

const auth = { username: USER, password: PASS };
function opts(extra: PullOptions = {}): PullOptions {
  return { auth, ca: cert.cert, ...extra };
}

function assertEmpty(s: ImageStore): void {
  for (const d of ['tmp', 'layers', 'images', 'blobs/sha256']) assert.deepEqual(fs.readdirSync(path.join(s.root, d)), [], `${d} is empty`);
}

/** The image id and layers a load of the same fixture gives: a pull must produce the same thing. */
async function loadedId(img: ReturnType<typeof appImage>): Promise<string> {
  const dir = path.join(tmp, `layout${++n}`);
  writeFiles(dir, ociFiles([img]));
  return (await store().load(dir)).digest;
}

describe('references', () => {
  test('parse like Docker, with docker.io defaults', T, () => {
    const cases: Array<[string, Partial<ReturnType<typeof parseReference>>]> = [
      ['busybox', { registry: 'docker.io', repository: 'library/busybox', tag: 'latest', name: 'busybox:latest' }],
      ['docker.io/library/busybox:1.36', { registry: 'docker.io', repository: 'library/busybox', tag: '1.36', name: 'busybox:1.36' }],
      ['index.docker.io/team/app', { registry: 'docker.io', repository: 'team/app', name: 'team/app:latest', canonical: 'docker.io/team/app:latest' }],
      ['team/app:v2', { registry: 'docker.io', repository: 'team/app', tag: 'v2' }],
      ['localhost/app', { registry: 'localhost', repository: 'app', name: 'localhost/app:latest' }],
      ['127.0.0.1:5000/a/b-c/d__e:v1.2-rc_3', { registry: '127.0.0.1:5000', repository: 'a/b-c/d__e', tag: 'v1.2-rc_3' }],
      ['[::1]:5000/app:1', { registry: '[::1]:5000', repository: 'app', tag: '1' }],
      ['Registry.Example.com/team/app', { registry: 'registry.example.com', repository: 'team/app' }],
      [
        `reg.io/app@sha256:${'a'.repeat(64)}`,
        { registry: 'reg.io', repository: 'app', tag: undefined, digest: `sha256:${'a'.repeat(64)}`, name: `reg.io/app@sha256:${'a'.repeat(64)}` },
      ],
      [`app:1@sha256:${'b'.repeat(64)}`, { repository: 'library/app', tag: '1', name: `app:1@sha256:${'b'.repeat(64)}` }],
    ];
    for (const [ref, want] of cases) {
      const got = parseReference(ref);
      for (const [k, v] of Object.entries(want)) assert.equal(got[k as keyof typeof got], v, `${ref}: ${k}`);
    }
  });

  test('errors name the bad part', T, () => {
    const bad: Array<[string, RegExp]> = [
      ['', /is empty/],
      ['Busybox', /component "Busybox" must be lowercase/],
      ['reg.io/Team/app', /component "Team" must be lowercase/],
      ['reg.io/te--_am', /invalid repository name component "te--_am"/],
      ['app:-x', /invalid tag "-x"/],
      ['app@sha256:abc', /invalid digest "sha256:abc"/],
      [`app@sha512:${'a'.repeat(128)}`, /unsupported digest algorithm "sha512"/],
      ['bad_host:5000/app', /invalid registry host "bad_host:5000"/],
      ['reg.io:99999/app', /invalid registry port "99999"/],
      ['reg.io//app', /empty repository name component/],
      [':tag', /repository name is missing/],
      ['a b', /whitespace/],
      [`reg.io/${'a'.repeat(250)}`, /longer than 255/],
    ];
    for (const [ref, re] of bad) assert.throws(() => parseReference(ref), re, ref);
  });

  test('WWW-Authenticate challenges', T, () => {
    assert.deepEqual(parseChallenges('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'), [
      { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' } },
    ]);
    assert.deepEqual(parseChallenges('Basic realm="Registry Realm"'), [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]);
    assert.deepEqual(
      parseChallenges('Negotiate, Basic realm="x", Bearer realm="https://t/", error="insufficient_scope"').map((c) => c.scheme),
      ['basic', 'bearer'],
    );
  });

  test('the store resolves familiar and fully qualified names alike', T, async () => {
    const s = store();
    const dir = path.join(tmp, 'layout-for-resolve');
    writeFiles(dir, ociFiles([baseImage('busybox:1')]));
    const r = await s.load(dir);
    assert.equal(r.name, 'busybox:1');
    assert.equal(s.resolve('docker.io/library/busybox:1')?.digest, r.digest);
    assert.equal(s.resolve('index.docker.io/library/busybox:1')?.digest, r.digest);
    await s.rm('docker.io/library/busybox:1');
    assert.equal(s.list().length, 0);
  });
});

describe('pull from a TLS registry with htpasswd auth', () => {
  test('by tag: OCI manifest, gzip and plain tar layers, same image id as a load', T, async () => {
    const s = store();
    const events: PullProgress[] = [];
    const r = await pullImage(s, `${reg.host}/shoal/app:1`, opts({ onProgress: (e) => events.push(e) }));
    assert.deepEqual(r, { name: `${reg.host}/shoal/app:1`, digest: app.id, manifestDigest: app.manifestDigest });
    assert.equal(r.digest, await loadedId(appImage()));
    const info = s.resolve(`${reg.host}/shoal/app:1`)!;
    assert.equal(info.manifestDigest, app.manifestDigest);
    assert.equal(s.resolve(`${reg.host}/shoal/app`), undefined, 'tag 1 is not latest');
    assert.equal(s.unpackCount, 3);
    const lowers = s.layersFor(r.name);
    assert.equal(lowers.length, 3);
    assert.equal(fs.readFileSync(path.join(lowers[1]!, 'etc/motd'), 'utf8'), 'hello from shoal\n');
    assert.ok(fs.lstatSync(path.join(lowers[0]!, 'data/a')).isCharacterDevice(), 'whiteout from the top layer');
    assert.deepEqual(s.config(r.name).Cmd, ['/bin/sh']);
    // the manifest is kept as a blob, so the store can tell what it pulled
    assert.equal(sha(fs.readFileSync(path.join(s.root, 'blobs/sha256', app.manifestDigest.slice(7)))), app.manifestDigest);
    assert.deepEqual(fs.readdirSync(path.join(s.root, 'tmp')), []);
    assert.deepEqual(
      events
        .filter((e) => e.event === 'layer-downloaded')
        .map((e) => (e as { index: number }).index)
        .sort(),
      [0, 1, 2],
    );
    assert.deepEqual(events.at(-1), { event: 'done', ...r });
  });

  test('by digest, and a Docker schema2 image', T, async () => {
    const s = store();
    const r = await pullImage(s, `${reg.host}/shoal/app@${app.manifestDigest}`, opts());
    assert.equal(r.name, `${reg.host}/shoal/app@${app.manifestDigest}`);
    assert.equal(r.digest, app.id);
    assert.equal(s.resolve(r.name)?.manifestDigest, app.manifestDigest);
    const d = await pullImage(s, `${reg.host}/shoal/base:docker`, opts());
    assert.equal(d.digest, baseDocker.id);
    assert.equal(d.digest, await loadedId(baseImage()), 'the image id does not depend on the manifest format');
    assert.equal(s.unpackCount, 3, 'the base layers were already there');
    await assert.rejects(
      pullImage(s, `${reg.host}/shoal/app@sha256:${'0'.repeat(64)}`, opts()),
      new RegExp(`image ${reg.host}/shoal/app@sha256:0+ not found in registry ${reg.host}`),
    );
  });

  test('not found, wrong password, no credentials, untrusted certificate: clear errors, store unchanged', T, async () => {
    const s = store();
    await assert.rejects(pullImage(s, `${reg.host}/shoal/nope:1`, opts()), { message: `image ${reg.host}/shoal/nope:1 not found in registry ${reg.host}` });
    await assert.rejects(pullImage(s, `${reg.host}/shoal/app:2`, opts()), { message: `image ${reg.host}/shoal/app:2 not found in registry ${reg.host}` });
    await assert.rejects(pullImage(s, `${reg.host}/shoal/app:1`, opts({ auth: { username: USER, password: 'wrong' } })), {
      message: `registry ${reg.host}: authentication failed for ${USER}`,
    });
    await assert.rejects(pullImage(s, `${reg.host}/shoal/app:1`, { ca: cert.cert }), {
      message: `registry ${reg.host}: authentication required (no credentials given)`,
    });
    await assert.rejects(pullImage(s, `${reg.host}/shoal/app:1`, { auth }), new RegExp(`registry ${reg.host} unreachable: its TLS certificate is not trusted`));
    assertEmpty(s);
  });

  test('an unreachable registry, and one that never answers', T, async () => {
    const port = await freePort();
    await assert.rejects(
      pullImage(store(), `127.0.0.1:${port}/shoal/app:1`, opts()),
      new RegExp(`^RegistryError: registry 127.0.0.1:${port} unreachable: connect ECONNREFUSED`),
    );
    const conns = new Set<net.Socket>();
    let closing = false;
    const silent = net.createServer((c) => (closing ? c.destroy() : conns.add(c))); // accepts, then says nothing
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const sport = (silent.address() as net.AddressInfo).port;
    try {
      await assert.rejects(pullImage(store(), `127.0.0.1:${sport}/shoal/app:1`, opts({ timeoutMs: 300 })), {
        message: `registry 127.0.0.1:${sport} unreachable: no response within 300 ms`,
      });
    } finally {
      closing = true; // close() waits for every connection: end them all, even one accepted late
      for (const c of conns) c.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  test('a manifest list and an OCI index: the platform is chosen', T, async () => {
    const s = store();
    const list = manifestList(
      [
        { img: arm, arch: 'arm64', variant: 'v8' },
        { img: app, arch: 'amd64' },
      ],
      'docker',
    );
    const r = await pullImage(s, `${reg.host}/shoal/multi:1`, opts({ platform: { os: 'linux', arch: 'amd64' } }));
    assert.equal(r.digest, app.id);
    assert.equal(r.manifestDigest, sha(list.body), 'the digest of the list, which the tag names');
    assert.equal(s.resolve(r.name)?.manifestDigest, sha(list.body));
    if (process.arch === 'x64') assert.equal((await pullImage(s, `${reg.host}/shoal/multi:oci`, opts())).digest, app.id, 'default: linux/amd64 here');
    const a = await pullImage(s, `${reg.host}/shoal/multi:oci`, opts({ platform: { os: 'linux', arch: 'arm64' } }));
    assert.equal(a.digest, arm.id);
    assert.equal(fs.readFileSync(path.join(s.layersFor(a.name)[0]!, 'etc/arch'), 'utf8'), 'arm64\n');
    // by the list's digest
    const byDigest = await pullImage(s, `${reg.host}/shoal/multi@${sha(list.body)}`, opts({ platform: { os: 'linux', arch: 'arm64', variant: 'v8' } }));
    assert.equal(byDigest.digest, arm.id);
    await assert.rejects(
      pullImage(s, `${reg.host}/shoal/multi:1`, opts({ platform: { os: 'linux', arch: 's390x' } })),
      /no image for linux\/s390x in the manifest list \(it has: linux\/arm64\/v8, linux\/amd64\)/,
    );
    // a single-platform image: its config says what it is for; an explicit platform must match it
    await assert.rejects(pullImage(s, `${reg.host}/shoal/multi:arm64`, opts({ platform: { os: 'linux', arch: 'amd64' } })), {
      message: `image ${reg.host}/shoal/multi:arm64 is for linux/arm64, not the requested linux/amd64`,
    });
    assert.equal((await pullImage(s, `${reg.host}/shoal/multi:arm64`, opts())).digest, arm.id, 'without an explicit platform it is pulled as it is');
  });

  test('a tampered layer blob is refused and nothing is left behind', T, async () => {
    // its own image, so the other tests' blobs stay intact; it shares the busybox layer with shoal/app
    const mark = tar([{ path: 'mark', data: 'x'.repeat(4000) }]);
    const img = buildImage(
      [
        { blob: imageFromFixture(appImage()).layers[0]!, tar: appImage().layers[0]!.tar, gzip: true },
        { blob: mark, tar: mark, gzip: false },
      ],
      'amd64',
    );
    await pushImage(push, 'shoal/tamper', '1', img);
    const f = blobDataPath(reg, sha(mark));
    const b = fs.readFileSync(f);
    b[b.length - 2000] = b[b.length - 2000]! ^ 0x01; // same size, one bit changed inside the file data
    fs.writeFileSync(f, b);
    const s = store();
    await assert.rejects(pullImage(s, `${reg.host}/shoal/tamper:1`, opts()), new RegExp(`digest mismatch for layer 1 ${sha(mark)}: content hashes to sha256:`));
    assertEmpty(s);
    // a config whose diff_id does not match what the layer unpacks to: the store's own check refuses it
    const other = tar([{ path: 'other', data: 'y' }]);
    const liar = buildImage([{ blob: gzipSync(mark), tar: other, gzip: true }], 'amd64');
    await pushImage(push, 'shoal/liar', '1', liar);
    await assert.rejects(
      pullImage(s, `${reg.host}/shoal/liar:1`, opts()),
      new RegExp(
        `^RegistryError: pull ${reg.host}/shoal/liar:1: layer sha256:\\w+ \\(sha256:\\w+\\): digest mismatch: uncompressed content hashes to ${sha(mark)}, config says ${sha(other)}`,
      ),
    );
    assertEmpty(s);
    // and a manifest pulled by digest is checked against it (here through a proxy that flips a byte)
    const p = await startProxy({ upstream: reg.url, ca: cert.cert, tls: cert, tamper: /\/manifests\/sha256:/ });
    stops.push(p.stop);
    await assert.rejects(
      pullImage(s, `${p.host}/shoal/app@${app.manifestDigest}`, opts()),
      new RegExp(`digest mismatch for manifest ${app.manifestDigest}: (the registry says \\S+, )?content hashes to`),
    );
    // a tag's manifest is checked against the Docker-Content-Digest header the registry sends
    const p2 = await startProxy({ upstream: reg.url, ca: cert.cert, tls: cert, tamper: /\/manifests\/1$/ });
    stops.push(p2.stop);
    await assert.rejects(pullImage(s, `${p2.host}/shoal/app:1`, opts()), new RegExp(`the registry says ${app.manifestDigest}, content hashes to`));
    assertEmpty(s);
  });

  test('a second pull reuses the layers it has: no blob GETs for them', T, async () => {
    const p = await startProxy({ upstream: reg.url, ca: cert.cert, tls: cert });
    stops.push(p.stop);
    const s = store();
    await pullImage(s, `${p.host}/shoal/base:docker`, opts());
    assert.equal(p.blobGets().length, 3, 'config + 2 layers');
    const events: PullProgress[] = [];
    p.requests.length = 0;
    await pullImage(s, `${p.host}/shoal/app:1`, opts({ onProgress: (e) => events.push(e) }));
    assert.deepEqual(
      p
        .blobGets()
        .map((l) => l.split('/blobs/')[1])
        .sort(),
      [app.id, sha(app.layers[2]!)].sort(),
      'only the config and the new top layer',
    );
    assert.deepEqual(
      events.filter((e) => e.event === 'layer-reused').map((e) => (e as { index: number }).index),
      [0, 1],
    );
    assert.equal(s.unpackCount, 3);
    p.requests.length = 0;
    await pullImage(s, `${p.host}/shoal/app:1`, opts());
    assert.deepEqual(
      p.blobGets().map((l) => l.split('/blobs/')[1]),
      [app.id],
      'a re-pull fetches the config only',
    );
    assert.equal(s.unpackCount, 3);
    assert.deepEqual(fs.readdirSync(path.join(s.root, 'tmp')), []);
  });

  test('blob redirects to another origin are followed, without our credentials', T, async () => {
    const p = await startProxy({ upstream: reg.url, ca: cert.cert, tls: cert, redirectBlobs: { upstreamAuth: basic(USER, PASS) } });
    stops.push(p.stop);
    const s = store();
    const r = await pullImage(s, `${p.host}/shoal/app:1`, opts());
    assert.equal(r.digest, app.id);
    assert.equal(p.cdn.requests.length, 4, 'config + 3 layers served by the redirect target');
    assert.deepEqual(p.cdn.authHeaders, [], 'no Authorization header sent to another origin');
  });

  test('an aborted pull leaves nothing behind', T, async () => {
    const s = store();
    const ac = new AbortController();
    const pull = pullImage(s, `${reg.host}/shoal/app:1`, opts({ signal: ac.signal, onProgress: (e) => e.event === 'layer-progress' && ac.abort() }));
    await assert.rejects(pull, { message: `pull ${reg.host}/shoal/app:1: aborted` });
    assertEmpty(s);
  });
});

describe('plain HTTP', () => {
  before(async () => {
    fs.mkdirSync(path.join(tmp, 'plain'));
    plain = await startRegistry({ dir: path.join(tmp, 'plain') });
    stops.push(plain.stop);
    await pushImage({ url: plain.url }, 'shoal/app', '1', app);
  });

  test('is refused unless the registry is allow-listed', T, async () => {
    const s = store();
    await assert.rejects(
      pullImage(s, `${plain.host}/shoal/app:1`),
      new RegExp(`registry ${plain.host} unreachable: it does not answer HTTPS .*--insecure-registry ${plain.host}`),
    );
    await assert.rejects(pullImage(s, `${plain.host}/shoal/app:1`, { insecureRegistries: ['127.0.0.1:1'] }), /--insecure-registry/);
    assertEmpty(s);
    const r = await pullImage(s, `${plain.host}/shoal/app:1`, { insecureRegistries: [plain.host] });
    assert.equal(r.digest, app.id);
    assert.equal(s.resolve(`${plain.host}/shoal/app:1`)?.manifestDigest, app.manifestDigest);
    // an allow-listed registry that does speak HTTPS is used over HTTPS, its certificate unchecked (as Docker does)
    const t = await pullImage(s, `${reg.host}/shoal/app:1`, { auth, insecureRegistries: [reg.host] });
    assert.equal(t.digest, app.id);
  });
});

describe('Bearer token auth', () => {
  let treg: Registry;
  let ts: TokenServer;
  let iss: TokenIssuer;

  before(async () => {
    const tokenCert = await makeCert(tmp, 'token-signer');
    iss = { issuer: 'shoal-test-issuer', service: 'shoal-test-registry', cert: tokenCert };
    ts = await startTokenServer(cert, iss, { [USER]: { password: PASS, pull: ['shoal/app'] }, other: { password: 'pw-other', pull: [] } });
    stops.push(ts.stop);
    fs.mkdirSync(path.join(tmp, 'treg'));
    treg = await startRegistry({
      dir: path.join(tmp, 'treg'),
      tls: cert,
      token: { realm: ts.realm, service: iss.service, issuer: iss.issuer, rootCertBundle: tokenCert.certPath },
    });
    stops.push(treg.stop);
    const admin = mintToken(iss, 'admin', [{ type: 'repository', name: 'shoal/app', actions: ['pull', 'push'] }]);
    await pushImage({ url: treg.url, ca: cert.cert, auth: `Bearer ${admin}` }, 'shoal/app', '1', app);
  });

  test('a token from the realm, with basic credentials, cached per scope', T, async () => {
    const s = store();
    ts.requests.length = 0;
    const r = await pullImage(s, `${treg.host}/shoal/app:1`, opts());
    assert.equal(r.digest, app.id);
    assert.deepEqual(ts.requests, [{ user: USER, scopes: ['repository:shoal/app:pull'], granted: true }], 'one token for the manifest, config and every layer');
  });

  test('wrong password, no access, anonymous, a ready token', T, async () => {
    const s = store();
    await assert.rejects(pullImage(s, `${treg.host}/shoal/app:1`, opts({ auth: { username: USER, password: 'nope' } })), {
      message: `registry ${treg.host}: authentication failed for ${USER}`,
    });
    await assert.rejects(pullImage(s, `${treg.host}/shoal/app:1`, opts({ auth: { username: 'other', password: 'pw-other' } })), {
      message: `registry ${treg.host}: access to repository shoal/app denied for other (it may not exist, or may need other credentials)`,
    });
    await assert.rejects(pullImage(s, `${treg.host}/shoal/app:1`, { ca: cert.cert }), {
      message: `registry ${treg.host}: the token server refused anonymous access (credentials needed)`,
    });
    await assert.rejects(pullImage(s, `${treg.host}/shoal/app:1`, { ca: cert.cert, auth: { token: 'not.a.token' } }), {
      message: `registry ${treg.host}: authentication failed: the registry refused the given token`,
    });
    assertEmpty(s);
    const token = mintToken(iss, 'ci', [{ type: 'repository', name: 'shoal/app', actions: ['pull'] }]);
    ts.requests.length = 0;
    assert.equal((await pullImage(s, `${treg.host}/shoal/app:1`, { ca: cert.cert, auth: { token } })).digest, app.id);
    assert.equal(ts.requests.length, 0, 'a ready token is used as it is');
  });
});
