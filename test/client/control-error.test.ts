// client/context.ts control(): a manager's refusal becomes a CliError that keeps the HTTP status and the
// API's error code (the dashboard maps them: cli/dashboard/command.ts, source.ts, server.ts), and no
// manager answering is a CliError with neither. Real TLS on loopback; no root needed.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliError, control, type Context } from '../../client/context.ts';
import { contextApi } from '../../cli/dashboard/command.ts';
import { generateKeyPem } from '../../manager/ca/pki.ts';
import { createRootCa } from '../../manager/ca/issue.ts';
import { signLoopback } from '../helpers/pki.ts';

const clusterId = 'errtest';

const ANSWERS: Record<string, [number, unknown]> = {
  '/v1/services/nope': [404, { error: { code: 'ENOTFOUND', message: 'service nope not found' } }],
  '/v1/services/s1/rollback': [409, { error: { code: 'ECONFLICT', message: 'no previous spec' } }],
  '/v1/plain': [400, 'not json'],
};

describe('control() errors', () => {
  let dir = '';
  let server: Server;
  let ctx: Context;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shoal-ctlerr-'));
    const ca = await createRootCa({ clusterId });
    const [mkey, akey] = await Promise.all([generateKeyPem(), generateKeyPem()]);
    server = createServer(
      { key: mkey, cert: signLoopback(ca, mkey, 'mgr', 'manager', clusterId), ca: ca.certPem, requestCert: true, rejectUnauthorized: true },
      (req, res) => {
        const [status, body] = ANSWERS[req.url ?? ''] ?? [200, { ok: true }];
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(typeof body === 'string' ? body : JSON.stringify(body));
      },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const addr = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    // No path: nothing is written (no context file, no session cache, no renewal).
    ctx = { clusterId, managers: [addr], admin: { key: akey, cert: signLoopback(ca, akey, 'admin', 'admin', clusterId), ca: ca.certPem } };
  });
  after(() => {
    server?.close();
    server?.closeAllConnections();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the status and code of a refusal', async () => {
    const e = await control(ctx, 'GET', '/v1/services/nope').then(
      () => assert.fail('resolved'),
      (x: unknown) => x,
    );
    assert.ok(e instanceof CliError);
    assert.equal(e.message, 'service nope not found');
    assert.equal(e.status, 404);
    assert.equal(e.code, 'ENOTFOUND');
    const plain = await control(ctx, 'GET', '/v1/plain').catch((x: CliError) => x);
    assert.deepEqual([(plain as CliError).status, (plain as CliError).code], [400, undefined]);
  });

  it('has no status when no manager answers', async () => {
    const e = await control({ ...ctx, managers: ['127.0.0.1:1'] }, 'GET', '/v1/info').catch((x: unknown) => x);
    assert.ok(e instanceof CliError);
    assert.match(e.message, /^no manager reachable/);
    assert.equal(e.status, undefined);
  });

  it('the dashboard post keeps the status the cluster answered', async () => {
    const e = await contextApi(ctx)
      .post('/v1/services/s1/rollback', {})
      .catch((x: unknown) => x);
    assert.equal((e as CliError).status, 409);
    assert.equal((e as CliError).code, 'ECONFLICT');
  });
});
