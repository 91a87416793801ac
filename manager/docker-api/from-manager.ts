// The Docker API's view of the Manager it runs on (deps.ts), built in one place so the daemon's
// wiring stays one line and the facade depends on an interface, not on the Manager class.
import { cpus, hostname, release, totalmem } from 'node:os';
import type { Manager } from '../manager.ts';
import type { DockerDeps } from './deps.ts';

export function dockerDeps(m: Manager, host?: string): DockerDeps {
  return {
    control: m.controlRouter,
    nodeId: m.nodeId,
    clusterId: m.clusterId,
    host: { name: host ?? hostname(), ncpu: cpus().length, memTotal: totalmem(), arch: process.arch, kernel: release() },
    resolveImage: m.imageResolver,
    isLeader: () => m.raft.status().role === 'leader',
    leader: () => m.leaderAddr(),
    managers: () => m.managerAddrs(),
    events: m.events.log,
  };
}
