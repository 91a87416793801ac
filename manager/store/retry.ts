// How a leader control loop (scheduler, allocator) backs off after a failed pass over the store.
import { BatchError, ConflictError } from './store.ts';

/**
 * Logs a failed pass and returns the delay before the next one. A ConflictError (someone else wrote an
 * object this pass was writing) is retried on a fresh view at once the first three times, then with a
 * growing delay up to 1 s; any other error backs off from 100 ms up to 5 s.
 */
export function passRetryDelay(err: unknown, consecutiveErrors: number, who: string, log: (line: string) => void): number {
  const cause = err instanceof BatchError ? err.cause : err;
  const msg = cause instanceof Error ? cause.message : String(cause);
  if (cause instanceof ConflictError) {
    if (consecutiveErrors <= 3) log(`${who}: conflict (${msg}); recomputing`);
    return consecutiveErrors <= 3 ? 1 : Math.min(1000, 10 * 2 ** (consecutiveErrors - 3));
  }
  log(`${who}: pass failed: ${msg}`);
  return Math.min(5000, 100 * 2 ** Math.min(6, consecutiveErrors - 1));
}
