// `npm run bench:cluster`: real daemons in lab hosts (network namespaces). Measures the time of
// `cluster init`, of joining 10 workers, from kill -9 of a worker to Down, and from kill -9 of the
// leader to a new leader and to the first committed write. Medians over several rounds, with Docker
// Swarm's figures on this machine for comparison.
import { performance } from 'node:perf_hooks';
import { control } from '../client/context.ts';
import { ClusterLab, waitFor } from '../lab/cluster-lab.ts';
import { cleanupOnExit } from '../lab/lab.ts';

const ROUNDS = Number(process.env.SHOAL_BENCH_ROUNDS ?? 3);
const WORKERS = 10;
const NAME = `bc${process.pid % 1000}`;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function round(r: number, out: Record<string, number[]>): Promise<void> {
  const unhook = cleanupOnExit(NAME);
  const c = await ClusterLab.create({ name: NAME, managers: 3, workers: WORKERS });
  try {
    // init
    let t = performance.now();
    const init = await c.init('h1');
    out.init!.push(performance.now() - t);
    for (const h of ['h2', 'h3']) await c.join(h, init.joinTokens.manager);
    await c.waitReady(3, 15_000);
    // join 10 workers (in parallel, as 10 operators would)
    const workers = c.lab.hosts.slice(3).map((h) => h.name);
    t = performance.now();
    await Promise.all(workers.map((h) => c.join(h, init.joinTokens.worker)));
    await c.waitReady(3 + WORKERS, 30_000);
    out.join!.push(performance.now() - t);
    // worker kill -9 -> Down
    const victim = workers[r % workers.length]!;
    t = performance.now();
    c.killDaemon(victim);
    await waitFor(async () => (await c.nodes()).find((n: any) => n.description.hostname === victim)?.status.state === 'down', 10_000, 'worker down', 20);
    out.down!.push(performance.now() - t);
    // leader kill -9 -> new leader -> first committed write
    const leader = (await c.nodes()).find((n: any) => n.managerStatus?.leader).description.hostname as string;
    const survivors = ['h1', 'h2', 'h3'].filter((h) => h !== leader).map((h) => `${c.host(h).ip}:2377`);
    t = performance.now();
    c.killDaemon(leader);
    let elected = 0;
    await waitFor(
      async () => {
        for (const m of survivors) {
          const info = await control<{ role?: string; nodeId?: string }>(c.ctx, 'GET', '/v1/info', undefined, m).catch(() => null);
          if (info?.role === 'leader' && info.nodeId) {
            if (!elected) elected = performance.now() - t;
            try {
              await control(c.ctx, 'POST', `/v1/nodes/${workers[0]}/update`, { labelAdd: { round: String(r) } }, m);
              return true;
            } catch {
              return false;
            }
          }
        }
        return false;
      },
      15_000,
      'new leader and a committed write',
      10,
    );
    out.leader!.push(elected);
    out.write!.push(performance.now() - t);
    console.log(
      `round ${r + 1}: init ${fmt(out.init!.at(-1)!)}, join ${WORKERS} workers ${fmt(out.join!.at(-1)!)}, worker Down ${fmt(out.down!.at(-1)!)}, new leader ${fmt(out.leader!.at(-1)!)}, first write ${fmt(out.write!.at(-1)!)}`,
    );
  } finally {
    await c.down();
    unhook();
  }
}

async function main(): Promise<void> {
  const out: Record<string, number[]> = { init: [], join: [], down: [], leader: [], write: [] };
  for (let r = 0; r < ROUNDS; r++) await round(r, out);
  console.log('');
  console.log(`cluster init median: ${fmt(median(out.init!))} (Docker Swarm here: 0.64 s)`);
  console.log(`join ${WORKERS} workers median: ${fmt(median(out.join!))} (Docker Swarm here: 1.29 s for 4 nodes)`);
  console.log(`worker kill -9 to Down median: ${fmt(median(out.down!))} (target <= 3 s; Docker Swarm here: 11.7-15.1 s)`);
  console.log(`leader kill -9 to new leader median: ${fmt(median(out.leader!))} (target <= 2 s; Docker Swarm here: 11.5-12.6 s)`);
  console.log(`leader kill -9 to first committed write median: ${fmt(median(out.write!))}`);
  console.log(`rounds: ${ROUNDS}`);
}

main().catch((e) => {
  console.error(`bench:cluster failed: ${(e as Error).stack ?? e}`);
  process.exitCode = 1;
});
