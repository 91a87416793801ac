// Container healthchecks with Docker Swarm's semantics, as a pure state machine: it is fed probe results
// and times, and says when the next probe is due and what changed. The executor runs the probes (with
// `shoal-shim exec`) and acts on the decisions; nothing here touches processes or clocks.
//
//   starting ──probe ok──▶ healthy ──`retries` failures in a row──▶ unhealthy
//      └──────────── `retries` failures in a row (outside the start period) ────────┘
//
// * Probes run one at a time: the next is due `intervalMs` after the previous one *finished* (the first
//   one `intervalMs` after the container started), so slow probes never pile up.
// * A probe fails when it exits non-zero or runs longer than `timeoutMs` (it is killed then).
// * While the container is still `starting`, failures of probes that began within `startPeriodMs` of the
//   container's start do not count.
// * `unhealthy` is final: the executor stops the container and fails the task.
import type { HealthCheck } from '../../api/objects.ts';

export const HEALTH_DEFAULTS = { intervalMs: 30_000, timeoutMs: 30_000, retries: 3, startPeriodMs: 0 } as const;
/** Probe results kept per task (Docker keeps 5 too). */
export const HEALTH_LOG_SIZE = 5;
/** Bytes of probe output kept per result (Docker's limit). */
export const HEALTH_OUTPUT_MAX = 4096;
/** Exit code recorded for a probe that was killed at its timeout (Docker's convention). */
export const PROBE_TIMEOUT_EXIT = -1;

export interface HealthConfig {
  /** The probe command, run inside the container. */
  command: string[];
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
}

/** The healthcheck fields of an image config (OCI/Docker: durations in nanoseconds). */
export interface ImageHealthcheck {
  Test?: string[];
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  Retries?: number;
}

/**
 * The effective healthcheck: the task's fields, each missing one taken from the image (as Docker merges
 * them). `{ test: ['NONE'] }` on the task disables the image's check.
 */
export function mergeHealthcheck(task: HealthCheck | undefined, image: ImageHealthcheck | undefined): HealthCheck | undefined {
  if (!image) return task;
  const ms = (ns: number | undefined) => (ns ? Math.round(ns / 1e6) : undefined);
  const merged: HealthCheck = { test: task?.test?.length ? task.test : (image.Test ?? []) };
  const pick = (k: Exclude<keyof HealthCheck, 'test'>, fromImage: number | undefined) => {
    const v = task?.[k] || fromImage;
    if (v) merged[k] = v;
  };
  pick('intervalMs', ms(image.Interval));
  pick('timeoutMs', ms(image.Timeout));
  pick('startPeriodMs', ms(image.StartPeriod));
  pick('retries', image.Retries);
  return merged;
}

/**
 * The probe and its timing, or null when there is no healthcheck (none given, an empty test, or
 * `['NONE']`). Docker's test forms: `['CMD', cmd, ...args]`, `['CMD-SHELL', 'shell command']` (run with
 * /bin/sh -c). Zero or missing numbers take the defaults. Throws on a malformed check.
 */
export function healthConfig(hc: HealthCheck | undefined): HealthConfig | null {
  if (!hc || hc.test.length === 0 || hc.test[0] === 'NONE') return null;
  const [kind, ...rest] = hc.test;
  let command: string[];
  if (kind === 'CMD') command = rest;
  else if (kind === 'CMD-SHELL') {
    if (rest.length !== 1) throw new Error(`healthcheck: CMD-SHELL takes exactly one shell command, got ${rest.length}`);
    command = ['/bin/sh', '-c', rest[0]!];
  } else throw new Error(`healthcheck: test must start with CMD, CMD-SHELL or NONE, not ${JSON.stringify(kind)}`);
  if (command.length === 0 || command[0] === '') throw new Error('healthcheck: no command to run');
  const num = (name: string, v: number | undefined, dflt: number) => {
    if (v === undefined || v === 0) return dflt;
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`healthcheck: ${name} must be a non-negative integer, got ${v}`);
    return v;
  };
  return {
    command,
    intervalMs: num('intervalMs', hc.intervalMs, HEALTH_DEFAULTS.intervalMs),
    timeoutMs: num('timeoutMs', hc.timeoutMs, HEALTH_DEFAULTS.timeoutMs),
    retries: num('retries', hc.retries, HEALTH_DEFAULTS.retries),
    startPeriodMs: num('startPeriodMs', hc.startPeriodMs, HEALTH_DEFAULTS.startPeriodMs),
  };
}

export type HealthStatus = 'starting' | 'healthy' | 'unhealthy';

/** One probe, as kept in the health log. */
export interface ProbeResult {
  /** ISO-8601 */
  start: string;
  /** ISO-8601 */
  end: string;
  /** the probe's exit code; PROBE_TIMEOUT_EXIT when it was killed at its timeout */
  exitCode: number;
  /** stdout then stderr, at most HEALTH_OUTPUT_MAX bytes */
  output: string;
}

export interface HealthReport {
  status: HealthStatus;
  failingStreak: number;
  /** oldest first */
  log: ProbeResult[];
}

/** What a probe result changed: nothing, the container became healthy, or it is unhealthy (final). */
export type HealthDecision = 'none' | 'healthy' | 'unhealthy';

export interface ProbeOutcome {
  startMs: number;
  endMs: number;
  exitCode: number;
  output: string;
  timedOut?: boolean;
}

export class HealthState {
  private status: HealthStatus = 'starting';
  private failingStreak = 0;
  private readonly log: ProbeResult[] = [];
  private lastEndMs: number | undefined;

  /** `containerStartMs`: when the container started (the start period counts from there). */
  constructor(
    readonly config: HealthConfig,
    private readonly containerStartMs: number,
  ) {}

  /** When the next probe is due (epoch ms). Nothing is due any more once unhealthy. */
  nextProbeAt(): number {
    if (this.status === 'unhealthy') return Infinity;
    return (this.lastEndMs ?? this.containerStartMs) + this.config.intervalMs;
  }

  record(p: ProbeOutcome): HealthDecision {
    if (this.status === 'unhealthy') return 'none';
    this.lastEndMs = p.endMs;
    const exitCode = p.timedOut ? PROBE_TIMEOUT_EXIT : p.exitCode;
    const output = p.timedOut ? `Health check exceeded timeout (${this.config.timeoutMs}ms)` : truncateOutput(p.output);
    this.log.push({ start: new Date(p.startMs).toISOString(), end: new Date(p.endMs).toISOString(), exitCode, output });
    if (this.log.length > HEALTH_LOG_SIZE) this.log.shift();
    if (exitCode === 0) {
      this.failingStreak = 0;
      if (this.status === 'healthy') return 'none';
      this.status = 'healthy';
      return 'healthy';
    }
    const inStartPeriod = this.status === 'starting' && p.startMs - this.containerStartMs < this.config.startPeriodMs;
    if (inStartPeriod) return 'none';
    this.failingStreak++;
    if (this.failingStreak < this.config.retries) return 'none';
    this.status = 'unhealthy';
    return 'unhealthy';
  }

  report(): HealthReport {
    return { status: this.status, failingStreak: this.failingStreak, log: this.log.map((r) => ({ ...r })) };
  }
}

function truncateOutput(s: string): string {
  const b = Buffer.from(s, 'utf8');
  return b.length <= HEALTH_OUTPUT_MAX ? s : b.subarray(0, HEALTH_OUTPUT_MAX).toString('utf8');
}
