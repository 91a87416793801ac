// `shoal lab up|down|ls|restart`: a multi-host Shoal cluster on one machine, each host a network namespace
// running a real daemon (see lab/lab.ts, lab/cluster-lab.ts and docs/design/lab.md).
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ClusterLab, DAEMON_LABEL, cleanupLabCgroups, httpGet } from '../lab/cluster-lab.ts';
import { Lab, LabError, type LabSummary } from '../lab/lab.ts';
import { describeStatus, supervisedStatus } from '../lab/supervisor.ts';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { localCall, CliError, saveContext } from '../client/context.ts';
import { table } from './format.ts';
import { parseServiceCreateArgs } from './service-flags.ts';
import { demoWebImage } from '../worker/images/build.ts';

/**
 * The quick start's demo: builds the demo web image locally (busybox httpd; no registry), loads it on
 * the first manager (the others fetch it from there), creates `web` with N replicas published on `port`
 * through the routing mesh, and waits until every host answers.
 */
async function deployDemo(c: ClusterLab, hosts: { name: string; ip: string }[], replicas: number, port: number, log: (l: string) => void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-demo-'));
  try {
    const archive = join(dir, 'demo-web.tar');
    writeFileSync(archive, demoWebImage('shoal/demo-web:1').archive);
    await localCall(c.stateDir(hosts[0]!.name), 'POST', '/images/load', { path: archive });
    log(`demo image shoal/demo-web:1 built and loaded on ${hosts[0]!.name}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const { spec } = parseServiceCreateArgs(['--name', 'web', '--replicas', String(replicas), '-p', `${port}:80`, 'shoal/demo-web:1']);
  await c.control('POST', '/v1/services', { spec });
  log(`service web created (${replicas} replicas, port ${port})`);
  const deadline = Date.now() + 60_000;
  let running = 0;
  while (Date.now() < deadline) {
    const tasks = (await c.control('GET', '/v1/tasks?service=web')) as { status: { state: string } }[];
    const n = tasks.filter((t) => t.status.state === 'running').length;
    if (n !== running) log(`web: ${n}/${replicas} tasks running`);
    running = n;
    if (n >= replicas) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (running < replicas) throw new CliError(`demo service: only ${running}/${replicas} tasks running after 60 s (see shoal service ps web)`);
  const answering = new Set<string>();
  while (Date.now() < deadline && answering.size < hosts.length) {
    await Promise.all(
      hosts
        .filter((h) => !answering.has(h.name))
        .map(async (h) => {
          if ((await httpGet(h.ip, port, 1000)) !== null) {
            answering.add(h.name);
            log(`${h.name}: http://${h.ip}:${port}/ answers`);
          }
        }),
    );
    if (answering.size < hosts.length) await new Promise((r) => setTimeout(r, 100));
  }
  if (answering.size < hosts.length) throw new CliError(`demo service: the routing mesh answers on ${answering.size} of ${hosts.length} hosts after 60 s`);
  log(`demo service answering on all ${hosts.length} hosts`);
}

/** One row per lab host: its address, role (from its node.json) and whether its daemon runs or how it died. */
function hostRows(labs: LabSummary[], only: string | undefined): string[][] {
  const rows = [['LAB', 'HOST', 'ADDRESS', 'ROLE', 'DAEMON']];
  const now = Date.now();
  for (const l of labs) {
    if (only !== undefined && l.name !== only) continue;
    for (const h of l.hosts) {
      let role = '-';
      let daemon = h.up ? 'not started' : 'host gone';
      if (h.dir) {
        try {
          role = String(JSON.parse(readFileSync(join(h.dir, 'state', 'node.json'), 'utf8')).role ?? '-');
        } catch {
          /* not part of a cluster (yet) */
        }
        const st = supervisedStatus(h.dir, DAEMON_LABEL);
        if (st.state !== 'not-started' || h.up) daemon = describeStatus(st, now);
      }
      rows.push([l.name, h.name, h.ip ?? '-', role, daemon]);
    }
  }
  return rows;
}

function parseLabArgs(args: string[]) {
  try {
    return parseArgs({
      args,
      options: {
        managers: { type: 'string' },
        workers: { type: 'string' },
        name: { type: 'string' },
        force: { type: 'boolean' },
        context: { type: 'string' },
        'no-demo': { type: 'boolean' },
        replicas: { type: 'string' },
        port: { type: 'string' },
        wait: { type: 'string' },
      },
      allowPositionals: true,
    });
  } catch (e) {
    throw new CliError((e as Error).message);
  }
}

/** The fields of a daemon's local /info that `lab restart` reports once the daemon is back. */
interface RejoinedInfo {
  node: { nodeId: unknown; role: string; clusterId: unknown } | null;
  agent?: { connectedTo?: string } | null;
}

export async function labCmd(sub: string | undefined, args: string[]): Promise<number> {
  const parsed = parseLabArgs(args);
  const v = parsed.values;
  const positionals = parsed.positionals;
  // `lab down NAME` is accepted as well as `--name NAME` (the lab's own error messages suggest it).
  if (sub === 'down' && positionals.length === 1 && v.name === undefined) v.name = positionals.shift();
  if (sub !== 'restart' && positionals.length > 0) throw new CliError(`lab ${sub ?? ''}: unexpected argument '${positionals[0]}'`);
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
      console.log(`${stamp()} cluster ready: ${managers} managers and ${workers} workers (context: ${ctxPath})`);
      const hosts = c.lab.hosts.map((h) => ({ name: h.name, ip: h.ip! }));
      const port = Number(v.port ?? 8080);
      if (!v['no-demo']) {
        const replicas = Number(v.replicas ?? 6);
        if (!Number.isInteger(replicas) || replicas < 1 || replicas > 500) throw new CliError('--replicas must be 1..500');
        if (!Number.isInteger(port) || port < 1 || port > 65535) throw new CliError('--port must be 1..65535');
        await deployDemo(c, hosts, replicas, port, (l) => console.log(`${stamp()} ${l}`));
      }
      console.log(`\nLab '${name}' is up (${((Date.now() - t0) / 1000).toFixed(1)} s). Hosts: ${hosts.map((h) => `${h.name}=${h.ip}`).join(' ')}`);
      console.log('Try:');
      console.log('  shoal node ls');
      if (!v['no-demo']) {
        console.log('  shoal service ps web');
        console.log(`  curl http://${hosts[hosts.length - 1]!.ip}:${port}/      # any host answers (routing mesh)`);
        console.log('  shoal service scale web=12');
        console.log('  shoal service logs --tail 5 web');
      }
      console.log(`  shoal node update --label-add zone=a ${hosts[managers]?.name ?? 'h1'}`);
      console.log(`  shoal lab down${name !== 'shoal' ? ` --name ${name}` : ''}`);
      return 0;
    }
    case 'down': {
      const r = await Lab.downByName(name, { force: v.force ?? false });
      await cleanupLabCgroups(name);
      console.log(
        `lab '${name}': stopped ${r.killed.length} processes, removed ${r.namespaces.length} namespaces, ${r.links.length} links and ${r.dirs.length} directories in ${r.ms} ms`,
      );
      if (r.errors.length > 0) {
        for (const e of r.errors) console.error(`shoal: lab down: ${e}`);
        return 1;
      }
      return 0;
    }
    case 'ls': {
      const labs = (await Lab.list()).filter((l) => v.name === undefined || l.name === v.name);
      const rows = [['NAME', 'SUBNET', 'HOSTS', 'PROCESSES', 'STATE']];
      for (const l of labs) rows.push([l.name, l.subnet ?? '-', String(l.hosts.length), String(l.pids.length), l.stateFile ? 'up' : 'leftovers']);
      console.log(table(rows));
      const hosts = hostRows(labs, v.name);
      if (hosts.length > 1) console.log(`\n${table(hosts)}`);
      return 0;
    }
    case 'restart': {
      if (positionals.length !== 1) throw new CliError('usage: shoal lab restart [--name LAB] [--force] [--wait 30] HOST');
      const host = positionals[0]!;
      const waitS = Number(v.wait ?? 30);
      if (!Number.isFinite(waitS) || waitS < 0 || waitS > 600) throw new CliError('--wait must be 0..600 seconds');
      let c: ClusterLab;
      try {
        c = await ClusterLab.open(name);
      } catch (e) {
        throw new CliError(e instanceof LabError ? e.message : `lab ${name}: ${(e as Error).message}`);
      }
      if (!c.daemons.has(host)) throw new CliError(`lab ${name} has no host ${host} (hosts: ${[...c.daemons.keys()].join(', ')})`);
      const before = c.daemonStatus(host);
      try {
        await c.restartDaemon(host, { force: v.force ?? false });
      } catch (e) {
        if (e instanceof LabError) throw new CliError(e.message);
        throw new CliError((e as Error).message.split('\n')[0]!);
      }
      const now = c.daemonStatus(host);
      const pid = now.state === 'running' ? now.pid : '?';
      const was = before.state === 'running' ? `was running as pid ${before.pid}, stopped` : `was ${describeStatus(before, Date.now())}`;
      console.log(`${host}: daemon started again (pid ${pid}; ${was}); log: ${join(c.host(host).dir, 'daemon.log')}`);
      if (waitS > 0) {
        let info: RejoinedInfo;
        try {
          info = await c.waitRejoined(host, waitS * 1000);
        } catch {
          throw new CliError(`${host}: the daemon runs (pid ${pid}) but has no session with a manager after ${waitS} s (see its log)`);
        }
        if (info.node)
          console.log(
            `${host}: node ${String(info.node.nodeId).slice(0, 12)} (${info.node.role}) back in cluster ${String(info.node.clusterId).slice(0, 12)}, connected to ${info.agent?.connectedTo ?? '?'}`,
          );
        else console.log(`${host}: not part of a cluster yet`);
      }
      return 0;
    }
    default:
      throw new CliError(`unknown lab command '${sub ?? ''}' (up, down, ls, restart)`);
  }
}
