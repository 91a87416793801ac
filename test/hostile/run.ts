// One hostile-peer run against a lab cluster (test/cluster/hostile.test.ts runs a short one, bench/hostile.ts
// a long one): a steady service and a writer on the honest side, the attacker process (attacker.ts) in a
// lab host of its own, then the verdict: daemons alive, acknowledged writes present, service converged,
// leader unchanged, the leader's memory bounded, and what the attacker saw.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { httpsJson } from '../../transport/https.ts';
import { DEFAULT_SERVER_LIMITS } from '../../daemon/server-guard.ts';
import { type ClusterLab, waitFor } from '../../lab/cluster-lab.ts';
import { procAlive } from '../../lab/lab.ts';
import type { AttackConfig, AttackRates, AttackResult } from './attacker.ts';
import { LatencyProbe, LeaderWatch, RssSampler, Writer, nodeLabels, percentile, rssKiB } from './observe.ts';
import type { Finding } from './tally.ts';
import { joinWorkers } from './worker-client.ts';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const ATTACKER = join(REPO, 'test', 'hostile', 'attacker.ts');

/** The dispatcher's frame limit and the control API's body limit the generator aims around (4 MiB). */
export const MAX_PAYLOAD = 4 << 20;
export const MAX_BODY = 4 << 20;

export interface HostileOptions {
  seed: number;
  seconds: number;
  /** Hostile worker identities (one connection each). */
  workers: number;
  rates: AttackRates;
  /** Attacker processes sharing the clients (default 1). */
  attackers?: number;
  /** Honest baseline before the attack (latency "before"). */
  baselineSeconds: number;
  replicas: number;
  log?: (l: string) => void;
}

export interface HostileReport {
  seed: number;
  attackSeconds: number;
  sent: Record<string, number>;
  totalInputs: number;
  outcomes: Record<string, number>;
  findings: Finding[];
  findingsDropped: number;
  /** Lab hosts whose daemon process is gone. */
  daemonsExited: string[];
  /** The last lines of each exited daemon's log (how it died). */
  crashLogs: Record<string, string>;
  /** Lines of each manager's log about elections, disconnected peers and errors (the last 40). */
  managerLogs: Record<string, string>;
  /** GET /v1/dispatcher/stats after the attack (null if the build has no such endpoint). */
  dispatcherStats: unknown;
  writes: { attempted: number; acked: number; failed: number; lost: string[]; errors: Record<string, number> };
  leader: { before: { id: string; term: number }; after: { id: string | null; term: number }; epochs: { leader: string; term: number }[]; changes: number };
  latency: { beforeP99Ms: number; duringP99Ms: number; ratio: number; duringFailed: number };
  rss: { beforeKiB: number; peakKiB: number; afterKiB: number | null };
  service: { desired: number; running: number; converged: boolean };
  unauthOpenAtEnd: Record<string, number>;
  oldestOpenMs: number;
  attackerExit: number | null;
  /** The end of the attacker's own log (progress, its event-loop delay). */
  attackerLog: string;
}

/** One result from several attacker processes' results. */
function mergeResults(rs: AttackResult[]): AttackResult {
  const sum = (maps: Record<string, number>[]) => {
    const out: Record<string, number> = {};
    for (const m of maps) for (const [k, v] of Object.entries(m)) out[k] = (out[k] ?? 0) + v;
    return out;
  };
  return {
    tally: {
      sent: sum(rs.map((r) => r.tally.sent)),
      outcomes: sum(rs.map((r) => r.tally.outcomes)),
      findings: rs.flatMap((r) => r.tally.findings),
      findingsDropped: rs.reduce((a, r) => a + r.tally.findingsDropped, 0),
    },
    elapsedMs: Math.max(...rs.map((r) => r.elapsedMs)),
    unauthOpenAtEnd: sum(rs.map((r) => r.unauthOpenAtEnd)),
    oldestOpenMs: Math.max(...rs.map((r) => r.oldestOpenMs)),
  };
}

function logTail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

async function leaderInfo(c: ClusterLab): Promise<{ id: string; term: number; host: string }> {
  let out: { id: string; term: number; host: string } | null = null;
  await waitFor(
    async () => {
      for (const d of c.daemons.values()) {
        if (d.role !== 'manager' || d.pid === null) continue;
        const r = await httpsJson(`${d.host.ip}:2377`, 'GET', '/v1/info', undefined, {
          ca: c.ctx.admin.ca,
          key: c.ctx.admin.key,
          cert: c.ctx.admin.cert,
        }).catch(() => null);
        if (r?.status === 200 && r.body.role === 'leader') {
          out = { id: r.body.nodeId, term: Number(r.body.term), host: d.host.name };
          return true;
        }
      }
      return false;
    },
    15_000,
    'a leader',
  );
  return out!;
}

export async function runHostile(c: ClusterLab, o: HostileOptions): Promise<HostileReport> {
  const log = o.log ?? (() => {});
  const ctx = c.ctx;
  const leader = await leaderInfo(c);
  const leaderAddr = `${c.host(leader.host).ip}:2377`;
  const managers = [leaderAddr, ...[...c.daemons.values()].filter((d) => d.role === 'manager' && d.host.name !== leader.host).map((d) => `${d.host.ip}:2377`)];
  const leaderPid = c.daemons.get(leader.host)!.pid!;
  // The daemons' pids now: each must still be this process afterwards (a restart would hide a crash).
  const pids = [...c.daemons.values()].map((d) => ({ host: d.host.name, dir: d.host.dir, pid: d.pid }));
  log(`leader ${leader.host} (${leader.id}) at term ${leader.term}, pid ${leaderPid}`);

  // The honest side: a service that stays converged, and a writer on a real worker's node object.
  const worker = [...c.daemons.values()].find((d) => d.role === 'worker' && d.nodeId)!;
  const { id: serviceId } = await c.control('POST', '/v1/services', {
    spec: { name: 'steady', mode: { replicated: { replicas: o.replicas } }, task: { image: 'busybox:latest' } },
  });
  await waitFor(
    async () => (await c.control('GET', `/v1/services/${serviceId}`)).replicas.running === o.replicas,
    30_000,
    `${o.replicas} steady tasks running`,
    200,
  );
  const tasks = (await c.control('GET', `/v1/tasks?service=${serviceId}`)) as { id: string }[];

  // The attacker's identities: real worker joins, drained at once so no task is ever placed on them.
  const attackerHost = await c.lab.addHost();
  const tokens = await c.control('GET', '/v1/join-tokens');
  const workers = await joinWorkers({
    manager: leaderAddr,
    token: tokens.worker,
    caPem: ctx.admin.ca,
    count: o.workers,
    advertise: `${attackerHost.ip}:2377`,
    hostnamePrefix: 'hostile-w',
  });
  for (const w of workers) await c.control('POST', `/v1/nodes/${w.nodeId}/update`, { availability: 'drain' });
  const nodeIds = ((await c.nodes()) as { id: string }[]).map((n) => n.id);
  log(`${workers.length} hostile workers joined and drained; attacker host ${attackerHost.name} (${attackerHost.ip})`);

  const call = (method: string, path: string, body?: unknown) => c.control(method, path, body);
  const writer = new Writer(call, worker.nodeId!);
  const probe = new LatencyProbe(ctx.admin, () => leaderAddr, `/v1/nodes/${worker.nodeId}`);
  const watch = new LeaderWatch(ctx.admin, managers);
  writer.start();
  probe.start();
  watch.start();
  const rssBefore = rssKiB(leaderPid) ?? 0;
  const rss = new RssSampler(leaderPid);
  rss.start();

  let result: AttackResult | null = null;
  let attackerExit: number | null = null;
  let attackerLog = '';
  const tAttack = { start: 0, end: 0 };
  try {
    await new Promise((r) => setTimeout(r, o.baselineSeconds * 1000));
    const dir = join(attackerHost.dir, 'attack');
    mkdirSync(dir, { recursive: true });
    // Several attacker processes split the clients (one event loop cannot keep up with the handshakes
    // and generation a long run needs); process 0 keeps the plain seed, so a one-process run replays.
    const n = Math.max(1, Math.min(o.attackers ?? 1, workers.length));
    const share = (x: number, k: number) => Math.floor(x / n) + (k < x % n ? 1 : 0);
    const cfgs: AttackConfig[] = Array.from({ length: n }, (_, k) => ({
      seed: k === 0 ? o.seed : o.seed + 1_000_003 * k,
      seconds: o.seconds,
      managers,
      workers: workers.filter((_, i) => i % n === k),
      admin: ctx.admin,
      adminCtx: { nodeIds, serviceIds: [serviceId], taskIds: tasks.map((t) => t.id), maxBody: MAX_BODY },
      otherTaskIds: tasks.map((t) => t.id),
      maxPayload: MAX_PAYLOAD,
      rates: {
        ...o.rates,
        adminConns: share(o.rates.adminConns, k),
        unauthPerSec: o.rates.unauthPerSec / n,
        unauthMaxOpen: Math.ceil(o.rates.unauthMaxOpen / n),
      },
      limits: DEFAULT_SERVER_LIMITS,
      resultFile: join(dir, `result-${k}.json`),
    }));
    tAttack.start = Date.now();
    log(`attack starts: seed ${o.seed}, ${o.seconds} s, ${n} attacker process(es)`);
    const exits = await Promise.all(
      cfgs.map((cfg, k) => {
        const cfgFile = join(dir, `config-${k}.json`);
        writeFileSync(cfgFile, JSON.stringify(cfg));
        // A raised descriptor limit: the attacker holds many connections at once.
        const child = attackerHost.spawn(
          '/bin/sh',
          ['-c', `ulimit -n 65536 2>/dev/null; exec "$0" --import tsx "$1" "$2"`, process.execPath, ATTACKER, cfgFile],
          { logFile: `attacker-${k}.log`, cwd: REPO },
        );
        return new Promise<number | null>((res) => {
          const t = setTimeout(
            () => {
              if (child.pid) attackerHost.kill(child.pid, 'SIGKILL');
            },
            (o.seconds + 60) * 1000,
          );
          child.once('exit', (code) => {
            clearTimeout(t);
            res(code);
          });
        });
      }),
    );
    tAttack.end = Date.now();
    attackerExit = exits.find((e) => e !== 0) ?? 0;
    attackerLog = cfgs.map((_, k) => logTail(join(attackerHost.dir, `attacker-${k}.log`), n === 1 ? 40 : 12)).join('\n');
    const results: AttackResult[] = [];
    for (const cfg of cfgs) {
      try {
        results.push(JSON.parse(readFileSync(cfg.resultFile, 'utf8')) as AttackResult);
      } catch {
        attackerExit = attackerExit || -1; // an attacker that wrote no result failed
      }
    }
    result = results.length > 0 ? mergeResults(results) : null;
    log(`attack over (attacker exit ${attackerExit}); settling`);
    // Let the writer commit through the aftermath, then check convergence with a bound.
    await new Promise((r) => setTimeout(r, 3000));
  } finally {
    await writer.stop();
    await probe.stop();
    rss.stop();
  }
  let running = -1;
  const converged = await waitFor(
    async () => {
      running = (await c.control('GET', `/v1/services/${serviceId}`).catch(() => ({ replicas: { running: -1 } }))).replicas.running;
      return running === o.replicas;
    },
    20_000,
    'the steady service converged',
    250,
  ).then(
    () => true,
    () => false,
  );
  await watch.stop();
  // The dispatcher's own counters of what it dropped and why (absent on builds without the endpoint).
  const dispatcherStats = await c.control('GET', '/v1/dispatcher/stats').catch(() => null);
  const after = await leaderInfo(c).catch(() => null);
  let labelsError: string | null = null;
  const labels = await nodeLabels(call, worker.nodeId!).catch((e) => {
    labelsError = (e as Error).message;
    return null;
  });
  const exited = pids.filter((d) => d.pid === null || !procAlive(d.pid));
  // How each manager saw the run (elections, disconnected peers, errors): the lab is gone afterwards.
  const managerLogs = Object.fromEntries(
    [...c.daemons.values()]
      .filter((d) => d.role === 'manager')
      .map((d) => [
        d.host.name,
        logTail(join(d.host.dir, 'daemon.log'), 4000)
          .split('\n')
          .filter((l) => /elect|leader|term|violat|disconnect|error|uncaught|exceed|slow|timed? ?out/i.test(l))
          .slice(-40)
          .join('\n'),
      ]),
  );
  const daemonsExited = exited.map((d) => d.host);
  const crashLogs = Object.fromEntries(exited.map((d) => [d.host, logTail(join(d.dir, 'daemon.log'), 25)]));
  const before = probe.samples.filter((s) => s.at < tAttack.start);
  const during = probe.samples.filter((s) => s.at >= tAttack.start && s.at <= tAttack.end);
  const epochs = watch.epochs();
  const beforeP99 = percentile(before, 99);
  const duringP99 = percentile(during, 99);
  return {
    seed: o.seed,
    attackSeconds: o.seconds,
    sent: result?.tally.sent ?? {},
    totalInputs: Object.values(result?.tally.sent ?? {}).reduce((a, b) => a + b, 0),
    outcomes: result?.tally.outcomes ?? {},
    findings: result?.tally.findings ?? [],
    findingsDropped: result?.tally.findingsDropped ?? 0,
    daemonsExited,
    crashLogs,
    managerLogs,
    dispatcherStats,
    writes: {
      attempted: writer.attempted,
      acked: writer.ackedCount,
      failed: writer.failed,
      lost: labels ? writer.lost(labels) : [`every acknowledged write is unverifiable: the labels could not be read (${labelsError})`],
      errors: Object.fromEntries(writer.errors),
    },
    leader: {
      before: { id: leader.id, term: leader.term },
      after: { id: after?.id ?? null, term: after?.term ?? watch.maxTerm() },
      epochs,
      changes: Math.max(0, epochs.length - 1),
    },
    latency: { beforeP99Ms: beforeP99, duringP99Ms: duringP99, ratio: duringP99 / beforeP99, duringFailed: during.filter((s) => !s.ok).length },
    rss: { beforeKiB: rssBefore, peakKiB: rss.peakKiB, afterKiB: rssKiB(leaderPid) },
    service: { desired: o.replicas, running, converged },
    unauthOpenAtEnd: result?.unauthOpenAtEnd ?? {},
    oldestOpenMs: result?.oldestOpenMs ?? 0,
    attackerExit,
    attackerLog,
  };
}

/** The report as lines with units (the benchmark prints these; the test logs them). */
export function reportLines(r: HostileReport): string[] {
  const by = (depth: number) => {
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(r.sent)) {
      const g = k.split('/').slice(0, depth).join('/');
      out[g] = (out[g] ?? 0) + v;
    }
    return out;
  };
  const lines = [
    `seed: ${r.seed}`,
    `attack: ${r.attackSeconds} s`,
    `hostile inputs sent: ${r.totalInputs} inputs (${(r.totalInputs / r.attackSeconds).toFixed(0)} inputs/s)`,
  ];
  for (const [k, v] of Object.entries(by(2)).sort()) lines.push(`  inputs ${k}: ${v} inputs`);
  lines.push(
    `daemons exited: ${r.daemonsExited.length} (goal 0)${r.daemonsExited.length ? ` [${r.daemonsExited.join(', ')}]` : ''}`,
    `acknowledged writes lost: ${r.writes.lost.length} of ${r.writes.acked} acknowledged (goal 0); ${r.writes.failed} writes failed`,
    `leader changes: ${r.leader.changes} (goal 0); term ${r.leader.before.term} -> ${r.leader.after.term}`,
    `control-API p99 latency: ${r.latency.beforeP99Ms.toFixed(1)} ms before, ${r.latency.duringP99Ms.toFixed(1)} ms during, ratio ${r.latency.ratio.toFixed(2)}x (${r.latency.duringFailed} probes failed)`,
    `leader RSS: ${(r.rss.beforeKiB / 1024).toFixed(0)} MiB before, peak ${(r.rss.peakKiB / 1024).toFixed(0)} MiB, after ${r.rss.afterKiB === null ? 'gone' : `${(r.rss.afterKiB / 1024).toFixed(0)} MiB`}`,
    `service converged: ${r.service.converged} (${r.service.running}/${r.service.desired} running)`,
    `findings (unexpected answers): ${r.findings.length + r.findingsDropped}`,
    `unauthenticated connections still held at the end: ${Object.values(r.unauthOpenAtEnd).reduce((a, b) => a + b, 0)} (oldest ${(r.oldestOpenMs / 1000).toFixed(0)} s)`,
  );
  return lines;
}
