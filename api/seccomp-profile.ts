// A custom seccomp profile (`--security-opt seccomp=FILE`) in Docker's JSON format, compiled into the
// line format shoal-shim reads (`default ACTION [ERRNO]`, then `NAME ACTION [ERRNO]`). Only the part of
// the format Shoal can honour is taken: defaultAction, defaultErrnoRet, and syscalls entries with
// names/action/errnoRet. Argument conditions, includes/excludes and the trace/notify actions are refused
// with an error naming them, rather than silently giving a different filter than the file says.

export class SeccompProfileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SeccompProfileError';
  }
}

/** A profile's size in bytes Shoal accepts (Docker's own default profile is about 20 KiB). */
export const MAX_PROFILE_BYTES = 256 * 1024;
const MAX_RULES = 1000;
const EPERM = 1;

const ACTIONS: Record<string, string> = {
  SCMP_ACT_ALLOW: 'allow',
  SCMP_ACT_ERRNO: 'errno',
  SCMP_ACT_KILL: 'kill-thread',
  SCMP_ACT_KILL_THREAD: 'kill-thread',
  SCMP_ACT_KILL_PROCESS: 'kill',
  SCMP_ACT_LOG: 'log',
};

function action(a: unknown, errnoRet: unknown, where: string): string {
  if (typeof a !== 'string' || ACTIONS[a] === undefined) {
    throw new SeccompProfileError(`${where}: action ${JSON.stringify(a)} is not supported (use one of ${Object.keys(ACTIONS).join(', ')})`);
  }
  const act = ACTIONS[a]!;
  if (act !== 'errno') return act;
  const e = errnoRet === undefined ? EPERM : errnoRet;
  if (!Number.isInteger(e) || (e as number) < 0 || (e as number) > 4095) throw new SeccompProfileError(`${where}: errnoRet must be an integer 0..4095`);
  return `errno ${e as number}`;
}

const isEmpty = (v: unknown) =>
  v === undefined || v === null || (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && v !== null && Object.keys(v).length === 0);

/** Docker JSON profile text → the shim's compiled form. Throws SeccompProfileError naming the problem. */
export function compileSeccompProfile(text: string): string {
  if (Buffer.byteLength(text) > MAX_PROFILE_BYTES) throw new SeccompProfileError(`seccomp profile: larger than ${MAX_PROFILE_BYTES} bytes`);
  let p: unknown;
  try {
    p = JSON.parse(text);
  } catch (e) {
    throw new SeccompProfileError(`seccomp profile: not JSON: ${(e as Error).message}`);
  }
  if (typeof p !== 'object' || p === null || Array.isArray(p)) throw new SeccompProfileError('seccomp profile: expected a JSON object');
  const o = p as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!['defaultAction', 'defaultErrnoRet', 'syscalls', 'architectures', 'archMap', 'flags', 'listenerPath', 'listenerMetadata'].includes(k)) {
      throw new SeccompProfileError(`seccomp profile: field ${k} is not supported`);
    }
  }
  if (!isEmpty(o.listenerPath)) throw new SeccompProfileError('seccomp profile: listenerPath (user notification) is not supported');
  const lines = [`default ${action(o.defaultAction, o.defaultErrnoRet, 'seccomp profile defaultAction')}`];
  const rules = o.syscalls ?? [];
  if (!Array.isArray(rules)) throw new SeccompProfileError('seccomp profile: syscalls must be a list');
  let n = 0;
  rules.forEach((r: unknown, i) => {
    const where = `seccomp profile syscalls[${i}]`;
    if (typeof r !== 'object' || r === null) throw new SeccompProfileError(`${where}: expected an object`);
    const s = r as Record<string, unknown>;
    for (const k of Object.keys(s)) {
      if (!['names', 'name', 'action', 'errnoRet', 'args', 'comment', 'includes', 'excludes'].includes(k))
        throw new SeccompProfileError(`${where}: field ${k} is not supported`);
    }
    if (!isEmpty(s.args))
      throw new SeccompProfileError(`${where}: argument conditions (args) are not supported by Shoal; list the syscall without them or drop the rule`);
    if (!isEmpty(s.includes) || !isEmpty(s.excludes))
      throw new SeccompProfileError(`${where}: includes/excludes (per capability or architecture) are not supported by Shoal`);
    const names = [...(Array.isArray(s.names) ? s.names : []), ...(s.name !== undefined ? [s.name] : [])];
    if (names.length === 0) throw new SeccompProfileError(`${where}: names is required`);
    const act = action(s.action, s.errnoRet, where);
    for (const name of names) {
      if (typeof name !== 'string' || !/^[a-z0-9_]{1,40}$/.test(name)) throw new SeccompProfileError(`${where}: ${JSON.stringify(name)} is not a syscall name`);
      if (++n > MAX_RULES) throw new SeccompProfileError(`seccomp profile: more than ${MAX_RULES} syscall names`);
      lines.push(`${name} ${act}`);
    }
  });
  return lines.join('\n') + '\n';
}
