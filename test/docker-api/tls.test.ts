// The Docker API over TCP with mutual TLS, set up the way a user would: `shoal context docker` writes
// the admin certificate as ca.pem/cert.pem/key.pem and creates a docker context, then the real docker
// CLI uses the context and, separately, the DOCKER_* variables it printed. A client without a
// certificate is refused at the handshake; a manager's node certificate (no forwarding header) gets
// a 403.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { dockerCli, OneManager } from './harness.ts';

const SHOAL = join(resolve(fileURLToPath(new URL('../..', import.meta.url))), 'bin', 'shoal');
const cli = await dockerCli();
const skip = cli === null ? 'the docker CLI is not on PATH (the machine image ships docker 28.2.2)' : false;

describe('docker CLI over TCP with the admin certificate', { skip }, () => {
  const m = new OneManager();
  let certDir = '';
  let printed = '';
  before(async () => {
    await m.start({ tcp: true });
    writeFileSync(join(m.dir, 'context.json'), JSON.stringify(m.context));
    certDir = join(m.dir, 'certs');
    const r = await m.run(
      SHOAL,
      ['context', 'docker', '--context', join(m.dir, 'context.json'), '--dir', certDir, '--name', 'shoal-test', '--port', String(m.dockerPort)],
      60_000,
      { SHOAL_USE_TSX: '1' },
    );
    assert.equal(r.code, 0, r.stderr);
    printed = r.stdout;
  });
  after(async () => m.stop());

  it('writes the three PEM files (the key private) and prints the DOCKER_* lines', () => {
    for (const f of ['ca.pem', 'cert.pem', 'key.pem']) assert.ok(existsSync(join(certDir, f)), f);
    assert.equal(statSync(join(certDir, 'key.pem')).mode & 0o777, 0o600);
    assert.equal(readFileSync(join(certDir, 'cert.pem'), 'utf8'), m.context.admin.cert);
    assert.match(printed, new RegExp(`^export DOCKER_HOST=tcp://127\\.0\\.0\\.1:${m.dockerPort}$`, 'm'));
    assert.match(printed, /^export DOCKER_TLS_VERIFY=1$/m);
    assert.match(printed, new RegExp(`^export DOCKER_CERT_PATH=${certDir}$`, 'm'));
    assert.match(printed, /docker context shoal-test created/);
  });

  it('serves the CLI through the docker context it created', async () => {
    const r = await m.docker(['--context', 'shoal-test', 'node', 'ls', '--format', '{{.Hostname}} {{.ManagerStatus}}'], 30_000, {});
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'shoal-dk1 Leader');
  });

  it('serves the CLI through the printed variables', async () => {
    const r = await m.docker(['info', '--format', '{{.Swarm.ControlAvailable}}'], 30_000, {
      DOCKER_HOST: `tcp://127.0.0.1:${m.dockerPort}`,
      DOCKER_TLS_VERIFY: '1',
      DOCKER_CERT_PATH: certDir,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'true');
  });

  it('refuses a client without a certificate at the handshake, and a manager certificate with 403', async () => {
    const noCert = await new Promise<string>((res) => {
      const req = request({ host: '127.0.0.1', port: m.dockerPort!, path: '/_ping', ca: m.context.admin.ca }, (r) => res(`status ${r.statusCode}`));
      req.on('error', (e) => res(e.message));
      req.end();
    });
    assert.match(noCert, /certificate required|socket hang up|ECONNRESET/);
    const state = join(m.dir, 'state', 'certs');
    const status = await new Promise<number>((res, rej) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: m.dockerPort!,
          path: '/v1.47/_ping',
          ca: m.context.admin.ca,
          key: readFileSync(join(state, 'node.key')),
          cert: readFileSync(join(state, 'node.crt')),
        },
        (r) => {
          r.resume();
          res(r.statusCode ?? 0);
        },
      );
      req.on('error', rej);
      req.end();
    });
    assert.equal(status, 403);
  });
});
