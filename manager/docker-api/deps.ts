// What the Docker API needs from the manager it runs on, as one small interface: the control router
// it translates into, who this manager is, and the Raft view `info` and forwarding read. The daemon
// builds it from its Manager (server.ts `depsOf`); tests may build it from anything.
import type { ManagerAddr } from '../../api/dispatcher.ts';
import type { EventLog } from '../events/log.ts';
import type { ControlRouter } from './control.ts';

export interface DockerDeps {
  control: ControlRouter;
  nodeId: string;
  clusterId: string;
  /** This host's name, CPUs and memory (`docker info`). */
  host: { name: string; ncpu: number; memTotal: number; arch: string; kernel: string };
  /** Pins an image as service create does; absent (test executor): images are used as given. */
  resolveImage?: ((ref: string) => Promise<string>) | undefined;
  isLeader: () => boolean;
  leader: () => ManagerAddr | null;
  managers: () => ManagerAddr[];
  /** The cluster events this manager derives from the applied log (manager/events). Absent: no events. */
  events?: EventLog;
}

/** The Engine API versions this facade speaks (docs/docker-api.md says why 1.47). */
export const API_VERSION = '1.47';
export const MIN_API_VERSION = '1.24';
/** What `docker version` shows as the engine's version. */
export const ENGINE_VERSION = '28.0.0-shoal';
