// One run of the real-cluster linearizability harness: fresh registers (services) on a JepsenCluster,
// concurrent clients reading, writing and compare-and-setting them through the control API of any
// manager, the nemesis injecting its seeded schedule meanwhile, then the whole history through Shoal's
// checker, key by key. The plan (faults, op choices) comes from the seed; the real cluster decides the
// rest, so runs with the same seed are alike but not identical.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ServiceSpec } from '../../api/objects.ts';
import { RegisterClient } from './client.ts';
import type { JepsenCluster } from './cluster.ts';
import { History, VersionBook, checkPerKey, type KeyVerdict } from './history.ts';
import { Nemesis } from './nemesis.ts';
import { FAULT_KINDS, OpChooser, nemesisSchedule, type FaultKind, type OpMix, type ScheduleOptions } from './schedule.ts';

export interface TrialOptions {
  seed: number;
  /** Distinguishes the registers of runs on the same cluster. */
  run: number;
  durationMs: number;
  clients: number;
  keys: number;
  mix: OpMix;
  thinkMs: readonly [number, number];
  /** A request with no answer within this time has an unknown outcome. */
  opTimeoutMs: number;
  nemesis: Omit<ScheduleOptions, 'seed' | 'durationMs'>;
  log?: (line: string) => void;
}

export interface TrialResult {
  seed: number;
  ops: number;
  counts: History['counts'];
  faults: Record<FaultKind, number>;
  /** Keys whose history the checker refuted. */
  anomalies: KeyVerdict[];
  /** Keys the checker could not decide within its budget. */
  undecided: KeyVerdict[];
  keys: number;
  /** Bookkeeping contradictions (a value read at two versions): the history cannot be trusted. */
  harnessErrors: string[];
  /** The most frequent reasons for unknown outcomes, for diagnosis. */
  unknownWhy: [string, number][];
  elapsedMs: number;
}

export async function runTrial(c: JepsenCluster, o: TrialOptions): Promise<TrialResult> {
  const log = o.log ?? (() => {});
  const t0 = performance.now();
  const now = () => Math.round((performance.now() - t0) * 1000) / 1000;
  const keys = Array.from({ length: o.keys }, (_, i) => `jepsen-r${o.run}-k${i}`);
  const managers = c.managers.map((m) => c.addr(m));
  const book = new VersionBook();
  const templates = await createRegisters(c, keys, book);
  const client = new RegisterClient(c.tls, templates, o.opTimeoutMs);
  const history = new History();
  const unknownWhy = new Map<string, number>();
  const noteUnknown = (why: string) => {
    const k = why
      .replace(/\d+\.\d+\.\d+\.\d+:\d+/g, 'ADDR')
      .replace(/\d+/g, 'N')
      .slice(0, 100);
    unknownWhy.set(k, (unknownWhy.get(k) ?? 0) + 1);
  };

  const schedule = nemesisSchedule({ ...o.nemesis, seed: o.seed, durationMs: o.durationMs });
  const nemesis = new Nemesis(c, o.seed, log);
  const start = performance.now();
  const elapsed = () => performance.now() - start;

  const nemesisLoop = async () => {
    try {
      for (const f of schedule) {
        // A slow heal (a restart on a loaded machine) delays the plan: drop what no longer fits the run.
        if (elapsed() + f.holdMs + o.nemesis.tailMs > o.durationMs) break;
        if (f.startMs > elapsed()) await sleep(f.startMs - elapsed());
        await nemesis.inject(f);
        await sleep(f.holdMs);
        await nemesis.heal();
      }
    } finally {
      await nemesis.heal();
    }
  };

  const clientLoop = async (slot: number) => {
    const chooser = new OpChooser(o.seed, slot, keys, o.mix, o.thinkMs);
    let proc = slot; // a client whose op has an unknown outcome is replaced by a new process id
    let seq = 0;
    const known = new Map<string, { value: string | null; version: number }>();
    while (elapsed() < o.durationMs) {
      const choice = chooser.next();
      const mgr = managers[chooser.manager(managers.length)]!;
      const from = known.get(choice.key);
      const kind = choice.kind === 'cas' && from === undefined ? 'read' : choice.kind;
      if (kind === 'read') {
        const id = history.invoke(proc, { kind: 'read', key: choice.key }, now());
        const r = await client.read(choice.key, mgr);
        if (r.kind === 'ok') {
          history.complete(id, { kind: 'read', value: r.value }, now());
          book.note(choice.key, r.value, r.version);
          known.set(choice.key, { value: r.value, version: r.version });
        } else {
          history.unknown(id);
          noteUnknown(`read: ${r.why}`);
        }
      } else {
        const value = `${proc}.${seq++}`;
        const id =
          kind === 'write'
            ? history.invoke(proc, { kind: 'write', key: choice.key, value }, now())
            : history.invoke(proc, { kind: 'cas', key: choice.key, from: from!.value, to: value }, now());
        const r = await client.write(choice.key, value, mgr, kind === 'cas' ? from!.version : undefined);
        const t = now();
        if (r.kind === 'ok') history.complete(id, kind === 'write' ? { kind: 'write' } : { kind: 'cas', ok: true }, t);
        else if (r.kind === 'refused') history.complete(id, { kind: 'cas', ok: false }, t);
        else {
          history.unknown(id);
          noteUnknown(`${kind}: ${r.why}`);
          proc += o.clients;
        }
        known.delete(choice.key); // the next CAS on this key starts from a fresh read
      }
      await sleep(choice.thinkMs);
    }
  };

  // A nemesis that fails (a daemon that will not restart) ends the run, but only after the clients stop.
  let nemesisError: unknown = null;
  await Promise.all([nemesisLoop().catch((e: unknown) => (nemesisError = e)), ...Array.from({ length: o.clients }, (_, i) => clientLoop(i))]);
  if (nemesisError !== null) throw nemesisError;
  const verdicts = checkPerKey(history.snapshot());
  const result: TrialResult = {
    seed: o.seed,
    ops: history.size,
    counts: history.counts,
    faults: { ...nemesis.injected },
    anomalies: verdicts.filter((v) => v.verdict === 'anomaly'),
    undecided: verdicts.filter((v) => v.verdict === 'undecided'),
    keys: verdicts.length,
    harnessErrors: book.conflicts,
    unknownWhy: [...unknownWhy.entries()].sort((a, b) => b[1] - a[1]).slice(0, 5),
    elapsedMs: Math.round(performance.now() - t0),
  };
  log(summarize(result));
  return result;
}

/**
 * Creates one service per register (no replicas, no label: the register starts absent), and waits until
 * the allocator has written its status once: from then on only the harness writes them, so each version
 * holds one value.
 */
async function createRegisters(c: JepsenCluster, keys: string[], book: VersionBook): Promise<Map<string, ServiceSpec>> {
  type Svc = { spec: ServiceSpec; version: number; status?: { endpoint?: unknown } };
  const templates = new Map<string, ServiceSpec>();
  for (const key of keys) {
    await c.lab.control('POST', '/v1/services', { spec: { name: key, mode: { replicated: { replicas: 0 } }, task: { image: 'jepsen/register:1' } } });
  }
  for (const key of keys) {
    const deadline = Date.now() + 10_000;
    let s = (await c.lab.control('GET', `/v1/services/${key}`)) as Svc;
    for (;;) {
      await sleep(200);
      const again = (await c.lab.control('GET', `/v1/services/${key}`)) as Svc;
      if (again.version === s.version && again.status?.endpoint !== undefined) break;
      if (Date.now() > deadline) throw new Error(`register ${key}: its service kept changing (version ${s.version} → ${again.version}) or was never allocated`);
      s = again;
    }
    templates.set(key, s.spec);
    book.note(key, null, s.version);
  }
  return templates;
}

export function summarize(r: TrialResult): string {
  const k = (x: { ok: number; fail: number; unknown: number }) => `${x.ok} ok/${x.fail} failed/${x.unknown} unknown`;
  const faults = FAULT_KINDS.map((f) => `${f} ${r.faults[f]}`).join(', ');
  return (
    `seed ${r.seed}: ${r.ops} ops in ${(r.elapsedMs / 1000).toFixed(1)} s (read ${k(r.counts.read)}; write ${k(r.counts.write)}; cas ${k(r.counts.cas)}); ` +
    `faults: ${faults}; keys ${r.keys}, anomalies ${r.anomalies.length}, undecided ${r.undecided.length}` +
    (r.harnessErrors.length ? `; HARNESS ERRORS: ${r.harnessErrors.join('; ')}` : '')
  );
}

/** Why outcomes were unknown, most frequent first (timeouts, 503s by code). */
export function unknownReasons(r: TrialResult): string {
  return r.unknownWhy.map(([why, n]) => `${n}× ${why}`).join('; ');
}

/** The lines of an anomaly worth printing: the checker's message and the timeline around the blocked op. */
export function describeAnomaly(v: KeyVerdict, context = 12): string {
  const lines = (v.timeline ?? '').split('\n');
  const blocked = /op #(\d+)/.exec(v.message ?? '')?.[1];
  const at = blocked === undefined ? -1 : lines.findIndex((l) => l.includes(`#${blocked} `));
  const window = at < 0 ? lines.slice(0, 2 * context) : lines.slice(Math.max(0, at - context), at + context);
  return `${v.message}\n${window.join('\n')}`;
}
