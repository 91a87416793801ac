// A one-manager Shoal in this test process (the real Daemon with the test executor, in a temporary
// state directory) and the machine's real `docker` CLI pointed at its Docker API socket. The CLI's
// own configuration goes to a temporary DOCKER_CONFIG, so tests never touch ~/.docker.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon } from '../../daemon/daemon.ts';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The `docker` binary on PATH, or null (the tests then skip, saying why). */
export async function dockerCli(): Promise<string | null> {
  return new Promise((resolve) => execFile('docker', ['--version'], (e, out) => resolve(e ? null : out.trim())));
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

export class OneManager {
  readonly dir = mkdtempSync(join(tmpdir(), 'shoal-docker-api-'));
  daemon!: Daemon;
  /** The Docker API's TCP port (mutual TLS), when started with `tcp`. */
  dockerPort: number | null = null;
  /** The cluster context `cluster init` answered (admin certificate, managers). */
  context!: { clusterId: string; managers: string[]; admin: { key: string; cert: string; ca: string } };

  get socket(): string {
    return join(this.dir, 'state', 'docker.sock');
  }

  /** Starts the daemon and (unless `init: false`) initialises a cluster on it. */
  async start(opts: { tcp?: boolean; init?: boolean } = {}): Promise<void> {
    this.dockerPort = opts.tcp ? await freePort() : null;
    this.daemon = new Daemon({
      stateDir: join(this.dir, 'state'),
      executor: 'test',
      processGuard: false,
      dockerPort: this.dockerPort,
      hostname: 'shoal-dk1',
      log: () => {},
    });
    await this.daemon.start();
    if (opts.init === false) return;
    const r = await this.daemon.init({ advertiseAddr: '127.0.0.1', listenPort: await freePort() });
    this.context = { clusterId: r.clusterId, managers: r.managers, admin: r.admin };
  }

  async stop(): Promise<void> {
    await this.daemon.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Runs the docker CLI against this manager's socket (or as `env` says); never throws on a non-zero exit. */
  docker(args: string[], timeoutMs = 60_000, env: Record<string, string> = { DOCKER_HOST: `unix://${this.socket}` }): Promise<Run> {
    return this.run('docker', args, timeoutMs, env);
  }

  /** Runs a program with this manager's HOME and DOCKER_CONFIG (a temporary directory). */
  run(cmd: string, args: string[], timeoutMs = 60_000, env: Record<string, string> = {}): Promise<Run> {
    return new Promise((resolve) => {
      execFile(
        cmd,
        args,
        {
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: this.dir, DOCKER_CONFIG: join(this.dir, 'docker-config'), ...env },
          timeout: timeoutMs,
          maxBuffer: 8 << 20,
        },
        (e, stdout, stderr) => resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, stdout, stderr }),
      );
    });
  }
}
