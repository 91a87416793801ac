// Status codes and cluster limits on a real manager (one lab host, root only), through the CLI and the
// mutual-TLS control port: the duplicate-name 500 the review confirmed on a lab is a 409 now; `service
// scale web=1000000000` is refused naming the setting and changes nothing; `cluster update --max-replicas`
// moves the line and `cluster inspect` shows it; an oversized body is a 413 naming the limit.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { httpsJson } from '../../transport/https.ts';
import { ClusterLab } from '../../lab/cluster-lab.ts';
import { cleanupOnExit } from '../../lab/lab.ts';

const NAME = 'h2x';
const SHOAL = join(resolve(fileURLToPath(new URL('../..', import.meta.url))), 'bin', 'shoal');

describe('status codes and limits on a real manager', { concurrency: false }, () => {
  let c: ClusterLab;
  let unhook: () => void = () => {};

  before(async () => {
    unhook = cleanupOnExit(NAME);
    c = await ClusterLab.up({ name: NAME, managers: 1, workers: 0 });
  });
  after(async () => {
    await c?.down();
    unhook();
  });

  const sh = (...args: string[]) =>
    new Promise<{ code: number; out: string; err: string }>((res) => {
      execFile(SHOAL, args, { env: { ...process.env, SHOAL_CONTEXT: c.contextPath }, timeout: 60_000 }, (e, out, err) =>
        res({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out: String(out), err: String(err) }),
      );
    });
  const api = (method: string, path: string, body?: unknown) =>
    httpsJson(c.ctx.managers[0]!, method, path, body, { ca: c.ctx.admin.ca, key: c.ctx.admin.key, cert: c.ctx.admin.cert });
  const spec = (name: string) => ({ name, mode: { replicated: { replicas: 1 } }, task: { image: 'busybox:1.36' } });

  it('POST /v1/services with a name in use answers 409 ENAMEINUSE (it answered 500)', async () => {
    const first = await api('POST', '/v1/services', { spec: spec('web') });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const dup = await api('POST', '/v1/services', { spec: spec('web') });
    assert.equal(dup.status, 409, JSON.stringify(dup.body));
    assert.equal(dup.body.error.code, 'ENAMEINUSE');
    const cli = await sh('service', 'create', '--detach', '--name', 'web', 'busybox:1.36');
    assert.notEqual(cli.code, 0);
    assert.match(cli.err, /service name web is already in use/);
  });

  it('service scale web=1000000000 is refused naming limits.maxReplicas, and nothing changes', async () => {
    const r = await sh('service', 'scale', 'web=1000000000');
    assert.notEqual(r.code, 0, r.out);
    assert.match(r.err, /limits\.maxReplicas/);
    assert.match(r.err, /--max-replicas/);
    const raw = await api('POST', '/v1/services/web/scale', { replicas: 1_000_000_000 });
    assert.equal(raw.status, 400);
    assert.equal(raw.body.error.code, 'ELIMIT');
    assert.equal(raw.body.error.setting, 'limits.maxReplicas');
    const svc = await api('GET', '/v1/services/web');
    assert.deepEqual(svc.body.spec.mode, { replicated: { replicas: 1 } });
  });

  it('cluster update --max-replicas moves the limit; cluster inspect shows it', async () => {
    const up = await sh('cluster', 'update', '--max-replicas', '3');
    assert.equal(up.code, 0, up.err);
    const inspect = JSON.parse((await sh('cluster', 'inspect')).out) as { spec: { limits?: { maxReplicas: number } } };
    assert.equal(inspect.spec.limits?.maxReplicas, 3);
    assert.equal((await api('POST', '/v1/services/web/scale', { replicas: 4 })).status, 400);
    assert.equal((await api('POST', '/v1/services/web/scale', { replicas: 3 })).status, 200);
    const bad = await api('POST', '/v1/cluster/update', { limits: { maxReplicas: 0 } });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /limits\.maxReplicas must be an integer from 1/);
  });

  it('a body over the route cap is a 413 naming the limit; the manager keeps answering', async () => {
    const big = await api('POST', '/v1/services/web/scale', { replicas: 1, pad: 'x'.repeat(100 * 1024) });
    assert.equal(big.status, 413, JSON.stringify(big.body));
    assert.match(big.body.error.message, /limit of 64 KiB/);
    assert.equal((await api('GET', '/v1/info')).status, 200);
  });
});
