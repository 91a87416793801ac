// `npm run bench:raft`: three Raft members in three OS processes (bench/raft-member.ts), real SQLite
// storage with fsync in temp dirs, real mutual-TLS WebSockets on 127.0.0.1, production timings
// (heartbeat 100 ms, election 1000 ms + up to 500 ms jitter). Prints one figure per line with units and
// the target next to it:
//   a) sequential single-client commit latency (propose → applied on the leader), 100 B entries
//   b) pipelined throughput with 1 KiB entries and many outstanding proposals, plus its latency
//   c) failover after SIGKILL of the leader process: time to a new leader and to the first committed
//      write, over several rounds (the killed member is restarted from its directory in between)
//   d) baselines: raw fdatasync of a 100 B write, WsRaftTransport mTLS round trip, commit/fsync ratio
// Cleans up after itself (kills only its own children, by pid; removes its temp dirs) and exits on its own.
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { WsRaftTransport } from '../manager/raft/transport-ws.ts';
import type { Message } from '../manager/raft/types.ts';
import { makeTestCa } from '../test/helpers/pki.ts';
import type { TestCa } from '../test/helpers/pki.ts';
import type { FromMember, ToMember } from './raft-member.ts';
import { summarize, type LatencySummary } from './stats.ts';
import { compiledEntry } from '../lab/compiled.ts';

const WATCHDOG_MS = 160_000;
const SEQ = { warmup: 500, count: 3000, size: 100 };
const PIPE = { warmupMs: 500, ms: 3000, size: 1024, outstanding: 512 };
const FAILOVER_ROUNDS = Number(process.env.RAFT_BENCH_FAILOVER_ROUNDS ?? 4);
/** Extra RaftNode options for experiments, as JSON (e.g. '{"leaderSendBeforeSync":false}'). */
const NODE_OPTIONS = JSON.parse(process.env.RAFT_BENCH_NODE_OPTIONS ?? '{}') as Record<string, number | boolean>;
const TARGET = { p50: 1, p99: 5, tput: 20_000, failover: 2000 };

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-bench-raft-'));
const children = new Set<ChildProcess>();

function cleanup(): void {
  for (const c of children) {
    if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  children.clear();
  fs.rmSync(root, { recursive: true, force: true });
}

const watchdog = setTimeout(() => {
  console.error(`bench: watchdog fired after ${WATCHDOG_MS / 1000} s, aborting`);
  cleanup();
  process.exit(1);
}, WATCHDOG_MS);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });
}

/** Same time base as the members: wall-clock origin + monotonic high-resolution offset. */
function clock(): number {
  return performance.timeOrigin + performance.now();
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const ms = (v: number) => `${v.toFixed(2)} ms`;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const verdict = (ok: boolean) => (ok ? 'OK' : 'MISSED');

// ---------------------------------------------------------------------------------------------------------
// Members

type WithoutReq<T> = T extends unknown ? Omit<T, 'req'> : never;

class Member {
  child: ChildProcess;
  port = 0;
  alive = true;
  private seq = 0;
  private waiting = new Map<number, (m: FromMember) => void>();
  private once: Array<{ t: FromMember['t']; fn: (m: FromMember) => void }> = [];
  leaderEvents: Array<Extract<FromMember, { t: 'leader' }>> = [];

  constructor(
    readonly id: string,
    readonly dir: string,
    /** Encryption at rest: the member's storage seals entries and snapshots. */
    readonly encrypt = false,
  ) {
    this.child = this.spawn();
  }

  private spawn(): ChildProcess {
    const child = fork(compiledEntry('bench/raft-member'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.add(child);
    this.alive = true;
    child.on('message', (m: FromMember) => this.onMessage(m));
    child.on('exit', () => {
      this.alive = false;
      children.delete(child);
    });
    return child;
  }

  respawn(): void {
    this.waiting.clear();
    this.once = [];
    this.child = this.spawn();
  }

  private onMessage(m: FromMember): void {
    if (m.t === 'error') {
      console.error(`bench: member ${this.id}: ${m.message}`);
      return;
    }
    if (m.t === 'leader') this.leaderEvents.push(m);
    if ('req' in m) {
      const w = this.waiting.get(m.req);
      if (w) {
        this.waiting.delete(m.req);
        w(m);
      }
      return;
    }
    const i = this.once.findIndex((o) => o.t === m.t);
    if (i >= 0) this.once.splice(i, 1)[0]!.fn(m);
  }

  post(m: ToMember): void {
    if (this.alive) this.child.send(m);
  }

  expect<T extends FromMember['t']>(t: T, timeoutMs = 30_000): Promise<Extract<FromMember, { t: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`member ${this.id}: no '${t}' within ${timeoutMs} ms`)), timeoutMs);
      this.once.push({
        t,
        fn: (m) => {
          clearTimeout(timer);
          resolve(m as Extract<FromMember, { t: T }>);
        },
      });
    });
  }

  request<T extends FromMember>(m: WithoutReq<Extract<ToMember, { req: number }>>, timeoutMs = 30_000): Promise<T> {
    const req = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      if (!this.alive) {
        reject(new Error(`member ${this.id} is down`));
        return;
      }
      const timer = setTimeout(() => {
        this.waiting.delete(req);
        reject(new Error(`member ${this.id}: no answer to '${m.t}' within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(req, (a) => {
        clearTimeout(timer);
        resolve(a as T);
      });
      this.child.send({ ...m, req } as ToMember);
    });
  }

  status(): Promise<Extract<FromMember, { t: 'status' }>> {
    return this.request({ t: 'status' }, 5000);
  }

  kill9(): void {
    if (this.child.pid !== undefined) process.kill(this.child.pid, 'SIGKILL');
  }

  async stop(): Promise<void> {
    if (!this.alive) return;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.post({ t: 'stop' });
    const t = setTimeout(() => this.kill9(), 5000);
    await exited;
    clearTimeout(t);
  }
}

async function launch(m: Member, ca: TestCa, tls: { key: string; cert: string }, port: number): Promise<number> {
  const listening = m.expect('listening');
  m.post({ t: 'init', id: m.id, dir: m.dir, port, tls: { ...tls, ca: ca.caCert }, encrypt: m.encrypt });
  m.port = (await listening).port;
  return m.port;
}

async function start(m: Member, bootstrap?: { id: string; url: string }[]): Promise<void> {
  const started = m.expect('started');
  m.post(bootstrap ? { t: 'start', bootstrap, options: NODE_OPTIONS } : { t: 'start', options: NODE_OPTIONS });
  await started;
}

/** Waits until exactly one live member leads and every live member agrees; returns it with its status. */
async function agreedLeader(members: Member[], timeoutMs = 15_000): Promise<{ leader: Member; commit: number }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const live = members.filter((m) => m.alive);
    const st = await Promise.all(live.map((m) => m.status().catch(() => null)));
    const leaders = st.filter((s) => s?.status.role === 'leader');
    if (leaders.length === 1) {
      const l = leaders[0]!.status;
      if (st.every((s) => s !== null && s.status.leader === l.id && s.status.term === l.term)) {
        return { leader: live.find((m) => m.id === l.id)!, commit: l.commit };
      }
    }
    if (Date.now() > deadline) throw new Error('no agreed leader');
    await sleep(20);
  }
}

async function caughtUp(members: Member[], timeoutMs = 20_000): Promise<void> {
  const { leader } = await agreedLeader(members);
  const target = (await leader.status()).status.commit;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = await Promise.all(members.filter((m) => m.alive).map((m) => m.status()));
    if (st.every((s) => s.status.applied >= target)) return;
    if (Date.now() > deadline) throw new Error('members did not catch up');
    await sleep(20);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Baselines

function fsyncBaseline(n = 2000): LatencySummary {
  const file = path.join(root, 'fsync.bin');
  const fd = fs.openSync(file, 'w');
  const buf = Buffer.alloc(100, 7);
  const lat: number[] = [];
  try {
    for (let i = 0; i < n + 100; i++) {
      const t0 = performance.now();
      fs.writeSync(fd, buf);
      fs.fdatasyncSync(fd);
      if (i >= 100) lat.push(performance.now() - t0);
    }
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
  return summarize(lat);
}

async function wsBaseline(ca: TestCa, n = 2000): Promise<LatencySummary> {
  const mk = (id: string) => {
    const c = ca.issue(id, { ou: 'manager' });
    return WsRaftTransport.create({ id, tls: { key: c.key, cert: c.cert, ca: ca.caCert }, listen: { host: '127.0.0.1', port: 0 }, onError: () => {} });
  };
  const a = await mk('rtt-a');
  const b = await mk('rtt-b');
  try {
    const blank = (type: Message['type'], from: string, to: string, index: number): Message => ({
      type,
      from,
      to,
      term: 1,
      index,
      logTerm: 0,
      commit: 0,
      entries: [],
      reject: false,
      rejectHint: 0,
      context: '',
      snapshot: null,
    });
    b.onMessage((m) => b.send([blank('heartbeatResp', 'rtt-b', 'rtt-a', m.index)]));
    let wake: (() => void) | null = null;
    a.onMessage(() => wake?.());
    a.addPeer('rtt-b', `wss://127.0.0.1:${b.port!}`);
    const lat: number[] = [];
    for (let i = 0; i < n + 200; i++) {
      const t0 = performance.now();
      const got = new Promise<void>((r) => (wake = r));
      a.send([blank('heartbeat', 'rtt-a', 'rtt-b', i)]);
      await got;
      if (i >= 200) lat.push(performance.now() - t0);
    }
    return summarize(lat);
  } finally {
    await a.close();
    await b.close();
  }
}

// ---------------------------------------------------------------------------------------------------------

async function failoverRound(
  members: Member[],
  ca: TestCa,
  tls: Map<string, { key: string; cert: string }>,
): Promise<{ leaderMs: number; writeMs: number; killed: string; next: string }> {
  await caughtUp(members);
  const { leader } = await agreedLeader(members);
  const survivors = members.filter((m) => m !== leader);
  for (const s of survivors) s.leaderEvents = [];
  const exited = new Promise<void>((r) => leader.child.once('exit', () => r()));
  const tKill = clock();
  leader.kill9();

  // Keep offering a write to every survivor every few ms until one commits.
  let tWrite: number | null = null;
  const outstanding = new Set<Member>();
  const deadline = Date.now() + 20_000;
  while (tWrite === null) {
    if (Date.now() > deadline) throw new Error('failover: no write committed within 20 s');
    for (const s of survivors) {
      if (outstanding.has(s)) continue;
      outstanding.add(s);
      s.request<Extract<FromMember, { t: 'proposed' }>>({ t: 'propose', size: 100 }, 20_000)
        .then((r) => {
          if (r.ok && tWrite === null) tWrite = r.at;
        })
        .catch(() => {})
        .finally(() => outstanding.delete(s));
    }
    await sleep(3);
  }
  await exited;
  const ev = survivors
    .flatMap((s) => s.leaderEvents)
    .filter((e) => e.self && e.at > tKill)
    .sort((a, b) => a.at - b.at)[0];
  if (!ev) throw new Error('failover: no survivor reported becoming leader');
  const next = survivors.find((s) => s.leaderEvents.includes(ev))!;

  // Restart the killed member from its directory (same port) and let it catch up.
  leader.respawn();
  await launch(leader, ca, tls.get(leader.id)!, leader.port);
  await start(leader);
  await caughtUp(members);
  return { leaderMs: ev.at - tKill, writeMs: (tWrite as number) - tKill, killed: leader.id, next: next.id };
}

async function main(): Promise<void> {
  console.log(`raft bench: 3 members in 3 processes, SQLite+fsync in ${os.tmpdir()}, mTLS WebSockets on 127.0.0.1, ${os.cpus().length} CPUs`);
  console.log('timings: tick 10 ms, heartbeat 100 ms, election 1000 ms + [0, 500) ms jitter');
  if (Object.keys(NODE_OPTIONS).length > 0) console.log(`node options: ${JSON.stringify(NODE_OPTIONS)}`);

  // d) Baselines first, while nothing else runs.
  const ca = makeTestCa();
  const fsync = fsyncBaseline();
  const rtt = await wsBaseline(ca);

  const ids = ['m1', 'm2', 'm3', 'e1', 'e2', 'e3'];
  const tls = new Map(ids.map((id) => [id, ca.issue(id, { ou: 'manager' })] as const));
  const cluster = async (names: string[], encrypt: boolean): Promise<Member[]> => {
    const group = names.map((id) => {
      const dir = path.join(root, id);
      fs.mkdirSync(dir);
      return new Member(id, dir, encrypt);
    });
    await Promise.all(group.map((m) => launch(m, ca, tls.get(m.id)!, 0)));
    const bootstrap = group.map((m) => ({ id: m.id, url: `wss://127.0.0.1:${m.port}` }));
    await Promise.all(group.map((m) => start(m, bootstrap)));
    return group;
  };
  const members = await cluster(ids.slice(0, 3), false);
  const t0 = performance.now();
  let { leader } = await agreedLeader(members);
  console.log(`initial election: ${leader.id} leads after ${(performance.now() - t0).toFixed(0)} ms (from start)`);
  // A second cluster, identical but with encryption at rest, measured in the same run (idle otherwise).
  const encMembers = await cluster(ids.slice(3), true);
  const { leader: encLeader } = await agreedLeader(encMembers);

  // a) Sequential commit latency, measured in the leader process.
  const cpu0 = await Promise.all(members.map((m) => m.status()));
  const wall0 = performance.now();
  const seq = await leader.request<Extract<FromMember, { t: 'seq' }>>({ t: 'seq', ...SEQ }, 60_000);
  if (seq.error) throw new Error(`seq: ${seq.error}`);
  const cpu1 = await Promise.all(members.map((m) => m.status()));
  const seqWall = performance.now() - wall0;
  const seqCpu = members.map((m, i) => `${m.id}${m === leader ? ' (leader)' : ''} ${(((cpu1[i]!.cpuMs - cpu0[i]!.cpuMs) / seqWall) * 100).toFixed(0)}%`);
  // Off/on in ABBA order (off, on, on, off): this machine's load drifts, and a fixed order would charge
  // the drift to one variant. Each variant's figure is the mean of its two runs.
  const seqOf = async (m: Member, what: string) => {
    const r = await m.request<Extract<FromMember, { t: 'seq' }>>({ t: 'seq', ...SEQ }, 60_000);
    if (r.error) throw new Error(`seq (${what}): ${r.error}`);
    return r.lat;
  };
  const encSeqA = await seqOf(encLeader, 'encrypted');
  const encSeqB = await seqOf((await agreedLeader(encMembers)).leader, 'encrypted');
  const seqB = await seqOf((await agreedLeader(members)).leader, 'plain');
  const mean2 = (a: LatencySummary, b: LatencySummary, k: 'p50' | 'p99') => (a[k] + b[k]) / 2;

  // b) Pipelined throughput.
  ({ leader } = await agreedLeader(members));
  const pcpu0 = await Promise.all(members.map((m) => m.status()));
  const pwall0 = performance.now();
  const pipe = await leader.request<Extract<FromMember, { t: 'pipe' }>>({ t: 'pipe', ...PIPE }, 60_000);
  if (pipe.error) throw new Error(`pipe: ${pipe.error}`);
  const pcpu1 = await Promise.all(members.map((m) => m.status()));
  const pipeWall = performance.now() - pwall0;
  const pipeCpu = members.map((m, i) => `${m.id}${m === leader ? ' (leader)' : ''} ${(((pcpu1[i]!.cpuMs - pcpu0[i]!.cpuMs) / pipeWall) * 100).toFixed(0)}%`);
  const tput = pipe.commits / pipe.secs;
  const encPipe = await (await agreedLeader(encMembers)).leader.request<Extract<FromMember, { t: 'pipe' }>>({ t: 'pipe', ...PIPE }, 60_000);
  if (encPipe.error) throw new Error(`pipe (encrypted): ${encPipe.error}`);
  await Promise.all(encMembers.map((m) => m.stop()));
  const encTput = encPipe.commits / encPipe.secs;
  const encP99 = mean2(encSeqA, encSeqB, 'p99');
  const encLines = [
    `commit latency, encryption at rest off: p50 ${ms(mean2(seq.lat, seqB, 'p50'))} p99 ${ms(mean2(seq.lat, seqB, 'p99'))} (runs: p99 ${ms(seq.lat.p99)}, ${ms(seqB.p99)}); pipelined ${tput.toFixed(0)} commits/s`,
    `commit latency, encryption at rest on:  p50 ${ms(mean2(encSeqA, encSeqB, 'p50'))} p99 ${ms(encP99)} (runs: p99 ${ms(encSeqA.p99)}, ${ms(encSeqB.p99)}) (target p99 <= ${TARGET.p99} ms) ${verdict(encP99 <= TARGET.p99)}; pipelined ${encTput.toFixed(0)} commits/s`,
  ];

  // c) Failover.
  const rounds: Array<{ leaderMs: number; writeMs: number; killed: string; next: string }> = [];
  if (FAILOVER_ROUNDS < 1) {
    console.log(`cpu seq: ${seqCpu.join(', ')}; cpu pipe: ${pipeCpu.join(', ')}`);
    console.log(
      `commit latency p50: ${ms(seq.lat.p50)} p99: ${ms(seq.lat.p99)}; pipelined ${tput.toFixed(0)} commits/s p50 ${ms(pipe.lat.p50)} p99 ${ms(pipe.lat.p99)}; fsync p50 ${ms(fsync.p50)}`,
    );
    for (const l of encLines) console.log(l);
    await Promise.all(members.map((m) => m.stop()));
    return;
  }
  for (let i = 0; i < FAILOVER_ROUNDS; i++) {
    const r = await failoverRound(members, ca, tls);
    rounds.push(r);
    console.log(`failover round ${i + 1}: killed ${r.killed}, ${r.next} leads after ${ms(r.leaderMs)}, first write committed after ${ms(r.writeMs)}`);
  }

  const L = rounds.map((r) => r.leaderMs);
  const W = rounds.map((r) => r.writeMs);
  console.log('');
  console.log(`fsync (fdatasync, 100 B write) p50: ${ms(fsync.p50)}`);
  console.log(`fsync (fdatasync, 100 B write) p99: ${ms(fsync.p99)}`);
  console.log(`ws mTLS round trip (WsRaftTransport, in-process) p50: ${ms(rtt.p50)}`);
  console.log(`ws mTLS round trip (WsRaftTransport, in-process) p99: ${ms(rtt.p99)}`);
  console.log(`commit latency p50: ${ms(seq.lat.p50)} (target <= ${TARGET.p50} ms) ${verdict(seq.lat.p50 <= TARGET.p50)}`);
  console.log(`commit latency p99: ${ms(seq.lat.p99)} (target <= ${TARGET.p99} ms) ${verdict(seq.lat.p99 <= TARGET.p99)}`);
  console.log(`commit latency max: ${ms(seq.lat.max)} (${seq.lat.n} sequential proposals of ${SEQ.size} B after ${SEQ.warmup} warm-up)`);
  console.log(`commit p50 / fsync p50: ${(seq.lat.p50 / fsync.p50).toFixed(2)}x`);
  console.log(`pipelined throughput: ${tput.toFixed(0)} commits/s (target >= ${TARGET.tput} commits/s) ${verdict(tput >= TARGET.tput)}`);
  console.log(`pipelined latency p50: ${ms(pipe.lat.p50)}`);
  console.log(`pipelined latency p99: ${ms(pipe.lat.p99)}`);
  console.log(
    `pipelined batching: ${(pipe.commits / Math.max(1, pipe.fsyncs)).toFixed(1)} entries per leader fsync (${PIPE.size} B entries, ${PIPE.outstanding} outstanding, ${pipe.secs} s)`,
  );
  console.log(`failover time to new leader median: ${ms(median(L))} (target <= ${TARGET.failover} ms) ${verdict(median(L) <= TARGET.failover)}`);
  console.log(`failover time to new leader max: ${ms(Math.max(...L))} (target <= ${TARGET.failover} ms) ${verdict(Math.max(...L) <= TARGET.failover)}`);
  console.log(`failover time to first committed write median: ${ms(median(W))} (target <= ${TARGET.failover} ms) ${verdict(median(W) <= TARGET.failover)}`);
  console.log(
    `failover time to first committed write max: ${ms(Math.max(...W))} (target <= ${TARGET.failover} ms) ${verdict(Math.max(...W) <= TARGET.failover)}`,
  );
  console.log(`failover rounds: ${rounds.length}`);
  console.log(`cpu during sequential run (share of one core): ${seqCpu.join(', ')}`);
  console.log(`cpu during pipelined run (share of one core): ${pipeCpu.join(', ')}`);
  for (const l of encLines) console.log(l);

  await Promise.all(members.map((m) => m.stop()));
}

main()
  .catch((err: unknown) => {
    console.error('bench failed:', err);
    process.exitCode = 1;
  })
  .finally(() => {
    clearTimeout(watchdog);
    cleanup();
    process.exit(process.exitCode ?? 0);
  });
