// `shoal lab up|down|ls`: a multi-host Shoal cluster on one machine, each host a network namespace
// running a real daemon (see test/cluster/lab.ts, test/cluster/cluster-lab.ts and docs/design/lab.md).
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ClusterLab, cleanupLabCgroups } from '../test/cluster/cluster-lab.ts';
import { Lab } from '../test/cluster/lab.ts';
import { CliError, saveContext, table } from './shoal.ts';

export async function labCmd(sub: string | undefined, args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { managers: { type: 'string' }, workers: { type: 'string' }, name: { type: 'string' }, force: { type: 'boolean' }, context: { type: 'string' } },
      allowPositionals: false,
    });
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  const v = parsed.values;
  const name = v.name ?? 'shoal';
  switch (sub) {
    case 'up': {
      const managers = Number(v.managers ?? 3);
      const workers = Number(v.workers ?? 2);
      if (!Number.isInteger(managers) || managers < 1 || managers > 7) throw new CliError('--managers must be 1..7');
      if (!Number.isInteger(workers) || workers < 0 || workers > 50) throw new CliError('--workers must be 0..50');
      const t0 = Date.now();
      const stamp = () => `[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s]`;
      const c = await ClusterLab.up({ name, managers, workers, executor: 'engine', log: (l) => console.log(`${stamp()} ${l}`) });
      const ctxPath = v.context ?? process.env.SHOAL_CONTEXT ?? join(homedir(), '.shoal', 'context.json');
      saveContext(ctxPath, c.ctx);
      console.log(`\nLab '${name}' is up: ${managers} managers and ${workers} workers (context: ${ctxPath}).`);
      console.log('Try:');
      console.log('  shoal node ls');
      console.log(`  shoal node update --label-add zone=a ${c.lab.hosts[managers]?.name ?? 'h1'}`);
      console.log(`  shoal lab down${name !== 'shoal' ? ` --name ${name}` : ''}`);
      return 0;
    }
    case 'down': {
      const r = await Lab.downByName(name, { force: v.force ?? false });
      await cleanupLabCgroups(name);
      console.log(`lab '${name}': stopped ${r.killed.length} processes, removed ${r.namespaces.length} namespaces, ${r.links.length} links and ${r.dirs.length} directories in ${r.ms} ms`);
      if (r.errors.length > 0) {
        for (const e of r.errors) console.error(`shoal: lab down: ${e}`);
        return 1;
      }
      return 0;
    }
    case 'ls': {
      const labs = await Lab.list();
      const rows = [['NAME', 'SUBNET', 'HOSTS', 'PROCESSES', 'STATE']];
      for (const l of labs) rows.push([l.name, l.subnet ?? '-', String(l.hosts.length), String(l.pids.length), l.stateFile ? 'up' : 'leftovers']);
      console.log(table(rows));
      return 0;
    }
    default:
      throw new CliError(`unknown lab command '${sub ?? ''}' (up, down, ls)`);
  }
}
