// Docker's service spec has no autoscale field: an update from a Docker client (docker service update,
// dockerode, Portainer) keeps the service's autoscale policy instead of dropping it. One manager in this
// process with the test executor, its Docker API over TCP with the admin certificate.
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { control } from '../../client/context.ts';
import { OneManager } from '../docker-api/harness.ts';

describe('autoscale through the Docker API', () => {
  const m = new OneManager();
  before(async () => m.start({ tcp: true }));
  after(async () => m.stop());

  const call = (method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> =>
    new Promise((res, rej) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        {
          host: '127.0.0.1',
          port: m.dockerPort!,
          method,
          path,
          ...m.context.admin,
          headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {},
        },
        (r) => {
          let b = '';
          r.on('data', (x: Buffer) => (b += x.toString()));
          r.on('end', () => res({ status: r.statusCode ?? 0, body: b ? JSON.parse(b) : null }));
        },
      );
      req.on('error', rej);
      req.end(data);
    });

  it('a Docker update keeps the policy', async () => {
    const spec = { name: 'auto', task: { image: 'busybox:1.36' }, autoscale: { min: 1, max: 4, cpu: 60 } };
    await control(m.context, 'POST', '/v1/services', { spec });
    const cur = (await call('GET', '/services/auto')).body;
    const upd = await call('POST', `/services/${cur.ID}/update?version=${cur.Version.Index}`, {
      ...cur.Spec,
      Labels: { changed: 'by-docker' },
    });
    assert.equal(upd.status, 200, JSON.stringify(upd.body));
    const after = (await control(m.context, 'GET', '/v1/services/auto')) as { spec: { labels: Record<string, string>; autoscale?: { max: number } } };
    assert.equal(after.spec.labels.changed, 'by-docker');
    assert.equal(after.spec.autoscale?.max, 4);
  });
});
