// Object ids: 25 characters of base36 (~128 random bits), like Swarm's. One generator for every
// component that creates objects (API routes, join, orchestrator, allocator), so ids look alike
// everywhere; components that must be deterministic in tests take it as a parameter instead.
import { randomBytes } from 'node:crypto';

export function newId(): string {
  const b = randomBytes(17);
  let n = 0n;
  for (const x of b) n = (n << 8n) | BigInt(x);
  return n.toString(36).padStart(25, '0').slice(-25);
}
