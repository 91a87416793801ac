// Node addresses in NetViews by generation (manager/dispatcher/netview-addrs.ts, worker/netview-addrs.ts):
// the leader names each list a generation and describes the change from any generation it still keeps;
// the agent's side rebuilds the list from the one it has, in the leader's order, and refuses a change
// that is not against that one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AddrGenerations } from '../../manager/dispatcher/netview-addrs.ts';
import { applyAddrChange, byAddress } from '../../worker/netview-addrs.ts';

const note = (g: AddrGenerations, list: string[]) => g.note(list, JSON.stringify(list));

test('the same list keeps its generation; another gets the next one', () => {
  const g = new AddrGenerations();
  assert.equal(g.current, 0);
  assert.equal(note(g, ['10.0.0.1']), 1);
  assert.equal(note(g, ['10.0.0.1']), 1);
  assert.equal(note(g, ['10.0.0.1', '10.0.0.2']), 2);
  assert.equal(g.current, 2);
});

test('changes from each kept generation rebuild the current list; a forgotten one gives none', () => {
  const g = new AddrGenerations(3);
  const lists = [['10.0.0.1'], ['10.0.0.1', '10.0.0.2'], ['10.0.0.2', '10.0.0.3'], ['10.0.0.2', '10.0.0.3', '10.0.0.20'], ['10.0.0.3', '10.0.0.20']];
  const gens = lists.map((l) => note(g, l));
  const cur = lists.at(-1)!;
  // The last three are kept; the first two are forgotten.
  assert.equal(g.changeFrom(gens[0]!), null);
  assert.equal(g.changeFrom(gens[1]!), null);
  for (const i of [2, 3, 4]) {
    const change = JSON.parse(g.changeFrom(gens[i]!)!);
    assert.equal(change.base, gens[i]);
    assert.equal(change.gen, gens[4]);
    assert.deepEqual(applyAddrChange({ gen: gens[i]!, list: lists[i]! }, change).list, cur, `from generation ${gens[i]}`);
  }
  assert.deepEqual(JSON.parse(g.changeFrom(gens[4]!)!), { base: gens[4], gen: gens[4], add: [], remove: [] }, 'from the current one: nothing');
  assert.equal(g.changeFrom(99), null, 'never was');
});

test('the agent refuses a change against another generation, without a list, or malformed', () => {
  const have = { gen: 4, list: ['10.0.0.1'] };
  assert.throws(() => applyAddrChange(have, { base: 3, gen: 5, add: [], remove: [] }), /generation 3, but this session has generation 4/);
  assert.throws(() => applyAddrChange(null, { base: 4, gen: 5, add: [], remove: [] }), /no list yet/);
  for (const bad of [
    null,
    'x',
    { base: 4, gen: 5, add: 'x', remove: [] },
    { base: 4.5, gen: 5, add: [], remove: [] },
    { base: 4, gen: 5, add: [1], remove: [] },
  ])
    assert.throws(() => applyAddrChange(have, bad), /malformed/, JSON.stringify(bad));
});

test('byAddress orders dotted addresses by value, as the leader does', () => {
  assert.deepEqual(['10.0.0.10', '10.0.0.9', '9.0.0.1', 'x', '10.0.1.0'].sort(byAddress), ['9.0.0.1', '10.0.0.9', '10.0.0.10', '10.0.1.0', 'x']);
});
