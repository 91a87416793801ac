// Object ids: 25 characters of base36 (~129 random bits), like Swarm's. One generator for every
// component that creates objects (API routes, join, orchestrator, allocator), so ids look alike
// everywhere; components that must be deterministic in tests take it as a parameter instead.
//
// Random bytes come from a pool refilled 4 KiB at a time: one randomBytes call per id cost ≈ 5 µs, a
// tenth of the orchestrator's CPU when it creates 30,000 tasks. Each character takes one byte below
// 252 (= 7 × 36, so every character is equally likely); bytes from 252 up are skipped.
import { randomFillSync } from 'node:crypto';

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';
const pool = Buffer.alloc(4096);
let at = pool.length;

function randomByte(): number {
  if (at === pool.length) {
    randomFillSync(pool);
    at = 0;
  }
  return pool[at++]!;
}

export function newId(): string {
  let s = '';
  while (s.length < 25) {
    const b = randomByte();
    if (b < 252) s += ALPHABET[b % 36];
  }
  return s;
}
