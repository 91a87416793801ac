// Latency summaries and process CPU readings shared by the benchmarks.
import { readFileSync } from 'node:fs';
export interface LatencySummary {
  n: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

export function summarize(samples: number[]): LatencySummary {
  if (samples.length === 0) return { n: 0, p50: NaN, p99: NaN, max: NaN, mean: NaN };
  const s = Float64Array.from(samples).sort();
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  let sum = 0;
  for (const v of s) sum += v;
  return { n: s.length, p50: q(0.5), p99: q(0.99), max: s[s.length - 1]!, mean: sum / s.length };
}

/** CPU seconds (user + system) a process has used so far, read from /proc (100 ticks a second); NaN when it is gone. */
export function processCpuSeconds(pid: number | null | undefined): number {
  if (!pid) return NaN;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}
