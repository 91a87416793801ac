// The longest stretch the event loop could not run: a 5 ms timer notes the gap between its runs. What
// the in-process figures of bench:scale compare with Raft's election timeout.
import { performance } from 'node:perf_hooks';

export interface LoopProbe {
  /** Forgets what was measured so far and starts again from now. */
  reset(): void;
  /** The longest gap since the start or the last reset, in ms. */
  longest(): number;
  stop(): void;
}

export function startLoopProbe(intervalMs = 5): LoopProbe {
  let last = performance.now();
  let longest = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, intervalMs);
  return {
    reset: () => {
      last = performance.now();
      longest = 0;
    },
    longest: () => Math.max(longest, performance.now() - last),
    stop: () => clearInterval(timer),
  };
}
