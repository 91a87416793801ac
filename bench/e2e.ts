// `npm run bench:e2e`: the end-to-end figures of a small real cluster against Docker Swarm 20.10's. A lab of
// 3 managers + 2 workers (the managers also run tasks), each a real `shoal daemon` with the engine executor
// in its own lab host, running real containers of the demo web image (busybox httpd). Everything is done
// the way a user does it: `bin/shoal` with SHOAL_CONTEXT for the commands, the control API for watching.
// Each figure runs from the command's start (or the kill -9) to the condition, polled every 50–100 ms:
//   1. service create --replicas 30 -p 8080:80 → 30 running
//   2. service scale web=90 → 90 running
//   3. service update --env-add (parallelism 10, delay 0s, monitor 1s) → update completed, 90 on the new spec
//   4. kill -9 a worker's daemon → node Down → 90 tasks running again on the live nodes
//   5. kill -9 the leader's daemon → new leader → first committed write
//   6. routing mesh: lab hosts answering HTTP on 8080 (N of 5) and the time from create until all answer
// `--runs N` (default 1) repeats on a fresh lab each time and prints medians. A step that fails prints
// `FAILED: reason` in its row and the others still run.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { control, localCall } from '../client/context.ts';
import { demoWebImage } from '../worker/images/build.ts';
import { ClusterLab, cleanupLabCgroups, sleep } from '../lab/cluster-lab.ts';
import { Lab, cleanupOnExit } from '../lab/lab.ts';

const REPO = resolve(fileURLToPath(new URL('..', import.meta.url)));
const SHOAL = join(REPO, 'bin', 'shoal');
const NAME = `e${process.pid % 100000}`;
const IMAGE = 'shoal/demo-web:1';
const SVC = 'web';
const PORT = 8080;
const STEP_TIMEOUT_MS = 120_000;
/** The rolling update gets longer: stop-first with a 10 s grace period for a task that ignores SIGTERM
 *  costs ≥ 10 s a slot, so 9 rounds of 10 cannot fit in 120 s whatever the orchestrator does. */
const UPDATE_TIMEOUT_MS = 300_000;
const MANAGERS = 3;
const WORKERS = 2;
const HOSTS = MANAGERS + WORKERS;

function parseRuns(argv: string[]): number {
  let runs = 1;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = a === '--runs' ? argv[++i] : a.startsWith('--runs=') ? a.slice(7) : undefined;
    if (a === '--runs' || a.startsWith('--runs=')) {
      runs = Number(v);
      if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs needs a positive integer (got ${JSON.stringify(v)})`);
    } else if (a === '--help' || a === '-h') {
      console.log('usage: npm run bench:e2e -- [--runs N]');
      process.exit(0);
    } else throw new Error(`unknown argument ${JSON.stringify(a)} (usage: bench/e2e.ts [--runs N])`);
  }
  return runs;
}

// ------------------------------------------------------------------------------------------ figures

type Key = 'create' | 'scale' | 'update' | 'workerDown' | 'workerRecovered' | 'leaderElected' | 'leaderWrite' | 'meshHosts' | 'meshAll';

interface Row {
  key: Key;
  step: string;
  /** Docker Swarm 20.10 on this kind of machine (from the issue); null: not applicable. */
  docker: [number, number] | null;
  dockerText: string;
  unit: 's' | 'hosts';
}

const ROWS: Row[] = [
  { key: 'create', step: '1. create 30 replicas → 30 running', docker: [6.1, 7.0], dockerText: '6.1–7.0', unit: 's' },
  { key: 'scale', step: '2. scale 30 → 90 → 90 running', docker: [12.5, 13.3], dockerText: '12.5–13.3', unit: 's' },
  { key: 'update', step: '3. rolling update of 90 (par. 10, monitor 1s)', docker: [43.5, 45.5], dockerText: '43.5–45.5', unit: 's' },
  { key: 'workerDown', step: '4a. kill -9 worker → node Down', docker: [11.7, 15.1], dockerText: '11.7–15.1', unit: 's' },
  { key: 'workerRecovered', step: '4b. kill -9 worker → 90 running again', docker: [20.6, 23.5], dockerText: '20.6–23.5', unit: 's' },
  { key: 'leaderElected', step: '5a. kill -9 leader → new leader', docker: [11.5, 12.6], dockerText: '11.5–12.6', unit: 's' },
  { key: 'leaderWrite', step: '5b. kill -9 leader → first write', docker: [11.6, 12.6], dockerText: '11.6–12.6', unit: 's' },
  { key: 'meshHosts', step: `6a. routing mesh: hosts answering :${PORT}`, docker: null, dockerText: `0 of ${HOSTS}`, unit: 'hosts' },
  { key: 'meshAll', step: `6b. create → all ${HOSTS} hosts answer :${PORT}`, docker: null, dockerText: 'never', unit: 's' },
];

/** Per figure: the values of the runs that measured it, and the failures of the others. */
type Results = Record<Key, { values: number[]; failures: string[] }>;

class StepError extends Error {}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const secs = (ms: number) => (ms / 1000).toFixed(2);
const oneLine = (s: string) => s.replace(/\s+/g, ' ').trim().slice(0, 300);

// ------------------------------------------------------------------------------------------ helpers

/** Runs `bin/shoal ARGS` as a user would; resolves with its output, throws (naming the step) if it fails. */
function shoal(ctxPath: string, step: string, ...args: string[]): Promise<string> {
  return new Promise((res, rej) => {
    execFile(SHOAL, args, { env: { ...process.env, SHOAL_CONTEXT: ctxPath }, timeout: 60_000 }, (e, out, err) => {
      if (e)
        rej(
          new StepError(`${step}: \`shoal ${args.join(' ')}\` failed (${(e as { code?: unknown }).code ?? e.message}): ${oneLine(String(err) || String(out))}`),
        );
      else res(String(out));
    });
  });
}

/** Polls `cond` every `everyMs` until it returns true; throws a StepError naming the step after the timeout. */
async function until(step: string, cond: () => Promise<boolean>, everyMs: number, timeoutMs = STEP_TIMEOUT_MS, progress?: () => string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let lastErr = '';
  for (;;) {
    try {
      if (await cond()) return;
    } catch (e) {
      if (e instanceof StepError) throw e;
      lastErr = (e as Error).message;
    }
    if (performance.now() > deadline) {
      const p = progress?.();
      throw new StepError(`${step}: not reached within ${timeoutMs / 1000} s${p ? ` (${p})` : ''}${lastErr ? `; last error: ${oneLine(lastErr)}` : ''}`);
    }
    await sleep(everyMs);
  }
}

/** One HTTP GET; true when the demo page answered. */
function answers(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((res) => {
    const req = request({ host, port, path: '/', timeout: timeoutMs, agent: false }, (r) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (c: string) => (body += c));
      r.on('end', () => res(r.statusCode === 200 && body.includes('Hello from')));
      r.on('error', () => res(false));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => res(false));
    req.end();
  });
}

/**
 * Probes every lab host on the published port from `t0` on, each every 100 ms, until all answered or the
 * time is up. Resolves with the hosts that answered and the time (from t0) the last of them first did.
 */
async function probeMesh(ips: string[], t0: number, timeoutMs: number): Promise<{ answered: number; allMs: number | null; missing: string[] }> {
  const first = new Map<string, number>();
  const deadline = t0 + timeoutMs;
  await Promise.all(
    ips.map(async (ip) => {
      while (performance.now() < deadline) {
        if (await answers(ip, PORT)) {
          first.set(ip, performance.now() - t0);
          return;
        }
        await sleep(100);
      }
    }),
  );
  return { answered: first.size, allMs: first.size === ips.length ? Math.max(...first.values()) : null, missing: ips.filter((ip) => !first.has(ip)) };
}

/**
 * After the rolling update: how the replaced tasks ended (exit 137 = killed after the stop grace period)
 * and, per node, how long the new tasks took from creation to running. Information only.
 */
async function updateDiagnostics(lab: ClusterLab, note: (s: string) => void): Promise<void> {
  const svc = await lab.control('GET', `/v1/services/${SVC}`);
  const all = (await lab.control('GET', `/v1/tasks?service=${encodeURIComponent(svc.id)}&all=1`)) as any[];
  const names = new Map<string, string>((await lab.nodes()).map((n: any) => [n.id, n.description?.hostname ?? n.id]));
  const old = all.filter((x) => x.specVersion !== undefined && x.specVersion < svc.specVersion && x.desiredState === 'shutdown');
  const killed = old.filter((x) => x.status.exitCode === 137).length;
  const fresh = all.filter((x) => x.specVersion === svc.specVersion && x.status.state === 'running');
  const byNode = new Map<string, number[]>();
  for (const x of fresh) {
    const ms = Date.parse(x.status.timestamp) - Date.parse(x.createdAt);
    const k = names.get(x.nodeId) ?? String(x.nodeId);
    byNode.set(k, [...(byNode.get(k) ?? []), ms]);
  }
  const lat = [...byNode.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k} ${v.length} tasks, median ${secs(median(v))} s, max ${secs(Math.max(...v))} s`);
  note(
    `update detail: ${killed} of ${old.length} replaced tasks exited 137 (killed after the stop grace period); new task created → running by node: ${lat.join('; ')}`,
  );
}

// ------------------------------------------------------------------------------------------ one run

interface Watch {
  svc: any;
  tasks: any[];
}

async function run(r: number, runs: number, out: Results, setLab: (c: ClusterLab | null) => void): Promise<void> {
  const tag = `run ${r + 1}/${runs}`;
  const note = (s: string) => console.log(`${tag}: ${s}`);
  const record = (key: Key, v: number) => out[key].values.push(v);
  const fail = (keys: Key[], e: unknown) => {
    const msg = oneLine((e as Error).message ?? String(e));
    for (const k of keys) out[k].failures.push(msg);
    note(`FAILED: ${msg}`);
  };

  const unhook = cleanupOnExit(NAME);
  const tmp = mkdtempSync(join(tmpdir(), 'shoal-e2e-'));
  let c: ClusterLab | null = null;
  try {
    let t = performance.now();
    c = await ClusterLab.up({ name: NAME, managers: MANAGERS, workers: WORKERS, executor: 'engine' });
    setLab(c);
    const lab = c;
    const ctx = lab.ctx;
    const ips = lab.lab.hosts.map((h) => h.ip!);
    note(
      `lab of ${MANAGERS} managers + ${WORKERS} workers up in ${secs(performance.now() - t)} s (${lab.lab.hosts.map((h) => `${h.name}=${h.ip}`).join(' ')})`,
    );
    // The demo image goes to one host, as `shoal lab up` does; the cluster hands it to the others.
    const archive = join(tmp, 'demo-web.tar');
    writeFileSync(archive, demoWebImage(IMAGE).archive);
    await localCall(lab.stateDir('h1'), 'POST', '/images/load', { path: archive });

    const cli = (step: string, ...args: string[]) => shoal(lab.contextPath, step, ...args);
    const watch = async (): Promise<Watch> => {
      const svc = await lab.control('GET', `/v1/services/${SVC}`);
      const tasks = (await lab.control('GET', `/v1/tasks?service=${encodeURIComponent(svc.id)}`)) as any[];
      return { svc, tasks };
    };
    const running = (w: Watch, opts: { onVersion?: boolean; excludeNode?: string } = {}) =>
      w.tasks.filter(
        (x) =>
          x.status.state === 'running' &&
          x.desiredState === 'running' &&
          (!opts.onVersion || x.specVersion === w.svc.specVersion) &&
          (!opts.excludeNode || x.nodeId !== opts.excludeNode),
      ).length;
    let last = '';

    // Baseline: what starting the CLI costs (a read-only command), reported next to the figures.
    t = performance.now();
    await cli('CLI baseline', 'node', 'ls').catch(() => '');
    note(`CLI round trip (\`shoal node ls\`, includes starting node and the compiled CLI): ${secs(performance.now() - t)} s`);

    // 1 + 6: create with a published port; the mesh is probed from the command's start.
    let mesh: Promise<{ answered: number; allMs: number | null; missing: string[] }> | null = null;
    try {
      t = performance.now();
      const t0 = t;
      mesh = probeMesh(ips, t0, STEP_TIMEOUT_MS);
      await cli('create', 'service', 'create', '--detach', '--name', SVC, '--replicas', '30', '-p', `${PORT}:80`, IMAGE);
      await until(
        'create 30 replicas',
        async () => {
          const s = await lab.control('GET', `/v1/services/${SVC}`);
          last = `${s.replicas.running}/30 running`;
          return s.replicas.running >= 30;
        },
        50,
        STEP_TIMEOUT_MS,
        () => last,
      );
      record('create', performance.now() - t0);
      note(`create 30 replicas → all running: ${secs(performance.now() - t0)} s`);
    } catch (e) {
      fail(['create'], e);
    }
    if (mesh) {
      const m = await mesh;
      record('meshHosts', m.answered);
      if (m.allMs !== null) {
        record('meshAll', m.allMs);
        note(`routing mesh: ${m.answered} of ${HOSTS} hosts answer on :${PORT}, all of them ${secs(m.allMs)} s after create`);
      } else {
        fail(
          ['meshAll'],
          new StepError(
            `routing mesh: only ${m.answered} of ${HOSTS} hosts answered on :${PORT} within ${STEP_TIMEOUT_MS / 1000} s (not: ${m.missing.join(', ')})`,
          ),
        );
      }
    }

    // 2. scale 30 → 90
    try {
      t = performance.now();
      await cli('scale', 'service', 'scale', '--detach', `${SVC}=90`);
      await until(
        'scale 30 → 90',
        async () => {
          const s = await lab.control('GET', `/v1/services/${SVC}`);
          last = `${s.replicas.running}/90 running`;
          return s.replicas.running >= 90;
        },
        50,
        STEP_TIMEOUT_MS,
        () => last,
      );
      record('scale', performance.now() - t);
      note(`scale 30 → 90 → all running: ${secs(performance.now() - t)} s`);
    } catch (e) {
      fail(['scale'], e);
    }

    // 3. rolling update of the 90
    try {
      t = performance.now();
      await cli(
        'rolling update',
        'service',
        'update',
        '--detach',
        '--env-add',
        `V=${r + 2}`,
        '--update-parallelism',
        '10',
        '--update-delay',
        '0s',
        '--update-monitor',
        '1s',
        SVC,
      );
      await until(
        'rolling update of 90',
        async () => {
          const w = await watch();
          const us = w.svc.updateStatus?.state as string | undefined;
          last = `update ${us ?? 'not started'}, ${running(w, { onVersion: true })}/90 running the new spec (v${w.svc.specVersion})`;
          if (us === 'paused' || us === 'rollback_started' || us === 'rollback_paused' || us === 'rollback_completed')
            throw new StepError(`rolling update of 90: update ${us}: ${w.svc.updateStatus.message}`);
          return us === 'completed' && running(w, { onVersion: true }) >= 90;
        },
        100,
        UPDATE_TIMEOUT_MS,
        () => last,
      );
      record('update', performance.now() - t);
      note(`rolling update of 90 → completed: ${secs(performance.now() - t)} s`);
      // Each stopped task first left every node's load balancers (manager/dispatcher/drain.ts): what that held.
      const drain = ((await lab.control('GET', '/v1/dispatcher/stats')) as { drain?: { released: Record<string, number>; heldMs: number } }).drain;
      if (drain) {
        const held = Object.values(drain.released).reduce((a, b) => a + b, 0);
        note(
          `stop drain so far: ${held} stops held, mean ${(drain.heldMs / Math.max(1, held)).toFixed(0)} ms; released by the 2 s deadline: ${drain.released.deadline ?? 0}`,
        );
      }
    } catch (e) {
      fail(['update'], e);
    }
    await updateDiagnostics(lab, note).catch((e) => note(`(note) update diagnostics: ${oneLine((e as Error).message)}`));
    // Failure steps start from a settled service (not timed): an update still rolling would count as lost tasks.
    await until(
      'settle before the failure steps',
      async () => {
        const w = await watch();
        last = `update ${w.svc.updateStatus?.state ?? 'none'}, ${running(w)}/90 running`;
        return w.svc.updateStatus?.state !== 'updating' && running(w) >= 90;
      },
      250,
      STEP_TIMEOUT_MS,
      () => last,
    ).catch((e) => note(`(note) ${oneLine((e as Error).message)}; the failure steps start anyway`));

    // 4. kill -9 a worker's daemon
    let nodes = await lab.nodes().catch(() => [] as any[]);
    const victim = lab.lab.hosts[MANAGERS + (r % WORKERS)]!.name;
    const victimId = nodes.find((n) => n.description?.hostname === victim)?.id as string | undefined;
    try {
      if (!victimId) throw new StepError(`kill -9 worker: node ${victim} not found in \`node ls\``);
      t = performance.now();
      lab.killDaemon(victim);
      let downMs: number | null = null;
      await until(
        `kill -9 worker ${victim} → node Down`,
        async () => {
          const n = (await lab.nodes()).find((x) => x.id === victimId);
          last = `${victim} is ${n?.status?.state ?? 'missing'}`;
          return n?.status?.state === 'down';
        },
        50,
        STEP_TIMEOUT_MS,
        () => last,
      ).then(
        () => {
          downMs = performance.now() - t;
          record('workerDown', downMs);
          note(`kill -9 ${victim}'s daemon → node Down: ${secs(downMs)} s`);
        },
        (e) => fail(['workerDown'], e),
      );
      await until(
        `kill -9 worker ${victim} → 90 running again`,
        async () => {
          const w = await watch();
          last = `${running(w, { excludeNode: victimId })}/90 running on live nodes`;
          return running(w, { excludeNode: victimId }) >= 90;
        },
        100,
        STEP_TIMEOUT_MS,
        () => last,
      );
      record('workerRecovered', performance.now() - t);
      note(`kill -9 ${victim}'s daemon → 90 running again: ${secs(performance.now() - t)} s`);
    } catch (e) {
      if (!victimId) fail(['workerDown', 'workerRecovered'], e);
      else fail(['workerRecovered'], e);
    }
    // Bring the worker back (not timed) so the leader failover runs on a whole cluster.
    try {
      await lab.startDaemon(victim);
      await lab.waitReady(HOSTS, 60_000);
    } catch (e) {
      note(`(note) restarting ${victim}'s daemon: ${oneLine((e as Error).message)}`);
    }

    // 5. kill -9 the leader's daemon
    nodes = await lab.nodes().catch(() => [] as any[]);
    const leader = nodes.find((n) => n.managerStatus?.leader)?.description?.hostname as string | undefined;
    try {
      if (!leader) throw new StepError('kill -9 leader: no leader in `node ls`');
      const survivors = lab.lab.hosts
        .slice(0, MANAGERS)
        .filter((h) => h.name !== leader)
        .map((h) => `${h.ip}:2377`);
      const writeTarget = lab.lab.hosts[MANAGERS]!.name;
      t = performance.now();
      lab.killDaemon(leader);
      const elected = until(
        `kill -9 leader ${leader} → new leader`,
        async () => {
          for (const m of survivors) {
            const info = await control<{ role?: string }>(ctx, 'GET', '/v1/info', undefined, m).catch(() => null);
            if (info?.role === 'leader') return true;
          }
          return false;
        },
        50,
      ).then(
        () => {
          record('leaderElected', performance.now() - t);
          note(`kill -9 leader ${leader}'s daemon → new leader: ${secs(performance.now() - t)} s`);
        },
        (e) => fail(['leaderElected'], e),
      );
      // The first write a user gets through (the CLI's client: it fails over between managers by itself).
      const wrote = until(
        `kill -9 leader ${leader} → first write`,
        async () => {
          await lab.control('POST', `/v1/nodes/${writeTarget}/update`, { labelAdd: { e2e: String(r) } });
          return true;
        },
        50,
      ).then(
        () => {
          record('leaderWrite', performance.now() - t);
          note(`kill -9 leader ${leader}'s daemon → first committed write: ${secs(performance.now() - t)} s`);
        },
        (e) => fail(['leaderWrite'], e),
      );
      await Promise.all([elected, wrote]);
    } catch (e) {
      fail(['leaderElected', 'leaderWrite'], e);
    }
    if (leader) {
      try {
        await lab.startDaemon(leader);
        await lab.waitReady(HOSTS, 60_000);
        const m = await probeMesh(ips, performance.now(), 15_000);
        note(`after the failures and restarts: ${m.answered} of ${HOSTS} hosts answer on :${PORT}`);
      } catch (e) {
        note(`(note) restarting ${leader}'s daemon: ${oneLine((e as Error).message)}`);
      }
    }
  } catch (e) {
    // The lab itself (or something outside the steps) failed: every figure not measured in this run fails.
    const measured = new Set(ROWS.filter((row) => out[row.key].values.length + out[row.key].failures.length > r).map((row) => row.key));
    fail(
      ROWS.map((row) => row.key).filter((k) => !measured.has(k)),
      e,
    );
  } finally {
    setLab(null);
    if (c) await c.down().catch((e) => note(`lab down: ${(e as Error).message}`));
    // Sweep by name too: lab down lists the namespaces before it stops the daemons, so a task namespace a
    // daemon created meanwhile would stay behind (seen once: five sl-<lab>-h5-t-* namespaces).
    await Lab.downByName(NAME, { force: true }).then(
      (rep) =>
        rep.namespaces.length + rep.killed.length > 0
          ? note(`swept leftovers after lab down: ${rep.namespaces.length} namespace(s), ${rep.killed.length} process(es)`)
          : undefined,
      (e) => note(`leftover sweep: ${(e as Error).message}`),
    );
    await cleanupLabCgroups(NAME).catch(() => {});
    unhook();
    rmSync(tmp, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------------------------------ report

function report(out: Results, runs: number): void {
  const cells: string[][] = [['step', 'Shoal (s)', 'Docker Swarm 20.10 (s)', "ratio vs Docker's best", 'target (≤ half of Docker)']];
  const lines: string[] = [];
  for (const row of ROWS) {
    const { values, failures } = out[row.key];
    const ok = values.length > 0;
    const med = median(values);
    const partial = ok && failures.length > 0 ? ` (${failures.length} of ${runs} runs failed)` : '';
    let shoalCell: string;
    let ratio = '';
    let target: string;
    if (row.unit === 'hosts') {
      shoalCell = ok ? `${Math.round(med)} of ${HOSTS}` : `FAILED: ${failures[0]}`;
      target = `${HOSTS} of ${HOSTS}${ok ? (Math.round(med) >= HOSTS ? ' ✓' : ' ✗') : ''}`;
      ratio = 'n/a';
    } else if (row.docker) {
      const limit = row.docker[0] / 2;
      shoalCell = ok ? (med / 1000).toFixed(2) + partial : `FAILED: ${failures[0]}`;
      ratio = ok ? `${(med / 1000 / row.docker[0]).toFixed(2)}×` : '';
      target = `≤ ${limit.toFixed(2)}${ok ? (med / 1000 <= limit ? ' ✓' : ' ✗') : ''}`;
    } else {
      shoalCell = ok ? (med / 1000).toFixed(2) + partial : `FAILED: ${failures[0]}`;
      ratio = 'n/a';
      target = 'all hosts answer';
    }
    cells.push([row.step, shoalCell, row.dockerText, ratio, target]);
    // One line per figure, with units.
    const label = row.step.replace(/^\S+\s/, '');
    if (!ok) lines.push(`${label}: FAILED: ${failures[0]}`);
    else if (row.unit === 'hosts')
      lines.push(`${label}: ${Math.round(med)} of ${HOSTS} hosts (Docker Swarm 20.10: ${row.dockerText} hosts; its routing mesh needs IPVS)`);
    else if (row.docker)
      lines.push(
        `${label} median: ${(med / 1000).toFixed(2)} s (Docker Swarm 20.10: ${row.dockerText} s; target <= ${(row.docker[0] / 2).toFixed(2)} s)${partial}`,
      );
    else lines.push(`${label} median: ${(med / 1000).toFixed(2)} s${partial}`);
  }
  // Plain-text table: the step column may hold FAILED reasons, so long cells are left as they are.
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((row) => (row[i]!.length > 60 ? 0 : row[i]!.length))));
  const fmtRow = (row: string[]) =>
    row
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join(' | ')
      .trimEnd();
  console.log('');
  console.log(fmtRow(cells[0]!));
  console.log(widths.map((w) => '-'.repeat(w)).join('-|-'));
  for (const row of cells.slice(1)) console.log(fmtRow(row));
  console.log('');
  for (const l of lines) console.log(l);
  console.log(`runs: ${runs} (${MANAGERS} managers + ${WORKERS} workers, all running tasks, engine executor; figures are medians)`);
}

async function main(): Promise<void> {
  let runs: number;
  try {
    runs = parseRuns(process.argv.slice(2));
  } catch (e) {
    console.error(`bench:e2e: ${(e as Error).message}`);
    process.exitCode = 2;
    return;
  }
  const out = Object.fromEntries(ROWS.map((row) => [row.key, { values: [], failures: [] }])) as unknown as Results;
  let current: ClusterLab | null = null;
  let interrupted = false;
  // SIGINT/SIGTERM: cleanupOnExit's hook tears the lab's processes and namespaces down (synchronously);
  // this one then runs the lab's own teardown (idempotent; it also removes the task cgroups) and exits.
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\nbench:e2e: ${sig}, taking the lab down\n`);
    const c = current;
    // Deferred, so that the exit hook's synchronous teardown (it runs after this listener) goes first.
    setImmediate(() => {
      void (c ? c.down() : cleanupLabCgroups(NAME)).catch(() => {}).finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  for (let r = 0; r < runs; r++) await run(r, runs, out, (c) => (current = c));
  report(out, runs);
  if (ROWS.some((row) => out[row.key].values.length === 0)) process.exitCode = 1;
}

main().catch((e) => {
  console.error(`bench:e2e failed: ${(e as Error).stack ?? e}`);
  process.exitCode = 1;
});
