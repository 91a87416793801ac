// The attacker process: runs the hostile worker, admin and unauthenticated clients together for a set
// time and writes what it sent and saw to a result file. It runs in a lab host of its own (another
// source address than the test's writer and probes, as a real attacker would be, and another event
// loop, so the attack's own CPU does not distort the latencies the test measures).
//   node --import tsx test/hostile/attacker.ts <config.json>
import { readFileSync, writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { AdminContext } from './generate.ts';
import { driveAdmin, type AdminCreds } from './admin-client.ts';
import { Rng } from './prng.ts';
import { Tally, sentByGroup, type TallyData } from './tally.ts';
import { driveUnauth, type HoldLimits } from './unauth-client.ts';
import { driveWorker, type WorkerCreds } from './worker-client.ts';

export interface AttackRates {
  /** Hostile dispatcher inputs per second, per worker connection. */
  workerPerConn: number;
  adminConns: number;
  /** Hostile control-API requests per second, per admin connection. */
  adminPerConn: number;
  /** New unauthenticated connections per second. */
  unauthPerSec: number;
  unauthMaxOpen: number;
}

export interface AttackConfig {
  seed: number;
  seconds: number;
  /** Every manager's secure address, the leader first. */
  managers: string[];
  workers: WorkerCreds[];
  admin: AdminCreds;
  adminCtx: AdminContext;
  otherTaskIds: string[];
  maxPayload: number;
  rates: AttackRates;
  /** The managers' declared connection time limits (stalled connections held past them are findings). */
  limits: HoldLimits;
  resultFile: string;
}

export interface AttackResult {
  tally: TallyData;
  elapsedMs: number;
  unauthOpenAtEnd: Record<string, number>;
  oldestOpenMs: number;
}

export async function attack(cfg: AttackConfig, log: (l: string) => void): Promise<AttackResult> {
  const tally = new Tally();
  const t0 = Date.now();
  const stopAt = t0 + cfg.seconds * 1000;
  const stop = () => Date.now() >= stopAt;
  // One stream of randomness per client, derived from the seed, so each replays independently.
  let stream = 0;
  const rng = () => new Rng((cfg.seed * 1000 + ++stream) >>> 0);
  // The attacker's own event-loop delay: a slow attacker, not a strong manager, may explain a low rate.
  const lag = monitorEventLoopDelay({ resolution: 20 });
  lag.enable();
  const progress = setInterval(() => {
    const fam = sentByGroup(Object.fromEntries(tally.sent));
    log(
      `attack: ${Math.round((Date.now() - t0) / 1000)} s, ${tally.total()} inputs ${JSON.stringify(fam)}, ${tally.findings.length} findings, attacker loop delay p99 ${(lag.percentile(99) / 1e6).toFixed(0)} ms`,
    );
    lag.reset();
  }, 5000);
  try {
    const leader = cfg.managers[0]!;
    const workers = cfg.workers.map((creds) =>
      driveWorker({
        managers: cfg.managers,
        creds,
        otherTaskIds: () => cfg.otherTaskIds,
        maxPayload: cfg.maxPayload,
        rng: rng(),
        ratePerSec: cfg.rates.workerPerConn,
        tally,
        stop,
        log,
      }),
    );
    const admins = Array.from({ length: cfg.rates.adminConns }, () =>
      driveAdmin({ target: () => leader, creds: cfg.admin, ctx: () => cfg.adminCtx, rng: rng(), ratePerSec: cfg.rates.adminPerConn, tally, stop }),
    );
    const unauth = driveUnauth({
      managers: cfg.managers,
      rng: rng(),
      ratePerSec: cfg.rates.unauthPerSec,
      maxOpen: cfg.rates.unauthMaxOpen,
      tally,
      stop,
      limits: cfg.limits,
    });
    await Promise.all([...workers, ...admins]);
    const u = await unauth;
    return { tally: tally.toJSON(), elapsedMs: Date.now() - t0, unauthOpenAtEnd: u.openAtEnd, oldestOpenMs: u.oldestOpenMs };
  } finally {
    clearInterval(progress);
    lag.disable();
  }
}

if (process.argv[1]?.endsWith('attacker.ts') && process.argv[2]) {
  const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8')) as AttackConfig;
  const log = (l: string) => console.log(`${new Date().toISOString()} ${l}`);
  // The attacker itself must survive what it provokes (resets, EPIPE): note, never crash.
  process.on('uncaughtException', (e) => log(`attacker: uncaught ${e.stack ?? e}`));
  attack(cfg, log).then(
    (r) => {
      writeFileSync(cfg.resultFile, JSON.stringify(r));
      log(`attack done: ${r.tally.findings.length} findings, ${Object.values(r.tally.sent).reduce((a, b) => a + b, 0)} inputs`);
      process.exit(0);
    },
    (e) => {
      log(`attacker failed: ${(e as Error).stack ?? e}`);
      process.exit(1);
    },
  );
}
