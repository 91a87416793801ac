// A lab host's long-running process (its Shoal daemon) under a minimal supervisor, so that `shoal lab ls`
// can say whether it runs or how it died, and `shoal lab restart` can start it again exactly as before.
//
// Only a process's parent learns how it ended, and the process that creates a lab (`shoal lab up`) exits
// at once, so something else must be that parent. The supervisor is `sh` (about 1 MB): it starts the
// command as its child, writes the child's pid, waits for it, and writes how it ended. It never restarts
// anything by itself: the drills kill daemons on purpose and expect them to stay dead until told.
//
// Files in the host's directory, for a label L (the daemon's is 'daemon'):
//   L.supervise.json  how it was started (command, arguments, cwd, extra environment, log file), the pid and
//                     start time of the current child and of its supervisor, and how many starts so far
//   L.pid             written by the supervisor: the child's pid
//   L.exit            written by the supervisor when the child ends: "<pid> <wait status>"; a status above
//                     128 is 128 + the signal number, as shells report it
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LabError, procAlive, procStartTime, type LabHost } from './lab.ts';

/** What to run, in a form that can be stored and replayed by another process. */
export interface SupervisedSpec {
  cmd: string;
  args: string[];
  cwd: string;
  /** Added to the host's environment (see LabHost.env), not the whole environment. */
  env: Record<string, string>;
  /** stdout and stderr are appended here; relative to the host's directory. */
  logFile: string;
}

export interface SupervisedRecord extends SupervisedSpec {
  version: 1;
  label: string;
  host: string;
  pid: number;
  /** /proc/<pid>/stat start time: (pid, start) names this process only (see ProcRecord). */
  start: number;
  supervisorPid: number;
  supervisorStart: number;
  startedAt: string;
  /** 1 for the first start, +1 on each restart. */
  starts: number;
}

/** How a process ended: an exit code, or the signal that killed it. */
export type ExitInfo = { code: number; signal: null } | { code: null; signal: string };

export type SupervisedStatus =
  | { state: 'not-started' }
  | { state: 'running'; pid: number; startedAt: string; starts: number }
  /** exit is null when nobody could tell (its supervisor was killed too, e.g. by a lab teardown). */
  | { state: 'dead'; pid: number; exit: ExitInfo | null; endedAt: Date | null; starts: number };

/** The label is still running: restarting it would leave two copies on one state directory. */
export class StillRunningError extends LabError {
  override name = 'StillRunningError';
  constructor(
    readonly host: string,
    readonly label: string,
    readonly pid: number,
  ) {
    super(`${host}: the ${label} is still running (pid ${pid}); use --force to kill it first`);
  }
}

/** Nothing was ever started under this label on this host, so there is nothing to start again. */
export class NotSupervisedError extends LabError {
  override name = 'NotSupervisedError';
}

const SCRIPT = [
  'pidfile=$1 exitfile=$2; shift 2',
  '"$@" &',
  'child=$!',
  'echo "$child" > "$pidfile.tmp" && mv -f "$pidfile.tmp" "$pidfile"',
  'wait "$child"',
  'status=$?',
  'echo "$child $status" > "$exitfile.tmp" && mv -f "$exitfile.tmp" "$exitfile"',
].join('\n');

const PID_FILE_TIMEOUT_MS = 10_000;
const DEFAULT_GRACE_MS = 5000;

export function supervisorFiles(dir: string, label: string) {
  return {
    record: path.join(dir, `${label}.supervise.json`),
    pid: path.join(dir, `${label}.pid`),
    exit: path.join(dir, `${label}.exit`),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Pure: wait statuses and descriptions

/** A shell's `$?` for a waited child: 0..128 is an exit code, 128+n means killed by signal n. */
export function decodeWaitStatus(status: number): ExitInfo {
  if (status > 128 && status < 128 + 65) {
    const n = status - 128;
    const name = Object.entries(os.constants.signals).find(([, v]) => v === n)?.[0];
    return { code: null, signal: name ?? `signal ${n}` };
  }
  return { code: status, signal: null };
}

/** The exit file's verdict about process `pid`; null if the file is about another (earlier) process. */
export function parseExitFile(text: string, pid: number): ExitInfo | null {
  const m = /^(\d+) (\d+)\s*$/.exec(text);
  if (!m || Number(m[1]) !== pid) return null;
  return decodeWaitStatus(Number(m[2]));
}

/** The status of a supervised process from what the files and /proc say. */
export function statusOf(rec: SupervisedRecord | null, alive: boolean, exit: { text: string; mtime: Date } | null): SupervisedStatus {
  if (!rec) return { state: 'not-started' };
  if (alive) return { state: 'running', pid: rec.pid, startedAt: rec.startedAt, starts: rec.starts };
  const info = exit ? parseExitFile(exit.text, rec.pid) : null;
  return { state: 'dead', pid: rec.pid, exit: info, endedAt: info ? exit!.mtime : null, starts: rec.starts };
}

/** One cell for `shoal lab ls`: "running (pid 42)", "dead (SIGKILL, 12 s ago)", "dead (exit 1)", … */
export function describeStatus(s: SupervisedStatus, nowMs: number): string {
  switch (s.state) {
    case 'not-started':
      return 'not started';
    case 'running':
      return `running (pid ${s.pid})`;
    case 'dead': {
      const how = s.exit === null ? 'pid ' + s.pid + ', exit status unknown' : s.exit.signal !== null ? s.exit.signal : `exit ${s.exit.code}`;
      const ago = s.endedAt ? `, ${formatAgo(nowMs - s.endedAt.getTime())} ago` : '';
      return `dead (${how}${ago})`;
    }
  }
}

function formatAgo(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
}

// ---------------------------------------------------------------------------------------------------------
// I/O

export function readRecord(dir: string, label: string): SupervisedRecord | null {
  try {
    const r = JSON.parse(fs.readFileSync(supervisorFiles(dir, label).record, 'utf8')) as SupervisedRecord;
    return r.version === 1 && typeof r.pid === 'number' && Array.isArray(r.args) ? r : null;
  } catch {
    return null;
  }
}

/** Running, dead (and how), or never started: from the host directory `dir` alone (no Lab object needed). */
export function supervisedStatus(dir: string, label: string): SupervisedStatus {
  const rec = readRecord(dir, label);
  const f = supervisorFiles(dir, label);
  let exit: { text: string; mtime: Date } | null = null;
  try {
    exit = { text: fs.readFileSync(f.exit, 'utf8'), mtime: fs.statSync(f.exit).mtime };
  } catch {
    /* still running, or its supervisor died with it */
  }
  return statusOf(rec, rec !== null && procAlive(rec.pid, rec.start), exit);
}

function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text, { mode: 0o644 });
  fs.renameSync(tmp, file);
}

async function waitUntil(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

/**
 * Starts `spec` in `host` under a supervisor, records the child's pid in the lab's state file (so teardown,
 * `LabHost.kill` and other processes attached with Lab.open know it) and writes the supervise record. The
 * child outlives the caller. Resolves once the child's pid is known; whether it then serves is the caller's
 * to check.
 */
export async function startSupervised(host: LabHost, label: string, spec: SupervisedSpec): Promise<SupervisedRecord> {
  const f = supervisorFiles(host.dir, label);
  const previous = readRecord(host.dir, label);
  fs.rmSync(f.pid, { force: true });
  fs.rmSync(f.exit, { force: true });
  const sup = host.spawn('/bin/sh', ['-c', SCRIPT, `shoal-lab-${label}`, f.pid, f.exit, spec.cmd, ...spec.args], {
    env: spec.env,
    cwd: spec.cwd,
    logFile: spec.logFile,
    detached: true,
  });
  sup.unref();
  const supPid = sup.pid;
  if (supPid === undefined) throw new LabError(`${host.name}: could not start the supervisor of the ${label}`);
  const supStart = procStartTime(supPid) ?? 0;
  let pid = 0;
  const ok = await waitUntil(() => {
    try {
      pid = Number(fs.readFileSync(f.pid, 'utf8').trim());
      return Number.isInteger(pid) && pid > 0;
    } catch {
      return false;
    }
  }, PID_FILE_TIMEOUT_MS);
  if (!ok) throw new LabError(`${host.name}: the ${label}'s supervisor (pid ${supPid}) wrote no pid within ${PID_FILE_TIMEOUT_MS} ms`);
  const start = procStartTime(pid);
  // A child that died at once (bad command) is recorded all the same: its status then says how it ended.
  if (start !== null) host.lab.recordProc({ pid, start, host: host.name, cmd: [spec.cmd, ...spec.args].join(' ').slice(0, 200) });
  const rec: SupervisedRecord = {
    version: 1,
    label,
    host: host.name,
    ...spec,
    pid,
    start: start ?? 0,
    supervisorPid: supPid,
    supervisorStart: supStart,
    startedAt: new Date().toISOString(),
    starts: (previous?.starts ?? 0) + 1,
  };
  writeAtomic(f.record, JSON.stringify(rec, null, 2) + '\n');
  return rec;
}

/**
 * Starts the label again with the same command, arguments, directory, environment and log file. Refuses
 * (StillRunningError) while it runs, unless `force`: then it is sent SIGTERM by its recorded pid, and
 * SIGKILL after `graceMs`.
 */
export async function restartSupervised(host: LabHost, label: string, opts: { force?: boolean; graceMs?: number } = {}): Promise<SupervisedRecord> {
  const rec = readRecord(host.dir, label);
  if (!rec) throw new NotSupervisedError(`${host.name}: no ${label} was ever started here (no ${supervisorFiles(host.dir, label).record})`);
  if (procAlive(rec.pid, rec.start)) {
    if (!opts.force) throw new StillRunningError(host.name, label, rec.pid);
    host.kill(rec.pid, 'SIGTERM');
    const gone = () => !procAlive(rec.pid, rec.start);
    if (!(await waitUntil(gone, opts.graceMs ?? DEFAULT_GRACE_MS))) {
      host.kill(rec.pid, 'SIGKILL');
      if (!(await waitUntil(gone, 5000))) throw new LabError(`${host.name}: the ${label} (pid ${rec.pid}) survived SIGKILL`);
    }
  }
  // The old supervisor writes its exit file and leaves; let it, so the new child's files are its own.
  await waitUntil(() => !procAlive(rec.supervisorPid, rec.supervisorStart), 2000);
  const spec: SupervisedSpec = { cmd: rec.cmd, args: rec.args, cwd: rec.cwd, env: rec.env, logFile: rec.logFile };
  return startSupervised(host, label, spec);
}
