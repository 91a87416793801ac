// Object ids (manager/store/ids.ts): 25 base-36 characters, distinct, every character equally likely.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newId } from '../../manager/store/ids.ts';

test('ids are 25 base-36 characters and do not repeat', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 20_000; i++) {
    const id = newId();
    assert.match(id, /^[0-9a-z]{25}$/);
    seen.add(id);
  }
  assert.equal(seen.size, 20_000);
});

test('every character is about equally likely in every position (no modulo bias)', () => {
  const n = 36_000;
  const counts = new Map<string, number>();
  const first = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const id = newId();
    first.set(id[0]!, (first.get(id[0]!) ?? 0) + 1);
    for (const c of id) counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  assert.equal(counts.size, 36);
  assert.equal(first.size, 36, 'the first character is not constrained');
  // 25 × 36,000 / 36 = 25,000 expected per character (σ ≈ 160). Taking every byte modulo 36 would put
  // 4 characters 14 % above the others; 3 % (≈ 4.7 σ) is left for chance.
  for (const [c, k] of counts) assert.ok(Math.abs(k - 25_000) < 750, `${c}: ${k}`);
  for (const [c, k] of first) assert.ok(Math.abs(k - 1000) < 250, `first ${c}: ${k}`);
});
