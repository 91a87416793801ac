// The two workloads of the real-cluster linearizability harness, shared by the CI test
// (test/cluster/jepsen.test.ts) and `npm run bench:jepsen`:
// - `realRun`: every fault kind on any manager, an even mix of reads, writes and CASes: the safe build
//   must show no anomaly.
// - `controlRun`: the leader partitioned away or paused again and again while clients keep reading from
//   every manager: a build whose reads skip ReadIndex (SHOAL_UNSAFE_RAFT=localReads) answers from the
//   cut-off leader's stale state, and the checker must catch it.
import type { TrialOptions } from './trial.ts';

type Profile = Omit<TrialOptions, 'seed' | 'run' | 'durationMs' | 'log'>;

export const realRun: Profile = {
  clients: 6,
  keys: 4,
  mix: { read: 4, write: 3, cas: 3 },
  thinkMs: [5, 30],
  opTimeoutMs: 2500,
  nemesis: {
    kinds: ['partition', 'kill', 'pause', 'pause-partition'],
    leaderBias: 0.6,
    holdMs: [1500, 3500],
    gapMs: [800, 2000],
    leadInMs: 1000,
    tailMs: 2500,
  },
};

export const controlRun: Profile = {
  clients: 6,
  keys: 3,
  // No CAS: what must be caught here is the stale read, not anything a CAS could trip over.
  mix: { read: 6, write: 4, cas: 0 },
  thinkMs: [2, 15],
  opTimeoutMs: 2500,
  nemesis: {
    kinds: ['pause-partition'],
    leaderBias: 1,
    holdMs: [2500, 3500],
    gapMs: [800, 1500],
    leadInMs: 800,
    tailMs: 1500,
  },
};
