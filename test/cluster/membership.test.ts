// Secure cluster membership with real daemons in lab hosts (network namespaces): init, join, node
// management, failure detection, leader failover, quorum loss and every refusal a bad caller must get.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { control, localCall } from '../../client/context.ts';
import { httpsJson } from '../../transport/https.ts';
import { createCsr, generateKeyPem } from '../../manager/ca/pki.ts';
import { createRootCa, signNodeCertificate } from '../../manager/ca/issue.ts';
import { ClusterLab, sleep, waitFor } from '../../lab/cluster-lab.ts';
import { cleanupOnExit } from '../../lab/lab.ts';

const NAME = `m${process.pid % 10000}`;

describe('cluster membership on lab hosts', { concurrency: false }, () => {
  let c: ClusterLab;
  let unhook: () => void = () => {};

  before(async () => {
    unhook = cleanupOnExit(NAME);
    c = await ClusterLab.up({ name: NAME, managers: 3, workers: 2 });
  });

  after(async () => {
    await c?.down();
    unhook();
  });

  const byHost = async () => {
    const nodes = await c.nodes();
    return new Map(nodes.map((n: any) => [n.description.hostname, n]));
  };

  const leaderHost = async (): Promise<string> => {
    const nodes = await c.nodes();
    const l = nodes.find((n: any) => n.managerStatus?.leader);
    assert.ok(l, 'no leader in node ls');
    return l.description.hostname;
  };

  it('init + joins: node ls shows every node Ready with the right role', async () => {
    const m = await byHost();
    assert.equal(m.size, 5);
    for (const h of ['h1', 'h2', 'h3']) {
      assert.equal(m.get(h).spec.role, 'manager');
      assert.equal(m.get(h).status.state, 'ready');
      assert.ok(m.get(h).managerStatus, `${h} has no manager status`);
    }
    for (const h of ['h4', 'h5']) {
      assert.equal(m.get(h).spec.role, 'worker');
      assert.equal(m.get(h).status.state, 'ready');
      assert.equal(m.get(h).managerStatus, null);
    }
    assert.equal([...m.values()].filter((n: any) => n.managerStatus?.leader).length, 1);
  });

  it('labels and availability are set through the control API and validated', async () => {
    await c.control('POST', '/v1/nodes/h4/update', { labelAdd: { zone: 'a', disk: 'ssd' }, availability: 'drain' });
    const n = (await byHost()).get('h4');
    assert.deepEqual(n.spec.labels, { zone: 'a', disk: 'ssd' });
    assert.equal(n.spec.availability, 'drain');
    await assert.rejects(c.control('POST', '/v1/nodes/h4/update', { availability: 'sleepy' }), /availability must be active, pause or drain/);
    await assert.rejects(c.control('POST', '/v1/nodes/h4/update', { labelRm: ['nope'] }), /has no label nope/);
    await assert.rejects(c.control('GET', '/v1/nodes/h99'), /node h99 not found/);
  });

  it('a wrong join token is refused with a clear message and nothing is written', async () => {
    const before = (await c.nodes()).length;
    const h = await c.lab.addHost();
    c.daemons.set(h.name, { host: h, pid: null, role: 'worker', nodeId: null });
    await c.startDaemon(h.name);
    const real = (await c.control('GET', '/v1/join-tokens')).worker as string;
    const wrongSecret = real.replace(/-[0-9a-z]+$/, '-' + 'x'.repeat(25));
    await assert.rejects(
      localCall(c.stateDir(h.name), 'POST', '/join', { token: wrongSecret, remote: c.ctx.managers[0], advertiseAddr: h.ip }),
      /invalid join token/,
    );
    await assert.rejects(
      localCall(c.stateDir(h.name), 'POST', '/join', { token: 'SHOAL-2-abc', remote: c.ctx.managers[0], advertiseAddr: h.ip }),
      /join token/,
    );
    assert.equal((await c.nodes()).length, before);
  });

  it('a join token whose CA digest does not match (man in the middle) is refused', async () => {
    // A fake "manager" on the lab gateway serves another CA.
    const other = await createRootCa({ clusterId: 'evil' });
    const key = await generateKeyPem();
    const cert = signNodeCertificate({
      caCertPem: other.certPem,
      caKeyPem: other.keyPem,
      csrPem: createCsr({ keyPem: key, nodeId: 'evil' }),
      nodeId: 'evil',
      role: 'manager',
      clusterId: 'evil',
      sans: { ips: [c.lab.gateway] },
    });
    const srv = createServer({ key, cert: cert.certPem }, (req, res) => {
      res.writeHead(200);
      res.end(other.certPem);
    });
    await new Promise<void>((r) => srv.listen(0, c.lab.gateway, () => r()));
    try {
      const port = (srv.address() as { port: number }).port;
      const h = [...c.daemons.values()].find((d) => d.nodeId === null)!.host;
      const token = (await c.control('GET', '/v1/join-tokens')).worker as string;
      await assert.rejects(
        localCall(c.stateDir(h.name), 'POST', '/join', { token, remote: `${c.lab.gateway}:${port}`, advertiseAddr: h.ip }),
        /does not match the join token's digest .*man-in-the-middle/,
      );
    } finally {
      srv.close();
    }
  });

  it('a certificate from another cluster, a worker certificate and no certificate are refused by the control API', async () => {
    const mgr = c.ctx.managers[0]!;
    // Another cluster's admin.
    const other = await createRootCa({ clusterId: 'other' });
    const k = await generateKeyPem();
    const foreign = signNodeCertificate({
      caCertPem: other.certPem,
      caKeyPem: other.keyPem,
      csrPem: createCsr({ keyPem: k, nodeId: 'admin-x' }),
      nodeId: 'admin-x',
      role: 'admin',
      clusterId: 'other',
    });
    const r1 = await httpsJson(mgr, 'GET', '/v1/nodes', undefined, { ca: c.ctx.admin.ca, key: k, cert: foreign.certPem });
    assert.equal(r1.status, 401);
    assert.match(r1.body.error.message, /signed by this cluster's CA/);
    // A worker's own node certificate.
    const wdir = join(c.stateDir('h5'), 'certs');
    const r2 = await httpsJson(mgr, 'GET', '/v1/nodes', undefined, {
      ca: c.ctx.admin.ca,
      key: readFileSync(join(wdir, 'node.key'), 'utf8'),
      cert: readFileSync(join(wdir, 'node.crt'), 'utf8'),
    });
    assert.equal(r2.status, 403);
    assert.match(r2.body.error.message, /worker certificate may not call this endpoint/);
    // No certificate at all.
    const r3 = await httpsJson(mgr, 'GET', '/v1/nodes', undefined, { ca: c.ctx.admin.ca });
    assert.equal(r3.status, 401);
  });

  it('a stopped worker is marked Down within 3 heartbeat periods and comes back Ready with the same id', async () => {
    const id = (await byHost()).get('h5').id;
    c.killDaemon('h5');
    const t0 = Date.now();
    await waitFor(async () => (await byHost()).get('h5').status.state === 'down', 6000, 'h5 down');
    const took = Date.now() - t0;
    assert.ok(took <= 3500, `Down after ${took} ms`);
    await c.startDaemon('h5');
    await waitFor(async () => (await byHost()).get('h5').status.state === 'ready', 8000, 'h5 ready again');
    assert.equal((await byHost()).get('h5').id, id);
  });

  it('kill -9 of the leader: a new leader within 2 s, writes succeed, state survives, the old leader rejoins as follower', async () => {
    const old = await leaderHost();
    await c.control('POST', '/v1/nodes/h4/update', { labelAdd: { before: 'failover' } });
    c.killDaemon(old);
    const t0 = Date.now();
    let newLeader = '';
    await waitFor(
      async () => {
        const others = c.ctx.managers.filter((m) => !m.startsWith(c.host(old).ip + ':'));
        for (const m of others) {
          const info = await control<{ role?: string }>(c.ctx, 'GET', '/v1/info', undefined, m).catch(() => null);
          if (info?.role === 'leader') {
            newLeader = m;
            return true;
          }
        }
        return false;
      },
      5000,
      'a new leader',
      20,
    );
    const took = Date.now() - t0;
    assert.ok(took <= 2500, `new leader after ${took} ms`);
    await c.control('POST', '/v1/nodes/h4/update', { labelAdd: { after: 'failover' } });
    const h4 = (await byHost()).get('h4');
    assert.equal(h4.spec.labels.before, 'failover');
    assert.equal(h4.spec.labels.after, 'failover');
    assert.equal(h4.spec.availability, 'drain');
    await c.startDaemon(old);
    await waitFor(
      async () => {
        const n = (await byHost()).get(old);
        return n.status.state === 'ready' && n.managerStatus?.reachability === 'reachable' && !n.managerStatus.leader;
      },
      10_000,
      `${old} back as a follower`,
    );
    assert.ok(newLeader);
  });

  it('promote and demote round trip: a worker becomes a voting manager and goes back', async () => {
    await c.control('POST', '/v1/nodes/h5/promote');
    await waitFor(
      async () => {
        const n = (await byHost()).get('h5');
        return n.spec.role === 'manager' && n.managerStatus?.voter === true && n.managerStatus.reachability === 'reachable';
      },
      20_000,
      'h5 a voting manager',
    );
    const info = await c.control('GET', '/v1/info');
    assert.equal(info.voters.length, 4);
    // The new manager serves the control API too.
    const viaH5 = await control<unknown[]>(c.ctx, 'GET', '/v1/nodes', undefined, `${c.host('h5').ip}:2377`);
    assert.equal(viaH5.length >= 5, true);
    await c.control('POST', '/v1/nodes/h5/demote');
    await waitFor(
      async () => {
        const n = (await byHost()).get('h5');
        return n.spec.role === 'worker' && n.managerStatus === null && n.certificate?.role === 'worker';
      },
      20_000,
      'h5 a worker again',
    );
    assert.equal((await c.control('GET', '/v1/info')).voters.length, 3);
    await assert.rejects(c.control('POST', '/v1/nodes/h5/demote'), /is not a manager/);
  });

  it('a demotion that would lose quorum is refused, naming the arithmetic', async () => {
    const leader = await leaderHost();
    const [down, target] = ['h1', 'h2', 'h3'].filter((h) => h !== leader) as [string, string];
    c.killDaemon(down);
    await waitFor(async () => (await byHost()).get(down).managerStatus?.reachability === 'unreachable', 5000, `${down} unreachable`);
    await assert.rejects(c.control('POST', `/v1/nodes/${target}/demote`), /would lose quorum: 1 of the remaining 2 managers are reachable, and 2 are needed/);
    assert.equal((await byHost()).get(target).spec.role, 'manager');
    await c.startDaemon(down);
    await waitFor(async () => (await byHost()).get(down).managerStatus?.reachability === 'reachable', 10_000, `${down} back`);
  });

  it('cluster leave: a manager must be demoted (or forced); a worker leaves, shows Down, and can be removed', async () => {
    await assert.rejects(localCall(c.stateDir('h2'), 'POST', '/leave', {}), /is a manager: demote it first/);
    const extra = [...c.daemons.values()].find((d) => d.nodeId === null)!.host.name; // the host added earlier
    const tok = (await c.control('GET', '/v1/join-tokens')).worker as string;
    await c.join(extra, tok);
    await waitFor(async () => (await byHost()).get(extra)?.status.state === 'ready', 8000, `${extra} ready`);
    const r = await localCall<{ left: string }>(c.stateDir(extra), 'POST', '/leave', {});
    assert.ok(r.left);
    await waitFor(async () => (await byHost()).get(extra)?.status.state === 'down', 6000, `${extra} down after leaving`);
    await c.control('DELETE', `/v1/nodes/${extra}`);
    assert.equal((await byHost()).has(extra), false);
    const info = await localCall<{ state: string }>(c.stateDir(extra), 'GET', '/info');
    assert.equal(info.state, 'inactive');
  });

  it('a removed node is refused when it reconnects, and stays removed', async () => {
    const before = await byHost();
    const id = before.get('h4').id;
    await assert.rejects(c.control('DELETE', '/v1/nodes/h4'), /is ready: stop it first, or use --force/);
    await assert.rejects(c.control('DELETE', '/v1/nodes/h1'), /is a manager: demote it/);
    c.killDaemon('h4');
    await c.control('DELETE', '/v1/nodes/h4?force=1');
    await c.startDaemon('h4');
    // Its agent tries to reconnect and is refused.
    const logFile = join(c.host('h4').dir, 'daemon.log');
    await waitFor(() => /revoked|403|unknown node/.test(readFileSync(logFile, 'utf8')), 8000, 'the removed node refused');
    const after = await byHost();
    assert.equal(after.has('h4'), false);
    assert.ok(![...after.values()].some((n: any) => n.id === id));
  });

  it('certificates renew on demand and again on their own before expiry; an expired certificate is refused', async () => {
    const serial = async (h: string) => (await byHost()).get(h).certificate.serial as string;
    const s0 = await serial('h5');
    await assert.rejects(c.control('POST', '/v1/cluster/update', { nodeCertValidityMs: 100 }), /between 5s and 10 years/);
    await c.control('POST', '/v1/cluster/update', { nodeCertValidityMs: 8000 });
    await c.control('POST', '/v1/cluster/rotate-node-certs');
    await waitFor(async () => (await serial('h5')) !== s0, 5000, 'renewal on demand');
    const issuedAt = Date.now();
    const s1 = await serial('h5');
    const short = readFileSync(join(c.stateDir('h5'), 'certs', 'node.crt'), 'utf8');
    const shortKey = readFileSync(join(c.stateDir('h5'), 'certs', 'node.key'), 'utf8');
    // Renewal at 50–80 % of the 8 s life, without being asked.
    await waitFor(async () => (await serial('h5')) !== s1, 9000, 'automatic renewal');
    assert.equal((await byHost()).get('h5').status.state, 'ready');
    // The first short certificate has expired by now: TLS refuses it, with a message that says so.
    await sleep(Math.max(0, issuedAt + 9000 - Date.now()));
    const r = await httpsJson(c.ctx.managers[0]!, 'GET', '/v1/nodes', undefined, { ca: c.ctx.admin.ca, key: shortKey, cert: short });
    assert.ok(r.status === 401 || r.status === 403, `status ${r.status}`);
    assert.match(r.body.error.message, /expired|worker certificate/);
    await c.control('POST', '/v1/cluster/update', { nodeCertValidityMs: 90 * 24 * 3600_000 });
    await c.control('POST', '/v1/cluster/rotate-node-certs');
    // Every live node holds a long certificate again before the next test stops managers.
    await waitFor(
      async () =>
        (await c.nodes())
          .filter((n: any) => n.status.state === 'ready')
          .every((n: any) => new Date(n.certificate.notAfter).getTime() > Date.now() + 86_400_000),
      10_000,
      'long certificates everywhere',
    );
  });

  it('with too few managers every call says no quorum; restarting one restores service', async () => {
    const leader = await leaderHost();
    const others = ['h1', 'h2', 'h3'].filter((h) => h !== leader);
    c.killDaemon(others[0]!);
    c.killDaemon(others[1]!);
    await waitFor(
      async () => {
        try {
          await control(c.ctx, 'POST', '/v1/nodes/h5/update', { labelAdd: { q: '1' } }, `${c.host(leader).ip}:2377`);
          return false;
        } catch (e) {
          return /no quorum: 1 of 3 managers reachable \(need 2\)/.test((e as Error).message);
        }
      },
      12_000,
      'no-quorum error',
    );
    await assert.rejects(control(c.ctx, 'GET', '/v1/nodes', undefined, `${c.host(leader).ip}:2377`), /no quorum/);
    await c.startDaemon(others[0]!);
    await waitFor(
      async () => {
        try {
          await c.control('POST', '/v1/nodes/h5/update', { labelAdd: { q: '2' } });
          return true;
        } catch {
          return false;
        }
      },
      10_000,
      'writes after quorum is back',
    );
    assert.equal((await byHost()).get('h5').spec.labels.q, '2');
    await c.startDaemon(others[1]!);
  });

  it('--force-new-cluster turns the last surviving manager into a working one-manager cluster with all state', async () => {
    await waitFor(
      async () => (await c.nodes()).filter((n: any) => n.managerStatus?.reachability === 'reachable').length === 3,
      10_000,
      'three reachable managers',
    );
    const survivor = 'h1';
    for (const h of ['h2', 'h3']) c.killDaemon(h);
    await sleep(300);
    const r = await localCall<{ recovered: { demoted: string[] }; managers: string[] }>(c.stateDir(survivor), 'POST', '/init', { forceNewCluster: true });
    assert.deepEqual(r.recovered.demoted.length, 2);
    c.ctx.managers = r.managers;
    await c.control('POST', '/v1/nodes/h5/update', { labelAdd: { recovered: 'yes' } });
    const n = (await byHost()).get('h5');
    assert.equal(n.spec.labels.recovered, 'yes');
    assert.equal(n.spec.labels.q, '2', 'state from before the recovery is kept');
    const info = await c.control('GET', '/v1/info');
    assert.deepEqual(info.voters.length, 1);
    assert.equal((await byHost()).get('h2').spec.role, 'worker');
  });
});
