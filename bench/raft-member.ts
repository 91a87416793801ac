// One Raft member of `npm run bench:raft`, run as a child process (fork with --import tsx). It owns a
// real SqliteRaftStorage in its directory and a real mutual-TLS WsRaftTransport on 127.0.0.1, and talks
// to the parent over the fork IPC channel. Load generators run *inside* this process so latencies are
// measured where the proposal is made (propose → applied locally), without IPC in the path.
//
// With `encrypt` set in init, the storage seals entries and snapshots with a fresh per-member Raft key
// (manager/raft/encrypt.ts), as a manager does with encryption at rest, so the bench can print commit
// latency with encryption off and on in one run.
//
// Timestamps sent to the parent are performance.timeOrigin + performance.now(): wall-clock based, high
// resolution, and comparable between processes on one machine.
import { performance } from 'node:perf_hooks';
import { RaftNode } from '../manager/raft/node.ts';
import type { StateMachine } from '../manager/raft/node.ts';
import { summarize, type LatencySummary } from './stats.ts';
import { randomBytes } from 'node:crypto';
import { KeyRing } from '../manager/keys/keyring.ts';
import { RaftCipher } from '../manager/raft/encrypt.ts';
import { SqliteRaftStorage } from '../manager/raft/storage-sqlite.ts';
import { WsRaftTransport } from '../manager/raft/transport-ws.ts';
import type { Entry } from '../manager/raft/types.ts';

export type ToMember =
  | { t: 'init'; id: string; dir: string; port: number; tls: { key: string; cert: string; ca: string }; encrypt?: boolean }
  | { t: 'start'; bootstrap?: { id: string; url: string }[]; options?: Record<string, number | boolean> }
  | { t: 'status'; req: number }
  | { t: 'seq'; req: number; warmup: number; count: number; size: number }
  | { t: 'pipe'; req: number; warmupMs: number; ms: number; size: number; outstanding: number }
  | { t: 'propose'; req: number; size: number }
  | { t: 'stop' };

export type { LatencySummary } from './stats.ts';

export type FromMember =
  | { t: 'listening'; port: number }
  | { t: 'started' }
  | { t: 'leader'; leader: string | null; term: number; self: boolean; at: number }
  | { t: 'status'; req: number; status: ReturnType<RaftNode['status']>; stats: ReturnType<RaftNode['stats']>; cpuMs: number }
  | { t: 'seq'; req: number; lat: LatencySummary; error?: string }
  | { t: 'pipe'; req: number; commits: number; secs: number; lat: LatencySummary; fsyncs: number; readies: number; error?: string }
  | { t: 'proposed'; req: number; ok: boolean; at: number; error?: string }
  | { t: 'error'; message: string };

function clock(): number {
  return performance.timeOrigin + performance.now();
}

/** A minimal deterministic state machine: a counter and a checksum of everything applied. */
class CounterMachine implements StateMachine {
  count = 0;
  sum = 0;
  apply(e: Entry): unknown {
    this.count++;
    this.sum = (this.sum * 31 + e.data.length + (e.data[0] ?? 0)) >>> 0;
    return e.index;
  }
  snapshot(): Uint8Array {
    const b = new Uint8Array(8);
    const v = new DataView(b.buffer);
    v.setUint32(0, this.count);
    v.setUint32(4, this.sum);
    return b;
  }
  restore(data: Uint8Array): void {
    const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
    this.count = v.getUint32(0);
    this.sum = v.getUint32(4);
  }
}

function send(m: FromMember): void {
  process.send?.(m);
}

function payload(size: number, seq: number): Uint8Array {
  const b = new Uint8Array(size);
  b[0] = seq & 0xff;
  b[1] = (seq >>> 8) & 0xff;
  return b;
}

let storage: SqliteRaftStorage | null = null;
let transport: WsRaftTransport | null = null;
let node: RaftNode | null = null;
let id = '';
let dir = '';
let seq = 0;

async function onMessage(m: ToMember): Promise<void> {
  switch (m.t) {
    case 'init': {
      id = m.id;
      dir = m.dir;
      const cipher = m.encrypt ? new RaftCipher(KeyRing.generate(randomBytes, new Date()), randomBytes) : null;
      storage = new SqliteRaftStorage(dir, { cipher });
      transport = await WsRaftTransport.create({ id, tls: m.tls, listen: { host: '127.0.0.1', port: m.port }, onError: () => {} });
      send({ t: 'listening', port: transport.port! });
      return;
    }
    case 'start': {
      if (!storage || !transport) throw new Error('start before init');
      node = new RaftNode({
        id,
        storage,
        transport,
        stateMachine: new CounterMachine(),
        // Production timings.
        tickMs: 10,
        heartbeatMs: 100,
        electionMs: 1000,
        electionJitterMs: 500,
        ...(m.options ?? {}),
        ...(m.bootstrap ? { bootstrap: m.bootstrap } : {}),
        log: (line) => {
          if (/halted|bootstrap/.test(line)) process.stderr.write(`${line}\n`);
        },
      });
      node.onLeaderChange((leader, term) => send({ t: 'leader', leader, term, self: leader === id, at: clock() }));
      node.start();
      send({ t: 'started' });
      return;
    }
    case 'status': {
      if (!node) throw new Error('status before start');
      const cpu = process.cpuUsage();
      send({ t: 'status', req: m.req, status: node.status(), stats: node.stats(), cpuMs: (cpu.user + cpu.system) / 1000 });
      return;
    }
    case 'propose': {
      if (!node) throw new Error('propose before start');
      try {
        await node.propose(payload(m.size, seq++));
        send({ t: 'proposed', req: m.req, ok: true, at: clock() });
      } catch (err) {
        send({ t: 'proposed', req: m.req, ok: false, at: clock(), error: (err as Error).message });
      }
      return;
    }
    case 'seq': {
      const n = node;
      if (!n) throw new Error('seq before start');
      const lat: number[] = [];
      try {
        for (let i = 0; i < m.warmup + m.count; i++) {
          const data = payload(m.size, seq++);
          const t0 = performance.now();
          await n.propose(data);
          const dt = performance.now() - t0;
          if (i >= m.warmup) lat.push(dt);
        }
        send({ t: 'seq', req: m.req, lat: summarize(lat) });
      } catch (err) {
        send({ t: 'seq', req: m.req, lat: summarize(lat), error: (err as Error).message });
      }
      return;
    }
    case 'pipe': {
      const n = node;
      if (!n) throw new Error('pipe before start');
      const lat: number[] = [];
      let commits = 0;
      let failure: string | undefined;
      const start = performance.now();
      const measureFrom = start + m.warmupMs;
      const end = measureFrom + m.ms;
      let s0 = n.stats();
      let measuring = false;
      const worker = async (): Promise<void> => {
        while (failure === undefined) {
          const t0 = performance.now();
          if (t0 >= end) return;
          if (!measuring && t0 >= measureFrom) {
            measuring = true;
            s0 = n.stats();
          }
          try {
            await n.propose(payload(m.size, seq++));
          } catch (err) {
            failure = (err as Error).message;
            return;
          }
          const t1 = performance.now();
          if (t1 >= measureFrom && t1 <= end) {
            commits++;
            lat.push(t1 - t0);
          }
        }
      };
      await Promise.all(Array.from({ length: m.outstanding }, worker));
      const s1 = n.stats();
      send({
        t: 'pipe',
        req: m.req,
        commits,
        secs: m.ms / 1000,
        lat: summarize(lat),
        fsyncs: s1.fsyncs - s0.fsyncs,
        readies: s1.readies - s0.readies,
        ...(failure !== undefined ? { error: failure } : {}),
      });
      return;
    }
    case 'stop': {
      await node?.stop();
      if (!node) {
        await transport?.close();
        storage?.close();
      }
      process.disconnect?.();
      process.exit(0);
    }
  }
}

if (process.send) {
  process.on('message', (m: ToMember) => {
    onMessage(m).catch((err: unknown) => {
      send({ t: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    });
  });
  // The parent going away (even by SIGKILL) must not leave us behind.
  process.on('disconnect', () => process.exit(0));
}
