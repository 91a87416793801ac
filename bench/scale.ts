// `npm run bench:scale [-- --nodes 5000 --tasks 150000 --farms K]`: Swarm3k on one machine. Three real
// managers (daemons in lab hosts) and K agent-farm processes (lab/agent-farm.ts), each in a lab host of
// its own (the join endpoint is rate limited per source address), running many simulated agents: each
// joins with the worker token and its own certificate, holds a real mutual-TLS dispatcher session and
// runs its tasks with the test executor. Prints every figure of issue 17's table with its goal, the
// farms' own lag (so a slow simulator is not mistaken for a slow manager), and where it stopped if a
// phase did not finish.
//
// Phases: joins -> create T replicas -> leader RSS -> rolling update of min(10000, T) tasks -> a node's
// agent killed -> Down -> a 4th manager joins (snapshot installed) -> leader kill -9 -> new leader and
// first write. `--profile` writes a V8 CPU profile of every manager (in /tmp/<lab>-prof; the killed
// leader writes none), `--profile-farms` of every farm too. `--until <phase>` stops after that phase, so
// that the leader writes its profile at the teardown.
import { processCpuSeconds } from './stats.ts';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { control } from '../client/context.ts';
import { ClusterLab, sleep, waitFor } from '../lab/cluster-lab.ts';
import { cleanupOnExit } from '../lab/lab.ts';
import { FarmProcess } from '../lab/agent-farm.ts';
import { heartbeatPeriodFor, takeoverGraceMs } from '../manager/dispatcher/liveness.ts';
import { Store } from '../manager/store/store.ts';
import { measureRaftSnapshot } from './scale/raft-snapshot.ts';
import { measureTakeover } from './scale/takeover.ts';
import { fillStore } from './scale/fill.ts';

// Control API JSON, read field by field.
type Json = any;

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 0) throw new Error(`--${name} wants a non-negative integer, got ${process.argv[i + 1]}`);
  return v;
}
const NODES = arg('nodes', 200);
const TASKS = arg('tasks', 5000);
/**
 * Agents per farm at most. A manager accepts 256 connections from one source address (daemon/server-guard.ts
 * maxConnectionsPerIp) and a farm is one address: beyond that its sessions are reset during the TLS
 * handshake and retried forever (at 1,000 nodes in 2 farms exactly 256 + 256 ever got a session). 200
 * leaves room for the farm's joins in flight.
 */
const FARM_MAX_AGENTS = 200;
const FARMS = Math.max(1, arg('farms', Math.ceil(NODES / FARM_MAX_AGENTS)));
if (Math.ceil(NODES / FARMS) > FARM_MAX_AGENTS)
  throw new Error(
    `--farms ${FARMS}: ${Math.ceil(NODES / FARMS)} agents per farm, more than ${FARM_MAX_AGENTS} (a manager takes 256 connections per address); use --farms ${Math.ceil(NODES / FARM_MAX_AGENTS)} or more`,
  );
const UPDATE_TASKS = arg('update-tasks', Math.min(10_000, TASKS));
/** Keys per farm, shared round-robin by its nodes; 0: one per node, as real nodes have. */
const KEYS = arg('keys', 0);
const HEARTBEAT_MS = arg('heartbeat-ms', 0); // 0: the cluster's default
/**
 * Niceness of the farms (0-19). 25 farms and 3 managers on 2 cores left the leader a 28th of the CPU: at
 * 5,000 nodes it lost its term 8 times in 3 minutes of joins (December 7). Real managers have cores of
 * their own, so the simulator yields to them; what that costs the farms shows in their lag lines.
 */
const FARM_NICE = arg('farm-nice', 19);
if (FARM_NICE > 19) throw new Error(`--farm-nice is 0-19, got ${FARM_NICE}`);
const PROFILE = process.argv.includes('--profile');
/**
 * Kill the leader right after demoting the 4th manager, not 5 s later: the case docs/design/scale.md
 * leaves open (hundreds of live nodes marked Down).
 */
const DEMOTE_AT_KILL = process.argv.includes('--demote-at-kill');
/**
 * Stop after this phase ('join', 'create', 'rss', 'rolling update', 'node down', 'snapshot'): with
 * --profile, the leader then writes its profile at the teardown, which a leader killed -9 never does.
 */
const PHASES = ['join', 'create', 'rss', 'rolling update', 'node down', 'snapshot', 'leader kill'];
const UNTIL = (() => {
  const i = process.argv.indexOf('--until');
  if (i < 0) return null;
  const v = process.argv[i + 1];
  // A misspelt phase would run the whole bench (and kill the leader it was meant to profile).
  if (v === undefined || !PHASES.includes(v))
    throw new Error(`--until wants one of ${PHASES.map((p) => `'${p}'`).join(', ')}, got ${v === undefined ? 'nothing' : `'${v}'`}`);
  return v;
})();
/** Also profile the farms (their profiles cost them CPU: at 1,000 nodes the joins then fall behind; at 5,000, 45 nodes were ready after 300 s). */
const PROFILE_FARMS = process.argv.includes('--profile-farms');
const NAME = `sc${process.pid % 1000}`;

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** figure -> [value text, goal text] */
const table: [string, string, string][] = [];
const notes: string[] = [];
function fig(name: string, value: string, goal: string): void {
  table.push([name, value, goal]);
  console.log(`${name}: ${value} (goal ${goal})`);
}

/**
 * The store at the bench's size, in this process (no lab, no Raft): how long a snapshot of it takes to
 * write and to install, and the heap it needs per node and per task. Real task objects: the service spec
 * goes through the API's validation and the orchestrator's newTask, tasks are then assigned and running.
 */
async function storeFigures(nodes: number, tasks: number): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const heap = () => {
    gc?.();
    return process.memoryUsage().heapUsed;
  };
  const store = new Store();
  const h0 = heap();
  let h1 = 0;
  await fillStore(store, nodes, tasks, false, () => {
    h1 = heap();
  });
  const h2 = heap();
  // CPU time (user + system) as well as wall time: on a busy machine the wall time mostly measures waiting.
  const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;
  let t = performance.now();
  let u = process.cpuUsage();
  const snap = store.snapshot();
  const writeMs = performance.now() - t;
  const writeCpu = cpuMs(process.cpuUsage(u));
  const other = new Store();
  t = performance.now();
  u = process.cpuUsage();
  other.restore(snap);
  const installMs = performance.now() - t;
  const installCpu = cpuMs(process.cpuUsage(u));
  const size = `${(snap.length / 1e6).toFixed(0)} MB`;
  // The leader's control loops started on that state, as on a new leader.
  const tk = await measureTakeover(store);
  fig(
    `new leader's loops on ${nodes} nodes / ${tasks} running tasks, in process: event loop blocked, longest`,
    `${tk.longestBlockMs.toFixed(0)} ms (quiet after ${tk.quietAfterMs.toFixed(0)} ms, ${tk.cpuMs.toFixed(0)} ms CPU, ${tk.writes} objects written)`,
    '< 1000 ms (the base election timeout)',
  );
  const nd = tk.nodeDown!;
  fig(
    `then one node Down (${nd.moved} tasks moved), the same loops: event loop blocked, longest`,
    `${nd.longestBlockMs.toFixed(0)} ms (quiet after ${nd.quietAfterMs.toFixed(0)} ms, ${nd.cpuMs.toFixed(0)} ms CPU, ${nd.writes} objects written)`,
    '< 1000 ms (the base election timeout)',
  );
  fig(
    `store of ${nodes} nodes / ${tasks} tasks, in process: snapshot write`,
    `${writeMs.toFixed(0)} ms for ${size} (${writeCpu.toFixed(0)} ms CPU)`,
    '<= 2000 ms',
  );
  fig(
    `store of ${nodes} nodes / ${tasks} tasks, in process: snapshot install`,
    `${installMs.toFixed(0)} ms for ${size} (${installCpu.toFixed(0)} ms CPU)`,
    '<= 2000 ms',
  );
  console.log(
    `store of ${nodes} nodes / ${tasks} tasks, in process: heap ${((h1 - h0) / nodes / 1024).toFixed(1)} KB per node, ${((h2 - h1) / tasks / 1024).toFixed(2)} KB per task${gc ? '' : ' (no --expose-gc: rough)'}`,
  );
  // The same state written through Raft (a single voter over the encrypted SQLite log), then one snapshot
  // taken and the log compacted, as a manager does every SHOAL_RAFT_SNAPSHOT_EVERY entries.
  const r = await measureRaftSnapshot(
    (st) => fillStore(st, nodes, tasks, true),
    async (st) => {
      await st.update((tx) => tx.update({ ...(tx.get('node', `node${'0'.padStart(20, '0')}`) as object) } as never));
    },
  );
  fig(
    `Raft snapshot of ${nodes} nodes / ${tasks} tasks (encrypted log of ${r.entries} entries): write and compact`,
    `${r.wallMs} ms for ${(r.bytes / 1e6).toFixed(0)} MB (serialising ${r.workMs} ms of work, the file ${r.fileMs} ms)`,
    '<= 2000 ms',
  );
  fig(
    `  event loop blocked during it, longest`,
    `${r.longestBlockMs.toFixed(0)} ms (the node's longest step ${r.longestStepMs} ms)`,
    '< 1000 ms (the base election timeout)',
  );
}

async function main(): Promise<void> {
  if (process.argv.includes('--store-only')) return storeFigures(NODES, TASKS);
  console.log(`bench:scale: ${NODES} simulated nodes in ${FARMS} farm(s), ${TASKS} replicas, 3 managers (lab ${NAME}), farms at nice ${FARM_NICE}`);
  // Snapshots more often than the default (10,000 entries) so the bench sees their cost at any size,
  // and a new manager gets one rather than the whole log.
  process.env.SHOAL_RAFT_SNAPSHOT_EVERY ??= '2000';
  process.env.SHOAL_RAFT_KEEP_ENTRIES ??= '1000';
  const profDir = `/tmp/${NAME}-prof`;
  const unhook = cleanupOnExit(NAME);
  const c = await ClusterLab.create({
    name: NAME,
    managers: 4,
    workers: 0,
    spareHosts: FARMS,
    ...(PROFILE ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`] } : {}),
  });
  const farms: FarmProcess[] = [];
  let stopped: string | null = null;
  let done = false;
  const phase = async (what: string, fn: () => Promise<void>) => {
    if (stopped || done) return;
    try {
      await fn();
    } catch (e) {
      stopped = `${what}: ${(e as Error).message}`;
      console.log(`stopped in phase "${what}": ${(e as Error).message}`);
    }
    if (what === UNTIL) {
      done = true;
      console.log(`--until ${UNTIL}: the phases after it are skipped`);
    }
  };
  try {
    const init = await c.init('h1');
    for (const h of ['h2', 'h3']) await c.join(h, init.joinTokens.manager);
    await c.waitReady(3, 30_000);
    // 150,000 replicas are above the default limit of a service (10,000): raised as an operator would.
    await c.control('POST', '/v1/cluster/update', {
      limits: { maxReplicas: Math.max(TASKS, 10_000) },
      ...(HEARTBEAT_MS ? { heartbeatPeriodMs: HEARTBEAT_MS } : {}),
    });
    const leaderHost = async (): Promise<string> => (await c.nodes()).find((n: Json) => n.managerStatus?.leader)?.description.hostname;
    const rssMb = (host: string) => {
      const pid = c.daemons.get(host)?.pid;
      const m = pid ? /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8')) : null;
      return m ? Number(m[1]) / 1024 : NaN;
    };
    const baseRss = rssMb((await leaderHost()) ?? 'h1');
    // CPU seconds (user + system) a manager used so far: unlike wall times, not inflated by a busy machine.
    const cpuS = (host: string) => processCpuSeconds(c.daemons.get(host)?.pid);
    // Marks for every manager: a phase's CPU is the manager that leads at its end, since the last mark (a
    // leader that changed during the phase is named, and the figure is only its share).
    const cpuMarks = new Map(['h1', 'h2', 'h3', 'h4'].map((h) => [h, cpuS(h)]));
    let lastLeader = (await leaderHost()) ?? 'h1';
    let leaderNote = '';
    const cpuSince = async () => {
      const leader = (await leaderHost()) ?? lastLeader;
      leaderNote = leader !== lastLeader ? ` (the leader changed ${lastLeader} -> ${leader}: ${leader}'s share only)` : '';
      lastLeader = leader;
      const d = cpuS(leader) - (cpuMarks.get(leader) ?? 0);
      for (const h of cpuMarks.keys()) cpuMarks.set(h, cpuS(h));
      return d;
    };

    // ---------------------------------------------------------------------------------------- joins
    await phase('join', async () => {
      const spare = c.lab.hosts.slice(4);
      const t0 = performance.now();
      for (let k = 0; k < FARMS; k++) {
        const host = spare[k]!;
        const count = Math.floor(NODES / FARMS) + (k < NODES % FARMS ? 1 : 0);
        const cfg = {
          managers: c.ctx.managers,
          token: init.joinTokens.worker,
          caPem: c.ctx.admin.ca,
          count,
          namePrefix: `f${k + 1}n`,
          addr: host.ip,
          ...(KEYS > 0 ? { keys: KEYS } : {}),
          nice: FARM_NICE,
          // The leader signs joins one at a time (≈ 10 ms of CPU each, most of it re-reading the CA): more in
          // flight only queue there, delaying TLS handshakes and heartbeats behind them.
          joinConcurrency: 4,
        };
        farms.push(FarmProcess.spawn(host, cfg, PROFILE_FARMS ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []));
      }
      await waitFor(
        () => {
          const bad = farms.find((f) => f.error);
          if (bad) throw new Error(`farm in ${bad.host.name}: ${bad.error}`);
          return farms.every((f) => f.joined);
        },
        Math.max(120_000, NODES * 200),
        'every farm joined',
        100,
      ).catch((e) => {
        throw new Error(`${(e as Error).message} (joined so far: ${farms.map((f) => f.lag.at(-1)?.agents ?? 0).join(' + ')})`);
      });
      const joinedAt = performance.now() - t0;
      let ready = 0;
      await waitFor(
        async () => {
          ready = (await c.nodes().catch(() => [])).filter((n: Json) => n.status?.state === 'ready').length - 3;
          return ready >= NODES;
        },
        Math.max(60_000, NODES * 60),
        `${NODES} simulated nodes ready`,
        500,
      ).catch((e) => {
        throw new Error(`${(e as Error).message} (${ready} ready; agents with a session: ${farms.map((f) => f.lag.at(-1)?.ready ?? 0).join(' + ')})`);
      });
      const keyMs = Math.max(...farms.map((f) => f.keys?.ms ?? 0));
      const joinRate = farms.reduce((a, f) => a + (f.joined?.rate ?? 0), 0);
      fig(`${NODES} nodes joined and Ready`, s(performance.now() - t0), '<= 60 s');
      const cpu = await cpuSince();
      console.log(`  leader CPU during the joins: ${cpu.toFixed(1)} s (${((cpu * 1000) / NODES).toFixed(1)} ms per node joined)${leaderNote}`);
      // Steady state: nothing but heartbeats for 10 s.
      await sleep(10_000);
      const hb = await cpuSince();
      // The period the nodes are told, which grows past the configured one in a large cluster
      // (heartbeatPeriodFor): 2.5 s at 5,000 nodes. (Divided by the configured 1 s, the figure per
      // heartbeat was 2.5 times too low at that size.)
      const configured = (await poll(c, '/v1/cluster'))?.spec?.dispatcher?.heartbeatPeriodMs ?? 1000;
      const period = heartbeatPeriodFor(configured, NODES);
      const beats = (NODES * 10_000) / period;
      console.log(
        `  leader CPU with ${NODES} nodes heartbeating (period ${period} ms), 10 s: ${hb.toFixed(2)} s (${((hb * 1e6) / beats).toFixed(0)} µs per heartbeat, ${((100 * hb) / 10).toFixed(0)} % of a core)`,
      );
      console.log(
        `  of which: node keys ${s(keyMs)} (${KEYS ? `${KEYS} per farm, shared` : 'one per node'}, ECDSA P-256, in parallel), all joins answered at ${s(joinedAt)}, join throughput ${joinRate} joins/s`,
      );
    });

    // ------------------------------------------------------------------------------------- create
    let svcId = '';
    await phase('create', async () => {
      const t = performance.now();
      const spec = { name: 'big', mode: { replicated: { replicas: TASKS } }, task: { image: 'busybox:latest' } };
      const disp0 = await c.control('GET', '/v1/dispatcher/stats').catch(() => null);
      svcId = (await c.control('POST', '/v1/services', { spec })).id;
      let running = 0;
      await waitFor(
        async () => {
          running = (await poll(c, `/v1/services/${svcId}`))?.replicas?.running ?? running;
          return running >= TASKS;
        },
        // 5 × the 60 s goal at most: a run that is that far off has found its bottleneck (CPU profiles
        // say where) and should not hold the machine for an hour.
        Math.max(120_000, Math.min(TASKS * 20, 300_000)),
        `${TASKS} tasks running`,
        500,
      ).catch((e) => {
        throw new Error(`${(e as Error).message} (${running} running)`);
      });
      fig(`service create ${TASKS} replicas -> all running`, s(performance.now() - t), '<= 60 s');
      const cpu = await cpuSince();
      console.log(`  leader CPU during the create: ${cpu.toFixed(1)} s (${((cpu * 1e6) / TASKS).toFixed(0)} µs per task)${leaderNote}`);
      const disp = await c.control('GET', '/v1/dispatcher/stats').catch(() => null);
      if (disp?.leader && disp0?.leader) {
        const sent = disp.assignments.changes - disp0.assignments.changes + disp.assignments.full - disp0.assignments.full;
        const a = disp.assignments;
        const a0 = disp0.assignments;
        const rounds = (a.rounds ?? 0) - (a0.rounds ?? 0);
        console.log(
          `  leader's dispatcher during the create: ${sent} assignment messages (${(sent / NODES).toFixed(1)} per node, ${((a.tasks - a0.tasks) / Math.max(1, sent)).toFixed(1)} tasks each) in ${rounds} rounds (the longest ${a.longestRoundMs} ms), ${disp.status.written - disp0.status.written} task states written, ${disp.messages.received - disp0.messages.received} messages received`,
        );
      }
    });

    await phase('rss', async () => {
      await sleep(2000); // let the last status writes and their garbage settle
      const h = await leaderHost();
      fig(
        `leader RSS at ${NODES} nodes / ${TASKS} tasks`,
        `${rssMb(h).toFixed(0)} MB (idle 3-manager cluster before the run: ${baseRss.toFixed(0)} MB)`,
        '<= 2048 MB',
      );
    });

    // ------------------------------------------------------------------------------ rolling update
    await phase('rolling update', async () => {
      if (UPDATE_TASKS === 0) {
        notes.push('rolling update skipped (--update-tasks 0)');
        return;
      }
      const spec = {
        name: 'roll',
        mode: { replicated: { replicas: UPDATE_TASKS } },
        task: { image: 'busybox:latest' },
        update: { parallelism: 100, delayMs: 0, failureAction: 'pause', monitorMs: 0, maxFailureRatio: 0, order: 'stop-first' },
      };
      const { id } = await c.control('POST', '/v1/services', { spec });
      await waitFor(
        async () => ((await poll(c, `/v1/services/${id}`))?.replicas?.running ?? 0) >= UPDATE_TASKS,
        Math.max(120_000, UPDATE_TASKS * 20),
        'roll service running',
        500,
      );
      const cur = await c.control('GET', `/v1/services/${id}`);
      const t = performance.now();
      await c.control('POST', `/v1/services/${id}/update`, { spec: { ...cur.spec, task: { ...cur.spec.task, image: 'busybox:v2' } } });
      await waitFor(
        async () => {
          const x = await poll(c, `/v1/services/${id}`);
          if (!x) return false;
          if (x.updateStatus?.state === 'paused') throw new Error(`update paused: ${x.updateStatus.message}`);
          return x.updateStatus?.state === 'completed' && x.replicas.running >= UPDATE_TASKS;
        },
        Math.max(300_000, Math.min(UPDATE_TASKS * 60, 600_000)),
        'rolling update complete',
        250,
      );
      fig(`rolling update of ${UPDATE_TASKS} tasks, parallelism 100 (beside the ${TASKS})`, s(performance.now() - t), '<= 20 s');
      console.log(`  leader CPU during the roll service's create and update: ${(await cpuSince()).toFixed(1)} s${leaderNote}`);
    });

    // ------------------------------------------------------------------------------ node down
    await phase('node down', async () => {
      // Timed from the moment the farm stopped the agent (it reports when): a farm seconds behind on its
      // event loop acts on the request late, and that is the harness's lag, printed beside.
      const asked = Date.now();
      const nodeId = await farms[0]!.kill(1);
      const killedAt = farms[0]!.killedAt(1) ?? asked;
      await waitFor(async () => (await poll(c, `/v1/nodes/${nodeId}`))?.status?.state === 'down', 60_000, 'node down', 50);
      fig(
        `a node's agent killed at ${NODES} nodes -> node Down`,
        `${s(Date.now() - killedAt)} (the farm stopped the agent ${Math.max(0, killedAt - asked)} ms after the request)`,
        '<= 5 s',
      );
    });

    // ------------------------------------------------------------------------------ snapshots
    await phase('snapshot', async () => {
      const leader = await leaderHost();
      const writes = [
        ...readFileSync(join(c.host(leader).dir, 'daemon.log'), 'utf8').matchAll(
          /snapshot at \d+-\d+ \((\d+) bytes in (\d+) ms\), log compacted; longest step (\d+) ms(?:, serialising (\d+) ms of work, file (\d+) ms)?/g,
        ),
      ];
      const last = writes.at(-1);
      if (last) {
        const parts = last[4] !== undefined ? `; serialising ${last[4]} ms of work, the file ${last[5]} ms, the rest waiting its turn` : '';
        fig(
          'Raft snapshot write (leader, latest)',
          `${last[2]} ms for ${(Number(last[1]) / 1e6).toFixed(1)} MB (${writes.length} taken${parts})`,
          '<= 2000 ms',
        );
        const longest = Math.max(...writes.map((w) => Number(w[3])));
        console.log(`  longest step of the leader's snapshots (the event loop held): ${longest} ms`);
      } else {
        // The log is still shorter than SHOAL_RAFT_SNAPSHOT_EVERY: a new manager replays it instead.
        fig(
          'Raft snapshot write (leader, latest)',
          `none taken (fewer than ${process.env.SHOAL_RAFT_SNAPSHOT_EVERY} entries applied; see --store-only)`,
          '<= 2000 ms',
        );
        return;
      }
      const t = performance.now();
      await c.join('h4', init.joinTokens.manager);
      let inst: RegExpMatchArray | null = null;
      await waitFor(
        () => {
          inst = /installed snapshot \d+-\d+ from the leader \((\d+) bytes in (\d+) ms\)/.exec(readFileSync(join(c.host('h4').dir, 'daemon.log'), 'utf8'));
          return inst !== null;
        },
        120_000,
        'the new manager to install a snapshot',
        100,
      );
      fig(
        'Raft snapshot install on a new manager',
        `${inst![2]} ms for ${(Number(inst![1]) / 1e6).toFixed(1)} MB (join to installed: ${s(performance.now() - t)})`,
        '<= 2000 ms',
      );
    });

    // ------------------------------------------------------------------------------ leader kill
    await phase('leader kill', async () => {
      if (PROFILE) notes.push('leader kill -9 with --profile: the killed leader writes no profile; the survivors do');
      // The 4th manager only measured the snapshot install: demoted again, the failover is measured with
      // 3 voters, as the issue asks (with 4, every survivor's vote is needed: 3 of 4).
      const managers = ['h1', 'h2', 'h3'];
      if (!stopped && existsSync(join(c.host('h4').dir, 'daemon.log'))) {
        await c.control('POST', '/v1/nodes/h4/demote').then(
          () => void 0,
          (e: Error) => notes.push(`h4 not demoted before the leader kill (${e.message}): 4 voters`),
        );
        // The demoted node renews its certificate as a worker and stops its manager; agents hear the new
        // manager list with their next heartbeat. Let both settle.
        if (!DEMOTE_AT_KILL) await sleep(5000);
      }
      const leader = await leaderHost();
      const survivors = managers.filter((h) => h !== leader).map((h) => `${c.host(h).ip}:2377`);
      const t = performance.now();
      const killedAt = Date.now();
      c.killDaemon(leader);
      let elected = 0;
      await waitFor(
        async () => {
          for (const m of survivors) {
            const info = await control<{ role?: string }>(c.ctx, 'GET', '/v1/info', undefined, m).catch(() => null);
            if (info?.role !== 'leader') continue;
            if (!elected) elected = performance.now() - t;
            try {
              await control(c.ctx, 'POST', `/v1/nodes/h1/update`, { labelAdd: { bench: 'scale' } }, m);
              return true;
            } catch {
              return false;
            }
          }
          return false;
        },
        60_000,
        'new leader and a committed write',
        10,
      );
      fig(`leader kill -9 at ${NODES} nodes -> new leader and first write`, `${s(performance.now() - t)} (answered as leader after ${s(elected)})`, '<= 3 s');
      // The election itself, from the survivors' logs (the control API's answer above waits behind the
      // new leader's takeover), and the election timeout in force then (election-timing.ts).
      for (const h of managers.filter((x) => x !== leader)) {
        const log = readFileSync(join(c.host(h).dir, 'daemon.log'), 'utf8');
        let timeout = '';
        for (const m of log.matchAll(/^(\S+Z) manager: raft: raft \S+: election timeout now (\d+) ms \+ up to (\d+) ms/gm)) {
          if (Date.parse(m[1]!) <= killedAt) timeout = `${m[2]} ms + up to ${m[3]} ms`;
        }
        for (const m of log.matchAll(/^(\S+Z) manager: raft: raft \S+: became leader of term (\d+)/gm)) {
          const at = Date.parse(m[1]!);
          if (at < killedAt) continue;
          console.log(`  Raft: ${h} became leader of term ${m[2]} ${s(at - killedAt)} after the kill (election timeout ${timeout || 'as configured'})`);
          break;
        }
      }
      // Every agent had to reconnect to the new leader. Any live node it marked Down meanwhile would see
      // its tasks rescheduled: wait out the new leader's takeover window (takeoverGraceMs + the deadline)
      // and count. Expected Down: the agent killed above and the killed leader's own node.
      // The usual deadline (liveness.ts: the announced period plus two configured ones), the takeover
      // window, and 2 s for the leader's Down pass and the count.
      const period = HEARTBEAT_MS || 1000;
      const win = heartbeatPeriodFor(period, NODES) + 2 * period + takeoverGraceMs(NODES) + 2000;
      await sleep(Math.max(0, win - (performance.now() - t)));
      // A leader busy with 5,000 reconnects may fail a request: asked again for 10 s, the last cause printed.
      const list: { nodes: { status?: { state?: string } }[] | null; failed: string } = { nodes: null, failed: '' };
      const listNodes = async (): Promise<boolean> => {
        list.nodes = await control<{ status?: { state?: string } }[]>(c.ctx, 'GET', '/v1/nodes', undefined, survivors[0]).catch((e: Error) => {
          list.failed = e.message;
          return null;
        });
        return list.nodes !== null;
      };
      await waitFor(listNodes, 10_000, 'the node list', 500).catch(() => {});
      const down = list.nodes?.filter((n) => n.status?.state === 'down').length;
      fig(
        `live nodes marked Down by the new leader (${(win / 1000).toFixed(0)} s after the kill)`,
        down === undefined ? `not counted (GET /v1/nodes failed for 10 s: ${list.failed})` : `${Math.max(0, down - 2)}`,
        '0',
      );
      // The kernel's view of the new leader's port: listen queue (Recv-Q of the listener), connections by
      // TCP state, and the listen overflow/drop counters. Agents stuck "connecting" to an idle leader
      // point here (docs/design/scale.md, failover).
      const now = await leaderHost().catch(() => undefined);
      if (now) {
        const h = c.host(now);
        const sh = async (cmd: string) => (await h.exec('sh', ['-c', cmd]).catch((e: Error) => ({ stdout: e.message }))).stdout.trim();
        console.log(`  new leader ${now}: listener ${await sh("ss -ltn 'sport = :2377' | tail -n +2 | tr -s ' '")}`);
        console.log(
          `  new leader ${now}: TCP states on :2377: ${await sh("ss -tan 'sport = :2377' | tail -n +2 | awk '{print $1}' | sort | uniq -c | tr -s ' \n' ' '")}`,
        );
        console.log(
          `  new leader ${now}: ${await sh("nstat -az TcpExtListenOverflows TcpExtListenDrops TcpExtTCPReqQFullDrop TcpExtTCPReqQFullDoCookies TcpExtSyncookiesSent 2>/dev/null | tail -n +2 | tr -s ' ' | tr '\n' ';'")}`,
        );
      }
    });
  } finally {
    const settled = stopped;
    if (settled) notes.push(`stopped: ${settled}`);
    printTable(farms);
    await Promise.all(farms.map((f) => f.stopAndWait()));
    // The managers' logs outlive the lab (snapshot lines, dispatcher disconnects) for a look afterwards.
    const logs = `/tmp/${NAME}-logs`;
    mkdirSync(logs, { recursive: true });
    for (const h of ['h1', 'h2', 'h3', 'h4'])
      if (existsSync(join(c.host(h).dir, 'daemon.log'))) copyFileSync(join(c.host(h).dir, 'daemon.log'), join(logs, `${h}.log`));
    console.log(`manager logs: ${logs}`);
    await c.down();
    unhook();
    if (PROFILE) console.log(`CPU profiles of the managers: ${profDir}`);
    if (settled) process.exitCode = 1;
  }
}

/** A GET that may fail while the cluster is busy (a read not confirmed in time): null, and the caller polls again. */
function poll(c: ClusterLab, path: string): Promise<Json | null> {
  return c.control('GET', path).catch(() => null);
}

function printTable(farms: FarmProcess[]): void {
  console.log('');
  console.log(`bench:scale table (${NODES} nodes, ${TASKS} tasks, ${FARMS} farm(s))`);
  for (const [n, v, g] of table) console.log(`${n}: ${v} (goal ${g})`);
  console.log('worker daemon idle RSS: see bench:cli (goal <= 60 MB)');
  console.log('manager daemon idle RSS, 5-node lab: see bench:cli (goal <= 90 MB)');
  console.log('overlay / veth, one TCP stream: see bench:overlay (goal >= 80 %)');
  // Harness lag: the worst interval of each farm over the whole run.
  for (const f of farms) console.log(f.summary());
  for (const n of notes) console.log(n);
}

main().catch((e) => {
  console.error(`bench:scale failed: ${(e as Error).stack ?? e}`);
  process.exitCode = 1;
});
