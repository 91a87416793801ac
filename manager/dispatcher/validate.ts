// What a node may say to the dispatcher, checked before anything acts on it (security review,
// findings 3, 8 and 9). A pure function of the decoded JSON: it returns a clean message holding only
// the known fields, within size limits, or throws a ProtocolViolation naming the field.
//
// Batches are checked per entry: a status update or usage entry that is wrong is returned in
// `rejected` and the others are kept, so one bad entry never costs the rest of its batch. Whether a
// task belongs to the sender, and whether a state moves forward, needs the store: the dispatcher
// checks that. Logs and exec answers are checked here only for `t` and `req`; their bodies belong to
// remote-validate.ts (the logs/exec owner's).
import { ProtocolViolation } from '../../transport/session.ts';
import { TASK_STATES, type NodeDescription, type TaskState } from '../../api/objects.ts';
import type { TaskStatusUpdate } from '../../api/task-status.ts';
import { AGENT_FEATURES, type AgentFeature, type AgentToManager, type TaskUsage } from '../../api/dispatcher.ts';
import { validateRemoteMessage, type RemoteMessage } from '../api/remote-validate.ts';

/** Limits of one message's fields. Sizes are generous for a real node and small for the store. */
export const MESSAGE_LIMITS = {
  /** Entries in one `status` batch (an agent sends every task it knows after a reconnect). */
  statusUpdates: 2000,
  /** Entries in one `usage` report. */
  usageTasks: 2000,
  /** Task ids are 25 base36 characters; some slack for ids from other generators. */
  taskId: 64,
  /** A status message or error text; longer text is cut, not refused (a real error may be long). */
  statusText: 4096,
  timestamp: 64,
  /** A hostname (DNS allows 253) and an address (host or host:port). */
  hostname: 253,
  addr: 261,
  platformField: 32,
  engineVersion: 64,
  /** A PEM CSR for an RSA-4096 or EC key is well under this. */
  csr: 16 << 10,
  /** Request ids of logs/exec (16 hex characters today). */
  req: 64,
  /** Sane resources: 4096 CPUs, 1 PiB of memory. */
  nanoCpus: 4096e9,
  memoryBytes: 2 ** 50,
  /** Names in a hello's `features`, and their length. */
  features: 32,
  featureName: 64,
} as const;

const TASK_STATE_SET: ReadonlySet<string> = new Set(TASK_STATES);
const REMOTE_TYPES: ReadonlySet<string> = new Set(['log', 'log-end', 'exec-result', 'exec-output']);
const TASK_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const HOSTNAME_RE = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?$/;
const ADDR_RE = /^[A-Za-z0-9._:[\]-]+$/;
const ADVERTISE_RE = /^[^\s:]+:(\d{1,5})$/;

/** A status batch, split into the updates that passed and the ones that did not. */
export interface StatusMessage {
  t: 'status';
  updates: TaskStatusUpdate[];
  rejected: ProtocolViolation[];
}

export interface UsageMessage {
  t: 'usage';
  at: number;
  tasks: Record<string, TaskUsage>;
  rejected: ProtocolViolation[];
}

/** A validated inbound message. */
export type InboundMessage = Exclude<AgentToManager, { t: 'status' | 'usage' } | RemoteMessage> | StatusMessage | UsageMessage | RemoteMessage;

const violation = (code: string, message: string) => new ProtocolViolation(code, message);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(o: Record<string, unknown>, field: string, max: number, path: string): string {
  const v = o[field];
  if (typeof v !== 'string') throw violation('bad-field', `${path}.${field} must be a string`);
  if (v.length > max) throw violation('too-long', `${path}.${field} is ${v.length} characters (limit ${max})`);
  return v;
}

function num(o: Record<string, unknown>, field: string, max: number, path: string): number {
  const v = o[field];
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > max) {
    throw violation('bad-field', `${path}.${field} must be a number between 0 and ${max}`);
  }
  return v;
}

/**
 * A hello's `features` (optional): at most MESSAGE_LIMITS.features names of at most
 * MESSAGE_LIMITS.featureName characters. Names this manager does not know are dropped, not refused:
 * a newer agent may know more.
 */
function validateFeatures(v: unknown): { features?: AgentFeature[] } {
  if (v === undefined) return {};
  if (!Array.isArray(v)) throw violation('bad-field', 'hello.features must be an array of strings');
  if (v.length > MESSAGE_LIMITS.features) throw violation('too-many', `hello.features has ${v.length} entries (limit ${MESSAGE_LIMITS.features})`);
  const out: AgentFeature[] = [];
  for (const [i, f] of v.entries()) {
    if (typeof f !== 'string') throw violation('bad-field', `hello.features[${i}] must be a string`);
    if (f.length > MESSAGE_LIMITS.featureName)
      throw violation('too-long', `hello.features[${i}] is ${f.length} characters (limit ${MESSAGE_LIMITS.featureName})`);
    if ((AGENT_FEATURES as readonly string[]).includes(f) && !out.includes(f as AgentFeature)) out.push(f as AgentFeature);
  }
  return { features: out };
}

/** Cuts text to `max` characters (status messages are informational; the rest is dropped). */
const cut = (s: string, max: number) => (s.length > max ? s.slice(0, max) : s);

/** One inbound message (already JSON-decoded). */
export function validateAgentMessage(v: unknown): InboundMessage {
  if (!isRecord(v)) throw violation('bad-message', 'a message must be a JSON object');
  const t = v.t;
  if (typeof t !== 'string') throw violation('bad-message', 'message field t must be a string');
  switch (t) {
    case 'hello':
      return { t, description: validateDescription(v.description), ...validateFeatures(v.features) };
    case 'hb':
      return { t };
    case 'renew': {
      const csr = str(v, 'csr', MESSAGE_LIMITS.csr, 'renew');
      if (!csr.includes('-----BEGIN')) throw violation('bad-field', 'renew.csr must be a PEM certificate request');
      return { t, csr };
    }
    case 'manager-up':
      return { t, advertise: validateAdvertise(v.advertise, 'manager-up.advertise') };
    case 'network-applied': {
      const n = num(v, 'v', Number.MAX_SAFE_INTEGER, t);
      if (!Number.isInteger(n)) throw violation('bad-field', 'network-applied.v must be an integer');
      return { t, v: n };
    }
    case 'status':
      return validateStatus(v);
    case 'usage':
      return validateUsage(v);
    default:
      if (REMOTE_TYPES.has(t)) {
        const req = str(v, 'req', MESSAGE_LIMITS.req, t);
        if (req === '') throw violation('bad-field', `${t}.req must not be empty`);
        return validateRemoteMessage({ ...v, t: t as RemoteMessage['t'], req });
      }
      throw violation('unknown-type', `unknown message type ${JSON.stringify(t.slice(0, 32))}`);
  }
}

/** Is this a hostname a node may have (letters, digits, '.', '_', '-'; at most 253 characters)? */
export function isHostname(s: string): boolean {
  return s.length <= MESSAGE_LIMITS.hostname && HOSTNAME_RE.test(s);
}

/** A node's self-description: only the known fields, each typed and bounded. */
export function validateDescription(v: unknown): NodeDescription {
  if (!isRecord(v)) throw violation('bad-field', 'hello.description must be an object');
  const p = 'hello.description';
  const hostname = str(v, 'hostname', MESSAGE_LIMITS.hostname, p);
  if (!isHostname(hostname)) throw violation('bad-field', `${p}.hostname ${JSON.stringify(hostname.slice(0, 64))} is not a hostname`);
  if (!isRecord(v.platform)) throw violation('bad-field', `${p}.platform must be an object`);
  if (!isRecord(v.resources)) throw violation('bad-field', `${p}.resources must be an object`);
  const addr = str(v, 'addr', MESSAGE_LIMITS.addr, p);
  if (!ADDR_RE.test(addr)) throw violation('bad-field', `${p}.addr ${JSON.stringify(addr.slice(0, 64))} is not an address`);
  return {
    hostname,
    platform: {
      os: str(v.platform, 'os', MESSAGE_LIMITS.platformField, `${p}.platform`),
      arch: str(v.platform, 'arch', MESSAGE_LIMITS.platformField, `${p}.platform`),
    },
    resources: {
      nanoCpus: num(v.resources, 'nanoCpus', MESSAGE_LIMITS.nanoCpus, `${p}.resources`),
      memoryBytes: num(v.resources, 'memoryBytes', MESSAGE_LIMITS.memoryBytes, `${p}.resources`),
    },
    engineVersion: str(v, 'engineVersion', MESSAGE_LIMITS.engineVersion, p),
    addr,
  };
}

/** host:port with a port in 1..65535 and no whitespace. */
export function validateAdvertise(v: unknown, path: string): string {
  if (typeof v !== 'string' || v.length > MESSAGE_LIMITS.addr) throw violation('bad-field', `${path} must be host:port`);
  const m = ADVERTISE_RE.exec(v);
  const port = m ? Number(m[1]) : 0;
  if (!m || port < 1 || port > 65535) throw violation('bad-field', `${path} must be host:port (got ${JSON.stringify(v.slice(0, 64))})`);
  return v;
}

function validateStatus(v: Record<string, unknown>): StatusMessage {
  const updates = v.updates;
  if (!Array.isArray(updates)) throw violation('bad-field', 'status.updates must be an array');
  if (updates.length > MESSAGE_LIMITS.statusUpdates)
    throw violation('too-many', `status has ${updates.length} updates (limit ${MESSAGE_LIMITS.statusUpdates})`);
  const out: StatusMessage = { t: 'status', updates: [], rejected: [] };
  for (let i = 0; i < updates.length; i++) {
    try {
      out.updates.push(validateStatusUpdate(updates[i], `status.updates[${i}]`));
    } catch (e) {
      if (!(e instanceof ProtocolViolation)) throw e;
      out.rejected.push(e);
    }
  }
  return out;
}

/** One task status update. */
export function validateStatusUpdate(u: unknown, path: string): TaskStatusUpdate {
  if (!isRecord(u)) throw violation('bad-update', `${path} must be an object`);
  const taskId = validateTaskId(u.taskId, `${path}.taskId`);
  const state = u.state;
  if (typeof state !== 'string' || !TASK_STATE_SET.has(state)) {
    throw violation('bad-state', `${path}.state ${JSON.stringify(String(state).slice(0, 32))} is not a task state`);
  }
  const message = u.message === undefined ? '' : u.message;
  if (typeof message !== 'string') throw violation('bad-update', `${path}.message must be a string`);
  const timestamp = str(u, 'timestamp', MESSAGE_LIMITS.timestamp, path);
  if (Number.isNaN(Date.parse(timestamp))) throw violation('bad-update', `${path}.timestamp is not a time`);
  if (u.err !== undefined && typeof u.err !== 'string') throw violation('bad-update', `${path}.err must be a string`);
  if (u.exitCode !== undefined && !(typeof u.exitCode === 'number' && Number.isInteger(u.exitCode) && Math.abs(u.exitCode) <= 2 ** 31)) {
    throw violation('bad-update', `${path}.exitCode must be an integer`);
  }
  return {
    taskId,
    state: state as TaskState,
    message: cut(message, MESSAGE_LIMITS.statusText),
    timestamp,
    ...(u.err !== undefined ? { err: cut(u.err as string, MESSAGE_LIMITS.statusText) } : {}),
    ...(u.exitCode !== undefined ? { exitCode: u.exitCode as number } : {}),
  };
}

function validateTaskId(v: unknown, path: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > MESSAGE_LIMITS.taskId || !TASK_ID_RE.test(v)) {
    throw violation('bad-task-id', `${path} is not a task id`);
  }
  return v;
}

function validateUsage(v: Record<string, unknown>): UsageMessage {
  const at = v.at;
  if (typeof at !== 'number' || !Number.isFinite(at) || at < 0) throw violation('bad-field', 'usage.at must be a time in milliseconds');
  if (!isRecord(v.tasks)) throw violation('bad-field', 'usage.tasks must be an object');
  const entries = Object.entries(v.tasks);
  if (entries.length > MESSAGE_LIMITS.usageTasks) throw violation('too-many', `usage has ${entries.length} tasks (limit ${MESSAGE_LIMITS.usageTasks})`);
  const out: UsageMessage = { t: 'usage', at, tasks: {}, rejected: [] };
  for (const [id, u] of entries) {
    try {
      validateTaskId(id, 'usage.tasks key');
      if (!isRecord(u)) throw violation('bad-update', `usage.tasks.${id} must be an object`);
      out.tasks[id] = {
        cpuNanos: num(u, 'cpuNanos', Number.MAX_SAFE_INTEGER, `usage.tasks.${id}`),
        memoryBytes: num(u, 'memoryBytes', MESSAGE_LIMITS.memoryBytes, `usage.tasks.${id}`),
      };
    } catch (e) {
      if (!(e instanceof ProtocolViolation)) throw e;
      out.rejected.push(e);
    }
  }
  return out;
}
