// `shoal daemon`: runs this host's Shoal daemon (manager and/or worker, per the cluster's decision) in
// the foreground until SIGTERM/SIGINT. The daemon's code is imported only here, so other commands do
// not load the manager, the engine or the overlay network.
import { resolve } from 'node:path';
import type { Invocation } from './command.ts';
import { CliError, DEFAULT_STATE_DIR } from '../client/context.ts';

export async function daemonCmd(i: Invocation): Promise<number> {
  if (i.positionals.length > 0) throw new CliError(`shoal daemon takes no arguments (got ${i.positionals.join(' ')})`);
  const executor = i.value('executor');
  if (executor !== undefined && executor !== 'engine' && executor !== 'test') throw new CliError('--executor must be engine or test');
  const electionMs = i.value('election-ms');
  if (electionMs !== undefined && !(Number(electionMs) > 0)) throw new CliError(`--election-ms must be a positive number (got ${JSON.stringify(electionMs)})`);
  const { Daemon } = await import('../daemon/daemon.ts');
  const hostname = i.value('hostname');
  const netnsPrefix = i.value('netns-prefix');
  const insecure = i.values('insecure-registry');
  const metricsAddr = i.value('metrics-addr');
  if (metricsAddr !== undefined) {
    const { parseMetricsAddr, MetricsAddrError } = await import('../metrics/server.ts');
    try {
      parseMetricsAddr(metricsAddr);
    } catch (e) {
      if (e instanceof MetricsAddrError) throw new CliError(e.message);
      throw e;
    }
  }
  const d = new Daemon({
    stateDir: resolve(i.value('state-dir') ?? DEFAULT_STATE_DIR),
    ...(executor ? { executor } : {}),
    ...(hostname ? { hostname } : {}),
    ...(insecure.length > 0 ? { insecureRegistries: insecure } : {}),
    ...(netnsPrefix ? { netnsPrefix } : {}),
    ...(electionMs ? { timing: { electionMs: Number(electionMs) } } : {}),
    ...(metricsAddr !== undefined ? { metricsAddr } : {}),
  });
  await d.start();
  const stop = async (sig: string) => {
    console.log(`${new Date().toISOString()} ${sig}: stopping`);
    await d.stop().catch(() => {});
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  await new Promise(() => {});
  return 0;
}
