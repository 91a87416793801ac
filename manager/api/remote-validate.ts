// Strict checks of what a node sends in answer to the leader's logs and exec requests ('log',
// 'log-end', 'exec-output', 'exec-result'), before anything of it is used. The dispatcher's validator
// (dispatcher/validate.ts) checks `t` and `req` and hands the message to validateRemoteMessage.
//
// A node is trusted with its own tasks only: a message of the wrong shape — a missing or mistyped
// field, an unknown field, an oversized piece, bad base64 — is a ProtocolViolation (transport/session.ts)
// that costs exactly that message (the session counts it and disconnects a node that keeps doing it).
// Whether the lines are for tasks the request asked that node for, whether a node keeps to its flow
// window and whether exec pieces come in order depends on the request: RemoteCalls (remote.ts) checks
// that. Pure functions.
import { EXEC_CHUNK_BYTES, LOG_BATCH_BYTES, LOG_CHUNK_BYTES, type AgentToManager, type LogLine } from '../../api/dispatcher.ts';
import { ProtocolViolation } from '../../transport/session.ts';

/** Every node-to-manager message that answers a request (`req`): logs and exec. */
export type RemoteMessage = Extract<AgentToManager, { req: string }>;

/** Request ids are the leader's own (16 hex digits); anything longer is certainly not one. */
const MAX_REQ = 64;
const MAX_TASK_ID = 64;
const MAX_TS = 64;
/** Error texts a node reports (they reach the admin's terminal as a warning). */
export const MAX_ERROR_TEXT = 4096;
/** A 'log' message holds at most this many chunks (an empty line still costs ~70 bytes of JSON). */
export const MAX_LINES_PER_BATCH = Math.ceil(LOG_BATCH_BYTES / 48);
/** Base64 length of EXEC_CHUNK_BYTES. */
const MAX_EXEC_DATA = Math.ceil(EXEC_CHUNK_BYTES / 3) * 4;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const TS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;

function bad(field: string, why: string): ProtocolViolation {
  return new ProtocolViolation('bad-field', `${field}: ${why}`);
}

function obj(v: unknown, field: string, allowed: readonly string[]): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(field, 'must be an object');
  for (const k of Object.keys(v)) if (!allowed.includes(k)) throw bad(`${field}.${k}`, 'unknown field');
  return v as Record<string, unknown>;
}

function str(v: unknown, field: string, max: number, min = 1): string {
  if (typeof v !== 'string') throw bad(field, 'must be a string');
  if (v.length < min || v.length > max) throw bad(field, `length must be ${min}..${max} (got ${v.length})`);
  return v;
}

function stream(v: unknown, field: string): 'stdout' | 'stderr' {
  if (v !== 'stdout' && v !== 'stderr') throw bad(field, 'must be "stdout" or "stderr"');
  return v;
}

function count(v: unknown, field: string): number {
  if (!Number.isSafeInteger(v) || (v as number) < 0) throw bad(field, 'must be a non-negative integer');
  return v as number;
}

function optError(v: unknown, field: string): string | undefined {
  return v === undefined ? undefined : str(v, field, MAX_ERROR_TEXT, 0);
}

export function validateLogLine(v: unknown, field: string): LogLine {
  const o = obj(v, field, ['taskId', 'ts', 'stream', 'line', 'partial']);
  const taskId = str(o.taskId, `${field}.taskId`, MAX_TASK_ID);
  const ts = str(o.ts, `${field}.ts`, MAX_TS);
  if (!TS.test(ts)) throw bad(`${field}.ts`, 'must be an ISO-8601 timestamp');
  const s = stream(o.stream, `${field}.stream`);
  if (typeof o.line !== 'string') throw bad(`${field}.line`, 'must be a string');
  // Characters first (cheap), then bytes: a chunk holds at most LOG_CHUNK_BYTES of UTF-8.
  if (o.line.length > LOG_CHUNK_BYTES || Buffer.byteLength(o.line) > LOG_CHUNK_BYTES) throw bad(`${field}.line`, `longer than ${LOG_CHUNK_BYTES} bytes`);
  if (o.partial !== undefined && o.partial !== true) throw bad(`${field}.partial`, 'must be true or absent');
  return { taskId, ts, stream: s, line: o.line, ...(o.partial === true ? { partial: true as const } : {}) };
}

export function validateLog(v: unknown): { t: 'log'; req: string; lines: LogLine[] } {
  const o = obj(v, 'log', ['t', 'req', 'lines']);
  const req = str(o.req, 'log.req', MAX_REQ);
  if (!Array.isArray(o.lines)) throw bad('log.lines', 'must be a list');
  if (o.lines.length === 0 || o.lines.length > MAX_LINES_PER_BATCH)
    throw bad('log.lines', `must hold 1..${MAX_LINES_PER_BATCH} chunks (got ${o.lines.length})`);
  return { t: 'log', req, lines: o.lines.map((l, i) => validateLogLine(l, `log.lines[${i}]`)) };
}

export function validateLogEnd(v: unknown): { t: 'log-end'; req: string; taskId?: string; error?: string; chunks?: number } {
  const o = obj(v, 'log-end', ['t', 'req', 'taskId', 'error', 'chunks']);
  const req = str(o.req, 'log-end.req', MAX_REQ);
  const taskId = o.taskId === undefined ? undefined : str(o.taskId, 'log-end.taskId', MAX_TASK_ID);
  const error = optError(o.error, 'log-end.error');
  const chunks = o.chunks === undefined ? undefined : count(o.chunks, 'log-end.chunks');
  return {
    t: 'log-end',
    req,
    ...(taskId !== undefined ? { taskId } : {}),
    ...(error !== undefined ? { error } : {}),
    ...(chunks !== undefined ? { chunks } : {}),
  };
}

/** An exec-output with its data checked; `bytes` is the decoded data. */
export function validateExecOutput(v: unknown): { t: 'exec-output'; req: string; stream: 'stdout' | 'stderr'; data: string; seq: number; bytes: Buffer } {
  const o = obj(v, 'exec-output', ['t', 'req', 'stream', 'data', 'seq']);
  const req = str(o.req, 'exec-output.req', MAX_REQ);
  const s = stream(o.stream, 'exec-output.stream');
  const data = str(o.data, 'exec-output.data', MAX_EXEC_DATA);
  if (data.length % 4 !== 0 || !BASE64.test(data)) throw bad('exec-output.data', 'must be base64');
  if (!Number.isSafeInteger(o.seq) || (o.seq as number) < 0) throw bad('exec-output.seq', 'must be a non-negative integer');
  const bytes = Buffer.from(data, 'base64');
  if (bytes.length > EXEC_CHUNK_BYTES) throw bad('exec-output.data', `more than ${EXEC_CHUNK_BYTES} bytes`);
  return { t: 'exec-output', req, stream: s, data, seq: o.seq as number, bytes };
}

export function validateExecResult(
  v: unknown,
): { t: 'exec-result'; req: string; exitCode: number; pieces?: number } | { t: 'exec-result'; req: string; error: string } {
  const o = obj(v, 'exec-result', ['t', 'req', 'exitCode', 'pieces', 'error']);
  const req = str(o.req, 'exec-result.req', MAX_REQ);
  if (o.error !== undefined) {
    if (o.exitCode !== undefined) throw bad('exec-result', 'has both exitCode and error');
    return { t: 'exec-result', req, error: str(o.error, 'exec-result.error', MAX_ERROR_TEXT, 0) };
  }
  if (!Number.isInteger(o.exitCode) || (o.exitCode as number) < 0 || (o.exitCode as number) > 255)
    throw bad('exec-result.exitCode', 'must be an integer 0..255');
  const pieces = o.pieces === undefined ? undefined : count(o.pieces, 'exec-result.pieces');
  return { t: 'exec-result', req, exitCode: o.exitCode as number, ...(pieces !== undefined ? { pieces } : {}) };
}

/** The dispatcher's entry point: the message with only its known fields, or a ProtocolViolation. */
export function validateRemoteMessage(m: { t: RemoteMessage['t']; req: string } & Record<string, unknown>): RemoteMessage {
  switch (m.t) {
    case 'log':
      return validateLog(m);
    case 'log-end':
      return validateLogEnd(m);
    case 'exec-output': {
      const { bytes: _bytes, ...rest } = validateExecOutput(m);
      return rest;
    }
    case 'exec-result':
      return validateExecResult(m);
    default:
      throw new ProtocolViolation('bad-type', `not a logs or exec answer: ${String((m as { t: unknown }).t).slice(0, 32)}`);
  }
}
