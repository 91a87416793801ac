// Root CA rotation on a lab (lab "cr": three managers, two workers, test executor). With a service
// running, `cluster ca --rotate` moves every node to a new root while worker h5's daemon is stopped:
// the rotation waits for it (shown as pending and down), h5 comes back with its old certificate while the
// cross-signed period lasts and is moved over too, then the rotation completes. Checked afterwards:
// no task was restarted or replaced; no node's session ended (each moved to its renewed certificate
// first) and the completion closed none; every manager serves a chain that verifies against the new root
// alone (node:tls) and against the old root only through the cross-signed copy (openssl verify); every
// node holds a certificate of the new key and the new root as its only trust anchor; /v1/ca and the
// join tokens name the new root; an admin certificate of the old root is refused.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { control, loadContext, type Context } from '../../client/context.ts';
import { ClusterLab, waitFor } from '../../lab/cluster-lab.ts';
import { cleanupOnExit } from '../../lab/lab.ts';
import { httpsRaw } from '../../transport/https.ts';

const NAME = 'cr';
const SHOAL = join(resolve(fileURLToPath(new URL('../..', import.meta.url))), 'bin', 'shoal');
const MANAGERS = ['h1', 'h2', 'h3'];
const WORKERS = ['h4', 'h5'];
const AWAY = 'h5';

const digestOf = (pem: string) => createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');
const pems = (text: string) => text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];

/** The certificate chain a manager serves, as node:tls sees it trusting only `ca`. */
function served(addr: string, ca: string): Promise<{ authorized: boolean; error: string | null; leafPem: string }> {
  const [host, port] = addr.split(':');
  return new Promise((res, rej) => {
    const s = connect({ host, port: Number(port), ca, rejectUnauthorized: false, checkServerIdentity: () => undefined }, () => {
      const raw = s.getPeerCertificate().raw;
      const leafPem = `-----BEGIN CERTIFICATE-----\n${raw.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`;
      res({ authorized: s.authorized, error: s.authorizationError ? String(s.authorizationError) : null, leafPem });
      s.end();
    });
    s.setTimeout(10_000, () => s.destroy(new Error('timeout')));
    s.on('error', rej);
  });
}

describe('root CA rotation on a lab', { concurrency: false, timeout: 600_000 }, () => {
  let c: ClusterLab;
  let unhook: () => void = () => {};
  const tmp = mkdtempSync(join(tmpdir(), 'shoal-cr-'));
  const oldContext = join(tmp, 'old-context.json');

  const sh = (args: string[], context = c.contextPath) =>
    new Promise<{ code: number; out: string; err: string }>((res) => {
      execFile(SHOAL, args, { env: { ...process.env, SHOAL_CONTEXT: context }, timeout: 120_000 }, (e, out, err) =>
        res({ code: e ? (typeof (e as { code?: unknown }).code === 'number' ? (e as { code: number }).code : 1) : 0, out: String(out), err: String(err) }),
      );
    });
  // The context file changes under the test (the CLI renews its admin certificate): read it each time.
  const ctl = <T = any>(method: string, path: string, body?: unknown) =>
    control<T>({ ...loadContext(c.contextPath), path: c.contextPath } as Context, method, path, body);
  const rotation = () => ctl('GET', '/v1/ca/rotation');
  const tasks = async () => ((await ctl('GET', '/v1/tasks')) as any[]).filter((t) => t.serviceId === serviceId);
  let serviceId = '';

  before(async () => {
    unhook = cleanupOnExit(NAME);
    c = await ClusterLab.up({ name: NAME, managers: 3, workers: 2, executor: 'test' });
  });

  after(async () => {
    await c?.down();
    unhook();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('rotates every node to a new root with a service running and a worker away', async () => {
    // A service on the nodes that stay up (h5 going down must not move tasks: that is not what is tested).
    const cr = await sh(['service', 'create', '--name', 'web', '--replicas', '4', '--constraint', `node.hostname!=${AWAY}`, 'busybox']);
    assert.equal(cr.code, 0, `service create: ${cr.err}${cr.out}`);
    serviceId = ((await ctl('GET', '/v1/services')) as any[]).find((s) => s.spec.name === 'web').id;
    await waitFor(async () => (await tasks()).filter((t) => t.status.state === 'running').length === 4, 60_000, '4 tasks running');
    const before = (await tasks()).map((t) => t.id).sort();
    const oldRoot = readFileSync(join(c.stateDir('h1'), 'certs', 'ca.crt'), 'utf8');
    const oldDigest = digestOf(oldRoot);
    assert.equal((await rotation()).rootDigest, oldDigest);
    writeFileSync(oldContext, readFileSync(c.contextPath));

    // Bad input: a clear error naming the field, and no rotation started.
    const half = await ctl('POST', '/v1/ca/rotate', { certPem: oldRoot }).catch((e: Error) => e);
    assert.match(String((half as Error).message), /both certPem and keyPem/);
    writeFileSync(join(tmp, 'leaf.crt'), readFileSync(join(c.stateDir('h4'), 'certs', 'node.crt')));
    writeFileSync(join(tmp, 'leaf.key'), readFileSync(join(c.stateDir('h4'), 'certs', 'node.key')));
    const leafRoot = await sh(['cluster', 'ca', '--rotate', '--cert', join(tmp, 'leaf.crt'), '--key', join(tmp, 'leaf.key')]);
    assert.notEqual(leafRoot.code, 0);
    assert.match(leafRoot.err + leafRoot.out, /root CA refused: .*not a CA certificate/);
    const noKey = await sh(['cluster', 'ca', '--rotate', '--cert', join(tmp, 'leaf.crt')]);
    assert.match(noKey.err, /--cert and --key go together/);
    assert.equal((await rotation()).phase, 'idle', 'refused requests started nothing');

    // h5 is away for the whole reissue.
    c.killDaemon(AWAY, 'SIGTERM');
    await waitFor(
      async () => ((await ctl('GET', '/v1/nodes')) as any[]).find((n) => n.description.hostname === AWAY)?.status.state === 'down',
      60_000,
      `${AWAY} down`,
    );

    // Where each daemon's log stands when the rotation starts (h5's begins again when it restarts).
    const logOf = (h: string) => readFileSync(join(c.host(h).dir, 'daemon.log'), 'utf8');
    const logFrom = new Map([...MANAGERS, WORKERS[0]!].map((h) => [h, logOf(h).length]));
    const rot = await sh(['cluster', 'ca', '--rotate', '--detach']);
    assert.equal(rot.code, 0, `cluster ca --rotate: ${rot.err}${rot.out}`);
    assert.match(rot.out, /Root CA rotation started/);
    const started = await rotation();
    assert.equal(started.phase, 'rotating');
    const newDigest = started.newRootDigest as string;
    assert.notEqual(newDigest, oldDigest);

    // Everyone but h5 moves over; h5 (down) blocks completion and is named.
    await waitFor(
      async () => {
        const r = await rotation();
        return r.phase === 'rotating' && r.pending.length === 1 && r.pending[0].hostname === AWAY;
      },
      120_000,
      `every node but ${AWAY} reissued from the new root`,
    );
    const show = await sh(['cluster', 'ca']);
    assert.match(show.out, new RegExp(`still on the old root: ${AWAY} \\(down\\)`));
    assert.match(show.out, /4\/5 nodes on the new root/);
    assert.equal((await ctl('GET', '/v1/cluster')).ca.phase, 'rotating', 'cluster inspect shows the rotation');
    // During the rotation managers serve new-key leaves that chain to the old root through the cross-signed copy.
    const mid = await served(loadContext(c.contextPath).managers[0]!, oldRoot);
    assert.ok(mid.authorized, `a node trusting the old root verifies a manager mid-rotation (${mid.error})`);

    // h5 comes back with its old certificate: accepted while the rotation lasts, then moved over.
    await c.startDaemon(AWAY);
    await waitFor(async () => (await rotation()).phase === 'idle', 120_000, 'rotation complete');
    const done = await rotation();
    assert.equal(done.rootDigest, newDigest);
    assert.ok(done.lastRotatedAt);

    // The new root is what /v1/ca serves and what join tokens pin.
    const served0 = await httpsRaw(loadContext(c.contextPath).managers[0]!, 'GET', '/v1/ca', undefined, { insecure: true });
    assert.equal(digestOf(served0.text), newDigest, '/v1/ca serves the new root');
    const tokens = await ctl('GET', '/v1/join-tokens');
    assert.ok(String(tokens.worker).includes(newDigest) && String(tokens.manager).includes(newDigest), 'join tokens take the new digest');

    // Every node: a certificate of the new key, and the new root as its only trust anchor (old root gone).
    const all = [...MANAGERS, ...WORKERS];
    let root1 = '';
    await waitFor(
      () =>
        all.every((h) => {
          const ca = pems(readFileSync(join(c.stateDir(h), 'certs', 'ca.crt'), 'utf8'));
          return ca.length === 1 && digestOf(ca[0]!) === newDigest;
        }),
      120_000,
      'every node trusts only the new root',
    );
    root1 = readFileSync(join(c.stateDir('h1'), 'certs', 'ca.crt'), 'utf8');
    const r1 = new X509Certificate(root1);
    for (const h of all) {
      const chain = pems(readFileSync(join(c.stateDir(h), 'certs', 'node.crt'), 'utf8'));
      const leaf = new X509Certificate(chain[0]!);
      assert.ok(leaf.checkIssued(r1) && leaf.verify(r1.publicKey), `${h}'s certificate was issued by the new root's key`);
      assert.equal(chain.length, 2, `${h} serves its leaf with the cross-signed copy`);
    }
    // Served chains: each manager verifies against the new root alone (node:tls) and, through the
    // cross-signed copy it sends, against the old root (openssl verify with -untrusted).
    const managerAddrs = loadContext(c.contextPath).managers;
    assert.equal(managerAddrs.length, 3);
    writeFileSync(join(tmp, 'r0.pem'), oldRoot);
    writeFileSync(join(tmp, 'r1.pem'), root1);
    for (const addr of managerAddrs) {
      const s = await served(addr, root1);
      assert.ok(s.authorized, `${addr} verifies against the new root alone (${s.error})`);
      writeFileSync(join(tmp, 'leaf.pem'), s.leafPem);
      assert.match(execFileSync('openssl', ['verify', '-CAfile', join(tmp, 'r1.pem'), join(tmp, 'leaf.pem')], { encoding: 'utf8' }), /OK/);
      assert.throws(() => execFileSync('openssl', ['verify', '-CAfile', join(tmp, 'r0.pem'), join(tmp, 'leaf.pem')], { stdio: 'pipe' }), 'not the old root');
    }

    // h5 is back in the cluster, and no task was restarted or replaced.
    await waitFor(async () => ((await ctl('GET', '/v1/nodes')) as any[]).filter((n) => n.status.state === 'ready').length === 5, 60_000, 'all 5 nodes ready');
    const afterTasks = await tasks();
    assert.deepEqual(afterTasks.map((t) => t.id).sort(), before, 'the same tasks, none replaced');
    assert.ok(
      afterTasks.every((t) => t.status.state === 'running'),
      `all still running: ${afterTasks.map((t) => t.status.state)}`,
    );

    // No node lost its session: each moved to its renewed certificate before letting the old one go
    // (agent handover), so no agent session ended and the completion closed nothing: Raft links opened
    // with old-root certificates were replaced by new dials before they closed.
    const managersLog = MANAGERS.map((h) => logOf(h).slice(logFrom.get(h)!)).join('\n');
    assert.match(managersLog, /root retired: replacing \d+ Raft links/, 'old-root Raft links were replaced');
    for (const [h, from] of logFrom) {
      const since = logOf(h).slice(from).split('\n');
      assert.deepEqual(
        since.filter((l) => /agent: session to .* ended/.test(l)),
        [],
        `${h}: no agent session ended during the rotation`,
      );
      assert.ok(
        since.some((l) => l.includes('session moved to a new connection')),
        `${h}: its session moved to the renewed certificate`,
      );
      assert.deepEqual(
        since.filter((x) => x.includes('deny list or roots changed')),
        [],
        `${h}: the completion closed no link and no session`,
      );
    }

    // The old root is refused: an admin certificate from before the rotation no longer opens the API.
    const stale = await sh(['node', 'ls'], oldContext);
    assert.notEqual(stale.code, 0, 'an admin certificate of the old root is refused');
    const fresh = await sh(['node', 'ls']);
    assert.equal(fresh.code, 0, `the renewed context works: ${fresh.err}`);
  });
});
