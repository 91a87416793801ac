// `shoal context docker [--dir DIR] [--name NAME] [--port N]`: points the docker CLI (and anything that
// reads DOCKER_* variables: Portainer's agentless setup, dockerode, docker-py) at this cluster's
// Docker Engine API (manager/docker-api, TCP 2376 with mutual TLS). It writes the admin context's
// certificate as the three files Docker expects (ca.pem, cert.pem, key.pem), creates a docker
// context named after the cluster when the `docker` CLI is installed, and prints the environment
// lines for those who prefer variables. Managers' certificates carry their IP, so the host is a
// manager's IP (a name would fail the CLI's certificate check).
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Invocation } from './command.ts';
import { CliError } from '../client/context.ts';

export const DOCKER_API_PORT = 2376;

/** Writes ca.pem, cert.pem and key.pem (0600) into `dir`. */
export function writeDockerCerts(dir: string, admin: { ca: string; cert: string; key: string }): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, 'ca.pem'), admin.ca, { mode: 0o644 });
  writeFileSync(join(dir, 'cert.pem'), admin.cert, { mode: 0o644 });
  writeFileSync(join(dir, 'key.pem'), admin.key, { mode: 0o600 });
}

/** `tcp://IP:PORT` of the first manager in the context. */
export function dockerHostOf(managers: readonly string[], port: number): string {
  const first = managers[0];
  if (!first) throw new CliError('the cluster context lists no manager');
  const host = first.replace(/:\d+$/, '');
  return `tcp://${host}:${port}`;
}

function dockerOnPath(): boolean {
  try {
    execFileSync('docker', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export async function contextDocker(i: Invocation): Promise<number> {
  const ctx = i.context();
  const name = i.value('name') ?? `shoal-${ctx.clusterId.slice(0, 12)}`;
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.+-]*$/.test(name)) throw new CliError(`--name ${JSON.stringify(name)} is not a valid docker context name`);
  const portRaw = i.value('port');
  const port = portRaw === undefined ? DOCKER_API_PORT : Number(portRaw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new CliError(`--port must be 1..65535 (got ${JSON.stringify(portRaw)})`);
  const dir = resolve(i.value('dir') ?? join(homedir(), '.shoal', 'docker', name));
  writeDockerCerts(dir, ctx.admin);
  const host = dockerHostOf(ctx.managers, port);
  const lines = [`export DOCKER_HOST=${host}`, 'export DOCKER_TLS_VERIFY=1', `export DOCKER_CERT_PATH=${dir}`];
  if (dockerOnPath()) {
    try {
      execFileSync('docker', ['context', 'rm', '-f', name], { stdio: 'ignore' });
    } catch {
      // no such context yet
    }
    try {
      execFileSync(
        'docker',
        [
          'context',
          'create',
          name,
          '--description',
          `Shoal cluster ${ctx.clusterId}`,
          '--docker',
          `host=${host},ca=${join(dir, 'ca.pem')},cert=${join(dir, 'cert.pem')},key=${join(dir, 'key.pem')}`,
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      lines.push(`# docker context ${name} created: docker --context ${name} service ls`);
    } catch (e) {
      const err = (e as { stderr?: Buffer }).stderr?.toString().trim() ?? (e as Error).message;
      throw new CliError(`docker context create ${name} failed: ${err}`);
    }
  } else {
    lines.push('# the docker CLI is not on PATH: no docker context created (the variables above work for any client)');
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}
